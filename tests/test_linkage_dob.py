"""Partial agreement of the date of birth (issue 20): keyed hashes of the date's parts two at a time, stored
at ingest, and the Splink level "Two of day, month and year agree" (lib.linkage.model.dob_parts_level)."""
from __future__ import annotations

import hashlib
import hmac

import duckdb
import pandas as pd
import pytest

from lib.linkage import model
from lib.records import store, tables
from tests.fixtures_linkage import TEST_KEY


def _mac(value: str) -> str:
    return hmac.new(TEST_KEY, f"dob:{value}".encode(), hashlib.sha256).hexdigest()


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """300 synthetic encounters ingested with the test key: (encounters as stored, clear dates by record)."""
    from lib.records import ingest
    from lib.synth import SynthConfig, generate

    encounters, _ = generate(SynthConfig(n_encounters=300, seed=5))
    con = store.connect(tmp_path_factory.mktemp("dob") / "s.duckdb")
    ingest.commit(con, ingest.prepare_frame(encounters, "synth.parquet", key=TEST_KEY))
    rows = con.execute("""SELECT agency_type, source_record_id, dob_hash, dob_dm_hash, dob_ym_hash, dob_yd_hash
                          FROM encounters""").df()
    con.close()
    dates = encounters[["agency_type", "source_record_id", "date_of_birth"]]
    return rows.merge(dates, on=["agency_type", "source_record_id"], validate="one_to_one")


def test_ingest_stores_keyed_hashes_of_the_date_parts_two_at_a_time(stored):
    dated = stored[stored["date_of_birth"].notna()]
    assert len(dated) > 200
    for _, row in dated.iterrows():
        d = pd.Timestamp(row["date_of_birth"])
        assert row["dob_hash"] == _mac(f"{d:%Y-%m-%d}")
        assert row["dob_dm_hash"] == _mac(f"DM:{d:%m-%d}")
        assert row["dob_ym_hash"] == _mac(f"YM:{d:%Y-%m}")
        assert row["dob_yd_hash"] == _mac(f"YD:{d:%Y-%d}")
    undated = stored[stored["date_of_birth"].isna()]
    assert undated[["dob_dm_hash", "dob_ym_hash", "dob_yd_hash"]].isna().all().all()
    # the part hashes live in the date's domain but never equal a whole date's hash
    assert not set(stored["dob_dm_hash"].dropna()) & set(stored["dob_hash"].dropna())


def _parts(date: str | None) -> dict:
    if date is None:
        return {"dob_dm_hash": None, "dob_ym_hash": None, "dob_yd_hash": None}
    y, m, d = date.split("-")
    return {"dob_dm_hash": _mac(f"DM:{m}-{d}"), "dob_ym_hash": _mac(f"YM:{y}-{m}"), "dob_yd_hash": _mac(f"YD:{y}-{d}")}


@pytest.mark.parametrize(("left", "right", "fires"), [
    ("2012-07-02", "2013-07-02", True),  # year wrong: day and month agree
    ("2012-07-02", "2012-07-03", True),  # a day out: year and month agree
    ("2012-07-02", "2012-09-02", True),  # month wrong: year and day agree
    ("2012-07-02", "2013-08-02", False),  # only the day agrees
    ("2012-07-02", "2014-11-19", False),
    ("2012-07-02", None, False),  # unknown: never agreement
])
def test_the_level_fires_when_two_of_day_month_and_year_agree(left, right, fires):
    level = model.dob_parts_level().get_comparison_level("duckdb")
    assert level.label_for_charts == model.DOB_PARTS_LABEL
    row = {**{f"{k}_l": v for k, v in _parts(left).items()}, **{f"{k}_r": v for k, v in _parts(right).items()}}
    con = duckdb.connect()
    con.register("pair", pd.DataFrame([row], dtype=object))
    got = con.execute(f"SELECT coalesce(({level.sql_condition}), false) FROM pair").fetchone()[0]
    assert got is fires


def test_the_level_sits_between_transposed_and_same_year_and_is_carried_to_spark():
    dob = model.settings(dob_parts=True).create_settings_dict(sql_dialect_str="duckdb")["comparisons"][2]
    labels = [lvl.get("label_for_charts") for lvl in dob["comparison_levels"]]
    assert labels.index("Day and month transposed") + 1 == labels.index(model.DOB_PARTS_LABEL)
    assert labels.index(model.DOB_PARTS_LABEL) + 1 == labels.index("Same year of birth")
    for parts in (True, False):
        saved = model.settings(dob_parts=parts).create_settings_dict(sql_dialect_str="duckdb")
        saved["probability_two_random_records_match"] = 0.001
        assert model.has_dob_parts(saved) is parts
        spark = model.trained_settings(saved, "spark")  # a model trained without the level still loads
        dob = next(c for c in spark["comparisons"] if c["output_column_name"] == "date_of_birth")
        assert any(lvl.get("label_for_charts") == model.DOB_PARTS_LABEL for lvl in dob["comparison_levels"]) is parts


def test_a_schema_5_store_gains_the_part_columns_empty_and_keeps_its_rows(stored, tmp_path):
    path = tmp_path / "old.duckdb"
    con = store.connect(path)
    from lib.records import ingest
    from lib.synth import SynthConfig, generate

    encounters, _ = generate(SynthConfig(n_encounters=40, seed=6))
    ingest.commit(con, ingest.prepare_frame(encounters, "synth.parquet", key=TEST_KEY))
    for column in ("dob_dm_hash", "dob_ym_hash", "dob_yd_hash"):  # as a release before schema 6 stored it
        con.execute(f"ALTER TABLE encounters DROP COLUMN {column}")
    con.execute("UPDATE meta SET value = '5' WHERE name = 'schema_version'")
    before = con.execute("SELECT record_key, dob_hash FROM encounters ORDER BY record_key").fetchall()
    con.close()
    con = store.connect(path)
    assert dict(con.execute("SELECT * FROM meta").fetchall())["schema_version"] == str(tables.SCHEMA_VERSION)
    assert con.execute("SELECT record_key, dob_hash FROM encounters ORDER BY record_key").fetchall() == before
    assert con.execute("SELECT count(*) FROM encounters WHERE dob_dm_hash IS NOT NULL OR dob_ym_hash IS NOT NULL "
                       "OR dob_yd_hash IS NOT NULL").fetchone()[0] == 0
    con.close()


# -- what it buys ---------------------------------------------------------------------------------------------

def test_partial_date_agreement_raises_f1_and_shrinks_the_review_queue(tmp_path):
    """Built-in synthetic data (its date errors: a day out, a wrong year, day and month swapped), 8,000
    encounters, seed 11, NHS numbers removed: today's model against the same with the partial-date level."""
    from bench import bench_recall

    encounters, truth = bench_recall.truth_sets(8_000, 11, 0.15)["built-in"]
    got = bench_recall.measure(encounters, truth, nhs=False, store_dir=tmp_path, models=("before", "dob"))
    before, after = got["before"], got["dob"]
    assert after["f1"] > before["f1"] + 0.001, (before, after)
    assert after["recall"] > before["recall"], (before, after)
    assert after["review_per_100k"] <= before["review_per_100k"], (before, after)
