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
from lib.disclosure.notes import method_note
from lib.geo import agencies, layers, lookup, maps
from lib.measures import aggregates
from lib.records import schema, store
from lib.views.base import PageData, Param, Source, Table, source_of

PAGE = "data"
TITLE = "Data"
INTRO = ("Load agency extracts (CSV, Excel or Parquet). Each file is checked row by row, placed in every "
         "geography and pseudonymised before anything is stored: names, NHS numbers, dates of birth and "
         "postcodes are kept only as keyed hashes. You see what will be stored, and what will not, first.")
MIN_ENCOUNTERS = 6  # areas with fewer encounters than this show no percentages (small numbers)
AGENCY_LABELS = agencies.LABELS
BASIS_LABELS = {"either": "Home, else where it happened", "home": "Home postcode", "encounter": "Where it happened"}
#: Drawn layers whose areas are whole unions of the published atoms (``layers.on_measure_atoms``: not sub-ICB
#: locations, which would publish the same records twice, differently perturbed): a live view of the registry.
LAYER_CHOICES = layers.view(lambda layer: layer.drawn and layer.key in store.COMPLETENESS_LAYERS
                            and layers.on_measure_atoms(layer.key))
AGENCY_CHOICES = ("all", *schema.AGENCY_TYPES)
SHARES = ("valid_nhs_pct", "name_dob_pct", "anonymous_pct")
#: The counts behind each share (records with a valid NHS number, with name and date of birth, anonymous).
SHARE_COUNTS = {"valid_nhs_pct": "valid_nhs", "name_dob_pct": "name_dob", "anonymous_pct": "anonymous"}
_FLAGS = aggregates.COMPLETENESS_FLAGS
_place = aggregates.place  # SQL placing an encounter in a layer on a basis

PARAMS: dict[str, Param] = {
    "layer": Param("utla", LAYER_CHOICES, help="completeness: areas of this layer"),
    "basis": Param("either", tuple(BASIS_LABELS), help="completeness: place each contact by home, encounter or "
                                                       "either"),
    "agency": Param("all", AGENCY_CHOICES, help="completeness: one agency type, or all"),
}


def atom_counts(con, layer: str, basis: str, keys: dict) -> pd.DataFrame:
    """Record counts of the completeness table on atoms, published (docs/DISCLOSURE.md, records are additive).

    An atom is a distinct combination of the encounter's place in every measure layer (and ``layer``), on
    ``basis``, per agency type and financial year: the atoms of lib.disclosure.service for ``basis='encounter'``,
    so an area's published records here equal its published records on Compare. Each atom's counts
    (``encounters`` and the ``SHARE_COUNTS``) are perturbed with the cell key of their records; areas are sums.
    Columns: agency_type, area_code (NULL where unplaced), encounters, valid_nhs, name_dob, anonymous.
    (lib.measures.aggregates computes it; every write stores it for every layer and basis.)"""
    placed = aggregates.completeness_placed(layer)
    return aggregates.completeness_by_area(aggregates.completeness_atoms(con, placed, basis, keys), placed, layer)


def _stored_or(kept, compute):
    return kept if kept is not None else compute()


def _published_table(src: Source, layer: str, basis: str, agency: str) -> pd.DataFrame:
    """The completeness table as published below the lead: same columns as lib.records.store.completeness
    (by agency type or all agencies), percentages computed from the published counts."""
    atoms = src.memo.get(("data.completeness", layer, basis),
                         lambda: _stored_or(src.stored("data.completeness", layer, basis),
                                            lambda: atom_counts(src.con, layer, basis, src.keys())))
    by = ["area_code"] if agency == "all" else ["agency_type", "area_code"]
    table = atoms.groupby(by, dropna=False, as_index=False)[["encounters", *_FLAGS]].sum()
    table["area_code"] = table["area_code"].fillna("(unplaced)").astype("str")
    table = table[table["encounters"] > 0].sort_values(by).reset_index(drop=True)
    for share, count in SHARE_COUNTS.items():
        # each count is perturbed on its own, so a published part can exceed its published whole: a share is
        # shown within 0-100% (docs/DISCLOSURE.md, the method, item 6)
        table[share] = (100.0 * table[count] / table["encounters"]).clip(0.0, 100.0).round(1)
    names = _area_names(layer)
    table.insert(table.columns.get_loc("area_code") + 1, "area_name",
                 table["area_code"].map(names).fillna(table["area_code"]).astype("str"))
    return table[[*by[:-1], "area_code", "area_name", "encounters", *SHARES]]


def _area_names(layer: str) -> dict[str, str]:
    return lookup.name_of(layer)


def _protect(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The completeness table and the rows the map may draw. Areas with fewer than MIN_ENCOUNTERS contacts
    show no percentages (for aggregate-only roles the table is already published: lib.disclosure)."""
    shown = table.copy()
    small = shown["encounters"] < MIN_ENCOUNTERS
    for column in SHARES:
        shown[column] = shown[column].where(~small)
    drawable = (shown["area_code"] != "(unplaced)") & ~small
    return shown, shown[drawable]


def _completeness(src: Source, params: dict, role: str, data: PageData) -> None:
    slots = data.extra["slots"]
    slots["completeness"] = ["How ready each agency's records are for a unique child identifier: the share with a "
                             "valid NHS number, with name and date of birth, and anonymous contacts (no identifier "
                             "at all)."]
    data.sentences += slots["completeness"]
    layer, agency = params["layer"], params["agency"]
    if src.data_version().startswith("0:"):  # nothing stored (and no key to perturb with yet)
        table = pd.DataFrame({"agency_type": pd.Series(dtype="str")})
    elif aggregates_suppressed(role):
        table = _published_table(src, layer, params["basis"], agency)
    else:
        table = store.completeness(src.con, layer, basis=params["basis"],
                                   by="none" if agency == "all" else "agency_type")
    if agency != "all":
        table = table[table["agency_type"] == agency].drop(columns="agency_type")
    if table.empty:
        slots["completeness_empty"] = ["No records stored for this choice yet."]
        data.extra["info"] += slots["completeness_empty"]
        return
    shown, mapped = _protect(table.reset_index(drop=True))
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
    data.note("disclosure", method_note(aggregates_suppressed(role)))
    slots["disclosure"] = [data.notes[-1]]


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
    _completeness(src, params, role, data)
    return data
