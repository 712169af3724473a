"""Move counts between geographies: sum where layers nest, apportion by LSOA weights where they do not.

Every layer is a union of 2011 LSOAs (``lib.geo.lookup.lsoa_table``). The weight of an LSOA is its number
of current postcodes (``postcodes``), the default proxy for where people live. An area ``a`` of layer A
maps to area ``b`` of layer B with weight

    w(a → b) = postcodes of the LSOAs in both a and b / postcodes of the LSOAs in a

so the weights of each ``a`` sum to 1 and a converted total equals the original total (up to floating
point; exactly when every weight is 1). Where A nests in B (each ``a`` lies wholly in one ``b``, e.g.
children's services authority → police force, LAD → authority) every weight is exactly 1.0 and the
conversion is a plain sum: integer counts stay integers and nothing is marked as apportioned. Where they
do not nest (authority ↔ ICB, anything ↔ trust catchment) the result is marked ``apportioned``.

Trust catchments are different: a trust has no area of its own, only a share of each district's admissions
(OHID's catchment model, ``lib.geo.catchments``). Conversions to or from ``trust`` use those shares,
weighted by each LSOA's ONS child population: ``w(trust → a)`` = the share of the trust's modelled child
catchment living in ``a``; ``w(a → trust)`` = the share of ``a``'s children's admissions going to the
trust. The ``postcodes`` column then holds that child weight.

Layers: the boundary layers of ``lib.geo.layers`` plus ``nhs`` (ICB in England, local health board in
Wales), the NHS geography measures use; ``icb`` is accepted as an alias of ``nhs`` where users pick a layer.
"""
from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd

from lib.geo import catchments, layers, lookup

#: Layers counts can be expressed on, with their lsoa_table column (live views of the layer registry).
LAYER_COLUMNS = layers.COLUMNS
#: Layers offered for measures, in display order, with their titles.
MEASURE_LAYERS = layers.MEASURE_LAYERS
ALIASES = layers.MEASURE_ALIASES


def layer_key(layer: str) -> str:
    """Canonical layer key (``icb`` → ``nhs``); ValueError if unknown."""
    key = ALIASES.get(layer, layer)
    if key not in LAYER_COLUMNS:
        raise ValueError(f"unknown layer {layer!r}; choose from {', '.join(layers.measure_choices())}")
    return key


@cache
def area_names(layer: str) -> dict[str, str]:
    """Code → name of every area of a layer (``nhs``: ICBs and Welsh health boards)."""
    return dict(lookup.name_of(layer_key(layer)))


def area_codes(layer: str) -> list[str]:
    """Every area of a layer that has LSOAs (sorted codes)."""
    column = LAYER_COLUMNS[layer_key(layer)]
    if column == "trust_code":  # every trust with a catchment share, not only main providers
        return catchments.trust_codes()
    return sorted(lookup.lsoa_table()[column].dropna().astype(str).unique())


@cache
def weights(from_layer: str, to_layer: str) -> pd.DataFrame:
    """``from_code``, ``to_code``, ``weight`` (share of from's postcode weight lying in to; sums to 1 per
    from_code), ``postcodes`` (the shared weight). LSOAs without a code in either layer are left out."""
    a, b = LAYER_COLUMNS[layer_key(from_layer)], LAYER_COLUMNS[layer_key(to_layer)]
    if "trust_code" in (a, b):
        return _trust_weights(a, b)
    table = lookup.lsoa_table()
    if a == b:
        codes = table[a].dropna().astype(str).unique()
        return pd.DataFrame({"from_code": codes, "to_code": codes, "weight": 1.0,
                             "postcodes": table.groupby(a)["postcodes"].sum().reindex(codes).to_numpy("float64")})
    pairs = (table[[a, b, "postcodes"]].dropna(subset=[a, b])
             .groupby([a, b], as_index=False)["postcodes"].sum())
    pairs.columns = ["from_code", "to_code", "postcodes"]
    pairs["from_code"] = pairs["from_code"].astype(str)
    pairs["to_code"] = pairs["to_code"].astype(str)
    pairs["postcodes"] = pairs["postcodes"].astype("float64")
    totals = pairs.groupby("from_code")["postcodes"].transform("sum")
    pairs["weight"] = pairs["postcodes"] / totals
    # A sole destination gets exactly 1.0 (x / x is exact), so nested conversions are plain sums.
    return pairs[["from_code", "to_code", "weight", "postcodes"]].reset_index(drop=True)


def _trust_weights(a: str, b: str) -> pd.DataFrame:
    """weights() where either side is the trust layer: OHID catchment shares × LSOA children."""
    if a == b:
        pairs = catchments.area_trust_weights("lsoa11cd").groupby("trust_code")["weight"].sum()
        codes = catchments.trust_codes()
        return pd.DataFrame({"from_code": codes, "to_code": codes, "weight": 1.0,
                             "postcodes": pairs.reindex(codes).fillna(0.0).to_numpy("float64")})
    other = b if a == "trust_code" else a
    pairs = catchments.area_trust_weights(other)
    pairs = pairs[pairs["weight"] > 0]
    if a == "trust_code":
        pairs = pairs.rename(columns={"trust_code": "from_code", "area_code": "to_code", "weight": "postcodes"})
    else:
        pairs = pairs.rename(columns={"area_code": "from_code", "trust_code": "to_code", "weight": "postcodes"})
    totals = pairs.groupby("from_code")["postcodes"].transform("sum")
    pairs["weight"] = pairs["postcodes"] / totals
    pairs = pairs.sort_values(["from_code", "to_code"], ignore_index=True)
    return pairs[["from_code", "to_code", "weight", "postcodes"]].astype(
        {"from_code": str, "to_code": str, "weight": "float64", "postcodes": "float64"})


def nests(from_layer: str, to_layer: str) -> bool:
    """True when every area of ``from_layer`` lies wholly inside one area of ``to_layer``."""
    w = weights(from_layer, to_layer)
    return bool((w.groupby("from_code")["to_code"].nunique() == 1).all())


def convert(frame: pd.DataFrame, from_layer: str, to_layer: str, value_columns: list[str],
            code_column: str = "area_code", by: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Re-express counts on ``from_layer`` areas as counts on ``to_layer`` areas.

    ``frame`` has ``code_column`` and numeric ``value_columns`` (NaN = not available: left out of sums),
    optionally grouped by ``by`` columns (period, agency…). Returns (converted, unmatched):
    ``converted`` has ``by`` columns, ``area_code``, the value columns, ``apportioned`` (True where any
    contribution came through a weight below 1) and ``sources`` (from-areas contributing);
    ``unmatched`` holds the input rows whose code is not an area of ``from_layer`` (reported, not
    silently dropped).
    """
    by = list(by or [])
    w = weights(from_layer, to_layer)
    codes = frame[code_column].astype("string")
    known = codes.isin(set(w["from_code"])).fillna(False).astype(bool)
    unmatched = frame[~known].reset_index(drop=True)
    merged = frame[known].assign(_code=codes[known].astype(str)).merge(
        w, left_on="_code", right_on="from_code", how="inner")
    for column in value_columns:
        merged[column] = merged[column].astype("float64") * merged["weight"]
    merged["_split"] = merged["weight"] < 1.0
    keys = [*by, "to_code"]
    groups = merged.groupby(keys, dropna=False)
    grouped = groups[value_columns].sum(min_count=1)
    grouped["apportioned"] = groups["_split"].any()
    grouped["sources"] = groups["from_code"].nunique()
    grouped = grouped.reset_index()
    grouped = grouped.rename(columns={"to_code": "area_code"})
    return grouped.reset_index(drop=True), unmatched


def round_preserving_total(values: np.ndarray) -> np.ndarray:
    """Integers summing to round(sum(values)) (largest remainder), for showing apportioned counts."""
    values = np.asarray(values, dtype="float64")
    floor = np.floor(values)
    short = int(round(values.sum() - floor.sum()))
    order = np.argsort(-(values - floor), kind="stable")
    out = floor.copy()
    out[order[:max(short, 0)]] += 1
    return out.astype("int64")
