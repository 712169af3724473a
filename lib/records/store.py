"""The embedded DuckDB store: the facade that owns connections, one-transaction batch ingest, read queries.

- Path: ``connect(path)``; default ``$JOINEDUP_DB`` or ``data/joinedup.duckdb`` in the repository.
- The facade: ``connect`` / ``Store.open`` open a store (the schema checked, an older one upgraded when opened
  for writing); ``cursor(con)`` and ``transaction(con)`` are the only way lib/ takes a cursor; ``data_version``
  is the one cache token. Tables, the schema version and its migrations: ``lib.records.tables``
  (``encounters``, columns in ``ENCOUNTER_COLUMNS``; ``batches``; ``rejections``, never an identifier's value;
  ``meta``: schema version, key check; ``store_versions``; the linkage tables).
- A batch (its encounters, its batch row and its rejections) is written in ONE transaction on a fresh
  cursor (``transaction``): BEGIN … COMMIT, ROLLBACK on any error. DuckDB writes the WAL at commit, so a process killed
  mid-upload leaves the store as it was (tested by SIGKILL in a subprocess).
- Idempotent: ``record_key = agency_type|agency_code|source_record_id``; keys of the batch already stored
  are found by one join inside the same transaction and those rows are left out; ingests in one process
  are serialised by a lock (DuckDB itself allows one writing process per file). This was chosen over a
  PRIMARY KEY with ON CONFLICT DO NOTHING: same result, about 2.5x faster on 1M rows, no in-memory ART
  index. New rows stream into one INSERT in decoded slices of ``INSERT_CHUNK`` rows (bounded memory).
- SQL is parameterised; frames are registered as Arrow tables and inserted with INSERT … SELECT.
"""
from __future__ import annotations

import contextlib
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from lib.geo import layers, lookup
from lib.records import aggregates, tables, versions

SCHEMA_VERSION = tables.SCHEMA_VERSION
DB_ENV = "JOINEDUP_DB"
DEFAULT_DB = Path(__file__).resolve().parents[2] / "data" / "joinedup.duckdb"

#: Stored columns of ``encounters`` and their DuckDB types (defined in lib.records.tables).
ENCOUNTER_COLUMNS = tables.ENCOUNTER_COLUMNS
ENCOUNTER_NAMES = [name for name, _ in ENCOUNTER_COLUMNS]
RECORD_NAMES = ENCOUNTER_NAMES[:-2]  # supplied by the batch; batch_id and ingested_at added at commit

#: One upload at a time per process. Re-entrant: a write's transaction may run the Scenario's default simulation
#: (lib.scenario.stored), which uploads to its own in-memory store in the same thread.
_INGEST_LOCK = threading.RLock()
INSERT_CHUNK = 200_000  # rows decoded at a time while streaming into the batch's one INSERT


StoreError = tables.StoreError
_existing_tables = tables.existing  # export_parquet's `tables` argument hides the module


def resolve_path(path: str | os.PathLike | None = None) -> Path | str:
    """The database path: the argument, else $JOINEDUP_DB, else data/joinedup.duckdb."""
    return versions.resolve_path(path, default=DEFAULT_DB)


def connect(path: str | os.PathLike | None = None, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the store. ``read_only=True``: the current version (any number of readers, while a writer builds
    the next one; lib.records.versions). Read-write opens a private store directly (creating it and its
    tables, or upgrading an older schema): tests, benchmarks, an in-memory database. A shared, versioned
    store is written only through ``lib.records.versions.write``, so readers never see half an update:
    opening one read-write is refused. A store written by a newer release is refused either way."""
    resolved = resolve_path(path)
    if read_only and resolved != ":memory:":
        opened = versions.open_current(resolved)
        if opened is None:
            raise StoreError(f"no store at {resolved} yet: load extracts first (`python -m lib.cli ingest FILE "
                             f"--db {resolved}`)")
        return opened[0]
    if resolved != ":memory:":
        if os.path.islink(resolved):
            raise StoreError(f"the store {resolved} is versioned: write it through lib.records.versions.write "
                             "(the command-line writers and the app do), or open it read-only")
        if not Path(resolved).parent.exists():
            Path(resolved).parent.mkdir(mode=0o700, parents=True)
    old_umask = os.umask(0o077)  # the store and its WAL are created 0600 (issue 14 item 9)
    try:
        con = duckdb.connect(str(resolved), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise StoreError(f"the store {resolved} is open for writing in another process; DuckDB allows one "
                             "writing process: stop it or use another database") from exc
        raise
    finally:
        os.umask(old_umask)
    if resolved != ":memory:":
        os.chmod(resolved, 0o600)
    try:
        if read_only:
            tables.check(con, f"the store {resolved}")
        else:
            ensure_schema(con, f"the store {resolved}")
    except BaseException:
        con.close()
        raise
    return con


def ensure_schema(con: duckdb.DuckDBPyConnection, where: str = "the store") -> int:
    """Create the store's tables, or upgrade an older schema (lib.records.tables); returns the version found."""
    return tables.ensure_schema(con, where)


# -- the facade: who owns the connection, cursors and transactions -------------------------------------------

class HeldCursor:
    """One cursor handed where a connection is expected: ``cursor`` gets the same cursor back and cannot close it.
    Inside a write's transaction a new cursor would be another transaction, blind to the change not yet committed;
    and a cursor's temporary tables are its own, so work sharing one must run on the one cursor."""
    def __init__(self, cur):
        self._cur = cur

    def cursor(self):
        return self

    def close(self) -> None:
        pass

    def __getattr__(self, name):
        return getattr(self._cur, name)


@contextlib.contextmanager
def held(con):
    """A ``HeldCursor`` on ``con``: the one it is already, or a new cursor of ``con``'s, closed afterwards."""
    if isinstance(con, HeldCursor):
        yield con
        return
    with cursor(con) as cur:
        yield HeldCursor(cur)


@contextlib.contextmanager
def cursor(con: duckdb.DuckDBPyConnection):
    """A cursor of its own on ``con`` (the app shares one connection across threads), closed afterwards."""
    cur = con.cursor()
    try:
        yield cur
    finally:
        cur.close()


@contextlib.contextmanager
def atomic(cur):
    """BEGIN … COMMIT on a cursor already open (one holding temporary views the work needs); on any error
    (or interrupt) ROLLBACK, so nothing is half-written."""
    cur.execute("BEGIN TRANSACTION")
    try:
        yield cur
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            cur.execute("ROLLBACK")
        raise
    cur.execute("COMMIT")


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection):
    """A cursor of its own inside BEGIN … COMMIT; ROLLBACK on any error, so nothing is half-written."""
    with cursor(con) as cur, atomic(cur):
        yield cur


@contextlib.contextmanager
def rebuilt_beside(con: duckdb.DuckDBPyConnection, record_map: pa.Table | str):
    """Around a write that replaces the record map (``record_child``) whole and then calls
    ``aggregates.refresh(cur, full=True, beside=...)``: yields what ``aggregates.start_beside`` started (the Across
    measures) on a cursor of ``con``'s own, outside the write's transaction, on which ``record_map`` (the new map: an
    Arrow table, or a query) is the ``record_child`` it reads, shadowing the stored one. Stopped, waited for and
    closed on the way out. Yields None (the refresh then builds everything on the write's cursor) when nothing is
    maintained here or ``con`` is a ``HeldCursor`` (its cursor is the write's own)."""
    if isinstance(con, HeldCursor):
        yield None
        return
    with cursor(con) as side:
        if isinstance(record_map, str):
            side.execute(f"CREATE TEMP TABLE record_child AS {record_map}")
        else:
            side.register("record_child", record_map)
        started = aggregates.start_beside(side)
        try:
            yield started
        finally:
            if started is not None:
                started.close()


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the store holds table ``name`` (an old store may lack the linkage tables)."""
    with cursor(con) as cur:
        return name in tables.existing(cur)


class Store:
    """One object that owns a store's connection (as Splink's DatabaseAPI owns its engine's).

    ``Store.open(path, read_only=True)`` opens the current version for reading; ``Store.open(path)`` a private
    store for writing (schema created or upgraded); ``Store(con)`` wraps a connection someone else opened
    (the ``Write.con`` of ``lib.records.versions.write``). Use it as a context manager to close it.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path | str | None = None, *, owned: bool = False):
        self.con, self.path, self._owned = con, path, owned

    @classmethod
    def open(cls, path: str | os.PathLike | None = None, *, read_only: bool = False) -> Store:
        resolved = resolve_path(path)
        return cls(connect(resolved, read_only=read_only), resolved, owned=True)

    def cursor(self):
        return cursor(self.con)

    def transaction(self):
        return transaction(self.con)

    def query(self, sql: str, params=None) -> pd.DataFrame:
        return query(self.con, sql, params)

    def has_table(self, name: str) -> bool:
        return has_table(self.con, name)

    def data_version(self) -> str:
        return data_version(self.con)

    def schema_version(self) -> int | None:
        with self.cursor() as cur:
            return tables.stored_version(cur)

    def close(self) -> None:
        if self._owned:
            self.con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def decode_dictionaries(table: pa.Table) -> pa.Table:
    """Plain columns instead of dictionary-encoded ones (their dictionaries may repeat values)."""
    columns = []
    for col in table.columns:
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        columns.append(col)
    return pa.table(columns, names=table.column_names)


def _decoded_stream(records: pa.Table) -> pa.RecordBatchReader:
    """The records as a stream of plain (dictionary-decoded) batches: one INSERT, bounded memory."""
    plain = pa.schema([pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
                       for f in records.schema])

    def batches():
        for start in range(0, records.num_rows, INSERT_CHUNK):
            yield from decode_dictionaries(records.slice(start, INSERT_CHUNK)).cast(plain).to_batches()

    return pa.RecordBatchReader.from_batches(plain, batches())


def _records_table(records: pa.Table) -> pa.Table:
    missing = [c for c in RECORD_NAMES if c not in records.column_names]
    if missing:
        raise StoreError(f"records lack columns {missing}")
    return records.select(RECORD_NAMES)


def commit_batch(con: duckdb.DuckDBPyConnection, batch, *, progress=None) -> dict:
    """Store a PreparedBatch in one transaction; returns counts. ``progress(stage)`` is called inside it."""
    records = _records_table(batch.records)
    issues = batch.issues[["file", "row", "field", "code", "reason", "action"]]
    now = datetime.now(UTC).replace(tzinfo=None)
    with _INGEST_LOCK, transaction(con) as cur:
        stored_check = cur.execute("SELECT value FROM meta WHERE name = 'key_check'").fetchall()
        if not stored_check:
            cur.execute("INSERT INTO meta VALUES ('key_check', ?)", [batch.key_check])
        elif stored_check[0][0] != batch.key_check:
            raise StoreError("this database was pseudonymised with a different key; use the same "
                             "JOINEDUP_KEY (or key file) or a new database")
        batch_id = cur.execute("SELECT coalesce(max(batch_id), 0) + 1 FROM batches").fetchall()[0][0]
        aggregates_current = aggregates.current(cur)  # before the change (else the refresh rebuilds all)
        if progress:
            progress("transaction started")
        # Idempotency: keys already stored are found once (inside this transaction, under the lock),
        # then the new rows are inserted in slices so memory stays bounded.
        cur.register("incoming_keys", pa.table({"record_key": records.column("record_key"),
                                                "pos": pa.array(range(records.num_rows), pa.int64())}))
        present = cur.execute("SELECT i.pos FROM incoming_keys i JOIN encounters e USING (record_key)"
                              ).fetchnumpy()["pos"]
        cur.unregister("incoming_keys")
        if len(present):
            keep = np.ones(records.num_rows, dtype=bool)
            keep[np.asarray(present, dtype=np.int64)] = False
            records = records.filter(pa.array(keep))
        columns = ", ".join(RECORD_NAMES)
        cur.register("incoming_records", _decoded_stream(records))
        stored = cur.execute(f"INSERT INTO encounters ({columns}, batch_id, ingested_at) "
                             f"SELECT {columns}, ?, ? FROM incoming_records", [batch_id, now]).fetchall()[0][0]
        cur.unregister("incoming_records")
        if progress:
            progress("encounters inserted")
        if len(issues):
            cur.register("incoming_issues", pa.Table.from_pandas(issues, preserve_index=False))
            cur.execute("INSERT INTO rejections SELECT ?, file, row, field, code, reason, action "
                        "FROM incoming_issues", [batch_id]).fetchall()
            cur.unregister("incoming_issues")
        summary = {
            "batch_id": int(batch_id),
            "file": batch.filename,
            "rows_read": int(batch.rows_read),
            "rows_stored": int(stored),
            "rows_already_stored": len(present),
            "rows_rejected": int(batch.rows_rejected),
            "values_dropped": int(batch.values_dropped),
        }
        cur.execute("INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [batch_id, batch.filename, batch.file_sha256, batch.file_format, batch.rows_read, stored,
                     summary["rows_already_stored"], batch.rows_rejected, batch.values_dropped,
                     batch.blank_rows, now]).fetchall()
        # The stored aggregates of the batch's areas, in this transaction (lib.records.aggregates).
        if progress:
            progress("updating aggregates")
        aggregates.refresh(cur, batch_id=batch_id, was_current=aggregates_current)
        if progress:
            progress("committing")
    return summary


# -- queries -------------------------------------------------------------------------------------------

def query(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> pd.DataFrame:
    """Run one parameterised query on its own cursor (the app shares one connection across threads). `.df()`, not
    lib.records.frames: the app's pages call this from many Streamlit threads at once, and frames converts through a
    fresh in-memory DuckDB scanning a Python Arrow table, the pattern reported to hang under thread churn
    (xqlsystems/xarray-sql#241). Session 17 routed this through frames for 0.4 s of the stored build at 1M; CI then
    timed out once on a page opened while the store was loaded (tests/test_browser_snapshots.py). Not proven the
    cause (not reproduced here), but the only change the app's reads had had, so it went back (session 18)."""
    with cursor(con) as cur:
        return cur.execute(sql, params or []).df()


def counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    with cursor(con) as cur:
        return {table: int(cur.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
                for table in ("encounters", "batches", "rejections")}


def data_version(con: duckdb.DuckDBPyConnection) -> str:
    """The one data version token (for caches and the app's "data updated" notice): changes when a batch is
    stored, linkage re-runs (a new run, or linkage imported), a reviewer records a decision or a new version
    is published. Starts with the number of stored encounters ("0:" means nothing stored yet). Every page
    and cache uses this one (pages.common.stored_data_version calls it)."""
    with cursor(con) as cur:
        present = tables.existing(cur)
        encounters = cur.execute("SELECT count(*), coalesce(max(batch_id), 0) FROM encounters").fetchall()[0] \
            if "encounters" in present else (0, 0)
        run = cur.execute("SELECT max(run_id) FROM linkage_runs").fetchall()[0][0] \
            if "linkage_runs" in present else None
        linked = cur.execute("SELECT count(*) FROM record_child").fetchall()[0][0] \
            if "record_child" in present else -1
        reviews = cur.execute("SELECT count(*), max(decided_at) FROM review_decisions").fetchall()[0] \
            if "review_decisions" in present else (0, None)
        version = cur.execute("SELECT max(version) FROM store_versions").fetchall()[0][0] \
            if "store_versions" in present else 0
    decided = f"r{reviews[0]}" + (f"@{reviews[1]:%Y%m%dT%H%M%S%f}" if reviews[1] is not None else "")
    return f"{encounters[0]}:{encounters[1]}:{run}:{linked}:{decided}:v{version or 0}"



def batches(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return query(con, "SELECT * FROM batches ORDER BY batch_id")


def rejections(con: duckdb.DuckDBPyConnection, batch_id: int | None = None) -> pd.DataFrame:
    if batch_id is None:
        return query(con, "SELECT * FROM rejections ORDER BY batch_id, row, field")
    return query(con, "SELECT * FROM rejections WHERE batch_id = ? ORDER BY row, field", [batch_id])


AREA_BASES = ("either", "home", "encounter")
COMPLETENESS_LAYERS = layers.COLUMNS  # every registered layer (a live view of lib.geo.layers)
COMPLETENESS_BY = {"agency_type": "agency_type, ", "agency": "agency_type, agency_code, ", "none": ""}


def completeness(con: duckdb.DuckDBPyConnection, layer: str = "utla", *, basis: str = "either",
                 by: str = "agency_type") -> pd.DataFrame:
    """Identifier completeness per agency and area: the readiness for a unique child identifier.

    ``basis`` places an encounter by its home postcode ('home'), where it happened ('encounter'), or home
    falling back to encounter location ('either'). ``by`` is 'agency_type', 'agency' (type and code) or
    'none' (all agencies together). Columns: [agency_type[, agency_code],] area_code, area_name, encounters,
    valid_nhs_pct, name_dob_pct,
    anonymous_pct (percentages of the area's encounters for that agency). Area '(unplaced)' collects
    encounters with no known location.
    """
    if layer not in COMPLETENESS_LAYERS:
        raise ValueError(f"unknown layer {layer!r}; choose from {', '.join(COMPLETENESS_LAYERS)}")
    if basis not in AREA_BASES:
        raise ValueError(f"unknown basis {basis!r}; choose from {', '.join(AREA_BASES)}")
    if by not in COMPLETENESS_BY:
        raise ValueError(f"unknown grouping {by!r}; choose from {', '.join(COMPLETENESS_BY)}")
    stored = layers.REGISTRY[layer].stored_key  # the encounters' home_/enc_ columns holding the layer
    area = {"home": f"home_{stored}", "encounter": f"enc_{stored}",
            "either": f"coalesce(home_{stored}, enc_{stored})"}[basis]
    group = COMPLETENESS_BY[by]
    frame = query(con, f"""
        SELECT {group}coalesce({area}, '(unplaced)') AS area_code,
               count(*) AS encounters,
               round(100.0 * avg(CASE WHEN nhs_status = 'valid' THEN 1 ELSE 0 END), 1) AS valid_nhs_pct,
               round(100.0 * avg(CASE WHEN forename_hash IS NOT NULL AND surname_hash IS NOT NULL
                                       AND dob_hash IS NOT NULL THEN 1 ELSE 0 END), 1) AS name_dob_pct,
               round(100.0 * avg(CASE WHEN is_anonymous THEN 1 ELSE 0 END), 1) AS anonymous_pct
        FROM encounters GROUP BY ALL ORDER BY ALL
    """)
    names = lookup.name_of(layer)
    frame.insert(frame.columns.get_loc("area_code") + 1, "area_name",
                 frame["area_code"].map(names).fillna(frame["area_code"]).astype("str"))
    return frame


def database_size_mb(path: str | os.PathLike) -> float:
    path = Path(path)
    total = path.stat().st_size if path.exists() else 0
    wal = Path(str(path) + ".wal")
    total += wal.stat().st_size if wal.exists() else 0
    return total / 1e6


# --- Parquet exchange (a cluster reads the store's tables as Parquet and sends its linkage back) ------------

def export_parquet(con: duckdb.DuckDBPyConnection, folder: str | os.PathLike,
                   tables: tuple[str, ...] = ("encounters", "record_child", "link_edges")) -> dict[str, int]:
    """Write each existing table of `tables` to ``folder/<table>.parquet`` (zstd); returns rows written per table.
    Encounters hold only pseudonymised identifiers (never a clear value), so the files can go to a cluster."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    with cursor(con) as cur:
        present = _existing_tables(cur)
        for table in tables:
            if table not in present:
                continue
            if not table.isidentifier():
                raise ValueError(f"not a table name: {table!r}")
            target = out / f"{table}.parquet"
            cur.execute(f"COPY (SELECT * FROM {table}) TO '{_sql_path(target)}' (FORMAT parquet, COMPRESSION zstd)")
            written[table] = int(cur.execute(f"SELECT count(*) FROM '{_sql_path(target)}'").fetchall()[0][0])
    return written


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
