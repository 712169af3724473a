"""The audit trail in its own SQLite file beside the store (issue 14): file mode, several processes
appending at once, the read-only store, migration of an old in-store trail."""
from __future__ import annotations

import json
import stat
import subprocess
import sys
from datetime import datetime

import duckdb
import pytest

from lib.access import audit
from lib.records import store
from tests.conftest import ROOT

_OLD_SCHEMA = ("CREATE TABLE audit_log (seq BIGINT PRIMARY KEY, at_utc TIMESTAMP NOT NULL, user_name VARCHAR NOT "
               "NULL, role VARCHAR NOT NULL, action VARCHAR NOT NULL, subject VARCHAR, detail VARCHAR, prev_hash "
               "VARCHAR NOT NULL, row_hash VARCHAR NOT NULL)")


def test_the_trail_is_a_0600_sqlite_file_beside_the_store_not_a_table_in_it(tmp_path):
    db = tmp_path / "s.duckdb"
    store.connect(db).close()
    log = audit.AuditLog.for_store(db)
    audit.record(log, user="lead1", role="lead", action="view_child", subject="CH-1")
    path = tmp_path / "s.duckdb.audit.sqlite"
    assert log.path == path and path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for extra in (tmp_path / "s.duckdb.audit.sqlite-wal", tmp_path / "s.duckdb.audit.sqlite-shm"):
        if extra.exists():
            assert stat.S_IMODE(extra.stat().st_mode) == 0o600, extra.name
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    finally:
        con.close()
    assert "audit_log" not in tables
    assert audit.AuditLog.for_store(str(db)) is log  # one object per file per process


def test_audit_rows_are_written_while_the_store_is_open_read_only(tmp_path):
    db = tmp_path / "r.duckdb"
    store.connect(db).close()
    con = store.connect(db, read_only=True)
    try:
        log = audit.AuditLog.for_connection(con)
        assert log.path == tmp_path / "r.duckdb.audit.sqlite"
        assert audit.record(log, user="u", role="lead", action="export", subject="x") == 1
    finally:
        con.close()


_WRITER = """
import sys
from lib.access import audit
log = audit.AuditLog.for_store(sys.argv[1])
for i in range(int(sys.argv[3])):
    audit.record(log, user=sys.argv[2], role="analyst", action="export", subject=str(i))
"""


def test_several_processes_append_at_once_without_losing_a_row_or_breaking_the_chain(tmp_path):
    db = tmp_path / "c.duckdb"
    audit.record(audit.AuditLog.for_store(db), user="first", role="lead", action="sign_in")
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(db), f"p{n}", "40"], cwd=ROOT,
                              stderr=subprocess.PIPE, text=True) for n in range(4)]
    for proc in procs:
        assert proc.wait(timeout=240) == 0, proc.stderr.read()
    log = audit.AuditLog.for_store(db)
    rows = audit.read(log)
    assert len(rows) == 1 + 4 * 40
    assert sorted(rows["seq"]) == list(range(1, 162))
    assert audit.verify(log) == {"ok": True, "rows": 161, "first_bad_seq": None}


def test_memory_store_gets_an_in_memory_log():
    log = audit.AuditLog.for_store(":memory:")
    assert log.path == ":memory:" and audit.AuditLog.for_store(":memory:") is log
    private = audit.AuditLog.memory()
    assert audit.record(private, user="u", role="lead", action="export") == 1
    assert audit.verify(private)["ok"] and len(audit.read(private)) == 1


def test_a_connection_is_refused_with_a_clear_message():
    con = duckdb.connect(":memory:")
    with pytest.raises(TypeError, match="AuditLog"):
        audit.record(con, user="u", role="lead", action="export")
    con.close()


def _old_store(path, rows: int, *, break_at: int | None = None) -> None:
    """A store as older releases left it: the trail in an audit_log table inside DuckDB."""
    con = store.connect(path)
    con.execute(_OLD_SCHEMA)
    prev = audit.GENESIS
    for seq in range(1, rows + 1):
        at = datetime(2026, 1, 1, 9, 0, seq)
        fields = ("lead1", "lead", "view_child", f"CH-{seq}", "old")
        digest = audit._row_hash(prev, seq, audit._iso(at), *fields)
        con.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [seq, at, *fields, prev, digest])
        prev = digest
    if break_at:
        con.execute("UPDATE audit_log SET subject = 'CH-X' WHERE seq = ?", [break_at])
    con.close()


def test_an_old_in_store_trail_is_migrated_once_and_new_rows_chain_on(tmp_path):
    db = tmp_path / "old.duckdb"
    _old_store(db, 3)
    log = audit.AuditLog.for_store(db)
    assert audit.verify(log) == {"ok": True, "rows": 3, "first_bad_seq": None}
    assert audit.record(log, user="lead1", role="lead", action="export", subject="x") == 4
    assert audit.read(log)["subject"].tolist() == ["x", "CH-3", "CH-2", "CH-1"]
    audit.AuditLog._registry.clear()  # a new process: the file says the migration is done
    assert len(audit.read(audit.AuditLog.for_store(db))) == 4


def test_a_broken_old_trail_is_not_migrated(tmp_path):
    db = tmp_path / "broken.duckdb"
    _old_store(db, 3, break_at=2)
    with pytest.raises(audit.AuditError, match="broken at row 2"):
        audit.AuditLog.for_store(db)


def test_cli_verify_and_export_read_the_audit_file(tmp_path):
    db = tmp_path / "cli.duckdb"
    _old_store(db, 2)
    run = subprocess.run([sys.executable, "-m", "lib.cli", "audit", "verify", "--db", str(db)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["ok"] and result["rows"] == 2 and result["file"].endswith("cli.duckdb.audit.sqlite")
