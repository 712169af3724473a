"""Precision, recall and F1 at every match threshold, one truth set, any size (the 200,000 and 1M tables of
docs/LINKAGE_PRIVACY.md).

Run: python -m bench.recall_sweep --size 200000 [--set built-in|independent] [--rate 0.75] [--nhs with|without]
     [--models cond,tf] [--seed 11] [--lsh-rows 1,1]
At 500,000 encounters or more on a shared machine: flock /tmp/joinedup-big.lock nice -n 10 python -m ...

One truth set of bench.bench_recall (lib.synth as it is, or without its typos and damaged by bench/corruption.py
at `--rate`), ingested once, each model of `--models` (bench.bench_recall.MODELS) trained, scored and clustered at
every threshold by bench.bench_recall.sweep (trained review floor, as `link`). Prints one JSON line per model and
a table: per threshold precision, recall, F1, review queue per 100,000; with the threshold where the model's own
expected F1 over its scored pairs is highest (bench.bench_recall.expected_f1_threshold). `--lsh-rows` sets
lib.linkage.lsh.ROWS (MinHashes per name in a band key, date-of-birth block and district block) for the run.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench import bench_recall, corruption
from lib.linkage import lsh
from lib.records import ingest, store
from lib.synth import AGENCY_TYPES, SynthConfig, generate


def truth_set(name: str, size: int, seed: int, rate: float):
    """(encounters, truth) of one of bench_recall's truth sets, generating only that one."""
    if name == "built-in":
        return generate(SynthConfig(n_encounters=size, seed=seed))
    clean, truth = generate(SynthConfig(n_encounters=size, seed=seed, typo_rate={a: 0.0 for a in AGENCY_TYPES}))
    damaged, _ = corruption.apply(clean, truth, rate=rate, seed=seed)
    return damaged, truth


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--set", default="built-in", choices=["built-in", "independent"])
    parser.add_argument("--rate", type=float, default=0.75, help="share of each name field damaged (independent)")
    parser.add_argument("--nhs", default="with", choices=["with", "without"])
    parser.add_argument("--lsh-rows", default=None, help="lib.linkage.lsh.ROWS for this run, e.g. 2,1")
    parser.add_argument("--models", default="cond,tf", help=f"of {', '.join(bench_recall.MODELS)}")
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    if not set(models) <= set(bench_recall.MODELS):
        parser.error(f"--models: choose from {', '.join(bench_recall.MODELS)}")
    if args.lsh_rows:
        lsh.ROWS = tuple(int(r) for r in args.lsh_rows.split(","))
    encounters, truth = truth_set(args.set, args.size, args.seed, args.rate)
    if args.nhs == "without":
        encounters = encounters.assign(nhs_number=None)
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        con = store.connect(Path(tmp) / "sweep.duckdb")
        try:
            ingest.commit(con, ingest.prepare_frame(encounters, "truth.parquet", key=bench_recall.KEY))
            for name in models:
                started = time.perf_counter()
                curve, seconds = bench_recall.sweep(con, truth, *bench_recall.MODELS[name])
                row = {"set": args.set, "nhs": args.nhs, "size": args.size, "model": name, "lsh_rows": lsh.ROWS,
                       "passes_seconds": round(seconds, 1), "seconds": round(time.perf_counter() - started, 1),
                       "expected_f1_threshold": curve[0]["expected_f1_threshold"],
                       "expected_f1": curve[0]["expected_f1"], "curve": curve}
                print(json.dumps(row), flush=True)
                lines += [f"{name:<7} {s['threshold']:>5} {s['precision']:>9.5f} {s['recall']:>8.5f} {s['f1']:>8.5f} "
                          f"{s['review_floor']:>5.2f} {s['review_per_100k']:>8.1f}" for s in curve]
                lines.append(f"{name}: model's expected-F1 threshold {row['expected_f1_threshold']} "
                             f"(expected F1 {row['expected_f1']}); passes {row['passes_seconds']} s, "
                             f"{curve[0]['passes_cpu_seconds']} s of CPU")
        finally:
            con.close()
    print(f"{'model':<7} {'t':>5} {'precision':>9} {'recall':>8} {'F1':>8} {'floor':>5} {'rev/100k':>8}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
