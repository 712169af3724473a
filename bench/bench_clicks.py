"""Clicks made just as new data arrives: how many page links clicked are lost (stop 42's CI failure).

    python -m bench.bench_clicks [--clicks 150] [--poll 0.5] [--fast-reruns on|off] [--load 2] [--seed 1]

One real app server on 127.0.0.1 (a small ingested store, the version watch every ``--poll`` seconds) and one
Chromium page. Each round publishes a new version of the store, waits a random moment of up to 1.2 polls (so
the click falls before, during or just after the watch's rerun for the new data), clicks the other of two
page links (Review links, Across boundaries) and waits up to 20 s for that page to be drawn. A click after
which the page stays put is lost. ``--load`` busy processes share the cores, as the CI machine's tests do.
``--fast-reruns`` sets Streamlit's ``runner.fastReruns`` for this server only (the project's setting is off,
.streamlit/config.toml). Prints JSON lines: clicks, lost, the setting, the poll, and `uptime` to quote.
"""
from __future__ import annotations

import argparse
import multiprocessing
import random
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import KEY, emit

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("review", "across")


def _busy() -> None:  # pragma: no cover - a load process, killed at the end
    while True:
        pass


def _store(work: Path) -> Path:
    """A small store of 300 synthetic encounters, published as one version (ingested, not linked)."""
    from lib.records import ingest, versions
    from lib.synth import SynthConfig, generate

    db = work / "store.duckdb"
    encounters, _ = generate(SynthConfig(n_encounters=300, seed=5))
    with versions.write(db, "bench ingest") as w:
        ingest.commit(w.con, ingest.prepare_frame(encounters, "bench.parquet", key=KEY.encode()))
    return db


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=150)
    parser.add_argument("--poll", type=float, default=0.5, help="the version watch's period, seconds")
    parser.add_argument("--fast-reruns", choices=("on", "off"), default="off")
    parser.add_argument("--load", type=int, default=2, help="busy processes beside the server")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    from lib.records import versions
    from tests.browser import NAVIGATED_JS, PAGE_TITLES, browser_page, nav_selector, running_app

    work = Path(tempfile.mkdtemp(prefix="bench_clicks_"))
    db = _store(work)
    env = {"JOINEDUP_DB": str(db), "JOINEDUP_SYNTHETIC_STORE": "1", "JOINEDUP_DEMO_ROLE": "lead",
           "JOINEDUP_KEY": KEY, "JOINEDUP_POLL_SECONDS": str(args.poll),
           "STREAMLIT_RUNNER_FAST_RERUNS": "true" if args.fast_reruns == "on" else "false"}
    load = [multiprocessing.Process(target=_busy, daemon=True) for _ in range(args.load)]
    for proc in load:
        proc.start()
    rng, lost, here = random.Random(args.seed), 0, "review"
    try:
        with running_app(env=env, timeout=120) as base, browser_page(1300, 900) as page:
            page.goto(f"{base}/{here}")
            page.wait_for_function(NAVIGATED_JS, arg=PAGE_TITLES[here], timeout=120_000)
            for _ in range(args.clicks):
                with versions.write(db, "bench_clicks"):
                    pass
                time.sleep(rng.uniform(0, args.poll * 1.2))
                target = PAGES[1 - PAGES.index(here)]
                page.locator(nav_selector(target)).first.click()
                try:
                    page.wait_for_function(NAVIGATED_JS, arg=PAGE_TITLES[target], timeout=20_000)
                    here = target
                except Exception:  # noqa: BLE001 - the page stayed put: a lost click
                    lost += 1
                    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
                    here = "across" if page.url.rstrip("/").endswith("/across") else "review"
    finally:
        for proc in load:
            proc.terminate()
    emit("clicks", args.clicks, "clicks", fast_reruns=args.fast_reruns, poll=args.poll, load=args.load)
    emit("lost clicks", lost, "clicks", fast_reruns=args.fast_reruns,
         uptime=subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
