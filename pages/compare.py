"""Compare areas: two to six areas (or one and its neighbours) side by side against England and Wales and a
comparator group, with the board pack. Thin: widgets, caching, URL state; every number, sentence and table
comes from the view builder lib.views.compare (the same PageData as `python -m lib.cli view compare`)."""
from __future__ import annotations

import streamlit as st

from lib.measures import convert, counts
from lib.views import build_with
from lib.views import compare as view
from pages import common, exports
from pages.common import show_table

ROLE = common.require_page("compare")

st.title(view.TITLE)
st.markdown(
    "Put two to six areas side by side — each agency's counts and rates, how far police and children's services "
    "diverge, identifier completeness, children spanning boundaries and the linkage rate — each against "
    "England and Wales and a comparator group of similar areas. The address bar holds this view: copy it to "
    "share exactly what you see."
)

source = common.measure_view_source("compare", exports.measure_cube)
available = view.options(source, ROLE)

# -- controls (seeded from the URL on first load, written back on every run) ------------------------------

exports.seed_from_query("layer", "cmp_layer", convert.MEASURE_LAYERS)
PERIODS = available["periods"]  # aggregate-only roles: all and financial years (no quarters)
exports.seed_from_query("period", "cmp_period", PERIODS)
c1, c2, c3 = st.columns([5, 3, 4])  # long labels (layer, count): not cut short at 1024 px
layer = common.measure_layer_select(c1, "cmp_layer")
period = c2.selectbox("Period", PERIODS, format_func=counts.period_label, key="cmp_period")
measure = c3.selectbox("Count", available["measures"], key="cmp_measure", format_func=view.MEASURES.get)
with st.spinner("Profiling every area…"):
    names, busiest = view.choices(source, layer, period, measure, ROLE)
codes = sorted(names, key=lambda c: names[c])

# Areas from the URL only if they belong to the chosen layer.
exports.seed_from_query("mode", "cmp_mode", list(view.MODES))
exports.seed_from_query("areas", "cmp_areas", codes, many=True)
exports.seed_from_query("group", "cmp_group", codes, many=True)
common.seed_area("cmp_areas", codes, first_of=busiest[:3])  # the area chosen on any page leads (a default)
if any(c not in names for c in st.session_state.get("cmp_areas", [])):
    st.session_state["cmp_areas"] = [c for c in st.session_state["cmp_areas"] if c in names]
if any(c not in names for c in st.session_state.get("cmp_group", [])):
    st.session_state["cmp_group"] = [c for c in st.session_state["cmp_group"] if c in names]

mode = st.radio("Areas", list(view.MODES), horizontal=True, key="cmp_mode", format_func=view.MODES.get)
if mode == "choose":
    areas = st.multiselect("Areas to compare", codes, default=busiest[:3] if "cmp_areas" not in st.session_state
                           else None, format_func=lambda c: f"{names[c]} ({c})", max_selections=view.compare.MAX_AREAS,
                           key="cmp_areas", help="Type to search. Up to six areas.",
                           on_change=common.area_changed, args=("cmp_areas",))
else:
    current = (st.session_state.get("cmp_areas") or busiest[:1])[0]
    focus = st.selectbox("Area", codes, index=codes.index(current), format_func=lambda c: f"{names[c]} ({c})",
                         key="cmp_focus", on_change=common.area_changed, args=("cmp_focus",))
    areas = [focus, *view.neighbours(source, layer, focus)]
    st.session_state["cmp_areas"] = areas
    st.caption(f"{names[focus]} and the {len(areas) - 1} areas sharing the longest boundaries with it.")

group_mode = st.radio("Comparator group", ["similar", "custom"], horizontal=True, key="cmp_group_mode",
                      index=1 if st.query_params.get("group") else 0,
                      format_func={"similar": "Recognised neighbours (DfE statistical neighbours, or context)",
                                   "custom": "A group I choose"}.get)
comparator = None
if group_mode == "custom":
    comparator = st.multiselect("Comparator areas", codes, format_func=lambda c: f"{names[c]} ({c})", key="cmp_group")
    if not comparator:
        st.info("Choose the areas of your comparator group, or pick 'Most similar areas'.", icon=":material/info:")
        comparator = None

exports.sync_query_params({"layer": layer, "period": period, "mode": mode, "areas": ",".join(areas),
                           "group": ",".join(comparator) if comparator else None})
if not areas:
    st.info("Choose at least one area to compare.", icon=":material/info:")
    st.stop()

page = build_with("compare", source, {"layer": layer, "period": period, "measure": measure, "mode": mode,
                                      "areas": areas, "group": comparator,
                                      "indicator": st.session_state.get("cmp_indicator")}, ROLE)

# -- the side-by-side table ---------------------------------------------------------------------------------

WRAPPED_COLUMNS = 4  # value columns per markdown table: four fit beside the indicator at 1024 px


def wrapped_tables(frame) -> list[str]:
    """A view table as markdown tables of at most ``WRAPPED_COLUMNS`` value columns each, the indicator repeated
    in each: headers and cells wrap, so every area's column and its full name stay in view at 1024 px (a grid
    of eight columns scrolls sideways and cuts its headers short)."""
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    first, values = frame.columns[0], list(frame.columns[1:])
    parts = max(1, -(-len(values) // WRAPPED_COLUMNS))
    size = -(-len(values) // parts)
    tables = []
    for start in range(0, len(values), size):
        part = frame[[first, *values[start:start + size]]]
        head = "| " + " | ".join(cell(c) for c in part.columns) + " |"
        rule = "|" + "|".join([":---"] + ["---:"] * (len(part.columns) - 1)) + "|"
        tables.append("\n".join([head, rule, *("| " + " | ".join(cell(v) for v in row) + " |"
                                               for row in part.itertuples(index=False))]))
    return tables


side = page.table("cmp_table")
st.subheader(side.title)
st.markdown(page.sentences[0])
for text in wrapped_tables(side.frame):
    st.markdown(text)
st.caption(side.note)
with st.expander("The same table as a sortable grid", icon=":material/table:"):
    show_table(page, "cmp_table", height=38 + 35 * len(side.frame))
for name in ("disclosure", "small"):  # how the counts are protected, and the user's own small areas
    if page.note_text(name):
        st.caption(page.note_text(name))

# -- one indicator as a chart, with its table ----------------------------------------------------------------

st.subheader("One indicator, charted")
indicators, labels = page.extra["indicators"], page.extra["labels"]
st.selectbox("Indicator", indicators, format_func=labels.get, key="cmp_indicator",
             index=indicators.index(page.extra["indicator"]))
chart, tab = st.tabs(["Chart", "Table"], key="cmp_chart_view", on_change="rerun")
if chart.open:
    with chart:
        st.plotly_chart(page.figures["cmp_chart"], width="stretch", key="cmp_chart", config={"displaylogo": False})
        st.caption(page.table("cmp_chart_table").note)
if tab.open:
    with tab:
        show_table(page, "cmp_chart_table")

# -- the comparator group explained -------------------------------------------------------------------------

st.subheader(page.table("cmp_group_table").title)
st.markdown(page.sentences[1])
show_table(page, "cmp_group_table")

# -- published figures beside your extract (issue 17) -----------------------------------------------------

if "cmp_published_table" in page.tables:
    st.subheader(page.table("cmp_published_table").title)
    show_table(page, "cmp_published_table")
    st.caption(page.table("cmp_published_table").note)

# -- exports ---------------------------------------------------------------------------------------------

st.subheader("Board pack and downloads")
st.caption(page.notes[0])
exports.board_pack_controls(layer=layer, area=areas[0], period=period, measure=measure, a=view.A, b=view.B,
                            cube=source.cube(), compare_areas=areas, comparator=comparator, role=ROLE, key="cmp_bp")
for i, note in enumerate(page.notes[1:], start=1):
    if i not in (page.note_names.get("disclosure"), page.note_names.get("small")):
        st.caption(note)
