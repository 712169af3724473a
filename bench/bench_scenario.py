"""Scenario explorer benchmark: time for one scenario on the default dataset (target ≤ 20 s), and the curve.

Run: python -m bench.bench_scenario [--size 20000] [--capture police=1.0,children_social_care=1.0]
Progress goes to stderr (as the page shows it); figures are JSON lines on stdout (bench.common.emit).
"""
from __future__ import annotations

import argparse
import sys
import time

from bench.common import emit, peak_rss_mb

KEY = b"benchmark-key-not-secret-0123456789abcdef"


def main(argv=None) -> int:
    from lib.records.default import DEFAULT_ENCOUNTERS, DEFAULT_SEED
    from lib.scenario import simulate
    from lib.scenario.capture import Levers, parse_capture
    from lib.scenario.scenario import simulate_scenario

    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=DEFAULT_ENCOUNTERS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--capture", default="police=1.0,children_social_care=1.0")
    parser.add_argument("--no-full-curve", action="store_true", help="skip the fully linked curve")
    args = parser.parse_args(argv)
    levers = Levers(capture=parse_capture(args.capture))

    def progress(fraction: float, message: str) -> None:
        print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)

    # One scenario as a user meets it on a fresh server: population, today's linkage, the scenario's, no curve.
    started = time.perf_counter()
    result = simulate_scenario(levers, key=KEY, n_encounters=args.size, seed=args.seed, curve_rates=(),
                               progress=progress)
    cold = time.perf_counter() - started
    emit("scenario: one scenario, cold (generate + link today + link scenario)", round(cold, 2), "s",
         size=args.size, target_s=20)
    t = result["timings"]
    emit("scenario: link today's recording", t["today_seconds"], "s", size=args.size)
    emit("scenario: one scenario, warm (re-record + ingest + link)", t["scenario_seconds"], "s", size=args.size,
         stages=t["scenario_stages"], target_s=20)
    s, d = result["scenario"], result["today"]
    emit("scenario: multi-agency children recognised by NHS number alone", s["multi_agency_recognised_by_number"],
         "children", today=d["multi_agency_recognised_by_number"], true=d["multi_agency_children_true"],
         capture=args.capture)
    emit("scenario: multi-agency children recognised with full linkage", s["multi_agency_recognised"], "children",
         today=d["multi_agency_recognised"], true=d["multi_agency_children_true"])
    emit("scenario: linkage precision / recall", [s["precision"], s["recall"]], "ratio",
         today=[d["precision"], d["recall"]])
    emit("scenario: agencies' count gap from truth", s["count_gap_pct"], "%", today=d["count_gap_pct"])

    pop = simulate.population(args.size, args.seed)
    for mode in ("deterministic",) + (() if args.no_full_curve else ("full",)):
        started = time.perf_counter()
        curve = simulate.curve(pop, levers, key=KEY, rates=simulate.CURVE_RATES, mode=mode, progress=progress)
        seconds = time.perf_counter() - started
        emit(f"scenario: curve over {len(curve)} capture rates ({mode})", round(seconds, 2), "s", size=args.size,
             per_point_s=round(seconds / len(curve), 2),
             recognised_by_number=curve["multi_agency_recognised_by_number"].tolist(),
             recognised=curve["multi_agency_recognised"].tolist(),
             count_gap_pct=curve["count_gap_pct"].tolist())
    emit("scenario: peak memory", peak_rss_mb(), "MB", size=args.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
