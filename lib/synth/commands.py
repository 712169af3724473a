"""`synth` sub-command: write a synthetic run to DIR/encounters.parquet and DIR/truth.parquet.

Truth goes to its own file so that nothing downstream can read it by accident: ingest and
linkage see only what an agency extract would hold; evaluate and the benchmarks read the truth.
"""
from __future__ import annotations

import json
import time
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("synth", help="generate synthetic encounters and their ground truth",
                              description="Generate synthetic agency encounters (identifiers in clear) "
                                          "and, separately, the ground truth behind them.")
    p.add_argument("--encounters", type=int, default=20_000, help="number of encounter records (default 20000)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same data")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--pfa", default=None,
                   help="only children living in these police force areas (code, or codes separated by commas)")
    p.add_argument("--region", default=None, help="only children living in this English region, or Wales")
    p.set_defaults(func=run)


def run(args) -> int:
    from lib.synth import SynthConfig, generate

    started = time.perf_counter()
    pfas = tuple(c.strip() for c in args.pfa.split(",") if c.strip()) if args.pfa else None
    config = SynthConfig(n_encounters=args.encounters, seed=args.seed, pfa_filter=pfas, region=args.region)
    encounters, truth = generate(config)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    encounters.to_parquet(out / "encounters.parquet", index=False)
    truth.to_parquet(out / "truth.parquet", index=False)
    print(json.dumps({
        "rows": int(len(encounters)),
        "children": int(truth["true_child_id"].nunique()),
        "seconds": round(time.perf_counter() - started, 3),
        "seed": args.seed,
        "encounters": str(out / "encounters.parquet"),
        "truth": str(out / "truth.parquet"),
    }))
    return 0
