"""Synthetic encounters between agencies and children at risk, with ground truth kept apart.

``generate(SynthConfig(...))`` returns ``(encounters, truth)``; see docs/CONTRACTS.md for the
encounter columns. Used by tests and benchmarks (known answers for linkage and divergence) and as
the app's demonstration data. Names are imported on first use, so ``lib.synth.config`` (the default
size, read by the CLI's argument parser) stays cheap to import.
"""
from __future__ import annotations

from importlib import import_module

_EXPORTS = {
    "AGENCY_TYPES": "lib.synth.config", "DEFAULT_ENCOUNTERS": "lib.synth.config", "SynthConfig": "lib.synth.config",
    "ENCOUNTER_COLUMNS": "lib.synth.generator", "ENCOUNTER_TYPES": "lib.synth.generator",
    "TRUTH_COLUMNS": "lib.synth.generator", "TRUTH_DETAIL_COLUMNS": "lib.synth.generator",
    "generate": "lib.synth.generator", "REGION_PFAS": "lib.synth.geography",
}
__all__ = ["AGENCY_TYPES", "DEFAULT_ENCOUNTERS", "ENCOUNTER_COLUMNS", "ENCOUNTER_TYPES", "REGION_PFAS",
           "TRUTH_COLUMNS", "TRUTH_DETAIL_COLUMNS", "SynthConfig", "generate"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lib.synth' has no attribute {name!r}")
