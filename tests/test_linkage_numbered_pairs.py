"""Pairs of two NHS-number groups are blocked out of scoring (lib.linkage.model.scoring_settings, issue 19).

Two groups carry two different valid NHS numbers (the deterministic pass merged equal ones), so their pair was
scored and then always dropped by `inference.kept_edges`. Blocking them out must spare that work and leave every
kept edge, its weights and its levels exactly as they were."""
from __future__ import annotations

import duckdb
import pandas as pd

from lib.linkage import inference, lsh, model, run, training
from lib.linkage.config import noop
from tests.fixtures_linkage import synthetic_store


def _both_numbered(edges: pd.DataFrame, numbered: set) -> pd.Series:
    return edges["unique_id_l"].isin(numbered) & edges["unique_id_r"].isin(numbered)


def test_pairs_of_two_nhs_groups_are_not_scored_and_the_kept_edges_are_the_same(tmp_path):
    from splink.backends.duckdb import DuckDBAPI

    con, _ = synthetic_store(tmp_path / "store.duckdb", n_encounters=3_000, seed=5, link=False)
    nodes, _ = run.deterministic_pass(con)
    con.close()
    # every rule (name blocking's exploded one included), and every candidate pair kept whatever its score
    config = run.LinkConfig(name_similarity_min_nodes=0, review_floor_lowest=0.0, name_pairs_both_differ=True)
    frame = lsh.with_keys(nodes[["unique_id", *model.FEATURES, model.NUMBERED]])
    db_api = DuckDBAPI(connection=duckdb.connect())
    model_json = training.train_model(db_api, frame, config)
    assert any(rule.get("arrays_to_explode") for rule in model_json["blocking_rules_to_generate_predictions"])
    skipped = inference.score(db_api, frame, model_json, config, noop)
    everything = inference.score(DuckDBAPI(connection=duckdb.connect()), frame.drop(columns=model.NUMBERED),
                                 model_json, config, noop)

    numbered = set(nodes.loc[nodes[model.NUMBERED], "unique_id"])
    assert _both_numbered(everything, numbered).sum() > 20, "the data must hold pairs worth skipping"
    assert not _both_numbered(skipped, numbered).any()
    assert len(skipped) == len(everything) - _both_numbered(everything, numbered).sum()
    order = ["unique_id_l", "unique_id_r"]
    kept = [inference.kept_edges(scored, nodes).sort_values(order).reset_index(drop=True)
            for scored in (skipped, everything)]
    assert len(kept[0]) > 100
    pd.testing.assert_frame_equal(kept[0], kept[1], check_exact=True)


def test_name_blocking_leaves_out_only_pairs_whose_names_both_differ(tmp_path):
    """`model.without_names_both_differ`: every pair the filtered name blocking no longer proposes is one the model
    puts in its "Both names differ" level, and every other pair is scored exactly as before."""
    from splink.backends.duckdb import DuckDBAPI

    con, _ = synthetic_store(tmp_path / "store.duckdb", n_encounters=3_000, seed=5, link=False)
    nodes, _ = run.deterministic_pass(con)
    con.close()
    frame = lsh.with_keys(nodes[["unique_id", *model.FEATURES, model.NUMBERED]])
    config = run.LinkConfig(name_similarity_min_nodes=0, review_floor_lowest=0.0)
    model_json = training.train_model(DuckDBAPI(connection=duckdb.connect()), frame, config)
    assert model.has_joint_names(model_json) is True
    scored = {both: inference.score(DuckDBAPI(connection=duckdb.connect()), frame, model_json,
                                    run.LinkConfig(**{**config.__dict__, "name_pairs_both_differ": both}), noop)
              .set_index(["unique_id_l", "unique_id_r"]) for both in (True, False)}
    left_out = scored[True].index.difference(scored[False].index)
    assert len(left_out) > 50 and scored[False].index.isin(scored[True].index).all()
    forename = next(c for c in model_json["comparisons"] if c["output_column_name"] == "forename")
    levels = [level for level in forename["comparison_levels"] if not level.get("is_null_level")]
    both_differ = len(levels) - 1 - [level["label_for_charts"] for level in levels].index(model.BOTH_NAMES_LABEL)
    assert (scored[True].loc[left_out, "gamma_forename"] == both_differ).all()
    kept = scored[True].loc[scored[False].index]
    pd.testing.assert_frame_equal(kept, scored[False], check_exact=True)


def test_the_condition_is_added_at_scoring_time_only():
    """The stored model keeps the rules it was trained with; scoring adds the condition to every rule, the
    exploded one included, and leaves a frame without the column scored as before."""
    trained = {"blocking_rules_to_generate_predictions": [
        {"blocking_rule": 'l."dob_hash" = r."dob_hash"', "sql_dialect": "duckdb"},
        {"blocking_rule": 'l."name_lsh" = r."name_lsh"', "sql_dialect": "duckdb", "arrays_to_explode": ["name_lsh"]}]}
    scoring = model.scoring_settings(trained, skip_numbered_pairs=True)
    rules = scoring["blocking_rules_to_generate_predictions"]
    assert [r["blocking_rule"] for r in rules] == [
        '(l."dob_hash" = r."dob_hash") AND NOT (l.has_nhs AND r.has_nhs)',
        '(l."name_lsh" = r."name_lsh") AND NOT (l.has_nhs AND r.has_nhs)']
    assert rules[1]["arrays_to_explode"] == ["name_lsh"]
    assert trained["blocking_rules_to_generate_predictions"][0]["blocking_rule"] == 'l."dob_hash" = r."dob_hash"'
    assert model.scoring_settings(trained)["blocking_rules_to_generate_predictions"] == \
        trained["blocking_rules_to_generate_predictions"]
