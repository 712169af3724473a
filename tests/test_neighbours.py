"""Comparator groups: the DfE statistical neighbours equal the vendored DfE file; context neighbours for other
layers use child population, density and deprivation only."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lib.geo import official_lookups
from lib.measures import convert, neighbours
from lib.measures import population as pop


@pytest.fixture(scope="module")
def raw_sn() -> pd.DataFrame:
    return pd.read_csv(official_lookups.path(neighbours.SN_EXTRACT), dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def number_to_code() -> dict[str, str]:
    """DfE number → GSS code straight from the C3 file's 2025 rows (its own code pairs)."""
    c3 = pd.read_csv(official_lookups.path("dfe_c3_cse_2018_2025"), dtype=str, keep_default_na=False)
    rows = c3[(c3["geographic_level"] == "Local authority") & (c3["time_period"] == "2025")]
    return dict(zip(rows["old_la_code"], rows["new_la_code"]))


RECODED = {"E08000016": "E08000038", "E08000019": "E08000039"}  # Barnsley, Sheffield since 1 April 2025


@pytest.mark.parametrize("la_name", ["Leeds", "Camden", "Barnsley", "Cumberland", "Isles of Scilly", "Kent"])
def test_dfe_neighbours_equal_the_file(raw_sn, number_to_code, la_name):
    row = raw_sn[raw_sn["la_name"] == la_name].iloc[0]
    code = RECODED.get(number_to_code[row["old_la_code"]], number_to_code[row["old_la_code"]])
    got = neighbours.neighbours("utla", code)
    want = [RECODED.get(number_to_code[row[f"SN_{i}"]], number_to_code[row[f"SN_{i}"]]) for i in range(1, 11)]
    assert got["neighbour_code"].tolist() == want
    assert got["closeness"].tolist() == [row[f"SN_{i}P"].strip() for i in range(1, 11)]
    assert got["rank"].tolist() == list(range(1, 11))
    assert (got["method"] == neighbours.DFE_METHOD).all()
    assert set(got["closeness"]) <= set(neighbours.CLOSENESS)


def test_every_english_authority_has_ten_dfe_neighbours_on_current_codes():
    sn = neighbours.dfe_statistical_neighbours()
    current = set(convert.area_codes("utla"))
    english = {c for c in current if c.startswith("E")}
    assert set(sn["area_code"]) == english
    assert set(sn["neighbour_code"]) <= english
    assert (sn.groupby("area_code").size() == 10).all()
    assert not (sn["area_code"] == sn["neighbour_code"]).any()


def test_welsh_authorities_and_other_layers_get_context_neighbours():
    cardiff = neighbours.neighbours("utla", "W06000015")
    assert len(cardiff) == 10 and (cardiff["method"] == neighbours.CONTEXT_METHOD).all()
    assert "W06000015" not in set(cardiff["neighbour_code"])
    west_yorks = neighbours.neighbours("pfa", "E23000010", k=5)
    assert len(west_yorks) == 5 and west_yorks["distance"].is_monotonic_increasing
    assert set(west_yorks["neighbour_code"]) <= set(convert.area_codes("pfa")) - {"E23000010"}
    with pytest.raises(ValueError, match="not a current"):
        neighbours.neighbours("pfa", "E23999999")


def test_context_measures_are_population_density_and_deprivation_only():
    frame = neighbours.context("utla").set_index("area_code")
    assert list(frame.columns) == ["children", "km2", "children_per_km2", "deprived_share"]
    official = pop.official_population("utla").set_index("area_code")["children"]
    assert frame.loc["E08000035", "children"] == official["E08000035"]
    assert frame["deprived_share"].between(0, 1).all() and frame["km2"].gt(0).all()
    # England and Wales households deprived in 1+ dimensions, from the Census file itself
    raw = official_lookups.read(neighbours.DEPRIVATION_EXTRACT)
    per21 = raw.assign(n=raw["n"].astype(float)).groupby("lsoa21_code")
    total = raw.drop_duplicates("lsoa21_code")["total_households"].astype(float).sum()
    not_deprived = raw.loc[raw["deprivation_dimensions"] == neighbours.NOT_DEPRIVED, "n"].astype(float).sum()
    lsoa11 = neighbours._lsoa11_deprivation()
    assert per21.ngroups > 35_000
    assert lsoa11["households"].sum() == pytest.approx(total, rel=1e-9)
    assert lsoa11["deprived"].sum() == pytest.approx(total - not_deprived, rel=1e-9)
    assert np.isfinite(frame["children_per_km2"]).all()
