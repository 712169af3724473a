"""About and methods: built from the product's own sources (manifest, layer registry, role table, the accessibility
statement in docs/), the same for the page and `view about`, open to every role."""
from __future__ import annotations

import json

import pytest

from lib.access.roles import ROLES, may_open
from lib.geo.layers import LAYERS
from lib.views import about


def test_about_lists_every_official_source_with_its_vintage_from_the_manifest():
    manifest = json.loads(about.MANIFEST.read_text(encoding="utf-8"))
    data = about.build(None, {}, "commissioner")
    sources = data.table("sources").frame
    assert len(sources) >= len(manifest["official"])
    for key, entry in manifest["official"].items():
        name = entry.get("dataset") or entry.get("title")
        row = sources[sources["Dataset"] == name]
        assert len(row) >= 1 and entry["vintage"] in set(row["Vintage"]), key
    assert set(data.table("layers").frame["Layer"]) == {layer.title for layer in LAYERS.values()}


def test_about_names_the_protection_the_pages_apply_not_the_retired_suppression():
    """About said "Counts from 1 to 5 are shown as c" after every page had moved to cell key perturbation."""
    from lib.disclosure.notes import METHOD

    text = " ".join(about.build(None, {}, "commissioner").sentences)
    assert METHOD in text and "shown as c" not in text


def test_about_says_who_sees_what_from_the_role_table():
    roles = about.build(None, {}, "lead").table("roles").frame
    assert len(roles) == len(ROLES)
    lead = roles[roles["Role"] == "Safeguarding lead"].iloc[0]
    assert "Review links" in lead["Pages"] and "exact" in lead["Figures"]
    commissioner = roles[roles["Role"] == "Commissioner / board"].iloc[0]
    assert "Review links" not in commissioner["Pages"] and "protected" in commissioner["Figures"]


def test_about_shows_the_accessibility_statement_from_docs():
    statement = about.build(None, {}, "analyst").note_text("accessibility")
    assert statement == about.accessibility_statement()
    assert "What is not yet accessible" in statement and "Enforcement procedure" in statement


@pytest.mark.parametrize("role", ROLES)
def test_every_role_may_open_about(role):
    assert may_open(role, "about")


@pytest.mark.parametrize("role", ROLES)
def test_the_about_page_renders_the_view_for_every_role(monkeypatch, tmp_path_factory, tmp_path, role):
    from tests.fixtures_linkage import copy_store, synthetic_linked_store
    from tests.view_parity import assert_parity

    store = copy_store(synthetic_linked_store(tmp_path_factory), tmp_path)
    at, view = assert_parity(monkeypatch, store, "about", role)
    assert [h.value for h in at.header] == ["How the numbers are made", "Accessibility statement"]
    assert view["sentences"][0] == about.WHAT
