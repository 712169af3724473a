"""``boardpack`` sub-command: the same deck the page builds, written to a file (JSON summary on stdout)."""
from __future__ import annotations

import getpass
import json
from pathlib import Path

from lib.access.roles import ROLES
from lib.geo import layers


def register(sub) -> None:
    cmd = sub.add_parser("boardpack", help="build the board pack (PowerPoint) for one area")
    cmd.add_argument("--db", type=Path, default=None, help="DuckDB store (default $JOINEDUP_DB or data/)")
    cmd.add_argument("--layer", choices=layers.measure_choices(), default="utla")
    cmd.add_argument("--area", required=True, help="area code of the focus area, e.g. E06000066")
    cmd.add_argument("--role", choices=list(ROLES), default="commissioner",
                     help="whose view: commissioner and analyst packs are suppressed")
    cmd.add_argument("--period", default="all", help="all, a financial year (2023-24) or quarter ('2023-24 Q1')")
    cmd.add_argument("--measure", choices=["cse_records", "cse_children"], default="cse_records")
    cmd.add_argument("--agencies", default="police,children_social_care", help="the pair compared: A,B")
    cmd.add_argument("--compare", default=None, help="area codes to compare, comma-separated (default: the "
                                                        "area and up to 3 neighbours)")
    cmd.add_argument("--comparator", default=None, help="a user-defined comparator group, comma-separated "
                                                           "(default: the 5 nearest neighbours on indicators)")
    cmd.add_argument("--from", dest="kind", choices=["divergence", "across"], default="divergence",
                     help="which deck: divergence (the Where counts diverge and Compare pages) or across "
                          "(children crossing boundaries, the Across boundaries page)")
    cmd.add_argument("--scenario", default=None, metavar="LEVERS_JSON",
                     help='add a scenario slide: the levers as JSON, e.g. \'{"capture": {"police": 1.0}}\' '
                          "(the Scenario page's simulation)")
    cmd.add_argument("--out", type=Path, required=True, help="the .pptx to write")
    cmd.add_argument("--assets", type=Path, default=None, help="also write each chart (PNG) and table (CSV) here")
    cmd.set_defaults(func=boardpack)


def _codes(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


def boardpack(args) -> int:
    from lib.export.boardpack import build_board_pack
    from lib.records import store

    a, b = [x.strip() for x in args.agencies.split(",")]
    con = store.connect(args.db, read_only=True)  # a reader: the current version
    try:
        scenario = None
        if args.scenario is not None:
            from lib import views
            from lib.views.base import Source

            scenario = views.build_with("scenario", Source(con, store.resolve_path(args.db)),
                                        {"levers": args.scenario}, args.role)
        pack = build_board_pack(con, layer=args.layer, area=args.area, role=args.role, period=args.period,
                                measure=args.measure, a=a, b=b, compare_areas=_codes(args.compare),
                                comparator=_codes(args.comparator), user=f"cli:{getpass.getuser()}",
                                kind=args.kind, scenario=scenario)
    finally:
        con.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(pack.deck)
    written = [str(args.out)]
    if args.assets:
        args.assets.mkdir(parents=True, exist_ok=True)
        for name, data in {**pack.pngs, **pack.csvs}.items():
            (args.assets / name).write_bytes(data)
            written.append(str(args.assets / name))
    print(json.dumps({"out": str(args.out), "kind": args.kind, "layer": args.layer, "area": args.area,
                      "role": args.role, "period": args.period, "slides": pack.slides, "bytes": len(pack.deck),
                      "seconds": pack.seconds, "timings": pack.timings, "files": written}))
    return 0
