"""In real Chromium: the app keeps its offline promise and never shows a user a traceback.

- No request leaves the machine: every page, opened as each role in the synthetic demo, loads only from the app's
  own address (no usage statistics, fonts, map tiles or scripts from elsewhere; .streamlit/config.toml).
- A page that fails shows a reference and a plain sentence, never Python's traceback or a server path; the
  error and its reference go to the server log (app.py, pages.common.show_error).
"""
from __future__ import annotations

import os
import re
from urllib.parse import urlparse

import duckdb
import pytest

from tests.browser import (
    LEAD_PAGES,
    browser_page,
    chromium_available,
    nav_selector,
    open_page,
    running_app,
    wait_idle,
    wait_rendered,
)
from tests.fixtures_linkage import copy_store, synthetic_linked_store

pytestmark = pytest.mark.skipif(not chromium_available() and not os.environ.get("JOINEDUP_REQUIRE_BROWSER"),
                                reason="Debian chromium not installed (apt-get install -y chromium)")

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _record_outside_requests(page) -> list[str]:
    outside: list[str] = []

    def seen(request) -> None:
        url = request.url
        if url.startswith(("data:", "blob:", "about:")):
            return
        if urlparse(url).hostname not in LOCAL_HOSTS:
            outside.append(url)

    page.on("request", seen)
    return outside


def _switch_role(page, label: str) -> None:
    page.get_by_role("combobox", name="View as (synthetic demo)").click()
    page.get_by_role("option", name=label).click()
    wait_idle(page)


def test_no_request_leaves_the_machine_on_any_page_in_any_role(tmp_path_factory, tmp_path):
    db = copy_store(synthetic_linked_store(tmp_path_factory), tmp_path)
    with running_app(env={"JOINEDUP_DB": str(db), "JOINEDUP_SYNTHETIC_STORE": "1"}) as base, \
            browser_page() as page:
        outside = _record_outside_requests(page)
        page.goto(base)
        wait_rendered(page, timeout_ms=120_000)
        for path in LEAD_PAGES[1:]:  # the safeguarding lead opens every page but Data
            open_page(page, path)
        _switch_role(page, "Analyst")
        open_page(page, "data")
        _switch_role(page, "Commissioner / board")
        open_page(page, "compare")
        page.wait_for_timeout(1500)  # late requests (telemetry is sent after the first render)
        assert outside == [], f"requests left the machine: {outside[:10]}"
        toolbar = page.inner_text("header") if page.locator("header").count() else ""
        assert "Deploy" not in toolbar


def test_a_failing_page_shows_a_reference_not_a_traceback(tmp_path_factory, tmp_path):
    """A store damaged outside the app (a column renamed by hand) makes the Compare page's query fail: the lead's
    (the demo's role) linked records per area read ``is_anonymous`` from the records. (``encounter_date`` was the
    column until Compare read the lead's resident children from the stored measures, which no longer touch it.)"""
    db = copy_store(synthetic_linked_store(tmp_path_factory), tmp_path)
    con = duckdb.connect(str(db))
    con.execute("ALTER TABLE encounters RENAME COLUMN is_anonymous TO anonymous_flag")
    con.close()
    log = tmp_path / "server.log"
    users = {"STREAMLIT_CLIENT_SHOW_ERROR_DETAILS": "none"}  # what users get (.streamlit/config.toml)
    with running_app(env={"JOINEDUP_DB": str(db), "JOINEDUP_SYNTHETIC_STORE": "1", **users}, log_path=log) as base, \
            browser_page() as page:
        page.goto(base)
        wait_idle(page, timeout_ms=120_000)
        page.locator(nav_selector("compare")).first.click()
        page.wait_for_timeout(1000)
        wait_idle(page, timeout_ms=120_000)
        page.get_by_text("Something went wrong").wait_for(timeout=60_000)
        body = page.inner_text("body")
        assert "Traceback" not in body and "File \"" not in body and str(tmp_path) not in body, body[:2000]
        assert not re.search(r"/(usr|home|work|tmp|root)/\S+\.py", body), body[:2000]
        assert page.locator('[data-testid="stException"]').count() == 0
        match = re.search(r"reference ([0-9A-F]{8})", body)
        assert match, body[:2000]
    server_log = log.read_text()
    assert f"error {match.group(1)}" in server_log and "Traceback" in server_log  # the details stay on the server


def test_the_server_settings_users_get_hide_details_and_send_nothing_out():
    import tomllib

    from tests.browser import ROOT

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] == "none" and config["client"]["toolbarMode"] == "viewer"
    assert config["browser"]["gatherUsageStats"] is False and config["client"]["disableDataExport"] is True
