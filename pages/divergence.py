"""Where counts diverge: each agency's count of CSE cases on a common geography, the funnel plot, a trend
and why two agencies differ. Thin: widgets, caching and layout; every number, sentence and table comes from
the view builder lib.views.divergence (the same PageData as `python -m lib.cli view divergence`)."""
from __future__ import annotations

import streamlit as st

from lib.measures import aggregates, convert, counts, population
from lib.measures import divergence as dv
from lib.views import base as view_base
from lib.views import build_with, resolve_params
from lib.views import divergence as view
from pages import common, exports
from pages.common import connection, db_path, export_button, require_page, show_table, stored_data_version

ROLE = require_page("divergence")  # every role; counts protected (perturbed) for roles that see aggregates only
MAP_CONFIG = {"scrollZoom": True, "displaylogo": False}

st.title(view.TITLE)
st.markdown(
    "Police, children's services and the NHS each count child sexual exploitation on their own geography. "
    "Here every agency's count is placed on one geography, compared area by area against what chance alone "
    "would produce, and the gap in one area is split into what boundaries, duplicate records and real "
    "differences in recording each contribute."
)

DB_PATH = db_path()
con = connection(DB_PATH)
version = stored_data_version(con)


@st.cache_resource(show_spinner="Counting every agency's records by area and period…", max_entries=4)
def cube(path: str, version: str):
    return aggregates.cube(connection(path))  # the stored aggregates (lib.measures.aggregates)


@st.cache_resource(show_spinner=False, max_entries=2)
def view_memo(path: str, version: str) -> view_base.Memo:
    """The builder's intermediate results (tables, map, trends) for one data version, shared by reruns."""
    return view_base.Memo(max_entries=256)


def view_tabs(key: str):
    return st.tabs(["Chart", "Table"], key=key, on_change="rerun")


def note(name: str, render=st.caption) -> None:
    text = page.note_text(name)
    if text:
        render(text)


source = view_base.Source(con, DB_PATH, cube=cube(DB_PATH, version), memo=view_memo(DB_PATH, version))
available = view.options(source, ROLE)
if not available["linked"]:
    st.warning(view.NOT_LINKED, icon=":material/warning:")

# -- controls ------------------------------------------------------------------------------------------

c1, c2, c3, c4 = st.columns([1, 1, 1.5, 0.8])  # the geography's names are the longest (e.g. sub-ICB locations)
agencies = available["agencies"]
a = c1.selectbox("Agency A", agencies, index=agencies.index("police") if "police" in agencies else 0,
                 format_func=dv.agency_title, key="div_a")
b_options = [x for x in agencies if x != a]
b = c2.selectbox("Agency B", b_options,
                 index=b_options.index("children_social_care") if "children_social_care" in b_options else 0,
                 format_func=dv.agency_title, key="div_b")
exports.seed_from_query("layer", "div_layer", convert.MEASURE_LAYERS)  # a shared link restores the view
PERIODS = available["periods"]  # aggregate-only roles: all and financial years (no quarters)
exports.seed_from_query("period", "div_period", PERIODS)
layer = c3.selectbox("Common geography", list(convert.MEASURE_LAYERS),
                     index=None if "div_layer" in st.session_state else 1,
                     format_func=convert.MEASURE_LAYERS.get, key="div_layer")
period = c4.selectbox("Period", PERIODS, format_func=counts.period_label, key="div_period")
measure = st.radio("Count", available["measures"], horizontal=True, key="div_measure", format_func=view.MEASURES.get)

with st.expander("Child population for rates per 10,000"):
    age = st.radio("Age band", population.AGE_BANDS, horizontal=True, key="div_age",
                   format_func=lambda x: f"aged {x.replace('-', '–')}")
    upload = st.file_uploader("Upload a population (CSV with area_code, children) for this geography",
                              type=["csv"], key="div_population")
params = resolve_params("divergence", {"a": a, "b": b, "layer": layer, "period": period, "measure": measure,
                                       "age": age, "granularity": st.session_state.get("div_trend_by")})
inputs = {}
if upload is not None:
    inputs = {view.POPULATION_INPUT: upload.getvalue()}
    try:
        view.area_choices(view_base.Source(con, DB_PATH, cube=source.cube(), memo=source.memo, inputs=inputs),
                          params, ROLE)
    except ValueError as exc:  # an unreadable upload: say so, and use the official population
        st.error(str(exc))
        inputs = {}
source.inputs = inputs
choices, names = view.area_choices(source, params, ROLE)
exports.seed_from_query("area", "div_area", choices)
common.seed_area("div_area", choices)  # the area chosen on any page (a default)
chosen = st.session_state.get("div_area")
params["area"] = chosen if chosen in choices else None
page = build_with("divergence", source, params, ROLE)

for name in sorted(n for n in page.note_names if n.startswith("population_problem_")):
    note(name, st.warning)
note("modelled")
note("apportioned")
note("disclosure")
st.markdown(page.sentence("table"))
note("population_source")

# -- side by side ----------------------------------------------------------------------------------------

st.subheader(page.table("div_dumbbell_table").title)
if page.sentence("top_area"):
    st.markdown(page.sentence("top_area"))
chart, tab = view_tabs("div_dumbbell_view")
if chart.open:
    with chart:
        st.plotly_chart(page.figures["div_dumbbell"], width="stretch", key="div_dumbbell",
                        config={"displaylogo": False})
        st.caption(page.table("div_dumbbell_table").note)
if tab.open:
    with tab:
        show_table(page, "div_dumbbell_table")

# -- map and ranked table --------------------------------------------------------------------------------

st.subheader("How far apart, on the map")
if page.sentence("ranked_top"):
    st.markdown(page.sentence("ranked_top"))
chart, tab = view_tabs("div_map_view")
if chart.open:
    with chart:
        st.plotly_chart(page.figures["div_map"], width="stretch", key="div_map", config=MAP_CONFIG)
        note("map")
if tab.open:
    with tab:
        show_table(page, "div_ranked_table", height=380)
        export = page.table("div_export")
        export_button("Download (CSV)", export.frame, export.title, "text/csv", key="div_csv", subject=layer,
                      detail=f"{export.title} ({export.note})")

# -- funnel ----------------------------------------------------------------------------------------------

st.subheader("Funnel plot: which differences are more than chance")
st.markdown(page.sentence("funnel"))
chart, tab = view_tabs("div_funnel_view")
if chart.open:
    with chart:
        st.plotly_chart(page.figures["div_funnel"], width="stretch", key="div_funnel", config={"displaylogo": False})
        note("funnel")
if tab.open:
    with tab:
        show_table(page, "div_funnel_table")

# -- published figures beside your extract (issue 17) ------------------------------------------------------

if "div_published_table" in page.tables:
    st.subheader(page.table("div_published_table").title)
    show_table(page, "div_published_table")
    st.caption(page.table("div_published_table").note)
note("published_unavailable")

# -- one area: trend and why -------------------------------------------------------------------------------

st.subheader("One area: trend, and why the agencies differ")
area = st.selectbox("Area", choices, format_func=lambda c: names.get(c, c), key="div_area",
                    on_change=common.area_changed, args=("div_area",))
area_name = names.get(area, area)
if page.sentence("published_area"):
    st.markdown(page.sentence("published_area"))
exports.sync_query_params({"layer": layer, "period": period, "area": area})
if page.sentence("area"):  # the chosen area's reading (also the board pack summary's first line)
    st.markdown(page.sentence("area"))
with st.container(border=True):
    st.markdown(f"**Board pack for {area_name}**: map, charts, comparison with similar areas, summary and notes.")
    exports.board_pack_controls(layer=layer, area=area, period=period, measure=measure, a=a, b=b,
                                cube=source.cube(), role=ROLE, key="div_bp")
note("small", lambda text: st.info(text, icon=":material/info:"))
if page.note_text("trend_hidden"):  # aggregate roles: by financial year, from the published counts
    note("trend_hidden", lambda text: st.info(text, icon=":material/info:"))
else:
    st.radio("Trend by", list(view.GRANULARITIES), horizontal=True, key="div_trend_by",
             format_func=view.GRANULARITIES.get)
if "div_trend_table" in page.tables:
    st.markdown(page.sentence("trend"))
    chart, tab = view_tabs("div_trend_view")
    if chart.open:
        with chart:
            st.plotly_chart(page.figures["div_trend"], width="stretch", key="div_trend", config={"displaylogo": False})
    if tab.open:
        with tab:
            show_table(page, "div_trend_table")

if page.note_text("decomposition_hidden"):
    note("decomposition_hidden", lambda text: st.info(text, icon=":material/visibility_off:"))
    st.stop()
st.markdown(page.sentence("decomposition"))
note("decomposition")
chart, tab = view_tabs("div_waterfall_view")
if chart.open:
    with chart:
        st.plotly_chart(page.figures["div_waterfall"], width="stretch", key="div_waterfall",
                        config={"displaylogo": False})
if tab.open:
    with tab:
        show_table(page, "div_waterfall_table")
        st.markdown(page.sentence("decomposition_figures"))
note("unplaced")
