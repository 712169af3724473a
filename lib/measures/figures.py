"""Plotly figures for the Divergence page (no Streamlit): dumbbell, log-ratio map, funnel, trend, waterfall.

Colours: Okabe-Ito for agencies (and marker shapes differ, so colour is never the only cue); the map uses
the diverging, colour-blind-safe ``PuOr`` scale centred on 0 (no difference).
"""
from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lib.geo import agencies, layers, maps
from lib.measures import convert, funnel
from lib.measures.divergence import agency_title

COLOUR = {key: agency.colour for key, agency in agencies.AGENCIES.items()}
SYMBOL = {key: agency.symbol for key, agency in agencies.AGENCIES.items()}
LIMIT_STYLE = {"95": {"dash": "dash", "color": "#555555"}, "998": {"dash": "dot", "color": "#000000"}}


@cache
def layer_geojson(layer: str) -> dict:
    """Display GeoJSON of a measure layer (``nhs`` = ICB features plus Welsh health board features)."""
    parts = layers.get(convert.layer_key(layer)).name_layers
    if len(parts) == 1:
        return maps.layer_geojson(parts[0])
    features = [f for part in parts for f in maps.layer_geojson(part)["features"]]
    return {"type": "FeatureCollection", "features": features}


def dumbbell(table: pd.DataFrame, a: str, b: str, noun: str, top: int = 25) -> go.Figure:
    """Each agency's count side by side for the ``top`` areas with the largest totals, ordered by log ratio."""
    shown = table[table["total"] > 0].nlargest(top, "total").sort_values("log_ratio")
    names = shown["area_name"].tolist()
    fig = go.Figure()
    xs, ys = [], []
    for name, x0, x1 in zip(names, shown["count_a"], shown["count_b"]):
        xs += [x0, x1, None]
        ys += [name, name, None]
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"color": "#bbbbbb", "width": 3}, hoverinfo="skip",
                             showlegend=False))
    for agency, column in ((a, "count_a"), (b, "count_b")):
        fig.add_trace(go.Scatter(x=shown[column], y=names, mode="markers", name=agency_title(agency),
                                 marker={"color": COLOUR.get(agency, "#444"), "symbol": SYMBOL.get(agency, "circle"),
                                         "size": 11, "line": {"width": 1, "color": "white"}},
                                 hovertemplate="%{y}: %{x:,.0f} " + noun + f" ({agency_title(agency)})<extra></extra>"))
    fig.update_layout(height=max(320, 22 * len(names) + 90), margin={"l": 10, "r": 10, "t": 30, "b": 40},
                      xaxis_title=f"{noun[:1].upper()}{noun[1:]}", yaxis={"automargin": True},
                      legend={"orientation": "h", "y": 1.02, "x": 0, "yanchor": "bottom"},
                      plot_bgcolor="white", xaxis={"gridcolor": "#eeeeee", "rangemode": "tozero"})
    return fig


#: Fewest records (both agencies together) for an area to be coloured on the ratio map. Below it one record more or
#: less swings the ratio several-fold (10 against 0 read "×21"); such areas are drawn grey and say why.
RATIO_MIN_TOTAL = 20


def _ratio_bound(log_ratios: pd.Series) -> float:
    """Colour scale limit: the 95th percentile of |log ratio| (not the most extreme area), at least ×1.65."""
    if log_ratios.empty:
        return 1.0
    return float(max(np.nanquantile(np.abs(log_ratios), 0.95), 0.5))


def ratio_map(table: pd.DataFrame, layer: str, a: str, b: str, height: int = 560) -> go.Figure:
    """Areas coloured by log(A / B) on a diverging scale centred on 0. Areas with fewer than RATIO_MIN_TOTAL
    records are grey ("too few to compare"), areas with none are blank; the scale is set by the 95th percentile."""
    layer = convert.layer_key(layer)
    geojson = layer_geojson(layer)
    ids = {f["id"] for f in geojson["features"]}
    counted = table[(table["total"] > 0) & table["area_code"].isin(ids)].dropna(subset=["log_ratio"])
    shown = counted[counted["total"] >= RATIO_MIN_TOTAL]
    few = counted[counted["total"] < RATIO_MIN_TOTAL]
    bound = _ratio_bound(shown["log_ratio"])
    ratio = np.exp(shown["log_ratio"])
    text = [f"{agency_title(a)} {ca:,.0f} · {agency_title(b)} {cb:,.0f}<br>ratio {r:.2f} · {v}"
            for ca, cb, r, v in zip(shown["count_a"], shown["count_b"], ratio, shown["verdict"])]
    tick = [-bound, -bound / 2, 0, bound / 2, bound]
    trace = go.Choroplethmap(
        geojson=geojson, locations=shown["area_code"], z=shown["log_ratio"].clip(-bound, bound), zmid=0,
        zmin=-bound, zmax=bound,
        colorscale="PuOr", reversescale=False, marker={"line": {"width": 0.6, "color": "#ffffff"}, "opacity": 0.9},
        customdata=np.stack([shown["area_name"], shown["area_code"]], axis=-1) if len(shown) else None, text=text,
        hovertemplate="<b>%{customdata[0]}</b> (%{customdata[1]})<br>%{text}<extra></extra>",
        name="ratio", showlegend=False,
        colorbar={"title": {"text": f"{agency_title(a)} ÷ {agency_title(b)}", "side": "right"}, "thickness": 14,
                  "tickvals": tick, "ticktext": [("≤" if t == -bound else "≥" if t == bound else "") +
                                                 f"×{np.exp(t):.2g}" for t in tick]})
    traces = [trace]
    if len(few):
        few_text = [f"{agency_title(a)} {ca:,.0f} · {agency_title(b)} {cb:,.0f}<br>"
                    f"fewer than {RATIO_MIN_TOTAL} records: too few to compare"
                    for ca, cb in zip(few["count_a"], few["count_b"])]
        traces.append(go.Choroplethmap(
            geojson=geojson, locations=few["area_code"], z=[0] * len(few), showscale=False,
            colorscale=[[0, "#cccccc"], [1, "#cccccc"]], marker={"line": {"width": 0.6, "color": "#ffffff"},
                                                                 "opacity": 0.9},
            customdata=np.stack([few["area_name"], few["area_code"]], axis=-1), text=few_text,
            hovertemplate="<b>%{customdata[0]}</b> (%{customdata[1]})<br>%{text}<extra></extra>",
            name=f"grey: fewer than {RATIO_MIN_TOTAL} records", showlegend=True))
    fig = go.Figure(traces)
    layout = maps.base_layout(maps.OFFLINE_STYLE, None, height)
    layout["map"]["layers"] = [{"sourcetype": "geojson", "source": maps.layer_geojson("pfa"), "type": "fill",
                                "color": maps.LAND_FILL, "below": "traces"}]
    fig.update_layout(**layout)
    fig.update_layout(legend={"orientation": "h", "y": 0.01, "x": 0.01, "bgcolor": "rgba(255,255,255,0.8)"})
    return fig


def log_ticks(largest: float) -> list[float]:
    """1-2-5 tick values for a log axis up to ``largest`` (Plotly's own log ticks read "8 9 1 2 3 … 10 2 3")."""
    ticks, decade = [], 1.0
    while decade <= max(largest, 1.0) * 10:
        ticks.extend(decade * m for m in (1, 2, 5))
        decade *= 10
    return [t for t in ticks if t <= max(largest, 1.0) * 1.5] or [1.0]


def funnel_figure(table: pd.DataFrame, a: str, b: str, label_outliers: int = 8) -> go.Figure:
    """Each area's A share against its total, with 95% and 99.8% limits around the national share."""
    counted = table[table["total"] > 0]
    fig = go.Figure()
    if counted.empty:
        return fig
    p0 = float(counted["national_share"].iat[0])
    curve = funnel.curve(p0, counted["total"].max())
    for key in ("998", "95"):
        for side in ("lower", "upper"):
            fig.add_trace(go.Scatter(x=curve["n"], y=curve[f"{side}_{key}"], mode="lines",
                                     line={**LIMIT_STYLE[key], "width": 1.4}, name=f"{funnel.LEVEL_TITLES[key]} limits",
                                     legendgroup=key, showlegend=side == "upper", hoverinfo="skip"))
    # the national line's label sits at the right end, clear of the y-axis title
    fig.add_hline(y=p0, line={"color": "#888888", "width": 1}, annotation_text=f"national {p0:.0%}",
                  annotation_position="top right")
    inside = counted[~counted["outside_95"]]
    fig.add_trace(go.Scatter(x=inside["total"], y=inside["share_a"], mode="markers", name="within 95% limits",
                             marker={"color": "#999999", "size": 7, "symbol": "circle"},
                             text=inside["area_name"],
                             hovertemplate="%{text}<br>total %{x:,.0f}, share %{y:.0%}<extra></extra>"))
    # the largest outliers are named, alternately above and below their marker so neighbours do not overlap
    named = set(counted[counted["outside_95"]].nlargest(label_outliers, "total")["area_code"])
    positions = iter(["top center", "bottom center"] * label_outliers)
    for key, outer, style in (("95", counted[counted["outside_95"] & ~counted["outside_998"]],
                               {"color": "#E69F00", "symbol": "square"}),
                              ("998", counted[counted["outside_998"]], {"color": "#D55E00", "symbol": "diamond"})):
        outer = outer.sort_values("total", ascending=False)
        labels = [name if code in named else "" for code, name in zip(outer["area_code"], outer["area_name"])]
        fig.add_trace(go.Scatter(
            x=outer["total"], y=outer["share_a"], mode="markers+text",
            name="outside 95% limits" if key == "95" else "outside 99.8% limits",
            marker={**style, "size": 10, "line": {"width": 1, "color": "#333333"}},
            text=labels, textposition=[next(positions) if label else "top center" for label in labels],
            textfont={"size": 10}, customdata=outer[["area_name", "verdict"]].to_numpy(),
            hovertemplate="%{customdata[0]}<br>total %{x:,.0f}, share %{y:.0%}<br>%{customdata[1]}<extra></extra>"))
    ticks = log_ticks(float(counted["total"].max()))
    fig.update_layout(height=480, margin={"l": 70, "r": 10, "t": 30, "b": 50}, plot_bgcolor="white",
                      xaxis={"title": f"{agency_title(a)} + {agency_title(b)} (log scale)", "type": "log",
                             "tickvals": ticks, "ticktext": [f"{t:,.0f}" for t in ticks], "gridcolor": "#eeeeee"},
                      yaxis={"title": f"{agency_title(a)} share", "tickformat": ".0%", "range": [-0.02, 1.05],
                             "gridcolor": "#eeeeee", "automargin": True},
                      legend={"orientation": "h", "y": 1.02, "x": 0, "yanchor": "bottom"})
    return fig


def trend_figure(frame: pd.DataFrame, a: str, b: str, noun: str) -> go.Figure:
    fig = go.Figure()
    for agency, column in ((a, "count_a"), (b, "count_b")):
        fig.add_trace(go.Scatter(x=frame["period"], y=frame[column], mode="lines+markers", name=agency_title(agency),
                                 line={"color": COLOUR.get(agency, "#444"), "dash": "solid" if agency == a else "dash"},
                                 marker={"symbol": SYMBOL.get(agency, "circle"), "size": 9}))
    fig.update_layout(height=360, margin={"l": 10, "r": 10, "t": 30, "b": 40}, plot_bgcolor="white",
                      yaxis={"title": f"{noun[:1].upper()}{noun[1:]}", "rangemode": "tozero", "gridcolor": "#eeeeee"},
                      xaxis={"title": "Period (financial year, quarter)"},
                      legend={"orientation": "h", "y": 1.02, "x": 0, "yanchor": "bottom"})
    return fig


def waterfall_figure(result: dict, a: str, b: str) -> go.Figure:
    comp = result["components"]
    labels = [*comp["component"], "Gap on own geographies"]
    values = [*comp["value"], result["total"]]
    fig = go.Figure(go.Waterfall(
        x=labels, y=values, measure=["relative"] * len(comp) + ["total"], textposition="outside",
        text=[f"{v:+,.1f}" for v in values],
        increasing={"marker": {"color": COLOUR.get(a, "#0072B2")}},
        decreasing={"marker": {"color": COLOUR.get(b, "#D55E00")}},
        totals={"marker": {"color": "#555555"}}, connector={"line": {"color": "#999999", "dash": "dot"}}))
    fig.update_layout(height=380, margin={"l": 10, "r": 10, "t": 30, "b": 40}, plot_bgcolor="white",
                      yaxis={"title": f"{agency_title(a)} − {agency_title(b)} (CSE records)", "gridcolor": "#eeeeee",
                             "zeroline": True, "zerolinecolor": "#333333"}, showlegend=False)
    return fig
