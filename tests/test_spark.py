"""Linkage on Spark (Splink's Spark backend, local mode) gives the same children as on DuckDB.

Why exact equality is expected: training runs once in DuckDB (seeded) on both paths and the trained λ, m
and u are handed to Spark (`model.trained_settings`), so both engines score the same candidate pairs with
the same parameters; the deterministic pass and the clustering are shared code. The only allowed
difference is floating-point rounding in the summed match weights (Spark and DuckDB may add the terms in
another order): probabilities must agree to 1e-9, and a link within 1e-9 of the threshold would be the
only way clusters could differ (none in this dataset; the test would then show it).

Skipped when pyspark (requirements-spark.txt) is not installed, unless JOINEDUP_REQUIRE_SPARK=1 (CI),
where a missing pyspark fails.
"""
from __future__ import annotations

import json
import os
import shutil

import pandas as pd
import pytest

from lib.linkage import run
from lib.linkage import spark as spark_backend
from tests.fixtures_linkage import synthetic_store

REQUIRED = os.environ.get("JOINEDUP_REQUIRE_SPARK") == "1"
if not REQUIRED and not (spark_backend.available() and shutil.which("java")):
    pytest.skip("pyspark (pip install -r requirements-spark.txt) or Java 17 is not installed; "
                "set JOINEDUP_REQUIRE_SPARK=1 to make this a failure", allow_module_level=True)

SPARK = run.LinkConfig(backend="spark", spark_master="local[2]", spark_partitions=4)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """(record_child and link_edges from DuckDB, the same from Spark, the two summaries) on one store."""
    path = tmp_path_factory.mktemp("spark") / "store.duckdb"
    con, _ = synthetic_store(path, n_encounters=3_000, seed=5, link=False)
    # A reviewer's rejection, so the constrained clustering runs on both paths.
    duck_summary = run.link(con, run.LinkConfig())
    pair = con.execute("""SELECT record_key_l, record_key_r FROM link_edges WHERE status = 'linked'
                          ORDER BY match_probability, record_key_l LIMIT 1""").fetchall()[0]
    run.record_decision(con, pair[0], pair[1], "reject", "test")
    duck_summary = run.link(con, run.LinkConfig())
    tables = lambda: (con.execute("SELECT * FROM record_child ORDER BY record_key").df(),  # noqa: E731
                      con.execute("SELECT * FROM link_edges ORDER BY node_l, node_r").df())
    duck = tables()
    spark_summary = run.link(con, SPARK)
    spark = tables()
    runs = con.execute("SELECT config FROM linkage_runs ORDER BY run_id").df()
    yield duck, spark, duck_summary, spark_summary, runs
    con.close()


def test_spark_and_duckdb_give_the_same_children(both):
    (duck_children, _), (spark_children, _), *_ = both
    assert len(duck_children) > 2_500
    pd.testing.assert_frame_equal(duck_children.drop(columns=["best_match_probability"]),
                                  spark_children.drop(columns=["best_match_probability"]))
    pd.testing.assert_series_equal(duck_children["best_match_probability"],
                                   spark_children["best_match_probability"], atol=1e-9, rtol=0)
    # Not a trivial dataset: many children joined by the model, not only by NHS number.
    assert (duck_children["link_method"] == "probabilistic").sum() > 100


def test_spark_and_duckdb_score_the_same_links(both):
    (_, duck_edges), (_, spark_edges), duck_summary, spark_summary, _ = both
    assert len(duck_edges) > 100
    assert list(duck_edges.columns) == list(spark_edges.columns)
    keys = ["node_l", "node_r", "record_key_l", "record_key_r", "status"]
    pd.testing.assert_frame_equal(duck_edges[keys], spark_edges[keys])
    numeric = [c for c in duck_edges.columns if c not in keys]
    pd.testing.assert_frame_equal(duck_edges[numeric], spark_edges[numeric], atol=1e-9, rtol=0)
    assert (duck_edges["status"] == "rejected by reviewer").sum() == 1
    same = {k: v for k, v in duck_summary.items() if k not in ("seconds", "run_id")}  # run_id: the runs' own ids
    assert same == {k: v for k, v in spark_summary.items() if k not in ("seconds", "run_id")}


def test_the_run_records_which_backend_scored(both):
    *_, runs = both
    backends = [json.loads(c)["backend"] for c in runs["config"]]
    assert backends == ["duckdb", "duckdb", "spark"]


def test_link_command_selects_the_backend():
    from lib.cli import build_parser
    from lib.linkage.commands import config_from_args

    args = build_parser().parse_args(["link", "--backend", "spark", "--spark-master", "spark://head:7077",
                                      "--spark-checkpoint-dir", "hdfs:///tmp/ck"])
    config = config_from_args(args)
    assert (config.backend, config.spark_master, config.spark_checkpoint_dir) == \
        ("spark", "spark://head:7077", "hdfs:///tmp/ck")
    assert config_from_args(build_parser().parse_args(["link"])).backend == "duckdb"
    with pytest.raises(ValueError):
        run.LinkConfig(backend="sparkle")
