"""Start the real app and drive it in Debian's Chromium through Playwright (no `playwright install`)."""
from __future__ import annotations

import contextlib
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


#: Where each served app's output goes, and the logs of the apps started so far (newest last).
LOG_DIR = Path(os.environ.get("JOINEDUP_APP_LOGS", "/tmp/joinedup-app-logs"))
SERVER_LOGS: list[Path] = []


def _server_log_tail(lines: int = 40) -> str:
    """The last lines of the newest served app's output: what the server said while a page hung."""
    if not SERVER_LOGS or not SERVER_LOGS[-1].exists():
        return ""
    return "\n".join(SERVER_LOGS[-1].read_text(errors="replace").splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_app(env: dict | None = None, timeout: float = 90, script: str = "app.py", log_path: Path | None = None):
    """Yield the base URL of the app (or one page script) served on a free loopback port. The server's own
    settings come from .streamlit/config.toml, as for a user (usage statistics off there, not here)."""
    port = _free_port()
    if log_path is None:  # kept: a page that does not finish drawing quotes the server's last lines
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log_path = LOG_DIR / f"streamlit-{port}.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed in the finally below, after the server stops
    SERVER_LOGS.append(Path(log_path))
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
    running indicator, nothing stale.

    A page already open is first left for another: the check above would pass at once on the old drawing
    (same title, the rerun not yet started) and read the sidebar of the run before (a flaky failure once)."""
    title = page.evaluate("() => (document.querySelector('[data-testid=\"stMain\"] h1') || {}).innerText || ''")
    if title.strip() == PAGE_TITLES[url_path]:
        open_page(page, "about" if url_path != "about" else "boundaries", timeout_ms)
    step = "the click on its link"
    try:
        page.locator(nav_selector(url_path)).first.click()
        step = "its drawing"
        try:
            page.wait_for_function(NAVIGATED_JS, arg=PAGE_TITLES[url_path], timeout=timeout_ms // 2)
        except Exception:  # noqa: BLE001 - idle and not there (the old page, or a blank main area, seen in CI
            # after a version switch): clicked once more, as a person would (bench_load)
            if page.evaluate("() => !!document.querySelector('[data-testid=\"stStatusWidget\"]')"):
                raise
            step = "its drawing after a second click"
            page.locator(nav_selector(url_path)).first.click()
            page.wait_for_function(NAVIGATED_JS, arg=PAGE_TITLES[url_path], timeout=timeout_ms // 2)
    except Exception as error:  # say what the page showed instead: a lost click, a hung run or an error
        raise AssertionError(f"{url_path!r}: {step} did not finish ({str(error).splitlines()[0]}): "
                             f"{_what_it_shows(page)}\nthe server's last lines:\n{_server_log_tail()}") from error


def _what_it_shows(page) -> dict:
    """What a page that did not finish shows (for a failure message): its address, title, whether a run is
    going, what is stale, and the end of its text."""
    try:
        shown = page.evaluate("""() => ({
            url: location.href,
            title: (document.querySelector('[data-testid="stMain"] h1') || {}).innerText || null,
            running: !!document.querySelector('[data-testid="stStatusWidget"]'),
            stale: document.querySelectorAll('[data-stale="true"]').length,
            exceptions: [...document.querySelectorAll('[data-testid="stException"], [data-testid="stAlert"]')]
                .map(e => e.innerText.slice(0, 300)),
            overlays: [...document.querySelectorAll('[role="dialog"], [data-testid="stToast"]')]
                .map(e => e.innerText.slice(0, 300)),
            text: document.body.innerText.slice(-1500)})""")
    except Exception as error:  # noqa: BLE001 - the page itself is gone
        return {"unreadable": repr(error)}
    with contextlib.suppress(Exception):  # and a picture of it, beside the server logs
        shown["screenshot"] = str(LOG_DIR / f"unfinished-{int(time.time() * 1000)}.png")
        page.screenshot(path=shown["screenshot"], full_page=True)
    return shown


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
