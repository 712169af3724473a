"""Linked stores for the linkage and page tests: a synthetic store built to order, one synthetic store per
session, one hand-built tiny store.

``synthetic_store`` builds a real store from the synthetic generator (synthetic encounters → ingest →
optionally link) with the test key. ``synthetic_linked_store`` builds one such store once per pytest session
(whichever module asks first) from a fixed seed, then closes it so pages and tests can open it. The tiny
store has a handful of rows whose every span, flow and miss is known exactly.
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

TEST_KEY = b"joined-up-test-key-not-secret-0123456789"
SYNTH_ENCOUNTERS = 12_000
SYNTH_SEED = 11
_BUILT: dict[tuple[int, int], Path] = {}


def synthetic_store(path: Path, n_encounters: int, seed: int, link: bool = True
                    ) -> tuple[duckdb.DuckDBPyConnection, pd.DataFrame]:
    """(open store with ingested and optionally linked synthetic encounters, truth)."""
    from lib.linkage.run import LinkConfig
    from lib.linkage.run import link as run_link
    from lib.records import ingest, store
    from lib.synth import SynthConfig, generate

    encounters, truth = generate(SynthConfig(n_encounters=n_encounters, seed=seed))
    con = store.connect(path)
    ingest.commit(con, ingest.prepare_frame(encounters, "synthetic.parquet", key=TEST_KEY))
    if link:
        run_link(con, LinkConfig())
    return con, truth


def splink_nodes(path: Path, n_encounters: int, seed: int) -> pd.DataFrame:
    """The nodes Splink trains and scores on (unique_id, the model's features, the NHS-group flag) of an unlinked
    synthetic store at `path`."""
    from lib.linkage import model, run

    con, _ = synthetic_store(path, n_encounters=n_encounters, seed=seed, link=False)
    frame, _ = run.deterministic_pass(con)
    con.close()
    return frame[["unique_id", *model.FEATURES, model.NUMBERED]]


def synthetic_linked_store(tmp_path_factory, n_encounters: int = SYNTH_ENCOUNTERS, seed: int = SYNTH_SEED) -> Path:
    """Path of a linked synthetic store (built on first call in the session, then reused)."""
    key = (n_encounters, seed)
    if key not in _BUILT:
        path = tmp_path_factory.mktemp("across_synth") / "linked.duckdb"
        con, _ = synthetic_store(path, n_encounters, seed)
        con.close()
        _BUILT[key] = path
    return _BUILT[key]


def copy_store(path: Path, folder: Path) -> Path:
    """A copy of a closed store (for a second process: DuckDB lets one process hold a file)."""
    target = folder / path.name
    shutil.copy(path, target)
    wal = Path(str(path) + ".wal")
    if wal.exists():
        shutil.copy(wal, Path(str(target) + ".wal"))
    return target


def private_linked_store(tmp_path_factory, name: str) -> Path:
    """A private copy of the session's linked synthetic store, in a new folder ``name``: the shared store may
    already be open read-write in this process (an AppTest's cached connection), and DuckDB refuses a read-only
    connection to a file open with another configuration."""
    return copy_store(synthetic_linked_store(tmp_path_factory), tmp_path_factory.mktemp(name))


def build_packs(path: Path, specs: dict[str, dict], layers=None) -> dict:
    """Board packs of the store at ``path``, read-only: name -> ``build_board_pack(con, **spec)`` (not audited),
    all from one measure cube of ``layers`` (None: every measure layer); the image engine is closed after."""
    from lib.export import boardpack, images
    from lib.measures import counts
    from lib.records import store

    con = store.connect(path, read_only=True)
    try:
        cube = counts.build_cube(con, layers=layers)
        return {name: boardpack.build_board_pack(con, cube=cube, audit=False, **spec) for name, spec in specs.items()}
    finally:
        con.close()
        images.close()


def open_deck(data: bytes):
    """A board pack's bytes as a python-pptx Presentation."""
    from pptx import Presentation

    return Presentation(io.BytesIO(data))


# -- the tiny store ------------------------------------------------------------------------------------

#: Named LSOAs (2011) used by the tiny store; their layer codes come from the real lookup.
PLACES = {"A": "Leeds 001A", "B": "Bradford 001A", "C": "Manchester 001A", "W": "Cardiff 001A",
          "S": "Bristol 001A"}
GEO_KEYS = ("lsoa", "lad", "utla", "pfa", "icb", "sicbl", "lhb", "nhs", "trust")


def h(text: str) -> str:
    """A 64-hex stand-in for a keyed hash."""
    return hashlib.sha256(text.encode()).hexdigest()


# child, agency, date, home, enc, nhs, (forename, surname, dob), phonetics, cse, link_method, probability
TINY_ROWS = [
    ("CH-1", "police", date(2023, 1, 10), "A", "A", "N1", ("F1", "S1", "D1"), ("JN", "SM0"), False, "nhs_number", None),
    ("CH-1", "health", date(2023, 2, 10), "A", "C", "N1", None, None, True, "nhs_number", None),
    ("CH-1", "health", date(2023, 3, 10), "A", "C", "N1", None, None, None, "nhs_number", None),
    ("CH-2", "children_social_care", date(2023, 1, 5), "A", "A", None, ("F2", "S2", "D2"), ("AM", "KY"), False,
     "probabilistic", 0.97),
    ("CH-2", "police", date(2023, 3, 5), "B", "B", None, ("F2x", "S2", "D2"), ("AMS", "KY"), False,
     "probabilistic", 0.97),
    ("CH-3", "police", date(2023, 2, 1), "A", "A", "N3", None, None, False, "nhs_number", None),
    ("CH-3", "health", date(2023, 2, 2), "A", "A", "N3", ("F3", "S3", "D3"), ("TM", "BRN"), False, "probabilistic",
     0.99),
    ("CH-3", "education", date(2023, 2, 3), "A", "A", None, ("F3", "S3", "D3"), ("TM", "BRN"), False,
     "probabilistic", 0.99),
    ("CH-4", "police", date(2023, 1, 1), "A", "A", None, ("F4", "S4", "D4"), ("L", "T"), False, "probabilistic", 0.95),
    ("CH-4", "police", date(2023, 4, 1), "A", "B", None, ("F4", "S4", "D4"), ("L", "T"), False, "probabilistic", 0.95),
    ("CH-5", "police", date(2023, 1, 1), "A", "A", "N5", None, None, False, "nhs_number", None),
    ("CH-5", "health", date(2023, 1, 2), "A", "A", "N5", None, None, False, "nhs_number", None),
    ("CH-5", "education", date(2023, 1, 3), "A", "A", None, ("F5", "S5", "D5"), ("K", "P"), False, "probabilistic",
     0.92),
    ("CH-6", "police", date(2023, 1, 1), "B", "B", "N6a", None, None, False, "probabilistic", 0.93),
    ("CH-6", "police", date(2023, 5, 1), "A", "B", "N6b", None, None, False, "probabilistic", 0.93),
    ("CH-6", "police", date(2023, 5, 1), "B", "B", None, ("F6", "S6", "D6"), ("R", "S"), False, "probabilistic", 0.93),
    ("CH-7", "police", date(2023, 6, 1), None, "A", None, None, None, False, "probabilistic", 0.91),
    ("CH-7", "children_social_care", date(2023, 6, 2), None, "C", None, None, None, False, "probabilistic", 0.91),
    ("CH-8", "health", date(2023, 1, 1), "W", "W", "N8", None, None, False, "nhs_number", None),
    ("CH-8", "police", date(2023, 2, 1), "W", "S", "N8", None, None, True, "nhs_number", None),
    (None, "health", date(2023, 7, 1), "A", "C", None, None, None, None, "anonymous (never linked)", None),
]
SECTORS = {"A": "LS22 5", "B": "BD20 0", "C": "M9 8", "W": "CF14 9", "S": "BS10 5"}


def tiny_store(path: Path):
    """An open store holding TINY_ROWS as encounters plus their record_child rows (no Splink)."""
    from lib.geo import lookup
    from lib.records import store

    table = lookup.lsoa_table().set_index("lsoa11nm")
    columns = {"lsoa": "lsoa11cd", "lad": "lad_code", "utla": "utla_code", "pfa": "pfa_code", "icb": "icb_code",
               "sicbl": "sicbl_code", "lhb": "lhb_code", "nhs": "nhs_code", "trust": "trust_code"}
    rows, links = [], []
    for i, (child, agency, day, home, enc, nhs, name, phon, cse, method, prob) in enumerate(TINY_ROWS):
        source = f"T-{i:03d}"
        record_key = f"{agency}|X|{source}"
        row = {"record_key": record_key, "source_record_id": source, "agency_type": agency,
               "agency_code": {"police": "E23000010", "health": "RAE"}.get(agency, "E08000035"),
               "encounter_date": day, "encounter_type": "test contact", "cse_flag": cse,
               "nhs_status": "valid" if nhs else "missing", "nhs_hash": h(nhs) if nhs else None,
               "forename_hash": h(name[0]) if name else None, "surname_hash": h(name[1]) if name else None,
               "dob_hash": h(name[2]) if name else None, "forename_phonetic": phon[0] if phon else None,
               "surname_phonetic": phon[1] if phon else None, "birth_year": 2009 if name else None,
               "sex": "F", "home_postcode_hash": h(f"home{home}") if home else None,
               "home_sector": SECTORS.get(home), "is_anonymous": child is None, "batch_id": 1,
               "ingested_at": pd.Timestamp("2026-01-01")}
        for prefix, place in (("home", home), ("enc", enc)):
            for key in GEO_KEYS:
                value = table.loc[PLACES[place], columns[key]] if place else None
                row[f"{prefix}_{key}"] = None if value is None or pd.isna(value) else str(value)
        rows.append(row)
        links.append({"record_key": record_key, "child_id": child, "node_id": f"R:{record_key}",
                      "link_method": method, "best_match_probability": prob,
                      "by_nhs": bool(nhs) and method == "nhs_number", "nhs_conflict": False,
                      "shared_number_suspected": False})
    con = store.connect(path)
    frame = pd.DataFrame(rows)
    frame["birth_year"] = frame["birth_year"].astype("Int16")
    frame["cse_flag"] = frame["cse_flag"].astype("boolean")
    link_frame = pd.DataFrame(links)
    link_frame["best_match_probability"] = link_frame["best_match_probability"].astype("float64")
    with store.cursor(con) as cur:
        cur.register("tiny_encounters", frame)
        cur.register("tiny_links", link_frame)
        cur.execute("INSERT INTO encounters BY NAME SELECT * FROM tiny_encounters")
        cur.execute("CREATE TABLE record_child AS SELECT * FROM tiny_links")
    return con


# -- page tests ----------------------------------------------------------------------------------------

def run_page(script: str, db_path: Path, monkeypatch):
    """AppTest of one page script on a given store (JOINEDUP_DB), run once and checked for exceptions."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("JOINEDUP_DB", str(db_path))
    at = AppTest.from_file(script, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def plotly_specs(at) -> list[dict]:
    """The Plotly figures on a page, as the JSON the browser would receive."""
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def trace_types(figure: dict) -> set[str]:
    return {trace.get("type", "scatter") for trace in figure["data"]}
