"""DuckDB results as pandas frames, with text columns carried through Arrow.

DuckDB's own `.df()` builds each text value as a Python string before pandas stores it, which at a million
rows of 64-character hashes costs seconds (measured on the 1M store: 12.9 s for the whole `encounters` table,
against 2.1 s through Arrow). Arrow hands pandas its string buffers whole. Every other column is still
converted by DuckDB itself, so integers with nulls stay nullable integers, booleans with nulls stay `boolean`
and dates stay datetimes, exactly as `.df()` gives them (tested type by type: tests/test_frames.py). A result
holding a type outside `PLAIN` (e.g. UUID, ENUM, a struct), or two columns of one name, is left to `.df()` whole.
"""
from __future__ import annotations

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

#: DuckDB column types (and lists of them) whose Arrow round trip gives exactly `.df()`'s values and dtypes. Not a
#: TIMESTAMP WITH TIME ZONE: `.df()` shows it in the caller's connection's TimeZone, which a fresh one does not know.
PLAIN = frozenset({"VARCHAR", "BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT",
                   "USMALLINT", "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "DATE", "TIMESTAMP"})


def _plain(kind) -> bool:
    name = str(kind)
    while name.endswith("[]"):
        name = name[:-2]
    return name in PLAIN or (name.startswith("DECIMAL(") and name.endswith(")"))


def frame(relation: duckdb.DuckDBPyRelation, arrow_lists: bool = False) -> pd.DataFrame:
    """The frame `relation.df()` gives (the same columns, order, values and dtypes), faster for text.

    `arrow_lists`: lists of BIGINT stay Arrow lists (`pd.ArrowDtype`) instead of one NumPy array per row, for a frame
    that only goes back to DuckDB or to NumPy whole (the linkage nodes' Bloom filters): at 1,000,000 encounters
    DuckDB read the nodes 0.86 -> 0.15 s, and the filters reached NumPy 0.55 -> 0.01 s (docs/PERFORMANCE.md,
    session 13)."""
    names = relation.columns
    if len(set(names)) < len(names) or not all(_plain(kind) for kind in relation.types):
        return relation.df()
    table = relation.to_arrow_table()
    # DuckDB gives a text column with no value (no rows, or every one null) as `object`: those go its way too
    text = [i for i, kind in enumerate(relation.types)
            if str(kind) == "VARCHAR" and table.column(i).null_count < table.num_rows]
    # Lists of BIGINT without a null element (the names' Bloom filters): Arrow gives the same int64 arrays, at a
    # third of the time at 5M; a null list is pandas' NA, as DuckDB gives it (a null element would be a masked
    # array there: such a column goes DuckDB's way)
    lists = [i for i, kind in enumerate(relation.types)
             if str(kind) == "BIGINT[]" and table.num_rows and pc.list_flatten(table.column(i)).null_count == 0]
    if not text and not lists:
        return _by_duckdb(table)
    out = table.select(text + lists).to_pandas(types_mapper=_list_dtype if arrow_lists else None)
    for position in range(len(text), len(text) + len(lists) if not arrow_lists else 0):
        values = out.iloc[:, position].to_numpy(dtype=object).copy()
        values[out.iloc[:, position].isna().to_numpy()] = pd.NA
        out.isetitem(position, values)
    rest = [i for i in range(table.num_columns) if i not in text and i not in lists]
    if rest:
        out = pd.concat([out, _by_duckdb(table.select(rest))], axis=1)
    return out[names]


def _list_dtype(kind: pa.DataType) -> pd.ArrowDtype | None:
    return pd.ArrowDtype(kind) if pa.types.is_list(kind) else None


def _by_duckdb(table: pa.Table) -> pd.DataFrame:
    con = duckdb.connect()
    try:
        return con.from_arrow(table).df()
    finally:
        con.close()
