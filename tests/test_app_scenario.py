"""The scenario explorer page (AppTest): levers start at today's rates, a run shows table, curve, map and
assumptions; the model on a real store; suppression for an aggregate-only role."""
from __future__ import annotations

import base64

import numpy as np
import pytest

from tests.browser import ROOT
from tests.fixtures_linkage import plotly_specs, run_page, synthetic_linked_store, trace_types

PAGE = str(ROOT / "pages" / "scenario.py")


@pytest.fixture(scope="module")
def db_path(tmp_path_factory):
    return synthetic_linked_store(tmp_path_factory)


def _values(array) -> list:
    """A Plotly array from figure JSON (plain list, or typed-array {'bdata', 'dtype'})."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def _run(at):
    submit = next(b for b in at.button if "Run scenario" in b.label)
    submit.click().run()
    assert not at.exception, at.exception
    return at


def test_levers_start_at_todays_rates_and_a_run_shows_every_result(db_path, monkeypatch):
    from lib.records.default import DEFAULT_SEED
    from lib.scenario import simulate

    at = run_page(PAGE, db_path, monkeypatch)
    assert at.title[0].value.startswith("What if every agency recorded")
    at.selectbox(key="scn_population").set_value(5_000).run()
    today = simulate.population(5_000, DEFAULT_SEED).baseline.capture
    assert at.slider(key="scn_cap_police_5000").value == round(100 * today["police"])
    assert any("Run scenario" in i.value for i in at.info)
    assert not plotly_specs(at)  # nothing runs until asked

    at.slider(key="scn_cap_police_5000").set_value(100)
    at.slider(key="scn_cap_children_social_care_5000").set_value(100)
    _run(at)
    figures = plotly_specs(at)
    kinds = [trace_types(f) for f in figures]
    assert any("choroplethmap" in k for k in kinds)
    curve = next(f for f in figures if any(t.get("name") == "By NHS number alone" for t in f["data"]))
    line = next(t for t in curve["data"] if t.get("name") == "By NHS number alone")
    xs, ys = _values(line["x"]), _values(line["y"])
    assert len(xs) >= 5 and xs == sorted(xs) and ys == sorted(ys) and ys[-1] > ys[0]  # a rising curve
    headline = at.success[0].value
    assert "NHS number alone recognises" in headline
    summary = at.dataframe[0].value
    row = summary.set_index("measure").loc["…recognised by NHS number alone"]
    assert row["scenario"] > row["today"]
    text = " ".join(e.value for e in at.markdown)
    assert "Police: NHS number recorded on 100%" in text and "Same children, same encounters" in text


def test_model_on_real_data_is_labelled_as_a_model(db_path, monkeypatch):
    at = run_page(PAGE, db_path, monkeypatch)
    at.radio(key="scn_kind").set_value("Model on your data").run()
    assert not at.exception, at.exception
    at.slider(key="scn_cap_police_model").set_value(100)
    _run(at)
    assert "Model" in at.subheader[0].value and "not a re-run" in at.subheader[0].value
    assert at.success[0].value.startswith("Model:")
    table = at.dataframe[0].value
    assert (table["change"].iloc[1] > 0)


def test_aggregate_only_role_sees_protected_area_counts(db_path, monkeypatch):
    """Issue 16: below the lead the area counts are published by cell key perturbation (never c), gains are
    differences of the published counts, and the page names the method."""
    monkeypatch.setenv("JOINEDUP_DEMO_ROLE", "commissioner")
    at = run_page(PAGE, db_path, monkeypatch)
    at.selectbox(key="scn_population").set_value(5_000).run()
    at.slider(key="scn_cap_police_5000").set_value(100)
    _run(at)
    area = next(d.value for d in at.dataframe if "area_code" in d.value.columns)
    shown = area[["recognised_today", "by_number_today", "by_number_scenario"]]
    assert not (shown.astype(str) == "c").any().any()
    assert (area["gain_by_number"] == area["by_number_scenario"] - area["by_number_today"]).all()
    from lib.disclosure.notes import METHOD

    # the method, then the map's hatching (areas with fewer than 10 children known to 2+ agencies)
    assert any(c.value.startswith(METHOD) and "Hatched on the map" in c.value for c in at.caption)
