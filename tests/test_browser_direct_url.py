"""In real Chromium: a page's own URL opened first on a fresh server still goes through app.py.

Streamlit runs a script of the pages/ folder directly for such a first request (its old folder mode),
which would skip sign-in, the demo banner and the per-role navigation; pages.common turns that off.
"""
from __future__ import annotations

import os

import pytest

from lib.access import accounts
from tests.browser import browser_page, chromium_available, running_app, wait_idle
from tests.fixtures_linkage import copy_store, synthetic_linked_store

pytestmark = pytest.mark.skipif(not chromium_available() and not os.environ.get("JOINEDUP_REQUIRE_BROWSER"),
                                reason="Debian chromium not installed (apt-get install -y chromium)")


def test_first_request_for_a_child_level_page_asks_for_sign_in(tmp_path_factory, tmp_path):
    db = copy_store(synthetic_linked_store(tmp_path_factory), tmp_path)
    users = tmp_path / "accounts.json"
    accounts.add_user(users, "lead1", "a long enough passphrase 1", "lead")
    with running_app(env={"JOINEDUP_DB": str(db), "JOINEDUP_ACCOUNTS": str(users)}) as base, \
            browser_page() as page:
        page.goto(base + "/review")  # the very first request this server gets
        page.get_by_role("button", name="Sign in").wait_for(timeout=60_000)
        wait_idle(page)
        body = page.inner_text("body")
        assert "Review uncertain links" not in body
        assert "Pairs awaiting review" not in body
        assert "Sign in" in body
        nav = page.eval_on_selector_all('[data-testid="stSidebarNavLink"]', "els => els.map(e => e.innerText)")
        assert not any(name.strip() in {"common", "exports", "review", "audit"} for name in nav), nav


def test_first_request_in_demo_mode_shows_the_synthetic_banner(tmp_path_factory, tmp_path):
    db = copy_store(synthetic_linked_store(tmp_path_factory), tmp_path)
    with running_app(env={"JOINEDUP_DB": str(db), "JOINEDUP_SYNTHETIC_STORE": "1"}) as base, \
            browser_page() as page:
        page.goto(base + "/review")
        page.get_by_text("Review uncertain links").wait_for(timeout=60_000)
        wait_idle(page)
        assert "Synthetic demo data" in page.inner_text("body")
        nav = page.eval_on_selector_all('[data-testid="stSidebarNavLink"]', "els => els.map(e => e.innerText)")
        assert "Review links" in " ".join(nav) and not any(n.strip() == "common" for n in nav), nav
