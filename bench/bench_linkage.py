"""Linkage benchmark: end-to-end time, peak memory and F1, against plain Splink deduplication.

Run: python -m bench.bench_linkage [--sizes 100000,1000000] [--no-baseline]
Each size runs in its own subprocess so peak memory is that size's own. Prints JSON lines. `--no-baseline`
skips the plain-Splink comparison (at 1M it takes longer than our own link). Figures: link time (the link as the
app runs it, its save building every stored cube and measure; each stage's seconds too), peak memory, F1, the review
queue (per 100,000 records as in bench.bench_recall) and the children.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import emit, peak_rss_mb

KEY = b"benchmark-key-not-secret-0123456789abcdef"


def plain_splink(con, seed: int = 42) -> tuple[dict, float]:
    """Baseline a user might pick instead: Splink over every named record, NHS number as one more
    comparison, no deterministic pass; clustered at the same threshold."""
    import duckdb
    import splink.comparison_library as cl
    from splink import Linker, SettingsCreator, block_on
    from splink.backends.duckdb import DuckDBAPI

    from lib.linkage import model
    from lib.linkage.run import LinkConfig

    started = time.perf_counter()
    frame = con.execute(f"""SELECT record_key AS unique_id,
                                   CASE WHEN nhs_status = 'valid' THEN nhs_hash END AS nhs_hash,
                            {', '.join(model.FEATURES)} FROM encounters WHERE NOT is_anonymous""").df()
    db_api = DuckDBAPI(connection=duckdb.connect())
    settings = SettingsCreator(link_type="dedupe_only", comparisons=[*model.comparisons(), cl.ExactMatch("nhs_hash")],
                               blocking_rules_to_generate_predictions=[*model.blocking_rules(), block_on("nhs_hash")])
    linker = Linker(db_api.register(frame, dataset_display_name="encounters"), settings, log_level=40)
    model.train(linker, seed=seed)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("nhs_hash"),
                                                                      estimate_without_term_frequencies=True)
    predictions = linker.inference.predict(threshold_match_probability=LinkConfig().match_threshold)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=LinkConfig().match_threshold).as_pandas_dataframe()
    return dict(zip(clusters["unique_id"], clusters["cluster_id"])), time.perf_counter() - started


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


#: The stages of `link` timed by `stage_timer`: (module, function), in the order they run. Nested ones
#: (Dice cut-points, EM) are inside training, the pairs found before Splink (pair_keys) inside scoring, and the stored
#: build (the record-level aggregates, the protected cube, the pages' stored measures, the stored results' check: the
#: Scenario's simulation is stored by the ingest before, once per key, and kept) inside the save; their seconds are
#: part of it. The Across measures (`across_rows`) run beside the save's transaction on a thread of their own, so
#: their seconds overlap the save's other stages rather than add to them.
STAGES = [("lib.linkage.run", "deterministic_pass"), ("lib.linkage.lsh", "with_keys"),
          ("lib.linkage.dice", "thresholds"), ("lib.linkage.training", "train_model"),
          ("lib.linkage.inference", "score"), ("lib.linkage.band_pairs", "pair_keys"),
          ("lib.linkage.inference", "kept_edges"),
          ("lib.linkage.run", "cluster"), ("lib.linkage.clustering", "outcomes"), ("lib.linkage.run", "_save"),
          ("lib.records.aggregates", "rebuild"), ("lib.disclosure.service", "protected_cube"),
          ("lib.measures.aggregates", "build_views"), ("lib.measures.aggregates", "across_rows"),
          ("lib.measures.aggregates", "refresh_results")]


@contextlib.contextmanager
def stage_timer():
    """Wraps each function of STAGES (where the caller looks it up) to record its seconds and the highest
    resident memory of the process while it ran (sampled every 0.1 s); yields the {stage: figures} dict."""
    import importlib

    out: dict[str, dict] = {}
    saved = []
    current = {"peak": 0.0}
    stop = threading.Event()

    def sample():
        while not stop.wait(0.1):
            current["peak"] = max(current["peak"], _rss_mb())

    def wrap(name, fn):
        def timed(*args, **kwargs):
            start_peak, current["peak"] = current["peak"], _rss_mb()
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds = time.perf_counter() - started
                entry = out.setdefault(name, {"seconds": 0.0, "peak_rss_mb": 0.0, "calls": 0})
                entry["seconds"] = round(entry["seconds"] + seconds, 2)
                entry["peak_rss_mb"] = round(max(entry["peak_rss_mb"], current["peak"], _rss_mb()), 0)
                entry["calls"] += 1
                current["peak"] = max(start_peak, current["peak"])
        return timed

    for module_name, fn_name in STAGES:
        module = importlib.import_module(module_name)
        original = getattr(module, fn_name)
        saved.append((module, fn_name, original))
        setattr(module, fn_name, wrap(fn_name, original))
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join()
        for module, fn_name, original in saved:
            setattr(module, fn_name, original)


def one_size(size: int, seed: int, baseline: bool = True, **config) -> None:
    import lib.measures.aggregates  # noqa: F401  (the save builds the stored cubes and measures, as in the app,
    import lib.scenario.stored  # noqa: F401       lib.cli and bench.run_all: the link is timed as they run it)
    from lib.linkage.evaluate import evaluate, pairwise_scores
    from lib.linkage.run import LinkConfig, link
    from lib.records import ingest, store
    from lib.synth import SynthConfig, generate

    encounters, truth = generate(SynthConfig(n_encounters=size, seed=seed))
    with tempfile.TemporaryDirectory() as tmp:
        con = store.connect(Path(tmp) / "bench.duckdb")
        ingest.commit(con, ingest.prepare_frame(encounters, "synthetic.parquet", key=KEY))
        del encounters
        before = peak_rss_mb()
        started = time.perf_counter()
        with stage_timer() as stages:
            summary = link(con, LinkConfig(**config))
        seconds = time.perf_counter() - started
        emit("link end to end", round(seconds, 2), "s", size=size, target="<= 30 s at 1,000,000 (issue 19)",
             config=config, review_floor=summary["review_floor"])
        for name, figures in stages.items():
            emit(f"link stage {name}", figures["seconds"], "s", size=size, peak_rss_mb=figures["peak_rss_mb"],
                 calls=figures["calls"])
        emit("link peak memory (process)", peak_rss_mb(), "MB", size=size, before_link=before)
        scores = evaluate(con, truth)
        emit("link F1", scores["f1"], "", size=size, precision=scores["precision"], recall=scores["recall"])
        emit("multi-agency children estimated vs true", scores["multi_agency_relative_error"], "relative error",
             size=size, estimated=scores["multi_agency_children_estimated"],
             true=scores["multi_agency_children_true"])
        emit("children", summary["children"], "", size=size, nhs_conflicts=summary["nhs_conflicts_flagged"],
             review_queue=summary["review_queue"])
        named = summary["records"] - summary["anonymous_records"]
        emit("review queue per 100,000 records", round(summary["review_queue"] * 100_000 / named, 1), "",
             size=size, review_queue=summary["review_queue"], records=named, target="<= 1,492 (100,000, 30 Nov)")
        if not baseline:
            con.close()
            return

        clusters, baseline_seconds = plain_splink(con, seed)
        keys = con.execute("""SELECT record_key, agency_type, source_record_id FROM encounters
                              WHERE NOT is_anonymous""").df()
        keys["cluster"] = keys["record_key"].map(clusters)
        merged = keys.merge(truth, on=["agency_type", "source_record_id"])
        baseline = pairwise_scores(merged["cluster"], merged["true_child_id"])
        emit("baseline plain Splink time", round(baseline_seconds, 2), "s", size=size)
        emit("baseline plain Splink F1", baseline["f1"], "", size=size, precision=baseline["precision"],
             recall=baseline["recall"])
        emit("speed ratio baseline/ours", round(baseline_seconds / seconds, 2), "x", size=size)
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-baseline", action="store_true", help="skip the plain-Splink comparison")
    parser.add_argument("--memory-limit", default=None, help="LinkConfig.memory_limit, e.g. 4GB (default: its own)")
    parser.add_argument("--train-sample", type=int, default=None, help="LinkConfig.train_sample (default: its own)")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    config = {k: v for k, v in (("memory_limit", args.memory_limit), ("train_sample", args.train_sample))
              if v is not None}
    if args.one:
        one_size(args.one, args.seed, baseline=not args.no_baseline, **config)
        return
    for size in (int(s) for s in args.sizes.split(",")):
        options = [f"--{k.replace('_', '-')}={v}" for k, v in config.items()]
        result = subprocess.run([sys.executable, "-m", "bench.bench_linkage", "--one", str(size),
                                 "--seed", str(args.seed), *(["--no-baseline"] if args.no_baseline else []), *options],
                                capture_output=True, text=True)
        for line in result.stdout.splitlines():
            if line.startswith("{"):
                print(line, flush=True)
        if result.returncode:
            print(json.dumps({"figure": "error", "value": result.stderr[-2000:], "unit": "", "size": size}))


if __name__ == "__main__":
    main()
