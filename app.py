"""Joined Up: the Streamlit entry point. Thin: sign-in, navigation per role, page config, the attribution footer."""
from __future__ import annotations

import streamlit as st

from lib.access.roles import may_open
from lib.geo.build import ATTRIBUTION
from lib.records.store import StoreError
from lib.records.versions import StoreLocked
from pages.common import (account_sidebar, begin_rerun, check_session_timeout, current_role, data_status, demo_banner,
                          ensure_default_data, notice_update, show_error, sign_in_page, version_watch)

st.set_page_config(page_title="Joined Up", page_icon=":link:", layout="wide")

PAGES = [
    st.Page("pages/map.py", title="Boundaries", icon=":material/map:", url_path="boundaries", default=True),
    st.Page("pages/across.py", title="Across boundaries", icon=":material/conversion_path:", url_path="across"),
    st.Page("pages/divergence.py", title="Where counts diverge", icon=":material/compare_arrows:",
            url_path="divergence"),
    st.Page("pages/compare.py", title="Compare areas", icon=":material/balance:", url_path="compare"),
    st.Page("pages/scenario.py", title="NHS number scenarios", icon=":material/tune:", url_path="scenario"),
    st.Page("pages/review.py", title="Review links", icon=":material/rule:", url_path="review"),
    st.Page("pages/data.py", title="Data", icon=":material/database:", url_path="data"),
    st.Page("pages/audit.py", title="Audit trail", icon=":material/history:", url_path="audit"),
]

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
try:
    navigation.run()
except Exception as exc:  # noqa: BLE001 - the one place a page's error becomes a reference, not a traceback
    show_error(exc, navigation.url_path or "boundaries")
st.divider()
st.caption(ATTRIBUTION)
