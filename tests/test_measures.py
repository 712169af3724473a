"""lib.measures: conversion between geographies, funnel limits, published-statistics import, divergence and
its decomposition — on hand-made data and on the linked synthetic store."""
from __future__ import annotations

import argparse
import io
import json
import math
from datetime import date

import duckdb
import numpy as np
import pandas as pd
import pytest

from lib.geo import lookup
from lib.measures import convert, counts, funnel, population, published
from lib.measures import divergence as dv
from tests.fixtures_linkage import copy_store, synthetic_linked_store

WEST_YORKSHIRE, SOUTH_YORKSHIRE = "E23000010", "E23000011"
LEEDS = "E08000035"


# -- conversion ------------------------------------------------------------------------------------------

def _utla_frame(seed: int = 1) -> pd.DataFrame:
    codes = convert.area_codes("utla")
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"area_code": codes, "count": rng.integers(0, 500, len(codes)).astype("float64")})


@pytest.mark.parametrize("to_layer", ["nhs", "trust", "lad", "icb"])
def test_apportionment_preserves_totals(to_layer):
    frame = _utla_frame()
    converted, unmatched = convert.convert(frame, "utla", to_layer, ["count"])
    assert unmatched.empty
    # ("icb" is the ICB-or-health-board layer, so Welsh authorities carry over too)
    assert converted["count"].sum() == pytest.approx(frame["count"].sum(), rel=1e-12)
    assert converted["apportioned"].any()
    w = convert.weights("utla", to_layer)
    assert np.allclose(w.groupby("from_code")["weight"].sum(), 1.0, rtol=0, atol=1e-12)


def test_trust_to_authority_and_back_preserves_totals():
    frame = pd.DataFrame({"area_code": convert.area_codes("trust"), "count": 7.0})
    there, _ = convert.convert(frame, "trust", "utla", ["count"])
    back, _ = convert.convert(there, "utla", "trust", ["count"])
    assert there["count"].sum() == pytest.approx(7.0 * len(frame), rel=1e-12)
    assert back["count"].sum() == pytest.approx(7.0 * len(frame), rel=1e-12)


@pytest.mark.parametrize("from_layer,to_layer", [("utla", "pfa"), ("lad", "utla"), ("lad", "pfa")])
def test_nesting_sums_are_exact(from_layer, to_layer):
    assert convert.nests(from_layer, to_layer)
    frame = _utla_frame(2) if from_layer == "utla" else pd.DataFrame(
        {"area_code": convert.area_codes("lad"), "count": np.arange(len(convert.area_codes("lad")), dtype="float64")})
    converted, _ = convert.convert(frame, from_layer, to_layer, ["count"])
    assert not converted["apportioned"].any()
    assert converted["count"].sum() == frame["count"].sum()  # exact, not approximately
    table = lookup.lsoa_table()[[convert.LAYER_COLUMNS[from_layer], convert.LAYER_COLUMNS[to_layer]]].drop_duplicates()
    parent = dict(zip(table.iloc[:, 0].astype(str), table.iloc[:, 1].astype(str)))
    expected = frame.assign(parent=frame["area_code"].map(parent)).groupby("parent")["count"].sum()
    got = converted.set_index("area_code")["count"]
    assert (got.reindex(expected.index) == expected).all()


def test_authority_does_not_nest_in_icb_and_unknown_codes_are_reported():
    assert not convert.nests("utla", "nhs")
    assert not convert.nests("pfa", "utla")
    frame = pd.DataFrame({"area_code": [LEEDS, "E10000023", "NOPE"], "count": [10.0, 5.0, 1.0]})
    converted, unmatched = convert.convert(frame, "utla", "pfa", ["count"])
    assert converted.set_index("area_code")["count"].to_dict() == {WEST_YORKSHIRE: 10.0}
    assert set(unmatched["area_code"]) == {"E10000023", "NOPE"}


def test_round_preserving_total():
    values = np.array([1.4, 2.3, 3.3, 0.0, 5.0])
    rounded = convert.round_preserving_total(values)
    assert rounded.sum() == 12 and (np.abs(rounded - values) < 1).all()


# -- funnel limits -----------------------------------------------------------------------------------------

def _hand_limit(n: int, p0: float, q: float) -> float:
    """Spiegelhalter's interpolated binomial quantile, by summing the binomial pmf by hand."""
    cdf, previous = 0.0, 0.0
    for r in range(n + 1):
        previous, cdf = cdf, cdf + math.comb(n, r) * p0 ** r * (1 - p0) ** (n - r)
        if cdf >= q - 1e-12:
            alpha = (cdf - q) / (cdf - previous)
            return (r - alpha) / n
    return 1.0


def test_funnel_limit_hand_computed_n10():
    # n = 10, p0 = 0.5, q = 0.975: F(7) = 968/1024, F(8) = 1013/1024, so r = 8 and
    # alpha = (1013/1024 - 0.975) / (45/1024) = 0.32444..., limit = (8 - alpha) / 10 = 0.767556
    assert funnel.binomial_limit(10, 0.5, 0.975)[0] == pytest.approx(0.767556, abs=1e-6)
    # lower: F(1) = 11/1024 < 0.025 ≤ F(2) = 56/1024: r = 2, alpha = (56/1024 - 0.025) / (45/1024)
    assert funnel.binomial_limit(10, 0.5, 0.025)[0] == pytest.approx((2 - (56 / 1024 - 0.025) / (45 / 1024)) / 10)


@pytest.mark.parametrize("n,p0", [(5, 0.42), (20, 0.3), (87, 0.42), (400, 0.1)])
def test_funnel_limits_match_hand_computation(n, p0):
    lim = funnel.limits([n], p0).iloc[0]
    for key, coverage in funnel.LEVELS.items():
        assert lim[f"lower_{key}"] == pytest.approx(max(_hand_limit(n, p0, (1 - coverage) / 2), 0), abs=1e-9)
        assert lim[f"upper_{key}"] == pytest.approx(_hand_limit(n, p0, (1 + coverage) / 2), abs=1e-9)
    assert lim["lower_998"] <= lim["lower_95"] < p0 < lim["upper_95"] <= lim["upper_998"]


def test_funnel_verdicts():
    assert funnel.verdict(0.5, 100, 0.5) == "within"
    assert funnel.verdict(0.95, 100, 0.5) == "above 99.8%"
    assert funnel.verdict(0.39, 100, 0.5) == "below 95%"
    assert funnel.verdict(float("nan"), 0, 0.5) == "no data"
    lr = funnel.log_ratio([0, 10], [10, 10])
    assert lr["log_ratio"].iat[1] == 0 and lr["log_ratio"].iat[0] < 0


# -- published statistics ---------------------------------------------------------------------------------

C3 = """time_period,time_identifier,geographic_level,country_code,country_name,region_code,region_name,new_la_code,old_la_code,la_name,Domestic_violence_child,Child_sexual_exploitation,Going_missing
202324,Financial year,National,E92000001,England,,,,,,"170,350",16830,12000
202324,Financial year,Regional,E92000001,England,E12000003,Yorkshire and The Humber,,,,20110,1850,x
202324,Financial year,Local authority,E92000001,England,E12000003,Yorkshire and The Humber,E08000035,383,Leeds,2210,250,190
202324,Financial year,Local authority,E92000001,England,E12000003,Yorkshire and The Humber,E08000032,380,Bradford,1890,c,150
202324,Financial year,Local authority,E92000001,England,E12000003,Yorkshire and The Humber,E06000014,816,York,410,x,z
202223,Financial year,Local authority,E92000001,England,E12000003,Yorkshire and The Humber,E10000023,815,North Yorkshire,900,60,44
202324,Financial year,Local authority,E92000001,England,E12000003,Yorkshire and The Humber,E99999999,999,Nowhere,1,2,3
"""  # noqa: E501 (the published file's own rows)


def test_dfe_c3_parses_suppressed_unavailable_and_levels():
    tidy, report = published.read_dfe_c3(io.StringIO(C3), "Child_sexual_exploitation")
    assert list(tidy.columns) == published.TIDY_COLUMNS
    by_name = tidy.set_index("area_name")
    assert by_name.loc["England", "area_code"] == "E92000001"
    assert by_name.loc["England", "geographic_level"] == "National" and by_name.loc["England", "count"] == 16830
    assert by_name.loc["Yorkshire and The Humber", "area_code"] == "E12000003"
    assert by_name.loc["Yorkshire and The Humber", "geographic_level"] == "Regional"
    assert by_name.loc["Leeds", "count"] == 250 and by_name.loc["Leeds", "status"] == "ok"
    assert pd.isna(by_name.loc["Bradford", "count"]) and by_name.loc["Bradford", "status"] == "suppressed"
    assert pd.isna(by_name.loc["York", "count"]) and by_name.loc["York", "status"] == "unavailable"
    assert set(tidy["period"]) == {"2023-24", "2022-23"}
    assert len(tidy) == 7  # nothing dropped
    problems = report.set_index("area_code")
    assert problems.loc["E10000023", "problem"] == "retired" and "E06000065" in problems.loc["E10000023", "detail"]
    assert problems.loc["E99999999", "problem"] == "unknown"
    assert set(problems.index) == {"E10000023", "E99999999"}  # national/regional rows are not LA codes


def test_dfe_c3_other_factor_and_errors():
    tidy, _ = published.read_dfe_c3(io.StringIO(C3), "domestic_violence_child")  # case-insensitive
    assert tidy.set_index("area_name").loc["England", "count"] == 170350
    going, _ = published.read_dfe_c3(io.StringIO(C3), "Going_missing")
    assert going.set_index("area_name").loc["York", "status"] == "unavailable"  # z
    assert "Going_missing" in published.dfe_factors(io.StringIO(C3))
    with pytest.raises(ValueError, match="choose from"):
        published.read_dfe_c3(io.StringIO(C3), "Not_a_factor")


def test_dfe_c3_converts_to_police_force_exactly():
    tidy, _ = published.read_dfe_c3(io.StringIO(C3), "Domestic_violence_child")
    converted, left_out = published.to_layer(tidy[tidy["geographic_level"] == "Local authority"], "utla", "pfa")
    assert converted.set_index("area_code").loc[WEST_YORKSHIRE, "count"] == 2210 + 1890
    assert {"E10000023", "E99999999"} <= set(left_out["area_code"])


def test_generic_csv_guesses_layer_and_reports_unknown_codes(tmp_path):
    text = "area_code,period,count\nE23000010,2023-24,120\nE23000011,2023-24,c\nE23999999,2023-24,4\n"
    tidy, report = published.read_generic(io.StringIO(text))
    assert set(tidy["geographic_level"]) == {"pfa"}
    assert tidy.set_index("area_code").loc["E23000011", "status"] == "suppressed"
    assert tidy.set_index("area_code").loc["E23000010", "area_name"] == "West Yorkshire"
    assert list(report["area_code"]) == ["E23999999"]


def test_import_stats_command(tmp_path, capsys):
    from lib.measures import commands

    source = tmp_path / "c3.csv"
    source.write_text(C3)
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["import-stats", str(source), "--format", "dfe-c3", "--factor",
                              "Child_sexual_exploitation", "--out", str(tmp_path / "out.csv")])
    assert args.func(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 7 and summary["suppressed"] == 1 and summary["unavailable"] == 1
    assert {c["area_code"] for c in summary["codes_reported"]} == {"E10000023", "E99999999"}
    out = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    assert list(out.columns) == published.TIDY_COLUMNS
    assert out.set_index("area_name").loc["Bradford", "count"] == ""


# -- decomposition on hand-made records ------------------------------------------------------------------

def _hand_store() -> duckdb.DuckDBPyConnection:
    """Police: 3 CSE records on West Yorkshire's code, located WY, WY, SY; children P1, P1, P2.
    Children's social care: 3 CSE records on Leeds's code (in WY), located WY, SY, SY; children C1, C2, C3."""
    rows = [("p1", "police", WEST_YORKSHIRE, WEST_YORKSHIRE, "P1"),
            ("p2", "police", WEST_YORKSHIRE, WEST_YORKSHIRE, "P1"),
            ("p3", "police", WEST_YORKSHIRE, SOUTH_YORKSHIRE, "P2"),
            ("c1", "children_social_care", LEEDS, WEST_YORKSHIRE, "C1"),
            ("c2", "children_social_care", LEEDS, SOUTH_YORKSHIRE, "C2"),
            ("c3", "children_social_care", LEEDS, SOUTH_YORKSHIRE, "C3"),
            ("x1", "police", WEST_YORKSHIRE, WEST_YORKSHIRE, "P3")]  # not CSE-flagged
    con = duckdb.connect()
    enc = pd.DataFrame({"record_key": [r[0] for r in rows], "agency_type": [r[1] for r in rows],
                        "agency_code": [r[2] for r in rows], "enc_pfa": [r[3] for r in rows],
                        "encounter_date": [date(2023, 5, 1)] * 6 + [date(2024, 5, 1)],
                        "cse_flag": [True] * 6 + [False]})
    links = pd.DataFrame({"record_key": enc["record_key"], "child_id": [r[4] for r in rows]})
    con.register("e_", enc)
    con.register("l_", links)
    con.execute("CREATE TABLE encounters AS SELECT * FROM e_")
    con.execute("CREATE TABLE record_child AS SELECT * FROM l_")
    return con


def test_decomposition_by_hand():
    cube = counts.build_cube(_hand_store(), layers=("pfa",))
    result = dv.decomposition(cube, "pfa", WEST_YORKSHIRE)
    # native: police 3, CSC 3 (Leeds nests in West Yorkshire) → gap 0; direct records 2 vs 1; children 1 vs 1
    assert (result["native_a"], result["native_b"]) == (3, 3)
    assert (result["records_a"], result["records_b"]) == (2, 1)
    assert (result["children_a"], result["children_b"]) == (1, 1)
    values = result["components"].set_index("component")["value"]
    assert values.to_dict() == {"Boundary effect": -1, "Identity effect": 1, "Recording effect": 0}
    assert values.sum() == result["total"] == 0
    assert not result["apportioned"]
    assert cube.periods == ["all", "2023-24", "2023-24 Q1", "2024-25", "2024-25 Q1"]
    table = dv.divergence_table(cube, "pfa", "all")
    wy = table.set_index("area_code").loc[WEST_YORKSHIRE]
    assert (wy["count_a"], wy["count_b"]) == (2, 1)
    assert dv.divergence_table(cube, "pfa", "all", measure="records").set_index("area_code").loc[
        WEST_YORKSHIRE, "count_a"] == 3


# -- on the linked synthetic store -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    # A private copy: other modules in this process may hold the shared store open (read-only or read-write, e.g.
    # a page's cached connection), and DuckDB refuses a second connection to one file with another configuration
    # (it did, in the full suite, once more modules read the shared store read-only).
    path = copy_store(synthetic_linked_store(tmp_path_factory), tmp_path_factory.mktemp("measures_store"))
    con = duckdb.connect(str(path), read_only=True)
    try:
        yield counts.build_cube(con)
    finally:
        con.close()


@pytest.mark.parametrize("layer", ["pfa", "utla", "lad", "nhs", "trust"])
def test_synthetic_decomposition_sums_to_gap(cube, layer):
    table = dv.divergence_table(cube, layer)
    for area in table.nlargest(8, "total")["area_code"]:
        for a, b in (("police", "children_social_care"), ("health", "police")):
            result = dv.decomposition(cube, layer, area, "all", a, b)
            assert result["components"]["value"].sum() == pytest.approx(result["total"], abs=1e-9)


def test_synthetic_totals_agree_across_layers_and_bases(cube):
    c = cube.counts
    national = c[(c["period"] == "all")].groupby(["layer", "basis", "agency_type"])["cse_records"].sum().unstack(
        "agency_type")
    for agency in ("police", "children_social_care", "health"):
        values = national[agency].to_numpy()
        assert np.allclose(values, values[0], rtol=1e-12), agency
    quarters = c[(c["granularity"] == "quarter") & (c["basis"] == "direct")
                 & (c["layer"] == "pfa")]["cse_records"].sum()
    years = c[(c["granularity"] == "year") & (c["basis"] == "direct") & (c["layer"] == "pfa")]["cse_records"].sum()
    assert quarters == years


def test_synthetic_divergence_table_and_readings(cube):
    pop = population.default_population("utla")
    # official ONS children aged 0–17: England's latest LA totals plus Wales (mid-2020)
    official = population.official_population("utla")
    assert pop.sum() == official["children"].sum() and 12_000_000 < pop.sum() < 13_500_000
    table = dv.divergence_table(cube, "utla", "all", population=pop)
    counted = table[table["total"] > 0]
    assert counted["national_share"].iat[0] == pytest.approx(counted["count_a"].sum() / counted["total"].sum())
    assert (counted["rate_a"] >= 0).all() and counted["rate_a"].notna().all()
    assert counted["outside_998"].sum() <= counted["outside_95"].sum()
    row = counted.iloc[0]
    text = dv.describe_area(row, "police", "children_social_care", "cse_records")
    assert text.startswith(f"Police in {row['area_name']}") and "limit" in text
    children = dv.divergence_table(cube, "utla", "all", measure="cse_children")
    assert (children["count_a"] <= table.set_index("area_code").loc[children["area_code"], "count_a"].to_numpy()).all()
    trend = dv.trend(cube, "utla", row["area_code"])
    assert len(trend) == 8 and trend["count_a"].sum() == row["count_a"]


def test_divergence_command(tmp_path_factory, tmp_path, capsys):
    from lib.measures import commands

    db = synthetic_linked_store(tmp_path_factory)
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="command"))
    copy = tmp_path / "copy.duckdb"
    import shutil
    shutil.copy(db, copy)
    args = parser.parse_args(["divergence", "--db", str(copy), "--layer", "icb", "--out", str(tmp_path / "d.csv")])
    assert args.func(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["layer"] == "nhs" and summary["areas"] == 49
    out = pd.read_csv(tmp_path / "d.csv")
    assert {"area_code", "police", "children_social_care", "log_ratio", "verdict"} <= set(out.columns)
    assert out["rate_basis"].str.contains("ONS mid-2024").all()  # rates name their population
    assert len(out) == 49
