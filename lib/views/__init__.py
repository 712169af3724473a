"""The view layer (issue 15): every number a page shows is built once, by a view builder, for a role.

Flow: geo -> records -> linkage -> measures -> **views** -> pages / exports / CLI. A page module
``lib/views/<page>.py`` has

- ``PARAMS: dict[str, base.Param]``: each parameter's allowed values (or type) and default;
- ``build(con_or_store, params: dict, role: str) -> base.PageData``: ``con_or_store`` is a DuckDB
  connection or a ``base.Source`` (pages pass one holding their cached measure cube); ``params`` have
  already been checked by ``resolve_params`` (``build`` below does it; pages call it too).

``BUILDERS`` maps every page url_path to its module; ``build(page, store_path, params, role)`` opens the
store read-only, checks page, role (lib.access.roles) and parameters, and returns the page's PageData.
An unknown page, parameter or value is a ValueError naming it and what is allowed.

Downloads go through ONE export path, ``lib.export.downloads`` (``prepare(...)`` for files written at once,
``payload`` + ``record`` for a download button): spreadsheet-safe, audited. See docs/ARCHITECTURE.md,
"View layer". Nothing in lib/ imports lib.views except lib.views.commands; lib.views never imports streamlit.
"""
from __future__ import annotations

import hashlib
import importlib

from lib.access.roles import PAGE_ROLES, check_role, may_open
from lib.records import store
from lib.views.base import PageData, Param, Source, Table  # noqa: F401 - the package's interface

BUILDERS: dict[str, str] = {
    "boundaries": "lib.views.boundaries",
    "across": "lib.views.across",
    "divergence": "lib.views.divergence",
    "compare": "lib.views.compare",
    "profile": "lib.views.profile",
    "scenario": "lib.views.scenario",
    "review": "lib.views.review",
    "data": "lib.views.data",
    "audit": "lib.views.audit",
    "about": "lib.views.about",
}
assert set(BUILDERS) == set(PAGE_ROLES), "every page has a view builder entry"


def builder(page: str):
    """The page's builder module; ValueError for an unknown page or one whose builder is not written yet."""
    if page not in BUILDERS:
        raise ValueError(f"unknown page {page!r}: expected one of {', '.join(sorted(BUILDERS))}")
    try:
        return importlib.import_module(BUILDERS[page])
    except ModuleNotFoundError as exc:
        if exc.name == BUILDERS[page]:
            raise ValueError(f"page {page!r} has no view builder yet ({BUILDERS[page]})") from None
        raise


def _parse(name: str, spec: Param, value):
    if spec.many:
        items = value.split(",") if isinstance(value, str) else list(value)
        return [_parse_one(name, spec, v.strip() if isinstance(v, str) else v) for v in items
                if not (isinstance(v, str) and not v.strip())]
    return _parse_one(name, spec, value)


def _parse_one(name: str, spec: Param, value):
    if spec.kind is not str and isinstance(value, str):
        try:
            value = spec.kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"parameter {name}={value!r}: expected {spec.kind.__name__}") from None
    if spec.choices is not None and value not in spec.choices:
        raise ValueError(f"parameter {name}={value!r}: expected one of {', '.join(map(str, spec.choices))}")
    return value


def resolve_params(page: str, params: dict | None) -> dict:
    """Every parameter of ``page``: given values checked and parsed, the rest at their defaults."""
    module = builder(page)
    specs: dict[str, Param] = module.PARAMS
    params = dict(params or {})
    unknown = sorted(set(params) - set(specs))
    if unknown:
        raise ValueError(f"page {page!r} has no parameter {', '.join(unknown)}: expected "
                         f"{', '.join(sorted(specs)) or '(none)'}")
    resolved = {}
    for name, spec in specs.items():
        value = params.get(name)
        resolved[name] = spec.default if value is None else _parse(name, spec, value)
    return resolved


def check_access(page: str, role: str) -> None:
    check_role(role)
    if page not in BUILDERS:
        builder(page)  # the ValueError naming the pages
    if not may_open(role, page):
        raise ValueError(f"role {role!r} cannot open page {page!r}: allowed "
                         f"{', '.join(sorted(PAGE_ROLES[page])) or '(none)'}")


def _frozen(value):
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, (bytes, bytearray)):
        return hashlib.sha256(value).hexdigest()
    return value


def build_with(page: str, con_or_store, params: dict | None, role: str) -> PageData:
    """The page's PageData from an open connection or Source (pages use this with their cached Source).
    A builder module with ``CACHEABLE = True`` (its PageData depends only on the store's data version, the
    parameters, the role and ``Source.inputs``) is built once per those in ``Source.memo``: the PageData is
    then shared, so a page must never change it."""
    check_access(page, role)
    module = builder(page)
    resolved = resolve_params(page, params)
    if getattr(module, "CACHEABLE", False) and isinstance(con_or_store, Source):
        key = ("page", page, role, _frozen(resolved), _frozen(con_or_store.inputs))
        return con_or_store.memo.get(key, lambda: module.build(con_or_store, resolved, role))
    return module.build(con_or_store, resolved, role)


def build(page: str, store_path, params: dict | None, role: str) -> PageData:
    """Open the store at ``store_path`` read-only (None: $JOINEDUP_DB) and build the page for ``role``."""
    check_access(page, role)
    resolved = resolve_params(page, params)
    con = store.connect(store_path, read_only=True)
    try:
        return builder(page).build(Source(con, store.resolve_path(store_path)), resolved, role)
    finally:
        con.close()


def build_audited(page: str, store_path, params: dict | None, role: str) -> tuple[PageData, list[tuple]]:
    """``build``, and the audit rows (action, subject, detail) of what the page shows of children, from the
    builder's ``audit_rows`` (the rows its page writes; none for a page without one). ``lib.cli view`` writes
    them before it prints (issue 15: the command line is audited as the page is)."""
    check_access(page, role)
    resolved = resolve_params(page, params)
    module = builder(page)
    con = store.connect(store_path, read_only=True)
    try:
        source = Source(con, store.resolve_path(store_path))
        data = module.build(source, resolved, role)
        rows = getattr(module, "audit_rows", None)
        if rows is None:
            return data, []
        return data, list(rows(source, data))
    finally:
        con.close()
