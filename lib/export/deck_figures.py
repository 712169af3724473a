"""The board pack's charts, drawn from the tables of the view builders' PageData (lib.views): no number is
computed here, only laid out for a slide. Each chart highlights the chosen area (the focus) and is sized
for its place on the slide (``SIZES``, pixels at the slide's aspect), with margins that keep every label
inside the image.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lib.measures import convert, figures
from lib.measures import divergence as dv

FOCUS = "#000000"
#: (width, height) in pixels of each chart, the aspect of its box on the slide (lib.export.deck_slides).
SIZES = {"map": (760, 780), "divergence": (1240, 640), "funnel": (1240, 640), "trend": (1240, 600),
         "why": (1240, 600), "spans": (1240, 640), "missed": (1240, 640)}
FONT = 18  # pixels at scale 1: about 12.5 points on the slide


def divergence_frame(export: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """The divergence view's ``div_export`` table with the column names the figure functions read
    (count_a, count_b) and the funnel flags read off its verdict (``above 95%``, ``below 99.8%`` ...)."""
    frame = export.rename(columns={a: "count_a", b: "count_b"}).copy()
    for column in ("count_a", "count_b", "total", "share_a", "national_share", "log_ratio"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    verdict = frame["verdict"].astype(str)
    frame["outside_998"] = verdict.str.endswith("99.8%")
    frame["outside_95"] = frame["outside_998"] | verdict.str.endswith(" 95%")
    return frame


def _style(fig: go.Figure, *, left: int = 20, right: int = 30, top: int = 60, bottom: int = 70) -> go.Figure:
    fig.update_layout(font={"size": FONT}, height=None, paper_bgcolor="white",
                      margin={"l": left, "r": right, "t": top, "b": bottom})
    return fig


def deck_map(frame: pd.DataFrame, layer: str, a: str, b: str, focus: str | None = None,
             focus_name: str = "") -> go.Figure:
    """The divergence-ratio map as plain SVG shapes (the page's MapLibre map takes 3-4x as long to draw in
    headless Chromium). Same PuOr scale centred on ×1 and the same rule as the page (areas with fewer than
    ``figures.RATIO_MIN_TOTAL`` records grey); areas not shown for the role or with no cases are hatched.
    The focus area is outlined in black and named. Longitude is scaled by cos(52.5°)."""
    import shapely
    from plotly.colors import sample_colorscale

    geojson = figures.layer_geojson(convert.layer_key(layer))
    counted = frame[frame["total"] > 0].dropna(subset=["log_ratio"])
    ratio = counted[counted["total"] >= figures.RATIO_MIN_TOTAL].set_index("area_code")["log_ratio"]
    few = set(counted.loc[counted["total"] < figures.RATIO_MIN_TOTAL, "area_code"])
    bound = float(max(np.nanquantile(np.abs(ratio), 0.95), 0.5)) if len(ratio) else 1.0
    k = float(np.cos(np.radians(52.5)))
    features = sorted(geojson["features"], key=lambda f: -shapely.geometry.shape(f["geometry"]).area)
    fig = go.Figure()
    outline, centre = None, None
    for feature in features:
        geom = feature["geometry"]
        polygons = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
        xs, ys = [], []
        for polygon in polygons:
            for ring in polygon:
                xs += [round(x * k, 4) for x, _ in ring] + [None]
                ys += [round(y, 4) for _, y in ring] + [None]
        z = ratio.get(feature["id"])
        if z is not None:
            style = {"fillcolor": sample_colorscale("PuOr", [(float(np.clip(z, -bound, bound)) + bound)
                                                             / (2 * bound)])[0]}
        elif feature["id"] in few:
            style = {"fillcolor": "#cccccc"}
        else:
            style = {"fillcolor": "#ffffff", "fillpattern": {"shape": "/", "fgcolor": "#b0b0b0", "size": 6}}
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", fill="toself", line={"color": "#ffffff", "width": 0.5},
                                 hoverinfo="skip", showlegend=False, **style))
        if feature["id"] == focus:
            outline = (xs, ys)
            point = shapely.geometry.shape(geom).representative_point()
            centre = (point.x * k, point.y)
    if outline:
        fig.add_trace(go.Scatter(x=outline[0], y=outline[1], mode="lines", line={"color": FOCUS, "width": 3},
                                 name=f"{focus_name} (chosen area)", hoverinfo="skip", showlegend=True))
        fig.add_annotation(x=centre[0], y=centre[1], text=f"<b>{focus_name}</b>", showarrow=True, arrowhead=0,
                           ax=60, ay=-40, bgcolor="rgba(255,255,255,0.85)", font={"size": FONT})
    tick = [-bound, -bound / 2, 0, bound / 2, bound]
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip", marker={
        "colorscale": "PuOr", "cmin": -bound, "cmax": bound, "color": [0], "showscale": True,
        "colorbar": {"title": {"text": f"{dv.agency_title(a)} ÷ {dv.agency_title(b)}", "side": "right"},
                     "thickness": 14, "tickvals": tick,
                     "ticktext": [("≤" if t == -bound else "≥" if t == bound else "") + f"×{np.exp(t):.2g}"
                                  for t in tick]}}))
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=f"grey: fewer than {figures.RATIO_MIN_TOTAL} "
                             "records", marker={"color": "#cccccc", "symbol": "square", "size": 12}))
    fig.update_layout(plot_bgcolor="white", xaxis={"visible": False},
                      yaxis={"visible": False, "scaleanchor": "x", "scaleratio": 1},
                      legend={"x": 0, "y": 1, "bgcolor": "rgba(255,255,255,0.85)", "font": {"size": FONT - 3}})
    return _style(fig, left=0, right=0, top=10, bottom=0)


def dumbbell(frame: pd.DataFrame, a: str, b: str, noun: str, focus: str | None, top: int = 20) -> go.Figure:
    """The page's dumbbell for the ``top`` areas with the most cases, always with the focus area (in bold,
    marked ▶) even when it is not among them."""
    counted = frame[frame["total"] > 0]
    rows = counted.nlargest(top - 1, "total")
    if focus is not None and focus in set(counted["area_code"]) and focus not in set(rows["area_code"]):
        rows = pd.concat([rows, counted[counted["area_code"] == focus]])
    else:
        rows = counted.nlargest(top, "total")
    fig = figures.dumbbell(rows, a, b, noun, top=len(rows))
    shown = rows.sort_values("log_ratio")
    names = shown["area_name"].tolist()
    focus_names = set(shown.loc[shown["area_code"] == focus, "area_name"])
    fig.update_yaxes(tickmode="array", tickvals=names,
                     ticktext=[f"<b>▶ {n}</b>" if n in focus_names else n for n in names])
    for name in focus_names:
        fig.add_hrect(y0=names.index(name) - 0.5, y1=names.index(name) + 0.5, fillcolor="#fff3b0", line_width=0,
                      layer="below")
    fig.update_layout(legend={"orientation": "h", "y": 1.0, "x": 0, "yanchor": "bottom"})
    return _style(fig, top=50, bottom=70)


def funnel(frame: pd.DataFrame, a: str, b: str, focus: str | None, focus_name: str) -> go.Figure:
    """The page's funnel plot with the focus area drawn as a large black ring and named, the y-axis title
    clear of its tick labels and the national label inside the plot."""
    fig = figures.funnel_figure(frame, a, b, label_outliers=6)
    row = frame[(frame["area_code"] == focus) & (frame["total"] > 0)].dropna(subset=["share_a"])
    if not row.empty:
        fig.add_trace(go.Scatter(x=row["total"], y=row["share_a"], mode="markers+text", name=f"{focus_name} "
                                 "(chosen area)", text=[f"<b>{focus_name}</b>"], textposition="middle right",
                                 textfont={"size": FONT + 1},
                                 marker={"symbol": "circle-open", "size": 22, "color": FOCUS,
                                         "line": {"width": 3, "color": FOCUS}}))
    for annotation in fig.layout.annotations:  # "national 42%": inside the plot, right, above its line
        annotation.update(xanchor="right", x=1, xref="paper", yanchor="bottom", font={"size": FONT - 1})
    fig.update_layout(legend={"orientation": "h", "y": 1.0, "x": 0, "yanchor": "bottom", "font": {"size": FONT - 2}},
                      yaxis={"title": {"standoff": 12}, "automargin": True})
    return _style(fig, left=30, top=80, bottom=70)


def trend(table: pd.DataFrame, a: str, b: str, noun: str) -> go.Figure:
    """The divergence view's trend table (by financial year) as the page draws it."""
    fig = figures.trend_figure(table, a, b, noun)
    fig.update_traces(cliponaxis=False)  # a count of 0 sits on the axis, whole
    fig.update_layout(xaxis={"title": "Financial year", "type": "category"})
    return _style(fig, left=30, top=50)


def why(components: pd.DataFrame, a: str, b: str, noun: str, headline_basis: str) -> go.Figure:
    """Why the agencies differ, on the basis of the headline gap: the recording and identity effects add up to
    the gap between records placed where the encounters happened (the basis of every other figure in the
    pack: ``headline_basis``); the boundary effect then takes it to the gap on each agency's own geography.
    Values are the divergence view's ``div_waterfall_table``; Plotly adds them up."""
    value = dict(zip(components["component"], pd.to_numeric(components["value"])))
    labels = ["Recording effect", "Identity effect", headline_basis, "Boundary effect", "Gap on own geographies"]
    values = [value["Recording effect"], value["Identity effect"], 0, value["Boundary effect"], 0]
    fig = go.Figure(go.Waterfall(
        x=labels, y=values, measure=["relative", "relative", "total", "relative", "total"],
        textposition="outside", textfont={"size": FONT},
        texttemplate=["%{delta:+,.1f}", "%{delta:+,.1f}", "%{final:+,.1f}", "%{delta:+,.1f}", "%{final:+,.1f}"],
        increasing={"marker": {"color": figures.COLOUR.get(a, "#0072B2")}},
        decreasing={"marker": {"color": figures.COLOUR.get(b, "#D55E00")}},
        totals={"marker": {"color": "#555555"}}, connector={"line": {"color": "#999999", "dash": "dot"}}))
    spread = max(abs(v) for v in values) or 1.0
    fig.update_layout(plot_bgcolor="white", showlegend=False,
                      yaxis={"title": f"{dv.agency_title(a)} − {dv.agency_title(b)} ({noun})", "gridcolor": "#eeeeee",
                             "zeroline": True, "zerolinecolor": "#333333", "automargin": True,
                             "range": [min(0, *np.cumsum(values)) - 0.35 * spread,
                                       max(0, *np.cumsum(values)) + 0.35 * spread]},
                      xaxis={"tickfont": {"size": FONT - 1}})
    return _style(fig, left=30, top=30, bottom=60)


def _share(value) -> float:
    """A share as the Across view writes it: a number, or for aggregate-only roles text ("12%", "c")."""
    if isinstance(value, str):
        return float(value.rstrip("%")) / 100 if value.rstrip("%").replace(".", "", 1).isdigit() else np.nan
    return float(value) if value is not None else np.nan


def ranked_bars(table: pd.DataFrame, column: str, title: str, focus: str | None, *, share: bool,
                top: int = 15) -> go.Figure:
    """One column of an Across view table as horizontal bars for the ``top`` areas, always with the focus
    (bold, ▶, black). Cells hidden for the role (c) are left out, as the page's maps leave them out."""
    values = table[column].map(_share) if share else pd.to_numeric(table[column], errors="coerce")
    rows = table.assign(_v=values).dropna(subset=["_v"])
    shown = rows.nlargest(top, "_v")
    if focus is not None and focus not in set(shown["area_code"]):
        shown = pd.concat([rows.nlargest(top - 1, "_v"), rows[rows["area_code"] == focus]])
    shown = shown.sort_values("_v")
    is_focus = (shown["area_code"] == focus).to_numpy()
    names = [f"<b>▶ {n}</b>" if f else n for n, f in zip(shown["area_name"], is_focus)]
    fig = go.Figure(go.Bar(
        x=shown["_v"], y=names, orientation="h", marker={"color": np.where(is_focus, FOCUS, "#0072B2")},
        text=[f"{v:.0%}" if share else f"{v:,.0f}" for v in shown["_v"]], textposition="outside",
        cliponaxis=False))
    fig.update_layout(plot_bgcolor="white", showlegend=False,
                      xaxis={"title": title, "tickformat": ".0%" if share else ",d", "gridcolor": "#eeeeee",
                             "rangemode": "tozero", "range": [0, float(shown["_v"].max() or 1) * 1.15]},
                      yaxis={"automargin": True})
    return _style(fig, left=20, right=40, top=20, bottom=60)
