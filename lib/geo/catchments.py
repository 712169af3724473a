"""Modelled acute trust catchments at run time (read-only, from the committed geodata/).

``geodata/trust_catchment_shares.parquet`` holds, for every district of OHID's catchment model (LTLA 2021
in England; each Welsh health board), the share of its residents' admissions each acute trust takes
(``lib.geo.trusts`` builds it). Every LSOA carries ``trust_area``, the district whose shares apply to it,
so a trust's catchment in any layer is the child-population-weighted share of the area's LSOAs:

    share(area, trust) = Σ_lsoa∈area children(lsoa) · s(trust_area(lsoa), trust) / Σ_lsoa∈area children(lsoa)

and the trust's catchment population is Σ_lsoa children(lsoa) · s(trust_area(lsoa), trust) (OHID's own
definition, applied to children). Weights are ONS mid-2020 LSOA children aged 0–17.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from lib.geo import lookup

SHARES_FILE = "trust_catchment_shares.parquet"
POPULATION_FILE = "child_population_lsoa.parquet"
EDITION_SHORT = "OHID acute trust catchments, 2022 edition"
CAPTION = ("Modelled from OHID admissions, 2022 edition (NHS Acute (Hospital) Trust Catchment Populations; trust "
           "codes moved to current ODS codes): each district's share of admissions going to each acute trust. "
           "NHS trusts have no statutory boundary. Wales: each health board serves its own residents.")


@lru_cache(maxsize=1)
def shares() -> pd.DataFrame:
    """``area_code`` (LTLA 2021 or W11 health board), ``trust_code``, ``share`` (sums to 1 per area)."""
    frame = pd.read_parquet(lookup.GEODATA / SHARES_FILE, columns=["area_code", "trust_code", "share"])
    frame["area_code"] = frame["area_code"].astype(str)
    frame["trust_code"] = frame["trust_code"].astype(str)
    return frame


@lru_cache(maxsize=1)
def lsoa_children() -> np.ndarray:
    """ONS mid-2020 children aged 0–17 of each lsoa_table row (the catchment weight)."""
    pop = pd.read_parquet(lookup.GEODATA / POPULATION_FILE, columns=["lsoa11cd", "age_0_17_2020"])
    series = pop.set_index("lsoa11cd")["age_0_17_2020"]
    return lookup.lsoa_table()["lsoa11cd"].map(series).fillna(0).to_numpy("float64")


@lru_cache(maxsize=1)
def lsoa_rows() -> pd.DataFrame:
    """One row per (LSOA, trust) with a share: ``lsoa_idx`` (row of lsoa_table), ``trust_code``, ``share``,
    ``weight`` (LSOA children × share)."""
    table = lookup.lsoa_table()
    area = pd.DataFrame({"lsoa_idx": np.arange(len(table)), "area_code": table["trust_area"].astype(str).to_numpy()})
    rows = area.merge(shares(), on="area_code", how="inner")
    rows["weight"] = lsoa_children()[rows["lsoa_idx"].to_numpy()] * rows["share"].to_numpy()
    return rows[["lsoa_idx", "trust_code", "share", "weight"]].sort_values(["lsoa_idx", "trust_code"],
                                                                          ignore_index=True)


def trust_codes() -> list[str]:
    return sorted(shares()["trust_code"].unique())


@lru_cache(maxsize=16)
def area_trust_weights(column: str) -> pd.DataFrame:
    """(area of the lsoa_table ``column``, trust) pairs: ``area_code``, ``trust_code``, ``weight`` (children of
    the area attributed to the trust)."""
    rows = lsoa_rows()
    codes = lookup.lsoa_table()[column].astype("string").to_numpy()[rows["lsoa_idx"].to_numpy()]
    frame = pd.DataFrame({"area_code": codes, "trust_code": rows["trust_code"].to_numpy(),
                          "weight": rows["weight"].to_numpy()}).dropna(subset=["area_code"])
    frame = frame.groupby(["area_code", "trust_code"], as_index=False)["weight"].sum()
    frame["area_code"] = frame["area_code"].astype(str)
    return frame


def trust_share_by_area(trust: str, column: str = "lad_code") -> pd.DataFrame:
    """For one trust: ``area_code``, ``share`` (of the area's admissions modelled to go to the trust),
    ``children`` (the area's children attributed to the trust) for every area of ``column``."""
    if trust not in set(shares()["trust_code"]):
        raise KeyError(f"no catchment for trust {trust!r}")
    table = lookup.lsoa_table()
    children = pd.Series(lsoa_children()).groupby(table[column].astype("string").to_numpy()).sum()
    pairs = area_trust_weights(column)
    mine = pairs[pairs["trust_code"] == trust].set_index("area_code")["weight"]
    out = pd.DataFrame({"area_code": children.index.astype(str)})
    out["children"] = out["area_code"].map(mine).fillna(0.0).to_numpy()
    out["share"] = out["children"] / out["area_code"].map(children).to_numpy()
    return out.sort_values("share", ascending=False, ignore_index=True)
