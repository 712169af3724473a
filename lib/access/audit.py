"""The audit trail: who saw, exported, loaded, linked or decided what, and when. No Streamlit here.

The trail lives in its own SQLite file beside the record store (``<store path>.audit.sqlite``, e.g.
``data/joinedup.duckdb.audit.sqlite``), not inside the DuckDB store: the app holds the store read-only
while command-line jobs write it, and every one of those processes must be able to append audit rows at
the same time. SQLite in WAL mode with a busy timeout allows that; each row is one ``BEGIN IMMEDIATE``
transaction (the write lock is taken before the last row is read), so sequence numbers and the chain stay
consistent across processes. The file is created with mode 0600.

Every child-level view, export, upload, linkage run, review decision and sign-in event is one row of the
append-only table ``audit_log``. This module only ever INSERTs into it (no UPDATE or DELETE anywhere in
the code; a test checks). Each row carries a hash chain: ``row_hash`` covers the previous row's hash and
this row's fields, so editing or deleting an earlier row is detectable with ``verify(log)``.

Use::

    log = AuditLog.for_store("data/joinedup.duckdb")      # one object per store file per process
    record(log, user="lead1", role="lead", action="view_child", subject="CH-…")
    read(log, action="export")                            # a DataFrame, newest first
    verify(log)                                           # {"ok", "rows", "first_bad_seq", ...}

An in-memory store (``":memory:"``) gets a process-wide in-memory log; ``AuditLog.memory()`` makes a
private one (tests).

Old stores kept the trail in an ``audit_log`` table inside DuckDB. The first time the SQLite file is
created for such a store, the old rows are copied over once (their chain is checked first, and the copy
re-checked), and the SQLite file records where they came from. The old table is left in the store
untouched (read-only) as evidence.

Values recorded: user name, role, action (see ``ACTIONS``), subject (an area code, a child pseudonym
``CH-…``, a file name, a batch id) and a short free-text detail. Never an identifier in clear, never a
key or password.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import pandas as pd

TABLE = "audit_log"
SUFFIX = ".audit.sqlite"
ACTIONS = {
    "view_child": "Opened one child's journey",
    "view_review": "Opened a pair in the review queue",
    "review_decision": "Accepted or rejected a link",
    "export": "Downloaded a table, figure or pack",
    "upload": "Stored an uploaded extract",
    "upload_refused": "An upload was refused (whole-file problem)",
    "link_run": "Ran linkage",
    "sign_in": "Signed in",
    "sign_in_failed": "A sign-in attempt failed",
    "sign_out": "Signed out (or the session timed out)",
    "view_audit": "Opened the audit trail",
}
GENESIS = "0" * 64
MAX_TEXT = 500  # subject and detail are cut to this length
BUSY_TIMEOUT_MS = 30_000  # how long a writer waits for another process's INSERT before giving up
COLUMNS = ["seq", "at_utc", "user_name", "role", "action", "subject", "detail"]

_SCHEMA = (
    (f"CREATE TABLE IF NOT EXISTS {TABLE} (seq INTEGER PRIMARY KEY, at_utc TEXT NOT NULL, "
    "user_name TEXT NOT NULL, role TEXT NOT NULL, action TEXT NOT NULL, subject TEXT, detail TEXT, "
    "prev_hash TEXT NOT NULL, row_hash TEXT NOT NULL)"),
    "CREATE TABLE IF NOT EXISTS audit_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
# SQL: table names are this module's constants; every value (user, filters, limit) is a ? parameter.


class AuditError(RuntimeError):
    """The audit trail cannot be opened or written (a clear message naming the file)."""


def audit_path(store_path) -> Path | str:
    """``<store path>.audit.sqlite`` for a store file; ``":memory:"`` for an in-memory store."""
    text = str(store_path)
    if text == ":memory:" or text == "":
        return ":memory:"
    return Path(text + SUFFIX)


class AuditLog:
    """One audit trail (a SQLite file, or an in-memory database for in-memory stores and tests)."""

    _registry: ClassVar[dict[str, AuditLog]] = {}
    _registry_lock = threading.Lock()

    def __init__(self, path: Path | str, *, store_path=None, con=None):
        self.path = path
        self.store_path = store_path
        self._lock = threading.Lock()  # serialises this process's writers (SQLite serialises processes)
        self._memory = None
        if path == ":memory:":
            self._memory = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            self._setup(self._memory)
        else:
            self._create_file()
        self._migrate_old_table(con)

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def for_store(cls, store_path=None, *, con=None) -> AuditLog:
        """The audit log of the store at ``store_path`` (default: $JOINEDUP_DB, else data/joinedup.duckdb).
        One object per file per process. ``con``: an open connection to that store, used once to migrate an
        old in-store ``audit_log`` table (otherwise the store is opened read-only for that, if it exists)."""
        if store_path is None:
            from lib.records.store import resolve_path

            store_path = resolve_path(None)
        path = audit_path(store_path)
        name = str(path) if path == ":memory:" else str(Path(path).resolve())
        with cls._registry_lock:
            log = cls._registry.get(name)
            if log is None or (log.path != ":memory:" and not Path(log.path).exists()):
                log = cls(path, store_path=None if path == ":memory:" else Path(str(store_path)), con=con)
                cls._registry[name] = log
            return log

    @classmethod
    def for_connection(cls, con) -> AuditLog:
        """The audit log of the store a DuckDB connection has open (its main database file)."""
        rows = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
                           ).fetchall()
        path = rows[0][0] if rows and rows[0][0] else ":memory:"
        if path != ":memory:":
            from lib.records.versions import logical_path

            path = logical_path(path)  # a version file (P.versions/v000042.duckdb) belongs to the store P
        return cls.for_store(path, con=con)

    @classmethod
    def memory(cls) -> AuditLog:
        """A private in-memory log (tests)."""
        return cls(":memory:")

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r})"

    def _create_file(self) -> None:
        path = Path(self.path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                os.close(fd)
                os.chmod(path, 0o600)  # whatever the umask; SQLite gives -wal/-shm the same mode
            con = self._connect()
            try:
                self._setup(con)
            finally:
                con.close()
        except (OSError, sqlite3.Error) as exc:
            raise AuditError(f"the audit trail {path} cannot be opened: {exc}") from exc

    @staticmethod
    def _setup(con: sqlite3.Connection) -> None:
        if con.execute("PRAGMA journal_mode").fetchone()[0] != "memory":
            con.execute("PRAGMA journal_mode=WAL")
        for statement in _SCHEMA:
            con.execute(statement)

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                              check_same_thread=False)
        con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        con.execute("PRAGMA synchronous=FULL")  # an audit row that was reported written survives a power cut
        return con

    def connection(self):
        """A context manager yielding a SQLite connection (a fresh one per call for a file)."""
        return _Conn(self)

    # -- migration of the old in-store table --------------------------------------------------------
    def _migrate_old_table(self, con) -> None:
        with self.connection() as lite:
            done = lite.execute("SELECT value FROM audit_meta WHERE name = 'origin'").fetchone()
        if done is not None:
            return
        rows = self._old_rows(con)
        with self._lock, self.connection() as lite:
            lite.execute("BEGIN IMMEDIATE")
            try:
                if lite.execute("SELECT value FROM audit_meta WHERE name = 'origin'").fetchone() is not None:
                    lite.execute("ROLLBACK")  # another process migrated meanwhile
                    return
                if lite.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]:
                    origin = "rows present before migration check"
                elif rows:
                    check = _verify_rows(rows)
                    if not check["ok"]:
                        raise AuditError(f"the old audit trail in {self.store_path} is broken at row "
                                         f"{check['first_bad_seq']}; export it with an older release and keep it "
                                         "as evidence before upgrading")
                    lite.executemany(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
                    origin = f"migrated {len(rows)} rows from {TABLE} in {Path(str(self.store_path)).name}"
                else:
                    origin = "new"
                lite.execute("INSERT INTO audit_meta VALUES ('origin', ?)", [origin])
                lite.execute("COMMIT")
            except BaseException:
                lite.execute("ROLLBACK")
                raise

    def _old_rows(self, con) -> list[tuple]:
        """Rows of an old DuckDB ``audit_log`` table, as SQLite values (empty when there is none)."""
        if con is None:
            if self.store_path is None or not Path(self.store_path).is_file():
                return []
            import duckdb

            try:
                con = duckdb.connect(str(self.store_path), read_only=True)
            except duckdb.Error:
                try:  # this process already has the store open for writing: share that instance
                    con = duckdb.connect(str(self.store_path))
                except duckdb.Error as exc:
                    raise AuditError(f"the store {self.store_path} may hold an old audit trail to migrate but "
                                     f"cannot be read now ({exc}); run `python -m lib.cli audit verify --db "
                                     f"{self.store_path}` while nothing else has it open") from exc
            try:
                return _duck_rows(con)
            finally:
                con.close()
        return _duck_rows(con)


class _Conn:
    def __init__(self, log: AuditLog):
        self.log = log
        self.con = None

    def __enter__(self) -> sqlite3.Connection:
        if self.log._memory is not None:
            return self.log._memory
        try:
            self.con = self.log._connect()
        except sqlite3.Error as exc:
            raise AuditError(f"the audit trail {self.log.path} cannot be opened: {exc}") from exc
        return self.con

    def __exit__(self, *exc) -> None:
        if self.con is not None:
            self.con.close()


def _duck_rows(con) -> list[tuple]:
    cur = con.cursor()
    try:
        found = cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                            [TABLE]).fetchall()[0][0]
        if not found:
            return []
        rows = cur.execute(f"SELECT seq, at_utc, user_name, role, action, subject, detail, prev_hash, row_hash "
                           f"FROM {TABLE} ORDER BY seq").fetchall()
    finally:
        cur.close()
    return [(int(r[0]), _iso(r[1]) if isinstance(r[1], datetime) else str(r[1]), *r[2:]) for r in rows]


def _text(value) -> str | None:
    if value is None:
        return None
    text = "".join(ch if ch.isprintable() else " " for ch in str(value))
    return text[:MAX_TEXT]


def _row_hash(prev_hash: str, seq: int, at: str, user: str, role: str, action: str, subject, detail) -> str:
    payload = json.dumps([prev_hash, seq, at, user, role, action, subject, detail], ensure_ascii=True,
                         separators=(",", ":"))
    return hashlib.sha256(payload.encode("ascii")).hexdigest()


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")


def _log(log) -> AuditLog:
    if isinstance(log, AuditLog):
        return log
    if isinstance(log, (str, os.PathLike)):
        return AuditLog.for_store(log)
    raise TypeError("pass an AuditLog (AuditLog.for_store(store_path)), not a database connection")


def record(log: AuditLog, *, user: str, role: str, action: str, subject=None, detail=None) -> int:
    """Append one audit row; returns its sequence number. ``action`` must be one of ACTIONS."""
    log = _log(log)
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    user, role = _text(user) or "(unknown)", _text(role) or "(none)"
    subject, detail = _text(subject), _text(detail)
    at = _iso(datetime.now(UTC).replace(tzinfo=None))
    try:
        with log._lock, log.connection() as con:
            con.execute("BEGIN IMMEDIATE")  # the write lock before reading the last row: no two get one seq
            try:
                last = con.execute(f"SELECT seq, row_hash FROM {TABLE} ORDER BY seq DESC LIMIT 1").fetchone()
                seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
                digest = _row_hash(prev, seq, at, user, role, action, subject, detail)
                con.execute(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [seq, at, user, role, action, subject, detail, prev, digest])
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
    except sqlite3.Error as exc:
        raise AuditError(f"could not write to the audit trail {log.path}: {exc}") from exc
    return int(seq)


def read(log: AuditLog, *, action: str | None = None, user: str | None = None, text: str | None = None,
         since: datetime | None = None, until: datetime | None = None, limit: int | None = None) -> pd.DataFrame:
    """Audit rows, newest first, filtered (all filters parameterised)."""
    log = _log(log)
    where, params = [], []
    if action:
        where.append("action = ?")
        params.append(action)
    if user:
        where.append("user_name = ?")
        params.append(user)
    if text:
        where.append("(instr(lower(coalesce(subject, '')), lower(?)) > 0 "
                     "OR instr(lower(coalesce(detail, '')), lower(?)) > 0)")
        params += [text, text]
    if since is not None:
        where.append("at_utc >= ?")
        params.append(_iso(since))
    if until is not None:
        where.append("at_utc < ?")
        params.append(_iso(until))
    sql = (f"SELECT {', '.join(COLUMNS)} FROM {TABLE}"
           + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY seq DESC")
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    with log.connection() as con:
        rows = con.execute(sql, params).fetchall()
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["seq"] = frame["seq"].astype("int64")
    frame["at_utc"] = pd.to_datetime(frame["at_utc"], format="%Y-%m-%dT%H:%M:%S.%f")
    return frame


def _verify_rows(rows) -> dict:
    prev = GENESIS
    expected_seq = 1
    for seq, at, user, role, action, subject, detail, prev_hash, row_hash in rows:
        if seq != expected_seq or prev_hash != prev or \
                _row_hash(prev, seq, at, user, role, action, subject, detail) != row_hash:
            return {"ok": False, "rows": len(rows), "first_bad_seq": int(seq)}
        prev, expected_seq = row_hash, seq + 1
    return {"ok": True, "rows": len(rows), "first_bad_seq": None}


def verify(log: AuditLog) -> dict:
    """Re-compute the hash chain: {"ok", "rows", "first_bad_seq"} (first row where the chain breaks)."""
    log = _log(log)
    with log.connection() as con:
        rows = con.execute(f"SELECT seq, at_utc, user_name, role, action, subject, detail, prev_hash, row_hash "
                           f"FROM {TABLE} ORDER BY seq").fetchall()
    return _verify_rows(rows)


def to_csv(frame: pd.DataFrame) -> bytes:
    """CSV of audit rows with spreadsheet-formula cells neutralised (a leading ' on = + - @ tab CR)."""
    from lib.access.safety import csv_safe_frame

    return csv_safe_frame(frame).to_csv(index=False).encode("utf-8")
