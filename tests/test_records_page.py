"""The Data page (AppTest, headless): schema and template, upload → summary → store, completeness map."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lib.records import store
from lib.records.ingest import commit, prepare
from tests.test_records import KEY, TODAY, csv_bytes, good_rows

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def page(tmp_path, monkeypatch):
    import streamlit as st

    path = tmp_path / "page.duckdb"
    con = store.connect(path)
    commit(con, prepare(csv_bytes(good_rows(40)), "seed.csv", key=KEY, today=TODAY))
    con.close()
    monkeypatch.setenv("JOINEDUP_DB", str(path))
    monkeypatch.setenv("JOINEDUP_KEY", KEY.decode())
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(ROOT / "pages" / "data.py"), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    yield at, path
    st.cache_resource.clear()


def test_page_shows_schema_template_and_completeness(page):
    at, _ = page
    schema_table = at.dataframe[0].value
    assert "nhs_number" in schema_table["column"].tolist()
    assert any(b.label.startswith("Download the template") for b in at.get("download_button"))
    completeness = at.dataframe[-1].value
    assert {"valid NHS %", "name + DOB %", "anonymous %"} <= set(completeness.columns)
    chart = at.get("plotly_chart")[0]
    assert "choroplethmap" in chart.proto.spec


def test_upload_shows_summary_before_storing_then_stores(page):
    at, path = page
    rows = good_rows(3)
    for i, r in enumerate(rows):
        r["source_record_id"] = f"UP{i}"
    rows[2]["agency_type"] = "polce"
    at.file_uploader(key="extract").set_value(("upload.csv", csv_bytes(rows), "text/csv")).run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Rows read"], metrics["Rows to store"], metrics["Rows rejected"]) == ("3", "2", "1")
    issues = next(d.value for d in at.dataframe if {"file", "row", "field", "reason"} <= set(d.value.columns))
    assert issues[["row", "field", "code"]].values.tolist() == [[4, "agency_type", "unknown_agency_type"]]
    assert not any("Stored" in s.value for s in at.success)  # nothing stored before the button
    for shown in at.dataframe:  # no keyed hash is ever displayed (it could be reversed with the key)
        text = shown.value.astype(str).to_string()
        assert not re.search(r"\b[0-9a-f]{32,}\b", text), "a hash is shown on the page"
    at.button(key="store").click().run()
    assert not at.exception, at.exception
    assert any("Stored 2 new records" in s.value for s in at.success)
    con = store.connect(path, read_only=True)  # the upload is the store's next version: a reader sees it
    try:
        assert store.counts(con)["encounters"] == 42
    finally:
        con.close()
    cur = at.session_state  # the prepared batch held between runs is pseudonymised only
    frame = cur["prepared"].records_frame()
    assert "forename" not in frame.columns and "nhs_number" not in frame.columns


def test_a_broken_file_is_refused_on_the_page(page):
    at, _ = page
    at.file_uploader(key="extract").set_value(("empty.csv", b"", "text/csv")).run()
    assert any("Nothing can be stored from this file" in e.value and "the file is empty" in e.value for e in at.error)


def _refusals(path):
    from lib.access import audit

    return audit.read(audit.AuditLog.for_store(path), action="upload_refused")


def test_carriage_return_files_on_the_page(page):
    """Issue 14: a CR-only file is read; CR garbage (the fuzzer's b'\\r\\x01') is refused with a message, no
    traceback, and an upload_refused audit row."""
    at, path = page
    rows = good_rows(3)
    for i, r in enumerate(rows):
        r["source_record_id"] = f"CR{i}"
    at.file_uploader(key="extract").set_value(("mac.csv", csv_bytes(rows).replace(b"\n", b"\r"), "text/csv")).run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Rows read"], metrics["Rows to store"]) == ("3", "3")
    at.file_uploader(key="extract").set_value(("cr.csv", b"\r\x01", "text/csv")).run()
    assert not at.exception, at.exception
    errors = [e.value.replace("\\", "") for e in at.error]  # shown markdown-escaped
    assert any("Nothing can be stored from this file" in e and "cr.csv: missing required" in e for e in errors)
    refused = _refusals(path)
    assert refused["subject"].tolist() == ["cr.csv"] and refused["detail"].tolist() == ["missing_columns"]


def test_the_page_says_which_excel_sheet_it_read(page):
    from tests.test_hostile_files import _ids, _rows_as_lists, workbook

    at, _ = page
    data = workbook([("Old", "hidden", _rows_as_lists(_ids(good_rows(5), "HIDDEN"))),
                     ("Sheet1", "visible", _rows_as_lists(_ids(good_rows(2), "SHOWN")))])
    at.file_uploader(key="extract").set_value(("book.xlsx", data, "application/octet-stream")).run()
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["Rows read"] == "2"
    notes = [i.value.replace("\\", "") for i in at.info]  # shown escaped (sheet names are user text)
    assert any("Read the sheet 'Sheet1'" in n and "Hidden sheets, not read: 'Old'" in n for n in notes), notes


def test_upload_with_a_retired_code_says_it_was_mapped(page):
    at, _ = page
    rows = good_rows(2)
    for i, r in enumerate(rows):
        r.update(source_record_id=f"OLD{i}", agency_type="children_social_care", agency_code="E08000016")
    at.file_uploader(key="extract").set_value(("old_codes.csv", csv_bytes(rows), "text/csv")).run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Rows to store"], metrics["Rows rejected"]) == ("2", "0")
    said = [i.value for i in at.info if "retired" in i.value]
    assert len(said) == 1 and "E08000038 Barnsley" in said[0] and "(2 rows)" in said[0]
