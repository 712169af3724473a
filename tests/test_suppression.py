"""Small-number suppression on crafted tables: primary, secondary by rows and columns, the bridge case a
counting rule misses, and rates. Recoverability is checked independently with linear programming: a
hidden cell is exposed when its smallest and largest values consistent with the totals are equal."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

from lib.measures.suppression import SUPPRESSED, hidden_cells, is_small, numeric, suppress, suppression_mask


def with_totals(cells: list[list[float]], columns=("a", "b", "c", "d")) -> pd.DataFrame:
    """Rows r0.. with a row-total column and a total row, like a published table."""
    frame = pd.DataFrame(cells, columns=list(columns[:len(cells[0])]), index=[f"r{i}" for i in range(len(cells))],
                         dtype="float64")
    frame["total"] = frame.sum(axis=1)
    frame.loc["total"] = frame.sum(axis=0)
    return frame


def exposed(frame: pd.DataFrame, hidden: np.ndarray) -> list[tuple[int, int]]:
    """Hidden cells whose value the visible cells and totals pin down (LP min == max, counts >= 0)."""
    values = frame.to_numpy("float64")
    n_rows, n_cols = values.shape
    cells = [tuple(x) for x in np.argwhere(hidden)]
    index = {cell: i for i, cell in enumerate(cells)}
    equations, rhs = [], []
    lines = [[(r, c) for c in range(n_cols - 1)] + [(r, n_cols - 1)] for r in range(n_rows)]
    lines += [[(r, c) for r in range(n_rows - 1)] + [(n_rows - 1, c)] for c in range(n_cols)]
    for line in lines:
        *members, total = line
        row = np.zeros(len(cells))
        known = 0.0
        for cell in members:
            if cell in index:
                row[index[cell]] += 1
            else:
                known += values[cell]
        if total in index:
            row[index[total]] -= 1
            target = -known
        else:
            target = values[total] - known
        if row.any():
            equations.append(row)
            rhs.append(target)
    out = []
    for cell, i in index.items():
        objective = np.zeros(len(cells))
        objective[i] = 1
        low = linprog(objective, A_eq=np.array(equations), b_eq=rhs, bounds=(0, None)).fun
        high = -linprog(-objective, A_eq=np.array(equations), b_eq=rhs, bounds=(0, None)).fun
        if abs(high - low) < 1e-6:
            out.append(cell)
    return out


def test_primary_counts_one_to_five_only():
    values = np.array([0, 1, 5, 6, 5.4, 5.6, np.nan])
    assert is_small(values).tolist() == [False, True, True, False, True, False, False]
    frame = pd.DataFrame({"n": [0, 1, 5, 6, 25]})
    shown = suppress(frame, ["n"])
    assert shown["n"].tolist() == [0, SUPPRESSED, SUPPRESSED, 6, 25]


def test_naive_row_suppression_leaks_and_ours_does_not():
    frame = with_totals([[3, 10, 20], [40, 50, 60], [70, 80, 90]], columns=("a", "b", "c"))
    naive = is_small(frame.to_numpy())
    assert naive.sum() == 1
    assert exposed(frame, naive) == [(0, 0)]  # 33 - 10 - 20 = 3
    mask = suppression_mask(frame, ["a", "b", "c"], total_row="total", total_column="total").to_numpy()
    assert mask[0, 0] and mask[0, 1]  # the next smallest in the row goes too
    assert exposed(frame, mask) == []


def test_column_secondary_suppression():
    frame = with_totals([[30, 40], [2, 50], [60, 70], [80, 90]], columns=("a", "b"))
    mask = suppression_mask(frame, ["a", "b"], total_row="total", total_column="total")
    assert mask.loc["r1", "a"]
    assert mask["a"].sum() >= 2 and mask.loc["r1"].sum() >= 2
    assert exposed(frame, mask.to_numpy()) == []


def test_bridge_cell_that_a_counting_rule_misses():
    # Two blocks of small counts joined by one small cell: every row and column holds 0 or >= 2 small
    # cells, so "no line with exactly one" is satisfied, yet the bridge is (rows r0+r1) - (columns a+b).
    frame = with_totals([[2, 3, 1, 40, 50],
                         [4, 5, 60, 70, 80],
                         [90, 95, 2, 3, 85],
                         [75, 65, 4, 5, 55]], columns=("a", "b", "c", "d", "e"))
    primary = is_small(frame.to_numpy())
    body = primary[:4, :5]
    assert all(row.sum() in (0, 2, 3) for row in body) and all(col.sum() in (0, 2, 3) for col in body.T)
    assert (0, 2) in exposed(frame, primary)
    mask = suppression_mask(frame, list("abcde"), total_row="total", total_column="total")
    assert exposed(frame, mask.to_numpy()) == []
    assert mask.to_numpy().sum() > primary.sum()


def test_small_total_and_zero_cells():
    frame = with_totals([[0, 3, 0], [20, 30, 40]], columns=("a", "b", "c"))
    mask = suppression_mask(frame, ["a", "b", "c"], total_row="total", total_column="total")
    assert mask.loc["r0", "b"] and mask.loc["r0", "total"]  # the row total 3 is itself small
    assert exposed(frame, mask.to_numpy()) == []


def test_no_totals_means_primary_only_and_rates_follow_counts():
    frame = pd.DataFrame({"area": ["x", "y", "z"], "police": [3, 12, 40], "csc": [9, 4, 50],
                          "population": [1000.0, 2000.0, 3000.0]})
    frame["rate_police"] = frame["police"] / frame["population"] * 10_000
    frame["share"] = frame["police"] / (frame["police"] + frame["csc"])
    shown = suppress(frame, ["police", "csc"], rate_columns={"rate_police": "police", "share": ["police", "csc"]})
    assert shown["police"].tolist() == [SUPPRESSED, 12, 40]
    assert shown["rate_police"].iloc[0] == SUPPRESSED and shown["rate_police"].iloc[1] == pytest.approx(60.0)
    assert shown["share"].tolist()[:2] == [SUPPRESSED, SUPPRESSED] and shown["share"].iloc[2] != SUPPRESSED
    hidden = hidden_cells(shown)
    assert hidden.loc[0, "police"] and hidden.loc[1, "csc"] and not hidden.loc[2, "police"]
    assert not hidden["area"].any()
    plotted = numeric(shown, ["police"])
    assert np.isnan(plotted.loc[0, "police"]) and plotted.loc[1, "police"] == 12


def test_large_table_is_protected():
    rng = np.random.default_rng(3)
    cells = rng.choice([0, 1, 2, 3, 4, 5, 7, 12, 30], size=(12, 4), p=[.1, .1, .1, .1, .1, .1, .1, .15, .15])
    frame = with_totals(cells.tolist())
    mask = suppression_mask(frame, list("abcd"), total_row="total", total_column="total")
    assert mask.to_numpy()[is_small(frame.to_numpy())].all()
    assert exposed(frame, mask.to_numpy()) == []


def test_keep_prefers_other_columns_for_secondary_cells():
    frame = pd.DataFrame({"police": [20, 30], "csc": [8, 40], "health": [3, 50], "education": [12, 60]},
                         index=["x", "y"], dtype="float64")
    frame["total"] = frame.sum(axis=1)
    plain = suppression_mask(frame, ["police", "csc", "health", "education"], total_column="total")
    assert plain.loc["x", "csc"] and not plain.loc["x", "education"]  # the next smallest goes by default
    kept = suppression_mask(frame, ["police", "csc", "health", "education"], total_column="total",
                            keep=["police", "csc"])
    assert kept.loc["x", "education"] and not kept.loc["x", "csc"] and not kept.loc["x", "police"]
    assert kept.loc["x"].sum() == 2 and not kept.loc["y"].any()
