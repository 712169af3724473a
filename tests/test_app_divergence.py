"""The Divergence page: headless (AppTest) on the linked synthetic store, and once in real Chromium."""
from __future__ import annotations

import os

import pytest
from streamlit.testing.v1 import AppTest

from tests.browser import ROOT, browser_page, chromium_available, running_app, wait_idle
from tests.fixtures_linkage import copy_store, plotly_specs, run_page, synthetic_linked_store, trace_types

PAGE = str(ROOT / "pages" / "divergence.py")


@pytest.fixture(scope="module")
def db_path(tmp_path_factory):
    return synthetic_linked_store(tmp_path_factory)


@pytest.fixture()
def app(db_path, monkeypatch) -> AppTest:
    return run_page(PAGE, db_path, monkeypatch)



def test_page_renders_every_chart_with_a_reading(app):
    assert app.title[0].value == "Where counts diverge"
    figures = plotly_specs(app)
    kinds = [trace_types(f) for f in figures]
    assert {"choroplethmap"} in kinds and {"waterfall"} in kinds
    assert sum(k == {"scatter"} for k in kinds) >= 3  # dumbbell, funnel, trend
    choropleth = next(f for f in figures if "choroplethmap" in trace_types(f))
    assert choropleth["data"][0]["zmid"] == 0 and choropleth["layout"]["map"]["style"] == "white-bg"
    assert all(c.startswith(("E06", "E08", "E09", "E10", "W06")) for c in choropleth["data"][0]["locations"])
    funnel = next(f for f in figures if any("limits" in (t.get("name") or "") for t in f["data"]))
    assert {t["name"] for t in funnel["data"] if t.get("showlegend", True)} >= {"95% limits", "99.8% limits"}
    text = " ".join(m.value for m in app.markdown)
    assert "Nationally," in text and "99.8% limit" in text and "Why they differ" in text


def test_layer_period_and_measure_switch(app):
    app.selectbox(key="div_layer").set_value("pfa").run()
    app.selectbox(key="div_period").set_value("2024-25").run()
    app.radio(key="div_measure").set_value("cse_children").run()
    assert not app.exception, app.exception
    choropleth = next(f for f in plotly_specs(app) if "choroplethmap" in trace_types(f))
    assert all(c.startswith(("E23", "W15")) for c in choropleth["data"][0]["locations"])
    assert "children with a CSE flag" in " ".join(m.value for m in app.markdown)
    app.selectbox(key="div_layer").set_value("nhs").run()
    app.selectbox(key="div_b").set_value("health").run()
    assert not app.exception, app.exception


def test_rates_name_the_official_population_and_the_age_band_switches(app):
    captions = " ".join(c.value for c in app.caption)
    assert "ONS mid-year population estimates" in captions and "mid-2024" in captions
    assert "approximate" not in captions.lower()
    app.radio(key="div_age").set_value("10-17").run()
    assert not app.exception, app.exception
    captions = " ".join(c.value for c in app.caption)
    assert "children aged 10–17" in captions and "mid-2020" in captions
    app.selectbox(key="div_layer").set_value("trust").run()
    assert not app.exception, app.exception
    captions = " ".join(c.value for c in app.caption)
    assert "OHID" in captions and "2022 edition" in captions


def test_every_chart_has_a_table_view(app):
    for key in ("div_dumbbell_view", "div_map_view", "div_funnel_view", "div_trend_view", "div_waterfall_view"):
        app.session_state[key] = "Table"
    app.run()
    assert not app.exception, app.exception
    assert not app.get("plotly_chart")
    columns = [set(d.value.columns) for d in app.dataframe]
    assert any({"log_ratio", "verdict", "rank"} <= c for c in columns)
    assert any({"lower_998", "upper_998", "share_a"} <= c for c in columns)
    assert any({"component", "value"} <= c for c in columns)
    comp = next(d.value for d in app.dataframe if "component" in d.value.columns)
    assert list(comp["component"]) == ["Boundary effect", "Identity effect", "Recording effect"]


@pytest.mark.skipif(not chromium_available() and not os.environ.get("JOINEDUP_REQUIRE_BROWSER"),
                    reason="Debian chromium not installed (apt-get install -y chromium)")
def test_page_draws_in_chromium(db_path, tmp_path):
    served = copy_store(db_path, tmp_path)
    errors: list[str] = []
    with running_app(env={"JOINEDUP_DB": str(served)}, script="pages/divergence.py") as base, browser_page() as page:
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(base + "/")
        page.wait_for_selector("canvas.maplibregl-canvas", timeout=90_000)
        wait_idle(page, 90_000)
        assert page.locator(".js-plotly-plot").count() >= 5
        body = page.locator('[data-testid="stMain"]').inner_text()
        assert "Where counts diverge" in body and "Funnel plot" in body and "Why they differ" in body
        assert not page.locator('[data-testid="stException"]').count()
        if os.environ.get("JOINEDUP_SCREENSHOT"):
            page.wait_for_timeout(1500)
            page.screenshot(path=os.environ["JOINEDUP_SCREENSHOT"], full_page=True)
    assert not errors, errors
