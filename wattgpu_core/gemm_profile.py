"""GEMM efficiency against token count, fitted on Vidur's measured operator times.

Vidur (github.com/microsoft/vidur, MIT) profiled every operator of several LLMs on A100, A40 and H100 against the
number of tokens in the batch. We keep the four projection GEMMs of Llama-2-7B at tensor parallel 1
(``data/raw/vidur_profiling/llama2_7b_tp1_gemm_ms.csv``, a row and column subset of Vidur's ``mlp.csv``, values
unchanged) and fit, per GPU, the achieved tensor rate of one layer's GEMMs at ``n`` tokens as

    rate(n) = plateau x peak x n / (n + half_tokens)

where ``peak`` is the datasheet dense FP16 rate, ``plateau`` the share of it large batches reach and ``half_tokens``
the token count at which half of that is reached (below it the GEMM is bound by reading the weights). The pooled
values (medians over the GPUs) are the constants the physics uses for work that is compute-bound: prefill of a
prompt of ``n`` tokens runs at ``plateau x peak x n / (n + half_tokens)``
(:func:`~wattgpu_core.physics.gemm_rate_share`). A test checks that the constants in
:data:`~wattgpu_core.physics.GEMM_PLATEAU_EFFICIENCY` and :data:`~wattgpu_core.physics.GEMM_HALF_TOKENS` are what
this fit gives.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .paths import RAW_DIR

PROFILE_FILE = RAW_DIR / "vidur_profiling" / "llama2_7b_tp1_gemm_ms.csv"
# Vidur's profiling GPUs as catalog ids (its paper: DGX A100 80GB and DGX H100 nodes; one A40 variant exists) and
# their datasheet dense FP16 tensor TFLOPS (the catalog's values).
VIDUR_GPUS = {"a100": ("a100-sxm4-80gb", 312.0), "a40": ("a40", 149.7), "h100": ("h100-sxm5-80gb", 989.4)}
GEMMS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")


def gemm_flops_per_layer(n_tokens, hidden, expanded, heads, kv_heads, gated: bool = True) -> np.ndarray:
    """FLOPs of one layer's four projection GEMMs for ``n_tokens`` tokens: QKV, output, MLP up (and gate), down."""
    head_dim = hidden / heads
    qkv = hidden * (hidden + 2 * kv_heads * head_dim)
    up = hidden * expanded * (2 if gated else 1)
    return 2.0 * np.asarray(n_tokens, float) * (qkv + hidden * hidden + up + expanded * hidden)


def achieved_tflops(profile: pd.DataFrame) -> pd.DataFrame:
    """Per profiled GPU and token count: the GEMMs' time (ms), achieved TFLOPS and share of the datasheet peak."""
    t_ms = sum(profile[f"time_stats.{g}.median"] for g in GEMMS)
    r = profile.iloc[0]
    flops = gemm_flops_per_layer(profile["num_tokens"], float(r["n_embd"]), float(r["n_expanded_embd"]),
                                 float(r["n_head"]), float(r["n_kv_head"]), bool(r["use_gated_mlp"]))
    tflops = flops / (t_ms.to_numpy(float) * 1e-3) / 1e12
    peak = profile["gpu"].map({k: v[1] for k, v in VIDUR_GPUS.items()}).to_numpy(float)
    return pd.DataFrame({"gpu": profile["gpu"], "num_tokens": profile["num_tokens"], "gemm_ms": t_ms,
                         "achieved_tflops": tflops, "peak_share": tflops / peak})


def fit_curve(n_tokens, peak_share) -> tuple[float, float]:
    """(plateau, half_tokens) of ``share = plateau x n / (n + half)`` by least squares on ln share (grid search over
    half_tokens, plateau in closed form for each)."""
    n = np.asarray(n_tokens, float)
    y = np.log(np.asarray(peak_share, float))
    best = (np.inf, 1.0, 1.0)
    for half in np.exp(np.linspace(np.log(1.0), np.log(1e4), 801)):
        base = np.log(n / (n + half))
        log_plateau = float(np.mean(y - base))
        sse = float(np.sum((y - base - log_plateau) ** 2))
        if sse < best[0]:
            best = (sse, float(np.exp(log_plateau)), float(half))
    return best[1], best[2]


def fit_profile(path: Path = PROFILE_FILE) -> dict:
    """{"per_gpu": {gpu: (plateau, half_tokens)}, "plateau": median, "half_tokens": median} from the profile."""
    rates = achieved_tflops(pd.read_csv(path))
    per_gpu = {g: fit_curve(d["num_tokens"], d["peak_share"]) for g, d in rates.groupby("gpu", sort=True)}
    return {"per_gpu": per_gpu, "plateau": float(np.median([v[0] for v in per_gpu.values()])),
            "half_tokens": float(np.median([v[1] for v in per_gpu.values()]))}
