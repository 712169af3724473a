"""Exports: the board pack opens with python-pptx and holds the expected slides, images, alt text and text;
a commissioner's pack and CSVs are suppressed and hold no child-level row; CSV cells that a spreadsheet
would run are neutralised; the `boardpack` command writes the same deck."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pandas as pd
import pytest
from PIL import Image

from lib.export.csv_safe import to_csv_bytes
from tests.fixtures_linkage import build_packs, copy_store, private_linked_store
from tests.fixtures_linkage import open_deck as _deck

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return private_linked_store(tmp_path_factory, "export_store")


@pytest.fixture(scope="module")
def packs(store):
    return build_packs(store, {role: {"layer": "utla", "area": "E06000066", "role": role}
                               for role in ("lead", "commissioner")}, layers=("utla",))


def _all_text(deck) -> str:
    parts = []
    for slide in deck.slides:
        for shape in slide.shapes:
            if shape.has_text_frame:
                parts.append(shape.text_frame.text)
            if shape.has_table:
                parts += [cell.text for row in shape.table.rows for cell in row.cells]
        if slide.has_notes_slide:
            parts.append(slide.notes_slide.notes_text_frame.text)
    return "\n".join(parts)


def test_deck_slides_images_alt_text_and_text(packs):
    from lib.export.boardpack import SLIDE_TITLES
    from lib.geo.build import ATTRIBUTION

    deck = _deck(packs["lead"].deck)
    slides = list(deck.slides)
    # issue 18 added the trend and "why they differ" slides to the 8 of the first deck, issue 17 the area profile
    assert len(slides) == len(SLIDE_TITLES) == 11 and packs["lead"].slides == SLIDE_TITLES
    titles = [s.shapes.title.text for s in slides]
    assert titles[0] == "Somerset: where agencies' counts diverge"
    assert titles[1] == "Summary" and titles[-1] == "Attribution, date and data vintage"
    assert titles[4].startswith("Funnel plot") and titles[7].startswith("Comparison")
    assert titles[5] == "Trend by financial year: Somerset" and titles[6] == "Why they differ in Somerset"
    assert titles[8] == "Area profile: Somerset"
    pictures = [sh for s in slides for sh in s.shapes if sh.shape_type == 13]
    assert [p.name for p in pictures] == ["Map of the divergence ratio", "Divergence chart", "Funnel plot",
                                          "Trend by financial year", "Why they differ"]
    for picture in pictures:
        alt = picture._element.nvPicPr.cNvPr.get("descr")
        assert alt and len(alt) > 60
        image = Image.open(io.BytesIO(picture.image.blob))
        assert image.format == "PNG" and image.size[0] >= 900
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
        assert len(colours) > 20  # a drawn chart, not a blank canvas
    for slide in slides:  # nothing spills off the 16:9 slide
        for shape in slide.shapes:
            assert shape.left >= 0 and shape.top >= 0, shape.name
            assert shape.left + shape.width <= deck.slide_width and shape.top + shape.height <= deck.slide_height, \
                (slide.shapes.title.text, shape.name)
    text = _all_text(deck)
    assert ATTRIBUTION in text and "ONSPD November 2025" in text
    assert "Somerset" in slides[1].shapes[1].text_frame.text  # the plain-English summary names the area
    assert "Funnel limits are exact binomial" in text and "comparator group" in text.lower()
    for slide in slides[2:7]:  # every chart slide carries its table in the notes
        assert slide.has_notes_slide and " | " in slide.notes_slide.notes_text_frame.text
    table = [sh for sh in slides[7].shapes if sh.has_table][0].table
    header = [cell.text for cell in table.rows[0].cells]
    assert header[0] == "Indicator" and header[1] == "Somerset" and header[-2:] == ["Comparator group",
                                                                                     "England and Wales"]


def test_pngs_and_csvs_come_with_the_pack(packs):
    pack = packs["lead"]
    # with the trend and "why they differ" charts of issue 18 (the lead sees both for Somerset)
    assert set(pack.pngs) == {"map.png", "divergence.png", "funnel.png", "trend.png", "why.png"}
    for data in pack.pngs.values():
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(pack.csvs) == {"divergence_utla.csv", "comparison.csv", "comparator_group.csv"}
    frame = pd.read_csv(io.BytesIO(pack.csvs["divergence_utla.csv"]), encoding="utf-8-sig")
    assert {"area_code", "police", "children_social_care", "total", "verdict"} <= set(frame.columns)
    assert len(frame) == 175


def test_commissioner_pack_is_protected_and_has_no_child_rows(packs):
    """Issue 16: below the lead every count in the pack is published by cell key perturbation through the view
    builders (no area left out, no ``c``), A + B adds up, and the figures are not the lead's exact ones."""
    pack = packs["commissioner"]
    frame = pd.read_csv(io.BytesIO(pack.csvs["divergence_utla.csv"]), encoding="utf-8-sig", dtype=str)
    lead = pd.read_csv(io.BytesIO(packs["lead"].csvs["divergence_utla.csv"]), encoding="utf-8-sig")
    assert len(frame) == len(lead)  # nothing hidden: every area is published
    counts = frame[["police", "children_social_care", "total"]]
    assert not (counts == "c").any().any()
    numbers = counts.astype(float)
    assert (numbers >= 0).all().all() and (numbers == numbers.round()).all().all()
    assert (numbers["police"] + numbers["children_social_care"] == numbers["total"]).all()
    exact = lead.set_index("area_code")[["police", "children_social_care"]].astype(float)
    published = frame.set_index("area_code")[["police", "children_social_care"]].astype(float)
    assert (published != exact.loc[published.index]).any().any(), "nothing was perturbed"
    deck_text = _all_text(_deck(pack.deck))
    everything = deck_text + "".join(b.decode("utf-8-sig") for b in pack.csvs.values())
    assert "CH-" not in everything  # no child pseudonyms anywhere
    from lib.disclosure.notes import method_note

    assert method_note(True) in deck_text  # the methods slide names the disclosure method
    table = [sh for s in _deck(pack.deck).slides for sh in s.shapes if sh.has_table][0].table
    for row in list(table.rows)[1:]:
        assert "c" not in [c.text for c in list(row.cells)[1:]]
    lead_text = _all_text(_deck(packs["lead"].deck))
    assert method_note(True) not in lead_text and method_note(False) in lead_text


def test_formulas_are_neutralised_numbers_are_not():
    frame = pd.DataFrame({"area_name": ["=HYPERLINK(\"http://x\",\"y\")", "+44 1234", "-2+3", "@SUM(A1)",
                                        "\tcmd", "Leeds", "c"],
                          "count": [1, 2, -3, 4, 5, 6, 7]})
    frame["=total"] = frame["count"]
    rows = list(csv.reader(io.StringIO(to_csv_bytes(frame).decode("utf-8-sig"))))
    assert rows[0] == ["area_name", "count", "'=total"]
    names = [r[0] for r in rows[1:]]
    assert names[:5] == ["'=HYPERLINK(\"http://x\",\"y\")", "'+44 1234", "'-2+3", "'@SUM(A1)", "'\tcmd"]
    assert names[5:] == ["Leeds", "c"]
    assert [r[1] for r in rows[1:]][2] == "-3"  # a negative number stays a number


def test_cli_boardpack_writes_the_deck(store, tmp_path):
    db = copy_store(store, tmp_path)
    out = tmp_path / "deck.pptx"
    result = subprocess.run([sys.executable, "-m", "lib.cli", "boardpack", "--db", str(db), "--layer", "pfa",
                             "--area", "E23000005", "--role", "commissioner", "--out", str(out),
                             "--assets", str(tmp_path / "assets")], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["role"] == "commissioner" and summary["slides"][0] == "Board pack"
    deck = _deck(out.read_bytes())
    assert deck.slides[0].shapes.title.text.startswith("Greater Manchester")
    assert (tmp_path / "assets" / "funnel.png").exists() and (tmp_path / "assets" / "comparison.csv").exists()
    from lib.access import audit

    rows = audit.read(audit.AuditLog.for_store(db))  # the command line's row, in the audit file beside the store
    assert ("commissioner", "export", "pfa:E23000005") in set(rows[["role", "action", "subject"]]
                                                             .itertuples(index=False, name=None))
