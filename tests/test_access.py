"""Issue 7, library level: local accounts (real argon2), lock-out, the audit chain, OIDC roles, demo rules."""
from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lib.access import accounts, audit, auth
from lib.access.safety import csv_safe_frame, redact, safe_filename
from lib.access.views import aggregate_view, count_text, visible_rows
from tests.conftest import ROOT

PASSWORD = "correct horse battery staple"


class Clock:
    """A settable clock for the throttle (real time would make lock-out tests slow)."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture()
def accounts_file(tmp_path) -> Path:
    path = tmp_path / "accounts.json"
    accounts.add_user(path, "lead1", PASSWORD, "lead")
    accounts.add_user(path, "analyst1", PASSWORD + "!", "analyst")
    return path


# -- accounts -----------------------------------------------------------------------------------------

def test_accounts_file_holds_argon2id_hashes_only_and_is_private(accounts_file):
    text = accounts_file.read_text()
    assert PASSWORD not in text
    users = json.loads(text)["users"]
    assert users["lead1"]["hash"].startswith("$argon2id$") and users["lead1"]["role"] == "lead"
    assert users["lead1"]["hash"] != users["analyst1"]["hash"]
    salt_a = users["lead1"]["hash"].split("$")[4]
    accounts.add_user(accounts_file, "lead2", PASSWORD, "lead")
    assert json.loads(accounts_file.read_text())["users"]["lead2"]["hash"].split("$")[4] != salt_a  # salted
    assert stat.S_IMODE(os.stat(accounts_file).st_mode) == 0o600


def test_sign_in_success_and_one_answer_for_every_failure(accounts_file):
    throttle = accounts.Throttle(clock=Clock())
    ok = accounts.authenticate(accounts_file, "lead1", PASSWORD, throttle, "s1")
    assert ok == accounts.Account("lead1", "lead")
    assert accounts.authenticate(accounts_file, "lead1", "wrong password!!", throttle, "s1") is None
    assert accounts.authenticate(accounts_file, "nobody", PASSWORD, throttle, "s1") is None
    assert accounts.authenticate(accounts_file, "", "", throttle, "s1") is None
    assert accounts.authenticate(accounts_file, "lead1", PASSWORD, throttle, "s1") is not None


def test_lock_out_after_repeated_failures_then_released(accounts_file):
    clock = Clock()
    throttle = accounts.Throttle(max_failures=5, window=900, lockout=900, clock=clock)
    for _ in range(5):
        assert accounts.authenticate(accounts_file, "lead1", "not the password", throttle, "attacker") is None
    # Locked: even the right password is refused, from any session, with the same answer.
    assert accounts.authenticate(accounts_file, "lead1", PASSWORD, throttle, "another-session") is None
    assert throttle.locked("lead1")
    # Another user is not locked, but the attacking session is.
    assert accounts.authenticate(accounts_file, "analyst1", PASSWORD + "!", throttle, "fresh") is not None
    assert accounts.authenticate(accounts_file, "analyst1", PASSWORD + "!", throttle, "attacker") is None
    clock.now += 901
    assert accounts.authenticate(accounts_file, "lead1", PASSWORD, throttle, "another-session") is not None


def test_failures_outside_the_window_do_not_add_up(accounts_file):
    clock = Clock()
    throttle = accounts.Throttle(max_failures=3, window=60, lockout=600, clock=clock)
    for _ in range(2):
        accounts.authenticate(accounts_file, "lead1", "nope nope nope", throttle)
    clock.now += 61
    accounts.authenticate(accounts_file, "lead1", "nope nope nope", throttle)
    assert accounts.authenticate(accounts_file, "lead1", PASSWORD, throttle) is not None


def test_bad_account_input_is_refused(tmp_path):
    path = tmp_path / "a.json"
    with pytest.raises(accounts.AccountError):
        accounts.add_user(path, "ok", "short", "lead")
    with pytest.raises(accounts.AccountError):
        accounts.add_user(path, "../etc", PASSWORD, "lead")
    with pytest.raises(accounts.AccountError):
        accounts.add_user(path, "x", PASSWORD, "superuser")
    accounts.add_user(path, "x", PASSWORD, "commissioner")
    with pytest.raises(accounts.AccountError):
        accounts.add_user(path, "x", PASSWORD, "lead")
    accounts.add_user(path, "x", PASSWORD, "lead", replace=True)
    assert accounts.list_users(path) == [{"username": "x", "role": "lead", "disabled": False}]
    assert accounts.remove_user(path, "x") and not accounts.configured(path)


def test_cli_reads_the_password_from_stdin_never_argv(tmp_path):
    path = tmp_path / "cli.json"
    run = subprocess.run([sys.executable, "-m", "lib.cli", "accounts", "add", "clerk", "--role", "analyst",
                          "--file", str(path)], input=PASSWORD + "\n", capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["role"] == "analyst"
    assert PASSWORD not in run.stdout + run.stderr
    assert accounts.authenticate(path, "clerk", PASSWORD, accounts.Throttle()) == accounts.Account("clerk", "analyst")
    listed = subprocess.run([sys.executable, "-m", "lib.cli", "accounts", "list", "--file", str(path)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert "$argon2" not in listed.stdout and json.loads(listed.stdout)["users"][0]["username"] == "clerk"


# -- audit ------------------------------------------------------------------------------------------

def _tamper(log, sql, params=()):
    """Change the audit file outside the application (as someone with write access to it could, dropping the
    triggers that keep it append-only first)."""
    con = sqlite3.connect(str(log.path), isolation_level=None)
    try:
        con.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        con.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        con.execute(sql, params)
    finally:
        con.close()


def test_audit_rows_chain_and_tampering_is_detected(tmp_path):
    log = audit.AuditLog.for_store(tmp_path / "a.duckdb")
    assert log.path == tmp_path / "a.duckdb.audit.sqlite"
    for i in range(4):
        audit.record(log, user="lead1", role="lead", action="view_child", subject=f"CH-{i}", detail="x")
    audit.record(log, user="a", role="analyst", action="upload", subject="f.csv")
    rows = audit.read(log)
    assert list(rows["seq"]) == [5, 4, 3, 2, 1]
    assert audit.read(log, action="upload")["subject"].tolist() == ["f.csv"]
    assert audit.read(log, text="ch-2")["subject"].tolist() == ["CH-2"]
    assert audit.verify(log) == {"ok": True, "rows": 5, "first_bad_seq": None, "problem": None}
    _tamper(log, "UPDATE audit_log SET subject = 'CH-9' WHERE seq = 3")  # tampering, outside the app
    assert audit.verify(log)["first_bad_seq"] == 3


def test_audit_deletion_is_detected_and_unknown_actions_refused(tmp_path):
    log = audit.AuditLog.for_store(tmp_path / "b.duckdb")
    for i in range(3):
        audit.record(log, user="u", role="lead", action="export", subject=str(i))
    _tamper(log, "DELETE FROM audit_log WHERE seq = 2")
    assert audit.verify(log)["ok"] is False
    with pytest.raises(ValueError):
        audit.record(log, user="u", role="lead", action="drop everything")


def test_audit_filters_are_parameters_not_sql(tmp_path):
    log = audit.AuditLog.for_store(tmp_path / "c.duckdb")
    audit.record(log, user="o'brien", role="lead", action="export", subject="x'); DROP TABLE audit_log; --")
    assert len(audit.read(log, user="o'brien")) == 1
    assert len(audit.read(log, text="'); DROP TABLE")) == 1
    assert audit.verify(log)["ok"]


def test_the_audit_trail_refuses_updates_and_deletes_from_any_code(tmp_path):
    """Append-only by the trail itself (SQLite triggers), whichever module holds a connection to it; a trail
    made before the triggers existed gets them when it is next opened."""
    log = audit.AuditLog.for_store(tmp_path / "t.duckdb")
    audit.record(log, user="u", role="lead", action="export", subject="x")
    with log.connection() as con:
        for sql in ("UPDATE audit_log SET subject = 'y' WHERE seq = 1", "DELETE FROM audit_log WHERE seq = 1",
                    "DELETE FROM audit_log"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                con.execute(sql)
    assert audit.read(log)["subject"].tolist() == ["x"] and audit.verify(log)["ok"]
    _tamper(log, "SELECT 1")  # an older trail: no triggers
    audit.AuditLog(log.path, store_path=tmp_path / "t.duckdb")  # opened again
    with log.connection() as con, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("DELETE FROM audit_log")


def test_audit_csv_export_neutralises_formulas():
    frame = pd.DataFrame({"user_name": ["=cmd|' /C calc'!A0", "ok"], "seq": [1, 2]})
    text = audit.to_csv(frame).decode()
    assert "'=cmd" in text and "\n=cmd" not in text


# -- OIDC roles and modes ------------------------------------------------------------------------------

def test_oidc_role_from_claim_or_allow_list():
    config = {"role_claim": "groups", "claim_roles": {"sg-leads": "lead", "bi-team": "analyst"},
              "allow": {"commissioner": ["Board@Example.org"]}}
    assert auth.oidc_role({"is_logged_in": True, "groups": ["sg-leads"]}, config) == "lead"
    assert auth.oidc_role({"is_logged_in": True, "groups": ["sg-leads", "bi-team"]}, config) == "analyst"
    assert auth.oidc_role({"is_logged_in": True, "email": "board@example.org", "email_verified": True},
                          config) == "commissioner"
    assert auth.oidc_role({"is_logged_in": True, "email": "board@example.org", "email_verified": False},
                          config) is None
    assert auth.oidc_role({"is_logged_in": True, "email": "stranger@example.org", "groups": ["x"]}, config) is None
    assert auth.oidc_role({"is_logged_in": False, "groups": ["sg-leads"]}, config) is None


def test_an_allow_list_needs_a_verified_email_and_a_missing_claim_is_not_verified():
    """Issue 14, item 10: a missing email_verified claim counted as verified."""
    config = {"allow": {"lead": ["lead@example.org"]}}
    base = {"is_logged_in": True, "email": "lead@example.org"}
    assert auth.oidc_role(base, config) is None  # no email_verified claim at all
    for unverified in (False, "false", None, "", "yes", 1, "False"):
        assert auth.oidc_role({**base, "email_verified": unverified}, config) is None, unverified
    for verified in (True, "true", "TRUE"):
        assert auth.oidc_role({**base, "email_verified": verified}, config) == "lead", verified
    tenant = {**config, "allow_issuer": "https://login.example.org/our-tenant/v2.0"}
    assert auth.oidc_role({**base, "email_verified": True, "iss": "https://login.example.org/other/v2.0"},
                          tenant) is None
    assert auth.oidc_role({**base, "email_verified": True, "iss": "https://login.example.org/our-tenant/v2.0/"},
                          tenant) == "lead"
    assert auth.oidc_role({**base, "email_verified": True}, tenant) is None  # no issuer claim
    claim = {"role_claim": "groups", "claim_roles": {"sg-leads": "lead"}}  # a group claim needs no e-mail
    assert auth.oidc_role({"is_logged_in": True, "groups": ["sg-leads"]}, claim) == "lead"


def test_mode_and_demo_rules():
    assert auth.mode({"auth": {"client_id": "x"}}, True) == auth.OIDC
    assert auth.mode({}, True) == auth.LOCAL
    assert auth.mode({}, False) == auth.DEMO
    env = {}
    assert auth.demo_allowed(["synthetic national dataset"], default_store=True, environ=env)[0]
    assert not auth.demo_allowed(["synthetic national dataset", "police.csv"], default_store=True, environ=env)[0]
    assert not auth.demo_allowed([], default_store=False, environ=env)[0]
    assert auth.demo_allowed(["police.csv"], default_store=False, environ={auth.SYNTHETIC_ENV: "1"})[0]
    assert auth.timeout_seconds({"session_timeout_minutes": 10}, {}) == 600
    assert auth.timeout_seconds({}, {auth.TIMEOUT_ENV: "5"}) == 300


# -- safety helpers and role views --------------------------------------------------------------------

def test_safe_filenames_and_csv_cells():
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("C:\\Users\\x\\extract.csv") == "extract.csv"
    assert safe_filename("\x00\n") == "upload"
    assert "/" not in safe_filename("a/" * 300 + "b.csv") and len(safe_filename("x" * 999 + ".csv")) <= 121
    frame = csv_safe_frame(pd.DataFrame({"a": ["=1+1", "+x", "-y", "@z", "fine", None], "n": [-1, 2, 3, 4, 5, 6]}))
    assert frame["a"].tolist()[:5] == ["'=1+1", "'+x", "'-y", "'@z", "fine"]
    assert frame["n"].tolist()[0] == -1
    assert redact("key is abc123secretXYZ", ["abc123secretXYZ"]) == "key is [redacted]"


def test_aggregate_view_hides_small_counts_only_for_aggregate_roles():
    frame = pd.DataFrame({"area": list("abcd"), "children": [3, 10, 20, 40], "multi": [2, 4, 9, 12]})
    assert aggregate_view(frame, ["children", "multi"], role="lead") is frame
    shown = aggregate_view(frame, ["children", "multi"], role="commissioner")
    for column in ("children", "multi"):
        values = shown[column].tolist()
        assert all(v == "c" or int(v) > 5 or int(v) == 0 for v in values)
        assert values.count("c") != 1  # never a single hidden cell against a column total
    assert visible_rows(frame, shown, ["children", "multi"])["area"].tolist() == ["c", "d"]
    assert count_text(4, role="analyst") == "c" and count_text(4, role="lead") == "4"
    assert count_text(0, role="analyst") == "0"


def test_allow_issuer_bars_another_issuer_by_the_claim_route_too_and_only_the_mapping_grants_a_role():
    """Review of issue 14 item 10: with allow_issuer set, a token from another tenant carrying a mapped group
    still got the role; and a claim value equal to a role name ("lead") granted it without any mapping."""
    ours, theirs = "https://login.example.org/our-tenant/v2.0", "https://login.example.org/other/v2.0"
    config = {"role_claim": "roles", "claim_roles": {"sg-leads": "lead"}, "allow_issuer": ours,
              "allow": {"analyst": ["a@example.org"]}}
    user = {"is_logged_in": True, "roles": ["sg-leads"], "email": "a@example.org", "email_verified": True}
    assert auth.oidc_role({**user, "iss": theirs}, config) is None
    assert auth.oidc_role({**user}, config) is None  # no issuer claim at all
    assert auth.oidc_role({**user, "iss": ours}, config) == "lead"
    bare = {"role_claim": "roles", "claim_roles": {"sg-leads": "lead"}}
    assert auth.oidc_role({"is_logged_in": True, "roles": ["lead"]}, bare) is None
    assert auth.oidc_role({"is_logged_in": True, "roles": "commissioner"}, bare) is None
    assert auth.oidc_role({"is_logged_in": True, "roles": ["lead"]}, {"role_claim": "roles"}) is None
