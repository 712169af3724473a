"""Area profile (issue 17): the page renders exactly the `view profile` CLI twin's tables for every role; the
confidence intervals equal hand-computed Byar and Wilson limits; the comparator group of a children's services
authority is the DfE file's statistical neighbours; published DfE figures carry their symbols, never zero;
the role's hidden cells stay hidden."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from lib.access.roles import PAGE_ROLES
from lib.geo import official_lookups
from lib.measures import profile as prof
from lib.measures import published as pub
from tests.fixtures_linkage import synthetic_linked_store
from tests.view_parity import assert_parity, cli_view

LEEDS = "E08000035"
KENSINGTON = "E09000020"  # DfE C3 2023-24 (reporting year 2024): c
Z = 1.959963984540054  # the 97.5% standard normal quantile


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return synthetic_linked_store(tmp_path_factory)


def rows(view: dict, table: str = "profile_table") -> pd.DataFrame:
    spec = view["tables"][table]
    return pd.DataFrame(spec["rows"], columns=spec["columns"])


@pytest.mark.parametrize("role", sorted(PAGE_ROLES["profile"]))
@pytest.mark.parametrize("params", [{"area": LEEDS}, {"layer": "pfa"}], ids=["leeds", "pfa-default"])
def test_rendered_tables_equal_the_cli_view(store, monkeypatch, role, params):
    at, view = assert_parity(monkeypatch, store, "profile", role, params=params)
    assert view["table_order"][0] == "profile_table"
    markdown = [m.value for m in at.markdown]
    assert view["sentences"] and all(s in markdown for s in view["sentences"])
    assert ("profile_trend_table" in view["tables"])  # published DfE trend: every role (public figures)


def _byar(o: float) -> tuple[float, float]:
    lower = 0.0 if o == 0 else o * (1 - 1 / (9 * o) - Z / (3 * math.sqrt(o))) ** 3
    u = o + 1
    return lower, u * (1 - 1 / (9 * u) + Z / (3 * math.sqrt(u))) ** 3


def _wilson(k: float, n: float) -> tuple[float, float]:
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return centre - half, centre + half


def _ci(text: str) -> tuple[float, float]:
    low, high = text.split(" to ")
    return float(low.replace(",", "")), float(high.replace(",", ""))


def test_intervals_equal_hand_computed_values(store):
    view = cli_view(store, "profile", "lead", {"area": LEEDS})
    table = rows(view).set_index("Indicator")
    checked = 0
    for label, row in table.iterrows():
        if pd.isna(row["Count"]) or pd.isna(row["Denominator"]):
            continue
        k, n = float(row["Count"]), float(row["Denominator"])
        if "per 10,000" in label:
            low, high = (v * 10_000 / n for v in _byar(k))
            value = k * 10_000 / n
        else:
            low, high = (v * 100 for v in _wilson(k, n))
            value = k / n * 100
        assert float(row["Value"].replace(",", "")) == pytest.approx(round(value, 1), abs=1e-9), label
        assert _ci(row["95% CI"]) == pytest.approx((round(low, 1), round(high, 1)), abs=1e-9), label
        checked += 1
    assert checked >= 8
    # unrounded, through the measure itself: Byar for 11 records in 176,239 children, Wilson for 74 of 144
    value, low, high = prof.estimate(prof.RATE, 11, 176_239)
    assert (low, high) == pytest.approx(tuple(v * 10_000 / 176_239 for v in _byar(11)), rel=1e-12)
    value, low, high = prof.estimate(prof.PROPORTION, 74, 144)
    assert (low, high) == pytest.approx(tuple(v * 100 for v in _wilson(74, 144)), rel=1e-12)
    assert value == pytest.approx(74 / 144 * 100)


def test_comparisons_are_words_from_the_interval():
    assert prof.compared(1.0, 2.0, 0.5) == "higher"
    assert prof.compared(1.0, 2.0, 1.5) == "similar"
    assert prof.compared(1.0, 2.0, 2.5) == "lower"
    assert prof.compared(1.0, 2.0, float("nan")) == "not compared"
    assert {s["text"] for s in prof.SIGNIFICANCE_STYLE.values()} >= {"higher than", "similar to", "lower than"}
    colours = [prof.SIGNIFICANCE_STYLE[w]["colour"] for w in ("higher", "similar", "lower")]
    shapes = [prof.SIGNIFICANCE_STYLE[w]["symbol"] for w in ("higher", "similar", "lower")]
    assert len(set(colours)) == 3 and len(set(shapes)) == 3  # colour AND shape, never colour alone


def test_comparator_group_is_the_dfe_files_neighbours(store):
    sn = pd.read_csv(official_lookups.path("dfe_statistical_neighbours_2025"), dtype=str, keep_default_na=False)
    c3 = pd.read_csv(official_lookups.path(pub.C3_EXTRACT), dtype=str, keep_default_na=False)
    latest = c3[(c3["geographic_level"] == "Local authority") & (c3["time_period"] == "2025")]
    code_of = dict(zip(latest["old_la_code"], latest["new_la_code"]))
    recoded = {"E08000019": "E08000039", "E08000016": "E08000038"}  # Sheffield, Barnsley since April 2025
    for name, code in (("Leeds", LEEDS), ("Kent", "E10000016")):
        view = cli_view(store, "profile", "commissioner", {"area": code})
        group = rows(view, "profile_group_table")
        row = sn[sn["la_name"] == name].iloc[0]
        want = [recoded.get(code_of[row[f"SN_{i}"]], code_of[row[f"SN_{i}"]]) for i in range(1, 11)]
        assert group["Code"].tolist() == want
        assert group["DfE closeness"].tolist() == [row[f"SN_{i}P"].strip() for i in range(1, 11)]
        assert view["extra"]["comparator_method"] == "DfE statistical neighbours"
        assert "DfE statistical neighbours" in view["sentences"][view["sentence_names"]["comparator"]]
    welsh = cli_view(store, "profile", "commissioner", {"area": "W06000015"})
    assert welsh["extra"]["comparator_method"] == "Context neighbours"
    assert "context neighbours" in welsh["sentences"][welsh["sentence_names"]["comparator"]]


def test_published_figures_equal_the_file_and_keep_their_symbols(store):
    c3 = pd.read_csv(official_lookups.path(pub.C3_EXTRACT), dtype=str, keep_default_na=False)
    la = c3[(c3["geographic_level"] == "Local authority") & c3["time_period"].isin(["2024", "2025"])]
    leeds = la[la["new_la_code"] == LEEDS]["Child_sexual_exploitation"].astype(int).sum()
    view = cli_view(store, "profile", "lead", {"area": LEEDS})
    assert view["extra"]["years"] == ["2023-24", "2024-25"]
    published = rows(view).iloc[-1]
    assert published["Indicator"].startswith("Published DfE")
    assert published["Count"] == leeds
    assert f"published: {leeds:,}" in view["sentences"][view["sentence_names"]["published"]]
    # Kensington and Chelsea 2023-24 is published as c: no total, the symbol named with its meaning, never 0
    assert la[(la["new_la_code"] == KENSINGTON) & (la["time_period"] == "2024")][
        "Child_sexual_exploitation"].iat[0] == "c"
    view = cli_view(store, "profile", "commissioner", {"area": KENSINGTON})
    published = rows(view).iloc[-1]
    assert pd.isna(published["Count"])  # no number: never 0
    assert published["Value"] == "2023-24: c (suppressed (confidential))"
    assert "not compared" in published["Against national"]
    trend = rows(view, "profile_trend_table")
    year = trend[trend["Financial year"] == "2023-24"].iloc[-1]
    assert pd.isna(year["Count"]) and year["Value"] == "c (suppressed (confidential))"
    assert "published: no total (2023-24: c (suppressed (confidential)))" in view["sentences"][
        view["sentence_names"]["published"]]


def test_aggregate_roles_see_the_same_protected_counts_as_on_compare(store):
    """Below the lead the profile's counts are the disclosure service's (Source.cube_for), the very figures
    Compare shows for the area; the lead's are exact; nothing is shown as c; every role sees a yearly trend."""
    lead_view = cli_view(store, "profile", "lead", {"area": LEEDS})
    commissioner_view = cli_view(store, "profile", "commissioner", {"area": LEEDS})
    commissioner = rows(commissioner_view).set_index("Indicator")
    assert not (commissioner["Value"] == "c").any()
    compare = cli_view(store, "compare", "commissioner", {"areas": LEEDS})
    side = rows(compare, "cmp_table").set_index("Indicator")
    for agency in ("Police", "Children's social care"):
        on_compare = side.loc[f"{agency}: CSE-flagged records", "Leeds"]
        assert f'{commissioner.loc[f"{agency}: CSE-flagged records per 10,000 children", "Count"]:,.0f}' == on_compare
    lead_compare = rows(cli_view(store, "compare", "lead", {"areas": LEEDS}), "cmp_table").set_index("Indicator")
    lead = rows(lead_view).set_index("Indicator")
    assert f'{lead.loc["Police: CSE-flagged records per 10,000 children", "Count"]:,.0f}' == \
        lead_compare.loc["Police: CSE-flagged records", "Leeds"]
    assert "disclosure" in commissioner_view["note_names"]
    assert "cell key perturbation" in commissioner_view["notes"][commissioner_view["note_names"]["disclosure"]]
    trend = rows(commissioner_view, "profile_trend_table")
    assert trend["Indicator"].str.contains("CSE-flagged records").any()
    assert set(trend["Financial year"]) >= {"2023-24", "2024-25"}
    one_year = cli_view(store, "profile", "commissioner", {"area": LEEDS, "period": "2023-24"})
    assert one_year["extra"]["years"] == ["2023-24"]
    with pytest.raises(AssertionError):  # quarters: too few cases for a profile, for every role
        cli_view(store, "profile", "lead", {"area": LEEDS, "period": "2023-24 Q1"})


def test_a_perturbed_numerator_above_its_denominator_is_a_full_share():
    value, low, high = prof.estimate(prof.PROPORTION, 12, 11)
    assert value == 100 and high == 100 and low == pytest.approx(_wilson(11, 11)[0] * 100)
