"""Review links: the pairs the model is unsure of, explained, for a reviewer to accept or reject. Thin: every
number, sentence and table shown comes from the view builder lib.views.review; the decision and undo buttons
stay here and write through lib.records.versions.

The buttons act in callbacks (``on_click``), which Streamlit runs before the script: the decision is stored
first, then the page is drawn from the new version, so the next pair is on screen and the count has fallen on
the same run; the message about the decision names the pair it was about (it is listed under "Decided pairs",
with an undo). Keyboard shortcuts are Streamlit's own (``st.button(shortcut=...)``)."""
from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from lib.linkage import review as linkage_review
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
    show_table,
    store_connection,
)

ROLE = require_page("review")  # safeguarding leads only: pairs of children's records
_FLASH = "review_flash"  # session_state: (kind, text) said once, on the run after a decision or an undo


def _source() -> Source:
    return Source(store_connection(), db_path())


def _reviewer() -> str:
    return (st.session_state.get("reviewer", "") if is_demo() else current_user() or "").strip()


def _pair_name(pair) -> str:
    return f"the pair at probability {pair['match_probability']:.2f}"


def decide(decision: str, index: int) -> None:
    """on_click of accept/reject: store the decision on pair ``index`` as the store's next version."""
    reviewer = _reviewer()
    pair = view.selected_pair(_source(), {"pair": index})
    if pair is None or not reviewer:
        return
    subject = f"{safe_node_id(pair['node_l'])} / {safe_node_id(pair['node_r'])}"
    try:  # the decision is the store's next version (lib.records.versions.write)
        with versions.write(db_path(), "review decision", wait=2) as w:
            run.record_decision(w.con, pair["record_key_l"], pair["record_key_r"], decision, reviewer)
            w.change = "a review decision"
        after_write()
        saved = "It takes effect when records are next linked; undo it under Decided pairs below."
    except versions.StoreLocked as exc:  # a nightly load holds the store: keep the decision in the queue
        versions.queue_decision(db_path(), {
            "record_key_l": pair["record_key_l"], "record_key_r": pair["record_key_r"], "decision": decision,
            "reviewer": reviewer, "decided_at": datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")})
        saved = (f"A data load (`{exc.holder.get('command', 'another writer')}` since "
                 f"{exc.holder.get('started', '?')}) is writing the store, so your decision is kept in a queue and "
                 "saved as soon as it finishes (within seconds of it); nothing needs doing.")
    audit("review_decision", subject, f"{decision} (reviewer: {reviewer})")
    meaning = "same child" if decision == "accept" else "different children"
    st.session_state[_FLASH] = ("success", f"Recorded: {decision} ({meaning}) for {_pair_name(pair)}. {saved} "
                                           "The next pair is below.")


def skip(count: int) -> None:
    """on_click of skip: the next pair in the queue (wrapping to the first)."""
    st.session_state["review_pair"] = (int(st.session_state.get("review_pair") or 0) + 1) % max(count, 1)


def undo(index: int) -> None:
    """on_click of an undo: withdraw that decision as the store's next version, audited as its own action."""
    reviewer = _reviewer()
    row = view.decided_pair(_source(), index)
    if row is None or not reviewer:
        return
    try:
        with versions.write(db_path(), "review undo", wait=2) as w:
            removed = linkage_review.undo_decision(w.con, row["record_key_l"], row["record_key_r"], row["decided_at"])
            w.change = "a review decision undone"
        after_write()
    except versions.StoreLocked as exc:
        holder = exc.holder.get("command", "another writer")
        st.session_state[_FLASH] = ("warning", f"Not undone: a data load (`{holder}`) is writing the store. Try "
                                               "again when it finishes.")
        return
    # its own audited decision (action review_decision, detail "undo …"): who withdrew which decision
    audit("review_decision", f"decision of {row['decided_at']:%Y-%m-%d %H:%M:%S}",
          f"undo {row['decision']} by {row['reviewer']} (reviewer: {reviewer}; decisions withdrawn: {removed})")
    st.session_state[_FLASH] = ("success", f"Undone: {view.decided_label(row)}. Unless it had an earlier decision, "
                                           "the pair is back in the queue.")


source = _source()
try:
    data = view.build(source, {"pair": st.session_state.get("review_pair") or 0}, ROLE)
except ValueError:  # the chosen pair is past the end of a queue that has shrunk: start again at the top
    st.session_state["review_pair"] = 0
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
flash = st.session_state.pop(_FLASH, None)
if flash:
    (st.success if flash[0] == "success" else st.warning)(flash[1])

if is_demo():  # no sign-in in the synthetic demo: the reviewer names themself
    reviewer = st.text_input("Your name or role (recorded with the decision)", key="reviewer", max_chars=120)
else:
    reviewer = current_user() or ""
    st.caption(f"Decisions are recorded as made by **{reviewer}**.")
keys = data.extra["shortcuts"]


def decided_pairs() -> None:
    """The decided pairs, most recent first, each with an undo (an audited store version of its own)."""
    rows = data.extra["decided"]
    with st.expander(f"Decided pairs ({len(rows)} most recent)", expanded=bool(rows), icon=":material/history:"):
        if not rows:
            st.caption("No decisions yet.")
        for i, row in enumerate(rows):
            text, button = st.columns([5, 1], vertical_alignment="center")
            text.markdown(row["label"])
            button.button("Undo", key=f"undo_{i}", on_click=undo, args=(i,), disabled=not reviewer.strip(),
                          help="Withdraw this decision: the pair returns to the queue (recorded in the audit trail).")


if data.extra["state"] == "empty":
    st.success(data.sentences[1])
    decided_pairs()
    st.stop()

labels = data.extra["pairs"]
choice = st.selectbox("Pair", range(len(labels)), format_func=lambda i: labels[i], key="review_pair")
if choice != data.extra["pair"]:  # the selector was drawn with another pair than the one built: rebuild
    data = view.build(source, {"pair": choice}, ROLE)
for action, subject, detail in view.audit_rows(source, data):  # the rows `view review` writes too
    audit_view(action, subject, detail, slot="review_pair")
if data.extra["state"] == "unexplained":
    st.info(data.sentences[1])
    decided_pairs()
    st.stop()
st.markdown(data.sentences[1])

accept, reject, later = st.columns(3)
for column, decision, label in ((accept, "accept", "Same child: accept link"),
                                (reject, "reject", "Different children: reject link")):
    column.button(label, key=f"decide_{decision}", disabled=not reviewer.strip(), width="stretch",
                  type="primary" if decision == "accept" else "secondary", on_click=decide,
                  args=(decision, choice), shortcut=keys[decision],
                  help=f"Keyboard: {keys[decision]}. The next pair opens at once.")
later.button("Skip to the next pair", key="review_skip", width="stretch", on_click=skip, args=(len(labels),),
             shortcut=keys["skip"], help=f"Keyboard: {keys['skip']}. Nothing is recorded.")
st.caption(f"Keyboard: **{keys['accept']}** accept, **{keys['reject']}** reject (different children), "
           f"**{keys['skip']}** skip (not while typing in a box)."
           + ("" if reviewer.strip() else " Enter your name above first."))

st.subheader("Which identifiers agree")
agreement = data.extra["agreement"]
marks = {"agree": "✅ agree", "disagree": "❌ disagree", "not on both": "— not on both"}
st.markdown("| Identifier | Group A | Group B | |\n|---|---|---|---|\n" + "\n".join(
    f"| {r['identifier']} | {r['group_a']} | {r['group_b']} | {marks[r['verdict']]} |" for r in agreement))
st.caption("Exact names, dates of birth, postcodes and NHS numbers are compared by their keyed hashes: only "
           "whether they agree is shown, never the value.")

chart, numbers = st.tabs(["Why the model scored it so (waterfall)", "Table"])
chart.plotly_chart(data.figures["waterfall"], width="stretch")
with numbers:
    show_table(data, "explanation", width="stretch")

for name in ("group_a", "group_b"):  # one above the other, full width: every column readable
    st.subheader(f"{data.tables[name].title}: {len(data.tables[name].frame)} record"
                 f"{'s' if len(data.tables[name].frame) != 1 else ''} (masked)")
    show_table(data, name, width="stretch")

decided_pairs()
