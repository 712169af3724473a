"""Issue 16 on the pages dc-children protects (Across boundaries, Data, Scenario): the named regressions of the
issue can no longer be recovered exactly, the same cell has the same value wherever it appears, and the lead's
figures are unchanged (docs/DISCLOSURE.md).

The attacker knows the method a page states: where the page names cell key perturbation each published count
is within ``MAX_NOISE`` of the true one; otherwise (per-table suppression, as on main before issue 16) a shown
count is exact and a ``c`` is 1 to 5. The attacker also knows the geography: resident children have one home
area, so a county's children are exactly its districts' (the strongest relation, equality). On main the named
regression pins the hidden count to one value, so this test fails there. Merton (the Scenario area tables) is
tested on a store built for it, old leak and new protection both, in tests/test_attack.py (``merton``).
"""
from __future__ import annotations

import io

import pandas as pd
import pytest

from lib import views
from lib.disclosure.attack import Programme, integer_interval
from lib.disclosure.cellkey import MAX_NOISE
from lib.disclosure.notes import METHOD, UNPROTECTED
from lib.geo import lookup
from lib.geo.layers import COLUMNS
from lib.geo.maps import HATCH_LEGEND
from lib.measures import spans
from lib.records import store as store_mod
from tests.fixtures_linkage import synthetic_linked_store
from tests.view_parity import cli_view


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return synthetic_linked_store(tmp_path_factory)


def _code(layer: str, name: str) -> str:
    """An area's code from the official names (never typed from memory)."""
    codes = [code for code, n in lookup.name_of(layer).items() if n == name]
    assert len(codes) == 1, (layer, name, codes)
    return codes[0]


def _parts(inner: str, outer: str, code: str) -> list[str]:
    """The areas of ``inner`` inside area ``code`` of ``outer`` (official LSOA lookup)."""
    table = lookup.lsoa_table()[[COLUMNS[inner], COLUMNS[outer]]].dropna().drop_duplicates()
    return sorted(table.loc[table[COLUMNS[outer]] == code, COLUMNS[inner]].astype("str"))


def _frame(table: dict) -> pd.DataFrame:
    return pd.DataFrame(table["rows"], columns=table["columns"])


def _attack(published: dict[str, object], whole: str, parts: list[str], target: str, noise: int) -> tuple[int, int]:
    """The whole values the target's true count can still be, given the published counts (``c``: 1 to 5; a
    number: within ``noise``) and that the whole's members are exactly its parts' members."""
    programme = Programme()
    for cell, value in published.items():
        if value == "c":
            programme.var(cell, 1.0, 5.0)
        else:
            programme.var(cell, max(0.0, float(value) - noise), float(value) + noise)
    terms = {programme.columns[p]: 1.0 for p in parts}
    terms[programme.columns[whole]] = -1.0
    programme.add_eq(terms, 0.0)
    return integer_interval(*programme.bound({target: 1.0}))


def _noise(notes: list[str]) -> int:
    """What the page tells the attacker: cell key perturbation (counts within MAX_NOISE) or exact counts."""
    return MAX_NOISE if METHOD in notes else 0


def test_north_warwickshire_cannot_be_recovered_from_warwickshire(store):
    """Across boundaries, resident children: Warwickshire minus its other districts gave North Warwickshire."""
    county, target = _code("utla", "Warwickshire"), _code("lad", "North Warwickshire")
    districts = _parts("lad", "utla", county)
    con = store_mod.connect(store, read_only=True)
    try:
        true_lad = spans.spans_by_area(con, "lad").set_index("area_code")["children"]
        true_utla = spans.spans_by_area(con, "utla").set_index("area_code")["children"]
    finally:
        con.close()
    assert 1 <= true_lad[target] <= 5, "the case needs North Warwickshire's count small"
    assert true_utla[county] == true_lad[districts].sum(), "the county's children are exactly its districts'"
    lad = cli_view(store, "across", "commissioner", {"layer": "lad"})
    utla = cli_view(store, "across", "commissioner", {"layer": "utla"})
    shown_lad = _frame(lad["tables"]["spans_all"]).set_index("area_code")["children"]
    shown_utla = _frame(utla["tables"]["spans_all"]).set_index("area_code")["children"]
    published = {county: shown_utla[county], **{d: shown_lad[d] for d in districts}}
    noise = min(_noise(lad["notes"]), _noise(utla["notes"]))
    low, high = _attack(published, county, districts, target, noise)
    assert low <= true_lad[target] <= high, "the attacker's bounds hold the true count"
    assert high > low, f"North Warwickshire pinned to {low} by subtraction"


def test_same_cell_same_value_across_table_csv_map_and_a_second_build(store):
    """Across boundaries for a commissioner: a cell's published value is the same in the table, the CSV, the
    map's hover, the reverse columns of the flow table, and a second build from a fresh source."""
    params = views.resolve_params("across", {"layer": "utla"})
    first = views.build("across", store, params, "commissioner")
    second = views.build("across", store, params, "commissioner")
    every = first.table("spans_all").frame.set_index("area_code")
    assert not (every[["children", "multi_agency", "spans_any"]] == "c").any().any()
    pd.testing.assert_frame_equal(every, second.table("spans_all").frame.set_index("area_code"))
    shown = first.table("spans").frame.set_index("area_code")
    assert (shown["children"] == every.loc[shown.index, "children"]).all()
    csv = pd.read_csv(io.BytesIO(first.to_csv("spans_all")), dtype={"area_code": "str"})
    assert dict(zip(csv["area_code"], csv["children"])) == every["children"].to_dict()
    spans_map = first.figures["spans_map"].to_plotly_json()["data"][0]
    hover = dict(zip(spans_map["locations"], spans_map["text"]))
    assert hover
    for code, text in hover.items():
        assert f"of {every.loc[code, 'children']} resident children" in str(text)
    flows = first.table("flows_all").frame.set_index(["from_code", "to_code"])
    for (a, b), row in flows.head(50).iterrows():
        if (b, a) in flows.index:
            assert row["reverse_children"] == flows.loc[(b, a), "children"]
            assert row["reverse_encounters"] == flows.loc[(b, a), "encounters"]
    assert METHOD in first.notes
    small = set(every.index[(every["children"] > 0) & (every["children"] < 10)])
    assert small, "the case needs small areas to hatch"
    for name in ("spans_map", "missed_map"):
        traces = first.figures[name].to_plotly_json()["data"]
        assert HATCH_LEGEND in [t.get("name") for t in traces], f"{name}: small areas hatched with a legend"


def test_lead_figures_unchanged_and_said_to_be_unprotected(store):
    con = store_mod.connect(store, read_only=True)
    try:
        exact = spans.spans_by_area(con, "lad")
        flows = spans.flows(con, "lad", top=None)
    finally:
        con.close()
    lead = views.build("across", store, views.resolve_params("across", {"layer": "lad"}), "lead")
    shown = lead.table("spans_all").frame
    assert not any(c.startswith("key_") for c in shown.columns)
    pd.testing.assert_frame_equal(shown.reset_index(drop=True), exact.reset_index(drop=True))
    pd.testing.assert_frame_equal(lead.table("flows_all").frame.reset_index(drop=True), flows)
    assert UNPROTECTED in lead.notes and METHOD not in lead.notes
    assert HATCH_LEGEND not in [t.get("name") for t in lead.figures["spans_map"].to_plotly_json()["data"]]


def test_scenario_national_counts_are_published_below_the_lead():
    """The scenario's summary counts of children (today and under the scenario) are perturbed with their
    children's cell keys below the lead, gains follow from them, keys never leave; a result without keys is
    refused below the lead; the lead's are exact."""
    from lib.disclosure.cellkey import perturb
    from lib.views.scenario import published_result

    today = {"multi_agency_recognised": 4, "multi_agency_recognised_by_number": 3, "multi_agency_children_true": 5,
             "precision": 0.99}
    scen = {**today, "multi_agency_recognised": 5, "multi_agency_recognised_by_number": 5}
    keys = {"multi_agency_children_true": 200, "today.multi_agency_recognised": 3,
            "scenario.multi_agency_recognised": 17, "today.multi_agency_recognised_by_number": 250,
            "scenario.multi_agency_recognised_by_number": 90}
    result = {"kind": "simulation", "population": {"multi_agency_children_true": 5}, "today": today,
              "scenario": scen, "total_keys": keys}
    shown = published_result(result, "commissioner")
    assert shown["population"]["multi_agency_children_true"] == perturb(5, 200)
    assert shown["today"]["multi_agency_recognised_by_number"] == perturb(3, 250)
    assert shown["scenario"]["multi_agency_recognised"] == perturb(5, 17)
    assert shown["gain"]["multi_agency_recognised"] == (shown["scenario"]["multi_agency_recognised"]
                                                        - shown["today"]["multi_agency_recognised"])
    assert [perturb(5, 200), perturb(3, 250)] != [5, 3], "these keys move the counts"
    assert published_result(result, "lead") is result
    with pytest.raises(KeyError):
        published_result({k: v for k, v in result.items() if k != "total_keys"}, "analyst")
