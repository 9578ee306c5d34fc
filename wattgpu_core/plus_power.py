"""WattGPU+ power model: mean GPU power as serving-idle power plus a busy share of the headroom up to TDP.

The formulation, in plain words. While vLLM holds a GPU it sits at a *serving-idle* power ``B`` (a GPU constant,
above the cooled-down idle power on most architectures). Whenever it works it draws more, at most its TDP, so mean
power over a measurement window is

    P = B + (TDP - B) x duty x g

- ``duty`` is the share of the window the GPU is busy. Offline (one ``generate()`` call) it is 1. For a server fed
  by Poisson arrivals at rate lambda with requests lasting T seconds it is ``1 - exp(-lambda T)`` in steady state
  (the chance that at least one request is in service), corrected for the Watt Counts window (300 s of arrivals;
  the final inter-arrival gap and the drain of the last request are inside the window; :func:`server_busy_fraction`).
  T = output tokens x decode step time + prefill, from a roofline: a step streams the weights and the KV cache once
  at the memory bandwidth, plus a fixed host overhead per step (constants fitted on the training rows' ITL).
- ``g`` in [0, 1] is how much of the headroom the work uses. A small monotone XGBoost model learns it from
  quantities that do not name the GPU: the GPU's busy share within a step (GPU time / (GPU + host time), from the
  roofline at the effective batch; the host time grows with the batch), how compute-bound the step is, ln batch
  (offline) or ln concurrency (server, Little's law), the active-parameter share (MoE), and two per-GPU power
  levels in headroom units, each read only in the regime it is measured in (0 in the other, as the compute-bound
  share is 0 on servers): ``D u / (TDP - B)`` (decode power, below; server rows) and ``F`` (the headroom share a
  saturating offline batch reaches; offline rows). It is fitted as ``y / duty`` with weight ``duty^2``, i.e. least
  squares on ``y = (P - B) / (TDP - B)``.

Three GPU constants are needed: ``B`` (W), ``D`` (W drawn above ``B`` by memory-bound decoding at full speed,
modelled as an energy per byte times the memory bandwidth) and ``F``. For a GPU with training rows they are
measured from those rows (per-GPU calibration): ``B`` is the intercept of power against duty over the low-duty
server runs, ``D`` the least-squares decode power of the server runs (capped at TDP), ``F`` the median headroom
share of the busy offline runs. For an unseen GPU they come from public specs through small sub-models fitted on
the training GPUs only (partial pooling, :func:`fit_group_latent`):

- ``ln B = a + b ln TDP + c [GDDR memory] + architecture offset``: the TDP exponent ``b`` is estimated *within*
  architectures; an architecture's offset is the mean residual of its training GPUs shrunk towards 0 with a prior
  weight of half a GPU (an architecture never seen gets 0). The rows need the catalog column ``architecture``
  (:func:`join_gpu_extras` adds it where missing); without it every GPU counts as of an unseen architecture, which
  costs accuracy on unseen GPUs;
- ``ln (D / bandwidth) = a + memory-family offset`` (HBM3/HBM3e, HBM2/HBM2e, GDDR), same shrinkage: the energy per
  byte depends on the memory technology;
- ``logit F`` = the training GPUs' mean.

The cooled-down idle power measured by Watt Counts (``idle_power_w``) is not read unless the user option
``PowerConfig.use_idle_power`` is on (off in every reported number): then an unseen GPU whose row carries a
measured idle power gets ``B = idle + r TDP``, ``r`` learned from the training GPUs like ``ln B``.

Predictions are bounded, ``B <= P <= TDP`` with ``0.02 TDP <= B <= 0.9 TDP``, and non-decreasing in the request
rate (duty and concurrency rise with lambda, ``g`` is monotone in concurrency). They are not claimed monotone in
the offline batch: the Watt Counts batches are 58 to 1024 sequences, smaller ones are extrapolation.

Workloads are continuous, and every physical quantity of a decode or prefill step is the shared physics of
:mod:`~wattgpu_core.physics` (:func:`decode_workload`: the same :class:`~wattgpu_core.physics.DecodeWorkload` the ITL
model uses): the offline effective batch (vLLM's ``max_num_seqs``, or ``batch_size``; the sequences the KV cache
holds; the drain at the end of the run), the weight and KV-cache bytes and the FLOPs of a step (MoE: the shared
weights plus the experts a batch touches), the server's busy fraction and the batch a request sees, the prefill
time, the tensor-parallel all-reduces; server rate ``request_rate_qps``; ``input_tokens`` and ``output_tokens``;
``num_gpus`` (tensor parallel). The paper's scenarios are particular workloads: offline = 1000 requests at the
default batch, server_low / high = lambda 0.017 / 0.33 with the Watt Counts window (column ``server_submit_s``:
seconds of arrivals, default 300; ``inf`` gives the steady state).

Serving stacks (framework and major.minor version, e.g. "vLLM 0.14"; column ``serving_stack`` where given): the
core model is fitted on one stack (vLLM 0.14 when present, else the most common one in ``train``). ``aux`` rows of that stack (Watt Counts MoE runs) add to the per-GPU levels and to the booster, not to
the timing constants. Rows of any other stack (in ``train`` or ``aux``) only fit a multiplicative calibration of
that stack (median log ratio measured / predicted, shrunk towards 1 with a prior of 5 rows), applied to rows of
that stack; the core stack's predictions do not change.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd

from .physics import (
    DEFAULT_STACK,
    VLLM_MAX_BATCHED_TOKENS,
    WATTCOUNTS_OFFLINE_REQUESTS,
    WATTCOUNTS_RATE_QPS,
    WATTCOUNTS_SUBMIT_S,
    DecodeWorkload,
    StepParameters,
    gemm_efficiency,
    per_unique,
    server_batch_seen,
    server_busy_fraction,
    serving_stack,
)
from .xgb import load as load_xgboost

__all__ = [
    "POWER_INPUTS",
    "POWER_REQUIRED",
    "GPU_EXTRA_COLUMNS",
    "PlusPowerModel",
    "PowerConfig",
    "Timing",
    "decode_workload",
    "fit_group_latent",
    "predict_group_latent",
    "join_gpu_extras",
    "memory_family",
    "physical_frame",
    "busy_share",
]

DEFAULT_INPUT_TOKENS, DEFAULT_OUTPUT_TOKENS = 15.0, 180.0  # Watt Counts means (SQuAD prompts, <= 256 tokens)
B_BOUNDS = (0.02, 0.9)  # serving-idle power as a fraction of TDP
# Levels used only when the training rows cannot tell (no server runs / no busy offline runs): about the Watt
# Counts GPUs' averages.
FALLBACK_BASE_FRACTION, FALLBACK_DECODE_W_PER_GB_S, FALLBACK_FULL = 0.2, 0.15, 0.95

# Columns of the rows frame the model reads. POWER_REQUIRED must be present and finite; the others are optional
# (absent or NaN -> the Watt Counts default named in the module docstring). idle_power_w is deliberately absent.
POWER_REQUIRED = (
    "gpu_id", "scenario", "tdp_w", "memory_bandwidth_gb_s", "fp16_tensor_dense_tflops", "memory_size_gb",
    "memory_type", "total_params_b", "num_layers", "hidden_size", "num_attention_heads", "num_key_value_heads",
)
POWER_OPTIONAL = (
    "active_params_b", "scenario_detail", "request_rate_qps", "input_tokens", "output_tokens", "num_requests",
    "batch_size", "num_gpus", "server_submit_s", "framework", "framework_version", "serving_stack", "architecture",
    "intermediate_size", "vocab_size",
)
POWER_INPUTS: tuple[str, ...] = POWER_REQUIRED + POWER_OPTIONAL
GPU_EXTRA_COLUMNS = ("architecture",)  # GPU catalog columns beyond the paper features that the model uses


# ------------------------------------------------------------------------------------------------------------------
# Physics: the shared decode step (physics.py) seen through this model's step-time constants
def memory_family(memory_type):
    """Memory technology family: HBM3 (HBM3, HBM3e, HBM4), HBM2 (HBM2, HBM2e, older HBM), GDDR, or other."""
    def family(value) -> str:
        m = ("" if pd.isna(value) else str(value)).upper().replace(" ", "")
        return "HBM3" if m.startswith(("HBM3", "HBM4")) else "HBM2" if m.startswith("HBM") \
            else "GDDR" if m.startswith("GDDR") else "other"

    return per_unique(family, memory_type, dtype=object)


def _is_gddr(memory_type) -> np.ndarray:
    return (memory_family(memory_type) == "GDDR").astype(float)


@dataclass(frozen=True)
class Timing:
    """Roofline step times. Server decode at batch 1: step = ``server_t0_s`` + ``server_k`` x memory time.
    Offline decode at batch b: step = ``offline_a`` x (memory + compute time) + ``server_t0_s`` + ``offline_h1_s``
    x b (host work: a fixed part per step and a part per sequence). Memory time = (weights read + b x context x KV
    bytes per token) / bandwidth; compute time = 2 N_active b / dense FP16 FLOPS."""

    server_t0_s: float = 1.2e-3
    server_k: float = 1.2
    offline_a: float = 0.4
    offline_h1_s: float = 4e-5


def _num(rows: pd.DataFrame, name: str, default) -> np.ndarray:
    if name not in rows.columns:
        return np.full(len(rows), default, dtype=float)
    v = pd.to_numeric(rows[name], errors="coerce").to_numpy(dtype=float)
    return np.where(np.isnan(v), default, v)


def _offline_mask(rows: pd.DataFrame) -> np.ndarray:
    return per_unique(lambda s: not pd.isna(s) and str(s).lower() == "offline", rows["scenario"], dtype=bool)


def _rate_qps(rows: pd.DataFrame) -> np.ndarray:
    lam = _num(rows, "request_rate_qps", np.nan)
    if "scenario_detail" in rows.columns:
        detail = per_unique(lambda d: np.nan if pd.isna(d) else WATTCOUNTS_RATE_QPS.get(str(d), np.nan),
                            rows["scenario_detail"])
        lam = np.where(np.isnan(lam), detail, lam)
    return lam


def decode_workload(rows: pd.DataFrame) -> DecodeWorkload:
    """The rows as the shared decode physics (:class:`~wattgpu_core.physics.DecodeWorkload`) sees them, with the
    power model's defaults where a column is absent or NaN: Watt Counts' mean prompt and output, 1000 requests
    offline (a closed loop keeps its steady state), the rate of the paper's server_low / server_high label, tensor
    parallel = ``num_gpus``."""
    offline = _offline_mask(rows)
    closed = rows["closed_loop"].fillna(False).to_numpy(bool) if "closed_loop" in rows.columns \
        else np.zeros(len(rows), bool)
    requests = np.where(offline & ~closed, _num(rows, "num_requests", WATTCOUNTS_OFFLINE_REQUESTS), np.nan)
    tp = _num(rows, "tensor_parallel", np.nan)
    frame = rows.assign(
        scenario_detail=np.where(offline, "offline", "server").astype(object),
        request_rate_qps=np.where(offline, 0.0, _rate_qps(rows)),
        input_tokens=_num(rows, "input_tokens", DEFAULT_INPUT_TOKENS),
        output_tokens=_num(rows, "output_tokens", DEFAULT_OUTPUT_TOKENS),
        num_requests=requests,
        tensor_parallel=np.where(np.isfinite(tp), tp, np.maximum(_num(rows, "num_gpus", 1.0), 1.0)))
    return DecodeWorkload.of(frame)


def physical_frame(rows: pd.DataFrame, timing: Timing = Timing()) -> pd.DataFrame:
    """Physical quantities per row (same index): duty, in-step GPU busy share ``u``, compute-bound share ``ci``,
    ln batch or concurrency, request time and step times (s), effective offline batch.

    Bytes, FLOPs, KV cache, batches, prefill and the busy fraction are the shared physics of one decode step
    (:mod:`~wattgpu_core.physics`, the same the ITL model uses); only the step-time constants (:class:`Timing`) are
    this model's own."""
    w = decode_workload(rows)
    offline = w.offline
    out, inp = w.output_tokens, w.input_tokens

    def comm_s(batch):  # tensor-parallel all-reduces of one decode step
        return w.step_parts(batch)["comm_s"]

    # Offline: the effective batch (vLLM's cap, the KV cache, the drain) and one decode step at that batch
    b_off = w.offline_batch
    t_mem, t_cmp = w.roofline_times_s(b_off)
    t_gpu = timing.offline_a * (t_mem + t_cmp)
    u_off = t_gpu / (t_gpu + timing.server_t0_s + timing.offline_h1_s * b_off + comm_s(b_off))
    # Prefill (Vidur-fitted GEMM rate): offline, the running batch's prompts share steps up to vLLM's token budget
    pf_tokens = np.where(offline, np.minimum(inp * b_off, VLLM_MAX_BATCHED_TOKENS), inp)
    t_pf = w.prefill_time_s(StepParameters(compute_efficiency=gemm_efficiency(pf_tokens)))
    # Server: decode at batch 1, request time, duty (the Watt Counts window), batch a request sees
    t_mem1, _ = w.roofline_times_s(1.0)
    t_step1 = timing.server_t0_s + timing.server_k * t_mem1 + comm_s(1.0)
    u_dec = timing.server_k * t_mem1 / t_step1
    t_req = out * t_step1 + t_pf
    lam = w.request_rate_qps
    duty = np.where(offline, 1.0, server_busy_fraction(lam, t_req, _num(rows, "server_submit_s",
                                                                        WATTCOUNTS_SUBMIT_S)))
    batch_seen = server_batch_seen(lam, t_req, w.batch_cap)
    # Prefill: compute-bound work (drawing near the power limit) in the share of busy GPU time it takes. Offline:
    # one prefill per request against the run's decode steps; server: lambda x prefill seconds per second of busy
    # time. Decode at the server's mean batch grows more compute-bound with the rate (``ci_batch``).
    off_decode = out * (t_mem + t_cmp) / b_off
    prefill_share = np.where(offline, t_pf / np.maximum(t_pf + off_decode, 1e-12),
                             np.clip(lam * t_pf / np.maximum(duty, 1e-9), 0.0, 1.0))
    t_mem_b, t_cmp_b = w.roofline_times_s(batch_seen)
    return pd.DataFrame({
        "prefill_share": prefill_share,
        "ci_batch": np.where(offline, 0.0, t_cmp_b / (t_mem_b + t_cmp_b)),
        "offline": offline.astype(float),
        "duty": duty,
        "u": np.where(offline, u_off, u_dec),
        "ci": np.where(offline, t_cmp / (t_mem + t_cmp), 0.0),
        "log_batch": np.log(np.where(offline, b_off, batch_seen)),
        "active_share": w.active_b / w.total_b,
        "b_off": b_off,
        "t_req_s": t_req,
        "t_step1_s": t_step1,
        "t_mem1_s": t_mem1,
        "t_gpu_s": t_mem + t_cmp,
    }, index=rows.index)


def busy_share(g, f, ph: pd.DataFrame) -> np.ndarray:
    """Share of the headroom (TDP - B) drawn over the window: duty x the headroom use while busy.

    While busy, decode draws ``g`` (the booster's share); the compute-bound part of the busy time (prefill, and at
    the server's mean batch the compute share of each decode step) draws at least ``F``, the share a saturating
    batch reaches: ``g + max(F - g, 0) x w`` with ``w = prefill share + (1 - prefill share) x ci_batch``. So power
    rises with the prompt length and with the request rate, and Watt Counts' ~14-token prompts at low rates
    (``w`` ~ 1e-3) are predicted as before.
    """
    s = ph["prefill_share"].to_numpy()
    w = s + (1.0 - s) * ph["ci_batch"].to_numpy()
    g = np.asarray(g, dtype=float)
    use = g + np.maximum(np.asarray(f, dtype=float) - g, 0.0) * w
    return np.clip(use * ph["duty"].to_numpy(), 0.0, 1.0)


def join_gpu_extras(rows: pd.DataFrame, gpus: pd.DataFrame) -> pd.DataFrame:
    """``rows`` plus the GPU catalog columns in :data:`GPU_EXTRA_COLUMNS` (by gpu_id), where missing (a new frame)."""
    out = rows.copy()
    table = gpus.drop_duplicates("gpu_id").set_index("gpu_id")
    for col in GPU_EXTRA_COLUMNS:
        if col not in out.columns and col in table.columns:
            out[col] = out["gpu_id"].map(table[col]).astype(object)
    return out


# ------------------------------------------------------------------------------------------------------------------
# GPU latents and their spec sub-models
def fit_group_latent(y, x, groups, design, k: float) -> dict:
    """Partial-pooling fit of a per-GPU quantity ``y`` (one value per training GPU).

    y = design @ beta + slope x + offset[group]. The slope is estimated from the variation of ``x`` *within* groups
    (the fixed-effects estimator; pooled least squares if no group has two GPUs with different x; none when ``x``
    is None); beta by least squares on y - slope x; each group's offset is the sum of its residuals over
    (its number of GPUs + ``k``): shrunk towards 0, a group never seen gets 0.
    """
    y = np.asarray(y, dtype=float)
    groups = np.asarray(groups, dtype=object)
    design = np.asarray(design, dtype=float).reshape(len(y), -1)
    slope = 0.0
    if x is not None:
        x = np.asarray(x, dtype=float)
        num = den = 0.0
        for g in pd.unique(groups):
            m = groups == g
            if m.sum() >= 2:
                xc = x[m] - x[m].mean()
                num += float(xc @ (y[m] - y[m].mean()))
                den += float(xc @ xc)
        if den > 1e-9:
            slope = num / den
        elif len(y) > design.shape[1] and np.ptp(x) > 0:
            slope = float(np.linalg.lstsq(np.column_stack([design, x]), y, rcond=None)[0][-1])
    r = y - (slope * x if x is not None else 0.0)
    beta = np.linalg.lstsq(design, r, rcond=None)[0] if len(y) else np.zeros(design.shape[1])
    res = r - design @ beta
    offsets = {str(g): float(res[groups == g].sum() / ((groups == g).sum() + k)) for g in pd.unique(groups)}
    return {"slope": float(slope), "beta": [float(b) for b in beta], "offsets": offsets}


def predict_group_latent(fit: dict, x, groups, design) -> np.ndarray:
    """The value :func:`fit_group_latent` gives rows with slope variable ``x``, ``groups`` and ``design``."""
    design = np.asarray(design, dtype=float)
    out = design @ np.asarray(fit["beta"], dtype=float)
    if x is not None:
        out = out + fit["slope"] * np.asarray(x, dtype=float)
    return out + per_unique(lambda g: fit["offsets"].get(str(g), 0.0), groups)


def _fit_decode_power(power, base, headroom, x) -> float:
    """D (W) minimising sum (P - B - min(D x, headroom))^2 over a log grid (power capped at TDP)."""
    grid = np.exp(np.linspace(np.log(1.0), np.log(1e4), 461))
    pred = np.minimum(grid[:, None] * x[None, :], headroom)
    sse = ((power - base)[None, :] - pred) ** 2
    return float(grid[int(np.argmin(sse.sum(axis=1)))])


# ------------------------------------------------------------------------------------------------------------------
# The model
@dataclass(frozen=True)
class PowerConfig:
    """Hyper-parameters (``python bench/explore_plus_power.py --variants`` measures the sensitivity to them)."""

    features: tuple[str, ...] = ("offline", "u", "ci", "log_batch", "active_share", "dfrac", "F")
    monotone: tuple[str, ...] = ("u", "log_batch", "dfrac", "F")  # increasing
    max_depth: int = 3
    rounds: int = 400
    eta: float = 0.05
    reg_lambda: float = 1.0
    base_prior_gpus: float = 0.5  # shrinkage of architecture offsets of ln B
    decode_prior_gpus: float = 0.5  # shrinkage of memory-family offsets of ln(D / bandwidth)
    low_duty: float = 0.2  # server runs below this duty estimate B
    stack_prior_rows: float = 5.0  # shrinkage of a stack calibration towards 1
    # What the rows of ``aux`` from the core stack (Watt Counts MoE runs) feed: the per-GPU levels and the
    # booster (which sees ``active_share``), not the timing constants (MoE kernels are slower than the roofline).
    aux_in: tuple[str, ...] = ("levels", "booster")
    # User option, OFF in every reported number: an unseen GPU whose row carries a measured ``idle_power_w`` (the
    # user's own reading of the idle GPU) gets B = idle + r x TDP, r learned like ln B (architecture offsets).
    use_idle_power: bool = False


@dataclass
class PlusPowerModel:
    """Fitted WattGPU+ power model (see the module docstring). ``fit`` -> ``predict(rows)`` in W per GPU."""

    config: PowerConfig
    timing: Timing
    gpus: dict  # gpu_id -> {"B": W, "D": W, "F": share} measured on the training rows (NaN where unobserved)
    base_fit: dict
    decode_fit: dict
    full_fit: dict
    booster_json: str
    stack: str
    stack_factors: dict = field(default_factory=dict)  # serving stack -> multiplicative factor
    idle_fit: dict | None = None  # (B - idle) / TDP sub-model, only with config.use_idle_power
    _booster: object = field(default=None, repr=False, compare=False)
    # the LLM's name is no input (only its sizes and shape are): explanations leave its group out (exactly 0)
    unread_columns: ClassVar[tuple[str, ...]] = ("llm_id",)

    # --------------------------------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, train: pd.DataFrame, *, aux: pd.DataFrame | None = None, seed: int = 0, n_threads: int = 1,
            config: PowerConfig | None = None) -> PlusPowerModel:
        config = config or PowerConfig()
        rows = _usable(train)
        stack = key = _core_stack(rows)
        extra = _usable(aux)
        main = rows[_stack_key(rows) == key]
        others = pd.concat([rows[_stack_key(rows) != key], extra[_stack_key(extra) != key]], ignore_index=True)
        extra = extra[_stack_key(extra) == key]

        def with_aux(part: str) -> pd.DataFrame:
            return pd.concat([main, extra], ignore_index=True) if part in config.aux_in and len(extra) else main

        timing = _fit_timing(with_aux("timing"))
        core = with_aux("levels")
        gpus = _gpu_levels(core, physical_frame(core, timing), config)
        table = core.drop_duplicates("gpu_id").set_index("gpu_id")
        gt = table.loc[[g for g in table.index if np.isfinite(gpus[g]["B"])]].reset_index()
        if len(gt):
            base_fit = fit_group_latent(np.log([gpus[g]["B"] for g in gt["gpu_id"]]),
                                        np.log(gt["tdp_w"].to_numpy(float)), _arch(gt),
                                        np.column_stack([np.ones(len(gt)), _is_gddr(gt["memory_type"])]),
                                        config.base_prior_gpus)
        else:  # no server runs to learn from: B = FALLBACK_BASE_FRACTION x TDP
            base_fit = {"slope": 1.0, "beta": [math.log(FALLBACK_BASE_FRACTION), 0.0], "offsets": {}}
        dt = gt[[np.isfinite(gpus[g]["D"]) for g in gt["gpu_id"]]] if len(gt) else gt
        if len(dt):
            d = np.array([gpus[g]["D"] for g in dt["gpu_id"]])
            decode_fit = fit_group_latent(np.log(d / dt["memory_bandwidth_gb_s"].to_numpy(float)), None,
                                          memory_family(dt["memory_type"]), np.ones((len(dt), 1)),
                                          config.decode_prior_gpus)
        else:
            decode_fit = {"slope": 0.0, "beta": [math.log(FALLBACK_DECODE_W_PER_GB_S)], "offsets": {}}
        f = np.clip([gpus[g]["F"] for g in gpus if np.isfinite(gpus[g]["F"])], 0.05, 0.995)
        logit_f = float(np.mean(np.log(f / (1 - f)))) if len(f) else math.log(FALLBACK_FULL / (1 - FALLBACK_FULL))
        full_fit = {"slope": 0.0, "beta": [logit_f], "offsets": {}}
        model = cls(config, timing, gpus, base_fit, decode_fit, full_fit, "", stack)
        if config.use_idle_power and len(gt) and "idle_power_w" in gt.columns:
            it = gt[np.isfinite(pd.to_numeric(gt["idle_power_w"], errors="coerce").to_numpy(float))]
            if len(it):
                rise = (np.array([gpus[g]["B"] for g in it["gpu_id"]]) - it["idle_power_w"].to_numpy(float)) \
                    / it["tdp_w"].to_numpy(float)
                model.idle_fit = fit_group_latent(rise, None, _arch(it), np.column_stack(
                    [np.ones(len(it)), _is_gddr(it["memory_type"])]), config.base_prior_gpus)
        core = with_aux("booster")
        model._fit_booster(core, physical_frame(core, timing), seed, n_threads)
        model.stack_factors = model._fit_stacks(others)
        return model

    def _levels(self, rows: pd.DataFrame, ph: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """B, D (W) and F per row: the training GPU's measured value, else the spec sub-model's."""
        tdp = rows["tdp_w"].to_numpy(float)
        ones = np.ones((len(rows), 1))
        log_b = predict_group_latent(self.base_fit, np.log(tdp), _arch(rows),
                                     np.column_stack([ones, _is_gddr(rows["memory_type"])]))
        b = np.exp(log_b)
        if self.config.use_idle_power and self.idle_fit is not None and "idle_power_w" in rows.columns:
            idle = pd.to_numeric(rows["idle_power_w"], errors="coerce").to_numpy(float)
            rise = predict_group_latent(self.idle_fit, None, _arch(rows),
                                        np.column_stack([ones, _is_gddr(rows["memory_type"])]))
            b = np.where(np.isfinite(idle), idle + np.maximum(rise, 0.0) * tdp, b)
        d = np.exp(predict_group_latent(self.decode_fit, None, memory_family(rows["memory_type"]), ones)) \
            * rows["memory_bandwidth_gb_s"].to_numpy(float)
        f = 1.0 / (1.0 + np.exp(-predict_group_latent(self.full_fit, None, np.full(len(rows), ""), ones)))
        gid = rows["gpu_id"].astype(str).to_numpy()
        for name, arr in (("B", b), ("D", d), ("F", f)):
            seen = per_unique(lambda g, n=name: self.gpus.get(g, {}).get(n, np.nan), gid)
            arr[:] = np.where(np.isfinite(seen), seen, arr)
        b = np.clip(b, B_BOUNDS[0] * tdp, B_BOUNDS[1] * tdp)
        return b, d, f

    def _matrix(self, rows, ph, b, d, f) -> np.ndarray:
        # Each regime reads the GPU level measured in it, as ci is an offline feature (0 on servers): dfrac, the
        # batch-1 decode power D x u in headroom units, only on server rows (D is measured on batch-1 server runs;
        # an unseen GPU's D from specs says little about an offline batch of hundreds), F, the share a saturating
        # offline batch reaches, only on offline rows (on server rows it would mark the training GPUs apart).
        off = ph["offline"].to_numpy() > 0
        dfrac = np.minimum(d * ph["u"].to_numpy() / (rows["tdp_w"].to_numpy(float) - b), 2.0)
        cols = {"offline": ph["offline"], "u": ph["u"], "ci": ph["ci"], "log_batch": ph["log_batch"],
                "active_share": ph["active_share"], "dfrac": np.where(off, 0.0, dfrac), "F": np.where(off, f, 0.0)}
        return np.column_stack([np.asarray(cols[c], dtype=float) for c in self.config.features])

    def _fit_booster(self, core, ph, seed, n_threads) -> None:
        xgb = load_xgboost()
        b, d, f = self._levels(core, ph)
        tdp = core["tdp_w"].to_numpy(float)
        y = (core["power_w"].to_numpy(float) - b) / (tdp - b)
        duty = np.maximum(ph["duty"].to_numpy(), 1e-6)
        mono = tuple(int(c in self.config.monotone) for c in self.config.features)
        params = {"objective": "reg:squarederror", "max_depth": self.config.max_depth, "eta": self.config.eta,
                  "lambda": self.config.reg_lambda, "nthread": int(n_threads), "seed": int(seed),
                  "monotone_constraints": "(" + ",".join(map(str, mono)) + ")"}
        dtrain = xgb.DMatrix(self._matrix(core, ph, b, d, f), label=y / duty, weight=duty**2, nthread=int(n_threads))
        booster = xgb.train(params, dtrain, self.config.rounds)
        booster.set_param({"nthread": 1})
        self._booster = booster
        self.booster_json = bytes(booster.save_raw("json")).decode()

    def _fit_stacks(self, others: pd.DataFrame) -> dict:
        out = {}
        if others is None or others.empty:
            return out
        pred = self._predict_core(others)
        ratio = np.log(others["power_w"].to_numpy(float) / pred)
        keys = _stack_key(others)
        for key in pd.unique(keys):
            r = ratio[(keys == key) & np.isfinite(ratio)]
            if len(r):
                out[str(key)] = float(np.exp(np.median(r) * len(r) / (len(r) + self.config.stack_prior_rows)))
        return out

    # --------------------------------------------------------------------------------------------------------------
    def _predict_core(self, rows: pd.DataFrame) -> np.ndarray:
        if len(rows) == 0:
            return np.zeros(0)
        ph = physical_frame(rows, self.timing)
        b, d, f = self._levels(rows, ph)
        g = np.clip(self._headroom_use(self._matrix(rows, ph, b, d, f)), 0, 1)
        tdp = rows["tdp_w"].to_numpy(float)
        return b + (tdp - b) * busy_share(g, f, ph)

    def _headroom_use(self, x: np.ndarray) -> np.ndarray:
        """The booster's output per row of ``x``; a large ``x`` (explanations: thousands of rows sharing inputs)
        is predicted once per distinct row."""
        if len(x) < 1000:
            return np.asarray(self.booster.inplace_predict(x), dtype=float)
        distinct, inverse = np.unique(x, axis=0, return_inverse=True)
        return np.asarray(self.booster.inplace_predict(distinct), dtype=float)[inverse.reshape(-1)]

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        """Mean power per GPU (W), one per row; within [serving-idle, TDP] (other stacks: times their factor)."""
        p = self._predict_core(rows)
        if self.stack_factors and len(rows):
            factor = pd.Series(_stack_key(rows)).map(self.stack_factors).fillna(1.0).to_numpy(float)
            p = np.minimum(p * factor, rows["tdp_w"].to_numpy(float))
        return p

    def breakdown(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The parts of each row's predicted power (for explanations; the prediction itself is :meth:`predict`).

        Per row: ``serving_idle_w`` (B), ``headroom_w`` (TDP - B), ``duty`` (busy share of the window),
        ``headroom_use`` (g, the share of the headroom the work draws while busy), ``busy_w`` =
        headroom x min(duty x g, 1), ``stack_factor`` (1 on the core serving stack) and ``power_w`` =
        min((B + busy) x factor, TDP), equal to ``predict(rows)``; with ``tdp_w``, ``gpu_busy_share`` (u, the GPU's
        share of a decode step against host time), ``compute_share`` (ci), ``batch`` (offline effective batch or
        server concurrency) and ``measured_levels`` (True where B, D and F were measured on this GPU's runs rather
        than taken from its specs).
        """
        n = len(rows)
        ph = physical_frame(rows, self.timing)
        b, d, f = self._levels(rows, ph)
        g = np.clip(np.asarray(self.booster.inplace_predict(self._matrix(rows, ph, b, d, f)), dtype=float), 0, 1) \
            if n else np.zeros(0)
        tdp = rows["tdp_w"].to_numpy(float)
        duty = ph["duty"].to_numpy()
        busy = (tdp - b) * busy_share(g, f, ph)
        power = b + busy  # as _predict_core
        factor = np.ones(n)
        if self.stack_factors and n:  # as predict
            factor = pd.Series(_stack_key(rows)).map(self.stack_factors).fillna(1.0).to_numpy(float)
            power = np.minimum(power * factor, tdp)
        measured = np.array([np.isfinite(self.gpus.get(str(gid), {}).get("B", np.nan))
                             for gid in rows["gpu_id"].astype(object)], dtype=bool)
        return pd.DataFrame({
            "serving_idle_w": b, "headroom_w": tdp - b, "duty": duty, "headroom_use": g, "busy_w": busy,
            "stack_factor": factor, "power_w": power, "tdp_w": tdp, "gpu_busy_share": ph["u"].to_numpy(),
            "compute_share": ph["ci"].to_numpy(), "batch": np.exp(ph["log_batch"].to_numpy()),
            "prefill_share": ph["prefill_share"].to_numpy(),
            "measured_levels": measured,
        }, index=rows.index)

    def serving_idle_w(self, rows: pd.DataFrame) -> np.ndarray:
        """The serving-idle power B (W) the model uses for each row's GPU."""
        return self._levels(rows, physical_frame(rows, self.timing))[0]

    @property
    def booster(self):
        if self._booster is None:
            booster = load_xgboost().Booster()
            booster.load_model(bytearray(self.booster_json.encode()))
            booster.set_param({"nthread": 1})
            self._booster = booster
        return self._booster

    # --------------------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-serialisable parameters (the booster as XGBoost's own JSON text; NaN written as None)."""
        def clean(v):
            return None if isinstance(v, float) and math.isnan(v) else v
        return {
            "kind": "wattgpu-plus-power", "version": 1,
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.config).items()},
            "timing": {k: float(v) for k, v in asdict(self.timing).items()},
            "gpus": {g: {k: clean(float(v)) for k, v in lv.items()} for g, lv in self.gpus.items()},
            "base_fit": self.base_fit, "decode_fit": self.decode_fit, "full_fit": self.full_fit,
            "stack": self.stack, "stack_factors": dict(self.stack_factors), "idle_fit": self.idle_fit,
            "booster": self.booster_json,
        }

    @classmethod
    def from_dict(cls, d: dict) -> PlusPowerModel:
        if d.get("kind") != "wattgpu-plus-power":
            raise ValueError("not a WattGPU+ power model")
        config = PowerConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d["config"].items()})
        gpus = {g: {k: (np.nan if v is None else float(v)) for k, v in lv.items()} for g, lv in d["gpus"].items()}
        model = cls(config, Timing(**d["timing"]), gpus, d["base_fit"], d["decode_fit"], d["full_fit"],
                    d["booster"], str(d["stack"]), dict(d["stack_factors"]), d.get("idle_fit"))
        _ = model.booster  # load now, so that predicting never mutates the model
        return model


# ------------------------------------------------------------------------------------------------------------------
# Fitting helpers
def _usable(rows: pd.DataFrame | None) -> pd.DataFrame:
    if rows is None or rows.empty:
        return pd.DataFrame(columns=list(POWER_REQUIRED) + ["power_w"])
    need = [c for c in POWER_REQUIRED if c != "memory_type"] + ["power_w"]
    ok = rows[need].notna().all(axis=1).to_numpy().copy()
    ok &= pd.to_numeric(rows["power_w"], errors="coerce").gt(0).to_numpy()
    ok &= pd.to_numeric(rows["tdp_w"], errors="coerce").gt(0).to_numpy()
    return rows[ok]


def _stack_key(rows: pd.DataFrame) -> np.ndarray:
    """Each row's serving stack: its ``serving_stack`` column where given, else from framework and version."""
    none = np.full(len(rows), None, dtype=object)
    fw = rows["framework"].to_numpy(dtype=object) if "framework" in rows.columns else none
    ver = rows["framework_version"].to_numpy(dtype=object) if "framework_version" in rows.columns else none
    key = serving_stack(fw, ver)
    key = np.where(pd.isna(key), DEFAULT_STACK, key)  # no framework named: the stack the models are trained on
    if "serving_stack" in rows.columns:
        given = rows["serving_stack"].to_numpy(dtype=object)
        ok = per_unique(lambda s: isinstance(s, str) and bool(s.strip()), given, dtype=bool)
        key = np.where(ok, given, key)
    return key.astype(object)


def _core_stack(rows: pd.DataFrame) -> str:
    keys = pd.Series(_stack_key(rows))
    if keys.empty or (keys == DEFAULT_STACK).any():
        return DEFAULT_STACK
    return str(keys.value_counts().index[0])


def _arch(rows: pd.DataFrame) -> np.ndarray:
    if "architecture" not in rows.columns:
        return np.full(len(rows), "", dtype=object)
    return per_unique(lambda a: "" if pd.isna(a) else str(a), rows["architecture"], dtype=object)


def _fit_timing(core: pd.DataFrame) -> Timing:
    """The :class:`Timing` constants by non-negative least squares on relative error from the training rows' ITL:
    server rows (ITL = step time at batch 1) give ``server_t0_s`` and ``server_k``; offline rows (ITL x batch =
    step time) then give ``offline_a`` and ``offline_h1_s``. Defaults where fewer than 20 rows."""
    from scipy.optimize import nnls  # lazy: scipy loads only when a model is fitted, not when the app predicts

    default = Timing()
    itl = _num(core, "itl_s", np.nan)
    defs = core["itl_definition"].astype(str).to_numpy() if "itl_definition" in core.columns \
        else np.full(len(core), "")
    offline = _offline_mask(core)
    ok = np.isfinite(itl) & (itl > 0) & (_num(core, "num_gpus", 1.0) == 1) & (defs != "tpot_mean")
    t0, k = default.server_t0_s, default.server_k
    srv = ok & ~offline
    if srv.sum() >= 20:
        ph = physical_frame(core[srv], default)
        a = np.column_stack([np.ones(srv.sum()), ph["t_mem1_s"]]) / itl[srv][:, None]
        (t0, k), _ = nnls(a, np.ones(srv.sum()))
        if k <= 0:
            t0, k = default.server_t0_s, default.server_k
    a_, h1 = default.offline_a, default.offline_h1_s
    off = ok & offline
    if off.sum() >= 20:
        ph = physical_frame(core[off], default)
        step = itl[off] * ph["b_off"].to_numpy() - t0
        a = np.column_stack([ph["t_gpu_s"], ph["b_off"]]) / np.abs(step)[:, None]
        (a_, h1), _ = nnls(a, np.sign(step))
        if a_ <= 0:
            a_, h1 = default.offline_a, default.offline_h1_s
    return Timing(float(t0), float(k), float(a_), float(h1))


def _gpu_levels(core: pd.DataFrame, ph: pd.DataFrame, config: PowerConfig) -> dict:
    """B, D, F of every GPU in the training rows (NaN where its rows cannot tell)."""
    out = {}
    power = core["power_w"].to_numpy(float)
    offline = ph["offline"].to_numpy() > 0
    duty = ph["duty"].to_numpy()
    u = ph["u"].to_numpy()
    gid = core["gpu_id"].astype(str).to_numpy()
    tdp = core["tdp_w"].to_numpy(float)
    for g in pd.unique(gid):
        m = gid == g
        low = m & ~offline & (duty < config.low_duty)
        b = d = f = np.nan
        if low.sum() >= 3:
            if np.ptp(duty[low]) > 0:
                coef = np.polyfit(duty[low], power[low], 1)
                b = min(float(coef[1]), float(np.median(power[low])))
            else:
                b = float(np.median(power[low]))
            b = float(np.clip(b, B_BOUNDS[0] * tdp[m][0], B_BOUNDS[1] * tdp[m][0]))
        srv = m & ~offline
        if np.isfinite(b) and srv.sum() >= 3:
            d = _fit_decode_power(power[srv], b, tdp[m][0] - b, duty[srv] * u[srv])
        busy = m & offline & (u > 0.4)
        if np.isfinite(b) and busy.sum():
            f = float(np.median((power[busy] - b) / (tdp[m][0] - b)))
        out[str(g)] = {"B": b, "D": d, "F": f}
    return out
