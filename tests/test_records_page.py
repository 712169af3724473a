"""The Data page (AppTest, headless): schema and template, upload → summary → store, completeness map."""
from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from pathlib import Path

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
