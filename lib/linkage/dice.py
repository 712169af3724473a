"""Dice-similarity comparison levels on the names' Bloom filters, with cut-points chosen from the data.

Where the levels sit: after exact, nickname-canonical and sound-alike agreement and before disagreement,
so they grade only the pairs today's levels call a full disagreement (a misspelling that changes the
sound code, a dropped or doubled letter, a truncated name).

How the cut-points are trained (`thresholds`), for each name field F, on the nodes to be linked:
- *likely matches* ("m pairs"): pairs that agree exactly on date of birth, on the other name and on the home
  postcode, but not on F (neither its hash, its nickname-canonical hash nor its sound code): the other
  fields label them as one child almost always, so their F-Dice shows how a misrecorded F looks;
- *random pairs* ("u pairs"): a seeded random sample of pairs of nodes, with the same condition on F;
- a first cut-point is the Dice value that best separates the two (largest difference between the share
  of m pairs and of u pairs at or above it: Youden's J on a grid of 0.01); the level's cut-point does the
  same among the pairs at or above the first (the first alone lets in about one random pair in ten).
  With `LEVELS` = 2 both become levels. EM then estimates each level's m and u as for any level.
If there are too few m or u pairs to choose from (fewer than `MIN_PAIRS`), F gets no Dice level and
linkage falls back to today's comparisons for that field.

The cut-points are written into the level labels ("Forename Dice >= 0.62"), so a trained model's JSON
carries them to the Spark path (`thresholds_in`).
"""
from __future__ import annotations

import re

import duckdb
import numpy as np
import pandas as pd

from lib.records import bloom

LEVELS = 1  # one Dice level per name (two were measured worse: docs/LINKAGE_PRIVACY.md)
MIN_PAIRS = 30
U_PAIRS = 200_000
GRID = np.round(np.arange(0.30, 0.96, 0.01), 2)
OTHER = {"forename": "surname_hash", "surname": "forename_canon_hash"}
LABEL = {"forename": "Forename Dice >= {:.2f}", "surname": "Surname Dice >= {:.2f}"}
_PARSE = re.compile(r"^(Forename|Surname) Dice >= ([0-9.]+)$")


def _differs(field: str) -> str:
    canon = " AND l.forename_canon_hash <> r.forename_canon_hash" if field == "forename" else ""
    return (f"l.{field}_hash <> r.{field}_hash{canon} AND l.{field}_phonetic IS DISTINCT FROM r.{field}_phonetic"
            f" AND l.{field}_bloom IS NOT NULL AND r.{field}_bloom IS NOT NULL")


def _best_cut(m: np.ndarray, u: np.ndarray, grid: np.ndarray) -> float | None:
    if len(m) < MIN_PAIRS or len(u) < MIN_PAIRS:
        return None
    j = np.array([(m >= t).mean() - (u >= t).mean() for t in grid])
    return float(grid[int(np.argmax(j))])


def dice_samples(frame: pd.DataFrame, field: str, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """(Dice of the likely-match pairs, Dice of the random pairs) for one name field."""
    con = duckdb.connect()
    try:
        con.register("nodes_in", frame)
        con.execute("CREATE TABLE nodes AS SELECT row_number() OVER () AS i, * FROM nodes_in")
        n = con.execute("SELECT count(*) FROM nodes").fetchone()[0]
        dice = bloom.dice_sql(f"{field}_bloom").replace(f'"{field}_bloom_l"', f"l.{field}_bloom").replace(
            f'"{field}_bloom_r"', f"r.{field}_bloom")
        m = con.execute(f"""SELECT {dice} FROM nodes l JOIN nodes r
                            ON l.dob_hash = r.dob_hash AND l.{OTHER[field]} = r.{OTHER[field]}
                               AND l.home_postcode_hash = r.home_postcode_hash AND l.i < r.i
                            WHERE {_differs(field)}""").fetchnumpy()
        rng = np.random.default_rng(seed)
        pairs = pd.DataFrame({"a": rng.integers(1, n + 1, U_PAIRS), "b": rng.integers(1, n + 1, U_PAIRS)})
        con.register("pairs", pairs[pairs["a"] != pairs["b"]])
        u = con.execute(f"""SELECT {dice} FROM pairs p JOIN nodes l ON l.i = p.a JOIN nodes r ON r.i = p.b
                            WHERE {_differs(field)}""").fetchnumpy()
    finally:
        con.close()
    def first(d):
        return np.asarray(next(iter(d.values())), dtype=float)

    return first(m), first(u)


def thresholds(frame: pd.DataFrame, seed: int = 42) -> dict[str, list[float]]:
    """Trained Dice cut-points per name field, highest first (an empty list: no Dice level for it)."""
    out: dict[str, list[float]] = {}
    for field in bloom.FIELDS:
        m, u = dice_samples(frame, field, seed)
        low = _best_cut(m, u, GRID)
        if low is None:
            out[field] = []
            continue
        high = _best_cut(m[m >= low], u[u >= low], GRID[low < GRID])
        if LEVELS == 1:
            out[field] = [high if high is not None else low]
        else:
            out[field] = [high, low] if high is not None else [low]
    return out


def levels(field: str, cuts: list[float]) -> list:
    """Splink comparison levels for `field`'s Dice cut-points (highest first)."""
    import splink.comparison_level_library as cll

    sql = bloom.dice_sql(f"{field}_bloom")
    return [cll.CustomLevel(f"{sql} >= {t:.2f}", label_for_charts=LABEL[field].format(t), base_dialect_str="duckdb")
            for t in cuts]


def thresholds_in(model_json: dict) -> dict[str, list[float]]:
    """The Dice cut-points a trained model's JSON was built with (read from its level labels)."""
    out: dict[str, list[float]] = {field: [] for field in bloom.FIELDS}
    for comparison in model_json["comparisons"]:
        for level in comparison["comparison_levels"]:
            found = _PARSE.match(level.get("label_for_charts") or "")
            if found:
                out[found.group(1).lower()].append(float(found.group(2)))
    return out
