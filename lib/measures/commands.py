"""`import-stats` and `divergence` sub-commands (JSON summary on stdout).

Add ``"lib.measures.commands"`` to ``lib.cli.COMMAND_MODULES`` to make them reachable from
``python -m lib.cli``.
"""
from __future__ import annotations

import json
from pathlib import Path

from lib.geo import layers


def register(sub) -> None:
    imp = sub.add_parser("import-stats", help="import published statistics (DfE C3 or generic CSV) to a tidy CSV")
    imp.add_argument("file", type=Path, help="the published CSV")
    imp.add_argument("--format", choices=["dfe-c3", "generic"], default="dfe-c3")
    imp.add_argument("--factor", default="Child_sexual_exploitation", help="DfE C3 factor column")
    imp.add_argument("--layer", default=None, help="generic: layer of the area codes (default: guessed)")
    imp.add_argument("--out", type=Path, required=True, help="tidy CSV to write")
    imp.add_argument("--db", type=Path, default=None,
                     help="also keep the figures, with their symbols, in this store (table published_figures)")
    imp.set_defaults(func=import_stats)
    div = sub.add_parser("divergence", help="per-area agency counts, divergence measure and funnel verdict")
    div.add_argument("--db", type=Path, default=None, help="DuckDB store (default $JOINEDUP_DB or data/)")
    div.add_argument("--layer", choices=layers.measure_choices(), default="utla")
    div.add_argument("--period", default="all", help="all, a financial year (2023-24) or quarter ('2023-24 Q1')")
    div.add_argument("--measure", choices=["cse_records", "cse_children"], default="cse_records")
    div.add_argument("--agencies", default="police,children_social_care", help="the pair compared: A,B")
    div.add_argument("--out", type=Path, required=True)
    div.set_defaults(func=divergence)
    pop = sub.add_parser("population",
                         help="official child population (ONS mid-year estimates) of every area of a layer")
    pop.add_argument("--layer", choices=list(layers.COLUMNS), required=True)
    pop.add_argument("--age", choices=["0-17", "10-17"], default="0-17", help="age band (default 0-17)")
    pop.add_argument("--out", type=Path, required=True,
                     help="CSV: area_code, area_name, children, age_band, source, vintage")
    pop.set_defaults(func=population_command)


def population_command(args) -> int:
    from lib.export import csv_safe
    from lib.measures import population

    table = population.official_population(args.layer, args.age)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(csv_safe.to_csv_bytes(table))
    print(json.dumps({"layer": args.layer, "age_band": args.age, "areas": len(table),
                      "children": int(table["children"].sum()), "vintages": sorted(table["vintage"].unique().tolist()),
                      "out": str(args.out)}))
    return 0


def import_stats(args) -> int:
    from lib.measures import published

    if args.format == "dfe-c3":
        tidy, report = published.read_dfe_c3(args.file, args.factor, with_symbols=True)
    else:
        tidy, report = published.read_generic(args.file, args.layer, with_symbols=True)
    published.write_tidy(tidy[published.TIDY_COLUMNS], args.out)
    stored = None
    if args.db is not None:
        from lib.records import versions

        with versions.write(args.db, "import-stats") as w:
            stored = published.store_figures(w.con, tidy, source=args.file.name)
            w.change = f"published figures: {stored:,} rows from {args.file.name}"
    status = tidy["status"].value_counts()
    print(json.dumps({
        "file": str(args.file), "format": args.format, "factor": args.factor if args.format == "dfe-c3" else None,
        "rows": int(len(tidy)), "out": str(args.out),
        "ok": int(status.get("ok", 0)), "suppressed": int(status.get("suppressed", 0)),
        "unavailable": int(status.get("unavailable", 0)),
        "levels": {k: int(v) for k, v in tidy["geographic_level"].value_counts().items()},
        "periods": sorted(tidy["period"].unique().tolist()),
        "codes_reported": report.to_dict(orient="records"), "stored": stored}))
    return 0


def divergence(args) -> int:
    from lib.measures import aggregates, convert, population
    from lib.measures import divergence as dv
    from lib.records import store

    a, b = [x.strip() for x in args.agencies.split(",")]
    layer = convert.layer_key(args.layer)
    con = store.connect(args.db, read_only=True)
    try:
        cube = aggregates.cube(con, layers=(layer,))  # the stored aggregates
    finally:
        con.close()
    measure = args.measure if cube.linked else "cse_records"
    table = dv.divergence_table(cube, layer, args.period, a, b, measure, population.default_population(layer))
    from lib.export import downloads

    body = downloads.command_export(  # audited before the file is written; spreadsheet-safe CSV
        store.resolve_path(args.db), "csv", dv.export_table(table, a, b, layer, args.period, measure,
                                                             rate_basis=population.rate_label()),
        subject=layer, detail=f"command line: divergence {Path(args.out).name} ({args.period}, {measure}, {a} v {b})")
    Path(args.out).write_bytes(body)
    counted = table[table["total"] > 0]
    print(json.dumps({
        "layer": layer, "period": args.period, "measure": measure, "agencies": [a, b], "areas": int(len(table)),
        "areas_with_counts": int(len(counted)), "national_share": float(counted["national_share"].iat[0])
        if len(counted) else None,
        "outside_95": int(table["outside_95"].sum()), "outside_998": int(table["outside_998"].sum()),
        "seconds": cube.seconds, "out": str(args.out)}))
    return 0
