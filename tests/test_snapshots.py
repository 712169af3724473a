"""Issue 21 / issue 14 (load and faults, item 9): the versioned store. One writer at a time with a one-line
message and exit code; a failed or killed writer leaves the current version untouched and its orphan is
cleaned; readers keep their version while a writer publishes; a plain-file store migrates; queued review
decisions are applied once; one data_version that changes after a re-link; store files 0600, folder 0700."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lib.records import store, versions
from tests.conftest import ROOT
from tests.fixtures_linkage import TEST_KEY

ENV = {**os.environ, "JOINEDUP_KEY": TEST_KEY.decode(), "PYTHONPATH": str(ROOT)}


def extract(folder: Path, n: int, seed: int, prefix: str) -> Path:
    """A synthetic extract (Parquet) whose record ids carry ``prefix`` (two extracts never overlap)."""
    from lib.synth import SynthConfig, generate

    encounters, _ = generate(SynthConfig(n_encounters=n, seed=seed))
    encounters["source_record_id"] = prefix + encounters["source_record_id"].astype(str)
    path = folder / f"{prefix}.parquet"
    encounters.to_parquet(path, index=False)
    return path


def cli(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lib.cli", *map(str, args)], cwd=ROOT, env=ENV, text=True,
                          capture_output=True, timeout=timeout)


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def count(path: Path, table: str = "encounters") -> int:
    con = store.connect(path, read_only=True)
    try:
        return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    finally:
        con.close()


@pytest.fixture(scope="module")
def extracts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("extracts")
    return extract(folder, 1500, 5, "A"), extract(folder, 600, 6, "B")


@pytest.fixture(scope="module")
def linked(tmp_path_factory, extracts):
    """A versioned store made by the command line: ingest A, then link."""
    db = tmp_path_factory.mktemp("linked") / "store.duckdb"
    assert cli("ingest", extracts[0], "--db", db).returncode == 0
    done = cli("link", "--db", db)
    assert done.returncode == 0, done.stderr
    return db


def _copy_versioned(db: Path, folder: Path) -> Path:
    """A private copy of a versioned store (its current version only)."""
    target = folder / "store.duckdb"
    versions.versions_dir(target).mkdir(mode=0o700)
    current = versions.current(db)
    copied = versions.version_file(target, current.number)
    copied.write_bytes(current.file.read_bytes())
    os.symlink(os.path.relpath(copied, folder), target)
    return target


# -- one writer at a time ------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["ingest", "link", "import-linkage"])
def test_a_second_writer_gets_one_line_and_exit_code_75(tmp_path, extracts, linked, command):
    db = _copy_versioned(linked, tmp_path)
    before = versions.current(db)
    args = {"ingest": ("ingest", extracts[1]), "link": ("link",), "import-linkage": ("import-linkage", tmp_path)}
    with versions.locked(db, "link (nightly)"):
        done = cli(*args[command], "--db", db)
    assert done.returncode == versions.EXIT_LOCKED == 75
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "`link (nightly)`" in lines[0] and f"pid {os.getpid()}" in lines[0] and " since " in lines[0]
    assert json.loads(done.stdout.strip().splitlines()[-1])["exit_code"] == 75
    assert versions.current(db) == before  # nothing written


def test_the_lock_frees_when_its_holder_dies_and_the_probe_never_blocks_a_writer(tmp_path):
    db = tmp_path / "s.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", textwrap_lock(db)], cwd=ROOT, env=ENV, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
        assert versions.is_locked(db)["command"] == "holder"
        with pytest.raises(versions.StoreLocked), versions.write(db, "second"):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert versions.is_locked(db) is None  # kill -9 released the lock; the stale details are not believed
    for _ in range(3):
        assert versions.is_locked(db) is None
        with versions.write(db, "after"):
            pass
    assert versions.current(db).number == 3


def textwrap_lock(db: Path) -> str:
    return ("import sys, time\nfrom lib.records import versions\n"
            f"with versions.locked({str(db)!r}, 'holder'):\n    print('held', flush=True)\n    time.sleep(60)\n")


# -- crashes ------------------------------------------------------------------------------------------------

def test_a_failing_writer_leaves_the_current_version_untouched(tmp_path):
    db = tmp_path / "s.duckdb"
    with versions.write(db, "first") as w:
        w.con.execute("CREATE TABLE t (x INTEGER)")
        w.con.execute("INSERT INTO t VALUES (1)")
    before, digest = versions.current(db), sha(versions.current(db).file)
    with pytest.raises(RuntimeError, match="boom"), versions.write(db, "second") as w:
        w.con.execute("INSERT INTO t VALUES (2)")
        raise RuntimeError("boom")
    assert versions.current(db) == before and sha(before.file) == digest
    assert sorted(p.name for p in versions.versions_dir(db).iterdir()) == [before.file.name]  # no orphan
    assert count(db, "t") == 1


def test_kill_9_during_link_keeps_the_previous_version_and_the_next_run_succeeds(tmp_path, linked):
    db = _copy_versioned(linked, tmp_path)
    start = versions.current(db)
    digest, token = sha(start.file), _version_token(db)
    for _ in range(2):  # twice: orphans never pile up
        proc = subprocess.Popen([sys.executable, "-m", "lib.cli", "link", "--db", str(db)], cwd=ROOT, env=ENV,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while not versions.version_file(db, start.number + 1).exists() or not versions.is_locked(db):
            assert proc.poll() is None and time.time() < deadline, "link ended before it could be killed"
            time.sleep(0.05)
        # Killed at once: the writer is copying or linking (a whole link of this small store can finish within
        # a second on a quiet machine, so waiting longer made the test a race it sometimes lost).
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert versions.current(db) == start and sha(start.file) == digest  # readers still see the old version
        assert _version_token(db) == token
        orphans = [p.name for p in versions.versions_dir(db).iterdir() if p.name.startswith(f"v{start.number + 1:06d}")]
        assert orphans, "the killed writer should have left its unpublished file"
    done = cli("link", "--db", db)
    assert done.returncode == 0, done.stderr
    now = versions.current(db)
    assert now.number == start.number + 1
    names = sorted(p.name for p in versions.versions_dir(db).iterdir())
    assert names == [start.file.name, now.file.name]  # the orphan was deleted by the next writer
    assert _version_token(db) != token


def _version_token(db: Path) -> str:
    con = store.connect(db, read_only=True)
    try:
        return store.data_version(con)
    finally:
        con.close()


# -- readers ---------------------------------------------------------------------------------------------------

def test_a_reader_keeps_its_version_while_writers_publish_and_collect(tmp_path):
    db = tmp_path / "s.duckdb"
    with versions.write(db, "first") as w:
        w.con.execute("CREATE TABLE t (x INTEGER)")
        w.con.execute("INSERT INTO t VALUES (1)")
    reader = store.connect(db, read_only=True)
    first = versions.current(db).file
    for i in range(versions.KEEP + 1):
        with versions.write(db, f"w{i}") as w:
            w.con.execute("INSERT INTO t VALUES (2)")
    assert not first.exists()  # collected
    assert reader.execute("SELECT count(*) FROM t").fetchall()[0][0] == 1  # still readable, still version 1
    assert count(db, "t") == versions.KEEP + 2
    assert len(list(versions.versions_dir(db).iterdir())) == versions.KEEP
    reader.close()


def test_a_plain_file_store_migrates_on_its_first_write(tmp_path):
    db = tmp_path / "old.duckdb"
    con = store.connect(db)
    con.execute("CREATE TABLE t (x INTEGER)")
    con.execute("INSERT INTO t VALUES (7)")
    con.close()
    assert versions.current(db).number == 0 and count(db, "t") == 1
    with versions.write(db, "migrate") as w:
        w.con.execute("INSERT INTO t VALUES (8)")
    assert db.is_symlink() and versions.current(db).number == 1 and count(db, "t") == 2
    with pytest.raises(store.StoreError, match="versioned"):
        store.connect(db)  # writing the current version in place is refused


# -- queued review decisions ---------------------------------------------------------------------------------

def test_queued_review_decisions_are_applied_once_by_the_next_writer(tmp_path):
    db = tmp_path / "s.duckdb"
    with versions.write(db, "first"):
        pass
    decision = {"record_key_l": "police|X|1", "record_key_r": "health|Y|2", "decision": "reject",
                "reviewer": "lead1", "decided_at": "2026-11-30 10:00:00"}
    versions.queue_decision(db, decision)
    assert stat.S_IMODE(versions.queue_path(db).stat().st_mode) == 0o600
    with versions.write(db, "ingest") as w:
        assert w.con.execute("SELECT count(*) FROM review_decisions").fetchall()[0][0] == 1
    assert versions.pending(db) == []
    versions.queue_decision(db, decision)  # the same line again (a crash before the queue was emptied)
    with versions.write(db, "link"):
        pass
    assert count(db, "review_decisions") == 1
    con = store.connect(db, read_only=True)
    assert "queued review decision" in versions.history(con, 2)[1]["change"]
    con.close()


# -- one data version -----------------------------------------------------------------------------------------

def test_the_data_version_changes_after_a_re_link(tmp_path, linked):
    """pages/scenario.py keyed its model on a version that ignored linkage: a re-link served a stale model."""
    from lib.linkage.run import LinkConfig, link

    db = _copy_versioned(linked, tmp_path)
    before = _version_token(db)
    with versions.write(db, "relink") as w:
        link(w.con, LinkConfig(match_threshold=0.99))
    assert _version_token(db) != before
    # the same linkage tables written in place, without a new version (a private store): still a new token
    private = tmp_path / "private.duckdb"
    private.write_bytes(versions.current(db).file.read_bytes())
    con = store.connect(private)
    token = store.data_version(con)
    link(con, LinkConfig(match_threshold=0.95))
    assert store.data_version(con) != token
    con.close()


def test_the_pages_read_the_stores_one_data_version(tmp_path, linked):
    """Every page keys its caches on pages.common.stored_data_version (the scenario page once used a version
    that ignored linkage, and served a stale model after a re-link): it is the store's token, and it moves
    with a re-link."""
    from lib.linkage.run import LinkConfig, link
    from pages.common import stored_data_version

    db = _copy_versioned(linked, tmp_path)
    seen = []
    for threshold in (None, 0.99):
        if threshold is not None:
            with versions.write(db, "relink") as w:
                link(w.con, LinkConfig(match_threshold=threshold))
        con = store.connect(db, read_only=True)
        try:
            seen.append(stored_data_version(con))
            assert seen[-1] == store.data_version(con)
        finally:
            con.close()
    assert seen[0] != seen[1]


# -- permissions (issue 14 item 9) ---------------------------------------------------------------------------

def test_store_files_are_private(tmp_path, extracts):
    old = os.umask(0o022)
    try:
        db = tmp_path / "data" / "store.duckdb"
        done = cli("ingest", extracts[1], "--db", db)
        assert done.returncode == 0, done.stderr
        plain = tmp_path / "plain.duckdb"
        store.connect(plain).close()
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(versions.versions_dir(db)) == 0o700 and mode(db.parent) == 0o700
    assert mode(versions.lock_path(db)) == 0o600
    files = list(versions.versions_dir(db).iterdir())
    assert files and all(mode(f) == 0o600 for f in files)
    assert mode(db) == 0o600  # through the link
    assert mode(plain) == 0o600


# -- the app while a writer holds the store ------------------------------------------------------------------

def test_a_review_decision_made_while_a_writer_holds_the_store_is_kept_and_applied(tmp_path_factory, tmp_path,
                                                                                  monkeypatch):
    from tests.fixtures_linkage import copy_store, run_page, synthetic_linked_store

    path = copy_store(synthetic_linked_store(tmp_path_factory), tmp_path)
    at = run_page(str(ROOT / "pages" / "review.py"), path, monkeypatch)
    at.text_input(key="reviewer").set_value("Safeguarding lead").run()
    pair = at.session_state["review_pair"]
    with versions.locked(path, "link (nightly)"):
        at.button(key="decide_reject").click().run()
        assert not at.exception, at.exception
        said = " ".join(s.value for s in at.success)
        assert "Recorded: reject" in said and "`link (nightly)`" in said and "queue" in said
        assert [d["decision"] for d in versions.pending(path)] == ["reject"]
        at.run()  # the page no longer offers the decided pair, and says a decision is waiting
        assert any("waiting to be saved" in c.value for c in at.caption)
    assert pair is not None
    with versions.write(path, "link"):  # the next writer applies the queue
        pass
    assert versions.pending(path) == []
    con = store.connect(path, read_only=True)
    try:
        assert con.execute("SELECT decision, reviewer FROM review_decisions").fetchall() == [
            ("reject", "Safeguarding lead")]
    finally:
        con.close()


def test_the_app_says_when_a_writer_is_at_work(tmp_path_factory, tmp_path, monkeypatch):
    from tests.fixtures_linkage import copy_store, synthetic_linked_store

    path = copy_store(synthetic_linked_store(tmp_path_factory), tmp_path)
    monkeypatch.setenv("JOINEDUP_DB", str(path))
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    assert not any("A data load is running" in c.value for c in at.sidebar.caption)
    with versions.locked(path, "ingest"):
        at.run()
        assert not at.exception, at.exception
        assert any("A data load is running (`ingest` since" in c.value for c in at.sidebar.caption)
    at.run()
    assert not any("A data load is running" in c.value for c in at.sidebar.caption)
