"""The board pack: one PowerPoint deck (python-pptx) for a layer, a focus area and a role, plus each chart
as PNG and each table as CSV. The page button and ``python -m lib.cli boardpack`` both call
``build_board_pack``, so they produce the same deck.

Slides: title; plain-English summary; map of the divergence ratio; divergence chart (dumbbell); funnel
plot; comparison table (the focus area, its neighbours, its comparator group, England and Wales); data
quality and methods; attribution, date and data vintage. Charts are images rendered by kaleido
(``lib.export.images``), each with alt text naming what it shows, and a table alternative in its
speaker notes. For a role that sees aggregates only, every count, rate and chart passes through
``lib.measures.suppression`` first (hidden values are not drawn), and nothing is one row per child.
"""
from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lib.access.roles import ROLE_LABELS, aggregates_suppressed, check_role
from lib.export.csv_safe import to_csv_bytes
from lib.geo import lookup
from lib.geo.build import ATTRIBUTION
from lib.measures import aggregates, compare, convert, counts, figures, population
from lib.measures import divergence as dv
from lib.measures.suppression import NOTE as SUPPRESSION_NOTE
from lib.measures.suppression import SUPPRESSED, is_small, numeric
from lib.records.store import cursor

PPTX_MIME = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
SLIDE_TITLES = ["Board pack", "Summary", "Map", "Divergence chart", "Funnel plot", "Comparison table",
                "Data quality and methods", "Attribution and data vintage"]
CHARTS = {"map": "Map of the divergence ratio", "divergence": "Divergence chart", "funnel": "Funnel plot"}
TABLES = {"divergence_{layer}.csv": "Divergence table", "comparison.csv": "Comparison table",
          "comparator_group.csv": "Comparator group"}
_COUNTS = ["count_a", "count_b", "total"]
_DERIVED = {"share_a": ["count_a", "count_b"], "rate_a": "count_a", "rate_b": "count_b",
            "log_ratio": ["count_a", "count_b"], "log_ratio_low": ["count_a", "count_b"],
            "log_ratio_high": ["count_a", "count_b"], "pct_difference": ["count_a", "count_b"],
            "lower_95": "total", "upper_95": "total", "lower_998": "total", "upper_998": "total"}


def divergence_for_role(table: pd.DataFrame, role: str, mask: pd.DataFrame, a: str = "police",
                        b: str = "children_social_care") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(display, numeric) versions of a ``divergence_table`` for ``role``: display has ``c`` in hidden
    cells, numeric has NaN there (charts then leave those areas out rather than draw them).

    ``mask`` is ``compare.hidden_mask`` of the same layer, period and measure: one suppression of every
    agency's count over all areas with the England and Wales totals, so a cell hidden in the comparison is
    hidden here too (two views suppressed separately could be combined to give a hidden count back).
    A + B is hidden whenever A or B is (with the other visible it would give it back; with both hidden it
    could pin a third hidden agency in the same row)."""
    if not aggregates_suppressed(role):
        return table.copy(), table.copy()
    hide_a = table["area_code"].map(mask[a]).fillna(False).astype(bool).to_numpy()
    hide_b = table["area_code"].map(mask[b]).fillna(False).astype(bool).to_numpy()
    hidden = {"count_a": hide_a, "count_b": hide_b, "total": hide_a | hide_b}
    for column, sources in _DERIVED.items():
        if column in table.columns:
            sources = [sources] if isinstance(sources, str) else sources
            hidden[column] = np.logical_or.reduce([hidden[src] for src in sources])
    either = hide_a | hide_b
    for column in ("verdict", "rank"):  # which side of the funnel a hidden area lies is a hint at its count
        if column in table.columns:
            hidden[column] = either
    display = table.copy()
    for column, rows in hidden.items():
        display[column] = display[column].astype("object").where(~rows, SUPPRESSED)
    plotted = numeric(display, [c for c in hidden if c not in ("verdict", "rank")])
    for column in ("verdict", "rank"):  # charts drop hidden areas through their counts; keep the type here
        if column in table.columns:
            plotted[column] = table[column]
    for column in ("outside_95", "outside_998"):
        plotted[column] = display[column].astype(bool) & ~either
    return display, plotted


@dataclass
class BoardPack:
    deck: bytes
    pngs: dict[str, bytes]
    csvs: dict[str, bytes]
    file_stem: str
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    slides: list[str] = field(default_factory=list)


def data_vintage(con) -> dict:
    """Geography vintages (geodata manifest) and the store's latest upload and linkage run."""
    manifest = json.loads((lookup.GEODATA / "manifest.json").read_text(encoding="utf-8"))
    with cursor(con) as cur:
        latest = cur.execute("SELECT max(ingested_at) FROM batches").fetchall()[0][0]
        has_runs = cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'linkage_runs'"
                               ).fetchall()[0][0]
        linked = cur.execute("SELECT max(started_at) FROM linkage_runs").fetchall()[0][0] if has_runs else None
        span = cur.execute("SELECT min(encounter_date), max(encounter_date), count(*) FROM encounters").fetchall()[0]
    return {"geography": manifest.get("vintages", {}), "licence": manifest.get("licence", ""),
            "latest_upload": str(latest)[:16] if latest else "none", "linkage_run": str(linked)[:16] if linked else
            "not linked", "encounters_from": str(span[0]), "encounters_to": str(span[1]), "records": int(span[2])}


def audit_export(con, user: str, role: str, subject: str, detail: str) -> bool:
    """Record an export in the audit trail of the store ``con`` has open (every export is audited)."""
    from lib.access import audit

    audit.record(audit.AuditLog.for_connection(con), user=user, role=role, action="export", subject=subject,
                 detail=detail)
    return True


def deck_map(plotted: pd.DataFrame, layer: str, a: str, b: str, focus: str | None = None) -> go.Figure:
    """The divergence-ratio map as plain SVG shapes (for the deck; the page's MapLibre map takes 3-4x as
    long to draw in headless Chromium). Same diverging PuOr scale centred on ×1 as the page; areas with no
    cases or hidden counts are hatched, so they are not told apart by colour alone; the focus area is
    outlined. Longitude is scaled by cos(52.5°) so England and Wales keep their shape."""
    import shapely
    from plotly.colors import sample_colorscale

    geojson = figures.layer_geojson(convert.layer_key(layer))
    shown = plotted[plotted["total"] > 0].dropna(subset=["log_ratio"]).set_index("area_code")["log_ratio"]
    bound = float(max(np.nanmax(np.abs(shown)) if len(shown) else 1.0, 0.5))
    k = float(np.cos(np.radians(52.5)))
    features = sorted(geojson["features"], key=lambda f: -shapely.geometry.shape(f["geometry"]).area)
    fig = go.Figure()
    outline = None
    for feature in features:
        geom = feature["geometry"]
        polygons = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
        xs, ys = [], []
        for polygon in polygons:
            for ring in polygon:
                xs += [round(x * k, 4) for x, _ in ring] + [None]
                ys += [round(y, 4) for _, y in ring] + [None]
        z = shown.get(feature["id"])
        style = ({"fillcolor": sample_colorscale("PuOr", [(z + bound) / (2 * bound)])[0]} if z is not None else
                 {"fillcolor": "#ffffff", "fillpattern": {"shape": "/", "fgcolor": "#b0b0b0", "size": 6}})
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", fill="toself", line={"color": "#ffffff", "width": 0.5},
                                 hoverinfo="skip", showlegend=False, **style))
        if feature["id"] == focus:
            outline = (xs, ys)
    if outline:
        fig.add_trace(go.Scatter(x=outline[0], y=outline[1], mode="lines", line={"color": "#000000", "width": 2.5},
                                 name="focus area", hoverinfo="skip", showlegend=True))
    tick = [-bound, -bound / 2, 0, bound / 2, bound]
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip", marker={
        "colorscale": "PuOr", "cmin": -bound, "cmax": bound, "color": [0], "showscale": True,
        "colorbar": {"title": {"text": f"{dv.agency_title(a)} ÷ {dv.agency_title(b)}", "side": "right"},
                     "thickness": 14, "tickvals": tick, "ticktext": [f"×{np.exp(t):.2g}" for t in tick]}}))
    fig.update_layout(plot_bgcolor="white", paper_bgcolor="white", margin={"l": 0, "r": 0, "t": 10, "b": 0},
                      xaxis={"visible": False}, yaxis={"visible": False, "scaleanchor": "x", "scaleratio": 1},
                      legend={"x": 0, "y": 1, "bgcolor": "rgba(255,255,255,0.8)"})
    return fig


def _figures(plotted: pd.DataFrame, layer: str, a: str, b: str, noun: str, focus: str | None = None) -> dict:
    figs = {"map": deck_map(plotted, layer, a, b, focus),
            "divergence": figures.dumbbell(plotted, a, b, noun, top=20),
            "funnel": figures.funnel_figure(plotted, a, b)}
    figs["divergence"].update_layout(height=None)
    figs["funnel"].update_layout(height=None)
    for fig in figs.values():
        fig.update_layout(font={"size": 15})
    return figs


def _alt_texts(plotted: pd.DataFrame, layer: str, a: str, b: str, noun: str, area_name: str) -> dict[str, str]:
    counted = plotted[plotted["total"] > 0]
    outside = counted[counted["outside_998"]]["area_name"].head(5).tolist()
    layer_title = convert.MEASURE_LAYERS[convert.layer_key(layer)].lower()
    return {
        "map": (f"Map of {layer_title} of England and Wales coloured by the ratio of {dv.agency_title(a)} to "
                f"{dv.agency_title(b)} {noun}: purple where {dv.agency_title(a).lower()} record more, orange where "
                f"{dv.agency_title(b).lower()} record more, pale where about equal; hatched where no cases or hidden. "
                f"Focus area, outlined in black: {area_name}."),
        "divergence": (f"Dot chart of {dv.agency_title(a)} and {dv.agency_title(b)} {noun} side by side for the "
                       f"{min(20, len(counted))} {layer_title} with the most cases, ordered by their ratio."),
        "funnel": (f"Funnel plot of each area's {dv.agency_title(a).lower()} share against its total, with 95% and "
                   f"99.8% limits around the national share. Outside the 99.8% limits: "
                   f"{', '.join(outside) if outside else 'none'}."),
    }


def _table_text(frame: pd.DataFrame, columns: dict[str, str], rows: int = 25) -> str:
    """A plain-text table (the chart's table alternative, for speaker notes and screen readers)."""
    shown = frame[list(columns)].head(rows)
    lines = [" | ".join(columns.values())]
    for _, row in shown.iterrows():
        lines.append(" | ".join(_cell(row[c]) for c in columns))
    return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{value:,.0f}" if abs(value - round(value)) < 1e-9 else f"{value:,.2f}"
    return str(value)


def build_board_pack(con, *, layer: str, area: str, role: str, period: str = "all", measure: str = "cse_records",
                     a: str = "police", b: str = "children_social_care", cube: counts.MeasureCube | None = None,
                     compare_areas: list[str] | None = None, comparator: list[str] | None = None,
                     user: str = "(unknown)", audit: bool = True) -> BoardPack:
    """Build the deck, PNGs and CSVs for ``area`` of ``layer`` as ``role`` would see them."""
    from lib.export import images

    started = time.perf_counter()
    timings: dict[str, float] = {}
    role = check_role(role)
    if aggregates_suppressed(role) and period != "all":
        raise ValueError(f"the {role} role sees all periods together only: counts of overlapping periods "
                         "(a year and its quarters) could be subtracted to reveal a suppressed count")
    layer = convert.layer_key(layer)
    images.warm_up()  # the browser starts while the data is counted
    if cube is None:
        cube = aggregates.cube(con, layers=(layer,))  # the stored aggregates
    if not cube.linked and measure == "cse_children":
        measure = "cse_records"
    timings["counts"] = round(time.perf_counter() - started, 3)
    pop = population.default_population(layer)
    table = dv.divergence_table(cube, layer, period, a, b, measure, pop)
    names = dict(zip(table["area_code"], table["area_name"]))
    if area not in names:
        raise ValueError(f"unknown area {area!r} for layer {layer}")
    area_name = names[area]
    noun = dv.NOUN.get(measure, measure)
    base = compare.area_base(cube, con, layer, period, measure, pop, a, b)
    # one suppression for every view of this layer and period
    mask = compare.hidden_mask(base, aggregates_suppressed(role), a, b)
    display, plotted = divergence_for_role(table, role, mask, a, b)
    # Chromium draws the charts while the comparison is computed.
    pending = images.to_png_async(_figures(plotted, layer, a, b, noun, area),
                                  sizes={"map": (900, 800), "divergence": (1200, 620), "funnel": (1200, 620)})
    areas = compare_areas or [area, *compare.adjacent_areas(layer, area, limit=3)]
    prof = compare.profile(base, areas, aggregates_suppressed(role), comparator=comparator, a=a, b=b, measure=measure,
                           mask=mask)
    timings["tables"] = round(time.perf_counter() - started - sum(timings.values()), 3)
    pngs = pending.result()
    timings["images (after tables)"] = round(time.perf_counter() - started - sum(timings.values()), 3)

    vintage = data_vintage(con)
    focus = display[display["area_code"] == area].iloc[0]
    focus_plotted = plotted[plotted["area_code"] == area].iloc[0]
    if SUPPRESSED in (focus["count_a"], focus["count_b"]):
        focus_sentence = (f"In {area_name} the counts are small, so they are hidden (shown as c) and the "
                          "comparison is not described.")
    else:
        focus_sentence = dv.describe_area(focus_plotted, a, b, measure)
    summary = [focus_sentence, dv.describe_table(table, a, b, measure, period),  # national: no small counts
               dv.describe_funnel(plotted.fillna({"outside_998": False}), a, b), compare.describe(prof)]
    quality = _quality_notes(con, prof, cube, layer, role)
    alts = _alt_texts(plotted, layer, a, b, noun, area_name)
    content = _Content(area_name=area_name, layer=layer, period=period, role=role, a=a, b=b, noun=noun,
                       summary=summary, alts=alts, display=display, prof=prof, quality=quality, vintage=vintage,
                       made=datetime.now(UTC))
    deck = _deck(content, pngs)
    timings["deck"] = round(time.perf_counter() - started - sum(timings.values()), 3)

    export_columns = ["area_code", "area_name", "count_a", "count_b", "total", "share_a", "national_share",
                      "verdict", "rate_a", "rate_b", "log_ratio"]
    csv_table = display[export_columns].rename(columns={"count_a": a, "count_b": b}).assign(
        layer=layer, period=period, measure=measure, rate_basis=population.rate_label())
    comparison = prof.table.drop(columns=["indicator"]).rename(columns={"label": "indicator"})
    csvs = {f"divergence_{layer}.csv": to_csv_bytes(csv_table), "comparison.csv": to_csv_bytes(comparison),
            "comparator_group.csv": to_csv_bytes(prof.comparator)}
    stem = f"board_pack_{layer}_{area}_{period.replace(' ', '_')}"
    if audit:
        audit_export(con, user, role, f"{layer}:{area}", f"board pack ({period}, {measure}); suppressed="
               f"{aggregates_suppressed(role)}")
    return BoardPack(deck=deck, pngs={f"{k}.png": v for k, v in pngs.items()}, csvs=csvs, file_stem=stem,
                     seconds=round(time.perf_counter() - started, 3), timings=timings, slides=list(SLIDE_TITLES))


def _quality_notes(con, prof: compare.Profile, cube, layer: str, role: str) -> list[str]:
    row = prof.numeric.set_index("indicator")
    national = row[compare.NATIONAL]
    notes = []
    if "valid_nhs_pct" in national.index and not pd.isna(national["valid_nhs_pct"]):
        notes.append(f"Identifier completeness, England and Wales: {national['valid_nhs_pct']:.0f}% of records carry "
                     f"a valid NHS number and {national['name_dob_pct']:.0f}% a full name and date of birth.")
    if cube.linked:
        notes.append(f"Linkage: {national['linkage_pct']:.0f}% of identifiable records are joined to at least one "
                     "other record (NHS number first, then a Splink probabilistic model); anonymous "
                     "sexual-health contacts are counted, never linked.")
    else:
        notes.append("Records have not been linked, so distinct-children figures are not available.")
    notes += [
        ("Counts place each record where the encounter happened (direct basis). Funnel limits are exact binomial "
         "quantiles around the national share (Spiegelhalter 2005): 95% and 99.8%."),
        population.source_label(population.DEFAULT_AGE, layer),
        prof.explanation,
    ]
    if convert.layer_key(layer) == "trust":
        notes.append("Trust catchments are modelled from OHID admissions (NHS Acute (Hospital) Trust Catchment "
                     "Populations, 2022 edition); NHS trusts have no statutory boundary.")
    if not cube.unplaced_native.empty:
        unplaced = int(cube.unplaced_native['records'].sum())
        shown = SUPPRESSED if aggregates_suppressed(role) and is_small([unplaced])[0] else f"{unplaced:,}"
        notes.append(f"{shown} records carry an agency code that is not an area of their agency's geography.")
    notes.append(SUPPRESSION_NOTE if aggregates_suppressed(role) else
                 "This pack is unsuppressed (safeguarding lead): do not share it beyond those entitled to see it.")
    return notes


# -- the deck: one function per slide ---------------------------------------------------------------------

@dataclass
class _Content:
    """Everything the slides show (built by ``build_board_pack``)."""

    area_name: str
    layer: str
    period: str
    role: str
    a: str
    b: str
    noun: str
    summary: list[str]
    alts: dict[str, str]
    display: pd.DataFrame
    prof: compare.Profile
    quality: list[str]
    vintage: dict
    made: datetime

    @property
    def layer_title(self) -> str:
        return convert.MEASURE_LAYERS[convert.layer_key(self.layer)]

    @property
    def counted(self) -> pd.DataFrame:
        """Areas with cases (or hidden counts): the tables behind the charts."""
        return self.display[self.display["total"].astype("object").ne(0)]

    @property
    def chart_columns(self) -> dict[str, str]:
        return {"area_name": "Area", "count_a": dv.agency_title(self.a), "count_b": dv.agency_title(self.b),
                "log_ratio": "log(A/B)", "verdict": "Funnel verdict"}


class _Slides:
    """The presentation being built and the helpers every slide uses (16:9, title-only layout)."""

    def __init__(self, pngs: dict[str, bytes], alts: dict[str, str]):
        from pptx import Presentation
        from pptx.util import Inches

        self.prs = Presentation()
        self.prs.slide_width, self.prs.slide_height = Inches(13.333), Inches(7.5)
        self.pngs, self.alts = pngs, alts

    def titled(self, title: str):
        from pptx.util import Inches, Pt

        slide = self.prs.slides.add_slide(self.prs.slide_layouts[5])  # title only
        slide.shapes.title.text = title
        slide.shapes.title.text_frame.paragraphs[0].font.size = Pt(30)
        slide.shapes.title.top, slide.shapes.title.height = Inches(0.3), Inches(0.9)
        slide.shapes.title.left, slide.shapes.title.width = Inches(0.5), Inches(12.3)
        return slide

    @staticmethod
    def bullets(slide, lines, top=1.3, size=16, left=0.6, width=12.1, height=5.8):
        from pptx.util import Inches, Pt

        box = slide.shapes.add_textbox(Inches(left), Inches(top), Inches(width), Inches(height))
        frame = box.text_frame
        frame.word_wrap = True
        for i, line in enumerate(lines):
            paragraph = frame.paragraphs[0] if i == 0 else frame.add_paragraph()
            paragraph.text = line
            paragraph.font.size = Pt(size)
            paragraph.space_after = Pt(8)
        return box

    def picture(self, slide, key, left, top, width, height=7.5 - 1.3):
        """The image scaled to fit the box (width × height inches), keeping its aspect ratio."""
        from PIL import Image
        from pptx.util import Inches

        w, h = Image.open(io.BytesIO(self.pngs[key])).size
        scale = min(width / w, height / h)
        pic = slide.shapes.add_picture(io.BytesIO(self.pngs[key]), Inches(left), Inches(top),
                                       width=Inches(w * scale), height=Inches(h * scale))
        pic.name = CHARTS[key]
        pic._element.nvPicPr.cNvPr.set("descr", self.alts[key])  # alt text (python-pptx has no setter)
        return pic

    @staticmethod
    def notes(slide, text):
        slide.notes_slide.notes_text_frame.text = text

    def save(self) -> bytes:
        out = io.BytesIO()
        self.prs.save(out)
        return out.getvalue()


def _title_slide(deck: _Slides, c: _Content) -> None:
    from pptx.util import Inches

    title = deck.prs.slides.add_slide(deck.prs.slide_layouts[0])
    title.shapes.title.text = f"{c.area_name}: where agencies' counts diverge"
    title.placeholders[1].text = (f"Joined Up board pack · {c.layer_title} · {counts.period_label(c.period)} · "
                                  f"{ROLE_LABELS[c.role]} view · {c.made:%d %B %Y}")
    for shape, top, height in ((title.shapes.title, 2.0, 1.6), (title.placeholders[1], 3.8, 1.4)):
        shape.left, shape.width, shape.top, shape.height = Inches(0.8), Inches(11.7), Inches(top), Inches(height)


def _summary_slide(deck: _Slides, c: _Content) -> None:
    deck.bullets(deck.titled("Summary"), c.summary, size=18)


def _map_slide(deck: _Slides, c: _Content) -> None:
    a, b = dv.agency_title(c.a), dv.agency_title(c.b)
    slide = deck.titled(f"Map: {a} ÷ {b}")
    deck.picture(slide, "map", 0.5, 1.25, 6.6)
    deck.bullets(slide, [(f"Each area of the {c.layer_title.lower()} is coloured by the ratio of {a.lower()} "
                          f"to {b.lower()} {c.noun} (log scale; ½ added to each count so zeros stay finite)."),
                         ("Purple: A records more. Orange: B records more. Pale: about equal. Hatched: no cases, or "
                          "hidden because the counts are small."), f"Focus area (outlined in black): {c.area_name}.",
                         "The table behind the map is in this slide's notes and in the CSV export."],
                 top=1.4, left=7.4, width=5.4, size=16)
    deck.notes(slide, _table_text(c.counted, c.chart_columns))


def _divergence_slide(deck: _Slides, c: _Content) -> None:
    slide = deck.titled(f"Divergence: {dv.agency_title(c.a)} and {dv.agency_title(c.b)} side by side")
    deck.picture(slide, "divergence", 0.7, 1.2, 11.9)
    counted = c.counted
    by_rank = pd.to_numeric(counted["rank"], errors="coerce").to_numpy(dtype="float64", na_value=np.inf)
    deck.notes(slide, _table_text(counted.iloc[np.argsort(by_rank, kind="stable")], c.chart_columns))  # hidden last


def _funnel_slide(deck: _Slides, c: _Content) -> None:
    slide = deck.titled("Funnel plot: which differences are more than chance")
    deck.picture(slide, "funnel", 0.7, 1.2, 11.9)
    deck.notes(slide, _table_text(c.counted, {"area_name": "Area", "total": "A + B", "share_a": "A share",
                                              "verdict": "Funnel verdict"}))


def _comparison_slide(deck: _Slides, c: _Content) -> None:
    from pptx.util import Inches, Pt

    slide = deck.titled("Comparison: areas side by side")
    frame = c.prof.table.drop(columns=["indicator"])
    rows, cols = len(frame) + 1, len(frame.columns)
    grid = slide.shapes.add_table(rows, cols, Inches(0.4), Inches(1.2), Inches(12.5), Inches(5.2)).table
    grid.columns[0].width = Inches(4.9)  # indicator names (with their population source) on one or two lines
    for j in range(1, cols):
        grid.columns[j].width = Inches(7.6 / (cols - 1))
    for j, name in enumerate(["Indicator", *frame.columns[1:]]):
        grid.cell(0, j).text = str(name)
    for i, (_, row) in enumerate(frame.iterrows(), start=1):
        for j, value in enumerate(row):
            grid.cell(i, j).text = _cell(value)
    for i in range(rows):
        for j in range(cols):
            cell = grid.cell(i, j)
            cell.margin_top = cell.margin_bottom = Pt(2)  # 14 indicators and the note fit above the slide's foot
            for paragraph in cell.text_frame.paragraphs:
                paragraph.font.size = Pt(9 if i else 10)
    deck.bullets(slide, [f"Comparator group: {', '.join(c.prof.comparator['area_name'])}. " + " ".join(c.prof.notes)],
                 top=6.55, size=9, height=0.85)


def _quality_slide(deck: _Slides, c: _Content) -> None:
    deck.bullets(deck.titled("Data quality and methods"), c.quality, size=14)


def _attribution_slide(deck: _Slides, c: _Content) -> None:
    vintage = c.vintage
    deck.bullets(deck.titled("Attribution, date and data vintage"), [
        ATTRIBUTION,
        f"Produced {c.made:%d %B %Y %H:%M} UTC by Joined Up for the {ROLE_LABELS[c.role]} role.",
        "Geography vintages: " + "; ".join(f"{k}: {v}" for k, v in vintage["geography"].items()) + ".",
        (f"Records: {vintage['records']:,} encounters dated {vintage['encounters_from']} to "
         f"{vintage['encounters_to']}; latest upload {vintage['latest_upload']}; "
         f"linkage run {vintage['linkage_run']}."),
        "Licence: " + vintage["licence"]], size=15)


#: The slides in order (SLIDE_TITLES names them).
SLIDES = (_title_slide, _summary_slide, _map_slide, _divergence_slide, _funnel_slide, _comparison_slide,
          _quality_slide, _attribution_slide)


def _deck(c: _Content, pngs: dict[str, bytes]) -> bytes:
    deck = _Slides(pngs, c.alts)
    deck.prs.core_properties.title = f"Joined Up board pack: {c.area_name}"
    deck.prs.core_properties.author = "Joined Up"
    deck.prs.core_properties.subject = f"{c.layer_title}; {counts.period_label(c.period)}; {ROLE_LABELS[c.role]}"
    for slide in SLIDES:
        slide(deck, c)
    return deck.save()
