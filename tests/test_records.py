"""Schema, reading and validation of agency extracts (lib.records): good files and many bad ones.

Every bad input is checked for its message (file, row, field, reason), not only for being refused.
"""
from __future__ import annotations

import io
import random
from datetime import date

import numpy as np
import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from nhs_number import calculate_checksum, is_valid

from lib.records import schema
from lib.records.extract import ExtractError, read_extract
from lib.records.ingest import prepare
from lib.records.validate import check_nhs_numbers, nhs_is_valid, parse_date, validate

TODAY = date(2025, 6, 30)
KEY = b"test-key-not-secret-0123456789abcdef"
HEADER = list(schema.COLUMN_NAMES)


def nhs(prefix9: str) -> str:
    """A valid NHS number from nine digits (prefixes chosen so the check digit is not 10)."""
    check = calculate_checksum(prefix9)
    assert check is not None and check < 10, prefix9
    return prefix9 + str(check)


VALID_NHS = [nhs(p) for p in ("943476591", "400000000", "612345678", "999000001", "450123456")]


def good_rows(n: int = 5) -> list[dict]:
    """Valid rows across agencies, real postcodes in Leeds, Cardiff and London."""
    agencies = [("children_social_care", "E08000035"), ("police", "E23000010"), ("health", "RR8"),
                ("education", "E08000035"), ("police", "W15000003")]
    homes = ["LS6 2AB", "LS6 1AN", "CF10 1EP", "SW1A 1AA", "LS1 3EX"]
    rows = []
    for i in range(n):
        kind, code = agencies[i % len(agencies)]
        rows.append({
            "source_record_id": f"R{i:05d}", "agency_type": kind, "agency_code": code,
            "encounter_date": "2025-03-14", "encounter_type": "referral", "cse_flag": "Y" if i % 2 else "N",
            "nhs_number": VALID_NHS[i % len(VALID_NHS)], "forename": ["Robert", "Aisha", "Zoë", "Bob", "Liam"][i % 5],
            "surname": ["Smith", "Khan", "O'Brien", "Smith-Jones", "Evans"][i % 5],
            "date_of_birth": "2010-07-02", "sex": "M" if i % 2 == 0 else "F",
            "home_postcode": homes[i % len(homes)], "encounter_postcode": "LS1 3EX",
        })
    return rows


def csv_bytes(rows: list[dict], header: list[str] | None = None) -> bytes:
    frame = pd.DataFrame(rows, columns=header or HEADER)
    return frame.to_csv(index=False).encode("utf-8")


def run(rows: list[dict], filename: str = "extract.csv"):
    return validate(read_extract(csv_bytes(rows), filename), today=TODAY)


def issues_for(result, row: int) -> pd.DataFrame:
    return result.issues[result.issues["row"] == row]


# -- schema ------------------------------------------------------------------------------------------

def test_schema_is_lib_level_data_with_template():
    frame = schema.schema_frame()
    assert list(frame["column"]) == HEADER
    assert set(frame.loc[frame["required"] == "yes", "column"]) == {
        "source_record_id", "agency_type", "agency_code", "encounter_date"}
    assert "NHS No" in frame.set_index("column").loc["nhs_number", "also accepted as"]
    template = read_extract(schema.template_csv(), "template.csv")
    result = validate(template, today=TODAY)
    assert result.rows_read == 2 and result.table.num_rows == 2
    assert result.issues.empty
    assert len(schema.checks_frame()) == len(schema.CHECKS) >= 30


@pytest.mark.parametrize("header, canonical", [
    ("NHS No", "nhs_number"), ("nhs_no", "nhs_number"), ("NHS Number", "nhs_number"), ("DOB", "date_of_birth"),
    ("Date of Birth", "date_of_birth"), ("First name", "forename"), ("Postcode", "home_postcode"),
    ("Last Name", "surname"), ("Gender", "sex"), ("Contact Date", "encounter_date"),
])
def test_column_name_variants_are_mapped(header, canonical):
    rows = good_rows(2)
    renamed = [{(header if k == canonical else k): v for k, v in r.items()} for r in rows]
    cols = [header if c == canonical else c for c in HEADER]
    extract = read_extract(csv_bytes(renamed, cols), "variants.csv")
    assert extract.column_map[header] == canonical
    assert validate(extract, today=TODAY).issues.empty


def test_unknown_columns_are_ignored_and_reported():
    rows = [dict(r, notes="free text") for r in good_rows(2)]
    extract = read_extract(csv_bytes(rows, HEADER + ["notes"]), "extra.csv")
    assert extract.ignored_columns == ["notes"]
    assert "notes" not in extract.table.column_names


def test_validate_takes_a_pandas_frame_and_unpacks_to_good_and_issues():
    rows = good_rows(3)
    rows[1]["encounter_date"] = "2030-01-01"
    good, issues = validate(pd.DataFrame(rows), "frame.csv", today=TODAY)
    assert len(good) == 2 and good["source_record_id"].tolist() == ["R00000", "R00002"]
    assert issues[["file", "row", "field", "code"]].values.tolist() == [["frame.csv", 3, "encounter_date",
                                                                          "future_date"]]
    assert good.loc[0, "home_lad"] == "E08000035" and good.loc[0, "nhs_status"] == "valid"


def test_optional_columns_may_be_absent():
    rows = [{k: r[k] for k in schema.REQUIRED} for r in good_rows(3)]
    result = validate(read_extract(csv_bytes(rows, list(schema.REQUIRED)), "minimal.csv"), today=TODAY)
    assert result.issues.empty and result.table.num_rows == 3
    assert set(result.table.column("nhs_status").to_pylist()) == {"missing"}


# -- formats ----------------------------------------------------------------------------------------------

def _xlsx(rows: list[dict], header=None) -> bytes:
    header = header or HEADER
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(header)
    for r in rows:
        sheet.append([r.get(c) for c in header])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_excel_and_parquet_give_the_same_records_as_csv():
    rows = good_rows(5)
    from_csv = prepare(csv_bytes(rows), "x.csv", key=KEY, today=TODAY)
    xlsx_rows = []
    for r in rows:  # as a spreadsheet holds them: real dates and a numeric NHS number
        typed = dict(r)
        typed["encounter_date"] = pd.Timestamp(r["encounter_date"]).to_pydatetime()
        typed["date_of_birth"] = pd.Timestamp(r["date_of_birth"]).to_pydatetime()
        typed["nhs_number"] = int(r["nhs_number"])
        xlsx_rows.append(typed)
    from_xlsx = prepare(_xlsx(xlsx_rows), "x.xlsx", key=KEY, today=TODAY)
    frame = pd.DataFrame(rows)
    frame["encounter_date"] = pd.to_datetime(frame["encounter_date"])
    frame["cse_flag"] = frame["cse_flag"] == "Y"
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    from_parquet = prepare(buffer.getvalue(), "x.parquet", key=KEY, today=TODAY)
    a = from_csv.records_frame()
    for other in (from_xlsx, from_parquet):
        assert other.issues.empty, other.issues
        pd.testing.assert_frame_equal(a, other.records_frame())


def test_semicolon_bom_and_utf16_files_are_read():
    rows = good_rows(3)
    semicolon = pd.DataFrame(rows).to_csv(index=False, sep=";").encode("utf-8-sig")
    assert validate(read_extract(semicolon, "semi.csv"), today=TODAY).issues.empty
    tab16 = pd.DataFrame(rows).to_csv(index=False, sep="\t").encode("utf-16")
    result = validate(read_extract(tab16, "unicode.txt"), today=TODAY)
    assert result.issues.empty and result.table.num_rows == 3


def test_blank_lines_are_skipped_but_row_numbers_stay_true():
    rows = good_rows(3)
    rows[2]["agency_type"] = "polce"
    text = csv_bytes(rows).decode().splitlines()
    data = "\n".join([text[0], text[1], "", ",,,,,,,,,,,,", text[2], text[3]]) + "\n"
    result = validate(read_extract(data.encode(), "gaps.csv"), today=TODAY)
    assert result.blank_rows == 2
    bad = result.issues[result.issues["code"] == "unknown_agency_type"]
    assert bad["row"].tolist() == [6]  # header 1, rows 2, (3, 4 blank), 5, 6


def test_quoted_line_break_is_one_row_and_rejected():
    rows = good_rows(3)
    rows[1]["forename"] = "Ro\nbert"
    result = run(rows, "quoted.csv")
    bad = issues_for(result, 3)
    assert bad[["field", "code"]].values.tolist() == [["forename", "control_character"]]
    assert "line break" in bad["reason"].iloc[0]
    assert result.table.num_rows == 2


# -- bad files: the whole file is refused with a clear error ---------------------------------------------

def _parquet_bytes(rows) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


WHOLE_FILE_CASES = [
    ("empty file", b"", "empty.csv", "empty_file", "the file is empty"),
    ("only blank lines", b"\n \n\n", "blank.csv", "empty_file", "the file is empty"),
    ("header but no rows", (",".join(HEADER) + "\n").encode(), "header.csv", "no_data_rows",
     "header but no data rows"),
    ("wrong encoding (cp1252)", csv_bytes(good_rows(2)).decode().replace("Aisha", "Zoë").encode("cp1252"),
     "latin.csv", "encoding", "not UTF-8 text (byte 0xEB on line 3"),
    ("Excel workbook named .csv", _xlsx(good_rows(1)), "book.csv", "not_csv", "content is an Excel workbook"),
    ("CSV named .xlsx", csv_bytes(good_rows(1)), "sheet.xlsx", "not_excel", "content is text"),
    ("CSV named .parquet", csv_bytes(good_rows(1)), "data.parquet", "not_parquet", "content is text"),
    ("truncated Parquet", _parquet_bytes(good_rows(3))[:200], "cut.parquet", "not_parquet",
     "Parquet file cannot be read"),
    ("binary data named .csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4, "image.csv",
     "not_csv", "content is binary data"),
    ("old .xls workbook", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "old.xls", "unsupported_type",
     "save it as .xlsx or CSV UTF-8"),
    ("unsupported extension", b'{"a": 1}', "data.json", "unsupported_type", "unsupported file type '.json'"),
    ("wrong columns", b"name,age\nBob,12\n", "people.csv", "missing_columns",
     "missing required columns source_record_id, agency_type, agency_code, encounter_date"),
    ("one required column missing", csv_bytes([{k: v for k, v in r.items() if k != "agency_code"}
                                               for r in good_rows(2)], [c for c in HEADER if c != "agency_code"]),
     "nocode.csv", "missing_columns", "missing required column agency_code"),
    ("two headers for one column", csv_bytes([dict(r, **{"NHS No": r["nhs_number"]}) for r in good_rows(2)],
                                             HEADER + ["NHS No"]),
     "twice.csv", "duplicate_columns", "columns 'nhs_number' and 'NHS No' both mean nhs_number"),
    ("NUL bytes in a CSV", csv_bytes(good_rows(2)).replace(b"Smith", b"Sm\x00th"), "nul.csv", "not_csv",
     "binary data"),
]


@pytest.mark.parametrize("label, data, filename, code, message", WHOLE_FILE_CASES, ids=[c[0] for c in WHOLE_FILE_CASES])
def test_whole_file_problems_are_refused_with_a_clear_message(label, data, filename, code, message):
    with pytest.raises(ExtractError) as caught:
        read_extract(data, filename)
    assert caught.value.code == code
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"{filename}: ")


def test_file_over_the_size_limit_is_refused():
    with pytest.raises(ExtractError, match="larger than the limit") as caught:
        read_extract(csv_bytes(good_rows(50)), "big.csv", max_bytes=1000)
    assert caught.value.code == "too_large"


def test_empty_excel_sheet_is_refused():
    book = openpyxl.Workbook()
    buffer = io.BytesIO()
    book.save(buffer)
    with pytest.raises(ExtractError, match="is empty"):
        read_extract(buffer.getvalue(), "blank.xlsx")


# -- bad rows: reported with file, row, field and reason ------------------------------------------------

def _set(field, value):
    def change(row):
        row[field] = value
    return change


ROW_CASES = [
    # label, change to row 3 (the second data row), field, code, reason fragment, action
    ("missing record id", _set("source_record_id", ""), "source_record_id", "missing", "no record id", "row rejected"),
    ("duplicate record id", lambda r: r.update(source_record_id="R00000", agency_type="children_social_care",
                                               agency_code="E08000035"), "source_record_id", "duplicate_id",
     "same agency and source_record_id are on row 2", "row rejected"),
    ("missing agency type", _set("agency_type", " "), "agency_type", "missing", "no agency type", "row rejected"),
    ("unknown agency type", _set("agency_type", "polce"), "agency_type", "unknown_agency_type",
     "unknown agency type 'polce'", "row rejected"),
    ("missing agency code", _set("agency_code", ""), "agency_code", "missing", "no agency code", "row rejected"),
    ("LA code given for police", _set("agency_code", "E08000035"), "agency_code", "unknown_agency_code",
     "is not a police force area code", "row rejected"),
    ("made-up agency code", _set("agency_code", "E23999999"), "agency_code", "unknown_agency_code",
     "'E23999999' is not a police force area code", "row rejected"),
    ("missing encounter date", _set("encounter_date", ""), "encounter_date", "missing", "no encounter date",
     "row rejected"),
    ("unparseable encounter date", _set("encounter_date", "yesterday"), "encounter_date", "bad_date",
     "encounter date is not a date", "row rejected"),
    ("impossible date 31/02", _set("encounter_date", "31/02/2024"), "encounter_date", "impossible_date",
     "month 2 has no day 31", "row rejected"),
    ("American month/day order", _set("encounter_date", "12/31/2024"), "encounter_date", "impossible_date",
     "there is no month 31", "row rejected"),
    ("two-digit year", _set("encounter_date", "01/02/24"), "encounter_date", "bad_date", "two-digit year",
     "row rejected"),
    ("spreadsheet date serial", _set("encounter_date", "45291"), "encounter_date", "bad_date",
     "spreadsheet date serial number", "row rejected"),
    ("future encounter", _set("encounter_date", "2025-07-01"), "encounter_date", "future_date",
     "in the future (after 30/06/2025)", "row rejected"),
    ("encounter before 1990", _set("encounter_date", "1985-05-05"), "encounter_date", "too_old", "before 01/01/1990",
     "row rejected"),
    ("CSE flag not understood", _set("cse_flag", "maybe"), "cse_flag", "bad_flag", "CSE flag 'maybe' not understood",
     "row rejected"),
    ("date of birth after encounter", _set("date_of_birth", "2025-04-01"), "date_of_birth", "dob_after_encounter",
     "after the encounter date", "row rejected"),
    ("date of birth in the future", _set("date_of_birth", "2026-01-01"), "date_of_birth", "dob_future",
     "in the future", "row rejected"),
    ("adult", _set("date_of_birth", "1980-01-01"), "date_of_birth", "too_old_person", "makes the person 45",
     "row rejected"),
    ("formula in a name", _set("forename", '=HYPERLINK("http://x","click")'), "forename", "formula",
     "looks like a spreadsheet formula", "row rejected"),
    ("command formula", _set("encounter_type", "+cmd|' /C calc'!A0"), "encounter_type", "formula",
     "starts with =, +, - or @", "row rejected"),
    ("at-sign formula", _set("surname", "@SUM(1+1)"), "surname", "formula", "formula", "row rejected"),
    ("spreadsheet error value", _set("agency_code", "#REF!"), "agency_code", "spreadsheet_error",
     "spreadsheet error value", "row rejected"),
    ("huge field", _set("surname", "A" * 100_000), "surname", "too_long", "100,000 characters long; at most 60",
     "row rejected"),
    ("huge record id", _set("source_record_id", "X" * 500), "source_record_id", "too_long", "at most 64",
     "row rejected"),
    ("tab inside a field", _set("encounter_type", "ref\terral"), "encounter_type", "control_character",
     "control character", "row rejected"),
    ("bad NHS check digit", _set("nhs_number", "9434765918"), "nhs_number", "nhs_check_digit", "Modulus 11",
     "value dropped"),
    ("9-digit NHS number", _set("nhs_number", "943476591"), "nhs_number", "nhs_length", "has 9 digits",
     "value dropped"),
    ("11-digit NHS number", _set("nhs_number", "94347659190"), "nhs_number", "nhs_length", "has 11 digits",
     "value dropped"),
    ("NHS number with letters", _set("nhs_number", "94347A5919"), "nhs_number", "nhs_characters", "letters",
     "value dropped"),
    ("NHS number in scientific notation", _set("nhs_number", "9.43E+09"), "nhs_number", "nhs_scientific",
     "scientific notation", "value dropped"),
    ("NHS number oddly grouped", _set("nhs_number", "94 347 65919"), "nhs_number", "nhs_format", "3-3-4",
     "value dropped"),
    ("placeholder NHS number", _set("nhs_number", "0000000000"), "nhs_number", "nhs_placeholder", "placeholder",
     "value dropped"),
    ("postcode not in the directory", _set("home_postcode", "ZZ99 9ZZ"), "home_postcode", "unknown_postcode",
     "not in the England and Wales postcode directory", "value dropped"),
    ("Scottish postcode", _set("home_postcode", "EH1 1AA"), "home_postcode", "unknown_postcode",
     "not in the England and Wales postcode directory", "value dropped"),
    ("malformed postcode", _set("home_postcode", "LS6"), "home_postcode", "bad_postcode",
     "not shaped like a UK postcode", "value dropped"),
    ("malformed encounter postcode", _set("encounter_postcode", "12345"), "encounter_postcode", "bad_postcode",
     "encounter postcode is not shaped", "value dropped"),
    ("unknown sex code", _set("sex", "Q"), "sex", "bad_sex", "sex 'Q' not recognised", "value dropped"),
    ("name with no letters", _set("surname", "123"), "surname", "name_no_letters", "no letters", "value dropped"),
    ("placeholder name", _set("forename", "Unknown"), "forename", "name_placeholder", "placeholder",
     "value dropped"),
    ("placeholder date of birth", _set("date_of_birth", "01/01/1900"), "date_of_birth", "dob_placeholder",
     "placeholder", "value dropped"),
    ("impossible date of birth", _set("date_of_birth", "30/02/2012"), "date_of_birth", "impossible_date",
     "date of birth is not a real calendar date", "value dropped"),
    ("unreadable date of birth", _set("date_of_birth", "unknown"), "date_of_birth", "bad_date",
     "date of birth is not a date", "value dropped"),
]


@pytest.mark.parametrize("label, change, field, code, reason, action", ROW_CASES, ids=[c[0] for c in ROW_CASES])
def test_bad_row_is_reported_with_file_row_field_and_reason(label, change, field, code, reason, action):
    rows = good_rows(4)
    change(rows[1])
    result = run(rows, "agency.csv")
    found = issues_for(result, 3)
    assert len(found) == 1, found
    issue = found.iloc[0]
    assert (issue["file"], issue["field"], issue["code"], issue["action"]) == ("agency.csv", field, code, action)
    assert reason in issue["reason"], issue["reason"]
    assert (result.issues["row"] != 3).sum() == 0  # the other rows are clean
    kept = result.table.column("source_record_id").to_pylist()
    assert len(kept) == (3 if action == "row rejected" else 4)


def test_ragged_row_is_rejected_with_its_row_number():
    lines = csv_bytes(good_rows(4)).decode().splitlines()
    lines[3] = lines[3] + ",surplus"
    result = validate(read_extract(("\n".join(lines) + "\n").encode(), "ragged.csv"), today=TODAY)
    bad = result.issues
    assert bad[["row", "field", "code"]].values.tolist() == [[4, "(row)", "ragged_row"]]
    assert "row has 14 fields but the header has 13" in bad["reason"].iloc[0]
    assert result.table.num_rows == 3 and result.rows_read == 4


def test_scottish_chi_number_with_no_date_is_invalid():
    candidates = [f"01{m:02d}99{k:03d}" for m in (13, 20, 99) for k in range(50)]
    prefix = next(p for p in candidates if calculate_checksum(p) < 10)
    number = prefix + str(calculate_checksum(prefix))
    assert not is_valid(number)
    rows = good_rows(2)
    rows[1]["nhs_number"] = number
    issue = issues_for(run(rows), 3).iloc[0]
    assert issue["code"] == "nhs_chi_date" and "CHI range" in issue["reason"]


def test_messages_never_repeat_identifier_values():
    rows = good_rows(6)
    rows[0]["nhs_number"] = "9434765918"
    rows[1]["date_of_birth"] = "31/02/2011"
    rows[2]["home_postcode"] = "ZZ99 9ZZ"
    rows[3]["forename"] = "=Secret"
    rows[4]["surname"] = "S" * 70
    result = run(rows)
    text = " ".join(result.issues["reason"])
    for value in ("9434765918", "31/02/2011", "ZZ99", "Secret", "SSSS"):
        assert value not in text


def test_several_problems_on_one_row_are_all_reported():
    rows = good_rows(3)
    rows[2].update(agency_type="polce", encounter_date="2099-01-01", nhs_number="123")
    found = issues_for(run(rows), 4)
    assert set(found["code"]) == {"unknown_agency_type", "future_date", "nhs_length"}


def test_accepted_spellings_of_coded_values():
    rows = good_rows(5)
    for row, (kind, flag, sex, when) in zip(rows, [("CSC", "yes", "male", "14 Mar 2025"),
                                                   ("Police", "TRUE", "2", "14/03/2025"),
                                                   ("NHS", "0", "f", "2025-03-14T10:30:00"),
                                                   ("School", "n", "9", "20250314"),
                                                   ("constabulary", "", "U", "14-March-2025")]):
        row.update(agency_type=kind, cse_flag=flag, sex=sex, encounter_date=when)
    rows[0]["agency_code"] = "E08000035"
    rows[1]["agency_code"] = "E23000010"
    rows[2]["agency_code"] = "RR8"
    rows[3]["agency_code"] = "E08000035"
    rows[4]["agency_code"] = "W15000003"
    result = run(rows)
    assert result.issues.empty, result.issues
    t = result.table
    assert t.column("agency_type").to_pylist() == ["children_social_care", "police", "health", "education", "police"]
    assert t.column("cse_flag").to_pylist() == [True, True, False, False, None]
    assert [str(x) for x in t.column("sex").to_pylist()] == ["M", "F", "F", "U", "U"]
    assert {str(d) for d in t.column("encounter_date").to_pylist()} == {"2025-03-14"}


def test_missing_value_markers_are_blank():
    rows = good_rows(2)
    rows[1].update(nhs_number="N/A", forename="NULL", home_postcode="-", sex="#N/A")
    result = run(rows)
    assert result.issues.empty
    assert result.table.column("nhs_status").to_pylist()[1] == "missing"


@pytest.mark.parametrize("text, expected", [
    ("2025-03-14", date(2025, 3, 14)), ("14/03/2025", date(2025, 3, 14)), ("14.03.2025", date(2025, 3, 14)),
    ("2025-03-14 00:00:00", date(2025, 3, 14)), ("14 March 2025", date(2025, 3, 14)), ("29/02/2024", date(2024, 2, 29)),
])
def test_parse_date_formats(text, expected):
    assert parse_date(text)[0] == expected


# -- NHS numbers: the vectorised check agrees with the nhs-number package ---------------------------------

def test_vectorised_nhs_check_agrees_with_the_package_on_many_numbers():
    rng = random.Random(7)
    values = []
    for _ in range(6000):
        values.append("".join(rng.choice("0123456789") for _ in range(10)))
    for _ in range(2000):
        prefix = "".join(rng.choice("0123456789") for _ in range(9))
        check = calculate_checksum(prefix)
        values.append(prefix + str(check % 10))
    for _ in range(1500):  # CHI range: dates and non-dates
        prefix = f"{rng.randint(0, 35):02d}{rng.randint(0, 14):02d}{rng.randint(0, 99):02d}{rng.randint(0, 999):03d}"
        values.append(prefix + str(calculate_checksum(prefix) % 10))
    formatted = []
    for v in values[:3000]:
        formatted += [f"{v[:3]} {v[3:6]} {v[6:]}", f"{v[:3]}-{v[3:6]}-{v[6:]}", f"  {v}  ", v[:9], v + "1",
                      v[:5] + "A" + v[6:],
                      f"{v[:2]} {v[2:]}"]
    values += formatted + ["", "0000000000", "1111111111", "9.43E+09", "943-476 5919"]
    ours = nhs_is_valid(values)
    theirs = np.array([is_valid(v) for v in values])
    assert theirs.sum() > 1500  # a real mix of valid and invalid numbers
    disagree = [v for v, a, b in zip(values, ours, theirs) if a != b]
    assert not disagree, disagree[:10]


def test_valid_numbers_keep_their_digits():
    number, code, _ = check_nhs_numbers(pa.array(["943 476 5919", "943-476-5919", None]))
    assert number.tolist() == [9434765919, 9434765919, -1]
    assert code.tolist()[2] != code.tolist()[0]


def test_a_file_without_a_header_row_is_refused_without_echoing_its_values():
    from lib.records.extract import ExtractError, read_extract
    from lib.records.validate import validate

    data = b"P123,police,E23000010,2024-05-01,arrest,N,9434765919,Jane,Smith,2010-05-17,F,LS6 2AB,LS1 3EX\n" * 3
    with pytest.raises(ExtractError) as caught:
        validate(read_extract(data, "noheader.csv"))
    message = str(caught.value)
    assert "header row" in message
    for value in ("Jane", "Smith", "9434765919", "LS6 2AB", "2010-05-17"):
        assert value not in message
