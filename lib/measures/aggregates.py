"""The measure cube read from the stored aggregates (issue 19): no page recounts the record-level tables.

Every write keeps ``agg_direct`` and ``agg_native`` current inside its own transaction (``lib.records.aggregates``,
which says how and when). Reading the cube is then a scan of those small tables plus the conversion of the
native counts to every layer (``lib.measures.counts.assemble``, the same code ``build_cube`` ends with), so the
stored cube and a from-scratch ``counts.build_cube`` are the same rows (tests/test_aggregates.py).

- ``cube(con, layers=None)``: the stored cube when it matches the store (its fingerprint), else a from-scratch
  ``build_cube`` (a store of schema 3 opened read-only, or one changed by a path that did not refresh): never a
  stale figure. ``load`` also says which it was.
- ``build_on_spark(folder)``: the same aggregate SQL on Spark SQL over the exchanged Parquet
  (``store.export_parquet``: ``encounters`` and ``record_child``), for a national deployment that links and
  aggregates on a cluster and brings back only the aggregates. ``store_rows`` writes rows so computed into a
  store, in one transaction.
"""
from __future__ import annotations

import time

import duckdb
import pandas as pd

from lib.measures import convert, counts
from lib.records import aggregates as stored
from lib.records.store import atomic, cursor

GROUPED_COLUMNS = ["agency_type", "area_code", "granularity", "period", *counts.VALUE_COLUMNS]


def _natives() -> dict[str, list[str]]:
    natives: dict[str, list[str]] = {}
    for agency, native in counts.NATIVE_LAYER.items():
        natives.setdefault(native, []).append(agency)
    return natives


def from_rows(direct: pd.DataFrame, native: pd.DataFrame, linked: bool, layers=None,
              started: float | None = None) -> counts.MeasureCube:
    """The cube from rows of ``agg_direct`` and ``agg_native`` (as stored, or as Spark computed them)."""
    started = time.perf_counter() if started is None else started
    layers = tuple(convert.MEASURE_LAYERS) if layers is None else tuple(layers)
    by_layer = {layer: part for layer, part in direct.groupby("layer", sort=False)}
    empty = direct.iloc[0:0]
    direct_frames = {}
    for layer in layers:
        layer = convert.layer_key(layer)
        direct_frames[layer] = by_layer.get(layer, empty)[GROUPED_COLUMNS].reset_index(drop=True)
    native = native.rename(columns={"agency_code": "area_code"})[GROUPED_COLUMNS]
    native_frames = {layer: native[native["agency_type"].isin(agencies)].reset_index(drop=True)
                     for layer, agencies in _natives().items()}
    return counts.assemble(direct_frames, native_frames, linked, layers, started)


def load(con: duckdb.DuckDBPyConnection, layers=None) -> tuple[counts.MeasureCube, bool]:
    """(the cube, whether it came from the stored aggregates). Read in one transaction: the check that the
    aggregates are current and the rows read see the same committed state."""
    started = time.perf_counter()
    wanted = None if layers is None else [convert.layer_key(layer) for layer in layers]
    if wanted is None or set(wanted) <= set(stored.measure_layers()):
        with cursor(con) as cur, atomic(cur):
            if stored.current(cur):
                names = stored.measure_layers() if wanted is None else wanted
                marks = ", ".join("?" * len(names))
                direct = cur.execute(f"SELECT * FROM agg_direct WHERE layer IN ({marks})", names).df()
                native = cur.execute("SELECT * FROM agg_native").df()
                linked = "record_child" in stored._tables(cur)
                return from_rows(direct, native, linked, wanted, started), True
    return counts.build_cube(con, layers), False


def cube(con: duckdb.DuckDBPyConnection, layers=None) -> counts.MeasureCube:
    """The measure cube (stored aggregates when current, else counted from the records)."""
    return load(con, layers)[0]


# -- Spark: the same SQL over the exchanged Parquet -------------------------------------------------------------

def build_on_spark(folder, *, master: str | None = None, partitions: int | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    """(agg_direct rows, agg_native rows, linked) computed by Spark SQL from ``folder/encounters.parquet`` and,
    if present, ``folder/record_child.parquet``: the statements ``lib.records.aggregates`` runs on DuckDB."""
    from pathlib import Path

    from lib.linkage import spark as spark_backend

    spark = spark_backend.session(master, partitions=partitions)
    folder = Path(folder)
    spark.read.parquet(str(folder / "encounters.parquet")).createOrReplaceTempView("encounters")
    linked = (folder / "record_child.parquet").exists()
    if linked:
        spark.read.parquet(str(folder / "record_child.parquet")).createOrReplaceTempView("record_child")
    try:
        direct = pd.concat([spark.sql(stored.direct_sql(layer, linked)).toPandas()
                            for layer in stored.measure_layers()], ignore_index=True)
        native = spark.sql(stored.native_sql(linked)).toPandas()
    finally:  # the session is shared (linkage scoring registers its own "encounters" table in it): leave no views
        for view in ("encounters", "record_child"):
            spark.catalog.dropTempView(view)
    for frame in (direct, native):
        for column in stored.VALUE_COLUMNS:
            frame[column] = frame[column].astype("float64")
    return direct, native, linked


def store_rows(con: duckdb.DuckDBPyConnection, direct: pd.DataFrame, native: pd.DataFrame) -> None:
    """Replace the stored aggregates by rows computed elsewhere (``build_on_spark``) in one transaction, marked
    current for the store as it is now (the caller computed them from this store's exported tables)."""
    with cursor(con) as cur, atomic(cur):
        cur.register("incoming_direct", direct[list(stored.DIRECT_KEYS) + list(stored.VALUE_COLUMNS)])
        cur.register("incoming_native", native[list(stored.NATIVE_KEYS) + list(stored.VALUE_COLUMNS)])
        cur.execute("DELETE FROM agg_direct")
        cur.execute("DELETE FROM agg_native")
        cur.execute("INSERT INTO agg_direct SELECT * FROM incoming_direct")
        cur.execute("INSERT INTO agg_native SELECT * FROM incoming_native")
        cur.unregister("incoming_direct")
        cur.unregister("incoming_native")
        cur.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [stored.STATE_KEY, stored.fingerprint(cur)])
