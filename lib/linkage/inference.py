"""Inference stage (Splink's `linker.inference`): which pairs of records are the same child, and how sure.

1. Deterministic links (`deterministic_pass`): records sharing a valid NHS number are one node, unless a
   record's name and date of birth flatly contradict the number's usual identity (surname, forename after
   nicknames and year of birth all differ): such a record is flagged as a possible shared or wrong number and
   goes on alone, without the number.
2. Scored pairs (`probabilistic_pass`): the model trained by lib.linkage.training scores candidate pairs of
   nodes (DuckDB in chunks, or Spark) and keeps those at or above the review floor, with each comparison's
   match weight (mw_*) and the level that fired (gamma_*). Pairs of two different valid NHS numbers are
   dropped: they are different children.
Thresholds (link, review) are applied by lib.linkage.clustering.
"""
from __future__ import annotations

import contextlib
from concurrent.futures import Future, ThreadPoolExecutor

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lib.linkage import band_pairs, lsh, model, training
from lib.linkage.config import LinkConfig, Progress, duckdb_config, noop
from lib.linkage.model import edge_columns, scoring_settings  # noqa: F401 - re-exported for callers
from lib.records import frames

RECORD_COLUMNS = ["record_key", "agency_type", "nhs_status", "nhs_hash", *model.FEATURES, "is_anonymous"]


def _mode_of(source: str, key: str, column: str) -> str:
    """SQL for a table (key, column): the most common non-null value of `column` per key (ties: the smallest value,
    so runs repeat)."""
    return f"""SELECT {key}, first({column} ORDER BY n DESC, {column}) AS {column} FROM (
                   SELECT {key}, {column}, count(*) AS n FROM {source} WHERE {column} IS NOT NULL GROUP BY ALL)
               GROUP BY {key}"""


def _mode_table(con, source: str, key: str, columns: list[str], table: str) -> None:
    """Temporary table `table` (key, column...): each key of `source` with the most common non-null value of each
    column (`_mode_of`; NULL where a column has none), each column's mode first stored in a table of its own. One query
    holding every column's ordered aggregate at once could not spill: at 5,000,000 encounters
    under a 4 GB memory limit it stopped with DuckDB's out-of-memory error; one at a time, each finishes
    (docs/PERFORMANCE.md, session 12)."""
    for c in columns:
        con.execute(f"CREATE TEMP TABLE {table}_{c} AS {_mode_of(source, key, c)}")
    joins = " ".join(f"LEFT JOIN {table}_{c} USING ({key})" for c in columns)
    con.execute(f"""CREATE TEMP TABLE {table} AS SELECT k.{key}, {", ".join(f"{table}_{c}.{c}" for c in columns)}
                    FROM (SELECT DISTINCT {key} FROM {source}) k {joins}""")
    for c in columns:
        con.execute(f"DROP TABLE {table}_{c}")


def deterministic_pass(records: pd.DataFrame | duckdb.DuckDBPyConnection, *, nodes: bool = True
                       ) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    """(nodes for Splink, record → node table with the NHS flags), from a frame of RECORD_COLUMNS or
    straight from a store's `encounters` table. Runs in DuckDB: at a million records, grouping
    64-character hashes in pandas costs tens of seconds, and a round trip through pandas several more. The hashed
    features come out as 63-bit integers (`model.narrowed`); every other column as stored.
    ``nodes`` False: no nodes (None), for a caller that stops at the NHS-number pass (the scenario's curve)."""
    columns = ", ".join(model.narrowed(c) for c in RECORD_COLUMNS)  # the hashed features as 8-byte integers
    if isinstance(records, pd.DataFrame):
        con = duckdb.connect()
        con.register("records_in", records)
        con.execute(f"CREATE TEMP VIEW records AS SELECT {columns} FROM records_in")
    else:
        con = records.cursor()  # its own connection: temporary tables stay private and go with it
        con.execute(f"CREATE TEMP VIEW records AS SELECT {columns} FROM encounters")
    try:
        con.execute("""CREATE TEMP TABLE named AS SELECT * FROM records WHERE NOT is_anonymous""")
        # Group key: a 64-bit hash of the NHS-number hash (a collision among a million numbers has a
        # probability of about 1 in 30 million; sorting 64-character strings for a rank costs seconds).
        # a view, not a copy: its three readers each filter `named` again, cheaper than copying every column (the
        # Bloom filters' lists among them) of most records once more (1M: 3.85 -> 3.60 s, the same nodes)
        con.execute("""CREATE TEMP VIEW numbered AS SELECT *, hash(nhs_hash) AS g
                       FROM named WHERE nhs_status = 'valid' AND nhs_hash IS NOT NULL""")
        identity = ["dob_hash", "surname_hash", "forename_canon_hash", "birth_year"]
        _mode_table(con, "numbered", "g", identity, "identity")
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
        record_nodes = frames.frame(con.sql("""
            SELECT r.record_key,
                   CASE WHEN t.record_key IS NOT NULL THEN 'N:' || t.group_key
                        ELSE 'R:' || r.record_key END AS node_id,
                   t.record_key IS NOT NULL AS by_nhs,
                   coalesce(j.contradicts, false) AS nhs_conflict,
                   j.g IS NOT NULL AND j.g IN (SELECT g FROM judged WHERE contradicts) AS shared_number_suspected
            FROM named r LEFT JOIN judged j USING (record_key) LEFT JOIN trusted t USING (record_key)
            ORDER BY r.record_key"""))
        if not nodes:
            return None, record_nodes
        features = ", ".join(model.FEATURES)
        _mode_table(con, "trusted", "g", model.FEATURES, "modal")
        nodes_frame = frames.frame(con.sql(f"""
            SELECT 'N:' || t.group_key AS unique_id, true AS has_nhs, {features}
            FROM modal m
            JOIN (SELECT g, any_value(group_key) AS group_key FROM trusted GROUP BY g) t USING (g)
            UNION ALL
            SELECT 'R:' || record_key AS unique_id, false AS has_nhs, {features}
            FROM named WHERE record_key NOT IN (SELECT record_key FROM trusted)
            ORDER BY unique_id"""), arrow_lists=True)  # the Bloom filters go back to DuckDB and NumPy whole
    finally:
        con.close()
    nodes_frame["birth_year"] = pd.to_numeric(nodes_frame["birth_year"]).astype("Int64")
    return nodes_frame, record_nodes


def uses_name_blocking(config: LinkConfig, nodes: int) -> bool:
    """Name blocking goes with the Dice levels (the same node threshold): without them the extra candidate pairs
    carry no name-similarity evidence, and below it both were measured to cost precision (LINKAGE_PRIVACY.md)."""
    return config.name_blocking and config.name_similarity and nodes >= config.name_similarity_min_nodes


def probabilistic_pass(nodes: pd.DataFrame, config: LinkConfig, progress: Progress = noop
                       ) -> tuple[pd.DataFrame, dict]:
    """Splink predictions between nodes at or above the review floor, and the trained model.

    Training always runs in DuckDB (on at most `config.train_sample` nodes); scoring runs on
    `config.backend` with that trained model, so DuckDB and Spark give the same links."""
    from splink.backends.duckdb import DuckDBAPI

    db_api = DuckDBAPI(connection=duckdb.connect(config=duckdb_config(config)))
    try:
        frame = nodes[["unique_id", *model.FEATURES, model.NUMBERED]]
        progress(0.35, "Training the match model (u by sampling, m by expectation maximisation)")
        meetings = None
        if uses_name_blocking(config, len(frame)):
            # the band keys (computed here from the filters, never stored) beside training, which never reads them:
            # NumPy on one core while Splink's sampling runs mostly on the other (1M: 6.0-6.7 -> 4.6-4.8 s together,
            # the same model and keys; docs/PERFORMANCE.md, session 21); then, once training has made its settings,
            # the band keys' pairs whose names do not both differ (band_pairs.name_meetings), while Splink estimates
            # the parameters mostly on one core (docs/PERFORMANCE.md, session 24)
            settings: Future = Future()
            with ThreadPoolExecutor(1, thread_name_prefix="band-keys") as pool:
                keyed = pool.submit(_keys_and_meetings, frame, settings, config)
                try:
                    model_json = training.train_model(db_api, frame, config, name_lsh=True,
                                                      on_settings=settings.set_result)
                except BaseException:
                    if not settings.done():
                        settings.set_exception(model.TrainingError("training stopped before its settings"))
                    with contextlib.suppress(Exception):
                        _close(keyed.result()[1])
                    raise
                frame, meetings = keyed.result()
        else:
            model_json = training.train_model(db_api, frame, config)
        try:
            scored = score(db_api, frame, model_json, config, progress, meetings=meetings)
        finally:
            _close(meetings)  # closed by scoring once read; not if scoring stopped first
    finally:
        db_api.duckdb_con.close()  # its tables and buffers go before clustering starts
    return kept_edges(scored, nodes), model_json


def _keys_and_meetings(frame: pd.DataFrame, settings: Future, config: LinkConfig
                       ) -> tuple[pd.DataFrame, band_pairs.NameMeetings | None]:
    """(`frame` with its band keys, and the band keys' pairs whose names do not both differ under the model's
    `settings` once training has made them, on the integer ids scoring gives the nodes; None where scoring will not
    read them: on Spark, for a model without name blocking, or when training stopped first)."""
    keyed = lsh.with_keys(frame)
    if config.backend != "duckdb":
        return keyed, None
    try:
        untrained = settings.result()
    except Exception:  # training stopped: nothing will be scored
        return keyed, None
    if not band_pairs.applies(untrained, keyed):
        return keyed, None
    return keyed, band_pairs.name_meetings(_coded(keyed), untrained, config.name_pairs_both_differ,
                                           duckdb_config(config), keyed=keyed)


def _close(meetings: band_pairs.NameMeetings | None) -> None:
    if meetings is not None:
        meetings.close()


def scoring_floor(config: LinkConfig) -> float:
    """The lowest probability scored pairs are kept at: the review floor, or the lowest a trained one may be."""
    return config.review_floor if config.review_floor is not None else config.review_floor_lowest


def trained_review_floor(probabilities, threshold: float, lowest: float) -> float:
    """The review band's floor from the model's own match probabilities of this run's scored pairs (those at or
    above `lowest`, the pairs of two valid NHS numbers already dropped): the highest floor f (on a 0.01 grid from
    `lowest` to `threshold`) at which the true matches the model expects to leave out of review, the sum of p over
    the pairs below f, are no more than the false ones it expects to show reviewers, the sum of 1 - p over the
    pairs from f up to the threshold. A balanced-error point: lowering the floor adds more expected false pairs
    to the queue than it rescues true ones; raising it leaves out more true matches than it spares false ones.
    Where the model is sure (few pairs between `lowest` and the threshold) the band is narrow; where many pairs
    are uncertain it widens. Probabilities below `lowest` are not scored, so their expected matches are not
    counted (documented in docs/LINKAGE_PRIVACY.md). `capped_review_floor` then bounds the queue."""
    p = np.sort(np.asarray(probabilities, dtype=float))
    p = p[(p >= lowest) & (p < threshold)]
    grid = _grid(lowest, threshold)[::-1]  # highest first
    below = np.concatenate([[0.0], np.cumsum(p)])  # below[i]: sum of p over the i lowest pairs
    doubt = np.concatenate([np.cumsum((1.0 - p)[::-1])[::-1], [0.0]])  # doubt[i]: sum of 1 - p from pair i up
    for floor in grid:
        i = int(np.searchsorted(p, floor, side="left"))  # pairs below the floor: p[:i]
        if below[i] <= doubt[i]:
            return float(floor)
    return float(lowest)


def _grid(lowest: float, threshold: float) -> np.ndarray:
    """Floors considered, ascending: 0.01 steps from `lowest`, never above the threshold, and the threshold (an
    empty band)."""
    grid = np.round(np.arange(lowest, threshold + 1e-9, 0.01), 2)
    return np.unique(np.append(grid[grid <= threshold], threshold))


def capped_review_floor(queued, floor: float, threshold: float, max_pairs: float) -> float:
    """The lowest floor on the grid, at or above `floor`, that leaves at most `max_pairs` of the `queued` pairs'
    probabilities (the pairs clustering would queue for review) in the band: the reviewers' capacity."""
    q = np.sort(np.asarray(queued, dtype=float))
    for candidate in _grid(floor, threshold):
        if len(q) - int(np.searchsorted(q, candidate, side="left")) <= max_pairs:
            return float(candidate)
    return float(threshold)


def score(db_api, frame: pd.DataFrame, model_json: dict, config: LinkConfig, progress: Progress,
          meetings: band_pairs.NameMeetings | None = None) -> pd.DataFrame:
    """Splink's predictions of `frame`'s pairs at or above the review floor, on `config.backend`.

    Splink scores the nodes under integer ids, numbered in the order of their text ids so every pair keeps its left
    and right side (the transposed-date level reads one direction): its blocking joins, de-duplication and look-ups
    then run on integers instead of 40-character strings (1M, one process each, back to back: blocking
    30.4 -> 26.5 s, scoring after it 8.8 -> 6.2 s; docs/PERFORMANCE.md, session 9). The scored pairs get their
    text ids back. `meetings`: the band keys' pairs found beside training for this `frame` (`_keys_and_meetings`),
    whose integer-id frame is then scored."""
    codes, ids = _sorted_codes(frame["unique_id"])
    coded = meetings.frame if meetings is not None and meetings.keyed is frame else _coded(frame, codes)
    scored = _scores(db_api, coded, model_json, config, progress, meetings)
    for side in ("unique_id_l", "unique_id_r"):
        scored[side] = ids.take(scored[side].to_numpy())
    return scored


def _coded(frame: pd.DataFrame, codes: np.ndarray | None = None) -> pd.DataFrame:
    """`frame` with each node's integer id (`_sorted_codes`, or `codes` if found already) as its `unique_id`, as
    Splink scores it."""
    codes = _sorted_codes(frame["unique_id"])[0] if codes is None else codes
    return frame.assign(unique_id=codes.astype("int64"))


def _sorted_codes(ids: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """`pd.factorize(ids, sort=True)` (each id's rank among the distinct ids, and the ids in order), without the
    sort where the ids are strictly increasing already, as `deterministic_pass` gives the nodes: each id's code is
    then its position (1M: 0.47 -> 0.01 s). Arrow compares text by its UTF-8 bytes, which orders as Python does."""
    values = pa.array(ids)
    if len(values) > 1 and pc.all(pc.greater(values.slice(1), values.slice(0, len(values) - 1))).as_py():
        return np.arange(len(values), dtype=np.int64), pd.Index(ids.to_numpy(), dtype=ids.dtype)
    return pd.factorize(ids, sort=True)


def _scores(db_api, frame: pd.DataFrame, model_json: dict, config: LinkConfig, progress: Progress,
            meetings: band_pairs.NameMeetings | None = None) -> pd.DataFrame:
    from splink import Linker

    # scoring only: the stored model is unchanged. On Spark the band keys stay an exploding rule run by the cluster.
    if config.backend == "duckdb" and band_pairs.applies(model_json, frame):
        frame, _ = band_pairs.pair_keys(frame, model_json, model.NUMBERED in frame.columns,
                                        config.name_pairs_both_differ, duckdb_config(config), scoring_floor(config),
                                        meetings)
        model_json = band_pairs.scoring_model(model_json)
    elif not config.name_pairs_both_differ:
        model_json = model.without_names_both_differ(model_json)
    if config.backend == "spark":
        from lib.linkage import spark

        progress(0.6, "Scoring candidate pairs on Spark")
        return spark.predict(frame, model_json, scoring_floor(config), master=config.spark_master,
                             checkpoint_dir=config.spark_checkpoint_dir, partitions=config.spark_partitions,
                             exchange_dir=config.spark_exchange_dir)
    linker = Linker(db_api.register(frame, dataset_display_name="encounters"),
                    scoring_settings(model_json, model.NUMBERED in frame.columns), log_level=30)
    progress(0.6, "Scoring candidate pairs")
    # Chunks (of the left side of each pair) bound the comparison vectors held at once; one chunk
    # below predict_chunk_nodes, so small runs are unchanged.
    chunks = max(1, -(-len(frame) // config.predict_chunk_nodes))
    predictions = linker.inference.predict(threshold_match_probability=scoring_floor(config),
                                           num_chunks_left=chunks if chunks > 1 else None)
    relation = predictions.as_duckdbpyrelation()
    scored = frames.frame(relation.select(*edge_columns(relation.columns)))  # the matching columns never leave DuckDB
    predictions.drop_table_from_database_and_remove_from_cache()
    return scored


def kept_edges(scored: pd.DataFrame, nodes: pd.DataFrame) -> pd.DataFrame:
    """The scored pairs as edges (ids, weight, probability, per-comparison mw_* and gamma_*), without pairs of
    two nodes that each carry a different valid NHS number."""
    edges = scored[edge_columns(list(scored.columns))]
    # Arrow's hash look-up: a Python set of a million ids took 2.7 s at 1M, this 0.3 s
    has_nhs = pa.array(nodes.loc[nodes["has_nhs"], "unique_id"], type=pa.string())
    both_numbered = pc.and_(*(pc.is_in(pa.array(edges[side], type=pa.string()), value_set=has_nhs)
                              for side in ("unique_id_l", "unique_id_r")))
    keep = ~both_numbered.to_numpy(zero_copy_only=False)
    return edges[keep].reset_index(drop=True)  # different valid NHS numbers: different children
