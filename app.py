"""Joined Up: the Streamlit entry point. Thin: navigation, page config, the attribution footer."""
from __future__ import annotations

import streamlit as st

from lib.geo.build import ATTRIBUTION

st.set_page_config(page_title="Joined Up", page_icon=":link:", layout="wide")

PAGES = [
    st.Page("pages/map.py", title="Boundaries", icon=":material/map:", url_path="boundaries", default=True),
]

navigation = st.navigation(PAGES)
with st.sidebar:
    st.caption("Joined Up: where children's safeguarding data falls between agencies.")
navigation.run()
st.divider()
st.caption(ATTRIBUTION)
