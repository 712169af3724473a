"""In real Chromium: issue 18's interaction defects (review accept -> the next pair, the count falls by one;
a keyboard shortcut decides; the Boundaries side panel; the Across page opens no child by itself)."""
from __future__ import annotations

import os
import re

import pytest

from tests.browser import browser_page, chromium_available, running_app, wait_rendered
from tests.fixtures_linkage import copy_store, synthetic_linked_store

pytestmark = pytest.mark.skipif(not chromium_available() and not os.environ.get("JOINEDUP_REQUIRE_BROWSER"),
                                reason="Debian chromium not installed (apt-get install -y chromium)")
SHOTS = os.environ.get("JOINEDUP_UI_SHOTS")  # optional: a folder for full-page screenshots


def _shot(page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def _count(page) -> int:
    metric = page.locator('[data-testid="stMetric"]').first.inner_text()
    return int(re.search(r"([\d,]+)\s*$", metric.strip()).group(1).replace(",", ""))


def _reading(page) -> str:
    return page.get_by_text("The model puts this pair at").first.inner_text()


def _cards(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text().split("Which identifiers agree")[1][:600]


def test_review_accept_moves_to_the_next_pair_and_the_count_falls_by_one(tmp_path_factory, tmp_path):
    db = copy_store(synthetic_linked_store(tmp_path_factory), tmp_path)
    errors: list[str] = []
    with running_app(env={"JOINEDUP_DB": str(db)}) as base, browser_page() as page:
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(base + "/review")
        page.get_by_text("The model puts this pair at").first.wait_for(timeout=90_000)
        wait_rendered(page)
        box = page.get_by_label("Your name or role (recorded with the decision)")
        box.fill("Lead in Chromium")
        box.press("Enter")
        wait_rendered(page)
        before, cards = _count(page), _cards(page)
        page.get_by_role("button", name=re.compile("Same child: accept link")).click()
        page.get_by_text("Recorded: accept").wait_for(timeout=60_000)
        wait_rendered(page)
        _shot(page, "review_after_accept")
        assert _count(page) == before - 1
        assert _cards(page) != cards, "the decided pair is still on screen"
        body = page.locator('[data-testid="stMain"]').inner_text()
        assert "accepted (same child) by Lead in Chromium" in body
        assert "00:00:00" not in body

        # The keyboard: D rejects the pair now shown (focus out of the text box first).
        page.locator('[data-testid="stMain"] h1').click()
        page.keyboard.press("d")
        page.get_by_text("Recorded: reject").wait_for(timeout=60_000)
        wait_rendered(page)
        assert _count(page) == before - 2
        assert "Decided pairs (2 most recent)" in page.locator('[data-testid="stMain"]').inner_text()
        assert not page.locator('[data-testid="stException"]').count()
    assert not errors, errors


def test_boundaries_click_an_area_opens_its_side_panel(tmp_path):
    errors: list[str] = []
    with running_app() as base, browser_page() as page:
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(base + "/")
        page.wait_for_selector("canvas.maplibregl-canvas", timeout=90_000)
        wait_rendered(page)
        page.wait_for_timeout(1500)
        assert "falls in:" not in page.locator('[data-testid="stMain"]').inner_text()
        box = page.locator(".js-plotly-plot").first.bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.45)
        page.locator(".hoverlayer .hovertext").first.wait_for(timeout=20_000)  # the hover names the area
        page.mouse.click(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.45)
        page.get_by_text("falls in:").first.wait_for(timeout=60_000)
        wait_rendered(page)
        _shot(page, "boundaries_clicked")
        panel = page.locator('[data-testid="stTable"]').first.inner_text()
        assert "Police force" in panel and "ICB" in panel
        codes = re.findall(r"\b[EW]\d{8}\b", panel)
        assert len(codes) >= 3, panel  # full nine-character codes, not cut short
        assert not page.locator('[data-testid="stException"]').count()
    assert not errors, errors
