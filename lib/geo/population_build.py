"""Official child population by LSOA (build time): ONS mid-year estimates, scaled to the latest LA totals.

- Base: ONS mid-2020 population estimates by single year of age for the 34,753 LSOAs (2011) of England
  and Wales (vendored by ``humaniverse/demographr``). Every layer is a union of LSOAs, so every layer's
  figure is an exact sum; a district's mid-2020 figure equals ONS's own district estimate to the person.
- Newer: ONS mid-year estimates of children aged 0–17 by upper-tier local authority in England, 2012–2024,
  as published by DfE (``dfe-analytical-services/CSC_outcomes_and_enablers``). For the 0–17 band in
  England each LSOA's mid-2020 count is multiplied by its authority's factor (latest total ÷ the
  authority's mid-2020 LSOA sum), so every authority (and every police force, a union of authorities)
  equals the latest official total, and areas inside an authority share it by their mid-2020 counts.
  There are no newer LA totals for Wales or for ages 10–17 in those files: those stay at mid-2020.

Output: ``geodata/child_population_lsoa.parquet`` (one row per LSOA): ``lsoa11cd``, ``scale_area``,
``total_2020``, ``age_0_17_2020``, ``age_10_17_2020``, ``scale``, ``age_0_17`` (scaled), ``vintage_0_17``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lib.geo import successors
from lib.geo.official import (
    GEODATA,
    OFFICIAL,
    Source,
    read_csv,
    read_r,
    refresh_or_recall,
    sha256_file,
)

OGL = "Open Government Licence v3.0"
POPULATION_FILE = "child_population_lsoa.parquet"
BASE_VINTAGE = "mid-2020"

POP_LSOA = Source(
    "ons_mye2020_lsoa11", "humaniverse/demographr", "data/population20_lsoa11.rda",
    "Office for National Statistics",
    "Lower layer Super Output Area population estimates by single year of age (persons)",
    "mid-2020; LSOA 2011", OGL, "ons_mye2020_lsoa11_ages0_17.parquet")
DFE_MYE = Source(
    "ons_mye_children_la", "dfe-analytical-services/CSC_outcomes_and_enablers",
    "data-raw/ons_mid-year_population_estimates_2012_to_2024.csv",
    "Office for National Statistics (as published by the Department for Education)",
    "Mid-year population estimates: children aged 0 to 17, England, local authorities, 2012 to 2024",
    "mid-2012 to mid-2024", OGL, "ons_mye_children_0_17_la_2012_2024.csv")

OFFICIAL_SOURCES = (POP_LSOA, DFE_MYE)
AGES = [str(a) for a in range(18)]


def refresh_official(folder: Path = OFFICIAL) -> dict[str, dict]:
    folder.mkdir(parents=True, exist_ok=True)
    provenance = {}
    frame, info = read_r(POP_LSOA)
    frame = frame[["lsoa11_code", "total_population", *AGES]].sort_values("lsoa11_code", ignore_index=True)
    frame[["total_population", *AGES]] = frame[["total_population", *AGES]].round().astype("int32")
    frame.to_parquet(folder / POP_LSOA.extract, index=False, compression="zstd")
    provenance[POP_LSOA.key] = info

    frame, info = read_csv(DFE_MYE, dtype=str, keep_default_na=False)
    frame = frame[frame["geographic_level"] == "Local authority"]
    frame = frame[["time_period", "new_la_code", "old_la_code", "la_name", "age_group", "population_estimate"]]
    frame = frame.sort_values(["time_period", "new_la_code"], ignore_index=True)
    frame.to_csv(folder / DFE_MYE.extract, index=False, lineterminator="\n")
    provenance[DFE_MYE.key] = info
    return provenance


def lsoa_extract(folder: Path = OFFICIAL) -> pd.DataFrame:
    return pd.read_parquet(folder / POP_LSOA.extract)


def la_totals(folder: Path = OFFICIAL) -> pd.DataFrame:
    frame = pd.read_csv(folder / DFE_MYE.extract, dtype=str, keep_default_na=False)
    frame["population_estimate"] = pd.to_numeric(frame["population_estimate"], errors="coerce")
    return frame


def _successor(code: str) -> str | None:
    """The current upper-tier code of a retired one, from the project's code successor table
    (``lib.geo.successors``); None when it has none."""
    entry = successors.lookup("utla", code)
    return entry.new_code if entry is not None and entry.status == "mapped" and entry.new_code else None


def latest_la_totals(utla_names: pd.Series, folder: Path = OFFICIAL,
                     successor=_successor) -> tuple[pd.Series, str, dict]:
    """(children 0–17 by current upper-tier code, the vintage, codes moved to their current code).

    ``utla_names``: current code → name. A code of the DfE file that is no longer current moves to its
    successor (``successor(code)``, ONS retired → current), else to the current authority of the same name."""
    frame = la_totals(folder)
    latest = frame["time_period"].astype(int).max()
    frame = frame[frame["time_period"].astype(int) == latest]
    by_name = {name: code for code, name in utla_names.items()}
    moved, codes = {}, []
    for code, name in zip(frame["new_la_code"], frame["la_name"]):
        if code in utla_names.index:
            codes.append(code)
            continue
        new = successor(code) or by_name.get(name)
        if new is None:
            raise ValueError(f"{DFE_MYE.extract}: {latest} row for {code} {name!r} matches no current authority")
        moved[code] = new
        codes.append(new)
    totals = pd.Series(frame["population_estimate"].to_numpy("float64"), index=codes)
    if totals.index.duplicated().any():
        raise ValueError(f"{DFE_MYE.extract}: two {latest} rows for {list(totals.index[totals.index.duplicated()])}")
    return totals, f"mid-{latest}", moved


def derive(table: pd.DataFrame, utla_names: pd.Series, folder: Path = OFFICIAL) -> tuple[pd.DataFrame, dict]:
    """One row per LSOA of ``table`` (``lsoa11cd``, ``utla_code``) with its official child population."""
    pop = lsoa_extract(folder).set_index("lsoa11_code")
    missing = table.loc[~table["lsoa11cd"].isin(pop.index), "lsoa11cd"]
    if len(missing):
        raise ValueError(f"{POP_LSOA.extract}: no population for LSOAs {list(missing[:5])}")
    pop = pop.reindex(table["lsoa11cd"])
    out = pd.DataFrame({"lsoa11cd": table["lsoa11cd"].to_numpy(),
                        "scale_area": table["utla_code"].astype(str).to_numpy()})
    out["total_2020"] = pop["total_population"].to_numpy("int64")
    out["age_0_17_2020"] = pop[AGES].sum(axis=1).to_numpy("int64")
    out["age_10_17_2020"] = pop[AGES[10:]].sum(axis=1).to_numpy("int64")

    totals, vintage, moved = latest_la_totals(utla_names, folder)
    base = out.groupby("scale_area")["age_0_17_2020"].sum()
    england = out["scale_area"].str.startswith("E")
    unmatched = sorted(set(out.loc[england, "scale_area"]) - set(totals.index))
    if unmatched:
        raise ValueError(f"{DFE_MYE.extract}: no {vintage} total for authorities {unmatched[:5]}")
    factor = (totals / base.reindex(totals.index)).rename("scale")
    out["scale"] = np.where(england, out["scale_area"].map(factor), 1.0)
    out["age_0_17"] = out["age_0_17_2020"] * out["scale"]
    out["vintage_0_17"] = np.where(england, vintage, BASE_VINTAGE)
    info = {
        "base": f"ONS {BASE_VINTAGE} LSOA estimates by single year of age",
        "scaled_to": f"ONS {vintage} children aged 0–17 by upper-tier local authority (DfE file), England",
        "latest_vintage": vintage,
        "codes_moved": moved,
        "scale_percentiles": {q: round(float(np.percentile(factor, q)), 4) for q in (0, 50, 100)},
        "children_0_17_england_wales": round(float(out["age_0_17"].sum())),
        "children_10_17_england_wales_2020": int(out["age_10_17_2020"].sum()),
    }
    return out, info


def write(table: pd.DataFrame, utla_names: pd.Series, out_dir: Path = GEODATA,
          refresh: bool | None = None) -> dict:
    folder, provenance = refresh_or_recall(out_dir, OFFICIAL_SOURCES, refresh_official, refresh)
    frame, info = derive(table, utla_names, folder)
    frame.to_parquet(out_dir / POPULATION_FILE, index=False, compression="zstd")
    official = {}
    for source in OFFICIAL_SOURCES:
        entry = dict(provenance.get(source.key) or {})
        entry.update({"extract": f"official/{source.extract}", "extract_sha256": sha256_file(folder / source.extract)})
        official[source.key] = entry
    return {"official": official, "child_population": info}
