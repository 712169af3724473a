"""The review band's floor is trained from the model's own match probabilities (inference.trained_review_floor),
not typed: the highest floor at which the true matches the model expects below it (sum of p) are no more than the
false pairs it expects in the band (sum of 1 - p from the floor up to the threshold)."""
from __future__ import annotations

import numpy as np
import pytest

from lib.linkage import run
from lib.linkage.inference import capped_review_floor, trained_review_floor
from tests.fixtures_linkage import synthetic_store


def _balanced(p: np.ndarray, floor: float, threshold: float) -> bool:
    below = p[p < floor].sum()
    doubt = (1 - p[(p >= floor) & (p < threshold)]).sum()
    return below <= doubt + 1e-12


def _grid(lowest: float, threshold: float) -> list[float]:
    return [round(lowest + i / 100, 2) for i in range(int(round((threshold - lowest) * 100)) + 1)]


def _expected(p: np.ndarray, threshold: float, lowest: float) -> float:
    """The rule by brute force: the highest balanced floor on the 0.01 grid."""
    p = p[p >= lowest]
    return max(f for f in _grid(lowest, threshold) if _balanced(p, f, threshold))


def test_the_floor_on_hand_computed_probabilities():
    p = np.array([0.15, 0.2, 0.3, 0.6, 0.7, 0.85, 0.97, 0.99])
    # f = 0.6: below 0.15 + 0.2 + 0.3 = 0.65, band 0.4 + 0.3 + 0.15 = 0.85 (balanced);
    # f = 0.61: below 1.25, band 0.45 (not): so 0.6, where the typed floor was 0.5
    assert trained_review_floor(p, 0.9, 0.1) == 0.6
    assert trained_review_floor(p[::-1], 0.9, 0.1) == 0.6  # order does not matter
    assert trained_review_floor(np.array([0.95, 0.99]), 0.9, 0.1) == 0.9  # nothing uncertain: an empty band
    # many doubtful pairs: the band reaches down to them (at 0.12 nothing is left below it)
    assert trained_review_floor(np.array([0.12] * 50 + [0.89]), 0.9, 0.1) == 0.12
    assert trained_review_floor(np.array([]), 0.9, 0.1) == 0.9
    assert trained_review_floor(np.array([0.995]), 0.999, 0.1) == 0.99  # a threshold off the grid: never above it
    rng = np.random.default_rng(3)
    for _ in range(20):
        q = rng.beta(0.5, 0.5, size=200)
        assert trained_review_floor(q, 0.9, 0.1) == _expected(q, 0.9, 0.1)


def test_the_cap_raises_the_floor_until_the_queue_fits():
    queued = np.array([0.6, 0.7, 0.85])
    assert capped_review_floor(queued, 0.6, 0.9, 3) == 0.6  # fits
    assert capped_review_floor(queued, 0.6, 0.9, 2) == 0.61  # 0.7 and 0.85 left
    assert capped_review_floor(queued, 0.6, 0.9, 0) == 0.86  # none left
    assert capped_review_floor(queued, 0.5, 0.9, 1) == 0.71


def test_a_given_floor_is_kept_and_a_bad_one_refused():
    assert run.LinkConfig(review_floor=0.5).review_floor == 0.5
    for bad in (0.0, 0.95, -1):
        with pytest.raises(ValueError, match="review_floor"):
            run.LinkConfig(review_floor=bad)


@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    con, _ = synthetic_store(tmp_path_factory.mktemp("floor") / "store.duckdb", 3_000, 11, link=False)
    # without the area levels (session 12): with them this small store's model is sure of every pair it scores
    # (an empty queue at 3,000-5,000 encounters), and the rule is the same whatever the model
    config = run.LinkConfig(encounter_area=False)
    nodes, _ = run.deterministic_pass(con)
    edges, _ = run.probabilistic_pass(nodes, config)  # scored down to review_floor_lowest
    summary = run.link(con, config)
    stored = con.execute("SELECT match_probability, status FROM link_edges").df()
    saved = con.execute("SELECT config FROM linkage_runs ORDER BY run_id DESC LIMIT 1").fetchone()[0]
    yield edges, summary, stored, saved
    con.close()


def test_link_trains_the_floor_from_its_own_scored_pairs(linked):
    edges, summary, stored, saved = linked
    p = edges["match_probability"].to_numpy(dtype=float)
    floor = summary["review_floor"]
    threshold = summary["match_threshold"]
    config = run.LinkConfig()
    cap = config.review_cap_per_100k * (summary["records"] - summary["anonymous_records"]) / 100_000
    balanced = _expected(p, threshold, config.review_floor_lowest)
    assert floor >= balanced and summary["review_queue"] <= cap
    if floor > balanced:  # raised by the cap: one grid step lower, the queue would not fit
        queued = stored.loc[stored["status"] == "review", "match_probability"]
        assert len(queued) <= cap
    assert floor != 0.5  # where it matters: on this store the trained floor is not the typed one
    assert f'"review_floor": {floor}' in saved  # the run records the floor that made its queue
    queued = stored[stored["status"] == "review"]["match_probability"]
    assert len(queued) > 0 and queued.min() >= floor and queued.max() < threshold
    assert stored["match_probability"].min() >= floor  # nothing below the floor is kept


def test_the_models_expected_f1_threshold_on_hand_computed_probabilities():
    """bench.bench_recall.expected_f1_threshold, the match-threshold rule measured and not adopted in session 7
    (docs/LINKAGE_PRIVACY.md): the threshold where the model's own expected F1 over its scored pairs is highest."""
    from bench.bench_recall import expected_f1_threshold

    p = np.array([0.95, 0.9, 0.6, 0.3])  # all true expected: 2.75
    # t <= 0.3: TP 2.75 of 4 linked, F1 5.5 / 6.75 = 0.8148; 0.3 < t <= 0.6: 2.45 of 3, 4.9 / 5.75 = 0.8522;
    # 0.6 < t <= 0.9: 1.85 of 2, 3.7 / 4.75 = 0.7789: so the first grid point above 0.3
    threshold, f1 = expected_f1_threshold(p, 0.1)
    assert threshold == 0.31 and f1 == pytest.approx(4.9 / 5.75)
    assert expected_f1_threshold(p[::-1], 0.1)[0] == 0.31
    # linking a pair of probability q raises the expected F1 exactly when q > F1 / 2: with dense probabilities
    # the rule lands at half the F1 it reaches, about 0.5 for a good model, whatever the precision there
    rng = np.random.default_rng(5)
    q = np.concatenate([rng.uniform(0.1, 1.0, 20_000), np.full(50_000, 0.999)])
    threshold, f1 = expected_f1_threshold(q, 0.1)
    assert abs(threshold - f1 / 2) <= 0.011, (threshold, f1)
