"""Re-record a synthetic population's identifiers under scenario levers; everything else stays as generated.

"Same children, same encounters, only identifier capture changed": the generator (lib.synth) is run once
from its seed; this module then re-does only the recording of identifiers, record by record, from the
generator's own truth. Nothing else (children, agencies, dates, places, CSE flags, encounter types, the
other identifier damage) is touched.

Coupled draws. Each lever is decided by one uniform per encounter (per child for parental opt-out), drawn
from its own seeded stream, so changing one lever changes no other draw, and raising a share only adds
records to the set that carry the feature (the sets are nested: monotone by construction). The uniforms
are *conditioned on what the generator recorded*: for a lever whose realised share today is ``m`` in an
agency, a record that carries the feature today gets ``u ~ U(0, m)``, one that does not gets
``u ~ U(m, 1)``. So the scenario at today's shares reproduces the generated extract exactly, and any other
share is an exact draw from the same model (given today's outcome). The levers:

- ``capture[agency]`` (and ``area_capture[agency][agency_code]``): share of identified (not anonymous)
  encounters on which the child's NHS number is recorded.
- ``wrong_number``: share of recorded NHS numbers that are wrong (mistyped, failing Modulus 11, or another
  child's valid number). Records wrong today stay wrong while the share is at least today's.
- ``false_name[agency]``: share of identified encounters recorded under a completely different name
  (another child's real name). A record that stops being false carries the child's true name.
- ``anonymous``: share of sexual-health clinic contacts made with no identity at all. A contact that stops
  being anonymous carries the child's true name, date of birth, sex and home postcode, and an NHS number
  by the capture lever.
- ``opt_out``: share of children whose parents decline the NHS number being used to link them: none of
  their records carries it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from lib.synth import nhs
from lib.synth.config import AGENCY_TYPES

SEXUAL_HEALTH = "sexual health clinic"
_STREAMS = {"capture": 901, "wrong": 902, "wrong_kind": 903, "mistype": 904, "other_child": 905,
            "false_name": 906, "false_pick": 907, "anonymous": 908, "opt_out": 909}
WRONG_STATUS = ("mistyped", "other_child")
FALSE_STATUS = ("alias", "false_name")


@dataclass(frozen=True)
class Levers:
    """Scenario settings; ``None`` means "as recorded today" (the generated extract)."""

    capture: dict = field(default_factory=dict)  # agency_type -> share of identified encounters with a number
    area_capture: dict = field(default_factory=dict)  # agency_type -> {agency_code: share}
    wrong_number: float | None = None
    false_name: dict = field(default_factory=dict)  # agency_type -> share
    anonymous: float | None = None
    opt_out: float = 0.0

    def __post_init__(self):
        for name in ("capture", "false_name"):
            for agency, value in getattr(self, name).items():
                if agency not in AGENCY_TYPES:
                    raise ValueError(f"{name}: unknown agency type {agency!r}; "
                                     f"expected one of {', '.join(AGENCY_TYPES)}")
                _check_share(f"{name}[{agency}]", value)
        for agency, areas in self.area_capture.items():
            if agency not in AGENCY_TYPES:
                raise ValueError(f"area_capture: unknown agency type {agency!r}")
            for code, value in areas.items():
                _check_share(f"area_capture[{agency}][{code}]", value)
        for name in ("wrong_number", "anonymous", "opt_out"):
            if getattr(self, name) is not None:
                _check_share(name, getattr(self, name))

    def as_dict(self) -> dict:
        return asdict(self)

    def with_capture(self, share: float, agencies=AGENCY_TYPES) -> Levers:
        """The same levers with the capture share of ``agencies`` set to ``share`` (no area overrides)."""
        capture = {**self.capture, **{a: float(share) for a in agencies}}
        area = {a: v for a, v in self.area_capture.items() if a not in agencies}
        return Levers(capture=capture, area_capture=area, wrong_number=self.wrong_number,
                      false_name=dict(self.false_name), anonymous=self.anonymous, opt_out=self.opt_out)


def _check_share(name: str, value) -> None:
    if value is None or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} = {value!r} is not a share between 0 and 1")


def parse_capture(text: str) -> dict:
    """``"police=1.0,children_social_care=80%"`` (or ``all=1``) → {agency: share}; ValueError if malformed."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        if "=" not in part:
            raise ValueError(f"capture setting {part!r} is not agency=share")
        agency, value = (s.strip() for s in part.split("=", 1))
        share = float(value.rstrip("%")) / (100 if value.endswith("%") else 1)
        for a in (AGENCY_TYPES if agency == "all" else (agency,)):
            out[a] = share
    Levers(capture=out)  # validates
    return out


def _stream(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(_STREAMS[name],)))


def _coupled(today: np.ndarray, groups: np.ndarray, eligible: np.ndarray, rng) -> np.ndarray:
    """One uniform per record, conditioned so that ``u < realised share of its group`` iff ``today``.

    ``groups`` are integer group ids (e.g. agency); the realised share is over ``eligible`` records of the
    group. Ineligible records get a plain uniform (the share does not apply to them today)."""
    r = rng.random(len(today))
    u = r.copy()
    for g in np.unique(groups[eligible]):
        sel = eligible & (groups == g)
        m = float(today[sel].mean()) if sel.any() else 0.0
        u[sel] = np.where(today[sel], m * r[sel], m + (1 - m) * r[sel])
    return u


@dataclass
class Baseline:
    """Today's realised shares in a generated population (the levers' starting points)."""

    capture: dict
    wrong_number: float
    false_name: dict
    anonymous: float
    mistype_share_of_wrong: float

    def as_dict(self) -> dict:
        return asdict(self)


class Recorder:
    """Holds a generated (encounters, truth) pair and its coupled uniforms; ``record(levers)`` re-records it.

    ``truth`` must carry the generator's diagnostic columns (true identifiers, ``anonymous``,
    ``nhs_status``, ``name_status``); rows are in the same order as ``encounters``.
    """

    def __init__(self, encounters: pd.DataFrame, truth: pd.DataFrame, seed: int):
        need = {"true_nhs_number", "true_forename", "true_surname", "true_date_of_birth", "true_sex",
                "true_home_postcode", "anonymous", "nhs_status", "name_status", "true_child_id"}
        missing = need - set(truth.columns)
        if missing:
            raise ValueError(f"truth lacks the generator's diagnostic columns {sorted(missing)}")
        if len(encounters) != len(truth) or not (encounters["source_record_id"].to_numpy()
                                                 == truth["source_record_id"].to_numpy()).all():
            raise ValueError("encounters and truth must be the generator's rows in the same order")
        self.encounters = encounters.reset_index(drop=True)
        self.truth = truth.reset_index(drop=True)
        self.seed = int(seed)
        t, e = self.truth, self.encounters
        n = len(t)
        self.agency = e["agency_type"].map({a: i for i, a in enumerate(AGENCY_TYPES)}).fillna(-1).to_numpy(np.int64)
        self.anon0 = t["anonymous"].to_numpy(bool)
        self.sexual_health = (e["encounter_type"] == SEXUAL_HEALTH).to_numpy(bool)
        status = t["nhs_status"].astype(str).to_numpy()
        self.recorded0 = ~self.anon0 & (status != "absent")
        self.wrong0 = self.recorded0 & np.isin(status, WRONG_STATUS)
        self.mistyped0 = status == "mistyped"
        self.false0 = np.isin(t["name_status"].astype(str).to_numpy(), FALSE_STATUS)
        identified = ~self.anon0
        self.u_capture = _coupled(self.recorded0, self.agency, identified, _stream(seed, "capture"))
        self.u_wrong = _coupled(self.wrong0, np.zeros(n, np.int64), self.recorded0, _stream(seed, "wrong"))
        self.u_false = _coupled(self.false0, self.agency, identified, _stream(seed, "false_name"))
        self.u_anon = _coupled(self.anon0, np.zeros(n, np.int64), self.sexual_health, _stream(seed, "anonymous"))
        child = t["true_child_id"].to_numpy(np.int64)
        self.child = child
        n_children = int(child.max()) + 1 if n else 0
        self.u_opt_out = _stream(seed, "opt_out").random(n_children)[child] if n else np.zeros(0)
        # Ready-made wrong numbers and false names for records that become wrong / false in a scenario.
        true_nhs = pd.to_numeric(t["true_nhs_number"], errors="coerce").fillna(0).to_numpy(np.int64)
        self.true_nhs = true_nhs
        kind = _stream(seed, "wrong_kind").random(n)
        wrong_today = int(self.wrong0.sum())
        self.mistype_share = float(self.mistyped0[self.wrong0].mean()) if wrong_today else 0.77
        self.new_wrong_is_mistype = kind < self.mistype_share
        self.mistyped_numbers = nhs.mistype(true_nhs, _stream(seed, "mistype"))
        by_child = pd.Series(true_nhs, index=child).groupby(level=0).first()
        offset = _stream(seed, "other_child").integers(1, max(n_children, 2), size=n)
        other = (child + offset) % max(n_children, 1)
        self.other_numbers = by_child.reindex(other).fillna(0).to_numpy(np.int64)
        # A false name is another child's real name (same sex where possible).
        pick = _stream(seed, "false_pick").integers(0, max(n, 1), size=n)
        fore, sur = t["true_forename"].to_numpy(object), t["true_surname"].to_numpy(object)
        sex = t["true_sex"].to_numpy(object)
        order = np.argsort(sex, kind="stable")
        self.false_fore = np.empty(n, dtype=object)
        self.false_sur = sur[pick]
        for s in np.unique(sex):
            pool = order[sex[order] == s]
            idx = np.flatnonzero(sex == s)
            self.false_fore[idx] = fore[pool[pick[idx] % len(pool)]]
        same = (self.false_sur == sur)
        self.false_sur = np.where(same, sur[(pick + 1) % max(n, 1)], self.false_sur)
        self.baseline = self._baseline()

    def _baseline(self) -> Baseline:
        identified = ~self.anon0
        capture, false = {}, {}
        for i, a in enumerate(AGENCY_TYPES):
            sel = identified & (self.agency == i)
            capture[a] = round(float(self.recorded0[sel].mean()), 4) if sel.any() else 0.0
            false[a] = round(float(self.false0[sel].mean()), 4) if sel.any() else 0.0
        wrong = float(self.wrong0[self.recorded0].mean()) if self.recorded0.any() else 0.0
        anon = float(self.anon0[self.sexual_health].mean()) if self.sexual_health.any() else 0.0
        return Baseline(capture=capture, wrong_number=round(wrong, 4), false_name=false,
                        anonymous=round(anon, 4), mistype_share_of_wrong=round(self.mistype_share, 4))

    def capture_share(self, levers: Levers) -> np.ndarray:
        """Capture share applying to each record under ``levers`` (today's exact realised share by default)."""
        share = np.zeros(len(self.agency))
        codes = self.encounters["agency_code"].to_numpy(object)
        for i, a in enumerate(AGENCY_TYPES):
            sel = self.agency == i
            share[sel] = (float(levers.capture[a]) if a in levers.capture
                          else self._realised(self.recorded0, ~self.anon0 & sel))
            for code, value in levers.area_capture.get(a, {}).items():
                share[sel & (codes == code)] = float(value)
        return share

    @staticmethod
    def _realised(flag: np.ndarray, sel: np.ndarray) -> float:
        return float(flag[sel].mean()) if sel.any() else 0.0

    def record(self, levers: Levers | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(encounters as the agencies would record them under ``levers``, truth with updated statuses)."""
        lv = levers or Levers()
        e = self.encounters.copy()
        t = self.truth.copy()
        # Anonymous contacts (sexual-health clinics only).
        anon = (self.anon0.copy() if lv.anonymous is None
                else self.sexual_health & (self.u_anon < float(lv.anonymous)))
        identified = ~anon
        # Names.
        false = self.false0.copy()
        for i, a in enumerate(AGENCY_TYPES):
            if a in lv.false_name:
                sel = self.agency == i
                false[sel] = self.u_false[sel] < float(lv.false_name[a])
        false &= identified
        fore = e["forename"].to_numpy(object).copy()
        sur = e["surname"].to_numpy(object).copy()
        became_false = false & ~self.false0
        fore[became_false] = self.false_fore[became_false]
        sur[became_false] = self.false_sur[became_false]
        restored = identified & (~false & self.false0 | self.anon0)
        fore[restored] = t["true_forename"].to_numpy(object)[restored]
        sur[restored] = t["true_surname"].to_numpy(object)[restored]
        # NHS number: recorded, wrong, opted out.
        recorded = identified & (self.u_capture < self.capture_share(lv)) & (self.u_opt_out >= float(lv.opt_out))
        wrong_share = self.baseline.wrong_number if lv.wrong_number is None else float(lv.wrong_number)
        if lv.wrong_number is None:
            wrong = recorded & np.where(self.recorded0, self.wrong0, self.u_wrong < wrong_share)
        else:
            wrong = recorded & (self.u_wrong < wrong_share)
        number = self.true_nhs.copy()
        new_wrong = wrong & ~self.wrong0
        number = np.where(new_wrong & self.new_wrong_is_mistype, self.mistyped_numbers, number)
        number = np.where(new_wrong & ~self.new_wrong_is_mistype, self.other_numbers, number)
        kept_wrong = wrong & self.wrong0
        today_text = e["nhs_number"].to_numpy(object)
        text = pd.Series(number).astype(str).str.zfill(10).to_numpy(object)
        text[kept_wrong] = today_text[kept_wrong]
        nhs_col = np.where(recorded, text, None)
        # Other identifiers of contacts that are no longer (or newly) anonymous.
        dob = e["date_of_birth"].copy()
        sex = e["sex"].to_numpy(object).copy()
        home = e["home_postcode"].to_numpy(object).copy()
        back = identified & self.anon0
        dob[back] = t.loc[back, "true_date_of_birth"]
        sex[back] = t["true_sex"].to_numpy(object)[back]
        home[back] = t["true_home_postcode"].to_numpy(object)[back]
        gone = anon & ~self.anon0
        fore[gone] = None
        sur[gone] = None
        dob[gone] = pd.NaT
        home[gone] = None
        sex[gone] = "U"
        e["nhs_number"] = pd.Series(nhs_col, dtype="str")
        e["forename"] = pd.Series(fore, dtype="str")
        e["surname"] = pd.Series(sur, dtype="str")
        e["date_of_birth"] = dob
        e["sex"] = pd.Series(sex, dtype="str")
        e["home_postcode"] = pd.Series(home, dtype="str")
        status = np.where(~recorded, "absent", "correct").astype(object)
        status[wrong] = np.where(self.mistyped0[wrong] | (new_wrong[wrong] & self.new_wrong_is_mistype[wrong]),
                                 "mistyped", "other_child")
        t["nhs_status"] = status
        t["anonymous"] = anon
        name_status = t["name_status"].astype(str).to_numpy(object)
        name_status[became_false] = "false_name"
        name_status[restored] = "true"
        name_status[anon] = "anonymous"
        t["name_status"] = name_status
        t["opted_out"] = self.u_opt_out < float(lv.opt_out)
        return e, t
