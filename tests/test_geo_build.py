"""The committed geodata is exactly what the build produces from the installed data packages."""
from __future__ import annotations

import json

from lib.geo import build, lookup


def test_rebuild_reproduces_committed_geodata(tmp_path):
    manifest = build.build(tmp_path, progress=lambda message: None)
    committed = json.loads((lookup.GEODATA / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["package_versions"] == committed["package_versions"], "pinned data packages changed"
    for name, info in committed["files"].items():
        assert manifest["files"][name]["sha256"] == info["sha256"], f"{name} differs from a fresh build"
    assert set(manifest["files"]) == set(committed["files"])
