"""View builder of the Data page (url_path ``data``, analysts): the extract schema and its checks, the blank
template, and identifier completeness by agency and area (map and table, protected for the role).

The upload flow (file → validation summary → store) stays in the page: what it shows is the file being
uploaded, not the store, and it writes through lib.records.versions.write. Everything the page shows from
the store comes from here. ``python -m lib.cli view data --role analyst --param layer=pfa ...`` writes
the same object. Texts by slot in ``extra["slots"]``, as in lib.views.across.
"""
from __future__ import annotations

import pandas as pd

from lib.access.roles import aggregates_suppressed
from lib.access.views import aggregate_view, visible_rows
from lib.geo import maps
from lib.geo.layers import LAYERS
from lib.measures.suppression import is_small
from lib.records import schema, store
from lib.views.base import PageData, Param, Table, source_of

PAGE = "data"
TITLE = "Data"
INTRO = ("Load agency extracts (CSV, Excel or Parquet). Each file is checked row by row, placed in every "
         "geography and pseudonymised before anything is stored: names, NHS numbers, dates of birth and "
         "postcodes are kept only as keyed hashes. You see what will be stored, and what will not, first.")
MIN_ENCOUNTERS = 6  # areas with fewer encounters than this show no percentages (small numbers)
AGENCY_LABELS = {"police": "Police", "children_social_care": "Children's social care", "health": "Health",
                 "education": "Education", "other": "Other"}
BASIS_LABELS = {"either": "Home, else where it happened", "home": "Home postcode", "encounter": "Where it happened"}
LAYER_CHOICES = tuple(k for k in LAYERS if k in store.COMPLETENESS_LAYERS)
AGENCY_CHOICES = ("all", *schema.AGENCY_TYPES)
SHARES = ("valid_nhs_pct", "name_dob_pct", "anonymous_pct")

PARAMS: dict[str, Param] = {
    "layer": Param("utla", LAYER_CHOICES, help="completeness: areas of this layer"),
    "basis": Param("either", tuple(BASIS_LABELS), help="completeness: place each contact by home, encounter or "
                                                       "either"),
    "agency": Param("all", AGENCY_CHOICES, help="completeness: one agency type, or all"),
}


def _protect(table: pd.DataFrame, role: str) -> tuple[pd.DataFrame, pd.Series]:
    """The completeness table for ``role`` and which rows the map may draw (one place: issue 16's disclosure
    service replaces it). Areas with fewer than MIN_ENCOUNTERS contacts show no percentages; for aggregate-only
    roles contacts 1-5 are c, and a share is hidden where share × contacts gives back a count of 1-5."""
    shown = table.copy()
    small = shown["encounters"] < MIN_ENCOUNTERS
    aggregate = aggregates_suppressed(role)
    for column in SHARES:
        shown[column] = shown[column].where(~small)
        if aggregate:  # a share times its shown denominator gives its count back: hide it where that count is 1-5
            numerator = (shown[column].astype("float64") * shown["encounters"] / 100).round()
            shown[column] = shown[column].where(~is_small(numerator.fillna(0).to_numpy()))
    if aggregate:  # the map's hover shows contacts: only areas whose count the table shows
        visible = visible_rows(shown, aggregate_view(shown, ["encounters"], role=role), ["encounters"])
        small = small | ~shown.index.isin(visible.index)
    drawable = (shown["area_code"] != "(unplaced)") & ~small
    mapped = shown[drawable]
    shown = aggregate_view(shown, ["encounters"], role=role, rates={c: "encounters" for c in SHARES})
    return shown, mapped


def _completeness(con, params: dict, role: str, data: PageData) -> None:
    slots = data.extra["slots"]
    slots["completeness"] = ["How ready each agency's records are for a unique child identifier: the share with a "
                             "valid NHS number, with name and date of birth, and anonymous contacts (no identifier "
                             "at all)."]
    data.sentences += slots["completeness"]
    layer, agency = params["layer"], params["agency"]
    table = store.completeness(con, layer, basis=params["basis"], by="none" if agency == "all" else "agency_type")
    if agency != "all":
        table = table[table["agency_type"] == agency].drop(columns="agency_type")
    if table.empty:
        slots["completeness_empty"] = ["No records stored for this choice yet."]
        data.extra["info"] += slots["completeness_empty"]
        return
    shown, mapped = _protect(table.reset_index(drop=True), role)
    values = dict(zip(mapped["area_code"], mapped["valid_nhs_pct"].astype(float)))
    hover = {r.area_code: f"{r.encounters:,} contacts; name and DOB {r.name_dob_pct}%; anonymous "
                          f"{r.anonymous_pct}%" for r in mapped.itertuples(index=False)}
    data.figures["completeness_map"] = maps.choropleth_figure(layer, values, "Valid NHS number (%)",
                                                                 hover=hover)
    data.tables["completeness"] = Table(
        shown.rename(columns={"area_code": "code", "area_name": "area", "valid_nhs_pct": "valid NHS %",
                              "name_dob_pct": "name + DOB %", "anonymous_pct": "anonymous %"}).reset_index(drop=True),
        title="Identifier completeness")
    slots["completeness_note"] = [(f"Areas with fewer than {MIN_ENCOUNTERS} contacts show no percentages. "
                                  + ("Trust catchments are modelled (NHS trusts have no statutory boundary). "
                                     if layer == "trust" else "")).rstrip()]
    data.notes += slots["completeness_note"]


def build(con_or_store, params: dict, role: str) -> PageData:
    """The Data page's store-derived content for ``params`` (resolved by lib.views.resolve_params)."""
    src = source_of(con_or_store)
    data = PageData(page=PAGE, role=role, params=dict(params), data_version=src.data_version(), title=TITLE,
                    sentences=[INTRO], extra={"slots": {"intro": [INTRO]}, "info": []})
    data.extra["slots"]["schema"] = [
        "Required columns must be present; others may be left out or blank. Common header spellings are "
        "recognised (for example *NHS No*, *DOB*, *First name*, *Postcode*)."]
    data.sentences += data.extra["slots"]["schema"]
    data.tables["schema"] = Table(schema.schema_frame(), title="Extract schema")
    data.tables["template"] = Table(schema.template_frame(), title="Blank template (download)", downloadable=True)
    data.tables["checks"] = Table(schema.checks_frame(), title="Every check and what happens")
    _completeness(src.con, params, role, data)
    return data
