"""Export controls the analysis pages share (not a page): the one-click board pack, each chart as PNG and
each table as CSV, plus the view's URL state. Thin: the work is lib.export.boardpack.

The pack is built when a download button is clicked (Streamlit runs a callable ``data`` on click, off the
script thread), kept in a small per-process cache keyed by everything that shapes it (store version,
layer, area, period, measure, agencies, role, areas compared, comparator), and every download writes an
``export`` row to the audit trail.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import streamlit as st

from lib.disclosure.notes import method_note
from lib.export import boardpack, downloads
from pages import common

_PACKS: OrderedDict = OrderedDict()
_LOCK = threading.Lock()
_MAX = 8


def current_role() -> str:
    """This session's role; the page has already stopped if there is none (pages.common.require_page)."""
    return common.current_role()


def current_user() -> str:
    return common.current_user() or "(not signed in)"


@st.cache_resource(show_spinner="Counting every agency's records by area and period…", max_entries=2)
def measure_cube(path: str, version: str):
    from lib.measures import aggregates

    return aggregates.cube(common.connection(path))  # the stored aggregates


def _spec_key(value) -> str:
    """A spec value as part of the cache key; a scenario view (PageData) by what its slide shows."""
    if hasattr(value, "tables"):
        return repr((value.title, value.data_version, value.sentences, value.notes,
                     {k: t.frame.to_csv() for k, t in value.tables.items()}))
    return str(value)


def _pack(path: str, version: str, spec: dict, cube) -> boardpack.BoardPack:
    key = (path, version, *sorted((k, _spec_key(v)) for k, v in spec.items()))
    with _LOCK:
        if key in _PACKS:
            _PACKS.move_to_end(key)
            return _PACKS[key]
    pack = boardpack.build_board_pack(common.connection(path), cube=cube, audit=False, **spec)
    with _LOCK:
        _PACKS[key] = pack
        while len(_PACKS) > _MAX:
            _PACKS.popitem(last=False)
    return pack


def board_pack_controls(*, layer: str, area: str, period: str = "all", measure: str = "cse_records",
                        a: str = "police", b: str = "children_social_care", cube=None,
                        compare_areas: list[str] | None = None, comparator: list[str] | None = None,
                        role: str | None = None, key: str = "bp", kind: str = "divergence", scenario=None) -> None:
    """A "Board pack (PowerPoint)" button and, in an expander, the charts (PNG) and tables (CSV). ``scenario``:
    a scenario view's PageData (the Scenario page), added to the deck as a slide."""
    path = common.db_path()
    version = common.stored_data_version(common.connection(path))
    role = role or current_role()
    user = current_user()
    trail = common.audit_trail()  # taken here: make() runs off the script thread (no secrets, no session)
    cube = cube if cube is not None else measure_cube(path, version)
    spec = {"layer": layer, "area": area, "role": role, "period": period, "measure": measure, "a": a, "b": b,
            "compare_areas": list(compare_areas) if compare_areas else None,
            "comparator": list(comparator) if comparator else None, "kind": kind}
    if scenario is not None:
        spec["scenario"] = scenario
    charts, tables = boardpack.ASSETS[kind]

    def download(part: str, name: str | None = None):
        def make() -> bytes:
            pack = _pack(path, version, spec, cube)
            data = pack.deck if part == "deck" else (pack.pngs if part == "png" else pack.csvs)[name]
            downloads.record(trail, user=user, role=role, subject=f"{layer}:{area}",  # before serving
                             detail=f"{name or stem + '.pptx'} ({period}, {measure})")  # the file served
            return data
        return make

    stem = (f"board_pack_{'' if kind == 'divergence' else 'across_'}{'scenario_' if scenario is not None else ''}"
            f"{layer}_{area}_{period.replace(' ', '_')}")
    suppressed = " " + method_note(boardpack.aggregates_suppressed(role))  # what protects the figures (or none)
    st.download_button("Board pack (PowerPoint)", download("deck"), file_name=f"{stem}.pptx",
                       mime=boardpack.PPTX_MIME, key=f"{key}_deck", type="primary", icon=":material/slideshow:",
                       on_click="ignore",
                       help=("Title, summary, map, divergence chart, funnel plot, trend, why they differ, comparison "
                             "table, " + ("the scenario, " if scenario is not None else "")
                             + "methods notes, attribution and data vintage." if kind == "divergence" else
                             "Title, summary, headline figures, children crossing boundaries, flows, children found "
                             "only by linkage, methods notes, attribution and data vintage.") + " Takes about 15 s."
                            + suppressed)
    with st.expander("Charts (PNG) and tables (CSV)"):
        st.caption("The same charts and tables as the board pack. CSV cells that a spreadsheet would run as a "
                   "formula are neutralised." + suppressed)
        cols = st.columns(3)
        for i, (name, title) in enumerate(charts.items()):
            cols[i].download_button(f"{title} (PNG)", download("png", f"{name}.png"), file_name=f"{name}.png",
                                    mime="image/png", key=f"{key}_png_{name}", on_click="ignore")
        for i, (name, title) in enumerate(tables.items()):
            cols[i].download_button(f"{title} (CSV)", download("csv", name.format(layer=layer)),
                                    file_name=name.format(layer=layer), mime="text/csv", key=f"{key}_csv_{i}",
                                    on_click="ignore")


def sync_query_params(values: dict[str, str | None]) -> None:
    """Write the view's state (layer, area(s), period…) to the URL so the link restores it."""
    for name, value in values.items():
        if value in (None, "", []):
            st.query_params.pop(name, None)
        elif st.query_params.get(name) != value:
            st.query_params[name] = value


def seed_from_query(param: str, state_key: str, allowed, *, many: bool = False) -> None:
    """Before a widget is drawn for the first time in a session, take its value from the URL (if valid)."""
    marker = f"_seeded_{state_key}"
    if st.session_state.get(marker):
        return
    st.session_state[marker] = True
    raw = st.query_params.get(param)
    if not raw:
        return
    allowed = list(allowed)
    if many:
        chosen = [v for v in raw.split(",") if v in allowed]
        if chosen:
            st.session_state[state_key] = chosen
    elif raw in allowed:
        st.session_state[state_key] = raw
