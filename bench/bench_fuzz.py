"""Fuzz counts for the upload path (issue 14): files tried, refused, stored, crashes, partial writes.

Prints one JSON object per line, {"figure", "value", "unit"}, like `python -m bench.run_all`. Every file
goes through what the Data page and `ingest` run (read -> validate -> pseudonymise -> one-transaction
store) against a scratch store, and is classified:
- refused: an ExtractError with a message (nothing stored);
- stored / nothing to store: a batch, stored whole;
- crash: any other exception, or a refusal coded ``internal_error`` (the last-resort guard fired);
- partial write: the store changed after a refusal, or by other than the rows the batch reports.

Files: the hostile corpus of tests/test_upload_fuzz.py (200+ files), the issue-14 regression files, and
--seeds structured Parquet and .xlsx files per kind from tests/fuzz_structures.py (seeds 0..N-1, so the
counts are reproducible). Also the peak memory of refusing the 5-million-row Parquet bomb (own process)
and the cost of the streamed DTD check on a larger workbook.

    python bench/bench_fuzz.py [--seeds 300] [--bomb-rows 5000000] [--workbook-rows 20000]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import emit  # noqa: E402
from tests.test_upload_fuzz import _snapshot  # noqa: E402 (store row counts: the fuzz test's own check)

KEY = b"benchmark-key-not-secret-0123456789"


def classify(con, data: bytes, filename: str, limits: dict | None = None) -> tuple[str, str]:
    """(outcome, detail) of one file through the upload path."""
    from unittest import mock

    from lib.records import extract
    from lib.records.extract import ExtractError
    from lib.records.ingest import commit, prepare

    before = _snapshot(con)
    try:
        with mock.patch.multiple(extract, **limits) if limits else _null():
            batch = prepare(data, filename, key=KEY)
    except ExtractError as exc:
        if _snapshot(con) != before:
            return "partial write", f"refused ({exc.code}) but the store changed"
        if exc.code == "internal_error" or not exc.message:
            return "crash", f"{exc.code}: {exc.message[:200]}"
        return "refused", exc.code
    except Exception as exc:  # noqa: BLE001 - counted, not raised: this is what the bench measures
        return "crash", f"{type(exc).__name__}: {str(exc)[:200]}"
    if batch.rows_valid == 0:
        return ("nothing to store", "") if _snapshot(con) == before else ("partial write", "empty batch wrote")
    try:
        result = commit(con, batch)
    except Exception as exc:  # noqa: BLE001
        after = _snapshot(con)
        return ("crash" if after == before else "partial write"), f"commit: {type(exc).__name__}: {str(exc)[:200]}"
    after = _snapshot(con)
    if after[0][0] - before[0][0] != result["rows_stored"] or \
            result["rows_stored"] + result["rows_already_stored"] != batch.rows_valid:
        return "partial write", f"stored {result['rows_stored']} of {batch.rows_valid}"
    return "stored", ""


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def regression_files() -> list[tuple[str, bytes, str]]:
    from tests.test_hostile_files import (
        _entity_after_comment,
        _ids,
        _plain_book,
        _rewrite,
        _rows_as_lists,
        cr_only,
        parquet_bomb,
        workbook,
    )
    from tests.test_records import good_rows

    return [
        ("parquet bomb 1M rows", parquet_bomb(rows=1_000_000, width=2_000), "bomb.parquet"),
        ("parquet bomb, no statistics", parquet_bomb(rows=1_000_000, width=2_000, statistics=False),
         "bomb2.parquet"),
        ("CR-only garbage", b"\r\x01", "cr.csv"),
        ("CR-only CSV", cr_only(good_rows(6)), "mac.csv"),
        ("hidden first sheet", workbook([("Old", "hidden", _rows_as_lists(_ids(good_rows(4), "H"))),
                                         ("Sheet1", "visible", _rows_as_lists(_ids(good_rows(3), "V")))]),
         "hidden.xlsx"),
        ("two visible data sheets", workbook([("A", "visible", _rows_as_lists(good_rows(2))),
                                              ("B", "visible", _rows_as_lists(good_rows(2)))]), "two.xlsx"),
        ("DTD after 5 KB", _rewrite(_plain_book(), "xl/worksheets/sheet1.xml", _entity_after_comment), "dtd.xlsx"),
    ]


def run_counts(seeds: int) -> dict:
    from lib.records import store
    from lib.records.ingest import commit, prepare
    from tests.fuzz_structures import random_parquet, random_xlsx
    from tests.test_records import csv_bytes, good_rows
    from tests.test_upload_fuzz import corpus

    tally: dict[str, Counter] = {}
    crashes: list[str] = []
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-fuzz-") as work:
        con = store.connect(Path(work) / "fuzz.duckdb")
        commit(con, prepare(csv_bytes(good_rows(5)), "seed.csv", key=KEY))

        def one(group: str, name: str, data: bytes, filename: str, limits=None) -> None:
            outcome, detail = classify(con, data, filename, limits)
            tally.setdefault(group, Counter())[outcome] += 1
            if outcome in ("crash", "partial write"):
                crashes.append(f"{group}: {name}: {outcome}: {detail}")

        t0 = time.perf_counter()
        for name, data, filename in corpus():
            one("corpus", name, data, filename)
        seconds["corpus"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for name, data, filename in regression_files():
            one("issue 14 files", name, data, filename)
        seconds["issue 14 files"] = time.perf_counter() - t0
        for group, build in (("structured parquet", random_parquet), ("structured xlsx", random_xlsx)):
            t0 = time.perf_counter()
            for seed in range(seeds):
                case = build(random.Random(seed))
                one(group, f"seed {seed} ({case.description[:80]})", case.data, case.filename, case.limits)
            seconds[group] = time.perf_counter() - t0
        con.close()
    return {"tally": tally, "crashes": crashes, "seconds": seconds}


def bomb_child(rows: int) -> None:
    """In its own process: refuse the bomb; print outcome and peak memory (VmHWM)."""
    from lib.records.extract import ExtractError, read_extract
    from tests.test_hostile_files import parquet_bomb

    data = parquet_bomb(rows=rows, width=1_000)
    base = _vmhwm()
    t0 = time.perf_counter()
    try:
        read_extract(data, "bomb.parquet")
        outcome = "read"
    except ExtractError as exc:
        outcome = exc.code
    print(json.dumps({"outcome": outcome, "seconds": time.perf_counter() - t0, "size": len(data),
                      "peak": _vmhwm(), "before": base}))


def _vmhwm() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def dtd_check_cost(rows: int) -> dict:
    """Time of the streamed DTD check against the whole read of an ordinary workbook."""
    import openpyxl

    from lib.records.extract import check_workbook_archive, read_extract
    from tests.test_records import good_rows

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Encounters")
    template = good_rows(5)
    sheet.append(list(template[0]))
    for i in range(rows):
        row = dict(template[i % 5], source_record_id=f"R{i:07d}")
        sheet.append(list(row.values()))
    buffer = io.BytesIO()
    book.save(buffer)
    data = buffer.getvalue()
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as z:
        xml_mb = sum(i.file_size for i in z.infolist()) / 1e6
    t0 = time.perf_counter()
    check_workbook_archive(data, "big.xlsx")
    check = time.perf_counter() - t0
    t0 = time.perf_counter()
    read_extract(data, "big.xlsx")
    whole = time.perf_counter() - t0
    return {"rows": rows, "xml_mb": xml_mb, "check": check, "whole": whole}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=300, help="structured files per kind (Parquet, .xlsx)")
    parser.add_argument("--bomb-rows", type=int, default=5_000_000)
    parser.add_argument("--workbook-rows", type=int, default=20_000)
    parser.add_argument("--bomb-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bomb_child is not None:
        bomb_child(args.bomb_child)
        return 0
    os.environ.setdefault("JOINEDUP_SYNTHETIC_STORE", "1")
    load = os.getloadavg()[0]
    counts = run_counts(args.seeds)
    total = Counter()
    for group, tally in counts["tally"].items():
        total.update(tally)
        tried = sum(tally.values())
        emit(f"fuzz {group}: files tried", tried, "files", seconds=round(counts["seconds"][group], 1))
        for outcome in ("refused", "stored", "nothing to store", "crash", "partial write"):
            emit(f"fuzz {group}: {outcome}", tally.get(outcome, 0), "files")
    emit("fuzz: files tried", sum(total.values()), "files")
    emit("fuzz: crashes", total.get("crash", 0), "files")
    emit("fuzz: partial writes", total.get("partial write", 0), "files")
    for line in counts["crashes"][:20]:
        emit("fuzz failure", line, "text")
    child = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--bomb-child", str(args.bomb_rows)],
                           capture_output=True, text=True, cwd=ROOT, timeout=600)
    if child.returncode == 0:
        bomb = json.loads(child.stdout.strip().splitlines()[-1])
        emit("parquet bomb: file size", round(bomb["size"] / 1e6, 2), "MB", rows=args.bomb_rows)
        emit("parquet bomb: outcome", bomb["outcome"], "code")
        emit("parquet bomb: refusal time", round(bomb["seconds"], 4), "s")
        emit("parquet bomb: peak RSS while refusing", round(bomb["peak"], 1), "MB",
             note=f"process peak; {bomb['before']:.0f} MB before reading (Python, pyarrow, the file)")
    else:
        emit("parquet bomb: error", child.stderr.strip().splitlines()[-1][-300:] if child.stderr else "?", "text")
    cost = dtd_check_cost(args.workbook_rows)
    emit("xlsx DTD check: workbook XML", round(cost["xml_mb"], 1), "MB", rows=cost["rows"])
    emit("xlsx DTD check: time", round(cost["check"], 3), "s")
    emit("xlsx DTD check: share of whole read", round(100 * cost["check"] / cost["whole"], 1), "%",
         whole_read_seconds=round(cost["whole"], 2))
    emit("load average (1 min) at start", round(load, 2), "")
    return 1 if total.get("crash", 0) or total.get("partial write", 0) else 0


if __name__ == "__main__":
    sys.exit(main())
