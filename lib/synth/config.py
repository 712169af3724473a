"""What a synthetic run looks like: size, seed, geography filter and every rate that shapes it.

Every realism knob is a field here (not a constant in the generator) so tests, benchmarks and the
app's scenario controls can change one thing at a time and check that the data follow. Per-agency
rates are dicts keyed by agency type; a partial dict given by the caller is filled from the defaults.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields

from lib.geo import agencies

AGENCY_TYPES = agencies.SYNTHETIC_TYPES  # the agency registry (lib.geo.agencies)
#: The size of the default synthetic dataset: the one constant behind the first start
#: (lib.records.default) and `python -m lib.cli synth` without --encounters. Sized so that over both
#: years at least 90% of children's services authorities show a commissioner a children's social care CSE
#: count of 10 or more (bench/bench_default.py; docs/SYNTHETIC_DATA.md).
DEFAULT_ENCOUNTERS = 200_000


def _per_agency(police: float, csc: float, health: float, education: float):
    values = dict(zip(AGENCY_TYPES, (police, csc, health, education)))
    return field(default_factory=lambda: dict(values))


@dataclass(frozen=True)
class SynthConfig:
    """Settings of one synthetic run; the defaults are the "default profile" of issue 3.

    Record-level rates are probabilities per record of that agency (e.g. ``dob_error_rate``
    ["police"] = 0.05 means about 5% of police records with a date of birth carry a wrong one).
    """

    n_encounters: int = DEFAULT_ENCOUNTERS
    seed: int = 0
    start_date: dt.date = dt.date(2023, 4, 1)
    end_date: dt.date = dt.date(2025, 3, 31)
    # Geography filter: children's homes only in these forces (one code, several, or a named
    # region of England / "Wales"; both given = their union). Encounters may still be elsewhere.
    pfa_filter: tuple[str, ...] | str | None = None
    region: str | None = None

    # Calibration (lib.synth.calibration): children's homes follow the official child population, exploited
    # children's homes and years the published DfE C3 CSE counts per authority; children's social care
    # recording practice is then in the published figure already (no area spread for it). False: homes
    # follow postcodes, as before issue 17. Needs a geography with official child populations.
    calibrate: bool = True

    # --- population of children at risk ---
    mean_encounters_per_child: float = 3.0
    encounter_dispersion: float = 0.8  # negative-binomial shape of extra encounters; lower = longer tail
    max_encounters_per_child: int = 120
    cse_prevalence: float = 0.2  # share of children who are truly being sexually exploited
    cse_encounter_ratio: float = 1.8  # exploited children have this many times the extra encounters
    female_share: float = 0.5
    female_share_cse: float = 0.72
    # Which agencies a child meets: base mix, and each child's own mix drawn around it (Dirichlet);
    # low concentration = each child concentrated on fewer agencies.
    agency_mix: dict = _per_agency(0.30, 0.25, 0.30, 0.15)
    agency_mix_cse: dict = _per_agency(0.32, 0.28, 0.30, 0.10)
    agency_concentration: float = 4.0
    sibling_share: float = 0.04  # children who share surname and home with another child in the data

    # --- where encounters happen ---
    near_same_lsoa: float = 0.35  # near-home encounters in the home LSOA itself; others in neighbouring LSOAs
    travel_far_share: float = 0.12  # share of children who travel far (county-lines-like), all children
    travel_far_cse_ratio: float = 3.0  # exploited children are this many times as likely to travel
    far_encounter_share: float = 0.5  # of a traveller's police/health encounters, share at the far place
    second_destination_share: float = 0.3  # travellers with a second far destination
    stray_far_share: float = 0.02  # any police/health encounter far from home by chance
    destination_city_weight: float = 0.6  # far places: this share drawn by urban density, the rest by postcodes

    # --- identifier quality, by agency ---
    nhs_capture: dict = _per_agency(0.20, 0.60, 0.90, 0.50)  # NHS number present (identified records)
    nhs_mistype_rate: float = 0.01  # of recorded NHS numbers: one digit wrong (fails Modulus 11)
    nhs_other_child_rate: float = 0.003  # of recorded NHS numbers: another child's valid number
    false_name_rate: dict = _per_agency(0.06, 0.01, 0.03, 0.005)  # a completely different name
    alias_share: float = 0.5  # of false names: the child's own persistent alias (else a one-off)
    nickname_rate: dict = _per_agency(0.20, 0.08, 0.10, 0.05)  # of records whose name has a nickname
    typo_rate: dict = _per_agency(0.04, 0.02, 0.03, 0.015)  # per name field (forename, surname)
    dob_error_rate: dict = _per_agency(0.05, 0.02, 0.02, 0.01)  # day/month swapped, ±1 day, wrong year
    dob_missing_rate: dict = _per_agency(0.05, 0.01, 0.01, 0.0)
    moved_postcode_rate: dict = _per_agency(0.12, 0.08, 0.10, 0.06)  # home postcode is a previous address
    home_postcode_missing_rate: dict = _per_agency(0.10, 0.02, 0.03, 0.01)
    sex_unknown_rate: float = 0.01
    anonymous_sexual_health_share: float = 0.5  # sexual-health clinic contacts with no identity at all

    # --- recording of CSE concerns ---
    cse_flag_propensity: dict = _per_agency(0.35, 0.60, 0.25, 0.20)  # P(flag | truly exploited), national
    cse_false_flag_rate: dict = _per_agency(0.01, 0.02, 0.005, 0.005)  # P(flag | not exploited)
    cse_flag_area_sd: float = 0.5  # log-scale spread of recording practice between agency areas
    cse_flag_child_correlation: float = 0.5  # how far one child's flags go together (0 = independent)

    def __post_init__(self):
        defaults = SynthConfig.__dataclass_fields__
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dict):
                base = defaults[f.name].default_factory()
                unknown = set(value) - set(base)
                if unknown:
                    raise ValueError(f"{f.name}: unknown agency type(s) {sorted(unknown)}")
                merged = {**base, **value}
                for k, v in merged.items():
                    if not 0.0 <= float(v) <= 1.0:
                        raise ValueError(f"{f.name}[{k}] = {v} is not a probability")
                object.__setattr__(self, f.name, merged)
        if int(self.n_encounters) < 1:
            raise ValueError("n_encounters must be at least 1")
        if self.end_date <= self.start_date:
            raise ValueError("end_date must be after start_date")
        if self.mean_encounters_per_child < 1:
            raise ValueError("mean_encounters_per_child must be at least 1")
        for name in ("cse_prevalence", "female_share", "female_share_cse", "near_same_lsoa",
                     "travel_far_share", "far_encounter_share", "second_destination_share",
                     "stray_far_share", "destination_city_weight", "nhs_mistype_rate",
                     "nhs_other_child_rate", "alias_share", "sex_unknown_rate",
                     "anonymous_sexual_health_share", "sibling_share", "cse_flag_child_correlation"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} = {v} is not a probability")
        if self.nhs_mistype_rate + self.nhs_other_child_rate > 1:
            raise ValueError("nhs_mistype_rate + nhs_other_child_rate must not exceed 1")
        if isinstance(self.pfa_filter, list):
            object.__setattr__(self, "pfa_filter", tuple(self.pfa_filter))
