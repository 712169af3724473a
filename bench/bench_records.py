"""Benchmark of ingest: read + validate + geocode + pseudonymise rate, store write, store size, peak memory.

Prints one JSON object per line, {"figure", "value", "unit"}, like `python -m bench.run_all`.
A synthetic extract of --size encounters (lib.synth, real postcodes, realistic identifier damage) is
written as Parquet and CSV first (not timed). Each measured run happens in a fresh child process, so
its peak memory is its own; geodata loading is timed apart (paid once per process by the app and CLI).

    python bench/bench_records.py [--size 1000000] [--seed 0] [--formats parquet,csv] [--keep DIR]

Target (issue 3): ingest + validate + geocode at >= 100,000 records/s for 1,000,000 encounters.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import emit  # noqa: E402


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM: unlike ru_maxrss, not inherited from the parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

KEY = b"benchmark-key-not-secret-0123456789"


def child(extract: Path, db: Path) -> None:
    """Measured run (in its own process): prints JSON lines for the parent to relay."""
    from lib.records import geography, ingest, store

    t0 = time.perf_counter()
    geography._directory()
    geography._layer_codes()
    geography.agency_codes()
    geography.code_layers()
    geo_seconds = time.perf_counter() - t0
    rss_before = peak_rss_mb()

    t0 = time.perf_counter()
    batch = ingest.prepare(extract, key=KEY)
    prepare_seconds = time.perf_counter() - t0
    prepare_peak = peak_rss_mb()
    timings = dict(getattr(batch, "stage_seconds", {}) or {})

    con = store.connect(db)
    t0 = time.perf_counter()
    first = ingest.commit(con, batch)
    commit_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = ingest.commit(con, batch)
    recommit_seconds = time.perf_counter() - t0
    con.close()
    print(json.dumps({
        "rows": batch.rows_read, "valid": batch.rows_valid, "rejected": batch.rows_rejected,
        "geo_seconds": geo_seconds, "prepare_seconds": prepare_seconds, "commit_seconds": commit_seconds,
        "recommit_seconds": recommit_seconds, "stored": first["rows_stored"],
        "restored": again["rows_stored"], "size_mb": store.database_size_mb(db),
        "peak_after_geodata": rss_before, "peak_after_prepare": prepare_peak, "peak": peak_rss_mb(),
        "stages": timings,
    }), flush=True)


def default_dataset_child(db: Path) -> None:
    from lib.records.default import ensure_default_dataset

    t0 = time.perf_counter()
    summary = ensure_default_dataset(db, None, key=KEY)
    print(json.dumps({"seconds": time.perf_counter() - t0, "encounters": summary["encounters"],
                      "peak": peak_rss_mb()}), flush=True)


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="encounters (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--formats", default="parquet,csv", help="extract formats to time (parquet,csv)")
    parser.add_argument("--keep", default=None, help="keep the extracts and stores in this folder")
    parser.add_argument("--skip-default", action="store_true", help="do not time the default dataset build")
    parser.add_argument("--child", nargs=2, metavar=("EXTRACT", "DB"), help=argparse.SUPPRESS)
    parser.add_argument("--default-child", metavar="DB", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]))
        return 0
    if args.default_child:
        default_dataset_child(Path(args.default_child))
        return 0

    from lib.synth import SynthConfig, generate

    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_records_"))
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    encounters, _ = generate(SynthConfig(n_encounters=args.size, seed=args.seed))
    emit("records bench: synthetic extract generated", round(time.perf_counter() - t0, 2), "s", size=args.size)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    files = {}
    for fmt in formats:
        path = folder / f"extract.{fmt}"
        if fmt == "parquet":
            encounters.to_parquet(path, index=False)
        elif fmt == "csv":
            encounters.to_csv(path, index=False)
        else:
            raise SystemExit(f"unknown format {fmt}")
        files[fmt] = path
        emit(f"records bench: {fmt} extract size", round(path.stat().st_size / 2**20, 1), "MB")
    del encounters

    for fmt, path in files.items():
        db = folder / f"store_{fmt}.duckdb"
        for stale in (db, Path(str(db) + ".wal")):
            stale.unlink(missing_ok=True)
        r = run_child("--child", str(path), str(db))
        n = r["rows"]
        emit(f"ingest+validate+geocode rate ({fmt})", round(n / r["prepare_seconds"]), "records/s", size=n,
             seconds=round(r["prepare_seconds"], 2), target=">= 100000 records/s",
             note="read, validate, place in every geography and pseudonymise; geodata already loaded")
        emit(f"store write rate ({fmt})", round(r["stored"] / r["commit_seconds"]), "records/s",
             seconds=round(r["commit_seconds"], 2),
             note="one transaction; stored keys found by one join, new rows streamed into one INSERT")
        emit(f"ingest end-to-end rate ({fmt})", round(n / (r["prepare_seconds"] + r["commit_seconds"])),
             "records/s", seconds=round(r["prepare_seconds"] + r["commit_seconds"], 2))
        emit(f"idempotent re-upload ({fmt})", round(r["recommit_seconds"], 2), "s", rows_added=r["restored"])
        emit(f"store size ({fmt})", round(r["size_mb"], 1), "MB", encounters=r["stored"])
        emit(f"peak memory ({fmt})", round(r["peak"], 1), "MB", after_geodata=round(r["peak_after_geodata"], 1),
             after_prepare=round(r["peak_after_prepare"], 1))
        emit(f"geodata load ({fmt} run)", round(r["geo_seconds"], 2), "s")
        if r["stages"]:
            emit(f"validate stages ({fmt})", {k: round(v, 3) for k, v in r["stages"].items()}, "s")

    if not args.skip_default:
        db = folder / "default" / "joinedup.duckdb"
        db.parent.mkdir(exist_ok=True)
        for stale in (db, Path(str(db) + ".wal"), db.with_suffix(".key")):
            stale.unlink(missing_ok=True)
        r = run_child("--default-child", str(db))
        emit("default dataset first start (generate + ingest)", round(r["seconds"], 2), "s",
             encounters=r["encounters"], peak_mb=round(r["peak"], 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
