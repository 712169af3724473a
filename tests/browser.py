"""Start the real app and drive it in Debian's Chromium through Playwright (no `playwright install`)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_available() -> bool:
    return Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is not None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_app(env: dict | None = None, timeout: float = 90, script: str = "app.py", log_path: Path | None = None):
    """Yield the base URL of the app (or one page script) served on a free loopback port. The server's own
    settings come from .streamlit/config.toml, as for a user (usage statistics off there, not here)."""
    port = _free_port()
    if log_path is not None:
        log = open(log_path, "w")  # noqa: SIM115 - closed in the finally below, after the server stops
    elif (ROOT / ".pytest_cache").exists():
        log = open(ROOT / ".pytest_cache" / f"streamlit-{port}.log", "w")  # noqa: SIM115
    else:
        log = subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / script), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the app exited with status {proc.returncode}")
            try:
                if urllib.request.urlopen(base + "/_stcore/health", timeout=2).read().strip() == b"ok":
                    break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("the app did not become healthy in time") from None
                time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log is not subprocess.DEVNULL:
            log.close()


@contextmanager
def browser_page(width: int = 1400, height: int = 1000):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height}, accept_downloads=True)
            yield page
        finally:
            browser.close()


def wait_idle(page, timeout_ms: int = 60_000) -> None:
    """Wait until Streamlit has finished running the script (no running indicator)."""
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stStatusWidget"]')
                && !!document.querySelector('[data-testid="stMain"]')""", timeout=timeout_ms)


# -- browsing the app while the store changes (issue 21; bench/bench_load.py) --------------------------------

#: The pages a safeguarding lead can open, by URL path (the Boundaries page is served at /).
LEAD_PAGES = ("boundaries", "across", "divergence", "compare", "profile", "scenario", "review", "audit", "about")
_STATUS = r"Data version (\d+)\b.*?\b([\d,]+) encounters"


#: The titles (h1) of the pages a lead opens, by URL path: how a navigation is known to have happened.
PAGE_TITLES = {"boundaries": "Boundaries", "across": "Across boundaries", "divergence": "Where counts diverge",
               "compare": "Compare areas", "scenario": "What if every agency recorded the NHS number?",
               "review": "Review uncertain links", "audit": "Audit trail", "data": "Data",
               "about": "About and methods", "profile": "Area profile"}


def nav_selector(url_path: str) -> str:
    return ('[data-testid="stSidebarNavLink"]' if url_path == "boundaries"
            else f'[data-testid="stSidebarNavLink"][href$="/{url_path}"]')


def open_page(page, url_path: str, timeout_ms: int = 120_000) -> None:
    """Go to a page through the sidebar navigation (the same Streamlit session), and wait until that page has
    been drawn by a finished run: its own title in the main area (the previous page's title differs), no
    running indicator, nothing stale."""
    page.locator(nav_selector(url_path)).first.click()
    try:
        page.wait_for_function(NAVIGATED_JS, arg=PAGE_TITLES[url_path], timeout=timeout_ms)
    except Exception as error:  # say what the page showed instead: a lost click, a hung run or an error
        raise AssertionError(f"{url_path!r} did not finish drawing in {timeout_ms / 1000:.0f} s: "
                             f"{_what_it_shows(page)}") from error


def _what_it_shows(page) -> dict:
    """What a page that did not finish shows (for a failure message): its address, title, whether a run is
    going, what is stale, and the end of its text."""
    try:
        return page.evaluate("""() => ({
            url: location.href,
            title: (document.querySelector('[data-testid="stMain"] h1') || {}).innerText || null,
            running: !!document.querySelector('[data-testid="stStatusWidget"]'),
            stale: document.querySelectorAll('[data-stale="true"]').length,
            exceptions: [...document.querySelectorAll('[data-testid="stException"], [data-testid="stAlert"]')]
                .map(e => e.innerText.slice(0, 300)),
            text: document.body.innerText.slice(-1500)})""")
    except Exception as error:  # noqa: BLE001 - the page itself is gone
        return {"unreadable": repr(error)}


NAVIGATED_JS = """(title) => { const h = document.querySelector('[data-testid="stMain"] h1');
    return !!h && h.innerText.trim() === title
        && !document.querySelector('[data-testid="stStatusWidget"]')
        && !document.querySelector('[data-stale="true"]'); }"""


#: The script has finished and its page is drawn: no running indicator, a title in the main area, nothing stale.
RENDERED_JS = """() => !document.querySelector('[data-testid="stStatusWidget"]')
    && !!document.querySelector('[data-testid="stMain"] h1')
    && !document.querySelector('[data-stale="true"]')"""


def wait_rendered(page, timeout_ms: int = 60_000) -> None:
    page.wait_for_function(RENDERED_JS, timeout=timeout_ms)


def page_state(page) -> dict:
    """What the page shows: the data version(s) and encounter count in its status line, and any error."""
    import re

    status = page.eval_on_selector_all('[data-testid="stSidebar"] [data-testid="stCaptionContainer"]',
                                       "els => els.map(e => e.innerText)")
    found = [m.groups() for text in status for m in [re.search(_STATUS, text, re.S)] if m]
    errors = page.eval_on_selector_all('[data-testid="stException"], [data-testid="stAlertContentError"]',
                                       "els => els.map(e => e.innerText.slice(0, 300))")
    return {"versions": [int(v) for v, _ in found], "encounters": [int(n.replace(",", "")) for _, n in found],
            "errors": errors}
