"""Where counts diverge = `view divergence` (issue 15): for every role that may open the page and several
parameter sets, the tables the page renders equal the CLI twin's JSON; the CLI's CSV is spreadsheet-safe and
audited before it is written."""
from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from lib import cli, views
from lib.access import audit
from lib.access.roles import PAGE_ROLES, aggregates_suppressed
from lib.views import divergence as view
from tests.fixtures_linkage import copy_store, synthetic_linked_store
from tests.view_parity import assert_parity, cli_view

ROLES = sorted(PAGE_ROLES["divergence"])
TABS = {k: "Table" for k in ("div_dumbbell_view", "div_map_view", "div_funnel_view", "div_trend_view",
                             "div_waterfall_view")}
WIDGETS = {"a": "div_a", "b": "div_b", "measure": "div_measure", "age": "div_age", "granularity": "div_trend_by"}
URL = ("layer", "period", "area")
CASES = {
    "default": {},
    "pfa-children-10-17": {"layer": "pfa", "measure": "cse_children", "age": "10-17"},
    "nhs-health": {"layer": "nhs", "b": "health"},
    "utla-area-by-year": {"layer": "utla", "area": "E06000066", "granularity": "year"},
    "lead-one-year": {"layer": "lad", "period": "2024-25"},
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return synthetic_linked_store(tmp_path_factory)


def _rendered_names(view_json):
    return [n for n in view_json["table_order"] if n != "div_export"]  # the download is not drawn as a table


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", list(CASES))
def test_rendered_tables_equal_the_cli_view(store, monkeypatch, role, case):
    params = dict(CASES[case])
    if aggregates_suppressed(role) and params.get("period", "all") != "all":
        pytest.skip("aggregate-only roles have one period (test_cli_refuses_... checks the refusal)")
    if aggregates_suppressed(role) and "area" in params:
        params.pop("granularity")  # their trend is by financial year only; the area may be left out for them
        choices = cli_view(store, "divergence", role, {"layer": params["layer"]})["extra"]["area_choices"]
        if params["area"] not in choices:
            params.pop("area")
    state = {**TABS, **{WIDGETS[k]: v for k, v in params.items() if k in WIDGETS}}
    query = {k: v for k, v in params.items() if k in URL}
    view_json = cli_view(store, "divergence", role, params)
    at, got = assert_parity(monkeypatch, store, "divergence", role, params=params, query=query, state=state,
                            tables=_rendered_names(view_json))
    assert got["table_order"] == view_json["table_order"]
    shown = [m.value for m in at.markdown]
    assert all(s in shown for s in got["sentences"]), set(got["sentences"]) - set(shown)
    if aggregates_suppressed(role):  # a trend by financial year from the published counts, and a note saying so
        assert "div_trend_table" in got["tables"] and "trend_hidden" in got["note_names"]
        trend = view_json["tables"]["div_trend_table"]
        periods = [row[trend["columns"].index("period")] for row in trend["rows"]]
        assert all(re.fullmatch(r"\d{4}-\d{2}", str(p)) for p in periods), periods  # financial years, no quarter
    else:
        assert "div_trend_table" in got["tables"]


def test_chart_tabs_open_render_no_table(store, monkeypatch):
    # issue 17's published figures beside the extract have no chart: the one table drawn with every chart open
    assert_parity(monkeypatch, store, "divergence", "lead", params={}, tables=["div_published_table"])


def test_aggregate_roles_see_every_area_with_perturbed_counts(store):
    """Issue 16: below the lead every area is shown with its published (perturbed) counts, small ones hatched on the
    map; nothing is left out. (Was: areas with a count of 1-5 were left out; that per-table suppression gave them
    back by subtraction across layers.)"""
    from lib.disclosure import notes

    lead_view = cli_view(store, "divergence", "lead", {"layer": "lad"})
    analyst_view = cli_view(store, "divergence", "analyst", {"layer": "lad"})
    lead, analyst = (v["tables"]["div_dumbbell_table"] for v in (lead_view, analyst_view))
    counts = lead["columns"].index("count_a"), lead["columns"].index("count_b")
    small = [r for r in lead["rows"] if any(1 <= (r[i] or 0) <= 5 for i in counts)]
    assert small, "the fixture has small counts"
    exact = {r[1]: [r[i] for i in counts] for r in lead["rows"]}
    shown = {r[1]: [r[i] for i in counts] for r in analyst["rows"]}
    assert not set(shown) - set(exact)
    assert all(sum(exact[code]) <= 5 for code in set(exact) - set(shown))  # only a small count can publish as 0
    assert any(shown.get(code) != value for code, value in exact.items())  # perturbed
    assert notes.METHOD in analyst_view["notes"] and notes.UNPROTECTED in lead_view["notes"]
    hatch = [t for t in analyst_view["figures"]["div_map"]["data"] if t.get("name") == notes.HATCH_LEGEND]
    assert len(hatch) == 1 and hatch[0]["showlegend"]
    assert not [t for t in lead_view["figures"]["div_map"]["data"] if t.get("name") == notes.HATCH_LEGEND]


def test_cli_refuses_unknown_parameters_and_values(store, capsys):
    def refused(*argv):
        assert cli.main(["view", "divergence", "--db", str(store), *argv]) == 2
        return capsys.readouterr().err

    assert "no parameter colour" in refused("--role", "lead", "--param", "colour=red")
    assert "layer='mars'" in refused("--role", "lead", "--param", "layer=mars")
    # aggregate roles may pick a financial year (years add up to all on atoms), not a quarter
    assert "for the commissioner role" in refused("--role", "commissioner", "--param", "period=2024-25 Q1")
    assert "two different agencies" in refused("--role", "lead", "--param", "b=police")
    assert "parameter a='fire'" in refused("--role", "lead", "--param", "a=fire")
    assert "area='E99999999'" in refused("--role", "lead", "--param", "area=E99999999")
    assert "KEY=VALUE" in refused("--role", "lead", "--param", "layer")
    assert "unknown page" not in refused("--role", "lead", "--param", "population=/nonexistent.csv")


def test_cli_csv_is_spreadsheet_safe_and_audited(store, tmp_path, capsys, monkeypatch):
    path = copy_store(store, tmp_path)
    original = view.dv.export_table

    def hostile(*args, **kwargs):  # an area name a spreadsheet would run as a formula
        frame = original(*args, **kwargs)
        frame.loc[frame.index[0], "area_name"] = "=HYPERLINK(\"http://example.invalid\")"
        return frame

    monkeypatch.setattr(view.dv, "export_table", hostile)
    out = tmp_path / "div.csv"
    argv = ["view", "divergence", "--role", "analyst", "--db", str(path), "--format", "csv", "--param", "layer=pfa",
            "--out", str(out)]
    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out)["ok"]
    body = out.read_bytes()
    assert body.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: spreadsheets read accents
    frame = pd.read_csv(out, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert frame["area_name"].iat[0] == "'=HYPERLINK(\"http://example.invalid\")"  # shown as text
    built = views.build("divergence", path, {"layer": "pfa"}, "analyst")
    assert body == built.to_csv("div_export")
    rows = audit.read(audit.AuditLog.for_store(path), action="export")
    assert len(rows) == 1 and rows["subject"].iat[0] == "divergence"
    assert "layer=pfa" in rows["detail"].iat[0] and "--table div_export" in rows["detail"].iat[0]


def test_cli_csv_is_not_written_when_it_cannot_be_audited(store, tmp_path, capsys, monkeypatch):
    path = copy_store(store, tmp_path)

    def broken(*args, **kwargs):
        raise audit.AuditError("the audit trail is read-only")

    monkeypatch.setattr(audit, "record", broken)
    out = tmp_path / "div.csv"
    code = cli.main(["view", "divergence", "--role", "lead", "--db", str(path), "--format", "csv", "--out", str(out)])
    assert code == 2 and not out.exists()
    assert "audit trail" in capsys.readouterr().err


def test_a_population_file_gives_rates_per_its_children_and_a_bad_one_is_named(store, tmp_path, capsys):
    good = tmp_path / "pop.csv"
    lead = cli_view(store, "divergence", "lead", {"layer": "pfa"})
    codes = [row[1] for row in lead["tables"]["div_dumbbell_table"]["rows"]]
    good.write_text("area_code,children\n" + "".join(f"{c},10000\n" for c in codes))
    given = cli_view(store, "divergence", "lead", {"layer": "pfa", "population": str(good)})
    assert given["extra"]["rate_unit"] == "per 10,000 (uploaded population)"
    table = given["tables"]["div_dumbbell_table"]
    count_a, rate_a = table["columns"].index("count_a"), table["columns"].index("rate_a")
    assert all(abs(row[rate_a] - row[count_a]) < 1e-9 for row in table["rows"])  # 10,000 children each
    bad = tmp_path / "bad.csv"
    bad.write_text("code,kids\nE23000001,5\n")
    assert cli.main(["view", "divergence", "--role", "lead", "--db", str(store), "--param", "layer=pfa",
                     "--param", f"population={bad}"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "area_code and children" in err
