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

import pandas as pd

from lib.geo import lookup
from lib.measures import convert

TIDY_COLUMNS = ["area_code", "area_name", "geographic_level", "period", "count", "status"]
DFE_ID_COLUMNS = {"time_period", "time_identifier", "geographic_level", "country_code", "country_name",
                  "region_code", "region_name", "new_la_code", "old_la_code", "la_name", "la_code"}
SUPPRESSED = {"c", "low"}
UNAVAILABLE = {"x", "z", "u", ":", "", ".", "na", "n/a"}
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


def dfe_period(value: str) -> str:
    """``202324`` → ``2023-24``; ``2023`` stays; anything else is returned trimmed."""
    value = str(value).strip()
    if len(value) == 6 and value.isdigit():
        return f"{value[:4]}-{value[4:]}"
    return value


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


def read_dfe_c3(source, factor: str = "Child_sexual_exploitation") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read a DfE C3 factors file: (tidy frame of ``factor``, report of unknown/retired LA codes)."""
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
                         "geographic_level": level, "period": col("time_period").map(dfe_period).astype("str"),
                         "count": count, "status": status})
    if tidy["count"].dropna().mod(1).eq(0).all():
        tidy["count"] = tidy["count"].astype("Int64")
    return tidy[TIDY_COLUMNS], check_codes(tidy)


GENERIC_ALIASES = {"area_code": ("area_code", "code", "area", "gss_code", "org_code", "ods_code"),
                   "period": ("period", "time_period", "year", "quarter"),
                   "count": ("count", "value", "n", "cases"),
                   "area_name": ("area_name", "name")}


def guess_layer(codes: pd.Series) -> str:
    """The measure layer whose codes match most of ``codes``."""
    values = set(codes.dropna().astype(str))
    best = max(convert.MEASURE_LAYERS, key=lambda layer: len(values & set(convert.area_codes(layer))))
    return best


def read_generic(source, layer: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
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
    return tidy[TIDY_COLUMNS], check_codes(tidy, layer, levels=(layer,))


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
