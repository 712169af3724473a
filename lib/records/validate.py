"""Validate an extract, vectorised: per-row issues (file, row, field, reason) and the rows that are kept.

Policy (``schema.CHECKS`` lists every check, its reason code and action):
- Fields that define the encounter (record id, agency type and code, encounter date, CSE flag) must be
  right, or the row is rejected (quarantined: reported, not stored).
- Identifier fields (NHS number, names, date of birth, sex, postcodes) that are wrong are dropped and
  reported; the row is kept, because the contact still happened and still counts. An invalid NHS number
  is stored as ``nhs_status = 'invalid'`` without a hash.
- A date of birth after today or after the encounter, or an age over 25, rejects the row (either date
  may be the wrong one, and adults do not belong here).
- Cells that look hostile or broken (spreadsheet formulas, error values, control characters, fields
  over the column's length limit, rows with the wrong number of fields) reject the row.
- Messages never repeat the value of an identifier.

Speed: columns with few distinct values (agency, dates, names, sex, flags) are dictionary-encoded and
checked once per distinct value; the others (record ids, NHS numbers, postcodes) are checked with
pyarrow kernels and numpy on whole columns (NHS Modulus 11 on a digit matrix, postcodes as base-37
integers found by binary search). No Python loop runs per row.
"""
from __future__ import annotations

import re
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import date

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lib.geo import lookup, successors
from lib.records import geography, identifiers, schema
from lib.records.extract import Extract, ExtractError, read_extract  # noqa: F401 (re-exported)
from lib.records.nhs import (  # noqa: F401 (re-exported: the NHS number checks were defined here)
    NHS_CODES,
    NHS_REASONS,
    check_nhs_numbers,
    nhs_digit_checks,
    nhs_is_valid,
)

ISSUE_COLUMNS = ["file", "row", "field", "code", "reason", "action"]
HIGH_CARDINALITY = ("source_record_id", "nhs_number", "home_postcode", "encounter_postcode")
_NULL = pa.scalar(None, pa.string())


@dataclass
class Validated:
    filename: str
    table: pa.Table  # kept rows: normalised clear values + geography (never leaves the ingest step)
    issues: pd.DataFrame  # file, row, field, code, reason, action
    rows_read: int
    blank_rows: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, for the benchmark

    @property
    def good(self) -> pd.DataFrame:
        """The kept rows as pandas (dictionary-encoded columns decoded)."""
        columns = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in self.table.columns]
        return pa.table(columns, names=self.table.column_names).to_pandas()

    def __iter__(self):  # good, issues = validate(...)
        return iter((self.good, self.issues))

    @property
    def rows_rejected(self) -> int:
        return self.rows_read - self.table.num_rows


class _Clock:
    def __init__(self):
        self.laps: dict[str, float] = {}
        self._t = time.perf_counter()
        self._name = "setup"

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[self._name] = self.laps.get(self._name, 0.0) + now - self._t
        self._t, self._name = now, name


def empty_issue_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype="int64" if c == "row" else "str") for c in ISSUE_COLUMNS})


class _Issues:
    def __init__(self, n: int, rows: np.ndarray):
        self.rows = rows
        self.parts: list[pd.DataFrame] = []
        self.rejected = np.zeros(n, dtype=bool)

    def add(self, mask: np.ndarray, field_name: str, code: str, reason, action: str) -> None:
        """reason: a string, a per-row array, or a callable(positions) -> reasons for those rows only."""
        positions = np.flatnonzero(mask)
        if not len(positions):
            return
        if isinstance(reason, str):
            reasons = np.full(len(positions), reason, dtype=object)
        elif callable(reason):
            reasons = np.asarray(reason(positions), dtype=object)
        else:
            reasons = np.asarray(reason, dtype=object)[positions]
        self.parts.append(pd.DataFrame({"pos": positions, "field": field_name, "code": code, "reason": reasons,
                                        "action": action}))
        if action == schema.ROW_REJECTED:
            self.rejected[positions] = True

    def frame(self, filename: str) -> pd.DataFrame:
        if not self.parts:
            return empty_issue_frame()
        out = pd.concat(self.parts, ignore_index=True)
        out.insert(0, "row", self.rows[out.pop("pos").to_numpy()])
        out.insert(0, "file", filename)
        return out[ISSUE_COLUMNS].astype({"field": "str", "code": "str", "reason": "str", "action": "str"})


def _show(value: str, limit: int = 40) -> str:
    """A non-identifying value made safe to show in a message."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(value))
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _lookup(results: list, codes: np.ndarray, missing, dtype=object) -> np.ndarray:
    """Per-row values from per-distinct-value results (codes -1 = missing)."""
    table = np.empty(len(results) + 1, dtype=dtype)
    for i, r in enumerate(results):
        table[i] = r
    table[len(results)] = missing
    return table[np.where(codes < 0, len(results), codes)]


# -- columns ----------------------------------------------------------------------------------------------

class _Coded:
    """A low-cardinality column: per-row codes (-1 = blank) into a list of distinct trimmed values."""

    def __init__(self, arr: pa.Array):
        encoded = arr.dictionary_encode() if len(arr) else pa.DictionaryArray.from_arrays(
            pa.array([], pa.int32()), pa.array([], pa.string()))
        values = encoded.dictionary.to_pylist()
        clean = [_clean(v) for v in values]
        distinct: dict[str, int] = {}
        remap = np.full(len(clean) + 1, -1, dtype=np.int32)
        for i, v in enumerate(clean):
            if v is not None:
                remap[i] = distinct.setdefault(v, len(distinct))
        raw = pc.fill_null(encoded.indices, len(clean)).to_numpy(zero_copy_only=False).astype(np.int64)
        self.codes = remap[raw]
        self.uniques = list(distinct)

    def blank_out(self, mask: np.ndarray) -> None:
        if mask.any():
            self.codes = np.where(mask, -1, self.codes)

    def text(self) -> pa.Array:
        """Per-row text (null for blank)."""
        return pa.array(self.uniques, pa.string()).take(pa.array(self.codes, mask=self.codes < 0))


def _clean(value):
    """Trimmed text, or None for blank cells and the usual missing-value markers."""
    if value is None:
        return None
    value = value.strip()
    return None if value.lower() in schema.MISSING_MARKERS else value


def _clean_array(arr: pa.Array) -> pa.Array:
    trimmed = pc.utf8_trim_whitespace(arr)
    short = np.flatnonzero(pc.fill_null(pc.less_equal(pc.binary_length(trimmed), 5), True)
                           .to_numpy(zero_copy_only=False))
    if not len(short):
        return trimmed
    values = pc.utf8_lower(trimmed.take(pa.array(short)))
    blank = pc.fill_null(pc.is_in(values, value_set=pa.array(sorted(schema.MISSING_MARKERS))), True)
    mask = np.zeros(len(arr), dtype=bool)
    mask[short[blank.to_numpy(zero_copy_only=False)]] = True
    return pc.if_else(pa.array(mask), _NULL, trimmed) if mask.any() else trimmed


def _string_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets of each value, n + 1; the data bytes) of a string array, without copying."""
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset: arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    return offsets, (np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8))


# -- cell-level checks ---------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# = or @ anywhere first; + or - first unless the cell is just a number ("-2+3+cmd|…" is a formula, "-2.5" is not)
_FORMULA = re.compile(r"^(=|@|[+\-](?![0-9 .,]*$))")
_SHEET_ERROR = re.compile(r"^#(REF!|VALUE!|DIV/0!|NAME\?|NUM!|NULL!|SPILL!|CALC!|GETTING_DATA|FIELD!|BLOCKED!|"
                          r"CONNECT!)$", re.IGNORECASE)

CELL_REASONS = {
    "control_character": "contains a line break, tab or other control character",
    "formula": "looks like a spreadsheet formula (starts with =, +, - or @); formulas are not accepted",
    "spreadsheet_error": "holds a spreadsheet error value (such as #REF! or #VALUE!) instead of data",
}


def _cell_problem(value: str, limit: int) -> str:
    if len(value) > limit:
        return "too_long"
    if _CONTROL.search(value):
        return "control_character"
    if _SHEET_ERROR.match(value):
        return "spreadsheet_error"
    if _FORMULA.match(value):
        return "formula"
    return ""


def _report_cells(issues: _Issues, name: str, problem: np.ndarray, lengths, limit: int) -> np.ndarray:
    """Add issues for per-row problem codes ('' = fine); returns the mask of bad cells."""
    bad = problem != ""
    if not bad.any():
        return bad
    issues.add(problem == "too_long", name, "too_long",
               lambda pos: [f"field is {k:,} characters long; at most {limit} allowed" for k in lengths(pos)],
               schema.ROW_REJECTED)
    for code, reason in CELL_REASONS.items():
        issues.add(problem == code, name, code, reason, schema.ROW_REJECTED)
    return bad


def _check_coded_cells(issues: _Issues, name: str, col: _Coded) -> np.ndarray:
    limit = schema.MAX_LENGTH[name]
    problems = [_cell_problem(u, limit) for u in col.uniques]
    if not any(problems):
        return np.zeros(len(col.codes), dtype=bool)
    problem = _lookup(problems, col.codes, "")
    sizes = np.array([len(u) for u in col.uniques] + [0])
    bad = _report_cells(issues, name, problem, lambda pos: sizes[col.codes[pos]], limit)
    col.blank_out(bad)
    return bad


_FORMULA_START = np.zeros(256, dtype=bool)
_FORMULA_START[[ord(c) for c in "=@+-#"]] = True


def _check_array_cells(issues: _Issues, name: str, arr: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Cell checks on a whole column from its raw buffers: control bytes, first characters that could
    start a formula or error value, byte lengths over the limit; candidates are then checked exactly."""
    limit = schema.MAX_LENGTH[name]
    n = len(arr)
    offsets, data = _string_buffers(arr)
    starts, ends = offsets[:-1], offsets[1:]
    nonempty = ends > starts
    suspect = (ends - starts) > limit
    first = np.zeros(n, dtype=np.uint8)
    first[nonempty] = data[starts[nonempty]]
    suspect |= _FORMULA_START[first] & nonempty
    used = data[offsets[0]: offsets[-1]] if n else data[:0]
    control = np.flatnonzero((used < 32) | (used == 127))
    if len(control):
        suspect[np.searchsorted(offsets, control + offsets[0], side="right") - 1] = True
    suspect &= pc.is_valid(arr).to_numpy(zero_copy_only=False)
    candidates = np.flatnonzero(suspect)
    if not len(candidates):
        return arr, np.zeros(n, dtype=bool)
    problem = np.full(n, "", dtype=object)
    values = arr.take(pa.array(candidates)).to_pylist()
    problem[candidates] = [_cell_problem(v, limit) for v in values]
    lengths = np.zeros(n, dtype=np.int64)
    lengths[candidates] = [len(v) for v in values]
    bad = _report_cells(issues, name, problem, lambda pos: lengths[pos], limit)
    return (pc.if_else(pa.array(bad), _NULL, arr) if bad.any() else arr), bad


# -- dates ---------------------------------------------------------------------------------------------

_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}
_FULL_MONTHS = {"january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
                "november", "december", "sept"}
_TIME = r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
_ISO = re.compile(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})" + _TIME + "$")
_DMY = re.compile(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})" + _TIME + "$")
_DMONY = re.compile(r"^(\d{1,2})[ \-]?([A-Za-z]{3,9})\.?[ \-,]*(\d{4})$")
_COMPACT = re.compile(r"^((?:19|20)\d{2})(\d{2})(\d{2})$")
_TWO_DIGIT = re.compile(r"^\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2}$")
_SERIAL = re.compile(r"^\d{4,5}(\.\d+)?$")


def parse_date(text: str) -> tuple[date | None, str, str]:
    """(date, code, reason): code 'ok', 'bad_date' or 'impossible_date'. Reasons never repeat the value."""
    if (m := _ISO.match(text)):
        y, mo, d = int(m[1]), int(m[2]), int(m[3])
    elif (m := _DMY.match(text)):
        d, mo, y = int(m[1]), int(m[2]), int(m[3])
    elif (m := _DMONY.match(text)):
        month = _MONTHS.get(m[2][:3].lower())
        if month is None or (len(m[2]) > 3 and m[2].lower() not in _FULL_MONTHS):
            return None, "bad_date", "is not a date: the month name is not recognised"
        d, mo, y = int(m[1]), month, int(m[3])
    elif (m := _COMPACT.match(text)):
        y, mo, d = int(m[1]), int(m[2]), int(m[3])
    elif _TWO_DIGIT.match(text):
        return None, "bad_date", "has a two-digit year, which is ambiguous; write the year in full (DD/MM/YYYY)"
    elif _SERIAL.match(text):
        return None, "bad_date", ("looks like a spreadsheet date serial number; format the column as a date "
                                  "(YYYY-MM-DD or DD/MM/YYYY)")
    else:
        return None, "bad_date", "is not a date; use YYYY-MM-DD or DD/MM/YYYY"
    if not 1 <= mo <= 12:
        hint = "; dates must be day/month/year" if 1 <= d <= 12 else ""
        return None, "impossible_date", f"is not a real calendar date (there is no month {mo}){hint}"
    if y < 1800:
        return None, "impossible_date", "is not a real calendar date (year before 1800)"
    try:
        return date(y, mo, d), "ok", ""
    except ValueError:
        return None, "impossible_date", f"is not a real calendar date (month {mo} has no day {d})"


def _dates(col: _Coded, label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: datetime64[D] (NaT if missing or bad), status code, reason."""
    parsed = [parse_date(u) for u in col.uniques]
    values = _lookup([np.datetime64(p[0], "D") if p[0] else np.datetime64("NaT") for p in parsed], col.codes,
                     np.datetime64("NaT"), dtype="datetime64[D]")
    status = _lookup([p[1] for p in parsed], col.codes, "missing")
    reasons = _lookup([f"{label} {p[2]}" if p[2] else "" for p in parsed], col.codes, "")
    return values, status, reasons


def _ymd(dates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = dates.astype("datetime64[D]")
    months = d.astype("datetime64[M]")
    year = d.astype("datetime64[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (d - months).astype(np.int64) + 1
    return year, month, day


def _years_before(day: date | None, years: int):
    """The same day ``years`` earlier (29 February becomes 28 February); NaT for None."""
    if day is None:
        return np.datetime64("NaT")
    try:
        return np.datetime64(day.replace(year=day.year - years), "D")
    except ValueError:
        return np.datetime64(day.replace(year=day.year - years, day=28), "D")


def age_years(dob: np.ndarray, on: np.ndarray) -> np.ndarray:
    """Whole years from dob to on (datetime64[D] arrays); -1 where either is NaT."""
    ok = ~(np.isnat(dob) | np.isnat(on))
    by, bm, bd = _ymd(np.where(ok, dob, np.datetime64("2000-01-01")))
    ey, em, ed = _ymd(np.where(ok, on, np.datetime64("2000-01-01")))
    age = ey - by - ((em < bm) | ((em == bm) & (ed < bd)))
    return np.where(ok, age, -1)


# -- names -----------------------------------------------------------------------------------------------

def normalise_name(text: str) -> tuple[str | None, str]:
    """Upper case, accents removed, letters only. Returns (name or None, issue code or '')."""
    decomposed = unicodedata.normalize("NFKD", text)
    letters = "".join(ch for ch in decomposed if ch.isalpha()).upper()
    if not letters:
        return None, "name_no_letters"
    if letters in schema.NAME_PLACEHOLDERS:
        return None, "name_placeholder"
    return letters, ""


def _coded_to_dictionary(codes: np.ndarray, uniques: list) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32), mask=codes < 0),
                                          pa.array(uniques, pa.string()))


def _names(col: _Coded) -> tuple[pa.DictionaryArray, np.ndarray]:
    """Normalised names as a dictionary array, and per-row issue codes."""
    results = [normalise_name(u) for u in col.uniques]
    distinct: dict[str, int] = {}
    remap = [distinct.setdefault(r[0], len(distinct)) if r[0] else -1 for r in results]
    codes = _lookup(remap, col.codes, -1, dtype=np.int64)
    problem = _lookup([r[1] for r in results], col.codes, "")
    return _coded_to_dictionary(codes, list(distinct)), problem


# -- duplicates ------------------------------------------------------------------------------------------

def _duplicates(keys: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose key appeared on an earlier row, and the position of that first row.

    A 64-bit hash of every key (DuckDB's hash(), vectorised) is sorted; only keys whose hash repeats
    are compared exactly, so a file without duplicates costs one sort.
    """
    n = len(keys)
    dup = np.zeros(n, dtype=bool)
    first = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return dup, first
    con = duckdb.connect()
    try:
        con.register("k", pa.table({"k": keys}))
        hashes = con.execute("SELECT hash(k) AS h FROM k").fetchnumpy()["h"]
    finally:
        con.close()
    hashes = np.asarray(hashes, dtype=np.uint64)
    valid = pc.is_valid(keys).to_numpy(zero_copy_only=False)
    ordered = np.sort(hashes[valid])
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if not len(repeated):
        return dup, first
    candidates = np.flatnonzero(np.isin(hashes, repeated) & valid)
    seen: dict[str, int] = {}
    for pos, key in zip(candidates, keys.take(pa.array(candidates)).to_pylist()):
        if key in seen:
            dup[pos] = True
            first[pos] = seen[key]
        else:
            seen[key] = pos
    return dup, first


# -- main --------------------------------------------------------------------------------------------------

def _as_table(data) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pd.DataFrame):
        columns = {}
        for name in data.columns:
            series = data[name]
            columns[str(name)] = pa.array(series.astype("string").array, type=pa.string()) if len(series) else \
                pa.array([], pa.string())
        return pa.table(columns) if columns else pa.table({})
    raise TypeError(f"cannot validate a {type(data).__name__}")


@dataclass
class _Run:
    """One validation: the columns as read, the issues found so far, and which cells failed the cell checks."""
    n: int
    rows: np.ndarray
    today: date
    issues: _Issues
    raw: dict[str, pa.Array]
    coded: dict[str, _Coded] = field(default_factory=dict)    # low-cardinality columns
    arrays: dict[str, pa.Array] = field(default_factory=dict)  # HIGH_CARDINALITY columns, cleaned
    bad_cells: dict[str, np.ndarray] = field(default_factory=dict)

    def missing(self, name: str, present: np.ndarray, label: str) -> None:
        self.issues.add(~present & ~self.bad_cells[name], name, "missing", f"no {label} ({name} is required)",
                        schema.ROW_REJECTED)


def _raw_columns(table: pa.Table) -> dict[str, pa.Array]:
    """Every schema column as one string array; optional columns absent from the file are blank."""
    raw = {}
    for name in schema.COLUMN_NAMES:
        if name in table.column_names:
            col = table.column(name)
            col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
            col = pc.cast(col, pa.string())
        else:
            col = pa.nulls(table.num_rows, pa.string())
        raw[name] = col
    return raw


def _check_cells(run: _Run) -> None:
    """Cell checks on every field; a bad cell is then ignored by the field's own checks."""
    for name in schema.COLUMN_NAMES:
        if name in HIGH_CARDINALITY:
            run.arrays[name], run.bad_cells[name] = _check_array_cells(run.issues, name, _clean_array(run.raw[name]))
        else:
            run.coded[name] = _Coded(run.raw[name])
            run.bad_cells[name] = _check_coded_cells(run.issues, name, run.coded[name])


def _record_ids(run: _Run, id_hasher) -> pa.Array:
    """Record ids, required. One shaped like a personal identifier is never stored, shown or audited (issue
    14, item 4): with a key it is kept only as a keyed hash (an agency whose references are 10-digit numbers
    would otherwise lose about one row in eleven to the Modulus 11 check); without one the row is rejected."""
    issues = run.issues
    record_id = run.arrays["source_record_id"]
    run.missing("source_record_id", pc.is_valid(record_id).to_numpy(zero_copy_only=False), "record id")
    id_kinds = identifiers.column_id_kinds(record_id)
    shaped = (id_kinds != "") & ~run.bad_cells["source_record_id"]
    if id_hasher is None:
        issues.add(shaped, "source_record_id", "identifier_as_id",
                   lambda pos: [f"record id is shaped like {identifiers.describe(k.split(','))}; a record id must "
                                "be the agency's own reference, never a personal identifier (the row is not stored)"
                                for k in id_kinds[pos]], schema.ROW_REJECTED)
    elif shaped.any():
        issues.add(shaped, "source_record_id", "identifier_as_id",
                   lambda pos: [f"record id is shaped like {identifiers.describe(k.split(','))}; it is kept only "
                                "as a keyed hash (ID-…), never in clear" for k in id_kinds[pos]],
                   schema.VALUE_DROPPED)
        values = record_id.to_pylist()
        for i in np.flatnonzero(shaped):
            values[i] = identifiers.HASHED_ID_PREFIX + id_hasher(values[i])[:identifiers.HASHED_ID_HEX]
        record_id = pa.array(values, pa.string())
    return record_id


def _free_text(run: _Run) -> None:
    """Free text holding an identifier: the value is dropped (the contact still counts), never echoed."""
    etype = run.coded["encounter_type"]
    text_kinds = [",".join(identifiers.kinds_in_text(u)) for u in etype.uniques]
    if any(text_kinds):
        flagged = _lookup([bool(k) for k in text_kinds], etype.codes, False, dtype=bool)
        run.issues.add(flagged & ~run.bad_cells["encounter_type"], "encounter_type", "identifier_in_text",
                       _lookup([f"encounter type holds text shaped like {identifiers.describe(k.split(','))}; free "
                                "text must not identify anyone, so the value is not stored" if k else ""
                                for k in text_kinds], etype.codes, ""), schema.VALUE_DROPPED)
        etype.blank_out(flagged)


def _agency_types(run: _Run) -> np.ndarray:
    """Per row: index into schema.AGENCY_TYPES (-1 if missing or unknown, which rejects the row)."""
    atype = run.coded["agency_type"]
    type_of = [schema.AGENCY_TYPE_VARIANTS.get(re.sub(r"[^a-z]", "", u.lower())) for u in atype.uniques]
    run.missing("agency_type", atype.codes >= 0, "agency type")
    unknown = _lookup([t is None for t in type_of], atype.codes, False, dtype=bool)
    run.issues.add(unknown, "agency_type", "unknown_agency_type",
                   _lookup([f"unknown agency type {_show(u)}; expected one of {', '.join(schema.AGENCY_TYPES)}"
                            for u in atype.uniques], atype.codes, ""), schema.ROW_REJECTED)
    return _lookup([schema.AGENCY_TYPES.index(t) if t else -1 for t in type_of], atype.codes, -1, dtype=np.int64)


@dataclass
class _CodeCheck:
    """What one (agency type, agency code) pair comes to: a reason it is refused, a split predecessor, or a
    retired code mapped to its successor (``new_code``)."""
    reason: str = ""
    split: str = ""
    mapped: str = ""
    new_code: str | None = None


def _check_agency_code(kind: str, code: str, valid_codes, layer_of) -> _CodeCheck:
    if kind == "other" or code in valid_codes[kind]:
        return _CodeCheck()
    layer = geography.AGENCY_LAYER[kind]
    retired = successors.lookup(layer, code)
    if retired is None and layer == "utla":
        # A retired unitary's code is also its district code: Bournemouth (E06000028) and Poole retired in
        # 2019, before the upper-tier lookups the table is built from, but the district chain has them.
        retired = successors.lookup("lad", code)
    if retired is not None and retired.status == "split":
        return _CodeCheck(split=f"agency code {retired.message(lookup.name_of(layer))}")
    if retired is not None and retired.new_code in valid_codes[kind]:
        return _CodeCheck(mapped=f"agency code {retired.message()}", new_code=retired.new_code)
    found = layer_of.get(code)
    word = geography.LAYER_WORDS.get(found, "")
    also = f"; it is {'an' if word[:1] in 'aeiou' else 'a'} {word}" if found and found != layer else ""
    other = successors.find(code) if not also else None
    if other is not None:
        now = f"now {other.new_code}" if other.status == "mapped" else "since split"
        also = f"; it is a retired {successors.KIND_WORDS.get(other.kind, other.kind)} code ({now})"
    wanted = geography.LAYER_WORDS[layer]
    article = "an" if wanted[:1] in "aeiou" or wanted.startswith("NHS") else "a"
    return _CodeCheck(reason=f"agency code {_show(code, 16)} is not {article} {wanted} (agency type {kind}){also}")


def _agency_codes(run: _Run, type_index: np.ndarray) -> pa.Array:
    """Per row: the agency code, checked against the official codes of its type once per distinct (type, code)
    pair; a retired code is mapped to its successor (reported), a split or unknown one rejects the row."""
    acode = run.coded["agency_code"]
    code_text = [re.sub(r"\s+", "", u.upper()) for u in acode.uniques]
    run.missing("agency_code", acode.codes >= 0, "agency code")
    valid_codes = geography.agency_codes()
    layer_of = geography.code_layers()
    ncode = max(len(code_text), 1)
    pair = np.where((type_index >= 0) & (acode.codes >= 0), type_index * ncode + acode.codes, -1)
    pair_ids, pair_inverse = np.unique(pair, return_inverse=True)
    checks = []
    final_codes = list(code_text)  # codes after successor mapping: code_text, then successors appended
    pair_final = []  # index into final_codes per pair
    for p in pair_ids:
        if p < 0:
            checks.append(_CodeCheck())
            pair_final.append(-1)
            continue
        check = _check_agency_code(schema.AGENCY_TYPES[p // ncode], code_text[p % ncode], valid_codes, layer_of)
        checks.append(check)
        pair_final.append(int(p % ncode))
        if check.new_code is not None:
            final_codes.append(check.new_code)
            pair_final[-1] = len(final_codes) - 1

    def per_row(values: list) -> np.ndarray:
        return np.asarray(values, dtype=object)[pair_inverse.reshape(-1)] if run.n else np.array([], object)

    for code, reasons, action in (("unknown_agency_code", per_row([c.reason for c in checks]), schema.ROW_REJECTED),
                                  ("split_code", per_row([c.split for c in checks]), schema.ROW_REJECTED),
                                  ("retired_code", per_row([c.mapped for c in checks]), schema.CODE_MAPPED)):
        run.issues.add(reasons != "", "agency_code", code, reasons, action)
    final_index = np.where(pair >= 0, np.asarray(pair_final, dtype=np.int64)[pair_inverse.reshape(-1)],
                           acode.codes) if run.n else np.array([], np.int64)
    return pa.array(final_codes, pa.string()).take(pa.array(final_index, mask=final_index < 0))


def _duplicate_ids(run: _Run, record_key: pa.Array) -> None:
    dup, first = _duplicates(record_key)
    run.issues.add(dup, "source_record_id", "duplicate_id",
                   lambda pos: [f"duplicate record id: the same agency and source_record_id are on row {r} "
                                "(the first is kept)" for r in run.rows[first[pos]]], schema.ROW_REJECTED)


def _encounter_dates(run: _Run) -> np.ndarray:
    """Per row: the encounter date (NaT where missing, unreadable, in the future or too old: all reject)."""
    issues, today = run.issues, run.today
    enc_date, status, reason = _dates(run.coded["encounter_date"], "encounter date")
    run.missing("encounter_date", status != "missing", "encounter date")
    for code in ("bad_date", "impossible_date"):
        issues.add(status == code, "encounter_date", code, reason, schema.ROW_REJECTED)
    future = enc_date > np.datetime64(today, "D")
    issues.add(future, "encounter_date", "future_date", f"encounter date is in the future (after {today:%d/%m/%Y})",
               schema.ROW_REJECTED)
    earliest = np.datetime64(schema.EARLIEST_ENCOUNTER, "D")
    too_old = enc_date < earliest
    issues.add(too_old, "encounter_date", "too_old",
               f"encounter date is before {date.fromisoformat(schema.EARLIEST_ENCOUNTER):%d/%m/%Y}; check the date",
               schema.ROW_REJECTED)
    return np.where(future | too_old, np.datetime64("NaT"), enc_date)


def _cse_flags(run: _Run) -> pa.Array:
    flag = run.coded["cse_flag"]
    flag_of = [schema.FLAG_VALUES.get(u.lower()) for u in flag.uniques]
    bad_flag = _lookup([f is None for f in flag_of], flag.codes, False, dtype=bool)
    run.issues.add(bad_flag, "cse_flag", "bad_flag",
                   _lookup([f"CSE flag {_show(u, 12)} not understood; use Y or N (blank if not recorded)"
                            for u in flag.uniques], flag.codes, ""), schema.ROW_REJECTED)
    flag_index = _lookup([-1 if f is None else int(f) for f in flag_of], flag.codes, -1, dtype=np.int64)
    return pa.array(flag_index == 1, mask=flag_index < 0)


def _dates_of_birth(run: _Run, enc_date: np.ndarray) -> np.ndarray:
    """Unreadable dates of birth are dropped; impossible combinations (future, after the encounter, over
    MAX_AGE_YEARS at the encounter) reject the row."""
    issues = run.issues
    dob, status, reason = _dates(run.coded["date_of_birth"], "date of birth")
    for code in ("bad_date", "impossible_date"):
        issues.add(status == code, "date_of_birth", code, reason, schema.VALUE_DROPPED)
    placeholder = dob <= np.datetime64("1900-01-01", "D")
    issues.add(placeholder, "date_of_birth", "dob_placeholder",
               "date of birth is a placeholder (1900-01-01 or earlier), not a real date", schema.VALUE_DROPPED)
    dob = np.where(placeholder, np.datetime64("NaT"), dob)
    dob_future = dob > np.datetime64(run.today, "D")
    issues.add(dob_future, "date_of_birth", "dob_future", "date of birth is in the future", schema.ROW_REJECTED)
    issues.add((dob > enc_date) & ~dob_future, "date_of_birth", "dob_after_encounter",
               "date of birth is after the encounter date", schema.ROW_REJECTED)
    # Aged over MAX_AGE_YEARS: born on or before the encounter date less (MAX_AGE_YEARS + 1) years.
    encounters = run.coded["encounter_date"]
    encounter_days = [parse_date(u)[0] for u in encounters.uniques]
    limit = _lookup([_years_before(d, schema.MAX_AGE_YEARS + 1) for d in encounter_days], encounters.codes,
                    np.datetime64("NaT"), dtype="datetime64[D]")
    limit[np.isnat(enc_date)] = np.datetime64("NaT")  # rejected encounter dates say nothing about age
    issues.add(dob <= limit, "date_of_birth", "too_old_person",
               lambda pos: [f"date of birth makes the person {a} at the encounter; Joined Up holds children and "
                            f"young people (under {schema.MAX_AGE_YEARS + 1})" for a in age_years(dob[pos],
                                                                                                  enc_date[pos])],
               schema.ROW_REJECTED)
    return dob


def _nhs_numbers(run: _Run) -> tuple[np.ndarray, np.ndarray]:
    """(number as int64, -1 unless valid; status 0 valid / 1 invalid / 2 missing). A wrong number is dropped."""
    nhs_number, nhs_code, ndigits = check_nhs_numbers(run.arrays["nhs_number"])
    for i, code in enumerate(NHS_CODES):
        if code == "nhs_length":
            run.issues.add(nhs_code == i, "nhs_number", code,
                           lambda pos: [f"NHS number has {k} digits; it must have 10" for k in ndigits[pos]],
                           schema.VALUE_DROPPED)
        elif code in NHS_REASONS:
            run.issues.add(nhs_code == i, "nhs_number", code, NHS_REASONS[code], schema.VALUE_DROPPED)
    nhs_missing = (nhs_code == NHS_CODES.index("missing")) & ~run.bad_cells["nhs_number"]
    return nhs_number, np.where(nhs_number >= 0, 0, np.where(nhs_missing, 2, 1)).astype(np.int32)


def _person_names(run: _Run) -> dict[str, pa.DictionaryArray]:
    names = {}
    for name, label in (("forename", "first name"), ("surname", "surname")):
        names[name], problem = _names(run.coded[name])
        run.issues.add(problem == "name_no_letters", name, "name_no_letters", f"{label} contains no letters",
                       schema.VALUE_DROPPED)
        run.issues.add(problem == "name_placeholder", name, "name_placeholder",
                       f"{label} is a placeholder (such as UNKNOWN or BABY), not a name", schema.VALUE_DROPPED)
    return names


def _sexes(run: _Run) -> np.ndarray:
    """Per row: index into "MFU" (-1 if blank or not recognised, which drops the value)."""
    sex = run.coded["sex"]
    sex_of = [schema.SEX_VALUES.get(re.sub(r"[^a-z0-9]", "", u.lower())) for u in sex.uniques]
    bad_sex = _lookup([s is None for s in sex_of], sex.codes, False, dtype=bool)
    run.issues.add(bad_sex, "sex", "bad_sex",
                   _lookup([f"sex {_show(u, 12)} not recognised; use M, F or U" for u in sex.uniques], sex.codes,
                           ""), schema.VALUE_DROPPED)
    return _lookup([-1 if s is None else "MFU".index(s) for s in sex_of], sex.codes, -1, dtype=np.int64)


def _postcodes(run: _Run) -> dict[str, tuple[pa.Array, np.ndarray]]:
    """Per prefix (home, enc): the postcode (blank unless in the directory) and its LSOA index (-1 if none)."""
    places = {}
    for name, prefix, label in (("home_postcode", "home", "home postcode"),
                                ("encounter_postcode", "enc", "encounter postcode")):
        index, ukeys, ulsoa, present = geography.parse_postcodes(run.arrays[name])
        run.issues.add(present & (index < 0), name, "bad_postcode", f"{label} is not shaped like a UK postcode",
                       schema.VALUE_DROPPED)
        lsoa = np.where(index >= 0, ulsoa[np.maximum(index, 0)] if len(ulsoa) else -1, -1).astype(np.int32)
        run.issues.add((index >= 0) & (lsoa < 0), name, "unknown_postcode",
                       f"{label} is not in the England and Wales postcode directory (ONSPD November 2025)",
                       schema.VALUE_DROPPED)
        postcode = geography.indexed_dictionary(np.where(lsoa >= 0, index, -1),
                                                geography.postcodes_from_keys(ukeys))
        places[prefix] = (postcode, lsoa)
    return places


def _issue_table(issues: _Issues, filename: str, prior_issues: pd.DataFrame | None) -> pd.DataFrame:
    """The issues of the file reading (``prior_issues``) and of validation, by row then field."""
    issue_frame = issues.frame(filename)
    if prior_issues is not None and len(prior_issues):
        prior = prior_issues.assign(file=filename)[ISSUE_COLUMNS]
        issue_frame = pd.concat([prior, issue_frame], ignore_index=True)
    if len(issue_frame):
        order = {name: i for i, name in enumerate(("(row)",) + schema.COLUMN_NAMES)}
        issue_frame = (issue_frame.assign(_f=issue_frame["field"].map(order))
                       .sort_values(["row", "_f"], kind="stable").drop(columns="_f").reset_index(drop=True))
    return issue_frame


def validate(data, filename: str | None = None, *, rows: np.ndarray | None = None, today: date | None = None,
             prior_issues: pd.DataFrame | None = None, id_hasher=None) -> Validated:
    """Validate an Extract, or a table/frame of canonical text columns, and place each row in every geography.

    ``id_hasher`` (value -> keyed hex digest; ingest passes one built from the store's key): a record id shaped
    like a personal identifier is then kept only as ``ID-`` and its keyed hash, so the row still counts and a
    re-upload still matches it. Without one (validation alone) such a row is rejected."""
    clock = _Clock()
    blank, ignored = 0, []
    if isinstance(data, Extract):
        table, filename, rows = data.table, data.filename, data.rows
        prior_issues, blank, ignored = data.issues, data.blank_rows, data.ignored_columns
    else:
        table = _as_table(data)
        filename = filename or "extract"
    n = table.num_rows
    rows = np.arange(2, n + 2, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    run = _Run(n=n, rows=rows, today=today or date.today(), issues=_Issues(n, rows), raw=_raw_columns(table))

    clock.lap("cell checks")
    _check_cells(run)
    clock.lap("record id")
    record_id = _record_ids(run, id_hasher)
    clock.lap("free text")
    _free_text(run)
    clock.lap("agency type, code, duplicates")
    type_index = _agency_types(run)
    type_text = pa.array(list(schema.AGENCY_TYPES), pa.string()).take(pa.array(type_index, mask=type_index < 0))
    code_arr = _agency_codes(run, type_index)
    record_key = pc.binary_join_element_wise(type_text, code_arr, record_id, "|")
    _duplicate_ids(run, record_key)
    clock.lap("encounter date")
    enc_date = _encounter_dates(run)
    cse_flag = _cse_flags(run)
    clock.lap("date of birth")
    dob = _dates_of_birth(run, enc_date)
    clock.lap("nhs number")
    nhs_number, nhs_status = _nhs_numbers(run)
    clock.lap("names")
    names = _person_names(run)
    clock.lap("sex")
    sex_index = _sexes(run)
    clock.lap("postcodes and geography")
    places = _postcodes(run)

    clock.lap("build kept rows")
    # Kept rows, clear values normalised (the input to pseudonymise, never stored).
    columns = {
        "row": pa.array(rows),
        "record_key": record_key,
        "source_record_id": record_id,
        "agency_type": type_text,
        "agency_code": code_arr,
        "encounter_date": pa.array(enc_date.astype("datetime64[D]"), type=pa.date32()),
        "encounter_type": run.coded["encounter_type"].text(),
        "cse_flag": cse_flag,
        "nhs_number": geography.int_dictionary(nhs_number, geography.digits_text),
        "nhs_status": pa.DictionaryArray.from_arrays(pa.array(nhs_status), pa.array(["valid", "invalid", "missing"])),
        "forename": names["forename"],
        "surname": names["surname"],
        "date_of_birth": pa.array(dob.astype("datetime64[D]"), type=pa.date32()),
        "sex": pa.DictionaryArray.from_arrays(pa.array(sex_index.astype(np.int32), mask=sex_index < 0),
                                              pa.array(["M", "F", "U"])),
        "home_postcode": places["home"][0],
        "encounter_postcode": places["enc"][0],
    }
    for prefix in ("home", "enc"):
        columns.update(geography.geography_columns(places[prefix][1], prefix))
    good = pa.table(columns)
    keep = ~run.issues.rejected
    if not keep.all():
        good = good.filter(pa.array(keep))

    issue_frame = _issue_table(run.issues, filename, prior_issues)
    clock.lap("end")
    return Validated(filename=filename, table=good, timings=clock.laps, issues=issue_frame,
                     rows_read=n + (0 if prior_issues is None else len(prior_issues)), blank_rows=blank,
                     ignored_columns=list(ignored))
