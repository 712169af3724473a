"""Generate synthetic agency encounters with children at risk, and the truth behind them.

The run is built in whole-array steps: children first (who they are, where they live, which
agencies they meet, whether they travel, whether they are exploited), then one row per encounter
by repeating each child's attributes, then the damage each agency's recording does to identifiers.
No step loops over records, so a million encounters take seconds. Each step draws from its own
random stream derived from the seed, so a run is reproducible and changing one step's logic does
not reshuffle every other step.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy.special import ndtr

from lib.synth import nhs
from lib.synth.config import AGENCY_TYPES, SynthConfig
from lib.synth.geography import NEIGHBOURS, Geography, load_geography, resolve_pfas
from lib.synth.names import TYPO_VARIANTS, names

ENCOUNTER_TYPES: dict[str, tuple[str, ...]] = {
    "police": ("missing episode", "stop and search", "CSE referral", "arrest", "concern for welfare"),
    "children_social_care": ("referral", "assessment", "strategy discussion", "child protection plan"),
    "health": ("A&E attendance", "sexual health clinic", "CAMHS", "GP"),
    "education": ("absence concern", "exclusion", "DSL referral"),
}
# Type mix by state of the record: (not exploited, exploited but not flagged, flagged as CSE).
# A flag pulls the type towards the CSE pathway (police CSE referral, strategy discussion,
# sexual-health clinic, DSL referral); "CSE referral" only ever appears on flagged records.
_TYPE_WEIGHTS = {
    "police": ((0.30, 0.25, 0.00, 0.20, 0.25), (0.45, 0.20, 0.00, 0.15, 0.20), (0.35, 0.05, 0.45, 0.05, 0.10)),
    "children_social_care": ((0.50, 0.35, 0.10, 0.05), (0.40, 0.35, 0.15, 0.10), (0.15, 0.25, 0.40, 0.20)),
    "health": ((0.40, 0.10, 0.20, 0.30), (0.35, 0.25, 0.20, 0.20), (0.25, 0.45, 0.15, 0.15)),
    "education": ((0.55, 0.25, 0.20), (0.50, 0.25, 0.25), (0.25, 0.15, 0.60)),
}
RECORD_PREFIX = {"police": "POL", "children_social_care": "CSC", "health": "NHS", "education": "EDU"}

ENCOUNTER_COLUMNS = ["source_record_id", "agency_type", "agency_code", "encounter_date", "encounter_type",
                     "cse_flag", "nhs_number", "forename", "surname", "date_of_birth", "sex",
                     "home_postcode", "encounter_postcode"]
TRUTH_COLUMNS = ["agency_type", "source_record_id", "true_child_id", "true_cse"]
# Diagnostic truth (what the recording did to each record), for evaluation and tests only.
TRUTH_DETAIL_COLUMNS = ["true_nhs_number", "true_forename", "true_surname", "true_date_of_birth", "true_sex",
                        "true_home_postcode", "anonymous", "nhs_status", "name_status", "typo_forename",
                        "typo_surname", "dob_error", "postcode_moved", "far_from_home"]
NHS_STATUS = ("correct", "absent", "mistyped", "other_child")
NAME_STATUS = ("true", "nickname", "alias", "false_name", "anonymous")

_POLICE, _CSC, _HEALTH, _EDUCATION = range(4)
_DAYS_10Y = 3653  # at least ten years in days, whatever the leap years
_DAYS_UNDER_18Y = 6573  # at most this many days after birth is still under eighteen
_FAR_NEIGHBOURS = 4  # a far destination is its LSOA and its three nearest


class _Progress:
    def __init__(self, callback):
        self.callback = callback

    def __call__(self, fraction: float, message: str):
        if self.callback is not None:
            self.callback(float(min(max(fraction, 0.0), 1.0)), message)


def _stream(seed: int, step: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(step,)))


def _agency_vector(rates: dict) -> np.ndarray:
    return np.array([rates[a] for a in AGENCY_TYPES], dtype=float)


# ---------------------------------------------------------------- geography sampling helpers

def _postcode_in(geo: Geography, lsoa: np.ndarray, rng) -> np.ndarray:
    """A uniformly random postcode position inside each given LSOA."""
    return geo.lsoa_start[lsoa] + (rng.random(len(lsoa)) * geo.lsoa_count[lsoa]).astype(np.int64)


def _weighted_lsoa(weights: np.ndarray, size: int, rng) -> np.ndarray:
    cum = np.cumsum(weights)
    return np.searchsorted(cum, rng.random(size) * cum[-1], side="right").clip(0, len(weights) - 1)


def _far_lsoa(geo: Geography, cfg: SynthConfig, size: int, rng) -> np.ndarray:
    """Far-away places: mostly dense urban LSOAs (cities), the rest anywhere people live."""
    by_city = _weighted_lsoa(geo.city_weight, size, rng)
    by_postcodes = _weighted_lsoa(np.where(geo.usable, geo.lsoa_count, 0).astype(float), size, rng)
    return np.where(rng.random(size) < cfg.destination_city_weight, by_city, by_postcodes)


def _destinations(geo: Geography, cfg: SynthConfig, home_lsoa: np.ndarray, rng) -> np.ndarray:
    """A far destination for each child, in another police force than home (county lines)."""
    dest = _far_lsoa(geo, cfg, len(home_lsoa), rng)
    home_pfa = geo.lsoa_pfa[home_lsoa]
    for _ in range(40):
        clash = np.flatnonzero(geo.lsoa_pfa[dest] == home_pfa)
        if len(clash) == 0:
            break
        dest[clash] = _far_lsoa(geo, cfg, len(clash), rng)
    return dest


# ---------------------------------------------------------------- dates

def _ymd(days: np.ndarray):
    d = days.astype("M8[D]")
    months = d.astype("M8[M]")
    year = d.astype("M8[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (d - months.astype("M8[D]")).astype(np.int64) + 1
    return year, month, day


def _from_ymd(year, month, day) -> np.ndarray:
    """Days since 1970 of (year, month, day), the day clamped to the month's length (29 Feb → 28)."""
    mstart = ((year - 1970) * 12 + (month - 1)).astype("M8[M]")
    first = mstart.astype("M8[D]")
    length = ((mstart + 1).astype("M8[D]") - first).astype(np.int64)
    return (first + (np.minimum(day, length) - 1)).astype(np.int64)


def _damage_dob(dob: np.ndarray, rng) -> np.ndarray:
    """A wrong date of birth of the kinds clerks make: day/month swapped, a day out, a year out.

    A swap is only possible when the day is 12 or less and differs from the month; otherwise the
    date is moved by a day, so every damaged date really differs from the true one.
    """
    year, month, day = _ymd(dob)
    kind = rng.integers(0, 3, size=len(dob))
    swap_ok = (day <= 12) & (day != month)
    kind = np.where((kind == 0) & ~swap_ok, 1, kind)
    step = np.where(rng.random(len(dob)) < 0.5, -1, 1)
    out = dob + step  # kind 1: a day out
    swapped = _from_ymd(year, day, month)
    out = np.where(kind == 0, swapped, out)
    year_out = _from_ymd(year + step, month, day)
    return np.where(kind == 2, year_out, out)


# ---------------------------------------------------------------- children

def _encounter_counts(cfg: SynthConfig, rng):
    """(cse, counts) per child: counts sum exactly to n_encounters, long-tailed."""
    n = int(cfg.n_encounters)
    p, k, r = cfg.cse_prevalence, cfg.cse_encounter_ratio, cfg.encounter_dispersion
    extra_mean = (cfg.mean_encounters_per_child - 1) / (1 - p + p * k)
    batch = int(n / cfg.mean_encounters_per_child * 1.1) + 16
    cse_parts, count_parts, total = [], [], 0
    while total < n:
        cse = rng.random(batch) < p
        mu = np.where(cse, extra_mean * k, extra_mean)
        extra = rng.negative_binomial(r, r / (r + mu)) if extra_mean > 0 else np.zeros(batch, np.int64)
        counts = np.minimum(1 + extra, cfg.max_encounters_per_child)
        cse_parts.append(cse)
        count_parts.append(counts)
        total += int(counts.sum())
    cse, counts = np.concatenate(cse_parts), np.concatenate(count_parts).astype(np.int64)
    cum = np.cumsum(counts)
    n_children = int(np.searchsorted(cum, n) + 1)
    cse, counts = cse[:n_children], counts[:n_children].copy()
    counts[-1] -= int(cum[n_children - 1] - n)
    return cse, counts


def _children(cfg: SynthConfig, geo: Geography, pfas, rng_list) -> dict:
    """Step: the children: who they are, how often and when agencies meet them, where they live and travel."""
    rng_pop, rng_home, rng_id, rng_travel = rng_list
    cse, counts = _encounter_counts(cfg, rng_pop)
    k = len(counts)
    span = (cfg.end_date - cfg.start_date).days  # last day offset
    start_abs = (np.datetime64(cfg.start_date, "D") - np.datetime64("1970-01-01", "D")).astype(np.int64)

    female = rng_pop.random(k) < np.where(cse, cfg.female_share_cse, cfg.female_share)
    # The time a child is known to agencies: longer for children with more encounters.
    shape = 1.0 + 0.5 * np.minimum(counts - 1, 10)
    length = np.where(counts > 1, np.round(span * rng_pop.beta(shape, 2.0)), 0).astype(np.int64)
    wstart = (rng_pop.random(k) * (span - length + 1)).astype(np.int64)
    home_lsoa, home_pc, years = _homes(cfg, geo, pfas, cse, rng_home)
    if years is not None:  # an exploited child's time with agencies lies in one of its authority's published years
        wstart, length = _within_year(geo, home_lsoa, cse, length, wstart, years, rng_home)
    # Date of birth: aged 10 at the first encounter at the youngest, under 18 at the last; skewed
    # towards mid-teens where exploitation concentrates.
    latest = start_abs + wstart - _DAYS_10Y
    earliest = start_abs + wstart + length - _DAYS_UNDER_18Y
    dob = earliest + np.floor(rng_pop.beta(1.3, 1.8, size=k) * (latest - earliest + 1)).astype(np.int64)

    # Agency mix: each child's own share of each agency, drawn around the base mix.
    base = np.where(cse[:, None], _agency_vector(cfg.agency_mix_cse), _agency_vector(cfg.agency_mix))
    base = base / base.sum(axis=1, keepdims=True)
    mix = rng_pop.gamma(np.maximum(base * cfg.agency_concentration, 1e-9))
    mix = np.where(base > 0, mix, 0)
    mix_sum = mix.sum(axis=1, keepdims=True)
    mix = np.where(mix_sum > 0, mix / np.where(mix_sum > 0, mix_sum, 1), base)
    cum_mix = np.cumsum(mix, axis=1)
    cum_mix[:, -1] = 1.0

    old_lsoa, old_pc = _previous_addresses(geo, home_lsoa, home_pc, rng_home)
    ids = _identities(cfg, female, rng_id)
    # Siblings: a few children share a surname and a home with another child in the data.
    n_sib = round(cfg.sibling_share * k) if k > 1 else 0
    if n_sib:
        younger = rng_id.choice(k, size=n_sib, replace=False)
        elder = (younger + rng_id.integers(1, k, size=n_sib)) % k
        for arr in (ids["surname"], home_lsoa, home_pc, old_lsoa, old_pc):
            arr[younger] = arr[elder]
        ids["alias_sur"][younger] = _random_surname(n_sib, rng_id, avoid=ids["surname"][younger])
    travel = _travel(cfg, geo, cse, home_lsoa, rng_travel)
    return dict(n=k, cse=cse, counts=counts, female=female, start_abs=start_abs, wstart=wstart, length=length,
                dob=dob, cum_mix=cum_mix, home_lsoa=home_lsoa, home_pc=home_pc, old_pc=old_pc, **ids, **travel)


def _homes(cfg: SynthConfig, geo: Geography, pfas, cse: np.ndarray, rng):
    """Each child's home LSOA and postcode, and (calibrated runs) the published-year shares.

    Calibrated (``cfg.calibrate`` and a geography with official child populations): children not exploited
    live where children live (official 0-17 population per LSOA); exploited children live in each children's
    services authority in proportion to its published DfE C3 CSE count for the run's years
    (``lib.synth.calibration``), shared within the authority by its children. Otherwise a uniformly random
    real postcode in the allowed forces (postcodes ~ households), as before calibration."""
    mask = geo.home_lsoa_mask(pfas)
    if not mask.any():
        raise ValueError("no postcodes in the chosen area")
    k = len(cse)
    if cfg.calibrate and geo.lsoa_children is not None:
        from lib.synth import calibration

        plan = calibration.home_plan(cfg, geo, mask)
        home_lsoa = np.empty(k, dtype=np.int64)
        for exploited, weights in ((False, plan.weights_other), (True, plan.weights_cse)):
            sel = np.flatnonzero(cse == exploited)
            home_lsoa[sel] = _weighted_lsoa(weights, len(sel), rng)
        return home_lsoa, _postcode_in(geo, home_lsoa, rng), plan
    elig = np.flatnonzero(mask)
    cum = np.cumsum(geo.lsoa_count[elig])
    r = rng.integers(0, cum[-1], size=k)
    j = np.searchsorted(cum, r, side="right")
    home_lsoa = elig[j]
    home_pc = geo.lsoa_start[home_lsoa] + (r - (cum[j] - geo.lsoa_count[home_lsoa]))
    return home_lsoa, home_pc, None


def _within_year(geo: Geography, home_lsoa, cse, length, wstart, plan, rng) -> tuple[np.ndarray, np.ndarray]:
    """Exploited children: their time with agencies lies within one financial year, drawn by the home
    authority's published counts per year (``plan.year_shares``), so each year's volumes follow C3.
    Returns (window start, window length) for all children (others unchanged)."""
    sel = np.flatnonzero(cse)
    shares = plan.year_shares[geo.lsoa_utla[home_lsoa[sel]]]
    cum = np.cumsum(shares, axis=1)
    year = (rng.random(len(sel))[:, None] > cum / cum[:, -1:]).sum(axis=1).clip(0, len(plan.year_offsets) - 1)
    lo, hi = plan.year_offsets[year], plan.year_ends[year]
    new_length = np.minimum(length[sel], hi - lo)
    start = lo + (rng.random(len(sel)) * (hi - lo - new_length + 1)).astype(np.int64)
    out_start, out_length = wstart.copy(), length.copy()
    out_start[sel], out_length[sel] = start, new_length
    return out_start, out_length


def _previous_addresses(geo: Geography, home_lsoa, home_pc, rng):
    """A previous address, recorded by agencies that have not caught up: mostly nearby."""
    k = len(home_lsoa)
    near = rng.random(k) < 0.75
    old_lsoa = np.where(near, geo.neighbours[home_lsoa, rng.integers(0, NEIGHBOURS, size=k)],
                        _weighted_lsoa(np.where(geo.usable, geo.lsoa_count, 0).astype(float), k, rng))
    old_pc = _postcode_in(geo, old_lsoa, rng)
    for _ in range(5):  # a previous address is a different postcode
        same = np.flatnonzero(old_pc == home_pc)
        if len(same) == 0:
            break
        old_lsoa[same] = geo.neighbours[home_lsoa[same], rng.integers(1, NEIGHBOURS, size=len(same))]
        old_pc[same] = _postcode_in(geo, old_lsoa[same], rng)
    return old_lsoa, old_pc


def _identities(cfg: SynthConfig, female, rng) -> dict:
    """Names, aliases and NHS numbers."""
    k = len(female)
    nm = names()
    forename = np.empty(k, dtype=np.int32)
    nf = int(female.sum())
    forename[female] = rng.choice(nm.girl_ids, size=nf, p=nm.girl_p)
    forename[~female] = rng.choice(nm.boy_ids, size=k - nf, p=nm.boy_p)
    surname = rng.choice(nm.surname_ids, size=k, p=nm.surname_p).astype(np.int32)
    alias_fore = _random_forename(female, rng, avoid=forename)
    alias_sur = _random_surname(k, rng, avoid=surname)
    nick_pick = rng.integers(0, 1 << 20, size=k)
    nhs_true = nhs.unique_valid_numbers(k, rng)
    return {"forename": forename, "surname": surname, "alias_fore": alias_fore, "alias_sur": alias_sur,
            "nick_pick": nick_pick, "nhs": nhs_true}


def _travel(cfg: SynthConfig, geo: Geography, cse, home_lsoa, rng) -> dict:
    """Travel: who goes far (county lines), and where to."""
    k = len(cse)
    p_travel = cfg.travel_far_share / (1 - cfg.cse_prevalence + cfg.cse_prevalence * cfg.travel_far_cse_ratio)
    travels = rng.random(k) < np.minimum(1.0, np.where(cse, p_travel * cfg.travel_far_cse_ratio, p_travel))
    dest1 = np.full(k, -1, dtype=np.int64)  # only travellers have destinations
    dest2 = np.full(k, -1, dtype=np.int64)
    ti = np.flatnonzero(travels)
    dest1[ti] = _destinations(geo, cfg, home_lsoa[ti], rng)
    dest2[ti] = np.where(rng.random(len(ti)) < cfg.second_destination_share,
                         _destinations(geo, cfg, home_lsoa[ti], rng), dest1[ti])
    flag_z = rng.standard_normal(k)  # a child's own visibility of exploitation
    return {"travels": travels, "dest1": dest1, "dest2": dest2, "flag_z": flag_z}


def _random_forename(female: np.ndarray, rng, avoid: np.ndarray | None = None) -> np.ndarray:
    """A random forename for each child of the given sex, never the one in ``avoid``."""
    nm = names()
    out = np.empty(len(female), dtype=np.int32)
    for is_f, ids, p in ((True, nm.girl_ids, nm.girl_p), (False, nm.boy_ids, nm.boy_p)):
        sel = np.flatnonzero(female == is_f)
        pick = rng.choice(len(ids), size=len(sel), p=p)
        if avoid is not None:
            clash = ids[pick] == avoid[sel]
            pick[clash] = (pick[clash] + 1) % len(ids)
        out[sel] = ids[pick]
    return out


def _random_surname(n: int, rng, avoid: np.ndarray | None = None) -> np.ndarray:
    nm = names()
    pick = rng.choice(len(nm.surname_ids), size=n, p=nm.surname_p)
    if avoid is not None:
        clash = nm.surname_ids[pick] == avoid
        pick[clash] = (pick[clash] + 1) % len(nm.surname_ids)
    return nm.surname_ids[pick].astype(np.int32)


# ---------------------------------------------------------------- main

def generate(config: SynthConfig | None = None, progress: Callable[[float, str], None] | None = None,
             geography: Geography | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Synthetic encounters (canonical records, identifiers in clear) and their ground truth.

    Returns ``(encounters, truth)``: the same number of rows in the same order, joined by
    (agency_type, source_record_id). ``progress(fraction, message)`` is called as steps finish.
    ``geography`` defaults to the real England and Wales one from lib.geo.lookup.
    """
    cfg = config or SynthConfig()
    report = _Progress(progress)
    report(0.0, "loading geography")
    geo = geography if geography is not None else load_geography()
    pfas = resolve_pfas(geo, cfg.pfa_filter, cfg.region)
    seed = cfg.seed

    report(0.1, "creating children")
    ch = _children(cfg, geo, pfas, [_stream(seed, s) for s in (1, 2, 3, 4)])
    report(0.3, "placing encounters")
    enc = _place_encounters(cfg, geo, ch, seed)
    report(0.4, "recording CSE concerns")
    _record_concerns(cfg, geo, ch, enc, seed)
    report(0.5, "recording identifiers")
    _record_identifiers(cfg, ch, enc, seed)
    report(0.65, "numbering records")
    order, seq = _number_records(geo, ch, enc, seed)
    report(0.75, "writing text columns")
    encounters = _encounter_frame(geo, enc, order, seq)
    report(0.9, "writing truth")
    truth = _truth_frame(geo, ch, enc, order, encounters)
    report(1.0, "done")
    return encounters, truth


def _place_encounters(cfg: SynthConfig, geo: Geography, ch: dict, seed: int) -> dict:
    """Step: one row per encounter: its child, agency, day, place and the agency area recording it."""
    rng = _stream(seed, 5)
    k, n = ch["n"], int(cfg.n_encounters)
    child = np.repeat(np.arange(k, dtype=np.int64), ch["counts"])
    agency = (rng.random(n)[:, None] > ch["cum_mix"][child]).sum(axis=1).astype(np.int8)
    day = ch["wstart"][child] + (rng.random(n) * (ch["length"][child] + 1)).astype(np.int64)
    enc_day = ch["start_abs"] + day

    mobile = (agency == _POLICE) | (agency == _HEALTH)
    traveller_far = mobile & ch["travels"][child] & (rng.random(n) < cfg.far_encounter_share)
    stray = mobile & ~traveller_far & (rng.random(n) < cfg.stray_far_share)
    home_lsoa = ch["home_lsoa"][child]
    col = np.where(rng.random(n) < cfg.near_same_lsoa, 0, rng.integers(1, NEIGHBOURS, size=n))
    loc = geo.neighbours[home_lsoa, col]
    tf = np.flatnonzero(traveller_far)
    dest = np.where(rng.random(len(tf)) < 0.7, ch["dest1"][child[tf]], ch["dest2"][child[tf]])
    loc[tf] = geo.neighbours[dest, rng.integers(0, _FAR_NEIGHBOURS, size=len(tf))]
    st = np.flatnonzero(stray)
    loc[st] = _far_lsoa(geo, cfg, len(st), rng)
    enc_pc = _postcode_in(geo, loc, rng)

    code = np.where(agency == _POLICE, geo.lsoa_pfa[loc], geo.lsoa_utla[home_lsoa]).astype(np.int32)
    # Health: the acute trust recording it is drawn by the OHID catchment shares of the place it happened
    # (own stream, so the other draws do not depend on it).
    health = np.flatnonzero(agency == _HEALTH)
    code[health] = geo.draw_trust(loc[health], _stream(seed, 11).random(len(health)))
    return {"n": n, "child": child, "agency": agency, "enc_day": enc_day, "enc_pc": enc_pc, "code": code,
                "traveller_far": traveller_far, "stray": stray}


def _record_concerns(cfg: SynthConfig, geo: Geography, ch: dict, enc: dict, seed: int) -> None:
    """Step: whether each record is flagged as CSE, its encounter type, and anonymous sexual-health contacts."""
    rng = _stream(seed, 6)
    n, child, agency, code = enc["n"], enc["child"], enc["agency"], enc["code"]
    true_cse = ch["cse"][child]
    factor = _area_factors(cfg, len(geo.codes), seed)
    if cfg.calibrate and geo.lsoa_children is not None:
        factor[_CSC] = 1.0  # calibrated: the published C3 count already holds each authority's recording practice
    p_flag = np.where(true_cse, _agency_vector(cfg.cse_flag_propensity)[agency],
                      _agency_vector(cfg.cse_false_flag_rate)[agency]) * factor[agency, code]
    rho = cfg.cse_flag_child_correlation
    u = ndtr(np.sqrt(rho) * ch["flag_z"][child] + np.sqrt(1 - rho) * rng.standard_normal(n))
    flag = u < np.minimum(p_flag, 0.99)

    # Encounter type, by agency and state (0 not exploited, 1 exploited not flagged, 2 flagged).
    state = np.where(flag, 2, true_cse.astype(np.int8))
    type_names, offsets = [], {}
    for a in AGENCY_TYPES:
        offsets[a] = len(type_names)
        type_names += list(ENCOUNTER_TYPES[a])
    etype = np.zeros(n, dtype=np.int16)
    u = rng.random(n)
    for ai, a in enumerate(AGENCY_TYPES):
        for s in range(3):
            sel = np.flatnonzero((agency == ai) & (state == s))
            w = np.cumsum(_TYPE_WEIGHTS[a][s])
            etype[sel] = offsets[a] + np.searchsorted(w / w[-1], u[sel], side="right").clip(0, len(w) - 1)
    sexual_health = etype == offsets["health"] + ENCOUNTER_TYPES["health"].index("sexual health clinic")
    anonymous = sexual_health & (rng.random(n) < cfg.anonymous_sexual_health_share)
    enc.update(true_cse=true_cse, flag=flag, etype=etype, type_names=type_names, anonymous=anonymous,
               identified=~anonymous)


def _record_identifiers(cfg: SynthConfig, ch: dict, enc: dict, seed: int) -> None:
    """Step: what each record holds of the child's identifiers (NHS number, names, date of birth, sex,
    home postcode), damaged at each agency's rates."""
    rng = _stream(seed, 7)
    n, k, child, agency, identified = enc["n"], ch["n"], enc["child"], enc["agency"], enc["identified"]
    # NHS number.
    nhs_true = ch["nhs"][child]
    has_nhs = identified & (rng.random(n) < _agency_vector(cfg.nhs_capture)[agency])
    u = rng.random(n)
    mistyped = has_nhs & (u < cfg.nhs_mistype_rate)
    other = has_nhs & ~mistyped & (u < cfg.nhs_mistype_rate + cfg.nhs_other_child_rate) & (k > 1)
    nhs_rec = nhs_true.copy()
    mi = np.flatnonzero(mistyped)
    nhs_rec[mi] = nhs.mistype(nhs_true[mi], rng)
    oi = np.flatnonzero(other)
    nhs_rec[oi] = ch["nhs"][(child[oi] + rng.integers(1, max(k, 2), size=len(oi))) % k]
    nhs_status = np.where(~has_nhs, 1, np.where(mistyped, 2, np.where(other, 3, 0))).astype(np.int8)
    enc.update(nhs_true=nhs_true, has_nhs=has_nhs, nhs_rec=nhs_rec, nhs_status=nhs_status)
    _record_names(cfg, ch, enc, rng)

    # Date of birth, sex, home postcode.
    dob_true = ch["dob"][child]
    dob_present = identified & (rng.random(n) >= _agency_vector(cfg.dob_missing_rate)[agency])
    dob_err = dob_present & (rng.random(n) < _agency_vector(cfg.dob_error_rate)[agency])
    dob_rec = dob_true.copy()
    di = np.flatnonzero(dob_err)
    dob_rec[di] = _damage_dob(dob_true[di], rng)
    female = ch["female"][child]
    sex_rec = np.where(female, 1, 0).astype(np.int8)
    sex_rec[enc["anonymous"] | (rng.random(n) < cfg.sex_unknown_rate)] = 2
    pc_present = identified & (rng.random(n) >= _agency_vector(cfg.home_postcode_missing_rate)[agency])
    moved = pc_present & (rng.random(n) < _agency_vector(cfg.moved_postcode_rate)[agency])
    home_pc_true = ch["home_pc"][child]
    home_pc_rec = np.where(moved, ch["old_pc"][child], home_pc_true)
    enc.update(dob_true=dob_true, dob_present=dob_present, dob_err=dob_err, dob_rec=dob_rec, female=female,
               sex_rec=sex_rec, pc_present=pc_present, moved=moved, home_pc_true=home_pc_true,
               home_pc_rec=home_pc_rec)


def _record_names(cfg: SynthConfig, ch: dict, enc: dict, rng) -> None:
    """Names: nickname, then false name (alias or one-off), then keying errors."""
    n, child, agency, identified = enc["n"], enc["child"], enc["agency"], enc["identified"]
    nm = names()
    fore_true = ch["forename"][child]
    sur_true = ch["surname"][child]
    fn = fore_true.copy()
    sn = sur_true.copy()
    n_nick = nm.forenames.nick_n[fn]
    use_nick = identified & (n_nick > 0) & (rng.random(n) < _agency_vector(cfg.nickname_rate)[agency])
    ni = np.flatnonzero(use_nick)
    fn[ni] = nm.forenames.nick[fn[ni], ch["nick_pick"][child[ni]] % n_nick[ni]]
    false = identified & (rng.random(n) < _agency_vector(cfg.false_name_rate)[agency])
    alias = false & (rng.random(n) < cfg.alias_share)
    one_off = false & ~alias
    ai_ = np.flatnonzero(alias)
    fn[ai_] = ch["alias_fore"][child[ai_]]
    sn[ai_] = ch["alias_sur"][child[ai_]]
    oo = np.flatnonzero(one_off)
    fn[oo] = _random_forename(ch["female"][child[oo]], rng, avoid=fore_true[oo])
    sn[oo] = _random_surname(len(oo), rng, avoid=sur_true[oo])
    typo_rate = _agency_vector(cfg.typo_rate)[agency]
    typo_f = identified & (rng.random(n) < typo_rate)
    typo_s = identified & (rng.random(n) < typo_rate)
    ti = np.flatnonzero(typo_f)
    fn[ti] = nm.forenames.typo[fn[ti], rng.integers(0, TYPO_VARIANTS, size=len(ti))]
    ti = np.flatnonzero(typo_s)
    sn[ti] = nm.surnames.typo[sn[ti], rng.integers(0, TYPO_VARIANTS, size=len(ti))]
    name_status = np.select([enc["anonymous"], one_off, alias, use_nick], [4, 3, 2, 1], 0).astype(np.int8)
    enc.update(fore_true=fore_true, sur_true=sur_true, fn=fn, sn=sn, typo_f=typo_f, typo_s=typo_s,
               name_status=name_status)


def _number_records(geo: Geography, ch: dict, enc: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Step: agency extracts come sorted by agency, area and date; numbering within each agency area.
    Returns (row order, sequence number within the agency area in that order)."""
    rng = _stream(seed, 8)
    n = enc["n"]
    group = enc["agency"].astype(np.int64) * len(geo.codes) + enc["code"]
    key = ((group * 4096 + (enc["enc_day"] - ch["start_abs"])) << 24) + rng.integers(0, 1 << 24, size=n)
    order = np.argsort(key, kind="stable")
    group_sorted = group[order]
    first = np.r_[True, group_sorted[1:] != group_sorted[:-1]]
    starts = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    return order, np.arange(n) - starts + 1


def _days_to_ts(days, present):
    out = days.astype("M8[D]").astype("M8[us]")
    out[~present] = np.datetime64("NaT")
    return out


def _nhs_text(values, present):
    return pc.utf8_lpad(pa.array(values, mask=~present).cast(pa.string()), 10, "0")


def _encounter_frame(geo: Geography, enc: dict, o: np.ndarray, seq: np.ndarray) -> pd.DataFrame:
    """Step: the canonical encounter columns, rows in extract order ``o``."""
    n = enc["n"]
    nm = names()
    agency_o = enc["agency"][o]
    agency_col = pa.array(list(AGENCY_TYPES)).take(pa.array(agency_o))
    code_col = pa.array(geo.codes.tolist()).take(pa.array(enc["code"][o]))
    prefix = pa.array([RECORD_PREFIX[a] for a in AGENCY_TYPES]).take(pa.array(agency_o))
    seq_txt = pc.utf8_lpad(pa.array(seq).cast(pa.string()), 7, "0")
    record_id = pc.binary_join_element_wise(prefix, code_col, seq_txt, "-")
    fore_vocab = pa.array(nm.forenames.strings.tolist())
    sur_vocab = pa.array(nm.surnames.strings.tolist())
    ident_o = enc["identified"][o]

    def masked_take(vocab, idx, present):
        return vocab.take(pa.array(idx, mask=~present))

    sex_vocab = pa.array(["M", "F", "U"])
    return pd.DataFrame({
        "source_record_id": _text(record_id),
        "agency_type": _text(agency_col),
        "agency_code": _text(code_col),
        "encounter_date": _days_to_ts(enc["enc_day"][o], np.ones(n, bool)),
        "encounter_type": _text(pa.array(enc["type_names"]).take(pa.array(enc["etype"][o]))),
        "cse_flag": enc["flag"][o],
        "nhs_number": _text(_nhs_text(enc["nhs_rec"][o], enc["has_nhs"][o])),
        "forename": _text(masked_take(fore_vocab, enc["fn"][o], ident_o)),
        "surname": _text(masked_take(sur_vocab, enc["sn"][o], ident_o)),
        "date_of_birth": _days_to_ts(enc["dob_rec"][o], enc["dob_present"][o]),
        "sex": _text(sex_vocab.take(pa.array(enc["sex_rec"][o]))),
        "home_postcode": _text(masked_take(geo.postcode_fmt, enc["home_pc_rec"][o], enc["pc_present"][o])),
        "encounter_postcode": _text(geo.postcode_fmt.take(pa.array(enc["enc_pc"][o]))),
    })


def _truth_frame(geo: Geography, ch: dict, enc: dict, o: np.ndarray, encounters: pd.DataFrame) -> pd.DataFrame:
    """Step: the ground truth of each record, same rows and order as the encounters."""
    n = enc["n"]
    nm = names()
    fore_vocab = pa.array(nm.forenames.strings.tolist())
    sur_vocab = pa.array(nm.surnames.strings.tolist())
    sex_vocab = pa.array(["M", "F", "U"])
    anonymous = enc["anonymous"]
    return pd.DataFrame({
        "agency_type": encounters["agency_type"],
        "source_record_id": encounters["source_record_id"],
        "true_child_id": enc["child"][o],
        "true_cse": enc["true_cse"][o],
        "true_nhs_number": _text(_nhs_text(enc["nhs_true"][o], np.ones(n, bool))),
        "true_forename": _text(fore_vocab.take(pa.array(enc["fore_true"][o]))),
        "true_surname": _text(sur_vocab.take(pa.array(enc["sur_true"][o]))),
        "true_date_of_birth": _days_to_ts(enc["dob_true"][o], np.ones(n, bool)),
        "true_sex": _text(sex_vocab.take(pa.array(enc["female"][o].astype(np.int8)))),
        "true_home_postcode": _text(geo.postcode_fmt.take(pa.array(enc["home_pc_true"][o]))),
        "anonymous": anonymous[o],
        "nhs_status": pd.Categorical.from_codes(np.where(anonymous, 1, enc["nhs_status"])[o], NHS_STATUS),
        "name_status": pd.Categorical.from_codes(enc["name_status"][o], NAME_STATUS),
        "typo_forename": enc["typo_f"][o],
        "typo_surname": enc["typo_s"][o],
        "dob_error": enc["dob_err"][o],
        "postcode_moved": enc["moved"][o],
        "far_from_home": (enc["traveller_far"] | enc["stray"])[o],
    })

def _text(array) -> pd.Series:
    """A pyarrow string array as a pandas ``str`` column (missing values as NaN, pandas 3)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return pd.Series(array, dtype="str")


def _area_factors(cfg: SynthConfig, n_codes: int, seed: int) -> np.ndarray:
    """Recording practice of each agency area: a multiplier on the chance a CSE concern is flagged.

    Drawn per (agency type, area code) from the seed alone, so an area keeps its practice whatever
    the run's size or filter; mean 1 on the log-normal scale so the national propensity holds.
    """
    sd = cfg.cse_flag_area_sd
    z = _stream(seed, 99).standard_normal((len(AGENCY_TYPES), n_codes))
    return np.exp(sd * z - sd * sd / 2)
