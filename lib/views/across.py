"""View builder of the Across boundaries page (url_path ``across``): children whose encounters cross
boundaries, flows between areas, children only linkage finds, and (safeguarding lead only) one child.

``build(con_or_store, params, role)`` returns the page for one choice of its controls, already protected for
the role: for aggregate-only roles (analyst, commissioner) every count is published by cell key perturbation
(docs/DISCLOSURE.md): resident children as sums of their home atoms' perturbed counts
(lib.disclosure.residents), children per flow and national totals with the cell key of the children in the cell,
encounters on atoms with the cell key of their records, so the same cell has the same value in the tables, the
CSV, the sentences and the maps; shares are computed from the published counts. The measures are protected in
the ``*_shown`` functions, nowhere else. Child lists and journeys are built for the lead only.
``python -m lib.cli view across --role R --param layer=pfa ...`` writes the same object.

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
from lib.disclosure import cells
from lib.disclosure.notes import SMALL_BELOW, method_note, small_note
from lib.geo import layers
from lib.geo.layers import LAYERS, in_sentence
from lib.measures import aggregates, journeys, spans
from lib.measures import span_figures as across_figures
from lib.views.base import PageData, Param, Source, Table, source_of

PAGE = "across"
TITLE = "Across boundaries"
INTRO = ("Police, children's services and the NHS each see only the part of a child's life that happens on "
         "their patch. Once records are linked, this page shows the children whose encounters cross those "
         "boundaries, where they go, and which of them no agency would connect without linkage.")
#: "any", then the span geographies -> their titles: a live view of the layer registry (a layer registered later
#: is offered and its counts protected).
SPAN_CHOICES = layers.view(lambda layer: bool(layer.span_title), lambda layer: layer.span_title,
                           first={"any": spans.SPAN_TITLES["any"]})
TOP_CHOICES = tuple(range(5, 55, 5))
CHILD_LIST_LIMIT = aggregates.SPANNING_LIMIT  # 300 (the stored list of spanning children is this long)
#: Layers a board pack can be built on from this page: a live view of the layer registry (drawn layers offered for
#: measures).
PACK_LAYERS = layers.PACK_LAYERS

PARAMS: dict[str, Param] = {
    "layer": Param("utla", tuple(LAYERS), help="children resident in areas of this layer"),
    "span": Param("any", SPAN_CHOICES, help="encounters spanning more than one area of this geography"),
    "top": Param(15, TOP_CHOICES, kind=int, help="flows shown"),
    "focus": Param(None, help="flows into or out of this area code (default: all areas)"),
    "resident_in": Param(None, help="lead only: list children resident in this area code (default: all)"),
    "child": Param(None, help="lead only: the child to open (default: none; a journey opens only when chosen)"),
}
FIGURES = ("spans_map", "flows_map", "missed_map", "child_timeline", "child_map")


def span_counts() -> list[str]:
    """The spans table's counts, published below the lead: one per span geography in the registry now."""
    return ["children", "multi_agency", *(f"spans_{k}" for k in (*spans.SPAN_LAYERS, "any"))]


def span_rates() -> dict[str, list[str]]:
    """The spans table's shares -> [denominator, numerator], recomputed from the published counts."""
    return {"share_multi_agency": ["children", "multi_agency"],
            **{f"share_{k}": ["children", f"spans_{k}"] for k in (*spans.SPAN_LAYERS, "any")}}


FLOW_COUNTS = ["children", "encounters", "reverse_children", "reverse_encounters"]
MISSED_COUNTS = ["children", "multi_agency", "missed", "partly_missed"]
MISSED_RATES = {"share_missed": ["multi_agency", "missed"]}
FLOW_COLUMNS = ["flow", "children", "encounters", "reverse_children", "reverse_encounters", "from_code", "to_code"]
MISSED_COLUMNS = ["area_name", "area_code", "children", "multi_agency", "missed", "share_missed", "partly_missed"]
NOT_LINKED = ("Records have not been linked into children yet, so nothing on this page can be counted. "
              "Linking reads every stored record, matches NHS numbers, then scores the rest with the "
              "probabilistic model; it takes a few seconds per 20,000 records.")


# -- measures, memoised per store version ---------------------------------------------------------------

#: Measures the last write stored (lib.measures.aggregates.view_frames, ``agg_frames``), by the first part of
#: their memo key: read from the store when current, computed here otherwise.
STORED = ("spans", "missed", "overview", "flows", "spanning", "flow_encounters")


def _measure(src: Source, key: tuple, compute):
    """``compute()`` once per Source (the page keeps one Source per store version, so reruns reuse it); a measure
    the last write stored (``STORED``) is read instead when it is current."""
    memo = src.__dict__.setdefault("_across_memo", {})
    if key not in memo:
        kept = src.stored("across", *key) if key[0] in STORED else None
        memo[key] = kept if kept is not None else compute()
    return memo[key]


def _children(src: Source, layer: str, keyed: bool = False) -> pd.DataFrame:
    """The layer's child table; ``keyed``: with each child's record key (``rkey``) and home atom, for disclosure
    control (made only for roles below the lead: the lead's figures need no key)."""
    if keyed:
        return _measure(src, ("children", layer, True), lambda: spans.child_keys(src.con, _children(src, layer),
                                                                                 _homes(src)))
    return _measure(src, ("children", layer), lambda: spans.child_table(src.con, layer))


def _homes(src: Source) -> pd.DataFrame:
    """Every linked child's home atom and record key (lib.disclosure.residents), once for every layer."""
    def compute():
        homes = spans.resident_homes(src.con)
        return spans.child_keys(src.con, homes, homes)
    return _measure(src, ("homes",), compute)


def _keys(src: Source) -> dict:
    """The store's record and child keys (lib.disclosure.members), once per store version (Source.keys)."""
    return src.keys()


def _reach(src: Source) -> pd.DataFrame:
    return _measure(src, ("reach",), lambda: spans.exact_match_reach(src.con))


def _spans(src: Source, layer: str, keyed: bool = False) -> pd.DataFrame:
    """Spans by area; ``keyed``: the counts as published below the lead (sums of perturbed home atoms)."""
    return _measure(src, ("spans", layer, keyed), lambda: spans.spans_by_area(
        src.con, layer, children=_children(src, layer, keyed)))


def _missed(src: Source, layer: str, keyed: bool = False) -> pd.DataFrame:
    return _measure(src, ("missed", layer, keyed), lambda: spans.missed_without_linkage(
        src.con, layer, children=_children(src, layer, keyed), reach=_reach(src)))


def _overview(src: Source, layer: str, keyed: bool = False) -> dict:
    return _measure(src, ("overview", layer, keyed), lambda: spans.overview(
        src.con, layer, children=_children(src, layer, keyed), reach=_reach(src),
        keys=_keys(src) if keyed else None))


def _all_flows(src: Source, layer: str, keyed: bool = False) -> pd.DataFrame:
    return _measure(src, ("flows", layer, keyed), lambda: spans.flows(
        src.con, layer, top=None, keys=_keys(src) if keyed else None))


def _flows(src: Source, layer: str, top: int, area: str | None) -> pd.DataFrame:
    """``spans.flows(con, layer, top, area)`` taken from the layer's full, sorted flow table (exact)."""
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


# -- protection for the role (one place) ----------------------------------------------------------------

def _with_shares(frame: pd.DataFrame, rates: dict[str, list[str]]) -> pd.DataFrame:
    """Every share ``rates[share] = [denominator, numerator]`` recomputed from the published counts: a perturbed
    part can exceed its perturbed whole, so a share is shown within 0-100% (docs/DISCLOSURE.md)."""
    shown = frame.copy()
    for share, (denominator, numerator) in rates.items():
        if share in shown.columns:
            shown[share] = (shown[numerator] / shown[denominator].where(shown[denominator] > 0)).astype(
                "float64").clip(0.0, 1.0)
    return shown


def _totals(src: Source, layer: str, role: str) -> dict:
    """The national totals as ``role`` sees them: below the lead, resident children as the sums of their home
    atoms' published counts (so a total is the sum of the areas and the unplaced, as the tables show) and
    records perturbed with their own cell key."""
    totals = _overview(src, layer, aggregates_suppressed(role))
    names = [k for k in totals if not k.startswith((cells.KEY_PREFIX, cells.PUBLISHED_PREFIX))]
    if not aggregates_suppressed(role):
        return {k: totals[k] for k in names}
    return {k: int(totals[cells.PUBLISHED_PREFIX + k]) if cells.PUBLISHED_PREFIX + k in totals
            else int(cells.perturb(totals[k], totals[cells.key_column(k)])) for k in names}


def _spans_shown(src: Source, layer: str, role: str) -> pd.DataFrame:
    """Spans by area as ``role`` sees them: below the lead, resident children published on home atoms
    (lib.disclosure.residents: the keyed table's counts are the published ones)."""
    if not aggregates_suppressed(role):
        return _spans(src, layer)
    return _with_shares(_spans(src, layer, True), span_rates())


def _missed_shown(src: Source, layer: str, role: str) -> pd.DataFrame:
    if not aggregates_suppressed(role):
        return _missed(src, layer)
    return _with_shares(_missed(src, layer, True), MISSED_RATES)


def _all_flows_shown(src: Source, layer: str, role: str) -> pd.DataFrame:
    """Every flow of the layer as ``role`` sees it, in the published order (most children first): below the
    lead, children per flow with their children's cell key; encounters (additive) perturbed on atoms and summed
    (spans.published_flow_encounters); the reverse columns are the reverse flow's published values."""
    def compute():
        if not aggregates_suppressed(role):
            return _all_flows(src, layer)
        shown = cells.publish(_all_flows(src, layer, True), ["children", "reverse_children"])
        encounters = _measure(src, ("flow_encounters", layer),
                              lambda: spans.published_flow_encounters(src.con, layer, src.keys()))
        forward = encounters.set_index(["from_code", "to_code"])["encounters"]
        shown["encounters"] = forward.reindex(pd.MultiIndex.from_frame(shown[["from_code", "to_code"]])
                                              ).fillna(0).to_numpy("int64")
        shown["reverse_encounters"] = forward.reindex(pd.MultiIndex.from_frame(
            shown[["to_code", "from_code"]].set_axis(["from_code", "to_code"], axis=1))).fillna(0).to_numpy("int64")
        # a flow published as nothing is not listed (as a true zero is not); the order is the published one
        shown = shown[(shown["children"] > 0) | (shown["encounters"] > 0)]
        if aggregates_suppressed(role):
            shown = shown.sort_values(["children", "encounters", "from_code", "to_code"],
                                      ascending=[False, False, True, True]).reset_index(drop=True)
        return shown
    return _measure(src, ("flows_shown", layer, aggregates_suppressed(role)), compute)


def _flows_shown(src: Source, layer: str, role: str, top: int, area: str | None) -> pd.DataFrame:
    flows = _all_flows_shown(src, layer, role)
    if area is not None:
        flows = flows[(flows["from_code"] == area) | (flows["to_code"] == area)]
    return flows.head(top).reset_index(drop=True)


def _hatch(role: str, table: pd.DataFrame, *columns: str) -> dict:
    """Map arguments hatching, for aggregate-only roles, the areas where any of ``columns`` (the counts the
    colour is made of: a share's numerator and denominator, or the count itself) is published from 1 to
    ``SMALL_BELOW - 1``: perturbed counts that small may differ from the truth by a few, so the colour may
    too (6 of 11 children read 55% but may be 4 of 12). None for the lead."""
    if not aggregates_suppressed(role):
        return {}
    small = pd.Series(False, index=table.index)
    for column in columns:
        small |= (table[column] > 0) & (table[column] < SMALL_BELOW)
    return {"hatch": table.loc[small, "area_code"].tolist()}


def _reading(role: str, shown: pd.DataFrame, describe, *args) -> str:
    """A page sentence, from the table as ``role`` sees it (published counts for aggregate-only roles)."""
    return describe(shown, *args)


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


def _count(value) -> str:
    return f"{int(value):,}"


def _metric_share(count: int, of: int, text: str) -> str:
    """The delta line of a metric (from the counts the role sees)."""
    return f"{count / max(of, 1):.0%} {text}"


def _headline(src: Source, params: dict, role: str, page: _Page) -> None:
    layer, span = params["layer"], params["span"]
    totals = _totals(src, layer, role)
    children = max(totals["children"], 1)
    rows = [
        ("Linked children", _count(totals["children"]), None,
         f"{_count(max(totals['records'] - totals['anonymous_records'], 0))} records linked; "
         f"{_count(totals['anonymous_records'])} anonymous contacts are counted, never linked."),
        ("Known to 2+ agencies", _count(totals["multi_agency"]),
         _metric_share(totals["multi_agency"], children, "of children"), None),
        (f"Span 2+ {spans.SPAN_TITLES[span] if span != 'any' else 'areas'}",
         _count(totals[f"spans_{span}"]),
         _metric_share(totals[f"spans_{span}"], children, "of children"), None),
        ("Found only by linkage", _count(totals["missed"]),
         _metric_share(totals["missed"], totals["multi_agency"], "of multi-agency"),
         "Known to 2+ agencies with no NHS number, nor name and date of birth, in common across them."),
    ]
    page.data.tables["metrics"] = Table(pd.DataFrame(rows, columns=["label", "value", "delta", "help"])
                                        .astype("object"), title="Headline figures")
    page.data.note("disclosure", method_note(aggregates_suppressed(role)))
    page.data.extra["slots"].setdefault("headline", []).append(page.data.notes[-1])
    if totals["unplaced"]:
        page.say("headline", f"{_count(totals['unplaced'])} linked children have no home postcode "
                             f"placed in {in_sentence(LAYERS[layer].title)} and are left out of the area figures "
                             "below.", "note")
    if LAYERS[layer].modelled:
        page.say("headline", LAYERS[layer].note, "note")


def _spans_section(src: Source, params: dict, role: str, page: _Page) -> None:
    layer, span = params["layer"], params["span"]
    shown = _spans_shown(src, layer, role)
    page.say("spans_reading", _reading(role, shown, across_figures.describe_spans, layer, span))
    page.say("spans_map", f"Colour: share of the children resident in each area whose encounters took place in more "
                          f"than one {'area of any of these geographies' if span == 'any' else spans.SPAN_LAYERS[span]}"
                          ". Darker is higher; areas with no linked resident children are left blank."
                          + (f" Hatched: fewer than {SMALL_BELOW} resident children, or fewer than {SMALL_BELOW} of "
                             "them spanning (perturbed counts that small may differ from the true count by a few, "
                             "and the share with them)." if aggregates_suppressed(role) else ""),
             "note")
    rows = shown[shown["children"] > 0].sort_values([f"share_{span}", "area_code"], ascending=[False, True])
    hints = {"area_name": {"label": "Area"}, "area_code": {"label": "Code"},
             "children": {"label": "Resident children"}, "multi_agency": {"label": "Known to 2+ agencies"},
             "share_multi_agency": {"label": "Share 2+ agencies", "format": "percent"}}
    for key in (*spans.SPAN_LAYERS, "any"):
        hints[f"spans_{key}"] = {"label": f"Span 2+ {spans.SPAN_TITLES[key]}"}
        hints[f"share_{key}"] = {"label": f"Share: {spans.SPAN_TITLES[key]}", "format": "percent"}
    page.data.tables["spans"] = Table(rows.reset_index(drop=True), title="Where children's encounters cross "
                                      "boundaries", columns=hints)
    page.data.tables["spans_all"] = Table(shown.reset_index(drop=True), title="Every area (download)",
                                          downloadable=True, note=method_note(aggregates_suppressed(role)))


def _flows_section(src: Source, params: dict, role: str, page: _Page) -> None:
    layer = params["layer"]
    all_flows = _all_flows_shown(src, layer, role)
    names = spans.area_names(layer)
    areas = sorted(set(all_flows["from_code"]) | set(all_flows["to_code"]), key=lambda c: names.get(c, c))
    page.data.extra["flow_areas"] = [[c, names.get(c, c)] for c in areas]
    focus = params["focus"]
    if focus is not None and focus not in set(areas):
        raise ValueError(f"parameter focus={focus!r}: no flow into or out of it in {layer} "
                         f"(an area code with flows, e.g. {', '.join(areas[:3])})")
    shown = _flows_shown(src, layer, role, int(params["top"]), focus)
    page.say("flows_reading", _reading(role, shown, across_figures.describe_flows))
    if focus is not None and aggregates_suppressed(role):
        resident = _spans_shown(src, layer, role).set_index("area_code")["children"]
        if int(resident.get(focus, 0)) < SMALL_BELOW:  # the user's own area is small: say so, and why
            page.say("flows_reading", small_note([names.get(focus, focus)]), "warning")
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
    page.data.tables["flows_all"] = Table(_all_flows_shown(src, layer, role).reset_index(drop=True),
                                          title="All flows (download)", downloadable=True,
                                          note=method_note(aggregates_suppressed(role)))


def _missed_reading(totals: dict, shown: pd.DataFrame) -> str:
    """The sentence under "Children the system would miss without linkage": its numbers are the headline's
    "Found only by linkage" and "Known to 2+ agencies" (the same totals, ``_totals``, published for the role);
    the area it names is from the area table as the role sees it."""
    multi, missed = totals["multi_agency"], totals["missed"]
    if not multi:
        return "No linked child is known to more than one agency."
    text = (f"{_count(missed)} of {_count(multi)} children known to two or more agencies "
            f"({_metric_share(missed, multi, '').strip()}) share no NHS number, nor the same name and date of "
            "birth, across agencies: without probabilistic linkage no agency would know the others had seen them")
    if shown.empty or not shown["missed"].max():
        return text + "."
    top = shown.sort_values(["missed", "multi_agency"], ascending=False).iloc[0]
    return text + f"; most are in {top['area_name']} ({int(top['missed']):,})."


def _missed_section(src: Source, params: dict, role: str, page: _Page) -> None:
    shown = _missed_shown(src, params["layer"], role)
    page.say("missed_reading", _missed_reading(_totals(src, params["layer"], role), shown))
    page.say("missed_reading", "Counted: children known to two or more agency types where no record of one agency "
                               "shares a valid NHS number, or the same forename, surname and date of birth, with a "
                               "record of another — not even through a chain of such matches. Only probabilistic "
                               "linkage brought their agencies together. Partly missed: exact matching joins some of "
                               "their agencies, but not all.", "note")
    page.say("missed_map", "Colour: number of resident children found only by linkage. Darker is more."
                           + (f" Hatched: from 1 to {SMALL_BELOW - 1} children found only by linkage (perturbed "
                              "counts that small may differ from the true count by a few)."
                              if aggregates_suppressed(role) else ""), "note")
    rows = shown[shown["multi_agency"] > 0].sort_values(["missed", "multi_agency", "area_code"],
                                                        ascending=[False, False, True])
    page.data.tables["missed"] = Table(
        rows[MISSED_COLUMNS].reset_index(drop=True), title="Children the system would miss without linkage",
        columns={"area_name": {"label": "Area"}, "area_code": {"label": "Code"},
                 "children": {"label": "Resident children"}, "multi_agency": {"label": "Known to 2+ agencies"},
                 "missed": {"label": "Found only by linkage"},
                 "share_missed": {"label": "Share of 2+ agencies", "format": "percent"},
                 "partly_missed": {"label": "Partly missed"}})


def _pack_section(src: Source, params: dict, role: str, page: _Page) -> None:
    layer = params["layer"]
    if layer not in PACK_LAYERS:
        page.say("pack", "Board packs are built on police forces, children's services authorities, districts, "
                         "ICBs/health boards or trust catchments: choose one of those layers above.", "note")
        return
    table = _spans_shown(src, layer, role).sort_values(["children", "area_code"], ascending=[False, True])
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
        shown = _spans_shown(src, layer, role)
        return across_figures.spans_map(shown, layer, params["span"], **_hatch(role, shown, "children",
                                                                                    f"spans_{params['span']}"))
    if name == "flows_map":
        return across_figures.flows_map(_flows_shown(src, layer, role, int(params["top"]), params["focus"]), layer)
    if name == "missed_map":
        shown = _missed_shown(src, layer, role)
        return across_figures.missed_map(shown, layer, **_hatch(role, shown, "missed"))
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
    _pack_section(src, params, role, page)
    if child_level:
        _child_section(src, params, role, page)
    page.say("trust", LAYERS["trust"].note, "note")
    wanted = FIGURES if figures is None else tuple(figures)
    for name in wanted:
        if name.startswith("child_") and "child_records" not in data.tables:
            continue
        data.figures[name] = figure(src, data.params, role, name)
    return data
