"""Confidence intervals equal hand-computed values (Wilson for proportions, Byar for counts and rates)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest, chi2

from lib.measures import intervals

Z = 1.959963984540054  # the 97.5% standard normal quantile


def test_wilson_equals_the_hand_computed_interval():
    # k = 5, n = 20: p = 0.25
    p, n = 0.25, 20
    denom = 1 + Z * Z / n
    centre = (p + Z * Z / (2 * n)) / denom
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / denom
    lower, upper = intervals.wilson(5, 20)
    assert lower == pytest.approx(centre - half, abs=1e-12) and upper == pytest.approx(centre + half, abs=1e-12)
    assert lower == pytest.approx(0.111862, abs=1e-6) and upper == pytest.approx(0.468701, abs=1e-6)
    witness = binomtest(5, 20).proportion_ci(confidence_level=0.95, method="wilson")
    assert (lower, upper) == pytest.approx((witness.low, witness.high), abs=1e-9)


def test_wilson_edges_and_arrays():
    lower, upper = intervals.wilson([0, 10, 0], [10, 10, 0])
    assert lower[0] == 0 and upper[0] == pytest.approx(Z * Z / 10 / (1 + Z * Z / 10), abs=1e-12)
    assert upper[1] == pytest.approx(1, abs=1e-12) and lower[1] == pytest.approx(1 - upper[0], abs=1e-12)
    assert np.isnan(lower[2]) and np.isnan(upper[2])
    with pytest.raises(ValueError):
        intervals.wilson(11, 10)


def test_byar_equals_the_hand_computed_interval():
    o = 25
    lower = o * (1 - 1 / (9 * o) - Z / (3 * math.sqrt(o))) ** 3
    upper = (o + 1) * (1 - 1 / (9 * (o + 1)) + Z / (3 * math.sqrt(o + 1))) ** 3
    got = intervals.byar(25)
    assert got == pytest.approx((lower, upper), abs=1e-12)
    assert got == pytest.approx((16.1743, 36.9065), abs=1e-4)
    # Byar approximates the exact Poisson interval closely
    exact = (chi2.ppf(0.025, 2 * o) / 2, chi2.ppf(0.975, 2 * (o + 1)) / 2)
    assert got == pytest.approx(exact, rel=0.005)
    assert intervals.byar(0) == pytest.approx((0.0, (1 - 1 / 9 + Z / 3) ** 3), abs=1e-12)


def test_rate_per_10000_children():
    value, lower, upper = intervals.rate(25, 50_000)
    byar_lower, byar_upper = intervals.byar(25)
    assert value == pytest.approx(5.0)
    assert lower == pytest.approx(byar_lower / 5) and upper == pytest.approx(byar_upper / 5)
    value, lower, upper = intervals.rate([4], [0])
    assert np.isnan(value[0]) and np.isnan(lower[0])


def test_significance_against_a_comparator():
    lower, upper = intervals.byar([40, 10, 20])
    verdict = intervals.significance(lower, upper, [20, 20, 20])
    assert verdict.tolist() == ["higher", "lower", "similar"]
    assert intervals.significance([np.nan], [1], [0.5]).tolist() == ["not compared"]
