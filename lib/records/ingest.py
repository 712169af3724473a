"""The ingest step end to end: read → validate → geocode → pseudonymise → (user sees summary) → store.

``prepare`` does everything except storing and returns a ``PreparedBatch`` that holds only what will be
stored (hashes and lossy features) plus the issues: clear names and NHS numbers do not outlive it.
``commit`` stores a prepared batch in one transaction; ``ingest_files`` does both for the command line.
"""
from __future__ import annotations

import hashlib
import logging
import time
import traceback
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lib.records import schema, store, versions
from lib.records.extract import ExtractError, map_columns, read_extract, table_columns
from lib.records.filenames import safe_filename
from lib.records.pseudonymise import Hasher, key_check, load_key, pseudonymise
from lib.records.validate import Validated, validate

_log = logging.getLogger(__name__)


@dataclass
class PreparedBatch:
    filename: str
    file_sha256: str
    file_format: str
    rows_read: int
    records: pa.Table  # rows to store (pseudonymised), store.RECORD_NAMES columns
    issues: pd.DataFrame  # file, row, field, code, reason, action
    key_check: str
    blank_rows: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    sheet: str | None = None  # the worksheet read from an Excel workbook (None for CSV and Parquet)
    sheet_note: str | None = None  # which sheet was read and which were not (hidden, without headers)
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)  # read, validate stages, pseudonymise

    @property
    def rows_valid(self) -> int:
        return self.records.num_rows

    @property
    def rows_rejected(self) -> int:
        return self.rows_read - self.records.num_rows

    @property
    def values_dropped(self) -> int:
        return int((self.issues["action"] == schema.VALUE_DROPPED).sum()) if len(self.issues) else 0

    def by_reason(self, action: str) -> dict[str, int]:
        """Count of issues by 'field: code' for one action (rows rejected or values dropped)."""
        if not len(self.issues):
            return {}
        part = self.issues[self.issues["action"] == action]
        counts = (part["field"] + ": " + part["code"]).value_counts()
        return {str(k): int(v) for k, v in counts.items()}

    def retired_codes_mapped(self) -> dict[str, int]:
        """Rows per retired-code message ("E08000016 (Barnsley) is a retired ... mapped to ..."), for the summary."""
        if not len(self.issues):
            return {}
        part = self.issues[self.issues["action"] == schema.CODE_MAPPED]
        return {str(k): int(v) for k, v in part["reason"].value_counts().items()}

    def records_frame(self, limit: int | None = None) -> pd.DataFrame:
        """The pseudonymised rows as pandas (exactly what will be stored)."""
        table = self.records if limit is None else self.records.slice(0, limit)
        return store.decode_dictionaries(table).to_pandas()

    def summary(self) -> dict:
        r = self.records
        nhs = pc.value_counts(pc.cast(r.column("nhs_status"), pa.string())).to_pylist() if r.num_rows else []
        return {
            "file": self.filename,
            "format": self.file_format,
            "sha256": self.file_sha256,
            "rows_read": int(self.rows_read),
            "rows_valid": int(r.num_rows),
            "rows_rejected": int(self.rows_rejected),
            "blank_rows_skipped": int(self.blank_rows),
            "values_dropped": int(self.values_dropped),
            "rejected_by_reason": self.by_reason(schema.ROW_REJECTED),
            "dropped_by_reason": self.by_reason(schema.VALUE_DROPPED),
            "codes_mapped": self.by_reason(schema.CODE_MAPPED),
            "retired_codes_mapped": self.retired_codes_mapped(),
            "nhs_status": {d["values"]: int(d["counts"]) for d in nhs},
            "anonymous": int(pc.sum(r.column("is_anonymous")).as_py() or 0),
            "home_placed": int(r.num_rows - r.column("home_lsoa").null_count),
            "encounter_placed": int(r.num_rows - r.column("enc_lsoa").null_count),
            "ignored_columns": list(self.ignored_columns),
            "sheet": self.sheet,
            "sheet_note": self.sheet_note,
        }


def _finish(validated: Validated, *, sha256: str, fmt: str, key: bytes, started: float,
            read_seconds: float) -> PreparedBatch:
    t0 = time.perf_counter()
    records = pseudonymise(validated.table, key)
    stages = {"read": read_seconds, **{f"validate: {k}": v for k, v in validated.timings.items()},
              "pseudonymise": time.perf_counter() - t0}
    return PreparedBatch(filename=validated.filename, file_sha256=sha256, file_format=fmt,
                         rows_read=validated.rows_read, records=records, issues=validated.issues,
                         key_check=key_check(key), blank_rows=validated.blank_rows,
                         ignored_columns=validated.ignored_columns, seconds=time.perf_counter() - started,
                         stage_seconds=stages)


def record_id_hasher(key: bytes):
    """value -> keyed hex digest, for record ids shaped like a personal identifier (kept only hashed)."""
    hasher = Hasher(key)
    return lambda value: hasher.hexdigest("record_id", value)


def prepare(source, filename: str | None = None, *, key: bytes, today: date | None = None,
            max_bytes: int | None = None) -> PreparedBatch:
    """Read, validate, geocode and pseudonymise one extract. Raises ExtractError for whole-file problems."""
    started = time.perf_counter()
    kwargs = {} if max_bytes is None else {"max_bytes": max_bytes}
    try:
        extract = read_extract(source, filename, **kwargs)
        read_seconds = time.perf_counter() - started
        validated = validate(extract, today=today, id_hasher=record_id_hasher(key))
        batch = _finish(validated, sha256=extract.sha256, fmt=extract.format, key=key, started=started,
                        read_seconds=read_seconds)
    except ExtractError:
        raise
    except Exception as exc:  # noqa: BLE001 - last resort for a hostile file: a clear refusal, never a traceback
        raise _internal_error(source, filename, exc) from exc
    batch.sheet, batch.sheet_note = extract.sheet, extract.sheet_note
    return batch


def _internal_error(source, filename: str | None, exc: BaseException) -> ExtractError:
    """An unexpected failure while reading one file, as a refusal naming the file (nothing is stored).

    The exception's own text is not shown or logged (it may quote a cell); its type and where it was
    raised are logged for the developers. Tests treat the code ``internal_error`` as a bug to fix.
    """
    name = safe_filename(filename or (getattr(source, "name", None) if not isinstance(source, (str, Path))
                                      else Path(source).name))
    where = "".join(traceback.format_list(traceback.extract_tb(exc.__traceback__)[-3:])).strip()
    _log.error("reading %s failed with %s at\n%s", name, type(exc).__name__, where)
    return ExtractError(name, f"the file could not be read ({type(exc).__name__}); nothing from it was stored. "
                              "If the file opens normally, save it again as CSV UTF-8 and upload that",
                        "internal_error")


def prepare_frame(frame: pd.DataFrame, filename: str, *, key: bytes, today: date | None = None) -> PreparedBatch:
    """As ``prepare`` for an in-memory frame of canonical columns (any dtypes, e.g. from lib.synth)."""
    started = time.perf_counter()
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    headers, columns, rows, _, _ = table_columns(table, filename)
    canonical, _, ignored = map_columns(headers, columns, filename)
    validated = validate(canonical, filename, rows=rows, today=today, id_hasher=record_id_hasher(key))
    validated.ignored_columns = ignored
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()
    return _finish(validated, sha256=digest, fmt="frame", key=key, started=started, read_seconds=0.0)


def commit(con, batch: PreparedBatch, *, progress=None) -> dict:
    return store.commit_batch(con, batch, progress=progress)


def ingest_files(paths, db=None, *, key: str | bytes | None = None, today: date | None = None) -> dict:
    """Ingest each file as its own batch; a file with a whole-file problem is reported and skipped."""
    db_path = store.resolve_path(db)
    raw_key = load_key(db_path, key)
    results = []
    memory = str(db_path) == ":memory:"
    # A shared store is written through the versioned writer: the files go into the next version, published
    # once all are stored (readers see none of them, or all; a crash publishes nothing).
    with (nullcontext() if memory else versions.write(db_path, "ingest")) as w:
        con = store.connect(db_path) if memory else w.con
        for path in paths:
            try:
                batch = prepare(path, key=raw_key, today=today)
            except ExtractError as exc:
                results.append({"file": exc.filename, "error": exc.message, "error_code": exc.code,
                                "rows_read": 0, "rows_stored": 0, "rows_rejected": 0})
                continue
            stored = commit(con, batch)
            summary = batch.summary()
            summary.update({k: stored[k] for k in ("batch_id", "rows_stored", "rows_already_stored")})
            summary["seconds"] = round(batch.seconds, 3)
            results.append(summary)
        totals = store.counts(con)
        if w is not None:
            w.change = (f"ingest: {sum(1 for r in results if 'error' not in r)} file(s), "
                        f"{sum(r.get('rows_stored', 0) for r in results):,} rows stored")
        if memory:
            con.close()
    rejected: dict[str, int] = {}
    dropped: dict[str, int] = {}
    for r in results:
        for k, v in r.get("rejected_by_reason", {}).items():
            rejected[k] = rejected.get(k, 0) + v
        for k, v in r.get("dropped_by_reason", {}).items():
            dropped[k] = dropped.get(k, 0) + v
    return {
        "db": str(db_path),
        "files": results,
        "rows_read": sum(r.get("rows_read", 0) for r in results),
        "rows_stored": sum(r.get("rows_stored", 0) for r in results),
        "rows_rejected": sum(r.get("rows_rejected", 0) for r in results),
        "rejected_by_reason": rejected,
        "dropped_by_reason": dropped,
        "files_failed": sum(1 for r in results if "error" in r),
        "store": totals,
    }
