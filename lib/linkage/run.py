"""Link encounter records into children: NHS number first, Splink for the rest, reviewers last.

1. Deterministic pass: records sharing a valid NHS number are one child, unless a record's name and
   date of birth flatly contradict the number's usual identity (surname, forename after nicknames and
   date of birth all differ, day/month transposition and year of birth included): such a record is
   flagged as a possible shared or wrong number and goes to the next pass on its own, without the number.
2. Probabilistic pass: Splink (DuckDB backend, model in lib.linkage.model, trained by EM on this data)
   over one representative per NHS-number group (its most common value of each feature) and every
   record without a trustworthy number. Two groups with different valid NHS numbers are never linked.
3. Clusters: connected components (Splink's clustering) of NHS groups, model links at or above the
   match threshold, and reviewers' decisions: an accepted pair is linked, a rejected pair's link is
   dropped. Links in the review band below the threshold are queued for review.
Anonymous contacts (no identifier at all) are counted, never linked: their child_id is NULL.
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable

import duckdb
import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from lib.linkage import dice, model

Progress = Callable[[float, str], None]

RECORD_COLUMNS = ["record_key", "agency_type", "nhs_status", "nhs_hash", *model.FEATURES, "is_anonymous"]


@dataclass(frozen=True)
class LinkConfig:
    match_threshold: float = 0.9  # a model link at or above this joins two records
    review_floor: float = 0.5  # links from here up to the threshold are queued for review
    seed: int = 42
    max_u_pairs: float = 2e6
    train_sample: int = 250_000  # above this many groups, train on a seeded random sample of them
    memory_limit: str | None = None  # DuckDB memory limit while linking (None: 35% of RAM, at most 8 GB);
    #                                  past it DuckDB spills to disk instead of growing
    temp_directory: str | None = None  # where DuckDB spills (None: one temporary folder per process)
    predict_chunk_nodes: int = 1_500_000  # score in chunks of about this many nodes (bounded memory at 5M+)
    backend: str = "duckdb"  # where Splink scores pairs: "duckdb" (in process) or "spark" (lib.linkage.spark)
    spark_master: str | None = None  # e.g. "local[2]", "spark://host:7077"; None: $JOINEDUP_SPARK_MASTER,
    #                                  an active SparkSession, else local[*]
    spark_checkpoint_dir: str | None = None  # visible to every executor on a cluster (HDFS, S3, shared mount)
    spark_partitions: int | None = None  # spark.sql.shuffle.partitions (None: the session's own)
    spark_exchange_dir: str | None = None  # nodes go to the cluster as Parquet here instead of from memory
    name_similarity: bool = True  # Dice levels on the names' Bloom filters (lib.linkage.dice); False: without

    def __post_init__(self):
        if self.backend not in ("duckdb", "spark"):
            raise ValueError(f"backend must be 'duckdb' or 'spark', not {self.backend!r}")


DDL = [
    """CREATE TABLE IF NOT EXISTS review_decisions (record_key_l VARCHAR NOT NULL, record_key_r VARCHAR NOT NULL,
       decision VARCHAR NOT NULL CHECK (decision IN ('accept', 'reject')), reviewer VARCHAR, decided_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS linkage_runs (run_id INTEGER, started_at TIMESTAMP, seconds DOUBLE,
       records BIGINT, children BIGINT, config VARCHAR, summary VARCHAR, model VARCHAR)""",
]


def _noop(fraction: float, message: str) -> None:
    return None


def _mode_columns(source: str, key: str, columns: list[str]) -> str:
    """SQL for a table (key, column...) holding the most common non-null value of each column per key
    (ties: the smallest value, so runs repeat)."""
    parts = [f"""(SELECT {key}, first({c} ORDER BY n DESC, {c}) AS {c} FROM (
                    SELECT {key}, {c}, count(*) AS n FROM {source} WHERE {c} IS NOT NULL GROUP BY ALL)
                  GROUP BY {key}) AS m_{c}""" for c in columns]
    sql = f"SELECT k.{key}, " + ", ".join(f"m_{c}.{c}" for c in columns) + f" FROM (SELECT DISTINCT {key} FROM {source}) k"
    for c in columns:
        sql += f" LEFT JOIN {parts[columns.index(c)]} USING ({key})"
    return sql


def deterministic_pass(records: pd.DataFrame | duckdb.DuckDBPyConnection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(nodes for Splink, record → node table with the NHS flags), from a frame of RECORD_COLUMNS or
    straight from a store's `encounters` table. Runs in DuckDB: at a million records, grouping
    64-character hashes in pandas costs tens of seconds, and a round trip through pandas several more."""
    if isinstance(records, pd.DataFrame):
        con = duckdb.connect()
        con.register("records", records)
    else:
        con = records.cursor()  # its own connection: temporary tables stay private and go with it
        con.execute(f"CREATE TEMP VIEW records AS SELECT {', '.join(RECORD_COLUMNS)} FROM encounters")
    try:
        con.execute("""CREATE TEMP TABLE named AS SELECT * FROM records WHERE NOT is_anonymous""")
        # Group key: a 64-bit hash of the NHS-number hash (a collision among a million numbers has a
        # probability of about 1 in 30 million; sorting 64-character strings for a rank costs seconds).
        con.execute("""CREATE TEMP TABLE numbered AS SELECT *, hash(nhs_hash) AS g
                       FROM named WHERE nhs_status = 'valid' AND nhs_hash IS NOT NULL""")
        identity = ["dob_hash", "surname_hash", "forename_canon_hash", "birth_year"]
        con.execute(f"CREATE TEMP TABLE identity AS {_mode_columns('numbered', 'g', identity)}")
        # A record flatly contradicts its number's usual identity when its surname, its forename after
        # nicknames and its year of birth all differ (a different year implies a different date, transposed
        # or not; the transposed hash is NULL for most dates, so it cannot be part of the test); nulls never
        # contradict.
        con.execute("""CREATE TEMP TABLE judged AS
            SELECT n.record_key, n.g, n.nhs_hash,
                   (count(*) OVER (PARTITION BY n.g)) > 1
                   AND coalesce(n.birth_year <> i.birth_year, false)
                   AND coalesce(n.surname_hash <> i.surname_hash, false)
                   AND coalesce(n.forename_canon_hash <> i.forename_canon_hash, false) AS contradicts
            FROM numbered n JOIN identity i USING (g)""")
        # An NHS group is named after its smallest record key: no bit of the number's hash leaves this pass.
        con.execute("""CREATE TEMP TABLE trusted AS SELECT n.*, min(n.record_key) OVER (PARTITION BY n.g) AS group_key
                       FROM numbered n JOIN judged j USING (record_key) WHERE NOT j.contradicts""")
        record_nodes = con.execute("""
            SELECT r.record_key,
                   CASE WHEN t.record_key IS NOT NULL THEN 'N:' || t.group_key
                        ELSE 'R:' || r.record_key END AS node_id,
                   t.record_key IS NOT NULL AS by_nhs,
                   coalesce(j.contradicts, false) AS nhs_conflict,
                   j.g IS NOT NULL AND j.g IN (SELECT g FROM judged WHERE contradicts) AS shared_number_suspected
            FROM named r LEFT JOIN judged j USING (record_key) LEFT JOIN trusted t USING (record_key)
            ORDER BY r.record_key""").df()
        features = ", ".join(model.FEATURES)
        nodes = con.execute(f"""
            SELECT 'N:' || t.group_key AS unique_id, true AS has_nhs, {features}
            FROM ({_mode_columns('trusted', 'g', model.FEATURES)}) m
            JOIN (SELECT g, any_value(group_key) AS group_key FROM trusted GROUP BY g) t USING (g)
            UNION ALL
            SELECT 'R:' || record_key AS unique_id, false AS has_nhs, {features}
            FROM named WHERE record_key NOT IN (SELECT record_key FROM trusted)
            ORDER BY unique_id""").df()
    finally:
        con.close()
    nodes["birth_year"] = pd.to_numeric(nodes["birth_year"]).astype("Int64")
    return nodes, record_nodes


def probabilistic_pass(nodes: pd.DataFrame, config: LinkConfig, progress: Progress = _noop
                       ) -> tuple[pd.DataFrame, dict]:
    """Splink predictions between nodes at or above the review floor, and the trained model.

    Training always runs in DuckDB (on at most `config.train_sample` groups); scoring runs on
    `config.backend` with that trained model, so DuckDB and Spark give the same links."""
    from splink.backends.duckdb import DuckDBAPI

    db_api = DuckDBAPI(connection=duckdb.connect(config=_duckdb_config(config)))
    try:
        return _probabilistic_pass(db_api, nodes, config, progress)
    finally:
        db_api.duckdb_con.close()  # its tables and buffers go before clustering starts


def _probabilistic_pass(db_api, nodes: pd.DataFrame, config: LinkConfig, progress: Progress
                        ) -> tuple[pd.DataFrame, dict]:
    from splink import Linker

    frame = nodes[["unique_id", *model.FEATURES]]
    progress(0.35, "Training the match model (u by sampling, m by expectation maximisation)")
    if len(frame) > config.train_sample:
        # m and u are properties of the recording, not of the population size: a large random sample
        # estimates them as well, and EM's blocked pairs grow with the square of the input.
        sample = frame.sample(n=config.train_sample, random_state=config.seed)
        cuts = dice.thresholds(sample, config.seed) if config.name_similarity else None
        trainer = Linker(db_api.register(sample, dataset_display_name="training_sample"), model.settings(cuts),
                         log_level=30)
        model.train(trainer, seed=config.seed, max_pairs=config.max_u_pairs)
        model_json = trainer.misc.save_model_to_json()
        linker = None
    else:
        cuts = dice.thresholds(frame, config.seed) if config.name_similarity else None
        linker = Linker(db_api.register(frame, dataset_display_name="encounters"), model.settings(cuts),
                        log_level=30)
        model.train(linker, seed=config.seed, max_pairs=config.max_u_pairs)
        model_json = linker.misc.save_model_to_json()
    if config.backend == "spark":
        from lib.linkage import spark

        progress(0.6, "Scoring candidate pairs on Spark")
        scored = spark.predict(frame, model_json, config.review_floor, master=config.spark_master,
                               checkpoint_dir=config.spark_checkpoint_dir, partitions=config.spark_partitions,
                               exchange_dir=config.spark_exchange_dir)
    else:
        if linker is None:
            linker = Linker(db_api.register(frame, dataset_display_name="encounters"), model_json, log_level=30)
        progress(0.6, "Scoring candidate pairs")
        # Chunks (of the left side of each pair) bound the comparison vectors held at once; one chunk
        # below predict_chunk_nodes, so small runs are unchanged.
        chunks = max(1, -(-len(frame) // config.predict_chunk_nodes))
        predictions = linker.inference.predict(threshold_match_probability=config.review_floor,
                                               num_chunks_left=chunks if chunks > 1 else None)
        scored = predictions.as_pandas_dataframe()
        predictions.drop_table_from_database_and_remove_from_cache()
    weights = [c for c in scored.columns if c.startswith("mw_")]
    edges = scored[["unique_id_l", "unique_id_r", "match_weight", "match_probability", *weights]]
    has_nhs = set(nodes.loc[nodes["has_nhs"], "unique_id"])
    both_numbered = edges["unique_id_l"].isin(has_nhs) & edges["unique_id_r"].isin(has_nhs)
    edges = edges[~both_numbered].reset_index(drop=True)  # different valid NHS numbers: different children
    return edges, model_json


def _decisions(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    cur = con.cursor()
    try:
        return cur.execute("""SELECT record_key_l, record_key_r, decision FROM (
            SELECT *, row_number() OVER (PARTITION BY least(record_key_l, record_key_r),
                                                      greatest(record_key_l, record_key_r)
                                         ORDER BY decided_at DESC) AS latest FROM review_decisions)
            WHERE latest = 1""").df()
    finally:
        cur.close()


def _pair_key(a: pd.Series, b: pd.Series) -> pd.Series:
    return np.minimum(a, b) + "\u0000" + np.maximum(a, b)


def cluster(nodes: pd.DataFrame, edges: pd.DataFrame, decisions: pd.DataFrame, record_nodes: pd.DataFrame,
            config: LinkConfig) -> tuple[pd.Series, pd.DataFrame]:
    """(cluster id per node, the edges with their status).

    Connected components of the joining links (scipy), except where a component would hold two
    different valid NHS numbers, or a pair a reviewer rejected, however indirect the chain (N1 – record –
    N2): there, constrained agglomeration — reviewers' accepted pairs first, then model links from the
    most to the least probable, each union refused if it would break a rule. Splink's connected
    components cannot express such cannot-link rules. Statuses: linked,
    accepted by reviewer, rejected by reviewer, kept apart (two NHS numbers), kept apart (reviewer),
    review (in the review band, joining two different children), already joined (in the band, but the
    two sides are one child through other links: nothing to review).
    """
    ids = nodes["unique_id"].to_numpy(dtype=object)
    if len(ids) == 0:
        return pd.Series([], dtype=object, name="cluster_id"), edges.assign(status=pd.Series(dtype=object))
    position = {node: i for i, node in enumerate(ids)}
    parent = list(range(len(ids)))
    numbered = [bool(v) for v in nodes["has_nhs"].to_numpy()]
    apart: dict[int, set[int]] = {}  # root -> nodes that may never join its cluster

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    def union(a: int, b: int) -> str:
        ra, rb = find(a), find(b)
        if ra == rb:
            return "joined"
        if numbered[ra] and numbered[rb]:
            return "kept apart (two NHS numbers)"
        if any(find(x) == rb for x in apart.get(ra, ())) or any(find(x) == ra for x in apart.get(rb, ())):
            return "kept apart (reviewer)"
        parent[rb] = ra
        numbered[ra] = numbered[ra] or numbered[rb]
        if rb in apart:
            apart.setdefault(ra, set()).update(apart.pop(rb))
        return "joined"

    node_of = record_nodes.set_index("record_key")["node_id"]
    decided = decisions.assign(node_l=decisions["record_key_l"].map(node_of),
                               node_r=decisions["record_key_r"].map(node_of)).dropna(subset=["node_l", "node_r"])
    decided = decided[decided["node_l"] != decided["node_r"]]
    rejected = decided[decided["decision"] == "reject"]
    accepted = decided[decided["decision"] == "accept"]
    for left, right in zip(rejected["node_l"], rejected["node_r"]):
        a, b = position[left], position[right]
        apart.setdefault(a, set()).add(b)
        apart.setdefault(b, set()).add(a)

    edges = edges.copy()
    keys = _pair_key(edges["unique_id_l"], edges["unique_id_r"])
    missing = accepted[~_pair_key(accepted["node_l"], accepted["node_r"]).isin(set(keys))]
    if len(missing):
        edges = pd.concat([edges, pd.DataFrame({"unique_id_l": missing["node_l"], "unique_id_r": missing["node_r"],
                                                "match_weight": np.nan, "match_probability": np.nan})],
                          ignore_index=True)
        keys = _pair_key(edges["unique_id_l"], edges["unique_id_r"])
    is_accepted = keys.isin(set(_pair_key(accepted["node_l"], accepted["node_r"]))).to_numpy()
    is_rejected = keys.isin(set(_pair_key(rejected["node_l"], rejected["node_r"]))).to_numpy()
    probability = edges["match_probability"].fillna(1.0).to_numpy()
    index = pd.Index(ids)
    left = index.get_indexer(edges["unique_id_l"])
    right = index.get_indexer(edges["unique_id_r"])
    candidate = ~is_rejected & (is_accepted | (probability >= config.match_threshold))
    status = np.full(len(edges), "review", dtype=object)
    status[is_rejected] = "rejected by reviewer"
    status[candidate] = np.where(is_accepted[candidate], "accepted by reviewer", "linked")

    # Fast path: plain connected components. Only components that would hold two NHS numbers or a
    # rejected pair (rare) are re-done edge by edge under the constraints.
    graph = coo_matrix((np.ones(int(candidate.sum())), (left[candidate], right[candidate])),
                       shape=(len(ids), len(ids)))
    _, component = connected_components(graph, directed=False)
    numbered_count = np.bincount(component, weights=np.asarray(numbered, dtype=float), minlength=component.max() + 1)
    troubled = numbered_count > 1
    for a, b in zip(rejected["node_l"], rejected["node_r"]):
        if component[position[a]] == component[position[b]]:
            troubled[component[position[a]]] = True
    labels = component.copy()
    redo = np.flatnonzero(candidate & troubled[component[np.maximum(left, 0)]])
    if len(redo):
        for i in redo[np.lexsort((keys.to_numpy()[redo], -probability[redo], ~is_accepted[redo]))]:
            outcome = union(left[i], right[i])
            if outcome != "joined":
                status[i] = outcome
        members = np.flatnonzero(troubled[component])
        offset = component.max() + 1  # fresh labels for the re-done components
        labels[members] = offset + np.array([find(int(m)) for m in members])
    in_band = status == "review"
    status[in_band & (labels[left] == labels[right])] = "already joined"
    edges["status"] = status
    # A cluster is named after one of its nodes (the first in node order), as Splink's clustering does.
    first = pd.Series(np.arange(len(ids))).groupby(labels).transform("min").to_numpy()
    return pd.Series(ids[first], index=ids, name="cluster_id"), edges


def _outcomes(store: duckdb.DuckDBPyConnection, record_nodes: pd.DataFrame, cluster_of: pd.Series,
              edges: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one outcome row per record, the edges with a record key on each side), in DuckDB: at a million
    records the same joins and group-bys over string keys take tens of seconds in pandas.

    A child id is pseudonymous and stable while its smallest record key stays in it: "CH-" and the
    first 12 hex digits of the SHA-256 of that key (record keys are the agencies' own ids, not identities).
    """
    con = store.cursor()
    try:
        con.register("record_nodes", record_nodes)
        con.register("clusters", pd.DataFrame({"node_id": cluster_of.index, "cluster_id": cluster_of.to_numpy()}))
        con.register("edges", edges)
        out = con.execute("""
            WITH rc AS (SELECT r.*, c.cluster_id, e.agency_type FROM record_nodes r JOIN clusters c USING (node_id)
                        JOIN encounters e USING (record_key)),
            clusters_info AS (SELECT cluster_id, min(record_key) AS first_key, count(*) AS size,
                                     count(DISTINCT agency_type) AS agencies FROM rc GROUP BY cluster_id),
            joined AS (SELECT unique_id_l AS node, match_probability AS p, status FROM edges
                       WHERE status IN ('linked', 'accepted by reviewer')
                       UNION ALL
                       SELECT unique_id_r, match_probability, status FROM edges
                       WHERE status IN ('linked', 'accepted by reviewer')),
            best AS (SELECT node, max(p) AS p, bool_or(status = 'accepted by reviewer') AS by_reviewer
                     FROM joined GROUP BY node)
            SELECT rc.record_key, 'CH-' || substr(sha256(i.first_key), 1, 12) AS child_id, rc.node_id,
                   CASE WHEN i.size = 1 THEN 'single record' WHEN b.by_reviewer THEN 'reviewer'
                        WHEN b.p IS NOT NULL THEN 'probabilistic' ELSE 'nhs_number' END AS link_method,
                   b.p AS best_match_probability, rc.by_nhs, rc.nhs_conflict, rc.shared_number_suspected,
                   i.agencies
            FROM rc JOIN clusters_info i USING (cluster_id) LEFT JOIN best b ON b.node = rc.node_id
            UNION ALL
            SELECT record_key, NULL, NULL, 'anonymous (never linked)', NULL, false, false, false, 0
            FROM encounters WHERE is_anonymous
            ORDER BY record_key""").df()
        edges = con.execute("""
            WITH first AS (SELECT node_id, min(record_key) AS record_key FROM record_nodes GROUP BY node_id)
            SELECT e.* RENAME (unique_id_l AS node_l, unique_id_r AS node_r),
                   l.record_key AS record_key_l, r.record_key AS record_key_r
            FROM edges e LEFT JOIN first l ON l.node_id = e.unique_id_l LEFT JOIN first r ON r.node_id = e.unique_id_r
            """).df()
    finally:
        con.close()
    return out, edges  # out carries `agencies` (distinct agency types of the record's child) for the summary


_LINK_LOCK = threading.Lock()


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    cur = con.cursor()
    try:
        for statement in DDL:
            cur.execute(statement)
    finally:
        cur.close()


def link(con: duckdb.DuckDBPyConnection, config: LinkConfig = LinkConfig(), progress: Progress = _noop) -> dict:
    """Run all passes on the store and replace its linkage tables in one transaction; returns a summary.
    One run at a time per process (a second caller waits), so two sessions cannot race on the tables."""
    with _LINK_LOCK:
        return _link(con, config, progress)


def _memory_limit(config: LinkConfig) -> str:
    if config.memory_limit:
        return config.memory_limit
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 16 * 2**30
    return f"{max(1, min(8, int(total * 0.35 / 2**30)))}GB"


_TEMP: dict[str, str] = {}


def _temp_directory(config: LinkConfig) -> str:
    if config.temp_directory:
        return config.temp_directory
    if "dir" not in _TEMP or not os.path.isdir(_TEMP["dir"]):
        _TEMP["dir"] = tempfile.mkdtemp(prefix="joinedup-link-spill-")
    return _TEMP["dir"]


def _duckdb_config(config: LinkConfig) -> dict:
    return {"memory_limit": _memory_limit(config), "temp_directory": _temp_directory(config)}


def _link(con: duckdb.DuckDBPyConnection, config: LinkConfig, progress: Progress) -> dict:
    """Linking with the store's DuckDB memory limit lowered to the linkage's (restored afterwards), so a
    national extract spills to disk instead of exhausting memory."""
    cur = con.cursor()
    try:
        before = cur.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        cur.execute(f"SET memory_limit = '{_memory_limit(config)}'")
    finally:
        cur.close()
    try:
        return _link_passes(con, config, progress)
    finally:
        cur = con.cursor()
        try:
            cur.execute(f"SET memory_limit = '{before}'")
        finally:
            cur.close()


def _link_passes(con: duckdb.DuckDBPyConnection, config: LinkConfig, progress: Progress) -> dict:
    started = time.perf_counter()
    started_at = pd.Timestamp.now(tz="UTC").tz_localize(None)
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
    cluster_of, edges = cluster(nodes, edges, _decisions(con), record_nodes, config)

    out, edges = _outcomes(con, record_nodes, cluster_of, edges)
    named = out[out["child_id"].notna()]
    summary = {
        "records": int(len(out)),
        "anonymous_records": int(out["child_id"].isna().sum()),
        "nodes": int(len(nodes)),
        "children": int(named["child_id"].nunique()),
        "linked_by_nhs_number": int(named["by_nhs"].sum()),
        "nhs_conflicts_flagged": int(named["nhs_conflict"].sum()),
        "model_links": int((edges["status"] == "linked").sum()),
        "review_queue": int((edges["status"] == "review").sum()),
        "kept_apart": int(edges["status"].str.startswith("kept apart").sum()),
        "reviewer_accepted": int((edges["status"] == "accepted by reviewer").sum()),
        "reviewer_rejected": int((edges["status"] == "rejected by reviewer").sum()),
        "multi_agency_children": int(named.loc[named["agencies"] >= 2, "child_id"].nunique()),
        "match_threshold": config.match_threshold,
        "probabilistic_pass": probabilistic,
    }
    progress(0.95, "Saving")
    run_id = _save(con, out.drop(columns=["agencies"]), edges, summary, config, model_json, started_at, started)
    summary["run_id"] = run_id  # linkage_runs.run_id: the audit row names it (lib.access.audit.cross_check)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    progress(1.0, f"Linked {summary['records']:,} records into {summary['children']:,} children")
    return summary


def multi_agency_children(frame: pd.DataFrame, child: str = "child_id") -> int:
    """Children whose records come from two or more agency types."""
    known = frame.dropna(subset=[child])
    return int((known.groupby(child)["agency_type"].nunique() >= 2).sum())


def _save(con, out, edges, summary, config, model_json, started_at, started) -> int:
    cur = con.cursor()
    try:
        cur.execute("BEGIN TRANSACTION")
        cur.register("out_frame", out)
        weights = [c for c in edges.columns if c.startswith("mw_")]
        cur.register("edge_frame", edges[["node_l", "node_r", "record_key_l", "record_key_r", "match_weight",
                                          "match_probability", "status", *weights]])
        cur.execute("CREATE OR REPLACE TABLE record_child AS SELECT * FROM out_frame")
        cur.execute("CREATE OR REPLACE TABLE link_edges AS SELECT * FROM edge_frame")
        run_id = cur.execute("SELECT coalesce(max(run_id), 0) + 1 FROM linkage_runs").fetchall()[0][0]
        cur.execute("INSERT INTO linkage_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [run_id, started_at.to_pydatetime(), time.perf_counter() - started, summary["records"],
                     summary["children"], json.dumps(asdict(config)), json.dumps(summary), json.dumps(model_json)])
        cur.execute("COMMIT")
        return int(run_id)
    except Exception:
        cur.execute("ROLLBACK")
        raise
    finally:
        cur.unregister("out_frame")
        cur.close()


def record_decision(con: duckdb.DuckDBPyConnection, record_key_l: str, record_key_r: str, decision: str,
                    reviewer: str) -> None:
    """Store a reviewer's accept/reject for a pair; the next linkage run respects it."""
    if decision not in ("accept", "reject"):
        raise ValueError("decision must be 'accept' or 'reject'")
    ensure_tables(con)
    cur = con.cursor()
    try:
        cur.execute("INSERT INTO review_decisions VALUES (?, ?, ?, ?, now())",
                    [record_key_l, record_key_r, decision, reviewer])
    finally:
        cur.close()
