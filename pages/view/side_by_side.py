"""Side by side: the deployments' table with each metric's 80% interval, the pairwise ratios, and the statement of
whether a ranking holds across the models' measured errors (the draws are the core's, ``side_by_side``)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from wattgpu_core.side_by_side import METRICS

from .formats import with_interval


def side_by_side_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per deployment, key columns first: energy per token, ITL, throughput, power, each 'value (80%
    interval)'; then GPUs per replica, whether GPU and LLM are in the training data."""
    def col(metric, scale, fmt):
        lo = table.get(f"{metric}_lo", pd.Series(np.nan, index=table.index))
        hi = table.get(f"{metric}_hi", pd.Series(np.nan, index=table.index))
        return [with_interval(v * scale, a * scale, b * scale, fmt) for v, a, b in
                zip(table[metric], lo, hi, strict=True)]

    return pd.DataFrame({
        "Deployment": table["label"],
        "Energy per token (J), 80% interval": col("energy_per_token_j", 1.0, ".3g"),
        "ITL (ms), 80% interval": col("itl_s", 1000.0, ".3g"),
        "Throughput (tokens/s), 80% interval": col("throughput_tok_s", 1.0, ",.0f"),
        "Power per GPU (W), 80% interval": col("power_w", 1.0, ",.0f"),
        "GPUs per replica": table["num_gpus"].astype(int),
        "GPU in training data": table["gpu_seen"].map({True: "yes", False: "no"}),
    })


_PAIR_METRICS = {"energy_per_token_j": "Energy per token", "itl_s": "ITL", "throughput_tok_s": "Throughput",
                 "power_w": "Power per GPU"}


def side_by_side_pairs(pairs: pd.DataFrame) -> pd.DataFrame:
    """Each pair and metric: the ratio B / A with the middle 80% of the draws, and the share of draws in which A
    is better (lower energy, ITL, power; higher throughput)."""
    return pd.DataFrame({
        "Metric": pairs["metric"].map(_PAIR_METRICS),
        "A": pairs["a"], "B": pairs["b"],
        "B / A": pairs["ratio"].map(lambda v: f"{v:.3g}"),
        "B / A, 80% of draws": [f"{lo:.3g} – {hi:.3g}" if np.isfinite(lo) else "–"
                                for lo, hi in zip(pairs["ratio_lo"], pairs["ratio_hi"], strict=True)],
        "A better in (% of draws)": pairs["share"].map(lambda v: f"{v * 100:.0f}" if np.isfinite(v) else "–"),
    })


def ranking_statement(pair: Mapping) -> str:
    """'H200 uses less energy per token than L40S in 9 of 10 draws (1,812 of 2,000): the ranking holds.'"""
    words, lower, comparative = METRICS[pair["metric"]]
    a, b, share = pair["a"], pair["b"], pair["share"]
    if not np.isfinite(share):
        return f"{a} vs {b}: no uncertainty estimate for {words}."
    if share < 0.5:  # state it from the side that wins more often
        a, b, share = b, a, 1.0 - share
    n = int(pair["n_draws"])
    tenths = int(np.floor(share * 10 + 1e-9))
    verdict = ("the ranking holds across the uncertainty" if share >= 0.9 else
               "likely, but not decisive" if share >= 0.7 else "too close to call")
    count = f"{round(share * n):,} of {n:,}"
    if round(share * n) == n:
        return f"**{a}** {comparative} **{b}** in every one of the {n:,} draws: {verdict}."
    if tenths >= 10:
        return f"**{a}** {comparative} **{b}** in all but {n - round(share * n)} of {n:,} draws: {verdict}."
    return f"**{a}** {comparative} **{b}** in {tenths} of 10 draws ({count}): {verdict}."
