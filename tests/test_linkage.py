"""Linkage: deterministic pass, conflicts, anonymity, reviewer decisions, quality targets, CLI."""
from __future__ import annotations

import json
import subprocess
import sys

import duckdb
import pandas as pd
import pytest

from lib.linkage import evaluate as ev
from lib.linkage import model, run
from tests.conftest import ROOT
from tests.fixtures_linkage import synthetic_store


@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    path = tmp_path_factory.mktemp("linkage") / "store.duckdb"
    con, truth = synthetic_store(path, n_encounters=20_000, seed=11)
    yield con, truth, path
    con.close()


def _record(key, nhs=None, fore="F1", canon="F1", sur="S1", dob="D1", swap="W1", year=2010, anonymous=False,
            agency="police"):
    return {"record_key": key, "agency_type": agency, "nhs_status": "valid" if nhs else "missing", "nhs_hash": nhs,
            "forename_hash": fore, "forename_canon_hash": canon, "forename_phonetic": fore[:1],
            "surname_hash": sur, "surname_phonetic": sur[:1], "dob_hash": dob, "dob_swap_hash": swap,
            "dob_dm_hash": None, "dob_ym_hash": None, "dob_yd_hash": None,  # no partial-date hashes here
            "birth_year": year, "sex": "F", "home_postcode_hash": "P", "home_sector": "LS6 2",
            "home_district": "LS6", "forename_bloom": None, "surname_bloom": None,  # no name filters here
            "enc_lad": "area 1", "is_anonymous": anonymous}


def test_deterministic_pass_groups_a_valid_nhs_number_and_flags_a_contradiction():
    records = pd.DataFrame([
        _record("a", nhs="n1"), _record("b", nhs="n1", fore="F9", canon="F1"),  # nickname: same child
        _record("c", nhs="n1", dob="D1x", swap="W1x", year=2011),  # DOB error only: same child
        _record("d", nhs="n1", fore="Z", canon="Z", sur="Q", dob="D7", swap=None, year=2004),  # flatly contradicts
        _record("e"), _record("f", anonymous=True),
    ])
    nodes, record_nodes = run.deterministic_pass(records)
    by_key = record_nodes.set_index("record_key")
    assert by_key.loc["a", "node_id"] == by_key.loc["b", "node_id"] == by_key.loc["c", "node_id"]
    assert by_key.loc["d", "nhs_conflict"] and by_key.loc["d", "node_id"] == "R:d"
    assert by_key.loc["a", "shared_number_suspected"] and not by_key.loc["a", "nhs_conflict"]
    assert "f" not in by_key.index  # anonymous contacts never enter linkage
    assert len(nodes) == 3  # the n1 group, d on its own, e on its own
    rep = nodes.set_index("unique_id").loc[by_key.loc["a", "node_id"]]
    assert rep["forename_hash"] == _narrowed("F1") and rep["dob_hash"] == _narrowed("D1")  # modal identity
    assert pd.isna(rep["dob_dm_hash"])  # a null hash stays null (DuckDB's hash of NULL is a number)


def _narrowed(text: str) -> int:
    """A hashed feature as linkage holds it (model.narrowed)."""
    sql = f"SELECT {model.narrowed('surname_hash')} FROM (SELECT ?::VARCHAR AS surname_hash)"
    return duckdb.execute(sql, [text]).fetchall()[0][0]


def test_hashed_features_reach_linkage_as_distinct_integers_and_nulls_stay_null():
    records = pd.DataFrame([_record("a", nhs="n1"), _record("b", sur="S2"), {**_record("c"), "forename_hash": None}])
    nodes, _ = run.deterministic_pass(records)
    assert [f for f in model.FEATURES if f.endswith("_hash")] == model.HASHED and len(model.HASHED) == 9
    for column in model.HASHED:
        assert pd.api.types.is_integer_dtype(nodes[column]), column
    by_id = nodes.set_index("unique_id")
    assert _narrowed("S1") == by_id.loc["N:a", "surname_hash"] != by_id.loc["R:b", "surname_hash"]
    assert pd.isna(by_id.loc["R:c", "forename_hash"]) and by_id.loc["R:c", "home_sector"] == "LS6 2"


def test_two_numbers_with_identical_identities_stay_two_groups():
    # Twins, say: same name hashes and date of birth, different valid NHS numbers.
    records = pd.DataFrame([_record("a", nhs="n1"), _record("b", nhs="n1"), _record("c", nhs="n2")])
    nodes, record_nodes = run.deterministic_pass(records)
    assert len(nodes) == 2
    assert set(record_nodes["node_id"]) == set(nodes["unique_id"])


def test_pairwise_scores_on_hand_made_labels():
    predicted = pd.Series(["x", "x", "x", "y", "z"])
    truth = pd.Series([1, 1, 2, 2, 3])
    scores = ev.pairwise_scores(predicted, truth)
    # predicted pairs: 3 (within x); true pairs: 2; correct: 1 (the first two)
    assert scores["precision"] == pytest.approx(1 / 3, abs=1e-4)
    assert scores["recall"] == pytest.approx(0.5)
    assert scores["f1"] == pytest.approx(0.4, abs=1e-4)


def test_anonymous_contacts_are_never_linked(linked):
    con, _, _ = linked
    rows = con.execute("""SELECT count(*), count(r.child_id) FROM encounters e JOIN record_child r USING (record_key)
                          WHERE e.is_anonymous""").fetchall()[0]
    assert rows[0] > 0 and rows[1] == 0


def test_every_record_gets_exactly_one_outcome(linked):
    con, _, _ = linked
    stored, outcomes, distinct = con.execute(
        "SELECT (SELECT count(*) FROM encounters), count(*), count(DISTINCT record_key) FROM record_child"
    ).fetchall()[0]
    assert stored == outcomes == distinct


def test_quality_targets_on_the_default_synthetic_profile(linked):
    con, truth, _ = linked
    scores = ev.evaluate(con, truth)
    assert scores["f1"] >= 0.97, scores
    assert abs(scores["multi_agency_relative_error"]) <= 0.03, scores


def test_shared_number_conflicts_are_flagged_on_synthetic_data(linked):
    con, truth, _ = linked
    flagged = con.execute("""SELECT e.agency_type, e.source_record_id FROM record_child r
                             JOIN encounters e USING (record_key) WHERE r.nhs_conflict""").df()
    assert len(flagged) > 0
    detail = flagged.merge(truth, on=["agency_type", "source_record_id"])
    # Most flagged records really carry another child's number.
    assert (detail["nhs_status"] == "other_child").mean() >= 0.5


def _isolated_pair(con, status):
    """An edge of the given status whose two groups are joined by no other edge."""
    edges = con.execute("SELECT * FROM link_edges").df()
    joining = edges[edges["status"].isin(["linked", "accepted by reviewer"])]
    degree = pd.concat([joining["node_l"], joining["node_r"]]).value_counts()
    nhs_nodes = set(con.execute("SELECT node_id FROM record_child WHERE by_nhs").df()["node_id"])
    for row in edges[edges["status"] == status].itertuples():
        if degree.get(row.node_l, 0) <= (status == "linked") and degree.get(row.node_r, 0) <= (status == "linked") \
                and row.node_l not in nhs_nodes and row.node_r not in nhs_nodes:
            return row
    pytest.skip(f"no isolated {status} edge in this dataset")


def _child(con, record_key):
    return con.execute("SELECT child_id FROM record_child WHERE record_key = ?", [record_key]).fetchall()[0][0]


def test_reviewer_decisions_are_respected_on_the_next_run(linked):
    con, _, _ = linked
    reject = _isolated_pair(con, "linked")
    accept = _isolated_pair(con, "review")
    assert _child(con, reject.record_key_l) == _child(con, reject.record_key_r)
    assert _child(con, accept.record_key_l) != _child(con, accept.record_key_r)
    run.record_decision(con, reject.record_key_l, reject.record_key_r, "reject", "test reviewer")
    run.record_decision(con, accept.record_key_l, accept.record_key_r, "accept", "test reviewer")
    summary = run.link(con, run.LinkConfig())
    assert summary["reviewer_rejected"] >= 1 and summary["reviewer_accepted"] >= 1
    assert _child(con, reject.record_key_l) != _child(con, reject.record_key_r)
    assert _child(con, accept.record_key_l) == _child(con, accept.record_key_r)
    methods = con.execute("SELECT link_method FROM record_child WHERE record_key IN (?, ?)",
                          [accept.record_key_l, accept.record_key_r]).df()["link_method"]
    assert set(methods) == {"reviewer"}
    with pytest.raises(ValueError):
        run.record_decision(con, "a", "b", "maybe", "x")


def test_no_child_holds_two_different_nhs_numbers(linked):
    con, _, _ = linked
    worst = con.execute("""SELECT max(n) FROM (SELECT child_id, count(DISTINCT node_id) AS n FROM record_child
                           WHERE by_nhs GROUP BY child_id)""").fetchall()[0][0]
    assert worst == 1


def test_review_queue_holds_only_pairs_that_are_still_two_children(linked):
    con, _, _ = linked
    edges = con.execute("SELECT record_key_l, record_key_r, status FROM link_edges").df()
    child = con.execute("SELECT record_key, child_id FROM record_child").df().set_index("record_key")["child_id"]
    queued = edges[edges["status"] == "review"]
    assert len(queued) > 0
    assert (queued["record_key_l"].map(child) != queued["record_key_r"].map(child)).all()
    joined = edges[edges["status"] == "already joined"]
    assert (joined["record_key_l"].map(child) == joined["record_key_r"].map(child)).all()


def test_explanation_adds_up_to_the_links_probability(linked):
    import math

    from lib.linkage import explain

    con, _, _ = linked
    edge = con.execute("SELECT node_l, node_r, match_weight, match_probability FROM link_edges "
                       "WHERE status = 'review' LIMIT 1").fetchall()[0]
    table, probability = explain.explain_pair(con, edge[0], edge[1])
    assert probability == pytest.approx(edge[3])
    assert table["match_weight"].sum() == pytest.approx(edge[2], abs=1e-6)
    assert 1 / (1 + 2 ** -table["match_weight"].sum()) == pytest.approx(probability, abs=1e-6)
    assert not table["level"].str.contains("hash_l|hash_r").any()
    assert math.isfinite(table["cumulative"].iloc[-1])


def test_explained_level_is_the_level_splink_recorded_for_the_pair(linked):
    """Each field's level in an explanation is the level that fired for the pair (its gamma_ value), named as
    Splink's own comparison objects number and label their levels: not a guess from the nearest weight."""
    from lib.linkage import dice, explain, model

    con, _, _ = linked
    splink_levels = {}
    trained = explain.latest_model(con)
    for creator in model.comparisons(dice.thresholds_in(trained), model.has_dob_parts(trained),
                                     model.has_joint_names(trained),
                                     encounter_area=model.has_encounter_area(trained)):  # the run's own levels
        comparison = creator.get_comparison("duckdb")
        levels = splink_levels[comparison.output_column_name] = {}
        for level in comparison.comparison_levels:  # the first null level names gamma -1
            levels.setdefault(level.comparison_vector_value,
                              explain.plain_label(level.label_for_charts, level.is_null_level))
    gammas = [f"gamma_{name}" for name in explain.COMPARISON_TITLES]
    pairs = con.execute(f"""SELECT node_l, node_r, {', '.join(gammas)} FROM link_edges WHERE match_weight IS NOT NULL
                            ORDER BY {', '.join(gammas)}, node_l, node_r""").df()
    # one pair of every distinct combination of levels, so every level that occurs is checked
    sample = pairs.drop_duplicates(subset=gammas)
    assert len(sample) >= 10
    fired = set()
    for row in sample.itertuples(index=False):
        table, _ = explain.explain_pair(con, row.node_l, row.node_r)
        explained = dict(zip(table["step"], table["level"].str.replace(" (adjusted for how common)", "")))
        for name, title in explain.COMPARISON_TITLES.items():
            gamma = int(getattr(row, f"gamma_{name}"))
            assert explained[title] == splink_levels[name][gamma], (name, gamma, row.node_l, row.node_r)
            fired.add((name, gamma))
    assert any(gamma == -1 for _, gamma in fired) and any(gamma == 0 for _, gamma in fired)


def test_explanation_names_the_level_that_fired_when_two_levels_weigh_the_same(linked):
    """A weight alone cannot tell two levels of equal m/u apart (guessing from the nearest weight named the
    first of them); the pair's gamma_ value can."""
    import json
    import math

    import duckdb

    from lib.linkage import explain

    con, _, _ = linked
    settings = explain.latest_model(con)
    levels = next(c for c in settings["comparisons"] if c["output_column_name"] == "date_of_birth")
    levels = levels["comparison_levels"]
    same_year = next(level for level in levels if level.get("label_for_charts") == "Same year of birth")
    near_year = next(level for level in levels if level.get("label_for_charts") == "Year of birth ±1")
    same_year["m_probability"], same_year["u_probability"] = near_year["m_probability"], near_year["u_probability"]
    gamma = {label: value for value, label in explain.gamma_labels(levels).items()}["Year of birth ±1"]
    edge = con.execute("SELECT * FROM link_edges WHERE match_weight IS NOT NULL ORDER BY node_l, node_r "
                       "LIMIT 1").df()
    edge["gamma_date_of_birth"] = gamma
    edge["mw_date_of_birth"] = math.log2(near_year["m_probability"] / near_year["u_probability"])
    other = duckdb.connect()
    try:
        other.execute("CREATE TABLE linkage_runs (run_id INTEGER, model VARCHAR)")
        other.execute("INSERT INTO linkage_runs VALUES (1, ?)", [json.dumps(settings)])
        other.register("edge", edge)
        other.execute("CREATE TABLE link_edges AS SELECT * FROM edge")
        table, _ = explain.explain_pair(other, edge["node_l"].iloc[0], edge["node_r"].iloc[0])
    finally:
        other.close()
    assert table.set_index("step").loc["Date of birth", "level"] == "Year of birth ±1"


def _forename_exact_level(model_json: dict) -> dict:
    forename = next(c for c in model_json["comparisons"] if c["output_column_name"] == "forename")
    return next(level for level in forename["comparison_levels"]
                if level["sql_condition"] == '"forename_hash_l" = "forename_hash_r"')


def test_the_forename_frequency_adjustment_is_a_switch_off_by_default(linked, tmp_path):
    """`LinkConfig.forename_tf` adjusts the exact forename's weight by the forename's frequency, as the surname's
    always is; measured in session 7 (docs/LINKAGE_PRIVACY.md): F1 up on the built-in data, recall at equal
    precision down on the independent corruption model, so off by default. Trained both ways on one store."""
    from splink.backends.duckdb import DuckDBAPI

    from lib.linkage import explain, model, training
    from lib.linkage.config import LinkConfig

    con, _, _ = linked
    assert not LinkConfig().forename_tf
    assert _forename_exact_level(explain.latest_model(con)).get("tf_adjustment_column") is None
    small, _ = synthetic_store(tmp_path / "small.duckdb", n_encounters=4_000, seed=5, link=False)
    try:
        nodes, _ = run.deterministic_pass(small)
    finally:
        small.close()
    frame = nodes[["unique_id", *model.FEATURES]]
    for on in (False, True):
        trained = training.train_model(DuckDBAPI(), frame, LinkConfig(forename_tf=on))
        level = _forename_exact_level(trained)
        assert level.get("tf_adjustment_column") == ("forename_hash" if on else None), (on, level)
        surname = next(c for c in trained["comparisons"] if c["output_column_name"] == "surname")
        assert any(lv.get("tf_adjustment_column") == "surname_hash" for lv in surname["comparison_levels"])


def test_a_small_store_is_linked_without_the_dice_levels(linked):
    """Below LinkConfig.name_similarity_min_nodes training nodes the Dice levels are left out (measured: at 20,000
    encounters they cost recall; docs/LINKAGE_PRIVACY.md), so a small partnership's store links as before."""
    from lib.linkage import dice, explain
    from lib.linkage.config import LinkConfig

    con, _, _ = linked
    nodes = con.execute("SELECT count(DISTINCT node_id) FROM record_child WHERE node_id IS NOT NULL").fetchone()[0]
    assert nodes < LinkConfig().name_similarity_min_nodes
    assert not any(dice.thresholds_in(explain.latest_model(con)).values())


def test_link_and_evaluate_commands_print_json(linked, tmp_path):
    con, truth, path = linked
    con.close()
    truth_path = tmp_path / "truth.parquet"
    truth.to_parquet(truth_path)
    cmd = [sys.executable, "-m", "lib.cli"]
    out = subprocess.run([*cmd, "link", "--db", str(path)], cwd=ROOT, capture_output=True, text=True, check=True)
    summary = json.loads(out.stdout)
    assert summary["records"] == 20_000 and summary["children"] > 0
    out = subprocess.run([*cmd, "evaluate", "--db", str(path), "--truth", str(truth_path)], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    scores = json.loads(out.stdout)
    for key in ("precision", "recall", "f1", "multi_agency_children_estimated", "multi_agency_children_true"):
        assert key in scores


def test_every_record_numbered_links_by_number_alone(tmp_path):
    """With a valid NHS number on every identified record nothing is left for Splink to learn from; the run
    still completes, one child per true child, and its summary says the probabilistic pass was skipped."""
    from lib.records import ingest, store
    from lib.synth.config import SynthConfig
    from lib.synth.generator import generate

    encounters, truth = generate(SynthConfig(n_encounters=400, seed=5))
    named = ~truth["anonymous"].to_numpy()
    encounters.loc[named, "nhs_number"] = truth.loc[named, "true_nhs_number"].to_numpy()
    con = store.connect(str(tmp_path / "all_numbered.duckdb"))
    try:
        ingest.commit(con, ingest.prepare_frame(encounters, "all numbered", key=b"k" * 32))
        summary = run.link(con, run.LinkConfig())
        assert summary["probabilistic_pass"].startswith("skipped")
        assert summary["children"] == truth.loc[named, "true_child_id"].nunique()
        # no scored pair, yet the stored tables keep their types (pages and reviews compare them as text and numbers)
        types = {(table, name): kind for table in ("link_edges", "record_child")
                 for name, kind, *_ in con.execute(f"DESCRIBE {table}").fetchall()}
        assert con.execute("SELECT count(*) FROM link_edges").fetchall()[0][0] == 0
        for column in ("node_l", "node_r", "record_key_l", "record_key_r", "status"):
            assert types["link_edges", column] == "VARCHAR", column
        for table, column in (("link_edges", "match_weight"), ("link_edges", "match_probability"),
                              ("record_child", "best_match_probability")):
            assert types[table, column] == "DOUBLE", (table, column)
    finally:
        con.close()


def test_modes_stored_column_by_column_equal_a_recount():
    """inference._mode_table (each column's mode in a table of its own, so a national store's pass can spill) holds,
    for every key, the most common non-null value of each column, ties to the smallest, NULL where a column has no
    value: the same as a recount in pandas."""
    import duckdb
    import numpy as np

    from lib.linkage import inference

    rng = np.random.default_rng(7)
    n = 5_000
    frame = pd.DataFrame({"g": rng.integers(0, 800, n),
                          "a": pd.array(rng.choice(["x", "y", "z", None], n), dtype="object"),
                          "b": pd.array(rng.integers(0, 3, n), dtype="Int64"),
                          "c": [None] * n})  # every value null: NULL for every key
    frame.loc[rng.random(n) < 0.3, "b"] = pd.NA
    con = duckdb.connect()
    con.register("source", frame)
    con.execute("CREATE TEMP TABLE src AS SELECT g, a, b, CAST(c AS VARCHAR) AS c FROM source")
    inference._mode_table(con, "src", "g", ["a", "b", "c"], "modes")
    stored = con.execute("SELECT * FROM modes ORDER BY g").df().set_index("g")

    def recount(values: pd.Series):
        counts = values.dropna().value_counts()
        return None if counts.empty else min(counts.index[counts == counts.max()])

    def plain(values: pd.Series) -> dict:  # one missing value, whichever NA each side uses
        return values.astype(object).where(values.notna(), None).to_dict()

    for column in ("a", "b"):
        assert plain(stored[column]) == plain(frame.groupby("g")[column].agg(recount))
    assert len(stored) == frame["g"].nunique() and stored["c"].isna().all()
    # ties go to the smallest value: key 0 holds x twice and y twice
    con.execute("CREATE TEMP TABLE tie AS SELECT * FROM (VALUES (0, 'y'), (0, 'x'), (0, 'y'), (0, 'x')) t(g, a)")
    inference._mode_table(con, "tie", "g", ["a"], "tied")
    assert con.execute("SELECT a FROM tied").fetchall() == [("x",)]
    assert not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'modes_%'").fetchone()[0]
