"""Data: browse the catalogs and runs; upload benchmark files (preview, validation, ingest, retrain); undo uploads."""

import streamlit as st

from pages import _shared as shared
from wattgpu_core import dashboard as db
from wattgpu_core import figures
from wattgpu_core.errors import ValidationError, WattGPUError

shared.sidebar()
st.title("Data")
browse, upload, uploads = st.tabs(["Browse", "Upload a benchmark file", "Uploads"])

with browse:
    table = st.segmented_control("Table", ["GPUs", "LLMs", "Runs"], default="GPUs", key="data_table") or "GPUs"
    query = st.text_input("Search", placeholder="part of a name, e.g. H100 or Llama", key="data_search")
    if table == "Runs":
        c1, c2 = st.columns(2)
        sources = c1.multiselect("Source", db.source_options(shared.runs()), key="data_sources",
                                 placeholder="All sources")
        scenario = c2.multiselect("Scenario", ["offline", "server"], key="data_scenarios",
                                  placeholder="Offline and server")
        frame = db.browse_runs(shared.runs(), shared.gpus(), shared.llms(), query, sources, scenario)
    elif table == "LLMs":
        frame = db.browse_llms(shared.llms(), query)
    else:
        frame = db.browse_gpus(shared.gpus(), query)
    st.caption(f"{len(frame):,} rows")
    st.dataframe(frame, hide_index=True, placeholder="–", width="stretch", height=420)

writer = shared.writer()  # who is recorded as adding a batch; None: this session may not write

with upload:
    if writer is None:  # signed out in team mode, or a read-only replica: no upload control
        shared.sign_in_notice()
    else:
        st.markdown("Upload measurements in any supported format; the format is detected from the content. "
                    "Nothing is written until you confirm, and a file with any invalid value is rejected whole.")
        st.markdown(db.formats_markdown())
        st.download_button("Download the canonical CSV template", db.template_csv(), file_name="wattgpu-template.csv",
                           mime="text/csv", icon=":material/download:")
        file = st.file_uploader("Benchmark file", type=["csv", "tsv", "txt", "json"], key="data_upload")
        if file is not None:
            try:
                prepared = shared.validate_upload(file.name, file.getvalue())
            except ValidationError as exc:
                st.error(f"{file.name} was rejected: {len(exc.issues)} problem(s) shown"
                         + (f" of {exc.total}" if exc.total > len(exc.issues) else "") + ". Fix them and upload again.")
                st.dataframe(db.issues_table(exc), hide_index=True, placeholder="–", width="stretch", column_config={
                    "Row": st.column_config.TextColumn(width="small"),
                    "Column": st.column_config.TextColumn(width="small"),
                    "Problem": st.column_config.TextColumn(width="large")})
                st.stop()
            st.success(db.validation_summary(prepared))
            for warning in prepared.warnings:
                st.warning(warning)
            st.dataframe(db.preview_table(prepared, shared.gpus(), shared.llms()), hide_index=True, placeholder="–", width="stretch")
            if st.button("Add these runs to the store", type="primary", key="data_confirm"):
                try:
                    result = shared.store().ingest(prepared, added_by=writer)
                except WattGPUError as exc:
                    st.error(str(exc))
                else:
                    st.session_state["data_last_batch"] = result.batch_id
                    st.session_state["data_last_message"] = result.message
        if st.session_state.get("data_last_message"):
            st.info(st.session_state["data_last_message"])
        if st.session_state.get("data_last_batch"):
            if st.button("Retrain the models on the new data", key="data_retrain"):
                bar = st.progress(0.0, text="Retraining...")
                change = db.retrain_after_upload(shared.store(), st.session_state["data_last_batch"],
                                                 progress=lambda f, m: bar.progress(min(max(f, 0.0), 1.0), text=m))
                bar.empty()
                st.markdown(change.summary)
                st.dataframe(change.table, hide_index=True, placeholder="–", width="stretch")
                st.plotly_chart(figures.metrics_change_figure(change.before, change.after,
                                                              "Cross-validated MdAPE before and after the upload"),
                                width="stretch")

with uploads:
    listing = db.uploads_table(shared.store().batches())
    if listing.empty:
        st.info("No uploads or custom entries yet: the store holds the seed data only.")
    else:
        st.dataframe(listing, hide_index=True, placeholder="–", width="stretch")
        choice = None if writer is None else st.selectbox("Upload to remove", listing["Batch"],
                                                          key="data_remove_choice")
        if choice is not None and st.button("Remove it", icon=":material/delete:", key="data_remove"):
            try:
                removed = shared.store().remove_batch(choice)
            except WattGPUError as exc:
                st.error(str(exc))
            else:
                st.session_state["data_removed"] = (f"Removed {choice}: " + ", ".join(
                    f"{v} {k}" for k, v in removed.items() if v) + ". The store is back to its state before it.")
                st.session_state.pop("data_last_batch", None)
                st.session_state.pop("data_last_message", None)
                st.rerun()
    if st.session_state.get("data_removed"):
        st.success(st.session_state.pop("data_removed"))
