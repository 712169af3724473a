"""First open of every page after a linkage run, and decision-to-page time (issue 19).

    python -m bench.bench_first_open [--size 100000] [--work DIR]

Builds (once per --work folder and size) a versioned synthetic store of --size encounters, ingested and linked
through ``lib.records.versions.write`` (so the stored aggregates are built by the linkage run's transaction).
Then, each from a fresh read-only connection and a fresh ``Source`` (what a new server process sees; the
geography lookups are loaded once beforehand, as the app does at start):

- every page's view builder (``lib.views.build``) for a role that may open it;
- the measure cube read from the stored aggregates against a from-scratch ``counts.build_cube`` (what every
  first open paid before);
- a reviewer decision written as the store's next version (the decision, its incremental aggregate refresh,
  publishing) and the Divergence page opened right after it: the decision-to-page time.

Prints one JSON line per figure (bench/common.py) and a markdown table; quote ``uptime`` with the figures.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench.common import emit, peak_rss_mb

KEY = b"bench-key-not-secret-0123456789abcdef"
#: the role each page is opened as (one that may open it: lib.access.roles.PAGE_ROLES)
ROLES = {"boundaries": "lead", "across": "lead", "divergence": "commissioner", "compare": "commissioner",
         "scenario": "commissioner", "review": "lead", "data": "analyst", "audit": "lead", "about": "commissioner"}


def opens() -> list[tuple[str, str]]:
    """Every page with every role that may open it (lib.access.roles.PAGE_ROLES): what a page reads differs by role
    (a lead's Compare and Across read child-level tables a commissioner's do not)."""
    from lib.access.roles import PAGE_ROLES

    return [(page, role) for page in PAGE_ROLES for role in sorted(PAGE_ROLES[page])]


def build_store(work: Path, size: int) -> tuple[Path, dict]:
    """A linked versioned store of ``size`` synthetic encounters (reused when already built)."""
    import lib.measures.aggregates  # noqa: F401  (registers the cube builder, as the app and the CLI do)
    import lib.scenario.stored  # noqa: F401  (and the Scenario's default simulation, as the app and CLI do)
    from lib.linkage.run import LinkConfig, link
    from lib.records import ingest, versions
    from lib.synth import SynthConfig, generate

    db = work / f"store-{size}.duckdb"
    figures = {}
    if versions.current(db) is None:
        started = time.perf_counter()
        encounters, _ = generate(SynthConfig(n_encounters=size, seed=21))
        batch = ingest.prepare_frame(encounters, "bench.parquet", key=KEY)
        figures["generate + prepare"] = time.perf_counter() - started
        with versions.write(db, "bench ingest") as w:
            started = time.perf_counter()
            ingest.commit(w.con, batch)
            figures["ingest (one transaction, with aggregates)"] = time.perf_counter() - started
        with versions.write(db, "bench link") as w:
            started = time.perf_counter()
            link(w.con, LinkConfig())
            figures["link (one transaction, with full aggregate rebuild)"] = time.perf_counter() - started
    return db, figures


def open_page(db: Path, page: str, role: str | None = None) -> tuple[float, str]:
    from lib import views

    started = time.perf_counter()
    try:
        views.build(page, db, {}, role or ROLES[page])
        error = ""
    except Exception as exc:  # reported in the table, never hidden
        error = f"{type(exc).__name__}: {exc}"[:120]
    return time.perf_counter() - started, error


def cube_times(db: Path) -> dict:
    from lib.measures import aggregates, counts
    from lib.records import store

    con = store.connect(db, read_only=True)
    try:
        started = time.perf_counter()
        _, from_store = aggregates.load(con)
        stored_s = time.perf_counter() - started
        started = time.perf_counter()
        counts.build_cube(con)
        scratch_s = time.perf_counter() - started
    finally:
        con.close()
    return {"stored": stored_s, "scratch": scratch_s, "from_store": from_store}


def decision_to_page(db: Path) -> dict:
    from lib.linkage import run
    from lib.records import store, versions

    con = store.connect(db, read_only=True)
    try:
        pair = con.execute("SELECT record_key_l, record_key_r FROM link_edges WHERE status = 'review' "
                           "ORDER BY abs(match_weight), node_l LIMIT 1").fetchall() or \
            con.execute("SELECT record_key_l, record_key_r FROM link_edges LIMIT 1").fetchall()
    finally:
        con.close()
    started = time.perf_counter()
    with versions.write(db, "bench review decision") as w:
        run.record_decision(w.con, pair[0][0], pair[0][1], "reject", "bench")
        w.change = "a review decision"
    written = time.perf_counter() - started
    page_s, error = open_page(db, "divergence")
    return {"write": written, "page": page_s, "total": written + page_s, "error": error}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_first_open_"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("JOINEDUP_ACCOUNTS", str(work / "no-accounts.json"))
    db, built = build_store(work, args.size)
    rows = []
    for name, seconds in built.items():
        emit(name, round(seconds, 3), "s", size=args.size)
        rows.append((name, seconds, ""))
    from lib.geo import lookup

    lookup.lsoa_table()  # the app loads the geography once at start; not part of a page's first open
    for page, role in opens():
        seconds, error = open_page(db, page, role)
        emit(f"first open {page} (fresh connection and Source)", round(seconds, 3), "s", size=args.size,
             role=role, error=error or None)
        rows.append((f"first open: {page} ({role})", seconds, error))
    cube = cube_times(db)
    emit("measure cube from the stored aggregates", round(cube["stored"], 3), "s", size=args.size,
         current=cube["from_store"])
    emit("measure cube counted from scratch (build_cube)", round(cube["scratch"], 3), "s", size=args.size)
    rows += [("cube: stored aggregates" + ("" if cube["from_store"] else " (NOT current: recounted)"),
              cube["stored"], ""), ("cube: from scratch (build_cube)", cube["scratch"], "")]
    decided = decision_to_page(db)
    emit("decision written (incremental refresh, published)", round(decided["write"], 3), "s", size=args.size)
    emit("decision to Divergence page", round(decided["total"], 3), "s", size=args.size,
         page=round(decided["page"], 3), error=decided["error"] or None)
    rows += [("decision written (with refresh, published)", decided["write"], ""),
             ("decision to Divergence page open", decided["total"], decided["error"])]
    emit("peak memory", peak_rss_mb(), "MB")
    load = os.getloadavg()
    print(f"\n| step ({args.size:,} encounters; load {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}) | seconds | note |")
    print("|---|---:|---|")
    for name, seconds, note in rows:
        print(f"| {name} | {seconds:.2f} | {note} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
