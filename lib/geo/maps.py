"""Plotly map figures of the boundary layers: offline by default (MapLibre, white background).

Outlines are drawn as map line layers (they take a dash pattern, so layers differ by dash and
width as well as colour); hover comes from one transparent choropleth of the chosen layer whose
label lists the areas of every other layer it falls in.
"""
from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import shapely

from lib.geo import alignment, lookup
from lib.geo import layers as layer_registry
from lib.geo.layers import LAYERS

ENGLAND_WALES_CENTRE = {"lat": 52.6, "lon": -2.3}
ENGLAND_WALES_ZOOM = 5.4
OFFLINE_STYLE = "white-bg"
#: Base maps: the first needs no internet; the others fetch tiles and are offered as options.
BASEMAPS = {"Plain (works offline)": OFFLINE_STYLE, "Streets (needs internet)": "carto-positron",
            "OpenStreetMap (needs internet)": "open-street-map"}
DASH_PATTERN = {"solid": None, "dot": [1, 2], "dash": [4, 2], "dashdot": [4, 2, 1, 2],
                "longdash": [8, 3], "longdashdot": [8, 2, 1, 2]}
LAND_FILL = "#f3f1ec"
#: Map text (place names) needs glyph PBFs. Plotly's own "white-bg" style points MapLibre at
#: fonts.openmaptiles.org (outside the machine), so the plain base map is this equivalent style whose
#: glyphs are served by the app itself (./static, `server.enableStaticServing`; docs/USER_GUIDE.md,
#: "Place names on the plain map"). The path is root-relative: the app is served at its own root.
GLYPHS_URL = "/app/static/glyphs/{fontstack}/{range}.pbf"
#: The one font vendored (static/glyphs/; Latin ranges 0-255 and 256-511 cover English and Welsh names): Open Sans
#: Regular, stored under the font-stack name MapLibre asks for (Plotly's layers use MapLibre's default text-font).
GLYPH_FONTSTACK = "Open Sans Regular,Arial Unicode MS Regular"
ROOT_STATIC = Path(__file__).resolve().parents[2] / "static"
#: (An empty "sources" object is dropped on its way to the browser, and MapLibre then rejects the style as
#: missing "sources": so it holds one empty GeoJSON source.)
PLAIN_STYLE = {"id": "plain", "version": 8, "glyphs": GLYPHS_URL,
               "sources": {"plain-empty": {"type": "geojson", "data": {"type": "FeatureCollection", "features": []}}},
               "layers": [{"id": "white-bg", "type": "background", "paint": {"background-color": "#FFFFFF"}}]}
#: Place names appear from this zoom (a county fills the map); district names from the ONS lookups' names.
PLACE_LABEL_MIN_ZOOM = 7.5
PLACE_LABEL_LAYER = "lad"


@cache
def layer_geojson(layer: str) -> dict:
    """The display GeoJSON of a layer (read-only: do not mutate)."""
    return json.loads((lookup.GEODATA / "layers" / f"{layer}.geojson").read_text(encoding="utf-8"))


@cache
def layer_bounds(layer: str) -> dict[str, tuple[float, float, float, float]]:
    """(min lon, min lat, max lon, max lat) of every area of a layer."""
    out = {}
    for feature in layer_geojson(layer)["features"]:
        geom = shapely.geometry.shape(feature["geometry"])
        out[feature["id"]] = tuple(float(v) for v in geom.bounds)
    return out


@cache
def place_label_points(layer: str = PLACE_LABEL_LAYER) -> dict:
    """GeoJSON points naming each area of ``layer`` (local authority districts by default) at a point inside it
    (shapely's representative point of the display polygon). Names come from lookup.name_of, i.e. the official
    ONS lookups recorded in geodata/manifest.json; nothing is typed."""
    names = lookup.name_of(layer)
    features = []
    for feature in layer_geojson(layer)["features"]:
        code = feature["id"]
        point = shapely.geometry.shape(feature["geometry"]).representative_point()
        features.append({"type": "Feature", "id": code, "properties": {"name": names.get(code, code)},
                         "geometry": {"type": "Point", "coordinates": [round(point.x, 5), round(point.y, 5)]}})
    return {"type": "FeatureCollection", "features": features}


def place_label_layer(layer: str = PLACE_LABEL_LAYER) -> dict:
    """A map symbol layer writing place names (no icon: an icon name would make Plotly fetch it from a CDN),
    shown only when zoomed in (MapLibre's minzoom), with glyphs from the app's own static folder."""
    return {"sourcetype": "geojson", "source": place_label_points(layer), "type": "symbol",
            "minzoom": PLACE_LABEL_MIN_ZOOM, "color": "#333333", "name": "place names",
            "symbol": {"icon": "", "text": "{name}", "textfont": {"size": 13, "color": "#333333"},
                       "placement": "point", "textposition": "middle center"}}


def map_style(style: str) -> str | dict:
    """The MapLibre style Plotly is given: the plain style with locally served glyphs for the offline base map."""
    return PLAIN_STYLE if style == OFFLINE_STYLE else style


def zoom_for_bounds(bounds: tuple[float, float, float, float], width_px: int = 800, height_px: int = 650) -> dict:
    """Centre and zoom that fit a bounding box in a map of the given pixel size (web Mercator;
    MapLibre's zoom 0 shows the world in one 512-pixel tile)."""
    min_lon, min_lat, max_lon, max_lat = bounds
    lon_span = max(max_lon - min_lon, 0.01)
    y = lambda lat: math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))  # noqa: E731
    lat_span = max(abs(y(max_lat) - y(min_lat)), 0.0002)
    zoom_x = math.log2(width_px * 360 / (512 * lon_span))
    zoom_y = math.log2(height_px * 2 * math.pi / (512 * lat_span))
    return {"center": {"lat": (min_lat + max_lat) / 2, "lon": (min_lon + max_lon) / 2},
            "zoom": round(max(min(zoom_x, zoom_y) - 0.5, 3.0), 2)}


def _line_layer(layer: str, width_scale: float = 1.0) -> dict:
    spec = LAYERS[layer]
    line = {"width": spec.width * width_scale}
    if DASH_PATTERN[spec.dash]:
        line["dash"] = DASH_PATTERN[spec.dash]
    return {"sourcetype": "geojson", "source": layer_geojson(layer), "type": "line",
            "color": spec.colour, "line": line, "below": "traces"}


def _land_layer() -> dict:
    return {"sourcetype": "geojson", "source": layer_geojson("pfa"), "type": "fill",
            "color": LAND_FILL, "below": "traces"}


def legend_traces(layers: list[str]) -> list[go.Scattermap]:
    """Empty traces that give each outline layer a legend entry naming its line style."""
    return [go.Scattermap(lat=[None], lon=[None], mode="lines", name=f"{LAYERS[k].title} ({LAYERS[k].dash} line)",
                          line={"color": LAYERS[k].colour, "width": max(LAYERS[k].width, 1.5)},
                          hoverinfo="skip", showlegend=True) for k in layers]


def hover_trace(layer: str) -> go.Choroplethmap:
    """Invisible fill of a layer whose hover names the area and its places in the other layers."""
    labels = alignment.hover_text(layer)
    features = layer_geojson(layer)["features"]
    codes = [f["id"] for f in features]
    return go.Choroplethmap(
        geojson=layer_geojson(layer), locations=codes, z=np.zeros(len(codes)),
        colorscale=[[0, "rgba(0,0,0,0)"], [1, "rgba(0,0,0,0)"]], showscale=False,
        marker={"line": {"width": 0}}, text=[labels.get(c, c) for c in codes],
        hovertemplate="%{text}<extra></extra>", name=f"hover: {LAYERS[layer].title}", showlegend=False,
    )


def base_layout(style: str = OFFLINE_STYLE, view: dict | None = None, height: int = 650) -> dict:
    view = view or {"center": ENGLAND_WALES_CENTRE, "zoom": ENGLAND_WALES_ZOOM}
    return {"map": {"style": style, **view}, "height": height, "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
            "legend": {"x": 0.01, "y": 0.99, "bgcolor": "rgba(255,255,255,0.85)", "itemclick": False,
                       "itemdoubleclick": False, "font": {"size": 12}},
            "hoverlabel": {"align": "left"}}


def boundaries_figure(layers: list[str], hover_layer: str, style: str = OFFLINE_STYLE, view: dict | None = None,
                      highlight: tuple[str, str] | None = None, point: tuple[float, float, str] | None = None,
                      height: int = 650) -> go.Figure:
    """All chosen boundary layers overlaid; hover on `hover_layer`; optional highlighted area or point."""
    order = [k for k in LAYERS if k in layers][::-1]  # thin lines underneath, police on top
    map_layers = ([_land_layer()] if style == OFFLINE_STYLE else []) + [_line_layer(k) for k in order]
    if style == OFFLINE_STYLE:  # the tiled base maps carry their own names
        map_layers.append(place_label_layer())
    fig = go.Figure([hover_trace(hover_layer), *legend_traces([k for k in LAYERS if k in layers])])
    if highlight:
        layer, code = highlight
        feature = next(f for f in layer_geojson(layer)["features"] if f["id"] == code)
        map_layers.append({"sourcetype": "geojson", "source": {"type": "FeatureCollection", "features": [feature]},
                           "type": "line", "color": "#000000", "line": {"width": 4}})
    if point:
        lat, lon, label = point
        # a marker: the postcode is named in the page's sentence and panel, and in the hover
        fig.add_trace(go.Scattermap(lat=[lat], lon=[lon], mode="markers", marker={"size": 14, "color": "#000000"},
                                    name=label, hovertemplate=f"{label}<extra></extra>", showlegend=False))
    layout = base_layout(style, view, height)
    layout["map"]["style"] = map_style(style)
    layout["map"]["layers"] = map_layers
    fig.update_layout(**layout)
    return fig


def whole_number_ticks(values) -> dict:
    """Colour-bar ticks for counts: whole steps (Plotly picks 0.5 steps for a scale of 0 to 3). Empty for
    values that are not all whole numbers (percentages keep Plotly's own ticks)."""
    numbers = [float(v) for v in values if v is not None and v == v]
    if not numbers or any(not v.is_integer() for v in numbers):
        return {}
    span = max(numbers) - min(min(numbers), 0)
    step = 1
    while span / step > 6:
        step = next(m * 10 ** e for e in range(0, 9) for m in (1, 2, 5) if m * 10 ** e > step)
    return {"tick0": 0, "dtick": step, "tickformat": ",d"}


def choropleth_figure(layer: str, values: dict[str, float], title: str, hover: dict[str, str] | None = None,
                      style: str = OFFLINE_STYLE, colorscale: str = "Cividis", reverse: bool = False,
                      outline: str | None = None, height: int = 600, discrete_max: int | None = None) -> go.Figure:
    """Areas of a layer coloured by a value (colour-blind-safe scale), with optional outline layer."""
    features = layer_geojson(layer)["features"]
    codes = [f["id"] for f in features if f["id"] in values]
    z = [values[c] for c in codes]
    names = lookup.name_of(layer)
    text = [hover.get(c, "") if hover else "" for c in codes]
    trace = go.Choroplethmap(
        geojson=layer_geojson(layer), locations=codes, z=z, colorscale=colorscale, reversescale=reverse,
        marker={"line": {"width": 0.6, "color": "#ffffff"}, "opacity": 0.85},
        customdata=[[names.get(c, c), c] for c in codes], text=text,
        hovertemplate="<b>%{customdata[0]}</b> (%{customdata[1]})<br>" + title + ": %{z}<br>%{text}<extra></extra>",
        colorbar={"title": {"text": title, "side": "right"}, "thickness": 14, **whole_number_ticks(z)},
        zmin=0 if discrete_max else None, zmax=discrete_max,
    )
    fig = go.Figure([trace])
    layout = base_layout(style, None, height)
    map_layers = [_land_layer()] if style == OFFLINE_STYLE else []
    if outline:
        map_layers.append({**_line_layer(outline), "below": ""})
    layout["map"]["layers"] = map_layers
    fig.update_layout(**layout)
    return fig


HATCH_COLOUR = "#222222"
HATCH_LEGEND = "Small count (under 10): perturbed"  # the same words as lib.disclosure.notes.HATCH_LEGEND


@cache
def _feature_index(layer: str) -> dict[str, dict]:
    """Code -> display feature of a layer; a measure layer drawn from several (``nhs``: ICBs and Welsh health
    boards) is the union of its parts."""
    parts = layer_registry.get(layer).name_layers if layer not in LAYERS else (layer,)
    return {f["id"]: f for part in parts for f in layer_geojson(part)["features"]}


@cache
def _hatch_segments(layer: str, code: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Diagonal hatching of one area: parallel lines (45°, spacing a tenth of the area's extent, kept between
    0.012° and 0.06° so a city district still gets several lines and a county is not black) intersected with
    its simplified polygon. Returns (lons, lats) with None between segments."""
    feature = _feature_index(layer).get(code)
    if feature is None:
        return (), ()
    geom = shapely.geometry.shape(feature["geometry"]).simplify(0.002, preserve_topology=True)
    if geom.is_empty:
        return (), ()
    min_x, min_y, max_x, max_y = geom.bounds
    spacing = min(max(max(max_x - min_x, max_y - min_y) / 10, 0.012), 0.06)
    # lines y = x + c for c across the box: from (min_x, min_x + c) to (max_x, max_x + c)
    offsets = np.arange(min_y - max_x, max_y - min_x + spacing, spacing)
    lines = shapely.MultiLineString([[(min_x, min_x + c), (max_x, max_x + c)] for c in offsets])
    cut = shapely.intersection(lines, geom)
    lons: list = []
    lats: list = []
    for part in shapely.get_parts(cut):
        if part.geom_type != "LineString" or part.length == 0:
            continue
        xs, ys = part.xy
        lons.extend([*map(float, xs), None])
        lats.extend([*map(float, ys), None])
    return tuple(lons), tuple(lats)


def hatch_trace(layer: str, codes, *, name: str = HATCH_LEGEND, colour: str = HATCH_COLOUR,
                width: float = 0.8) -> go.Scattermap:
    """One line trace hatching the areas ``codes`` of ``layer`` (diagonal lines clipped to their polygons;
    offline: plain map lines, no tiles), with a legend entry ``name``. Areas not in the layer's display
    GeoJSON are skipped. Add it to a map figure after its fills so the hatching lies on top."""
    lons: list = []
    lats: list = []
    for code in sorted(set(map(str, codes))):
        x, y = _hatch_segments(layer, code)
        lons.extend(x)
        lats.extend(y)
    return go.Scattermap(lon=lons or [None], lat=lats or [None], mode="lines", name=name,
                         line={"color": colour, "width": width}, hoverinfo="skip", showlegend=bool(lons))
