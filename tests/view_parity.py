"""Parity harness (issue 15): a page's rendered tables equal its command-line twin's (one source of truth).

Run a page with Streamlit's AppTest as a role, with URL query parameters and/or session state, collect every
dataframe it rendered, and compare each, by its key, with the tables of ``python -m lib.cli view <page> --role R
--param ...`` (run in-process through lib.cli.main, so the JSON compared is the CLI's own output).

    from tests.view_parity import assert_parity
    assert_parity(monkeypatch, store, "compare", "commissioner", params={"layer": "lad", ...},
                  query={"layer": "lad", ...}, state={"cmp_chart_view": "Table"})

``params`` are the view's parameters (the CLI's ``--param``); ``query`` the URL the page is opened on
(default: ``params`` as text); ``state``: session_state set before the run (e.g. tabs opened on "Table").
``tables``: the names of the view's tables the page is expected to render (default: all of them). A page
renders a view table with ``st.dataframe(..., key=<its name in PageData.tables>)``; the key pairs them.
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


def rendered_tables(at) -> dict[str, pd.DataFrame]:
    """Every st.dataframe the page rendered, by its widget key (a page renders a view table with
    ``key=<the table's name in PageData>``). A dataframe without a key, or an st.table, fails: every table a
    user sees must be a view table."""
    assert not at.table, "render view tables with st.dataframe(key=<table name>), not st.table"
    frames: dict[str, pd.DataFrame] = {}
    for element in at.dataframe:
        assert element.key, "a dataframe without a key: render view tables with key=<table name>"
        assert element.key not in frames, f"two dataframes with the key {element.key!r}"
        frames[element.key] = element.value
    return frames


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
    """Every table the page rendered is the view's table of the same name (its key), equal in columns, rows
    and order; the page rendered exactly ``tables`` (default: every table of the view). Returns (AppTest,
    the view's JSON)."""
    view = cli_view(store, page, role, params)
    if query is None:
        query = {k: ",".join(v) if isinstance(v, (list, tuple)) else str(v) for k, v in (params or {}).items()}
    at = run_page(monkeypatch, store, page, role, query=query, state=state)
    rendered = rendered_tables(at)
    expected = list(view["table_order"]) if tables is None else list(tables)
    unknown = [k for k in rendered if k not in view["tables"]]
    assert not unknown, f"{page} as {role} rendered tables {unknown} that the view does not build " \
                        f"(view tables: {view['table_order']})"
    assert sorted(rendered) == sorted(expected), f"{page} as {role}: rendered {sorted(rendered)}, " \
                                                  f"expected {sorted(expected)}"
    for name in expected:
        got = normalised(rendered[name])
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
