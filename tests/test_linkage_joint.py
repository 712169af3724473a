"""Both names disagreeing weighed once (lib.linkage.model.joint_name_levels): a child recorded under a false
name or an alias, once the Dice levels take typos out of the names' disagreement levels (issue 20)."""
from __future__ import annotations

import duckdb
import jellyfish
import pandas as pd
import pytest

from lib.linkage import model
from lib.records import bloom
from tests.fixtures_linkage import TEST_KEY

CUTS = {"forename": [0.6], "surname": [0.6]}


def _side(forename: str | None, surname: str | None) -> dict:
    return {"forename_hash": forename, "forename_canon_hash": forename,
            "forename_phonetic": jellyfish.metaphone(forename) if forename else None,
            "forename_bloom": bloom.Encoder(TEST_KEY, "forename").encode(forename),
            "surname_hash": surname, "surname_phonetic": jellyfish.metaphone(surname) if surname else None,
            "surname_bloom": bloom.Encoder(TEST_KEY, "surname").encode(surname)}


def _fired(left: tuple, right: tuple) -> tuple[bool, bool]:
    """(the forename comparison's 'Both names differ' condition, the surname comparison's) on one pair."""
    row = {**{f"{k}_l": v for k, v in _side(*left).items()}, **{f"{k}_r": v for k, v in _side(*right).items()}}
    con = duckdb.connect()
    con.register("raw", pd.DataFrame([row], dtype=object))
    blooms = ", ".join(f"CAST({f}_bloom_{s} AS BIGINT[]) AS {f}_bloom_{s}" for f in ("forename", "surname")
                       for s in "lr")  # a missing filter is a NULL list, as stored
    con.execute(f"CREATE TABLE pair AS SELECT * REPLACE ({blooms}) FROM raw")
    out = []
    for level in model.joint_name_levels(CUTS):
        sql = level.get_comparison_level("duckdb").sql_condition
        out.append(con.execute(f"SELECT coalesce(({sql}), false) FROM pair").fetchone()[0])
    return tuple(out)


@pytest.mark.parametrize(("left", "right", "both"), [
    (("JESSICA", "OKONKWO"), ("CHLOE", "BRIGHT"), True),  # a false name: nothing of either name agrees
    (("JESSICA", "OKONKWO"), ("CHLOE", "OKONKWO"), False),  # a sibling: the surname agrees
    (("JESSICA", "OKONKWO"), ("JESSICA", "BRIGHT"), False),  # the forename agrees
    (("JESSICA", "OKONKWO"), ("JESSICA", "OKONKWA"), False),
    (("JESSICA", "OKONKWO"), ("CHLOE", "OKONKOW"), False),  # the surname's Dice similarity is above its cut
    (("JESSICA", "OKONKWO"), ("OKONKWO", "JESSICA"), False),  # swapped: its own level
    (("JESSICA", "OKONKWO"), ("CHLOE", None), False),  # the surname unknown: no joint disagreement
])
def test_both_names_differ_only_when_no_level_of_either_name_agrees(left, right, both):
    assert _fired(left, right) == (both, both)


def test_the_surname_level_carries_no_weight_and_both_travel_to_spark():
    saved = model.settings(CUTS, joint_names=True).create_settings_dict(sql_dialect_str="duckdb")
    by_name = {c["output_column_name"]: c["comparison_levels"] for c in saved["comparisons"]}
    labels = [lvl.get("label_for_charts") for lvl in by_name["forename"]]
    assert labels[-2:] == [model.BOTH_NAMES_LABEL, "All other comparisons"] or labels[-2] == model.BOTH_NAMES_LABEL
    surname = next(lvl for lvl in by_name["surname"] if lvl.get("label_for_charts") == model.BOTH_NAMES_SURNAME_LABEL)
    assert surname.get("is_null_level") is True
    saved["probability_two_random_records_match"] = 0.001
    spark = model.trained_settings(saved, "spark")
    assert any(lvl.get("label_for_charts") == model.BOTH_NAMES_LABEL
               for c in spark["comparisons"] for lvl in c["comparison_levels"])


def test_a_child_under_a_false_name_is_found_again_with_the_dice_levels(tmp_path):
    """Built-in synthetic data (6% of police records under a false name or alias), 8,000 encounters, seed 11,
    NHS numbers removed, with the Dice levels, name blocking and the partial-date level: the two names'
    disagreement weighed once against weighed twice."""
    from bench import bench_recall

    encounters, truth = bench_recall.truth_sets(8_000, 11, 0.15)["built-in"]
    got = bench_recall.measure(encounters, truth, nhs=False, store_dir=tmp_path, models=("parts", "joint"))
    twice, once = got["parts"], got["joint"]
    assert once["recall"] > twice["recall"] + 0.02, (twice, once)
    assert once["f1"] > twice["f1"] + 0.01, (twice, once)
