"""Board pack benchmark: time to build the deck (target <= 10 s), cold and with the browser kept.

Run: python -m bench.bench_boardpack [--db PATH] [--size 20000] [--seed 7] [--layer utla] [--area CODE]
     [--role commissioner] [--repeat 2]
Builds a linked synthetic store of --size encounters (or reads --db), then builds the board pack as the page
does: the first build pays for starting headless Chromium (kaleido) and counting; later builds in the same
process reuse the browser, as the app does. Prints JSON lines {"figure","value","unit",...} with the
per-stage split (counts, tables, images, deck). Never asserted in tests.
"""
from __future__ import annotations

from bench.common import busiest_area, emit, linked_store, peak_rss_mb, store_parser


def main() -> None:
    parser = store_parser(seed=7, area=True)
    parser.add_argument("--role", default="commissioner")
    parser.add_argument("--repeat", type=int, default=2, help="builds after the first (browser kept)")
    args = parser.parse_args()

    import duckdb

    from lib.export import boardpack, images
    from lib.measures import convert

    args.db = linked_store(args.db, args.size, args.seed, "boardpack")
    con = duckdb.connect(str(args.db), read_only=True)
    layer = convert.layer_key(args.layer)
    area = args.area or busiest_area(con, layer)
    n = con.execute("SELECT count(*) FROM encounters").fetchall()[0][0]

    pack = boardpack.build_board_pack(con, layer=layer, area=area, role=args.role, audit=False)
    emit("board pack, first build (starts Chromium; counts, tables, 3 images, deck)", pack.seconds, "s",
         encounters=int(n), layer=layer, area=area, role=args.role, deck_mb=round(len(pack.deck) / 1e6, 2),
         **pack.timings)
    warm = []
    for _ in range(args.repeat):
        pack = boardpack.build_board_pack(con, layer=layer, area=area, role=args.role, audit=False)
        warm.append(pack.seconds)
        emit("board pack, browser kept (as in the app)", pack.seconds, "s", encounters=int(n), **pack.timings)
    if warm:
        emit("board pack, browser kept, best of runs", min(warm), "s", runs=len(warm), target_s=10)
    images.close()
    con.close()
    emit("board pack peak memory", peak_rss_mb(), "MB")


if __name__ == "__main__":
    main()
