"""Data page: the extract schema and template, upload → validation summary → store, identifier completeness.

What it shows from the store (schema, checks, template, completeness map and table) comes from
lib.views.data, the same view ``python -m lib.cli view data --role analyst`` writes. The upload flow stays
here: clear names and NHS numbers exist only inside ``ingest.prepare``, so what this page holds between
the summary and "Store" is pseudonymised; "Store" writes through lib.records.versions.write.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from lib import views
from lib.access.safety import escape_markdown, safe_filename
from lib.geo.layers import LAYERS
from lib.records import store, versions
from lib.records.extract import ExtractError
from lib.records.ingest import commit, prepare
from lib.records.pseudonymise import load_key
from lib.views import data as view_def
from lib.views.base import Source
from pages.common import (
    after_write,
    audit,
    column_config,
    connection,
    db_path,
    export_button,
    pinned_version,
    require_page,
    secret_key,
    uploads_allowed,
)


@st.cache_resource(show_spinner=False, max_entries=32)
def page_view(path: str, pin: int | None, version: str, role: str, items: tuple):
    """The view for these parameters (its figures are Plotly objects: drawn without re-validation)."""
    views.check_access("data", role)
    data = view_def.build(Source(connection(path), path), views.resolve_params("data", dict(items)), role)
    return data, data.figures


ROLE = require_page("data")  # analysts only: loading extracts
DB_PATH = db_path()
con = connection(DB_PATH)


def view(**params):
    return page_view(DB_PATH, pinned_version(), store.data_version(con), ROLE, tuple(sorted(params.items())))


layer = st.session_state.get("completeness_layer", "utla")
basis = st.session_state.get("completeness_basis", "either")
agency = st.session_state.get("completeness_agency", "all")
view_data, figures = view(layer=layer, basis=basis, agency=agency)

st.title(view_data.title)
st.markdown(view_data.extra["slots"]["intro"][0])

schema_tab, upload_tab, completeness_tab = st.tabs(["Extract schema", "Upload", "Identifier completeness"])

with schema_tab:
    st.markdown(view_data.extra["slots"]["schema"][0])
    st.dataframe(view_data.tables["schema"].frame, hide_index=True, width="stretch", key="schema")
    export_button("Download the template (CSV)", view_data.tables["template"].frame, "joinedup_template.csv",
                  "text/csv",
                  key="template", detail="blank template")
    with st.expander("Every check and what happens"):
        st.dataframe(view_data.tables["checks"].frame, hide_index=True, width="stretch", key="checks")

with upload_tab:
    may_upload, upload_note = uploads_allowed()
    if upload_note:
        (st.caption if may_upload else st.info)(upload_note)
    uploaded = st.file_uploader("Agency extract", type=["csv", "txt", "tsv", "xlsx", "parquet"], key="extract",
                                disabled=not may_upload,
                                help="CSV, Excel .xlsx or Parquet; at most 200 MB here (the command line "
                                     "takes larger files). The content is checked, not just the name.")
    if uploaded is not None and may_upload:
        data = uploaded.getvalue()
        upload_name = safe_filename(uploaded.name)  # never a path; shown, stored and audited as this
        token = (upload_name, len(data), hash(data))
        if st.session_state.get("prepared_token") != token:
            st.session_state.pop("prepared", None)
            st.session_state.pop("stored", None)
            with st.spinner("Checking, placing and pseudonymising…"):
                try:
                    st.session_state["prepared"] = prepare(data, upload_name,
                                                           key=load_key(DB_PATH, secret_key()))
                    st.session_state.pop("extract_error", None)
                except ExtractError as exc:
                    st.session_state["extract_error"] = str(exc)
                    audit("upload_refused", upload_name, exc.code)
            st.session_state["prepared_token"] = token
        if st.session_state.get("extract_error"):
            st.error(f"Nothing can be stored from this file. {escape_markdown(st.session_state['extract_error'])}")
        batch = st.session_state.get("prepared")
        if batch is not None:
            summary = batch.summary()
            cols = st.columns(4)
            cols[0].metric("Rows read", f"{summary['rows_read']:,}")
            cols[1].metric("Rows to store", f"{summary['rows_valid']:,}")
            cols[2].metric("Rows rejected", f"{summary['rows_rejected']:,}")
            cols[3].metric("Values dropped", f"{summary['values_dropped']:,}",
                           help="Identifiers that failed a check; the row is kept without them.")
            if summary.get("sheet_note"):  # Excel: which sheet was read, and which were not (hidden, no headers)
                st.info(escape_markdown(summary["sheet_note"]))
            if summary["ignored_columns"]:
                ignored = summary["ignored_columns"]  # the file's own headers: user text, shown inert
                st.caption("Columns not used: " + ", ".join(escape_markdown(c[:60]) for c in ignored[:30])
                           + (f" and {len(ignored) - 30} more" if len(ignored) > 30 else ""))
            for message, rows in summary["retired_codes_mapped"].items():  # built from official codes, not user text
                st.info(f"{escape_markdown(message)} ({rows:,} rows).", icon=":material/swap_horiz:")
            if len(batch.issues):
                reasons = (batch.issues.groupby(["action", "field", "code"]).size().rename("rows").reset_index()
                           .sort_values("rows", ascending=False))
                st.subheader("Problems found")
                st.dataframe(reasons, hide_index=True, width="stretch", key="upload_reasons")
                st.dataframe(batch.issues, hide_index=True, width="stretch", height=260, key="upload_issues")
                export_button("Download the problem list (CSV)", batch.issues,
                              f"{upload_name}.problems.csv", "text/csv", key="issues_csv")
            else:
                st.success("No problems found.")
            with st.expander("What will be stored (columns, pseudonymised)"):
                # Analysts see aggregates only (lib.access.roles): no record-level preview, just what each
                # stored column holds and how many rows have it.
                st.dataframe(pd.DataFrame({"column": batch.records.column_names,
                                           "rows with a value": [batch.records.num_rows - c.null_count
                                                                 for c in batch.records.columns]}),
                             hide_index=True, width="stretch", key="upload_columns")
            stored = st.session_state.get("stored")
            if stored is None:
                if st.button(f"Store these {summary['rows_valid']:,} records", type="primary", key="store",
                             disabled=summary["rows_valid"] == 0):
                    try:  # the batch becomes the store's next version (lib.records.versions.write)
                        with versions.write(DB_PATH, "upload (app)", wait=2) as w:
                            st.session_state["stored"] = commit(w.con, batch)
                            w.change = f"upload: {st.session_state['stored']['rows_stored']:,} rows stored"
                        after_write()
                        st.session_state.pop("store_error", None)
                        stored_now = st.session_state["stored"]
                        audit("upload", upload_name, f"batch {stored_now['batch_id']}: {stored_now['rows_stored']} "
                                                     f"rows stored, {summary['rows_rejected']} rejected")
                        st.rerun()
                    except versions.StoreLocked as exc:
                        st.session_state["store_error"] = (
                            f"a data load (`{exc.holder.get('command', 'another writer')}` since "
                            f"{exc.holder.get('started', '?')}) is writing the store. The checked file is kept: "
                            "press Store again when it finishes.")
                    except store.StoreError as exc:
                        st.session_state["store_error"] = str(exc)
                if st.session_state.get("store_error"):
                    st.error(f"Nothing was stored: {st.session_state['store_error']}")
            else:
                st.success(f"Stored {stored['rows_stored']:,} new records (batch {stored['batch_id']}); "
                           f"{stored['rows_already_stored']:,} were already stored and were not added again.")

with completeness_tab:
    st.markdown(view_data.extra["slots"]["completeness"][0])
    c1, c2, c3 = st.columns(3)
    layer_choices = list(view_def.LAYER_CHOICES)
    c1.selectbox("Areas", layer_choices, format_func=lambda k: LAYERS[k].title,
                 index=layer_choices.index("utla"), key="completeness_layer")
    c2.selectbox("Place each contact by", list(view_def.BASIS_LABELS), format_func=view_def.BASIS_LABELS.get,
                 key="completeness_basis")
    c3.selectbox("Agency", view_def.AGENCY_CHOICES, key="completeness_agency",
                 format_func=lambda a: "All agencies" if a == "all" else view_def.AGENCY_LABELS[a])
    if "completeness" not in view_data.tables:
        st.info(view_data.extra["slots"]["completeness_empty"][0])
    else:
        st.plotly_chart(figures["completeness_map"], width="stretch", key="completeness_map")
        table = view_data.tables["completeness"]
        st.dataframe(table.frame, hide_index=True, width="stretch", key="completeness",
                     column_config=column_config(table))
        st.caption(view_data.extra["slots"]["completeness_note"][0])
        st.caption(view_data.extra["slots"]["disclosure"][0])
