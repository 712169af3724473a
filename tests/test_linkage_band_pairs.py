"""Name blocking's pairs found in DuckDB and handed to Splink as pair keys (lib.linkage.band_pairs, issue 19).

The pairs Splink scores, their sides, their weights and the level each comparison fired must be exactly those of
the exploding band-key rule as Splink ran it before (the reference below: the model's rules as trained, on the
band keys), every candidate kept whatever its score so nothing hides under the floor."""
from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from lib.linkage import band_pairs, inference, lsh, model, run, training
from lib.linkage.config import noop
from tests.fixtures_linkage import synthetic_store


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from splink.backends.duckdb import DuckDBAPI

    con, _ = synthetic_store(tmp_path_factory.mktemp("band") / "store.duckdb", n_encounters=3_000, seed=5,
                             link=False)
    nodes, _ = run.deterministic_pass(con)
    con.close()
    frame = lsh.with_keys(nodes[["unique_id", *model.FEATURES, model.NUMBERED]])
    config = run.LinkConfig(name_similarity_min_nodes=0, review_floor_lowest=0.0)
    return frame, training.train_model(DuckDBAPI(connection=duckdb.connect()), frame, config), config


def _reference(frame: pd.DataFrame, model_json: dict, both_differ: bool) -> pd.DataFrame:
    """Splink's own exploding rule on the band keys, as scoring ran before band_pairs."""
    from splink import Linker
    from splink.backends.duckdb import DuckDBAPI

    rules = model_json if both_differ else model.without_names_both_differ(model_json)
    api = DuckDBAPI(connection=duckdb.connect())
    linker = Linker(api.register(frame, dataset_display_name="encounters"), model.scoring_settings(rules, True),
                    log_level=40)
    relation = linker.inference.predict(threshold_match_probability=0.0).as_duckdbpyrelation()
    return relation.select(*model.edge_columns(relation.columns)).df()


@pytest.mark.parametrize("both_differ", [False, True])
def test_pair_keys_score_exactly_the_pairs_the_band_rule_did(trained, both_differ):
    from splink.backends.duckdb import DuckDBAPI

    frame, model_json, config = trained
    config = run.LinkConfig(**{**config.__dict__, "name_pairs_both_differ": both_differ})
    ours = inference.score(DuckDBAPI(connection=duckdb.connect()), frame, model_json, config, noop)
    _same_scores(ours, _reference(frame, model_json, both_differ), at_least=1_000)


def _same_scores(ours: pd.DataFrame, theirs: pd.DataFrame, at_least: int) -> None:
    """The same pairs, sides, weights and levels, to the bit (pair order aside)."""
    order = ["unique_id_l", "unique_id_r"]
    ours, theirs = (f.sort_values(order).reset_index(drop=True) for f in (ours, theirs))
    assert len(theirs) > at_least
    pd.testing.assert_frame_equal(ours[order].astype(str), theirs[order].astype(str))
    numeric = [c for c in theirs.columns if c not in order]
    pd.testing.assert_frame_equal(ours[numeric], theirs[numeric], check_exact=True, check_dtype=False)


def test_each_pair_key_is_held_by_its_two_nodes_and_no_other_rule_proposes_the_pair(trained):
    frame, model_json, _ = trained
    codes, _ = pd.factorize(frame["unique_id"], sort=True)
    keyed, pairs = band_pairs.pair_keys(frame.assign(unique_id=codes), model_json, True, False)
    held = keyed[["unique_id", lsh.COLUMN]].dropna().explode(lsh.COLUMN)
    per_key = held.groupby(lsh.COLUMN)["unique_id"].nunique()
    assert pairs > 50 and len(per_key) == pairs and (per_key == 2).all()
    rules = band_pairs.scoring_model(model_json)["blocking_rules_to_generate_predictions"]
    assert rules[0] == {**rules[0], "blocking_rule": 'l."name_lsh" = r."name_lsh"', "arrays_to_explode": ["name_lsh"]}
    assert not any(r.get("arrays_to_explode") for r in rules[1:])
    stored = model_json["blocking_rules_to_generate_predictions"]
    assert stored[-1]["arrays_to_explode"] == ["name_lsh"]  # the stored model keeps its order


@pytest.mark.parametrize(("conditions", "hashable"), [
    ('coalesce(("x_l" = "x_r") AND ("y_l" = "y_r"), false)', True),
    ('"x_l" IS NOT NULL AND "x_r" IS NOT NULL AND NOT coalesce("x_l" = "x_r", false)', True),
    ('"d_l" = "x_r" AND "s_l" = "s_r"', True),  # two columns' equality: both hashed alike
    ('substr("x_l", 1, 2) = substr("x_r", 1, 2)', False),
    ('lower("x_l") = "x_r"', False),
    ('"x_l" = "x_r" || \'A\'', False),
    ('\'A\' || "x_l" = "x_r"', False),
    ('"x_l" < "x_r"', False),
    ('"x_l" = "x_r" OR levenshtein("x_l", "x_r") <= 1', False),
])
def test_a_text_column_is_held_as_a_hash_only_where_it_is_only_compared_for_equality(conditions, hashable):
    """band_pairs._nodes holds a text column as its 64-bit hash (on one 5M store the filtering went 72.1 -> 45.9 s)
    only where every use is an equality between two columns or a null test: a hash keeps equality, not order or
    substrings."""
    assert band_pairs._only_compared(conditions, "x") is hashable


def _bounds(frame: pd.DataFrame, model_json: dict, pairs: pd.DataFrame) -> pd.Series:
    """weight_bound.bound_sql evaluated on `pairs` (unique_id_l, unique_id_r) of `frame`, less its margin."""
    from lib.linkage import weight_bound

    lists = {c for c in frame.columns if c == lsh.COLUMN or c.endswith("_bloom")}
    con = duckdb.connect()
    con.register("frame_in", frame.drop(columns=[lsh.COLUMN]))
    con.register("pairs", pairs[["unique_id_l", "unique_id_r"]])
    tf = weight_bound.tf_columns(model_json)
    assert tf == ["surname_hash"]
    con.execute(f"""CREATE TABLE nodes AS SELECT * FROM frame_in
                    LEFT JOIN ({weight_bound.tf_table_sql('surname_hash', 'frame_in')}) USING (surname_hash)""")
    bound = weight_bound.bound_sql(model_json, lists)
    out = con.execute(f"""SELECT ({model.on_rows(bound)}) - {weight_bound.MARGIN} FROM pairs p
                          JOIN nodes l ON l.unique_id = p.unique_id_l JOIN nodes r ON r.unique_id = p.unique_id_r
                          ORDER BY p.unique_id_l, p.unique_id_r""").fetchall()
    return pd.Series([row[0] for row in out])


def test_the_weight_bound_is_never_below_the_weight_splink_gives(trained):
    """weight_bound: every pair Splink scores (every candidate, the floor at 0) has a bound at or above its match
    weight, rare surnames' term-frequency adjustment included; and the bound is not vacuous: for some pairs it is
    the weight itself (names at their best level), for many it is far below the 0.5 floor's weight."""
    frame, model_json, _ = trained
    theirs = _reference(frame, model_json, True).sort_values(["unique_id_l", "unique_id_r"]).reset_index(drop=True)
    bound = _bounds(frame, model_json, theirs)
    gap = bound - theirs["match_weight"]
    assert len(theirs) > 1_000
    assert gap.min() >= -1e-9, theirs.loc[gap.idxmin()].to_dict()
    assert (gap.abs() < 1e-9).sum() > 100  # exact where both names agree exactly
    assert (bound < 0).sum() > 100


@pytest.mark.parametrize("floor", [0.1, 0.5])
def test_pairs_under_the_weight_bound_are_not_scored_and_nothing_at_the_floor_is_lost(trained, floor):
    """A floor above 0: pair_keys drops the pairs whose bound cannot reach it (fewer pair keys than at floor 0), and
    the pairs scored at or above the floor, their sides, weights and levels are exactly Splink's own rules'."""
    from splink.backends.duckdb import DuckDBAPI

    frame, model_json, config = trained
    codes, _ = pd.factorize(frame["unique_id"], sort=True)
    numbered = frame.assign(unique_id=codes)
    _, everything = band_pairs.pair_keys(numbered, model_json, True, False)
    _, reachable = band_pairs.pair_keys(numbered, model_json, True, False, floor=floor)
    assert reachable < everything * 0.9
    config = run.LinkConfig(**{**config.__dict__, "review_floor_lowest": floor})
    ours = inference.score(DuckDBAPI(connection=duckdb.connect()), frame, model_json, config, noop)
    theirs = _reference(frame, model_json, False)
    _same_scores(ours, theirs[theirs["match_probability"] >= floor], at_least=500)


def test_the_rule_on_names_alone_is_found_before_splink_and_left_out_of_its_rules(trained):
    """band_pairs.national: the same forename and surname anywhere is the one rule on names alone; scoring's
    rules are the pair keys and every other rule, in the model's order."""
    _, model_json, _ = trained
    stored = model_json["blocking_rules_to_generate_predictions"]
    assert [band_pairs.national(r) for r in stored] == [True] + [False] * (len(stored) - 1)
    scoring = band_pairs.scoring_model(model_json)["blocking_rules_to_generate_predictions"]
    assert scoring[1:] == stored[1:-1]


def _estimates(model_json: dict) -> dict:
    out = {"lambda": model_json["probability_two_random_records_match"]}
    for comparison in model_json["comparisons"]:
        for level in comparison["comparison_levels"]:
            for name in ("m_probability", "u_probability"):
                if level.get(name) is not None:
                    out[(comparison["output_column_name"], level.get("label_for_charts"), name)] = level[name]
    return out


def test_training_beside_the_band_keys_gives_the_model_trained_on_them(trained):
    """The link computes the band keys in a thread beside training (inference.probabilistic_pass): training is told the
    keys will be there instead of reading them, and must give the same rules and the same estimates."""
    from splink.backends.duckdb import DuckDBAPI

    frame, model_json, config = trained
    without = frame.drop(columns=[lsh.COLUMN])
    beside = training.train_model(DuckDBAPI(connection=duckdb.connect()), without, config, name_lsh=True)
    assert beside["blocking_rules_to_generate_predictions"] == model_json["blocking_rules_to_generate_predictions"]
    ours, theirs = _estimates(beside), _estimates(model_json)
    assert ours.keys() == theirs.keys()
    assert all(ours[k] == pytest.approx(theirs[k], rel=1e-9) for k in theirs)
    plain = training.train_model(DuckDBAPI(connection=duckdb.connect()), without, config)  # no keys, none announced
    assert lsh.COLUMN not in str(plain["blocking_rules_to_generate_predictions"])


def _pair_sets(keyed: pd.DataFrame) -> set[tuple[int, int]]:
    """The pairs a `pair_keys` frame's keys join (each key held by its two nodes), as (smaller id, larger id)."""
    held = keyed[["unique_id", lsh.COLUMN]].dropna().explode(lsh.COLUMN)
    ends = held.groupby(lsh.COLUMN)["unique_id"].agg(["min", "max"])
    return set(zip(ends["min"], ends["max"], strict=True))


def test_the_band_pairs_found_beside_training_are_those_found_after_it(trained):
    """inference.probabilistic_pass finds the band keys' pairs whose names do not both differ on the model's settings
    before its parameters are estimated (band_pairs.name_meetings, given `train_model`'s `on_settings`); pair_keys on
    the trained model with them gives the pairs it finds alone. Meetings found under another names test (every pair
    kept) are not used: pair_keys closes them and finds its own."""
    from splink.backends.duckdb import DuckDBAPI

    frame, model_json, config = trained
    settings = []
    trained_again = training.train_model(DuckDBAPI(connection=duckdb.connect()), frame.drop(columns=[lsh.COLUMN]),
                                         config, name_lsh=True, on_settings=settings.append)
    assert len(settings) == 1 and settings[0]["comparisons"] != trained_again["comparisons"]  # before estimation
    numbered = frame.assign(unique_id=pd.factorize(frame["unique_id"], sort=True)[0])
    alone, n_alone = band_pairs.pair_keys(numbered, model_json, True, False, floor=0.1)
    meetings = band_pairs.name_meetings(numbered, settings[0], False)
    assert meetings.both is not None and meetings.source == "named"
    beside, n_beside = band_pairs.pair_keys(numbered, model_json, True, False, floor=0.1, meetings=meetings)
    assert n_alone == n_beside > 50 and _pair_sets(beside) == _pair_sets(alone)
    with pytest.raises(duckdb.ConnectionException):  # closed once read
        meetings.con.execute("SELECT 1")
    every = band_pairs.name_meetings(numbered, settings[0], True)  # names that both differ kept: not this test
    assert every.both is None
    other, n_other = band_pairs.pair_keys(numbered, model_json, True, False, floor=0.1, meetings=every)
    assert n_other == n_alone and _pair_sets(other) == _pair_sets(alone)


@pytest.mark.parametrize("settings_first", [False, True])
def test_training_that_stops_stops_the_pass_and_its_thread(trained, monkeypatch, settings_first):
    """Training raising (before or after it made its settings) reaches the caller as it is (lib.linkage.run then
    keeps the NHS-number pass alone), and the thread finding the band pairs beside it does not wait for settings
    that will never come."""
    import threading

    frame, model_json, config = trained

    def stops(db_api, frame, config, name_lsh=None, on_settings=None):
        if settings_first:
            on_settings(model_json)
        raise model.TrainingError("too few records")

    monkeypatch.setattr(inference.training, "train_model", stops)
    outcome = {}

    def run_pass():
        try:
            inference.probabilistic_pass(frame, config)
        except model.TrainingError as exc:
            outcome["raised"] = exc

    worker = threading.Thread(target=run_pass, daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive() and str(outcome["raised"]) == "too few records"


def test_the_names_test_on_counted_bits_equals_the_models_dice():
    """pair_keys tests names on plain word columns, each filter's set bits counted once per node (`_words`,
    `_nodes`, `_pairs`); the pairs at a cut-point must be those of the model's own Dice SQL on the same filters:
    dense, sparse, empty and missing filters, related and unrelated."""
    import numpy as np

    from lib.records import bloom

    rng = np.random.default_rng(7)
    filters = []
    for _ in range(300):
        kind = rng.integers(0, 6)
        if kind == 0:
            filters.append(None)  # no filter
        elif kind == 1:
            filters.append([0] * bloom.WORDS)  # an empty one
        elif kind == 5 and filters and filters[-1] is not None:  # a near copy of the one before
            filters.append([w ^ (1 << int(rng.integers(0, 63))) for w in filters[-1]])
        else:  # sparse to dense words
            filters.append([int(w) for w in rng.integers(-2**63, 2**63 - 1, bloom.WORDS, dtype=np.int64)
                            & rng.integers(-2**63, 2**63 - 1, bloom.WORDS, dtype=np.int64)])
    frame = pd.DataFrame({"unique_id": np.arange(300, dtype=np.int64), "forename_bloom": filters})
    pairs = pd.DataFrame({"a": np.r_[np.arange(299), rng.integers(0, 300, 600)],
                          "b": np.r_[np.arange(1, 300), rng.integers(0, 300, 600)]})
    con = duckdb.connect()
    con.register("frame_in", frame)
    con.execute("CREATE TEMP VIEW nodes_in AS SELECT * FROM frame_in")
    con.register("pairs_in", pairs)
    con.execute("CREATE TEMP TABLE met AS SELECT DISTINCT a, b FROM pairs_in WHERE a < b")
    model_sql = f"coalesce({bloom.dice_sql('forename_bloom')} >= 0.55, false)"
    ours = band_pairs._words(model_sql)
    assert '"forename_bloomn_l" + "forename_bloomn_r"' in ours and 'bit_count("forename_bloom1_l")' not in ours
    band_pairs._nodes(con, frame, ours, table="names", source="met")
    got = set(con.execute(band_pairs._pairs(con, "names", "met", ours)).fetchall())
    theirs = set(con.execute(f"""
        SELECT a, b FROM (SELECT p.a, p.b, l.forename_bloom AS forename_bloom_l, r.forename_bloom AS forename_bloom_r
                          FROM met p JOIN frame_in l ON l.unique_id = p.a JOIN frame_in r ON r.unique_id = p.b)
        WHERE {model_sql}""").fetchall())
    assert got == theirs and len(theirs) > 20
