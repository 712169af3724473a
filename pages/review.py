"""Review links: the pairs the model is unsure of, explained, for a reviewer to accept or reject."""
from __future__ import annotations

import streamlit as st

from lib.linkage import explain, review, run
from lib.measures import spans
from lib.records import versions
from lib.records.identifiers import safe_node_id
from pages.common import after_write, audit, audit_view, current_user, db_path, is_demo, require_page, store_connection

require_page("review")  # safeguarding leads only: pairs of children's records
st.title("Review uncertain links")
st.markdown("Links whose match probability falls in the review band. Each decision is stored and "
            "respected the next time records are linked. Identifiers are masked: names appear only as "
            "sound codes, dates of birth as the year, postcodes as the sector.")

con = store_connection()
if not spans.has_linkage(con):
    st.info("Records have not been linked yet. Link them on the Across boundaries page or with "
            "`python -m lib.cli link`.")
    st.stop()

queue = review.review_queue(con)
waiting = versions.pending(db_path())  # decided here while another writer held the store: not shown again
if waiting and not queue.empty:
    queued = {(d["record_key_l"], d["record_key_r"]) for d in waiting}
    queue = queue[[(a, b) not in queued for a, b in zip(queue["record_key_l"], queue["record_key_r"])]
                  ].reset_index(drop=True)
    st.caption(f"{len(waiting)} decision{'s' if len(waiting) != 1 else ''} waiting to be saved (a data load is "
               "writing the store; they are saved when it finishes).")
st.metric("Pairs awaiting review", f"{review.queue_length(con):,}",
          help="Only the 500 most uncertain are listed at a time.")
if queue.empty:
    st.success("Nothing to review.")
    st.stop()

labels = [f"#{i + 1}: probability {p:.2f}" for i, p in enumerate(queue["match_probability"])]
choice = st.selectbox("Pair", range(len(queue)), format_func=lambda i: labels[i], key="review_pair")
pair = queue.iloc[choice]
audit_view("view_review", f"{safe_node_id(pair['node_l'])} / {safe_node_id(pair['node_r'])}", f"probability {pair['match_probability']:.2f}",
           slot="review_pair")
try:
    table, probability = explain.explain_pair(con, pair["node_l"], pair["node_r"])
except LookupError as exc:
    st.info(f"No explanation for this pair: {exc}.")
    st.stop()
reading = ", ".join(f"{row.step.lower()} {'for' if row.match_weight > 0 else 'against'} ({row.level.lower()})"
                    for row in table.iloc[1:].itertuples() if abs(row.match_weight) >= 1)
st.markdown(f"**The model puts this pair at {probability:.0%}.** Evidence: {reading or 'weak on every field'}.")
chart, numbers = st.tabs(["Waterfall", "Table"])
chart.plotly_chart(explain.waterfall_figure(table, probability), width="stretch")
numbers.dataframe(table.round(2), hide_index=True, width="stretch")

left, right = st.columns(2)
left.subheader("Group A")
left.dataframe(review.group_profile(con, pair["node_l"]), hide_index=True, width="stretch")
right.subheader("Group B")
right.dataframe(review.group_profile(con, pair["node_r"]), hide_index=True, width="stretch")

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
            from datetime import datetime, timezone

            versions.queue_decision(db_path(), {
                "record_key_l": pair["record_key_l"], "record_key_r": pair["record_key_r"], "decision": decision,
                "reviewer": reviewer.strip(),
                "decided_at": datetime.now(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")})
            saved = (f"A data load (`{exc.holder.get('command', 'another writer')}` since "
                     f"{exc.holder.get('started', '?')}) is writing the store, so your decision is kept in a queue and "
                     "saved as soon as it finishes (within seconds of it); nothing needs doing.")
        audit("review_decision", f"{safe_node_id(pair['node_l'])} / {safe_node_id(pair['node_r'])}", f"{decision} (reviewer: {reviewer.strip()})")
        st.success(f"Recorded: {decision}. {saved}")
