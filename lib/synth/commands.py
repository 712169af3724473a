"""`synth` sub-command: write a synthetic run to DIR/encounters.parquet and DIR/truth.parquet.

Truth goes to its own file so that nothing downstream can read it by accident: ingest and
linkage see only what an agency extract would hold; evaluate and the benchmarks read the truth.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from lib.synth.config import DEFAULT_ENCOUNTERS


def register(subparsers) -> None:
    p = subparsers.add_parser("synth", help="generate synthetic encounters and their ground truth",
                              description="Generate synthetic agency encounters (identifiers in clear) "
                                          "and, separately, the ground truth behind them.")
    p.add_argument("--encounters", type=int, default=None,
                   help=f"number of encounter records (default: the default dataset's size, {DEFAULT_ENCOUNTERS:,})")
    p.add_argument("--uncalibrated", action="store_true",
                   help="homes by postcodes, not calibrated to the published DfE C3 counts and child population")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same data")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--pfa", default=None,
                   help="only children living in these police force areas (code, or codes separated by commas)")
    p.add_argument("--region", default=None, help="only children living in this English region, or Wales")
    p.set_defaults(func=run)


def config_from(args):
    """The run's SynthConfig: without --encounters, the default dataset's size; calibrated unless --uncalibrated."""
    from lib.synth import SynthConfig

    pfas = tuple(c.strip() for c in args.pfa.split(",") if c.strip()) if args.pfa else None
    n = DEFAULT_ENCOUNTERS if args.encounters is None else args.encounters
    return SynthConfig(n_encounters=n, seed=args.seed, pfa_filter=pfas, region=args.region,
                       calibrate=not args.uncalibrated)


def run(args) -> int:
    from lib.synth import generate

    started = time.perf_counter()
    config = config_from(args)
    encounters, truth = generate(config)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    encounters.to_parquet(out / "encounters.parquet", index=False)
    truth.to_parquet(out / "truth.parquet", index=False)
    print(json.dumps({
        "rows": len(encounters),
        "children": int(truth["true_child_id"].nunique()),
        "seconds": round(time.perf_counter() - started, 3),
        "seed": args.seed,
        "encounters": str(out / "encounters.parquet"),
        "truth": str(out / "truth.parquet"),
    }))
    return 0
