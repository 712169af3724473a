"""Across boundaries: children whose encounters cross force, council and NHS boundaries; flows; the
children only linkage finds; one child's journey. Thin: widgets, caching and layout; the work is in
lib.measures.spans, lib.measures.journeys and lib.linkage.figures."""
from __future__ import annotations

import streamlit as st

from lib.geo.layers import LAYERS
from lib.linkage import figures
from lib.measures import journeys as journey, spans
from pages import exports
from lib.access.roles import aggregates_suppressed, may_load_data, sees_child_level
from lib.access.views import aggregate_view, count_text, visible_rows
from pages.common import (after_write, audit, audit_view, connection, db_path, export_button, progress_callback,
                          require_page,
                          stored_data_version)

ROLE = require_page("across")  # every role; child lists and journeys below: safeguarding leads only
AGG = aggregates_suppressed(ROLE)  # analysts and commissioners: counts 1-5 as c (lib.access.views)
SPAN_COUNTS = ["children", "multi_agency", *(f"spans_{k}" for k in (*spans.SPAN_LAYERS, "any"))]
SPAN_RATES = {"share_multi_agency": ["children", "multi_agency"],
              **{f"share_{k}": ["children", f"spans_{k}"] for k in (*spans.SPAN_LAYERS, "any")}}
FLOW_COUNTS = ["children", "encounters", "reverse_children", "reverse_encounters"]
MISSED_COUNTS = ["children", "multi_agency", "missed", "partly_missed"]
MISSED_RATES = {"share_missed": ["multi_agency", "missed"]}
SUPPRESSED_NOTE = ("Counts from 1 to 5 are shown as c (with further cells hidden so none can be worked out); "
                   "maps and sentences use only areas whose counts are shown.")


def agg_reading(full, drawn, column: str, describe, *args) -> str:
    """A page sentence; for aggregate-only roles from the areas whose counts are shown."""
    if not AGG:
        return describe(full, *args)
    if drawn[column].sum() == 0 and full[column].sum() > 0:
        return "Every count here is from 1 to 5, too small to show (c)."
    return "Among areas whose counts can be shown: " + describe(drawn, *args)


def as_text_shares(frame, rates):
    """Shares as percentages in text, so a column can hold both numbers and c."""
    out = frame.copy()
    for column in rates:
        if column in out.columns:
            out[column] = out[column].map(lambda v: v if v in ("c", "") else f"{float(v):.0%}").astype("str")
    return out

MAP_CONFIG = {"scrollZoom": True, "displaylogo": False}

st.title("Across boundaries")
st.markdown(
    "Police, children's services and the NHS each see only the part of a child's life that happens on "
    "their patch. Once records are linked, this page shows the children whose encounters cross those "
    "boundaries, where they go, and which of them no agency would connect without linkage."
)


# -- the store ---------------------------------------------------------------------------------------

DB_PATH = db_path()
con = connection(DB_PATH)
version = stored_data_version(con)


def link_button(label: str) -> None:
    """A button that links all records, showing the run's progress, then reloads the page."""
    allowed = may_load_data(ROLE)  # only analysts run linkage; others see why the figures may be stale
    if st.button(label, key="link_now", type="primary", disabled=not allowed,
                 help=None if allowed else "Only an analyst can link records.") and allowed:
        from lib.linkage import run
        from lib.records import versions

        bar = st.progress(0.0, text="Starting linkage…")
        try:  # the linkage is the store's next version (lib.records.versions.write)
            with versions.write(DB_PATH, "link (app)", wait=2) as w:
                summary = run.link(w.con, run.LinkConfig(), progress=progress_callback(bar))
                w.change = f"linkage: {summary['records']:,} records, {summary['children']:,} children"
            after_write()
        except versions.StoreLocked as exc:
            bar.empty()
            st.warning(f"Not linked now: {exc.holder.get('command', 'another writer')} (since "
                       f"{exc.holder.get('started', '?')}) is writing the store. Try again when it finishes; this page "
                       "updates by itself.", icon=":material/sync:")
            return
        audit("link_run", None, f"run {summary.get('run_id')}: {summary['records']} records into "
                                f"{summary['children']} children")
        st.success(f"Linked {summary['records']:,} records into {summary['children']:,} children "
                   f"in {summary['seconds']} s.")
        st.rerun()


if not spans.has_linkage(con):
    st.info("Records have not been linked into children yet, so nothing on this page can be counted. "
            "Linking reads every stored record, matches NHS numbers, then scores the rest with the "
            "probabilistic model; it takes a few seconds per 20,000 records.", icon=":material/info:")
    link_button("Link records now")
    st.stop()

not_linked = spans.records_not_linked(con)
if not_linked:
    st.warning(f"{not_linked:,} record{' was' if not_linked == 1 else 's were'} stored after the last linkage "
               f"run and {'is' if not_linked == 1 else 'are'} not in these figures.", icon=":material/warning:")
    link_button("Link all records again")


# -- cached measures (keyed by the data version, so a new ingest or linkage run refreshes them) --------

@st.cache_data(show_spinner=False, max_entries=32)
def spans_table(path: str, version: str, layer: str):
    return spans.spans_by_area(connection(path), layer)


@st.cache_data(show_spinner=False, max_entries=64)
def flows_table(path: str, version: str, layer: str, top: int, area: str | None):
    return spans.flows(connection(path), layer, top=top, area=area)


@st.cache_data(show_spinner=False, max_entries=32)
def missed_table(path: str, version: str, layer: str):
    return spans.missed_without_linkage(connection(path), layer)


@st.cache_data(show_spinner=False, max_entries=32)
def overview(path: str, version: str, layer: str):
    return spans.overview(connection(path), layer)


@st.cache_data(show_spinner=False, max_entries=64)
def spanning(path: str, version: str, layer: str, area: str | None):
    return spans.spanning_children(connection(path), layer, area=area, limit=300)


@st.cache_data(show_spinner=False, max_entries=64)
def child(path: str, version: str, child_id: str):
    con_ = connection(path)
    return journey.child_records(con_, child_id), journey.child_summary(con_, child_id)


@st.cache_resource(show_spinner=False, max_entries=32)
def spans_figure(path: str, version: str, layer: str, span: str, role: str = "lead"):
    table = spans_table(path, version, layer)
    drawn = visible_rows(table, aggregate_view(table, SPAN_COUNTS, role=role, rates=SPAN_RATES),
                         ["children", f"spans_{span}"])
    return figures.spans_map(drawn, layer, span)


@st.cache_resource(show_spinner=False, max_entries=32)
def flows_figure(path: str, version: str, layer: str, top: int, area: str | None, role: str = "lead"):
    flow_ = flows_table(path, version, layer, top, area)
    drawn = visible_rows(flow_, aggregate_view(flow_, FLOW_COUNTS, role=role, column_totals=False), FLOW_COUNTS)
    return figures.flows_map(drawn, layer)


@st.cache_resource(show_spinner=False, max_entries=64)
def child_figure(path: str, version: str, child_id: str, kind: str):
    records = child(path, version, child_id)[0]
    return figures.timeline_figure(records) if kind == "timeline" else figures.journey_map(records)


@st.cache_resource(show_spinner=False, max_entries=32)
def missed_figure(path: str, version: str, layer: str, role: str = "lead"):
    table = missed_table(path, version, layer)
    drawn = visible_rows(table, aggregate_view(table, MISSED_COUNTS, role=role, rates=MISSED_RATES),
                         ["multi_agency", "missed"])
    return figures.missed_map(drawn, layer)


def lazy_tabs(labels: list[str], key: str):
    """Tabs whose hidden content is not run or sent (each map costs the browser a WebGL canvas)."""
    return st.tabs(labels, key=key, on_change="rerun")


# -- controls and headline -----------------------------------------------------------------------------

left, right = st.columns(2)
layer = left.selectbox("Children resident in", list(LAYERS), index=list(LAYERS).index("utla"),
                       format_func=lambda k: LAYERS[k].title, key="across_layer",
                       help="A child's home area is the home postcode on their most recent record.")
span_options = ["any", *spans.SPAN_LAYERS]
span = right.selectbox("Encounters spanning more than one", span_options, index=0,
                       format_func=lambda k: spans.SPAN_TITLES[k], key="across_span",
                       help="Where the encounters happened. 'ICBs / health boards' counts the ICB in England "
                            "and the local health board in Wales.")

totals = overview(DB_PATH, version, layer)
children = max(totals["children"], 1)
quiet = {"delta_color": "off", "delta_arrow": "off"}
m1, m2, m3, m4 = st.columns(4)
def metric_share(count: int, of: int, text: str):
    """The delta line of a metric; none when the count itself is suppressed for this role."""
    return None if count_text(count, role=ROLE) == "c" or count_text(of, role=ROLE) == "c" else \
        f"{count / max(of, 1):.0%} {text}"


m1.metric("Linked children", count_text(totals["children"], role=ROLE),
          help=f"{count_text(totals['records'] - totals['anonymous_records'], role=ROLE)} records linked; "
               f"{count_text(totals['anonymous_records'], role=ROLE)} anonymous contacts are counted, never linked.")
m2.metric("Known to 2+ agencies", count_text(totals["multi_agency"], role=ROLE),
          metric_share(totals["multi_agency"], children, "of children"), **quiet)
m3.metric(f"Span 2+ {spans.SPAN_TITLES[span] if span != 'any' else 'areas'}",
          count_text(totals[f"spans_{span}"], role=ROLE),
          metric_share(totals[f"spans_{span}"], children, "of children"), **quiet)
m4.metric("Found only by linkage", count_text(totals["missed"], role=ROLE),
          metric_share(totals["missed"], totals["multi_agency"], "of multi-agency"), **quiet,
          help="Known to 2+ agencies with no NHS number, nor name and date of birth, in common across them.")
if AGG:
    st.caption(SUPPRESSED_NOTE)
if totals["unplaced"]:
    st.caption(f"{count_text(totals['unplaced'], role=ROLE)} linked children have no home postcode placed in "
               f"{LAYERS[layer].title.lower()} and are left out of the area figures below.")
if LAYERS[layer].modelled:
    st.caption(LAYERS[layer].note)


# -- spans by area -------------------------------------------------------------------------------------

st.subheader("Where children's encounters cross boundaries")
table = spans_table(DB_PATH, version, layer)
shown_spans = aggregate_view(table, SPAN_COUNTS, role=ROLE, rates=SPAN_RATES)
reading = agg_reading(table, visible_rows(table, shown_spans, ["children", f"spans_{span}"]), "children",
                      figures.describe_spans, layer, span)
st.markdown(reading)
map_tab, table_tab = lazy_tabs(["Map", "Table"], "spans_view")
if map_tab.open:
    with map_tab:
        st.plotly_chart(spans_figure(DB_PATH, version, layer, span, ROLE), width="stretch", config=MAP_CONFIG,
                        key="spans_map", alt=reading)
        st.caption(f"Colour: share of the children resident in each area whose encounters took place in more "
                   f"than one {'area of any of these geographies' if span == 'any' else spans.SPAN_LAYERS[span]}. "
                   "Darker is higher; areas with no linked resident children are left blank.")
if table_tab.open:
    with table_tab:
        shown = shown_spans.loc[table[table["children"] > 0].sort_values(f"share_{span}", ascending=False).index]
        config = {"area_name": "Area", "area_code": "Code", "children": "Resident children",
                  "multi_agency": "Known to 2+ agencies",
                  "share_multi_agency": st.column_config.NumberColumn("Share 2+ agencies", format="percent")}
        for key in (*spans.SPAN_LAYERS, "any"):
            config[f"spans_{key}"] = f"Span 2+ {spans.SPAN_TITLES[key]}"
            config[f"share_{key}"] = st.column_config.NumberColumn(f"Share: {spans.SPAN_TITLES[key]}",
                                                                   format="percent")
        if AGG:
            shown = as_text_shares(shown, SPAN_RATES)
            config = {k: (v if isinstance(v, str) else v["label"]) for k, v in config.items()}
        st.dataframe(shown, hide_index=True, width="stretch", height=380, column_config=config, key="spans_table")
        export_button("Download table (CSV)", shown_spans, f"across_spans_{layer}.csv", "text/csv", key="spans_csv",
                      subject=layer)


# -- flows ---------------------------------------------------------------------------------------------

st.subheader("Where children go: flows between areas")
all_flows = flows_table(DB_PATH, version, layer, None, None)
names = spans.area_names(layer)
c1, c2 = st.columns([1, 2])
top = c1.slider("Flows shown", 5, 50, 15, step=5, key="across_top")
flow_areas = sorted(set(all_flows["from_code"]) | set(all_flows["to_code"]), key=lambda c: names.get(c, c))
focus = c2.selectbox("Into or out of", [None, *flow_areas], key="across_flow_area",
                     format_func=lambda c: "All areas" if c is None else names.get(c, c))
flow = flows_table(DB_PATH, version, layer, top, focus)
flow_shown = aggregate_view(flow, FLOW_COUNTS, role=ROLE, column_totals=False)
reading = agg_reading(flow, visible_rows(flow, flow_shown, FLOW_COUNTS), "children", figures.describe_flows)
st.markdown(reading)
map_tab, table_tab = lazy_tabs(["Map", "Table"], "flows_view")
if map_tab.open:
    with map_tab:
        st.plotly_chart(flows_figure(DB_PATH, version, layer, top, focus, ROLE), width="stretch", config=MAP_CONFIG,
                        key="flows_map", alt=reading)
        st.caption("Each arc runs from the children's home area to an area where they were encountered. It bends to "
                   "the right of travel and ends in an arrowhead, so the two directions are separate arcs; wider "
                   "arcs carry more children. Area centres are weighted by where postcodes are.")
if table_tab.open:
    with table_tab:
        st.dataframe(flow_shown[["flow", "children", "encounters", "reverse_children", "reverse_encounters", "from_code",
                           "to_code"]], hide_index=True, width="stretch", key="flows_table",
                     column_config={"flow": "Home area → encounter area", "children": "Children",
                                    "encounters": "Encounters", "reverse_children": "Children the other way",
                                    "reverse_encounters": "Encounters the other way", "from_code": "From (code)",
                                    "to_code": "To (code)"})
        export_button("Download all flows (CSV)", aggregate_view(all_flows, FLOW_COUNTS, role=ROLE, column_totals=False),
                      f"across_flows_{layer}.csv", "text/csv", key="flows_csv", subject=layer)


# -- missed without linkage ----------------------------------------------------------------------------

st.subheader("Children the system would miss without linkage")
missed = missed_table(DB_PATH, version, layer)
missed_shown = aggregate_view(missed, MISSED_COUNTS, role=ROLE, rates=MISSED_RATES)
reading = agg_reading(missed, visible_rows(missed, missed_shown, ["multi_agency", "missed"]), "multi_agency",
                      figures.describe_missed)
st.markdown(reading)
st.caption("Counted: children known to two or more agency types where no record of one agency shares a valid NHS "
           "number, or the same forename, surname and date of birth, with a record of another — not even through "
           "a chain of such matches. Only probabilistic linkage brought their agencies together. Partly missed: "
           "exact matching joins some of their agencies, but not all.")
table_tab, map_tab = lazy_tabs(["Table", "Map"], "missed_view")
if table_tab.open:
    with table_tab:
        shown = missed_shown.loc[missed[missed["multi_agency"] > 0].sort_values(["missed", "multi_agency"],
                                                                                ascending=False).index]
        if AGG:
            shown = as_text_shares(shown, MISSED_RATES)
        st.dataframe(shown[["area_name", "area_code", "children", "multi_agency", "missed", "share_missed",
                            "partly_missed"]], hide_index=True, width="stretch", height=380, key="missed_table",
                     column_config={"area_name": "Area", "area_code": "Code", "children": "Resident children",
                                    "multi_agency": "Known to 2+ agencies", "missed": "Found only by linkage",
                                    "share_missed": "Share of 2+ agencies" if AGG else
                                    st.column_config.NumberColumn("Share of 2+ agencies", format="percent"),
                                    "partly_missed": "Partly missed"})
if map_tab.open:
    with map_tab:
        st.plotly_chart(missed_figure(DB_PATH, version, layer, ROLE), width="stretch", config=MAP_CONFIG,
                        key="missed_map", alt=reading)
        st.caption("Colour: number of resident children found only by linkage. Darker is more.")


# -- board pack (aggregates only, suppressed for the role) -----------------------------------------------

with st.expander("Board pack for one area (PowerPoint, PNG, CSV)", icon=":material/slideshow:"):
    if layer in ("sicbl", "lhb"):
        st.caption("Board packs are built on police forces, children's services authorities, districts, "
                   "ICBs/health boards or trust catchments: choose one of those layers above.")
    else:
        pack_choices = table.sort_values("children", ascending=False)["area_code"].tolist()
        pack_names = dict(zip(table["area_code"], table["area_name"]))
        pack_area = st.selectbox("Area", pack_choices, format_func=lambda c: pack_names.get(c, c), key="across_bp_area")
        exports.board_pack_controls(layer=layer, area=pack_area, role=ROLE, key="across_bp")

# -- one child -----------------------------------------------------------------------------------------

if not sees_child_level(ROLE):  # lists of children and one child's journey: safeguarding leads only
    st.caption(LAYERS["trust"].note)
    st.stop()

st.subheader("Open one child")
st.caption("For safeguarding leads. Identifiers are masked: NHS numbers show only their status, names only as "
           "sound codes, dates of birth as the year, home addresses as the postcode sector.")
c1, c2 = st.columns([1, 2])
resident_in = c1.selectbox("Resident in", [None, *table.loc[table["children"] > 0, "area_code"]], key="child_area",
                           format_func=lambda c: "All areas" if c is None else names.get(c, c))
candidates = spanning(DB_PATH, version, layer, resident_in)
audit_view("view_list", f"{layer}:{resident_in or 'all areas'}", f"{len(candidates)} children listed "
           "(encounters in several areas)", slot="across_list")
if candidates.empty:
    st.info("No child resident here has encounters in more than one area.")
    st.stop()
labels = {row.child_id: f"{row.child_id} — {row.agencies} agencies, {row.records} records, up to {row.areas} "
                        f"areas; home {row.home_name}" for row in candidates.itertuples(index=False)}
child_id = c2.selectbox("Child (encounters in several areas; most areas first)", list(labels),
                        format_func=labels.get, key="child_id")
records, summary = child(DB_PATH, version, child_id)
audit_view("view_child", child_id, f"resident in {resident_in or 'any area'} ({layer})", slot="across_child")
reading = journey.describe_child(summary)
st.markdown(f"**{reading}**")
home = summary["home"]
weakest = summary["lowest_probability"]
st.markdown(f"Home (most recent record): {home['utla'] or 'not placed'} · {home['pfa'] or '—'} · "
            f"{home['nhs'] or '—'}. Linked by: "
            + ", ".join(f"{method.replace('_', ' ')} ({n} records)" for method, n in summary["link_methods"].items())
            + (f"; the weakest probabilistic link has match probability {journey.probability_text(weakest)}."
               if weakest is not None else "."))
for flag in summary["flags"]:
    st.warning(f"Check: {flag}.", icon=":material/warning:")

time_tab, map_tab, records_tab = lazy_tabs(["Timeline", "Map", "Records"], "child_view")
if time_tab.open:
    with time_tab:
        st.plotly_chart(child_figure(DB_PATH, version, child_id, "timeline"), width="stretch",
                        key="child_timeline", config={"displaylogo": False}, alt=reading)
        st.caption("One row per agency; filled diamonds are records flagged for child sexual exploitation, open "
                   "circles are not flagged, open squares did not record it. The Records tab lists the same.")
if map_tab.open:
    with map_tab:
        st.plotly_chart(child_figure(DB_PATH, version, child_id, "map"), width="stretch", key="child_map",
                        config=MAP_CONFIG, alt=reading)
        st.caption("Where each encounter happened (the centre of its neighbourhood, LSOA). Where several agencies "
                   "saw the child in one place their dots are drawn as rings inside each other (police outermost); "
                   "dots grow with the number of encounters; the grey line joins them in date order. Outlines: "
                   "police force areas and children's services authorities. Hover a dot for dates and details.")
if records_tab.open:
    with records_tab:
        st.dataframe(journey.display_table(records), hide_index=True, width="stretch", key="child_records",
                     column_config={"Match probability": st.column_config.NumberColumn(format="%.4f")})

st.caption(LAYERS["trust"].note)
