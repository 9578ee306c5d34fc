"""Compare GPUs: rank every catalog GPU that can hold an LLM by predicted energy per token, ITL, power, throughput."""

import streamlit as st

from pages.ui import shared
from pages.view import catalog, figures, formats, labels, url_state
from pages.view import compare as view_compare
from wattgpu_core.safety import md

shared.sidebar()
st.title("Compare GPUs")
st.caption("Pick an LLM and a workload: every GPU in the catalog that can hold the model is ranked by predicted "
           "energy per token. Predictions update as you change the inputs; the URL keeps the view, so you can share "
           "it by link.")

state = shared.url_state()
models = shared.models()
left, right = st.columns([2, 3])
with left:
    llm_id = shared.pick_llm("cmp_llm", state)
with right:
    workload = shared.pick_workload("cmp", state, stack=False)
shared.seed("cmp_tp", state.tp)
shared.seed("cmp_prec", state.prec)
r1, r2, r3, _ = st.columns([1, 1.5, 1.5, 1])
tp = r1.selectbox("GPUs per replica", labels.TP_CHOICES, key="cmp_tp", help="Tensor parallel: the model is split over "
                  "this many GPUs; power is per GPU, throughput and energy per token are the replica's.")
prec = r2.selectbox("Weight precision", ("", *labels.PRECISION_CHOICES), key="cmp_prec",
                    format_func=lambda p: p or "the LLM's own", help="A GPU that cannot run it is listed below.")
with r3:
    stack = shared.pick_stack("cmp", state, narrow=False)
workload = url_state.Workload(workload.scenario, workload.batch_size, workload.request_rate_qps,
                              workload.input_tokens, workload.output_tokens, int(tp), prec, stack)

options = catalog.filter_options(shared.gpus())
ss = st.session_state  # the filters as set now (widgets below), else as the link carries them
active = catalog.active_filters(state.replace(mem=float(ss.get("cmp_mem", state.mem)),
                                              gen=tuple(ss.get("cmp_gen", state.gen)),
                                              form=tuple(ss.get("cmp_form", state.form)),
                                              tdp=tuple(ss.get("cmp_tdp", state.tdp))), options)
if active:  # a shared link may carry filters: say so where the eye lands, and open the filter section
    st.markdown(f":orange-badge[:material/filter_alt: Filters active: {'; '.join(active)}]")
with st.expander("Filter GPUs" + (f" ({len(active)} active)" if active else ""), icon=":material/filter_alt:",
                 expanded=bool(active)):
    shared.seed("cmp_mem", min(state.mem, options.max_memory_gb))
    shared.seed("cmp_gen", [g for g in state.gen if g in options.generations])
    shared.seed("cmp_form", [f for f in state.form if f in options.form_factors])
    shared.seed("cmp_tdp", state.tdp if state.tdp != (0.0, 0.0) else options.tdp_range)
    c1, c2, c3, c4 = st.columns(4)
    mem = c1.slider("Minimum memory (GB)", 0.0, options.max_memory_gb, step=8.0, key="cmp_mem")
    gen = c2.multiselect("Generation", options.generations, key="cmp_gen", placeholder="All generations")
    form = c3.multiselect("Form factor", options.form_factors, key="cmp_form", placeholder="All form factors")
    tdp = c4.slider("TDP (W)", *options.tdp_range, step=10.0, key="cmp_tdp")

tdp_range = (0.0, 0.0) if tuple(tdp) == options.tdp_range else tuple(float(t) for t in tdp)
state = state.replace(llm=llm_id, scenario=workload.scenario, batch=workload.batch_size,
                      qps=workload.request_rate_qps, inp=workload.input_tokens, out=workload.output_tokens,
                      mem=float(mem), gen=tuple(gen), form=tuple(form), tdp=tdp_range, model=shared.model_name(),
                      tp=int(tp), prec=prec, stack=workload.serving_stack or "")
shared.write_url(state, ("llm", "scenario", "batch", "qps", "inp", "out", "mem", "gen", "form", "tdp", "model", "tp",
                         "prec", "stack"))

candidates = catalog.apply_filters(shared.gpus(), state)
if candidates.empty:
    shared.stop_with("No GPU matches these filters; widen them to see a ranking.")
comparison = shared.compare(llm_id, workload, state)
if comparison.ranked.empty:
    shared.stop_with("No GPU that matches the filters can hold this model; see the list below or widen the filters.")

best = comparison.best
if best is None:
    shared.stop_with("Every GPU is saturated at this request rate (its capacity is below the offered load); lower "
                     "the rate, add GPUs per replica, or plan a fleet on the Plan a deployment page.")
n_saturated = int(comparison.ranked["saturated"].sum())
if n_saturated:
    st.warning(f"{n_saturated} GPU{'s' if n_saturated > 1 else ''} cannot carry {workload.request_rate_qps:g} "
               f"requests/s (saturated: queues grow): ranked last and marked in the table. Capacity (tokens/s) is "
               f"what one replica serves at its largest batch.", icon=":material/warning:")
st.subheader(f"Best energy per token: {md(best['gpu_name'])}")
cols = st.columns(4)
for col, (column, title, help_) in zip(cols, (
        ("energy_per_token_j", "Energy per token", None),
        ("itl_s", labels.latency_title(workload.scenario), labels.ITL_HELP),
        ("power_w", "Mean GPU power", None), ("throughput_tok_s", "Throughput", None)), strict=True):
    col.metric(title, formats.INTERVAL_FORMATS[column](best[column]), help=help_)
    col.caption(formats.best_interval_text(best, column))
st.caption(labels.stack_caption(str(best.get("serving_stack") or ""), models.label, workload.serving_stack))

st.plotly_chart(figures.pareto_figure(comparison.ranked, comparison.measured,
                                     x_title=labels.latency_axis_title(workload.scenario)), width="stretch")
st.caption(view_compare.pareto_caption(comparison))
if shared.model_name() != "paper":  # does the paper's XGB pick the same GPU? If not, say why and whom to believe
    other = shared.compare(llm_id, workload, state, model="paper")
    if len(other.ranked) and other.best["gpu_id"] != best["gpu_id"]:
        note = shared.disagreement(llm_id, workload, (best["gpu_id"], other.best["gpu_id"]))
        if note is not None and note.disagree:
            st.warning(note.text, icon=":material/call_split:")
            st.page_link("pages/side_by_side.py", label="See the two side by side", icon=":material/compare:",
                         query_params={**st.query_params.to_dict(),
                                       "pick": f"{best['gpu_id']}|{other.best['gpu_id']}"})

for note in comparison.notes:
    st.caption(f"Note: {md(note)}.")
table = view_compare.display_table(comparison.ranked)
st.dataframe(table, hide_index=True, placeholder="–", width="stretch", column_config={
    name: st.column_config.NumberColumn(format=fmt) for name, fmt in view_compare.number_formats(table).items()})
st.download_button("Download the comparison (CSV)", view_compare.download_csv(comparison),
                   file_name=view_compare.csv_name(comparison), mime="text/csv", icon=":material/download:")

if len(comparison.cannot_hold):
    n = len(comparison.cannot_hold)
    with st.expander(f"{formats.count(n, 'GPU')} cannot hold this model"):
        st.dataframe(view_compare.display_other(comparison.cannot_hold), hide_index=True, placeholder="–",
                     width="stretch")
if len(comparison.lacking_specs):
    n = len(comparison.lacking_specs)
    with st.expander(f"{formats.count(n, 'NVIDIA GPU')} {'lacks' if n == 1 else 'lack'} specs the models need"):
        st.dataframe(view_compare.display_other(comparison.lacking_specs), hide_index=True, placeholder="–",
                     width="stretch")
