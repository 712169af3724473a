"""The board pack: one PowerPoint deck (python-pptx) for a layer, a chosen area and a role, plus each chart as
PNG and each table as CSV. The page buttons and ``python -m lib.cli boardpack`` both call ``build_board_pack``.

Every number in the deck comes from a view builder's PageData for the same role (issue 15): the divergence
and compare views (``kind="divergence"``), the across view (``kind="across"``, the boundary-crossing deck
the Across page offers) and, when a scenario result is given, the scenario view. Nothing is counted,
suppressed or perturbed here, so the deck shows exactly what the pages and ``python -m lib.cli view`` show
(``BoardPack.views`` holds the PageData used). The CSVs are those views' downloadable tables.

Divergence deck: title; summary (at most 60 words and three bullets); map; dumbbell; funnel; trend by
financial year; why they differ (on the basis of the headline gap); comparison table; [scenario];
data quality and methods (naming the disclosure method, lib.disclosure.notes); attribution and vintage.
Across deck: title; summary; headline figures; children crossing boundaries; flows; found only by
linkage; [scenario]; methods; attribution. The chosen area is highlighted in every chart (bold, ▶, black)
and always present. Charts are rendered by kaleido (lib.export.images) at the size of their box, each with
alt text and its table in the speaker notes (shares as percentages). lib.export.deck_check renders the
deck with LibreOffice and finds any text that overflows its box or the slide.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd

from lib import views
from lib.access.roles import ROLE_LABELS, aggregates_suppressed, check_role, periods_for
from lib.disclosure.notes import method_note
from lib.export import deck_figures as figs
from lib.export.deck_slides import Slides, cell_text, table_text, words
from lib.geo import lookup
from lib.geo.build import ATTRIBUTION
from lib.measures import aggregates, convert, counts
from lib.measures import divergence as dv
from lib.records.store import cursor
from lib.views import across as across_view
from lib.views import compare as compare_view
from lib.views import divergence as divergence_view
from lib.views.base import PageData, Source

PPTX_MIME = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
KINDS = ("divergence", "across")
SLIDE_TITLES = ["Board pack", "Summary", "Map", "Divergence chart", "Funnel plot", "Trend by financial year",
                "Why they differ", "Comparison table", "Area profile", "Data quality and methods",
                "Attribution and data vintage"]
#: The Area profile view's columns the profile slide shows (the comparator column, named for its method, is
#: the sixth of the view's table).
PROFILE_COLUMNS = ["Indicator", "Value", "95% CI", 5, "National", "Against national"]
ACROSS_SLIDE_TITLES = ["Board pack", "Summary", "Headline figures", "Children crossing boundaries", "Flows",
                       "Found only by linkage", "Data quality and methods", "Attribution and data vintage"]
CHART_NAMES = {"map": "Map of the divergence ratio", "divergence": "Divergence chart", "funnel": "Funnel plot",
               "trend": "Trend by financial year", "why": "Why they differ", "spans": "Children crossing boundaries",
               "missed": "Children found only by linkage"}
#: The charts and tables every deck of a kind carries (the page offers them as PNG and CSV downloads).
ASSETS = {
    "divergence": ({k: CHART_NAMES[k] for k in ("map", "divergence", "funnel")},
                   {"divergence_{layer}.csv": "Divergence table", "comparison.csv": "Comparison table",
                    "comparator_group.csv": "Comparator group"}),
    "across": ({k: CHART_NAMES[k] for k in ("spans", "missed")},
               {"spans_{layer}.csv": "Crossing boundaries, every area", "flows_{layer}.csv": "Flows",
                "missed_{layer}.csv": "Found only by linkage"}),
}
CHARTS, TABLES = ASSETS["divergence"]
SUMMARY_WORDS = 60
SPAN_MIN_CHILDREN = 20  # as lib.measures.span_figures.describe_spans names the highest share
SCENARIO_TITLE = "Scenario"
FUNNEL_METHOD = ("Counts place each record where the encounter happened (direct basis). Funnel limits are exact "
                 "binomial quantiles around the national share (Spiegelhalter 2005): 95% and 99.8%.")


@dataclass
class BoardPack:
    deck: bytes
    pngs: dict[str, bytes]
    csvs: dict[str, bytes]
    file_stem: str
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    slides: list[str] = field(default_factory=list)
    views: dict[str, PageData] = field(default_factory=dict)
    kind: str = "divergence"


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


@dataclass
class _Deck:
    """What every slide needs: the parameters, the views' PageData and the chosen area."""

    kind: str
    layer: str
    area: str
    area_name: str
    role: str
    period: str
    measure: str
    a: str
    b: str
    views: dict[str, PageData]
    vintage: dict
    made: datetime
    shown: bool = True  # the chosen area is shown for the role in the one-area parts
    alts: dict[str, str] = field(default_factory=dict)

    @property
    def noun(self) -> str:
        return dv.NOUN.get(self.measure, self.measure)

    @property
    def layer_title(self) -> str:
        return convert.MEASURE_LAYERS[convert.layer_key(self.layer)]

    @property
    def protected(self) -> bool:
        return aggregates_suppressed(self.role)


# -- building ----------------------------------------------------------------------------------------------

def build_board_pack(con, *, layer: str, area: str, role: str, period: str = "all", measure: str = "cse_records",
                     a: str = "police", b: str = "children_social_care", cube: counts.MeasureCube | None = None,
                     compare_areas: list[str] | None = None, comparator: list[str] | None = None,
                     user: str = "(unknown)", audit: bool = True, kind: str = "divergence",
                     scenario: PageData | None = None) -> BoardPack:
    """Build the deck, PNGs and CSVs of ``kind`` for ``area`` of ``layer`` as ``role`` would see them.
    ``scenario``: a scenario view's PageData (lib.views.scenario.page_data) to add as a slide."""
    from lib.export import images

    started = time.perf_counter()
    timings: dict[str, float] = {}
    role = check_role(role)
    if kind not in KINDS:
        raise ValueError(f"unknown board pack kind {kind!r}: expected one of {', '.join(KINDS)}")
    if period not in periods_for(role, ["all", period]):
        raise ValueError(f"the {role} role sees financial years and all periods, not quarters: quarters are not "
                         "published below the safeguarding lead (docs/DISCLOSURE.md)")
    layer = convert.layer_key(layer)
    images.warm_up()  # the browser starts while the views are built
    if cube is None:  # the pages' own cube (every layer, read from agg_cube): the same figures and notes as the
        # page by construction. Not faster in all at 1M: reading it saves 0.4-0.6 s, the views over every layer's
        # rows cost about as much more (5.3-6.9 s a pack either way, session 20)
        cube = aggregates.stored_cube(con, "exact") or aggregates.cube(con, layers=(layer,))
    if not cube.linked and measure == "cse_children":
        measure = "cse_records"
    source = Source(con, cube=cube)
    timings["counts"] = round(time.perf_counter() - started, 3)
    names, _ = compare_view.choices(source, layer, period, measure)
    if area not in names:
        raise ValueError(f"unknown area {area!r} for layer {layer}")
    deck = _Deck(kind=kind, layer=layer, area=area, area_name=names[area], role=role, period=period, measure=measure,
                 a=a, b=b, views={}, vintage=data_vintage(con), made=datetime.now(UTC))
    if kind == "divergence":
        charts, csvs = _divergence_views(deck, source, compare_areas, comparator)
    else:
        charts, csvs = _across_views(deck, source)
    if scenario is not None:
        deck.views["scenario"] = scenario
    timings["views"] = round(time.perf_counter() - started - sum(timings.values()), 3)
    pngs = images.to_png_async(charts, sizes={k: figs.SIZES[k] for k in charts}, scale=1.5).result()
    timings["images"] = round(time.perf_counter() - started - sum(timings.values()), 3)
    slides = Slides(pngs, deck.alts, CHART_NAMES)
    slides.prs.core_properties.title = f"Joined Up board pack: {deck.area_name}"
    slides.prs.core_properties.author = "Joined Up"
    slides.prs.core_properties.subject = f"{deck.layer_title}; {counts.period_label(period)}; {ROLE_LABELS[role]}"
    names = []
    for name, slide in (DIVERGENCE_SLIDES if kind == "divergence" else ACROSS_SLIDES):
        if (name != SCENARIO_TITLE or scenario is not None) and (name != "Area profile" or "profile" in deck.views):
            slide(slides, deck)
            names.append(name)
    body = slides.save()
    timings["deck"] = round(time.perf_counter() - started - sum(timings.values()), 3)
    stem = f"board_pack_{'' if kind == 'divergence' else 'across_'}{layer}_{area}_{period.replace(' ', '_')}"
    if audit:
        audit_export(con, user, role, f"{layer}:{area}", f"board pack ({kind}, {period}, {measure}); "
                     f"protected={aggregates_suppressed(role)}")
    return BoardPack(deck=body, pngs={f"{k}.png": v for k, v in pngs.items()}, csvs=csvs, file_stem=stem,
                     seconds=round(time.perf_counter() - started, 3), timings=timings, slides=names,
                     views=deck.views, kind=kind)


def _divergence_views(deck: _Deck, source: Source, compare_areas, comparator) -> tuple[dict, dict]:
    """Build the divergence and compare views for the deck; the charts to render and the CSVs."""
    params = views.resolve_params("divergence", {"a": deck.a, "b": deck.b, "layer": deck.layer,
                                                 "period": deck.period, "measure": deck.measure,
                                                 "granularity": "year"})
    choices, _ = divergence_view.area_choices(source, params, deck.role)
    deck.shown = deck.area in choices
    # an area the role may not see in the one-area parts: the view is built for another, whose trend and
    # decomposition the deck then leaves out (it says why)
    params["area"] = deck.area if deck.shown else (choices[0] if choices else None)
    div = views.build_with("divergence", source, params, deck.role)
    if compare_areas:
        cmp_params = {"mode": "choose", "areas": list(compare_areas)}
    else:
        cmp_params = {"mode": "neighbours", "areas": [deck.area]}
    cmp = views.build_with("compare", source, {"layer": deck.layer, "period": deck.period, "measure": deck.measure,
                                               "group": list(comparator) if comparator else None, **cmp_params},
                           deck.role)
    deck.views.update({"divergence": div, "compare": cmp})
    # the Area profile page (issue 17; years or all periods only): its indicators as the last content slide
    if "profile" in views.BUILDERS and " Q" not in deck.period:
        deck.views["profile"] = views.build_with("profile", source, {"layer": deck.layer, "area": deck.area,
                                                                     "period": deck.period}, deck.role)
    frame = figs.divergence_frame(div.table("div_export").frame, deck.a, deck.b)
    charts = {"map": figs.deck_map(frame, deck.layer, deck.a, deck.b, deck.area, deck.area_name),
              "divergence": figs.dumbbell(frame, deck.a, deck.b, deck.noun, deck.area),
              "funnel": figs.funnel(frame, deck.a, deck.b, deck.area, deck.area_name)}
    if deck.shown and "div_trend_table" in div.tables:
        charts["trend"] = figs.trend(div.table("div_trend_table").frame, deck.a, deck.b, deck.noun)
    if deck.shown and "div_waterfall_table" in div.tables:
        charts["why"] = figs.why(div.table("div_waterfall_table").frame, deck.a, deck.b, deck.noun,
                                 _headline_basis(deck))
    deck.alts.update(_divergence_alts(deck, frame))
    csvs = {f"divergence_{deck.layer}.csv": div.to_csv("div_export"), "comparison.csv": cmp.to_csv("cmp_table"),
            "comparator_group.csv": cmp.to_csv("cmp_group_table")}
    return charts, csvs


def _headline_basis(deck: _Deck) -> str:
    return "Gap in distinct children" if deck.measure == "cse_children" else "Gap where encounters happened"


def _divergence_alts(deck: _Deck, frame: pd.DataFrame) -> dict[str, str]:
    a, b = dv.agency_title(deck.a), dv.agency_title(deck.b)
    outside = frame[frame["outside_998"] & (frame["total"] > 0)]["area_name"].head(5).tolist()
    return {
        "map": (f"Map of {deck.layer_title.lower()} coloured by the ratio of {a} to {b} {deck.noun}: purple where "
                f"{a.lower()} record more, orange where {b.lower()} record more, pale where about equal, grey where "
                f"too few records, hatched where none or not shown. Chosen area, outlined in black: "
                f"{deck.area_name}."),
        "divergence": (f"Dot chart of {a} and {b} {deck.noun} side by side for the areas with the most cases and "
                       f"{deck.area_name} (marked), ordered by their ratio."),
        "funnel": (f"Funnel plot of each area's {a.lower()} share against its total, with 95% and 99.8% limits "
                   f"around the national share; {deck.area_name} is the black ring. Outside the 99.8% limits: "
                   f"{', '.join(outside) if outside else 'none'}."),
        "trend": f"Line chart of {a} and {b} {deck.noun} in {deck.area_name} by financial year.",
        "why": (f"Waterfall chart of why {a} and {b} differ in {deck.area_name}: recording and identity effects "
                "add up to the gap where encounters happened; the boundary effect takes it to the gap on each "
                "agency's own geography."),
    }


def _across_views(deck: _Deck, source: Source) -> tuple[dict, dict]:
    """Build the across view for the deck (flows into and out of the chosen area); charts and CSVs."""
    if deck.layer not in across_view.PACK_LAYERS:
        raise ValueError(f"a boundary-crossing deck is built on {', '.join(across_view.PACK_LAYERS)}, "
                         f"not {deck.layer}")
    views.check_access("across", deck.role)
    params = views.resolve_params("across", {"layer": deck.layer, "top": 10})
    data = across_view.build(source, params, deck.role, figures=())
    if not data.extra.get("linked"):
        raise ValueError("the store has not been linked, so there is nothing to count across boundaries: run "
                         "`python -m lib.cli link --db PATH` first")
    if deck.area in {code for code, _ in data.extra.get("flow_areas", [])}:
        params["focus"] = deck.area
        data = across_view.build(source, params, deck.role, figures=())
    deck.views["across"] = data
    spans_all = data.table("spans_all").frame
    missed = data.table("missed").frame
    # shares of areas with at least as many children as the view's reading asks for (a share of 1 of 2
    # children is not a finding); the chosen area is always drawn when shown
    children = pd.to_numeric(spans_all["children"], errors="coerce")
    ranked = spans_all[(children >= SPAN_MIN_CHILDREN) | (spans_all["area_code"] == deck.area)]
    charts = {"spans": figs.ranked_bars(ranked, "share_any", "Share of resident linked children encountered in more "
                                        "than one area", deck.area, share=True),
              "missed": figs.ranked_bars(missed, "missed", "Children found only by linkage", deck.area, share=False)}
    deck.alts.update({
        "spans": (f"Bar chart of the share of each area's resident linked children whose encounters crossed a "
                  f"boundary, for the areas with the highest shares and {deck.area_name} (black)."),
        "missed": (f"Bar chart of the children found only by linkage in the areas with the most, and "
                   f"{deck.area_name} (black)."),
    })
    csvs = {f"spans_{deck.layer}.csv": data.to_csv("spans_all"), f"flows_{deck.layer}.csv": data.to_csv("flows_all"),
            f"missed_{deck.layer}.csv": data.to_csv("missed")}
    return charts, csvs


# -- slides shared by both kinds ---------------------------------------------------------------------------

def _title_slide(s: Slides, d: _Deck) -> None:
    from pptx.util import Inches, Pt

    title = s.prs.slides.add_slide(s.prs.slide_layouts[0])
    what = "where agencies' counts diverge" if d.kind == "divergence" else "children across boundaries"
    title.shapes.title.text = f"{d.area_name}: {what}"
    title.placeholders[1].text = (f"Joined Up board pack · {d.layer_title} · {counts.period_label(d.period)} · "
                                  f"{ROLE_LABELS[d.role]} view · {d.made:%d %B %Y}")
    for shape, top, height in ((title.shapes.title, 1.7, 1.8), (title.placeholders[1], 3.8, 2.2)):
        shape.left, shape.width, shape.top, shape.height = Inches(0.8), Inches(11.7), Inches(top), Inches(height)
    for paragraph in title.placeholders[1].text_frame.paragraphs:
        paragraph.font.size = Pt(22)
    s.titles.append(title.shapes.title.text)


def _summary(s: Slides, paragraph: str, bullets: list[str]) -> None:
    if words(paragraph) > SUMMARY_WORDS:  # the view's sentence: keep its first clause
        paragraph = paragraph.split(";")[0].rstrip(".") + "."
    slide = s.titled("Summary")
    s.bullets(slide, [paragraph], size=22, height=2.2)
    s.bullets(slide, bullets[:3], top=3.2, size=17, height=3.9, bullet=True)


def _chart_slide(s: Slides, title: str, key: str, notes: str, caption: str = "") -> None:
    slide = s.titled(title)
    height = 7.5 - 1.2 - (0.95 if caption else 0.15)
    s.picture(slide, key, 0.6, 1.2, 12.1, height)
    if caption:
        s.bullets(slide, [caption], top=7.5 - 0.92, size=11, height=0.85)
    s.notes(slide, notes)


def _unavailable_slide(s: Slides, title: str, reason: str) -> None:
    s.bullets(s.titled(title), [reason], size=20)


def _scenario_slide(s: Slides, d: _Deck) -> None:
    scenario = d.views.get("scenario")
    if scenario is None:
        return
    slide = s.titled(f"{SCENARIO_TITLE}: {scenario.title}")
    levers = scenario.extra.get("levers", [])[:2]  # what was changed: a board must see which scenario this is
    s.bullets(slide, ["Scenario: " + " ".join(levers), scenario.sentences[0]] if levers else [scenario.sentences[0]],
              size=14, height=1.4)
    table = scenario.table("summary").frame.copy()
    for column in ("today", "scenario", "change"):
        if column in table.columns:
            table[column] = [cell_text(v) if isinstance(v, str) else f"{v:{'+' if column == 'change' else ''},.4g}"
                             for v in table[column]]
    table.columns = [str(c).capitalize() for c in table.columns]
    s.table(slide, table.head(10), top=2.6, first=6.5, size=12, row_height=0.36, header_height=0.4)
    s.notes(slide, "\n".join(scenario.notes))


def _attribution_slide(s: Slides, d: _Deck) -> None:
    vintage = d.vintage
    s.bullets(s.titled("Attribution, date and data vintage"), [
        ATTRIBUTION,
        f"Produced {d.made:%d %B %Y %H:%M} UTC by Joined Up for the {ROLE_LABELS[d.role]} role.",
        "Geography vintages: " + "; ".join(f"{k}: {v}" for k, v in vintage["geography"].items()) + ".",
        (f"Records: {vintage['records']:,} encounters dated {vintage['encounters_from']} to "
         f"{vintage['encounters_to']}; latest upload {vintage['latest_upload']}; "
         f"linkage run {vintage['linkage_run']}."),
        "Licence: " + vintage["licence"]], size=14)


# -- the divergence deck ------------------------------------------------------------------------------------

def _frame(d: _Deck) -> pd.DataFrame:
    return figs.divergence_frame(d.views["divergence"].table("div_export").frame, d.a, d.b)


def _compare_row(d: _Deck, key: str) -> pd.Series | None:
    cmp = d.views["compare"]
    keys = cmp.extra.get("table_indicators", [])
    if key not in keys:
        return None
    return cmp.table("cmp_table").frame.iloc[keys.index(key)]


def _div_summary(s: Slides, d: _Deck) -> None:
    div, frame = d.views["divergence"], _frame(d)
    a = dv.agency_title(d.a)
    paragraph = div.sentence("area") if d.shown and div.sentence("area") else (
        f"In {d.area_name} the counts are too small to show for your role, so the area is not described.")
    national = frame["national_share"].dropna()
    bullets = []
    if len(national):
        bullets.append(f"England and Wales: {a.lower()} hold {national.iat[0]:.0%} of the {d.noun} the two "
                       "agencies recorded.")
    bullets.append(div.sentence("funnel"))
    why = div.tables.get("div_waterfall_table") if d.shown else None
    if why is not None:
        value = dict(zip(why.frame["component"], why.frame["value"]))
        bullets.append(f"Why they differ in {d.area_name}: recording effect {value['Recording effect']:+,.1f} and "
                       f"identity effect {value['Identity effect']:+,.1f} make the gap where encounters happened; "
                       f"the boundary effect ({value['Boundary effect']:+,.1f}) moves it on each agency's own "
                       "geography.")
    else:
        row = _compare_row(d, "share_a")
        if row is not None:
            def pct(value) -> str:
                return "not shown (small numbers)" if cell_text(value) in ("c", "") else f"{cell_text(value)}%"
            bullets.append(f"{a} share in {d.area_name}: {pct(row.iloc[1])}; comparator group {pct(row.iloc[-2])}; "
                           f"England and Wales {pct(row.iloc[-1])}.")
    _summary(s, paragraph, bullets)


def _chart_columns(d: _Deck) -> dict[str, str]:
    return {"area_name": "Area", "count_a": dv.agency_title(d.a), "count_b": dv.agency_title(d.b),
            "share_a": "A share", "verdict": "Funnel verdict"}


def _map_slide(s: Slides, d: _Deck) -> None:
    a, b = dv.agency_title(d.a), dv.agency_title(d.b)
    slide = s.titled(f"Map: {a} ÷ {b}")
    s.picture(slide, "map", 0.4, 1.2, 6.6)
    s.bullets(slide, [(f"Each area is coloured by the ratio of {a.lower()} to {b.lower()} {d.noun} (log scale; ½ "
                       "added to each count so zeros stay finite)."),
                      "Purple: A records more. Orange: B records more. Pale: about equal.",
                      "Grey: too few records for a ratio to mean much. Hatched: none, or not shown for your role.",
                      f"Chosen area (outlined in black): {d.area_name}.",
                      "The table behind the map is in this slide's notes and in the CSV export."],
              top=1.4, left=7.3, width=5.5, size=16)
    frame = _frame(d)
    s.notes(slide, table_text(frame[frame["total"] > 0], _chart_columns(d), rows=200, percent=("share_a",)))


def _dumbbell_slide(s: Slides, d: _Deck) -> None:
    frame = _frame(d)
    counted = frame[frame["total"] > 0].sort_values("total", ascending=False)
    _chart_slide(s, f"Divergence: {dv.agency_title(d.a)} and {dv.agency_title(d.b)} side by side", "divergence",
                 table_text(counted, _chart_columns(d), rows=200, percent=("share_a",)),
                 f"The 19 areas with the most cases and {d.area_name} (▶, highlighted), ordered by their ratio."
                 + _hidden_caption(d, frame[frame["total"] > 0], "count_a"))


def _funnel_slide(s: Slides, d: _Deck) -> None:
    frame = _frame(d)
    counted = frame[frame["total"] > 0].sort_values("total", ascending=False)
    _chart_slide(s, "Funnel plot: which differences are more than chance", "funnel",
                 table_text(counted, {"area_name": "Area", "total": "A + B", "share_a": "A share",
                                      "lower_998": "99.8% low", "upper_998": "99.8% high", "verdict": "Funnel verdict"},
                            rows=200, percent=("share_a", "lower_998", "upper_998")),
                 (d.views["divergence"].note_text("funnel") or "") + _hidden_caption(d, counted, "share_a"))


def _trend_slide(s: Slides, d: _Deck) -> None:
    div = d.views["divergence"]
    if "trend" not in s.pngs:
        _unavailable_slide(s, f"Trend by financial year: {d.area_name}", div.note_text("trend_hidden") or
                           f"{d.area_name}'s counts are too small to show for your role.")
        return
    table = div.table("div_trend_table").frame
    _chart_slide(s, f"Trend by financial year: {d.area_name}", "trend",
                 table_text(table, {"period": "Financial year", "count_a": dv.agency_title(d.a),
                                    "count_b": dv.agency_title(d.b), "share_a": "A share", "verdict": "Funnel verdict"},
                            percent=("share_a",)), div.sentence("trend") or "")


def _why_slide(s: Slides, d: _Deck) -> None:
    div = d.views["divergence"]
    title = f"Why they differ in {d.area_name}"
    if "why" not in s.pngs:
        _unavailable_slide(s, title, div.note_text("decomposition_hidden") or
                           f"{d.area_name}'s counts are too small to show for your role.")
        return
    table = div.table("div_waterfall_table").frame
    _chart_slide(s, title, "why",
                 table_text(table, {"component": "Effect", "value": "Value", "description": "Meaning"}) + "\n\n"
                 + (div.sentence("decomposition_figures") or "") + "\n\n" + (div.note_text("decomposition") or ""),
                 f"{_headline_basis(d)}: the basis of the summary and funnel. "
                 + (div.sentence("decomposition_figures") or ""))


def _comparison_slide(s: Slides, d: _Deck) -> None:
    cmp = d.views["compare"]
    slide = s.titled("Comparison: areas side by side")
    table = cmp.table("cmp_table")
    s.table(slide, table.frame, top=1.2, first=4.4, row_height=0.33, header_height=0.6, highlight_column=1)
    group = cmp.tables.get("cmp_group_table")
    names = ", ".join(group.frame["Area"]) if group is not None and "Area" in group.frame else ""
    s.bullets(slide, [f"Comparator group: {names}. {table.note}"], top=6.55, size=9, height=0.85)
    s.notes(slide, "\n".join(cmp.sentences))


def _profile_slide(s: Slides, d: _Deck) -> None:
    """The Area profile view's indicators for the chosen area (hook: absent when that page is not built)."""
    profile = d.views.get("profile")
    if profile is None:
        return
    table = profile.table("profile_table").frame
    columns = [c if isinstance(c, str) else table.columns[c] for c in PROFILE_COLUMNS]
    slide = s.titled(f"Area profile: {d.area_name}")
    s.table(slide, table[columns], top=1.2, first=4.6, size=10, row_height=0.42, header_height=0.5)
    notes = [t.replace("**", "") for t in profile.sentences] + list(profile.notes)
    s.notes(slide, "\n".join(notes) + "\n\n" + table_text(table, {c: c for c in table.columns}))


def _quality_lines(d: _Deck) -> list[str]:
    lines = [method_note(d.protected)]
    completeness = _compare_row(d, "valid_nhs_pct")
    name_dob = _compare_row(d, "name_dob_pct")
    if completeness is not None and name_dob is not None:
        lines.append(f"Identifier completeness, England and Wales: {completeness.iloc[-1]}% of records carry a valid "
                     f"NHS number and {name_dob.iloc[-1]}% a full name and date of birth.")
    linkage = _compare_row(d, "linkage_pct")
    if linkage is not None:
        lines.append(f"Linkage: {linkage.iloc[-1]}% of identifiable records are joined to at least one other record "
                     "(NHS number first, then a Splink probabilistic model); anonymous sexual-health contacts are "
                     "counted, never linked.")
    lines.append(FUNNEL_METHOD)
    div = d.views["divergence"]
    for name in ("population_source", "modelled", "apportioned", "unplaced", "suppressed", "not_linked"):
        if div.note_text(name):
            lines.append(div.note_text(name))
    return lines


def _quality_slide(s: Slides, d: _Deck) -> None:
    s.bullets(s.titled("Data quality and methods"), _quality_lines(d), size=13, bullet=True)


#: (name, slide) in order; the scenario slide is there only when a scenario is given.
DIVERGENCE_SLIDES = tuple(zip([*SLIDE_TITLES[:8], SCENARIO_TITLE, *SLIDE_TITLES[8:]],
                              (_title_slide, _div_summary, _map_slide, _dumbbell_slide, _funnel_slide, _trend_slide,
                               _why_slide, _comparison_slide, _scenario_slide, _profile_slide, _quality_slide,
                               _attribution_slide)))


# -- the boundary-crossing deck (from the Across page) -------------------------------------------------------

def _row(frame: pd.DataFrame, area: str) -> pd.Series | None:
    rows = frame[frame["area_code"] == area]
    return None if rows.empty else rows.iloc[0]


def _share_text(value) -> str:
    return value if isinstance(value, str) else cell_text(value, percent=True)


def _given(value) -> str:
    """A text cell of a view table, empty when the view left it out (None or NaN)."""
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


def _hidden_caption(d: _Deck, frame: pd.DataFrame, column: str) -> str:
    """Why the chosen area is not in a chart: the view does not show its figure for the role."""
    row = _row(frame, d.area)
    if row is None or cell_text(row[column]) in ("c", ""):
        return f" {d.area_name} is not in the chart: its figure is not shown for your role (small numbers)."
    return ""


def _across_summary(s: Slides, d: _Deck) -> None:
    data = d.views["across"]
    spans_row = _row(data.table("spans_all").frame, d.area)
    if spans_row is None or cell_text(spans_row["children"]) in ("0", ""):
        paragraph = f"No linked child is resident in {d.area_name}."
    else:
        spanning = ("too few to show were encountered in more than one area"
                    if cell_text(spans_row["spans_any"]) == "c" else
                    f"{cell_text(spans_row['spans_any'])} ({_share_text(spans_row['share_any'])}) were encountered "
                    "in more than one area")
        multi_row = ("too few to show are known to two or more agencies" if cell_text(spans_row["multi_agency"]) == "c"
                     else f"{cell_text(spans_row['multi_agency'])} are known to two or more agencies")
        paragraph = (f"In {d.area_name}, {cell_text(spans_row['children'])} linked children are resident; "
                     f"{spanning}, and {multi_row}.")
    metrics = data.table("metrics").frame.set_index("label")
    multi = metrics.loc["Known to 2+ agencies"]
    missed = metrics.loc["Found only by linkage"]
    multi_delta = f" ({_given(multi['delta'])})" if _given(multi["delta"]) else ""
    missed_delta = f" ({_given(missed['delta'])})" if _given(missed["delta"]) else ""
    bullets = [f"England and Wales: {metrics.iloc[0]['value']} linked children; {multi['value']} known to two or "
               f"more agencies{multi_delta}.",
               f"{missed['value']} children were found only by linkage{missed_delta}."]
    missed_row = _row(data.table("missed").frame, d.area)
    if missed_row is None:
        bullets.append(f"In {d.area_name}: no resident child is known to more than one agency.")
    elif cell_text(missed_row["missed"]) == "c":
        bullets.append(f"In {d.area_name}: too few to show were found only by linkage, of "
                       f"{cell_text(missed_row['multi_agency'])} known to two or more agencies.")
    else:
        bullets.append(f"In {d.area_name}: {cell_text(missed_row['missed'])} found only by linkage, of "
                       f"{cell_text(missed_row['multi_agency'])} known to two or more agencies.")
    _summary(s, paragraph, bullets)


def _metrics_slide(s: Slides, d: _Deck) -> None:
    from pptx.util import Inches, Pt

    data = d.views["across"]
    slide = s.titled("Headline figures, England and Wales")
    for i, row in enumerate(data.table("metrics").frame.itertuples(index=False)):
        box = slide.shapes.add_textbox(Inches(0.6 + i * 3.05), Inches(1.6), Inches(2.9), Inches(2.2))
        frame = box.text_frame
        frame.word_wrap = True
        for j, (text, size, bold) in enumerate(((row.label, 16, False), (row.value, 36, True),
                                                (_given(row.delta), 15, False))):
            paragraph = frame.paragraphs[0] if j == 0 else frame.add_paragraph()
            paragraph.text, paragraph.font.size, paragraph.font.bold = str(text), Pt(size), bold
    helps = [f"{row.label}: {row.help}" for row in data.table("metrics").frame.itertuples(index=False)
             if _given(row.help)]
    notes = data.extra.get("slots", {}).get("headline", [])
    s.bullets(slide, [*helps, *notes], top=4.2, size=14, height=3.0)


def _spans_slide(s: Slides, d: _Deck) -> None:
    data = d.views["across"]
    reading = " ".join(data.extra.get("slots", {}).get("spans_reading", []))
    reading += f" Areas with at least {SPAN_MIN_CHILDREN} resident linked children."
    reading += _hidden_caption(d, data.table("spans_all").frame, "share_any")
    _chart_slide(s, "Children whose encounters cross boundaries", "spans",
                 table_text(data.table("spans_all").frame, {"area_name": "Area", "children": "Resident children",
                                                            "spans_any": "Span 2+ areas", "share_any": "Share"},
                            rows=200, percent=("share_any",)), reading)


def _flows_slide(s: Slides, d: _Deck) -> None:
    data = d.views["across"]
    slide = s.titled(f"Flows into and out of {d.area_name}" if data.params.get("focus") else "The largest flows")
    table = data.table("flows").frame
    if table.empty:
        s.bullets(slide, [f"No child was encountered outside their home area in flows involving {d.area_name}."])
        return
    labels = {c: data.table("flows").columns.get(c, {}).get("label", c) for c in table.columns[:5]}
    shown = table[list(labels)].rename(columns=labels)
    height = 0.4 * len(shown) + 0.65  # rows of 12-point text; the header on two lines
    s.table(slide, shown, top=1.3, first=4.5, size=12, row_height=0.4, header_height=0.65)
    reading = " ".join(data.extra.get("slots", {}).get("flows_reading", []))
    s.bullets(slide, [reading], top=1.45 + height, size=13, height=min(1.2, 7.3 - 1.45 - height))
    s.notes(slide, table_text(table, {c: labels.get(c, c) for c in table.columns}))


def _missed_slide(s: Slides, d: _Deck) -> None:
    data = d.views["across"]
    reading = data.extra.get("slots", {}).get("missed_reading", [""])[0]
    reading += _hidden_caption(d, data.table("missed").frame, "missed")
    _chart_slide(s, "Children found only by linkage", "missed",
                 table_text(data.table("missed").frame, {"area_name": "Area", "multi_agency": "Known to 2+ agencies",
                                                         "missed": "Found only by linkage",
                                                         "share_missed": "Share of 2+ agencies"},
                            rows=200, percent=("share_missed",)), reading)


def _across_quality(s: Slides, d: _Deck) -> None:
    data = d.views["across"]
    slots = data.extra.get("slots", {})
    lines = [method_note(d.protected), *slots.get("missed_reading", [])[1:2], *slots.get("trust", []),
             *slots.get("headline", [])]
    s.bullets(s.titled("Data quality and methods"), list(dict.fromkeys(lines)), size=13, bullet=True)


ACROSS_SLIDES = tuple(zip([*ACROSS_SLIDE_TITLES[:6], SCENARIO_TITLE, *ACROSS_SLIDE_TITLES[6:]],
                          (_title_slide, _across_summary, _metrics_slide, _spans_slide, _flows_slide, _missed_slide,
                           _scenario_slide, _across_quality, _attribution_slide)))
