"""View builder of the Where counts diverge page: each agency's count on a common geography, side by side,
on the map, on the funnel plot, one area's trend and why two agencies differ there, for one role.

The role's protection happens in ONE place, the cube: ``Source.cube_for(role)`` is exact for the safeguarding
lead and published by the disclosure service (lib.disclosure.service: cell key perturbation, docs/DISCLOSURE.md)
for everyone else. Tables, map, funnel, ratios, rates, verdicts and the decomposition are all computed from
those counts; nothing is hidden. Areas whose published A + B is under 10 are hatched on the map.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from lib.access.roles import aggregates_suppressed, periods_for
from lib.disclosure import notes as disclosure_notes
from lib.geo import maps as geo_maps
from lib.measures import convert, figures, population, published
from lib.measures import divergence as dv
from lib.measures import profile as profile_measures
from lib.views.base import Memo, PageData, Param, Source, Table, source_of

PAGE = "divergence"
CACHEABLE = True  # lib.views.build_with keeps the PageData per data version, parameters, role and upload
TITLE = "Where counts diverge"
MEASURES = {"cse_records": "CSE-flagged records", "cse_children": "Distinct children with a CSE flag (after linkage)"}
GRANULARITIES = {"quarter": "Quarter", "year": "Financial year"}
NOT_LINKED = ("Records have not been linked into children, so counts of distinct children and the identity "
              "effect are not available; run linkage on the Across boundaries page.")
POPULATION_INPUT = "population"  # Source.inputs key of an uploaded population (CSV bytes)

PARAMS: dict[str, Param] = {
    "a": Param("police", help="agency A (an agency of the store)"),
    "b": Param("children_social_care", help="agency B, not A"),
    "layer": Param("utla", tuple(convert.MEASURE_LAYERS), help="the common geography"),
    "period": Param("all", help="all, a financial year (2023-24) or quarter ('2023-24 Q1'); aggregate-only "
                                "roles: all or a financial year"),
    "measure": Param("cse_records", tuple(MEASURES), help="cse_children needs linkage"),
    "age": Param(population.DEFAULT_AGE, population.AGE_BANDS, help="age band of the official population"),
    "population": Param(None, help="a population CSV (area_code, children) instead of the official one"),
    "area": Param(None, help="the area of the trend and the decomposition (default: the most cases)"),
    "granularity": Param("quarter", tuple(GRANULARITIES), help="the trend by quarter or financial year"),
}

TABLE_COLUMNS = {
    "div_dumbbell_table": ["area_name", "area_code", "count_a", "count_b", "total", "rate_a", "rate_b"],
    "div_ranked_table": ["rank", "area_name", "area_code", "count_a", "count_b", "log_ratio", "log_ratio_low",
                         "log_ratio_high", "share_a", "verdict"],
    "div_funnel_table": ["area_name", "total", "share_a", "lower_95", "upper_95", "lower_998", "upper_998",
                         "verdict"],
}


def small_codes(table: pd.DataFrame) -> list[str]:
    """Areas whose published A + B is under 10 (but not zero: an area with no cases has no ratio to colour):
    hatched on the map below the lead and named in a plain note when chosen."""
    small = (table["total"] > 0) & (table["total"] < disclosure_notes.SMALL_BELOW)
    return table.loc[small, "area_code"].astype(str).tolist()


def _population(source: Source, params: dict) -> tuple[str, pd.Series, list[str]]:
    """(key, population by area code, problems): an uploaded or named CSV, else the official one."""
    body = source.inputs.get(POPULATION_INPUT)
    name = "the uploaded population"
    if body is None and params["population"]:
        path = Path(params["population"])
        try:
            body = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"parameter population: cannot read {path}: {exc.strerror}") from None
        name = str(path)
    if body is None:
        age = params["age"]
        return f"official:{age}", population.default_population(params["layer"], age), []
    try:
        pop, problems = population.read_population(body)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    return f"upload:{hashlib.sha256(body).hexdigest()}", pop, problems


def _table(source: Source, role: str, layer, period, a, b, measure, pop_key, pop) -> pd.DataFrame:
    """The divergence table from the counts ``role`` may see (exact for the lead, published otherwise)."""
    protected = aggregates_suppressed(role)
    return source.memo.get(("divergence.table", protected, layer, period, a, b, measure, pop_key),
                           lambda: dv.divergence_table(source.cube_for(role), layer, period, a, b, measure, pop))


def _published_trend(source: Source, role: str, layer, area, a, b, measure, pop_key, pop) -> pd.DataFrame:
    """An aggregate role's trend: one row per financial year it may pick (lib.access.roles.periods_for), taken
    from that year's protected divergence table (``_table``, the disclosure service's counts), so every figure
    equals what this view publishes for that year. Columns as ``dv.trend``."""
    years = [p for p in periods_for(role, source.cube_for(role).periods) if p != "all"]
    columns = ["period", "count_a", "count_b", "total", "share_a", "national_share", "lower_95", "upper_95",
               "lower_998", "upper_998", "verdict"]
    rows = []
    for year in years:
        table = _table(source, role, layer, year, a, b, measure, pop_key, pop)
        row = table[table["area_code"] == area]
        if not row.empty:
            rows.append(row.iloc[0][columns[1:]].to_dict() | {"period": year})
    return pd.DataFrame(rows, columns=columns)


def _ratio_map(table: pd.DataFrame, layer: str, a: str, b: str, hatch: bool):
    """The ratio map; below the lead, areas with a small published count hatched on top (with a legend)."""
    fig = figures.ratio_map(table, layer, a, b)
    if hatch:
        fig.add_trace(geo_maps.hatch_trace(convert.layer_key(layer), small_codes(table),
                                           name=disclosure_notes.HATCH_LEGEND))
    return fig


def options(con_or_store, role: str) -> dict:
    """What the page's selectors offer for ``role``: agencies, periods and measures in the store."""
    cube = source_of(con_or_store).cube_for(role)
    return {"agencies": list(cube.agencies), "periods": periods_for(role, cube.periods), "linked": cube.linked,
            "measures": list(MEASURES) if cube.linked else ["cse_records"]}


def area_choices(con_or_store, params: dict, role: str) -> tuple[list[str], dict[str, str]]:
    """The areas the one-area selector offers (most cases first, among those the role may see) and names."""
    source = source_of(con_or_store)
    key, pop, _ = _population(source, params)
    result = _table(source, role, params["layer"], params["period"], params["a"], params["b"], params["measure"],
                    key, pop)
    counted = result[result["total"] > 0]
    names = dict(zip(result["area_code"], result["area_name"]))
    return counted.sort_values("total", ascending=False)["area_code"].tolist() or result["area_code"].tolist(), names


def _check(source: Source, params: dict, role: str) -> None:
    allowed = options(source, role)
    for param in ("a", "b"):
        if params[param] not in allowed["agencies"]:
            raise ValueError(f"parameter {param}={params[param]!r}: expected one of {', '.join(allowed['agencies'])}")
    if params["a"] == params["b"]:
        raise ValueError("parameters a and b: choose two different agencies")
    if params["period"] not in allowed["periods"]:
        raise ValueError(f"parameter period={params['period']!r}: expected one of {', '.join(allowed['periods'])} "
                         f"for the {role} role")
    if params["measure"] not in allowed["measures"]:
        raise ValueError(f"parameter measure={params['measure']!r}: the store is not linked; expected cse_records")


def build(con_or_store, params: dict, role: str) -> PageData:
    source = source_of(con_or_store)
    _check(source, params, role)
    a, b, layer, period, measure = (params[k] for k in ("a", "b", "layer", "period", "measure"))
    agg = aggregates_suppressed(role)
    cube = source.cube_for(role)
    data = PageData(page=PAGE, role=role, params=dict(params), data_version=source.data_version(), title=TITLE)
    pop_key, pop = _basis_notes(data, source, params, cube.linked)

    result = _table(source, role, layer, period, a, b, measure, pop_key, pop)
    data.note("disclosure", disclosure_notes.method_note(agg))
    counted = result[result["total"] > 0]
    data.say("table", dv.describe_table(result, a, b, measure, period))
    official = pop_key.startswith("official")
    if official:
        data.note("population_source", population.source_label(params["age"], layer))
    rate_unit = population.rate_label(params["age"]) if official else "per 10,000 (uploaded population)"

    _side_by_side(data, result, counted, params, rate_unit)
    _map_and_ranked(data, source, role, result, counted, params, rate_unit)
    _funnel(data, result, counted, a, b)

    # published DfE figures beside the store's children's social care count (issue 17; additive)
    beside = _published(source, result, layer, period, a, b, measure, data)

    # one area: trend and why
    choices, names = area_choices(source, params, role)
    area = params["area"] or (choices[0] if choices else None)
    if area is not None and area not in choices:
        raise ValueError(f"parameter area={area!r}: not an area of layer {layer!r} shown for the {role} role")
    data.extra.update({"area": area, "area_choices": choices, "names": {c: names.get(c, c) for c in choices},
                       "rate_unit": rate_unit, "population_key": pop_key, "linked": cube.linked})
    if area is None:
        return data
    area_name = names.get(area, area)
    data.extra["area_name"] = area_name
    _area_reading(data, result, beside, params, area, area_name, agg)
    _area_trend(data, source, role, cube, params, area, area_name, pop_key, pop)
    _area_decomposition(data, source, cube, params, area, area_name, agg)
    return data


def _basis_notes(data: PageData, source: Source, params: dict, linked: bool) -> tuple[str, object]:
    """Say up front what the counts rest on (linkage, population, modelled or apportioned geography), before
    any figure: returns the population key and population the rates use."""
    if not linked:
        data.note("not_linked", NOT_LINKED)
    pop_key, pop, problems = _population(source, params)
    for i, problem in enumerate(problems[:5]):
        data.note(f"population_problem_{i}", problem)
    if convert.MEASURE_LAYERS[params["layer"]].endswith("(modelled)"):
        data.note("modelled", "Trust catchments are modelled from OHID admissions (NHS Acute (Hospital) Trust "
                              "Catchment Populations, 2022 edition): NHS trusts have no statutory boundary (see the "
                              "Boundaries page).")
    if "health" in (params["a"], params["b"]):
        data.note("apportioned", "On the native basis, trust-recorded counts are apportioned to other geographies "
                                 "by OHID's catchment shares (each district's share of admissions going to each "
                                 "trust, 2022 edition), weighted by children; such figures are marked as apportioned.")
    return pop_key, pop


def _side_by_side(data: PageData, result: pd.DataFrame, counted: pd.DataFrame, params: dict,
                  rate_unit: str) -> None:
    """The dumbbell and its table: both agencies' counts and rates per area, read first."""
    a, b, measure = params["a"], params["b"], params["measure"]
    title_a, title_b = dv.agency_title(a), dv.agency_title(b)
    top_area = counted.nlargest(1, "total")
    if not top_area.empty:
        data.say("top_area", dv.describe_area(top_area.iloc[0], a, b, measure))
    data.figures["div_dumbbell"] = figures.dumbbell(result, a, b, dv.NOUN[measure])
    data.tables["div_dumbbell_table"] = Table(
        counted[TABLE_COLUMNS["div_dumbbell_table"]], f"{title_a} and {title_b} side by side",
        "The 25 areas with the most cases, ordered by the ratio of the two counts.",
        columns={"area_name": {"label": "Area"}, "area_code": {"label": "Code"}, "count_a": {"label": title_a},
                 "count_b": {"label": title_b}, "total": {"label": "Both"},
                 "rate_a": {"label": f"{title_a} {rate_unit}", "format": "%.2f"},
                 "rate_b": {"label": f"{title_b} {rate_unit}", "format": "%.2f"}})


def _map_and_ranked(data: PageData, source: Source, role: str, result: pd.DataFrame, counted: pd.DataFrame,
                    params: dict, rate_unit: str) -> None:
    """The ratio map (memoised apart: maps are large), the ranked table and the CSV download."""
    a, b, layer, period, measure = (params[k] for k in ("a", "b", "layer", "period", "measure"))
    agg = aggregates_suppressed(role)
    title_a, title_b = dv.agency_title(a), dv.agency_title(b)
    # the map's reading names the most divergent area among those the map colours (enough records to compare)
    ranked = counted[counted["total"] >= figures.RATIO_MIN_TOTAL].sort_values("log_ratio", ascending=False)
    if not ranked.empty:
        data.say("ranked_top", dv.describe_area(ranked.iloc[0], a, b, measure))
    maps = source.memo.get(("divergence.maps",), lambda: Memo(max_entries=64))  # maps are large: their own bound
    data.figures["div_map"] = maps.get((layer, period, a, b, measure, agg), lambda: _ratio_map(
        _table(source, role, layer, period, a, b, measure, "none", None), layer, a, b, agg))
    data.note("map", f"Colour: the ratio {title_a} ÷ {title_b} (log scale; ½ added to each count so zeros stay "
                     "finite). Purple: A records more; orange: B records more; pale: about equal. Grey: fewer "
                     f"than {figures.RATIO_MIN_TOTAL} records in both together, too few for a ratio to mean much."
                     + (f" Hatched: {disclosure_notes.HATCH_LEGEND.lower()}." if agg else ""))
    data.tables["div_ranked_table"] = Table(
        ranked[TABLE_COLUMNS["div_ranked_table"]], "How far apart",
        columns={"rank": {"label": "Rank"}, "area_name": {"label": "Area"}, "area_code": {"label": "Code"},
                 "count_a": {"label": title_a}, "count_b": {"label": title_b},
                 "log_ratio": {"label": "log(A/B)", "format": "%.2f"},
                 "log_ratio_low": {"label": "95% low", "format": "%.2f"},
                 "log_ratio_high": {"label": "95% high", "format": "%.2f"},
                 "share_a": {"label": "A share", "format": "percent"}, "verdict": {"label": "Funnel verdict"}})
    data.tables["div_export"] = Table(
        dv.export_table(result, a, b, layer, period, measure, rate_basis=rate_unit), f"divergence_{layer}.csv",
        f"{period}, {measure}, {a} v {b}", downloadable=True)


def _funnel(data: PageData, result: pd.DataFrame, counted: pd.DataFrame, a: str, b: str) -> None:
    """The funnel plot and its table: which areas' shares are further from the national one than chance."""
    data.say("funnel", dv.describe_funnel(result, a, b))
    data.figures["div_funnel"] = figures.funnel_figure(result, a, b)
    data.note("funnel", "Limits are exact binomial quantiles around the national share (Spiegelhalter 2005, "
                        "interpolated): 95% dashed, 99.8% dotted. Areas outside the 99.8% limits are red diamonds "
                        "and named.")
    data.tables["div_funnel_table"] = Table(
        counted[TABLE_COLUMNS["div_funnel_table"]].sort_values("total", ascending=False), "Funnel plot",
        columns={"area_name": {"label": "Area"}, "total": {"label": "A + B"},
                 **{c: {"label": c.replace("_", " "), "format": "percent"}
                    for c in ("share_a", "lower_95", "upper_95", "lower_998", "upper_998")}})


def _area_reading(data: PageData, result: pd.DataFrame, beside: pd.DataFrame | None, params: dict, area: str,
                  area_name: str, agg: bool) -> None:
    """The chosen area's own sentences (the board pack's summary leads with them) and its small-count note."""
    if agg and area in small_codes(result):
        data.note("small", disclosure_notes.small_note([area_name]))
    focus = result[result["area_code"] == area]
    if not focus.empty:  # the chosen area's reading (the board pack's summary leads with it)
        data.say("area", dv.describe_area(focus.iloc[0], params["a"], params["b"], params["measure"]))
    if beside is not None and area in set(beside["Code"]):
        text = beside.loc[beside["Code"] == area, "Reconciliation"].iat[0]
        data.say("published_area", f"**{area_name}**, children's social care against the published DfE figure: "
                                   f"{text}.")


def _area_trend(data: PageData, source: Source, role: str, cube, params: dict, area: str, area_name: str,
                pop_key: str, pop) -> None:
    """One area's trend: by quarter from the exact cube for the lead, by financial year from the published
    counts for everyone else (quarters are not published to them)."""
    a, b, layer, measure = (params[k] for k in ("a", "b", "layer", "measure"))
    agg = aggregates_suppressed(role)
    if agg:  # by financial year from the protected counts: each year's row is the one this view publishes for it
        data.note("trend_hidden", "Trends by quarter are for the safeguarding lead (quarters are not published "
                                  "to your role): the trend is by financial year, from the published counts.")
        trend = _published_trend(source, role, layer, area, a, b, measure, pop_key, pop)
    else:
        granularity = params["granularity"]
        trend = source.memo.get(("divergence.trend", layer, area, a, b, measure, granularity),
                                lambda: dv.trend(cube, layer, area, a, b, measure, granularity))
    if not agg or not trend.empty:
        data.say("trend", dv.describe_trend(trend, area_name, a, b, measure))
        data.figures["div_trend"] = figures.trend_figure(trend, a, b, dv.NOUN[measure])
        data.tables["div_trend_table"] = Table(trend, f"{area_name}: trend")


def _area_decomposition(data: PageData, source: Source, cube, params: dict, area: str, area_name: str,
                        agg: bool) -> None:
    """Why the two agencies differ in one area: the boundary, identity and recording effects that add up to
    the gap (waterfall, table and the figures behind them)."""
    a, b, layer, period = (params[k] for k in ("a", "b", "layer", "period"))
    title_a, title_b = dv.agency_title(a), dv.agency_title(b)
    decomposition = source.memo.get(("divergence.decomposition", agg, layer, area, period, a, b),
                                    lambda: dv.decomposition(cube, layer, area, period, a, b))
    data.say("decomposition", f"**Why they differ in {area_name}.** "
             + dv.describe_decomposition(decomposition, area_name, a, b))
    data.note("decomposition", "Boundary effect: each agency's records counted on its own geography (force, "
              "authority or trust, then summed or apportioned to this geography) minus the same records placed by "
              "where each encounter happened. Identity effect: records minus distinct linked children. Recording "
              "effect: what remains, the difference in distinct children each agency recorded here. The three add "
              "up to the gap." + (" Some figures here were apportioned (trust counts by OHID catchment shares, other "
                                  "non-nesting geographies by postcode weights)." if decomposition["apportioned"]
                                  else ""))
    data.figures["div_waterfall"] = figures.waterfall_figure(decomposition, a, b)
    comp = decomposition["components"]
    data.tables["div_waterfall_table"] = Table(comp.assign(value=comp["value"].round(2)),
                                               f"Why they differ in {area_name}")
    data.say("decomposition_figures",
             f"{title_a}: {decomposition['native_a']:,.1f} on its own geography, {decomposition['records_a']:,.0f} "
             f"records placed here, {decomposition['children_a']:,.0f} children. {title_b}: "
             f"{decomposition['native_b']:,.1f}, {decomposition['records_b']:,.0f}, "
             f"{decomposition['children_b']:,.0f}.")
    if not cube.unplaced_native.empty:
        data.note("unplaced", f"{int(cube.unplaced_native['records'].sum()):,} records carry an "
                              "agency code that is not an area of their agency's geography and are left out of the "
                              "own-geography counts.")


def _published(source: Source, result: pd.DataFrame, layer: str, period: str, a: str, b: str, measure: str,
               data: PageData) -> pd.DataFrame | None:
    """The published DfE C3 figure (or statistics imported with ``import-stats``) beside the children's social
    care count of every area the role may see (``result``, already protected), as table
    ``div_published_table``; a note saying why not where it does not apply."""
    csc = "children_social_care"
    if csc not in (a, b) or measure != "cse_records":
        data.note("published_unavailable", "Published DfE figures (children in need, CSE identified at assessment) "
                                           "are shown beside children's social care CSE-flagged records: choose "
                                           "children's social care as agency A or B and count records.")
        return None
    if convert.layer_key(layer) not in profile_measures.PUBLISHED_LAYERS:
        data.note("published_unavailable", "Published DfE figures are per children's services authority: they are "
                                           "shown beside your extract on that layer and on police force areas "
                                           "(summed where authorities nest).")
        return None
    if " Q" in period:
        data.note("published_unavailable", "Published DfE figures are yearly: choose a financial year or all "
                                           "periods to see them beside your extract.")
        return None
    cube = source.cube_for(data.role)
    years = [p for p in cube.periods if p != "all" and " Q" not in p] if period == "all" else [period]
    figures_ = source.memo.get(("published.figures",), lambda: published.figures_for(source.con))
    store = result.assign(store_count=result["count_a" if a == csc else "count_b"]).sort_values("area_name")
    beside = profile_measures.beside_published(store, figures_, layer, years)
    data.tables["div_published_table"] = Table(beside, "Published figures beside your extract",
                                               profile_measures.published_note(layer, years), downloadable=True,
                                               columns={"Your extract": {"format": "%d"}})
    return beside
