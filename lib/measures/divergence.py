"""Where two agencies' counts diverge, area by area, and why.

For a layer, a period, a measure (``cse_records`` or ``cse_children``, see ``lib.measures.counts``) and a
pair of agencies A and B (default police vs children's social care), every area gets A's and B's count
(direct basis: records placed by where the encounter happened), the share A / (A + B) against the national
share with exact binomial funnel limits (``lib.measures.funnel``), the log ratio log(A / B) with its 95%
interval, and rates per 10,000 children where a population is given.

**Decomposition of the gap** for one area X (always of CSE records and children, whatever the measure):

- ``N_A``, ``N_B``: native basis — each agency's CSE records counted on its own geography (by
  ``agency_code``) and converted to the layer (summed or apportioned), as published figures would be.
- ``R_A``, ``R_B``: CSE records placed directly by encounter location in X.
- ``C_A``, ``C_B``: distinct linked children with a CSE record of that agency located in X.

The total gap is ``N_A − N_B`` (what comparing the agencies' own figures shows), and

- boundary effect  = (N_A − N_B) − (R_A − R_B): what counting on each agency's native geography rather
  than on the common one adds to the gap;
- identity effect  = (R_A − R_B) − (C_A − C_B): what counting records rather than distinct children adds;
- recording effect = C_A − C_B: what remains — the agencies really record different numbers of children.

The three sum to the total gap exactly (they telescope). Without linkage the identity effect is not
available and the recording effect is taken on records.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from lib.geo import agencies
from lib.measures import convert, funnel
from lib.measures.counts import AGENCIES, MEASURES, MeasureCube, agency_counts, period_label

NOUN = {"cse_records": "CSE-flagged records", "cse_children": "children with a CSE flag",
        "records": "records", "children": "children"}


def agency_title(agency: str) -> str:
    return AGENCIES.get(agency, agency)


def _agency_subject(agency: str) -> str:
    return agencies.AGENCIES[agency].subject if agency in agencies.AGENCIES else agency_title(agency)


def divergence_table(cube: MeasureCube, layer: str, period: str = "all", a: str = "police",
                     b: str = "children_social_care", measure: str = "cse_records",
                     population: pd.Series | None = None) -> pd.DataFrame:
    """One row per area of ``layer``: ``area_code``, ``area_name``, ``count_a``, ``count_b``, ``total``,
    ``share_a`` (A / total), ``national_share``, funnel limits ``lower_95`` … ``upper_998`` at n = total,
    ``verdict`` (``funnel.verdict``), ``outside_95``, ``outside_998``, ``log_ratio`` (+ ``_low``/``_high``),
    ``pct_difference`` (A / B − 1), ``children_population``, ``rate_a``, ``rate_b`` (per 10,000; NaN
    without a population), ``rank`` (1 = A furthest above B by log ratio, among areas with counts)."""
    if a == b:
        raise ValueError("choose two different agencies")
    wide = agency_counts(cube, layer, period, measure)
    for agency in (a, b):
        if agency not in wide.columns:
            wide[agency] = 0.0
    out = wide[["area_code", "area_name"]].copy()
    out["count_a"] = wide[a].astype("float64")
    out["count_b"] = wide[b].astype("float64")
    out["total"] = out["count_a"] + out["count_b"]
    out["share_a"] = (out["count_a"] / out["total"].where(out["total"] > 0)).astype("float64")
    grand = out["total"].sum()
    p0 = float(out["count_a"].sum() / grand) if grand > 0 else np.nan
    out["national_share"] = p0
    lim = funnel.limits(out["total"].fillna(0).to_numpy(), p0 if not np.isnan(p0) else 0.5)
    out = pd.concat([out.reset_index(drop=True), lim], axis=1)
    out["verdict"] = funnel.verdicts(out["share_a"].to_numpy("float64"), out)
    out["outside_95"] = out["verdict"].str.startswith(("above", "below"))
    out["outside_998"] = out["verdict"].str.endswith("99.8%")
    out = pd.concat([out, funnel.log_ratio(out["count_a"].fillna(0), out["count_b"].fillna(0))], axis=1)
    has = out["total"] > 0
    for column in ("log_ratio", "log_ratio_low", "log_ratio_high"):
        out[column] = out[column].where(has)
    out["pct_difference"] = (out["count_a"] / out["count_b"].where(out["count_b"] > 0) - 1).astype("float64")
    pop = population if population is not None else pd.Series(dtype="float64")
    out["children_population"] = out["area_code"].map(pop).astype("float64")
    per = out["children_population"].where(out["children_population"] > 0)
    out["rate_a"] = out["count_a"] / per * 10_000
    out["rate_b"] = out["count_b"] / per * 10_000
    out["rank"] = out["log_ratio"].rank(ascending=False, method="min").astype("Int64")
    return out.sort_values(["rank", "area_name"], na_position="last").reset_index(drop=True)


def trend(cube: MeasureCube, layer: str, area: str, a: str = "police", b: str = "children_social_care",
          measure: str = "cse_records", granularity: str = "quarter") -> pd.DataFrame:
    """One row per period (quarters or years) for one area: ``period``, ``count_a``, ``count_b``,
    ``share_a``, ``national_share`` and its funnel limits at the area's total that period, ``verdict``."""
    periods = [p for p in cube.periods if p != "all" and (" Q" in p) == (granularity == "quarter")]
    rows = []
    for period in periods:
        table = divergence_table(cube, layer, period, a, b, measure)
        row = table[table["area_code"] == area]
        if row.empty:
            continue
        rows.append(row.iloc[0][["count_a", "count_b", "total", "share_a", "national_share", "lower_95",
                                 "upper_95", "lower_998", "upper_998", "verdict"]].to_dict() | {"period": period})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=["period", "count_a", "count_b", "total", "share_a", "national_share",
                                     "verdict"])
    return frame[["period", *[c for c in frame.columns if c != "period"]]]


def decomposition(cube: MeasureCube, layer: str, area: str, period: str = "all", a: str = "police",
                  b: str = "children_social_care") -> dict:
    """The gap A − B in one area split into boundary, identity and recording effects (module docstring).

    Returns ``{"components": DataFrame[component, value, description], "total": float, "native_a",
    "native_b", "records_a", "records_b", "children_a", "children_b", "apportioned": bool,
    "linked": bool}``; the component values sum to ``total``."""
    def value(measure: str, basis: str, agency: str) -> float:
        table = agency_counts(cube, layer, period, measure, basis)
        row = table[table["area_code"] == area]
        if row.empty or agency not in table.columns:
            return 0.0
        return float(row[agency].iloc[0]) if not pd.isna(row[agency].iloc[0]) else 0.0

    native_a, native_b = value("cse_records", "native", a), value("cse_records", "native", b)
    records_a, records_b = value("cse_records", "direct", a), value("cse_records", "direct", b)
    if cube.linked:
        children_a, children_b = value("cse_children", "direct", a), value("cse_children", "direct", b)
    else:
        children_a, children_b = records_a, records_b
    total = native_a - native_b
    boundary = total - (records_a - records_b)
    identity = (records_a - records_b) - (children_a - children_b)
    recording = children_a - children_b
    native_rows = agency_counts(cube, layer, period, "cse_records", "native", agencies=[a, b])
    apportioned = bool(native_rows.loc[native_rows["area_code"] == area, "apportioned"].any())
    components = pd.DataFrame({
        "component": ["Boundary effect", "Identity effect", "Recording effect"],
        "value": [boundary, identity, recording],
        "description": [
            "each agency counted on its own geography (then summed or apportioned) rather than by where "
            "encounters happened",
            "records counted rather than distinct linked children" if cube.linked else
            "not available: records have not been linked",
            "the difference in distinct children each agency recorded here" if cube.linked else
            "the difference in records each agency holds here",
        ]})
    return {"components": components, "total": total, "native_a": native_a, "native_b": native_b,
            "records_a": records_a, "records_b": records_b, "children_a": children_a, "children_b": children_b,
            "apportioned": apportioned, "linked": cube.linked}


# -- plain-English readings ----------------------------------------------------------------------------

def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value - round(value)) < 1e-9 else f"{value:,.1f}"


def describe_area(row: pd.Series, a: str, b: str, measure: str) -> str:
    """"Police in X record 40% fewer CSE-flagged records than children's services; this is outside the
    99.8% limit." for one row of ``divergence_table``."""
    name, noun = row["area_name"], NOUN.get(measure, measure)
    if not row["total"] or row["total"] <= 0:
        return f"Neither agency recorded any {noun} in {name}."
    subject, other = _agency_subject(a), _agency_subject(b).lower()
    if other.startswith("children's"):
        other = "children's services"
    if row["count_b"] <= 0:
        comparison = f"record {_fmt(row['count_a'])} {noun} while {other} record none"
    else:
        pct = row["pct_difference"]
        if abs(pct) < 0.005:
            comparison = f"record as many {noun} as {other}"
        else:
            comparison = (f"record {abs(pct):.0%} {'fewer' if pct < 0 else 'more'} {noun} than {other} "
                          f"({_fmt(row['count_a'])} against {_fmt(row['count_b'])})")
    verdict = row["verdict"]
    if verdict == "within":
        tail = "this is within the 95% limits around the national share, so it may be chance"
    elif verdict.endswith("95%"):
        tail = "this is outside the 95% limit but inside the 99.8% limit"
    else:
        tail = "this is outside the 99.8% limit"
    return f"{subject} in {name} {comparison}; {tail}."


def describe_table(table: pd.DataFrame, a: str, b: str, measure: str, period: str) -> str:
    """One sentence about the whole layer: national share and areas outside the limits."""
    counted = table[table["total"] > 0]
    if counted.empty:
        return f"No {NOUN.get(measure, measure)} were recorded by either agency in {period_label(period)}."
    p0 = counted["national_share"].iat[0]
    n998 = int(counted["outside_998"].sum())
    n95 = int(counted["outside_95"].sum())
    return (f"Nationally, {p0:.0%} of the {NOUN.get(measure, measure)} recorded by {agency_title(a).lower()} or "
            f"{agency_title(b).lower()} in {period_label(period)} were {agency_title(a).lower()}'s; "
            f"{n95} of {len(counted)} areas lie outside the 95% funnel limits and {n998} outside the 99.8% limits.")


def describe_funnel(table: pd.DataFrame, a: str, b: str) -> str:
    out = table[table["outside_998"]].sort_values("total", ascending=False)
    if out.empty:
        return (f"No area's {agency_title(a).lower()} share lies outside the 99.8% limits: the differences are "
                "what chance alone would produce.")
    names = ", ".join(out["area_name"].head(4))
    more = f" and {len(out) - 4} more" if len(out) > 4 else ""
    return (f"{len(out)} area{'s' if len(out) != 1 else ''} lie outside the 99.8% limits around the national "
            f"{agency_title(a).lower()} share: {names}{more}.")


def describe_trend(frame: pd.DataFrame, area_name: str, a: str, b: str, measure: str) -> str:
    if frame.empty or frame["total"].sum() == 0:
        return f"No {NOUN.get(measure, measure)} were recorded in {area_name} in any period."
    first, last = frame.iloc[0], frame.iloc[-1]
    outside = int(frame["verdict"].str.startswith(("above", "below")).sum())
    return (f"In {area_name}, {agency_title(a).lower()} recorded {_fmt(first['count_a'])} and "
            f"{agency_title(b).lower()} {_fmt(first['count_b'])} {NOUN.get(measure, measure)} in {first['period']}, "
            f"against {_fmt(last['count_a'])} and {_fmt(last['count_b'])} in {last['period']}; the share was outside "
            f"the 95% limits in {outside} of {len(frame)} periods.")


def describe_decomposition(result: dict, area_name: str, a: str, b: str) -> str:
    comp = result["components"].set_index("component")["value"]
    total = result["total"]
    largest = comp.abs().idxmax() if comp.abs().sum() > 0 else "Recording effect"
    direction = "more" if total >= 0 else "fewer"
    return (f"On their own geographies, {agency_title(a).lower()} count {_fmt(abs(total))} {direction} CSE-flagged "
            f"records than {agency_title(b).lower()} in {area_name}; the largest part of that gap is the "
            f"{largest.lower()} ({comp[largest]:+,.1f}).")


def export_table(table: pd.DataFrame, a: str, b: str, layer: str, period: str, measure: str,
                 rate_basis: str | None = None) -> pd.DataFrame:
    """The ``divergence`` command's CSV: one row per area with each agency's count, the divergence measure
    and its funnel verdict; ``rate_basis`` (the population behind ``rate_a``/``rate_b``) as a column if given."""
    out = table[["area_code", "area_name", "count_a", "count_b", "total", "share_a", "national_share",
                 "log_ratio", "log_ratio_low", "log_ratio_high", "lower_95", "upper_95", "lower_998", "upper_998",
                 "verdict", "rate_a", "rate_b"]].rename(columns={"count_a": a, "count_b": b})
    out = out.assign(layer=convert.layer_key(layer), period=period, measure=measure)
    return out if rate_basis is None else out.assign(rate_basis=rate_basis)


__all__ = ["divergence_table", "trend", "decomposition", "describe_area", "describe_table", "describe_funnel",
           "describe_trend", "describe_decomposition", "export_table", "MEASURES"]
