"""WattGPU+ inter-token latency: a roofline with learned efficiencies, a power ceiling and per-LLM corrections.

ITL is the physics of :mod:`~wattgpu_core.physics` (decode steps over the effective batch, weights and KV cache
read once per step, 2 N_active FLOPs per token, prefill, drain, the server's mean running batch) with a handful of
parameters fitted to the training runs instead of datasheet peaks:

* achieved memory bandwidth and tensor rate as fractions of the datasheet values (``memory_efficiency``,
  ``compute_efficiency``), a fixed per-step overhead and a per-sequence overhead (host work per token);
* a power ceiling on tensor throughput, (TDP - static power) x TFLOPS per watt, with TFLOPS per watt =
  ``power_tflops_per_w`` x (datasheet TFLOPS / TDP) ^ ``power_exponent``: a board whose TDP is small for its
  tensor cores (L4, T4, H100 NVL) is power-limited in large offline batches;
* architecture effects, shrunk towards zero (ridge): TFLOPS per watt per architecture and per architecture family
  (compute capability 7.x, 8.x, 9.x, ...) and achieved bandwidth per family. An architecture or family absent from
  the training data gets none (the spec-sheet curve), except that a generation newer than all of them inherits the
  latest one's (a Blackwell GPU is taken to be at least as efficient as Hopper, not as an average generation).

The fit minimises a robust (soft-L1) loss on ln ITL over dense LLMs. On top, each LLM seen in training gets its own
correction per scenario (offline / server): the shrunk mean of its ln residuals, which captures what the specs miss
about that model's kernels and outputs; an LLM the model has not seen gets none. MoE LLMs (auxiliary runs) also get
a correction per GPU family and scenario for their expert kernels (vLLM's fused-MoE kernels are several times slower
on Volta / Turing than the bytes they move suggest), which an unseen MoE LLM inherits. ITL is therefore non-increasing in memory
bandwidth, tensor TFLOPS and TDP by construction (``power_exponent`` is bounded to [0, 1]; a test checks it).

Serving stacks other than the one the model is trained on (Watt Counts: vLLM 0.14) get a per-stack calibration
fitted on their runs only (they never change the default-stack fit): extra host time per decode step and per
sequence, and a residual factor. Host overhead is additive, not a factor: under an older vLLM that spends most of a
step on the CPU, a faster GPU shortens only the GPU part of the step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np
import pandas as pd

from .physics import (
    DEFAULT_STACK,
    GEMM_ROOFLINE_P,
    DecodeWorkload,
    StepParameters,
    per_unique,
    power_limited_tflops,
    smooth_max,
)

# Compute-capability family of each GPU architecture (the catalog's ``architecture`` names).
ARCH_FAMILY = MappingProxyType({
    "Volta": "sm7x", "Turing": "sm7x", "Ampere": "sm8x", "Ada Lovelace": "sm8x", "Hopper": "sm9x",
    "Blackwell": "sm10x", "Blackwell Ultra": "sm10x", "Blackwell 2.0": "sm12x",
})
# Generations in order (NVIDIA's). An architecture or family newer than every one in the training data inherits the
# effects of the latest trained one: a new generation is assumed at least as efficient per watt as its predecessor,
# not reset to the average of older ones. One between trained generations gets none (the spec-sheet curve).
ARCH_ORDER = ("Volta", "Turing", "Ampere", "Ada Lovelace", "Hopper", "Blackwell", "Blackwell Ultra", "Blackwell 2.0")
FAMILY_ORDER = ("sm7x", "sm8x", "sm9x", "sm10x", "sm12x")


def _inherited(effects: Mapping[str, float], key, order: tuple[str, ...]) -> float:
    """``effects[key]``; for an untrained ``key`` newer (in ``order``) than every trained one, the latest trained
    one's effect; otherwise 0."""
    if not isinstance(key, str):
        return 0.0
    if key in effects:
        return float(effects[key])
    trained = [order.index(k) for k in effects if k in order]
    if key not in order or not trained or order.index(key) < max(trained):
        return 0.0
    return float(effects[order[max(trained)]])
ITL_INPUTS: tuple[str, ...] = (
    "llm_id", "gpu_id", "scenario_detail", "memory_bandwidth_gb_s", "fp16_tensor_dense_tflops", "memory_size_gb",
    "tdp_w", "architecture", "total_params_b", "active_params_b", "num_layers", "hidden_size",
    "num_attention_heads", "num_key_value_heads", "head_dim", "num_experts", "experts_per_token", "input_tokens",
    "output_tokens", "max_output_tokens", "num_requests", "batch_size", "request_rate_qps", "tensor_parallel",
    "memory_type", "intermediate_size", "vocab_size",  # what the driver reports and vLLM reserves: KV-cache room
)
REQUIRED_INPUTS: tuple[str, ...] = ("memory_bandwidth_gb_s", "fp16_tensor_dense_tflops", "memory_size_gb", "tdp_w",
                                    "total_params_b", "num_layers", "hidden_size", "num_attention_heads",
                                    "num_key_value_heads", "output_tokens")
_GLOBAL = ("log_memory_efficiency", "log_compute_efficiency", "log_overhead_s", "log_per_sequence_s",
           "log_power_tflops_per_w", "power_exponent", "log_static_power_w")
_START = (np.log(0.8), np.log(0.6), np.log(1e-3), np.log(1e-6), np.log(0.3), 0.5, np.log(20.0))
_LOWER = (np.log(0.05), np.log(0.02), np.log(1e-6), np.log(1e-9), np.log(0.005), 0.0, np.log(0.1))
_UPPER = (np.log(1.5), np.log(1.0), np.log(0.1), np.log(1e-3), np.log(10.0), 1.0, np.log(300.0))
EFFECT_RIDGE = 0.01  # penalty weight of the architecture effects, per 100 training rows
LLM_SHRINK_RUNS = 5.0  # an LLM's correction is sum(residuals) / (runs + this)
ROBUST_SCALE = 0.1  # soft-L1 scale on ln ITL (residuals beyond ~10% count linearly)


def _effect(effects: Mapping[str, float], key: str) -> float:
    """``effects[key]``, 0 where absent or NaN."""
    value = effects.get(key, np.nan)
    return 0.0 if pd.isna(value) else float(value)


def scenario_pool(scenario_detail) -> np.ndarray:
    return np.where(np.asarray(scenario_detail, dtype=object) == "offline", "offline", "server").astype(object)


def arch_family(architecture) -> np.ndarray:
    return per_unique(lambda a: ARCH_FAMILY.get(a) if isinstance(a, str) else None, architecture, dtype=object)


@dataclass(frozen=True)
class ItlCalibration:
    """The fitted parameters of the calibrated roofline (global values and architecture effects, ln scale)."""

    memory_efficiency: float
    compute_efficiency: float
    overhead_s: float
    per_sequence_s: float
    power_tflops_per_w: float
    power_exponent: float
    static_power_w: float
    arch_effects: Mapping[str, float] = field(default_factory=dict)
    family_effects: Mapping[str, float] = field(default_factory=dict)
    family_memory_effects: Mapping[str, float] = field(default_factory=dict)

    def step_parameters(self, frame_or_arrays) -> StepParameters:
        """Per-row parameters: the architecture and family effects of each row's GPU applied."""
        arch = np.asarray(frame_or_arrays["architecture"], dtype=object)
        fam = arch_family(arch)
        da = per_unique(lambda a: _inherited(self.arch_effects, a, ARCH_ORDER), arch)
        df = per_unique(lambda f: _inherited(self.family_effects, f, FAMILY_ORDER), fam)
        dm = per_unique(lambda f: _inherited(self.family_memory_effects, f, FAMILY_ORDER), fam)
        tflops = np.asarray(frame_or_arrays["fp16_tensor_dense_tflops"], dtype=float)
        tdp = np.asarray(frame_or_arrays["tdp_w"], dtype=float)
        per_w = self.power_tflops_per_w * (tflops / tdp) ** self.power_exponent * np.exp(da + df)
        return StepParameters(memory_efficiency=self.memory_efficiency * np.exp(dm),
                              compute_efficiency=self.compute_efficiency,
                              power_tflops=power_limited_tflops(tdp, per_w, self.static_power_w),
                              overhead_s=self.overhead_s, per_sequence_s=self.per_sequence_s)

    def to_dict(self) -> dict:
        return {k: (dict(v) if isinstance(v, Mapping) else float(v)) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: Mapping) -> ItlCalibration:
        maps = ("arch_effects", "family_effects", "family_memory_effects")
        return cls(**{k: (MappingProxyType({a: float(b) for a, b in v.items()}) if k in maps else float(v))
                      for k, v in d.items()})


@dataclass(frozen=True)
class _Design:
    """Rows prepared for fitting: the physics arrays and the codes of each row's architecture and family."""

    work: DecodeWorkload
    tflops: np.ndarray
    tdp: np.ndarray
    arch_code: np.ndarray  # -1: no architecture effect
    fam_code: np.ndarray
    archs: tuple[str, ...]
    fams: tuple[str, ...]

    @classmethod
    def of(cls, frame: pd.DataFrame) -> _Design:
        arch = np.asarray(frame["architecture"], dtype=object)
        fam = arch_family(arch)
        archs = tuple(sorted({a for a in arch if isinstance(a, str)}))
        fams = tuple(sorted({f for f in fam if isinstance(f, str)}))
        a_code = np.asarray([archs.index(a) if isinstance(a, str) else -1 for a in arch])
        f_code = np.asarray([fams.index(f) if isinstance(f, str) else -1 for f in fam])
        return cls(DecodeWorkload.of(frame), frame["fp16_tensor_dense_tflops"].to_numpy(float),
                   frame["tdp_w"].to_numpy(float), a_code, f_code, archs, fams)

    def step_parameters(self, theta: np.ndarray) -> StepParameters:
        """The per-row step parameters at ``theta`` (globals, then architecture, family and family-memory
        effects)."""
        na, nf = len(self.archs), len(self.fams)
        em, ec, c0, c1 = theta[:4]
        dm = np.r_[theta[7 + na + nf:7 + na + 2 * nf], 0.0][self.fam_code]
        per_w, static = self.ceiling_inputs(theta)
        return StepParameters(memory_efficiency=np.exp(em + dm), compute_efficiency=np.exp(ec),
                              power_tflops=power_limited_tflops(self.tdp, per_w, static),
                              overhead_s=np.exp(c0), per_sequence_s=np.exp(c1))

    def ceiling_inputs(self, theta: np.ndarray) -> tuple[np.ndarray, float]:
        """(TFLOPS per watt per row, static power W) of the power ceiling at ``theta``."""
        na, nf = len(self.archs), len(self.fams)
        eps, gam, static = theta[4:7]
        da = np.r_[theta[7:7 + na], 0.0][self.arch_code]
        df = np.r_[theta[7 + na:7 + na + nf], 0.0][self.fam_code]
        return np.exp(eps + da + df) * (self.tflops / self.tdp) ** gam, math.exp(static)

    def log_itl_at(self, p: StepParameters) -> np.ndarray:
        return np.log(self.work.evaluate(p, load=False)["itl_s"])

    def log_itl(self, theta: np.ndarray) -> np.ndarray:
        return self.log_itl_at(self.step_parameters(theta))


class _Remembered:
    """``fun`` that remembers its last point and value: least_squares evaluates a point and then asks for the
    Jacobian there, whose differences start from that same value."""

    def __init__(self, fun):
        self.fun, self.x, self.value = fun, None, None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.x is None or not np.array_equal(x, self.x):
            self.value, self.x = self.fun(x), np.array(x, dtype=float)
        return self.value


_FIELD_STEP = math.sqrt(np.finfo(float).eps)  # relative step of a step parameter in the Jacobian's differences
_STEP_FIELDS = ("memory_efficiency", "compute_efficiency", "overhead_s", "per_sequence_s", "power_tflops")


def _chain_jacobian(design: _Design, ridge: float, log_itl: _Remembered):
    """Jacobian of the calibration's residuals (ln ITL - ln measured, then ``ridge`` x the effects).

    ln ITL depends on the parameters only through five per-row step parameters (memory and compute efficiency,
    overheads per step and per sequence, the power ceiling), each the exponential of a sum of parameters (the
    ceiling also of ``power_exponent`` x ln(TFLOPS / TDP) and of the static power through max(TDP - static, 20%
    TDP)). So five forward differences of the physics, one per step parameter and each scaled by a relative step,
    give d ln ITL / d ln(step parameter) for every row, and the chain rule gives every column: 5 physics evaluations
    per Jacobian instead of one per parameter. ``log_itl`` remembers the last point, so the base value is not
    recomputed.
    """
    n = len(design.arch_code)
    na, nf = len(design.archs), len(design.fams)
    log_ratio = np.log(design.tflops / design.tdp)
    dl = math.log1p(_FIELD_STEP)
    rows = np.arange(n)

    def jac(theta):
        p = design.step_parameters(theta)
        f0 = log_itl(theta)
        g = {name: (design.log_itl_at(replace(p, **{name: getattr(p, name) * (1.0 + _FIELD_STEP)})) - f0) / dl
             for name in _STEP_FIELDS}
        # d ln(power ceiling) / d ln(static power), from the ceiling itself (it is clipped at 20% of TDP)
        per_w, static = design.ceiling_inputs(theta)
        d_static = (np.log(power_limited_tflops(design.tdp, per_w, static * (1.0 + _FIELD_STEP)))
                    - np.log(power_limited_tflops(design.tdp, per_w, static))) / dl
        g_mem, g_pow = g["memory_efficiency"], g["power_tflops"]
        J = np.zeros((n + na + 2 * nf, len(theta)))
        J[:n, 0], J[:n, 1] = g_mem, g["compute_efficiency"]
        J[:n, 2], J[:n, 3] = g["overhead_s"], g["per_sequence_s"]
        J[:n, 4], J[:n, 5], J[:n, 6] = g_pow, g_pow * log_ratio, g_pow * d_static
        for start, count, code, grad in ((7, na, design.arch_code, g_pow), (7 + na, nf, design.fam_code, g_pow),
                                         (7 + na + nf, nf, design.fam_code, g_mem)):
            mine = code >= 0
            J[rows[mine], start + code[mine]] = grad[mine]
            J[n + np.arange(start - 7, start - 7 + count), np.arange(start, start + count)] = ridge
        return J

    return jac


def fit_calibration(frame: pd.DataFrame, y_log: np.ndarray) -> ItlCalibration:
    """Fit the calibrated roofline to ``frame`` (usable rows) and its ln ITL (robust least squares, ridge on the
    architecture effects)."""
    from scipy.optimize import least_squares  # lazy: scipy loads only when a model is fitted, not when the app predicts

    design = _Design.of(frame)
    na, nf = len(design.archs), len(design.fams)
    n_eff = 2 * nf + na
    ridge = math.sqrt(EFFECT_RIDGE * len(frame) / 100.0)
    x0 = np.r_[_START, np.zeros(n_eff)]
    lower = np.r_[_LOWER, np.full(n_eff, -3.0)]
    upper = np.r_[_UPPER, np.full(n_eff, 3.0)]

    log_itl = _Remembered(design.log_itl)

    def residuals(theta):
        return np.r_[log_itl(theta) - y_log, ridge * theta[7:]]

    fit = least_squares(residuals, x0, jac=_chain_jacobian(design, ridge, log_itl), bounds=(lower, upper),
                        loss="soft_l1", f_scale=ROBUST_SCALE, x_scale=1.0, max_nfev=400)
    t = fit.x
    g = dict(zip(_GLOBAL, t[:7], strict=True))
    return ItlCalibration(
        memory_efficiency=float(np.exp(g["log_memory_efficiency"])),
        compute_efficiency=float(np.exp(g["log_compute_efficiency"])),
        overhead_s=float(np.exp(g["log_overhead_s"])), per_sequence_s=float(np.exp(g["log_per_sequence_s"])),
        power_tflops_per_w=float(np.exp(g["log_power_tflops_per_w"])), power_exponent=float(g["power_exponent"]),
        static_power_w=float(np.exp(g["log_static_power_w"])),
        arch_effects=MappingProxyType({a: float(v) for a, v in zip(design.archs, t[7:7 + na], strict=True)}),
        family_effects=MappingProxyType({f: float(v) for f, v in zip(design.fams, t[7 + na:7 + na + nf],
                                                                      strict=True)}),
        family_memory_effects=MappingProxyType({f: float(v) for f, v in zip(design.fams, t[7 + na + nf:],
                                                                             strict=True)}),
    )


def physics_itl_s(frame: pd.DataFrame, calibration: ItlCalibration, extra_overhead_s=0.0,
                  extra_per_sequence_s=0.0) -> np.ndarray:
    """ITL (s) of each row from the calibrated roofline alone (no per-LLM correction), with optional extra host
    overheads per step and per sequence (a serving stack's calibration)."""

    work = DecodeWorkload.of(frame)
    p = calibration.step_parameters(frame)
    p = replace(p, overhead_s=p.overhead_s + np.asarray(extra_overhead_s, dtype=float),
                per_sequence_s=p.per_sequence_s + np.asarray(extra_per_sequence_s, dtype=float))
    return work.evaluate(p, load=False)["itl_s"]


@dataclass(frozen=True)
class StackCalibration:
    """How another serving stack differs from the default one: extra host time per decode step and per sequence
    in a step (older or heavier serving software spends more CPU time scheduling, sampling and detokenising, which
    a faster GPU cannot remove), and a residual factor on ITL."""

    overhead_s: float = 0.0
    per_sequence_s: float = 0.0
    factor: float = 1.0
    n_runs: int = 0

    def to_dict(self) -> dict:
        return {k: float(v) if k != "n_runs" else int(v) for k, v in self.__dict__.items()}


STACK_MIN_RUNS_FOR_OVERHEADS = 8  # fewer runs: the factor only
_STACK_LOWER = (np.log(1e-7), np.log(1e-9), np.log(0.2))
_STACK_UPPER = (np.log(1.0), np.log(1e-2), np.log(5.0))


def _stack_jacobian(remembered: _Remembered, log_itl):
    """Jacobian of a stack calibration's residuals, ln ITL(extra overheads) + ln factor + offset, in (ln overhead
    per step, ln overhead per sequence, ln factor): forward differences of the physics for the two overheads
    (scipy's 2-point steps, turned back inside the bounds) and exactly 1 for the factor's column."""
    lower, upper = np.asarray(_STACK_LOWER[:2]), np.asarray(_STACK_UPPER[:2])

    def jac(theta):
        x = np.asarray(theta[:2], dtype=float)
        f0 = remembered(x)
        h = _FIELD_STEP * np.where(x >= 0, 1.0, -1.0) * np.maximum(1.0, np.abs(x))
        h = np.where((x + h > upper) | (x + h < lower), -h, h)
        h = (x + h) - x
        J = np.ones((len(f0), 3))
        for j in range(2):
            step = x.copy()
            step[j] += h[j]
            J[:, j] = (log_itl(step) - f0) / h[j]
        return J

    return jac


def is_moe(frame: pd.DataFrame) -> np.ndarray:
    """Rows of mixture-of-experts LLMs (fewer active than total parameters)."""
    total = frame["total_params_b"].to_numpy(float)
    active = frame["active_params_b"].to_numpy(float) if "active_params_b" in frame else total
    return np.isfinite(active) & (active < total)


def usable(frame: pd.DataFrame, target_column: str = "itl_s") -> np.ndarray:
    """Rows the ITL model can learn from: a positive target and every required input."""
    y = frame[target_column].to_numpy(float) if target_column in frame else np.full(len(frame), np.nan)
    ok = np.isfinite(y) & (y > 0)
    for c in REQUIRED_INPUTS:
        ok &= frame[c].notna().to_numpy() if c in frame else False
    return ok


def time_per_output_token_s(frame: pd.DataFrame) -> np.ndarray:
    """The ITL target of a run in the model's own definition: Watt Counts' offline duration / tokens or server
    end-to-end latency per token as given; for other offline runs 1 / throughput (the whole system's), which is
    what Watt Counts' offline ITL is."""
    itl = frame["itl_s"].to_numpy(float) if "itl_s" in frame else np.full(len(frame), np.nan)
    defs = frame["itl_definition"].astype(object).to_numpy() if "itl_definition" in frame \
        else np.full(len(frame), None, dtype=object)
    tput = frame["throughput_tok_s"].to_numpy(float) if "throughput_tok_s" in frame else np.full(len(frame), np.nan)
    offline = scenario_pool(frame["scenario_detail"]) == "offline"
    native = np.isin(defs, ["offline_duration_per_token", "server_e2e_per_token"])
    with np.errstate(divide="ignore"):
        inverse = np.where(tput > 0, 1.0 / tput, np.nan)
    return np.where(native, itl, np.where(offline, inverse, np.nan))


@dataclass(frozen=True)
class PlusItlModel:
    """The fitted WattGPU+ ITL model: calibration, per-LLM corrections and per-stack calibrations."""

    calibration: ItlCalibration
    llm_effects: Mapping[str, float]  # "llm_id|offline" / "llm_id|server" -> ln correction
    stack_effects: Mapping[str, StackCalibration]  # serving stack -> its calibration against the default stack
    default_stack: str = DEFAULT_STACK
    n_rows: int = 0
    moe_effects: Mapping[str, float] = field(default_factory=dict)  # "sm8x|offline" -> ln effect on MoE LLMs

    @classmethod
    def fit(cls, train: pd.DataFrame, *, aux: pd.DataFrame | None = None, seed: int = 0,
            n_threads: int = 1) -> PlusItlModel:
        """Fit the calibration on ``train`` (the default stack's runs); the per-LLM corrections on ``train`` and the
        runs of ``aux`` on the same stack (e.g. MoE LLMs); the runs of ``aux`` on other stacks only fit those
        stacks' calibrations, so no auxiliary run moves the default-stack physics. ``seed`` and ``n_threads`` are
        accepted for the common interface (the fit is deterministic and single-threaded)."""
        train = train[usable(train)].reset_index(drop=True)
        calibration = fit_calibration(train, np.log(train["itl_s"].to_numpy(float)))
        main, others = _split_stacks(train, aux)
        main = main[usable(main)].reset_index(drop=True)
        resid = np.log(main["itl_s"].to_numpy(float)) - np.log(physics_itl_s(main, calibration))
        pool = scenario_pool(main["scenario_detail"])
        key = pd.Series(main["llm_id"].astype(str).to_numpy() + "|" + pool)
        moe = is_moe(main)
        fam_key = pd.Series(arch_family(main["architecture"]).astype(str) + "|" + pool)
        # ln residual = LLM effect + (MoE only) the family's MoE-kernel effect; a few alternating shrunk means.
        moe_fx = pd.Series(dtype=float)
        llm_fx = pd.Series(dtype=float)
        for _ in range(3):
            r = resid - key.map(llm_fx).fillna(0.0).to_numpy(float)
            g = pd.Series(r[moe]).groupby(fam_key[moe].to_numpy())
            moe_fx = g.sum() / (g.count() + LLM_SHRINK_RUNS)
            r = resid - np.where(moe, fam_key.map(moe_fx).fillna(0.0).to_numpy(float), 0.0)
            g = pd.Series(r).groupby(key.to_numpy())
            llm_fx = g.sum() / (g.count() + LLM_SHRINK_RUNS)
        base = cls(calibration, MappingProxyType({k: float(v) for k, v in llm_fx.items()}), MappingProxyType({}),
                   DEFAULT_STACK, int(len(main)), MappingProxyType({k: float(v) for k, v in moe_fx.items()}))
        return base._with_stacks(others)

    def _with_stacks(self, others: pd.DataFrame | None) -> PlusItlModel:
        """This model plus a :class:`StackCalibration` for each other serving stack in ``others``, fitted (robust
        least squares on ln time per output token) on that stack's runs only."""

        # lazy: scipy loads only when a model is fitted, not when the app predicts
        from scipy.optimize import least_squares

        if others is None or others.empty:
            return self
        y = time_per_output_token_s(others)
        ok = usable(others.assign(_y=y), "_y")
        rows = others[ok].reset_index(drop=True)
        y = np.log(y[ok])
        stacks = {}
        for stack in sorted(rows["serving_stack"].dropna().astype(str).unique()):
            mine = rows["serving_stack"].astype(str).eq(stack).to_numpy()
            part = rows[mine].assign(serving_stack=self.default_stack)
            base = np.log(self.predict(part))
            if mine.sum() < STACK_MIN_RUNS_FOR_OVERHEADS:
                stacks[stack] = StackCalibration(factor=float(np.exp(np.median(y[mine] - base))),
                                                 n_runs=int(mine.sum()))
                continue
            offset = self._effects(part) - y[mine]
            work, p0 = DecodeWorkload.of(part), self.calibration.step_parameters(part)

            def log_itl(hc, work=work, p0=p0):
                h, c = np.exp(hc)
                p = replace(p0, overhead_s=p0.overhead_s + h, per_sequence_s=p0.per_sequence_s + c)
                return np.log(work.evaluate(p, load=False)["itl_s"])

            remembered = _Remembered(log_itl)

            def resid(theta, remembered=remembered, offset=offset):
                return remembered(theta[:2]) + theta[2] + offset

            fit = least_squares(resid, np.log([1e-4, 1e-6, 1.0]), jac=_stack_jacobian(remembered, log_itl),
                                bounds=(_STACK_LOWER, _STACK_UPPER), loss="soft_l1", f_scale=ROBUST_SCALE)
            h, c, k = np.exp(fit.x)
            stacks[stack] = StackCalibration(float(h), float(c), float(k), int(mine.sum()))
        return PlusItlModel(self.calibration, self.llm_effects, MappingProxyType(stacks), self.default_stack,
                            self.n_rows, self.moe_effects)

    def _stack_parts(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row, the extra overhead per step and per sequence and the factor of its serving stack."""
        n = len(rows)
        h, c, k = np.zeros(n), np.zeros(n), np.ones(n)
        if "serving_stack" in rows and self.stack_effects:
            stacks = rows["serving_stack"].astype(object).to_numpy()
            for stack in pd.unique(stacks):
                cal = self.stack_effects.get(stack) if isinstance(stack, str) else None
                if cal is not None:
                    mine = stacks == stack
                    h[mine], c[mine], k[mine] = cal.overhead_s, cal.per_sequence_s, cal.factor
        return h, c, k

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        """ITL (s) per row: on the row's ``serving_stack`` where it has a calibration, else the default stack."""
        if len(rows) == 0:
            return np.zeros(0)
        h, c, k = self._stack_parts(rows)
        return physics_itl_s(rows, self.calibration, h, c) * k * np.exp(self._effects(rows))

    def _effects(self, rows: pd.DataFrame) -> np.ndarray:
        """ln corrections of each row: its LLM's (per scenario) and, for MoE LLMs, its GPU family's MoE effect."""
        pool = scenario_pool(rows["scenario_detail"])
        effects = dict(self.llm_effects)
        out = per_unique(lambda llm, p: _effect(effects, f"{llm}|{p}"), rows["llm_id"], pool)
        if self.moe_effects:
            moe = is_moe(rows)
            by_pool = {}
            for k, v in self.moe_effects.items():
                fam, p = k.rsplit("|", 1)
                by_pool.setdefault(p, {})[fam] = v
            fams = arch_family(rows["architecture"]) if "architecture" in rows else np.full(len(rows), None)
            fx = per_unique(lambda f, p, m: _inherited(by_pool.get(p, {}), f, FAMILY_ORDER) if m else 0.0,
                            fams, pool, moe)
            out = out + fx
        return out

    def breakdown(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Where each row's predicted ITL goes (for explanations; the prediction itself is :meth:`predict`).

        Per row, in seconds per output token, parts that add up to ``predict(rows)``: ``weights_s`` (streaming
        the weights the batch touches at the achieved bandwidth), ``compute_limit_s`` (what the matrix multiplies
        take beyond that when the tensor rate or the power ceiling is slower than the weight reads; 0 when
        memory-bound), ``kv_cache_s`` (reading every sequence's KV cache), ``attention_compute_s``, ``allreduce_s``
        (tensor parallel), ``host_s`` (fixed per-step and per-sequence host overheads, the serving stack's
        included), ``prefill_s`` (prompt processing, per output token) and ``correction_s`` (what the per-LLM, MoE
        and serving-stack corrections add, negative when they shorten it). Each step's share of an output token is
        1 / effective batch offline and about 1 in a server.

        Also per row: ``batch`` (effective), ``step_s`` (one decode step), ``weights_gb`` and ``kv_cache_gb`` (read
        per step and GPU), ``achieved_bandwidth_gb_s``, ``achieved_tflops``, ``power_limited_tflops``, ``limit``
        ("memory", "compute" or "power": what bounds the matrix multiplies), ``physics_itl_s`` (before corrections)
        and ``correction_factor``.
        """

        work = DecodeWorkload.of(rows)
        h, c, k = self._stack_parts(rows)
        p = self.calibration.step_parameters(rows)
        p = replace(p, overhead_s=p.overhead_s + h, per_sequence_s=p.per_sequence_s + c)
        r = work.evaluate(p)
        batch, step, prefill = r["batch"], r["step_s"], r["prefill_s"]
        parts = work.step_parts(batch)
        bw = work.bandwidth_gb_s * 1e9 * np.asarray(p.memory_efficiency, dtype=float)
        rate = work.tflops * 1e12 * np.asarray(p.compute_efficiency, dtype=float)
        power_rate = np.asarray(p.power_tflops, dtype=float) * 1e12 * work.compute_scale * np.ones(len(work))
        weights = parts["weight_bytes"] / bw
        compute = parts["gemm_flops"] / rate
        power = parts["gemm_flops"] / power_rate
        gemm = smooth_max(weights, np.maximum(compute, power), GEMM_ROOFLINE_P)  # as the decode step combines them
        host = np.asarray(p.overhead_s, dtype=float) + np.asarray(p.per_sequence_s, dtype=float) * batch
        out = work.output_tokens
        n_req = work.num_requests
        finite = np.isfinite(n_req)
        with np.errstate(invalid="ignore", divide="ignore"):
            off_share = np.where(finite, work.offline_steps / (n_req * out), 1.0 / batch)
            off_prefill = np.where(finite, prefill / out, prefill / out)
        first_is_prefill = prefill > step
        srv_share = (out - 1.0) / out + np.where(first_is_prefill, 0.0, 1.0 / out)
        srv_prefill = np.where(first_is_prefill, prefill / out, 0.0)
        share = np.where(work.offline, off_share, srv_share)
        physics = share * step + np.where(work.offline, off_prefill, srv_prefill)
        factor = k * np.exp(self._effects(rows))
        limit = np.where(np.maximum(compute, power) > weights, np.where(power > compute, "power", "compute"),
                         "memory").astype(object)  # the slower of weight reads and tensor work bounds the GEMMs
        return pd.DataFrame({
            "weights_s": share * weights, "compute_limit_s": share * (gemm - weights),
            "kv_cache_s": share * parts["kv_bytes"] / bw, "attention_compute_s": share * parts["attention_flops"] / rate,
            "allreduce_s": share * parts["comm_s"], "host_s": share * host,
            "prefill_s": physics - share * step, "correction_s": physics * (factor - 1.0),
            "batch": batch, "step_s": step, "weights_gb": parts["weight_bytes"] / 1e9,
            "kv_cache_gb": parts["kv_bytes"] / 1e9, "achieved_bandwidth_gb_s": bw / 1e9,
            "achieved_tflops": rate / 1e12, "power_limited_tflops": power_rate / 1e12, "limit": limit,
            "physics_itl_s": physics, "correction_factor": factor,
        }, index=rows.index)

    def max_throughput_tok_s(self, rows: pd.DataFrame) -> np.ndarray:
        """Output tokens/s at the largest batch the GPU can run (max_num_seqs, or what the KV cache holds): the
        most a server can deliver before queues grow without bound."""
        if len(rows) == 0:
            return np.zeros(0)

        work = DecodeWorkload.of(rows)
        h, c, k = self._stack_parts(rows)
        p = self.calibration.step_parameters(rows)
        p = replace(p, overhead_s=p.overhead_s + h, per_sequence_s=p.per_sequence_s + c)
        step = work.step_time_s(work.batch_cap, p)
        return work.batch_cap / (step * k * np.exp(self._effects(rows)))

    def to_dict(self) -> dict:
        return {"kind": "wattgpu+ itl", "calibration": self.calibration.to_dict(),
                "llm_effects": dict(self.llm_effects),
                "stack_effects": {k: v.to_dict() for k, v in self.stack_effects.items()},
                "default_stack": self.default_stack, "n_rows": self.n_rows, "moe_effects": dict(self.moe_effects)}

    @classmethod
    def from_dict(cls, d: Mapping) -> PlusItlModel:
        return cls(ItlCalibration.from_dict(d["calibration"]),
                   MappingProxyType({k: float(v) for k, v in d["llm_effects"].items()}),
                   MappingProxyType({k: StackCalibration(**v) for k, v in d["stack_effects"].items()}),
                   str(d.get("default_stack", DEFAULT_STACK)), int(d.get("n_rows", 0)),
                   MappingProxyType({k: float(v) for k, v in (d.get("moe_effects") or {}).items()}))


def _split_stacks(train: pd.DataFrame, aux: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(rows on the default stack: train + same-stack aux, aux rows on other stacks)."""
    if aux is None or aux.empty:
        return train, None
    stack = aux["serving_stack"] if "serving_stack" in aux else pd.Series(DEFAULT_STACK, index=aux.index)
    same = stack.fillna("").astype(str).eq(DEFAULT_STACK).to_numpy()
    main = pd.concat([train, aux[same]], ignore_index=True) if same.any() else train
    return main, aux[~same]
