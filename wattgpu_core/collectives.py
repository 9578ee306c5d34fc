"""Tensor-parallel communication measured: the all-reduce time model of :mod:`~wattgpu_core.physics` fitted to
vidur's NCCL all-reduce profiles (``data/raw/vidur_profiling``; DGX A100 and DGX H100, 2 to 8 GPUs of one node).

The physics keeps the fitted constants (``ALLREDUCE_LATENCY_S``, ``ALLREDUCE_BANDWIDTH_EFFICIENCY``) so that
predicting reads no file; :func:`fit_allreduce` re-fits them from the raw profiles (a test checks they agree) and
reports the fit's error per GPU node and worker count.

Data: github.com/microsoft/vidur @ 7d47513363ec447a741ac5e47241580b47724fbf, ``data/profiling/network/{a100_dgx,
h100_dgx}/all_reduce.csv``, copied verbatim from the shared measured data (its PROVENANCE.md, section 7) with the
repository's MIT ``LICENSE``: NCCL all-reduce time in milliseconds (median of repeats) against the message ``size``
(elements, FP16) and ``num_workers``; rows whose workers span nodes (``devices_per_node`` < workers) are not used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .paths import RAW_DIR

VIDUR_NETWORK_DIR = RAW_DIR / "vidur_profiling" / "network"
# Per-direction NVLink bandwidth of each profiled node's GPUs (the catalog's interconnect: A100 SXM4 NVLink 3,
# H100 SXM5 NVLink 4), GB/s.
NODE_LINK_GB_S = {"a100_dgx": 300.0, "h100_dgx": 450.0}
FP16_BYTES = 2.0


def allreduce_profiles(network_dir: Path = VIDUR_NETWORK_DIR) -> pd.DataFrame:
    """The single-node all-reduce rows (rank 0) of every profiled node: node, num_workers, message_bytes,
    link_gb_s, time_s (median)."""
    parts = []
    for node, link in NODE_LINK_GB_S.items():
        raw = pd.read_csv(Path(network_dir) / node / "all_reduce.csv")
        one = raw[(raw["rank"] == 0) & (raw["num_workers"] == raw["devices_per_node"]) & (raw["num_workers"] > 1)]
        parts.append(pd.DataFrame({
            "node": node, "num_workers": one["num_workers"].to_numpy(int),
            "message_bytes": one["size"].to_numpy(float) * FP16_BYTES, "link_gb_s": link,
            "time_s": one["time_stats.all_reduce.median"].to_numpy(float) / 1e3}))
    return pd.concat(parts, ignore_index=True)


def fit_allreduce(profiles: pd.DataFrame | None = None) -> dict:
    """Fit latency (s) and bandwidth efficiency (x the per-direction link bandwidth) of the ring all-reduce model
    (robust least squares on ln time). Returns {"latency_s", "bandwidth_efficiency", "mdape_pct", "by_group":
    [{node, num_workers, mdape_pct, median_error_pct, n}]}."""
    from scipy.optimize import least_squares  # lazy: scipy loads only when a model is fitted, not when the app predicts

    d = allreduce_profiles() if profiles is None else profiles
    n = d["num_workers"].to_numpy(float)
    ring = 2.0 * (n - 1.0) / n * d["message_bytes"].to_numpy(float)
    link = d["link_gb_s"].to_numpy(float) * 1e9
    y = d["time_s"].to_numpy(float)

    def resid(theta):
        lat, eff = np.exp(theta)
        return np.log((lat + ring / (eff * link)) / y)

    fit = least_squares(resid, [np.log(3e-5), 0.0], loss="soft_l1", f_scale=0.1)
    err = np.expm1(resid(fit.x))
    groups = []
    for (node, workers), idx in d.groupby(["node", "num_workers"]).groups.items():
        e = err[np.asarray(idx)]
        groups.append({"node": node, "num_workers": int(workers), "mdape_pct": float(100 * np.median(np.abs(e))),
                       "median_error_pct": float(100 * np.median(e)), "n": int(len(e))})
    lat, eff = np.exp(fit.x)
    return {"latency_s": float(lat), "bandwidth_efficiency": float(eff),
            "mdape_pct": float(100 * np.median(np.abs(err))), "by_group": groups}
