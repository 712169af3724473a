"""The highest match weight a candidate pair could reach, read from its cheap comparisons (issue 19).

Splink scores every pair its blocking rules propose and only then drops those under the floor. The rule that
pairs two records anywhere in the country at any age (the same forename and surname) proposes pairs that grow
with the square of the store: 3.5 million at 1,000,000 encounters, 73.4 million at 5,000,000 (more than every
other rule together), and most of them are two children with one common name whose dates of birth and homes
disagree. No agreement of the names can lift such a pair to the floor.

The bound, in a level's SQL form ("x_l", "x_r"): the prior, plus the weight of each comparison that reads no list
column (date of birth, sex, home postcode: its levels' own conditions in Splink's order, so exactly the weight
Splink gives), plus the highest weight each other comparison (the names, with their Bloom-filter levels) could give,
the surname's exact level with this pair's term-frequency adjustment computed as Splink computes it. Every level's
weight is Splink's own (its Settings object read from the trained model's JSON, defaults for unobserved levels
included). A pair whose bound is under the floor's weight cannot reach the floor, so dropping it before scoring
changes no scored pair at or above it (tests/test_linkage_band_pairs.py).
"""
from __future__ import annotations

import math

#: Added to the bound, in bits: the bound is summed in another order than Splink's sum, so float rounding could put a
#: pair exactly at the floor a hair under it; this keeps every such pair (a bit is a factor of two in the odds).
MARGIN = 0.01


def _settings(model_json: dict):
    from splink.internals.settings_creator import SettingsCreator

    return SettingsCreator.from_path_or_dict(model_json).get_settings("duckdb")


def floor_weight(floor: float) -> float:
    """The match weight of probability `floor` (Splink's log2 odds); -inf at 0."""
    return -math.inf if floor <= 0 else math.log2(floor / (1.0 - floor))


def tf_columns(model_json: dict) -> list[str]:
    """The columns whose term frequencies the model's levels adjust by (Splink's tf_<column> tables)."""
    found = []
    for comparison in _settings(model_json).comparisons:
        for level in comparison.comparison_levels:
            if level._has_tf_adjustments and level._tf_adjustment_weight != 0:
                name = level._tf_adjustment_input_column.unquote().name
                if name not in found:
                    found.append(name)
    return found


def tf_table_sql(column: str, table: str) -> str:
    """Splink's term-frequency table of `column` (splink.internals.term_frequencies), column tf_<column>."""
    return f"""SELECT "{column}", CAST(count(*) AS DOUBLE) / (SELECT count("{column}") FROM {table}) AS "tf_{column}"
               FROM {table} WHERE "{column}" IS NOT NULL GROUP BY "{column}" """


def _reads(sql: str, columns: set[str]) -> bool:
    return any(f'"{c}_l"' in sql or f'"{c}_r"' in sql for c in columns)


def _number(value: float) -> str:
    """A float as DuckDB SQL, infinities included (an m or u of 0 gives Splink an infinite weight)."""
    return f"CAST('{value}' AS DOUBLE)" if math.isinf(value) else repr(float(value))


def _log2_bayes_factor(level) -> float:
    try:
        return float(level._log2_bayes_factor)
    except ValueError:  # log2(0): an m of 0
        return -math.inf


def _weight(level, levels) -> str:
    """SQL: the weight `level` gives where it fires, with its term-frequency adjustment as Splink writes it
    (splink.internals.comparison_level._tf_adjustment_sql)."""
    weight = _number(_log2_bayes_factor(level))
    if level.is_null_level or not level._has_tf_adjustments or level._tf_adjustment_weight == 0 \
            or level._is_else_level:
        return weight
    name = level._tf_adjustment_input_column.unquote().name
    left, right = f'"tf_{name}_l"', f'"tf_{name}_r"'
    u_exact = math.log2(level._u_probability_corresponding_to_exact_match(levels))
    tf = f"greatest(coalesce({left}, {right}), coalesce({right}, {left}), {float(level._tf_minimum_u_value)!r})"
    adjust = f"{float(level._tf_adjustment_weight)!r} * ({u_exact!r} - log2({tf}))"
    return f"({weight} + CASE WHEN coalesce({left}, {right}) IS NOT NULL THEN {adjust} ELSE 0.0 END)"


def bound_sql(model_json: dict, list_columns: set[str]) -> str:
    """SQL (a level's form) for the highest match weight the pair could reach; `list_columns` are the columns a
    comparison must not read to be weighed exactly (the Bloom filters: testing them per pair is what scoring costs)."""
    settings = _settings(model_json)
    lam = float(settings._probability_two_random_records_match)
    terms = [repr(math.log2(lam / (1.0 - lam)))]
    for comparison in settings.comparisons:
        levels = comparison.comparison_levels
        if any(_reads(level.sql_condition, list_columns) for level in levels):
            terms.append(f"greatest({', '.join(_weight(level, levels) for level in levels)})")
            continue
        cases = [f"WHEN {level.sql_condition} THEN {_weight(level, levels)}"
                 for level in levels if not level._is_else_level]
        default = [_weight(level, levels) for level in levels if level._is_else_level]
        if not default:  # no ELSE level (none in our models): where no level fires, the highest of them
            default = [f"greatest({', '.join(_weight(level, levels) for level in levels)})"]
        terms.append(f"CASE {' '.join(cases)} ELSE {default[0]} END")
    return " + ".join(f"({t})" for t in terms) + f" + {MARGIN!r}"
