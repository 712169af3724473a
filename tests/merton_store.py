"""The store of the Merton regression (issue 16): the shape of the original attack on the Scenario page's area
table (``view scenario --param kind=model --role commissioner``, ``layer=utla`` against ``layer=pfa``), where
the Metropolitan Police area minus its other boroughs gave Merton's count of children known to two or more
agencies (4).

A synthetic linked store (the generator's encounters, ingested and linked as tests/fixtures_linkage.py does)
in which the children whose home is in Merton are thinned to ``MERTON_CHILDREN`` of those known to two or more
agencies (every record of the others is left out before ingest), so Merton's count is small while the other
boroughs' are not. Synthetic people only.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

MERTON_CHILDREN = 4


def merton_frame(n_encounters: int, seed: int, keep: int = MERTON_CHILDREN) -> pd.DataFrame:
    """The generator's encounters with only ``keep`` of Merton's multi-agency children (and none of its other
    children) left."""
    from lib.geo import lookup
    from lib.synth import SynthConfig, generate

    encounters, truth = generate(SynthConfig(n_encounters=n_encounters, seed=seed))
    merton = [c for c, n in lookup.name_of("utla").items() if n == "Merton"]
    if len(merton) != 1:
        raise ValueError(f"Merton is not one UTLA of the lookup: {merton}")
    first = truth.drop_duplicates("true_child_id").set_index("true_child_id")["true_home_postcode"]
    home = lookup.place_postcodes(first)["utla_code"]
    in_merton = set(home.index[home.to_numpy() == merton[0]])
    named = truth[~truth["anonymous"].astype(bool) & truth["true_child_id"].isin(in_merton)]
    spans = named.groupby("true_child_id")["agency_type"].nunique()
    kept = set(sorted(spans.index[spans >= 2])[:keep])
    drop = truth["true_child_id"].isin(in_merton - kept).to_numpy()
    return encounters[~drop].reset_index(drop=True)


def merton_store(path: Path, n_encounters: int, seed: int) -> Path:
    """Build (ingest and link) the Merton store at ``path``; returns it, closed."""
    from lib.linkage.run import LinkConfig
    from lib.linkage.run import link as run_link
    from lib.records import ingest, store
    from tests.fixtures_linkage import TEST_KEY

    con = store.connect(path)
    try:
        ingest.commit(con, ingest.prepare_frame(merton_frame(n_encounters, seed), "synthetic.parquet",
                                                key=TEST_KEY))
        run_link(con, LinkConfig())
    finally:
        con.close()
    return path
