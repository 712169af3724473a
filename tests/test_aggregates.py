"""The stored aggregates (issue 19): the cube every page reads is kept in the store by every write, inside the
write's transaction, and always equals a from-scratch count (``counts.build_cube``).

- After random sequences of uploads, linkage imports and reviewer decisions (hypothesis, the fixed "ci"
  profile of tests/conftest.py, small in-memory stores) the stored cube equals ``build_cube``; and after a
  real linkage run followed by a decision and an upload (incremental refreshes).
- A failure mid-refresh (an exception inside the transaction, or ``kill -9`` of the writing process) leaves the
  previous aggregates readable, current and equal to a recount; a reader on another connection during a write
  sees the old aggregates with the old records.
- A store of an older schema is upgraded (3 → 4) with its aggregates built once.
- Schema 7: the pages' stored measures (``agg_frames``: spans, flows, completeness) are current after every
  write of the sequence and equal a recomputation, and the Across and Data pages read from them give the same
  page as computed from the records; an error while building them rolls the write back and leaves them current.
- A linkage write builds its Across measures beside its transaction (``store.rebuilt_beside``): a second run's are
  its own record map's, an error beside rolls the write back, an error inside interrupts the work beside; the
  geography the save reads is loaded while it links (``stored.prepare``).
"""
from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lib.disclosure import members, service
from lib.linkage import run
from lib.linkage.exchange import RECORD_CHILD_COLUMNS, import_linkage
from lib.measures import aggregates, counts
from lib.records import aggregates as stored
from lib.records import ingest, store, tables, versions
from lib.synth import SynthConfig, generate
from tests.fixtures_linkage import TEST_KEY, synthetic_store

ROOT = Path(__file__).resolve().parents[1]
KEYS = ["layer", "basis", "granularity", "period", "agency_type", "area_code"]


def normalised(cube: counts.MeasureCube) -> pd.DataFrame:
    frame = cube.counts.sort_values(KEYS, ignore_index=True)
    return frame[sorted(frame.columns)]


def assert_same_cube(con) -> bool:
    """The stored cube equals a from-scratch count; returns whether it came from the stored aggregates."""
    got, from_store = aggregates.load(con)
    want = counts.build_cube(con)
    pd.testing.assert_frame_equal(normalised(got), normalised(want), check_exact=False, rtol=1e-12, atol=1e-9)
    cols = ["agency_type", "agency_code", "records"]
    pd.testing.assert_frame_equal(got.unplaced_native.sort_values(cols, ignore_index=True),
                                  want.unplaced_native.sort_values(cols, ignore_index=True))
    assert (got.periods, got.agencies, got.linked) == (want.periods, want.agencies, want.linked)
    return from_store


def assert_same_protected(con) -> bool:
    """The stored protected cube (what every role below the lead reads) equals one computed from the records by
    ``service.protected_cube``, and the stored exact cube is current; returns whether the store holds them (it
    does once it has records)."""
    if not con.execute("SELECT count(*) FROM encounters").fetchall()[0][0]:
        assert aggregates.stored_cube(con, "protected") is None
        return False
    with store.cursor(con) as cur:
        assert stored.cubes_current(cur, "exact") and stored.cubes_current(cur, "protected")
    got = aggregates.stored_cube(con, "protected")
    want = service.protected_cube(con, counts.build_cube(con), keys=members.key_tables(con))
    pd.testing.assert_frame_equal(normalised(got), normalised(want), check_exact=False, rtol=1e-12, atol=1e-9)
    cols = ["agency_type", "agency_code", "records"]
    pd.testing.assert_frame_equal(got.unplaced_native.sort_values(cols, ignore_index=True),
                                  want.unplaced_native.sort_values(cols, ignore_index=True))
    assert (got.periods, got.agencies, got.linked) == (want.periods, want.agencies, want.linked)
    kept, made = aggregates.stored_keys(con), members.key_tables(con)
    assert set(kept) == set(made)
    for name in made:  # the disclosure keys stored with it are the store's keys
        pd.testing.assert_frame_equal(kept[name].to_pandas().sort_values(list(kept[name].column_names),
                                                                         ignore_index=True),
                                      made[name].to_pandas().sort_values(list(made[name].column_names),
                                                                         ignore_index=True))
    return True


def stored_frames(con) -> dict:
    return {name: aggregates.stored_frame(con, name)
            for name in con.execute("SELECT name FROM agg_frames ORDER BY name").df()["name"]}


def assert_same_views(con, pages: bool = False) -> bool:
    """The pages' stored measures (``agg_frames``) are current and equal the same measures computed now from the
    records (every one: spans, flows, who only linkage found and completeness, exact and published); with
    ``pages``, the Across and Data pages built from them equal the pages computed from the records. Returns
    whether the store holds them (it does once it has records)."""
    if not con.execute("SELECT count(*) FROM encounters").fetchall()[0][0]:
        return False
    with store.cursor(con) as cur:
        assert stored.cubes_current(cur, "views")
    linked = store.has_table(con, "record_child")
    want = dict(aggregates.view_frames(con, members.key_tables(con, children=linked), linked))
    got = stored_frames(con)
    assert set(got) == set(want) and any(name.startswith("data.") for name in want)
    assert linked == any(name.startswith("across/spans/") for name in want)
    for name, value in want.items():
        if isinstance(value, dict):
            assert got[name] == value, name
        else:
            pd.testing.assert_frame_equal(got[name], value, obj=name)
    if pages:
        assert_pages_read_the_stored_measures(con)
    return True


def assert_pages_read_the_stored_measures(con) -> None:
    from lib.views import across, compare, data
    from lib.views.base import Source

    linked = store.has_table(con, "record_child")
    for module, role, params in ((across, "lead", {"layer": "utla", "span": "any", "top": 15}),
                                 (across, "commissioner", {"layer": "pfa", "span": "any", "top": 5}),
                                 (data, "analyst", {"layer": "utla", "basis": "either", "agency": "all"}),
                                 (data, "analyst", {"layer": "icb", "basis": "home", "agency": "police"}),
                                 (compare, "commissioner", {"layer": "utla"}),
                                 (compare, "lead", {"layer": "utla"}),  # resident children from Across's frame
                                 (compare, "lead", {"layer": "nhs"}),  # not a home layer: counted
                                 (compare, "analyst", {"layer": "nhs", "period": "all", "mode": "neighbours"}),
                                 *(((compare, "commissioner", {"layer": "pfa", "measure": "cse_children"}),
                                    (compare, "lead", {"layer": "pfa", "measure": "cse_children"}))
                                   if linked else ())):
        full = {**{k: v.default for k, v in module.PARAMS.items()}, **params}
        kept, counted = Source(con), Source(con, use_stored=False)
        extra = {"figures": ()} if module is across else {}
        got = module.build(kept, dict(full), role, **extra).to_json()
        assert got == module.build(counted, dict(full), role, **extra).to_json(), (module.PAGE, role)


@pytest.fixture(scope="module")
def synthetic():
    encounters, _ = generate(SynthConfig(n_encounters=360, seed=3))
    encounters = encounters.sample(frac=1.0, random_state=0).reset_index(drop=True)  # agencies mixed
    # a few records of an agency without a native geography (native basis = direct basis for them)
    other = encounters.index[::17]
    encounters.loc[other, "agency_type"] = "other"
    encounters.loc[other, "agency_code"] = "X1"
    return encounters


def _upload(con, frame: pd.DataFrame, name: str) -> dict:
    return ingest.commit(con, ingest.prepare_frame(frame, name, key=TEST_KEY))


def _import_children(con, folder: Path, seed: int, n_children: int) -> dict:
    """A linkage 'computed elsewhere': every stored record given one of n_children ids (some anonymous)."""
    keys = con.execute("SELECT record_key FROM encounters ORDER BY record_key").df()["record_key"]
    rng = np.random.default_rng(seed)
    child = pd.Series([f"c{v}" for v in rng.integers(0, n_children, len(keys))], dtype="object")
    child[rng.random(len(keys)) < 0.1] = None
    frame = pd.DataFrame({"record_key": keys, "child_id": child, "node_id": child.fillna("anon"),
                          "link_method": "imported", "best_match_probability": 1.0, "by_nhs": False,
                          "nhs_conflict": False, "shared_number_suspected": False})[RECORD_CHILD_COLUMNS]
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / "record_child.parquet", index=False)
    return import_linkage(con, folder)


OPS = st.lists(st.one_of(
    st.tuples(st.just("upload"), st.integers(0, 359), st.integers(1, 120)),
    st.tuples(st.just("link"), st.integers(0, 2**16), st.integers(1, 40)),
    st.tuples(st.just("decide"), st.integers(0, 2**16), st.sampled_from(["accept", "reject"])),
), min_size=1, max_size=6)


@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=OPS)
# always tried: incremental refreshes (small uploads before and after a link, a decision) besides full ones
@example(ops=[("upload", 0, 200), ("upload", 200, 20), ("link", 5, 30), ("upload", 220, 10), ("decide", 7, "reject"),
              ("link", 6, 30)])
def test_stored_aggregates_equal_a_recount_after_any_sequence_of_changes(synthetic, tmp_path_factory, ops):
    con = store.connect(":memory:")
    folder = tmp_path_factory.mktemp("imports")
    try:
        assert assert_same_cube(con)  # a new store's (empty) aggregates
        for i, op in enumerate(ops):
            if op[0] == "upload":
                _, start, size = op
                _upload(con, synthetic.iloc[start:start + size], f"part{i}.parquet")
            elif op[0] == "link":
                if con.execute("SELECT count(*) FROM encounters").fetchall()[0][0] == 0:
                    continue
                _import_children(con, folder / f"run{i}", op[1], op[2])
            else:
                keys = con.execute("SELECT record_key FROM encounters ORDER BY record_key").df()["record_key"]
                if len(keys) < 2:
                    continue
                rng = np.random.default_rng(op[1])
                left, right = rng.choice(len(keys), 2, replace=False)
                run.record_decision(con, keys[left], keys[right], op[2], "test")
            # every write left the aggregates current (none fell back to a recount) and equal to one
            assert assert_same_cube(con), f"after {op}"
            assert_same_protected(con)
            assert_same_views(con, pages=i == len(ops) - 1)
    finally:
        con.close()


def test_a_linkage_run_keeps_the_data_measures_and_an_upload_recounts_them(synthetic, tmp_path, monkeypatch):
    """The Data page's stored measures count records and their keys, never the linkage: a linkage run (its save's
    full rebuild) keeps them, an upload recomputes them, and after both they equal a recount."""
    counted = []
    real = aggregates.completeness_atom_sets
    monkeypatch.setattr(aggregates, "completeness_atom_sets", lambda *a, **k: counted.append(1) or real(*a, **k))
    con = store.connect(":memory:")
    try:
        _upload(con, synthetic.iloc[:200], "first.parquet")
        assert counted
        counted.clear()
        _import_children(con, tmp_path / "run1", 3, 40)
        assert not counted  # kept
        assert assert_same_views(con)
        _import_children(con, tmp_path / "run2", 4, 25)  # a second run: kept again
        counted.clear()
        _upload(con, synthetic.iloc[200:210], "second.parquet")
        assert counted  # new records: recounted
        assert assert_same_views(con)
        with store.cursor(con) as cur:  # one of them missing: none is kept, every one is rebuilt
            gone = cur.execute("DELETE FROM agg_frames WHERE name = ?",
                               [aggregates.frame_name("data.completeness", "utla", "home")]).fetchall()
        assert gone == [(1,)]
        counted.clear()
        _import_children(con, tmp_path / "run3", 5, 30)
        assert counted
        assert assert_same_views(con)
    finally:
        con.close()


def test_an_upload_refreshes_only_its_cells(synthetic):
    con = store.connect(":memory:")
    try:
        _upload(con, synthetic.iloc[:200], "first.parquet")
        police = synthetic.iloc[200:][synthetic.iloc[200:]["agency_type"] == "police"].head(5)
        before = con.execute("SELECT * FROM agg_direct ORDER BY ALL").df()
        _upload(con, police, "police.parquet")
        after = con.execute("SELECT * FROM agg_direct ORDER BY ALL").df()
        # rows of other agencies are untouched; police rows changed only in the batch's areas
        keep = ["layer", "agency_type", "area_code", "granularity", "period"]
        merged = before.merge(after, on=keep, how="outer", suffixes=("_b", "_a"), indicator=True)
        changed = merged[(merged["_merge"] != "both") | (merged["records_b"] != merged["records_a"])]
        assert not changed.empty and set(changed["agency_type"]) == {"police"}
        assert assert_same_cube(con)
    finally:
        con.close()


@pytest.fixture(scope="module")
def linked_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("agg_linked") / "store.duckdb"
    con, _ = synthetic_store(path, n_encounters=1_500, seed=7, link=True)
    yield path, con
    con.close()


def test_after_a_linkage_run_a_decision_and_an_upload_the_cube_is_current(linked_store, synthetic):
    _, con = linked_store
    assert assert_same_cube(con)
    pair = con.execute("SELECT record_key_l, record_key_r FROM link_edges ORDER BY match_probability, "
                       "record_key_l LIMIT 1").fetchall()[0]
    run.record_decision(con, pair[0], pair[1], "reject", "test")
    assert assert_same_cube(con)
    _upload(con, synthetic.iloc[:50], "later.parquet")
    assert assert_same_cube(con)


def test_a_store_changed_behind_the_aggregates_is_recounted_not_shown_stale(synthetic):
    con = store.connect(":memory:")
    try:
        _upload(con, synthetic.iloc[:100], "first.parquet")
        con.execute("UPDATE encounters SET cse_flag = NOT coalesce(cse_flag, false)")  # no refresh
        con.execute("DELETE FROM encounters WHERE agency_type = 'police'")
        assert not assert_same_cube(con)  # the fingerprint differs: counted from the records
        _upload(con, synthetic.iloc[100:150], "second.parquet")  # the next write rebuilds whole
        assert assert_same_cube(con)
    finally:
        con.close()


# -- failures mid-refresh ----------------------------------------------------------------------------------------

def test_an_error_while_building_the_stored_cubes_leaves_the_previous_ones(synthetic, monkeypatch):
    con = store.connect(":memory:")
    try:
        _upload(con, synthetic.iloc[:150], "first.parquet")
        assert assert_same_protected(con)
        before = normalised(aggregates.stored_cube(con, "protected"))
        cube_rows = con.execute("SELECT * FROM agg_cube ORDER BY cube, ord").fetchall()

        def failing(*args, **kwargs):  # the exact cube is already rewritten by then (same transaction)
            raise RuntimeError("out of memory (simulated) while building the protected cube")

        monkeypatch.setattr(service, "protected_cube", failing)
        with pytest.raises(RuntimeError, match="simulated"):
            _upload(con, synthetic.iloc[150:300], "second.parquet")
        monkeypatch.undo()
        assert con.execute("SELECT count(*) FROM batches").fetchall()[0][0] == 1  # the upload rolled back too
        assert con.execute("SELECT * FROM agg_cube ORDER BY cube, ord").fetchall() == cube_rows
        assert assert_same_protected(con) and assert_same_cube(con)
        pd.testing.assert_frame_equal(normalised(aggregates.stored_cube(con, "protected")), before)
    finally:
        con.close()


def test_a_decision_keeps_the_stored_cubes_and_a_stale_one_is_never_read(synthetic):
    con = store.connect(":memory:")
    try:
        _upload(con, synthetic.iloc[:200], "first.parquet")
        keys = con.execute("SELECT record_key FROM encounters ORDER BY record_key LIMIT 2").df()["record_key"]
        with store.cursor(con) as cur:
            fingerprint = stored.cubes_fingerprint(cur)
        run.record_decision(con, keys[0], keys[1], "reject", "test")  # no record_child row changes
        with store.cursor(con) as cur:
            assert stored.cubes_fingerprint(cur) == fingerprint and stored.cubes_current(cur, "protected")
        # records written behind the aggregates' back: the stored cubes are no longer current, never read
        con.execute("UPDATE agg_cube SET records = records + 1")
        con.execute("INSERT INTO encounters SELECT * REPLACE (record_key || 'x' AS record_key) FROM encounters "
                    "LIMIT 3")
        assert aggregates.stored_cube(con, "protected") is None and aggregates.stored_cube(con, "exact") is None
        assert not assert_same_cube(con)  # recounted from the records
    finally:
        con.close()


def test_an_error_mid_refresh_leaves_the_previous_aggregates(synthetic, monkeypatch):
    con = store.connect(":memory:")
    try:
        _upload(con, synthetic.iloc[:150], "first.parquet")
        before = normalised(aggregates.cube(con))
        rows_before = con.execute("SELECT * FROM agg_direct ORDER BY ALL").fetchall()
        real, calls = stored.direct_sql, []

        def failing(layer, linked, cells=None, **kwargs):  # the first layer's cells are already rewritten by then
            calls.append(layer)
            if len(calls) == 2:
                raise RuntimeError("disk full (simulated) while rebuilding the aggregates")
            return real(layer, linked, cells, **kwargs)

        monkeypatch.setattr(stored, "direct_sql", failing)
        with pytest.raises(RuntimeError, match="simulated"):
            _upload(con, synthetic.iloc[150:300], "second.parquet")
        monkeypatch.undo()
        assert len(calls) == 2
        assert con.execute("SELECT count(*) FROM batches").fetchall()[0][0] == 1  # the upload rolled back too
        assert con.execute("SELECT * FROM agg_direct ORDER BY ALL").fetchall() == rows_before
        assert assert_same_cube(con)
        pd.testing.assert_frame_equal(normalised(aggregates.cube(con)), before)
        # a failing full rebuild (a linkage import) leaves the linkage and the aggregates as they were
        monkeypatch.setattr(stored, "rebuild", lambda cur, **kw: (_ for _ in ()).throw(RuntimeError("simulated")))
        with pytest.raises(RuntimeError, match="simulated"):
            _import_children(con, Path(os.environ.get("TMPDIR", "/tmp")) / f"agg-import-{os.getpid()}", 1, 9)
        monkeypatch.undo()
        assert not store.has_table(con, "record_child")
        assert assert_same_cube(con)
    finally:
        con.close()


def test_an_error_while_building_the_stored_measures_leaves_the_previous_ones(synthetic, tmp_path, monkeypatch):
    from lib.measures import spans

    con = store.connect(":memory:")
    try:
        _upload(con, synthetic.iloc[:150], "first.parquet")
        _import_children(con, tmp_path / "run1", 1, 40)
        assert assert_same_views(con, pages=True)
        before = con.execute("SELECT name, kind, payload FROM agg_frames ORDER BY name").fetchall()
        assert any(name.startswith("across/flows/") for name, _, _ in before)
        calls = []

        def failing(*args, **kwargs):  # the Data page's measures (and the cubes) are rewritten by then
            calls.append(1)
            raise RuntimeError("out of memory (simulated) while storing the flows")

        monkeypatch.setattr(spans, "flows", failing)
        with pytest.raises(RuntimeError, match="simulated"):  # a linkage import rebuilds every measure
            _import_children(con, tmp_path / "run2", 2, 25)
        monkeypatch.setattr(aggregates, "completeness_atom_sets", failing)
        with pytest.raises(RuntimeError, match="simulated"):  # an upload rebuilds the Data page's
            _upload(con, synthetic.iloc[150:300], "second.parquet")
        monkeypatch.undo()
        assert len(calls) == 2
        assert con.execute("SELECT count(*) FROM batches").fetchall()[0][0] == 1  # both writes rolled back
        assert con.execute("SELECT name, kind, payload FROM agg_frames ORDER BY name").fetchall() == before
        assert assert_same_views(con) and assert_same_protected(con) and assert_same_cube(con)
        monkeypatch.setattr(spans, "flows", failing)  # an upload after a link keeps the Across ones (not rebuilt)
        _upload(con, synthetic.iloc[150:200], "second.parquet")
        monkeypatch.undo()
        assert len(calls) == 2
        assert assert_same_views(con, pages=True)
    finally:
        con.close()


def test_a_reader_during_a_write_sees_the_old_aggregates_with_the_old_records(synthetic):
    con = store.connect(":memory:")
    try:
        _upload(con, synthetic.iloc[:150], "first.parquet")
        before = normalised(aggregates.cube(con))
        seen = {}

        def progress(stage):
            if stage == "committing":  # the new aggregates are written, not yet committed
                cube, from_store = aggregates.load(con)  # its own cursor: another transaction
                seen["cube"], seen["from_store"] = normalised(cube), from_store

        ingest.commit(con, ingest.prepare_frame(synthetic.iloc[150:300], "second.parquet", key=TEST_KEY),
                      progress=progress)
        assert seen["from_store"]
        pd.testing.assert_frame_equal(seen["cube"], before)
        assert not normalised(aggregates.cube(con)).equals(before)
        assert assert_same_cube(con)
    finally:
        con.close()


CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    import pandas as pd
    from lib.records import ingest, store
    path, extract = sys.argv[1], sys.argv[2]
    con = store.connect(path)
    batch = ingest.prepare_frame(pd.read_parquet(extract), "big.parquet", key={key!r})
    def progress(at):
        if at == "updating aggregates":
            print("AT", at, flush=True)  # no pause: the parent kills while the refresh runs
    ingest.commit(con, batch, progress=progress)
    print("COMMITTED", flush=True)
    time.sleep(60)
""")


def test_killed_mid_refresh_leaves_the_aggregates_current(tmp_path):
    encounters, _ = generate(SynthConfig(n_encounters=20_000, seed=9))
    path = tmp_path / "store.duckdb"
    con = store.connect(path)
    _upload(con, encounters.iloc[:2_000], "first.parquet")
    con.close()
    extract = tmp_path / "rest.parquet"
    encounters.iloc[2_000:].to_parquet(extract, index=False)
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(root=str(ROOT), key=TEST_KEY), str(path),
                              str(extract)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.startswith(("AT", "COMMITTED")), (line, child.stderr.read())
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    reopened = store.connect(path)
    try:
        assert store.counts(reopened)["encounters"] in (2_000, 20_000)
        assert assert_same_cube(reopened)  # old or new, whole, and current either way
        assert assert_same_views(reopened)  # the pages' stored measures too
    finally:
        reopened.close()


def test_queued_decisions_applied_by_the_next_writer_keep_the_aggregates_current(synthetic, tmp_path):
    path = tmp_path / "store.duckdb"
    with versions.write(path, "load") as w:
        _upload(w.con, synthetic.iloc[:120], "first.parquet")
        _import_children(w.con, tmp_path / "children", 3, 30)
    reader = store.connect(path, read_only=True)
    keys = reader.execute("SELECT record_key FROM encounters ORDER BY record_key LIMIT 2").df()["record_key"]
    reader.close()
    versions.queue_decision(path, {"record_key_l": keys[0], "record_key_r": keys[1], "decision": "reject",
                                   "reviewer": "test", "decided_at": "2026-11-30 12:00:00"})
    with versions.write(path, "next load") as w:
        assert w.con.execute("SELECT count(*) FROM review_decisions").fetchall()[0][0] == 1
        assert stored.current(w.con)
    reader = store.connect(path, read_only=True)
    try:
        assert assert_same_cube(reader)
    finally:
        reader.close()


# -- the schema 3 -> 4 migration ---------------------------------------------------------------------------------

def test_an_older_store_gets_its_aggregates_built_once_when_upgraded(synthetic, tmp_path):
    path = tmp_path / "old.duckdb"
    con = store.connect(path)
    _upload(con, synthetic.iloc[:200], "first.parquet")
    con.execute("DROP TABLE agg_direct")  # what a store of schema 3 looks like
    con.execute("DROP TABLE agg_native")
    con.execute("DROP TABLE agg_cube")  # (schema 5's)
    con.execute("DROP TABLE agg_unplaced")
    con.execute("DELETE FROM meta WHERE name LIKE 'aggregates%'")
    con.execute("UPDATE meta SET value = '3' WHERE name = 'schema_version'")
    con.close()
    reader = store.connect(path, read_only=True)  # read-only: counted from the records, as before
    assert not assert_same_cube(reader)
    reader.close()
    with versions.write(path, "upgrade") as w:  # the next writer upgrades it
        assert store.Store(w.con).schema_version() == tables.SCHEMA_VERSION == 7
    reader = store.connect(path, read_only=True)
    try:
        assert assert_same_cube(reader)
    finally:
        reader.close()


# -- Spark: the same SQL over the exchanged Parquet ------------------------------------------------------------

def _spark_ready() -> bool:
    import shutil

    from lib.linkage import spark as spark_backend

    return spark_backend.available() and bool(shutil.which("java"))


@pytest.mark.skipif(os.environ.get("JOINEDUP_REQUIRE_SPARK") != "1" and not _spark_ready(),
                    reason="pyspark (requirements-spark.txt) or Java 17 is not installed; "
                           "set JOINEDUP_REQUIRE_SPARK=1 to make this a failure")
def test_spark_and_duckdb_build_the_same_aggregates(linked_store, tmp_path):
    _, con = linked_store
    store.export_parquet(con, tmp_path / "exchange")
    direct, native, linked = aggregates.build_on_spark(tmp_path / "exchange", master="local[2]", partitions=4)
    assert linked
    ours_direct = con.execute("SELECT * FROM agg_direct").df()
    ours_native = con.execute("SELECT * FROM agg_native").df()
    assert len(ours_direct) > 1_000
    for theirs, ours, keys in ((direct, ours_direct, list(stored.DIRECT_KEYS)),
                               (native, ours_native, list(stored.NATIVE_KEYS))):
        pd.testing.assert_frame_equal(theirs[list(ours.columns)].sort_values(keys, ignore_index=True),
                                      ours.sort_values(keys, ignore_index=True))
    # brought back into the store, they are its current aggregates and give the same cube as a recount
    aggregates.store_rows(con, direct, native)
    assert assert_same_cube(con)


@pytest.mark.skipif(os.environ.get("JOINEDUP_REQUIRE_SPARK") != "1" and not _spark_ready(),
                    reason="pyspark (requirements-spark.txt) or Java 17 is not installed; "
                           "set JOINEDUP_REQUIRE_SPARK=1 to make this a failure")
def test_spark_and_duckdb_build_the_same_completeness_measures(linked_store, tmp_path):
    """The Data page's stored measures (schema 7): Spark SQL over the exchanged Parquet gives the atoms DuckDB
    counts, and published they are the stored ``data.completeness`` measures of every layer and basis."""
    from lib.disclosure import cells

    _, con = linked_store
    written = store.export_parquet(con, tmp_path / "exchange", aggregates.EXCHANGE_TABLES)
    assert written["agg_record_keys"] == written["encounters"] > 1_000
    theirs = aggregates.completeness_on_spark(tmp_path / "exchange", master="local[2]", partitions=4)
    keys = members.key_tables(con)
    # three bases, by the measure layers and by each of icb and lhb besides (no sub-ICB: layers.on_measure_atoms)
    assert len(theirs) == 9
    for (placed, basis), atoms in theirs.items():
        with store.cursor(con) as cur:
            members.register(cur, keys)
            ours = cur.execute(aggregates.completeness_sql(list(placed), basis)).df()
        key = ["agency_type", "year", *(f"a{i}" for i in range(len(placed)))]
        norm = [frame.astype({c: "object" for c in key}).fillna({c: "(none)" for c in key})
                .sort_values(key, ignore_index=True) for frame in (atoms, ours)]
        pd.testing.assert_frame_equal(norm[0], norm[1], check_dtype=False)
        assert len(ours) > 10
        for layer in placed:
            if list(placed) != aggregates.completeness_placed(layer):
                continue
            published = aggregates.completeness_by_area(
                cells.publish(atoms, list(aggregates.COMPLETENESS_COUNTS)), list(placed), layer)
            kept = aggregates.stored_frame(con, aggregates.frame_name("data.completeness", layer, basis))
            sort = ["agency_type", "area_code"]
            both = [frame.astype({"area_code": "object"}).sort_values(sort, ignore_index=True)
                    for frame in (published, kept)]
            pd.testing.assert_frame_equal(both[0], both[1], check_dtype=False)


def test_the_refresh_is_incremental_only_when_the_aggregates_were_current(synthetic):
    con = store.connect(":memory:")
    try:
        _upload(con, synthetic.iloc[:100], "first.parquet")
        _upload(con, synthetic.iloc[100:110], "second.parquet")
        cur = con.cursor()
        cur.execute("BEGIN TRANSACTION")
        assert stored.refresh(cur, batch_id=2, was_current=stored.current(cur)) == "incremental"
        assert stored.refresh(cur, batch_id=1, was_current=True) == "full"  # most of the store: from scratch
        assert stored.refresh(cur, batch_id=2, was_current=False) == "full"
        assert stored.refresh(cur, full=True) == "full"
        cur.execute("ROLLBACK")
        cur.close()
    finally:
        con.close()


def test_a_scenario_simulation_builds_no_stored_aggregates(monkeypatch):
    """The Scenario simulation's scratch stores (lib.scenario.simulate.run: in memory, read by its own code from the
    record tables, thrown away) keep no stored aggregates: every refresh of its upload and linkage run does nothing
    and no cube or page measure is built (that build was 53 s of a 97 s Scenario first open). The caller's writes
    after it maintain them as before."""
    from lib.scenario import simulate
    from lib.scenario.capture import Levers

    refreshed, built = [], []
    real_refresh, real_build = stored.refresh, aggregates.build_stored

    def refresh(cur, **kwargs):
        refreshed.append(real_refresh(cur, **kwargs))
        return refreshed[-1]

    def build_stored(cur, **kwargs):
        built.append(kwargs)
        return real_build(cur, **kwargs)

    monkeypatch.setattr(stored, "refresh", refresh)
    monkeypatch.setattr(aggregates, "build_stored", build_stored)
    out = simulate.run(simulate.population(6_000, 7), Levers(), key=TEST_KEY, mode="full")
    assert out.metrics["linkage"] == "full" and out.metrics["f1"] > 0.9
    assert refreshed == ["off", "off"]  # the upload's and the linkage run's
    assert built == []
    assert stored.maintaining()
    con = store.connect(":memory:")  # outside the simulation: maintained
    try:
        assert built  # the new store's (empty) cubes
        _upload(con, generate(SynthConfig(n_encounters=200, seed=5))[0], "after.parquet")
        assert refreshed[-1] == "full" and aggregates.load(con)[1]
    finally:
        con.close()


def test_writes_inside_scratch_leave_the_aggregates_not_current_and_readers_recount(synthetic):
    con = store.connect(":memory:")
    try:
        with stored.scratch():
            _upload(con, synthetic.iloc[:150], "scratch.parquet")
            assert con.execute("SELECT count(*) FROM agg_direct").fetchall()[0][0] == 0
            assert con.execute("SELECT count(*) FROM agg_frames").fetchall()[0][0] == 0
        with store.cursor(con) as cur:
            assert not stored.current(cur) and not stored.cubes_current(cur, "views")
        assert not assert_same_cube(con)  # recounted, never read stale
        _upload(con, synthetic.iloc[150:160], "after.parquet")  # maintained again: rebuilt whole
        assert assert_same_cube(con)
        assert_same_views(con)
    finally:
        con.close()


def test_the_grouped_counts_equal_an_independent_pandas_recount(linked_store):
    """``grouped_sql`` (every stored aggregate, on DuckDB and Spark) counts distinct children per quarter, year and
    all periods by nested groupings, not ``count(DISTINCT)``: the records, CSE records, children and CSE children of
    every agency x area x period equal pandas' own count of the joined records (a child counted once per cell)."""
    _, con = linked_store
    rows = con.execute(f"""
        SELECT e.agency_type, e.enc_utla AS area_code, {stored._YEAR} AS year, {stored._QUARTER} AS quarter,
               coalesce(e.cse_flag, false) AS cse, rc.child_id
        FROM encounters e LEFT JOIN record_child rc USING (record_key) WHERE e.enc_utla IS NOT NULL""").df()
    expected = []
    for granularity, by in (("quarter", "quarter"), ("year", "year"), ("all", None)):
        frame = rows.assign(period=rows[by] if by else "all")
        grouped = frame.groupby(["agency_type", "area_code", "period"])
        cse_children = frame[frame["cse"]].groupby(["agency_type", "area_code", "period"])["child_id"].nunique()
        part = pd.DataFrame({"records": grouped.size(), "cse_records": grouped["cse"].sum(),
                             "children": grouped["child_id"].nunique()})
        part["cse_children"] = cse_children.reindex(part.index).fillna(0)
        expected.append(part.reset_index().assign(granularity=granularity))
    expected = pd.concat(expected, ignore_index=True)
    ours = con.execute(stored.grouped_sql("e.enc_utla", True)).df()
    key = ["agency_type", "area_code", "granularity", "period"]
    columns = [*key, "records", "cse_records", "children", "cse_children"]
    both = [frame[columns].astype({c: "float64" for c in columns[4:]}).astype({c: "str" for c in key})
            .sort_values(key, ignore_index=True) for frame in (expected, ours)]
    assert len(both[0]) > 300 and both[0]["children"].lt(both[0]["records"]).any()
    assert (both[0]["cse_children"] > 0).any()
    pd.testing.assert_frame_equal(both[0], both[1])


def test_the_rebuild_groups_one_table_of_the_records_as_each_layer_would_group_them(linked_store):
    """A full rebuild reads the records once (``records_sql``, the temporary ``RECORDS``), not joined to their
    children again per layer: every layer's and the native rows from it equal those grouped from the records
    themselves, linked or not; the rebuild stores exactly them and leaves no temporary table behind."""
    _, con = linked_store
    with pytest.raises(_RolledBack), store.transaction(con) as cur:  # the shared store left as it was
        for linked in (True, False):
            cur.execute(f"CREATE OR REPLACE TEMP TABLE {stored.RECORDS} AS {stored.records_sql(linked)}")
            statements = [*(functools.partial(stored.direct_sql, layer, linked) for layer in stored.measure_layers()),
                          functools.partial(stored.native_sql, linked)]
            for sql in statements:
                apart = cur.execute(f"SELECT * FROM ({sql(source=None)}) ORDER BY ALL").fetchall()
                assert len(apart) > 20 and apart == cur.execute(
                    f"SELECT * FROM ({sql(source=f'temp.{stored.RECORDS}')}) ORDER BY ALL").fetchall()
            cur.execute(f"DROP TABLE temp.{stored.RECORDS}")
        stored.rebuild(cur)
        rows = {table: cur.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
                for table in ("agg_direct", "agg_native")}
        assert rows["agg_direct"] == cur.execute(
            " UNION ALL ".join(f"SELECT * FROM ({stored.direct_sql(layer, True)})" for layer in stored.measure_layers())
            + " ORDER BY ALL").fetchall()
        assert rows["agg_native"] == cur.execute(f"SELECT * FROM ({stored.native_sql(True)}) ORDER BY ALL").fetchall()
        assert stored.RECORDS not in {r[0] for r in cur.execute(
            "SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()}
        raise _RolledBack


def test_the_exact_cube_is_the_same_to_the_bit_whatever_order_its_rows_were_stored_in(linked_store):
    """The converted cells sum their parts in the order the grouped rows are read; they are read in the order of
    their keys (``_stored_rows``), so rows stored in another order (a rebuild's parallel inserts) give the same
    cube exactly, not only within rounding."""
    _, con = linked_store
    with pytest.raises(_RolledBack), store.transaction(con) as cur:
        linked = "record_child" in stored._tables(cur)
        before = aggregates.from_rows(*aggregates._stored_rows(cur), linked).counts
        for table in ("agg_direct", "agg_native"):
            rows = cur.execute(f"SELECT * FROM {table}").df().sample(frac=1.0, random_state=7)
            cur.execute(f"DELETE FROM {table}")
            cur.register("shuffled", rows)
            cur.execute(f"INSERT INTO {table} SELECT * FROM shuffled")
            cur.unregister("shuffled")
        after = aggregates.from_rows(*aggregates._stored_rows(cur), linked).counts
        assert before["apportioned"].any() and len(before) > 100
        pd.testing.assert_frame_equal(before, after, check_exact=True)
        raise _RolledBack


class _RolledBack(Exception):
    """Raised to roll a test's transaction back."""


def test_the_completeness_atoms_of_several_layer_lists_from_one_query_equal_one_query_each(linked_store):
    """The stored Data measures read the atoms of all three lists of placed layers from one query per basis
    (``completeness_atom_sets``, GROUPING SETS): each list's atoms equal ``completeness_atoms`` run for it alone."""
    _, con = linked_store
    keys = members.key_tables(con)
    sets = list(dict.fromkeys(tuple(aggregates.completeness_placed(k)) for k in aggregates.store_layers()))
    assert len(sets) == 3
    for basis in store.AREA_BASES:
        together = aggregates.completeness_atom_sets(con, [list(s) for s in sets], basis, keys)
        for placed in sets:
            alone = aggregates.completeness_atoms(con, list(placed), basis, keys)
            key = ["agency_type", "year", *(f"a{i}" for i in range(len(placed)))]
            sort = [frame.astype({c: "object" for c in key}).fillna({c: "(none)" for c in key})
                    .sort_values(key, ignore_index=True) for frame in (together[placed], alone)]
            assert len(sort[1]) > 10
            pd.testing.assert_frame_equal(sort[0], sort[1], check_exact=True)


def test_known_keys_are_reused_under_this_secret_only_and_new_ids_are_hashed(linked_store, monkeypatch):
    """The stored build hands ``members.key_tables`` last time's key tables (``known``): the tables come out as
    hashing every id gives them, hashing only the ids the known tables lack (and a spot check of theirs); a known
    table made under another secret is not used; a known id listed twice is looked up once."""
    import pyarrow as pa

    _, con = linked_store
    fresh = members.key_tables(con)
    assert set(fresh) == {members.RECORD_KEYS, members.CHILD_KEYS}

    def ordered(tables):
        return {name: table.sort_by(table.column_names[0]) for name, table in tables.items()}

    real, hashed = members.keys_of, []
    monkeypatch.setattr(members, "keys_of", lambda ids, secret, domain: hashed.append(len(ids)) or real(
        ids, secret, domain))
    half = {name: table.take(pa.array(range(0, table.num_rows, 2))) for name, table in fresh.items()}
    shifted = {name: table.set_column(1, "rkey", pa.array((table.column("rkey").to_numpy() + 1) % 256, pa.int32()))
               for name, table in fresh.items()}  # another secret's keys
    total = sum(table.num_rows for table in fresh.values())
    checks = 2 * members.SPOT_CHECKS  # the spot checks; a null child id (anonymous records) is never looked up
    cases = ((fresh, 0, checks + 1), (half, total // 2 - 2, total // 2 + 2 + checks),
             ({name: pa.concat_tables([t, t]) for name, t in half.items()}, total // 2 - 2, total // 2 + 2 + checks),
             (shifted, total, total + checks))
    for known, low, high in cases:
        hashed.clear()
        got = members.key_tables(con, known=known)
        assert {name: t.num_rows for name, t in got.items()} == {name: t.num_rows for name, t in fresh.items()}
        assert ordered(got) == ordered(fresh)
        assert low <= sum(hashed) <= high


def test_record_keys_are_the_first_byte_of_the_keyed_hash():
    """``members.keys_of`` reads the digest's first byte (``Hasher.first_bytes``), as the hex text's first two
    characters gave it: the same key for every id, so every stored cell keeps its noise."""
    from lib.records.pseudonymise import Hasher

    ids = [f"CH-{i:012x}" for i in range(2_000)] + ["", "é", "None"]
    secret = b"a-test-secret-of-some-length-0123456789"
    for domain in ("record", "child"):
        assert members.keys_of(ids, secret, domain) == [int(h[:2], 16) for h in Hasher(secret).values(domain, ids)]
    assert members.keys_of([None], secret, "child") == members.keys_of(["None"], secret, "child")


def _across_rows_threads(monkeypatch) -> list[str]:
    """The names of the threads that build the Across measures from here on (``aggregates.across_rows``)."""
    threads, real = [], aggregates.across_rows

    def recorded(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(aggregates, "across_rows", recorded)
    return threads


def _beside_threads_alive() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("across-beside")]


def test_a_linkage_run_builds_the_across_measures_beside_its_transaction_from_the_new_record_map(tmp_path,
                                                                                                  monkeypatch):
    """A linkage run's save builds the Across measures on a second cursor, outside its transaction, on which the
    run's record map shadows the stored one (``rebuilt_beside``). A second run, after an upload, changes the record
    map: its stored Across measures must be the new map's (equal a recount from the committed store, which differs
    from the first run's), not the stored map's that the second cursor would otherwise read."""
    threads = _across_rows_threads(monkeypatch)
    encounters, _ = generate(SynthConfig(n_encounters=1_200, seed=11))
    con = store.connect(tmp_path / "store.duckdb")
    try:
        _upload(con, encounters.iloc[:800], "first.parquet")
        run.link(con)
        first = stored_frames(con)
        assert assert_same_views(con, pages=True)
        _upload(con, encounters.iloc[800:], "second.parquet")
        run.link(con)
        assert assert_same_views(con, pages=True)
        second = stored_frames(con)
        assert any(not second[name].equals(first[name]) for name in first
                   if name.startswith("across/spans/") and isinstance(first[name], pd.DataFrame))
    finally:
        con.close()
    assert len(threads) == 2 and all(name.startswith("across-beside") for name in threads)
    assert not _beside_threads_alive()


def test_an_error_beside_a_linkage_write_rolls_it_back_and_one_inside_it_stops_the_work_beside(synthetic, tmp_path,
                                                                                                 monkeypatch):
    """An error in the Across measures built beside the write fails the write (nothing stored changes); an error in
    the write's own transaction stops the work beside it (its DuckDB query interrupted) before the write returns."""
    from lib.measures import spans

    con = store.connect(":memory:")
    try:
        _upload(con, synthetic.iloc[:200], "first.parquet")
        _import_children(con, tmp_path / "run1", 1, 40)
        before = con.execute("SELECT name, kind, payload FROM agg_frames ORDER BY name").fetchall()
        children = con.execute("SELECT * FROM record_child ORDER BY record_key").fetchall()
        real_flows = spans.flows

        def failing_beside(*args, **kwargs):
            if threading.current_thread().name.startswith("across-beside"):
                raise RuntimeError("out of memory (simulated) beside the write")
            return real_flows(*args, **kwargs)

        monkeypatch.setattr(spans, "flows", failing_beside)
        with pytest.raises(RuntimeError, match="simulated"):
            _import_children(con, tmp_path / "run2", 2, 25)
        monkeypatch.undo()
        assert con.execute("SELECT name, kind, payload FROM agg_frames ORDER BY name").fetchall() == before
        assert con.execute("SELECT * FROM record_child ORDER BY record_key").fetchall() == children
        assert not _beside_threads_alive()

        interrupted, running, real_tables = [], threading.Event(), spans.child_tables

        def slow_beside(con_, *args, **kwargs):  # a query beside the write of ~20 s unless the failing write stops it
            running.set()
            try:
                con_.execute("SELECT sum(a.range * b.range) FROM range(100000) a, range(100000) b").fetchall()
            except duckdb.Error as exc:
                interrupted.append(str(exc))
                raise
            return real_tables(con_, *args, **kwargs)

        def failing_inside(*args, **kwargs):  # the write's own transaction fails once the query beside is running
            assert running.wait(120)
            raise RuntimeError("simulated failure inside the write")

        monkeypatch.setattr(spans, "child_tables", slow_beside)
        monkeypatch.setattr(aggregates, "from_rows", failing_inside)
        with pytest.raises(RuntimeError, match="simulated"):
            _import_children(con, tmp_path / "run3", 3, 25)
        monkeypatch.undo()
        assert interrupted and "interrupt" in interrupted[0].lower()
        assert not _beside_threads_alive()
        assert con.execute("SELECT name, kind, payload FROM agg_frames ORDER BY name").fetchall() == before
        assert assert_same_views(con) and assert_same_cube(con)
    finally:
        con.close()


def test_prepare_loads_every_conversion_the_cube_assembly_reads(linked_store, monkeypatch):
    """A linkage run starts ``stored.prepare`` while it links, so its save's cube assembly (``from_rows``) finds the
    geography's conversion weights loaded: after it, assembling the cube reads nothing of the geography again."""
    from lib.geo import catchments
    from lib.measures import convert

    _, con = linked_store
    convert.weights.cache_clear()
    thread = stored.prepare()
    assert thread is not None
    thread.join()

    def no_geography(*args, **kwargs):
        raise AssertionError("the geography was read again after prepare()")

    monkeypatch.setattr(convert, "_trust_weights", no_geography)
    monkeypatch.setattr(catchments, "area_trust_weights", no_geography)
    monkeypatch.setattr(convert.lookup, "lsoa_table", no_geography)
    with store.cursor(con) as cur:
        cube = aggregates.from_rows(*aggregates._stored_rows(cur), True)
    assert not cube.counts.empty and set(cube.counts["basis"]) == {"direct", "native"}
    monkeypatch.undo()
    with stored.scratch():
        assert stored.prepare() is None  # nothing maintained (a Scenario's simulation): nothing loaded
