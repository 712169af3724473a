"""Official child populations for rates per 10,000 children.

Default: ONS mid-year population estimates by single year of age (``geodata/child_population_lsoa.parquet``,
built by ``lib.geo.population_build``), summed from LSOAs to any layer:

- ``0-17`` (the default band): ONS mid-2020 LSOA estimates, scaled in England to the latest ONS
  upper-tier local authority totals (mid-2024, as published by DfE), so every children's services
  authority and police force in England equals the official mid-2024 figure; Welsh areas are mid-2020.
- ``10-17``: ONS mid-2020 LSOA estimates (no newer LA totals for this band in the official files).

Trust catchments have no area: a trust's children are its modelled share of each LSOA's children
(``lib.geo.catchments``). Every figure carries its source and vintage. A population can also be uploaded
as a CSV with ``area_code`` and ``children`` columns on the layer being shown.
"""
from __future__ import annotations

import io
from functools import cache, lru_cache

import numpy as np
import pandas as pd

from lib.geo import catchments, lookup
from lib.measures import convert

AGE_BANDS = ("0-17", "10-17")
DEFAULT_AGE = "0-17"
COLUMNS = ["area_code", "area_name", "children", "age_band", "source", "vintage"]

SOURCE_SCALED = ("ONS mid-year population estimates: mid-2024 children aged 0–17 by local authority "
                 "(England, as published by DfE), shared within each authority by ONS mid-2020 LSOA estimates")
SOURCE_LSOA = "ONS mid-year population estimates: mid-2020, by LSOA and single year of age"


@lru_cache(maxsize=1)
def _lsoa_population() -> pd.DataFrame:
    frame = pd.read_parquet(lookup.GEODATA / catchments.POPULATION_FILE)
    table = lookup.lsoa_table()
    frame = frame.set_index("lsoa11cd").reindex(table["lsoa11cd"]).reset_index()
    if frame["age_0_17_2020"].isna().any():
        raise ValueError(f"geodata/{catchments.POPULATION_FILE} lacks LSOAs of geodata/lsoa_lookup.parquet")
    return frame


def _band(age: str) -> str:
    age = str(age).replace("–", "-").strip()
    if age not in AGE_BANDS:
        raise ValueError(f"unknown age band {age!r}; choose from {', '.join(AGE_BANDS)}")
    return age


def _lsoa_values(age: str) -> tuple[np.ndarray, np.ndarray]:
    """(children per lsoa_table row, vintage per row) for the band."""
    frame = _lsoa_population()
    if _band(age) == "0-17":
        return frame["age_0_17"].to_numpy("float64"), frame["vintage_0_17"].astype(str).to_numpy()
    return frame["age_10_17_2020"].to_numpy("float64"), np.full(len(frame), "mid-2020", dtype=object)


def _source_for(vintages: set[str], age: str) -> str:
    if _band(age) == "10-17" or vintages == {"mid-2020"}:
        return SOURCE_LSOA
    if "mid-2020" in vintages:
        return SOURCE_SCALED + "; Wales: " + SOURCE_LSOA
    return SOURCE_SCALED


@cache
def official_population(layer: str, age: str = DEFAULT_AGE) -> pd.DataFrame:
    """One row per area of ``layer``: ``area_code, area_name, children, age_band, source, vintage``.
    ``children`` is rounded to whole children (authorities and police forces in England equal the
    official totals exactly)."""
    key = convert.layer_key(layer)
    age = _band(age)
    values, vintages = _lsoa_values(age)
    column = convert.LAYER_COLUMNS[key]
    if column == "trust_code":
        rows = catchments.lsoa_rows()
        idx = rows["lsoa_idx"].to_numpy()
        codes = rows["trust_code"].to_numpy()
        amount = values[idx] * rows["share"].to_numpy()
        vint = vintages[idx]
    else:
        codes = lookup.lsoa_table()[column].astype("string").to_numpy()
        amount, vint = values, vintages
    frame = pd.DataFrame({"area_code": codes, "children": amount, "vintage": vint}).dropna(subset=["area_code"])
    frame["area_code"] = frame["area_code"].astype(str)
    frame["v2024"] = frame["vintage"] != "mid-2020"
    frame["v2020"] = ~frame["v2024"]
    grouped = frame.groupby("area_code").agg(children=("children", "sum"), v2024=("v2024", "any"),
                                             v2020=("v2020", "any"))
    later = frame.loc[frame["v2024"], "vintage"]
    latest = later.iat[0] if len(later) else "mid-2024"
    grouped["vintage"] = np.select([grouped["v2024"] & grouped["v2020"], grouped["v2024"]],
                                   [f"{latest} and mid-2020", latest], "mid-2020")
    grouped = grouped.reindex(convert.area_codes(key))
    names = convert.area_names(key)
    out = pd.DataFrame({"area_code": grouped.index.astype(str)})
    out["area_name"] = out["area_code"].map(names).fillna("")
    out["children"] = np.round(grouped["children"].fillna(0.0).to_numpy()).astype("int64")
    out["age_band"] = age
    out["vintage"] = grouped["vintage"].fillna("").to_numpy()
    out["source"] = [_source_for(set(v.split(" and ")), age) if v else "" for v in out["vintage"]]
    return out[COLUMNS]


def default_population(layer: str, age: str = DEFAULT_AGE) -> pd.Series:
    """Children of the band per area of ``layer`` (float, indexed by area code)."""
    table = official_population(layer, age)
    return pd.Series(table["children"].to_numpy("float64"), index=table["area_code"].to_numpy(), name="children")


def source_label(age: str = DEFAULT_AGE, layer: str | None = None) -> str:
    """One sentence naming the population behind a rate: band, source and vintage."""
    age = _band(age)
    if age == "0-17":
        text = ("Rates per 10,000 children aged 0–17. Source: ONS mid-year population estimates — mid-2024 "
                "local authority totals for England (as published by DfE), shared within each authority by "
                "ONS mid-2020 LSOA estimates; Wales: ONS mid-2020 LSOA estimates.")
    else:
        text = ("Rates per 10,000 children aged 10–17. Source: ONS mid-year population estimates, mid-2020, "
                "by LSOA and single year of age (no newer local authority totals for this age band).")
    if layer is not None and convert.layer_key(layer) == "trust":
        text += (" A trust's children are its modelled share of each area's children (" + catchments.EDITION_SHORT
                 + ").")
    return text


def rate_label(age: str = DEFAULT_AGE) -> str:
    """Short column label, e.g. 'per 10,000 children aged 0–17 (ONS mid-2024)'; the caption beside every rate
    (``source_label``) gives the whole source, Wales' mid-2020 base included. Short, so table rows stay one line."""
    age = _band(age)
    return ("per 10,000 children aged 0–17 (ONS mid-2024)" if age == "0-17"
            else "per 10,000 children aged 10–17 (ONS mid-2020)")


def read_population(source) -> tuple[pd.Series, list[str]]:
    """An uploaded population CSV (``area_code``, ``children``) → (Series by area code, problems)."""
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    frame.columns = [c.strip().lower() for c in frame.columns]
    missing = {"area_code", "children"} - set(frame.columns)
    if missing:
        raise ValueError("the population file needs columns area_code and children "
                         f"(missing {', '.join(sorted(missing))})")
    values = pd.to_numeric(frame["children"].str.replace(",", "").str.strip(), errors="coerce")
    problems = [f"row {i + 2}: children {frame['children'].iat[i]!r} is not a number"
                for i in range(len(frame)) if pd.isna(values.iat[i])]
    series = pd.Series(values.to_numpy("float64"), index=frame["area_code"].str.strip().astype(str), name="children")
    return series[series.notna()], problems
