"""The boundary layers of the product: one registry so pages, measures and the build agree.

Each agency records children on its own geography; this table says which geography that is,
how it is coded and how it is drawn. Line styles differ in dash and width, not only colour,
so the overlay reads without colour vision (Okabe-Ito palette).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layer:
    key: str
    title: str  # what a user calls it
    short: str  # a column header
    column: str  # column in the LSOA lookup
    agency: str  # who works on it
    colour: str
    width: float
    dash: str  # plotly dash name, for tables and legends
    modelled: bool = False  # no statutory boundary: say so on screen
    note: str = ""


LAYERS: dict[str, Layer] = {
    layer.key: layer
    for layer in (
        Layer("pfa", "Police force areas", "Police force", "pfa_code", "Police", "#0072B2", 3.2, "solid",
              note="43 territorial forces, each a union of whole local authority districts."),
        Layer("utla", "Children's services authorities", "Children's services", "utla_code",
              "Children's social care", "#D55E00", 2.2, "solid",
              note="Upper-tier local authorities: counties, unitaries, metropolitan and London boroughs, Welsh unitaries."),
        Layer("lad", "Local authority districts", "LAD", "lad_code", "District councils", "#999999", 0.8, "dot",
              note="Current (2023) districts; county districts nest in their county."),
        Layer("icb", "Integrated care boards (England)", "ICB", "icb_code", "NHS England", "#009E73", 2.6, "dash",
              note="42 ICBs, built from sub-ICB locations."),
        Layer("sicbl", "Sub-ICB locations (England)", "Sub-ICB", "sicbl_code", "NHS England", "#56B4E9", 1.2, "dashdot",
              note="106 sub-ICB locations, built from LSOAs."),
        Layer("lhb", "Local health boards (Wales)", "Health board", "lhb_code", "NHS Wales", "#CC79A7", 2.6, "longdash",
              note="7 Welsh health boards."),
        Layer("trust", "Acute trust catchments (modelled)", "Trust catchment", "trust_code", "NHS acute trusts",
              "#E69F00", 1.8, "longdashdot", modelled=True,
              note="Modelled from OHID admissions (NHS Acute (Hospital) Trust Catchment Populations, 2022 edition; "
                   "current ODS codes): NHS trusts have no statutory boundary. Each outline is where the trust is the "
                   "main provider (largest share of a district's admissions); see 'Trust catchment shares' for a "
                   "trust's share of every district. Wales: the health board."),
    )
}

#: Layers a place falls in, in the order a side panel lists them.
PLACE_ORDER = ("pfa", "utla", "lad", "icb", "sicbl", "lhb", "trust")
