"""Parity harness (issue 15): a page's rendered tables equal its command-line twin's (one source of truth).

Run a page with Streamlit's AppTest as a role, with URL query parameters and/or session state, collect every
dataframe it rendered, and compare them, in order, with the tables of ``python -m lib.cli view <page> --role R
--param ...`` (run in-process through lib.cli.main, so the JSON compared is the CLI's own output).

    from tests.view_parity import assert_parity
    assert_parity(monkeypatch, store, "compare", "commissioner", params={"layer": "lad", ...},
                  query={"layer": "lad", ...}, state={"cmp_chart_view": "Table"})

``params`` are the view's parameters (the CLI's ``--param``); ``query`` the URL the page is opened on
(default: ``params`` as text); ``state``: session_state set before the run (e.g. tabs opened on "Table").
``tables``: the names of the view's tables the page is expected to render, in order (default: all of them, in
PageData order). AppTest gives no key for a read-only dataframe, so rendered tables are paired by order: the
page must render every dataframe from the view (pages.common.show_table), in PageData order.
Both sides are compared through the same JSON normalisation (NaN -> null, numpy -> Python), so a difference
of Arrow dtypes alone is not a difference, but any value, column name or row order is.
"""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pandas as pd

from lib.views.base import frame_rows

ROOT = Path(__file__).resolve().parents[1]


def page_script(page: str) -> str:
    """The Streamlit script of a page url_path (app.py's navigation names pages/<file>.py by url_path,
    except the Boundaries page, which is pages/map.py)."""
    return str(ROOT / "pages" / ("map.py" if page == "boundaries" else f"{page}.py"))


def run_page(monkeypatch, store, page: str, role: str, *, query: dict | None = None, state: dict | None = None,
             timeout: float = 240):
    """AppTest of the page on ``store`` as ``role`` (demo sign-in), run once and checked for exceptions."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("JOINEDUP_DB", str(store))
    monkeypatch.setenv("JOINEDUP_DEMO_ROLE", role)
    at = AppTest.from_file(page_script(page), default_timeout=timeout)
    at.session_state["demo_role"] = role
    for key, value in (query or {}).items():
        at.query_params[key] = value
    for key, value in (state or {}).items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def rendered_tables(at) -> list[pd.DataFrame]:
    """Every st.dataframe the page rendered, in page order (AppTest carries no key for a read-only
    dataframe, so tables are paired with the view's by order). An st.table fails: render view tables with
    st.dataframe (pages.common.show_table)."""
    assert not at.table, "render view tables with st.dataframe (pages.common.show_table), not st.table"
    return [element.value for element in at.dataframe]


def cli_view(store, page: str, role: str, params: dict | None = None) -> dict:
    """``python -m lib.cli view <page> --role R --param k=v ... --format json`` (in-process), parsed."""
    from lib import cli

    argv = ["view", page, "--role", role, "--db", str(store), "--format", "json"]
    for key, value in (params or {}).items():
        argv += ["--param", f"{key}={','.join(value) if isinstance(value, (list, tuple)) else value}"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(argv)
    assert code == 0, out.getvalue()
    return json.loads(out.getvalue())


def normalised(frame: pd.DataFrame) -> dict:
    frame = frame.reset_index(drop=True)
    return json.loads(json.dumps({"columns": [str(c) for c in frame.columns], "rows": frame_rows(frame)}))


def assert_parity(monkeypatch, store, page: str, role: str, *, params: dict | None = None,
                  query: dict | None = None, state: dict | None = None, tables: list[str] | None = None):
    """The page rendered exactly the view's ``tables`` (default: all of them, in PageData order), each equal
    in columns, rows and row order to the CLI twin's. Returns (AppTest, the view's JSON)."""
    view = cli_view(store, page, role, params)
    if query is None:
        query = {k: ",".join(v) if isinstance(v, (list, tuple)) else str(v) for k, v in (params or {}).items()}
    at = run_page(monkeypatch, store, page, role, query=query, state=state)
    names = list(view["table_order"]) if tables is None else list(tables)
    missing = [n for n in names if n not in view["tables"]]
    assert not missing, f"view {page} has no table {missing}: it has {view['table_order']}"
    rendered = [normalised(f) for f in rendered_tables(at)]
    assert len(rendered) == len(names), (
        f"{page} as {role}: the page rendered {len(rendered)} tables, expected {len(names)} ({names})")
    for name, got in zip(names, rendered):
        want = {"columns": view["tables"][name]["columns"], "rows": view["tables"][name]["rows"]}
        assert got["columns"] == want["columns"], f"{page}/{name} as {role}: columns {got['columns']} != " \
                                                  f"{want['columns']}"
        assert got["rows"] == want["rows"], _first_difference(page, name, role, got, want)
    return at, view


def _first_difference(page, name, role, got, want) -> str:
    if len(got["rows"]) != len(want["rows"]):
        return f"{page}/{name} as {role}: {len(got['rows'])} rows rendered, {len(want['rows'])} in the view"
    for i, (a, b) in enumerate(zip(got["rows"], want["rows"])):
        if a != b:
            return f"{page}/{name} as {role}: row {i} rendered {a}, view {b}"
    return f"{page}/{name} as {role}: differ"
