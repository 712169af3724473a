"""Retired codes → current codes, at run time, from the derived successor tables in geodata/facts/.

geodata/facts/code_successors.csv is written by the geodata build (lib/geo/reference.py derives it from
ONS lookups by LSOA overlap; nothing is typed). Each row: kind (lad, utla, pfa, icb, sicbl), old_code,
old_name, new_code, new_name, status (``mapped``: one current code holds at least 90% of the old area;
``split``: none does), share, destinations ("code:share ..."), basis.

Other kinds (e.g. NHS trust ODS successors) are added by listing their table in TABLES: any CSV with the
same columns. ``map_codes(kind, codes)`` is the one entry point the rest of the product uses.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import pandas as pd

from lib.geo.layers import REGISTRY as LAYER_REGISTRY

FACTS = Path(__file__).resolve().parents[2] / "geodata" / "facts"
#: Successor tables read at run time (kind, old_code, old_name, new_code, new_name, status, share,
#: destinations, basis). Append a path to add a kind.
TABLES: list[Path] = [FACTS / "code_successors.csv", FACTS / "trust_successors.csv"]
#: What a retired code of each layer names, in a message (from the layer registry).
KIND_WORDS = {key: layer.code_name for key, layer in LAYER_REGISTRY.items()}


@dataclass(frozen=True)
class Successor:
    kind: str
    old_code: str
    old_name: str
    new_code: str  # "" when split
    new_name: str
    status: str  # mapped | split
    share: float
    destinations: tuple[tuple[str, float], ...]

    def message(self, names: dict[str, str] | None = None) -> str:
        word = KIND_WORDS.get(self.kind, self.kind)
        if self.status == "mapped":
            return (f"{self.old_code} ({self.old_name}) is a retired {word} code; mapped to its successor "
                    f"{self.new_code} {self.new_name}")
        names = names or {}
        parts = ", ".join(f"{code} {names.get(code, '')}".strip() + ("" if math.isnan(share) else f" ({share:.0%})")
                          for code, share in self.destinations)
        return (f"{self.old_code} ({self.old_name}) is a retired {word} code whose area was split between {parts}; "
                f"it cannot be placed in one area: use the current code")


@lru_cache(maxsize=1)
def table() -> pd.DataFrame:
    """All successor rows from every table in TABLES."""
    frames = [pd.read_csv(path, comment="#", dtype=str, keep_default_na=False) for path in TABLES if path.exists()]
    if not frames:
        return pd.DataFrame(columns=["kind", "old_code", "old_name", "new_code", "new_name", "status", "share",
                                     "destinations", "basis"])
    return pd.concat(frames, ignore_index=True)


@cache
def by_kind(kind: str) -> dict[str, Successor]:
    rows = table()
    rows = rows[rows["kind"] == kind]
    out = {}
    for r in rows.itertuples(index=False):
        # A split without published proportions (NHS trusts: the ODS table gives none) has share "" and ":nan".
        dest = tuple((d.split(":")[0], float(d.split(":")[1])) for d in r.destinations.split())
        out[r.old_code] = Successor(r.kind, r.old_code, r.old_name, r.new_code, r.new_name, r.status,
                                    float(r.share) if r.share else math.nan, dest)
    return out


def lookup(kind: str, code: str) -> Successor | None:
    """The successor entry of a retired code, or None if the code is not retired (or unknown)."""
    return by_kind(kind).get(code)


def find(code: str) -> Successor | None:
    """The successor entry of a retired code of any kind (first kind in table order), or None."""
    for kind in dict.fromkeys(table()["kind"]):
        entry = by_kind(kind).get(code)
        if entry is not None:
            return entry
    return None


def map_codes(kind: str, codes, names: dict[str, str] | None = None) -> tuple[list[str | None], list[str]]:
    """Current code for each code: unchanged if not retired, its successor if mapped, None if split.

    Returns (mapped codes, one message per retired code met, in first-seen order). ``names`` (code →
    name) is used to name the parts of a split area.
    """
    entries = by_kind(kind)
    mapped: list[str | None] = []
    messages: list[str] = []
    said: set[str] = set()
    for code in codes:
        entry = entries.get(code) if isinstance(code, str) else None
        if entry is None:
            mapped.append(code)
            continue
        mapped.append(entry.new_code if entry.status == "mapped" else None)
        if code not in said:
            said.add(code)
            messages.append(entry.message(names))
    return mapped, messages
