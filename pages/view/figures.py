"""Plotly figure builders for the dashboard: Pareto plot, SHAP waterfall and importance, parity and error plots.

Each function takes plain DataFrames (columns with units in their names) and returns a
``plotly.graph_objects.Figure`` with titled axes (units included) and a legend; none calls Streamlit. Optional
uncertainty columns (``<col>_lo`` / ``<col>_hi``, as a model set with prediction intervals provides) are drawn as
error bars when present.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from wattgpu_core.explain import feature_label
from wattgpu_core.safety import plot_text

PREDICTED_COLOR = "#1f77b4"
FRONTIER_COLOR = "#d62728"
SCENARIO_COLORS = {"offline": "#1f77b4", "server": "#ff7f0e", "server_low": "#ff7f0e", "server_high": "#9467bd"}
SCENARIO_LABELS = {"offline": "Offline (batch)", "server": "Server", "server_low": "Server, low rate",
                   "server_high": "Server, high rate"}
# plotly_white with every title pinned to the top edge, so the legend (a row above the plot) never runs into it
_TEMPLATE = go.layout.Template(pio.templates["plotly_white"])
_TEMPLATE.layout.title.update(y=0.985, yanchor="top", x=0.01, xanchor="left")
_LAYOUT = dict(template=_TEMPLATE, margin=dict(l=70, r=30, t=95, b=60), font=dict(size=13),
               legend=dict(orientation="h", yanchor="bottom", y=1.01, xanchor="left", x=0))


def _error(frame: pd.DataFrame, column: str, scale: float = 1.0, faint: bool = False) -> dict | None:
    lo, hi = f"{column}_lo", f"{column}_hi"
    if lo in frame.columns and hi in frame.columns and frame[[lo, hi]].notna().any().any():
        return dict(type="data", symmetric=False, array=(frame[hi] - frame[column]).clip(lower=0) * scale,
                    arrayminus=(frame[column] - frame[lo]).clip(lower=0) * scale, thickness=1, width=2 if faint else 3,
                    color="rgba(31,119,180,0.22)" if faint else "rgba(31,119,180,0.45)")
    return None


def pareto_figure(predicted: pd.DataFrame, measured: pd.DataFrame | None = None, title: str = "",
                  x_title: str = "ITL (ms)") -> go.Figure:
    """Energy per token against ITL for each GPU; the Pareto frontier drawn; measured points distinct.

    ``predicted`` needs ``gpu_name``, ``itl_s``, ``energy_per_token_j``, ``power_w``, ``throughput_tok_s`` and a
    boolean ``on_frontier``; ``measured`` (optional) needs ``gpu_name``, ``itl_s``, ``energy_per_token_j``,
    ``n_runs``.
    """
    fig = go.Figure()
    pred = predicted.copy()
    pred["itl_ms"] = pred["itl_s"] * 1000
    hover = ("<b>%{customdata[0]}</b><br>ITL %{x:.3g} ms<br>Energy %{y:.3g} J/token<br>"
             "Power %{customdata[1]:.0f} W<br>Throughput %{customdata[2]:,.0f} tok/s<extra>%{fullData.name}</extra>")
    custom = np.stack([pred["gpu_name"].map(plot_text), pred["power_w"], pred["throughput_tok_s"]], axis=-1) if len(pred) else None
    fig.add_trace(go.Scatter(
        x=pred["itl_ms"], y=pred["energy_per_token_j"], mode="markers", name="Predicted (one GPU each)",
        marker=dict(size=10, color=PREDICTED_COLOR, line=dict(width=1, color="white")), customdata=custom,
        hovertemplate=hover, error_x=_error(pred, "itl_s", 1000, faint=True),
        error_y=_error(pred, "energy_per_token_j", faint=True),
    ))
    front = pred[pred["on_frontier"].astype(bool)].sort_values("itl_ms")
    if len(front):
        fig.add_trace(go.Scatter(
            x=front["itl_ms"], y=front["energy_per_token_j"], mode="lines+markers", name="Pareto frontier",
            line=dict(color=FRONTIER_COLOR, width=2, shape="hv"),
            marker=dict(size=13, color=FRONTIER_COLOR, symbol="circle-open", line=dict(width=2)),
            hoverinfo="skip",
        ))
    if measured is not None and len(measured):
        m = measured.copy()
        m["itl_ms"] = m["itl_s"] * 1000
        source_col = m["source_id"] if "source_id" in m else pd.Series("store", index=m.index)
        for i, (source, part) in enumerate(m.groupby(source_col, sort=True)):
            fig.add_trace(go.Scatter(
                x=part["itl_ms"], y=part["energy_per_token_j"], mode="markers",
                name=f"Measured: {SOURCE_NAMES.get(source, source)}",
                marker=dict(size=12, color=MEASURED_COLORS[i % len(MEASURED_COLORS)],
                            symbol=MEASURED_SYMBOLS[i % len(MEASURED_SYMBOLS)], line=dict(width=2)),
                customdata=np.stack([part["gpu_name"].map(plot_text), part["n_runs"], [SOURCE_NAMES.get(source, source)] * len(part)],
                                    axis=-1),
                hovertemplate="<b>%{customdata[0]}</b>, measured (%{customdata[2]}, mean of %{customdata[1]} runs)"
                              "<br>ITL %{x:.3g} ms<br>Energy %{y:.3g} J/token<extra></extra>",
            ))
    both = pd.concat([pred[["itl_ms", "energy_per_token_j"]],
                      measured.assign(itl_ms=measured["itl_s"] * 1000)[["itl_ms", "energy_per_token_j"]]
                      if measured is not None and len(measured) else None])
    what = "ITL"
    fig.update_layout(**_LAYOUT, title=title or f"Energy per token against {what} (lower left is better)",
                      height=540)
    extent_x = _with_bounds(both["itl_ms"], pred, "itl_s", 1000.0)
    extent_y = _with_bounds(both["energy_per_token_j"], pred, "energy_per_token_j", 1.0)
    log_x = _axis(fig.update_xaxes, x_title, extent_x)
    log_y = _axis(fig.update_yaxes, "Energy per token (J)", extent_y)
    x_range, y_range = _fitted_range(extent_x, log_x), _fitted_range(extent_y, log_y)
    fig.update_xaxes(range=x_range)
    fig.update_yaxes(range=y_range)
    # Labels: the frontier GPUs (red) and every measured point (GPU, source), placed where they overlap neither each
    # other nor a point; crowded frontiers are common (several Hopper and Blackwell parts within a few percent).
    labels = [(x, y, plot_text(short_gpu_name(n)), "#b22222") for x, y, n in
              zip(front["itl_ms"], front["energy_per_token_j"], front["gpu_name"], strict=True)]
    if measured is not None and len(measured):
        labels += [(x, y, plot_text(f"{short_gpu_name(n)} ({SOURCE_NAMES.get(src, src)})"), "#1b7a1b") for x, y, n, src in
                   zip(m["itl_ms"], m["energy_per_token_j"], m["gpu_name"], source_col, strict=True)]
    points = list(zip(both["itl_ms"], both["energy_per_token_j"], strict=True))
    # one layout update with every label (add_annotation validates the whole layout on each call: ~15 ms a label)
    fig.update_layout(annotations=[
        dict(x=math.log10(x) if log_x else x, y=math.log10(y) if log_y else y, text=text, showarrow=True, arrowhead=0,
             arrowwidth=1, arrowcolor=color, ax=ax, ay=ay, font=dict(size=11, color=color),
             bgcolor="rgba(255,255,255,0.85)")
        for (x, y, text, color), (ax, ay) in zip(labels, place_labels(labels, points, log_x, log_y, x_range, y_range),
                                                 strict=True)])
    return fig


SOURCE_NAMES = {"wattcounts": "Watt Counts", "mlenergy_v2": "ML.ENERGY v2", "mlenergy_v1": "ML.ENERGY v1",
                "argonne": "Argonne", "user_upload": "your upload"}
MEASURED_COLORS = ("#2ca02c", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
MEASURED_SYMBOLS = ("diamond-open", "square-open", "triangle-up-open", "star-open", "x-open")


def _with_bounds(values: pd.Series, frame: pd.DataFrame, column: str, scale: float) -> pd.Series:
    """``values`` plus the interval bounds of ``column`` in ``frame`` (the axis must show the whiskers too)."""
    parts = [pd.to_numeric(values, errors="coerce")]
    for suffix in ("_lo", "_hi"):
        if column + suffix in frame:
            parts.append(pd.to_numeric(frame[column + suffix], errors="coerce") * scale)
    out = pd.concat(parts, ignore_index=True)
    return out[np.isfinite(out) & (out > 0)]


def _fitted_range(values: pd.Series, log: bool, pad: float = 0.06) -> list[float] | None:
    """An axis range around ``values`` with a margin (log10 units on a log axis), not stretched to zero."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if not len(v):
        return None
    v = np.log10(v) if log else v
    lo, hi = float(v.min()), float(v.max())
    span = hi - lo or (abs(hi) * 0.1 if not log else 0.1) or 1.0
    return [lo - pad * span, hi + pad * span]


def _fractions(values, log: bool, axis_range=None) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    v = np.log10(np.clip(v, 1e-12, None)) if log else v
    lo, hi = axis_range if axis_range else (np.nanmin(v), np.nanmax(v))
    return (v - lo) / (hi - lo) if hi > lo else np.full(len(v), 0.5)


def place_labels(labels, points, log_x: bool, log_y: bool, x_range=None, y_range=None, width_px: float = 820.0,
                 height_px: float = 380.0) -> list[tuple[float, float]]:
    """Pixel offsets (ax, ay) of a label for each of ``labels`` ((x, y, text, colour) in data units) such that the
    label boxes overlap neither each other nor the ``points`` (as far as candidate positions allow): a greedy
    search over offsets around each point, nearest first, on a plot area of about ``width_px`` x ``height_px``."""
    if not labels:
        return []
    xs = [p[0] for p in points] + [lab[0] for lab in labels]
    ys = [p[1] for p in points] + [lab[1] for lab in labels]
    fx, fy = _fractions(xs, log_x, x_range) * width_px, (1 - _fractions(ys, log_y, y_range)) * height_px
    n = len(points)
    taken = [(px - 6, py - 6, px + 6, py + 6) for px, py in zip(fx[:n], fy[:n], strict=True)]
    candidates = sorted(((dx, dy) for dx in range(-220, 221, 20) for dy in range(-144, 145, 18)
                         if abs(dy) >= 18 or abs(dx) >= 40), key=lambda d: (math.hypot(d[0], d[1] * 1.5), -d[1]))
    out = []
    for i, (_, _, text, _) in enumerate(labels):
        px, py = fx[n + i], fy[n + i]
        w, h = 6.4 * len(text) + 8, 16
        best = candidates[0]
        for dx, dy in candidates:
            cx, cy = px + dx, py + dy
            box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
            if box[0] < -40 or box[2] > width_px + 40 or box[1] < -10 or box[3] > height_px + 10:
                continue
            if all(box[2] < t[0] or box[0] > t[2] or box[3] < t[1] or box[1] > t[3] for t in taken):
                best = (dx, dy)
                break
        cx, cy = px + best[0], py + best[1]
        taken.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
        out.append((float(best[0]), float(best[1])))
    return out


def _axis(update, title: str, values: pd.Series) -> bool:
    """Log scale with 1-2-5 tick labels when the values span more than a factor of 5, else linear; True if log."""
    v = pd.to_numeric(values, errors="coerce")
    v = v[np.isfinite(v) & (v > 0)]
    if len(v) > 1 and v.max() / v.min() > 5:
        ticks = nice_log_ticks(float(v.min()), float(v.max()))
        update(title=title + ", log scale", type="log", tickvals=ticks, ticktext=[_tick_text(t) for t in ticks])
        return True
    update(title=title, rangemode="normal")  # fitted to the data, not stretched to 0
    return False


def short_gpu_name(name: str) -> str:
    """'NVIDIA H100 NVL 94GB' -> 'H100 NVL 94GB' (for labels on crowded plots)."""
    text = re.sub(r"\s*\(.*?\)", "", str(name)).strip() or str(name)
    for prefix in ("NVIDIA GeForce ", "NVIDIA Tesla ", "NVIDIA "):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text


def nice_log_ticks(low: float, high: float) -> list[float]:
    """1-2-5 tick values covering [low, high] (both > 0), for log-scaled axes with readable labels."""
    if not (low > 0 and high > 0):
        return []
    ticks = []
    for exp in range(int(math.floor(math.log10(low))) - 1, int(math.ceil(math.log10(high))) + 1):
        for m in (1, 2, 5):
            v = m * 10.0**exp
            if low / 1.5 <= v <= high * 1.5:
                ticks.append(v)
    if len(ticks) > 9:  # keep powers of ten only
        ticks = [t for t in ticks if abs(math.log10(t) - round(math.log10(t))) < 1e-9] or ticks
    return ticks


def _tick_text(v: float) -> str:
    return f"{v:g}" if 1e-3 <= v < 1e6 else f"{v:.0e}"


def waterfall_figure(
    contributions: pd.DataFrame,
    base_value: float,
    to_display: Callable[[float], float],
    axis_title: str,
    title: str,
    log_axis: bool = False,
    value_format: str = "{:.0f}",
) -> go.Figure:
    """A SHAP waterfall: from the model's base value, each feature's contribution to this prediction.

    ``contributions`` has ``label`` (feature and its value, human readable) and ``shap`` (in the model's output
    space), largest first. ``to_display`` maps a model-output value to display units (e.g. normalised power to W,
    ln ITL to ms) so that each bar spans the prediction before and after that feature; with ``log_axis`` the bars
    are drawn on a log scale (a multiplicative contribution, labelled ×factor). The largest contribution is at the
    top, the base value at the bottom.
    """
    rows = contributions.iloc[::-1].reset_index(drop=True)  # smallest at the bottom, next to the base value
    cumulative = base_value + np.concatenate([[0.0], np.cumsum(rows["shap"].to_numpy())])
    shown = np.array([to_display(v) for v in cumulative])
    pos = np.log10(shown) if log_axis else shown  # bar coordinates (log10 of the value on a log axis)
    start, end = pos[:-1], pos[1:]
    up = end >= start
    labels = rows["label"].tolist()
    if log_axis:
        texts = [f"×{10 ** (e - s):.2f}" for s, e in zip(start, end, strict=True)]
    else:
        texts = [("+" if e >= s else "−") + value_format.format(abs(e - s)) for s, e in zip(start, end, strict=True)]
    fig = go.Figure()
    for mask, color, name in ((up, "#d62728", "raises the prediction"), (~up, "#1f77b4", "lowers the prediction")):
        if not mask.any():
            continue
        idx = np.flatnonzero(mask)
        fig.add_trace(go.Bar(
            y=[labels[i] for i in idx], x=np.abs(end - start)[mask], base=np.minimum(start, end)[mask],
            orientation="h", marker_color=color, name=name, text=[texts[i] for i in idx], textposition="outside",
            cliponaxis=False, hovertemplate="%{y}: %{text}<extra></extra>",
        ))
    prediction_right = pos[-1] >= pos[0]
    for x, text, dash, anchor, y in (
        (pos[0], "average " + value_format.format(shown[0]), "dot", "left" if prediction_right else "right", 1.0),
        (pos[-1], "this prediction " + value_format.format(shown[-1]), "dash",
         "right" if prediction_right else "left", 1.05),
    ):
        fig.add_vline(x=x, line=dict(color="gray" if dash == "dot" else "black", dash=dash, width=1.5))
        fig.add_annotation(x=x, y=y, yref="paper", yanchor="bottom", xanchor=anchor, text=text, showarrow=False,
                           font=dict(size=12))
    fig.update_layout(**_LAYOUT)
    fig.update_layout(title=dict(text=title, y=0.98, yanchor="top"), barmode="overlay",
                      height=200 + 30 * len(rows), margin=dict(l=10, r=60, t=120, b=60),
                      legend=dict(orientation="h", yanchor="bottom", y=1.13, xanchor="left", x=0))
    if log_axis:
        low, high = float(shown.min()), float(shown.max())
        ticks = nice_log_ticks(low, high)
        fig.update_xaxes(title=axis_title, tickvals=np.log10(ticks), ticktext=[_tick_text(t) for t in ticks],
                         range=[math.log10(low) - 0.15, math.log10(high) + 0.25])
    else:
        span = float(shown.max() - shown.min()) or abs(float(shown.max())) or 1.0
        fig.update_xaxes(title=axis_title, range=[float(shown.min()) - 0.08 * span, float(shown.max()) + 0.15 * span])
    # long labels shortened on the axis (two waterfalls side by side on a 1024 px screen); hover shows them whole
    fig.update_yaxes(categoryorder="array", categoryarray=labels, automargin=True, tickvals=labels,
                     ticktext=[text if len(text) <= 30 else text[:29] + "…" for text in labels])
    return fig


def importance_figure(importance: pd.DataFrame, title: str, axis_title: str) -> go.Figure:
    """Global feature importance: mean |SHAP value| per feature (columns ``label``, ``importance``), largest on top."""
    data = importance.sort_values("importance")
    fig = go.Figure(go.Bar(x=data["importance"], y=data["label"], orientation="h", marker_color=PREDICTED_COLOR,
                           name="mean |SHAP value|", hovertemplate="%{y}: %{x:.3g}<extra></extra>"))
    fig.update_layout(**_LAYOUT, title=title, height=120 + 28 * len(data), showlegend=False)
    fig.update_xaxes(title=axis_title)
    fig.update_yaxes(automargin=True)
    return fig


def beeswarm_figure(shap_values: pd.DataFrame, feature_values: pd.DataFrame, labels: dict[str, str],
                    title: str, axis_title: str, max_features: int = 10, seed: int = 0) -> go.Figure:
    """SHAP beeswarm: one dot per training row and feature, x = SHAP value, colour = the feature's value rank."""
    order = shap_values.abs().mean().sort_values(ascending=False).index[:max_features][::-1]
    rng = np.random.default_rng(seed)
    fig = go.Figure()
    for i, feature in enumerate(order):
        values = pd.to_numeric(feature_values[feature], errors="coerce")
        rank = values.rank(pct=True).fillna(0.5)
        fig.add_trace(go.Scattergl(
            x=shap_values[feature], y=i + rng.uniform(-0.3, 0.3, len(values)), mode="markers",
            marker=dict(size=4, color=rank, colorscale="RdBu_r", cmin=0, cmax=1, opacity=0.6,
                        showscale=i == len(order) - 1,
                        colorbar=dict(title="feature value", tickvals=[0, 1], ticktext=["low", "high"])),
            name=labels.get(feature, feature), showlegend=False,
            hovertemplate=labels.get(feature, feature) + ": SHAP %{x:.3g}<extra></extra>",
        ))
    fig.update_layout(**_LAYOUT, title=title, height=140 + 40 * len(order))
    fig.update_xaxes(title=axis_title, zeroline=True, zerolinecolor="gray")
    fig.update_yaxes(tickvals=list(range(len(order))), ticktext=[labels.get(f, f) for f in order], automargin=True)
    return fig


def parity_figure(frame: pd.DataFrame, measured: str, predicted: str, axis_label: str, title: str,
                  log_axes: bool = False, scale: float = 1.0) -> go.Figure:
    """Predicted against measured, coloured by scenario, with the y = x line (perfect prediction)."""
    fig = go.Figure()
    y_true = frame[measured] * scale
    y_pred = frame[predicted] * scale
    for scenario, part in frame.groupby("scenario", sort=True):
        fig.add_trace(go.Scattergl(
            x=part[measured] * scale, y=part[predicted] * scale, mode="markers",
            name=SCENARIO_LABELS.get(scenario, str(scenario)),
            marker=dict(size=5, opacity=0.55, color=SCENARIO_COLORS.get(scenario)),
            hovertemplate="measured %{x:.3g}<br>predicted %{y:.3g}<extra>%{fullData.name}</extra>",
        ))
    finite = pd.concat([y_true, y_pred])
    finite = finite[np.isfinite(finite) & ((finite > 0) if log_axes else True)]
    if len(finite):
        lo, hi = float(finite.min()), float(finite.max())
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="perfect prediction (y = x)",
                                 line=dict(color="black", dash="dash", width=1), hoverinfo="skip"))
    fig.update_layout(**_LAYOUT, title=title, height=460)
    if log_axes and len(finite):
        ticks = nice_log_ticks(lo, hi)
        ticks = [t for t in ticks if str(_tick_text(t)).lstrip("0.").startswith(("1", "2", "5"))]
        axis = dict(type="log", tickvals=ticks, ticktext=[_tick_text(t) for t in ticks])
    else:
        axis = dict(type="linear")
    fig.update_xaxes(title=f"Measured {axis_label}", **axis)
    fig.update_yaxes(title=f"Predicted {axis_label}", **axis)
    return fig


def error_breakdown_figure(breakdown: pd.DataFrame, group_label: str, title: str) -> go.Figure:
    """Median absolute percentage error per group (GPU or LLM), one bar per target (columns ``group``,
    ``target_label``, ``mdape_pct``, ``n_rows``)."""
    fig = go.Figure()
    order = (breakdown.groupby("group")["mdape_pct"].max().sort_values().index.tolist())
    for target, part in breakdown.groupby("target_label", sort=False):
        fig.add_trace(go.Bar(
            y=part["group"], x=part["mdape_pct"], orientation="h", name=target,
            customdata=part["n_rows"], hovertemplate="%{y}: %{x:.1f}% over %{customdata} runs<extra>"
                                                     + str(target) + "</extra>",
        ))
    fig.update_layout(**_LAYOUT, title=title, barmode="group", height=160 + 26 * max(len(order), 1) * 1.3)
    fig.update_xaxes(title="Median absolute percentage error, MdAPE (%)", rangemode="tozero")
    fig.update_yaxes(title=group_label, categoryorder="array", categoryarray=order, automargin=True)
    return fig


def metrics_change_figure(before: pd.DataFrame, after: pd.DataFrame, title: str) -> go.Figure:
    """MdAPE before and after retraining, per (target, split, scenario) (columns ``row_label``, ``mdape_pct``)."""
    fig = go.Figure()
    for frame, name, color in ((before, "before the upload", "#7f7f7f"), (after, "after the upload", "#1f77b4")):
        fig.add_trace(go.Bar(y=frame["row_label"], x=frame["mdape_pct"], orientation="h", name=name,
                             marker_color=color, hovertemplate="%{y}: %{x:.1f}%<extra>" + name + "</extra>"))
    fig.update_layout(**_LAYOUT, title=title, barmode="group", height=160 + 40 * len(before))
    fig.update_xaxes(title="MdAPE (%)", rangemode="tozero")
    fig.update_yaxes(automargin=True)
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Convenience wrappers for the explanation objects of ``explain``
def explanation_waterfall(explanation, top: int = 8) -> go.Figure:
    """Waterfall of an ``explain.TargetExplanation`` in display units (W, or ITL in ms on a log axis)."""
    return waterfall_figure(explanation.contributions(top=top), explanation.base_value, explanation.to_display,
                            explanation.axis_title, explanation.title, log_axis=explanation.log_axis,
                            value_format=explanation.value_format)


_TARGET_NAMES = {"power": "power", "itl": "ITL"}


def importance_bars(importance) -> go.Figure:
    """Bar chart of an ``explain.GlobalImportance``."""
    return importance_figure(importance.importance[["label", "importance"]],
                             f"Global importance for {_TARGET_NAMES.get(importance.target, importance.target)}",
                             importance.axis_title)


def importance_beeswarm(importance) -> go.Figure:
    labels = {f: feature_label(f) for f in importance.shap.columns}
    unit = "fraction of TDP" if importance.target == "power" else "natural log of ITL"
    return beeswarm_figure(importance.shap, importance.values, labels,
                           f"SHAP values for {_TARGET_NAMES.get(importance.target, importance.target)}, one dot per "
                           "training run", f"SHAP value ({unit})")


# ----------------------------------------------------------------------------------------------------------------
# WattGPU+ explanations: the physics of one prediction and grouped global importance
_ITL_PART_COLORS = {"weights_s": "#1f77b4", "compute_limit_s": "#ff7f0e", "kv_cache_s": "#17becf",
                    "attention_compute_s": "#bcbd22", "allreduce_s": "#9467bd", "host_s": "#7f7f7f",
                    "prefill_s": "#8c564b", "correction_s": "#e377c2"}


def _ms_decimals(total_ms: float) -> int:
    """Decimals that show three significant digits of ``total_ms`` (and of parts of it) without exponents."""
    if not (total_ms > 0 and math.isfinite(total_ms)):
        return 2
    return max(0, 2 - int(math.floor(math.log10(total_ms))))


def itl_breakdown_figure(physics) -> go.Figure:
    """Where WattGPU+'s predicted time per output token goes (an ``explain.PlusPhysics``): one horizontal bar per
    physical part in ms, labelled with its share; the title gives their sum and the factor of the corrections
    fitted to measured runs, which make it the prediction."""
    parts = physics.itl_parts()
    parts = parts[parts["part"] != "correction_s"].iloc[::-1]
    physics_ms = float(physics.itl["physics_itl_s"]) * 1000.0
    predicted_ms = physics_ms * float(physics.itl["correction_factor"])
    d = _ms_decimals(physics_ms)
    texts = [f"{ms:.{d}f} ms ({share:.0%})" if share >= 0.005 else f"{ms:.{d}f} ms (<1%)"
             for ms, share in zip(parts["ms"], parts["share"], strict=True)]
    fig = go.Figure(go.Bar(
        x=parts["ms"], y=parts["label"], orientation="h", text=texts, textposition="outside", cliponaxis=False,
        marker_color=[_ITL_PART_COLORS.get(p, PREDICTED_COLOR) for p in parts["part"]], name="ms per output token",
        hovertemplate="%{y}: %{x:.3g} ms per output token<extra></extra>"))
    factor = float(physics.itl["correction_factor"])
    title = f"ITL: {physics_ms:.{d}f} ms per output token"
    if abs(factor - 1) >= 0.005:
        title = (f"ITL: {physics_ms:.{d}f} ms per output token<br><sup>× {factor:.2f} from corrections fitted to "
                 f"measured runs = {predicted_ms:.{d}f} ms predicted</sup>")
    fig.update_layout(**_LAYOUT)
    fig.update_layout(title=title, showlegend=False, height=150 + 34 * len(parts),
                      margin=dict(l=10, r=30, t=70, b=60))
    fig.update_xaxes(title="ITL (ms)", range=[0, float(parts["ms"].max()) * 1.6 or 1.0],
                     tickformat=f".{max(d - 1, 0)}f", nticks=5)
    fig.update_yaxes(automargin=True)
    return fig


_POWER_PART_COLORS = {"idle": "#7f7f7f", "busy": "#d62728", "stack": "#e377c2", "unused": "#e8e8e8"}


def power_breakdown_figure(physics) -> go.Figure:
    """WattGPU+'s predicted power as one stacked bar (an ``explain.PlusPhysics``): serving-idle power, the busy
    share of the headroom (and a serving-stack calibration where there is one), then the unused headroom up to
    the TDP; the bar's coloured part ends at the prediction."""
    parts = physics.power_parts()
    tdp = float(physics.power["tdp_w"])
    power = float(physics.power["power_w"])
    fig = go.Figure()
    for _, r in parts.iterrows():
        fig.add_trace(go.Bar(
            x=[r["w"]], y=["Power"], orientation="h", name=f"{r['short']} {r['w']:,.0f} W",
            marker=dict(color=_POWER_PART_COLORS.get(r["part"], PREDICTED_COLOR),
                        line=dict(color="#bbbbbb", width=1) if r["part"] == "unused" else None),
            text=f"{r['w']:,.0f} W" if r["w"] >= 0.1 * tdp else "", textposition="inside",
            insidetextanchor="middle", hovertemplate=f"{r['label']}: %{{x:,.0f}} W<extra></extra>"))
    fig.update_layout(**_LAYOUT)
    fig.update_layout(barmode="stack", title=f"Power: {power:,.0f} W of the {tdp:,.0f} W TDP", height=290,
                      margin=dict(l=10, r=30, t=60, b=130),
                      legend=dict(orientation="h", yanchor="top", y=-0.5, xanchor="left", x=0, traceorder="normal"))
    fig.update_xaxes(title="Mean GPU power (W)", range=[0, tdp * 1.02])
    fig.update_yaxes(showticklabels=False)
    return fig


def group_importance_bars(importance) -> go.Figure:
    """Bar chart of an ``explain.GroupImportance`` (WattGPU+, mean |SHAP| per input group)."""
    what = _TARGET_NAMES.get(importance.target, importance.target)
    where = "offline" if importance.pool == "offline" else "server"
    return importance_figure(importance.importance[["label", "importance"]],
                             f"WattGPU+ {what}: what matters over {importance.n_rows} {where} training configurations",
                             importance.axis_title)


def group_importance_beeswarm(importance) -> go.Figure:
    """Beeswarm of an ``explain.GroupImportance``: one dot per explained configuration and input group."""
    what = _TARGET_NAMES.get(importance.target, importance.target)
    unit = "W" if importance.target == "power" else "natural log of ITL"
    return beeswarm_figure(importance.shap, importance.values, importance.labels,
                           f"WattGPU+ SHAP values for {what}, one dot per training configuration",
                           f"SHAP value ({unit})")


MODEL_COLORS = {"WattGPU+": "#d62728", "XGB": "#1f77b4", "stack-calibrated": "#ff7f0e"}


def ratio_figure(pairs: pd.DataFrame, quantity: str, unseen: str, seen: str) -> go.Figure:
    """Predicted against measured ratio (unseen GPU / seen GPU) per LLM and batch size, one colour per model, with
    the y = x line; ``quantity`` is "power" or "time" (columns ``<quantity>_ratio_measured`` / ``_predicted``)."""
    what = "mean power" if quantity == "power" else "time per output token"
    fig = go.Figure()
    measured, predicted = f"{quantity}_ratio_measured", f"{quantity}_ratio_predicted"
    for model, part in pairs.groupby("model", sort=False):
        fig.add_trace(go.Scatter(
            x=part[measured], y=part[predicted], mode="markers", name=str(model),
            marker=dict(size=8, opacity=0.8, color=MODEL_COLORS["stack-calibrated"] if "stack" in str(model)
                        else MODEL_COLORS.get(str(model).split(",")[0]), symbol="diamond" if "stack" in str(model)
                        else "circle"),
            customdata=np.stack([part["llm_id"].str.split("/").str[-1], part["batch_size"]], axis=1),
            hovertemplate="%{customdata[0]}, batch %{customdata[1]:.0f}<br>measured %{x:.2f}<br>predicted "
                          "%{y:.2f}<extra>%{fullData.name}</extra>"))
    values = pd.concat([pairs[measured], pairs[predicted]]).dropna()
    if len(values):
        lo, hi = float(values.min()) * 0.95, float(values.max()) * 1.05
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="perfect prediction (y = x)",
                                 line=dict(color="black", dash="dash", width=1), hoverinfo="skip"))
    fig.update_layout(**{**_LAYOUT, "legend": dict(orientation="h", yanchor="top", y=-0.22, xanchor="left", x=0)},
                      title=f"{short_gpu_name(unseen)} / {short_gpu_name(seen)}: {what}", height=460)
    fig.update_xaxes(title=f"Measured ratio of {what} (×)")
    fig.update_yaxes(title=f"Predicted ratio of {what} (×)")
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Side by side
_SIDE_METRICS = (("energy_per_token_j", "Energy per token (J)", 1.0), ("itl_s", "ITL (ms)", 1000.0),
                 ("throughput_tok_s", "Throughput (tokens/s)", 1.0), ("power_w", "Power per GPU (W)", 1.0))
DEPLOYMENT_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd")


def side_by_side_figure(table: pd.DataFrame, title: str = "") -> go.Figure:
    """One panel per metric (energy per token, ITL, throughput, power), one bar per deployment (``label``) with
    its 80% interval as an error bar where the table has ``<metric>_lo`` / ``<metric>_hi``; hover names each."""

    fig = make_subplots(rows=1, cols=len(_SIDE_METRICS), subplot_titles=[t for _, t, _ in _SIDE_METRICS],
                        horizontal_spacing=0.07)
    labels = [short_gpu_name(x.split(" ×")[0]) + (" ×" + x.split(" ×")[1] if " ×" in x else "")
              for x in table["label"]]
    for col, (metric, name, scale) in enumerate(_SIDE_METRICS, start=1):
        err = _error(table, metric, scale)
        if err is not None:
            err.update(color="rgba(0,0,0,0.55)", width=6)
        fig.add_trace(go.Bar(
            x=labels, y=table[metric] * scale, marker_color=list(DEPLOYMENT_COLORS[:len(table)]), error_y=err,
            customdata=np.stack([table["label"], table.get(f"{metric}_lo", table[metric]) * scale,
                                 table.get(f"{metric}_hi", table[metric]) * scale], axis=-1),
            hovertemplate="<b>%{customdata[0]}</b><br>" + name + ": %{y:.3g}<br>80% interval %{customdata[1]:.3g}"
                          " – %{customdata[2]:.3g}<extra></extra>", showlegend=False), row=1, col=col)
        fig.update_yaxes(rangemode="tozero", row=1, col=col)
    fig.update_layout(**{**_LAYOUT, "margin": dict(l=50, r=20, t=80 if title else 50, b=40)}, title=title,
                      height=380, bargap=0.35)
    fig.update_annotations(font_size=13)
    return fig


def error_spread_figure(spread: pd.DataFrame, order: list[str], group_label: str, title: str) -> go.Figure:
    """Absolute percentage error of every run per group (columns ``group``, ``target_label``, ``ape_pct``) as
    horizontal box plots, one per target, groups in ``order``; the x axis is logarithmic where errors span
    decades (said on the axis)."""
    fig = go.Figure()
    colors = {"Power": "#636efa", "ITL": "#ef553b"}  # as the median bars beside it (the template colours)
    for target, part in spread.groupby("target_label", sort=False):
        fig.add_trace(go.Box(
            y=part["group"], x=part["ape_pct"].clip(lower=0.01), orientation="h", name=target, boxpoints="outliers",
            marker=dict(size=3, color=colors.get(target)), line=dict(width=1),
            hovertemplate="%{y}: %{x:.1f}%<extra>" + str(target) + "</extra>"))
    n = max(len(order), 1)
    fig.update_layout(**{**_LAYOUT, "margin": dict(l=70, r=30, t=90, b=60)},
                      title=dict(text=title, y=0.98, yanchor="top"), boxmode="group",
                      height=180 + 26 * n * 1.3)
    fig.update_layout(legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="left", x=0))
    _axis(fig.update_xaxes, "Absolute percentage error per run (%)", spread["ape_pct"].clip(lower=0.01))
    fig.update_yaxes(title=group_label, categoryorder="array", categoryarray=order, automargin=True)
    return fig
