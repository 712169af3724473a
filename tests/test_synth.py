"""Tests of the synthetic encounter generator (lib.synth).

The generator is the known answer for linkage and divergence; if it silently stops doing what its
configuration says, every evaluation built on it is wrong. So these tests measure the configured
rates back from the data against the ground truth, within a few binomial standard errors.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from nhs_number import is_valid

from lib.geo import lookup
from lib.synth import AGENCY_TYPES, ENCOUNTER_COLUMNS, ENCOUNTER_TYPES, TRUTH_COLUMNS, SynthConfig, generate
from lib.synth.geography import REGION_PFAS, load_geography

WEST_YORKSHIRE = "E23000010"


@pytest.fixture(scope="module")
def geo():
    return load_geography()


@pytest.fixture(scope="module")
def default_run(geo):
    return generate(SynthConfig(n_encounters=20_000, seed=11))


@pytest.fixture(scope="module")
def joined(default_run):
    enc, truth = default_run
    return pd.concat([enc, truth.drop(columns=["agency_type", "source_record_id"])], axis=1)


# Distinct, non-default rates so a generator that ignores its config cannot pass by luck.
RATES = SynthConfig(
    n_encounters=60_000, seed=5,
    nhs_capture={"police": 0.3, "children_social_care": 0.7, "health": 0.8, "education": 0.4},
    false_name_rate={"police": 0.15, "children_social_care": 0.05, "health": 0.08, "education": 0.02},
    dob_error_rate={"police": 0.12, "children_social_care": 0.04, "health": 0.06, "education": 0.03},
    moved_postcode_rate={"police": 0.2, "children_social_care": 0.1, "health": 0.15, "education": 0.05},
    cse_flag_propensity={"police": 0.5, "children_social_care": 0.7, "health": 0.3, "education": 0.15},
    cse_flag_area_sd=0.0,
    anonymous_sexual_health_share=0.35,
    nickname_rate={a: 0.0 for a in AGENCY_TYPES},  # so any name change is a false name
    typo_rate={a: 0.0 for a in AGENCY_TYPES},
)


@pytest.fixture(scope="module")
def rates_run(geo):
    enc, truth = generate(RATES)
    return pd.concat([enc, truth.drop(columns=["agency_type", "source_record_id"])], axis=1)


def assert_rate(measured: pd.Series, expected: float, label: str):
    """Share of True in ``measured`` is within 4 binomial standard errors (+0.5 point) of expected."""
    n = len(measured)
    assert n > 200, f"{label}: too few records ({n}) to measure"
    share = float(measured.mean())
    tol = 4 * np.sqrt(expected * (1 - expected) / n) + 0.005
    assert abs(share - expected) <= tol, f"{label}: measured {share:.4f}, configured {expected:.4f} (±{tol:.4f})"


# ------------------------------------------------------------------ determinism and shape

def test_same_seed_same_frames_and_different_seed_differs(geo):
    a_enc, a_truth = generate(SynthConfig(n_encounters=3000, seed=42))
    b_enc, b_truth = generate(SynthConfig(n_encounters=3000, seed=42))
    pd.testing.assert_frame_equal(a_enc, b_enc)
    pd.testing.assert_frame_equal(a_truth, b_truth)
    c_enc, _ = generate(SynthConfig(n_encounters=3000, seed=43))
    assert not a_enc.equals(c_enc)
    assert (a_enc["surname"].fillna("") != c_enc["surname"].fillna("")).mean() > 0.5


@pytest.mark.parametrize("n", [1, 7, 2500])
def test_row_counts_and_columns(geo, n):
    enc, truth = generate(SynthConfig(n_encounters=n, seed=1))
    assert len(enc) == n and len(truth) == n
    assert list(enc.columns) == ENCOUNTER_COLUMNS
    assert list(truth.columns[: len(TRUTH_COLUMNS)]) == TRUTH_COLUMNS


def test_truth_aligns_one_to_one(default_run):
    enc, truth = default_run
    assert len(enc) == len(truth)
    assert (enc["agency_type"].to_numpy() == truth["agency_type"].to_numpy()).all()
    assert (enc["source_record_id"].to_numpy() == truth["source_record_id"].to_numpy()).all()
    assert not truth.duplicated(["agency_type", "source_record_id"]).any()
    assert truth["true_child_id"].notna().all() and truth["true_cse"].dtype == bool


def test_record_ids_unique_within_agency_and_code(default_run):
    enc, _ = default_run
    assert not enc.duplicated(["agency_type", "agency_code", "source_record_id"]).any()
    assert not enc["source_record_id"].duplicated().any()
    prefix = enc["source_record_id"].str.split("-").str[1]
    assert (prefix == enc["agency_code"]).all()


def test_vocabularies_and_dates(joined):
    assert set(joined["agency_type"]) == set(AGENCY_TYPES)
    for agency, types in ENCOUNTER_TYPES.items():
        assert set(joined.loc[joined["agency_type"] == agency, "encounter_type"]) <= set(types)
    assert set(joined["sex"]) <= {"M", "F", "U"}
    assert joined["encounter_date"].min() >= pd.Timestamp("2023-04-01")
    assert joined["encounter_date"].max() <= pd.Timestamp("2025-03-31")
    # Children are 10-17 at every encounter (true date of birth; calendar ages).
    dob, when = joined["true_date_of_birth"], joined["encounter_date"]
    age = when.dt.year - dob.dt.year - ((when.dt.month * 100 + when.dt.day) < (dob.dt.month * 100 + dob.dt.day))
    assert age.between(10, 17).all()


def test_progress_reports_fractions(geo):
    seen = []
    generate(SynthConfig(n_encounters=500, seed=2), progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert all(isinstance(m, str) and m for _, m in seen)


# ------------------------------------------------------------------ geography

def test_postcodes_are_real_and_formatted(joined):
    known = pd.Index(lookup.postcode_index()["postcode"])
    shape = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][A-Z]{2}$")
    for column in ("home_postcode", "encounter_postcode", "true_home_postcode"):
        values = joined[column].dropna()
        assert len(values) > 0.8 * len(joined) or column == "home_postcode"
        assert values.str.fullmatch(shape.pattern).all(), column
        assert known.get_indexer(values.str.replace(" ", "")).min() >= 0, f"{column} not in postcode_index"


def test_agency_codes_follow_contract(joined):
    at_encounter = lookup.place_postcodes(joined["encounter_postcode"])
    at_home = lookup.place_postcodes(joined["true_home_postcode"])
    agency = joined["agency_type"]
    police, health = agency == "police", agency == "health"
    la = agency.isin(["children_social_care", "education"])
    assert (joined.loc[police, "agency_code"] == at_encounter.loc[police, "pfa_code"]).all()
    # Health: a real acute trust (or Welsh health board) taking a share of the encounter place's admissions
    # in OHID's catchment model, drawn by those shares (so not always the main provider).
    from lib.geo import catchments

    shares = catchments.shares()
    area = lookup.lsoa_table().set_index("lsoa11cd")["trust_area"]
    pairs = pd.DataFrame({"area_code": at_encounter.loc[health, "lsoa11cd"].map(area).to_numpy(),
                          "trust_code": joined.loc[health, "agency_code"].to_numpy()})
    found = pairs.merge(shares, on=["area_code", "trust_code"], how="left")["share"]
    assert found.notna().all() and (found > 0).all()
    main = (joined.loc[health, "agency_code"] == at_encounter.loc[health, "trust_code"]).mean()
    assert 0.5 < main < 0.98
    assert (joined.loc[la, "agency_code"] == at_home.loc[la, "utla_code"]).all()


def test_pfa_filter_keeps_homes_in_force(geo):
    enc, truth = generate(SynthConfig(n_encounters=3000, seed=3, pfa_filter=WEST_YORKSHIRE))
    homes = lookup.place_postcodes(truth["true_home_postcode"])
    assert (homes["pfa_code"] == WEST_YORKSHIRE).all()
    # ... while some police encounters happen in other forces (travel far from home).
    police = enc["agency_type"] == "police"
    assert (enc.loc[police, "agency_code"] != WEST_YORKSHIRE).any()


def test_region_filter_and_unknown_codes(geo):
    _, truth = generate(SynthConfig(n_encounters=1500, seed=4, region="Wales"))
    homes = lookup.place_postcodes(truth["true_home_postcode"])
    assert homes["pfa_code"].isin(REGION_PFAS["Wales"]).all()
    with pytest.raises(ValueError):
        generate(SynthConfig(n_encounters=10, pfa_filter="E23999999"))
    with pytest.raises(ValueError):
        generate(SynthConfig(n_encounters=10, region="Atlantis"))


def test_travellers_span_forces(joined):
    pfa = lookup.place_postcodes(joined["encounter_postcode"])["pfa_code"]
    home_pfa = lookup.place_postcodes(joined["true_home_postcode"])["pfa_code"]
    far = joined["far_from_home"]
    # far encounters of travellers land in another force most of the time
    assert (pfa[far] != home_pfa[far]).mean() > 0.7
    assert (pfa[~far] == home_pfa[~far]).mean() > 0.9
    spans = pfa.groupby(joined["true_child_id"]).nunique()
    assert 0.04 < (spans >= 2).mean() < 0.4


# ------------------------------------------------------------------ identifiers

def test_nhs_numbers_mod11(joined):
    recorded = joined["nhs_number"].dropna()
    assert recorded.str.fullmatch(r"\d{10}").all()
    status = joined.loc[recorded.index, "nhs_status"]
    valid = recorded.map(is_valid)
    assert valid[status.isin(["correct", "other_child"])].all()
    assert not valid[status == "mistyped"].any()
    assert joined["true_nhs_number"].drop_duplicates().map(is_valid).all()
    # another child's number: valid, but not this child's
    other = status == "other_child"
    assert (recorded[other] != joined.loc[recorded.index, "true_nhs_number"][other]).all()
    # one true number per child, never shared between children
    per_child = joined.groupby("true_child_id")["true_nhs_number"].nunique()
    assert (per_child == 1).all()
    assert joined.drop_duplicates("true_child_id")["true_nhs_number"].is_unique


def test_anonymous_records_have_no_identity(joined):
    anon = joined[joined["anonymous"]]
    assert len(anon) > 50
    assert (anon["agency_type"] == "health").all() and (anon["encounter_type"] == "sexual health clinic").all()
    for column in ("nhs_number", "forename", "surname", "date_of_birth", "home_postcode"):
        assert anon[column].isna().all(), column
    assert anon["agency_code"].notna().all() and anon["encounter_postcode"].notna().all()
    named = joined[~joined["anonymous"]]
    assert named["forename"].notna().all() and named["surname"].notna().all()


def test_nhs_capture_by_agency(rates_run):
    named = rates_run[~rates_run["anonymous"]]
    for agency, rate in RATES.nhs_capture.items():
        assert_rate(named.loc[named["agency_type"] == agency, "nhs_number"].notna(), rate, f"NHS capture {agency}")


def test_nhs_damage_rates(rates_run):
    recorded = rates_run[rates_run["nhs_number"].notna()]
    valid = recorded["nhs_number"].map(is_valid)
    assert_rate(~valid, RATES.nhs_mistype_rate, "mistyped NHS numbers")
    wrong = valid & (recorded["nhs_number"] != recorded["true_nhs_number"])
    assert_rate(wrong, RATES.nhs_other_child_rate, "another child's NHS number")


def test_anonymous_sexual_health_share(rates_run):
    clinic = rates_run[rates_run["encounter_type"] == "sexual health clinic"]
    assert_rate(clinic["forename"].isna(), RATES.anonymous_sexual_health_share, "anonymous share")


def test_false_name_rate_by_agency(rates_run):
    named = rates_run[~rates_run["anonymous"]]
    changed = (named["forename"] != named["true_forename"]) | (named["surname"] != named["true_surname"])
    for agency, rate in RATES.false_name_rate.items():
        assert_rate(changed[named["agency_type"] == agency], rate, f"false names {agency}")
    # half of false names are the child's own alias, used again and again
    false = named[changed]
    assert_rate(false["name_status"] == "alias", RATES.alias_share, "alias share")


def test_dob_error_rate_by_agency(rates_run):
    dated = rates_run[rates_run["date_of_birth"].notna()]
    wrong = dated["date_of_birth"] != dated["true_date_of_birth"]
    for agency, rate in RATES.dob_error_rate.items():
        assert_rate(wrong[dated["agency_type"] == agency], rate, f"DOB errors {agency}")
    # the kinds of error: within a year and a bit of the truth
    gap = (dated.loc[wrong, "date_of_birth"] - dated.loc[wrong, "true_date_of_birth"]).dt.days.abs()
    assert gap.max() <= 366 + 31


def test_moved_postcode_rate_by_agency(rates_run):
    addressed = rates_run[rates_run["home_postcode"].notna()]
    old = addressed["home_postcode"] != addressed["true_home_postcode"]
    for agency, rate in RATES.moved_postcode_rate.items():
        assert_rate(old[addressed["agency_type"] == agency], rate, f"old postcodes {agency}")


def test_cse_flag_propensity_by_agency(rates_run):
    exploited = rates_run[rates_run["true_cse"]]
    for agency, rate in RATES.cse_flag_propensity.items():
        assert_rate(exploited.loc[exploited["agency_type"] == agency, "cse_flag"], rate, f"CSE flag {agency}")


def test_recording_practice_varies_by_area(geo):
    enc, truth = generate(SynthConfig(n_encounters=60_000, seed=9, cse_flag_area_sd=0.6))
    police = (enc["agency_type"] == "police") & truth["true_cse"]
    by_force = enc[police].groupby("agency_code")["cse_flag"].agg(["mean", "size"])
    by_force = by_force[by_force["size"] >= 80]
    p = enc.loc[police, "cse_flag"].mean()
    binomial_var = (p * (1 - p) / by_force["size"]).mean()
    assert by_force["mean"].var() > 3 * binomial_var


def test_nicknames_and_typos_happen(joined):
    named = joined[~joined["anonymous"] & (joined["name_status"] == "nickname")]
    assert len(named) > 100 and (named["forename"] != named["true_forename"]).all()
    typo = joined[joined["typo_surname"] & (joined["name_status"] == "true")]
    assert len(typo) > 50 and (typo["surname"] != typo["true_surname"]).all()


# ------------------------------------------------------------------ realism of the default profile

def test_default_profile_realism(joined):
    per_child = joined.groupby("true_child_id")
    sizes = per_child.size()
    assert 2.0 <= sizes.mean() <= 4.0
    assert sizes.max() >= 5 * sizes.mean()  # long tail
    multi = (per_child["agency_type"].nunique() >= 2).mean()
    assert 0.40 <= multi <= 0.60
    surnames = per_child["true_surname"].first().value_counts(normalize=True)
    assert {"Smith", "Jones"} & set(surnames.index[:10])
    assert 0.005 < surnames.iloc[0] < 0.03  # common names are common, not dominant
    assert (surnames.cumsum() < 0.5).sum() > 50  # and half of children share no top-50 name


def test_runs_on_a_hand_made_geography():
    """generate() takes any geography in the CONTRACTS.md shape, not only the national one."""
    from lib.synth.geography import build_geography

    lsoas = pd.DataFrame({
        "lsoa11cd": ["X01", "X02", "X03", "X04"],
        "pfa_code": ["P1", "P1", "P2", "P2"], "utla_code": ["U1", "U1", "U2", "U3"],
        "trust_code": ["T1", "T1", "T2", "T2"],
        "lon": [-1.50, -1.49, -0.10, -0.11], "lat": [53.80, 53.81, 51.50, 51.51],
    })
    postcodes = pd.DataFrame({
        "postcode": [f"AB{i}{j}CD" for i in range(1, 5) for j in range(5)],
        "lsoa11cd": [f"X0{i}" for i in range(1, 5) for _ in range(5)],
    })
    small = build_geography(postcodes, lsoas)
    enc, truth = generate(SynthConfig(n_encounters=400, seed=1, pfa_filter="P1"), geography=small)
    assert len(enc) == 400
    assert set(enc["agency_code"]) <= {"P1", "P2", "U1", "U2", "U3", "T1", "T2"}
    assert truth["true_home_postcode"].str[:3].isin(["AB1", "AB2"]).all()  # homes in force P1


def test_health_trust_is_drawn_by_catchment_shares():
    from lib.synth.geography import build_geography

    lsoas = pd.DataFrame({
        "lsoa11cd": ["X01", "X02"], "pfa_code": ["P1", "P1"], "utla_code": ["U1", "U1"],
        "trust_code": ["T2", "T3"], "lon": [-1.50, -1.49], "lat": [53.80, 53.81],
    })
    postcodes = pd.DataFrame({"postcode": [f"AB{i}{j}CD" for i in range(1, 3) for j in range(5)],
                              "lsoa11cd": [f"X0{i}" for i in range(1, 3) for _ in range(5)]})
    shares = pd.DataFrame({"lsoa_idx": [0, 0, 1], "trust_code": ["T1", "T2", "T3"], "share": [0.3, 0.7, 1.0]})
    geo = build_geography(postcodes, lsoas, shares)
    codes = list(geo.codes)
    drawn = geo.draw_trust(np.array([0, 0, 0, 0, 1, 1]), np.array([0.0, 0.29, 0.31, 0.999, 0.0, 0.999]))
    assert [codes[i] for i in drawn] == ["T1", "T1", "T2", "T2", "T3", "T3"]
    u = np.random.default_rng(3).random(20_000)
    picked = np.array(codes, dtype=object)[geo.draw_trust(np.zeros(len(u), dtype=np.int64), u)]
    assert abs((picked == "T1").mean() - 0.3) < 0.02
    enc, _ = generate(SynthConfig(n_encounters=600, seed=4), geography=geo)
    health = enc[enc["agency_type"] == "health"]
    assert len(health) > 50 and set(health["agency_code"]) <= {"T1", "T2", "T3"}
    assert "T1" in set(health["agency_code"])  # not only the main providers


def test_cli_writes_parquet_and_json(tmp_path, capsys, geo):
    from lib.cli import main

    code = main(["synth", "--encounters", "800", "--seed", "6", "--out", str(tmp_path), "--pfa", WEST_YORKSHIRE])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["rows"] == 800 and summary["children"] > 0 and summary["seconds"] >= 0
    enc = pd.read_parquet(tmp_path / "encounters.parquet")
    truth = pd.read_parquet(tmp_path / "truth.parquet")
    assert list(enc.columns) == ENCOUNTER_COLUMNS and len(truth) == 800
    assert set(TRUTH_COLUMNS) <= set(truth.columns)


def test_config_rejects_nonsense():
    with pytest.raises(ValueError):
        SynthConfig(nhs_capture={"police": 1.5})
    with pytest.raises(ValueError):
        SynthConfig(false_name_rate={"fire_service": 0.1})
    with pytest.raises(ValueError):
        SynthConfig(n_encounters=0)
    assert SynthConfig(nhs_capture={"police": 0.1}).nhs_capture["health"] == 0.9  # partial dict filled


# ------------------------------------------------------------------ one nickname table (lib.records.nicknames)

def test_every_nickname_the_generator_writes_is_known_to_the_pseudonymiser():
    """Each forename variant the generator can record (its vocabulary's nickname table) has the same
    canonical forename, as the pseudonymiser hashes it, as the forename it stands for."""
    from lib.records.pseudonymise import canonical_forename
    from lib.records.validate import normalise_name
    from lib.synth.names import names

    fore = names().forenames

    def canonical(name: str) -> str:
        return canonical_forename(normalise_name(name)[0])

    pairs = [(fore.strings[i], fore.strings[fore.nick[i, k]])
             for i in range(len(fore.nick)) for k in range(int(fore.nick_n[i]))]
    assert len(pairs) > 150
    unknown = [(full, nick) for full, nick in pairs if canonical(full) != canonical(nick)]
    assert not unknown, (f"{len(unknown)} of {len(pairs)} generator nicknames unknown to the pseudonymiser: "
                         f"{unknown[:10]}")


def test_recorded_nicknames_hash_to_the_true_forenames_canonical(joined):
    from lib.records.pseudonymise import canonical_forename
    from lib.records.validate import normalise_name

    nicknamed = joined[(joined["name_status"] == "nickname") & ~joined["typo_forename"]]
    assert len(nicknamed) > 100
    recorded = nicknamed["forename"].map(lambda v: canonical_forename(normalise_name(v)[0]))
    true = nicknamed["true_forename"].map(lambda v: canonical_forename(normalise_name(v)[0]))
    assert (recorded == true).all()
