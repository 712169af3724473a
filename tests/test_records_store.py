"""The DuckDB store: one transaction per batch, crash safety, idempotent re-upload, pseudonymisation at rest,
key handling, the ingest command, completeness and the default dataset."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from lib.linkage import run
from lib.records import store, tables, versions
from lib.records.ingest import commit, prepare
from lib.records.pseudonymise import Hasher, KeyProblem, key_check, load_key
from tests.test_records import KEY, TODAY, VALID_NHS, csv_bytes, good_rows

ROOT = Path(__file__).resolve().parents[1]


def snapshot(con) -> dict:
    """Every row of every table, to compare a store before and after."""
    with store.cursor(con) as cur:
        return {t: cur.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
                for t in ("encounters", "batches", "rejections", "meta")}


def big_extract(path: Path, n: int, prefix: str = "BIG") -> Path:
    """A valid Parquet extract of n rows (built by columns, fast)."""
    base = pd.DataFrame(good_rows(5))
    frame = base.iloc[np.arange(n) % 5].reset_index(drop=True)
    frame["source_record_id"] = [f"{prefix}{i:07d}" for i in range(n)]
    frame.to_parquet(path, index=False)
    return path


@pytest.fixture()
def db(tmp_path):
    path = tmp_path / "store.duckdb"
    con = store.connect(path)
    commit(con, prepare(csv_bytes(good_rows(5)), "first.csv", key=KEY, today=TODAY))
    yield path, con
    con.close()


# -- transactions and idempotency ------------------------------------------------------------------------

def test_re_uploading_the_same_extract_adds_nothing_twice(db):
    _path, con = db
    before = store.counts(con)["encounters"]
    rows = good_rows(5) + [dict(good_rows(1)[0], source_record_id="NEW1")]
    result = commit(con, prepare(csv_bytes(rows), "again.csv", key=KEY, today=TODAY))
    assert (result["rows_stored"], result["rows_already_stored"]) == (1, 5)
    again = commit(con, prepare(csv_bytes(rows), "again.csv", key=KEY, today=TODAY))
    assert (again["rows_stored"], again["rows_already_stored"]) == (0, 6)
    assert store.counts(con)["encounters"] == before + 1
    keys = store.query(con, "SELECT record_key, count(*) FROM encounters GROUP BY 1 "
                            "HAVING count(*) > 1").values.tolist()
    assert keys == []
    assert store.batches(con)["rows_stored"].tolist() == [5, 1, 0]


def test_same_record_id_at_two_agencies_is_two_records(db):
    _path, con = db
    rows = good_rows(2)
    rows[1].update(source_record_id=rows[0]["source_record_id"])  # R00000, but police not social care
    result = commit(con, prepare(csv_bytes(rows), "two.csv", key=KEY, today=TODAY))
    assert result["rows_already_stored"] == 1 and result["rows_stored"] == 1


@pytest.mark.parametrize("stage", ["transaction started", "encounters inserted", "committing"])
def test_a_failing_batch_leaves_the_store_unchanged(db, stage):
    _path, con = db
    before = snapshot(con)
    rows = good_rows(5)
    for i, r in enumerate(rows):
        r["source_record_id"] = f"FAIL{i}"
    rows[0]["nhs_number"] = "123"  # so the batch has rejections to write too
    batch = prepare(csv_bytes(rows), "fails.csv", key=KEY, today=TODAY)

    def explode(at):
        if at == stage:
            raise RuntimeError("disk full (simulated)")

    with pytest.raises(RuntimeError, match="simulated"):
        commit(con, batch, progress=explode)
    assert snapshot(con) == before
    commit(con, batch)  # the connection is still usable and the batch can be stored afterwards
    assert store.counts(con)["encounters"] == len(before["encounters"]) + 5


def test_an_interrupt_mid_batch_rolls_back(db):
    path, con = db
    before = snapshot(con)
    batch = prepare(big_extract(path.parent / "big.parquet", 3000), key=KEY, today=TODAY)

    def interrupt(at):
        if at == "encounters inserted":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        commit(con, batch, progress=interrupt)
    assert snapshot(con) == before


CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from lib.records import ingest, store
    from datetime import date
    path, extract, stage, delay = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    con = store.connect(path)
    batch = ingest.prepare(extract, key={key!r}, today=date(2025, 6, 30))
    def progress(at):
        if at == stage:
            print("AT", at, flush=True)
            time.sleep(delay)
    ingest.commit(con, batch, progress=progress)
    print("COMMITTED", flush=True)
    time.sleep(60)
""")


def _kill_during(path: Path, extract: Path, stage: str, delay: float, check_lock: bool = False) -> list[str]:
    """Run an ingest in a subprocess and SIGKILL it `delay` seconds after it reaches `stage`."""
    script = CHILD.format(root=str(ROOT), key=KEY)
    child = subprocess.Popen([sys.executable, "-c", script, str(path), str(extract), stage, "60"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
            if line.startswith(("AT", "COMMITTED")):
                break
        assert lines and lines[-1].startswith(("AT", "COMMITTED")), (lines, child.stderr.read())
        if check_lock:  # while the child writes, another process gets a clear refusal
            with pytest.raises(store.StoreError, match="open for writing in another process"):
                store.connect(path)
        time.sleep(delay)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return lines


def test_killed_mid_transaction_leaves_the_store_as_it_was(db, tmp_path):
    path, con = db
    before = snapshot(con)
    con.close()  # DuckDB allows one writing process: the child takes the file
    extract = big_extract(tmp_path / "big.parquet", 30_000)
    lines = _kill_during(path, extract, "committing", 0.0, check_lock=True)  # all written, no COMMIT yet
    assert lines[-1] == "AT committing"
    reopened = store.connect(path)
    try:
        assert snapshot(reopened) == before
        result = commit(reopened, prepare(extract, key=KEY, today=TODAY))  # and the store still works
        assert result["rows_stored"] == 30_000
    finally:
        reopened.close()


def test_killed_while_inserting_is_all_or_nothing(db, tmp_path):
    path, con = db
    before = snapshot(con)
    con.close()
    extract = big_extract(tmp_path / "big.parquet", 80_000)
    _kill_during(path, extract, "transaction started", 0.0)  # the child carries on into the INSERT
    reopened = store.connect(path)
    try:
        counts = store.counts(reopened)
        assert counts["encounters"] in (len(before["encounters"]), len(before["encounters"]) + 80_000)
        if counts["encounters"] == len(before["encounters"]):
            assert snapshot(reopened) == before
        else:
            assert counts["batches"] == len(before["batches"]) + 1
    finally:
        reopened.close()


# -- pseudonymisation at rest ------------------------------------------------------------------------------

def test_no_identifier_is_stored_in_clear(tmp_path):
    rows = good_rows(5)
    rows[1]["nhs_number"] = "9434765918"  # invalid: must not appear either
    rows[2]["date_of_birth"] = "31/02/2011"
    path = tmp_path / "clear.duckdb"
    con = store.connect(path)
    commit(con, prepare(csv_bytes(rows), "clear.csv", key=KEY, today=TODAY))
    con.close()
    clear = {r["nhs_number"] for r in rows} | {r["forename"].upper() for r in rows} | {
        r["surname"].upper() for r in rows} | {r["home_postcode"].replace(" ", "") for r in rows} | {
        "2010-07-02", "02/07/2010", "31/02/2011", "ROBERT", "SMITH", "ZOE", "OBRIEN"}
    raw = path.read_bytes().upper()
    for value in clear:
        assert value.upper().encode() not in raw, value
    con = store.connect(path, read_only=True)
    try:
        tables = con.execute("SELECT table_name, column_name FROM information_schema.columns "
                             "WHERE data_type = 'VARCHAR'").fetchall()
        for table, column in tables:
            for (value,) in con.execute(f'SELECT DISTINCT "{column}" FROM {table}').fetchall():
                if value is not None:
                    assert not any(c.upper() in value.upper() for c in clear if len(c) > 3), (table, column, value)
    finally:
        con.close()


def test_hashes_are_keyed_hmac_of_normalised_values(tmp_path):
    rows = good_rows(4)
    batch = prepare(csv_bytes(rows), "h.csv", key=KEY, today=TODAY).records_frame()

    def mac(domain, value):
        return hmac.new(KEY, f"{domain}:{value}".encode(), hashlib.sha256).hexdigest()

    assert batch.loc[0, "nhs_hash"] == mac("nhs", VALID_NHS[0])
    assert batch.loc[0, "forename_hash"] == mac("name", "ROBERT")
    assert batch.loc[2, "forename_hash"] == mac("name", "ZOE")  # accents removed
    assert batch.loc[2, "surname_hash"] == mac("name", "OBRIEN")  # letters only
    assert batch.loc[3, "forename_canon_hash"] == mac("name", "ROBERT")  # BOB -> ROBERT
    assert batch.loc[3, "forename_hash"] == mac("name", "BOB")
    assert batch.loc[0, "dob_hash"] == mac("dob", "2010-07-02")
    assert batch.loc[0, "dob_swap_hash"] == mac("dob", "2010-02-07")
    assert batch.loc[0, "home_postcode_hash"] == mac("postcode", "LS62AB")
    assert batch.loc[0, "forename_phonetic"] == "RBRT" and int(batch.loc[0, "birth_year"]) == 2010
    other = prepare(csv_bytes(rows), "h.csv", key=b"another-key-0123456789", today=TODAY).records_frame()
    assert other.loc[0, "nhs_hash"] != batch.loc[0, "nhs_hash"]
    assert Hasher(KEY).hexdigest("nhs", VALID_NHS[0]) == mac("nhs", VALID_NHS[0])
    long_key = b"k" * 100  # longer than the SHA-256 block: HMAC hashes the key first
    assert Hasher(long_key).values("name", ["ROBERT", None]) == [
        hmac.new(long_key, b"name:ROBERT", hashlib.sha256).hexdigest(), None]


def test_anonymous_contacts_are_marked(tmp_path):
    rows = good_rows(3)
    rows[2].update(nhs_number="", forename="", surname="", date_of_birth="", home_postcode="", sex="")
    rows[1].update(nhs_number="123", forename="", surname="", date_of_birth="", home_postcode="ZZ99 9ZZ")
    records = prepare(csv_bytes(rows), "anon.csv", key=KEY, today=TODAY).records_frame()
    assert records["is_anonymous"].tolist() == [False, True, True]
    assert records["nhs_status"].tolist() == ["valid", "invalid", "missing"]


def test_rejections_are_stored_without_identifier_values(db):
    _path, con = db
    rows = good_rows(3)
    rows[0].update(source_record_id="X1", nhs_number="9434765918")
    rows[1].update(source_record_id="X2", agency_type="polce")
    rows[2].update(source_record_id="X3", surname="=cmd")
    summary = commit(con, prepare(csv_bytes(rows), "bad.csv", key=KEY, today=TODAY))
    assert summary["rows_rejected"] == 2 and summary["rows_stored"] == 1
    stored = store.rejections(con, summary["batch_id"])
    assert stored[["row", "field", "code"]].values.tolist() == [
        [2, "nhs_number", "nhs_check_digit"], [3, "agency_type", "unknown_agency_type"], [4, "surname", "formula"]]
    assert stored["file"].eq("bad.csv").all()
    assert not stored["reason"].str.contains("9434765918|cmd").any()


# -- keys ----------------------------------------------------------------------------------------------------

def test_key_is_generated_once_in_a_private_file(tmp_path, monkeypatch):
    monkeypatch.delenv("JOINEDUP_KEY", raising=False)
    db = tmp_path / "data" / "joinedup.duckdb"
    key = load_key(db)
    path = tmp_path / "data" / "joinedup.key"
    assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) == 64 and load_key(db) == key
    monkeypatch.setenv("JOINEDUP_KEY", "from-the-environment-0123")
    assert load_key(db) == b"from-the-environment-0123"
    assert load_key(db, "passed-by-the-app-secrets") == b"passed-by-the-app-secrets"
    with pytest.raises(KeyProblem, match="at least 16"):
        load_key(db, "short")


def test_a_different_key_is_refused_and_changes_nothing(db):
    _path, con = db
    before = snapshot(con)
    rows = good_rows(2)
    rows[0]["source_record_id"] = "K1"
    with pytest.raises(store.StoreError, match="different key"):
        commit(con, prepare(csv_bytes(rows), "k.csv", key=b"the-wrong-key-0123456789", today=TODAY))
    assert snapshot(con) == before
    assert dict(store.query(con, "SELECT * FROM meta").values.tolist())["key_check"] == key_check(KEY)


# -- the ingest command ---------------------------------------------------------------------------------------

def test_ingest_command_prints_a_json_summary(tmp_path, monkeypatch, capsys):
    from lib.cli import main

    monkeypatch.setenv("JOINEDUP_KEY", KEY.decode())
    good = tmp_path / "good.csv"
    rows = good_rows(4)
    rows[3]["encounter_date"] = "31/02/2025"
    good.write_bytes(csv_bytes(rows))
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    db = tmp_path / "cli.duckdb"
    code = main(["ingest", str(good), str(empty), "--db", str(db), "--today", "2025-06-30"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1  # one file failed as a whole
    first, second = out["files"]
    assert (first["rows_read"], first["rows_stored"], first["rows_rejected"]) == (4, 3, 1)
    assert first["rejected_by_reason"] == {"encounter_date: impossible_date": 1}
    assert second["error_code"] == "empty_file" and "empty" in second["error"]
    assert out["rows_stored"] == 3 and out["store"]["encounters"] == 3
    code = main(["ingest", str(good), "--db", str(db), "--today", "2025-06-30"])
    again = json.loads(capsys.readouterr().out)
    assert code == 0 and again["rows_stored"] == 0 and again["files"][0]["rows_already_stored"] == 3


# -- completeness --------------------------------------------------------------------------------------------

def test_identifier_completeness_per_agency_and_area(tmp_path):
    rows = []
    for i in range(4):  # Leeds children's social care; placed by home: 1 of 3 valid NHS, 2 of 3 name and DOB
        row = dict(good_rows(1)[0], source_record_id=f"C{i}", home_postcode="LS6 2AB")
        rows.append(row)
    rows[0]["nhs_number"] = "123"
    rows[1]["nhs_number"] = ""
    rows[2]["date_of_birth"] = ""
    rows[3].update(nhs_number="", forename="", surname="", date_of_birth="", home_postcode="")
    rows.append(dict(good_rows(2)[1], source_record_id="P1", home_postcode="CF10 1EP"))  # police, Cardiff
    con = store.connect(tmp_path / "c.duckdb")
    commit(con, prepare(csv_bytes(rows), "c.csv", key=KEY, today=TODAY))
    table = store.completeness(con, "utla", basis="home")
    leeds = table[(table["agency_type"] == "children_social_care") & (table["area_code"] == "E08000035")].iloc[0]
    assert leeds["area_name"] == "Leeds" and leeds["encounters"] == 3
    assert (leeds["valid_nhs_pct"], leeds["name_dob_pct"], leeds["anonymous_pct"]) == (33.3, 66.7, 0.0)
    unplaced = table[table["area_code"] == "(unplaced)"].iloc[0]
    assert unplaced["encounters"] == 1 and unplaced["anonymous_pct"] == 100.0
    cardiff = table[table["area_code"] == "W06000015"].iloc[0]
    assert cardiff["agency_type"] == "police" and cardiff["valid_nhs_pct"] == 100.0
    either = store.completeness(con, "pfa", basis="either")
    assert set(either["area_code"]) == {"E23000010", "W15000003"}  # the anonymous contact placed where it happened
    con.close()


# -- default dataset ----------------------------------------------------------------------------------------

def test_default_dataset_is_built_once_with_progress(tmp_path, monkeypatch):
    from lib.records.default import ensure_default_dataset

    monkeypatch.delenv("JOINEDUP_KEY", raising=False)
    db = tmp_path / "default" / "joinedup.duckdb"
    steps = []
    started = time.perf_counter()
    summary = ensure_default_dataset(db, lambda f, m: steps.append((f, m)), n_encounters=3000)
    assert summary["created"] and summary["encounters"] > 2900
    assert time.perf_counter() - started < 30
    fractions = [f for f, _ in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(steps) >= 4
    truth = pd.read_parquet(db.with_name("truth.parquet"))
    assert {"agency_type", "source_record_id", "true_child_id", "true_cse"} <= set(truth.columns)
    assert not any(c.startswith("true_") and c not in ("true_child_id", "true_cse") for c in truth.columns)
    assert db.with_suffix(".key").exists()
    assert ensure_default_dataset(db, None)["created"] is False


# -- the store facade: one table module, the schema version and its migration, one data version (issue 15) ----

SCHEMA1_STORE = ROOT / "tests" / "data" / "store_schema1_e4a3813.duckdb.gz"  # built by commit e4a3813 (below)


def _schema1_store(tmp_path: Path) -> Path:
    """A private store written by the release before issue 15 (schema version 1): main at commit e4a3813
    ran ``store.connect(path)`` then ``ingest.commit`` of ``prepare(csv_bytes(good_rows(5)), "v1.csv",
    key=KEY, today=TODAY)`` and CHECKPOINT; the file is gzipped. It has no linkage tables (they came with
    the first linkage run)."""
    import gzip

    path = tmp_path / "old.duckdb"
    path.write_bytes(gzip.decompress(SCHEMA1_STORE.read_bytes()))
    os.chmod(path, 0o600)
    return path


def _tables_of(con) -> set[str]:
    with store.cursor(con) as cur:
        return tables.existing(cur)


def test_a_store_written_by_the_previous_release_opens_and_is_upgraded(tmp_path):
    path = _schema1_store(tmp_path)
    reader = store.connect(path, read_only=True)  # readers of the new release read an old store as it is
    assert dict(reader.execute("SELECT * FROM meta").fetchall())["schema_version"] == "1"
    before = snapshot(reader)
    reader.close()
    assert "review_decisions" not in _tables_of(duckdb_open(path))
    with store.Store.open(path) as s:
        assert s.schema_version() == tables.SCHEMA_VERSION == 7  # 3 Bloom, 4 aggregates, 6 DOB parts, 7 pages
        assert set(tables.TABLES) <= _tables_of(s.con)
        after = snapshot(s.con)
        # every stored value kept; schemas 3 and 6 append the Bloom-filter and date-part hash columns, empty for
        # rows stored before
        width = len(before["encounters"][0])
        assert [row[:width] for row in after["encounters"]] == before["encounters"]
        assert all(value is None for row in after["encounters"] for value in row[width:])
        assert after["batches"] == before["batches"]
        assert dict(after["meta"])["key_check"] == dict(before["meta"])["key_check"] == key_check(KEY)
        assert s.data_version().startswith("5:1:None:-1:r0:")
    # the upgraded store takes a batch with the same key and a reviewer decision, as a new one does
    con = store.connect(path)
    commit(con, prepare(csv_bytes(good_rows(3)), "again.csv", key=KEY, today=TODAY))
    assert store.counts(con)["encounters"] == 5
    run.record_decision(con, "police|E23000010|R1", "health|RR8|R2", "reject", "lead")
    con.close()


def test_a_versioned_store_of_the_previous_release_is_upgraded_by_its_next_writer(tmp_path):
    path = _schema1_store(tmp_path)
    with versions.write(path, "upgrade") as w:
        assert store.Store(w.con).schema_version() == tables.SCHEMA_VERSION
    con = store.connect(path, read_only=True)
    assert dict(con.execute("SELECT * FROM meta").fetchall())["schema_version"] == str(tables.SCHEMA_VERSION)
    assert store.counts(con)["encounters"] == 5 and "linkage_runs" in _tables_of(con)
    con.close()


def duckdb_open(path: Path):
    return duckdb.connect(str(path), read_only=True)


def test_a_failed_migration_leaves_the_store_as_it_was(tmp_path, monkeypatch):
    path = _schema1_store(tmp_path)

    def broken(cur):
        cur.execute("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("migration failed half way")

    monkeypatch.setitem(tables.MIGRATIONS, 1, broken)
    with pytest.raises(RuntimeError, match="half way"):
        store.connect(path)
    con = duckdb_open(path)
    assert "half_done" not in _tables_of(con)
    assert dict(con.execute("SELECT * FROM meta").fetchall())["schema_version"] == "1"
    con.close()


def test_a_store_from_a_newer_release_is_refused(tmp_path):
    path = tmp_path / "new.duckdb"
    con = store.connect(path)
    con.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", [str(tables.SCHEMA_VERSION + 1)])
    con.close()
    for read_only in (False, True):
        with pytest.raises(store.StoreError, match="newer Joined Up"):
            store.connect(path, read_only=read_only)
    with pytest.raises(store.StoreError, match="newer Joined Up"), versions.write(path, "old writer"):
        pass


def test_a_new_store_holds_every_table_of_the_one_table_module(tmp_path):
    with store.Store.open(tmp_path / "s.duckdb") as s:
        assert _tables_of(s.con) == set(tables.TABLES)
        assert s.schema_version() == tables.SCHEMA_VERSION
        assert [c[0] for c in s.con.execute("DESCRIBE encounters").fetchall()] == store.ENCOUNTER_NAMES


def test_a_transaction_writes_everything_or_nothing():
    con = store.connect(":memory:")
    with pytest.raises(duckdb.Error, match="stop half way"), store.transaction(con) as cur:
        cur.execute("INSERT INTO meta VALUES ('a', '1')")
        cur.execute("SELECT error('stop half way')").fetchall()
    with store.transaction(con) as cur:
        cur.execute("INSERT INTO meta VALUES ('b', '2')")
    names = {r[0] for r in con.execute("SELECT name FROM meta").fetchall()}
    assert "b" in names and "a" not in names
    con.close()


def test_the_data_version_changes_on_a_reviewer_decision_in_a_private_store():
    """A reviewer's decision changes what the next link does and what the review page shows: caches keyed on
    the data version must see it even when it is written in place (a private store, no new version)."""
    con = store.connect(":memory:")
    commit(con, prepare(csv_bytes(good_rows(5)), "a.csv", key=KEY, today=TODAY))
    token = store.data_version(con)
    run.record_decision(con, "police|E23000010|R1", "health|RR8|R2", "reject", "lead")
    second = store.data_version(con)
    assert second != token
    run.record_decision(con, "police|E23000010|R1", "health|RR8|R2", "accept", "lead")
    assert store.data_version(con) not in (token, second)
    con.close()
