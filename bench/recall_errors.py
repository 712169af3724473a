"""Error analysis of one linkage model at the default threshold (issue 20): which true pairs are missed and
which false pairs are joined, by comparison-vector pattern, and what the review queue holds.

Run: python -m bench.recall_errors [--size 100000] [--set built-in] [--nhs with] [--model joint] [--rate 0.75]

Pairs of nodes (one per NHS-number group or unnumbered record), each labelled by its majority true child.
"missed": true pairs of nodes in two different clusters at the threshold, by the pattern of the scored edge
between them, or "not scored" when blocking never proposed them or the model scored them below SCORED (0.1);
"false": edges at or above the threshold joining two different true children, by pattern; "queue": edges in
the review band (status "review"), true or false, by pattern. Patterns are the level labels of each comparison.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path

import pandas as pd

from bench import bench_recall

SCORED = 0.1  # pairs are scored down to this probability (LinkConfig().review_floor_lowest)
COMPARISONS = ["forename", "surname", "date_of_birth", "sex", "home_postcode"]


def _labels(model_json: dict) -> dict[str, dict[int, str]]:
    out = {}
    for comparison in model_json["comparisons"]:
        levels = comparison["comparison_levels"]
        values = {}
        k = sum(1 for lvl in levels if not lvl.get("is_null_level"))
        for lvl in levels:
            if lvl.get("is_null_level"):
                continue
            k -= 1
            values[k] = lvl.get("label_for_charts") or lvl.get("sql_condition")
        values[-1] = "null"
        out[comparison["output_column_name"]] = values
    return out


def _unscored(nodes: pd.DataFrame, pairs: list[tuple[str, str]], name_lsh: bool) -> Counter:
    """Missed pairs that have no edge at or above SCORED: whether any blocking rule proposes them ("scored < SCORED")
    or none does ("never proposed"), the latter by which of date of birth, postcode district, surname and
    forename (exact hash) agree."""
    import duckdb

    from lib.linkage import lsh, model

    frame = nodes[["unique_id", *model.FEATURES]]
    if name_lsh:
        frame = lsh.with_keys(frame)
    con = duckdb.connect()
    con.register("n", frame)
    con.register("p", pd.DataFrame(pairs, columns=["a", "b"]))
    rules = []
    for rule in model.blocking_rules(name_lsh):
        if isinstance(rule, str):
            rules.append(rule)
        elif name_lsh and lsh.COLUMN in str(rule.get_blocking_rule("duckdb").blocking_rule_sql):
            rules.append(f"len(list_intersect(l.{lsh.COLUMN}, r.{lsh.COLUMN})) > 0")
        else:
            rules.append(rule.get_blocking_rule("duckdb").blocking_rule_sql)
    proposed = " OR ".join(f"coalesce({r}, false)" for r in rules)
    rows = con.execute(f"""SELECT {proposed} AS proposed,
                                  coalesce(l.dob_hash = r.dob_hash, false) AS dob,
                                  coalesce(l.home_district = r.home_district, false) AS district,
                                  coalesce(l.surname_hash = r.surname_hash, false) AS surname,
                                  coalesce(l.forename_hash = r.forename_hash, false) AS forename
                           FROM p JOIN n l ON l.unique_id = p.a JOIN n r ON r.unique_id = p.b""").fetchall()
    con.close()
    out = Counter()
    for proposed_, *agree in rows:
        if proposed_:
            out[f"proposed, scored < {SCORED}"] += 1
        else:
            same = [f for f, a in zip(("dob", "district", "surname", "forename"), agree) if a]
            out["never proposed; same: " + (", ".join(same) or "none of dob, district, names")] += 1
    return out


def analyse(con, truth: pd.DataFrame, model_name: str, threshold: float = 0.9) -> dict:
    from lib.linkage import run

    similarity, blocking, dob_parts, joint, forename_tf, area = bench_recall.MODELS[model_name]
    nodes, record_nodes = run.deterministic_pass(con)
    config = run.LinkConfig(review_floor=SCORED, name_similarity=similarity, name_blocking=blocking,
                            name_similarity_min_nodes=0, dob_parts=dob_parts, joint_names=joint,
                            forename_tf=forename_tf, encounter_area=area)
    edges, model_json = run.probabilistic_pass(nodes, config)
    keys = con.execute("SELECT record_key, agency_type, source_record_id FROM encounters WHERE NOT is_anonymous").df()
    keys = keys.merge(truth[["agency_type", "source_record_id", "true_child_id"]],
                      on=["agency_type", "source_record_id"]).merge(record_nodes[["record_key", "node_id"]],
                                                                    on="record_key")
    true_of = keys.groupby("node_id")["true_child_id"].agg(lambda s: s.mode().iloc[0])
    size_of = keys.groupby("node_id").size()
    cfg, cluster_of, status = run.cluster_with_floor(  # the trained floor, as `link` does
        nodes, edges, pd.DataFrame(columns=["record_key_l", "record_key_r", "decision"]), record_nodes,
        run.LinkConfig(match_threshold=threshold))
    labels = _labels(model_json)

    def pattern(row) -> str:
        return " | ".join(labels[c].get(int(row[f"gamma_{c}"]), str(row[f"gamma_{c}"])) for c in COMPARISONS)

    edges = edges.assign(true_l=edges["unique_id_l"].map(true_of), true_r=edges["unique_id_r"].map(true_of))
    edges["is_true"] = edges["true_l"] == edges["true_r"]
    edges["pairs"] = edges["unique_id_l"].map(size_of) * edges["unique_id_r"].map(size_of)
    edges["pattern"] = edges.apply(pattern, axis=1)
    false = edges[(edges["match_probability"] >= threshold) & ~edges["is_true"]]
    queue = status[status["status"] == "review"].merge(edges[["unique_id_l", "unique_id_r", "pattern", "is_true"]],
                                                       on=["unique_id_l", "unique_id_r"])
    # missed true node pairs: nodes of one true child in different clusters
    by_child = pd.DataFrame({"node": true_of.index, "child": true_of.to_numpy()})
    by_child["cluster"] = by_child["node"].map(cluster_of)
    multi = by_child[by_child.groupby("child")["cluster"].transform("nunique") > 1]
    pairs = multi.merge(multi, on="child")
    pairs = pairs[(pairs["node_x"] < pairs["node_y"]) & (pairs["cluster_x"] != pairs["cluster_y"])]
    scored = edges.set_index(pd.Index(list(zip(edges["unique_id_l"], edges["unique_id_r"]))))
    missed, unscored = Counter(), []
    for a, b in zip(pairs["node_x"], pairs["node_y"]):
        key = (a, b) if (a, b) in scored.index else (b, a)
        if key in scored.index:
            row = scored.loc[key]
            p = float(row["match_probability"])
            missed[(row["pattern"], f"{cfg.review_floor}-{threshold}" if p >= cfg.review_floor
                    else f"{SCORED}-{cfg.review_floor}")] += 1
        else:
            unscored.append((a, b))
    for kind, n in _unscored(nodes, unscored, blocking).items():
        missed[(kind, "")] += n
    return {"model": model_name, "nodes": len(nodes), "records": len(keys), "review_floor": cfg.review_floor,
            "missed_node_pairs": sum(missed.values()),
            "missed": [{"pattern": p, "band": b, "n": n} for (p, b), n in missed.most_common(25)],
            "false_edges": len(false),
            "false": [{"pattern": p, "n": int(n)} for p, n in false["pattern"].value_counts().head(20).items()],
            "queue": len(queue), "queue_true": int(queue["is_true"].sum()),
            "queue_patterns": [{"pattern": p, "n": int(n),
                                "true": int(queue.loc[queue["pattern"] == p, "is_true"].sum())}
                               for p, n in queue["pattern"].value_counts().head(25).items()],
            "band_edges": {f"{lo}-{hi}": {"true": int(((edges["match_probability"] >= lo)
                                                      & (edges["match_probability"] < hi) & edges["is_true"]).sum()),
                                          "false": int(((edges["match_probability"] >= lo)
                                                       & (edges["match_probability"] < hi) & ~edges["is_true"]).sum())}
                           for lo, hi in [(0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (0.6, 0.7),
                                          (0.7, 0.8), (0.8, 0.9), (0.9, 0.95), (0.95, 1.01)]}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--rate", type=float, default=0.75)
    parser.add_argument("--set", default="built-in")
    parser.add_argument("--nhs", default="with")
    parser.add_argument("--model", default="joint")
    args = parser.parse_args(argv)
    from lib.records import ingest, store

    encounters, truth = bench_recall.truth_sets(args.size, args.seed, args.rate)[args.set]
    if args.nhs == "without":
        encounters = encounters.assign(nhs_number=None)
    with tempfile.TemporaryDirectory() as tmp:
        con = store.connect(Path(tmp) / "errors.duckdb")
        ingest.commit(con, ingest.prepare_frame(encounters, "truth.parquet", key=bench_recall.KEY))
        out = analyse(con, truth, args.model)
        con.close()
    print(json.dumps({"size": args.size, "set": args.set, "nhs": args.nhs, **out}, indent=1))


if __name__ == "__main__":
    main()
