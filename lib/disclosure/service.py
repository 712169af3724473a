"""The disclosure-control service: the measure cube as published to every role below the safeguarding lead.

``protected_cube(con)`` has exactly the shape of ``lib.measures.counts.build_cube`` (the same columns, layers,
bases and agencies), so every view builder that reads the cube reads protected counts by calling
``Source.cube_for(role)`` instead of ``Source.cube()``. The method is the one in docs/DISCLOSURE.md:

- **Records (additive: ``records``, ``cse_records``), direct basis.** One group-by over the encounters joined to
  their record keys (``lib.disclosure.members``) by agency x financial year x every stored ``enc_<layer>`` column
  of the measure layers. Each distinct combination of those columns is an *atom*: every area of every layer is a
  union of atoms by construction, so no lookup is needed. Each atom cell (atom x agency x year x measure) is
  perturbed once with its cell key (sum of its records' keys mod 256); every published area count is the exact
  sum of its atoms' published values, a year of its atoms, and ``"all"`` the sum of the years.
- **Distinct children (``children``, ``cse_children``).** Per published cell (layer x area x agency x period,
  ``"all"`` included): the number of distinct children and their cell key (sum of the children's keys mod 256),
  perturbed. The same children give the same key, hence the same value, wherever the cell appears.
- **Native basis.** Perturbed at the native cell (agency x ``agency_code`` x year for records, x period for
  children) with the cell key of its members, then converted with ``lib.measures.convert`` exactly as
  ``build_cube`` converts exact counts.
- **Periods.** Financial years and ``"all"``; quarters are not published below the lead.

Nothing here knows about roles: ``lib.views.base.Source.cube_for`` picks the exact or the protected cube.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from lib.disclosure import cellkey, members
from lib.geo.layers import REGISTRY as LAYER_REGISTRY
from lib.measures import convert
from lib.measures.counts import _FY, _YEAR, NATIVE_LAYER, VALUE_COLUMNS, MeasureCube, _has_table, assemble
from lib.records import store
from lib.records.aggregates import year_text
from lib.records.store import cursor

ADDITIVE = ("records", "cse_records")
DISTINCT = ("children", "cse_children")
__all__ = ["protected_cube", "atom_cells", "ADDITIVE", "DISTINCT"]


def _stored(layer: str) -> str:
    return f"enc_{LAYER_REGISTRY[convert.layer_key(layer)].stored_key}"


def _sql(con, keys: dict, sql: str, params=None) -> pd.DataFrame:
    """Run ``sql`` on a cursor of its own with the key relations registered on it."""
    with cursor(con) as cur:
        members.register(cur, keys)
        return cur.execute(sql, params or []).df()


def atom_cells(con, layers, keys: dict) -> pd.DataFrame:
    """One row per atom x agency x financial year: the stored area of every layer (``enc_<layer>``; NULL where
    the record has none), the true ``records`` and ``cse_records``, their cell keys (``records_key``,
    ``cse_records_key``) and the published values (``records_published``, ``cse_records_published``).
    ``year`` is NULL for records without an encounter date (they count in ``"all"`` only, as in build_cube)."""
    columns = list(dict.fromkeys(_stored(layer) for layer in layers))
    cols = ", ".join(f"e.{c}" for c in columns)
    frame = _sql(con, keys, f"""
        SELECT e.agency_type, {_YEAR} AS year, {cols},
               count(*) AS records, CAST(sum(k.rkey) % 256 AS INTEGER) AS records_key,
               count(*) FILTER (WHERE coalesce(e.cse_flag, false)) AS cse_records,
               CAST(coalesce(sum(k.rkey) FILTER (WHERE coalesce(e.cse_flag, false)), 0) % 256 AS INTEGER)
                   AS cse_records_key
        FROM encounters e JOIN {members.RECORD_KEYS} k USING (record_key)
        GROUP BY ALL""")
    for measure in ADDITIVE:
        frame[f"{measure}_published"] = cellkey.perturb(frame[measure].to_numpy("int64"),
                                                        frame[f"{measure}_key"].to_numpy("int64"))
    return frame


def _additive_direct(atoms: pd.DataFrame, layer: str) -> pd.DataFrame:
    """Published records per agency x area x year and "all" (sums of published atoms)."""
    column = _stored(layer)
    placed = atoms[atoms[column].notna()]
    values = [f"{m}_published" for m in ADDITIVE]
    years = (placed[placed["year"].notna()].groupby(["agency_type", column, "year"], as_index=False)[values].sum()
             .rename(columns={"year": "period"}).assign(granularity="year"))
    every = placed.groupby(["agency_type", column], as_index=False)[values].sum().assign(
        period="all", granularity="all")
    out = pd.concat([years, every], ignore_index=True).rename(
        columns={column: "area_code", **{f"{m}_published": m for m in ADDITIVE}})
    return out


def _children_base(columns=()) -> str:
    """Every linked record (a child's): agency_type, year (the financial year's first calendar year, an integer),
    child_id (the child's number, not its id: the groupings run on integers), rkey (the child's key), cse and
    ``columns`` of the encounter, joined to the child keys once (``_children_sql`` reads it as ``e``). The children
    are numbered in the key table's scan order: any numbering will do, as only their count and keys are read
    (1M, session 23: the five layers' children 1.7-1.8 -> 1.5-1.6 s, the same cells)."""
    extra = "".join(f", e.{c}" for c in columns)
    return f"""SELECT e.agency_type, {_FY} AS year, k.c AS child_id, k.rkey, coalesce(e.cse_flag, false) AS cse{extra}
               FROM encounters e JOIN record_child rc USING (record_key)
               JOIN (SELECT child_id, rkey, row_number() OVER () AS c FROM {members.CHILD_KEYS}) k USING (child_id)"""


#: The temporary table ``protected_cube`` reads every layer's children from (``_children_base``, made once).
CHILD_RECORDS = "dc_child_records"


def _children_sql(area_sql: str, where: str = "", base: str | None = None) -> str:
    """Distinct children per agency x area x period (years and "all") with their cell keys. ``base``: a relation
    of ``_children_base``'s rows holding the columns ``area_sql`` and ``where`` read (alias ``e``); without it the
    records are joined here with none of the encounter's other columns (England and Wales's cells)."""
    base = base or f"({_children_base()})"
    return f"""
        WITH per_child AS (
            SELECT agency_type, area_code, CASE WHEN grouping(year) = 0 THEN year END AS year,
                   grouping(year) AS every, child_id, any_value(rkey) AS rkey, bool_or(cse) AS cse
            FROM (SELECT e.agency_type, {area_sql} AS area_code, e.year, e.child_id, e.rkey, e.cse
                  FROM {base} e WHERE {area_sql} IS NOT NULL {where})
            GROUP BY GROUPING SETS ((agency_type, area_code, year, child_id), (agency_type, area_code, child_id)))
        SELECT agency_type, area_code, CASE WHEN every = 1 THEN 'all' ELSE {year_text("year")} END AS period,
               count(*) AS children, CAST(sum(rkey) % 256 AS INTEGER) AS children_key,
               count(*) FILTER (WHERE cse) AS cse_children,
               CAST(coalesce(sum(rkey) FILTER (WHERE cse), 0) % 256 AS INTEGER) AS cse_children_key
        FROM per_child
        WHERE every = 1 OR year IS NOT NULL
        GROUP BY agency_type, area_code, every, year"""


NATIONAL_CODE = "K04000001"  # ONS GSS code of England and Wales (the national cell of every distinct count)


def national_children(con, period: str = "all", keys: dict | None = None) -> pd.DataFrame:
    """Distinct linked children per agency for England and Wales (``agency_type``, ``children``,
    ``cse_children``): a child seen in two areas is one child nationally, so the national figure is its own cell,
    never the sum of the areas' (which differs by layer). With ``keys``: published (the national cell's
    children's cell key, the same value on every page and layer); without: exact (the lead)."""
    if not _has_table(con, "record_child"):
        return pd.DataFrame(columns=["agency_type", *DISTINCT])
    if keys is None:
        frame = _sql(con, {}, f"""
            WITH base AS (SELECT e.agency_type, rc.child_id, {_YEAR} AS year, coalesce(e.cse_flag, false) AS cse
                          FROM encounters e JOIN record_child rc USING (record_key))
            SELECT agency_type, count(DISTINCT child_id) AS children,
                   count(DISTINCT child_id) FILTER (WHERE cse) AS cse_children
            FROM base WHERE ? = 'all' OR year = ? GROUP BY agency_type""", [period, period])
        return frame
    return national_period(national_children_cells(con, keys), period)


def national_children_cells(con, keys: dict) -> pd.DataFrame:
    """England and Wales's published children cells of every period (``agency_type``, ``period``, then
    ``DISTINCT``), before one period is chosen (``national_period``): computed once, kept by the stored measures."""
    if not _has_table(con, "record_child"):
        return pd.DataFrame({"agency_type": pd.Series(dtype="str"), "period": pd.Series(dtype="str"),
                             **{m: pd.Series(dtype="int64") for m in DISTINCT}})
    cells = _perturb_children(_sql(con, keys, _children_sql(f"'{NATIONAL_CODE}'")))
    return cells[["agency_type", "period", *DISTINCT]].sort_values(["agency_type", "period"]).reset_index(drop=True)


def national_period(cells: pd.DataFrame, period: str) -> pd.DataFrame:
    """``national_children``'s published rows for ``period`` from ``national_children_cells``."""
    return cells[cells["period"] == period][["agency_type", *DISTINCT]].reset_index(drop=True)


def _perturb_children(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for measure in DISTINCT:
        out[measure] = cellkey.perturb(out[measure].to_numpy("int64"), out[f"{measure}_key"].to_numpy("int64"))
    return out.drop(columns=[f"{m}_key" for m in DISTINCT])


def _with_children(records: pd.DataFrame, children: pd.DataFrame | None, keys: list[str]) -> pd.DataFrame:
    """Records rows with their published children (0 where a cell's records have no linked child)."""
    if children is None:
        return records.assign(children=np.nan, cse_children=np.nan)
    merged = records.merge(children, on=keys, how="left")
    for measure in DISTINCT:
        merged[measure] = merged[measure].fillna(0)
    return merged


def _native_cells(con, keys: dict, agencies: list[str], linked: bool, base: str | None = None) -> pd.DataFrame:
    """Published native cells (agency x agency_code x period) of ``agencies`` (granularity year and all).
    ``base``: as for ``_children_sql``, with ``agency_code``."""
    marks = ", ".join("?" * len(agencies))
    frame = _sql(con, keys, f"""
        SELECT e.agency_type, e.agency_code AS area_code, {_YEAR} AS year,
               count(*) AS records, CAST(sum(k.rkey) % 256 AS INTEGER) AS records_key,
               count(*) FILTER (WHERE coalesce(e.cse_flag, false)) AS cse_records,
               CAST(coalesce(sum(k.rkey) FILTER (WHERE coalesce(e.cse_flag, false)), 0) % 256 AS INTEGER)
                   AS cse_records_key
        FROM encounters e JOIN {members.RECORD_KEYS} k USING (record_key)
        WHERE e.agency_code IS NOT NULL AND e.agency_type IN ({marks})
        GROUP BY ALL""", agencies)
    for measure in ADDITIVE:
        frame[measure] = cellkey.perturb(frame[measure].to_numpy("int64"), frame[f"{measure}_key"].to_numpy("int64"))
    years = (frame[frame["year"].notna()].groupby(["agency_type", "area_code", "year"], as_index=False)[
        list(ADDITIVE)].sum().rename(columns={"year": "period"}).assign(granularity="year"))
    every = frame.groupby(["agency_type", "area_code"], as_index=False)[list(ADDITIVE)].sum().assign(
        period="all", granularity="all")
    records = pd.concat([years, every], ignore_index=True)
    children = None
    if linked:
        children = _perturb_children(_sql(con, keys, _children_sql(
            "e.agency_code", f"AND e.agency_type IN ({marks})", base), agencies))
    return _with_children(records, children, ["agency_type", "area_code", "period"])


def protected_cube(con, cube: MeasureCube | None = None, *, layers=None, keys: dict | None = None) -> MeasureCube:
    """The measure cube as published below the safeguarding lead (see the module docstring). ``cube``: the
    exact cube of the same store, if already built (its layers are used; nothing else is read from it).
    ``keys``: ``lib.disclosure.members.key_tables(con)`` if already made (memoise them per data version)."""
    started = time.perf_counter()
    if layers is None:
        layers = (sorted(set(cube.counts["layer"]), key=list(convert.MEASURE_LAYERS).index)
                  if cube is not None and not cube.counts.empty else tuple(convert.MEASURE_LAYERS))
    layers = tuple(convert.layer_key(layer) for layer in layers)
    linked = _has_table(con, "record_child")
    keys = members.key_tables(con, children=linked) if keys is None else keys
    linked = linked and members.CHILD_KEYS in keys

    natives: dict[str, list[str]] = {}
    for agency, native in NATIVE_LAYER.items():
        natives.setdefault(native, []).append(agency)
    with store.held(con) as cur:  # one cursor: it holds the linked records' table every layer's children read
        atoms = atom_cells(cur, layers, keys)
        base = None
        if linked:  # joined to the child keys once, not again for each layer and native layer (1M: 7.0 -> 5.0 s)
            columns = list(dict.fromkeys(["agency_code", *(_stored(layer) for layer in layers)]))
            members.register(cur, keys)
            cur.execute(f"CREATE OR REPLACE TEMP TABLE {CHILD_RECORDS} AS {_children_base(columns)}")
            base = f"temp.{CHILD_RECORDS}"
        try:
            direct = {}
            for layer in layers:
                records = _additive_direct(atoms, layer)
                children = (_perturb_children(_sql(cur, keys, _children_sql(f"e.{_stored(layer)}", base=base)))
                            if linked else None)
                direct[layer] = _grouped_frame(_with_children(records, children,
                                                              ["agency_type", "area_code", "period"]))
            native_cells = {native: _grouped_frame(_native_cells(cur, keys, agencies, linked, base))
                            for native, agencies in natives.items()}
        finally:
            if base:
                cur.execute(f"DROP TABLE IF EXISTS {base}")
    return assemble(direct, native_cells, linked, layers, started)  # converted exactly as the exact cube is


def _grouped_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Published cells in the columns and types of the exact cube's grouped counts (``counts.assemble``'s input)."""
    frame = frame[["agency_type", "area_code", "granularity", "period", *VALUE_COLUMNS]].reset_index(drop=True)
    for column in VALUE_COLUMNS:
        frame[column] = frame[column].astype("float64")
    return frame


# -- counts that are not in the cube (Compare's completeness, linkage and spans), same method ----------------

def area_record_sums(con, keys: dict, layer: str, measures: dict[str, str], *, linked_sizes: bool = False
                     ) -> pd.DataFrame:
    """Published counts of records per area of ``layer`` over all agencies and periods, one column per entry of
    ``measures`` (name -> SQL condition on ``e``, the encounter; with ``linked_sizes`` also ``rc.in_rc``, TRUE
    when linkage placed the record, and ``s.n``, the number of records of its linked child, NULL if none).
    Each measure is perturbed on the same atoms as the cube (agency x financial year x every enc_<layer> of the
    measure layers) and summed, so it adds up across layers and agrees with the cube wherever the condition is
    the same (``TRUE`` gives the cube's records)."""
    return sum_record_atoms(record_atoms(con, keys, measures, linked_sizes=linked_sizes), layer, measures)


def record_atoms(con, keys: dict, measures: dict[str, str], *, linked_sizes: bool = False) -> pd.DataFrame:
    """``area_record_sums``'s published atoms (agency x financial year x every ``enc_<layer>`` of the measure
    layers), the same for every layer: computed once, they give every layer's sums (``sum_record_atoms``)."""
    columns = list(dict.fromkeys(_stored(x) for x in convert.MEASURE_LAYERS))
    cols = ", ".join(f"e.{c}" for c in columns)
    parts = []
    for name, condition in measures.items():
        parts.append(f"count(*) FILTER (WHERE {condition}) AS \"{name}\", "
                     f"CAST(coalesce(sum(k.rkey) FILTER (WHERE {condition}), 0) % 256 AS INTEGER) AS \"{name}_key\"")
    join = ""
    if linked_sizes:
        join = ("LEFT JOIN (SELECT record_key, child_id, TRUE AS in_rc FROM record_child) rc USING (record_key) "
                "LEFT JOIN (SELECT child_id, count(*) AS n FROM record_child WHERE child_id IS NOT NULL GROUP BY 1) s "
                "USING (child_id)")
    atoms = _sql(con, keys, f"""
        SELECT e.agency_type, {_YEAR} AS year, {cols}, {", ".join(parts)}
        FROM encounters e JOIN {members.RECORD_KEYS} k USING (record_key) {join}
        GROUP BY ALL""")
    for name in measures:
        atoms[name] = cellkey.perturb(atoms[name].to_numpy("int64"), atoms[f"{name}_key"].to_numpy("int64"))
    return atoms


def sum_record_atoms(atoms: pd.DataFrame, layer: str, measures) -> pd.DataFrame:
    """Published atoms of ``record_atoms`` summed per area of ``layer`` (``area_code`` and one column per measure)."""
    column = _stored(layer)
    placed = atoms[atoms[column].notna()]
    out = placed.groupby(column)[list(measures)].sum().astype("float64")
    out.index = out.index.astype("str")
    return out.rename_axis("area_code").reset_index()
