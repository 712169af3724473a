"""Issue 18's interaction defects, in AppTest (the browser twins are in tests/test_browser_ui.py): the review
flow moves on at once with its counts, lists decided pairs with an undo; the first start is not an "update"."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT
from tests.fixtures_linkage import copy_store, run_page, synthetic_linked_store

REVIEW = str(ROOT / "pages" / "review.py")


@pytest.fixture()
def review_app(tmp_path_factory, tmp_path, monkeypatch) -> tuple[AppTest, str]:
    path = copy_store(synthetic_linked_store(tmp_path_factory), tmp_path)  # decisions must not leak
    return run_page(REVIEW, path, monkeypatch), str(path)


def _count(at: AppTest) -> int:
    return int(at.metric[0].value.replace(",", ""))


def _audit_actions(path: str) -> list[tuple[str, str]]:
    from lib.access import audit

    rows = audit.read(audit.AuditLog.for_store(path))
    return list(zip(rows["action"], rows["detail"].fillna(""), strict=True))


def test_a_decision_moves_to_the_next_pair_and_the_count_falls_on_the_same_run(review_app):
    at, path = review_app
    before, first = _count(at), at.markdown
    first_reading = [m.value for m in first if "The model puts this pair at" in m.value]
    first_cards = at.dataframe[1].value.to_string() + at.dataframe[2].value.to_string()
    at.text_input(key="reviewer").set_value("Safeguarding lead").run()
    at.button(key="decide_accept").click().run()
    assert not at.exception, at.exception
    assert _count(at) == before - 1  # 190 -> 189 on the run of the click, not the one after
    message = " ".join(s.value for s in at.success)
    assert "Recorded: accept" in message and "the pair at probability" in message
    now_cards = at.dataframe[1].value.to_string() + at.dataframe[2].value.to_string()
    now_reading = [m.value for m in at.markdown if "The model puts this pair at" in m.value]
    assert (now_cards, now_reading) != (first_cards, first_reading), "the decided pair is still on screen"
    decided = at.expander[-1]
    assert "Decided pairs (1 most recent)" in decided.label
    assert "accepted (same child) by Safeguarding lead" in " ".join(m.value for m in decided.markdown)


def test_undo_writes_its_own_audited_version_and_returns_the_pair(review_app):
    from lib.records import store

    at, path = review_app
    before = _count(at)
    at.text_input(key="reviewer").set_value("Lead A").run()
    at.button(key="decide_reject").click().run()
    con = store.connect(path, read_only=True)
    try:
        version_after_decision = store.data_version(con)
    finally:
        con.close()
    assert _count(at) == before - 1
    at.button(key="undo_0").click().run()
    assert not at.exception, at.exception
    assert _count(at) == before
    assert any("Undone:" in s.value for s in at.success)
    assert "Decided pairs (0 most recent)" in at.expander[-1].label
    con = store.connect(path, read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM review_decisions").fetchall()[0][0] == 0
        assert store.data_version(con) != version_after_decision  # the undo is a version of its own
    finally:
        con.close()
    details = [d for a, d in _audit_actions(path) if a == "review_decision"]
    assert details[0].startswith("undo reject by Lead A (reviewer: Lead A") and details[1].startswith("reject")


def test_the_record_cards_read_as_words(review_app):
    at, _ = review_app
    cards = at.dataframe[1]
    shown = cards.value.to_string()
    assert "00:00:00" not in shown
    assert not set(cards.value["agency"]) & {"police", "health", "social_care", "education"}
    assert at.markdown and any("| Identifier | Group A | Group B |" in m.value for m in at.markdown)


def test_the_decision_buttons_have_keyboard_shortcuts(review_app):
    at, _ = review_app
    assert at.button(key="decide_accept").proto.shortcut.upper() == "A"
    assert at.button(key="decide_reject").proto.shortcut.upper() == "D"


# -- issue 15: the command line's views of children are audited as the pages' are ----------------------------

@pytest.fixture()
def linked_copy(tmp_path_factory, tmp_path) -> str:
    return str(copy_store(synthetic_linked_store(tmp_path_factory), tmp_path))


def _cli(*argv) -> tuple[int, str]:
    import contextlib
    import io

    from lib import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(list(argv))
    return code, out.getvalue()


def _rows(path: str, action: str):
    from lib.access import audit

    rows = audit.read(audit.AuditLog.for_store(path), action=action)
    return rows


def test_cli_view_across_as_lead_writes_the_pages_audit_rows(linked_copy):
    import json

    code, out = _cli("view", "across", "--role", "lead", "--db", linked_copy)
    assert code == 0
    data = json.loads(out)
    listed = _rows(linked_copy, "view_list")
    assert listed["subject"].tolist() == ["utla:all areas"]
    assert listed["detail"].iloc[0].startswith(f"{len(data['extra']['children'])} children listed")
    assert listed["user_name"].iloc[0].startswith("cli:") and listed["role"].iloc[0] == "(command line)"
    assert _rows(linked_copy, "view_child").empty and "child_records" not in data["tables"]  # none chosen

    child = data["extra"]["children"][2][0]
    code, out = _cli("view", "across", "--role", "lead", "--db", linked_copy, "--param", f"child={child}")
    assert code == 0 and json.loads(out)["tables"]["child_records"]["rows"]
    assert _rows(linked_copy, "view_child")["subject"].tolist() == [child]


def test_cli_view_review_writes_view_review_and_aggregate_views_write_none(linked_copy):
    code, _ = _cli("view", "review", "--role", "lead", "--db", linked_copy, "--param", "pair=1")
    assert code == 0
    rows = _rows(linked_copy, "view_review")
    assert len(rows) == 1 and rows["detail"].iloc[0].startswith("probability ")
    code, _ = _cli("view", "across", "--role", "analyst", "--db", linked_copy)
    assert code == 0
    assert _rows(linked_copy, "view_list").empty


def test_the_across_page_opens_no_child_until_one_is_chosen(linked_copy, monkeypatch):
    at = run_page(str(ROOT / "pages" / "across.py"), linked_copy, monkeypatch)
    assert not at.exception, at.exception
    assert at.selectbox(key="child_id").value is None
    assert _rows(linked_copy, "view_child").empty
    assert not any("records from" in m.value for m in at.markdown)
    child = at.selectbox(key="child_id").options[1].split(" — ")[0]
    at.selectbox(key="child_id").set_value(child).run()
    assert not at.exception, at.exception
    assert _rows(linked_copy, "view_child")["subject"].tolist() == [child]


@pytest.mark.parametrize("role", ["lead", "analyst", "commissioner"])
@pytest.mark.parametrize("layer", ["utla", "trust"])
def test_found_only_by_linkage_is_one_number_in_headline_and_sentence(tmp_path_factory, role, layer):
    from lib import views

    data = views.build("across", synthetic_linked_store(tmp_path_factory), {"layer": layer}, role)
    metrics = {row["label"]: row["value"] for row in data.tables["metrics"].frame.to_dict("records")}
    sentence = data.extra["slots"]["missed_reading"][0]
    assert sentence.startswith(f"{metrics['Found only by linkage']} of {metrics['Known to 2+ agencies']} children")


def test_the_childs_timeline_names_the_areas(tmp_path_factory):
    from lib import views

    store = synthetic_linked_store(tmp_path_factory)
    listed = views.build("across", store, {}, "lead").extra["children"]
    data = views.build("across", store, {"child": listed[0][0]}, "lead")
    labels = [t for trace in data.figures["child_timeline"].data if trace.texttemplate is not None
              for t in trace.texttemplate if t]
    records = data.tables["child_records"].frame
    area_column = "Where: Children's services"
    assert labels and set(labels) <= set(records[area_column].dropna()) | {"area not placed"}


def test_the_first_start_is_not_announced_as_a_data_update(tmp_path, monkeypatch):
    """Issue 18: right after the first start built the default dataset, no "Data updated … version 2"."""
    from functools import partial

    from lib.records import default, store

    monkeypatch.delenv("JOINEDUP_DB", raising=False)
    monkeypatch.setattr(store, "DEFAULT_DB", tmp_path / "default.duckdb")
    monkeypatch.setattr(default, "ensure_default_dataset",
                        partial(default.ensure_default_dataset, n_encounters=800, seed=3))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    said = [i.value for i in at.info] + [t.value for t in at.toast]
    assert not any("Data updated" in text for text in said), said
    at.run()  # nor on the next rerun
    assert not any("Data updated" in i.value for i in at.info)


# -- Boundaries: a clicked area's panel, place labels, titles in sentences -----------------------------------

def test_a_clicked_area_lists_every_layer_it_falls_in_with_shares_and_full_codes():
    from lib import views
    from lib.geo import alignment

    data = views.build_with("boundaries", None, {"area": "utla:E10000007"}, "analyst")  # Derbyshire
    panel = data.tables["place"].frame
    assert data.sentences[0].startswith("**Derbyshire** (Children's services, E10000007) falls in")
    expected = {code for members in alignment.memberships("utla", "E10000007").values() for code, _, _ in members}
    assert set(panel["Code"]) == expected  # every area of every other layer, from the official lookups
    assert panel["Area"].str.contains(r"\(\d+% of its LSOAs\)").any()  # shares where it is split
    with pytest.raises(ValueError, match="parameter area='utla:NOPE'"):
        views.build_with("boundaries", None, {"area": "utla:NOPE"}, "analyst")


def test_the_plain_base_map_draws_no_text_so_it_fetches_no_fonts():
    """Map text needs MapLibre glyph fonts from a font server (fonts.openmaptiles.org): the place labels added
    this session made the Boundaries page call it on every load (seen in Chromium), so the offline base map draws
    no text (tests/test_browser_offline.py fails on any outside request)."""
    from lib import views

    for params in ({}, {"place": "LS1 3EX"}):
        figure = views.build_with("boundaries", None, params, "analyst").figures["map"]
        assert not [t for t in figure.data if "text" in str(getattr(t, "mode", "") or "")], params


def test_layer_titles_keep_their_official_capitals_in_sentences():
    from lib import views

    data = views.build_with("boundaries", None, {"view": "misalignment", "layer": "utla", "against": "icb"}, "analyst")
    text = " ".join(data.sentences + data.notes)
    assert "integrated care boards (England)" in text and "(england)" not in text


# -- Compare: a count is never charted against the England and Wales total ----------------------------------

def test_a_count_chart_draws_the_areas_only_and_a_rate_chart_draws_england_and_wales(tmp_path_factory):
    from lib import views
    from lib.measures.compare import COMPARATOR, NATIONAL

    store = synthetic_linked_store(tmp_path_factory)
    count = views.build("compare", store, {"indicator": "police"}, "lead")
    drawn = list(count.figures["cmp_chart"].data[0].y)
    assert len(drawn) == len(count.extra["areas"])  # one bar per area compared, nothing else
    assert NATIONAL not in drawn and COMPARATOR not in drawn
    assert "totals over many areas" in count.tables["cmp_chart_table"].note
    rate = views.build("compare", store, {"indicator": "rate_police"}, "lead")
    assert NATIONAL in list(rate.figures["cmp_chart"].data[0].y)
