"""Explanations: SHAP values of one prediction and global feature importance, for both model sets.

Every explanation is a ``shap.Explanation`` (the ``explanation`` of :class:`TargetExplanation` and
:class:`GroupExplanation`), computed by the model set's own ``explain`` (:mod:`~wattgpu_core.registry`), so it can
be passed to shap's plots in a notebook; the classes here add what the app shows (display units, labels, readings).

The paper's XGBoost models: exact TreeSHAP (``shap.TreeExplainer``) in the model's own output space, power
as a fraction of the GPU's TDP and ITL as ln(seconds), over the individual features; base value + SHAP values
equals the model output exactly. :class:`TargetExplanation` turns them into display units (W, and multiplicative
factors on ITL in ms) and into a plain-language reading of the top drivers.

WattGPU+ (a calibrated physical model, not a tree ensemble): exact interventional Shapley values over a dozen
*groups* of human-meaningful inputs (:data:`PLUS_GROUPS`: memory bandwidth, tensor TFLOPS, TDP, GPU memory, GPU
architecture, LLM size, LLM shape, the per-LLM correction, batch size or request rate, input and output tokens,
serving set-up). The value of a coalition S of groups is the mean prediction over a fixed, seeded background of
training configurations of the same scenario (:class:`Background`), each with the groups in S set to the request's
values; every one of the 2^k coalitions is predicted in one batch through the same rows
:func:`~wattgpu_core.planning.predict` builds and the same model code, so base value (the background's mean
prediction) + SHAP values = the prediction the user sees. Power is explained in W, ITL in ln seconds (each group a
factor on ITL). :class:`PlusPhysics` adds the physical reading of the same prediction (time per decode step by
part, serving-idle power plus the busy share of the headroom).
"""

from __future__ import annotations

import math
import sys
import threading
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import planning
from .errors import WattGPUError
from .features import add_features, join_specs, scenario_detail
from .grouped_shap import GROUP_NAMES, PLUS_GROUPS, plus_shapley
from .grouped_shap import InputGroup as InputGroup
from .grouped_shap import shapley_from_coalitions as shapley_from_coalitions
from .models import training_frame
from .plus_itl import ARCH_ORDER, REQUIRED_INPUTS
from .plus_power import POWER_REQUIRED
from .registry import get_model_set, parts, workload_models
from .safety import md

# feature -> (name, unit shown with values)
FEATURES: dict[str, tuple[str, str]] = {
    "scenario_detail": ("Scenario", ""),
    "model_type": ("LLM architecture type", ""),
    "memory_type": ("Memory type", ""),
    "log_total_params_b": ("LLM size", ""),
    "total_params_b": ("LLM parameters", "B"),
    "hidden_size": ("Hidden size", ""),
    "num_attention_heads": ("Attention heads", ""),
    "num_key_value_heads": ("KV heads", ""),
    "num_layers": ("Layers", ""),
    "memory_bandwidth_gb_s": ("Memory bandwidth", "GB/s"),
    "memory_size_gb": ("GPU memory", "GB"),
    "fp16_tensor_dense_tflops": ("FP16 tensor TFLOPS", ""),
    "release_year": ("GPU release year", ""),
    "bandwidth_latency_s": ("Time to read the weights once", "ms"),
    "compute_latency_s": ("Compute time per token", "ms"),
    "boost_ratio": ("Boost / base clock ratio", ""),
    "transistor_count_m": ("Transistors", "million"),
    "base_clock_mhz": ("Base clock", "MHz"),
}
_SCENARIO_WORDS = {"offline": "offline batch", "server_low": "server, low request rate",
                   "server_high": "server, high request rate"}
_MS_FEATURES = {"bandwidth_latency_s", "compute_latency_s"}


def feature_label(feature: str) -> str:
    """'Memory bandwidth (GB/s)'."""
    name, unit = FEATURES.get(feature, (feature.replace("_", " ").capitalize(), ""))
    return f"{name} ({unit})" if unit and unit not in ("ms", "million") else name


def feature_name(feature: str) -> str:
    return FEATURES.get(feature, (feature.replace("_", " ").capitalize(), ""))[0]


def format_feature_value(feature: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unknown"
    if feature == "scenario_detail":
        return _SCENARIO_WORDS.get(str(value), str(value))
    if isinstance(value, str):
        return value
    v = float(value)
    unit = FEATURES.get(feature, ("", ""))[1]
    if feature in _MS_FEATURES:
        return f"{v * 1000:.3g} ms"
    if feature == "log_total_params_b":
        return f"{math.exp(v):.3g}B parameters"
    if feature == "boost_ratio":
        return f"{v:.2f}"
    if feature == "release_year":
        return f"{v:.0f}"
    text = f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    return f"{text} {unit}".strip() if unit and unit != "B" else (f"{text}B" if unit == "B" else text)


def shap_values(model, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(base values, SHAP matrix n x features) of ``model`` (a fitted engine model) on ``frame``, raw output space.

    Columns follow ``model.preprocessor``'s order (numeric, then categorical); base + row sum = ``predict_raw``.
    """
    explanation = model.explain(frame)
    return np.asarray(explanation.base_values, dtype=float), np.asarray(explanation.values, dtype=float)


def model_features(model) -> list[str]:
    return list(model.preprocessor.numeric) + list(model.preprocessor.categorical)


def request_frame(llm_id: str, gpu_id: str, request: dict, gpus: pd.DataFrame, llms: pd.DataFrame) -> pd.DataFrame:
    """One prediction request as the models' input row (specs joined, paper features added)."""
    row = pd.DataFrame([{"llm_id": llm_id, "gpu_id": gpu_id, "scenario": request.get("scenario", "offline"),
                         "request_rate_qps": request.get("request_rate_qps", np.nan)}])
    # only this GPU's and LLM's catalog rows: joining whole catalogs for one row costs more than explaining it
    frame = join_specs(row, gpus[gpus["gpu_id"] == gpu_id], llms[llms["llm_id"] == llm_id])
    frame["scenario_detail"] = scenario_detail(frame["scenario"], frame["request_rate_qps"])
    return add_features(frame)


class _ShownValue:
    """How a target's explanation shows its numbers: W for power, ms on a log axis for ITL (subclasses say how a
    model output becomes W or ms in ``to_display`` and hold ``target`` and ``raw_output``)."""

    target: str
    raw_output: float

    def to_display(self, raw: float) -> float:
        raise NotImplementedError

    @property
    def prediction(self) -> float:
        return self.to_display(self.raw_output)

    @property
    def log_axis(self) -> bool:
        return self.target == "itl"

    @property
    def axis_title(self) -> str:
        return "Mean GPU power (W)" if self.target == "power" else "ITL (ms, log scale)"

    @property
    def value_format(self) -> str:
        return "{:,.0f} W" if self.target == "power" else "{:.3g} ms"

    @property
    def title(self) -> str:
        what = "power" if self.target == "power" else "ITL"
        return f"Why this {what} prediction: {self.value_format.format(self.prediction)}"


@dataclass(frozen=True)
class TargetExplanation(_ShownValue):
    """SHAP values of one prediction of one target, with what the page needs to show and read them."""

    target: str  # "power" or "itl"
    base_value: float  # model output space
    shap: pd.Series  # per feature column, model output space
    values: pd.Series  # feature values in their own units
    tdp_w: float
    explanation: object = None  # the shap.Explanation (one row) the fields above are read from

    @property
    def raw_output(self) -> float:
        return float(self.base_value + self.shap.sum())

    def to_display(self, raw: float) -> float:
        """Model output -> W (power) or ms (ITL)."""
        return raw * self.tdp_w if self.target == "power" else math.exp(raw) * 1000.0

    def contributions(self, top: int = 8) -> pd.DataFrame:
        """The ``top`` largest contributions (|SHAP|), the rest summed as one row; columns feature, label, shap."""
        order = self.shap.abs().sort_values(ascending=False).index
        rows = [{"feature": f, "label": f"{feature_name(f)} = {format_feature_value(f, self.values[f])}",
                 "shap": float(self.shap[f])} for f in order[:top]]
        rest = order[top:]
        if len(rest):
            rows.append({"feature": "", "label": f"{len(rest)} other features", "shap": float(self.shap[rest].sum())})
        return pd.DataFrame(rows)

    def effect_text(self, shap: float) -> str:
        if self.target == "power":
            watts = shap * self.tdp_w
            return f"{'raises' if watts >= 0 else 'lowers'} power by {abs(watts):,.0f} W"
        factor = math.exp(shap)
        if factor >= 1:
            return f"makes ITL {factor:.2f}x longer"
        return f"makes ITL {1 / factor:.2f}x shorter"

    def reading(self, top: int = 3) -> str:
        """A plain-language sentence on the ``top`` drivers of this prediction."""
        what = "power" if self.target == "power" else "ITL"
        base = self.value_format.format(self.to_display(self.base_value))
        parts = []
        for _, r in self.contributions(top=top).iterrows():
            if not r["feature"]:
                continue
            value = format_feature_value(r["feature"], self.values[r["feature"]])
            name = feature_name(r["feature"])
            name = name if name[:3].isupper() else name[0].lower() + name[1:]
            parts.append(f"**{name}** ({md(value)}) {self.effect_text(r['shap'])}")
        return (f"Predicted {what} is **{self.value_format.format(self.prediction)}**, against {base} for an "
                f"average training run. The main drivers: " + "; ".join(parts) + ".")


def explain_request(llm_id: str, gpu_id: str, request: dict, gpus: pd.DataFrame, llms: pd.DataFrame,
                    fitted: dict) -> dict[str, TargetExplanation]:
    """SHAP explanation of each target's prediction for one (LLM, GPU, workload) by the paper's XGB models
    ``fitted`` (TreeSHAP: :meth:`~wattgpu_core.models.FittedModel.explain`)."""
    frame = request_frame(llm_id, gpu_id, request, gpus, llms)
    out = {}
    for target, model in fitted.items():
        explanation = model.explain(frame)[0]
        features = list(explanation.feature_names)
        out[target] = TargetExplanation(
            target=target, base_value=float(explanation.base_values),
            shap=pd.Series(np.asarray(explanation.values, dtype=float), index=features),
            values=frame.iloc[0][features], tdp_w=float(frame["tdp_w"].iloc[0]), explanation=explanation,
        )
    return out


@dataclass(frozen=True)
class GlobalImportance:
    """Mean |SHAP| per feature over the training rows of one target, plus the matrices for a beeswarm."""

    target: str
    importance: pd.DataFrame  # feature, label, importance (display units: % of TDP, or % change of ITL)
    shap: pd.DataFrame  # rows x features, model output space
    values: pd.DataFrame  # rows x features, feature values (categories as codes' labels)
    axis_title: str

    @property
    def explanation(self):
        """The SHAP matrix as a ``shap.Explanation`` (values, data = the feature values, feature_names), e.g. for
        ``shap.plots.beeswarm``."""
        return _matrix_explanation(self.shap, self.values)


_SHAP_IMPORT: threading.Thread | None = None
_SHAP_IMPORT_LOCK = threading.Lock()


def import_shap_in_background() -> threading.Thread | None:
    """Start importing shap in a daemon thread, once per process, and return that thread (None when shap is
    already imported). shap (with scikit-learn, scipy.cluster and numba) takes 1.5-2 s to import, which the first
    explanation of a session would otherwise wait for; the app starts this after its first page is drawn, while the
    user reads it. An explanation that arrives earlier waits for the same import (Python's import lock), no longer."""
    global _SHAP_IMPORT
    with _SHAP_IMPORT_LOCK:
        if _SHAP_IMPORT is None and "shap" not in sys.modules:
            _SHAP_IMPORT = threading.Thread(target=_import_shap, name="wattgpu-import-shap", daemon=True)
            _SHAP_IMPORT.start()
        return _SHAP_IMPORT


def _import_shap() -> None:
    import shap  # noqa: F401  # lazy: the point of the background import


def _matrix_explanation(shap_frame: pd.DataFrame, values: pd.DataFrame):
    import shap  # lazy: shap takes seconds to import and only explanations need it

    return shap.Explanation(values=shap_frame.to_numpy(float), data=values[list(shap_frame.columns)].to_numpy(),
                            feature_names=list(shap_frame.columns))


def global_importance(fitted: dict, frame: pd.DataFrame, max_rows: int = 2000, seed: int = 0) -> dict:
    """Per target, mean |SHAP value| over (a sample of at most ``max_rows`` of) the training rows ``frame``."""
    out = {}
    for target, model in fitted.items():
        features = model_features(model)
        rows = frame.dropna(subset=[c for c in features if c in frame.columns and frame[c].dtype != object])
        if len(rows) > max_rows:
            rows = rows.sample(max_rows, random_state=seed)
        _, shap = shap_values(model, rows)
        shap_df = pd.DataFrame(shap, columns=features, index=rows.index)
        mean_abs = shap_df.abs().mean()
        if target == "power":
            shown, axis = mean_abs * 100, "Mean |SHAP value| (% of the GPU's TDP)"
        else:
            shown, axis = mean_abs, "Mean |SHAP value| (natural log of ITL)"
        imp = pd.DataFrame({"feature": features, "label": [feature_label(f) for f in features],
                            "importance": shown.to_numpy()}).sort_values("importance", ascending=False)
        values = rows[features].copy()
        for c in model.preprocessor.categorical:
            values[c] = values[c].astype("category").cat.codes
        out[target] = GlobalImportance(target, imp.reset_index(drop=True), shap_df, values, axis)
    return out


# ----------------------------------------------------------------------------------------------------------------
# WattGPU+: exact interventional Shapley values over groups of inputs
BACKGROUND_SIZE = 16  # training configurations per scenario behind the base value (2^k x 16 rows per explanation)
GLOBAL_BACKGROUND_SIZE = 8  # a smaller background for global importance (many rows explained)
_ITL_PARTS = {  # breakdown column -> label
    "weights_s": "Reading the weights", "compute_limit_s": "Compute limit beyond the weight reads",
    "kv_cache_s": "Reading the KV cache", "attention_compute_s": "Attention compute", "allreduce_s": "All-reduce",
    "host_s": "Host overhead (scheduling, sampling)", "prefill_s": "Prefill (prompt)",
    "correction_s": "Per-LLM / MoE / stack correction",
}


def plus_models(model_set) -> dict:
    """{target: WattGPU+ model} of a loaded model set (the part that reads the workload); {} when none."""
    return workload_models(model_set)


def model_rows(requests: pd.DataFrame, gpus: pd.DataFrame, llms: pd.DataFrame, model_set) -> tuple[pd.DataFrame,
                                                                                                       pd.DataFrame]:
    """(:func:`~wattgpu_core.planning.predict`'s output, the model rows behind it) for ``requests``
    (:func:`~wattgpu_core.planning.predict_with_rows`: the rows planning built for the prediction itself)."""
    return planning.predict_with_rows(requests, gpus, llms, model_set)


def _pool(scenario_detail) -> str:
    return "offline" if str(scenario_detail) == "offline" else "server"


@dataclass(frozen=True)
class Background:
    """The training configurations an explanation starts from, per scenario pool ("offline", "server").

    ``rows``: a fixed, seeded sample of ``size`` distinct (LLM, GPU, scenario) configurations of the Watt Counts
    training runs, as model rows (their LLM, GPU, vLLM's default batch, request rate and mean token counts);
    ``population``: every such configuration (the rows global importance explains). Never mutated.
    """

    rows: dict
    population: dict
    size: int
    seed: int

    def describe(self, pool: str) -> str:
        what = "offline" if pool == "offline" else "server"
        return (f"{len(self.rows[pool])} {what} training configurations (a fixed random sample of the "
                f"{len(self.population[pool])} LLM-GPU-workload combinations measured by Watt Counts)")


def plus_background(frame: pd.DataFrame, gpus: pd.DataFrame, llms: pd.DataFrame, model_set,
                    size: int = BACKGROUND_SIZE, seed: int = 0) -> Background:
    """The :class:`Background` of WattGPU+ explanations from the training runs ``frame``
    (:func:`~wattgpu_core.models.training_frame`), as rows built by planning's feature code."""
    need = [c for c in dict.fromkeys((*REQUIRED_INPUTS, *POWER_REQUIRED)) if c in frame.columns and c != "memory_type"]
    runs = frame[frame[need].notna().all(axis=1).to_numpy()]
    cfg = (runs.groupby(["llm_id", "gpu_id", "scenario_detail"], sort=True, observed=True)
           .agg(input_tokens=("input_tokens", "mean"), output_tokens=("output_tokens", "mean"),
                request_rate_qps=("request_rate_qps", "mean"), memory_size_gb=("memory_size_gb", "first"))
           .reset_index())
    detail = cfg["scenario_detail"].astype(object).to_numpy()
    offline = detail == "offline"
    values = {
        "request_rate_qps": np.where(offline, np.nan, cfg["request_rate_qps"].to_numpy(dtype=float)),
        "input_tokens": cfg["input_tokens"].to_numpy(dtype=float),
        "output_tokens": cfg["output_tokens"].to_numpy(dtype=float),
        "output_given": np.zeros(len(cfg), dtype=bool),  # Watt Counts: up to 256 tokens, stopping at EOS
        # the batch the runs had: vLLM's default for their GPU (offline)
        "batch_size": np.where(offline, planning.default_max_num_seqs(cfg["gpu_id"], cfg["memory_size_gb"]), np.nan),
        "num_requests": np.full(len(cfg), np.nan), "num_gpus": np.full(len(cfg), np.nan),
    }
    rows = planning.workload_frame(cfg["llm_id"].to_numpy(dtype=object), cfg["gpu_id"].to_numpy(dtype=object), gpus,
                                    llms, detail, values, model_set,
                                    np.full(len(cfg), model_set.default_stack, dtype=object))
    pools = np.where(offline, "offline", "server")
    population, sample = {}, {}
    for pool in ("offline", "server"):
        part = rows[pools == pool].reset_index(drop=True)
        population[pool] = part
        sample[pool] = part.sample(min(size, len(part)), random_state=seed).reset_index(drop=True)
    return Background(sample, population, size, seed)


def _bytes_text(gb: float) -> str:
    return f"{gb:.3g} GB" if gb >= 1 else f"{gb * 1000:.3g} MB"


def _bandwidth_text(gb_s: float) -> str:
    return f"{gb_s / 1000:.3g} TB/s" if gb_s >= 1000 else f"{gb_s:,.0f} GB/s"


def _fmt(v: float, digits: int = 3) -> str:
    return f"{v:,.0f}" if abs(v) >= 10 ** digits else f"{v:.{digits}g}"


def group_values(row: pd.Series, models: dict) -> dict[str, str]:
    """The request's value of each group, as text ('3,938 GB/s', 'Hopper, HBM3', ...)."""
    pool = _pool(row.get("scenario_detail"))
    total, active = float(row["total_params_b"]), float(row.get("active_params_b", np.nan))
    size = f"{_fmt(total)}B parameters"
    if np.isfinite(active) and active < total:
        size = f"{_fmt(total)}B parameters, {_fmt(active)}B active"
    itl = models.get("itl")
    effect = (itl.llm_effects.get(f"{row['llm_id']}|{pool}") if itl is not None else None)
    correction = "none (LLM not in the training data)" if effect is None else f"×{math.exp(effect):.2f} on ITL"
    tp = float(row.get("tensor_parallel", 1.0) or 1.0)
    arch = row.get("architecture") if isinstance(row.get("architecture"), str) else "unknown architecture"
    mem_type = row.get("memory_type") if isinstance(row.get("memory_type"), str) else "unknown memory"
    return {
        "bandwidth": f"{float(row['memory_bandwidth_gb_s']):,.0f} GB/s",
        "tflops": f"{_fmt(float(row['fp16_tensor_dense_tflops']))} TFLOPS",
        "tdp": f"{float(row['tdp_w']):,.0f} W",
        "memory": f"{_fmt(float(row['memory_size_gb']))} GB",
        "gpu_arch": f"{arch}, {mem_type}",
        "llm_size": size,
        "llm_shape": (f"{int(row['num_layers'])} layers, {int(row['hidden_size'])} hidden, "
                      f"{int(row['num_key_value_heads'])} KV heads"),
        "llm_correction": correction,
        "batch": f"{float(row['batch_size']):g}" if np.isfinite(float(row.get("batch_size", np.nan)))
        else "vLLM's default",
        "rate": (f"{float(row['request_rate_qps']):g} requests/s" if pool == "server" else "offline"),
        "input_tokens": f"{float(row['input_tokens']):,.0f}",
        "output_tokens": f"{float(row['output_tokens']):,.0f}",
        "serving": f"{row.get('serving_stack')}, {tp:g} GPU{'s' if tp != 1 else ''}",
    }


@dataclass(frozen=True)
class GroupExplanation(_ShownValue):
    """Shapley values of one WattGPU+ prediction over input groups, with what the page needs to show and read them
    (the same interface as :class:`TargetExplanation`, so the same waterfall draws both)."""

    target: str  # "power" or "itl"
    base_value: float  # power in W; ITL in ln seconds
    shap: pd.Series  # group key -> W, or ln factor on ITL (groups that vary against the background only)
    values: pd.Series  # group key -> the request's value as text
    background_text: str = ""  # what the base value averages over
    fixed: tuple[str, ...] = ()  # groups equal to every background row (contribution exactly 0)
    model_label: str = "WattGPU+"
    explanation: object = None  # the shap.Explanation (one row, every group) the fields above are read from

    @property
    def raw_output(self) -> float:
        return float(self.base_value + self.shap.sum())

    def to_display(self, raw: float) -> float:
        """W (power) or ms (ITL, from ln seconds)."""
        return raw if self.target == "power" else math.exp(raw) * 1000.0

    @property
    def small_effect(self) -> float:
        """Contributions below this (|SHAP|: 0.5 W, or a factor within 0.5% of 1) are shown as one row."""
        return 0.5 if self.target == "power" else 0.005

    def contributions(self, top: int = 12) -> pd.DataFrame:
        """The ``top`` largest contributions (|SHAP|); the rest, and every contribution below
        :attr:`small_effect`, summed as one row. Columns feature, label, shap."""
        order = self.shap.abs().sort_values(ascending=False, kind="stable").index
        shown = [g for g in order[:top] if abs(self.shap[g]) >= self.small_effect]
        rows = [{"feature": g, "label": f"{GROUP_NAMES.get(g, g)} = {self.values.get(g, '')}",
                 "shap": float(self.shap[g])} for g in shown]
        rest = [g for g in order if g not in shown]
        if rest:
            small = all(abs(self.shap[g]) < self.small_effect for g in rest)
            what = "with little effect" if small else "other inputs"
            one = f"{GROUP_NAMES.get(rest[0], rest[0])} = {self.values.get(rest[0], '')}"
            label = ((one + (", with little effect" if small else "")) if len(rest) == 1
                     else f"{len(rest)} inputs {what}" if small else f"{len(rest)} other inputs")
            rows.append({"feature": rest[0] if len(rest) == 1 else "", "label": label,
                         "shap": float(self.shap[rest].sum())})
        return pd.DataFrame(rows, columns=["feature", "label", "shap"])

    def effect_text(self, shap: float) -> str:
        if self.target == "power":
            return f"{'raises' if shap >= 0 else 'lowers'} power by {abs(shap):,.0f} W"
        factor = math.exp(shap) if shap >= 0 else math.exp(-shap)
        text = f"{factor:.2f}" if factor < 10 else f"{factor:.3g}"
        return f"makes ITL {text}x {'longer' if shap >= 0 else 'shorter'}"

    def reading(self, top: int = 3) -> str:
        """A plain-language sentence on the ``top`` drivers of this prediction."""
        what = "power" if self.target == "power" else "ITL"
        parts = []
        for _, r in self.contributions(top=top).iterrows():
            if not r["feature"]:
                continue
            name = GROUP_NAMES.get(r["feature"], r["feature"])
            name = name if name[:3].isupper() or name[:2] == "LL" else name[0].lower() + name[1:]
            parts.append(f"**{name}** ({md(self.values.get(r['feature'], ''))}) {self.effect_text(r['shap'])}")
        avg = self.value_format.format(self.to_display(self.base_value))
        return (f"Predicted {what} is **{self.value_format.format(self.prediction)}**, against {avg} on average. "
                f"The main drivers: " + "; ".join(parts) + ".")


@dataclass(frozen=True)
class PlusPhysics:
    """The physical reading of one WattGPU+ prediction: ``itl`` (:meth:`PlusItlModel.breakdown` of the row) and
    ``power`` (:meth:`PlusPowerModel.breakdown`), each a Series; ``offline`` says which scenario."""

    itl: pd.Series
    power: pd.Series
    offline: bool

    def itl_parts(self, min_share: float = 0.005) -> pd.DataFrame:
        """Time per output token by part (ms; columns part, label, ms, share of the physics before corrections);
        parts under ``min_share`` of it are summed into one "other" row, zero parts left out. The rows add up to the
        predicted ITL."""
        physics = float(self.itl["physics_itl_s"]) * 1000.0
        labels = dict(_ITL_PARTS)
        labels["compute_limit_s"] = ("Power ceiling beyond the weight reads" if self.itl["limit"] == "power"
                                     else "Tensor compute beyond the weight reads")
        rows, small = [], []
        for k in _ITL_PARTS:
            v = float(self.itl[k]) * 1000.0
            if v == 0.0:
                continue
            share = v / physics if physics else np.nan
            if k != "correction_s" and abs(share) < min_share:
                small.append((labels[k], v))
                continue
            rows.append({"part": k, "label": labels[k], "ms": v, "share": share})
        if small:
            v = sum(ms for _, ms in small)
            names = [name.split(" (")[0] for name, _ in small]
            names = [n if n[1:2].isupper() else n[0].lower() + n[1:] for n in names]
            label = f"Other: {' and '.join(names)}" if len(names) <= 2 else "Other small parts"
            at = len(rows) - int(bool(rows) and rows[-1]["part"] == "correction_s")
            rows.insert(at, {"part": "other", "label": label, "ms": v, "share": v / physics if physics else np.nan})
        return pd.DataFrame(rows, columns=["part", "label", "ms", "share"])

    def power_parts(self) -> pd.DataFrame:
        """Serving-idle power, the busy part and the unused headroom up to TDP (W; columns part, label, short, w)."""
        p = self.power
        stack = float(p["power_w"]) - float(p["serving_idle_w"]) - float(p["busy_w"])
        rows = [("idle", "Serving-idle power", "Serving-idle", float(p["serving_idle_w"])),
                ("busy", "Busy share of the headroom", "Busy", float(p["busy_w"]))]
        if abs(stack) > 0.5:
            rows.append(("stack", "Serving-stack calibration", "Stack calibration", stack))
        rows.append(("unused", "Unused headroom up to TDP", "Unused to TDP", float(p["tdp_w"]) - float(p["power_w"])))
        return pd.DataFrame(rows, columns=["part", "label", "short", "w"])

    def itl_reading(self) -> str:
        """One or two sentences: what bounds a decode step and which part of the time per token dominates."""
        i = self.itl
        parts = self.itl_parts()
        physical = parts[parts["part"] != "correction_s"]
        batch = float(i["batch"])
        step = (f"each decode step (effective batch {batch:,.0f}) reads {_bytes_text(float(i['weights_gb']))} of weights "
                f"and {_bytes_text(float(i['kv_cache_gb']))} of KV cache at an achieved "
                f"{_bandwidth_text(float(i['achieved_bandwidth_gb_s']))} and takes {float(i['step_s']) * 1000:.3g} ms")
        bound = {"memory": "**Memory-bound**", "compute": "**Compute-bound**",
                 "power": "**Power-limited**"}[str(i["limit"])]
        extra = ""
        if i["limit"] == "compute":
            extra = f" (tensor cores at an achieved {float(i['achieved_tflops']):,.0f} TFLOPS are slower than the reads)"
        elif i["limit"] == "power":
            extra = (f" (the power ceiling holds the tensor cores to {float(i['power_limited_tflops']):,.0f} "
                     "TFLOPS, slower than the reads)")
        per_token = ("a step yields one token for every sequence, so ITL is the step time / batch"
                     if self.offline else "a request gets one token per step")
        text = f"{bound}: {step}{extra}; {per_token}."
        if len(physical):
            top = physical.loc[physical["ms"].idxmax()]
            total = float(i["physics_itl_s"]) * 1000.0
            text += (f" {top['label']} is the largest part: {top['ms']:.3g} of the {total:.3g} ms per token the "
                     f"physics gives ({top['ms'] / total:.0%}).")
        factor = float(i["correction_factor"])
        if abs(factor - 1) >= 0.01:
            text += f" Corrections fitted to measured runs multiply it by {factor:.2f}."
        return text

    def power_reading(self) -> str:
        p = self.power
        source = "measured on this GPU's runs" if bool(p["measured_levels"]) else "estimated from its specs"
        busy = ("busy all the time (offline batch)" if self.offline
                else f"busy {float(p['duty']):.0%} of the time")
        text = (f"Serving-idle power **{float(p['serving_idle_w']):,.0f} W** ({source}), plus the GPU {busy} drawing "
                f"{float(p['headroom_use']):.0%} of the {float(p['headroom_w']):,.0f} W headroom up to its "
                f"{float(p['tdp_w']):,.0f} W TDP: **{float(p['power_w']):,.0f} W**.")
        if abs(float(p["stack_factor"]) - 1) > 1e-9:
            text += f" The serving stack's calibration multiplies it by {float(p['stack_factor']):.2f}."
        return text


@dataclass(frozen=True)
class PlusExplanation:
    """A WattGPU+ prediction explained: per target a :class:`GroupExplanation`, and the physics."""

    targets: dict
    physics: PlusPhysics
    prediction: pd.Series  # planning.predict's row (power_w, itl_s, energy, throughput, notes, ...)


def _one_request_rows(llm_id: str, gpu_id: str, request: dict, gpus: pd.DataFrame, llms: pd.DataFrame, model_set):
    """:func:`model_rows` of one request, joining only this GPU's and LLM's catalog rows (joining the whole
    catalogs for one row costs more than explaining it)."""
    one_gpu, one_llm = gpus[gpus["gpu_id"] == gpu_id], llms[llms["llm_id"] == llm_id]
    return model_rows(pd.DataFrame([{"llm": llm_id, "gpu": gpu_id, **request}]),
                      one_gpu if len(one_gpu) else gpus, one_llm if len(one_llm) else llms, model_set)


def explain_plus_request(llm_id: str, gpu_id: str, request: dict, gpus: pd.DataFrame, llms: pd.DataFrame,
                         model_set, background: Background, made=None,
                         explained: tuple[str, ...] = ("power", "itl")) -> PlusExplanation:
    """WattGPU+'s prediction for one (LLM, GPU, workload), explained: grouped Shapley values of power (W) and
    ln ITL against ``background`` (the same scenario's configurations), and the physics of the prediction.
    ``made``: this request's :func:`model_rows`, when the caller has them already; ``explained``: the targets to
    explain (``targets`` holds only those; the physics covers both).

    Raises WattGPUError when WattGPU+ cannot predict it (specs missing)."""
    name, part = next(((n, p) for n, p in parts(model_set).items() if get_model_set(n).reads_workload), (None, None))
    if part is None:
        raise WattGPUError(f"the model set {getattr(model_set, 'label', model_set)!r} has no WattGPU+ models")
    model_set_spec, models = get_model_set(name), dict(part.models)
    out, rows = made if made is not None else _one_request_rows(llm_id, gpu_id, request, gpus, llms, model_set)
    power_parts = models["power"].breakdown(rows).iloc[0]  # its power_w is the model's prediction
    ref = {"power": float(power_parts["power_w"]), "itl": float(models["itl"].predict(rows)[0])}
    if not all(np.isfinite(v) and v > 0 for v in ref.values()):
        raise WattGPUError(f"WattGPU+ cannot predict {llm_id} on {gpu_id}: {out['notes'].iloc[0] or 'specs missing'}")
    pool = _pool(rows["scenario_detail"].iloc[0])
    values = pd.Series(group_values(rows.iloc[0], models))
    keys = [g.key for g in PLUS_GROUPS]
    targets = {}
    for t in explained:
        explanation = model_set_spec.explain(models, t, rows, background.rows[pool])[0]
        explanation.data = np.asarray([values.get(k, "") for k in keys], dtype=object)
        phi = pd.Series(np.asarray(explanation.values, dtype=float), index=keys)
        base = float(explanation.base_values)
        expected = math.log(ref[t]) if t == "itl" else ref[t]
        if not math.isclose(base + phi.sum(), expected, rel_tol=1e-9, abs_tol=1e-9):
            raise RuntimeError(f"explanation of {t} does not reproduce the prediction ({base + phi.sum()} != "
                               f"{expected}): a column the model reads is in no group of PLUS_GROUPS")
        # groups that equal every background row, or that this target's model never reads (the per-LLM correction,
        # for power): exactly 0, not shown
        targets[t] = GroupExplanation(t, base, phi[phi != 0.0], values, background.describe(pool),
                                      tuple(phi.index[phi == 0.0]), explanation=explanation)
    physics = PlusPhysics(models["itl"].breakdown(rows).iloc[0], power_parts, pool == "offline")
    return PlusExplanation(targets, physics, out.iloc[0])


# representative number of each group (colours of the beeswarm)
_GROUP_NUMBER = {"bandwidth": "memory_bandwidth_gb_s", "tflops": "fp16_tensor_dense_tflops", "tdp": "tdp_w",
                 "memory": "memory_size_gb", "llm_size": "total_params_b", "llm_shape": "hidden_size",
                 "batch": "batch_size", "rate": "request_rate_qps", "input_tokens": "input_tokens",
                 "output_tokens": "output_tokens", "serving": "tensor_parallel"}


@dataclass(frozen=True)
class GroupImportance:
    """Mean |Shapley value| per input group over training configurations of one target and scenario pool."""

    target: str
    pool: str
    importance: pd.DataFrame  # feature (group key), label, importance (W, or mean |ln factor|)
    shap: pd.DataFrame  # rows x groups
    values: pd.DataFrame  # rows x groups, a representative number of each group (for colours)
    labels: dict
    axis_title: str
    n_rows: int
    n_background: int

    @property
    def explanation(self):
        """The Shapley values (rows x groups) as a ``shap.Explanation``, e.g. for ``shap.plots.beeswarm``."""
        return _matrix_explanation(self.shap, self.values)


def plus_global_importance(model_set, background: Background, pool: str, n_rows: int = 100, seed: int = 0,
                           background_size: int = GLOBAL_BACKGROUND_SIZE, progress=None) -> dict:
    """{target: :class:`GroupImportance`}: mean |Shapley value| per group of WattGPU+ over ``n_rows`` training
    configurations of scenario pool ``pool`` (a seeded sample), each against ``background_size`` rows of the
    background. ``progress(fraction, message)`` is called after each row."""
    models = plus_models(model_set)
    population = background.population[pool]
    rows = population.sample(min(n_rows, len(population)), random_state=seed + 1).reset_index(drop=True)
    bg = background.rows[pool].head(background_size)
    keys = [g.key for g in PLUS_GROUPS]
    shap = {t: pd.DataFrame(0.0, index=rows.index, columns=keys) for t in models}
    for i in range(len(rows)):
        res = plus_shapley(models, rows.iloc[[i]].reset_index(drop=True), bg)
        for t in models:
            shap[t].loc[i, res[t]["shap"].index] = res[t]["shap"].to_numpy()
        if progress is not None:
            progress((i + 1) / len(rows), f"Explaining training configuration {i + 1} of {len(rows)}...")
    values = pd.DataFrame({k: pd.to_numeric(rows[c], errors="coerce") for k, c in _GROUP_NUMBER.items()})
    values["gpu_arch"] = [ARCH_ORDER.index(a) if a in ARCH_ORDER else np.nan for a in rows["architecture"]]
    itl = models.get("itl")
    values["llm_correction"] = [itl.llm_effects.get(f"{llm}|{pool}", 0.0) if itl is not None else 0.0
                                for llm in rows["llm_id"]]
    values = values[keys]
    out = {}
    for t, frame in shap.items():
        used = [k for k in keys if frame[k].abs().max() > 0]
        mean_abs = frame[used].abs().mean()
        axis = ("Mean |SHAP value| (W)" if t == "power"
                else "Mean |SHAP value| (natural log of ITL; 0.69 = a factor of 2)")
        imp = pd.DataFrame({"feature": used, "label": [GROUP_NAMES[k] for k in used],
                            "importance": mean_abs.to_numpy()}).sort_values("importance", ascending=False)
        out[t] = GroupImportance(t, pool, imp.reset_index(drop=True), frame[used], values[used],
                                 {k: GROUP_NAMES[k] for k in used}, axis, len(rows), len(bg))
    return out


# ----------------------------------------------------------------------------------------------------------------
# What the Explain page shows
@dataclass(frozen=True)
class ExplainView:
    """One (LLM, GPU, workload) explained for a model set: per target an explanation of the prediction the app
    shows (:class:`GroupExplanation` for WattGPU+, :class:`TargetExplanation` for the paper's XGB), the WattGPU+
    physics (None for XGB), the model's label, and sentences on the method and on what "average" means."""

    model_label: str
    targets: dict
    physics: PlusPhysics | None
    method: str
    baseline: str
    pool: str
    notes: str = ""  # planning's notes on the WattGPU+ prediction (extrapolation, out of range, ...)

    def uses_plus(self, target: str) -> bool:
        return isinstance(self.targets[target], GroupExplanation)


def explanation_background(store, model_set) -> Background | None:
    """The training configurations WattGPU+ explanations start from; None for a model set without WattGPU+."""
    if not plus_models(model_set):
        return None
    return plus_background(training_frame(store, "catalog"), store.gpus(), store.llms(), model_set)


def explain_view(llm_id: str, gpu_id: str, request: dict, gpus: pd.DataFrame, llms: pd.DataFrame, model_set,
                 background: Background | None = None) -> ExplainView:
    """Explain the model set's prediction for one request: WattGPU+ (grouped exact Shapley values and physics) for
    the targets and scenarios where the set uses it, the paper's XGB (TreeSHAP) elsewhere."""
    if gpu_id not in set(gpus["gpu_id"]):
        raise WattGPUError(f"unknown GPU {gpu_id!r}; pick one from the list")
    pool = "offline" if request.get("scenario", "offline") == "offline" else "server"
    uses = {t: model_set.uses(t, pool) for t in ("power", "itl")}
    by_label = {p.label: n for n, p in parts(model_set).items() if p is not None}
    made = None
    if len(by_label) > 1:  # a composite: the set behind each target is the one this request's prediction used
        made = _one_request_rows(llm_id, gpu_id, request, gpus, llms, model_set)
        uses = {t: by_label.get(made[0][f"{t}_model"].iloc[0], name) for t, name in uses.items()}
    grouped = {t: get_model_set(name).reads_workload for t, name in uses.items()}
    targets, physics, methods, baselines, notes = {}, None, [], [], ""
    if any(grouped.values()):
        if background is None:
            raise WattGPUError("WattGPU+ explanations need the training runs (explanation_background)")
        plus = explain_plus_request(llm_id, gpu_id, request, gpus, llms, model_set, background, made,
                                    tuple(t for t, g in grouped.items() if g))
        targets.update({t: e for t, e in plus.targets.items() if grouped[t]})
        physics = plus.physics
        notes = str(plus.prediction.get("notes") or "")
        methods.append("WattGPU+: exact Shapley values over groups of inputs, each group switched from the "
                       "training configurations' values to this request's (interventional SHAP)")
        baselines.append(f"WattGPU+'s average is its mean prediction over {background.describe(pool)}; for ITL the "
                         "geometric mean, as its contributions multiply")
    tree = sorted({uses[t] for t, g in grouped.items() if not g})
    for name in tree:
        paper = explain_request(llm_id, gpu_id, request, gpus, llms, dict(parts(model_set)[name].models))
        targets.update({t: e for t, e in paper.items() if uses[t] == name})
        methods.append("the paper's XGB: TreeSHAP over its features (batch size and token counts are not among "
                       "them)")
        baselines.append("XGB's average is its mean output over its training runs")
    label = "WattGPU+" if not tree else ("Paper XGB" if not any(grouped.values()) else "WattGPU+ / Paper XGB")
    return ExplainView(label, targets, physics, "; ".join(methods) + ".", "; ".join(baselines) + ".", pool, notes)
