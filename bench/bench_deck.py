"""Board pack decks, every kind: build each (divergence deck for the lead and a commissioner, the boundary-crossing
deck from Across, and the divergence deck with a scenario slide), render it with LibreOffice and check that no text
overflows its box or the slide (lib.export.deck_check). Prints JSON lines {"figure","value","unit",...}: slide
counts, overflow findings and seconds (build; render and check). Never asserted in tests; say the load average
(``uptime``) with any time you quote.

Run: python -m bench.bench_deck [--db PATH] [--size 20000] [--seed 7] [--layer utla] [--area CODE]
     [--png-dir DIR] [--no-scenario]
Without --db a linked synthetic store of --size encounters is built first. --png-dir also writes every slide
as PNG (DIR/<deck>/slide-N.png) to look at.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from bench.common import busiest_area, emit, linked_store, store_parser


def _scenario(con, path: Path, role: str):
    from lib import views
    from lib.views.base import Source

    return views.build_with("scenario", Source(con, path), {"levers": '{"capture": {"police": 1.0}}'}, role)


def main() -> None:
    parser = store_parser(seed=7, area=True)
    parser.add_argument("--png-dir", type=Path, default=None)
    parser.add_argument("--no-scenario", action="store_true", help="skip the deck with a scenario slide")
    args = parser.parse_args()

    from lib.export import boardpack, deck_check, images
    from lib.measures import convert, counts
    from lib.records import store

    args.db = linked_store(args.db, args.size, args.seed, "deck")
    con = store.connect(args.db, read_only=True)
    layer = convert.layer_key(args.layer)
    area = args.area or busiest_area(con, layer)
    cube = counts.build_cube(con)
    decks = [("divergence_lead", "divergence", "lead", False), ("divergence_commissioner", "divergence",
                                                                "commissioner", False),
             ("across_commissioner", "across", "commissioner", False)]
    if not args.no_scenario:
        decks.append(("divergence_lead_scenario", "divergence", "lead", True))
    total_findings = 0
    for name, kind, role, with_scenario in decks:
        scenario = None
        if with_scenario:
            started = time.perf_counter()
            scenario = _scenario(con, Path(store.resolve_path(args.db)), role)
            emit("scenario view (simulation, for the scenario slide)", round(time.perf_counter() - started, 2), "s")
        pack = boardpack.build_board_pack(con, layer=layer, area=area, role=role, kind=kind, cube=cube, audit=False,
                                          scenario=scenario)
        emit(f"deck {name}: build", pack.seconds, "s", slides=len(pack.slides), area=area, **pack.timings)
        if not deck_check.available():
            emit(f"deck {name}: overflow check", None, "findings", note="skipped: soffice or poppler missing")
            continue
        started = time.perf_counter()
        findings = deck_check.overflows(pack.deck)
        emit(f"deck {name}: render and overflow check", round(time.perf_counter() - started, 2), "s",
             findings=len(findings), first=[str(f) for f in findings[:5]])
        total_findings += len(findings)
        if args.png_dir:
            out = args.png_dir / name
            deck_check.render_pngs(pack.deck, out)
            (out / f"{name}.pptx").write_bytes(pack.deck)
    emit("overflow findings, every deck", total_findings if deck_check.available() else None, "findings")
    emit("load average (1 min) at the end", round(os.getloadavg()[0], 2), "")
    images.close()
    con.close()


if __name__ == "__main__":
    main()
