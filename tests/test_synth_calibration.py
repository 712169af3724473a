"""The default synthetic dataset looks like England: children's social care CSE counts by authority and year
follow the published DfE C3 figures, children follow the official population, and one constant sets the
default size for the first start and for `python -m lib.cli synth`."""
from __future__ import annotations

import argparse
import inspect

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from lib.measures import convert, published
from lib.measures import population as pop
from lib.records import default
from lib.synth import DEFAULT_ENCOUNTERS, SynthConfig, calibration, generate
from lib.synth.geography import load_geography


@pytest.fixture(scope="module")
def default_run():
    return generate(SynthConfig(n_encounters=DEFAULT_ENCOUNTERS, seed=default.DEFAULT_SEED))


def test_csc_counts_by_authority_track_the_published_c3_figures(default_run):
    encounters, _ = default_run
    figures = published.coverage_figures(encounters)
    assert figures["spearman_csc_vs_c3"] >= 0.9
    assert figures["share_utla_csc_cse_ge_10"] >= 0.9  # what a commissioner sees unsuppressed over both years


def test_uncalibrated_generator_does_not_track_c3():
    """The regression the calibration fixes: homes by postcodes alone leave C3's ranking behind."""
    encounters, _ = generate(SynthConfig(n_encounters=DEFAULT_ENCOUNTERS, seed=default.DEFAULT_SEED,
                                         calibrate=False))
    assert published.coverage_figures(encounters)["spearman_csc_vs_c3"] < 0.9


def test_each_years_national_csc_volume_follows_c3(default_run):
    encounters, _ = default_run
    csc = encounters[(encounters["agency_type"] == "children_social_care") & encounters["cse_flag"]]
    date = csc["encounter_date"]
    fy = date.dt.year - (date.dt.month < 4)
    mine = fy.value_counts()
    figures = published.dfe_c3()
    pub = figures.assign(count=figures["count"].astype(float)).groupby("period")["count"].sum()
    ratio_mine = mine[2023] / mine[2024]
    ratio_pub = pub["2023-24"] / pub["2024-25"]
    assert ratio_mine == pytest.approx(ratio_pub, rel=0.08)


def test_children_live_where_children_live(default_run):
    """Children who are not exploited are spread over authorities by the official 0-17 population."""
    encounters, truth = default_run
    lookup_rows = encounters.assign(child=truth["true_child_id"], cse=truth["true_cse"])
    csc = lookup_rows[(lookup_rows["agency_type"] == "children_social_care") & ~lookup_rows["cse"]]
    per_la = csc.drop_duplicates("child").groupby("agency_code").size()
    children = pop.official_population("utla").set_index("area_code")["children"]
    both = pd.concat([per_la.rename("synthetic"), children.rename("official")], axis=1).fillna(0)
    assert spearmanr(both["synthetic"], both["official"]).statistic >= 0.95
    welsh = {code for code in convert.area_codes("utla") if code.startswith("W")}
    assert len(welsh) == 22 and welsh <= set(per_la.index)  # C3 is England only; Wales still has children


def test_exploited_childrens_time_with_agencies_lies_in_one_financial_year(default_run):
    encounters, truth = default_run
    frame = pd.DataFrame({"child": truth["true_child_id"], "cse": truth["true_cse"],
                          "date": encounters["encounter_date"]})
    fy = frame["date"].dt.year - (frame["date"].dt.month < 4)
    years = fy[frame["cse"]].groupby(frame.loc[frame["cse"], "child"]).nunique()
    assert (years == 1).all()


def test_year_shares_and_welsh_rate_come_from_the_published_figures():
    geo = load_geography()
    cfg = SynthConfig()
    plan = calibration.home_plan(cfg, geo, geo.home_lsoa_mask(None))
    assert plan.periods == ("2023-24", "2024-25")
    figures = published.dfe_c3().set_index(["area_code", "period"])["count"]
    leeds = list(geo.codes).index("E08000035")
    want = np.array([figures[("E08000035", p)] for p in plan.periods], dtype=float)
    assert plan.year_shares[leeds] == pytest.approx(want / want.sum())
    assert plan.published[leeds] == want.sum()
    cardiff = list(geo.codes).index("W06000015")
    assert np.isnan(plan.published[cardiff])  # C3 is England only: Wales takes England's rate per child
    cardiff_lsoas = geo.lsoa_utla == cardiff
    assert plan.weights_cse[cardiff_lsoas].sum() > 0


def test_one_default_size_for_first_start_and_cli(tmp_path):
    from lib.synth import commands

    assert default.DEFAULT_ENCOUNTERS == DEFAULT_ENCOUNTERS == SynthConfig().n_encounters
    assert inspect.signature(default.ensure_default_dataset).parameters["n_encounters"].default == DEFAULT_ENCOUNTERS
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["synth", "--seed", str(default.DEFAULT_SEED), "--out", str(tmp_path)])
    assert commands.config_from(args) == SynthConfig(seed=default.DEFAULT_SEED)
    args = parser.parse_args(["synth", "--seed", "3", "--encounters", "500", "--uncalibrated", "--out", str(tmp_path)])
    assert commands.config_from(args) == SynthConfig(n_encounters=500, seed=3, calibrate=False)
