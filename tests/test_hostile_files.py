"""Hostile files from issue 14, one regression test each: a Parquet decompression bomb, carriage-return-only
CSV, hidden Excel sheets, and a DTD placed after the first 4 KB of a workbook part. Each file is refused
with a clear message naming the file (nothing stored), or read correctly."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from datetime import date
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lib.records import store
from lib.records.extract import ExtractError, read_extract
from lib.records.ingest import commit, prepare
from tests.test_records import KEY, TODAY, csv_bytes, good_rows

ROOT = Path(__file__).resolve().parents[1]


# -- Parquet decompression bomb ------------------------------------------------------------------------

def parquet_bomb(rows: int = 5_000_000, width: int = 1_000, *, statistics: bool = True,
                 columns: tuple[str, ...] = ("source_record_id",), complete: bool = True) -> bytes:
    """About 0.6 MB on disk: ``rows`` copies of one ``width``-character dictionary value in each of
    ``columns``; with ``complete``, the other required columns hold one short valid value each, so the
    file looks like an extract (without them it is refused from its footer as missing columns)."""
    indices = pa.array(np.zeros(rows, dtype=np.int32))
    short = {"source_record_id": "R1", "agency_type": "police", "agency_code": "E23000010",
             "encounter_date": "2025-03-14"}
    data = {name: pa.DictionaryArray.from_arrays(indices, pa.array([value]))
            for name, value in short.items() if complete and name not in columns}
    data.update({name: pa.DictionaryArray.from_arrays(indices, pa.array(["x" * width])) for name in columns})
    buffer = io.BytesIO()
    pq.write_table(pa.table(data), buffer, write_statistics=statistics)
    return buffer.getvalue()


_REFUSE_IN_CHILD = r"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # a regression must fail here, not swap the machine
from lib.records.extract import ExtractError, read_extract
try:
    read_extract(sys.argv[1])
    outcome = {"outcome": "read"}
except ExtractError as exc:
    outcome = {"outcome": "refused", "code": exc.code, "message": exc.message}
# VmHWM is this process's own peak (ru_maxrss would carry over the parent's peak across fork and exec on
# Linux, so a large test runner made every child look 2 GB big).
with open("/proc/self/status") as status:
    outcome["peak_rss_mb"] = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
print(json.dumps(outcome))
"""


def refuse_in_child(path: Path) -> dict:
    """Read ``path`` in a fresh process capped at 3 GB of address space; its outcome and peak RSS."""
    run = subprocess.run([sys.executable, "-c", _REFUSE_IN_CHILD, str(path)], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("statistics", [True, False], ids=["with statistics", "without statistics"])
def test_parquet_bomb_is_refused_without_expanding(tmp_path, statistics):
    data = parquet_bomb(statistics=statistics)
    assert len(data) < 700_000  # the issue's ~600 KB file
    path = tmp_path / "bomb.parquet"
    path.write_bytes(data)
    result = refuse_in_child(path)
    print(f"parquet bomb ({'with' if statistics else 'without'} statistics): peak RSS "
          f"{result['peak_rss_mb']:.0f} MB")
    assert result["outcome"] == "refused" and result["code"] == "parquet_bomb", result
    assert "GB" in result["message"] and "not read" in result["message"]
    # Bounded: the file expands to 5 GB; refusing it holds well under one (the cap above is 3 GB).
    assert result["peak_rss_mb"] < 1_000, result


def test_a_bomb_without_our_columns_is_refused_from_its_footer(tmp_path):
    path = tmp_path / "bare.parquet"
    path.write_bytes(parquet_bomb(columns=("surname",), complete=False))
    result = refuse_in_child(path)
    assert result["outcome"] == "refused" and result["code"] == "missing_columns", result
    assert result["peak_rss_mb"] < 1_000, result


def test_a_smaller_bomb_is_refused_against_the_columns_longest_values(tmp_path):
    """1 million rows of 1,000 characters (1 GB) is under the 1 GiB cap, but no source_record_id is
    longer than 64 characters: what the file claims is checked against what its columns can hold."""
    path = tmp_path / "smaller.parquet"
    path.write_bytes(parquet_bomb(rows=1_000_000))
    result = refuse_in_child(path)
    assert result["outcome"] == "refused" and result["code"] == "parquet_bomb", result
    assert result["peak_rss_mb"] < 1_000, result


def test_a_damaged_footer_that_aborted_pyarrow_is_refused(tmp_path):
    """Found by the structured fuzzer (tests/fuzz_structures.py, seed 202 of random_parquet): a bit flip in
    a column chunk's level histogram. pyarrow 26 aborts the whole process (std::terminate: it would take
    the app's server down) when that chunk's metadata is read through RowGroupMetaData.column(); the reader
    raises an ordinary error. Run in a child process so a regression fails this test, not the test run."""
    path = ROOT / "tests" / "data" / "parquet_damaged_footer_abort.parquet"
    result = refuse_in_child(path)
    # Refused, never aborted: its damaged column is a struct, so the schema check refuses it before any data or
    # column-chunk metadata is read (before that check existed, the read itself failed: not_parquet).
    assert result["outcome"] == "refused" and result["code"] in ("parquet_type", "not_parquet"), result
    assert "histogram" in result["message"] if result["code"] == "not_parquet" else "struct" in result["message"]


def test_parquet_bomb_leaves_the_store_unchanged(tmp_path):
    con = store.connect(tmp_path / "s.duckdb")
    try:
        commit(con, prepare(csv_bytes(good_rows(3)), "seed.csv", key=KEY, today=TODAY))
        before = store.counts(con)
        with pytest.raises(ExtractError) as exc:
            prepare(parquet_bomb(rows=2_000_000, width=2_000, columns=("source_record_id", "agency_type")),
                    "bomb.parquet", key=KEY, today=TODAY)
        assert exc.value.code == "parquet_bomb" and exc.value.filename == "bomb.parquet"
        assert store.counts(con) == before
    finally:
        con.close()


def test_parquet_metadata_limits(monkeypatch):
    from lib.records import extract

    frame = pd.DataFrame(good_rows(40))
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer, row_group_size=2)
    monkeypatch.setattr(extract, "PARQUET_MAX_ROW_GROUPS", 10)
    with pytest.raises(ExtractError) as exc:
        read_extract(buffer.getvalue(), "groups.parquet")
    assert exc.value.code == "parquet_bomb" and "20 row groups" in exc.value.message
    with pytest.raises(ExtractError) as rows:
        read_extract(buffer.getvalue(), "rows.parquet", max_rows=39)
    assert rows.value.code == "too_large" and "40 rows" in rows.value.message


def test_the_parquet_text_limit_counts_text_as_a_csv_would(monkeypatch):
    """The limit is on text, not Arrow's per-value offsets: an extract whose text is within the limit is read
    (counting 8-byte offsets too refused a 5-million-row extract whose CSV is accepted)."""
    from lib.records import extract

    rows = good_rows(2_000)
    text = sum(len(str(v).encode()) for r in rows for v in r.values())
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False), buffer)
    monkeypatch.setattr(extract, "PARQUET_MAX_TEXT", int(text * 1.2))
    assert read_extract(buffer.getvalue(), "text.parquet").table.num_rows == 2_000
    monkeypatch.setattr(extract, "PARQUET_MAX_TEXT", int(text * 0.8))
    with pytest.raises(ExtractError) as exc:
        read_extract(buffer.getvalue(), "text.parquet")
    assert exc.value.code == "parquet_bomb"


def test_parquet_in_many_batches_and_row_groups_reads_exactly(monkeypatch):
    """Bounded batches must not change what is read: values, order and row numbers."""
    from lib.records import extract

    monkeypatch.setattr(extract, "PARQUET_BATCH_ROWS", 7)
    rows = good_rows(50)
    for i, r in enumerate(rows):
        r["encounter_type"] = f"type {i % 9}"  # a different dictionary in each row group
    table = pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False)
    table = table.set_column(table.schema.get_field_index("agency_type"), "agency_type",
                             table.column("agency_type").dictionary_encode())
    buffer = io.BytesIO()
    pq.write_table(table.append_column("unrelated", pa.array([[1, 2]] * 50)), buffer, row_group_size=11)
    got = read_extract(buffer.getvalue(), "batches.parquet")
    assert got.frame.astype(str).values.tolist() == pd.DataFrame(rows).astype(str).values.tolist()
    assert got.rows.tolist() == list(range(2, 52)) and got.ignored_columns == ["unrelated"]


def nested_parquet(rows: int = 70_000, copies: int = 200, width: int = 1_000, *, kind: str = "list") -> bytes:
    """The reviewer's ~190 KB file: ``encounter_type`` a LIST of ``copies`` copies of one ``width``-character
    string in every row (13 GB once decoded), written without the Arrow schema so only Parquet's own
    schema describes it."""
    short = {"source_record_id": "R1", "agency_type": "police", "agency_code": "E23000010",
             "encounter_date": "2025-03-14"}
    indices = pa.array(np.zeros(rows, dtype=np.int32))
    data = {name: pa.DictionaryArray.from_arrays(indices, pa.array([value])) for name, value in short.items()}
    inner = pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows * copies, dtype=np.int32)),
                                           pa.array(["x" * width]))
    offsets = pa.array(np.arange(0, rows * copies + 1, copies, dtype=np.int32))
    values = pa.ListArray.from_arrays(offsets, inner)
    if kind == "struct":
        values = pa.StructArray.from_arrays([values], names=["inner"])
    elif kind == "map":
        values = pa.MapArray.from_arrays(offsets, inner, inner)
    data["encounter_type"] = values
    buffer = io.BytesIO()
    pq.write_table(pa.table(data), buffer, store_schema=False)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["list", "struct", "map"])
def test_nested_parquet_column_is_refused_from_its_schema(tmp_path, kind):
    """A list (or struct, or map) in one of the extract's columns expanded per batch before its size was
    counted: refused from the schema, before any data page is read, naming the file and the column."""
    data = nested_parquet(kind=kind)
    if kind == "list":
        assert len(data) < 250_000  # the reviewer's 187 KB file
    path = tmp_path / "nested.parquet"
    path.write_bytes(data)
    result = refuse_in_child(path)
    assert result["outcome"] == "refused" and result["code"] == "parquet_type", result
    assert "'encounter_type'" in result["message"], result
    assert result["peak_rss_mb"] < 1_000, result


def test_scalar_typed_parquet_columns_are_still_read():
    rows = good_rows(3)
    table = pa.table({k: [r[k] for r in rows] for k in rows[0]})
    table = table.set_column(table.schema.get_field_index("encounter_date"), "encounter_date",
                             pa.array([date(2025, 3, 14)] * 3))
    buffer = io.BytesIO()
    pq.write_table(table, buffer, store_schema=False)
    extract = read_extract(buffer.getvalue(), "typed.parquet")
    assert extract.frame["encounter_date"].tolist() == ["2025-03-14"] * 3


# -- carriage-return-only CSV ----------------------------------------------------------------------------

def cr_only(rows: list[dict]) -> bytes:
    return csv_bytes(rows).replace(b"\r\n", b"\n").replace(b"\n", b"\r")


def test_cr_only_csv_is_read_correctly():
    rows = good_rows(4)
    rows[2]["encounter_type"] = "PLACEHOLDER"
    data = cr_only(rows).replace(b"PLACEHOLDER", b'"two\rlines"')  # a quoted CR inside a field stays in it
    assert b"\n" not in data and data.count(b"\r") == 6
    extract = read_extract(data, "mac.csv")
    assert extract.rows.tolist() == [2, 3, 4, 5]
    assert extract.frame["source_record_id"].tolist() == [r["source_record_id"] for r in rows]
    assert extract.frame["encounter_type"].tolist()[2] == "two\rlines"
    batch = prepare(cr_only(good_rows(4)), "mac.csv", key=KEY, today=TODAY)
    assert (batch.rows_read, batch.rows_valid) == (4, 4)


@pytest.mark.parametrize("data", [b"\r\x01", b"\r", b"a\rb\r\x01", b"\r\r\r\n", b"x,y\r\"a\r"],
                         ids=repr)
def test_cr_only_garbage_is_refused_with_a_message(data):
    with pytest.raises(ExtractError) as exc:
        read_extract(data, "h.csv")
    assert exc.value.filename == "h.csv" and exc.value.message and exc.value.code


def test_cli_ingest_of_a_refused_file_prints_one_line_and_exits_2(tmp_path):
    bad = tmp_path / "cr.csv"
    bad.write_bytes(b"\r\x01")
    good = tmp_path / "mac.csv"
    good.write_bytes(cr_only(good_rows(3)))
    env = {"JOINEDUP_KEY": KEY.decode(), "PATH": "/usr/bin:/bin"}
    db = tmp_path / "cli.duckdb"
    run = subprocess.run([sys.executable, "-m", "lib.cli", "ingest", str(bad), "--db", str(db), "--today",
                          "2025-06-30"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "Traceback" not in run.stderr and "_csv.Error" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ingest: cr.csv refused: "), run.stderr
    summary = json.loads(run.stdout)
    assert summary["files"][0]["error_code"] == "missing_columns" and summary["rows_stored"] == 0
    run = subprocess.run([sys.executable, "-m", "lib.cli", "ingest", str(good), "--db", str(db), "--today",
                          "2025-06-30"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout)["rows_stored"] == 3


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_a_quoted_line_break_in_the_last_header_cell_stays_in_the_cell(newline):
    """A valid CSV whose last header cell is quoted and holds a line break was split at that break: the
    header names did not match the columns, pyarrow typed the extra column int64 and the blank-row check
    crashed (ArrowNotImplementedError on utf8_length), refused as internal_error."""
    rows = good_rows(3)
    body = csv_bytes(rows).decode()
    header, rest = body.split("\n", 1)
    lines = [line + ",7" for line in rest.splitlines()]
    text = newline.join([header + ',"case' + newline + 'weight"', *lines, ",,,,,,,,,,,,,7", ",,,,,,,,,,,,,"]) + newline
    extract = read_extract(text.encode(), "weights.csv")
    assert extract.ignored_columns == ["case" + newline + "weight"]
    assert extract.frame["source_record_id"].tolist()[:3] == [r["source_record_id"] for r in rows]
    assert extract.rows.tolist() == [2, 3, 4, 5]  # the header spans two lines; the last row is blank
    assert extract.blank_rows == 1


def test_cli_ingest_of_a_quoted_multiline_header_has_no_traceback(tmp_path):
    data = csv_bytes(good_rows(3)).decode().split("\n")
    text = "\n".join([data[0] + ',"case\nweight"'] + [line + ",7" for line in data[1:] if line]
                     + [",,,,,,,,,,,,,7"]) + "\n"
    path = tmp_path / "weights.csv"
    path.write_text(text)
    env = {"JOINEDUP_KEY": KEY.decode(), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "lib.cli", "ingest", str(path), "--db", str(tmp_path / "c.duckdb"),
                          "--today", "2025-06-30"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert "Traceback" not in run.stderr and "Arrow" not in run.stderr, run.stderr
    summary = json.loads(run.stdout)
    assert "error_code" not in summary["files"][0] or summary["files"][0]["error_code"] is None, summary
    assert summary["rows_stored"] == 3


# -- hidden Excel sheets ---------------------------------------------------------------------------------

def _rows_as_lists(rows: list[dict]) -> list[list]:
    header = list(rows[0])
    return [header] + [[r[h] for h in header] for r in rows]


def workbook(sheets: list[tuple[str, str, list[list]]]) -> bytes:
    """sheets: (title, state, rows); state is visible, hidden or veryHidden."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, state, rows in sheets:
        ws = book.create_sheet(title)
        for row in rows:
            ws.append(row)
        ws.sheet_state = state
    visible = [i for i, (_, state, _) in enumerate(sheets) if state == "visible"]
    book.active = visible[0] if visible else 0
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _ids(rows: list[dict], prefix: str) -> list[dict]:
    for i, r in enumerate(rows):
        r["source_record_id"] = f"{prefix}{i}"
    return rows


def test_hidden_first_sheet_is_not_read_the_visible_one_is():
    data = workbook([("Old", "hidden", _rows_as_lists(_ids(good_rows(5), "HIDDEN"))),
                     ("Sheet1", "visible", _rows_as_lists(_ids(good_rows(3), "SHOWN")))])
    extract = read_extract(data, "book.xlsx")
    assert extract.frame["source_record_id"].tolist() == ["SHOWN0", "SHOWN1", "SHOWN2"]
    assert extract.sheet == "Sheet1"
    assert "'Sheet1'" in extract.sheet_note and "Hidden sheets, not read: 'Old'" in extract.sheet_note
    summary = prepare(data, "book.xlsx", key=KEY, today=TODAY).summary()
    assert summary["sheet"] == "Sheet1" and "'Old'" in summary["sheet_note"]


def test_very_hidden_sheet_named_data_is_not_chosen():
    data = workbook([("Sheet1", "visible", _rows_as_lists(_ids(good_rows(2), "SHOWN"))),
                     ("data", "veryHidden", _rows_as_lists(_ids(good_rows(4), "SECRET")))])
    extract = read_extract(data, "book.xlsx")
    assert extract.frame["source_record_id"].tolist() == ["SHOWN0", "SHOWN1"] and extract.sheet == "Sheet1"


def test_only_hidden_sheets_is_refused():
    data = workbook([("Sheet1", "visible", []), ("data", "veryHidden", _rows_as_lists(good_rows(2)))])
    # openpyxl insists on one visible sheet when saving: hide it in the saved workbook.xml, as Excel can.
    data = _rewrite(data, "xl/workbook.xml", lambda x: x.replace(b'sheetId="1" state="visible"',
                                                                 b'sheetId="1" state="hidden"'))
    with pytest.raises(ExtractError) as exc:
        read_extract(data, "hidden.xlsx")
    assert exc.value.code == "excel_sheet" and "all hidden" in exc.value.message and "'data'" in exc.value.message


def test_two_visible_data_sheets_are_ambiguous_but_a_notes_sheet_is_not():
    two = workbook([("January", "visible", _rows_as_lists(good_rows(2))),
                    ("February", "visible", _rows_as_lists(good_rows(3)))])
    with pytest.raises(ExtractError) as exc:
        read_extract(two, "two.xlsx")
    assert exc.value.code == "excel_sheet" and "'January', 'February'" in exc.value.message
    notes = workbook([("Notes", "visible", [["Extract from the MASH"], ["run on 2025-06-30"]]),
                      ("Encounters", "visible", [[], []] + _rows_as_lists(_ids(good_rows(3), "E")))])
    extract = read_extract(notes, "notes.xlsx")
    assert extract.sheet == "Encounters" and extract.frame["source_record_id"].tolist() == ["E0", "E1", "E2"]
    assert extract.rows.tolist() == [4, 5, 6]
    assert "'Notes'" in extract.sheet_note
    neither = workbook([("A", "visible", [["x"]]), ("B", "visible", [["y"]])])
    with pytest.raises(ExtractError) as none:
        read_extract(neither, "none.xlsx")
    assert none.value.code == "missing_columns" and "'A', 'B'" in none.value.message


def test_a_sheet_claiming_huge_dimensions_is_read_by_its_real_cells():
    data = workbook([("Sheet1", "visible", _rows_as_lists(good_rows(2)))])
    data = _rewrite(data, "xl/worksheets/sheet1.xml",
                    lambda x: x.replace(b'<dimension ref="A1:M3"/>', b'<dimension ref="A1:XFD1048576"/>'))
    assert b"XFD1048576" in zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml")
    extract = read_extract(data, "dim.xlsx")
    assert extract.table.num_rows == 2 and extract.rows.tolist() == [2, 3]


# -- DTDs anywhere in a workbook ---------------------------------------------------------------------------

def _book_with_hidden(*, rows: tuple[int, ...] = (), columns: tuple[str, ...] = (), extra: int = 0) -> bytes:
    """One visible sheet of good rows (header in row 1) with the given rows and columns hidden."""
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "Extract"
    for row in _rows_as_lists(good_rows(4 + extra)):
        ws.append(row)
    for number in rows:
        ws.row_dimensions[number].hidden = True
    for letter in columns:
        ws.column_dimensions[letter].hidden = True
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(("rows", "columns", "where"), [
    ((), ("G",), "column G"),  # the NHS number column, hidden
    ((3,), (), "row 3"),
    ((1,), (), "row 1"),  # the header row itself
], ids=["hidden column", "hidden row", "hidden header row"])
def test_hidden_rows_or_columns_holding_data_are_refused(rows, columns, where):
    """A hidden column holding NHS numbers was stored unseen: a sheet whose hidden rows or columns hold data
    is refused, naming the sheet and where, with what to do. Nothing is stored."""
    data = _book_with_hidden(rows=rows, columns=columns)
    with pytest.raises(ExtractError) as exc:
        read_extract(data, "hidden.xlsx")
    assert exc.value.code == "excel_hidden" and exc.value.filename == "hidden.xlsx"
    assert "'Extract'" in exc.value.message and where in exc.value.message
    assert "unhide or delete the hidden rows/columns" in exc.value.message.lower()


@pytest.mark.parametrize("how", ["row height 0", "column width 0"])
def test_zero_sized_rows_or_columns_holding_data_count_as_hidden(how):
    """Excel shows a row of height 0 or a column of width 0 as hidden (openpyxl will not write a zero size,
    so the sheet XML is patched)."""
    if how == "row height 0":
        def patch(xml: bytes) -> bytes:
            return xml.replace(b'<row r="4">', b'<row r="4" ht="0" customHeight="1">')
    else:
        def patch(xml: bytes) -> bytes:
            return xml.replace(b"<sheetData>", b'<cols><col min="7" max="7" width="0" customWidth="1"/></cols>'
                               b"<sheetData>")
    data = _rewrite(_book_with_hidden(), "xl/worksheets/sheet1.xml", patch)
    with pytest.raises(ExtractError) as exc:
        read_extract(data, "thin.xlsx")
    assert exc.value.code == "excel_hidden"
    assert ("row 4" if how == "row height 0" else "column G") in exc.value.message


def test_hidden_rows_and_columns_without_data_are_read():
    data = _book_with_hidden(rows=(20, 21), columns=("P", "Q"))
    extract = read_extract(data, "tidy.xlsx")
    assert extract.rows.tolist() == [2, 3, 4, 5]
    assert extract.frame["nhs_number"].notna().all()


def _rewrite(data: bytes, member: str, patch) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            dst.writestr(info.filename, patch(content) if info.filename == member else content)
    return out.getvalue()


def _add(data: bytes, member: str, content: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
        dst.writestr(member, content)
    return out.getvalue()


def _entity_after_comment(content: bytes, padding: int = 5_000) -> bytes:
    """The issue's file: an entity declared after a 5 KB comment, its value used in a cell."""
    body = content.split(b"?>", 1)[-1]
    dtd = b'<!DOCTYPE worksheet [<!ENTITY who "INJECTED-BY-ENTITY">]>'
    inline = body.replace(b"<v>", b"<v>&who;", 1) if b"<v>" in body else body
    return b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><!--' + b" " * padding + b"-->" + dtd + inline


def _plain_book() -> bytes:
    rows = _rows_as_lists(good_rows(2))
    return workbook([("Sheet1", "visible", rows)])


@pytest.mark.parametrize("padding", [5_000, 200_000])
def test_dtd_after_a_long_comment_is_refused(padding):
    data = _rewrite(_plain_book(), "xl/worksheets/sheet1.xml", lambda c: _entity_after_comment(c, padding))
    with pytest.raises(ExtractError) as exc:
        read_extract(data, "late.xlsx")
    assert exc.value.code == "xlsx_dtd" and "xl/worksheets/sheet1.xml" in exc.value.message


@pytest.mark.parametrize("member, content", [
    ("xl/sharedStrings.xml", None),  # replaced below: the DTD in the shared strings after padding
    ("docProps/custom.xml", b'<?xml version="1.0"?>' + b"<!-- " + b"p" * 9000 + b" -->"
     + b'<!DOCTYPE x SYSTEM "http://evil/x.dtd"><x/>'),
    ("xl/media/image1.png", b"\x89PNG\r\n\x1a\n" + bytes(9000) + b"<!doctype x [<!entity a 'b'>]>"),
    ("xl/worksheets/extra.bin", "\ufeff<?xml version='1.0' encoding='utf-16'?>".encode("utf-16-le")
     + ("<!-- " + "p" * 5000 + " --><!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>").encode("utf-16-le")),
    ("xl/styles2.xml", b"<x>" + b"<y/>" * 3000 + b"</x><!DOCTYPE late>"),  # not well-formed: byte scan
], ids=["shared strings", "external DTD", "named as an image", "UTF-16 part", "after the root"])
def test_dtd_in_any_part_is_refused(member, content):
    base = _plain_book()
    if content is None:
        with zipfile.ZipFile(io.BytesIO(base)) as z:
            names = z.namelist()
        if member not in names:  # openpyxl writes inline strings: add a shared strings part of our own
            content = b'<?xml version="1.0"?><!--' + b" " * 6000 + b'--><!DOCTYPE sst [<!ENTITY a "b">]><sst/>'
            data = _add(base, member, content)
        else:
            data = _rewrite(base, member, _entity_after_comment)
    else:
        data = _add(base, member, content)
    with pytest.raises(ExtractError) as exc:
        read_extract(data, "dtd.xlsx")
    assert exc.value.code == "xlsx_dtd", exc.value


def test_an_ordinary_workbook_with_entities_of_xml_itself_is_read():
    rows = _rows_as_lists(good_rows(2))
    rows[1][rows[0].index("encounter_type")] = "A & B <referral>"
    extract = read_extract(workbook([("Sheet1", "visible", rows)]), "ok.xlsx")
    assert extract.frame["encounter_type"].tolist()[0] == "A & B <referral>"


def test_shared_strings_beyond_the_limit_are_refused_before_openpyxl(monkeypatch):
    from lib.records import extract

    rows = _rows_as_lists(good_rows(40))
    data = workbook([("Sheet1", "visible", rows)])
    members = zipfile.ZipFile(io.BytesIO(data)).namelist()
    if "xl/sharedStrings.xml" not in members:  # openpyxl wrote inline strings: add a shared strings part
        data = _add(data, "xl/sharedStrings.xml", b'<sst xmlns="x">' + b"<si><t>x</t></si>" * 5000 + b"</sst>")
    monkeypatch.setattr(extract, "XLSX_MAX_SHARED_STRINGS", 10_000)
    with pytest.raises(ExtractError) as exc:
        read_extract(data, "strings.xlsx")
    assert exc.value.code == "xlsx_bomb" and "shared strings" in exc.value.message
