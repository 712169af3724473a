"""Run a scenario on the synthetic population: re-record identifiers, ingest, link, measure against truth.

Each run works in its own in-memory DuckDB store (the user's store is never touched), ingests through the
same validate → pseudonymise path as an upload with the caller's key, links with the real
``lib.linkage.run.link`` (or only its deterministic NHS-number pass, for the fast curve) and compares the
result with the generator's truth.

Definitions (the page, the CLI, the board pack and the tests rely on them):

- **multi-agency child (true)**: a child whose non-anonymous encounters come from two or more agency types.
- **recognised**: a true multi-agency child for whom one linked cluster holds that child's records from
  two or more agency types (so the agencies can see they share the child). ``recognised_by_number`` is the
  same with the deterministic pass's NHS-number groups only (what the number alone buys).
- **agencies' counts**: each agency type's count of distinct children in its own records, as linkage
  estimates it, against the true count; ``count_gap_pct`` = Σ|estimated − true| / Σ true × 100 (the
  agencies' counts converge on the truth, and so on each other, as it falls).
"""
from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lib.geo import layers
from lib.linkage.evaluate import pairwise_scores
from lib.records.store import cursor
from lib.scenario.capture import Levers, Recorder
from lib.synth.config import AGENCY_TYPES

Progress = Callable[[float, str], None]
#: Layers the gain table is by (the registry's scenario layers, live), in the order offered.
AREA_LAYERS = layers.SCENARIO_LAYERS
CURVE_RATES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
MODES = ("full", "deterministic")


def _noop(fraction: float, message: str) -> None:
    return None


def _sub(progress: Progress, lo: float, hi: float, prefix: str = "") -> Progress:
    return lambda f, m: progress(lo + (hi - lo) * min(max(f, 0.0), 1.0), prefix + m)


@dataclass
class Population:
    """One synthetic population (generator output) and what every run of it shares."""

    n_encounters: int
    seed: int
    recorder: Recorder
    child_area: pd.DataFrame  # index true_child_id: the home area's code in every LSOA lookup column (utla_code, …)
    multi_agency_true: np.ndarray  # true_child_ids known to two or more agency types (non-anonymous records)

    @property
    def baseline(self):
        return self.recorder.baseline


_POPULATIONS: dict[tuple[int, int], Population] = {}
_BASELINES: dict[tuple, Outcome] = {}
_CACHE_LOCK = threading.Lock()


def population(n_encounters: int, seed: int, progress: Progress = _noop) -> Population:
    """The synthetic population of that size and seed (generated once per process, last four kept)."""
    key = (int(n_encounters), int(seed))
    with _CACHE_LOCK:
        if key not in _POPULATIONS:
            if len(_POPULATIONS) >= 4:
                _POPULATIONS.pop(next(iter(_POPULATIONS)))
            _POPULATIONS[key] = _population(*key, progress)
        return _POPULATIONS[key]


def _population(n_encounters: int, seed: int, progress: Progress) -> Population:
    from lib.geo import lookup
    from lib.synth import SynthConfig, generate

    encounters, truth = generate(SynthConfig(n_encounters=int(n_encounters), seed=int(seed)),
                                 progress=lambda f, m: progress(0.9 * f, f"Generating: {m}"))
    recorder = Recorder(encounters, truth, seed=int(seed))
    first = truth.drop_duplicates("true_child_id").set_index("true_child_id")
    placed = lookup.place_postcodes(first["true_home_postcode"])
    child_area = placed[[c for c in placed.columns if c.endswith("_code")]].set_axis(first.index)
    named = truth[~truth["anonymous"].to_numpy(bool)]
    spans = named.groupby("true_child_id")["agency_type"].nunique()
    return Population(int(n_encounters), int(seed), recorder, child_area, spans.index[spans >= 2].to_numpy())


@dataclass
class Outcome:
    """One linked scenario measured against truth."""

    mode: str
    metrics: dict
    recognised: np.ndarray  # true_child_ids recognised (full linkage; = by number in deterministic mode)
    recognised_by_number: np.ndarray
    seconds: float
    stage_seconds: dict = field(default_factory=dict)


def run(pop: Population, levers: Levers | None, *, key: bytes, mode: str = "full",
        progress: Progress = _noop) -> Outcome:
    """Re-record ``pop`` under ``levers``, ingest into a fresh in-memory store, link, measure."""
    from lib.linkage.run import LinkConfig, deterministic_pass, link
    from lib.records import aggregates, ingest, store

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    started = time.perf_counter()
    stages = {}
    progress(0.0, "Re-recording identifiers")
    encounters, truth = pop.recorder.record(levers)
    stages["re-record"] = time.perf_counter() - started
    t0 = time.perf_counter()
    progress(0.1, "Validating and pseudonymising")
    batch = ingest.prepare_frame(encounters, "scenario (synthetic)", key=key)
    with aggregates.scratch():  # a throwaway store: it builds no stored aggregates (nothing reads them)
        con = store.connect(":memory:")
        try:
            ingest.commit(con, batch)
            stages["ingest"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            with cursor(con) as cur:
                records = cur.execute("""SELECT record_key, agency_type, source_record_id, is_anonymous
                                         FROM encounters""").df()
            summary = {}
            note = None
            if mode == "full":
                try:
                    summary = link(con, LinkConfig(), progress=_sub(progress, 0.25, 1.0, "Linking: "))
                    if summary.get("probabilistic_pass", "ran") != "ran":
                        note = (f"Splink could not be trained on this scenario ({summary['probabilistic_pass']}); "
                                "the NHS-number pass alone links these records.")
                except ValueError as exc:
                    # Splink cannot be trained when (almost) every record carries a valid number: its prior
                    # estimate finds no pairs among the few unnumbered records ("math domain error").
                    note = (f"Splink could not be trained on this scenario ({exc}); the NHS-number pass alone "
                            "is reported, as nearly every record carries a valid number.")
                    mode = "deterministic"
                else:
                    with cursor(con) as cur:
                        linked = cur.execute("SELECT record_key, child_id, node_id, nhs_conflict "
                                             "FROM record_child").df()
            if mode == "deterministic":
                progress(0.5, "Deterministic pass: valid NHS numbers")
                _, linked = deterministic_pass(con, nodes=False)  # the curve stops at the NHS-number pass
                linked = linked[["record_key", "node_id", "nhs_conflict"]].assign(child_id=linked["node_id"])
            stages["link"] = time.perf_counter() - t0
        finally:
            con.close()
    frame = records.merge(linked, on="record_key", how="left")
    frame = frame[~frame["is_anonymous"].astype(bool)]
    frame = frame.merge(truth[["agency_type", "source_record_id", "true_child_id"]],
                        on=["agency_type", "source_record_id"], how="inner", validate="one_to_one")
    metrics, recognised, by_number = measure(frame, pop)
    metrics["records"] = int(len(encounters))
    metrics["anonymous_records"] = int(truth["anonymous"].sum())
    metrics["linkage"] = mode
    if note:
        metrics["note"] = note
    if summary:
        metrics["review_queue"] = int(summary["review_queue"])
        metrics["nhs_conflicts_flagged"] = int(summary["nhs_conflicts_flagged"])
    else:
        metrics["nhs_conflicts_flagged"] = int(frame["nhs_conflict"].fillna(False).sum())
    seconds = time.perf_counter() - started
    progress(1.0, f"Scenario linked in {seconds:.1f} s")
    return Outcome(mode, metrics, recognised, by_number, seconds, {k: round(v, 2) for k, v in stages.items()})


def records_today(pop: Population, levers: Levers | None) -> bool:
    """Whether ``levers`` re-record exactly today's extract (every lever as today, e.g. none moved): linking it
    again is the same computation as today's (same records, same key, same seeded linkage), so a scenario
    reuses today's outcome (``same_as_today``) instead of linking the population a second time."""
    if levers is None:
        return True
    encounters, truth = pop.recorder.record(levers)
    today, today_truth = pop.recorder.record(None)
    return encounters.equals(today) and truth.equals(today_truth)


def same_as_today(today: Outcome) -> Outcome:
    """The scenario's outcome when it re-records today's extract (``records_today``): today's, copied (no time
    spent linking; the stages say it was reused)."""
    return Outcome(today.mode, copy.deepcopy(today.metrics), today.recognised.copy(),
                   today.recognised_by_number.copy(), 0.0, {"reused today's linkage (same records)": 0.0})


def _recognised(frame: pd.DataFrame, cluster: str) -> np.ndarray:
    """True children with records from two or more agency types in one cluster."""
    part = frame.dropna(subset=[cluster])
    spans = part.groupby([cluster, "true_child_id"])["agency_type"].nunique()
    return np.unique(spans.index.get_level_values("true_child_id")[spans.to_numpy() >= 2])


def measure(frame: pd.DataFrame, pop: Population) -> tuple[dict, np.ndarray, np.ndarray]:
    """Metrics of one linked frame (non-anonymous records: agency_type, child_id, node_id, true_child_id)."""
    scores = pairwise_scores(frame["child_id"], frame["true_child_id"])
    recognised = _recognised(frame, "child_id")
    numbered = frame.assign(nhs_group=frame["node_id"].where(frame["node_id"].str.startswith("N:")))
    by_number = _recognised(numbered, "nhs_group")
    clusters = frame.groupby("child_id")["agency_type"].nunique()
    counts = {}
    for agency in AGENCY_TYPES:
        part = frame[frame["agency_type"] == agency]
        counts[agency] = {"estimated": int(part["child_id"].nunique()), "true": int(part["true_child_id"].nunique())}
    total_true = sum(c["true"] for c in counts.values())
    gap = sum(abs(c["estimated"] - c["true"]) for c in counts.values())
    metrics = {
        "precision": scores["precision"], "recall": scores["recall"], "f1": scores["f1"],
        "children_estimated": int(frame["child_id"].nunique()),
        "children_true": int(frame["true_child_id"].nunique()),
        "multi_agency_children_true": int(len(pop.multi_agency_true)),
        "multi_agency_children_estimated": int((clusters >= 2).sum()),
        "multi_agency_recognised": int(len(recognised)),
        "multi_agency_recognised_by_number": int(len(by_number)),
        "agency_counts": counts,
        "count_gap_pct": round(100.0 * gap / total_true, 2) if total_true else 0.0,
    }
    return metrics, recognised, by_number


def baseline(pop: Population, *, key: bytes, mode: str = "full", progress: Progress = _noop) -> Outcome:
    """Today's recording, linked (cached per process: it does not depend on the levers)."""
    cache_key = (pop.n_encounters, pop.seed, bytes(key), mode)
    with _CACHE_LOCK:
        cached = _BASELINES.get(cache_key)
    if cached is None:
        cached = run(pop, None, key=key, mode=mode, progress=progress)
        with _CACHE_LOCK:
            if len(_BASELINES) >= 8:
                _BASELINES.pop(next(iter(_BASELINES)))
            _BASELINES[cache_key] = cached
    progress(1.0, "Today's recording linked")
    return cached


def by_area(pop: Population, today: Outcome, scenario: Outcome, layer: str = "utla",
            secret: bytes | None = None) -> pd.DataFrame:
    """One row per home area: true multi-agency children, recognised today and under the scenario, gain.
    ``secret``: with it, each count ``x`` comes with its cell key ``key_x`` (the sum of its children's record
    keys modulo 256, lib.disclosure) so the view can publish it by cell key perturbation."""
    from lib.geo import lookup

    if layer not in AREA_LAYERS:
        raise ValueError(f"layer must be one of {', '.join(AREA_LAYERS)}")
    area = pop.child_area[layers.REGISTRY[layer].column]
    true = pd.Series(1, index=pop.multi_agency_true).groupby(area.reindex(pop.multi_agency_true).to_numpy()).sum()

    def count(ids):
        ids = np.intersect1d(ids, pop.multi_agency_true)
        return pd.Series(1, index=ids).groupby(area.reindex(ids).to_numpy()).sum()

    table = pd.DataFrame({"multi_agency_true": true,
                          "recognised_today": count(today.recognised),
                          "recognised_scenario": count(scenario.recognised),
                          "by_number_today": count(today.recognised_by_number),
                          "by_number_scenario": count(scenario.recognised_by_number)}).fillna(0).astype(int)
    if secret is not None:
        from lib.disclosure.cellkey import KEYS
        from lib.disclosure.members import keys_of

        ids = pop.multi_agency_true
        rkey = pd.Series(keys_of([str(i) for i in ids], secret, "child"), index=ids, dtype="int64")

        def key(members):
            members = np.intersect1d(members, ids)
            return rkey.reindex(members).groupby(area.reindex(members).to_numpy()).sum()

        sets = {"multi_agency_true": ids, "recognised_today": today.recognised,
                "recognised_scenario": scenario.recognised, "by_number_today": today.recognised_by_number,
                "by_number_scenario": scenario.recognised_by_number}
        keys = pd.DataFrame({f"key_{c}": key(m) for c, m in sets.items()}).reindex(table.index).fillna(0)
        table = table.join(keys.astype("int64") % KEYS)
    table.index.name = "area_code"
    table = table.reset_index()
    table["gain"] = table["recognised_scenario"] - table["recognised_today"]
    table["gain_by_number"] = table["by_number_scenario"] - table["by_number_today"]
    names = lookup.name_of(layer)
    table.insert(1, "area_name", table["area_code"].map(names).fillna(table["area_code"]).astype(str))
    return table.sort_values(["gain_by_number", "multi_agency_true"], ascending=False).reset_index(drop=True)


def curve(pop: Population, levers: Levers | None, *, key: bytes, agencies=AGENCY_TYPES, rates=CURVE_RATES,
          mode: str = "deterministic", progress: Progress = _noop) -> pd.DataFrame:
    """Gain against capture rate: the levers with ``agencies``' capture set to each rate in turn."""
    base = levers or Levers()
    rows = []
    for i, rate in enumerate(rates):
        out = run(pop, base.with_capture(rate, agencies), key=key, mode=mode,
                  progress=_sub(progress, i / len(rates), (i + 1) / len(rates), f"Capture {rate:.0%}: "))
        m = out.metrics
        rows.append({"capture": float(rate), "mode": mode,
                     "multi_agency_recognised": m["multi_agency_recognised"],
                     "multi_agency_recognised_by_number": m["multi_agency_recognised_by_number"],
                     "multi_agency_children_true": m["multi_agency_children_true"],
                     "precision": m["precision"], "recall": m["recall"], "f1": m["f1"],
                     "count_gap_pct": m["count_gap_pct"], "seconds": round(out.seconds, 2),
                     # the children behind each count, for their cell keys (lib.scenario.scenario drops them)
                     "recognised_ids": out.recognised, "by_number_ids": out.recognised_by_number})
    return pd.DataFrame(rows)
