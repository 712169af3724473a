"""In real Chromium (issue 14): the Data page given a carriage-return-only CSV. A CR-only extract is read
and summarised; CR garbage (the fuzzer's b'\\r\\x01') is refused with a clear message, no traceback, and
an upload_refused audit row. A screenshot of the refusal is kept for the report."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from lib.access import audit
from lib.records import store
from lib.records.ingest import commit, prepare
from tests.browser import browser_page, chromium_available, running_app, wait_idle, wait_rendered
from tests.test_records import KEY, TODAY, csv_bytes, good_rows

pytestmark = pytest.mark.skipif(not chromium_available() and not os.environ.get("JOINEDUP_REQUIRE_BROWSER"),
                                reason="Debian chromium not installed (apt-get install -y chromium)")

SHOTS = Path(os.environ.get("JOINEDUP_SCREENSHOTS", "/tmp"))


def _upload(page, name: str, data: bytes) -> str:
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        files=[{"name": name, "mimeType": "text/csv", "buffer": data}])
    page.wait_for_timeout(500)
    wait_idle(page)
    return page.inner_text("body")


def test_cr_only_csv_uploaded_in_chromium(tmp_path):
    db = tmp_path / "browser.duckdb"
    con = store.connect(db)
    commit(con, prepare(csv_bytes(good_rows(8)), "seed.csv", key=KEY, today=TODAY))
    con.close()
    env = {"JOINEDUP_DB": str(db), "JOINEDUP_KEY": KEY.decode(), "JOINEDUP_SYNTHETIC_STORE": "1",
           "JOINEDUP_DEMO_ROLE": "analyst"}
    rows = good_rows(3)
    for i, r in enumerate(rows):
        r["source_record_id"] = f"CRB{i}"
    with running_app(env=env) as base, browser_page() as page:
        page.goto(base + "/data")
        page.get_by_role("tab", name="Upload").wait_for(timeout=60_000)
        wait_idle(page)
        page.get_by_role("tab", name="Upload").click()
        body = _upload(page, "mac.csv", csv_bytes(rows).replace(b"\n", b"\r"))
        assert "Traceback" not in body and "Error" not in body.replace("error", "")
        page.get_by_text("Rows to store").first.wait_for(timeout=30_000)
        metrics = page.eval_on_selector_all('[data-testid="stMetricValue"]', "els => els.map(e => e.innerText)")
        assert metrics[:3] == ["3", "3", "0"], metrics
        body = _upload(page, "cr.csv", b"\r\x01")
        page.get_by_text("Nothing can be stored from this file").wait_for(timeout=30_000)
        wait_rendered(page)  # the run has finished: the first file's summary and button are gone, not just faded
        body = page.inner_text("body")
        page.screenshot(path=str(SHOTS / "joinedup-cr-refused.png"), full_page=True)
        assert "cr.csv: missing required columns" in body, body[-1500:]
        assert "Store these" not in body and "No problems found" not in body, body[-1500:]  # mac.csv's, gone
        assert "Traceback" not in body and "_csv.Error" not in body and "new-line character" not in body
        assert not page.locator('[data-testid="stException"]').count()
    refused = audit.read(audit.AuditLog.for_store(db), action="upload_refused")
    assert refused["subject"].tolist() == ["cr.csv"] and refused["role"].tolist() == ["analyst"]
    con = store.connect(db)
    try:
        assert store.counts(con)["encounters"] == 8  # nothing stored from either upload (no Store pressed)
    finally:
        con.close()
