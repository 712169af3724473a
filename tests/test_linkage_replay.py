"""A model trained by an earlier release replays on Spark exactly as it was trained (`model.trained_settings`).

tests/data/linkage_model_session4.json is Splink's JSON of a model trained by session 4's default (commit ded4097:
Dice levels, name blocking, partial dates and `joint_name_levels` as they were then, whose "Both names differ"
level required only the *other* name to disagree), on 6,000 synthetic encounters (lib.synth seed 3; no real
person). Rebuilding the settings from today's `model.settings()` matched its levels by label and silently gave
them today's SQL: a different model under the old m and u. The replay must translate the model's own SQL.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import sqlglot

from lib.linkage import model

SESSION4 = Path(__file__).parent / "data" / "linkage_model_session4.json"


def _saved() -> dict:
    return json.loads(SESSION4.read_text())


def _levels(settings: dict):
    for comparison in settings["comparisons"]:
        for level in comparison["comparison_levels"]:
            yield comparison["output_column_name"], level


def test_a_session_4_model_replays_with_its_own_sql_and_parameters():
    saved = _saved()
    spark = model.trained_settings(saved, "spark")
    assert spark["probability_two_random_records_match"] == saved["probability_two_random_records_match"]
    pairs = list(zip(_levels(saved), _levels(spark), strict=True))
    assert any(level.get("label_for_charts") == model.BOTH_NAMES_LABEL for _, level in _levels(saved))
    for (name, trained), (name_s, replayed) in pairs:
        assert name == name_s and trained.get("label_for_charts") == replayed.get("label_for_charts")
        for key in ("m_probability", "u_probability", "is_null_level", "tf_adjustment_column"):
            assert trained.get(key) == replayed.get(key), (name, trained.get("label_for_charts"), key)
        expected = trained["sql_condition"] if trained["sql_condition"] == "ELSE" else sqlglot.transpile(
            trained["sql_condition"], read="duckdb", write="spark")[0]
        assert replayed["sql_condition"] == expected, (name, trained.get("label_for_charts"))
    rules = spark["blocking_rules_to_generate_predictions"]
    assert all(rule["sql_dialect"] == "spark" and '"' not in rule["blocking_rule"] for rule in rules)
    assert spark.get("sql_dialect", "spark") == "spark"


def test_a_model_that_cannot_be_replayed_names_itself_and_the_level():
    saved = _saved()
    saved["comparisons"][2]["comparison_levels"][1]["sql_condition"] = '"dob_hash_l" = = "dob_hash_r"'
    with pytest.raises(model.ReplayError, match=r"linkage run 7.*date_of_birth.*dob_hash"):
        model.trained_settings(saved, "spark", source="the model of linkage run 7")
    del saved["probability_two_random_records_match"]
    with pytest.raises(model.ReplayError, match=r"linkage_model\.json.*probability_two_random_records_match"):
        model.trained_settings(saved, "spark", source="linkage_model.json")


REQUIRED = os.environ.get("JOINEDUP_REQUIRE_SPARK") == "1"
HAS_SPARK = bool(shutil.which("java"))


@pytest.mark.skipif(not REQUIRED and not (HAS_SPARK and __import__("lib.linkage.spark").linkage.spark.available()),
                    reason="pyspark or Java 17 is not installed; JOINEDUP_REQUIRE_SPARK=1 makes this a failure")
def test_the_session_4_model_scores_the_same_pairs_on_spark_and_duckdb(tmp_path):
    """Scored end to end: the saved model on DuckDB (its own SQL) and replayed on Spark give the same pairs and
    probabilities (to 1e-9) on 1,500 synthetic encounters."""
    from splink import Linker
    from splink.backends.duckdb import DuckDBAPI

    from lib.linkage import lsh, run
    from lib.linkage import spark as spark_backend
    from tests.fixtures_linkage import synthetic_store

    con, _ = synthetic_store(tmp_path / "store.duckdb", n_encounters=1_500, seed=8, link=False)
    try:
        nodes, _ = run.deterministic_pass(con)
    finally:
        con.close()
    frame = lsh.with_keys(nodes[["unique_id", *model.FEATURES]])
    saved = _saved()
    linker = Linker(DuckDBAPI().register(frame, dataset_display_name="encounters"), model.scoring_settings(saved),
                    log_level=40)
    duck = linker.inference.predict(threshold_match_probability=0.3).as_pandas_dataframe()
    spark = spark_backend.predict(frame, saved, 0.3, master="local[2]", partitions=4)
    key = ["unique_id_l", "unique_id_r"]
    duck, spark = (f[[*key, "match_probability"]].sort_values(key).reset_index(drop=True) for f in (duck, spark))
    assert len(duck) > 100
    pd.testing.assert_frame_equal(duck, spark, check_exact=False, atol=1e-9, rtol=0, check_dtype=False)
