"""Cross-validation: the paper's tables, parity plots and error per GPU and per LLM, computed once and cached."""

import streamlit as st

from pages.ui import shared
from pages.view import cross_validation as view_cv
from pages.view import figures, labels

shared.sidebar()
st.title("Cross-validation")
st.caption("How well do the models predict runs they never saw? **CV** holds out whole LLM-GPU pairs, **LOGO** "
           "holds out one GPU at a time, **LOLO** one LLM at a time; every prediction is out-of-fold. The baselines "
           "(TDP, load-scaled TDP, roofline) need no training. MdAPE is the median absolute percentage error; τ is "
           "Kendall's rank agreement when ranking GPUs (per LLM) or LLMs (per GPU).")

top = st.columns([3, 1])
paper = top[0].toggle("Paper-compatible mode", value=False, key="cv_paper",
                      help="On: the paper's own GPU feature values and its duplicate-TDP quirk, to compare with the "
                           "published tables. Off: this catalog's specs, and every GPU counts.")
rerun = top[1].button("Re-run cross-validation", icon=":material/refresh:", width="stretch")
result = shared.cross_validation(paper, rerun)
st.caption(view_cv.cv_caption(result, shared.gpus()))
st.caption(view_cv.cv_models_caption(result))

with st.expander("What each number means", icon=":material/help:"):
    st.markdown("\n".join(f"- {line}" for line in view_cv.CV_METRIC_HELP))
for target in ("power", "itl"):
    st.subheader(labels.TARGET_TITLES[target])
    st.dataframe(view_cv.cv_table(result.records_frame(), target, view_cv.paper_results() if paper else None),
                 hide_index=True, placeholder="–", width="stretch")

st.subheader("Predicted against measured")
c1, c2 = st.columns(2)
learned = view_cv.learned_models(result)
model = c1.segmented_control("Model", learned, default=learned[0], key="cv_model") or learned[0]
split = c2.segmented_control("Split", list(labels.STRATEGY_LABELS)[:3], default="LOGO", key="cv_split",
                             format_func=labels.STRATEGY_LABELS.get) or "LOGO"
left, right = st.columns(2)
for column, target in ((left, "power"), (right, "itl")):
    spec = view_cv.parity_spec(result, target, split, model=model)
    column.plotly_chart(figures.parity_figure(spec.frame, "y_true", "y_pred", spec.axis_label,
                                              f"{model}: {spec.title}", log_axes=spec.log_axes, scale=spec.scale),
                        width="stretch")

st.subheader("Error per GPU and per LLM")
c1, c2 = st.columns(2)
by = c1.segmented_control("Group by", ["gpu", "llm"], default="gpu", key="cv_by",
                          format_func={"gpu": "GPU", "llm": "LLM"}.get) or "gpu"
scenario = c2.segmented_control("Scenario", ["offline", "server"], default="offline", key="cv_scenario",
                                format_func=labels.SCENARIO_LABELS.get) or "offline"
breakdown = view_cv.breakdown(result, split, by, scenario, shared.gpus(), shared.llms(), model=model)
medians, spread = st.columns(2)
medians.plotly_chart(figures.error_breakdown_figure(breakdown, "GPU" if by == "gpu" else "LLM",
                                                    f"{model}, {split}: median error per {by.upper()}, "
                                                    f"{scenario} runs"), width="stretch")
order = breakdown.groupby("group")["mdape_pct"].max().sort_values().index.tolist()
spread.plotly_chart(figures.error_spread_figure(
    view_cv.error_spread(result, split, by, scenario, shared.gpus(), shared.llms(), model=model), order,
    "GPU" if by == "gpu" else "LLM", "Spread of the error per run (box: middle half, line: median)"),
    width="stretch")

st.subheader("External validation: ML.ENERGY v2, never trained on")
external = shared.external_validation()
st.caption(view_cv.external_caption(external, shared.gpus()))
st.dataframe(view_cv.external_table(external, shared.gpus()), hide_index=True, placeholder="–", width="stretch",
             column_config={"Model": st.column_config.TextColumn(width="medium")})
pairs = view_cv.external_pairs(external)
left, right = st.columns(2)
names = shared.gpus().set_index("gpu_id")["name"]
for column, quantity in ((left, "power"), (right, "time")):
    column.plotly_chart(figures.ratio_figure(pairs, quantity, names[external["unseen_gpu"]],
                                             names[external["seen_gpu"]]), width="stretch")

st.subheader("Other sources and serving stacks, left out one at a time")
st.caption(view_cv.LOSO_CAPTION)
st.dataframe(view_cv.loso_table(shared.models(), shared.summary()["source_names"]), hide_index=True, placeholder="–",
             width="stretch")
