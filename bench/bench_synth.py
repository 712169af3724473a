"""Benchmark of the synthetic encounter generator: records per second and peak memory.

Prints one JSON object per line, {"figure", "value", "unit"}, like `python -m bench.run_all`.
The geography (postcode index, neighbours) is loaded first and timed apart, because the app and
the CLI pay for it once per process while generation is paid per run.

    python bench/bench_synth.py --size 1000000 [--seed 0] [--write DIR]
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rss_peak_mb() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(figure: str, value, unit: str) -> None:
    print(json.dumps({"figure": figure, "value": value, "unit": unit}), flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="encounters to generate (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", default=None, help="also time writing the parquet files to this folder")
    args = parser.parse_args(argv)

    from lib.synth import SynthConfig, generate
    from lib.synth.geography import load_geography
    from lib.synth.names import names

    t0 = time.perf_counter()
    load_geography()
    names()  # name vocabularies and typo variants: built once per process, like the geography
    emit("synth geography and names load", round(time.perf_counter() - t0, 2), "s")
    before = rss_peak_mb()
    emit("synth peak memory before generation", round(before, 1), "MB")

    t0 = time.perf_counter()
    encounters, truth = generate(SynthConfig(n_encounters=args.size, seed=args.seed))
    seconds = time.perf_counter() - t0
    emit(f"synth generate {args.size:,} encounters", round(seconds, 2), "s")
    emit("synth generation rate", round(args.size / seconds), "records/s")
    emit("synth children", int(truth["true_child_id"].nunique()), "children")
    peak = rss_peak_mb()
    emit("synth peak memory", round(peak, 1), "MB")
    emit("synth peak memory added by generation", round(peak - before, 1), "MB")
    emit("synth frame memory (encounters + truth)",
         round((encounters.memory_usage(deep=True).sum() + truth.memory_usage(deep=True).sum()) / 2**20, 1), "MB")

    if args.write is not None:
        out = Path(args.write or tempfile.mkdtemp())
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        encounters.to_parquet(out / "encounters.parquet", index=False)
        truth.to_parquet(out / "truth.parquet", index=False)
        emit("synth write parquet", round(time.perf_counter() - t0, 2), "s")
        emit("synth parquet size", round(sum(p.stat().st_size for p in out.glob("*.parquet")) / 2**20, 1), "MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
