"""CSV that is safe to open in a spreadsheet.

A text cell beginning with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return) is run as a formula
by Excel, LibreOffice and Google Sheets (OWASP "CSV injection"); such cells get a leading ``'`` so they
show as text, and numbers stay numbers. The neutralisation itself lives in ``lib.access.safety`` (one
implementation, shared with the audit-trail export); this module is the exports' way of writing CSV.
"""
from __future__ import annotations

import pandas as pd

from lib.access.safety import FORMULA_START as TRIGGERS
from lib.access.safety import csv_safe_frame as safe_frame
from lib.access.safety import neutralise_cell as neutralise

__all__ = ["TRIGGERS", "neutralise", "safe_frame", "to_csv_bytes"]


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """UTF-8 CSV (with a byte-order mark, so spreadsheets read accents) of the neutralised frame."""
    return safe_frame(frame).to_csv(index=False).encode("utf-8-sig")
