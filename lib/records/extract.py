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
from lib.records.filenames import safe_filename

MAX_BYTES = 1 << 30  # 1 GiB
MAX_ROWS = 5_000_000
MAX_COLUMNS = 500
XLSX_MAX_PARTS = 2_000  # zip members in a workbook
XLSX_MAX_UNCOMPRESSED = 3 << 30  # 3 GiB of XML in all (a 1 GiB workbook of real data inflates about 10x)
PARQUET_MAX_TEXT = MAX_BYTES  # decoded bytes of the extract's columns: what a CSV within MAX_BYTES could hold
PARQUET_MAX_ROW_GROUPS = 10_000  # 5 million rows in row groups of 500; more is a file built to be slow
PARQUET_BATCH_ROWS = 65_536  # rows read at a time (text kept dictionary-encoded until the size is known)
XLSX_MAX_SHARED_STRINGS = 512 << 20  # uncompressed sharedStrings.xml: openpyxl loads it whole into memory
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
    sheet: str | None = None  # Excel: the worksheet read
    sheet_note: str | None = None  # Excel: a sentence naming the sheet read and any sheets not read

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
    sheet = (None, None)
    if kind == "csv":
        headers, columns, rows, issues, blank = _read_csv(data, filename, max_rows)
    elif kind == "excel":
        headers, columns, rows, issues, blank, sheet = _read_excel(data, filename, max_rows)
    else:
        headers, columns, rows, issues, blank = _read_parquet(data, filename, max_rows)
    if len(headers) > MAX_COLUMNS:
        raise ExtractError(filename, f"the file has {len(headers):,} columns; at most {MAX_COLUMNS} are read "
                           "(the extract has 13)", "too_many_columns")
    table, column_map, ignored = map_columns(headers, columns, filename)
    if table.num_rows == 0 and len(issues) == 0:
        raise ExtractError(filename, "the file has a header but no data rows", "no_data_rows")
    return Extract(filename=filename, format=kind, sha256=digest, table=table, rows=rows, issues=issues,
                   column_map=column_map, ignored_columns=ignored, blank_rows=blank, sheet=sheet[0],
                   sheet_note=sheet[1])


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
    # The header ends at the first line break of any kind (LF, CRLF or a lone CR: old Mac / some exports)
    # outside double quotes: a quoted header cell may hold a line break, as the CSV reader keeps it.
    first_line = _decode(data[: _header_end(data)], filename)
    delimiter = _delimiter(first_line)
    invalid: list = []

    def on_invalid(row):
        invalid.append(row)
        return "skip"

    if not _is_utf8(data):  # the decode below names the line; pyarrow's row handler would choke on it
        return _read_csv_python(_decode(data, filename), delimiter, filename, max_rows)
    table = None
    try:
        header_names = next(csv.reader(io.StringIO(first_line, newline=""), delimiter=delimiter))
        table = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(block_size=1 << 24),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, ignore_empty_lines=False,
                                             newlines_in_values=True, invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header_names}, strings_can_be_null=False,
                quoted_strings_can_be_null=False, check_utf8=True),
        )
    except (pa.ArrowInvalid, StopIteration, csv.Error):
        table = None
    if table is None or invalid or len(set(table.column_names)) != table.num_columns \
            or table.num_columns != len(header_names) \
            or not all(pa.types.is_string(t) for t in table.schema.types):
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


def _header_end(data: bytes) -> int:
    """Offset of the line break ending the header row: the first CR or LF outside double quotes (a doubled
    quote inside a quoted cell toggles twice, so it needs no special case). The whole buffer when none."""
    pos = 0
    quoted = False
    while True:
        if quoted:
            close = data.find(b'"', pos)
            if close < 0:
                return len(data)
            quoted, pos = False, close + 1
            continue
        ends = [i for i in (data.find(b"\n", pos), data.find(b"\r", pos), data.find(b'"', pos)) if i >= 0]
        if not ends:
            return len(data)
        pos = min(ends)
        if data[pos:pos + 1] != b'"':
            return pos
        quoted, pos = True, pos + 1


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
            strings = sum(i.file_size for i in infos if i.filename.lower().endswith("sharedstrings.xml"))
            if strings > XLSX_MAX_SHARED_STRINGS:  # openpyxl holds every shared string in memory at once
                raise ExtractError(filename, f"the workbook's shared strings expand to {strings / 1e6:,.0f} MB; the "
                                   f"limit is {XLSX_MAX_SHARED_STRINGS / 1e6:,.0f} MB (they are held in memory "
                                   "whole). Save a workbook this large as CSV UTF-8 and upload that", "xlsx_bomb")
            if total > XLSX_MAX_UNCOMPRESSED:
                raise ExtractError(filename, f"the workbook expands to {total / 1e9:,.1f} GB; the limit is "
                                   f"{XLSX_MAX_UNCOMPRESSED / 1e9:,.1f} GB", "xlsx_bomb")
            for info in infos:
                if not info.is_dir():
                    _check_xml_part(z, info, filename)
    except ExtractError:
        raise
    except zipfile.BadZipFile as exc:
        raise ExtractError(filename, "the workbook is not a valid .xlsx (zip) file", "not_excel") from exc
    except Exception as exc:  # noqa: BLE001 - zlib.error, LargeZipFile, NotImplementedError (compression), …
        raise ExtractError(filename, f"the workbook cannot be opened ({type(exc).__name__})", "not_excel") from exc


XML_CHUNK = 1 << 16  # bytes of a workbook part parsed at a time: the DTD check streams, whatever the part's size
# A DTD or entity declaration as bytes, in every encoding an XML parser would accept it in.
_DTD_MARKERS = tuple(m.encode(enc) for m in ("<!DOCTYPE", "<!ENTITY")
                     for enc in ("ascii", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"))


def _check_xml_part(z: zipfile.ZipFile, info: zipfile.ZipInfo, filename: str) -> None:
    """Refuse a DTD or entity declaration anywhere in one part of a workbook (issue 14).

    Every part, whatever its name says, goes through defusedxml's expat parser with DTDs, entity
    declarations and external references forbidden, fed ``XML_CHUNK`` bytes at a time, so a part is never
    held whole and a declaration after any amount of padding is still found. Where the parser stops
    because the part is not well-formed XML (binary media, legacy VML drawings, a declaration placed where
    XML does not allow one), the rest of the part is scanned as bytes, so a declaration cannot hide behind
    a syntax error either.
    """
    from xml.sax import SAXException

    from defusedxml import DefusedXmlException
    from defusedxml.expatreader import create_parser

    refused = ExtractError(filename, f"the workbook part {safe_part_name(info.filename)!r} declares a DTD or XML "
                           "entities, which spreadsheets do not need; it is not read", "xlsx_dtd")
    parser = create_parser(forbid_dtd=True, forbid_entities=True, forbid_external=True)
    _quiet_sax(parser)
    with z.open(info) as part:
        seen = b""  # the chunk before the current one: a marker may straddle the point where parsing stopped
        chunk = part.read(XML_CHUNK)
        try:
            while chunk:
                parser.feed(chunk)
                seen, chunk = chunk, part.read(XML_CHUNK)
            parser.close()
        except DefusedXmlException:
            raise refused from None
        except SAXException:
            if _scan_for_dtd(part, seen + chunk):
                raise refused from None


def _quiet_sax(parser) -> None:
    """Only the refusing DTD/entity handlers matter here: drop the per-element Python callbacks so the check
    runs at expat's own speed. defusedxml installs its handlers on the expat object in reset(); feed() would
    call reset() again before the first chunk, so it is made a no-op once the handlers are set."""
    parser.reset()
    expat = parser._parser
    for handler in ("StartElementHandler", "EndElementHandler", "CharacterDataHandler",
                    "ProcessingInstructionHandler", "StartNamespaceDeclHandler", "EndNamespaceDeclHandler"):
        setattr(expat, handler, None)
    parser.reset = lambda: None


def _scan_for_dtd(part, already: bytes) -> bool:
    """Stream the rest of ``part`` for a DTD or entity declaration (ASCII case-insensitive; a marker split
    across two chunks is still found)."""
    tail = b""
    chunk = already
    while chunk:
        window = tail + chunk.upper()
        if any(m in window for m in _DTD_MARKERS):
            return True
        tail = window[-40:]
        chunk = part.read(XML_CHUNK)
    return False


def safe_part_name(name: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in name)[:80]


def _excel_value(value):
    """A cell as read with data_only=False: formulas arrive as their text (=…), array formulas too."""
    text = getattr(value, "text", None)  # openpyxl ArrayFormula / DataTableFormula
    if text is not None and not isinstance(value, str):
        return "=" + str(text).lstrip("=")
    return value


SHEET_PROBE_ROWS = 20  # rows of each sheet looked at for a header when choosing the data sheet


def _sheet_header(sheet) -> list[str]:
    """The first non-blank row among a sheet's first ``SHEET_PROBE_ROWS`` rows, as text."""
    for values in sheet.iter_rows(values_only=True, max_row=SHEET_PROBE_ROWS):
        if values and any(v is not None and str(v).strip() for v in values):
            return [_cell_text(v) for v in values[:MAX_COLUMNS + 1]]
    return []


def _looks_like_data(header: list[str]) -> bool:
    found = {schema.HEADER_LOOKUP.get(schema.header_key(h)) for h in header}
    return all(c in found for c in schema.REQUIRED)


def _quoted(names) -> str:
    return ", ".join(repr(safe_part_name(n)[:40]) for n in names)


def _choose_sheet(book, filename: str):
    """The one worksheet to read, and a note saying which it is and what was left aside (issue 14).

    Only visible worksheets are candidates: a hidden or very hidden sheet is never read, whatever its
    name. Of the visible ones, the sheet whose header row holds every required column is read; a workbook
    with several such visible sheets, or with no visible worksheet at all, is refused (which sheet is
    the extract cannot be guessed safely). A single visible sheet is read even without those headers (the
    missing-columns message then names what is missing).
    """
    worksheets = list(book.worksheets)  # chartsheets hold no rows
    for sheet in worksheets:
        sheet.reset_dimensions()  # never trust the sheet's own claim of its size (e.g. A1:XFD1048576)
    visible = [ws for ws in worksheets if getattr(ws, "sheet_state", None) in (None, "visible")]
    hidden = [ws.title for ws in worksheets if ws not in visible]
    if not visible:
        what = f"its worksheets ({_quoted(hidden)}) are all hidden" if hidden else "it has no worksheet"
        raise ExtractError(filename, f"the workbook has no visible sheet to read: {what}. Unhide the sheet that "
                           "holds the extract (and only that one) and upload it again", "excel_sheet")
    if len(visible) == 1:
        chosen = visible[0]
    else:
        data_like = [ws for ws in visible if _looks_like_data(_sheet_header(ws))]
        if len(data_like) > 1:
            raise ExtractError(filename, f"the workbook has {len(data_like)} visible sheets that look like extracts "
                               f"({_quoted(ws.title for ws in data_like)}); it is not clear which to read. Keep the "
                               "extract on one sheet and delete the others (or upload each as its own file)",
                               "excel_sheet")
        if not data_like:
            raise ExtractError(filename, f"none of the workbook's {len(visible)} visible sheets "
                               f"({_quoted(ws.title for ws in visible)}) has the required column headers "
                               f"({', '.join(schema.REQUIRED)}) in its first {SHEET_PROBE_ROWS} rows; download "
                               "the template to see the expected headers", "missing_columns")
        chosen = data_like[0]
    note = f"Read the sheet {safe_part_name(chosen.title)!r}."
    others = [ws.title for ws in visible if ws is not chosen]
    if others:
        note += f" Visible sheets without the extract's headers, not read: {_quoted(others)}."
    if hidden:
        note += f" Hidden sheets, not read: {_quoted(hidden)}."
    return chosen, note


def _hidden_rows_and_columns(data: bytes, part: str) -> tuple[set[int], list[int]]:
    """The sheet's hidden row numbers and hidden column indices (0-based), from its XML (issue 14 review).

    openpyxl's read-only mode does not expose row or column dimensions, so the part is read here:
    ``<row r=".." hidden="1">`` and ``<col min=".." max=".." hidden="1">``, and rows of height 0 or columns
    of width 0, which Excel shows as hidden too. A sheet with no ``hidden=``, ``ht="0`` or ``width="0``
    anywhere (nearly all) is only scanned as bytes; otherwise expat streams it in chunks with only
    a start-element handler. DTDs were already refused from every part by ``check_workbook_archive``.
    """
    from xml.parsers import expat

    rows: set[int] = set()
    columns: list[int] = []
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        name = part.lstrip("/")
        tail = b""
        with z.open(name) as stream:
            found = False
            while chunk := stream.read(XML_CHUNK):
                window = tail + chunk
                if b"hidden=" in window or b'ht="0' in window or b'width="0' in window:
                    found = True
                    break
                tail = chunk[-10:]
        if not found:
            return rows, columns
        state = {"row": 0}

        def start(tag, attrs):
            local = tag.rsplit(":", 1)[-1]
            if local == "row":
                ref = attrs.get("r")
                state["row"] = int(ref) if ref and ref.isdigit() else state["row"] + 1
                if attrs.get("hidden") in ("1", "true") or _zero(attrs.get("ht")):
                    rows.add(state["row"])
            elif local == "col" and (attrs.get("hidden") in ("1", "true") or _zero(attrs.get("width"))):
                low, high = attrs.get("min", ""), attrs.get("max", "")
                if low.isdigit() and high.isdigit():
                    columns.extend(range(int(low) - 1, min(int(high), MAX_COLUMNS + 1)))

        parser = expat.ParserCreate()
        parser.StartElementHandler = start
        with z.open(name) as stream:
            while chunk := stream.read(XML_CHUNK):
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
    return rows, sorted(set(columns))


def _zero(size: str | None) -> bool:
    """A row height or column width of zero: Excel shows such a row or column as hidden too."""
    try:
        return size is not None and float(size) == 0
    except ValueError:
        return False


def _refuse_hidden_data(values, number: int, hidden_rows: set[int], hidden_columns: list[int], title: str,
                        filename: str) -> None:
    """Refuse a sheet whose hidden rows or columns hold data: the person uploading cannot see it (a hidden
    column of NHS numbers was stored unseen), so it is neither read nor skipped silently."""
    def filled(v) -> bool:
        return v is not None and bool(str(v).strip())

    where = None
    if number in hidden_rows and values and any(filled(v) for v in values):
        where = f"row {number}"
    else:
        for index in hidden_columns:
            if index < len(values or ()) and filled(values[index]):
                from openpyxl.utils import get_column_letter

                where = f"column {get_column_letter(index + 1)} (row {number})"
                break
    if where:
        raise ExtractError(filename, f"the sheet {safe_part_name(title)!r} has hidden rows or columns holding "
                           f"data (first found: {where}); hidden cells are not read. Unhide or delete the hidden "
                           "rows/columns, check what they hold, and upload the file again", "excel_hidden")


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
        sheet, note = _choose_sheet(book, filename)
        hidden_rows, hidden_columns = _hidden_rows_and_columns(data, sheet._worksheet_path)
        iterator = sheet.iter_rows(values_only=True)
        header = None
        number = 0
        for values in iterator:
            number += 1
            if hidden_rows or hidden_columns:
                _refuse_hidden_data(values, number, hidden_rows, hidden_columns, sheet.title, filename)
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
            if hidden_rows or hidden_columns:
                _refuse_hidden_data(values, number, hidden_rows, hidden_columns, sheet.title, filename)
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
    return headers, columns, rows_arr, issues, blank, (sheet.title, note)


# -- Parquet --------------------------------------------------------------------------------------

def _read_parquet(data: bytes, filename: str, max_rows: int):
    """Read a Parquet file without trusting it to be small once decoded (issue 14).

    First the footer alone is checked: columns, rows, row groups and their uncompressed size. A 600 KB
    file can still hold 5 million copies of one long dictionary value (5 GB decoded) while its footer
    looks small, so only the extract's own columns are then read, ``PARQUET_BATCH_ROWS`` rows at a time
    with text kept dictionary-encoded, and the decoded size is counted exactly batch by batch (from the
    dictionary's lengths and the indices, without decoding): the file is refused the moment the count
    passes the limit. Nothing is allocated in proportion to what the file expands to.

    Per-column-chunk metadata (``RowGroupMetaData.column``) is deliberately not read: on a damaged footer
    pyarrow 26 throws a C++ exception there that aborts the whole process (found by the structured fuzzer;
    the same file read through the reader below raises an ordinary error). Row-group totals are safe.
    """
    try:
        meta_file = pq.ParquetFile(pa.BufferReader(data))
        meta = meta_file.metadata
        names = meta_file.schema_arrow.names
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for broken files
        raise ExtractError(filename, f"the Parquet file cannot be read ({_short(exc)})", "not_parquet") from exc
    if len(names) > MAX_COLUMNS:
        raise ExtractError(filename, f"the file has {len(names):,} columns; at most {MAX_COLUMNS} are read "
                           "(the extract has 13)", "too_many_columns")
    if meta.num_rows > max_rows:
        raise ExtractError(filename, f"the file has {meta.num_rows:,} rows; the limit is {max_rows:,}", "too_large")
    if meta.num_row_groups > PARQUET_MAX_ROW_GROUPS:
        raise ExtractError(filename, f"the file has {meta.num_row_groups:,} row groups; at most "
                           f"{PARQUET_MAX_ROW_GROUPS:,} are read (write it with larger row groups)", "parquet_bomb")
    canonical = [schema.HEADER_LOOKUP.get(schema.header_key(n)) for n in names]
    wanted = [i for i, c in enumerate(canonical) if c is not None]
    wanted_names = [names[i] for i in wanted]
    if not wanted or any(c not in canonical for c in schema.REQUIRED):
        # Nothing is read from a file without the required columns: map_columns names what is missing.
        return names, [None] * len(names), np.arange(2, 2 + meta.num_rows, dtype=np.int64), empty_issues(), 0
    # What every cell of the columns read could need at its longest (4 UTF-8 bytes a character, plus
    # slack), and never more than PARQUET_MAX_TEXT: a file beyond that cannot be an extract.
    _refuse_nested(meta_file.schema_arrow, wanted_names, filename)
    per_row = sum(4 * schema.MAX_LENGTH[c] + 16 for c in canonical if c is not None)
    limit = min(PARQUET_MAX_TEXT, max(meta.num_rows, 0) * per_row + (1 << 20))
    uncompressed = sum(max(meta.row_group(g).total_byte_size, 0) for g in range(meta.num_row_groups))
    if uncompressed > PARQUET_MAX_TEXT:
        raise ExtractError(filename, f"the Parquet file's data is {_gb(uncompressed)} uncompressed ({meta.num_rows:,} "
                           f"rows from {_gb(len(data))}); the limit is {_gb(PARQUET_MAX_TEXT)}. It is not "
                           "read: a 'decompression bomb', or far more data than an extract holds", "parquet_bomb")
    try:
        reader = pq.ParquetFile(pa.BufferReader(data), read_dictionary=_string_leaves(meta_file, wanted_names))
        batches = []
        decoded = 0
        for batch in reader.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=wanted_names, use_threads=False):
            decoded += sum(_decoded_bytes(col) for col in batch.columns)
            if decoded > limit:
                raise ExtractError(filename, f"the Parquet file holds more than {_gb(limit)} of text once decoded "
                                   f"(found after {sum(b.num_rows for b in batches) + batch.num_rows:,} of its "
                                   f"{meta.num_rows:,} rows, from {_gb(len(data))}); the limit for this file "
                                   f"is every value at its column's longest, and at most {_gb(PARQUET_MAX_TEXT)}. It "
                                   "is not read: a 'decompression bomb', or far more text than an extract holds",
                                   "parquet_bomb")
            batches.append(batch)
        table = pa.Table.from_batches(batches, schema=batches[0].schema if batches else None) if batches else \
            reader.schema_arrow.empty_table().select(wanted_names)
    except ExtractError:
        raise
    except Exception as exc:  # noqa: BLE001 - damaged pages, bad encodings, unsupported types
        raise ExtractError(filename, f"the Parquet file cannot be read ({_short(exc)})", "not_parquet") from exc
    if table.num_rows > max_rows or table.num_rows != meta.num_rows:
        raise ExtractError(filename, f"the Parquet file holds {table.num_rows:,} rows but its footer says "
                           f"{meta.num_rows:,}; it is damaged and is not read", "not_parquet")
    read_headers, read_columns, rows, issues, blank = table_columns(table, filename)
    by_name = dict(zip(read_headers, read_columns))
    # Every header (for the ignored-columns list and duplicate checks); only the extract's columns were read.
    return names, [by_name.get(n) for n in names], rows, issues, blank


def _gb(size: float) -> str:
    """A size for a message: GB, MB or KB, whichever reads naturally."""
    if size >= 1e8:
        return f"{size / 1e9:,.1f} GB"
    return f"{size / 1e6:,.1f} MB" if size >= 1e6 else f"{max(size / 1e3, 0.1):,.1f} KB"


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:120] + "…") if len(text) > 120 else (text or type(exc).__name__)


def _is_scalar(t) -> bool:
    """A type whose every value is one fixed-size number or one piece of text (read dictionary-encoded).

    Anything else (list, large list, fixed-size list, struct, map, union, a wide fixed-size binary, a
    dictionary of any of these) can hold any number of values in one row, so a single batch could expand
    without bound before its size is counted: the extract's columns are all scalars and never need them.
    """
    if pa.types.is_dictionary(t):
        return _is_scalar(t.value_type)
    if _is_text(t):
        return True
    if pa.types.is_fixed_size_binary(t):
        return t.byte_width <= 32  # decimals, UUIDs; a wide one is a row-sized blob
    return (pa.types.is_null(t) or pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t)
            or pa.types.is_decimal(t) or pa.types.is_temporal(t))


def _refuse_nested(arrow_schema: pa.Schema, wanted: list[str], filename: str) -> None:
    """Refuse, from the schema alone (no data page read), a non-scalar type in one of the extract's columns."""
    for column in arrow_schema:
        if column.name in wanted and not _is_scalar(column.type):
            raise ExtractError(filename, f"column {safe_part_name(column.name)!r} has type "
                               f"{safe_part_name(str(column.type))}, which an extract column never has (each cell "
                               "must hold one value: text, a number or a date); it is not read. Write the file "
                               "with plain columns", "parquet_type")


def _string_leaves(parquet_file, wanted: list[str]) -> list[str]:
    """Top-level text columns among ``wanted``: read dictionary-encoded, so a bomb never expands in memory."""
    out = []
    for column in parquet_file.schema_arrow:
        if column.name in wanted:
            t = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
            if _is_text(t):
                out.append(column.name)
    return out


def _decoded_bytes(col) -> int:
    """Bytes of text a column of one batch holds once dictionary-decoded, computed without decoding it.

    Text only (as a CSV would hold it), not Arrow's offsets: those are at most 8 bytes a value and bounded
    by the row limit, and counting them would refuse a 5-million-row Parquet extract whose CSV is accepted.
    """
    if isinstance(col, pa.ChunkedArray):
        return sum(_decoded_bytes(c) for c in col.chunks)
    if pa.types.is_dictionary(col.type):
        dictionary = col.dictionary
        if _is_text(dictionary.type):
            per_row = pc.take(pc.binary_length(dictionary), col.indices)
            return int(pc.sum(per_row).as_py() or 0)
        return dictionary.nbytes + col.indices.nbytes
    if _is_text(col.type):
        return int(pc.sum(pc.binary_length(col)).as_py() or 0)
    return col.nbytes


def _is_text(t) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) \
        or pa.types.is_large_binary(t) or pa.types.is_string_view(t) or pa.types.is_binary_view(t)


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
        if not any(str(h).strip() for h in headers):
            found = "the first row is blank; the header row must be the first row"
        else:
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
