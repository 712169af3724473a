"""The layer and agency registries (issue 15): the declared facts hold on the official lookup, the combined
``nhs`` layer is named in one place, and a layer registered by a test flows through the geodata facts, the
command-line choices and a measure without touching any other module."""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import pandas as pd
import pytest

from lib import cli, views
from lib.access import roles
from lib.disclosure import members
from lib.geo import agencies, layers, lookup, maps
from lib.measures import aggregates, convert, counts, journeys, population, spans
from lib.measures import span_figures as across_figures
from lib.records import schema, store
from lib.records.ingest import commit, prepare
from lib.scenario import model, scenario, simulate
from lib.scenario.capture import Levers
from lib.views import across, boundaries
from lib.views import data as data_view
from lib.views import scenario as scenario_view
from tests.fixtures_linkage import private_linked_store, tiny_store
from tests.test_records import KEY, TODAY, csv_bytes, good_rows


def _choices(parser: argparse.ArgumentParser, command: str, option: str = "--layer") -> list[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    action = next(a for a in sub.choices[command]._actions if option in a.option_strings)
    return list(action.choices)


# -- the declared facts -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("inner", "outer"), layers.nestings())
def test_every_declared_nesting_holds_on_the_official_lookup(inner, outer):
    assert lookup.nesting_violations(inner, outer).empty


@pytest.mark.parametrize("key", [k for k, layer in layers.REGISTRY.items() if layer.union_of])
def test_a_layer_declared_a_union_of_whole_areas_is_one(key):
    assert lookup.nesting_violations(layers.REGISTRY[key].union_of, key).empty


def test_a_false_nesting_is_caught():
    """The check can fail: districts do not nest in ICBs (nor ICBs in police forces)."""
    assert not lookup.nesting_violations("lad", "icb").empty
    assert not lookup.nesting_violations("icb", "pfa").empty


def test_the_registries_are_consistent():
    assert set(layers.LAYERS) == {k for k, layer in layers.REGISTRY.items() if layer.drawn}
    assert set(layers.COLUMNS.values()) <= set(lookup.lsoa_table().columns)
    assert set(layers.MEASURE_ALIASES.values()) <= set(layers.MEASURE_LAYERS)
    for key, layer in layers.REGISTRY.items():
        assert set(layer.name_layers) <= set(lookup.areas()["layer"]) or layer.parts, key
    assert schema.AGENCY_TYPES == agencies.TYPES
    assert set(agencies.SYNTHETIC_TYPES) < set(agencies.TYPES)
    assert set(agencies.NATIVE_LAYER.values()) <= set(layers.LAYERS)
    assert agencies.native_agencies("utla") == ("children_social_care", "education")
    assert counts.NATIVE_LAYER == agencies.NATIVE_LAYER and counts.AGENCIES == agencies.LABELS
    assert layers.vintages() == {k: v for k, v in lookup.manifest()["vintages"].items() if k in layers.LAYERS}


def test_the_combined_nhs_layer_is_named_from_its_parts_in_one_place():
    names = lookup.name_of("nhs")
    assert names == {**lookup.name_of("icb"), **lookup.name_of("lhb")}
    assert len(names) == len(lookup.name_of("icb")) + len(lookup.name_of("lhb"))
    assert convert.area_names("nhs") == names and convert.area_names("icb") == names  # icb is measured as nhs
    assert set(convert.area_codes("nhs")) == set(names)


# -- a layer registered by a test ---------------------------------------------------------------------------

UTLA = layers.REGISTRY["utla"]
#: A test-only layer: children's services authorities again, under another key (built from the lookup's
#: existing utla_code column, named from the utla areas, stored on encounters as utla).
COPY = dataclasses.replace(UTLA, key="csa_copy", title="Children's services (test copy)", short="CSA copy",
                           drawn=False, parts=("utla",), stored="utla", measure_title="Children's services (copy)",
                           noun="children's services area (copy)", nouns="children's services areas (copy)",
                           span_title="CSAs (copy)", place_title="CSA (copy)", scenario_order=4)


@pytest.fixture()
def small_store():
    con = store.connect(":memory:")
    commit(con, prepare(csv_bytes(good_rows(5)), "a.csv", key=KEY, today=TODAY))
    yield con
    con.close()


def test_a_registered_layer_flows_through_facts_choices_and_measures(small_store):
    assert "csa_copy" not in layers.REGISTRY
    with layers.registered(COPY):
        # geodata facts: its row in the registry table, its names and membership from the official lookup
        fact = layers.facts().set_index("layer").loc["csa_copy"]
        assert (fact["column"], fact["names_from"], fact["nests_in"], fact["kind"]) == \
            ("utla_code", "utla", "pfa", "official")
        assert lookup.area_names("csa_copy").equals(lookup.area_names("utla"))
        assert lookup.nesting_violations("csa_copy", "pfa").empty
        # command-line choices
        parser = cli.build_parser()
        for command in ("divergence", "boardpack", "population"):
            assert "csa_copy" in _choices(parser, command), command
        assert parser.parse_args(["divergence", "--layer", "csa_copy", "--out", "x.csv"]).layer == "csa_copy"
        # measures: counts on both bases, names, population and completeness equal those of utla
        cube = counts.build_cube(small_store, layers=("utla", "csa_copy"))
        for basis in ("direct", "native"):
            # row order of a group-by is not fixed (DuckDB runs it in parallel): compare the rows, sorted
            order = ["agency_type", "area_code", "granularity", "period"]
            copy = cube.slice("csa_copy", basis=basis).drop(columns="layer").sort_values(order).reset_index(drop=True)
            original = cube.slice("utla", basis=basis).drop(columns="layer").sort_values(order).reset_index(drop=True)
            assert len(copy) > 0
            pd.testing.assert_frame_equal(copy, original)
            pd.testing.assert_frame_equal(counts.agency_counts(cube, "csa_copy", basis=basis),
                                          counts.agency_counts(cube, "utla", basis=basis))
        pd.testing.assert_frame_equal(population.official_population("csa_copy"),
                                      population.official_population("utla"))
        pd.testing.assert_frame_equal(store.completeness(small_store, "csa_copy"),
                                      store.completeness(small_store, "utla"))
        assert "csa_copy" in layers.MEASURE_LAYERS and "csa_copy" not in layers.LAYERS  # not drawn
    assert "csa_copy" not in layers.REGISTRY
    assert "csa_copy" not in _choices(cli.build_parser(), "divergence")


def test_registering_a_layer_checks_it():
    with pytest.raises(ValueError, match="already registered"):
        layers.register(UTLA)
    with pytest.raises(ValueError, match="unknown layer 'nowhere'"):
        layers.register(dataclasses.replace(COPY, nests_in=("nowhere",)))
    assert "csa_copy" not in layers.REGISTRY


@pytest.fixture()
def tiny(tmp_path):
    con = tiny_store(tmp_path / "tiny.duckdb")
    yield con
    con.close()


def test_a_registered_layer_gets_the_span_journey_and_scenario_labels(tiny):
    """The labels of spans, journeys and the scenario are the registry's words: a registered layer has them and
    is spanned and placed like the layer it copies, with nothing else changed."""
    before_spans, before_places = list(spans.SPAN_LAYERS), list(journeys.PLACE_LAYERS)
    assert before_spans == ["pfa", "utla", "nhs", "trust"]
    assert before_places == ["pfa", "utla", "nhs", "trust", "lad"]  # the span geographies first
    assert journeys.SPAN_WORDS["pfa"] == "police force areas" and spans.SPAN_TITLES["any"] == "any of these"
    with layers.registered(COPY):
        assert spans.SPAN_LAYERS["csa_copy"] == "children's services area (copy)"
        assert spans.SPAN_TITLES["csa_copy"] == "CSAs (copy)" and list(spans.SPAN_TITLES)[-1] == "any"
        assert journeys.SPAN_WORDS["csa_copy"] == "children's services areas (copy)"
        assert journeys.PLACE_LAYERS["csa_copy"] == "CSA (copy)"
        assert list(journeys.PLACE_LAYERS) == ["pfa", "utla", "nhs", "trust", "csa_copy", "lad"]
        assert scenario.LAYER_LABEL["csa_copy"] == "children's services area (copy)"
        # measured: spans of the copy equal those of utla (it is stored as utla), and a journey names it
        children = spans.child_table(tiny, "utla")
        assert children["spans_csa_copy"].tolist() == children["spans_utla"].tolist()
        assert children["spans_utla"].any()
        records = journeys.child_records(tiny, "CH-1")
        assert list(records.columns) == journeys.record_columns() and "enc_csa_copy_name" in records.columns
        assert records["enc_csa_copy_name"].tolist() == records["enc_utla_name"].tolist()
        assert "Where: CSA (copy)" in journeys.display_table(records).columns
        summary = journeys.child_summary(tiny, "CH-8")
        assert summary["spans"]["csa_copy"] == summary["spans"]["utla"] == 2
        assert "2 children's services areas (copy)" in journeys.describe_child(summary)
        # the child's home is named in it too (a home layer of the summary, as the utla it copies)
        assert list(summary["home"]) == ["pfa", "utla", "nhs", "csa_copy"]
        assert summary["home"]["csa_copy"] == summary["home"]["utla"] is not None
    assert list(spans.SPAN_LAYERS) == before_spans and list(journeys.PLACE_LAYERS) == before_places
    assert "csa_copy" not in scenario.LAYER_LABEL
    assert list(journeys.child_summary(tiny, "CH-8")["home"]) == ["pfa", "utla", "nhs"]


def test_a_registered_layer_gets_the_outline_scenario_and_across_choices():
    """The span outline, the scenario's layers (model, simulation, command line) and the Across page's span
    choices are live views of the registry: a registered layer is offered, and gone again after."""
    assert dict(across_figures.SPAN_OUTLINE) == {"pfa": "pfa", "utla": "utla", "nhs": "icb", "trust": "trust"}
    assert list(model.MODEL_LAYERS) == list(simulate.AREA_LAYERS) == ["utla", "pfa", "nhs"]
    assert list(across.SPAN_CHOICES) == ["any", "pfa", "utla", "nhs", "trust"]
    assert tuple(layers.PLACE_ORDER) == ("pfa", "utla", "lad", "icb", "sicbl", "lhb", "trust")
    with layers.registered(COPY):
        assert across_figures.SPAN_OUTLINE["csa_copy"] == "utla"  # not drawn: outlined by the layer it is named from
        assert list(model.MODEL_LAYERS) == list(simulate.AREA_LAYERS) == ["utla", "pfa", "nhs", "csa_copy"]
        parser = cli.build_parser()
        assert "csa_copy" in _choices(parser, "scenario")
        assert parser.parse_args(["scenario", "--layer", "csa_copy"]).layer == "csa_copy"
        assert list(across.SPAN_CHOICES) == ["any", "pfa", "utla", "nhs", "trust", "csa_copy"]
        assert across.SPAN_CHOICES["csa_copy"] == "CSAs (copy)"
        assert views.resolve_params("across", {"span": "csa_copy"})["span"] == "csa_copy"
        assert list(scenario_view.LAYERS)[-1] == "csa_copy"  # the Scenario page's "Map the gain by"
        assert views.resolve_params("scenario", {"layer": "csa_copy"})["layer"] == "csa_copy"
        assert "spans_csa_copy" in across.span_counts() and across.span_rates()["share_csa_copy"] == \
            ["children", "spans_csa_copy"]
    assert "csa_copy" not in across.SPAN_CHOICES and "csa_copy" not in model.MODEL_LAYERS
    assert "csa_copy" not in scenario_view.LAYERS
    assert "csa_copy" not in _choices(cli.build_parser(), "scenario")
    with pytest.raises(ValueError, match="span='csa_copy'"):
        views.resolve_params("across", {"span": "csa_copy"})


def test_the_scenario_simulation_tables_a_registered_layer():
    """The simulation's gain table by a registered layer (stored as utla) equals the one by utla, also for a
    population generated before the layer was registered."""
    pop = simulate.population(600, 11)
    today = simulate.Outcome("full", {}, pop.multi_agency_true[::3], pop.multi_agency_true[::5], 0.0)
    scen = simulate.Outcome("full", {}, pop.multi_agency_true[::2], pop.multi_agency_true[::4], 0.0)
    with layers.registered(COPY):
        copy = simulate.by_area(pop, today, scen, "csa_copy", secret=KEY)
        original = simulate.by_area(pop, today, scen, "utla", secret=KEY)
    assert len(original) > 1 and original["gain"].any()
    pd.testing.assert_frame_equal(copy, original)
    with pytest.raises(ValueError, match="layer must be one of utla, pfa, nhs"):
        simulate.by_area(pop, today, scen, "csa_copy")


@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    con = store.connect(private_linked_store(tmp_path_factory, "registries_linked"), read_only=True)
    yield con
    con.close()


def test_the_scenario_model_and_the_across_view_use_a_registered_layer(linked):
    """On a linked store: the scenario model by the copy equals the model by utla, and the Across page's spans
    table publishes the copy's counts below the lead (never an exact count: each equals utla's published one)."""
    with layers.registered(COPY):
        copy = model.estimate(linked, Levers(capture={"police": 1.0}), layer="csa_copy")
        original = model.estimate(linked, Levers(capture={"police": 1.0}), layer="utla")
        pd.testing.assert_frame_equal(copy["by_area"], original["by_area"])
        assert copy["expected_gain_by_number"] == original["expected_gain_by_number"] > 0
        exact = views.build_with("across", linked, {"span": "csa_copy"}, "lead").tables["spans_all"].frame
        shown = views.build_with("across", linked, {"span": "csa_copy"}, "analyst").tables["spans_all"].frame
    assert exact["spans_csa_copy"].tolist() == exact["spans_utla"].tolist()
    assert shown["spans_csa_copy"].tolist() == shown["spans_utla"].tolist()
    pd.testing.assert_series_equal(shown["share_csa_copy"], shown["share_utla"], check_names=False)
    assert shown["spans_utla"].tolist() != exact["spans_utla"].tolist()  # published, not exact
    assert not [c for c in shown.columns if str(c).startswith("key_")]


# -- a registered layer is placed, atomised for disclosure and named as an agency's own areas ---------------

#: A test-only layer on a code column of the LSOA lookup no registered layer uses: ``trust_area``, the district
#: (Wales: health board) whose trust catchment shares apply (lib.geo.trusts), named from the lad and lhb areas.
SHARE_AREA = dataclasses.replace(layers.REGISTRY["lad"], key="share_area", title="Trust share areas (test)",
                                 short="Share area", column="trust_area", drawn=False, parts=("lad", "lhb"),
                                 stored="lad", nests_in=(), union_of="", measure_title="", noun="trust share area",
                                 nouns="trust share areas", place_title="", code_words="")


def test_a_registered_layer_is_placed_on_its_lookup_column():
    """lookup.PLACE_COLUMNS comes from the registry's code columns: a registered layer's column is given to every
    placed record (from the LSOA lookup), and not after it is unregistered."""
    before = list(lookup.PLACE_COLUMNS)
    assert before == ["lsoa11cd", "lad_code", "utla_code", "pfa_code", "icb_code", "sicbl_code", "lhb_code",
                      "nhs_code", "trust_code", "lon", "lat"]  # the stored home_/enc_ columns keep this order
    rows = np.array([0, 5, -1, 17])
    with layers.registered(SHARE_AREA):
        assert "trust_area" in lookup.PLACE_COLUMNS and lookup.PLACE_COLUMNS.count("utla_code") == 1
        placed = lookup.place_lsoa_rows(rows)
        assert list(placed.columns) == list(lookup.PLACE_COLUMNS)
        expected = lookup.lsoa_table()["trust_area"].to_numpy(dtype=object)[[0, 5, 17]].tolist()
        assert placed["trust_area"].iloc[[0, 1, 3]].tolist() == expected and pd.isna(placed["trust_area"].iloc[2])
        with layers.registered(COPY):  # a layer on a column already placed adds none
            assert list(lookup.PLACE_COLUMNS) == list(placed.columns)
    assert list(lookup.PLACE_COLUMNS) == before
    assert "trust_area" not in lookup.place_lsoa_rows(rows).columns


def test_an_agency_recording_on_a_registered_layer_has_its_areas_named_on_the_scenario_page():
    """The Scenario page's per-area capture names the areas of every layer an agency records natively on (the
    agency registry): an agency on a registered layer gets its layer's names; without it they are not offered."""
    before = scenario_view.area_names()
    assert set(before) == {*lookup.name_of("pfa"), *lookup.name_of("utla"), *lookup.name_of("trust")}
    districts = set(lookup.name_of("lad"))
    assert districts - set(before)  # county districts are not among the agencies' own areas today
    with layers.registered(SHARE_AREA), pytest.MonkeyPatch.context() as patch:
        patch.setitem(agencies.NATIVE_LAYER, "test_agency", "share_area")  # an agency recording on it
        names = scenario_view.area_names()
        assert {code: names[code] for code in lookup.name_of("share_area")} == lookup.name_of("share_area")
        assert districts <= set(names)
    assert "test_agency" not in agencies.NATIVE_LAYER and scenario_view.area_names() == before


def _layers_aggregate_roles_choose() -> set[str]:
    """Every layer a role below the lead can pick on any page it may open (the view builders' parameters)."""
    below = [role for role in roles.ROLES if roles.aggregates_suppressed(role)]
    chosen = set()
    for page in views.BUILDERS:
        if any(roles.may_open(role, page) for role in below):
            for spec in views.builder(page).PARAMS.values():
                if spec.choices and set(spec.choices) <= set(layers.REGISTRY):
                    chosen |= set(spec.choices)
    return chosen


def _covered(table: pd.DataFrame, atom_layers, layer: str) -> bool:
    """Each area of ``layer`` is a union of atoms (distinct combinations of the atom layers' areas) on the
    official LSOA lookup: no atom holds LSOAs of two of its areas."""
    atoms = table.groupby([layers.COLUMNS[k] for k in atom_layers], dropna=False)[layers.COLUMNS[layer]]
    return bool((atoms.nunique(dropna=False) <= 1).all())


def test_the_flow_atoms_cover_every_layer_an_aggregate_role_can_choose():
    """Flow encounters are published on atoms (spans.published_flow_encounters): the atom layers, derived from
    the registry, are every layer of the published measure cube, and every layer a role below the lead can
    choose is a union of the atoms of its flows. Sub-ICB locations are the one chosen layer not a union of
    ``ATOM_LAYERS``'s atoms alone: every flow's atoms add the home layers (``atom_layers``), the same for all."""
    with layers.registered(COPY):  # a layer registered for measures is an atom layer, and not after
        assert "csa_copy" in spans.ATOM_LAYERS
        assert "csa_copy" in spans.atom_layers("pfa")
    assert "csa_copy" not in spans.ATOM_LAYERS
    chosen = _layers_aggregate_roles_choose()
    assert set(layers.REGISTRY) <= chosen  # the pages' parameters were found
    cube = {convert.layer_key(layer) for layer in chosen if layer in layers.measure_choices()}
    assert cube == {"pfa", "utla", "lad", "nhs", "trust"}
    assert cube <= set(spans.ATOM_LAYERS)
    table = lookup.lsoa_table()
    for layer in chosen:
        assert layer in spans.atom_layers(layer) and _covered(table, spans.atom_layers(layer), layer), layer
    assert {layer for layer in chosen if not _covered(table, spans.ATOM_LAYERS, layer)} <= {"sicbl"}


def test_no_record_count_below_the_lead_is_published_on_a_layer_cutting_across_the_atoms():
    """Record counts below the lead are summed from the measure layers' atoms (lib.disclosure.service): the
    registry's rule (``layers.on_measure_atoms``) says which layers are whole unions of them, and it agrees with
    the official lookup. The Data page's completeness, stored and offered, is only on those: on sub-ICB locations it
    summed finer atoms, so an ICB's records were published twice with two noises (its own row and its sub-ICB
    locations' sum)."""
    table = lookup.lsoa_table()
    atoms = [convert.layer_key(k) for k in convert.MEASURE_LAYERS]
    assert {k: layers.on_measure_atoms(k) for k in layers.REGISTRY} == \
        {k: _covered(table, atoms, k) for k in layers.REGISTRY}
    assert not layers.on_measure_atoms("sicbl")
    assert "sicbl" not in data_view.LAYER_CHOICES and "sicbl" not in aggregates.store_layers()
    assert all(layers.on_measure_atoms(k) for k in [*data_view.LAYER_CHOICES, *aggregates.store_layers()])
    with pytest.raises(ValueError, match="sicbl"):
        views.resolve_params("data", {"layer": "sicbl"})


def test_a_registered_measure_layer_joins_the_flow_atoms(linked):
    """Flows published below the lead are summed from atoms of every atom layer: a registered measure layer is
    one (its home and encounter areas read from the stored columns it is stored as), and as it copies utla the
    published flows are unchanged."""
    keys = members.key_tables(linked)
    before = spans.published_flow_encounters(linked, "pfa", keys)
    assert len(before) > 0
    seen = []
    real = spans._home_sql

    def spy(layer):
        seen.append(layer)
        return real(layer)

    with layers.registered(COPY), pytest.MonkeyPatch.context() as patch:
        patch.setattr(spans, "_home_sql", spy)
        during = spans.published_flow_encounters(linked, "pfa", keys)
    # every flow layer's atoms are one partition: the measure layers, then the home layers not among them
    assert seen == ["pfa", "utla", "lad", "nhs", "trust", "csa_copy", "icb", "sicbl", "lhb"]
    pd.testing.assert_frame_equal(during, before)
    assert spans.atom_layers("pfa") == ["pfa", "utla", "lad", "nhs", "trust", "icb", "sicbl", "lhb"]
    assert all(spans.atom_layers(layer) == spans.atom_layers("pfa") for layer in spans.HOME_LAYERS)


#: A drawn copy of the police force layer (drawn from the police force outlines in this test only).
DRAWN = dataclasses.replace(layers.REGISTRY["pfa"], key="pfa_drawn_copy", title="Police force areas (drawn copy)",
                            stored="pfa", parts=("pfa",), measure_title="Police force areas (drawn copy)",
                            span_title="", place_title="", scenario_order=0, child_home=False, place_rank=100,
                            shown_first=True, journey_outline=0.3)


def test_a_registered_drawn_layer_is_shown_first_packed_and_outlined_on_journeys(tiny, monkeypatch):
    """The overlay's default layers, the board pack's layers and a journey map's outlines are registry fields
    (``shown_first``, drawn and offered for measures, ``journey_outline``): a registered drawn layer joins
    all three, and the agency labels of the Data page are the agency registry's."""
    assert list(boundaries.DEFAULT_LAYERS) == ["pfa", "utla", "icb", "lhb"]
    assert list(across.PACK_LAYERS) == ["pfa", "utla", "lad", "icb", "trust"]
    assert list(layers.JOURNEY_OUTLINES) == ["pfa", "utla"]
    assert data_view.AGENCY_LABELS == agencies.LABELS
    real = maps.layer_geojson
    monkeypatch.setattr(maps, "layer_geojson", lambda key: real("pfa" if key == DRAWN.key else key))
    records = journeys.child_records(tiny, "CH-8")
    assert len(records) > 1
    widths = [m["line"]["width"] for m in across_figures.journey_map(records).layout.map.layers
              if m["type"] == "line"]
    assert widths == [3.2 * 0.7, 2.2 * 0.5]
    with layers.registered(DRAWN):
        assert list(boundaries.DEFAULT_LAYERS)[-1] == DRAWN.key
        shown = views.resolve_params("boundaries", {})["layers"]
        assert shown is None and DRAWN.key in boundaries.DEFAULT_LAYERS  # the builder draws the default layers
        assert views.resolve_params("boundaries", {"layers": f"utla,{DRAWN.key}"})["layers"] == ["utla", DRAWN.key]
        assert list(across.PACK_LAYERS)[-1] == DRAWN.key
        widths = [m["line"]["width"] for m in across_figures.journey_map(records).layout.map.layers
                  if m["type"] == "line"]
        assert widths == [3.2 * 0.7, 2.2 * 0.5, 3.2 * 0.3]
    assert DRAWN.key not in boundaries.DEFAULT_LAYERS and DRAWN.key not in across.PACK_LAYERS
    with pytest.raises(ValueError, match=DRAWN.key):
        views.resolve_params("boundaries", {"layers": DRAWN.key})
