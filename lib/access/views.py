"""What an aggregate-only role may see of a table of counts (lib.measures.suppression applied per role).

``aggregate_view(frame, counts, role=...)`` returns the table to show or export (counts 1-5 as ``c``,
with secondary suppression against the column totals the page shows elsewhere, and derived shares
hidden with their counts) and ``visible_rows(...)``, the rows whose every listed count is shown, which
maps and sentences are drawn from. For the safeguarding lead both are the table unchanged.

No page, export or command-line twin uses this any more: every count below the lead is published by the
disclosure service (lib.disclosure.service: cell key perturbation, docs/DISCLOSURE.md). It is kept as the
per-table method that service replaced, so the attack tests (tests/test_attack.py, tests/merton_store.py) can show
the old method gives hidden counts back by subtraction while the service does not.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from lib.access.roles import aggregates_suppressed
from lib.measures import suppression

_TOTAL = "__total__"


def aggregate_view(frame: pd.DataFrame, counts: Iterable[str], *, role: str,
                   rates: Mapping[str, str | Iterable[str]] | None = None, column_totals: bool = True,
                   total_column: str | None = None) -> pd.DataFrame:
    """The table for ``role``: unchanged for the lead; otherwise suppressed (``c``). With ``column_totals``
    each count column is treated as summing to a total shown elsewhere (national figures), so no column is
    left with a single hidden cell."""
    counts = [c for c in counts if c in frame.columns]
    if not aggregates_suppressed(role) or frame.empty or not counts:
        return frame
    rates = {k: v for k, v in (rates or {}).items() if k in frame.columns}
    if not column_totals:
        shown = suppression.suppress(frame, counts, rate_columns=rates)
        for column in counts:
            shown[column] = shown[column].astype("str")
        return _rates_as_text(shown, rates)
    body = frame.reset_index(drop=True)
    total = body[counts].apply(pd.to_numeric, errors="coerce").sum().to_frame().T
    total.index = [_TOTAL]
    work = pd.concat([body.astype({c: "float64" for c in counts}), total])
    shown = suppression.suppress(work, counts, total_row=_TOTAL, total_column=total_column,
                                 rate_columns=rates).drop(index=_TOTAL)
    shown.index = frame.index
    for column in counts:  # text, so one column can hold numbers and c (Arrow needs one type per column)
        integer = pd.api.types.is_integer_dtype(frame[column])
        shown[column] = shown[column].map(
            lambda v, integer=integer: v if v == suppression.SUPPRESSED else (f"{int(v)}" if integer else f"{v:g}")
        ).astype("str")
    return _rates_as_text(shown, rates)


def _rates_as_text(shown: pd.DataFrame, rates) -> pd.DataFrame:
    for column in rates or {}:
        if shown[column].astype("object").eq(suppression.SUPPRESSED).any():
            shown[column] = shown[column].map(
                lambda v: v if isinstance(v, str) else ("" if pd.isna(v) else f"{v:.6g}")).astype("str")
    return shown


def visible_rows(frame: pd.DataFrame, shown: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """Rows of ``frame`` none of whose ``columns`` is hidden in ``shown`` (for maps and sentences)."""
    if shown is frame:
        return frame
    hidden = np.zeros(len(frame), dtype=bool)
    for column in columns:
        if column in shown.columns:
            hidden |= (shown[column].astype("object") == suppression.SUPPRESSED).to_numpy()
    return frame[~hidden]


def count_text(value, *, role: str) -> str:
    """A single count as text for ``role``: ``c`` for 1-5 when aggregates are suppressed."""
    if aggregates_suppressed(role) and bool(suppression.is_small([value])[0]):
        return suppression.SUPPRESSED
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.1f}"
