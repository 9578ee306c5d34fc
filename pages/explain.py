"""Explain: why the models predict what they do for one (LLM, GPU, workload), and what drives them overall."""

import streamlit as st

from pages import _shared as shared
from wattgpu_core import figures

shared.sidebar()
st.title("Explain a prediction")
st.caption("SHAP values split each prediction into the contribution of every input, starting from the average "
           "prediction over the training runs. Red bars push the prediction up, blue bars pull it down.")

state = shared.url_state()
a, b = st.columns(2)
with a:
    llm_id = shared.pick_llm("exp_llm", state)
with b:
    gpu_id = shared.pick_gpu("exp_gpu", state)
workload = shared.pick_workload("exp", state)
shared.write_url(state.replace(llm=llm_id, gpu=gpu_id, scenario=workload.scenario, qps=workload.request_rate_qps),
                 ("llm", "gpu", "scenario", "qps"))

explanation = shared.explain(llm_id, gpu_id, workload)
for target in ("power", "itl"):
    st.markdown(explanation[target].reading())
left, right = st.columns(2)
left.plotly_chart(figures.explanation_waterfall(explanation["power"]), width="stretch")
right.plotly_chart(figures.explanation_waterfall(explanation["itl"]), width="stretch")
st.caption("The paper's models read the scenario (offline, or server below / above 0.2 requests/s) but not the "
           "batch size or token counts; those change throughput and energy per token, not these two predictions.")

st.subheader("What drives the models over all training runs")
c1, c2 = st.columns([1, 3])
target = c1.segmented_control("Model", ["power", "itl"], default="power", key="exp_target",
                              format_func={"power": "Power", "itl": "ITL"}.get)
kind = c2.segmented_control("Chart", ["bar", "beeswarm"], default="bar", key="exp_kind",
                            format_func={"bar": "Mean |SHAP| per feature", "beeswarm": "Every run (beeswarm)"}.get)
importance = shared.global_importance()[target or "power"]
if kind == "beeswarm":
    st.plotly_chart(figures.importance_beeswarm(importance), width="stretch")
else:
    st.plotly_chart(figures.importance_bars(importance), width="stretch")
