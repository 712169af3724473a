"""Equality keys that find every pair of a rule on names alone whose weight bound can reach the floor (issue 19).

The rule on names alone (`band_pairs.national`) pairs two records anywhere in the country at any age: 84 million
pairs at 5,000,000 encounters, of which about 4 million have a weight bound (lib.linkage.weight_bound) at or
above the floor. Forming all of them to test the bound cost about 30 s of that link. Here the same pairs are met
on keys instead, read from the model's own levels:

- a level's SQL condition implies simple facts a pair must meet where the level fires (`alternatives`, parsed by
  sqlglot, Splink's SQL library): "dob_hash_l" = "dob_hash_r" implies the two dates' hashes are equal;
  "x_l" IS NULL OR "x_r" IS NULL implies one side's x is null; an OR of equalities one of them. What cannot be read
  (ABS(...) <= 1, the ELSE level) implies nothing;
- a level whose every alternative is an equality on many distinct values (`MIN_KEYS`) is an *equality level*:
  every pair in it shares one of its keys with the names, whatever its other comparisons say;
- a pair in no equality level has each comparison at a null level or at a level that implies nothing. Its bound
  is then at most the prior, the names' best, each chosen null level's weight and each other comparison's best
  level that implies nothing; the surname's term-frequency adjustment is at most the one either node's own
  frequency gives. So for each choice of null levels (`plan`'s combinations) a node whose own such bound is under
  the floor's weight cannot be in such a pair, and the pair must meet the chosen levels' null tests.

Each key is a 64-bit hash per node and side (`Key`): equal for the two nodes of every pair it must find (two
different keys with one hash only add a pair, which the exact test afterwards drops). One join on the key finds
them all, and `band_pairs.pair_keys` then keeps a pair exactly as before: the rule, and the bound reaching the
floor. So the kept pairs are those the rule's whole join kept (tests/test_linkage_bound_joins.py checks both: every
pair whose bound reaches the floor shares a key, and the pairs kept are the whole join's). At 5M the keys meet 5.5
million candidates of the rule's 84 million pairs (docs/PERFORMANCE.md, session 14).
"""
from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from lib.linkage import weight_bound

#: An equality on fewer distinct values than this (sex, the year of birth) is not used as a key: with the names it
#: would pair most same-name nodes anyway. A performance choice only: the kept pairs do not depend on it.
MIN_KEYS = 100
#: More keys than this and the plan is not used (the rule's whole join runs): each key is one more hash per node.
MAX_KEYS = 48

Atom = tuple  # ("eq", x, y): the left node's x equals the right node's y; ("null", side, x): that side's x is null


def _side(column: exp.Expression) -> tuple[str, str] | None:
    if not isinstance(column, exp.Column):
        return None
    match = re.fullmatch(r"(\w+)_([lr])", column.name)
    return (match.group(1), match.group(2)) if match else None


def _read(node: exp.Expression) -> list[frozenset] | None:
    if isinstance(node, exp.Paren):
        return _read(node.this)
    if isinstance(node, exp.Coalesce) and [e.sql() for e in node.expressions] == ["FALSE"]:
        return _read(node.this)  # coalesce(c, false) holds only where c does
    if isinstance(node, exp.EQ):
        left, right = _side(node.this), _side(node.expression)
        if left and right and {left[1], right[1]} == {"l", "r"}:
            (x, _), (y, _) = sorted([left, right], key=lambda s: s[1])
            return [frozenset({("eq", x, y)})]
        return None
    if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
        side = _side(node.this)
        return [frozenset({("null", side[1], side[0])})] if side else None
    if isinstance(node, exp.And):
        left, right = _read(node.this), _read(node.expression)
        if left is None or right is None:
            return left if right is None else right
        return [a | b for a in left for b in right]
    if isinstance(node, exp.Or):
        left, right = _read(node.this), _read(node.expression)
        return None if left is None or right is None else left + right
    return None


def alternatives(sql: str) -> list[frozenset] | None:
    """What a level's SQL condition implies (a level's form, "x_l" and "x_r"): a list of alternatives, one of which
    holds wherever the condition does, each a set of atoms that all hold; None where nothing can be read."""
    return _read(sqlglot.parse_one(sql, read="duckdb"))


@dataclass(frozen=True)
class Key:
    """Pairs (l, r) meeting every atom: the left node's hash of `equal`'s left columns equals the right node's of
    their right columns; `null` atoms on their side; `reach` (SQL on one node, or None) on both nodes."""
    equal: tuple
    null: tuple
    reach: str | None

    def side_sql(self, number: int, side: str) -> str:
        """SQL on one node's columns: its hash for this key as the `side` node of a pair, NULL where it cannot be."""
        columns = [f'"{x if side == "l" else y}"' for _, x, y in self.equal]
        tests = [f"{c} IS NOT NULL" for c in columns]
        tests += [f'"{x}" IS NULL' for _, s, x in self.null if s == side]
        tests += [f"({self.reach})"] if self.reach else []
        value = f"hash({', '.join([str(number), *columns])})"
        return f"CASE WHEN {' AND '.join(tests)} THEN {value} END" if tests else value


def _on_node(sql: str) -> str:
    """A weight's SQL on one node: both sides' term frequencies read as the node's own ("tf_x_l" -> "tf_x")."""
    return re.sub(r'"tf_(\w+)_[lr]"', r'"tf_\1"', sql)


def plan(model_json: dict, list_columns: set[str], rule: str, floor: float, facts) -> list[Key] | None:
    """The keys that meet every pair of `rule` (a level's form) whose bound reaches `floor` (a probability), or None
    where they cannot be read (the rule is not equalities, too many keys): then the rule's whole join must run.
    `facts(column)`: the column's DuckDB type and (about) how many distinct values the nodes hold (None where the
    nodes have no such column): an equality of two columns of different types cannot be hashed alike."""
    names = alternatives(rule)
    if not names or len(names) != 1 or any(a[0] != "eq" for a in names[0]):
        return None
    names_atoms = names[0]
    settings = weight_bound._settings(model_json)
    lam = float(settings._probability_two_random_records_match)
    fixed = [repr(math.log2(lam / (1.0 - lam)))]
    tf_columns = weight_bound.tf_columns(model_json)
    weighs = []  # per comparison read exactly, its levels: [(what the level implies or None, its weight's SQL)]
    for comparison in settings.comparisons:
        levels = comparison.comparison_levels
        weights = [weight_bound._weight(level, levels) for level in levels]
        if any(weight_bound._reads(level.sql_condition, list_columns) for level in levels):
            fixed.append(f"greatest({', '.join(_on_node(w) for w in weights)})")
            continue
        weighs.append([(None if level._is_else_level else alternatives(level.sql_condition), _on_node(w))
                       for level, w in zip(levels, weights)])
    if any(level._has_tf_adjustments and level._tf_adjustment_weight < 0
           for comparison in settings.comparisons for level in comparison.comparison_levels):
        return None  # a negative adjustment: a node's own frequency would not bound the pair's

    def strong(alternative: frozenset) -> bool:
        """Whether the alternative's equalities beyond the rule's own hold on many values (an equality the rule
        already implies, the names' exact level where they read no list, selects nothing)."""
        equal = [(facts(x), facts(y)) for kind, x, y in alternative - names_atoms if kind == "eq"]
        if not equal or any(fx is None or fy is None or fx[0] != fy[0] for fx, fy in equal):
            return False
        return math.prod(fx[1] for fx, _ in equal) >= MIN_KEYS

    required = {("l", x) for _, x, _ in names_atoms} | {("r", y) for _, _, y in names_atoms}

    def contradicts(alternative: frozenset) -> bool:
        """Whether the alternative tests for null a column the rule's equalities need present."""
        return any(kind == "null" and (side, x) in required for kind, side, x in alternative)

    keys: list[Key] = []
    choices = []  # per comparison: its null levels (weight, alternatives) and, if any, the best level implying nothing
    for levels in weighs:
        null_levels, weak = [], []
        for alts, weight in levels:
            if alts is not None:
                alts = [a for a in alts if not contradicts(a)]
                if not alts:
                    continue  # the level tests a null the rule rules out: no pair of the rule is in it
            if alts and all(strong(a) for a in alts):  # an equality level: its keys, no reach needed
                keys += [Key(_equal(a | names_atoms), (), None) for a in alts]
            elif alts and all(strong(a) or any(x[0] == "null" for x in a) for a in alts):
                null_levels.append((weight, alts))
            else:
                weak.append(weight)
        choices.append(null_levels + ([(f"greatest({', '.join(weak)})", None)] if weak else []))
    target = repr(weight_bound.floor_weight(floor))
    tf_null = "".join(f' OR "tf_{c}" IS NULL' for c in tf_columns)
    for combination in itertools.product(*choices):
        reach = " + ".join(f"({w})" for w in [*fixed, *(weight for weight, _ in combination)])
        reach = f"({reach} + {weight_bound.MARGIN!r}) >= {target}{tf_null}"
        alts = [frozenset()]
        for _, level_alts in combination:
            if level_alts is not None:
                alts = [a | b for a in alts for b in level_alts]
        keys += [Key(_equal(a | names_atoms), tuple(sorted(x for x in a if x[0] == "null")), reach) for a in alts]
    keys = _covered_dropped(keys)
    return keys if len(keys) <= MAX_KEYS else None


def _equal(atoms: frozenset) -> tuple:
    return tuple(sorted(a for a in atoms if a[0] == "eq"))


def _covered_dropped(keys: list[Key]) -> list[Key]:
    """Each key once, and none that a key without `reach` already meets (its atoms a superset of that key's)."""
    unique = list(dict.fromkeys(keys))
    return [k for k in unique if not any(o != k and o.reach is None and set(o.equal) <= set(k.equal)
                                         and set(o.null) <= set(k.null) for o in unique)]
