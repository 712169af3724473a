"""The review queue: links the model is unsure of, shown side by side with identifiers masked."""
from __future__ import annotations

import duckdb
import pandas as pd

from lib.geo import lookup
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
    """A group's records with masked identifiers only: never a hash, a name or a full postcode."""
    with cursor(con) as cur:
        frame = cur.execute("""
            SELECT e.agency_type AS agency, e.encounter_date AS date, e.encounter_type AS encounter,
                   CASE e.nhs_status WHEN 'valid' THEN 'valid number (hidden)' WHEN 'invalid' THEN 'invalid number'
                        ELSE 'none' END AS nhs_number,
                   e.forename_phonetic AS forename_sounds_like, e.surname_phonetic AS surname_sounds_like,
                   e.birth_year, e.sex, e.home_sector AS home_postcode_sector, e.home_utla, e.enc_pfa
            FROM record_child r JOIN encounters e USING (record_key)
            WHERE r.node_id = ? ORDER BY e.encounter_date""", [node_id]).df()
    frame["encounter"] = frame["encounter"].map(lambda v: withhold(v, record_id=False))  # older stores
    frame["home_authority"] = frame.pop("home_utla").map(lookup.name_of("utla"))
    frame["encounter_force"] = frame.pop("enc_pfa").map(lookup.name_of("pfa"))
    return frame
