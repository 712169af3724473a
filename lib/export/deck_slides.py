"""The board pack's slide layouts (python-pptx, 16:9): title, summary (a short paragraph and three bullets),
a chart with its table alternative in the speaker notes, a table, and bullet lists. Only layout: the text and
numbers come from lib.export.boardpack, which takes them from the view builders.
"""
from __future__ import annotations

import io

import numpy as np
import pandas as pd

WIDTH, HEIGHT = 13.333, 7.5  # inches
TOP = 1.25  # below the title


class Slides:
    """The presentation being built and the helpers every slide uses (16:9, title-only layout)."""

    def __init__(self, pngs: dict[str, bytes], alts: dict[str, str], chart_names: dict[str, str]):
        from pptx import Presentation
        from pptx.util import Inches

        self.prs = Presentation()
        self.prs.slide_width, self.prs.slide_height = Inches(WIDTH), Inches(HEIGHT)
        self.pngs, self.alts, self.chart_names = pngs, alts, chart_names
        self.titles: list[str] = []

    def titled(self, title: str):
        from pptx.util import Inches, Pt

        slide = self.prs.slides.add_slide(self.prs.slide_layouts[5])  # title only
        slide.shapes.title.text = title
        slide.shapes.title.text_frame.paragraphs[0].font.size = Pt(28)
        slide.shapes.title.text_frame.word_wrap = True
        slide.shapes.title.top, slide.shapes.title.height = Inches(0.3), Inches(0.9)
        slide.shapes.title.left, slide.shapes.title.width = Inches(0.5), Inches(12.3)
        self.titles.append(title)
        return slide

    @staticmethod
    def bullets(slide, lines, top=TOP + 0.1, size=16, left=0.6, width=12.1, height=5.8, bullet=False, bold_first=False):
        from pptx.util import Inches, Pt

        box = slide.shapes.add_textbox(Inches(left), Inches(top), Inches(width), Inches(height))
        frame = box.text_frame
        frame.word_wrap = True
        for i, line in enumerate(lines):
            paragraph = frame.paragraphs[0] if i == 0 else frame.add_paragraph()
            paragraph.text = ("• " + line) if bullet and not (bold_first and i == 0) else line
            paragraph.font.size = Pt(size)
            paragraph.font.bold = bold_first and i == 0
            paragraph.space_after = Pt(10)
        return box

    def picture(self, slide, key, left, top, width, height=HEIGHT - TOP - 0.15):
        """The image scaled to fit the box (width × height inches), keeping its aspect ratio, centred."""
        from PIL import Image
        from pptx.util import Inches

        w, h = Image.open(io.BytesIO(self.pngs[key])).size
        scale = min(width / w, height / h)
        left += (width - w * scale) / 2
        pic = slide.shapes.add_picture(io.BytesIO(self.pngs[key]), Inches(left), Inches(top),
                                       width=Inches(w * scale), height=Inches(h * scale))
        pic.name = self.chart_names[key]
        pic._element.nvPicPr.cNvPr.set("descr", self.alts[key])  # alt text (python-pptx has no setter)
        return pic

    @staticmethod
    def notes(slide, text):
        slide.notes_slide.notes_text_frame.text = text

    def table(self, slide, frame: pd.DataFrame, *, top=TOP, left=0.4, width=12.5, first=4.9, size=9,
              row_height=0.3, header_height=0.5, highlight_column: int | None = None):
        """``frame`` (already text, as the view shows it) as a slide table; the first column ``first``
        inches wide; ``highlight_column`` (the chosen area) in bold. Row heights are minimums: a row whose
        text needs more grows (lib.export.deck_check finds a table that then runs into the next box)."""
        from pptx.util import Inches, Pt

        rows, cols = len(frame) + 1, len(frame.columns)
        height = header_height + row_height * (rows - 1)
        shape = slide.shapes.add_table(rows, cols, Inches(left), Inches(top), Inches(width), Inches(height))
        grid = shape.table
        grid.rows[0].height = Inches(header_height)
        for i in range(1, rows):
            grid.rows[i].height = Inches(row_height)
        grid.columns[0].width = Inches(first)
        for j in range(1, cols):
            grid.columns[j].width = Inches((width - first) / (cols - 1))
        for j, name in enumerate(frame.columns):
            grid.cell(0, j).text = str(name)
        for i, row in enumerate(frame.itertuples(index=False, name=None), start=1):
            for j, value in enumerate(row):
                grid.cell(i, j).text = cell_text(value)
        for i in range(rows):
            for j in range(cols):
                cell = grid.cell(i, j)
                cell.margin_top = cell.margin_bottom = Pt(2)
                for paragraph in cell.text_frame.paragraphs:
                    paragraph.font.size = Pt(size)
                    paragraph.font.bold = i == 0 or j == highlight_column
        return grid

    def save(self) -> bytes:
        out = io.BytesIO()
        self.prs.save(out)
        return out.getvalue()


def cell_text(value, percent: bool = False) -> str:
    """A cell as text: counts with thousands separators, other numbers to 2 places, shares as percentages
    (``percent``); text (such as c) as it is."""
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if percent:
        return f"{float(value):.0%}"
    if isinstance(value, (float, np.floating)):
        return f"{value:,.0f}" if abs(value - round(value)) < 1e-9 else f"{value:,.2f}"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    return str(value)


def table_text(frame: pd.DataFrame, columns: dict[str, str], rows: int = 25, percent=()) -> str:
    """A plain-text table (a chart's table alternative, for speaker notes and screen readers); columns in
    ``percent`` (shares 0-1) are written as percentages."""
    shown = frame[list(columns)].head(rows)
    lines = [" | ".join(columns.values())]
    for row in shown.itertuples(index=False, name=None):
        lines.append(" | ".join(cell_text(v, c in percent) for c, v in zip(columns, row)))
    return "\n".join(lines)


def words(text: str) -> int:
    return len(text.split())
