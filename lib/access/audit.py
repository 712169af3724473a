"""The audit trail: who saw, exported, loaded, linked or decided what, and when. No Streamlit here.

Every child-level view, export, upload, linkage run, review decision and sign-in event is one row of
the append-only table ``audit_log`` in the DuckDB store. This module only ever INSERTs into it (no
UPDATE or DELETE anywhere in the code; a test checks). Each row carries a hash chain: ``row_hash`` is
SHA-256 over the previous row's hash and this row's fields, so editing or deleting an earlier row is
detectable with ``verify(con)``. (The chain detects tampering; it cannot stop someone with write access
to the database file rewriting the whole chain — keep the file on access-controlled storage and export
the trail regularly.)

Values recorded: user name, role, action (see ``ACTIONS``), subject (an area code, a child pseudonym
``CH-…``, a file name, a batch id) and a short free-text detail. Never an identifier in clear, never a
key or password.
"""
from __future__ import annotations

import hashlib
import json
import threading
from datetime import datetime, timezone

import pandas as pd

TABLE = "audit_log"
ACTIONS = {
    "view_child": "Opened one child's journey",
    "view_review": "Opened a pair in the review queue",
    "review_decision": "Accepted or rejected a link",
    "export": "Downloaded a table, figure or pack",
    "upload": "Stored an uploaded extract",
    "upload_refused": "An upload was refused (whole-file problem)",
    "link_run": "Ran linkage",
    "sign_in": "Signed in",
    "sign_in_failed": "A sign-in attempt failed",
    "sign_out": "Signed out (or the session timed out)",
    "view_audit": "Opened the audit trail",
}
GENESIS = "0" * 64
MAX_TEXT = 500  # subject and detail are cut to this length

_SCHEMA = (f"CREATE TABLE IF NOT EXISTS {TABLE} (seq BIGINT PRIMARY KEY, at_utc TIMESTAMP NOT NULL, "
           "user_name VARCHAR NOT NULL, role VARCHAR NOT NULL, action VARCHAR NOT NULL, subject VARCHAR, "
           "detail VARCHAR, prev_hash VARCHAR NOT NULL, row_hash VARCHAR NOT NULL)")
# SQL: the table name is this module's constant; every value (user, filters, limit) is a ? parameter.
_LOCK = threading.Lock()  # one writer at a time per process (DuckDB lets one process hold the file)


def ensure_table(con) -> None:
    cur = con.cursor()
    try:
        cur.execute(_SCHEMA)
    finally:
        cur.close()


def _text(value) -> str | None:
    if value is None:
        return None
    text = "".join(ch if ch.isprintable() else " " for ch in str(value))
    return text[:MAX_TEXT]


def _row_hash(prev_hash: str, seq: int, at: str, user: str, role: str, action: str, subject, detail) -> str:
    payload = json.dumps([prev_hash, seq, at, user, role, action, subject, detail], ensure_ascii=True,
                         separators=(",", ":"))
    return hashlib.sha256(payload.encode("ascii")).hexdigest()


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")


def record(con, *, user: str, role: str, action: str, subject=None, detail=None) -> int:
    """Append one audit row; returns its sequence number. ``action`` must be one of ACTIONS."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    user, role = _text(user) or "(unknown)", _text(role) or "(none)"
    subject, detail = _text(subject), _text(detail)
    at = datetime.now(timezone.utc).replace(tzinfo=None)
    with _LOCK:
        ensure_table(con)
        cur = con.cursor()
        try:
            cur.execute("BEGIN TRANSACTION")
            try:
                last = cur.execute(f"SELECT seq, row_hash FROM {TABLE} ORDER BY seq DESC LIMIT 1").fetchall()
                seq, prev = (last[0][0] + 1, last[0][1]) if last else (1, GENESIS)
                digest = _row_hash(prev, seq, _iso(at), user, role, action, subject, detail)
                cur.execute(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [seq, at, user, role, action, subject, detail, prev, digest])
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        finally:
            cur.close()
    return int(seq)


def read(con, *, action: str | None = None, user: str | None = None, text: str | None = None,
         since: datetime | None = None, until: datetime | None = None, limit: int | None = None) -> pd.DataFrame:
    """Audit rows, newest first, filtered (all filters parameterised)."""
    ensure_table(con)
    where, params = [], []
    if action:
        where.append("action = ?")
        params.append(action)
    if user:
        where.append("user_name = ?")
        params.append(user)
    if text:
        where.append("(contains(lower(coalesce(subject, '')), lower(?)) "
                     "OR contains(lower(coalesce(detail, '')), lower(?)))")
        params += [text, text]
    if since is not None:
        where.append("at_utc >= ?")
        params.append(since)
    if until is not None:
        where.append("at_utc < ?")
        params.append(until)
    sql = (f"SELECT seq, at_utc, user_name, role, action, subject, detail FROM {TABLE}"
           + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY seq DESC")
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    cur = con.cursor()
    try:
        return cur.execute(sql, params).df()
    finally:
        cur.close()


def verify(con) -> dict:
    """Re-compute the hash chain: {"ok", "rows", "first_bad_seq"} (first row where the chain breaks)."""
    ensure_table(con)
    cur = con.cursor()
    try:
        rows = cur.execute(f"SELECT seq, at_utc, user_name, role, action, subject, detail, prev_hash, row_hash "
                           f"FROM {TABLE} ORDER BY seq").fetchall()
    finally:
        cur.close()
    prev = GENESIS
    expected_seq = 1
    for seq, at, user, role, action, subject, detail, prev_hash, row_hash in rows:
        if seq != expected_seq or prev_hash != prev or \
                _row_hash(prev, seq, _iso(at), user, role, action, subject, detail) != row_hash:
            return {"ok": False, "rows": len(rows), "first_bad_seq": int(seq)}
        prev, expected_seq = row_hash, seq + 1
    return {"ok": True, "rows": len(rows), "first_bad_seq": None}


def to_csv(frame: pd.DataFrame) -> bytes:
    """CSV of audit rows with spreadsheet-formula cells neutralised (a leading ' on = + - @ tab CR)."""
    from lib.access.safety import csv_safe_frame

    return csv_safe_frame(frame).to_csv(index=False).encode("utf-8")
