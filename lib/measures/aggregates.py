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

import functools
import hashlib
import time

import duckdb
import pandas as pd

from lib.disclosure import members
from lib.geo import lookup
from lib.measures import convert, counts
from lib.records import aggregates as stored
from lib.records.store import atomic, cursor

GROUPED_COLUMNS = ["agency_type", "area_code", "granularity", "period", *counts.VALUE_COLUMNS]
#: The columns of a cube's rows, in ``counts.build_cube``'s order (what ``agg_cube`` stores besides cube, ord).
CUBE_COLUMNS = [*GROUPED_COLUMNS, "apportioned", "layer", "basis"]
UNPLACED_COLUMNS = ["agency_type", "agency_code", "records"]
#: Bumped whenever what the stored cubes hold changes: a store built by another release is rebuilt, never read.
CUBES_FORMAT = "1"
#: Where the disclosure keys are kept (registered name -> stored table).
KEY_TABLES = {members.RECORD_KEYS: "agg_record_keys", members.CHILD_KEYS: "agg_child_keys"}


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
    aggregates are current and the rows read see the same committed state. The assembled exact cube
    (``agg_cube``) when current and the layers allow; else the grouped rows converted here; else a recount."""
    started = time.perf_counter()
    wanted = None if layers is None else [convert.layer_key(layer) for layer in layers]
    if wanted is None or set(wanted) <= set(stored.measure_layers()):
        with cursor(con) as cur, atomic(cur):
            assembled = _read_cube(cur, "exact", wanted, started)
            if assembled is not None:
                return assembled, True
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


def stored_cube(con: duckdb.DuckDBPyConnection, cube: str = "protected") -> counts.MeasureCube | None:
    """The stored assembled ``cube`` ("exact" or "protected", every measure layer) when it matches the store, else
    None (the caller computes it: ``lib.disclosure.service.protected_cube``)."""
    started = time.perf_counter()
    with cursor(con) as cur, atomic(cur):
        return _read_cube(cur, cube, None, started)


def _read_cube(cur, cube: str, layers, started: float) -> counts.MeasureCube | None:
    names = stored.measure_layers()
    # ``assemble`` lists the natives it could not convert for the first layer asked: stored for the first of all
    if layers is not None and (not layers or layers[0] != names[0]) or not stored.cubes_current(cur, cube):
        return None
    chosen = names if layers is None else list(layers)
    marks = ", ".join("?" * len(chosen))
    rows = cur.execute(f"SELECT {', '.join(CUBE_COLUMNS)} FROM agg_cube WHERE cube = ? AND layer IN ({marks}) "
                       "ORDER BY ord", [cube, *chosen]).df()
    unplaced = cur.execute(f"SELECT {', '.join(UNPLACED_COLUMNS)} FROM agg_unplaced WHERE cube = ? ORDER BY ord",
                           [cube]).df()
    unplaced["records"] = unplaced["records"].astype("float64")
    for column in ("agency_type", "agency_code"):
        unplaced[column] = unplaced[column].astype("str")
    linked = "record_child" in stored._tables(cur)
    return counts.finish(rows, unplaced if len(unplaced) else None, linked, started)


def stored_keys(con: duckdb.DuckDBPyConnection) -> dict | None:
    """The store's record and child keys (``lib.disclosure.members.key_tables``'s Arrow tables) as stored with the
    protected cube, when it is current; else None (the caller computes them)."""
    with cursor(con) as cur, atomic(cur):
        if not stored.cubes_current(cur, "protected"):
            return None
        linked = "record_child" in stored._tables(cur)
        return {name: cur.execute(f"SELECT * FROM {table}").to_arrow_table()
                for name, table in KEY_TABLES.items() if linked or name == members.RECORD_KEYS}


@functools.lru_cache(maxsize=1)
def geography_version() -> str:
    """The geography the conversion weights come from (a digest of geodata/manifest.json: every file's sha256)."""
    return hashlib.sha256((lookup.GEODATA / "manifest.json").read_bytes()).hexdigest()[:16]


class _InTransaction:
    """A cursor inside a write's transaction handed where a connection is expected: ``store.cursor`` gets the same
    cursor back (a new cursor is another transaction, blind to the change not yet committed) and cannot close it."""

    def __init__(self, cur):
        self._cur = cur

    def cursor(self):
        return self

    def close(self) -> None:
        pass

    def __getattr__(self, name):
        return getattr(self._cur, name)


def build_stored(cur) -> None:
    """Assemble the exact cube from ``agg_direct``/``agg_native`` and the protected cube from the records (cell key
    perturbation, ``lib.disclosure.service.protected_cube``) and store both, on ``cur`` inside the caller's
    transaction (``lib.records.aggregates.refresh_cubes`` calls it). A store without records keeps none; one without
    a key (nothing ingested) keeps only the exact cube. Readers then only scan ``agg_cube``."""
    from lib.disclosure import service
    from lib.disclosure.keys import NoSecret

    started = time.perf_counter()
    for table in ("agg_cube", "agg_unplaced", *KEY_TABLES.values()):
        cur.execute(f"DELETE FROM {table}")
    cur.execute("DELETE FROM meta WHERE name IN (?, ?)", [f"{stored.STATE_KEY}.exact", f"{stored.STATE_KEY}.protected"])
    if not cur.execute("SELECT count(*) FROM encounters").fetchall()[0][0]:
        return
    here = _InTransaction(cur)
    linked = "record_child" in stored._tables(cur)
    exact = from_rows(cur.execute("SELECT * FROM agg_direct").df(), cur.execute("SELECT * FROM agg_native").df(),
                      linked, None, started)
    built = {"exact": exact}
    try:
        keys = members.key_tables(here, children=linked)
    except NoSecret:
        keys = None
    if keys is not None:
        try:
            built["protected"] = service.protected_cube(here, exact, keys=keys)
            members.register(cur, keys)
            for name, table in KEY_TABLES.items():
                if name in keys:
                    cur.execute(f"INSERT INTO {table} SELECT * FROM {name}")  # registered by protected_cube
        finally:
            for name in keys:
                cur.unregister(name)
    fingerprint = stored.cubes_fingerprint(cur)
    for name, cube in built.items():
        rows = cube.counts[CUBE_COLUMNS].assign(cube=name, ord=range(len(cube.counts)))
        unplaced = cube.unplaced_native[UNPLACED_COLUMNS].assign(cube=name, ord=range(len(cube.unplaced_native)))
        cur.register("incoming_cube", rows)
        cur.register("incoming_unplaced", unplaced)
        try:
            cur.execute(f"INSERT INTO agg_cube (cube, ord, {', '.join(CUBE_COLUMNS)}) "
                        f"SELECT cube, ord, {', '.join(CUBE_COLUMNS)} FROM incoming_cube")
            cur.execute(f"INSERT INTO agg_unplaced (cube, ord, {', '.join(UNPLACED_COLUMNS)}) "
                        f"SELECT cube, ord, {', '.join(UNPLACED_COLUMNS)} FROM incoming_unplaced")
        finally:
            cur.unregister("incoming_cube")
            cur.unregister("incoming_unplaced")
        cur.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [f"{stored.STATE_KEY}.{name}", fingerprint])


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
        stored.refresh_cubes(cur, force=True)  # assembled from the rows just stored


class _CubeBuilder:
    """What storage calls to build the cubes inside a write (``lib.records.aggregates.register_cube_builder``)."""

    @staticmethod
    def version() -> str:
        return f"{CUBES_FORMAT}:{geography_version()}"

    @staticmethod
    def build_stored(cur) -> None:
        build_stored(cur)


stored.register_cube_builder(_CubeBuilder)
