"""In real Chromium: a signed-in tab that is simply closed gets a sign_out row ("session ended") in the audit
trail (issue 14, item 7), recorded by the server when the session's connection has been gone for the grace
period (lib.access.sessions)."""
from __future__ import annotations

import os
import time

import pytest

from lib.access import accounts, audit
from lib.records import store
from tests.browser import browser_page, chromium_available, running_app, wait_idle

pytestmark = pytest.mark.skipif(not chromium_available() and not os.environ.get("JOINEDUP_REQUIRE_BROWSER"),
                                reason="Debian chromium not installed (apt-get install -y chromium)")
PASSWORD = "a long enough passphrase 1"


def test_closing_a_signed_in_tab_is_recorded_as_a_sign_out(tmp_path):
    db = tmp_path / "session.duckdb"
    store.connect(db).close()
    users = tmp_path / "accounts.json"
    accounts.add_user(users, "lead1", PASSWORD, "lead")
    env = {"JOINEDUP_DB": str(db), "JOINEDUP_ACCOUNTS": str(users), "JOINEDUP_SESSION_GRACE_SECONDS": "2"}
    with running_app(env=env) as base, browser_page() as page:
        page.goto(base)
        page.get_by_role("textbox", name="User name").fill("lead1")
        page.get_by_role("textbox", name="Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text("Signed in as").wait_for(timeout=60_000)
        wait_idle(page)
        log = audit.AuditLog.for_store(db)
        assert audit.read(log, action="sign_in")["user_name"].tolist() == ["lead1"]
        assert audit.read(log, action="sign_out").empty  # still open: nothing recorded yet
        page.close()  # the tab is closed: no sign-out button pressed, no script runs again
        deadline = time.time() + 45
        rows = audit.read(log, action="sign_out")
        while rows.empty and time.time() < deadline:
            time.sleep(0.5)
            rows = audit.read(log, action="sign_out")
    assert rows["user_name"].tolist() == ["lead1"] and rows["role"].tolist() == ["lead"]
    assert rows["detail"].tolist() == ["session ended"]
    assert audit.verify(log)["ok"]
