"""One child's journey across agencies, for a safeguarding lead: records in date order, masked.

What is shown, and what never is:
- Identifiers are **masked**: the NHS number as its status only ("valid number ••••", "invalid number",
  "none"), with a letter telling apart different numbers of the same child ("valid number •••• (A)");
  names as "name (sound code ALT SM0)" — the phonetic code already stored, never the name; date of
  birth as year of birth only; the home address as its postcode sector ("LS6 2"), never the full postcode.
- Hashes, node ids (which embed part of an NHS-number hash) and home LSOAs are never returned.
- Where the encounter happened is given as area names in every layer and the LSOA centroid (for a map).
- How each record was linked: ``link_method`` and ``best_match_probability`` from ``record_child``,
  plus a plain-English ``how_linked``.
"""
from __future__ import annotations

from collections.abc import Mapping

import duckdb
import pandas as pd

from lib.geo import agencies, layers, lookup
from lib.measures.spans import SPAN_LAYERS, _home_sql, _require_linkage, area_names
from lib.records.identifiers import withhold
from lib.records.store import query

AGENCY_LABELS = agencies.LABELS
#: Which layer names an agency's code (docs/CONTRACTS.md).
AGENCY_CODE_LAYER = agencies.NATIVE_LAYER
#: Encounter-location layers returned for each record, with their column titles: the layer registry's layers
#: with a ``place_title``, the span geographies first (a live view: a layer registered later is named too).
PLACE_LAYERS: Mapping[str, str] = layers.view(lambda layer: bool(layer.place_title), lambda layer: layer.place_title,
                                              order=lambda layer: not layer.span_title)
#: Span geography -> several of its areas, in a sentence (the registry's ``nouns``).
SPAN_WORDS: Mapping[str, str] = layers.view(lambda layer: bool(layer.span_title), lambda layer: layer.nouns)
MASK = "••••"


def record_columns() -> list[str]:
    """Columns of child_records, in order (tests check that nothing else leaves this module)."""
    return ["encounter_date", "agency_type", "agency", "agency_name", "source_record_id", "encounter_type",
            "cse_flag", *[f"enc_{k}_name" for k in PLACE_LAYERS], "lon", "lat", "link_method",
            "best_match_probability", "how_linked", "nhs_status", "nhs_number", "name", "birth_year", "sex",
            "home_sector", "nhs_conflict", "shared_number_suspected"]


def agency_label(agency_type: str) -> str:
    return AGENCY_LABELS.get(agency_type, str(agency_type).replace("_", " ").capitalize())


def _agency_name(agency_type: str, code: str) -> str:
    layer = AGENCY_CODE_LAYER.get(agency_type)
    return lookup.name_of(layer).get(code, code) if layer else code


def _letters(n: int) -> list[str]:
    out = []
    for i in range(n):
        label = ""
        i += 1
        while i:
            i, r = divmod(i - 1, 26)
            label = chr(65 + r) + label
        out.append(label)
    return out


def probability_text(p: float) -> str:
    return "> 0.9999" if p >= 0.99995 else f"{p:.4f}"


def _how_linked(row) -> str:
    method, p = row["link_method"], row["best_match_probability"]
    if method == "single record":
        return "Not linked: the only record of this child"
    if method == "nhs_number":
        return "Same NHS number as other records of this child"
    if method == "reviewer":
        return "Linked by a reviewer's decision"
    if method == "probabilistic":
        prob = f" (match probability {probability_text(p)})" if pd.notna(p) else ""
        if row["by_nhs"]:
            return f"NHS-number group joined to the rest by probabilistic match{prob}"
        return f"Probabilistic match on name, date of birth and address{prob}"
    return str(method)


def child_records(con: duckdb.DuckDBPyConnection, child_id: str) -> pd.DataFrame:
    """The child's encounters in date order (columns ``record_columns()``); masked identifiers only."""
    _require_linkage(con)
    places = ", ".join(f"e.enc_{layers.REGISTRY[k].stored_key} AS enc_{k}" for k in PLACE_LAYERS)
    raw = query(con, f"""
        SELECT e.encounter_date, e.agency_type, e.agency_code, e.source_record_id, e.encounter_type, e.cse_flag,
               {places}, e.enc_lsoa, e.nhs_status, e.nhs_hash, e.forename_phonetic, e.surname_phonetic,
               e.forename_hash IS NOT NULL AS has_forename, e.surname_hash IS NOT NULL AS has_surname,
               e.birth_year, e.sex, e.home_sector, rc.link_method, rc.best_match_probability, rc.by_nhs,
               rc.nhs_conflict, rc.shared_number_suspected
        FROM encounters e JOIN record_child rc USING (record_key)
        WHERE rc.child_id = ?
        ORDER BY e.encounter_date, e.agency_type, e.record_key""", [child_id])
    out = pd.DataFrame(index=raw.index)
    out["encounter_date"] = pd.to_datetime(raw["encounter_date"])
    out["agency_type"] = raw["agency_type"].astype("str")
    out["agency"] = raw["agency_type"].map(agency_label).astype("str")
    out["agency_name"] = [(_agency_name(a, c)) for a, c in zip(raw["agency_type"], raw["agency_code"])]
    out["agency_name"] = out["agency_name"].astype("str")
    # An id or a free text shaped like an NHS number, postcode, birth date or name (possible in stores loaded
    # before ingest refused them) is shown only as what it looks like (lib.records.identifiers).
    out["source_record_id"] = raw["source_record_id"].astype("str").map(withhold)
    out["encounter_type"] = raw["encounter_type"].astype("str").map(lambda v: withhold(v, record_id=False))
    out["cse_flag"] = raw["cse_flag"].astype("boolean")
    for key in PLACE_LAYERS:
        names = area_names(key)
        out[f"enc_{key}_name"] = raw[f"enc_{key}"].map(names).fillna(raw[f"enc_{key}"]).fillna("—").astype("str")
    centroids = lookup.lsoa_table().set_index("lsoa11cd")[["lon", "lat"]]
    placed = centroids.reindex(raw["enc_lsoa"].astype("object").where(raw["enc_lsoa"].notna(), None))
    out["lon"] = placed["lon"].to_numpy(dtype="float64")
    out["lat"] = placed["lat"].to_numpy(dtype="float64")
    out["link_method"] = raw["link_method"].astype("str")
    out["best_match_probability"] = raw["best_match_probability"].astype("float64")
    out["how_linked"] = [_how_linked(row) for _, row in raw.iterrows()]
    out["nhs_status"] = raw["nhs_status"].astype("str")
    numbers = raw["nhs_hash"].dropna().unique()
    letter = dict(zip(numbers, _letters(len(numbers))))
    many = len(numbers) > 1

    def nhs_text(status, number) -> str:
        if status == "valid" and isinstance(number, str):
            return f"valid number {MASK}" + (f" ({letter[number]})" if many else "")
        if status == "invalid":
            return "invalid number"
        return "none"

    out["nhs_number"] = [nhs_text(s, h) for s, h in zip(raw["nhs_status"], raw["nhs_hash"])]

    def name_text(fp, sp, has_f, has_s) -> str:
        if not (has_f or has_s):
            return "none"
        codes = " ".join(c for c in (fp, sp) if isinstance(c, str) and c)
        return f"name (sound code {codes})" if codes else "name (no sound code)"

    out["name"] = [name_text(*v) for v in zip(raw["forename_phonetic"], raw["surname_phonetic"],
                                             raw["has_forename"], raw["has_surname"])]
    out["birth_year"] = pd.to_numeric(raw["birth_year"]).astype("Int64")
    out["sex"] = raw["sex"].fillna("—").astype("str")
    out["home_sector"] = raw["home_sector"].fillna("—").astype("str")
    out["nhs_conflict"] = raw["nhs_conflict"].astype("bool")
    out["shared_number_suspected"] = raw["shared_number_suspected"].astype("bool")
    return out[record_columns()].reset_index(drop=True)


def child_summary(con: duckdb.DuckDBPyConnection, child_id: str) -> dict:
    """What a lead reads first: records, agencies, dates, areas spanned, link methods, home areas.

    Keys: child_id, records, agencies (labels), agency_names, first_date, last_date, cse_records,
    areas ({span geography: [area names]}), spans ({geography: count}), link_methods ({method: records}),
    lowest_probability (weakest model link among its records, or None), home ({geography: area name} of
    its most recent home), flags (NHS-number conflicts noted on its records). Empty dict if unknown.
    """
    records = child_records(con, child_id)
    if records.empty:
        return {}
    home = {}
    for key in layers.CHILD_HOME:  # the registry's home layers of a child summary
        found = query(con, f"WITH home AS ({_home_sql(key)}) SELECT home_area FROM home WHERE child_id = ?",
                       [child_id])
        home[key] = area_names(key).get(found.iloc[0, 0], found.iloc[0, 0]) if len(found) else None
    areas = {k: sorted(set(records.loc[records[f"enc_{k}_name"] != "—", f"enc_{k}_name"])) for k in SPAN_LAYERS}
    probs = records.loc[records["link_method"] == "probabilistic", "best_match_probability"].dropna()
    flags = []
    if records["nhs_conflict"].any():
        flags.append("a record's name and date of birth contradict its NHS number (kept apart from that number)")
    if records["shared_number_suspected"].any():
        flags.append("an NHS number on these records may be shared or wrong")
    return {
        "child_id": child_id,
        "records": int(len(records)),
        "agencies": list(dict.fromkeys(records["agency"])),
        "agency_names": list(dict.fromkeys(records["agency_name"])),
        "first_date": records["encounter_date"].min().date(),
        "last_date": records["encounter_date"].max().date(),
        "cse_records": int(records["cse_flag"].fillna(False).sum()),
        "areas": areas,
        "spans": {k: len(v) for k, v in areas.items()},
        "link_methods": {str(k): int(v) for k, v in records["link_method"].value_counts().items()},
        "lowest_probability": float(probs.min()) if len(probs) else None,
        "home": home,
        "flags": flags,
    }


def _and(items: list[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def describe_child(summary: dict) -> str:
    """One plain-English sentence about a child's journey."""
    if not summary:
        return "No records for this child."
    spans = [f"{n} {SPAN_WORDS[k]}" for k, n in summary["spans"].items() if n > 1]
    agencies = summary["agencies"]
    agency_text = _and(agencies)
    text = (f"{summary['records']} records from {len(agencies)} "
            f"agenc{'y' if len(agencies) == 1 else 'ies'} ({agency_text}) between "
            f"{summary['first_date']:%d %b %Y} and {summary['last_date']:%d %b %Y}")
    text += (", in " + _and(spans) + "." if spans else ", all within one area of each geography.")
    if summary["cse_records"]:
        text += f" {summary['cse_records']} flagged for child sexual exploitation."
    return text


def display_table(records: pd.DataFrame) -> pd.DataFrame:
    """The records with user-facing column names (what the page shows and exports)."""
    table = records.drop(columns=["agency_type", "lon", "lat", "nhs_conflict", "shared_number_suspected"]).copy()
    table["encounter_date"] = table["encounter_date"].dt.date
    table["cse_flag"] = table["cse_flag"].map({True: "yes", False: "no"}).fillna("not recorded").astype("str")
    table["best_match_probability"] = table["best_match_probability"].round(4)
    names = {"encounter_date": "Date", "agency": "Agency", "agency_name": "Organisation",
             "source_record_id": "Agency record", "encounter_type": "Encounter", "cse_flag": "CSE flag",
             **{f"enc_{k}_name": f"Where: {v}" for k, v in PLACE_LAYERS.items()},
             "link_method": "Link method", "best_match_probability": "Match probability", "how_linked": "How linked",
             "nhs_status": "NHS number status", "nhs_number": "NHS number (masked)", "name": "Name (masked)",
             "birth_year": "Year of birth", "sex": "Sex", "home_sector": "Home postcode sector"}
    first = ["encounter_date", "agency", "encounter_type", "cse_flag", "enc_pfa_name", "enc_utla_name", "how_linked",
             "best_match_probability", "nhs_number", "name", "birth_year", "sex", "home_sector", "link_method",
             "nhs_status", "agency_name", "source_record_id"]
    table = table[first + [c for c in table.columns if c not in first]]
    return table.rename(columns=names)


def agency_order(records: pd.DataFrame) -> list[str]:
    """Agency labels present, in the standard order."""
    present = set(records["agency"])
    order = [label for label in AGENCY_LABELS.values() if label in present]
    return order + sorted(present - set(order))


__all__ = ["child_records", "child_summary", "describe_child", "display_table", "agency_label", "agency_order",
           "AGENCY_LABELS", "record_columns", "MASK"]
