"""Keyed Bloom filters of names (lib.records.bloom), their Dice levels in linkage (lib.linkage.dice) and what
they buy on names damaged by a corruption model independent of lib/synth (bench/corruption.py)."""
from __future__ import annotations

import math

import duckdb
import numpy as np
import pandas as pd
import pytest

from lib.linkage import dice, model
from lib.records import bloom
from tests.fixtures_linkage import TEST_KEY

OTHER_KEY = b"another-key-entirely-0123456789abcdef"


def common_names(count: int = 1_000) -> list[str]:
    """The `count` most frequent names of lib.synth's vocabularies (up to half forenames, the rest surnames)."""
    from lib.synth.names import names

    vocab = names()
    fore = sorted(zip(np.concatenate([vocab.boy_p, vocab.girl_p]),
                      np.concatenate([vocab.boy_ids, vocab.girl_ids])), reverse=True)
    sur = sorted(zip(vocab.surname_p, vocab.surname_ids), reverse=True)
    out = list(dict.fromkeys(str(vocab.forenames.strings[i]).upper() for _, i in fore))[:count // 2]
    surnames = (str(vocab.surnames.strings[i]).upper() for _, i in sur)
    out = list(dict.fromkeys([*out, *surnames]))[:count]
    assert len(out) == count
    return out


# -- the construction ------------------------------------------------------------------------------------

def test_bigrams_and_dice_on_hand_computed_pairs():
    assert bloom.bigrams("ANN") == [" A", "AN", "NN", "N "]
    assert bloom.bigrams("ANNA") == [" A", "AN", "NN", "NA", "A "]
    # |A| = 4, |B| = 2, |A∧B| = 2: Dice = 2·2 / (4 + 2)
    assert bloom.dice([0b1111, 0, 0, 0], [0b0011, 0, 0, 0]) == pytest.approx(4 / 6)
    # bits in different words and the sign bit: A = {0, 64, 255}, B = {64, 255, 130}: 2·2 / 6
    a = [1, 1, 0, -(2 ** 63)]
    b = [0, 1, 4, -(2 ** 63)]
    assert bloom.dice(a, b) == pytest.approx(4 / 6)
    assert bloom.dice(a, [0, 0, 0, 0]) == 0.0
    assert bloom.dice([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0
    assert bloom.dice(a, a) == 1.0


def test_dice_in_sql_equals_dice_in_python():
    encoder = bloom.Encoder(TEST_KEY, "surname")
    pairs = [("MCCARTHY", "MCARTHY"), ("ISABELLE", "ISABELL"), ("SMITH", "SMYTH"), ("JONES", "OKONKWO"),
             ("A", "AB"), ("KATHERINE", "KATHRINE")]
    frame = pd.DataFrame({"a": [encoder.encode(x) for x, _ in pairs], "b": [encoder.encode(y) for _, y in pairs]})
    sql = bloom.dice_sql("f").replace('"f_l"', "a").replace('"f_r"', "b")
    got = duckdb.sql(f"SELECT {sql} AS d FROM frame").df()["d"].to_numpy()
    want = [bloom.dice(a, b) for a, b in zip(frame["a"], frame["b"])]
    assert np.allclose(got, want)
    # a misspelling stays close, an unrelated name does not
    assert got[0] > 0.75 and got[1] > 0.8 and got[3] < 0.4  # bigram Dice 0.82, 0.82, 0


def test_same_name_under_two_keys_shares_no_more_bits_than_chance():
    """Given the bits set under key 1 (|A|) and key 2 (|B|), an independent filter would share each of A's
    bits with probability |B|/256: the overlaps summed over 1,000 names are a sum of binomials, and must lie
    within 4.5 standard deviations of their mean (a one-in-150,000 event if the keys are independent)."""
    one, two = bloom.Encoder(TEST_KEY, "surname"), bloom.Encoder(OTHER_KEY, "surname")
    overlap, mean, variance = 0, 0.0, 0.0
    for name in common_names():
        a, b = one.bits(name), two.bits(name)
        p = b.sum() / bloom.BITS
        overlap += int((a & b).sum())
        mean += a.sum() * p
        variance += a.sum() * p * (1 - p)
    assert abs(overlap - mean) <= 4.5 * math.sqrt(variance), (overlap, mean, variance)
    # the same key gives the same bits (so the test above can fail)
    assert (one.bits("SMITH") == bloom.Encoder(TEST_KEY, "surname").bits("SMITH")).all()


def test_field_salting_gives_unrelated_filters_per_field():
    fore, sur = bloom.Encoder(TEST_KEY, "forename"), bloom.Encoder(TEST_KEY, "surname")
    names = common_names(200)
    same = np.mean([bloom.dice(fore.encode(n), sur.encode(n)) for n in names])
    assert same < 0.4  # about the Dice of two unrelated names, not 1


def test_dictionary_attack_with_the_wrong_key_matches_nothing():
    """An attacker holding the stored filters of 1,000 common names and guessing with another key finds no
    filter equal to, or as close as a misspelling to, any guess; with the right key every name is found."""
    names = common_names()
    stored = np.array([bloom.to_bits(w) for w in bloom.Encoder(TEST_KEY, "surname").encode_many(names)], dtype=int)
    guesses = np.array([bloom.to_bits(w) for w in bloom.Encoder(OTHER_KEY, "surname").encode_many(names)],
                       dtype=int)

    def best_dice(left, right):
        both = left @ right.T
        return (2 * both / (left.sum(1)[:, None] + right.sum(1)[None, :])).max()

    assert best_dice(guesses, stored) < 0.6
    right = np.array([bloom.to_bits(w) for w in bloom.Encoder(TEST_KEY, "surname").encode_many(names)], dtype=int)
    assert (np.diag(2 * (right @ stored.T) / (right.sum(1)[:, None] + stored.sum(1)[None, :])) == 1).all()


def test_stored_encodings_never_contain_the_clear_name(tmp_path):
    from lib.records import ingest, store
    from lib.synth import SynthConfig, generate

    encounters, _ = generate(SynthConfig(n_encounters=600, seed=4))
    con = store.connect(tmp_path / "s.duckdb")
    ingest.commit(con, ingest.prepare_frame(encounters, "synthetic.parquet", key=TEST_KEY))
    rows = con.execute("SELECT forename_bloom, surname_bloom FROM encounters "
                       "WHERE forename_bloom IS NOT NULL").fetchall()
    dump = con.execute("SELECT * FROM encounters").df().astype(str).to_csv().upper()
    con.close()
    assert len(rows) > 500 and all(len(f) == bloom.WORDS for f, _ in rows)
    raw = b"".join(np.asarray(f + s, dtype="<i8").tobytes() for f, s in rows).upper()
    names = {n.upper() for n in pd.concat([encounters["forename"], encounters["surname"]]).dropna() if len(n) >= 4}
    assert names
    assert not [n for n in names if n.encode() in raw]
    assert not [n for n in names if n in dump]


def test_a_store_made_before_the_filters_gains_the_columns(tmp_path):
    from lib.records import store

    path = tmp_path / "old.duckdb"
    old = [(n, t) for n, t in store.ENCOUNTER_COLUMNS if not n.endswith("_bloom")]
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE encounters (" + ", ".join(f"{n} {t}" for n, t in old) + ")")
    con.close()
    con = store.connect(path)
    columns = {r[0]: r[1] for r in con.execute("DESCRIBE encounters").fetchall()}
    con.close()
    assert columns["forename_bloom"] == "BIGINT[]" and columns["surname_bloom"] == "BIGINT[]"


# -- the levels ------------------------------------------------------------------------------------------

def test_cut_points_come_from_the_data_and_travel_in_the_model_json():
    rng = np.random.default_rng(0)
    assert 0.5 <= dice._best_cut(rng.uniform(0.7, 1, 500), rng.uniform(0, 0.5, 500), dice.GRID) <= 0.7
    # m pairs all at 0.8, u pairs at 0.2 (90%) and 0.9 (10%): J is 1 - 0.1 from 0.21 to 0.8, so the first, 0.30
    assert dice._best_cut(np.full(100, 0.8), np.r_[np.full(90, 0.2), np.full(10, 0.9)], dice.GRID) == 0.30
    assert dice._best_cut(rng.uniform(0.7, 1, 5), rng.uniform(0, 0.5, 500), dice.GRID) is None
    settings = model.settings({"forename": [0.66], "surname": [0.71]}).create_settings_dict(sql_dialect_str="duckdb")
    assert dice.thresholds_in(settings) == {"forename": [0.66], "surname": [0.71]}
    spark_sql = model.settings({"forename": [0.66], "surname": []}).create_settings_dict(sql_dialect_str="spark")
    level = next(lv for c in spark_sql["comparisons"] for lv in c["comparison_levels"]
                 if lv.get("label_for_charts") == "Forename Dice >= 0.66")
    assert "[0]" in level["sql_condition"] and "[4]" not in level["sql_condition"]  # Spark arrays count from 0


# -- what it buys ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def independent(tmp_path_factory):
    """bench_recall's before/after on 8,000 synthetic encounters damaged by bench/corruption.py (seed 11),
    NHS numbers removed."""
    from bench import bench_recall

    truth_sets = bench_recall.truth_sets(8_000, 11, 0.15)
    encounters, truth = truth_sets["independent"]
    # "dice": the Dice levels alone (name blocking is measured in tests/test_recall_lsh.py)
    scores = bench_recall.measure(encounters, truth, nhs=False, store_dir=tmp_path_factory.mktemp("recall"),
                                  models=("before", "dice"))
    return {"before": scores["before"], "after": scores["dice"]}


def test_dice_levels_find_more_of_the_same_child_on_independently_damaged_names(independent):
    before, after = independent["before"], independent["after"]
    # measured at this seed and size (docs/LINKAGE_PRIVACY.md has the 100,000-record table): the issue's +5
    # points are not reached; recall at equal precision 0.9589 -> 0.9593, F1 and precision up. Pinned as
    # strict gains, so removing the levels (both models then identical) fails.
    assert after["recall_at_equal_precision"] > before["recall_at_equal_precision"], (before, after)
    assert after["f1"] > before["f1"] + 0.002, (before["f1"], after["f1"])
    assert after["precision"] >= before["precision"] - 0.001


def test_the_review_queue_does_not_grow(independent):
    # at one floor for both models (the typed 0.5 this test was written for): since session 6 each run trains its
    # own floor (inference.trained_review_floor), so "review_per_100k" compares two floors as well as two models
    assert independent["after"]["review_per_100k_typed"] <= independent["before"]["review_per_100k_typed"]
    from lib.linkage.config import LinkConfig

    cap = LinkConfig().review_cap_per_100k  # the trained floors' queues stay within the reviewers' capacity
    assert max(independent["after"]["review_per_100k"], independent["before"]["review_per_100k"]) <= cap
