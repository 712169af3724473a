"""Bring a linkage computed elsewhere (e.g. a Spark cluster) back into the store, from Parquet.

A cluster job reads ``encounters.parquet`` (from `store.export_parquet`: pseudonymised features only),
links it (`LinkConfig(backend="spark")` or its own pipeline) and writes ``record_child.parquet`` and,
optionally, ``link_edges.parquet`` with the columns of docs/CONTRACTS.md. `import_linkage` checks them
against the store and replaces the store's linkage tables in one transaction, so measures and pages then
read the cluster's children as if they had been linked here.
"""
from __future__ import annotations

import json
from pathlib import Path

import duckdb

from lib.records import aggregates, tables
from lib.records.store import atomic, cursor, rebuilt_beside

RECORD_CHILD_COLUMNS = ["record_key", "child_id", "node_id", "link_method", "best_match_probability", "by_nhs",
                        "nhs_conflict", "shared_number_suspected"]
LINK_EDGE_COLUMNS = ["node_l", "node_r", "record_key_l", "record_key_r", "match_weight", "match_probability",
                     "status"]


class LinkageImportError(ValueError):
    """The files do not fit the store (missing columns, unknown or missing record keys)."""


def _path(folder_or_file: Path, name: str) -> Path | None:
    p = Path(folder_or_file)
    if p.is_dir():
        p = p / f"{name}.parquet"
    return p if p.exists() else None


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def import_linkage(con: duckdb.DuckDBPyConnection, source: str | Path, *, edges: str | Path | None = None) -> dict:
    """Replace record_child (and link_edges, when given or found beside it) from Parquet; returns a summary.

    `source`: a folder holding record_child.parquet (and optionally link_edges.parquet), or the
    record_child file itself. Every stored encounter must have exactly one row, and no other key may appear."""
    record_child = _path(source, "record_child")
    if record_child is None:
        raise LinkageImportError(f"no record_child.parquet at {source}")
    edge_file = Path(edges) if edges else (_path(source, "link_edges") if Path(source).is_dir() else None)
    with cursor(con) as cur:
        tables.create(cur, tables.LINKAGE_TABLES)
        columns = [r[0] for r in cur.execute("SELECT name FROM parquet_schema(?) WHERE name <> 'schema'",
                                             [str(record_child)]).fetchall()]
        missing = [c for c in RECORD_CHILD_COLUMNS if c not in columns]
        if missing:
            raise LinkageImportError(f"record_child.parquet lacks columns {missing}")
        cur.execute(f"CREATE OR REPLACE TEMP VIEW incoming AS SELECT * FROM read_parquet({_literal(record_child)})")
        checks = cur.execute("""SELECT
              (SELECT count(*) FROM incoming),
              (SELECT count(*) - count(DISTINCT record_key) FROM incoming),
              (SELECT count(*) FROM incoming ANTI JOIN encounters USING (record_key)),
              (SELECT count(*) FROM encounters ANTI JOIN incoming USING (record_key))""").fetchall()[0]
        rows, duplicated, unknown, uncovered = (int(v) for v in checks)
        if duplicated or unknown or uncovered:
            raise LinkageImportError(f"record_child does not fit the store: {duplicated} duplicated keys, "
                                     f"{unknown} keys "
                               f"not in encounters, {uncovered} stored encounters without a row")
        edge_columns = []
        if edge_file is not None:
            edge_columns = [r[0] for r in cur.execute("SELECT name FROM parquet_schema(?) WHERE name <> 'schema'",
                                                      [str(edge_file)]).fetchall()]
            missing = [c for c in LINK_EDGE_COLUMNS if c not in edge_columns]
            if missing:
                raise LinkageImportError(f"link_edges.parquet lacks columns {missing}")
        incoming = f"SELECT {', '.join(RECORD_CHILD_COLUMNS)} FROM read_parquet({_literal(record_child)})"
        # on this cursor: the temporary view `incoming` lives on it; the Across measures are built beside it
        with rebuilt_beside(con, incoming) as beside, atomic(cur):
            cur.execute(f"CREATE OR REPLACE TABLE record_child AS SELECT {', '.join(RECORD_CHILD_COLUMNS)} "
                        "FROM incoming ORDER BY record_key")
            edge_rows = None
            if edge_file is not None:
                keep = LINK_EDGE_COLUMNS + [c for c in edge_columns if c.startswith(("mw_", "gamma_"))]
                cur.execute(f"CREATE OR REPLACE TABLE link_edges AS SELECT {', '.join(keep)} "
                            f"FROM read_parquet({_literal(edge_file)})")
                edge_rows = int(cur.execute("SELECT count(*) FROM link_edges").fetchall()[0][0])
            children = int(cur.execute("SELECT count(DISTINCT child_id) FROM record_child").fetchall()[0][0])
            summary = {"records": rows, "children": children, "link_edges": edge_rows,
                       "imported_from": str(record_child)}
            run_id = cur.execute("SELECT coalesce(max(run_id), 0) + 1 FROM linkage_runs").fetchall()[0][0]
            cur.execute("INSERT INTO linkage_runs VALUES (?, now(), 0, ?, ?, ?, ?, ?)",
                        [run_id, rows, children, json.dumps({"backend": "imported", "source": str(record_child)}),
                         json.dumps(summary), json.dumps({})])
            # record_child replaced whole: every aggregate, in this transaction
            aggregates.refresh(cur, full=True, beside=beside)
        summary["run_id"] = int(run_id)  # the audit row names it (lib.access.audit.cross_check)
        return summary
