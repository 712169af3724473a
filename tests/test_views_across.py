"""Across boundaries page = `view across` (issue 15): for every role that may open the page and several
parameter sets, the tables, headline figures and sentences the page renders equal the CLI twin's JSON."""
from __future__ import annotations

import pandas as pd
import pytest

from lib import cli, views
from lib.access.roles import PAGE_ROLES, sees_child_level
from lib.disclosure import residents
from lib.disclosure.cellkey import MAX_NOISE
from lib.measures import spans
from lib.records import store as store_mod
from lib.views import across
from tests.fixtures_linkage import copy_store, synthetic_linked_store
from tests.view_parity import assert_parity, cli_view, run_page

ROLES = sorted(PAGE_ROLES["across"])
#: view parameters -> the widget keys the page reads them from
WIDGETS = {"layer": "across_layer", "span": "across_span", "top": "across_top", "focus": "across_flow_area",
           "resident_in": "child_area", "child": "child_id"}
CASES = {
    "default": {},
    "pfa-nhs-top10": {"layer": "pfa", "span": "nhs", "top": 10},
    "lad-trust": {"layer": "lad", "span": "trust", "top": 25},
}
MAP_SLOTS = ("spans_map", "flows_map", "missed_map", "child_timeline", "child_map")  # captions of closed tabs
OPEN = {"spans_view": "Table", "flows_view": "Table", "missed_view": "Table", "child_view": "Records"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A copy of the session's linked store: the lead's page audits its views beside the store it reads."""
    return copy_store(synthetic_linked_store(tmp_path_factory), tmp_path_factory.mktemp("views_across"))


def _state(params: dict) -> dict:
    return {**OPEN, **{WIDGETS[k]: v for k, v in params.items()}}


def _expected_tables(role: str, params: dict | None = None) -> list[str]:
    """A child's records only when a child was chosen (issue 18: the page opens no child by itself)."""
    chosen = sees_child_level(role) and bool((params or {}).get("child"))
    return ["spans", "flows", "missed", *(["child_records"] if chosen else [])]


def _metrics(at) -> list[list]:
    return [[m.label, m.value] for m in at.metric]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", list(CASES))
def test_rendered_tables_equal_the_cli_view(store, monkeypatch, role, case):
    params = CASES[case]
    at, view = assert_parity(monkeypatch, store, "across", role, params=params, query={}, state=_state(params),
                             tables=_expected_tables(role, params))
    metrics = view["tables"]["metrics"]
    assert _metrics(at) == [[row[0], row[1]] for row in metrics["rows"]]
    shown = [m.value for m in at.markdown]
    assert view["sentences"] and all(s in shown for s in view["sentences"])
    captions = [c.value for c in at.caption]
    hidden = {t for slot in MAP_SLOTS for t in view["extra"]["slots"].get(slot, [])}  # tabs left closed
    assert all(n in captions for n in view["notes"] if n not in hidden)
    if role == "lead":
        assert not any(cell == "c" for row in view["tables"]["spans"]["rows"] for cell in row)
    else:
        assert "children" not in view["extra"] and "child_records" not in view["tables"]


@pytest.mark.parametrize("role", ROLES)
def test_flow_focus_parity(store, monkeypatch, role):
    areas = cli_view(store, "across", role, {"layer": "pfa"})["extra"]["flow_areas"]
    focus = areas[len(areas) // 2][0]
    params = {"layer": "pfa", "top": 5, "focus": focus}
    _, view = assert_parity(monkeypatch, store, "across", role, params=params, query={}, state=_state(params),
                            tables=_expected_tables(role, params))
    flows = pd.DataFrame(view["tables"]["flows"]["rows"], columns=view["tables"]["flows"]["columns"])
    assert len(flows) <= 5 and ((flows["from_code"] == focus) | (flows["to_code"] == focus)).all()


def test_the_lead_s_chosen_child_and_area_are_the_cli_s(store, monkeypatch):
    table = cli_view(store, "across", "lead", {"layer": "utla"})["tables"]["spans_all"]
    frame = pd.DataFrame(table["rows"], columns=table["columns"])
    area = frame.sort_values("spans_any", ascending=False)["area_code"].iloc[0]  # most children to list
    children = cli_view(store, "across", "lead", {"resident_in": area})["extra"]["children"]
    child = children[-1][0]
    params = {"resident_in": area, "child": child}
    at, view = assert_parity(monkeypatch, store, "across", "lead", params=params, query={}, state=_state(params),
                             tables=_expected_tables("lead", params))
    assert view["params"]["child"] == child and at.selectbox(key="child_id").value == child
    assert view["tables"]["child_records"]["rows"], "the opened child's records"


def test_the_page_draws_the_view_s_figures(store, monkeypatch):
    import json

    at = run_page(monkeypatch, store, "across", "commissioner", state={"across_layer": "pfa"})
    view = cli_view(store, "across", "commissioner", {"layer": "pfa"})
    drawn = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    spans_map = next(f for f in drawn if f["data"] and f["data"][0].get("type") == "choroplethmap")
    assert spans_map["data"][0]["locations"] == view["figures"]["spans_map"]["data"][0]["locations"]
    assert spans_map["data"][0]["z"] == view["figures"]["spans_map"]["data"][0]["z"]


def test_flows_from_the_full_table_equal_the_measure(store):
    con = store_mod.connect(store, read_only=True)
    try:
        src = views.Source(con, store)
        for layer, top, area in (("utla", 15, None), ("pfa", 5, "E23000007"), ("lad", 50, None)):
            expected = spans.flows(con, layer, top=top, area=area)
            pd.testing.assert_frame_equal(across._flows(src, layer, top, area), expected)
    finally:
        con.close()


def test_aggregate_roles_see_small_counts_perturbed(store):
    """Issue 16: counts below the lead are published by cell key perturbation (docs/DISCLOSURE.md), not hidden
    as c: every count is shown, each the sum of its home atoms' published counts, so within 2 of the true count
    per atom of the area (lib.disclosure.residents), zero stays zero, and some small counts differ."""
    lead = cli_view(store, "across", "lead", {"layer": "lad"})["tables"]["spans_all"]
    commissioner = cli_view(store, "across", "commissioner", {"layer": "lad"})["tables"]["spans_all"]
    column = lead["columns"].index("children")
    code = lead["columns"].index("area_code")
    assert any(1 <= int(row[column]) <= 5 for row in lead["rows"])
    assert not any(row[column] == "c" for row in commissioner["rows"])
    true = {row[code]: int(row[column]) for row in lead["rows"]}
    shown = {row[code]: int(row[column]) for row in commissioner["rows"]}
    assert shown.keys() == true.keys()
    con = store_mod.connect(store, read_only=True)
    try:
        atoms = spans.resident_homes(con).groupby("home_lad")[residents.ATOM].nunique()
    finally:
        con.close()
    assert all(abs(shown[a] - true[a]) <= MAX_NOISE * atoms.get(a, 0) and shown[a] >= 0 for a in true)
    assert any(abs(shown[a] - true[a]) > MAX_NOISE for a in true) or atoms.max() == 1
    assert all(shown[a] == 0 for a in true if true[a] == 0)
    assert any(shown[a] != true[a] for a in true if 1 <= true[a] <= 5)


def test_child_parameters_are_refused_for_aggregate_roles(store, capsys):
    assert cli.main(["view", "across", "--role", "analyst", "--db", str(store), "--param", "child=CH-1"]) == 2
    assert "safeguarding lead only" in capsys.readouterr().err
    assert cli.main(["view", "across", "--role", "lead", "--db", str(store), "--param", "focus=E99999999"]) == 2
    assert "focus='E99999999'" in capsys.readouterr().err


def test_a_published_share_is_never_above_one(store):
    """Counts are perturbed one by one, so a published part can exceed its published whole: every share the
    commissioner sees on the Across page (spans, missed) stays within 0-1 on every layer."""
    for layer in ("pfa", "utla", "lad", "trust"):
        shown = cli_view(store, "across", "commissioner", {"layer": layer})["tables"]
        for name, table in shown.items():
            columns = table["columns"]
            for column in [c for c in columns if c.startswith("share")]:
                values = [row[columns.index(column)] for row in table["rows"]]
                assert all(v is None or 0 <= float(v) <= 1 for v in values), (layer, name, column)


def test_national_totals_are_the_areas_plus_the_unplaced_and_parts_stay_within_wholes(store):
    """Issue 16 browser check: the commissioner's headline read 3,207 children known to 2+ agencies while the
    areas summed to 3,210 plus the unplaced (each total had its own noise), and a UTLA's "span 2+ police areas"
    exceeded its "span 2+ any". Now every resident total is the sum of its home atoms' published counts, so
    headline = areas + unplaced exactly, and a part is capped at its whole atom by atom."""
    con = store_mod.connect(store, read_only=True)
    try:
        src = views.Source(con, store)
        for layer in ("pfa", "utla", "lad", "icb"):
            totals = across._totals(src, layer, "commissioner")
            shown = across._spans_shown(src, layer, "commissioner")
            missed = across._missed_shown(src, layer, "commissioner")
            keyed = across._children(src, layer, True)
            unplaced = keyed[keyed["home_area"].isna()]
            flags = {"children": None, "multi_agency": "multi_agency", "spans_any": "spans_any",
                     "spans_pfa": "spans_pfa"}
            rest = residents.atom_counts(keyed, flags).loc[unplaced[residents.ATOM].unique()].sum()
            assert totals["unplaced"] == rest["children"], layer
            for name in flags:
                assert totals[name] == int(shown[name].sum()) + int(rest[name]), (layer, name)
            assert totals["missed"] >= int(missed["missed"].sum()), layer
            for part, whole in (("multi_agency", "children"), ("spans_any", "children"), ("spans_pfa", "spans_any"),
                                ("spans_utla", "spans_any"), ("spans_nhs", "spans_any"), ("spans_trust", "spans_any")):
                assert (shown[part] <= shown[whole]).all(), (layer, part)
            assert (missed["missed"] <= missed["multi_agency"]).all(), layer
            lead = across._totals(src, layer, "lead")
            assert lead["children"] == len(keyed) and lead["unplaced"] == len(unplaced)
    finally:
        con.close()


def test_the_maps_hatch_areas_whose_coloured_counts_are_small(store):
    """Issue 16 browser check: Gwynedd's share was drawn from 6 of 11 children without hatching (only resident
    children under 10 were hatched). The spans map hatches an area when the share's denominator or numerator is
    published from 1 to 9; the missed map when its coloured count is. The lead's maps have no hatching."""
    from lib.geo import maps

    con = store_mod.connect(store, read_only=True)
    try:
        src = views.Source(con, store)
        for layer, span in (("utla", "any"), ("lad", "pfa")):
            params = views.resolve_params("across", {"layer": layer, "span": span})
            shown = across._spans_shown(src, layer, "commissioner")
            def small(column, table=shown):
                return (table[column] > 0) & (table[column] < 10)
            codes = sorted(shown.loc[small("children") | small(f"spans_{span}"), "area_code"])
            assert (small(f"spans_{span}") & ~small("children")).any()  # the case the check found: now hatched
            fig = across.figure(src, params, "commissioner", "spans_map")
            hatch = [t for t in fig.data if t.name == maps.HATCH_LEGEND]
            assert len(hatch) == 1 and list(hatch[0].lon) == list(maps.hatch_trace(layer, codes).lon), layer
            missed = across._missed_shown(src, layer, "commissioner")
            codes = sorted(missed.loc[(missed["missed"] > 0) & (missed["missed"] < 10), "area_code"])
            fig = across.figure(src, params, "commissioner", "missed_map")
            hatch = [t for t in fig.data if t.name == maps.HATCH_LEGEND]
            assert list(hatch[0].lon) == list(maps.hatch_trace(layer, codes).lon), layer
            lead = across.figure(src, params, "lead", "spans_map")
            assert not [t for t in lead.data if t.name == maps.HATCH_LEGEND]
    finally:
        con.close()
