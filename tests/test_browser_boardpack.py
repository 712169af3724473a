"""In real Chromium: open a shared Compare link as a commissioner, see the view it names, and download the
board pack with one click; the downloaded file is a deck python-pptx opens, with the expected slides."""
from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from tests.browser import browser_page, chromium_available, running_app, wait_idle
from tests.fixtures_linkage import copy_store, synthetic_linked_store

pytestmark = pytest.mark.skipif(not chromium_available() and not os.environ.get("JOINEDUP_REQUIRE_BROWSER"),
                                reason="Debian chromium not installed (apt-get install -y chromium)")


def test_shared_link_restores_view_and_deck_downloads(tmp_path_factory, tmp_path):
    from pptx import Presentation

    from lib.export.boardpack import SLIDE_TITLES

    db = copy_store(synthetic_linked_store(tmp_path_factory), tmp_path)
    env = {"JOINEDUP_DB": str(db), "JOINEDUP_SYNTHETIC_STORE": "1", "JOINEDUP_DEMO_ROLE": "commissioner",
           "JOINEDUP_ACCOUNTS": str(tmp_path / "no-accounts.json")}
    errors: list[str] = []
    with running_app(env=env) as base, browser_page() as page:
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(base + "/compare?layer=pfa&areas=E23000001,E23000005&period=all")
        page.get_by_text("Side by side", exact=True).wait_for(timeout=90_000)
        wait_idle(page)
        main = page.locator('[data-testid="stMain"]')
        text = main.inner_text()
        assert "Metropolitan Police (E23000001)" in text and "Greater Manchester (E23000005)" in text
        assert not page.locator('[data-testid="stException"]').count()

        button = page.get_by_role("button", name="Board pack (PowerPoint)")
        button.focus()  # keyboard-usable: the download starts from Enter on the focused button
        with page.expect_download(timeout=120_000) as info:
            page.keyboard.press("Enter")
        download = info.value
        assert download.suggested_filename == "board_pack_pfa_E23000001_all.pptx"
        data = Path(download.path()).read_bytes()
        assert "E23000001" in page.url and "layer=pfa" in page.url
    assert not errors, errors

    from lib.access import audit

    audited = audit.read(audit.AuditLog.for_store(db), action="export")  # the app's rows, in the audit file
    assert ("commissioner", "export", "pfa:E23000001") in set(audited[["role", "action", "subject"]]
                                                              .itertuples(index=False, name=None))

    deck = Presentation(io.BytesIO(data))
    titles = [s.shapes.title.text for s in deck.slides]
    assert len(titles) == len(SLIDE_TITLES)
    assert titles[0].startswith("Metropolitan Police")
    pictures = [sh for s in deck.slides for sh in s.shapes if sh.shape_type == 13]
    # map, dot chart, funnel; the trend and "why" charts (issue 18) only where the role sees the area's parts
    assert [p.name for p in pictures][:3] == ["Map of the divergence ratio", "Divergence chart", "Funnel plot"]
    assert "Commissioner" in deck.core_properties.subject
