"""EM on a bounded number of blocked pairs (`LinkConfig.em_max_pairs`, Splink's own hash sample of the records).

At 1M the date-of-birth EM session blocked 12.6 million pairs of the 250,000-node training sample and took 9.9 of
the 16.5 s of training; on at most 2 million the link's F1 was the same to the fifth decimal (docs/PERFORMANCE.md,
session 11). Here: the bound reaches Splink (a small one changes the trained m values), a bound above the blocked
pairs changes nothing, and the default is a bound."""
from __future__ import annotations

import duckdb
import pytest

from lib.linkage import run, training
from tests.fixtures_linkage import splink_nodes


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    return splink_nodes(tmp_path_factory.mktemp("em") / "store.duckdb", n_encounters=4_000, seed=9)


def _m_values(nodes, em_max_pairs) -> dict:
    from splink.backends.duckdb import DuckDBAPI

    config = run.LinkConfig(em_max_pairs=em_max_pairs)
    model_json = training.train_model(DuckDBAPI(connection=duckdb.connect()), nodes, config)
    return {(c["output_column_name"], level["label_for_charts"]): level.get("m_probability")
            for c in model_json["comparisons"] for level in c["comparison_levels"]}


def test_the_bound_reaches_splinks_em_and_a_loose_one_changes_nothing(nodes):
    everything = _m_values(nodes, None)
    loose = _m_values(nodes, 1e12)  # more than the blocked pairs: no sample (equal up to DuckDB's summing order)
    assert loose == {k: (pytest.approx(m, rel=1e-9) if m is not None else None) for k, m in everything.items()}
    sampled = _m_values(nodes, 300)
    assert sampled.keys() == everything.keys()
    changed = [k for k, m in everything.items() if m is not None and sampled[k] != pytest.approx(m, abs=1e-9)]
    assert changed, "a 300-pair bound left every m value as it was: the bound did not reach the EM sessions"


def test_the_default_bounds_em():
    assert run.LinkConfig().em_max_pairs == 2e6
