"""Does any text of a deck overflow its box or the slide? Render the deck with LibreOffice (``soffice
--headless --convert-to pdf``), read where every rendered word landed (poppler's ``pdftotext -bbox``) and
compare with the boxes python-pptx placed (text boxes, placeholders and tables). A word outside the page,
or outside every text-holding box of its slide (LibreOffice grows a box whose text does not fit, so the
overflow lands below the box's stored extent), is a finding. Charts are pictures: their text is checked
by eye (the rendered PNGs), not here.

``overflows(deck_bytes)`` -> list of ``Finding``; ``render_pngs(deck_bytes, out_dir)`` -> the slide PNGs.
Needs Debian's libreoffice-impress and poppler-utils (``available()``).
"""
from __future__ import annotations

import html
import io
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

EMU_PER_POINT = 12700
TOLERANCE = 3.0  # points: anti-aliasing and font metrics differences at the box edge
_PAGE = re.compile(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', re.S)
_WORD = re.compile(r'<word xMin="([\d.-]+)" yMin="([\d.-]+)" xMax="([\d.-]+)" yMax="([\d.-]+)">(.*?)</word>')


@dataclass(frozen=True)
class Finding:
    slide: int  # 1-based
    title: str
    word: str
    where: str  # "off the slide" or "outside its box (<nearest box>)"

    def __str__(self) -> str:
        return f"slide {self.slide} ({self.title}): {self.word!r} {self.where}"


def available() -> bool:
    return bool(shutil.which("soffice") and shutil.which("pdftotext") and shutil.which("pdftoppm"))


def to_pdf(deck: bytes, work: Path, timeout: float = 240) -> Path:
    """The deck as PDF, rendered by LibreOffice headless (its own profile directory, so it never meets a
    running LibreOffice)."""
    source = work / "deck.pptx"
    source.write_bytes(deck)
    profile = (work / "lo-profile").resolve().as_uri()
    result = subprocess.run(["soffice", f"-env:UserInstallation={profile}", "--headless", "--convert-to", "pdf",
                             "--outdir", str(work), str(source)], capture_output=True, text=True, timeout=timeout)
    pdf = work / "deck.pdf"
    if result.returncode != 0 or not pdf.exists():
        raise RuntimeError(f"LibreOffice could not render the deck: {result.stderr.strip()[-500:]}")
    return pdf


def render_pngs(deck: bytes, out_dir: Path, dpi: int = 80) -> list[Path]:
    """One PNG per slide (for looking at the deck as a board will)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pdf = to_pdf(deck, out_dir)
    subprocess.run(["pdftoppm", "-r", str(dpi), "-png", str(pdf), str(out_dir / "slide")], check=True, timeout=240)
    return sorted(out_dir.glob("slide-*.png"))


def _words(pdf: Path) -> list[tuple[float, float, list[tuple[float, float, float, float, str]]]]:
    text = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True,
                          timeout=120).stdout
    pages = []
    for width, height, body in _PAGE.findall(text):
        words = [(float(x0), float(y0), float(x1), float(y1), html.unescape(w)) for x0, y0, x1, y1, w in
                 _WORD.findall(body)]
        pages.append((float(width), float(height), words))
    return pages


def _boxes(deck: bytes) -> tuple[float, float, list[tuple[str, list[tuple[str, float, float, float, float]]]]]:
    """(slide width, slide height, [(title, [(box name, left, top, right, bottom) in points])])."""
    from pptx import Presentation

    prs = Presentation(io.BytesIO(deck))
    slides = []
    for slide in prs.slides:
        boxes = []
        for shape in slide.shapes:
            if shape.has_text_frame or getattr(shape, "has_table", False):
                left, top = shape.left / EMU_PER_POINT, shape.top / EMU_PER_POINT
                boxes.append((shape.name, left, top, left + shape.width / EMU_PER_POINT,
                              top + shape.height / EMU_PER_POINT))
        title = slide.shapes.title.text if slide.shapes.title is not None else ""
        slides.append((title, boxes))
    return prs.slide_width / EMU_PER_POINT, prs.slide_height / EMU_PER_POINT, slides


def overflows(deck: bytes) -> list[Finding]:
    """Every rendered word that lies off its slide or outside every text box of its slide."""
    width, height, slides = _boxes(deck)
    with tempfile.TemporaryDirectory(prefix="deck-check-") as tmp:
        pages = _words(to_pdf(deck, Path(tmp)))
    findings = []
    for number, ((title, boxes), (page_w, page_h, words)) in enumerate(zip(slides, pages), start=1):
        sx, sy = page_w / width, page_h / height  # PDF points per slide point (1 unless LibreOffice rescaled)
        for x0, y0, x1, y1, word in words:
            x0, x1, y0, y1 = x0 / sx, x1 / sx, y0 / sy, y1 / sy
            if x0 < -TOLERANCE or y0 < -TOLERANCE or x1 > width + TOLERANCE or y1 > height + TOLERANCE:
                findings.append(Finding(number, title, word, "off the slide"))
                continue
            inside = [b for b in boxes if x0 >= b[1] - TOLERANCE and y0 >= b[2] - TOLERANCE
                      and x1 <= b[3] + TOLERANCE and y1 <= b[4] + TOLERANCE]
            if not inside:
                cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
                near = min(boxes, key=lambda b: max(b[1] - cx, 0, cx - b[3]) + max(b[2] - cy, 0, cy - b[4]),
                           default=("no box", 0, 0, 0, 0))
                findings.append(Finding(number, title, word, f"outside its box ({near[0]})"))
    return findings
