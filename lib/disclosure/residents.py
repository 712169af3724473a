"""Children counted where they live, published on home atoms (docs/DISCLOSURE.md, "Distinct children").

A linked child has one home area in each layer (``lib.measures.spans`` picks it layer by layer: the area of its
most recent placed encounter), so the children resident in the areas of any layer are a partition of the same
children. A *home atom* is one distinct combination of a child's home areas over every layer on which resident
children are published (``spans.RESIDENT_LAYERS``; "no home" is a value too). Counts of resident children
(all of them, or those with a flag: known to two or more agencies, spanning areas, found only by linkage) are
perturbed once per atom with the cell key of the atom's children, and an area's published count is the exact
sum of its atoms' published values, as records are summed from their atoms (``lib.disclosure.service``).
Subtracting one published area from another therefore leaves a sum of perturbed atoms, each within
``cellkey.MAX_NOISE`` of its truth, whatever the layers and however the homes nest: the same guarantee as for
records. Per-cell noise on each area, used before, let an attacker add many areas' noise bands against a total's.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from lib.disclosure.cellkey import perturb
from lib.disclosure.cells import group_cells, key_column

ATOM = "home_atom"
__all__ = ["ATOM", "atom_ids", "atom_counts", "area_counts"]


def atom_ids(homes: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """One id per distinct combination of the ``columns`` (a child's home area in each layer; missing = none)."""
    if not len(homes):
        return np.zeros(0, dtype=np.int64)
    frame = homes[columns].astype("string").fillna("\u2205")
    return pd.MultiIndex.from_frame(frame).factorize()[0].astype(np.int64)


def atom_counts(children: pd.DataFrame, flags: dict[str, str | None]) -> pd.DataFrame:
    """Published counts per home atom: ``children`` has one row per child (``ATOM``, its record key ``rkey``
    and boolean flag columns); for each ``out: flag`` of ``flags`` (None: every child) the atom's count of
    children with the flag, perturbed with the cell key of exactly those children. Index: ``ATOM``."""
    grouped = group_cells(children, ATOM, flags).set_index(ATOM)
    for out in flags:
        grouped[out] = perturb(grouped[out].to_numpy(np.int64), grouped[key_column(out)].to_numpy(np.int64))
    return grouped[list(flags)]


def area_counts(children: pd.DataFrame, area: str, flags: dict[str, str | None]) -> pd.DataFrame:
    """Published resident counts per area: the sum of the published counts of the home atoms of the children
    whose home (column ``area``) is that area. Areas without a child are left out (their count is 0).
    Columns: ``area``, then one per entry of ``flags``, whole numbers."""
    atoms = atom_counts(children, flags)
    homes = children[[ATOM, area]].drop_duplicates(ATOM).dropna(subset=[area]).set_index(ATOM)[area]
    placed = atoms.loc[atoms.index.intersection(homes.index)]
    sums = placed.groupby(homes.reindex(placed.index).to_numpy()).sum()
    sums.index.name = area
    return sums.astype("int64").reset_index()
