"""Audit trail (safeguarding leads only): who saw, exported, loaded, linked or decided what, and when."""
from __future__ import annotations

from datetime import datetime, time, timedelta

import streamlit as st

from lib.access import audit
from pages.common import audit_trail, audit_view, export_button, require_page

require_page("audit")
log = audit_trail()

st.title("Audit trail")
st.markdown("Every child-level view, export, upload, linkage run, review decision and sign-in is recorded here, "
            "append-only. Each row is chained to the one before it by a hash, so a changed or deleted row "
            "shows up below as a broken chain.")
audit_view("view_audit", None, slot="audit_page")

check = audit.verify(log)
if check["ok"]:
    st.success(f"Chain intact: {check['rows']:,} rows, none altered or removed.", icon=":material/verified:")
else:
    st.error(f"The audit chain is broken at row {check['first_bad_seq']:,}: a row was changed or removed "
             "outside the application. Report this to your information governance lead.", icon=":material/gpp_bad:")

c1, c2, c3, c4 = st.columns([1, 1, 1, 1])
actions = [None, *audit.ACTIONS]
action = c1.selectbox("Action", actions, format_func=lambda a: "All actions" if a is None else audit.ACTIONS[a],
                      key="audit_action")
user = c2.text_input("User (exact)", key="audit_user", max_chars=200).strip() or None
text = c3.text_input("Area, child or file contains", key="audit_text", max_chars=200).strip() or None
today = datetime.now().date()
period = c4.date_input("Between", (today - timedelta(days=30), today), key="audit_period")
since = until = None
if isinstance(period, (list, tuple)) and len(period) == 2:
    since = datetime.combine(period[0], time.min)
    until = datetime.combine(period[1], time.min) + timedelta(days=1)

rows = audit.read(log, action=action, user=user, text=text, since=since, until=until)
st.caption(f"{len(rows):,} rows (times in UTC), newest first.")
st.dataframe(rows, hide_index=True, width="stretch", height=420, key="audit_table",
             column_config={"seq": "#", "at_utc": st.column_config.DatetimeColumn("When (UTC)", format="YYYY-MM-DD HH:mm:ss"),
                            "user_name": "User", "role": "Role", "action": "Action", "subject": "Area / child / file",
                            "detail": "Detail"})
export_button("Download these rows (CSV)", audit.to_csv(rows), "joinedup_audit.csv", "text/csv", key="audit_csv",
              subject="audit trail")
