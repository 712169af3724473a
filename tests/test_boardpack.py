"""The board pack through the view layer (issues 15 and 18): the deck's numbers are the view builders'
(equal to ``view <page>``'s JSON for the same parameters and role); the chosen area is always present and
highlighted; trend, "why they differ", boundary-crossing and scenario slides; a short summary; shares as
percentages in the notes; the methods slide names the disclosure method; and, rendered by LibreOffice,
no text overflows its box or the slide (skipped where soffice is absent)."""
from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from tests.fixtures_linkage import build_packs, private_linked_store, synthetic_linked_store
from tests.fixtures_linkage import open_deck as _deck

AREA = "E06000066"  # Somerset
PARAMS = {"layer": "utla", "period": "all", "measure": "cse_records", "a": "police", "b": "children_social_care",
          "granularity": "year"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return private_linked_store(tmp_path_factory, "boardpack_store")


def _scenario_page():
    """A scenario view's PageData as lib.views.scenario.page_data returns it (title, headline, summary table)."""
    from lib.views.base import PageData, Table

    table = pd.DataFrame({"measure": ["Children truly known to 2+ agencies", "...recognised by NHS number alone"],
                          "today": [3188.0, 1666.0], "scenario": [3188.0, 2519.0], "change": [0.0, 853.0]})
    return PageData(page="scenario", role="lead", params={}, data_version="test", title="Simulation: police 100%",
                    sentences=["Of 3,188 children truly known to two or more agencies, the NHS number alone "
                               "recognises 1,666 today and 2,519 under this scenario (+853)."],
                    tables={"summary": Table(table)}, notes=["Police NHS-number capture: 100%."])


@pytest.fixture(scope="module")
def packs(store):
    return build_packs(store, {
        "lead": {"layer": "utla", "area": AREA, "role": "lead", "scenario": _scenario_page()},
        "commissioner": {"layer": "utla", "area": AREA, "role": "commissioner"},
        "across": {"layer": "utla", "area": AREA, "role": "commissioner", "kind": "across"},
    })


def _slide(deck, title_start: str):
    return next(s for s in deck.slides if s.shapes.title is not None and s.shapes.title.text.startswith(title_start))


def _texts(slide) -> list[str]:
    return [sh.text_frame.text for sh in slide.shapes if sh.has_text_frame and sh != slide.shapes.title]


def _view(store, page: str, params: dict, role: str) -> dict:
    """The view twin: what ``python -m lib.cli view <page> --format json`` writes (lib.views.build)."""
    import json

    from lib import views

    return json.loads(views.build(page, store, params, role).to_json())


def _table(spec: dict) -> pd.DataFrame:
    from lib.views.base import table_from_json

    return table_from_json(spec)


@pytest.mark.parametrize("role", ["lead", "commissioner"])
def test_deck_numbers_equal_the_view_twins_json(packs, store, role):
    from lib.export.csv_safe import to_csv_bytes
    from lib.export.deck_slides import cell_text

    pack, deck = packs[role], _deck(packs[role].deck)
    div = _view(store, "divergence", {**PARAMS, "area": AREA} if role == "lead" else PARAMS, role)
    cmp = _view(store, "compare", {"layer": "utla", "period": "all", "measure": "cse_records", "mode": "neighbours",
                                   "areas": [AREA]}, role)
    # the CSVs are the views' tables, cell for cell
    for name, spec in ((f"divergence_{PARAMS['layer']}.csv", div["tables"]["div_export"]),
                       ("comparison.csv", cmp["tables"]["cmp_table"]),
                       ("comparator_group.csv", cmp["tables"]["cmp_group_table"])):
        assert pack.csvs[name] == to_csv_bytes(_table(spec)), name
    # the comparison slide shows the compare view's table
    grid = [sh for sh in _slide(deck, "Comparison").shapes if sh.has_table][0].table
    shown = [[c.text for c in row.cells] for row in grid.rows]
    spec = cmp["tables"]["cmp_table"]
    assert shown[0] == spec["columns"]
    assert shown[1:] == [[cell_text(v) for v in row] for row in spec["rows"]]
    # the map's table (notes) is the divergence view's, area by area
    export = _table(div["tables"]["div_export"])
    counted = export[export["total"] > 0]
    notes = _slide(deck, "Map").notes_slide.notes_text_frame.text.splitlines()[1:]
    assert [line.split(" | ")[:3] for line in notes] == [
        [name, cell_text(a), cell_text(b)] for name, a, b in
        zip(counted["area_name"], counted["police"], counted["children_social_care"])]
    summary = "\n".join(_texts(_slide(deck, "Summary")))
    assert div["sentences"][div["sentence_names"]["funnel"]] in summary
    national = export["national_share"].dropna().iat[0]
    assert f"police hold {national:.0%}" in summary
    if role == "lead":  # the one-area parts of the view: its trend table and its decomposition
        assert div["sentences"][div["sentence_names"]["area"]] in summary
        why = _slide(deck, "Why they differ").notes_slide.notes_text_frame.text
        for component, value, _ in div["tables"]["div_waterfall_table"]["rows"]:
            assert f"{component} | {cell_text(value)} |" in why
        trend = _slide(deck, "Trend by financial year").notes_slide.notes_text_frame.text.splitlines()[1:]
        rows = _table(div["tables"]["div_trend_table"])
        assert [line.split(" | ")[:3] for line in trend] == [
            [p, cell_text(a), cell_text(b)] for p, a, b in zip(rows["period"], rows["count_a"], rows["count_b"])]
        assert list(rows["period"]) == sorted(set(rows["period"])) and all(" Q" not in p for p in rows["period"])


def test_summary_is_short_with_three_bullets_and_notes_give_percentages(packs):
    for name, pack in packs.items():
        deck = _deck(pack.deck)
        paragraph, bullets = _texts(_slide(deck, "Summary"))
        assert len(paragraph.split()) <= 60, (name, paragraph)
        assert len(bullets.splitlines()) == 3 and all(b.startswith("• ") for b in bullets.splitlines()), name
        assert "c%" not in bullets and "nan" not in bullets.lower()
    funnel = _slide(_deck(packs["lead"].deck), "Funnel plot").notes_slide.notes_text_frame.text.splitlines()
    assert funnel[0].split(" | ")[2] == "A share"
    shares = [line.split(" | ")[2] for line in funnel[1:]]
    assert shares and all(s.endswith("%") for s in shares)  # 100%, never a bare 1
    assert "100%" in shares or any(s != "0%" for s in shares)


def test_methods_slide_names_the_disclosure_method(packs):
    from lib.disclosure.notes import method_note

    for name, protected in (("lead", False), ("commissioner", True), ("across", True)):
        methods = "\n".join(_texts(_slide(_deck(packs[name].deck), "Data quality and methods")))
        assert method_note(protected) in methods, name
        assert method_note(not protected) not in methods, name


def test_chosen_area_is_present_and_highlighted():
    """Charts built from a view table: the chosen area with the fewest cases is still in the dumbbell (bold,
    ▶), ringed and named on the funnel, outlined and named on the map."""
    from lib.export import deck_figures as figs

    codes = [f"E0600{i:04d}" for i in range(1, 31)]
    rng = np.random.default_rng(1)
    a = rng.integers(5, 60, len(codes)).astype(float)
    b = rng.integers(5, 60, len(codes)).astype(float)
    a[-1], b[-1] = 1.0, 2.0  # the chosen area has the fewest cases
    export = pd.DataFrame({"area_code": codes, "area_name": [f"Area {i}" for i in range(30)], "police": a,
                           "children_social_care": b, "total": a + b, "share_a": a / (a + b),
                           "national_share": a.sum() / (a + b).sum(), "log_ratio": np.log((a + 0.5) / (b + 0.5)),
                           "verdict": ["within"] * 29 + ["below 99.8%"]})
    frame = figs.divergence_frame(export, "police", "children_social_care")
    assert frame["outside_998"].iat[-1] and frame["outside_95"].iat[-1] and not frame["outside_95"].iat[0]
    dumbbell = figs.dumbbell(frame, "police", "children_social_care", "records", codes[-1], top=20)
    ticks = list(dumbbell.layout.yaxis.ticktext)
    assert len(ticks) == 20 and "<b>▶ Area 29</b>" in ticks
    plain = figs.dumbbell(frame, "police", "children_social_care", "records", None, top=20)
    assert "Area 29" not in list(plain.data[1].y)  # without the rule the chosen area would be missing
    funnel = figs.funnel(frame, "police", "children_social_care", codes[-1], "Area 29")
    ring = [t for t in funnel.data if t.name == "Area 29 (chosen area)"]
    assert ring and list(ring[0].x) == [3.0] and "Area 29" in ring[0].text[0]


def test_chosen_area_is_outlined_on_the_map():
    from lib.export import deck_figures as figs
    from lib.measures import figures

    feature = figures.layer_geojson("utla")["features"][0]
    frame = pd.DataFrame({"area_code": [feature["id"]], "area_name": ["Chosen"], "count_a": [30.0],
                          "count_b": [10.0], "total": [40.0], "log_ratio": [np.log(30.5 / 10.5)]})
    fig = figs.deck_map(frame, "utla", "police", "children_social_care", feature["id"], "Chosen")
    assert [t.name for t in fig.data if t.name == "Chosen (chosen area)"]
    assert any("Chosen" in a.text for a in fig.layout.annotations)


def test_across_deck_from_the_across_view(packs, store):
    from lib.export.boardpack import ACROSS_SLIDE_TITLES
    from lib.export.csv_safe import to_csv_bytes

    pack = packs["across"]
    assert pack.kind == "across" and pack.slides == ACROSS_SLIDE_TITLES
    assert pack.file_stem == f"board_pack_across_utla_{AREA}_all"
    deck = _deck(pack.deck)
    assert deck.slides[0].shapes.title.text == "Somerset: children across boundaries"
    params = pack.views["across"].params
    view = _view(store, "across", {k: params[k] for k in ("layer", "top", "focus", "span")}, "commissioner")
    for name, table in (("spans_utla.csv", "spans_all"), ("flows_utla.csv", "flows_all"),
                        ("missed_utla.csv", "missed")):
        assert pack.csvs[name] == to_csv_bytes(_table(view["tables"][table])), name
    metrics = _slide(deck, "Headline figures")
    shown = "\n".join(_texts(metrics))
    for label, value, _, _ in view["tables"]["metrics"]["rows"]:
        assert label in shown and value in shown
    assert "nan" not in shown
    assert "CH-" not in "".join(b.decode("utf-8-sig") for b in pack.csvs.values())  # no child pseudonyms


def test_scenario_slide_when_a_scenario_is_given(packs):
    from lib.export.boardpack import SCENARIO_TITLE, SLIDE_TITLES

    assert packs["lead"].slides == [*SLIDE_TITLES[:8], SCENARIO_TITLE, *SLIDE_TITLES[8:]]
    assert SCENARIO_TITLE not in packs["commissioner"].slides
    slide = _slide(_deck(packs["lead"].deck), "Scenario: Simulation: police 100%")
    grid = [sh for sh in slide.shapes if sh.has_table][0].table
    assert [c.text for c in grid.rows[2].cells] == ["...recognised by NHS number alone", "1,666", "2,519", "+853"]
    assert "Police NHS-number capture: 100%." in slide.notes_slide.notes_text_frame.text


def test_overflow_check_finds_text_outside_its_box(tmp_path):
    from pptx import Presentation
    from pptx.util import Inches, Pt

    from lib.export import deck_check

    if not deck_check.available():
        pytest.skip("LibreOffice (soffice) or poppler-utils not installed")
    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[6])
    box = slide.shapes.add_textbox(Inches(1), Inches(1), Inches(4), Inches(0.5))
    box.text_frame.word_wrap = True
    box.text_frame.text = " ".join(["overflowing"] * 60)
    box.text_frame.paragraphs[0].font.size = Pt(18)
    out = io.BytesIO()
    prs.save(out)
    findings = deck_check.overflows(out.getvalue())
    assert findings and all(f.slide == 1 for f in findings)
    assert any("outside its box" in f.where for f in findings)


@pytest.mark.parametrize("name", ["lead", "commissioner", "across"])
def test_no_text_overflows_when_rendered(packs, name):
    from lib.export import deck_check

    if not deck_check.available():
        pytest.skip("LibreOffice (soffice) or poppler-utils not installed")
    findings = deck_check.overflows(packs[name].deck)
    assert not findings, "\n".join(map(str, findings[:20]))


def test_across_page_offers_the_boundary_crossing_deck(tmp_path_factory, monkeypatch):
    """The Across boundaries page's board pack button builds the boundary-crossing deck, not the divergence one
    (issue 18): its description names the Across slides."""
    from tests.browser import ROOT
    from tests.fixtures_linkage import run_page

    at = run_page(str(ROOT / "pages" / "across.py"), synthetic_linked_store(tmp_path_factory), monkeypatch)
    buttons = [b.proto for b in at.get("download_button") if b.proto.label == "Board pack (PowerPoint)"]
    assert len(buttons) == 1
    assert "children crossing boundaries, flows" in buttons[0].help
    assert "funnel plot" not in buttons[0].help


def test_commissioner_trend_slide_is_by_financial_year_from_the_published_counts(packs, store):
    """Aggregate roles see financial years (lib.access.roles.periods_for): the commissioner's deck has a trend
    chart by financial year whose every figure equals what the divergence view publishes to that role for that
    year (the disclosure service's protected counts). Before, the trend was lead-only (quarters) and this slide
    said the counts were too small to show."""
    from lib.export.deck_slides import cell_text

    pack, deck = packs["commissioner"], _deck(packs["commissioner"].deck)
    assert "trend.png" in pack.pngs
    slide = _slide(deck, "Trend by financial year")
    assert any(sh.shape_type == 13 for sh in slide.shapes)  # a picture: the chart
    lines = slide.notes_slide.notes_text_frame.text.splitlines()[1:]
    assert lines, "no trend rows in the notes"
    for line in lines:
        year, count_a, count_b = line.split(" | ")[:3]
        assert " Q" not in year
        published = _table(_view(store, "divergence", {**PARAMS, "period": year}, "commissioner")["tables"]
                           ["div_export"])
        row = published[published["area_code"] == AREA]
        assert [count_a, count_b] == [cell_text(row["police"].iat[0]), cell_text(row["children_social_care"].iat[0])]


def test_a_pack_reads_the_pages_stored_cube_and_equals_one_built_from_it(store, tmp_path, monkeypatch):
    """Given no cube, the board pack reads the exact cube the pages read (``agg_cube``, every layer) instead of
    assembling its one layer from the stored rows again, so its figures and notes are the page's by construction:
    nothing is counted or assembled, and the deck's words equal those of a pack given that cube."""
    from lib.export import boardpack, images
    from lib.measures import aggregates, counts
    from lib.records import aggregates as stored
    from lib.records import store as records_store
    from tests.fixtures_linkage import copy_store

    # both packs made at one instant: the deck says when it was produced, to the minute, so two packs built either
    # side of a minute's turn differ there (a CI run on a loaded machine failed here once, session 22)
    made = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    frozen = type("Frozen", (datetime,), {"now": classmethod(lambda cls, tz=None: made)})
    monkeypatch.setattr(boardpack, "datetime", frozen)
    path = copy_store(store, tmp_path)
    con = records_store.connect(path)
    with records_store.cursor(con) as cur, records_store.atomic(cur):  # the cubes, as every write leaves them
        stored.refresh_cubes(cur, force=True)
    con.close()
    con = records_store.connect(path, read_only=True)
    try:
        assert aggregates.stored_cube(con, "exact") is not None
        page_cube = aggregates.cube(con)  # what pages/divergence.py reads
        spec = {"layer": "utla", "area": AREA, "role": "commissioner", "audit": False}
        given = boardpack.build_board_pack(con, cube=page_cube, **spec)

        def refuse(*args, **kwargs):
            raise AssertionError("the board pack assembled or counted a cube the store holds")

        monkeypatch.setattr(aggregates, "from_rows", refuse)
        monkeypatch.setattr(counts, "build_cube", refuse)
        read = boardpack.build_board_pack(con, **spec)
    finally:
        con.close()
        images.close()
    assert read.slides == given.slides
    words = [[_texts(slide) for slide in _deck(pack.deck).slides] for pack in (read, given)]
    assert words[0] == words[1]
