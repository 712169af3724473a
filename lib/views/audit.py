"""View builder of the audit trail page (safeguarding leads only): the chain's check and the rows asked for.

``build(con_or_store, params, role)``: ``con_or_store`` is a store connection (or ``Source``) whose audit
trail is read (lib.access.audit.AuditLog.for_connection), or an ``AuditLog`` itself (the page passes the one
opened with the app's audit key). Sentences: what the check of the keyed chain and head found, then how many
rows are listed; table ``rows`` (downloadable: the page's "Download these rows (CSV)").

Parameters: ``action`` (one of lib.access.audit.ACTIONS, or all), ``user`` (exact), ``text`` (area, child or
file contains), ``since`` and ``until`` (ISO dates, both included, or ``any``; default: the last 30 days).
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta

from lib.access import audit
from lib.records import store
from lib.views.base import PageData, Param, Table, source_of

PAGE = "audit"
TITLE = "Audit trail"
INTRO = ("Every child-level view, export, upload, linkage run, review decision and sign-in is recorded here, "
         "append-only. Each row is chained to the one before it by a keyed hash, and a keyed head record outside "
         "the database holds the last row, so a changed, deleted or missing row shows up below.")
DAYS = 30  # the default period: the last 30 days
ANY = "any"  # since/until: no bound

PARAMS = {
    "action": Param(None, choices=(None, *audit.ACTIONS), help="one action (default: all actions)"),
    "user": Param(None, help="user name, exact"),
    "text": Param(None, help="area, child or file contains (case-insensitive)"),
    "since": Param(None, help="first day, YYYY-MM-DD, or 'any' (default: 30 days before until)"),
    "until": Param(None, help="last day, YYYY-MM-DD, or 'any' (default: today)"),
}
COLUMNS = {"seq": {"label": "#"}, "at_utc": {"label": "When (UTC)", "format": "YYYY-MM-DD HH:mm:ss"},
           "user_name": {"label": "User"}, "role": {"label": "Role"}, "action": {"label": "Action"},
           "subject": {"label": "Area / child / file"}, "detail": {"label": "Detail"}}


def _day(name: str, value) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"parameter {name}={value!r}: expected a date YYYY-MM-DD") from None


def period(params: dict, today: date | None = None) -> tuple[datetime | None, datetime | None]:
    """[since, until) of the parameters as datetimes, from the first day's start to the end of the last
    (``any``: no bound on that side)."""
    if params.get("since") == ANY or params.get("until") == ANY:
        since = None if params.get("since") == ANY else _day("since", params.get("since"))
        until = None if params.get("until") == ANY else _day("until", params.get("until"))
    else:
        until = _day("until", params.get("until")) or today or datetime.now().date()
        since = _day("since", params.get("since")) or until - timedelta(days=DAYS)
    if since is not None and until is not None and since > until:
        raise ValueError(f"parameter since={since} is after until={until}")
    return (None if since is None else datetime.combine(since, time.min),
            None if until is None else datetime.combine(until, time.min) + timedelta(days=1))


def trail(con_or_store) -> audit.AuditLog:
    if isinstance(con_or_store, audit.AuditLog):
        return con_or_store
    return audit.AuditLog.for_connection(source_of(con_or_store).con)


def check_sentence(check: dict) -> str:
    if check["ok"]:
        return f"Chain intact: {check['rows']:,} rows, none altered or removed."
    return (f"The audit trail fails its check: {check['problem']}. A row was changed or removed outside the "
            "application, or the head record kept beside the trail was lost or replaced. Report this to your "
            "information governance lead.")


def build(con_or_store, params: dict, role: str) -> PageData:
    log = trail(con_or_store)
    since, until = period(params)
    check = audit.verify(log)  # O(rows): the page caches the whole view while the trail is unchanged
    rows = audit.read(log, action=params.get("action") or None, user=(params.get("user") or "").strip() or None,
                      text=(params.get("text") or "").strip() or None, since=since, until=until)
    version = "" if isinstance(con_or_store, audit.AuditLog) else store.data_version(source_of(con_or_store).con)
    return PageData(page=PAGE, role=role, params=dict(params), data_version=version,
                    title=TITLE, sentences=[INTRO, check_sentence(check),
                                            f"{len(rows):,} rows (times in UTC), newest first."],
                    tables={"rows": Table(rows, title="Audit rows", downloadable=True, columns=COLUMNS)},
                    extra={"chain_ok": bool(check["ok"])})
