"""Parquet exchange: the store's tables go out as Parquet, a linkage computed elsewhere comes back in."""
from __future__ import annotations

import json
import subprocess
import sys

import duckdb
import pandas as pd
import pytest

from lib.linkage import run
from lib.linkage.exchange import LinkageImportError, import_linkage
from lib.records import store
from tests.conftest import ROOT
from tests.fixtures_linkage import synthetic_store


@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    path = tmp_path_factory.mktemp("parquet") / "store.duckdb"
    con, _ = synthetic_store(path, n_encounters=3_000, seed=3)
    yield con, path
    con.close()


def _tables(con):
    return (con.execute("SELECT * FROM record_child ORDER BY record_key").df(),
            con.execute("SELECT * FROM link_edges ORDER BY node_l, node_r").df())


def test_export_writes_every_table_with_its_rows_and_no_clear_identifier(linked, tmp_path):
    con, _ = linked
    written = store.export_parquet(con, tmp_path)
    assert set(written) == {"encounters", "record_child", "link_edges"}
    for table, rows in written.items():
        assert rows == con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] > 0
    encounters = pd.read_parquet(tmp_path / "encounters.parquet")
    assert list(encounters.columns) == store.ENCOUNTER_NAMES
    assert not {"forename", "surname", "nhs_number", "date_of_birth", "home_postcode"} & set(encounters.columns)


def test_a_linkage_from_parquet_replaces_the_stores_and_round_trips_exactly(linked, tmp_path):
    con, _ = linked
    before_children, before_edges = _tables(con)
    store.export_parquet(con, tmp_path, ("record_child", "link_edges"))
    # The store's linkage changes (a stricter threshold splits children); the import puts the exported one back.
    run.link(con, run.LinkConfig(match_threshold=0.999))
    assert not _tables(con)[0].equals(before_children)
    summary = import_linkage(con, tmp_path)
    after_children, after_edges = _tables(con)
    pd.testing.assert_frame_equal(after_children, before_children)
    pd.testing.assert_frame_equal(after_edges, before_edges)
    assert summary["records"] == len(before_children)
    assert summary["children"] == before_children["child_id"].nunique()  # anonymous contacts (NULL) not counted
    last = con.execute("SELECT config FROM linkage_runs ORDER BY run_id DESC LIMIT 1").fetchall()[0][0]
    assert json.loads(last)["backend"] == "imported"
    # Measures read the imported linkage: the cube counts its children.
    from lib.measures import counts

    cube = counts.build_cube(con)
    assert cube.linked


def test_a_linkage_that_does_not_fit_the_store_is_refused_and_changes_nothing(linked, tmp_path):
    con, _ = linked
    before_children, _ = _tables(con)
    partial = before_children.iloc[10:]
    partial.to_parquet(tmp_path / "record_child.parquet", index=False)
    with pytest.raises(LinkageImportError, match="10 stored encounters without a row"):
        import_linkage(con, tmp_path / "record_child.parquet")
    before_children.drop(columns=["link_method"]).to_parquet(tmp_path / "record_child.parquet", index=False)
    with pytest.raises(LinkageImportError, match="link_method"):
        import_linkage(con, tmp_path)
    pd.testing.assert_frame_equal(_tables(con)[0], before_children)


def test_command_line_round_trip(linked, tmp_path):
    con, path = linked
    expected, _ = _tables(con)
    con.execute("CHECKPOINT")
    db = tmp_path / "copy.duckdb"
    current = con.execute("SELECT current_database()").fetchall()[0][0]
    con.execute(f"ATTACH '{db}' AS copy; COPY FROM DATABASE {current} TO copy; DETACH copy")
    out = tmp_path / "out"
    cli = [sys.executable, "-m", "lib.cli"]
    done = subprocess.run([*cli, "export-parquet", "--db", str(db), "--out", str(out)], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert json.loads(done.stdout)["rows"]["record_child"] == len(expected)
    other = duckdb.connect(str(db))
    other.execute("DELETE FROM record_child")
    other.close()
    done = subprocess.run([*cli, "import-linkage", str(out), "--db", str(db)], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert json.loads(done.stdout)["records"] == len(expected)
    check = duckdb.connect(str(db), read_only=True)
    pd.testing.assert_frame_equal(check.execute("SELECT * FROM record_child ORDER BY record_key").df(), expected)
    check.close()
