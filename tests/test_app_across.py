"""The Across boundaries page: headless (AppTest) on a linked synthetic store, and once in real Chromium."""
from __future__ import annotations

import io
import os
import re

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.browser import ROOT, browser_page, chromium_available, running_app, wait_idle
from tests.fixtures_linkage import copy_store, plotly_specs, run_page, synthetic_linked_store, trace_types

PAGE = str(ROOT / "pages" / "across.py")
HEX64 = re.compile(r"[0-9a-f]{64}")


@pytest.fixture(scope="module")
def db_path(tmp_path_factory):
    return synthetic_linked_store(tmp_path_factory)


@pytest.fixture()
def app(db_path, monkeypatch) -> AppTest:
    return run_page(PAGE, db_path, monkeypatch)



def _displayed_text(at: AppTest) -> str:
    parts = []
    for frame in at.dataframe:
        parts.append(" ".join(map(str, frame.value.columns)))
        parts.append(frame.value.astype(str).to_string())
    for element in (*at.markdown, *at.caption, *at.metric):
        parts.append(str(element.value))
    return "\n".join(parts)


def test_page_renders_maps_metrics_and_readings(app):
    assert app.title[0].value == "Across boundaries"
    figures = plotly_specs(app)
    choropleths = [f for f in figures if "choroplethmap" in trace_types(f)]
    assert choropleths, "no choropleth of spans"
    spans_map = choropleths[0]
    assert spans_map["layout"]["map"]["style"] == "white-bg"
    assert all(code.startswith(("E06", "E08", "E09", "E10", "W06")) for code in spans_map["data"][0]["locations"])
    assert all(0 <= z <= 100 for z in spans_map["data"][0]["z"])
    flow_maps = [f for f in figures if any(t.get("type") == "scattermap" and t.get("mode") == "lines"
                                           and "→" in t.get("name", "") for t in f["data"])]
    assert flow_maps, "no flow lines"
    labels = {m.label for m in app.metric}
    assert {"Linked children", "Known to 2+ agencies", "Found only by linkage"} <= labels
    text = " ".join(m.value for m in app.markdown)
    assert "resident children" in text and "The largest flow is" in text
    assert "share no NHS number" in text
    assert app.dataframe, "the missed-without-linkage table is missing"
    assert "multi_agency" in app.dataframe[0].value.columns


def test_layer_and_span_choices_redraw(app):
    app.selectbox(key="across_layer").set_value("pfa").run()
    app.selectbox(key="across_span").set_value("nhs").run()
    assert not app.exception
    spans_map = next(f for f in plotly_specs(app) if "choroplethmap" in trace_types(f))
    assert all(code.startswith(("E23", "W15")) for code in spans_map["data"][0]["locations"])
    assert "ICBs / health boards" in spans_map["data"][0]["colorbar"]["title"]["text"]
    assert any(m.label == "Span 2+ ICBs / health boards" for m in app.metric)


def test_table_alternatives(app):
    app.session_state["spans_view"] = "Table"
    app.session_state["flows_view"] = "Table"
    app.run()
    assert not app.exception
    columns = [set(d.value.columns) for d in app.dataframe]
    assert any({"share_any", "children", "area_name"} <= c for c in columns)
    flows = next(d.value for d in app.dataframe if "flow" in d.value.columns)
    assert len(flows) == 15 and flows["flow"].str.contains("→").all()
    assert (flows["children"].diff().dropna() <= 0).all()


def test_open_one_child_shows_timeline_and_masked_records(app):
    box = app.selectbox(key="child_id")
    assert len(box.options) > 10
    box.set_value(box.options[3].split(" — ")[0]).run()
    assert not app.exception
    timeline = next(f for f in plotly_specs(app) if trace_types(f) == {"scatter"})
    agencies = {t["name"] for t in timeline["data"] if t.get("x") is not None and t["x"][0] is not None}
    assert len(agencies) >= 1 and agencies <= {"Police", "Children's social care", "Health", "Education", "Other"}
    app.session_state["child_view"] = "Records"
    app.run()
    assert not app.exception
    records = next(d.value for d in app.dataframe if "How linked" in d.value.columns)
    assert len(records) >= 2
    assert {"Link method", "Match probability", "NHS number (masked)", "Name (masked)"} <= set(records.columns)
    assert not any("hash" in str(c).lower() for d in app.dataframe for c in d.value.columns)
    assert not HEX64.search(_displayed_text(app))
    app.session_state["child_view"] = "Map"
    app.run()
    journey_map = plotly_specs(app)[-1]
    assert any(t.get("type") == "scattermap" and t.get("mode") == "markers" for t in journey_map["data"])


def test_unlinked_store_offers_linkage_with_progress(tmp_path, monkeypatch):
    from tests.fixtures_linkage import synthetic_store

    con, _ = synthetic_store(tmp_path / "unlinked.duckdb", 1500, 5, link=False)
    con.close()
    monkeypatch.setenv("JOINEDUP_DB", str(tmp_path / "unlinked.duckdb"))
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception
    assert any("have not been linked" in i.value for i in at.info)
    assert not at.get("plotly_chart")
    at.button(key="link_now").click().run()
    assert not at.exception, at.exception
    assert not any("have not been linked" in i.value for i in at.info)
    assert any(m.label == "Linked children" for m in at.metric)


# -- real browser ------------------------------------------------------------------------------------

@pytest.mark.skipif(not chromium_available() and not os.environ.get("JOINEDUP_REQUIRE_BROWSER"),
                    reason="Debian chromium not installed (apt-get install -y chromium)")
def test_page_draws_in_chromium(db_path, tmp_path):
    from PIL import Image

    served = copy_store(db_path, tmp_path)  # this process holds the fixture file open
    errors: list[str] = []
    with running_app(env={"JOINEDUP_DB": str(served)}, script="pages/across.py") as base, browser_page() as page:
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(base + "/")
        page.wait_for_selector("canvas.maplibregl-canvas", timeout=90_000)
        wait_idle(page, 90_000)
        assert page.locator(".js-plotly-plot").count() >= 2  # spans map, flows map
        page.wait_for_timeout(1500)
        shot = Image.open(io.BytesIO(page.locator(".js-plotly-plot").first.screenshot())).convert("RGB")
        pixels = np.asarray(shot, dtype=int).reshape(-1, 3)
        coloured = (pixels.max(axis=1) - pixels.min(axis=1) > 40).mean()
        assert coloured > 0.05, "the choropleth drew no coloured areas"
        body = page.locator('[data-testid="stMain"]').inner_text()
        assert "Across boundaries" in body and "Open one child" in body
        assert "records from" not in body  # issue 18: no child's journey opens until one is chosen
        picker = page.get_by_role("combobox", name="Child (encounters in several areas; most areas first)")
        picker.scroll_into_view_if_needed()
        picker.click()
        page.get_by_role("option").first.wait_for(timeout=30_000)
        page.get_by_role("option").first.click()
        page.get_by_text("records from").first.wait_for(timeout=90_000)
        wait_idle(page, 90_000)
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 3",
                               timeout=30_000)  # and its timeline
        page.get_by_role("tab", name="Records").click()
        page.locator('[data-testid="stDataFrame"]').nth(1).wait_for(timeout=30_000)
        wait_idle(page)
        assert not page.locator('[data-testid="stException"]').count()
    assert not errors, errors


def test_tiny_store_renders_and_warns_of_unlinked_records(tmp_path, monkeypatch):
    from tests.fixtures_linkage import tiny_store

    con = tiny_store(tmp_path / "tiny.duckdb")
    con.execute("INSERT INTO encounters SELECT * REPLACE (record_key || '-later' AS record_key) FROM encounters "
                "WHERE source_record_id = 'T-000'")
    con.close()
    monkeypatch.setenv("JOINEDUP_DB", str(tmp_path / "tiny.duckdb"))
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    assert any("1 record was stored after the last linkage run and is not" in w.value for w in at.warning)
    assert at.button(key="link_now").label == "Link all records again"
    assert {m.label: m.value for m in at.metric}["Found only by linkage"] == "2"
    at.selectbox(key="child_id").set_value("CH-8").run()
    assert not at.exception
    assert "2 records from 2 agencies" in " ".join(m.value for m in at.markdown)


def test_first_start_builds_and_links_the_default_dataset(tmp_path, monkeypatch):
    """The app (not only this page) builds the default synthetic store at first start and links it."""
    from functools import partial

    from lib.records import default, store
    from tests.conftest import ROOT

    monkeypatch.delenv("JOINEDUP_DB", raising=False)
    monkeypatch.setattr(store, "DEFAULT_DB", tmp_path / "default.duckdb")
    monkeypatch.setattr(default, "ensure_default_dataset",
                        partial(default.ensure_default_dataset, n_encounters=800, seed=3))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    at.switch_page("pages/across.py").run()
    assert not at.exception, at.exception
    assert not any("have not been linked" in i.value for i in at.info)
    assert at.metric, "the page shows its headline numbers on the default store"
    con = store.connect(tmp_path / "default.duckdb", read_only=True)  # the app wrote it as a version
    try:
        assert store.counts(con)["encounters"] > 700
        assert con.execute("SELECT count(*) FROM record_child").fetchall()[0][0] == store.counts(con)["encounters"]
    finally:
        con.close()
