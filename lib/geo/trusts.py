"""Acute trust catchments from OHID's "NHS Acute (Hospital) Trust Catchment Populations" (build time).

NHS trusts have no statutory boundary. OHID's model (a proportional-flow model of Hospital Episode
Statistics admissions) gives, for each small area, the share of its residents' admissions that go to each
acute trust. The 2022 edition is vendored by ``humaniverse/geographr`` as the share of each trust's
catchment that comes from each lower-tier local authority (LTLA 2021): ``p(t, l) = C(t, l) / T(t)``,
where ``C(t, l)`` is the catchment population of trust ``t`` living in district ``l`` and ``T(t)`` the
trust's whole catchment. Joined Up needs the other direction, the share of each district's admissions
that each trust takes, ``s(l, t) = C(t, l) / Σ_t' C(t', l)``, which needs the trust totals ``T(t)``.

Since the model shares out every district's whole population, ``Σ_t p(t, l) T(t) = Pop(l)`` for every
district: 309 equations in 138 unknown trust totals. We solve them by non-negative least squares (relative
errors, ONS mid-2020 district populations). Three specialist trusts whose catchments lie wholly inside
others' are not identified by these equations (the solver sets their total to 0); their totals come from
the same OHID publication's earlier download (catchment year 2019, vendored by
``britishredcrosssociety/resilience-index`` with both directions), scaled to the 2022 solution. From
``C = p·T`` the district shares follow, and recomputing ``p`` from the committed shares gives the official
figures back exactly (a test checks this).

Trust codes are the 2022 ODS codes of the OHID file, moved to their successors with the NHS ODS
successor table (a trust that merged into another adds its catchment to its successor's). Wales: OHID
covers England only; each Welsh LSOA goes wholly to its local health board, which runs its hospitals.

Outputs (committed): ``geodata/official/*`` extracts, ``geodata/trust_catchment_shares.parquet``
(``area_code``, ``trust_code``, ``share``, ``catchment``); the LSOA lookup gains ``trust_area`` (the
district or health board whose shares apply) and ``trust_code`` (the main provider, for outlines).
"""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd

from lib.geo.official import (
    GEODATA,
    OFFICIAL,
    Source,
    read_blob,
    read_r,
    refresh_or_recall,
    sha256_file,
)

OGL = "Open Government Licence v3.0"
SHARES_FILE = "trust_catchment_shares.parquet"
EDITION = "OHID NHS Acute (Hospital) Trust Catchment Populations, 2022 edition (all admissions)"
EDITION_SHORT = "OHID acute trust catchments, 2022 edition"

CATCHMENT = Source(
    "ohid_trust_catchment_2022", "humaniverse/geographr", "data/lookup_nhs_trusts22_ltla21.rda",
    "Office for Health Improvement and Disparities (OHID)",
    "NHS Acute (Hospital) Trust Catchment Populations: share of each trust's catchment from each LTLA (all admissions)",
    "2022 edition (published 18 October 2022); 2022 trust codes; LTLA 2021", OGL,
    "ohid_trust_catchment_2022_ltla21.csv")
CATCHMENT_2019 = Source(
    "ohid_trust_catchment_2019", "britishredcrosssociety/resilience-index", "data/lookup_trust_lad.rds",
    "Office for Health Improvement and Disparities (OHID)",
    "NHS Acute (Hospital) Trust Catchment Populations, catchment year 2019, both directions by LAD 2019",
    "earlier download of the same publication (catchment year 2019); used only for the totals of trusts "
    "the 2022 equations do not identify", OGL, "ohid_trust_catchment_2019_lad19.csv")
SUCCESSORS = Source(
    "ods_successors", "humaniverse/geographr", "data/lookup_trust_trust.rda",
    "NHS England (Organisation Data Service)", "ODS successor organisations (succ.csv + succarc.csv)",
    "as downloaded for geographr; latest change 1 April 2022", OGL, "ods_trust_successors.csv")
TRUST_LIST = Source(
    "ods_trusts", "humaniverse/geographr", "data/points_nhs_trusts22.rda",
    "NHS England (Organisation Data Service)", "NHS trusts (etr.csv): ODS code, name, open or closed",
    "2022", OGL, "ods_trust_names.csv")
TRUST_LIST_2024 = Source(
    "ods_trusts_2024", "rcpch/rcpch-nhs-organisations", "rcpch_nhs_organisations/hospitals/constants/trust.py",
    "NHS England (Organisation Data Service), compiled by RCPCH", "English NHS trusts with ODS codes and names",
    "RCPCH NHS organisations, August 2024 (names preferred over the 2022 list)", OGL, "ods_trust_names.csv")
HEALTH_BOARDS = Source(
    "ods_health_boards", "rcpch/rcpch-nhs-organisations",
    "rcpch_nhs_organisations/hospitals/constants/local_health_boards.py",
    "NHS Wales / ODS, compiled by RCPCH", "Welsh local health boards: ODS and GSS codes, names",
    "RCPCH NHS organisations, August 2024", OGL, "ods_trust_names.csv")
LSOA_LTLA = Source(
    "ons_lsoa11_ltla21", "humaniverse/geographr", "data/lookup_lsoa11_ltla21.rda",
    "Office for National Statistics", "LSOA (2011) to lower-tier local authority (2021) lookup",
    "LTLA April 2021", OGL, "ons_lsoa11_ltla21.csv")
POP_LTLA = Source(
    "ons_mye2020_ltla21", "humaniverse/demographr", "data/population20_ltla21.rda",
    "Office for National Statistics", "Mid-year population estimates by single year of age, LTLA 2021 (MYE2 persons)",
    "mid-2020", OGL, "ons_mye2020_ltla21.csv")

OFFICIAL_SOURCES = (CATCHMENT, CATCHMENT_2019, SUCCESSORS, TRUST_LIST, TRUST_LIST_2024, HEALTH_BOARDS, LSOA_LTLA,
                    POP_LTLA)


# ---------------------------------------------------------------- official extracts (mirror → geodata/official)

def _python_literal(source: Source, name: str) -> list[dict]:
    data, info = read_blob(source)
    tree = ast.parse(data.decode("utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value), info
    raise ValueError(f"{source.repo}:{source.path}: no {name} list")


def _read_rdata(source: Source) -> tuple[pd.DataFrame, dict]:
    """An .rda holding an sf (spatial) table, which pyreadr cannot read: the pure-Python ``rdata`` parser."""
    import warnings

    import rdata

    data, info = read_blob(source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "missing constructor for R class sf": read as a plain data frame
        converted = rdata.conversion.convert(rdata.parser.parse_data(data), default_encoding="utf-8")
    frame = next(iter(converted.values()))
    return pd.DataFrame(frame).drop(columns=["geometry"], errors="ignore").reset_index(drop=True), info


def _title(name: str) -> str:
    """ODS names are upper case; show them in title case with the NHS's own capitals."""
    words = []
    for i, word in enumerate(str(name).strip().split()):
        low = word.lower()
        if i and low in {"and", "of", "the", "for", "on", "upon", "in"}:
            words.append(low)
        elif low == "nhs":
            words.append("NHS")
        else:
            words.append("-".join(part[:1].upper() + part[1:] for part in low.split("-")))
    return " ".join(words).replace("'S ", "'s ")


def refresh_official(folder: Path = OFFICIAL) -> dict[str, dict]:
    """Read the official files from the mirror and write the compact extracts; returns provenance by key."""
    folder.mkdir(parents=True, exist_ok=True)
    provenance: dict[str, dict] = {}

    frame, info = read_r(CATCHMENT)
    frame = frame.rename(columns={"nhs_trust22_code": "trust_code"})
    frame = frame.sort_values(["trust_code", "ltla21_code"], ignore_index=True)
    frame.to_csv(folder / CATCHMENT.extract, index=False, lineterminator="\n", float_format="%.17g")
    provenance[CATCHMENT.key] = info

    frame, info = read_r(CATCHMENT_2019)
    frame = frame[["trust_code", "lad_code", "lad_name", "trust_prop_by_lad", "lad_prop_by_trust"]]
    frame = frame.sort_values(["trust_code", "lad_code"], ignore_index=True)
    frame.to_csv(folder / CATCHMENT_2019.extract, index=False, lineterminator="\n", float_format="%.17g")
    provenance[CATCHMENT_2019.key] = info

    frame, info = read_r(SUCCESSORS)
    frame = frame.astype({"old_code": "str", "new_code": "str"})
    # NHS trusts have three-character codes beginning R (the table also holds practices, CCGs, sites…).
    trust_like = frame["old_code"].str.fullmatch(r"R[A-Z0-9]{2}") & frame["new_code"].str.fullmatch(r"R[A-Z0-9]{2}")
    frame = frame[trust_like].assign(date=pd.to_datetime(frame["date"]).dt.strftime("%Y-%m-%d"))
    frame = frame.sort_values(["date", "old_code", "new_code"], ignore_index=True)
    frame.to_csv(folder / SUCCESSORS.extract, index=False, lineterminator="\n")
    provenance[SUCCESSORS.key] = info

    trusts, info = _read_rdata(TRUST_LIST)
    provenance[TRUST_LIST.key] = info
    newer, info = _python_literal(TRUST_LIST_2024, "TRUSTS")
    provenance[TRUST_LIST_2024.key] = info
    boards, info = _python_literal(HEALTH_BOARDS, "LOCAL_HEALTH_BOARDS")
    provenance[HEALTH_BOARDS.key] = info
    names = pd.concat([
        pd.DataFrame({"ods_code": [b["ods_code"] for b in boards], "ods_name": [b["health_board"] for b in boards],
                      "kind": "local health board", "gss_code": [b["gss_code"] for b in boards]}),
        pd.DataFrame({"ods_code": [t["ods_code"] for t in newer], "ods_name": [t["trust_name"] for t in newer],
                      "kind": "trust (2024 list)", "gss_code": ""}),
        pd.DataFrame({"ods_code": trusts["nhs_trust22_code"].astype(str),
                      "ods_name": trusts["nhs_trust22_name"].astype(str).str.upper(),
                      "kind": "trust (" + trusts["status"].astype(str) + ")", "gss_code": ""}),
    ], ignore_index=True)
    # One row per code: the 2024 name where RCPCH lists it, the 2022 ODS list's status either way.
    status = names[names["kind"].str.startswith("trust (") & ~names["kind"].eq("trust (2024 list)")]
    status = status.drop_duplicates("ods_code").set_index("ods_code")["kind"]
    names = names.drop_duplicates("ods_code").sort_values("ods_code", ignore_index=True)
    names["kind"] = [status.get(c, k) if k == "trust (2024 list)" else k
                     for c, k in zip(names["ods_code"], names["kind"])]
    names.to_csv(folder / TRUST_LIST.extract, index=False, lineterminator="\n")

    frame, info = read_r(LSOA_LTLA)
    frame = frame[["lsoa11_code", "ltla21_code"]].sort_values("lsoa11_code", ignore_index=True)
    frame.to_csv(folder / LSOA_LTLA.extract, index=False, lineterminator="\n")
    provenance[LSOA_LTLA.key] = info

    frame, info = read_r(POP_LTLA)
    ages = [str(a) for a in range(18)]
    frame = frame[["ltla21_code", "ltla21_name", "total_population", *ages]].sort_values("ltla21_code",
                                                                                       ignore_index=True)
    frame[["total_population", *ages]] = frame[["total_population", *ages]].round().astype("int64")
    frame.to_csv(folder / POP_LTLA.extract, index=False, lineterminator="\n")
    provenance[POP_LTLA.key] = info
    return provenance


def read_extract(source: Source, folder: Path = OFFICIAL) -> pd.DataFrame:
    return pd.read_csv(folder / source.extract, dtype={"ltla21_code": str, "lad_code": str, "trust_code": str,
                                                       "old_code": str, "new_code": str, "ods_code": str,
                                                       "gss_code": str, "lsoa11_code": str},
                       keep_default_na=False, na_values=[""])


# ---------------------------------------------------------------- successors and names

def successor_map(successors: pd.DataFrame) -> dict[str, str]:
    """Retired trust code → current code, following chains in date order. A code with two successors
    (a split) maps to neither here: ``splits`` lists them and the catchment model refuses them."""
    table = successors.sort_values("date")
    direct = table.groupby("old_code")["new_code"].agg(list)
    out = {}
    for old, news in direct.items():
        if len(set(news)) != 1:
            continue
        code, seen = news[0], {old}
        while code in direct.index and len(set(direct[code])) == 1 and code not in seen:
            seen.add(code)
            code = direct[code][0]
        out[old] = code
    return out


def splits(successors: pd.DataFrame) -> dict[str, list[str]]:
    groups = successors.groupby("old_code")["new_code"].agg(lambda s: sorted(set(s)))
    return {k: v for k, v in groups.items() if len(v) > 1}


def organisation_names(folder: Path = OFFICIAL) -> pd.Series:
    names = read_extract(TRUST_LIST, folder)
    return pd.Series(names["ods_name"].map(_title).to_numpy(), index=names["ods_code"], name="name")


def health_board_ods(folder: Path = OFFICIAL) -> pd.Series:
    """Welsh health board GSS code (W11…) → ODS code (7A…)."""
    names = read_extract(TRUST_LIST, folder)
    boards = names[names["kind"] == "local health board"]
    return pd.Series(boards["ods_code"].to_numpy(), index=boards["gss_code"])


# ---------------------------------------------------------------- the catchment model

def trust_totals(p: pd.DataFrame, population: pd.Series, earlier: pd.DataFrame,
                 earlier_population: pd.Series) -> tuple[pd.Series, dict]:
    """Each trust's whole catchment T(t) such that Σ_t p(t, l) T(t) ≈ Pop(l) (non-negative least squares,
    relative errors). ``p``: districts × trusts. Trusts the equations leave at zero take their total from
    the earlier download (``earlier``: trust_code, lad_code, trust_prop_by_lad, lad_prop_by_trust), scaled by
    the median ratio of the two solutions over the trusts both identify."""
    from scipy.optimize import nnls

    b = population.reindex(p.index).to_numpy("float64")
    if np.isnan(b).any():
        missing = list(p.index[np.isnan(b)][:5])
        raise ValueError(f"{POP_LTLA.extract}: no population for districts {missing}")
    a = p.to_numpy("float64")
    w = 1.0 / np.sqrt(b)
    solution, _ = nnls(a * w[:, None], b * w, maxiter=50 * a.shape[1])
    totals = pd.Series(solution, index=p.columns)

    est = earlier.assign(pop=earlier["lad_code"].map(earlier_population)).dropna(subset=["pop"])
    est = est[(est["trust_prop_by_lad"] > 0)]
    est_total = (est["lad_prop_by_trust"] * est["pop"] / est["trust_prop_by_lad"]).groupby(est["trust_code"]).median()
    zero = list(totals.index[totals <= 0])
    both = totals[(totals > 0) & totals.index.isin(est_total.index)]
    scale = float(np.median(both / est_total[both.index]))
    unresolved = [t for t in zero if t not in est_total.index]
    if unresolved:
        raise ValueError(f"catchment model: no total for trusts {unresolved} (not identified and not in "
                         f"{CATCHMENT_2019.extract})")
    if zero:
        fixed = est_total[zero] * scale
        rest = [t for t in p.columns if t not in zero]
        residual = b - a[:, [p.columns.get_loc(t) for t in zero]] @ fixed.to_numpy()
        sub = a[:, [p.columns.get_loc(t) for t in rest]]
        solution, _ = nnls(sub * w[:, None], residual * w, maxiter=50 * sub.shape[1])
        totals = pd.concat([pd.Series(solution, index=rest), fixed]).reindex(p.columns)
    fitted = a @ totals.to_numpy()
    ratio = fitted / b
    info = {
        "method": "non-negative least squares of Σ_t p(t,l)·T(t) = Pop(l), weighted by 1/Pop(l)",
        "districts": len(b), "trusts": p.shape[1],
        "trusts_from_earlier_download": zero,
        "earlier_to_2022_scale": round(scale, 4),
        "fit_ratio_percentiles": {q: round(float(np.percentile(ratio, q)), 4) for q in (0, 5, 50, 95, 100)},
    }
    if (totals <= 0).any():
        raise ValueError(f"catchment model: trusts left without a catchment: {list(totals.index[totals <= 0])}")
    return totals, info


def catchment_shares(folder: Path = OFFICIAL) -> tuple[pd.DataFrame, dict]:
    """England districts (LTLA 2021) × current acute trusts: ``area_code``, ``trust_code``, ``share`` (of the
    district's admissions; sums to 1 per district), ``catchment`` (modelled catchment population, mid-2020)."""
    raw = read_extract(CATCHMENT, folder)
    pop = read_extract(POP_LTLA, folder).set_index("ltla21_code")["total_population"].astype("float64")
    earlier = read_extract(CATCHMENT_2019, folder)
    p = raw.pivot_table(index="ltla21_code", columns="trust_code", values="proportion_trust_came_from_ltla",
                        aggfunc="sum", fill_value=0.0)
    # LAD 2019 codes of the earlier download that are still LTLA 2021 codes carry a 2021 population.
    totals, info = trust_totals(p, pop, earlier, pop)
    catch = p * totals  # C(t, l)
    long = catch.stack().rename("catchment").reset_index()
    long.columns = ["area_code", "source_trust_code", "catchment"]
    long = long[long["catchment"] > 0]

    succ = read_extract(SUCCESSORS, folder)
    split = {k: v for k, v in splits(succ).items() if k in set(long["source_trust_code"])}
    if split:
        raise ValueError(f"catchment trusts split between successors {split}: no rule to share them out")
    current = successor_map(succ)
    long["trust_code"] = long["source_trust_code"].map(lambda c: current.get(c, c))
    shares = long.groupby(["area_code", "trust_code"], as_index=False)["catchment"].sum()
    shares["share"] = shares["catchment"] / shares.groupby("area_code")["catchment"].transform("sum")
    shares = shares[["area_code", "trust_code", "share", "catchment"]].sort_values(["area_code", "trust_code"],
                                                                                   ignore_index=True)
    names = organisation_names(folder)
    unnamed = sorted(set(shares["trust_code"]) - set(names.index))
    if unnamed:
        raise ValueError(f"{TRUST_LIST.extract}: no ODS name for catchment trusts {unnamed}")
    info.update({
        "edition": EDITION,
        "source_trusts": int(raw["trust_code"].nunique()),
        "current_trusts": int(shares["trust_code"].nunique()),
        "renamed": {k: current[k] for k in sorted(set(raw["trust_code"])) if k in current},
    })
    return shares, info


def welsh_rows(folder: Path = OFFICIAL) -> pd.DataFrame:
    """Wales: each health board takes all its residents' admissions (it runs the hospitals)."""
    boards = health_board_ods(folder)
    return pd.DataFrame({"area_code": boards.index, "trust_code": boards.to_numpy(), "share": 1.0,
                         "catchment": np.nan}).sort_values("area_code", ignore_index=True)


def all_shares(folder: Path = OFFICIAL) -> tuple[pd.DataFrame, dict]:
    england, info = catchment_shares(folder)
    return pd.concat([england, welsh_rows(folder)], ignore_index=True), info


def main_provider(shares: pd.DataFrame) -> pd.Series:
    """The trust with the largest share of each area (ties: lowest code)."""
    ordered = shares.sort_values(["area_code", "share", "trust_code"], ascending=[True, False, True])
    return ordered.drop_duplicates("area_code").set_index("area_code")["trust_code"]


def assign_lsoas(table: pd.DataFrame, shares: pd.DataFrame, folder: Path = OFFICIAL) -> pd.DataFrame:
    """Add ``trust_area`` (the LTLA 2021 district in England, the health board in Wales, whose shares apply
    to the LSOA) and ``trust_code`` (that area's main provider) to an LSOA table with ``lsoa11cd`` and
    ``lhb_code``."""
    lsoa = read_extract(LSOA_LTLA, folder).set_index("lsoa11_code")["ltla21_code"]
    area = table["lsoa11cd"].map(lsoa)
    welsh = table["lhb_code"].astype("string").str.startswith("W11").fillna(False).astype(bool)
    area = area.where(~welsh, table["lhb_code"])
    missing = table.loc[area.isna() | ~area.isin(set(shares["area_code"])), "lsoa11cd"]
    if len(missing):
        raise ValueError(f"{LSOA_LTLA.extract}: LSOAs without a catchment district, e.g. {list(missing[:5])}")
    out = table.copy()
    out["trust_area"] = area.astype("str")
    out["trust_code"] = out["trust_area"].map(main_provider(shares)).astype("str")
    return out


SUCCESSOR_FACTS = "trust_successors.csv"


def successor_facts(folder: Path = OFFICIAL) -> pd.DataFrame:
    """Every retired NHS trust code of the ODS successor table → its current code, in the shape of the
    project's code successor tables (kind, old_code, old_name, new_code, new_name, status, share,
    destinations, basis). A code with two successors is a ``split``: the ODS table gives no proportions."""
    succ = read_extract(SUCCESSORS, folder)
    names = organisation_names(folder)
    current = successor_map(succ)
    split = splits(succ)
    rows = []
    for old in sorted(set(succ["old_code"])):
        name = names.get(old, "")
        last = succ[succ["old_code"] == old]["date"].max()
        if old in split:
            rows.append(("trust", old, name, "", "", "split", "", " ".join(f"{c}:nan" for c in split[old]),
                         f"ODS successor table: {len(split[old])} successors from {last}; no proportions published"))
        elif old in current and current[old] != old:
            new = current[old]
            rows.append(("trust", old, name, new, names.get(new, ""), "mapped", "1", f"{new}:1",
                         f"ODS successor table (succ/succarc), change dated {last}"))
    return pd.DataFrame(rows, columns=["kind", "old_code", "old_name", "new_code", "new_name", "status", "share",
                                       "destinations", "basis"])


def write(out_dir: Path = GEODATA, refresh: bool | None = None) -> tuple[pd.DataFrame, dict]:
    """Refresh the extracts (when the mirror is present), derive and write the shares; return (shares, manifest
    section)."""
    folder, provenance = refresh_or_recall(out_dir, OFFICIAL_SOURCES, refresh_official, refresh)
    shares, info = all_shares(folder)
    shares.to_parquet(out_dir / SHARES_FILE, index=False, compression="zstd")
    (out_dir / "facts").mkdir(parents=True, exist_ok=True)
    successor_facts(folder).to_csv(out_dir / "facts" / SUCCESSOR_FACTS, index=False, lineterminator="\n")
    official = {}
    for source in OFFICIAL_SOURCES:
        entry = dict(provenance.get(source.key) or {})
        entry.update({"extract": f"official/{source.extract}",
                      "extract_sha256": sha256_file(folder / source.extract)})
        official[source.key] = entry
    return shares, {"official": official, "trust_catchments": info}

