"""Bounded-memory linkage settings (issue 8) change nothing in the result: chunked scoring and a low
DuckDB memory limit (spilling to disk) give the same links as one chunk in memory."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lib.linkage import run
from tests.fixtures_linkage import synthetic_store


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    con, _ = synthetic_store(tmp_path_factory.mktemp("scale") / "store.duckdb", 4_000, seed=9, link=False)
    found, _ = run.deterministic_pass(con)
    con.close()
    return found


def _parameters(model_json: dict) -> list:
    """λ and every level's m and u (the JSON also carries run-specific bookkeeping)."""
    return [model_json["probability_two_random_records_match"]] + [
        (c["output_column_name"], level.get("label_for_charts"), level.get("m_probability"), level.get("u_probability"))
        for c in model_json["comparisons"] for level in c["comparison_levels"]]


def _sorted(edges: pd.DataFrame) -> pd.DataFrame:
    return edges.sort_values(["unique_id_l", "unique_id_r"]).reset_index(drop=True)


def test_chunked_scoring_with_a_low_memory_limit_gives_the_same_links(nodes, tmp_path):
    whole, model_whole = run.probabilistic_pass(nodes, run.LinkConfig())
    chunked, model_chunked = run.probabilistic_pass(
        nodes, run.LinkConfig(predict_chunk_nodes=700, memory_limit="200MB", temp_directory=str(tmp_path)))
    assert len(nodes) > 2_000 and len(whole) > 500
    # Same parameters and links; floating-point sums may differ in the last bits (DuckDB's parallel
    # aggregation order varies with memory and threads), so values are compared to 1e-9, labels exactly.
    whole_p, chunked_p = _parameters(model_whole), _parameters(model_chunked)
    assert whole_p[0] == pytest.approx(chunked_p[0], rel=1e-9)
    for (c1, l1, m1, u1), (c2, l2, m2, u2) in zip(whole_p[1:], chunked_p[1:], strict=True):
        assert (c1, l1) == (c2, l2)
        assert (m1, u1) == pytest.approx((m2, u2), rel=1e-9, abs=1e-15) if m1 is not None else m1 == m2
    pd.testing.assert_frame_equal(_sorted(whole), _sorted(chunked), check_exact=False, rtol=1e-9)


def test_the_store_memory_limit_is_restored_after_linking(tmp_path):
    con, _ = synthetic_store(tmp_path / "store.duckdb", 1_500, seed=4, link=False)
    con.execute("SET memory_limit = '3GB'")
    before = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    run.link(con, run.LinkConfig(memory_limit="1GB"))
    after = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    # DuckDB shows the limit rounded to 0.1 GiB, and setting that text back can round down once more.
    assert before.endswith(" GiB") and after.endswith(" GiB") and abs(float(after[:-4]) - float(before[:-4])) < 0.11
    assert con.execute("SELECT count(*) FROM record_child").fetchall()[0][0] > 1_000
    con.close()


def test_the_spill_folder_a_process_made_goes_with_it():
    """config.temp_directory: every linking process made a joinedup-link-spill-* folder that outlived it (hundreds
    were left in /tmp, one holding 6 GB of a killed 5,000,000-encounter link's spill)."""
    import subprocess
    import sys
    from pathlib import Path

    made = subprocess.run([sys.executable, "-c", "from lib.linkage import config; "
                           "print(config.temp_directory(config.LinkConfig()))"],
                          capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    folder = Path(made.stdout.strip())
    assert folder.name.startswith("joinedup-link-spill-")
    assert not folder.exists()


def test_the_default_memory_limit_is_35_percent_of_ram_between_1_and_4_gb(monkeypatch):
    """config.memory_limit: 4 GB linked 1M and 5M as fast as 8 GB with a 2.5 GB lower peak at 5M (PERFORMANCE.md,
    session 12); a small machine gets 35% of its RAM, never below 1 GB; a given limit is kept."""
    import os

    from lib.linkage import config

    for ram_gb, expected in ((64, "4GB"), (23.5, "4GB"), (8, "2GB"), (2, "1GB")):
        monkeypatch.setattr(os, "sysconf", lambda name, ram=ram_gb: 4096 if name == "SC_PAGE_SIZE"
                            else int(ram * 2**30 / 4096))
        assert config.memory_limit(run.LinkConfig()) == expected, ram_gb
    assert config.memory_limit(run.LinkConfig(memory_limit="6GB")) == "6GB"


@given(st.lists(st.text(min_size=1, max_size=6), max_size=40), st.booleans())
def test_scoring_codes_equal_pandas_sorted_factorize(ids, presort):
    """inference.score numbers the nodes by their ids' order; where the ids arrive strictly increasing (as the
    deterministic pass gives them) it skips the sort. The codes and ids must be pandas' sorted factorize's, for any
    text (non-ASCII included: Arrow compares UTF-8 bytes), sorted or not, with repeats or not."""
    from lib.linkage.inference import _sorted_codes

    series = pd.Series(sorted(set(ids)) if presort else ids, dtype="str")
    codes, uniques = _sorted_codes(series)
    want_codes, want_uniques = pd.factorize(series, sort=True)
    assert np.asarray(codes).tolist() == want_codes.tolist()
    assert list(uniques) == list(want_uniques)


@given(st.lists(st.text(min_size=1, max_size=4), unique=True, max_size=30),
       st.lists(st.lists(st.text(min_size=1, max_size=4), max_size=12), max_size=4))
def test_node_positions_of_several_columns_equal_pandas_get_indexer(ids, columns):
    """clustering._positions looks several columns up in one hash of the node ids (none when all are empty); each
    column's positions must be pandas' get_indexer's (-1 where absent), empty columns and repeats included."""
    from lib.linkage.clustering import _positions

    held = np.array(ids, dtype=object)
    asked = [pd.Series(column, dtype="str") for column in columns]
    found = _positions(held, *asked)
    assert len(found) == len(asked)
    for column, positions in zip(asked, found, strict=True):
        assert positions.dtype == np.int64
        assert positions.tolist() == pd.Index(held, dtype=object).get_indexer(column.astype(object)).tolist()
