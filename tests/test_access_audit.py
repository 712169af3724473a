"""The audit trail in its own SQLite file beside the store (issue 14): file mode, several processes
appending at once, the read-only store, migration of an old in-store trail."""
from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
from datetime import datetime
from pathlib import Path

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
    assert audit.verify(log) == {"ok": True, "rows": 161, "first_bad_seq": None, "problem": None}


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
    assert audit.verify(log) == {"ok": True, "rows": 3, "first_bad_seq": None, "problem": None}
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


# -- issue 14, item 3: a tail removed, a row rewritten with a plain hash, the head lost or rolled back ----

def _trail(tmp_path, rows: int = 6, name: str = "t.duckdb"):
    log = audit.AuditLog.for_store(tmp_path / name)
    for i in range(rows):
        audit.record(log, user="lead1", role="lead", action="view_child", subject=f"CH-{i}", detail="x")
    assert audit.verify(log)["ok"]
    return log


def _sql(log, statement, params=()):
    """Change or read the trail outside the application (dropping its append-only triggers, as someone with
    write access to the file could)."""
    con = sqlite3.connect(str(log.path), isolation_level=None)
    try:
        con.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        con.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        return con.execute(statement, params).fetchall()
    finally:
        con.close()


def _head(log) -> Path:
    return Path(str(log.path) + ".head")


def test_removing_the_last_row_is_detected(tmp_path):
    log = _trail(tmp_path)
    _sql(log, "DELETE FROM audit_log WHERE seq = 6")
    result = audit.verify(log)
    assert result["ok"] is False and result["first_bad_seq"] == 6 and "removed" in result["problem"]


def test_removing_the_last_three_rows_is_detected(tmp_path):
    log = _trail(tmp_path)
    _sql(log, "DELETE FROM audit_log WHERE seq >= 4")
    result = audit.verify(log)
    assert result["ok"] is False and result["first_bad_seq"] == 4 and "3 row(s)" in result["problem"]


def test_editing_the_last_row_and_recomputing_a_plain_sha256_is_detected(tmp_path):
    log = _trail(tmp_path)
    seq, at, user, role, action, _subject, detail, prev, _ = _sql(log, "SELECT * FROM audit_log WHERE seq = 6")[0]
    forged = audit._row_hash(prev, seq, at, user, role, action, "CH-innocent", detail)  # what the old chain was
    _sql(log, "UPDATE audit_log SET subject = 'CH-innocent', row_hash = ? WHERE seq = 6", [forged])
    result = audit.verify(log)
    assert result["ok"] is False and result["first_bad_seq"] == 6


def test_claiming_every_row_is_an_unkeyed_legacy_row_does_not_help(tmp_path):
    log = _trail(tmp_path)
    prev = audit.GENESIS
    for seq, at, user, role, action, subject, detail, _, _ in _sql(log, "SELECT * FROM audit_log ORDER BY seq"):
        subject = "CH-innocent" if seq == 6 else subject
        digest = audit._row_hash(prev, seq, at, user, role, action, subject, detail)
        _sql(log, "UPDATE audit_log SET subject = ?, prev_hash = ?, row_hash = ? WHERE seq = ?",
             [subject, prev, digest, seq])
        prev = digest
    _sql(log, "UPDATE audit_meta SET value = '6' WHERE name = 'legacy_rows'")
    assert audit.verify(log)["ok"] is False


def test_a_missing_head_is_detected(tmp_path):
    log = _trail(tmp_path)
    _head(log).unlink()
    result = audit.verify(log)
    assert result["ok"] is False and "missing" in result["problem"]


def test_a_rolled_back_head_is_detected(tmp_path):
    log = _trail(tmp_path, rows=3)
    old = _head(log).read_bytes()
    for i in range(3):
        audit.record(log, user="lead1", role="lead", action="export", subject=f"later-{i}")
    _head(log).write_bytes(old)
    result = audit.verify(log)
    assert result["ok"] is False and result["first_bad_seq"] == 4 and "rolled back" in result["problem"]


def test_a_forged_head_is_detected(tmp_path):
    log = _trail(tmp_path)
    _sql(log, "DELETE FROM audit_log WHERE seq = 6")
    head = json.loads(_head(log).read_bytes())
    head.update(seq=5, row_hash=_sql(log, "SELECT row_hash FROM audit_log WHERE seq = 5")[0][0])
    _head(log).write_text(json.dumps(head))
    result = audit.verify(log)
    assert result["ok"] is False and "not genuine" in result["problem"]


def test_the_key_is_kept_apart_and_another_key_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(audit.KEY_ENV, raising=False)
    log = _trail(tmp_path, rows=2, name="k.duckdb")
    key_file = tmp_path / "k.audit.key"
    assert key_file.exists() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(_head(log).stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert key.encode() not in log.path.read_bytes() and key.encode() not in _head(log).read_bytes()
    audit.AuditLog._registry.clear()
    with pytest.raises(audit.AuditError, match="not the one") as raised:
        audit.AuditLog.for_store(tmp_path / "k.duckdb", key="another-audit-key-0123456789")
    assert "another-audit-key" not in str(raised.value)
    monkeypatch.setenv(audit.KEY_ENV, key)  # the same key from the environment is accepted
    audit.AuditLog._registry.clear()
    assert audit.verify(audit.AuditLog.for_store(tmp_path / "k.duckdb"))["ok"]


def test_a_failed_commit_puts_the_previous_head_back(tmp_path, monkeypatch):
    log = _trail(tmp_path, rows=2)
    before = _head(log).read_bytes()
    real_connect = log._connect

    class FailingCommit:  # the disk fills up as the row is committed, after the new head was written
        def __init__(self, con):
            self.con = con

        def execute(self, sql, *args):
            if sql == "COMMIT":
                assert _head(log).read_bytes() != before  # the new head is in place at this point
                raise sqlite3.OperationalError("database or disk is full")
            return self.con.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self.con, name)

    monkeypatch.setattr(log, "_connect", lambda: FailingCommit(real_connect()))
    with pytest.raises(audit.AuditError, match="disk is full"):
        audit.record(log, user="u", role="lead", action="export")
    monkeypatch.setattr(log, "_connect", real_connect)
    assert _head(log).read_bytes() == before
    assert audit.verify(log) == {"ok": True, "rows": 2, "first_bad_seq": None, "problem": None}


def test_cli_verify_reports_a_removed_tail_on_a_copy(tmp_path):
    log = _trail(tmp_path, rows=4, name="cli2.duckdb")
    _sql(log, "DELETE FROM audit_log WHERE seq = 4")
    run = subprocess.run([sys.executable, "-m", "lib.cli", "audit", "verify", "--db", str(tmp_path / "cli2.duckdb")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    result = json.loads(run.stdout)
    assert run.returncode == 1 and result["ok"] is False and result["first_bad_seq"] == 4, run.stderr


def test_the_audit_page_says_what_the_check_found(tmp_path, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    db = tmp_path / "page.duckdb"
    store.connect(db).close()
    log = _trail(tmp_path, rows=3, name="page.duckdb")
    monkeypatch.setenv("JOINEDUP_DB", str(db))
    monkeypatch.setenv("JOINEDUP_SYNTHETIC_STORE", "1")
    monkeypatch.setenv("JOINEDUP_ACCOUNTS", str(tmp_path / "none.json"))
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(ROOT / "pages" / "audit.py"), default_timeout=120)
    at.session_state["demo_role"] = "lead"
    at.run()
    assert not at.exception, at.exception
    assert any("Chain intact" in s.value for s in at.success)
    head = _head(log).read_bytes()
    audit.record(log, user="x", role="lead", action="export", subject="later")
    _head(log).write_bytes(head)  # rolled back: the last row is no longer vouched for
    at.run()
    assert any("fails its check" in e.value and "rolled back" in e.value for e in at.error), [e.value for e in at.error]
    st.cache_data.clear()


def test_cli_with_another_audit_key_says_so_without_a_traceback_or_the_key(tmp_path):
    import os

    _trail(tmp_path, rows=2, name="wrong.duckdb")
    audit.AuditLog._registry.clear()
    run = subprocess.run([sys.executable, "-m", "lib.cli", "audit", "verify", "--db", str(tmp_path / "wrong.duckdb")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, audit.KEY_ENV: "another-audit-key-for-this-test"})
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "not the one" in json.loads(run.stdout)["error"]
    assert "another-audit-key-for-this-test" not in run.stdout + run.stderr


# -- review of item 3: a consistent rollback (old head put back) and a wiped trail, seen against the store ------

def _ingest(db, tmp_path, n: int, capsys) -> None:
    from lib import cli
    from tests.test_records import csv_bytes, good_rows

    path = tmp_path / f"extract{n}.csv"
    rows = good_rows(2)
    for i, row in enumerate(rows):
        row["source_record_id"] = f"R{n:02d}{i:03d}"
    path.write_bytes(csv_bytes(rows))
    assert cli.main(["ingest", str(path), "--db", str(db), "--today", "2025-06-30"]) == 0
    capsys.readouterr()


def _verify_cli(db, capsys) -> tuple[int, dict]:
    from lib import cli

    code = cli.main(["audit", "verify", "--db", str(db)])
    return code, json.loads(capsys.readouterr().out)


def test_an_old_head_copied_back_after_the_tail_was_removed_is_caught_by_the_store_cross_check(tmp_path, capsys):
    db = tmp_path / "roll.duckdb"
    _ingest(db, tmp_path, 1, capsys)
    log = audit.AuditLog.for_store(db)
    saved_head = _head(log).read_bytes()
    for n in (2, 3, 4):
        _ingest(db, tmp_path, n, capsys)
    assert _verify_cli(db, capsys)[0] == 0
    _sql(log, "DELETE FROM audit_log WHERE seq > 1")
    _head(log).write_bytes(saved_head)
    assert audit.verify(log)["ok"]  # the chain and head alone agree: this is what the cross-check is for
    con = duckdb.connect(str(db), read_only=True)
    try:
        result = audit.verify(log, store=con)
    finally:
        con.close()
    assert result["ok"] is False and result["unaudited_batches"] == [2, 3, 4], result
    code, out = _verify_cli(db, capsys)
    assert code == 1 and out["ok"] is False and "3 upload batch(es)" in out["problem"]


def test_a_deleted_trail_and_head_is_caught_by_the_store_cross_check(tmp_path, capsys):
    db = tmp_path / "wiped.duckdb"
    for n in (1, 2):
        _ingest(db, tmp_path, n, capsys)
    log = audit.AuditLog.for_store(db)
    assert _verify_cli(db, capsys)[0] == 0
    for path in (Path(log.path), _head(log), Path(str(log.path) + "-wal"), Path(str(log.path) + "-shm")):
        path.unlink(missing_ok=True)
    code, out = _verify_cli(db, capsys)
    assert code == 1 and out["ok"] is False and out["rows"] == 0 and out["unaudited_batches"] == [1, 2], out


def test_link_runs_are_cross_checked_and_older_rows_without_a_run_id_count(tmp_path):
    from lib.records.default import DEFAULT_FILENAME

    db = tmp_path / "runs.duckdb"
    con = store.connect(db)
    try:
        con.execute("CREATE TABLE IF NOT EXISTS linkage_runs (run_id INTEGER, started_at TIMESTAMP)")
        con.execute("INSERT INTO batches (batch_id, file_name, ingested_at) VALUES (1, ?, "
                    "TIMESTAMP '2025-01-01'), (2, 'upload.csv', TIMESTAMP '2025-02-01')", [DEFAULT_FILENAME])
        con.execute("INSERT INTO linkage_runs (run_id, started_at) VALUES (0, TIMESTAMP '2025-01-02'), "
                    "(1, TIMESTAMP '2025-03-01'), (2, TIMESTAMP '2025-03-02')")
    # run 0: before any upload (first start), not expected
        log = audit.AuditLog.for_store(db)
        audit.record(log, user="u", role="analyst", action="link_run", detail="10 records into 4 children")  # old
        audit.record(log, user="u", role="analyst", action="upload", detail="batch 2: 5 rows stored, 0 rejected")
        result = audit.verify(log, store=con)
        assert result["ok"] is False and result["unaudited_runs"] == [1, 2]
        audit.record(log, user="u", role="analyst", action="link_run", detail="run 2: 10 records into 4 children")
        assert audit.verify(log, store=con)["ok"]  # run 2 named, run 1 accepted by the older row's count
    finally:
        con.close()
