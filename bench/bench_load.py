"""Load and faults (issue 14): 20 browser sessions browse every page while the command line ingests and links.

    python -m bench.bench_load [--sessions 20] [--encounters 20000] [--extra 5000] [--seconds 240] [--work DIR]

One real app server (``streamlit run`` on 127.0.0.1 only), one Chromium with ``--sessions`` contexts (the
Playwright async API: the sessions really are concurrent). Each session moves through every page a
safeguarding lead can open, in its own order, until the writers are done and it has done one more full round,
or ``--seconds`` pass (bounded loops; loopback traffic only). Meanwhile: ``python -m lib.cli ingest`` of a new
extract, then ``python -m lib.cli link``; and two sessions each record a review decision while the link runs
(queued if the store is locked, applied when it frees). Prints JSON lines: sessions, pages served, errors (an
exception or error box on a page, or a page that did not finish), p50/p95/max page time, the writers' exit
codes, and lost writes: stored encounters short of what the ingest reported plus review decisions missing
from the store at the end (must be 0). Quote `uptime` with the figures.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import KEY, emit, published_store

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("boundaries", "across", "divergence", "compare", "scenario", "review", "audit")
STATUS = re.compile(r"Data version (\d+)\b.*?\b([\d,]+) encounters", re.S)


def build(work: Path, n: int, extra: int) -> tuple[Path, Path]:
    """A linked synthetic store of n encounters, and a further extract of `extra` new encounters."""
    from lib.synth import SynthConfig, generate

    db = published_store(work, n)
    more = work / "more.parquet"
    if not more.exists():
        encounters, _ = generate(SynthConfig(n_encounters=extra, seed=22))
        encounters["source_record_id"] = "MORE" + encounters["source_record_id"].astype(str)
        encounters.to_parquet(more, index=False)
    return db, more


async def _idle(page, timeout_ms: float) -> None:
    await page.wait_for_function(
        """() => !document.querySelector('[data-testid="stStatusWidget"]')
                && !!document.querySelector('[data-testid="stMain"]')""", timeout=timeout_ms)


async def _state(page) -> dict:
    captions = await page.eval_on_selector_all('[data-testid="stSidebar"] [data-testid="stCaptionContainer"]',
                                               "els => els.map(e => e.innerText)")
    found = [m.groups() for text in captions for m in [STATUS.search(text)] if m]
    errors = await page.eval_on_selector_all('[data-testid="stException"], [data-testid="stAlertContentError"]',
                                             "els => els.map(e => e.innerText.slice(0, 200))")
    return {"versions": sorted({int(v) for v, _ in found}), "errors": errors}


RETRIES = {"navigations": 0}


async def _open(page, url_path: str) -> None:
    """Navigate in the session and wait for that page's own finished run (tests.browser.open_page). A click
    that raced the version watch's rerun (which reruns the page it started on) is clicked again once after
    30 s with the previous page drawn, as a person would; counted in ``navigation_retries``."""
    from tests.browser import NAVIGATED_JS, PAGE_TITLES, RENDERED_JS, nav_selector

    await page.locator(nav_selector(url_path)).first.click()
    try:
        await page.wait_for_function(NAVIGATED_JS, arg=PAGE_TITLES[url_path], timeout=30_000)
        return
    except Exception:  # noqa: BLE001
        if not await page.evaluate(RENDERED_JS):
            await page.wait_for_function(NAVIGATED_JS, arg=PAGE_TITLES[url_path], timeout=150_000)
            return
    RETRIES["navigations"] += 1
    await page.locator(nav_selector(url_path)).first.click()
    await page.wait_for_function(NAVIGATED_JS, arg=PAGE_TITLES[url_path], timeout=150_000)


async def _decide(page, who: str) -> bool:
    """On the review page: name the reviewer, reject the first pair; True when the page said it was recorded."""
    await _open(page, "review")
    box = page.get_by_label("Your name or role (recorded with the decision)")
    try:
        await box.wait_for(timeout=60_000)
    except Exception:  # noqa: BLE001 - e.g. nothing to review
        text = await page.inner_text('[data-testid="stMain"]')
        raise RuntimeError(f"no reviewer box on the review page: {text[:200]!r}") from None
    await box.fill(who)
    await box.press("Enter")
    await page.wait_for_function("""() => { const b = [...document.querySelectorAll('button')]
        .find(x => x.innerText.includes('Different children')); return b && !b.disabled; }""", timeout=120_000)
    await page.get_by_role("button", name="Different children: reject link").click()
    try:
        await page.get_by_text("Recorded: reject").first.wait_for(timeout=180_000)
    except Exception:  # noqa: BLE001 - not confirmed: reported as an error by the caller
        text = await page.inner_text('[data-testid="stMain"]')
        raise RuntimeError(f"decision not confirmed: {text[-300:]!r}") from None
    return True


@dataclass
class _Load:
    """What the browsing sessions and the writers share while the load runs."""
    times: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    versions_seen: set[int] = field(default_factory=set)
    last_version: dict[int, int] = field(default_factory=dict)
    decisions: list[str] = field(default_factory=list)
    writers_done: bool = False
    link_started: bool = False
    deadline: float = 0.0

    def result(self, writers: dict) -> dict:
        return {"writers": writers, "times": self.times, "errors": self.errors,
                "versions_seen": sorted(self.versions_seen), "decisions": self.decisions,
                "last_version": self.last_version}


async def _start_session(i: int, page, base: str, opening: asyncio.Semaphore, load: _Load):
    """Open the light Audit page first (the browsing then covers every page); None if it never opened."""
    async with opening:
        t = time.perf_counter()
        try:
            await page.goto(base + "/audit", timeout=300_000, wait_until="commit")
            await page.get_by_text("Data version").first.wait_for(timeout=300_000)
            await _idle(page, 300_000)
        except Exception as exc:  # noqa: BLE001 - a session that never opened is an error
            load.errors.append(f"session {i} did not open: {type(exc).__name__}")
            return None
        print(f"session {i} open in {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
        return page


async def _open_sessions(browser, sessions: int, base: str, load: _Load) -> list:
    """``sessions`` browser contexts, each with the app open; those that never opened are left out."""
    pages = []
    for _ in range(sessions):
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        pages.append(await context.new_page())
    opening = asyncio.Semaphore(2)  # sessions arrive a couple at a time, as people do
    # The first session alone: a fresh server's very first requests are run by Streamlit's folder mode
    # until app.py has run once (pages.common._run_through_app); two at once there can hang one.
    first = await _start_session(0, pages[0], base, opening, load)
    rest = await asyncio.gather(*(_start_session(i, pg, base, opening, load) for i, pg in enumerate(pages) if i > 0))
    return [pg for pg in [first, *rest] if pg]


async def _review(i: int, page, load: _Load) -> None:
    """Session ``i`` records one review decision (while the link runs)."""
    try:
        if await _decide(page, f"bench reviewer {i}"):
            load.decisions.append(f"bench reviewer {i}")
        else:
            load.errors.append(f"review decision by session {i}: not confirmed on the page")
    except Exception as exc:  # noqa: BLE001
        load.errors.append(f"review decision: {type(exc).__name__}: {str(exc)[:150]}")


async def _visit(i: int, page, url: str, load: _Load) -> None:
    """Session ``i`` opens ``url``: its time, the data versions it shows and any error box are recorded."""
    t = time.perf_counter()
    try:
        await _open(page, url)
        state = await _state(page)
        load.times.append(time.perf_counter() - t)
        load.versions_seen.update(state["versions"])
        if state["versions"]:
            load.last_version[i] = state["versions"][-1]
        if state["errors"]:
            load.errors.append(f"{url}: {state['errors'][0]}")
        if len(state["versions"]) != 1:
            load.errors.append(f"{url}: versions shown {state['versions']}")
    except Exception as exc:  # noqa: BLE001 - a page that did not finish counts as an error
        load.errors.append(f"{url}: {type(exc).__name__}: {str(exc)[:150]}")
    print(f"session {i} {url} {load.times[-1] if load.times else 0:.1f} s", file=sys.stderr, flush=True)


async def _browse(i: int, page, load: _Load) -> None:
    """Session ``i`` moves through every page in its own order until the writers are done and it has done one
    more full round, or the deadline passes; sessions 0 and 1 each record a review decision while the link runs."""
    order = PAGES[i % len(PAGES):] + PAGES[:i % len(PAGES)]
    rounds_after = 0
    step = 0
    decided = i >= 2
    while time.monotonic() < load.deadline and rounds_after < 1:
        if not decided and load.link_started:
            decided = True
            await _review(i, page, load)
            continue
        await _visit(i, page, order[step % len(order)], load)
        step += 1
        if load.writers_done and step % len(order) == 0:
            rounds_after += 1


async def _write(name: str, args: list[str], db: Path, env: dict, load: _Load) -> dict:
    """Run ``python -m lib.cli <args> --db db``: its exit code, seconds, the end of its output and the store's
    version after it. For ``link``, the sessions are told it has started a second after it does."""
    from lib.records import versions

    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lib.cli", *args, "--db", str(db), cwd=ROOT,
        env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    print(f"writer {name} started", file=sys.stderr, flush=True)
    if name == "link":
        await asyncio.sleep(1)
        load.link_started = True
    stdout, stderr = await proc.communicate()
    print(f"writer {name} exit {proc.returncode}", file=sys.stderr, flush=True)
    return {"code": proc.returncode, "seconds": round(time.perf_counter() - started, 1),
            "stdout": stdout.decode()[-4000:], "version": versions.current(db).number}


async def _writers(db: Path, more: Path, env: dict, load: _Load) -> dict:
    """The command line's ingest of the further extract, then a link run, one after the other."""
    out = {}
    for name, args in (("ingest", ["ingest", str(more)]), ("link", ["link"])):
        out[name] = await _write(name, args, db, env, load)
    load.writers_done = True
    return out


async def run_load(base: str, sessions: int, seconds: float, db: Path, more: Path, env: dict) -> dict:
    """``sessions`` browser sessions browse the app at ``base`` while the writers ingest and link (see the
    module docstring): page times, errors, versions seen, decisions made and the writers' results."""
    from playwright.async_api import async_playwright

    from tests.browser import CHROMIUM, CHROMIUM_ARGS

    load = _Load()
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            pages = await _open_sessions(browser, sessions, base, load)
            load.deadline = time.monotonic() + seconds
            results = await asyncio.gather(_writers(db, more, env, load),
                                           *(_browse(i, pg, load) for i, pg in enumerate(pages)))
        finally:
            await browser.close()
    return load.result(results[0])


def main(argv=None) -> int:
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--encounters", type=int, default=20_000)
    parser.add_argument("--extra", type=int, default=5_000)
    parser.add_argument("--seconds", type=float, default=240)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args(argv)
    from lib.records import store, versions
    from tests.browser import running_app

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-load-"))
    work.mkdir(parents=True, exist_ok=True)
    db, more = build(work, args.encounters, args.extra)
    con = store.connect(db, read_only=True)
    before = store.counts(con)["encounters"]
    con.close()
    env = {"JOINEDUP_DB": str(db), "JOINEDUP_SYNTHETIC_STORE": "1", "JOINEDUP_DEMO_ROLE": "lead",
           "JOINEDUP_KEY": KEY}
    started = time.perf_counter()
    with running_app(env=env, timeout=180) as base:
        result = asyncio.run(run_load(base, args.sessions, args.seconds, db, more, env))
        # decisions queued during the link are applied by the app's watch within seconds of the lock freeing
        deadline = time.time() + 30
        while versions.pending(db) and time.time() < deadline:
            time.sleep(0.5)
    wall = time.perf_counter() - started
    con = store.connect(db, read_only=True)
    after = store.counts(con)["encounters"]
    reviewers = {r[0] for r in con.execute("SELECT reviewer FROM review_decisions").fetchall()}
    con.close()
    ingest = result["writers"].get("ingest", {})
    reported = json.loads(ingest["stdout"].strip().splitlines()[-1]).get("rows_stored", 0) if ingest.get("stdout") \
        else 0
    lost = max(before + reported - after, 0) + sum(1 for d in result["decisions"] if d not in reviewers)
    times = sorted(result["times"])

    def pct(q: float):
        return round(times[min(len(times) - 1, int(q * len(times)))], 2) if times else None

    emit("sessions", args.sessions, "browser contexts", encounters=before)
    emit("pages_served", len(times), "page loads", seconds=round(wall, 1))
    emit("errors", len(result["errors"]), "pages", examples=result["errors"][:5])
    emit("page_time_p50", pct(0.50), "s")
    emit("page_time_p95", pct(0.95), "s")
    emit("page_time_max", round(times[-1], 2) if times else None, "s")
    for name, w in result["writers"].items():
        emit(f"{name}_exit_code", w["code"], "code", seconds=w["seconds"])
    emit("navigation_retries", RETRIES["navigations"], "clicks", note="a navigation click undone by the version "
         "watch's rerun at a switch-over, clicked again")
    emit("review_decisions_made", len(result["decisions"]), "decisions")
    emit("lost_writes", lost, "rows or decisions", encounters_before=before, ingest_reported=reported,
         encounters_after=after)
    emit("versions_seen", result["versions_seen"], "versions")
    linked = result["writers"].get("link", {}).get("version")
    emit("sessions_ending_on_linked_data", sum(1 for v in result["last_version"].values() if linked and v >= linked),
         "sessions", link_version=linked, note="the last page each session loaded showed the version `link` "
         "published (or a later one holding only review decisions)")
    emit("load_average", os.getloadavg()[0], "1-min")
    return 0 if not result["errors"] and not lost else 1


if __name__ == "__main__":
    raise SystemExit(main())
