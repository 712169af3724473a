"""View builder of the Compare areas page: the side-by-side profile, one indicator charted (figure and its
table) and the comparator group, for one role (lib.measures.compare does the work). Protection for the role
happens in ONE place, ``_base``: below the safeguarding lead every count is the published one of the
disclosure service (lib.disclosure.service: cell key perturbation, docs/DISCLOSURE.md), and rates, shares,
verdicts, the comparator group and England and Wales are computed from those counts. Nothing is hidden."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from lib.access.roles import COMMISSIONER, aggregates_suppressed, periods_for
from lib.disclosure import notes as disclosure_notes
from lib.measures import compare, convert, counts, population, published, spans
from lib.measures import divergence as dv
from lib.measures import neighbours as neighbours_measures
from lib.measures import profile as profile_measures
from lib.views.base import PageData, Param, Source, Table, source_of

PAGE = "compare"
CACHEABLE = True  # lib.views.build_with keeps the PageData per data version, parameters and role
TITLE = "Compare areas"
A, B = "police", "children_social_care"
MEASURES = {"cse_records": "CSE-flagged records", "cse_children": "Distinct children with a CSE flag"}
MODES = {"choose": "Areas I choose (2 to 6)", "neighbours": "An area and its neighbours"}

PARAMS: dict[str, Param] = {
    "layer": Param("utla", tuple(convert.MEASURE_LAYERS), help="the common geography"),
    "period": Param("all", help="all, a financial year (2023-24) or quarter ('2023-24 Q1'); aggregate-only "
                                "roles: all or a financial year"),
    "measure": Param("cse_records", tuple(MEASURES), help="cse_children needs linkage"),
    "mode": Param("choose", tuple(MODES), help="choose: the areas given; neighbours: the first area and "
                                               "the areas sharing its longest boundaries"),
    "areas": Param(None, many=True, help="area codes of the layer (default: the three busiest; "
                                         "neighbours: the busiest)"),
    "group": Param(None, many=True, help="a comparator group of area codes (default: nearest neighbours)"),
    "indicator": Param(None, help="the indicator charted, a key of the profile (default: share_a)"),
}
PATTERN = {compare.COMPARATOR: "/", compare.NATIONAL: "."}


def _base(source: Source, layer: str, period: str, measure: str, role: str) -> pd.DataFrame:
    """THE protection of this page: every area's counts as ``role`` may see them (exact for the lead; published
    by the disclosure service for everyone else, the same values on every page, export and board pack)."""
    if not aggregates_suppressed(role):
        def exact() -> pd.DataFrame:
            # resident children per area as the last write stored them for Across (the same exact counts), so the
            # lead's first open does not recount every linked record (1M: 2.2 s -> docs/PERFORMANCE.md, session 9)
            kept = source.stored("across", "spans", layer, False) if layer in spans.HOME_LAYERS else None
            span = None if kept is None else kept[["area_code", "children", "spans_any"]].rename(
                columns={"spans_any": "spanning"})
            return compare.area_base(source.cube(), source.con, layer, period, measure,
                                     population.default_population(layer), A, B, span=span)

        return source.memo.get(("compare.base", layer, period, measure), exact)

    def protected() -> pd.DataFrame:
        cube = source.cube_for(role)
        kept = _stored_published(source, layer) if not cube.counts.empty else None
        if kept is not None:  # published by the last write (lib.measures.aggregates): no record-level table read
            return compare.area_base(cube, source.con, layer, period, measure,
                                     population.default_population(layer), A, B, published=kept)
        keys = source.keys() if not cube.counts.empty else None  # an empty store has nothing to protect
        return compare.area_base(cube, source.con, layer, period, measure, population.default_population(layer),
                                 A, B, keys=keys)

    return source.memo.get(("compare.base.protected", layer, period, measure), protected)


def _stored_published(source: Source, layer: str) -> dict | None:
    """``compare.published_counts`` of ``layer`` (with England and Wales's children) as the last write stored
    them, or None when not current (the caller computes them from the records and keys)."""
    layer = convert.layer_key(layer)
    sums = source.stored("compare", "sums", layer)
    if sums is None:
        return None
    if not spans.has_linkage(source.con):
        return {"sums": sums, "span": compare.empty_span()}
    span, national = source.stored("across", "compare_span", layer), source.stored("across", "compare_national")
    return None if span is None or national is None else {"sums": sums, "span": span, "national": national}


def choices(con_or_store, layer: str, period: str, measure: str, role: str | None = None
            ) -> tuple[dict[str, str], list[str]]:
    """The areas a selector offers: code -> name, and codes from the most cases to the fewest (as ``role``
    sees the counts; no role: as roles below the lead see them, so the order never rests on exact counts)."""
    source = source_of(con_or_store)
    base = _base(source, layer, period, measure, role or COMMISSIONER)
    names = dict(zip(base["area_code"], base["area_name"]))
    return names, base.sort_values(["total", "area_code"], ascending=[False, True])["area_code"].tolist()


def small_areas(base: pd.DataFrame, codes) -> list[str]:
    """Codes among ``codes`` whose published count of either compared agency is under 10 (perturbed: the
    page says so plainly)."""
    rows = base.set_index("area_code").reindex(list(codes))
    small = pd.Series(False, index=rows.index)
    for agency in (A, B):
        if agency in rows.columns:
            small |= rows[agency].fillna(0) < disclosure_notes.SMALL_BELOW
    return [c for c in rows.index if small[c]]


def neighbours(con_or_store, layer: str, code: str) -> list[str]:
    source = source_of(con_or_store)
    return source.memo.get(("compare.adjacent", layer, code), lambda: compare.adjacent_areas(layer, code))


def options(con_or_store, role: str) -> dict:
    """What the page's selectors offer for ``role``: periods and measures available in the store."""
    cube = source_of(con_or_store).cube_for(role)
    return {"periods": periods_for(role, cube.periods),
            "measures": ["cse_records", "cse_children"] if cube.linked else ["cse_records"]}


def is_rate(indicator: str) -> bool:
    """A rate, share or percentage (comparable with England and Wales), not a count of records."""
    return indicator.startswith(("rate_", "share_")) or indicator.endswith("_pct")


def build(con_or_store, params: dict, role: str) -> PageData:
    source = source_of(con_or_store)
    layer, period, measure = params["layer"], params["period"], params["measure"]
    allowed = options(source, role)
    if period not in allowed["periods"]:
        raise ValueError(f"parameter period={period!r}: expected one of {', '.join(allowed['periods'])} "
                         f"for the {role} role")
    if measure not in allowed["measures"]:
        raise ValueError(f"parameter measure={measure!r}: the store is not linked; expected cse_records")
    base = _base(source, layer, period, measure, role)
    names, busiest = choices(source, layer, period, measure, role)
    areas, comparator, recognised = _chosen_areas(source, params, names, busiest)
    data = PageData(page=PAGE, role=role, params=dict(params), data_version=source.data_version(), title=TITLE,
                    extra={"areas": areas, "comparator": comparator, "names": {c: names[c] for c in areas}})
    if not areas:
        data.notes.append("Choose at least one area to compare.")
        return data

    suppressed = aggregates_suppressed(role)  # True: the counts in ``base`` are the published (perturbed) ones
    group_codes = comparator or (list(recognised["neighbour_code"]) if recognised is not None and len(recognised)
                                 else None)
    prof = compare.profile(base, areas, False, comparator=group_codes, a=A, b=B, measure=measure)
    if comparator is None and recognised is not None and len(recognised):
        prof.explanation, prof.comparator = _recognised(recognised, names[areas[0]])

    # side by side
    data.sentences.append(compare.describe(prof))
    table = prof.table.drop(columns=["indicator"]).rename(columns={"label": "Indicator"})
    data.tables["cmp_table"] = Table(table, "Side by side", " ".join(prof.notes), downloadable=True)

    indicator, numeric, labels = _indicator_chart(data, prof, params["indicator"])

    # the comparator group
    data.sentences.append(prof.explanation)
    group = prof.comparator.rename(columns={"area_code": "Code", "area_name": "Area", "distance": "Distance",
                                            "closest_on": "Closest on"})
    data.tables["cmp_group_table"] = Table(group, "The comparator group", downloadable=True)

    data.notes.append(f"A deck for the first area ({names[areas[0]]}) with these areas side by side.")
    data.note("disclosure", disclosure_notes.method_note(suppressed))
    small = small_areas(base, areas) if suppressed else []
    if small:
        data.note("small", disclosure_notes.small_note([names[c] for c in small]))
    if convert.MEASURE_LAYERS[layer].endswith("(modelled)"):
        data.notes.append("Trust catchments are modelled from OHID admissions (NHS Acute (Hospital) Trust Catchment "
                          "Populations, 2022 edition): NHS trusts have no statutory boundary (see the Boundaries "
                          "page). A trust's children are its modelled share of each area's children.")
    data.notes.append(f"Agencies compared for divergence: {dv.agency_title(A)} and {dv.agency_title(B)}.")
    data.extra.update({"indicator": indicator, "indicators": list(numeric.index), "labels": labels,
                       "table_indicators": list(prof.table["indicator"]),  # the key of each cmp_table row
                       "hidden": prof.hidden, "suppressed": suppressed, "small": small,
                       "period_label": counts.period_label(period)})
    # published DfE figures beside the store's children's social care count (issue 17; additive, last)
    _published(source, base, areas, names, layer, period, measure, role, data)
    return data


def _chosen_areas(source: Source, params: dict, names: dict, busiest: list[str]
                  ) -> tuple[list[str], list[str] | None, pd.DataFrame | None]:
    """The areas compared, the user's comparator group (or None) and the recognised neighbours used when there
    is none; unknown codes and too many areas are refused, naming the parameter."""
    layer = params["layer"]
    for param in ("areas", "group"):
        unknown = [c for c in params[param] or [] if c not in names]
        if unknown:
            raise ValueError(f"parameter {param}: {', '.join(unknown)} not an area of layer {layer!r}")
    if params["mode"] == "neighbours":
        focus = (params["areas"] or busiest[:1])[0]
        areas = [focus, *neighbours(source, layer, focus)]
    else:
        areas = list(params["areas"]) if params["areas"] is not None else busiest[:3]
    if len(areas) > compare.MAX_AREAS:
        raise ValueError(f"parameter areas: compare at most {compare.MAX_AREAS} areas")
    comparator = list(params["group"] or []) or None
    recognised = None
    if comparator is None and areas:  # recognised neighbours, never the outcome measures (issue 17)
        recognised = source.memo.get(("compare.recognised", layer, areas[0]),
                                     lambda: neighbours_measures.neighbours(layer, areas[0]))
    return areas, comparator, recognised


def _indicator_chart(data: PageData, prof, chosen: str | None) -> tuple[str, pd.DataFrame, dict]:
    """One indicator charted across the areas (``cmp_chart`` and its table); returns the indicator, the numeric
    profile by indicator and the labels, which the page's selector offers."""
    numeric = prof.numeric[prof.numeric["indicator"] != "verdict"].set_index("indicator")
    labels = dict(zip(prof.numeric["indicator"], prof.numeric["label"]))
    indicator = chosen or ("share_a" if "share_a" in numeric.index else numeric.index[0])
    if indicator not in numeric.index:
        raise ValueError(f"parameter indicator={indicator!r}: expected one of {', '.join(numeric.index)}")
    values = numeric.loc[indicator].drop(labels=["label"]).astype("float64")
    shown = values.dropna()
    # A count is never drawn against a total: the comparator group's and England and Wales's counts are sums over
    # many areas (issue 18: "10 vs 707"), so a count chart draws the areas only; rates and shares draw all.
    totals = [] if is_rate(indicator) else [n for n in (compare.COMPARATOR, compare.NATIONAL) if n in shown.index]
    shown = shown.drop(index=totals)
    data.figures["cmp_chart"] = _bar_chart(shown, is_rate(indicator), labels[indicator])
    missing = [n for n, v in values.items() if pd.isna(v)]
    chart_table = pd.DataFrame({"Area": values.index,
                                labels[indicator]: [None if pd.isna(v) else round(v, 1) for v in values]})
    data.tables["cmp_chart_table"] = Table(chart_table, labels[indicator], _chart_note(totals, missing),
                                           downloadable=True)
    return indicator, numeric, labels


def _bar_chart(shown: pd.Series, rate: bool, label: str) -> go.Figure:
    """Horizontal bars, one per area (blue), comparator group (hatched orange) and England and Wales (dotted
    grey), each carrying its value: told apart by pattern as well as colour."""
    fig = go.Figure(go.Bar(
        x=shown.to_numpy(), y=list(shown.index), orientation="h",
        text=[f"{v:,.1f}" if rate else f"{v:,.0f}" for v in shown], textposition="outside",
        cliponaxis=False, marker={"color": ["#0072B2" if n not in PATTERN else "#E69F00"
                                                  if n == compare.COMPARATOR else "#999999" for n in shown.index],
                                        "pattern": {"shape": [PATTERN.get(n, "") for n in shown.index]},
                                        "line": {"color": "#333333", "width": 1}},
        hovertemplate="%{y}: %{x:,.1f}<extra></extra>"))
    fig.update_layout(height=90 + 46 * len(shown), margin={"l": 10, "r": 60, "t": 20, "b": 40},
                      plot_bgcolor="white", yaxis={"autorange": "reversed", "automargin": True},
                      xaxis={"title": label, "gridcolor": "#eeeeee", "rangemode": "tozero"})
    return fig


def _chart_note(totals: list[str], missing: list[str]) -> str:
    """The chart's legend in words, saying why totals over many areas are left off a count chart."""
    chart_note = ("Blue: the areas compared; hatched orange: the comparator group; dotted grey: England and Wales. "
                  "Each bar carries its value." + (f" Not shown (no data): {', '.join(missing)}." if missing else ""))
    if totals:
        chart_note = ("Blue: the areas compared. A count is drawn for the areas only: the "
                      + " and ".join(n[:1].lower() + n[1:] if n == compare.COMPARATOR else n for n in totals)
                      + " figures are totals over many areas (in the table); chart the rate per 10,000 children "
                        "or a share to set the areas against them. Each bar carries its value."
                      + (f" Not shown (no data): {', '.join(missing)}." if missing else ""))
    return chart_note


def _recognised(group: pd.DataFrame, name: str) -> tuple[str, pd.DataFrame]:
    """The explanation and table of a recognised comparator group (lib.measures.neighbours): DfE statistical
    neighbours for an English children's services authority, context neighbours otherwise; saying which."""
    table = group.rename(columns={"rank": "Rank", "neighbour_code": "Code", "neighbour_name": "Area"})
    if group["method"].iat[0] == neighbours_measures.DFE_METHOD:
        text = (f"The comparator group is {name}'s {len(group)} **DfE statistical neighbours** (the Department for "
                "Education's children's services statistical neighbour model, 2025), with DfE's closeness band for "
                "each: chosen by DfE on the authorities' characteristics, never on the figures compared here. Its "
                "figures are computed from the group's summed counts and populations.")
        return text, table.rename(columns={"closeness": "DfE closeness"})[["Rank", "Code", "Area", "DfE closeness"]]
    text = (f"The comparator group is the {len(group)} **context neighbours** of {name}: the areas of this layer "
            "nearest in child population, child density and household deprivation (Census 2021), each standardised "
            "and weighted equally; never the figures compared here"
            + (" (DfE's statistical neighbours cover English authorities only)" if name and group["area_code"].iat[0]
               .startswith("W") else "") + ". Its figures are computed from the group's summed counts and "
            "populations.")
    return text, table.rename(columns={"distance": "Distance (standard deviations)"})[
        ["Rank", "Code", "Area", "Distance (standard deviations)"]]


def _published(source: Source, base: pd.DataFrame, areas: list[str], names: dict, layer: str, period: str,
               measure: str, role: str, data: PageData) -> None:
    """Table ``cmp_published_table``: the published DfE C3 figure (or imported statistics) beside the children's
    social care count of each area compared, as the page shows it to ``role`` (``base`` is already the role's:
    published by the disclosure service below the lead); a note where it does not apply."""
    if measure != "cse_records" or B != "children_social_care":
        data.note("published_unavailable", "Published DfE figures are shown beside children's social care "
                                           "CSE-flagged records: choose that count.")
        return
    if convert.layer_key(layer) not in profile_measures.PUBLISHED_LAYERS:
        data.note("published_unavailable", "Published DfE figures are per children's services authority: they are "
                                           "shown beside your extract on that layer and on police force areas.")
        return
    if " Q" in period:
        data.note("published_unavailable", "Published DfE figures are yearly: choose a financial year or all periods.")
        return
    if B not in base.columns:  # nothing of that agency stored yet (an empty store)
        data.note("published_unavailable", "No children's social care records are stored yet: nothing to set "
                                           "beside the published DfE figures.")
        return
    counts_ = base.set_index("area_code")[B]
    store = pd.DataFrame({"area_code": areas, "area_name": [names[c] for c in areas],
                          "store_count": [float(counts_[c]) for c in areas]})
    cube = source.cube_for(role)
    years = [p for p in cube.periods if p != "all" and " Q" not in p] if period == "all" else [period]
    figures_ = source.memo.get(("published.figures",), lambda: published.figures_for(source.con))
    data.tables["cmp_published_table"] = Table(profile_measures.beside_published(store, figures_, layer, years),
                                               "Published figures beside your extract",
                                               profile_measures.published_note(layer, years), downloadable=True,
                                               columns={"Your extract": {"format": "%d"}})
