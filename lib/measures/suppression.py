"""Small-number suppression: the one implementation every view and export uses for aggregate-only roles.

Convention (DfE children's statistics): a count from 1 to 5 is shown as ``c`` (*primary* suppression;
zero is shown). Because a table's totals let a reader subtract the visible cells from a total,
further cells are hidden (*secondary* suppression) until no suppressed cell can be worked out from the
totals shown:

1. Lines. Each row with a visible row total (``total_column``) is a line: its count cells sum to that
   total. Each count column with a total row (``total_row``) is a line, and so are the total row
   (against the grand total) and the total column. A total cell is itself a member of its line.
2. A line holding exactly one suppressed member gives it away (total minus the rest), so the smallest
   positive visible member of that line is suppressed too (a cell before its total; zeros only when no
   positive member is left). Repeated until every line holds none or at least two.
3. Counting is not enough: a suppressed cell joining two otherwise separate groups of suppressed cells
   can still be solved from the totals (add up one group's row totals, subtract its column totals).
   So the pattern is checked exactly: a suppressed cell is recoverable when its unit vector lies in the
   row space of the line equations restricted to the suppressed cells. With both totals this is the
   same as the cell being a bridge of the graph whose nodes are rows and columns and whose edges are the
   hidden cells (a cell on a cycle can move by +t/−t around it; a bridge cannot), found in linear time;
   with one kind of total, lines share no cell; otherwise a null-space (eigen-decomposition) test is
   used. Any recoverable cell gets a partner suppressed in its row (else its column); steps repeat.

Fractional counts (figures apportioned between geographies) are small when 0 < value < 5.5.
Derived figures (rates, shares, ratios) are hidden wherever any count they come from is hidden
(``rate_columns``), because a rate times its published denominator gives the count back.
A missing value (NaN) is treated as a visible zero: it never protects a cell.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

SUPPRESSED = "c"
#: Counts with LOW <= value < HIGH are suppressed (integers 1-5; apportioned fractions below 5.5).
LOW, HIGH = 0.0, 5.5
NOTE = ("Counts from 1 to 5 are shown as c, and further cells are hidden where a hidden count could "
        "otherwise be worked out from totals; rates and shares from hidden counts are hidden too "
        "(DfE convention).")


def is_small(values) -> np.ndarray:
    """True where a count is primary-suppressed (1 to 5; 0 < x < 5.5 for apportioned fractions)."""
    array = np.asarray(pd.to_numeric(pd.Series(np.ravel(values)), errors="coerce"), dtype="float64")
    return ((array > LOW) & (array < HIGH)).reshape(np.shape(values))


def _lines(n_rows: int, n_cols: int, total_row: int | None, total_col: int | None) -> list[list[tuple[int, int]]]:
    """Each line as a list of (row, column) cells; the total cell is the line's last member."""
    lines = []
    if total_col is not None:
        for r in range(n_rows):
            lines.append([(r, c) for c in range(n_cols) if c != total_col] + [(r, total_col)])
    if total_row is not None:
        for c in range(n_cols):
            lines.append([(r, c) for r in range(n_rows) if r != total_row] + [(total_row, c)])
    return lines


def _bridges(cells: list[tuple[int, int]], n_rows: int) -> list[tuple[int, int]]:
    """With a line for every row and every column, each hidden cell is an edge between its row and its
    column, and a cell is determined exactly when it lies on no cycle of hidden cells (a bridge).
    Found with Tarjan's low-link depth-first search (iterative; linear in the cells)."""
    adjacency: dict[tuple[str, int], list[tuple[tuple[str, int], int]]] = {}
    for i, (r, c) in enumerate(cells):
        adjacency.setdefault(("r", r), []).append((("c", c), i))
        adjacency.setdefault(("c", c), []).append((("r", r), i))
    order: dict = {}
    low: dict = {}
    bridges = []
    counter = 0
    for root in adjacency:
        if root in order:
            continue
        order[root] = low[root] = counter
        counter += 1
        stack = [(root, -1, iter(adjacency[root]))]
        while stack:
            node, via, edges = stack[-1]
            advanced = False
            for neighbour, edge in edges:
                if edge == via:
                    continue
                if neighbour in order:
                    low[node] = min(low[node], order[neighbour])
                else:
                    order[neighbour] = low[neighbour] = counter
                    counter += 1
                    stack.append((neighbour, edge, iter(adjacency[neighbour])))
                    advanced = True
                    break
            if not advanced:
                stack.pop()
                if stack:
                    parent = stack[-1][0]
                    low[parent] = min(low[parent], low[node])
                    if low[node] > order[parent]:
                        bridges.append(cells[via])
    return bridges


def _disjoint(lines) -> bool:
    seen: set = set()
    for line in lines:
        if seen.intersection(line):
            return False
        seen.update(line)
    return True


def _recoverable(mask: np.ndarray, lines, full_grid: bool = False) -> list[tuple[int, int]]:
    """Suppressed cells whose value the line equations determine (unit vector in their row space)."""
    cells = [tuple(x) for x in np.argwhere(mask)]
    if not cells or not lines:
        return []
    if full_grid:
        return _bridges(cells, mask.shape[0])
    if _disjoint(lines):
        # Lines that share no cell (only row totals, or only column totals): a cell is determined exactly
        # when it is the only hidden member of its line.
        return [cell for line in lines for cell in line if mask[cell] and sum(bool(mask[c]) for c in line) == 1]
    index = {cell: i for i, cell in enumerate(cells)}
    rows = []
    for line in lines:
        vector = np.zeros(len(cells))
        *members, total = line
        for cell in members:
            if cell in index:
                vector[index[cell]] += 1.0
        if total in index:
            vector[index[total]] -= 1.0
        if vector.any():
            rows.append(vector)
    if not rows:
        return []
    matrix = np.array(rows)
    # Null space of the constraints: a cell is determined iff every null-space vector is 0 there.
    # (Eigenvectors of AᵀA with eigenvalue ~0: AᵀA is only cells × cells, so this stays fast.)
    eigenvalues, vectors = np.linalg.eigh(matrix.T @ matrix)
    null = vectors[:, eigenvalues < 1e-8 * max(float(eigenvalues.max()), 1.0)].T
    free = np.abs(null).max(axis=0) if len(null) else np.zeros(len(cells))
    return [cell for cell, f in zip(cells, free) if f < 1e-9]


def _pick_partner(values: np.ndarray, mask: np.ndarray, line, keep=frozenset()) -> tuple[int, int] | None:
    """Smallest positive visible member of a line (cells before the total); else a visible zero."""
    *members, total = line
    visible = [cell for cell in members if not mask[cell]]
    positive = [cell for cell in visible if values[cell] > 0]
    if positive:
        return min(positive, key=lambda cell: (cell[1] in keep, values[cell], cell))
    if not mask[total] and values[total] > 0:
        return total
    return min(visible, key=lambda cell: cell) if visible else None


def suppression_mask(table: pd.DataFrame, count_columns: Iterable[str], *, total_row=None,
                     total_column: str | None = None, keep: Iterable[str] = ()) -> pd.DataFrame:
    """Boolean frame (``count_columns`` plus ``total_column``) true where a cell must be hidden.

    ``total_row`` is the index label of a row holding column totals; ``total_column`` names the column
    holding row totals (of ``count_columns``). ``keep``: columns whose cells secondary suppression takes
    last (e.g. the two agencies a view compares). Primary plus secondary suppression (module docstring)."""
    columns = [c for c in count_columns if c != total_column]
    if total_column is not None:
        columns.append(total_column)
    frame = table[columns].apply(pd.to_numeric, errors="coerce").astype("float64")
    values = np.nan_to_num(frame.to_numpy(dtype="float64", copy=True), nan=0.0)
    mask = is_small(values)
    t_row = None if total_row is None else int(np.flatnonzero(table.index == total_row)[0])
    t_col = None if total_column is None else len(columns) - 1
    keep_index = frozenset(i for i, c in enumerate(columns) if c in set(keep))  # hidden last, when a choice exists
    lines = _lines(values.shape[0], values.shape[1], t_row, t_col)
    for _ in range(values.size + 1):
        changed = False
        for line in lines:  # step 2: no line with exactly one hidden member
            if sum(bool(mask[cell]) for cell in line) == 1:
                partner = _pick_partner(values, mask, line, keep_index)
                if partner is not None:
                    mask[partner] = True
                    changed = True
        if changed:
            continue
        exposed = _recoverable(mask, lines, full_grid=t_row is not None and t_col is not None)  # step 3
        partners = set()
        for cell in exposed:  # one partner per exposed cell, in its row line first
            if any(cell in line and set(line) & partners for line in lines):
                continue  # a partner already added in one of its lines may be enough; re-check next round
            for line in lines:
                partner = _pick_partner(values, mask, line, keep_index) if cell in line else None
                if partner is not None:
                    mask[partner] = True
                    partners.add(partner)
                    changed = True
                    break
        if not changed:
            break
    return pd.DataFrame(mask, index=table.index, columns=columns)


def suppress(table: pd.DataFrame, count_columns: Iterable[str], *, total_row=None, total_column: str | None = None,
             keep: Iterable[str] = (),
             rate_columns: Mapping[str, str | Iterable[str]] | None = None) -> pd.DataFrame:
    """``table`` for display: hidden counts (and rates from them) replaced by ``"c"``.

    ``rate_columns`` maps a derived column to the count column (or columns) it is computed from.
    ``hidden_cells(result)`` tells which cells were suppressed (primary and secondary alike)."""
    count_columns = list(count_columns)
    mask = suppression_mask(table, count_columns, total_row=total_row, total_column=total_column, keep=keep)
    for rate, sources in (rate_columns or {}).items():
        sources = [sources] if isinstance(sources, str) else list(sources)
        mask[rate] = mask[[s for s in sources]].any(axis=1)
    out = table.copy()
    for column in mask.columns:
        hidden = mask[column].to_numpy()
        if hidden.any():
            out[column] = out[column].astype("object").where(~hidden, SUPPRESSED)
    return out


def hidden_cells(display: pd.DataFrame) -> pd.DataFrame:
    """Boolean frame, true where a ``suppress`` result shows ``c``."""
    return display.apply(lambda column: column.astype("object") == SUPPRESSED).astype(bool)


def numeric(display: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """A ``suppress`` result with ``c`` turned into NaN in ``columns`` (for charts: hidden values are not
    drawn, never drawn as zero)."""
    out = display.copy()
    for column in columns:
        out[column] = pd.to_numeric(out[column].where(out[column] != SUPPRESSED), errors="coerce").astype("float64")
    return out
