"""Cell key perturbation (the method ONS used for Census 2021 tables: "where the same records are represented in
a cell in any table, the level of perturbation is the same"), with our own perturbation table.

- Record key: ``keyed_hash(secret, member id) mod 256`` for every record or child (``member_keys``).
- Cell key: the sum of the cell's members' record keys modulo 256 (``cell_key``; in SQL ``sum(rkey) % 256``).
- Noise: ``PTABLE[min(count, CAP)][cell key]``. A zero stays zero (no noise where nothing happened, so totals are
  not inflated); a 1 becomes 0, 1, 2 or 3; larger counts move by at most 2. Every row has mean zero, so sums of many
  perturbed cells stay unbiased. Published counts are never negative.
"""
from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pandas as pd

KEYS = 256
#: Largest move of any count, up or down (the guarantee in docs/DISCLOSURE.md rests on it).
MAX_NOISE = 2
CAP = 2  # rows of the table: 0, 1, and 2-or-more

#: Noise distribution per true count (probabilities of each noise value); each row sums to 1 and has mean zero.
NOISE_DISTRIBUTION: dict[int, dict[int, float]] = {
    0: {0: 1.0},
    1: {-1: 0.30, 0: 0.45, 1: 0.20, 2: 0.05},
    2: {-2: 0.05, -1: 0.20, 0: 0.50, 1: 0.20, 2: 0.05},
}


def _row(distribution: dict[int, float]) -> np.ndarray:
    """256 noise values laid out by cumulative probability: cell key k takes the noise whose band holds (k+½)/256."""
    values = sorted(distribution)
    edges = np.cumsum([distribution[v] for v in values])
    u = (np.arange(KEYS) + 0.5) / KEYS
    return np.array(values, dtype=np.int64)[np.searchsorted(edges, u, side="right").clip(0, len(values) - 1)]


#: PTABLE[row, cell key] -> noise, row = min(count, CAP).
PTABLE = np.vstack([_row(NOISE_DISTRIBUTION[r]) for r in range(CAP + 1)])


def member_keys(ids, secret: bytes) -> np.ndarray:
    """Record keys 0..255 of members (records or children) from a secret: without it, nobody can predict a cell's
    noise; with it, the same member always has the same key."""
    return np.array([hmac.new(secret, str(i).encode("utf-8"), hashlib.sha256).digest()[0] for i in ids],
                    dtype=np.int64)


def cell_key(keys) -> int:
    return int(np.sum(np.asarray(keys, dtype=np.int64)) % KEYS)


def noise(count, key) -> np.ndarray:
    """The perturbation of true counts with their cell keys (vectorised; counts must be whole and >= 0)."""
    count = np.asarray(count, dtype=np.int64)
    key = np.asarray(key, dtype=np.int64) % KEYS
    if (count < 0).any():
        raise ValueError("counts to perturb must be >= 0")
    return PTABLE[np.minimum(count, CAP), key]


def perturb(count, key) -> np.ndarray:
    """Published counts: true count + noise, never negative."""
    count = np.asarray(count, dtype=np.int64)
    return count + noise(count, key)


def protect_atoms(frame: pd.DataFrame, *, count: str, key: str, out: str = "published") -> pd.DataFrame:
    """Add the published value of each atom cell (one row per atom x agency x period x measure, with its true
    ``count`` and its ``key``: the sum of its members' record keys modulo 256). Areas are then sums of atoms."""
    result = frame.copy()
    result[out] = perturb(result[count].to_numpy(), result[key].to_numpy())
    return result


def check_table() -> None:
    """The perturbation table keeps its promises (tests call it; an edited table that breaks one fails)."""
    for row, distribution in NOISE_DISTRIBUTION.items():
        assert abs(sum(distribution.values()) - 1) < 1e-12, row
        assert abs(sum(v * p for v, p in distribution.items())) < 1e-12, f"row {row} is biased"
        assert all(abs(v) <= MAX_NOISE and row + v >= 0 for v in distribution), row
    empirical = PTABLE.mean(axis=1)
    assert np.all(np.abs(empirical) <= 1.5 / KEYS * MAX_NOISE + 1e-9), empirical
