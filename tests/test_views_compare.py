"""Compare page = `view compare` (issue 15): for every role that may open the page and several parameter
sets, the tables the page renders equal the CLI twin's JSON; the CLI's CSV is spreadsheet-safe and audited."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from lib import cli, views
from lib.access import audit
from lib.access.roles import PAGE_ROLES
from tests.fixtures_linkage import copy_store, synthetic_linked_store
from tests.view_parity import assert_parity, cli_view

ROLES = sorted(PAGE_ROLES["compare"])
CASES = {
    "default": ({}, None),
    "lad-three": ({"layer": "lad", "areas": "E06000001,E06000002,E06000003"}, None),
    "neighbours": ({"layer": "utla", "mode": "neighbours", "areas": "E06000066"}, None),
    "custom-group": ({"layer": "utla", "areas": "E06000066,E10000008", "group": "E06000022,E06000023",
                      "indicator": "valid_nhs_pct"}, {"cmp_indicator": "valid_nhs_pct"}),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return synthetic_linked_store(tmp_path_factory)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", list(CASES))
def test_rendered_tables_equal_the_cli_view(store, monkeypatch, role, case):
    params, state = CASES[case]
    query = {k: v for k, v in params.items() if k != "indicator"}  # the indicator is a widget, not in the URL
    at, view = assert_parity(monkeypatch, store, "compare", role, params=params, query=query,
                             state={**(state or {}), "cmp_chart_view": "Table"})
    # issue 17 added the published DfE figures beside the store's count, on children's services authorities and
    # police force areas (the "lad-three" case is on districts: no published table there)
    published = [] if case == "lad-three" else ["cmp_published_table"]
    assert list(view["tables"]) == sorted(["cmp_chart_table", "cmp_group_table", "cmp_table", *published])
    assert view["table_order"] == ["cmp_table", "cmp_chart_table", "cmp_group_table", *published]
    assert view["sentences"] and all(s in [m.value for m in at.markdown] for s in view["sentences"])
    if role != "lead":
        assert view["params"]["period"] == "all"


def test_chart_tab_closed_renders_the_two_other_tables(store, monkeypatch):
    assert_parity(monkeypatch, store, "compare", "analyst", params={"layer": "pfa"},
                  tables=["cmp_table", "cmp_group_table", "cmp_published_table"])  # issue 17 added the last


def test_protection_differs_by_role_in_the_view(store):
    """Issue 16: the commissioner's counts are perturbed (cell key perturbation), never hidden as ``c``; the
    lead's are exact and say they are unprotected. (Was: the commissioner saw ``c``; that per-table suppression
    gave hidden counts back by subtraction and is gone.)"""
    from lib.disclosure import notes

    params = {"layer": "lad", "areas": "E06000001,E06000002,E06000003"}
    lead = cli_view(store, "compare", "lead", params)
    commissioner = cli_view(store, "compare", "commissioner", params)
    lead_rows, comm_rows = lead["tables"]["cmp_table"]["rows"], commissioner["tables"]["cmp_table"]["rows"]
    assert not any("c" in row for row in lead_rows)
    assert not any("c" in row for row in comm_rows)
    assert lead_rows != comm_rows  # perturbed somewhere
    assert notes.METHOD in commissioner["notes"] and notes.UNPROTECTED in lead["notes"]


def test_cli_refuses_unknown_parameters_and_values(store, capsys):
    assert cli.main(["view", "compare", "--role", "lead", "--db", str(store), "--param", "colour=red"]) == 2
    assert "no parameter colour" in capsys.readouterr().err
    assert cli.main(["view", "compare", "--role", "lead", "--db", str(store), "--param", "areas=E99999999"]) == 2
    assert "E99999999 not an area of layer 'utla'" in capsys.readouterr().err
    # aggregate roles see financial years (perturbed on atoms per year, so years add up to all), not quarters
    assert cli.main(["view", "compare", "--role", "analyst", "--db", str(store), "--param", "period=2024-25 Q1"]) == 2
    assert "for the analyst role" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["view", "compare", "--role", "boss", "--db", str(store)])


def test_cli_csv_is_spreadsheet_safe_and_audited(store, tmp_path, capsys):
    path = copy_store(store, tmp_path)
    out = tmp_path / "side.csv"
    argv = ["view", "compare", "--role", "commissioner", "--db", str(path), "--format", "csv",
            "--table", "cmp_table", "--param", "layer=lad", "--param", "areas=E06000001,E06000002", "--out", str(out)]
    assert cli.main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ok"] and summary["out"] == str(out)
    frame = pd.read_csv(out, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    expected = views.build("compare", path, {"layer": "lad", "areas": "E06000001,E06000002"}, "commissioner")
    assert list(frame.columns) == list(expected.table("cmp_table").frame.columns)
    assert len(frame) == len(expected.table("cmp_table").frame)
    assert out.read_bytes() == expected.to_csv("cmp_table")
    rows = audit.read(audit.AuditLog.for_store(path), action="export")
    assert len(rows) == 1
    assert rows["subject"].iat[0] == "compare" and "--table cmp_table" in rows["detail"].iat[0]
    assert rows["role"].iat[0] == audit.CLI_ROLE
