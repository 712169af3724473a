"""The committed reference facts equal the official ONS lookups they are derived from.

The official files are the compact extracts in geodata/official/ (checksummed in geography_sources.json,
taken from humaniverse/geographr's vendored ONS lookups); the derived files are geodata/facts/*.csv,
geodata/areas.csv and geodata/lsoa_lookup.parquet. Nothing here needs the git mirrors or the network
(the one test that re-extracts from the mirror is skipped without it).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from lib.geo import layers, lookup, official_lookups, successors

FACTS = lookup.GEODATA / "facts"
MIRROR = Path("/work/.mirror")


def fact(name: str) -> pd.DataFrame:
    return pd.read_csv(FACTS / name, comment="#", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def memberships() -> pd.DataFrame:
    return fact("lad_memberships.csv").set_index("lad_code")


@pytest.fixture(scope="module")
def lad_recode() -> dict[str, str]:
    """Retired LAD code → current code, for codes the official lookups carry and the postcode directory does not."""
    succ = fact("code_successors.csv")
    rows = succ[(succ["kind"] == "lad") & (succ["status"] == "mapped")]
    return dict(zip(rows["old_code"], rows["new_code"]))


def test_official_extracts_match_their_checksums():
    assert official_lookups.verify() == []
    entries = official_lookups.sources_json()
    for key, entry in entries.items():
        assert entry["repository"] == official_lookups.BY_KEY[key].repository and len(entry["commit"]) == 40
        assert entry["repository"] in ("humaniverse/geographr", "dfe-analytical-services/CSC_outcomes_and_enablers",
                                       "humaniverse/demographr")
        assert entry["licence"] == "Open Government Licence v3.0" and entry["vintage"] and entry["dataset"]
        assert len(official_lookups.read(key)) == entry["rows"]


@pytest.mark.skipif(not all((MIRROR / s.repository.replace("/", "+") / "repo").exists()
                            for s in official_lookups.SOURCES), reason="no git mirrors here")
def test_extracts_are_what_the_mirror_gives(tmp_path):
    fresh = official_lookups.extract(MIRROR, tmp_path)
    committed = official_lookups.sources_json()
    for key, entry in fresh.items():
        if entry["commit"] == committed[key]["commit"]:
            assert entry["sha256"] == committed[key]["sha256"], key


def test_all_43_police_force_codes_and_names_equal_the_ons_lookup():
    ons = official_lookups.read("lad24_csp24_pfa24")[["pfa24_code", "pfa24_name"]].drop_duplicates()
    ours = fact("police_force_areas.csv")
    assert len(ours) == 43 and ours["pfa_code"].is_unique
    assert set(zip(ours["pfa_code"], ours["pfa_name"])) == set(zip(ons["pfa24_code"], ons["pfa24_name"]))
    shown = lookup.area_names("pfa")
    assert set(zip(shown["code"], shown["name"])) == set(zip(ons["pfa24_code"], ons["pfa24_name"]))
    # the swap of issue 13, checked against the official file rather than typed
    official = dict(zip(ons["pfa24_code"], ons["pfa24_name"]))
    assert official["E23000036"] == "Avon and Somerset" and official["E23000038"] == "Wiltshire"
    assert lookup.name_of("pfa")["E23000036"] == "Avon and Somerset"


def test_every_lad_to_pfa_membership_equals_the_ons_lookup(memberships, lad_recode):
    ons = official_lookups.read("lad24_csp24_pfa24").drop_duplicates(["ltla24_code", "pfa24_code"])
    assert len(memberships) == 318 == len(ons)
    for lad, pfa in zip(ons["ltla24_code"], ons["pfa24_code"]):
        assert memberships.at[lad_recode.get(lad, lad), "pfa_code"] == pfa, lad


def test_every_lad_to_utla_membership_equals_the_ons_lookup(memberships, lad_recode):
    ons = official_lookups.read("ltla23_utla23")
    assert len(ons) == 318
    for lad, utla, name in zip(ons["ltla23_code"], ons["utla23_code"], ons["utla23_name"]):
        row = memberships.loc[lad_recode.get(lad, lad)]
        # an authority that is its own upper tier (metropolitan/unitary) is re-coded with its district
        assert row["utla_code"] == (lad_recode.get(utla, utla) if utla == lad else utla), lad
        assert row["utla_name"] == name


def test_welsh_health_boards_equal_the_ons_lookup(memberships):
    ons = official_lookups.read("ua22_lhb22")
    for lad, lhb in zip(ons["ltla21_code"], ons["lhb22_code"]):
        assert memberships.at[lad, "lhb_code"] == lhb


def test_lad_codes_are_the_2025_codes_of_the_postcode_directory(memberships, lad_recode):
    table = lookup.lsoa_table()
    assert set(table["lad_code"]) == set(memberships.index)
    assert lad_recode["E08000016"] == "E08000038" and lad_recode["E08000019"] == "E08000039"
    assert {"E08000038", "E08000039"} <= set(memberships.index)
    assert not {"E08000016", "E08000019"} & set(memberships.index)


def test_every_lsoa_takes_its_districts_official_memberships(memberships):
    table = lookup.lsoa_table()
    for column in ("utla_code", "pfa_code"):
        expected = table["lad_code"].map(memberships[column])
        assert (table[column] == expected).all(), column


def test_icb_and_sub_icb_codes_are_the_current_official_ones():
    ons = official_lookups.read("lsoa21_sicbl24_icb24")
    for layer, column, name in (("icb", "icb24_code", "icb24_name"), ("sicbl", "sicbl24_code", "sicbl24_name")):
        shown = lookup.area_names(layer)
        official = ons[[column, name]].drop_duplicates()
        assert set(zip(shown["code"], shown["name"])) == set(zip(official[column], official[name])), layer
    codes = set(lookup.area_names("icb")["code"])
    assert {"E54000063", "E54000064"} <= codes and not {"E54000052", "E54000053"} & codes
    assert {"E38000264", "E38000265"} <= set(lookup.area_names("sicbl")["code"])


def test_chichester_lsoas_moved_to_sussex_as_in_the_ons_lookups():
    """LSOAs in the July 2022 Surrey Heartlands sub-ICB whose 2021 successors lie in the April 2024 Sussex
    sub-ICB (by the ONS lookups alone) are in Sussex in the product; there are four, all in Chichester."""
    bridge = official_lookups.read("lsoa11_lsoa21_ltla22")
    july22 = official_lookups.read("lsoa11_sicbl22_icb22")
    april24 = official_lookups.read("lsoa21_sicbl24_icb24")
    old_surrey = july22.loc[july22["icb22_code"] == "E54000052", "lsoa11_code"]
    parts = bridge[bridge["lsoa11_code"].isin(old_surrey)].merge(april24, on="lsoa21_code")
    moved = set(parts.loc[parts["icb24_code"] == "E54000064", "lsoa11_code"])
    assert len(moved) == 4
    table = lookup.lsoa_table().set_index("lsoa11cd")
    assert set(table.loc[list(moved), "icb_code"]) == {"E54000064"}
    assert set(table.loc[list(moved), "lad_code"].map(lookup.name_of("lad"))) == {"Chichester"}
    assert (table.loc[table.index.isin(old_surrey) & ~table.index.isin(moved), "icb_code"] == "E54000063").all()


def test_successors_of_retired_codes():
    def entry(kind, code):
        found = successors.lookup(kind, code)
        assert found is not None, code
        return found

    assert (entry("lad", "E08000016").new_code, entry("utla", "E08000016").new_code) == ("E08000038", "E08000038")
    assert entry("icb", "E54000052").new_code == "E54000063" and entry("icb", "E54000053").new_code == "E54000064"
    assert entry("sicbl", "E38000246").new_code == "E38000264" and entry("sicbl", "E38000248").new_code == "E38000265"
    for code, parts in (("E10000006", {"E06000063", "E06000064"}), ("E10000021", {"E06000061", "E06000062"})):
        split = entry("utla", code)
        assert split.status == "split" and {c for c, _ in split.destinations} == parts
    assert successors.lookup("utla", "E08000035") is None  # Leeds: current
    mapped, messages = successors.map_codes("utla", ["E08000035", "E08000016", "E10000006", "E08000016"],
                                            lookup.name_of("utla"))
    assert mapped == ["E08000035", "E08000038", None, "E08000038"]
    assert len(messages) == 2 and "E08000038 Barnsley" in messages[0]
    assert "split" in messages[1] and "Cumberland" in messages[1] and "Westmorland and Furness" in messages[1]


def test_successor_names_are_official():
    table = fact("code_successors.csv")
    names = {"utla": lookup.name_of("utla"), "lad": lookup.name_of("lad"), "icb": lookup.name_of("icb"),
             "sicbl": lookup.name_of("sicbl")}
    for row in table.itertuples(index=False):
        assert row.old_code not in names[row.kind], f"{row.old_code} is current"
        if row.status == "mapped":
            assert names[row.kind][row.new_code] == row.new_name
        assert abs(sum(float(d.split(":")[1]) for d in row.destinations.split()) - 1) < 1e-3


def test_every_layer_names_its_source_and_vintage():
    manifest = json.loads((lookup.GEODATA / "manifest.json").read_text(encoding="utf-8"))
    entries = official_lookups.sources_json()
    for key, layer in layers.LAYERS.items():
        assert layer.source and layer.vintage and layer.vintage_short, key
        assert manifest["layers"][key]["vintage"] == layer.vintage
        assert manifest["vintages"][key] == layer.vintage_short
        for extract in layer.official:
            assert manifest["layers"][key]["official"][extract]["sha256"] == entries[extract]["sha256"]
    assert "2025" in layers.LAYERS["lad"].vintage
    assert "April 2024" in layers.LAYERS["icb"].vintage and "April 2026" in layers.LAYERS["icb"].vintage


def test_two_official_copies_of_the_april_2023_utla_lookup_agree():
    """geographr's and the Department for Education's copies of the same ONS lookup: same pairs, same names."""
    ons = official_lookups.read("ltla23_utla23")
    dfe = official_lookups.read("dfe_ltla23_utla23")
    assert set(map(tuple, ons.to_numpy().tolist())) == set(map(tuple, dfe.to_numpy().tolist()))


def test_overlap_successors_maps_a_near_whole_move_and_flags_a_split():
    from lib.geo import reference

    old = pd.Series(["A"] * 99 + ["B"] * 1 + ["C"] * 60 + ["C"] * 40 + ["K"] * 5)
    new = pd.Series(["A2"] * 99 + ["X"] * 1 + ["D1"] * 60 + ["D2"] * 40 + ["K"] * 5)
    out = reference.overlap_successors(old, new, "utla", "test", current={"A2", "X", "D1", "D2", "K"}).set_index(
        "old_code")
    assert set(out.index) == {"A", "B", "C"}  # K is current: not a retired code
    assert (out.at["A", "status"], out.at["A", "new_code"]) == ("mapped", "A2")
    assert (out.at["C", "status"], out.at["C", "new_code"], out.at["C", "share"]) == ("split", "", 0.6)
    assert out.at["C", "destinations"] == "D1:0.6000 D2:0.4000"


def test_build_refuses_lookups_that_disagree_with_the_postcode_directory():
    from lib.geo import reference

    table = lookup.lsoa_table()
    current = table["lad_code"].reset_index(drop=True)
    codes = reference.lsoa_official_codes(table["lsoa11cd"])
    succ = reference.lad_successors(codes, current)
    without_leeds = current.where(current != "E08000035", "E08000036")  # as if Leeds had vanished
    with pytest.raises(reference.ReferenceError, match="lad24_csp24_pfa24.*E08000035"):
        reference.lad_facts(without_leeds, succ)


def test_regions_of_police_forces_come_from_the_official_lookups():
    """The synthetic generator's region filter (lib.synth REGION_PFAS) is derived from the ONS LAD → region and
    LAD → PFA lookups, never typed: every force in exactly one region, and all its districts in that region."""
    from lib.geo import official_lookups
    from lib.synth import REGION_PFAS

    listed = [force for forces in REGION_PFAS.values() for force in forces]
    assert sorted(listed) == sorted(lookup.name_of("pfa")) and len(listed) == 43
    region = official_lookups.read("ltla24_region24").set_index("ltla24_code")["region24_name"]
    pfa = official_lookups.read("lad24_csp24_pfa24")
    for name, forces in REGION_PFAS.items():
        districts = pfa.loc[pfa["pfa24_code"].isin(forces), "ltla24_code"]
        assert set(districts.map(region).fillna("Wales")) == {name}
    assert "E23000036" in REGION_PFAS["South West"]  # Avon and Somerset
