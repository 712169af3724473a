"""Disclosure benchmark (issue 16): the share of cells a commissioner sees (not ``c``) on Compare and in a board
pack, under whatever method the checked-out code applies (run it on main's commit for "before").

Run: python -m bench.bench_disclosure [--db PATH] [--size 20000] [--seed 11] [--role commissioner]
     [--layer utla] [--limit N] [--packs pfa,utla,lad]
Builds a linked synthetic store of --size encounters (or reads --db), then

- Compare: every area of --layer with its neighbours (mode "neighbours", the page's view twin), every cell of
  the side-by-side table ("all cells") and its count rows ("counts");
- Board packs: one pack per layer of --packs for the layer's busiest area; every cell of its comparison and
  divergence CSVs.

Prints JSON figure lines {"figure","value","unit",...} and a small table. Never asserted in tests.
"""
from __future__ import annotations

import io
import subprocess
import time

import pandas as pd

from bench.common import emit, linked_store, store_parser

HIDDEN = "c"


def _shares(frame: pd.DataFrame, skip_columns=(), rows=None) -> tuple[int, int]:
    """(cells shown as a value, all cells with a value or c) of a table's data cells."""
    frame = frame.drop(columns=[c for c in skip_columns if c in frame.columns])
    if rows is not None:
        frame = frame[rows]
    values = frame.astype("object").to_numpy().ravel()
    present = [v for v in values if not (v is None or (isinstance(v, float) and v != v) or str(v).strip() in
                                         ("", "—"))]
    return sum(str(v).strip() != HIDDEN for v in present), len(present)


def compare_cells(source, role: str, layer: str, limit: int | None) -> dict[str, tuple[int, int]]:
    import inspect

    from lib import views
    from lib.views import compare as page

    by_role = "role" in inspect.signature(page.choices).parameters  # main before the service: no role
    names, _ = (page.choices(source, layer, "all", "cse_records", role) if by_role
                else page.choices(source, layer, "all", "cse_records"))
    codes = sorted(names)[:limit] if limit else sorted(names)
    shown = {"all cells": [0, 0], "counts": [0, 0]}
    for code in codes:
        data = views.build_with("compare", source, {"layer": layer, "mode": "neighbours", "areas": [code]}, role)
        table = data.tables["cmp_table"].frame
        counts = table["Indicator"].str.endswith(": CSE-flagged records")
        for name, rows in (("all cells", None), ("counts", counts)):
            s, n = _shares(table, ["Indicator"], rows)
            shown[name][0] += s
            shown[name][1] += n
    return {k: (v[0], v[1]) for k, v in shown.items()}


def pack_cells(con, role: str, layers: list[str], cube) -> dict[str, tuple[int, int]]:
    from lib.export import boardpack

    out = {}
    for layer in layers:
        area = con.execute(f"SELECT enc_{layer} FROM encounters WHERE enc_{layer} IS NOT NULL "
                           "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1").fetchall()[0][0]
        pack = boardpack.build_board_pack(con, layer=layer, area=area, role=role, cube=cube, audit=False)
        total = [0, 0]
        for name, skip in (("comparison.csv", ["indicator"]), (f"divergence_{layer}.csv",
                                                                ["area_code", "area_name", "layer", "period",
                                                                 "measure", "rate_basis"])):
            frame = pd.read_csv(io.BytesIO(pack.csvs[name]), dtype=str, keep_default_na=False)
            s, n = _shares(frame, skip)
            total[0] += s
            total[1] += n
        out[f"board pack {layer} {area}"] = (total[0], total[1])
    return out


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = store_parser(seed=11)
    parser.add_argument("--role", default="commissioner")
    parser.add_argument("--limit", type=int, default=None, help="only the first N areas on Compare")
    parser.add_argument("--packs", default="pfa,utla,lad")
    args = parser.parse_args()

    from lib.records import store
    from lib.views.base import Memo, Source

    args.db = linked_store(args.db, args.size, args.seed, "disclosure")  # (seed= here clashed with its own seed)
    con = store.connect(args.db, read_only=True)
    commit = _commit()
    try:
        source = Source(con, args.db, memo=Memo(max_entries=10_000))
        started = time.perf_counter()
        rows = {f"Compare {args.layer} + neighbours ({k})": v
                for k, v in compare_cells(source, args.role, args.layer, args.limit).items()}
        emit("compare cells counted", round(time.perf_counter() - started, 1), "s")
        started = time.perf_counter()
        rows.update(pack_cells(con, args.role, [p for p in args.packs.split(",") if p], source.cube()))
        emit("board packs counted", round(time.perf_counter() - started, 1), "s")
    finally:
        con.close()
    print(f"\nShare of cells the {args.role} sees (not c), commit {commit}, store {args.db} (seed {args.seed} "
          "when built here)")
    print(f"{'output':<48} {'shown':>7} {'cells':>7} {'share':>7}")
    for name, (shown, cells) in rows.items():
        share = shown / cells * 100 if cells else float("nan")
        emit(f"share shown: {name}", round(share, 1), "%", shown=shown, cells=cells, commit=commit, role=args.role)
        print(f"{name:<48} {shown:>7} {cells:>7} {share:>6.1f}%")


if __name__ == "__main__":
    main()
