"""The disclosure service (lib.disclosure.service; docs/DISCLOSURE.md): the cube every role below the safeguarding
lead sees. Same cell, same value (two builds, two layers); published counts add up exactly across nested layers and
periods; never negative, zero stays zero, each count within the stated noise of the truth; the lead's cube is exact."""
from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from lib.disclosure import cellkey, service
from lib.measures import convert, counts
from lib.views.base import Source
from tests.fixtures_linkage import synthetic_linked_store

KEY = ["layer", "basis", "granularity", "period", "agency_type", "area_code"]


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    connection = duckdb.connect(str(synthetic_linked_store(tmp_path_factory)), read_only=True)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def cubes(con):
    exact = counts.build_cube(con)
    return exact, service.protected_cube(con, exact)


def _joined(cubes) -> pd.DataFrame:
    exact, protected = cubes
    return exact.counts[exact.counts["granularity"] != "quarter"].merge(
        protected.counts, on=KEY, how="outer", suffixes=("_true", "_pub"), indicator=True)


def test_the_protected_cube_has_the_exact_cubes_shape_without_quarters(cubes):
    exact, protected = cubes
    assert list(protected.counts.columns) == list(exact.counts.columns)
    assert dict(protected.counts.dtypes) == dict(exact.counts.dtypes)
    assert protected.linked and protected.agencies == exact.agencies
    assert protected.periods == [p for p in exact.periods if " Q" not in p]
    joined = _joined(cubes)
    assert (joined["_merge"] == "both").all(), joined[joined["_merge"] != "both"].head()


def test_counts_are_perturbed_never_negative_and_zero_stays_zero(cubes):
    joined = _joined(cubes)
    for measure in counts.VALUE_COLUMNS:
        true, pub = joined[f"{measure}_true"], joined[f"{measure}_pub"]
        assert (pub >= 0).all(), measure
        assert (pub[true == 0] == 0).all(), measure
        assert (pub != true).any(), f"{measure}: nothing was perturbed"
    direct = joined[joined["basis"] == "direct"]
    for measure in service.DISTINCT:  # one perturbation per published cell of children
        assert (direct[f"{measure}_pub"] - direct[f"{measure}_true"]).abs().max() <= cellkey.MAX_NOISE


def test_atoms_are_perturbed_once_and_every_area_is_the_sum_of_its_atoms(con):
    keys = Source(con).keys()
    atoms = service.atom_cells(con, convert.MEASURE_LAYERS, keys)
    for measure in service.ADDITIVE:
        moved = atoms[f"{measure}_published"] - atoms[measure]
        assert moved.abs().max() <= cellkey.MAX_NOISE and moved.ne(0).any()
    protected = service.protected_cube(con, keys=keys)
    for layer in convert.MEASURE_LAYERS:
        column = f"enc_{layer}"
        part = atoms[atoms[column].notna()]
        expected = part.groupby(["agency_type", column])["cse_records_published"].sum()
        cells = protected.slice(layer, "all").set_index(["agency_type", "area_code"])["cse_records"]
        expected.index.names = cells.index.names
        pd.testing.assert_series_equal(cells.sort_index(), expected.sort_index().astype("float64"),
                                       check_names=False)


def test_published_children_are_each_cells_distinct_children_perturbed_with_their_keys(con, cubes):
    """Every direct cell of children (layer x area x agency x year and "all") is the perturbation of its distinct
    children with the sum of their keys, recounted here in pandas from the linked records; the cube's shared table
    of linked records (one for every layer) is gone afterwards, and a build on the same connection gives the same."""
    from lib.disclosure import members

    keys = Source(con).keys()
    child_key = keys[members.CHILD_KEYS].to_pandas().set_index("child_id")["rkey"]
    records = con.execute(f"""SELECT e.agency_type, {counts._YEAR} AS year, rc.child_id,
                                     coalesce(e.cse_flag, false) AS cse, e.enc_lad, e.enc_pfa
                              FROM encounters e JOIN record_child rc USING (record_key)
                              WHERE rc.child_id IS NOT NULL""").df()
    records["period"] = records["year"]
    everything = pd.concat([records[records["year"].notna()], records.assign(period="all")])
    protected = cubes[1].counts
    checked = 0
    for layer in ("lad", "pfa"):
        placed = everything[everything[f"enc_{layer}"].notna()]
        for measure, rows in (("children", placed), ("cse_children", placed[placed["cse"]])):
            kids = rows.drop_duplicates(["agency_type", f"enc_{layer}", "period", "child_id"])
            kids = kids.assign(key=kids["child_id"].map(child_key))
            cells = kids.groupby(["agency_type", f"enc_{layer}", "period"]).agg(n=("child_id", "size"),
                                                                                 key=("key", "sum"))
            expected = pd.Series(cellkey.perturb(cells["n"].to_numpy("int64"), (cells["key"] % 256).to_numpy("int64")),
                                 index=cells.index, dtype="float64")
            mine = protected[(protected["layer"] == layer) & (protected["basis"] == "direct")
                             & (protected["granularity"] != "quarter")]
            got = mine.set_index(["agency_type", "area_code", "period"])[measure]
            got = got[got > 0]  # the cells of records with no linked child publish 0
            expected.index.names = got.index.names
            pd.testing.assert_series_equal(got.sort_index(), expected[expected > 0].sort_index(), check_names=False)
            checked += len(expected)
    assert checked > 100
    tables = {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()}
    assert service.CHILD_RECORDS not in tables
    again = service.protected_cube(con, keys=keys)
    pd.testing.assert_frame_equal(again.counts.sort_values(KEY, ignore_index=True),
                                  protected.sort_values(KEY, ignore_index=True))


def test_the_same_cell_gets_the_same_value_in_two_builds(con, cubes):
    again = service.protected_cube(con)
    pd.testing.assert_frame_equal(cubes[1].counts.sort_values(KEY, ignore_index=True),
                                  again.counts.sort_values(KEY, ignore_index=True))


def test_the_same_area_in_two_layers_gets_the_same_value(cubes):
    """A unitary authority is one district and one children's services authority with the same code and the same
    records and children: every measure is published identically on both layers."""
    protected = cubes[1]
    lad = protected.slice("lad", "all").set_index(["agency_type", "area_code"])
    utla = protected.slice("utla", "all").set_index(["agency_type", "area_code"])
    shared = lad.index.intersection(utla.index)
    unitary = [i for i in shared if i[1].startswith(("E06", "W06"))]
    assert len(unitary) > 20
    for measure in counts.VALUE_COLUMNS:
        assert (lad.loc[unitary, measure] == utla.loc[unitary, measure]).all(), measure


@pytest.mark.parametrize("to_layer", ["utla", "pfa"])
def test_district_sums_equal_the_published_county_and_police_area_exactly(cubes, to_layer):
    protected = cubes[1]
    assert convert.nests("lad", to_layer)
    for period in protected.periods:
        lad = protected.slice("lad", period)
        summed, missing = convert.convert(lad, "lad", to_layer, list(service.ADDITIVE), by=["agency_type"])
        assert missing.empty
        published = protected.slice(to_layer, period).set_index(["agency_type", "area_code"])
        summed = summed.set_index(["agency_type", "area_code"])
        for measure in service.ADDITIVE:
            assert (summed[measure] == published.loc[summed.index, measure]).all(), (period, measure)
            assert summed[measure].sum() == published[measure].sum()  # England and Wales: the same total


def test_years_add_up_to_all_periods(cubes):
    protected = cubes[1]
    direct = protected.counts[protected.counts["basis"] == "direct"]
    years = direct[direct["granularity"] == "year"].groupby(["layer", "agency_type", "area_code"])[
        list(service.ADDITIVE)].sum()
    every = direct[direct["period"] == "all"].set_index(["layer", "agency_type", "area_code"])[
        list(service.ADDITIVE)]
    assert np.array_equal(every.loc[years.index].to_numpy(), years.to_numpy())


def test_source_gives_the_lead_the_exact_cube_and_others_the_protected_one(con):
    source = Source(con)
    assert source.cube_for("lead") is source.cube()
    protected = source.cube_for("commissioner")
    assert protected is source.cube_for("analyst")  # built once per data version
    assert not protected.counts.equals(source.cube().counts)
    assert set(protected.counts["granularity"]) == {"year", "all"}


def test_hatching_covers_exactly_the_small_areas_of_the_divergence_map(con):
    """The commissioner's ratio map hatches the districts whose published A + B is 1-9, and nothing else: every
    hatch segment lies inside one of them (within the 0.002° simplification), and each of them gets hatched."""
    import shapely

    from lib import views
    from lib.disclosure import notes
    from lib.measures import figures
    from lib.views import divergence

    source = Source(con)
    page = views.build_with("divergence", source, {"layer": "lad"}, "commissioner")
    hatch = [t for t in page.figures["div_map"].data if t.name == notes.HATCH_LEGEND]
    assert len(hatch) == 1
    table = divergence._table(source, "commissioner", "lad", "all", "police", "children_social_care",
                                         "cse_records", "none", None)
    small = set(divergence.small_codes(table))
    assert small and len(small) < len(table)
    shapes = {f["id"]: shapely.geometry.shape(f["geometry"]) for f in figures.layer_geojson("lad")["features"]}
    inside = shapely.union_all([shapes[c] for c in small if c in shapes]).buffer(0.003)
    lons, lats = list(hatch[0].lon), list(hatch[0].lat)
    segments, current = [], []
    for lon, lat in zip([*lons, None], [*lats, None]):
        if lon is None:
            if len(current) >= 2:
                segments.append(shapely.LineString(current))
            current = []
        else:
            current.append((lon, lat))
    assert segments
    assert all(inside.contains(s) for s in segments)
    hatched = {code for code in small if code in shapes
               and any(shapes[code].intersects(s.interpolate(0.5, normalized=True)) for s in segments)}
    assert hatched == {c for c in small if c in shapes}
    lead = views.build_with("divergence", source, {"layer": "lad"}, "lead")
    assert not [t for t in lead.figures["div_map"].data if t.name == notes.HATCH_LEGEND]


def test_a_commissioners_compare_has_no_c_and_says_how_it_is_protected(con):
    from lib import views
    from lib.disclosure import notes

    source = Source(con)
    page = views.build_with("compare", source, {"layer": "lad", "areas": ["E06000001", "E06000002"]},
                            "commissioner")
    for table in page.tables.values():
        assert not table.frame.astype(str).eq("c").any().any()
    assert page.note_text("disclosure") == notes.METHOD
    lead = views.build_with("compare", source, {"layer": "lad", "areas": ["E06000001", "E06000002"]}, "lead")
    assert lead.note_text("disclosure") == notes.UNPROTECTED


def test_an_empty_store_has_nothing_to_protect_and_compare_still_builds(tmp_path):
    from lib import views
    from lib.records import store

    con = store.connect(tmp_path / "empty.duckdb")
    try:
        source = Source(con)
        assert source.cube_for("commissioner").counts.empty
        page = views.build_with("compare", source, {}, "commissioner")
        assert page.note_text("disclosure")
    finally:
        con.close()


def test_england_and_wales_children_are_one_cell_whatever_the_layer(con):
    """Distinct children are not additive: a child seen in two districts is one child in England and Wales. The
    national figure is its own cell (the attack harness found it summed over the layer's areas, so it differed
    between a district and an authority Compare), exact for the lead and published once for other roles."""
    from lib.measures import compare
    from lib.views import compare as compare_view

    source = Source(con)
    for measure, flag in (("cse_children", "e.cse_flag"), ("children", "true")):
        exact = con.execute(f"""SELECT e.agency_type, count(DISTINCT rc.child_id) FILTER (WHERE {flag})
                                FROM encounters e JOIN record_child rc USING (record_key) GROUP BY 1""").fetchall()
        exact = {agency: float(n) for agency, n in exact}
        for role in ("lead", "commissioner"):
            bases = {layer: compare_view._base(source, layer, "all", measure, role) for layer in ("lad", "utla", "pfa")}
            agencies = [a for a in exact if a in bases["lad"].columns]
            values = {layer: [float(compare.national_row(base)[a].iat[0]) for a in agencies]
                      for layer, base in bases.items()}
            assert values["lad"] == values["utla"] == values["pfa"], (measure, role, values)
            if role == "lead":
                assert values["lad"] == [exact[a] for a in agencies], measure
        if measure == "children":  # the old figure, the districts' sum, counts a child in two districts twice
            summed = compare.aggregate(bases["lad"], bases["lad"]["area_code"], "sum")
            assert any(float(summed[a].iat[0]) > exact[a] for a in agencies)


def test_the_disclosure_benchmark_runs_and_prints_its_shares(tmp_path):
    """bench/bench_disclosure.py (the share of cells a commissioner sees) runs end to end on a tiny store and
    prints a share figure per output (it raised a TypeError building its store on the merged head of 30
    November). No figure is asserted beyond being a share."""
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT

    done = subprocess.run([sys.executable, "-m", "bench.bench_disclosure", "--size", "1500", "--limit", "2",
                           "--packs", "lad"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    shares = [f for f in figures if f["figure"].startswith("share shown: ")]
    compare = {f["figure"].split(" (")[0] for f in shares if "Compare" in f["figure"]}
    assert compare == {"share shown: Compare utla + neighbours"}
    assert any("board pack lad" in f["figure"] for f in shares)
    assert all(0 <= f["value"] <= 100 and f["cells"] > 0 for f in shares), shares
