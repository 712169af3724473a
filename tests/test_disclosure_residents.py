"""Resident children published on home atoms (lib.disclosure.residents): every area is the sum of its atoms, a
part is never published above its whole, and an atom's value for a flag does not depend on which table asks."""
from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from lib.disclosure import residents
from lib.disclosure.cellkey import MAX_NOISE

FLAGS = {"children": None, "multi_agency": "multi_agency", "missed": "missed", "spans_any": "spans_any",
         "spans_pfa": "spans_pfa", "spans_utla": "spans_utla"}


def _children(rows: list[tuple]) -> pd.DataFrame:
    """Children from (atom, rkey, multi_agency, missed_if_multi, spans_pfa, spans_utla): flags made consistent
    the way the measures define them (missed within multi-agency; spans_any the union of the geographies)."""
    frame = pd.DataFrame(rows, columns=[residents.ATOM, "rkey", "multi_agency", "missed", "spans_pfa", "spans_utla"])
    frame["missed"] = frame["missed"] & frame["multi_agency"]
    frame["spans_any"] = frame["spans_pfa"] | frame["spans_utla"]
    frame["home_area"] = "A" + (frame[residents.ATOM] % 3).astype(str)
    return frame


CHILD = st.tuples(st.integers(0, 7), st.integers(0, 255), st.booleans(), st.booleans(), st.booleans(),
                  st.booleans())


@given(st.lists(CHILD, max_size=60))
def test_parts_never_exceed_wholes_and_stay_within_the_noise(rows):
    children = _children(rows)
    published = residents.atom_counts(children, FLAGS)
    for out, flag in FLAGS.items():
        truth = (children.groupby(residents.ATOM).size() if flag is None
                 else children.groupby(residents.ATOM)[flag].sum()).reindex(published.index).fillna(0)
        assert (abs(published[out] - truth) <= MAX_NOISE).all(), out
        assert (published[out][truth == 0] == 0).all(), out
        assert (published[out] >= 0).all(), out
    for part, whole in (("multi_agency", "children"), ("missed", "multi_agency"), ("spans_any", "children"),
                        ("spans_pfa", "spans_any"), ("spans_utla", "spans_any")):
        assert (published[part] <= published[whole]).all(), (part, whole)


@given(st.lists(CHILD, min_size=1, max_size=60))
def test_an_atoms_value_is_the_same_whichever_table_asks(rows):
    """Across's spans table, its missed table, Compare and the Scenario model ask for different flags: the
    same cell (atom, flag) must get the same published value in each (the cap at a whole applies either way)."""
    children = _children(rows)
    every = residents.atom_counts(children, FLAGS)
    for subset in ({"spanning": "spans_pfa"}, {"m": "missed"}, {"children": None, "spanning": "spans_any"},
                   {"multi_agency_linked": "multi_agency"}):
        alone = residents.atom_counts(children, subset)
        for out, flag in subset.items():
            named = next(o for o, f in FLAGS.items() if f == flag)
            np.testing.assert_array_equal(alone[out].to_numpy(), every[named].to_numpy())


def test_an_area_is_the_exact_sum_of_its_atoms():
    rng = np.random.default_rng(5)
    rows = [(int(a), int(k), bool(m), bool(s), bool(p), bool(u)) for a, k, m, s, p, u in zip(
        rng.integers(0, 9, 400), rng.integers(0, 256, 400), *(rng.random((4, 400)) < 0.4))]
    children = _children(rows)
    atoms = residents.atom_counts(children, FLAGS)
    areas = residents.area_counts(children, "home_area", FLAGS).set_index("home_area")
    home = children.drop_duplicates(residents.ATOM).set_index(residents.ATOM)["home_area"]
    expected = atoms.groupby(home.reindex(atoms.index).to_numpy()).sum()
    pd.testing.assert_frame_equal(areas, expected, check_names=False, check_dtype=False)


def test_atom_ids_number_each_combination_of_homes_once_in_order_of_first_appearance():
    """A child's home atom is its combination of home areas, "no home" a value of its own: the ids equal a plain
    numbering of the tuples (texts, the missing spelt out) in the order they first appear."""
    rng = np.random.default_rng(7)
    codes = np.array(["E1", "E2", "W1", None], dtype=object)
    homes = pd.DataFrame({f"home_{i}": pd.array(codes[rng.integers(0, 4, 500)], dtype="string") for i in range(4)})
    homes.loc[0, "home_0"] = "\u2205x"  # a text that only looks like a marker is not "no home"
    seen: dict[tuple, int] = {}
    expected = [seen.setdefault(tuple("<none>" if pd.isna(v) else v for v in row), len(seen))
                for row in homes.itertuples(index=False)]
    got = residents.atom_ids(homes, list(homes.columns))
    assert got.tolist() == expected
    assert residents.atom_ids(homes.iloc[:0], list(homes.columns)).tolist() == []
