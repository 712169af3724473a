"""Cell keys of published cells computed from their members, and the published (perturbed) values.

For counts that are published per cell (distinct children, and record counts a page publishes per cell rather
than as sums of atoms): a cell's key is the sum of its members' record keys modulo 256
(``lib.disclosure.members``), so the same members give the same key, hence the same published value, on every
page, export and figure (docs/DISCLOSURE.md). Tables carry each count ``c`` beside its key ``KEY_PREFIX + c``
until ``publish`` replaces the count by its perturbed value and drops the key.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from lib.disclosure.cellkey import KEYS, perturb

KEY_PREFIX = "key_"
#: A count published as the sum of its atoms' published values (``lib.disclosure.residents``) is carried beside
#: its true count under this prefix, never perturbed again.
PUBLISHED_PREFIX = "published_"


def key_column(count: str) -> str:
    return f"{KEY_PREFIX}{count}"


def group_cells(members: pd.DataFrame, by, flags: dict[str, str | None], *, key: str = "rkey") -> pd.DataFrame:
    """Per group of ``members`` (one row per member: its group column(s) ``by``, its record key ``key`` and
    boolean flag columns), for each ``out: flag`` of ``flags`` the count of members with the flag (all members
    when the flag is None) and that cell's key. Columns: ``by``, then ``out`` and ``key_<out>`` for each."""
    by = [by] if isinstance(by, str) else list(by)
    work = pd.DataFrame({c: members[c] for c in by})
    rkey = members[key].to_numpy(dtype=np.int64)
    aggs = {}
    for out, flag in flags.items():
        chosen = np.ones(len(members), dtype=bool) if flag is None else members[flag].to_numpy(dtype=bool)
        work[out] = chosen.astype(np.int64)
        work[key_column(out)] = np.where(chosen, rkey, 0)
        aggs[out] = (out, "sum")
        aggs[key_column(out)] = (key_column(out), "sum")
    if not len(work):
        return pd.DataFrame({**{c: pd.Series(dtype=members[c].dtype) for c in by},
                             **{c: pd.Series(dtype="int64") for c in aggs}})
    result = work.groupby(by, dropna=True).agg(**aggs).reset_index()
    for out in flags:
        result[key_column(out)] = result[key_column(out)] % KEYS
    return result


def publish(table: pd.DataFrame, counts) -> pd.DataFrame:
    """``table`` with each count replaced by its published value (true count + the noise of its cell key; a
    zero stays zero) and the key columns dropped. A count without a key column is an error, never passed on."""
    out = table.copy()
    for count in counts:
        if count not in out.columns:
            continue
        if key_column(count) not in out.columns:
            raise KeyError(f"count {count!r} has no cell key column {key_column(count)!r}: it cannot be published")
        values = out[count].fillna(0).to_numpy(dtype=np.int64)
        keys = out[key_column(count)].fillna(0).to_numpy(dtype=np.int64)
        out[count] = perturb(values, keys).astype(np.int64)
    return out.drop(columns=[c for c in out.columns if str(c).startswith(KEY_PREFIX)])


def drop_keys(table: pd.DataFrame) -> pd.DataFrame:
    """The table without its key columns (what the lead sees: exact counts)."""
    return table.drop(columns=[c for c in table.columns if str(c).startswith(KEY_PREFIX)])
