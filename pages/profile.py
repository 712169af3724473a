"""Area profile: one area's indicators against England and Wales and its comparator group, with 95% confidence
intervals, the trend over financial years and what each indicator means. Thin: widgets, caching, URL state;
every number, sentence and table comes from the view builder lib.views.profile (the same PageData as
`python -m lib.cli view profile`)."""
from __future__ import annotations

import streamlit as st

from lib.measures import convert, counts
from lib.views import build_with
from lib.views import profile as view
from pages import common, exports
from pages.common import show_table

ROLE = common.require_page("profile")

st.title(view.TITLE)
st.markdown(
    "How does one area compare with England and Wales and with areas like it? Each indicator with its 95% "
    "confidence interval, compared with the national value in colour, shape and words, its trend, and what "
    "it counts. The address bar holds this view (and the area, for every page): copy it to share it."
)

source = common.measure_view_source("profile", exports.measure_cube)
available = view.options(source, ROLE)

exports.seed_from_query("layer", "prof_layer", convert.MEASURE_LAYERS)
exports.seed_from_query("period", "prof_period", available["periods"])
c1, c2, c3 = st.columns([2, 3, 1])
layer = common.measure_layer_select(c1, "prof_layer")
with st.spinner("Profiling every area…"):
    names, busiest = view.choices(source, layer, ROLE)
codes = sorted(names, key=lambda c: names[c])
common.seed_area("prof_area", codes)
if st.session_state.get("prof_area") not in names:
    st.session_state["prof_area"] = busiest[0]
area = c2.selectbox("Area", codes, format_func=lambda c: f"{names[c]} ({c})", key="prof_area",
                    help="Type to search. The area you choose is kept for the other pages and in the address.",
                    on_change=common.area_changed, args=("prof_area",))
period = c3.selectbox("Period", available["periods"], format_func=counts.period_label, key="prof_period")
common.remember_area(area)
exports.sync_query_params({"layer": layer, "period": period, "area": area})

page = build_with("profile", source, {"layer": layer, "area": area, "period": period}, ROLE)

st.markdown(page.sentence("headline"))
st.plotly_chart(page.figures["profile_spine"], width="stretch", key="profile_spine",
                config={"displaylogo": False})
st.caption(page.note_text("spine"))
table = page.table("profile_table")
st.subheader(table.title)
show_table(page, "profile_table")
st.caption(table.note)
if page.sentence("published"):
    st.markdown(page.sentence("published"))

if "profile_trend_table" in page.tables:
    st.subheader(page.table("profile_trend_table").title)
    st.plotly_chart(page.figures["profile_trend"], width="stretch", key="profile_trend",
                    config={"displaylogo": False})
    show_table(page, "profile_trend_table")
    st.caption(page.table("profile_trend_table").note)

st.subheader(page.table("profile_group_table").title)
st.markdown(page.sentence("comparator"))
show_table(page, "profile_group_table")

st.subheader("What each indicator counts")
definitions = page.table("profile_definitions").frame
for row in definitions.itertuples(index=False):  # one panel per indicator (the same rows as the table below)
    with st.expander(row.Indicator):
        st.markdown("\n".join(f"- **{field}**: {value}" for field, value in zip(definitions.columns[1:], row[1:])))
with st.expander("All definitions as a table"):
    show_table(page, "profile_definitions")
for name in ("population", "disclosure", "small"):
    if page.note_text(name):
        st.caption(page.note_text(name))
