"""Structure-aware fuzzing of the upload path (issue 14): random Parquet schemas and types, huge
dictionaries, many row groups and damaged footers; random workbooks with hidden sheets, merged cells,
formulas, forged shared strings, false dimensions and odd zips (builders in tests/fuzz_structures.py).

Every case: no uncaught exception (a refusal is an ExtractError with a message and a code other than
``internal_error``), and the store unchanged unless the batch is stored whole. Hypothesis runs the
deterministic profile registered in tests/conftest.py; a seed that ever fails is kept below as an
@example so it is tried on every run."""
from __future__ import annotations

import random

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from lib.records import extract as extract_module
from lib.records import store
from lib.records.ingest import commit, prepare
from tests.fuzz_structures import limits_lowered, random_parquet, random_xlsx
from tests.test_records import KEY, TODAY, csv_bytes, good_rows
from tests.test_upload_fuzz import _upload

SEEDS = st.integers(min_value=0, max_value=2 ** 64 - 1)


@pytest.fixture()
def con(tmp_path):
    con = store.connect(tmp_path / "fuzz-structure.duckdb")
    commit(con, prepare(csv_bytes(good_rows(5)), "seed.csv", key=KEY, today=TODAY))
    yield con
    con.close()


def _run(con, case) -> str:
    with limits_lowered(case):
        return _upload(con, case.data, case.filename)


@given(seed=SEEDS)
@example(seed=0)
@example(seed=202)  # a damaged level histogram: pyarrow aborted the process (tests/test_hostile_files.py)
def test_random_parquet_structure(con, seed):
    case = random_parquet(random.Random(seed))
    _run(con, case)


@given(seed=SEEDS)
@example(seed=0)
def test_random_xlsx_structure(con, seed):
    case = random_xlsx(random.Random(seed))
    _run(con, case)


def test_the_builders_reach_every_path(con):
    """The generators are worth running: over 120 seeds each, refusals, files read with nothing valid and
    files with rows to store all occur, the bomb path refuses, and hidden or ambiguous sheets are refused."""
    outcomes: dict[str, set[str]] = {"parquet": set(), "xlsx": set()}
    codes: set[str] = set()
    for seed in range(120):
        for kind, build in (("parquet", random_parquet), ("xlsx", random_xlsx)):
            case = build(random.Random(seed))
            try:
                with limits_lowered(case):
                    batch = prepare(case.data, case.filename, key=KEY, today=TODAY)
                outcomes[kind].add("rows to store" if batch.rows_valid else "read")
            except extract_module.ExtractError as exc:
                outcomes[kind].add("refused")
                codes.add(exc.code)
    assert outcomes == {"parquet": {"read", "rows to store", "refused"}, "xlsx": {"read", "rows to store", "refused"}}
    assert {"parquet_bomb", "excel_sheet", "not_parquet", "not_excel", "missing_columns"} <= codes, codes
    assert "internal_error" not in codes
