"""Place postcodes and areas in every geography, from the built geodata/ (fast, cached, read-only).

This is what the rest of the product calls at run time; nothing here reads the raw packages.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from lib.geo import layers
from lib.geo.layers import LAYERS

GEODATA = Path(__file__).resolve().parents[2] / "geodata"
#: Layer key -> lsoa_table column, for every registered layer (a live view of lib.geo.layers).
LAYER_COLUMN = layers.COLUMNS


class _PlaceColumns(Sequence):
    """The columns a placed record gets, live from the layer registry: the LSOA code, every registered layer's
    code column (``layers.code_columns``: by ``place_rank``, each once), then the centroid (lon, lat)."""

    def _columns(self) -> list[str]:
        return ["lsoa11cd", *layers.code_columns(), "lon", "lat"]

    def __getitem__(self, index):
        return self._columns()[index]

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns())

    def __len__(self) -> int:
        return len(self._columns())

    def __repr__(self) -> str:
        return repr(self._columns())


#: Columns of ``place_lsoa_rows``/``place_postcodes`` (after ``postcode_norm``); a layer registered later is placed too.
PLACE_COLUMNS: Sequence[str] = _PlaceColumns()

# UK postcode shape (outward code, inward code), after removing spaces and upper-casing.
_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}$")


@lru_cache(maxsize=1)
def lsoa_table() -> pd.DataFrame:
    """One row per 2011 LSOA with its code in every layer (see docs/CONTRACTS.md)."""
    table = pd.read_parquet(GEODATA / "lsoa_lookup.parquet")
    for column in {layer.column for layer in LAYERS.values()}:
        table[column] = table[column].replace("nan", pd.NA)
    return table


@lru_cache(maxsize=1)
def _postcode_frame() -> pd.DataFrame:
    return pd.read_parquet(GEODATA / "postcodes.parquet")


@lru_cache(maxsize=1)
def _postcode_positions() -> pd.Index:
    return pd.Index(_postcode_frame()["postcode"])


@lru_cache(maxsize=1)
def postcode_index() -> pd.DataFrame:
    """Every current England and Wales postcode (no spaces) with its LSOA code."""
    frame = _postcode_frame()
    codes = lsoa_table()["lsoa11cd"].to_numpy()
    return pd.DataFrame({"postcode": frame["postcode"], "lsoa11cd": codes[frame["lsoa_idx"].to_numpy()]})


@lru_cache(maxsize=1)
def areas() -> pd.DataFrame:
    """(layer, code, name) for every area of every layer."""
    return pd.read_csv(GEODATA / "areas.csv", dtype=str, keep_default_na=False)


def area_names(layer: str) -> pd.DataFrame:
    """code and name of every area in a layer (a combined layer such as ``nhs``: the areas of its parts)."""
    if layer not in layers.REGISTRY:
        raise KeyError(f"unknown layer {layer!r}; choose from {', '.join(layers.REGISTRY)}")
    table = areas()
    return table.loc[table["layer"].isin(layers.REGISTRY[layer].name_layers), ["code", "name"]].reset_index(drop=True)


@cache
def name_of(layer: str) -> dict[str, str]:
    """Code -> name of every area of a layer: the one place names are built (``nhs``: ICBs and health boards)."""
    return dict(area_names(layer).itertuples(index=False, name=None))


def nesting_violations(inner: str, outer: str) -> pd.DataFrame:
    """Areas of ``inner`` whose LSOAs fall in more than one area of ``outer`` (empty when inner nests in outer):
    the check of the registry's ``nests_in`` against the official lookup."""
    a, b = layers.COLUMNS[inner], layers.COLUMNS[outer]
    if a == b:
        return pd.DataFrame({a: pd.Series(dtype="str"), "outer_areas": pd.Series(dtype="int64")})
    table = lsoa_table()[[a, b]].dropna().drop_duplicates()
    counts = table.groupby(a)[b].nunique()
    return counts[counts > 1].rename("outer_areas").reset_index()


def normalise_postcode(values: pd.Series) -> pd.Series:
    """Upper case, spaces removed; anything not shaped like a UK postcode becomes <NA>."""
    text = pd.Series(values, copy=False).astype("string").str.upper().str.replace(r"\s+", "", regex=True)
    return text.where(text.str.fullmatch(_POSTCODE.pattern).fillna(False).astype(bool))


def format_postcode(normalised: str) -> str:
    """'LS62AB' → 'LS6 2AB' (the inward code is always the last three characters)."""
    return f"{normalised[:-3]} {normalised[-3:]}"


def place_postcodes(values: pd.Series) -> pd.DataFrame:
    """Every layer's code for each postcode, on the input's index; <NA> where not found."""
    values = pd.Series(values, copy=False)
    norm = normalise_postcode(values)
    positions = _postcode_positions().get_indexer(norm.fillna("").to_numpy())
    found = positions >= 0
    lsoa_idx = np.full(len(norm), -1, dtype=np.int64)
    lsoa_idx[found] = _postcode_frame()["lsoa_idx"].to_numpy()[positions[found]]
    out = place_lsoa_rows(lsoa_idx, index=values.index)
    out.insert(0, "postcode_norm", norm.to_numpy())
    return out


def place_lsoa_rows(lsoa_idx: np.ndarray, index=None) -> pd.DataFrame:
    """Every layer's code for rows of lsoa_table (position -1 means unknown)."""
    table = lsoa_table()
    found = lsoa_idx >= 0
    out = {}
    for column in PLACE_COLUMNS:
        source = table[column]
        if column in ("lon", "lat"):
            data = np.full(len(lsoa_idx), np.nan)
            data[found] = source.to_numpy()[lsoa_idx[found]]
            out[column] = data
        else:
            data = np.full(len(lsoa_idx), None, dtype=object)
            data[found] = source.to_numpy(dtype=object)[lsoa_idx[found]]
            out[column] = pd.array(data, dtype="string")
    return pd.DataFrame(out, index=index)


def find_area(text: str, limit: int = 10) -> pd.DataFrame:
    """Areas whose name or code contains the text (case-insensitive), best matches first."""
    needle = text.strip().lower()
    if not needle:
        return areas().iloc[0:0]
    table = areas()
    names = table["name"].str.lower()
    hit = names.str.contains(needle, regex=False) | (table["code"].str.lower() == needle)
    found = table[hit].assign(_exact=names[hit] == needle, _starts=names[hit].str.startswith(needle),
                              _len=names[hit].str.len())
    found = found.sort_values(["_exact", "_starts", "_len"], ascending=[False, False, True])
    return found.drop(columns=["_exact", "_starts", "_len"]).head(limit).reset_index(drop=True)


def verify_manifest(folder: Path = GEODATA) -> list[str]:
    """Problems found comparing geodata files with the manifest's sizes and checksums."""
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    problems = []
    for name, info in manifest["files"].items():
        path = folder / name
        if not path.exists():
            problems.append(f"{name}: missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != info["sha256"]:
            problems.append(f"{name}: checksum differs from manifest")
    return problems


def manifest() -> dict:
    return json.loads((GEODATA / "manifest.json").read_text(encoding="utf-8"))
