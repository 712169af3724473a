"""The scenario explorer end to end: simulate (synthetic population) or model (real data), then report.

``simulate_scenario`` re-runs the synthetic population under the levers (lib.scenario.simulate);
``model_scenario`` estimates the same from a real store's measured completeness (lib.scenario.model);
``scenario_report`` turns either result into what a page or a board-pack slide shows: figures, one small
table and the assumptions in words. ``to_json`` is the ``scenario`` command's output.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lib.geo import agencies, layers
from lib.scenario import simulate
from lib.scenario.capture import Levers
from lib.synth.config import AGENCY_TYPES

AGENCY_LABEL = agencies.LABELS
#: Layer key -> one area of it in a sentence (the layer registry's ``noun``; a live view).
LAYER_LABEL = layers.view(lambda layer: bool(layer.noun), lambda layer: layer.noun)
SIMULATION_TITLE = "Simulation on the synthetic population"
MODEL_TITLE = "Model from your data's measured NHS-number completeness (an estimate, not a re-run)"


def _noop(fraction: float, message: str) -> None:
    return None


SYNTHETIC_KEY = b"joined-up scenario key (synthetic data only)"


def scenario_key(db_path=None, key=None) -> bytes:
    """The store's pseudonymisation key (given, the host app's secret, environment or key file; never created
    here), else a fixed key for synthetic-only runs (the scenario store is temporary and holds synthetic records
    only)."""
    from lib.records.pseudonymise import KeyProblem, host_key, load_key

    key = key if key is not None else host_key()
    try:
        return load_key(None if db_path is None or str(db_path) == ":memory:" else db_path, key, create=False)
    except KeyProblem:
        return SYNTHETIC_KEY


def disclosure_secret(key: bytes) -> bytes:
    """The secret behind the simulation's cell keys (lib.disclosure): derived from the scenario's key, so the
    same synthetic children get the same keys on every run and nobody without the key can predict them."""
    import hashlib
    import hmac

    return hmac.new(key, b"joined-up/disclosure/scenario-cell-key/v1", hashlib.sha256).digest()


def is_default_synthetic(con) -> bool:
    """True when the store holds only the app's default synthetic dataset (one batch, its file name)."""
    from lib.records.default import DEFAULT_FILENAME
    from lib.records.store import batches

    table = batches(con)
    return len(table) >= 1 and set(table["file_name"]) == {DEFAULT_FILENAME}


def levers_text(levers: Levers, today: dict) -> list[str]:
    """The levers as sentences (what was changed from today, and today's value)."""
    out = []
    for agency in AGENCY_TYPES:
        if agency in levers.capture:
            out.append(f"{AGENCY_LABEL[agency]}: NHS number recorded on {levers.capture[agency]:.0%} of identified "
                       f"encounters (today {today['capture'][agency]:.0%}).")
    for agency, areas in levers.area_capture.items():
        for code, share in areas.items():
            out.append(f"{AGENCY_LABEL[agency]} in {code}: {share:.0%}.")
    if levers.wrong_number is not None:
        out.append(f"Wrong NHS numbers (mistyped or another child's): {levers.wrong_number:.1%} of recorded numbers "
                   f"(today {today['wrong_number']:.1%}).")
    for agency, share in levers.false_name.items():
        out.append(f"{AGENCY_LABEL[agency]}: false names on {share:.1%} of identified encounters "
                   f"(today {today['false_name'][agency]:.1%}).")
    if levers.anonymous is not None:
        out.append(f"Anonymous sexual-health contacts: {levers.anonymous:.0%} (today {today['anonymous']:.0%}).")
    if levers.opt_out:
        out.append(f"Parental opt-out: the number is withheld for {levers.opt_out:.0%} of children.")
    return out or ["No lever changed: today's recording."]


ASSUMPTIONS_SIMULATION = [
    "Same children, same encounters: the synthetic population ({n:,} encounters, seed {seed}) is generated once; "
    "only the recording of identifiers changes between today and the scenario.",
    "Each lever is decided by one random draw per encounter (per child for opt-out), from its own seeded stream, "
    "conditioned on today's recording: today's settings reproduce today's extract exactly, and raising a capture "
    "share only adds NHS numbers.",
    "Capture is the share of identified (not anonymous) encounters on which the child's NHS number is recorded; "
    "a recorded number can still be wrong (mistyped, or another child's) at the wrong-number share.",
    "Each scenario is ingested into a temporary in-memory store with the same pseudonymisation key and linked by "
    "the product's own linkage (NHS-number pass, then Splink, threshold 0.9); nothing is written to your store.",
    "Recognised: a child truly known to two or more agency types whose records from two or more of them end up "
    "in one linked child. 'By NHS number alone' counts only the NHS-number pass.",
    "Agencies' counts: each agency's count of distinct children in its own records; the count gap is the total "
    "difference from the true counts, as a share of them.",
    "The curve sets the capture share of {curve_agencies} to each rate in turn, other levers as in the scenario; "
    "{curve_mode}.",
    "Synthetic data: the figures show the mechanism and its size on a realistic population, not a forecast "
    "for any real area.",
]
ASSUMPTIONS_MODEL = [
    "A model, not a re-run: real extracts cannot be re-recorded and carry no ground truth.",
    "Population: the children your store's current linkage finds known to two or more agency types.",
    "Today's chance that a record carries a valid NHS number is the measured share for its agency type in its "
    "area (home, else where the encounter happened), among identified encounters.",
    "Under the scenario the chance is the capture share set for the agency (times one minus the opt-out share).",
    "A child is recognisable by NHS number alone when two or more of its agency types each hold at least one "
    "record with the number; records are treated as independent.",
    "Children the current linkage misses, and what probabilistic linkage adds, are not modelled.",
]


def agency_areas(pop) -> dict[str, list[str]]:
    """Each agency type's own area codes in the synthetic population, sorted (where a per-area capture can be set)."""
    encounters = pop.recorder.encounters
    return {a: sorted(map(str, encounters.loc[encounters["agency_type"] == a, "agency_code"].unique()))
            for a in AGENCY_TYPES}


def simulate_scenario(levers: Levers, *, key: bytes, n_encounters: int | None = None, seed: int | None = None,
                      layer: str = "utla", curve_rates=simulate.CURVE_RATES, curve_mode: str = "deterministic",
                      curve_agencies=None, progress=_noop) -> dict:
    """Today and the scenario linked on the synthetic population, measured against truth; with the curve."""
    from lib.records.default import DEFAULT_ENCOUNTERS, DEFAULT_SEED

    started = time.perf_counter()
    n_encounters = int(n_encounters or DEFAULT_ENCOUNTERS)
    seed = int(DEFAULT_SEED if seed is None else seed)
    curve_agencies = tuple(curve_agencies or (tuple(levers.capture) or AGENCY_TYPES))
    has_curve = bool(curve_rates)
    split = (0.2, 0.55, 0.8) if has_curve else (0.25, 0.62, 1.0)
    progress(0.0, "Generating the synthetic population (same children, same encounters)")
    pop = simulate.population(n_encounters, seed, progress=simulate._sub(progress, 0.0, split[0]))
    today = simulate.baseline(pop, key=key, progress=simulate._sub(progress, split[0], split[1], "Today: "))
    scen = (simulate.same_as_today(today) if simulate.records_today(pop, levers)
            else simulate.run(pop, levers, key=key, progress=simulate._sub(progress, split[1], split[2], "Scenario: ")))
    curve = None
    if has_curve:
        curve = simulate.curve(pop, levers, key=key, agencies=curve_agencies, rates=curve_rates, mode=curve_mode,
                               progress=simulate._sub(progress, split[2], 1.0, "Curve: "))
    secret = disclosure_secret(key)
    areas = simulate.by_area(pop, today, scen, layer, secret=secret)
    if curve is not None:
        curve = curve_with_keys(curve, pop, secret)
    baseline = pop.baseline.as_dict()
    result = {
        "kind": "simulation",
        "title": SIMULATION_TITLE,
        "population": {"n_encounters": n_encounters, "seed": seed,
                       "children_true": today.metrics["children_true"],
                       "multi_agency_children_true": today.metrics["multi_agency_children_true"]},
        "today_levers": baseline,
        # each agency's own area codes in the population (the page's per-area lever offers them): kept with the
        # result so a page opening on a stored result need not generate the population (lib.scenario.stored)
        "agency_areas": agency_areas(pop),
        "levers": levers.as_dict(),
        "levers_text": levers_text(levers, baseline),
        "today": today.metrics,
        "scenario": scen.metrics,
        "gain": _gain(today.metrics, scen.metrics),
        "layer": layer,
        "by_area": areas,
        "curve": curve,
        "curve_agencies": list(curve_agencies),
        "curve_mode": curve_mode,
        "total_keys": total_keys(pop, today, scen, secret),
        "timings": {"today_seconds": round(today.seconds, 2), "scenario_seconds": round(scen.seconds, 2),
                    "scenario_stages": scen.stage_seconds,
                    "curve_seconds": None if curve is None else round(float(curve["seconds"].sum()), 2)},
    }
    mode_text = ("each point linked by the NHS-number pass only (fast); full linkage is shown for today and "
                 "the scenario" if curve_mode == "deterministic" else "each point fully linked (NHS number + Splink)")
    result["assumptions"] = [a.format(n=n_encounters, seed=seed, curve_mode=mode_text,
                                      curve_agencies=", ".join(AGENCY_LABEL[a].lower() for a in curve_agencies))
                             for a in ASSUMPTIONS_SIMULATION]
    result["seconds"] = round(time.perf_counter() - started, 2)
    progress(1.0, f"Scenario ready in {result['seconds']:.1f} s")
    return result


#: Counts of children in the simulation's curve, each with its children's cell key ``key_<count>``.
CURVE_COUNTS = ("multi_agency_recognised", "multi_agency_recognised_by_number", "multi_agency_children_true")


def _child_keys(pop, secret: bytes) -> pd.Series:
    """The record key (lib.disclosure) of every named synthetic child, indexed by true child id."""
    from lib.disclosure.members import keys_of

    truth = pop.recorder.truth
    ids = np.unique(truth["true_child_id"].to_numpy())
    return pd.Series(keys_of([str(i) for i in ids], secret, "child"), index=ids, dtype="int64")


def _key_of(rkey: pd.Series, members) -> int:
    """The cell key of a set of children: the sum of their record keys modulo 256."""
    members = np.intersect1d(np.asarray(members), rkey.index.to_numpy())
    return int(rkey.reindex(members).sum() % 256)


def total_keys(pop, today, scen, secret: bytes) -> dict[str, int]:
    """The cell key of each national count of children the simulation publishes (the sum of its children's
    record keys modulo 256, lib.disclosure), so a role below the lead sees it perturbed (lib.views.scenario):
    the summary's counts, ``children`` (every named child: the key of the children counted and estimated) and
    ``agency.<agency>`` (the children the agency recorded: the key of its true and estimated counts)."""
    rkey = _child_keys(pop, secret)
    truth = pop.recorder.truth
    named = truth[~truth["anonymous"].to_numpy(bool)]
    out = {"children": _key_of(rkey, named["true_child_id"].unique()),
           "multi_agency_children_true": _key_of(rkey, pop.multi_agency_true),
           "today.multi_agency_recognised": _key_of(rkey, today.recognised),
           "scenario.multi_agency_recognised": _key_of(rkey, scen.recognised),
           "today.multi_agency_recognised_by_number": _key_of(rkey, today.recognised_by_number),
           "scenario.multi_agency_recognised_by_number": _key_of(rkey, scen.recognised_by_number)}
    for agency in AGENCY_TYPES:
        out[f"agency.{agency}"] = _key_of(rkey, named.loc[named["agency_type"] == agency, "true_child_id"].unique())
    return out


def curve_with_keys(curve: pd.DataFrame, pop, secret: bytes) -> pd.DataFrame:
    """The curve with the cell key of each count of children (``key_<count>``, CURVE_COUNTS) in place of the
    children behind it, so the view publishes every point as it publishes the summary: the same children,
    the same key, the same published value (the national true count equals the summary's)."""
    rkey = _child_keys(pop, secret)
    out = curve.drop(columns=["recognised_ids", "by_number_ids"], errors="ignore").copy()
    if "recognised_ids" in curve.columns:
        out["key_multi_agency_recognised"] = [_key_of(rkey, ids) for ids in curve["recognised_ids"]]
        out["key_multi_agency_recognised_by_number"] = [_key_of(rkey, ids) for ids in curve["by_number_ids"]]
    out["key_multi_agency_children_true"] = _key_of(rkey, pop.multi_agency_true)
    return out


def _gain(today: dict, scen: dict) -> dict:
    keys = ("multi_agency_recognised", "multi_agency_recognised_by_number", "multi_agency_children_estimated",
            "precision", "recall", "f1", "count_gap_pct", "review_queue", "children_estimated")
    out = {}
    for k in keys:
        if k in today and k in scen:
            d = scen[k] - today[k]
            out[k] = round(d, 5) if isinstance(d, float) else int(d)
    return out


def model_scenario(con, levers: Levers, *, layer: str = "utla", curve_rates=simulate.CURVE_RATES) -> dict:
    """The real-data estimate (lib.scenario.model), in the same shape as a simulation result where it can be."""
    from lib.scenario import model

    est = model.estimate(con, levers, layer=layer, rates=curve_rates)
    today_levers = {"capture": est["measured_capture"]}
    out = {
        "kind": "model",
        "title": MODEL_TITLE,
        "today_levers": today_levers,
        "levers": levers.as_dict(),
        "levers_text": [t for t in levers_text(levers, {"capture": {a: est["measured_capture"].get(a, 0.0)
                                                                     for a in AGENCY_TYPES},
                                                          "wrong_number": 0, "false_name": {a: 0 for a in AGENCY_TYPES},
                                                          "anonymous": 0})
                        if "false names" not in t and "Wrong NHS" not in t and "Anonymous" not in t],
        "multi_agency_children_linked": est["multi_agency_children_linked"],
        "expected_by_number_today": est["expected_by_number_today"],
        "expected_by_number_scenario": est["expected_by_number_scenario"],
        "expected_gain_by_number": est["expected_gain_by_number"],
        "layer": layer,
        "by_area": est["by_area"],
        "published_by_area": est["published_by_area"],
        "total_keys": {},  # the model's counts of children are published on home atoms (published_totals)
        "published_totals": {"multi_agency_children_linked": est["published_multi_agency_children_linked"]},
        "curve": est.get("curve"),
        "assumptions": list(ASSUMPTIONS_MODEL),
    }
    ignored = [name for name, v in (("wrong numbers", levers.wrong_number), ("false names", levers.false_name or None),
                                    ("anonymous contacts", levers.anonymous)) if v is not None]
    if ignored:
        out["assumptions"].append(f"Not modelled on real data (simulation only): {', '.join(ignored)}.")
    return out


def to_json(result: dict) -> dict:
    """The result with its tables as lists of records (the ``scenario`` command's JSON)."""
    out = {}
    for k, v in result.items():
        if isinstance(v, pd.DataFrame):
            out[k] = v.to_dict(orient="records")
        else:
            out[k] = v
    return out


# ---------------------------------------------------------------- report: table, figures, assumptions

def summary_table(result: dict) -> pd.DataFrame:
    """The small table: one row per measure, today, scenario, change."""
    if result["kind"] == "model":
        rows = [("Children known to 2+ agencies (current linkage)", result["multi_agency_children_linked"],
                 result["multi_agency_children_linked"]),
                ("…of them recognisable by NHS number alone (expected)", result["expected_by_number_today"],
                 result["expected_by_number_scenario"])]
        frame = pd.DataFrame(rows, columns=["measure", "today", "scenario"])
    else:
        t, s = result["today"], result["scenario"]
        truth = result["population"]["multi_agency_children_true"]
        rows = [
            ("Children truly known to 2+ agencies", truth, truth),
            ("…recognised with full linkage", t["multi_agency_recognised"], s["multi_agency_recognised"]),
            ("…recognised by NHS number alone", t["multi_agency_recognised_by_number"],
             s["multi_agency_recognised_by_number"]),
            ("Linkage precision", t["precision"], s["precision"]),
            ("Linkage recall", t["recall"], s["recall"]),
            ("Agencies' counts: gap from truth (%)", t["count_gap_pct"], s["count_gap_pct"]),
        ]
        if "review_queue" in t and "review_queue" in s:
            rows.append(("Links waiting for review", t["review_queue"], s["review_queue"]))
        frame = pd.DataFrame(rows, columns=["measure", "today", "scenario"])
    frame["change"] = frame["scenario"] - frame["today"]
    return frame


def _mean_capture(result: dict, which: str) -> float:
    """Mean capture share over the curve's agencies, today or under the scenario (the x of its point)."""
    agencies = result.get("curve_agencies") or list(AGENCY_TYPES)
    today = result["today_levers"]["capture"]
    chosen = result["levers"]["capture"] if which == "scenario" else {}
    return float(np.mean([chosen.get(a, today.get(a, 0.0)) for a in agencies]))


def curve_figure(result: dict) -> go.Figure:
    """Gain versus capture rate: a curve over several capture rates, today's and the scenario's points marked
    (at the mean capture of the curve's agencies)."""
    fig = go.Figure()
    curve = result.get("curve")
    x_title = "NHS number capture (share of identified encounters)"
    if result["kind"] == "model":
        y_title = "Children recognisable by NHS number alone"
        ceiling, ceiling_text = result["multi_agency_children_linked"], "known to 2+ agencies (current linkage)"
        if curve is not None and len(curve):
            fig.add_trace(go.Scatter(x=curve["capture"], y=curve["expected_by_number"], mode="lines+markers",
                                     name="By NHS number alone (model)", line={"color": "#0072B2", "width": 3},
                                     marker={"symbol": "circle", "size": 8},
                                     hovertemplate="capture %{x:.0%}: %{y:,.0f} children<extra></extra>"))
        points = [("Today", result["expected_by_number_today"], "square", "#009E73"),
                  ("Scenario", result["expected_by_number_scenario"], "star", "#D55E00")]
        xs = {"Today": float(np.mean(list(result["today_levers"]["capture"].values()) or [0])),
              "Scenario": float(np.mean([result["levers"]["capture"].get(a, v)
                                         for a, v in result["today_levers"]["capture"].items()] or [0]))}
    else:
        y_title = "Children known to 2+ agencies, recognised"
        ceiling, ceiling_text = result["population"]["multi_agency_children_true"], "truly known to 2+ agencies"
        if curve is not None and len(curve):
            fig.add_trace(go.Scatter(x=curve["capture"], y=curve["multi_agency_recognised_by_number"],
                                     mode="lines+markers", name="By NHS number alone",
                                     line={"color": "#0072B2", "width": 3}, marker={"symbol": "circle", "size": 8},
                                     hovertemplate="capture %{x:.0%}: %{y:,} children<extra></extra>"))
            if (curve["mode"] == "full").all():
                fig.add_trace(go.Scatter(x=curve["capture"], y=curve["multi_agency_recognised"], mode="lines+markers",
                                         name="With full linkage",
                                         line={"color": "#CC79A7", "width": 3, "dash": "dash"},
                                         marker={"symbol": "diamond", "size": 9},
                                         hovertemplate="capture %{x:.0%}: %{y:,} children<extra></extra>"))
        t, s = result["today"], result["scenario"]
        points = [("Today", t["multi_agency_recognised_by_number"], "square", "#009E73"),
                  ("Scenario", s["multi_agency_recognised_by_number"], "star", "#D55E00"),
                  ("Today, full linkage", t["multi_agency_recognised"], "square-open", "#009E73"),
                  ("Scenario, full linkage", s["multi_agency_recognised"], "star-open", "#D55E00")]
        xs = {"Today": _mean_capture(result, "today"), "Scenario": _mean_capture(result, "scenario")}
    for label, y, symbol, colour in points:
        x = xs[label.split(",")[0]]
        fig.add_trace(go.Scatter(x=[x], y=[y], mode="markers", name=label,
                                 marker={"symbol": symbol, "size": 14, "color": colour, "line": {"width": 2,
                                                                                                "color": colour}},
                                 hovertemplate=label + ": %{y:,.0f} children at %{x:.0%}<extra></extra>"))
    fig.add_hline(y=ceiling, line={"dash": "dot", "color": "#555"}, annotation_text=ceiling_text,
                  annotation_position="top left")
    fig.update_layout(height=460, margin={"l": 10, "r": 10, "t": 30, "b": 10}, plot_bgcolor="white",
                      xaxis={"title": x_title, "tickformat": ".0%", "range": [-0.03, 1.03], "gridcolor": "#eee"},
                      yaxis={"title": y_title, "rangemode": "tozero", "gridcolor": "#eee"},
                      legend={"orientation": "h", "y": -0.22, "x": 0, "yanchor": "top"})
    return fig


def gain_map(table: pd.DataFrame, layer: str, value: str = "gain_by_number", height: int = 520,
             hatch=()) -> go.Figure:
    """Areas coloured by the gain (children newly recognised); cells without a number left grey. ``hatch``:
    codes of areas hatched as small (published counts under 10 below the lead: lib.geo.maps.hatch_trace)."""
    from lib.geo import maps
    from lib.measures.figures import layer_geojson

    geojson = layer_geojson(layer)
    ids = {f["id"] for f in geojson["features"]}
    shown = table[table["area_code"].isin(ids)].copy()
    z = pd.to_numeric(shown[value], errors="coerce")
    hidden = shown[z.isna()]
    shown, z = shown[z.notna()], z[z.notna()]
    traces = []
    if len(hidden):
        traces.append(go.Choroplethmap(geojson=geojson, locations=hidden["area_code"], z=np.zeros(len(hidden)),
                                       colorscale=[[0, "#cccccc"], [1, "#cccccc"]], showscale=False,
                                       marker={"line": {"width": 0.5, "color": "#fff"}},
                                       text=hidden["area_name"], hovertemplate="<b>%{text}</b><br>no figure"
                                       "<extra></extra>", name="no figure"))
    zmax = float(max(z.max() if len(z) else 1.0, 1.0))
    traces.append(go.Choroplethmap(
        geojson=geojson, locations=shown["area_code"], z=z, zmin=0, zmax=zmax, colorscale="Blues",
        marker={"line": {"width": 0.5, "color": "#ffffff"}, "opacity": 0.9}, text=shown["area_name"],
        hovertemplate="<b>%{text}</b> (%{location})<br>gain: %{z:,.1f} children<extra></extra>",
        colorbar={"title": {"text": "children newly<br>recognised", "side": "right"}, "thickness": 14,
                  "len": 0.8, "y": 0.45}))
    if len(hatch):
        traces.append(maps.hatch_trace(layer, hatch))
    fig = go.Figure(traces)
    layout = maps.base_layout(maps.OFFLINE_STYLE, None, height)
    layout["map"]["layers"] = [{"sourcetype": "geojson", "source": maps.layer_geojson("pfa"), "type": "fill",
                                "color": maps.LAND_FILL, "below": "traces"}]
    fig.update_layout(**layout)
    return fig


AREA_COUNT_COLUMNS = ("multi_agency_true", "multi_agency_linked", "recognised_today", "recognised_scenario",
                      "by_number_today", "by_number_scenario")
#: Differences of two counts (computed from the published counts below the lead: lib.views.scenario).
AREA_GAIN_COLUMNS = {"gain": ("recognised_today", "recognised_scenario"),
                     "gain_by_number": ("by_number_today", "by_number_scenario")}


def area_table(result: dict) -> pd.DataFrame:
    """The by-area table with exact counts (the safeguarding lead's), without the cell keys. What a role below
    the lead sees is published by lib.views.scenario.protect_areas (the one place protection happens)."""
    from lib.disclosure.cells import drop_keys

    return drop_keys(result["by_area"])


@dataclass
class ScenarioReport:
    """What a page or a board-pack slide shows for one scenario."""

    title: str
    figures: dict  # name -> plotly Figure ("curve", "map")
    table: pd.DataFrame  # the small summary table
    area_table: pd.DataFrame  # by home area, as the role may see it
    assumptions: str  # plain text, one assumption per line
    headline: str


def headline(result: dict) -> str:
    if result["kind"] == "model":
        return (f"Model: of {result['multi_agency_children_linked']:,} children your linkage finds known to two or "
                f"more agencies, about {result['expected_by_number_today']:,.0f} are recognisable by NHS number alone "
                f"today and {result['expected_by_number_scenario']:,.0f} under this scenario "
                f"({result['expected_gain_by_number']:+,.0f}).")
    t, s = result["today"], result["scenario"]
    truth = result["population"]["multi_agency_children_true"]
    return (f"Of {truth:,} children truly known to two or more agencies, the NHS number alone recognises "
            f"{t['multi_agency_recognised_by_number']:,} today and {s['multi_agency_recognised_by_number']:,} under "
            f"this scenario ({s['multi_agency_recognised_by_number'] - t['multi_agency_recognised_by_number']:+,}); "
            f"with full linkage {t['multi_agency_recognised']:,} → {s['multi_agency_recognised']:,} "
            f"({s['multi_agency_recognised'] - t['multi_agency_recognised']:+,}), precision {t['precision']:.3f} → "
            f"{s['precision']:.3f}, recall {t['recall']:.3f} → {s['recall']:.3f}.")


def scenario_report(result: dict, areas: pd.DataFrame | None = None, hatch=()) -> ScenarioReport:
    """Figures + table + assumptions for the page and for a board-pack slide (see docs/CONTRACTS.md).
    ``areas``: the by-area table as the role may see it (lib.views.scenario.protect_areas); default exact.
    ``hatch``: codes of the areas the map hatches as small (``lib.views.scenario.small_areas``)."""
    areas = area_table(result) if areas is None else areas
    value = "gain_by_number" if "gain_by_number" in areas.columns else "gain"
    lines = [*result["levers_text"], *result["assumptions"]]
    return ScenarioReport(title=result["title"],
                          figures={"curve": curve_figure(result), "map": gain_map(areas, result["layer"], value,
                                                                                   hatch=hatch)},
                          table=summary_table(result), area_table=areas,
                          assumptions="\n".join(f"- {line}" for line in lines), headline=headline(result))
