"""Boundary layers: counts, nesting, known memberships, coverage validity, postcode look-up."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import shapely

from lib.geo import alignment, lookup, maps
from lib.geo.layers import LAYERS


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return lookup.lsoa_table()


def test_every_lsoa_of_england_and_wales_is_placed_in_its_layers(table):
    assert len(table) == 34753
    for column in ("lad_code", "utla_code", "pfa_code", "nhs_code", "trust_code"):
        assert table[column].notna().all(), column
    england = table["lsoa11cd"].str.startswith("E")
    assert table.loc[england, "icb_code"].notna().all() and table.loc[england, "lhb_code"].isna().all()
    assert table.loc[~england, "lhb_code"].notna().all() and table.loc[~england, "icb_code"].isna().all()


@pytest.mark.parametrize("layer, expected", [("lad", 318), ("utla", 175), ("pfa", 43), ("icb", 42),
                                             ("sicbl", 106), ("lhb", 7)])
def test_layer_counts(layer, expected, table):
    assert table[LAYERS[layer].column].nunique() == expected
    assert len(lookup.area_names(layer)) == expected
    assert len(maps.layer_geojson(layer)["features"]) == expected


def test_upper_tier_authorities_are_153_english_and_22_welsh():
    codes = lookup.area_names("utla")["code"]
    assert codes.str.startswith("E").sum() == 153
    assert codes.str.startswith("W06").sum() == 22
    assert set(codes.str[:3]) == {"E06", "E08", "E09", "E10", "W06"}


def test_police_codes_and_names():
    pfa = lookup.area_names("pfa")
    assert pfa["code"].str.match(r"^(E23|W15)\d{6}$").all()
    assert lookup.name_of("pfa")["E23000001"] == "Metropolitan Police"
    assert (pfa["code"].str.startswith("W15")).sum() == 4


def test_trust_catchments_group_hospitals_into_trusts(table):
    # OHID catchments: every acute trust with a catchment (137 in England) and the 7 Welsh health boards
    # (the stroke-unit model this test once pinned had 100; tests/test_catchments_population.py checks
    # the list against the official file).
    trusts = lookup.area_names("trust")
    assert 140 <= len(trusts) <= 150
    assert trusts["code"].str.len().eq(3).all()
    welsh = table[table["lsoa11cd"].str.startswith("W")]
    # Welsh health boards run Welsh hospitals: every Welsh LSOA is its own board's.
    assert welsh["trust_code"].str.startswith("7A").all()
    assert (table.loc[table["lad_code"] == "W06000015", "trust_code"] == "7A4").all()  # Cardiff and Vale


def test_every_lad_sits_in_exactly_one_force_and_one_upper_tier_authority(table):
    per_lad = table.groupby("lad_code")[["pfa_code", "utla_code"]].nunique()
    assert (per_lad == 1).all().all()
    # and so each force is a union of whole LADs: no LAD is shared by two forces
    assert table.groupby("lad_code")["pfa_code"].nunique().max() == 1


def test_every_sub_icb_nests_in_one_icb(table):
    assert table.dropna(subset=["sicbl_code"]).groupby("sicbl_code")["icb_code"].nunique().max() == 1


def _force_of(table, lad):
    return set(table.loc[table["lad_code"] == lad, "pfa_code"])


def test_known_memberships(table):
    london_boroughs = [f"E09{n:06d}" for n in range(2, 34)]
    assert len(london_boroughs) == 32
    for lad in london_boroughs:
        assert _force_of(table, lad) == {"E23000001"}, lad
    assert _force_of(table, "E09000001") == {"E23000034"}  # City of London Police
    assert _force_of(table, "W06000015") == {"W15000003"}  # Cardiff: South Wales Police
    assert _force_of(table, "E08000035") == {"E23000010"}  # Leeds: West Yorkshire Police
    assert _force_of(table, "E06000065") == {"E23000009"}  # North Yorkshire unitary (2023)
    assert set(table.loc[table["pfa_code"] == "E23000001", "lad_code"]) == set(london_boroughs)


@pytest.mark.parametrize("layer", list(LAYERS))
def test_display_layers_are_valid_coverages(layer):
    geoms = np.array([shapely.geometry.shape(f["geometry"]) for f in maps.layer_geojson(layer)["features"]])
    assert shapely.is_valid(geoms).all()
    assert shapely.coverage_is_valid(geoms)


def test_manifest_records_valid_full_resolution_coverages_and_matching_checksums():
    manifest = lookup.manifest()
    for key in LAYERS:
        assert manifest["layers"][key]["full_resolution"]["coverage_valid"], key
        assert manifest["layers"][key]["display"]["coverage_valid"], key
    assert lookup.verify_manifest() == []
    assert "Open Government Licence" in manifest["attribution"]


def test_display_layers_fit_the_size_budget():
    total = sum(info["bytes"] for name, info in lookup.manifest()["files"].items() if name.startswith("layers/"))
    assert total <= 2_000_000


@pytest.mark.parametrize("postcode, lad, pfa, utla, icb_or_lhb", [
    ("LS1 3EX", "Leeds", "West Yorkshire", "Leeds", "NHS West Yorkshire Integrated Care Board"),
    ("cf10 1ep", "Cardiff", "South Wales", "Cardiff", "Cardiff and Vale University Health Board"),
    ("SW1A 1AA", "Westminster", "Metropolitan Police", "Westminster", "NHS North West London Integrated Care Board"),
    ("EC2V7HH", "City of London", "London, City of", "City of London", "NHS North East London Integrated Care Board"),
    ("S1 2HE", "Sheffield", "South Yorkshire", "Sheffield", "NHS South Yorkshire Integrated Care Board"),
    ("TR1 3LQ", "Cornwall", "Devon & Cornwall", "Cornwall",
     "NHS Cornwall and the Isles of Scilly Integrated Care Board"),
])
def test_postcode_lookup_for_real_postcodes(postcode, lad, pfa, utla, icb_or_lhb):
    row = lookup.place_postcodes(pd.Series([postcode])).iloc[0]
    assert lookup.name_of("lad")[row["lad_code"]] == lad
    assert lookup.name_of("pfa")[row["pfa_code"]] == pfa
    assert lookup.name_of("utla")[row["utla_code"]] == utla
    health = lookup.name_of("icb").get(row["nhs_code"]) or lookup.name_of("lhb").get(row["nhs_code"])
    assert health == icb_or_lhb
    assert not pd.isna(row["trust_code"])


def test_unknown_and_malformed_postcodes_are_not_placed():
    rows = lookup.place_postcodes(pd.Series(["ZZ99 9ZZ", "not a postcode", None, "", "LS1  3EX"]))
    assert rows["lsoa11cd"].isna().tolist() == [True, True, True, True, False]
    assert rows["postcode_norm"].iloc[4] == "LS13EX"


def test_find_area_by_name():
    found = lookup.find_area("rotherham")
    assert found.iloc[0]["name"] == "Rotherham"
    assert lookup.find_area("   ").empty


def test_misalignment_separates_nesting_from_crossing():
    pfa = alignment.misalignment("pfa").set_index("code")
    # The Met is made of 32 whole boroughs: nested, not misaligned.
    assert pfa.loc["E23000001", "utla_areas"] == 32 and pfa.loc["E23000001", "utla_crossing"] == 0
    # North East London ICB also covers the City of London, which has its own force: a crossing.
    assert pfa.loc["E23000001", "icb_crossing"] >= 1
    utla = alignment.misalignment("utla").set_index("code")
    assert utla.loc["E08000035", "icb_crossing"] == 0  # Leeds lies wholly in West Yorkshire ICB
    assert utla.loc["E10000012", "icb_crossing"] >= 2  # Essex is split between ICBs
    assert (utla["lad_crossing"] == 0).all()  # districts always nest in their county


def test_memberships_shares_sum_to_one():
    members = alignment.memberships("utla", "E10000012")
    assert sum(share for _, _, share in members["icb"]) == pytest.approx(1.0)
    assert members["pfa"] == [("E23000028", "Essex", 1.0)]


def test_zoom_fits_smaller_areas_closer():
    bounds = maps.layer_bounds("utla")
    assert maps.zoom_for_bounds(bounds["E09000001"])["zoom"] > maps.zoom_for_bounds(bounds["E10000012"])["zoom"]


def test_geojson_is_compact_and_carries_code_and_name_only():
    feature = maps.layer_geojson("pfa")["features"][0]
    assert set(feature["properties"]) == {"code", "name"}
    assert len(json.dumps(feature["geometry"]["coordinates"])) < 200_000


def test_map_hover_labels_fit_beside_the_pointer_on_a_narrow_map():
    """Hover labels were one line per layer, up to ~150 characters (about 1,200 px): clipped on both sides of a
    700 px map, the area's own name cut off. Every line is now at most HOVER_LINE_CHARS, and the area's name leads.
    Every layer is tried: hover on Welsh health boards raised (no LSOA of theirs in an ICB: an empty overlap)."""
    import re

    from lib.geo import alignment
    from lib.geo.layers import LAYERS

    for layer in LAYERS:
        labels = alignment.hover_text(layer)
        widest = max(len(re.sub(r"<[^>]+>", "", line)) for text in labels.values() for line in text.split("<br>"))
        assert widest <= alignment.HOVER_LINE_CHARS, (layer, widest)
    north_yorkshire = alignment.hover_text("lad")["E06000065"].split("<br>")
    assert north_yorkshire[0] == "<b>North Yorkshire (E06000065)</b>"
    assert "ICB:" in north_yorkshire and any(line.startswith("· NHS West Yorkshire") for line in north_yorkshire)
