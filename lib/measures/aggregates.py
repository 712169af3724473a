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

import contextlib
import functools
import hashlib
import io
import json
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from lib.disclosure import cells, members, service
from lib.disclosure.keys import NoSecret
from lib.geo import layers as layer_registry
from lib.geo import lookup
from lib.measures import compare, convert, counts, spans
from lib.records import aggregates as stored
from lib.records import store
from lib.records.store import AREA_BASES, COMPLETENESS_LAYERS, atomic, cursor

GROUPED_COLUMNS = ["agency_type", "area_code", "granularity", "period", *counts.VALUE_COLUMNS]
#: The columns of a cube's rows, in ``counts.build_cube``'s order (what ``agg_cube`` stores besides cube, ord).
CUBE_COLUMNS = [*GROUPED_COLUMNS, "apportioned", "layer", "basis"]
UNPLACED_COLUMNS = ["agency_type", "agency_code", "records"]
#: Bumped whenever what the stored cubes hold changes: a store built by another release is rebuilt, never read.
CUBES_FORMAT = "4"  # 2: with the pages' stored measures (agg_frames, schema 7); 3: with Compare's, and
#: resident children on home atoms; 4: parts capped at their wholes per atom, national totals sums of atoms
#: Where the disclosure keys are kept (registered name -> stored table).
KEY_TABLES = {members.RECORD_KEYS: "agg_record_keys", members.CHILD_KEYS: "agg_child_keys"}


def _natives() -> dict[str, list[str]]:
    natives: dict[str, list[str]] = {}
    for agency, native in counts.NATIVE_LAYER.items():
        natives.setdefault(native, []).append(agency)
    return natives


def prepare() -> None:
    """Load what assembling the cubes reads from the geography (the conversion weights of every native layer to
    every measure layer; ``convert.weights`` keeps them for the process), so a write's build does not wait for it.
    A linkage run calls it on a thread of its own while it links (``lib.records.aggregates.prepare``): in a fresh
    process (``python -m lib.cli link``, the nightly load) the first build's ``from_rows`` loaded them itself
    (1M: 1.4 s against 0.3 s once loaded; docs/PERFORMANCE.md, session 26)."""
    for native in dict.fromkeys(counts.NATIVE_LAYER.values()):
        for layer in stored.measure_layers():
            convert.weights(native, layer)


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


def _stored_rows(cur, layers=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(``agg_direct`` rows of ``layers`` or every layer, ``agg_native`` rows) in the order of their keys: the
    converted cells sum their parts in this order, so the cube is the same to the last bit however the rows were
    inserted (a rebuild's parallel inserts do not keep an order)."""
    where, params = "", []
    if layers is not None:
        where, params = f" WHERE layer IN ({', '.join('?' * len(layers))})", list(layers)
    direct = cur.execute(f"SELECT * FROM agg_direct{where} ORDER BY {', '.join(stored.DIRECT_KEYS)}", params).df()
    native = cur.execute(f"SELECT * FROM agg_native ORDER BY {', '.join(stored.NATIVE_KEYS)}").df()
    return direct, native


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
                linked = "record_child" in stored._tables(cur)
                return from_rows(*_stored_rows(cur, names), linked, wanted, started), True
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


def registry_version() -> str:
    """The layers the stored measures are computed over (home layers, span geographies, atom layers, measure
    layers: live views of the layer registry), as a digest: a layer registered later makes them not current."""
    text = repr((tuple(spans.HOME_LAYERS), tuple(spans.SPAN_LAYERS), tuple(spans.ATOM_LAYERS),
                 tuple(stored.measure_layers()), tuple(store_layers())))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def store_layers() -> tuple[str, ...]:
    """The layers of the Data page's completeness (every registered layer whose areas are unions of the published
    atoms: ``lib.geo.layers.on_measure_atoms``)."""
    return tuple(k for k in COMPLETENESS_LAYERS if layer_registry.on_measure_atoms(k))


#: Stored results that do not follow the record tables, registered from the layers above (the Scenario's default
#: simulation, ``lib.scenario.stored``): name prefix in ``agg_frames`` -> ``refresh(cur)``, which keeps its own
#: fingerprint and rows and recomputes them, inside the write's transaction, only when that fingerprint changed.
_OWN_RESULTS: dict = {}


def register_stored_result(prefix: str, refresh) -> None:
    """Register a stored result kept under ``prefix`` in ``agg_frames`` (``build_stored`` leaves its rows alone and
    calls ``refresh(cur)`` after the cubes and measures)."""
    _OWN_RESULTS[prefix] = refresh


def _kept_frames(keep_across: bool, keep_data: bool = False) -> str:
    """The WHERE clause of the ``agg_frames`` rows a rebuild deletes: not the registered results' own rows, nor
    the Across measures when they are kept, nor the Data page's when they are (``_data_unchanged``)."""
    kept = [*_OWN_RESULTS, *(["across/"] if keep_across else []), *([DATA_PREFIX] if keep_data else [])]
    return "".join(f" AND NOT starts_with(name, '{prefix}')" for prefix in kept).replace(" AND", " WHERE", 1)


def _stored_keys(cur) -> dict[str, pa.Table]:
    """The key tables the last stored build kept (``KEY_TABLES``), as ``members.key_tables``' ``known``."""
    return {name: cur.sql(f"SELECT * FROM {table}").to_arrow_table() for name, table in KEY_TABLES.items()}


def _key_tables(cur, linked: bool, known: dict) -> dict | None:
    """The store's key tables (``members.key_tables``), or None when the store has no key (nothing ingested)."""
    try:
        return members.key_tables(store.HeldCursor(cur), children=linked, known=known)
    except NoSecret:
        return None


def across_rows(cur, keys: dict | None, stop: threading.Event) -> list[tuple[str, str, bytes]]:
    """Every Across measure of a linked store as ``agg_frames`` rows (name, kind, payload), on ``cur`` (a cursor
    ``store.HeldCursor`` holds: the measures share its temporary tables); raises once ``stop`` is set."""
    built = []
    for name, value in _across_frames(cur, keys):
        if stop.is_set():
            raise RuntimeError("the Across measures beside the linkage run were stopped")
        built.append((name, *_payload(value)))
    return built


class AcrossBeside:
    """A linkage run's key tables and Across measures (``across/...``), computed on a second cursor of the store
    while the run's transaction builds everything else on its own (``build_stored(beside=...)``).

    Why: the save of a linkage run builds every stored measure in one transaction, on one cursor, so its queries ran
    one after another and a core stood idle through every step that DuckDB or pandas runs on one core (1M: the save
    12.3 s on 1.65 cores; docs/PERFORMANCE.md, session 26). The Across measures read only ``encounters``, the record
    map (``record_child``) and the key tables (checked by ``tests/test_aggregates.py``): ``side`` is a cursor outside
    the transaction on which the caller has registered the run's record map as ``record_child`` (it shadows the
    stored one), so it reads what the transaction will commit. Nothing is written on ``side``: the measures are
    stored by ``build_stored`` on the transaction's cursor, so they are committed with the run or not at all.
    ``close`` stops the work (a DuckDB query is interrupted) and waits for it; the caller closes ``side``."""

    def __init__(self, side):
        self._side = store.HeldCursor(side)
        self._raw = side
        self._stop = threading.Event()
        self._keys: Future = Future()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="across-beside")
        self._frames = self._pool.submit(self._run)

    def _run(self) -> list[tuple[str, str, bytes]]:
        try:
            keys = _key_tables(self._side, True, _stored_keys(self._side))
        except BaseException as exc:
            self._keys.set_exception(exc)
            raise
        self._keys.set_result(keys)
        return across_rows(self._side, keys, self._stop)

    def keys(self) -> dict | None:
        """The key tables (as ``members.key_tables``; None: no key), once made."""
        return self._keys.result()

    def frames(self) -> list[tuple[str, str, bytes]]:
        """Every Across measure as ``agg_frames`` rows (name, kind, payload), once all are made."""
        return self._frames.result()

    def close(self) -> None:
        """Stop the work if it is still running and wait for it (its error, if any, was raised by ``frames``): the
        query running beside is interrupted, and so is any it starts before it sees that it was stopped."""
        self._stop.set()
        while not self._frames.done():
            with contextlib.suppress(duckdb.Error):
                self._raw.interrupt()
            with contextlib.suppress(BaseException):
                self._frames.exception(timeout=0.05)
        self._pool.shutdown(wait=True)


def build_stored(cur, *, full: bool = True, beside: AcrossBeside | None = None) -> None:
    """Assemble the exact cube from ``agg_direct``/``agg_native`` and the protected cube from the records (cell key
    perturbation, ``lib.disclosure.service.protected_cube``) and store both, on ``cur`` inside the caller's
    transaction (``lib.records.aggregates.refresh_cubes`` calls it). A store without records keeps none; one without
    a key (nothing ingested) keeps only the exact cube. Readers then only scan ``agg_cube``. Then the pages'
    measures (``agg_frames``, ``build_views``); ``full`` False (an upload's or a decision's refresh, the linkage
    not replaced) keeps the Across measures when ``_across_unchanged`` shows they still hold. ``beside``: the
    Across measures and key tables built beside this transaction (``AcrossBeside``), used when every Across measure
    is rebuilt (``full``, a linked store with ``agg_frames``)."""
    started = time.perf_counter()
    with_frames = "agg_frames" in stored._tables(cur)
    keep_across = with_frames and not full and _across_unchanged(cur)
    keep_data = with_frames and _data_unchanged(cur)  # records only: kept through a linkage run too
    # the keys stored last time: their ids keep their keys (members.key_tables), only new ids are hashed (the key
    # tables at 1M 2.0-2.4 -> 0.4 s, at 5M 8.6-11.2 -> 2.6 s with the read, the same tables; session 17)
    known = _stored_keys(cur)
    for table in ("agg_cube", "agg_unplaced", *KEY_TABLES.values()):
        cur.execute(f"DELETE FROM {table}")
    if with_frames:
        cur.execute("DELETE FROM agg_frames" + _kept_frames(keep_across, keep_data))
    cur.execute("DELETE FROM meta WHERE name IN (?, ?, ?)", [f"{stored.STATE_KEY}.{name}"
                                                              for name in ("exact", "protected", "views")])
    if not cur.execute("SELECT count(*) FROM encounters").fetchall()[0][0]:
        return
    here = store.HeldCursor(cur)
    linked = "record_child" in stored._tables(cur)
    # the Across measures and the keys made beside this transaction: only when every Across measure is rebuilt
    beside = beside if full and with_frames and linked else None
    exact = from_rows(*_stored_rows(cur), linked, None, started)
    built = {"exact": exact}
    keys = beside.keys() if beside is not None else _key_tables(here, linked, known)
    if keep_data and (keys is None or not members.known_hold(here, members.RECORD_KEYS,
                                                               known.get(members.RECORD_KEYS))):
        # published with record keys that are not this store's now (or no key at all): recounted, never kept
        cur.execute(f"DELETE FROM agg_frames WHERE starts_with(name, '{DATA_PREFIX}')")
        keep_data = False
    del known
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
    if with_frames:
        build_views(cur, keys, linked, across=not keep_across and beside is None, data=not keep_data)
        if beside is not None:
            cur.executemany("INSERT INTO agg_frames VALUES (?, ?, ?)", beside.frames())
        cur.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [f"{stored.STATE_KEY}.views", fingerprint])
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
    refresh_results(cur)


def refresh_results(cur) -> None:
    """Bring each registered stored result up to date (each checks its own fingerprint: most writes keep it); on a
    store with records and ``agg_frames`` only."""
    if "agg_frames" not in stored._tables(cur) or not cur.execute("SELECT count(*) FROM encounters").fetchall()[0][0]:
        return
    for refresh in _OWN_RESULTS.values():
        refresh(cur)


# -- the pages' measures (schema 7, ``agg_frames``): spans, flows and completeness, stored by name -------------

#: The longest list of children spanning areas the Across page shows the lead (``lib.views.across``).
SPANNING_LIMIT = 300
#: The Data page's identifier counts (besides encounters): name -> SQL condition on ``encounters``.
COMPLETENESS_FLAGS = {"valid_nhs": "nhs_status = 'valid'",
          "name_dob": "forename_hash IS NOT NULL AND surname_hash IS NOT NULL AND dob_hash IS NOT NULL",
          "anonymous": "is_anonymous"}
COMPLETENESS_COUNTS = ("encounters", *COMPLETENESS_FLAGS)


def frame_name(*key) -> str:
    """The stored name of a measure: its memo key joined by "/" (``("across", "spans", "utla", True)`` ->
    ``"across/spans/utla/True"``)."""
    return "/".join(str(part) for part in key)


def place(layer: str, basis: str) -> str:
    """SQL placing an encounter (``e``) in ``layer`` on ``basis`` (as lib.records.store.completeness does)."""
    key = layer_registry.REGISTRY[layer].stored_key
    return {"home": f"e.home_{key}", "encounter": f"e.enc_{key}",
            "either": f"coalesce(e.home_{key}, e.enc_{key})"}[basis]


def completeness_placed(layer: str) -> list[str]:
    """The layers an atom of the completeness table is placed in: every measure layer, then ``layer``."""
    return list(dict.fromkeys([*(convert.layer_key(k) for k in convert.MEASURE_LAYERS), layer]))


def completeness_sql(placed: list[str], basis: str) -> str:
    """Exact completeness counts on atoms with their cell keys (sum of the records' keys modulo 256), one text for
    DuckDB and Spark SQL (no FILTER, no GROUP BY ALL: grouped by position): agency_type, year, a0, a1, ... (the
    place in each layer of ``placed`` on ``basis``), then each of ``COMPLETENESS_COUNTS`` and its ``key_``."""
    select = ", ".join(f"{place(k, basis)} AS a{i}" for i, k in enumerate(placed))
    return f"""
        SELECT e.agency_type AS agency_type, {stored._YEAR} AS year, {select},
               {_completeness_counts(COMPLETENESS_FLAGS, "k.rkey")}
        FROM encounters e JOIN {members.RECORD_KEYS} k ON k.record_key = e.record_key
        GROUP BY {", ".join(str(i) for i in range(1, len(placed) + 3))}"""


def completeness_atoms(con, placed: list[str], basis: str, keys: dict) -> pd.DataFrame:
    """Published completeness counts on atoms (docs/DISCLOSURE.md: records are additive): one row per agency
    type, financial year and place in every layer of ``placed`` (columns a0, a1, ...), each count
    (``COMPLETENESS_COUNTS``) perturbed with the cell key of its records (``completeness_sql``)."""
    with store.cursor(con) as cur:
        members.register(cur, keys)
        atoms = cur.execute(completeness_sql(placed, basis)).df()
    return cells.publish(atoms, list(COMPLETENESS_COUNTS))


def _completeness_counts(conditions: dict[str, str], rkey: str) -> str:
    """The aggregates of the completeness atoms: ``encounters`` and each flag of ``conditions`` (name -> SQL
    condition), each with its cell key ``key_<name>`` (the sum of ``rkey`` over its records, modulo 256)."""
    flags = "".join(f", CAST(sum(CASE WHEN {sql} THEN 1 ELSE 0 END) AS BIGINT) AS {name}, "
                    f"CAST(coalesce(sum(CASE WHEN {sql} THEN {rkey} END), 0) % 256 AS INTEGER) AS key_{name}"
                    for name, sql in conditions.items())
    return f"CAST(count(*) AS BIGINT) AS encounters, CAST(sum({rkey}) % 256 AS INTEGER) AS key_encounters{flags}"


def completeness_sets_sql(sets: list[list[str]], basis: str) -> str:
    """``completeness_sql`` for several lists of placed layers at once (one scan of the records and their keys,
    ``GROUPING SETS``): the same rows for each list, told apart by ``gid`` (``GROUPING`` of every layer's place
    column ``c0``, ``c1``, ... in the order of ``set_layers(sets)``). DuckDB only (Spark runs ``completeness_sql``
    per list: tests/test_aggregates.py checks both give the same published measures)."""
    every = set_layers(sets)
    columns = [f"c{i}" for i in range(len(every))]
    inner = ", ".join([f"e.agency_type AS agency_type, {stored._YEAR} AS year",
                       *(f"{place(k, basis)} AS c{i}" for i, k in enumerate(every)),
                       *(f"{sql} AS f_{name}" for name, sql in COMPLETENESS_FLAGS.items()), "k.rkey AS rkey"])
    grouping = ", ".join("(agency_type, year, " + ", ".join(columns[every.index(k)] for k in placed) + ")"
                         for placed in sets)
    return f"""
        SELECT agency_type, year, {", ".join(columns)}, GROUPING({", ".join(columns)}) AS gid,
               {_completeness_counts({name: f"f_{name}" for name in COMPLETENESS_FLAGS}, "rkey")}
        FROM (SELECT {inner} FROM encounters e JOIN {members.RECORD_KEYS} k ON k.record_key = e.record_key)
        GROUP BY GROUPING SETS ({grouping})"""


def set_layers(sets: list[list[str]]) -> list[str]:
    """Every layer of ``sets`` once, in order of first appearance (``completeness_sets_sql``'s c0, c1, ...)."""
    return list(dict.fromkeys(k for placed in sets for k in placed))


def completeness_atom_sets(con, sets: list[list[str]], basis: str, keys: dict) -> dict[tuple, pd.DataFrame]:
    """``completeness_atoms`` of each list of placed layers of ``sets`` on ``basis``, from one query
    (``completeness_sets_sql``): {tuple(placed): atoms}. The Data page's nine measures' atoms took nine scans."""
    every = set_layers(sets)
    with store.cursor(con) as cur:
        members.register(cur, keys)
        rows = cur.execute(completeness_sets_sql(sets, basis)).df()
    out = {}
    for placed in sets:
        # GROUPING's bit for a column is 1 where the set does not group by it (the first column is the high bit)
        gid = sum(1 << (len(every) - 1 - i) for i, k in enumerate(every) if k not in placed)
        atoms = rows[rows["gid"] == gid].reset_index(drop=True)
        atoms = atoms.rename(columns={f"c{every.index(k)}": f"a{i}" for i, k in enumerate(placed)})
        counts = [c for name in COMPLETENESS_COUNTS for c in (name, f"key_{name}")]
        atoms = atoms[["agency_type", "year", *(f"a{i}" for i in range(len(placed))), *counts]]
        out[tuple(placed)] = cells.publish(atoms, list(COMPLETENESS_COUNTS))
    return out


def completeness_by_area(atoms: pd.DataFrame, placed: list[str], layer: str) -> pd.DataFrame:
    """Published atoms summed per agency type and area of ``layer``: agency_type, area_code (NULL where
    unplaced), encounters, valid_nhs, name_dob, anonymous."""
    chosen = placed.index(layer)
    return (atoms.rename(columns={f"a{chosen}": "area_code"})
            .groupby(["agency_type", "area_code"], dropna=False, as_index=False)[list(COMPLETENESS_COUNTS)].sum())


def view_frames(con, keys: dict | None, linked: bool, *, across: bool = True, data: bool = True):
    """Every stored measure of the pages, as (name, value) pairs: what ``lib.views.across``, ``lib.views.data``
    and ``lib.views.compare`` would compute on first open (the same public functions of ``lib.measures.spans``
    and ``lib.measures.compare``, the same memo keys). ``keys``: the store's record and child keys (None: nothing
    ingested, no published measure). ``across`` False: not the measures named ``across/...``, which count only
    linked records (kept by an upload that links none: ``_across_unchanged``). ``data`` False: not the Data page's
    (``data.completeness/...``, kept while the records are the same: ``_data_unchanged``). Every measure runs on one
    cursor (the caller's inside a write's transaction), which holds the temporary tables they share."""
    with store.held(con) as cur:
        yield from _view_frames(cur, keys, linked, across=across, data=data)


def _view_frames(con, keys: dict | None, linked: bool, *, across: bool, data: bool = True):
    if keys is not None:  # Compare below the lead: published records per area (one set of atoms, every layer)
        atoms = service.record_atoms(con, keys, compare.published_measures(linked), linked_sizes=linked)
        for layer in stored.measure_layers():
            yield frame_name("compare", "sums", layer), compare.published_sums(atoms, layer, linked)
        del atoms
    if keys is not None and data:  # Data: identifier completeness as published below the lead, every layer and basis
        sets = list(dict.fromkeys(tuple(completeness_placed(layer)) for layer in store_layers()))
        by_basis = {basis: completeness_atom_sets(con, [list(placed) for placed in sets], basis, keys)
                    for basis in AREA_BASES}
        for layer in store_layers():
            placed = completeness_placed(layer)
            for basis in AREA_BASES:
                yield (frame_name("data.completeness", layer, basis),
                       completeness_by_area(by_basis[basis][tuple(placed)], placed, layer))
        del by_basis
    if linked and across:
        yield from _across_frames(con, keys)


def _across_frames(con, keys: dict | None):
    """The Across measures (``across/...``) of a linked store, on one cursor (``_view_frames``)."""
    reach = spans.exact_match_reach(con)
    keyed = keys is not None and members.CHILD_KEYS in keys
    flow_atoms: dict = {}  # published flow encounters' atoms, by their layers (one partition for every layer)
    if keyed:  # Compare below the lead: England and Wales's children (linked records only, so "across/")
        yield frame_name("across", "compare_national"), service.national_children_cells(con, keys)
    compare_layers = stored.measure_layers() if keyed else []
    totals = spans.record_totals(con, keys if keyed else None)  # the overviews' record totals: every layer's
    every = [*spans.HOME_LAYERS, *(k for k in compare_layers if k not in spans.HOME_LAYERS)]
    tables = spans.child_tables(con, every)  # one pass over the linked records for every layer's children
    homes = spans.home_areas(tables)  # every layer's homes, read by the flows instead of recomputed
    keyed_homes = atoms = None
    if keyed:  # every child's home atom and record key, looked up once for every layer (lib.disclosure.residents)
        keyed_homes = spans.resident_homes(con, tables)
        keyed_homes = spans.child_keys(con, keyed_homes, keyed_homes, keys=keys)
    # the per-child facts that do not depend on the layer, once: the exact-match reach of every child and, keyed,
    # the published counts of every home atom (each layer's resident counts are sums of the same atoms)
    exact = spans.with_reach(tables[every[0]][["child_id"]], reach)["agencies_exact"].to_numpy()
    records = spans.keyed_records(con, keys, spans.HOME_LAYERS) if keyed else None
    # the measures that are pandas alone on a layer's children run on a thread of their own while this one runs the
    # next queries (the flows and their atoms in DuckDB, which leaves Python free): one layer's at a time, so at most
    # two layers' children are held (docs/PERFORMANCE.md, session 24)
    pending: list = []
    with ThreadPoolExecutor(1, thread_name_prefix="view-frames") as pool:
        for layer in every:
            children = tables.pop(layer).assign(agencies_exact=exact)
            keyed_children = spans.child_keys(con, children, keyed_homes) if keyed else None
            if keyed and atoms is None:
                atoms = spans.resident_atoms(keyed_children)
            yield from _finished(pending)
            pending = [(name, pool.submit(work)) for name, work in _pandas_measures(
                layer, children, keyed_children, atoms, reach, keys, totals, compare_layers)]
            if layer not in spans.HOME_LAYERS:
                continue
            # the keyed flows are the exact flows plus their cell keys (same rows, same order): one query for both
            with_keys = spans.flows(con, layer, top=None, keys=keys, homes=homes, records=records) if keyed else None
            yield frame_name("across", "flows", layer, False), (
                spans.flows(con, layer, top=None, homes=homes) if with_keys is None
                else with_keys[[c for c in with_keys.columns if not c.startswith("key_")]])
            if not keyed:
                continue
            yield frame_name("across", "flows", layer, True), with_keys
            atoms_of = tuple(spans.atom_layers(layer))
            if atoms_of not in flow_atoms:
                flow_atoms[atoms_of] = spans.flow_encounter_atoms(
                    con, list(atoms_of), keys, homes=homes if set(atoms_of) <= set(every) else None)
            yield (frame_name("across", "flow_encounters", layer),
                   spans.published_flow_encounters(con, layer, keys, atoms=flow_atoms[atoms_of]))
        yield from _finished(pending)
    if records is not None:
        con.execute(f"DROP TABLE IF EXISTS temp.{records}")


def _finished(pending: list):
    """(name, value) of each submitted measure, in the order submitted, once done."""
    for name, future in pending:
        yield name, future.result()


def _pandas_measures(layer: str, children: pd.DataFrame, keyed_children: pd.DataFrame | None, atoms,
                     reach: pd.DataFrame, keys: dict | None, totals: pd.Series, compare_layers) -> list:
    """(name, a call of no argument) of each of ``layer``'s stored measures that reads only its children frames
    (``_view_frames``), never the cursor: Compare's published span and, for a home layer, Across's spans, missed,
    overview and spanning children, exact and (with ``keyed_children``) published."""
    out = []
    if layer in compare_layers:  # Compare's resident children, published (linked records only)
        out.append((frame_name("across", "compare_span", layer),
                    functools.partial(compare.published_span, keyed_children, atoms=atoms)))
    if layer not in spans.HOME_LAYERS:
        return out
    out += [(frame_name("across", "spans", layer, False),
             functools.partial(spans.spans_by_area, None, layer, children=children)),
            (frame_name("across", "missed", layer, False),
             functools.partial(spans.missed_without_linkage, None, layer, children=children, reach=reach)),
            (frame_name("across", "overview", layer, False),
             functools.partial(spans.overview, None, layer, children=children, reach=reach, totals=totals)),
            (frame_name("across", "spanning", layer, None),
             functools.partial(spans.spanning_children, None, layer, limit=SPANNING_LIMIT, children=children))]
    if keyed_children is not None:
        out += [(frame_name("across", "spans", layer, True),
                 functools.partial(spans.spans_by_area, None, layer, children=keyed_children, atoms=atoms)),
                (frame_name("across", "missed", layer, True),
                 functools.partial(spans.missed_without_linkage, None, layer, children=keyed_children, reach=reach,
                                   atoms=atoms)),
                (frame_name("across", "overview", layer, True),
                 functools.partial(spans.overview, None, layer, children=keyed_children, reach=reach, keys=keys,
                                   totals=totals, atoms=atoms))]
    return out


def _payload(value) -> tuple[str, bytes]:
    if isinstance(value, dict):
        return "json", json.dumps(value, sort_keys=True).encode()
    table = pa.Table.from_pandas(value, preserve_index=False)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return "arrow", sink.getvalue()


def _value(kind: str, payload: bytes):
    if kind == "json":
        return json.loads(bytes(payload).decode())
    return pa.ipc.open_stream(pa.BufferReader(bytes(payload))).read_all().to_pandas()


def _across_unchanged(cur) -> bool:
    """Whether the stored Across measures (``across/...``) still hold for the store as it is in this transaction:
    they were current for the state recorded in meta ``aggregates.views``, the linkage (run, ``record_child``
    rows), the geography and the format are the same, and every record stored since is new (none removed) and
    in no ``record_child`` row. Those measures count only linked records, so an upload after a linkage run leaves
    them as they were: kept, not recomputed (a decision changes no ``record_child`` row either)."""
    rows = cur.execute("SELECT value FROM meta WHERE name = ?", [f"{stored.STATE_KEY}.views"]).fetchall()
    now = stored.cubes_fingerprint(cur)
    if not rows or now is None or "record_child" not in stored._tables(cur):
        return False
    then_n, then_batch, *then_rest = rows[0][0].split(":", 4)
    now_n, _, *now_rest = now.split(":", 4)
    if then_rest != now_rest:
        return False
    added, added_linked = cur.execute(
        "SELECT count(*), count(rc.record_key) FROM encounters e LEFT JOIN record_child rc USING (record_key) "
        "WHERE e.batch_id > ?", [int(then_batch)]).fetchall()[0]
    return added_linked == 0 and int(now_n) - int(then_n) == added


#: The name prefix of the Data page's stored measures (``frame_name("data.completeness", ...)``).
DATA_PREFIX = "data.completeness/"


def _data_unchanged(cur) -> bool:
    """Whether the stored Data measures (``data.completeness/...``) still hold for the store as it is in this
    transaction: they were current for the state recorded in meta ``aggregates.views`` with the same records (their
    count and last batch: records are only ever added, in batches), geography and format, and every one of them is
    stored. They count records and their record keys only, never the linkage, so a linkage run leaves them as they
    were: kept, not recomputed (1M: 0.9 s of the link's save; docs/PERFORMANCE.md, session 21)."""
    rows = cur.execute("SELECT value FROM meta WHERE name = ?", [f"{stored.STATE_KEY}.views"]).fetchall()
    now = stored.cubes_fingerprint(cur)
    if not rows or now is None:
        return False
    then, now = rows[0][0].split(":", 4), now.split(":", 4)
    if len(then) != 5 or len(now) != 5 or then[:2] != now[:2] or then[4] != now[4]:
        return False
    wanted = {frame_name("data.completeness", layer, basis) for layer in store_layers() for basis in AREA_BASES}
    held = {name for (name,) in cur.execute("SELECT name FROM agg_frames WHERE starts_with(name, ?)",
                                            [DATA_PREFIX]).fetchall()}
    return held == wanted


def build_views(cur, keys: dict | None, linked: bool, *, across: bool = True, data: bool = True) -> int:
    """Store every measure of ``view_frames`` in ``agg_frames`` on ``cur`` (inside the caller's transaction, the
    keys registered or not: each function registers what it needs on the same cursor); returns how many.
    ``across`` False: only the Data and Compare pages' (the ``across/...`` measures are kept: ``_across_unchanged``)."""
    here = store.HeldCursor(cur)
    n = 0
    try:
        for name, value in view_frames(here, keys, linked, across=across, data=data):
            kind, payload = _payload(value)
            cur.execute("INSERT INTO agg_frames VALUES (?, ?, ?)", [name, kind, payload])
            n += 1
    finally:
        try:
            for name in keys or {}:  # registered on this cursor by the measures
                cur.unregister(name)
            cur.execute(f"DROP TABLE IF EXISTS temp.{spans.KEYED_RECORDS}")  # view_frames' own, if it stopped early
        except duckdb.Error:  # the transaction failed (the caller rolls it back): its error is the one to raise
            pass
    return n


def stored_frame(con: duckdb.DuckDBPyConnection, name: str):
    """The stored measure ``name`` (a frame or a dict) when the stored measures match the store, else None (the
    caller computes it). Checked and read in one transaction."""
    with cursor(con) as cur, atomic(cur):
        if not stored.cubes_current(cur, "views"):
            return None
        rows = cur.execute("SELECT kind, payload FROM agg_frames WHERE name = ?", [name]).fetchall()
    return _value(*rows[0]) if rows else None


# -- Spark: the same SQL over the exchanged Parquet -------------------------------------------------------------

def build_on_spark(folder, *, master: str | None = None, partitions: int | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    """(agg_direct rows, agg_native rows, linked) computed by Spark SQL from ``folder/encounters.parquet`` and,
    if present, ``folder/record_child.parquet``: the statements ``lib.records.aggregates`` runs on DuckDB."""
    from lib.linkage import spark as spark_backend

    spark = spark_backend.session(master, partitions=partitions)
    folder = Path(folder)
    spark.read.parquet(str(folder / "encounters.parquet")).createOrReplaceTempView("encounters")
    linked = (folder / "record_child.parquet").exists()
    if linked:
        spark.read.parquet(str(folder / "record_child.parquet")).createOrReplaceTempView("record_child")
    try:  # the full rebuild's statements: the records' table once (a view here), then every layer from it
        spark.sql(stored.records_sql(linked)).createOrReplaceTempView(stored.RECORDS)
        direct = pd.concat([spark.sql(stored.direct_sql(layer, linked, source=stored.RECORDS)).toPandas()
                            for layer in stored.measure_layers()], ignore_index=True)
        native = spark.sql(stored.native_sql(linked, source=stored.RECORDS)).toPandas()
    finally:  # the session is shared (linkage scoring registers its own "encounters" table in it): leave no views
        for view in ("encounters", "record_child", stored.RECORDS):
            spark.catalog.dropTempView(view)
    for frame in (direct, native):
        for column in stored.VALUE_COLUMNS:
            frame[column] = frame[column].astype("float64")
    return direct, native, linked


def completeness_on_spark(folder, *, master: str | None = None, partitions: int | None = None
                          ) -> dict[tuple[tuple[str, ...], str], pd.DataFrame]:
    """The Data page's completeness atoms (exact counts and cell keys, ``completeness_sql``) computed by Spark SQL
    from ``folder/encounters.parquet`` and ``folder/agg_record_keys.parquet`` (``store.export_parquet(con, folder,
    EXCHANGE_TABLES)``), for every distinct set of layers and basis the stored measures use:
    ``{(placed layers, basis): atoms}``. Published by ``lib.disclosure.cells.publish`` (pandas), they are the
    stored ``data.completeness`` measures (tests/test_aggregates.py)."""
    from lib.linkage import spark as spark_backend

    spark = spark_backend.session(master, partitions=partitions)
    folder = Path(folder)
    spark.read.parquet(str(folder / "encounters.parquet")).createOrReplaceTempView("encounters")
    spark.read.parquet(str(folder / "agg_record_keys.parquet")).createOrReplaceTempView(members.RECORD_KEYS)
    out = {}
    try:
        for layer in store_layers():
            placed = tuple(completeness_placed(layer))
            for basis in AREA_BASES:
                if (placed, basis) not in out:
                    out[(placed, basis)] = spark.sql(completeness_sql(list(placed), basis)).toPandas()
    finally:
        for view in ("encounters", members.RECORD_KEYS):
            spark.catalog.dropTempView(view)
    return out


#: What a cluster needs from the store to build every stored aggregate and measure that Spark twins.
EXCHANGE_TABLES = ("encounters", "record_child", "link_edges", "agg_record_keys")


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
        return f"{CUBES_FORMAT}:{geography_version()}:{registry_version()}"

    @staticmethod
    def build_stored(cur, *, full: bool = True, beside: AcrossBeside | None = None) -> None:
        build_stored(cur, full=full, beside=beside)

    @staticmethod
    def start_beside(side) -> AcrossBeside:
        return AcrossBeside(side)

    @staticmethod
    def prepare() -> None:
        prepare()

    @staticmethod
    def refresh_results(cur) -> None:
        refresh_results(cur)


stored.register_cube_builder(_CubeBuilder)
