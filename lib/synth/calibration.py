"""Calibration of the synthetic generator to published volumes (issue 17).

- **Children per area** follow the official child population (``lib.measures.population``: ONS mid-year
  estimates, 0-17, per LSOA, scaled in England to the mid-2024 authority totals).
- **Exploited children's homes** follow the DfE children-in-need table C3 (child sexual exploitation identified
  at the end of assessment, ``lib.measures.published.dfe_c3``): an authority's weight is its published count
  summed over the run's financial years, shared among its LSOAs by their children. A year whose cell carries
  a symbol (c, x, u, z, k, low) takes the authority's mean over its other published years; an authority
  with no published figure at all (the 22 Welsh authorities: C3 covers England only) takes England's rate
  per child times its children.
- **Years**: an exploited child's time with agencies starts in a financial year drawn by its authority's
  published counts per year (``year_shares``); years outside 2017-18 .. 2024-25 take the authority's mean.

Everything else (agency mix, recording rates) stays in ``SynthConfig``; docs/SYNTHETIC_DATA.md gives the
reasoning for each number.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from lib.synth.config import SynthConfig
from lib.synth.geography import Geography


@dataclass(frozen=True)
class HomePlan:
    weights_other: np.ndarray  # per LSOA: children (0-17) inside the allowed area, else 0
    weights_cse: np.ndarray  # per LSOA: children x the home authority's published CSE count per child
    periods: tuple[str, ...]  # financial years of the run, "2023-24"
    year_offsets: np.ndarray  # first day of each period, days after cfg.start_date (>= 0)
    year_ends: np.ndarray  # last day of each period, days after cfg.start_date (<= span)
    year_shares: np.ndarray  # [len(geo.codes), len(periods)]: published share of each year, rows sum to 1
    published: np.ndarray  # [len(geo.codes)]: published count over the run's years (NaN: no figure)


def financial_years(start: dt.date, end: dt.date) -> list[tuple[str, dt.date, dt.date]]:
    """The financial years (April-March, as DfE publishes) a run overlaps: (label, first day, last day)."""
    first = start.year - (start.month < 4)
    last = end.year - (end.month < 4)
    return [(f"{y}-{(y + 1) % 100:02d}", max(start, dt.date(y, 4, 1)), min(end, dt.date(y + 1, 3, 31)))
            for y in range(first, last + 1)]


def home_plan(cfg: SynthConfig, geo: Geography, mask: np.ndarray) -> HomePlan:
    """Home weights and year shares of a calibrated run (``mask``: LSOAs children may live in)."""
    from lib.measures import published

    years = financial_years(cfg.start_date, cfg.end_date)
    periods = tuple(label for label, _, _ in years)
    children = np.where(geo.usable & (geo.lsoa_utla >= 0), geo.lsoa_children, 0.0)
    utla = np.where(geo.lsoa_utla >= 0, geo.lsoa_utla, 0)
    n_codes = len(geo.codes)
    code_children = np.bincount(utla, weights=children, minlength=n_codes)

    c3 = published.c3_weights(periods)
    index = {code: i for i, code in enumerate(geo.codes.tolist())}
    by_year = np.full((n_codes, len(periods)), np.nan)
    for code, row in c3.iterrows():
        if code in index:
            by_year[index[code]] = row.to_numpy(float)
    total = by_year.sum(axis=1)
    known = np.isfinite(total) & (code_children > 0)
    england_rate = total[known].sum() / code_children[known].sum() if known.any() else 1.0
    rate = np.where(known, np.divide(total, code_children, out=np.zeros(n_codes), where=code_children > 0),
                    england_rate)
    national = np.nansum(by_year[known], axis=0)
    national = national / national.sum() if national.sum() > 0 else np.full(len(periods), 1 / len(periods))
    shares = np.where(known[:, None] & (total[:, None] > 0),
                      by_year / np.where(total > 0, total, 1)[:, None], national[None, :])
    inside = np.where(mask, children, 0.0)
    start = cfg.start_date
    return HomePlan(weights_other=inside, weights_cse=inside * rate[utla], periods=periods,
                    year_offsets=np.array([(a - start).days for _, a, _ in years], dtype=np.int64),
                    year_ends=np.array([(b - start).days for _, _, b in years], dtype=np.int64),
                    year_shares=np.nan_to_num(shares, nan=1 / len(periods)),
                    published=np.where(known, total, np.nan))
