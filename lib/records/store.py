"""The embedded DuckDB store: schema, one-transaction batch ingest, and read queries.

- Path: ``connect(path)``; default ``$JOINEDUP_DB`` or ``data/joinedup.duckdb`` in the repository.
- Tables: ``encounters`` (one row per stored encounter, pseudonymised; columns in ``ENCOUNTER_COLUMNS``),
  ``batches`` (one row per upload), ``rejections`` (every issue found: file, row, field, code, reason,
  action; never an identifier's value) and ``meta`` (schema version, key check).
- A batch (its encounters, its batch row and its rejections) is written in ONE transaction on a fresh
  cursor: BEGIN … COMMIT, ROLLBACK on any error. DuckDB writes the WAL at commit, so a process killed
  mid-upload leaves the store as it was (tested by SIGKILL in a subprocess).
- Idempotent: ``record_key = agency_type|agency_code|source_record_id``; keys of the batch already stored
  are found by one join inside the same transaction and those rows are left out; ingests in one process
  are serialised by a lock (DuckDB itself allows one writing process per file). This was chosen over a
  PRIMARY KEY with ON CONFLICT DO NOTHING: same result, about 2.5x faster on 1M rows, no in-memory ART
  index. New rows stream into one INSERT in decoded slices of ``INSERT_CHUNK`` rows (bounded memory).
- SQL is parameterised; frames are registered as Arrow tables and inserted with INSERT … SELECT.
"""
from __future__ import annotations

import os
import threading
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from lib.records import geography

SCHEMA_VERSION = "1"
DB_ENV = "JOINEDUP_DB"
DEFAULT_DB = Path(__file__).resolve().parents[2] / "data" / "joinedup.duckdb"

_GEO_COLUMNS = [(f"{prefix}_{key}", "VARCHAR") for prefix in ("home", "enc") for key in geography.GEOGRAPHY]

#: Stored columns of ``encounters`` and their DuckDB types (nothing else identifying is stored).
ENCOUNTER_COLUMNS: list[tuple[str, str]] = [
    ("record_key", "VARCHAR NOT NULL"),
    ("source_record_id", "VARCHAR NOT NULL"),
    ("agency_type", "VARCHAR NOT NULL"),
    ("agency_code", "VARCHAR NOT NULL"),
    ("encounter_date", "DATE NOT NULL"),
    ("encounter_type", "VARCHAR"),
    ("cse_flag", "BOOLEAN"),
    ("nhs_status", "VARCHAR NOT NULL"),
    ("nhs_hash", "VARCHAR"),
    ("forename_hash", "VARCHAR"),
    ("surname_hash", "VARCHAR"),
    ("forename_canon_hash", "VARCHAR"),
    ("forename_bloom", "BIGINT[]"),  # keyed Bloom filters of name bigrams (lib.records.bloom)
    ("surname_bloom", "BIGINT[]"),
    ("forename_phonetic", "VARCHAR"),
    ("surname_phonetic", "VARCHAR"),
    ("dob_hash", "VARCHAR"),
    ("dob_swap_hash", "VARCHAR"),
    ("birth_year", "SMALLINT"),
    ("sex", "VARCHAR"),
    ("home_postcode_hash", "VARCHAR"),
    ("home_sector", "VARCHAR"),
    ("home_district", "VARCHAR"),
    *_GEO_COLUMNS,
    ("is_anonymous", "BOOLEAN NOT NULL"),
    ("batch_id", "INTEGER NOT NULL"),
    ("ingested_at", "TIMESTAMP NOT NULL"),
]
ENCOUNTER_NAMES = [name for name, _ in ENCOUNTER_COLUMNS]
RECORD_NAMES = ENCOUNTER_NAMES[:-2]  # supplied by the batch; batch_id and ingested_at added at commit

DDL = [
    "CREATE TABLE IF NOT EXISTS meta (name VARCHAR PRIMARY KEY, value VARCHAR)",
    "CREATE TABLE IF NOT EXISTS batches (batch_id INTEGER PRIMARY KEY, file_name VARCHAR, file_sha256 VARCHAR, "
    "file_format VARCHAR, rows_read BIGINT, rows_stored BIGINT, rows_already_stored BIGINT, rows_rejected BIGINT, "
    "values_dropped BIGINT, blank_rows BIGINT, ingested_at TIMESTAMP)",
    "CREATE TABLE IF NOT EXISTS rejections (batch_id INTEGER, file VARCHAR, row BIGINT, field VARCHAR, "
    "code VARCHAR, reason VARCHAR, action VARCHAR)",
    "CREATE TABLE IF NOT EXISTS encounters (" + ", ".join(f"{n} {t}" for n, t in ENCOUNTER_COLUMNS) + ")",
    "CREATE TABLE IF NOT EXISTS store_versions (version BIGINT PRIMARY KEY, written_at TIMESTAMP, "
    "command VARCHAR, change VARCHAR)",
    # Stores made before the name Bloom filters: the columns are added (NULL for rows stored then: a name
    # cannot be re-encoded from its hash; re-ingest the extracts to fill them).
    "ALTER TABLE encounters ADD COLUMN IF NOT EXISTS forename_bloom BIGINT[]",
    "ALTER TABLE encounters ADD COLUMN IF NOT EXISTS surname_bloom BIGINT[]",
]

_INGEST_LOCK = threading.Lock()
INSERT_CHUNK = 200_000  # rows decoded at a time while streaming into the batch's one INSERT


class StoreError(RuntimeError):
    pass


def resolve_path(path: str | os.PathLike | None = None) -> Path | str:
    """The database path: the argument, else $JOINEDUP_DB, else data/joinedup.duckdb."""
    if path is None:
        path = os.environ.get(DB_ENV) or DEFAULT_DB
    return path if str(path) == ":memory:" else Path(path)


def connect(path: str | os.PathLike | None = None, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the store. ``read_only=True``: the current version (any number of readers, while a writer builds
    the next one; lib.records.versions). Read-write opens a private store directly (creating it and its
    tables): tests, benchmarks, an in-memory database. A shared, versioned store is written only through
    ``lib.records.versions.write``, so readers never see half an update: opening one read-write is refused."""
    from lib.records import versions

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
    if not read_only:
        ensure_schema(con)
    return con


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    cur = con.cursor()
    try:
        for statement in DDL:
            cur.execute(statement)
        cur.execute("INSERT INTO meta SELECT 'schema_version', ? WHERE NOT EXISTS "
                    "(SELECT 1 FROM meta WHERE name = 'schema_version')", [SCHEMA_VERSION])
    finally:
        cur.close()


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
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with _INGEST_LOCK:
        cur = con.cursor()
        try:
            cur.execute("BEGIN TRANSACTION")
            stored_check = cur.execute("SELECT value FROM meta WHERE name = 'key_check'").fetchall()
            if not stored_check:
                cur.execute("INSERT INTO meta VALUES ('key_check', ?)", [batch.key_check])
            elif stored_check[0][0] != batch.key_check:
                raise StoreError("this database was pseudonymised with a different key; use the same "
                                 "JOINEDUP_KEY (or key file) or a new database")
            batch_id = cur.execute("SELECT coalesce(max(batch_id), 0) + 1 FROM batches").fetchall()[0][0]
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
                "rows_already_stored": int(len(present)),
                "rows_rejected": int(batch.rows_rejected),
                "values_dropped": int(batch.values_dropped),
            }
            cur.execute("INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [batch_id, batch.filename, batch.file_sha256, batch.file_format, batch.rows_read, stored,
                         summary["rows_already_stored"], batch.rows_rejected, batch.values_dropped,
                         batch.blank_rows, now]).fetchall()
            if progress:
                progress("committing")
            cur.execute("COMMIT")
        except BaseException:
            try:
                cur.execute("ROLLBACK")
            except duckdb.Error:
                pass
            raise
        finally:
            cur.close()
    return summary


# -- queries -------------------------------------------------------------------------------------------

def query(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> pd.DataFrame:
    """Run one parameterised query on its own cursor (the app shares one connection across threads)."""
    cur = con.cursor()
    try:
        return cur.execute(sql, params or []).df()
    finally:
        cur.close()


def counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    cur = con.cursor()
    try:
        return {table: int(cur.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
                for table in ("encounters", "batches", "rejections")}
    finally:
        cur.close()


def data_version(con: duckdb.DuckDBPyConnection) -> str:
    """The one data version token (for caches and the app's "data updated" notice): changes when a batch is
    stored, linkage re-runs (a new run, or linkage imported) or a new version is published. Starts with the
    number of stored encounters ("0:" means nothing stored yet)."""
    cur = con.cursor()
    try:
        tables = {r[0] for r in cur.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        encounters = cur.execute("SELECT count(*), coalesce(max(batch_id), 0) FROM encounters").fetchall()[0] \
            if "encounters" in tables else (0, 0)
        run = cur.execute("SELECT max(run_id) FROM linkage_runs").fetchall()[0][0] if "linkage_runs" in tables else None
        linked = cur.execute("SELECT count(*) FROM record_child").fetchall()[0][0] if "record_child" in tables else -1
        version = cur.execute("SELECT max(version) FROM store_versions").fetchall()[0][0] \
            if "store_versions" in tables else 0
    finally:
        cur.close()
    return f"{encounters[0]}:{encounters[1]}:{run}:{linked}:v{version or 0}"


def batches(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return query(con, "SELECT * FROM batches ORDER BY batch_id")


def rejections(con: duckdb.DuckDBPyConnection, batch_id: int | None = None) -> pd.DataFrame:
    if batch_id is None:
        return query(con, "SELECT * FROM rejections ORDER BY batch_id, row, field")
    return query(con, "SELECT * FROM rejections WHERE batch_id = ? ORDER BY row, field", [batch_id])


AREA_BASES = ("either", "home", "encounter")
COMPLETENESS_LAYERS = ("pfa", "utla", "lad", "icb", "sicbl", "lhb", "trust", "nhs")
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
    area = {"home": f"home_{layer}", "encounter": f"enc_{layer}",
            "either": f"coalesce(home_{layer}, enc_{layer})"}[basis]
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
    names = _area_names(layer)
    frame.insert(frame.columns.get_loc("area_code") + 1, "area_name",
                 frame["area_code"].map(names).fillna(frame["area_code"]).astype("str"))
    return frame


def _area_names(layer: str) -> dict[str, str]:
    from lib.geo import lookup

    if layer == "nhs":
        names = {}
        for part in ("icb", "lhb"):
            names.update(lookup.name_of(part))
        return names
    return lookup.name_of(layer)


def database_size_mb(path: str | os.PathLike) -> float:
    path = Path(path)
    total = path.stat().st_size if path.exists() else 0
    wal = Path(str(path) + ".wal")
    total += wal.stat().st_size if wal.exists() else 0
    return total / 1e6


ingest_batch = commit_batch  # the name used in the design notes


# --- Parquet exchange (a cluster reads the store's tables as Parquet and sends its linkage back) ------------

def export_parquet(con: duckdb.DuckDBPyConnection, folder: str | os.PathLike,
                   tables: tuple[str, ...] = ("encounters", "record_child", "link_edges")) -> dict[str, int]:
    """Write each existing table of `tables` to ``folder/<table>.parquet`` (zstd); returns rows written per table.
    Encounters hold only pseudonymised identifiers (never a clear value), so the files can go to a cluster."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    cur = con.cursor()
    written = {}
    try:
        present = {r[0] for r in cur.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        for table in tables:
            if table not in present:
                continue
            if not table.isidentifier():
                raise ValueError(f"not a table name: {table!r}")
            target = out / f"{table}.parquet"
            cur.execute(f"COPY (SELECT * FROM {table}) TO '{_sql_path(target)}' (FORMAT parquet, COMPRESSION zstd)")
            written[table] = int(cur.execute(f"SELECT count(*) FROM '{_sql_path(target)}'").fetchall()[0][0])
    finally:
        cur.close()
    return written


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
