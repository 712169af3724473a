"""View builder of the Compare areas page: the side-by-side profile, one indicator charted (figure and its
table) and the comparator group, for one role (lib.measures.compare does the work; suppression for the role
happens in ONE place, ``_protect``)."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from lib.access.roles import aggregates_suppressed, periods_for
from lib.measures import compare, convert, counts, population
from lib.measures import divergence as dv
from lib.measures.suppression import NOTE as SUPPRESSION_NOTE
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
                                "roles: all"),
    "measure": Param("cse_records", tuple(MEASURES), help="cse_children needs linkage"),
    "mode": Param("choose", tuple(MODES), help="choose: the areas given; neighbours: the first area and "
                                               "the areas sharing its longest boundaries"),
    "areas": Param(None, many=True, help="area codes of the layer (default: the three busiest; "
                                         "neighbours: the busiest)"),
    "group": Param(None, many=True, help="a comparator group of area codes (default: nearest neighbours)"),
    "indicator": Param(None, help="the indicator charted, a key of the profile (default: share_a)"),
}
PATTERN = {compare.COMPARATOR: "/", compare.NATIONAL: "."}


def _base(source: Source, layer: str, period: str, measure: str) -> pd.DataFrame:
    return source.memo.get(("compare.base", layer, period, measure), lambda: compare.area_base(
        source.cube(), source.con, layer, period, measure, population.default_population(layer), A, B))


def _protect(source: Source, base: pd.DataFrame, key: tuple, role: str) -> pd.DataFrame:
    """THE suppression of this page (issue 16 replaces it): which cells ``role`` may not see, one
    suppression over all areas of the layer (lib.measures.compare.hidden_mask)."""
    return source.memo.get(("compare.hidden", *key, role),
                           lambda: compare.hidden_mask(base, aggregates_suppressed(role), A, B))


def choices(con_or_store, layer: str, period: str, measure: str) -> tuple[dict[str, str], list[str]]:
    """The areas a selector offers: code -> name, and codes from the most cases to the fewest."""
    source = source_of(con_or_store)
    base = _base(source, layer, period, measure)
    names = dict(zip(base["area_code"], base["area_name"]))
    return names, base.sort_values("total", ascending=False)["area_code"].tolist()


def neighbours(con_or_store, layer: str, code: str) -> list[str]:
    source = source_of(con_or_store)
    return source.memo.get(("compare.adjacent", layer, code), lambda: compare.adjacent_areas(layer, code))


def options(con_or_store, role: str) -> dict:
    """What the page's selectors offer for ``role``: periods and measures available in the store."""
    cube = source_of(con_or_store).cube()
    return {"periods": periods_for(role, cube.periods),
            "measures": ["cse_records", "cse_children"] if cube.linked else ["cse_records"]}


def is_rate(indicator: str) -> bool:
    """A rate, share or percentage (comparable with England and Wales), not a count of records."""
    return indicator.startswith(("rate_", "share_")) or indicator.endswith("_pct")


def build(con_or_store, params: dict, role: str) -> PageData:
    source = source_of(con_or_store)
    layer, period, measure, mode = params["layer"], params["period"], params["measure"], params["mode"]
    allowed = options(source, role)
    if period not in allowed["periods"]:
        raise ValueError(f"parameter period={period!r}: expected one of {', '.join(allowed['periods'])} "
                         f"for the {role} role")
    if measure not in allowed["measures"]:
        raise ValueError(f"parameter measure={measure!r}: the store is not linked; expected cse_records")
    base = _base(source, layer, period, measure)
    names, busiest = choices(source, layer, period, measure)
    for param in ("areas", "group"):
        unknown = [c for c in params[param] or [] if c not in names]
        if unknown:
            raise ValueError(f"parameter {param}: {', '.join(unknown)} not an area of layer {layer!r}")
    if mode == "neighbours":
        focus = (params["areas"] or busiest[:1])[0]
        areas = [focus, *neighbours(source, layer, focus)]
    else:
        areas = list(params["areas"]) if params["areas"] is not None else busiest[:3]
    if len(areas) > compare.MAX_AREAS:
        raise ValueError(f"parameter areas: compare at most {compare.MAX_AREAS} areas")
    comparator = list(params["group"] or []) or None
    data = PageData(page=PAGE, role=role, params=dict(params), data_version=source.data_version(), title=TITLE,
                    extra={"areas": areas, "comparator": comparator, "names": {c: names[c] for c in areas}})
    if not areas:
        data.notes.append("Choose at least one area to compare.")
        return data

    prof = compare.profile(base, areas, aggregates_suppressed(role), comparator=comparator, a=A, b=B, measure=measure,
                           mask=_protect(source, base, (layer, period, measure), role))
    suppressed = aggregates_suppressed(role)

    # side by side
    data.sentences.append(compare.describe(prof))
    table = prof.table.drop(columns=["indicator"]).rename(columns={"label": "Indicator"})
    captions = [*prof.notes] + ([f"{prof.hidden} cells are hidden (c) for your role."] if suppressed else [])
    data.tables["cmp_table"] = Table(table, "Side by side", " ".join(captions), downloadable=True)

    # one indicator, charted
    numeric = prof.numeric[prof.numeric["indicator"] != "verdict"].set_index("indicator")
    labels = dict(zip(prof.numeric["indicator"], prof.numeric["label"]))
    indicator = params["indicator"] or ("share_a" if "share_a" in numeric.index else numeric.index[0])
    if indicator not in numeric.index:
        raise ValueError(f"parameter indicator={indicator!r}: expected one of {', '.join(numeric.index)}")
    values = numeric.loc[indicator].drop(labels=["label"]).astype("float64")
    shown = values.dropna()
    # A count is never drawn against a total: the comparator group's and England and Wales's counts are sums over
    # many areas (issue 18: "10 vs 707"), so a count chart draws the areas only; rates and shares draw all.
    totals = [] if is_rate(indicator) else [n for n in (compare.COMPARATOR, compare.NATIONAL) if n in shown.index]
    shown = shown.drop(index=totals)
    fig = go.Figure(go.Bar(
        x=shown.to_numpy(), y=list(shown.index), orientation="h",
        text=[f"{v:,.1f}" if is_rate(indicator) else f"{v:,.0f}" for v in shown], textposition="outside",
        cliponaxis=False, marker={"color": ["#0072B2" if n not in PATTERN else "#E69F00"
                                                  if n == compare.COMPARATOR else "#999999" for n in shown.index],
                                        "pattern": {"shape": [PATTERN.get(n, "") for n in shown.index]},
                                        "line": {"color": "#333333", "width": 1}},
        hovertemplate="%{y}: %{x:,.1f}<extra></extra>"))
    fig.update_layout(height=90 + 46 * len(shown), margin={"l": 10, "r": 60, "t": 20, "b": 40},
                      plot_bgcolor="white", yaxis={"autorange": "reversed", "automargin": True},
                      xaxis={"title": labels[indicator], "gridcolor": "#eeeeee", "rangemode": "tozero"})
    data.figures["cmp_chart"] = fig
    hidden_here = [n for n, v in values.items() if pd.isna(v)]
    cells = ["c" if pd.isna(v) and suppressed else ("" if pd.isna(v) else round(v, 1)) for v in values]
    if any(isinstance(v, str) for v in cells):  # one type per column: as text, as the page has always shown it
        cells = [str(v) for v in cells]
    chart_table = pd.DataFrame({"Area": values.index, labels[indicator]: cells})
    chart_note = ("Blue: the areas compared; hatched orange: the comparator group; dotted grey: England and Wales. "
                  "Each bar carries its value." + (f" Not shown (hidden or no data): {', '.join(hidden_here)}."
                                                   if hidden_here else ""))
    if totals:
        chart_note = ("Blue: the areas compared. A count is drawn for the areas only: the "
                      + " and ".join(n[:1].lower() + n[1:] if n == compare.COMPARATOR else n for n in totals)
                      + " figures are totals over many areas (in the table); chart the rate per 10,000 children "
                        "or a share to set the areas against them. Each bar carries its value."
                      + (f" Not shown (hidden or no data): {', '.join(hidden_here)}." if hidden_here else ""))
    data.tables["cmp_chart_table"] = Table(chart_table, labels[indicator], chart_note, downloadable=True)

    # the comparator group
    data.sentences.append(prof.explanation)
    group = prof.comparator.rename(columns={"area_code": "Code", "area_name": "Area", "distance": "Distance",
                                            "closest_on": "Closest on"})
    data.tables["cmp_group_table"] = Table(group, "The comparator group", downloadable=True)

    data.notes.append(f"A deck for the first area ({names[areas[0]]}) with these areas side by side."
                      + (f" {SUPPRESSION_NOTE}" if suppressed else ""))
    if convert.MEASURE_LAYERS[layer].endswith("(modelled)"):
        data.notes.append("Trust catchments are modelled from OHID admissions (NHS Acute (Hospital) Trust Catchment "
                          "Populations, 2022 edition): NHS trusts have no statutory boundary (see the Boundaries "
                          "page). A trust's children are its modelled share of each area's children.")
    data.notes.append(f"Agencies compared for divergence: {dv.agency_title(A)} and {dv.agency_title(B)}.")
    data.extra.update({"indicator": indicator, "indicators": list(numeric.index), "labels": labels,
                       "hidden": prof.hidden, "suppressed": suppressed, "period_label": counts.period_label(period)})
    return data
