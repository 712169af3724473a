"""Cell key perturbation and the attacker's linear programme (lib.disclosure; docs/DISCLOSURE.md).

The attacker is tested first: on per-table perturbation of nested counts it pins a hidden count exactly (so it is
able to find what it looks for). Then the method: with counts perturbed once on atoms and summed, no true count
1-5 of any atom or area is ever bounded to fewer than three whole values, whatever is subtracted from what.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.disclosure import attack, cellkey

SECRET = b"test secret, not a real key"


def test_the_perturbation_table_is_unbiased_bounded_and_never_negative():
    cellkey.check_table()
    counts = np.repeat(np.arange(0, 12), cellkey.KEYS)
    keys = np.tile(np.arange(cellkey.KEYS), 12)
    published = cellkey.perturb(counts, keys)
    assert (published >= 0).all() and (np.abs(published - counts) <= cellkey.MAX_NOISE).all()
    assert (published[counts == 0] == 0).all()  # nothing happened: nothing is published
    for c in range(12):  # mean zero over the keys, each true count
        assert published[counts == c].mean() == pytest.approx(c)


def test_the_same_members_get_the_same_noise_and_a_different_secret_changes_it():
    ids = [f"child-{i}" for i in range(40)]
    keys = cellkey.member_keys(ids, SECRET)
    assert (keys == cellkey.member_keys(ids, SECRET)).all()
    assert not (keys == cellkey.member_keys(ids, b"another secret")).all()
    same = cellkey.cell_key(keys[:5])
    assert same == cellkey.cell_key(keys[:5][::-1])  # order does not matter: the same set
    assert 0 <= same < cellkey.KEYS


def test_the_attacker_pins_a_count_when_each_table_is_perturbed_on_its_own():
    """County 12 = district W 3 + rest 9, each published with its own noise of at most 2 (the extreme draw):
    W 5, rest 11, county 10. Subtracting gives W in [3, 3]."""
    lp = attack.Programme()
    w, rest = lp.var("W"), lp.var("rest")
    for terms, published in (({w: 1.0}, 5), ({rest: 1.0}, 11), ({w: 1.0, rest: 1.0}, 10)):
        lp.add_le(terms, published + 2)
        lp.add_le({k: -v for k, v in terms.items()}, -(published - 2))
    assert attack.integer_interval(*lp.bound({"W": 1.0})) == (3, 3)


def _nested_geography():
    """Atoms a..f; districts, a county, a police area and an overlapping health area built from them."""
    return {"district 1": ["a"], "district 2": ["b", "c"], "district 3": ["d"], "district 4": ["e"],
            "district 5": ["f"], "county": ["a", "b", "c", "d"], "police area": ["a", "b", "c", "d", "e", "f"],
            "health area": ["c", "d", "e"], "region": ["a", "b", "c", "d", "e", "f"]}


def _publish(true_atoms: dict[str, int], geography) -> dict[str, float]:
    members = {atom: [f"{atom}-{i}" for i in range(n)] for atom, n in true_atoms.items()}
    keys = {atom: cellkey.cell_key(cellkey.member_keys(ids, SECRET)) for atom, ids in members.items()}
    q = {atom: int(cellkey.perturb([true_atoms[atom]], [keys[atom]])[0]) for atom in true_atoms}
    return {cell: float(sum(q[a] for a in atoms)) for cell, atoms in geography.items()}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=9), min_size=6, max_size=6))
def test_no_small_count_is_pinned_however_published_counts_are_subtracted(counts):
    geography = _nested_geography()
    true_atoms = dict(zip("abcdef", counts))
    published = _publish(true_atoms, geography)
    lp = attack.Programme()
    attack.add_additive(lp, "cse", geography, published)
    targets = {**{f"atom {a}": [a] for a in true_atoms}, **geography}
    for name, atoms in targets.items():
        true = sum(true_atoms[a] for a in atoms)
        if not 1 <= true <= 5:
            continue
        lo, hi = attack.integer_interval(*lp.bound({f"cse|t|{a}": 1.0 for a in atoms}))
        assert lo <= true <= hi, (name, true, lo, hi)
        assert hi - lo >= 2, f"{name}: true {true} bounded to [{lo}, {hi}] from {published}"


def test_distinct_counts_bounded_by_the_geography_are_never_pinned_when_the_same_children_share_noise():
    """A county whose children all live in one district: the same children, the same cell key, the same noise,
    so the county cannot be used to cut the district's interval to one value."""
    children = [f"child-{i}" for i in range(3)]
    key = cellkey.cell_key(cellkey.member_keys(children, SECRET))
    district = county = float(cellkey.perturb([3], [key])[0])
    other = 0.0
    lp = attack.Programme()
    attack.add_distinct(lp, "children", {"district": district, "other": other, "county": county},
                        inside=[("district", "county"), ("other", "county")],
                        covers=[("county", ["district", "other"])])
    lo, hi = attack.integer_interval(*lp.bound({"children|t|district": 1.0}))
    assert lo <= 3 <= hi and hi - lo >= 2


def test_the_kept_highs_model_bounds_as_a_fresh_solve_does():
    """The attacker's bounds from the kept HiGHS model (highspy, re-solved from the last basis with only the
    objective changed) equal scipy's fresh solves, target after target, and a row added after a bound is used."""
    pytest.importorskip("highspy")
    rng = np.random.default_rng(7)
    programme = attack.Programme()
    truth = rng.integers(0, 6, 120)
    for i in range(len(truth)):
        programme.var(f"x{i}", 0.0, 1e7)
    for _ in range(90):
        members = rng.choice(len(truth), 5, replace=False)
        programme.add_eq({int(j): 1.0 for j in members}, float(truth[members].sum()))
    targets = [{f"x{i}": 1.0, f"x{(i * 7) % len(truth)}": 2.0} for i in range(25)]
    for target in targets:
        assert np.allclose(programme._bound_highs(target), programme._bound_scipy(target), atol=1e-6), target
    programme.add_eq({0: 1.0}, float(truth[0]))
    assert np.allclose(programme._bound_highs({"x0": 1.0}), (truth[0], truth[0]), atol=1e-6)


def test_independent_components_are_bounded_apart_as_the_whole_programme_bounds_them():
    """The programme falls into independent components (columns joined by a row); each is solved on its own and
    a sum across them is bounded by the sum of its parts' bounds: the same as one solve of the whole (scipy),
    a column in no row at its own bounds."""
    pytest.importorskip("highspy")
    rng = np.random.default_rng(11)
    programme = attack.Programme()
    for i in range(60):
        programme.var(f"x{i}", 0.0, 50.0)
    for block in range(3):  # three chained blocks x0-x18, x20-x38, x40-x58; x19, x39 and x59 in no row
        for k in range(16):
            members = [20 * block + k + d for d in (0, 1, 2, 3)]
            programme.add_le({j: float(rng.integers(1, 3)) for j in members}, float(rng.integers(5, 30)))
            programme.add_le({j: -1.0 for j in members}, -float(rng.integers(0, 4)))
    assert programme.components() == 6
    for target in ({"x0": 1.0, "x25": 1.0, "x59": 1.0}, {"x3": 2.0, "x41": 1.0}, {"x59": 1.0},
                   {"x10": 1.0, "x11": -1.0, "x50": 1.0}):
        assert np.allclose(programme._bound_highs(target), programme._bound_scipy(target), atol=1e-6), target


def test_a_point_that_breaks_a_row_is_not_taken_as_proof():
    """Witness points stand as proof only when every bound and row holds (Programme.feasible)."""
    programme = attack.Programme()
    a, b = programme.var("a", 0.0, 10.0), programme.var("b", 0.0, 10.0)
    programme.add_eq({a: 1.0, b: 1.0}, 4.0)
    programme.add_le({a: 1.0}, 3.0)
    assert programme.feasible(np.array([3.0, 1.0]))
    assert not programme.feasible(np.array([4.0, 0.0]))   # a <= 3 broken
    assert not programme.feasible(np.array([2.0, 1.0]))   # a + b = 4 broken
    assert not programme.feasible(np.array([-1.0, 5.0]))  # a >= 0 broken
    x = programme.point()
    assert programme.feasible(x)
