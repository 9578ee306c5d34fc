"""Plotly figures of a deployment plan: cost and energy per token against latency, with the Pareto frontier.

Each function takes the plan frame of :func:`wattgpu_core.deploy.plan_deployments` and returns a
``plotly.graph_objects.Figure`` (axis titles with units, legend beside the plot, no Streamlit). Only options that
fit and meet the targets are drawn; one trace per precision, the marker size grows with GPUs per replica.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .compare import pareto_mask
from .figures import FRONTIER_COLOR

PRECISION_COLORS = {"bf16": "#1f77b4", "fp16": "#17becf", "fp8": "#ff7f0e", "int8": "#9467bd", "int4": "#2ca02c",
                    "fp4": "#d62728", "mxfp4": "#8c564b"}
_LAYOUT = dict(template="plotly_white", margin=dict(l=70, r=30, t=30, b=60), font=dict(size=13),
               legend=dict(title="Precision", orientation="v", x=1.02, xanchor="left", y=1, yanchor="top"))
LATENCY_TITLES = {"itl_s": "ITL at the operating load (ms)", "ttft_s": "TTFT at the operating load (s)"}


def _latency(frame: pd.DataFrame, latency: str) -> pd.Series:
    return frame[latency] * (1000.0 if latency == "itl_s" else 1.0)


def plan_pareto_figure(plan: pd.DataFrame, y: str, y_title: str, latency: str = "itl_s",
                       chosen: int | None = None) -> go.Figure:
    """``y`` (e.g. ``usd_per_mtok`` or ``energy_per_token_j``) against the latency of every option that fits and
    meets the targets; the red line joins the options no other beats on both. ``chosen`` (a row label of ``plan``)
    is ringed."""
    ok = plan[plan["fits"] & plan["meets_slo"] & plan[y].notna() & plan[latency].notna()].copy()
    ok["x"] = _latency(ok, latency)
    fig = go.Figure()
    hover = ("<b>%{customdata[0]}</b> ×%{customdata[1]} %{customdata[2]}<br>%{customdata[3]:.0f} replicas, "
             "%{customdata[4]:.0f} GPUs<br>x %{x:.3g}<br>y %{y:.3g}<extra></extra>")
    for prec, g in ok.groupby("precision", sort=False):
        custom = np.stack([g["gpu_name"], g["tensor_parallel"], g["precision"], g["replicas"], g["gpus_total"]],
                          axis=-1)
        fig.add_trace(go.Scatter(
            x=g["x"], y=g[y], mode="markers", name=str(prec), customdata=custom, hovertemplate=hover,
            marker=dict(size=7 + 3 * np.log2(g["tensor_parallel"].to_numpy(float)),
                        color=PRECISION_COLORS.get(str(prec), "#7f7f7f"), line=dict(width=1, color="white"))))
    if len(ok):
        front = ok[pareto_mask(ok, "x", y)].sort_values("x")
        fig.add_trace(go.Scatter(x=front["x"], y=front[y], mode="lines", name="Pareto frontier",
                                 line=dict(color=FRONTIER_COLOR, width=1.5, dash="dot"), hoverinfo="skip"))
    if chosen is not None and chosen in ok.index:
        row = ok.loc[chosen]
        fig.add_trace(go.Scatter(x=[row["x"]], y=[row[y]], mode="markers", name="Chosen option", hoverinfo="skip",
                                 marker=dict(size=18, color="rgba(0,0,0,0)", line=dict(width=2, color="black"))))
    fig.update_layout(**_LAYOUT, height=440)
    fig.update_xaxes(title=LATENCY_TITLES[latency])
    fig.update_yaxes(title=y_title)
    if len(ok) > 1 and ok[y].max() / max(ok[y].min(), 1e-12) > 20:
        fig.update_yaxes(type="log", dtick="D2")  # minor labels 2 and 5 only: every digit crowds the axis
    return fig


def cost_latency_figure(plan: pd.DataFrame, latency: str = "itl_s", chosen: int | None = None) -> go.Figure:
    return plan_pareto_figure(plan, "usd_per_mtok", "Cost ($ per M output tokens)", latency, chosen)


def energy_latency_figure(plan: pd.DataFrame, latency: str = "itl_s", chosen: int | None = None) -> go.Figure:
    return plan_pareto_figure(plan, "energy_per_token_j", "Energy per output token (J)", latency,
                              chosen)
