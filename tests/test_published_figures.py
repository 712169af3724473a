"""The vendored DfE C3 figures: equal to the official file, on current codes, symbols kept as what they mean,
summed to police force areas, kept in the store when imported, and set beside the store's own counts."""
from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from lib.geo import official_lookups
from lib.measures import convert, published

RAW = official_lookups.path(published.C3_EXTRACT)


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    frame = pd.read_csv(RAW, dtype=str, keep_default_na=False)
    return frame[frame["geographic_level"] == "Local authority"]


@pytest.fixture(scope="module")
def figures() -> pd.DataFrame:
    return published.dfe_c3()


def _one(figures, code, period):
    rows = figures[(figures["area_code"] == code) & (figures["period"] == period)]
    assert len(rows) == 1, (code, period)
    return rows.iloc[0]


def test_every_current_code_figure_equals_the_file(raw, figures):
    current = raw[raw["new_la_code"].isin(convert.area_codes("utla"))]
    assert len(current) > 1100
    for row in current.itertuples(index=False):
        period = published.dfe_period(row.time_period, row.time_identifier)
        got = _one(figures, row.new_la_code, period)
        value = row.Child_sexual_exploitation
        if value.replace(",", "").isdigit():
            assert got["count"] == int(value.replace(",", "")) and got["symbol"] == ""
        else:
            assert pd.isna(got["count"]) and got["symbol"] == value.lower()


def test_symbols_are_kept_as_what_they_mean_never_zero(figures):
    hackney = _one(figures, "E09000012", "2021-22")
    assert pd.isna(hackney["count"]) and hackney["symbol"] == "x" and hackney["meaning"] == "not available"
    kensington = _one(figures, "E09000020", "2023-24")
    assert pd.isna(kensington["count"]) and kensington["symbol"] == "c" and "suppressed" in kensington["meaning"]
    scilly = _one(figures, "E06000053", "2018-19")
    assert scilly["symbol"] == "z" and scilly["meaning"] == "not applicable"
    assert set(figures["symbol"]) <= set(published.SYMBOL_MEANINGS)
    assert (figures.loc[figures["symbol"] != "", "count"].isna()).all()
    symbols, meanings = published.symbols(pd.Series(["12", "k", "low", "u", " C ", "1,204"]))
    assert symbols.tolist() == ["", "k", "low", "u", "c", ""]
    assert meanings.tolist()[1:4] == ["rounds to 0 but is not 0", "rounds to 0 but is not 0", "low reliability"]


def test_reporting_years_are_financial_years():
    assert published.dfe_period("2025", "Reporting year") == "2024-25"
    assert published.dfe_period("2018", "Reporting year") == "2017-18"
    assert published.dfe_period("202324") == "2023-24" and published.dfe_period("2023") == "2023"


def test_recoded_and_split_authorities(raw, figures):
    barnsley = _one(figures, "E08000038", "2024-25")
    assert barnsley["count"] == 56 and "E08000016" in barnsley["basis"]
    north_yorks = _one(figures, "E06000065", "2019-20")  # E10000023 in the file
    assert north_yorks["count"] == 133 and "re-coded from E10000023" in north_yorks["basis"]
    cumbria = int(raw[(raw["new_la_code"] == "E10000006") & (raw["time_period"] == "2022")]
                  ["Child_sexual_exploitation"].iat[0])
    parts = figures[(figures["period"] == "2021-22") & figures["basis"].str.contains("E10000006")]
    assert set(parts["area_code"]) == {"E06000063", "E06000064"}
    assert float(parts["count"].astype(float).sum()) == pytest.approx(cumbria)
    assert parts["basis"].str.startswith("apportioned").all()


def test_police_force_sums_equal_the_file(raw):
    pfa = published.to_police_force()
    west_yorks = raw[raw["la_name"].isin(["Bradford", "Calderdale", "Kirklees", "Leeds", "Wakefield"])
                     & (raw["time_period"] == "2025")]
    assert len(west_yorks) == 5
    row = pfa[(pfa["area_name"] == "West Yorkshire") & (pfa["period"] == "2024-25")].iloc[0]
    assert row["count"] == west_yorks["Child_sexual_exploitation"].astype(int).sum() and row["complete"]
    met = pfa[(pfa["area_code"] == "E23000001") & (pfa["period"] == "2021-22")].iloc[0]
    assert not met["complete"] and "Hackney: x, not available" in met["symbols"]


def test_reconcile_sets_published_beside_the_store():
    store = pd.DataFrame({"area_code": ["E08000035", "E09000012", "W06000015"],
                          "period": ["2024-25", "2021-22", "2024-25"], "store_count": [40, 7, 3]})
    out = published.reconcile(store).set_index(["area_code", "period"])
    leeds = out.loc[("E08000035", "2024-25")]
    assert leeds["text"] == f"your extract: 40; published: {int(leeds['published']):,}"
    assert out.loc[("E09000012", "2021-22"), "text"] == "your extract: 7; published: not available"
    assert out.loc[("W06000015", "2024-25"), "text"] == "your extract: 3; published: no figure"
    assert out.loc[("E08000035", "2023-24"), "store_count"] == 0  # a published year the store lacks


def test_imported_figures_are_kept_in_the_store_with_their_symbols():
    con = duckdb.connect()
    tidy = published.dfe_c3()
    tidy = tidy[tidy["period"] == "2021-22"]
    assert published.store_figures(con, tidy, "c3") == len(tidy)
    published.store_figures(con, tidy, "c3")  # re-import replaces, never duplicates
    back = published.stored_figures(con, "c3")
    assert len(back) == len(tidy)
    hackney = back[back["area_code"] == "E09000012"].iloc[0]
    assert pd.isna(hackney["count"]) and hackney["symbol"] == "x"
    with pytest.raises((ValueError, duckdb.Error)):
        published.store_figures(con, tidy.assign(count="not a number"), "c3")
    assert len(published.stored_figures(con, "c3")) == len(tidy)  # the failed import lost nothing


def test_import_stats_keeps_figures_and_symbols_in_the_store(tmp_path, capsys):
    import argparse
    import json

    from lib.measures import commands
    from lib.records import store

    source = tmp_path / "police.csv"
    source.write_text("area_code,period,count\nE23000010,2024-25,120\nE23000011,2024-25,c\nE23000012,2024-25,k\n")
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="command"))
    db = tmp_path / "store.duckdb"
    args = parser.parse_args(["import-stats", str(source), "--format", "generic", "--out", str(tmp_path / "o.csv"),
                              "--db", str(db)])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["stored"] == 3
    con = store.connect(db, read_only=True)
    try:
        kept = published.stored_figures(con).set_index("area_code")
    finally:
        con.close()
    assert kept.loc["E23000010", "count"] == 120 and kept.loc["E23000010", "source"] == "police.csv"
    assert pd.isna(kept.loc["E23000011", "count"]) and kept.loc["E23000011", "symbol"] == "c"
    assert kept.loc["E23000012", "meaning"] == "rounds to 0 but is not 0"
    assert list(pd.read_csv(tmp_path / "o.csv").columns) == published.TIDY_COLUMNS


def test_reconcile_store_uses_the_stores_counts_and_imported_figures():
    from lib.records import default, store

    con = store.connect(":memory:")
    default.ensure_default_dataset(con, n_encounters=3000, seed=4, key=b"test-key-not-secret-0123456789abcdef")
    mine = published.store_csc_counts(con)
    flagged = con.execute("SELECT count(*) FROM encounters WHERE agency_type = 'children_social_care' AND cse_flag"
                          ).fetchall()[0][0]
    assert mine["store_count"].sum() == flagged > 0
    out = published.reconcile_store(con)
    assert out["store_count"].sum() == flagged
    assert out["published"].notna().any()  # the vendored C3 figures when nothing was imported
    tidy = published.dfe_c3()
    tidy = tidy[tidy["period"] == "2024-25"].assign(count=1.0)
    published.store_figures(con, tidy, "my-import")
    imported = published.reconcile_store(con)
    assert set(imported.loc[imported["period"] == "2024-25", "published"].dropna()) == {1.0}


def test_reconcile_police_force_sums_both_sides(raw):
    store = pd.DataFrame({"area_code": ["E08000035", "E08000032", "E09000012"],
                          "period": ["2024-25", "2024-25", "2021-22"], "store_count": [40, 30, 7]})
    out = published.reconcile_police_force(store).set_index(["area_code", "period"])
    west_yorks = out.loc[("E23000010", "2024-25")]
    want = raw[raw["la_name"].isin(["Bradford", "Calderdale", "Kirklees", "Leeds", "Wakefield"])
               & (raw["time_period"] == "2025")]["Child_sexual_exploitation"].astype(int).sum()
    assert west_yorks["store_count"] == 70 and west_yorks["published"] == want
    assert west_yorks["text"] == f"your extract: 70; published: {want:,}"
    met = out.loc[("E23000001", "2021-22")]
    assert met["store_count"] == 7 and not met["complete"] and "Hackney: x, not available" in met["text"]
