"""The audit trail page renders only what lib.views.audit builds: its rows equal `view audit`'s JSON for the
same filters, and the check's verdict is the view's sentence."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from lib import views
from lib.access import audit
from lib.records import store
from tests.view_parity import (
    assert_parity,
    cli_view,
    normalised,
    rendered_tables,
    run_page,
)


@pytest.fixture()
def trail(tmp_path):
    """A store with a few audit rows of different actions, users and subjects."""
    db = tmp_path / "audited.duckdb"
    store.connect(db).close()
    log = audit.AuditLog.for_store(db)
    for i, (action, user, subject) in enumerate([("export", "ana", "E06000001"), ("view_child", "lee", "child 7"),
                                                 ("export", "lee", "=cmd|' /C calc'!A0"), ("upload", "ana", "x.csv")]):
        audit.record(log, user=user, role="lead", action=action, subject=subject, detail=f"row {i}")
    return db


def test_the_audit_page_rows_equal_the_view_with_default_filters(trail, monkeypatch):
    at = run_page(monkeypatch, trail, "audit", "lead")  # the page audits its own view first (view_audit)
    data = cli_view(trail, "audit", "lead")  # the JSON on stdout writes no row: the same rows
    (rows,) = rendered_tables(at)
    assert normalised(rows) == {"columns": data["tables"]["rows"]["columns"], "rows": data["tables"]["rows"]["rows"]}
    assert len(data["tables"]["rows"]["rows"]) == 5  # four rows and the page's own view_audit
    assert at.success[0].value == data["sentences"][1] == "Chain intact: 5 rows, none altered or removed."
    assert data["sentences"][2] in [c.value for c in at.caption]


@pytest.mark.parametrize("params,state,expected", [
    ({"action": "export"}, {"audit_action": "export"}, 2),
    ({"user": "lee"}, {"audit_user": "lee"}, 2),
    ({"text": "calc", "action": "export"}, {"audit_text": "calc", "audit_action": "export"}, 1),
])
def test_the_audit_page_rows_equal_the_view_with_filters(trail, monkeypatch, params, state, expected):
    _, data = assert_parity(monkeypatch, trail, "audit", "lead", params=params, query={}, state=state)
    assert len(data["tables"]["rows"]["rows"]) == expected


def test_the_period_filters_rows_and_bad_dates_are_clear_errors(trail):
    future = (date.today() + timedelta(days=5)).isoformat()
    assert views.build("audit", trail, {"since": future, "until": future}, "lead").tables["rows"].frame.empty
    assert len(views.build("audit", trail, {"since": "any", "until": "any"}, "lead").tables["rows"].frame) == 4
    with pytest.raises(ValueError, match="since='yesterday': expected a date"):
        views.build("audit", trail, {"since": "yesterday"}, "lead")
    with pytest.raises(ValueError, match="is after until"):
        views.build("audit", trail, {"since": "2026-02-01", "until": "2026-01-01"}, "lead")
    with pytest.raises(ValueError, match="cannot open page 'audit'"):
        views.build("audit", trail, {}, "analyst")


def test_a_broken_chain_is_the_view_s_verdict(trail):
    import sqlite3

    con = sqlite3.connect(str(audit.AuditLog.for_store(trail).path), isolation_level=None)
    try:  # changed outside the application, by someone with write access who drops the append-only triggers
        con.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        con.execute(f"UPDATE {audit.TABLE} SET detail = 'altered' WHERE seq = 2")
    finally:
        con.close()
    data = views.build("audit", trail, {}, "lead")
    assert data.extra["chain_ok"] is False and data.sentences[1].startswith("The audit trail fails its check")
