"""View builder of the Boundaries page (url_path ``boundaries``): public boundaries only, no records.

``build(con, params, role)`` returns what the page shows for one choice of its controls: the overlay map
(with a found postcode or area and the table of what it falls in), where two layers cut across each
other (sentence, headline counts, map, table), one acute trust's share of every district's admissions
(sentence, map, table), and every layer's source and vintage. The page renders it; ``python -m lib.cli
view boundaries --param view=misalignment --param layer=pfa ...`` writes the same object. The store is
not read (``con`` may be None): every number comes from geodata/.

Conventions shared by this package's page builders (lib.views.across, lib.views.data):

- ``tables["metrics"]`` (when present) holds the headline figures drawn as ``st.metric``: one row per
  metric with ``label``, ``value`` (text, as shown), ``delta`` (text or None) and ``help`` (text or None).
- ``extra["warnings"]`` / ``extra["info"]``: messages drawn as warning / info boxes (sentences too, but
  kept apart from ``sentences`` so the page can style them); ``extra`` otherwise holds options the page
  needs for its own widgets (never a count not also in a table or sentence).
- ``sentences`` are drawn as markdown in order; ``notes`` as captions, in order.
"""
from __future__ import annotations

import pandas as pd

from lib.geo import alignment, catchments, lookup, maps
from lib.geo.layers import LAYERS, PLACE_ORDER, POLYGONS, SHOWN_FIRST, in_sentence, vintage_table
from lib.views.base import PageData, Param, Table

PAGE = "boundaries"
TITLE = "Boundaries"
INTRO = ("Police, children's services and the NHS each work on their own map. Switch layers on to see "
         "them together; hover an area to see which areas of the other layers it falls in.")
#: The page's three views, by parameter value, with the label its selector shows.
VIEWS = {"overlay": "Overlay map", "misalignment": "Where boundaries misalign",
         "trust_shares": "Trust catchment shares"}
#: Layers switched on when the overlay opens: a live view of the layer registry (``Layer.shown_first``).
DEFAULT_LAYERS = SHOWN_FIRST
DEFAULT_TRUST = "RJ1"

PARAMS: dict[str, Param] = {
    "view": Param("overlay", tuple(VIEWS), help="overlay, misalignment or trust_shares"),
    "layers": Param(None, LAYERS, many=True,
                     help="layers drawn on the overlay map (default: " + ", ".join(DEFAULT_LAYERS) + ")"),
    "hover": Param("utla", LAYERS, help="the layer whose areas the overlay's hover describes"),
    "basemap": Param(next(iter(maps.BASEMAPS)), tuple(maps.BASEMAPS), help="base map of the overlay"),
    "place": Param("", help="a postcode or area name to find on the overlay"),
    "match": Param(0, kind=int, help="which matching area (0 = first) when the place names several"),
    "area": Param("", help="overlay: an area clicked on the map, as layer:code (e.g. utla:E08000035); the side "
                           "panel lists every layer it falls in"),
    "layer": Param("utla", LAYERS, help="misalignment: areas of this layer"),
    "against": Param(None, PLACE_ORDER, help="misalignment: cut across by this layer (default icb)"),
    "min_share": Param(0, tuple(range(0, 21)), kind=int,
                       help="misalignment: ignore overlaps smaller than this % of the area's LSOAs"),
    "trust": Param(None, help="trust_shares: an acute trust or Welsh health board code (default RJ1)"),
}

VINTAGE_CAPTION = (f"Every layer is drawn from {POLYGONS}. Codes and names come from the official lookups listed "
                   "in geodata/manifest.json (Open Government Licence v3.0); docs/REFERENCE_DATA.md says how they "
                   "are refreshed.")


def _metrics(rows: list[tuple[str, str, str | None, str | None]]) -> Table:
    return Table(pd.DataFrame(rows, columns=["label", "value", "delta", "help"]).astype("object"),
                 title="Headline figures")


# -- overlay ------------------------------------------------------------------------------------------

def _place_rows(query: str, match: int, data: PageData) -> tuple[tuple | None, tuple | None, list | None]:
    """(highlight, point, panel rows) for the text typed in "Find a place"; messages into ``data``."""
    postcode = lookup.normalise_postcode(pd.Series([query])).iloc[0]
    if isinstance(postcode, str):
        placed = lookup.place_postcodes(pd.Series([postcode])).iloc[0]
        label = lookup.format_postcode(postcode)
        if pd.isna(placed["lsoa11cd"]):
            data.extra["warnings"].append(f"{label} is not a current postcode in England or Wales.")
            return None, None, None
        data.sentences.append(f"**{label}** is covered by:")
        rows = [(LAYERS[k].short, lookup.name_of(k).get(placed[LAYERS[k].column], "—"), placed[LAYERS[k].column])
                for k in PLACE_ORDER if not pd.isna(placed[LAYERS[k].column])]
        return None, (float(placed["lat"]), float(placed["lon"]), label), rows
    found = lookup.find_area(query)
    if found.empty:
        data.extra["warnings"].append(f"No postcode or area matches “{query.strip()}”.")
        return None, None, None
    data.extra["matches"] = [f"{found.at[i, 'name']} — {LAYERS[found.at[i, 'layer']].short}"
                             for i in range(len(found))]
    if not 0 <= match < len(found):
        raise ValueError(f"parameter match={match}: “{query.strip()}” matches {len(found)} areas (0 to "
                         f"{len(found) - 1})")
    layer, code = found.at[match, "layer"], found.at[match, "code"]
    return (layer, code), None, _area_rows(layer, code, data)


def _area_rows(layer: str, code: str, data: PageData) -> list[tuple[str, str, str]]:
    """The panel of one area: every area of the other layers it falls in, with the share of its LSOAs where
    it is split (from the official LSOA lookups in geodata/, lib.geo.alignment); its sentence into ``data``."""
    name = lookup.name_of(layer).get(code, code)
    data.sentences.append(f"**{name}** ({LAYERS[layer].short}, {code}) falls in:")
    rows = []
    for other, members in alignment.memberships(layer, code).items():
        for other_code, other_name, share in members:
            rows.append((LAYERS[other].short, other_name if share > 0.995 else
                         f"{other_name} ({share:.0%} of its LSOAs)" if share >= 0.005 else
                         f"{other_name} (<1% of its LSOAs)", other_code))
    return rows


def _clicked(area: str) -> tuple[str, str]:
    """``layer:code`` of a clicked area, checked against the drawn layers and their codes."""
    layer, sep, code = str(area).partition(":")
    if not sep or layer not in LAYERS or code not in lookup.name_of(layer):
        raise ValueError(f"parameter area={area!r}: expected layer:code of a drawn layer's area, e.g. "
                         "utla:E08000035 (layers: " + ", ".join(LAYERS) + ")")
    return layer, code


def _overlay(params: dict, data: PageData) -> None:
    chosen = DEFAULT_LAYERS if params["layers"] is None else params["layers"]
    shown = [k for k in LAYERS if k in chosen]
    highlight = point = None
    query = str(params["place"] or "")
    rows = None
    if query.strip():
        highlight, point, rows = _place_rows(query, int(params["match"]), data)
    elif params.get("area"):
        highlight = _clicked(params["area"])
        rows = _area_rows(*highlight, data)
    if rows is not None:
        data.tables["place"] = Table(pd.DataFrame(rows, columns=["Geography", "Area", "Code"]),
                                     title="What the place falls in")
    if "trust" in shown:
        data.extra["info"].append(LAYERS["trust"].note)
    view = maps.zoom_for_bounds(maps.layer_bounds(highlight[0])[highlight[1]]) if highlight else (
        {"center": {"lat": point[0], "lon": point[1]}, "zoom": 10.5} if point else None)
    style = maps.BASEMAPS[params["basemap"]]
    # No text on the plain base map: MapLibre draws map text only with glyph fonts fetched from a font server
    # (fonts.openmaptiles.org by default), which would break the offline promise; vendoring glyphs is not done.
    # Place names come from "Find a place" and the click-an-area panel instead.
    data.figures["map"] = maps.boundaries_figure(shown, params["hover"], style=style, view=view,
                                                 highlight=highlight, point=point)


# -- misalignment -------------------------------------------------------------------------------------

def misalignment_columns(layer: str) -> list[str]:
    others = [k for k in PLACE_ORDER if k != layer]
    return ["name", "code"] + [c for k in others for c in (f"{k}_areas", f"{k}_crossing")] + [
        "split_layers", "crossing_partners"]


def _misalignment(params: dict, data: PageData) -> None:
    layer = params["layer"]
    others = [k for k in PLACE_ORDER if k != layer]
    against = params["against"] or ("icb" if "icb" in others else others[0])
    if against == layer:
        raise ValueError(f"parameter against={against!r}: choose a layer other than layer={layer!r}")
    data.params["against"] = against
    min_share = int(params["min_share"]) / 100
    table = alignment.misalignment(layer, min_share)
    covered = table[table[f"{against}_areas"] > 0]
    split = covered[covered[f"{against}_crossing"] > 0].sort_values(f"{against}_crossing", ascending=False)
    a_title, b_title = in_sentence(LAYERS[layer].title), in_sentence(LAYERS[against].title)
    if covered.empty:
        data.extra["info"].append(f"No {a_title} are covered by {b_title}.")
    else:
        worst = split.iloc[0] if not split.empty else None
        data.sentences.append("**" + f"{len(split)} of {len(covered)} {a_title} are cut across by the boundaries of "
                              f"{b_title}" + (f"; the most divided is {worst['name']}, which shares territory with "
                                              f"{worst[f'{against}_areas']} of them." if worst is not None else ".")
                              + "**")
        data.tables["metrics"] = _metrics([
            (f"Aligned with {LAYERS[against].short}", str(len(covered) - len(split)), None, None),
            ("Cut across", str(len(split)), None, None),
            ("Most partner areas", str(int(covered[f"{against}_areas"].max())), None, None)])
        values = dict(zip(covered["code"], covered[f"{against}_crossing"].astype(float)))
        data.figures["misalignment_map"] = maps.choropleth_figure(
            layer, values, f"{LAYERS[against].short} areas cutting across", hover=alignment.hover_text(layer),
            outline=against, colorscale="Cividis", reverse=True,
            discrete_max=max(3, int(covered[f"{against}_crossing"].max())))
        data.notes.append(f"Colour: how many {b_title} cut across each area (0 = wholly inside one, or wholly "
                          f"made of whole ones). Outlines: {b_title}.")
        columns = misalignment_columns(layer)
        hints = {"name": {"label": "Area"}, "code": {"label": "Code"},
                 "split_layers": {"label": "Layers cutting across"},
                 "crossing_partners": {"label": "Partner areas across a boundary"}}
        for k in others:
            hints[f"{k}_areas"] = {"label": f"{LAYERS[k].short}: areas overlapped"}
            hints[f"{k}_crossing"] = {"label": f"{LAYERS[k].short}: cutting across"}
        data.tables["misalignment"] = Table(
            table.sort_values("crossing_partners", ascending=False)[columns].reset_index(drop=True),
            title=f"{LAYERS[layer].title}: where other layers cut across", downloadable=True, columns=hints)
    if against == "trust" or layer == "trust":
        data.notes.append(LAYERS["trust"].note)


# -- trust catchment shares ---------------------------------------------------------------------------

def trust_choices() -> list[str]:
    """Trust codes in the order the page's selector lists them (by name)."""
    names = lookup.name_of("trust")
    return sorted(catchments.trust_codes(), key=lambda c: names.get(c, c))


def trust_label(code: str) -> str:
    """How the page's selector names a trust: "name (code)"."""
    return f"{lookup.name_of('trust').get(code, code)} ({code})"


def trust_shares(trust: str) -> pd.DataFrame:
    """Every district's share of ``trust``'s admissions (largest first), with the district's name."""
    table = catchments.trust_share_by_area(trust, "lad_code")
    table.insert(1, "area_name", table["area_code"].map(lookup.name_of("lad")))
    return table


def _trust_figure(table: pd.DataFrame):
    shown = table[table["share"] >= 0.001]
    values = dict(zip(shown["area_code"], (shown["share"] * 100).round(1)))
    hover = {c: f"about {n:,.0f} children aged 0–17 attributed" for c, n in zip(shown["area_code"], shown["children"])}
    figure = maps.choropleth_figure("lad", values, "% of the district's admissions", hover=hover, outline="trust",
                                    colorscale="Viridis", reverse=True)
    # Zoom to the districts where the trust takes at least 5% of admissions (all shaded ones if none).
    core = set(table[table["share"] >= 0.05]["area_code"].tolist() or list(values))
    bounds = [b for code, b in maps.layer_bounds("lad").items() if code in core]
    if bounds:
        box = (min(b[0] for b in bounds), min(b[1] for b in bounds), max(b[2] for b in bounds),
               max(b[3] for b in bounds))
        view = maps.zoom_for_bounds(box)
        figure.update_layout(map={**view, "zoom": max(view["zoom"] - 1.0, 3.0)})  # some context around it
    return figure


def _trust_shares(params: dict, data: PageData) -> None:
    codes = trust_choices()
    trust = params["trust"] or (DEFAULT_TRUST if DEFAULT_TRUST in codes else codes[0])
    if trust not in codes:
        raise ValueError(f"parameter trust={trust!r}: not an acute trust or Welsh health board code "
                         f"(e.g. {', '.join(codes[:3])})")
    data.params["trust"] = trust
    names = lookup.name_of("trust")
    table = trust_shares(trust)
    served = table[table["share"] >= 0.005]
    main = table[table["share"] >= 0.5]
    data.sentences.append(
        f"**{names.get(trust, trust)}** takes at least 0.5% of the hospital admissions of {len(served)} "
        "local authority districts" + (f", more than half of them in {len(main)}" if len(main) else "")
        + (f"; its largest share is {table['share'].iat[0]:.0%}, of {table['area_name'].iat[0]}."
           if len(table) else "."))
    data.figures["trust_share_map"] = _trust_figure(table)
    data.tables["trust_shares"] = Table(
        served.reset_index(drop=True), title=f"{names.get(trust, trust)}: share of each district's admissions",
        downloadable=True,
        columns={"area_code": {"label": "District code"}, "area_name": {"label": "District"},
                 "share": {"label": "Share of admissions", "format": "percent"},
                 "children": {"label": "Children attributed", "format": "%.0f"}})
    data.notes.append(f"{catchments.CAPTION} Districts shaded where the trust takes at least 0.1%; outlines: where "
                      "each trust is the main provider. Children aged 0–17: ONS mid-2020 LSOA estimates.")


# -- the page -----------------------------------------------------------------------------------------

def build(con, params: dict, role: str) -> PageData:
    """The Boundaries page for ``params`` (already resolved by lib.views.resolve_params). Same for every
    role: public boundaries only. ``con`` is not read."""
    data = PageData(page=PAGE, role=role, params=dict(params), data_version="geodata", title=TITLE,
                    sentences=[], extra={"warnings": [], "info": []})
    if params["trust"] is not None and params["trust"] not in set(catchments.trust_codes()):
        raise ValueError(f"parameter trust={params['trust']!r}: not an acute trust or Welsh health board code "
                         f"(e.g. {', '.join(trust_choices()[:3])})")
    if params["against"] is not None and params["against"] == params["layer"]:
        raise ValueError(f"parameter against={params['against']!r}: choose a layer other than "
                         f"layer={params['layer']!r}")
    view = params["view"]
    if view == "overlay":
        _overlay(params, data)
    elif view == "trust_shares":
        _trust_shares(params, data)
    else:
        _misalignment(params, data)
    data.tables["vintages"] = Table(vintage_table(), title="Layer sources and vintages")
    data.notes.append(VINTAGE_CAPTION)
    return data
