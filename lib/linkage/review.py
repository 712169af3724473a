"""The review queue: links the model is unsure of, shown side by side with identifiers masked; the decisions
made on it (latest per pair), and undoing one."""
from __future__ import annotations

import duckdb
import pandas as pd

from lib.geo import lookup
from lib.geo.agencies import LABELS as AGENCY_LABELS
from lib.records.identifiers import withhold
from lib.records.store import cursor

_UNDECIDED = """FROM link_edges l WHERE status = 'review' AND NOT EXISTS (
                SELECT 1 FROM review_decisions d
                WHERE least(d.record_key_l, d.record_key_r) = least(l.record_key_l, l.record_key_r)
                  AND greatest(d.record_key_l, d.record_key_r) = greatest(l.record_key_l, l.record_key_r))"""


def queue_length(con: duckdb.DuckDBPyConnection) -> int:
    with cursor(con) as cur:
        return int(cur.execute(f"SELECT count(*) {_UNDECIDED}").fetchall()[0][0])


def review_queue(con: duckdb.DuckDBPyConnection, limit: int = 500) -> pd.DataFrame:
    """Pairs in the review band not yet decided, most uncertain (closest to 0.5 in odds) first."""
    with cursor(con) as cur:
        return cur.execute(f"""
            SELECT node_l, node_r, record_key_l, record_key_r, match_probability, match_weight
            {_UNDECIDED} ORDER BY abs(match_weight), node_l, node_r LIMIT ?""", [limit]).df()


def group_profile(con: duckdb.DuckDBPyConnection, node_id: str) -> pd.DataFrame:
    """A group's records with masked identifiers only: never a hash, a name or a full postcode. The agency is
    its label ("Police"), the date a day ("06 Nov 2024", never a time of day)."""
    with cursor(con) as cur:
        frame = cur.execute("""
            SELECT e.agency_type AS agency, e.encounter_date AS date, e.encounter_type AS encounter,
                   CASE e.nhs_status WHEN 'valid' THEN 'valid number (hidden)' WHEN 'invalid' THEN 'invalid number'
                        ELSE 'none' END AS nhs_number,
                   e.forename_phonetic AS forename_sounds_like, e.surname_phonetic AS surname_sounds_like,
                   e.birth_year, e.sex, e.home_sector AS home_postcode_sector, e.home_utla, e.enc_pfa, e.enc_lad
            FROM record_child r JOIN encounters e USING (record_key)
            WHERE r.node_id = ? ORDER BY e.encounter_date""", [node_id]).df()
    frame["agency"] = frame["agency"].map(lambda v: AGENCY_LABELS.get(v, v)).astype("object")
    frame["date"] = pd.to_datetime(frame["date"]).dt.strftime("%d %b %Y").astype("object")
    frame["encounter"] = frame["encounter"].map(lambda v: withhold(v, record_id=False))  # older stores
    frame["home_authority"] = frame.pop("home_utla").map(lookup.name_of("utla"))
    frame["encounter_force"] = frame.pop("enc_pfa").map(lookup.name_of("pfa"))
    frame["encounter_authority"] = frame.pop("enc_lad").map(lookup.name_of("lad"))
    return frame


#: The identifiers compared between the two groups: (label, stored column, shown as: the masked value itself (True),
#: only whether it is recorded, for a keyed hash (False), or an area's name, for a layer's code (the layer)).
AGREEMENT_FIELDS = (
    ("NHS number", "nhs_hash", False),
    ("Forename (exact)", "forename_hash", False),
    ("Forename sounds like", "forename_phonetic", True),
    ("Surname (exact)", "surname_hash", False),
    ("Surname sounds like", "surname_phonetic", True),
    ("Date of birth (exact)", "dob_hash", False),
    ("Birth year", "birth_year", True),
    ("Sex", "sex", True),
    ("Home postcode (exact)", "home_postcode_hash", False),
    ("Home postcode sector", "home_sector", True),
    ("Local authority where seen", "enc_lad", "lad"),  # the model weighs it where the homes do not agree
)


def _group_values(con, node_l: str, node_r: str) -> dict[tuple[str, str], set]:
    """(node, column) -> that group's distinct recorded values of the column, for both groups in one query (one
    join of record_child and encounters per column for each group cost the Review page 0.5 s at 200,000)."""
    columns = [column for _, column, _ in AGREEMENT_FIELDS]
    with cursor(con) as cur:
        rows = cur.execute(f"""SELECT r.node_id, {", ".join(f"e.{c}" for c in columns)}
                               FROM record_child r JOIN encounters e USING (record_key)
                               WHERE r.node_id IN (?, ?)""", [node_l, node_r]).fetchall()
    values: dict[tuple[str, str], set] = {(n, c): set() for n in (node_l, node_r) for c in columns}
    for node, *recorded in rows:
        for column, value in zip(columns, recorded):
            if value is not None and value != "":
                values[(node, column)].add(value)
    return values


def _masked(values: set, shown: bool | str) -> str:
    if not values:
        return "not recorded"
    if isinstance(shown, str):
        names = lookup.name_of(shown)
        return ", ".join(sorted(names.get(v, str(v)) for v in values))
    if shown:
        return ", ".join(str(v) for v in sorted(values, key=str))
    return "recorded" if len(values) == 1 else f"{len(values)} different"


def agreement(con: duckdb.DuckDBPyConnection, node_l: str, node_r: str) -> pd.DataFrame:
    """Which identifiers the two groups have in common: one row per identifier (``identifier``, ``group_a``,
    ``group_b``, ``verdict``: "agree", "disagree" or "not on both"). Masked: a sound code, year, sex or sector
    is shown, a local authority by its name; a keyed hash only as "recorded" (never its value)."""
    values, rows = _group_values(con, node_l, node_r), []
    for label, column, shown in AGREEMENT_FIELDS:
        a, b = values[(node_l, column)], values[(node_r, column)]
        verdict = "not on both" if not a or not b else ("agree" if a & b else "disagree")
        rows.append((label, _masked(a, shown), _masked(b, shown), verdict))
    return pd.DataFrame(rows, columns=["identifier", "group_a", "group_b", "verdict"]).astype("object")


_LATEST = """SELECT d.record_key_l, d.record_key_r, d.decision, d.reviewer, d.decided_at FROM (
                SELECT *, row_number() OVER (PARTITION BY least(record_key_l, record_key_r),
                                                          greatest(record_key_l, record_key_r)
                                             ORDER BY decided_at DESC) AS latest FROM review_decisions) d
             WHERE d.latest = 1"""


def decided(con: duckdb.DuckDBPyConnection, limit: int = 50) -> pd.DataFrame:
    """The latest decision on each decided pair, most recent first: record keys (for an undo, never shown),
    decision, reviewer, decided_at and the pair's match probability in the current linkage (None if the pair
    is no longer a scored edge)."""
    with cursor(con) as cur:
        return cur.execute(f"""
            SELECT d.*, l.match_probability FROM ({_LATEST}) d LEFT JOIN link_edges l
              ON least(l.record_key_l, l.record_key_r) = least(d.record_key_l, d.record_key_r)
             AND greatest(l.record_key_l, l.record_key_r) = greatest(d.record_key_l, d.record_key_r)
            ORDER BY d.decided_at DESC, d.record_key_l, d.record_key_r LIMIT ?""", [limit]).df()


def undo_decision(con: duckdb.DuckDBPyConnection, record_key_l: str, record_key_r: str, decided_at) -> int:
    """Withdraw one stored decision (the reviewer's undo): the row of that pair decided at ``decided_at``.
    The pair's earlier decision, if any, applies again; with none, the pair returns to the queue. Returns the
    rows removed (0 if it was already withdrawn). The caller writes it as a store version and audits it."""
    with cursor(con) as cur:
        before = cur.execute("SELECT count(*) FROM review_decisions").fetchall()[0][0]
        cur.execute("""DELETE FROM review_decisions WHERE record_key_l = ? AND record_key_r = ?
                       AND decided_at = CAST(? AS TIMESTAMP)""", [record_key_l, record_key_r, str(decided_at)])
        return int(before - cur.execute("SELECT count(*) FROM review_decisions").fetchall()[0][0])
