"""Link encounter records into children: NHS number first, Splink for the rest, reviewers last.

The stages, as Splink names them (`linker.training / .inference / .clustering`), each in its own module:
1. lib.linkage.inference.deterministic_pass: records sharing a valid NHS number are one child, unless a
   record's name and date of birth flatly contradict the number's usual identity; such a record is flagged
   as a possible shared or wrong number and goes to the next pass on its own, without the number.
2. lib.linkage.training (the model in lib.linkage.model, trained by EM on this data) and
   lib.linkage.inference.probabilistic_pass: Splink over one representative per NHS-number group (its most
   common value of each feature) and every record without a trustworthy number. Two groups with different
   valid NHS numbers are never linked.
3. lib.linkage.clustering: connected components of NHS groups, model links at or above the match threshold,
   and reviewers' decisions: an accepted pair is linked, a rejected pair's link is dropped. Links in the
   review band below the threshold are queued for review.
This module runs them in order on a store (`link`) and saves the outcome in one transaction.
Anonymous contacts (no identifier at all) are counted, never linked: their child_id is NULL.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, replace

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lib.linkage import clustering, model
from lib.linkage.clustering import cluster
from lib.linkage.config import LinkConfig, Progress, memory_limit, noop
from lib.linkage.inference import (
    RECORD_COLUMNS,
    capped_review_floor,
    deterministic_pass,
    probabilistic_pass,
    trained_review_floor,
)
from lib.records import aggregates, tables
from lib.records.store import cursor, rebuilt_beside, transaction

__all__ = ["RECORD_COLUMNS", "LinkConfig", "cluster", "deterministic_pass", "ensure_tables", "link",
           "multi_agency_children", "probabilistic_pass", "record_decision", "cluster_with_floor"]

DDL = list(tables.LINKAGE_TABLES.values())  # defined with every other table in lib.records.tables

#: One linkage run at a time per process. Re-entrant: a linkage run's transaction may run the Scenario's default
#: simulation (lib.scenario.stored), which links its own in-memory store in the same thread.
_LINK_LOCK = threading.RLock()


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    with cursor(con) as cur:
        tables.create(cur, tables.LINKAGE_TABLES)


def link(con: duckdb.DuckDBPyConnection, config: LinkConfig = LinkConfig(),  # noqa: B008 (frozen)
         progress: Progress = noop) -> dict:
    """Run all passes on the store and replace its linkage tables in one transaction; returns a summary.
    One run at a time per process (a second caller waits), so two sessions cannot race on the tables."""
    with _LINK_LOCK:
        return _link(con, config, progress)


def _link(con: duckdb.DuckDBPyConnection, config: LinkConfig, progress: Progress) -> dict:
    """Linking with the store's DuckDB memory limit lowered to the linkage's (restored afterwards), so a
    national extract spills to disk instead of exhausting memory."""
    with cursor(con) as cur:
        before = cur.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        cur.execute(f"SET memory_limit = '{memory_limit(config)}'")
    try:
        return _link_passes(con, config, progress)
    finally:
        with cursor(con) as cur:
            cur.execute(f"SET memory_limit = '{before}'")


def _link_passes(con: duckdb.DuckDBPyConnection, config: LinkConfig, progress: Progress) -> dict:
    started = time.perf_counter()
    started_at = pd.Timestamp.now(tz="UTC").tz_localize(None)
    aggregates.prepare()  # the save's geography, loaded on a thread of its own while this links
    ensure_tables(con)
    progress(0.05, "Deterministic pass: valid NHS numbers")
    nodes, record_nodes = deterministic_pass(con)
    edges = pd.DataFrame(columns=["unique_id_l", "unique_id_r", "match_weight", "match_probability"])
    model_json, probabilistic = {}, "ran"
    if len(nodes) < 2 or nodes["has_nhs"].all():
        probabilistic = "skipped: every group already carries a valid NHS number"
    else:
        try:
            edges, model_json = probabilistic_pass(nodes, config, progress)
        except model.TrainingError as exc:  # the NHS-number pass stands alone, and the summary says so
            probabilistic = f"skipped: {exc}"
    progress(0.85, "Clustering and applying reviewers' decisions")
    config, cluster_of, edges = cluster_with_floor(nodes, edges, clustering.decisions(con), record_nodes, config)

    out, edges = clustering.outcomes(con, record_nodes, cluster_of, edges)
    summary = _summary(out, nodes, edges, config, probabilistic)
    # the save's stored build (every cube and page measure) needs none of the link's frames: let them go before it
    # (at 5,000,000 encounters the nodes, their Bloom filters and the record map held gigabytes through the save)
    del nodes, record_nodes, cluster_of
    progress(0.95, "Saving")
    frames = {"out": out.drop_columns(["agencies"]), "edges": edges}
    del out, edges
    run_id = _save(con, frames, summary, config, model_json, started_at, started)
    summary["run_id"] = run_id  # linkage_runs.run_id: the audit row names it (lib.access.audit.cross_check)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    progress(1.0, f"Linked {summary['records']:,} records into {summary['children']:,} children")
    return summary


def cluster_with_floor(nodes: pd.DataFrame, edges: pd.DataFrame, decisions: pd.DataFrame,
                       record_nodes: pd.DataFrame, config: LinkConfig) -> tuple[LinkConfig, pd.Series, pd.DataFrame]:
    """`cluster` with the review band's floor set: (the config with its floor, cluster id per node, the edges at or
    above the floor with their status). A floor given in the config is kept. Else it is trained from this run's
    scored pairs (lib.linkage.inference.trained_review_floor) and, where the pairs clustering queues for review
    are more than `config.review_cap_per_100k` per 100,000 named records (`record_nodes`), raised until they are
    not (`capped_review_floor`). The floor is recorded in the run's config, so the saved run says which floor
    made its queue. Links below the threshold never join clusters, so the floor changes only the queue."""
    if config.review_floor is not None:
        edges = edges[edges["match_probability"] >= config.review_floor].reset_index(drop=True)
        return (config, *cluster(nodes, edges, decisions, record_nodes, config))
    probability = edges["match_probability"].to_numpy(dtype=float)
    config = replace(config, review_floor=trained_review_floor(probability, config.match_threshold,
                                                               config.review_floor_lowest))
    edges = edges[edges["match_probability"] >= config.review_floor].reset_index(drop=True)
    cluster_of, edges = cluster(nodes, edges, decisions, record_nodes, config)
    if config.review_cap_per_100k is not None:
        queued = edges.loc[edges["status"] == "review", "match_probability"]
        cap = config.review_cap_per_100k * len(record_nodes) / 100_000
        floor = capped_review_floor(queued, config.review_floor, config.match_threshold, cap)
        if floor > config.review_floor:
            config = replace(config, review_floor=floor)
            below = edges["status"].isin(["review", "already joined"]) & (edges["match_probability"] < floor)
            edges = edges[~below].reset_index(drop=True)
    return config, cluster_of, edges


def _summary(out: pa.Table, nodes: pd.DataFrame, edges: pa.Table, config: LinkConfig, probabilistic: str) -> dict:
    """The run's counts, from ``clustering.outcomes``' Arrow tables (a record's ``agencies``: its child's agency
    types)."""
    named = out.filter(pc.is_valid(out["child_id"]))
    counted = pc.value_counts(edges["status"])
    statuses = dict(zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True))

    def distinct_children(table: pa.Table) -> int:
        return int(pc.count_distinct(table["child_id"]).as_py())

    return {
        "records": out.num_rows,
        "anonymous_records": out.num_rows - named.num_rows,
        "nodes": len(nodes),
        "children": distinct_children(named),
        "linked_by_nhs_number": int(pc.sum(named["by_nhs"].cast(pa.int64())).as_py() or 0),
        "nhs_conflicts_flagged": int(pc.sum(named["nhs_conflict"].cast(pa.int64())).as_py() or 0),
        "model_links": statuses.get("linked", 0),
        "review_queue": statuses.get("review", 0),
        "kept_apart": sum(n for status, n in statuses.items() if status.startswith("kept apart")),
        "reviewer_accepted": statuses.get("accepted by reviewer", 0),
        "reviewer_rejected": statuses.get("rejected by reviewer", 0),
        "multi_agency_children": distinct_children(named.filter(pc.greater_equal(named["agencies"], 2))),
        "match_threshold": config.match_threshold,
        "review_floor": config.review_floor,
        "probabilistic_pass": probabilistic,
    }


def multi_agency_children(frame: pd.DataFrame, child: str = "child_id") -> int:
    """Children whose records come from two or more agency types."""
    known = frame.dropna(subset=[child])
    return int((known.groupby(child)["agency_type"].nunique() >= 2).sum())


def _save(con, frames: dict, summary, config, model_json, started_at, started) -> int:
    """Write the run (``frames``: "out", the record map, and "edges", emptied once stored) and every aggregate, in
    one transaction."""
    # the Across measures are built beside the transaction, on a cursor that reads this run's record map
    with rebuilt_beside(con, frames["out"]) as beside:
        return _save_in_transaction(con, frames, summary, config, model_json, started_at, started, beside)


def _save_in_transaction(con, frames: dict, summary, config, model_json, started_at, started, beside) -> int:
    out, edges = frames.pop("out"), frames.pop("edges")
    with transaction(con) as cur:
        # handed to DuckDB as Arrow tables (as clustering.outcomes made them): DuckDB reads Arrow's buffers where it
        # converts a pandas frame value by value (1M: 1.9 -> 1.0 s for both tables, the same tables)
        cur.register("out_frame", out)
        detail = [c for c in edges.column_names if c.startswith(("mw_", "gamma_"))]  # explain.py reads both
        cur.register("edge_frame", edges.select(["node_l", "node_r", "record_key_l", "record_key_r",
                                                 "match_weight", "match_probability", "status", *detail]))
        cur.execute("CREATE OR REPLACE TABLE record_child AS SELECT * FROM out_frame")
        cur.execute("CREATE OR REPLACE TABLE link_edges AS SELECT * FROM edge_frame")
        run_id = cur.execute("SELECT coalesce(max(run_id), 0) + 1 FROM linkage_runs").fetchall()[0][0]
        cur.execute("INSERT INTO linkage_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [run_id, started_at.to_pydatetime(), time.perf_counter() - started, summary["records"],
                     summary["children"], json.dumps(asdict(config)), json.dumps(summary), json.dumps(model_json)])
        cur.unregister("out_frame")
        cur.unregister("edge_frame")
        del out, edges  # stored: not held here through the stored build below (the cursor beside reads the map)
        # record_child replaced whole: every aggregate, in this transaction
        aggregates.refresh(cur, full=True, beside=beside)
    return int(run_id)


def record_decision(con: duckdb.DuckDBPyConnection, record_key_l: str, record_key_r: str, decision: str,
                    reviewer: str) -> None:
    """Store a reviewer's accept/reject for a pair; the next linkage run respects it."""
    if decision not in ("accept", "reject"):
        raise ValueError("decision must be 'accept' or 'reject'")
    ensure_tables(con)
    with transaction(con) as cur:  # the decision and the aggregates of its records' areas, together
        was_current = aggregates.current(cur)
        cur.execute("INSERT INTO review_decisions VALUES (?, ?, ?, ?, now())",
                    [record_key_l, record_key_r, decision, reviewer])
        aggregates.refresh(cur, record_keys=[record_key_l, record_key_r], was_current=was_current)
