"""Data page: the extract schema and template, upload → validation summary → store, identifier completeness.

Thin: layout, widgets and caching; the work is in lib.records. Clear names and NHS numbers exist only
inside ``ingest.prepare``: what this page holds between the summary and "Store" is pseudonymised.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from lib.geo import maps
from lib.geo.layers import LAYERS
from lib.records import schema, store, versions
from lib.records.extract import ExtractError
from lib.records.ingest import commit, prepare
from lib.records.pseudonymise import load_key
from lib.access.safety import escape_markdown, safe_filename
from lib.access.roles import aggregates_suppressed
from lib.access.views import aggregate_view, visible_rows
from lib.measures.suppression import is_small
from pages.common import (after_write, audit, connection, db_path, export_button, require_page, secret_key,
                          uploads_allowed)

MIN_ENCOUNTERS = 6  # areas with fewer encounters than this show no percentages (small numbers)
AGENCY_LABELS = {"police": "Police", "children_social_care": "Children's social care", "health": "Health",
                 "education": "Education", "other": "Other"}
BASIS_LABELS = {"either": "Home, else where it happened", "home": "Home postcode", "encounter": "Where it happened"}


@st.cache_data(show_spinner=False, max_entries=32)
def completeness_table(path: str, version: str, layer: str, basis: str, by: str) -> pd.DataFrame:
    return store.completeness(connection(path), layer, basis=basis, by=by)


ROLE = require_page("data")  # analysts only: loading extracts
AGG = aggregates_suppressed(ROLE)  # analysts see aggregates only: counts 1-5 as c, shares from them hidden
DB_PATH = db_path()
con = connection(DB_PATH)

st.title("Data")
st.markdown("Load agency extracts (CSV, Excel or Parquet). Each file is checked row by row, placed in every "
            "geography and pseudonymised before anything is stored: names, NHS numbers, dates of birth and "
            "postcodes are kept only as keyed hashes. You see what will be stored, and what will not, first.")

schema_tab, upload_tab, completeness_tab = st.tabs(["Extract schema", "Upload", "Identifier completeness"])

with schema_tab:
    st.markdown("Required columns must be present; others may be left out or blank. Common header spellings "
                "are recognised (for example *NHS No*, *DOB*, *First name*, *Postcode*).")
    st.dataframe(schema.schema_frame(), hide_index=True, width="stretch")
    export_button("Download the template (CSV)", schema.template_frame(), "joinedup_template.csv", "text/csv",
                  key="template", detail="blank template")
    with st.expander("Every check and what happens"):
        st.dataframe(schema.checks_frame(), hide_index=True, width="stretch")

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
                st.dataframe(reasons, hide_index=True, width="stretch")
                st.dataframe(batch.issues, hide_index=True, width="stretch", height=260)
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
                             hide_index=True, width="stretch")
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
    st.markdown("How ready each agency's records are for a unique child identifier: the share with a valid "
                "NHS number, with name and date of birth, and anonymous contacts (no identifier at all).")
    layer_keys = [k for k in LAYERS if k in store.COMPLETENESS_LAYERS]
    c1, c2, c3 = st.columns(3)
    layer = c1.selectbox("Areas", layer_keys, format_func=lambda k: LAYERS[k].title, index=layer_keys.index("utla"),
                         key="completeness_layer")
    basis = c2.selectbox("Place each contact by", list(BASIS_LABELS), format_func=BASIS_LABELS.get,
                         key="completeness_basis")
    agencies = ["all"] + list(schema.AGENCY_TYPES)
    agency = c3.selectbox("Agency", agencies, format_func=lambda a: "All agencies" if a == "all" else
                          AGENCY_LABELS[a], key="completeness_agency")
    version = store.data_version(con)
    table = completeness_table(DB_PATH, version, layer, basis, "none" if agency == "all" else "agency_type")
    if agency != "all":
        table = table[table["agency_type"] == agency].drop(columns="agency_type")
    if table.empty:
        st.info("No records stored for this choice yet.")
    else:
        shown = table.copy()
        small = shown["encounters"] < MIN_ENCOUNTERS
        for column in ("valid_nhs_pct", "name_dob_pct", "anonymous_pct"):
            shown[column] = shown[column].where(~small)
            if AGG:  # a share times its shown denominator gives its count back: hide it where that count is 1-5
                numerator = (shown[column].astype("float64") * shown["encounters"] / 100).round()
                shown[column] = shown[column].where(~is_small(numerator.fillna(0).to_numpy()))
        if AGG:  # the map's hover shows contacts: only areas whose count the table below shows
            visible = visible_rows(shown, aggregate_view(shown, ["encounters"], role=ROLE), ["encounters"])
            small = small | ~shown.index.isin(visible.index)
        mapped = shown[(shown["area_code"] != "(unplaced)") & ~small]
        values = dict(zip(mapped["area_code"], mapped["valid_nhs_pct"].astype(float)))
        hover = {r.area_code: f"{r.encounters:,} contacts; name and DOB {r.name_dob_pct}%; anonymous "
                              f"{r.anonymous_pct}%" for r in mapped.itertuples(index=False)}
        st.plotly_chart(maps.choropleth_figure(layer, values, "Valid NHS number (%)", hover=hover),
                        width="stretch", key="completeness_map")
        shown = aggregate_view(shown, ["encounters"], role=ROLE, rates={c: "encounters" for c in (
            "valid_nhs_pct", "name_dob_pct", "anonymous_pct")})  # counts 1-5 as c for aggregate-only roles
        st.dataframe(shown.rename(columns={"area_code": "code", "area_name": "area", "valid_nhs_pct": "valid NHS %",
                                           "name_dob_pct": "name + DOB %", "anonymous_pct": "anonymous %"}),
                     hide_index=True, width="stretch")
        st.caption(f"Areas with fewer than {MIN_ENCOUNTERS} contacts show no percentages. "
                   + ("Trust catchments are modelled (NHS trusts have no statutory boundary). " if layer == "trust"
                      else ""))
