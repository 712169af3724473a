"""Across boundaries: children whose encounters cross force, council and NHS boundaries; flows; the
children only linkage finds; one child's journey (safeguarding lead). Renders only what lib.views.across
builds (every number, sentence, table and figure); widgets, caching, the lead's child picker and the
linkage button are here. ``python -m lib.cli view across --role R --param ...`` writes the same view."""
from __future__ import annotations

import streamlit as st

from lib import views
from lib.access.roles import aggregates_suppressed, may_load_data, sees_child_level
from lib.geo.layers import LAYERS
from lib.measures import spans
from lib.views import across as view_def
from lib.views.base import Source
from pages import common, exports
from pages.common import (
    after_write,
    audit,
    audit_view,
    column_config,
    connection,
    db_path,
    export_button,
    pinned_version,
    progress_callback,
    require_page,
    stored_data_version,
)

ROLE = require_page("across")  # every role; child lists and journeys below: safeguarding leads only
#: The lead's downloads are exact: their file names say so (lib.disclosure.notes.UNPROTECTED on the page).
EXPORT_SUFFIX = "" if aggregates_suppressed(ROLE) else "_unprotected"
MAP_CONFIG = {"scrollZoom": True, "displaylogo": False}

st.title(view_def.TITLE)
st.markdown(view_def.INTRO)

DB_PATH = db_path()
VERSION = stored_data_version(connection(DB_PATH))
PIN = pinned_version()


# -- the view, cached per store version and parameters (a new ingest or linkage run refreshes it) ----------

@st.cache_resource(show_spinner=False, max_entries=4)
def source(path: str, pin: int | None, version: str) -> Source:
    """The store this version of the page reads; the builder memoises its measures on it."""
    return Source(connection(path), path)


@st.cache_resource(show_spinner=False, max_entries=64)
def page_view(path: str, pin: int | None, version: str, role: str, items: tuple):
    views.check_access("across", role)
    return view_def.build(source(path, pin, version), views.resolve_params("across", dict(items)), role, figures=())


@st.cache_resource(show_spinner=False, max_entries=64)
def page_figure(path: str, pin: int | None, version: str, role: str, items: tuple, name: str):
    return view_def.figure(source(path, pin, version), dict(items), role, name)


def view(**params):
    """The view for these parameters (resolved first, so the same choice is one cache entry)."""
    resolved = views.resolve_params("across", params)
    return page_view(DB_PATH, PIN, VERSION, ROLE, tuple(sorted(resolved.items())))


def chart(data, name: str, **kwargs) -> None:
    figure = page_figure(DB_PATH, PIN, VERSION, ROLE, tuple(sorted(data.params.items())), name)
    if not figure.data:  # nothing to draw (e.g. every flow too small to show): the reading above says so
        return
    st.plotly_chart(figure, width="stretch", key=name, **kwargs)


def say(data, slot: str) -> None:
    """The texts of one slot of the view, drawn as the builder classed them."""
    for text in data.extra["slots"].get(slot, []):
        if text in data.extra["warnings"]:
            st.warning(text, icon=":material/warning:")
        elif text in data.extra["info"]:
            st.info(text, icon=":material/info:")
        elif text in data.notes:
            st.caption(text)
        else:
            st.markdown(text)


def valid(key: str, options: list, default=None):
    """The widget's current value if the view still offers it (a new layer changes the options)."""
    value = st.session_state.get(key, default)
    return value if value in options else default


def lazy_tabs(labels: list[str], key: str):
    """Tabs whose hidden content is not run or sent (each map costs the browser a WebGL canvas)."""
    return st.tabs(labels, key=key, on_change="rerun")


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


# -- controls: read first, so the view is built once for them ---------------------------------------------

left, right = st.columns(2)
layer = left.selectbox("Children resident in", list(LAYERS), index=list(LAYERS).index("utla"),
                       format_func=lambda k: LAYERS[k].title, key="across_layer",
                       help="A child's home area is the home postcode on their most recent record.")
span = right.selectbox("Encounters spanning more than one", list(view_def.SPAN_CHOICES), index=0,
                       format_func=lambda k: spans.SPAN_TITLES[k], key="across_span",
                       help="Where the encounters happened. 'ICBs / health boards' counts the ICB in England "
                            "and the local health board in Wales.")
top = valid("across_top", list(view_def.TOP_CHOICES), 15)
base = view(layer=layer, span=span, top=top)
if not base.extra["linked"]:
    say(base, "empty")
    say(base, "not_linked")
    if "not_linked" in base.extra["slots"]:
        link_button("Link records now")
    st.stop()

if "across_flow_area" not in st.session_state:  # the area chosen on any page (a default)
    common.seed_area("across_flow_area", [c for c, _ in base.extra["flow_areas"]])
focus = valid("across_flow_area", [c for c, _ in base.extra["flow_areas"]])
data = view(layer=layer, span=span, top=top, focus=focus)
child_level = sees_child_level(ROLE)
if child_level:
    resident_in = valid("child_area", [c for c, _ in base.extra["resident_areas"]])
    data = view(layer=layer, span=span, top=top, focus=focus, resident_in=resident_in)
    child_id = valid("child_id", [c for c, _ in data.extra["children"]])
    if child_id is not None and child_id != data.params.get("child"):
        data = view(layer=layer, span=span, top=top, focus=focus, resident_in=resident_in, child=child_id)

if data.extra["slots"].get("stale"):
    say(data, "stale")
    link_button("Link all records again")


# -- headline ----------------------------------------------------------------------------------------------

metrics = data.tables["metrics"].frame.to_dict("records")
quiet = {"delta_color": "off", "delta_arrow": "off"}
for column, row in zip(st.columns(len(metrics)), metrics):
    delta = row["delta"] if isinstance(row["delta"], str) and row["delta"] else None  # no delta: none shown
    column.metric(row["label"], row["value"], delta, help=row["help"], **quiet)
say(data, "headline")


# -- spans by area -------------------------------------------------------------------------------------

st.subheader("Where children's encounters cross boundaries")
say(data, "spans_reading")
reading = data.extra["slots"]["spans_reading"][0]
map_tab, table_tab = lazy_tabs(["Map", "Table"], "spans_view")
if map_tab.open:
    with map_tab:
        chart(data, "spans_map", config=MAP_CONFIG, alt=reading)
        say(data, "spans_map")
if table_tab.open:
    with table_tab:
        table = data.tables["spans"]
        st.dataframe(table.frame, hide_index=True, width="stretch", height=380, column_config=column_config(table),
                     key="spans")
        export_button("Download table (CSV)", data.tables["spans_all"].frame,
                      f"across_spans_{layer}{EXPORT_SUFFIX}.csv", "text/csv", key="spans_csv", subject=layer)


# -- flows ---------------------------------------------------------------------------------------------

st.subheader("Where children go: flows between areas")
flow_names = dict(base.extra["flow_areas"])
c1, c2 = st.columns([1, 2])
c1.slider("Flows shown", 5, 50, 15, step=5, key="across_top")
c2.selectbox("Into or out of", [None, *flow_names], key="across_flow_area",
             on_change=common.area_changed, args=("across_flow_area",),
             format_func=lambda c: "All areas" if c is None else flow_names.get(c, c))
say(data, "flows_reading")
reading = data.extra["slots"]["flows_reading"][0]
map_tab, table_tab = lazy_tabs(["Map", "Table"], "flows_view")
if map_tab.open:
    with map_tab:
        chart(data, "flows_map", config=MAP_CONFIG, alt=reading)
        say(data, "flows_map")
if table_tab.open:
    with table_tab:
        table = data.tables["flows"]
        st.dataframe(table.frame, hide_index=True, width="stretch", key="flows", column_config=column_config(table))
        export_button("Download all flows (CSV)", data.tables["flows_all"].frame,
                      f"across_flows_{layer}{EXPORT_SUFFIX}.csv", "text/csv", key="flows_csv", subject=layer)


# -- missed without linkage ----------------------------------------------------------------------------

st.subheader("Children the system would miss without linkage")
say(data, "missed_reading")
reading = data.extra["slots"]["missed_reading"][0]
table_tab, map_tab = lazy_tabs(["Table", "Map"], "missed_view")
if table_tab.open:
    with table_tab:
        table = data.tables["missed"]
        st.dataframe(table.frame, hide_index=True, width="stretch", height=380, key="missed",
                     column_config=column_config(table))
if map_tab.open:
    with map_tab:
        chart(data, "missed_map", config=MAP_CONFIG, alt=reading)
        say(data, "missed_map")


# -- board pack (aggregates only, suppressed for the role) -----------------------------------------------

with st.expander("Board pack for one area (PowerPoint, PNG, CSV)", icon=":material/slideshow:"):
    say(data, "pack")
    if "pack_areas" in data.extra:
        pack_names = dict(data.extra["pack_areas"])
        pack_area = st.selectbox("Area", list(pack_names), format_func=lambda c: pack_names.get(c, c),
                                 key="across_bp_area")
        exports.board_pack_controls(layer=layer, area=pack_area, role=ROLE, key="across_bp", kind="across")

# -- one child -----------------------------------------------------------------------------------------

if not child_level:  # lists of children and one child's journey: safeguarding leads only
    say(data, "trust")
    st.stop()

st.subheader("Open one child")
say(data, "child_intro")
resident_names = dict(base.extra["resident_areas"])
c1, c2 = st.columns([1, 2])
c1.selectbox("Resident in", [None, *resident_names], key="child_area",
             format_func=lambda c: "All areas" if c is None else resident_names.get(c, c))
children = dict(data.extra["children"])
for action, subject, detail in view_def.audit_rows(None, data):  # the rows `view across` writes too
    audit_view(action, subject, detail, slot="across_list" if action == "view_list" else "across_child")
if not children:
    say(data, "child_list")
    st.stop()
c2.selectbox("Child (encounters in several areas; most areas first)", list(children), index=None,
             format_func=children.get, key="child_id", placeholder="Choose a child to open their journey")
if data.params.get("child") is None:  # nothing opens, and nothing is audited, until a child is chosen
    say(data, "child_list")
    say(data, "trust")
    st.stop()
say(data, "child_reading")
say(data, "child_flags")
reading = data.extra["slots"]["child_reading"][0].strip("*")

time_tab, map_tab, records_tab = lazy_tabs(["Timeline", "Map", "Records"], "child_view")
if time_tab.open:
    with time_tab:
        chart(data, "child_timeline", config={"displaylogo": False}, alt=reading)
        say(data, "child_timeline")
if map_tab.open:
    with map_tab:
        chart(data, "child_map", config=MAP_CONFIG, alt=reading)
        say(data, "child_map")
if records_tab.open:
    with records_tab:
        table = data.tables["child_records"]
        st.dataframe(table.frame, hide_index=True, width="stretch", key="child_records",
                     column_config=column_config(table))

say(data, "trust")
