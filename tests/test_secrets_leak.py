"""The pseudonymisation key and the sign-in secrets never appear in logs, exceptions, pages or exports.

A canary key is used end to end: command-line ingest, link, divergence and audit export (stdout, stderr,
output files, Python logging at DEBUG), a refused ingest with the wrong key (the error text), every page
in every role (all text and every CSV download), the store file, the audit table and the accounts file.
The key is looked for as text, hex and base64.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
from streamlit.testing.v1 import AppTest

from lib.access import accounts
from lib.access.roles import ROLES, may_open
from lib.access.safety import secret_forms
from lib.records import store
from tests.conftest import ROOT
from tests.test_records import TODAY, csv_bytes, good_rows
from tests.test_roles_pages import APP_PAGES, TABLE_TABS, _download_frames, run_keeping_media

CANARY_KEY = "CANARYKEY-7f3a9c1e5b-do-not-leak-0042"
COOKIE_SECRET = "CANARYCOOKIE-91bd-do-not-leak"
CLIENT_SECRET = "CANARYCLIENT-55e0-do-not-leak"
PASSWORD = "CANARYPASSWORD-horse-battery"
FORMS = [f for s in (CANARY_KEY, COOKIE_SECRET, CLIENT_SECRET, PASSWORD) for f in secret_forms(s)]


def _leaks(text: str | bytes) -> list[str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return [f for f in FORMS if f in text]


def _cli(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lib.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=600)


@pytest.fixture(scope="module")
def canary_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("leak")
    env = {**os.environ, "JOINEDUP_KEY": CANARY_KEY, "JOINEDUP_DB": str(folder / "leak.duckdb")}
    outputs = []
    run = _cli("synth", "--encounters", "1500", "--seed", "9", "--out", str(folder), env=env)
    assert run.returncode == 0, run.stderr
    outputs.append(run)
    for args in (("ingest", str(folder / "encounters.parquet"), "--db", str(folder / "leak.duckdb")),
                 ("link", "--db", str(folder / "leak.duckdb")),
                 ("divergence", "--db", str(folder / "leak.duckdb"), "--layer", "pfa", "--out",
                  str(folder / "div.csv")),
                 ("audit", "export", "--db", str(folder / "leak.duckdb"), "--out", str(folder / "audit.csv"))):
        run = _cli(*args, env=env)
        assert run.returncode == 0, (args, run.stderr[-2000:])
        outputs.append(run)
    # A refused ingest: the store was made with the canary key; another key must fail without echoing either.
    (folder / "more.csv").write_bytes(csv_bytes(good_rows(3)))
    wrong = _cli("ingest", str(folder / "more.csv"), "--db", str(folder / "leak.duckdb"),
                 env={**env, "JOINEDUP_KEY": "another-key-entirely-0123456789"})
    outputs.append(wrong)
    return folder, outputs


def test_cli_output_files_and_errors_carry_no_secret(canary_store):
    folder, outputs = canary_store
    for run in outputs:
        assert not _leaks(run.stdout) and not _leaks(run.stderr), run.args
    assert outputs[-1].returncode != 0 or "different key" in outputs[-1].stdout + outputs[-1].stderr
    for path in folder.iterdir():
        if path.is_file() and path.suffix in (".csv", ".json", ".duckdb", ".wal", ".parquet", ".sqlite"):
            assert not _leaks(path.read_bytes()), path.name


def test_python_logging_and_exceptions_carry_no_secret(tmp_path, caplog, monkeypatch):
    from lib.records.ingest import commit, prepare
    from lib.records.pseudonymise import load_key

    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("JOINEDUP_KEY", CANARY_KEY)
    con = store.connect(tmp_path / "x.duckdb")
    commit(con, prepare(csv_bytes(good_rows(5)), "a.csv", key=load_key(tmp_path / "x.duckdb"), today=TODAY))
    messages = []
    try:
        commit(con, prepare(csv_bytes(good_rows(2)), "b.csv", key=b"a-different-key-0123456789abcdef", today=TODAY))
    except Exception as exc:  # noqa: BLE001 - the text of whatever is raised is what matters
        messages.append(repr(exc) + str(exc))
    con.close()
    assert messages, "a wrong key must be refused"
    for text in messages + [r.getMessage() for r in caplog.records]:
        assert not _leaks(text), text


def test_pages_in_every_role_and_downloads_carry_no_secret(canary_store, tmp_path, monkeypatch):
    import shutil

    import streamlit as st

    folder, _ = canary_store
    db = tmp_path / "leak.duckdb"
    shutil.copy(folder / "leak.duckdb", db)
    monkeypatch.setenv("JOINEDUP_DB", str(db))
    monkeypatch.setenv("JOINEDUP_KEY", CANARY_KEY)
    st.cache_resource.clear()
    st.cache_data.clear()
    for role in ROLES:
        for url, script in APP_PAGES.items():
            if not may_open(role, url):
                continue
            at = AppTest.from_file(str(ROOT / script), default_timeout=180)
            at.secrets["JOINEDUP_KEY"] = CANARY_KEY
            at.session_state["demo_role"] = role
            for key in TABLE_TABS:
                at.session_state[key] = "Table"
            run_keeping_media(at)
            assert not at.exception, (role, url, at.exception)
            text = "\n".join(str(getattr(e, "value", "")) for kind in ("markdown", "caption", "title", "subheader",
                                                                          "info", "warning", "error", "success",
                                                                          "metric", "text", "code")
                             for e in at.get(kind))
            text += "\n".join(f.value.to_string() for f in at.dataframe)
            text += "\n".join(c.proto.spec for c in at.get("plotly_chart"))
            assert not _leaks(text), (role, url)
            for frame in _download_frames(at):
                assert not _leaks(frame.to_csv()), (role, url)
    st.cache_resource.clear()


def test_sign_in_secrets_never_shown(tmp_path, monkeypatch):
    import streamlit as st

    path = tmp_path / "accounts.json"
    accounts.add_user(path, "lead1", PASSWORD, "lead")
    assert not _leaks(path.read_text())
    monkeypatch.setenv("JOINEDUP_ACCOUNTS", str(path))
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.secrets.update({"auth": {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": COOKIE_SECRET,
                                "client_id": "joinedup", "client_secret": CLIENT_SECRET,
                                "server_metadata_url": "https://idp.example.org/.well-known/openid-configuration"},
                       "joinedup": {"allow": {"lead": ["lead@example.org"]}}})
    at.user = {"is_logged_in": True, "email": "lead@example.org", "email_verified": True}
    at.run()
    assert not at.exception, at.exception
    everything = json.dumps([str(getattr(e, "value", "")) for kind in ("markdown", "caption", "error", "warning",
                                                                       "info", "title") for e in at.get(kind)])
    assert "lead@example" in everything  # the page did render for the signed-in user
    assert not _leaks(everything)
    assert not _leaks(json.dumps({k: str(at.session_state[k]) for k in ("_auth", "_last_seen", "demo_role")
                                  if k in at.session_state}))
