"""Shared page plumbing (not a page): the store connection and the first-start default dataset.

One DuckDB connection per store file per server process (st.cache_resource); lib functions take a
cursor per query, so sessions on different threads do not share a result set.
"""
from __future__ import annotations

import os
import threading

import streamlit as st

from lib.records import store


@st.cache_resource(show_spinner=False)
def connection(path: str):
    return store.connect(path)


def db_path() -> str:
    return str(store.resolve_path())


def store_connection():
    return connection(db_path())


def secret_key():
    """The pseudonymisation key from Streamlit secrets, if configured (else env var or key file)."""
    try:
        return st.secrets.get("JOINEDUP_KEY")
    except Exception:  # noqa: BLE001 - no secrets file is the normal standalone case
        return None


def progress_callback(bar):
    """Adapt st.progress to lib's progress(fraction, message) callbacks."""
    def update(fraction: float, message: str) -> None:
        bar.progress(min(max(float(fraction), 0.0), 1.0), text=message)
    return update


@st.cache_resource(show_spinner=False)
def _first_start_lock() -> threading.Lock:
    return threading.Lock()


def ensure_default_data() -> None:
    """At first start on the default store (no $JOINEDUP_DB), build the synthetic national dataset and
    link it, showing progress; afterwards a cheap check once per session. One session does the work:
    others arriving meanwhile wait, then find it done."""
    if st.session_state.get("_default_data_checked") or store.DB_ENV in os.environ:
        return
    from lib.linkage import spans

    with _first_start_lock():
        con = store_connection()
        if store.counts(con)["encounters"] == 0:
            from lib.records.default import ensure_default_dataset

            bar = st.progress(0.0, text="First start: building the synthetic national dataset…")
            ensure_default_dataset(con, progress_callback(bar), key=secret_key())
            bar.empty()
        if not spans.has_linkage(con):
            from lib.linkage import run

            bar = st.progress(0.0, text="First start: linking records into children…")
            run.link(con, run.LinkConfig(), progress=progress_callback(bar))
            bar.empty()
    st.session_state["_default_data_checked"] = True


def stored_data_version(con) -> str:
    """The store's data version; stops the page with a clear message when nothing is stored yet."""
    from lib.linkage import spans

    version = spans.data_version(con)
    if version.startswith("0:"):
        st.info("No encounter records are stored yet. Load extracts on the Data page, or "
                "`python -m lib.cli ingest FILE --db PATH`.", icon=":material/info:")
        st.stop()
    return version
