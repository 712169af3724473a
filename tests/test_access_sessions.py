"""lib.access.sessions: a signed-in session whose connection is gone is signed out once, after the grace."""
from __future__ import annotations

from lib.access import audit
from lib.access.sessions import SESSION_ENDED, SessionRegistry


def test_a_session_gone_past_the_grace_is_signed_out_once():
    log = audit.AuditLog.memory()
    active = {"a", "b"}
    registry = SessionRegistry(grace_seconds=60)
    def record(**kw):
        return audit.record(log, **kw)

    registry.seen("a", user="lead1", role="lead", record=record)
    registry.seen("b", user="board1", role="commissioner", record=record)
    assert registry.sweep(active.__contains__, now=1000) == []
    active.discard("a")  # tab closed
    assert registry.sweep(active.__contains__, now=1010) == []  # within the grace: may reconnect
    assert registry.sweep(active.__contains__, now=1069) == []
    assert registry.sweep(active.__contains__, now=1071) == [("a", "lead1", "lead")]
    assert registry.sweep(active.__contains__, now=2000) == []  # once only
    rows = audit.read(log, action="sign_out")
    assert rows["user_name"].tolist() == ["lead1"] and rows["detail"].tolist() == [SESSION_ENDED]


def test_a_reconnection_within_the_grace_and_a_signed_out_session_record_nothing():
    log = audit.AuditLog.memory()
    active = {"a", "b"}
    registry = SessionRegistry(grace_seconds=60)
    def record(**kw):
        return audit.record(log, **kw)

    registry.seen("a", user="lead1", role="lead", record=record)
    registry.seen("b", user="board1", role="commissioner", record=record)
    active.clear()
    registry.sweep(active.__contains__, now=1000)
    active.add("a")  # a network blip: back again
    registry.sweep(active.__contains__, now=1030)
    registry.forget("b")  # pressed Sign out (its own row is written by the page)
    active.discard("a")
    assert registry.sweep(active.__contains__, now=1080) == []  # the clock restarted when "a" came back
    assert audit.read(log).empty


def test_an_audit_store_that_is_busy_is_retried_at_the_next_sweep():
    log = audit.AuditLog.memory()
    calls = []

    def flaky(**kw):
        calls.append(kw)
        if len(calls) == 1:
            raise audit.AuditError("busy")
        return audit.record(log, **kw)

    registry = SessionRegistry(grace_seconds=0)
    registry.seen("a", user="lead1", role="lead", record=flaky)
    assert registry.sweep(lambda _: False, now=1) == []
    assert registry.sweep(lambda _: False, now=2) == [("a", "lead1", "lead")]
    assert len(audit.read(log, action="sign_out")) == 1
