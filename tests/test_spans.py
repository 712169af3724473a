"""Spans, flows, children missed without linkage, and one child's masked journey.

Exact numbers on a hand-built tiny store (tests/fixtures_linkage.py: TINY_ROWS, where every home area, span,
flow and miss is worked out by hand), then sanity checks against an independent pandas recount on a linked
synthetic store.
"""
from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from lib.measures import journeys, spans
from lib.records import store
from tests.fixtures_linkage import h, private_linked_store, tiny_store

LEEDS, BRADFORD, MANCHESTER, CARDIFF, BRISTOL = "E08000035", "E08000032", "E08000003", "W06000015", "E06000023"
WEST_YORKS, GTR_MANCHESTER, SOUTH_WALES, AVON = "E23000010", "E23000005", "W15000003", "E23000036"
HEX64 = re.compile(r"[0-9a-f]{64}")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    con = tiny_store(tmp_path_factory.mktemp("tiny") / "tiny.duckdb")
    yield con
    con.close()


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    # a private copy: this process may hold the shared store open read-only (a page's cached version connection,
    # another module's reader), and DuckDB refuses a read-write connection to a file open with another configuration
    con = store.connect(private_linked_store(tmp_path_factory, "spans_synth"))
    yield con
    con.close()


def _row(table: pd.DataFrame, code: str) -> dict:
    found = table[table["area_code"] == code]
    assert len(found) == 1, f"{code} not exactly once"
    return found.iloc[0].to_dict()


# -- tiny store: exact ---------------------------------------------------------------------------------

def test_home_area_is_most_recent_then_most_frequent(tiny):
    homes = spans.child_table(tiny, "utla").set_index("child_id")["home_area"]
    assert homes["CH-2"] == BRADFORD  # moved: latest record says Bradford
    assert homes["CH-6"] == BRADFORD  # latest date names Leeds once and Bradford once; Bradford is more frequent
    assert homes["CH-1"] == LEEDS and homes["CH-8"] == CARDIFF
    assert pd.isna(homes["CH-7"])  # no home postcode: unplaced
    assert set(homes.index) == {f"CH-{i}" for i in range(1, 9)}  # the anonymous contact is not a child


def test_spans_by_area_counts_exactly(tiny):
    table = spans.spans_by_area(tiny, "utla")
    assert len(table) == 175 and table["area_code"].is_unique  # every children's services authority
    leeds = _row(table, LEEDS)
    assert (leeds["children"], leeds["multi_agency"]) == (4, 3)
    assert (leeds["spans_pfa"], leeds["spans_utla"], leeds["spans_nhs"], leeds["spans_trust"],
            leeds["spans_any"]) == (1, 2, 1, 2, 2)
    assert leeds["share_pfa"] == pytest.approx(0.25) and leeds["share_utla"] == pytest.approx(0.5)
    assert leeds["area_name"] == "Leeds"
    bradford = _row(table, BRADFORD)
    assert (bradford["children"], bradford["multi_agency"], bradford["spans_pfa"], bradford["spans_utla"],
            bradford["spans_nhs"], bradford["spans_trust"]) == (2, 1, 0, 1, 0, 1)
    cardiff = _row(table, CARDIFF)
    assert (cardiff["children"], cardiff["spans_pfa"], cardiff["spans_nhs"], cardiff["share_any"]) == (1, 1, 1, 1.0)
    manchester = _row(table, MANCHESTER)
    assert manchester["children"] == 0 and math.isnan(manchester["share_pfa"])
    assert table["children"].sum() == 7  # CH-7 has no home and is left out


def test_nhs_span_is_icb_in_england_and_health_board_in_wales(tiny):
    kids = spans.child_table(tiny, "pfa").set_index("child_id")
    assert kids.loc["CH-8", "areas_nhs"] == 2  # Cardiff and Vale health board, then an ICB in Bristol
    assert bool(kids.loc["CH-8", "spans_nhs"])
    assert not kids.loc["CH-4", "spans_nhs"]  # Leeds and Bradford share West Yorkshire ICB


def test_other_layers(tiny):
    pfa = spans.spans_by_area(tiny, "pfa")
    assert len(pfa) == 43
    assert _row(pfa, WEST_YORKS)["children"] == 6 and _row(pfa, WEST_YORKS)["spans_pfa"] == 1
    assert _row(pfa, SOUTH_WALES)["children"] == 1
    icb = spans.spans_by_area(tiny, "icb")  # England only: the Welsh child is unplaced here
    assert icb["children"].sum() == 6
    assert spans.overview(tiny, "icb")["unplaced"] == 2


def test_flows_both_directions_exactly(tiny):
    table = spans.flows(tiny, "utla", top=None)
    got = [(r.from_code, r.to_code, r.children, r.encounters, r.reverse_children, r.reverse_encounters)
           for r in table.itertuples()]
    assert got == [
        (LEEDS, MANCHESTER, 1, 2, 0, 0),
        (BRADFORD, LEEDS, 1, 1, 1, 1),
        (LEEDS, BRADFORD, 1, 1, 1, 1),
        (CARDIFF, BRISTOL, 1, 1, 0, 0),
    ]
    assert table.loc[0, "flow"] == "Leeds → Manchester"
    assert list(spans.flows(tiny, "utla", top=2)["to_code"]) == [MANCHESTER, LEEDS]
    into_manchester = spans.flows(tiny, "utla", top=None, area=MANCHESTER)
    assert list(into_manchester["flow"]) == ["Leeds → Manchester"]
    pfa = spans.flows(tiny, "pfa", top=None)
    assert [(r.from_code, r.to_code, r.children, r.encounters) for r in pfa.itertuples()] == [
        (WEST_YORKS, GTR_MANCHESTER, 1, 2), (SOUTH_WALES, AVON, 1, 1)]


def test_missed_without_linkage_exactly(tiny):
    reach = spans.exact_match_reach(tiny).set_index("child_id")
    assert reach.loc["CH-3", "agencies_exact"] == 3  # police-health by NHS number, health-education by name+DOB
    assert reach.loc["CH-5", "agencies_exact"] == 2  # education shares nothing with the others
    assert reach.loc["CH-2", "agencies_exact"] == 1  # forenames differ: only the model joined them
    assert "CH-4" not in reach.index  # one agency only
    table = spans.missed_without_linkage(tiny, "utla")
    leeds, bradford, cardiff = (_row(table, c) for c in (LEEDS, BRADFORD, CARDIFF))
    assert (leeds["multi_agency"], leeds["missed"], leeds["partly_missed"]) == (3, 0, 1)
    assert (bradford["multi_agency"], bradford["missed"], bradford["share_missed"]) == (1, 1, 1.0)
    assert (cardiff["multi_agency"], cardiff["missed"]) == (1, 0)
    assert math.isnan(_row(table, MANCHESTER)["share_missed"])


def test_overview_and_spanning_children(tiny):
    totals = spans.overview(tiny, "utla")
    assert totals == {"records": 21, "anonymous_records": 1, "children": 8, "multi_agency": 6, "missed": 2,
                      "unplaced": 1, "spans_pfa": 3, "spans_utla": 5, "spans_nhs": 3, "spans_trust": 5,
                      "spans_any": 5}
    chosen = spans.spanning_children(tiny, "utla", span="pfa")
    assert set(chosen["child_id"]) == {"CH-1", "CH-7", "CH-8"}
    assert list(spans.spanning_children(tiny, "utla", area=BRADFORD)["child_id"]) == ["CH-2"]
    assert chosen.loc[chosen["child_id"] == "CH-7", "home_name"].item() == "(home not placed)"


def test_child_records_are_dated_and_masked(tiny):
    records = journeys.child_records(tiny, "CH-1")
    assert list(records.columns) == journeys.record_columns()
    assert list(records["encounter_date"].dt.day) == [10, 10, 10] and records["encounter_date"].is_monotonic_increasing
    assert list(records["agency"]) == ["Police", "Health", "Health"]
    assert list(records["enc_utla_name"]) == ["Leeds", "Manchester", "Manchester"]
    assert list(records["nhs_number"]) == ["valid number ••••"] * 3
    assert list(records["name"]) == ["name (sound code JN SM0)", "none", "none"]
    assert records.loc[0, "birth_year"] == 2009 and records.loc[0, "home_sector"] == "LS22 5"
    assert list(records["cse_flag"].astype("object").fillna("na")) == [False, True, "na"]
    assert records["lon"].notna().all()
    text = records.astype(str).to_string() + journeys.display_table(records).astype(str).to_string()
    assert not HEX64.search(text)
    assert h("N1") not in text and h("N1")[:24] not in text
    two_numbers = journeys.child_records(tiny, "CH-6")["nhs_number"]
    assert list(two_numbers) == ["valid number •••• (A)", "valid number •••• (B)", "none"]
    probabilistic = journeys.child_records(tiny, "CH-2")
    assert "0.9700" in probabilistic.loc[0, "how_linked"]
    assert journeys.child_records(tiny, "CH-none").empty


def test_child_summary(tiny):
    summary = journeys.child_summary(tiny, "CH-8")
    assert summary["records"] == 2 and summary["agencies"] == ["Health", "Police"]
    assert summary["spans"] == {"pfa": 2, "utla": 2, "nhs": 2, "trust": 2}
    assert summary["home"]["utla"] == "Cardiff" and summary["cse_records"] == 1
    assert summary["link_methods"] == {"nhs_number": 2}
    assert "2 police force areas" in journeys.describe_child(summary)
    assert journeys.child_summary(tiny, "CH-none") == {}


def test_missing_linkage_and_bad_layer(tmp_path, tiny):
    empty = store.connect(tmp_path / "empty.duckdb")
    assert not spans.has_linkage(empty)
    with pytest.raises(spans.LinkageMissing):
        spans.spans_by_area(empty, "utla")
    empty.close()
    with pytest.raises(ValueError):
        spans.spans_by_area(tiny, "home_utla; DROP TABLE encounters")
    with pytest.raises(ValueError):
        spans.spanning_children(tiny, "utla", span="lad")


# -- synthetic store: sanity and an independent recount --------------------------------------------------

def _joined(con) -> pd.DataFrame:
    with store.cursor(con) as cur:
        return cur.execute("SELECT rc.child_id, e.* FROM encounters e JOIN record_child rc USING (record_key) "
                           "WHERE rc.child_id IS NOT NULL").df()


def test_synthetic_spans_match_an_independent_recount(synth):
    table = spans.spans_by_area(synth, "pfa")
    shares = table.filter(like="share_").stack().dropna()
    assert len(shares) and shares.between(0, 1).all()
    assert (table[["spans_pfa", "spans_utla", "spans_nhs", "spans_trust"]].le(table["spans_any"], axis=0)).all().all()

    joined = _joined(synth)
    forces = joined.groupby("child_id")["enc_pfa"].nunique()
    two_forces = forces[forces >= 2].index
    assert len(two_forces) > 20
    kids = spans.child_table(synth, "pfa").set_index("child_id")
    assert kids.loc[two_forces, "spans_pfa"].all()
    assert not kids.loc[forces[forces < 2].index, "spans_pfa"].any()

    # independent home area: latest dated home_pfa, then most frequent, then smallest code
    placed = joined.dropna(subset=["home_pfa"])
    stats = placed.groupby(["child_id", "home_pfa"]).agg(last=("encounter_date", "max"), n=("record_key", "size"))
    stats = stats.reset_index().sort_values(["child_id", "last", "n", "home_pfa"],
                                            ascending=[True, False, False, True])
    home = stats.drop_duplicates("child_id").set_index("child_id")["home_pfa"]
    spanning = home[home.index.isin(two_forces)].value_counts()
    expected = table.set_index("area_code")["spans_pfa"]
    assert (expected.reindex(spanning.index) == spanning).all()
    assert expected.sum() == spanning.sum()
    assert table["children"].sum() == home.size


def test_child_tables_of_several_layers_equal_an_independent_recount_and_leave_no_temporary_table(synth):
    """Every layer's home area (latest dated, then most frequent, then smallest code) and each child's counts, as
    pandas recounts them; made inside a write's transaction on the one cursor the stored build hands over, and the
    temporary tables of the children's numbers and records are gone afterwards."""
    joined = _joined(synth)
    chosen = ["pfa", "lad", "trust", "nhs"]
    with store.cursor(synth) as cur, store.atomic(cur):
        tables = spans.child_tables(store.HeldCursor(cur), chosen)
        left = {r[0] for r in cur.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()}
    assert not left & {spans.CHILD_NUMBERS, spans.LINKED_RECORDS}
    ids = sorted(joined["child_id"].unique())
    for layer in chosen:
        column = f"home_{layer}"
        table = tables[layer]
        assert table["child_id"].tolist() == ids  # every linked child once, in the ids' order
        placed = joined.dropna(subset=[column])
        stats = placed.groupby(["child_id", column]).agg(last=("encounter_date", "max"), n=("record_key", "size"))
        stats = stats.reset_index().sort_values(["child_id", "last", "n", column],
                                                ascending=[True, False, False, True])
        home = stats.drop_duplicates("child_id").set_index("child_id")[column].reindex(ids)
        got = table.set_index("child_id")["home_area"]
        assert got.index.equals(home.index) and got.isna().equals(home.isna())
        assert (got[got.notna()] == home[home.notna()]).all()
    per_child = joined.groupby("child_id").agg(records=("record_key", "size"), agencies=("agency_type", "nunique"),
                                               forces=("enc_pfa", "nunique")).reindex(ids)
    table = tables["pfa"].set_index("child_id")
    assert (table["records"] == per_child["records"]).all() and (table["agencies"] == per_child["agencies"]).all()
    assert (table["areas_pfa"] == per_child["forces"]).all()


def test_synthetic_flows_exclude_same_area_and_pair_up(synth):
    table = spans.flows(synth, "utla", top=None)
    assert len(table) > 10
    assert (table["from_code"] != table["to_code"]).all()
    assert (table["children"] >= 1).all() and (table["encounters"] >= table["children"]).all()
    counts = table.set_index(["from_code", "to_code"])
    for row in table.head(30).itertuples():
        back = (row.to_code, row.from_code)
        assert row.reverse_children == (counts.loc[back, "children"] if back in counts.index else 0)
    top = spans.flows(synth, "utla", top=10)
    assert len(top) == 10 and list(top["children"]) == sorted(top["children"], reverse=True)


def test_synthetic_missed_children_share_no_identifier_across_agencies(synth):
    reach = spans.exact_match_reach(synth)
    missed = set(reach.loc[reach["agencies_exact"] < 2, "child_id"])
    found = set(reach.loc[reach["agencies_exact"] >= 2, "child_id"])
    assert missed and found
    joined = _joined(synth)
    joined = joined[joined["child_id"].isin(missed | found)].copy()
    joined["name_dob"] = joined["forename_hash"] + joined["surname_hash"] + joined["dob_hash"]

    def cross_agency_shared(frame: pd.DataFrame) -> set[str]:
        out = set()
        for column in ("nhs_hash", "name_dob"):
            part = frame.dropna(subset=[column])
            agencies = part.groupby(["child_id", column])["agency_type"].nunique()
            out |= set(agencies[agencies >= 2].index.get_level_values("child_id"))
        return out

    shared = cross_agency_shared(joined)
    assert not (missed & shared)  # a missed child has no cross-agency pair sharing an identifier
    assert found <= shared
    table = spans.missed_without_linkage(synth, "utla")
    assert table["missed"].le(table["multi_agency"]).all()
    assert table["share_missed"].dropna().between(0, 1).all()


def test_synthetic_journeys_never_show_hashes(synth):
    chosen = spans.spanning_children(synth, "utla", limit=15)
    assert len(chosen) == 15 and chosen["areas"].is_monotonic_decreasing
    joined = _joined(synth)
    for child_id in chosen["child_id"]:
        records = journeys.child_records(synth, child_id)
        assert len(records) == (joined["child_id"] == child_id).sum()
        text = journeys.display_table(records).astype(str).to_string() + records.astype(str).to_string()
        assert not HEX64.search(text)
        for number in joined.loc[joined["child_id"] == child_id, "nhs_hash"].dropna().unique():
            assert number[:24] not in text
        summary = journeys.child_summary(synth, child_id)
        assert max(summary["spans"].values()) >= 2


def test_records_stored_after_linkage_are_counted(tmp_path):
    con = tiny_store(tmp_path / "later.duckdb")
    assert spans.records_not_linked(con) == 0
    con.execute("INSERT INTO encounters SELECT * REPLACE (record_key || '-later' AS record_key) FROM encounters "
                "WHERE source_record_id = 'T-000'")
    assert spans.records_not_linked(con) == 1
    assert spans.overview(con, "utla")["records"] == 21  # figures cover linked records only
    con.close()


def test_child_keys_in_the_homes_order_equal_those_looked_up_by_id(synth):
    """child_keys takes a child's record key and home atom by position when the children are child_tables' own, in
    its order (the stored measures' path), and by id otherwise: the same keys either way."""
    tables = spans.child_tables(synth, [*spans.RESIDENT_LAYERS, "utla"])
    homes = spans.resident_homes(synth, tables)
    homes = spans.child_keys(synth, homes, homes)
    children = tables["utla"]
    in_order = spans.child_keys(synth, children, homes)
    shuffled = spans.child_keys(synth, children.sample(frac=1.0, random_state=3), homes).sort_index()
    assert children["child_id"].equals(homes["child_id"]) and len(children) > 100
    pd.testing.assert_frame_equal(in_order, shuffled, check_exact=True)


def test_measures_from_the_shared_atoms_and_reach_equal_each_layer_computed_alone(synth):
    """The stored measures compute the per-child facts once for every layer (``with_reach``: the exact-match reach
    looked up once; ``resident_atoms``: every home atom's published counts once; ``keyed_records``: the keyed
    records joined once for every layer's flows). Each measure so computed equals the same measure computed
    alone from the layer's own children, exactly."""
    from lib.disclosure import members
    from lib.measures import compare

    keys = members.key_tables(synth)
    layers = list(spans.HOME_LAYERS)
    tables = spans.child_tables(synth, [*spans.RESIDENT_LAYERS, *layers])
    homes = spans.resident_homes(synth, tables)
    keyed_homes = spans.child_keys(synth, homes, homes, keys=keys)
    by_hash = spans.child_keys(synth, homes, homes)  # hashed again, not looked up in the key tables
    assert keyed_homes["rkey"].equals(by_hash["rkey"])
    reach = spans.exact_match_reach(synth)
    exact = spans.with_reach(tables[layers[0]][["child_id"]], reach)["agencies_exact"].to_numpy()
    atoms, missed = None, 0
    with store.cursor(synth) as raw:
        cur = store.HeldCursor(raw)  # the temporary table is the cursor's own: flows must run on it
        records = spans.keyed_records(cur, keys, layers)
        for layer in layers:
            alone = spans.child_keys(synth, tables[layer], keyed_homes)
            shared = alone.assign(agencies_exact=exact)
            atoms = spans.resident_atoms(shared) if atoms is None else atoms
            pd.testing.assert_frame_equal(spans.spans_by_area(synth, layer, children=shared, atoms=atoms),
                                          spans.spans_by_area(synth, layer, children=alone), check_exact=True)
            pd.testing.assert_frame_equal(
                spans.missed_without_linkage(synth, layer, children=shared, reach=reach, atoms=atoms),
                spans.missed_without_linkage(synth, layer, children=alone, reach=reach), check_exact=True)
            overview = spans.overview(synth, layer, children=shared, reach=reach, keys=keys, atoms=atoms)
            assert overview == spans.overview(synth, layer, children=alone, reach=reach, keys=keys)
            missed = max(missed, overview["published_missed"])
            pd.testing.assert_frame_equal(compare.published_span(shared, atoms=atoms), compare.published_span(alone),
                                          check_exact=True)
            pd.testing.assert_frame_equal(spans.flows(cur, layer, top=None, keys=keys, records=records),
                                          spans.flows(synth, layer, top=None, keys=keys), check_exact=True)
        cur.execute(f"DROP TABLE temp.{records}")
    assert (exact >= 2).sum() > 10 and missed > 0
