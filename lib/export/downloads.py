"""The ONE export path: every download and exported file is made spreadsheet-safe here and recorded in the
audit trail (issue 15).

- ``payload(kind, data) -> (bytes, mime)``: the bytes to hand over. ``kind`` is the file type ("csv",
  "json", "pptx", "png", "txt", ...; a file name works too, its extension is used). A CSV must be passed
  as a DataFrame and is written by lib.export.csv_safe (formula-like cells neutralised, UTF-8 with BOM);
  CSV passed as text or bytes is refused, so no CSV leaves without that.
- ``record(audit_log, *, user, role, subject, detail) -> int``: the 'export' audit row.
- ``prepare(kind, data, *, user, role, subject, detail, audit_log) -> bytes``: both, the row written
  BEFORE the bytes are returned, so an export that cannot be audited is never written.
- ``command_export(store_path, kind, data, *, subject, detail) -> bytes``: ``prepare`` for a command-line
  job (user ``cli:<os user>``, role "(command line)", the audit trail beside the store).

Streamlit pages use ``pages.common.export_button`` (payload now, record when clicked); command-line
exports and any lib code writing a user-facing file call ``prepare`` / ``command_export``.
"""
from __future__ import annotations

import pandas as pd

from lib.access import audit
from lib.export.csv_safe import to_csv_bytes

MIME = {"csv": "text/csv", "json": "application/json", "png": "image/png", "txt": "text/plain",
        "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "zip": "application/zip", "md": "text/markdown"}


def kind_of(kind_or_name: str) -> str:
    text = str(kind_or_name).lower()
    return text.rsplit(".", 1)[-1] if "." in text else text


def payload(kind: str, data) -> tuple[bytes, str]:
    """The export's bytes and MIME type; TypeError for a CSV not passed as a DataFrame."""
    kind = kind_of(kind)
    if isinstance(data, pd.DataFrame):
        if kind != "csv":
            raise TypeError(f"a table is exported as CSV, not {kind!r}")
        return to_csv_bytes(data), MIME["csv"]
    if kind == "csv":
        raise TypeError("pass a CSV export as a DataFrame, so it is made spreadsheet-safe")
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"export data must be a DataFrame, bytes or str, not {type(data).__name__}")
    return bytes(data), MIME.get(kind, "application/octet-stream")


def record(audit_log, *, user: str, role: str, subject=None, detail=None) -> int:
    """Write the 'export' audit row (lib.access.audit.record); AuditError if it cannot be written."""
    return audit.record(audit_log, user=user, role=role, action="export", subject=subject, detail=detail)


def prepare(kind: str, data, *, user: str, role: str, subject=None, detail=None, audit_log) -> bytes:
    """Spreadsheet-safe bytes of the export, after its audit row is written."""
    body, _ = payload(kind, data)
    record(audit_log, user=user, role=role, subject=subject, detail=detail)
    return body


def command_export(store_path, kind: str, data, *, subject=None, detail=None) -> bytes:
    """``prepare`` for a command-line job on the store at ``store_path``."""
    return prepare(kind, data, user=audit.cli_user(), role=audit.CLI_ROLE, subject=subject, detail=detail,
                   audit_log=audit.AuditLog.for_store(store_path))
