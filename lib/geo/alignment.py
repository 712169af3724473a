"""Where boundaries misalign: how each area of one layer splits across the areas of another.

Every layer is built from the same LSOAs, so overlap is exact at LSOA level: the share of an
area's LSOAs that fall in each area of another layer. An area wholly inside one partner area is
aligned; one split across several means partners must coordinate across a boundary there.
"""
from __future__ import annotations

import textwrap
from functools import lru_cache

import pandas as pd

from lib.geo import lookup
from lib.geo.layers import LAYERS, PLACE_ORDER


@lru_cache(maxsize=64)
def overlaps(layer: str, other: str) -> pd.DataFrame:
    """code, other_code, lsoas, share (of the area's LSOAs) for every overlapping pair."""
    table = lookup.lsoa_table()
    a, b = LAYERS[layer].column, LAYERS[other].column
    pairs = table[[a, b]].dropna()
    counts = pairs.groupby([a, b]).size().rename("lsoas").reset_index()
    counts.columns = ["code", "other_code", "lsoas"]
    totals = table.groupby(a).size()
    # float on both sides: with no overlap at all (Welsh health boards and ICBs) the empty mapped column is
    # string-typed under pandas 3, and dividing by it raised
    counts["share"] = counts["lsoas"].astype(float) / counts["code"].map(totals).astype(float)
    return counts.sort_values(["code", "share", "other_code"], ascending=[True, False, True], ignore_index=True)


def crossings(layer: str, other: str) -> pd.DataFrame:
    """overlaps(layer, other) with `crosses`: the boundary genuinely cuts across.

    Nesting is not misalignment: a county holding whole districts, or a borough inside one ICB,
    is aligned. A pair crosses when neither area lies wholly inside the other.
    """
    ov = overlaps(layer, other).copy()
    reverse = overlaps(other, layer).set_index(["other_code", "code"])["share"]
    back = pd.Series(reverse.reindex(pd.MultiIndex.from_arrays([ov["code"], ov["other_code"]])).to_numpy(),
                     index=ov.index)
    ov["other_share_inside"] = back
    ov["crosses"] = (ov["share"] < 1.0) & (back < 1.0)
    return ov


@lru_cache(maxsize=128)
def misalignment(layer: str, min_share: float = 0.0) -> pd.DataFrame:
    """One row per area of `layer`: for every other layer, how many of its areas overlap this
    one (`<other>_areas`), how many of those cut across its boundary (`<other>_crossing`), and
    the share held by the largest (`<other>_main_share`). Overlaps below min_share of the area's
    LSOAs are ignored. `split_layers` counts the other layers whose boundaries cut across it;
    `crossing_partners` the partner areas it must coordinate with across a boundary. Layers that
    do not cover the area (ICBs in Wales) give 0 areas and an empty share.
    """
    out = lookup.area_names(layer)
    split_layers = pd.Series(0, index=out.index)
    crossing_total = pd.Series(0, index=out.index)
    for other in PLACE_ORDER:
        if other == layer:
            continue
        ov = crossings(layer, other)
        kept = ov[ov["share"] >= min_share]
        out[f"{other}_areas"] = out["code"].map(kept.groupby("code").size()).fillna(0).astype(int)
        crossing = out["code"].map(kept[kept["crosses"]].groupby("code").size()).fillna(0).astype(int)
        out[f"{other}_crossing"] = crossing
        out[f"{other}_main_share"] = out["code"].map(ov.groupby("code")["share"].max()).round(3)
        split_layers += (crossing > 0).astype(int)
        crossing_total += crossing
    out["split_layers"] = split_layers
    out["crossing_partners"] = crossing_total
    out.flags.allows_duplicate_labels = False
    return out  # cached: callers must not modify it


def memberships(layer: str, code: str, min_share: float = 0.0) -> dict[str, list[tuple[str, str, float]]]:
    """For one area: each other layer's areas it falls in, as (code, name, share), largest first."""
    result = {}
    for other in PLACE_ORDER:
        if other == layer:
            continue
        ov = overlaps(layer, other)
        rows = ov[(ov["code"] == code) & (ov["share"] >= min_share)]
        names = lookup.name_of(other)
        result[other] = [(c, names.get(c, c), float(s)) for c, s in zip(rows["other_code"], rows["share"])]
    return result


#: Widest line of a hover label, in characters: a label must fit beside the pointer on a 700-pixel map.
HOVER_LINE_CHARS = 48


def _wrapped(text: str, indent: str = "") -> list[str]:
    """One hover line, wrapped to HOVER_LINE_CHARS."""
    lines = textwrap.wrap(text, HOVER_LINE_CHARS - len(indent), break_long_words=True) or [""]
    return [indent + line for line in lines]


@lru_cache(maxsize=16)
def hover_text(layer: str, max_listed: int = 3) -> dict[str, str]:
    """Per area, an HTML hover label: name, code and the areas of the other layers it falls in (one per line,
    with its share where the area is split), wrapped so no line is wider than HOVER_LINE_CHARS."""
    names = lookup.name_of(layer)
    parts: dict[str, list[str]] = {code: [*(f"<b>{line}</b>" for line in _wrapped(f"{name} ({code})")),
                                          LAYERS[layer].title]
                                   for code, name in names.items()}
    for other in PLACE_ORDER:
        if other == layer:
            continue
        other_names = lookup.name_of(other)
        for code, group in overlaps(layer, other).groupby("code", sort=False):
            if code not in parts:
                continue
            listed = [f"{other_names.get(c, c)} {s:.0%}" if s < 0.995 else other_names.get(c, c)
                      for c, s in zip(group["other_code"].head(max_listed), group["share"].head(max_listed))]
            more = len(group) - max_listed
            if len(listed) == 1 and more <= 0:
                parts[code].extend(_wrapped(f"{LAYERS[other].short}: {listed[0]}"))
                continue
            parts[code].append(f"{LAYERS[other].short}:")
            for item in listed:
                parts[code].extend(_wrapped(f"· {item}"))
            if more > 0:
                parts[code].append(f"· and {more} more")
    return {code: "<br>".join(lines) for code, lines in parts.items()}
