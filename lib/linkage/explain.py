"""Why two groups of records were (or were not) linked: Splink's match weights, field by field.

A link's match weight is the prior (how likely two random records are the same child) plus one
weight per comparison (positive where the fields agree more than chance, negative where they
disagree). The waterfall chart shows them in order; the total converts to the match probability.
Each field's level is the one that fired for the pair: Splink's gamma_* value (kept in link_edges
with the mw_* weights), named by the latest model's level labels.
"""
from __future__ import annotations

import json
import math

import duckdb
import pandas as pd
import plotly.graph_objects as go

from lib.records.store import cursor

#: Plain-English names of the comparisons in lib.linkage.model.
COMPARISON_TITLES = {"forename": "Forename", "surname": "Surname", "date_of_birth": "Date of birth",
                     "sex": "Sex", "home_postcode": "Home postcode or area seen"}


def latest_model(con: duckdb.DuckDBPyConnection) -> dict:
    with cursor(con) as cur:
        rows = cur.execute("SELECT model FROM linkage_runs ORDER BY run_id DESC LIMIT 1").fetchall()
    if not rows or not rows[0][0] or rows[0][0] == "{}":
        raise LookupError("no trained linkage model: run linkage first")
    return json.loads(rows[0][0])


def gamma_labels(levels: list[dict]) -> dict[int, str]:
    """Splink's comparison vector value (gamma) of each level of a comparison in a model's JSON, to its label.

    Splink numbers a comparison's levels so: the null level is -1; the others count down from the first
    (the strongest agreement, number of non-null levels - 1) to the last (0, the else level)."""
    counter = sum(1 for level in levels if not level.get("is_null_level")) - 1
    labels = {}
    for level in levels:
        if level.get("is_null_level"):  # the first null level names -1 (a later one, e.g. the joint names', also
            labels.setdefault(-1, level.get("label_for_charts", ""))  # has -1 and no weight)
        else:
            labels[counter] = level.get("label_for_charts", "")
            counter -= 1
    return labels


def plain_label(label: str, is_null: bool = False) -> str:
    """A level's label in plain English (Splink's own for exact, null and else levels name columns)."""
    if is_null:
        return "missing on one side"
    if label.startswith("Exact match on"):
        return "Identical"
    return "Disagree" if label == "All other comparisons" else label


def level_reached(levels: list[dict], gamma) -> str:
    """The plain-English label of the level that fired for a pair, from its gamma value."""
    if gamma is None or pd.isna(gamma):
        raise LookupError("no comparison level was recorded for this pair")
    labels = gamma_labels(levels)
    if int(gamma) not in labels:
        raise LookupError(f"comparison level {int(gamma)} is not in the latest model")
    return plain_label(labels[int(gamma)], is_null=int(gamma) == -1)


def explain_pair(con: duckdb.DuckDBPyConnection, node_l: str, node_r: str) -> tuple[pd.DataFrame, float]:
    """(one row per step: step, level, match_weight, cumulative; the match probability), from the weights
    Splink computed for this pair in the latest run (kept in link_edges), so the bars add up to the
    probability the review queue shows."""
    settings = latest_model(con)
    with cursor(con) as cur:
        edge = cur.execute("SELECT * FROM link_edges WHERE (node_l = ? AND node_r = ?) OR (node_l = ? AND node_r = ?)",
                           [node_l, node_r, node_r, node_l]).df()
    if edge.empty or pd.isna(edge.iloc[0]["match_weight"]):
        raise LookupError("this pair was not scored by the model in the latest run")
    if not any(column.startswith("gamma_") for column in edge.columns):
        raise LookupError("these links were made by an earlier version without per-field levels: "
                          "link the records again to see why")
    row = edge.iloc[0]
    lam = settings["probability_two_random_records_match"]
    rows = [("Prior (two random records)", "", math.log2(lam / (1 - lam)))]
    levels = {c["output_column_name"]: c["comparison_levels"] for c in settings["comparisons"]}
    for name, title in COMPARISON_TITLES.items():
        base = float(row.get(f"mw_{name}", 0.0) or 0.0)
        tf = float(row.get(f"mw_tf_adj_{name}", 0.0) or 0.0) if f"mw_tf_adj_{name}" in row.index else 0.0
        level = level_reached(levels[name], row.get(f"gamma_{name}"))
        rows.append((title, level + (" (adjusted for how common)" if tf else ""), base + tf))
    table = pd.DataFrame(rows, columns=["step", "level", "match_weight"])
    table["cumulative"] = table["match_weight"].cumsum()
    return table, float(row["match_probability"])


def waterfall_figure(table: pd.DataFrame, probability: float) -> go.Figure:
    """Plotly waterfall of the match weights; hover and text say the level reached for each field."""
    figure = go.Figure(go.Waterfall(
        x=table["step"], y=table["match_weight"].round(2), measure=["relative"] * len(table),
        text=[f"{w:+.1f}" for w in table["match_weight"]], textposition="outside",
        customdata=table["level"], hovertemplate="%{x}: %{customdata}<br>weight %{y:+.2f}<extra></extra>",
        increasing={"marker": {"color": "#0072B2"}}, decreasing={"marker": {"color": "#D55E00"}},
        connector={"line": {"color": "#999999"}},
    ))
    figure.update_layout(title=f"Match weight {table['match_weight'].sum():+.1f} → probability {probability:.3f}",
                         yaxis_title="Match weight (bits)", height=380, margin={"l": 10, "r": 10, "t": 50, "b": 10},
                         showlegend=False)
    return figure
