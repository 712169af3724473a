"""`link` and `evaluate` sub-commands (JSON on stdout; progress on stderr)."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    link = sub.add_parser("link", help="link encounters into children (NHS number, then Splink)")
    link.add_argument("--db", type=Path, default=None, help="DuckDB store (default $JOINEDUP_DB or data/)")
    link.add_argument("--threshold", type=float, default=None, help="match probability that links (default 0.9)")
    link.add_argument("--review-floor", type=float, default=None, help="lowest probability queued for review")
    link.set_defaults(func=_link)
    evaluate = sub.add_parser("evaluate", help="linkage precision/recall/F1 against a synthetic truth file")
    evaluate.add_argument("--db", type=Path, default=None)
    evaluate.add_argument("--truth", type=Path, required=True, help="truth.parquet from `synth`")
    evaluate.set_defaults(func=_evaluate)


def _connect(db):
    from lib.records import store

    return store.connect(db) if db else store.connect()


def _link(args) -> int:
    from dataclasses import replace

    from lib.linkage.run import LinkConfig, link

    config = LinkConfig()
    if args.threshold is not None:
        config = replace(config, match_threshold=args.threshold)
    if args.review_floor is not None:
        config = replace(config, review_floor=args.review_floor)
    con = _connect(args.db)
    summary = link(con, config, progress=lambda f, m: print(f"[{f:4.0%}] {m}", file=sys.stderr))
    print(json.dumps(summary))
    return 0


def _evaluate(args) -> int:
    import pandas as pd

    from lib.linkage.evaluate import evaluate

    print(json.dumps(evaluate(_connect(args.db), pd.read_parquet(args.truth))))
    return 0
