"""Data: browse the catalogs and runs; upload benchmark files (preview, validation, ingest, retrain); undo uploads."""

import logging

import streamlit as st

from pages.ui import shared
from pages.view import data as view_data
from pages.view import figures
from wattgpu_core import retraining
from wattgpu_core.errors import ValidationError, WattGPUError
from wattgpu_core.importers import pair
from wattgpu_core.safety import md

log = logging.getLogger("wattgpu.data")

shared.sidebar()
st.title("Data")
browse, upload, uploads = st.tabs(["Browse", "Upload a benchmark file", "Uploads"])

with browse:
    table = st.segmented_control("Table", ["GPUs", "LLMs", "Runs"], default="GPUs", key="data_table") or "GPUs"
    query = st.text_input("Search", placeholder="part of a name, e.g. H100 or Llama", key="data_search")
    if table == "Runs":
        c1, c2 = st.columns(2)
        sources = c1.multiselect("Source", view_data.source_options(shared.runs()), key="data_sources",
                                 placeholder="All sources")
        scenario = c2.multiselect("Scenario", ["offline", "server"], key="data_scenarios",
                                  placeholder="Offline and server")
        frame = view_data.browse_runs(shared.runs(), shared.gpus(), shared.llms(), query, sources, scenario)
    elif table == "LLMs":
        frame = view_data.browse_llms(shared.llms(), query)
    else:
        frame = view_data.browse_gpus(shared.gpus(), query)
    st.caption(f"{len(frame):,} rows")
    st.dataframe(frame, hide_index=True, placeholder="–", width="stretch", height=420)

writer = shared.writer()  # who is recorded as adding a batch; None: this session may not write

with upload:
    if writer is None:  # signed out in team mode, or a read-only replica: no upload control
        shared.sign_in_notice()
    else:
        st.markdown("Upload measurements in any supported format; the format is detected from the content. "
                    "Nothing is written until you confirm, and a file with any invalid value is rejected whole.")
        st.markdown(view_data.formats_markdown())
        st.download_button("Download the canonical CSV template", view_data.template_csv(),
                           file_name="wattgpu-template.csv", mime="text/csv", icon=":material/download:")
        file = st.file_uploader("Benchmark file", type=["csv", "tsv", "txt", "json"], key="data_upload")
        if file is not None:
            try:
                prepared = shared.validate_upload(file.name, file.getvalue())
            except ValidationError as exc:
                st.error(f"{md(file.name)} was rejected: {len(exc.issues)} problem(s) shown"
                         + (f" of {exc.total}" if exc.total > len(exc.issues) else "") + ". Fix them and upload again.")
                st.dataframe(view_data.issues_table(exc), hide_index=True, placeholder="–", width="stretch",
                             column_config={"Row": st.column_config.TextColumn(width="small"),
                                            "Column": st.column_config.TextColumn(width="small"),
                                            "Problem": st.column_config.TextColumn(width="large")})
                st.stop()
            except Exception:  # a file no check foresaw: a message here, the details in the server log
                log.exception("upload %r could not be read", file.name)
                st.error(f"{md(file.name)} could not be read as a benchmark file; nothing was written. Check that it is "
                         "a CSV or JSON export in one of the formats above.")
                st.stop()
            st.success(view_data.validation_summary(prepared))
            for warning in prepared.warnings:
                st.warning(md(warning))
            st.dataframe(view_data.preview_table(prepared, shared.gpus(), shared.llms()), hide_index=True,
                         placeholder="–", width="stretch")
            on_conflict = st.radio(
                "If a run in this file is already stored with different measured values",
                list(view_data.ON_CONFLICT_CHOICES),
                format_func=view_data.ON_CONFLICT_CHOICES.get, key="data_on_conflict", horizontal=True,
                help="A run is the same run when its identifying columns match (source, LLM, GPU, workload, serving stack "
                     "and repeat; see the README). Re-sent runs whose values agree are never added twice.")
            if st.button("Add these runs to the store", type="primary", key="data_confirm"):
                try:
                    result = shared.store().ingest(prepared, on_conflict=on_conflict, added_by=writer)
                except ValidationError as exc:
                    st.error(f"Nothing was written: {len(exc.issues)} run(s) are stored already with other measured "
                             "values. Choose to replace or skip them, or fix the file.")
                    st.dataframe(view_data.issues_table(exc), hide_index=True, placeholder="–", width="stretch")
                except WattGPUError as exc:
                    st.error(md(exc))
                else:
                    st.session_state["data_last_batch"] = result.batch_id
                    st.session_state["data_last_message"] = result.message
        with st.expander("A vLLM or GuideLLM result with its GPU power log (nvidia-smi, DCGM or zeus)"):
            pair_files = st.file_uploader("Both files at once: the result JSON and the power log of the same run",
                                          type=["json", "jsonl", "csv", "txt", "prom"], accept_multiple_files=True,
                                          key="data_pair_upload")
            c1, c2 = st.columns(2)
            pair_gpu = c1.text_input("GPU, where the log does not name it", key="data_pair_gpu",
                                     placeholder="e.g. NVIDIA H100 80GB HBM3") or None
            pair_indices = c2.text_input("GPU indices that served the model", key="data_pair_indices",
                                         placeholder="all GPUs of the log, or e.g. 0,1")
            if pair_files:
                try:
                    result_file, log_file = pair.split_files([(f.name, f.getvalue()) for f in pair_files])
                    paired = pair.validate_pair(shared.store(), result_file, log_file, gpu=pair_gpu,
                                                gpu_indices=pair.parse_gpu_indices(pair_indices))
                except ValidationError as exc:
                    st.error(f"This pair was rejected ({exc.total} problem(s) below); nothing was written.")
                    st.dataframe(view_data.issues_table(exc), hide_index=True, placeholder="–", width="stretch",
                                 column_config={"Problem": st.column_config.TextColumn(width="large")})
                else:
                    st.success(view_data.validation_summary(paired.prepared) if len(paired.prepared.frame) else
                               "Every run of this pair is already in the store: nothing to add.")
                    for warning in paired.prepared.warnings:
                        st.warning(warning)
                    st.caption("Matched window of each run and the mean power of each GPU inside it")
                    st.dataframe(paired.windows, hide_index=True, placeholder="–", width="stretch")
                    if len(paired.prepared.frame) and st.button("Add these runs to the store", type="primary",
                                                                key="data_pair_confirm"):
                        try:
                            added = pair.ingest_pair(shared.store(), paired, added_by=writer)
                        except WattGPUError as exc:
                            st.error(md(str(exc)))
                        else:
                            st.session_state["data_last_batch"] = added.batch_id
                            st.session_state["data_last_message"] = added.message
        if st.session_state.get("data_last_message"):
            st.info(md(st.session_state["data_last_message"]))
        if st.session_state.get("data_last_batch"):
            if st.button("Retrain the models on the new data", key="data_retrain"):
                bar = st.progress(0.0, text="Retraining...")
                try:
                    retrained = retraining.retrain(shared.store(), st.session_state["data_last_batch"],
                                                   progress=lambda f, m: bar.progress(min(max(f, 0.0), 1.0), text=m))
                except WattGPUError as exc:
                    st.error(md(exc))
                    st.stop()
                bar.empty()
                change = view_data.metrics_change(retrained)
                st.markdown(change.summary)
                st.dataframe(change.table, hide_index=True, placeholder="–", width="stretch")
                st.plotly_chart(figures.metrics_change_figure(change.before, change.after,
                                                              "Cross-validated MdAPE before and after the upload"),
                                width="stretch")

with uploads:
    listing = view_data.uploads_table(shared.store().batches())
    if listing.empty:
        st.info("No uploads or custom entries yet: the store holds the seed data only.")
    else:
        st.dataframe(listing, hide_index=True, placeholder="–", width="stretch")
        choice = None if writer is None else st.selectbox("Upload to remove", listing["Batch"],
                                                          key="data_remove_choice")
        if choice is not None and st.button("Remove it", icon=":material/delete:", key="data_remove"):
            st.session_state["data_remove_asked"] = choice
        confirmed = False
        if choice is not None and st.session_state.get("data_remove_asked") == choice:  # a second, explicit step: removal cannot be undone
            row = listing[listing["Batch"] == choice].iloc[0]
            st.warning(f"Remove {md(choice)}? " + ", ".join(f"{k}: {md(v)}" for k, v in row.items() if k != "Batch")
                       + ". Its rows leave the store and every page; upload the file again to restore them.",
                       icon=":material/warning:")
            yes, no = st.columns([1, 4])
            confirmed = yes.button("Yes, remove it", type="primary", key="data_remove_yes")
            if no.button("Cancel", key="data_remove_no"):
                st.session_state.pop("data_remove_asked", None)
                st.rerun()
        if confirmed:
            st.session_state.pop("data_remove_asked", None)
            try:
                removed = shared.store().remove_batch(choice)
            except WattGPUError as exc:
                st.error(md(exc))
            else:
                st.session_state["data_removed"] = (f"Removed {choice}: " + ", ".join(
                    f"{v} {k}" for k, v in removed.items() if v) + ". The store is back to its state before it.")
                st.session_state.pop("data_last_batch", None)
                st.session_state.pop("data_last_message", None)
                st.rerun()
    if st.session_state.get("data_removed"):
        st.success(md(st.session_state.pop("data_removed")))
