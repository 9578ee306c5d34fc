"""Feature engineering: the WattGPU paper's engineered features as pure functions of public specs.

Every function here is arithmetic on its arguments (floats, numpy arrays or pandas Series alike) with the unit in
its name; nothing reads files or learns from data. :func:`join_specs` joins runs or prediction requests to the
GPU and LLM catalogs, and :func:`add_features` adds every engineered column to such a frame (returning a new frame).
The constants are the Watt Counts set-up the paper's features assume (paper-spec §1 and §3): fp16/bf16 weights,
``gpu_memory_utilization`` 0.9 (0.8 below 20 GB), ``max_model_len`` 1024, at most 256 output tokens.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BYTES_PER_PARAM_16BIT = 2.0
GPU_MEMORY_UTILISATION = 0.9
GPU_MEMORY_UTILISATION_SMALL = 0.8  # Watt Counts' setting below 20 GB of memory
MAX_MODEL_LEN_TOKENS = 1024
PAPER_KV_TOKENS = 512 + 128  # the notebook's kv_cache_size_bytes token count
PAPER_TOKENS_PER_REQUEST = 1000 + 256  # the notebook's max_concurrent_requests divisor
SERVER_LOW_HIGH_THRESHOLD_QPS = 0.2  # the paper's rule: lambda < 0.2 -> server_low, else server_high

# Paper scenario labels, and the scenario each one pools into for the tables.
SCENARIO_POOL = {"offline": "offline", "server_low": "server", "server_high": "server"}

# GPU and LLM spec columns the features need, in the catalogs' names.
GPU_SPEC_COLUMNS = (
    "tdp_w",
    "base_clock_mhz",
    "boost_clock_mhz",
    "transistor_count_m",
    "memory_size_gb",
    "memory_bandwidth_gb_s",
    "memory_type",
    "fp16_tensor_dense_tflops",
    "release_year",
    "idle_power_w",
)
LLM_SPEC_COLUMNS = (
    "total_params_b",
    "active_params_b",
    "is_moe",
    "model_type",
    "num_layers",
    "hidden_size",
    "num_attention_heads",
    "num_key_value_heads",
)


# --------------------------------------------------------------------------------------------------------------
# Elementwise features
def normalised_power(power_w, tdp_w):
    """Mean power as a fraction of TDP (the paper's power target)."""
    return power_w / tdp_w


def boost_ratio(boost_clock_mhz, base_clock_mhz):
    """Boost clock / base clock (the paper's ``boost_percentage``, which is a ratio, not a percentage)."""
    return boost_clock_mhz / base_clock_mhz


def log_params(total_params_b):
    """Natural log of the parameter count in billions (``log_total_b_params``)."""
    return np.log(total_params_b)


def weights_memory_gb(total_params_b, bytes_per_param: float = BYTES_PER_PARAM_16BIT):
    """Weights in GB (1e9 bytes) at ``bytes_per_param`` bytes per parameter: 2 N for 16-bit weights."""
    return bytes_per_param * total_params_b


def bandwidth_latency_s(total_params_b, memory_bandwidth_gb_s):
    """Seconds to stream the 16-bit weights once from memory: 2 N [GB] / BW [GB/s]."""
    return weights_memory_gb(total_params_b) / memory_bandwidth_gb_s


def compute_latency_s(total_params_b, fp16_tensor_dense_tflops):
    """Seconds for 2 N FLOPs (one token's forward pass) at the dense FP16 tensor rate: 2 N 1e9 / (TFLOPS 1e12)."""
    return 2.0 * total_params_b * 1e9 / (fp16_tensor_dense_tflops * 1e12)


def head_dim(hidden_size, num_attention_heads):
    """Per-head dimension as the paper computes it: hidden / attention heads."""
    return hidden_size / num_attention_heads


def kv_cache_bytes_per_token(num_key_value_heads, hidden_size, num_attention_heads, num_layers,
                             bytes_per_value: float = BYTES_PER_PARAM_16BIT):
    """KV-cache bytes one token occupies: 2 (K and V) x kv_heads x head_dim x bytes x layers."""
    return 2.0 * num_key_value_heads * head_dim(hidden_size, num_attention_heads) * bytes_per_value * num_layers


def kv_cache_size_bytes(num_key_value_heads, hidden_size, num_attention_heads, num_layers,
                        tokens: float = PAPER_KV_TOKENS):
    """The paper's ``kv_cache_size_bytes``: KV bytes per token x (512 + 128) tokens."""
    return kv_cache_bytes_per_token(num_key_value_heads, hidden_size, num_attention_heads, num_layers) * tokens


def estimated_free_memory_gb(memory_size_gb, total_params_b):
    """GPU memory left after the 16-bit weights: mem - 2 N (GB)."""
    return memory_size_gb - weights_memory_gb(total_params_b)


def estimated_available_memory_gb(memory_size_gb, total_params_b,
                                  utilisation: float = GPU_MEMORY_UTILISATION):
    """Memory vLLM may use for the KV cache: utilisation x mem - 2 N (GB)."""
    return utilisation * memory_size_gb - weights_memory_gb(total_params_b)


def mb_per_token(num_layers, hidden_size):
    """The paper's ``mb_per_token``: 2 x layers x hidden x 2 bytes / 1024^2 (full multi-head KV, MiB)."""
    return 2.0 * num_layers * hidden_size * 2.0 / 1024**2


def max_concurrent_requests(memory_size_gb, total_params_b, num_layers, hidden_size,
                            tokens_per_request: float = PAPER_TOKENS_PER_REQUEST):
    """The paper's ``max_concurrent_requests``: (available GB x 1024 / MB per token) / (1000 + 256)."""
    avail = estimated_available_memory_gb(memory_size_gb, total_params_b)
    return (avail * 1024.0 / mb_per_token(num_layers, hidden_size)) / tokens_per_request


def gpu_memory_utilisation(memory_size_gb):
    """Watt Counts' ``gpu_memory_utilization``: 0.9, or 0.8 on GPUs with less than 20 GB (the T4)."""
    mem = np.asarray(memory_size_gb, dtype=float)
    return np.where(mem < 20, GPU_MEMORY_UTILISATION_SMALL, GPU_MEMORY_UTILISATION)


def fits_in_memory(memory_size_gb, total_params_b, num_key_value_heads, hidden_size, num_attention_heads,
                   num_layers, min_kv_tokens: float = MAX_MODEL_LEN_TOKENS):
    """Whether 16-bit weights plus the KV cache of one ``min_kv_tokens`` sequence fit in vLLM's memory budget.

    vLLM refuses to start when ``gpu_memory_utilization`` x memory cannot hold the weights and one sequence of
    ``max_model_len`` tokens; this is that necessary condition (activations and CUDA graphs not counted). Weights
    are 2 N x 1e9 bytes; catalog memory sizes are binary (an "80 GB" H100 has 80 x 2^30 bytes). Unknown -> False.
    """
    kv_bytes = kv_cache_bytes_per_token(num_key_value_heads, hidden_size, num_attention_heads, num_layers) \
        * min_kv_tokens
    need = np.asarray(weights_memory_gb(total_params_b) * 1e9 + kv_bytes, dtype=float)
    mem = np.asarray(memory_size_gb, dtype=float)
    with np.errstate(invalid="ignore"):
        return need <= gpu_memory_utilisation(mem) * mem * 2.0**30


def scenario_detail(scenario, request_rate_qps):
    """The paper's scenario label: offline, or server_low (lambda < 0.2 requests/s) / server_high.

    ``scenario`` may already be a detailed label (server_low, server_high), which is kept. A ``server`` row with no
    request rate gets None (the caller must say which).
    """
    scen = pd.Series(np.asarray(scenario, dtype=object))
    rate = pd.Series(np.asarray(request_rate_qps, dtype=float))
    low = rate < SERVER_LOW_HIGH_THRESHOLD_QPS
    out = np.where(scen == "server", np.where(low, "server_low", "server_high"), scen.to_numpy())
    out = np.where((scen == "server") & rate.isna(), None, out)
    return out.astype(object)


# --------------------------------------------------------------------------------------------------------------
# Frames
def with_columns(frame: pd.DataFrame, columns: dict) -> pd.DataFrame:
    """``frame`` (the caller's own: columns it has are replaced in it) with ``columns`` set (name -> array or
    Series on its index; text as object), new ones appended in order: what assigning them one by one gives, in
    one step (one column at a time costs more than the arithmetic on the one-row frames of a single prediction)."""
    new = {c: v for c, v in columns.items() if c not in frame.columns}
    for c, v in columns.items():
        if c not in new:
            frame[c] = v
    if not new:
        return frame
    added = pd.DataFrame(new, index=frame.index)
    added.columns = added.columns.astype(frame.columns.dtype)
    return pd.concat([frame, added], axis=1)


def catalog_values(rows: pd.DataFrame, key: str, table: pd.DataFrame, columns, is_text) -> dict:
    """Each row's values of ``columns`` from the first row of ``table`` with the row's ``key`` (missing where the
    table lacks it): {column: object Series (None for missing) where ``is_text(column)``, else a float array (NaN)}.
    A join by position: no merge, no reordering, the rows' index kept."""
    table = table.drop_duplicates(key)
    pos = pd.Index(table[key].to_numpy(dtype=object)).get_indexer(rows[key].to_numpy(dtype=object))
    found = pos >= 0
    out = {}
    for c in columns:
        text = is_text(c)
        values = table[c].to_numpy(dtype=object) if text else pd.to_numeric(table[c], errors="coerce").to_numpy(
            dtype=float)
        col = np.full(len(rows), None if text else np.nan, dtype=object if text else float)
        col[found] = values[pos[found]]
        if text:
            col[pd.isna(col)] = None
        out[c] = pd.Series(col, index=rows.index, dtype=object) if text else col
    return out


def join_specs(rows: pd.DataFrame, gpus: pd.DataFrame, llms: pd.DataFrame) -> pd.DataFrame:
    """``rows`` (with llm_id, gpu_id) plus the GPU and LLM spec columns the features need (a new frame).

    Spec columns already present in ``rows`` are replaced by the catalogs' values.
    """
    gpu_cols = [c for c in GPU_SPEC_COLUMNS if c in gpus.columns]
    llm_cols = [c for c in LLM_SPEC_COLUMNS if c in llms.columns]
    out = rows.drop(columns=[c for c in gpu_cols + llm_cols if c in rows.columns]).copy()
    text = {"memory_type", "model_type", "is_moe"}.__contains__
    return with_columns(out, {**catalog_values(out, "gpu_id", gpus, gpu_cols, text),
                              **catalog_values(out, "llm_id", llms, llm_cols, text)})


def add_features(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` (spec columns joined) with every engineered feature of the paper added."""
    out = frame.copy()
    n = out["total_params_b"]
    memory_gb, layers, hidden = out["memory_size_gb"], out["num_layers"], out["hidden_size"]
    kv_args = (out["num_key_value_heads"], hidden, out["num_attention_heads"], layers)
    return with_columns(out, {
        "boost_ratio": boost_ratio(out["boost_clock_mhz"], out["base_clock_mhz"]),
        "log_total_params_b": log_params(n.where(n > 0)),
        "bandwidth_latency_s": bandwidth_latency_s(n, out["memory_bandwidth_gb_s"]),
        "compute_latency_s": compute_latency_s(n, out["fp16_tensor_dense_tflops"]),
        "kv_cache_size_bytes": kv_cache_size_bytes(*kv_args),
        "estimated_free_memory_gb": estimated_free_memory_gb(memory_gb, n),
        "estimated_available_memory_gb": estimated_available_memory_gb(memory_gb, n),
        "mb_per_token": mb_per_token(layers, hidden),
        "max_concurrent_requests": max_concurrent_requests(memory_gb, n, layers, hidden),
        "fits_in_memory": fits_in_memory(memory_gb, n, *kv_args),
    })
