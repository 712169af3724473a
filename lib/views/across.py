"""View builder of the Across boundaries page (url_path ``across``): children whose encounters cross
boundaries, flows between areas, children only linkage finds, and (safeguarding lead only) one child.

``build(con_or_store, params, role)`` returns the page for one choice of its controls, already protected for
the role: for aggregate-only roles (analyst, commissioner) counts 1-5 are ``c`` with secondary suppression,
and sentences and maps use only areas whose counts are shown. The protection is applied in one place,
``_protect`` (issue 16 replaces it with the disclosure service). Child lists and journeys are built for the
lead only. ``python -m lib.cli view across --role R --param layer=pfa ...`` writes the same object.

Where each text goes on the page: ``extra["slots"]`` maps a slot name to its texts, in page order, and each
text is also in ``sentences`` (markdown readings) or ``notes`` (captions); warnings and info boxes are in
``extra["warnings"]`` / ``extra["info"]`` too. Headline figures: ``tables["metrics"]`` (label, value,
delta, help), as in lib.views.boundaries. Selector options the page needs are in ``extra`` (areas as
``[code, name]`` pairs, in the order offered).

Figures are Plotly objects (``to_json`` writes their dict spec) and costly (each map carries its layer's
boundaries): ``build(..., figures=())`` leaves them out and ``figure(source, params, role, name)`` draws one,
so the page draws only open tabs.
Expensive measures are memoised on the ``Source`` the page keeps per store version (``_measure``).
"""
from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from lib.access.roles import aggregates_suppressed, sees_child_level
from lib.access.views import aggregate_view, count_text, visible_rows
from lib.geo.layers import LAYERS, in_sentence
from lib.measures import journeys, spans
from lib.measures import span_figures as across_figures
from lib.views.base import PageData, Param, Source, Table, source_of

PAGE = "across"
TITLE = "Across boundaries"
INTRO = ("Police, children's services and the NHS each see only the part of a child's life that happens on "
         "their patch. Once records are linked, this page shows the children whose encounters cross those "
         "boundaries, where they go, and which of them no agency would connect without linkage.")
SPAN_CHOICES = ("any", *spans.SPAN_LAYERS)
TOP_CHOICES = tuple(range(5, 55, 5))
CHILD_LIST_LIMIT = 300
#: Layers a board pack can be built on from this page.
PACK_LAYERS = tuple(k for k in LAYERS if k not in ("sicbl", "lhb"))

PARAMS: dict[str, Param] = {
    "layer": Param("utla", tuple(LAYERS), help="children resident in areas of this layer"),
    "span": Param("any", SPAN_CHOICES, help="encounters spanning more than one area of this geography"),
    "top": Param(15, TOP_CHOICES, kind=int, help="flows shown"),
    "focus": Param(None, help="flows into or out of this area code (default: all areas)"),
    "resident_in": Param(None, help="lead only: list children resident in this area code (default: all)"),
    "child": Param(None, help="lead only: the child to open (default: none; a journey opens only when chosen)"),
}
FIGURES = ("spans_map", "flows_map", "missed_map", "child_timeline", "child_map")

SPAN_COUNTS = ["children", "multi_agency", *(f"spans_{k}" for k in (*spans.SPAN_LAYERS, "any"))]
SPAN_RATES = {"share_multi_agency": ["children", "multi_agency"],
              **{f"share_{k}": ["children", f"spans_{k}"] for k in (*spans.SPAN_LAYERS, "any")}}
FLOW_COUNTS = ["children", "encounters", "reverse_children", "reverse_encounters"]
MISSED_COUNTS = ["children", "multi_agency", "missed", "partly_missed"]
MISSED_RATES = {"share_missed": ["multi_agency", "missed"]}
FLOW_COLUMNS = ["flow", "children", "encounters", "reverse_children", "reverse_encounters", "from_code", "to_code"]
MISSED_COLUMNS = ["area_name", "area_code", "children", "multi_agency", "missed", "share_missed", "partly_missed"]
SUPPRESSED_NOTE = ("Counts from 1 to 5 are shown as c (with further cells hidden so none can be worked out); "
                   "maps and sentences use only areas whose counts are shown.")
NOT_LINKED = ("Records have not been linked into children yet, so nothing on this page can be counted. "
              "Linking reads every stored record, matches NHS numbers, then scores the rest with the "
              "probabilistic model; it takes a few seconds per 20,000 records.")


# -- measures, memoised per store version ---------------------------------------------------------------

def _measure(src: Source, key: tuple, compute):
    """``compute()`` once per Source (the page keeps one Source per store version, so reruns reuse it)."""
    memo = src.__dict__.setdefault("_across_memo", {})
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def _children(src: Source, layer: str) -> pd.DataFrame:
    return _measure(src, ("children", layer), lambda: spans.child_table(src.con, layer))


def _reach(src: Source) -> pd.DataFrame:
    return _measure(src, ("reach",), lambda: spans.exact_match_reach(src.con))


def _spans(src: Source, layer: str) -> pd.DataFrame:
    return _measure(src, ("spans", layer), lambda: spans.spans_by_area(src.con, layer, children=_children(src, layer)))


def _missed(src: Source, layer: str) -> pd.DataFrame:
    return _measure(src, ("missed", layer), lambda: spans.missed_without_linkage(
        src.con, layer, children=_children(src, layer), reach=_reach(src)))


def _overview(src: Source, layer: str) -> dict:
    return _measure(src, ("overview", layer), lambda: spans.overview(
        src.con, layer, children=_children(src, layer), reach=_reach(src)))


def _all_flows(src: Source, layer: str) -> pd.DataFrame:
    return _measure(src, ("flows", layer), lambda: spans.flows(src.con, layer, top=None))


def _flows(src: Source, layer: str, top: int, area: str | None) -> pd.DataFrame:
    """``spans.flows(con, layer, top, area)`` taken from the layer's full, sorted flow table."""
    flows = _all_flows(src, layer)
    if area is not None:
        flows = flows[(flows["from_code"] == area) | (flows["to_code"] == area)]
    return flows.head(top).reset_index(drop=True)


def _spanning(src: Source, layer: str, area: str | None) -> pd.DataFrame:
    return _measure(src, ("spanning", layer, area), lambda: spans.spanning_children(
        src.con, layer, area=area, limit=CHILD_LIST_LIMIT, children=_children(src, layer)))


def _child(src: Source, child_id: str) -> tuple[pd.DataFrame, dict]:
    return _measure(src, ("child", child_id), lambda: (journeys.child_records(src.con, child_id),
                                                       journeys.child_summary(src.con, child_id)))


# -- protection for the role (one place: issue 16's disclosure service replaces this) ----------------------

def _protect(frame: pd.DataFrame, counts: list[str], role: str, *, rates=None, column_totals: bool = True
             ) -> pd.DataFrame:
    return aggregate_view(frame, counts, role=role, rates=rates, column_totals=column_totals)


def _as_text_shares(frame: pd.DataFrame, rates) -> pd.DataFrame:
    """Shares as percentages in text, so a column can hold both numbers and c."""
    out = frame.copy()
    for column in rates:
        if column in out.columns:
            out[column] = out[column].map(lambda v: v if v in ("c", "") else f"{float(v):.0%}").astype("str")
    return out


def _reading(role: str, full: pd.DataFrame, drawn: pd.DataFrame, column: str, describe, *args) -> str:
    """A page sentence; for aggregate-only roles from the areas whose counts are shown."""
    if not aggregates_suppressed(role):
        return describe(full, *args)
    if drawn[column].sum() == 0 and full[column].sum() > 0:
        return "Every count here is from 1 to 5, too small to show (c)."
    return "Among areas whose counts can be shown: " + describe(drawn, *args)


# -- the sections --------------------------------------------------------------------------------------

class _Page:
    """Collects the page's texts by slot while the sections are built."""

    def __init__(self, data: PageData):
        self.data = data
        data.extra.setdefault("slots", {})
        data.extra.setdefault("warnings", [])
        data.extra.setdefault("info", [])

    def say(self, slot: str, text: str, kind: str = "sentence") -> None:
        self.data.extra["slots"].setdefault(slot, []).append(text)
        if kind == "sentence":
            self.data.sentences.append(text)
        elif kind == "note":
            self.data.notes.append(text)
        else:
            self.data.extra["warnings" if kind == "warning" else "info"].append(text)


def _metric_share(count: int, of: int, text: str, role: str) -> str | None:
    """The delta line of a metric; none when the count itself is suppressed for this role."""
    return None if count_text(count, role=role) == "c" or count_text(of, role=role) == "c" else \
        f"{count / max(of, 1):.0%} {text}"


def _headline(src: Source, params: dict, role: str, page: _Page) -> None:
    layer, span = params["layer"], params["span"]
    totals = _overview(src, layer)
    children = max(totals["children"], 1)
    rows = [
        ("Linked children", count_text(totals["children"], role=role), None,
         f"{count_text(totals['records'] - totals['anonymous_records'], role=role)} records linked; "
         f"{count_text(totals['anonymous_records'], role=role)} anonymous contacts are counted, never linked."),
        ("Known to 2+ agencies", count_text(totals["multi_agency"], role=role),
         _metric_share(totals["multi_agency"], children, "of children", role), None),
        (f"Span 2+ {spans.SPAN_TITLES[span] if span != 'any' else 'areas'}",
         count_text(totals[f"spans_{span}"], role=role),
         _metric_share(totals[f"spans_{span}"], children, "of children", role), None),
        ("Found only by linkage", count_text(totals["missed"], role=role),
         _metric_share(totals["missed"], totals["multi_agency"], "of multi-agency", role),
         "Known to 2+ agencies with no NHS number, nor name and date of birth, in common across them."),
    ]
    page.data.tables["metrics"] = Table(pd.DataFrame(rows, columns=["label", "value", "delta", "help"])
                                        .astype("object"), title="Headline figures")
    if aggregates_suppressed(role):
        page.say("headline", SUPPRESSED_NOTE, "note")
    if totals["unplaced"]:
        page.say("headline", f"{count_text(totals['unplaced'], role=role)} linked children have no home postcode "
                             f"placed in {in_sentence(LAYERS[layer].title)} and are left out of the area figures "
                             "below.", "note")
    if LAYERS[layer].modelled:
        page.say("headline", LAYERS[layer].note, "note")


def _spans_section(src: Source, params: dict, role: str, page: _Page) -> None:
    layer, span = params["layer"], params["span"]
    table = _spans(src, layer)
    shown = _protect(table, SPAN_COUNTS, role, rates=SPAN_RATES)
    page.say("spans_reading", _reading(role, table, visible_rows(table, shown, ["children", f"spans_{span}"]),
                                       "children", across_figures.describe_spans, layer, span))
    page.say("spans_map", f"Colour: share of the children resident in each area whose encounters took place in more "
                          f"than one {'area of any of these geographies' if span == 'any' else spans.SPAN_LAYERS[span]}"
                          ". Darker is higher; areas with no linked resident children are left blank.", "note")
    rows = shown.loc[table[table["children"] > 0].sort_values(f"share_{span}", ascending=False).index]
    hints = {"area_name": {"label": "Area"}, "area_code": {"label": "Code"},
             "children": {"label": "Resident children"}, "multi_agency": {"label": "Known to 2+ agencies"},
             "share_multi_agency": {"label": "Share 2+ agencies", "format": "percent"}}
    for key in (*spans.SPAN_LAYERS, "any"):
        hints[f"spans_{key}"] = {"label": f"Span 2+ {spans.SPAN_TITLES[key]}"}
        hints[f"share_{key}"] = {"label": f"Share: {spans.SPAN_TITLES[key]}", "format": "percent"}
    if aggregates_suppressed(role):
        rows = _as_text_shares(rows, SPAN_RATES)
        hints = {k: {"label": v["label"]} for k, v in hints.items()}
    page.data.tables["spans"] = Table(rows.reset_index(drop=True), title="Where children's encounters cross "
                                      "boundaries", columns=hints)
    # aggregate roles download shares as percentages in text ("100%"), never a bare 1 beside the counts
    every = _as_text_shares(shown, SPAN_RATES) if aggregates_suppressed(role) else shown
    page.data.tables["spans_all"] = Table(every.reset_index(drop=True), title="Every area (download)",
                                          downloadable=True)


def _flows_section(src: Source, params: dict, role: str, page: _Page) -> None:
    layer = params["layer"]
    all_flows = _all_flows(src, layer)
    names = spans.area_names(layer)
    areas = sorted(set(all_flows["from_code"]) | set(all_flows["to_code"]), key=lambda c: names.get(c, c))
    page.data.extra["flow_areas"] = [[c, names.get(c, c)] for c in areas]
    focus = params["focus"]
    if focus is not None and focus not in set(areas):
        raise ValueError(f"parameter focus={focus!r}: no flow into or out of it in {layer} "
                         f"(an area code with flows, e.g. {', '.join(areas[:3])})")
    flow = _flows(src, layer, int(params["top"]), focus)
    shown = _protect(flow, FLOW_COUNTS, role, column_totals=False)
    page.say("flows_reading", _reading(role, flow, visible_rows(flow, shown, FLOW_COUNTS), "children",
                                       across_figures.describe_flows))
    page.say("flows_map", "Each arc runs from the children's home area to an area where they were encountered. It "
                          "bends to the right of travel and ends in an arrowhead, so the two directions are separate "
                          "arcs; wider arcs carry more children. Area centres are weighted by where postcodes are.",
             "note")
    page.data.tables["flows"] = Table(
        shown[FLOW_COLUMNS].reset_index(drop=True), title="Where children go: flows between areas",
        columns={"flow": {"label": "Home area → encounter area"}, "children": {"label": "Children"},
                 "encounters": {"label": "Encounters"}, "reverse_children": {"label": "Children the other way"},
                 "reverse_encounters": {"label": "Encounters the other way"}, "from_code": {"label": "From (code)"},
                 "to_code": {"label": "To (code)"}})
    page.data.tables["flows_all"] = Table(
        _protect(all_flows, FLOW_COUNTS, role, column_totals=False).reset_index(drop=True),
        title="All flows (download)", downloadable=True)


def _missed_reading(totals: dict, drawn: pd.DataFrame, role: str) -> str:
    """The sentence under "Children the system would miss without linkage": its numbers are the headline's
    "Found only by linkage" and "Known to 2+ agencies" (one definition: ``_overview``, as ``_headline``);
    the area it names is among those whose counts the role may see."""
    multi, missed = totals["multi_agency"], totals["missed"]
    if not multi:
        return "No linked child is known to more than one agency."
    share = _metric_share(missed, multi, "", role)
    text = (f"{count_text(missed, role=role)} of {count_text(multi, role=role)} children known to two or more "
            f"agencies{f' ({share.strip()})' if share else ''} share no NHS number, nor the same name and date of "
            "birth, across agencies: without probabilistic linkage no agency would know the others had seen them")
    if drawn.empty or not drawn["missed"].max():
        return text + "."
    top = drawn.sort_values(["missed", "multi_agency"], ascending=False).iloc[0]
    where = "of the areas whose counts can be shown, most are in" if aggregates_suppressed(role) else "most are in"
    return text + f"; {where} {top['area_name']} ({int(top['missed']):,})."


def _missed_section(src: Source, params: dict, role: str, page: _Page) -> None:
    missed = _missed(src, params["layer"])
    shown = _protect(missed, MISSED_COUNTS, role, rates=MISSED_RATES)
    page.say("missed_reading", _missed_reading(_overview(src, params["layer"]),
                                               visible_rows(missed, shown, ["multi_agency", "missed"]), role))
    page.say("missed_reading", "Counted: children known to two or more agency types where no record of one agency "
                               "shares a valid NHS number, or the same forename, surname and date of birth, with a "
                               "record of another — not even through a chain of such matches. Only probabilistic "
                               "linkage brought their agencies together. Partly missed: exact matching joins some of "
                               "their agencies, but not all.", "note")
    page.say("missed_map", "Colour: number of resident children found only by linkage. Darker is more.", "note")
    rows = shown.loc[missed[missed["multi_agency"] > 0].sort_values(["missed", "multi_agency"], ascending=False).index]
    aggregate = aggregates_suppressed(role)
    if aggregate:
        rows = _as_text_shares(rows, MISSED_RATES)
    page.data.tables["missed"] = Table(
        rows[MISSED_COLUMNS].reset_index(drop=True), title="Children the system would miss without linkage",
        columns={"area_name": {"label": "Area"}, "area_code": {"label": "Code"},
                 "children": {"label": "Resident children"}, "multi_agency": {"label": "Known to 2+ agencies"},
                 "missed": {"label": "Found only by linkage"},
                 "share_missed": {"label": "Share of 2+ agencies"} if aggregate else
                 {"label": "Share of 2+ agencies", "format": "percent"},
                 "partly_missed": {"label": "Partly missed"}})


def _pack_section(src: Source, params: dict, page: _Page) -> None:
    layer = params["layer"]
    if layer not in PACK_LAYERS:
        page.say("pack", "Board packs are built on police forces, children's services authorities, districts, "
                         "ICBs/health boards or trust catchments: choose one of those layers above.", "note")
        return
    table = _spans(src, layer).sort_values("children", ascending=False)
    page.data.extra["pack_areas"] = [[c, n] for c, n in zip(table["area_code"], table["area_name"])]


def _child_section(src: Source, params: dict, role: str, page: _Page) -> None:
    layer = params["layer"]
    page.say("child_intro", "For safeguarding leads. Identifiers are masked: NHS numbers show only their status, "
                            "names only as sound codes, dates of birth as the year, home addresses as the postcode "
                            "sector.", "note")
    table = _spans(src, layer)
    resident = table.loc[table["children"] > 0, "area_code"].tolist()
    names = spans.area_names(layer)
    page.data.extra["resident_areas"] = [[c, names.get(c, c)] for c in resident]
    area = params["resident_in"]
    if area is not None and area not in set(resident):
        raise ValueError(f"parameter resident_in={area!r}: no linked child is resident there in {layer}")
    candidates = _spanning(src, layer, area)
    labels = {row.child_id: f"{row.child_id} — {row.agencies} agencies, {row.records} records, up to {row.areas} "
                            f"areas; home {row.home_name}" for row in candidates.itertuples(index=False)}
    page.data.extra["children"] = [[k, v] for k, v in labels.items()]
    if candidates.empty:
        page.say("child_list", "No child resident here has encounters in more than one area.", "info")
        return
    child_id = params["child"]
    if child_id is None:  # a child's journey opens only when one is chosen (and only then is it audited)
        page.say("child_list", "Choose a child above to open their journey (the choice is recorded in the audit "
                               "trail).", "note")
        return
    if child_id not in labels:
        raise ValueError(f"parameter child={child_id!r}: not among the children listed for resident_in="
                         f"{area!r} (encounters in several areas)")
    page.data.params["child"] = child_id
    records, summary = _child(src, child_id)
    page.say("child_reading", f"**{journeys.describe_child(summary)}**")
    home, weakest = summary["home"], summary["lowest_probability"]
    page.say("child_reading",
             f"Home (most recent record): {home['utla'] or 'not placed'} · {home['pfa'] or '—'} · "
             f"{home['nhs'] or '—'}. Linked by: "
             + ", ".join(f"{method.replace('_', ' ')} ({n} records)" for method, n in summary["link_methods"].items())
             + (f"; the weakest probabilistic link has match probability {journeys.probability_text(weakest)}."
                if weakest is not None else "."))
    for flag in summary["flags"]:
        page.say("child_flags", f"Check: {flag}.", "warning")
    page.say("child_timeline", "One row per agency; filled diamonds are records flagged for child sexual "
                               "exploitation, open circles are not flagged, open squares did not record it. The "
                               "Records tab lists the same.", "note")
    page.say("child_map", "Where each encounter happened (the centre of its neighbourhood, LSOA). Where several "
                          "agencies saw the child in one place their dots are drawn as rings inside each other (police "
                          "outermost); dots grow with the number of encounters; the grey line joins them in date "
                          "order. Outlines: police force areas and children's services authorities. Hover a dot for "
                          "dates and details.", "note")
    page.data.tables["child_records"] = Table(
        journeys.display_table(records), title=f"Records of {child_id} (masked)",
        columns={"Match probability": {"format": "%.4f"}})


# -- what the page shows that the audit trail records (the page and `view across` write the same rows) ---------

def audit_rows(con_or_store, data: PageData) -> list[tuple[str, str, str]]:
    """The audit rows (action, subject, detail) for what ``data`` shows of children: the lead's list of
    children (``view_list``) and, only when a child was chosen, that child's journey (``view_child``)."""
    if "children" not in data.extra:
        return []
    layer, area = data.params["layer"], data.params.get("resident_in")
    rows = [("view_list", f"{layer}:{area or 'all areas'}",
             f"{len(data.extra['children'])} children listed (encounters in several areas)")]
    if data.params.get("child") and "child_records" in data.tables:
        rows.append(("view_child", data.params["child"], f"resident in {area or 'any area'} ({layer})"))
    return rows


# -- figures -------------------------------------------------------------------------------------------

def figure(con_or_store, params: dict, role: str, name: str):
    """One of the page's figures (``FIGURES``) as a Plotly figure, drawn from the rows the role may see."""
    src = source_of(con_or_store)
    layer = params["layer"]
    if name == "spans_map":
        table = _spans(src, layer)
        drawn = visible_rows(table, _protect(table, SPAN_COUNTS, role, rates=SPAN_RATES),
                             ["children", f"spans_{params['span']}"])
        return across_figures.spans_map(drawn, layer, params["span"])
    if name == "flows_map":
        flow = _flows(src, layer, int(params["top"]), params["focus"])
        return across_figures.flows_map(visible_rows(flow, _protect(flow, FLOW_COUNTS, role, column_totals=False),
                                                     FLOW_COUNTS), layer)
    if name == "missed_map":
        table = _missed(src, layer)
        drawn = visible_rows(table, _protect(table, MISSED_COUNTS, role, rates=MISSED_RATES),
                             ["multi_agency", "missed"])
        return across_figures.missed_map(drawn, layer)
    if name in ("child_timeline", "child_map"):
        if not sees_child_level(role) or not params.get("child"):
            raise ValueError(f"figure {name!r}: one child's journey, for the safeguarding lead with a child chosen")
        records = _child(src, params["child"])[0]
        return across_figures.timeline_figure(records) if name == "child_timeline" else \
            across_figures.journey_map(records)
    raise ValueError(f"page {PAGE!r} has no figure {name!r}: expected one of {', '.join(FIGURES)}")


# -- the page ------------------------------------------------------------------------------------------

def build(con_or_store, params: dict, role: str, *, figures: Iterable[str] | None = None) -> PageData:
    """The Across boundaries page for ``params`` (resolved by lib.views.resolve_params) and ``role``.
    ``figures``: the figures to draw (default all; the page passes ``()`` and draws open tabs itself)."""
    src = source_of(con_or_store)
    data = PageData(page=PAGE, role=role, params=dict(params), data_version=src.data_version(), title=TITLE,
                    sentences=[], extra={"linked": False})
    page = _Page(data)
    child_level = sees_child_level(role)
    if not child_level and (params.get("resident_in") is not None or params.get("child") is not None):
        raise ValueError("parameters resident_in and child list and open children: safeguarding lead only")
    if data.data_version.startswith("0:"):
        page.say("empty", "No encounter records are stored yet. Load extracts on the Data page, or "
                          "`python -m lib.cli ingest FILE --db PATH`.", "info")
        return data
    if not spans.has_linkage(src.con):
        page.say("not_linked", NOT_LINKED, "info")
        return data
    data.extra["linked"] = True
    not_linked = spans.records_not_linked(src.con)
    if not_linked:
        page.say("stale", f"{not_linked:,} record{' was' if not_linked == 1 else 's were'} stored after the last "
                          f"linkage run and {'is' if not_linked == 1 else 'are'} not in these figures.", "warning")
    _headline(src, params, role, page)
    _spans_section(src, params, role, page)
    _flows_section(src, params, role, page)
    _missed_section(src, params, role, page)
    _pack_section(src, params, page)
    if child_level:
        _child_section(src, params, role, page)
    page.say("trust", LAYERS["trust"].note, "note")
    wanted = FIGURES if figures is None else tuple(figures)
    for name in wanted:
        if name.startswith("child_") and "child_records" not in data.tables:
            continue
        data.figures[name] = figure(src, data.params, role, name)
    return data
