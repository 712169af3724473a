"""Compare areas: two to six areas (or one and its neighbours) side by side against England and Wales and a
comparator group, with the board pack. Thin: widgets, caching, URL state; the work is lib.measures.compare."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from lib.access.roles import aggregates_suppressed, periods_for
from lib.measures import compare, convert, counts, population
from lib.measures import divergence as dv
from lib.measures.suppression import NOTE as SUPPRESSION_NOTE
import pages.common as common
from pages import exports
from pages.common import connection, db_path, stored_data_version

ROLE = common.require_page("compare")

st.title("Compare areas")
st.markdown(
    "Put two to six areas side by side — each agency's counts and rates, how far police and children's services "
    "diverge, identifier completeness, children spanning boundaries and the linkage rate — each against "
    "England and Wales and a comparator group of similar areas. The address bar holds this view: copy it to "
    "share exactly what you see."
)

DB_PATH = db_path()
con = connection(DB_PATH)
version = stored_data_version(con)
data = exports.measure_cube(DB_PATH, version)


@st.cache_data(show_spinner=False, max_entries=16)
def default_population(layer: str):
    return population.default_population(layer)


@st.cache_data(show_spinner="Profiling every area…", max_entries=32)
def base_table(path: str, version: str, layer: str, period: str, measure: str, a: str, b: str):
    return compare.area_base(exports.measure_cube(path, version), connection(path), layer, period, measure,
                             default_population(layer), a, b)


@st.cache_data(show_spinner=False, max_entries=32)
def hidden_for(path: str, version: str, layer: str, period: str, measure: str, a: str, b: str, role: str):
    """Which cells the role may not see: one suppression over all areas (lib.measures.compare.hidden_mask)."""
    return compare.hidden_mask(base_table(path, version, layer, period, measure, a, b),
                               aggregates_suppressed(role), a, b)


@st.cache_data(show_spinner=False, max_entries=64)
def neighbours_of(layer: str, code: str):
    return compare.adjacent_areas(layer, code)


# -- controls (seeded from the URL on first load, written back on every run) ------------------------------

layers = list(convert.MEASURE_LAYERS)
exports.seed_from_query("layer", "cmp_layer", layers)
PERIODS = periods_for(ROLE, data.periods)  # aggregate-only roles: all periods together (no differencing)
exports.seed_from_query("period", "cmp_period", PERIODS)
c1, c2, c3 = st.columns([2, 1, 1])
st.session_state.setdefault("cmp_layer", "utla")
layer = c1.selectbox("Layer", layers, format_func=convert.MEASURE_LAYERS.get, key="cmp_layer")
period = c2.selectbox("Period", PERIODS, format_func=counts.period_label, key="cmp_period")
measure_options = ["cse_records", "cse_children"] if data.linked else ["cse_records"]
measure = c3.selectbox("Count", measure_options, key="cmp_measure",
                       format_func={"cse_records": "CSE-flagged records",
                                    "cse_children": "Distinct children with a CSE flag"}.get)
a, b = "police", "children_social_care"
base = base_table(DB_PATH, version, layer, period, measure, a, b)
names = dict(zip(base["area_code"], base["area_name"]))
codes = sorted(names, key=lambda c: names[c])

# Areas from the URL only if they belong to the chosen layer.
exports.seed_from_query("mode", "cmp_mode", ["choose", "neighbours"])
exports.seed_from_query("areas", "cmp_areas", codes, many=True)
exports.seed_from_query("group", "cmp_group", codes, many=True)
if any(c not in names for c in st.session_state.get("cmp_areas", [])):
    st.session_state["cmp_areas"] = [c for c in st.session_state["cmp_areas"] if c in names]
if any(c not in names for c in st.session_state.get("cmp_group", [])):
    st.session_state["cmp_group"] = [c for c in st.session_state["cmp_group"] if c in names]
busiest = base.sort_values("total", ascending=False)["area_code"].tolist()

mode = st.radio("Areas", ["choose", "neighbours"], horizontal=True, key="cmp_mode",
                format_func={"choose": "Areas I choose (2 to 6)",
                             "neighbours": "An area and its neighbours"}.get)
if mode == "choose":
    areas = st.multiselect("Areas to compare", codes, default=busiest[:3] if "cmp_areas" not in st.session_state
                           else None, format_func=lambda c: f"{names[c]} ({c})", max_selections=compare.MAX_AREAS,
                           key="cmp_areas", help="Type to search. Up to six areas.")
else:
    current = (st.session_state.get("cmp_areas") or busiest[:1])[0]
    focus = st.selectbox("Area", codes, index=codes.index(current), format_func=lambda c: f"{names[c]} ({c})",
                         key="cmp_focus")
    areas = [focus, *neighbours_of(layer, focus)]
    st.session_state["cmp_areas"] = areas
    st.caption(f"{names[focus]} and the {len(areas) - 1} areas sharing the longest boundaries with it.")

group_mode = st.radio("Comparator group", ["similar", "custom"], horizontal=True, key="cmp_group_mode",
                      index=1 if st.query_params.get("group") else 0,
                      format_func={"similar": "Most similar areas (nearest neighbours)",
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

prof = compare.profile(base, areas, aggregates_suppressed(ROLE), comparator=comparator, a=a, b=b, measure=measure,
                       mask=hidden_for(DB_PATH, version, layer, period, measure, a, b, ROLE))
suppressed = aggregates_suppressed(ROLE)

# -- the side-by-side table ---------------------------------------------------------------------------------

st.subheader("Side by side")
st.markdown(compare.describe(prof))
table = prof.table.drop(columns=["indicator"]).rename(columns={"label": "Indicator"})
st.dataframe(table, hide_index=True, width="stretch", key="cmp_table", height=38 + 35 * len(table))
captions = [*prof.notes]
if suppressed:
    captions.append(f"{prof.hidden} cells are hidden (c) for your role.")
st.caption(" ".join(captions))

# -- one indicator as a chart, with its table ----------------------------------------------------------------

st.subheader("One indicator, charted")
numeric = prof.numeric[prof.numeric["indicator"] != "verdict"].set_index("indicator")
labels = dict(zip(prof.numeric["indicator"], prof.numeric["label"]))
indicator = st.selectbox("Indicator", list(numeric.index), format_func=labels.get, key="cmp_indicator",
                         index=list(numeric.index).index("share_a") if "share_a" in numeric.index else 0)
values = numeric.loc[indicator].drop(labels=["label"]).astype("float64")
shown = values.dropna()
PATTERN = {compare.COMPARATOR: "/", compare.NATIONAL: "."}
fig = go.Figure(go.Bar(
    x=shown.to_numpy(), y=list(shown.index), orientation="h", text=[f"{v:,.1f}" for v in shown],
    textposition="outside", marker={"color": ["#0072B2" if n not in PATTERN else "#E69F00" if n == compare.COMPARATOR
                                              else "#999999" for n in shown.index],
                                    "pattern": {"shape": [PATTERN.get(n, "") for n in shown.index]},
                                    "line": {"color": "#333333", "width": 1}},
    hovertemplate="%{y}: %{x:,.1f}<extra></extra>"))
fig.update_layout(height=90 + 46 * len(shown), margin={"l": 10, "r": 40, "t": 20, "b": 40}, plot_bgcolor="white",
                  xaxis={"title": labels[indicator], "gridcolor": "#eeeeee", "rangemode": "tozero"},
                  yaxis={"autorange": "reversed", "automargin": True})
chart, tab = st.tabs(["Chart", "Table"], key="cmp_chart_view", on_change="rerun")
if chart.open:
    with chart:
        st.plotly_chart(fig, width="stretch", key="cmp_chart", config={"displaylogo": False})
        hidden_here = [n for n, v in values.items() if pd.isna(v)]
        st.caption("Blue: the areas compared; hatched orange: the comparator group; dotted grey: England and Wales. "
                   "Each bar carries its value." + (f" Not shown (hidden or no data): {', '.join(hidden_here)}."
                                                    if hidden_here else ""))
if tab.open:
    with tab:
        st.dataframe(pd.DataFrame({"Area": values.index, labels[indicator]: [
            "c" if pd.isna(v) and suppressed else ("" if pd.isna(v) else round(v, 1)) for v in values]}),
            hide_index=True, width="stretch", key="cmp_chart_table")

# -- the comparator group explained -------------------------------------------------------------------------

st.subheader("The comparator group")
st.markdown(prof.explanation)
group = prof.comparator.rename(columns={"area_code": "Code", "area_name": "Area", "distance": "Distance",
                                        "closest_on": "Closest on"})
st.dataframe(group, hide_index=True, width="stretch", key="cmp_group_table")

# -- exports ---------------------------------------------------------------------------------------------

st.subheader("Board pack and downloads")
st.caption(f"A deck for the first area ({names[areas[0]]}) with these areas side by side." +
           (f" {SUPPRESSION_NOTE}" if suppressed else ""))
exports.board_pack_controls(layer=layer, area=areas[0], period=period, measure=measure, a=a, b=b, cube=data,
                            compare_areas=areas, comparator=comparator, role=ROLE, key="cmp_bp")
if convert.MEASURE_LAYERS[layer].endswith("(modelled)"):
    st.caption("Trust catchments are modelled from OHID admissions (NHS Acute (Hospital) Trust Catchment Populations, "
               "2022 edition): NHS trusts have no statutory boundary (see the Boundaries page). A trust's children "
               "are its modelled share of each area's children.")
st.caption(f"Agencies compared for divergence: {dv.agency_title(a)} and {dv.agency_title(b)}.")
