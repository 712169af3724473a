"""Build a real linked store from the synthetic generator, for linkage and page tests."""
from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

TEST_KEY = b"joined-up-test-key-not-secret-0123456789"


def synthetic_store(path: Path, n_encounters: int, seed: int, link: bool = True
                    ) -> tuple[duckdb.DuckDBPyConnection, pd.DataFrame]:
    """(open store with ingested and optionally linked synthetic encounters, truth)."""
    from lib.linkage.run import LinkConfig
    from lib.linkage.run import link as run_link
    from lib.records import ingest, store
    from lib.synth import SynthConfig, generate

    encounters, truth = generate(SynthConfig(n_encounters=n_encounters, seed=seed))
    con = store.connect(path)
    ingest.commit(con, ingest.prepare_frame(encounters, "synthetic.parquet", key=TEST_KEY))
    if link:
        run_link(con, LinkConfig())
    return con, truth
