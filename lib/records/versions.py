"""Snapshot isolation for the DuckDB store: readers never block a writer, never see half an update.

DuckDB lets one process write a file, or several read it, never both (its concurrency documentation). So
the store is a series of immutable version files, and writing means building the next one beside the
current one (docs/OPERATIONS.md gives the reasoning and the operator's view):

- The logical store path ``P`` (``--db`` / ``$JOINEDUP_DB``, e.g. ``data/joinedup.duckdb``) is a symbolic link
  to the current version file ``P.versions/v000042.duckdb``. A plain-file store (the old layout) is migrated
  by its first write: the next version is a copy of it, and publishing replaces the plain file by the link.
- ``write(P, command)`` is the only way to change a shared store. It takes an exclusive non-blocking lock
  (``flock`` on ``P.lock``, which records pid, command and start time for the refusal message), copies the
  current version to the next number, opens the copy read-write, runs the caller's work, records the version
  (table ``store_versions``: number, written at, by which command, what changed), CHECKPOINTs, closes,
  fsyncs, then publishes by atomically replacing the link (``os.replace`` of a temporary link). On any
  exception the new file is deleted and the current version is untouched; after ``kill -9`` the orphan is
  deleted by the next writer. Old versions are collected, keeping the current and the previous ``KEEP - 1``
  (Linux keeps an unlinked file readable for a reader that still has it open).
- Readers open the current version file read-only (``open_current``): any number of processes, while a
  writer works on the next file. ``current(P)`` is one ``readlink`` (cheap enough for every app rerun).
- Files are private: version, lock and queue files 0600, the versions folder 0700 (issue 14 item 9).
- Review decisions made while a writer holds the lock wait in ``P.queue.jsonl`` (0600, one JSON line each)
  and are applied by the next writer, inside its new version, before its own work (``apply_queue``).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from lib.records import aggregates, tables

KEEP = 3  # published versions kept: the current one and the two before it
EXIT_LOCKED = 75  # EX_TEMPFAIL (sysexits.h): "try again later"; every command that writes returns it when locked
_VERSION_FILE = re.compile(r"^v(\d{6,})\.duckdb$")
QUEUE_SUFFIX = ".queue.jsonl"
DB_ENV = "JOINEDUP_DB"
DEFAULT_DB = Path(__file__).resolve().parents[2] / "data" / "joinedup.duckdb"


def resolve_path(path: str | os.PathLike | None = None, default: str | os.PathLike = DEFAULT_DB) -> Path | str:
    """The database path: the argument, else $JOINEDUP_DB, else ``default`` (data/joinedup.duckdb)."""
    if path is None:
        path = os.environ.get(DB_ENV) or default
    return path if str(path) == ":memory:" else Path(path)


class StoreLocked(RuntimeError):
    """Another writer holds the store's lock. ``str()`` is the one-line message for the user."""

    def __init__(self, path: Path, holder: dict):
        self.path, self.holder = Path(path), holder
        super().__init__(describe_lock(path, holder))


@dataclass(frozen=True)
class Version:
    number: int  # 0: a plain-file store not yet versioned
    file: Path  # the file a reader opens

    @property
    def token(self) -> str:
        return f"{self.number}@{self.file.name}"


def versions_dir(path: str | os.PathLike) -> Path:
    return Path(str(path) + ".versions")


def lock_path(path: str | os.PathLike) -> Path:
    return Path(str(path) + ".lock")


def queue_path(path: str | os.PathLike) -> Path:
    return Path(str(path) + QUEUE_SUFFIX)


def _number(name: str) -> int | None:
    match = _VERSION_FILE.match(name)
    return int(match.group(1)) if match else None


def version_file(path: str | os.PathLike, number: int) -> Path:
    return versions_dir(path) / f"v{number:06d}.duckdb"


def logical_path(file: str | os.PathLike) -> Path:
    """The store a version file belongs to (P for P.versions/v000042.duckdb); any other path unchanged. For
    code that finds its files from an open connection (key, audit trail, truth file live beside P)."""
    file = Path(file)
    if _number(file.name) is not None and file.parent.name.endswith(".versions"):
        return file.parent.with_name(file.parent.name.removesuffix(".versions"))
    return file


def current(path: str | os.PathLike) -> Version | None:
    """The published version (one readlink): None if no store exists yet."""
    path = Path(path)
    try:
        target = os.readlink(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # a plain file: the old single-file layout
            return Version(0, path)
        raise
    number = _number(Path(target).name)
    if number is None:
        raise RuntimeError(f"the store {path} links to {target}, which is not one of its versions")
    return Version(number, (path.parent / target) if not os.path.isabs(target) else Path(target))


def open_current(path: str | os.PathLike) -> tuple[duckdb.DuckDBPyConnection, Version] | None:
    """A read-only connection to the current version, and which version it is (None: no store yet).
    The link is resolved once, so the connection stays on that version whatever is published later."""
    for _ in range(5):
        version = current(path)
        if version is None:
            return None
        try:
            con = duckdb.connect(str(version.file), read_only=True)
        except duckdb.IOException:
            if version.number and not version.file.exists():  # collected between readlink and open: retry
                continue
            raise
        try:
            tables.check(con, f"the store {path}")  # a store written by a newer release is refused
        except BaseException:
            con.close()
            raise
        return con, version
    raise RuntimeError(f"the store {path} kept changing while being opened")


# -- the lock ---------------------------------------------------------------------------------------------

def read_lock(path: str | os.PathLike) -> dict:
    """What the lock file says about its holder (may be stale if no one holds the lock)."""
    try:
        return json.loads(lock_path(path).read_text() or "{}")
    except (OSError, ValueError):
        return {}


def describe_lock(path, holder: dict) -> str:
    who = holder.get("command") or "another process"
    pid = f" (pid {holder['pid']}" + (f" on {holder['host']}" if holder.get("host") else "") + ")" \
        if holder.get("pid") else ""
    since = f" since {holder['started']}" if holder.get("started") else ""
    return (f"the store {path} is being written by `{who}`{pid}{since}; one writer at a time: "
            f"try again when it finishes (exit code {EXIT_LOCKED})")


def is_locked(path: str | os.PathLike) -> dict | None:
    """The holder's details if a writer seems to hold the lock now, else None. A probe that takes nothing (so
    it can never make a real writer fail): the holder writes its details into the lock file when it takes the
    lock and empties it on release; details left by a killed writer name a process that no longer exists."""
    holder = read_lock(path)
    if not holder.get("pid"):
        return None
    if holder.get("host") not in (None, socket.gethostname()):
        return holder  # another machine (a shared mount): cannot check, believe it
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # exists, another user's
    return holder


@contextlib.contextmanager
def locked(path: str | os.PathLike, command: str, wait: float = 0.0):
    """Hold the store's exclusive writer lock; StoreLocked at once (or after ``wait`` seconds) if taken."""
    path = Path(path)
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreLocked(path, read_lock(path) or {}) from None
                time.sleep(0.1)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                  "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        try:
            yield holder
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# -- writing a new version -----------------------------------------------------------------------------------

@dataclass
class Write:
    """What a writer's block gets: the read-write connection to the next version, and a note of what changed."""
    con: duckdb.DuckDBPyConnection
    number: int
    store_path: Path
    change: str = ""
    changes: list = field(default_factory=list)

    def note(self, text: str) -> None:
        self.changes.append(text)


def _fsync(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(file: Path) -> None:
    for f in (file, Path(str(file) + ".wal"), Path(str(file) + ".tmp")):
        with contextlib.suppress(FileNotFoundError):
            f.unlink()


def _clean(path: Path, keep_from: int, current_number: int) -> list[str]:
    """Delete orphans (files of versions never published: a crashed writer's) and versions older than the
    kept ones. Called with the lock held."""
    removed = []
    folder = versions_dir(path)
    if not folder.exists():
        return removed
    for entry in folder.iterdir():
        name = entry.name.removesuffix(".wal").removesuffix(".tmp")
        number = _number(name)
        if number is None:
            continue
        if number > current_number or number < keep_from:
            _remove(folder / name)
            removed.append(name)
    for entry in path.parent.glob(path.name + ".publish-*"):  # a temporary link left by a crash
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()
            removed.append(entry.name)
    return sorted(set(removed))


def _prepare_source(version: Version) -> None:
    """A plain-file store with a WAL (left by a crash of an old-layout writer) is checkpointed first, so a
    file copy holds everything."""
    wal = Path(str(version.file) + ".wal")
    if version.number == 0 and wal.exists():
        try:
            con = duckdb.connect(str(version.file))
        except duckdb.IOException as exc:
            raise tables.StoreError(f"the store {version.file} is open for writing in a process of the old layout; "
                                    "stop "
                             "it once so the store can move to versioned files") from exc
        con.execute("CHECKPOINT")
        con.close()


@contextlib.contextmanager
def write(path: str | os.PathLike, command: str, *, wait: float = 0.0, apply_pending: bool = True):
    """Build and publish the next version of the store at ``path``; yields a ``Write``.

    ``command`` names the writer in the lock file, in refusal messages and in ``store_versions``. Set
    ``w.change`` (or call ``w.note``) to say what changed ("2 files, 1,204 rows stored"); the app shows it.
    """
    path = Path(resolve_path(path))
    if str(path) == ":memory:":
        raise ValueError("an in-memory store has no versions: pass its connection to the lib functions instead")
    with locked(path, command, wait=wait):
        folder = versions_dir(path)
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
        base = current(path)
        if base is None and any(_number(e.name) for e in folder.iterdir()):
            raise tables.StoreError(f"the store link {path} is missing but {folder} holds versions: "
                                    "restore the link to "
                             f"the newest one (docs/OPERATIONS.md, after a crash) or move the folder away")
        _clean(path, keep_from=0, current_number=base.number if base else 0)  # orphans of a crashed writer
        number = (base.number if base else 0) + 1
        target = version_file(path, number)
        _remove(target)
        if base is not None:
            _prepare_source(base)
            shutil.copyfile(base.file, target)
        published = False
        con = None
        try:
            if base is not None:
                os.chmod(target, 0o600)
            old_umask = os.umask(0o077)
            try:
                con = duckdb.connect(str(target))
            finally:
                os.umask(old_umask)
            os.chmod(target, 0o600)
            tables.ensure_schema(con, f"the store {path}")
            w = Write(con=con, number=number, store_path=path)
            if apply_pending:
                applied = apply_queue(w)
                if applied:
                    w.note(f"{applied} queued review decision{'s' if applied != 1 else ''} applied")
            yield w
            change = "; ".join([c for c in [w.change, *w.changes] if c])
            with contextlib.closing(con.cursor()) as cur:
                cur.execute("INSERT INTO store_versions VALUES (?, ?, ?, ?)",
                            [number, datetime.now(UTC).replace(tzinfo=None), command, change[:500]])
                cur.execute("CHECKPOINT")
            con.close()
            con = None
            _fsync(target)
            link = path.parent / f"{path.name}.publish-{os.getpid()}"
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            os.symlink(os.path.relpath(target, path.parent), link)
            os.replace(link, path)  # atomic: a reader sees the old version or the new one, never neither
            _fsync(path.parent, directory=True)
            published = True
            if apply_pending:
                _truncate_queue(path, w)
        finally:
            if con is not None:
                with contextlib.suppress(Exception):
                    con.close()
            if not published:
                _remove(target)
        _clean(path, keep_from=number - KEEP + 1, current_number=number)


def history(con: duckdb.DuckDBPyConnection, limit: int = 20) -> list[dict]:
    """The store's recent versions, newest first (empty for a store never written through ``write``)."""
    with contextlib.closing(con.cursor()) as cur:
        if "store_versions" not in tables.existing(cur):
            return []
        rows = cur.execute("SELECT version, written_at, command, change FROM store_versions "
                           "ORDER BY version DESC LIMIT ?", [limit]).fetchall()
    return [{"version": r[0], "written_at": r[1], "command": r[2], "change": r[3]} for r in rows]


def disk_usage(path: str | os.PathLike) -> dict:
    """Bytes used by each kept version file (and in total)."""
    folder = versions_dir(path)
    files = {e.name: e.stat().st_size for e in folder.iterdir()} if folder.exists() else {}
    return {"files": files, "total_bytes": sum(files.values())}


# -- review decisions queued while another writer holds the lock --------------------------------------------

def queue_decision(path: str | os.PathLike, decision: dict) -> None:
    """Append one review decision (record_key_l, record_key_r, decision, reviewer, decided_at) to the queue.
    Appends are single ``write`` calls of one line, under the queue's own lock."""
    file = queue_path(path)
    line = (json.dumps(decision, default=str, sort_keys=True) + "\n").encode()
    fd = os.open(file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def pending(path: str | os.PathLike) -> list[dict]:
    try:
        text = queue_path(path).read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def apply_queue(w: Write) -> int:
    """Insert queued decisions into the version being written (skipping any already there: a crash between
    publishing and emptying the queue repeats nothing). Returns how many were new."""
    queued = pending(w.store_path)
    w._queued = len(queued)  # what _truncate_queue may drop after publishing
    if not queued:
        return 0
    tables.create(w.con, tables.LINKAGE_TABLES)
    added, keys = 0, []
    with contextlib.closing(w.con.cursor()) as cur:
        cur.execute("BEGIN TRANSACTION")  # the decisions and the aggregates of their records' areas, together
        try:
            was_current = aggregates.current(cur)
            added, keys = _insert_queued(cur, queued)
            if keys:
                aggregates.refresh(cur, record_keys=keys, was_current=was_current)
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")
    return added


def _insert_queued(cur, queued: list[dict]) -> tuple[int, list[str]]:
    """Insert the queued decisions not yet stored; returns how many, and the record keys they name."""
    added, keys = 0, []
    for d in queued:
        args = [d["record_key_l"], d["record_key_r"], d["decision"], d.get("reviewer"), d.get("decided_at")]
        exists = cur.execute("SELECT count(*) FROM review_decisions WHERE record_key_l = ? AND record_key_r = ? "
                             "AND decision = ? AND reviewer IS NOT DISTINCT FROM ? "
                             "AND decided_at IS NOT DISTINCT FROM CAST(? AS TIMESTAMP)", args).fetchall()[0][0]
        if not exists:
            cur.execute("INSERT INTO review_decisions VALUES (?, ?, ?, ?, CAST(? AS TIMESTAMP))", args).fetchall()
            added += 1
            keys += [d["record_key_l"], d["record_key_r"]]
    return added, keys


def _truncate_queue(path: Path, w: Write) -> None:
    """After publishing: drop the lines that were applied, keeping any appended meanwhile."""
    done = getattr(w, "_queued", 0)
    if not done:
        return
    file = queue_path(path)
    fd = os.open(file, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(os.dup(fd), "r") as reader:
            lines = [line for line in reader.read().splitlines() if line.strip()]
        rest = "".join(line + "\n" for line in lines[done:])
        os.ftruncate(fd, 0)
        os.pwrite(fd, rest.encode(), 0)
        os.fsync(fd)
    finally:
        os.close(fd)
