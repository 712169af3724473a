"""Comparator groups ("most similar areas") that never come from the outcome measures being compared (issue 17).

- **Children's services authorities** (``utla``): the DfE children's services statistical neighbours, 2025
  model (``geodata/official/dfe_statistical_neighbours_2025.csv``, vendored from
  dfe-analytical-services/CSC_outcomes_and_enablers, OGL): 10 neighbours per English authority, ranked, each
  with DfE's closeness band (Extremely close, Very close, Close, Somewhat close, Not close). DfE's file names
  authorities by their DfE number (``old_la_code``); each is carried to its current GSS code through the DfE
  C3 file's own ``old_la_code``/``new_la_code`` pairs (latest year), then the official successor table
  (Barnsley E08000016 → E08000038, Sheffield E08000019 → E08000039).
- **Every other layer, and Welsh authorities** (DfE's model covers England only): *context* neighbours, the
  ``k`` areas of the same layer nearest in three context measures, each standardised (z-score across the
  layer's areas) and weighted equally, by Euclidean distance:
  1. children aged 0-17, log scale (ONS mid-year estimates, ``lib.measures.population``);
  2. child density, children per km², log scale (children over the area of the layer's published boundary
     polygon in ``geodata/layers/``: generalised boundaries, so an approximation);
  3. household deprivation: the share of households deprived in at least one of the four Census 2021
     dimensions (ONS TS011 by LSOA 2021, vendored from humaniverse/demographr), carried to LSOA 2011 through
     the ONS LSOA 2011→2021 lookup (an LSOA 2021 shared by several 2011 LSOAs is shared equally) and summed
     to the layer by each LSOA's layer code.
  The CSE counts, rates and divergences the pages compare are never inputs.
"""
from __future__ import annotations

import json
from functools import cache, lru_cache

import numpy as np
import pandas as pd

from lib.geo import lookup, official_lookups
from lib.measures import convert
from lib.measures import population as pop

SN_EXTRACT = "dfe_statistical_neighbours_2025"
DEPRIVATION_EXTRACT = "census21_household_deprivation_lsoa21"
DFE_METHOD = "DfE children's services statistical neighbours (2025 model)"
CONTEXT_METHOD = ("context neighbours: nearest in child population, child density and household deprivation "
                  "(Census 2021), never the outcome measures")
CLOSENESS = ("Extremely close", "Very close", "Close", "Somewhat close", "Not close")
COLUMNS = ["area_code", "area_name", "rank", "neighbour_code", "neighbour_name", "closeness", "distance", "method"]
NOT_DEPRIVED = "Household is not deprived in any dimension"


@lru_cache(maxsize=1)
def dfe_code_map() -> dict[str, str]:
    """DfE authority number (``old_la_code``) → current GSS code, from the vendored C3 file (latest year of
    each number) and the official successor table."""
    from lib.geo import successors

    c3 = official_lookups.read("dfe_c3_cse_2018_2025")
    la = c3[c3["geographic_level"] == "Local authority"].sort_values("time_period")
    latest = la.drop_duplicates("old_la_code", keep="last").set_index("old_la_code")["new_la_code"]
    table = successors.by_kind("utla")
    current = set(convert.area_codes("utla"))
    out = {}
    for number, code in latest.items():
        entry = table.get(code) if code not in current else None
        out[str(number)] = entry.new_code if entry is not None and entry.status == "mapped" else code
    return out


@cache
def dfe_statistical_neighbours() -> pd.DataFrame:
    """All DfE statistical neighbours on current codes: ``COLUMNS`` (``distance`` empty). Raises with the file,
    row and field if a DfE number cannot be carried to a current code."""
    sn = official_lookups.read(SN_EXTRACT)
    codes = dfe_code_map()
    names = convert.area_names("utla")
    current = set(convert.area_codes("utla"))
    rows = []
    for i, row in enumerate(sn.itertuples(index=False), start=2):
        record = row._asdict()
        home = codes.get(str(record["old_la_code"]))
        if home not in current:
            raise ValueError(f"{official_lookups.path(SN_EXTRACT).name}: row {i}, field old_la_code: DfE number "
                             f"{record['old_la_code']} has no current authority code")
        for rank in range(1, 11):
            number = str(record[f"SN_{rank}"]).strip()
            code = codes.get(number)
            if code not in current:
                raise ValueError(f"{official_lookups.path(SN_EXTRACT).name}: row {i}, field SN_{rank}: DfE "
                                 f"number {number} has no current authority code")
            rows.append((home, names.get(home, record["la_name"]), rank, code, names.get(code, ""),
                         str(record[f"SN_{rank}P"]).strip(), np.nan, DFE_METHOD))
    return pd.DataFrame(rows, columns=COLUMNS).sort_values(["area_code", "rank"], ignore_index=True)


def _polygon_km2(geometry: dict) -> float:
    from pyproj import Geod
    from shapely.geometry import shape

    area, _ = Geod(ellps="WGS84").geometry_area_perimeter(shape(geometry))
    return abs(area) / 1e6


@cache
def _areas_km2(layer: str) -> pd.Series:
    path = lookup.GEODATA / "layers" / f"{layer}.geojson"
    data = json.loads(path.read_text(encoding="utf-8"))
    return pd.Series({f["properties"]["code"]: _polygon_km2(f["geometry"]) for f in data["features"]}, dtype=float)


@lru_cache(maxsize=1)
def _lsoa11_deprivation() -> pd.DataFrame:
    """Households and deprived households (Census 2021) per LSOA 2011 (``lsoa11cd``)."""
    raw = official_lookups.read(DEPRIVATION_EXTRACT)
    raw = raw.assign(n=raw["n"].astype(float), total=raw["total_households"].astype(float))
    per21 = raw.groupby("lsoa21_code").agg(households=("total", "first"))
    per21["deprived"] = per21["households"] - raw[raw["deprivation_dimensions"] == NOT_DEPRIVED].set_index(
        "lsoa21_code")["n"].reindex(per21.index).fillna(0.0)
    link = official_lookups.read("lsoa11_lsoa21_ltla22")[["lsoa11_code", "lsoa21_code"]].drop_duplicates()
    link = link.assign(share=1.0 / link.groupby("lsoa21_code")["lsoa11_code"].transform("count"))
    joined = link.merge(per21, left_on="lsoa21_code", right_index=True)
    joined[["households", "deprived"]] = joined[["households", "deprived"]].mul(joined["share"], axis=0)
    return joined.groupby("lsoa11_code")[["households", "deprived"]].sum().rename_axis("lsoa11cd")


@cache
def context(layer: str) -> pd.DataFrame:
    """The context measures of every area of ``layer``: ``area_code``, ``children``, ``km2``,
    ``children_per_km2``, ``deprived_share`` (households deprived in one or more dimensions)."""
    key = convert.layer_key(layer)
    column = convert.LAYER_COLUMNS[key]
    children = pop.official_population(key).set_index("area_code")["children"].astype(float)
    table = lookup.lsoa_table()[["lsoa11cd", column]].dropna()
    dep = table.merge(_lsoa11_deprivation(), left_on="lsoa11cd", right_index=True, how="left")
    by_area = dep.groupby(column)[["households", "deprived"]].sum(min_count=1)
    out = pd.DataFrame({"children": children})
    out["km2"] = _areas_km2(key).reindex(out.index) if (lookup.GEODATA / "layers" / f"{key}.geojson").exists() \
        else np.nan
    out["children_per_km2"] = out["children"] / out["km2"]
    out["deprived_share"] = (by_area["deprived"] / by_area["households"]).reindex(out.index)
    return out.rename_axis("area_code").reset_index()


def context_neighbours(layer: str, k: int = 10) -> pd.DataFrame:
    """Each area's ``k`` nearest areas of the same layer by the context measures: ``COLUMNS`` (closeness
    empty; ``distance`` in standard deviations). Measures missing for an area are left out of its distances."""
    key = convert.layer_key(layer)
    frame = context(key).set_index("area_code")
    features = pd.DataFrame({"children": np.log(frame["children"].clip(lower=1)),
                             "density": np.log(frame["children_per_km2"].clip(lower=1e-3)),
                             "deprivation": frame["deprived_share"]})
    z = ((features - features.mean()) / features.std(ddof=0)).to_numpy(float)
    diff = z[:, None, :] - z[None, :, :]
    present = ~np.isnan(diff)
    dist = np.sqrt(np.where(present, diff * diff, 0).sum(axis=2) / np.maximum(present.sum(axis=2), 1) * 3)
    np.fill_diagonal(dist, np.inf)
    names = convert.area_names(key)
    codes = features.index.to_numpy()
    rows = []
    for i, code in enumerate(codes):
        nearest = np.argsort(dist[i], kind="stable")[:k]
        for rank, j in enumerate(nearest, start=1):
            rows.append((code, names.get(code, ""), rank, codes[j], names.get(codes[j], ""), "",
                         round(float(dist[i, j]), 4), CONTEXT_METHOD))
    return pd.DataFrame(rows, columns=COLUMNS)


def neighbours(layer: str, code: str, k: int = 10) -> pd.DataFrame:
    """The comparator group of one area: DfE statistical neighbours for an English children's services
    authority, context neighbours otherwise (``method`` says which). Raises for an unknown code."""
    key = convert.layer_key(layer)
    if code not in set(convert.area_codes(key)):
        raise ValueError(f"{code!r} is not a current {convert.MEASURE_LAYERS.get(key, key)} code")
    if key == "utla":
        found = dfe_statistical_neighbours()
        found = found[found["area_code"] == code]
        if len(found):
            return found.head(k).reset_index(drop=True)
    found = context_neighbours(key, k)
    return found[found["area_code"] == code].reset_index(drop=True)
