"""A deployment plan as a plain table for people: the rank, readable column names with units, and an aligned
Markdown table for the terminal. The ``plan`` command prints it; the view layer's plan page and Markdown export
build on it (``pages/view/plan.py``), so both name the columns alike.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

LABELS = {
    "rank": "#", "gpu_name": "GPU", "tensor_parallel": "GPUs per replica", "precision": "Precision",
    "replicas": "Replicas", "gpus_total": "GPUs in total", "ttft_s": "TTFT (s)", "itl_ms": "ITL (ms)",
    "energy_per_token_j": "Energy per token (J)", "usd_per_mtok": "$ per M tokens",
    "gco2e_per_mtok": "gCO2e per M tokens", "fits": "Fits", "meets_slo": "Meets targets", "notes": "Notes",
    "usd_per_hour": "$ per hour", "fleet_power_kw": "Fleet GPU power (kW)", "kwh_per_mtok": "kWh per M tokens",
    "power_w_per_gpu": "Power per GPU (W)", "batch_per_replica": "Mean batch per replica",
    "capacity_tok_s_per_replica": "Capacity per replica (tok/s)", "usd_per_gpu_hour": "$ per GPU-hour",
}


def with_rank(plan: pd.DataFrame) -> pd.DataFrame:
    """The plan with a ``rank`` column (1 = best) and ITL in ms."""
    out = plan.copy()
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    out["itl_ms"] = out["itl_s"] * 1000.0
    return out


def cell_text(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        v = float(value)
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
    return str(value)


def plan_text_table(plan: pd.DataFrame) -> str:
    """The key columns as an aligned plain-text (Markdown) table for the terminal."""
    cols = ("rank", "gpu_name", "tensor_parallel", "precision", "replicas", "gpus_total", "ttft_s", "itl_ms",
            "energy_per_token_j", "usd_per_mtok", "gco2e_per_mtok", "fits", "meets_slo")
    return markdown_table(with_rank(plan), cols)


def markdown_table(frame: pd.DataFrame, columns) -> str:
    header = [LABELS.get(c, c) for c in columns]
    rows = [[cell_text(v).replace("|", "/") for v in rec] for rec in frame[list(columns)].itertuples(index=False)]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])
