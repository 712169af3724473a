"""The audit trail: who saw, exported, loaded, linked or decided what, and when. No Streamlit here.

Where: its own SQLite file beside the record store (``<store path>.audit.sqlite``, e.g.
``data/joinedup.duckdb.audit.sqlite``), not inside the DuckDB store: the app holds the store read-only
while command-line jobs write it, and every one of those processes must be able to append audit rows at
the same time. SQLite in WAL mode with a busy timeout allows that; each row is one ``BEGIN IMMEDIATE``
transaction (the write lock is taken before the last row is read), so sequence numbers and the chain stay
consistent across processes. Files are created with mode 0600.

What: every child-level view, export, upload, linkage run, review decision and sign-in event is one row of
the append-only table ``audit_log``. This module only ever INSERTs into it, and the trail's own triggers
refuse UPDATE and DELETE from any code that opens it (someone with write access to the file can drop them:
that is what the chain below is for).

Tamper evidence (issue 14, item 3):
- a keyed chain: ``row_hash`` is HMAC-SHA256, under the audit key, of the previous row's hash and this
  row's fields. Without the key nobody can recompute it, so an edited row (even with a recomputed plain
  SHA-256) or a removed row in the middle breaks the chain;
- a head record outside the database, ``<audit file>.head``: the last sequence number and hash, HMAC'd
  with the same key, replaced atomically inside the row's transaction. Removing the last row(s) while the
  head stays, or restoring an older head file alone, or deleting the head alone, makes the trail and its
  head disagree.
``verify(log)`` checks both and says what is wrong. What the chain and head alone cannot see: someone with
write access to the files who keeps an older head copy, removes the rows written since and puts that head
back (a consistent rollback), or deletes the trail and its head together (an empty trail is consistent).
``verify(log, store=con)`` (and ``python -m lib.cli audit verify --db PATH``) therefore also cross-checks the
record store (``cross_check``): every upload batch and linkage run the store holds must have its audit row,
so a trail rolled back or wiped while the store kept the uploads and runs is reported. Views, exports and
sign-ins leave nothing in the store, so a rollback that removes only such rows is still not detected.

The audit key is kept apart from the store and the trail (``load_key``), first match wins: the ``key``
argument (the app passes ``st.secrets["JOINEDUP_AUDIT_KEY"]``), ``$JOINEDUP_AUDIT_KEY``, else the key file
``<store stem>.audit.key`` beside the store (0600, created at first use, like the pseudonymisation key).
A different key from the one the trail was started with is refused (a key check is kept, never the key).
Held only in a file beside the data, the key protects against someone who can change the trail but not
read that file; for more, keep the key in the app's secrets or the environment (docs/INFORMATION_GOVERNANCE.md).

Use::

    log = AuditLog.for_store("data/joinedup.duckdb")      # one object per store file per process
    record(log, user="lead1", role="lead", action="view_child", subject="CH-…")
    read(log, action="export")                            # a DataFrame, newest first
    verify(log)                                           # {"ok", "rows", "first_bad_seq", "problem"}

An in-memory store (``":memory:"``) gets a process-wide in-memory log with a random key; ``AuditLog.memory()``
makes a private one (tests).

Older trails: an ``audit_log`` table inside an old DuckDB store is copied over once, the first time the
SQLite file is made (its plain SHA-256 chain is checked first and the copy re-checked); the old table is
left in the store untouched. Those first rows keep their plain hashes ("legacy rows"); the first keyed row
and the HMAC'd head then vouch for them, so they cannot be rewritten afterwards without detection.

Values recorded: user name, role, action (see ``ACTIONS``), subject (an area code, a child pseudonym
``CH-…``, a file name, a batch id) and a short free-text detail. Never an identifier in clear, never a
key or password.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import pandas as pd

from lib.records.pseudonymise import read_or_make_key_file
from lib.records.store import cursor

TABLE = "audit_log"
SUFFIX = ".audit.sqlite"
HEAD_SUFFIX = ".head"
KEY_ENV = "JOINEDUP_AUDIT_KEY"
KEY_SUFFIX = ".audit.key"
MIN_KEY_LENGTH = 16
ACTIONS = {
    "view_child": "Opened one child's journey",
    "view_list": "Opened a list of children (spanning boundaries)",
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
    "account_change": "Added, changed or removed a local account (subject: its user name)",
}
GENESIS = "0" * 64
MAX_TEXT = 500  # subject and detail are cut to this length
BUSY_TIMEOUT_MS = 30_000  # how long a writer waits for another process's INSERT before giving up
COLUMNS = ["seq", "at_utc", "user_name", "role", "action", "subject", "detail"]
_KEY_CHECK_MESSAGE = b"joinedup audit key check v1"
_HEAD_VERSION = 1

_SCHEMA = (
    (f"CREATE TABLE IF NOT EXISTS {TABLE} (seq INTEGER PRIMARY KEY, at_utc TEXT NOT NULL, "
     "user_name TEXT NOT NULL, role TEXT NOT NULL, action TEXT NOT NULL, subject TEXT, detail TEXT, "
     "prev_hash TEXT NOT NULL, row_hash TEXT NOT NULL)"),
    "CREATE TABLE IF NOT EXISTS audit_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # Append-only by the trail itself, whatever code holds a connection (added to older trails when opened).
    (f"CREATE TRIGGER IF NOT EXISTS {TABLE}_no_update BEFORE UPDATE ON {TABLE} "
     "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END"),
    (f"CREATE TRIGGER IF NOT EXISTS {TABLE}_no_delete BEFORE DELETE ON {TABLE} "
     "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END"),
)
# SQL: table names are this module's constants; every value (user, filters, limit) is a ? parameter.


class AuditError(RuntimeError):
    """The audit trail cannot be opened or written (a clear message naming the file, never a key)."""


def audit_path(store_path) -> Path | str:
    """``<store path>.audit.sqlite`` for a store file; ``":memory:"`` for an in-memory store."""
    text = str(store_path)
    if text in (":memory:", ""):
        return ":memory:"
    return Path(text + SUFFIX)


def key_path(store_path) -> Path:
    """The audit key file beside the store: ``data/joinedup.audit.key`` for ``data/joinedup.duckdb``."""
    return Path(str(store_path)).with_suffix(KEY_SUFFIX)


def load_key(store_path=None, key: str | bytes | None = None) -> bytes:
    """The audit key: ``key``, else $JOINEDUP_AUDIT_KEY, else the key file beside the store (created 0600
    at first use); an in-memory store without either gets a random key for this process."""
    if key is None:
        key = os.environ.get(KEY_ENV) or None
    if key is None:
        if store_path is None or str(store_path) in (":memory:", ""):
            return secrets.token_hex(32).encode("ascii")
        path = key_path(store_path)
        try:
            key = read_or_make_key_file(path)
        except OSError as exc:
            raise AuditError(f"the audit key file {path} cannot be read or made: {exc.strerror}") from None
    raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if len(raw) < MIN_KEY_LENGTH:
        raise AuditError(f"the audit key must be at least {MIN_KEY_LENGTH} characters")
    return raw


class AuditLog:
    """One audit trail (a SQLite file and its head file, or in memory for in-memory stores and tests)."""

    _registry: ClassVar[dict[str, AuditLog]] = {}
    _registry_lock = threading.Lock()

    def __init__(self, path: Path | str, *, store_path=None, con=None, key: str | bytes | None = None):
        self.path = path
        self.store_path = store_path
        self._key = load_key(store_path, key)
        self._lock = threading.Lock()  # serialises this process's writers (SQLite serialises processes)
        self._memory = None
        self._memory_head: bytes | None = None
        if path == ":memory:":
            self._memory = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            self._setup(self._memory)
        else:
            self._create_file()
        self._migrate_old_table(con)
        self._adopt()

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def for_store(cls, store_path=None, *, con=None, key: str | bytes | None = None) -> AuditLog:
        """The audit log of the store at ``store_path`` (default: $JOINEDUP_DB, else data/joinedup.duckdb).
        One object per file per process. ``con``: an open connection to that store, used once to migrate an
        old in-store ``audit_log`` table (otherwise the store is opened read-only for that, if it exists).
        ``key``: the audit key when it comes from the app's secrets (see ``load_key``)."""
        if store_path is None:
            from lib.records.store import resolve_path

            store_path = resolve_path(None)
        path = audit_path(store_path)
        name = str(path) if path == ":memory:" else str(Path(path).resolve())
        with cls._registry_lock:
            log = cls._registry.get(name)
            if log is None or (log.path != ":memory:" and not Path(log.path).exists()):
                log = cls(path, store_path=None if path == ":memory:" else Path(str(store_path)), con=con,
                          key=key)
                cls._registry[name] = log
            return log

    @classmethod
    def for_connection(cls, con, *, key: str | bytes | None = None) -> AuditLog:
        """The audit log of the store a DuckDB connection has open (its main database file)."""
        rows = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
                           ).fetchall()
        path = rows[0][0] if rows and rows[0][0] else ":memory:"
        if path != ":memory:":
            from lib.records.versions import logical_path

            path = logical_path(path)  # a version file (P.versions/v000042.duckdb) belongs to the store P
        return cls.for_store(path, con=con, key=key)

    @classmethod
    def memory(cls, key: str | bytes | None = None) -> AuditLog:
        """A private in-memory log (tests)."""
        return cls(":memory:", key=key)

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r})"

    @property
    def head_path(self) -> Path | None:
        return None if self.path == ":memory:" else Path(str(self.path) + HEAD_SUFFIX)

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

    # -- keys, hashes and the head ------------------------------------------------------------------
    def _mac(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).hexdigest()

    def key_check(self) -> str:
        """Identifies the key without revealing it (kept in the trail's audit_meta)."""
        return hmac.new(self._key, _KEY_CHECK_MESSAGE, hashlib.sha256).hexdigest()[:32]

    def _row_mac(self, prev_hash: str, seq: int, at: str, user, role, action, subject, detail) -> str:
        return self._mac(_payload(prev_hash, seq, at, user, role, action, subject, detail))

    def _head_bytes(self, seq: int, row_hash: str, legacy: int) -> bytes:
        body = {"version": _HEAD_VERSION, "seq": int(seq), "row_hash": row_hash, "legacy_rows": int(legacy)}
        body["mac"] = self._mac(json.dumps([body["version"], body["seq"], row_hash, body["legacy_rows"]],
                                           separators=(",", ":")))
        return (json.dumps(body, separators=(",", ":")) + "\n").encode("ascii")

    def _read_head(self) -> bytes | None:
        if self._memory is not None:
            return self._memory_head
        try:
            return self.head_path.read_bytes()
        except FileNotFoundError:
            return None

    def _write_head(self, data: bytes | None) -> None:
        """Replace the head atomically (a temporary file in the same folder, fsync, rename); None removes."""
        if self._memory is not None:
            self._memory_head = data
            return
        head = self.head_path
        if data is None:
            head.unlink(missing_ok=True)
            return
        tmp = head.with_name(f"{head.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, head)
        try:
            folder = os.open(head.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    # -- first open: migration and adoption ---------------------------------------------------------
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
                    origin = "rows present before the migration check"
                elif rows:
                    check = _verify_plain(rows)
                    if not check["ok"]:
                        raise AuditError(f"the old audit trail in {self.store_path} is broken at row "
                                         f"{check['first_bad_seq']}; export it with an older release and keep it "
                                         "as evidence before upgrading")
                    lite.executemany(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
                    copied = lite.execute(f"SELECT seq, at_utc, user_name, role, action, subject, detail, "
                                          f"prev_hash, row_hash FROM {TABLE} ORDER BY seq").fetchall()
                    if not _verify_plain(copied)["ok"] or len(copied) != len(rows):
                        raise AuditError(f"copying the old audit trail from {self.store_path} did not reproduce "
                                         "its chain; nothing was written")
                    origin = f"migrated {len(rows)} rows from {TABLE} in {Path(str(self.store_path)).name}"
                else:
                    origin = "new"
                lite.execute("INSERT INTO audit_meta VALUES ('origin', ?)", [origin])
                lite.execute("COMMIT")
            except BaseException:
                if lite.in_transaction:
                    lite.execute("ROLLBACK")
                raise

    def _adopt(self) -> None:
        """Bind the trail to this key on first use: record the key check and, for rows written before the
        trail was keyed (migrated or older), their count ("legacy rows") and a head that vouches for them.
        Later opens only check that the key is the same."""
        with self._lock, self.connection() as lite:
            lite.execute("BEGIN IMMEDIATE")
            try:
                meta = dict(lite.execute("SELECT name, value FROM audit_meta").fetchall())
                if "key_check" in meta:
                    lite.execute("ROLLBACK")
                    if not hmac.compare_digest(meta["key_check"], self.key_check()):
                        raise AuditError(f"the audit key ({KEY_ENV}, the app's secrets or the key file "
                                         f"{self._key_source()}) is not the one the audit trail {self.path} was "
                                         "started with; use that key (nothing was written)")
                    return
                rows = lite.execute(f"SELECT seq, at_utc, user_name, role, action, subject, detail, prev_hash, "
                                    f"row_hash FROM {TABLE} ORDER BY seq").fetchall()
                check = _verify_plain(rows)
                if not check["ok"]:
                    raise AuditError(f"the audit trail {self.path} is broken at row {check['first_bad_seq']} "
                                     "(before it was keyed); keep a copy as evidence and start a new trail")
                lite.execute("INSERT INTO audit_meta VALUES ('key_check', ?)", [self.key_check()])
                lite.execute("INSERT INTO audit_meta VALUES ('legacy_rows', ?)", [str(len(rows))])
                old_head = self._read_head()
                if rows:
                    self._write_head(self._head_bytes(rows[-1][0], rows[-1][8], len(rows)))
                try:
                    lite.execute("COMMIT")
                except BaseException:
                    self._write_head(old_head)
                    raise
            except BaseException:
                if lite.in_transaction:
                    lite.execute("ROLLBACK")
                raise

    def _key_source(self) -> str:
        return str(key_path(self.store_path)) if self.store_path is not None else "(in memory)"

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
    with cursor(con) as cur:
        found = cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                            [TABLE]).fetchall()[0][0]
        if not found:
            return []
        rows = cur.execute(f"SELECT seq, at_utc, user_name, role, action, subject, detail, prev_hash, row_hash "
                           f"FROM {TABLE} ORDER BY seq").fetchall()
    return [(int(r[0]), _iso(r[1]) if isinstance(r[1], datetime) else str(r[1]), *r[2:]) for r in rows]


def _text(value, *, scrub: bool = False) -> str | None:
    """Printable text cut to MAX_TEXT; with ``scrub``, NHS-number- and postcode-shaped parts are replaced by
    "[withheld]" (lib.records.identifiers.scrub): subjects and details come from file names, record and node
    ids, and must never carry an identifier in clear."""
    if value is None:
        return None
    text = "".join(ch if ch.isprintable() else " " for ch in str(value))
    if scrub:
        from lib.records.identifiers import scrub as scrub_identifiers

        text = scrub_identifiers(text)
    return text[:MAX_TEXT]


def _payload(prev_hash: str, seq: int, at: str, user: str, role: str, action: str, subject, detail) -> str:
    return json.dumps([prev_hash, seq, at, user, role, action, subject, detail], ensure_ascii=True,
                      separators=(",", ":"))


def _row_hash(prev_hash: str, seq: int, at: str, user: str, role: str, action: str, subject, detail) -> str:
    """The plain (unkeyed) SHA-256 of older trails ("legacy rows"); new rows use AuditLog._row_mac."""
    return hashlib.sha256(_payload(prev_hash, seq, at, user, role, action, subject, detail).encode("ascii")
                          ).hexdigest()


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
    subject, detail = _text(subject, scrub=True), _text(detail, scrub=True)
    at = _iso(datetime.now(UTC).replace(tzinfo=None))
    try:
        with log._lock, log.connection() as con:
            con.execute("BEGIN IMMEDIATE")  # the write lock before reading the last row: no two get one seq
            old_head = written = None
            try:
                legacy = int(con.execute("SELECT value FROM audit_meta WHERE name = 'legacy_rows'").fetchone()[0])
                last = con.execute(f"SELECT seq, row_hash FROM {TABLE} ORDER BY seq DESC LIMIT 1").fetchone()
                seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
                digest = log._row_mac(prev, seq, at, user, role, action, subject, detail)
                con.execute(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [seq, at, user, role, action, subject, detail, prev, digest])
                # The head is replaced while this transaction holds the write lock, so heads are written in
                # sequence order; if the commit fails the previous head is put back.
                old_head = log._read_head()
                written = log._head_bytes(seq, digest, legacy)
                log._write_head(written)
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                if written is not None:
                    log._write_head(old_head)
                raise
    except sqlite3.Error as exc:
        raise AuditError(f"could not write to the audit trail {log.path}: {exc}") from exc
    except OSError as exc:
        raise AuditError(f"could not write the audit head {log.head_path}: {exc.strerror}") from exc
    return int(seq)


CLI_ROLE = "(command line)"


def cli_user() -> str:
    """Who ran a command-line job: ``cli:<operating-system user>`` (the uid when there is no name)."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid-{os.getuid()}"


def record_command(store_path, *, action: str, subject=None, detail=None) -> int:
    """Audit a command-line job on the store at ``store_path`` (user ``cli:<os user>``, role "(command line)").
    Exports call this before writing their file, so an export that cannot be audited is not written."""
    return record(AuditLog.for_store(store_path), user=cli_user(), role=CLI_ROLE, action=action,
                  subject=subject, detail=detail)


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


def _verify_plain(rows) -> dict:
    """The plain SHA-256 chain of an older trail."""
    prev = GENESIS
    expected_seq = 1
    for seq, at, user, role, action, subject, detail, prev_hash, row_hash in rows:
        if seq != expected_seq or prev_hash != prev or \
                _row_hash(prev, seq, at, user, role, action, subject, detail) != row_hash:
            return {"ok": False, "rows": len(rows), "first_bad_seq": int(seq)}
        prev, expected_seq = row_hash, seq + 1
    return {"ok": True, "rows": len(rows), "first_bad_seq": None}


def verify(log: AuditLog, store=None) -> dict:
    """Check the keyed chain and the head record, and with ``store`` (an open connection to the record store)
    also ``cross_check``: every upload batch and linkage run in the store has its audit row.

    Returns {"ok", "rows", "first_bad_seq", "problem"}: ``first_bad_seq`` is the first row where the chain
    breaks, or the first missing row when the tail was removed; ``problem`` says what is wrong (None if ok).
    """
    result = _verify_chain(log)
    if store is None or not result["ok"]:
        return result
    checked = cross_check(log, store)
    if not checked["ok"]:
        return {**result, "ok": False, "problem": checked["problem"],
                "unaudited_batches": checked["unaudited_batches"], "unaudited_runs": checked["unaudited_runs"]}
    return result


def _verify_chain(log: AuditLog) -> dict:
    log = _log(log)

    def bad(seq, problem):
        return {"ok": False, "rows": len(rows), "first_bad_seq": None if seq is None else int(seq),
                "problem": problem}

    with log._lock, log.connection() as con:
        con.execute("BEGIN IMMEDIATE")  # no writer between reading the rows and reading the head
        try:
            meta = dict(con.execute("SELECT name, value FROM audit_meta").fetchall())
            rows = con.execute(f"SELECT seq, at_utc, user_name, role, action, subject, detail, prev_hash, "
                               f"row_hash FROM {TABLE} ORDER BY seq").fetchall()
            head_bytes = log._read_head()
        finally:
            con.execute("ROLLBACK")
    if "key_check" not in meta or not hmac.compare_digest(meta["key_check"], log.key_check()):
        return bad(None, "the trail's key check is missing or is not this key's: the trail was replaced, or "
                         "the wrong audit key is configured")
    try:
        legacy = int(meta.get("legacy_rows", "x"))
    except ValueError:
        return bad(None, "the trail's record of its unkeyed rows is missing or altered")
    prev, expected_seq = GENESIS, 1
    for seq, at, user, role, action, subject, detail, prev_hash, row_hash in rows:
        if seq != expected_seq:
            return bad(expected_seq, f"row {expected_seq} is missing")
        fields = (prev, seq, at, user, role, action, subject, detail)
        digest = _row_hash(*fields) if seq <= legacy else log._row_mac(*fields)
        if prev_hash != prev or not hmac.compare_digest(digest, row_hash):
            return bad(seq, f"row {seq} was changed (its keyed hash does not match)")
        prev, expected_seq = row_hash, seq + 1
    last_seq = rows[-1][0] if rows else 0
    if head_bytes is None:
        if rows:
            return bad(last_seq + 1, "the head record (last row and hash, kept outside the database) is missing")
        return {"ok": True, "rows": 0, "first_bad_seq": None, "problem": None}
    try:
        head = json.loads(head_bytes)
        expected = log._head_bytes(head["seq"], head["row_hash"], head["legacy_rows"])
        genuine = hmac.compare_digest(json.loads(expected)["mac"], str(head["mac"]))
    except (ValueError, KeyError, TypeError):
        genuine = False
    if not genuine:
        return bad(None, "the head record is not genuine (altered, or made with another key)")
    if head["legacy_rows"] != legacy:
        return bad(None, "the trail's record of its unkeyed rows does not match its head")
    if head["seq"] > last_seq:
        return bad(last_seq + 1, f"the trail ends at row {last_seq} but its head says {head['seq']}: "
                                 f"{head['seq'] - last_seq} row(s) at the end were removed")
    if head["seq"] < last_seq:
        return bad(head["seq"] + 1, f"the head says the trail ends at row {head['seq']} but it holds {last_seq}: "
                                    "the head was rolled back (or replaced by an older copy)")
    if not hmac.compare_digest(head["row_hash"], rows[-1][8]):
        return bad(last_seq, f"row {last_seq} does not match the head record")
    return {"ok": True, "rows": len(rows), "first_bad_seq": None, "problem": None}


_BATCH_IN_DETAIL = re.compile(r"(?:^|\s)batch (\d+):")
_RUN_IN_DETAIL = re.compile(r"(?:^|\s)run (\d+):")


def cross_check(log: AuditLog, store) -> dict:
    """Compare the trail with the record store (an open DuckDB connection): every upload batch and every
    linkage run the store holds must have its audit row ('upload' naming ``batch N:``, 'link_run' naming
    ``run N:``). Detects a trail deleted with its head, or rolled back to an older copy of itself and its
    head, while the store kept what was done since. ``link_run`` rows written before run ids were recorded
    are accepted by count. The default synthetic dataset (loaded by the app itself, never uploaded) is not
    expected to have an 'upload' row, nor a linkage run made before any extract was uploaded.

    Returns {"ok", "unaudited_batches", "unaudited_runs", "problem"}."""
    from lib.records.default import DEFAULT_FILENAME

    log = _log(log)
    with cursor(store) as cur:
        tables = {r[0] for r in cur.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        batches = [int(r[0]) for r in cur.execute(
            "SELECT batch_id FROM batches WHERE file_name IS DISTINCT FROM ? ORDER BY batch_id",
            [DEFAULT_FILENAME]).fetchall()] if "batches" in tables else []
        # A run made while the store held only the default synthetic dataset (the app's first start, which
        # older releases did not audit) linked no uploaded record: not expected to have a row.
        runs = [int(r[0]) for r in cur.execute(
            "SELECT run_id FROM linkage_runs r WHERE EXISTS (SELECT 1 FROM batches b WHERE b.file_name IS "
            "DISTINCT FROM ? AND (b.ingested_at IS NULL OR r.started_at IS NULL OR b.ingested_at <= r.started_at)) "
            "ORDER BY run_id", [DEFAULT_FILENAME]).fetchall()] if {"linkage_runs", "batches"} <= tables else []
    with log.connection() as con:
        rows = con.execute(f"SELECT action, detail FROM {TABLE} WHERE action IN ('upload', 'link_run')").fetchall()
    audited_batches, audited_runs, runs_without_id = set(), set(), 0
    for action, detail in rows:
        if action == "upload":
            audited_batches.update(int(m) for m in _BATCH_IN_DETAIL.findall(detail or ""))
        else:
            found = _RUN_IN_DETAIL.findall(detail or "")
            audited_runs.update(int(m) for m in found)
            runs_without_id += not found
    missing_batches = [b for b in batches if b not in audited_batches]
    missing_runs = [r for r in runs if r not in audited_runs]
    if len(missing_runs) <= runs_without_id:
        missing_runs = []  # older link_run rows named no run id: accepted by count
    problems = []
    if missing_batches:
        problems.append(f"{len(missing_batches)} upload batch(es) in the store have no audit row (batch "
                        f"{', '.join(map(str, missing_batches[:10]))}{'…' if len(missing_batches) > 10 else ''})")
    if missing_runs:
        problems.append(f"{len(missing_runs)} linkage run(s) in the store have no audit row (run "
                        f"{', '.join(map(str, missing_runs[:10]))}{'…' if len(missing_runs) > 10 else ''})")
    problem = None
    if problems:
        problem = ("; ".join(problems) + ": the trail was deleted, rolled back to an older copy, or an upload "
                   "or linkage run was not audited")
    return {"ok": not problems, "unaudited_batches": missing_batches, "unaudited_runs": missing_runs,
            "problem": problem}


def fingerprint(log: AuditLog) -> tuple:
    """Size and modification time of the trail, its WAL and its head: any write changes it (lets a page reuse
    a ``verify`` result between reruns that wrote nothing, for a short time)."""
    log = _log(log)
    if log.path == ":memory:":
        return (id(log), log._memory.total_changes, log._memory_head)
    out = []
    for path in (Path(log.path), Path(str(log.path) + "-wal"), log.head_path):
        try:
            info = path.stat()
            out.append((info.st_size, info.st_mtime_ns))
        except FileNotFoundError:
            out.append(None)
    return tuple(out)


def to_csv(frame: pd.DataFrame) -> bytes:
    """CSV of audit rows with spreadsheet-formula cells neutralised (a leading ' on = + - @ tab CR)."""
    from lib.access.safety import csv_safe_frame

    return csv_safe_frame(frame).to_csv(index=False).encode("utf-8")
