"""In real Chromium: the map is drawn, a layer toggles off, a postcode search names its areas."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from tests.browser import ROOT, browser_page, chromium_available, running_app, wait_idle

pytestmark = pytest.mark.skipif(not chromium_available() and not os.environ.get("JOINEDUP_REQUIRE_BROWSER"),
                                reason="Debian chromium not installed (apt-get install -y chromium)")


def _near(pixels: np.ndarray, colour, tolerance=6) -> np.ndarray:
    return (np.abs(pixels - np.array(colour)) <= tolerance).all(axis=1)


def test_map_draws_toggles_and_searches():
    errors: list[str] = []
    with running_app() as base, browser_page() as page:
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(base + "/")
        page.wait_for_selector("canvas.maplibregl-canvas", timeout=60_000)
        wait_idle(page)
        legend = page.locator(".js-plotly-plot .legendtext")
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .legendtext').length >= 4",
                               timeout=30_000)
        names = legend.all_text_contents()
        assert any("Police force areas" in n for n in names)

        # The map really painted: a screenshot of it shows the land fill and police-blue outlines.
        page.wait_for_timeout(1500)
        shot = Image.open(io.BytesIO(page.locator(".js-plotly-plot").first.screenshot())).convert("RGB")
        pixels = np.asarray(shot, dtype=int).reshape(-1, 3)
        land = _near(pixels, (0xF3, 0xF1, 0xEC)).sum()
        police = _near(pixels, (0x00, 0x72, 0xB2), 40).sum()
        assert land / len(pixels) > 0.05, "no land drawn"
        assert police > 500, "no police force outlines drawn"

        # Toggle police force areas off: its legend entry goes.
        page.get_by_text("Police force areas", exact=True).first.click()
        page.wait_for_function("""() => ![...document.querySelectorAll('.js-plotly-plot .legendtext')]
                                  .some(e => e.textContent.includes('Police force areas'))""", timeout=30_000)
        wait_idle(page)

        # Search a postcode: the side panel names the force, authority and ICB.
        box = page.get_by_label("Postcode or area name")
        box.fill("LS1 3EX")
        box.press("Enter")
        page.get_by_text("West Yorkshire", exact=True).first.wait_for(timeout=30_000)
        wait_idle(page)
        body = page.locator('[data-testid="stMain"]').inner_text()
        assert "Leeds Teaching Hospitals NHS Trust" in body
        assert "NHS West Yorkshire Integrated Care Board" in body
        assert not page.locator('[data-testid="stException"]').count()
    assert not errors, errors


LABELS_JS = """() => {
    const gd = document.querySelector('.js-plotly-plot');
    const map = gd && gd._fullLayout && gd._fullLayout.map && gd._fullLayout.map._subplot.map;
    if (!map || !map.isStyleLoaded()) return null;
    const ids = map.getStyle().layers.filter(l => l.type === 'symbol').map(l => l.id);
    if (!ids.length) return {ids, names: [], zoom: map.getZoom()};
    const names = map.queryRenderedFeatures({layers: ids}).map(f => f.properties.name);
    return {ids, names: [...new Set(names)], zoom: map.getZoom()};
}"""


def test_place_names_render_from_the_apps_own_glyphs_when_zoomed_in():
    """Zoomed to a postcode on the plain base map, MapLibre draws district names (from the official lookups)
    with glyphs served by the app (static/glyphs): they load (HTTP 200) and no request leaves the machine.
    Fails with Plotly's own "white-bg" style (glyphs from fonts.openmaptiles.org) or without static serving."""
    outside: list[str] = []
    glyphs: list[tuple[str, int]] = []
    errors: list[str] = []
    with running_app() as base, browser_page() as page:
        page.on("request", lambda r: outside.append(r.url) if r.url.startswith("http")
                and not r.url.startswith(base) else None)
        page.on("response", lambda r: glyphs.append((r.url, r.status)) if ".pbf" in r.url else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(base + "/")
        page.wait_for_selector("canvas.maplibregl-canvas", timeout=60_000)
        wait_idle(page)
        national = page.wait_for_function(LABELS_JS, timeout=30_000).json_value()
        assert national["names"] == [], "place names drawn at the national zoom (they crowd the map)"
        box = page.get_by_label("Postcode or area name")
        box.fill("LS1 3EX")
        box.press("Enter")
        page.get_by_text("West Yorkshire", exact=True).first.wait_for(timeout=30_000)
        wait_idle(page)
        shown = "() => { const r = (" + LABELS_JS + ")(); return r && r.names.length > 0 && r; }"
        zoomed = page.wait_for_function(shown, timeout=60_000).json_value()
        page.wait_for_timeout(1000)
        page.locator(".js-plotly-plot").first.screenshot(path=str(ROOT / ".pytest_cache" / "map_labels.png"))
        assert "Leeds" in zoomed["names"], zoomed
        assert zoomed["zoom"] >= 7.5
        page.wait_for_timeout(500)
    assert glyphs and all(status == 200 and "/app/static/glyphs/" in url for url, status in glyphs), glyphs
    assert outside == [], outside[:5]
    assert not errors, errors
