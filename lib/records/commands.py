"""`ingest` sub-command: validate, geocode, pseudonymise and store agency extracts (JSON on stdout).

    python -m lib.cli ingest FILE... [--db PATH] [--today YYYY-MM-DD]

Each file is one batch in one transaction. The summary lists, per file, rows read, stored, already
stored (re-uploads add nothing twice), rejected, and counts by reason; a file with a whole-file problem
(empty, not UTF-8, not what its name says, missing columns) is reported with its error and stores
nothing; each refused file also gets one line on stderr (``ingest: FILE refused: reason``), never a
traceback. Exit status 1 if some file failed as a whole, 2 if nothing could be stored (every file
refused, wrong key), 75 if another writer holds the store (try again later; docs/OPERATIONS.md), else 0.
The key comes from $JOINEDUP_KEY or the
key file beside the database (created on first use).
"""
from __future__ import annotations

import json
import sys
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
    from lib.access import audit
    from lib.access.safety import safe_filename
    from lib.records.ingest import ingest_files
    from lib.records.pseudonymise import KeyProblem
    from lib.records.store import StoreError, resolve_path

    db = resolve_path(args.db)
    try:
        summary = ingest_files(args.files, args.db, today=args.today)
    except (StoreError, KeyProblem) as exc:
        try:
            for path in args.files:
                audit.record_command(db, action="upload_refused", subject=safe_filename(path.name),
                                     detail=f"command line: {type(exc).__name__}")
        except audit.AuditError as problem:
            print(json.dumps({"error": str(exc), "audit_error": str(problem), "rows_stored": 0}))
            return 2
        print(json.dumps({"error": str(exc), "rows_stored": 0}))
        return 2
    try:
        for result in summary["files"]:  # one row per file, as the Data page writes
            if "error" in result:
                audit.record_command(db, action="upload_refused", subject=result["file"],
                                     detail=f"command line: {result.get('error_code')}")
            else:
                audit.record_command(db, action="upload", subject=result["file"],
                                     detail=f"command line: batch {result['batch_id']}: {result['rows_stored']} "
                                            f"rows stored, {result['rows_rejected']} rejected")
    except audit.AuditError as exc:
        summary["audit_error"] = str(exc)
        print(json.dumps(summary))
        return 2
    print(json.dumps(summary))
    for result in summary["files"]:
        if "error" in result:  # one line each, for a person reading the terminal; the JSON above is the record
            reason = " ".join(str(result["error"]).split())
            print(f"ingest: {result['file']} refused: {reason}", file=sys.stderr)
    if summary["files_failed"]:
        return 2 if summary["files_failed"] == len(summary["files"]) else 1
    return 0
