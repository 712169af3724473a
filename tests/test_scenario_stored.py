"""The Scenario's default simulation kept in the store (lib.scenario.stored; issue 19's first open of every page).

Writes store it in their transaction; the view twin and the page read it. Checked here: the stored result equals
a from-scratch recomputation (everything but run times); the view reads it (it simulates nothing) and lays out the
same page as from a fresh simulation; uploads, linkage runs and reviewer decisions keep it without simulating
again (it reads none of the records) and it still equals a recomputation after them; what it does depend on (the
key, the format, the rows behind its back) makes it unread and the next write simulates again; switched off, the
view simulates as before. A 5,000-encounter population keeps the file quick (the page's own default is 20,000).
"""
from __future__ import annotations

import pandas as pd
import pytest

from lib.linkage import run
from lib.linkage.run import LinkConfig
from lib.records import ingest, store
from lib.scenario import scenario as sc
from lib.scenario import stored
from lib.synth import SynthConfig, generate
from lib.views import scenario as view
from tests.fixtures_linkage import TEST_KEY

ENCOUNTERS = 5_000
#: Run times, not results: the stored run's, not a recomputation's.
RUN_TIMES = ("timings", "seconds")
OTHER_KEY = "another-deployment-key-not-secret-0123456789"


@pytest.fixture
def on(monkeypatch):
    """The write-time simulation switched on, at 5,000 encounters; counts each simulation a write runs."""
    monkeypatch.setenv(stored.ENV, "1")
    monkeypatch.delenv("JOINEDUP_KEY", raising=False)
    monkeypatch.setattr(stored, "ENCOUNTERS", ENCOUNTERS)
    calls = []
    real = stored.simulate

    def counted(key, asked):
        calls.append(asked)
        return real(key, asked)

    monkeypatch.setattr(stored, "simulate", counted)
    return calls


@pytest.fixture(scope="module")
def extract():
    return generate(SynthConfig(n_encounters=1_500, seed=7))[0]


def _upload(con, frame: pd.DataFrame, name: str) -> None:
    ingest.commit(con, ingest.prepare_frame(frame, name, key=TEST_KEY))


def _params() -> dict:
    params = {name: param.default for name, param in view.PARAMS.items()}
    return {**params, "encounters": ENCOUNTERS}


def assert_same_result(kept: dict, fresh: dict) -> None:
    assert list(kept) == list(fresh)
    for name, value in fresh.items():
        if name in RUN_TIMES:
            continue
        if isinstance(value, pd.DataFrame):
            columns = [c for c in value.columns if c != "seconds"]
            pd.testing.assert_frame_equal(kept[name][columns], value[columns], check_exact=True)
        else:
            assert kept[name] == value, name


def test_the_stored_scenario_equals_a_recomputation_and_the_view_reads_it(on, extract, tmp_path, monkeypatch):
    path = tmp_path / "store.duckdb"
    con = store.connect(path)
    _upload(con, extract.iloc[:600], "first.parquet")
    con.close()
    assert len(on) == 1  # the upload's transaction simulated once
    reader = store.connect(path, read_only=True)
    try:
        key = sc.scenario_key(path)
        kept = stored.read(reader, key, stored.request())
        assert kept is not None and kept["population"]["n_encounters"] == ENCOUNTERS
        fresh = stored.simulate(key, stored.request())
        assert_same_result(kept, fresh)
        # the view reads it: it simulates nothing, and lays out the page a fresh simulation gives
        monkeypatch.setattr(sc, "simulate_scenario", lambda *a, **k: pytest.fail("the view simulated"))
        for role in ("lead", "commissioner"):
            got = view.build(reader, _params(), role).to_json()
            assert got == view.page_data(fresh, _params(), role, store.data_version(reader)).to_json()
        # a request the store does not hold (a lever moved) is simulated, never answered from the stored one
        moved = {**_params(), "levers": '{"capture": {"police": 1.0}}'}
        with pytest.raises(pytest.fail.Exception, match="the view simulated"):
            view.compute(reader, moved)
    finally:
        reader.close()


def test_uploads_links_and_decisions_keep_it_without_simulating_again(on, extract, tmp_path):
    path = tmp_path / "store.duckdb"
    con = store.connect(path)
    try:
        _upload(con, extract.iloc[:900], "first.parquet")
        key = sc.scenario_key(path)
        first = stored.read(con, key, stored.request())
        fingerprint = con.execute("SELECT value FROM meta WHERE name = ?", [stored.META]).fetchall()
        run.link(con, LinkConfig())  # a linkage run: every aggregate rebuilt from scratch
        _upload(con, extract.iloc[900:], "second.parquet")  # an upload: its cells refreshed
        pair = con.execute("SELECT record_key_l, record_key_r FROM link_edges ORDER BY match_probability, "
                           "record_key_l LIMIT 1").fetchall()[0]
        run.record_decision(con, pair[0], pair[1], "reject", "test")  # a decision
        assert len(on) == 1  # only the first write simulated: the result reads none of the records
        assert con.execute("SELECT value FROM meta WHERE name = ?", [stored.META]).fetchall() == fingerprint
        kept = stored.read(con, key, stored.request())
        assert kept is not None
        assert_same_result(kept, first)
        assert_same_result(kept, stored.simulate(key, stored.request()))
    finally:
        con.close()


def test_what_it_depends_on_makes_it_unread_and_the_next_write_simulates_again(on, extract, tmp_path,
                                                                               monkeypatch):
    path = tmp_path / "store.duckdb"
    con = store.connect(path)
    try:
        _upload(con, extract.iloc[:300], "first.parquet")
        key = sc.scenario_key(path)
        assert stored.read(con, key, stored.request()) is not None
        # another key (a deployment's secret): not read for it, and the next write stores it for that key
        assert stored.read(con, OTHER_KEY.encode(), stored.request()) is None
        monkeypatch.setenv("JOINEDUP_KEY", OTHER_KEY)
        _upload(con, extract.iloc[300:400], "second.parquet")
        assert len(on) == 2
        assert stored.read(con, OTHER_KEY.encode(), stored.request()) is not None
        assert stored.read(con, key, stored.request()) is None
        # another release of the simulation: not read
        monkeypatch.setattr(stored, "FORMAT", stored.FORMAT + "-next")
        assert stored.read(con, OTHER_KEY.encode(), stored.request()) is None
        monkeypatch.undo()
        monkeypatch.setenv(stored.ENV, "1")
        monkeypatch.setattr(stored, "ENCOUNTERS", ENCOUNTERS)
        monkeypatch.setenv("JOINEDUP_KEY", OTHER_KEY)
        # rows written behind its back with a stale mark: the mark no longer matches, never read
        con.execute("UPDATE meta SET value = 'stale' WHERE name = ?", [stored.META])
        assert stored.read(con, OTHER_KEY.encode(), stored.request()) is None
    finally:
        con.close()


def test_switched_off_the_store_keeps_none_and_the_view_simulates(extract, tmp_path, monkeypatch):
    monkeypatch.setenv(stored.ENV, "0")
    path = tmp_path / "store.duckdb"
    con = store.connect(path)
    try:
        _upload(con, extract.iloc[:300], "first.parquet")
        assert con.execute("SELECT count(*) FROM agg_frames WHERE starts_with(name, ?)",
                           [stored.PREFIX]).fetchall()[0][0] == 0
        assert stored.read(con, sc.scenario_key(path), stored.request(n_encounters=ENCOUNTERS)) is None
    finally:
        con.close()


def test_the_view_opens_on_the_stored_request():
    """The view's defaults are the request writes store (one source: lib.scenario.stored)."""
    params = {name: param.default for name, param in view.PARAMS.items()}
    assert params["kind"] == "simulation" and params["levers"] == "{}"
    levers = view.levers_of(params)
    asked = stored.request(levers, n_encounters=params["encounters"], layer=params["layer"],
                           curve_agencies=tuple(params["curve_agencies"] or ()) or sc.AGENCY_TYPES,
                           curve_mode=params["curve_mode"])
    assert asked == stored.request()


def test_the_page_starts_its_levers_from_the_stored_result_without_the_population(on, extract, tmp_path):
    """The page's sliders start at the population's recording today and its per-area lever offers each agency's
    own areas: with the default simulation stored, both come from it (the population, seconds to generate, is not
    needed to open the page), equal to what the population gives; another population size has no stored start."""
    from lib.records.default import DEFAULT_SEED
    from lib.scenario import simulate

    path = tmp_path / "store.duckdb"
    con = store.connect(path)
    _upload(con, extract.iloc[:300], "first.parquet")
    con.close()
    reader = store.connect(path, read_only=True)
    try:
        start = view.stored_start(reader, ENCOUNTERS)
        assert start is not None
        pop = simulate.population(ENCOUNTERS, DEFAULT_SEED)
        assert view.todays_levers(reader, "simulation", start=start) == view.todays_levers(reader, "simulation", pop)
        for agency in sc.AGENCY_TYPES:
            codes = view.area_choices(reader, "simulation", agency, start=start)
            assert codes and codes == view.area_choices(reader, "simulation", agency, pop)
        assert view.stored_start(reader, 2_000) is None  # not the stored population
    finally:
        reader.close()
    empty = store.connect(tmp_path / "none.duckdb")
    try:
        assert view.stored_start(empty, ENCOUNTERS) is None  # nothing stored: the page generates the population
    finally:
        empty.close()


def test_the_page_opens_on_the_stored_start_without_generating_the_population(on, extract, tmp_path, monkeypatch):
    """The page itself (AppTest): on the stored population its sliders start at the stored recording today and
    the population is never generated (it took 3.6 s of the page's first open at 1M)."""
    from lib.scenario import simulate
    from tests.browser import ROOT
    from tests.fixtures_linkage import run_page

    path = tmp_path / "store.duckdb"
    con = store.connect(path)
    _upload(con, extract.iloc[:300], "first.parquet")
    con.close()
    at = run_page(str(ROOT / "pages" / "scenario.py"), path, monkeypatch)  # 20,000: not stored here, generated
    monkeypatch.setattr(simulate, "population", lambda *a, **k: pytest.fail("the page generated the population"))
    at.selectbox(key="scn_population").set_value(ENCOUNTERS).run()
    assert not at.exception, at.exception
    reader = store.connect(path, read_only=True)
    try:
        today = view.stored_start(reader, ENCOUNTERS)["today_levers"]
    finally:
        reader.close()
    for agency in sc.AGENCY_TYPES:
        assert at.slider(key=f"scn_cap_{agency}_{ENCOUNTERS}").value == round(100 * today["capture"][agency])


def test_a_key_held_only_in_the_apps_secrets_stores_the_simulation_its_page_reads(on, extract, tmp_path, monkeypatch):
    """lib cannot read Streamlit's secrets: a write used to store the simulation under the fixed synthetic key while
    the page read with the secret one, so that deployment's Scenario simulated on every first open. The app hands
    its key over (`pseudonymise.use_host_key`, pages.common.ensure_default_data) and the write stores under it."""
    from lib.records import pseudonymise

    monkeypatch.setattr(pseudonymise, "_HOST_KEY", [None])
    for name, handed in (("before.duckdb", None), ("after.duckdb", OTHER_KEY)):
        pseudonymise.use_host_key(handed)
        path = tmp_path / name
        con = store.connect(path)
        try:
            _upload(con, extract.iloc[:300], "first.parquet")
            page_key = sc.scenario_key(path, OTHER_KEY)  # what pages/scenario.py reads with: the secret
            found = stored.read(con, page_key, stored.request())
            assert (found is not None) == (handed is not None), name
            assert (stored.read(con, sc.SYNTHETIC_KEY, stored.request()) is None) == (handed is not None), name
        finally:
            con.close()
    assert sc.scenario_key(tmp_path / "after.duckdb") == OTHER_KEY.encode()
    pseudonymise.use_host_key(None)
    assert sc.scenario_key(tmp_path / "after.duckdb") == sc.SYNTHETIC_KEY
