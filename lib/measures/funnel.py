"""Funnel limits for a proportion, and an interval for a log ratio of two counts.

Funnel plot (Spiegelhalter, "Funnel plots for comparing institutional performance", Statistics in
Medicine 2005, appendix A.1.1): for an area with ``n`` = P + L and a national proportion ``p0``, the
limits of P/n at coverage ``c`` are exact binomial quantiles, interpolated so the limits are smooth in
``n``: for tail probability ``q`` ((1 − c)/2 below, (1 + c)/2 above),

    r  = smallest r with F(r) ≥ q          (F the Binomial(n, p0) CDF; scipy.stats.binom.ppf)
    α  = (F(r) − q) / (F(r) − F(r − 1))
    limit = (r − α) / n

No normal approximation is used. ``LEVELS`` are the 95% and 99.8% limits (about 2 and 3 standard errors).

Log ratio of two counts P and L: log((P + ½) / (L + ½)) with standard error sqrt(1/(P + ½) + 1/(L + ½))
(counts treated as independent Poisson; ½ added so zero counts stay finite), 95% interval ± 1.96 SE.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

LEVELS: dict[str, float] = {"95": 0.95, "998": 0.998}
LEVEL_TITLES = {"95": "95%", "998": "99.8%"}


def binomial_limit(n, p0: float, q: float) -> np.ndarray:
    """The interpolated exact binomial ``q`` quantile of X/n, X ~ Binomial(n, p0) (NaN where n < 1)."""
    n = np.atleast_1d(np.asarray(n, dtype="float64"))
    out = np.full(n.shape, np.nan)
    ok = n >= 1
    if not ok.any():
        return out
    nn = np.round(n[ok])
    r = stats.binom.ppf(q, nn, p0)
    upper = stats.binom.cdf(r, nn, p0)
    lower = stats.binom.cdf(r - 1, nn, p0)
    step = upper - lower
    alpha = np.divide(upper - q, step, out=np.zeros_like(step), where=step > 0)
    out[ok] = np.clip((r - alpha) / nn, 0.0, 1.0)
    return out


def limits(n, p0: float) -> pd.DataFrame:
    """``lower_95``, ``upper_95``, ``lower_998``, ``upper_998`` for each n."""
    n = np.atleast_1d(np.asarray(n, dtype="float64"))
    out = {}
    for key, coverage in LEVELS.items():
        out[f"lower_{key}"] = binomial_limit(n, p0, (1 - coverage) / 2)
        out[f"upper_{key}"] = binomial_limit(n, p0, (1 + coverage) / 2)
    return pd.DataFrame(out)


def curve(p0: float, n_max: float, points: int = 120) -> pd.DataFrame:
    """Limits along n from 1 to n_max (log-spaced integers) for drawing the funnel."""
    n = np.unique(np.round(np.geomspace(1, max(float(n_max), 2.0) * 1.05, points)))
    return pd.concat([pd.DataFrame({"n": n}), limits(n, p0)], axis=1)


def verdict(share: float, n: float, p0: float) -> str:
    """``"above 99.8%"``, ``"above 95%"``, ``"within"``, ``"below 95%"``, ``"below 99.8%"``, or ``"no data"``."""
    if not n or n < 1 or share is None or np.isnan(share):
        return "no data"
    lim = limits([n], p0).iloc[0]
    if share > lim["upper_998"]:
        return "above 99.8%"
    if share < lim["lower_998"]:
        return "below 99.8%"
    if share > lim["upper_95"]:
        return "above 95%"
    if share < lim["lower_95"]:
        return "below 95%"
    return "within"


def verdicts(share: np.ndarray, lim: pd.DataFrame) -> np.ndarray:
    """Vectorised ``verdict`` given shares and a frame of limits (``limits``) on the same rows."""
    share = np.asarray(share, dtype="float64")
    out = np.full(share.shape, "within", dtype=object)
    out[share > lim["upper_95"].to_numpy()] = "above 95%"
    out[share < lim["lower_95"].to_numpy()] = "below 95%"
    out[share > lim["upper_998"].to_numpy()] = "above 99.8%"
    out[share < lim["lower_998"].to_numpy()] = "below 99.8%"
    out[np.isnan(share) | np.isnan(lim["upper_95"].to_numpy())] = "no data"
    return out


def log_ratio(a, b, z: float = 1.959964) -> pd.DataFrame:
    """``log_ratio``, ``log_ratio_low``, ``log_ratio_high`` of counts a / b (see module docstring)."""
    a = np.asarray(a, dtype="float64") + 0.5
    b = np.asarray(b, dtype="float64") + 0.5
    value = np.log(a / b)
    se = np.sqrt(1 / a + 1 / b)
    return pd.DataFrame({"log_ratio": value, "log_ratio_low": value - z * se, "log_ratio_high": value + z * se})
