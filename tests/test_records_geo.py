"""Geography assignment of records for real postcodes (lib.records.geography on the lib.geo contract)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from lib.geo import lookup
from lib.records import geography
from lib.records.ingest import prepare
from tests.test_records import KEY, TODAY, csv_bytes, good_rows

LAYERS = ("lsoa", "lad", "utla", "pfa", "icb", "sicbl", "lhb", "nhs", "trust")


@pytest.mark.parametrize("postcode, expected", [
    ("LS6 2AB", {"lsoa": "E01011451", "lad": "E08000035", "utla": "E08000035", "pfa": "E23000010",
                 "icb": "E54000054", "sicbl": "E38000225", "lhb": None, "nhs": "E54000054", "trust": "RR8"}),
    ("cf10 1ep", {"lsoa": "W01001952", "lad": "W06000015", "utla": "W06000015", "pfa": "W15000003",
                  "icb": None, "sicbl": None, "lhb": "W11000029", "nhs": "W11000029", "trust": "7A4"}),
    ("SW1A1AA", {"lad": "E09000033", "utla": "E09000033", "pfa": "E23000001", "icb": "E54000027"}),
    ("M1 1AE", {"lad": "E08000003", "pfa": "E23000005", "trust": "R0A"}),  # main provider of Manchester (OHID)
])
def test_a_record_is_placed_in_every_geography_for_home_and_encounter(postcode, expected):
    rows = good_rows(1)
    rows[0].update(home_postcode=postcode, encounter_postcode=postcode)
    records = prepare(csv_bytes(rows), "geo.csv", key=KEY, today=TODAY).records_frame()
    for layer, code in expected.items():
        for prefix in ("home", "enc"):
            value = records.loc[0, f"{prefix}_{layer}"]
            assert (None if pd.isna(value) else value) == code, (prefix, layer)


def test_home_and_encounter_locations_are_placed_separately():
    rows = good_rows(1)
    rows[0].update(home_postcode="CF10 1EP", encounter_postcode="LS1 3EX")
    records = prepare(csv_bytes(rows), "geo.csv", key=KEY, today=TODAY).records_frame()
    assert records.loc[0, "home_pfa"] == "W15000003" and records.loc[0, "enc_pfa"] == "E23000010"
    assert records.loc[0, "home_sector"] == "CF10 1" and records.loc[0, "home_district"] == "CF10"


def test_placement_agrees_with_lib_geo_on_thousands_of_real_postcodes():
    index = lookup.postcode_index()
    rng = np.random.default_rng(3)
    sample = index["postcode"].to_numpy()[rng.integers(0, len(index), 3000)].astype(str)
    written = []
    for i, code in enumerate(sample):  # as agencies write them: spaced, lower case, untidy
        spaced = f"{code[:-3]} {code[-3:]}"
        written.append([code, spaced, spaced.lower(), f" {spaced} "][i % 4])
    written += ["EH1 1AA", "BT1 1AA", "ZZ99 9ZZ", "LS6", "not a postcode", "LS6 2A", "GIR 0AA", None, "L1 0AA",
                "ls62ab", "W1A 1AA", "EC1A 1BB", "A1 1AA", "AA1A 1AA", "1A1 1AA"]
    values = pd.Series(written, dtype="string")
    ours = geography.locate(values)
    table = lookup.lsoa_table()
    ours_lsoa = np.where(ours >= 0, table["lsoa11cd"].to_numpy(dtype=object)[np.maximum(ours, 0)], None)
    theirs = lookup.place_postcodes(values)
    theirs_lsoa = theirs["lsoa11cd"].astype(object).where(theirs["lsoa11cd"].notna(), None).to_numpy()
    assert (pd.notna(theirs_lsoa)).sum() >= 3000
    assert list(ours_lsoa) == list(theirs_lsoa)
    layers = geography.geography_columns(ours.astype(np.int32), "x")
    for key in LAYERS:
        column = geography.GEOGRAPHY[key]
        got = layers[f"x_{key}"].to_pylist()
        want = theirs["lsoa11cd" if key == "lsoa" else column].astype(object).to_numpy()
        want = [None if pd.isna(v) else v for v in want]
        assert got == want, key


def test_postcode_shape_check_agrees_with_lib_geo():
    odd = ["LS62AB", "LS6 2AB", "ls6 2ab", "L1 8JQ", "W1A 0AX", "EC1A 1BB", "M1 1AE", "B33 8TH", "CR2 6XH",
           "DN55 1PT", "LS6 2A", "LS 2AB", "6LS 2AB", "LS62ABB", "L 1AA", "AAA1 1AA", "A1 AAA", "A11A 1AA",
           "AA11A 1AA", "A1A 1AA", "AA1A 1AA", "A 1AA", "", "12345", "LS6-2AB", "LS6\t2AB", "Ł1 1AA"]
    ours = geography.normalise_postcodes(pa.array(odd))
    keys = geography.postcode_keys(pc_replace_spaces(odd))
    theirs = lookup.normalise_postcode(pd.Series(odd))
    for value, a, key, b in zip(odd, ours.to_pylist(), keys, theirs):
        if "\t" in value:  # tabs are rejected earlier as control characters
            continue
        expected = None if pd.isna(b) else b
        assert a == expected, value
        assert (key >= 0) == (expected is not None), value


def pc_replace_spaces(values):
    import pyarrow.compute as pc

    return pc.replace_substring(pc.utf8_upper(pa.array(values)), pattern=" ", replacement="")


def test_postcode_keys_round_trip_for_the_whole_directory():
    column = pa.Array.from_pandas(lookup.postcode_index()["postcode"])
    codes = np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)
    keys = geography.postcode_keys(column)
    odd = codes[keys < 0]  # a few non-geographic codes (e.g. NPT 0AD) that have no UK postcode shape
    assert len(odd) < 5000 and lookup.normalise_postcode(pd.Series(odd)).isna().all()
    codes, keys = codes[keys >= 0], keys[keys >= 0]
    assert len(np.unique(keys)) == len(codes)
    sample = np.random.default_rng(1).integers(0, len(codes), 20000)
    assert geography.postcodes_from_keys(keys[sample]).to_pylist() == list(codes[sample])


def test_agency_codes_come_from_the_geodata():
    codes = geography.agency_codes()
    assert "E23000010" in codes["police"] and "W15000003" in codes["police"] and len(codes["police"]) == 43
    assert "E08000035" in codes["children_social_care"] and "W06000015" in codes["education"]
    assert "RR8" in codes["health"] and "7A4" in codes["health"]
    assert "E08000035" not in codes["police"]


def test_retired_agency_codes_are_mapped_to_successors_or_flagged_where_split():
    """An upload on retired codes: Barnsley's pre-2025 code is mapped to E08000038 and said so in the summary;
    Cumbria (E10000006) and Northamptonshire (E10000021) were split, so those rows are rejected with a message
    naming file, row and field and the parts of the split; current codes pass untouched."""
    rows = good_rows(5)
    codes = ["E08000016", "E10000006", "E08000035", "E10000021", "E08000016"]
    for row, code in zip(rows, codes):
        row.update(agency_type="children_social_care", agency_code=code)
    rows[4]["source_record_id"] = "R-BARNSLEY-2"
    batch = prepare(csv_bytes(rows), "retired.csv", key=KEY, today=TODAY)
    kept = batch.records_frame().set_index("source_record_id")["agency_code"]
    assert kept.to_dict() == {"R00000": "E08000038", "R00002": "E08000035", "R-BARNSLEY-2": "E08000038"}

    issues = batch.issues.set_index("row")
    for row in (2, 6):
        issue = issues.loc[row]
        assert (issue["file"], issue["field"], issue["code"], issue["action"]) == \
            ("retired.csv", "agency_code", "retired_code", "code mapped")
        assert "E08000016 (Barnsley)" in issue["reason"] and "E08000038 Barnsley" in issue["reason"]
    for row, parts in ((3, ("Cumberland", "Westmorland and Furness")),
                       (5, ("North Northamptonshire", "West Northamptonshire"))):
        issue = issues.loc[row]
        assert (issue["file"], issue["field"], issue["code"], issue["action"]) == \
            ("retired.csv", "agency_code", "split_code", "row rejected")
        assert "split" in issue["reason"] and all(p in issue["reason"] for p in parts)
    assert 4 not in issues.index  # Leeds is current

    summary = batch.summary()
    assert summary["rows_valid"] == 3 and summary["rows_rejected"] == 2
    assert summary["codes_mapped"] == {"agency_code: retired_code": 2}
    assert summary["rejected_by_reason"] == {"agency_code: split_code": 2}
    assert list(summary["retired_codes_mapped"].values()) == [2]


def test_a_retired_code_of_another_kind_is_named_in_the_rejection():
    rows = good_rows(1)
    rows[0].update(agency_type="health", agency_code="E54000052")  # an ICB (July 2022), not a trust
    batch = prepare(csv_bytes(rows), "health.csv", key=KEY, today=TODAY)
    issue = batch.issues.iloc[0]
    assert (issue["row"], issue["field"], issue["code"]) == (2, "agency_code", "unknown_agency_code")
    assert "retired integrated care board code (now E54000063)" in issue["reason"]


def test_a_retired_unitary_older_than_the_upper_tier_lookups_maps_through_the_district_chain():
    """Bournemouth (E06000028) and Poole (E06000029) became Bournemouth, Christchurch and Poole (E06000058) in
    2019: a children's social care record on the old code is kept on the successor, and the summary says so."""
    rows = good_rows(2)
    for row, code in zip(rows, ["E06000028", "E06000029"]):
        row.update(agency_type="children_social_care", agency_code=code)
    batch = prepare(csv_bytes(rows), "dorset.csv", key=KEY, today=TODAY)
    assert batch.records_frame()["agency_code"].tolist() == ["E06000058", "E06000058"]
    assert (batch.issues["code"] == "retired_code").sum() == 2
    assert "Bournemouth, Christchurch and Poole" in batch.issues["reason"].iloc[0]
