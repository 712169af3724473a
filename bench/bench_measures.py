"""Divergence measures benchmark: first computation of every count, then layer/period switches.

Run: python -m bench.bench_measures [--size 1000000] [--seed 7] [--no-link] [--db PATH]
Builds a synthetic store (ingested; linked unless --no-link — linking 1M records takes minutes; without
linkage only record counts are measured) or reuses --db, then prints JSON lines {"figure","value","unit"}:
the first computation (all layers, periods, both bases) and the time to recompute the page's measures
(divergence table, funnel, trend, decomposition) when the user changes layer or period afterwards.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import emit, peak_rss_mb


def divergence_page_measures(cube, layer: str, period: str, measure: str) -> None:
    """What the divergence page computes for one layer and period: the table, then the largest area's trend
    and decomposition, and the sentence (the figure timed on a layer or period switch)."""
    from lib.measures import divergence as dv
    from lib.measures import population

    table = dv.divergence_table(cube, layer, period, measure=measure,
                                population=population.default_population(layer))
    area = table.nlargest(1, "total")["area_code"].iat[0]
    dv.trend(cube, layer, area, measure=measure)
    dv.decomposition(cube, layer, area, period)
    dv.describe_table(table, "police", "children_social_care", measure, period)

def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-link", action="store_true")
    parser.add_argument("--db", type=Path, default=None, help="reuse an existing store instead of building one")
    args = parser.parse_args()

    import duckdb

    from lib.measures import counts

    if args.db is None:
        from tests.fixtures_linkage import synthetic_store

        path = Path(tempfile.mkdtemp(prefix="bench-measures-")) / "store.duckdb"
        started = time.perf_counter()
        con, _ = synthetic_store(path, args.size, args.seed, link=not args.no_link)
        emit("store build (generate, ingest" + ("" if args.no_link else ", link") + ")",
             round(time.perf_counter() - started, 1), "s", encounters=args.size)
    else:
        con = duckdb.connect(str(args.db), read_only=True)
    n = con.execute("SELECT count(*) FROM encounters").fetchall()[0][0]

    started = time.perf_counter()
    cube = counts.build_cube(con)
    emit("first computation of all measures (5 layers x all periods x direct and native basis)",
         round(time.perf_counter() - started, 3), "s", encounters=int(n), linked=cube.linked,
         cube_rows=int(len(cube.counts)))

    measure = "cse_children" if cube.linked else "cse_records"

    def page_measures(layer: str, period: str) -> None:
        divergence_page_measures(cube, layer, period, measure)

    page_measures("utla", "all")  # warm geography look-ups
    timings = []
    for layer in ("pfa", "nhs", "trust", "lad", "utla"):
        started = time.perf_counter()
        page_measures(layer, "all")
        timings.append(("layer", layer, time.perf_counter() - started))
    for period in cube.periods[1:6]:
        started = time.perf_counter()
        page_measures("utla", period)
        timings.append(("period", period, time.perf_counter() - started))
    for kind in ("layer", "period"):
        values = [t for k, _, t in timings if k == kind]
        emit(f"recompute page measures after a {kind} change (max of {len(values)})", round(max(values), 3), "s",
             mean=round(sum(values) / len(values), 3), target="<= 1 s")
    emit("peak memory", peak_rss_mb(), "MB")


if __name__ == "__main__":
    main()
