"""Shared page plumbing (not a page): the store connection, the first-start default dataset, and who is
signed in with which role (sign-in gate, session timeout, demo mode, page guard, audit helper).

The store (lib.records.versions): the app only ever reads, from the current version file opened READ-ONLY,
so command-line writers (ingest, link, import-linkage) are never blocked by it. One read-only connection per
version per server process (st.cache_resource); lib functions take a cursor per query. Each rerun is pinned
to one version (``begin_rerun``, called first thing by app.py): every query of that rerun reads the same
version, so a page never mixes two. A new version is noticed at the start of the next rerun (one readlink)
and, between reruns, by a small fragment polling every ``POLL_SECONDS`` (``version_watch``); the session then
reruns on the new version and is told "Data updated at HH:MM (what changed)" once. Writes from the app (the
first-start dataset, an upload, a linkage run, a review decision) go through ``versions.write`` like any
command-line writer; a review decision made while another writer holds the lock is queued and applied when
the lock frees.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import runpy
import secrets as _secrets
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import duckdb
import streamlit as st
from streamlit.logger import get_logger
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from lib.access import accounts, auth, sessions
from lib.access import audit as audit_log
from lib.access.roles import LEAD, ROLE_LABELS, ROLES, may_open
from lib.access.safety import escape_markdown
from lib.measures import convert, spans
from lib.records import store, versions
from lib.records.pseudonymise import use_host_key
from lib.views import base as view_base

POLL_ENV = "JOINEDUP_POLL_SECONDS"
#: How often an open page checks for a new version of the store (one readlink); 0: only when it reruns.
POLL_SECONDS = float(os.environ.get(POLL_ENV) or 5)
_PIN = "_store_pin"  # session_state: (store path, version number, version file) this rerun reads


@st.cache_resource(show_spinner=False, max_entries=8)
def _version_connection(file: str, number: int):
    """A read-only connection to one immutable version file (shared by every session reading it)."""
    return duckdb.connect(file, read_only=True)


def db_path() -> str:
    return str(store.resolve_path())


def _create_empty(path: str) -> None:
    """A store named by $JOINEDUP_DB that does not exist yet: an empty one (schema only), as before."""
    try:
        with versions.write(path, "create empty store", wait=5):
            pass
    except versions.StoreLocked:
        pass  # another writer is creating it


def _pin(path: str) -> tuple[str, int, str]:
    version = versions.current(path)
    if version is None:
        _create_empty(path)
        version = versions.current(path)
        if version is None:
            holder = versions.is_locked(path)
            st.info("The record store is being created"
                    + (f" by `{holder.get('command')}` since {holder.get('started')}" if holder else "")
                    + "; this page will load when it is ready.", icon=":material/hourglass_top:")
            version_watch()
            st.stop()
    pin = (path, version.number, str(version.file))
    previous = st.session_state.get(_PIN)
    if previous and previous[0] == path and previous[1] != pin[1]:
        st.session_state["_data_updated"] = pin[1]  # said once, on this rerun (notice_update)
    st.session_state[_PIN] = pin
    return pin


def after_write() -> None:
    """This session wrote a new version (upload, linkage, decision): read it from here on, without the notice."""
    _pin(db_path())
    st.session_state.pop("_data_updated", None)


def begin_rerun() -> None:
    """Pin this rerun to the store's current version (app.py calls it first on every rerun)."""
    _pin(db_path())


def connection(path: str):
    """The read-only connection to the version this rerun reads (pinned at its start)."""
    pin = st.session_state.get(_PIN)
    if not pin or pin[0] != str(path):
        pin = _pin(str(path))
    for _ in range(3):
        try:
            return _version_connection(pin[2], pin[1])
        except Exception:
            if os.path.exists(pin[2]):
                raise
            pin = _pin(str(path))  # collected between readlink and open (a long-idle session): re-read the link
    return _version_connection(pin[2], pin[1])


def store_connection():
    return connection(db_path())


def pinned_version() -> int | None:
    """The store version this rerun reads (pages key their caches on it beside the data version)."""
    pin = st.session_state.get(_PIN)
    return pin[1] if pin else None


def data_status() -> None:
    """Sidebar: which version this page shows, how much it holds, and whether a writer is at work."""
    pin = st.session_state.get(_PIN)
    if not pin:
        return
    con = store_connection()
    last = versions.history(con, 1)
    written = f", {last[0]['written_at']:%d %b %H:%M} UTC, {last[0]['command']}" if last else ""
    try:
        encounters = store.counts(con)["encounters"]
    except Exception:  # noqa: BLE001 - a store without tables yet
        encounters = 0
    st.caption(f"Data version {pin[1]}{written}: {encounters:,} encounters",
               help="Every page of one view reads one version of the store; a new version is picked up "
                    f"within {POLL_SECONDS} seconds of its publication.")
    holder = versions.is_locked(pin[0])
    if holder:
        st.caption(f":material/sync: A data load is running (`{holder.get('command', 'a writer')}` since "
                   f"{holder.get('started', '?')}): you see the data as it was before it, until it finishes.")


def notice_update() -> None:
    """Say once, on the rerun that switched, that the data changed (and what changed)."""
    number = st.session_state.pop("_data_updated", None)
    if number is None:
        return
    last = versions.history(store_connection(), 1)
    what = f" ({last[0]['change'] or last[0]['command']})" if last else ""
    when = f"{last[0]['written_at']:%H:%M} UTC" if last else "just now"
    st.toast(f"Data updated at {when}{what}.", icon=":material/update:")
    st.info(f"Data updated at {when}{what}. This page now shows version {number}.", icon=":material/update:")


def _apply_queued_decisions(path: str) -> None:
    if not versions.pending(path) or versions.is_locked(path):
        return
    try:
        with versions.write(path, "queued review decisions"):
            pass  # the writer applies the queue itself, before the caller's work
    except versions.StoreLocked:
        pass  # another writer took it first: it applies the queue


def version_watch() -> None:
    """The watch below, unless polling is off (JOINEDUP_POLL_SECONDS=0)."""
    if POLL_SECONDS > 0:
        _version_watch()


@st.fragment(run_every=POLL_SECONDS if POLL_SECONDS > 0 else None)
def _version_watch() -> None:
    """Between reruns: rerun the whole page when a new version is published; apply queued decisions when the
    store is free. Costs one readlink (and a stat of the queue) every few seconds per open page."""
    path = db_path()
    _apply_queued_decisions(path)
    version = versions.current(path)
    # Read after the version, right before the rerun: reading session state is a yield point, where a click
    # already made (another page's link) takes over. st.rerun would otherwise fold this page's rerun over it
    # (the newer request's page wins) and lose the click (stop 42; tests/test_browser_clicks.py).
    pin = st.session_state.get(_PIN)
    if version is not None and pin and pin[0] == path and version.number != pin[1]:
        st.rerun(scope="app")


def secret_key():
    """The pseudonymisation key from Streamlit secrets, if configured (else env var or key file)."""
    try:
        return st.secrets.get("JOINEDUP_KEY")
    except Exception:  # noqa: BLE001 - no secrets file is the normal standalone case
        return None


def progress_callback(bar):
    """Adapt st.progress to lib's progress(fraction, message) callbacks."""
    def update(fraction: float, message: str) -> None:
        bar.progress(min(max(float(fraction), 0.0), 1.0), text=message)
    return update


@st.cache_resource(show_spinner=False)
def _first_start_lock() -> threading.Lock:
    return threading.Lock()


def ensure_default_data() -> None:
    """At first start on the default store (no $JOINEDUP_DB), build the synthetic national dataset and
    link it, showing progress, as the store's next version; afterwards a cheap check once per session. One
    session does the work: others arriving meanwhile wait, then find it done."""
    use_host_key(secret_key())  # the writes this process makes store the Scenario's simulation under it
    if st.session_state.get("_default_data_checked") or store.DB_ENV in os.environ:
        return

    def ready() -> bool:
        opened = versions.open_current(db_path())
        if opened is None:
            return False
        con = opened[0]
        try:
            return store.counts(con)["encounters"] > 0 and spans.has_linkage(con)
        except Exception:  # noqa: BLE001 - a version without tables
            return False
        finally:
            con.close()

    with _first_start_lock():
        if not ready():
            # Loaded only for a first start: Splink and the generator take seconds to import (no cycle here).
            from lib.linkage import run
            from lib.records.default import ensure_default_dataset

            path = db_path()
            bar = st.progress(0.0, text="First start: building the synthetic national dataset…")
            summary = None
            with versions.write(path, "first-start default dataset", wait=2) as w:
                ensure_default_dataset(w.con, progress_callback(bar), key=secret_key(), db_path=path)
                if not spans.has_linkage(w.con):
                    bar.progress(0.0, text="First start: linking records into children…")
                    summary = run.link(w.con, run.LinkConfig(), progress=progress_callback(bar))
                w.change = "first start: synthetic national dataset, linked"
            bar.empty()
            after_write()  # the audit trail below opens beside the version just published
            if summary is not None:  # audited once the version is published (the trail opens beside it)
                audit_log.record(audit_trail(), user="system", role="(first start)", action="link_run",
                                 detail=f"first start: run {summary.get('run_id')}: {summary['records']} "
                                        f"records into {summary['children']} children")
        # This rerun reads the version just built (here, or by the session this one waited for) from here on:
        # the first start is not an update, so no "Data updated" notice (issue 18).
        after_write()
    st.session_state["_default_data_checked"] = True


def stored_data_version(con) -> str:
    """The store's data version; stops the page with a clear message when nothing is stored yet."""
    version = store.data_version(con)
    if version.startswith("0:"):
        st.info("No encounter records are stored yet. Load extracts on the Data page, or "
                "`python -m lib.cli ingest FILE --db PATH`.", icon=":material/info:")
        st.stop()
    return version


# -- who is signed in, with which role (issue 7) --------------------------------------------------------
# Modes (lib.access.auth): OpenID Connect when secrets hold [auth]; local accounts when the accounts file
# holds a user; otherwise a demo on synthetic data only, with a "view as" role. lib.access.roles decides
# what each role may open; app.py builds the navigation from it and every page also checks it itself.

DEMO_ROLE_ENV = "JOINEDUP_DEMO_ROLE"  # the demo's initial "view as" role (default: safeguarding lead)


def _secret_section(name: str) -> dict:
    try:
        if name in st.secrets:
            return auth._plain(st.secrets[name])
    except Exception:  # noqa: BLE001 - no secrets file: the standalone case
        pass
    return {}


def auth_settings() -> dict:
    """The [joinedup] secrets section (role claim, allow-lists, timeout, accounts file)."""
    return auth.settings({"joinedup": _secret_section("joinedup")})


def accounts_path():
    configured = auth_settings().get("accounts_file")
    return Path(configured) if configured else accounts.default_path(db_path())


def sign_in_mode() -> str:
    return auth.mode({"auth": _secret_section("auth")}, accounts.configured(accounts_path()))


def demo_state() -> tuple[bool, str]:
    """(allowed, why not): demo mode only on synthetic data (lib.access.auth.demo_allowed)."""
    default_store = store.DB_ENV not in os.environ
    files: list[str] = []
    if default_store:
        try:
            cur = store_connection().cursor()
            try:
                files = [r[0] for r in cur.execute("SELECT DISTINCT file_name FROM batches").fetchall()]
            finally:
                cur.close()
        except Exception:  # noqa: BLE001 - unreadable store: refuse the demo rather than guess
            return False, "the record store cannot be read"
    return auth.demo_allowed(files, default_store=default_store)


def _oidc_user() -> dict:
    try:
        return st.user.to_dict() if st.user.is_logged_in else {}
    except Exception:  # noqa: BLE001 - st.user unavailable outside a session
        return {}


def current_role() -> str | None:
    """The role of this session (None: not signed in, or no access)."""
    mode = sign_in_mode()
    if mode == auth.DEMO:
        if not demo_state()[0]:
            return None
        role = st.session_state.get("demo_role") or os.environ.get(DEMO_ROLE_ENV) or LEAD
        return role if role in ROLES else LEAD
    if mode == auth.LOCAL:
        signed = st.session_state.get("_auth")
        return signed["role"] if signed and signed.get("role") in ROLES else None
    user = _oidc_user()
    return auth.oidc_role(user, auth_settings()) if user else None


def current_user() -> str | None:
    mode = sign_in_mode()
    if mode == auth.DEMO:
        return auth.DEMO_USER if demo_state()[0] else None
    if mode == auth.LOCAL:
        signed = st.session_state.get("_auth")
        return signed["username"] if signed else None
    user = _oidc_user()
    return auth.oidc_user_name(user) if user else None


def is_demo() -> bool:
    return sign_in_mode() == auth.DEMO


def uploads_allowed() -> tuple[bool, str]:
    """Real extracts are loaded only after sign-in; a store declared synthetic may take test uploads."""
    if not is_demo():
        return True, ""
    if os.environ.get(auth.SYNTHETIC_ENV) == "1":
        return True, ("Demo mode on a store declared synthetic (JOINEDUP_SYNTHETIC_STORE=1): upload synthetic "
                      "test files only.")
    return False, ("This is the synthetic demo: loading real data requires sign-in. Configure local accounts "
                   "(`python -m lib.cli accounts add`) or OpenID Connect, then sign in as an analyst.")


def audit_key():
    """The audit key from Streamlit secrets, if configured (else $JOINEDUP_AUDIT_KEY or the key file)."""
    try:
        return st.secrets.get(audit_log.KEY_ENV)
    except Exception:  # noqa: BLE001 - no secrets file is the normal standalone case
        return None


def audit_trail() -> audit_log.AuditLog:
    """The audit trail beside the store (its own SQLite file: lib.access.audit)."""
    path = db_path()
    return audit_log.AuditLog.for_store(path, con=connection(path), key=audit_key())


def audit(action: str, subject=None, detail=None) -> None:
    """Append an audit row for this session's user and role (lib.access.audit.record)."""
    audit_log.record(audit_trail(), user=current_user() or "(not signed in)",
                     role=current_role() or "(none)", action=action, subject=subject, detail=detail)


def audit_view(action: str, subject, detail=None, *, slot: str) -> None:
    """Audit a view once per change of what is shown in ``slot`` (not on every rerun of the same view)."""
    marker = f"_audited_{slot}"
    if st.session_state.get(marker) != (action, subject, current_user()):
        audit(action, subject, detail)
        st.session_state[marker] = (action, subject, current_user())


def export_button(label: str, data, file_name: str, mime: str | None = None, *, key: str, subject=None, detail=None,
                  container=None, **kwargs):
    """The one download path of the pages: st.download_button over lib.export.downloads (the export path the
    command line shares): the payload is made there (a table is passed as a DataFrame and written as
    spreadsheet-safe CSV; a .csv passed as text or bytes is refused) and an 'export' audit row is written when
    clicked (subject: ``subject`` or the file name; detail: ``detail`` or the file name). Other formats (JSON,
    PPTX, PNG) are passed as bytes or str. ``container``: a column or other container to draw the button in."""
    from lib.export import downloads

    data, default_mime = downloads.payload(file_name, data)
    return (container or st).download_button(label, data, file_name=file_name, mime=mime or default_mime, key=key,
                                             on_click=_record_export, args=(subject or file_name, detail or file_name),
                                             **kwargs)


def _record_export(subject, detail) -> None:
    from lib.export import downloads

    downloads.record(audit_trail(), user=current_user() or "(not signed in)", role=current_role() or "(none)",
                     subject=subject, detail=detail)


# -- the app's pages: app.py's navigation is built from this table (lib.access.roles decides who opens which) ------

@dataclass(frozen=True)
class AppPage:
    script: str
    title: str
    icon: str
    url_path: str
    default: bool = False


APP_PAGES = (
    AppPage("pages/map.py", "Boundaries", ":material/map:", "boundaries", default=True),
    AppPage("pages/across.py", "Across boundaries", ":material/conversion_path:", "across"),
    AppPage("pages/divergence.py", "Where counts diverge", ":material/compare_arrows:", "divergence"),
    AppPage("pages/compare.py", "Compare areas", ":material/balance:", "compare"),
    AppPage("pages/profile.py", "Area profile", ":material/monitoring:", "profile"),
    AppPage("pages/scenario.py", "NHS number scenarios", ":material/tune:", "scenario"),
    AppPage("pages/review.py", "Review links", ":material/rule:", "review"),
    AppPage("pages/data.py", "Data", ":material/database:", "data"),
    AppPage("pages/audit.py", "Audit trail", ":material/history:", "audit"),
    AppPage("pages/about.py", "About and methods", ":material/info:", "about"),
)


# -- every request goes through app.py ---------------------------------------------------------------------
# Streamlit keeps its old pages/ folder mode on until some session has called st.navigation ("As soon as any
# session of your app executes the st.navigation command, your app will ignore the pages/ directory (across
# all sessions)", st.navigation's documentation). So on a fresh server the first request for a page's own URL
# (e.g. /review) runs that script of pages/ by itself: no sign-in, demo banner or per-role navigation. Page
# scripts therefore do not run on their own under app.py: ``require_page`` sees that app.py is the entry point
# but is not the one running the page, and hands the request to app.py (sign-in, navigation, then this page,
# same URL); app.py's st.navigation also ends folder mode for the whole server. A page served as its own
# entry point (AppTest.from_file, `streamlit run pages/x.py`) runs as before.

APP = Path(__file__).resolve().parents[1] / "app.py"
_IN_APP: contextvars.ContextVar[bool] = contextvars.ContextVar("joinedup_in_app", default=False)


@contextlib.contextmanager
def app_frame():
    """app.py runs the chosen page inside this (so the page knows app.py is around it)."""
    token = _IN_APP.set(True)
    try:
        yield
    finally:
        _IN_APP.reset(token)


def _entry_point() -> Path | None:
    """The script passed to `streamlit run` (Streamlit installs it as ``__main__`` for every run)."""
    main = sys.modules.get("__main__")
    file = getattr(main, "__file__", None)
    return Path(file).resolve() if file else None


def _run_through_app() -> None:
    """Run app.py for this request when Streamlit's folder mode started this page script on its own."""
    if _IN_APP.get() or _entry_point() != APP:
        return
    runpy.run_path(str(APP))  # sign-in, navigation (folder mode off), then the requested page, in app_frame
    st.stop()


def require_page(url_path: str) -> str:
    """Stop the page unless this session's role may open it; returns the role."""
    _run_through_app()
    role = current_role()
    if role is None:
        st.warning("Sign in to see this page.", icon=":material/lock:")
        st.stop()
    if not may_open(role, url_path):
        st.error(f"The {ROLE_LABELS[role].lower()} role cannot open this page.", icon=":material/block:")
        st.stop()
    return role


@st.cache_resource(show_spinner=False)
def _throttle() -> accounts.Throttle:
    return accounts.Throttle()


def _session_id() -> str:
    return st.session_state.setdefault("_session_id", _secrets.token_hex(16))


def _signed_in(mode: str) -> bool:
    if mode == auth.LOCAL:
        return "_auth" in st.session_state
    if mode == auth.OIDC:
        return bool(_oidc_user())
    return False


# A session that disappears (tab closed): lib.access.sessions. Streamlit 1.67 has no public "session ended"
# callback; the server can only see that a session's browser connection is gone (Runtime.is_active_session).
SESSION_GRACE_ENV = "JOINEDUP_SESSION_GRACE_SECONDS"  # how long a lost connection may come back (default 120)


def _runtime_session_id() -> str | None:
    """This session's id in the Streamlit server (None where there is no server, e.g. AppTest)."""
    if not Runtime.exists():
        return None
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx else None


def _is_active(session_id: str) -> bool:
    return Runtime.instance().is_active_session(session_id)


@st.cache_resource(show_spinner=False)
def _session_registry() -> sessions.SessionRegistry:
    """One registry and one sweeper thread per server process."""
    try:
        grace = float(os.environ.get(SESSION_GRACE_ENV) or sessions.GRACE_SECONDS)
    except ValueError:
        grace = sessions.GRACE_SECONDS
    registry = sessions.SessionRegistry(grace)
    registry.sweeper = sessions.Sweeper(registry, _is_active, interval=min(sessions.SWEEP_SECONDS, max(grace, 1.0)))
    return registry


def _track_session(mode: str) -> None:
    """Register this signed-in session, and sign out any whose browser connection has gone."""
    session_id = _runtime_session_id()
    if session_id is None:
        return
    registry = _session_registry()
    if mode != auth.DEMO and _signed_in(mode):

        registry.seen(session_id, user=current_user() or "(unknown)", role=current_role() or "(none)",
                      record=partial(audit_log.record, audit_trail()))
    registry.sweep(_is_active)


def _sign_out(reason: str = "signed out") -> None:
    mode = sign_in_mode()
    session_id = _runtime_session_id()
    if session_id is not None:
        _session_registry().forget(session_id)
    with contextlib.suppress(Exception):  # never keep a session open because the audit store is busy
        audit("sign_out", detail=reason)
    for name in ("_auth", "_last_seen"):
        st.session_state.pop(name, None)
    if mode == auth.OIDC:
        st.logout()


def check_session_timeout() -> None:
    """Sign the session out after the idle timeout (README: 30 minutes unless configured); record sessions
    that ended without signing out (lib.access.sessions)."""
    mode = sign_in_mode()
    if mode == auth.DEMO or not _signed_in(mode):
        _track_session(mode)
        return
    now = time.time()
    last = st.session_state.get("_last_seen")
    if last is not None and now - last > auth.timeout_seconds(auth_settings()):
        st.session_state["_timed_out"] = True
        _sign_out("idle timeout")
        _track_session(mode)
        return
    st.session_state["_last_seen"] = now
    _track_session(mode)


def sign_in_page() -> None:
    """The only page a session that is not signed in can open."""
    st.title("Joined Up")
    mode = sign_in_mode()
    if mode == auth.DEMO:
        allowed, why = demo_state()
        if not allowed:
            st.error(f"Sign-in is required but not configured: {why}.", icon=":material/lock:")
        return
    if st.session_state.pop("_timed_out", False):
        st.info("You were signed out after a period of inactivity.", icon=":material/timer_off:")
    if mode == auth.OIDC:
        user = _oidc_user()
        if user:  # signed in at the identity provider, but no role here
            st.error("Your account has no role in Joined Up. Ask your administrator to add you.",
                     icon=":material/block:")
            st.button("Sign out", key="signout_norole", on_click=st.logout)
            return
        st.markdown("Sign in with your organisation's account.")
        provider = auth_settings().get("oidc_provider")
        st.button("Sign in", key="signin_oidc", type="primary",
                  on_click=(lambda: st.login(provider)) if provider else st.login)
        return
    st.markdown("Sign in with your Joined Up account.")
    with st.form("signin_form"):
        username = st.text_input("User name", key="signin_user", max_chars=64)
        password = st.text_input("Password", type="password", key="signin_password", max_chars=256)
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        account = accounts.authenticate(accounts_path(), username, password, _throttle(), _session_id())
        if account is None:
            shown = accounts.audit_name(accounts_path(), username)  # never a typed password in clear
            with contextlib.suppress(Exception):  # a busy audit store never hides the failure message
                audit_log.record(audit_trail(), user=shown, role="(none)", action="sign_in_failed")
            st.error(accounts.FAILED_MESSAGE, icon=":material/lock:")
            return
        st.session_state["_auth"] = {"username": account.username, "role": account.role}
        st.session_state["_last_seen"] = time.time()
        audit("sign_in", detail="local account")
        st.rerun()


def account_sidebar(role: str | None) -> None:
    """Sidebar: the demo's "view as" role, or who is signed in with a sign-out button."""
    mode = sign_in_mode()
    with st.sidebar:
        if mode == auth.DEMO:
            if role is None:
                return
            if st.session_state.get("demo_role") not in ROLES:
                st.session_state["demo_role"] = os.environ.get(DEMO_ROLE_ENV) if \
                    os.environ.get(DEMO_ROLE_ENV) in ROLES else LEAD
            st.selectbox("View as (synthetic demo)", list(ROLES), format_func=ROLE_LABELS.get, key="demo_role",
                         help="No sign-in is configured, so this demo on synthetic data lets you see what each "
                              "role sees. With real data every user signs in and has one role.")
        elif role is not None:
            st.caption(f"Signed in as **{escape_markdown(current_user())}** ({ROLE_LABELS[role]})")
            st.button("Sign out", key="signout", on_click=_sign_out)


def demo_banner() -> None:
    if is_demo() and demo_state()[0]:
        st.warning("**Synthetic demo data.** No sign-in is configured: every record here is generated, none is "
                   "about a real child. Loading real data requires sign-in.", icon=":material/science:")


# -- the area chosen once, kept across pages and in the address (?area=) ------------------------------------
# One area code, chosen on any page (Compare, Divergence, Boundaries, Across boundaries, Area profile), is kept
# in this session (st.session_state, a key no widget owns, so it survives navigation) and in the URL, so a
# shared link opens every page on it. A page uses it only where it is an area of the page's layer (a code of
# another geography leaves that page on its own default). The URL wins on the first run of a session.

AREA_PARAM = "area"
AREA_STATE = "_joinedup_area"


def shared_area(allowed=None) -> str | None:
    """The area chosen once (this session's, or the address's ?area= on a session's first page), if it is one
    of ``allowed`` (the page's layer's codes; None: any code); None otherwise. The address gets it back (a
    page change clears the address's parameters)."""
    if AREA_STATE not in st.session_state:
        st.session_state[AREA_STATE] = st.query_params.get(AREA_PARAM) or None
    code = st.session_state[AREA_STATE]
    if code is not None and st.query_params.get(AREA_PARAM) is None:
        st.query_params[AREA_PARAM] = code
    return code if code is not None and (allowed is None or code in set(allowed)) else None


def remember_area(code: str | None) -> None:
    """Keep the area the user chose on this page for every page, and put it in the address."""
    if not code:
        return
    st.session_state[AREA_STATE] = code
    if st.query_params.get(AREA_PARAM) != code:
        st.query_params[AREA_PARAM] = code


def area_changed(state_key: str) -> None:
    """on_change of an area widget (a code, or a list whose first item is the area): keep the user's choice."""
    value = st.session_state.get(state_key)
    remember_area(value[0] if isinstance(value, (list, tuple)) and value else
                  value if isinstance(value, str) else None)


def seed_area(state_key: str, allowed, *, first_of: list | None = None) -> None:
    """Before a page's area widget ``state_key`` is drawn: start it on the area chosen once, when that is one
    of ``allowed`` and differs from the widget's value (a default only: the user can change it, which
    ``area_changed`` keeps). ``first_of``: the widget holds a list (a multiselect) whose first item is the
    area; the rest (default ``first_of``) follow it."""
    code = shared_area(allowed)
    if code is None:
        return
    if first_of is None:
        if st.session_state.get(state_key) != code:
            st.session_state[state_key] = code
        return
    current = list(st.session_state.get(state_key) or first_of)
    if not current or current[0] != code:
        st.session_state[state_key] = [code, *[c for c in current if c != code]][:len(current) or 1]


# -- rendering a view's PageData (lib.views): pages only render what the builder returns --------------------

def column_config(table) -> dict:
    """st.column_config from a lib.views Table's JSON-safe column hints ({"col": {"label", "format"}})."""
    config = {}
    for column, hint in (table.columns or {}).items():
        if hint.get("format"):
            config[column] = st.column_config.NumberColumn(hint.get("label", column), format=hint["format"])
        else:
            config[column] = hint.get("label", column)
    return config


@st.cache_resource(show_spinner=False, max_entries=8)
def _view_memo(page: str, path: str, version: str) -> view_base.Memo:
    """A page's view-builder intermediate results for one data version, shared by reruns and sessions."""
    return view_base.Memo()


def measure_view_source(page: str, measure_cube) -> view_base.Source:
    """What a measure page's view builder reads: this rerun's store connection, the stored measure cube
    (``measure_cube(path, version)``, which the caller caches) and the page's own memo for this data version."""
    path = db_path()
    con = connection(path)
    version = stored_data_version(con)
    return view_base.Source(con, path, cube=measure_cube(path, version), memo=_view_memo(page, path, version))


def measure_layer_select(container, key: str, default: str = "utla") -> str:
    """The "Layer" selector of a measure page (the registry's measure layers), keeping its choice in ``key``."""
    st.session_state.setdefault(key, default)
    return container.selectbox("Layer", list(convert.MEASURE_LAYERS), format_func=convert.MEASURE_LAYERS.get,
                               key=key)


def show_table(page_data, name: str, **kwargs):
    """st.dataframe of one view table (key: its name); tests/view_parity.py compares it with the CLI twin's."""
    table = page_data.table(name)
    kwargs.setdefault("hide_index", True)
    kwargs.setdefault("width", "stretch")
    return st.dataframe(table.frame, key=name, column_config=column_config(table) or None, **kwargs)


def show_error(exc: BaseException, where: str) -> str:
    """A page failed: log it on the server with a short reference and show the user that reference, never a
    traceback or a server path (.streamlit/config.toml turns Streamlit's own details off too). Returns it."""
    reference = uuid.uuid4().hex[:8].upper()
    get_logger("joinedup.pages").error("error %s on page %r", reference, where, exc_info=exc)
    st.error(f"Something went wrong while drawing this page (reference **{reference}**). Nothing you stored "
             "was changed. Try again; if it happens again, give the reference to whoever runs Joined Up: the "
             "server log has the details under it.", icon=":material/error:")
    return reference


if __name__ == "__main__":  # Streamlit's folder mode serving this module itself as a page (/common)
    _run_through_app()
