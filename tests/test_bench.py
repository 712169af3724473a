"""The bench command runs end to end at a tiny size and prints valid JSON figure lines (no timing asserted)."""
from __future__ import annotations

import json
import subprocess
import sys

from bench import run_all
from tests.conftest import ROOT


def test_bench_command_prints_json_figures_and_writes_a_table(tmp_path):
    table = tmp_path / "bench.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench.run_all", "--size", "1500", "--work", str(tmp_path / "work"),
         "--skip", "placement_baseline,link_baseline,pages,boardpack", "--no-default-pages", "--table", str(table)],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert records and all({"figure", "value", "unit"} <= set(r) for r in records)
    figures = {r["figure"]: r for r in records}
    assert "error" not in " ".join(figures), [r for r in records if "error" in r["figure"]]
    for step in ("generate", "ingest", "placement", "link", "measures"):
        assert figures[f"{step} time"]["value"] > 0
        assert figures[f"{step} peak memory"]["value"] > 50  # MB of a Python process with pandas loaded
    assert figures["ingest: rows stored"]["value"] == 1500
    assert 0.8 < figures["link F1"]["value"] <= 1
    assert figures["placement: postcodes placed"]["value"] > 1000
    opened = {name[len("first open "):]: r for name, r in figures.items() if name.startswith("first open ")}
    from lib.access.roles import PAGE_ROLES  # issue 19: every page, as every role that may open it, and

    assert set(opened) == {f"{page} as {role}" for page, roles in PAGE_ROLES.items() for role in roles}
    assert not [r for r in opened.values() if r.get("error")] and figures["decision to page"]["value"] > 0
    text = table.read_text()
    assert "| decision to page |" in text and "| across as lead |" in text and "| compare as lead |" in text
    assert "| link end to end (ours) |" in text and "1,500 encounters" in text and "cores" in text
    assert "skipped" not in text.split("| link end to end (ours) |")[1].split("\n")[0]


def test_every_page_of_the_app_is_found():
    pages = dict(run_all.app_pages())
    assert pages["pages/map.py"] == "boundaries"
    assert {"pages/divergence.py", "pages/review.py", "pages/data.py"} <= set(pages)


def test_a_failing_step_is_reported_and_its_dependents_skipped(tmp_path):
    # No generated extract in the folder: ingest fails, link and measures are skipped, and the table says so.
    figures = run_all.run_all([1000], work=tmp_path, skip={"generate", "placement", "placement_baseline",
                                                           "link_baseline", "pages", "boardpack"},
                              default_pages=False)
    by_name = {r["figure"]: r for r in figures}
    assert "ingest error" in by_name
    assert by_name["link time"]["value"] is None and "skipped" in by_name["link time"]["note"]
    text = run_all.table(figures, [1000])
    assert "failed" in text.split("| ingest + validate + geocode + store |")[1].split("\n")[0]


def test_the_default_dataset_step_links_the_versioned_store_it_builds(tmp_path, monkeypatch, capsys):
    # ensure_default_dataset writes the store as its first version; the step then links it as the store's next
    # version (a plain read-write connection to a versioned store is refused: the step failed on it before).
    import functools

    from lib.records import default, store, versions

    monkeypatch.setattr(default, "ensure_default_dataset",
                        functools.partial(default.ensure_default_dataset, n_encounters=1500))
    run_all.step_default_store(0, tmp_path, 1)
    figures = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["figure"] for r in figures] == ["default dataset built and linked"]
    assert figures[0]["encounters"] > 1000
    assert versions.current(tmp_path / "store.duckdb").number >= 2  # the dataset, then its linkage run
    con = store.connect(tmp_path / "store.duckdb", read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM record_child").fetchall()[0][0] > 1000
    finally:
        con.close()


def test_the_recall_bench_refuses_a_national_size_unless_asked_and_sets_the_blocking_trade(monkeypatch):
    """bench.bench_recall runs above 100,000 encounters only with --large (a national size holds gigabytes and both
    cores for minutes), and --pairs-per-node sets lsh.PAIRS_PER_NODE for the run (the trade of docs/LINKAGE_PRIVACY.md)
    before anything is generated."""
    import pytest

    from bench import bench_recall
    from lib.linkage import lsh

    with pytest.raises(SystemExit) as refused:
        bench_recall.main(["--size", "1000000"])
    assert refused.value.code == 2

    asked = []
    monkeypatch.setattr(lsh, "PAIRS_PER_NODE", lsh.PAIRS_PER_NODE)  # restored after the test
    monkeypatch.setattr(bench_recall, "truth_sets", lambda size, seed, rate: asked.append(
        (size, lsh.PAIRS_PER_NODE)) or {})
    bench_recall.main(["--size", "1000000", "--large", "--pairs-per-node", "8"])
    assert asked == [(1_000_000, 8.0)]
