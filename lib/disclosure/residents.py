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
A part (children spanning police areas) is capped per atom at its whole (children spanning any area): the capped
value is still within ``MAX_NOISE`` of the truth, since the part's truth is at most the whole's.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from lib.disclosure.cellkey import perturb
from lib.disclosure.cells import group_cells, key_column

ATOM = "home_atom"
#: The column of ``atom_table`` holding every child's published count (the flag None).
EVERY = "children"
__all__ = ["ATOM", "EVERY", "WITHIN", "within", "atom_ids", "atom_counts", "atom_table", "area_counts"]


def atom_ids(homes: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """One id per distinct combination of the ``columns`` (a child's home area in each layer; missing = none)."""
    if not len(homes):
        return np.zeros(0, dtype=np.int64)
    # the columns' codes folded in one at a time and renumbered (never above the rows x one column's values), so
    # the ids are those of the tuples, numbered in order of first appearance (a MultiIndex of texts: 0.8 s at 1M)
    ids = np.zeros(len(homes), dtype=np.int64)
    for column in columns:
        codes, uniques = pd.factorize(homes[column].astype("string"))  # missing: -1, a value of its own
        ids = pd.factorize(ids * (len(uniques) + 1) + (codes + 1))[0].astype(np.int64)
    return ids


#: Flags whose children are a subset of another flag's (the rest are subsets of every child only): a part is never
#: published above its whole (``atom_counts``). ``spans_<g>`` (one geography) is within ``spans_any``.
WITHIN = {"missed": "multi_agency", "partly_missed": "multi_agency"}


def within(flag: str | None) -> str | None:
    """The flag whose children include every child with ``flag`` (None: every child; ``flag`` None: itself)."""
    if flag is not None and flag.startswith("spans_") and flag != "spans_any":
        return "spans_any"
    return WITHIN.get(flag) if flag is not None else None


def _lineage(flags) -> list[str | None]:
    """Every flag of ``flags`` and every flag it is within, wholes before parts (None, every child, first)."""
    chain: list[str | None] = [None]
    def add(flag):
        if flag is not None and flag not in chain:
            add(within(flag))
            chain.append(flag)
    for flag in flags:
        add(flag)
    return chain


def atom_counts(children: pd.DataFrame, flags: dict[str, str | None]) -> pd.DataFrame:
    """Published counts per home atom: ``children`` has one row per child (``ATOM``, its record key ``rkey``
    and boolean flag columns); for each ``out: flag`` of ``flags`` (None: every child) the atom's count of
    children with the flag, perturbed with the cell key of exactly those children, and never above the
    published count of the flag it is within (``within``: 12 spanning police areas of 11 spanning any area
    would be read as an error). The wholes are published whether asked for or not, so an atom's count with a
    flag is the same value whichever table asks. Index: ``ATOM``."""
    lineage = _lineage(flags.values())
    names = {flag: f"f{i}" for i, flag in enumerate(lineage)}
    grouped = group_cells(children, ATOM, {names[f]: f for f in lineage}).set_index(ATOM)
    published: dict[str | None, np.ndarray] = {}
    for flag in lineage:  # wholes first: each part is capped at its whole's published count
        name = names[flag]
        value = perturb(grouped[name].to_numpy(np.int64), grouped[key_column(name)].to_numpy(np.int64))
        published[flag] = value if flag is None else np.minimum(value, published[within(flag)])
    return pd.DataFrame({out: published[flag] for out, flag in flags.items()}, index=grouped.index)


def atom_table(children: pd.DataFrame, flags) -> pd.DataFrame:
    """``atom_counts`` of every child (column ``EVERY``) and of each flag of ``flags`` (a column named as the
    flag), once for all areas of all layers: an atom's published count of a flag does not depend on the layer
    nor on the other flags asked for, so ``area_counts(..., atoms=atom_table(...))`` gives every layer the values
    it would compute alone."""
    return atom_counts(children, {EVERY: None, **{flag: flag for flag in flags if flag != EVERY}})


def area_counts(children: pd.DataFrame, area: str, flags: dict[str, str | None],
                atoms: pd.DataFrame | None = None) -> pd.DataFrame:
    """Published resident counts per area: the sum of the published counts of the home atoms of the children
    whose home (column ``area``) is that area. Areas without a child are left out (their count is 0).
    Columns: ``area``, then one per entry of ``flags``, whole numbers. ``atoms``: ``atom_table`` of every child
    (with each flag of ``flags``) when already computed; ``children`` then only gives the atoms' homes."""
    if atoms is None:
        atoms = atom_counts(children, flags)
    else:
        atoms = atoms[[EVERY if flag is None else flag for flag in flags.values()]].set_axis(list(flags), axis=1)
    homes = children[[ATOM, area]].drop_duplicates(ATOM).dropna(subset=[area]).set_index(ATOM)[area]
    placed = atoms.loc[atoms.index.intersection(homes.index)]
    sums = placed.groupby(homes.reindex(placed.index).to_numpy()).sum()
    sums.index.name = area
    return sums.astype("int64").reset_index()
