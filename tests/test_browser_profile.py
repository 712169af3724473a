"""In real Chromium: the area chosen once (?area=) survives a shared link and navigation between pages, and the
Area profile draws for a commissioner."""
from __future__ import annotations

import os
import re

import pytest

from tests.browser import browser_page, chromium_available, running_app, wait_idle
from tests.fixtures_linkage import copy_store, synthetic_linked_store

pytestmark = pytest.mark.skipif(not chromium_available() and not os.environ.get("JOINEDUP_REQUIRE_BROWSER"),
                                reason="Debian chromium not installed (apt-get install -y chromium)")

TITLES = {"profile": "Area profile", "divergence": "Where counts diverge", "compare": "Compare areas",
          "about": "About and methods"}
NAVIGATED = """(title) => { const h = document.querySelector('[data-testid="stMain"] h1');
    return !!h && h.innerText.trim() === title
        && !document.querySelector('[data-testid="stStatusWidget"]')
        && !document.querySelector('[data-stale="true"]'); }"""


LABELLED = """(label) => [...document.querySelectorAll('[data-testid="stMain"] label')]
    .some(l => l.innerText.trim() === label)"""


def _go(page, url_path: str, label: str | None = None) -> None:
    """Navigate in the same session through the sidebar, and wait for the page's finished run (and, where
    given, for its widget labelled ``label``: the title is drawn before a long first count finishes)."""
    page.locator(f'[data-testid="stSidebarNavLink"][href$="/{url_path}"]').first.click()
    page.wait_for_function(NAVIGATED, arg=TITLES[url_path], timeout=180_000)
    if label:
        page.wait_for_function(LABELLED, arg=label, timeout=240_000)
    wait_idle(page, 180_000)


def _select_value(page, label: str) -> str:
    """What the selectbox (or multiselect) labelled ``label`` shows: its text and its input's value."""
    return page.evaluate("""(label) => {
        const boxes = [...document.querySelectorAll('[data-testid="stSelectbox"], [data-testid="stMultiSelect"]')];
        const box = boxes.find(b => (b.querySelector('label') || {}).innerText?.trim() === label);
        if (!box) return '';
        const input = box.querySelector('input');
        return box.innerText + ' ' + (input ? input.value : ''); }""", label)


def _area_in_url(page) -> str | None:
    found = re.search(r"[?&]area=([^&]+)", page.url)
    return found.group(1) if found else None


def test_area_survives_a_shared_link_and_navigation(tmp_path_factory, tmp_path):
    db = copy_store(synthetic_linked_store(tmp_path_factory), tmp_path)
    env = {"JOINEDUP_DB": str(db), "JOINEDUP_SYNTHETIC_STORE": "1", "JOINEDUP_DEMO_ROLE": "lead"}
    with running_app(env=env, timeout=120) as base, browser_page() as page:
        page.goto(base + "/profile?area=E08000035")  # a shared link, first request of a new session
        page.wait_for_function(NAVIGATED, arg="Area profile", timeout=180_000)
        wait_idle(page, 180_000)
        body = page.inner_text('[data-testid="stMain"]')
        assert "Leeds (E08000035)" in body
        assert "DfE statistical neighbours" in body
        assert "than England and Wales" in body
        assert _area_in_url(page) == "E08000035"

        _go(page, "divergence", "Area")
        assert "Leeds" in _select_value(page, "Area")
        assert _area_in_url(page) == "E08000035"

        _go(page, "compare", "Areas to compare")
        assert _select_value(page, "Areas to compare").split("Areas to compare", 1)[1].strip().startswith("Leeds")
        assert _area_in_url(page) == "E08000035"

        _go(page, "about")  # a page without an area: the choice is kept in the session
        _go(page, "profile", "Area")
        assert "Leeds (E08000035)" in page.inner_text('[data-testid="stMain"]')
        assert _area_in_url(page) == "E08000035"

        # choose another area on the profile: every page follows it
        box = page.locator('[data-testid="stSelectbox"]').filter(has=page.get_by_text("Area", exact=True)).first
        box.click()
        page.keyboard.type("Kent (E10000016)")
        page.keyboard.press("Enter")
        page.wait_for_function("() => location.search.includes('area=E10000016')", timeout=60_000)
        wait_idle(page, 180_000)
        _go(page, "divergence", "Area")
        assert "Kent" in _select_value(page, "Area")
        assert _area_in_url(page) == "E10000016"
