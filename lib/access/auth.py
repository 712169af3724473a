"""Which sign-in applies, and the role of a signed-in user. Pure functions: no Streamlit here.

Modes (decided from configuration, in this order):
- ``oidc``: the secrets hold an ``[auth]`` section (Streamlit's OpenID Connect, ``st.login``). The role
  comes from a claim (``[joinedup] role_claim`` with ``[joinedup.claim_roles]`` mapping claim values
  to roles) or from an allow-list of e-mail addresses (``[joinedup.allow]``: ``lead = [...]`` …).
- ``local``: a local accounts file exists with at least one user (lib.access.accounts).
- ``demo``: neither. Allowed only on synthetic data (``demo_allowed``): the app shows a banner, offers a
  "view as" role, and refuses uploads.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

from lib.access.roles import ROLES, check_role

OIDC, LOCAL, DEMO = "oidc", "local", "demo"
SYNTHETIC_ENV = "JOINEDUP_SYNTHETIC_STORE"  # "1": the operator declares $JOINEDUP_DB synthetic (tests, demos)
TIMEOUT_ENV = "JOINEDUP_SESSION_MINUTES"
DEFAULT_TIMEOUT_MINUTES = 30
DEMO_USER = "demo (synthetic data)"


def mode(secrets: Mapping | None, accounts_configured: bool) -> str:
    if secrets and isinstance(secrets.get("auth"), Mapping) and secrets["auth"]:
        return OIDC
    if accounts_configured:
        return LOCAL
    return DEMO


def settings(secrets: Mapping | None) -> dict:
    """The ``[joinedup]`` secrets section as a plain dict ({} if absent)."""
    if not secrets:
        return {}
    section = secrets.get("joinedup")
    return _plain(section) if isinstance(section, Mapping) else {}


def _plain(value):
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def timeout_seconds(config: Mapping, environ: Mapping = os.environ) -> float:
    """Idle timeout: $JOINEDUP_SESSION_MINUTES, else [joinedup] session_timeout_minutes, else 30."""
    raw = environ.get(TIMEOUT_ENV) or config.get("session_timeout_minutes") or DEFAULT_TIMEOUT_MINUTES
    try:
        minutes = float(raw)
    except (TypeError, ValueError):
        minutes = DEFAULT_TIMEOUT_MINUTES
    return max(minutes, 0.05) * 60


def oidc_role(user: Mapping, config: Mapping) -> str | None:
    """The role of a signed-in OpenID Connect user, or None (no access).

    0. ``allow_issuer`` set: a token whose ``iss`` is not one of them gets no role by any route (claim or
       allow-list).
    1. ``role_claim`` set: the claim's value (a string or a list, e.g. groups) is looked up in
       ``claim_roles`` (claim value -> role); only the configured mapping grants a role (a claim value that
       merely equals a role name grants nothing unless ``claim_roles`` maps it). When several match, the
       least privileged wins (commissioner, then analyst, then lead), so a stray group never widens access.
    2. Otherwise, or when the claim gives nothing: the ``allow`` lists by e-mail (case-insensitive), matched
       only when the ID token says ``email_verified`` is true (a missing claim counts as NOT verified: some
       providers let a user, or another tenant, set an unverified address), and, when ``allow_issuer`` is
       configured, only for a token whose ``iss`` equals it (a multi-tenant provider issues tokens for other
       organisations' tenants too).
    """
    if not user or not user.get("is_logged_in", True):
        return None
    if not issuer_allowed(user, config):
        return None  # another organisation's tenant: no role from a claim or an allow-list
    found: list[str] = []
    claim = config.get("role_claim")
    if claim:
        values = user.get(claim)
        if isinstance(values, str):
            values = [values]
        mapping = {str(k): v for k, v in (config.get("claim_roles") or {}).items()}
        for value in values or []:
            role = mapping.get(str(value))
            if isinstance(role, str) and role in ROLES:
                found.append(role)
    if not found:
        email = str(user.get("email") or "").strip().lower()
        if email and email_verified(user):
            for role, emails in (config.get("allow") or {}).items():
                if role in ROLES and email in {str(e).strip().lower() for e in (emails or [])}:
                    found.append(role)
    if not found:
        return None
    order = {"commissioner": 0, "analyst": 1, "lead": 2}
    return check_role(min(found, key=order.get))


def email_verified(user: Mapping) -> bool:
    """True only when the ``email_verified`` claim is present and true (boolean, or the string "true")."""
    value = user.get("email_verified")
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def issuer_allowed(user: Mapping, config: Mapping) -> bool:
    """With ``[joinedup] allow_issuer`` set (a string or a list), the token's ``iss`` must be one of them."""
    wanted = config.get("allow_issuer")
    if not wanted:
        return True
    wanted = [wanted] if isinstance(wanted, str) else list(wanted)
    return str(user.get("iss") or "").rstrip("/") in {str(w).rstrip("/") for w in wanted}


def oidc_user_name(user: Mapping) -> str:
    return str(user.get("email") or user.get("preferred_username") or user.get("name") or user.get("sub")
               or "(unknown)")


def demo_allowed(batch_files: list[str], *, default_store: bool, environ: Mapping = os.environ) -> tuple[bool, str]:
    """Whether the store may be shown without sign-in, and why not.

    Allowed on the embedded default store while it holds nothing but the synthetic default dataset, or on
    any store the operator declares synthetic with JOINEDUP_SYNTHETIC_STORE=1 (tests, demonstrations).
    """
    from lib.records.default import DEFAULT_FILENAME

    if environ.get(SYNTHETIC_ENV) == "1":
        return True, ""
    if not default_store:
        return False, ("this store ($JOINEDUP_DB) may hold real data, and no sign-in is configured. Configure "
                       "local accounts or OpenID Connect (see the README, 'Signing in'), or set "
                       f"{SYNTHETIC_ENV}=1 if it holds only synthetic data")
    other = [f for f in batch_files if f != DEFAULT_FILENAME]
    if other:
        return False, (f"the store holds {len(other)} uploaded extract{'s' if len(other) > 1 else ''}, and no "
                       "sign-in is configured. Configure local accounts or OpenID Connect (see the README, "
                       "'Signing in')")
    return True, ""
