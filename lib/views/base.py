"""The view layer's core: ``PageData``, what one page shows one role for one set of parameters.

A view builder (``lib/views/<page>.py``) returns a ``PageData``; the Streamlit page only renders it and
``python -m lib.cli view <page>`` writes it (JSON, or one table as CSV). One source of truth per number.

Interface (kept small; other builders depend on it):

- ``Table(frame, title="", note="", downloadable=False, columns={})``: ``frame`` is exactly what the user
  sees, already protected for the role (the builder reads the protected cube, ``Source.cube_for(role)``, from
  the one disclosure-control service). ``columns``: optional display hints per column,
  ``{"col": {"label": "Area", "format": "%.2f"}}`` (JSON-safe; the page turns them into column_config).
- ``PageData(page, role, params, data_version, title, sentences=[], tables={}, figures={}, notes=[])``:
  ``sentences``: the readings shown as markdown, in page order; ``tables``: ordered name -> Table;
  ``figures``: name -> Plotly figure: a ``go.Figure`` or its dict spec (``to_json()`` writes the dict,
  ``fig.to_plotly_json()``; ``figure_spec(fig)`` gives the dict). st.plotly_chart draws either; a go.Figure
  is cheaper to draw on every rerun (a dict is validated again each time);
  ``notes``: captions and caveats (``say(name, text)`` / ``note(name, text)`` append a named one, which
  the page places with ``sentence(name)`` / ``note_text(name)``: None when the builder left it out).
  ``extra``: small JSON-safe values the page needs to lay itself out
  (e.g. names of areas for a selector); never a number the user sees that is not also in a table/sentence.
- ``pd.to_json()``: deterministic (sorted keys, NaN -> null, dates ISO 8601, numpy -> Python).
- ``pd.to_csv(name)``: one table as spreadsheet-safe CSV bytes (lib.export.csv_safe).
- ``Param(default, choices=None, kind=str, many=False, help="")``: one entry of a page module's ``PARAMS``.
- ``Source(con, path=None, cube=None, memo=None, inputs=None)``: what builders read from: the store
  connection, memoised expensive inputs (``cube()``, ``memo.get(key, fn)``: a ``Memo`` per data version,
  which pages keep in st.cache_resource so a rerun does not recount), ``inputs`` (uploaded bytes) and
  ``stored(*key)``: a measure the last write stored (spans, flows, completeness), None when not current.

lib.views never imports streamlit.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lib.access.roles import aggregates_suppressed
from lib.disclosure import members, service
from lib.disclosure.keys import NoSecret
from lib.export.csv_safe import to_csv_bytes
from lib.measures import aggregates
from lib.records import store
from lib.scenario import stored as _stored_scenario  # noqa: F401 - registers the Scenario's stored result


@dataclass
class Table:
    frame: pd.DataFrame
    title: str = ""
    note: str = ""
    downloadable: bool = False
    columns: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        frame = self.frame.reset_index(drop=True)
        return {"title": self.title, "note": self.note, "downloadable": self.downloadable,
                "columns": [str(c) for c in frame.columns], "column_hints": self.columns,
                "rows": frame_rows(frame)}


@dataclass
class PageData:
    page: str
    role: str
    params: dict
    data_version: str
    title: str
    sentences: list[str] = field(default_factory=list)
    tables: dict[str, Table] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    sentence_names: dict[str, int] = field(default_factory=dict)
    note_names: dict[str, int] = field(default_factory=dict)

    def say(self, name: str, text: str) -> None:
        """Append a named sentence (the page places it with ``sentence(name)``)."""
        self.sentence_names[name] = len(self.sentences)
        self.sentences.append(text)

    def note(self, name: str, text: str) -> None:
        """Append a named note or caveat (the page places it with ``note_text(name)``)."""
        self.note_names[name] = len(self.notes)
        self.notes.append(text)

    def sentence(self, name: str) -> str | None:
        return self.sentences[self.sentence_names[name]] if name in self.sentence_names else None

    def note_text(self, name: str) -> str | None:
        return self.notes[self.note_names[name]] if name in self.note_names else None

    def table(self, name: str) -> Table:
        if name not in self.tables:
            raise ValueError(f"page {self.page!r} has no table {name!r}: expected one of "
                             f"{', '.join(self.tables) or '(none)'}")
        return self.tables[name]

    def to_dict(self) -> dict:
        return {"page": self.page, "role": self.role, "params": self.params, "data_version": self.data_version,
                "title": self.title, "sentences": list(self.sentences), "notes": list(self.notes),
                "tables": {name: t.to_dict() for name, t in self.tables.items()},
                "table_order": list(self.tables), "figures": {k: figure_spec(f) for k, f in self.figures.items()},
                "extra": self.extra,
                "sentence_names": self.sentence_names, "note_names": self.note_names}

    def to_json(self, *, indent: int | None = None) -> str:
        return dumps(self.to_dict(), indent=indent)

    def to_csv(self, table_name: str) -> bytes:
        return to_csv_bytes(self.table(table_name).frame)


@dataclass(frozen=True)
class Param:
    """One parameter of a page: ``choices`` (a tuple, or a live registry view: a layer registered later is
    offered) or ``kind`` (a type parsing text); ``many``: a list (comma-separated on the command line).
    ``default`` None means "the builder decides"."""
    default: Any = None
    choices: tuple | Mapping | None = None
    kind: type = str
    many: bool = False
    help: str = ""


class Memo:
    """A small thread-safe LRU of expensive intermediate results for ONE data version (pages keep one per
    version with st.cache_resource, so a rerun or another session reuses them; the CLI uses a fresh one)."""

    def __init__(self, max_entries: int = 128):
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def get(self, key, compute):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = compute()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)
        return value


class Source:
    """The store a builder reads: a DuckDB connection, its path, memoised expensive inputs (``cube()``,
    ``memo.get(key, fn)``) and ``inputs``: data the user gave the page that is not a parameter (an uploaded
    file's bytes, by name)."""

    def __init__(self, con, path=None, *, cube=None, memo: Memo | None = None, inputs: dict | None = None,
                 use_stored: bool = True):
        self.con, self.path, self._cube = con, path, cube
        self.memo = memo if memo is not None else Memo()
        self.inputs = dict(inputs or {})
        self.use_stored = use_stored

    def stored(self, *key):
        """The measure ``key`` as the last write stored it (``agg_frames``: spans, flows, completeness; see
        lib.measures.aggregates.view_frames) when current, else None (the builder computes it). ``use_stored``
        False: always None (tests compare the two)."""
        if not self.use_stored:
            return None
        return aggregates.stored_frame(self.con, aggregates.frame_name(*key))

    def cube(self):
        """The EXACT cube (the safeguarding lead's figures). Builders showing counts call ``cube_for(role)``."""
        if self._cube is None:
            self._cube = self.memo.get(("cube",), lambda: aggregates.cube(self.con))  # the stored aggregates
        return self._cube

    def keys(self) -> dict:
        """The store's record and child keys (lib.disclosure.members.key_tables), memoised per data version."""
        return self.memo.get(("disclosure.keys",), lambda: aggregates.stored_keys(self.con)
                             or members.key_tables(self.con))  # stored with the protected cube when current

    def cube_for(self, role: str):
        """The cube ``role`` may see: exact for the safeguarding lead, protected by cell key perturbation
        (lib.disclosure.service.protected_cube, memoised per data version) for every other role: the one stored
        by the last write (``agg_cube``, lib.measures.aggregates) when current, else computed here."""
        if not aggregates_suppressed(role):
            return self.cube()
        return self.memo.get(("cube", "protected"), self._protected_cube)

    def _protected_cube(self):
        kept = aggregates.stored_cube(self.con, "protected")  # built with the data, when it is current
        if kept is not None:
            return kept
        try:
            keys = self.keys()
        except NoSecret:  # nothing ingested yet: nothing to protect, and the exact cube is empty
            if store.counts(self.con)["encounters"]:
                raise
            return self.cube()
        return service.protected_cube(self.con, self.cube(), keys=keys)

    def data_version(self) -> str:
        return store.data_version(self.con)


def source_of(con_or_store) -> Source:
    return con_or_store if isinstance(con_or_store, Source) else Source(con_or_store)


def figure_spec(fig) -> dict:
    """A Plotly figure as a plain dict (JSON-carried; st.plotly_chart accepts it)."""
    return fig.to_plotly_json() if hasattr(fig, "to_plotly_json") else dict(fig)


# -- deterministic JSON ----------------------------------------------------------------------------------

def plain(value):
    """A JSON-safe Python value: NaN/NA/NaT -> None, numpy -> Python, dates ISO 8601, arrays -> lists."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [plain(v) for v in items]
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, pd.DataFrame):
        return {"columns": [str(c) for c in value.columns], "rows": frame_rows(value)}
    if isinstance(value, pd.Series):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, (pd.Timestamp, _dt.datetime, _dt.date)):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, int):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(value, "to_plotly_json"):
        return plain(value.to_plotly_json())
    return str(value)


def frame_rows(frame: pd.DataFrame) -> list[list]:
    return [[plain(v) for v in row] for row in frame.itertuples(index=False, name=None)]


def dumps(obj, *, indent: int | None = None) -> str:
    return json.dumps(plain(obj), sort_keys=True, indent=indent, ensure_ascii=False, allow_nan=False)


def table_from_json(spec: dict) -> pd.DataFrame:
    """A table of ``to_json()`` back as a frame (columns and rows; for tests and tools comparing views)."""
    return pd.DataFrame(spec["rows"], columns=spec["columns"])
