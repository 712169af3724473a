"""The default dataset: a national synthetic dataset calibrated to England's published volumes (lib.synth.calibration),
generated and stored at first start.

``ensure_default_dataset(db, progress)`` does nothing if the store already holds encounters. Otherwise it
generates ``DEFAULT_ENCOUNTERS`` synthetic encounters with ``lib.synth`` (fixed seed, so every first start
gives the same data), ingests them through the same validate → geocode → pseudonymise → store path as
an upload (one batch, one transaction), and writes the generator's ground truth to ``truth.parquet``
beside the database, for evaluation only (never read by the app as data). Only the truth columns that
identify no one are kept there: agency_type, source_record_id, true_child_id, true_cse and the
damage flags; the synthetic identifiers in clear are not written.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from lib.records import ingest, store, versions
from lib.records.pseudonymise import load_key
from lib.synth import config

DEFAULT_ENCOUNTERS = config.DEFAULT_ENCOUNTERS  # one constant, defined with the generator (lib.synth.config)
DEFAULT_SEED = 20251125
DEFAULT_FILENAME = "synthetic national dataset"
TRUTH_FILE = "truth.parquet"
TRUTH_KEEP = ("agency_type", "source_record_id", "true_child_id", "true_cse", "anonymous", "nhs_status",
              "name_status", "typo_forename", "typo_surname", "dob_error", "postcode_moved", "far_from_home")

_LOCK = threading.Lock()


def truth_path(db_path) -> Path | None:
    return None if str(db_path) == ":memory:" else Path(db_path).with_name(TRUTH_FILE)


def _report(progress, fraction: float, message: str) -> None:
    if progress is not None:
        progress(min(max(fraction, 0.0), 1.0), message)


def ensure_default_dataset(db=None, progress=None, *, n_encounters: int = DEFAULT_ENCOUNTERS,
                           seed: int = DEFAULT_SEED, key: str | bytes | None = None, db_path=None) -> dict:
    """Fill an empty store with the default synthetic dataset. ``db`` is a path or an open connection.

    Given a path, the dataset is written as the store's next version (lib.records.versions.write). Given a
    connection (e.g. a writer's), ``db_path`` names the logical store, beside which the key and truth files
    live (default: the connection's file). ``progress(fraction, message)`` is called as steps finish.
    Returns a summary (``created`` False if the store already held encounters).
    """
    with _LOCK:
        if hasattr(db, "execute"):
            return _fill(db, db_path if db_path is not None else _connection_path(db), progress, n_encounters,
                         seed, key)
        path = store.resolve_path(db)
        if str(path) == ":memory:":
            con = store.connect(path)
            try:
                return _fill(con, None, progress, n_encounters, seed, key)
            finally:
                con.close()
        opened = versions.open_current(path)
        if opened is not None:
            try:
                existing = store.counts(opened[0])["encounters"] if _has_encounters_table(opened[0]) else 0
            finally:
                opened[0].close()
            if existing:
                return {"created": False, "encounters": existing}
        with versions.write(path, "first-start default dataset") as w:
            summary = _fill(w.con, path, progress, n_encounters, seed, key)
            w.change = f"default synthetic dataset: {summary.get('encounters', 0):,} encounters"
            return summary


def _has_encounters_table(con) -> bool:
    with store.cursor(con) as cur:
        return bool(cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'encounters'"
                                ).fetchall()[0][0])


def _fill(con, db_path, progress, n_encounters: int, seed: int, key) -> dict:
    existing = store.counts(con)["encounters"]
    if existing:
        return {"created": False, "encounters": existing}
    started = time.perf_counter()
    raw_key = load_key(None if db_path is None else db_path, key)
    from lib.synth import SynthConfig, generate

    _report(progress, 0.0, "Generating the synthetic national dataset…")
    encounters, truth = generate(
        SynthConfig(n_encounters=n_encounters, seed=seed),
        progress=lambda f, m: _report(progress, 0.6 * f, f"Generating: {m}"))
    _report(progress, 0.6, "Validating, placing and pseudonymising records…")
    batch = ingest.prepare_frame(encounters, DEFAULT_FILENAME, key=raw_key)
    del encounters
    _report(progress, 0.85, "Storing records…")
    stored = ingest.commit(con, batch)
    path = truth_path(db_path) if db_path is not None else None
    if path is not None:
        keep = [c for c in TRUTH_KEEP if c in truth.columns]
        truth[keep].to_parquet(path, index=False)
    _report(progress, 1.0, "Default dataset ready")
    return {"created": True, "encounters": stored["rows_stored"], "rejected": stored["rows_rejected"],
            "truth": None if path is None else str(path),
            "seconds": round(time.perf_counter() - started, 2)}


def _connection_path(con) -> Path | None:
    """The file behind an open connection (None for an in-memory database)."""
    with store.cursor(con) as cur:
        rows = cur.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()
    path = rows[0][0] if rows else None
    if not path:
        return None
    from lib.records.versions import logical_path

    return logical_path(path)  # a writer's version file: the key and truth files live beside the store
