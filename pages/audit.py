"""Audit trail (safeguarding leads only): who saw, exported, loaded, linked or decided what, and when. Thin: the
check's verdict, the row count and the rows come from the view builder lib.views.audit."""
from __future__ import annotations

from datetime import datetime, timedelta

import streamlit as st

from lib.access import audit
from lib.views import audit as view
from pages.common import audit_trail, audit_view, export_button, require_page

ROLE = require_page("audit")
log = audit_trail()

st.title(view.TITLE)
st.markdown(view.INTRO)
audit_view("view_audit", None, slot="audit_page")
verdict = st.container()  # the check's verdict, above the filters (filled once the view is built)


@st.cache_data(ttl=120, max_entries=8, show_spinner="Checking the audit chain…")
def _view(path: str, fingerprint: tuple, params: tuple, role: str):
    """The view (its chain check is O(rows), about 3 s per 100,000 rows under load): reused while nothing
    was written to the trail (any write changes its fingerprint)."""
    return view.build(log, dict(params), role)


c1, c2, c3, c4 = st.columns([1, 1, 1, 1])
actions = [None, *audit.ACTIONS]
action = c1.selectbox("Action", actions, format_func=lambda a: "All actions" if a is None else audit.ACTIONS[a],
                      key="audit_action")
user = c2.text_input("User (exact)", key="audit_user", max_chars=200).strip() or None
text = c3.text_input("Area, child or file contains", key="audit_text", max_chars=200).strip() or None
today = datetime.now().date()
period = c4.date_input("Between", (today - timedelta(days=view.DAYS), today), key="audit_period")
since = until = view.ANY  # half a range picked: every row
if isinstance(period, (list, tuple)) and len(period) == 2:
    since, until = period[0].isoformat(), period[1].isoformat()
params = {"action": action, "user": user, "text": text, "since": since, "until": until}
data = _view(str(log.path), audit.fingerprint(log), tuple(sorted(params.items())), ROLE)

if data.extra["chain_ok"]:
    verdict.success(data.sentences[1], icon=":material/verified:")
else:
    verdict.error(data.sentences[1], icon=":material/gpp_bad:")
rows = data.tables["rows"]
st.caption(data.sentences[2])
st.dataframe(rows.frame, hide_index=True, width="stretch", height=420, key="rows",
             column_config={"seq": "#",
                            "at_utc": st.column_config.DatetimeColumn("When (UTC)", format="YYYY-MM-DD HH:mm:ss"),
                            "user_name": "User", "role": "Role", "action": "Action", "subject": "Area / child / file",
                            "detail": "Detail"})
export_button("Download these rows (CSV)", rows.frame, "joinedup_audit.csv", "text/csv", key="audit_csv",
              subject="audit trail")
