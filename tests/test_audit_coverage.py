"""Issue 14, item 7: downloads on every page, the lead's list of children, and command-line jobs are audited.
(Closing a tab: tests/test_browser_session_end.py; the session registry: tests/test_access_sessions.py.)"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lib.access import audit
from tests.conftest import ROOT
from tests.fixtures_linkage import copy_store, synthetic_linked_store
from tests.test_access_app import _page


def _rows(path, action=None):
    return audit.read(audit.AuditLog.for_store(path), action=action)


@pytest.fixture()
def linked_copy(tmp_path_factory, tmp_path, monkeypatch):
    import streamlit as st

    path = copy_store(synthetic_linked_store(tmp_path_factory), tmp_path)
    monkeypatch.setenv("JOINEDUP_DB", str(path))
    st.cache_resource.clear()
    st.cache_data.clear()
    yield path
    st.cache_resource.clear()
    st.cache_data.clear()


def test_divergence_across_and_flows_csv_downloads_are_audited(linked_copy):
    at = _page("divergence", "analyst", div_map_view="Table")
    at.download_button(key="div_csv").click().run()
    assert not at.exception, at.exception
    at = _page("across", "commissioner", spans_view="Table", flows_view="Table")
    at.download_button(key="spans_csv").click().run()
    at.download_button(key="flows_csv").click().run()
    assert not at.exception, at.exception
    exports = _rows(linked_copy, "export")
    by_role = sorted(zip(exports["role"], exports["detail"]))
    assert [role for role, _ in by_role] == ["analyst", "commissioner", "commissioner"]
    details = " ".join(exports["detail"])
    assert "divergence_" in details and "across_spans_" in details and "across_flows_" in details


def test_the_lead_s_list_of_children_is_audited_once_per_list(linked_copy):
    at = _page("across", "lead")
    at.run()  # the same list again: no second row
    lists = _rows(linked_copy, "view_list")
    assert len(lists) == 1 and lists["role"].tolist() == ["lead"]
    assert "children listed" in lists["detail"].iloc[0]
    options = at.selectbox(key="child_area").options
    assert len(options) > 1
    at.selectbox(key="child_area").select_index(1).run()
    assert len(_rows(linked_copy, "view_list")) == 2


def test_the_scenario_json_download_is_audited(linked_copy):
    at = _page("scenario", "lead")
    at.selectbox(key="scn_population").set_value(5_000).run()
    next(b for b in at.button if "Run scenario" in b.label).click().run()
    assert not at.exception, at.exception
    at.download_button(key="scn_json").click().run()
    assert not at.exception, at.exception
    assert "scenario.json" in _rows(linked_copy, "export")["subject"].tolist()


ALLOWED_DOWNLOADS = {("common.py", "export_button"), ("exports.py", None)}  # None: any function of the file


def _download_spy(monkeypatch) -> list[tuple[str, str]]:
    """Record (file, function) of whatever draws each st.download_button (the module function and the
    container method both)."""
    import streamlit as st
    from streamlit.delta_generator import DeltaGenerator

    drawn: list[tuple[str, str]] = []
    original = DeltaGenerator.download_button

    def record(frame) -> None:
        drawn.append((Path(frame.f_code.co_filename).name, frame.f_code.co_name))

    def method(self, *args, **kwargs):
        record(sys._getframe(1))
        return original(self, *args, **kwargs)

    def function(*args, **kwargs):
        record(sys._getframe(1))
        return original(st._main, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "download_button", method)
    monkeypatch.setattr(st, "download_button", function)
    return drawn


def _allowed(file: str, function: str) -> bool:
    return (file, function) in ALLOWED_DOWNLOADS or (file, None) in ALLOWED_DOWNLOADS


def test_every_download_a_page_draws_goes_through_the_audited_export_path(linked_copy, monkeypatch):
    """Every page, in every role that may open it: each download button is drawn by pages.common.export_button
    (audited, CSV only from a frame, made spreadsheet-safe) or by the board pack (pages/exports.py, which audits
    as each file is made); none by a page itself."""
    from lib.access.roles import ROLES, may_open
    from pages.common import APP_PAGES

    drawn = _download_spy(monkeypatch)
    for page in APP_PAGES:
        for role in ROLES:
            if may_open(role, page.url_path):
                _page(Path(page.script).stem, role)
    assert drawn, "no page drew a download button"
    assert all(_allowed(*where) for where in drawn), sorted(set(drawn))


def test_the_download_spy_sees_a_page_s_own_download_button(monkeypatch):
    from streamlit.testing.v1 import AppTest

    drawn = _download_spy(monkeypatch)
    at = AppTest.from_string("import streamlit as st\nst.download_button('CSV', b'a,b', 'x.csv')\n").run()
    assert not at.exception, at.exception
    assert len(drawn) == 1 and not _allowed(*drawn[0]), drawn


def test_export_button_refuses_a_csv_that_is_not_a_frame():
    from pages import common

    with pytest.raises(TypeError, match="spreadsheet-safe"):
        common.export_button("x", b"a,b\n=1,2\n", "x.csv", "text/csv", key="x")


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "lib.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env=env)


def test_command_line_jobs_are_audited(tmp_path):
    import os

    env = {**os.environ, "JOINEDUP_KEY": "a-test-key-for-the-cli-audit-0123"}
    db = str(tmp_path / "cli.duckdb")
    assert _cli("synth", "--encounters", "300", "--seed", "3", "--out", str(tmp_path), env=env).returncode == 0
    (tmp_path / "empty.csv").write_bytes(b"")
    steps = [("ingest", str(tmp_path / "encounters.parquet"), str(tmp_path / "empty.csv"), "--db", db),
             ("link", "--db", db),
             ("export-parquet", "--db", db, "--out", str(tmp_path / "pq")),
             ("divergence", "--db", db, "--layer", "pfa", "--out", str(tmp_path / "div.csv")),
             ("audit", "export", "--db", db, "--out", str(tmp_path / "audit.csv"))]
    for args in steps:
        run = _cli(*args, env=env)
        assert run.returncode in (0, 1), (args, run.stderr[-2000:])
        assert "audit_error" not in run.stdout, run.stdout
    rows = _rows(tmp_path / "cli.duckdb").iloc[::-1]
    assert set(rows["role"]) == {audit.CLI_ROLE} and all(u.startswith("cli:") for u in rows["user_name"])
    got = list(zip(rows["action"], rows["subject"].fillna("")))
    assert got[:2] == [("upload", "encounters.parquet"), ("upload_refused", "empty.csv")]
    assert [a for a, _ in got[2:]] == ["link_run", "export", "export", "export"]
    assert got[3][1].startswith("parquet:") and got[4][1] == "pfa" and got[5][1] == "audit trail"
    assert "audit trail" in (tmp_path / "audit.csv").read_text()  # the export's own row is in it
    run = _cli("audit", "verify", "--db", db, env=env)
    assert json.loads(run.stdout)["ok"] is True


def test_account_changes_on_the_command_line_are_audited_by_user_name_never_the_password(tmp_path, monkeypatch,
                                                                                         capsys):
    import io

    from lib import cli

    db, accounts_file = tmp_path / "acc.duckdb", tmp_path / "accounts.json"
    monkeypatch.setenv("JOINEDUP_DB", str(db))
    password = "correct horse battery staple 42"
    for argv in (["accounts", "add", "clerk", "--role", "analyst"], ["accounts", "add", "clerk", "--role", "lead",
                                                                     "--replace"]):
        monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
        assert cli.main([*argv, "--file", str(accounts_file)]) == 0
    assert cli.main(["accounts", "remove", "clerk", "--file", str(accounts_file)]) == 0
    capsys.readouterr()
    rows = _rows(db, "account_change").sort_values("seq")
    assert rows["subject"].tolist() == ["clerk"] * 3
    assert [d.split(" (")[0] for d in rows["detail"]] == ["command line: added, role analyst",
                                                          "command line: replaced: password and role set, role lead",
                                                          "command line: removed"]
    everything = audit.read(audit.AuditLog.for_store(db)).to_string()
    assert password not in everything and "$argon2" not in everything


def test_scenario_out_is_audited_as_an_export_before_the_file_is_written(tmp_path, monkeypatch, capsys):
    from lib import cli
    from lib.records import store

    db = tmp_path / "scen.duckdb"
    store.connect(db).close()
    out = tmp_path / "scenario.json"
    code = cli.main(["scenario", "--db", str(db), "--encounters", "2000", "--seed", "3", "--curve", "",
                     "--capture", "all=1.0", "--out", str(out)])
    capsys.readouterr()
    assert code == 0 and out.exists()
    rows = _rows(db, "export")
    assert len(rows) == 1 and rows["subject"].iloc[0].startswith("scenario")
    assert "scenario.json" in rows["detail"].iloc[0]


def test_the_dataframe_toolbar_download_is_turned_off_by_streamlit_s_own_option():
    """Issue 14, item 7: st.dataframe's toolbar "Download as CSV" bypassed the audit and the CSV safety.
    Streamlit's supported option client.disableDataExport hides it (and clipboard copy) on every table."""
    import tomllib

    from streamlit import config

    assert "client.disableDataExport" in config.get_config_options()  # an option this Streamlit knows
    settings = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert settings["client"]["disableDataExport"] is True
