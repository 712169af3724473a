"""Scenario explorer: what if every agency recorded the child's NHS number? Thin: levers, progress, results;
the work is in lib.scenario (simulation on the synthetic population, or a model from your data)."""
from __future__ import annotations

import json
import threading
from collections import OrderedDict

import streamlit as st

from lib.records.default import DEFAULT_SEED
from lib.scenario import model as scenario_model
from lib.scenario import scenario as sc
from lib.scenario import simulate
from lib.scenario.capture import Levers
from lib.synth.config import AGENCY_TYPES
import pages.common as common
from pages.common import connection, db_path, progress_callback

ROLE = common.require_page("scenario")  # every role; the area table is suppressed for aggregate-only roles

POPULATIONS = {20_000: "20,000 encounters (the default dataset)", 5_000: "5,000 encounters (quicker)"}
LAYERS = {"utla": "Children's services authority", "pfa": "Police force area", "nhs": "ICB / Welsh health board"}
CURVE_MODES = {"deterministic": "NHS-number pass only (fast, about 1–2 s a point)",
               "full": "Full linkage at every point (about 5 s a point)"}
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


@st.cache_resource(show_spinner="Generating the synthetic population…", max_entries=2)
def population(n: int, seed: int):
    return simulate.population(n, seed)


@st.cache_resource(show_spinner=False)
def _simulations() -> tuple[threading.Lock, OrderedDict]:
    """Results of scenario runs, shared by sessions (at most 16). Not st.cache_resource on the run itself:
    its progress bar is drawn from inside the run, and replaying those calls on a later rerun (a download
    click) fails with CacheReplayClosureError, because the bar is a new element in each run."""
    return threading.Lock(), OrderedDict()


def simulation(n: int, seed: int, levers_json: str, layer: str, curve_agencies: tuple, curve_mode: str, progress):
    lock, results = _simulations()
    key = (DB_PATH, n, seed, levers_json, layer, curve_agencies, curve_mode)
    with lock:
        if key in results:
            results.move_to_end(key)
            return results[key]
    levers = Levers(**json.loads(levers_json))
    result = sc.simulate_scenario(levers, key=_key(), n_encounters=n, seed=seed, layer=layer,
                                  curve_agencies=curve_agencies, curve_mode=curve_mode, progress=progress)
    with lock:
        results[key] = result
        while len(results) > 16:
            results.popitem(last=False)
    return result


@st.cache_resource(show_spinner=False, max_entries=16)
def modelled(path: str, version: str, levers_json: str, layer: str):
    return sc.model_scenario(connection(path), Levers(**json.loads(levers_json)), layer=layer)


def _key() -> bytes:
    return sc.scenario_key(DB_PATH, common.secret_key())


def _store_kind() -> tuple[bool, str]:
    """(store holds real data with linkage, its data version)."""
    from lib.measures import spans
    from lib.records import store

    try:
        if store.counts(con)["encounters"] == 0 or sc.is_default_synthetic(con):
            return False, ""
        return spans.has_linkage(con), store.data_version(con)
    except Exception:  # noqa: BLE001 - a locked or empty store: the simulation still works
        return False, ""


has_real, version = _store_kind()
kinds = ["Simulation on the synthetic population"] + (["Model on your data"] if has_real else [])
kind = st.radio("What to explore", kinds, horizontal=True, key="scn_kind",
                help="The simulation re-runs a synthetic population whose truth is known. On your own data the "
                     "product can only model the gain from the measured NHS-number completeness.")
simulating = kind == kinds[0]

if simulating:
    n = st.selectbox("Synthetic population", list(POPULATIONS), format_func=POPULATIONS.get, key="scn_population")
    pop = population(n, DEFAULT_SEED)
    today = pop.baseline.as_dict()
else:
    n = None
    today = {"capture": {a: scenario_model.national_capture(con).get(a, 0.0) for a in AGENCY_TYPES}}

# -- levers --------------------------------------------------------------------------------------------

with st.form("scn_levers"):
    basis = n if simulating else "model"  # the sliders start again when today's rates change
    st.markdown("**NHS number recorded** — share of identified (not anonymous) encounters, by agency. "
                "Each slider starts at today's measured rate.")
    cols = st.columns(len(AGENCY_TYPES))
    capture = {}
    for col, agency in zip(cols, AGENCY_TYPES):
        start = int(round(100 * today["capture"][agency]))
        value = col.slider(sc.AGENCY_LABEL[agency], 0, 100, start, step=1, format="%d%%",
                           key=f"scn_cap_{agency}_{basis}",
                           help=f"Today: {today['capture'][agency]:.1%}")
        if value != start:
            capture[agency] = value / 100
    area_capture = {}
    with st.expander("By area (optional): a different share for some of one agency's areas"):
        a1, a2, a3 = st.columns([1, 2, 1])
        area_agency = a1.selectbox("Agency", AGENCY_TYPES, format_func=sc.AGENCY_LABEL.get, key="scn_area_agency")
        codes = sorted(pop.recorder.encounters.loc[pop.recorder.encounters["agency_type"] == area_agency,
                                                   "agency_code"].unique()) if simulating else []
        if not simulating:
            from lib.records import store

            codes = store.query(con, "SELECT DISTINCT agency_code FROM encounters WHERE agency_type = ? ORDER BY 1",
                                [area_agency])["agency_code"].tolist()
        names = {}
        from lib.geo import lookup

        for layer in ("pfa", "utla", "trust"):
            names.update(lookup.name_of(layer))
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
            a_start = int(round(100 * today["anonymous"]))
            anonymous = st.slider("Anonymous sexual-health contacts, %", 0, 100, a_start, key=f"scn_anonymous_{basis}")
            wrong = None if abs(wrong - w_start) < 0.05 else wrong / 100
            anonymous = None if anonymous == a_start else anonymous / 100
        else:
            st.caption("On your own data only NHS-number capture and opt-out are modelled.")
        opt_out = st.slider("Parental opt-out: children whose number is withheld from linkage, %", 0, 50, 0,
                            key="scn_opt_out")
    c1, c2, c3 = st.columns(3)
    layer = c1.selectbox("Map the gain by", list(LAYERS), format_func=LAYERS.get, key="scn_layer")
    curve_agencies = c2.multiselect("Curve: vary capture of", AGENCY_TYPES, default=list(AGENCY_TYPES),
                                    format_func=sc.AGENCY_LABEL.get, key="scn_curve_agencies")
    curve_mode = c3.radio("Curve points linked by", list(CURVE_MODES), format_func=CURVE_MODES.get,
                          key="scn_curve_mode") if simulating else "deterministic"
    submitted = st.form_submit_button("Run scenario", type="primary", icon=":material/play_arrow:")

try:
    levers = Levers(capture=capture, area_capture=area_capture, wrong_number=wrong, false_name=false_names,
                    anonymous=anonymous, opt_out=opt_out / 100)
except ValueError as exc:
    st.error(str(exc))
    st.stop()
levers_json = json.dumps(levers.as_dict(), sort_keys=True)
request = (kind, n, levers_json, layer, tuple(curve_agencies or AGENCY_TYPES), curve_mode)

if submitted:
    st.session_state["scn_request"] = request
if st.session_state.get("scn_request") is None:
    st.info("Set the levers and press **Run scenario**. One scenario on the default dataset takes about 10–20 s "
            "(today's linkage, the scenario's, and the curve).", icon=":material/info:")
    st.stop()

kind_r, n_r, levers_r, layer_r, agencies_r, mode_r = st.session_state["scn_request"]
if kind_r == kinds[0]:
    bar = st.progress(0.0, text="Starting…")
    result = simulation(n_r, DEFAULT_SEED, levers_r, layer_r, agencies_r, mode_r, progress_callback(bar))
    bar.empty()
else:
    result = modelled(DB_PATH, version, levers_r, layer_r)
if request != st.session_state["scn_request"]:
    st.caption("Showing the last scenario run; press **Run scenario** to run the levers as now set.")

report = sc.scenario_report(result, ROLE)

# -- results -------------------------------------------------------------------------------------------

st.subheader(report.title)
st.success(report.headline, icon=":material/insights:")
left, right = st.container(), st.container()  # stacked: both tables stay readable at any width
with left:
    st.markdown("**Today and under the scenario**")
    st.dataframe(report.table, hide_index=True, width="stretch",
                 column_config={"measure": st.column_config.TextColumn("Measure", width="medium"),
                                "today": st.column_config.NumberColumn("Today", format="%.4g"),
                                "scenario": st.column_config.NumberColumn("Scenario", format="%.4g"),
                                "change": st.column_config.NumberColumn("Change", format="%+.4g")})
with right:
    if result["kind"] == "simulation":
        counts = result["scenario"]["agency_counts"]
        before = result["today"]["agency_counts"]
        st.markdown("**Each agency's count of distinct children**")
        st.dataframe([{"agency": sc.AGENCY_LABEL[a], "today": before[a]["estimated"],
                       "scenario": counts[a]["estimated"],
                       "true": counts[a]["true"]} for a in AGENCY_TYPES], hide_index=True, width="stretch")
        st.caption("Estimated by linkage today and under the scenario, against the true count: duplicate records "
                   "the agency cannot join inflate its count.")
        if result["scenario"].get("note"):
            st.warning(result["scenario"]["note"], icon=":material/warning:")
    else:
        st.markdown("**Measured NHS-number capture today** (valid numbers, identified encounters)")
        st.dataframe([{"agency": sc.AGENCY_LABEL.get(a, a), "today": f"{v:.0%}"}
                      for a, v in result["today_levers"]["capture"].items()], hide_index=True, width="stretch")

st.markdown("**Gain against capture rate**")
st.plotly_chart(report.figures["curve"], width="stretch", key="scn_curve")
if result.get("curve") is not None:
    with st.expander("Curve as a table"):
        st.dataframe(result["curve"], hide_index=True, width="stretch")

st.markdown(f"**Where: children newly recognised by NHS number alone, by home {sc.LAYER_LABEL[result['layer']]}**")
map_tab, table_tab = st.tabs(["Map", "Table"])
with map_tab:
    st.plotly_chart(report.figures["map"], width="stretch", config=MAP_CONFIG, key="scn_map")
with table_tab:
    st.dataframe(report.area_table, hide_index=True, width="stretch")
if ROLE != "lead":
    st.caption("Counts from 1 to 5 are shown as `c`, with secondary suppression, for this role.")

with st.expander("Assumptions (for the board pack)", expanded=True):
    st.markdown(report.assumptions)

payload = json.dumps(sc.to_json({**result, "by_area": report.area_table}), indent=1, default=str)
d1, d2 = st.columns(2)
common.export_button("Download the result (JSON)", payload, "scenario.json", "application/json", key="scn_json",
                     container=d1)
common.export_button("Download the area table (CSV)", report.area_table, "scenario_areas.csv", "text/csv",
                     key="scn_csv", container=d2)
