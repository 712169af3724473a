"""View builder of the Area profile page (issue 17): one area's indicators, Fingertips-style spine chart, against
England and Wales and its comparator group (DfE statistical neighbours for children's services authorities,
context neighbours otherwise), with 95% confidence intervals, comparisons in colour AND words, the trend over
financial years and a definition of every indicator (lib.measures.profile does the arithmetic).

The role's protection is the Compare page's, in ONE place (``_base``: ``lib.views.compare._base``, the counts
as the role may see them: exact for the safeguarding lead, published by the disclosure service's cell key
perturbation below it, ``Source.cube_for(role)``), so the profile and Compare show one area the same figures.
Nothing is hidden; ``lib.measures.profile`` still honours a hidden-cell mask should a method need one.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lib.access.roles import aggregates_suppressed, periods_for
from lib.disclosure import notes as disclosure_notes
from lib.geo import official_lookups
from lib.measures import compare as compare_measures
from lib.measures import convert, counts, neighbours, population
from lib.measures import divergence as dv
from lib.measures import profile as prof
from lib.measures import published as pub
from lib.views import compare as view_compare
from lib.views.base import PageData, Param, Source, Table, source_of

PAGE = "profile"
CACHEABLE = True  # lib.views.build_with keeps the PageData per data version, parameters and role
TITLE = "Area profile"
MEASURE = "cse_records"
A, B = view_compare.A, view_compare.B

PARAMS: dict[str, Param] = {
    "layer": Param("utla", tuple(convert.MEASURE_LAYERS), help="the geography of the area"),
    "area": Param(None, help="an area code of the layer (default: the area with the most cases)"),
    "period": Param("all", help="all or a financial year (2023-24); aggregate-only roles: all"),
}


def _base(source: Source, layer: str, period: str, role: str) -> pd.DataFrame:
    """THE protection of this page: every area's counts as ``role`` may see them (Compare's ``_base``)."""
    return view_compare._base(source, layer, period, MEASURE, role)


def options(con_or_store, role: str) -> dict:
    """Periods the role may pick: all and financial years (quarters are too few cases for a profile)."""
    cube = source_of(con_or_store).cube_for(role)
    return {"periods": [p for p in periods_for(role, cube.periods) if " Q" not in p]}


def choices(con_or_store, layer: str, role: str) -> tuple[dict[str, str], list[str]]:
    """The areas a selector offers: code -> name, and codes from the most cases to the fewest."""
    return view_compare.choices(con_or_store, layer, "all", MEASURE, role)


def _years(cube, period: str) -> list[str]:
    return [p for p in cube.periods if p != "all" and " Q" not in p] if period == "all" else [period]


def _vintage(key: str) -> str:
    entry = official_lookups.sources_json().get(key, {})
    return f"{entry.get('dataset', key)}; vintage {entry.get('vintage', '?')}; {entry.get('licence', '')}".strip("; ")


def _fmt(value, digits: int = 1) -> str:
    if value is None or pd.isna(value):
        return ""
    return f"{value:,.{digits}f}"


def _count(value) -> str:
    return "" if value is None or pd.isna(value) else f"{value:,.0f}"


def _comparison(word: str, against: str) -> str:
    if word == "hidden":
        return "hidden for your role (small numbers)"
    if word == "not compared":
        return f"not compared (no figure to compare with {against})"
    return f"{prof.SIGNIFICANCE_STYLE[word]['text']} {against}"


def definitions(layer: str, years: list[str], data_version: str, agencies: list[str]) -> pd.DataFrame:
    """Numerator, denominator, source, vintage and caveats of every indicator."""
    pop_source = population.source_label(layer=layer)
    store = f"Your record store (data version {data_version})"
    direct = "placed in the area by where the encounter happened (direct basis)"
    span = ", ".join(years) if years else "no financial year"
    rows = []
    for x in agencies:
        rows.append((f"{dv.agency_title(x)}: CSE-flagged records per 10,000 children",
                     f"{dv.agency_title(x)} records with a CSE flag, {direct}, financial years {span}",
                     "children aged 0–17 living in the area (official population)", store + "; " + pop_source,
                     "ONS mid-2024 (England), mid-2020 (Wales)",
                     "A record, not a child: a child seen twice counts twice. A rate over several years is "
                     "records of all those years per 10,000 children. 95% CI: Byar's approximation to the exact "
                     "Poisson interval (the population taken as known)."))
    if A in agencies and B in agencies:
        rows.append((f"{dv.agency_title(A)} share of {dv.agency_title(A)} + {dv.agency_title(B)} CSE-flagged "
                     "records (%)", f"{dv.agency_title(A)} CSE-flagged records, {direct}",
                     f"{dv.agency_title(A)} + {dv.agency_title(B)} CSE-flagged records", store, store,
                     "A share says where two agencies' recording diverges, not how much harm there is. 95% CI: "
                     "Wilson score interval; records of one child are not independent, so it is too narrow "
                     "where children are seen repeatedly."))
    rows += [("Identifier completeness: valid NHS number (% of records)",
              "records with an NHS number passing the modulus 11 check", "all records placed in the area", store,
              store, "Covers all periods. 95% CI: Wilson."),
             ("Identifier completeness: name and date of birth (% of records)",
              "records with a forename, surname and date of birth", "all records placed in the area", store, store,
              "Covers all periods. 95% CI: Wilson."),
             ("Children spanning boundaries (% of resident linked children)",
              "linked children living in the area whose encounters span two or more police forces, children's "
              "services authorities, ICBs/health boards or trust catchments",
              "linked children living in the area", store + " after linkage", store,
              "Needs a linkage run; a linked child is a probabilistic match (see the Review page). 95% CI: "
              "Wilson."),
             ("Linkage rate (% of identifiable records joined to another)",
              "identifiable records that linkage joined to at least one other record",
              "identifiable (not anonymous) records placed in the area", store + " after linkage", store,
              "A low rate can mean children seen once, or identifiers too poor to link. 95% CI: Wilson."),
             ("Published DfE: CSE identified at the end of children in need assessments, per 10,000 children",
              "DfE children in need table C3, factor 'child sexual exploitation', local authority figures "
              + ("summed" if convert.layer_key(layer) == "utla" else
                 "summed where authorities nest in the area, apportioned by postcodes where they do not")
              + f", financial years {span}",
              "children aged 0–17 living in the area (official population)",
              "Department for Education, Characteristics of children in need (OGL v3.0); " + pop_source,
              _vintage(pub.C3_EXTRACT),
              "England only (Wales: no figure; the national figure is England's). Factors are counted per "
              "assessment, not per child. A cell published as a symbol (c, k, low, u, x, z) has no number: it "
              "is left out of sums and named, never counted as zero. 95% CI: Byar.")]
    return pd.DataFrame(rows, columns=["Indicator", "Numerator", "Denominator", "Source", "Vintage", "Caveats"])


def _display(rows: pd.DataFrame, comparator_label: str) -> pd.DataFrame:
    out = []
    for r in rows.itertuples(index=False):
        digits = 1
        hidden = bool(r.hidden)
        national = r.national_label
        out.append({
            "Indicator": r.label,
            "Count": np.nan if hidden else r.numerator,
            "Denominator": np.nan if hidden else r.denominator,
            "Value": "c" if hidden else (_fmt(r.value, digits) or (r.symbols if getattr(r, "symbols", "") else
                                                                    "no figure")),
            "95% CI": "" if hidden or pd.isna(r.lower) else f"{_fmt(r.lower, digits)} to {_fmt(r.upper, digits)}",
            comparator_label: _fmt(r.comparator_value, digits) or "c or no figure",
            "National": f"{national}: {_fmt(r.national_value, digits)}" if pd.notna(r.national_value)
            else f"{national}: c or no figure",
            "Against national": _comparison(r.vs_national, national),
            "Against comparator group": _comparison(r.vs_comparator, "the comparator group"),
            "Trend": r.trend,
        })
    return pd.DataFrame(out)


#: Counts are numbers (blank where none: a published cell with a symbol says so under Value).
COUNT_HINTS = {"Count": {"format": "%d"}, "Denominator": {"format": "%d"}}


def spine(rows: pd.DataFrame, name: str) -> go.Figure:
    """The Fingertips spine chart: per indicator, the spread of the layer's areas (grey: whole range, darker:
    middle half) scaled so the national value is the centre line, the comparator group (diamond) and the
    area (coloured and shaped by its comparison with the national value, with its 95% interval)."""
    fig = go.Figure()
    labels = list(rows["label"])
    for i, r in enumerate(rows.itertuples(index=False)):
        centre = r.national_value
        if pd.isna(centre):
            continue
        half = max(abs(v - centre) for v in (r.range_min, r.range_max, r.value, r.lower, r.upper,
                                            r.comparator_value, centre + 1e-9) if pd.notna(v))

        def x(v, centre=centre, half=half):
            return (v - centre) / half if pd.notna(v) else None

        y = labels[i]
        if pd.notna(r.range_min):
            fig.add_trace(go.Scatter(x=[x(r.range_min), x(r.range_max)], y=[y, y], mode="lines",
                                     line={"color": "#D9D9D9", "width": 14}, hoverinfo="skip", showlegend=False))
            fig.add_trace(go.Scatter(x=[x(r.range_q1), x(r.range_q3)], y=[y, y], mode="lines",
                                     line={"color": "#8C8C8C", "width": 14}, hoverinfo="skip", showlegend=False))
        if pd.notna(r.comparator_value):
            fig.add_trace(go.Scatter(x=[x(r.comparator_value)], y=[y], mode="markers", showlegend=False,
                                     marker={"symbol": "diamond", "size": 11, "color": "#000000"},
                                     hovertemplate=f"Comparator group: {r.comparator_value:,.1f}<extra></extra>"))
        style = prof.SIGNIFICANCE_STYLE[r.vs_national]
        if pd.notna(r.value):
            fig.add_trace(go.Scatter(
                x=[x(r.value)], y=[y], mode="markers", showlegend=False,
                error_x={"type": "data", "symmetric": False, "array": [x(r.upper) - x(r.value)],
                         "arrayminus": [x(r.value) - x(r.lower)], "color": "#333333", "thickness": 1.5},
                marker={"symbol": style["symbol"], "size": 15, "color": style["colour"],
                        "line": {"color": "#000000", "width": 1.5}},
                hovertemplate=(f"{name}: {r.value:,.1f} (95% CI {r.lower:,.1f} to {r.upper:,.1f}); "
                               f"{style['text']} {r.national_label} ({centre:,.1f})<extra></extra>")))
    fig.add_vline(x=0, line={"color": "#000000", "width": 2})
    for word in ("higher", "similar", "lower"):  # the legend: colour and shape, with words
        style = prof.SIGNIFICANCE_STYLE[word]
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=f"{style['text']} national",
                                 marker={"symbol": style["symbol"], "size": 12, "color": style["colour"],
                                         "line": {"color": "#000000", "width": 1}}))
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="comparator group",
                             marker={"symbol": "diamond", "size": 10, "color": "#000000"}))
    fig.update_layout(height=110 + 52 * len(rows), margin={"l": 10, "r": 20, "t": 30, "b": 40},
                      plot_bgcolor="white", legend={"orientation": "h", "y": -0.08},
                      xaxis={"range": [-1.15, 1.15], "showticklabels": False, "zeroline": False,
                             "title": "← lower than national | national (centre line) | higher than national →"},
                      yaxis={"autorange": "reversed", "automargin": True})
    return fig


def _trend_rows(cube, layer: str, code: str, years: list[str], pop: pd.Series, agencies: list[str],
                figures: pd.DataFrame, show_store: bool) -> pd.DataFrame:
    rows = []
    children = float(pop.get(code, np.nan))
    if show_store:
        for year in years:
            wide = counts.agency_counts(cube, layer, year, MEASURE).set_index("area_code")
            for x in agencies:
                n = float(wide.at[code, x]) if code in wide.index and pd.notna(wide.at[code, x]) else 0.0
                value, lower, upper = prof.estimate(prof.RATE, n, children)
                rows.append((f"rate_{x}", f"{dv.agency_title(x)}: CSE-flagged records per 10,000 children", year,
                             n, value, lower, upper, ""))
    published = prof.published_on_layer(figures, layer)
    published = published[published["area_code"] == code].set_index("period")
    for year in sorted(published.index):
        n = published.at[year, "count"]
        value, lower, upper = prof.estimate(prof.RATE, n, children)
        rows.append(("published_rate", "Published DfE: CSE identified at the end of assessment, per 10,000 "
                     "children", year, n, value, lower, upper, published.at[year, "symbols"]))
    return pd.DataFrame(rows, columns=["key", "indicator", "period", "count", "value", "lower", "upper", "symbols"])


def build(con_or_store, params: dict, role: str) -> PageData:
    source = source_of(con_or_store)
    layer, period = convert.layer_key(params["layer"]), params["period"]
    allowed = options(source, role)
    if period not in allowed["periods"]:
        raise ValueError(f"parameter period={period!r}: expected one of {', '.join(allowed['periods'])} "
                         f"for the {role} role")
    names, busiest = choices(source, layer, role)
    area = params["area"] or (busiest[0] if busiest else None)
    if area not in names:
        raise ValueError(f"parameter area={area!r}: not an area of layer {layer!r}")
    cube = source.cube_for(role)
    base = _base(source, layer, period, role)
    mask = compare_measures.hidden_mask(base, False, A, B)  # nothing hidden: the counts are the role's own
    suppressed = aggregates_suppressed(role)
    name = names[area]
    data = PageData(page=PAGE, role=role, params=dict(params), data_version=source.data_version(), title=TITLE,
                    extra={"area": area, "layer": layer, "names": names, "period_label": counts.period_label(period),
                           "suppressed": suppressed})

    codes, comparator_label, table = _comparator(data, layer, area, name)

    # the indicators
    years = _years(cube, period)
    pop = population.default_population(layer)
    rows = prof.indicator_table(base, area, codes, mask, a=A, b=B)
    figures = pub.figures_for(source.con)
    national = pub.dfe_c3(levels=("National",))
    published_row = prof.published_row(figures, national, layer, area, codes, years, pop)
    rows = pd.concat([rows.assign(symbols=""), pd.DataFrame([published_row]).drop(columns="periods")],
                     ignore_index=True)

    # the trend over financial years
    agencies = list(cube.agencies)
    show_store = True  # each year's counts come from the role's cube (published consistently below the lead)
    all_years = [p for p in cube.periods if p != "all" and " Q" not in p]
    trend = _trend_rows(cube, layer, area, all_years, pop, agencies, figures, show_store)
    words = {key: prof.trend(part) for key, part in trend.groupby("key")}
    rows["trend"] = [words[key] if key in words else
                     ("yearly figures shown to the safeguarding lead only" if key.startswith("rate_")
                      else "no yearly figures" if key == "published_rate" else "covers all periods")
                     for key in rows["indicator"]]

    _headline(data, rows, name, area, layer, period)
    _published_sentence(data, rows, published_row, years, layer)

    data.tables["profile_table"] = Table(_display(rows, comparator_label), f"{name}: indicators",
                                         "Higher / similar / lower: the area's 95% confidence interval wholly "
                                         "above, overlapping or wholly below the national value (Fingertips' "
                                         "method). Not better or worse: more recorded harm can mean better "
                                         "recognition.", downloadable=True, columns=COUNT_HINTS)
    data.figures["profile_spine"] = spine(rows, name)
    if show_store or len(trend):
        _trend_table(data, trend)
    data.tables["profile_group_table"] = Table(table, f"Comparator group: {comparator_label}",
                                               downloadable=True)
    data.tables["profile_definitions"] = Table(definitions(layer, years, data.data_version, agencies),
                                               "Definitions", downloadable=True)
    _method_notes(data, base, area, name, layer, suppressed)
    data.extra.update({"indicators": list(rows["indicator"]), "comparator_method": comparator_label,
                       "comparator": codes, "years": years})
    return data


def _comparator(data: PageData, layer: str, area: str, name: str) -> tuple[list[str], str, pd.DataFrame]:
    """The comparator group (DfE statistical neighbours, or context neighbours where DfE's model does not
    reach), never chosen on the outcome measures; says which. Returns its codes, label and table."""
    group = neighbours.neighbours(layer, area)
    dfe = bool(len(group)) and group["method"].iat[0] == neighbours.DFE_METHOD
    codes = list(group["neighbour_code"])
    comparator_label = "DfE statistical neighbours" if dfe else "Context neighbours"
    if dfe:
        data.say("comparator", f"**Comparator group: DfE statistical neighbours.** {name}'s {len(codes)} nearest "
                               "children's services authorities in the Department for Education's statistical "
                               "neighbour model (2025), with DfE's closeness band for each; chosen by DfE on "
                               "the authorities' characteristics, never on the CSE figures compared here.")
        table = group[["rank", "neighbour_code", "neighbour_name", "closeness"]].rename(columns={
            "rank": "Rank", "neighbour_code": "Code", "neighbour_name": "Area", "closeness": "DfE closeness"})
    else:
        why = (" (DfE's model covers English authorities only)" if layer == "utla" else "")
        data.say("comparator", f"**Comparator group: context neighbours{why}.** The {len(codes)} areas of this "
                               "layer nearest to " + name + " in child population, child density and household "
                               "deprivation (Census 2021), each standardised; never the CSE figures compared here.")
        table = group[["rank", "neighbour_code", "neighbour_name", "distance"]].rename(columns={
            "rank": "Rank", "neighbour_code": "Code", "neighbour_name": "Area",
            "distance": "Distance (standard deviations)"})
    return codes, comparator_label, table


def _headline(data: PageData, rows: pd.DataFrame, name: str, area: str, layer: str, period: str) -> None:
    """The headline reading: indicators grouped by how they stand against the national value."""
    said = {}
    for r in rows.itertuples(index=False):
        said.setdefault(r.vs_national, []).append(r.label.split(" (")[0].split(", per")[0])
    parts = [f"- **{prof.SIGNIFICANCE_STYLE[w]['text']} England and Wales**: "
             + "; ".join(said[w]) for w in ("higher", "similar", "lower") if said.get(w)]
    if said.get("hidden"):
        parts.append("- **hidden for your role** (small numbers): " + "; ".join(said["hidden"]))
    if said.get("not compared"):
        parts.append("- **not compared** (no figure): " + "; ".join(said["not compared"]))
    data.say("headline", f"**{name} ({area})**, {convert.MEASURE_LAYERS[layer].lower()}, "
                         f"{counts.period_label(period)}. Each indicator's 95% confidence interval against the "
                         "national value (England for the published DfE figure):\n\n" + "\n".join(parts))


def _published_sentence(data: PageData, rows: pd.DataFrame, published_row: dict, years: list[str],
                        layer: str) -> None:
    """The extract's children's social care count beside the published DfE figure, saying why they differ."""
    csc = rows[rows["indicator"] == f"rate_{B}"]
    if not len(csc):
        return
    mine = "c (hidden for your role)" if bool(csc["hidden"].iat[0]) else _count(csc["numerator"].iat[0])
    theirs = (_count(published_row["numerator"]) if pd.notna(published_row["numerator"])
              else f"no total ({published_row['symbols'] or 'no figure'})")
    extra = f" (left out of the sum, published as symbols: {published_row['symbols']})" if (
        published_row["symbols"] and pd.notna(published_row["numerator"])) else ""
    basis = ("" if layer == "utla" else " Published figures are authorities' figures summed where they nest in "
             "the area and apportioned by postcodes where they do not.")
    data.say("published", f"Children's social care, financial years {', '.join(years)}: your extract: {mine}; "
                          f"published: {theirs}{extra}. Your extract counts CSE-flagged records where the "
                          "encounter happened; DfE counts assessments with CSE identified as a factor."
                          + basis)


def _trend_table(data: PageData, trend: pd.DataFrame) -> None:
    """The yearly figures as a table (a symbol shown under Value, never zero) and as a chart."""
    shown = trend.assign(
        Count=trend["count"].astype("float64"),
        Value=[_fmt(v) if pd.notna(v) else (s or "no figure") for v, s in zip(trend["value"], trend["symbols"])],
        CI=[f"{_fmt(lo)} to {_fmt(hi)}" if pd.notna(lo) else "" for lo, hi in zip(trend["lower"], trend["upper"])])
    shown = shown.rename(columns={"indicator": "Indicator", "period": "Financial year", "CI": "95% CI"})
    data.tables["profile_trend_table"] = Table(
        shown[["Indicator", "Financial year", "Count", "Value", "95% CI"]], "Trend over financial years",
        "Published DfE figures: reporting year ending 31 March, shown as the financial year it closes. A "
        "published cell with a symbol has no count: its meaning is shown under Value, never zero.",
        downloadable=True, columns={"Count": {"format": "%d"}})
    data.figures["profile_trend"] = _trend_figure(trend)


def _method_notes(data: PageData, base: pd.DataFrame, area: str, name: str, layer: str, suppressed: bool) -> None:
    """How to read the page: the population used, the disclosure method, small counts and the spine chart."""
    data.note("population", population.source_label(layer=layer))
    data.note("disclosure", disclosure_notes.method_note(suppressed)
              + (" Confidence intervals are computed on the published counts and leave the perturbation out."
                 if suppressed else ""))
    small = view_compare.small_areas(base, [area]) if suppressed else []
    if small:
        data.note("small", disclosure_notes.small_note([name]))
    data.note("spine", "Spine chart: the centre line is the national value; the grey bar spans the areas of the "
                       "layer (lightest: the whole range, darker: the middle half); the diamond is the "
                       "comparator group; the marker is the area, its colour AND shape saying higher (blue "
                       "triangle up), similar (yellow circle) or lower (orange triangle down), the whiskers its 95% "
                       "interval. The table below gives every value.")


def _trend_figure(trend: pd.DataFrame) -> go.Figure:
    """The yearly rates with 95% intervals: your extract's agencies above, the published DfE rate below (their
    scales differ a hundredfold), financial years in order on a shared axis."""
    from plotly.subplots import make_subplots

    palette = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000"]
    dashes = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot", "solid"]
    years = sorted(set(trend["period"]))
    store = trend[trend["key"] != "published_rate"]
    panels = [("Your extract", store), ("Published DfE", trend[trend["key"] == "published_rate"])]
    panels = [(title, part) for title, part in panels if len(part)]
    fig = make_subplots(rows=len(panels) or 1, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=[f"{t}: per 10,000 children" for t, _ in panels] or None)
    i = 0
    for row, (_, part) in enumerate(panels, start=1):
        for indicator, series in part.groupby("indicator", sort=False):
            series = series.dropna(subset=["value"])
            name = indicator.split(":")[0]
            fig.add_trace(go.Scatter(
                x=series["period"], y=series["value"], mode="lines+markers", name=name,
                line={"color": palette[i % len(palette)], "dash": dashes[i % len(dashes)]},
                error_y={"type": "data", "symmetric": False, "array": (series["upper"] - series["value"]).tolist(),
                         "arrayminus": (series["value"] - series["lower"]).tolist()},
                hovertemplate="%{x}: %{y:,.1f} per 10,000<extra>" + name + "</extra>"), row=row, col=1)
            i += 1
        fig.update_yaxes(rangemode="tozero", gridcolor="#eeeeee", row=row, col=1)
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=years)
    fig.update_layout(height=260 * max(len(panels), 1) + 80, margin={"l": 10, "r": 10, "t": 30, "b": 40},
                      plot_bgcolor="white", legend={"orientation": "h", "y": -0.12})
    return fig
