"""Structured hostile files for fuzzing the upload path (issue 14): random Parquet and .xlsx *structure*,
not only random bytes. Every builder takes a ``random.Random`` and returns ``FuzzFile``; the hypothesis
tests (tests/test_upload_fuzz_structure.py) draw the seed, and bench/bench_fuzz.py walks seeds to count.

Parquet: random schemas (our columns, their header variants, unrelated and duplicate-meaning columns),
random Arrow types for our columns (text, large text, dictionary, integers, floats with NaN/inf, booleans,
dates, timestamps with zones, decimals, binary, nested lists/structs/maps, nulls), writer options
(row-group size, compression, dictionary on/off, statistics on/off, format version), huge dictionaries
and long dictionary values (with the text limit lowered so the bomb path runs at test size), many row
groups, and damage after writing (truncation, bit flips in the footer or the pages).

.xlsx: one to four sheets with random titles and visibility (visible, hidden, very hidden, all hidden),
headers ours or not, cells of every type openpyxl writes (text, numbers, dates, booleans, formulas,
errors), merged cells, shared strings (openpyxl writes them) and forged shared-string indices, false
dimension claims, and zip structure oddities (stored members, duplicate members, dropped members, junk
members, path-like member names, a zip comment, truncation, bit flips inside a part).
"""
from __future__ import annotations

import contextlib
import io
import random
import re
import string
import warnings
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from unittest import mock

import numpy as np
import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from lib.records import schema
from tests.test_records import good_rows

# Strings that have broken readers before, or should be refused or neutralised.
NASTY = ["", " ", "\r", "\n", "\r\n", "\x00", "\x01", "\x1b[31m", "=1+1", "+cmd|' /C calc'!A0", "@SUM(1)", "-2+3",
         "\u202e", "\ufeff", "💥", "Zoë", "O'Brien", "a,b", '"quoted"', "\t", "NULL", "N/A", "#REF!", "9434765919",
         "LS6 2AB", "2025-03-14", "31/02/2025", "police", "E23000010", "Y", "<!DOCTYPE x>", "&amp;", "\\", "%s%n"]


@dataclass
class FuzzFile:
    data: bytes
    filename: str
    description: str
    limits: dict[str, int] = field(default_factory=dict)  # extract-module limits lowered for this case


def _text(rnd: random.Random, max_len: int = 40) -> str:
    kind = rnd.random()
    if kind < 0.45:
        return rnd.choice(NASTY)
    if kind < 0.75:
        alphabet = string.ascii_letters + string.digits + " -_/.,;:'\"=+@\t\r\n"
        return "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, max_len)))
    if kind < 0.95:
        return "".join(chr(rnd.choice([rnd.randint(32, 126), rnd.randint(0xA0, 0x2FFF), rnd.randint(0, 31),
                                       rnd.randint(0x1F300, 0x1F6FF)])) for _ in range(rnd.randint(1, max_len)))
    return rnd.choice("AZ=") * rnd.choice([200, 1_000, 5_000])


_GOOD = good_rows(5)


def _good_value(rnd: random.Random, column: str) -> str:
    return _GOOD[rnd.randrange(5)][column]


def _column_values(rnd: random.Random, column: str, n: int, good: float = 0.6) -> list:
    """Mostly valid values for our column (share ``good``), some nasty, some missing."""
    canonical = schema.HEADER_LOOKUP.get(schema.header_key(column))
    out = []
    for _ in range(n):
        r = rnd.random()
        out.append(None if r < 0.05 else _good_value(rnd, canonical) if r < good and canonical else _text(rnd))
    return out


def _header_names(rnd: random.Random, plausible: bool = False) -> list[str]:
    """A random set of headers: canonical names, their variants, unrelated names, duplicates in meaning.
    ``plausible``: every column of ours present (as itself or a variant), so the deep path is reached."""
    names: list[str] = []
    for column in schema.COLUMN_NAMES:
        r = rnd.random() * (0.85 if plausible else 1)
        if r < 0.65:
            names.append(column)
        elif r < 0.85:
            names.append(rnd.choice(schema.COLUMN_VARIANTS[column]))
    for _ in range(rnd.choice([0, 0, 1, 3])):
        names.append(_text(rnd, 20) or "blank")
    if rnd.random() < 0.08 and names:  # two headers meaning the same column
        names.append(names[0].upper().replace("_", " "))
    rnd.shuffle(names)
    unique, seen = [], set()
    for name in names:  # Arrow allows duplicate names; Parquet writers keep them, so sometimes keep them
        if name in seen and rnd.random() < 0.7:
            continue
        seen.add(name)
        unique.append(name)
    return unique


# -- Parquet ------------------------------------------------------------------------------------------

ARROW_KINDS = ("string", "string", "string", "large_string", "dictionary", "int64", "int8", "uint64", "float64",
               "float_special", "bool", "date32", "timestamp", "timestamp_tz", "decimal", "binary",
               "fixed_binary", "list", "struct", "map", "null", "time", "duration", "dict_int")


# Types an agency's tool might really write for each of our columns (the "plausible" files).
PLAUSIBLE_KINDS = {"encounter_date": ("string", "date32", "timestamp"), "date_of_birth": ("string", "date32"),
                   "cse_flag": ("string", "bool", "dictionary"), "nhs_number": ("string", "int64_nhs")}


def _arrow_column(rnd: random.Random, name: str, n: int, plausible: bool = False) -> pa.Array:
    canonical = schema.HEADER_LOOKUP.get(schema.header_key(name))
    if plausible:
        kind = rnd.choice(PLAUSIBLE_KINDS.get(canonical, ("string", "large_string", "dictionary")))
    else:
        kind = rnd.choice(ARROW_KINDS)
    text = _column_values(rnd, name, n, good=0.9 if plausible else 0.6)
    if kind == "int64_nhs":
        return pa.array([int(v) if v and v.isdigit() else None for v in text], pa.int64())
    if kind in ("date32", "timestamp") and plausible:
        days = [rnd.randint(-3_000, 20_000) for _ in range(n)]
        values = [date(1990, 1, 1) + timedelta(days=d) for d in days]
        return pa.array(values if kind == "date32" else [datetime(v.year, v.month, v.day) for v in values],
                        pa.date32() if kind == "date32" else pa.timestamp("us"))
    if kind == "bool" and plausible:
        return pa.array([rnd.random() < 0.3 for _ in range(n)], pa.bool_())
    if kind == "string":
        return pa.array(text, pa.string())
    if kind == "large_string":
        return pa.array(text, pa.large_string())
    if kind == "dictionary":
        return pa.array(text, pa.string()).dictionary_encode()
    if kind in ("int64", "int8", "uint64"):
        lo, hi = {"int64": (-(2 ** 63), 2 ** 63 - 1), "int8": (-128, 127), "uint64": (0, 2 ** 64 - 1)}[kind]
        return pa.array([None if rnd.random() < 0.1 else rnd.randint(lo, hi) for _ in range(n)], kind)
    if kind in ("float64", "float_special"):
        pool = [0.0, -0.0, 1.5, 9434765919.0, 1e300, -1e-300] + ([float("nan"), float("inf"), float("-inf")]
                                                                  if kind == "float_special" else [])
        return pa.array([None if rnd.random() < 0.1 else rnd.choice(pool) for _ in range(n)], pa.float64())
    if kind == "bool":
        return pa.array([None if rnd.random() < 0.1 else rnd.random() < 0.5 for _ in range(n)], pa.bool_())
    if kind == "date32":
        return pa.array([date(rnd.randint(1, 9999), rnd.randint(1, 12), rnd.randint(1, 28)) for _ in range(n)],
                        pa.date32())
    if kind in ("timestamp", "timestamp_tz"):
        tz = timezone(timedelta(hours=rnd.randint(-12, 14))) if kind == "timestamp_tz" else None
        values = [datetime(rnd.randint(1900, 2100), 1, 1, rnd.randint(0, 23), tzinfo=tz) for _ in range(n)]
        return pa.array(values, pa.timestamp(rnd.choice(["s", "ms", "us", "ns"]), tz="+01:00" if tz else None))
    if kind == "decimal":
        return pa.array([Decimal(rnd.randint(-10 ** 9, 10 ** 9)) / 100 for _ in range(n)], pa.decimal128(18, 2))
    if kind == "binary":
        return pa.array([rnd.randbytes(rnd.randint(0, 12)) for _ in range(n)], pa.binary())
    if kind == "fixed_binary":
        return pa.array([rnd.randbytes(4) for _ in range(n)], pa.binary(4))
    if kind == "list":
        return pa.array([[v] if v is not None else None for v in text], pa.list_(pa.string()))
    if kind == "struct":
        return pa.array([{"a": v, "b": rnd.randint(0, 9)} for v in text],
                        pa.struct([("a", pa.string()), ("b", pa.int64())]))
    if kind == "map":
        return pa.array([[("k", v or "")] for v in text], pa.map_(pa.string(), pa.string()))
    if kind == "null":
        return pa.nulls(n)
    if kind == "time":
        return pa.array([rnd.randint(0, 86_399_999_999) for _ in range(n)], pa.time64("us"))
    if kind == "duration":
        return pa.array([rnd.randint(-10 ** 12, 10 ** 12) for _ in range(n)], pa.duration("ms"))
    return pa.DictionaryArray.from_arrays(pa.array([rnd.randint(0, 2) for _ in range(n)], pa.int8()),
                                          pa.array([7, 8, 9], pa.int64()))  # dict_int


def _huge_dictionary(rnd: random.Random, n: int) -> pa.Array:
    """A dictionary column built to expand: many distinct long values, or one very long value repeated."""
    if rnd.random() < 0.5:
        width = rnd.choice([100, 1_000, 10_000])
        indices = pa.array(np.zeros(n, dtype=np.int32))
        return pa.DictionaryArray.from_arrays(indices, pa.array([rnd.choice("xR9") * width]))
    distinct = rnd.choice([1_000, 20_000])
    dictionary = pa.array([f"R{i:07d}" + "p" * rnd.choice([0, 50]) for i in range(distinct)])
    indices = pa.array(np.asarray([rnd.randrange(distinct) for _ in range(min(n, 50))] * (n // 50 + 1),
                                  dtype=np.int32)[:n])
    return pa.DictionaryArray.from_arrays(indices, dictionary)


def random_parquet(rnd: random.Random) -> FuzzFile:
    plausible = rnd.random() < 0.4  # a file an agency might really send, with some bad cells
    bomb = rnd.random() < 0.15
    many_groups = rnd.random() < 0.1
    n = rnd.choice([0, 1, 2, 5, 17, 40]) if not (bomb or many_groups) else 300 if many_groups \
        else rnd.choice([300, 1_000, 3_000])
    names = _header_names(rnd, plausible)
    columns = {}
    for name in names:
        columns[name] = _arrow_column(rnd, name, n, plausible)
    notes = ["plausible"] if plausible else []
    limits: dict[str, int] = {}
    if bomb:
        target = rnd.choice([c for c in names] or ["source_record_id"])
        columns[target] = _huge_dictionary(rnd, n)
        limits["PARQUET_MAX_TEXT"] = rnd.choice([64 << 10, 1 << 20])  # the bomb path at test size
        notes.append(f"huge dictionary in {target!r}")
    arrays = list(columns.values())
    table = pa.Table.from_arrays(arrays, names=list(columns)) if arrays else pa.table({})
    options = {
        "row_group_size": rnd.choice([1, 2]) if many_groups else rnd.choice([1, 2, 3, 7, 64, None]) if n < 100
        else rnd.choice([64, 500, None]),
        "compression": rnd.choice(["none", "snappy", "gzip", "zstd", "brotli", "lz4"]),
        "use_dictionary": rnd.random() < 0.7,
        "write_statistics": rnd.random() < 0.7,
        "version": rnd.choice(["1.0", "2.4", "2.6"]),
        "store_schema": rnd.random() < 0.8,
        "data_page_size": rnd.choice([64, 1 << 20]),
    }
    if many_groups:
        limits["PARQUET_MAX_ROW_GROUPS"] = rnd.choice([100, 10_000])  # refused, or read group by group
        notes.append("one row per row group")
    buffer = io.BytesIO()
    try:
        pq.write_table(table, buffer, **options)
        data = buffer.getvalue()
    except (pa.ArrowException, ValueError, TypeError) as exc:  # a schema the writer itself refuses
        data = b"PAR1" + rnd.randbytes(64) + b"PAR1"
        notes.append(f"writer refused ({type(exc).__name__})")
    damage = rnd.random() * (3 if plausible else 1)
    if damage < 0.1 and len(data) > 8:
        cut = rnd.randrange(4, len(data))
        data = data[:cut]
        notes.append(f"truncated at {cut}")
    elif damage < 0.25 and len(data) > 16:
        flipped = bytearray(data)
        footer = rnd.random() < 0.6  # the footer (schema, row groups, statistics) is the interesting part
        for _ in range(rnd.randint(1, 6)):
            pos = rnd.randrange(max(4, len(data) - 400), len(data) - 8) if footer else rnd.randrange(4, len(data))
            flipped[pos] ^= 1 << rnd.randrange(8)
        data = bytes(flipped)
        notes.append("bit flips in the " + ("footer" if footer else "file"))
    types = ", ".join(f"{k}:{v.type}" for k, v in list(columns.items())[:6])
    return FuzzFile(data, rnd.choice(["x.parquet", "x.pq"]),
                    f"parquet n={n} {options['compression']} rg={options['row_group_size']} [{types}] "
                    + "; ".join(notes), limits)


# -- Excel ----------------------------------------------------------------------------------------------

def _cell(rnd: random.Random, column: str | None, good: float = 0.5):
    r = rnd.random()
    if r < good and column:
        return _good_value(rnd, column)
    if r < 0.6:
        return None
    if r < 0.7:
        return rnd.choice([0, -1, 1.5, 9434765919, 1e308, True, False])
    if r < 0.8:
        return rnd.choice([date(2025, 3, 14), datetime(2010, 7, 2, 13, 5), datetime(1900, 1, 1)])
    if r < 0.88:
        return rnd.choice(["=A1&B1", "=1/0", '=HYPERLINK("http://evil","x")', "=SUM(A1:A3)", "=#REF!"])
    return _text(rnd)


def _sheet_rows(rnd: random.Random, plausible: bool = False) -> list[list]:
    ours = plausible or rnd.random() < 0.7
    header = _header_names(rnd, plausible) if ours else [_text(rnd, 12) for _ in range(rnd.randint(1, 6))]
    canonical = [schema.HEADER_LOOKUP.get(schema.header_key(h)) for h in header]
    rows: list[list] = [[] for _ in range(rnd.choice([0, 0, 1, 3]))] + [list(header)]
    width_jitter = [0] if plausible else [0, 0, 0, 1, -1]
    for _ in range(rnd.choice([3, 8, 20] if plausible else [0, 1, 3, 8])):
        width = len(header) + rnd.choice(width_jitter)
        rows.append([_cell(rnd, canonical[i] if i < len(canonical) else None, 0.93 if plausible else 0.5)
                     for i in range(max(width, 0))])
    return rows


def _zip_members(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(info, z.read(info.filename)) for info in z.infolist()]


def _write_zip(members, compression=zipfile.ZIP_DEFLATED, comment: bytes = b"") -> bytes:
    out = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(out, "w", compression) as z:
        warnings.simplefilter("ignore", UserWarning)  # duplicate member names are one of the oddities
        for name, content in members:
            z.writestr(name, content)
        z.comment = comment
    return out.getvalue()


def random_xlsx(rnd: random.Random) -> FuzzFile:
    plausible = rnd.random() < 0.4  # a workbook an agency might really send, with some bad cells
    book = openpyxl.Workbook()
    book.remove(book.active)
    states = []
    for i in range(1 if plausible else rnd.choice([1, 1, 2, 3, 4])):
        title = rnd.choice(["Sheet1", "data", "Encounters", "Notes", "extract", f"S{i}",
                            ILLEGAL_CHARACTERS_RE.sub("", re.sub(r"[\[\]:*?/\\]", "", _text(rnd, 20)))[:31]
                            or f"T{i}"])
        while title in book.sheetnames or not title.strip("'"):
            title = f"{title[:28]}{i}x"
        sheet = book.create_sheet(title.strip("'") or f"U{i}")
        for row in _sheet_rows(rnd, plausible):  # openpyxl refuses control characters: the zip edits below add those
            sheet.append([ILLEGAL_CHARACTERS_RE.sub("?", v) if isinstance(v, str) else v for v in row])
        if rnd.random() < 0.2 and sheet.max_row > 1 and sheet.max_column > 1:
            sheet.merge_cells(start_row=rnd.randint(1, sheet.max_row), start_column=1,
                              end_row=sheet.max_row, end_column=rnd.randint(1, sheet.max_column))
        state = "visible" if plausible else rnd.choice(["visible", "visible", "hidden", "veryHidden"])
        states.append(state)
    notes = (["plausible"] if plausible else []) + [f"{len(states)} sheets {states}"]
    visible = [i for i, s in enumerate(states) if s == "visible"]
    for sheet, state in zip(book.worksheets, states):
        sheet.sheet_state = state
    if not visible:
        book.worksheets[0].sheet_state = "visible"  # openpyxl will not save otherwise; hidden again below
    book.active = visible[0] if visible else 0
    buffer = io.BytesIO()
    book.save(buffer)
    data = buffer.getvalue()
    members = [(info.filename, content) for info, content in _zip_members(data)]
    if not visible:
        members = [(n, c.replace(b'sheetId="1" state="visible"', b'sheetId="1" state="hidden"')
                    if n == "xl/workbook.xml" else c) for n, c in members]
        notes.append("all sheets hidden")
    odd = rnd.random() * (2 if plausible else 1)
    compression = zipfile.ZIP_DEFLATED
    comment = b""
    sheet_parts = [i for i, (n, _) in enumerate(members) if n.startswith("xl/worksheets/sheet")]
    if odd < 0.08:
        compression = zipfile.ZIP_STORED
        notes.append("stored, not deflated")
    elif odd < 0.16 and sheet_parts:
        i = rnd.choice(sheet_parts)
        members[i] = (members[i][0], re.sub(rb'<dimension ref="[^"]*"/>', b'<dimension ref="A1:XFD1048576"/>',
                                            members[i][1]))
        notes.append("dimension claims A1:XFD1048576")
    elif odd < 0.24 and sheet_parts:
        i = rnd.choice(sheet_parts)
        forged = rb'<c r="\1" t="s"><v>99999</v></c><c r="ZZ1">'  # a string index far past the table
        members[i] = (members[i][0], re.sub(rb'<c r="([A-Z]+[0-9]+)"( [^>]*)?>', forged, members[i][1], count=1))
        notes.append("forged shared-string index")
    elif odd < 0.3:
        name = rnd.choice([m[0] for m in members])
        members.append((name, rnd.randbytes(rnd.randint(0, 200))))
        notes.append(f"duplicate member {name}")
    elif odd < 0.36:
        dropped = members.pop(rnd.randrange(len(members)))
        notes.append(f"dropped member {dropped[0]}")
    elif odd < 0.42:
        members.append((rnd.choice(["../../evil.xml", "/abs.xml", "xl/worksheets/../../x.xml", "xl\\back.xml",
                                    "xl/junk.bin"]), b"<x/>" if rnd.random() < 0.5 else rnd.randbytes(100)))
        notes.append("odd member name")
    elif odd < 0.48:
        comment = rnd.randbytes(rnd.randint(1, 300))
        notes.append("zip comment")
    elif odd < 0.56 and sheet_parts:
        i = rnd.choice(sheet_parts)
        content = bytearray(members[i][1])
        for _ in range(rnd.randint(1, 5)):
            content[rnd.randrange(len(content))] = rnd.choice(b"<>&\"'\x00=/ ")
        members[i] = (members[i][0], bytes(content))
        notes.append("characters flipped in a sheet")
    data = _write_zip(members, compression, comment)
    if rnd.random() < 0.05:
        cut = rnd.randrange(1, len(data))
        data = data[:cut]
        notes.append(f"truncated at {cut}")
    return FuzzFile(data, rnd.choice(["x.xlsx", "x.xlsm"]), "xlsx " + "; ".join(notes))


BUILDERS = {"parquet": random_parquet, "xlsx": random_xlsx}


def limits_lowered(case: FuzzFile):
    """A context in which lib.records.extract runs with the case's lowered limits (if any)."""
    from lib.records import extract

    return mock.patch.multiple(extract, **case.limits) if case.limits else contextlib.nullcontext()
