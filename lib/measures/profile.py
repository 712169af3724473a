"""The area profile (issue 17): one area's indicators against England and Wales and its comparator group,
Fingertips style, with 95% confidence intervals.

Indicators (numerators and denominators from ``lib.measures.compare.area_base``; every value of a group is
computed from summed numerators and denominators, never an average of rates):

- ``rate_<agency>``: each agency's CSE-flagged records per 10,000 children (Byar interval, ``intervals.rate``);
- ``share_a``: police share of police + children's social care records (%; Wilson, ``intervals.proportion``);
- ``published_rate``: the published DfE children in need table C3 count (child sexual exploitation identified
  at the end of assessment) per 10,000 children (Byar), England only;
- ``valid_nhs_pct``, ``name_dob_pct``: identifier completeness (% of records; Wilson);
- ``spanning_pct``: resident linked children whose encounters span two or more areas of any kind (%; Wilson);
- ``linkage_pct``: identifiable records linkage joined to at least one other (%; Wilson).

Significance (Fingertips' method): the area's 95% interval against the benchmark's value: ``higher`` (the
whole interval above it), ``lower`` (below), ``similar`` (overlapping). "Better" and "worse" are not used: a
higher count of recorded harm may mean better recognition as much as more harm.

Measures know no roles: the caller passes the hidden-cell mask for the viewer (``compare.hidden_mask``). A
hidden cell has no value, no interval and no significance.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import pandas as pd

from lib.measures import compare, convert, intervals
from lib.measures import divergence as dv
from lib.measures import published as pub

NATIONAL = compare.NATIONAL
COMPARATOR = compare.COMPARATOR
ENGLAND = "England"
#: Colour-blind-safe (Okabe-Ito) colours and marker shapes of a comparison; the text always says it too.
SIGNIFICANCE_STYLE = {
    "higher": {"colour": "#0072B2", "symbol": "triangle-up", "text": "higher than"},
    "similar": {"colour": "#F0E442", "symbol": "circle", "text": "similar to"},
    "lower": {"colour": "#E69F00", "symbol": "triangle-down", "text": "lower than"},
    "not compared": {"colour": "#FFFFFF", "symbol": "circle-open", "text": "not compared with"},
    "hidden": {"colour": "#FFFFFF", "symbol": "x-open", "text": "hidden for your role, not compared with"},
}
RATE, PROPORTION = "rate", "proportion"
COLUMNS = ["indicator", "label", "kind", "numerator", "denominator", "value", "lower", "upper", "hidden",
           "comparator_value", "national_value", "national_label", "vs_national", "vs_comparator",
           "range_min", "range_q1", "range_q3", "range_max", "areas_in_range"]


def spec(agencies: list[str], a: str = "police", b: str = "children_social_care") -> list[tuple]:
    """(indicator, label, kind, numerator column, denominator column) of the store's indicators, in order."""
    rows = [(f"rate_{x}", f"{dv.agency_title(x)}: CSE-flagged records per 10,000 children", RATE, x,
             "children_population") for x in agencies]
    if a in agencies and b in agencies:
        rows.append(("share_a", f"{dv.agency_title(a)} share of {dv.agency_title(a)} + {dv.agency_title(b)} "
                                "CSE-flagged records (%)", PROPORTION, a, "pair_total"))
    rows += [("valid_nhs_pct", "Identifier completeness: valid NHS number (% of records)", PROPORTION,
              "valid_nhs", "encounters"),
             ("name_dob_pct", "Identifier completeness: name and date of birth (% of records)", PROPORTION,
              "name_dob", "encounters"),
             ("spanning_pct", "Children spanning boundaries (% of resident linked children)", PROPORTION,
              "spanning", "children"),
             ("linkage_pct", "Linkage rate (% of identifiable records joined to another)", PROPORTION,
              "linked", "identifiable")]
    return rows


def estimate(kind: str, numerator, denominator) -> tuple[float, float, float]:
    """(value, lower, upper): a rate per 10,000 with Byar limits, or a percentage with Wilson limits (a
    numerator above its denominator, possible only between perturbed counts, is taken as the denominator)."""
    if numerator is None or denominator is None or pd.isna(numerator) or pd.isna(denominator) or denominator <= 0:
        return np.nan, np.nan, np.nan
    if kind == RATE:
        return tuple(float(v) for v in intervals.rate(float(numerator), float(denominator)))
    # Below the lead numerator and denominator are perturbed separately (cell key perturbation), so a published
    # numerator can exceed its denominator by a little: the share is then taken as 100%.
    value, lower, upper = intervals.proportion(min(max(float(numerator), 0.0), float(denominator)),
                                               float(denominator))
    return float(value) * 100, float(lower) * 100, float(upper) * 100


def _point(kind: str, numerator, denominator) -> float:
    return estimate(kind, numerator, denominator)[0]


def compared(lower: float, upper: float, benchmark: float) -> str:
    return str(intervals.significance(lower, upper, benchmark)[0])


def _with_pair(base: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    out = base.copy()
    if a in out.columns and b in out.columns:
        out["pair_total"] = out[a] + out[b]
    return out


def indicator_table(base: pd.DataFrame, code: str, group: list[str], mask: pd.DataFrame, *,
                    a: str = "police", b: str = "children_social_care") -> pd.DataFrame:
    """One row per store indicator of area ``code`` (``COLUMNS``): value and 95% limits, the comparator
    group's and England and Wales' values, the comparisons, and the spread over the layer's areas whose cell
    the viewer may see (min, quartiles, max). ``mask``: ``compare.hidden_mask`` for the viewer (areas plus a
    last row for England and Wales); a comparator value is hidden when any member's cell is."""
    agencies = [c for c in base.columns if c in dv.AGENCIES]
    frame = _with_pair(base, a, b).set_index("area_code")
    if code not in frame.index:
        raise ValueError(f"unknown area {code!r}")
    group = [c for c in group if c in frame.index]
    national = frame.sum(numeric_only=True, min_count=1)
    members = frame.loc[group].sum(numeric_only=True, min_count=1) if group else pd.Series(dtype=float)
    rows = []
    for key, label, kind, num, den in spec(agencies, a, b):
        hidden = bool(mask.at[code, key]) if key in mask.columns else False
        value, lower, upper = estimate(kind, frame.at[code, num], frame.at[code, den])
        group_hidden = bool(mask.reindex(group)[key].fillna(False).any()) if group and key in mask.columns else False
        comp = np.nan if group_hidden or not group else _point(kind, members.get(num), members.get(den))
        nat_hidden = bool(mask.at[NATIONAL, key]) if key in mask.columns and NATIONAL in mask.index else False
        nat = np.nan if nat_hidden else _point(kind, national.get(num), national.get(den))
        visible = ~mask[key].reindex(frame.index).fillna(False).astype(bool) if key in mask.columns else \
            pd.Series(True, index=frame.index)
        spread = pd.Series([_point(kind, n, d) for n, d in zip(frame[num], frame[den])], index=frame.index)
        spread = spread[visible].dropna()
        if hidden:
            value = lower = upper = np.nan
        rows.append({
            "indicator": key, "label": label, "kind": kind,
            "numerator": np.nan if hidden else float(frame.at[code, num]),
            "denominator": np.nan if hidden else float(frame.at[code, den]),
            "value": value, "lower": lower, "upper": upper, "hidden": hidden,
            "comparator_value": comp, "national_value": nat, "national_label": NATIONAL,
            "vs_national": "hidden" if hidden else compared(lower, upper, nat),
            "vs_comparator": "hidden" if hidden else compared(lower, upper, comp),
            "range_min": spread.min() if len(spread) else np.nan,
            "range_q1": spread.quantile(0.25) if len(spread) else np.nan,
            "range_q3": spread.quantile(0.75) if len(spread) else np.nan,
            "range_max": spread.max() if len(spread) else np.nan,
            "areas_in_range": int(len(spread)),
        })
    return pd.DataFrame(rows, columns=COLUMNS)


# -- the published DfE rate --------------------------------------------------------------------------------

#: Results computed from one published-figures frame, kept while it is the same object (the vendored DfE
#: figures are one cached frame per process, ``pub.dfe_c3``; a store's imported ones one per data version):
#: reference data a page's first open after a linkage run would otherwise convert again. Last 16 kept.
_BY_FIGURES: OrderedDict = OrderedDict()
_BY_FIGURES_LOCK = threading.Lock()


def _kept(figures: pd.DataFrame, key: tuple, compute):
    """``compute()`` for ``figures`` and ``key``, reused while ``figures`` is the very same frame (held here, so
    its id is never reused by another frame while the entry lives). Callers must not modify the result."""
    with _BY_FIGURES_LOCK:
        hit = _BY_FIGURES.get((id(figures), *key))
        if hit is not None and hit[0] is figures:
            return hit[1]
    value = compute()
    with _BY_FIGURES_LOCK:
        _BY_FIGURES[(id(figures), *key)] = (figures, value)
        while len(_BY_FIGURES) > 16:
            _BY_FIGURES.popitem(last=False)
    return value


def published_on_layer(figures: pd.DataFrame, layer: str) -> pd.DataFrame:
    """Published local-authority counts on ``layer`` per area and period: ``area_code``, ``period``,
    ``count`` (numbers only; summed where authorities nest in an area, apportioned by postcodes where they do
    not, ``lib.measures.convert``), ``symbols`` (authority: symbol, meaning, for cells without a number).
    Kept per figures frame and layer (``_kept``): do not modify it."""
    return _kept(figures, ("on_layer", convert.layer_key(layer)), lambda: _published_on_layer(figures, layer))


def _published_on_layer(figures: pd.DataFrame, layer: str) -> pd.DataFrame:
    key = convert.layer_key(layer)
    la = figures[figures["geographic_level"].isin(["Local authority", "utla"])].copy()
    la["count"] = la["count"].astype("float64")
    if key == "utla":
        out = la.groupby(["area_code", "period"], as_index=False).agg(
            count=("count", lambda v: v.sum(min_count=1)),
            symbols=("symbol", lambda v: ", ".join(sorted({s for s in v if s}))))
        meaning = la[la["symbol"] != ""].groupby(["area_code", "period"])["meaning"].first()
        out["symbols"] = [f"{s} ({meaning.get((c, p), '')})" if s else ""
                          for c, p, s in zip(out["area_code"], out["period"], out["symbols"])]
        return out
    numbers = la[la["count"].notna()]
    summed, _ = convert.convert(numbers, "utla", key, ["count"], by=["period"])
    weights = convert.weights("utla", key)
    marked = la[la["symbol"] != ""].merge(weights, left_on="area_code", right_on="from_code")
    notes = (marked.assign(note=marked["area_name"] + ": " + marked["symbol"] + " (" + marked["meaning"] + ")")
             .groupby(["to_code", "period"])["note"].agg(lambda v: "; ".join(sorted(set(v)))))
    summed["symbols"] = [notes.get((c, p), "") for c, p in zip(summed["area_code"], summed["period"])]
    return summed[["area_code", "period", "count", "symbols"]]


def published_row(figures: pd.DataFrame, national: pd.DataFrame, layer: str, code: str, group: list[str],
                  periods: list[str], population: pd.Series) -> dict:
    """The ``published_rate`` indicator (a row of ``COLUMNS`` plus ``symbols`` and ``periods``): published
    counts of ``periods`` summed, per 10,000 children (Byar limits), against England (DfE's national row over
    England's children) and the comparator group (its members with a number for every period). No value where
    any period has no number (a symbol, or no figure: Wales, DfE publishing England only): a sum leaving a
    year out would look like a low rate. ``symbols`` names each such period and what its cell means (and, for
    areas built from several authorities, the authorities left out of a sum)."""
    on_layer = published_on_layer(figures, layer)
    on_layer = on_layer[on_layer["period"].isin(periods)]
    numbers = on_layer[on_layer["count"].notna()]
    complete = numbers.groupby("area_code")["period"].nunique() == len(periods)
    complete = set(complete[complete].index)  # areas with a number for every period
    totals = numbers.groupby("area_code")["count"].sum()
    mine = on_layer[on_layer["area_code"] == code].set_index("period")
    gaps = [f"{p}: {mine.at[p, 'symbols'] or 'no figure'}" if p in mine.index else f"{p}: no figure"
            for p in periods if p not in mine.index or pd.isna(mine.at[p, "count"])]
    partial = [f"{p}: {mine.at[p, 'symbols']}" for p in periods
               if p in mine.index and pd.notna(mine.at[p, "count"]) and mine.at[p, "symbols"]]
    symbols = "; ".join([*gaps, *partial])
    if str(code).startswith("W") and code not in complete:
        symbols = "no figure: DfE publishes figures for England only"
    count = float(totals[code]) if code in complete else np.nan
    denominator = float(population.get(code, np.nan))
    value, lower, upper = estimate(RATE, count, denominator)
    england_children = float(population[[c for c in population.index if str(c).startswith("E")]].sum())
    nat_rows = national[(national["area_code"] == pub.ENGLAND) & national["period"].isin(periods)]
    nat_count = nat_rows["count"].astype("float64").sum(min_count=1)
    nat = _point(RATE, nat_count, england_children) if nat_rows["count"].notna().sum() == len(periods) else np.nan
    group_known = [c for c in group if c in complete]
    comp = (_point(RATE, totals.reindex(group_known).sum(), float(population.reindex(group_known).sum()))
            if group_known else np.nan)
    spread = pd.Series([_point(RATE, totals[c], population.get(c, np.nan)) for c in sorted(complete)]).dropna()
    return {
        "indicator": "published_rate", "label": "Published DfE: child sexual exploitation identified at the end "
        "of children in need assessments, per 10,000 children", "kind": RATE,
        "numerator": float(count) if pd.notna(count) else np.nan, "denominator": denominator,
        "value": value, "lower": lower, "upper": upper, "hidden": False,
        "comparator_value": comp, "national_value": nat, "national_label": ENGLAND,
        "vs_national": compared(lower, upper, nat), "vs_comparator": compared(lower, upper, comp),
        "range_min": spread.min() if len(spread) else np.nan, "range_q1": spread.quantile(0.25) if len(spread)
        else np.nan, "range_q3": spread.quantile(0.75) if len(spread) else np.nan,
        "range_max": spread.max() if len(spread) else np.nan, "areas_in_range": int(len(spread)),
        "symbols": symbols, "periods": list(periods)}


def trend(values: pd.DataFrame) -> str:
    """Plain words for a yearly series (``period``, ``value``, ``lower``, ``upper``): the latest year's interval
    against the first year's value."""
    shown = values.dropna(subset=["value"])
    if len(shown) < 2:
        return "too few years to show a trend"
    first, last = shown.iloc[0], shown.iloc[-1]
    word = compared(last["lower"], last["upper"], first["value"])
    return (f"{first['period']} {first['value']:,.1f} → {last['period']} {last['value']:,.1f}: {last['period']} "
            f"{SIGNIFICANCE_STYLE[word]['text']} {first['period']}")


# -- published figures beside the store's children's social care counts (Divergence, Compare) ---------------

BESIDE_COLUMNS = ["Area", "Code", "Your extract", "Published (DfE C3)", "Reconciliation"]


def published_totals(figures: pd.DataFrame, layer: str, periods: list[str]) -> pd.DataFrame:
    """Per area of ``layer``: ``area_code``, ``published`` (the sum over ``periods``; empty unless every period
    has a number) and ``gaps`` (each period without a number, with its symbol's meaning; authorities left
    out of an area's sum). Kept per figures frame, layer and periods (``_kept``): do not modify it."""
    return _kept(figures, ("totals", convert.layer_key(layer), tuple(periods)),
                 lambda: _published_totals(figures, layer, periods))


def _published_totals(figures: pd.DataFrame, layer: str, periods: list[str]) -> pd.DataFrame:
    on_layer = published_on_layer(figures, layer)
    on_layer = on_layer[on_layer["period"].isin(periods)]
    rows = []
    for code, part in on_layer.groupby("area_code"):
        part = part.set_index("period")
        gaps = [f"{p}: {part.at[p, 'symbols'] or 'no figure'}" if p in part.index else f"{p}: no figure"
                for p in periods if p not in part.index or pd.isna(part.at[p, "count"])]
        partial = [f"{p}: {part.at[p, 'symbols']}" for p in periods
                   if p in part.index and pd.notna(part.at[p, "count"]) and part.at[p, "symbols"]]
        total = part["count"].sum() if not gaps else np.nan
        rows.append((code, total, "; ".join([*gaps, *partial])))
    return pd.DataFrame(rows, columns=["area_code", "published", "gaps"])


def beside_published(store: pd.DataFrame, figures: pd.DataFrame, layer: str, periods: list[str]) -> pd.DataFrame:
    """``BESIDE_COLUMNS`` for the areas of ``store`` (``area_code``, ``area_name``, ``store_count``; NaN where the
    viewer may not see the count, c in the text): "Your extract" a number (the count as the page shows it),
    "your extract: X; published: Y", Y being the symbol's meaning
    (never 0) where a period has no number, and "no figure" for areas DfE does not publish (Wales)."""
    totals = published_totals(figures, layer, periods).set_index("area_code")
    out = []
    for code, name, mine in zip(store["area_code"], store["area_name"], store["store_count"]):
        shown = "c" if pd.isna(mine) else f"{mine:,.0f}"
        number = float(mine) if pd.notna(mine) else np.nan
        if code in totals.index and pd.notna(totals.at[code, "published"]):
            theirs = f"{totals.at[code, 'published']:,.0f}"
            note = totals.at[code, "gaps"]
            text = f"your extract: {shown}; published: {theirs}" + (f" (left out of the sum: {note})" if note else "")
        elif code in totals.index:
            theirs = f"no total ({totals.at[code, 'gaps']})"
            text = f"your extract: {shown}; published: {theirs}"
        else:
            theirs = ("no figure: DfE publishes figures for England only" if str(code).startswith("W")
                      else "no figure")
            text = f"your extract: {shown}; published: {theirs}"
        out.append((name, code, number, theirs, text))
    return pd.DataFrame(out, columns=BESIDE_COLUMNS)


PUBLISHED_LAYERS = ("utla", "pfa")


def published_note(layer: str, periods: list[str]) -> str:
    """What the published column is, for a table of ``beside_published`` on ``layer``."""
    key = convert.layer_key(layer)
    where = ("each children's services authority's published figure" if key == "utla" else
             "children's services authorities' published figures summed to each police force area where they nest "
             "(apportioned by postcodes where an authority lies in two forces)")
    return (f"Published: DfE children in need table C3, assessments with child sexual exploitation identified, "
            f"{where}, financial years {', '.join(periods)} together (reporting years ending 31 March). Your "
            "extract: children's social care CSE-flagged records placed where the encounter happened. The two count "
            "different things (records against assessments), so a gap is expected; a published cell carrying a "
            "symbol (c suppressed, k/low rounds to 0, u low reliability, x not available, z not applicable) has "
            "no number and is named, never counted as zero.")
