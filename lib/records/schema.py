"""The documented extract schema: canonical columns, accepted column-name variants, limits, template.

This module is data first, so the Data page, the README and the validator all cite the same thing:

- ``COLUMNS``: one entry per canonical column (name, required, type, description, example, limit).
- ``COLUMN_VARIANTS``: header spellings accepted for each column ("NHS No", "nhs_no", "DOB", ...).
- ``AGENCY_TYPE_VARIANTS``, ``SEX_VALUES``, ``FLAG_VALUES``: accepted spellings of coded values.
- ``CHECKS``: every check the validator makes, with its reason code and what happens to the row.
- ``template_csv()`` / ``template_frame()``: a downloadable template with two example rows.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass

import pandas as pd

from lib.geo import agencies

AGENCY_TYPES = agencies.TYPES  # the agency registry (lib.geo.agencies)


@dataclass(frozen=True)
class Column:
    name: str
    required: bool
    kind: str  # text, date, flag, code
    description: str
    example: str
    max_length: int
    identifier: bool = False  # never shown or stored in clear outside the ingest step


COLUMNS: tuple[Column, ...] = (
    Column("source_record_id", True, "text",
           "The agency's own id for this encounter (unique within the agency).", "CSC-000123", 64),
    Column("agency_type", True, "code",
           "police, children_social_care, health, education or other.", "children_social_care", 40),
    Column("agency_code", True, "code",
           "Police: force area code (E23…/W15…). Children's social care and education: upper-tier local "
           "authority code (E06/E08/E09/E10/W06). Health: trust or Welsh health board ODS code. Other: any code.",
           "E08000035", 16),
    Column("encounter_date", True, "date",
           "Date of the contact: YYYY-MM-DD or DD/MM/YYYY. Not in the future.", "2025-03-14", 32),
    Column("encounter_type", False, "text",
           "The agency's category of contact (free text, no names).", "referral", 80),
    Column("cse_flag", False, "flag",
           "Child sexual exploitation identified: Y/N (also yes/no, true/false, 1/0). Blank = not recorded.", "Y", 10),
    Column("nhs_number", False, "text",
           "10-digit NHS number (spaces or dashes in 3-3-4 groups allowed); checked with the Modulus 11 "
           "check digit.", "943 476 5919", 20, identifier=True),
    Column("forename", False, "text", "First name as recorded.", "Robert", 60, identifier=True),
    Column("surname", False, "text", "Family name as recorded.", "Smith", 60, identifier=True),
    Column("date_of_birth", False, "date",
           "YYYY-MM-DD or DD/MM/YYYY; not after the encounter; under 26 at the encounter.", "2010-07-02", 32,
           identifier=True),
    Column("sex", False, "code", "M, F or U (also male/female/unknown, NHS codes 1/2/0/9).", "M", 20),
    Column("home_postcode", False, "text", "Home postcode of the child (England and Wales).", "LS6 2AB", 12,
           identifier=True),
    Column("encounter_postcode", False, "text",
           "Postcode where the contact happened (England and Wales).", "LS1 3EX", 12),
)

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
REQUIRED: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.required)
IDENTIFIERS: frozenset[str] = frozenset(c.name for c in COLUMNS if c.identifier)
MAX_LENGTH: dict[str, int] = {c.name: c.max_length for c in COLUMNS}

#: Header spellings accepted for each column. Headers are compared after lower-casing and removing
#: everything that is not a letter or digit, so "NHS No", "nhs_no", "NHS-No." all match "nhsno".
COLUMN_VARIANTS: dict[str, tuple[str, ...]] = {
    "source_record_id": ("Record ID", "Source ID", "ID", "Encounter ID", "Contact ID", "Case ID", "Reference",
                         "Ref", "Unique ID"),
    "agency_type": ("Agency", "Agency type", "Organisation type", "Service", "Sector"),
    "agency_code": ("Agency code", "Organisation code", "Org code", "ODS code", "LA code", "Force code",
                    "PFA code"),
    "encounter_date": ("Date", "Contact date", "Date of contact", "Encounter date", "Referral date", "Event date",
                       "Incident date"),
    "encounter_type": ("Type", "Contact type", "Encounter type", "Event type"),
    "cse_flag": ("CSE", "CSE flag", "Child sexual exploitation", "CSE identified", "CSE concern"),
    "nhs_number": ("NHS No", "NHS number", "nhs_no", "NHS No.", "NHS num", "NHS"),
    "forename": ("First name", "Firstname", "first_name", "Given name", "Forenames", "Christian name"),
    "surname": ("Last name", "Lastname", "last_name", "Family name"),
    "date_of_birth": ("DOB", "Date of Birth", "D.O.B.", "Birth date", "Birthdate"),
    "sex": ("Gender", "Sex code"),
    "home_postcode": ("Postcode", "Post code", "Home postcode", "Address postcode", "Child postcode",
                      "Postcode of residence"),
    "encounter_postcode": ("Encounter postcode", "Contact postcode", "Incident postcode", "Location postcode",
                           "Event postcode", "Site postcode"),
}


def header_key(header: object) -> str:
    """The comparison form of a header: lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", str(header).lower())


def _header_lookup() -> dict[str, str]:
    lookup: dict[str, str] = {}
    for canonical, variants in COLUMN_VARIANTS.items():
        for variant in (canonical, *variants):
            key = header_key(variant)
            if lookup.setdefault(key, canonical) != canonical:
                raise ValueError(f"header {variant!r} would mean both {lookup[key]} and {canonical}")
    return lookup


HEADER_LOOKUP: dict[str, str] = _header_lookup()

#: Accepted spellings of agency types (compared lower-case, non-letters removed).
AGENCY_TYPE_VARIANTS: dict[str, str] = {
    **{re.sub(r"[^a-z]", "", t): t for t in AGENCY_TYPES},
    "pfa": "police", "constabulary": "police", "policeforce": "police",
    "csc": "children_social_care", "childrenssocialcare": "children_social_care",
    "socialcare": "children_social_care", "childrensservices": "children_social_care",
    "localauthority": "children_social_care", "la": "children_social_care",
    "nhs": "health", "nhstrust": "health", "trust": "health",
    "school": "education",
}

#: Sex codes: letters, words and NHS Data Dictionary codes (0 not known, 1 male, 2 female, 9 not specified).
SEX_VALUES: dict[str, str] = {
    "m": "M", "male": "M", "1": "M", "boy": "M",
    "f": "F", "female": "F", "2": "F", "girl": "F",
    "u": "U", "unknown": "U", "notknown": "U", "0": "U", "9": "U", "notspecified": "U", "x": "U",
    "indeterminate": "U", "other": "U", "notstated": "U",
}

FLAG_VALUES: dict[str, bool] = {
    "y": True, "yes": True, "true": True, "t": True, "1": True,
    "n": False, "no": False, "false": False, "f": False, "0": False,
}

#: Cell contents read as blank in every column.
MISSING_MARKERS: frozenset[str] = frozenset({"", "na", "n/a", "null", "none", "nan", "-", "--", "#n/a", "nat"})

#: Names that are placeholders, not names (dropped, never hashed).
NAME_PLACEHOLDERS: frozenset[str] = frozenset({
    "UNKNOWN", "NOTKNOWN", "NK", "UNK", "BABY", "BABYOF", "INFANT", "CHILD", "ANON", "ANONYMOUS", "XXX", "XX",
    "X", "TEST", "NONAME", "NOTGIVEN", "REFUSED", "NOTSTATED", "UNNAMED", "NFA",
})

#: Oldest plausible encounter and age limit (Joined Up holds children and young people under 26).
EARLIEST_ENCOUNTER = "1990-01-01"
MAX_AGE_YEARS = 25

ROW_REJECTED = "row rejected"
VALUE_DROPPED = "value dropped"
CODE_MAPPED = "code mapped"  # a retired agency code replaced by its one official successor; the row is kept


@dataclass(frozen=True)
class Check:
    code: str
    field: str
    action: str  # ROW_REJECTED, VALUE_DROPPED or CODE_MAPPED
    description: str


#: Every row-level check, its reason code and what happens. Whole-file problems (empty file, wrong
#: encoding, not really CSV/Excel/Parquet, missing or duplicated columns) stop the file and store nothing.
CHECKS: tuple[Check, ...] = (
    Check("ragged_row", "(row)", ROW_REJECTED, "The row has a different number of fields from the header."),
    Check("too_long", "(any)", ROW_REJECTED, "A field is longer than the column's limit."),
    Check("control_character", "(any)", ROW_REJECTED, "A field contains a line break, tab or other control character."),
    Check("formula", "(any)", ROW_REJECTED, "A field looks like a spreadsheet formula (starts with = + - @)."),
    Check("spreadsheet_error", "(any)", ROW_REJECTED, "A field holds a spreadsheet error value such as #REF!."),
    Check("missing", "source_record_id", ROW_REJECTED, "No record id."),
    Check("duplicate_id", "source_record_id", ROW_REJECTED,
          "The same agency and record id appear earlier in the file (the first is kept)."),
    Check("identifier_as_id", "source_record_id", VALUE_DROPPED,
          "The record id is shaped like an NHS number, a postcode, a date of birth or a name: it is kept only as a "
          "keyed hash (ID-…), never in clear (validation without the store's key rejects the row)."),
    Check("missing", "agency_type", ROW_REJECTED, "No agency type."),
    Check("unknown_agency_type", "agency_type", ROW_REJECTED, "Not one of the agency types."),
    Check("missing", "agency_code", ROW_REJECTED, "No agency code."),
    Check("unknown_agency_code", "agency_code", ROW_REJECTED,
          "Not a code of that agency type in the geodata (force area, upper-tier LA, trust or health board)."),
    Check("retired_code", "agency_code", CODE_MAPPED,
          "A retired code with one official successor (e.g. Barnsley E08000016 → E08000038, Surrey Heartlands ICB "
          "E54000052 → E54000063): replaced by the successor and reported (geodata/facts/code_successors.csv)."),
    Check("split_code", "agency_code", ROW_REJECTED,
          "A retired code whose area was split (e.g. Cumbria E10000006, Northamptonshire E10000021): the row "
          "cannot be placed in one area; resubmit it with the current code."),
    Check("missing", "encounter_date", ROW_REJECTED, "No encounter date."),
    Check("bad_date", "encounter_date", ROW_REJECTED, "Not a date in an accepted format."),
    Check("impossible_date", "encounter_date", ROW_REJECTED, "Not a real calendar date (e.g. 31/02/2024)."),
    Check("future_date", "encounter_date", ROW_REJECTED, "After today."),
    Check("too_old", "encounter_date", ROW_REJECTED, f"Before {EARLIEST_ENCOUNTER}."),
    Check("bad_flag", "cse_flag", ROW_REJECTED, "Not Y/N (or yes/no, true/false, 1/0)."),
    Check("identifier_in_text", "encounter_type", VALUE_DROPPED,
          "The text holds something shaped like an NHS number, a postcode, a date of birth (or a name beside "
          "them): the value is not stored, the row is."),
    Check("dob_future", "date_of_birth", ROW_REJECTED, "Date of birth after today."),
    Check("dob_after_encounter", "date_of_birth", ROW_REJECTED, "Date of birth after the encounter."),
    Check("too_old_person", "date_of_birth", ROW_REJECTED, f"Aged over {MAX_AGE_YEARS} at the encounter."),
    Check("nhs_length", "nhs_number", VALUE_DROPPED, "Not 10 digits (e.g. 9 or 11 digits)."),
    Check("nhs_characters", "nhs_number", VALUE_DROPPED, "Contains letters or other characters."),
    Check("nhs_scientific", "nhs_number", VALUE_DROPPED, "Mangled by a spreadsheet into scientific notation."),
    Check("nhs_format", "nhs_number", VALUE_DROPPED, "Ten digits, but not grouped as 10 digits or 3-3-4."),
    Check("nhs_check_digit", "nhs_number", VALUE_DROPPED,
          "Fails the Modulus 11 check digit (or, in the Scottish CHI range, does not start with a date)."),
    Check("nhs_placeholder", "nhs_number", VALUE_DROPPED, "A placeholder such as 0000000000 or 1111111111."),
    Check("bad_date", "date_of_birth", VALUE_DROPPED, "Not a date in an accepted format."),
    Check("impossible_date", "date_of_birth", VALUE_DROPPED, "Not a real calendar date."),
    Check("dob_placeholder", "date_of_birth", VALUE_DROPPED, "A placeholder date (1900-01-01 or earlier)."),
    Check("name_no_letters", "forename/surname", VALUE_DROPPED, "Contains no letters."),
    Check("name_placeholder", "forename/surname", VALUE_DROPPED, "A placeholder such as UNKNOWN or BABY."),
    Check("bad_sex", "sex", VALUE_DROPPED, "Not a recognised sex code."),
    Check("bad_postcode", "home_postcode/encounter_postcode", VALUE_DROPPED, "Not shaped like a UK postcode."),
    Check("unknown_postcode", "home_postcode/encounter_postcode", VALUE_DROPPED,
          "Not in the England and Wales postcode directory (ONSPD November 2025)."),
)


def schema_frame() -> pd.DataFrame:
    """The schema as a table (for the Data page and the README)."""
    return pd.DataFrame(
        {
            "column": [c.name for c in COLUMNS],
            "required": ["yes" if c.required else "no" for c in COLUMNS],
            "description": [c.description for c in COLUMNS],
            "example": [c.example for c in COLUMNS],
            "max length": [c.max_length for c in COLUMNS],
            "also accepted as": [", ".join(COLUMN_VARIANTS[c.name]) for c in COLUMNS],
        }
    )


def checks_frame() -> pd.DataFrame:
    return pd.DataFrame([c.__dict__ for c in CHECKS])[["field", "code", "action", "description"]]


def template_frame() -> pd.DataFrame:
    """Two example rows (fictitious people; NHS numbers from the 999 test range)."""
    return pd.DataFrame(
        [
            ["CSC-000123", "children_social_care", "E08000035", "2025-03-14", "referral", "Y",
             "999 000 0018", "Robert", "Smith", "2010-07-02", "M", "LS6 2AB", "LS1 3EX"],
            ["CSC-000124", "children_social_care", "E08000035", "15/03/2025", "assessment", "N",
             "", "Aisha", "Khan", "2012-11-23", "F", "LS6 1AN", ""],
        ],
        columns=list(COLUMN_NAMES),
    )


def template_csv() -> bytes:
    buffer = io.StringIO()
    template_frame().to_csv(buffer, index=False)
    return buffer.getvalue().encode("utf-8")
