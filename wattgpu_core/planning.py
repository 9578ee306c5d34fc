"""Prediction API: mean power, ITL, energy per token and throughput for any (LLM, GPU, workload) from a model set.

This is what the dashboard and ``python -m wattgpu_core predict`` call. :func:`load_model_set` reads a model set's
files once (an immutable object the app caches): ``"default"`` (WattGPU+ for the targets and scenarios where it
measured better than the paper's XGB, XGB elsewhere), ``"plus"`` or ``"paper"``. :func:`predict` resolves names
against the catalogs, joins the specs, fills the workload (batch size, request rate, tokens, requests, GPUs, serving
stack; Watt Counts' values by default) and returns one row per request with the predictions, their 80% intervals
(WattGPU+), whether the GPU and LLM were seen in training, whether a spec lies outside the training range, whether
the model fits in GPU memory, the serving stack and model behind each value, and notes on what is extrapolated or
weak. (Ranking the GPUs for one LLM and workload: ``ranking.rank_gpus``.)

Energy per token and throughput follow the Watt Counts definitions (energy = GPU energy over the whole measurement
window / output tokens; throughput = output tokens / window). Offline, ITL is window / tokens, i.e. effective batch /
step time per token, so throughput = 1 / ITL and energy per token = power x GPUs x ITL. Server, requests arrive at
rate lambda with L output tokens each, so in steady state throughput = lambda L (at most what the GPU serves at its
largest batch) and energy per token = power x GPUs / throughput (idle gaps included, as measured).
:func:`derivation_check` compares both derivations with the measured values in the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from . import physics as ph
from .catalog import GpuResolver, LlmResolver, native_precisions, resolve_llm_precision
from .errors import Issue, ModelNotTrainedError, UnknownNameError, ValidationError
from .evaluation import (
    ITL_DEFINITION_LABELS,
    LOAD_SCALE,
    ROOFLINE_BATCH,
    averaged_cells,
    gpu_choice_regret_pct,
    mdape_pct,
    metrics,
)
from .features import SCENARIO_POOL, add_features, join_specs, scenario_detail, with_columns
from .models import WATTCOUNTS_MAX_TOKENS, join_extra_specs, training_frame
from .paths import MODELS_DIR
from .physics import DEFAULT_STACK, WATTCOUNTS_OFFLINE_REQUESTS, WATTCOUNTS_RATE_QPS, DecodeWorkload
from .physics import vllm_max_num_seqs as default_max_num_seqs  # vLLM's default batch (explain.py uses it too)
from .plus import calibrated_stacks, interval_bounds, out_of_range, uncalibrated_stack_shift
from .plus_itl import REQUIRED_INPUTS
from .plus_power import POWER_REQUIRED
from .plus_ttft import load_ttft
from .registry import get_model_set, load_fitted, uses_workload_model, workload_models, workload_part
from .registry import parts as model_parts
from .registry import uses as registry_uses
from .request import Deployment, PredictionRequest, Workload, as_request_frame
from .safety import write_csv

__all__ = [
    "Deployment",
    "LoadedModelSet",
    "PredictionRequest",
    "Workload",
    "derivation_check",
    "derivation_checks",
    "energy_choice",
    "derive_throughput_energy",
    "load_model_set",
    "predict",
    "predict_csv",
    "predict_with_rows",
    "training_frame",
]

# Watt Counts' fixed workload (paper-spec §1): the paper model predicts for exactly this.
DEFAULT_REQUEST_RATE_QPS = WATTCOUNTS_RATE_QPS
DEFAULT_MODEL_SET = "default"  # WattGPU+ where it measured better than the paper's models, the paper's elsewhere
PREDICTION_COLUMNS = ("llm_id", "gpu_id", "scenario_detail", "power_w", "itl_s", "itl_definition",
                      "energy_per_token_j", "throughput_tok_s", "gpu_seen", "llm_seen", "fits_in_memory", "notes",
                      "power_w_lo", "power_w_hi", "itl_s_lo", "itl_s_hi", "energy_per_token_j_lo",
                      "energy_per_token_j_hi", "throughput_tok_s_lo", "throughput_tok_s_hi", "out_of_range",
                      "serving_stack", "power_model", "itl_model")
# Deployment columns (issue 10; see deployment_columns): per replica of num_gpus tensor-parallel GPUs.
DEPLOYMENT_COLUMNS = ("precision", "precision_path", "precision_supported", "tensor_parallel", "ttft_s", "ttft_s_lo",
                      "ttft_s_hi", "tpot_s", "saturated", "max_throughput_tok_s", "replica_power_w",
                      "memory_needed_gb", "memory_available_gb", "memory_margin_gb", "kv_capacity_tokens",
                      "max_batch", "fits")
INTERVAL_TARGETS = ("power_w", "itl_s", "energy_per_token_j", "throughput_tok_s")


# --------------------------------------------------------------------------------------------------------------
# Model sets on disk
@dataclass(frozen=True)
class LoadedModelSet:
    """A model set loaded from ``models/`` for prediction (immutable; safe to cache and share between sessions).

    ``kind`` is "paper", "plus" (WattGPU+) or "default" (WattGPU+ for the targets and scenarios where it measured
    better, the paper's models elsewhere: ``choice[target][pool]`` names the set, ``parts`` holds both).
    """

    name: str
    label: str
    models: Mapping[str, object]
    metadata: Mapping
    gpu_ids: frozenset
    llm_ids: frozenset
    output_tokens_per_llm: Mapping[str, float]
    output_tokens_mean: float
    input_tokens_mean: float
    itl_definitions: Mapping[str, str]  # scenario (offline / server) -> ITL definition of the training data
    kind: str = "paper"
    choice: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    parts: Mapping[str, LoadedModelSet] = field(default_factory=dict)
    ttft: object = None  # the WattGPU+ TTFT model (models/plus_ttft.json), None when absent

    @property
    def default_stack(self) -> str:
        return (self.metadata.get("serving") or {}).get("default_stack", DEFAULT_STACK)

    @property
    def calibrated_stacks(self) -> list[str]:
        """Serving stacks a prediction may name (the default first); others are predicted as the default stack."""

        meta = self.metadata if (self.metadata.get("serving") or not self.parts) else \
            (workload_part(self) or self).metadata
        return calibrated_stacks(meta) if meta.get("serving") else [self.default_stack]

    def uses(self, target: str, pool, rows=None):
        """The model set ("plus" or "paper") that predicts ``target`` in scenario pool ``pool`` (an array of names
        for an array of pools; with ``rows``, the feature frame, per row: see ``registry.uses``)."""
        return registry_uses(self, target, pool, rows)


def _loaded(name: str, fitted: Mapping, meta: Mapping, kind: str) -> LoadedModelSet:
    data = meta["training_data"]
    defs = {}
    for d in meta["targets"].get("itl", {}).get("itl_definitions") or []:
        defs["offline" if d.startswith("offline") else "server"] = d
    return LoadedModelSet(
        name=name, label=meta.get("label", name), models=MappingProxyType(dict(fitted)),
        metadata=MappingProxyType(meta), gpu_ids=frozenset(data["gpu_ids"]), llm_ids=frozenset(data["llm_ids"]),
        output_tokens_per_llm=MappingProxyType(dict(data["output_tokens_per_llm"])),
        output_tokens_mean=float(data["output_tokens_mean"]), input_tokens_mean=float(data["input_tokens_mean"]),
        itl_definitions=MappingProxyType(defs), kind=kind)


def load_model_set(name: str = DEFAULT_MODEL_SET, models_dir: Path = MODELS_DIR) -> LoadedModelSet:
    """Load a model set's files and metadata (raises ModelNotTrainedError when they are missing).

    ``"paper"``: the paper's XGBoost models. ``"plus"``: WattGPU+. ``"default"``: WattGPU+ for each target and
    scenario where the all-GPU evaluation measured it better (``default_for`` in its metadata), the paper's models
    elsewhere; the paper's models alone when WattGPU+ is not trained.
    """
    if name == "default":
        paper = load_model_set("paper", models_dir)
        try:
            plus = load_model_set("plus", models_dir)
        except ModelNotTrainedError:
            return paper
        decided = plus.metadata.get("default_for") or {}
        choice = {t: {pool: (decided.get(t, {}).get(pool) or {}).get("default", "paper")
                      for pool in ("offline", "server")} for t in ("power", "itl")}
        used = sorted({v for c in choice.values() for v in c.values()})
        label = plus.label if used == ["plus"] else (paper.label if used == ["paper"] else
                                                     f"{plus.label} / {paper.label}")
        return LoadedModelSet(
            name="default", label=label, models=plus.models, metadata=plus.metadata,
            gpu_ids=plus.gpu_ids | paper.gpu_ids, llm_ids=plus.llm_ids, output_tokens_per_llm=paper.output_tokens_per_llm,
            output_tokens_mean=paper.output_tokens_mean, input_tokens_mean=paper.input_tokens_mean,
            itl_definitions=plus.itl_definitions, kind="default",
            choice=MappingProxyType({t: MappingProxyType(c) for t, c in choice.items()}),
            parts=MappingProxyType({"plus": plus, "paper": paper}), ttft=plus.ttft)


    fitted, meta = load_fitted(name, models_dir)
    loaded = _loaded(name, fitted, meta, name)
    return replace(loaded, ttft=load_ttft(models_dir))


# --------------------------------------------------------------------------------------------------------------
# Planning maths
def derive_throughput_energy(power_w, itl_s, scenario, request_rate_qps, output_tokens, num_gpus=1,
                             max_throughput_tok_s=np.inf):
    """(throughput tok/s, energy J/token) as Watt Counts defines them, from mean power per GPU and ITL.

    Offline (``scenario`` "offline"): throughput = 1 / ITL (ITL is run time / output tokens, i.e. effective batch /
    step time) and energy = power x GPUs x ITL. Server (any other label): throughput = lambda x L, at most
    ``max_throughput_tok_s`` (what the GPU serves at its largest batch; beyond it queues grow), and energy =
    power x GPUs / throughput; ITL is not needed there.
    """
    power = np.asarray(power_w, dtype=float) * np.asarray(num_gpus, dtype=float)
    itl = np.asarray(itl_s, dtype=float)
    offline = np.asarray(pd.Series(np.asarray(scenario, dtype=object)).eq("offline"))
    served = np.minimum(np.asarray(request_rate_qps, dtype=float) * np.asarray(output_tokens, dtype=float),
                        np.asarray(max_throughput_tok_s, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        throughput = np.where(offline, 1.0 / itl, served)
        energy = np.where(offline, power * itl, power / served)
    return throughput, energy


# --------------------------------------------------------------------------------------------------------------
# Prediction
def _resolve(requests: pd.DataFrame, gpus: pd.DataFrame, llms: pd.DataFrame
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(LLM ids, GPU ids, precision named by a quantised checkpoint id or None) per request."""

    # the resolvers read only the names (a narrow table converts to records many times faster)
    resolver = LlmResolver(llms[[c for c in ("llm_id", "aliases") if c in llms.columns]])
    names_in = requests["llm"].to_numpy(dtype=object)
    found = {n: resolve_llm_precision(resolver, n) for n in pd.unique(names_in) if isinstance(n, str)}
    unresolved = np.asarray([isinstance(n, str) and found[n][0] is None for n in names_in], dtype=bool)
    _, llm_unknown = resolver.resolve_many(names_in[unresolved])
    llm_ids = np.asarray([found[n][0] if isinstance(n, str) else None for n in names_in], dtype=object)
    id_precision = np.asarray([found[n][1] if isinstance(n, str) else None for n in names_in], dtype=object)
    gpu_ids, gpu_unknown = GpuResolver(gpus[[c for c in ("gpu_id", "name", "nvml_name", "aliases")
                                             if c in gpus.columns]]).resolve_many(requests["gpu"].to_numpy(dtype=object))
    if llm_unknown or gpu_unknown:
        kinds = " and ".join(k for k, u in (("LLM", llm_unknown), ("GPU", gpu_unknown)) if u)
        raise UnknownNameError(kinds, [*llm_unknown, *gpu_unknown], {**llm_unknown, **gpu_unknown})
    return llm_ids, gpu_ids, id_precision


def _missing_inputs(feats: pd.DataFrame, model_set: LoadedModelSet) -> np.ndarray:
    """Per row, the model inputs that are missing (the models impute them), comma-separated."""
    cols = []
    for model in model_set.models.values():
        pre = getattr(model, "preprocessor", None)
        if pre is not None:
            cols += [c for c in (*pre.numeric, *pre.categorical) if c not in cols]
    out = np.full(len(feats), "", dtype=object)
    if not cols:
        return out
    miss = feats[cols].isna().to_numpy()
    names = np.array(cols, dtype=object)
    for i in np.flatnonzero(miss.any(axis=1)):
        out[i] = ", ".join(names[miss[i]])
    return out


def _notes(parts: list[tuple[np.ndarray, object]], n: int) -> np.ndarray:
    """Per-row notes joined with "; ": each part is (mask, text or per-row array of texts). Rows sharing the same
    notes are joined once."""
    masks = [np.asarray(mask, dtype=bool) for mask, _ in parts]

    def joined(i: int) -> str:
        return "; ".join(text if isinstance(text, str) else str(text[i])
                         for (_, text), mask in zip(parts, masks, strict=True) if mask[i])

    if n <= 16:  # a few rows (one prediction): joined directly, grouping would cost more
        return np.asarray([joined(i) for i in range(n)], dtype=object)
    bits = np.zeros(n, dtype=np.int64)
    for bit, mask in enumerate(masks):
        bits |= mask.astype(np.int64) << bit
    keys = pd.Series(bits.astype(str))
    for (_, text), mask in zip(parts, masks, strict=True):
        if not isinstance(text, str):
            keys = keys + "|" + pd.Series(np.where(mask, np.asarray(text, dtype=object), ""), dtype=object).astype(str)
    codes, _ = pd.factorize(keys)
    first = np.unique(codes, return_index=True)[1]
    return np.asarray([joined(i) for i in first], dtype=object)[codes]


def workload_frame(llm_ids, gpu_ids, gpus, llms, detail, values: dict, model_set: LoadedModelSet,
                    stacks: np.ndarray) -> pd.DataFrame:
    """The request rows as the models read them: specs joined, paper features, workload columns with defaults."""

    ids = pd.DataFrame({"llm_id": llm_ids, "gpu_id": gpu_ids})
    ids.columns = ids.columns.astype(object)  # column by column below: an object index is twice as fast
    feats = add_features(join_specs(ids, gpus, llms))
    feats = join_extra_specs(feats, gpus, llms)
    n = len(feats)
    offline = detail == "offline"
    closed = np.asarray(values.get("closed_loop", np.zeros(n, bool)), dtype=bool)
    requests = np.where(offline, np.where(np.isnan(values["num_requests"]), WATTCOUNTS_OFFLINE_REQUESTS,
                                          values["num_requests"]), np.nan)
    gpus_per = np.where(np.isnan(values["num_gpus"]), 1.0, values["num_gpus"])
    fw_ver = [str(s).split(" ", 1) if isinstance(s, str) else [None, None] for s in stacks]
    feats = with_columns(feats, {
        "scenario_detail": detail,
        "scenario": np.where(offline, "offline", "server").astype(object),
        "request_rate_qps": np.where(offline, np.nan, values["request_rate_qps"]),
        "input_tokens": np.where(np.isnan(values["input_tokens"]), model_set.input_tokens_mean,
                                 values["input_tokens"]),
        "output_tokens": values["output_tokens"],
        # Watt Counts generated up to 256 tokens per prompt (stopping at EOS); a given output length is fixed.
        "max_output_tokens": np.where(values["output_given"], values["output_tokens"], WATTCOUNTS_MAX_TOKENS),
        "batch_size": values["batch_size"],
        "num_requests": np.where(closed, np.nan, requests),  # a closed loop's steady state: the batch stays full
        "closed_loop": closed,
        "num_gpus": gpus_per,
        "tensor_parallel": gpus_per,
        "serving_stack": stacks,
        "framework": [f[0] for f in fw_ver],
        "framework_version": [f[1] if len(f) > 1 else None for f in fw_ver],
    })
    feats.index = range(n)
    feats.columns = feats.columns.astype("str")
    return feats


def _precisions(given, id_precision, llm_ids, llms: pd.DataFrame) -> np.ndarray:
    """Each request's weight precision (canonical name): the request's, else the one a quantised checkpoint id
    names, else the LLM's native precision."""

    native = native_precisions(llms).to_dict()
    return np.asarray([g if g is not None else idp if idp is not None else
                       (native.get(lid, "bf16") if lid is not None else None)
                       for g, idp, lid in zip(given, id_precision, llm_ids, strict=True)], dtype=object)


def add_deployment(feats: pd.DataFrame, precision, gpus: pd.DataFrame) -> pd.DataFrame:
    """The deployment of each request row: precision, its compute path on the GPU, and the replica's memory fit
    (:func:`~wattgpu_core.physics.memory_fit`, decimal GB). Adds to ``feats`` (in place) the columns the WattGPU+
    physics reads: ``weight_bytes_per_param``, ``compute_tflops``, ``link_gb_s``, ``kv_capacity_tokens``. Returns one
    row per request: precision, precision_path, precision_supported, precision_reason, weights_gb, overhead_gb,
    memory_available_gb, memory_total_gb, kv_capacity_tokens, max_batch, fits, kv_bytes_per_token,
    context_tokens."""

    n = len(feats)
    table = gpus.drop_duplicates("gpu_id").set_index("gpu_id")
    gid = feats["gpu_id"]
    fp8 = gid.map(table["fp8_tensor_dense_tflops"]).to_numpy(float) if "fp8_tensor_dense_tflops" in table \
        else np.full(n, np.nan)
    link = ph.link_gb_s(gid.map(table["interconnect"]).to_numpy(dtype=object)) if "interconnect" in table \
        else np.full(n, ph.NVLINK_GB_S)
    arch = feats["architecture"].to_numpy(dtype=object) if "architecture" in feats else np.full(n, None, object)
    prec = np.asarray([p if isinstance(p, str) else ph.DEFAULT_PRECISION for p in precision], dtype=object)
    paths = ph.precision_paths(prec, arch)
    tp = feats["tensor_parallel"].to_numpy(float)
    inp = feats["input_tokens"].to_numpy(float)
    outp = feats["output_tokens"].to_numpy(float)
    ctx = ph.mean_context_tokens(inp, outp)
    hd = ph.head_dim(feats["hidden_size"], feats["num_attention_heads"],
                     feats["head_dim"] if "head_dim" in feats else None)
    # MLA (DeepSeek-V2/V3, Kimi K2): a latent KV cache held whole on every GPU, attention over the latent
    rank, rope = ph.mla_dims(feats["model_type"].to_numpy(dtype=object) if "model_type" in feats
                             else np.full(n, None, dtype=object))
    mla = np.isfinite(rank)
    kv_token = np.where(mla, ph.mla_kv_bytes_per_token(feats["num_layers"].to_numpy(float), rank, rope)
                        * feats["tensor_parallel"].to_numpy(float), np.nan)
    hd = np.where(mla, ph.mla_attention_head_dim(rank, rope), hd)
    feats["kv_bytes_per_token"] = kv_token
    if mla.any():
        feats["head_dim"] = hd
    mem_gb = feats["memory_size_gb"].to_numpy(float)
    mem_type = feats["memory_type"].to_numpy(dtype=object) if "memory_type" in feats else np.full(n, None, object)
    is_a100 = ph.is_a100_class(gid)
    seqs = feats["batch_size"].to_numpy(float)
    seqs = np.where(np.isfinite(seqs), seqs, ph.vllm_default_max_num_seqs(mem_gb, is_a100))

    def col(name):
        return feats[name].to_numpy(float) if name in feats else np.full(n, np.nan)

    fit = {k: np.full(n, np.nan) for k in ("weights_gb", "overhead_gb", "available_gb", "total_gb",
                                           "kv_capacity_tokens", "max_batch")}
    fit["fits"] = np.zeros(n, bool)
    for p in pd.unique(prec):
        m = prec == p
        r = ph.memory_fit(total_params_b=col("total_params_b")[m], num_layers=col("num_layers")[m],
                          num_key_value_heads=col("num_key_value_heads")[m], head_dim_=hd[m],
                          hidden_size=col("hidden_size")[m], memory_size_gb=mem_gb[m], tensor_parallel=tp[m],
                          precision=p, context_tokens=ctx[m], max_context_tokens=inp[m] + outp[m],
                          active_params_b=col("active_params_b")[m], num_experts=col("num_experts")[m],
                          experts_per_token=col("experts_per_token")[m], vocab_size=col("vocab_size")[m],
                          intermediate_size=col("intermediate_size")[m], max_num_seqs=seqs[m], is_a100=is_a100[m],
                          kv_bytes_token=kv_token[m], memory_type=mem_type[m])
        for k in fit:
            fit[k][m] = getattr(r, k)
    total = col("total_params_b")
    with np.errstate(invalid="ignore", divide="ignore"):
        feats["weight_bytes_per_param"] = fit["weights_gb"] / total
    feats["compute_tflops"] = ph.path_tflops(paths["compute"].to_numpy(dtype=object), col("fp16_tensor_dense_tflops"),
                                             fp8)
    feats["link_gb_s"] = link
    feats["kv_capacity_tokens"] = fit["kv_capacity_tokens"]
    fits = fit["fits"] & np.isfinite(fit["weights_gb"])
    return pd.DataFrame({
        "precision": prec, "precision_path": paths["path"].to_numpy(dtype=object),
        "precision_supported": paths["supported"].to_numpy(bool), "precision_reason": paths["reason"].to_numpy(object),
        "weights_gb": fit["weights_gb"], "overhead_gb": fit["overhead_gb"], "memory_available_gb": fit["available_gb"],
        "memory_total_gb": fit["total_gb"], "kv_capacity_tokens": fit["kv_capacity_tokens"],
        "max_batch": fit["max_batch"], "fits": fits,
        "kv_bytes_per_token": np.where(mla, kv_token, ph.kv_bytes_per_token(col("num_layers"),
                                                                             col("num_key_value_heads"), hd)),
        "context_tokens": ctx,
    }, index=feats.index)


def _deployment_outputs(out: pd.DataFrame, feats: pd.DataFrame, deploy: pd.DataFrame, model_set: LoadedModelSet,
                        preds: dict, pool, rate, out_tokens, tp, unsupported) -> pd.DataFrame:
    """``out`` with the deployment columns (:data:`DEPLOYMENT_COLUMNS`) added and its throughput and energy
    bounded by them."""

    n = len(out)
    itl_model = workload_models(model_set).get("itl")
    server = pool != "offline"
    if itl_model is not None and hasattr(itl_model, "breakdown"):
        parts = itl_model.breakdown(feats)
        batch = parts["batch"].to_numpy(float)
        tpot = parts["step_s"].to_numpy(float) * parts["correction_factor"].to_numpy(float)
    else:
        batch, tpot = np.ones(n), np.full(n, np.nan)
    power, itl = preds["power_w"], preds["itl_s"]
    decode_cap = np.where(np.isfinite(preds["max_throughput_tok_s"]), preds["max_throughput_tok_s"], np.nan)
    ttft = np.full(n, np.nan)
    if model_set.ttft is not None:
        rows = feats.copy()
        keep = server | feats["closed_loop"].to_numpy(bool)
        rows["batch_size"] = np.where(keep, rows["batch_size"], DecodeWorkload.of(feats).batch_cap)
        ttft = model_set.ttft.predict(rows, itl_model if hasattr(itl_model, "calibration") else None, decode_cap)
        # a replica's capacity for this traffic: each request's prefill plus its tokens at the decode capacity
        decode_cap = np.where(server, model_set.ttft.capacity_tok_s(feats, decode_cap), decode_cap)
    ttft = np.where(unsupported, np.nan, ttft)
    tpot = np.where(unsupported, np.nan, tpot)
    ttft_lo, ttft_hi = model_set.ttft.interval(ttft) if model_set.ttft is not None else (ttft, ttft)
    with np.errstate(divide="ignore", invalid="ignore"):
        capacity = np.where(server, decode_cap, 1.0 / itl)
    capacity = np.where(np.isfinite(capacity) & ~unsupported, capacity, np.nan)
    kv_gb = batch * deploy["context_tokens"].to_numpy(float) * deploy["kv_bytes_per_token"].to_numpy(float) / 1e9
    needed = deploy["weights_gb"].to_numpy(float) + deploy["overhead_gb"].to_numpy(float) + kv_gb
    cols = {"precision": deploy["precision"].to_numpy(dtype=object),
            "precision_path": deploy["precision_path"].to_numpy(dtype=object),
            "precision_supported": deploy["precision_supported"].to_numpy(bool), "tensor_parallel": tp.astype(int),
            "ttft_s": ttft, "ttft_s_lo": ttft_lo, "ttft_s_hi": ttft_hi, "tpot_s": tpot}
    offered = np.asarray(rate, float) * out_tokens
    cols["saturated"] = server & np.isfinite(capacity) & (offered > capacity)

    def now(col):  # a column as set so far
        return cols[col] if col in cols else out[col].to_numpy()

    # a server delivers the offered load up to the replica's capacity (prefill included); nothing when unsupported
    for col in ("throughput_tok_s", "throughput_tok_s_lo", "throughput_tok_s_hi"):
        cols[col] = np.where(server & np.isfinite(capacity), np.minimum(now(col), capacity), now(col))
    with np.errstate(divide="ignore", invalid="ignore"):
        cols["energy_per_token_j"] = np.where(server, power * tp / now("throughput_tok_s"), now("energy_per_token_j"))
    for col in ("energy_per_token_j", "energy_per_token_j_lo", "energy_per_token_j_hi", "throughput_tok_s",
                "throughput_tok_s_lo", "throughput_tok_s_hi"):
        cols[col] = np.where(unsupported, np.nan, now(col))
    available = deploy["memory_available_gb"].to_numpy(float)
    cols.update({"max_throughput_tok_s": capacity, "replica_power_w": power * tp, "memory_needed_gb": needed,
                 "memory_available_gb": available, "memory_margin_gb": available - needed,
                 "kv_capacity_tokens": deploy["kv_capacity_tokens"].to_numpy(float),
                 "max_batch": deploy["max_batch"].to_numpy(float), "fits": deploy["fits"].to_numpy(bool)})
    deploy["memory_needed_gb"] = needed
    deploy["memory_margin_gb"] = cols["memory_margin_gb"]
    return with_columns(out, cols)


def predict(requests, gpus: pd.DataFrame, llms: pd.DataFrame,
            model_set: LoadedModelSet | str = DEFAULT_MODEL_SET) -> pd.DataFrame:
    """Predictions for each request.

    ``requests``: :class:`~wattgpu_core.request.PredictionRequest` objects (one or a sequence; validated when
    built), a table of requests or one mapping of its columns (validated here with the same rules,
    :func:`~wattgpu_core.request.validate_frame`). Table columns: llm, gpu, scenario (offline, server, or the paper's server_low / server_high); optional batch_size
    (the maximum running batch, vLLM's max_num_seqs; default: vLLM's), request_rate_qps (server), input_tokens and
    output_tokens (per request; default: the Watt Counts prompts and the LLM's mean output), num_requests
    (offline; default 1000), num_gpus or tensor_parallel (GPUs per replica, tensor parallel; default 1),
    precision (bf16, fp16, fp8, int8, int4, fp4, mxfp4; default: what a quantised checkpoint id names, else the
    LLM's native precision) and serving_stack (default: the stack the models were trained on, "vLLM 0.14").

    Returns the input plus llm_id, gpu_id, scenario_detail, power_w (per GPU), itl_s, itl_definition,
    energy_per_token_j (all GPUs), throughput_tok_s, their 80% interval bounds ``*_lo`` / ``*_hi`` (WattGPU+;
    NaN for the paper's models, which have none), gpu_seen, llm_seen, fits_in_memory, out_of_range (a GPU spec or
    the LLM's size outside the training data), serving_stack, power_model / itl_model (the model set behind each
    value) and notes; request_rate_qps and output_tokens are filled with the values used. Per replica of num_gpus
    GPUs, also :data:`DEPLOYMENT_COLUMNS`: precision, precision_path (the compute path on that GPU),
    precision_supported (False: predictions NaN, the reason in the notes), tensor_parallel, ttft_s and its 80%
    interval (WattGPU+ TTFT: prefill plus queueing; offline: a burst of the running batch), tpot_s (time between a
    request's tokens, TTFT excluded), saturated (server: offered tokens/s above max_throughput_tok_s),
    max_throughput_tok_s (server: the replica's capacity for this traffic, prefill included; offline: its
    throughput), replica_power_w (num_gpus x power_w), memory_needed_gb / memory_available_gb / memory_margin_gb
    (decimal GB, at the operating batch), kv_capacity_tokens, max_batch and fits (= fits_in_memory).

    The paper's models know only the Watt Counts workload: for them batch size, request rate and token counts
    only scale throughput and energy (the notes say so). WattGPU+ reads them.

    Raises UnknownNameError naming every LLM and GPU name the catalogs do not know, and ValidationError for
    missing columns, unknown scenarios and non-positive numbers.
    """
    return predict_with_rows(requests, gpus, llms, model_set)[0]


def predict_with_rows(requests, gpus: pd.DataFrame, llms: pd.DataFrame,
                      model_set: LoadedModelSet | str = DEFAULT_MODEL_SET) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(:func:`predict`'s output, the model rows behind it): the rows the models read, as :func:`workload_frame`
    builds them (specs, paper features, the workload with its defaults), before the deployment columns (precision,
    memory fit) are added. Explanations switch these rows' inputs."""
    if isinstance(model_set, str):
        model_set = load_model_set(model_set)
    out, typed = as_request_frame(requests)  # validated once, here at the edge (or when the requests were built)
    columns_dtype = out.columns.dtype
    out.columns = out.columns.astype(object)  # column by column below: an object index is twice as fast
    llm_ids, gpu_ids, id_precision = _resolve(typed, gpus, llms)
    scen = typed["scenario"].to_numpy(dtype=object)
    values = {c: typed[c].to_numpy(float) for c in ("batch_size", "request_rate_qps", "input_tokens",
                                                      "output_tokens", "num_requests")}
    values["num_gpus"] = typed["tensor_parallel"].to_numpy(float)
    values["precision"] = _precisions(typed["precision"].to_numpy(dtype=object), id_precision, llm_ids, llms)
    rate = values["request_rate_qps"]
    concurrency = typed["max_concurrency"].to_numpy(float)
    closed = (scen == "server") & np.isnan(rate) & np.isfinite(concurrency)
    # A server at a fixed concurrency C (closed loop, as serving benchmarks run it): in steady state C requests are
    # always in flight, i.e. a full running batch of C (fewer if memory holds fewer) that never drains.
    scen = np.where(closed, "offline", scen).astype(object)
    values["batch_size"] = np.where(closed, concurrency, values["batch_size"])
    values["closed_loop"] = closed

    # Workload: lambda picks the paper's server_low / server_high label (its models know only those).
    detail = scenario_detail(scen, rate)
    default_rate = pd.Series(detail).map(DEFAULT_REQUEST_RATE_QPS).to_numpy(dtype=float)
    rate = np.where(np.isnan(rate), default_rate, rate)
    values["request_rate_qps"] = rate
    per_llm = pd.Series(llm_ids).map(model_set.output_tokens_per_llm).to_numpy(dtype=float)
    default_out = np.where(np.isnan(per_llm), model_set.output_tokens_mean, per_llm)
    values["output_given"] = np.isfinite(values["output_tokens"])
    out_tokens = np.where(np.isnan(values["output_tokens"]), default_out, values["output_tokens"])
    values["output_tokens"] = out_tokens
    stack_in = ph.per_unique(ph.parse_serving_stack, typed["serving_stack"].to_numpy(dtype=object), dtype=object)
    known_stacks = set((model_set.metadata.get("serving") or {}).get("calibrated_stacks") or []) \
        if workload_part(model_set) is not None else set()
    stack_known = np.asarray([s is None or s in known_stacks for s in stack_in], dtype=bool)
    stacks = np.asarray([s if (s is not None and ok) else model_set.default_stack
                         for s, ok in zip(stack_in, stack_known, strict=True)], dtype=object)

    feats = workload_frame(llm_ids, gpu_ids, gpus, llms, detail, values, model_set, stacks)
    rows = feats.copy()
    feats.columns = feats.columns.astype(object)
    deploy = add_deployment(feats, values["precision"], gpus)
    pool = pd.Series(detail).map(SCENARIO_POOL).to_numpy(dtype=object)
    preds = _predict_targets(model_set, feats, pool, ~stack_known)
    unsupported = ~deploy["precision_supported"].to_numpy(bool)
    for key in ("power_w", "itl_s", "power_w_lo", "power_w_hi", "itl_s_lo", "itl_s_hi"):
        preds[key] = np.where(unsupported, np.nan, preds[key])
    power, itl = preds["power_w"], preds["itl_s"]
    tp = feats["tensor_parallel"].to_numpy(float)
    saturation = preds["max_throughput_tok_s"]
    throughput, energy = derive_throughput_energy(power, itl, detail, rate, out_tokens, tp, saturation)
    lo_t, lo_e = derive_throughput_energy(preds["power_w_lo"], preds["itl_s_hi"], detail, rate, out_tokens, tp,
                                          saturation)
    hi_t, hi_e = derive_throughput_energy(preds["power_w_hi"], preds["itl_s_lo"], detail, rate, out_tokens, tp,
                                          saturation)
    _, e_lo = derive_throughput_energy(preds["power_w_lo"], preds["itl_s_lo"], detail, rate, out_tokens, tp,
                                       saturation)
    _, e_hi = derive_throughput_energy(preds["power_w_hi"], preds["itl_s_hi"], detail, rate, out_tokens, tp,
                                       saturation)

    range_notes = preds["out_of_range"]
    out = with_columns(out, {
        "llm_id": llm_ids, "gpu_id": gpu_ids, "scenario_detail": detail,
        "request_rate_qps": np.where(detail == "offline", np.nan, rate), "output_tokens": out_tokens,
        "power_w": power, "itl_s": itl,
        "itl_definition": pd.Series(pool).map(model_set.itl_definitions).to_numpy(dtype=object),
        "energy_per_token_j": energy, "throughput_tok_s": throughput,
        "gpu_seen": np.isin(gpu_ids, list(model_set.gpu_ids)), "llm_seen": np.isin(llm_ids, list(model_set.llm_ids)),
        "fits_in_memory": deploy["fits"].to_numpy(bool),
        "power_w_lo": preds["power_w_lo"], "power_w_hi": preds["power_w_hi"],
        "itl_s_lo": preds["itl_s_lo"], "itl_s_hi": preds["itl_s_hi"],
        "energy_per_token_j_lo": e_lo, "energy_per_token_j_hi": e_hi,
        "throughput_tok_s_lo": lo_t, "throughput_tok_s_hi": hi_t,
        "out_of_range": range_notes != "", "serving_stack": stacks,
        "power_model": preds["power_model"], "itl_model": preds["itl_model"],
    })
    out = _deployment_outputs(out, feats, deploy, model_set, preds, pool, rate, out_tokens, tp, unsupported)
    out["notes"] = _prediction_notes(model_set, out, feats, detail, pool, values, range_notes, stack_in,
                                     stack_known, saturation, gpus, deploy)
    out.columns = out.columns.astype(columns_dtype)
    return out, rows


def _predict_targets(model_set: LoadedModelSet, feats: pd.DataFrame, pool: np.ndarray,
                     uncalibrated: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Power, ITL, their interval bounds, the model behind each, the out-of-range details and the server's
    saturation throughput, choosing per target and scenario pool for the default set. Rows in ``uncalibrated``
    (a serving stack WattGPU+ has no calibration for, predicted as the default stack) get intervals widened by the
    calibrated stacks' offsets, rows of a calibrated stack other than the default at least that stack's residual
    spread (:func:`~wattgpu_core.plus.interval_bounds`)."""
    n = len(feats)
    nan = np.full(n, np.nan)
    res = {"power_w": nan.copy(), "itl_s": nan.copy(), "power_w_lo": nan.copy(), "power_w_hi": nan.copy(),
           "itl_s_lo": nan.copy(), "itl_s_hi": nan.copy(), "power_model": np.full(n, "", dtype=object),
           "itl_model": np.full(n, "", dtype=object), "out_of_range": np.full(n, "", dtype=object),
           "max_throughput_tok_s": np.full(n, np.inf)}
    sets = model_parts(model_set)
    plus = workload_part(model_set)
    if plus is not None:

        res["out_of_range"] = out_of_range(feats, plus.metadata.get("ranges") or {})
        res["max_throughput_tok_s"] = np.where(pool == "offline", np.inf,
                                               plus.models["itl"].max_throughput_tok_s(feats))
    for target, col in (("power", "power_w"), ("itl", "itl_s")):
        names = model_set.uses(target, pool, feats)
        for name, loaded in sets.items():
            if loaded is None:
                continue
            rows = names == name
            if not rows.any():
                continue
            part = feats[rows]
            pred = np.asarray(loaded.models[target].predict(part), dtype=float)
            res[col][rows] = pred
            res[f"{target}_model"][rows] = loaded.label
            meta = plus.metadata if plus is not None else {}
            key = get_model_set(name).interval_key
            quantiles = (meta.get("intervals") or {}).get(key)
            if quantiles and target in quantiles:
                lo, hi = interval_bounds(meta, target, pred, part["scenario_detail"],
                                         None if uncalibrated is None else np.asarray(uncalibrated)[rows],
                                         quantiles_key=key, stacks=part["serving_stack"].to_numpy(dtype=object)
                                         if "serving_stack" in part else None)
                if target == "power" and "tdp_w" in part:  # a GPU's mean power stays under its power limit
                    hi = np.fmin(hi, np.fmax(part["tdp_w"].to_numpy(float), pred))
                res[f"{col}_lo"][rows], res[f"{col}_hi"][rows] = lo, hi
    return res


def _missing_plus_inputs(feats: pd.DataFrame) -> np.ndarray:
    """Per row, the specs WattGPU+ needs that the catalogs lack (it does not impute them), comma-separated."""

    cols = [c for c in dict.fromkeys((*REQUIRED_INPUTS, *POWER_REQUIRED)) if c in feats.columns]
    miss = feats[cols].isna().to_numpy()
    names = np.array(cols, dtype=object)
    out = np.full(len(feats), "", dtype=object)
    for i in np.flatnonzero(miss.any(axis=1)):
        out[i] = ", ".join(names[miss[i]])
    return out


def _prediction_notes(model_set: LoadedModelSet, out: pd.DataFrame, feats: pd.DataFrame, detail, pool, values,
                      range_notes, stack_in, stack_known, saturation, gpus: pd.DataFrame,
                      deploy: pd.DataFrame) -> np.ndarray:
    n = len(out)
    is_moe = feats["is_moe"].fillna(False).to_numpy(dtype=bool)
    arch_class = feats["architecture_class"].fillna("").astype(str).str.lower().to_numpy() \
        if "architecture_class" in feats else np.full(n, "", dtype=object)
    vendor = gpus.drop_duplicates("gpu_id").set_index("gpu_id")["vendor"] if "vendor" in gpus.columns else None
    non_nvidia = (pd.Series(out["gpu_id"]).map(vendor).fillna("NVIDIA").str.upper() != "NVIDIA").to_numpy() \
        if vendor is not None else np.zeros(n, bool)
    paper_only = workload_part(model_set) is None
    plus_power = uses_workload_model(model_set, "power", pool, feats)
    plus_itl = uses_workload_model(model_set, "itl", pool, feats)
    any_paper = ~plus_power | ~plus_itl
    missing_inputs = _missing_inputs(feats, model_set.parts.get("paper", model_set)) if not paper_only else \
        _missing_inputs(feats, model_set)
    missing_inputs = np.where(any_paper, missing_inputs, "")
    plus_missing = _missing_plus_inputs(feats) if not paper_only else np.full(n, "", dtype=object)
    plus_missing = np.where(plus_power | plus_itl, plus_missing, "")
    default_batch = default_max_num_seqs(out["gpu_id"], feats["memory_size_gb"].to_numpy(float))
    batch = values["batch_size"]
    rate = values["request_rate_qps"]
    odd_batch = (detail == "offline") & np.isfinite(batch) & (batch != default_batch)
    odd_rate = (detail != "offline") & ~np.isin(np.round(rate, 6), list(DEFAULT_REQUEST_RATE_QPS.values()))
    odd_input = np.isfinite(values["input_tokens"]) & (np.abs(values["input_tokens"] - model_set.input_tokens_mean)
                                                        > 0.5 * model_set.input_tokens_mean)
    odd_output = values["output_given"] & (values["output_tokens"] > WATTCOUNTS_MAX_TOKENS)
    multi = np.isfinite(values["num_gpus"]) & (values["num_gpus"] > 1)
    closed = feats["closed_loop"].to_numpy(bool)
    supported = deploy["precision_supported"].to_numpy(bool)
    quantised = supported & ~deploy["precision"].isin(["bf16", "fp16"]).to_numpy()
    prec, path = deploy["precision"].to_numpy(dtype=object), deploy["precision_path"].to_numpy(dtype=object)
    quant_texts = np.full(n, "", dtype=object)  # written only where the note applies
    for i in np.flatnonzero(quantised):
        quant_texts[i] = (f"weak: {prec[i]} weights from physics only ({path[i]}; weight bytes per parameter and the "
                          f"compute path); no measured {prec[i]} runs in the training data")
    fit_texts = np.full(n, "", dtype=object)
    need, avail, margin = (deploy[c].to_numpy(float) for c in ("memory_needed_gb", "memory_available_gb",
                                                               "memory_margin_gb"))
    for i in np.flatnonzero(~out["fits_in_memory"].to_numpy()):
        fit_texts[i] = (f"does not fit in GPU memory: needs {need[i]:,.1f} GB, has {avail[i]:,.1f} GB (margin "
                        f"{margin[i]:+,.1f} GB; weights at {prec[i]}, KV cache of one sequence, activations and "
                        f"runtime, vLLM's gpu_memory_utilization)")
    server_label = ITL_DEFINITION_LABELS.get(model_set.itl_definitions.get("server", ""), "")
    e2e_server = (pool == "server") & (model_set.itl_definitions.get("server") == "server_e2e_per_token")
    hybrid = np.asarray(["mamba" in a or "ssm" in a or "hybrid" in a for a in arch_class], dtype=bool)
    saturated = (pool == "server") & np.isfinite(saturation) \
        & (rate * values["output_tokens"] > saturation)
    unknown_stack = ~np.asarray(stack_known, dtype=bool)
    other_stack = np.asarray([s is not None for s in stack_in], dtype=bool) & ~unknown_stack \
        & (out["serving_stack"].to_numpy(dtype=object) != model_set.default_stack)
    known = ", ".join(sorted((model_set.metadata.get("serving") or {}).get("calibrated_stacks") or []))
    plus_meta = (workload_part(model_set).metadata if workload_part(model_set) is not None else {}) or {}
    widen = {t: uncalibrated_stack_shift(plus_meta, t) for t in ("power", "itl")}
    widen_text = "" if widen["power"] == widen["itl"] == (0.0, 0.0) else (
        f"; its 80% intervals are widened by how far the calibrated stacks sit from it (power x"
        f"{np.exp(widen['power'][0]):.2f} to x{np.exp(widen['power'][1]):.2f}, ITL x{np.exp(widen['itl'][0]):.2f} "
        f"to x{np.exp(widen['itl'][1]):.2f})")
    stack_texts = np.asarray([f"serving stack {s!r} has no calibration; predictions are for "
                              f"{model_set.default_stack} (calibrated: {known or 'none'}){widen_text}"
                              if u else "" for s, u in zip(stack_in, unknown_stack, strict=True)], dtype=object)
    return _notes([
        (~out["gpu_seen"].to_numpy(), "extrapolation: GPU not in training data"),
        (range_notes != "", np.array(["out of range: " + t for t in range_notes], dtype=object)),
        (non_nvidia, "not supported: not an NVIDIA GPU (predicted from its specs as if it were one)"),
        (~out["llm_seen"].to_numpy(), "extrapolation: LLM not in training data"),
        (is_moe & any_paper, "MoE not supported by the XGB model (predicted as dense with all parameters)"),
        (is_moe & ~any_paper, "MoE: modelled by active parameters and the experts a batch touches"),
        (hybrid, "weak: Mamba / hybrid layers are modelled as attention layers (KV cache overestimated)"),
        (~supported, np.asarray(["not supported: " + r for r in deploy["precision_reason"]], dtype=object)),
        (quantised, quant_texts),
        (closed, "server at a fixed concurrency (closed loop): a steady running batch of max_concurrency requests "
                 "(fewer if memory holds fewer); throughput = batch / step time; TTFT waits for a free slot, the step "
                 "in flight and other prompts' prefill"),
        (multi & ~any_paper, "weak: tensor parallel from physics only (weights, KV cache and FLOPs split, two "
                             "all-reduces per layer timed by the vidur-fitted NCCL model); no multi-GPU runs on the "
                             "default stack"),
        (multi & any_paper, "num_gpus only scales energy for the XGB model (single-GPU data)"),
        (missing_inputs != "", np.array(["missing specs imputed with training means: " + s
                                         for s in missing_inputs], dtype=object)),
        (plus_missing != "", np.array(["incomplete specs for WattGPU+, the catalog lacks " + s + " (what needs "
                                       "them is not predicted)" for s in plus_missing], dtype=object)),
        (~out["fits_in_memory"].to_numpy(), fit_texts),
        (odd_batch & any_paper, "batch_size is not an input of the XGB model: its power and ITL are for vLLM's "
                                "default batch on 1,000 prompts"),
        (odd_rate & any_paper, "the XGB model's power and ITL are for the paper's server_low (0.017/s) or "
                               "server_high (0.33/s) workload; the request rate only scales throughput and energy "
                               "per token"),
        (odd_input & any_paper, "input_tokens is not an input of the XGB model: its predictions are for ~14-token "
                                "prompts"),
        (odd_input & ~any_paper, "weak: prompts much longer than the training runs' ~14 tokens (prefill and KV "
                                 "traffic from physics only)"),
        (odd_output & ~any_paper, "weak: outputs longer than the training runs' 256 tokens"),
        (saturated, "the request rate exceeds what this GPU can serve at its largest batch: throughput capped, "
                    "queues grow"),
        (other_stack, "calibrated to its serving stack from that stack's measured runs (a source's or your uploads)"),
        (unknown_stack, stack_texts),
        (e2e_server, f"server ITL = {server_label}"),
    ], n)


def predict_csv(input_path: Path | str, output_path: Path | str, gpus: pd.DataFrame, llms: pd.DataFrame,
                model_set: LoadedModelSet | str = DEFAULT_MODEL_SET) -> pd.DataFrame:
    """Read requests from a CSV, predict, and write the input plus the predictions as CSV."""
    path = Path(input_path)
    if not path.is_file():
        raise ValidationError([Issue(0, "", f"no such file: {path}")])
    requests = pd.read_csv(path, dtype={"llm": str, "gpu": str, "scenario": str}, keep_default_na=False,
                           na_values=[""])
    out = predict(requests, gpus, llms, model_set)

    write_csv(out, output_path)
    return out


# --------------------------------------------------------------------------------------------------------------
# Checking the derivations against the store
def derivation_check(frame: pd.DataFrame, power_w=None, itl_s=None) -> pd.DataFrame:
    """MdAPE (%) of derived throughput and energy per token against the measured values, per scenario.

    ``frame`` is :func:`~wattgpu_core.models.training_frame` (or any runs with scenario_detail). Inputs are the
    measured power and ITL unless ``power_w`` / ``itl_s`` (e.g. out-of-fold predictions) are given; the request
    rate and the run's mean output tokens are the measured ones. ``per="run"`` rows compare every run;
    ``per="configuration"`` rows compare with the pooled measurement of each (LLM, GPU, scenario) over its repeats
    (tokens / window summed), which averages out the differing Poisson arrival sequences of the repeats.
    """
    power = frame["power_w"].to_numpy(float) if power_w is None else np.asarray(power_w, float)
    itl = frame["itl_s"].to_numpy(float) if itl_s is None else np.asarray(itl_s, float)
    detail = frame["scenario_detail"].to_numpy(dtype=object)
    tput, energy = derive_throughput_energy(power, itl, detail, frame["request_rate_qps"].to_numpy(float),
                                            frame["output_tokens"].to_numpy(float))
    work = pd.DataFrame({"llm_id": frame["llm_id"].to_numpy(), "gpu_id": frame["gpu_id"].to_numpy(),
                         "scenario_detail": detail, "tput": tput, "energy": energy,
                         "tput_true": frame["throughput_tok_s"].to_numpy(float),
                         "energy_true": frame["energy_per_token_j"].to_numpy(float),
                         "tokens": frame["output_tokens_total"].to_numpy(float),
                         "duration": frame["duration_s"].to_numpy(float),
                         "gpu_energy": frame["gpu_energy_j"].to_numpy(float)})
    rows = []
    for scen, g in work.groupby("scenario_detail", sort=False):
        rows.append({"scenario": scen, "per": "run", "throughput_mdape_pct": mdape_pct(g["tput_true"], g["tput"]),
                     "energy_mdape_pct": mdape_pct(g["energy_true"], g["energy"]), "n": int(len(g))})
        cfg = g.groupby(["llm_id", "gpu_id"]).agg(tput=("tput", "mean"), energy=("energy", "mean"),
                                                  tokens=("tokens", "sum"), duration=("duration", "sum"),
                                                  gpu_energy=("gpu_energy", "sum"))
        rows.append({"scenario": scen, "per": "configuration",
                     "throughput_mdape_pct": mdape_pct(cfg["tokens"] / cfg["duration"], cfg["tput"]),
                     "energy_mdape_pct": mdape_pct(cfg["gpu_energy"] / cfg["tokens"], cfg["energy"]),
                     "n": int(len(cfg))})
    order = {s: i for i, s in enumerate(("offline", "server_low", "server_high"))}
    return pd.DataFrame(rows).sort_values(["scenario", "per"], key=lambda s: s.map(order) if s.name == "scenario"
                                          else s.map({"run": 0, "configuration": 1})).reset_index(drop=True)


def derivation_checks(frame: pd.DataFrame, result) -> pd.DataFrame:
    """:func:`derivation_check` with measured inputs and with each model's CV out-of-fold power and ITL."""
    parts = [derivation_check(frame).assign(inputs="measured power/ITL")]
    by_run = frame.set_index("run_id")
    for (model, target, strategy), power in result.predictions.items():
        if target != "power" or strategy != "CV":
            continue
        itl = result.predictions.get((model, "itl", "CV"))
        if itl is None:
            continue
        both = power[["run_id", "y_pred"]].merge(itl[["run_id", "y_pred"]], on="run_id", suffixes=("_p", "_i"))
        rows = by_run.loc[both["run_id"]].reset_index()
        parts.append(derivation_check(rows, both["y_pred_p"].to_numpy(), both["y_pred_i"].to_numpy())
                     .assign(inputs=f"{model} CV predictions"))
    return pd.concat(parts, ignore_index=True)


def energy_choice(frame: pd.DataFrame, result) -> pd.DataFrame:
    """Energy per token derived from each model's out-of-fold power and ITL, scored against the measured value.

    One row per (model, strategy, scenario): MdAPE, GPU / LLM tau, top-1 / top-3 accuracy of picking the GPU with
    the lowest measured energy per token for each LLM and scenario, and the mean extra energy (%) of the GPU the
    predictions pick. ``LS-TDP+Roofline`` is the physical baseline (load-scaled TDP with the roofline ITL).
    """
    by_run = frame.set_index("run_id")
    sources = []
    for (model, target, strategy), power in result.predictions.items():
        if target == "power" and strategy != "-" and (model, "itl", strategy) in result.predictions:
            sources.append((model, strategy, power, result.predictions[(model, "itl", strategy)]))
    rows = []

    def score(model, strategy, runs, power_w, itl_s, counted):
        detail = runs["scenario_detail"].to_numpy(dtype=object)
        _, energy = derive_throughput_energy(power_w, itl_s, detail, runs["request_rate_qps"].to_numpy(float),
                                             runs["output_tokens"].to_numpy(float))
        work = pd.DataFrame({"llm_id": runs["llm_id"].to_numpy(), "gpu_id": runs["gpu_id"].to_numpy(),
                             "scenario_detail": detail, "scenario": pd.Series(detail).map(SCENARIO_POOL).to_numpy(),
                             "y_true": runs["energy_per_token_j"].to_numpy(float), "y_pred": energy})
        work = work[np.asarray(counted, dtype=bool)]
        for scenario, part in work.groupby("scenario", sort=True):
            averaged = averaged_cells(part)
            m = metrics(part, averaged)
            rows.append({"model": model, "strategy": strategy, "scenario": scenario,
                         "mdape_pct": m["mdape_pct"], "gpu_tau": m["gpu_tau"], "llm_tau": m["llm_tau"],
                         "top1_pct": m["top1_pct"], "top3_pct": m["top3_pct"],
                         "extra_energy_pct": gpu_choice_regret_pct(part, averaged), "n_rows": m["n_rows"]})

    for model, strategy, power, itl in sources:
        both = power[["run_id", "y_pred", "counted"]].merge(itl[["run_id", "y_pred"]], on="run_id",
                                                            suffixes=("_p", "_i"))
        runs = by_run.loc[both["run_id"]].reset_index()
        score(model, strategy, runs, both["y_pred_p"].to_numpy(), both["y_pred_i"].to_numpy(),
              both["counted"].to_numpy())
    if ("LS-TDP", "power", "-") in result.predictions:
        base = result.predictions[("LS-TDP", "power", "-")]
        runs = by_run.loc[base["run_id"]].reset_index()
        detail = runs["scenario_detail"]
        power = runs["tdp_w"].to_numpy(float) * detail.map(LOAD_SCALE).to_numpy(float)
        itl = runs["bandwidth_latency_s"].to_numpy(float) / detail.map(ROOFLINE_BATCH).to_numpy(float)
        score("LS-TDP+Roofline", "-", runs, power, itl, base["counted"].to_numpy())
    return pd.DataFrame(rows)
