"""Helpers for benchmark scripts: JSON figure lines, peak memory and the synthetic stores they time (never
asserted in tests)."""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

#: The pseudonymisation key of the published benchmark stores (synthetic data only; the app is started with it).
KEY = "bench-key-not-secret-0123456789abcdef"


def emit(figure: str, value, unit: str, **extra) -> None:
    """Print one figure as a JSON line: {"figure": ..., "value": ..., "unit": ...}."""
    print(json.dumps({"figure": figure, "value": value, "unit": unit, **extra}), flush=True)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB: VmHWM on Linux (ru_maxrss carries the parent's peak
    over fork and exec, so a benchmark started from a big process would report the parent's memory)."""
    try:
        with open("/proc/self/status") as status:
            return round(next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024, 1)
    except (OSError, StopIteration):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(peak / 1024 if sys.platform != "darwin" else peak / 1024 / 1024, 1)


def store_parser(seed: int, *, area: bool = False) -> argparse.ArgumentParser:
    """A parser with the options of a script timed on a linked store (see ``linked_store``): --db, --size,
    --seed, --layer and, with ``area``, --area (default: ``busiest_area``)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", type=Path, default=None, help="reuse an existing store (opened read-only)")
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument("--layer", default="utla")
    if area:
        parser.add_argument("--area", default=None, help="default: the area with the most records")
    return parser


def linked_store(db: Path | None, size: int, seed: int, prefix: str, **extra) -> Path:
    """``db`` if given (a store to reuse); else a new linked synthetic store of ``size`` encounters in a temporary
    folder (tests.fixtures_linkage.synthetic_store, closed), its build time printed as a figure."""
    if db is not None:
        return db
    from tests.fixtures_linkage import synthetic_store

    path = Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-")) / "store.duckdb"
    started = time.perf_counter()
    con, _ = synthetic_store(path, size, seed)
    con.close()
    emit("store build (generate, ingest, link)", round(time.perf_counter() - started, 1), "s", encounters=size,
         **extra)
    return path


def published_store(work: Path, size: int, seed: int = 21) -> Path:
    """``work``/store.duckdb: a linked synthetic store of ``size`` encounters published as one version
    (lib.records.versions, as the app reads it), pseudonymised with ``KEY``; built only if not there yet."""
    from lib.linkage.run import LinkConfig, link
    from lib.records import ingest, versions
    from lib.synth import SynthConfig, generate

    db = work / "store.duckdb"
    if versions.current(db) is None:
        encounters, _ = generate(SynthConfig(n_encounters=size, seed=seed))
        with versions.write(db, "bench ingest") as w:
            ingest.commit(w.con, ingest.prepare_frame(encounters, "bench.parquet", key=KEY.encode()))
            link(w.con, LinkConfig())
    return db


def busiest_area(con, layer: str) -> str:
    """The area of ``layer`` where most encounters took place (ties: the smallest code)."""
    from lib.geo import layers

    column = f"enc_{layers.get(layer).stored_key}"  # a registry column, not user text
    return con.execute(f"SELECT {column} FROM encounters WHERE {column} IS NOT NULL "
                       "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1").fetchall()[0][0]
