"""An uploaded file's name made harmless before it is shown, stored or logged.

``safe_filename``: the last path component only (no directories, no ``..``), no control or shell characters,
bounded length. Reading an extract (``lib.records.extract``) applies it first, so every later step sees a
name, never a path. ``lib.access.safety`` re-exports it with the other output defences.
"""
from __future__ import annotations

import re
import unicodedata

MAX_FILENAME = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9 ._()\-+,]")


def safe_filename(name: str | None, default: str = "upload") -> str:
    """The last path component of ``name``, with anything but letters, digits and ``._-()+, `` replaced."""
    text = unicodedata.normalize("NFKC", str(name or ""))
    text = re.split(r"[\\/]", text)[-1]
    text = "".join(ch for ch in text if ch.isprintable())
    text = _UNSAFE.sub("_", text).strip(" .")
    text = re.sub(r"_{2,}", "_", text)
    if not text or set(text) <= {".", "_"}:
        return default
    if len(text) > MAX_FILENAME:
        stem, dot, suffix = text.rpartition(".")
        suffix = suffix[:10] if dot else ""
        text = (stem if dot else text)[: MAX_FILENAME - len(suffix) - 2] + "…" + ("." + suffix if suffix else "")
    return text
