"""Recall on imperfect names, before and after the Dice levels on the names' Bloom filters (issue 20).

Run: python -m bench.bench_recall [--size 20000] [--seed 11] [--rate 0.15] [--sets independent]
     [--nhs without] [--models before,joint,cond] [--large --pairs-per-node 15]

Two synthetic truth sets of `--size` encounters from lib.synth:
- "built-in": lib.synth as it is (its own typos, nicknames, aliases, false names);
- "independent": lib.synth with its typo rate set to zero, then names damaged by bench/corruption.py
  (keyboard, OCR, dropped/doubled/transposed letters, truncation, swapped order, split double-barrelled
  surnames) at `--rate` per name field;
each with NHS numbers as generated and with every NHS number removed. Each is linked on one store by each
model of `--models` (MODELS): "before" (the comparisons and blocking before issue 20, `LinkConfig(name_similarity=
False, name_blocking=False, dob_parts=False, joint_names=False, encounter_area=False)`), "dice" (the Dice levels
only), "after" (the Dice levels and the MinHash name blocking of lib.linkage.lsh), ..., "cond" (the default of
sessions 5-11), "area" (today's default, the default `--models` with "before": the before/after table of
docs/LINKAGE_PRIVACY.md), and scored pairwise against the truth (lib.linkage.evaluate). `--rate 0.75` is
the documented calibrated rate (docs/LINKAGE_PRIVACY.md): there the "before" model without NHS numbers has about
the recall and precision of the external benchmark the issue reports (0.89 at 0.997).
Prints one JSON line per run and a table: precision, recall, F1 and review queue (links in the review band, from
the trained review floor up to the threshold, joining two children: `run.cluster_with_floor`, as `link` does) per
100,000 records at the default match threshold (0.9), with the floor, how many queued links join one true child
("true") and the queue at the typed floor 0.5 used before session 6 ("@0.5");
"recall@eqP": the model's best recall at any threshold of THRESHOLDS whose precision is at least the "before"
model's at 0.9 (one reference for both) (the issue's "recall at equal precision"); seconds of the
deterministic and probabilistic passes (training and scoring).
Each model is trained and scored once, down to probability 0.1 (FLOOR), and clustered at every threshold with
lib.linkage.run.cluster, as `link` does (no reviewers' decisions).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench import corruption

KEY = b"benchmark-key-not-secret-0123456789abcdef"


def truth_sets(size: int, seed: int, rate: float) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    from lib.synth import AGENCY_TYPES, SynthConfig, generate

    builtin = generate(SynthConfig(n_encounters=size, seed=seed))
    clean, truth = generate(SynthConfig(n_encounters=size, seed=seed, typo_rate={a: 0.0 for a in AGENCY_TYPES}))
    damaged, _ = corruption.apply(clean, truth, rate=rate, seed=seed)
    return {"built-in": builtin, "independent": (damaged, truth)}


THRESHOLDS = [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.99, 0.995, 0.999]
FLOOR = 0.1  # pairs scored down to this probability (LinkConfig().review_floor_lowest), so every threshold of
#              THRESHOLDS can be clustered and its review floor trained as `link` trains it
TYPED_FLOOR = 0.5  # the review floor before it was trained (session 6), reported beside the trained one


#: The models compared: (Dice levels on the names' Bloom filters, MinHash blocking on them, the date of birth's
#: partial-agreement level). "before" is the model without any, "dice" the levels only, "after" levels and
#: blocking, "parts" all three, "dob" the partial-date level alone; "joint" is "parts" with a pair whose two
#: names both disagree weighed once (model.joint_name_levels, session 4's default); "cond" is "parts" with both
#: names weighed together wherever the forename disagrees (model.conditional_name_levels): the default of sessions
#: 5-11; "tf" is "cond" with the exact forename's term-frequency adjustment (the fifth item,
#: `LinkConfig.forename_tf`: measured in session 7 and not made the default).
#: "area" is "cond" with the place the records were met where the home postcode does not agree (the sixth item,
#: `LinkConfig.encounter_area`, model.area_levels): today's default since session 12.
MODELS = {"before": (False, False, False, False, False, False), "dice": (True, False, False, False, False, False),
          "after": (True, True, False, False, False, False), "parts": (True, True, True, False, False, False),
          "dob": (False, False, True, False, False, False), "joint": (True, True, True, "once", False, False),
          "cond": (True, True, True, True, False, False), "tf": (True, True, True, True, True, False),
          "area": (True, True, True, True, False, True)}


def expected_f1_threshold(probabilities, lowest: float = FLOOR) -> tuple[float, float]:
    """(threshold, F1) where the model's own expected pairwise F1 over its scored pairs is highest, on a 0.01
    grid from `lowest`: each pair is true with its match probability p, so linking the pairs at or above t
    expects TP = sum of p there and FP = count there - TP, and misses FN = sum of p below t (pairs not scored,
    below `lowest`, are not counted). A diagnostic of whether the match threshold could be trained this way
    (docs/LINKAGE_PRIVACY.md, session 7): it counts edges, not the record pairs clustering joins."""
    p = np.sort(np.asarray(probabilities, dtype=float))
    p = p[p >= lowest]
    above = np.concatenate([np.cumsum(p[::-1])[::-1], [0.0]])  # above[i]: sum of p over p[i:]
    best = (1.0, 0.0)
    for t in np.round(np.arange(lowest, 1.0, 0.01), 2):
        i = int(np.searchsorted(p, t, side="left"))
        linked, tp = len(p) - i, above[i]
        f1 = 2 * tp / (linked + above[0]) if linked + above[0] else 0.0
        if f1 > best[1]:
            best = (float(t), float(f1))
    return best


def sweep(con, truth: pd.DataFrame, similarity: bool, blocking: bool = False, dob_parts: bool = False,
          joint_names: bool | str = False, forename_tf: bool = False, encounter_area: bool = False
          ) -> tuple[list[dict], float]:
    """Pairwise scores at each match threshold of THRESHOLDS (review band: the trained floor up to it) from
    one training and one scoring (lib.linkage.run's passes and clustering, as `link` runs them), and the
    seconds the passes took."""
    from lib.linkage import run
    from lib.linkage.evaluate import pairwise_scores

    started, cpu = time.perf_counter(), time.process_time()  # CPU of every thread: less of the machine's load
    nodes, record_nodes = run.deterministic_pass(con)
    edges, _ = run.probabilistic_pass(nodes, run.LinkConfig(review_floor=FLOOR, name_similarity=similarity,
                                                              name_blocking=blocking, name_similarity_min_nodes=0,
                                                              dob_parts=dob_parts, joint_names=joint_names,
                                                              forename_tf=forename_tf,
                                                              encounter_area=encounter_area))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    keys = con.execute("""SELECT record_key, agency_type, source_record_id FROM encounters
                          WHERE NOT is_anonymous""").df()
    keys = keys.merge(truth[["agency_type", "source_record_id", "true_child_id"]],
                      on=["agency_type", "source_record_id"], validate="one_to_one")
    keys = keys.merge(record_nodes[["record_key", "node_id"]], on="record_key")
    model_threshold, model_f1 = expected_f1_threshold(edges["match_probability"])
    out = []
    no_decisions = pd.DataFrame(columns=["record_key_l", "record_key_r", "decision"])
    true_of = keys.groupby("node_id")["true_child_id"].agg(lambda c: c.mode().iloc[0])  # a node's majority child
    for threshold in THRESHOLDS:
        config, cluster_of, status = run.cluster_with_floor(nodes, edges, no_decisions, record_nodes,
                                                            run.LinkConfig(match_threshold=threshold))
        scores = pairwise_scores(keys["node_id"].map(cluster_of), keys["true_child_id"])
        queue = status["status"] == "review"
        typed = run.LinkConfig(match_threshold=threshold, review_floor=min(TYPED_FLOOR, threshold))
        typed_queue = int(run.cluster(nodes, edges[edges["match_probability"] >= typed.review_floor], no_decisions,
                                      record_nodes, typed)[1]["status"].eq("review").sum())
        band = status[queue]
        queue_true = int((band["unique_id_l"].map(true_of) == band["unique_id_r"].map(true_of)).sum())
        scores.update(threshold=threshold, review_floor=config.review_floor, review_queue=int(queue.sum()),
                      review_queue_true=queue_true, review_per_100k=round(int(queue.sum()) * 100_000 / len(keys), 1),
                      review_per_100k_typed=round(typed_queue * 100_000 / len(keys), 1), records_evaluated=len(keys),
                      expected_f1_threshold=model_threshold, expected_f1=round(model_f1, 5),
                      passes_cpu_seconds=round(cpu, 1), edges_kept=len(edges))
        out.append(scores)
    return out, seconds


def measure(encounters: pd.DataFrame, truth: pd.DataFrame, *, nhs: bool, store_dir: Path,
            models: tuple[str, ...] = ("before", "after")) -> dict[str, dict]:
    """{model: scores} for each of `models` (keys of MODELS; "before" always) of one truth set on one store, at the
    default match threshold, with "recall_at_equal_precision": the model's best recall at any threshold of
    THRESHOLDS whose precision is at least that of "before" at the default threshold (the same reference for
    both)."""
    from lib.linkage.run import LinkConfig
    from lib.records import ingest, store

    if not nhs:
        encounters = encounters.assign(nhs_number=None)
    con = store.connect(store_dir / f"recall-{nhs}.duckdb")
    try:
        ingest.commit(con, ingest.prepare_frame(encounters, "truth.parquet", key=KEY))
        curves = {name: sweep(con, truth, *MODELS[name]) for name in dict.fromkeys(("before", *models))}
    finally:
        con.close()
    default = LinkConfig().match_threshold
    reference = next(s for s in curves["before"][0] if s["threshold"] == default)["precision"]
    out = {}
    for name, (curve, seconds) in curves.items():
        at = next(s for s in curve if s["threshold"] == default)
        eligible = [s for s in curve if s["precision"] >= reference]
        best = max(eligible, key=lambda s: s["recall"]) if eligible else None
        out[name] = {**at, "seconds": round(seconds, 1),
                     "recall_at_equal_precision": best["recall"] if best else None,
                     "threshold_at_equal_precision": best["threshold"] if best else None,
                     "curve": [{k: s[k] for k in ("threshold", "precision", "recall", "f1", "review_floor",
                                                  "review_per_100k", "review_per_100k_typed")} for s in curve]}
    return out


def candidate_pairs(encounters: pd.DataFrame, *, nhs: bool, store_dir: Path) -> dict:
    """Pairs Splink's blocking rules propose (exact counts from splink.blocking_analysis), without and with
    the name blocking, and the seconds the MinHash band keys took."""
    from splink import DuckDBAPI
    from splink.blocking_analysis import count_comparisons_from_blocking_rules

    from lib.linkage import lsh, model, run
    from lib.records import ingest, store

    if not nhs:
        encounters = encounters.assign(nhs_number=None)
    con = store.connect(store_dir / f"pairs-{nhs}.duckdb")
    try:
        ingest.commit(con, ingest.prepare_frame(encounters, "truth.parquet", key=KEY))
        nodes, _ = run.deterministic_pass(con)
    finally:
        con.close()
    frame = nodes[["unique_id", *model.FEATURES]]
    started = time.perf_counter()
    frame = lsh.with_keys(frame)
    seconds = time.perf_counter() - started
    out = {"nodes": len(frame), "band_key_seconds": round(seconds, 2)}
    for name, rules in (("pairs_before", model.blocking_rules()), ("pairs_after", model.blocking_rules(True))):
        counts = count_comparisons_from_blocking_rules(DuckDBAPI().register(frame), blocking_rules=rules,
                                                       link_type="dedupe_only", record_sample_proportion=1.0)
        out[name] = int(counts[-1]["cumulative_comparison_count"])
    return out


def table(rows: list[dict]) -> str:
    head = (f"{'truth set':<12} {'NHS':<8} {'model':<7} {'precision':>9} {'recall':>7} {'F1':>7} {'review/100k':>11} "
            f"{'floor':>5} {'true':>5} {'@0.5':>7} {'recall@eqP':>10} {'s':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        eq = "-" if r["recall_at_equal_precision"] is None else (
            f"{r['recall_at_equal_precision']:.4f}@{r['threshold_at_equal_precision']}")
        lines.append(f"{r['truth_set']:<12} {r['nhs']:<8} {r['model']:<7} {r['precision']:>9.4f} {r['recall']:>7.4f} "
                     f"{r['f1']:>7.4f} {r['review_per_100k']:>11.1f} {r['review_floor']:>5.2f} "
                     f"{r['review_queue_true']:>5} {r['review_per_100k_typed']:>7.1f} {eq:>10} {r['seconds']:>6.1f}")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--rate", type=float, default=0.15, help="share of each name field damaged")
    parser.add_argument("--sets", default="built-in,independent", help="truth sets to run, comma-separated")
    parser.add_argument("--nhs", default="with,without", help="with and/or without NHS numbers")
    parser.add_argument("--models", default="before,area", help=f"of {', '.join(MODELS)}")
    parser.add_argument("--pairs", action="store_true",
                        help="only count candidate pairs without and with the name blocking (no linkage)")
    parser.add_argument("--large", action="store_true",
                        help="allow more than 100,000 encounters (a quiet machine: 1,000,000 takes about 6 minutes)")
    parser.add_argument("--pairs-per-node", type=float, default=None,
                        help="lib.linkage.lsh.PAIRS_PER_NODE for this run (default: the library's own)")
    args = parser.parse_args(argv)
    models = tuple(m for m in args.models.split(",") if m)
    if not set(models) <= set(MODELS):
        parser.error(f"--models: choose from {', '.join(MODELS)}")
    if args.size > 100_000 and not args.large:
        parser.error("at most 100,000 records unless --large (each 1,000,000 holds about 4 GB and both cores)")
    if args.pairs_per_node is not None:  # the name blocking's trade at national scale (docs/LINKAGE_PRIVACY.md)
        from lib.linkage import lsh

        lsh.PAIRS_PER_NODE = args.pairs_per_node
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for set_name, (encounters, truth) in truth_sets(args.size, args.seed, args.rate).items():
            if set_name not in args.sets.split(","):
                continue
            for nhs in [n == "with" for n in args.nhs.split(",")]:
                folder = Path(tmp) / f"{set_name}-{nhs}"
                folder.mkdir()
                if args.pairs:
                    print(json.dumps({"truth_set": set_name, "nhs": "with" if nhs else "without", "size": args.size,
                                      **candidate_pairs(encounters, nhs=nhs, store_dir=folder)}), flush=True)
                    continue
                for model_name, scores in measure(encounters, truth, nhs=nhs, store_dir=folder, models=models).items():
                    row = {"truth_set": set_name, "nhs": "with" if nhs else "without", "model": model_name,
                           "size": args.size, **scores}
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    if rows:
        print(table(rows))


if __name__ == "__main__":
    main()
