"""The careful attacker, as a linear programme: everything a role can see, turned into constraints on the true
counts, and each protected count bounded from below and above (scipy's HiGHS). The tests and
``bench/bench_disclosure.py`` use it to check the guarantee in docs/DISCLOSURE.md; an operator can run it on a store.

Two kinds of published relation:

- Additive counts (records): every published count is the exact sum of perturbed atom cells q_a, and the attacker
  knows each q_a lies within MAX_NOISE of the atom's true count t_a (t_a >= 0). ``add_additive`` adds one family
  (one agency x period x measure): variables t_a and q_a per atom, one equality per published area.
- Distinct counts (children): each published count p_c is within MAX_NOISE of its true count t_c; true counts obey
  the geography: a district's children are among its county's (t_W <= t_P), and a county's children are among the
  union of its districts' (t_P <= sum t_W). ``add_distinct`` adds one family.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix, csr_matrix, vstack
from scipy.sparse.csgraph import connected_components

from lib.disclosure.cellkey import MAX_NOISE


@dataclass
class Programme:
    """Variables (name -> column), equality rows (A_eq x = b_eq) and inequality rows (A_ub x <= b_ub)."""
    columns: dict[str, int] = field(default_factory=dict)
    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    eq: list[tuple[dict[int, float], float]] = field(default_factory=list)
    ub: list[tuple[dict[int, float], float]] = field(default_factory=list)
    changes: int = field(default=0, repr=False)  # counts every change, so the built matrices are rebuilt after one
    _cache: tuple | None = field(default=None, repr=False, compare=False)
    _parts: tuple | None = field(default=None, repr=False, compare=False)  # components and their HiGHS models

    def var(self, name: str, lo: float = 0.0, hi: float | None = None) -> int:
        self.changes += 1
        if name not in self.columns:
            self.columns[name] = len(self.columns)
            self.lower.append(lo)
            self.upper.append(math.inf if hi is None else hi)
        else:
            i = self.columns[name]
            self.lower[i] = max(self.lower[i], lo)
            self.upper[i] = min(self.upper[i], math.inf if hi is None else hi)
        return self.columns[name]

    def add_eq(self, terms: dict[int, float], value: float) -> None:
        self.changes += 1
        self.eq.append((terms, value))

    def add_le(self, terms: dict[int, float], value: float) -> None:
        self.changes += 1
        self.ub.append((terms, value))

    def _matrix(self, rows):
        if not rows:
            return None, None
        data, r, c = [], [], []
        for i, (terms, _) in enumerate(rows):
            for j, v in terms.items():
                r.append(i)
                c.append(j)
                data.append(v)
        shape = (len(rows), len(self.columns))
        return coo_matrix((data, (r, c)), shape=shape).tocsr(), np.array([v for _, v in rows], dtype=float)

    def _built(self):
        """The matrices and bounds of the programme, built once and kept until a variable or row is added (the
        attack bounds thousands of cells over one programme: rebuilding them per cell cost more than the solve)."""
        shape = (self.changes, len(self.columns), len(self.eq), len(self.ub))
        if self._cache is None or self._cache[0] != shape:
            a_eq, b_eq = self._matrix(self.eq)
            a_ub, b_ub = self._matrix(self.ub)
            bounds = list(zip(self.lower, [None if math.isinf(u) else u for u in self.upper]))
            self._cache = (shape, a_eq, b_eq, a_ub, b_ub, bounds)
        return self._cache[1:]

    def bound(self, target: dict[str, float]) -> tuple[float, float]:
        """(lowest, highest) value of sum(coef * var) over everything the attacker knows. With highspy installed
        (the tests and benchmarks: requirements-dev.txt) the programme is split into its independent components
        (``components``), one small HiGHS model per component is kept and each bound re-solved from its last
        optimal basis (only the objective changes); else scipy's HiGHS solves afresh."""
        try:
            import highspy  # noqa: F401
        except ImportError:
            return self._bound_scipy(target)
        return self._bound_highs(target)

    def _bound_scipy(self, target: dict[str, float]) -> tuple[float, float]:
        a_eq, b_eq, a_ub, b_ub, bounds = self._built()
        c = np.zeros(len(self.columns))
        for name, coef in target.items():
            c[self.columns[name]] = coef
        result = []
        for sign in (1, -1):
            res = linprog(sign * c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
            if res.status != 0:
                raise RuntimeError(f"the attacker's programme has no solution ({res.message}): the published "
                                   "figures contradict the stated method")
            result.append(sign * res.fun)
        return result[0], result[1]

    def _layout(self):
        """The programme's independent components: columns joined by any row are in one component (a row's
        columns all share one). Returns (state, label of each column, {label: (its columns, its eq rows, its ub
        rows)}), built once per state of the programme."""
        key = (self.changes, len(self.columns), len(self.eq), len(self.ub))
        if self._parts is not None and self._parts[0] == key:
            return self._parts
        a_eq, _, a_ub, _, _ = self._built()
        n = len(self.columns)
        blocks = [m for m in (a_eq, a_ub) if m is not None]
        incidence = vstack(blocks).tocsr() if blocks else csr_matrix((0, n))
        rows = incidence.shape[0]
        # the bipartite graph columns + rows, an edge per nonzero: its components are the programme's
        edges = incidence.tocoo()
        graph = coo_matrix((np.ones(edges.nnz), (edges.col, n + edges.row)), shape=(n + rows, n + rows))
        _, labels = connected_components(graph, directed=False)
        columns = labels[:n]
        row_labels = labels[n:]
        n_eq = 0 if a_eq is None else a_eq.shape[0]
        parts: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        col_groups = _groups(columns)
        eq_groups = _groups(row_labels[:n_eq])
        ub_groups = _groups(row_labels[n_eq:])
        empty = np.array([], dtype=np.int64)
        for label, cols in col_groups.items():
            parts[label] = (cols, eq_groups.get(label, empty), ub_groups.get(label, empty))
        self._parts = (key, columns, parts, {})
        return self._parts

    def components(self) -> int:
        """How many independent components the programme falls into (a column in no row is one of its own)."""
        return len(self._layout()[2])

    def _component_model(self, label: int):
        """One HiGHS model per component with rows (kept, and re-solved from its last basis: only the
        objective changes between bounds), over the component's own columns and rows."""
        import highspy

        _, _, parts, models = self._layout()
        if label in models:
            return models[label]
        cols, eq_rows, ub_rows = parts[label]
        a_eq, b_eq, a_ub, b_ub, _ = self._built()
        inf = highspy.kHighsInf
        model = highspy.Highs()
        model.setOptionValue("output_flag", False)
        model.setOptionValue("threads", 1)
        lower = np.array(self.lower, dtype=float)[cols]
        upper = np.array([inf if math.isinf(u) else u for u in self.upper], dtype=float)[cols]
        model.addVars(len(cols), lower, upper)
        blocks, lo, hi = [], [], []
        if len(eq_rows):
            blocks.append(a_eq[eq_rows][:, cols])
            lo.append(b_eq[eq_rows])
            hi.append(b_eq[eq_rows])
        if len(ub_rows):
            blocks.append(a_ub[ub_rows][:, cols])
            lo.append(np.full(len(ub_rows), -inf))
            hi.append(b_ub[ub_rows])
        matrix = vstack(blocks).tocsr()
        model.addRows(matrix.shape[0], np.concatenate(lo), np.concatenate(hi), matrix.nnz,
                      matrix.indptr[:-1].astype(np.int32), matrix.indices.astype(np.int32),
                      matrix.data.astype(float))
        local = {int(c): i for i, c in enumerate(cols)}
        models[label] = (model, local, {})
        return models[label]

    def _solve_component(self, label: int, costs_wanted: dict[int, float]) -> tuple[float, float]:
        import highspy

        model, local, costs = self._component_model(label)
        wanted = {local[j]: v for j, v in costs_wanted.items()}
        changed = {j: 0.0 for j in costs if j not in wanted} | wanted
        if changed:
            index = np.array(list(changed), dtype=np.int32)
            model.changeColsCost(len(index), index, np.array(list(changed.values()), dtype=float))
        costs.clear()
        costs.update(wanted)
        result = []
        for sense in (highspy.ObjSense.kMinimize, highspy.ObjSense.kMaximize):
            model.changeObjectiveSense(sense)
            model.run()
            status = model.getModelStatus()
            if status != highspy.HighsModelStatus.kOptimal:
                raise RuntimeError(f"the attacker's programme has no solution ({model.modelStatusToString(status)})"
                                   ": the published figures contradict the stated method")
            result.append(model.getInfo().objective_function_value)
        return result[0], result[1]

    def _bound_highs(self, target: dict[str, float]) -> tuple[float, float]:
        """The bounds component by component: the programme's feasible set is the product of its independent
        components' sets, so the lowest (highest) value of a sum is the sum of the lowest (highest) value of its
        part in each component; each component's small model is solved on its own (a column in no row needs
        no solve: its own bounds)."""
        _, labels, parts, _ = self._layout()
        by_part: dict[int, dict[int, float]] = {}
        for name, coef in target.items():
            j = self.columns[name]
            by_part.setdefault(int(labels[j]), {})[j] = by_part.get(int(labels[j]), {}).get(j, 0.0) + float(coef)
        low = high = 0.0
        for label, costs in by_part.items():
            cols, eq_rows, ub_rows = parts[label]
            if not len(eq_rows) and not len(ub_rows):
                (j, coef), = costs.items()
                ends = (coef * self.lower[j], coef * self.upper[j])
                low, high = low + min(ends), high + max(ends)
                continue
            lo, hi = self._solve_component(label, costs)
            low, high = low + lo, high + hi
        return low, high

    def point(self) -> np.ndarray:
        """One point the attacker cannot rule out (a feasible solution of every component; a column in no row
        at its lower bound). Raises when the programme has none."""
        import highspy

        _, _, parts, _ = self._layout()
        x = np.array(self.lower, dtype=float)
        for label, (cols, eq_rows, ub_rows) in parts.items():
            if not len(eq_rows) and not len(ub_rows):
                continue
            model, local, costs = self._component_model(label)
            if costs:
                index = np.array(list(costs), dtype=np.int32)
                model.changeColsCost(len(index), index, np.zeros(len(index)))
                costs.clear()
            model.changeObjectiveSense(highspy.ObjSense.kMinimize)
            model.run()
            if model.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                raise RuntimeError("the attacker's programme has no solution: the published figures contradict "
                                   "the stated method")
            x[cols] = np.asarray(model.getSolution().col_value)
        return x

    def feasible(self, x: np.ndarray, tol: float = 1e-6) -> bool:
        """Whether ``x`` (one value per column) meets every bound and row of the programme: checked, so a
        point built by hand can stand as proof of what the attacker cannot rule out."""
        a_eq, b_eq, a_ub, b_ub, _ = self._built()
        x = np.asarray(x, dtype=float)
        if len(x) != len(self.columns):
            return False
        if (x < np.array(self.lower) - tol).any() or (x > np.array(self.upper) + tol).any():
            return False
        if a_eq is not None and (np.abs(a_eq @ x - b_eq) > tol).any():
            return False
        return a_ub is None or bool((a_ub @ x <= b_ub + tol).all())


def _groups(labels: np.ndarray) -> dict[int, np.ndarray]:
    """Label -> the positions holding it (one sort, not one pass per label)."""
    order = np.argsort(labels, kind="stable")
    values, starts = np.unique(labels[order], return_index=True)
    return {int(v): part for v, part in zip(values, np.split(order, starts[1:]))}


def add_additive(programme: Programme, family: str, atoms_of: dict[str, list[str]], published: dict[str, float],
                 noise: int = MAX_NOISE) -> None:
    """One family of additive counts: ``atoms_of[cell]`` lists the atoms a published cell sums (the attacker knows
    the geography), ``published[cell]`` its value."""
    for cell, value in published.items():
        terms: dict[int, float] = {}
        for atom in atoms_of[cell]:
            t = programme.var(f"{family}|t|{atom}")
            q = programme.var(f"{family}|q|{atom}")
            terms[q] = terms.get(q, 0.0) + 1.0
            programme.add_le({q: 1.0, t: -1.0}, noise)   # q - t <= noise
            programme.add_le({t: 1.0, q: -1.0}, noise)   # t - q <= noise
        programme.add_eq(terms, float(value))


def add_distinct(programme: Programme, family: str, published: dict[str, float], inside: list[tuple[str, str]],
                 covers: list[tuple[str, list[str]]], noise: int = MAX_NOISE) -> None:
    """One family of distinct counts: ``inside`` pairs (small, big): every child of the small cell is in the big
    one; ``covers`` (cell, parts): every child of the cell is in at least one part."""
    for cell, value in published.items():
        programme.var(f"{family}|t|{cell}", lo=max(0.0, value - noise), hi=value + noise)
    for small, big in inside:
        if small in published and big in published:
            programme.add_le({programme.columns[f"{family}|t|{small}"]: 1.0,
                              programme.columns[f"{family}|t|{big}"]: -1.0}, 0.0)
    for cell, parts in covers:
        if cell in published and all(p in published for p in parts):
            terms = {programme.columns[f"{family}|t|{cell}"]: 1.0}
            for p in parts:
                j = programme.columns[f"{family}|t|{p}"]
                terms[j] = terms.get(j, 0.0) - 1.0
            programme.add_le(terms, 0.0)


def integer_interval(lo: float, hi: float) -> tuple[int, int]:
    """The whole numbers a count can still be (LP bounds rounded inwards, with a little tolerance)."""
    return math.ceil(lo - 1e-6), math.floor(hi + 1e-6)
