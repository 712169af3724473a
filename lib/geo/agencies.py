"""The agency registry: every agency type an extract may name, its labels and the layer it records on.

One place for what was spread over the schema, the validator, the generator, measures, linkage and the
scenario model: an agency type's key (the ``agency_type`` value of an extract), how it is labelled, the
layer (``lib.geo.layers``) whose areas its ``agency_code`` names (``None``: any code, not placed by it),
whether the synthetic generator makes its records, and how charts mark it (colour and symbol, distinct
in shape as well as colour). Order is display order. How to add one: docs/ARCHITECTURE.md.
"""
from __future__ import annotations

from dataclasses import dataclass

from lib.geo import layers


@dataclass(frozen=True)
class Agency:
    key: str  # the agency_type value
    label: str  # a table header, a legend ("Children's social care")
    subject: str  # the subject of a sentence about its records ("Children's services")
    native_layer: str | None  # the layer its agency_code is an area of (None: any code)
    synthetic: bool  # records made by the synthetic generator (lib.synth)
    colour: str  # charts (Okabe-Ito)
    symbol: str  # plotly marker symbol


AGENCIES: dict[str, Agency] = {
    agency.key: agency
    for agency in (
        Agency("police", "Police", "Police", "pfa", True, "#0072B2", "circle"),
        Agency("children_social_care", "Children's social care", "Children's services", "utla", True,
               "#D55E00", "diamond"),
        Agency("health", "Health", "Health services", "trust", True, "#009E73", "square"),
        Agency("education", "Education", "Schools and education services", "utla", True, "#CC79A7",
               "triangle-up"),
        Agency("other", "Other", "Other", None, False, "#999999", "x"),
    )
}

for _agency in AGENCIES.values():  # a native layer must be a registered layer
    if _agency.native_layer is not None:
        layers.get(_agency.native_layer)

#: Every agency type, in display order (the extract's allowed values).
TYPES: tuple[str, ...] = tuple(AGENCIES)
#: Agency types the synthetic generator makes.
SYNTHETIC_TYPES: tuple[str, ...] = tuple(k for k, a in AGENCIES.items() if a.synthetic)
#: Agency type -> label.
LABELS: dict[str, str] = {k: a.label for k, a in AGENCIES.items()}
#: Agency type -> the layer its agency_code is an area of (agencies recording on a layer only).
NATIVE_LAYER: dict[str, str] = {k: a.native_layer for k, a in AGENCIES.items() if a.native_layer}


def native_agencies(layer: str) -> tuple[str, ...]:
    """The agency types recording natively on ``layer`` (the layer registry's "who records on it")."""
    return tuple(k for k, native in NATIVE_LAYER.items() if native == layer)
