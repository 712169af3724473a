"""The secret behind every cell key of one store.

Derived from the store's ``key_check`` (``meta``), itself an HMAC of the pseudonymisation key: stable for the
store's life (the same cell gets the same noise on every page, export and day), unpredictable to anyone who
has only what the pages publish, and needing no extra key to manage. Whoever holds the store file holds the
exact data anyway, so keeping the secret's root there gives nothing away.
"""
from __future__ import annotations

import hashlib
import hmac

from lib.records.store import cursor

_DOMAIN = b"joined-up/disclosure/cell-key/v1"


class NoSecret(RuntimeError):
    """The store has no key check yet (nothing ingested), so there is nothing to protect or perturb."""


def store_secret(con) -> bytes:
    """32 bytes, the same for every call on the same store."""
    with cursor(con) as cur:
        present = cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta'"
                              ).fetchall()[0][0]
        rows = cur.execute("SELECT value FROM meta WHERE name = 'key_check'").fetchall() if present else []
    if not rows:
        raise NoSecret("the store has no key check (no batch ingested yet): no cell keys can be made")
    return hmac.new(rows[0][0].encode("utf-8"), _DOMAIN, hashlib.sha256).digest()
