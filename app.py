"""Joined Up: the Streamlit entry point. Thin: navigation, page config, the attribution footer."""
from __future__ import annotations

import streamlit as st

from lib.geo.build import ATTRIBUTION
from lib.records.store import StoreError
from pages.common import ensure_default_data

st.set_page_config(page_title="Joined Up", page_icon=":link:", layout="wide")

PAGES = [
    st.Page("pages/map.py", title="Boundaries", icon=":material/map:", url_path="boundaries", default=True),
    st.Page("pages/across.py", title="Across boundaries", icon=":material/conversion_path:", url_path="across"),
    st.Page("pages/divergence.py", title="Where counts diverge", icon=":material/compare_arrows:",
            url_path="divergence"),
    st.Page("pages/review.py", title="Review links", icon=":material/rule:", url_path="review"),
    st.Page("pages/data.py", title="Data", icon=":material/database:", url_path="data"),
]

navigation = st.navigation(PAGES)
try:
    ensure_default_data()
except StoreError as exc:  # e.g. the store is locked by a command-line ingest
    st.warning(f"The record store is not available right now: {exc}")
with st.sidebar:
    st.caption("Joined Up: where children's safeguarding data falls between agencies.")
navigation.run()
st.divider()
st.caption(ATTRIBUTION)
