"""Joined Up: the Streamlit entry point. Thin: sign-in, navigation per role, page config, the attribution footer."""
from __future__ import annotations

import streamlit as st

from lib.access.roles import may_open
from lib.geo.build import ATTRIBUTION
from lib.records.store import StoreError
from lib.records.versions import StoreLocked
from pages.common import (
    APP_PAGES,
    account_sidebar,
    app_frame,
    begin_rerun,
    check_session_timeout,
    current_role,
    data_status,
    demo_banner,
    ensure_default_data,
    notice_update,
    show_error,
    sign_in_page,
    version_watch,
)

st.set_page_config(page_title="Joined Up", page_icon=":link:", layout="wide")

PAGES = [st.Page(page.script, title=page.title, icon=page.icon, url_path=page.url_path, default=page.default)
         for page in APP_PAGES]

# The store: this rerun reads one version of it, the current one (pages.common.begin_rerun).
begin_rerun()

# Who may open what (lib.access.roles.PAGE_ROLES): a page the role may not open is not in the navigation
# at all; each page checks again itself. Not signed in: the sign-in page only.
check_session_timeout()
ROLE = current_role()
if ROLE is None:
    navigation = st.navigation([st.Page(sign_in_page, title="Sign in", icon=":material/login:", url_path="signin",
                                        default=True)])
else:
    # The default page reports url_path "" (it is served at /): it is the Boundaries page, open to every role.
    navigation = st.navigation([page for page in PAGES if may_open(ROLE, page.url_path or "boundaries")])
    try:
        ensure_default_data()
    except StoreLocked as exc:  # a command-line writer is building the first version: wait for it
        st.info(f"The record store is being written right now ({exc.holder.get('command', 'another writer')} "
                f"since {exc.holder.get('started', '?')}); this page updates by itself when it finishes.",
                icon=":material/hourglass_top:")
    except StoreError as exc:
        st.warning(f"The record store is not available right now: {exc}")
account_sidebar(ROLE)
demo_banner()
with st.sidebar:
    st.caption("Joined Up: where children's safeguarding data falls between agencies.")
    data_status()
    version_watch()
notice_update()
with app_frame():  # the page knows app.py runs it (pages.common.require_page)
    try:
        navigation.run()
    except Exception as exc:  # noqa: BLE001 - the one place a page's error becomes a reference, not a traceback
        show_error(exc, navigation.url_path or "boundaries")
st.divider()
st.caption(ATTRIBUTION)
