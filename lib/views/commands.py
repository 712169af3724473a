"""``view`` sub-command: the same PageData a page renders, as JSON or one table as CSV.

    python -m lib.cli view <page> --role R [--param key=value ...] [--format json|csv] [--table NAME]
                                  [--db PATH] [--out FILE]

A view that shows children (the lead's list of children and a chosen child's journey on ``across``, a pair's
masked records on ``review``) writes the same view_list / view_child / view_review audit rows its page writes
(user ``cli:<os user>``), before anything is printed. JSON goes to stdout (or ``--out``); CSV needs ``--table``
(default: the page's first downloadable table).
Every CSV, and any file written, goes through lib.export.downloads (spreadsheet-safe, audited before it is
written). An unknown page, role, parameter or value ends with a clear message (exit code 2).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from lib.access.roles import PAGE_ROLES, ROLES

EXIT_USAGE = 2


def register(sub) -> None:
    cmd = sub.add_parser("view", help="a page's tables, sentences and figures as JSON, or one table as CSV")
    cmd.add_argument("page", choices=sorted(PAGE_ROLES), help="the page's url_path (lib.views.BUILDERS)")
    cmd.add_argument("--role", choices=list(ROLES), required=True, help="whose view (suppression follows it)")
    cmd.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                     help="a page parameter (repeatable); lists are comma-separated")
    cmd.add_argument("--format", choices=["json", "csv"], default="json")
    cmd.add_argument("--table", default=None, help="csv: the table to write (default: the first downloadable)")
    cmd.add_argument("--db", type=Path, default=None, help="DuckDB store (default $JOINEDUP_DB or data/)")
    cmd.add_argument("--out", type=Path, default=None, help="file to write (default: stdout)")
    cmd.set_defaults(func=view)


def parse_params(items: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param {item!r}: expected KEY=VALUE")
        if key.strip() in params:
            raise ValueError(f"--param {key.strip()} given twice")
        params[key.strip()] = value
    return params


def view(args) -> int:
    from lib import views
    from lib.access import audit
    from lib.export import downloads
    from lib.records import store

    try:
        data, viewed = views.build_audited(args.page, args.db, parse_params(args.param), args.role)
        if args.format == "csv":
            name = args.table or next((n for n, t in data.tables.items() if t.downloadable), None)
            if name is None:
                raise ValueError(f"page {args.page!r} has no downloadable table: name one with --table "
                                 f"({', '.join(data.tables) or 'none'})")
            frame = data.table(name).frame
        elif args.table is not None:
            raise ValueError("--table goes with --format csv")
    except ValueError as exc:
        print(json.dumps({"ok": False, "error": str(exc), "exit_code": EXIT_USAGE}))
        print(f"view: {exc}", file=sys.stderr)
        return EXIT_USAGE
    detail = f"command line: view {args.page} as {args.role}" + "".join(f" {p}" for p in args.param)
    for action, subject, what in viewed:  # lists of children, a child's or a pair's records: audited as the page
        audit.record_command(store.resolve_path(args.db), action=action, subject=subject, detail=f"{what} ({detail})")
    if args.format == "csv":
        body = downloads.command_export(store.resolve_path(args.db), "csv", frame, subject=args.page,
                                        detail=f"{detail} --table {name}"
                                               + (f" -> {args.out.name}" if args.out else ""))
    else:
        text = data.to_json()
        if args.out is None:  # JSON on stdout is what a page shows on screen: no file leaves
            sys.stdout.write(text + "\n")
            return 0
        body = downloads.command_export(store.resolve_path(args.db), "json", text, subject=args.page,
                                        detail=f"{detail} -> {args.out.name}")
    if args.out is None:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(body)
    print(json.dumps({"ok": True, "page": args.page, "role": args.role, "format": args.format,
                      "out": str(args.out), "bytes": len(body)}))
    return 0
