"""Boundaries page = `view boundaries` (issue 15): for every role and several parameter sets, the tables,
headline figures and sentences the page renders equal the CLI twin's JSON.

The page keeps two st.table panels (what a place falls in, the layers' vintages: tests/test_app_map.py reads
them as tables, index and all), so the tables are compared here with the index put back as a column,
rather than through tests/view_parity.assert_parity (which takes st.dataframe only)."""
from __future__ import annotations

import json

import pytest

from lib import cli
from lib.access.roles import PAGE_ROLES
from lib.records import store as store_mod
from lib.views import boundaries
from tests.view_parity import cli_view, normalised, run_page

ROLES = sorted(PAGE_ROLES["boundaries"])
#: (view parameters, session state of the page's widgets for the same choice)
CASES = {
    "overlay-default": ({}, {}),
    "overlay-postcode": ({"place": "LS1 3EX", "layers": "pfa,trust", "hover": "pfa"},
                         {"place_query": "LS1 3EX", "layer_utla": False, "layer_icb": False, "layer_lhb": False,
                          "layer_trust": True, "hover_layer": "pfa"}),
    "overlay-area-second-match": ({"place": "Essex", "match": 1}, {"place_query": "Essex", "place_match": 1}),
    "misalignment": ({"view": "misalignment", "layer": "pfa", "against": "trust", "min_share": 5},
                     {"view": "Where boundaries misalign", "mis_layer": "pfa", "mis_against": "trust"}),
    "trust-shares": ({"view": "trust_shares", "trust": "R0A"},
                     {"view": "Trust catchment shares", "share_trust": "R0A"}),
}
#: Tables the page draws with st.table (index column first) and with st.dataframe, in page order.
ST_TABLE_INDEX = {"place": "Geography", "vintages": "Layer"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The page reads no records: an empty store is enough for the page and the CLI."""
    path = tmp_path_factory.mktemp("views_boundaries") / "empty.duckdb"
    store_mod.connect(path).close()
    return path


def _rendered(at) -> dict[str, dict]:
    tables = {}
    for element in at.table:
        frame = element.value.reset_index()
        name = next(n for n, index in ST_TABLE_INDEX.items() if frame.columns[0] == index)
        tables[name] = normalised(frame)
    for element in at.dataframe:
        name = "misalignment" if "crossing_partners" in element.value.columns else "trust_shares"
        tables[name] = normalised(element.value)
    return tables


def _with_slider(at, params):
    if "min_share" in params:  # a slider cannot be set through session_state before its first run
        at.slider[0].set_value(params["min_share"]).run()
        assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", list(CASES))
def test_rendered_tables_equal_the_cli_view(store, monkeypatch, role, case):
    params, state = CASES[case]
    view = cli_view(store, "boundaries", role, params)
    at = _with_slider(run_page(monkeypatch, store, "boundaries", role, state=state), params)
    rendered = _rendered(at)
    expected = [n for n in view["table_order"] if n != "metrics"]
    assert sorted(rendered) == sorted(expected)
    for name in expected:
        want = {"columns": view["tables"][name]["columns"], "rows": view["tables"][name]["rows"]}
        assert rendered[name] == want, f"{case}/{name} as {role}"
    if "metrics" in view["tables"]:
        assert [[m.label, m.value] for m in at.metric] == [r[:2] for r in view["tables"]["metrics"]["rows"]]
    markdown = [m.value for m in at.markdown]
    assert all(s in markdown for s in view["sentences"])
    captions = [c.value for c in at.caption]
    assert all(n in captions for n in view["notes"])
    assert [w.value for w in at.warning] == view["extra"]["warnings"]
    assert all(i in [box.value for box in at.info] for i in view["extra"]["info"])
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    spec = next(iter(view["figures"].values()))
    assert figure["data"][0].get("locations") == spec["data"][0].get("locations")
    assert figure["layout"]["map"].get("zoom") == spec["layout"]["map"].get("zoom")


def test_view_is_the_same_for_every_role(store):
    params = {"view": "misalignment", "layer": "utla"}
    views_by_role = [cli_view(store, "boundaries", role, params) for role in ROLES]
    assert all(v["tables"] == views_by_role[0]["tables"] for v in views_by_role)


def test_unknown_place_messages_and_bad_parameters(store, capsys):
    assert cli_view(store, "boundaries", "analyst", {"place": "ZZ99 9ZZ"})["extra"]["warnings"] == [
        "ZZ99 9ZZ is not a current postcode in England or Wales."]
    assert "place" not in cli_view(store, "boundaries", "analyst", {"place": "Atlantis"})["tables"]
    for param, message in (("trust=XXX", "trust='XXX'"), ("match=99", "match=99"),
                           ("against=utla", "against='utla'"), ("min_share=50", "min_share=50")):
        argv = ["view", "boundaries", "--role", "lead", "--db", str(store), "--param", param]
        if param.startswith("match"):
            argv += ["--param", "place=Essex"]
        if param.startswith("against"):
            argv += ["--param", "view=misalignment"]
        assert cli.main(argv) == 2, param
        assert message in capsys.readouterr().err


def test_misalignment_download_is_the_shown_table(store):
    data = boundaries.build(None, {**{k: p.default for k, p in boundaries.PARAMS.items()}, "view": "misalignment"},
                            "commissioner")
    table = data.table("misalignment")
    assert table.downloadable and list(table.frame.columns) == boundaries.misalignment_columns("utla")
    assert table.frame["crossing_partners"].is_monotonic_decreasing
