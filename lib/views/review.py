"""View builder of "Review links" (safeguarding leads only): the pairs the model is unsure of, one explained.

``build(con_or_store, params, role)`` returns the queue's length, the chosen pair's probability and reading,
its waterfall (figure and table) and the two groups' MASKED record cards (lib.linkage.review.group_profile:
sound codes, birth year, postcode sector; never a hash, a name, a record key or a node id). Nothing here is
more than the page showed before the view layer; the page keeps the decision buttons, which write through
lib.records.versions (``selected_pair`` gives it the pair's record keys, which are never in the PageData).

Parameters: ``pair``: the position of the pair in the queue (0 = the most uncertain).
``extra``: ``queue_length`` (the metric), ``pairs`` (the selector's labels), ``pair``, ``waiting``,
``agreement`` (which identifiers the two groups share: rows of identifier, group A, group B, verdict; masked),
``decided`` (the latest decision on each decided pair, most recent first: label, decision, reviewer, when;
``decided_pair(source, i)`` gives the page the record keys of row ``i`` for an undo, never shown) and
``shortcuts`` (the decision buttons' keys).
State (``extra["state"]``): ``unlinked`` (no linkage yet), ``empty`` (nothing to review), ``unexplained``
(the pair has no model explanation), ``pair`` (a pair is shown).
"""
from __future__ import annotations

import pandas as pd

from lib.access.roles import sees_child_level
from lib.linkage import explain, review
from lib.measures import spans
from lib.records import store, versions
from lib.records.identifiers import safe_node_id
from lib.views.base import PageData, Param, Table, source_of
from lib.views.scenario import store_path

PAGE = "review"
TITLE = "Review uncertain links"
INTRO = ("Links whose match probability falls in the review band. Each decision is stored and respected the next "
         "time records are linked. Identifiers are masked: names appear only as sound codes, dates of birth as the "
         "year, postcodes as the sector.")
UNLINKED = ("Records have not been linked yet. Link them on the Across boundaries page or with "
            "`python -m lib.cli link`.")
LISTED = 500  # the queue lists the most uncertain pairs only

DECIDED_LISTED = 20  # the decided pairs listed (most recent first), each with an undo
#: Keyboard shortcuts of the page's buttons (Streamlit's own ``st.button(shortcut=...)``; "R" and "C" are
#: reserved by Streamlit, so reject is "D" for "different children").
SHORTCUTS = {"accept": "A", "reject": "D", "skip": "S"}
DECISION_WORDS = {"accept": "accepted (same child)", "reject": "rejected (different children)"}
#: How the masked record cards' columns read on the page (the JSON keeps the column names).
CARD_COLUMNS = {"agency": {"label": "Agency"}, "date": {"label": "Date"}, "encounter": {"label": "Encounter"},
                "nhs_number": {"label": "NHS number"}, "forename_sounds_like": {"label": "Forename sounds like"},
                "surname_sounds_like": {"label": "Surname sounds like"}, "birth_year": {"label": "Birth year"},
                "sex": {"label": "Sex"}, "home_postcode_sector": {"label": "Home postcode sector"},
                "home_authority": {"label": "Home area (children's services)"},
                "encounter_force": {"label": "Encounter area (police force)"},
                "encounter_authority": {"label": "Encounter area (local authority)"}}

PARAMS = {"pair": Param(0, kind=int, help="position of the pair in the review queue (0: the most uncertain)")}


def queue(con_or_store) -> tuple[pd.DataFrame, list[dict]]:
    """(undecided pairs, most uncertain first, without those waiting in the decision queue; the waiting
    decisions). Decisions made while another writer held the store wait in lib.records.versions' queue:
    they are not offered again."""
    source = source_of(con_or_store)
    pairs = review.review_queue(source.con, limit=LISTED)
    path = store_path(source)
    waiting = versions.pending(path) if path is not None and str(path) != ":memory:" else []
    if waiting and not pairs.empty:
        queued = {(d["record_key_l"], d["record_key_r"]) for d in waiting}
        keep = [(a, b) not in queued for a, b in zip(pairs["record_key_l"], pairs["record_key_r"])]
        pairs = pairs[keep].reset_index(drop=True)
    return pairs, waiting


def selected_pair(con_or_store, params: dict) -> pd.Series | None:
    """The queue row of the chosen pair (record keys and node ids: for the page's decision and audit rows,
    never shown), or None when the queue is empty or the position is past its end."""
    pairs, _ = queue(con_or_store)
    index = int(params.get("pair") or 0)
    return pairs.iloc[index] if 0 <= index < len(pairs) else None


def decisions(con_or_store) -> pd.DataFrame:
    """The latest decision on each decided pair, most recent first (``DECIDED_LISTED`` of them), with the
    record keys the page needs for an undo (never in the PageData)."""
    return review.decided(source_of(con_or_store).con, limit=DECIDED_LISTED)


def decided_pair(con_or_store, index: int) -> pd.Series | None:
    """Row ``index`` of ``decisions`` (record keys and decided_at: for the page's undo), or None."""
    rows = decisions(con_or_store)
    return rows.iloc[index] if 0 <= index < len(rows) else None


def audit_rows(con_or_store, data: PageData) -> list[tuple[str, str, str]]:
    """The audit rows (action, subject, detail) for what ``data`` shows: the pair opened (``view_review``,
    subject the groups' safe node ids, as the page has always written it)."""
    if data.extra.get("state") not in ("pair", "unexplained"):
        return []
    pair = selected_pair(con_or_store, {"pair": data.extra["pair"]})
    return [("view_review", f"{safe_node_id(pair['node_l'])} / {safe_node_id(pair['node_r'])}",
             f"probability {pair['match_probability']:.2f}")]


def decided_label(row) -> str:
    probability = row.match_probability
    pair = "a pair no longer scored by the model" if pd.isna(probability) else \
        f"the pair at probability {probability:.2f}"
    when = pd.Timestamp(row.decided_at).strftime("%d %b %Y %H:%M")
    return f"{when} UTC: {pair}, {DECISION_WORDS.get(row.decision, row.decision)} by {row.reviewer or 'unknown'}"


def pair_labels(pairs: pd.DataFrame) -> list[str]:
    return [f"#{i + 1}: probability {p:.2f}" for i, p in enumerate(pairs["match_probability"])]


def reading(table: pd.DataFrame, probability: float) -> str:
    """The pair's evidence in one sentence (fields with at least one unit of match weight)."""
    evidence = ", ".join(f"{row.step.lower()} {'for' if row.match_weight > 0 else 'against'} ({row.level.lower()})"
                         for row in table.iloc[1:].itertuples() if abs(row.match_weight) >= 1)
    return f"**The model puts this pair at {probability:.0%}.** Evidence: {evidence or 'weak on every field'}."


def build(con_or_store, params: dict, role: str) -> PageData:
    if not sees_child_level(role):  # the registry refuses other roles first; never build it for them
        raise ValueError(f"role {role!r} cannot open page 'review': pairs of children's records")
    source = source_of(con_or_store)
    con = source.con
    data = PageData(page=PAGE, role=role, params=dict(params), data_version=store.data_version(con), title=TITLE,
                    sentences=[INTRO], extra={"state": "unlinked"})
    if not spans.has_linkage(con):
        data.sentences.append(UNLINKED)
        return data
    pairs, waiting = queue(source)
    length = review.queue_length(con)
    data.extra.update(queue_length=length, waiting=len(waiting), pairs=pair_labels(pairs), state="empty",
                      shortcuts=dict(SHORTCUTS),
                      decided=[{"label": decided_label(row), "decision": row.decision}
                               for row in decisions(source).itertuples(index=False)])
    if waiting and length:
        data.notes.append(f"{len(waiting)} decision{'s' if len(waiting) != 1 else ''} waiting to be saved (a data "
                          "load is writing the store; they are saved when it finishes).")
    if pairs.empty:
        data.sentences.append("Nothing to review.")
        return data
    index = int(params.get("pair") or 0)
    if not 0 <= index < len(pairs):
        raise ValueError(f"parameter pair={index}: the queue lists {len(pairs)} pairs (0 to {len(pairs) - 1})")
    pair = pairs.iloc[index]
    data.extra.update(pair=index, state="unexplained")
    try:
        table, probability = explain.explain_pair(con, pair["node_l"], pair["node_r"])
    except LookupError as exc:
        data.sentences.append(f"No explanation for this pair: {exc}.")
        return data
    data.extra["state"] = "pair"
    data.sentences.append(reading(table, probability))
    data.figures["waterfall"] = explain.waterfall_figure(table, probability)
    data.tables["explanation"] = Table(table.round(2), title="Table")
    data.tables["group_a"] = Table(review.group_profile(con, pair["node_l"]), title="Group A", columns=CARD_COLUMNS)
    data.tables["group_b"] = Table(review.group_profile(con, pair["node_r"]), title="Group B", columns=CARD_COLUMNS)
    data.extra["agreement"] = review.agreement(con, pair["node_l"], pair["node_r"]).to_dict("records")
    return data
