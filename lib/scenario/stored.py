"""The Scenario page's first result, kept in the store (issue 19: every page's first open in seconds).

The page and its view twin (``lib.views.scenario``) open on the simulation with no lever moved: today's recording
of a 20,000-encounter synthetic population linked by the product's linkage, the scenario (the same extract) and a
six-point curve. That takes 8-14 s on this machine and reads nothing of the store but its pseudonymisation key
(docs/PERFORMANCE.md), so it is computed once, inside a write's transaction with the other stored aggregates
(``lib.measures.aggregates.build_stored`` calls ``refresh``), and every session and the view twin read it.

Its fingerprint (meta ``aggregates.scenario``) is what the result depends on, and only that: this module's
``FORMAT``, the key (its ``key_check``, never the key), the request (levers, population, seed, layer, curve), the
geography (``lib.measures.aggregates.geography_version``) and the Splink and DuckDB releases. Not the records:
an upload, a linkage run or a reviewer decision leaves the simulation as it was, so a write whose fingerprint
still matches keeps the stored rows (no second simulation, nothing added to a decision's time); one whose
fingerprint changed (another key, a new release) simulates again in its transaction. ``read`` returns the stored
result only when its fingerprint matches the request and key asked for, else None (the caller simulates: slower,
never stale). Rows are ``agg_frames`` named ``scenario/...``: the result's JSON and its two tables as Arrow.
``JOINEDUP_STORED_SCENARIO=0`` switches the write-time simulation off (the test suite does: each test store has
its own random key, so each would pay a simulation; tests/test_scenario_stored.py switches it on).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from importlib import metadata
from pathlib import Path

import pandas as pd
import pyarrow as pa

from lib.measures import aggregates
from lib.records import store
from lib.records.default import DEFAULT_SEED
from lib.records.pseudonymise import key_check
from lib.records.versions import logical_path
from lib.scenario import scenario as sc
from lib.scenario.capture import Levers
from lib.synth.config import AGENCY_TYPES

#: Bumped whenever the simulation or the stored shape changes: a result stored by another release is not read.
FORMAT = "2"  # 2: with each agency's area codes (the page's levers start from the stored result)
PREFIX = "scenario/"
META = "aggregates.scenario"
ENV = "JOINEDUP_STORED_SCENARIO"
#: The request the page and the view open on (``lib.views.scenario.PARAMS`` takes its defaults from here).
ENCOUNTERS = 20_000
LAYER = "utla"
CURVE_MODE = "deterministic"
#: The result's tables, kept as Arrow (everything else is JSON).
TABLES = ("by_area", "curve")


def enabled() -> bool:
    """Whether writes keep the stored result (on unless ``JOINEDUP_STORED_SCENARIO=0``)."""
    return os.environ.get(ENV, "1").strip() not in ("0", "false", "no", "off")


def request(levers: Levers | None = None, *, n_encounters: int | None = None, seed: int = DEFAULT_SEED,
            layer: str | None = None, curve_agencies=AGENCY_TYPES, curve_mode: str | None = None) -> str:
    """A simulation request as one canonical text (the arguments of ``scenario.simulate_scenario``); without
    arguments, the one the page and the view open on (``ENCOUNTERS``, ``LAYER``, ``CURVE_MODE``, no lever moved)."""
    return json.dumps({"levers": (levers or Levers()).as_dict(), "n_encounters": int(n_encounters or ENCOUNTERS),
                       "seed": int(seed), "layer": layer or LAYER, "curve_agencies": list(curve_agencies),
                       "curve_mode": curve_mode or CURVE_MODE}, sort_keys=True)


def fingerprint(key: bytes, asked: str) -> str:
    """What a stored result of ``asked`` under ``key`` depends on (the module docstring says why not the records)."""
    text = ":".join([FORMAT, key_check(key), asked, aggregates.geography_version(), metadata.version("splink"),
                     metadata.version("duckdb")])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def simulate(key: bytes, asked: str) -> dict:
    """The simulation ``asked`` (a ``request`` text) from scratch: what is stored, and what ``read`` must equal."""
    args = json.loads(asked)
    return sc.simulate_scenario(Levers(**args["levers"]), key=key, n_encounters=args["n_encounters"],
                                seed=args["seed"], layer=args["layer"],
                                curve_agencies=tuple(args["curve_agencies"]), curve_mode=args["curve_mode"])


def _arrow(frame: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def payloads(result: dict) -> list[tuple[str, str, bytes]]:
    """The rows (name, kind, payload) a result is stored as: its JSON without the tables, and each table."""
    rest = {"order": list(result), "values": {k: v for k, v in result.items() if k not in TABLES}}
    rows = [(PREFIX + "result", "json", json.dumps(rest).encode())]
    for name in TABLES:
        if result.get(name) is not None:
            rows.append((PREFIX + name, "arrow", _arrow(result[name])))
    return rows


def from_payloads(rows) -> dict:
    """The result back from its stored rows (``payloads``'s inverse; keys in the order they were computed)."""
    parts = {name.removeprefix(PREFIX): (kind, bytes(payload)) for name, kind, payload in rows}
    rest = json.loads(parts.pop("result")[1].decode())
    values = rest["values"]
    for name in TABLES:
        values[name] = (pa.ipc.open_stream(pa.BufferReader(parts[name][1])).read_all().to_pandas()
                        if name in parts else None)
    return {k: values[k] for k in rest["order"]}


def _stored_fingerprint(cur) -> str | None:
    rows = cur.execute("SELECT value FROM meta WHERE name = ?", [META]).fetchall()
    return rows[0][0] if rows else None


def read(con, key: bytes, asked: str) -> dict | None:
    """The stored result of ``asked`` under ``key`` when the store holds it current, else None. One transaction:
    the fingerprint checked and the rows read see the same committed state."""
    with store.cursor(con) as cur, store.atomic(cur):
        tables = {r[0] for r in cur.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if not {"meta", "agg_frames"} <= tables or _stored_fingerprint(cur) != fingerprint(key, asked):
            return None
        rows = cur.execute("SELECT name, kind, payload FROM agg_frames WHERE starts_with(name, ?)",
                           [PREFIX]).fetchall()
    if not any(name == PREFIX + "result" for name, _, _ in rows):
        return None
    return from_payloads(rows)


def store_key(cur) -> bytes:
    """The key the view twin and the page simulate with for the store ``cur`` writes (``scenario_key`` of its
    logical path: a version file's store)."""
    rows = cur.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()
    path = rows[0][0] if rows and rows[0][0] else None
    return sc.scenario_key(None if path is None else logical_path(Path(path)))


def refresh(cur) -> bool:
    """Inside a write's transaction: store the default simulation unless the store holds it current (or ``enabled``
    is off); returns whether it simulated."""
    if not enabled():
        return False
    key = store_key(cur)
    asked = request()
    wanted = fingerprint(key, asked)
    held = cur.execute("SELECT count(*) FROM agg_frames WHERE name = ?", [PREFIX + "result"]).fetchall()[0][0]
    if held and _stored_fingerprint(cur) == wanted:
        return False
    rows = payloads(simulate(key, asked))
    cur.execute("DELETE FROM agg_frames WHERE starts_with(name, ?)", [PREFIX])
    cur.executemany("INSERT INTO agg_frames VALUES (?, ?, ?)", rows)
    cur.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [META, wanted])
    return True


aggregates.register_stored_result(PREFIX, refresh)
