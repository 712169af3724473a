"""Issue 7 in the app (AppTest): local sign-in, failure, lock-out, time-out, sign-out; OpenID Connect roles;
the demo refused on a store that may hold real data; an audit row for every audited action."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lib.access import accounts, audit
from lib.records import store
from tests.conftest import ROOT
from tests.fixtures_linkage import copy_store, synthetic_linked_store
from tests.test_records import KEY, csv_bytes, good_rows

APP = str(ROOT / "app.py")
PASSWORD = "correct horse battery staple"


def _audit_rows(path, action=None):
    return audit.read(audit.AuditLog.for_store(path), action=action)


@pytest.fixture()
def clean_caches():
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture()
def local(tmp_path, monkeypatch, clean_caches):
    """A store and an accounts file with one user per role; no demo flag (real sign-in applies)."""
    db = tmp_path / "real.duckdb"
    store.connect(db).close()
    path = tmp_path / "accounts.json"
    for user, role in (("lead1", "lead"), ("analyst1", "analyst"), ("board1", "commissioner")):
        accounts.add_user(path, user, PASSWORD, role)
    monkeypatch.setenv("JOINEDUP_DB", str(db))
    monkeypatch.setenv("JOINEDUP_ACCOUNTS", str(path))
    monkeypatch.delenv("JOINEDUP_SYNTHETIC_STORE", raising=False)
    monkeypatch.setenv("JOINEDUP_KEY", KEY.decode())
    return db


def _app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def _sign_in(at: AppTest, user: str, password: str) -> AppTest:
    at.text_input(key="signin_user").input(user)
    at.text_input(key="signin_password").input(password)
    next(b for b in at.button if b.label == "Sign in").click()
    at.run()
    assert not at.exception, at.exception
    return at


def _can_open(at: AppTest, page: str) -> bool:
    """Whether the page is in this session's navigation (AppTest refuses to switch to any other)."""
    try:
        at.switch_page(str(ROOT / "pages" / f"{page}.py"))
    except ValueError:
        return False
    at.run()
    assert not at.exception, at.exception
    return bool(at.title) and at.title[0].value != "Joined Up" and not any(
        "cannot open this page" in e.value or "Sign in to see" in e.value for e in (*at.error, *at.warning))


def _signed_in(at: AppTest) -> bool:
    return "_auth" in at.session_state and not any(t.value == "Joined Up" for t in at.title)


def test_sign_in_required_and_succeeds(local):
    at = _app()
    assert [t.value for t in at.title] == ["Joined Up"]
    assert not at.get("plotly_chart") and not at.dataframe
    assert not _can_open(at, "across")
    at = _sign_in(_app(), "lead1", PASSWORD)
    assert _signed_in(at)
    assert any("Signed in as **lead1**" in c.value for c in at.sidebar.caption)
    assert not any("Synthetic demo data" in w.value for w in at.warning)
    assert _can_open(at, "review")
    assert at.title[0].value == "Review uncertain links"
    rows = _audit_rows(local, "sign_in")
    assert rows["user_name"].tolist() == ["lead1"] and rows["role"].tolist() == ["lead"]


def test_failed_sign_in_says_nothing_about_which_part(local):
    wrong_password = _sign_in(_app(), "lead1", "not the password")
    wrong_user = _sign_in(_app(), "nobody", PASSWORD)
    messages = [[e.value for e in at.error] for at in (wrong_password, wrong_user)]
    assert messages[0] == messages[1] == [accounts.FAILED_MESSAGE]
    assert not _signed_in(wrong_password) and not _signed_in(wrong_user)
    failed = _audit_rows(local, "sign_in_failed")
    assert sorted(failed["user_name"]) == [accounts.UNKNOWN_USER, "lead1"]  # "nobody" is not an account
    assert PASSWORD not in failed.to_string() and "not the password" not in failed.to_string()


def test_a_password_typed_into_the_user_name_box_is_not_stored(local):
    """Issue 14, item 8: a password typed as the user name reached the audit trail in clear."""
    typed = "Tr0ub4dor-and-3"  # a valid-looking user name that is really someone's password
    at = _sign_in(_app(), typed, "")
    assert not _signed_in(at)
    failed = _audit_rows(local, "sign_in_failed")
    assert failed["user_name"].tolist() == [accounts.UNKNOWN_USER]
    assert typed not in failed.to_string()
    trail = Path(str(local) + ".audit.sqlite")
    for path in (trail, Path(str(trail) + "-wal"), Path(str(trail) + ".head")):
        if path.exists():
            assert typed.encode() not in path.read_bytes(), path.name


def test_lock_out_after_five_failures(local):
    at = _app()
    for _ in range(accounts.MAX_FAILURES):
        at = _sign_in(at, "analyst1", "guess guess guess")
    fresh = _sign_in(_app(), "analyst1", PASSWORD)  # right password, new session: still locked
    assert not _signed_in(fresh)
    assert [e.value for e in fresh.error] == [accounts.FAILED_MESSAGE]
    other = _sign_in(_app(), "board1", PASSWORD)  # other users are not locked out
    assert _signed_in(other)


def test_session_times_out_and_sign_out_works(local):
    at = _sign_in(_app(), "board1", PASSWORD)
    assert _signed_in(at)
    at.session_state["_last_seen"] = time.time() - 31 * 60  # idle past the 30-minute default
    at.run()
    assert not _signed_in(at)
    assert any("signed out after a period of inactivity" in i.value for i in at.info)
    assert _audit_rows(local, "sign_out")["detail"].tolist() == ["idle timeout"]
    at = _sign_in(at, "board1", PASSWORD)
    assert _signed_in(at)
    at.button(key="signout").click().run()
    assert not _signed_in(at)
    assert [t.value for t in at.title] == ["Joined Up"]


def test_roles_from_local_accounts_shape_the_pages(local):
    at = _sign_in(_app(), "board1", PASSWORD)
    assert not _can_open(at, "review") and not _can_open(at, "data") and not _can_open(at, "audit")
    assert _can_open(at, "divergence")
    at = _sign_in(_app(), "analyst1", PASSWORD)
    assert not _can_open(at, "review")
    assert _can_open(at, "data")
    assert at.title[0].value == "Data"
    assert not at.file_uploader(key="extract").disabled  # signed-in analysts may load real extracts


def test_demo_refused_on_a_store_that_may_be_real(tmp_path, monkeypatch, clean_caches):
    monkeypatch.setenv("JOINEDUP_DB", str(tmp_path / "maybe-real.duckdb"))
    monkeypatch.delenv("JOINEDUP_SYNTHETIC_STORE", raising=False)
    at = _app()
    assert any("Sign-in is required but not configured" in e.value for e in at.error)
    assert not at.get("plotly_chart") and not at.dataframe


def test_demo_upload_of_real_data_needs_sign_in(tmp_path, monkeypatch, clean_caches):
    from lib.records import default

    monkeypatch.delenv("JOINEDUP_DB", raising=False)
    monkeypatch.delenv("JOINEDUP_SYNTHETIC_STORE", raising=False)
    monkeypatch.setattr(store, "DEFAULT_DB", tmp_path / "default.duckdb")
    con = store.connect(tmp_path / "default.duckdb")
    default.ensure_default_dataset(con, n_encounters=300, seed=2)
    con.close()
    at = AppTest.from_file(str(ROOT / "pages" / "data.py"), default_timeout=120)
    at.session_state["demo_role"] = "analyst"
    at.run()
    assert not at.exception, at.exception
    assert at.file_uploader(key="extract").disabled
    assert any("loading real data requires sign-in" in i.value for i in at.info)


# -- OpenID Connect (st.login), tested through AppTest.user and AppTest.secrets --------------------------

OIDC_SECRETS = {
    "auth": {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "test-cookie-secret",
             "client_id": "joinedup", "client_secret": "test-client-secret",
             "server_metadata_url": "https://idp.example.org/.well-known/openid-configuration"},
    "joinedup": {"role_claim": "groups", "claim_roles": {"sg-leads": "lead"},
                 "allow": {"commissioner": ["board@example.org"]}},
}


def _oidc_app(user: dict) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.secrets.update(OIDC_SECRETS)
    at.user = user
    at.run()
    assert not at.exception, at.exception
    return at


def test_oidc_signed_out_sees_only_the_sign_in_button(local):
    at = _oidc_app({"is_logged_in": False})
    assert at.button(key="signin_oidc").label == "Sign in"
    assert not at.dataframe and not at.get("plotly_chart")


def test_oidc_role_from_claim_and_allow_list(local):
    lead = _oidc_app({"is_logged_in": True, "email": "lead@example.org", "groups": ["sg-leads"]})
    assert any("Signed in as **lead@example\\.org**" in c.value for c in lead.sidebar.caption)  # escaped
    assert _can_open(lead, "review") and _can_open(lead, "audit")
    board = _oidc_app({"is_logged_in": True, "email": "board@example.org", "email_verified": True})
    assert not _can_open(board, "review") and _can_open(board, "across")
    assert not board.get("selectbox") or "child_id" not in {w.key for w in board.selectbox}
    stranger = _oidc_app({"is_logged_in": True, "email": "x@example.org", "groups": ["other"]})
    assert any("no role in Joined Up" in e.value for e in stranger.error)
    assert not stranger.get("plotly_chart")


# -- an audit row for every audited action --------------------------------------------------------------

@pytest.fixture()
def linked_copy(tmp_path_factory, tmp_path, monkeypatch, clean_caches):
    path = copy_store(synthetic_linked_store(tmp_path_factory), tmp_path)
    monkeypatch.setenv("JOINEDUP_DB", str(path))
    return path


def _page(name: str, role: str, **state) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=240)
    at.session_state["demo_role"] = role
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def test_child_view_review_view_decision_and_audit_page_are_audited(linked_copy):
    at = _page("across", "lead")
    assert at.selectbox(key="child_id").value is None  # issue 18: opening the page opens no child
    assert _audit_rows(linked_copy, "view_child").empty
    child = at.selectbox(key="child_id").options[0].split(" — ")[0]
    at.selectbox(key="child_id").set_value(child).run()  # an explicit choice: audited
    at.run()  # a rerun of the same view is not a second row
    other = [o for o in at.selectbox(key="child_id").options if o != at.selectbox(key="child_id").format_func(child)]
    assert other
    views = _audit_rows(linked_copy, "view_child")
    assert views["subject"].tolist() == [child] and views["role"].tolist() == ["lead"]

    at = _page("review", "lead")
    at.text_input(key="reviewer").set_value("Lead A").run()
    at.button(key="decide_accept").click().run()
    assert not at.exception
    opened = _audit_rows(linked_copy, "view_review")  # the decided pair, then the next one (issue 18: it moves on)
    assert len(opened) == 2 and opened["subject"].nunique() == 2
    decision = _audit_rows(linked_copy, "review_decision")
    assert decision["detail"].tolist() == ["accept (reviewer: Lead A)"]

    at = _page("audit", "lead")
    shown = at.dataframe[0].value
    assert {"view_child", "view_review", "review_decision", "view_audit"} <= set(shown["action"])
    assert any("Chain intact" in s.value for s in at.success)
    at.download_button(key="audit_csv").click().run()
    assert not at.exception
    assert _audit_rows(linked_copy, "export")["subject"].tolist() == ["audit trail"]
    at.selectbox(key="audit_action").set_value("view_child").run()
    assert set(at.dataframe[0].value["action"]) == {"view_child"}


def test_upload_refusal_store_and_linkage_are_audited(tmp_path, monkeypatch, clean_caches):
    from tests.fixtures_linkage import synthetic_store

    path = tmp_path / "unlinked.duckdb"
    con, _ = synthetic_store(path, 800, 4, link=False)
    con.close()
    monkeypatch.setenv("JOINEDUP_DB", str(path))
    from tests.fixtures_linkage import TEST_KEY

    monkeypatch.setenv("JOINEDUP_KEY", TEST_KEY.decode() if isinstance(TEST_KEY, bytes) else TEST_KEY)
    at = _page("data", "analyst")
    at.file_uploader(key="extract").set_value(("../../etc/empty.csv", b"", "text/csv")).run()
    refused = _audit_rows(path, "upload_refused")
    assert refused["subject"].tolist() == ["empty.csv"] and refused["detail"].tolist() == ["empty_file"]
    rows = good_rows(4)
    for i, row in enumerate(rows):
        row["source_record_id"] = f"AUD{i}"
    at.file_uploader(key="extract").set_value(("new.csv", csv_bytes(rows), "text/csv")).run()
    at.button(key="store").click().run()
    assert not at.exception, at.exception
    uploads = _audit_rows(path, "upload")
    assert uploads["subject"].tolist() == ["new.csv"] and uploads["role"].tolist() == ["analyst"]
    assert "4 rows stored" in uploads["detail"].iloc[0]

    at = _page("across", "analyst")
    at.button(key="link_now").click().run()
    assert not at.exception, at.exception
    runs = _audit_rows(path, "link_run")
    assert len(runs) == 1 and runs["role"].tolist() == ["analyst"]
    lead = _page("across", "lead")
    assert lead.button(key="link_now").disabled if lead.get("button") and any(
        b.key == "link_now" for b in lead.button) else True
