"""In real Chromium: the scenario explorer runs a scenario with progress and draws its curve and map."""
from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from tests.browser import browser_page, chromium_available, running_app, wait_idle
from tests.fixtures_linkage import copy_store, synthetic_linked_store

pytestmark = pytest.mark.skipif(not chromium_available() and not os.environ.get("JOINEDUP_REQUIRE_BROWSER"),
                                reason="Debian chromium not installed (apt-get install -y chromium)")

SHOT = os.environ.get("JOINEDUP_SCENARIO_SHOT")  # optional: save a full-page screenshot here


def test_scenario_runs_and_draws_in_chromium(tmp_path_factory, tmp_path):
    db = copy_store(synthetic_linked_store(tmp_path_factory), tmp_path)
    errors: list[str] = []
    with running_app(env={"JOINEDUP_DB": str(db)}) as base, browser_page() as page:
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(base + "/scenario")
        page.get_by_text("What if every agency recorded the NHS number?").wait_for(timeout=60_000)
        page.get_by_role("button", name="Run scenario").wait_for(timeout=90_000)
        wait_idle(page)
        # A quicker population, then police capture to 100% (End key on the slider).
        page.get_by_role("combobox", name="Synthetic population").click()
        page.get_by_role("option", name="5,000 encounters (quicker)").click()
        expect(page.get_by_role("combobox", name="Synthetic population")).to_have_value("5,000 encounters (quicker)")
        wait_idle(page)
        page.get_by_role("button", name="Run scenario").wait_for(timeout=90_000)
        page.wait_for_timeout(1000)  # the sliders are re-created for the new population's rates
        thumb = page.get_by_role("slider", name="Police")
        thumb.focus()
        thumb.press("End")
        expect(thumb).to_have_value("100", timeout=10_000)
        thumb.press("Tab")  # the form takes the value when the slider lets go
        page.wait_for_timeout(500)
        page.get_by_role("button", name="Run scenario").click()
        page.get_by_text("NHS number alone recognises").wait_for(timeout=180_000)
        wait_idle(page, 120_000)
        page.wait_for_selector("canvas.maplibregl-canvas", timeout=60_000)
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 2", timeout=30_000)
        page.wait_for_timeout(1500)
        if SHOT:
            page.screenshot(path=SHOT, full_page=True)
        body = page.locator('[data-testid="stMain"]').inner_text()
        assert "under this scenario (+" in body and "(+0)" not in body.split("under this scenario")[1][:8]
        assert "Police: NHS number recorded on 100%" in body, body[body.find("Assumptions"):][:600]
        assert "Gain against capture rate" in body and "Assumptions" in body
        legend = " ".join(page.locator(".js-plotly-plot .legendtext").all_text_contents())
        assert "By NHS number alone" in legend
        assert not page.locator('[data-testid="stException"]').count()
    assert not errors, errors
