"""The stored aggregates: per-agency counts by layer, period and area, rebuilt inside every write's transaction.

Issue 19: a page's first open after a change must not recount the record-level tables. So every write path
(``store.commit_batch``, ``lib.linkage.run`` saving a run, ``lib.linkage.exchange.import_linkage``,
``lib.linkage.run.record_decision``, ``versions.apply_queue``) calls ``refresh`` on ITS OWN cursor, inside ITS OWN
transaction: the aggregates commit with the change or not at all, so a reader on another connection sees the old
aggregates with the old records or the new with the new, never a mix.

Two tables (DDL in ``lib.records.tables.AGGREGATE_TABLES``), the record-level half of ``lib.measures.counts``'s
cube; the other half (converting native areas to every layer) runs on these small tables when the cube is read
(``lib.measures.aggregates.cube``), since its weights live in the measures layer above this one:

- ``agg_direct``: layer, agency_type, area_code (the record's ``enc_<layer>``), granularity, period and the four
  counts (``records``, ``cse_records``, ``children``, ``cse_children``; the last two NULL before any linkage run);
- ``agg_native``: the same by the agency's own code (``agency_code``), for agencies with a native geography.

Schema 7 adds ``agg_frames``: the Across boundaries and Data pages' measures (spans, flows, who only linkage
found, identifier completeness; exact and published) and, since ``CUBES_FORMAT`` 3, the Compare page's published
record and children counts, built by the same builder in the same transaction and
marked with the same fingerprint (meta ``aggregates.views``), read only when current.

Schema 5 adds the assembled cubes (``agg_cube``, ``agg_unplaced``; ``refresh_cubes``): the exact cube (natives
converted to every layer) and the protected cube every role below the lead reads (cell key perturbation), built
by ``lib.measures.aggregates.build_stored`` on the same cursor, in the same transaction, whenever the records,
batches or linkage changed (``cubes_fingerprint``; a reviewer decision changes no ``record_child`` row, so it keeps
them). Pages then only scan them (``Source.cube`` / ``Source.cube_for``).

``meta`` row ``aggregates`` holds the ``fingerprint`` of the record tables the aggregates were built from
(encounters, batches, linkage runs, linked rows, decisions). A reader compares it with the store's: a store
changed by a path that did not refresh (an older release, a hand edit) is detected and recounted, never
shown stale.

Incremental where a change touches few areas: an upload (a quarter of the store or less) recomputes only the
cells (agency × area of every layer, and agency × own code) holding the batch's records; a reviewer decision
the cells holding the records of the two children concerned. A linkage run or import replaces
``record_child`` whole: everything is rebuilt.
A cell's counts are recomputed from all its records (distinct children cannot be patched by adding).

The SQL is one text for DuckDB and Spark SQL (``grouped_sql``): no ``?`` parameters, ``STRING`` casts, no
``//`` or ``FILTER``, so ``lib.measures.aggregates.build_on_spark`` runs the same statements over the exchanged
Parquet (``store.export_parquet``) and must give the same rows (tests/test_aggregates.py).
"""
from __future__ import annotations

import contextlib
import contextvars
import threading

import duckdb

from lib.geo import agencies as agency_registry
from lib.geo import layers as layer_registry

VALUE_COLUMNS = ("records", "cse_records", "children", "cse_children")
DIRECT_KEYS = ("layer", "agency_type", "area_code", "granularity", "period")
NATIVE_KEYS = ("agency_type", "agency_code", "granularity", "period")
STATE_KEY = "aggregates"
#: A batch holding more than 1/INCREMENTAL_SHARE of the stored encounters is refreshed from scratch: recounting
#: the cells it touches (most of them) costs more than a full rebuild (measured at 100,000: 10.5 s against 9.1 s).
INCREMENTAL_SHARE = 4

_FY = "(year(e.encounter_date) - CASE WHEN month(e.encounter_date) < 4 THEN 1 ELSE 0 END)"
_FQ = "(CAST(floor(((month(e.encounter_date) + 8) % 12) / 3) AS INT) + 1)"


def year_text(fy: str) -> str:
    """The financial year as published ("2024-25") of an SQL expression of its first calendar year."""
    return f"(CAST({fy} AS STRING) || '-' || lpad(CAST(({fy} + 1) % 100 AS STRING), 2, '0'))"


def quarter_text(fy: str, fq: str) -> str:
    """The financial quarter as published ("2024-25 Q1") of SQL expressions of its year and quarter (1 to 4)."""
    return f"({year_text(fy)} || ' Q' || CAST({fq} AS STRING))"


_YEAR = year_text(_FY)
_QUARTER = quarter_text(_FY, _FQ)


#: Off (``scratch()``): writes in this context keep no aggregates (a throwaway store nothing reads them from).
_MAINTAIN: contextvars.ContextVar[bool] = contextvars.ContextVar("joinedup_aggregates_maintained", default=True)


@contextlib.contextmanager
def scratch():
    """Inside it, writes on any store keep no aggregates (``refresh`` and ``rebuild`` do nothing): for a scratch store
    that is written, read by its own code from the record tables and thrown away (the Scenario simulation's
    in-memory stores, ``lib.scenario.simulate``). Its aggregates are then not current, so any reader would recount:
    never a stale figure. A context variable: other threads and the caller's context after it are unaffected."""
    token = _MAINTAIN.set(False)
    try:
        yield
    finally:
        _MAINTAIN.reset(token)


def maintaining() -> bool:
    """Whether writes in this context keep the aggregates (False inside ``scratch()``)."""
    return _MAINTAIN.get()


def measure_layers() -> list[str]:
    """The layers the cube holds (every measure layer of the registry, in its order)."""
    return list(layer_registry.MEASURE_LAYERS)


def native_agencies() -> list[str]:
    """Agency types with a native geography (their ``agency_code`` is an area of it)."""
    return list(agency_registry.NATIVE_LAYER)


def _literal(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def area_column(layer: str) -> str:
    column = f"enc_{layer_registry.REGISTRY[layer].stored_key}"
    if not column.isidentifier():
        raise ValueError(f"not a column name: {column!r}")
    return column


#: Every linked child numbered 1 to n in the order of its id (``child_id``, ``c``): the groupings that count children
#: run on these integers, not on the 40-character ids (the rebuild's records; ``lib.measures.spans.child_tables``).
CHILD_NUMBERS_SQL = ("SELECT child_id, row_number() OVER (ORDER BY child_id) AS c FROM (SELECT DISTINCT child_id "
                     "FROM record_child WHERE child_id IS NOT NULL) d")


#: The full rebuild's table of the records as every layer's grouping reads them (``records_sql``), made once on the
#: rebuild's cursor and dropped after it.
RECORDS = "agg_records"


def records_sql(linked: bool) -> str:
    """The records as ``grouped_sql`` reads them, for every layer at once: agency type and code, every layer's
    area column, financial year and quarter, the CSE flag and the child (NULL before linkage or for an anonymous
    record). A full rebuild groups this one table per layer instead of joining the records to their children and
    deriving their periods again for each (5,000,000 encounters, session 17, docs/PERFORMANCE.md: read-only, the
    six queries 37.6 s against 14.2 s from it and 2.1 s to make it; in a transaction the rebuild 21.4-25.0 s against
    19.5-20.1 s). The periods are integers (``fy``, the year's first calendar year; ``fq``, 1 to 4) and each child
    a number (its rank among the distinct ids): the groupings run on integers and the published texts are made once
    per cell (1M, session 23: the eight groupings 3.6-3.8 -> 3.0-3.1 s, the same rows)."""
    child = "i.c" if linked else "CAST(NULL AS BIGINT)"
    join = (f"LEFT JOIN record_child rc ON rc.record_key = e.record_key LEFT JOIN ({CHILD_NUMBERS_SQL}) i "
            "ON i.child_id = rc.child_id") if linked else ""
    areas = "".join(f", e.{column}" for column in sorted({area_column(layer) for layer in measure_layers()}))
    return (f"SELECT e.agency_type AS agency_type, e.agency_code AS agency_code{areas}, {_FY} AS fy, "
            f"{_FQ} AS fq, coalesce(e.cse_flag, false) AS cse, {child} AS child_id "
            f"FROM encounters e {join}")


def grouped_sql(area_sql: str, linked: bool, where: str = "", cells: str | None = None,
                source: str | None = None) -> str:
    """Counts by agency, area (an SQL expression on ``e``) and period (quarter, year and all at once).

    ``cells``: a table of (agency_type, area_code) to restrict to (an incremental refresh); ``where``: more
    conditions (``AND …``); ``source``: a table (or view) of ``records_sql`` to read instead of the records
    and their children. The same text runs on DuckDB and Spark SQL."""
    child = "rc.child_id" if linked else "CAST(NULL AS STRING)"
    join = "LEFT JOIN record_child rc ON rc.record_key = e.record_key" if linked else ""
    year, quarter, cse = _YEAR, _QUARTER, "coalesce(e.cse_flag, false)"
    year_out, quarter_out = "year", "quarter"  # the published texts: from the records, or made per cell below
    if source:  # the periods (integers), the flag and the child are columns of the records' table already
        child, join, year, quarter, cse = "e.child_id", "", "e.fy", "e.fq", "e.cse"
        year_out, quarter_out = year_text("year"), quarter_text("year", "quarter")
    if cells:
        join += f" JOIN {cells} c ON c.agency_type = e.agency_type AND c.area_code = {area_sql}"
    # distinct children per quarter, year and all periods by three nested groupings (one row per child and cell,
    # then counted), not count(DISTINCT) in GROUPING SETS: the same counts, faster (at 1,000,000 encounters
    # 0.84-1.06 s -> 0.64-0.91 s a query); a record without a child (unlinked, anonymous) is counted, never a child
    children = "CAST(count(child_id) AS DOUBLE)" if linked else "CAST(NULL AS DOUBLE)"
    cse_children = ("CAST(count(CASE WHEN cse_any = 1 THEN child_id END) AS DOUBLE)" if linked
                    else "CAST(NULL AS DOUBLE)")
    counted = (f"CAST(sum(n) AS DOUBLE) AS records, CAST(sum(cse_n) AS DOUBLE) AS cse_records, "
               f"{children} AS children, {cse_children} AS cse_children")
    return f"""
        WITH base AS (
            SELECT e.agency_type AS agency_type, {area_sql} AS area_code, {year} AS year, {quarter} AS quarter,
                   {cse} AS cse, {child} AS child_id
            FROM {source or "encounters"} e {join}
            WHERE {area_sql} IS NOT NULL {where}),
        by_quarter AS (
            SELECT agency_type, area_code, year, quarter, child_id, count(*) AS n,
                   sum(CASE WHEN cse THEN 1 ELSE 0 END) AS cse_n, max(CASE WHEN cse THEN 1 ELSE 0 END) AS cse_any
            FROM base GROUP BY agency_type, area_code, year, quarter, child_id),
        by_year AS (
            SELECT agency_type, area_code, year, child_id, sum(n) AS n, sum(cse_n) AS cse_n, max(cse_any) AS cse_any
            FROM by_quarter GROUP BY agency_type, area_code, year, child_id),
        by_all AS (
            SELECT agency_type, area_code, child_id, sum(n) AS n, sum(cse_n) AS cse_n, max(cse_any) AS cse_any
            FROM by_year GROUP BY agency_type, area_code, child_id)
        SELECT agency_type, area_code, 'quarter' AS granularity, {quarter_out} AS period, {counted}
        FROM by_quarter GROUP BY agency_type, area_code, year, quarter
        UNION ALL
        SELECT agency_type, area_code, 'year' AS granularity, {year_out} AS period, {counted}
        FROM by_year GROUP BY agency_type, area_code, year
        UNION ALL
        SELECT agency_type, area_code, 'all' AS granularity, 'all' AS period, {counted}
        FROM by_all GROUP BY agency_type, area_code"""


def direct_sql(layer: str, linked: bool, cells: str | None = None, source: str | None = None) -> str:
    """``agg_direct`` rows of one layer (all of them, or only those of ``cells``); ``source``: as ``grouped_sql``."""
    inner = grouped_sql(f"e.{area_column(layer)}", linked, cells=cells, source=source)
    return (f"SELECT {_literal(layer)} AS layer, agency_type, area_code, granularity, period, "
            f"records, cse_records, children, cse_children FROM ({inner}) g")


def native_sql(linked: bool, cells: str | None = None, source: str | None = None) -> str:
    """``agg_native`` rows (agencies with a native geography, by their own code); ``source``: as ``grouped_sql``."""
    agencies = ", ".join(_literal(a) for a in native_agencies())
    inner = grouped_sql("e.agency_code", linked, f"AND e.agency_type IN ({agencies})", cells=cells, source=source)
    return ("SELECT agency_type, area_code AS agency_code, granularity, period, "
            f"records, cse_records, children, cse_children FROM ({inner}) g")


# -- on a DuckDB cursor, inside the caller's transaction -------------------------------------------------------

def _tables(cur) -> set[str]:
    return {r[0] for r in cur.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def fingerprint(cur) -> str:
    """What the aggregates depend on, as one string (cheap: counts and maxima DuckDB keeps per table)."""
    here = _tables(cur)
    n, batch = cur.execute("SELECT count(*), coalesce(max(batch_id), 0) FROM encounters").fetchall()[0] \
        if "encounters" in here else (0, 0)
    run = cur.execute("SELECT max(run_id) FROM linkage_runs").fetchall()[0][0] if "linkage_runs" in here else None
    linked = cur.execute("SELECT count(*) FROM record_child").fetchall()[0][0] if "record_child" in here else -1
    decisions = cur.execute("SELECT count(*) FROM review_decisions").fetchall()[0][0] \
        if "review_decisions" in here else 0
    return f"{n}:{batch}:{run}:{linked}:{decisions}"


def stored_fingerprint(cur) -> str | None:
    """The fingerprint the stored aggregates were built for (None: never built, e.g. a store of schema 3)."""
    here = _tables(cur)
    if not {"meta", "agg_direct", "agg_native"} <= here:
        return None
    rows = cur.execute("SELECT value FROM meta WHERE name = ?", [STATE_KEY]).fetchall()
    return rows[0][0] if rows else None


def current(cur) -> bool:
    """Whether the stored aggregates match the record tables."""
    stored = stored_fingerprint(cur)
    return stored is not None and stored == fingerprint(cur)


def _linked(cur) -> bool:
    return "record_child" in _tables(cur)


def _mark(cur) -> None:
    cur.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [STATE_KEY, fingerprint(cur)])


def _drop_quietly(cur, table: str) -> None:
    """Drop a temporary table of this cursor; after a failed statement the transaction is aborted and the caller
    rolls it back (dropping the table with it): that failure is the one to raise, not this one's."""
    with contextlib.suppress(duckdb.Error):
        cur.execute(f"DROP TABLE IF EXISTS temp.{table}")


def rebuild(cur, *, beside=None) -> None:
    """Every aggregate from scratch (on ``cur``, inside the caller's transaction); nothing inside ``scratch()``.
    ``beside``: as ``refresh``."""
    if not maintaining():
        return
    linked = _linked(cur)
    cur.execute("DELETE FROM agg_direct")
    cur.execute("DELETE FROM agg_native")
    cur.execute(f"CREATE OR REPLACE TEMP TABLE {RECORDS} AS {records_sql(linked)}")
    try:
        for layer in measure_layers():
            cur.execute(f"INSERT INTO agg_direct {direct_sql(layer, linked, source=f'temp.{RECORDS}')}")
        cur.execute(f"INSERT INTO agg_native {native_sql(linked, source=f'temp.{RECORDS}')}")
    finally:
        _drop_quietly(cur, RECORDS)
    _mark(cur)
    refresh_cubes(cur, force=True, beside=beside)


# -- the assembled cubes (exact and protected), built by the measures layer on the same cursor ------------------

#: The layer above that assembles the cubes (exact and protected need the conversion weights and the cell keys,
#: which storage must not import): ``lib.measures.aggregates`` registers itself here when imported, as every
#: writer of a store does (the app, ``lib.cli``, the view layer). A process that never imported it builds no cubes
#: and leaves them stale, so readers count afresh: slower, never wrong.
_cube_builder = None


def register_cube_builder(builder) -> None:
    """Register what builds the cubes: an object with ``version() -> str`` (format and geography),
    ``build_stored(cur, full, beside)`` (``full``: nothing stored may be kept; ``beside``: as ``refresh``),
    ``refresh_results(cur)`` (when the cubes are kept: the stored results that do not follow the records, each
    brought up to date by its own fingerprint), ``start_beside(side)`` (``start_beside``) and ``prepare()``
    (``prepare``)."""
    global _cube_builder
    _cube_builder = builder


def cubes_fingerprint(cur) -> str | None:
    """What the assembled cubes depend on: the records, the batches and the linkage (not the reviewer decisions,
    which change no ``record_child`` row until the next linkage run), the geography (its manifest: conversion
    weights) and the format of the stored cube; None when no cube builder is registered."""
    if _cube_builder is None:
        return None
    n, batch, run, linked, _ = fingerprint(cur).split(":")
    return f"{n}:{batch}:{run}:{linked}:{_cube_builder.version()}"


def cubes_current(cur, cube: str = "exact") -> bool:
    """Whether the stored ``cube`` ("exact" or "protected") matches the store (False on a store before schema 5,
    or one with no records: the cube is then read from ``agg_direct``/``agg_native`` or counted). ``cube``
    "views": the pages' stored measures (``agg_frames``, schema 7: spans, flows, completeness), same fingerprint."""
    needed = {"meta", "agg_cube", "agg_unplaced"} | ({"agg_frames"} if cube == "views" else set())
    if not needed <= _tables(cur):
        return False
    rows = cur.execute("SELECT value FROM meta WHERE name = ?", [f"{STATE_KEY}.{cube}"]).fetchall()
    wanted = cubes_fingerprint(cur)
    return wanted is not None and bool(rows) and rows[0][0] == wanted


def refresh_cubes(cur, *, force: bool = False, beside=None) -> bool:
    """Rebuild the assembled cubes on ``cur`` (inside the caller's transaction) unless they are current and not
    ``force``; returns whether they were rebuilt. A store without ``agg_cube`` (being migrated) is left alone."""
    if _cube_builder is None or not {"agg_cube", "agg_unplaced"} <= _tables(cur):
        return False
    if not force and cubes_current(cur, "exact") and cubes_current(cur, "protected") \
            and ("agg_frames" not in _tables(cur) or cubes_current(cur, "views")):
        _cube_builder.refresh_results(cur)  # results that do not follow the records keep their own fingerprint
        return False
    # force: the linkage was replaced (or a rebuild): everything
    _cube_builder.build_stored(cur, full=force, beside=beside)
    return True


def prepare() -> threading.Thread | None:
    """Start loading, on a daemon thread, what the cube builder's next full build reads from the geography (its
    ``prepare``), for a write that will rebuild everything later (a linkage run: it links first); returns the
    thread, or None when nothing is maintained here (``scratch()``) or no cube builder is registered. Nothing is
    read from the store. An error there is left for the build itself to meet."""
    if not maintaining() or _cube_builder is None:
        return None

    def load() -> None:
        with contextlib.suppress(Exception):
            _cube_builder.prepare()

    thread = threading.Thread(target=load, name="aggregates-prepare", daemon=True)
    thread.start()
    return thread


def start_beside(side):
    """Start, on ``side`` (a cursor outside a write's transaction that reads the write's new record map as
    ``record_child``: ``store.rebuilt_beside``), what the cube builder can build of a full rebuild beside the
    transaction (its ``start_beside``: the Across measures). None when nothing is maintained here (``scratch()``) or
    no cube builder is registered: ``refresh`` then builds everything on the write's cursor."""
    if not maintaining() or _cube_builder is None:
        return None
    return _cube_builder.start_beside(side)


def _refresh_touched(cur, touched_sql: str, params: list) -> None:
    """Recompute the cells holding the records ``touched_sql`` selects (a query of record_key)."""
    linked = _linked(cur)
    columns = ", ".join(["agency_type", "agency_code", *sorted({area_column(layer) for layer in measure_layers()})])
    cur.execute(f"CREATE OR REPLACE TEMP TABLE agg_touched AS SELECT DISTINCT {columns} "
                f"FROM encounters e SEMI JOIN ({touched_sql}) t USING (record_key)", params)
    try:
        for layer in measure_layers():
            column = area_column(layer)
            cur.execute("CREATE OR REPLACE TEMP TABLE agg_cells AS SELECT DISTINCT agency_type, "
                        f"{column} AS area_code FROM agg_touched WHERE {column} IS NOT NULL")
            cur.execute("DELETE FROM agg_direct USING agg_cells c WHERE agg_direct.layer = ? "
                        "AND agg_direct.agency_type = c.agency_type AND agg_direct.area_code = c.area_code",
                        [layer])
            cur.execute(f"INSERT INTO agg_direct {direct_sql(layer, linked, cells='agg_cells')}")
        cur.execute("CREATE OR REPLACE TEMP TABLE agg_cells AS SELECT DISTINCT agency_type, "
                    "agency_code AS area_code FROM agg_touched")
        cur.execute("DELETE FROM agg_native USING agg_cells c WHERE agg_native.agency_type = c.agency_type "
                    "AND agg_native.agency_code = c.area_code")
        cur.execute(f"INSERT INTO agg_native {native_sql(linked, cells='agg_cells')}")
    finally:
        cur.execute("DROP TABLE IF EXISTS agg_cells")
        cur.execute("DROP TABLE IF EXISTS agg_touched")


def refresh(cur, *, batch_id: int | None = None, record_keys=None, full: bool = False,
            was_current: bool = True, beside=None) -> str:
    """Bring the aggregates up to date after a change made on ``cur`` (inside its transaction).

    ``batch_id``: a batch was just stored (its cells are recomputed); ``record_keys``: a reviewer decided on
    these records (the cells of their children's records are recomputed); ``full``: the linkage was replaced.
    ``was_current``: whether the aggregates matched the store before the change (``maintained`` checks it);
    if not (never built, or changed by a path that did not refresh) everything is rebuilt. ``beside``: what
    ``store.rebuilt_beside`` yielded for this change (a full rebuild reads its measures instead of computing them).
    Returns what was done: "full", "incremental" or "off" (inside ``scratch()``: nothing)."""
    if not maintaining():
        return "off"
    if full or not was_current or stored_fingerprint(cur) is None:
        rebuild(cur, beside=beside)
        return "full"
    if batch_id is not None:
        added, total = cur.execute("SELECT count(*) FILTER (WHERE batch_id = ?), count(*) FROM encounters",
                                   [int(batch_id)]).fetchall()[0]
        if added * INCREMENTAL_SHARE > total:  # a batch that touches most cells: from scratch is cheaper
            rebuild(cur)
            return "full"
        _refresh_touched(cur, "SELECT record_key FROM encounters WHERE batch_id = ?", [int(batch_id)])
    if record_keys:
        keys = [str(k) for k in record_keys]
        marks = ", ".join("?" * len(keys))
        if _linked(cur):
            touched = (f"SELECT record_key FROM record_child WHERE child_id IN (SELECT child_id FROM record_child "
                       f"WHERE record_key IN ({marks})) UNION SELECT record_key FROM encounters "
                       f"WHERE record_key IN ({marks})")
            _refresh_touched(cur, touched, keys + keys)
        else:
            _refresh_touched(cur, f"SELECT record_key FROM encounters WHERE record_key IN ({marks})", keys)
    _mark(cur)
    refresh_cubes(cur)  # an upload changes them; a decision does not (kept when current)
    return "incremental"


@contextlib.contextmanager
def maintained(cur, *, batch_id: int | None = None, record_keys=None, full: bool = False):
    """Around a change made on ``cur`` inside its transaction: notes whether the aggregates are current before
    it, and refreshes them after it (only if the change raised nothing; the caller's ROLLBACK then undoes
    both). Yields a dict whose ``mode`` says what the refresh did."""
    was_current = current(cur)
    done: dict = {}
    yield done
    done["mode"] = refresh(cur, batch_id=batch_id, record_keys=record_keys, full=full, was_current=was_current)
