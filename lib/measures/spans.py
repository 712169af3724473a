"""Children whose encounters cross boundaries: spans, flows, and who would be missed without linkage.

Every measure here is about *linked children* (``record_child.child_id``; anonymous contacts are never
linked and never counted) and is computed in DuckDB over ``encounters ⋈ record_child`` on ``record_key``.
SQL is parameterised; the only text put into SQL is a column name chosen from a fixed whitelist.

Definitions (kept in one place so the page, exports and tests agree):

- **Home area** of a child in a layer: the ``home_<layer>`` of the child's most recent record that has
  one; if records on that latest date disagree, the area the child's records name most often; then the
  smallest code (so runs repeat). Children with no home postcode placed in the layer are *unplaced*
  (e.g. every Welsh child for the England-only ``icb`` layer) and belong to no area row.
- **Spans a geography**: the child's encounters took place (``enc_<g>``, where the encounter happened, not
  the home address) in two or more different areas of that geography. The span geographies are
  ``SPAN_LAYERS`` (the layer registry's layers with a ``span_title``): police force area (``pfa``),
  children's services authority (``utla``), **ICB / health board (``nhs``)** and modelled acute trust
  catchment (``trust``). For "ICB" the analysis
  deliberately uses the ``nhs`` geography — the ICB in England and the local health board in Wales — so
  a child moving between Cardiff and Bristol spans two NHS bodies even though Wales has no ICBs.
- **Multi-agency**: records from two or more agency types (police, children's social care, health,
  education, other).
- **Flows**: for each (home area A, encounter area B ≠ A) of a layer, the linked children resident in A
  with at least one encounter located in B, and those encounters.
- **Missed without linkage** (``missed_without_linkage``): a multi-agency child none of whose
  cross-agency connections could be made by exact matching on a shared identifier. Two records *share an
  identifier* when both hold the same valid NHS number (``nhs_hash``), or both hold forename, surname and
  date of birth and all three hashes are equal. Exact matching is applied transitively (records joined
  through a chain of shared identifiers, within or across agencies, are one group), as a deterministic
  matching system would. The child is *missed* when no such group holds records of two agency types —
  only probabilistic linkage (or a reviewer) brought its agencies together. Equivalently, no pair of its
  records from different agency types shares an identifier (a group with two agency types must contain
  such a pair), so chains matter only for *partly missed*: some agencies meet in an exact group, but no
  exact group holds all of them. Invalid or missing NHS numbers and partial name/DOB never count as shared.
"""
from __future__ import annotations

import contextlib
from collections.abc import Mapping

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from lib.disclosure import residents
from lib.disclosure.cellkey import KEYS, perturb
from lib.disclosure.cells import PUBLISHED_PREFIX, key_column
from lib.disclosure.keys import store_secret
from lib.disclosure.members import CHILD_KEYS, RECORD_KEYS, keys_of, register
from lib.geo import layers, lookup
from lib.geo.layers import LAYERS
from lib.records import aggregates as stored
from lib.records import store
from lib.records.store import cursor, query

#: Geographies a child's encounters can span (encounter location), in display order: layer key -> one area of
#: it in a sentence. Derived from the layer registry (a layer with a ``span_title``), live: a layer registered
#: later is spanned too.
SPAN_LAYERS: Mapping[str, str] = layers.view(lambda layer: bool(layer.span_title), lambda layer: layer.noun)
#: Short plural titles for tables and pickers (the registry's ``span_title``), and "any" of them.
SPAN_TITLES: Mapping[str, str] = layers.view(lambda layer: bool(layer.span_title), lambda layer: layer.span_title,
                                             extra={"any": "any of these"})
#: Layers a child can be resident in (home area): the boundary layers that are drawn.
HOME_LAYERS = tuple(LAYERS)
#: Every layer on which counts of resident children are published: the home layers (Across boundaries) and the
#: measure layers (Compare, the Scenario model; ``nhs`` = ICB or health board). A child's homes in all of them
#: make its home atom (lib.disclosure.residents), so every published resident count is a sum of the same atoms.
RESIDENT_LAYERS = tuple(dict.fromkeys([*HOME_LAYERS, *layers.MEASURE_LAYERS]))


class LinkageMissing(RuntimeError):
    """The store has no ``record_child`` table: linkage has not been run."""


def _check_layer(layer: str, allowed=HOME_LAYERS) -> str:
    if layer not in allowed:
        raise ValueError(f"unknown layer {layer!r}; choose from {', '.join(allowed)}")
    return layer


def has_linkage(con: duckdb.DuckDBPyConnection) -> bool:
    """True when linkage has written ``record_child``."""
    with cursor(con) as cur:
        return bool(cur.execute("SELECT count(*) FROM information_schema.tables "
                                "WHERE table_name = 'record_child'").fetchall()[0][0])


def records_not_linked(con: duckdb.DuckDBPyConnection) -> int:
    """Stored encounters with no ``record_child`` row (ingested since the last linkage run)."""
    _require_linkage(con)
    with cursor(con) as cur:
        return int(cur.execute("SELECT count(*) FROM encounters e WHERE NOT EXISTS "
                               "(SELECT 1 FROM record_child rc WHERE rc.record_key = e.record_key)").fetchall()[0][0])


def _require_linkage(con) -> None:
    if not has_linkage(con):
        raise LinkageMissing("linkage has not been run on this store (no record_child table)")


def area_names(layer: str) -> dict[str, str]:
    """Code → name for a home layer or a span geography (``nhs`` = ICBs and Welsh health boards)."""
    return lookup.name_of(layer)


def _home_sql(layer: str, source: str = "encounters e JOIN record_child rc USING (record_key)",
              child: str = "rc.child_id") -> str:
    """SQL (a CTE body) giving one row per placed child: child_id, home_area. ``source``: the linked records
    (alias ``e`` with the encounter's columns; ``child`` the child's id or number), the store's by default."""
    # any registered layer (drawn ones first, as the message lists them), read from its stored home_ column
    allowed = (*HOME_LAYERS, *(k for k in layers.REGISTRY if k not in HOME_LAYERS))
    column = f"home_{layers.REGISTRY[_check_layer(layer, allowed)].stored_key}"
    return f"""
        SELECT child_id, area AS home_area FROM (
            SELECT child_id, area, row_number() OVER (
                       PARTITION BY child_id ORDER BY last_seen DESC, n DESC, area) AS pick
            FROM (SELECT {child} AS child_id, e.{column} AS area, max(e.encounter_date) AS last_seen,
                         count(*) AS n
                  FROM {source}
                  WHERE {child} IS NOT NULL AND e.{column} IS NOT NULL
                  GROUP BY ALL))
        WHERE pick = 1"""


def child_table(con: duckdb.DuckDBPyConnection, layer: str) -> pd.DataFrame:
    """One row per linked child: child_id, home_area (NA if unplaced), records, agencies, cse_records,
    first_date, last_date, and ``areas_<g>`` (distinct encounter areas) for each span geography."""
    return child_tables(con, [layer])[layer]


#: The temporary tables ``child_tables`` makes on its cursor (and drops): the children numbered, their records.
CHILD_NUMBERS, LINKED_RECORDS = "joinedup_child_numbers", "joinedup_linked_records"


def child_tables(con: duckdb.DuckDBPyConnection, layer_list) -> dict[str, pd.DataFrame]:
    """``child_table`` of every layer of ``layer_list`` from one pass: the per-child counts do not depend on the
    layer (computed once) and every layer's home area is read from one table of the linked records, so a write
    storing the measures of seven layers does not recount the record tables seven times."""
    _require_linkage(con)
    chosen = list(dict.fromkeys(layer_list))
    areas = ", ".join(f"count(DISTINCT e.enc_{layers.REGISTRY[g].stored_key}) AS areas_{g}" for g in SPAN_LAYERS)
    needed = sorted({"e.encounter_date", "e.agency_type", "e.cse_flag",
                     *(f"e.enc_{layers.REGISTRY[g].stored_key}" for g in SPAN_LAYERS),
                     *(f"e.home_{layers.REGISTRY[k].stored_key}" for k in chosen)})
    # the children numbered once in their ids' order (1 to n), so the groupings run on integers and every layer's
    # homes land in place by number (an Arrow take) instead of eight joins; the linked records a temporary table, not a
    # materialised CTE (5M: 14.9-15.9 -> 13.0-13.9 s for the table and the query alone; session 23)
    with store.held(con) as cur:
        try:
            cur.execute(f"CREATE OR REPLACE TEMP TABLE {CHILD_NUMBERS} AS {stored.CHILD_NUMBERS_SQL}")
            cur.execute(f"""CREATE OR REPLACE TEMP TABLE {LINKED_RECORDS} AS
                SELECT i.c, {', '.join(needed)} FROM encounters e JOIN record_child rc USING (record_key)
                JOIN temp.{CHILD_NUMBERS} i ON i.child_id = rc.child_id""")
            frame = cur.execute(f"""
                WITH kids AS (
                    SELECT e.c, count(*) AS records, count(DISTINCT e.agency_type) AS agencies,
                           count(*) FILTER (WHERE e.cse_flag) AS cse_records,
                           min(e.encounter_date) AS first_date, max(e.encounter_date) AS last_date, {areas}
                    FROM temp.{LINKED_RECORDS} e
                    GROUP BY e.c)
                SELECT i.child_id, k.* EXCLUDE (c)
                FROM kids k JOIN temp.{CHILD_NUMBERS} i ON i.c = k.c
                ORDER BY k.c""").df()
            homes = {}
            for k in chosen:  # child number -> home area, put in place (every child has a number from 1 to n)
                got = cur.sql(_home_sql(k, f"temp.{LINKED_RECORDS} e", "e.c")).to_arrow_table()
                at = np.full(len(frame), -1, dtype="int64")  # each child's row of `got`, -1 where it has no home
                at[got.column("child_id").to_numpy() - 1] = np.arange(got.num_rows)
                homes[k] = pd.array(got.column("home_area").take(pa.array(at, mask=at < 0)), dtype="str")
        finally:
            for table in (LINKED_RECORDS, CHILD_NUMBERS):
                with contextlib.suppress(duckdb.Error):  # a failed statement aborted the transaction: its error
                    cur.execute(f"DROP TABLE IF EXISTS temp.{table}")  # is the one raised
    for g in SPAN_LAYERS:
        frame[f"spans_{g}"] = frame[f"areas_{g}"] > 1
    frame["spans_any"] = frame[[f"spans_{g}" for g in SPAN_LAYERS]].any(axis=1)
    frame["multi_agency"] = frame["agencies"] >= 2
    rest = [c for c in frame.columns if c != "child_id"]
    return {k: pd.concat([frame[["child_id"]], pd.DataFrame({"home_area": homes[k]}), frame[rest]], axis=1)
            for k in chosen}


#: The name a ``home_areas`` frame is registered under on a cursor (``flows``, ``flow_encounter_atoms``).
HOMES = "joinedup_child_homes"


def home_areas(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Every child's home area in each layer, from ``child_tables``'s tables (same children, same order):
    child_id, home_<layer>... Passed to ``flows`` and ``flow_encounter_atoms``, it spares them recomputing the
    homes from the records."""
    first = next(iter(tables.values()))
    out = pd.DataFrame({"child_id": first["child_id"]})
    for layer, table in tables.items():
        if not table["child_id"].equals(first["child_id"]):
            raise ValueError("child tables of different children")
        out[f"home_{_check_layer(layer, tuple(layers.REGISTRY))}"] = table["home_area"]
    return out


def _homes_sql(layer: str) -> str:
    """``_home_sql``'s rows read from a registered ``home_areas`` frame (``HOMES``)."""
    column = f"home_{_check_layer(layer, tuple(layers.REGISTRY))}"
    return f"SELECT child_id, {column} AS home_area FROM {HOMES} WHERE {column} IS NOT NULL"


def resident_homes(con: duckdb.DuckDBPyConnection, tables: Mapping[str, pd.DataFrame] | None = None
                   ) -> pd.DataFrame:
    """One row per linked child: ``child_id``, ``home_<layer>`` for every layer of ``RESIDENT_LAYERS`` (NA where
    it has none) and its home atom (``residents.ATOM``: the combination of them all). ``tables``:
    ``child_tables(con, RESIDENT_LAYERS)`` if already made (one query otherwise)."""
    tables = child_tables(con, RESIDENT_LAYERS) if tables is None else tables
    frame = home_areas({layer: tables[layer] for layer in RESIDENT_LAYERS})
    frame[residents.ATOM] = residents.atom_ids(frame, [f"home_{g}" for g in RESIDENT_LAYERS])
    return frame


def child_keys(con: duckdb.DuckDBPyConnection, children: pd.DataFrame, homes: pd.DataFrame | None = None,
               keys: dict | None = None) -> pd.DataFrame:
    """``children`` (with ``child_id``) plus ``rkey``, each child's record key for disclosure control (the keyed
    hash of lib.disclosure.members, the same key wherever the child is counted), and its home atom
    (``residents.ATOM``). ``homes``: ``resident_homes(con)`` if already computed, with ``rkey`` if already keyed.
    ``keys``: the store's key tables (``members.key_tables``), whose child keys are then looked up, not hashed."""
    homes = resident_homes(con) if homes is None else homes
    if "rkey" in homes.columns and children["child_id"].equals(homes["child_id"]):
        # child_tables' children, in its order (every layer's table is): no look-up by id (3.9 s of a 1M save)
        return children.assign(rkey=homes["rkey"].to_numpy("int64"),
                               **{residents.ATOM: homes[residents.ATOM].fillna(-1).to_numpy("int64")})
    by_child = homes.set_index("child_id")
    atom = children["child_id"].map(by_child[residents.ATOM]).fillna(-1).astype("int64")
    known = keys.get(CHILD_KEYS) if keys is not None and "rkey" not in by_child.columns else None
    at = None if known is None else pd.Index(known["child_id"].to_pandas()).get_indexer(children["child_id"])
    if "rkey" in by_child.columns:
        rkey = children["child_id"].map(by_child["rkey"]).astype("int64")
    elif at is not None and (at >= 0).all():  # the keys members.key_tables hashed (1.2 s of a 1M save to redo)
        rkey = known["rkey"].to_numpy().astype("int64")[at]
    else:
        rkey = np.array(keys_of(children["child_id"].astype("str").tolist(), store_secret(con), "child"),
                        dtype="int64")
    return children.assign(rkey=rkey, **{residents.ATOM: atom})


def _per_area(children: pd.DataFrame, layer: str, columns: dict[str, str],
              atoms: pd.DataFrame | None = None) -> pd.DataFrame:
    """Sum boolean child columns per home area, over every area of the layer (zeros where none). When
    ``children`` carries record keys and home atoms (``child_keys``) the counts are *published*: each the sum
    of its home atoms' perturbed counts (lib.disclosure.residents), never the exact count. ``atoms``:
    ``resident_atoms`` of these children when already computed (the same for every layer)."""
    needed = [c for c in dict.fromkeys(["home_area", "child_id", "rkey", residents.ATOM, *columns.values()])
              if c in children.columns]  # only these are read: the rest of a wide table is not copied
    placed = children.loc[children["home_area"].notna(), needed]
    if "rkey" in placed.columns:
        sums = residents.area_counts(placed, "home_area", {"children": None, **columns},
                                     atoms=atoms).set_index("home_area")
    else:
        sums = placed.groupby("home_area").agg(
            children=("child_id", "size"), **{out: (src, "sum") for out, src in columns.items()})
    areas = lookup.area_names(layer)
    table = pd.DataFrame({"area_code": areas["code"].astype("str"), "area_name": areas["name"].astype("str")})
    table = table.merge(sums, left_on="area_code", right_index=True, how="left")
    for column in sums.columns:
        table[column] = table[column].fillna(0).astype("int64")
    return table


def _share(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    return (numerator / denominator.where(denominator > 0)).astype("float64")


def spans_by_area(con: duckdb.DuckDBPyConnection, layer: str, children: pd.DataFrame | None = None,
                  atoms: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per area of ``layer`` (every area, zeros where no child lives there).

    Columns: ``area_code``, ``area_name``, ``children`` (linked children whose home area it is),
    ``multi_agency`` (of them, known to 2+ agency types), ``spans_pfa``, ``spans_utla``, ``spans_nhs``,
    ``spans_trust`` (of them, encountered in 2+ areas of that geography — ``nhs`` is the ICB in England and
    the health board in Wales), ``spans_any`` (any of the four), and ``share_<x>`` = ``<x>`` / children for
    each of those (NaN where no children). Unplaced children are in ``overview``, not here.
    ``children``: ``child_table(con, layer)`` when the caller already has it (it is not recomputed); ``atoms``:
    ``resident_atoms`` when the children are keyed and it is already computed.
    """
    _check_layer(layer)
    children = child_table(con, layer) if children is None else children
    counts = {"multi_agency": "multi_agency", **{f"spans_{g}": f"spans_{g}" for g in (*SPAN_LAYERS, "any")}}
    table = _per_area(children, layer, counts, atoms)
    for column in counts:
        table[column.replace("spans_", "share_") if column.startswith("spans_") else f"share_{column}"] = \
            _share(table[column], table["children"])
    return table


#: The name of the linked records with their keys that ``keyed_records`` makes on a cursor (read by ``flows``).
KEYED_RECORDS = "joinedup_keyed_records"


def keyed_records(cur, keys: dict, layer_list) -> str:
    """Make, on ``cur``, the linked records' encounter areas in every layer of ``layer_list`` with the record's key
    ``rkey`` and its child's ``ckey`` (a temporary table: the caller drops it, as ``view_frames`` does, or it goes
    with the cursor's connection or a transaction rolled back). Every layer's keyed ``flows`` then reads it
    (``records=``) instead of joining the records, the linkage and both key tables again (at 1,000,000 encounters
    seven flows took 2.6 s, 1.5 s so). Returns its name."""
    encs = ", ".join(f"e.enc_{layers.REGISTRY[_check_layer(k, tuple(layers.REGISTRY))].stored_key} AS enc_{k}"
                     for k in dict.fromkeys(layer_list))
    register(cur, keys)
    cur.execute(f"""CREATE OR REPLACE TEMP TABLE {KEYED_RECORDS} AS
        SELECT rc.child_id, {encs}, rk.rkey, ck.rkey AS ckey
        FROM encounters e JOIN record_child rc USING (record_key)
             JOIN {RECORD_KEYS} rk ON rk.record_key = e.record_key JOIN {CHILD_KEYS} ck ON ck.child_id = rc.child_id
        WHERE rc.child_id IS NOT NULL""")
    return KEYED_RECORDS


def flows(con: duckdb.DuckDBPyConnection, layer: str, top: int | None = 20, area: str | None = None,
          keys: dict | None = None, homes: pd.DataFrame | None = None, records: str | None = None) -> pd.DataFrame:
    """Where children resident in one area of ``layer`` are encountered in another.

    One row per (home area → encounter area) with the two different: ``from_code``, ``from_name``,
    ``to_code``, ``to_name``, ``children`` (distinct linked children resident in ``from`` with an
    encounter located in ``to``), ``encounters`` (those encounters), ``reverse_children`` and
    ``reverse_encounters`` (the same for ``to → from``, 0 if none), and ``flow`` ("A → B"). A→B and B→A are
    separate rows. Sorted by children, then encounters, then codes; ``top`` keeps the first rows
    (None: all); ``area`` keeps flows into or out of one area.
    ``keys``: the store's record and child keys (``lib.disclosure.members.key_tables``): each count ``x``
    then comes with its cell key ``key_x`` (children: sum of the children's keys; encounters: of the records'
    keys; modulo 256), the reverse columns with the keys of the reverse cell.
    ``homes``: ``home_areas`` of the children (with ``layer``) when the caller already has them. ``records``: with
    ``keys``, the table ``keyed_records`` made on ``con`` (a cursor) with ``layer``.
    """
    _check_layer(layer)
    _require_linkage(con)
    enc = f"enc_{layer}"
    where = "" if area is None else "WHERE from_code = ? OR to_code = ?"
    params: list = [] if area is None else [area, area]
    limit = ""
    if top is not None:
        limit = "LIMIT ?"
        params.append(int(top))
    keyed = keys is not None
    rkey = "rk.rkey" if keyed else "0"
    ckey = "ck.rkey" if keyed else "0"
    joins = (f"JOIN {RECORD_KEYS} rk ON rk.record_key = e.record_key "
             f"JOIN {CHILD_KEYS} ck ON ck.child_id = rc.child_id") if keyed else ""
    source, at = "encounters e JOIN record_child rc USING (record_key)", f"e.{enc}"
    if keyed and records is not None:  # the same rows, joined once for every layer (keyed_records)
        source, joins, rkey, ckey, at = f"{records} rc", "", "rc.rkey", "rc.ckey", f"rc.enc_{layer}"
    key_columns = (", m.key_children, m.key_encounters, coalesce(r.key_children, 0) AS key_reverse_children, "
                   "coalesce(r.key_encounters, 0) AS key_reverse_encounters") if keyed else ""
    sql = f"""
        WITH home AS ({_home_sql(layer) if homes is None else _homes_sql(layer)}),
        per_child AS (
            SELECT h.home_area AS from_code, {at} AS to_code, rc.child_id, any_value({ckey}) AS ckey,
                   count(*) AS n, sum({rkey}) AS rsum
            FROM {source} JOIN home h USING (child_id) {joins}
            WHERE {at} IS NOT NULL AND {at} <> h.home_area
            GROUP BY ALL),
        moves AS (
            SELECT from_code, to_code, count(*) AS children, sum(n) AS encounters,
                   sum(ckey) % {KEYS} AS key_children, sum(rsum) % {KEYS} AS key_encounters
            FROM per_child GROUP BY ALL),
        both_ways AS (
            SELECT m.from_code, m.to_code, m.children, m.encounters,
                   coalesce(r.children, 0) AS reverse_children, coalesce(r.encounters, 0) AS reverse_encounters
                   {key_columns}
            FROM moves m LEFT JOIN moves r ON r.from_code = m.to_code AND r.to_code = m.from_code)
        SELECT * FROM both_ways {where}
        ORDER BY children DESC, encounters DESC, from_code, to_code
        {limit}"""
    with cursor(con) as cur:
        if keyed:
            register(cur, keys)
        if homes is not None:
            cur.register(HOMES, homes)
        frame = cur.execute(sql, params).df()
    names = area_names(layer)
    frame.insert(1, "from_name", frame["from_code"].map(names).fillna(frame["from_code"]).astype("str"))
    frame.insert(3, "to_name", frame["to_code"].map(names).fillna(frame["to_code"]).astype("str"))
    frame["flow"] = (frame["from_name"] + " → " + frame["to_name"]).astype("str")
    for column in ("children", "encounters", "reverse_children", "reverse_encounters"):
        frame[column] = frame[column].astype("int64")
        if keyed:
            frame[f"key_{column}"] = frame[f"key_{column}"].astype("int64")
    return frame.reset_index(drop=True)


#: The layers whose home and encounter areas define the atoms of flow encounters (with the flow's own layer): the
#: measure layers of the layer registry (those of the measure cube, whose records lib.disclosure.service publishes
#: on atoms of the same layers), live, so a layer registered for measures is an atom layer too.
ATOM_LAYERS: Mapping[str, str] = layers.MEASURE_LAYERS


def atom_layers(layer: str) -> list[str]:
    """The layers whose areas define the atoms of published flow encounters: ``ATOM_LAYERS``, then every home
    layer (and ``layer``) not among them. The same for every layer, so flows of all layers are sums of one
    partition and one logical count (an ICB's flow, or the sum of its sub-ICB locations' flows) has one value
    (issue 16: atoms adding only the flow's own layer split sub-ICB flows differently from ICB flows)."""
    return list(dict.fromkeys([*ATOM_LAYERS, *HOME_LAYERS, layer]))


def published_flow_encounters(con: duckdb.DuckDBPyConnection, layer: str, keys: dict,
                              atoms: pd.DataFrame | None = None) -> pd.DataFrame:
    """Encounters of every flow of ``layer`` as published below the lead (docs/DISCLOSURE.md): records are
    additive, so they are perturbed once on atoms and summed. An atom is a distinct combination of the linked
    child's home area and the encounter's area in every layer of ``ATOM_LAYERS`` (and ``layer``): every flow of
    every layer (home A, encounter B) is a union of atoms, so a flow is the exact sum of its perturbed atoms and
    subtracting flows from one another yields at most perturbed atoms. Each atom is perturbed with the cell key of
    its records (``keys``: lib.disclosure.members.key_tables). Columns: from_code, to_code, encounters.
    ``atoms``: ``flow_encounter_atoms(con, atom_layers(layer), keys)`` when the caller already has them (every
    layer of ``ATOM_LAYERS`` has the same atoms)."""
    _check_layer(layer)
    atoms_of = atom_layers(layer)
    atoms = flow_encounter_atoms(con, atoms_of, keys) if atoms is None else atoms
    chosen = atoms_of.index(layer)
    moves = atoms[atoms[f"home{chosen}"].notna() & atoms[f"enc{chosen}"].notna()
                  & (atoms[f"home{chosen}"] != atoms[f"enc{chosen}"])]
    out = (moves.groupby([f"home{chosen}", f"enc{chosen}"], as_index=False)["encounters"].sum()
           .rename(columns={f"home{chosen}": "from_code", f"enc{chosen}": "to_code"}))
    out["from_code"] = out["from_code"].astype("str")
    out["to_code"] = out["to_code"].astype("str")
    out["encounters"] = out["encounters"].astype("int64")
    return out


def flow_encounter_atoms(con: duckdb.DuckDBPyConnection, atoms_of: list[str], keys: dict,
                         homes: pd.DataFrame | None = None) -> pd.DataFrame:
    """The atoms of published flow encounters over the layers ``atoms_of`` (``atom_layers(layer)``): home0...,
    enc0... (the linked child's home area and the encounter's area in each), n (records), cell_key and
    ``encounters`` (n perturbed with the cell key). ``homes``: ``home_areas`` of the children (with every layer
    of ``atoms_of``) when the caller already has them."""
    _require_linkage(con)
    if homes is None:
        ctes = "WITH " + ",\n".join(f"h{i} AS ({_home_sql(g)})" for i, g in enumerate(atoms_of))
        joins = " ".join(f"LEFT JOIN h{i} ON h{i}.child_id = rc.child_id" for i in range(len(atoms_of)))
        home = [f"h{i}.home_area" for i in range(len(atoms_of))]
    else:  # one row per child with every layer's home: one join, not one per layer (NULL where it has none)
        ctes, joins = "", f"LEFT JOIN {HOMES} h ON h.child_id = rc.child_id"
        home = [f"h.home_{_check_layer(g, tuple(layers.REGISTRY))}" for g in atoms_of]
    columns = ", ".join([*(f"{h} AS home{i}" for i, h in enumerate(home)),
                         *(f"e.enc_{layers.REGISTRY[g].stored_key} AS enc{i}" for i, g in enumerate(atoms_of))])
    with cursor(con) as cur:
        register(cur, keys)
        if homes is not None:
            cur.register(HOMES, homes)
        atoms = cur.execute(f"""
            {ctes}
            SELECT {columns}, count(*) AS n, CAST(sum(k.rkey) % {KEYS} AS INTEGER) AS cell_key
            FROM encounters e JOIN record_child rc USING (record_key)
                 JOIN {RECORD_KEYS} k ON k.record_key = e.record_key {joins}
            WHERE rc.child_id IS NOT NULL
            GROUP BY ALL""").df()
    atoms["encounters"] = perturb(atoms["n"].to_numpy("int64"), atoms["cell_key"].to_numpy("int64"))
    return atoms


def exact_match_reach(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per multi-agency linked child: ``child_id``, ``agencies`` and ``agencies_exact`` — the most agency
    types held by one group of the child's records joined (transitively) by a shared identifier (same valid
    NHS number, or same forename, surname and date of birth hashes). See the module docstring."""
    _require_linkage(con)
    # each shared identifier is a 64-bit hash of its text (a valid NHS number's hash; a name and date of birth's
    # three hashes), numbered per child in numpy below, not by DISTINCT and joins over 64-character texts (the
    # whole reach at 1M 1.9 -> 1.4 s, at 5M 11.0 -> 9.4 s). Two identifiers of one child would be taken as one only
    # if their 64-bit hashes collided (about 1 in 10^12 over all the children of a 5M store); children never share
    # a node.
    records = query(con, """
        WITH linked AS MATERIALIZED (
            SELECT rc.child_id, e.agency_type,
                   CASE WHEN e.nhs_status = 'valid' THEN hash(e.nhs_hash) END AS nhs,
                   CASE WHEN e.forename_hash IS NOT NULL AND e.surname_hash IS NOT NULL AND e.dob_hash IS NOT NULL
                        THEN hash(e.forename_hash, e.surname_hash, e.dob_hash) END AS name_dob
            FROM encounters e JOIN record_child rc USING (record_key)
            WHERE rc.child_id IS NOT NULL),
        multi AS (SELECT child_id FROM linked GROUP BY child_id HAVING count(DISTINCT agency_type) >= 2)
        SELECT l.* FROM linked l SEMI JOIN multi USING (child_id)""")
    if records.empty:
        return pd.DataFrame({"child_id": pd.Series(dtype="str"), "agencies": pd.Series(dtype="int64"),
                             "agencies_exact": pd.Series(dtype="int64")})
    n = len(records)
    child, child_ids = pd.factorize(records["child_id"], sort=True)  # grouped as integers, in the ids' order
    nhs = _identifier_nodes(child, records["nhs"])
    name = _identifier_nodes(child, records["name_dob"])
    offset = int(nhs.max()) + 1
    codes = np.concatenate([nhs, np.where(name >= 0, name + offset, -1)])
    rows = np.tile(np.arange(n), 2)
    has_key = codes >= 0
    size = n + int(codes.max()) + 1
    graph = coo_matrix((np.ones(int(has_key.sum())), (rows[has_key], n + codes[has_key])), shape=(size, size))
    _, labels = connected_components(graph, directed=False)
    agency = pd.factorize(records["agency_type"])[0]
    numbered = pd.DataFrame({"child": child, "group": labels[:n],
                             "agency": pd.Series(agency).where(agency >= 0)})  # a missing type counts as none
    per_group = numbered.groupby(["child", "group"])["agency"].nunique().groupby("child").max()
    agencies = numbered.groupby("child")["agency"].nunique()
    return pd.DataFrame({"child_id": pd.Index(child_ids[agencies.index.to_numpy()]).astype("str"),
                         "agencies": agencies.to_numpy("int64"),
                         "agencies_exact": per_group.reindex(agencies.index).to_numpy("int64")})


def _identifier_nodes(child: np.ndarray, hashes: pd.Series) -> np.ndarray:
    """A node number per record for its identifier's hash (``-1`` where it has none), the same for two records
    of one child with the same identifier and never shared between children (``exact_match_reach``'s graph)."""
    nodes = np.full(len(hashes), -1, dtype="int64")
    present = hashes.notna().to_numpy()
    if present.any():
        numbered = pd.factorize(hashes[present].to_numpy("uint64"))[0]
        nodes[present] = pd.factorize(child[present].astype("int64") * (int(numbered.max()) + 1) + numbered)[0]
    return nodes


def with_reach(children: pd.DataFrame, reach: pd.DataFrame) -> pd.DataFrame:
    """``children`` plus ``agencies_exact`` from ``exact_match_reach`` (NaN for a child that is not
    multi-agency): looked up once for every layer's table (the same children), not merged per measure."""
    # Arrow's hash look-up of the ids, not pandas' get_indexer (5M: 2.0 s in the stored build; session 23)
    at = pc.index_in(pa.array(children["child_id"], type=pa.string()),
                     value_set=pa.array(reach["child_id"], type=pa.string())).fill_null(-1).to_numpy()
    exact = reach["agencies_exact"].to_numpy("float64")
    return children.assign(agencies_exact=np.where(at >= 0, exact[np.maximum(at, 0)] if len(exact) else 0, np.nan))


def _missed(children: pd.DataFrame) -> pd.DataFrame:
    """``children`` (with ``agencies_exact``: ``with_reach``) plus the flags ``missed`` and ``partly_missed``."""
    exact = children["agencies_exact"].fillna(0)
    return children.assign(missed=children["multi_agency"] & (exact < 2),
                           partly_missed=children["multi_agency"] & (exact >= 2) & (exact < children["agencies"]))


#: The flags of a linked child that are counted per home area (Across's spans, missed and overview; Compare's
#: spanning children), published on home atoms (``resident_atoms``).
RESIDENT_FLAGS = ("multi_agency", *(f"spans_{g}" for g in (*SPAN_LAYERS, "any")), "missed", "partly_missed")


def resident_atoms(children: pd.DataFrame) -> pd.DataFrame:
    """Published counts per home atom of every child and of each of ``RESIDENT_FLAGS``
    (``residents.atom_table``), from any layer's keyed children (``child_keys``) with ``agencies_exact``
    (``with_reach``): the same for every layer, so computed once and passed to ``spans_by_area``,
    ``missed_without_linkage``, ``overview`` and ``compare.published_span`` as ``atoms``."""
    return residents.atom_table(_missed(children), RESIDENT_FLAGS)


def missed_without_linkage(con: duckdb.DuckDBPyConnection, layer: str, children: pd.DataFrame | None = None,
                           reach: pd.DataFrame | None = None, atoms: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per area of ``layer`` (every area): ``multi_agency`` (resident children known to 2+ agency types),
    ``missed`` (of them, no two agencies' records share an identifier even transitively: only probabilistic
    linkage joined them), ``share_missed`` (missed / multi_agency, NaN if none), ``partly_missed``
    (exact matching joins some of their agencies but not all). Definitions: module docstring.
    ``children``, ``reach``: ``child_table(con, layer)`` and ``exact_match_reach(con)`` if already computed
    (``children`` with ``agencies_exact`` already: ``with_reach``); ``atoms``: as for ``spans_by_area``."""
    _check_layer(layer)
    children = child_table(con, layer) if children is None else children
    if "agencies_exact" not in children.columns:
        children = with_reach(children, exact_match_reach(con) if reach is None else reach)
    table = _per_area(_missed(children), layer, {"multi_agency": "multi_agency", "missed": "missed",
                                                 "partly_missed": "partly_missed"}, atoms)
    table["share_missed"] = _share(table["missed"], table["multi_agency"])
    return table


def spanning_children(con: duckdb.DuckDBPyConnection, layer: str, area: str | None = None,
                      span: str = "any", limit: int | None = 500, children: pd.DataFrame | None = None
                      ) -> pd.DataFrame:
    """Children whose encounters span 2+ areas of ``span`` (a SPAN_LAYERS key or 'any'), optionally only
    those resident in ``area`` of ``layer``; most areas spanned first. Columns: child_id, home_area,
    home_name, records, agencies, cse_records, areas (the spanned count of the chosen geography, or
    the most of any), areas_<g>..., first_date, last_date. ``children``: ``child_table(con, layer)`` if
    already computed."""
    if span != "any":
        _check_layer(span, tuple(SPAN_LAYERS))
    children = child_table(con, layer) if children is None else children
    chosen = children[children[f"spans_{span}"]]
    if area is not None:
        chosen = chosen[chosen["home_area"] == area]
    chosen = chosen.assign(areas=chosen[[f"areas_{g}" for g in SPAN_LAYERS]].max(axis=1) if span == "any"
                           else chosen[f"areas_{span}"])
    chosen = chosen.sort_values(["areas", "agencies", "records", "child_id"], ascending=[False, False, False, True])
    if limit is not None:
        chosen = chosen.head(limit)
    names = area_names(layer)
    chosen.insert(2, "home_name", chosen["home_area"].map(names).fillna("(home not placed)").astype("str"))
    keep = ["child_id", "home_area", "home_name", "records", "agencies", "cse_records", "areas",
            *[f"areas_{g}" for g in SPAN_LAYERS], "first_date", "last_date"]
    return chosen[keep].reset_index(drop=True)


def record_totals(con: duckdb.DuckDBPyConnection, keys: dict | None = None) -> pd.Series:
    """The linked records' totals ``overview`` reports (the same for every layer): records, anonymous_records
    and, with ``keys``, their cell keys key_records, key_anonymous_records (0 without)."""
    keyed = keys is not None
    with cursor(con) as cur:
        if keyed:
            register(cur, keys)
        join = f"JOIN {RECORD_KEYS} rk ON rk.record_key = e.record_key" if keyed else ""
        rkey = "rk.rkey" if keyed else "0"
        return cur.execute(f"""SELECT count(*) AS records,
                                 count(*) FILTER (WHERE rc.child_id IS NULL) AS anonymous_records,
                                 coalesce(sum({rkey}), 0) % {KEYS} AS key_records,
                                 coalesce(sum({rkey}) FILTER (WHERE rc.child_id IS NULL), 0) % {KEYS}
                                     AS key_anonymous_records
                          FROM encounters e JOIN record_child rc USING (record_key) {join}""").df().iloc[0]


def overview(con: duckdb.DuckDBPyConnection, layer: str, children: pd.DataFrame | None = None,
             reach: pd.DataFrame | None = None, keys: dict | None = None,
             totals: pd.Series | None = None, atoms: pd.DataFrame | None = None) -> dict[str, int]:
    """National totals: records, anonymous_records, children, multi_agency, spans_<g> and spans_any,
    missed (multi-agency children only probabilistic linkage joined), unplaced (children with no home
    area in ``layer``). ``children``, ``reach``: as for ``missed_without_linkage``. ``keys``: the store's
    record keys (``lib.disclosure.members.key_tables``) with ``children`` carrying ``rkey`` (``child_keys``):
    the records totals ``x`` then come with their cell key ``key_x`` and the resident totals with their published
    value ``published_x`` (the sum of their home atoms' published counts). ``totals``: ``record_totals(con, keys)`` if
    already computed (with the keys when ``keys`` is given). ``atoms``: ``resident_atoms`` of the keyed children
    when already computed."""
    children = child_table(con, layer) if children is None else children
    reach = exact_match_reach(con) if reach is None else reach
    keyed = keys is not None and "rkey" in children.columns
    counts = record_totals(con, keys if keyed else None) if totals is None else totals
    missed = reach.loc[reach["agencies_exact"] < 2, ["child_id"]]
    out = {"records": int(counts["records"]), "anonymous_records": int(counts["anonymous_records"]),
           "children": int(len(children)), "multi_agency": int(children["multi_agency"].sum()),
           "missed": int(len(missed)),
           "unplaced": int(children["home_area"].isna().sum())}
    for g in (*SPAN_LAYERS, "any"):
        out[f"spans_{g}"] = int(children[f"spans_{g}"].sum())
    if keyed:
        out[key_column("records")] = int(counts["key_records"])
        out[key_column("anonymous_records")] = int(counts["key_anonymous_records"])
        resident = {name: None if name == "children" else name
                    for name in ("children", "multi_agency", "missed", "unplaced",
                                 *(f"spans_{g}" for g in (*SPAN_LAYERS, "any")))}
        # resident children: the sums of every home atom's published count (lib.disclosure.residents), so the
        # national figure is the sum of the areas' published figures and the unplaced one, as the tables show
        if atoms is None:
            members = children.assign(unplaced=children["home_area"].isna(),
                                      missed=children["child_id"].isin(missed["child_id"]))
            atoms = residents.atom_counts(members, resident)
        else:  # a child's "missed" here (reach below 2) is missed_without_linkage's; an atom is unplaced whole
            unplaced = atoms.index.isin(children.loc[children["home_area"].isna(), residents.ATOM])
            atoms = atoms.assign(unplaced=np.where(unplaced, atoms[residents.EVERY], 0))
        for name in resident:
            out[PUBLISHED_PREFIX + name] = int(atoms[name].sum())
    return out


def data_version(con: duckdb.DuckDBPyConnection) -> str:
    """The store's data version: one function for every page and cache (lib.records.store.data_version)."""
    return store.data_version(con)

