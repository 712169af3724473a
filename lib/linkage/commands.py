"""`link` and `evaluate` sub-commands (JSON on stdout; progress on stderr)."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    link = sub.add_parser("link", help="link encounters into children (NHS number, then Splink)")
    link.add_argument("--db", type=Path, default=None, help="DuckDB store (default $JOINEDUP_DB or data/)")
    link.add_argument("--threshold", type=float, default=None, help="match probability that links (default 0.9)")
    link.add_argument("--review-floor", type=float, default=None,
                      help="lowest probability queued for review (default: trained on the run's own scores)")
    link.add_argument("--backend", choices=("duckdb", "spark"), default=None,
                      help="where Splink scores pairs (default duckdb; spark needs requirements-spark.txt)")
    link.add_argument("--spark-master", default=None,
                      help="Spark master URL, e.g. local[2], spark://host:7077, yarn (default $JOINEDUP_SPARK_MASTER, "
                           "an active session, else local[*])")
    link.add_argument("--spark-checkpoint-dir", default=None,
                      help="checkpoint folder every executor can reach (HDFS, S3, shared mount)")
    link.add_argument("--spark-partitions", type=int, default=None, help="spark.sql.shuffle.partitions")
    link.add_argument("--spark-exchange-dir", default=None,
                      help="folder every executor can read: the nodes go to the cluster as Parquet there")
    link.set_defaults(func=_link)
    evaluate = sub.add_parser("evaluate", help="linkage precision/recall/F1 against a synthetic truth file")
    evaluate.add_argument("--db", type=Path, default=None)
    evaluate.add_argument("--truth", type=Path, required=True, help="truth.parquet from `synth`")
    evaluate.set_defaults(func=_evaluate)
    export = sub.add_parser("export-parquet", help="write the store's encounters and linkage tables as Parquet")
    export.add_argument("--db", type=Path, default=None)
    export.add_argument("--out", type=Path, required=True, help="folder for <table>.parquet")
    export.add_argument("--tables", default="encounters,record_child,link_edges")
    export.set_defaults(func=_export)
    imported = sub.add_parser("import-linkage",
                              help="replace the store's linkage with record_child (+ link_edges) Parquet from "
                                   "elsewhere")
    imported.add_argument("source", type=Path, help="folder with record_child.parquet, or that file")
    imported.add_argument("--edges", type=Path, default=None, help="link_edges.parquet (default: beside it)")
    imported.add_argument("--db", type=Path, default=None)
    imported.set_defaults(func=_import)


def _db(db):
    from lib.records import store

    return store.resolve_path(db)


def _connect(db):
    """Read-only: the current version (readers never wait for a writer)."""
    from lib.records import store

    return store.connect(db, read_only=True)


def _writer(db, command: str):
    """The next version of the store, published when the block ends (lib.records.versions.write)."""
    from lib.records import versions

    return versions.write(db, command)


def config_from_args(args):
    from dataclasses import replace

    from lib.linkage.run import LinkConfig

    config = LinkConfig()
    for option, field in (("threshold", "match_threshold"), ("review_floor", "review_floor"), ("backend", "backend"),
                          ("spark_master", "spark_master"), ("spark_checkpoint_dir", "spark_checkpoint_dir"),
                          ("spark_partitions", "spark_partitions"), ("spark_exchange_dir", "spark_exchange_dir")):
        value = getattr(args, option, None)
        if value is not None:
            config = replace(config, **{field: value})
    return config


def _link(args) -> int:
    from lib.access import audit
    from lib.linkage.run import link

    config = config_from_args(args)
    with _writer(args.db, "link") as w:
        summary = link(w.con, config, progress=lambda f, m: print(f"[{f:4.0%}] {m}", file=sys.stderr))
        w.change = f"linkage: {summary.get('records', 0):,} records, {summary.get('children', 0):,} children"
    audit.record_command(_db(args.db), action="link_run", detail=f"command line: run {summary.get('run_id')}: "
                                                                 f"{summary.get('records')} records "
                                                                 f"into {summary.get('children')} children")
    print(json.dumps(summary))
    return 0


def _evaluate(args) -> int:
    import pandas as pd

    from lib.linkage.evaluate import evaluate

    print(json.dumps(evaluate(_connect(args.db), pd.read_parquet(args.truth))))
    return 0


def _export(args) -> int:
    from lib.access import audit
    from lib.records import store

    tables = tuple(t.strip() for t in args.tables.split(",") if t.strip())
    con = _connect(args.db)
    audit.record_command(_db(args.db), action="export", subject="parquet:" + ",".join(tables),
                         detail=f"command line: export-parquet to {Path(args.out).name}/")  # before writing
    print(json.dumps({"folder": str(args.out), "rows": store.export_parquet(con, args.out, tables)}))
    return 0


def _import(args) -> int:
    from lib.access import audit
    from lib.linkage.exchange import LinkageImportError, import_linkage

    try:
        with _writer(args.db, "import-linkage") as w:
            summary = import_linkage(w.con, args.source, edges=args.edges)
            w.change = "linkage imported"
    except LinkageImportError as exc:
        print(json.dumps({"error": str(exc)}))
        return 2
    audit.record_command(_db(args.db), action="link_run", subject=Path(args.source).name,
                         detail=f"command line: run {summary.get('run_id')}: import-linkage")
    print(json.dumps(summary))
    return 0
