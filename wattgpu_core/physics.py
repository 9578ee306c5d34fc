"""Physics of LLM decoding: bytes and FLOPs per step, roofline step time, effective batch and server load.

Pure functions of public specs and the workload (floats, numpy arrays or pandas Series alike), units in the names,
nothing learned and nothing read from files. The WattGPU+ models (``plus_itl``, ``plus_power``, ``plus``) build
their physically grounded targets and features from these, so predictions follow the physics where the data end:

* one decode step of a batch of ``B`` sequences reads every weight the batch touches once (dense: all of them; MoE:
  the shared part plus the experts the batch routes to) and the KV cache of every sequence, and does ``2 N_active``
  FLOPs per sequence plus attention; its time is the larger of memory time and compute time (roofline), scaled by
  efficiencies, plus a fixed per-step overhead and a per-sequence overhead (scheduling, sampling);
* offline, vLLM runs at most ``max_num_seqs`` sequences at once, fewer if the KV cache cannot hold them; the
  effective batch is output tokens / decode steps, with the drain at the end of the run;
* a server at request rate lambda is busy a fraction lambda x latency of the time and the mean running batch a
  request sees is 1 + lambda x latency (Poisson arrivals see time averages);
* tensor parallelism splits weights, KV cache and FLOPs over the GPUs and adds two all-reduces per layer.

Byte counts use 1e9 bytes per GB for weights (parameters in billions x bytes per parameter) and binary GiB for GPU
memory sizes (an "80 GB" H100 has 80 x 2^30 bytes), as the catalogs state them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType

import numpy as np
import pandas as pd

BYTES_16BIT = 2.0
GIB = 2.0**30
# vLLM's defaults (EngineArgs.get_batch_defaults): 1024 sequences on GPUs with >= 70 GiB that are not A100s.
VLLM_MAX_NUM_SEQS_SMALL = 256.0
VLLM_MAX_NUM_SEQS_LARGE = 1024.0
VLLM_LARGE_GPU_GIB = 70.0
VLLM_BLOCK_TOKENS = 16.0  # paged-attention block size: a sequence holds whole blocks
# Memory vLLM keeps outside weights and KV cache (activations of the profiling run, CUDA graphs, allocator slack).
VLLM_RESERVED_GB = 1.0
# Watt Counts' set-up (paper-spec section 1)
WATTCOUNTS_OFFLINE_REQUESTS = 1000.0
WATTCOUNTS_SUBMIT_S = 300.0  # seconds of Poisson arrivals in one Watt Counts server run
WATTCOUNTS_RATE_QPS = MappingProxyType({"server_low": 0.017, "server_high": 0.33})  # the paper's two server loads
# Serving stack = framework and major.minor version ("vLLM 0.14"); the stack the models are trained on.
DEFAULT_STACK = "vLLM 0.14"
NVLINK_GB_S = 450.0  # per-direction NVLink bandwidth used for tensor-parallel all-reduce when none is given


# GEMM efficiency against tokens, fitted on Vidur's measured GEMM times (A100, A40, H100; ``gemm_profile``): a large
# batch of tokens reaches this share of the datasheet tensor rate, and half of it at this many tokens.
GEMM_PLATEAU_EFFICIENCY = 0.81
GEMM_HALF_TOKENS = 186.0
# How memory and compute time combine in one GEMM: (memory^p + compute^p)^(1/p). Vidur's measured GEMM times sit
# between the sum (p = 1) and the max (p = inf) of the two; p = 1.5 fits them best on A100 and A40 (H100: ~1).
GEMM_ROOFLINE_P = 1.5
VLLM_MAX_BATCHED_TOKENS = 8192.0  # prefill tokens vLLM batches in one step (chunked prefill's default budget)


def _f(x) -> np.ndarray:
    return np.asarray(x, dtype=float)


def gemm_rate_share(tokens, half_tokens: float = GEMM_HALF_TOKENS) -> np.ndarray:
    """Share of the large-batch GEMM rate reached with ``tokens`` tokens in flight: n / (n + half_tokens)."""
    n = np.maximum(_f(tokens), 0.0)
    return n / (n + half_tokens)


def gemm_efficiency(tokens_in_step) -> np.ndarray:
    """Share of the datasheet tensor rate the matrix multiplies reach when ``tokens_in_step`` tokens share a step,
    as Vidur's measured GEMM times give it (no free parameter): plateau x n / (n + half), at least 0.1% of the
    plateau. The compute efficiency of a prefill where nothing else is calibrated
    (:meth:`DecodeWorkload.prefill_time_s`)."""
    return GEMM_PLATEAU_EFFICIENCY * np.maximum(gemm_rate_share(tokens_in_step), 1e-3)


def per_unique(fn, *columns, dtype=float) -> np.ndarray:
    """``fn`` applied once per distinct tuple of values across ``columns`` (same length) and spread back to every
    row: the same result as ``[fn(*vals) for vals in zip(*columns)]``, fast when values repeat (explanations
    predict thousands of rows that share a few GPUs, LLMs and stacks). Missing values (None, NaN) count as one:
    ``fn`` sees NaN for one column, the first such row's value for several."""
    arrays = [np.asarray(c, dtype=object) for c in columns]
    codes, uniques = pd.factorize(arrays[0], use_na_sentinel=False)
    if len(arrays) == 1:
        values = [fn(u) for u in uniques]
    else:  # each column's codes combined, then fn once per distinct combination (its first row's values)
        for a in arrays[1:]:
            more, kinds = pd.factorize(a, use_na_sentinel=False)
            codes = pd.factorize(codes.astype(np.int64) * len(kinds) + more)[0]  # compact: never overflows
        _, first, codes = np.unique(codes, return_index=True, return_inverse=True)
        values = [fn(*(a[i] for a in arrays)) for i in first]
    return np.asarray(values, dtype=dtype)[codes.reshape(-1)] if len(values) else np.asarray([], dtype=dtype)


# --------------------------------------------------------------------------------------------------------------
# Model sizes
def head_dim(hidden_size, num_attention_heads, head_dim_given=None) -> np.ndarray:
    """Per-head dimension: the config's ``head_dim`` where given, else hidden / attention heads."""
    derived = _f(hidden_size) / _f(num_attention_heads)
    if head_dim_given is None:
        return derived
    given = _f(head_dim_given)
    return np.where(np.isfinite(given) & (given > 0), given, derived)


def kv_bytes_per_token(num_layers, num_key_value_heads, head_dim_, bytes_per_value: float = BYTES_16BIT):
    """KV-cache bytes one token occupies: 2 (K and V) x layers x KV heads x head dim x bytes."""
    return 2.0 * _f(num_layers) * _f(num_key_value_heads) * _f(head_dim_) * bytes_per_value


# Multi-head latent attention (MLA: DeepSeek-V2 / V3 / R1, Kimi K2): the KV cache holds one compressed latent per
# token and layer, kv_lora_rank + qk_rope_head_dim values shared by every head (config.json: kv_lora_rank 512,
# qk_rope_head_dim 64 for all of these, as the catalog notes record), instead of K and V per KV head. vLLM keeps the
# whole latent on every tensor-parallel GPU (it cannot be split by head).
MLA_LATENT_DIMS = {"deepseek_v2": (512.0, 64.0), "deepseek_v3": (512.0, 64.0), "kimi_k2": (512.0, 64.0)}


def mla_dims(model_type) -> tuple[np.ndarray, np.ndarray]:
    """(kv_lora_rank, qk_rope_head_dim) of each row's model type; NaN for models without MLA."""
    types = np.asarray(model_type, dtype=object).ravel()
    dims = np.asarray([MLA_LATENT_DIMS.get(t, (np.nan, np.nan)) if isinstance(t, str) else (np.nan, np.nan)
                       for t in types], dtype=float).reshape(-1, 2)
    return dims[:, 0], dims[:, 1]


def mla_kv_bytes_per_token(num_layers, kv_lora_rank, qk_rope_head_dim, bytes_per_value: float = BYTES_16BIT):
    """KV-cache bytes one token occupies under MLA: layers x (latent rank + rope dims) x bytes."""
    return _f(num_layers) * (_f(kv_lora_rank) + _f(qk_rope_head_dim)) * bytes_per_value


def mla_attention_head_dim(kv_lora_rank, qk_rope_head_dim) -> np.ndarray:
    """The head dimension that makes :func:`flops_per_step`'s attention term (4 x heads x head dim per cached token)
    equal MLA's absorbed attention: scores over rank + rope dims and values over rank dims, 2 FLOPs each per head:
    (2 x rank + rope) / 2."""
    return (2.0 * _f(kv_lora_rank) + _f(qk_rope_head_dim)) / 2.0


def moe_split_b(total_params_b, active_params_b, num_experts, experts_per_token):
    """(always-active params, params of one routed expert), in billions, from total and active counts.

    total = dense + E x expert and active = dense + k x expert give expert = (total - active) / (E - k). A dense
    model (no experts, or total == active) is all always-active with zero-size experts.
    """
    total, active = _f(total_params_b), _f(active_params_b)
    e, k = _f(num_experts), _f(experts_per_token)
    moe = np.isfinite(e) & np.isfinite(k) & (e > k) & (total > active)
    with np.errstate(invalid="ignore", divide="ignore"):
        expert = np.where(moe, (total - active) / np.where(moe, e - k, 1.0), 0.0)
    dense = np.where(moe, active - k * expert, total)
    return dense, expert


def experts_touched_fraction(batch, num_experts, experts_per_token) -> np.ndarray:
    """Expected share of a layer's routed experts that a batch of ``batch`` tokens touches (uniform routing):
    1 - (1 - k/E)^B. 1 for dense models (no experts)."""
    e, k, b = _f(num_experts), _f(experts_per_token), np.maximum(_f(batch), 0.0)
    moe = np.isfinite(e) & np.isfinite(k) & (e > 0) & (k > 0)
    p = np.where(moe, np.clip(k / np.where(moe, e, 1.0), 0.0, 1.0), 1.0)
    return np.where(moe, 1.0 - (1.0 - p) ** b, 1.0)


def weight_bytes_per_step(total_params_b, active_params_b, num_experts, experts_per_token, batch,
                          tensor_parallel=1, bytes_per_param: float = BYTES_16BIT) -> np.ndarray:
    """Weight bytes one GPU reads in one decode step of ``batch`` sequences.

    Dense: all weights. MoE: the always-active part plus the routed experts the batch touches. Split evenly over
    ``tensor_parallel`` GPUs.
    """
    dense, expert = moe_split_b(total_params_b, active_params_b, num_experts, experts_per_token)
    e = _f(num_experts)
    touched = experts_touched_fraction(batch, num_experts, experts_per_token)
    routed = np.where(expert > 0, np.where(np.isfinite(e), e, 0.0) * expert * touched, 0.0)
    return (dense + routed) * 1e9 * bytes_per_param / _f(tensor_parallel)


def weights_resident_bytes(total_params_b, tensor_parallel=1, bytes_per_param: float = BYTES_16BIT):
    """Weight bytes held in one GPU's memory (every expert is resident)."""
    return _f(total_params_b) * 1e9 * bytes_per_param / _f(tensor_parallel)


def kv_bytes_per_step(batch, context_tokens, kv_bytes_token, tensor_parallel=1) -> np.ndarray:
    """KV-cache bytes one GPU reads in one decode step: every sequence's cached tokens once."""
    return _f(batch) * _f(context_tokens) * _f(kv_bytes_token) / _f(tensor_parallel)


def flops_per_step(active_params_b, batch, context_tokens, num_layers, num_attention_heads, head_dim_,
                   tensor_parallel=1) -> np.ndarray:
    """FLOPs one GPU does in one decode step: 2 N_active per token (matmuls) + 4 x layers x heads x head dim x
    context per token (attention scores and values)."""
    per_token = 2.0 * _f(active_params_b) * 1e9 \
        + 4.0 * _f(num_layers) * _f(num_attention_heads) * _f(head_dim_) * _f(context_tokens)
    return _f(batch) * per_token / _f(tensor_parallel)


def prefill_flops(active_params_b, input_tokens, num_layers, num_attention_heads, head_dim_, tensor_parallel=1):
    """FLOPs one GPU does to prefill one prompt of ``input_tokens`` (causal attention: half the square)."""
    n = _f(input_tokens)
    return (2.0 * _f(active_params_b) * 1e9 * n
            + 2.0 * _f(num_layers) * _f(num_attention_heads) * _f(head_dim_) * n * n) / _f(tensor_parallel)


def allreduce_bytes_per_step(batch, hidden_size, num_layers, tensor_parallel=1,
                             bytes_per_value: float = BYTES_16BIT) -> np.ndarray:
    """Bytes each GPU sends in one decode step under tensor parallelism: two ring all-reduces of the
    activations per layer, 2 (t - 1)/t x batch x hidden x bytes each; 0 on one GPU."""
    t = _f(tensor_parallel)
    return 2.0 * _f(num_layers) * 2.0 * (t - 1.0) / t * _f(batch) * _f(hidden_size) * bytes_per_value


# --------------------------------------------------------------------------------------------------------------
# Step time
def memory_time_s(bytes_, memory_bandwidth_gb_s) -> np.ndarray:
    """Seconds to move ``bytes_`` at the memory bandwidth (GB/s = 1e9 bytes/s)."""
    return _f(bytes_) / (_f(memory_bandwidth_gb_s) * 1e9)


def compute_time_s(flops, tflops) -> np.ndarray:
    """Seconds for ``flops`` at ``tflops`` (1e12 FLOP/s)."""
    return _f(flops) / (_f(tflops) * 1e12)


def power_limited_tflops(tdp_w, tflops_per_w, static_power_w=0.0, min_share: float = 0.2) -> np.ndarray:
    """Tensor throughput a GPU sustains at its power limit: (TDP - static power) x TFLOPS per watt. The dynamic
    budget is kept at >= ``min_share`` of TDP. Low-TDP boards (L4, T4, H100 NVL) cannot run their tensor cores at
    the datasheet rate for long; this is the compute ceiling that binds there in large offline batches."""
    tdp = _f(tdp_w)
    return _f(tflops_per_w) * np.maximum(tdp - _f(static_power_w), min_share * tdp)


def decode_step_time_s(weight_bytes, kv_bytes, gemm_flops, attention_flops, memory_bandwidth_gb_s, tflops, *,
                       memory_efficiency=1.0, compute_efficiency=1.0, power_tflops=np.inf, comm_bytes=0.0,
                       link_gb_s=NVLINK_GB_S, overhead_s=0.0, per_sequence_s=0.0, batch=1.0,
                       comm_s=0.0, roofline_p=np.inf) -> np.ndarray:
    """Seconds for one decode step.

    The matrix multiplies stream the weights and do 2 N_active FLOPs per sequence: their time is the roofline
    max(weight bytes / achieved bandwidth, FLOPs / achieved tensor rate, FLOPs / power-limited rate). Attention then
    reads each sequence's KV cache (memory-bound, in its own kernels, so it adds). Tensor-parallel all-reduces,
    a fixed per-step overhead (kernel launches, scheduling) and a per-sequence overhead (sampling, detokenising,
    bookkeeping on the host) add too. Communication is ``comm_bytes`` over ``link_gb_s`` plus ``comm_s`` (the
    measured all-reduce model, :func:`tp_comm_time_s`). With the defaults: the plain roofline, weights and KV read
    at full bandwidth.
    """
    bw = _f(memory_bandwidth_gb_s) * 1e9 * _f(memory_efficiency)
    rate = _f(tflops) * 1e12 * _f(compute_efficiency)
    compute = np.maximum(_f(gemm_flops) / rate, _f(gemm_flops) / (_f(power_tflops) * 1e12))
    gemm = smooth_max(_f(weight_bytes) / bw, compute, roofline_p)
    attention = _f(kv_bytes) / bw + _f(attention_flops) / rate
    comm = _f(comm_bytes) / (_f(link_gb_s) * 1e9) + _f(comm_s)
    return gemm + attention + comm + _f(overhead_s) + _f(per_sequence_s) * _f(batch)


def smooth_max(a, b, p=np.inf) -> np.ndarray:
    """(a^p + b^p)^(1/p) for non-negative ``a``, ``b``: the max at p = inf, the sum at p = 1 (computed scaled by the
    larger, so large p never overflows)."""
    a, b = _f(a), _f(b)
    if np.isinf(p):
        return np.maximum(a, b)
    hi = np.maximum(a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        lo_share = np.where(hi > 0, np.minimum(a, b) / hi, 0.0)
    if p == 1.5:  # the GEMM roofline's: sqrt and cbrt are cheaper than two powers (fits evaluate it a lot)
        z = 1.0 + lo_share * np.sqrt(lo_share)
        return hi * np.cbrt(z * z)
    return hi * (1.0 + lo_share**p) ** (1.0 / p)


# --------------------------------------------------------------------------------------------------------------
# vLLM batch
def vllm_default_max_num_seqs(memory_size_gb, is_a100) -> np.ndarray:
    """vLLM's default ``max_num_seqs``: 1024 on GPUs with >= 70 GiB that are not A100s (A800s, their export
    variant, count as A100s), else 256."""
    big = (_f(memory_size_gb) >= VLLM_LARGE_GPU_GIB) & ~np.asarray(is_a100, dtype=bool)
    return np.where(big, VLLM_MAX_NUM_SEQS_LARGE, VLLM_MAX_NUM_SEQS_SMALL)


_ARCH_A100 = ("a100", "a800")


def is_a100_class(gpu_id) -> np.ndarray:
    """Whether each catalog GPU id names an A100 or an A800 (vLLM's default batch treats them alike)."""
    return per_unique(lambda g: any(a in str(g).lower() for a in _ARCH_A100), gpu_id, dtype=bool)


def vllm_max_num_seqs(gpu_id, memory_size_gb) -> np.ndarray:
    """vLLM's default ``max_num_seqs`` of each GPU, by catalog id and memory (:func:`vllm_default_max_num_seqs`)."""
    return vllm_default_max_num_seqs(memory_size_gb, is_a100_class(gpu_id))


def vllm_memory_utilisation(memory_size_gb) -> np.ndarray:
    """Watt Counts' ``gpu_memory_utilization``: 0.9, or 0.8 below 20 GB (vLLM's default is 0.9)."""
    return np.where(_f(memory_size_gb) < 20, 0.8, 0.9)


# Datacenter GDDR6 boards (T4, A10, A16, A40, L4, L40, L40S, L20, ...) run with ECC on by default, and GDDR6's ECC
# reserves 1/16 of the memory: nvidia-smi shows 15,360 MiB on a 16 GB T4, 23,034 MiB on a 24 GB L4, 46,068 MiB on a
# 48 GB L40S. HBM keeps its ECC bits beside the data (a 32 GB V100 or a 40 GB A100 shows its whole memory, an 80 GB
# H100 0.4% less). GeForce boards (GDDR6X, GDDR7) run without ECC. vLLM's gpu_memory_utilization is a share of what
# the driver reports.
GDDR6_ECC_RESERVED_SHARE = 1.0 / 16.0


def usable_memory_gb(memory_size_gb, memory_type=None) -> np.ndarray:
    """GPU memory the driver reports (binary GB, as the catalog's ``memory_size_gb``): the catalog size less the
    share GDDR6's default ECC reserves (:data:`GDDR6_ECC_RESERVED_SHARE`); unknown memory types count as HBM.
    ``memory_type`` is the catalog's name ("GDDR6", as its memory types are spelled), compared as is: an element-wise
    comparison, as explanations evaluate it on frames of many thousand rows."""
    mem = _f(memory_size_gb)
    if memory_type is None:
        return mem
    ecc = np.asarray(np.asarray(memory_type, dtype=object) == "GDDR6", dtype=bool)
    return mem * np.where(ecc, 1.0 - GDDR6_ECC_RESERVED_SHARE, 1.0)


def kv_capacity_tokens(memory_size_gb, weights_bytes, kv_bytes_token, utilisation=0.9,
                       reserved_gb=VLLM_RESERVED_GB) -> np.ndarray:
    """Tokens the KV cache holds: (utilisation x memory - weights - reserved) / KV bytes per token, at least 0.
    ``memory_size_gb`` is what the driver reports (:func:`usable_memory_gb`); ``reserved_gb`` (decimal GB, per row or
    one value) what vLLM keeps besides weights and KV cache (:func:`runtime_overhead_gb`)."""
    free = _f(utilisation) * _f(memory_size_gb) * GIB - _f(weights_bytes) - _f(reserved_gb) * 1e9
    return np.maximum(free, 0.0) / _f(kv_bytes_token)


def mean_context_tokens(input_tokens, output_tokens) -> np.ndarray:
    """Mean tokens a decoding sequence holds in the KV cache: prompt + half the output, rounded up to whole
    16-token blocks on average (+ half a block)."""
    return _f(input_tokens) + 0.5 * _f(output_tokens) + 0.5 * VLLM_BLOCK_TOKENS


def offline_batch_cap(max_num_seqs, kv_tokens, context_tokens) -> np.ndarray:
    """Sequences vLLM runs at once offline: max_num_seqs, or fewer when the KV cache is full (at least 1)."""
    return np.maximum(np.minimum(_f(max_num_seqs), _f(kv_tokens) / _f(context_tokens)), 1.0)


def offline_decode_steps(num_requests, output_tokens, max_output_tokens, batch_cap) -> np.ndarray:
    """Decode steps to generate ``num_requests`` x ``output_tokens`` tokens with at most ``batch_cap`` sequences
    at once (continuous batching): tokens / cap, plus half a mean output of drain when the requests come in more
    than one wave, and never fewer than the longest output (``max_output_tokens``)."""
    n, out, cap = _f(num_requests), _f(output_tokens), _f(batch_cap)
    steps = n * out / cap + np.where(n > cap, 0.5 * out, 0.0)
    return np.maximum(steps, np.fmax(_f(max_output_tokens), out))


def offline_effective_batch(num_requests, output_tokens, max_output_tokens, batch_cap) -> np.ndarray:
    """Mean running batch over an offline run: output tokens / decode steps."""
    steps = offline_decode_steps(num_requests, output_tokens, max_output_tokens, batch_cap)
    return _f(num_requests) * _f(output_tokens) / steps


def server_concurrency(request_rate_qps, latency_s) -> np.ndarray:
    """Mean requests in service (Little's law): lambda x latency."""
    return _f(request_rate_qps) * _f(latency_s)


def server_batch_seen(request_rate_qps, latency_s, batch_cap=np.inf) -> np.ndarray:
    """Mean running batch a request decodes in: itself plus the lambda x latency others (Poisson arrivals see
    time averages), at most ``batch_cap``."""
    return np.minimum(1.0 + server_concurrency(request_rate_qps, latency_s), _f(batch_cap))


def server_busy_fraction(request_rate_qps, latency_s, submit_s=np.inf) -> np.ndarray:
    """Share of a measurement window during which at least one request is in service.

    Poisson arrivals at rate lambda, requests of T seconds: in steady state (``submit_s`` infinite, the default)
    the GPU is busy 1 - exp(-lambda T) of the time (M/G/infinity). A benchmark that submits for ``submit_s``
    seconds (Watt Counts: :data:`WATTCOUNTS_SUBMIT_S`) also has the last inter-arrival gap (1/lambda on average)
    and the drain of the final request (T) inside its window: busy time = (S + 1/lambda)(1 - exp(-lambda T)) + T
    over a window of S + 1/lambda + T. Non-decreasing in lambda and T; 0 at lambda = 0.
    """
    lam, t = _f(request_rate_qps), _f(latency_s)
    s = np.broadcast_to(_f(submit_s), np.broadcast(lam, t).shape)
    busy = -np.expm1(-np.maximum(lam * t, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        s_eff = s + 1.0 / lam
        windowed = (s_eff * busy + t) / (s_eff + t)
    out = np.where(np.isfinite(s), windowed, busy)
    return np.clip(np.where(lam > 0, out, 0.0), 0.0, 1.0)


# Serving frameworks' names as the data spell them, by their lower-case spellings (a user's "vllm" or "trt-llm" is the
# same stack as a source's "vLLM" or "TensorRT-LLM"); other names are kept as given.
FRAMEWORK_NAMES = MappingProxyType({
    "vllm": "vLLM", "tensorrt-llm": "TensorRT-LLM", "tensorrt_llm": "TensorRT-LLM", "trt-llm": "TensorRT-LLM",
    "trtllm": "TensorRT-LLM", "deepspeed-mii": "Deepspeed-MII", "deepspeed_mii": "Deepspeed-MII", "mii": "Deepspeed-MII",
    "sglang": "SGLang", "tgi": "TGI", "text-generation-inference": "TGI", "lmdeploy": "LMDeploy",
})
_STACK_TEXT = re.compile(r"^\s*(?P<fw>.+?)(?:\s+|\s*==\s*|\s*@\s*)v?(?P<ver>\d+(?:\.\d+)*[0-9A-Za-z.+-]*)\s*$")


def canonical_framework(name: str) -> str:
    """A framework name as the data spell it (:data:`FRAMEWORK_NAMES`), else the name stripped."""
    name = name.strip()
    return FRAMEWORK_NAMES.get(name.lower(), name)


def serving_stack(framework, framework_version, source=None) -> np.ndarray:
    """"vLLM 0.14" from framework "vLLM" (any case, :func:`canonical_framework`) and version "0.14.1" or "v0.14.1"
    (major.minor of a numeric version); None when no framework is known (callers that need a stack take
    :data:`DEFAULT_STACK`, the one the models are trained on).

    Without a version, the framework alone names no one stack: two sources' "vLLM" runs can be a year of releases
    apart (Argonne's 2024 runs draw about 20% less power than TokenPowerBench's 2025 runs for the same prediction).
    With ``source`` (the runs' source ids), such runs are "vLLM (version not stated in argonne)", one stack per
    source; without it, the framework alone (a user's typed name)."""
    def one(fw, ver, src=None):
        fw = canonical_framework(fw) if isinstance(fw, str) and fw.strip() else None
        ver = ver.strip() if isinstance(ver, str) and ver.strip() else None
        if fw is None:
            return None
        if ver is not None and ver[:1] in "vV" and ver[1:2].isdigit():
            ver = ver[1:]
        if ver is not None and ver[:1].isdigit():
            ver = ".".join(ver.split(".")[:2])
        if ver:
            return f"{fw} {ver}"
        return f"{fw} ({UNVERSIONED} in {src})" if isinstance(src, str) and src else fw

    if source is None:
        return per_unique(one, framework, framework_version, dtype=object)
    return per_unique(one, framework, framework_version, source, dtype=object)


UNVERSIONED = "version not stated"


def stack_framework(stack: str) -> str:
    """A stack's name without the source of its unversioned runs: "vLLM (version not stated in argonne)" -> "vLLM"
    (for text that already names the source); other names unchanged."""
    return str(stack).split(f" ({UNVERSIONED} in ")[0]


def parse_serving_stack(text):
    """A serving stack a user typed, as the data name it: "vllm 0.14.1", "vLLM==0.14.1" or "vLLM v0.14" -> "vLLM
    0.14"; "trt-llm" -> "TensorRT-LLM"; a name without a trailing version is kept (canonical framework spelling);
    None or blank -> None."""
    if not isinstance(text, str) or not text.strip():
        return None
    m = _STACK_TEXT.match(text)
    if m:
        return serving_stack([m["fw"]], [m["ver"]])[0]
    return canonical_framework(text)


# --------------------------------------------------------------------------------------------------------------
# A whole workload, row by row


@dataclass(frozen=True)
class StepParameters:
    """Efficiencies and overheads of the decode-step model (arrays broadcast per row, or scalars).

    The defaults are the plain roofline: full bandwidth and tensor rate, no power ceiling, no overheads.
    """

    memory_efficiency: object = 1.0
    compute_efficiency: object = 1.0
    power_tflops: object = np.inf
    overhead_s: object = 0.0
    per_sequence_s: object = 0.0


def _take_rows(p: StepParameters, rows: np.ndarray, n: int) -> StepParameters:
    """``p`` for the rows at positions ``rows`` of an ``n``-row workload (scalars stay scalars)."""
    return StepParameters(**{k: v if np.ndim(v) == 0 else np.broadcast_to(v, (n,))[rows]
                             for k, v in p.__dict__.items()})


@dataclass(frozen=True)
class DecodeWorkload:
    """Each row's model, GPU and workload as arrays, with the parts of the physics that do not depend on
    efficiencies computed once (offline batch and decode steps, bytes per token, FLOPs per prompt).

    Build it with :meth:`of` from a frame holding GPU specs (memory_bandwidth_gb_s, fp16_tensor_dense_tflops,
    memory_size_gb, tdp_w, gpu_id), LLM specs (total_params_b, active_params_b, num_layers, hidden_size,
    num_attention_heads, num_key_value_heads; optional head_dim, num_experts, experts_per_token) and the workload:
    scenario (offline / server, or the paper's labels in ``scenario_detail``), request_rate_qps, batch_size (the
    maximum running batch, vLLM's max_num_seqs; missing: vLLM's default), input_tokens, output_tokens,
    max_output_tokens (missing: output_tokens), num_requests (offline; missing: steady state, the batch always
    full) and tensor_parallel (missing: 1). Optional deployment columns (missing: a 16-bit model on NVLink):
    ``weight_bytes_per_param`` (effective bytes per weight at the precision, :func:`weights_bytes` / parameters),
    ``compute_tflops`` (the dense tensor rate of the precision's compute path, :func:`path_tflops`; it scales the
    power ceiling too), ``link_gb_s`` (GPU-to-GPU bandwidth for the all-reduces), ``kv_capacity_tokens`` (the
    replica's, from :func:`memory_fit`) and ``kv_bytes_per_token`` (the replica's KV bytes per token, split over
    the GPUs; MLA models: the latent x GPUs, as every GPU holds it whole).
    """

    offline: np.ndarray
    bandwidth_gb_s: np.ndarray
    tflops: np.ndarray
    tdp_w: np.ndarray
    total_b: np.ndarray
    active_b: np.ndarray
    experts: np.ndarray
    experts_per_token: np.ndarray
    layers: np.ndarray
    heads: np.ndarray
    hidden: np.ndarray
    head_dim: np.ndarray
    kv_bytes_token: np.ndarray
    tensor_parallel: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    context_tokens: np.ndarray
    max_num_seqs: np.ndarray
    kv_capacity_tokens: np.ndarray
    batch_cap: np.ndarray
    num_requests: np.ndarray
    offline_steps: np.ndarray
    offline_batch: np.ndarray
    request_rate_qps: np.ndarray
    prefill_flops: np.ndarray
    bytes_per_param: np.ndarray = BYTES_16BIT
    compute_scale: np.ndarray = 1.0
    link_gb_s: np.ndarray = NVLINK_GB_S

    @classmethod
    def of(cls, frame) -> DecodeWorkload:
        n = len(frame)

        def col(name, default=np.nan):
            return _f(frame[name]) if name in frame else np.full(n, default, dtype=float)

        scen = np.asarray(frame["scenario_detail"] if "scenario_detail" in frame else frame["scenario"], dtype=object)
        offline = np.asarray([s == "offline" for s in scen], dtype=bool)
        tp = np.fmax(np.nan_to_num(col("tensor_parallel"), nan=1.0), 1.0)
        hd = head_dim(frame["hidden_size"], frame["num_attention_heads"], col("head_dim"))
        kvb = kv_bytes_per_token(frame["num_layers"], frame["num_key_value_heads"], hd)
        kvb = np.where(np.isfinite(col("kv_bytes_per_token")), col("kv_bytes_per_token"), kvb)
        total = _f(frame["total_params_b"])
        active = col("active_params_b")
        active = np.where(np.isfinite(active), active, total)
        mem_gb = _f(frame["memory_size_gb"])
        ids = frame["gpu_id"] if "gpu_id" in frame else [""] * n
        inp = np.nan_to_num(col("input_tokens"), nan=0.0)
        out = np.fmax(col("output_tokens"), 1.0)
        max_out = np.fmax(col("max_output_tokens"), out)
        max_seqs = col("batch_size")
        max_seqs = np.where(np.isfinite(max_seqs), max_seqs, vllm_max_num_seqs(ids, mem_gb))
        bpp = np.nan_to_num(col("weight_bytes_per_param"), nan=BYTES_16BIT)
        fp16 = _f(frame["fp16_tensor_dense_tflops"])
        rate = col("compute_tflops")
        rate = np.where(np.isfinite(rate) & (rate > 0), rate, fp16)
        link = np.nan_to_num(col("link_gb_s"), nan=NVLINK_GB_S)
        usable = usable_memory_gb(mem_gb, frame["memory_type"] if "memory_type" in frame else None)
        reserved = runtime_overhead_gb(frame["hidden_size"], col("intermediate_size"), col("vocab_size"), tp, max_seqs)
        kv_tokens = kv_capacity_tokens(usable, weights_resident_bytes(total, tp, bpp), kvb / tp,
                                       vllm_memory_utilisation(mem_gb), reserved_gb=reserved)
        kv_given = col("kv_capacity_tokens")
        kv_tokens = np.where(np.isfinite(kv_given), kv_given, kv_tokens)
        ctx = mean_context_tokens(inp, out)
        cap = offline_batch_cap(max_seqs, kv_tokens, ctx)
        n_req = col("num_requests")
        n_req = np.where(offline, n_req, np.nan)
        steps = np.where(np.isfinite(n_req), offline_decode_steps(n_req, out, max_out, cap), np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            off_batch = np.where(np.isfinite(n_req), offline_effective_batch(n_req, out, max_out, cap), cap)
        layers, heads = _f(frame["num_layers"]), _f(frame["num_attention_heads"])
        return cls(
            offline=offline, bandwidth_gb_s=_f(frame["memory_bandwidth_gb_s"]),
            tflops=rate, tdp_w=col("tdp_w"), total_b=total, active_b=active,
            experts=col("num_experts"), experts_per_token=col("experts_per_token"), layers=layers, heads=heads,
            hidden=_f(frame["hidden_size"]), head_dim=hd, kv_bytes_token=kvb, tensor_parallel=tp,
            input_tokens=inp, output_tokens=out, context_tokens=ctx, max_num_seqs=max_seqs,
            kv_capacity_tokens=kv_tokens, batch_cap=cap, num_requests=n_req, offline_steps=steps,
            offline_batch=off_batch, request_rate_qps=np.nan_to_num(col("request_rate_qps"), nan=0.0),
            prefill_flops=prefill_flops(active, inp, layers, heads, hd, tp),
            bytes_per_param=bpp, compute_scale=rate / fp16, link_gb_s=link,
        )

    def __len__(self) -> int:
        return len(self.offline)

    @cached_property
    def multi_gpu(self) -> bool:
        """Whether any row runs on more than one GPU (else no communication to time)."""
        return bool(np.any(self.tensor_parallel > 1))

    def subset(self, rows) -> DecodeWorkload:
        """The same arrays for ``rows`` (positions or a boolean mask)."""
        return DecodeWorkload(**{k: np.broadcast_to(getattr(self, k), self.offline.shape)[rows]
                                 for k in self.__dataclass_fields__})

    @cached_property
    def _server_rows(self) -> tuple[np.ndarray, DecodeWorkload]:
        """Positions of the server rows, and the workload of those rows (``self`` when every row is one)."""
        rows = np.flatnonzero(~self.offline)
        return rows, (self if len(rows) == len(self) else self.subset(rows))

    @cached_property
    def _per_sequence(self) -> dict:
        """What a decode step reads and computes per sequence in the batch (per GPU), and the weight bytes when no
        row is MoE (then independent of the batch): computed once per workload, as fits evaluate it hundreds of
        times."""
        tp = self.tensor_parallel
        dense, expert = moe_split_b(self.total_b, self.active_b, self.experts, self.experts_per_token)
        any_moe = bool(np.any(expert > 0))
        return {
            "weight_bytes": None if any_moe else dense * 1e9 * _f(self.bytes_per_param) / tp,
            "kv_bytes": self.context_tokens * self.kv_bytes_token / tp,
            "gemm_flops": 2.0 * self.active_b * 1e9 / tp,
            "attention_flops": 4.0 * self.layers * self.heads * self.head_dim * self.context_tokens / tp,
            "comm_bytes": allreduce_bytes_per_step(1.0, self.hidden, self.layers, tp),
        }

    def step_parts(self, batch) -> dict[str, np.ndarray]:
        """Bytes and FLOPs of one decode step at ``batch`` sequences (per GPU)."""
        tp, per, b = self.tensor_parallel, self._per_sequence, _f(batch)
        weight = per["weight_bytes"]
        if weight is None:  # MoE rows: the routed experts the batch touches
            weight = weight_bytes_per_step(self.total_b, self.active_b, self.experts, self.experts_per_token,
                                           batch, tp, self.bytes_per_param)
        return {
            "weight_bytes": np.broadcast_to(weight, np.broadcast_shapes(np.shape(weight), b.shape)),
            "kv_bytes": b * per["kv_bytes"],
            "gemm_flops": b * per["gemm_flops"],
            "attention_flops": b * per["attention_flops"],
            "comm_bytes": b * per["comm_bytes"],
            "comm_s": tp_comm_time_s(batch, self.hidden, self.layers, tp, self.link_gb_s) if self.multi_gpu else 0.0,
        }

    def roofline_times_s(self, batch) -> tuple[np.ndarray, np.ndarray]:
        """(memory time, compute time) of one decode step at ``batch`` sequences on the plain roofline: weight and
        KV-cache bytes at the datasheet bandwidth, matmul and attention FLOPs at the precision's tensor rate."""
        parts = self.step_parts(batch)
        return (memory_time_s(parts["weight_bytes"] + parts["kv_bytes"], self.bandwidth_gb_s),
                compute_time_s(parts["gemm_flops"] + parts["attention_flops"], self.tflops))

    def step_time_s(self, batch, p: StepParameters) -> np.ndarray:
        parts = self.step_parts(batch)
        parts.pop("comm_bytes")  # the time is the measured all-reduce model's (comm_s)
        return decode_step_time_s(**parts, memory_bandwidth_gb_s=self.bandwidth_gb_s,
                                  tflops=self.tflops, memory_efficiency=p.memory_efficiency,
                                  compute_efficiency=p.compute_efficiency,
                                  power_tflops=_f(p.power_tflops) * self.compute_scale,
                                  overhead_s=p.overhead_s, per_sequence_s=p.per_sequence_s, batch=batch,
                                  roofline_p=GEMM_ROOFLINE_P)

    def prefill_time_s(self, p: StepParameters) -> np.ndarray:
        """Seconds to prefill one prompt: its tensor work (at the achieved or power-limited rate, the lower) plus the
        tensor-parallel all-reduces of its tokens. The one prefill time of WattGPU+; its users differ only in the
        compute efficiency they pass: the ITL model its calibrated one, the TTFT model one fitted on measured TTFTs
        (with its fixed overhead outside), the power model the Vidur GEMM rate of :func:`gemm_efficiency` (it has no
        TTFT measurements and must not depend on the separately fitted TTFT model)."""
        rate = np.minimum(self.tflops * _f(p.compute_efficiency), _f(p.power_tflops) * self.compute_scale) * 1e12
        comm = tp_comm_time_s(self.input_tokens, self.hidden, self.layers, self.tensor_parallel, self.link_gb_s) \
            if self.multi_gpu else 0.0
        return self.prefill_flops / rate + comm

    def evaluate(self, p: StepParameters = StepParameters(), server_iterations: int = 3,
                 load: bool = True) -> dict[str, np.ndarray]:
        """Batch, step time, ITL as the data define it, latency and server load of every row under ``p``.

        ``itl_s``: offline, run time / output tokens (prefill and the drain included); server, end-to-end latency
        per output token (TTFT included) at the mean running batch a request sees (a fixed point: the batch
        depends on the latency). ``load=False`` leaves out the server load (``busy_fraction``, ``concurrency``),
        which fits of the ITL do not need.
        """
        prefill = self.prefill_time_s(p)
        out = self.output_tokens
        batch = np.where(self.offline, self.offline_batch, 1.0)
        rows, server = self._server_rows
        if len(rows) and server_iterations > 0:  # the fixed point, on the server rows only
            p_srv = p if server is self else _take_rows(p, rows, len(self))
            pf, srv_batch = np.broadcast_to(prefill, batch.shape)[rows], np.ones(len(rows))
            for _ in range(int(server_iterations)):
                t1 = server.step_time_s(srv_batch, p_srv)
                srv_batch = server_batch_seen(server.request_rate_qps,
                                              np.maximum(pf, t1) + (server.output_tokens - 1.0) * t1,
                                              server.batch_cap)
            batch[rows] = srv_batch
        t = self.step_time_s(batch, p)
        latency = np.maximum(prefill, t) + (out - 1.0) * t
        finite = np.isfinite(self.num_requests)
        with np.errstate(invalid="ignore", divide="ignore"):
            off_itl = np.where(finite, (self.offline_steps * t + self.num_requests * prefill)
                               / (self.num_requests * out), t / batch + prefill / out)
        itl = np.where(self.offline, off_itl, latency / out)
        out = {"batch": batch, "step_s": t, "prefill_s": prefill, "itl_s": itl, "latency_s": latency}
        if load:
            rate = self.request_rate_qps
            out["busy_fraction"] = np.where(self.offline, 1.0, server_busy_fraction(rate, latency))
            out["concurrency"] = np.where(self.offline, batch, server_concurrency(rate, latency))
        return out


# --------------------------------------------------------------------------------------------------------------
# Weight precision: bytes per parameter and the compute path per GPU generation
PRECISIONS = ("bf16", "fp16", "fp8", "int8", "int4", "fp4", "mxfp4")
_PRECISION_ALIASES = {
    "bf16": "bf16", "bfloat16": "bf16", "auto": "bf16", "fp16": "fp16", "float16": "fp16", "half": "fp16",
    "16-bit": "bf16", "fp8": "fp8", "float8": "fp8", "fp8-dynamic": "fp8", "w8a8-fp8": "fp8", "int8": "int8",
    "w8a8": "int8", "w8a16": "int8", "gptq-int8": "int8", "int4": "int4", "w4a16": "int4", "awq": "int4",
    "gptq": "int4", "gptq-int4": "int4", "fp4": "fp4", "nvfp4": "fp4", "mxfp4": "mxfp4",
}
# Bytes one weight occupies in memory, scales included:
# * bf16 / fp16: 2.
# * fp8 (E4M3, per-tensor or per-channel FP32 scales, e.g. RedHatAI / Meta "-FP8" checkpoints): 1; the scales are
#   one value per output channel, < 0.01% of the bytes.
# * int8 (W8A8 with per-channel scales, or GPTQ 8-bit): 1.
# * int4 (AWQ / GPTQ W4A16, group size 128 as both tools default to): 4 bits + one FP16 scale and one 4-bit zero point
#   per 128 weights = 4 + 16/128 + 4/128 = 4.156 bits = 0.5195 bytes.
# * fp4 (NVFP4, NVIDIA's "Introducing NVFP4" technical blog, 2025): E2M1 values with one FP8 (E4M3) scale per
#   16-value micro-block (plus one FP32 scale per tensor) = 4 + 8/16 = 4.5 bits = 0.5625 bytes.
# * mxfp4 (OCP Microscaling Formats (MX) Specification v1.0, 2023): E2M1 values with one E8M0 scale per 32-value
#   block = 4 + 8/32 = 4.25 bits = 0.53125 bytes.
WEIGHT_BYTES_PER_PARAM = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 4.15625 / 8.0,
                          "fp4": 4.5 / 8.0, "mxfp4": 4.25 / 8.0}
# Architecture generations in order, with what NVIDIA's tensor cores run natively (compute capability):
# Volta 7.0 (FP16), Turing 7.5 (FP16, INT8), Ampere 8.x (BF16, INT8), Ada 8.9 and Hopper 9.0 (+ FP8), Blackwell
# 10.x / 12.x (+ FP4: NVFP4 and MXFP4).
_GENERATION = {"Volta": 70, "Turing": 75, "Ampere": 80, "Ada Lovelace": 89, "Hopper": 90, "Blackwell": 100,
               "Blackwell Ultra": 103, "Blackwell 2.0": 120}
DEFAULT_PRECISION = "bf16"


def normalise_precision(text) -> str:
    """The canonical precision name (one of :data:`PRECISIONS`) for a user's or a checkpoint's spelling
    (``bfloat16``, ``float16``, ``auto``, ``awq``, ``gptq``, ``w4a16``, ``nvfp4``, ...). Raises ValueError."""
    key = str(text).strip().lower().replace("_", "-")
    if key not in _PRECISION_ALIASES:
        raise ValueError(f"unknown precision {text!r}; expected one of {', '.join(PRECISIONS)}")
    return _PRECISION_ALIASES[key]


def weight_bytes_per_param(precision) -> float:
    """Bytes one quantised weight occupies, scales included (see :data:`WEIGHT_BYTES_PER_PARAM` for the numbers
    and their sources)."""
    return WEIGHT_BYTES_PER_PARAM[normalise_precision(precision)]


def unquantised_params_b(precision, total_params_b, active_params_b, num_experts, experts_per_token, vocab_size,
                         hidden_size) -> np.ndarray:
    """Parameters (billions) a quantised checkpoint keeps in 16 bits.

    Quantisation tools (llm-compressor, AutoAWQ, GPTQ) quantise the linear layers and keep the token embedding and
    the LM head in 16 bits: 2 x vocab x hidden (untied), at most half the model. MXFP4 checkpoints (gpt-oss) quantise
    only the MoE experts: everything always active (attention, router, embeddings) stays 16-bit. 16-bit: 0.
    """
    p = normalise_precision(precision)
    total = _f(total_params_b)
    if WEIGHT_BYTES_PER_PARAM[p] == BYTES_16BIT:
        return np.zeros_like(total)
    emb = np.nan_to_num(2.0 * _f(vocab_size) * _f(hidden_size) / 1e9, nan=0.0)
    emb = np.minimum(emb, 0.5 * total)
    if p == "mxfp4":
        dense, expert = moe_split_b(total_params_b, active_params_b, num_experts, experts_per_token)
        return np.where(expert > 0, np.maximum(dense, emb), emb)
    return emb


def weights_bytes(total_params_b, precision, unquantised_b=0.0) -> np.ndarray:
    """Weight bytes of the whole model at ``precision``: the 16-bit part at 2 bytes, the rest at the precision's
    bytes per parameter."""
    unq = np.minimum(_f(unquantised_b), _f(total_params_b))
    return (unq * BYTES_16BIT + (_f(total_params_b) - unq) * weight_bytes_per_param(precision)) * 1e9


@dataclass(frozen=True)
class PrecisionPath:
    """How a GPU runs weights of one precision under vLLM.

    ``supported``: vLLM can serve it there; ``native``: the tensor cores compute in that format (else the weights are
    dequantised to 16 bits in the kernel, a weight-only path: the memory traffic shrinks, the compute rate is the
    16-bit one); ``compute``: the format the matrix multiplies run in ("16-bit", "fp8", "int8", "fp4"); ``path``:
    in words; ``reason``: why it is excluded ("" when supported).
    """

    supported: bool
    native: bool
    compute: str
    path: str
    reason: str = ""


def precision_path(precision, architecture) -> PrecisionPath:
    """The compute path of ``precision`` on a GPU of ``architecture`` (the catalog's names).

    * bf16 / fp16: native 16-bit; bf16 on Volta / Turing runs as fp16 (same bytes; vLLM needs ``dtype=half``).
    * fp8: native FP8 tensor cores on Ada, Hopper, Blackwell; on Ampere vLLM's weight-only FP8 Marlin kernel
      (W8A16, 16-bit compute); excluded before Ampere (Marlin needs compute capability 8.0).
    * int8: native INT8 tensor cores (W8A8) from Turing on; excluded on Volta.
    * int4 (AWQ / GPTQ): always weight-only W4A16 (Marlin from Ampere on, the AWQ / GPTQ kernels on Volta / Turing),
      16-bit compute.
    * fp4 (NVFP4) and mxfp4: native FP4 tensor cores on Blackwell only; on Ampere, Ada and Hopper vLLM's weight-only
      FP4 Marlin path (W4A16, 16-bit compute); excluded before Ampere.
    * any other vendor: 16-bit only (quantised paths are not modelled).
    """
    p = normalise_precision(precision)
    gen = _GENERATION.get(architecture) if isinstance(architecture, str) else None
    if gen is None:
        if p in ("bf16", "fp16"):
            return PrecisionPath(True, True, "16-bit", "16-bit tensor cores")
        return PrecisionPath(False, False, "", "", f"{p} is modelled on NVIDIA GPUs only "
                                                   f"(architecture {architecture!r})")
    if p in ("bf16", "fp16"):
        if p == "bf16" and gen < 80:
            return PrecisionPath(True, True, "16-bit", "run as fp16 (no bf16 before Ampere)")
        return PrecisionPath(True, True, "16-bit", "16-bit tensor cores")
    if p == "fp8":
        if gen >= 89:
            return PrecisionPath(True, True, "fp8", "native FP8 tensor cores (W8A8)")
        if gen >= 80:
            return PrecisionPath(True, False, "16-bit", "weight-only FP8 (Marlin W8A16), 16-bit compute")
        return PrecisionPath(False, False, "", "", "FP8 needs Ampere or newer (vLLM's FP8 Marlin kernel needs "
                                                   "compute capability 8.0; native FP8 from Ada / Hopper)")
    if p == "int8":
        if gen >= 75:
            return PrecisionPath(True, True, "int8", "native INT8 tensor cores (W8A8)")
        return PrecisionPath(False, False, "", "", "INT8 needs Turing or newer (INT8 tensor cores)")
    if p == "int4":
        kernel = "Marlin" if gen >= 80 else "AWQ / GPTQ kernels"
        return PrecisionPath(True, False, "16-bit", f"weight-only W4A16 ({kernel}), 16-bit compute")
    # fp4, mxfp4
    if gen >= 100:
        return PrecisionPath(True, True, "fp4", f"native FP4 tensor cores ({'NVFP4' if p == 'fp4' else 'MXFP4'})")
    if gen >= 80:
        return PrecisionPath(True, False, "16-bit", f"weight-only {p.upper()} (Marlin W4A16), 16-bit compute")
    return PrecisionPath(False, False, "", "", f"{p.upper()} needs Ampere or newer (weight-only Marlin) and "
                                               "Blackwell for native FP4")


def precision_paths(precisions, architectures):
    """:func:`precision_path` for each (precision, architecture) pair, as a DataFrame (supported, native, compute,
    path, reason)."""

    cache: dict = {}
    rows = []
    for p, a in zip(np.asarray(precisions, dtype=object), np.asarray(architectures, dtype=object), strict=True):
        key = (p, a if isinstance(a, str) else None)
        if key not in cache:
            cache[key] = precision_path(*key)
        rows.append(cache[key].__dict__)
    return pd.DataFrame(rows, columns=["supported", "native", "compute", "path", "reason"])


def path_tflops(compute, fp16_tflops, fp8_tflops=np.nan) -> np.ndarray:
    """Dense tensor rate (TFLOPS) of a compute path: "16-bit" the FP16 rate; "fp8" and "int8" the FP8 rate where the
    catalog has it, else 2 x FP16 (the ratio of every Ada / Hopper / Blackwell datasheet; INT8 dense TOPS equal FP8
    dense TFLOPS there, and are 2 x FP16 on Turing / Ampere); "fp4" 2 x the FP8 rate (B200 datasheet: 9 PFLOPS
    FP4 vs 4.5 FP8, dense). NaN where the path is unsupported ("")."""
    comp = np.asarray(compute, dtype=object)
    fp16 = _f(fp16_tflops) * np.ones(comp.shape)
    fp8 = _f(fp8_tflops) * np.ones(comp.shape)
    fp8 = np.where(np.isfinite(fp8) & (fp8 > 0), fp8, 2.0 * fp16)
    return np.select([comp == "16-bit", np.isin(comp, ["fp8", "int8"]), comp == "fp4"],
                     [fp16, fp8, 2.0 * fp8], np.nan)


# --------------------------------------------------------------------------------------------------------------
# Tensor parallel: all-reduce time
# One NCCL all-reduce on GPUs of one node: a fixed latency plus the ring's 2 (t - 1)/t x message bytes over the
# effective link bandwidth, ALLREDUCE_BANDWIDTH_EFFICIENCY x the catalog's per-direction GPU-to-GPU bandwidth.
# Fitted (robust least squares on ln time) to vidur's median all-reduce times on A100 and H100 nodes with NVSwitch
# (data/measured/vidur_profiling/network/{a100,h100}_dgx/all_reduce.csv, 2 to 8 GPUs, 4 KB to 128 MB messages, FP16;
# 300 / 450 GB/s links); :func:`wattgpu_core.collectives.fit_allreduce` reproduces them (MdAPE 20%: an H100 node's
# NVLink SHARP makes it ~20% faster than the fit, an A100 ~15% slower).
ALLREDUCE_LATENCY_S = 3.38e-5
ALLREDUCE_BANDWIDTH_EFFICIENCY = 1.245
PCIE_GB_S = {"3": 16.0, "4": 32.0, "5": 64.0, "6": 128.0}  # per direction, x16, from the PCIe generation


def link_gb_s(interconnect) -> np.ndarray:
    """Per-direction GPU-to-GPU bandwidth (GB/s) from the catalog's ``interconnect`` text: the "N GB/s per
    direction" it states, else half the bidirectional figure, else the PCIe generation's x16 rate; NVLINK_GB_S when
    unknown."""

    def one(text) -> float:
        if not isinstance(text, str):
            return NVLINK_GB_S
        per_dir = re.search(r"([\d.]+)\s*GB/s per direction", text)
        bidir = re.search(r"([\d.]+)\s*GB/s", text)
        pcie = re.match(r"\s*PCIe\s*(\d)", text)
        if per_dir:
            return float(per_dir.group(1))
        if text.lstrip().startswith("NVLink") and bidir:
            return float(bidir.group(1)) / 2.0
        if pcie:
            return PCIE_GB_S.get(pcie.group(1), NVLINK_GB_S)
        return NVLINK_GB_S

    flat = np.asarray(interconnect, dtype=object).ravel()
    return per_unique(one, flat).reshape(np.shape(interconnect))  # a few distinct texts over many rows


def allreduce_time_s(message_bytes, tensor_parallel, link_gb_s_=NVLINK_GB_S) -> np.ndarray:
    """Seconds for one all-reduce of ``message_bytes`` over ``tensor_parallel`` GPUs (0 on one GPU)."""
    t = _f(tensor_parallel)
    ring = 2.0 * (t - 1.0) / t * _f(message_bytes)
    time = ALLREDUCE_LATENCY_S + ring / (ALLREDUCE_BANDWIDTH_EFFICIENCY * _f(link_gb_s_) * 1e9)
    return np.where(t > 1, time, 0.0)


def tp_comm_time_s(tokens, hidden_size, num_layers, tensor_parallel, link_gb_s_=NVLINK_GB_S,
                   bytes_per_value: float = BYTES_16BIT) -> np.ndarray:
    """Seconds of tensor-parallel communication in one forward pass over ``tokens`` tokens (a decode step: the
    batch; a prefill: the prompt tokens): Megatron-style TP all-reduces the activations twice per layer (after
    attention and after the MLP)."""
    msg = _f(tokens) * _f(hidden_size) * bytes_per_value
    return 2.0 * _f(num_layers) * allreduce_time_s(msg, tensor_parallel, link_gb_s_)


# --------------------------------------------------------------------------------------------------------------
# Memory fit of a deployment
# Tokens in vLLM's memory-profiling forward pass (max_num_batched_tokens; vLLM's default token budget per step for
# online serving): its activations are reserved outside the KV cache.
VLLM_PROFILE_TOKENS = 8192.0


def runtime_overhead_gb(hidden_size, intermediate_size, vocab_size, tensor_parallel=1, max_num_seqs=256.0):
    """Memory vLLM keeps on each GPU besides weights and KV cache (decimal GB): the fixed reserve
    (:data:`VLLM_RESERVED_GB`: CUDA context, CUDA graphs, allocator slack) plus the peak activations of its profiling
    pass: :data:`VLLM_PROFILE_TOKENS` tokens x (4 x hidden + 2 x intermediate / TP) 16-bit values, and the FP32
    logits of ``max_num_seqs`` sequences (vocab / TP each). Missing intermediate size: 3.5 x hidden; missing
    vocabulary: 128k."""
    hidden = _f(hidden_size)
    inter = _f(intermediate_size) * np.ones_like(hidden)
    inter = np.where(np.isfinite(inter) & (inter > 0), inter, 3.5 * hidden)
    vocab = _f(vocab_size) * np.ones_like(hidden)
    vocab = np.where(np.isfinite(vocab) & (vocab > 0), vocab, 128_000.0)
    t = _f(tensor_parallel)
    act = VLLM_PROFILE_TOKENS * (4.0 * hidden + 2.0 * inter / t) * BYTES_16BIT
    logits = _f(max_num_seqs) * vocab / t * 4.0
    return VLLM_RESERVED_GB + (act + logits) / 1e9


@dataclass(frozen=True)
class MemoryFit:
    """Memory of one replica (all its tensor-parallel GPUs together), decimal GB (1e9 bytes).

    ``weights_gb`` at the precision; ``kv_gb`` the KV cache of ``batch`` sequences holding ``context_tokens`` each;
    ``overhead_gb`` activations and runtime (:func:`runtime_overhead_gb`, per GPU x GPUs); ``needed_gb`` their sum;
    ``available_gb`` = GPUs x memory x vLLM's ``gpu_memory_utilization``; ``margin_gb`` = available - needed;
    ``total_gb`` the GPUs' physical memory; ``kv_capacity_tokens`` tokens the KV cache holds (replica);
    ``max_batch`` sequences of ``context_tokens`` it holds, at most vLLM's ``max_num_seqs``; ``fits``: weights,
    overhead and one sequence of ``max_context_tokens`` fit; ``fits_batch``: also the requested ``batch``.
    """

    weights_gb: np.ndarray
    kv_gb: np.ndarray
    overhead_gb: np.ndarray
    needed_gb: np.ndarray
    available_gb: np.ndarray
    margin_gb: np.ndarray
    total_gb: np.ndarray
    kv_capacity_tokens: np.ndarray
    max_batch: np.ndarray
    fits: np.ndarray
    fits_batch: np.ndarray

    def to_frame(self):

        return pd.DataFrame({k: np.atleast_1d(getattr(self, k)) for k in self.__dataclass_fields__})


def memory_fit(*, total_params_b, num_layers, num_key_value_heads, head_dim_, hidden_size, memory_size_gb,
               tensor_parallel=1, precision="bf16", context_tokens=1024.0, max_context_tokens=None, batch=1.0,
               utilisation=None, active_params_b=np.nan, num_experts=np.nan, experts_per_token=np.nan,
               vocab_size=np.nan, intermediate_size=np.nan, max_num_seqs=None, is_a100=False,
               kv_bytes_token=None, memory_type=None) -> MemoryFit:
    """The :class:`MemoryFit` of a replica of ``tensor_parallel`` GPUs of ``memory_size_gb`` (catalog, binary GB)
    serving the LLM at ``precision`` (one precision name for all rows) with ``batch`` running sequences of
    ``context_tokens`` tokens (mean held in the KV cache; :func:`mean_context_tokens`). Weights and KV cache are
    split evenly over the GPUs; the KV cache stays 16-bit (vLLM's ``kv_cache_dtype="auto"``).
    ``utilisation`` defaults to :func:`vllm_memory_utilisation`, ``max_num_seqs`` to vLLM's default,
    ``max_context_tokens`` (the longest sequence that must fit) to ``context_tokens``; ``kv_bytes_token`` (where
    finite) replaces the KV bytes per token of the replica (MLA: :func:`mla_kv_bytes_per_token` x GPUs).
    ``memory_type`` (the catalog's, per row or one value) gives the memory the driver reports
    (:func:`usable_memory_gb`: GDDR6's ECC reserve), which ``available_gb`` and the KV capacity use; ``total_gb`` stays
    the catalog size."""
    t = np.fmax(_f(tensor_parallel), 1.0)
    size = _f(memory_size_gb)
    util = vllm_memory_utilisation(size) if utilisation is None else _f(utilisation)
    mem = usable_memory_gb(size, memory_type)
    unq = unquantised_params_b(precision, total_params_b, np.where(np.isfinite(_f(active_params_b)),
                                                                   active_params_b, total_params_b),
                               num_experts, experts_per_token, vocab_size, hidden_size)
    weights = weights_bytes(total_params_b, precision, unq)
    kvb = kv_bytes_per_token(num_layers, num_key_value_heads, head_dim_)
    if kv_bytes_token is not None:
        kvb = np.where(np.isfinite(_f(kv_bytes_token)), _f(kv_bytes_token), kvb)
    seqs = vllm_default_max_num_seqs(mem, is_a100) if max_num_seqs is None else _f(max_num_seqs)
    overhead_gpu = runtime_overhead_gb(hidden_size, intermediate_size, vocab_size, t, seqs)
    capacity = kv_capacity_tokens(mem, weights / t, kvb / t, util, reserved_gb=overhead_gpu)
    ctx = _f(context_tokens)
    longest = ctx if max_context_tokens is None else _f(max_context_tokens)
    max_batch = np.minimum(np.floor(capacity / ctx), seqs)
    kv = _f(batch) * ctx * kvb
    available = t * util * mem * GIB
    needed = weights + kv + overhead_gpu * 1e9 * t
    fields = {"weights_gb": weights / 1e9, "kv_gb": kv / 1e9, "overhead_gb": overhead_gpu * t,
              "needed_gb": needed / 1e9, "available_gb": available / 1e9, "margin_gb": (available - needed) / 1e9,
              "total_gb": t * size * GIB / 1e9, "kv_capacity_tokens": capacity, "max_batch": max_batch,
              "fits": capacity >= longest, "fits_batch": (capacity >= longest) & (needed <= available)}
    arrays = np.broadcast_arrays(*fields.values())
    return MemoryFit(**{k: np.atleast_1d(np.array(a)) for k, a in zip(fields, arrays, strict=True)})
