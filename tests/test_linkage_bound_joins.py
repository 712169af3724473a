"""The keys that meet a names-only rule's pairs whose weight bound can reach the floor (lib.linkage.bound_joins).

What a level's SQL implies is read exactly or not at all; and the pairs `band_pairs.pair_keys` keeps through the keys
are exactly those the rule's whole join kept, on the synthetic store and on the same nodes with many more dates of
birth and postcodes unknown (the null levels' keys) and at two floors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lib.linkage import band_pairs, bound_joins, lsh
from tests.test_linkage_band_pairs import trained  # noqa: F401  (the module's trained model and nodes)


def _eq(x, y):
    return ("eq", x, y)


def _null(side, x):
    return ("null", side, x)


@pytest.mark.parametrize(("sql", "expected"), [
    ('"x_l" = "x_r"', [{_eq("x", "x")}]),
    ('"s_r" = "d_l"', [{_eq("d", "s")}]),  # oriented: the left node's d equals the right node's s
    ('coalesce("x_l" = "x_r", false)', [{_eq("x", "x")}]),
    ('"x_l" IS NULL OR "x_r" IS NULL', [{_null("l", "x")}, {_null("r", "x")}]),
    ('("a_l" = "a_r") OR ("b_l" = "b_r")', [{_eq("a", "a")}, {_eq("b", "b")}]),
    ('("p_l" IS NULL OR "p_r" IS NULL) AND ("d_l" = "d_r")',
     [{_null("l", "p"), _eq("d", "d")}, {_null("r", "p"), _eq("d", "d")}]),
    ('"x_l" = "x_r" AND ABS("y_l" - "y_r") <= 1', [{_eq("x", "x")}]),  # a conjunct read is enough
    ('ABS("y_l" - "y_r") <= 1', None),
    ('"x_l" = \'U\'', None),
    ('"x_l" = "x_r" OR ABS("y_l" - "y_r") <= 1', None),  # one disjunct unread: nothing is implied
    ('NOT ("x_l" = "x_r")', None),
    ('"x_l" = "y_l"', None),
    ('coalesce("x_l" = "x_r", true)', None),
])
def test_what_a_level_implies_is_read_exactly_or_not_at_all(sql, expected):
    found = bound_joins.alternatives(sql)
    assert (None if found is None else [set(a) for a in found]) == expected


def _kept(frame: pd.DataFrame, model_json: dict, floor: float) -> set[tuple[int, int]]:
    keyed, pairs = band_pairs.pair_keys(frame, model_json, True, False, floor=floor)
    held = keyed[["unique_id", lsh.COLUMN]].dropna().explode(lsh.COLUMN)
    sides = held.groupby(lsh.COLUMN)["unique_id"].agg(["min", "max"])
    assert len(sides) == pairs
    return set(zip(sides["min"], sides["max"]))


def _unknown(frame: pd.DataFrame, share: float) -> pd.DataFrame:
    """The nodes numbered 0.., with the date of birth (and all read from it) and the home (postcode, sector,
    district) unknown on about `share` of them each, at random: the null levels' keys meet those pairs."""
    codes, _ = pd.factorize(frame["unique_id"], sort=True)
    frame = frame.assign(unique_id=codes)
    rng = np.random.default_rng(7)
    for group in (["dob_hash", "dob_swap_hash", "dob_dm_hash", "dob_ym_hash", "dob_yd_hash", "birth_year"],
                  ["home_postcode_hash", "home_sector", "home_district"]):
        frame.loc[rng.random(len(frame)) < share, group] = None
    return frame


def _whole_join(monkeypatch) -> None:
    monkeypatch.setattr(bound_joins, "plan", lambda *args, **kwargs: None)


@pytest.mark.parametrize("floor", [0.1, 0.5])
@pytest.mark.parametrize("unknown", [0.0, 0.3])
def test_the_keys_keep_exactly_the_pairs_the_whole_join_kept(trained, monkeypatch, floor, unknown):  # noqa: F811
    frame, model_json, _ = trained
    frame = _unknown(frame, unknown)
    frame[lsh.COLUMN] = None  # no band keys: the rule's pairs alone (the band keys' would hide a pair missed)
    planned = []
    plan = bound_joins.plan
    monkeypatch.setattr(bound_joins, "plan", lambda *a, **k: planned.append(plan(*a, **k)) or planned[-1])
    ours = _kept(frame, model_json, floor)
    assert planned and planned[0] is not None and len(planned[0]) > 5
    _whole_join(monkeypatch)
    theirs = _kept(frame, model_json, floor)
    assert len(theirs) > 50
    assert ours == theirs


def test_a_rule_the_keys_cannot_read_runs_whole(trained):  # noqa: F811
    _, model_json, _ = trained
    lists = {lsh.COLUMN, "forename_bloom", "surname_bloom"}
    facts = {"dob_hash": ("BIGINT", 5_000)}.get
    assert bound_joins.plan(model_json, lists, 'levenshtein("surname_hash_l", "surname_hash_r") <= 1', 0.1,
                            facts) is None
    keys = bound_joins.plan(model_json, lists, '"surname_hash_l" = "surname_hash_r"', 0.1, facts)
    assert keys is not None
    assert all(("eq", "surname_hash", "surname_hash") in key.equal for key in keys)
    assert any(("eq", "dob_hash", "dob_hash") in key.equal and key.reach is None for key in keys)


@pytest.mark.parametrize("floor", [0.1, 0.5])
@pytest.mark.parametrize("unknown", [0.0, 0.3])
def test_every_pair_of_the_rule_whose_bound_reaches_the_floor_shares_a_key(trained, floor, unknown):  # noqa: F811
    """The plan's proof, checked pair by pair on the rule's whole join: where the bound reaches the floor, some key's
    hash is the same on the pair's two sides. The names are weighed at their best here (read as lists), so no name
    level gives a key and the null levels' and the rare nodes' keys must carry the pairs the dates and homes do not."""
    import duckdb

    from lib.linkage import model, weight_bound

    frame, model_json, _ = trained
    frame = _unknown(frame, unknown)
    lists = {lsh.COLUMN, "forename_bloom", "surname_bloom", "forename_hash", "surname_hash", "forename_canon_hash"}
    con = duckdb.connect()
    con.register("frame_in", frame.drop(columns=[lsh.COLUMN]))
    con.execute(f"""CREATE VIEW nodes_in AS SELECT * FROM frame_in
                    LEFT JOIN ({weight_bound.tf_table_sql('surname_hash', 'frame_in')}) USING (surname_hash)""")
    rule = next(r for r in model_json["blocking_rules_to_generate_predictions"] if band_pairs.national(r))
    keys = bound_joins.plan(model_json, lists, band_pairs._on_pairs(rule["blocking_rule"]), floor,
                            band_pairs._facts(con))
    assert keys is not None and any(k.reach for k in keys) and any(k.null for k in keys)
    hashes = ", ".join(f"[{', '.join(k.side_sql(i, s) for i, k in enumerate(keys))}] AS k{s}" for s in "lr")
    con.execute(f"CREATE TABLE nodes AS SELECT *, {hashes} FROM nodes_in")
    bound = model.on_rows(weight_bound.bound_sql(model_json, lists))
    met = " OR ".join(f"coalesce(l.kl[{i + 1}] = r.kr[{i + 1}], false)" for i in range(len(keys)))
    by_open = " OR ".join(f"coalesce(l.kl[{i + 1}] = r.kr[{i + 1}], false)" for i, k in enumerate(keys)
                          if k.reach is None)
    reached, missed, rare = con.execute(f"""
        SELECT count(*), count(*) FILTER (WHERE NOT ({met})), count(*) FILTER (WHERE NOT ({by_open}))
        FROM nodes l JOIN nodes r ON ({rule['blocking_rule']}) AND l.unique_id < r.unique_id
        WHERE ({bound}) >= {weight_bound.floor_weight(floor)!r}""").fetchall()[0]
    assert reached > 100 and missed == 0
    if unknown:
        assert rare > 10  # pairs only the null levels' or rare nodes' keys meet
