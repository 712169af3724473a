"""Local accounts for a standalone install: a JSON file of user name, argon2id hash and role.

The file (``$JOINEDUP_ACCOUNTS``, else ``accounts.json`` beside the store) is written only by
``python -m lib.cli accounts add|remove|list`` (the password is read from the terminal or stdin, never
from the command line) and is kept mode 0600. Hashes are argon2id (argon2-cffi, its RFC 9106 "low
memory" defaults: 64 MiB, 3 passes), salted per user; a hash made with weaker parameters is upgraded at
the next successful sign-in.

``authenticate`` gives one answer for every failure (unknown user, wrong password, disabled account,
locked out), and spends the same argon2 work on an unknown user as on a known one. ``Throttle`` counts
failures per user name and per session: after ``MAX_FAILURES`` failures within ``WINDOW`` seconds, that
user name (and that session) cannot sign in for ``LOCKOUT`` seconds, whatever the password.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from lib.access.roles import ROLES, check_role

ENV = "JOINEDUP_ACCOUNTS"
FILE_NAME = "accounts.json"
MIN_PASSWORD = 12
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MAX_FAILURES = 5
WINDOW = 15 * 60
LOCKOUT = 15 * 60
FAILED_MESSAGE = ("Sign-in failed. Check the user name and password and try again; after repeated failures "
                  "sign-in is paused for a while.")

_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("not a real password: equalises the work for unknown users")
_FILE_LOCK = threading.Lock()


class AccountError(ValueError):
    """A bad user name, password or role given to add/remove (for the command line)."""


@dataclass(frozen=True)
class Account:
    username: str
    role: str


def default_path(db_path=None) -> Path:
    """$JOINEDUP_ACCOUNTS, else accounts.json beside the store."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    from lib.records import store

    db = store.resolve_path(db_path)
    return Path(db).with_name(FILE_NAME) if str(db) != ":memory:" else Path(FILE_NAME)


def load(path) -> dict[str, dict]:
    """{username: {"hash", "role", "disabled"}}; {} if the file does not exist."""
    path = Path(path)
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    users = data.get("users", {}) if isinstance(data, dict) else {}
    return {str(k): v for k, v in users.items() if isinstance(v, dict) and v.get("hash") and v.get("role")}


def configured(path) -> bool:
    """True when the accounts file exists and holds at least one user."""
    try:
        return bool(load(path))
    except (OSError, ValueError):
        return True  # an unreadable accounts file must not silently switch sign-in off


def _save(path: Path, users: dict[str, dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".accounts-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"users": users}, handle, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def add_user(path, username: str, password: str, role: str, *, replace: bool = False) -> Account:
    if not USERNAME.match(username or ""):
        raise AccountError("user names are 1-64 letters, digits, and . _ @ - (starting with a letter or digit)")
    try:
        check_role(role)
    except ValueError as exc:
        raise AccountError(str(exc)) from None
    if len(password or "") < MIN_PASSWORD:
        raise AccountError(f"passwords must be at least {MIN_PASSWORD} characters")
    path = Path(path)
    with _FILE_LOCK:
        users = load(path)
        if username in users and not replace:
            raise AccountError(f"user {username!r} already exists (use --replace to set a new password or role)")
        users[username] = {"hash": _HASHER.hash(password), "role": role, "disabled": False}
        _save(path, users)
    return Account(username, role)


def remove_user(path, username: str) -> bool:
    path = Path(path)
    with _FILE_LOCK:
        users = load(path)
        if username not in users:
            return False
        del users[username]
        _save(path, users)
    return True


def list_users(path) -> list[dict]:
    return [{"username": u, "role": v["role"], "disabled": bool(v.get("disabled"))}
            for u, v in sorted(load(path).items())]


class Throttle:
    """Failed sign-ins per user name and per session, in this server process. ``clock`` is injectable."""

    def __init__(self, max_failures: int = MAX_FAILURES, window: float = WINDOW, lockout: float = LOCKOUT,
                 clock=time.monotonic):
        self.max_failures, self.window, self.lockout, self.clock = max_failures, window, lockout, clock
        self._failures: dict[str, list[float]] = {}
        self._locked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _keys(username: str, session: str | None) -> list[str]:
        keys = ["user:" + (username or "").strip().lower()]
        if session:
            keys.append("session:" + session)
        return keys

    def locked(self, username: str, session: str | None = None) -> bool:
        now = self.clock()
        with self._lock:
            return any(self._locked_until.get(k, 0.0) > now for k in self._keys(username, session))

    def failure(self, username: str, session: str | None = None) -> None:
        now = self.clock()
        with self._lock:
            for key in self._keys(username, session):
                recent = [t for t in self._failures.get(key, []) if now - t < self.window] + [now]
                self._failures[key] = recent
                if len(recent) >= self.max_failures:
                    self._locked_until[key] = now + self.lockout
                    self._failures[key] = []

    def success(self, username: str, session: str | None = None) -> None:
        with self._lock:
            for key in self._keys(username, session):
                self._failures.pop(key, None)


UNKNOWN_USER = "(unknown user name)"


def audit_name(path, typed: str) -> str:
    """What the audit trail records for a failed sign-in: the user name when it is a known account, else
    ``UNKNOWN_USER`` and nothing of what was typed (issue 14, item 8: a password typed into the user-name
    box must not be stored). No hash and no length either: a password's hash could be guessed offline by
    whoever holds the key, and its length narrows a guess."""
    name = str(typed or "").strip()
    try:
        known = name in load(path)
    except (OSError, ValueError):
        known = False
    return name if known and USERNAME.match(name) else UNKNOWN_USER


def authenticate(path, username: str, password: str, throttle: Throttle, session: str | None = None
                 ) -> Account | None:
    """The account if the user name and password are right and neither it nor the session is locked out;
    else None (one answer for every failure: show FAILED_MESSAGE)."""
    username = (username or "").strip()
    password = password or ""
    try:
        users = load(path)
    except (OSError, ValueError):
        users = {}
    entry = users.get(username)
    stored = entry["hash"] if entry else _DUMMY_HASH
    try:
        ok = _HASHER.verify(stored, password) and entry is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if throttle.locked(username, session):
        return None  # locked: refused whatever the password (and not counted again)
    if not ok or entry.get("disabled") or entry.get("role") not in ROLES:
        throttle.failure(username, session)
        return None
    throttle.success(username, session)
    if _HASHER.check_needs_rehash(stored):
        try:
            with _FILE_LOCK:
                current = load(path)
                if username in current:
                    current[username]["hash"] = _HASHER.hash(password)
                    _save(Path(path), current)
        except OSError:
            pass
    return Account(username, entry["role"])
