"""Every table the store holds, in one place: definitions, the schema version and its migrations.

The store (``lib.records.store``) creates these on open; linkage (``lib.linkage.run``) and the review queue
(``lib.records.versions.apply_queue``) use the same definitions instead of their own.

- ``STORE_TABLES``: ``meta`` (schema version, key check), ``batches`` (one row per upload), ``rejections``
  (every issue found, never an identifier's value), ``encounters`` (one row per stored encounter,
  pseudonymised; columns in ``ENCOUNTER_COLUMNS``), ``store_versions`` (one row per published version).
- ``LINKAGE_TABLES``: ``review_decisions`` (a reviewer's accept or reject of a pair) and ``linkage_runs``
  (one row per run, with its model).
- ``DERIVED_TABLES``: ``record_child`` and ``link_edges`` are replaced whole by each linkage run or import
  (``CREATE OR REPLACE TABLE … AS SELECT``: their columns follow the run's model), so they have no fixed
  definition here.

Schema versions (``meta.schema_version``): 1 is the layout of releases up to November 2026 (linkage tables
created only by the first linkage run); 2 creates every table above when a store is opened for writing; 3 adds
the keyed Bloom filters of both names (``forename_bloom``, ``surname_bloom``: NULL for rows stored before, since a
name cannot be re-encoded from its hash; re-ingest the extracts to fill them); 4 adds the stored aggregates
(``AGGREGATE_TABLES``, built by ``lib.records.aggregates`` inside every write's transaction; the migration
builds them once from the stored records); 5 adds the assembled cubes (``agg_cube``, ``agg_unplaced``: the exact
and the protected measure cube, built by ``lib.measures.aggregates`` in the same transactions); 6 adds keyed
hashes of the date of birth's parts taken two at a time (``dob_dm_hash`` day and month, ``dob_ym_hash`` year and
month, ``dob_yd_hash`` year and day: NULL for rows stored before, since a date cannot be re-read from its hash;
re-ingest the extracts to fill them); 7 adds ``agg_frames``: the Across boundaries and Data pages' measures
(spans, flows and completeness per area, published and exact; and the Compare page's published counts since
``CUBES_FORMAT`` 3) kept as Arrow or JSON payloads by name, built by
``lib.measures.aggregates`` in the same transactions as the cubes and covered by the same fingerprint.
``ensure_schema`` creates a new store at ``SCHEMA_VERSION``, upgrades an older one step by step (inside one
transaction: a failed step leaves the store as it was) and refuses a store written by a newer release.
"""
from __future__ import annotations

import duckdb

from lib.records import aggregates, geography

SCHEMA_VERSION = 7


class StoreError(RuntimeError):
    """A store that cannot be opened or written as asked; ``str()`` is the message for the user."""


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
    ("dob_dm_hash", "VARCHAR"),  # keyed hashes of two of the date's three parts (partial agreement)
    ("dob_ym_hash", "VARCHAR"),
    ("dob_yd_hash", "VARCHAR"),
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

STORE_TABLES: dict[str, str] = {
    "meta": "CREATE TABLE IF NOT EXISTS meta (name VARCHAR PRIMARY KEY, value VARCHAR)",
    "batches": "CREATE TABLE IF NOT EXISTS batches (batch_id INTEGER PRIMARY KEY, file_name VARCHAR, "
               "file_sha256 VARCHAR, file_format VARCHAR, rows_read BIGINT, rows_stored BIGINT, "
               "rows_already_stored BIGINT, rows_rejected BIGINT, values_dropped BIGINT, blank_rows BIGINT, "
               "ingested_at TIMESTAMP)",
    "rejections": "CREATE TABLE IF NOT EXISTS rejections (batch_id INTEGER, file VARCHAR, row BIGINT, "
                  "field VARCHAR, code VARCHAR, reason VARCHAR, action VARCHAR)",
    "encounters": "CREATE TABLE IF NOT EXISTS encounters ("
                  + ", ".join(f"{n} {t}" for n, t in ENCOUNTER_COLUMNS) + ")",
    "store_versions": "CREATE TABLE IF NOT EXISTS store_versions (version BIGINT PRIMARY KEY, "
                      "written_at TIMESTAMP, command VARCHAR, change VARCHAR)",
}

LINKAGE_TABLES: dict[str, str] = {
    "review_decisions": "CREATE TABLE IF NOT EXISTS review_decisions (record_key_l VARCHAR NOT NULL, "
                        "record_key_r VARCHAR NOT NULL, decision VARCHAR NOT NULL CHECK (decision IN "
                        "('accept', 'reject')), reviewer VARCHAR, decided_at TIMESTAMP)",
    "linkage_runs": "CREATE TABLE IF NOT EXISTS linkage_runs (run_id INTEGER, started_at TIMESTAMP, "
                    "seconds DOUBLE, records BIGINT, children BIGINT, config VARCHAR, summary VARCHAR, "
                    "model VARCHAR)",
}

#: The stored aggregates (lib.records.aggregates): counts by layer, area, agency and period, on the encounter's
#: area (``agg_direct``) and on the agency's own code (``agg_native``); children NULL before any linkage.
_AGG_VALUES = "records DOUBLE, cse_records DOUBLE, children DOUBLE, cse_children DOUBLE"
AGGREGATE_TABLES: dict[str, str] = {
    "agg_direct": "CREATE TABLE IF NOT EXISTS agg_direct (layer VARCHAR NOT NULL, agency_type VARCHAR NOT NULL, "
                  "area_code VARCHAR NOT NULL, granularity VARCHAR NOT NULL, period VARCHAR NOT NULL, "
                  f"{_AGG_VALUES})",
    "agg_native": "CREATE TABLE IF NOT EXISTS agg_native (agency_type VARCHAR NOT NULL, agency_code VARCHAR NOT NULL, "
                  f"granularity VARCHAR NOT NULL, period VARCHAR NOT NULL, {_AGG_VALUES})",
    # The assembled cubes (lib.measures.aggregates): ``cube`` "exact" (the lead's, natives converted to every
    # layer) and "protected" (cell key perturbation, lib.disclosure.service), in the order they were built (ord).
    "agg_cube": "CREATE TABLE IF NOT EXISTS agg_cube (cube VARCHAR NOT NULL, ord BIGINT NOT NULL, "
                "agency_type VARCHAR, area_code VARCHAR, granularity VARCHAR, period VARCHAR, "
                f"{_AGG_VALUES}, apportioned BOOLEAN, layer VARCHAR, basis VARCHAR)",
    "agg_unplaced": "CREATE TABLE IF NOT EXISTS agg_unplaced (cube VARCHAR NOT NULL, ord BIGINT NOT NULL, "
                    "agency_type VARCHAR, agency_code VARCHAR, records DOUBLE)",
    # The record and child keys of disclosure control (lib.disclosure.members), kept with the protected cube.
    "agg_record_keys": "CREATE TABLE IF NOT EXISTS agg_record_keys (record_key VARCHAR, rkey INTEGER)",
    "agg_child_keys": "CREATE TABLE IF NOT EXISTS agg_child_keys (child_id VARCHAR, rkey INTEGER)",
    # The pages' stored measures (lib.measures.aggregates.VIEW_FRAMES): one row per name ("across/spans/utla/1"),
    # ``kind`` "arrow" (an Arrow IPC stream of a table) or "json" (a dict of totals).
    "agg_frames": "CREATE TABLE IF NOT EXISTS agg_frames (name VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, "
                  "payload BLOB NOT NULL)",
}

#: Replaced whole by each linkage run or import (lib.linkage.run, lib.linkage.exchange).
DERIVED_TABLES = ("record_child", "link_edges")

#: Every fixed definition, in creation order.
TABLES: dict[str, str] = {**STORE_TABLES, **LINKAGE_TABLES, **AGGREGATE_TABLES}


def create(cur, definitions: dict[str, str] = TABLES) -> None:
    """Create the tables of ``definitions`` that do not exist yet (on an open cursor or connection)."""
    for statement in definitions.values():
        cur.execute(statement)


def existing(cur) -> set[str]:
    """Names of the tables in the connection's database."""
    return {r[0] for r in cur.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def stored_version(cur) -> int | None:
    """The schema version written in the store. A store with an ``encounters`` table but no version row was
    written before versions were recorded: version 1. None: a new file."""
    here = existing(cur)
    rows = cur.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchall() if "meta" in here else []
    if rows:
        return int(rows[0][0])
    return 1 if "encounters" in here else None


def check(cur, where: str = "the store") -> int | None:
    """The stored schema version; StoreError if a newer release wrote it (this one cannot read it safely)."""
    version = stored_version(cur)
    if version is not None and version > SCHEMA_VERSION:
        raise StoreError(f"{where} has schema version {version}, written by a newer Joined Up; this release "
                         f"reads up to version {SCHEMA_VERSION}: upgrade the app and command line together")
    return version


def _to_2(cur) -> None:
    """1 → 2: the linkage tables exist in every store (before, only after the first linkage run)."""
    create(cur, LINKAGE_TABLES)


def _to_3(cur) -> None:
    """2 → 3: the keyed Bloom filters of the names (lib.records.bloom); rows stored before keep NULL."""
    cur.execute("ALTER TABLE encounters ADD COLUMN IF NOT EXISTS forename_bloom BIGINT[]")
    cur.execute("ALTER TABLE encounters ADD COLUMN IF NOT EXISTS surname_bloom BIGINT[]")


def _to_4(cur) -> None:
    """3 → 4: the stored aggregates (built from the stored records by ``ensure_schema`` once every table is
    there)."""
    create(cur, AGGREGATE_TABLES)


def _to_5(cur) -> None:
    """4 → 5: the assembled cubes, exact and protected (built by ``ensure_schema`` with the aggregates)."""
    create(cur, AGGREGATE_TABLES)


def _to_6(cur) -> None:
    """5 → 6: keyed hashes of the date of birth's parts two at a time (partial agreement in linkage); rows
    stored before keep NULL."""
    for column in ("dob_dm_hash", "dob_ym_hash", "dob_yd_hash"):
        cur.execute(f"ALTER TABLE encounters ADD COLUMN IF NOT EXISTS {column} VARCHAR")


def _to_7(cur) -> None:
    """6 → 7: the pages' stored measures (``agg_frames``: spans, flows, completeness; built by ``ensure_schema``
    with the cubes)."""
    create(cur, AGGREGATE_TABLES)


#: Migration from each version to the next.
MIGRATIONS = {1: _to_2, 2: _to_3, 3: _to_4, 4: _to_5, 5: _to_6, 6: _to_7}


def ensure_schema(con: duckdb.DuckDBPyConnection, where: str = "the store") -> int:
    """Create a new store's tables, or upgrade an older store to ``SCHEMA_VERSION``; returns the version it
    had (``SCHEMA_VERSION`` for a new store). One transaction: a failed migration changes nothing."""
    cur = con.cursor()
    try:
        before = check(cur, where)
        if before == SCHEMA_VERSION and TABLES.keys() <= existing(cur):
            return before
        cur.execute("BEGIN TRANSACTION")
        try:
            create(cur, STORE_TABLES)
            version = SCHEMA_VERSION if before is None else before
            while version < SCHEMA_VERSION:
                MIGRATIONS[version](cur)
                version += 1
            create(cur, LINKAGE_TABLES)
            create(cur, AGGREGATE_TABLES)
            cur.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
            if not aggregates.current(cur) or not aggregates.cubes_current(cur) \
                    or not aggregates.cubes_current(cur, "views"):
                aggregates.rebuild(cur)  # a new store's (empty) aggregates, or an older store's, built once
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        return SCHEMA_VERSION if before is None else before
    finally:
        cur.close()
