"""Compare areas side by side, against England and Wales and a comparator group.

Per area of a layer (``area_base``) the profile holds, for the chosen period and measure:

- each agency's count (``lib.measures.counts``, direct basis: encounters placed where they happened) and
  its rate per 10,000 children (``lib.measures.population``);
- divergence: agency A's share of A + B (``lib.measures.divergence``) and its funnel verdict;
- identifier completeness: valid NHS number and full name plus date of birth, as % of the records that
  happened there (``lib.records.store.completeness``, encounter location);
- children spanning boundaries: % of linked children resident there whose encounters span two or more
  police forces, children's services authorities, ICBs/health boards or trust catchments
  (``lib.measures.spans``);
- linkage rate: % of the identifiable (not anonymous) records that happened there which linkage joined
  to at least one other record.
Completeness, spans and linkage rate cover all periods (they describe the data, not a year's cases).

**England and Wales** and a **comparator group** are the same figures over a set of areas, computed from
summed numerators and denominators (a rate of the group, not an average of rates). The comparator group
is either user-defined or the areas most similar to a focus area on the product's own indicators
(``nearest_neighbours``): every indicator is standardised over the layer's areas (z-score, missing = the
mean), and areas are ranked by Euclidean distance to the focus area, each indicator weighted equally.

Measures know no roles. Below the safeguarding lead the Compare view passes the disclosure service's cube and
the store's keys (``area_base(..., keys=...)``): every count is then published by cell key perturbation
(docs/DISCLOSURE.md) and nothing is hidden (``profile(..., suppressed=False)``). The older per-table suppression
below is no longer used by any page or export (every caller passes ``suppressed=False``); its removal is left to a later
change. The caller says whether aggregates are suppressed (``suppressed``, from
``lib.access.roles.aggregates_suppressed(role)`` in the view layer). When they are, every count passes
through ``lib.measures.suppression`` on the table of *all* areas with the national total row (so an area's
cell is hidden the same way whichever areas are compared), derived figures follow their counts, and a
comparator cell is hidden whenever any member's cell is hidden (a group total minus visible members would
give a lone hidden member back).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
import shapely

from lib.disclosure import residents, service
from lib.measures import convert, population, spans
from lib.measures import divergence as dv
from lib.measures.counts import MeasureCube, agency_counts
from lib.measures.figures import layer_geojson
from lib.measures.suppression import NOTE, SUPPRESSED, suppress
from lib.records.store import completeness, query

NATIONAL = "England and Wales"
COMPARATOR = "Comparator group"
MAX_AREAS = 6
NEIGHBOURS = 5


def _suppressed(suppressed) -> bool:
    """The flag itself; a role name is refused (measures know no roles: pass
    ``lib.access.roles.aggregates_suppressed(role)``)."""
    if not isinstance(suppressed, (bool, np.bool_)):
        raise TypeError(f"suppressed must be True or False (lib.access.roles.aggregates_suppressed(role)), "
                        f"not {suppressed!r}")
    return bool(suppressed)


def _spans_per_area(con, layer: str) -> pd.DataFrame:
    if not spans.has_linkage(con):
        return pd.DataFrame(columns=["area_code", "children", "spanning"])
    children = spans.child_table(con, layer).dropna(subset=["home_area"])
    grouped = children.groupby("home_area").agg(children=("child_id", "size"), spanning=("spans_any", "sum"))
    return grouped.rename_axis("area_code").reset_index()


def _linkage_per_area(con, layer: str) -> pd.DataFrame:
    if not spans.has_linkage(con):
        return pd.DataFrame(columns=["area_code", "identifiable", "linked"])
    column = f"enc_{convert.layer_key(layer)}"
    return query(con, f"""
        WITH sizes AS (SELECT child_id, count(*) AS n FROM record_child WHERE child_id IS NOT NULL GROUP BY 1)
        SELECT e.{column} AS area_code,
               count(*) FILTER (WHERE NOT e.is_anonymous) AS identifiable,
               count(*) FILTER (WHERE NOT e.is_anonymous AND s.n >= 2) AS linked
        FROM encounters e JOIN record_child rc USING (record_key) LEFT JOIN sizes s USING (child_id)
        WHERE e.{column} IS NOT NULL GROUP BY 1""")


#: Compare's record counts that are not in the cube: SQL conditions on an encounter ``e`` (``s.n``: records of its
#: linked child), the same definitions as lib.records.store.completeness and ``_linkage_per_area``.
RECORD_MEASURES = {
    "encounters": "TRUE",
    "valid_nhs": "e.nhs_status = 'valid'",
    "name_dob": "e.forename_hash IS NOT NULL AND e.surname_hash IS NOT NULL AND e.dob_hash IS NOT NULL",
}
LINKED_MEASURES = {"identifiable": "NOT e.is_anonymous AND rc.in_rc", "linked": "NOT e.is_anonymous AND s.n >= 2"}


def area_base(cube: MeasureCube, con, layer: str, period: str = "all", measure: str = "cse_records",
              population: pd.Series | None = None, a: str = "police", b: str = "children_social_care",
              keys: dict | None = None, published: dict | None = None, span: pd.DataFrame | None = None
              ) -> pd.DataFrame:
    """One row per area of ``layer`` with the numerators and denominators of every indicator:
    ``area_code``, ``area_name``, one count column per agency, ``total``, ``children_population``,
    ``encounters``, ``valid_nhs``, ``name_dob``, ``children``, ``spanning``, ``identifiable``, ``linked``,
    ``verdict`` (funnel verdict of A's share).

    ``keys`` (``lib.disclosure.members.key_tables``; pass with the protected cube of ``lib.disclosure.service``):
    every count is then published by cell key perturbation: records on atoms (``service.area_record_sums``),
    resident children per area on their home atoms (``published_span``, the same values as Across boundaries).
    Without it, exact. ``published``: those published counts as the last write stored them
    (``published_counts``: no record-level table is read; protected as with ``keys``, which may then be None).
    ``span``: exact only, the resident linked children per area (area_code, children, spanning) as the last write
    stored them (Across's ``spans_by_area``): not recounted from the records."""
    layer = convert.layer_key(layer)
    wide = agency_counts(cube, layer, period, measure)
    agencies = list(cube.agencies)
    base = wide[["area_code", "area_name", *agencies]].copy()
    base["total"] = base[agencies].sum(axis=1, min_count=1)
    pop = population if population is not None else pd.Series(dtype="float64")
    base["children_population"] = base["area_code"].map(pop).astype("float64")
    linked = spans.has_linkage(con)
    if keys is None and published is None:
        comp = completeness(con, layer, basis="encounter", by="none")
        comp = comp[comp["area_code"] != "(unplaced)"].set_index("area_code")
        base["encounters"] = base["area_code"].map(comp["encounters"]).fillna(0).astype("float64")
        base["valid_nhs"] = (base["area_code"].map(comp["valid_nhs_pct"]) / 100 * base["encounters"]).round()
        base["name_dob"] = (base["area_code"].map(comp["name_dob_pct"]) / 100 * base["encounters"]).round()
        span = (_spans_per_area(con, layer) if span is None else span).set_index("area_code")
        link = _linkage_per_area(con, layer).set_index("area_code")
    else:
        published = published if published is not None else published_counts(con, keys, layer, linked)
        sums, span = published["sums"].set_index("area_code"), published["span"].set_index("area_code")
        for column in RECORD_MEASURES:
            base[column] = base["area_code"].map(sums[column]).fillna(0).astype("float64")
        link = sums[list(LINKED_MEASURES)] if linked else pd.DataFrame(columns=list(LINKED_MEASURES))
    for column, frame in (("children", span), ("spanning", span), ("identifiable", link), ("linked", link)):
        base[column] = base["area_code"].map(frame[column]).fillna(0).astype("float64") if len(frame) else np.nan
    if a in agencies and b in agencies:
        table = dv.divergence_table(cube, layer, period, a, b, measure)
        base["verdict"] = base["area_code"].map(table.set_index("area_code")["verdict"]).fillna("no cases")
    else:
        base["verdict"] = "not available"
    base = base.reset_index(drop=True)
    if measure in service.DISTINCT:  # children are not additive across areas: England and Wales is its own cell
        national = (service.national_children(con, period, keys) if published is None or "national" not in published
                    else service.national_period(published["national"], period)).set_index("agency_type")
        base.attrs["national"] = {agency: float(national[measure].get(agency, 0)) for agency in agencies}
    return base


def published_counts(con, keys: dict, layer: str, linked: bool, *, national: bool = False) -> dict:
    """The counts ``area_base`` reads from record-level tables below the lead, published: ``sums``
    (``published_sums``) and ``span`` (``published_span``; empty when not linked); with ``national`` also
    ``national``, England and Wales's children cells of every period (``service.national_children_cells``).
    The stored measures keep the same frames (``lib.measures.aggregates.view_frames``)."""
    atoms = service.record_atoms(con, keys, published_measures(linked), linked_sizes=linked)
    out = {"sums": published_sums(atoms, layer, linked),
           "span": published_span(spans.child_keys(con, spans.child_table(con, layer))) if linked else empty_span()}
    if national:
        out["national"] = service.national_children_cells(con, keys)
    return out


def published_sums(atoms: pd.DataFrame, layer: str, linked: bool) -> pd.DataFrame:
    """Published records per area of ``layer`` (area_code, encounters, valid_nhs, name_dob and, linked,
    identifiable and linked) from the store's ``service.record_atoms`` of ``published_measures(linked)``
    (the same atoms for every layer)."""
    return service.sum_record_atoms(atoms, layer, published_measures(linked))


def published_span(children: pd.DataFrame, atoms: pd.DataFrame | None = None) -> pd.DataFrame:
    """Published resident linked children per home area (area_code, children, spanning) from
    ``spans.child_table`` of the layer keyed by ``spans.child_keys`` (record keys and home atoms): each count
    the sum of its home atoms' perturbed counts (lib.disclosure.residents), Across's values for the same area.
    ``atoms``: ``spans.resident_atoms`` of the children when already computed (the same for every layer)."""
    kids = children.dropna(subset=["home_area"])
    table = residents.area_counts(kids, "home_area", {"children": None, "spanning": "spans_any"}, atoms=atoms)
    return table.rename(columns={"home_area": "area_code"}).astype({"children": "float64", "spanning": "float64"})


def empty_span() -> pd.DataFrame:
    """``published_span`` of a store without linkage (no child: the page shows no figure)."""
    return pd.DataFrame({"area_code": pd.Series(dtype="str"), "children": pd.Series(dtype="float64"),
                         "spanning": pd.Series(dtype="float64")})


def published_measures(linked: bool) -> dict[str, str]:
    """The record measures ``area_base`` publishes (name -> SQL condition), linkage's with a linked store."""
    return {**RECORD_MEASURES, **(LINKED_MEASURES if linked else {})}


def count_columns(base: pd.DataFrame) -> list[str]:
    return ["total", "encounters", "valid_nhs", "name_dob", "children", "spanning", "identifiable", "linked",
            *[c for c in base.columns if c in dv.AGENCIES]]


def indicators(base: pd.DataFrame, a: str = "police", b: str = "children_social_care") -> pd.DataFrame:
    """Derived figures per row of ``area_base`` (or of an aggregate): ``rate_<agency>``, ``share_a``,
    ``valid_nhs_pct``, ``name_dob_pct``, ``spanning_pct``, ``linkage_pct``."""
    out = base.copy()
    per = out["children_population"].where(out["children_population"] > 0)
    for agency in [c for c in base.columns if c in dv.AGENCIES]:
        out[f"rate_{agency}"] = out[agency] / per * 10_000
    if a in out.columns and b in out.columns:
        both = (out[a] + out[b]).where(lambda s: s > 0)
        out["share_a"] = out[a] / both * 100
    else:
        out["share_a"] = np.nan

    def pct(num: str, den: str) -> pd.Series:
        return (out[num] / out[den].where(out[den] > 0) * 100).astype("float64")

    out["valid_nhs_pct"] = pct("valid_nhs", "encounters")
    out["name_dob_pct"] = pct("name_dob", "encounters")
    out["spanning_pct"] = pct("spanning", "children")
    out["linkage_pct"] = pct("linked", "identifiable")
    return out


def derived_sources(base: pd.DataFrame, a: str = "police", b: str = "children_social_care") -> dict:
    """Each derived column → the counts it is computed from (for suppression)."""
    agencies = [c for c in base.columns if c in dv.AGENCIES]
    sources = {f"rate_{x}": x for x in agencies}
    sources.update({"share_a": [x for x in (a, b) if x in agencies] or ["total"],
                    "valid_nhs_pct": ["encounters", "valid_nhs"], "name_dob_pct": ["encounters", "name_dob"],
                    "spanning_pct": ["children", "spanning"], "linkage_pct": ["identifiable", "linked"]})
    return sources


def aggregate(base: pd.DataFrame, codes, name: str) -> pd.DataFrame:
    """One row summing the numerators and denominators of the areas ``codes``."""
    rows = base[base["area_code"].isin(list(codes))]
    sums = rows[[*count_columns(base), "children_population"]].sum(min_count=1)
    row = pd.DataFrame([sums])
    row.insert(0, "area_code", name)
    row.insert(1, "area_name", name)
    row["verdict"] = "—"
    return row


def national_row(base: pd.DataFrame) -> pd.DataFrame:
    """The England and Wales row: sums of the areas' counts, except distinct children per agency, which are the
    national cell's own (``area_base`` puts them in ``base.attrs["national"]``): a child seen in two areas is one
    child in England and Wales, whichever layer the areas are on."""
    row = aggregate(base, base["area_code"], NATIONAL)
    national = base.attrs.get("national")
    if national:
        for agency, value in national.items():
            row[agency] = value
        agencies = [c for c in base.columns if c in dv.AGENCIES]
        row["total"] = row[agencies].sum(axis=1, min_count=1)
    return row


def hidden_mask(base: pd.DataFrame, suppressed: bool, a: str = "police", b: str = "children_social_care"
                ) -> pd.DataFrame:
    """Per area (plus a last row for England and Wales) and count/derived column: True where hidden when
    aggregates are ``suppressed`` (all False otherwise). Suppression runs on all areas at once with the
    national total row."""
    full = pd.concat([base, national_row(base)], ignore_index=True)
    full.index = [*base["area_code"], NATIONAL]
    derived = indicators(full, a, b)
    columns = [*count_columns(base), *derived_sources(base, a, b)]
    if not _suppressed(suppressed):
        return pd.DataFrame(False, index=full.index, columns=columns)
    agencies = [c for c in base.columns if c in dv.AGENCIES]
    sources = derived_sources(base, a, b)
    shown = suppress(derived, agencies, total_row=NATIONAL, total_column="total", keep=[a, b])
    mask = shown[[*agencies, "total"]] == SUPPRESSED
    for column in ("encounters", "valid_nhs", "name_dob", "children", "spanning", "identifiable", "linked"):
        one = suppress(derived, [column], total_row=NATIONAL)
        mask[column] = one[column] == SUPPRESSED
    for column, src in sources.items():
        src = [src] if isinstance(src, str) else list(src)
        mask[column] = mask[src].any(axis=1)
    return mask[columns].astype(bool)


# -- comparator groups ----------------------------------------------------------------------------------

def standardised(base: pd.DataFrame, a: str = "police", b: str = "children_social_care") -> pd.DataFrame:
    """The indicators used for similarity, as z-scores over the layer's areas (missing = 0, the mean)."""
    values = indicators(base, a, b).set_index("area_code")
    columns = [c for c in [*[f"rate_{x}" for x in base.columns if x in dv.AGENCIES], "share_a", "valid_nhs_pct",
                           "name_dob_pct", "spanning_pct", "linkage_pct"] if values[c].notna().sum() > 1]
    frame = values[columns].astype("float64")
    spread = frame.std(ddof=0).replace(0, np.nan)
    z = ((frame - frame.mean()) / spread).fillna(0.0)
    return z


INDICATOR_LABELS = {"share_a": "agency A's share of A + B", "valid_nhs_pct": "valid NHS number %",
                    "name_dob_pct": "name and date of birth %", "spanning_pct": "children spanning boundaries %",
                    "linkage_pct": "linkage rate"}


def indicator_label(column: str) -> str:
    if column.startswith("rate_"):
        return f"{dv.agency_title(column[5:]).lower()} rate per 10,000 children"
    return INDICATOR_LABELS.get(column, column)


def nearest_neighbours(base: pd.DataFrame, focus: str, k: int = NEIGHBOURS, exclude=(), a: str = "police",
                       b: str = "children_social_care") -> tuple[pd.DataFrame, str]:
    """The ``k`` areas closest to ``focus`` on standardised indicators, and a plain-English explanation.

    Returns (DataFrame[area_code, area_name, distance, closest_on], explanation)."""
    z = standardised(base, a, b)
    if focus not in z.index:
        raise ValueError(f"unknown area {focus!r}")
    diff = z.sub(z.loc[focus], axis=1)
    distance = np.sqrt((diff ** 2).mean(axis=1))
    candidates = distance.drop(index=[focus, *[c for c in exclude if c in distance.index]], errors="ignore")
    has_data = base.set_index("area_code")["encounters"].reindex(candidates.index).fillna(0) > 0
    chosen = candidates[has_data].nsmallest(k)
    names = base.set_index("area_code")["area_name"]
    closest = [", ".join(indicator_label(c) for c in diff.loc[code].abs().nsmallest(2).index) for code in chosen.index]
    table = pd.DataFrame({"area_code": chosen.index.astype("str"), "area_name": names.reindex(chosen.index).to_numpy(),
                          "distance": chosen.round(2).to_numpy(), "closest_on": closest})
    used = ", ".join(indicator_label(c) for c in z.columns)
    explanation = (
        f"The comparator group is the {len(table)} areas most similar to {names.get(focus, focus)} on this "
        f"product's own indicators ({used}). Each indicator is standardised across all {len(z)} areas "
        "(its difference from the average, in standard deviations) so that none dominates, and areas are "
        "ranked by their average squared distance from it (root-mean-square). Distance 0 is identical; "
        "about 1 is as different as a typical area is from the average.")
    return table, explanation


@lru_cache(maxsize=16)
def _shapes(layer: str):
    features = layer_geojson(convert.layer_key(layer))["features"]
    codes = [f["id"] for f in features]
    geoms = [shapely.geometry.shape(f["geometry"]) for f in features]
    return codes, geoms, shapely.STRtree(geoms)


def adjacent_areas(layer: str, code: str, limit: int = MAX_AREAS - 1) -> list[str]:
    """Areas sharing a boundary with ``code`` (longest shared boundary first), at most ``limit``."""
    codes, geoms, tree = _shapes(layer)
    if code not in codes:
        return []
    geom = geoms[codes.index(code)]
    shared = []
    for i in tree.query(geom, predicate="intersects"):
        if codes[i] == code:
            continue
        length = geom.boundary.intersection(geoms[i].boundary).length
        if length > 0:
            shared.append((-length, codes[i]))
    return [c for _, c in sorted(shared)[:limit]]


# -- the side-by-side profile ---------------------------------------------------------------------------

@dataclass
class Profile:
    """What the Compare page and the board pack show (``table`` is display-ready, ``numeric`` for charts)."""
    table: pd.DataFrame          # indicator, label, one column per area, Comparator group, England and Wales
    numeric: pd.DataFrame        # same shape, NaN where hidden
    areas: list[str]             # codes compared, in order
    names: dict[str, str]
    comparator: pd.DataFrame     # area_code, area_name[, distance, closest_on]
    explanation: str
    hidden: int                  # cells hidden by suppression
    suppressed: bool
    notes: list[str] = field(default_factory=list)


def profile(base: pd.DataFrame, areas: list[str], suppressed: bool, *, comparator: list[str] | None = None,
            a: str = "police", b: str = "children_social_care", measure: str = "cse_records",
            mask: pd.DataFrame | None = None) -> Profile:
    """Side-by-side profile of 1–6 ``areas``; comparator = ``comparator`` codes, or else the nearest
    neighbours of the first area (excluding the areas compared). ``suppressed``: aggregates are suppressed
    for the viewer (``lib.access.roles.aggregates_suppressed(role)``)."""
    suppressed = _suppressed(suppressed)
    if not areas:
        raise ValueError("choose at least one area")
    if len(areas) > MAX_AREAS:
        raise ValueError(f"compare at most {MAX_AREAS} areas")
    names = dict(zip(base["area_code"], base["area_name"]))
    unknown = [c for c in areas if c not in names]
    if unknown:
        raise ValueError(f"unknown area code(s): {', '.join(unknown)}")
    if comparator:
        group = pd.DataFrame({"area_code": comparator, "area_name": [names.get(c, c) for c in comparator]})
        explanation = (f"The comparator group is user-defined: {', '.join(group['area_name'])}. Its figures are "
                       "computed from the group's summed counts and populations.")
    else:
        group, explanation = nearest_neighbours(base, areas[0], exclude=areas, a=a, b=b)
    mask = hidden_mask(base, suppressed, a, b) if mask is None else mask
    rows = pd.concat([base[base["area_code"].isin(areas)].set_index("area_code").loc[areas].reset_index(),
                      aggregate(base, group["area_code"], COMPARATOR),
                      national_row(base)], ignore_index=True)
    values = indicators(rows, a, b)
    values.index = [*areas, COMPARATOR, NATIONAL]
    row_mask = _row_mask(base, mask, values, list(group["area_code"]), areas, suppressed, a, b)
    columns = [*[names[c] for c in areas], COMPARATOR, NATIONAL]
    display, numeric_rows, hidden = _cells(_indicator_spec(base, a, b, measure), values, row_mask, columns)
    notes = ["Counts are placed where each encounter happened (direct basis); completeness, spans and the "
             "linkage rate cover all periods.", population.source_label()]
    if suppressed:
        notes.append(NOTE)
    return Profile(table=pd.DataFrame(display), numeric=pd.DataFrame(numeric_rows), areas=list(areas),
                   names={c: names[c] for c in areas}, comparator=group, explanation=explanation, hidden=hidden,
                   suppressed=suppressed, notes=notes)


def _row_mask(base: pd.DataFrame, mask: pd.DataFrame, values: pd.DataFrame, members: list[str], areas: list[str],
              suppressed: bool, a: str, b: str) -> pd.DataFrame:
    """Which cells of ``values`` are hidden: each area's and the nation's own, and the comparator group's
    wherever a member's cell is hidden or (suppressed) the group's own count is small, with what derives from it."""
    row_mask = mask.reindex([*areas, NATIONAL]).copy()
    member_mask = mask.reindex(members).fillna(False)
    comp_row = member_mask.any(axis=0) if len(member_mask) else pd.Series(False, index=mask.columns)
    if suppressed:  # the group's own small counts, and anything derived from them
        small = suppress(values.loc[[COMPARATOR]], [c for c in count_columns(base)])
        for column in count_columns(base):
            comp_row[column] = bool(comp_row[column]) or small[column].iat[0] == SUPPRESSED
        for column, src in derived_sources(base, a, b).items():
            src = [src] if isinstance(src, str) else list(src)
            comp_row[column] = bool(comp_row[column]) or bool(comp_row[src].any())
    row_mask.loc[COMPARATOR] = comp_row
    return row_mask.reindex(values.index).astype(bool)


def _indicator_spec(base: pd.DataFrame, a: str, b: str, measure: str) -> list[tuple[str, str, str]]:
    """(key, label, kind) of each profile row, in order: counts and rates of the agencies present, divergence
    when both compared agencies are, then identifier completeness, spans and linkage."""
    agencies = [c for c in base.columns if c in dv.AGENCIES]
    noun = dv.NOUN.get(measure, measure)
    spec = [(x, f"{dv.agency_title(x)}: {noun}", "count") for x in agencies]
    spec += [(f"rate_{x}", f"{dv.agency_title(x)}: {noun} {population.rate_label()}", "rate") for x in agencies]
    if a in agencies and b in agencies:
        spec += [("share_a", f"Divergence: {dv.agency_title(a)} share of {dv.agency_title(a)} + "
                             f"{dv.agency_title(b)} (%)", "pct"),
                 ("verdict", "Divergence: funnel verdict (95% / 99.8% limits)", "text")]
    spec += [("valid_nhs_pct", "Identifier completeness: valid NHS number (% of records)", "pct"),
             ("name_dob_pct", "Identifier completeness: name and date of birth (% of records)", "pct"),
             ("spanning_pct", "Children spanning boundaries (% of resident linked children)", "pct"),
             ("linkage_pct", "Linkage rate (% of identifiable records joined to another)", "pct")]
    return spec


def _cells(spec: list[tuple[str, str, str]], values: pd.DataFrame, row_mask: pd.DataFrame,
           columns: list[str]) -> tuple[list[dict], list[dict], int]:
    """The displayed rows (formatted text, SUPPRESSED where hidden), the numeric rows (NaN where hidden or
    missing) and how many cells were hidden."""
    display, numeric_rows = [], []
    hidden = 0
    for key, label, kind in spec:
        shown, nums = {"indicator": key, "label": label}, {"indicator": key, "label": label}
        for code, column in zip(values.index, columns):
            value = values.at[code, key]
            is_hidden = key in row_mask.columns and bool(row_mask.at[code, key])
            if kind == "text":
                shown[column], nums[column] = value, value
                continue
            if is_hidden:
                hidden += 1
                shown[column], nums[column] = SUPPRESSED, np.nan
            elif pd.isna(value):
                shown[column], nums[column] = "", np.nan
            else:
                nums[column] = float(value)
                shown[column] = (f"{value:,.0f}" if kind == "count" and abs(value - round(value)) < 1e-9 else
                                 f"{value:,.1f}")
        display.append(shown)
        numeric_rows.append(nums)
    return display, numeric_rows, hidden


def describe(prof: Profile) -> str:
    """A plain-English reading of the profile: each area's agency-A share against the comparator and
    national figures, where visible."""
    row = prof.numeric.set_index("indicator")
    if "share_a" not in row.index:
        return "Two agencies are needed to compare their counts."
    share = row.loc["share_a"]
    national, group = share.get(NATIONAL), share.get(COMPARATOR)
    parts = []
    for code in prof.areas:
        name = prof.names[code]
        value = share.get(name)
        if value is None or pd.isna(value):
            parts.append(f"{name}: hidden (small numbers) or no cases")
            continue
        against = []
        for label, ref in (("the comparator group", group), ("England and Wales", national)):
            if ref is not None and not pd.isna(ref):
                diff = value - ref
                points = f"{abs(diff):.0f} point{'' if round(abs(diff)) == 1 else 's'}"
                against.append(f"{points} {'above' if diff >= 0 else 'below'} {label}"
                               if abs(diff) >= 0.5 else f"level with {label}")
        parts.append(f"{name} {value:.0f}% ({'; '.join(against)})")
    label = prof.table.set_index("indicator").loc["share_a", "label"].split(": ", 1)[1].replace(" (%)", "")
    return f"{label}: " + ", ".join(parts) + "."
