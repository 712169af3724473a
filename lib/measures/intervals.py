"""95% confidence intervals for the area profile's indicators (issue 17): Wilson for proportions, Byar for
counts and rates.

- **Wilson score interval** for a proportion k/n (Wilson, E. B. (1927), "Probable inference, the law of
  succession, and statistical inference", JASA 22: 209-212). With z the standard normal quantile:
  centre = (p + z²/2n) / (1 + z²/n), half-width = z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n). It stays inside
  [0, 1] and behaves at k = 0 and k = n, which is why public-health profiles use it for proportions.
- **Byar's approximation** to the exact Poisson interval of an observed count O (Breslow, N. E. and Day,
  N. E. (1987), "Statistical Methods in Cancer Research, vol. II", IARC, p. 69):
  lower = O·(1 - 1/(9O) - z/(3·sqrt(O)))³ (0 when O = 0), upper = (O+1)·(1 - 1/(9(O+1)) + z/(3·sqrt(O+1)))³.
  A rate per ``per`` (10,000 children) is the count's interval times per / denominator (the denominator, an
  official population, is taken as known).

scipy supplies the normal quantile (and, in the tests, scipy.stats.binomtest's Wilson interval and the exact
Poisson interval as a second witness); statsmodels is not a dependency of this project. The functions are
vectorised: scalars or arrays in, arrays (or floats) out; an empty denominator gives NaN, never an error.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import norm

LEVEL = 0.95


def _z(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"confidence level {level} must lie strictly between 0 and 1")
    return float(norm.ppf(0.5 + level / 2))


def _out(values):
    values = np.asarray(values, dtype=float)
    return float(values) if values.ndim == 0 else values


def wilson(k, n, level: float = LEVEL):
    """(lower, upper) Wilson score limits of the proportion k/n; NaN where n is 0."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    if np.any(k < 0) or np.any(k > n):
        raise ValueError("a proportion needs 0 <= k <= n")
    z = _z(level)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
        lower = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
        upper = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    return _out(lower), _out(upper)


def byar(count, level: float = LEVEL):
    """(lower, upper) Byar limits of an observed Poisson count."""
    o = np.asarray(count, dtype=float)
    if np.any(o < 0):
        raise ValueError("a count cannot be negative")
    z = _z(level)
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = np.where(o > 0, o * (1 - 1 / (9 * o) - z / (3 * np.sqrt(o))) ** 3, 0.0)
        o1 = o + 1
        upper = o1 * (1 - 1 / (9 * o1) + z / (3 * np.sqrt(o1))) ** 3
    return _out(np.maximum(lower, 0.0)), _out(upper)


def rate(count, denominator, per: float = 10_000, level: float = LEVEL):
    """(rate, lower, upper) per ``per`` of the denominator, limits by Byar; NaN where the denominator is 0."""
    d = np.asarray(denominator, dtype=float)
    lower, upper = byar(count, level)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(d > 0, per / d, np.nan)
        value = np.asarray(count, dtype=float) * scale
    return _out(value), _out(np.asarray(lower) * scale), _out(np.asarray(upper) * scale)


def proportion(k, n, level: float = LEVEL):
    """(proportion, lower, upper) with Wilson limits; NaN where n is 0."""
    k_arr, n_arr = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(n_arr > 0, k_arr / n_arr, np.nan)
    lower, upper = wilson(k, n, level)
    return _out(value), lower, upper


def significance(value_lower, value_upper, comparator) -> np.ndarray:
    """Fingertips-style comparison of an area's interval with a comparator value: ``higher`` (the whole interval
    above), ``lower`` (below), ``similar`` (overlaps), ``not compared`` (no interval)."""
    lo = np.atleast_1d(np.asarray(value_lower, dtype=float))
    hi = np.atleast_1d(np.asarray(value_upper, dtype=float))
    c = np.broadcast_to(np.asarray(comparator, dtype=float), lo.shape)
    out = np.where(lo > c, "higher", np.where(hi < c, "lower", "similar"))
    return np.where(np.isnan(lo) | np.isnan(hi) | np.isnan(c), "not compared", out)
