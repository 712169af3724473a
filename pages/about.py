"""About and methods (every role): what Joined Up is, its sources and vintages, methods, who sees what, and the
accessibility statement. Renders lib.views.about only."""
from __future__ import annotations

import streamlit as st

import pages.common as common
from lib.views import about

ROLE = common.require_page("about")
data = about.build(None, {}, ROLE)

st.title(data.title)
st.markdown(data.sentence("what"))

st.header("How the numbers are made")
for name, _ in about.METHODS:
    st.markdown(data.sentence(f"method:{name}"))

for name in ("sources", "layers", "roles"):
    table = data.table(name)
    st.subheader(table.title)
    common.show_table(data, name)
    if table.note:
        st.caption(table.note)

st.header("Accessibility statement")
st.markdown(data.note_text("accessibility"))
