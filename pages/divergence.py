"""Where counts diverge: each agency's count of CSE cases on a common geography, the funnel plot, a trend
and why two agencies differ. Thin: widgets, caching and layout; the work is in lib.measures."""
from __future__ import annotations

import streamlit as st

from lib.measures import convert, counts, population
from lib.measures import divergence as dv
from lib.measures import figures
from lib.access.roles import aggregates_suppressed, periods_for
from lib.access.views import aggregate_view, count_text, visible_rows
from lib.measures.suppression import is_small
from pages.common import connection, db_path, export_button, require_page, stored_data_version
from pages import exports

ROLE = require_page("divergence")  # every role; counts suppressed for roles that see aggregates only
AGG = aggregates_suppressed(ROLE)  # analysts, commissioners: areas whose counts would be c are left out
MAP_CONFIG = {"scrollZoom": True, "displaylogo": False}

st.title("Where counts diverge")
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
    return counts.build_cube(connection(path))


@st.cache_data(show_spinner=False, max_entries=16)
def default_population(layer: str, age: str = population.DEFAULT_AGE):
    return population.default_population(layer, age)


@st.cache_data(show_spinner=False, max_entries=128)
def table(path: str, version: str, layer: str, period: str, a: str, b: str, measure: str, pop_key: str, _pop):
    return dv.divergence_table(cube(path, version), layer, period, a, b, measure, _pop)


@st.cache_resource(show_spinner=False, max_entries=64)
def map_figure(path: str, version: str, layer: str, period: str, a: str, b: str, measure: str, role: str):
    """The ratio map; its hover shows counts, so aggregate-only roles get only the areas shown elsewhere."""
    frame = table(path, version, layer, period, a, b, measure, "none", None)
    if aggregates_suppressed(role):
        frame = visible_rows(frame, aggregate_view(frame, ["count_a", "count_b"], role=role, total_column="total"),
                             ["count_a", "count_b", "total"])
    return figures.ratio_map(frame, layer, a, b)


@st.cache_data(show_spinner=False, max_entries=256)
def area_trend(path: str, version: str, layer: str, area: str, a: str, b: str, measure: str, granularity: str):
    """One area's trend (a pivot over every period: cached, as a rerun would otherwise redo it)."""
    return dv.trend(cube(path, version), layer, area, a, b, measure, granularity)


@st.cache_data(show_spinner=False, max_entries=256)
def area_decomposition(path: str, version: str, layer: str, area: str, period: str, a: str, b: str):
    return dv.decomposition(cube(path, version), layer, area, period, a, b)


def view_tabs(key: str):
    return st.tabs(["Chart", "Table"], key=key, on_change="rerun")


data = cube(DB_PATH, version)
if not data.linked:
    st.warning("Records have not been linked into children, so counts of distinct children and the identity "
               "effect are not available; run linkage on the Across boundaries page.", icon=":material/warning:")

# -- controls ------------------------------------------------------------------------------------------

c1, c2, c3, c4 = st.columns(4)
agencies = data.agencies
a = c1.selectbox("Agency A", agencies, index=agencies.index("police") if "police" in agencies else 0,
                 format_func=dv.agency_title, key="div_a")
b_options = [x for x in agencies if x != a]
b = c2.selectbox("Agency B", b_options,
                 index=b_options.index("children_social_care") if "children_social_care" in b_options else 0,
                 format_func=dv.agency_title, key="div_b")
exports.seed_from_query("layer", "div_layer", convert.MEASURE_LAYERS)  # a shared link restores the view
PERIODS = periods_for(ROLE, data.periods)  # aggregate-only roles: all periods together (no differencing)
exports.seed_from_query("period", "div_period", PERIODS)
layer = c3.selectbox("Common geography", list(convert.MEASURE_LAYERS),
                     index=None if "div_layer" in st.session_state else 1,
                     format_func=convert.MEASURE_LAYERS.get, key="div_layer")
period = c4.selectbox("Period", PERIODS, format_func=counts.period_label, key="div_period")
measure_options = ["cse_records", "cse_children"] if data.linked else ["cse_records"]
measure = st.radio("Count", measure_options, horizontal=True, key="div_measure",
                   format_func={"cse_records": "CSE-flagged records",
                                "cse_children": "Distinct children with a CSE flag (after linkage)"}.get)
noun = dv.NOUN[measure]

with st.expander("Child population for rates per 10,000"):
    age = st.radio("Age band", population.AGE_BANDS, horizontal=True, key="div_age",
                   format_func=lambda x: f"aged {x.replace('-', '–')}")
    upload = st.file_uploader("Upload a population (CSV with area_code, children) for this geography",
                              type=["csv"], key="div_population")
pop_key, pop = f"official:{age}", default_population(layer, age)
if upload is not None:
    try:
        pop, problems = population.read_population(upload.getvalue())
        pop_key = f"upload:{upload.file_id}"
        for problem in problems[:5]:
            st.warning(problem)
    except ValueError as exc:
        st.error(str(exc))
if convert.MEASURE_LAYERS[layer].endswith("(modelled)"):
    st.caption("Trust catchments are modelled from OHID admissions (NHS Acute (Hospital) Trust Catchment "
               "Populations, 2022 edition): NHS trusts have no statutory boundary (see the Boundaries page).")
if "health" in (a, b):
    st.caption("On the native basis, trust-recorded counts are apportioned to other geographies by OHID's "
               "catchment shares (each district's share of admissions going to each trust, 2022 edition), "
               "weighted by children; such figures are marked as apportioned.")

result = table(DB_PATH, version, layer, period, a, b, measure, pop_key, pop)
if AGG:  # counts 1-5 (and cells that would give them away from totals): the whole area row is left out
    result = visible_rows(result, aggregate_view(result, ["count_a", "count_b"], role=ROLE, total_column="total"),
                          ["count_a", "count_b", "total"]).reset_index(drop=True)
    st.caption("For your role, areas where a count is from 1 to 5 (or would reveal one) are left out of every "
               "chart, table and download on this page (DfE small-number convention).")
counted = result[result["total"] > 0]
st.markdown(("Among areas whose counts can be shown: " if AGG else "") + dv.describe_table(result, a, b, measure, period))
if pop_key.startswith("official"):
    st.caption(population.source_label(age, layer))
rate_unit = population.rate_label(age) if pop_key.startswith("official") else "per 10,000 (uploaded population)"

# -- side by side ----------------------------------------------------------------------------------------

st.subheader(f"{dv.agency_title(a)} and {dv.agency_title(b)} side by side")
top_area = counted.nlargest(1, "total")
if not top_area.empty:
    st.markdown(dv.describe_area(top_area.iloc[0], a, b, measure))
chart, tab = view_tabs("div_dumbbell_view")
if chart.open:
    with chart:
        st.plotly_chart(figures.dumbbell(result, a, b, noun), width="stretch", key="div_dumbbell",
                        config={"displaylogo": False})
        st.caption("The 25 areas with the most cases, ordered by the ratio of the two counts.")
if tab.open:
    with tab:
        st.dataframe(counted[["area_name", "area_code", "count_a", "count_b", "total", "rate_a", "rate_b"]],
                     hide_index=True, width="stretch", key="div_dumbbell_table",
                     column_config={"area_name": "Area", "area_code": "Code", "count_a": dv.agency_title(a),
                                    "count_b": dv.agency_title(b), "total": "Both",
                                    "rate_a": st.column_config.NumberColumn(f"{dv.agency_title(a)} {rate_unit}",
                                                                            format="%.2f"),
                                    "rate_b": st.column_config.NumberColumn(f"{dv.agency_title(b)} {rate_unit}",
                                                                            format="%.2f")})

# -- map and ranked table --------------------------------------------------------------------------------

st.subheader("How far apart, on the map")
ranked = counted.sort_values("log_ratio", ascending=False)
if not ranked.empty:
    st.markdown(dv.describe_area(ranked.iloc[0], a, b, measure))
chart, tab = view_tabs("div_map_view")
if chart.open:
    with chart:
        st.plotly_chart(map_figure(DB_PATH, version, layer, period, a, b, measure, ROLE), width="stretch",
                        key="div_map", config=MAP_CONFIG)
        st.caption(f"Colour: the ratio {dv.agency_title(a)} ÷ {dv.agency_title(b)} (log scale; ½ added to each "
                   "count so zeros stay finite). Purple: A records more; orange: B records more; pale: about equal.")
if tab.open:
    with tab:
        shown = ranked[["rank", "area_name", "area_code", "count_a", "count_b", "log_ratio", "log_ratio_low",
                        "log_ratio_high", "share_a", "verdict"]]
        st.dataframe(shown, hide_index=True, width="stretch", height=380, key="div_ranked_table",
                     column_config={"rank": "Rank", "area_name": "Area", "area_code": "Code",
                                    "count_a": dv.agency_title(a), "count_b": dv.agency_title(b),
                                    "log_ratio": st.column_config.NumberColumn("log(A/B)", format="%.2f"),
                                    "log_ratio_low": st.column_config.NumberColumn("95% low", format="%.2f"),
                                    "log_ratio_high": st.column_config.NumberColumn("95% high", format="%.2f"),
                                    "share_a": st.column_config.NumberColumn("A share", format="percent"),
                                    "verdict": "Funnel verdict"})
        export_button("Download (CSV)", dv.export_table(result, a, b, layer, period, measure, rate_basis=rate_unit),
                      f"divergence_{layer}.csv", "text/csv", key="div_csv", subject=layer,
                      detail=f"divergence_{layer}.csv ({period}, {measure}, {a} v {b})")

# -- funnel ----------------------------------------------------------------------------------------------

st.subheader("Funnel plot: which differences are more than chance")
st.markdown(dv.describe_funnel(result, a, b))
chart, tab = view_tabs("div_funnel_view")
if chart.open:
    with chart:
        st.plotly_chart(figures.funnel_figure(result, a, b), width="stretch", key="div_funnel",
                        config={"displaylogo": False})
        st.caption("Limits are exact binomial quantiles around the national share (Spiegelhalter 2005, interpolated):"
                   " 95% dashed, 99.8% dotted. Areas outside the 99.8% limits are red diamonds and named.")
if tab.open:
    with tab:
        st.dataframe(counted[["area_name", "total", "share_a", "lower_95", "upper_95", "lower_998", "upper_998",
                              "verdict"]].sort_values("total", ascending=False),
                     hide_index=True, width="stretch", key="div_funnel_table",
                     column_config={"area_name": "Area", "total": "A + B",
                                    **{c: st.column_config.NumberColumn(c.replace("_", " "), format="percent")
                                       for c in ("share_a", "lower_95", "upper_95", "lower_998", "upper_998")}})

# -- one area: trend and why -------------------------------------------------------------------------------

st.subheader("One area: trend, and why the agencies differ")
names = dict(zip(result["area_code"], result["area_name"]))
choices = counted.sort_values("total", ascending=False)["area_code"].tolist() or result["area_code"].tolist()
exports.seed_from_query("area", "div_area", choices)
area = st.selectbox("Area", choices, format_func=lambda c: names.get(c, c), key="div_area")
area_name = names.get(area, area)
exports.sync_query_params({"layer": layer, "period": period, "area": area})
with st.container(border=True):
    st.markdown(f"**Board pack for {area_name}**: map, charts, comparison with similar areas, summary and notes.")
    exports.board_pack_controls(layer=layer, area=area, period=period, measure=measure, a=a, b=b, cube=data,
                                role=ROLE, key="div_bp")
if AGG:
    st.info("Trends by quarter or year are not shown for your role: a year is the sum of its quarters, so a "
            "count hidden in one period could be worked out from the others.", icon=":material/visibility_off:")
else:
    granularity = st.radio("Trend by", ["quarter", "year"], horizontal=True, key="div_trend_by",
                           format_func={"quarter": "Quarter", "year": "Financial year"}.get)
    trend = area_trend(DB_PATH, version, layer, area, a, b, measure, granularity)
    st.markdown(dv.describe_trend(trend, area_name, a, b, measure))
    chart, tab = view_tabs("div_trend_view")
    if chart.open:
        with chart:
            st.plotly_chart(figures.trend_figure(trend, a, b, noun), width="stretch", key="div_trend",
                            config={"displaylogo": False})
    if tab.open:
        with tab:
            st.dataframe(trend, hide_index=True, width="stretch", key="div_trend_table")

decomposition = area_decomposition(DB_PATH, version, layer, area, period, a, b)
if AGG and any(is_small([decomposition.get(k, 0) or 0])[0] for k in
               ("native_a", "native_b", "records_a", "records_b", "children_a", "children_b")):
    st.info(f"Why the agencies differ in {area_name} is not shown for your role: some of its counts are from "
            "1 to 5.", icon=":material/visibility_off:")
    st.stop()
st.markdown(f"**Why they differ in {area_name}.** " + dv.describe_decomposition(decomposition, area_name, a, b))
st.caption("Boundary effect: each agency's records counted on its own geography (force, authority or trust, then "
           "summed or apportioned to this geography) minus the same records placed by where each encounter "
           "happened. Identity effect: records minus distinct linked children. Recording effect: what remains, "
           "the difference in distinct children each agency recorded here. The three add up to the gap."
           + (" Some figures here were apportioned (trust counts by OHID catchment shares, other non-nesting "
              "geographies by postcode weights)." if decomposition["apportioned"] else ""))
chart, tab = view_tabs("div_waterfall_view")
if chart.open:
    with chart:
        st.plotly_chart(figures.waterfall_figure(decomposition, a, b), width="stretch", key="div_waterfall",
                        config={"displaylogo": False})
if tab.open:
    with tab:
        comp = decomposition["components"]
        rows = comp.assign(value=comp["value"].round(2))
        st.dataframe(rows, hide_index=True, width="stretch", key="div_waterfall_table")
        st.markdown(f"{dv.agency_title(a)}: {decomposition['native_a']:,.1f} on its own geography, "
                    f"{decomposition['records_a']:,.0f} records placed here, {decomposition['children_a']:,.0f} "
                    f"children. {dv.agency_title(b)}: {decomposition['native_b']:,.1f}, "
                    f"{decomposition['records_b']:,.0f}, {decomposition['children_b']:,.0f}.")
if not data.unplaced_native.empty:
    st.caption(f"{count_text(int(data.unplaced_native['records'].sum()), role=ROLE)} records carry an agency code that is not an area of "
               "their agency's geography and are left out of the own-geography counts.")
