"""The Compare page and the URL state of the analysis pages (AppTest, headless): a link's query parameters
restore the view, changing the view writes them back, and aggregate-only roles see protected (perturbed) figures."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures_linkage import plotly_specs, synthetic_linked_store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return synthetic_linked_store(tmp_path_factory)


def _page(script, store, monkeypatch, role="lead", params=None):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("JOINEDUP_DB", str(store))
    monkeypatch.setenv("JOINEDUP_DEMO_ROLE", role)
    at = AppTest.from_file(str(ROOT / script), default_timeout=120)
    for key, value in (params or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def _param(at, name):
    value = at.query_params[name]
    return value[0] if isinstance(value, list) else value


def _table(at):
    return at.dataframe[0].value  # the side-by-side table (AppTest dataframes carry no key)


def test_link_restores_compare_view_and_view_writes_link(store, monkeypatch):
    at = _page("pages/compare.py", store, monkeypatch,
               params={"layer": "pfa", "areas": "E23000001,E23000005", "period": "all"})
    assert at.selectbox(key="cmp_layer").value == "pfa"
    assert at.multiselect(key="cmp_areas").value == ["E23000001", "E23000005"]
    table = _table(at)
    assert list(table.columns) == ["Indicator", "Metropolitan Police", "Greater Manchester", "Comparator group",
                                   "England and Wales"]
    assert any("Linkage rate" in label for label in table["Indicator"])
    assert any("valid NHS number" in label for label in table["Indicator"])
    # Change the view: the URL follows, and a fresh session opened on that URL shows the same view.
    at.multiselect(key="cmp_areas").select("E23000010").run()
    assert _param(at, "areas") == "E23000001,E23000005,E23000010"
    again = _page("pages/compare.py", store, monkeypatch,
                  params={k: _param(at, k) for k in at.query_params})
    assert again.multiselect(key="cmp_areas").value == ["E23000001", "E23000005", "E23000010"]
    assert _table(again).equals(_table(at))
    # A link naming codes of another layer does not break the page: they are dropped.
    odd = _page("pages/compare.py", store, monkeypatch, params={"layer": "utla", "areas": "E23000001,E06000066"})
    assert odd.multiselect(key="cmp_areas").value == ["E06000066"]


def test_neighbours_mode_and_user_defined_group(store, monkeypatch):
    at = _page("pages/compare.py", store, monkeypatch,
               params={"layer": "utla", "mode": "neighbours", "areas": "E06000066"})
    columns = list(_table(at).columns)
    assert columns[1] == "Somerset" and 3 <= len(columns) - 3 <= 6  # Somerset and its neighbours
    assert "Devon" in columns  # shares a long boundary with Somerset
    custom = _page("pages/compare.py", store, monkeypatch,
                   params={"layer": "utla", "areas": "E06000066,E10000008", "group": "E06000022,E06000023"})
    assert custom.radio(key="cmp_group_mode").value == "custom"
    assert "user-defined" in " ".join(m.value for m in custom.markdown)
    groups = [d.value["Area"].tolist() for d in custom.dataframe if "Code" in d.value.columns
              and "Area" in d.value.columns]  # the group table (no longer the page's last: published figures follow)
    assert ["Bath and North East Somerset", "Bristol, City of"] in groups


def test_commissioner_sees_perturbed_figures_lead_sees_exact(store, monkeypatch):
    """Issue 16: the commissioner's small counts are perturbed (cell key perturbation), never `c`, and the page
    says how; the lead's are exact. (Was: the commissioner saw `c` for 1-5; that per-table suppression gave
    hidden counts back by subtraction across layers.)"""
    from lib.disclosure import cellkey, notes

    params = {"layer": "lad", "areas": "E06000001,E06000002,E06000003"}
    lead_page = _page("pages/compare.py", store, monkeypatch, params=params)
    comm_page = _page("pages/compare.py", store, monkeypatch, role="commissioner", params=params)
    lead, commissioner = _table(lead_page), _table(comm_page)
    counts = lead[lead["Indicator"].str.endswith("CSE-flagged records")]
    shown = commissioner[commissioner["Indicator"].str.endswith("CSE-flagged records")]
    small = [(i, c) for i in counts.index for c in counts.columns[1:4]
             if counts.at[i, c] not in ("", "0") and 1 <= float(counts.at[i, c].replace(",", "")) <= 5]
    assert small, "the fixture should hold small counts in these districts"
    for table in (lead, commissioner):
        assert "c" not in set(table.iloc[:, 1:].to_numpy().ravel())
    for i, c in small:  # a sum of at most `true` non-empty atoms, each moved by at most MAX_NOISE
        true, published = (float(t.at[i, c].replace(",", "")) for t in (counts, shown))
        assert published >= 0 and abs(published - true) <= cellkey.MAX_NOISE * true
    assert not counts.equals(shown)
    captions = " ".join(c.value for c in comm_page.caption)
    assert notes.METHOD in captions and notes.UNPROTECTED in " ".join(c.value for c in lead_page.caption)


def test_compare_chart_has_table_alternative_and_no_colour_only(store, monkeypatch):
    at = _page("pages/compare.py", store, monkeypatch, params={"layer": "pfa", "areas": "E23000001,E23000005"})
    fig = plotly_specs(at)[0]
    bar = fig["data"][0]
    assert bar["text"] and len(bar["text"]) == len(bar["y"])  # every bar carries its value
    assert set(bar["marker"]["pattern"]["shape"]) >= {"/", "."}  # comparator and national differ by pattern


def test_divergence_link_restores_layer_period_and_area(store, monkeypatch):
    at = _page("pages/divergence.py", store, monkeypatch,
               params={"layer": "pfa", "period": "all", "area": "E23000005"})
    assert at.selectbox(key="div_layer").value == "pfa"
    assert at.selectbox(key="div_area").value == "E23000005"
    assert _param(at, "area") == "E23000005" and _param(at, "layer") == "pfa"
    at.selectbox(key="div_area").set_value("E23000001").run()
    assert _param(at, "area") == "E23000001"
