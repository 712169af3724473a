"""Geography benchmark: build time, geodata size per layer, Boundaries page script time.

Run: python -m bench.bench_geo   (prints JSON lines; nothing here is a test).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import emit, peak_rss_mb


def main() -> None:
    from lib.geo import build

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        manifest = build.build(Path(tmp), progress=lambda message: None)
        emit("geodata build time", round(time.perf_counter() - started, 1), "s")
    for name, seconds in manifest.get("timings_s", {}).items():
        emit(f"geodata build step: {name}", seconds, "s")
    display_total = 0
    for name, info in sorted(manifest["files"].items()):
        emit(f"geodata size {name}", round(info["bytes"] / 1e6, 3), "MB")
        if name.startswith("layers/"):
            display_total += info["bytes"]
    emit("display layers together", round(display_total / 1e6, 3), "MB", target="<= 2 MB")
    emit("geodata build peak memory", peak_rss_mb(), "MB")

    from streamlit.testing.v1 import AppTest

    root = Path(__file__).resolve().parents[1]
    at = AppTest.from_file(str(root / "app.py"), default_timeout=120)
    started = time.perf_counter()
    at.run()
    emit("map page script, first run", round(time.perf_counter() - started, 3), "s")
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        at.run()
        runs.append(time.perf_counter() - started)
    emit("map page script, cached rerun (median of 5)", round(sorted(runs)[2], 3), "s", target="<= 1 s")
    at.button_group(key="view").set_value("Where boundaries misalign").run()
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        at.run()
        runs.append(time.perf_counter() - started)
    emit("misalignment view script, cached rerun (median of 5)", round(sorted(runs)[2], 3), "s", target="<= 1 s")
    at.button_group(key="view").set_value("Overlay map").run()
    started = time.perf_counter()
    at.text_input(key="place_query").set_value("LS1 3EX").run()
    emit("map page postcode search (first, loads the postcode index)", round(time.perf_counter() - started, 3), "s")


if __name__ == "__main__":
    main()
