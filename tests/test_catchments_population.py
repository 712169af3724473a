"""Acute trust catchments (OHID) and the official child population against the official extracts.

Every expected value here is read from the compact official extracts committed under geodata/official/
(named in geodata/manifest.json), never typed; the tests need no network and no mirror.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lib.geo import catchments, lookup, population_build, trusts
from lib.measures import convert, population

OFFICIAL = lookup.GEODATA / "official"
AGES = [str(a) for a in range(18)]


def official(name: str, **kwargs) -> pd.DataFrame:
    path = OFFICIAL / name
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype=str, keep_default_na=False, **kwargs)


@pytest.fixture(scope="module")
def shares() -> pd.DataFrame:
    return pd.read_parquet(lookup.GEODATA / "trust_catchment_shares.parquet")


def current_code(successors: pd.DataFrame):
    """Follow the ODS successor table (written out here independently of lib.geo.trusts)."""
    table = {}
    for old, group in successors.sort_values("date").groupby("old_code"):
        if group["new_code"].nunique() == 1:
            table[old] = group["new_code"].iat[0]

    def resolve(code: str) -> str:
        seen = set()
        while code in table and code not in seen:
            seen.add(code)
            code = table[code]
        return code
    return resolve


# ------------------------------------------------------------------------------------------------ trusts

def test_trust_list_equals_the_official_catchment_trusts_on_current_ods_codes(shares):
    raw = official("ohid_trust_catchment_2022_ltla21.csv")
    resolve = current_code(official("ods_trust_successors.csv"))
    boards = official("ods_trust_names.csv")
    boards = boards[boards["kind"] == "local health board"]
    expected = {resolve(c) for c in raw["trust_code"]} | set(boards["ods_code"])
    listed = set(lookup.area_names("trust")["code"])
    assert listed == expected
    assert set(shares["trust_code"]) == expected
    english = {c for c in expected if not c.startswith("7A")}
    assert len(english) >= 120 and len(boards) == 7
    assert {"R0A", "RJ1", "R0B", "RAL"} <= listed
    assert "RLN" not in listed  # closed 2019: its successor R0B stands in its place
    assert resolve("RLN") == "R0B"
    # every English trust is open in the ODS trust list
    names = official("ods_trust_names.csv").set_index("ods_code")
    assert (names.loc[sorted(english), "kind"] == "trust (open)").all()


def test_committed_shares_give_back_the_official_trust_proportions(shares):
    """p(t, l) = C(t, l) / Σ_l C(t, l) recomputed from the committed table equals OHID's figure."""
    raw = official("ohid_trust_catchment_2022_ltla21.csv")
    raw["p"] = raw["proportion_trust_came_from_ltla"].astype(float)
    renamed = set(trusts.successor_map(official("ods_trust_successors.csv"))) & set(raw["trust_code"])
    merged_into = {trusts.successor_map(official("ods_trust_successors.csv"))[c] for c in renamed}
    england = shares[shares["area_code"].str.startswith("E")].copy()
    england["p"] = england["catchment"] / england.groupby("trust_code")["catchment"].transform("sum")
    plain = raw[~raw["trust_code"].isin(renamed | merged_into)]
    joined = plain.merge(england, left_on=["trust_code", "ltla21_code"], right_on=["trust_code", "area_code"],
                         how="left", suffixes=("_official", "_ours"))
    positive = joined["p_official"] > 0
    assert joined.loc[positive, "p_ours"].notna().all()
    np.testing.assert_allclose(joined.loc[positive, "p_ours"], joined.loc[positive, "p_official"], rtol=1e-9,
                               atol=1e-15)
    assert len(plain["trust_code"].unique()) >= 130


def test_every_district_shares_out_all_its_admissions(shares):
    sums = shares.groupby("area_code")["share"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, rtol=1e-12)
    districts = set(official("ohid_trust_catchment_2022_ltla21.csv")["ltla21_code"])
    assert districts <= set(sums.index)
    welsh = shares[shares["area_code"].str.startswith("W11")]
    assert len(welsh) == 7 and (welsh["share"] == 1.0).all() and welsh["trust_code"].str.startswith("7A").all()


def test_lsoas_take_the_shares_of_their_official_district_and_outline_the_main_provider(shares):
    table = lookup.lsoa_table()
    ltla = official("ons_lsoa11_ltla21.csv").set_index("lsoa11_code")["ltla21_code"]
    english = table["lsoa11cd"].str.startswith("E")
    assert (table.loc[english, "trust_area"] == table.loc[english, "lsoa11cd"].map(ltla)).all()
    assert (table.loc[~english, "trust_area"] == table.loc[~english, "lhb_code"]).all()
    best = shares.sort_values(["area_code", "share", "trust_code"], ascending=[True, False, True])
    best = best.drop_duplicates("area_code").set_index("area_code")["trust_code"]
    assert (table["trust_code"] == table["trust_area"].map(best)).all()
    # Cardiff is wholly Cardiff and Vale University Health Board's
    board = official("ods_trust_names.csv").set_index("gss_code").loc["W11000029", "ods_code"]
    assert (table.loc[table["lhb_code"] == "W11000029", "trust_code"] == board).all()


def test_committed_catchment_files_equal_what_the_build_derives(shares):
    derived, _ = trusts.all_shares(OFFICIAL)
    pd.testing.assert_frame_equal(derived.reset_index(drop=True), shares.reset_index(drop=True), check_exact=False,
                                  rtol=1e-12)
    manifest = json.loads((lookup.GEODATA / "manifest.json").read_text(encoding="utf-8"))
    for key in ("ohid_trust_catchment_2022", "ods_successors", "ods_trusts", "ons_lsoa11_ltla21",
                "ons_mye2020_lsoa11", "ons_mye_children_la"):
        entry = manifest["official"][key]
        assert entry["repo"] and entry["path"] and entry["vintage"] and entry["licence"]
        assert entry["extract_sha256"] == trusts.sha256_file(lookup.GEODATA / entry["extract"])
    assert manifest["trust_catchments"]["current_trusts"] == len(set(shares["trust_code"])) - 7


def test_trust_choropleth_shares_are_population_weighted_district_shares(shares):
    by_lad = catchments.trust_share_by_area("RJ1", "lad_code")
    assert by_lad["share"].between(0, 1).all()
    top = by_lad.iloc[0]
    # a current district that is one official district has exactly the official district's share
    official_share = shares[(shares["trust_code"] == "RJ1")].set_index("area_code")["share"]
    assert top["share"] == pytest.approx(official_share[top["area_code"]], rel=1e-9)
    # the trust's children summed over districts are its catchment population
    total = population.official_population("trust", "0-17").set_index("area_code").loc["RJ1", "children"]
    pop2020 = catchments.lsoa_children()
    assert by_lad["children"].sum() == pytest.approx(
        (pop2020[catchments.lsoa_rows()["lsoa_idx"]] * catchments.lsoa_rows()["share"])[
            (catchments.lsoa_rows()["trust_code"] == "RJ1").to_numpy()].sum())
    assert total > 0


# ------------------------------------------------------------------------------------------------ apportioning

@pytest.mark.parametrize("to_layer", ["utla", "pfa", "lad", "nhs"])
def test_apportioning_trust_counts_preserves_totals(to_layer):
    codes = convert.area_codes("trust")
    frame = pd.DataFrame({"area_code": codes, "count": np.arange(1, len(codes) + 1, dtype=float)})
    there, unmatched = convert.convert(frame, "trust", to_layer, ["count"])
    assert unmatched.empty
    assert there["count"].sum() == pytest.approx(frame["count"].sum(), rel=1e-12)
    assert there["apportioned"].any()
    back, _ = convert.convert(there, to_layer, "trust", ["count"])
    assert back["count"].sum() == pytest.approx(frame["count"].sum(), rel=1e-12)


def test_trust_weights_follow_the_catchment_shares(shares):
    w = convert.weights("lad", "trust")
    # Manchester: one official district = one current district, so its weights are OHID's shares
    mine = w[w["from_code"] == "E08000003"].set_index("to_code")["weight"]
    theirs = shares[shares["area_code"] == "E08000003"].set_index("trust_code")["share"]
    theirs = theirs[theirs > 0]
    pd.testing.assert_series_equal(mine.sort_index(), theirs.sort_index(), check_names=False, rtol=1e-9)


# ------------------------------------------------------------------------------------------------ population

def test_every_official_district_equals_ons_mid_2020_to_the_person():
    """Summed from the committed LSOA table by the official LSOA → district lookup, every district (LTLA
    2021, England and Wales) equals ONS's own mid-2020 district estimate, 0–17 and 10–17."""
    lsoa = pd.read_parquet(lookup.GEODATA / "child_population_lsoa.parquet").set_index("lsoa11cd")
    ltla = official("ons_lsoa11_ltla21.csv").set_index("lsoa11_code")["ltla21_code"]
    ours = lsoa.groupby(lsoa.index.map(ltla))[["age_0_17_2020", "age_10_17_2020", "total_2020"]].sum()
    ons = official("ons_mye2020_ltla21.csv").set_index("ltla21_code")
    ons[AGES + ["total_population"]] = ons[AGES + ["total_population"]].astype("int64")
    assert len(ons) == 331 and set(ours.index) == set(ons.index)
    expected = pd.DataFrame({"age_0_17_2020": ons.loc[ours.index, AGES].sum(axis=1),
                             "age_10_17_2020": ons.loc[ours.index, AGES[10:]].sum(axis=1),
                             "total_2020": ons.loc[ours.index, "total_population"]})
    diff = ours - expected
    off = diff[(diff != 0).any(axis=1)]
    assert (off.index.str.startswith("W")).all(), "every English district must match to the person"
    # Wales: the official LSOA lookup and ONS's own estimates place one LSOA on opposite sides of a district
    # boundary; the two districts then differ by exactly that LSOA's population, in opposite directions.
    assert len(off) in (0, 2) and (off.sum() == 0).all()
    if len(off):
        moved = lsoa[lsoa.index.map(ltla).isin(off.index)]
        match = moved[(moved["total_2020"] == off["total_2020"].abs().iat[0])
                      & (moved["age_0_17_2020"] == off["age_0_17_2020"].abs().iat[0])
                      & (moved["age_10_17_2020"] == off["age_10_17_2020"].abs().iat[0])]
        assert len(match) >= 1


def _official_districts_of_current_lads() -> tuple[pd.DataFrame, set]:
    table = lookup.lsoa_table()
    ltla = official("ons_lsoa11_ltla21.csv").set_index("lsoa11_code")["ltla21_code"]
    pairs = pd.DataFrame({"lad": table["lad_code"].astype(str), "ltla21": table["lsoa11cd"].map(ltla)})
    per_ltla = pairs.groupby("ltla21")["lad"].nunique()
    split = set(per_ltla[per_ltla > 1].index)
    bad_lads = set(pairs.loc[pairs["ltla21"].isin(split), "lad"])
    return pairs.drop_duplicates(), bad_lads


def test_every_current_district_population_equals_the_official_figure():
    """Current districts (unions of whole official districts) equal the official mid-2020 figure exactly."""
    pairs, bad = _official_districts_of_current_lads()
    ons = official("ons_mye2020_ltla21.csv").set_index("ltla21_code")
    ons10 = ons[AGES[10:]].astype("int64").sum(axis=1)
    expected = pairs.assign(n=pairs["ltla21"].map(ons10)).groupby("lad")["n"].sum()
    ours = population.official_population("lad", "10-17").set_index("area_code")["children"]
    assert not bad  # every district is a union of whole official districts, so every one is checked
    diff = ours - expected[ours.index]
    assert len(ours) == 318 and (diff[diff.index.str.startswith("E")] == 0).all()  # England: to the person
    # Wales: the LSOA lookup and ONS's district estimates put one LSOA (Gwynedd/Powys) on opposite sides (see
    # test_every_official_district_equals_ons_mid_2020_to_the_person): two districts, equal and opposite.
    off = diff[diff != 0]
    assert len(off) in (0, 2) and off.sum() == 0 and off.index.str.startswith("W").all()
    assert (population.official_population("lad", "10-17")["vintage"] == "mid-2020").all()


def test_lad_layer_nests_official_districts():
    _, bad = _official_districts_of_current_lads()
    assert not bad


def test_authorities_equal_the_latest_official_totals_to_the_person():
    dfe = official("ons_mye_children_0_17_la_2012_2024.csv")
    latest = dfe[dfe["time_period"] == dfe["time_period"].max()]
    ours = population.official_population("utla", "0-17").set_index("area_code")
    names = lookup.name_of("utla")
    by_name = {v: k for k, v in names.items()}
    codes = [c if c in names else by_name[n] for c, n in zip(latest["new_la_code"], latest["la_name"])]
    assert len(set(codes)) == len(latest) == 153
    assert (ours.loc[codes, "children"].to_numpy() == latest["population_estimate"].astype(int).to_numpy()).all()
    assert (ours.loc[codes, "vintage"] == f"mid-{latest['time_period'].iat[0]}").all()
    welsh = ours[ours.index.str.startswith("W")]
    lsoa = official("ons_mye2020_lsoa11_ages0_17.parquet")
    assert welsh["children"].sum() == lsoa.loc[lsoa["lsoa11_code"].str.startswith("W"), AGES].to_numpy().sum()
    assert (welsh["vintage"] == "mid-2020").all()


@pytest.mark.parametrize("layer", ["pfa", "lad", "nhs", "trust"])
def test_every_layer_shares_out_the_same_children(layer):
    total = population.official_population("utla", "0-17")["children"].sum()
    assert abs(population.official_population(layer, "0-17")["children"].sum() - total) <= len(
        population.official_population(layer, "0-17"))  # rounding of apportioned areas only
    assert population.official_population(layer, "0-17")["children"].gt(0).all()


def test_committed_population_equals_what_the_build_derives():
    committed = pd.read_parquet(lookup.GEODATA / "child_population_lsoa.parquet")
    table = lookup.lsoa_table()
    names = lookup.area_names("utla").set_index("code")["name"]
    derived, _ = population_build.derive(table, names, OFFICIAL)
    pd.testing.assert_frame_equal(derived.reset_index(drop=True), committed.reset_index(drop=True),
                                  check_dtype=False, rtol=1e-12)


def test_rate_labels_name_the_source_and_year():
    assert "ONS" in population.source_label("0-17") and "mid-2024" in population.source_label("0-17")
    assert "mid-2020" in population.source_label("10-17") and "10–17" in population.source_label("10-17")
    assert "OHID" in population.source_label("0-17", "trust")
    with pytest.raises(ValueError, match="age band"):
        population.official_population("utla", "5-9")


def test_population_command_writes_the_documented_columns(tmp_path, capsys):
    from lib.cli import main

    out = tmp_path / "pop.csv"
    assert main(["population", "--layer", "pfa", "--age", "10-17", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    frame = pd.read_csv(out, dtype={"area_code": str}, encoding="utf-8-sig")
    assert list(frame.columns) == ["area_code", "area_name", "children", "age_band", "source", "vintage"]
    assert len(frame) == 43 == summary["areas"]
    assert (frame["age_band"] == "10-17").all() and frame["source"].str.contains("ONS").all()
    assert frame["children"].sum() == official("ons_mye2020_lsoa11_ages0_17.parquet")[AGES[10:]].to_numpy().sum()
    assert main(["population", "--layer", "trust", "--out", str(out)]) == 0
    frame = pd.read_csv(out, encoding="utf-8-sig")
    assert set(frame["age_band"]) == {"0-17"} and len(frame) == len(convert.area_codes("trust"))


def test_trust_successor_table_maps_retired_codes_from_the_ods_table():
    committed = pd.read_csv(lookup.GEODATA / "facts" / "trust_successors.csv", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(committed, trusts.successor_facts(OFFICIAL).astype(str), check_dtype=False)
    rows = committed.set_index("old_code")
    assert rows.loc["RLN", ["new_code", "status"]].tolist() == ["R0B", "mapped"]
    assert rows.loc["RBZ", "new_code"] == "RH8"
    assert rows.loc["RW6", "status"] == "split" and set(rows.loc["RW6", "destinations"].replace(":nan", "").split()) \
        == {"R0A", "RM3"}
    resolve = current_code(official("ods_trust_successors.csv"))
    mapped = committed[committed["status"] == "mapped"]
    assert all(resolve(old) == new for old, new in zip(mapped["old_code"], mapped["new_code"]))
    # no retired code is listed as a trust of the catchment layer
    assert not set(committed["old_code"]) & set(lookup.area_names("trust")["code"])
