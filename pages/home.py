"""Home: what WattGPU does, the data it stands on, the models' accuracy and a quick single prediction."""


import streamlit as st

from pages.ui import shared
from pages.view import formats, labels
from pages.view import home as view_home
from wattgpu_core.safety import md

shared.sidebar()
st.title("WattGPU: which GPU should serve your LLM?")
st.markdown(
    "WattGPU predicts the **mean GPU power (W)** and the **inter-token latency (ITL)** of LLM inference on NVIDIA "
    "GPUs from public LLM metadata and GPU specifications, with no profiling of the pair. From those it derives "
    "**energy per token** and **throughput**, so you can rank GPUs for a model before renting or buying any. "
    "By default it uses **WattGPU+**, a calibrated physical model (time per decode step from a roofline of bytes "
    "and FLOPs, power between serving-idle and TDP) that takes batch size, request rate and token counts as inputs "
    "and gives 80% intervals; the XGBoost models of the WattGPU paper (2026) stay available as the reference. Both "
    "are trained on the Watt Counts measurements (vLLM 0.14, one GPU, 16-bit weights); WattGPU+ also learns from "
    "the runs of the other sources, each through its serving stack's calibration."
)

info = shared.summary()
c1, c2, c3, c4 = st.columns(4)
c1.metric("Measured runs", f"{info['runs']:,}")
c2.metric("GPUs in the catalog", info["gpus"], help=f"{info['gpus_with_runs']} of them have measured runs")
c3.metric("LLMs in the catalog", info["llms"], help=f"{info['llms_with_runs']} of them have measured runs")
c4.metric("Data sources", info["sources"])

left, right = st.columns(2)
with left:
    st.subheader("Data sources")
    st.dataframe(info["source_table"], hide_index=True, placeholder="–", width="stretch",
                 column_config={"Source": st.column_config.TextColumn(width="medium")})
with right:
    st.subheader("How accurate are the models?")
    accuracy = view_home.headline_accuracy(shared.models())
    st.markdown(accuracy.sentence)
    st.dataframe(accuracy.table, hide_index=True, placeholder="–", width="stretch")
    st.markdown(view_home.other_sources_sentence(shared.models()))

st.subheader("Quick prediction")
state = shared.url_state()
a, b = st.columns(2)
with a:
    llm_id = shared.pick_llm("home_llm", state)
with b:
    gpu_id = shared.pick_gpu("home_gpu", state)
workload = shared.pick_workload("home", state)
shared.write_url(state.replace(llm=llm_id, gpu=gpu_id, model=shared.model_name(), stack=workload.serving_stack or ""),
                 ("llm", "gpu", "model", "stack"))

result = shared.predict_one(llm_id, gpu_id, workload)
if not result.fits:
    st.warning(f"{md(result.gpu_name)} cannot hold this model: {md(result.reason)}")
else:
    cols = [*st.columns(2), *st.columns(2)]  # two rows: the values stay whole on a 1024 px screen
    for col, (column, title, value, help_) in zip(cols, (
            ("power_w", "Mean GPU power", formats.fmt_power(result.power_w), None),
            ("itl_s", labels.latency_title(workload.scenario), formats.fmt_itl(result.itl_s), labels.ITL_HELP),
            ("energy_per_token_j", "Energy per token", formats.fmt_energy(result.energy_per_token_j), None),
            ("throughput_tok_s", "Throughput", formats.fmt_throughput(result.throughput_tok_s), None)), strict=True):
        col.metric(title, value, help=help_)
        col.caption(result.interval_text(column))
    st.caption(labels.stack_caption(result.serving_stack, shared.models().label, workload.serving_stack))
    if result.notes:
        st.caption(f"Note: {md(result.notes)}.")
st.page_link("pages/compare.py", label="Compare every GPU for this model", icon=":material/leaderboard:")
