"""Plotly figures to PNG with kaleido 1.x and the system Chromium, offline.

Why a kept browser: starting Chromium and loading plotly.js costs about 4 s on this machine, rendering
a chart about 0.5 s and a MapLibre map about 3 s. One headless Chromium (``n`` tabs) is started on first
use and kept for the life of the process on a background event-loop thread, so a second board pack
pays only for rendering, and several figures render concurrently in its tabs. ``warm_up()`` starts it
early (e.g. while the data is being counted). MathJax is turned off (kaleido would fetch it from a CDN)
and plotly.js comes from the installed plotly package, so nothing is fetched from the internet.
"""
from __future__ import annotations

import asyncio
import atexit
import os
import threading
from concurrent.futures import Future
from pathlib import Path

import plotly.graph_objects as go

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
TABS = 2
DEFAULT_SIZE = (1200, 675)  # 16:9, the slide's picture area


class _Renderer:
    """One kaleido instance on its own event-loop thread; thread-safe ``render``."""

    def __init__(self, tabs: int = TABS):
        self.tabs = tabs
        self.loop: asyncio.AbstractEventLoop | None = None
        self.kaleido = None
        self.ready: Future | None = None
        self.lock = threading.Lock()

    def start(self) -> Future:
        with self.lock:
            if self.ready is not None:
                return self.ready
            if Path(CHROMIUM).exists():
                os.environ.setdefault("BROWSER_PATH", CHROMIUM)  # choreographer's browser location
            self.loop = asyncio.new_event_loop()
            threading.Thread(target=self.loop.run_forever, name="kaleido", daemon=True).start()
            self.ready = asyncio.run_coroutine_threadsafe(self._open(), self.loop)
            return self.ready

    async def _open(self):
        import kaleido

        self.kaleido = kaleido.Kaleido(n=self.tabs, mathjax=False, timeout=120)
        await self.kaleido.__aenter__()
        return True

    async def _render(self, figures, opts):
        while self.kaleido is None or not self.ready.done():  # still starting (queued behind _open)
            if self.ready.done() and self.ready.exception() is not None:
                raise self.ready.exception()
            await asyncio.sleep(0.05)
        return await asyncio.gather(*[self.kaleido.calc_fig(fig, opts=dict(opts[i]))
                                      for i, fig in enumerate(figures)])

    def submit(self, figures: list[go.Figure], opts: list[dict]) -> Future:
        self.start()
        return asyncio.run_coroutine_threadsafe(self._render(figures, opts), self.loop)

    def close(self) -> None:
        with self.lock:
            if self.ready is None or self.loop is None:
                return
            try:
                if self.ready.done() and self.kaleido is not None:
                    asyncio.run_coroutine_threadsafe(self.kaleido.__aexit__(None, None, None),
                                                     self.loop).result(timeout=30)
            except Exception:  # noqa: BLE001 - closing at exit: the browser may already be gone
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.ready, self.kaleido, self.loop = None, None, None


_RENDERER = _Renderer()
atexit.register(_RENDERER.close)


def warm_up() -> None:
    """Start the browser in the background (returns at once)."""
    _RENDERER.start()


def close() -> None:
    """Stop the kept browser (tests and benchmarks that measure a cold start)."""
    _RENDERER.close()


class PendingImages:
    """PNGs being rendered in the background; ``result()`` waits for them (dict keyed like the figures)."""

    def __init__(self, keys: list[str], future: Future):
        self.keys, self.future = keys, future

    def result(self, timeout: float = 300) -> dict[str, bytes]:
        return dict(zip(self.keys, self.future.result(timeout=timeout)))


def to_png_async(figures: dict[str, go.Figure], size: tuple[int, int] = DEFAULT_SIZE, scale: float = 1.0,
                 sizes: dict[str, tuple[int, int]] | None = None) -> PendingImages:
    """Start rendering each figure to PNG in the kept browser (concurrently, in its tabs); returns at once
    so the caller can go on computing while Chromium draws."""
    keys = list(figures)
    opts = []
    for key in keys:
        width, height = (sizes or {}).get(key, size)
        opts.append({"format": "png", "width": width, "height": height, "scale": scale})
    return PendingImages(keys, _RENDERER.submit([figures[k] for k in keys], opts))
