"""Figures and one-sentence readings for the Across boundaries page (no Streamlit here).

Maps are offline by default (MapLibre, ``white-bg``) and reuse lib.geo.maps. Nothing relies on colour
alone: flows differ by line width and bend (A→B bends to the right of travel, so B→A is a separate arc
with an arrowhead at its own end); the timeline puts each agency on its own row and marks CSE-flagged
records with a different symbol; every chart has a table beside it on the page.
"""
from __future__ import annotations

import math
from functools import cache

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lib.geo import layers, lookup, maps
from lib.geo.layers import LAYERS, in_sentence
from lib.measures import journeys
from lib.measures.spans import SPAN_LAYERS, SPAN_TITLES

#: Okabe-Ito colours per agency (colour-blind safe; never the only cue).
AGENCY_COLOURS = {"Police": "#0072B2", "Children's social care": "#D55E00", "Health": "#009E73",
                  "Education": "#CC79A7", "Other": "#999999"}
#: Marker symbols by CSE flag (shape, not colour, carries it).
CSE_SYMBOLS = {"yes": "diamond", "no": "circle-open", "not recorded": "square-open"}
CSE_WORDS = {"yes": "CSE flagged", "no": "No CSE flag", "not recorded": "CSE flag not recorded"}
FLOW_COLOUR = "#0072B2"
#: Which drawn layer outlines a span geography (the registry's ``outline``: the layer itself, or the first drawn
#: layer it is named from, ``nhs`` -> ``icb``); a live view, so a layer registered later is outlined too.
SPAN_OUTLINE = layers.view(lambda layer: bool(layer.span_title), lambda layer: layers.outline(layer.key))


@cache
def centroids(layer: str) -> pd.DataFrame:
    """Postcode-weighted centre of every area of a layer (or ``nhs``): code, lon, lat.

    The mean of its LSOA centroids weighted by each LSOA's postcode count (the apportioning weight of
    lib.geo.lookup), so a centre sits where people live, not in empty moorland."""
    column = lookup.LAYER_COLUMN[layer]  # every registered layer, nhs included
    table = lookup.lsoa_table()[[column, "postcodes", "lon", "lat"]].dropna(subset=[column])
    weight = table["postcodes"].clip(lower=1).astype("float64")
    grouped = pd.DataFrame({"code": table[column].astype("str"), "w": weight, "wlon": table["lon"] * weight,
                            "wlat": table["lat"] * weight}).groupby("code").sum()
    return pd.DataFrame({"code": grouped.index.astype("str"), "lon": (grouped["wlon"] / grouped["w"]).to_numpy(),
                         "lat": (grouped["wlat"] / grouped["w"]).to_numpy()}).reset_index(drop=True)


def _outline(layer: str, width_scale: float = 1.0, colour: str | None = None) -> dict:
    spec = LAYERS[layer]
    line = {"width": spec.width * width_scale}
    if maps.DASH_PATTERN[spec.dash]:
        line["dash"] = maps.DASH_PATTERN[spec.dash]
    return {"sourcetype": "geojson", "source": maps.layer_geojson(layer), "type": "line",
            "color": colour or spec.colour, "line": line, "below": "traces"}


def _land() -> dict:
    return {"sourcetype": "geojson", "source": maps.layer_geojson("pfa"), "type": "fill",
            "color": maps.LAND_FILL, "below": "traces"}


def _fit(bounds: tuple[float, float, float, float], height: int, max_zoom: float) -> dict:
    """Centre and zoom showing the bounds in a page-wide map (about 650 px wide in a centred layout)."""
    view = maps.zoom_for_bounds(bounds, width_px=650, height_px=height)
    view["zoom"] = round(min(view["zoom"], max_zoom), 2)
    return view


def _pct(value: float) -> str:
    return "—" if pd.isna(value) else f"{100 * value:.0f}%"


# -- spans -------------------------------------------------------------------------------------------

def spans_map(table: pd.DataFrame, layer: str, span: str = "any", style: str = maps.OFFLINE_STYLE,
              height: int = 560, hatch=()) -> go.Figure:
    """Choropleth of the share (%) of resident children whose encounters span 2+ areas of ``span``;
    ``hatch``: codes of areas hatched as small (lib.geo.maps.hatch_trace, with its legend entry)."""
    shown = table[table["children"] > 0]
    share = f"share_{span}"
    values = dict(zip(shown["area_code"], (100 * shown[share]).round(1)))
    hover = {row.area_code: f"{getattr(row, f'spans_{span}')} of {row.children} resident children"
             for row in shown.itertuples(index=False)}
    outline = SPAN_OUTLINE.get(span)
    title = f"% spanning 2+ {SPAN_TITLES[span] if span != 'any' else 'areas'}"
    fig = maps.choropleth_figure(layer, values, title, hover=hover, style=style, colorscale="Cividis",
                                 reverse=True, outline=outline if outline and outline != layer else None,
                                 height=height)
    return _hatched(fig, layer, hatch)


def _hatched(fig: go.Figure, layer: str, codes) -> go.Figure:
    """``fig`` with the areas ``codes`` hatched on top (none: unchanged)."""
    codes = list(codes)
    if codes:
        fig.add_trace(maps.hatch_trace(layer, codes))
    return fig


def describe_spans(table: pd.DataFrame, layer: str, span: str = "any", min_children: int = 20) -> str:
    """One sentence: the national share and the area with the highest share (among areas with enough children)."""
    children = int(table["children"].sum())
    spanning = int(table[f"spans_{span}"].sum())
    if not children:
        return "No linked children are placed in these areas yet."
    what = "more than one area of any of these geographies" if span == "any" else \
        f"more than one {SPAN_LAYERS[span]}"
    text = (f"{spanning:,} of {children:,} resident children ({spanning / children:.0%}) were encountered "
            f"in {what}")
    big = table[table["children"] >= min_children]
    if len(big):
        top = big.sort_values([f"share_{span}", "children"], ascending=False).iloc[0]
        text += (f"; the highest share among {in_sentence(LAYERS[layer].title)} with at least {min_children} "
                 f"children is {top['area_name']} ({_pct(top[f'share_{span}'])} of {int(top['children'])}).")
    else:
        text += "."
    return text


# -- flows -------------------------------------------------------------------------------------------

def _arc(lon0: float, lat0: float, lon1: float, lat1: float, bend: float = 0.18, points: int = 24
         ) -> tuple[list[float], list[float]]:
    """A curve from 0 to 1 that bends to the right of travel, with an arrowhead at 1."""
    k = math.cos(math.radians((lat0 + lat1) / 2))
    x0, y0, x1, y1 = lon0 * k, lat0, lon1 * k, lat1
    dx, dy = x1 - x0, y1 - y0
    length = math.hypot(dx, dy) or 1e-9
    cx, cy = (x0 + x1) / 2 + bend * dy, (y0 + y1) / 2 - bend * dx  # right-hand normal
    t = np.linspace(0, 1, points)
    xs = (1 - t) ** 2 * x0 + 2 * (1 - t) * t * cx + t ** 2 * x1
    ys = (1 - t) ** 2 * y0 + 2 * (1 - t) * t * cy + t ** 2 * y1
    # arrowhead: two short strokes back from the end, ±28° from the final direction
    ex, ey = xs[-1] - xs[-2], ys[-1] - ys[-2]
    angle = math.atan2(ey, ex)
    size = min(0.22 * length, 0.25)
    head_x, head_y = [], []
    for turn in (math.radians(152), -math.radians(152)):
        head_x += [x1, x1 + size * math.cos(angle + turn), None]
        head_y += [y1, y1 + size * math.sin(angle + turn), None]
    lons = [x / k for x in xs] + [None] + [x / k if x is not None else None for x in head_x]
    lats = list(ys) + [None] + head_y
    return lons, lats


def flows_map(flow_table: pd.DataFrame, layer: str, style: str = maps.OFFLINE_STYLE, height: int = 560
              ) -> go.Figure:
    """Top flows as arcs between postcode-weighted area centres; width by children, arrowhead at the
    encounter area."""
    centre = centroids(layer).set_index("code")
    fig = go.Figure()
    top = int(flow_table["children"].max()) if len(flow_table) else 1
    view_points = []
    for row in flow_table.itertuples(index=False):
        if row.from_code not in centre.index or row.to_code not in centre.index:
            continue
        a, b = centre.loc[row.from_code], centre.loc[row.to_code]
        lons, lats = _arc(a["lon"], a["lat"], b["lon"], b["lat"])
        view_points += [(a["lon"], a["lat"]), (b["lon"], b["lat"])]
        label = (f"<b>{row.from_name} → {row.to_name}</b><br>{row.children} children resident in "
                 f"{row.from_name}, {row.encounters} encounters in {row.to_name}<br>Other way: "
                 f"{row.reverse_children} children, {row.reverse_encounters} encounters")
        fig.add_trace(go.Scattermap(
            lon=lons, lat=lats, mode="lines", line={"width": 1.5 + 8.5 * row.children / top, "color": FLOW_COLOUR},
            opacity=0.8, name=f"{row.from_name} → {row.to_name}", text=[label] * len(lons),
            hovertemplate="%{text}<extra></extra>", showlegend=False))
    codes = sorted(set(flow_table["from_code"]) | set(flow_table["to_code"]))
    codes = [c for c in codes if c in centre.index]
    names = dict(zip(flow_table["from_code"], flow_table["from_name"])) | dict(
        zip(flow_table["to_code"], flow_table["to_name"]))
    if codes:
        fig.add_trace(go.Scattermap(
            lon=centre.loc[codes, "lon"], lat=centre.loc[codes, "lat"], mode="markers",
            marker={"size": 7, "color": "#000000"}, text=[names.get(c, c) for c in codes],
            hovertemplate="%{text}<extra></extra>", name="Area centre (postcode-weighted)", showlegend=True))
        fig.add_trace(go.Scattermap(lon=[None], lat=[None], mode="lines", line={"width": 6, "color": FLOW_COLOUR},
                                    name=f"Flow: wider = more children (widest {top})", showlegend=True))
    view = None
    if view_points:
        lon, lat = zip(*view_points)
        view = _fit((min(lon) - 0.3, min(lat) - 0.2, max(lon) + 0.3, max(lat) + 0.2), height, 9.5)
    layout = maps.base_layout(style, view, height)
    land = [_land()] if style == maps.OFFLINE_STYLE else []
    layout["map"]["layers"] = land + [_outline(layer, 0.5, colour="#8c8c8c")]
    fig.update_layout(**layout)
    return fig


def describe_flows(flow_table: pd.DataFrame) -> str:
    if flow_table.empty:
        return "No child was encountered outside their home area."
    top = flow_table.iloc[0]
    text = (f"The largest flow is {top['flow']}: {top['children']} children resident in {top['from_name']} "
            f"had {top['encounters']} encounters in {top['to_name']}")
    if top["reverse_children"]:
        text += f", while {top['reverse_children']} went the other way."
    else:
        text += "; none went the other way."
    return text


# -- missed without linkage --------------------------------------------------------------------------

def missed_map(table: pd.DataFrame, layer: str, style: str = maps.OFFLINE_STYLE, height: int = 560,
               hatch=()) -> go.Figure:
    """Choropleth of the number of resident children only probabilistic linkage joined across agencies;
    ``hatch``: codes of areas hatched as small."""
    shown = table[table["multi_agency"] > 0]
    values = dict(zip(shown["area_code"], shown["missed"].astype(float)))
    hover = {row.area_code: f"{row.missed} of {row.multi_agency} multi-agency children "
                            f"({_pct(row.share_missed)}) share no identifier across agencies"
             for row in shown.itertuples(index=False)}
    fig = maps.choropleth_figure(layer, values, "Children missed without linkage", hover=hover, style=style,
                                 colorscale="Cividis", reverse=True, height=height)
    return _hatched(fig, layer, hatch)


def describe_missed(table: pd.DataFrame) -> str:
    multi, missed = int(table["multi_agency"].sum()), int(table["missed"].sum())
    if not multi:
        return "No resident child is known to more than one agency."
    text = (f"{missed:,} of {multi:,} children known to two or more agencies ({missed / multi:.0%}) share no "
            "NHS number, nor the same name and date of birth, across agencies: without probabilistic linkage "
            "no agency would know the others had seen them")
    top = table.sort_values(["missed", "multi_agency"], ascending=False).iloc[0]
    return text + (f"; most are in {top['area_name']} ({int(top['missed'])})." if top["missed"] else ".")


# -- one child ---------------------------------------------------------------------------------------

def _hover(records: pd.DataFrame) -> list[str]:
    return [f"<b>{r.encounter_date:%d %b %Y}</b> — {r.agency} ({r.agency_name})<br>{r.encounter_type}"
            f"<br>Where: {r.enc_utla_name}, {r.enc_pfa_name}<br>CSE flag: {r.cse}<br>{r.how_linked}"
            for r in records.itertuples(index=False)]


def _with_cse(records: pd.DataFrame) -> pd.DataFrame:
    return records.assign(cse=records["cse_flag"].map({True: "yes", False: "no"}).fillna("not recorded")
                          .astype("str"))


def _area_labels(part: pd.DataFrame) -> list[str]:
    """The area (children's services authority) of each encounter in one agency's row, written where it
    changes from that agency's previous encounter (so a run of encounters in one place is labelled once)."""
    names = part["enc_utla_name"].fillna("area not placed").astype(str).tolist()
    return [name if i == 0 or name != names[i - 1] else "" for i, name in enumerate(names)]


def _label_positions(labels: list[str]) -> list[str]:
    """Labels alternately above and below their markers, so two close in time do not overprint."""
    positions, shown = [], 0
    for label in labels:
        positions.append("top center" if shown % 2 == 0 else "bottom center")
        shown += bool(label)
    return positions


def timeline_figure(records: pd.DataFrame, height: int | None = None) -> go.Figure:
    """Encounters by date (x) and agency (y), each labelled with its area where the area changes; CSE-flagged
    records are filled diamonds."""
    records = _with_cse(records).sort_values("encounter_date", kind="stable")
    order = journeys.agency_order(records)
    fig = go.Figure()
    for agency in order:
        part = records[records["agency"] == agency]
        colour = AGENCY_COLOURS.get(agency, "#444444")
        fig.add_trace(go.Scatter(
            x=part["encounter_date"], y=part["agency"], mode="markers+text", name=agency,
            texttemplate=_area_labels(part), textposition=_label_positions(_area_labels(part)),
            textfont={"size": 11, "color": "#333333"}, cliponaxis=False,
            marker={"color": colour, "size": 13, "symbol": [CSE_SYMBOLS[c] for c in part["cse"]],
                    "line": {"width": 2, "color": colour}},
            text=_hover(part), hovertemplate="%{text}<extra></extra>", showlegend=False))
    for cse, symbol in CSE_SYMBOLS.items():
        if (records["cse"] == cse).any():
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=CSE_WORDS[cse],
                                     marker={"symbol": symbol, "size": 12, "color": "#333333",
                                             "line": {"width": 2, "color": "#333333"}}, showlegend=True))
    fig.update_layout(height=height or 160 + 70 * len(order), margin={"l": 10, "r": 40, "t": 30, "b": 10},
                      yaxis={"categoryorder": "array", "categoryarray": order[::-1], "title": None},
                      xaxis={"title": None}, legend={"orientation": "h", "y": -0.25, "x": 0},
                      plot_bgcolor="#ffffff", hovermode="closest")
    fig.update_xaxes(showgrid=True, gridcolor="#e5e5e5")
    fig.update_yaxes(showgrid=True, gridcolor="#e5e5e5")
    return fig


def journey_map(records: pd.DataFrame, style: str = maps.OFFLINE_STYLE, height: int = 480) -> go.Figure:
    """Where the child's encounters happened (LSOA centres), by agency, joined in date order by a grey path.

    Agencies are drawn as concentric dots (the first agency largest, underneath), so a place several
    agencies saw shows a ring for each rather than only the last one drawn."""
    records = _with_cse(records).dropna(subset=["lon", "lat"])
    fig = go.Figure()
    if len(records) > 1:
        fig.add_trace(go.Scattermap(lon=records["lon"], lat=records["lat"], mode="lines",
                                    line={"width": 1.5, "color": "#777777"}, hoverinfo="skip",
                                    name="Path in date order", showlegend=True))
    order = journeys.agency_order(records)
    for rank, agency in enumerate(order):
        part = records[records["agency"] == agency]
        grouped = part.groupby(["lon", "lat"], sort=False)
        hover = grouped.apply(lambda g: "<br>".join(_hover(g)), include_groups=False)
        sizes = grouped.size()
        # concentric: earlier agencies drawn larger underneath, so several agencies in one place stay visible
        base = 8 + 6 * (len(order) - 1 - rank)
        fig.add_trace(go.Scattermap(
            lon=[k[0] for k in hover.index], lat=[k[1] for k in hover.index], mode="markers",
            marker={"size": (base + 2 * np.sqrt(sizes.to_numpy() - 1)).tolist(),
                    "color": AGENCY_COLOURS.get(agency, "#444444")},
            text=hover.tolist(), hovertemplate="%{text}<extra></extra>", name=agency))
    view = None
    if len(records):
        view = _fit((records["lon"].min() - 0.15, records["lat"].min() - 0.1, records["lon"].max() + 0.15,
                     records["lat"].max() + 0.1), height, 10.5)
    layout = maps.base_layout(style, view, height)
    layout["map"]["layers"] = ([_land()] if style == maps.OFFLINE_STYLE else []) + [
        _outline(key, layer.journey_outline) for key, layer in layers.JOURNEY_OUTLINES.items()]
    fig.update_layout(**layout)
    return fig
