"""Where a linked store's missed true pairs are (issue 20): which children are split, and why.

Run: python -m bench.missed_pairs --store LINKED.duckdb --truth TRUTH.parquet
(a store linked by `link`, and the generator's truth table for it; e.g. the 1M store of docs/LINKAGE_PRIVACY.md,
session 11). Prints JSON figure lines (bench.common.emit):
- the missed true pairs (records of one true child in two predicted children), split by the smaller part's size
  and by how many of the two parts hold an NHS-number group;
- the records split off alone from their child's largest part ("singletons"): by the name the record gave
  (true, nickname, alias, false name; the truth's `name_status`) and by the best stored edge between the record
  and that part (none: never proposed, or scored below the run's review floor);
- the lone-number test considered, not adopted: a record alone in its NHS-number group whose forename (after
  nicknames), surname, date of birth and home district equal another group's usual identity, and how often the
  two are truly one child.
"""
from __future__ import annotations

import argparse

import duckdb
import pandas as pd

from bench.common import emit
from lib.linkage.inference import _mode_table  # the deterministic pass's own usual identity of a number

IDENTITY = ["forename_canon_hash", "surname_hash", "dob_hash", "home_district", "true_child_id"]

BANDS = [-1, 0, 0.5, 0.9, 1]  # best edge: none, below 0.5, the review band, at or above the threshold


def _parts(con) -> pd.DataFrame:
    """One row per (true child, predicted child): its records and whether an NHS-number group is among them."""
    return con.execute("""
        SELECT t.true_child_id, r.child_id, count(*) AS n, bool_or(r.by_nhs) AS nhs
        FROM record_child r JOIN encounters e USING (record_key)
        JOIN truth t USING (agency_type, source_record_id)
        WHERE NOT e.is_anonymous GROUP BY ALL""").df()


def missed(parts: pd.DataFrame) -> None:
    split = parts[parts.groupby("true_child_id")["child_id"].transform("size") > 1]
    rows = []
    for _, group in split.groupby("true_child_id"):
        sizes, nhs = group["n"].to_numpy(), group["nhs"].to_numpy()
        rows += [(int(sizes[i] * sizes[j]), int(nhs[i]) + int(nhs[j]), int(min(sizes[i], sizes[j])))
                 for i in range(len(sizes)) for j in range(i + 1, len(sizes))]
    pairs = pd.DataFrame(rows, columns=["pairs", "nhs_parts", "smaller"])
    emit("missed true pairs", int(pairs["pairs"].sum()), "pairs", split_children=int(split["true_child_id"].nunique()))
    by_size = pairs.groupby(pd.cut(pairs["smaller"], [0, 1, 2, 5, 10**9]), observed=True)["pairs"].sum()
    for smaller, total in by_size.items():
        emit("missed true pairs by the smaller part", int(total), "pairs", smaller_part=str(smaller))
    for sides, total in pairs.groupby("nhs_parts")["pairs"].sum().items():
        emit("missed true pairs by parts holding an NHS-number group", int(total), "pairs", parts_with_nhs=int(sides))


def singletons(con, parts: pd.DataFrame) -> None:
    main = parts.sort_values(["n", "child_id"]).groupby("true_child_id").tail(1)
    con.register("main_parts", main[["true_child_id", "child_id"]].rename(columns={"child_id": "main"}))
    alone = con.execute("""
        WITH parts AS (SELECT t.true_child_id, r.child_id, count(*) OVER (PARTITION BY r.child_id) AS n,
                              r.node_id, t.name_status, e.agency_type
                       FROM record_child r JOIN encounters e USING (record_key)
                       JOIN truth t USING (agency_type, source_record_id) WHERE NOT e.is_anonymous),
             alone AS (SELECT p.*, m.main FROM parts p JOIN main_parts m USING (true_child_id)
                       WHERE p.n = 1 AND p.child_id <> m.main),
             nodes AS (SELECT DISTINCT node_id, child_id FROM record_child WHERE child_id IS NOT NULL),
             best AS (SELECT a.node_id, max(e.match_probability) AS p FROM alone a
                      JOIN link_edges e ON a.node_id IN (e.node_l, e.node_r)
                      JOIN nodes o ON o.node_id = CASE WHEN e.node_l = a.node_id THEN e.node_r ELSE e.node_l END
                      WHERE o.child_id = a.main GROUP BY a.node_id)
        SELECT a.name_status, a.agency_type, coalesce(b.p, 0) AS best FROM alone a LEFT JOIN best b USING (node_id)
        """).df()
    alone["best_edge"] = pd.cut(alone["best"], BANDS).astype(str).replace({"(-1.0, 0.0]": "none"})
    for (status, band), count in alone.groupby(["name_status", "best_edge"], observed=True).size().items():
        emit("records split off alone", int(count), "records", name_status=str(status), best_edge=band)


def lone_numbers(con) -> None:
    con.execute("""CREATE OR REPLACE TEMP TABLE numbered AS
                   SELECT e.*, t.true_child_id, t.nhs_status AS truth_status, hash(e.nhs_hash) AS g
                   FROM encounters e JOIN truth t USING (agency_type, source_record_id)
                   WHERE NOT e.is_anonymous AND e.nhs_status = 'valid' AND e.nhs_hash IS NOT NULL""")
    _mode_table(con, "numbered", "g", IDENTITY, "modal")
    found = con.execute("""
        WITH usual AS (SELECT m.g, m.forename_canon_hash AS f, m.surname_hash AS s, m.dob_hash AS d,
                              m.home_district AS district, m.true_child_id AS child, c.n
                       FROM modal m JOIN (SELECT g, count(*) AS n FROM numbered GROUP BY g) c USING (g))
        SELECT n.truth_status, n.true_child_id = u.child AS one_child, count(DISTINCT n.record_key) AS records
        FROM numbered n JOIN usual own ON own.g = n.g AND own.n = 1
        JOIN usual u ON u.g <> n.g AND u.f = n.forename_canon_hash AND u.s = n.surname_hash
                     AND u.d = n.dob_hash AND u.district = n.home_district
        GROUP BY ALL ORDER BY ALL""").df()
    for row in found.itertuples():
        emit("lone numbers matching another group's identity and district", int(row.records), "records",
             truth_nhs_status=str(row.truth_status), truly_one_child=bool(row.one_child))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--truth", required=True)
    args = parser.parse_args()
    con = duckdb.connect(args.store, read_only=True)
    con.register("truth", pd.read_parquet(args.truth, columns=["agency_type", "source_record_id", "true_child_id",
                                                                "name_status", "nhs_status"]))
    parts = _parts(con)
    missed(parts)
    singletons(con, parts)
    lone_numbers(con)


if __name__ == "__main__":
    main()
