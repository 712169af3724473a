"""Derive the product's reference facts from the official extracts (geodata/official/), never by hand.

Every function here takes official tables (and, where the current codes come from the postcode
directory, the LSOA table the build made) and returns a derived table; the build writes them to
geodata/facts/ and tests/test_reference_data.py checks them against the same official files.

Current codes, and how each is reached:
- LAD: the ONS Postcode Directory (November 2025) that places every LSOA (2025 codes, so Barnsley and
  Sheffield are E08000038/E08000039, re-coded on 1 April 2025 after the boundary change of SI 2024/1328).
- LAD → upper-tier LA: ONS LTLA→UTLA April 2023; LAD → police force area: ONS LAD→CSP→PFA December 2024.
  Both lookups predate the 2025 re-coding; their LAD codes are carried to the current codes with the LAD
  successor table below (derived by LSOA overlap, not typed), and a unitary/metropolitan authority that is
  its own upper tier is re-coded with it.
- Sub-ICB/ICB: ONS LSOA 2021→SICBL→ICB April 2024, reached from LSOA 2011 through the ONS LSOA 2011→2021
  lookup (an LSOA 2011 split into several 2021 LSOAs takes the part in its own 2022 district, else the
  most common sub-ICB, else the lowest code).
- Local health board (Wales): ONS UA→LHB December 2022.

Successors: for each retired code, the current codes its LSOAs (or, for upper-tier authorities, its
districts' LSOAs) now fall in. One code holding at least MAPPED_SHARE of them is the successor ("mapped");
otherwise the area was split ("split") and a record using the old code cannot be placed in one area.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from lib.geo import official_lookups as official

#: A retired code maps to one successor when that successor holds at least this share of its LSOAs
#: (E54000052 Surrey Heartlands: 614 of 618 LSOAs went to E54000063; four Chichester LSOAs to Sussex).
MAPPED_SHARE = 0.9

SUCCESSOR_COLUMNS = ["kind", "old_code", "old_name", "new_code", "new_name", "status", "share", "destinations",
                     "basis"]
LAD_COLUMNS = ["lad_code", "lad_name", "utla_code", "utla_name", "pfa_code", "pfa_name", "lhb_code", "lhb_name"]


class ReferenceError(ValueError):
    pass


def _mode(frame: pd.DataFrame, key: str, value: str) -> pd.Series:
    """Most common value per key; ties go to the lowest value (deterministic)."""
    counts = frame.groupby([key, value]).size().rename("n").reset_index()
    counts = counts.sort_values([key, "n", value], ascending=[True, False, True])
    return counts.drop_duplicates(key).set_index(key)[value]


# -- per-LSOA official codes ----------------------------------------------------------------------------------

def lsoa_official_codes(lsoa11: pd.Series) -> pd.DataFrame:
    """For each LSOA 2011 code: its 2022 district (ltla22), that district's April 2023 code (ltla23), its
    July 2022 sub-ICB/ICB (England) and its April 2024 sub-ICB/ICB (England), all from ONS lookups."""
    bridge = official.read("lsoa11_lsoa21_ltla22")
    icb22 = official.read("lsoa11_sicbl22_icb22")
    icb24 = official.read("lsoa21_sicbl24_icb24")
    lad22 = official.read("ltla22_ltla23")

    out = pd.DataFrame({"lsoa11cd": lsoa11.astype(str).to_numpy()})
    own_lad = icb22.set_index("lsoa11_code")["ltla22_code"]
    ltla22 = _mode(bridge, "lsoa11_code", "ltla22_code")
    out["ltla22"] = out["lsoa11cd"].map(own_lad).fillna(out["lsoa11cd"].map(ltla22))
    out["ltla23"] = out["ltla22"].map(lad22.drop_duplicates("ltla22_code").set_index("ltla22_code")["ltla23_code"])
    out["sicbl22"] = out["lsoa11cd"].map(icb22.set_index("lsoa11_code")["sicbl22_code"])
    out["icb22"] = out["lsoa11cd"].map(icb22.set_index("lsoa11_code")["icb22_code"])

    parts = bridge.merge(icb24[["lsoa21_code", "sicbl24_code"]], on="lsoa21_code", how="inner")
    parts = parts.merge(out[["lsoa11cd", "ltla22"]], left_on="lsoa11_code", right_on="lsoa11cd", how="inner")
    same = parts[parts["ltla22_code"] == parts["ltla22"]]
    chosen = _mode(same, "lsoa11_code", "sicbl24_code")
    fallback = _mode(parts, "lsoa11_code", "sicbl24_code")
    out["sicbl24"] = out["lsoa11cd"].map(chosen).fillna(out["lsoa11cd"].map(fallback))
    sicbl_icb = icb24.drop_duplicates("sicbl24_code").set_index("sicbl24_code")["icb24_code"]
    out["icb24"] = out["sicbl24"].map(sicbl_icb)
    return out


# -- successors ---------------------------------------------------------------------------------------------

def overlap_successors(old: pd.Series, new: pd.Series, kind: str, basis: str, *, current: set[str],
                       weights: pd.Series | None = None) -> pd.DataFrame:
    """Successor rows for every old code not among the current codes: shares of its LSOAs (or weights)
    now in each current code."""
    frame = pd.DataFrame({"old": old.to_numpy(), "new": new.to_numpy(),
                          "w": 1.0 if weights is None else weights.to_numpy(dtype=float)}).dropna()
    frame = frame[~frame["old"].isin(current)]
    if frame.empty:
        return pd.DataFrame(columns=SUCCESSOR_COLUMNS[:2] + ["new_code", "status", "share", "destinations"])
    totals = frame.groupby(["old", "new"])["w"].sum().reset_index()
    totals["share"] = totals["w"] / totals.groupby("old")["w"].transform("sum")
    totals = totals.sort_values(["old", "share", "new"], ascending=[True, False, True])
    rows = []
    for code, group in totals.groupby("old", sort=True):
        top = group.iloc[0]
        mapped = top["share"] >= MAPPED_SHARE
        rows.append({"kind": kind, "old_code": code, "new_code": top["new"] if mapped else "",
                     "status": "mapped" if mapped else "split", "share": round(float(top["share"]), 4),
                     "destinations": " ".join(f"{n}:{s:.4f}" for n, s in zip(group["new"], group["share"])),
                     "basis": basis})
    return pd.DataFrame(rows)


def lad_successors(lsoa_codes: pd.DataFrame, current_lad: pd.Series) -> pd.DataFrame:
    """Retired LAD codes (ONS code history 2016-2024, and the April 2023 codes) → current (postcode
    directory) codes. lsoa_codes: lsoa_official_codes(); current_lad: the LAD of each of those LSOAs."""
    current = set(current_lad.dropna())
    # 1. April 2023 district of each LSOA vs its current district: covers April 2023 and 2025 changes.
    step = overlap_successors(lsoa_codes["ltla23"], current_lad, "lad",
                              "LSOA overlap: ONS LSOA 2011→LAD 2022 lookup with LAD 2022→2023 lookup, "
                              "against the ONS Postcode Directory (November 2025)", current=current)
    recent = step.set_index("old_code")
    # 2. Older codes (2016-2022): the ONS code history chain to the 2024 code, then step 1.
    chain = official.read("ltla16_to_ltla24")
    chain = chain[chain["ltla24_code"].str.match(r"^[EW]").fillna(False)]  # England and Wales only
    lsoas_in = current_lad.value_counts()
    rows = []
    for year in range(16, 24):
        pairs = chain[[f"ltla{year}_code", "ltla24_code"]].dropna().drop_duplicates()
        pairs.columns = ["old", "ltla24"]
        rows.append(pairs)
    pairs = pd.concat(rows, ignore_index=True).drop_duplicates()
    pairs = pairs[~pairs["old"].isin(current) & ~pairs["old"].isin(recent.index)]

    def to_current(code: str) -> list[tuple[str, float]]:
        if code in current:
            return [(code, 1.0)]
        if code in recent.index:
            return [(d.split(":")[0], float(d.split(":")[1])) for d in recent.at[code, "destinations"].split()]
        raise ReferenceError(f"LAD 2024 code {code} is neither current nor has a successor")

    expanded = []
    for old, ltla24 in pairs.itertuples(index=False):
        for new, share in to_current(ltla24):
            expanded.append((old, new, share * float(lsoas_in.get(new, 0))))
    older = overlap_successors(pd.Series([e[0] for e in expanded]), pd.Series([e[1] for e in expanded]), "lad",
                               "ONS code history (geographr LAD 2016-2024 chain), weighted by current LSOAs",
                               current=current, weights=pd.Series([e[2] for e in expanded]))
    return pd.concat([step, older], ignore_index=True)


def utla_successors(lad_table: pd.DataFrame, lad_succ: pd.DataFrame, current_lad: pd.Series) -> pd.DataFrame:
    """Retired upper-tier codes (ONS LTLA→UTLA lookups 2019, 2020, 2021, 2023) → current upper-tier codes,
    through their districts' current codes, weighted by LSOAs."""
    current_utla = set(lad_table["utla_code"])
    lad_to_utla = lad_table.set_index("lad_code")["utla_code"]
    mapped_lad = lad_succ.set_index("old_code")
    lsoas_in = current_lad.value_counts()
    rows = []
    seen: set[str] = set()
    for key, year in (("ltla23_utla23", 23), ("ltla21_utla21", 21), ("ltla20_utla20", 20), ("ltla19_utla19", 19)):
        table = official.read(key)
        table = table[~table[f"utla{year}_code"].isin(current_utla) & ~table[f"utla{year}_code"].isin(seen)]
        for lad, utla in table[[f"ltla{year}_code", f"utla{year}_code"]].itertuples(index=False):
            if lad in lad_to_utla.index:
                targets = [(lad, 1.0)]
            elif lad in mapped_lad.index:
                targets = [(d.split(":")[0], float(d.split(":")[1]))
                           for d in mapped_lad.at[lad, "destinations"].split()]
            else:
                raise ReferenceError(f"{key}: district {lad} has no current code or successor")
            for new_lad, share in targets:
                rows.append((utla, lad_to_utla[new_lad], share * float(lsoas_in.get(new_lad, 0))))
        seen |= set(table[f"utla{year}_code"])
    frame = pd.DataFrame(rows, columns=["old", "new", "w"])
    return overlap_successors(frame["old"], frame["new"], "utla",
                              "ONS LTLA→UTLA lookups (2019-2023) with the LAD successors, weighted by LSOAs",
                              current=current_utla, weights=frame["w"])


# -- current facts ------------------------------------------------------------------------------------------

def lad_facts(current_lad: pd.Series, lad_succ: pd.DataFrame) -> pd.DataFrame:
    """One row per current LAD: name, upper-tier LA, police force area and (Wales) health board.

    Raises ReferenceError if the official lookups and the postcode directory disagree on the set of LADs.
    """
    current = set(current_lad.dropna())
    recode = lad_succ[lad_succ["status"] == "mapped"].set_index("old_code")["new_code"]

    def carry(codes: pd.Series) -> pd.Series:
        return codes.map(lambda c: recode.get(c, c) if c not in current else c)

    pfa = official.read("lad24_csp24_pfa24").drop_duplicates(["ltla24_code", "pfa24_code"])
    if pfa["ltla24_code"].duplicated().any():
        raise ReferenceError("lad24_csp24_pfa24: a district lies in two police force areas")
    pfa = pfa.assign(lad_code=carry(pfa["ltla24_code"]))
    utla = official.read("ltla23_utla23")
    utla = utla.assign(lad_code=carry(utla["ltla23_code"]),
                       utla_code=utla["utla23_code"].where(utla["utla23_code"] != utla["ltla23_code"],
                                                           carry(utla["ltla23_code"])))
    for name, codes in (("lad24_csp24_pfa24", set(pfa["lad_code"])), ("ltla23_utla23", set(utla["lad_code"]))):
        if codes != current:
            raise ReferenceError(f"{name}: districts differ from the postcode directory's after re-coding: "
                                 f"only in lookup {sorted(codes - current)[:5]}, only in postcodes "
                                 f"{sorted(current - codes)[:5]}")
    lhb = official.read("ua22_lhb22")
    out = pfa[["lad_code", "ltla24_name", "pfa24_code", "pfa24_name"]].merge(
        utla[["lad_code", "utla_code", "utla23_name"]], on="lad_code", how="left")
    out = out.merge(lhb[["ltla21_code", "lhb22_code", "lhb22_name"]], left_on="lad_code", right_on="ltla21_code",
                    how="left").drop(columns="ltla21_code")
    out.columns = ["lad_code", "lad_name", "pfa_code", "pfa_name", "utla_code", "utla_name", "lhb_code", "lhb_name"]
    welsh = out["lad_code"].str.startswith("W")
    if out.loc[welsh, "lhb_code"].isna().any():
        raise ReferenceError("ua22_lhb22: a Welsh district has no local health board")
    return out[LAD_COLUMNS].sort_values("lad_code", ignore_index=True)


def nhs_names() -> tuple[pd.Series, pd.Series]:
    """(sub-ICB code → name, ICB code → name), April 2024."""
    icb24 = official.read("lsoa21_sicbl24_icb24")
    sicbl = icb24.drop_duplicates("sicbl24_code").set_index("sicbl24_code")["sicbl24_name"]
    icb = icb24.drop_duplicates("icb24_code").set_index("icb24_code")["icb24_name"]
    return sicbl.sort_index(), icb.sort_index()


def nhs_successors(lsoa_codes: pd.DataFrame) -> pd.DataFrame:
    """July 2022 sub-ICB and ICB codes retired since → April 2024 codes, by LSOA overlap."""
    parts = []
    for kind, old, new in (("icb", "icb22", "icb24"), ("sicbl", "sicbl22", "sicbl24")):
        parts.append(overlap_successors(
            lsoa_codes[old], lsoa_codes[new], kind,
            "LSOA overlap: ONS LSOA 2011→SICBL→ICB July 2022 against LSOA 2021→SICBL→ICB April 2024 "
            "(through the ONS LSOA 2011→2021 lookup)", current=set(lsoa_codes[new].dropna())))
    return pd.concat(parts, ignore_index=True)


def name_successors(succ: pd.DataFrame, old_names: dict[str, pd.Series], new_names: dict[str, pd.Series]
                    ) -> pd.DataFrame:
    """Fill old_name/new_name from the official names of each kind."""
    out = succ.copy()
    out["old_name"] = [old_names[k].get(c, "") for k, c in zip(out["kind"], out["old_code"])]
    out["new_name"] = [new_names[k].get(c, "") if c else "" for k, c in zip(out["kind"], out["new_code"])]
    missing = out[(out["old_name"] == "")]
    if len(missing):
        raise ReferenceError(f"no official name for retired codes {missing['old_code'].tolist()[:5]}")
    return out[SUCCESSOR_COLUMNS].sort_values(["kind", "old_code"], ignore_index=True)


def retired_names() -> dict[str, pd.Series]:
    """Official names of every code in the older lookups, by kind (latest name where a code recurs)."""
    lads, utlas = [], []
    chain = official.read("ltla16_to_ltla24")
    for year in range(16, 25):
        lads.append(chain[[f"ltla{year}_code", f"ltla{year}_name"]].set_axis(["code", "name"], axis=1))
    for key, year in (("ltla19_utla19", 19), ("ltla20_utla20", 20), ("ltla21_utla21", 21), ("ltla23_utla23", 23)):
        table = official.read(key)
        utlas.append(table[[f"utla{year}_code", f"utla{year}_name"]].set_axis(["code", "name"], axis=1))
    icb22 = official.read("lsoa11_sicbl22_icb22")

    def last(frames: list[pd.DataFrame]) -> pd.Series:
        frame = pd.concat(frames, ignore_index=True).dropna()
        return frame.drop_duplicates("code", keep="last").set_index("code")["name"]

    return {"lad": last(lads), "utla": last(utlas),
            "icb": icb22.drop_duplicates("icb22_code").set_index("icb22_code")["icb22_name"],
            "sicbl": icb22.drop_duplicates("sicbl22_code").set_index("sicbl22_code")["sicbl22_name"]}


def share_check(lsoa_codes: pd.DataFrame) -> np.ndarray:
    """LSOAs (England) with no April 2024 sub-ICB: should be none."""
    england = lsoa_codes["lsoa11cd"].str.startswith("E")
    return lsoa_codes.loc[england & lsoa_codes["sicbl24"].isna(), "lsoa11cd"].to_numpy()
