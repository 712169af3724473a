"""Candidate pairs the name blocking adds beyond today's blocking rules, and how many join one true child, for
each setting of lib.linkage.lsh.ROWS (docs/LINKAGE_PRIVACY.md, session 7).

Run: python -m bench.name_block_pairs [--size 200000] [--seed 11] [--set built-in|independent] [--nhs with|without]
     [--rows 1,1 2,1 ...]

One truth set of bench.bench_recall (as bench.recall_sweep makes it), the deterministic pass as `link` runs it,
then for each `--rows` (MinHashes per name in a band key: date-of-birth block, district-with-sex block) the pairs of
nodes sharing a band key (lib.linkage.lsh.band_keys) that none of model.blocking_rules() proposes (Splink scores
a pair once, from the first rule that proposes it, so these are the pairs the name blocking adds), and those whose
two nodes' majority true child is the same. Counts no scores: what the model makes of the pairs is
bench.recall_sweep's (`--lsh-rows`).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd

from bench import bench_recall, recall_sweep
from lib.linkage import lsh, model, run
from lib.records import ingest, store


def _nodes(args) -> pd.DataFrame:
    """The nodes (unique_id, model.FEATURES) and each node's majority true child."""
    encounters, truth = recall_sweep.truth_set(args.set, args.size, args.seed, args.rate)
    if args.nhs == "without":
        encounters = encounters.assign(nhs_number=None)
    with tempfile.TemporaryDirectory() as tmp:
        con = store.connect(Path(tmp) / "pairs.duckdb")
        try:
            ingest.commit(con, ingest.prepare_frame(encounters, "truth.parquet", key=bench_recall.KEY))
            nodes, record_nodes = run.deterministic_pass(con)
            keys = con.execute("SELECT record_key, agency_type, source_record_id FROM encounters "
                               "WHERE NOT is_anonymous").df()
        finally:
            con.close()
    keys = keys.merge(truth[["agency_type", "source_record_id", "true_child_id"]],
                      on=["agency_type", "source_record_id"]).merge(record_nodes[["record_key", "node_id"]],
                                                                    on="record_key")
    frame = nodes[["unique_id", *model.FEATURES]].copy()
    frame["child"] = frame["unique_id"].map(keys.groupby("node_id")["true_child_id"].agg(lambda c: c.mode().iloc[0]))
    return frame


def _rule_sql(rule) -> str:
    return rule if isinstance(rule, str) else rule.get_blocking_rule("duckdb").blocking_rule_sql


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--set", default="built-in", choices=["built-in", "independent"])
    parser.add_argument("--rate", type=float, default=0.75)
    parser.add_argument("--nhs", default="with", choices=["with", "without"])
    parser.add_argument("--rows", nargs="+", default=["1,1", "2,1"])
    args = parser.parse_args(argv)
    frame = _nodes(args)
    db = duckdb.connect()
    db.register("f", frame.drop(columns=["forename_bloom", "surname_bloom"]))
    joins = [f"SELECT l.unique_id AS a, r.unique_id AS b FROM f l JOIN f r ON ({_rule_sql(rule)}) "
             "AND l.unique_id < r.unique_id" for rule in model.blocking_rules()]
    db.execute("CREATE TABLE base AS " + " UNION ".join(joins))
    base = db.execute("SELECT count(*) FROM base").fetchall()[0][0]
    print(json.dumps({"set": args.set, "nhs": args.nhs, "size": args.size, "nodes": len(frame),
                      "pairs_todays_rules": base}), flush=True)
    for rows in args.rows:
        lsh.ROWS = tuple(int(r) for r in rows.split(","))
        started = time.perf_counter()
        keys = frame[["unique_id"]].assign(k=lsh.band_keys(frame)).explode("k").dropna(subset=["k"])
        db.register("k", keys.astype({"k": "int64"}))
        db.execute("""CREATE OR REPLACE TABLE named AS SELECT DISTINCT l.unique_id AS a, r.unique_id AS b
                      FROM k l JOIN k r ON l.k = r.k AND l.unique_id < r.unique_id""")
        added, true = db.execute("""SELECT count(*), count(*) FILTER (WHERE fa.child = fb.child) FROM named p
                                    JOIN f fa ON fa.unique_id = p.a JOIN f fb ON fb.unique_id = p.b
                                    WHERE NOT EXISTS (SELECT 1 FROM base WHERE base.a = p.a AND base.b = p.b)
                                 """).fetchall()[0]
        print(json.dumps({"lsh_rows": rows, "pairs_added": added, "true_pairs_added": true,
                          "pairs_total": base + added, "seconds": round(time.perf_counter() - started, 1)}),
              flush=True)


if __name__ == "__main__":
    main()
