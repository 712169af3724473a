"""Linkage quality against the synthetic generator's ground truth (evaluation and benchmarks only).

Pairwise measures over non-anonymous records: a pair is predicted linked when both records have
the same child_id, truly linked when they come from the same true child. Anonymous contacts are
left out of both sides: they carry no identifier and are never linked by design. The multi-agency
count is children known to two or more agency types, estimated (linked clusters) against true
(true children, counting their non-anonymous records only).
"""
from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from lib.linkage.run import multi_agency_children
from lib.records.store import cursor


def _pairs(labels: pd.Series) -> int:
    counts = labels.value_counts().to_numpy(dtype=np.int64)
    return int((counts * (counts - 1) // 2).sum())


def pairwise_scores(predicted: pd.Series, truth: pd.Series) -> dict:
    """Precision, recall and F1 of the pairs implied by two labellings of the same records."""
    both = predicted.astype(str) + "\u0000" + truth.astype(str)
    true_positive, predicted_pairs, true_pairs = _pairs(both), _pairs(predicted), _pairs(truth)
    precision = true_positive / predicted_pairs if predicted_pairs else 1.0
    recall = true_positive / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 5), "recall": round(recall, 5), "f1": round(f1, 5),
            "true_pairs": true_pairs, "predicted_pairs": predicted_pairs, "true_positive_pairs": true_positive}


def evaluate(con: duckdb.DuckDBPyConnection, truth: pd.DataFrame) -> dict:
    """Compare the store's latest linkage with the truth table (agency_type, source_record_id, true_child_id)."""
    with cursor(con) as cur:
        linked = cur.execute("""SELECT e.agency_type, e.source_record_id, r.child_id
                                FROM record_child r JOIN encounters e USING (record_key)
                                WHERE NOT e.is_anonymous""").df()
    truth = truth[["agency_type", "source_record_id", "true_child_id"]]
    merged = linked.merge(truth, on=["agency_type", "source_record_id"], how="inner", validate="one_to_one")
    if len(merged) < len(linked):
        raise ValueError(f"{len(linked) - len(merged)} linked records have no row in the truth file")
    scores = pairwise_scores(merged["child_id"], merged["true_child_id"])
    estimated = multi_agency_children(merged)
    true = multi_agency_children(merged, "true_child_id")
    scores.update({
        "records_evaluated": int(len(merged)),
        "children_estimated": int(merged["child_id"].nunique()),
        "children_true": int(merged["true_child_id"].nunique()),
        "multi_agency_children_estimated": estimated,
        "multi_agency_children_true": true,
        "multi_agency_relative_error": round(estimated / true - 1, 5) if true else None,
    })
    return scores
