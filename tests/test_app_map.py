"""The Boundaries page renders headless (AppTest): layers, search and misalignment."""
from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT


@pytest.fixture()
def app() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def _map_figure(at: AppTest, key_part: str = "boundaries") -> dict:
    charts = [c for c in at.get("plotly_chart")]
    assert charts, "no plotly chart on the page"
    return json.loads(charts[0].proto.spec)


def _line_colours(figure: dict) -> list[str]:
    return [layer["color"] for layer in figure["layout"]["map"]["layers"] if layer.get("type") == "line"]


def test_map_page_draws_default_layers_offline(app):
    figure = _map_figure(app)
    style = figure["layout"]["map"]["style"]  # no internet needed: a plain background, glyphs from the app
    assert style["layers"] == [{"id": "white-bg", "type": "background", "paint": {"background-color": "#FFFFFF"}}]
    assert style["glyphs"].startswith("/app/static/") and "tiles" not in json.dumps(style["sources"])
    legend = [t["name"] for t in figure["data"] if t.get("showlegend")]
    assert any("Police force areas" in name for name in legend)
    assert any("Children's services" in name for name in legend)
    assert "#0072B2" in _line_colours(figure)  # police outline drawn
    assert "Source: Office for National Statistics" in " ".join(c.value for c in app.caption)


def test_toggling_a_layer_removes_its_outline(app):
    app.toggle(key="layer_pfa").set_value(False).run()
    figure = _map_figure(app)
    assert "#0072B2" not in _line_colours(figure)
    app.toggle(key="layer_trust").set_value(True).run()
    assert "#E69F00" in _line_colours(_map_figure(app))
    assert any("Modelled" in i.value for i in app.info)


def test_postcode_search_names_every_covering_geography(app):
    app.text_input(key="place_query").set_value("LS1 3EX").run()
    assert not app.exception
    panel = app.table[0].value.reset_index()
    areas = dict(zip(panel["Geography"], panel["Area"]))
    assert areas["Police force"] == "West Yorkshire"
    assert areas["Children's services"] == "Leeds"
    assert areas["ICB"] == "NHS West Yorkshire Integrated Care Board"
    assert areas["Trust catchment"] == "Leeds Teaching Hospitals NHS Trust"
    assert _map_figure(app)["layout"]["map"]["zoom"] > 9


def test_area_search_zooms_and_lists_what_it_falls_in(app):
    app.text_input(key="place_query").set_value("Essex").run()
    panel = app.table[0].value.reset_index()
    assert any(area.startswith("Essex (") for area in panel["Area"])  # the county, within the force
    assert any("ICB" in g for g in panel["Geography"])
    assert _map_figure(app)["layout"]["map"]["zoom"] > 6


def test_unknown_place_gets_a_clear_message(app):
    app.text_input(key="place_query").set_value("ZZ99 9ZZ").run()
    assert any("not a current postcode" in w.value for w in app.warning)
    app.text_input(key="place_query").set_value("Atlantis").run()
    assert any("No postcode or area matches" in w.value for w in app.warning)


def test_misalignment_view_states_and_tabulates(app):
    app.button_group(key="view").set_value("Where boundaries misalign").run()
    text = " ".join(m.value for m in app.markdown)
    assert "are cut across by the boundaries of integrated care boards" in text
    app.selectbox(key="mis_layer").set_value("pfa").run()
    app.selectbox(key="mis_against").set_value("trust").run()
    assert not app.exception
    table = [d.value for d in app.dataframe if "crossing_partners" in d.value.columns][0]
    assert len(table) == 43


def test_boundaries_page_shows_each_layers_source_and_vintage(app):
    from lib.geo.layers import LAYERS

    tables = [t.value for t in app.table if "Vintage" in t.value.columns]
    assert len(tables) == 1
    shown = tables[0]
    assert list(shown.columns) == ["Source", "Vintage"]
    for layer in LAYERS.values():
        assert shown.at[layer.title, "Vintage"] == layer.vintage and shown.at[layer.title, "Source"] == layer.source
    assert "2025" in shown.at[LAYERS["lad"].title, "Vintage"]
    assert "April 2026" in shown.at[LAYERS["icb"].title, "Vintage"]  # says the 36-ICB edition is not in yet


def test_trust_catchment_shares_view_maps_one_trusts_share_by_district(app):
    from lib.geo import catchments

    app.button_group(key="view").set_value("Trust catchment shares").run()
    assert not app.exception, app.exception
    app.selectbox(key="share_trust").set_value("R0A").run()
    assert not app.exception, app.exception
    figure = _map_figure(app)
    trace = figure["data"][0]
    shares = dict(zip(trace["locations"], trace["z"]))
    expected = catchments.trust_share_by_area("R0A", "lad_code").set_index("area_code")["share"]
    assert max(shares, key=shares.get) == expected.idxmax()
    assert shares[expected.idxmax()] == pytest.approx(round(expected.max() * 100, 1))
    assert "% of the district's admissions" in json.dumps(trace["colorbar"])
    captions = " ".join(c.value for c in app.caption)
    assert "Modelled from OHID admissions, 2022 edition" in captions
    assert "Manchester University NHS Foundation Trust" in " ".join(m.value for m in app.markdown)


def test_place_labels_are_the_official_district_names_shown_only_zoomed_in():
    """The plain map's place names are every district of the display layer, named as in the official ONS
    lookups (lookup.name_of), each at a point inside its own polygon; the glyphs they need are in static/."""
    import shapely

    from lib.geo import lookup, maps

    points = maps.place_label_points()["features"]
    districts = maps.layer_geojson("lad")["features"]
    assert [p["id"] for p in points] == [f["id"] for f in districts]
    names = lookup.name_of("lad")
    assert all(p["properties"]["name"] == names[p["id"]] for p in points)
    polygons = {f["id"]: shapely.geometry.shape(f["geometry"]) for f in districts}
    assert all(polygons[p["id"]].buffer(1e-4).contains(shapely.geometry.Point(p["geometry"]["coordinates"]))
               for p in points)
    layer = maps.place_label_layer()
    assert layer["minzoom"] >= 7 and layer["symbol"]["icon"] == ""  # no icon: Plotly would fetch it from a CDN
    font_dir = maps.ROOT_STATIC / "glyphs" / maps.GLYPH_FONTSTACK
    assert (font_dir / "0-255.pbf").stat().st_size > 10_000 and (font_dir / "256-511.pbf").stat().st_size > 10_000
