"""Synthetic encounters between agencies and children at risk, with ground truth kept apart.

``generate(SynthConfig(...))`` returns ``(encounters, truth)``; see docs/CONTRACTS.md for the
encounter columns. Used by tests and benchmarks (known answers for linkage and divergence) and as
the app's demonstration data.
"""
from lib.synth.config import AGENCY_TYPES, SynthConfig
from lib.synth.generator import (ENCOUNTER_COLUMNS, ENCOUNTER_TYPES, TRUTH_COLUMNS, TRUTH_DETAIL_COLUMNS,
                                 generate)
from lib.synth.geography import REGION_PFAS

__all__ = ["AGENCY_TYPES", "ENCOUNTER_COLUMNS", "ENCOUNTER_TYPES", "REGION_PFAS", "SynthConfig",
           "TRUTH_COLUMNS", "TRUTH_DETAIL_COLUMNS", "generate"]
