"""The view layer's core (lib.views): PageData's JSON and CSV, the registry's checks, the export path."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lib import views
from lib.access import audit
from lib.export import downloads
from lib.views.base import PageData, Table, dumps


def _page_data():
    frame = pd.DataFrame({"area": ["=HYPERLINK(\"x\")", "Leeds"], "count": [3, np.nan],
                          "when": [pd.Timestamp("2024-04-01"), pd.NaT]}, index=[7, 3])
    return PageData(page="compare", role="lead", params={"b": 1, "a": [2, 1]}, data_version="5:x", title="T",
                    sentences=["One."], tables={"t": Table(frame, "Title", downloadable=True)},
                    figures={"f": {"data": [{"x": np.array([1.0, np.nan])}]}})


def test_to_json_is_deterministic_with_null_and_iso_dates():
    text = _page_data().to_json()
    assert text == _page_data().to_json()
    spec = json.loads(text)
    assert list(spec) == sorted(spec)
    assert spec["tables"]["t"]["rows"] == [['=HYPERLINK("x")', 3.0, "2024-04-01T00:00:00"], ["Leeds", None, None]]
    assert spec["figures"]["f"]["data"][0]["x"] == [1.0, None]
    assert "NaN" not in text
    assert dumps({"b": 1, "a": {"d": 1, "c": 2}}) == '{"a": {"c": 2, "d": 1}, "b": 1}'


def test_to_csv_is_spreadsheet_safe_and_names_unknown_tables():
    body = _page_data().to_csv("t").decode("utf-8-sig")
    assert "'=HYPERLINK" in body and "\n=HYPERLINK" not in body
    with pytest.raises(ValueError, match="no table 'u'.*t"):
        _page_data().to_csv("u")


def test_registry_names_every_page_and_refuses_unknowns():
    from lib.access.roles import PAGE_ROLES

    assert set(views.BUILDERS) == set(PAGE_ROLES)
    with pytest.raises(ValueError, match="unknown page 'nope'"):
        views.builder("nope")
    with pytest.raises(ValueError, match="unknown role"):
        views.check_access("compare", "boss")
    with pytest.raises(ValueError, match="cannot open page 'audit'"):
        views.check_access("audit", "analyst")
    with pytest.raises(ValueError, match="no parameter colour"):
        views.resolve_params("compare", {"colour": "red"})
    with pytest.raises(ValueError, match="layer='mars'"):
        views.resolve_params("compare", {"layer": "mars"})


def test_export_path_refuses_csv_text_and_audits_before_returning(tmp_path):
    log = audit.AuditLog.for_store(tmp_path / "s.duckdb")
    with pytest.raises(TypeError, match="DataFrame"):
        downloads.prepare("csv", "a,b\n=1,2\n", user="u", role="lead", subject="s", detail="d", audit_log=log)
    assert audit.read(log).empty  # refused: nothing recorded
    body = downloads.prepare("x.csv", pd.DataFrame({"a": ["@SUM(1)"]}), user="u", role="lead", subject="s",
                             detail="d", audit_log=log)
    assert body.decode("utf-8-sig").splitlines() == ["a", "'@SUM(1)"]
    rows = audit.read(log, action="export")
    assert rows[["user_name", "role", "subject", "detail"]].values.tolist() == [["u", "lead", "s", "d"]]
