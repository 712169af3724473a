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
    assert figure["layout"]["map"]["style"] == "white-bg"  # no internet needed
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
