"""Every page in every role (AppTest): the role decides which pages and widgets exist; aggregate-only roles
never get a child-level row or an unsuppressed small count, on screen or in a download."""
from __future__ import annotations

import re

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from lib.access.roles import PAGE_ROLES, ROLES, may_open
from lib.disclosure.notes import METHOD
from pages import common
from tests.conftest import ROOT
from tests.fixtures_linkage import copy_store, synthetic_linked_store

# url_path -> page script: the table app.py builds its navigation from, so pages added later are covered too.
APP_PAGES = {page.url_path: page.script for page in common.APP_PAGES}
CHILD_WIDGETS = ("child_id", "child_area", "review_pair", "decide_accept", "decide_reject")
NOT_COUNTS = re.compile(r"^(rank|#|seq|period|year|quarter|code|area_code|row|layer)$", re.IGNORECASE)


def test_every_page_in_app_is_in_the_role_table_and_exists():
    assert set(APP_PAGES) == set(PAGE_ROLES), (set(APP_PAGES) ^ set(PAGE_ROLES))
    for script in APP_PAGES.values():
        assert (ROOT / script).exists(), script


@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    return synthetic_linked_store(tmp_path_factory)


@pytest.fixture()
def store_copy(linked, tmp_path, monkeypatch):
    import streamlit as st

    path = copy_store(linked, tmp_path)
    monkeypatch.setenv("JOINEDUP_DB", str(path))
    st.cache_resource.clear()
    st.cache_data.clear()
    yield path
    st.cache_resource.clear()


def run_keeping_media(at: AppTest) -> AppTest:
    """``at.run()``, keeping the run's media store (where its CSV downloads are) on the AppTest as
    ``media_stores``: AppTest drops its runtime after the run, and a store looked up later by scanning the heap
    may already be collected."""
    from streamlit.testing.v1 import app_test

    made = []

    class KeptStorage(app_test.MemoryMediaFileStorage):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    original = app_test.MemoryMediaFileStorage
    app_test.MemoryMediaFileStorage = KeptStorage
    try:
        at.run()
    finally:
        app_test.MemoryMediaFileStorage = original
    at.media_stores = made
    return at


def _run_page(script: str, role: str, tables: bool = False) -> AppTest:
    at = AppTest.from_file(str(ROOT / script), default_timeout=180)
    at.session_state["demo_role"] = role
    if tables:  # open the Table tab of every chart, where the CSV downloads are
        for key in TABLE_TABS:
            at.session_state[key] = "Table"
    run_keeping_media(at)
    assert not at.exception, at.exception
    return at


def _keys(at: AppTest) -> set[str]:
    keys = set()
    for kind in ("selectbox", "button", "text_input", "download_button", "file_uploader", "radio", "slider"):
        for widget in at.get(kind):
            if getattr(widget, "key", None):
                keys.add(widget.key)
    return keys


def _small_counts(frame: pd.DataFrame) -> list[tuple[str, object]]:
    """Cells that are whole numbers from 1 to 5 in a column that is not a rank, code or period."""
    found = []
    for column in frame.columns:
        if NOT_COUNTS.match(str(column)) or "code" in str(column).lower():
            continue
        series = frame[column]
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_float_dtype(series):
            continue
        for value in series.dropna():
            text = str(value).strip()
            if re.fullmatch(r"[1-5]", text):
                found.append((column, value))
    return found


def _download_frames(at: AppTest) -> list[pd.DataFrame]:
    """The CSV downloads on a page, read back from the in-memory media store of the page's run (kept by
    ``run_keeping_media``; found by the file id in the button's URL). Downloads built only on click (board packs)
    have no URL yet."""
    import io

    stores = at.media_stores
    frames = []
    for button in at.get("download_button"):
        url = button.proto.url
        if not url.endswith(".csv"):
            continue
        file_id = url.rsplit("/", 1)[-1].split(".")[0]
        media = next((s._files_by_id[file_id] for s in stores if file_id in s._files_by_id), None)
        assert media is not None, f"download {button.proto.label!r} not found"
        frames.append(pd.read_csv(io.BytesIO(media.content), dtype=str))
    return frames


TABLE_TABS = ("spans_view", "flows_view", "missed_view", "div_dumbbell_view", "div_map_view", "div_funnel_view",
              "div_trend_view", "div_waterfall_view")


@pytest.mark.parametrize("role", ROLES)
def test_each_page_opens_only_for_its_roles(store_copy, role):
    for url, script in APP_PAGES.items():
        at = _run_page(script, role)
        refused = any("cannot open this page" in e.value for e in at.error)
        assert refused == (not may_open(role, url)), (role, url)
        if refused:
            assert not at.dataframe and not at.get("plotly_chart") and not at.get("download_button"), (role, url)


#: Pages whose counts come from the disclosure service (issue 16): small counts are published perturbed, not
#: hidden, and the page names the method; the others still hide 1-5 as ``c`` until they move to the service.
PERTURBED_PAGES = {"compare", "divergence", "across", "data"}


@pytest.mark.parametrize("role", ["analyst", "commissioner"])
def test_aggregate_roles_see_no_child_rows_and_no_small_counts(store_copy, role):
    downloads = 0
    for url, script in APP_PAGES.items():
        if not may_open(role, url):
            continue
        at = _run_page(script, role, tables=True)
        if url in PERTURBED_PAGES:
            assert METHOD in [c.value for c in at.caption], (role, url, "the method is not named")
        keys = _keys(at)
        # issue 16: a page publishing by cell key perturbation (it names the method) shows small perturbed counts
        # by design (no true count 1-5 can be pinned: tests/test_disclosure_pages.py, tests/test_attack.py); a
        # page still on per-table suppression must show none
        perturbed = METHOD in [c.value for c in at.caption]
        assert not keys & set(CHILD_WIDGETS), (role, url, keys & set(CHILD_WIDGETS))
        assert not any("Open one child" in s.value for s in at.subheader), (role, url)
        for frame in at.dataframe:
            value = frame.value
            assert not {"child_id", "Child", "record_key", "Link method"} & set(map(str, value.columns)), (role, url)
            assert not value.astype(str).apply(lambda c: c.str.contains(r"\bCH-\w", regex=True)).any().any(), \
                (role, url, "a child pseudonym is shown")
            small = _small_counts(value)
            assert perturbed or not small, (role, url, small[:5])
            assert not (value.astype(str) == "c").any().any() or not perturbed, (role, url, "c beside perturbation")
        for metric in at.metric:
            assert perturbed or not re.fullmatch(r"[1-5]", str(metric.value).strip()), (role, url, metric.label)
        for frame in _download_frames(at):
            downloads += 1
            assert perturbed or not _small_counts(frame), (role, url, "download", _small_counts(frame)[:5])
            assert not frame.astype(str).apply(lambda c: c.str.contains(r"\bCH-\w", regex=True)).any().any()
    assert downloads >= 2, "no CSV download was checked"


def test_lead_sees_child_level_parts_and_unsuppressed_counts(store_copy):
    at = _run_page(APP_PAGES["across"], "lead", tables=True)
    assert "child_id" in _keys(at)
    assert any(_small_counts(f.value) for f in at.dataframe), "the small-count check would never fire"
    assert any(_small_counts(f) for f in _download_frames(at)), "the download check would never fire"
    at = _run_page(APP_PAGES["review"], "lead")
    assert "review_pair" in _keys(at) or any("Nothing to review" in s.value for s in at.success)


def test_app_navigation_lists_only_the_role_pages(store_copy):
    for role in ROLES:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
        at.session_state["demo_role"] = role
        at.run()
        assert not at.exception, at.exception
        assert any("Synthetic demo data" in w.value for w in at.warning), "the demo is not labelled"
        assert at.selectbox(key="demo_role").value == role
        for url, script in APP_PAGES.items():
            # A page outside this session's navigation is either refused by AppTest or runs nothing.
            try:
                at.switch_page(str(ROOT / script))
            except ValueError:
                opened = False
            else:
                at.run()
                assert not at.exception, (role, url, at.exception)
                opened = bool(at.title) and not any("cannot open this page" in e.value for e in at.error)
            assert opened == may_open(role, url), (role, url)


@pytest.mark.parametrize("role", ["analyst", "commissioner"])
def test_divergence_for_aggregate_roles_maps_only_shown_areas_and_one_period(store_copy, role):
    """The ratio map's hover carries each area's counts, so it must hold only the areas the page shows; and
    these roles get all periods and financial years, never quarters (issue 16: years are sums of perturbed
    atoms, so they add up to all; was "all periods" only under per-table suppression)."""
    at = _run_page(APP_PAGES["divergence"], role, tables=True)
    period = next(s for s in at.selectbox if s.key == "div_period")
    assert list(period.options)[0] == "all periods"
    assert all(o.startswith("financial year") for o in list(period.options)[1:]) and len(period.options) > 1
    assert "div_trend_by" not in _keys(at)
    shown = {str(code) for f in at.dataframe if "area_code" in f.value.columns for code in f.value["area_code"]}
    assert shown
    import json

    at = _run_page(APP_PAGES["divergence"], role)  # chart tabs open: the map is drawn
    maps = 0
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        for trace in spec.get("data", []):
            if trace.get("type") == "choroplethmap":
                maps += 1
                assert set(map(str, trace.get("locations", []))) <= shown, role
    assert maps, "no map was checked"


def test_board_pack_refuses_a_quarter_for_aggregate_roles(store_copy):
    """Issue 16 opened financial years to aggregate roles (every year and "all" are sums of the same perturbed
    atoms); quarters are not published below the lead, so a commissioner's pack refuses one."""
    from lib.export import boardpack
    from lib.records import store

    con = store.connect(store_copy)
    try:
        with pytest.raises(ValueError, match="not quarters"):
            boardpack.build_board_pack(con, layer="utla", area="E06000066", role="commissioner",
                                       period="2024-25 Q1", audit=False)
    finally:
        con.close()


def test_scenario_area_table_is_protected_against_its_totals():
    """One small cell in a column whose total is shown: below the lead the model's children per area are
    published on home atoms (issue 16: lib.disclosure.residents, the same values as Across and Compare), so
    neither the cell nor total minus the other areas gives the true count; the lead sees exact counts. A result
    without published counts is refused below the lead, never shown exact."""
    from lib.disclosure import residents
    from lib.views.scenario import protect_areas

    sizes = {"A": 40, "B": 4, "C": 30, "D": 25}
    homes = [area for area, n in sizes.items() for _ in range(n)]
    children = pd.DataFrame({"home_area": homes, "rkey": [(37 * i + 11) % 256 for i in range(len(homes))]})
    children[residents.ATOM] = residents.atom_ids(children.assign(other=[i % 2 for i in range(len(homes))]),
                                                  ["home_area", "other"])  # two atoms per area
    published = residents.area_counts(children, "home_area", {"multi_agency_linked": None}).set_index("home_area")
    by_area = pd.DataFrame({"area_code": ["A", "B", "C", "D"], "area_name": ["a", "b", "c", "d"],
                            "multi_agency_linked": [40, 4, 30, 25], "by_number_today": [20.0, 2.0, 15.0, 10.0],
                            "by_number_scenario": [40.0, 4.0, 30.0, 25.0], "gain_by_number": [20.0, 2.0, 15.0, 15.0]})
    result = {"kind": "model", "by_area": by_area, "published_by_area": published["multi_agency_linked"]}
    shown = protect_areas(result, "commissioner").set_index("area_code")
    assert not (shown.drop(columns="area_name") == "c").any().any()
    assert shown["multi_agency_linked"].to_dict() == published["multi_agency_linked"].to_dict()
    assert shown["multi_agency_linked"].to_dict() != sizes  # these keys move at least one count (A and D)
    assert (shown["by_number_scenario"] == shown["multi_agency_linked"]).all()  # 100% capture: all of them
    lead = protect_areas(result, "lead").set_index("area_code")
    assert lead.loc[["A", "B", "C", "D"], "multi_agency_linked"].tolist() == [40, 4, 30, 25]
    with pytest.raises(KeyError, match="published"):
        protect_areas({"kind": "model", "by_area": by_area}, "analyst")
