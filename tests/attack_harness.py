"""The attacker's harness (issue 16): everything a role can see for a store, turned into cells, and the two
attacks of docs/DISCLOSURE.md ("How it is tested") run over them.

1. ``collect(store, role)`` builds every view twin the role may open (lib.views, the same builders as the pages,
   CLI and CSV downloads) over every layer, period and area choice their PARAMS allow, and the tables of board
   packs (``lib.export.boardpack``: one PFA, one UTLA and one LAD pack), and turns each published count into a
   ``Cell``: (layer, area, period, agency, measure, basis) -> value (a whole number, or ``"c"`` when hidden).
   Every cell must have ONE value wherever it appears (``Collected.disagreements``).
2. ``subtraction(...)``: for every published area and every finer layer whose areas tile it exactly (the
   official nestings district ⊂ UTLA ⊂ PFA ⊂ England and Wales, and overlaps such as an ICB made of whole
   districts, from the official LSOA lookup in geodata), a family with exactly one unknown member gives it back
   as the whole minus the rest.
3. ``lp_bounds(...)``: the attacker's linear programme (``lib.disclosure.attack``) over the finest cells every
   published area is a union of ("atoms": the distinct district x UTLA x PFA x ICB/health board x trust
   catchment combinations of the lookup), with every published count of a family as a relation, and on the
   store's own partitions where the service's differ (``store_relations``: home atoms, flow atoms, flow classes,
   so the flows are relations too); each protected cell is bounded below and above, by checked witness points,
   single moves or the programme's independent components (``lp_bounds``).
2'. ``split_disagreements(...)``: one logical count (an ICB's flow, or the sum of its sub-ICB locations' flows)
   must have one value however it is split.

What a published value tells the attacker depends on the method the outputs declare: under per-table
suppression a shown count is exact and ``c`` is unknown; under cell key perturbation (``lib.disclosure.notes``)
every published count is the sum of perturbed atoms, each within ``MAX_NOISE`` of its true count.

The TRUE counts come from the same collection as the safeguarding lead (exact figures), so the test knows which
cells hold 1 to 5. Counts only: rates, shares and verdicts are computed from them (or hidden with them).
The Data page is collected for the roles that may open it (analysts); Review and Audit are the lead's. The
Scenario page's model (area table by home area) is collected where the store can be modelled; its simulation
runs on a synthetic population of its own, not the store, and is tested in tests/test_scenario.py.
"""
from __future__ import annotations

import io
import math
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from lib import views
from lib.access.roles import may_open
from lib.disclosure import attack
from lib.disclosure.cellkey import MAX_NOISE
from lib.disclosure.notes import METHOD_NAME
from lib.disclosure.residents import ATOM
from lib.geo import layers as registry
from lib.geo import lookup
from lib.measures import compare, convert, spans
from lib.measures import divergence as dv
from lib.records import store as store_mod
from lib.views.base import Memo, Source

HIDDEN = "c"
#: Layers of the measure cube, and the lookup column holding each one's codes.
LAYER_COLUMN = {"lad": "lad_code", "utla": "utla_code", "pfa": "pfa_code", "nhs": "nhs_code", "trust": "trust_code"}
#: Across boundaries layers (children by home area) and their lookup columns.
HOME_COLUMN = {"lad": "lad_code", "utla": "utla_code", "pfa": "pfa_code", "icb": "icb_code", "sicbl": "sicbl_code",
               "lhb": "lhb_code", "trust": "trust_code"}
NATIONAL = ("ew", "K04000001")
AGENCIES = tuple(dv.AGENCIES)
SPAN_COUNTS = ("children", "multi_agency", "spans_any")
#: The Data page's completeness table (analysts): records per area, and the identifier counts behind its
#: percentages, on each basis (where the contact happened, home, home else where it happened).
DATA_MEASURES = ("records", "valid_nhs", "name_dob", "anonymous")
DATA_SHARES = {"valid NHS %": "valid_nhs", "name + DOB %": "name_dob", "anonymous %": "anonymous"}
DATA_BASES = ("encounter", "home", "either")
#: Across boundaries' flows (children's home area -> area where they were encountered): children (distinct, per
#: flow) and encounters, each flow also read as the reverse of the opposite flow.
FLOW_COUNTS = {"children": "flow_children", "encounters": "flow_encounters",
               "reverse_children": "flow_children", "reverse_encounters": "flow_encounters"}
#: Upper bound on any one atom's count, so the programme is bounded where nothing is published (it never
#: narrows an interval to fewer than three values: the store holds far fewer records).
CEILING = 1e7


class Cell(NamedTuple):
    layer: str     # lad, utla, pfa, nhs, trust, ew, or group:<layer> (a comparator group)
    area: str      # area code; a group: its member codes joined by "+"
    period: str
    agency: str    # an agency, "a+b" (two agencies' total) or "all"
    measure: str   # cse_records, cse_children, resident_children, ...
    basis: str     # encounter (where it happened) or home (where the child lives)


@dataclass
class Collected:
    role: str
    method: str                                   # "suppression" or "perturbation"
    cells: dict[Cell, object] = field(default_factory=dict)
    seen_in: dict[Cell, list[str]] = field(default_factory=lambda: defaultdict(list))
    disagreements: list[tuple[Cell, object, str, object, str]] = field(default_factory=list)
    outputs: int = 0
    years_complete: bool = True  # every financial year offered was collected, so "all" is their sum
    years: list = field(default_factory=list)  # the financial years of the store (perturbed one by one)
    texts: list = field(default_factory=list, repr=False)  # deck bytes, searched for the method's name
    #: (cell, value, method of the output it came from): outputs may differ while a branch moves pages over
    observations: list = field(default_factory=list, repr=False)
    current_method: str | None = None  # the method the output being read declares

    def add(self, cell: Cell, value, where: str) -> None:
        value = _value(value)
        if value is None:
            return
        self.observations.append((cell, value, self.current_method or self.method))
        if cell in self.cells and self.cells[cell] != value:
            self.disagreements.append((cell, self.cells[cell], self.seen_in[cell][0], value, where))
        self.cells.setdefault(cell, value)
        if len(self.seen_in[cell]) < 4:
            self.seen_in[cell].append(where)

    def share_shown(self, where_prefix: str | None = None) -> tuple[int, int]:
        """(cells shown as a number, all cells) over the outputs whose name starts with ``where_prefix``."""
        cells = [c for c in self.cells if where_prefix is None
                 or any(w.startswith(where_prefix) for w in self.seen_in[c])]
        return sum(self.cells[c] != HIDDEN for c in cells), len(cells)


def log(message: str) -> None:
    """A progress line in the file ``JOINEDUP_ATTACK_LOG`` names (the full runs take long: how far they got)."""
    path = os.environ.get("JOINEDUP_ATTACK_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"{time.strftime('%H:%M:%S')} {message}\n")


def _tick(out: Collected, every: int = 100) -> None:
    out.outputs += 1
    if out.outputs % every == 0:
        log(f"{out.outputs} outputs read, {len(out.cells)} cells")


def _value(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        text = value.strip().replace(",", "")
        if text in ("", "—", "-"):
            return None
        if text.lower() == HIDDEN:
            return HIDDEN
        try:
            number = float(text)
        except ValueError:
            return None
    else:
        number = float(value)
    if abs(number - round(number)) > 1e-9:
        raise ValueError(f"a published count is not whole: {value!r}")
    return int(round(number))


# -- the geography the attacker knows (official lookup in geodata) --------------------------------------

@lru_cache(maxsize=2)
def _atoms_by_code(basis: str) -> dict[tuple[str, str], frozenset[str]]:
    table, columns = _geography(basis)
    out = {}
    for layer, column in columns.items():
        for code, atoms in table.groupby(column)["atom"]:
            out[(layer, code)] = frozenset(atoms)
    return out


@lru_cache(maxsize=1)
def atom_table() -> pd.DataFrame:
    """One row per atom: a distinct combination of the published layers' codes over the LSOA lookup."""
    table = lookup.lsoa_table()[list(LAYER_COLUMN.values())].drop_duplicates().reset_index(drop=True)
    table["atom"] = [f"a{i}" for i in range(len(table))]
    return table


@lru_cache(maxsize=1)
def home_atom_table() -> pd.DataFrame:
    table = lookup.lsoa_table()[sorted(set(HOME_COLUMN.values()))].drop_duplicates().reset_index(drop=True)
    table["atom"] = [f"h{i}" for i in range(len(table))]
    return table


def atoms_of(cell: Cell) -> frozenset[str]:
    if cell.layer == "ew":
        return frozenset(_geography(cell.basis)[0]["atom"])
    layer = cell.layer.split(":", 1)[1] if cell.layer.startswith("group:") else cell.layer
    by_code = _atoms_by_code(cell.basis)
    return frozenset().union(*(by_code.get((layer, code), frozenset()) for code in cell.area.split("+")))


# -- collecting everything a role can see -------------------------------------------------------------

def declared_method(texts) -> str:
    """The method the outputs say they use: cell key perturbation when they name it, else per-table
    suppression (today's main)."""
    return "perturbation" if any(METHOD_NAME in str(t) for t in texts) else "suppression"


def _method_of(data) -> str:
    return declared_method([*data.notes, *data.sentences, *(t.note for t in data.tables.values())])


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)] or [[]]


def _compare_table(out: Collected, frame: pd.DataFrame, codes_by_name: dict[str, str], group: list[str],
                   layer: str, period: str, measure: str, where: str) -> None:
    noun = dv.NOUN.get(measure, measure)
    labels = {f"{dv.agency_title(x)}: {noun}": x for x in AGENCIES}
    label_column = "Indicator" if "Indicator" in frame.columns else "indicator"
    for _, row in frame.iterrows():
        agency = labels.get(row[label_column])
        if agency is None:
            continue
        for column, value in row.items():
            if column == label_column:
                continue
            if column == compare.NATIONAL:
                cell = Cell(*NATIONAL, period, agency, measure, "encounter")
            elif column == compare.COMPARATOR:
                if not group:
                    continue
                cell = Cell(f"group:{layer}", "+".join(sorted(group)), period, agency, measure, "encounter")
            else:
                cell = Cell(layer, codes_by_name[column], period, agency, measure, "encounter")
            out.add(cell, value, where)


def _choices(source: Source, layer: str, period: str, measure: str, role: str) -> dict[str, str]:
    import inspect

    from lib.views import compare as page
    if "role" in inspect.signature(page.choices).parameters:
        return page.choices(source, layer, period, measure, role)[0]
    return page.choices(source, layer, period, measure)[0]


def compare_runs(source: Source, layer: str, period: str, measure: str, role: str, *,
                 neighbours: bool = True) -> list[dict]:
    """Every area of the layer, six at a time along the official nesting (the districts of one UTLA together,
    the UTLAs of one police force area together, so families are seen side by side as a user would), and with
    ``neighbours`` every area with its neighbours."""
    names = _choices(source, layer, period, measure, role)
    parent = {"lad": "utla_code", "utla": "pfa_code"}.get(layer)
    codes = sorted(names)
    if parent:
        table = lookup.lsoa_table()[[LAYER_COLUMN[layer], parent]].drop_duplicates(LAYER_COLUMN[layer])
        order = table.set_index(LAYER_COLUMN[layer])[parent].to_dict()
        codes = sorted(codes, key=lambda c: (order.get(c, ""), c))
    runs = [{"mode": "choose", "areas": chunk} for chunk in _chunks(codes, compare.MAX_AREAS)]
    if neighbours:
        runs += [{"mode": "neighbours", "areas": [code]} for code in codes]
    return runs


def _periods(offered: list[str], periods) -> list[str]:
    return [p for p in offered if periods is None or p in periods]


def collect_compare(out: Collected, source: Source, role: str, *, layers=None, runs: dict | None = None,
                    neighbours: bool = True, periods=None) -> None:
    """Compare: every layer x period offered x measure x run (``compare_runs``; ``runs``: layer -> a documented
    sample of area lists instead, in choose mode)."""
    from lib.views import compare as page
    options = page.options(source, role)
    for layer in layers or (list(runs) if runs else convert.MEASURE_LAYERS):
        for period in _periods(options["periods"], periods):
            for measure in options["measures"]:
                todo = ([{"mode": "choose", "areas": list(a)} for a in runs[layer]] if runs else
                        compare_runs(source, layer, period, measure, role, neighbours=neighbours))
                for params in todo:
                    data = views.build_with("compare", source, {"layer": layer, "period": period, "measure": measure,
                                                                **params}, role)
                    _tick(out)
                    out.current_method = _method_of(data)
                    by_name = {name: code for code, name in data.extra["names"].items()}
                    group = data.tables["cmp_group_table"].frame["Code"].tolist()
                    where = f"compare {layer} {period} {measure} {params['mode']} {','.join(params['areas'])}"
                    _compare_table(out, data.tables["cmp_table"].frame, by_name, group, layer, period, measure,
                                   where)


def _divergence_rows(out: Collected, frame: pd.DataFrame, layer: str, period: str, measure: str, a: str, b: str,
                     where: str) -> None:
    for _, row in frame.iterrows():
        code = row["area_code"]
        out.add(Cell(layer, code, period, a, measure, "encounter"), row[a], where)
        out.add(Cell(layer, code, period, b, measure, "encounter"), row[b], where)
        pair = "+".join(sorted((a, b)))
        out.add(Cell(layer, code, period, pair, measure, "encounter"), row["total"], where)


def collect_divergence(out: Collected, source: Source, role: str, *, layers=None, pairs=None,
                       periods=None) -> None:
    """Divergence: every layer x period x measure, agency A against every other agency B (``pairs``: only
    these); the export table holds every area of the layer."""
    from lib.views import divergence as page
    options = page.options(source, role)
    agencies = [x for x in AGENCIES if x in source.cube().agencies]
    pairs = pairs or [(a, b) for i, a in enumerate(agencies) for b in agencies[i + 1:]]
    for layer in layers or convert.MEASURE_LAYERS:
        for period in _periods(options["periods"], periods):
            for measure in options["measures"]:
                for a, b in pairs:
                    data = views.build_with("divergence", source, {"a": a, "b": b, "layer": layer,
                                                                   "period": period, "measure": measure}, role)
                    _tick(out)
                    out.current_method = _method_of(data)
                    _divergence_rows(out, data.tables["div_export"].frame, layer, period, measure, a, b,
                                     f"divergence {layer} {period} {measure} {a}/{b}")


def collect_across(out: Collected, source: Source, role: str, *, layers=None) -> None:
    """Across boundaries: children resident in every area of every layer (the table behind the spans map and
    its CSV), with the multi-agency and spanning counts."""
    for layer in layers or HOME_COLUMN:
        data = views.build_with("across", source, {"layer": layer}, role)
        _tick(out)
        out.current_method = _method_of(data)
        if "spans_all" not in data.tables:
            continue
        frame = data.tables["spans_all"].frame
        for _, row in frame.iterrows():
            for column in SPAN_COUNTS:
                out.add(Cell(layer, row["area_code"], "all", "all", f"resident_{column}", "home"), row[column],
                        f"across {layer}")


def _data_agency(agency: str) -> str:
    from lib.records import schema
    return "+".join(sorted(schema.AGENCY_TYPES)) if agency == "all" else agency


def collect_data(out: Collected, source: Source, role: str, *, layers=None, bases=DATA_BASES,
                 agencies=None) -> None:
    """The Data page (analysts): the completeness table of every layer the attacker's geography holds x basis x
    agency. Each row gives its area's records and, where the percentage pins it (fewer than 500 records: a
    tenth of a per cent is less than one record), the count of records with a valid NHS number, with name and
    date of birth, and anonymous (not from a share of 100%: shares are shown within 0-100%, so there the count is
    only bounded below by the records)."""
    from lib.views import data as page
    for basis in bases:
        columns = LAYER_COLUMN if basis == "encounter" else HOME_COLUMN
        for layer in layers or [x for x in page.LAYER_CHOICES if x in columns]:
            for agency in agencies or page.AGENCY_CHOICES:
                data = views.build_with("data", source, {"layer": layer, "basis": basis, "agency": agency}, role)
                _tick(out)
                out.current_method = _method_of(data)
                if "completeness" not in data.tables:
                    continue
                where = f"data {layer} {basis} {agency}"
                who = _data_agency(agency)
                for _, row in data.tables["completeness"].frame.iterrows():
                    if row["code"] == "(unplaced)":
                        continue
                    records = _value(row["encounters"])
                    out.add(Cell(layer, row["code"], "all", who, "records", basis), records, where)
                    if not isinstance(records, int) or records >= 500:
                        continue
                    for column, measure in DATA_SHARES.items():
                        share = row.get(column)
                        if share is None or (isinstance(share, float) and math.isnan(share)):
                            continue
                        if float(share) >= 100:  # shown within 0-100%: at 100 the count is only known to be >= records
                            continue
                        out.add(Cell(layer, row["code"], "all", who, measure, basis),
                                round(float(share) * records / 100), where)


def collect_flows(out: Collected, source: Source, role: str, *, layers=None) -> None:
    """Across boundaries' flows: every flow of every layer (the "All flows" download), its reverse columns and
    the page's top flows table, each count a cell ``(layer, "from>to", ...)`` so one flow has one value
    wherever it is shown."""
    for layer in layers or HOME_COLUMN:
        data = views.build_with("across", source, {"layer": layer}, role)
        _tick(out)
        out.current_method = _method_of(data)
        for name in ("flows_all", "flows"):
            if name not in data.tables:
                continue
            frame = data.tables[name].frame
            for _, row in frame.iterrows():
                for column, measure in FLOW_COUNTS.items():
                    if column not in frame.columns:
                        continue
                    pair = ((row["to_code"], row["from_code"]) if column.startswith("reverse")
                            else (row["from_code"], row["to_code"]))
                    out.add(Cell(layer, ">".join(pair), "all", "all", measure, "flow"), row[column],
                            f"across {name} {layer}")


SCENARIO_LAYERS = ("utla", "pfa", "nhs")


def collect_scenario(out: Collected, source: Source, role: str, *, layers=SCENARIO_LAYERS) -> None:
    """The Scenario page's model on the store (``view scenario --param kind=model``): its area table of children
    known to two or more agencies by home area, for every layer it offers (the issue's Merton attack read
    ``layer=utla`` against ``layer=pfa``): the same cells as Across's resident multi-agency children (the same
    children by the same home, so one value wherever they appear). Nothing when the store cannot be modelled
    (the default dataset has the simulation, on a population of its own)."""
    from lib.views import scenario as page
    if not page.model_available(source.con):
        return
    for layer in layers:
        data = views.build_with("scenario", source, {"kind": "model", "layer": layer}, role)
        _tick(out)
        out.current_method = _method_of(data)
        for _, row in data.tables["areas"].frame.iterrows():
            out.add(Cell(layer, row["area_code"], "all", "all", "resident_multi_agency", "home"),
                    row["multi_agency_linked"], f"scenario model {layer}")


def collect_boardpacks(out: Collected, con, role: str, packs: dict[str, str], *, cube=None) -> None:
    """The tables of one board pack per (layer, area) in ``packs``: the divergence CSV (every area of the layer)
    and the comparison CSV (the focus, its neighbours, the comparator group, England and Wales)."""
    from lib.export import boardpack
    for layer, area in packs.items():
        pack = boardpack.build_board_pack(con, layer=layer, area=area, role=role, cube=cube, audit=False)
        _tick(out)
        out.current_method = declared_method([_deck_text(pack.deck)])
        where = f"boardpack {layer} {area}"
        div = pd.read_csv(io.BytesIO(pack.csvs[f"divergence_{layer}.csv"]), dtype=str, keep_default_na=False)
        _divergence_rows(out, div, layer, "all", "cse_records", "police", "children_social_care", where)
        group_table = pd.read_csv(io.BytesIO(pack.csvs["comparator_group.csv"]), dtype=str)
        # the Compare view's own group table (issue 15: the pack's CSVs are the views' downloads) labels it "Code"
        group = group_table["Code" if "Code" in group_table.columns else "area_code"].tolist()
        comparison = pd.read_csv(io.BytesIO(pack.csvs["comparison.csv"]), dtype=str, keep_default_na=False)
        out.texts.append(pack.deck)
        names = {name: code for code, name in lookup.name_of(layer).items()}
        _compare_table(out, comparison, names, group, layer, "all", "cse_records", where)


def collect(store_path: Path, role: str, *, compare_layers=None, compare_runs: dict | None = None,
            neighbours: bool = True, divergence_layers=None, pairs=None, across_layers=None,
            packs: dict[str, str] | None = None, skip: tuple[str, ...] = (), periods=None, data_layers=None,
            data_agencies=None, flow_layers=None) -> Collected:
    """Everything ``role`` can see for the store at ``store_path`` (see the module's docstring). The keyword
    arguments bound the collection to a documented sample (None: everything the PARAMS allow); ``skip`` names
    pages left out; ``periods`` the periods collected (None: every period the role is offered)."""
    con = store_mod.connect(store_path, read_only=True)
    try:
        source = Source(con, store_mod.resolve_path(store_path), memo=Memo(max_entries=100_000))
        out = Collected(role=role, method="suppression", years_complete=periods is None,
                        years=[p for p in source.cube().periods if p != "all" and " Q" not in p])
        if may_open(role, "compare") and "compare" not in skip:
            collect_compare(out, source, role, layers=compare_layers, runs=compare_runs, neighbours=neighbours,
                            periods=periods)
        if may_open(role, "divergence") and "divergence" not in skip:
            collect_divergence(out, source, role, layers=divergence_layers, pairs=pairs, periods=periods)
        if may_open(role, "across") and "across" not in skip:
            collect_across(out, source, role, layers=across_layers)
        if may_open(role, "across") and "flows" not in skip:
            collect_flows(out, source, role, layers=flow_layers or across_layers)
        if may_open(role, "data") and "data" not in skip:
            collect_data(out, source, role, layers=data_layers, agencies=data_agencies)
        if may_open(role, "scenario") and "scenario" not in skip:
            collect_scenario(out, source, role)
        if packs:
            collect_boardpacks(out, con, role, packs, cube=source.cube())
        notes = []
        for page in ("compare", "divergence", "across", "data"):
            if may_open(role, page) and page not in skip:
                data = views.build_with(page, source, {}, role)
                notes += [*data.notes, *data.sentences, *(t.note for t in data.tables.values())]
        methods = {m for _, _, m in out.observations}
        out.method = (declared_method([*notes, *(_deck_text(d) for d in out.texts)]) if notes or out.texts or
                      len(methods) != 1 else methods.pop())  # only pages read: the method their outputs declare
        out.current_method = None
        return out
    finally:
        con.close()


def _deck_text(deck: bytes) -> str:
    from pptx import Presentation
    prs = Presentation(io.BytesIO(deck))
    return " ".join(shape.text_frame.text for slide in prs.slides for shape in slide.shapes
                    if shape.has_text_frame)


# -- the true counts (the store read as the safeguarding lead) -------------------------------------------

def true_atom_counts(con) -> pd.DataFrame:
    """(agency, period, atom, count) of CSE-flagged records per financial year and over all periods ("all"),
    each record placed in the atom of its
    encounter location (the direct basis every page counts on)."""
    atoms = atom_table()
    columns = list(LAYER_COLUMN.values())
    frame = store_mod.query(con, """
        SELECT agency_type AS agency, enc_lad AS lad_code, enc_utla AS utla_code, enc_pfa AS pfa_code,
               enc_nhs AS nhs_code, enc_trust AS trust_code,
               year(encounter_date) - CASE WHEN month(encounter_date) < 4 THEN 1 ELSE 0 END AS fy, count(*) AS n
        FROM encounters WHERE cse_flag GROUP BY ALL""")
    frame["period"] = [f"{y}-{(y + 1) % 100:02d}" for y in frame["fy"]]
    merged = frame.merge(atoms, on=columns, how="left")
    unplaced = merged["atom"].isna()
    merged.loc[unplaced, "atom"] = "unplaced"
    years = merged.groupby(["agency", "period", "atom"], as_index=False)["n"].sum()
    every = merged.groupby(["agency", "atom"], as_index=False)["n"].sum().assign(period="all")
    return pd.concat([years, every], ignore_index=True)


def truth(store_path: Path, cells) -> dict[Cell, int]:
    """The true count of every additive cell in ``cells``: CSE-flagged records (all periods) from the store's
    atoms, children by home area from the store's children and their homes (``resident_truth``) and flows from
    the lead's own Across boundaries tables (exact figures)."""
    con = store_mod.connect(store_path, read_only=True)
    try:
        atoms = true_atom_counts(con).set_index(["agency", "period", "atom"])["n"].to_dict()
        result: dict[Cell, int] = {}
        flow_layers = sorted({c.layer for c in cells if c.basis == "flow"})
        if flow_layers:
            source = Source(con, store_mod.resolve_path(store_path), memo=Memo(max_entries=1_000))
            lead = Collected(role="lead", method="exact")
            collect_flows(lead, source, "lead", layers=flow_layers)
            result.update({c: v for c, v in lead.cells.items() if isinstance(v, int)})
        result.update(resident_truth(con, [c for c in cells if c.basis == "home" and c.measure in RESIDENT_FLAGS]))
        result.update(data_truth(con, [c for c in cells if c.measure in DATA_MEASURES]))
        for cell in cells:
            if cell.basis == "encounter" and cell.measure == "cse_records":
                members = atoms_of(cell)
                result[cell] = int(sum(atoms.get((agency, cell.period, a), 0) for agency in cell.agency.split("+")
                                       for a in members))
        return result
    finally:
        con.close()


def data_truth(con, cells) -> dict[Cell, int]:
    """The exact counts of the Data page's cells: records, and records with each identifier, per agency and
    area of a layer on a basis (the SQL of lib.views.data, without perturbation)."""
    from lib.views import data as page
    out: dict[Cell, int] = {}
    needed = sorted({(c.layer, c.basis) for c in cells})
    for layer, basis in needed:
        area = page._place(layer, basis)
        flags = ", ".join(f"count(*) FILTER (WHERE {sql}) AS {name}" for name, sql in page._FLAGS.items())
        frame = store_mod.query(con, f"""SELECT e.agency_type, {area} AS area_code, count(*) AS records, {flags}
                                         FROM encounters e WHERE {area} IS NOT NULL GROUP BY ALL""")
        counts = frame.set_index(["agency_type", "area_code"])
        for cell in cells:
            if (cell.layer, cell.basis) != (layer, basis):
                continue
            total = 0
            for agency in cell.agency.split("+"):
                if (agency, cell.area) in counts.index:
                    total += int(counts.loc[(agency, cell.area), cell.measure])
            out[cell] = total
    return out


# -- attack (a): subtraction along nestings and overlaps ------------------------------------------------

@dataclass
class Finding:
    cell: Cell
    true: int
    low: int
    high: int
    how: str


def _geography(basis: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """Atoms of the basis: home areas (and the Data page's home-else-encounter) on the home geography."""
    return (home_atom_table(), HOME_COLUMN) if basis in ("home", "either") else (atom_table(), LAYER_COLUMN)


def families(cells) -> list[tuple[Cell, list[Cell]]]:
    """(whole, parts): a published cell and the areas of one other published layer that tile it exactly in
    the official lookup (nestings, and overlaps made of whole areas of another layer, such as an ICB of whole
    districts). Parts need not be published: a row left out of a table is as unknown as a ``c``."""
    by_key = defaultdict(list)
    for cell in cells:
        by_key[(cell.period, cell.agency, cell.measure, cell.basis)].append(cell)
    result = []
    for (period, agency, measure, basis), members in by_key.items():
        table, columns = _geography(basis)
        layers = {c.layer for c in members if c.layer in columns}
        owner = {layer: dict(zip(table["atom"], table[columns[layer]])) for layer in layers}
        for whole in members:
            whole_atoms = atoms_of(whole)
            if not whole_atoms:
                continue
            for layer in layers - {whole.layer}:
                parts = {owner[layer][a] for a in whole_atoms}
                if len(parts) < 2 or any(not isinstance(p, str) for p in parts):
                    continue
                cells_of = [Cell(layer, p, period, agency, measure, basis) for p in sorted(parts)]
                if sum(len(atoms_of(c)) for c in cells_of) == len(whole_atoms):
                    result.append((whole, cells_of))
    return result


def subtraction(seen: Collected, truth: dict[Cell, object]) -> list[Finding]:
    """Every true count 1-5 that one subtraction gives back exactly. Under perturbation no published count is
    exact, so nothing is pinned by subtraction alone (the LP then does the work)."""
    exact = {c: v for c, v, m in seen.observations if m == "suppression" and v != HIDDEN}
    if not exact:
        return []
    found = []
    for whole, parts in families(exact):
        values = [exact.get(p, HIDDEN) for p in parts]
        if sum(v == HIDDEN for v in values) != 1:
            continue
        hidden = parts[values.index(HIDDEN)]
        recovered = exact[whole] - sum(v for v in values if v != HIDDEN)
        true = truth.get(hidden)
        if isinstance(true, int) and 1 <= true <= 5 and recovered == true:
            found.append(Finding(hidden, true, recovered, recovered, f"{whole.layer} {whole.area} minus "
                                 f"{len(parts) - 1} {hidden.layer} areas"))
    return found


# -- attack (a'): one logical count published from two splits -------------------------------------------

def flow_records(con, layer: str) -> pd.Series:
    """(from_code, to_code) -> the frozenset of record keys of each flow of ``layer`` (the lead's exact
    reading of lib.measures.spans: home area per layer, encounters elsewhere)."""
    column = registry.REGISTRY[layer].stored_key
    frame = store_mod.query(con, f"""
        WITH home AS ({spans._home_sql(layer)})
        SELECT h.home_area AS from_code, e.enc_{column} AS to_code, e.record_key
        FROM encounters e JOIN record_child rc USING (record_key) JOIN home h USING (child_id)
        WHERE e.enc_{column} IS NOT NULL AND e.enc_{column} <> h.home_area""")
    return frame.groupby(["from_code", "to_code"])["record_key"].agg(frozenset)


def nests(fine: str, coarse: str) -> dict[str, str] | None:
    """Fine area -> the coarse area holding it, when every area of ``fine`` lies in one area of ``coarse`` in
    the official LSOA lookup; else None."""
    table = lookup.lsoa_table()[[HOME_COLUMN[fine], HOME_COLUMN[coarse]]].dropna().drop_duplicates()
    if fine == coarse or table[HOME_COLUMN[fine]].duplicated().any():
        return None
    return dict(zip(table[HOME_COLUMN[fine]], table[HOME_COLUMN[coarse]]))


def split_disagreements(seen: Collected, store_path: Path) -> list[tuple]:
    """Every flow of one layer whose records are exactly those of the flows between its parts on a finer layer
    (sub-ICB locations in an ICB, districts in a county), yet published with a different value than the sum of
    those finer flows: one logical count with two values, which the attacker can difference (two independent
    noises on the same count). A flow not listed is published as 0. Returns (coarse cell, its value, the sum of
    the finer flows, the true count)."""
    flow_layers = sorted({c.layer for c in seen.cells if c.basis == "flow" and c.measure == "flow_encounters"})
    published = {(c.layer, *c.area.split(">")): v for c, v in seen.cells.items()
                 if c.basis == "flow" and c.measure == "flow_encounters" and isinstance(v, int)}
    con = store_mod.connect(store_path, read_only=True)
    try:
        records = {layer: flow_records(con, layer) for layer in flow_layers}
    finally:
        con.close()
    found = []
    for fine in flow_layers:
        for coarse in flow_layers:
            parent = nests(fine, coarse)
            if parent is None:
                continue
            union: dict[tuple, set] = defaultdict(set)
            sums: dict[tuple, int] = defaultdict(int)
            for (a, b), keys in records[fine].items():
                pair = (parent.get(a), parent.get(b))
                if pair[0] != pair[1]:
                    union[pair] |= keys
                    sums[pair] += published.get((fine, a, b), 0)
            for (a, b), keys in records[coarse].items():
                value = published.get((coarse, a, b), 0)
                if union.get((a, b)) == set(keys) and sums[(a, b)] != value:
                    cell = Cell(coarse, f"{a}>{b}", "all", "all", "flow_encounters", "flow")
                    found.append((cell, value, sums[(a, b)], len(keys)))
    return found


# -- attack (b): the linear programme over all published relations -------------------------------------

def _additive(cell: Cell) -> bool:
    return (cell.measure == "cse_records" or cell.basis in ("home", "flow") or cell.measure in DATA_MEASURES)


def _per_atom(cell: Cell) -> bool:
    """Perturbed once per atom (records: per agency and financial year; flow encounters and resident children:
    over all periods) and summed; else per published cell (children per flow, national totals)."""
    return ((cell.basis == "encounter" and cell.measure == "cse_records") or cell.measure in DATA_MEASURES
            or cell.measure == "flow_encounters" or (cell.basis == "home" and cell.measure in RESIDENT_FLAGS))


#: Resident counts (Across, and the Scenario model's multi-agency children) -> the child table's flag each
#: counts (None: every child).
RESIDENT_FLAGS = {"resident_children": None, "resident_multi_agency": "multi_agency",
                  "resident_spans_any": "spans_any"}
#: The area of children with no home in a layer (the Scenario model's by-area table lists them).
UNPLACED = "(unplaced)"


def resident_base(con) -> pd.DataFrame:
    """One row per linked child: its flags, its home in every resident layer (``home_<layer>``) and its home
    atom as the service publishes on (lib.measures.spans.home_areas: the product's own partition)."""
    flags = spans.child_table(con, spans.HOME_LAYERS[0])[["child_id", "multi_agency", "spans_any"]]
    return spans.resident_homes(con).merge(flags, on="child_id", how="left")


def _resident_members(base: pd.DataFrame, layer: str, area: str) -> pd.DataFrame:
    column = f"home_{layer}"
    return base[base[column].isna()] if area == UNPLACED else base[base[column] == area]


def resident_truth(con, cells) -> dict[Cell, int]:
    """True resident counts (children by home area, with a flag or not) of ``cells``, from the store."""
    if not cells:
        return {}
    base = resident_base(con)
    out = {}
    for cell in cells:
        members = _resident_members(base, cell.layer, cell.area)
        flag = RESIDENT_FLAGS[cell.measure]
        out[cell] = int(len(members) if flag is None else members[flag].astype(bool).sum())
    return out


@dataclass
class StoreRelations:
    """The partitions the service publishes on, read from the store (the test is the lead): given to the
    attacker, which is more than a real attacker knows (they know the method, not which atoms are non-empty),
    so the bounds are no wider than a real attacker's.

    - ``home``: children by their home area in every layer (picked per layer, lib.measures.spans), one atom per
      distinct combination: Across's resident counts are sums over these atoms (a child's district and county
      can come from different records, so the lookup's combinations are not enough: with them the programme
      had no solution).
    - ``flow``: records of linked children by home and encounter area in every flow atom layer
      (spans.atom_layers, as published): every flow's encounters are a sum of these atoms' perturbed values.
    - ``classes``: children with the same flows in every layer (home area and the other areas they were
      encountered in): every flow's distinct children are a sum over classes.
    ``members``: (measure, layer, area) -> atoms or classes; ``truth``: (measure, atom) -> true count."""
    members: dict[tuple, frozenset] = field(default_factory=dict)
    truth: dict[tuple, int] = field(default_factory=dict)
    flows: dict[tuple, frozenset] = field(default_factory=dict)  # (measure, layer, "a>b") of every non-empty flow

    def atoms(self, cell: Cell) -> frozenset | None:
        if cell.basis == "flow" or cell.measure in RESIDENT_FLAGS:
            return self.members.get((cell.measure, cell.layer, cell.area), frozenset())
        return None


def store_relations(store_path: Path, home_layers=None, flow_layers=None) -> StoreRelations:
    """The store's home atoms, flow atoms and flow classes (see ``StoreRelations``) for the layers given."""
    home_layers = list(home_layers if home_layers is not None else spans.RESIDENT_LAYERS)
    flow_layers = list(flow_layers if flow_layers is not None else HOME_COLUMN)
    out = StoreRelations()
    con = store_mod.connect(store_path, read_only=True)
    try:
        if home_layers:
            base = resident_base(con)
            base["atom"] = "s" + base[ATOM].astype(str)
            for layer in home_layers:  # one partition for every count (which atoms hold no spanning child,
                # say, is not given away)
                column = f"home_{layer}"
                for area, atoms in base.assign(**{column: base[column].fillna(UNPLACED)}).groupby(column)["atom"]:
                    for measure in RESIDENT_FLAGS:
                        out.members[(measure, layer, area)] = frozenset(atoms)
            for measure, flag in RESIDENT_FLAGS.items():
                chosen = base if flag is None else base[base[flag].astype(bool)]
                counts = chosen.groupby("atom").size()
                for atom in base["atom"].unique():
                    out.truth[(measure, atom)] = int(counts.get(atom, 0))
        if flow_layers:
            atom_layers = spans.atom_layers(flow_layers[0])
            homes = ",\n".join(f"h{i} AS ({spans._home_sql(g)})" for i, g in enumerate(atom_layers))
            joins = " ".join(f"LEFT JOIN h{i} ON h{i}.child_id = rc.child_id" for i in range(len(atom_layers)))
            cols = [*(f"h{i}.home_area AS home_{g}" for i, g in enumerate(atom_layers)),
                    *(f"e.enc_{registry.REGISTRY[g].stored_key} AS enc_{g}" for g in atom_layers)]
            records = store_mod.query(con, f"""
                WITH {homes}
                SELECT rc.child_id, {", ".join(cols)}
                FROM encounters e JOIN record_child rc USING (record_key) {joins}
                WHERE rc.child_id IS NOT NULL""")
            keys = [f"home_{g}" for g in atom_layers] + [f"enc_{g}" for g in atom_layers]
            records["atom"] = "f" + pd.Series(pd.factorize(pd.MultiIndex.from_frame(
                records[keys].fillna("")))[0], index=records.index).astype(str)
            for atom, n in records.groupby("atom").size().items():
                out.truth[("flow_encounters", atom)] = int(n)
            signature = []
            for layer in flow_layers:
                moves = records[records[f"home_{layer}"].notna() & records[f"enc_{layer}"].notna()
                                & (records[f"home_{layer}"] != records[f"enc_{layer}"])]
                area = moves[f"home_{layer}"] + ">" + moves[f"enc_{layer}"]
                for flow, atoms in moves.assign(area=area).groupby("area")["atom"]:
                    out.members[("flow_encounters", layer, flow)] = frozenset(atoms)
                    out.flows[("flow_encounters", layer, flow)] = frozenset(atoms)
                signature.append(moves.assign(area=area).groupby("child_id")["area"].agg(
                    lambda a: "|".join(sorted(set(a)))).rename(layer))
            if signature:
                per_child = pd.concat(signature, axis=1).fillna("")
                per_child["cls"] = "k" + pd.Series(pd.factorize(pd.MultiIndex.from_frame(per_child))[0],
                                                   index=per_child.index).astype(str)
                for cls, n in per_child.groupby("cls").size().items():
                    out.truth[("flow_children", cls)] = int(n)
                for layer in flow_layers:
                    chosen = per_child[per_child[layer] != ""]
                    exploded = chosen[["cls"]].assign(area=chosen[layer].str.split("|")).explode("area")
                    for flow, classes in exploded.groupby("area")["cls"]:
                        out.members[("flow_children", layer, flow)] = frozenset(classes)
                        out.flows[("flow_children", layer, flow)] = frozenset(classes)
    finally:
        con.close()
    return out


def programmes(seen: Collected, extra=(), relations: StoreRelations | None = None
               ) -> dict[tuple, tuple[attack.Programme, dict[Cell, dict[str, float]]]]:
    """One programme per (measure, basis) of additive counts: variables t (true) and q (published, under
    perturbation) per agency x period x atom, where "all" is the sum of the financial years (those published;
    under perturbation the store's, each perturbed once); each published count an equality (perturbation: sum
    of q; suppression: sum of t), children (perturbed per cell) within MAX_NOISE of their sum of t, ``c`` no
    relation; ``extra``: cells not published (a row left out) to bound too. With ``relations``
    (``store_relations``): Across's resident counts on the store's home atoms, and the flows as relations
    (encounters: sums of perturbed flow atoms; children: sums over classes, within MAX_NOISE), every flow not
    listed being published as 0. Each distinct observation is one relation. Returns the programme and each
    cell's target (variable -> coefficient)."""
    out = {}
    cells = (list(dict.fromkeys(seen.observations)) if seen.observations
             else [(c, v, seen.method) for c, v in seen.cells.items()])
    cells += [(c, None, seen.method) for c in extra if c not in seen.cells]
    if relations is not None:  # a flow not listed is published as 0 (the "All flows" table lists every other)
        flow_method = next((m for c, _, m in cells if c.basis == "flow"), None)
        if flow_method is not None:
            shown = {c for c, _, _ in cells if c.basis == "flow"}
            for measure, layer, flow in relations.flows:
                cell = Cell(layer, flow, "all", "all", measure, "flow")
                if cell not in shown and any(c.layer == layer for c in shown):
                    cells.append((cell, 0, flow_method))
    else:
        cells = [x for x in cells if x[0].basis != "flow"]
    years = defaultdict(set)
    for cell, _, _ in cells:
        if cell.basis in ("flow", "home"):
            continue  # flows and resident children are over all periods together, perturbed once
        if cell.period != "all" and seen.years_complete:
            years[(cell.measure, cell.basis)].add(cell.period)
        if seen.method == "perturbation" and _per_atom(cell) and seen.years:
            # the method perturbs each atom once per financial year: "all" is the sum of the years' atoms
            years[(cell.measure, cell.basis)].update(seen.years)
    for cell, value, method in cells:
        if not _additive(cell):
            continue
        key = (cell.measure, cell.basis)
        if key not in out:
            out[key] = (attack.Programme(), {})
        lp, targets = out[key]
        periods = sorted(years[key]) if cell.period == "all" and years[key] else [cell.period]
        own = relations.atoms(cell) if relations is not None else None
        members = sorted(own if own is not None else atoms_of(cell))
        target: dict[str, float] = {}
        terms: dict[int, float] = {}
        for agency in cell.agency.split("+"):
            for period in periods:
                for atom in members:
                    name = f"{agency}|{period}|t|{atom}"
                    t = lp.var(name, hi=CEILING)
                    target[name] = 1.0
                    if method == "perturbation" and _per_atom(cell):
                        qname = f"{agency}|{period}|q|{atom}"
                        if qname not in lp.columns:
                            q = lp.var(qname, hi=CEILING)
                            lp.add_le({q: 1.0, t: -1.0}, MAX_NOISE)
                            lp.add_le({t: 1.0, q: -1.0}, MAX_NOISE)
                        terms[lp.columns[qname]] = terms.get(lp.columns[qname], 0.0) + 1.0
                    else:
                        terms[t] = terms.get(t, 0.0) + 1.0
        targets[cell] = target
        if value in (HIDDEN, None) or not terms:
            continue
        if method == "perturbation" and not _per_atom(cell):
            # children are perturbed per published cell (their cell key): within MAX_NOISE of the cell's truth
            lp.add_le(terms, float(value) + MAX_NOISE)
            lp.add_le({k: -v for k, v in terms.items()}, -(float(value) - MAX_NOISE))
        else:
            lp.add_eq(terms, float(value))
    return out


def witness(lp: attack.Programme) -> tuple | None:
    """Two points the attacker cannot rule out, built from one feasible point of the programme and checked
    against every row (``Programme.feasible``), or None when they do not hold: the published values q of every
    atom kept, each atom's true count t moved to the bottom (``x_lo``: max(0, q - MAX_NOISE)) or the top
    (``x_hi``: q + MAX_NOISE) of its noise band, and a count in no relation at its own bounds. Any sum of true
    counts then reaches at most its value at ``x_lo`` and at least its value at ``x_hi``: where those are
    three or more whole values apart the linear programme cannot narrow the cell further, without a solve
    (where records are perturbed on atoms, subtracting published counts fixes sums of q, never t)."""
    if not any("|q|" in name for name in lp.columns):
        return None  # no atom perturbed once: nothing to move within its band
    try:
        x0 = lp.point()
    except RuntimeError:
        return None
    lower, upper = np.array(lp.lower), np.array(lp.upper)
    x_lo, x_hi = x0.copy(), x0.copy()
    _, _, parts, _ = lp._layout()
    for cols, eq_rows, ub_rows in parts.values():
        if not len(eq_rows) and not len(ub_rows):
            x_lo[cols], x_hi[cols] = lower[cols], upper[cols]
    for name, t in lp.columns.items():
        if "|t|" not in name:
            continue
        q = lp.columns.get(name.replace("|t|", "|q|", 1))
        if q is None:
            continue
        x_lo[t] = max(lower[t], x0[q] - MAX_NOISE)
        x_hi[t] = min(upper[t], x0[q] + MAX_NOISE)
    if not (lp.feasible(x_lo) and lp.feasible(x_hi)):
        return None
    return x_lo, x_hi


def moves(lp: attack.Programme, x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """How far each variable can move up and down on its own from the point ``x`` (checked feasible) with every
    row still met: the slack of each inequality over the variable's coefficient, nothing in an equality, and
    its bounds. None when ``x`` is not feasible. A target sum can then reach at least its value at ``x`` plus
    (minus) the largest single move of one of its variables: points the attacker cannot rule out."""
    if not lp.feasible(x):
        return None
    _, _, a_ub, b_ub, _ = lp._built()
    a_eq = lp._built()[0]
    up = np.array(lp.upper, dtype=float) - x
    down = x - np.array(lp.lower, dtype=float)
    if a_ub is not None:
        slack = np.clip(b_ub - a_ub @ x, 0.0, None)
        coo = a_ub.tocoo()
        limit = slack[coo.row] / np.abs(coo.data)
        rising = coo.data > 0
        np.minimum.at(up, coo.col[rising], limit[rising])
        np.minimum.at(down, coo.col[~rising], limit[~rising])
    if a_eq is not None:
        fixed = np.unique(a_eq.tocoo().col)
        up[fixed] = 0.0
        down[fixed] = 0.0
    return np.clip(up, 0.0, None), np.clip(down, 0.0, None)


def _truth_point(lp: attack.Programme, measure: str, relations: StoreRelations | None) -> np.ndarray | None:
    """The true counts as a point of the programme (every variable a true count of the store's atoms or
    classes), when ``relations`` knows them all; else None."""
    if relations is None:
        return None
    x = np.zeros(len(lp.columns))
    for name, j in lp.columns.items():
        atom = name.split("|t|", 1)[1] if "|t|" in name else None
        value = relations.truth.get((measure, atom)) if atom is not None else None
        if value is None:
            return None
        x[j] = value
    return x


def guarantee(cell: Cell) -> int:
    """The narrowest width (high - low) the method promises for a protected count of 1-5 (docs/DISCLOSURE.md,
    "What it guarantees"): records, flow encounters and resident children, perturbed once per atom and summed,
    at least three whole values (2); children per flow, perturbed flow by flow, never pinned (1). Under
    per-table suppression (shown counts exact) the test asks three values of every hidden cell (2)."""
    return 2 if _per_atom(cell) or cell.basis not in ("home", "flow") else 1


def lp_bounds(seen: Collected, truth: dict[Cell, object], *, limit: int | None = None,
              stats: dict | None = None, relations: StoreRelations | None = None) -> tuple[list[Finding], int]:
    """(findings, cells bounded): each cell whose true count is 1-5 and that the method protects (under
    suppression: shown as c or left out; under perturbation: every cell) is bounded; a finding is one bounded
    more narrowly than the method promises (``guarantee``). Every such cell is bounded (``limit``: the first
    ``limit`` per programme only), by the first of: the checked witness points of ``witness`` (atoms
    perturbed once: every true count at the bottom or the top of its noise band), single moves from the true
    point (``moves``: children, whose cells are perturbed one by one), and the linear programme itself,
    component by component. A cell settled without a solve has an interval at least as wide as the one
    shown: the programme's is wider or equal. ``relations`` (``store_relations``): the store's home atoms and
    the flows as relations (``programmes``). ``stats`` (a dict) receives: proven (by the witness), moved (by
    single moves), solved (by the LP), outside (solved cells whose true count the programme excludes: its model
    of the method does not hold; must be 0), programmes, components, the narrowest interval of each kind and
    the seconds spent."""
    started = time.perf_counter()
    findings, bounded = [], 0
    info = {"proven": 0, "moved": 0, "solved": 0, "programmes": 0, "components": 0, "outside": 0}
    narrowest: dict[str, tuple] = {}
    exact = {c for c, v, m in seen.observations if m == "suppression" and v != HIDDEN}
    for key, (lp, targets) in programmes(seen, extra=list(truth), relations=relations).items():
        cells = [c for c in targets if isinstance(truth.get(c), int) and 1 <= truth[c] <= 5 and c not in exact]
        if not cells:
            continue
        info["programmes"] += 1
        info["components"] += lp.components()
        proof = witness(lp)
        point = None if proof is not None else _truth_point(lp, key[0], relations)
        if proof is None and point is None:
            try:
                point = lp.point()
            except RuntimeError as error:
                raise RuntimeError(f"{key}: {error}") from error
        steps = moves(lp, point) if point is not None else None
        solved: dict[frozenset, tuple[int, int, str]] = {}  # cells with the same target (same agencies, periods
        # and atoms, e.g. a unitary authority on the district and county layers) have the same bounds: once
        for cell in cells[:limit] if limit else cells:
            target = frozenset(targets[cell].items())
            if target not in solved:
                how = None
                index = np.array([lp.columns[n] for n in targets[cell]], dtype=np.int64)
                coef = np.array(list(targets[cell].values()))
                if proof is not None:
                    lo, hi = attack.integer_interval(float(coef @ proof[0][index]), float(coef @ proof[1][index]))
                    how = "proven" if hi - lo >= 2 else None
                if how is None and steps is not None:
                    value = float(coef @ point[index])
                    lo, hi = attack.integer_interval(value - float(np.max(coef * steps[1][index])),
                                                     value + float(np.max(coef * steps[0][index])))
                    how = "moved" if hi - lo >= 2 else None
                if how is None:
                    try:
                        lo, hi = attack.integer_interval(*lp.bound(targets[cell]))
                    except RuntimeError as error:
                        raise RuntimeError(f"{key}, {cell}: {error}") from error
                    how = "solved"
                    if not lo <= truth[cell] <= hi:  # the attacker's model does not hold on this store
                        info["outside"] += 1
                solved[target] = (lo, hi, how)
                info[how] += 1
                if how not in narrowest or hi - lo < narrowest[how][0]:
                    narrowest[how] = (hi - lo, f"{cell.layer} {cell.area} {cell.agency} {cell.period} "
                                               f"{cell.measure} ({cell.basis}): true {truth[cell]}, [{lo}, {hi}]")
            lo, hi, how = solved[target]
            bounded += 1
            if bounded % 2000 == 0:
                log(f"LP: {bounded} protected cells bounded ({info}), {len(findings)} findings")
            if hi - lo < guarantee(cell):
                findings.append(Finding(cell, truth[cell], lo, hi, f"LP over {len(targets)} published cells of "
                                        f"{key[0]} ({key[1]})"))
    info.update(seconds=round(time.perf_counter() - started, 1), bounded=bounded,
                **{f"narrowest_{k}": v for k, v in narrowest.items()})
    if stats is not None:
        stats.update(info)
    return findings, bounded


def summary(findings: list[Finding], limit: int = 20) -> str:
    lines = [f"{f.cell.layer} {f.cell.area} {f.cell.agency} {f.cell.measure} ({f.cell.basis}): true {f.true}, "
             f"bounded to [{f.low}, {f.high}] by {f.how}" for f in findings[:limit]]
    return "\n".join(lines) + (f"\n... and {len(findings) - limit} more" if len(findings) > limit else "")


def area_name(layer: str, code: str) -> str:
    return lookup.name_of(layer).get(code, code)


def code_of(layer: str, name: str) -> str:
    matches = [c for c, n in lookup.name_of(layer).items() if n == name]
    if len(matches) != 1:
        raise ValueError(f"{name!r} is not one area of layer {layer}: {matches}")
    return matches[0]

