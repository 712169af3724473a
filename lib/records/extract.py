"""Read an agency extract (CSV, Excel .xlsx or Parquet) into canonical text columns.

Whole-file problems raise ``ExtractError`` naming the file (nothing is stored): empty file, not UTF-8,
content that is not what the name says, unsupported type, no data rows, missing required columns, two
headers meaning the same column, file too large. Row-level problems found while reading (rows with the
wrong number of fields) are returned as issues and checked no further.

Row numbers are what a user sees in a spreadsheet: the header is row 1, the first data row is row 2.
For CSV, a record with a quoted line break is one row; wholly blank rows are skipped but still counted.

Hostile files (issue 7): the type is sniffed from the content, not the name; a file name is reduced to a
safe base name (no directories); an .xlsx is checked before it is opened for zip bombs (too many parts,
too much uncompressed XML, extreme compression ratios) and XML entity tricks (any DTD is refused); Excel
formulas are read as their text (``=…``), so validation rejects the row rather than trusting a cached
result; more than ``MAX_COLUMNS`` columns is refused. Nothing is stored from a refused file.
"""
from __future__ import annotations

import csv
import hashlib
import io
import sys
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from lib.records import schema

MAX_BYTES = 1 << 30  # 1 GiB
MAX_ROWS = 5_000_000
MAX_COLUMNS = 500
XLSX_MAX_PARTS = 2_000  # zip members in a workbook
XLSX_MAX_UNCOMPRESSED = 3 << 30  # 3 GiB of XML in all (a 1 GiB workbook of real data inflates about 10x)
XLSX_MAX_RATIO = 200  # a member inflating more than 200x (and over 1 MB) is a zip bomb, not a spreadsheet
FORMATS = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".xlsx": "excel", ".xlsm": "excel", ".parquet": "parquet",
           ".pq": "parquet"}


class ExtractError(ValueError):
    """A whole-file problem: nothing from this file is stored."""

    def __init__(self, filename: str, message: str, code: str):
        super().__init__(f"{filename}: {message}")
        self.filename = filename
        self.message = message
        self.code = code


@dataclass
class Extract:
    filename: str
    format: str
    sha256: str
    table: pa.Table  # canonical columns present in the file, as text exactly as read
    rows: np.ndarray  # spreadsheet row number of each table row
    issues: pd.DataFrame  # row-level problems found while reading (rows not in frame)
    column_map: dict[str, str] = field(default_factory=dict)  # header in file -> canonical column
    ignored_columns: list[str] = field(default_factory=list)
    blank_rows: int = 0

    @property
    def rows_read(self) -> int:
        return self.table.num_rows + len(self.issues)

    @property
    def frame(self) -> pd.DataFrame:
        """The canonical columns as a pandas frame (text, trimmed, <NA> for blank)."""
        return pd.DataFrame({name: _to_series(self.table.column(name).combine_chunks())
                             for name in self.table.column_names})


def empty_issues() -> pd.DataFrame:
    return pd.DataFrame({"row": pd.Series([], dtype="int64"), "field": pd.Series([], dtype="str"),
                         "code": pd.Series([], dtype="str"), "reason": pd.Series([], dtype="str"),
                         "action": pd.Series([], dtype="str")})


def read_extract(source, filename: str | None = None, *, max_bytes: int = MAX_BYTES,
                 max_rows: int = MAX_ROWS) -> Extract:
    """Read a file (path, bytes or binary file object) named ``filename`` into an Extract."""
    data, filename = _read_bytes(source, filename, max_bytes)
    from lib.access.safety import safe_filename

    filename = safe_filename(filename)  # a name, never a path: it is shown, stored and audited
    digest = hashlib.sha256(data).hexdigest()
    suffix = Path(filename).suffix.lower()
    if suffix == ".xls":
        raise ExtractError(filename, "old Excel 97-2003 workbooks (.xls) are not read; save it as .xlsx or CSV UTF-8",
                           "unsupported_type")
    kind = FORMATS.get(suffix)
    if kind is None:
        raise ExtractError(filename, f"unsupported file type {suffix or '(no extension)'!r}; upload CSV (.csv), "
                           "Excel (.xlsx) or Parquet (.parquet)", "unsupported_type")
    if not data[:65536].strip() and not data.strip():  # the whole file is only looked at when it starts blank
        raise ExtractError(filename, "the file is empty", "empty_file")
    sniffed = _sniff(data)
    if sniffed != kind and not (kind == "csv" and sniffed == "text"):
        what = {"excel": "an Excel workbook", "parquet": "a Parquet file", "zip": "a zip archive",
                "binary": "binary data", "text": "text (CSV?)", "csv": "text"}[sniffed]
        expected = {"csv": "a CSV text file", "excel": "an Excel .xlsx workbook", "parquet": "a Parquet file"}[kind]
        raise ExtractError(filename, f"named as {expected} but the content is {what}; check the file type",
                           f"not_{kind}")
    if kind == "csv":
        headers, columns, rows, issues, blank = _read_csv(data, filename, max_rows)
    elif kind == "excel":
        headers, columns, rows, issues, blank = _read_excel(data, filename, max_rows)
    else:
        headers, columns, rows, issues, blank = _read_parquet(data, filename, max_rows)
    if len(headers) > MAX_COLUMNS:
        raise ExtractError(filename, f"the file has {len(headers):,} columns; at most {MAX_COLUMNS} are read "
                           "(the extract has 13)", "too_many_columns")
    table, column_map, ignored = map_columns(headers, columns, filename)
    if table.num_rows == 0 and len(issues) == 0:
        raise ExtractError(filename, "the file has a header but no data rows", "no_data_rows")
    return Extract(filename=filename, format=kind, sha256=digest, table=table, rows=rows, issues=issues,
                   column_map=column_map, ignored_columns=ignored, blank_rows=blank)


# -- bytes and sniffing -------------------------------------------------------------------------

def _read_bytes(source, filename: str | None, max_bytes: int) -> tuple[bytes, str]:
    if isinstance(source, (str, Path)):
        path = Path(source)
        filename = filename or path.name
        if not path.exists():
            raise ExtractError(filename, "file not found", "not_found")
        size = path.stat().st_size
        if size > max_bytes:
            raise ExtractError(filename, f"the file is {size / 1e6:,.0f} MB; the limit is {max_bytes / 1e6:,.0f} MB",
                               "too_large")
        return path.read_bytes(), filename
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif hasattr(source, "read"):
        data = source.read(max_bytes + 1)
        filename = filename or getattr(source, "name", None)
    else:
        raise TypeError(f"cannot read an extract from {type(source).__name__}")
    filename = filename or "upload"
    if len(data) > max_bytes:
        raise ExtractError(filename, f"the file is larger than the limit of {max_bytes / 1e6:,.0f} MB", "too_large")
    return data, filename


def _sniff(data: bytes) -> str:
    head = data[:8]
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                names = set(z.namelist())
        except zipfile.BadZipFile:
            return "zip"
        return "excel" if "[Content_Types].xml" in names and any(n.startswith("xl/") for n in names) else "zip"
    if head.startswith(b"\xd0\xcf\x11\xe0"):  # OLE2: .xls or other Office binary
        return "binary"
    if head.startswith((b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf")):
        return "text"
    sample = data[:65536]
    if b"\x00" in sample or sum(b < 9 or 13 < b < 32 for b in sample[:4096]) > 4:
        return "binary"
    return "text"


def _decode(data: bytes, filename: str) -> str:
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        raise ExtractError(filename, "the file is UTF-32 text, which is not read; save it as 'CSV UTF-8' and "
                           "upload it again", "encoding")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ExtractError(filename, "the file starts with a UTF-16 mark but is not valid UTF-16",
                               "encoding") from exc
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ExtractError(
            filename,
            f"the file is not UTF-8 text (byte 0x{data[exc.start]:02X} on line {line}, as written by Windows "
            "'CSV' or Latin-1 exports); save it as 'CSV UTF-8' and upload it again",
            "encoding",
        ) from exc


# -- CSV ------------------------------------------------------------------------------------------

def _delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else ","


def _is_utf8(data: bytes) -> bool:
    """Whole-buffer UTF-8 check without decoding to a Python string (Arrow validates in place)."""
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64).tobytes())
    try:
        pa.LargeStringArray.from_buffers(1, offsets, pa.py_buffer(data)).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _read_csv(data: bytes, filename: str, max_rows: int):
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 (Excel "Unicode text"): re-encode once
        data = _decode(data, filename).encode("utf-8")
    elif data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    end = data.find(b"\n")
    first_line = _decode(data[: end if end >= 0 else len(data)], filename).rstrip("\r")
    delimiter = _delimiter(first_line)
    invalid: list = []

    def on_invalid(row):
        invalid.append(row)
        return "skip"

    if not _is_utf8(data):  # the decode below names the line; pyarrow's row handler would choke on it
        return _read_csv_python(_decode(data, filename), delimiter, filename, max_rows)
    table = None
    try:
        header_names = next(csv.reader([first_line], delimiter=delimiter))
        table = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(block_size=1 << 24),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, ignore_empty_lines=False,
                                             newlines_in_values=True, invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header_names}, strings_can_be_null=False,
                quoted_strings_can_be_null=False, check_utf8=True),
        )
    except (pa.ArrowInvalid, StopIteration):
        table = None
    if table is None or invalid or len(set(table.column_names)) != table.num_columns \
            or table.num_columns != len(header_names):
        # Not UTF-8 (the decode below names the line), or rows the fast reader cannot number exactly.
        return _read_csv_python(_decode(data, filename), delimiter, filename, max_rows)
    headers = table.column_names
    if table.num_rows > max_rows:
        raise ExtractError(filename, f"the file has {table.num_rows:,} rows; the limit is {max_rows:,}", "too_large")
    columns = [table.column(i).combine_chunks() for i in range(table.num_columns)]
    rows = np.arange(2, table.num_rows + 2, dtype=np.int64)
    # Wholly blank rows (blank lines) are skipped but keep their row numbers.
    n_blank = 0
    if table.num_rows:
        candidates = np.flatnonzero(pc.less_equal(pc.utf8_length(columns[0]), 8).to_numpy(zero_copy_only=False))
        for col in columns:
            if not len(candidates):
                break
            values = pc.utf8_trim_whitespace(col.take(pa.array(candidates)))
            candidates = candidates[pc.equal(pc.utf8_length(values), 0).to_numpy(zero_copy_only=False)]
        n_blank = len(candidates)
        if n_blank:
            keep = np.ones(table.num_rows, dtype=bool)
            keep[candidates] = False
            columns = [pc.filter(c, pa.array(keep)) for c in columns]
            rows = rows[keep]
    return headers, columns, rows, empty_issues(), n_blank


def _read_csv_python(text: str, delimiter: str, filename: str, max_rows: int):
    """Exact, slower reader used when the fast reader finds rows with the wrong number of fields."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # huge fields are reported, not a parse error
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        headers = next(reader)
    except StopIteration:
        raise ExtractError(filename, "the file is empty", "empty_file") from None
    except csv.Error as exc:
        raise ExtractError(filename, f"the header cannot be read as CSV ({exc})", "not_csv") from exc
    width = len(headers)
    records: list[list[str]] = []
    rows: list[int] = []
    bad_rows: list[int] = []
    bad_reasons: list[str] = []
    blank = 0
    number = 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            number += 1
            raise ExtractError(filename, f"row {number} cannot be read as CSV ({exc})", "not_csv") from exc
        number += 1
        if not record or all(not v.strip() for v in record):
            blank += 1
            continue
        if len(record) != width:
            bad_rows.append(number)
            bad_reasons.append(f"row has {len(record)} fields but the header has {width}; "
                               "check for an unquoted comma or a missing field")
            continue
        records.append(record)
        rows.append(number)
        if len(records) > max_rows:
            raise ExtractError(filename, f"the file has more than {max_rows:,} rows", "too_large")
    columns = [pa.array([r[i] for r in records], type=pa.string()) for i in range(width)]
    issues = pd.DataFrame({"row": pd.Series(bad_rows, dtype="int64"), "field": "(row)", "code": "ragged_row",
                           "reason": pd.Series(bad_reasons, dtype="str"), "action": schema.ROW_REJECTED})
    if not len(issues):
        issues = empty_issues()
    return headers, columns, np.asarray(rows, dtype=np.int64), issues, blank


# -- Excel ----------------------------------------------------------------------------------------

def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time(0) else value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return str(value)


def check_workbook_archive(data: bytes, filename: str) -> None:
    """Refuse zip bombs and XML entity tricks before openpyxl parses anything."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
            if len(infos) > XLSX_MAX_PARTS:
                raise ExtractError(filename, f"the workbook has {len(infos):,} parts; this is not an ordinary "
                                   "spreadsheet", "xlsx_bomb")
            total = 0
            for info in infos:
                total += info.file_size
                if info.file_size > (1 << 20) and info.file_size > XLSX_MAX_RATIO * max(info.compress_size, 1):
                    raise ExtractError(filename, "the workbook expands to far more than its size (a 'zip bomb'); "
                                       "it is not read", "xlsx_bomb")
                if info.flag_bits & 0x1:
                    raise ExtractError(filename, "the workbook is encrypted; remove the password and upload it "
                                       "again", "not_excel")
            if total > XLSX_MAX_UNCOMPRESSED:
                raise ExtractError(filename, f"the workbook expands to {total / 1e9:,.1f} GB; the limit is "
                                   f"{XLSX_MAX_UNCOMPRESSED / 1e9:,.1f} GB", "xlsx_bomb")
            for info in infos:
                if info.filename.lower().endswith((".xml", ".rels", ".vml")):
                    with z.open(info) as part:
                        head = part.read(4096)
                    if b"<!DOCTYPE" in head.upper() or b"<!ENTITY" in head.upper():
                        raise ExtractError(filename, "the workbook declares XML entities (DTD), which "
                                           "spreadsheets do not need; it is not read", "xlsx_dtd")
    except ExtractError:
        raise
    except zipfile.BadZipFile as exc:
        raise ExtractError(filename, "the workbook is not a valid .xlsx (zip) file", "not_excel") from exc
    except Exception as exc:  # noqa: BLE001 - zlib.error, LargeZipFile, NotImplementedError (compression), …
        raise ExtractError(filename, f"the workbook cannot be opened ({type(exc).__name__})", "not_excel") from exc


def _excel_value(value):
    """A cell as read with data_only=False: formulas arrive as their text (=…), array formulas too."""
    text = getattr(value, "text", None)  # openpyxl ArrayFormula / DataTableFormula
    if text is not None and not isinstance(value, str):
        return "=" + str(text).lstrip("=")
    return value


def _read_excel(data: bytes, filename: str, max_rows: int):
    import openpyxl

    check_workbook_archive(data, filename)
    try:
        # data_only=False: a formula cell arrives as "=…" and validation rejects its row; its cached result
        # (which anyone can edit independently of the formula) is never taken as data.
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except Exception as exc:  # openpyxl raises many types for broken workbooks
        raise ExtractError(filename, f"the workbook cannot be opened ({type(exc).__name__})", "not_excel") from exc
    try:
        names = book.sheetnames
        preferred = [n for n in names if n.strip().lower() in ("encounters", "data", "extract")]
        sheet = book[preferred[0] if preferred else names[0]]
        iterator = sheet.iter_rows(values_only=True)
        header = None
        number = 0
        for values in iterator:
            number += 1
            if values and any(v is not None and str(v).strip() for v in values):
                header = values
                break
        if header is None:
            raise ExtractError(filename, f"the sheet {sheet.title!r} is empty", "empty_file")
        width = len(header)
        while width and (header[width - 1] is None or not str(header[width - 1]).strip()):
            width -= 1
        headers = [_cell_text(h) for h in header[:width]]
        records: list[list[str]] = []
        rows: list[int] = []
        bad_rows: list[int] = []
        blank = 0
        for values in iterator:
            number += 1
            values = tuple(_excel_value(v) for v in (values or ()))
            cells = [_cell_text(v) for v in values[:width]]
            if not any(c.strip() for c in cells):
                if any(v is not None and str(v).strip() for v in values[width:]):
                    bad_rows.append(number)
                else:
                    blank += 1
                continue
            if any(v is not None and str(v).strip() for v in values[width:]):
                bad_rows.append(number)  # values beyond the last headed column
                continue
            cells += [""] * (width - len(cells))
            records.append(cells)
            rows.append(number)
            if len(rows) > max_rows:
                raise ExtractError(filename, f"the sheet has more than {max_rows:,} rows", "too_large")
    except ExtractError:
        raise
    except Exception as exc:  # noqa: BLE001 - a sheet broken part-way through (bad XML, bad cell types)
        raise ExtractError(filename, f"the workbook cannot be read ({type(exc).__name__})", "not_excel") from exc
    finally:
        book.close()
    columns = [pa.array([r[i] for r in records], type=pa.string()) for i in range(width)]
    issues = empty_issues()
    if bad_rows:
        issues = pd.DataFrame({"row": pd.Series(bad_rows, dtype="int64"), "field": "(row)", "code": "ragged_row",
                               "reason": "row has values in columns without a header", "action": schema.ROW_REJECTED})
    # Row numbers are the sheet's own, so they stay true even when the header is lower down.
    rows_arr = np.asarray(rows, dtype=np.int64)
    return headers, columns, rows_arr, issues, blank


# -- Parquet --------------------------------------------------------------------------------------

def _read_parquet(data: bytes, filename: str, max_rows: int):
    try:
        table = pq.read_table(pa.BufferReader(data))
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for broken files
        raise ExtractError(filename, f"the Parquet file cannot be read ({str(exc)[:120]})", "not_parquet") from exc
    if table.num_rows > max_rows:
        raise ExtractError(filename, f"the file has {table.num_rows:,} rows; the limit is {max_rows:,}", "too_large")
    return table_columns(table, filename)


def table_columns(table: pa.Table, filename: str):
    """Typed Arrow columns as text (dates ISO, booleans Y/N, whole floats without '.0').

    Typed values are formatted once per distinct value (dictionary-encoded), not once per row.
    """
    columns = []
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        if pa.types.is_dictionary(col.type):
            col = col.dictionary_decode()
        if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type) or pa.types.is_floating(col.type):
            col = _per_distinct(col, _cell_text)
        elif pa.types.is_boolean(col.type):
            col = pc.if_else(col, "Y", "N")
        elif not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            try:
                col = pc.cast(col, pa.string())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ExtractError(filename, f"column {name!r} has type {col.type}, which cannot be read as text",
                                   "not_parquet") from exc
        columns.append(pc.cast(col, pa.string()))  # nulls stay null: blank, as an empty CSV cell
    rows = np.arange(2, table.num_rows + 2, dtype=np.int64)
    return list(table.column_names), columns, rows, empty_issues(), 0


def _per_distinct(col: pa.Array, func) -> pa.Array:
    encoded = col.dictionary_encode()
    values = [None if v is None else func(v) for v in encoded.dictionary.to_pylist()]
    return pa.DictionaryArray.from_arrays(encoded.indices, pa.array(values, pa.string())).cast(pa.string())


# -- columns ----------------------------------------------------------------------------------------

def map_columns(headers: list[str], columns: list[pa.Array], filename: str):
    column_map: dict[str, str] = {}
    seen: dict[str, str] = {}
    ignored: list[str] = []
    chosen: dict[str, pa.Array] = {}
    for header, col in zip(headers, columns):
        canonical = schema.HEADER_LOOKUP.get(schema.header_key(header))
        if canonical is None:
            if str(header).strip():
                ignored.append(str(header))
            continue
        if canonical in seen:
            raise ExtractError(
                filename, f"columns {seen[canonical]!r} and {header!r} both mean {canonical}; keep one of them",
                "duplicate_columns")
        seen[canonical] = str(header)
        column_map[str(header)] = canonical
        chosen[canonical] = col
    missing = [c for c in schema.REQUIRED if c not in chosen]
    if missing:
        # Only headers we recognise are echoed: in a file without a header row, the "headers" are the
        # first record's values (names, NHS numbers), which must never reach a message or a log.
        known = [repr(str(h)) for h in headers if str(h) in column_map][:15]
        found = (f"recognised columns: {', '.join(known)}" if known else
                 f"none of its {len(headers)} column headers is recognised; does the file have a header row?")
        raise ExtractError(
            filename,
            f"missing required column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"({found}); download the template to see the expected headers",
            "missing_columns",
        )
    table = pa.table({name: chosen[name] for name in schema.COLUMN_NAMES if name in chosen})
    return table, column_map, ignored


def _to_series(col: pa.Array) -> pd.Series:
    """Trimmed text with <NA> for blank cells and the usual missing-value markers."""
    trimmed = pc.utf8_trim_whitespace(col)
    lowered = pc.utf8_lower(trimmed)
    blank = pc.is_in(lowered, value_set=pa.array(sorted(schema.MISSING_MARKERS)))
    values = pc.if_else(blank, pa.scalar(None, pa.string()), trimmed)
    return pd.Series(pd.arrays.ArrowStringArray(values))
