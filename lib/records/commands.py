"""`ingest` sub-command: validate, geocode, pseudonymise and store agency extracts (JSON on stdout).

    python -m lib.cli ingest FILE... [--db PATH] [--today YYYY-MM-DD]

Each file is one batch in one transaction. The summary lists, per file, rows read, stored, already
stored (re-uploads add nothing twice), rejected, and counts by reason; a file with a whole-file problem
(empty, not UTF-8, not what its name says, missing columns) is reported with its error and stores
nothing. Exit status 1 if any file failed as a whole, 2 if nothing could be stored (wrong key), 75 if
another writer holds the store (try again later; docs/OPERATIONS.md), else 0. The key comes from $JOINEDUP_KEY or the
key file beside the database (created on first use).
"""
from __future__ import annotations

import json
from datetime import date
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("ingest", help="validate, geocode, pseudonymise and store extracts",
                              description="Validate, geocode, pseudonymise and store agency extracts "
                                          "(CSV, Excel .xlsx or Parquet); one transaction per file.")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="extract files")
    p.add_argument("--db", type=Path, default=None, help="DuckDB store (default $JOINEDUP_DB or data/joinedup.duckdb)")
    p.add_argument("--today", type=date.fromisoformat, default=None,
                   help="date that counts as today for the no-future-dates checks (default: today)")
    p.set_defaults(func=run)


def run(args) -> int:
    from lib.records.ingest import ingest_files
    from lib.records.pseudonymise import KeyProblem
    from lib.records.store import StoreError

    try:
        summary = ingest_files(args.files, args.db, today=args.today)
    except (StoreError, KeyProblem) as exc:
        print(json.dumps({"error": str(exc), "rows_stored": 0}))
        return 2
    print(json.dumps(summary))
    return 1 if summary["files_failed"] else 0
