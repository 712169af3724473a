"""Signed-in sessions of one server process, so that a session which simply disappears (the tab or browser
closed, the laptop shut) still gets a ``sign_out`` row in the audit trail. No Streamlit here.

Streamlit 1.67 has no public "session ended" callback, and a closed tab runs no more script, so the
session cannot sign itself out. What the server can see is whether a session still has its browser
connection (``streamlit.runtime.Runtime.instance().is_active_session(id)``; pages/common.py passes that in).
A signed-in session whose connection has been gone for longer than ``grace_seconds`` (so a network blip
that reconnects does not count) is signed out with the reason "session ended". The check (``sweep``) runs
on every request of any session and from one background thread per server process every
``SWEEP_SECONDS``. Limits: a server that is killed records nothing for its open sessions; the time in the
row is when the sweep noticed, at most about ``grace_seconds + SWEEP_SECONDS`` after the tab closed.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SESSION_ENDED = "session ended"
GRACE_SECONDS = 120.0  # a connection gone this long is a session that ended, not a network blip
SWEEP_SECONDS = 30.0


@dataclass
class _Entry:
    user: str
    role: str
    record: Callable[..., object]  # writes the audit row: record(user=, role=, action=, detail=)
    gone_since: float | None = None
    extra: dict = field(default_factory=dict)


class SessionRegistry:
    """{session id: who} for signed-in sessions; ``sweep`` signs out the ones whose connection is gone."""

    def __init__(self, grace_seconds: float = GRACE_SECONDS):
        self.grace_seconds = float(grace_seconds)
        self._sessions: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def seen(self, session_id: str, *, user: str, role: str, record: Callable[..., object]) -> None:
        """This session is signed in as ``user`` (called on each of its requests)."""
        with self._lock:
            entry = self._sessions.get(session_id)
            if entry is None or (entry.user, entry.role) != (user, role):
                self._sessions[session_id] = _Entry(user, role, record)
            else:
                entry.gone_since = None

    def forget(self, session_id: str) -> None:
        """The session signed out (or timed out) itself: nothing more to record for it."""
        with self._lock:
            self._sessions.pop(session_id, None)

    def __contains__(self, session_id: str) -> bool:
        with self._lock:
            return session_id in self._sessions

    def sweep(self, is_active: Callable[[str], bool], now: float | None = None) -> list[tuple[str, str, str]]:
        """Sign out every registered session whose connection has been gone for ``grace_seconds``; returns
        [(session id, user, role)] signed out now. A failed audit write keeps the entry for the next sweep."""
        now = time.time() if now is None else now
        ended: list[tuple[str, _Entry]] = []
        with self._lock:
            for session_id, entry in list(self._sessions.items()):
                if is_active(session_id):
                    entry.gone_since = None
                    continue
                if entry.gone_since is None:
                    entry.gone_since = now
                if now - entry.gone_since >= self.grace_seconds:
                    ended.append((session_id, self._sessions.pop(session_id)))
        done = []
        for session_id, entry in ended:
            try:
                entry.record(user=entry.user, role=entry.role, action="sign_out", detail=SESSION_ENDED)
            except Exception:  # noqa: BLE001 - the audit store is busy: try again at the next sweep
                with self._lock:
                    self._sessions.setdefault(session_id, entry)
                continue
            done.append((session_id, entry.user, entry.role))
        return done


class Sweeper:
    """One daemon thread per server process calling ``registry.sweep(is_active)`` every ``interval`` s."""

    def __init__(self, registry: SessionRegistry, is_active: Callable[[str], bool], interval: float = SWEEP_SECONDS):
        self.registry, self.is_active, self.interval = registry, is_active, interval
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="joinedup-session-sweeper", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.registry.sweep(self.is_active)
            except Exception:  # noqa: BLE001,S112 - never let the sweeper die; the next request sweeps too
                continue

    def stop(self) -> None:
        self._stop.set()
