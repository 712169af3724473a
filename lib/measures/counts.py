"""Per-agency counts on a common geography, by layer and period, computed once per store version.

Definitions (the page, the CLI and the tests rely on them):

- **Measures**: ``cse_records`` — CSE-flagged encounter records (anonymous contacts included: they are
  records); ``cse_children`` — distinct linked children (``record_child.child_id``) with at least one
  CSE-flagged record (anonymous contacts are never linked, so never counted here). ``records`` and
  ``children`` are the same without the CSE filter. A child seen by one agency in two areas counts in
  both, so area counts of children need not add up to a national count of children.
- **Periods**: financial years (April–March, ``"2023-24"``, as DfE publishes) and their quarters
  (``"2023-24 Q1"`` = April–June 2023), plus ``"all"``. Quarters nest in years.
- **Direct basis**: each record is placed by its own encounter location, ``enc_<layer>``. This is what
  "aligned on a common geography" means for encounter-level data.
- **Native basis**: each record is attributed to its agency's own area (``agency_code``) on the agency's
  native geography (``NATIVE_LAYER``: police → force area, children's social care and education →
  children's services authority, health → trust catchment), as a published aggregate would be, then
  converted to the chosen layer with ``lib.measures.convert`` (summed where native areas nest in it,
  apportioned by postcode weights where they do not; such rows are flagged ``apportioned``). Agencies
  without a native geography (``other``) use the direct basis. Records whose ``agency_code`` is not an
  area of the native layer cannot be converted and are reported in ``MeasureCube.unplaced_native``.

``build_cube`` runs one DuckDB group-by per layer (GROUPING SETS over quarter, year and all periods), so
switching layer or period afterwards is a filter on a small in-memory table.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from lib.geo import agencies as agency_registry
from lib.geo.layers import REGISTRY as LAYER_REGISTRY
from lib.measures import convert
from lib.records import aggregates as stored_aggregates
from lib.records.store import cursor, query

AGENCIES: dict[str, str] = agency_registry.LABELS  # the agency registry (lib.geo.agencies)
#: The geography each agency records on (its ``agency_code``).
NATIVE_LAYER: dict[str, str] = agency_registry.NATIVE_LAYER
MEASURES: dict[str, str] = {"cse_records": "CSE-flagged records", "cse_children": "distinct children (CSE)",
                            "records": "all records", "children": "distinct children (all)"}
VALUE_COLUMNS = ["records", "cse_records", "children", "cse_children"]

_FY = "(year(e.encounter_date) - CASE WHEN month(e.encounter_date) < 4 THEN 1 ELSE 0 END)"
_YEAR = f"(CAST({_FY} AS VARCHAR) || '-' || lpad(CAST(({_FY} + 1) % 100 AS VARCHAR), 2, '0'))"
_QUARTER = f"({_YEAR} || ' Q' || CAST((month(e.encounter_date) + 8) % 12 // 3 + 1 AS VARCHAR))"


def period_label(period: str) -> str:
    if period == "all":
        return "all periods"
    if " Q" in period:
        year, quarter = period.split(" Q")
        months = {"1": "Apr–Jun", "2": "Jul–Sep", "3": "Oct–Dec", "4": "Jan–Mar"}[quarter]
        return f"{year} Q{quarter} ({months})"
    return f"financial year {period}"


def _has_table(con, name: str) -> bool:
    with cursor(con) as cur:
        return bool(cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                                [name]).fetchall()[0][0])


def _grouped(con, area_sql: str, linked: bool, where: str = "", params=None) -> pd.DataFrame:
    """Counts by agency, area (an SQL expression) and period, for every period granularity at once: the SQL of
    the stored aggregates (``lib.records.aggregates.grouped_sql``, one text for DuckDB and Spark)."""
    frame = query(con, stored_aggregates.grouped_sql(area_sql, linked, where), params)
    for column in VALUE_COLUMNS:
        frame[column] = frame[column].astype("float64")
    return frame


@dataclass
class MeasureCube:
    """Every per-agency count the Divergence page and CLI need, for every layer and period."""
    counts: pd.DataFrame  # layer, basis, granularity, period, agency_type, area_code, VALUE_COLUMNS, apportioned
    linked: bool
    unplaced_native: pd.DataFrame  # agency_type, agency_code, records: native code not an area of its layer
    periods: list[str] = field(default_factory=list)
    agencies: list[str] = field(default_factory=list)
    seconds: float = 0.0
    _slices: dict | None = field(default=None, repr=False)

    def slice(self, layer: str, period: str = "all", basis: str = "direct") -> pd.DataFrame:
        """Rows of one layer, period and basis (long: one row per agency and area)."""
        layer = convert.layer_key(layer)
        if self._slices is None:  # one pass: later switches of layer or period are dictionary look-ups
            self._slices = {key: part for key, part in self.counts.groupby(["layer", "period", "basis"], sort=False)}
        empty = self.counts.iloc[0:0]
        return self._slices.get((layer, period, basis), empty)


def build_cube(con: duckdb.DuckDBPyConnection, layers=None) -> MeasureCube:
    """Compute all per-agency counts (direct and native basis) for ``layers`` (default: every measure layer of
    the registry) and every period, from the record-level tables. Pages read the same cube stored by every
    write (``lib.measures.aggregates.cube``); this is the from-scratch count it must equal."""
    started = time.perf_counter()
    layers = tuple(convert.MEASURE_LAYERS) if layers is None else tuple(layers)
    linked = _has_table(con, "record_child")
    direct = {}
    for layer in layers:
        layer = convert.layer_key(layer)
        direct[layer] = _grouped(con, f"e.enc_{LAYER_REGISTRY[layer].stored_key}", linked)
    natives = {}
    for agency, native in NATIVE_LAYER.items():
        natives.setdefault(native, []).append(agency)
    native_frames = {native: _grouped(con, "e.agency_code", linked,
                                      "AND e.agency_type IN (" + ", ".join("?" * len(agencies)) + ")", agencies)
                     for native, agencies in natives.items()}
    return assemble(direct, native_frames, linked, layers, started)


def assemble(direct: dict[str, pd.DataFrame], native_frames: dict[str, pd.DataFrame], linked: bool, layers,
             started: float) -> MeasureCube:
    """The cube from grouped counts (columns of ``_grouped``): ``direct`` by layer (areas of the encounter), and
    ``native_frames`` by native layer (areas = the agencies' own codes), converted here to every layer."""
    parts = []
    for layer in layers:
        layer = convert.layer_key(layer)
        frame = direct[layer].copy()
        frame["apportioned"] = False
        parts.append(frame.assign(layer=layer, basis="direct"))
    unplaced = []
    for layer in layers:
        layer = convert.layer_key(layer)
        for native, frame in native_frames.items():
            converted, missing = convert.convert(frame, native, layer, VALUE_COLUMNS,
                                                 by=["agency_type", "granularity", "period"])
            parts.append(converted.drop(columns=["sources"]).assign(layer=layer, basis="native"))
            if layer == convert.layer_key(layers[0]) and not missing.empty:
                unplaced.append(missing[missing["granularity"] == "all"][["agency_type", "area_code", "records"]])
    counts = pd.concat(parts, ignore_index=True)
    # Agencies with no native geography (``other``): native basis = direct basis.
    direct_other = counts[(counts["basis"] == "direct") & ~counts["agency_type"].isin(list(NATIVE_LAYER))]
    if not direct_other.empty:
        counts = pd.concat([counts, direct_other.assign(basis="native")], ignore_index=True)
    unplaced_frame = (pd.concat(unplaced, ignore_index=True).rename(columns={"area_code": "agency_code"})
                      if unplaced else None)
    return finish(counts, unplaced_frame, linked, started)


def finish(counts: pd.DataFrame, unplaced: pd.DataFrame | None, linked: bool, started: float) -> MeasureCube:
    """The cube of assembled rows (``assemble``'s, or the same rows as stored by ``lib.measures.aggregates``):
    key columns as text, the periods in order and the agencies present."""
    for column in ("layer", "basis", "granularity", "period", "agency_type", "area_code"):
        counts[column] = counts[column].astype("str")
    for column in VALUE_COLUMNS:
        counts[column] = counts[column].astype("float64")
    counts["apportioned"] = counts["apportioned"].astype("bool")
    unplaced_frame = (unplaced.reset_index(drop=True) if unplaced is not None
                      else pd.DataFrame({"agency_type": pd.Series(dtype="str"),
                                         "agency_code": pd.Series(dtype="str"),
                                         "records": pd.Series(dtype="float64")}))
    periods = sorted(set(counts["period"]) - {"all"}, key=lambda p: (p[:7], len(p), p))
    present = set(counts["agency_type"])  # once (inside the comprehension it was rebuilt per agency)
    agencies = [a for a in AGENCIES if a in present]
    return MeasureCube(counts=counts, linked=linked, unplaced_native=unplaced_frame,
                       periods=["all", *periods], agencies=agencies,
                       seconds=round(time.perf_counter() - started, 3))


def agency_counts(cube: MeasureCube, layer: str, period: str = "all", measure: str = "cse_records",
                  basis: str = "direct", agencies: list[str] | None = None) -> pd.DataFrame:
    """One row per area of ``layer`` (every area with LSOAs, zeros where none): ``area_code``,
    ``area_name``, one column per agency (the chosen measure), ``apportioned`` (any agency's figure
    came through apportioning; native basis only; only ``agencies`` if given)."""
    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r}; choose from {', '.join(MEASURES)}")
    layer = convert.layer_key(layer)
    rows = cube.slice(layer, period, basis)
    wide = rows.pivot_table(index="area_code", columns="agency_type", values=measure, aggfunc="sum")
    flagged = rows if agencies is None else rows[rows["agency_type"].isin(list(agencies))]
    flags = flagged.groupby("area_code")["apportioned"].any()
    codes = sorted(set(convert.area_codes(layer)) | set(wide.index))
    names = convert.area_names(layer)
    out = pd.DataFrame({"area_code": pd.Series(codes, dtype="str")})
    out["area_name"] = out["area_code"].map(names).fillna(out["area_code"]).astype("str")
    for agency in cube.agencies:
        values = wide[agency] if agency in wide.columns else pd.Series(dtype="float64")
        out[agency] = out["area_code"].map(values).astype("float64")
        if cube.linked or measure in ("records", "cse_records"):
            out[agency] = out[agency].fillna(0.0)
    out["apportioned"] = out["area_code"].map(flags).fillna(False).astype("bool")
    return out
