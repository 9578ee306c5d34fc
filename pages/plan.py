"""Plan a deployment: rank GPU x GPUs per replica x precision for one LLM and traffic by cost, with fleet size."""

import pandas as pd
import streamlit as st

from pages.ui import shared
from pages.view import labels, plan_figures
from pages.view import plan as pv
from wattgpu_core.deploy import DEFAULT_PRECISIONS, HEADROOM, TENSOR_PARALLEL, TRAFFIC_PRESETS
from wattgpu_core.planning_data import DEFAULT_CARBON_REGION
from wattgpu_core.safety import csv_bytes

shared.sidebar()
st.title("Plan a deployment")
st.caption("Which GPUs, how many, and at what precision should serve an LLM under your traffic and latency targets, "
           "and what will it cost and emit? Every option (GPU type × GPUs per replica × weight precision) is "
           "predicted; options that do not fit or miss the targets stay in the table, below those that meet them. "
           "The URL keeps the inputs, so you can share the plan by link.")

state = pv.PlanState.from_query(st.query_params.to_dict())
defaults = shared.planning_defaults()
shared.models()

# -- traffic and targets ------------------------------------------------------------------------------------------
PRESETS = {**{k: v["label"] for k, v in TRAFFIC_PRESETS.items()}, "custom": "Custom"}
shared.seed("plan_preset", state.preset)
shared.seed("plan_rate", state.rate)
shared.seed("plan_inp", state.inp)
shared.seed("plan_out", state.out)
shared.seed("plan_ttft", state.ttft)
shared.seed("plan_itl", state.itl)


def apply_preset():
    preset = TRAFFIC_PRESETS.get(st.session_state["plan_preset"])
    if preset:
        st.session_state["plan_inp"] = int(preset["input_tokens"])
        st.session_state["plan_out"] = int(preset["output_tokens"])
        st.session_state["plan_ttft"] = float(preset["ttft_slo_s"] or 0.0)
        st.session_state["plan_itl"] = float((preset["itl_slo_s"] or 0.0) * 1000)


llm_id = shared.pick_llm("plan_llm", state)
st.segmented_control("Traffic", list(PRESETS), format_func=PRESETS.get, key="plan_preset", on_change=apply_preset,
                     help="; ".join(f"{v['label']}: {v['input_tokens']:,} prompt and {v['output_tokens']:,} output "
                                    f"tokens" for v in TRAFFIC_PRESETS.values()))
c1, c2, c3, c4, c5 = st.columns(5)
rate = c1.number_input("Arrival rate (requests/s)", 0.001, 100000.0, step=0.5, format="%.3g", key="plan_rate")
inp = c2.number_input("Prompt tokens per request", 1, 1048576, step=100, key="plan_inp")
out = c3.number_input("Output tokens per request", 1, 1048576, step=50, key="plan_out")
ttft = c4.number_input("TTFT target (s; 0 = none)", 0.0, 3600.0, step=0.5, format="%.3g", key="plan_ttft",
                       help="Mean time to first token (vLLM's TTFT): prefill plus the wait at the operating load.")
itl = c5.number_input("ITL target (ms; 0 = none)", 0.0, 60000.0, step=5.0, format="%.4g", key="plan_itl",
                      help="Mean time between output tokens, TTFT excluded (vLLM's ITL / TPOT).")

d1, d2, d3 = st.columns([1, 2, 1.2])
shared.seed("plan_tp", state.tp)
shared.seed("plan_prec", [p for p in state.prec if p in DEFAULT_PRECISIONS] or list(DEFAULT_PRECISIONS))
max_tp = d1.selectbox("Largest GPUs per replica", TENSOR_PARALLEL, key="plan_tp",
                      help="Tensor-parallel degrees 1, 2, 4 and 8 up to this one are tried.")
precisions = d2.multiselect("Weight precisions", DEFAULT_PRECISIONS, key="plan_prec",
                            help="A precision a GPU cannot run is listed with the reason.")
if not precisions:
    shared.stop_with("Pick at least one weight precision.")
with d3:
    stack = shared.pick_stack("plan", state, narrow=False)

# -- cost and carbon assumptions ----------------------------------------------------------------------------------
with st.expander("Cost and carbon assumptions (defaults with their sources; change any)", icon=":material/payments:"):
    a1, a2, a3 = st.columns(3)
    shared.seed("plan_kwh", state.kwh if state.kwh >= 0 else defaults.usd_per_kwh.value)
    shared.seed("plan_pue", state.pue if state.pue >= 1 else defaults.pue.value)
    usd_per_kwh = a1.number_input("Electricity ($/kWh)", 0.0, 10.0, step=0.01, format="%.4g", key="plan_kwh")
    a1.caption(f"Default {defaults.usd_per_kwh.value:g} $/kWh: {defaults.usd_per_kwh.cite()}")
    pue = a2.number_input("PUE", 1.0, 5.0, step=0.01, format="%.3g", key="plan_pue")
    a2.caption(f"Default {defaults.pue.value:g}: {defaults.pue.cite()}")
    regions = defaults.regions()
    shared.seed("plan_region", state.region if state.region in regions else DEFAULT_CARBON_REGION)
    shared.seed("plan_co2_own", state.co2 >= 0)
    shared.seed("plan_co2", state.co2 if state.co2 >= 0 else defaults.gco2e_per_kwh.value)
    own_co2 = a3.toggle("Enter gCO2e/kWh instead of a region", key="plan_co2_own")
    if own_co2:
        co2 = a3.number_input("Grid carbon intensity (gCO2e/kWh)", 0.0, 2000.0, step=10.0, key="plan_co2")
        region = None
    else:
        region = a3.selectbox("Grid region", regions, key="plan_region")
        co2 = None
        a3.caption(defaults.carbon_for(region).cite())
    st.caption(f"Cloud list prices already include the provider's electricity; the $/kWh term adds it again, as "
               f"for GPUs you run yourself. Set $/kWh to 0 to count rental alone. Each replica is loaded to at "
               f"most {HEADROOM:.0%} of its capacity.")
    overrides = state.price_overrides()
    edited = st.data_editor(pv.price_table(defaults, shared.gpus(), overrides), key="plan_prices",
                            hide_index=True, width="stretch", disabled=["gpu_id", "GPU", "Source"],
                            column_config={"gpu_id": None, "$ per GPU-hour": st.column_config.NumberColumn(
                                min_value=0.0, format="%.3f", help="Empty: no price, so no cost for that GPU")})
    prices = pv.edited_prices(edited, defaults)

state = state.replace(llm=llm_id, preset=st.session_state["plan_preset"] or "custom", rate=float(rate), inp=int(inp),
                      out=int(out), ttft=float(ttft), itl=float(itl), tp=int(max_tp), prec=tuple(precisions),
                      kwh=-1.0 if abs(usd_per_kwh - defaults.usd_per_kwh.value) < 1e-12 else float(usd_per_kwh),
                      pue=-1.0 if abs(pue - defaults.pue.value) < 1e-12 else float(pue),
                      region="" if region in (None, DEFAULT_CARBON_REGION) else region, co2=float(co2) if co2 is not None else -1.0, prices=prices,
                      stack=stack or "")
wanted = state.to_query()
if wanted != st.query_params.to_dict():
    st.query_params.from_dict(wanted)

traffic = state.traffic
plan, costs = shared.plan(llm_id, traffic, state.tp, tuple(precisions), tuple(state.price_overrides().items()),
                          None if state.kwh < 0 else state.kwh, None if state.pue < 0 else state.pue,
                          region, co2, stack)

# -- the ranking ----------------------------------------------------------------------------------------------------
good = plan[plan["fits"] & plan["meets_slo"]]
st.caption(f"{llm_id}: {traffic.describe()}. {len(plan)} options, {len(good)} fit and meet the targets. "
           + pv.ITL_HELP)
st.caption(labels.stack_caption(stack if stack and stack != labels.OTHER_STACK else "", shared.models().label, stack))
if good.empty:
    st.warning("No option fits and meets these targets; relax the targets or allow more GPUs per replica. The "
               "table below says why each option fails.")
else:
    best = good.iloc[0]
    st.subheader(f"Cheapest that meets the targets: {pv.option_label(best)}, {best['replicas']:.0f} "
                 f"replica{'s' if best['replicas'] != 1 else ''}")
    m = st.columns(5)
    m[0].metric("GPUs in total", f"{best['gpus_total']:.0f}")
    m[1].metric("$ / M output tokens", "–" if pd.isna(best["usd_per_mtok"]) else f"${best['usd_per_mtok']:.3g}")
    m[2].metric("TTFT", "–" if pd.isna(best["ttft_s"]) else f"{best['ttft_s']:.2g} s")
    m[3].metric("ITL", f"{best['itl_s'] * 1000:.3g} ms")
    m[4].metric("gCO2e / M tokens", f"{best['gco2e_per_mtok']:,.0f}")

table = pv.display_table(plan)
st.dataframe(table, hide_index=True, width="stretch", height=420, placeholder="–")
e1, e2 = st.columns(2)
name = f"wattgpu-plan-{llm_id.replace('/', '_')}-{traffic.rate_qps:g}qps"
e1.download_button("Download every option (CSV)", csv_bytes(plan), file_name=f"{name}.csv", mime="text/csv",
                   icon=":material/download:")
e2.download_button("Download the plan (Markdown)", pv.markdown_export(plan, llm_id, traffic, costs.sources).encode(),
                   file_name=f"{name}.md", mime="text/markdown", icon=":material/description:")

if not good.empty:
    keys = {pv.option_key(r): i for i, r in good.head(30).iterrows()}
    if st.session_state.get("plan_chosen") not in keys:
        st.session_state["plan_chosen"] = next(iter(keys))
    picked = st.selectbox("Option to break down", list(keys), key="plan_chosen",
                          format_func=lambda k: pv.option_label(plan.loc[keys[k]]))
    chosen = keys[picked]
    st.plotly_chart(plan_figures.cost_latency_figure(plan, chosen=chosen), width="stretch")
    st.plotly_chart(plan_figures.energy_latency_figure(plan, chosen=chosen), width="stretch")
    st.caption("Each point is an option that fits and meets the targets, at its operating load (arrival rate / "
               "replicas); larger markers use more GPUs per replica. ITL: mean time between output tokens, TTFT "
               "excluded; energy: GPUs only, no PUE. The dotted line joins the options no other beats on both "
               "axes.")
    st.subheader(f"Breakdown: {pv.option_label(plan.loc[chosen])}")
    parts = pv.breakdown(plan.loc[chosen], traffic, costs)
    st.dataframe(parts, hide_index=True, width="stretch", height=36 * (len(parts) + 1) + 4)
    st.caption(f"Price: {plan.loc[chosen, 'price_source']}. Notes: {plan.loc[chosen, 'notes'] or 'none'}.")
