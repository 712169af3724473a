"""The store of the double-split regression (issue 16): flows of ICBs against the sum of their sub-ICB
locations' flows. Some measure atoms (district x UTLA x police force area x ICB/health board x trust catchment)
hold LSOAs of two sub-ICB locations (``split_atoms``); when a layer's flows were perturbed on atoms adding only
their own layer, an ICB flow pooled such records in one atom while its sub-ICB flows split them, so the same
records were published with two values.

A synthetic linked store (the generator's encounters, ingested and linked as tests/fixtures_linkage.py does) in
which the records of ``CHILDREN`` children living outside the split atom's ICB are moved, alternately, to an
encounter postcode in each of two sub-ICB locations of one split atom: the same flows then hold records of both
parts. Postcodes come from the official postcode index (geodata), never typed. Synthetic people only.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

CHILDREN = 40
MEASURE_COLUMNS = ["lad_code", "utla_code", "pfa_code", "nhs_code", "trust_code"]


def split_atoms() -> pd.DataFrame:
    """The measure atoms of the LSOA lookup that hold LSOAs of two or more sub-ICB locations, with the count."""
    from lib.geo import lookup

    table = lookup.lsoa_table().dropna(subset=["sicbl_code"])
    counts = table.groupby(MEASURE_COLUMNS)["sicbl_code"].nunique()
    return counts[counts > 1].rename("sub_icb_locations").reset_index()


def two_postcodes() -> tuple[str, str, str]:
    """(ICB, postcode in one sub-ICB location, postcode in another) of the first split atom (sorted codes)."""
    from lib.geo import lookup

    atom = split_atoms().sort_values(MEASURE_COLUMNS).iloc[0]
    table = lookup.lsoa_table()
    inside = table[(table[MEASURE_COLUMNS] == atom[MEASURE_COLUMNS]).all(axis=1)]
    postcodes = lookup.postcode_index().merge(inside[["lsoa11cd", "sicbl_code", "icb_code"]], on="lsoa11cd")
    firsts = postcodes.sort_values(["sicbl_code", "postcode"]).drop_duplicates("sicbl_code")
    return str(firsts["icb_code"].iloc[0]), str(firsts["postcode"].iloc[0]), str(firsts["postcode"].iloc[1])


def split_frame(n_encounters: int, seed: int, children: int = CHILDREN) -> pd.DataFrame:
    """The generator's encounters with every record of ``children`` named children (homes in England, outside
    the split atom's ICB, two or more records) moved alternately to the two postcodes of ``two_postcodes``."""
    from lib.geo import lookup
    from lib.synth import SynthConfig, generate

    icb, first, second = two_postcodes()
    encounters, truth = generate(SynthConfig(n_encounters=n_encounters, seed=seed))
    homes = truth.drop_duplicates("true_child_id").set_index("true_child_id")["true_home_postcode"]
    home_icb = lookup.place_postcodes(homes)["icb_code"]
    named = truth[~truth["anonymous"].astype(bool)]
    sizes = named.groupby("true_child_id").size()
    eligible = sorted(c for c in sizes.index[sizes >= 2] if isinstance(home_icb.get(c), str) and home_icb[c] != icb)
    chosen = set(eligible[:children])
    moved = truth["true_child_id"].isin(chosen).to_numpy()
    out = encounters.copy()
    rows = out.index[moved]
    out.loc[rows, "encounter_postcode"] = [first if i % 2 == 0 else second for i in range(len(rows))]
    return out


def split_store(path: Path, n_encounters: int, seed: int) -> Path:
    """Build (ingest and link) the double-split store at ``path``; returns it, closed."""
    from lib.linkage.run import LinkConfig
    from lib.linkage.run import link as run_link
    from lib.records import ingest, store
    from tests.fixtures_linkage import TEST_KEY

    con = store.connect(path)
    try:
        ingest.commit(con, ingest.prepare_frame(split_frame(n_encounters, seed), "synthetic.parquet", key=TEST_KEY))
        run_link(con, LinkConfig())
    finally:
        con.close()
    return path
