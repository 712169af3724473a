"""Record keys (0-255) of a store's records and linked children, as DuckDB relations to join in SQL.

A cell's key is then ``sum(rkey) % 256`` over its members (records for additive counts, distinct children for
counts of children), so the same members give the same key, hence the same noise, wherever the cell is produced.
Keys are the first byte of HMAC-SHA-256 under the store's secret (lib.disclosure.keys): unpredictable without it.
"""
from __future__ import annotations

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


def _keyed(ids: pa.Array, secret: bytes, domain: str, name: str) -> pa.Table:
    """The key table of ``ids`` (Arrow, as fetched): the id under ``name`` and its ``rkey``."""
    return pa.table({name: ids.cast(pa.string()), "rkey": pa.array(keys_of(ids.to_pylist(), secret, domain),
                                                                   pa.int32())})


def key_tables(con, *, children: bool = True) -> dict[str, pa.Table]:
    """The key relations of the store behind ``con``: ``{RECORD_KEYS: ...}`` and, when linked and ``children``,
    ``{CHILD_KEYS: ...}`` (Arrow tables; one pass over the ids, about 1 µs each). Memoise them per data version."""
    secret = store_secret(con)
    with cursor(con) as cur:
        ids = cur.sql("SELECT record_key FROM encounters").to_arrow_table().column(0).combine_chunks()
        linked = children and bool(cur.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'record_child'").fetchall()[0][0])
        kids = (cur.sql("SELECT DISTINCT child_id FROM record_child").to_arrow_table().column(0)
                .combine_chunks() if linked else None)
    out = {RECORD_KEYS: _keyed(ids, secret, "record", "record_key")}
    if linked:
        out[CHILD_KEYS] = _keyed(kids, secret, "child", "child_id")
    return out


def register(cur, tables: dict[str, pa.Table]) -> None:
    """Make the key relations visible to SQL on ``cur`` (registrations are per DuckDB connection or cursor:
    register on the cursor that runs the query)."""
    for name, table in tables.items():
        cur.register(name, table)
