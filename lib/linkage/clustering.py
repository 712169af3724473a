"""Clustering stage (Splink's `linker.clustering`): children from linked nodes, under reviewers' decisions.

Connected components of the joining links: NHS-number nodes, model links at or above the match threshold and
pairs a reviewer accepted; a pair a reviewer rejected is never joined. Where a component would hold two
different valid NHS numbers, or a rejected pair, however indirect the chain (N1 – record – N2), it is
re-done by constrained agglomeration: reviewers' accepted pairs first, then model links from the most to the
least probable, each union refused if it would break a rule. Splink's connected components cannot express
such cannot-link rules. Links in the review band below the threshold are queued for review.
"""
from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from lib.linkage.config import LinkConfig
from lib.records.store import cursor


def decisions(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Each reviewed pair's latest decision (record_key_l, record_key_r, decision)."""
    with cursor(con) as cur:
        return cur.execute("""SELECT record_key_l, record_key_r, decision FROM (
            SELECT *, row_number() OVER (PARTITION BY least(record_key_l, record_key_r),
                                                      greatest(record_key_l, record_key_r)
                                         ORDER BY decided_at DESC) AS latest FROM review_decisions)
            WHERE latest = 1""").df()


def _pair_key(a: pd.Series, b: pd.Series) -> pd.Series:
    return np.minimum(a, b) + "\u0000" + np.maximum(a, b)


class _ConstrainedUnion:
    """Union-find over node positions that refuses a union joining two NHS numbers or a rejected pair."""

    def __init__(self, numbered: list[bool], rejected_positions: list[tuple[int, int]]):
        self.parent = list(range(len(numbered)))
        self.numbered = list(numbered)
        self.apart: dict[int, set[int]] = {}  # root -> nodes that may never join its cluster
        for a, b in rejected_positions:
            self.apart.setdefault(a, set()).add(b)
            self.apart.setdefault(b, set()).add(a)

    def find(self, i: int) -> int:
        parent = self.parent
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    def union(self, a: int, b: int) -> str:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return "joined"
        if self.numbered[ra] and self.numbered[rb]:
            return "kept apart (two NHS numbers)"
        apart = self.apart
        if any(self.find(x) == rb for x in apart.get(ra, ())) or any(self.find(x) == ra for x in apart.get(rb, ())):
            return "kept apart (reviewer)"
        self.parent[rb] = ra
        self.numbered[ra] = self.numbered[ra] or self.numbered[rb]
        if rb in apart:
            apart.setdefault(ra, set()).update(apart.pop(rb))
        return "joined"


def _decided_pairs(decided: pd.DataFrame, record_nodes: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(accepted, rejected) reviewer decisions as pairs of two different nodes (node_l, node_r). The record → node
    index is built only where there is a decision to look up (1M: 0.1 s for none)."""
    if decided.empty:
        none = decided.assign(node_l=pd.Series(dtype=object), node_r=pd.Series(dtype=object))
        return none, none
    node_of = record_nodes.set_index("record_key")["node_id"]
    decided = decided.assign(node_l=decided["record_key_l"].map(node_of),
                             node_r=decided["record_key_r"].map(node_of)).dropna(subset=["node_l", "node_r"])
    decided = decided[decided["node_l"] != decided["node_r"]]
    return decided[decided["decision"] == "accept"], decided[decided["decision"] == "reject"]


def _positions(ids: np.ndarray, *columns: pd.Series) -> list[np.ndarray]:
    """Each column's values' positions in `ids` (-1 where absent), by Arrow's hash look-up: pandas' `get_indexer`
    over a million text ids took seconds at 1M. The columns are looked up together, so `ids` is hashed once (a
    look-up per column hashed all of them again: at 1M, 0.17 s each), and not at all when every column is empty."""
    sizes = [len(column) for column in columns]
    if not sum(sizes):
        return [np.zeros(0, dtype=np.int64) for _ in columns]
    values = pa.chunked_array([pa.array(column, type=pa.string()) for column in columns], type=pa.string())
    found = pc.index_in(values, value_set=pa.array(ids, type=pa.string()))
    return np.split(found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64), np.cumsum(sizes)[:-1])


def _pair_codes(left: np.ndarray, right: np.ndarray, n: int) -> np.ndarray:
    """One integer per unordered pair of node positions (n nodes: below n², within int64 up to 3 billion nodes)."""
    return np.minimum(left, right) * n + np.maximum(left, right)


def _with_accepted(edges: pd.DataFrame, accepted: pd.DataFrame, left: np.ndarray, right: np.ndarray,
                   wanted_l: np.ndarray, wanted_r: np.ndarray, n: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(edges plus an unscored edge for each accepted pair the model did not score, and each edge's left and
    right node positions among the `n` nodes). `left`, `right`: the edges' positions; `wanted_l`, `wanted_r`: the
    accepted pairs'."""
    if len(accepted):
        missing = ~np.isin(_pair_codes(wanted_l, wanted_r, n), _pair_codes(left, right, n))
        if missing.any():
            edges = pd.concat([edges, pd.DataFrame({
                "unique_id_l": accepted["node_l"].to_numpy()[missing],
                "unique_id_r": accepted["node_r"].to_numpy()[missing],
                "match_weight": np.nan, "match_probability": np.nan})], ignore_index=True)
            left, right = np.concatenate([left, wanted_l[missing]]), np.concatenate([right, wanted_r[missing]])
    return edges.copy(), left, right


def _components(ids: np.ndarray, numbered: list[bool], left: np.ndarray, right: np.ndarray, priority,
                candidate: np.ndarray, status: np.ndarray, rejected: list[tuple[int, int]]) -> np.ndarray:
    """A cluster label per node; refused joins get their status in `status` (changed in place).

    Fast path: plain connected components of the candidate links. Only components that would hold two NHS
    numbers or a rejected pair (rare) are re-done edge by edge under the constraints, in the order of
    `priority(rows)` (np.lexsort keys of those edges, last key first)."""
    graph = coo_matrix((np.ones(int(candidate.sum())), (left[candidate], right[candidate])),
                       shape=(len(ids), len(ids)))
    _, component = connected_components(graph, directed=False)
    numbered_count = np.bincount(component, weights=np.asarray(numbered, dtype=float), minlength=component.max() + 1)
    troubled = numbered_count > 1
    for a, b in rejected:
        if component[a] == component[b]:
            troubled[component[a]] = True
    labels = component.copy()
    redo = np.flatnonzero(candidate & troubled[component[np.maximum(left, 0)]])
    if len(redo):
        constrained = _ConstrainedUnion(numbered, rejected)
        for i in redo[np.lexsort(priority(redo))]:
            outcome = constrained.union(left[i], right[i])
            if outcome != "joined":
                status[i] = outcome
        members = np.flatnonzero(troubled[component])
        offset = component.max() + 1  # fresh labels for the re-done components
        labels[members] = offset + np.array([constrained.find(int(m)) for m in members])
    return labels


def cluster(nodes: pd.DataFrame, edges: pd.DataFrame, decisions: pd.DataFrame, record_nodes: pd.DataFrame,
            config: LinkConfig) -> tuple[pd.Series, pd.DataFrame]:
    """(cluster id per node, the edges with their status).

    Statuses: linked, accepted by reviewer, rejected by reviewer, kept apart (two NHS numbers), kept apart
    (reviewer), review (in the review band, joining two different children), already joined (in the band,
    but the two sides are one child through other links: nothing to review).
    """
    ids = nodes["unique_id"].to_numpy(dtype=object)
    if len(ids) == 0:
        return pd.Series([], dtype=object, name="cluster_id"), edges.assign(status=pd.Series(dtype=object))
    numbered = [bool(v) for v in nodes["has_nhs"].to_numpy()]
    accepted, rejected = _decided_pairs(decisions, record_nodes)
    # the edges' and both kinds of decided pairs' node positions in one look-up: the node ids are hashed once
    left, right, accepted_l, accepted_r, rejected_l, rejected_r = _positions(
        ids, edges["unique_id_l"], edges["unique_id_r"], accepted["node_l"], accepted["node_r"],
        rejected["node_l"], rejected["node_r"])
    rejected_positions = list(zip(rejected_l.tolist(), rejected_r.tolist()))

    edges, left, right = _with_accepted(edges, accepted, left, right, accepted_l, accepted_r, len(ids))
    codes = _pair_codes(left, right, len(ids))

    def decided(pair_l: np.ndarray, pair_r: np.ndarray) -> np.ndarray:
        if not len(pair_l):
            return np.zeros(len(edges), dtype=bool)
        return np.isin(codes, _pair_codes(pair_l, pair_r, len(ids)))

    is_accepted, is_rejected = decided(accepted_l, accepted_r), decided(rejected_l, rejected_r)
    probability = edges["match_probability"].fillna(1.0).to_numpy()
    candidate = ~is_rejected & (is_accepted | (probability >= config.match_threshold))
    status = np.full(len(edges), "review", dtype=object)
    status[is_rejected] = "rejected by reviewer"
    status[candidate] = np.where(is_accepted[candidate], "accepted by reviewer", "linked")

    # Constrained joins: reviewers' accepted pairs first, then the most probable links, ties by pair key (the
    # text key built only for the edges re-done: they are few).
    def priority(rows: np.ndarray) -> tuple:
        keys = _pair_key(edges["unique_id_l"].iloc[rows], edges["unique_id_r"].iloc[rows]).to_numpy()
        return keys, -probability[rows], ~is_accepted[rows]

    labels = _components(ids, numbered, left, right, priority, candidate, status, rejected_positions)
    in_band = status == "review"
    status[in_band & (labels[left] == labels[right])] = "already joined"
    edges["status"] = status
    # A cluster is named after one of its nodes (the first in node order), as Splink's clustering does.
    first = pd.Series(np.arange(len(ids))).groupby(labels).transform("min").to_numpy()
    return pd.Series(ids[first], index=ids, name="cluster_id"), edges


def outcomes(store: duckdb.DuckDBPyConnection, record_nodes: pd.DataFrame, cluster_of: pd.Series,
              edges: pd.DataFrame) -> tuple[pa.Table, pa.Table]:
    """(one outcome row per record, the edges with a record key on each side), in DuckDB: at a million
    records the same joins and group-bys over string keys take tens of seconds in pandas. Both as Arrow tables:
    the save hands them back to DuckDB and the run's summary counts them with Arrow, so neither becomes a pandas
    frame (1M: 0.5 s of text columns made Python-side and back). The edges' ids, probabilities and status are
    typed as text and doubles even when there are none (no scored pair: a pandas column without a value would
    otherwise be stored with DuckDB's NULL type).

    A child id is pseudonymous and stable while its smallest record key stays in it: "CH-" and the
    first 12 hex digits of the SHA-256 of that key (record keys are the agencies' own ids, not identities).
    """
    with cursor(store) as con:
        con.register("record_nodes", record_nodes)
        con.register("clusters", pd.DataFrame({"node_id": cluster_of.index, "cluster_id": cluster_of.to_numpy()}))
        con.register("edges", edges)
        out = con.sql("""
            WITH rc AS (SELECT r.*, c.cluster_id, e.agency_type FROM record_nodes r JOIN clusters c USING (node_id)
                        JOIN encounters e USING (record_key)),
            clusters_info AS (SELECT cluster_id, 'CH-' || substr(sha256(min(record_key)), 1, 12) AS child_id,
                                     count(*) AS size,
                                     count(DISTINCT agency_type) AS agencies FROM rc GROUP BY cluster_id),
            joined AS (SELECT unique_id_l AS node, match_probability AS p, status FROM edges
                       WHERE status IN ('linked', 'accepted by reviewer')
                       UNION ALL
                       SELECT unique_id_r, match_probability, status FROM edges
                       WHERE status IN ('linked', 'accepted by reviewer')),
            best AS (SELECT node, max(p) AS p, bool_or(status = 'accepted by reviewer') AS by_reviewer
                     FROM joined GROUP BY node)
            SELECT rc.record_key, i.child_id, rc.node_id,
                   CASE WHEN i.size = 1 THEN 'single record' WHEN b.by_reviewer THEN 'reviewer'
                        WHEN b.p IS NOT NULL THEN 'probabilistic' ELSE 'nhs_number' END AS link_method,
                   CAST(b.p AS DOUBLE) AS best_match_probability, rc.by_nhs, rc.nhs_conflict,
                   rc.shared_number_suspected, i.agencies
            FROM rc JOIN clusters_info i USING (cluster_id) LEFT JOIN best b ON b.node = rc.node_id
            UNION ALL
            SELECT record_key, NULL, NULL, 'anonymous (never linked)', NULL, false, false, false, 0
            FROM encounters WHERE is_anonymous
            ORDER BY record_key""").to_arrow_table()
        edges = con.sql("""
            WITH first AS (SELECT node_id, min(record_key) AS record_key FROM record_nodes GROUP BY node_id)
            SELECT CAST(e.unique_id_l AS VARCHAR) AS node_l, CAST(e.unique_id_r AS VARCHAR) AS node_r,
                   e.* EXCLUDE (unique_id_l, unique_id_r) REPLACE (
                       CAST(e.match_weight AS DOUBLE) AS match_weight,
                       CAST(e.match_probability AS DOUBLE) AS match_probability, CAST(e.status AS VARCHAR) AS status),
                   l.record_key AS record_key_l, r.record_key AS record_key_r
            FROM edges e LEFT JOIN first l ON l.node_id = e.unique_id_l LEFT JOIN first r ON r.node_id = e.unique_id_r
            """).to_arrow_table()
    return out, edges  # out carries `agencies` (distinct agency types of the record's child) for the summary
