"""Every page's script time through its view builder (issue 15), and `view` times for three of them.

    python -m bench.bench_view_pages [--encounters 20000] [--seed 21] [--work DIR] [--reruns 3]

Builds (once per --work folder) a linked synthetic store of --encounters (the app's default dataset:
``--encounters 200000 --seed 20251125``, lib.records.default), then for each page: the script's
first run through AppTest and the median of --reruns cached reruns (as bench/run_all.py's "pages" step), one
widget change (a new layer) and its rerun, and `lib.views.build` of the same page from a cold store
connection (what `python -m lib.cli view <page>` costs). Prints JSON lines; quote `uptime` with the figures.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import emit, peak_rss_mb, published_store

ROOT = Path(__file__).resolve().parents[1]
#: page url_path -> (script, role that opens it, a widget key and a new value for it; None: no widget change)
PAGES = {"boundaries": ("pages/map.py", "lead", "mis_layer", "pfa"),
         "across": ("pages/across.py", "commissioner", "across_layer", "pfa"),
         "data": ("pages/data.py", "analyst", "completeness_layer", "pfa"),
         "compare": ("pages/compare.py", "commissioner", "cmp_layer", "pfa"),
         "divergence": ("pages/divergence.py", "commissioner", "div_layer", "pfa"),
         "profile": ("pages/profile.py", "commissioner", "prof_layer", "pfa"),
         "scenario": ("pages/scenario.py", "commissioner", None, None),
         "review": ("pages/review.py", "lead", None, None),
         "audit": ("pages/audit.py", "lead", None, None),
         "about": ("pages/about.py", "commissioner", None, None)}
#: pages whose `view` is also timed from a cold connection
VIEWS = ("boundaries", "across", "data")


def time_page(url: str, reruns: int, size: int) -> None:
    from streamlit.testing.v1 import AppTest

    script, role, key, value = PAGES[url]
    os.environ["JOINEDUP_DEMO_ROLE"] = role
    at = AppTest.from_file(str(ROOT / script), default_timeout=600)
    at.session_state["demo_role"] = role
    if url == "boundaries":
        at.session_state["view"] = "Where boundaries misalign"
    t0 = time.perf_counter()
    at.run()
    cold = time.perf_counter() - t0
    runs = []
    for _ in range(reruns):
        t0 = time.perf_counter()
        at.run()
        runs.append(time.perf_counter() - t0)
    changed = None
    if key is not None:
        at.session_state[key] = value
        t0 = time.perf_counter()
        at.run()
        changed = round(time.perf_counter() - t0, 3)
    emit(f"page {url}: first run / cached rerun", round(statistics.median(runs), 3), "s", size=size,
         first=round(cold, 3), widget_change=changed, role=role, exceptions=len(at.exception))


def time_view(db: Path, url: str, size: int) -> None:
    from lib import views

    role = PAGES[url][1]
    t0 = time.perf_counter()
    data = views.build(url, db, {}, role)
    seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    text = data.to_json()
    emit(f"view {url} (cold connection)", round(seconds, 3), "s", size=size, role=role,
         to_json=round(time.perf_counter() - t0, 3), json_mb=round(len(text) / 1e6, 2))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encounters", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=21, help="the generator's seed (default dataset: 20251125)")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--reruns", type=int, default=3)
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_view_pages_"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    db = published_store(work, args.encounters, seed=args.seed)
    emit("store (synthetic, ingested, linked)", round(time.perf_counter() - t0, 3), "s", size=args.encounters,
         seed=args.seed)
    os.environ.update({"JOINEDUP_DB": str(db), "JOINEDUP_SYNTHETIC_STORE": "1",
                       "JOINEDUP_ACCOUNTS": str(work / "no-accounts.json"), "JOINEDUP_POLL_SECONDS": "0"})
    for url in PAGES:
        time_page(url, args.reruns, args.encounters)
    for url in VIEWS:
        time_view(db, url, args.encounters)
    emit("peak memory", peak_rss_mb(), "MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
