"""Imports run one way (docs/ARCHITECTURE.md): geo -> records -> linkage -> measures -> synth -> scenario ->
access -> views -> exports and the command line (pages and app.py, outside lib/, sit on top).

The contract is read from lib's import graph as grimp builds it (every import statement, module-level or inside
a function), not from the source text. A module's layer is its package's (or its entry in ``PLACED``), except
that the command-line modules (lib.cli, lib.<package>.commands) are the top layer wherever they live. ``KNOWN``
lists the imports that still break the contract, each with who removes it; the test fails on any other, and on a
listed one that has gone (so the list only shrinks).
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from tests.conftest import ROOT

#: Lowest first. A module may import its own layer and the layers below it.
LAYERS = ("lib.geo", "lib.records", "lib.linkage", "lib.disclosure", "lib.measures", "lib.synth", "lib.scenario",
          "lib.access", "lib.views", "lib.export", "cli")
#: Modules whose layer is not their package's. Spreadsheet-safe CSV is one of access's output defences
#: (lib.access.safety), used by views and exports alike; the first-start default dataset is generated (synth)
#: and then stored (records). The generator sits above measures: it is calibrated to official statistics.
#: The disclosure service publishes the measure cube, so it sits with measures (above lib.measures.counts).
PLACED = {"lib.export.csv_safe": "lib.access", "lib.records.default": "lib.synth",
          "lib.disclosure.service": "lib.measures"}

#: (importer, imported) -> who removes it. Keep this short; add nothing without saying so in the report.
KNOWN: dict[tuple[str, str], str] = {}
#: Imports inside functions that close an import cycle (module-level, they would fail or half-import).
KNOWN_CYCLE_DODGES: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("lib", include_external_packages=True, cache_dir=None)


def layer_of(module: str) -> int:
    if module == "lib.cli" or module.endswith(".commands"):
        return len(LAYERS) - 1
    for name, layer in PLACED.items():
        if module == name or module.startswith(name + "."):
            return LAYERS.index(layer)
    for i, layer in enumerate(LAYERS):
        if module == layer or module.startswith(layer + "."):
            return i
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS (docs/ARCHITECTURE.md)")


def upward_imports(graph) -> dict[tuple[str, str], list[str]]:
    """(importer, imported) -> "file:line" of every import from a lower layer to a higher one."""
    found = {}
    for importer in sorted(graph.modules):
        if not importer.startswith("lib.") or importer == "lib":
            continue
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if not imported.startswith("lib.") or layer_of(imported) <= layer_of(importer):
                continue
            details = graph.get_import_details(importer=importer, imported=imported)
            found[(importer, imported)] = [f"{importer}:{d['line_number']}" for d in details]
    return found


def test_every_lib_module_has_a_layer(graph):
    for module in graph.modules:
        if module.startswith("lib."):
            layer_of(module)


def test_imports_run_one_way(graph):
    found = upward_imports(graph)
    new = {pair: where for pair, where in found.items() if pair not in KNOWN}
    assert not new, "imports against the layers (geo -> records -> linkage -> measures -> views -> CLI):\n" + \
        "\n".join(f"  {a} imports {b} at {', '.join(w)}" for (a, b), w in new.items())
    gone = set(KNOWN) - set(found)
    assert not gone, f"no longer imported, remove from KNOWN: {sorted(gone)}"


def test_lib_never_imports_streamlit_pages_bench_or_tests(graph):
    for outside in ("streamlit", "pages", "bench", "tests"):
        if outside in graph.modules:
            importers = graph.find_modules_that_directly_import(outside)
            assert not importers, f"lib imports {outside}: {sorted(importers)}"


def _function_level_imports(module: str, path: Path, modules: set[str]):
    """(line, imported module of ``modules``) of each import inside a function of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for target in targets:
                if target in modules:
                    yield node.lineno, target


def cycle_dodges(graph) -> dict[tuple[str, str], int]:
    """Imports inside functions whose target imports (directly or not) the importing module: moved to the top
    of the file they would close a cycle."""
    modules = set(graph.modules)
    found = {}
    for path in sorted((ROOT / "lib").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for line, target in _function_level_imports(module, path, modules):
            if not target.startswith("lib.") or target == module:
                continue
            if graph.find_shortest_chain(importer=target, imported=module):
                found.setdefault((module, target), line)
    return found


def test_no_import_inside_a_function_dodges_a_cycle(graph):
    found = cycle_dodges(graph)
    new = {pair: line for pair, line in found.items() if pair not in KNOWN_CYCLE_DODGES}
    assert not new, "imports inside functions that hide an import cycle:\n" + \
        "\n".join(f"  {a}:{line} imports {b}, which imports {a} back" for (a, b), line in new.items())
    gone = set(KNOWN_CYCLE_DODGES) - set(found)
    assert not gone, f"no longer a cycle, remove from KNOWN_CYCLE_DODGES: {sorted(gone)}"


# -- the contract itself can fail: a small package of its own ----------------------------------------------

def _package(tmp_path: Path, files: dict[str, str]) -> str:
    root = tmp_path / "pkgarch"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return str(tmp_path)


def test_the_checks_catch_an_upward_import_and_a_hidden_cycle(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(_package(tmp_path, {
        "__init__.py": "",
        "low.py": "def f():\n    from pkgarch import high\n    return high\n",
        "high.py": "from pkgarch import low\n",
    }))
    small = grimp.build_graph("pkgarch", cache_dir=None)
    assert small.get_import_details(importer="pkgarch.low", imported="pkgarch.high")  # the lazy import is seen
    lines = list(_function_level_imports("pkgarch.low", tmp_path / "pkgarch" / "low.py", set(small.modules)))
    assert lines == [(2, "pkgarch.high")]
    assert small.find_shortest_chain(importer="pkgarch.high", imported="pkgarch.low")  # so it hides a cycle


def test_measures_take_a_flag_not_a_role():
    """lib.measures.compare knows no roles: a role name where the suppression flag belongs is refused."""
    import pandas as pd

    from lib.measures import compare

    base = pd.DataFrame({"area_code": ["A"], "area_name": ["a"], "police": [3.0], "children_social_care": [9.0],
                         "total": [12.0], "children_population": [1000.0], "encounters": [12.0],
                         "valid_nhs": [6.0], "name_dob": [6.0], "children": [4.0], "spanning": [1.0],
                         "identifiable": [10.0], "linked": [5.0], "verdict": ["—"]})
    with pytest.raises(TypeError, match="aggregates_suppressed"):
        compare.hidden_mask(base, "analyst")
    assert not compare.hidden_mask(base, False).to_numpy().any()
    assert compare.hidden_mask(base, True).loc["A", "police"]  # 3 is a small number: hidden


def test_the_command_line_loads_nothing_from_bench_pages_or_streamlit():
    """Every sub-command registered (modules loaded by name, which the import graph cannot see): the command
    line depends on lib alone (benchmarks are `python -m bench.run_all`)."""
    code = ("import sys, lib.cli; lib.cli.build_parser(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'bench', 'pages', 'streamlit', 'tests'}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]", done.stdout


# -- docs/ARCHITECTURE.md draws what is there -----------------------------------------------------------------

def _imports_section() -> str:
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    return text.split("## Imports run one way", 1)[1].split("\n## ", 1)[0]


def test_the_architecture_page_draws_the_layers_in_order():
    chain = _imports_section().split("```", 2)[1].strip().splitlines()[0]
    assert [part.strip() for part in chain.split("->")] == \
        [*(layer.removeprefix("lib.") for layer in LAYERS[:-2]), "export, CLI"]


def test_the_architecture_page_names_every_disclosure_and_aggregates_module(graph):
    section = _imports_section()
    modules = sorted(m for m in graph.modules if m.startswith("lib.disclosure."))
    assert len(modules) >= 7  # service, cellkey, keys, members, cells, notes, attack
    for module in [*modules, "lib.records.aggregates", "lib.measures.aggregates"]:
        assert module in graph.modules, module
        assert module.removeprefix("lib.") in section, f"docs/ARCHITECTURE.md does not draw {module}"
    layout = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8").split("## Layout", 1)[1]
    for package in sorted({m.split(".")[1] for m in graph.modules if m.count(".") >= 1 and m.startswith("lib.")}):
        if (ROOT / "lib" / package).is_dir():
            assert f"{package}/" in layout, f"docs/ARCHITECTURE.md's layout does not list lib/{package}/"


# -- functions stay short enough to read (issue 15) -----------------------------------------------------------

#: The longest a function in lib/ may be, in lines from ``def`` to its last line (decorators not counted).
MAX_FUNCTION_LINES = 80


def long_functions(root: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """"path:line name (n lines)" of every function or method under ``root`` longer than ``limit`` lines."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_in_lib_is_over_80_lines():
    offenders = long_functions(ROOT / "lib")
    assert not offenders, "split these into well-named helpers (issue 15):\n" + "\n".join(offenders)


def test_no_function_in_bench_is_over_80_lines():
    """The benchmarks are read as the measurements' definitions: they stay as short as lib/'s functions."""
    offenders = long_functions(ROOT / "bench")
    assert not offenders, "split these into well-named steps:\n" + "\n".join(offenders)


def test_the_length_check_counts_from_def_to_the_last_line(tmp_path):
    (tmp_path / "pkg").mkdir()
    body = "".join(f"        x{i} = {i}\n" for i in range(80))
    (tmp_path / "pkg" / "m.py").write_text(f"def short():\n    return 1\n\n\nclass C:\n    def long(self):\n{body}",
                                           encoding="utf-8")
    assert long_functions(tmp_path / "pkg") == ["pkg/m.py:6 long (81 lines)"]
    assert long_functions(tmp_path / "pkg", limit=81) == []
