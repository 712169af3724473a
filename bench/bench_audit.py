"""Audit trail benchmark: appending rows (one BEGIN IMMEDIATE transaction, the keyed hash and the atomically
replaced head per row), several processes appending at once, and verifying the whole trail.

Run: python -m bench.bench_audit [--rows 2000] [--processes 4] [--verify-rows 100000]
Prints JSON lines {"figure","value","unit",...}. Never asserted in tests. Synthetic rows only.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import emit

_WRITER = """
import sys
from lib.access import audit
log = audit.AuditLog.for_store(sys.argv[1])
for i in range(int(sys.argv[2])):
    audit.record(log, user="bench", role="analyst", action="export", subject=f"file-{i}.csv")
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2000, help="rows appended by one process")
    parser.add_argument("--processes", type=int, default=4, help="processes appending at once")
    parser.add_argument("--verify-rows", type=int, default=100_000, help="size of the trail verified")
    args = parser.parse_args()

    from lib.access import audit

    folder = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    log = audit.AuditLog.for_store(folder / "one.duckdb", key="bench-audit-key-0123456789")
    started = time.perf_counter()
    for i in range(args.rows):
        audit.record(log, user="lead1", role="lead", action="view_child", subject=f"CH-{i:06d}")
    seconds = time.perf_counter() - started
    emit("audit: append one row (one process)", round(1000 * seconds / args.rows, 3), "ms", rows=args.rows)

    db = folder / "many.duckdb"
    audit.AuditLog.for_store(db)  # creates the trail and its key file before the writers start
    per = max(args.rows // args.processes, 1)
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(db), str(per)]) for _ in range(args.processes)]
    codes = [p.wait() for p in procs]
    seconds = time.perf_counter() - started
    check = audit.verify(audit.AuditLog.for_store(db))
    emit("audit: rows appended per second, processes at once", round(per * args.processes / seconds, 1), "rows/s",
         processes=args.processes, rows=per * args.processes, failed_processes=sum(c != 0 for c in codes),
         chain_ok=check["ok"], rows_in_trail=check["rows"], note="includes each process's start-up")

    big = audit.AuditLog.for_store(folder / "big.duckdb", key="bench-audit-key-0123456789")
    with big.connection() as con:  # a large trail, written in one transaction with the same keyed chain
        con.execute("BEGIN IMMEDIATE")
        prev = audit.GENESIS
        rows = []
        for seq in range(1, args.verify_rows + 1):
            at = f"2026-01-01T00:00:{seq % 60:02d}.000000"
            fields = (seq, at, "lead1", "lead", "view_child", f"CH-{seq:06d}", None)
            digest = big._row_mac(prev, *fields)
            rows.append((*fields, prev, digest))
            prev = digest
        con.executemany("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        big._write_head(big._head_bytes(args.verify_rows, prev, 0))
        con.execute("COMMIT")
    started = time.perf_counter()
    check = audit.verify(big)
    emit("audit: verify the whole trail", round(time.perf_counter() - started, 3), "s", rows=check["rows"],
         chain_ok=check["ok"])


if __name__ == "__main__":
    main()
