"""Side by side: 2 to 4 named GPUs (or deployments: GPU x GPUs per replica) for one LLM and workload, with intervals,
ratios, how often the ranking holds under the model's own errors, and where the two model sets disagree."""

import streamlit as st

from pages.ui import shared
from pages.view import catalog, figures, labels
from pages.view import side_by_side as view_sbs
from wattgpu_core import side_by_side as sbs

shared.sidebar()
st.title("Side by side")
st.caption("Pick an LLM, a workload and 2 to 4 GPUs (each with the GPUs one replica of the model uses). Each metric "
           "shows its 80% interval; below, how often each ranking holds when the prediction errors the models make "
           "on GPUs they never saw are drawn at random.")

state = shared.url_state()
left, right = st.columns([2, 3])
with left:
    llm_id = shared.pick_llm("sbs_llm", state)
with right:
    workload = shared.pick_workload("sbs", state)

choices = catalog.gpu_choices(shared.gpus())
picked = sbs.parse_picks(state.pick, set(choices)) or [sbs.Deployment(g) for g in ("h200-sxm-141gb", "l40s")
                                                         if g in choices]
shared.seed("sbs_gpus", [d.gpu_id for d in picked])
for d in picked:
    shared.seed(f"sbs_n_{d.gpu_id}", d.num_gpus)
chosen = st.multiselect("GPUs to compare (2 to 4)", list(choices), format_func=choices.get, max_selections=4,
                        key="sbs_gpus", placeholder="Type to search the catalog")
deployments = []
if chosen:
    cols = st.columns(len(chosen))
    for col, gpu_id in zip(cols, chosen, strict=True):
        shared.seed(f"sbs_n_{gpu_id}", 1)
        n = col.number_input(f"GPUs per replica: {figures.short_gpu_name(choices[gpu_id])}", 1, 16, step=1,
                             key=f"sbs_n_{gpu_id}", help="Tensor-parallel degree: GPUs serving one copy of the LLM.")
        deployments.append(sbs.Deployment(gpu_id, int(n)))
picks = tuple(sbs.pick_text(d) for d in deployments)
shared.write_url(state.replace(llm=llm_id, scenario=workload.scenario, batch=workload.batch_size,
                               qps=workload.request_rate_qps, inp=workload.input_tokens, out=workload.output_tokens,
                               model=shared.model_name(), pick=picks, stack=workload.serving_stack or ""),
                 ("llm", "scenario", "batch", "qps", "inp", "out", "model", "pick", "stack"))
if len(deployments) < 2:
    shared.stop_with("Pick at least two GPUs to see them side by side.")

view = shared.side_by_side(llm_id, workload, picks, with_draws=True)
if len(view.table) < len(deployments):
    held = set(view.table["gpu_id"])
    missing = [choices[d.gpu_id] for d in deployments if d.gpu_id not in held]
    st.warning(f"Left out: {', '.join(missing)} cannot hold this LLM with that many GPUs (or lacks specs).")
if len(view.table) == 0:
    st.stop()

st.dataframe(view_sbs.side_by_side_table(view.table), hide_index=True, placeholder="–", width="stretch")
st.plotly_chart(figures.side_by_side_figure(view.table), width="stretch")
st.caption(labels.stack_caption(str(view.table["serving_stack"].iloc[0] or ""), shared.models().label,
                                workload.serving_stack)
           + " Bars: predictions; whiskers: 80% intervals.")

if len(view.table) >= 2:
    st.subheader("Does the ranking hold?")
    energy = view.pairs[view.pairs["metric"] == "energy_per_token_j"]
    for pair in energy.to_dict("records"):
        st.markdown("- " + view_sbs.ranking_statement(pair))
    with st.expander("Every metric and ratio"):
        st.dataframe(view_sbs.side_by_side_pairs(view.pairs), hide_index=True, placeholder="–", width="stretch")
    st.caption(view.method)
    if not view.draws:
        st.info("The statements need the cross-validation of the models on the current data, which is not computed "
                "yet after the upload; open the Cross-validation page once to compute it.")

note = shared.disagreement(llm_id, workload, picks)
if note is not None and note.text:
    st.subheader("WattGPU+ and the paper's XGB")
    if note.disagree:
        st.warning(note.text, icon=":material/call_split:")
    else:
        st.caption(note.text)
    with st.expander("Energy per token from each model"):
        st.dataframe(note.table, hide_index=True, placeholder="–", width="stretch")
for note in sorted({n for n in view.table["notes"].fillna("") if n}):
    st.caption(f"Note: {note}.")
