"""Why two groups of records were (or were not) linked: Splink's match weights, field by field.

A link's match weight is the prior (how likely two random records are the same child) plus one
weight per comparison (positive where the fields agree more than chance, negative where they
disagree). The waterfall chart shows them in order; the total converts to the match probability.
"""
from __future__ import annotations

import json
import math

import duckdb
import pandas as pd
import plotly.graph_objects as go

from lib.linkage import model

#: Plain-English names of the comparisons in lib.linkage.model.
COMPARISON_TITLES = {"forename": "Forename", "surname": "Surname", "date_of_birth": "Date of birth",
                     "sex": "Sex", "home_postcode": "Home postcode"}


def latest_model(con: duckdb.DuckDBPyConnection) -> dict:
    cur = con.cursor()
    try:
        rows = cur.execute("SELECT model FROM linkage_runs ORDER BY run_id DESC LIMIT 1").fetchall()
    finally:
        cur.close()
    if not rows or not rows[0][0] or rows[0][0] == "{}":
        raise LookupError("no trained linkage model: run linkage first")
    return json.loads(rows[0][0])


def node_features(con: duckdb.DuckDBPyConnection, node_id: str) -> dict:
    """The features Splink compared for a group: a record's own, or an NHS group's most common values."""
    cur = con.cursor()
    try:
        frame = cur.execute(
            f"""SELECT {', '.join('e.' + c for c in model.FEATURES)} FROM record_child r
                JOIN encounters e USING (record_key) WHERE r.node_id = ? AND (r.by_nhs OR r.node_id LIKE 'R:%')""",
            [node_id]).df()
    finally:
        cur.close()
    if frame.empty:
        raise LookupError(f"no records for group {node_id}")
    features = {}
    for column in model.FEATURES:
        values = frame[column].dropna()
        features[column] = values.value_counts().sort_index().idxmax() if len(values) else None
    if features["birth_year"] is not None:
        features["birth_year"] = int(features["birth_year"])
    return features


def _surname_frequency(con: duckdb.DuckDBPyConnection, surname_hash: str | None) -> float | None:
    if surname_hash is None:
        return None
    cur = con.cursor()
    try:
        share = cur.execute("SELECT avg(CASE WHEN surname_hash = ? THEN 1.0 ELSE 0.0 END) FROM encounters "
                            "WHERE surname_hash IS NOT NULL", [surname_hash]).fetchall()[0][0]
    finally:
        cur.close()
    return float(share) if share else None


def _level_label(levels: list[dict], gamma: int) -> str:
    """Splink numbers non-null levels from the top down to ELSE = 0; -1 is the null level."""
    if gamma < 0:
        return "missing on one side"
    non_null = [level for level in levels if not level.get("is_null_level")]
    label = non_null[len(non_null) - 1 - gamma].get("label_for_charts", "")
    if label.startswith("Exact match on"):
        return "Identical (keyed hashes match)"
    return "Disagree" if label == "All other comparisons" else label


def explain_pair(con: duckdb.DuckDBPyConnection, node_l: str, node_r: str) -> tuple[pd.DataFrame, float]:
    """(one row per step: step, level, match_weight, cumulative; the match probability)."""
    from splink import Linker
    from splink.backends.duckdb import DuckDBAPI

    settings = latest_model(con)
    left, right = node_features(con, node_l), node_features(con, node_r)
    left["unique_id"], right["unique_id"] = node_l, node_r
    left["tf_surname_hash"] = _surname_frequency(con, left["surname_hash"])
    right["tf_surname_hash"] = _surname_frequency(con, right["surname_hash"])
    db_api = DuckDBAPI(connection=duckdb.connect())
    frame = pd.DataFrame([left, right])[["unique_id", *model.FEATURES]]
    linker = Linker(db_api.register(frame, dataset_display_name="pair"), settings, log_level=40)
    scored = linker.inference.score_pair(left, right).as_pandas_dataframe().iloc[0]

    lam = settings["probability_two_random_records_match"]
    prior = math.log2(lam / (1 - lam))
    rows = [("Prior (two random records)", "", prior)]
    levels = {c["output_column_name"]: c["comparison_levels"] for c in settings["comparisons"]}
    for name, title in COMPARISON_TITLES.items():
        label = _level_label(levels[name], int(scored[f"gamma_{name}"]))
        weight = float(scored.get(f"mw_{name}", 0.0) or 0.0)
        tf_weight = float(scored.get(f"mw_tf_{name}", 0.0) or 0.0) if f"mw_tf_{name}" in scored else 0.0
        rows.append((title, label, weight + tf_weight))
    table = pd.DataFrame(rows, columns=["step", "level", "match_weight"])
    table["cumulative"] = table["match_weight"].cumsum()
    return table, float(scored["match_probability"])


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
