"""The Review links page renders only what lib.views.review builds (its tables equal `view review`'s JSON), and
the view never shows more than the page did: masked record cards, for the safeguarding lead only."""
from __future__ import annotations

import json
import re

import pytest

from lib import views
from tests.fixtures_linkage import copy_store, synthetic_linked_store
from tests.view_parity import assert_parity, cli_view


@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    return synthetic_linked_store(tmp_path_factory)


@pytest.fixture()
def private(linked, tmp_path):
    return copy_store(linked, tmp_path)  # the page writes audit rows beside its store


@pytest.mark.parametrize("pair", [0, 3])
def test_review_page_tables_equal_the_view(private, monkeypatch, pair):
    params = {"pair": pair}
    at, data = assert_parity(monkeypatch, private, "review", "lead", params=params, query={},
                             state={"review_pair": pair})
    assert data["extra"]["state"] == "pair" and data["extra"]["pair"] == pair
    assert data["table_order"] == ["explanation", "group_a", "group_b"]
    assert int(at.metric[0].value.replace(",", "")) == data["extra"]["queue_length"]
    shown = " ".join(m.value for m in at.markdown)
    assert data["sentences"][1] in shown and "The model puts this pair at" in data["sentences"][1]


def test_the_review_view_shows_no_more_than_the_page(private):
    data = cli_view(private, "review", "lead", {"pair": 1})
    text = json.dumps(data)
    assert not re.search(r"[0-9a-f]{32,}", text), "a hash in the view"
    for hidden in ("_hash", "record_key", "node_id", "node_l", "node_r", "source_record_id", "|"):
        assert hidden not in text, hidden
    cards = data["tables"]["group_a"]
    assert cards["columns"] == ["agency", "date", "encounter", "nhs_number", "forename_sounds_like",
                                "surname_sounds_like", "birth_year", "sex", "home_postcode_sector",
                                "home_authority", "encounter_force", "encounter_authority"]
    assert all(len(row[cards["columns"].index("home_postcode_sector")] or "") <= 6 for row in cards["rows"])


@pytest.mark.parametrize("role", ["analyst", "commissioner"])
def test_other_roles_cannot_build_the_review_view(linked, role):
    with pytest.raises(ValueError, match="cannot open page 'review'"):
        views.build("review", linked, {}, role)
    from lib.records import store
    from lib.views import review

    con = store.connect(linked, read_only=True)
    try:
        with pytest.raises(ValueError, match="pairs of children's records"):
            review.build(con, {"pair": 0}, role)  # the builder refuses too, not only the registry
    finally:
        con.close()


def test_a_pair_past_the_end_of_the_queue_is_a_clear_error(linked):
    with pytest.raises(ValueError, match=r"pair=100000: the queue lists \d+ pairs"):
        views.build("review", linked, {"pair": 100_000}, "lead")


def test_an_unlinked_store_says_so(tmp_path):
    from lib.records import store

    db = tmp_path / "empty.duckdb"
    store.connect(db).close()
    data = views.build("review", db, {}, "lead")
    assert data.extra["state"] == "unlinked" and "not been linked" in data.sentences[1] and not data.tables


def test_identifier_agreement_equals_a_recount_per_group_and_identifier(linked):
    """review.agreement reads both groups in one query; each row must equal a separate recount of that group's
    distinct recorded values of that identifier (the per-identifier queries it replaced)."""
    import duckdb

    from lib.linkage import review

    con = duckdb.connect(str(linked), read_only=True)
    try:
        pairs = review.review_queue(con, limit=6)
        assert len(pairs) >= 3
        for pair in pairs.itertuples():
            got = review.agreement(con, pair.node_l, pair.node_r)
            for (label, column, shown), row in zip(review.AGREEMENT_FIELDS, got.itertuples()):
                sets = []
                for node in (pair.node_l, pair.node_r):
                    found = con.execute(f"""SELECT DISTINCT e.{column} FROM record_child r JOIN encounters e
                                            USING (record_key) WHERE r.node_id = ? AND e.{column} IS NOT NULL""",
                                        [node]).fetchall()
                    sets.append({v for (v,) in found if v != ""})
                a, b = sets
                assert row.identifier == label
                assert (row.group_a, row.group_b) == (review._masked(a, shown), review._masked(b, shown))
                assert row.verdict == ("not on both" if not a or not b else ("agree" if a & b else "disagree"))
    finally:
        con.close()
