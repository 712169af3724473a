"""The Review links page: the queue, a waterfall that explains the pair, masked groups, decisions stored."""
from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT
from tests.fixtures_linkage import copy_store, plotly_specs, run_page, synthetic_linked_store

PAGE = str(ROOT / "pages" / "review.py")


@pytest.fixture()
def app(tmp_path_factory, tmp_path, monkeypatch) -> tuple[AppTest, str]:
    path = copy_store(synthetic_linked_store(tmp_path_factory), tmp_path)  # decisions must not leak
    return run_page(PAGE, path, monkeypatch), str(path)


def test_queue_explains_a_pair_with_a_waterfall_and_masked_groups(app):
    at, _ = app
    assert int(at.metric[0].value.replace(",", "")) > 0
    spec = plotly_specs(at)[0]
    assert spec["data"][0]["type"] == "waterfall"
    assert "The model puts this pair at" in " ".join(m.value for m in at.markdown)
    for frame in at.dataframe:
        text = frame.value.astype(str).to_string() + " ".join(frame.value.columns)
        assert not re.search(r"[0-9a-f]{32,}", text)
        assert "_hash" not in text


def test_a_decision_needs_a_name_and_is_stored(app):
    at, path = app
    assert at.button(key="decide_accept").disabled
    at.text_input(key="reviewer").set_value("Safeguarding lead").run()
    at.button(key="decide_reject").click().run()
    assert not at.exception, at.exception
    assert any("Recorded: reject" in s.value for s in at.success)
    from lib.records import store

    con = store.connect(path, read_only=True)  # the decision is the store's next version: a reader sees it
    try:
        rows = con.execute("SELECT decision, reviewer FROM review_decisions").fetchall()
    finally:
        con.close()
    assert rows == [("reject", "Safeguarding lead")]
