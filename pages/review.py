"""Review links: the pairs the model is unsure of, explained, for a reviewer to accept or reject. Thin: every
number, sentence and table shown comes from the view builder lib.views.review; the decision buttons stay
here and write through lib.records.versions."""
from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from lib.linkage import run
from lib.records import versions
from lib.records.identifiers import safe_node_id
from lib.views import review as view
from lib.views.base import Source
from pages.common import (
    after_write,
    audit,
    audit_view,
    current_user,
    db_path,
    is_demo,
    require_page,
    store_connection,
)

ROLE = require_page("review")  # safeguarding leads only: pairs of children's records

source = Source(store_connection(), db_path())
try:
    data = view.build(source, {"pair": st.session_state.get("review_pair") or 0}, ROLE)
except ValueError:  # the chosen pair is past the end of a queue that has shrunk: start again at the top
    st.session_state.pop("review_pair", None)
    data = view.build(source, {"pair": 0}, ROLE)

st.title(data.title)
st.markdown(data.sentences[0])
if data.extra["state"] == "unlinked":
    st.info(data.sentences[1])
    st.stop()
for note in data.notes:
    st.caption(note)
st.metric("Pairs awaiting review", f"{data.extra['queue_length']:,}",
          help=f"Only the {view.LISTED} most uncertain are listed at a time.")
if data.extra["state"] == "empty":
    st.success(data.sentences[1])
    st.stop()

labels = data.extra["pairs"]
choice = st.selectbox("Pair", range(len(labels)), format_func=lambda i: labels[i], key="review_pair")
pair = view.selected_pair(source, {"pair": choice})
if choice != data.extra["pair"]:  # the selector was drawn with another pair than the one built: rebuild
    data = view.build(source, {"pair": choice}, ROLE)
audit_view("view_review", f"{safe_node_id(pair['node_l'])} / {safe_node_id(pair['node_r'])}",
           f"probability {pair['match_probability']:.2f}", slot="review_pair")
if data.extra["state"] == "unexplained":
    st.info(data.sentences[1])
    st.stop()
st.markdown(data.sentences[1])
chart, numbers = st.tabs(["Waterfall", "Table"])
chart.plotly_chart(data.figures["waterfall"], width="stretch")
numbers.dataframe(data.tables["explanation"].frame, hide_index=True, width="stretch", key="explanation")

left, right = st.columns(2)
for column, name in ((left, "group_a"), (right, "group_b")):
    column.subheader(data.tables[name].title)
    column.dataframe(data.tables[name].frame, hide_index=True, width="stretch", key=name)

if is_demo():  # no sign-in in the synthetic demo: the reviewer names themself
    reviewer = st.text_input("Your name or role (recorded with the decision)", key="reviewer", max_chars=120)
else:
    reviewer = current_user() or ""
    st.caption(f"Decisions are recorded as made by **{reviewer}**.")
accept, reject = st.columns(2)
for column, decision, label in ((accept, "accept", "Same child: accept link"),
                                (reject, "reject", "Different children: reject link")):
    if column.button(label, key=f"decide_{decision}", disabled=not reviewer.strip(), width="stretch"):
        try:  # the decision is the store's next version (lib.records.versions.write)
            with versions.write(db_path(), "review decision", wait=2) as w:
                run.record_decision(w.con, pair["record_key_l"], pair["record_key_r"], decision, reviewer.strip())
                w.change = "a review decision"
            after_write()
            saved = "It takes effect when records are next linked."
        except versions.StoreLocked as exc:  # a nightly load holds the store: keep the decision in the queue
            versions.queue_decision(db_path(), {
                "record_key_l": pair["record_key_l"], "record_key_r": pair["record_key_r"], "decision": decision,
                "reviewer": reviewer.strip(),
                "decided_at": datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")})
            saved = (f"A data load (`{exc.holder.get('command', 'another writer')}` since "
                     f"{exc.holder.get('started', '?')}) is writing the store, so your decision is kept in a queue and "
                     "saved as soon as it finishes (within seconds of it); nothing needs doing.")
        audit("review_decision", f"{safe_node_id(pair['node_l'])} / {safe_node_id(pair['node_r'])}",
              f"{decision} (reviewer: {reviewer.strip()})")
        st.success(f"Recorded: {decision}. {saved}")
