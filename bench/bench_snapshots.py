"""Versioned store (issue 21): switch-over cost, disk per version, and how soon the app shows a new linkage.

    python -m bench.bench_snapshots [--sizes 100000,1000000] [--work DIR] [--no-browser]

For each size: a synthetic store is built (synth → ingest → link, reused from --work if already there), then
- ``switch_over_seconds``: a writer that changes nothing — lock, copy of the current version, CHECKPOINT,
  fsync, publish (atomic link swap), collection — i.e. the fixed cost every write pays on top of its work;
  ``copy_seconds`` and ``publish_seconds`` split it;
- ``version_mb``: disk used by one version file; ``store_disk_mb``: all kept versions (KEEP of them) —
  a write needs one more version of free space while it runs;
- ``link_to_app_seconds`` (unless --no-browser): the app is served (a real ``streamlit run``), one Chromium
  session sits idle on the Boundaries page, ``python -m lib.cli link`` runs; the figure is from the moment the
  command exits to the moment that session's page shows the new version (it polls every
  ``pages.common.POLL_SECONDS`` seconds, then reruns the page on the new version).
Prints JSON lines {"figure", "value", "unit", ...}; figures for 5M are estimated from the measured scaling
(linear in the file size) and say so ("estimate": true). Quote `uptime` with any figure.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import emit

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key-not-secret-0123456789abcdef"


def build(work: Path, n: int) -> Path:
    """A linked synthetic store of n encounters at work/store_<n>/store.duckdb (kept for the next run)."""
    from lib.linkage.run import LinkConfig, link
    from lib.records import ingest, versions
    from lib.synth import SynthConfig, generate

    db = work / f"store_{n}" / "store.duckdb"
    if versions.current(db) is not None:
        return db
    started = time.perf_counter()
    encounters, _ = generate(SynthConfig(n_encounters=n, seed=7))
    batch = ingest.prepare_frame(encounters, f"bench_{n}.parquet", key=KEY.encode())
    del encounters
    with versions.write(db, "bench ingest") as w:
        ingest.commit(w.con, batch)
    del batch
    with versions.write(db, "bench link") as w:
        link(w.con, LinkConfig())
    emit("store_build_seconds", round(time.perf_counter() - started, 1), "s", encounters=n)
    return db


def switch_over(db: Path, n: int, repeats: int = 3) -> dict:
    from lib.records import versions

    size = versions.current(db).file.stat().st_size
    copies, totals = [], []
    for _ in range(repeats):
        source = versions.current(db).file
        with tempfile.TemporaryDirectory(dir=db.parent) as tmp:
            t = time.perf_counter()
            shutil.copyfile(source, Path(tmp) / "copy.duckdb")
            copies.append(time.perf_counter() - t)
        t = time.perf_counter()
        with versions.write(db, "bench switch-over") as w:
            w.change = "nothing (benchmark)"
        totals.append(time.perf_counter() - t)
    total, copy = min(totals), min(copies)
    emit("switch_over_seconds", round(total, 3), "s", encounters=n, runs=repeats, best_of=True)
    emit("copy_seconds", round(copy, 3), "s", encounters=n)
    emit("publish_seconds", round(max(total - copy, 0.0), 3), "s", encounters=n,
         note="lock, open, checkpoint, fsync, link swap, collection")
    emit("version_mb", round(size / 1e6, 1), "MB", encounters=n)
    emit("store_disk_mb", round(versions.disk_usage(db)["total_bytes"] / 1e6, 1), "MB", encounters=n,
         versions_kept=versions.KEEP)
    return {"size": size, "seconds": total, "copy": copy}


def link_to_app(db: Path, n: int) -> float | None:
    from lib.records import versions
    from tests.browser import browser_page, page_state, running_app, wait_idle

    env = {"JOINEDUP_DB": str(db), "JOINEDUP_SYNTHETIC_STORE": "1", "JOINEDUP_DEMO_ROLE": "lead",
           "JOINEDUP_KEY": KEY}
    with running_app(env=env, timeout=180) as base, browser_page() as page:
        page.goto(base)
        page.get_by_text("Data version").first.wait_for(timeout=600_000)
        wait_idle(page, 600_000)
        before = versions.current(db).number
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "lib.cli", "link", "--db", str(db)], cwd=ROOT,
                              env={**os.environ, **env}, capture_output=True, text=True)
        finished = time.perf_counter()
        if done.returncode != 0:
            emit("link_to_app_seconds", None, "s", encounters=n, error=done.stderr.strip().splitlines()[-1:])
            return None
        target = versions.current(db).number
        deadline = time.time() + 600
        while page_state(page)["versions"] != [target] and time.time() < deadline:
            page.wait_for_timeout(100)
        wait_idle(page, 600_000)
        shown = time.perf_counter()
    emit("link_seconds", round(finished - started, 1), "s", encounters=n, versions=[before, target])
    emit("link_to_app_seconds", round(shown - finished, 2), "s", encounters=n,
         note="from `link` exiting to an idle session's page showing the new version")
    return shown - finished


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000")
    parser.add_argument("--work", type=Path, default=None, help="keep the built stores here (default: a temp dir)")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-snapshots-"))
    work.mkdir(parents=True, exist_ok=True)
    measured = {}
    for n in [int(s) for s in args.sizes.split(",") if s.strip()]:
        db = build(work, n)
        measured[n] = switch_over(db, n)
        if not args.no_browser:
            link_to_app(db, n)
    if len(measured) >= 2:  # 5M from the measured scaling (linear in bytes): an estimate, said so
        small, large = sorted(measured)[0], sorted(measured)[-1]
        per_byte = (measured[large]["seconds"] - measured[small]["seconds"]) / max(
            measured[large]["size"] - measured[small]["size"], 1)
        size_5m = measured[large]["size"] * 5_000_000 / large
        emit("version_mb", round(size_5m / 1e6, 0), "MB", encounters=5_000_000, estimate=True,
             note=f"scaled linearly from {large:,}")
        emit("switch_over_seconds", round(measured[large]["seconds"] + per_byte * (size_5m - measured[large]["size"]),
                                          1), "s", encounters=5_000_000, estimate=True,
             note=f"linear in file size between {small:,} and {large:,}")
    emit("load_average", os.getloadavg()[0], "1-min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
