"""`scenario` sub-command: what if every agency recorded the child's NHS number? (JSON; progress on stderr)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from lib.geo import layers


def register(sub) -> None:
    p = sub.add_parser("scenario", help="NHS-number scenario explorer: re-run the synthetic population under "
                                        "identifier-capture levers (or model it from a real store's completeness)")
    p.add_argument("--db", type=Path, default=None, help="DuckDB store (default $JOINEDUP_DB or data/); never written")
    p.add_argument("--capture", default="", help="agency=share,... e.g. police=1.0,children_social_care=0.9 "
                                                 "(all=1.0 sets every agency); unset agencies keep today's share")
    p.add_argument("--area-capture", default="", help="agency:code=share,... e.g. police:E23000005=1.0")
    p.add_argument("--wrong-numbers", type=float, default=None, help="share of recorded numbers that are wrong")
    p.add_argument("--false-names", default="",
                   help="agency=share,... share of identified encounters under a false name")
    p.add_argument("--anonymous", type=float, default=None, help="share of sexual-health contacts made anonymously")
    p.add_argument("--opt-out", type=float, default=0.0, help="share of children whose parents opt out")
    p.add_argument("--mode", choices=("auto", "simulation", "model"), default="auto",
                   help="auto: simulation when the store holds the default synthetic dataset (or nothing), "
                        "else the model from measured completeness")
    p.add_argument("--layer", choices=list(layers.SCENARIO_LAYERS), default="utla", help="areas of the gain table")
    p.add_argument("--curve", default="0,0.2,0.4,0.6,0.8,1", help="capture rates of the curve ('' for none)")
    p.add_argument("--curve-mode", choices=("deterministic", "full"), default="deterministic",
                   help="link each curve point by the NHS-number pass only (fast) or fully")
    p.add_argument("--encounters", type=int, default=None, help="synthetic population size (default: the default "
                                                                 "dataset's)")
    p.add_argument("--seed", type=int, default=None, help="synthetic population seed (default: the default dataset's)")
    p.add_argument("--role", default="lead", help="lead, analyst or commissioner: the area table is protected "
                                                  "for aggregate-only roles")
    p.add_argument("--out", type=Path, default=None, help="write the full result (JSON) here")
    p.set_defaults(func=_scenario)


def _pairs(text: str) -> dict:
    from lib.scenario.capture import parse_capture

    return parse_capture(text)


def _area_pairs(text: str) -> dict:
    out: dict[str, dict[str, float]] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        left, _, value = part.partition("=")
        agency, _, code = left.partition(":")
        if not (agency and code and value):
            raise ValueError(f"area capture {part!r} is not agency:code=share")
        out.setdefault(agency.strip(), {})[code.strip()] = float(value)
    return out


def levers_from_args(args):
    from lib.scenario.capture import Levers

    return Levers(capture=_pairs(args.capture), area_capture=_area_pairs(args.area_capture),
                  wrong_number=args.wrong_numbers, false_name=_pairs(args.false_names),
                  anonymous=args.anonymous, opt_out=args.opt_out)


def _scenario(args) -> int:
    from lib.access.roles import check_role
    from lib.records import store
    from lib.scenario import scenario

    try:
        levers = levers_from_args(args)
        role = check_role(args.role)
        rates = [float(r) for r in args.curve.split(",") if r.strip()]
    except ValueError as exc:
        print(json.dumps({"error": str(exc)}))
        return 2
    db_path = store.resolve_path(args.db)
    con = None
    if Path(str(db_path)).exists():
        try:
            con = store.connect(db_path, read_only=True)
        except Exception as exc:  # noqa: BLE001 - e.g. locked by a running ingest: the simulation needs no store
            if args.mode == "model":
                print(json.dumps({"error": f"cannot open {db_path}: {exc}"}))
                return 2
            print(f"[note] store not readable ({exc}); running the simulation", file=sys.stderr)
    try:
        mode = args.mode
        if mode == "auto":
            synthetic = con is None or store.counts(con)["encounters"] == 0 or scenario.is_default_synthetic(con)
            mode = "simulation" if synthetic else "model"
        if mode == "model":
            if con is None:
                print(json.dumps({"error": f"no store at {db_path} to model"}))
                return 2
            result = scenario.model_scenario(con, levers, layer=args.layer, curve_rates=rates)
        else:
            result = scenario.simulate_scenario(
                levers, key=scenario.scenario_key(db_path), n_encounters=args.encounters, seed=args.seed,
                layer=args.layer, curve_rates=rates, curve_mode=args.curve_mode,
                progress=lambda f, m: print(f"[{f:4.0%}] {m}", file=sys.stderr))
        from lib.access.roles import aggregates_suppressed
        from lib.disclosure.notes import method_note
        from lib.views.scenario import protect_areas, published_result  # the one place of protection

        areas = protect_areas(result, role)
        result = published_result(result, role)
        result.pop("total_keys", None)  # cell keys never leave
        result["by_area"] = areas
        result["disclosure"] = method_note(aggregates_suppressed(role))
        result["role"] = role
    finally:
        if con is not None:
            con.close()
    payload = scenario.to_json(result)
    if args.out:
        from lib.access import audit

        # An export: audited before the file is written (no row, no file), in the trail of the store read.
        audit.record_command(db_path, action="export", subject=f"scenario {result.get('mode', mode)}",
                             detail=f"command line: scenario ({role}) to {args.out.name}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
    short = {k: v for k, v in payload.items() if k not in ("by_area", "curve", "assumptions", "levers_text")}
    if args.out:
        short["out"] = str(args.out)
    print(json.dumps(short, default=str))
    return 0
