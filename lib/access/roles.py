"""The three roles and what each may see; one table the pages, exports and CLI all consult.

Decision (docs/ACCESS.md, "Roles"): only the safeguarding lead sees child-level rows (journeys, the review
queue, lists of children). Analysts and commissioners see aggregates, and every aggregate they see
or export is protected by cell key perturbation (lib.disclosure.service; docs/DISCLOSURE.md). Analysts alone load
extracts and run linkage. The role decides which pages and widgets exist, not only what is hidden.
"""
from __future__ import annotations

LEAD = "lead"
ANALYST = "analyst"
COMMISSIONER = "commissioner"
ROLES = (LEAD, ANALYST, COMMISSIONER)
ROLE_LABELS = {
    LEAD: "Safeguarding lead",
    ANALYST: "Analyst",
    COMMISSIONER: "Commissioner / board",
}

# url_path of each page -> roles that may open it. A page not listed here is open to no role.
PAGE_ROLES: dict[str, frozenset[str]] = {
    "boundaries": frozenset(ROLES),
    "across": frozenset(ROLES),        # child lists and journeys inside it: lead only
    "divergence": frozenset(ROLES),
    "compare": frozenset(ROLES),
    "profile": frozenset(ROLES),       # one area's indicators against England and Wales (aggregates)
    "scenario": frozenset(ROLES),
    "review": frozenset({LEAD}),
    "data": frozenset({ANALYST}),
    "audit": frozenset({LEAD}),
    "about": frozenset(ROLES),         # sources, methods, who sees what, accessibility statement
}


def check_role(role: str) -> str:
    """The role itself, or ValueError naming the allowed roles (for CLI flags and config files)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
    return role


def may_open(role: str, url_path: str) -> bool:
    return role in PAGE_ROLES.get(url_path, frozenset())


def sees_child_level(role: str) -> bool:
    """Journeys, review queue, per-child lists and any export with one row per child or encounter."""
    return role == LEAD


def aggregates_suppressed(role: str) -> bool:
    """Every count this role sees or exports is protected (lib.disclosure: cell key perturbation, on every page,
    export and command-line twin); False for the safeguarding lead, who sees exact figures."""
    return role != LEAD


def periods_for(role: str, periods: list[str]) -> list[str]:
    """The periods a role may pick. Aggregate-only roles get "all" and the financial years, not quarters: their
    counts come from lib.disclosure.service, where records are perturbed once per atom and financial year and
    every published year and "all" is an exact sum of those perturbed atoms, so subtracting one year (or all the
    others) from "all" yields nothing finer than a perturbed atom. Quarters are not perturbed that way and stay
    with the safeguarding lead."""
    if aggregates_suppressed(role):
        return [p for p in periods if " Q" not in p] or periods[:1]
    return list(periods)


def may_load_data(role: str) -> bool:
    """Upload extracts and run linkage."""
    return role == ANALYST
