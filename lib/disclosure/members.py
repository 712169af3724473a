"""Record keys (0-255) of a store's records and linked children, as DuckDB relations to join in SQL.

A cell's key is then ``sum(rkey) % 256`` over its members (records for additive counts, distinct children for
counts of children), so the same members give the same key, hence the same noise, wherever the cell is produced.
Keys are the first byte of HMAC-SHA-256 under the store's secret (lib.disclosure.keys): unpredictable without it.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from lib.disclosure.keys import store_secret
from lib.records.pseudonymise import Hasher
from lib.records.store import cursor

RECORD_KEYS = "dc_record_keys"  # (record_key VARCHAR, rkey INTEGER)
CHILD_KEYS = "dc_child_keys"    # (child_id VARCHAR, rkey INTEGER)


def keys_of(ids: list[str], secret: bytes, domain: str) -> list[int]:
    """The record key of each id (same id, same secret, same domain -> same key; a missing id is keyed as
    "None")."""
    return list(Hasher(secret).first_bytes(domain, [str(i) for i in ids]))


#: How many of the known keys are recomputed before the rest are trusted (``_known_hold``): were they made under
#: another secret, all of them would match by chance with a probability of 256^-16.
SPOT_CHECKS = 16


def _keyed(ids: pa.Array, secret: bytes, domain: str, name: str, rkey: pa.Array | None = None) -> pa.Table:
    """The key table of ``ids`` (Arrow, as fetched): the id under ``name`` and its ``rkey``. ``rkey``: the keys
    already known, null where not (every id hashed without it): only the ids without one are hashed."""
    ids = ids.cast(pa.string())
    if rkey is None:
        rkey = pa.nulls(len(ids), pa.int32())
    rkey = rkey.cast(pa.int32())
    if rkey.null_count:
        values = rkey.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int32)
        where = np.flatnonzero(rkey.is_null().to_numpy(zero_copy_only=False))
        values[where] = keys_of(ids.take(pa.array(where)).to_pylist(), secret, domain)
        rkey = pa.array(values, pa.int32())
    return pa.table({name: ids, "rkey": rkey})


def _known_hold(known: pa.Table, secret: bytes, domain: str, name: str) -> bool:
    """Whether a key table made before holds this secret's keys: ``SPOT_CHECKS`` of its rows, spread through it,
    recomputed and equal (the secret is the store's for its life, lib.disclosure.keys; this guards against a
    table copied from another store)."""
    if not known.num_rows:
        return False
    rows = np.unique(np.linspace(0, known.num_rows - 1, min(SPOT_CHECKS, known.num_rows)).astype(np.int64))
    sample = known.take(pa.array(rows))
    return keys_of(sample.column(name).to_pylist(), secret, domain) == sample.column("rkey").to_pylist()


def known_hold(con, table: str, known: pa.Table | None) -> bool:
    """Whether a key table made before (``known``, of ``table``: ``RECORD_KEYS`` or ``CHILD_KEYS``) holds the keys of
    the store behind ``con`` (``_known_hold``): a stored measure published with it is then published as now."""
    domain, name = {RECORD_KEYS: ("record", "record_key"), CHILD_KEYS: ("child", "child_id")}[table]
    return known is not None and _known_hold(known, store_secret(con), domain, name)


#: The name a known key table is registered under while its keys are looked up (``key_tables``).
_KNOWN = "joinedup_known_keys"


def key_tables(con, *, children: bool = True, known: dict[str, pa.Table] | None = None) -> dict[str, pa.Table]:
    """The key relations of the store behind ``con``: ``{RECORD_KEYS: ...}`` and, when linked and ``children``,
    ``{CHILD_KEYS: ...}`` (Arrow tables; one pass over the ids, about 1 µs each). Memoise them per data version.
    ``known``: key tables made before on this store (the stored build's previous ones, by the same names; an id
    listed twice is looked up once): the ids they hold keep their keys, looked up in DuckDB (the values hashing
    gives them, checked on a sample: ``_known_hold``), and only the others are hashed (5,000,000 encounters:
    8.4-11.2 s hashed, 2.5-2.6 s looked up; session 17)."""
    known = known or {}
    secret = store_secret(con)
    out = {}
    with cursor(con) as cur:
        linked = children and bool(cur.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'record_child'").fetchall()[0][0])
        sources = {RECORD_KEYS: ("SELECT record_key FROM encounters", "record_key", "record")}
        if linked:
            sources[CHILD_KEYS] = ("SELECT DISTINCT child_id FROM record_child", "child_id", "child")
        for table, (sql, name, domain) in sources.items():
            prior = known.get(table)
            if prior is None or not _known_hold(prior, secret, domain, name):
                out[table] = _keyed(cur.sql(sql).to_arrow_table().column(0).combine_chunks(), secret, domain, name)
                continue
            cur.register(_KNOWN, prior)
            try:
                got = cur.sql(f"SELECT i.{name}, k.rkey FROM ({sql}) i LEFT JOIN (SELECT {name}, min(rkey) AS rkey "
                              f"FROM {_KNOWN} GROUP BY {name}) k USING ({name})"
                              ).to_arrow_table()
            finally:
                cur.unregister(_KNOWN)
            out[table] = _keyed(got.column(0).combine_chunks(), secret, domain, name, got.column(1).combine_chunks())
    return out


def register(cur, tables: dict[str, pa.Table]) -> None:
    """Make the key relations visible to SQL on ``cur`` (registrations are per DuckDB connection or cursor:
    register on the cursor that runs the query)."""
    for name, table in tables.items():
        cur.register(name, table)
