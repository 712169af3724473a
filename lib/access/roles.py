"""The three roles and what each may see; one table the pages, exports and CLI all consult.

Decision (docs/ACCESS.md, "Roles"): only the safeguarding lead sees child-level rows (journeys, the review
queue, lists of children). Analysts and commissioners see aggregates, and every aggregate they see
or export passes through small-number suppression (lib.measures.suppression). Analysts alone load
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
    """Counts 1-5 shown as `c` (with secondary suppression) in every view and export for this role."""
    return role != LEAD


def periods_for(role: str, periods: list[str]) -> list[str]:
    """The periods a role may pick. Aggregate-only roles get "all" alone: suppression works within one table,
    and a year is the sum of its quarters (and "all" of its years), so a count hidden in one period could be
    worked out by subtracting the others. One non-overlapping period cannot be differenced."""
    if aggregates_suppressed(role):
        return [p for p in periods if p == "all"] or periods[:1]
    return list(periods)


def may_load_data(role: str) -> bool:
    """Upload extracts and run linkage."""
    return role == ANALYST
