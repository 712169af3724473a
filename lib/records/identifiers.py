"""Identifiers where they should not be: NHS numbers, postcodes, dates of birth and names typed into free
text (``encounter_type``) or used as an agency's record id (``source_record_id``). Issue 14, item 4.

What counts (docs/INFORMATION_GOVERNANCE.md, "Identifiers in free text and record ids"):
- every value is first normalised (``normalise``): Unicode NFKC (full-width digits and letters become ASCII),
  any other Unicode decimal digit (Arabic-Indic, Devanagari...) becomes its ASCII digit, every Unicode space
  (no-break, thin, zero-width...) becomes a plain space and runs of spaces collapse to one, every dash becomes
  "-"; the checks below run on that text, so a value is never stored in clear because of how it is written;
- NHS-number-shaped: 10 digits standing alone (not part of a longer run of digits), written together or in
  3-3-4 groups with a separator between each pair of groups (space, "." or "-", mixed allowed), that pass the
  Modulus 11 check (lib.records.validate's own check; a number whose digits are all the same is a placeholder
  and does not count);
- postcode-shaped: a UK postcode pattern (outward code, optional space, digit and two letters) written in
  capitals as postcodes are, or in any case when it is in the postcode directory (ONSPD, as geocoding uses);
- date-of-birth-shaped: a whole date, day/month/year with / . or - (two- or four-digit year), year-month-day,
  "1 February 2010", "1st Feb 2010", "1-Feb-2010", "1/Feb/10" (day, month name, year) or "Feb 1, 2010",
  "February 1st 2010" (month name, day, year);
- a name: a capitalised forename and surname ("Oliver Smith", "Oliver SMITH") next to one of those (within
  ``NEAR`` characters). In a record id, text with no digit and two or more words of letters counts as a
  name on its own (agency references carry digits).

A bare name in free text with nothing else beside it is not detected: telling "Oliver Smith" from
"Strategy Meeting" needs a list of names, which the product does not hold (a known limit, in the docs).

Nothing here returns or logs the matched text: callers get the kinds found, for messages that name the
file, row and field but never the value.
"""
from __future__ import annotations

import re
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lib.records import geography
from lib.records.nhs import NHS_CODES, check_nhs_numbers, nhs_digit_checks

NEAR = 40  # characters between a name and another identifier for the name to count
KIND_WORDS = {"nhs": "an NHS number", "postcode": "a postcode", "dob": "a date of birth", "name": "a name"}
KIND_ORDER = ("nhs", "postcode", "dob", "name")
WITHHELD = "(withheld: shaped like {what})"
HASHED_ID_PREFIX = "ID-"  # a record id stored as its keyed hash (lib.records.validate)
HASHED_ID_HEX = 20  # 80 bits of the HMAC: collisions negligible at any agency's volume

_SEP = r"(?: ?[.-] ?| )"  # between NHS number groups, after normalise(): space, "." or "-"
_NHS = re.compile(rf"(?<![0-9])([0-9]{{3}})(?:({_SEP})([0-9]{{3}}){_SEP}|([0-9]{{3}}))([0-9]{{4}})(?![0-9])", re.ASCII)
_POSTCODE = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{1,2}[0-9][A-Za-z0-9]?) ?([0-9][A-Za-z]{2})(?![A-Za-z0-9])", re.ASCII)
_MONTHS = ("jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec|january|february|march|april|june|july|august|"
           "september|october|november|december")
_ORD = r"(?:st|nd|rd|th)?"
_DATES = (
    re.compile(r"(?<![0-9])(?P<d>[0-9]{1,2})[/.-](?P<m>[0-9]{1,2})[/.-](?P<y>[0-9]{4}|[0-9]{2})(?![0-9])", re.ASCII),
    re.compile(r"(?<![0-9])(?P<y>[0-9]{4})[/.-](?P<m>[0-9]{1,2})[/.-](?P<d>[0-9]{1,2})(?![0-9])", re.ASCII),
    # 1 February 2010, 1st Feb. 2010, 1-Feb-2010, 1 Feb, 2010
    re.compile(rf"(?<![0-9])(?P<d>[0-9]{{1,2}}){_ORD}\s+(?P<mn>{_MONTHS})\.?,?\s+(?P<y>[0-9]{{4}})(?![0-9])",
               re.IGNORECASE | re.ASCII),
    re.compile(rf"(?<![0-9])(?P<d>[0-9]{{1,2}}){_ORD} ?[/.-] ?(?P<mn>{_MONTHS})\.? ?[/.-] ?(?P<y>[0-9]{{4}}|[0-9]{{2}})"
               r"(?![0-9])", re.IGNORECASE | re.ASCII),
    # Feb 1, 2010; February 1st 2010
    re.compile(rf"(?<![A-Za-z])(?P<mn>{_MONTHS})\.?\s+(?P<d>[0-9]{{1,2}}){_ORD},?\s+(?P<y>[0-9]{{4}})(?![0-9])",
               re.IGNORECASE | re.ASCII),
)
_SPACE_LIKE = {"\u180e", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"}  # zero-width, not category Zs
_NAME_WORD = r"[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?"
_NAME = re.compile(rf"(?<![A-Za-z])({_NAME_WORD})\s+({_NAME_WORD}|[A-Z]{{2,}}(?:[-'][A-Z]+)?)(?![A-Za-z])")
_ID_NAME = re.compile(r"^[^0-9]*[A-Za-z]{2,}[^A-Za-z0-9]+[A-Za-z]{2,}[^0-9]*$")
# One RE2 pass over a whole column finds the few values worth checking exactly (RE2 has no lookaround, so
# the boundaries are written as groups); a value that is only an NHS-number-shaped number is checked
# vectorised (lib.records.nhs.check_nhs_numbers), the rest in Python.
# The pre-filter is a loose superset of the exact checks on ASCII text; any value holding a non-ASCII
# character (full-width or other Unicode digits, no-break or zero-width spaces, Unicode dashes) is always a
# candidate, so the Python check normalises it first.
_PREFILTER = (r"[^\x00-\x7F]"
              r"|(?:^|[^0-9])\d{3}[\s.-]{0,3}\d{3}[\s.-]{0,3}\d{4}(?:[^0-9]|$)"
              r"|(?:^|[^A-Za-z0-9])(?i:[a-z]{1,2}\d[a-z\d]?\s*\d[a-z]{2})(?:[^A-Za-z0-9]|$)"
              r"|(?:^|[^0-9])\d{1,4}\s*[/.-]\s*\d{1,2}\s*[/.-]\s*\d{2,4}(?:[^0-9]|$)"
              rf"|(?i:\d(?:st|nd|rd|th)?[\s./,-]*(?:{_MONTHS}))"
              rf"|(?i:(?:{_MONTHS})\.?\s+\d)"
              r"|^[^0-9]*[A-Za-z]{2,}[^A-Za-z0-9]+[A-Za-z]{2,}[^0-9]*$")
_ONLY_NHS_SHAPE = r"^(?:\d{10}|\d{3} \d{3} \d{4}|\d{3}-\d{3}-\d{4})$"


def normalise(text: str) -> str:
    """The text the checks run on: NFKC, every Unicode decimal digit as its ASCII digit, every Unicode space
    (and zero-width space) as one plain space (runs collapsed), every dash as "-"."""
    text = unicodedata.normalize("NFKC", str(text))
    if text.isascii():
        return re.sub(r"[ \t\r\n\f\v]{2,}", " ", re.sub(r"[\t\r\n\f\v]", " ", text))
    out = []
    for ch in text:
        if ch.isascii():
            out.append(" " if ch.isspace() else ch)
        elif ch.isspace() or ch in _SPACE_LIKE or unicodedata.category(ch) in ("Zs", "Zl", "Zp"):
            out.append(" ")
        elif ch.isdecimal():
            out.append(str(unicodedata.decimal(ch)))
        elif unicodedata.category(ch) == "Pd":
            out.append("-")
        else:
            out.append(ch)
    return re.sub(" {2,}", " ", "".join(out))


def _nhs_valid(digits: str) -> bool:
    if len(digits) != 10 or not (digits.isascii() and digits.isdigit()):
        return False  # normalise() has made every digit ASCII; anything else is not a number
    row = np.frombuffer(digits.encode("ascii"), dtype=np.uint8).astype(np.int64).reshape(1, 10) - 48
    mod11, chi_ok = nhs_digit_checks(row)
    return bool(mod11[0] and chi_ok[0]) and len(set(digits)) > 1


def _in_directory(postcodes: list[str]) -> list[bool]:
    if not postcodes:
        return []
    index, _, lsoa, _ = geography.parse_postcodes(pa.array(postcodes, pa.string()))
    return [bool(i >= 0 and lsoa[i] >= 0) for i in index]


def _spans(text: str) -> dict[str, list[tuple[int, int]]]:
    found: dict[str, list[tuple[int, int]]] = {k: [] for k in KIND_ORDER}
    for m in _NHS.finditer(text):
        if _nhs_valid(m.group(1) + (m.group(3) or m.group(4)) + m.group(5)):
            found["nhs"].append(m.span())
    shaped = list(_POSTCODE.finditer(text))
    lower = [m for m in shaped if m.group(0) != m.group(0).upper()]
    known = dict(zip((id(m) for m in lower), _in_directory([m.group(0) for m in lower])))
    for m in shaped:
        if m.group(0) == m.group(0).upper() or known.get(id(m)):
            found["postcode"].append(m.span())
    for pattern in _DATES:
        for m in pattern.finditer(text):
            parts = m.groupdict()
            day = int(parts["d"])
            month = int(parts["m"]) if parts.get("m") else 1
            year = parts["y"]
            if 1 <= day <= 31 and 1 <= month <= 12 and (len(year) == 2 or 1900 <= int(year) <= 2099):
                found["dob"].append(m.span())
    others = [s for k in ("nhs", "postcode", "dob") for s in found[k]]
    if others:
        for m in _NAME.finditer(text):
            start, end = m.span()
            if any(start - NEAR <= o_end and o_start <= end + NEAR for o_start, o_end in others):
                found["name"].append(m.span())
    return found


def kinds_in_text(text: str | None) -> list[str]:
    """The kinds of identifier found in free text, in KIND_ORDER ([] when none)."""
    if not text:
        return []
    found = _spans(normalise(text))
    return [k for k in KIND_ORDER if found[k]]


def id_kinds(value: str | None) -> list[str]:
    """The kinds of identifier a record id is shaped like ([] for an ordinary agency reference)."""
    if not value:
        return []
    text = normalise(value)
    kinds = kinds_in_text(text)
    if "name" not in kinds and _ID_NAME.match(text):
        kinds.append("name")
    return [k for k in KIND_ORDER if k in kinds]


def describe(kinds: list[str]) -> str:
    """'an NHS number, a postcode and a date of birth'."""
    words = [KIND_WORDS[k] for k in kinds]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def column_id_kinds(arr: pa.Array) -> np.ndarray:
    """Per row of a string column of record ids: '' or the kinds found joined by ',' (checked exactly only
    for the values a single RE2 pass marks as candidates)."""
    n = len(arr)
    out = np.full(n, "", dtype=object)
    if not n:
        return out
    candidate = pc.fill_null(pc.match_substring_regex(arr, _PREFILTER), False).to_numpy(zero_copy_only=False)
    number_only = pc.fill_null(pc.match_substring_regex(arr, _ONLY_NHS_SHAPE), False).to_numpy(zero_copy_only=False)
    if number_only.any():
        idx = np.flatnonzero(number_only)
        _, code, _ = check_nhs_numbers(arr.take(pa.array(idx)))
        out[idx[code == NHS_CODES.index("valid")]] = "nhs"
        candidate &= ~number_only
    idx = np.flatnonzero(candidate)
    if len(idx):
        values = arr.take(pa.array(idx)).to_pylist()
        cache: dict[str, str] = {}
        for i, value in zip(idx, values):
            if value not in cache:
                cache[value] = ",".join(id_kinds(value))
            out[i] = cache[value]
    return out


def withhold(value, *, record_id: bool = True) -> str | None:
    """A value fit to show: itself, or a note saying what it was shaped like (the value never shown)."""
    if value is None:
        return None
    kinds = id_kinds(value) if record_id else kinds_in_text(value)
    return WITHHELD.format(what=describe(kinds)) if kinds else value


def safe_node_id(node: str | None) -> str | None:
    """A linkage node id fit to show or audit: ``R:agency|code|source id`` keeps the agency and code and
    withholds an identifier-shaped source id (``N:`` nodes carry a keyed hash only)."""
    if not node or not str(node).startswith("R:"):
        return node
    parts = str(node).split("|", 2)
    if len(parts) != 3:
        return node
    return f"{parts[0]}|{parts[1]}|{withhold(parts[2])}"


def scrub(text: str | None) -> str | None:
    """Free text with every NHS-number- and postcode-shaped part replaced (for the audit trail: subjects and
    details come from file names, area codes and record ids, where a date is usually not a birth date)."""
    if not text:
        return text
    text = normalise(text)  # the audit keeps the normalised text (spans are found on it)
    found = _spans(text)
    spans = sorted(found["nhs"] + found["postcode"])
    if not spans:
        return text
    out, last = [], 0
    for start, end in spans:
        if start < last:
            continue
        out.append(text[last:start])
        out.append("[withheld]")
        last = end
    out.append(text[last:])
    return "".join(out)
