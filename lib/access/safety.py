"""Small defences used wherever user-supplied text leaves the program: file names, CSV exports, HTML.

- ``safe_filename`` (from ``lib.records.filenames``, where reading an extract uses it): an uploaded file's
  name reduced to a harmless base name (no directories, no ``..``, no control or shell characters, bounded
  length) before it is shown, stored or logged.
- ``csv_safe_frame``: text cells that a spreadsheet would run as a formula (starting ``= + - @`` or a
  tab or carriage return) get a leading apostrophe, the OWASP "CSV injection" neutralisation. Numbers
  are left as numbers.
- ``redact``: removes a secret's text (and its hex/base64 forms) from a message before it is shown.
"""
from __future__ import annotations

import base64
import contextlib
import re

import pandas as pd

from lib.records.filenames import MAX_FILENAME, safe_filename  # noqa: F401 (re-exported)

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value):
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with every text cell (and column name) that could start a formula prefixed with '."""
    out = frame.copy()
    out.columns = [neutralise_cell(str(c)) for c in out.columns]
    for column in out.columns:
        series = out[column]
        if pd.api.types.is_string_dtype(series) or series.dtype == object:
            out[column] = series.map(neutralise_cell, na_action="ignore")
    return out


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:])")


def escape_markdown(text) -> str:
    """User text made inert inside Streamlit markdown (no links, images, emphasis, HTML or LaTeX)."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(text))
    return _MARKDOWN.sub(r"\\\1", text)


def secret_forms(secret: str | bytes) -> list[str]:
    """The forms a secret could be written in: as text, hex and base64."""
    raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    forms = {raw.hex(), base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    with contextlib.suppress(UnicodeDecodeError):
        forms.add(raw.decode("utf-8"))
    return [f for f in forms if len(f) >= 8]


def redact(message: str, secrets) -> str:
    for secret in secrets:
        if not secret:
            continue
        for form in secret_forms(secret):
            message = message.replace(form, "[redacted]")
    return message
