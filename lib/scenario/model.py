"""The scenario on real (uploaded) data: a model from measured NHS-number completeness, not a re-run.

Real extracts carry no truth and their children cannot be re-recorded, so the gain is modelled:

- Population: the children the store's current linkage finds known to two or more agency types
  (``record_child``; anonymous contacts are never linked, so never counted).
- Today: each record of agency type *a* placed in area *x* (home, else where the encounter happened)
  carries a valid NHS number with probability p(a, x) = measured valid-number share of that agency's
  identified (non-anonymous) encounters there (``lib.records.store.completeness``).
- Scenario: p'(a, x) = the scenario's capture share for *a* (and for its agency codes where set by area),
  times (1 − parental opt-out); agencies not set keep p(a, x) × (1 − opt-out).
- A child is *recognisable by NHS number alone* when at least two of its agency types each hold at least
  one record with the number. Records are taken as independent: P(agency a holds one) = 1 − Π(1 − p_r);
  P(two or more agencies) follows exactly from those per-agency probabilities.
The expected count today and under the scenario, and their difference, are the model's answer; they say
nothing about children the current linkage misses (probabilistic linkage is not modelled).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from lib.disclosure import residents
from lib.geo import layers
from lib.measures import spans
from lib.records import store
from lib.scenario.capture import Levers
from lib.synth.config import AGENCY_TYPES

#: Layers the model tables its gain by (the registry's scenario layers, live), in the order offered.
MODEL_LAYERS = layers.SCENARIO_LAYERS
#: The area of children with no home in the layer.
UNPLACED = "(unplaced)"


def _at_least_two(p: np.ndarray) -> np.ndarray:
    """Rows of per-agency probabilities → P(two or more agencies hold a number)."""
    q = 1.0 - p
    none = q.prod(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        exactly_one = np.zeros(len(p))
        for j in range(p.shape[1]):
            others = np.prod(np.delete(q, j, axis=1), axis=1)
            exactly_one += p[:, j] * others
    return np.clip(1.0 - none - exactly_one, 0.0, 1.0)


def measured_capture(con, layer: str = "utla") -> pd.DataFrame:
    """agency_type, area_code, area_name, encounters, identified, valid_share (of identified encounters)."""
    table = store.completeness(con, layer, basis="either", by="agency_type")
    identified_pct = (100.0 - table["anonymous_pct"]).clip(lower=0)
    table["identified"] = (table["encounters"] * identified_pct / 100).round().astype(int)
    safe = identified_pct.where(identified_pct > 0, 1)
    table["valid_share"] = np.where(identified_pct > 0, table["valid_nhs_pct"] / safe,
                                    0.0).clip(0, 1)
    return table[["agency_type", "area_code", "area_name", "encounters", "identified", "valid_share"]]


def national_capture(con) -> dict:
    """Measured valid-number share of identified encounters, by agency type (all areas)."""
    frame = store.query(con, """SELECT agency_type,
        avg(CASE WHEN nhs_status = 'valid' THEN 1.0 ELSE 0.0 END) AS share
        FROM encounters WHERE NOT is_anonymous GROUP BY agency_type ORDER BY agency_type""")
    return {a: round(float(s), 4) for a, s in zip(frame["agency_type"], frame["share"])}


def _records(con, layer: str) -> pd.DataFrame:
    stored = layers.REGISTRY[layer].stored_key  # the encounters' home_/enc_ columns holding the layer
    area = f"coalesce(e.home_{stored}, e.enc_{stored}, '(unplaced)')"
    return store.query(con, f"""
        SELECT r.child_id, e.agency_type, e.agency_code, {area} AS area_code
        FROM record_child r JOIN encounters e USING (record_key)
        WHERE r.child_id IS NOT NULL AND NOT e.is_anonymous""")


def _published_by_home(kids: pd.DataFrame, home: pd.Series, multi) -> pd.Series:
    """Children known to 2+ agencies per home area as published below the lead: every child (``kids``, keyed by
    ``spans.child_keys``, its ``home`` area or unplaced) flagged when it is one of the model's multi-agency
    children (``multi``), summed over home atoms (lib.disclosure.residents): the same cell, hence the same value,
    as Across's "known to 2+ agencies" for the area (same children, same atom, same cap at the atom's children)."""
    everyone = kids.assign(home_area=home, multi_agency=kids.index.isin(multi)).reset_index()
    published = residents.area_counts(everyone, "home_area", {"multi_agency_linked": "multi_agency"})
    return published[published["multi_agency_linked"] > 0].set_index("home_area")["multi_agency_linked"]


def estimate(con, levers: Levers, layer: str = "utla", rates=None) -> dict:
    """The model's answer: totals, a table by home area and (optionally) the curve over ``rates``.

    ``rates`` sets every agency's capture share in turn (other levers kept) for the gain-versus-capture
    curve. Needs a linked store (``record_child``)."""
    if layer not in MODEL_LAYERS:
        raise ValueError(f"layer must be one of {', '.join(MODEL_LAYERS)}")
    records = _records(con, layer)
    measured = measured_capture(con, layer)
    p_today = records.merge(measured[["agency_type", "area_code", "valid_share"]], how="left",
                            on=["agency_type", "area_code"])["valid_share"]
    national = national_capture(con)
    p_today = p_today.fillna(records["agency_type"].map(national)).fillna(0.0).to_numpy()
    agencies = sorted(records["agency_type"].unique())
    agency_counts = records.groupby("child_id")["agency_type"].nunique()
    multi = agency_counts.index[agency_counts >= 2]
    part = records["child_id"].isin(multi).to_numpy()
    rec = records[part].reset_index(drop=True)
    p_rec_today = p_today[part]
    # each child's home area as on every other page (lib.measures.spans: the area of its most recent placed
    # record in the layer), its record key and its home atom, so the view can publish the children per area on
    # home atoms: the same published value as Across boundaries and Compare for the same area
    kids = spans.child_keys(con, spans.child_table(con, layer)).set_index("child_id")
    home = kids["home_area"].astype("object").where(kids["home_area"].notna(), UNPLACED)

    def expected(p_rec: np.ndarray) -> pd.Series:
        log_q = np.log(np.clip(1.0 - p_rec, 1e-12, 1.0))
        frame = pd.DataFrame({"child_id": rec["child_id"], "agency_type": rec["agency_type"], "log_q": log_q})
        q = frame.groupby(["child_id", "agency_type"])["log_q"].sum().unstack(fill_value=0.0)
        q = q.reindex(columns=agencies, fill_value=0.0)
        return pd.Series(_at_least_two(1.0 - np.exp(q.to_numpy())), index=q.index)

    def scenario_p(lv: Levers) -> np.ndarray:
        p = p_rec_today.copy()
        for agency, share in lv.capture.items():
            p[(rec["agency_type"] == agency).to_numpy()] = float(share)
        for agency, areas in lv.area_capture.items():
            for code, share in areas.items():
                p[((rec["agency_type"] == agency) & (rec["agency_code"] == code)).to_numpy()] = float(share)
        return p * (1.0 - float(lv.opt_out))

    today = expected(p_rec_today)
    scen = expected(scenario_p(levers))
    table = pd.DataFrame({"multi_agency_linked": 1, "by_number_today": today, "by_number_scenario": scen})
    table["area_code"] = home.reindex(table.index).to_numpy()
    published = _published_by_home(kids, home, table.index)
    table = table.groupby("area_code")[["multi_agency_linked", "by_number_today", "by_number_scenario"]].sum()
    table["gain_by_number"] = table["by_number_scenario"] - table["by_number_today"]
    table = table.reset_index()
    names = dict(zip(measured["area_code"], measured["area_name"]))
    table.insert(1, "area_name", table["area_code"].map(names).fillna(table["area_code"]).astype(str))
    for c in ("by_number_today", "by_number_scenario", "gain_by_number"):
        table[c] = table[c].round(1)
    table = table.sort_values(["gain_by_number", "multi_agency_linked"], ascending=False).reset_index(drop=True)
    out = {
        "kind": "model",
        "layer": layer,
        "measured_capture": national,
        "multi_agency_children_linked": int(len(multi)),
        # the national count as published below the lead: the sum of every home atom's (the areas' and unplaced)
        "published_multi_agency_children_linked": int(published.sum()),
        "expected_by_number_today": round(float(today.sum()), 1),
        "expected_by_number_scenario": round(float(scen.sum()), 1),
        "expected_gain_by_number": round(float(scen.sum() - today.sum()), 1),
        "by_area": table,
        "published_by_area": published,
    }
    if rates is not None:
        rows = []
        for rate in rates:
            settable = [a for a in agencies if a in AGENCY_TYPES]
            value = float(expected(scenario_p(levers.with_capture(rate, settable))).sum())
            rows.append({"capture": float(rate), "expected_by_number": round(value, 1),
                         "multi_agency_children_linked": int(len(multi))})
        out["curve"] = pd.DataFrame(rows)
    return out
