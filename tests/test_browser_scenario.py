"""In real Chromium: the scenario explorer runs a scenario with progress and draws its curve and map."""
from __future__ import annotations

import json
import os
from pathlib import Path

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


def _run_police_100(page, base) -> None:
    """Open the scenario page, pick the quicker population, set police capture to 100% and run."""
    page.goto(base + "/scenario")
    page.get_by_role("button", name="Run scenario").wait_for(timeout=120_000)
    wait_idle(page)
    page.get_by_role("combobox", name="Synthetic population").click()
    page.get_by_role("option", name="5,000 encounters (quicker)").click()
    wait_idle(page)
    page.wait_for_timeout(1000)  # the sliders are re-created for the new population's rates
    thumb = page.get_by_role("slider", name="Police")
    thumb.focus()
    thumb.press("End")
    expect(thumb).to_have_value("100", timeout=10_000)
    thumb.press("Tab")
    page.wait_for_timeout(500)
    page.get_by_role("button", name="Run scenario").click()
    page.get_by_text("NHS number alone recognises").wait_for(timeout=240_000)
    wait_idle(page, 120_000)


def _no_exception(page) -> None:
    main = page.locator('[data-testid="stMain"]')
    assert not page.locator('[data-testid="stException"]').count(), main.inner_text()[:2000]
    assert "CacheReplayClosureError" not in main.inner_text()


def test_a_scenario_survives_a_second_session_and_its_download(tmp_path_factory, tmp_path):
    """Issue 18: "Police 100%" run in one session, then in another, or any run followed by "Download the result
    (JSON)", replaced the results by CacheReplayClosureError and a traceback."""
    db = copy_store(synthetic_linked_store(tmp_path_factory), tmp_path)
    with running_app(env={"JOINEDUP_DB": str(db)}) as base:
        with browser_page() as first:
            _run_police_100(first, base)
            _no_exception(first)
            with first.expect_download(timeout=60_000) as info:
                first.get_by_role("button", name="Download the result (JSON)").click()
            result = json.loads(Path(info.value.path()).read_text(encoding="utf-8"))
            assert result["levers"]["capture"] == {"police": 1.0} and result["by_area"]
            wait_idle(first)
            first.wait_for_timeout(1500)
            _no_exception(first)
            assert "NHS number alone recognises" in first.locator('[data-testid="stMain"]').inner_text()
        with browser_page() as second:  # another session, the same scenario (served from the shared cache)
            _run_police_100(second, base)
            second.wait_for_timeout(1500)
            _no_exception(second)
            assert "Police: NHS number recorded on 100%" in second.locator('[data-testid="stMain"]').inner_text()


def _download_deck(page) -> bytes:
    with page.expect_download(timeout=240_000) as info:
        page.get_by_role("button", name="Board pack (PowerPoint)").click()
    return Path(info.value.path()).read_bytes()


def _scenario_slide_text(data: bytes) -> str:
    import io

    from pptx import Presentation

    deck = Presentation(io.BytesIO(data))
    return "\\n".join(sh.text_frame.text for s in deck.slides for sh in s.shapes if sh.has_text_frame
                     and s.shapes.title is not None and s.shapes.title.text.startswith("Scenario"))


def test_scenario_board_pack_twice_in_a_session_and_once_in_another(tmp_path_factory, tmp_path):
    """Issue 18: the Scenario page had no board-pack button. It offers the board pack (the same export path as the
    other pages) with the scenario as a slide; pressed twice in one session and once in a second session, each
    press serves the deck and writes an export audit row, and the page shows no error."""
    db = copy_store(synthetic_linked_store(tmp_path_factory), tmp_path)

    def exports() -> int:
        from lib.access import audit

        rows = audit.read(audit.AuditLog.for_store(db), action="export")
        return int(rows["detail"].astype(str).str.startswith("board_pack_scenario_").sum())

    with running_app(env={"JOINEDUP_DB": str(db)}) as base:
        with browser_page() as first:
            _run_police_100(first, base)
            decks = [_download_deck(first)]
            wait_idle(first)
            decks.append(_download_deck(first))
            wait_idle(first)
            first.wait_for_timeout(1000)
            _no_exception(first)
            assert "NHS number alone recognises" in first.locator('[data-testid="stMain"]').inner_text()
        with browser_page() as second:
            _run_police_100(second, base)
            decks.append(_download_deck(second))
            wait_idle(second)
            _no_exception(second)
    for data in decks:
        assert data[:2] == b"PK"
        assert "Police" in _scenario_slide_text(data) and "100%" in _scenario_slide_text(data)
    assert exports() == 3
