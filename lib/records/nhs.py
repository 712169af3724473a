"""NHS numbers checked on whole columns: format, Modulus 11 check digit, the Scottish CHI date rule, placeholders.

``check_nhs_numbers`` agrees with ``nhs_number.is_valid`` (tests/test_records.py checks it against the
library) and sets apart numbers whose digits are all the same. Used by the record validator
(``lib.records.validate``) and by the identifier detector (``lib.records.identifiers``).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lib.records import geography

_NHS_FORMAT = r"^(\d{10}|\d{3} \d{3} \d{4}|\d{3}-\d{3}-\d{4})$"
_WEIGHTS = np.arange(10, 1, -1, dtype=np.int64)
_POWERS = 10 ** np.arange(9, -1, -1, dtype=np.int64)
_DAYS_IN_MONTH = np.array([0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
NHS_CODES = ("valid", "missing", "nhs_length", "nhs_characters", "nhs_scientific", "nhs_format",
             "nhs_check_digit", "nhs_chi_date", "nhs_placeholder")
NHS_REASONS = {
    "nhs_characters": "NHS number contains letters or other characters; it must be 10 digits",
    "nhs_scientific": ("NHS number was turned into scientific notation by a spreadsheet (e.g. 9.43E+09); "
                       "format the column as text and export again"),
    "nhs_format": "NHS number digits are not grouped as 10 digits or 3-3-4",
    "nhs_check_digit": "NHS number fails the Modulus 11 check digit (mistyped?)",
    "nhs_chi_date": "NHS number is in the Scottish CHI range but does not start with a date (DDMMYY)",
    "nhs_placeholder": "NHS number is a placeholder (all digits the same), not a real number",
}


def nhs_digit_checks(digits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Modulus 11 passes, CHI date rule passes) for an (n, 10) digit matrix, as nhs_number.is_valid."""
    check = 11 - (digits[:, :9] @ _WEIGHTS) % 11
    check = np.where(check == 11, 0, check)
    mod11 = check == digits[:, 9]  # a check value of 10 never equals a digit
    number = digits @ _POWERS
    chi = (number >= 100_000_000) & (number <= 3_112_999_999)
    chi_ok = np.ones(len(digits), dtype=bool)
    if chi.any():
        dd = digits[:, 0] * 10 + digits[:, 1]
        mm = digits[:, 2] * 10 + digits[:, 3]
        yy = digits[:, 4] * 10 + digits[:, 5]
        year = np.where(yy < 69, 2000 + yy, 1900 + yy)  # strptime's %y rule
        leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
        mclip = np.clip(mm, 0, 12)
        days = _DAYS_IN_MONTH[mclip] - ((mclip == 2) & ~leap)
        chi_ok = ~chi | ((mm >= 1) & (mm <= 12) & (dd >= 1) & (dd <= days))
    return mod11, chi_ok


def check_nhs_numbers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised NHS number check of a string array (nulls = missing).

    Returns per row: the number as int64 (-1 unless valid), an index into NHS_CODES, and the digit
    count (used in messages). 'valid' agrees with ``nhs_number.is_valid``; numbers it accepts whose
    digits are all the same are then set apart as 'nhs_placeholder'.
    """
    n = len(arr)
    present = pc.is_valid(arr).to_numpy(zero_copy_only=False)
    formatted = pc.fill_null(pc.match_substring_regex(arr, _NHS_FORMAT), False).to_numpy(zero_copy_only=False)
    code = np.where(present, NHS_CODES.index("nhs_characters"), NHS_CODES.index("missing")).astype(np.int8)
    number = np.full(n, -1, dtype=np.int64)
    ndigits = np.zeros(n, dtype=np.int64)
    if formatted.any():
        idx = np.flatnonzero(formatted)
        digits_text = pc.replace_substring(arr.filter(pa.array(formatted)), pattern=" ", replacement="")
        digits_text = pc.replace_substring(digits_text, pattern="-", replacement="")
        digits = (geography.fixed_width_bytes(digits_text, 10).astype(np.int64) - 48)
        mod11, chi_ok = nhs_digit_checks(digits)
        same = (digits == digits[:, :1]).all(axis=1)
        ok = mod11 & chi_ok
        code[idx] = np.select([ok & same, ok, ~mod11], [NHS_CODES.index("nhs_placeholder"), NHS_CODES.index("valid"),
                                                        NHS_CODES.index("nhs_check_digit")],
                              NHS_CODES.index("nhs_chi_date"))
        good = ok & ~same
        number[idx[good]] = (digits @ _POWERS)[good]
    other = present & ~formatted
    if other.any():
        idx = np.flatnonzero(other)
        sub = arr.filter(pa.array(other))
        sci = pc.match_substring_regex(sub, r"^\d(\.\d+)?[eE][+]?\d+$").to_numpy(zero_copy_only=False)
        stripped = pc.replace_substring_regex(sub, pattern=r"[\s\-.]", replacement="")
        only_digits = pc.match_substring_regex(stripped, r"^\d+$").to_numpy(zero_copy_only=False)
        length = pc.utf8_length(stripped).to_numpy(zero_copy_only=False)
        code[idx[sci]] = NHS_CODES.index("nhs_scientific")
        code[idx[only_digits & ~sci & (length != 10)]] = NHS_CODES.index("nhs_length")
        code[idx[only_digits & ~sci & (length == 10)]] = NHS_CODES.index("nhs_format")
        ndigits[idx] = length
    return number, code, ndigits


def nhs_is_valid(values) -> np.ndarray:
    """Boolean array: valid exactly as ``nhs_number.is_valid`` would say (placeholders included)."""
    arr = pa.array([None if v is None else str(v).strip() for v in values], type=pa.string())
    _, code, _ = check_nhs_numbers(arr)
    return np.isin(code, [NHS_CODES.index("valid"), NHS_CODES.index("nhs_placeholder")])
