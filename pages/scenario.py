"""Scenario explorer: what if every agency recorded the child's NHS number? Thin: levers, progress, caching;
every number, sentence and table shown comes from the view builder lib.views.scenario (the simulation on the
synthetic population, or a model from your data, is lib.scenario)."""
from __future__ import annotations

import threading
from collections import OrderedDict

import streamlit as st

from lib import views
from lib.records import store
from lib.records.default import DEFAULT_SEED
from lib.scenario import scenario as sc
from lib.scenario import simulate
from lib.scenario.capture import Levers
from lib.synth.config import AGENCY_TYPES
from lib.views import divergence as divergence_view
from lib.views import scenario as view
from lib.views.base import Source
from pages import common, exports
from pages.common import connection, db_path, progress_callback

ROLE = common.require_page("scenario")  # every role; every count is protected for aggregate-only roles (lib.disclosure)

MAP_CONFIG = {"scrollZoom": True, "displaylogo": False}

st.title("What if every agency recorded the NHS number?")
st.markdown(
    "A unique identifier for every child is coming, most likely the NHS number. Set how often each agency "
    "records it (and the other things that stop records joining up); the product re-records the same "
    "synthetic children and encounters with only the identifiers changed, links them again with its own "
    "linkage, and shows what the number buys: more children recognised as known to several agencies, "
    "agencies' counts closer to the truth, and where."
)

DB_PATH = db_path()
con = connection(DB_PATH)
source = Source(con, DB_PATH)


@st.cache_resource(show_spinner="Generating the synthetic population…", max_entries=2)
def population(n: int, seed: int):
    return simulate.population(n, seed)


@st.cache_resource(show_spinner=False)
def _results() -> tuple[threading.Lock, OrderedDict]:
    """Scenario results shared by sessions (at most 16), keyed by ``view.cache_key``: the parameters and, for
    the model, the store's one data version (lib.records.store.data_version), so a re-link, an upload or a
    review decision is never served a stale model. Not st.cache_resource on the run itself: the progress bar
    is drawn from inside the run, and replaying those calls on a later rerun (a download click, another
    session) fails with CacheReplayClosureError, because the bar is a new element in each run."""
    return threading.Lock(), OrderedDict()


def scenario_result(params: dict, progress=None) -> dict:
    lock, results = _results()
    key = view.cache_key(source, params)
    with lock:
        if key in results:
            results.move_to_end(key)
            return results[key]
    result = view.compute(source, params, key=sc.scenario_key(DB_PATH, common.secret_key()), progress=progress)
    with lock:
        results[key] = result
        while len(results) > 16:
            results.popitem(last=False)
    return result


has_real = view.model_available(con)
kinds = [label for k, label in view.KINDS.items() if has_real or k == "simulation"]
chosen_kind = st.radio("What to explore", kinds, horizontal=True, key="scn_kind",
                       help="The simulation re-runs a synthetic population whose truth is known. On your own data "
                            "the product can only model the gain from the measured NHS-number completeness.")
kind = next(k for k, label in view.KINDS.items() if label == chosen_kind)
simulating = kind == "simulation"

if simulating:
    n = st.selectbox("Synthetic population", list(view.POPULATIONS), format_func=view.POPULATIONS.get,
                     key="scn_population")
    kept_start = view.stored_start(source, n)  # the stored default simulation's start: no population generated
    pop = population(n, DEFAULT_SEED) if kept_start is None else None
else:
    n, pop, kept_start = None, None, None
today = view.todays_levers(con, kind, pop, kept_start)

# -- levers --------------------------------------------------------------------------------------------

with st.form("scn_levers"):
    basis = n if simulating else "model"  # the sliders start again when today's rates change
    st.markdown("**NHS number recorded** — share of identified (not anonymous) encounters, by agency. "
                "Each slider starts at today's measured rate.")
    cols = st.columns(len(AGENCY_TYPES))
    capture = {}
    for col, agency in zip(cols, AGENCY_TYPES):
        start = round(100 * today["capture"][agency])
        value = col.slider(sc.AGENCY_LABEL[agency], 0, 100, start, step=1, format="%d%%",
                           key=f"scn_cap_{agency}_{basis}",
                           help=f"Today: {today['capture'][agency]:.1%}")
        if value != start:
            capture[agency] = value / 100
    area_capture = {}
    with st.expander("By area (optional): a different share for some of one agency's areas"):
        a1, a2, a3 = st.columns([1, 2, 1])
        area_agency = a1.selectbox("Agency", AGENCY_TYPES, format_func=sc.AGENCY_LABEL.get, key="scn_area_agency")
        codes = view.area_choices(con, kind, area_agency, pop, kept_start)
        names = view.area_names()
        chosen = a2.multiselect("Areas (the agency's own codes)", codes,
                                format_func=lambda c: f"{names.get(c, c)} ({c})",
                                key="scn_area_codes")
        area_share = a3.slider("Share in those areas", 0, 100, 100, format="%d%%", key="scn_area_share")
        if chosen:
            area_capture = {area_agency: {c: area_share / 100 for c in chosen}}
    wrong = anonymous = None
    false_names = {}
    opt_out = 0
    with st.expander("Other levers: wrong numbers, false names, anonymous contacts, parental opt-out"):
        if simulating:
            w_start = round(100 * today["wrong_number"], 1)
            wrong = st.slider("Wrong NHS numbers (mistyped or another child's), % of recorded numbers", 0.0, 10.0,
                              float(w_start), step=0.1, key=f"scn_wrong_{basis}")
            st.markdown("False names, % of identified encounters")
            fcols = st.columns(len(AGENCY_TYPES))
            for col, agency in zip(fcols, AGENCY_TYPES):
                f_start = round(100 * today["false_name"][agency], 1)
                value = col.slider(sc.AGENCY_LABEL[agency], 0.0, 20.0, float(f_start), step=0.1,
                                   key=f"scn_false_{agency}_{basis}")
                if abs(value - f_start) > 0.05:  # a slider float, not a change
                    false_names[agency] = value / 100
            a_start = round(100 * today["anonymous"])
            anonymous = st.slider("Anonymous sexual-health contacts, %", 0, 100, a_start, key=f"scn_anonymous_{basis}")
            wrong = None if abs(wrong - w_start) < 0.05 else wrong / 100
            anonymous = None if anonymous == a_start else anonymous / 100
        else:
            st.caption("On your own data only NHS-number capture and opt-out are modelled.")
        opt_out = st.slider("Parental opt-out: children whose number is withheld from linkage, %", 0, 50, 0,
                            key="scn_opt_out")
    c1, c2, c3 = st.columns(3)
    layer = c1.selectbox("Map the gain by", list(view.LAYERS), format_func=view.LAYERS.get, key="scn_layer")
    curve_agencies = c2.multiselect("Curve: vary capture of", AGENCY_TYPES, default=list(AGENCY_TYPES),
                                    format_func=sc.AGENCY_LABEL.get, key="scn_curve_agencies")
    curve_mode = c3.radio("Curve points linked by", list(view.CURVE_MODES), format_func=view.CURVE_MODES.get,
                          key="scn_curve_mode") if simulating else "deterministic"
    submitted = st.form_submit_button("Run scenario", type="primary", icon=":material/play_arrow:")

try:
    levers = Levers(capture=capture, area_capture=area_capture, wrong_number=wrong, false_name=false_names,
                    anonymous=anonymous, opt_out=opt_out / 100)
except ValueError as exc:
    st.error(str(exc))
    st.stop()
params = {"kind": kind, "encounters": n or view.PARAMS["encounters"].default, "levers": view.levers_json(levers),
          "layer": layer, "curve_agencies": list(curve_agencies or AGENCY_TYPES),
          "curve_mode": curve_mode if simulating else "deterministic"}
request = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in params.items())

if submitted:
    st.session_state["scn_request"] = request
if st.session_state.get("scn_request") is None:
    st.info("Set the levers and press **Run scenario**. One scenario on the default dataset takes about 10–20 s "
            "(today's linkage, the scenario's, and the curve).", icon=":material/info:")
    st.stop()

shown = {k: list(v) if isinstance(v, tuple) else v for k, v in st.session_state["scn_request"]}
try:
    if shown["kind"] == "simulation":
        bar = st.progress(0.0, text="Starting…")
        result = scenario_result(shown, progress_callback(bar))
        bar.empty()
    else:
        result = scenario_result(shown)
except ValueError as exc:  # e.g. the model asked of a store that no longer holds linked records of your own
    st.session_state.pop("scn_request", None)
    st.error(str(exc))
    st.stop()
if request != st.session_state["scn_request"]:
    st.caption("Showing the last scenario run; press **Run scenario** to run the levers as now set.")

data = view.page_data(result, shown, ROLE, store.data_version(con))

# -- results: only what the view builder returns ------------------------------------------------------------


def table(name: str, **kwargs) -> None:
    spec = data.tables[name]
    config = {}
    for column, hint in spec.columns.items():
        if "format" in hint:
            config[column] = st.column_config.NumberColumn(hint.get("label"), format=hint["format"])
        else:
            config[column] = st.column_config.TextColumn(hint.get("label"), width=hint.get("width"))
    st.dataframe(spec.frame, hide_index=True, width="stretch", column_config=config or None, key=name, **kwargs)


st.subheader(data.title)
st.success(data.sentences[0], icon=":material/insights:")
left, right = st.container(), st.container()  # stacked: both tables stay readable at any width
with left:
    st.markdown(f"**{data.tables['summary'].title}**")
    table("summary")
with right:
    side = "agencies" if "agencies" in data.tables else "capture"
    st.markdown(f"**{data.tables[side].title}**")
    table(side)
    if data.tables[side].note:
        st.caption(data.tables[side].note)
    for warning in data.sentences[1:]:
        st.warning(warning, icon=":material/warning:")

st.markdown("**Gain against capture rate**")
st.plotly_chart(data.figures["curve"], width="stretch", key="scn_curve")
if "curve" in data.tables:
    with st.expander(data.tables["curve"].title):
        table("curve")

areas = data.tables["areas"]
st.markdown(f"**{areas.title}**")
map_tab, table_tab = st.tabs(["Map", "Table"])
with map_tab:
    st.plotly_chart(data.figures["map"], width="stretch", config=MAP_CONFIG, key="scn_map")
with table_tab:
    table("areas")
if areas.note:
    st.caption(areas.note)

with st.expander("Assumptions (for the board pack)", expanded=True):
    st.markdown("\n".join(f"- {line}" for line in data.notes))

d1, d2 = st.columns(2)
common.export_button("Download the result (JSON)", view.download_json(result, ROLE), "scenario.json",
                     "application/json", key="scn_json", container=d1)
common.export_button("Download the area table (CSV)", areas.frame, "scenario_areas.csv", "text/csv",
                     key="scn_csv", container=d2)

# -- board pack: the divergence deck of the store's counts with this scenario as a slide (the same export path,
# cache and audit row as the other pages' board packs: pages.exports) ----------------------------------------
st.markdown("**Board pack**")
pack_layer = shown["layer"] if shown["layer"] in divergence_view.PARAMS["layer"].choices else "utla"
try:
    pack_areas, _ = divergence_view.area_choices(source, views.resolve_params("divergence", {"layer": pack_layer}),
                                                 ROLE)
except ValueError:  # no agencies' records in the store to count
    pack_areas = []
if pack_areas:
    exports.board_pack_controls(layer=pack_layer, area=common.shared_area(pack_areas) or pack_areas[0], role=ROLE,
                                key="scn_bp", scenario=data)
else:
    st.caption("The board pack needs records in the store (the Data page); the scenario's own results are in the "
               "downloads above.")
