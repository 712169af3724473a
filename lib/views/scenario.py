"""View builder of the scenario explorer ("What if every agency recorded the NHS number?").

``build(con_or_store, params, role)`` runs the scenario (``compute``) and lays it out (``page_data``): the
headline, the summary table, each agency's counts (simulation) or today's measured capture (model), the
curve (figure and table), the gain by area (map and table, published by cell key perturbation for
aggregate-only roles in ONE place: ``protect_areas``, docs/DISCLOSURE.md), and the assumptions.
The page caches ``compute`` (a scenario takes
10-20 s; its progress bar is drawn by the page; the default simulation is computed when the store is written and
read from it, ``lib.scenario.stored``) and renders ``page_data``; ``python -m lib.cli view scenario``
calls ``build``. Both key their caches on ``lib.records.store.data_version`` only (``cache_key``).

Parameters: ``kind`` (simulation on the synthetic population, or a model from the store's measured
completeness), ``encounters`` (the synthetic population), ``levers`` (JSON of
``lib.scenario.capture.Levers.as_dict()``, e.g. ``{"capture": {"police": 1.0}}``), ``layer`` (areas of the
gain), ``curve_agencies`` and ``curve_mode``.
"""
from __future__ import annotations

import json

import pandas as pd

from lib.access.roles import aggregates_suppressed
from lib.disclosure import cells
from lib.disclosure.notes import SMALL_BELOW, method_note
from lib.geo import layers
from lib.geo.agencies import NATIVE_LAYER as AGENCY_NATIVE_LAYER
from lib.records import store
from lib.scenario import scenario as sc
from lib.scenario import stored
from lib.scenario.capture import Levers
from lib.synth.config import AGENCY_TYPES
from lib.views.base import PageData, Param, Source, Table, source_of

PAGE = "scenario"
#: The simulation's own synthetic populations (not the store, nor the app's first-start dataset of 200,000).
POPULATIONS = {stored.ENCOUNTERS: f"{stored.ENCOUNTERS:,} encounters (the page opens on it)",
               5_000: "5,000 encounters (quicker)"}
#: The layers the gain table and map may use -> their labels (a live view of the layer registry).
LAYERS = layers.view(lambda layer: layer.scenario_order > 0, lambda layer: layer.noun[:1].upper() + layer.noun[1:],
                     order=lambda layer: layer.scenario_order)
CURVE_MODES = {"deterministic": "NHS-number pass only (fast, about 1–2 s a point)",
               "full": "Full linkage at every point (about 5 s a point)"}
KINDS = {"simulation": "Simulation on the synthetic population", "model": "Model on your data"}

PARAMS = {
    "kind": Param("simulation", choices=tuple(KINDS), help="simulation (synthetic population) or model (your data)"),
    "encounters": Param(stored.ENCOUNTERS, choices=tuple(POPULATIONS), kind=int, help="synthetic population size"),
    "levers": Param("{}", help='JSON of the levers, e.g. {"capture": {"police": 1.0}, "opt_out": 0.1}'),
    "layer": Param(stored.LAYER, choices=LAYERS, help="areas of the gain table and map"),
    "curve_agencies": Param(None, choices=tuple(AGENCY_TYPES), many=True,
                            help="agencies whose capture the curve varies (default: every agency)"),
    "curve_mode": Param(stored.CURVE_MODE, choices=tuple(CURVE_MODES), help="how each curve point is linked"),
}

#: Counts of children in the simulation's by-area table, each published with its children's cell key.
SIMULATION_COUNTS = ("multi_agency_true", "recognised_today", "recognised_scenario", "by_number_today",
                     "by_number_scenario")
#: The model's children known to 2+ agencies are published on home atoms (``_published_model_areas``); its
#: expected values are scaled to the published count.
MODEL_EXPECTED = ("by_number_today", "by_number_scenario")
AGENCY_CAPTION = ("Estimated by linkage today and under the scenario, against the true count: duplicate records "
                  "the agency cannot join inflate its count.")


def levers_of(params: dict) -> Levers:
    """The levers of ``params`` (ValueError naming the field when the JSON or a share is wrong)."""
    text = params.get("levers") or "{}"
    try:
        raw = json.loads(text) if isinstance(text, str) else dict(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"parameter levers: not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(raw, dict):
        raise ValueError(  # noqa: TRY004 - a bad parameter value is a ValueError, as for every view parameter
            'parameter levers: expected a JSON object such as {"capture": {"police": 1.0}}')
    unknown = sorted(set(raw) - set(Levers().as_dict()))
    if unknown:
        raise ValueError(f"parameter levers: unknown field {', '.join(unknown)}: expected "
                         f"{', '.join(Levers().as_dict())}")
    return Levers(**raw)


def levers_json(levers: Levers) -> str:
    """The canonical JSON of the levers (the ``levers`` parameter the page passes)."""
    return json.dumps(levers.as_dict(), sort_keys=True)


def store_path(source: Source):
    """The logical path of the store the source reads (a version file belongs to its store)."""
    if source.path is not None:
        return source.path
    rows = source.con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
                              ).fetchall()
    path = rows[0][0] if rows and rows[0][0] else None
    if path is None:
        return None
    from lib.records.versions import logical_path

    return logical_path(path)


def model_available(con) -> bool:
    """The store holds real (not the default synthetic) records with linkage: the model can run on it."""
    from lib.measures import spans

    try:
        if store.counts(con)["encounters"] == 0 or sc.is_default_synthetic(con):
            return False
        return spans.has_linkage(con)
    except Exception:  # noqa: BLE001 - a locked or empty store: the simulation still works
        return False


def cache_key(con_or_store, params: dict) -> tuple:
    """What a scenario result depends on: the parameters and, for the model, the store's ONE data version
    (lib.records.store.data_version: changes on every upload, linkage run and reviewer decision). A
    simulation reads only the synthetic population (and the store's key), so it is keyed on the store path."""
    source = source_of(con_or_store)
    agencies = tuple(params.get("curve_agencies") or AGENCY_TYPES)
    common = (str(store_path(source)), params["kind"], levers_json(levers_of(params)), params["layer"])
    if params["kind"] == "model":
        return (*common, store.data_version(source.con))
    return (*common, int(params["encounters"]), agencies, params["curve_mode"])


def compute(con_or_store, params: dict, *, key: bytes | None = None, progress=None) -> dict:
    """The scenario's result (lib.scenario.scenario): a simulation re-run or the model from the store."""
    source = source_of(con_or_store)
    levers = levers_of(params)
    if params["kind"] == "model":
        if not model_available(source.con):
            raise ValueError("kind=model needs a store of your own records that has been linked (the default "
                             "synthetic dataset has the simulation instead)")
        return sc.model_scenario(source.con, levers, layer=params["layer"])
    from lib.records.default import DEFAULT_SEED

    if key is None:
        key = sc.scenario_key(store_path(source))
    asked = stored.request(levers, n_encounters=int(params["encounters"]), seed=DEFAULT_SEED, layer=params["layer"],
                           curve_agencies=tuple(params.get("curve_agencies") or AGENCY_TYPES),
                           curve_mode=params["curve_mode"])
    kept = stored.read(source.con, key, asked)  # the write-time simulation, when the store holds this one
    if kept is not None:
        return kept
    return sc.simulate_scenario(levers, key=key, n_encounters=int(params["encounters"]), seed=DEFAULT_SEED,
                                layer=params["layer"], curve_agencies=tuple(params.get("curve_agencies")
                                                                            or AGENCY_TYPES),
                                curve_mode=params["curve_mode"], **({"progress": progress} if progress else {}))


def protect_areas(result: dict, role: str) -> pd.DataFrame:
    """The by-area table as ``role`` may see it, the one place the scenario is protected: exact for the lead;
    below the lead every count of children published by cell key perturbation (the simulation's with its
    children's cell key, lib.disclosure.cells.publish; the model's on home atoms, as Across and Compare; a
    result without them is refused, never shown exact), gains the
    differences of the published counts, the model's expected values scaled to the published count of
    children (the same expected share of them), sorted by the published figures."""
    table = result["by_area"]
    if not aggregates_suppressed(role):
        return cells.drop_keys(table).reset_index(drop=True)
    if result["kind"] == "model":
        shown = _published_model_areas(result)
        true = table["multi_agency_linked"].astype("float64")
        ratio = (shown["multi_agency_linked"] / true.where(true > 0)).fillna(0.0)
        for column in MODEL_EXPECTED:
            shown[column] = (table[column].astype("float64") * ratio).round(1)
    else:
        shown = cells.publish(table, SIMULATION_COUNTS)
    for gain, (before, after) in sc.AREA_GAIN_COLUMNS.items():
        if gain in shown.columns:
            shown[gain] = (shown[after] - shown[before]).round(1)
    first = "multi_agency_linked" if result["kind"] == "model" else "multi_agency_true"
    value = "gain_by_number" if "gain_by_number" in shown.columns else "gain"
    return shown.sort_values([value, first, "area_code"], ascending=[False, False, True]).reset_index(drop=True)


def _published_model_areas(result: dict) -> pd.DataFrame:
    """The model's by-area table with its children per area as published (``published_by_area``: sums of the
    children's home atoms' perturbed counts, lib.disclosure.residents, the values Across boundaries and Compare
    show for the same areas). A result without them is refused, never shown exact."""
    if "published_by_area" not in result:
        raise KeyError("the model's by-area table has no published counts (published_by_area): it cannot be shown "
                       "below the safeguarding lead")
    shown = result["by_area"].copy()
    published = result["published_by_area"]
    shown["multi_agency_linked"] = shown["area_code"].map(published).fillna(0).astype("int64")
    return shown


def _published_model_total(result: dict) -> int:
    """The model's national count of multi-agency children as published below the lead: the sum of its home
    atoms' published counts (``published_totals``), so it is the sum of the by-area table, as on Across."""
    if "multi_agency_children_linked" not in result.get("published_totals", {}):
        raise KeyError("the model's result has no published national count (published_totals): it cannot be "
                       "shown below the safeguarding lead")
    return int(result["published_totals"]["multi_agency_children_linked"])


def _perturbed(count, key: int) -> int:
    return int(cells.perturb(int(count), int(key)))


def _published_agency_counts(counts: dict, keys: dict) -> dict:
    """Each agency's true and estimated national count of children, perturbed with the cell key of the
    children the agency recorded (the same children, the same key, in today's and the scenario's rows)."""
    return {a: {name: _perturbed(value, keys[f"agency.{a}"]) for name, value in c.items()}
            for a, c in counts.items()}


def _count_gap_pct(counts: dict) -> float:
    """The agencies' count gap from truth (as lib.scenario.simulate.measure), from the published counts."""
    total = sum(c["true"] for c in counts.values())
    gap = sum(abs(c["estimated"] - c["true"]) for c in counts.values())
    return round(100.0 * gap / total, 2) if total else 0.0


def published_curve(result: dict, role: str, population_true: int | None = None) -> pd.DataFrame | None:
    """The curve as ``role`` may see it: exact for the lead (keys dropped); below it the simulation's counts of
    children published with their children's cell keys (the national true count equal to the summary's), the
    model's national count of linked children the published one and its expected counts scaled to it."""
    curve = result.get("curve")
    if curve is None:
        return None
    if not aggregates_suppressed(role):
        return cells.drop_keys(curve)
    if result["kind"] == "model":
        out = curve.copy()
        true = result["multi_agency_children_linked"]
        shown = _published_model_total(result)
        out["multi_agency_children_linked"] = shown
        out["expected_by_number"] = (curve["expected_by_number"] * (shown / true if true else 0.0)).round(1)
        return out
    missing = [c for c in sc.CURVE_COUNTS if c in curve.columns and cells.key_column(c) not in curve.columns]
    if missing:
        raise KeyError(f"the scenario curve has no cell keys for {', '.join(missing)}: it cannot be published")
    # the agencies' count gap at each point comes from exact per-agency counts the curve does not keep: hidden
    return cells.publish(curve, sc.CURVE_COUNTS).drop(columns=["count_gap_pct"], errors="ignore")


def published_result(result: dict, role: str) -> dict:
    """``result`` with every count of children as ``role`` may see it: exact for the lead; below it each
    perturbed with its children's cell key (``result["total_keys"]``; a result without them is refused), the
    model's expected counts scaled to the published count of children, the agencies' counts and their gap
    from truth, the curve (``published_curve``) and the gains recomputed from the published counts."""
    if not aggregates_suppressed(role):
        curve = result.get("curve")
        if curve is None or not any(str(c).startswith(cells.KEY_PREFIX) for c in curve.columns):
            return result
        return {**result, "curve": published_curve(result, role)}
    out = dict(result)
    out["curve"] = published_curve(result, role)
    keys = result["total_keys"]
    if result["kind"] == "model":
        true = result["multi_agency_children_linked"]
        shown = _published_model_total(result)
        ratio = shown / true if true else 0.0
        out["multi_agency_children_linked"] = shown
        for name in ("expected_by_number_today", "expected_by_number_scenario"):
            out[name] = round(result[name] * ratio, 1)
        out["expected_gain_by_number"] = round(out["expected_by_number_scenario"] - out["expected_by_number_today"], 1)
        return out
    population = dict(result["population"])
    population["multi_agency_children_true"] = _perturbed(population["multi_agency_children_true"],
                                                          keys["multi_agency_children_true"])
    if "children_true" in population:
        population["children_true"] = _perturbed(population["children_true"], keys["children"])
    out["population"] = population
    for side in ("today", "scenario"):
        metrics = dict(result[side])
        metrics["multi_agency_children_true"] = population["multi_agency_children_true"]
        for name in ("multi_agency_recognised", "multi_agency_recognised_by_number"):
            metrics[name] = _perturbed(metrics[name], keys[f"{side}.{name}"])
        # every other national count of children, records or pairs (the same key for the same children)
        for name, key in (("children_true", "children"), ("children_estimated", "children"),
                          ("multi_agency_children_estimated", "multi_agency_children_true"),
                          ("review_queue", "children"), ("anonymous_records", "children"),
                          ("nhs_conflicts_flagged", "children")):
            if name in metrics:
                metrics[name] = _perturbed(metrics[name], keys[key])
        if "agency_counts" in metrics:
            metrics["agency_counts"] = _published_agency_counts(metrics["agency_counts"], keys)
            metrics["count_gap_pct"] = _count_gap_pct(metrics["agency_counts"])
        out[side] = metrics
    out["gain"] = sc._gain(out["today"], out["scenario"])
    return out


def small_areas(areas: pd.DataFrame, role: str) -> list[str]:
    """Below the lead, the areas whose published count of children known to 2+ agencies (the model's, or the
    simulation's true count) is from 1 to ``SMALL_BELOW - 1``: hatched on the map, as on every other page."""
    if not aggregates_suppressed(role):
        return []
    column = "multi_agency_linked" if "multi_agency_linked" in areas.columns else "multi_agency_true"
    counts = pd.to_numeric(areas[column], errors="coerce").fillna(0)
    return areas.loc[(counts > 0) & (counts < SMALL_BELOW), "area_code"].astype(str).tolist()


def page_data(result: dict, params: dict, role: str, data_version: str = "") -> PageData:
    """What the page shows for ``result`` to ``role`` (cheap: the page calls it on every rerun)."""
    areas = protect_areas(result, role)  # protected for the role here, once
    result = published_result(result, role)
    report = sc.scenario_report(result, areas, hatch=small_areas(areas, role))
    tables = {"summary": Table(report.table, title="Today and under the scenario",
                               columns={"measure": {"label": "Measure", "width": "medium"},
                                        "today": {"label": "Today", "format": "%.4g"},
                                        "scenario": {"label": "Scenario", "format": "%.4g"},
                                        "change": {"label": "Change", "format": "%+.4g"}})}
    sentences = [report.headline]
    if result["kind"] == "simulation":
        counts, before = result["scenario"]["agency_counts"], result["today"]["agency_counts"]
        tables["agencies"] = Table(pd.DataFrame(
            [{"agency": sc.AGENCY_LABEL[a], "today": before[a]["estimated"], "scenario": counts[a]["estimated"],
              "true": counts[a]["true"]} for a in AGENCY_TYPES]),
            title="Each agency's count of distinct children", note=AGENCY_CAPTION)
        if result["scenario"].get("note"):
            sentences.append(result["scenario"]["note"])
    else:
        tables["capture"] = Table(pd.DataFrame(
            [{"agency": sc.AGENCY_LABEL.get(a, a), "today": f"{v:.0%}"}
             for a, v in result["today_levers"]["capture"].items()], columns=["agency", "today"]),
            title="Measured NHS-number capture today (valid numbers, identified encounters)")
    if result.get("curve") is not None:
        curve = result["curve"].drop(columns=["seconds"], errors="ignore")  # run time, not a result: not shown
        tables["curve"] = Table(curve.reset_index(drop=True), title="Curve as a table")
    tables["areas"] = Table(report.area_table.reset_index(drop=True), downloadable=True,
                            title=f"Where: children newly recognised by NHS number alone, by home "
                                  f"{sc.LAYER_LABEL[result['layer']]}",
                            note=method_note(aggregates_suppressed(role))
                            + (f" Hatched on the map: fewer than {SMALL_BELOW} children known to 2+ agencies "
                               "(the gain there rests on a perturbed count that small)."
                               if aggregates_suppressed(role) else ""))
    lines = [*result["levers_text"], *result["assumptions"]]
    data = PageData(page=PAGE, role=role, params=dict(params), data_version=data_version, title=report.title,
                    sentences=sentences, tables=tables,
                    figures=dict(report.figures),  # go.Figure: cheaper to draw on a rerun
                    notes=lines, extra={"kind": result["kind"], "levers": list(result["levers_text"])})
    data.note("disclosure", method_note(aggregates_suppressed(role)))
    return data


def download_json(result: dict, role: str) -> str:
    """The "Download the result (JSON)" payload: the whole result with the area table as the role sees it."""
    payload = {**published_result(result, role), "by_area": protect_areas(result, role),
               "disclosure": method_note(aggregates_suppressed(role))}
    payload.pop("total_keys", None)  # cell keys never leave
    payload.pop("published_totals", None)  # already the figures above
    return json.dumps(sc.to_json(payload), indent=1, default=str)


def build(con_or_store, params: dict, role: str) -> PageData:
    source = source_of(con_or_store)
    result = compute(source, params)
    return page_data(result, params, role, store.data_version(source.con))


# -- what the page's levers start from (widget defaults and choices, not results) ------------------------

def stored_start(con_or_store, encounters: int) -> dict | None:
    """Where the simulation's levers start and which areas they offer, from the default simulation the store keeps
    (``lib.scenario.stored``): ``{"today_levers", "agency_areas"}`` when it holds one for a population of
    ``encounters``, else None (the page generates the population: seconds on first open)."""
    if int(encounters) != stored.ENCOUNTERS:
        return None
    source = source_of(con_or_store)
    kept = stored.read(source.con, sc.scenario_key(store_path(source)), stored.request())
    if kept is None or "agency_areas" not in kept:
        return None
    return {"today_levers": kept["today_levers"], "agency_areas": kept["agency_areas"]}


def todays_levers(con, kind: str, population=None, start: dict | None = None) -> dict:
    """Today's recording, where each slider starts: the synthetic population's (``start``, from ``stored_start``,
    or ``population``, from ``lib.scenario.simulate.population``) or the store's measured NHS-number capture."""
    if kind == "simulation":
        return start["today_levers"] if start is not None else population.baseline.as_dict()
    from lib.scenario import model

    measured = model.national_capture(con)
    return {"capture": {a: measured.get(a, 0.0) for a in AGENCY_TYPES}}


def area_choices(con, kind: str, agency: str, population=None, start: dict | None = None) -> list[str]:
    """The agency's own area codes a per-area capture can be set for."""
    if kind == "simulation":
        return list(start["agency_areas"][agency]) if start is not None else sc.agency_areas(population)[agency]
    return store.query(con, "SELECT DISTINCT agency_code FROM encounters WHERE agency_type = ? ORDER BY 1",
                       [agency])["agency_code"].tolist()


def area_names() -> dict[str, str]:
    """Names of the agencies' own areas (police force areas, authorities, trusts) for the area selector: those of
    every layer an agency records natively on (the agency registry's ``NATIVE_LAYER``), in order of first use."""
    from lib.geo import lookup

    names: dict[str, str] = {}
    for layer in dict.fromkeys(AGENCY_NATIVE_LAYER.values()):
        names.update(lookup.name_of(layer))
    return names
