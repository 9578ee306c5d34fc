"""Explain: why the chosen model predicts what it does for one (LLM, GPU, workload), and what drives it overall."""

import streamlit as st

from pages.ui import shared
from pages.view import figures
from wattgpu_core.safety import md

shared.sidebar()
st.title("Explain a prediction")
st.caption("SHAP values split a prediction into the contribution of each input, starting from the model's average "
           "prediction. Red bars push the prediction up, blue bars pull it down.")

state = shared.url_state()
model = shared.model_switch("exp_model")
a, b = st.columns(2)
with a:
    llm_id = shared.pick_llm("exp_llm", state)
with b:
    gpu_id = shared.pick_gpu("exp_gpu", state)
workload = shared.pick_workload("exp", state)
shared.write_url(state.replace(llm=llm_id, gpu=gpu_id, scenario=workload.scenario, batch=workload.batch_size,
                               qps=workload.request_rate_qps, inp=workload.input_tokens, out=workload.output_tokens,
                               model=shared.model_name(), stack=workload.serving_stack or ""),
                 ("llm", "gpu", "scenario", "batch", "qps", "inp", "out", "model", "stack"))

view = shared.explain_view(llm_id, gpu_id, workload, model)
for target in ("power", "itl"):
    st.markdown(view.targets[target].reading())
if view.notes:
    st.caption(f"Notes on this prediction: {md(view.notes)}.")
left, right = st.columns(2)
for column, target in ((left, "power"), (right, "itl")):
    top = 12 if view.uses_plus(target) else 8
    column.plotly_chart(figures.explanation_waterfall(view.targets[target], top=top), width="stretch")
st.caption(f"Method: {view.method} Average: {view.baseline}")

if view.physics is not None:
    st.subheader("The physics behind this prediction")
    st.markdown(view.physics.itl_reading())
    st.markdown(view.physics.power_reading())
    left, right = st.columns(2)
    left.plotly_chart(figures.itl_breakdown_figure(view.physics), width="stretch")
    right.plotly_chart(figures.power_breakdown_figure(view.physics), width="stretch")

st.subheader("What drives the model over the training runs")
c1, c2 = st.columns([1, 3])
target = c1.segmented_control("Target", ["power", "itl"], default="power", key="exp_target",
                              format_func={"power": "Power", "itl": "ITL"}.get) or "power"
kind = c2.segmented_control("Chart", ["bar", "beeswarm"], default="bar", key="exp_kind",
                            format_func={"bar": "Mean |SHAP| per input", "beeswarm": "Every run (beeswarm)"}.get)
if view.uses_plus(target):
    where = "offline" if view.pool == "offline" else "server"
    importance = shared.plus_importance(model, view.pool)
    if importance is None:
        ask = st.empty()
        with ask.container():
            st.write(f"WattGPU+'s global importance explains 100 {where} training configurations one by one "
                     "(about 15 seconds, then kept for every visitor).")
            clicked = st.button("Compute global importance", key="exp_global", icon=":material/bar_chart:")
        if clicked:
            ask.empty()
            importance = shared.plus_importance(model, view.pool, compute=True)
    if importance is not None:
        imp = importance[target]
        chart = figures.group_importance_beeswarm(imp) if kind == "beeswarm" else figures.group_importance_bars(imp)
        st.plotly_chart(chart, width="stretch")
        st.caption(f"Mean |SHAP| over {imp.n_rows} {where} training configurations, each explained against "
                   f"{imp.n_background} of the background configurations.")
else:
    importance = shared.global_importance("paper")[target]
    chart = figures.importance_beeswarm(importance) if kind == "beeswarm" else figures.importance_bars(importance)
    st.plotly_chart(chart, width="stretch")
