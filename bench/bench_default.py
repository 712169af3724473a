"""Benchmark of the first start: build + link the default synthetic dataset, as the app does at first start.

Prints one JSON object per line, {"figure", "value", "unit"}, like the other bench scripts:

- ``first_start_s`` (and its parts ``build_s``, ``link_s``): generate, validate, geocode, pseudonymise and store
  the default dataset (``lib.records.default.ensure_default_dataset``), then link it (``lib.linkage.run.link``),
  in one store version, exactly the calls ``pages.common.ensure_default_data`` makes;
- ``share_utla_csc_cse_ge_10``: the share of children's services authorities (the 175 current UTLAs) whose
  children's social care CSE-flagged record count over all periods is 10 or more (what a commissioner sees
  unsuppressed); also the same share per financial year, and for police force areas (police records);
- ``spearman_csc_vs_c3``: rank correlation, over English authorities with a published figure, of the stored
  CSC CSE-flagged counts against the published DfE C3 counts for the same years.

    python bench/bench_default.py [--encounters N] [--seed S]

Target (issue 17): first start <= 60 s on the 2-core machine; share >= 0.9. Say the load (``uptime``); the CPU
seconds (``*_cpu_s``) are printed too, as they depend less on other jobs than the wall time does.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import emit, peak_rss_mb  # noqa: E402 - after the path set-up above (run as a script)


def main(argv=None) -> int:
    from lib.records import default

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encounters", type=int, default=default.DEFAULT_ENCOUNTERS)
    parser.add_argument("--seed", type=int, default=default.DEFAULT_SEED)
    args = parser.parse_args(argv)
    emit("load_average_1m", round(os.getloadavg()[0], 2), "")

    from lib.linkage import run
    from lib.records import store, versions

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "joinedup.duckdb"
        t0, c0 = time.perf_counter(), time.process_time()
        with versions.write(path, "bench first start") as w:
            summary = default.ensure_default_dataset(w.con, key=b"bench-key-not-secret-0123456789abcd",
                                                     db_path=path, n_encounters=args.encounters, seed=args.seed)
            t1, c1 = time.perf_counter(), time.process_time()
            linked = run.link(w.con, run.LinkConfig())
            w.change = "bench"
        t2, c2 = time.perf_counter(), time.process_time()
        emit("encounters", summary["encounters"], "records")
        emit("children_linked", linked["children"], "children")
        emit("build_s", round(t1 - t0, 2), "s")
        emit("link_s", round(t2 - t1, 2), "s")
        emit("first_start_s", round(t2 - t0, 2), "s")
        # CPU time of this process (all its threads): less sensitive to other jobs than the wall time; on a
        # quiet 2-core machine the wall time lies between cpu/2 and cpu.
        emit("build_cpu_s", round(c1 - c0, 2), "s")
        emit("link_cpu_s", round(c2 - c1, 2), "s")
        emit("first_start_cpu_s", round(c2 - c0, 2), "s")
        emit("peak_rss", peak_rss_mb(), "MB")
        con = store.connect(path, read_only=True)
        try:
            frame = con.execute("SELECT agency_type, agency_code, encounter_date, cse_flag FROM encounters").df()
        finally:
            con.close()
    from lib.measures import published

    for figure, value in published.coverage_figures(frame).items():
        emit(figure, value, "share" if figure.startswith("share") else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
