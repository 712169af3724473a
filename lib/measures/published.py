"""Import published statistics into a tidy frame: DfE children in need table C3, or a generic CSV.

Tidy output (``TIDY_COLUMNS``): ``area_code``, ``area_name``, ``geographic_level``, ``period``, ``count``
(nullable Int64/Float64: empty where suppressed or unavailable), ``status`` (``ok``, ``suppressed``,
``unavailable``).

DfE C3 ("factors identified at the end of assessment"): one row per area and year with ``time_period``
(``202324`` → period ``"2023-24"``), ``geographic_level`` (``National``, ``Regional``, ``Local authority``),
``country_code``/``region_code`` (where present), ``new_la_code`` (upper-tier GSS code), ``old_la_code``,
``la_name``, and one count column per factor (e.g. ``Child_sexual_exploitation``). Values: a number
(commas allowed); ``c`` = suppressed (DfE convention for small numbers); ``x`` = not available; ``z`` (not
applicable), ``u``, ``:`` and blanks are also treated as unavailable; ``low`` as suppressed. National rows take
the country code (or ``E92000001``), regional rows the region code.

Area codes of local-authority rows are checked against the current children's services authorities
(``lib.geo.lookup.area_names('utla')``): a retired code (e.g. ``E10000023``, North Yorkshire County Council →
``E06000065``; ``E08000016`` Barnsley → ``E08000038``) is reported as *retired* with its successor(s) from the
derived successor table (``lib.geo.successors``); any other
unknown code as *unknown*. Rows are never dropped silently: they stay in the tidy frame and are listed
in the report.
"""
from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from lib.geo import lookup
from lib.measures import convert

TIDY_COLUMNS = ["area_code", "area_name", "geographic_level", "period", "count", "status"]
DFE_ID_COLUMNS = {"time_period", "time_identifier", "geographic_level", "country_code", "country_name",
                  "region_code", "region_name", "new_la_code", "old_la_code", "la_name", "la_code"}
SUPPRESSED = {"c", "low", "k"}
UNAVAILABLE = {"x", "z", "u", ":", "", ".", "na", "n/a"}
#: What each GSS / DfE symbol means (as the DfE CSC outcomes and enablers dashboard explains them). A cell
#: with a symbol has no count: it is shown as its meaning, never as zero.
SYMBOL_MEANINGS = {
    "c": "suppressed (confidential)",
    "k": "rounds to 0 but is not 0",
    "low": "rounds to 0 but is not 0",
    "u": "low reliability",
    "x": "not available",
    "z": "not applicable",
    ":": "not available",
    ".": "not available",
    "": "blank (not available)",
}
PUBLISHED_COLUMNS = [*["area_code", "area_name", "geographic_level", "period", "count", "status"], "symbol",
                     "meaning", "basis"]
ENGLAND = "E92000001"
LEVELS = {"national": "National", "regional": "Regional", "local authority": "Local authority"}


@lru_cache(maxsize=1)
def retired_codes() -> dict[str, str]:
    """Retired upper-tier/LAD code → its successor(s) ("code name", comma-separated where the area was split),
    from the derived successor table geodata/facts/code_successors.csv (lib.geo.successors)."""
    from lib.geo import successors

    out: dict[str, str] = {}
    for kind in ("utla", "lad"):
        names = lookup.name_of(kind)
        for code, entry in successors.by_kind(kind).items():
            if code in out:
                continue
            if entry.status == "mapped":
                out[code] = f"{entry.new_code} {entry.new_name}"
            else:
                out[code] = ", ".join(f"{new} {names.get(new, '')}".strip() for new, _ in entry.destinations)
    return out


def _read_text_csv(source) -> pd.DataFrame:
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    frame = pd.read_csv(source, dtype=str, keep_default_na=False, encoding_errors="replace")
    frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
    return frame


def parse_values(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(count as Float64 with <NA> where not a number, status) for published cells."""
    cleaned = text.astype("string").str.strip().str.replace(",", "", regex=False)
    lowered = cleaned.str.lower()
    numbers = pd.to_numeric(cleaned, errors="coerce").astype("Float64")
    status = pd.Series("ok", index=text.index, dtype="str")
    status[lowered.isin(SUPPRESSED).fillna(False).to_numpy(bool)] = "suppressed"
    unavailable = (numbers.isna() & ~lowered.isin(SUPPRESSED).fillna(False)).to_numpy(bool)
    status[unavailable] = "unavailable"
    numbers[status != "ok"] = pd.NA
    return numbers, status


def dfe_period(value: str, identifier: str = "") -> str:
    """``202324`` → ``2023-24``; a DfE *reporting year* ``2025`` (year ending 31 March 2025) → ``2024-25``, the
    financial year the store's periods use; any other ``2023`` stays; anything else is returned trimmed."""
    value = str(value).strip()
    if len(value) == 6 and value.isdigit():
        return f"{value[:4]}-{value[4:]}"
    if len(value) == 4 and value.isdigit() and str(identifier).strip().lower() == "reporting year":
        year = int(value)
        return f"{year - 1}-{year % 100:02d}"
    return value


def symbols(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(symbol, meaning) of published cells: the symbol as published (lower case, trimmed; ``""`` where the
    cell is a number) and what it means (``""`` for a number)."""
    cleaned = text.astype("string").fillna("").str.strip()
    numeric = pd.to_numeric(cleaned.str.replace(",", "", regex=False), errors="coerce").notna()
    symbol = cleaned.str.lower().where(~numeric, "").astype("str")
    meaning = symbol.map(lambda v: SYMBOL_MEANINGS.get(v, f"not a number ({v!r})")).where(~numeric, "")
    return symbol, meaning.astype("str")


def dfe_factors(source) -> list[str]:
    """The factor (count) columns of a C3 file."""
    frame = _read_text_csv(source)
    return [c for c in frame.columns if c.lower() not in DFE_ID_COLUMNS]


def check_codes(tidy: pd.DataFrame, layer: str = "utla", levels: tuple[str, ...] = ("Local authority",)
                ) -> pd.DataFrame:
    """Rows whose area code is not a current area of ``layer``: ``area_code``, ``area_name``, ``period``,
    ``problem`` (``retired`` / ``unknown`` / ``missing code``), ``detail``."""
    known = set(convert.area_codes(layer)) | set(convert.area_names(layer))
    retired = retired_codes()
    rows = tidy[tidy["geographic_level"].isin(levels)] if levels else tidy
    report = []
    for row in rows.itertuples(index=False):
        code = (row.area_code or "").strip()
        if not code:
            report.append((code, row.area_name, row.period, "missing code", "no area code on this row"))
        elif code in known:
            continue
        elif code in retired:
            report.append((code, row.area_name, row.period, "retired", f"replaced by {retired[code]}"))
        else:
            report.append((code, row.area_name, row.period, "unknown",
                           f"not a current {convert.MEASURE_LAYERS.get(layer, layer).lower()} code"))
    return pd.DataFrame(report, columns=["area_code", "area_name", "period", "problem", "detail"])


def read_dfe_c3(source, factor: str = "Child_sexual_exploitation", *, with_symbols: bool = False
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read a DfE C3 factors file: (tidy frame of ``factor``, report of unknown/retired LA codes).
    ``with_symbols`` adds ``symbol`` and ``meaning`` (see ``symbols``)."""
    frame = _read_text_csv(source)
    lower = {c.lower(): c for c in frame.columns}
    missing = [c for c in ("time_period", "geographic_level") if c not in lower]
    if missing:
        raise ValueError(f"not a DfE C3 file: missing column(s) {', '.join(missing)}")
    factors = [c for c in frame.columns if c.lower() not in DFE_ID_COLUMNS]
    chosen = lower.get(factor.lower()) if factor.lower() not in DFE_ID_COLUMNS else None
    if chosen is None:
        raise ValueError(f"factor {factor!r} is not a column of this file; choose from {', '.join(factors)}")

    def col(name: str) -> pd.Series:
        return frame[lower[name]].astype("string").str.strip() if name in lower else \
            pd.Series("", index=frame.index, dtype="string")

    level_raw = col("geographic_level")
    level = level_raw.str.lower().map(LEVELS).fillna(level_raw).astype("str")
    la_code = col("new_la_code").where(col("new_la_code") != "", col("la_code"))
    code = la_code.copy()
    national = level == "National"
    regional = level == "Regional"
    code[national] = col("country_code")[national].replace("", ENGLAND)
    code[regional] = col("region_code")[regional]
    name = col("la_name").copy()
    name[national] = col("country_name")[national].replace("", "England")
    name[regional] = col("region_name")[regional]
    count, status = parse_values(frame[chosen])
    tidy = pd.DataFrame({"area_code": code.fillna("").astype("str"), "area_name": name.fillna("").astype("str"),
                         "geographic_level": level,
                         "period": [dfe_period(v, i) for v, i in zip(col("time_period"), col("time_identifier"))],
                         "count": count, "status": status})
    tidy["period"] = tidy["period"].astype("str")
    if tidy["count"].dropna().mod(1).eq(0).all():
        tidy["count"] = tidy["count"].astype("Int64")
    columns = TIDY_COLUMNS
    if with_symbols:
        tidy["symbol"], tidy["meaning"] = symbols(frame[chosen])
        columns = [*TIDY_COLUMNS, "symbol", "meaning"]
    return tidy[columns], check_codes(tidy)


GENERIC_ALIASES = {"area_code": ("area_code", "code", "area", "gss_code", "org_code", "ods_code"),
                   "period": ("period", "time_period", "year", "quarter"),
                   "count": ("count", "value", "n", "cases"),
                   "area_name": ("area_name", "name")}


def guess_layer(codes: pd.Series) -> str:
    """The measure layer whose codes match most of ``codes``."""
    values = set(codes.dropna().astype(str))
    best = max(convert.MEASURE_LAYERS, key=lambda layer: len(values & set(convert.area_codes(layer))))
    return best


def read_generic(source, layer: str | None = None, *, with_symbols: bool = False
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A generic "area code, period, count" CSV (police or health figures) → (tidy frame, report).

    ``geographic_level`` is the layer (given, or guessed from the codes); codes not in that layer are
    reported (retired ones with their successor)."""
    frame = _read_text_csv(source)
    lower = {c.lower(): c for c in frame.columns}
    found = {key: next((lower[a] for a in aliases if a in lower), None) for key, aliases in GENERIC_ALIASES.items()}
    missing = [k for k in ("area_code", "period", "count") if found[k] is None]
    if missing:
        raise ValueError(f"the file needs columns area_code, period and count (missing {', '.join(missing)})")
    codes = frame[found["area_code"]].astype("string").str.strip().fillna("")
    layer = convert.layer_key(layer) if layer else guess_layer(codes)
    names = convert.area_names(layer)
    area_name = (frame[found["area_name"]].astype("str") if found["area_name"]
                 else codes.map(names).fillna("").astype("str"))
    count, status = parse_values(frame[found["count"]])
    tidy = pd.DataFrame({"area_code": codes.astype("str"), "area_name": area_name, "geographic_level": layer,
                         "period": frame[found["period"]].astype("str").map(dfe_period), "count": count,
                         "status": status})
    if tidy["count"].dropna().mod(1).eq(0).all():
        tidy["count"] = tidy["count"].astype("Int64")
    columns = TIDY_COLUMNS
    if with_symbols:
        tidy["symbol"], tidy["meaning"] = symbols(frame[found["count"]])
        columns = [*TIDY_COLUMNS, "symbol", "meaning"]
    return tidy[columns], check_codes(tidy, layer, levels=(layer,))


def to_layer(tidy: pd.DataFrame, from_layer: str, to_layer: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Convert imported area counts (status ``ok`` rows of ``from_layer``) to ``to_layer`` by period:
    (``period``, ``area_code``, ``count``, ``apportioned``, ``sources``), and the rows that could not be
    placed (unknown/retired codes, suppressed or unavailable values)."""
    usable = tidy[(tidy["status"] == "ok")].copy()
    usable["count"] = usable["count"].astype("float64")
    converted, unmatched = convert.convert(usable, from_layer, to_layer, ["count"], by=["period"])
    left_out = pd.concat([tidy[tidy["status"] != "ok"], unmatched], ignore_index=True)
    return converted, left_out


def write_tidy(tidy: pd.DataFrame, path: str | Path) -> None:
    tidy.to_csv(path, index=False)


# -- the vendored DfE C3 figures on current codes, beside the store's counts (issue 17) ----------------------

C3_EXTRACT = "dfe_c3_cse_2018_2025"  # geodata/official/, lib.geo.official_lookups
C3_SOURCE = ("DfE Children in need, table C3: factors identified at the end of assessment (child sexual "
             "exploitation), years ending 31 March 2018 to 2025; OGL v3")


def _recode_to_current(tidy: pd.DataFrame, population: dict[str, float]) -> pd.DataFrame:
    """Local-authority rows on current children's services authority codes (``basis`` says how): a retired
    code that maps to one successor is re-coded; a split one (Cumbria, Northamptonshire) is apportioned to
    its successors by their official child population (0–17), and its symbol, if any, goes with each part."""
    from lib.geo import successors

    table = {**successors.by_kind("lad"), **successors.by_kind("utla")}  # unitary districts: their LAD change
    names = convert.area_names("utla")
    current = set(convert.area_codes("utla"))
    parts = []
    for row in tidy.itertuples(index=False):
        entry = table.get(row.area_code) if row.area_code not in current else None
        record = row._asdict()
        if entry is None:
            parts.append({**record, "basis": "as published" if row.area_code in current else
                          "retired code without a successor in the official lookups: not on current codes"})
        elif entry.status == "mapped":
            parts.append({**record, "area_code": entry.new_code, "area_name": names.get(entry.new_code, row.area_name),
                          "basis": f"re-coded from {row.area_code} ({row.area_name})"})
        else:
            codes = [code for code, _ in entry.destinations]
            weights = np.array([population.get(code, 0.0) for code in codes], dtype=float)
            weights = weights / weights.sum() if weights.sum() > 0 else np.full(len(codes), 1 / len(codes))
            for code, w in zip(codes, weights):
                count = row.count if pd.isna(row.count) else float(row.count) * w
                parts.append({**record, "area_code": code, "area_name": names.get(code, code), "count": count,
                              "basis": f"apportioned from {row.area_code} ({row.area_name}): {w:.1%} by "
                                       "children aged 0-17"})
    out = pd.DataFrame(parts, columns=PUBLISHED_COLUMNS)
    out["count"] = out["count"].astype("Float64")
    return out


@lru_cache(maxsize=4)
def dfe_c3(factor: str = "Child_sexual_exploitation", levels: tuple[str, ...] = ("Local authority",)
           ) -> pd.DataFrame:
    """The vendored DfE C3 figures (``geodata/official/dfe_c3_cse_2018_2025.csv``) for ``factor``, one row per
    area and financial year (reporting year 2025 → ``2024-25``), local authorities on current codes:
    ``PUBLISHED_COLUMNS``. A symbol (c, k, low, u, x, z) leaves ``count`` empty; ``symbol`` and ``meaning``
    keep it. Callers must not modify the frame."""
    from lib.geo import official_lookups
    from lib.measures import population as pop

    tidy, _ = read_dfe_c3(official_lookups.path(C3_EXTRACT), factor, with_symbols=True)
    tidy = tidy[tidy["geographic_level"].isin(levels)]
    children = pop.official_population("utla").set_index("area_code")["children"].astype(float).to_dict()
    la = tidy["geographic_level"] == "Local authority"
    out = pd.concat([_recode_to_current(tidy[la], children),
                     tidy[~la].assign(basis="as published")[PUBLISHED_COLUMNS]], ignore_index=True)
    return out.sort_values(["geographic_level", "area_code", "period"], ignore_index=True)


def store_csc_counts(con, measure: str = "cse_records") -> pd.DataFrame:
    """The store's children's social care CSE counts per authority (``agency_code``) and financial year:
    ``area_code``, ``period``, ``store_count``. ``cse_records`` counts CSE-flagged records; ``cse_children``
    distinct linked children with one (needs a linkage run)."""
    year = "(year(e.encounter_date) - CASE WHEN month(e.encounter_date) < 4 THEN 1 ELSE 0 END)"
    period = f"CAST({year} AS VARCHAR) || '-' || lpad(CAST(({year} + 1) % 100 AS VARCHAR), 2, '0')"
    if measure == "cse_records":
        value, join = "count(*)", ""
    elif measure == "cse_children":
        value, join = "count(DISTINCT rc.child_id)", "JOIN record_child rc ON rc.record_key = e.record_key"
    else:
        raise ValueError(f"unknown measure {measure!r}: cse_records or cse_children")
    sql = (f"SELECT e.agency_code AS area_code, {period} AS period, {value} AS store_count FROM encounters e "
           f"{join} WHERE e.agency_type = 'children_social_care' AND e.cse_flag GROUP BY ALL ORDER BY ALL")
    cur = con.cursor()
    try:
        frame = cur.execute(sql).df()
    finally:
        cur.close()
    frame["store_count"] = frame["store_count"].astype("int64")
    return frame


def reconcile(store: pd.DataFrame, figures: pd.DataFrame | None = None) -> pd.DataFrame:
    """The published figure beside the store's count, per area and period present in either:
    ``area_code``, ``area_name``, ``period``, ``store_count`` (0 where the store has none), ``published``
    (empty where the cell carries a symbol or there is no figure), ``symbol``, ``meaning``, ``basis``,
    ``text`` ("your extract: X; published: Y", Y being the symbol's meaning where there is one).
    ``figures`` defaults to the vendored DfE C3 local-authority figures."""
    figures = dfe_c3() if figures is None else figures
    pub = figures[["area_code", "area_name", "period", "count", "symbol", "meaning", "basis"]].rename(
        columns={"count": "published"})
    pub = pub.groupby(["area_code", "period"], as_index=False).agg(
        area_name=("area_name", "first"), published=("published", lambda v: v.sum(min_count=1)),
        symbol=("symbol", lambda v: ",".join(sorted({x for x in v if x}))),
        meaning=("meaning", lambda v: "; ".join(sorted({x for x in v if x}))), basis=("basis", "first"))
    out = store[["area_code", "period", "store_count"]].merge(pub, on=["area_code", "period"], how="outer")
    names = convert.area_names("utla")
    out["area_name"] = out["area_name"].fillna(out["area_code"].map(names)).fillna("")
    out["store_count"] = out["store_count"].fillna(0).astype("int64")
    out["published"] = out["published"].astype("Float64")
    for column in ("symbol", "meaning", "basis"):
        out[column] = out[column].fillna("").astype("str")
    out["text"] = [f"your extract: {s:,}; published: " + (_figure(p) if m == "" or pd.notna(p) else m)
                   + ("" if pd.notna(p) or m else "no figure")
                   for s, p, m in zip(out["store_count"], out["published"], out["meaning"])]
    return out.sort_values(["area_code", "period"], ignore_index=True)


def _figure(value) -> str:
    if pd.isna(value):
        return ""
    value = float(value)
    return f"{value:,.0f}" if value == round(value) else f"{value:,.1f}"


def to_police_force(figures: pd.DataFrame | None = None) -> pd.DataFrame:
    """Published local-authority figures summed to police force areas, per period: ``area_code``, ``area_name``,
    ``period``, ``count`` (the sum of the numbers), ``apportioned`` (an authority's figure was shared between
    forces by its postcodes, ``lib.measures.convert``), ``authorities`` (how many contributed a number),
    ``symbols`` (the authorities whose cell carried a symbol, with its meaning: the sum leaves them out and
    says so), ``complete`` (no such authority)."""
    figures = dfe_c3() if figures is None else figures
    la = figures[figures["geographic_level"].isin(["Local authority", "utla"])].copy()
    la["count"] = la["count"].astype("float64")
    numbers = la[la["count"].notna()]
    summed, _ = convert.convert(numbers, "utla", "pfa", ["count"], by=["period"])
    weights = convert.weights("utla", "pfa")
    marked = la[la["symbol"] != ""].merge(weights, left_on="area_code", right_on="from_code")
    notes = (marked.assign(note=marked["area_name"] + ": " + marked["symbol"] + ", " + marked["meaning"])
             .groupby(["period", "to_code"])["note"].agg(lambda v: "; ".join(sorted(set(v)))))
    summed["symbols"] = [notes.get((p, c), "") for p, c in zip(summed["period"], summed["area_code"])]
    for (p, c), note in notes.items():  # a force whose every authority carried a symbol still appears
        if not ((summed["period"] == p) & (summed["area_code"] == c)).any():
            summed.loc[len(summed)] = {"period": p, "area_code": c, "count": np.nan, "apportioned": False,
                                       "sources": 0, "symbols": note}
    summed["complete"] = summed["symbols"] == ""
    summed["area_name"] = summed["area_code"].map(convert.area_names("pfa")).fillna("")
    summed = summed.rename(columns={"sources": "authorities"})
    return summed[["area_code", "area_name", "period", "count", "apportioned", "authorities", "symbols",
                   "complete"]].sort_values(["area_code", "period"], ignore_index=True)


# -- imported statistics kept in the store ------------------------------------------------------------------

STORE_TABLE = "published_figures"
_STORE_DDL = (f"CREATE TABLE IF NOT EXISTS {STORE_TABLE} (source VARCHAR, area_code VARCHAR, area_name VARCHAR, "
              "geographic_level VARCHAR, period VARCHAR, count DOUBLE, status VARCHAR, symbol VARCHAR, "
              "meaning VARCHAR, basis VARCHAR, imported_at TIMESTAMP)")


def store_figures(con, tidy: pd.DataFrame, source: str) -> int:
    """Keep imported figures in the store (table ``published_figures``), replacing any earlier import of the
    same ``source`` in one transaction (nothing half-written). Symbols are kept with their meaning."""
    frame = tidy.copy()
    if "symbol" not in frame.columns:
        frame["symbol"] = np.where(frame["status"] == "ok", "", frame["status"])
        frame["meaning"] = np.where(frame["status"] == "ok", "", frame["status"])
    if "basis" not in frame.columns:
        frame["basis"] = "as imported"
    frame = frame[PUBLISHED_COLUMNS].assign(source=source, imported_at=pd.Timestamp.now("UTC").tz_localize(None))
    frame["count"] = frame["count"].astype("float64")
    cur = con.cursor()
    try:
        cur.execute(_STORE_DDL)
        cur.execute("BEGIN TRANSACTION")
        try:
            cur.execute(f"DELETE FROM {STORE_TABLE} WHERE source = ?", [source])
            cur.register("_incoming", frame)
            cur.execute(f"INSERT INTO {STORE_TABLE} SELECT source, area_code, area_name, geographic_level, period, "
                        "count, status, symbol, meaning, basis, imported_at FROM _incoming")
            cur.execute("COMMIT")
        except Exception:
            cur.execute("ROLLBACK")
            raise
    finally:
        cur.close()
    return len(frame)


def stored_figures(con, source: str | None = None) -> pd.DataFrame:
    """Figures imported into the store (all sources, or one), as ``PUBLISHED_COLUMNS`` plus ``source``; empty
    when nothing was imported. ``reconcile`` and ``to_police_force`` take them as ``figures``."""
    cur = con.cursor()
    try:
        found = cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                            [STORE_TABLE]).fetchall()[0][0]
        if not found:
            return pd.DataFrame(columns=[*PUBLISHED_COLUMNS, "source"])
        where, args = ("WHERE source = ?", [source]) if source else ("", [])
        frame = cur.execute(f"SELECT * FROM {STORE_TABLE} {where} ORDER BY source, area_code, period", args).df()
    finally:
        cur.close()
    for column in ("symbol", "meaning", "basis"):
        frame[column] = frame[column].fillna("").astype("str")
    frame["count"] = frame["count"].astype("Float64")
    return frame[[*PUBLISHED_COLUMNS, "source"]]


def figures_for(con) -> pd.DataFrame:
    """The published local-authority figures a page shows beside a store: those imported into it (local
    authority rows of any source, latest import first where two give the same area and period), else the
    vendored DfE C3 figures."""
    stored = stored_figures(con)
    stored = stored[stored["geographic_level"].isin(["Local authority", "utla"])]
    if stored.empty:
        return dfe_c3()
    return stored.drop_duplicates(["area_code", "period"], keep="last").drop(columns="source")


def reconcile_store(con, measure: str = "cse_records") -> pd.DataFrame:
    """``reconcile`` of the store's children's social care counts with ``figures_for(con)``."""
    return reconcile(store_csc_counts(con, measure), figures_for(con))


def reconcile_police_force(store: pd.DataFrame, figures: pd.DataFrame | None = None) -> pd.DataFrame:
    """``reconcile`` on police force areas: the store's children's social care counts per authority
    (``store_csc_counts``) and the published figures, both summed to forces. Adds ``complete`` and ``symbols``
    (authorities whose published cell carries a symbol, left out of the published sum)."""
    mine, _ = convert.convert(store.rename(columns={"store_count": "count"}), "utla", "pfa", ["count"],
                              by=["period"])
    pub = to_police_force(figures)
    out = mine[["area_code", "period", "count"]].rename(columns={"count": "store_count"}).merge(
        pub.rename(columns={"count": "published"}), on=["area_code", "period"], how="outer")
    out["area_name"] = out["area_code"].map(convert.area_names("pfa")).fillna("")
    out["store_count"] = out["store_count"].fillna(0).round().astype("int64")
    out["symbols"] = out["symbols"].fillna("").astype("str")
    out["complete"] = out["symbols"] == ""
    out["published"] = out["published"].astype("Float64")
    out["text"] = [f"your extract: {s:,}; published: " + (_figure(p) if pd.notna(p) else "no figure")
                   + ("" if ok else f" (leaves out {sym})")
                   for s, p, ok, sym in zip(out["store_count"], out["published"], out["complete"], out["symbols"])]
    return out[["area_code", "area_name", "period", "store_count", "published", "complete", "symbols", "text"]
               ].sort_values(["area_code", "period"], ignore_index=True)


# -- calibration and coverage figures (lib.synth, bench/bench_default.py) -------------------------------------

def c3_weights(periods: tuple[str, ...], factor: str = "Child_sexual_exploitation") -> pd.DataFrame:
    """Published counts per current authority (rows) and period (columns) for the synthetic generator: a
    symbol (no number) is replaced by the authority's mean over its other periods, or 0 if it has none."""
    figures = dfe_c3(factor)
    wide = (figures[figures["period"].isin(periods)].assign(count=lambda f: f["count"].astype("float64"))
            .groupby(["area_code", "period"])["count"].sum(min_count=1).unstack("period"))
    wide = wide.reindex(columns=list(periods))
    fill = figures.assign(count=figures["count"].astype("float64")).groupby("area_code")["count"].mean()
    return wide.apply(lambda col: col.fillna(fill.reindex(col.index))).fillna(0.0)


def coverage_figures(encounters: pd.DataFrame, threshold: int = 10) -> dict[str, float]:
    """Figures of a synthetic or stored dataset (``agency_type``, ``agency_code``, ``encounter_date``,
    ``cse_flag``): the share of children's services authorities whose children's social care CSE-flagged
    record count over all periods is at least ``threshold`` (also per financial year), the same for police
    force areas (police records), and the Spearman rank correlation of the CSC counts against the published
    C3 figures for the same years (English authorities with a number)."""
    from scipy.stats import spearmanr

    flagged = encounters[encounters["cse_flag"].astype(bool)]
    date = pd.to_datetime(flagged["encounter_date"])
    fy = date.dt.year - (date.dt.month < 4)
    period = fy.astype(str) + "-" + ((fy + 1) % 100).astype(str).str.zfill(2)
    out: dict[str, float] = {}
    for agency, layer, name in (("children_social_care", "utla", "utla_csc"), ("police", "pfa", "pfa_police")):
        codes = convert.area_codes(layer)
        mine = flagged["agency_type"] == agency
        total = flagged[mine].groupby("agency_code").size().reindex(codes, fill_value=0)
        out[f"share_{name}_cse_ge_{threshold}"] = round(float((total >= threshold).mean()), 4)
        by_year = flagged[mine].groupby([period[mine], flagged.loc[mine, "agency_code"]]).size()
        for p in sorted(set(period[mine])):
            counts = by_year.loc[p].reindex(codes, fill_value=0)
            out[f"share_{name}_cse_ge_{threshold}_{p}"] = round(float((counts >= threshold).mean()), 4)
    csc = flagged[flagged["agency_type"] == "children_social_care"]
    years = sorted(set(period[flagged["agency_type"] == "children_social_care"]))
    figures = dfe_c3()
    pub = (figures[figures["period"].isin(years)].assign(count=lambda f: f["count"].astype("float64"))
           .groupby("area_code")["count"].sum(min_count=1).dropna())
    mine = csc.groupby("agency_code").size().reindex(pub.index, fill_value=0)
    out["spearman_csc_vs_c3"] = round(float(spearmanr(mine.to_numpy(), pub.to_numpy()).statistic), 4)
    return out
