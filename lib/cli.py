"""Command line for everything the pages do (batch jobs, schedulers, benchmarks).

Each concept registers its own sub-commands through a ``register(subparsers)`` function, so this
file stays a dispatcher. Commands print JSON on stdout; other tools rely on it (docs/CLI.md).
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys

# Modules that contribute sub-commands; each has register(subparsers) and sets
# ``func`` on its parsers via set_defaults(func=...).
COMMAND_MODULES = (
    "lib.geo.commands",
    "lib.synth.commands",
    "lib.records.commands",
    "lib.linkage.commands",
    "lib.measures.commands",
    "bench.run_all",  # `bench`: every benchmark, JSON lines and a markdown table
    "lib.access.commands",
    "lib.scenario.commands",
    "lib.export.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lib.cli", description="Joined Up command line")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a concept not built yet
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from lib.access.audit import AuditError

    try:
        return int(args.func(args) or 0)
    except AuditError as exc:  # the audit trail cannot be written or is not ours: say so, never a traceback
        print(json.dumps({"ok": False, "error": f"audit trail: {exc}"}))
        return 2


if __name__ == "__main__":
    sys.exit(main())
