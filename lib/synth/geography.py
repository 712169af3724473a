"""The geography the generator draws from, reshaped for vectorised sampling.

Built once per process from ``lib.geo.lookup`` (postcode_index and lsoa_table) so that every
synthetic home and encounter is a real England and Wales postcode and every agency code is the
one the rest of the product will find for that postcode. Postcodes are held sorted by LSOA, so
"a random postcode in LSOA i" is one integer draw; LSOAs carry their nearest neighbours (for
"near home") and an urban-density weight (for "far away, in a city").
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lib.geo import official_lookups

# Neighbourhood used for "near home": the LSOA itself plus its nearest neighbours by centroid.
NEIGHBOURS = 12
# Urban density: usable LSOA centroids within this radius (km); dense places weigh more as
# far-away destinations, which is where county-lines-like trips end up (city centres, towns).
DENSITY_RADIUS_KM = 2.0
# A UK postcode with the space removed (same shape lib.geo.lookup.normalise_postcode accepts).
POSTCODE_SHAPE = r"^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}$"

def region_pfas() -> dict[str, tuple[str, ...]]:
    """English regions (and Wales) as sets of police force areas, from the ONS LAD → region (December 2024)
    and LAD → CSP → PFA (December 2024) lookups: forces nest in regions, so a region filter is a force filter."""
    pfa = official_lookups.read("lad24_csp24_pfa24").drop_duplicates("ltla24_code").set_index("ltla24_code")
    region = official_lookups.read("ltla24_region24").set_index("ltla24_code")
    joined = pfa[["pfa24_code"]].join(region[["region24_code", "region24_name"]], how="left")
    joined["region24_name"] = joined["region24_name"].fillna("Wales").where(
        ~joined["pfa24_code"].str.startswith("W"), "Wales")
    joined["region24_code"] = joined["region24_code"].fillna("W")  # sorts Wales after the English regions
    out: dict[str, tuple[str, ...]] = {}
    for (_, name), rows in joined.groupby(["region24_code", "region24_name"], sort=True):
        out[str(name)] = tuple(sorted(rows["pfa24_code"].astype(str).unique()))
    return out


REGION_PFAS: dict[str, tuple[str, ...]] = region_pfas()


@dataclass(frozen=True)
class Geography:
    """Arrays indexed by LSOA row (of lsoa_table) and by postcode position (sorted by LSOA)."""

    lsoa_codes: np.ndarray  # str, lsoa11cd per LSOA row
    postcode_norm: pa.Array  # "LS62AB", sorted by LSOA
    postcode_fmt: pa.Array  # "LS6 2AB", same order
    postcode_lsoa: np.ndarray  # int32 LSOA row of each postcode position
    lsoa_start: np.ndarray  # int64 first postcode position of each LSOA
    lsoa_count: np.ndarray  # int64 postcodes in each LSOA
    usable: np.ndarray  # bool: has postcodes and police, LA and trust codes
    codes: np.ndarray  # sorted vocabulary of agency codes (PFA, UTLA, trust), str
    lsoa_pfa: np.ndarray  # int32 index into codes
    lsoa_utla: np.ndarray
    lsoa_trust: np.ndarray
    neighbours: np.ndarray  # int32 [n_lsoa, NEIGHBOURS]; column 0 is the LSOA itself
    city_weight: np.ndarray  # float64, 0 for unusable LSOAs
    pfa_codes: frozenset
    # Health encounters' trust: per LSOA, the acute trusts taking its admissions and their cumulative
    # shares (OHID catchment model), as CSR arrays: trusts of LSOA i are trust_idx[trust_ptr[i]:trust_ptr[i+1]].
    trust_ptr: np.ndarray | None = None  # int64 [n_lsoa + 1]
    trust_idx: np.ndarray | None = None  # int32 index into codes
    trust_cum: np.ndarray | None = None  # float64 cumulative share within each LSOA, last = 1.0
    # Official children aged 0-17 per LSOA (lib.measures.population); None: homes follow postcodes.
    lsoa_children: np.ndarray | None = None

    def draw_trust(self, lsoa: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Index into codes of the trust recording each encounter in ``lsoa``, drawn by the LSOA's catchment
        shares with uniforms ``u`` (without shares: the LSOA's main provider)."""
        if self.trust_ptr is None:
            return self.lsoa_trust[lsoa]
        start, end = self.trust_ptr[lsoa], self.trust_ptr[lsoa + 1]
        # Within each LSOA's slice, the first trust whose cumulative share exceeds u.
        pos = np.searchsorted(self.trust_cum + np.repeat(np.arange(len(self.trust_ptr) - 1), np.diff(self.trust_ptr)),
                              lsoa + np.minimum(u, 1 - 1e-12), side="right")
        pos = np.clip(pos, start, np.maximum(end - 1, start))
        out = self.trust_idx[pos]
        return np.where(end > start, out, self.lsoa_trust[lsoa]).astype(np.int32)

    @property
    def n_lsoa(self) -> int:
        return len(self.lsoa_codes)

    def home_lsoa_mask(self, pfas: tuple[str, ...] | None) -> np.ndarray:
        """LSOAs a child may live in: usable, and inside the chosen forces if any."""
        mask = self.usable.copy()
        if pfas:
            wanted = np.isin(self.codes, list(pfas))
            mask &= wanted[self.lsoa_pfa]
        return mask


def _arrow_text(values: pd.Series) -> pa.Array:
    """A text column as one pyarrow string array (zero-copy for pandas' arrow-backed str)."""
    array = pa.array(values.array) if hasattr(values.array, "__arrow_array__") else pa.array(values.astype(str))
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array.cast(pa.string())


def _code_index(values: pd.Series, codes: np.ndarray) -> np.ndarray:
    idx = pd.Index(codes).get_indexer(values.astype(object).where(values.notna(), None).to_numpy())
    return idx.astype(np.int32)


def build_geography(postcodes: pd.DataFrame, lsoas: pd.DataFrame,
                    trust_shares: pd.DataFrame | None = None) -> Geography:
    """Reshape a postcode index and LSOA table (CONTRACTS.md shapes) for the generator.

    Taking the frames as arguments (rather than reading them here) lets tests run the generator
    on a small hand-made geography as well as on the real one. ``trust_shares`` (``lsoa_idx`` = row of
    ``lsoas``, ``trust_code``, ``share``) lets health encounters be recorded by any trust taking the
    LSOA's admissions, in proportion to its share; without it, by the LSOA's ``trust_code``.
    """
    from scipy.spatial import cKDTree

    lsoas = lsoas.reset_index(drop=True)
    lsoa_codes = lsoas["lsoa11cd"].astype(str).to_numpy()
    n = len(lsoa_codes)
    # Arrow end to end: 2.4 million postcodes never become Python objects.
    postcode = _arrow_text(postcodes["postcode"])
    pc_lsoa = pc.index_in(_arrow_text(postcodes["lsoa11cd"]), value_set=pa.array(lsoa_codes.tolist()))
    pc_lsoa = np.asarray(pc_lsoa.fill_null(-1), dtype=np.int64)
    # Only postcodes the product itself accepts as postcodes (the directory also holds a few
    # thousand legacy "NPT 1AB"-style Newport codes that normalise_postcode rejects).
    shaped = np.asarray(pc.match_substring_regex(pc.utf8_upper(postcode), POSTCODE_SHAPE).fill_null(False),
                        dtype=bool)
    keep = np.flatnonzero((pc_lsoa >= 0) & shaped)
    order = keep[np.argsort(pc_lsoa[keep], kind="stable")]
    pc_lsoa = pc_lsoa[order].astype(np.int32)
    norm = pc.utf8_upper(postcode.take(pa.array(order)))
    fmt = pc.binary_join_element_wise(pc.utf8_slice_codeunits(norm, 0, -3),
                                      pc.utf8_slice_codeunits(norm, -3), " ")
    count = np.bincount(pc_lsoa, minlength=n).astype(np.int64)
    start = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)

    code_cols = ("pfa_code", "utla_code", "trust_code")
    present = np.concatenate([lsoas[c].dropna().to_numpy(dtype=object) for c in code_cols])
    if trust_shares is not None:
        present = np.concatenate([present, trust_shares["trust_code"].astype(str).to_numpy(dtype=object)])
    codes = np.array(sorted(set(present.tolist())), dtype=object)
    lsoa_pfa, lsoa_utla, lsoa_trust = (_code_index(lsoas[c], codes) for c in code_cols)
    usable = (count > 0) & (lsoa_pfa >= 0) & (lsoa_utla >= 0) & (lsoa_trust >= 0)

    # Centroids in km on a local equirectangular projection: plenty for "nearest LSOAs".
    lat = lsoas["lat"].to_numpy(dtype=float)
    lon = lsoas["lon"].to_numpy(dtype=float)
    xy = np.column_stack([lon * np.cos(np.radians(52.5)) * 111.32, lat * 110.57])
    usable_idx = np.flatnonzero(usable)
    tree = cKDTree(xy[usable_idx])
    k = min(NEIGHBOURS, len(usable_idx))
    _, nn = tree.query(xy, k=k)
    nn = np.asarray(nn).reshape(n, k)
    neighbours = usable_idx[nn].astype(np.int32)
    neighbours[usable, 0] = np.flatnonzero(usable)  # self first (ties at distance 0)
    if k < NEIGHBOURS:  # tiny geographies: pad by repeating
        neighbours = np.pad(neighbours, ((0, 0), (0, NEIGHBOURS - k)), mode="wrap")
    density = tree.query_ball_point(xy[usable_idx], r=DENSITY_RADIUS_KM, return_length=True)
    city = np.zeros(n)
    city[usable_idx] = np.asarray(density, dtype=float)
    pfa_codes = frozenset(lsoas["pfa_code"].dropna().astype(str))
    ptr = idx = cum = None
    if trust_shares is not None:
        rows = trust_shares[trust_shares["share"] > 0].sort_values(["lsoa_idx", "trust_code"], kind="stable")
        lsoa_of = rows["lsoa_idx"].to_numpy(np.int64)
        ptr = np.concatenate([[0], np.cumsum(np.bincount(lsoa_of, minlength=n))]).astype(np.int64)
        idx = np.searchsorted(codes.astype(str), rows["trust_code"].astype(str).to_numpy()).astype(np.int32)
        share = rows["share"].to_numpy("float64")
        totals = np.bincount(lsoa_of, weights=share, minlength=n)
        cum = np.zeros(len(share))
        if len(share):
            running = np.cumsum(share)
            starts = np.repeat(ptr[:-1], np.diff(ptr))
            offset = (running - share)[starts]
            cum = (running - offset) / totals[lsoa_of]
            cum[ptr[1:][np.diff(ptr) > 0] - 1] = 1.0
    return Geography(lsoa_codes, norm, fmt, pc_lsoa, start, count, usable, codes,
                     lsoa_pfa, lsoa_utla, lsoa_trust, neighbours, city, pfa_codes, ptr, idx, cum)


@lru_cache(maxsize=1)
def load_geography() -> Geography:
    """The real geography of England and Wales from lib.geo.lookup (cached per process)."""
    from lib.geo import catchments, lookup
    from lib.measures import population

    geo = build_geography(lookup.postcode_index(), lookup.lsoa_table(), catchments.lsoa_rows())
    children, _ = population._lsoa_values("0-17")  # rows of lookup.lsoa_table(), as geo.lsoa_codes
    return dataclasses.replace(geo, lsoa_children=np.asarray(children, dtype=float))


def resolve_pfas(geo: Geography, pfa_filter, region) -> tuple[str, ...] | None:
    """The force codes a run is restricted to (None = all England and Wales)."""
    wanted: list[str] = []
    if pfa_filter:
        wanted += [pfa_filter] if isinstance(pfa_filter, str) else list(pfa_filter)
    if region:
        key = {k.lower(): k for k in REGION_PFAS}.get(str(region).strip().lower())
        if key is None:
            raise ValueError(f"unknown region {region!r}; choose from {', '.join(REGION_PFAS)}")
        wanted += list(REGION_PFAS[key])
    if not wanted:
        return None
    unknown = sorted(set(wanted) - geo.pfa_codes)
    if unknown:
        raise ValueError(f"unknown police force area code(s): {', '.join(unknown)}")
    return tuple(sorted(set(wanted)))
