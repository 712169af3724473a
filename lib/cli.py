"""Command line for everything the pages do (batch jobs, schedulers, benchmarks).

Each concept registers its own sub-commands through a ``register(subparsers)`` function, so this
file stays a dispatcher. Commands print JSON on stdout; other tools rely on it (docs/CLI.md).
"""
from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys

import lib.measures.aggregates  # noqa: F401  (registers the cube builder for every store the CLI writes)
import lib.scenario.stored  # noqa: F401  (and the Scenario's default simulation, kept with them)
from lib.access.audit import AuditError
from lib.records.store import StoreError
from lib.records.versions import EXIT_LOCKED, StoreLocked

# Modules that contribute sub-commands; each has register(subparsers) and sets
# ``func`` on its parsers via set_defaults(func=...).
COMMAND_MODULES = (
    "lib.geo.commands",
    "lib.synth.commands",
    "lib.records.commands",
    "lib.linkage.commands",
    "lib.measures.commands",
    "lib.access.commands",
    "lib.scenario.commands",
    "lib.export.commands",
    "lib.views.commands",  # `view <page>`: the PageData a page renders (JSON / CSV)
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
    bench = sub.add_parser("bench", add_help=False,
                           help="every benchmark (bench/run_all.py): JSON lines and a markdown table; "
                                "`bench --help` for its options")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(func=_bench)
    return parser


def _bench(args) -> int:
    """`python -m lib.cli bench ...` is the stable name (docs/CLI.md); the benchmarks live in bench/, which lib
    never imports: they run as their own process, with the same options and output."""
    return subprocess.call([sys.executable, "-m", "bench.run_all", *args.bench_args])


EXIT_STORE = 2  # the store cannot be used (none yet, wrong key, opened by an old-layout process)


def main(argv: list[str] | None = None) -> int:
    """Run one command. A store that another writer holds, or cannot be used, ends the command with one line
    on stderr (and a JSON error on stdout), never a traceback: exit code 75 (locked: try again later; see
    docs/OPERATIONS.md) or 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # its options are bench/run_all.py's own (argparse cannot pass on "--help")
        return _bench(argparse.Namespace(bench_args=argv[1:]))
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except StoreLocked as exc:
        code, message = EXIT_LOCKED, str(exc)
    except StoreError as exc:
        code, message = EXIT_STORE, str(exc)
    except AuditError as exc:  # the audit trail cannot be written or is not ours: say so, never a traceback
        code, message = EXIT_STORE, f"audit trail: {exc}"
    print(json.dumps({"ok": False, "error": message, "exit_code": code}))
    print(f"{args.command}: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
