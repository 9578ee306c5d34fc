"""What the dashboard shows, as plain functions: GPU comparisons, filters, Pareto frontier, measured points, labels,
number formats and the URL state of a page.

Pages call these functions and only place their results; this module never imports streamlit. It is also the one
adapter between the pages and the prediction engine (``planning``, ``evaluation``): if the engine's API changes,
this is the only file to follow it.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from .catalog import GPU_REQUIRED_FIELDS
from .deploy import order_options
from .errors import WattGPUError
from .physics import PRECISIONS

# ----------------------------------------------------------------------------------------------------------------
# Labels and number formats
LABELS: dict[str, str] = {
    "gpu_name": "GPU",
    "llm_name": "LLM",
    "energy_per_token_j": "Energy per token (J)",
    "energy_per_token_mj": "Energy per token (mJ)",
    "itl_ms": "ITL (ms)",
    "itl_s": "ITL (s)",
    "power_w": "Power (W)",
    "throughput_tok_s": "Throughput (tokens/s)",
    "memory_size_gb": "Memory (GB)",
    "memory_bandwidth_gb_s": "Memory bandwidth (GB/s)",
    "tdp_w": "TDP (W)",
    "fp16_tensor_dense_tflops": "FP16 TFLOPS (dense)",
    "generation": "Generation",
    "form_factor_class": "Form factor",
    "release_year": "Released",
    "architecture": "Architecture",
    "user_defined": "User-defined",
    "rank": "Rank",
    "on_frontier": "On Pareto frontier",
    "reason": "Why not ranked",
    "notes": "Notes",
    "gpu_seen": "GPU in training data",
    "llm_seen": "LLM in training data",
    "total_params_b": "Parameters (B)",
    "active_params_b": "Active parameters (B)",
    "family": "Family",
    "model_type": "Architecture type",
    "num_layers": "Layers",
    "hidden_size": "Hidden size",
    "num_attention_heads": "Attention heads",
    "num_key_value_heads": "KV heads",
    "is_moe": "Mixture of experts",
    "vendor": "Vendor",
    "segment": "Segment",
    "memory_type": "Memory type",
    "scenario": "Scenario",
    "batch_size": "Batch size",
    "request_rate_qps": "Request rate (req/s)",
    "input_tokens": "Input tokens",
    "output_tokens": "Output tokens",
    "source_id": "Source",
    "framework": "Framework",
    "n_runs": "Runs",
    "weights_gb": "Weights (GB)",
    "serving_stack": "Serving stack",
    "out_of_range": "Outside training range",
    "max_throughput_tok_s": "Capacity (tokens/s)",
    "saturated": "Saturated",
}
_INTERVAL_SUFFIXES = {"_lo": " low", "_hi": " high"}


def label(column: str) -> str:
    """Human label with unit for a column name (``power_w_lo`` -> 'Power (W) low')."""
    if column in LABELS:
        return LABELS[column]
    for suffix, words in _INTERVAL_SUFFIXES.items():
        if column.endswith(suffix) and column[: -len(suffix)] in LABELS:
            base = LABELS[column[: -len(suffix)]]
            return base.replace(" (", words + " (", 1) if " (" in base else base + words
    return column.replace("_", " ").capitalize()


def sig(value: float, digits: int = 2) -> float:
    """Round to ``digits`` significant figures (NaN passes through)."""
    if value is None or not np.isfinite(value) or value == 0:
        return value
    return round(float(value), digits - 1 - int(math.floor(math.log10(abs(value)))))


ITL_HELP = ("Offline, ITL is the batch's time per generated token (1 / throughput), as the WattGPU paper defines "
            "it; in server mode it is the time between two tokens of one request.")


def count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 GPU', '2 GPUs' (``plural`` for irregular nouns)."""
    return f"{n:,} {noun if n == 1 else (plural or noun + 's')}"


def latency_title(scenario: str) -> str:
    """What the latency figure means for a workload: offline it is the batch's time per output token."""
    return "ITL (batch, 1/throughput)" if scenario == "offline" else "ITL (≈ E2E / tokens)"


def latency_axis_title(scenario: str) -> str:
    return ("ITL (ms), batch: 1 / throughput" if scenario == "offline"
            else "ITL (ms), ≈ E2E latency / output tokens")


def fmt_power(w: float) -> str:
    return f"{w:,.0f} W"


def fmt_itl(s: float) -> str:
    ms = s * 1000
    return f"{sig(ms, 2):g} ms"


def fmt_energy(j: float) -> str:
    return f"{sig(j, 3):g} J" if j >= 0.01 else f"{sig(j * 1000, 3):g} mJ"


def fmt_throughput(t: float) -> str:
    return f"{sig(t, 3):,.0f} tok/s" if t >= 100 else f"{sig(t, 3):g} tok/s"


# ----------------------------------------------------------------------------------------------------------------
# Workloads and page state (kept in the URL)
SCENARIO_CHOICES = {"offline": "Offline batch", "server": "Online server"}
PRECISION_CHOICES = PRECISIONS
TP_CHOICES = (1, 2, 4, 8)
MODEL_CHOICES = {"default": "WattGPU+ (recommended)", "paper": "Paper's XGBoost (reference)"}
MODEL_HELP = ("WattGPU+ is a calibrated physical model (roofline time per decode step, power between serving-idle "
              "and TDP) that takes batch size, request rate and token counts as inputs and reports 80% intervals; "
              "it measures better than the paper's XGBoost on unseen GPUs (see Cross-validation). The paper's "
              "models are kept as the reference.")


@dataclass(frozen=True)
class Workload:
    scenario: str = "offline"
    batch_size: int = 256
    request_rate_qps: float = 0.33
    input_tokens: int = 14
    output_tokens: int = 220
    num_gpus: int = 1  # GPUs per model replica (tensor parallel)
    precision: str = ""  # weight precision; "" = the LLM's native precision
    serving_stack: str | None = None  # a calibrated stack (None: the model's default stack)

    def as_request(self) -> dict:
        out = {"scenario": self.scenario, "input_tokens": float(self.input_tokens),
               "output_tokens": float(self.output_tokens), "num_gpus": float(self.num_gpus)}
        if self.precision:
            out["precision"] = self.precision
        if self.serving_stack:
            out["serving_stack"] = self.serving_stack
        if self.scenario == "offline":
            out["batch_size"] = float(self.batch_size)
        else:
            out["request_rate_qps"] = float(self.request_rate_qps)
        return out

    def describe(self) -> str:
        load = (f"offline batch of {self.batch_size}" if self.scenario == "offline"
                else f"server at {self.request_rate_qps:g} requests/s")
        replica = f", {self.num_gpus} GPUs per replica" if self.num_gpus > 1 else ""
        weights = f", {self.precision} weights" if self.precision else ""
        return f"{load}, {self.input_tokens} input and {self.output_tokens} output tokens per request{replica}{weights}"


def query_readers(query: Mapping, default):
    """``(get, number)`` for parsing URL parameters: ``get(key)`` is the last value given for ``key`` (or None);
    ``number(key, kind, low, high)`` converts it with ``kind`` and falls back to ``default``'s field when it is
    malformed or outside [low, high]."""

    def get(key):
        v = query.get(key)
        if isinstance(v, list):
            v = v[-1] if v else None
        return v

    def number(key, kind, low, high):
        try:
            v = kind(float(get(key)))
        except (TypeError, ValueError, OverflowError):  # e.g. "abc", "nan" or "1e999" in a shared link
            return getattr(default, key)
        return v if low <= v <= high else getattr(default, key)

    return get, number


@dataclass(frozen=True)
class PageState:
    """Everything a comparison needs, as typed values; round-trips through URL query parameters."""

    llm: str = "meta-llama/Llama-3.1-8B-Instruct"
    gpu: str = "h100-nvl-94gb"
    scenario: str = "offline"
    batch: int = 256
    qps: float = 0.33
    inp: int = 14
    out: int = 220
    mem: float = 0.0  # minimum memory, GB
    gen: tuple[str, ...] = ()
    form: tuple[str, ...] = ()
    tdp: tuple[float, float] = (0.0, 0.0)  # (0, 0) = any
    model: str = "default"  # model set: "default" (WattGPU+ where it measures better) or "paper"
    tp: int = 1  # GPUs per replica
    prec: str = ""  # weight precision ("" = native)
    pick: tuple[str, ...] = ()  # side by side: deployments "gpu_id*gpus per replica"

    @property
    def workload(self) -> Workload:
        return Workload(self.scenario, self.batch, self.qps, self.inp, self.out, self.tp, self.prec)

    @classmethod
    def from_query(cls, query: dict) -> PageState:
        """Parse URL parameters; anything malformed falls back to the default for that field."""
        default = cls()
        values = {}
        get, number = query_readers(query, default)

        for key in ("llm", "gpu"):
            if get(key):
                values[key] = str(get(key))
        if get("scenario") in SCENARIO_CHOICES:
            values["scenario"] = get("scenario")
        if get("model") in MODEL_CHOICES:
            values["model"] = get("model")
        values["batch"] = number("batch", int, 1, 4096)
        values["qps"] = number("qps", float, 0.001, 1000)
        values["inp"] = number("inp", int, 1, 131072)
        values["out"] = number("out", int, 1, 131072)
        values["mem"] = number("mem", float, 0, 4096)
        values["tp"] = number("tp", int, 1, 8)
        if get("prec") in PRECISION_CHOICES:
            values["prec"] = get("prec")
        for key in ("gen", "form", "pick"):
            raw = get(key)
            values[key] = tuple(x for x in str(raw).split("|") if x) if raw else ()
        raw = get("tdp")
        try:
            lo, hi = (float(x) for x in str(raw).split("-", 1))
            values["tdp"] = (lo, hi) if 0 <= lo <= hi < math.inf else default.tdp
        except (TypeError, ValueError):
            values["tdp"] = default.tdp
        return cls(**values)

    def to_query(self) -> dict[str, str]:
        """URL parameters for this state (defaults left out, so links stay short)."""
        default = PageState()
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value == getattr(default, f.name):
                continue
            if f.name in ("gen", "form", "pick"):
                out[f.name] = "|".join(value)
            elif f.name == "tdp":
                out[f.name] = f"{value[0]:g}-{value[1]:g}"
            elif isinstance(value, float):
                out[f.name] = f"{value:g}"
            else:
                out[f.name] = str(value)
        return out

    def replace(self, **changes) -> PageState:
        data = asdict(self)
        data.update(changes)
        return PageState(**data)


# ----------------------------------------------------------------------------------------------------------------
# Catalog helpers
def models_version(store) -> str:
    """A key that changes with the data and with the model files the app predicts with (retraining)."""
    folder = active_models_dir(store)
    meta = folder / "plus.meta.json" if (folder / "plus.meta.json").is_file() else folder / "paper.meta.json"
    stamp = meta.stat().st_mtime_ns if meta.is_file() else 0
    return f"{data_version(store)}|{folder.name}|{stamp}"


def data_version(store) -> str:
    """A cheap key that changes whenever the store's contents change, in this process or another one (every write
    transaction bumps it; reading it is a file ``stat`` unless the file changed)."""
    return store.data_version()


def data_summary(store) -> dict:
    """Counts for the home page: runs, GPUs and LLMs (in the catalog and with measurements), sources."""
    stats = store.stats()
    sources = store.sources()
    per_source = stats["runs_per_source"]
    table = pd.DataFrame({
        "Source": sources["name"],
        "Runs": sources["source_id"].map(per_source).fillna(0).astype(int),
        "License": sources["license"],
    }).sort_values("Runs", ascending=False).reset_index(drop=True)
    return {**stats, "source_table": table}


def llm_label(row) -> str:
    """'Llama-3.1-8B-Instruct (meta-llama, 8.0B)'; user-defined LLMs are flagged."""
    params = row.get("total_params_b")
    size = f", {sig(params, 2):g}B" if params is not None and np.isfinite(params) else ""
    owner = str(row["llm_id"]).split("/", 1)[0]
    flag = " [user-defined]" if row.get("user_defined") else ""
    moe = " MoE" if row.get("is_moe") else ""
    return f"{row['name']} ({owner}{size}{moe}){flag}"


def llm_choices(llms: pd.DataFrame) -> dict[str, str]:
    """{llm_id: label} for the LLMs the models can use (architecture known), largest catalog first by name."""
    usable = llms[llms["metadata_complete"].astype(bool)]
    usable = usable.sort_values(["user_defined", "name"], key=lambda s: s.str.lower() if s.dtype == object else s)
    return {r["llm_id"]: llm_label(r) for r in usable.to_dict("records")}


def gpu_label(row) -> str:
    flag = " [user-defined]" if row.get("user_defined") else ""
    return f"{row['name']}{flag}"


def gpu_choices(gpus: pd.DataFrame) -> dict[str, str]:
    usable, _ = split_gpus_by_specs(gpus)
    return {r["gpu_id"]: gpu_label(r) for r in usable.sort_values("name").to_dict("records")}


def split_gpus_by_specs(gpus: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(NVIDIA GPUs with every spec the models need, the NVIDIA GPUs that lack some) - other vendors are left out:
    the models were trained on NVIDIA GPUs only."""
    nvidia = gpus[gpus["vendor"].fillna("NVIDIA").eq("NVIDIA") | gpus["user_defined"].astype(bool)]
    complete = nvidia[list(GPU_REQUIRED_FIELDS)].notna().all(axis=1)
    return nvidia[complete].reset_index(drop=True), nvidia[~complete].reset_index(drop=True)


@dataclass(frozen=True)
class FilterOptions:
    generations: tuple[str, ...]
    form_factors: tuple[str, ...]
    max_memory_gb: float
    tdp_range: tuple[float, float]


def filter_options(gpus: pd.DataFrame) -> FilterOptions:
    usable, _ = split_gpus_by_specs(gpus)
    return FilterOptions(
        generations=tuple(sorted(usable["generation"].fillna("Other").unique())),
        form_factors=tuple(sorted(usable["form_factor_class"].fillna("Other").unique())),
        max_memory_gb=float(usable["memory_size_gb"].max()),
        tdp_range=(float(usable["tdp_w"].min()), float(usable["tdp_w"].max())),
    )


def active_filters(state: PageState, options: FilterOptions) -> list[str]:
    """The GPU filters of ``state`` that narrow the list, in words ('memory ≥ 40 GB', 'Hopper or Blackwell')."""
    out = []
    if state.mem > 0:
        out.append(f"memory ≥ {state.mem:g} GB")
    gen = [g for g in state.gen if g in options.generations]
    if gen:
        out.append(" or ".join(gen))
    form = [f for f in state.form if f in options.form_factors]
    if form:
        out.append(" or ".join(form))
    if state.tdp != (0.0, 0.0) and tuple(state.tdp) != tuple(options.tdp_range):
        out.append(f"TDP {state.tdp[0]:,.0f}–{state.tdp[1]:,.0f} W")
    return out


def apply_filters(gpus: pd.DataFrame, state: PageState) -> pd.DataFrame:
    keep = gpus["memory_size_gb"].fillna(0) >= state.mem
    if state.gen:
        keep &= gpus["generation"].fillna("Other").isin(state.gen)
    if state.form:
        keep &= gpus["form_factor_class"].fillna("Other").isin(state.form)
    if state.tdp != (0.0, 0.0):
        keep &= gpus["tdp_w"].between(*state.tdp)
    return gpus[keep].reset_index(drop=True)


# ----------------------------------------------------------------------------------------------------------------
# Predictions (the adapter to the engine)
def load_model_set(name: str = "paper", models_dir: Path | None = None):
    """The engine's trained models (from ``models_dir``, default the committed ``models/``); raises
    ModelNotTrainedError (a WattGPUError) telling the user what to run."""
    from . import planning
    from .paths import MODELS_DIR

    return planning.load_model_set(name, Path(models_dir) if models_dir else MODELS_DIR)


def predict(requests: pd.DataFrame, gpus: pd.DataFrame, llms: pd.DataFrame, model_set) -> pd.DataFrame:
    """Predictions for request rows (llm, gpu, scenario, batch_size / request_rate_qps, tokens)."""
    from . import planning

    return planning.predict(requests, gpus, llms, model_set)


def pareto_mask(frame: pd.DataFrame, x: str = "itl_s", y: str = "energy_per_token_j") -> np.ndarray:
    """True for rows no other row beats on both ``x`` and ``y`` (both minimised)."""
    xs, ys = frame[x].to_numpy(float), frame[y].to_numpy(float)
    keep = np.zeros(len(frame), dtype=bool)
    best_y = np.inf
    for i in np.lexsort((ys, xs)):
        if not (np.isfinite(xs[i]) and np.isfinite(ys[i])):
            continue
        if ys[i] < best_y:
            keep[i] = True
            best_y = ys[i]
    return keep


@dataclass(frozen=True)
class Comparison:
    """The result of comparing GPUs for one LLM and workload."""

    llm_id: str
    workload: Workload
    ranked: pd.DataFrame  # GPUs that can hold the model, best energy per token first
    cannot_hold: pd.DataFrame  # GPUs whose memory is too small
    lacking_specs: pd.DataFrame  # NVIDIA GPUs missing a spec the models need
    measured: pd.DataFrame  # measured runs of this LLM and a similar workload, per GPU
    notes: tuple[str, ...] = ()  # caveats that hold for every ranked GPU (per-GPU ones stay in ranked["notes"])

    @property
    def best(self) -> pd.Series | None:
        """The top-ranked GPU, never a saturated one (None when every GPU is saturated)."""
        if not len(self.ranked) or bool(self.ranked.iloc[0].get("saturated", False)):
            return None
        return self.ranked.iloc[0]


def compare_gpus(llm_id: str, workload: Workload, gpus: pd.DataFrame, llms: pd.DataFrame, model_set,
                 runs: pd.DataFrame | None = None) -> Comparison:
    """Predict every candidate GPU for ``llm_id`` under ``workload`` and rank those that can hold the model."""
    if llm_id not in set(llms["llm_id"]):
        raise WattGPUError(f"unknown LLM {llm_id!r}; pick one from the list or add its config.json")
    usable, lacking = split_gpus_by_specs(gpus)
    names = gpus.set_index("gpu_id")["name"]
    if usable.empty:
        empty = pd.DataFrame(columns=["gpu_id", "gpu_name"])
        return Comparison(llm_id, workload, empty, empty, _lacking_table(lacking), empty)
    requests = pd.DataFrame([{"llm": llm_id, "gpu": g, **workload.as_request()} for g in usable["gpu_id"]])
    pred = predict(requests, usable, llms, model_set)
    pred = pred.merge(usable[["gpu_id", "name", "memory_size_gb", "tdp_w", "generation", "form_factor_class",
                              "user_defined"]].rename(columns={"name": "gpu_name"}), on="gpu_id", how="left")
    pred["itl_ms"] = pred["itl_s"] * 1000
    common, pred["notes"] = split_notes(pred["notes"] if "notes" in pred else pd.Series("", index=pred.index))
    fits = pred["fits_in_memory"].fillna(True).astype(bool) if "fits_in_memory" in pred else pd.Series(True, pred.index)
    if "precision_supported" in pred:
        fits &= pred["precision_supported"].fillna(True).astype(bool)
    # Server mode: a GPU that cannot carry the load is marked and ranked after every GPU that can (deploy's rule).
    sat = pred["saturated"] if "saturated" in pred else pd.Series(False, index=pred.index)
    pred["saturated"] = sat.fillna(False).astype(bool) & (workload.scenario == "server")
    pred["serves_load"] = ~pred["saturated"]
    ranked = order_options(pred[fits], "energy_per_token_j", ok="serves_load")
    ranked.insert(0, "rank", np.arange(1, len(ranked) + 1))
    ranked["on_frontier"] = pareto_mask(ranked)
    cannot = pred[~fits].copy()
    weights = _weights_gb(llms.set_index("llm_id").loc[llm_id])
    if "memory_needed_gb" in cannot:
        cannot["reason"] = [f"needs {n:.1f} GB, has {a:.1f} GB (margin {a - n:.1f} GB)" if np.isfinite(n) and
                            np.isfinite(a) else "cannot run this precision or hold the model"
                            for n, a in zip(cannot["memory_needed_gb"], cannot["memory_available_gb"], strict=True)]
    else:
        cannot["reason"] = [f"needs about {weights:.0f} GB for 16-bit weights alone; has {m:.0f} GB"
                            for m in cannot["memory_size_gb"]]
    cannot = cannot.sort_values("memory_size_gb", ascending=False)[["gpu_id", "gpu_name", "memory_size_gb", "reason"]]
    measured = measured_points(runs, llm_id, workload, names) if runs is not None else _empty_measured()
    measured = measured[measured["gpu_id"].isin(usable["gpu_id"])].reset_index(drop=True)
    return Comparison(llm_id, workload, ranked, cannot.reset_index(drop=True), _lacking_table(lacking), measured,
                      common)


def split_notes(notes: pd.Series) -> tuple[tuple[str, ...], pd.Series]:
    """(notes every row shares, the remaining notes per row); notes are '; '-separated strings."""
    parts = notes.fillna("").astype(str).map(lambda t: [x.strip() for x in t.split("; ") if x.strip()])
    if parts.empty:
        return (), notes
    common = set(parts.iloc[0])
    for p in parts.iloc[1:]:
        common &= set(p)
    shared = tuple(x for x in parts.iloc[0] if x in common)
    return shared, parts.map(lambda p: "; ".join(x for x in p if x not in common))


def _weights_gb(llm: pd.Series) -> float:
    return 2.0 * float(llm["total_params_b"])


def _lacking_table(lacking: pd.DataFrame) -> pd.DataFrame:
    if lacking.empty:
        return pd.DataFrame(columns=["gpu_id", "gpu_name", "reason"])
    missing = lacking[list(GPU_REQUIRED_FIELDS)].isna()
    reason = missing.apply(lambda r: "catalog lacks " + ", ".join(label(c) for c, m in r.items() if m), axis=1)
    return pd.DataFrame({"gpu_id": lacking["gpu_id"], "gpu_name": lacking["name"], "reason": reason})


def _empty_measured() -> pd.DataFrame:
    return pd.DataFrame(columns=["gpu_id", "gpu_name", "itl_s", "energy_per_token_j", "power_w", "n_runs",
                                 "source_id"])


def measured_points(runs: pd.DataFrame, llm_id: str, workload: Workload, gpu_names: pd.Series) -> pd.DataFrame:
    """Mean measured ITL, energy per token and power per GPU for runs of ``llm_id`` close to ``workload``.

    Offline runs match an offline workload; server runs match when their request rate is within a factor of 3.
    Only single-GPU runs with both ITL and energy per token count.
    """
    if runs is None or runs.empty:
        return _empty_measured()
    r = runs[(runs["llm_id"] == llm_id) & (runs["scenario"] == workload.scenario)]
    r = r[r["num_gpus"].fillna(1).eq(1) & r["itl_s"].notna() & r["energy_per_token_j"].notna()]
    if workload.scenario == "server":
        qps = r["request_rate_qps"]
        r = r[qps.notna() & (qps / workload.request_rate_qps).between(1 / 3, 3)]
    if r.empty:
        return _empty_measured()
    out = (r.groupby(["gpu_id", "source_id"])  # one point per GPU and source: sources are not averaged together
           .agg(itl_s=("itl_s", "mean"), energy_per_token_j=("energy_per_token_j", "mean"),
                power_w=("power_w", "mean"), n_runs=("run_id", "count"))
           .reset_index())
    out = out[["gpu_id", "itl_s", "energy_per_token_j", "power_w", "n_runs", "source_id"]]
    out.insert(1, "gpu_name", out["gpu_id"].map(gpu_names).fillna(out["gpu_id"]))
    return out


# ----------------------------------------------------------------------------------------------------------------
# Tables for display and download
RANKED_COLUMNS = ("rank", "gpu_name", "saturated", "energy_per_token_j", "itl_ms", "power_w", "throughput_tok_s",
                  "max_throughput_tok_s", "memory_size_gb", "tdp_w", "on_frontier", "gpu_seen", "user_defined",
                  "notes")
_OPTIONAL_EXTRAS = ("serving_stack", "out_of_range")
_DIGITS = {"energy_per_token_j": 3, "itl_ms": 2, "throughput_tok_s": 3, "max_throughput_tok_s": 3}
_DECIMALS = {"power_w": 0, "memory_size_gb": 0, "tdp_w": 0}


def number_formats(table: pd.DataFrame) -> dict[str, str]:
    """Display formats (Streamlit NumberColumn presets / printf) for the labelled columns of ``display_table``."""
    formats = {}
    for column in table.columns:
        if column.startswith(("Throughput", "Power", "Memory (GB)", "TDP")):
            formats[column] = "localized"
    return formats


def display_table(ranked: pd.DataFrame) -> pd.DataFrame:
    """The ranked comparison with readable column names and rounded numbers; where the model set gives 80%
    intervals, each metric is followed by one text column "low – high" (keeps the table narrow)."""
    ranked = ranked.assign(itl_ms=ranked["itl_s"] * 1000) if "itl_s" in ranked else ranked
    cols = [c for c in RANKED_COLUMNS if c in ranked.columns]
    cols += [c for c in _OPTIONAL_EXTRAS if c in ranked.columns]
    out = ranked[cols].copy()
    for c in out.columns:
        if c in _DIGITS:
            out[c] = out[c].map(lambda v, d=_DIGITS[c]: sig(v, d))
        elif c in _DECIMALS:
            out[c] = out[c].round(_DECIMALS[c])
    out = out.rename(columns={c: label(c) for c in out.columns})
    for base, shown, scale in (("energy_per_token_j", "energy_per_token_j", 1.0), ("itl_s", "itl_ms", 1000.0),
                               ("power_w", "power_w", 1.0), ("throughput_tok_s", "throughput_tok_s", 1.0)):
        lo, hi = f"{base}_lo", f"{base}_hi"
        if lo not in ranked or hi not in ranked or label(shown) not in out:
            continue
        digits = _DIGITS.get(shown, 3)
        text = [f"{_short_num(a * scale, digits)} – {_short_num(b * scale, digits)}"
                if np.isfinite(a) and np.isfinite(b) else "–" for a, b in zip(ranked[lo], ranked[hi], strict=True)]
        out.insert(out.columns.get_loc(label(shown)) + 1, f"{label(shown).split(' (')[0]} 80% interval", text)
    return out


def _short_num(value: float, digits: int) -> str:
    v = sig(float(value), digits)
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:g}"


def download_csv(comparison: Comparison) -> bytes:
    """The comparison as CSV: ranked GPUs then those that cannot hold the model, units in column names."""
    ranked = comparison.ranked.drop(columns=["itl_ms"], errors="ignore").copy()
    ranked = ranked.drop(columns=["llm", "gpu"], errors="ignore")
    if "llm_id" not in ranked:
        ranked.insert(0, "llm_id", comparison.llm_id)
    for k, v in comparison.workload.as_request().items():
        ranked[k] = v
    others = comparison.cannot_hold.assign(llm_id=comparison.llm_id)
    from .safety import csv_bytes

    return csv_bytes(pd.concat([ranked, others], ignore_index=True))


def display_other(frame: pd.DataFrame) -> pd.DataFrame:
    """GPUs left out of a ranking, with the reason, for display."""
    cols = [c for c in ("gpu_name", "memory_size_gb", "reason") if c in frame.columns]
    out = frame[cols].copy()
    if "memory_size_gb" in out:
        out["memory_size_gb"] = out["memory_size_gb"].round(0)
    return out.rename(columns={c: label(c) for c in cols})


def csv_name(comparison: Comparison) -> str:
    w = comparison.workload
    load = f"offline-b{w.batch_size}" if w.scenario == "offline" else f"server-{w.request_rate_qps:g}qps"
    return f"wattgpu-{comparison.llm_id.replace('/', '_')}-{load}-in{w.input_tokens}-out{w.output_tokens}.csv"


def pareto_caption(comparison: Comparison) -> str:
    """One sentence under the Pareto plot: what the frontier and the measured points are."""
    front = comparison.ranked[comparison.ranked["on_frontier"]]
    text = (f"{count(len(comparison.ranked), 'GPU')} predicted for {comparison.workload.describe()}. The red line "
            f"joins the {count(len(front), 'GPU')} no other GPU beats on both energy per token and ITL (the Pareto "
            "frontier).")
    m = comparison.measured
    if len(m):
        from .figures import SOURCE_NAMES

        sources = sorted({SOURCE_NAMES.get(s, s) for s in m["source_id"]})
        n_gpus = m["gpu_id"].nunique()
        text += (f" Open symbols, labelled with GPU and source, are measurements in the store for this LLM and a "
                 f"similar workload ({int(m['n_runs'].sum())} runs on {n_gpus} GPU{'s' if n_gpus != 1 else ''}; "
                 f"{'source' if len(sources) == 1 else 'sources'}: {', '.join(sources)}).")
    else:
        text += " The store has no measurement of this LLM under a similar workload to show beside the predictions."
    return text


# ----------------------------------------------------------------------------------------------------------------
# Models: loading, one prediction, accuracy, explanations (adapters to ``models``, ``planning``, ``explain``)
def fitted_models(model_set) -> Mapping:
    """{target: fitted model} of a loaded model set, whatever shape the engine returns it in.

    SHAP explanations need tree models with the paper's preprocessing: for WattGPU+ (``kind`` "plus" or
    "default") these are the paper's XGB models.
    """
    if getattr(model_set, "kind", "paper") in ("plus", "default"):
        from . import planning

        paper = getattr(model_set, "parts", {}).get("paper") or planning.load_model_set("paper")
        return paper.models
    for attr in ("models", "fitted"):
        value = getattr(model_set, attr, None)
        if isinstance(value, Mapping):
            return value
    if isinstance(model_set, tuple):
        return model_set[0]
    if isinstance(model_set, dict):
        return model_set
    raise WattGPUError(f"cannot find the fitted models in {type(model_set).__name__}")


def model_metadata(model_set) -> Mapping:
    for attr in ("metadata", "meta"):
        value = getattr(model_set, attr, None)
        if isinstance(value, Mapping):
            return value
    if isinstance(model_set, tuple) and len(model_set) > 1 and isinstance(model_set[1], dict):
        return model_set[1]
    return {}


@dataclass(frozen=True)
class SinglePrediction:
    gpu_name: str
    fits: bool
    reason: str
    power_w: float
    itl_s: float
    energy_per_token_j: float
    throughput_tok_s: float
    notes: str
    intervals: Mapping = field(default_factory=dict)  # {column: (low, high)} where the model set gives intervals
    serving_stack: str = ""
    out_of_range: bool = False

    def interval_text(self, column: str) -> str:
        """'80% interval: a-b' in the metric's own format, or '' when the model set gives none."""
        lo, hi = self.intervals.get(column, (np.nan, np.nan))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            return ""
        fmt = INTERVAL_FORMATS[column]
        return f"80% interval {fmt(lo)} – {fmt(hi)}"


def predict_one(llm_id: str, gpu_id: str, workload: Workload, gpus: pd.DataFrame, llms: pd.DataFrame,
                model_set) -> SinglePrediction:
    """One prediction for the home page."""
    gpu = gpus[gpus["gpu_id"] == gpu_id]
    if gpu.empty:
        raise WattGPUError(f"unknown GPU {gpu_id!r}; pick one from the list")
    requests = pd.DataFrame([{"llm": llm_id, "gpu": gpu_id, **workload.as_request()}])
    row = predict(requests, gpu, llms, model_set).iloc[0]
    fits = bool(row.get("fits_in_memory", True))
    weights = _weights_gb(llms.set_index("llm_id").loc[llm_id])
    reason = "" if fits else (f"it needs about {weights:.0f} GB for 16-bit weights alone and the GPU has "
                              f"{float(gpu['memory_size_gb'].iloc[0]):.0f} GB")
    notes = str(row.get("notes") or "")
    intervals = {c: (float(row[f"{c}_lo"]), float(row[f"{c}_hi"])) for c in INTERVAL_FORMATS
                 if f"{c}_lo" in row and f"{c}_hi" in row}
    stack = row.get("serving_stack")
    return SinglePrediction(str(gpu["name"].iloc[0]), fits, reason, float(row["power_w"]), float(row["itl_s"]),
                            float(row["energy_per_token_j"]), float(row["throughput_tok_s"]),
                            "" if notes in ("nan", "None") else notes, intervals,
                            str(stack) if isinstance(stack, str) else "", bool(row.get("out_of_range", False)))


INTERVAL_FORMATS = {"power_w": lambda v: fmt_power(v), "itl_s": lambda v: fmt_itl(v),
                    "energy_per_token_j": lambda v: fmt_energy(v), "throughput_tok_s": lambda v: fmt_throughput(v)}


def best_interval_text(row: Mapping, column: str) -> str:
    """'80% interval a – b' for one ranked row, or '' without intervals."""
    lo, hi = row.get(f"{column}_lo", np.nan), row.get(f"{column}_hi", np.nan)
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return ""
    return f"80% interval {INTERVAL_FORMATS[column](lo)} – {INTERVAL_FORMATS[column](hi)}"


def stack_caption(serving_stack: str, model_label: str) -> str:
    """Which serving stack and model the numbers refer to (every prediction says it)."""
    stack = serving_stack or "vLLM 0.14"
    if stack != "vLLM 0.14":
        return (f"Predicted by {model_label} for {stack}: the Watt Counts model (vLLM 0.14) with {stack}'s "
                "calibration, learnt from that stack's measured runs; one GPU per model replica unless stated.")
    return (f"Predicted by {model_label} for {stack}, one GPU per model replica unless stated, 16-bit weights, "
            "as measured in Watt Counts.")


TARGET_TITLES = {"power": "Mean GPU power", "itl": "ITL (inter-token latency)"}
STRATEGY_LABELS = {"CV": "CV (unseen LLM-GPU pairs)", "LOGO": "LOGO (unseen GPU)", "LOLO": "LOLO (unseen LLM)",
                   "-": "no training (baseline)"}
SCENARIO_LABELS = {"offline": "Offline", "server": "Server"}


@dataclass(frozen=True)
class Accuracy:
    sentence: str
    table: pd.DataFrame


def headline_accuracy(model_set) -> Accuracy:
    """The models' cross-validated accuracy as stored with them (MdAPE per target, scenario and split)."""
    records = model_metadata(model_set).get("cv_metrics") or []
    if not records:
        return Accuracy("These model files carry no cross-validation metrics; the Cross-validation page computes "
                        "them.", pd.DataFrame())
    rec = pd.DataFrame(records)
    learned = rec[rec["strategy"].isin(["CV", "LOGO", "LOLO"]) & (rec["model"] == rec["model"].iloc[0])]
    table = (learned.assign(Target=learned["target"].map({"power": "Power", "itl": "ITL"}),
                            Scenario=learned["scenario"].map(SCENARIO_LABELS).fillna(learned["scenario"]),
                            value=learned["mdape_pct"].map(lambda v: _num(v, ".1f")))
             .pivot(index=["Target", "Scenario"], columns="strategy", values="value")
             .reindex(columns=["CV", "LOGO", "LOLO"])
             .rename(columns=lambda c: f"{c} (%)")
             .reset_index()
             .sort_values(["Target", "Scenario"], ascending=[False, True], key=lambda s: s.str.lower())
             .reset_index(drop=True))
    table.columns.name = None
    decided = model_metadata(model_set).get("default_for") or {}
    if decided and rec["model"].iloc[0] != "XGB":  # the paper's models beside ours, same all-GPU evaluation
        keys = {"Power": "power", "ITL": "itl"}
        table["Paper's XGB LOGO (%)"] = [
            _num(((decided.get(keys[t], {}).get(s.lower()) or {}).get("mdape_pct") or {}).get("LOGO", {}).get("XGB"),
                 ".1f") for t, s in zip(table["Target"], table["Scenario"], strict=True)]
    pick = rec[(rec["model"] == rec["model"].iloc[0]) & (rec["strategy"] == "LOGO")]
    if pick.empty:
        pick = rec[rec["model"] == rec["model"].iloc[0]]
    names = {"power": "power", "itl": "ITL"}
    parts = [f"{names[r['target']]} {r['scenario']} {r['mdape_pct']:.1f}%" for r in pick.to_dict("records")]
    split = pick["strategy"].iloc[0]
    what = {"CV": "unseen LLM-GPU pairs", "LOGO": "GPUs left out of training", "LOLO": "LLMs left out of training"}
    return Accuracy(f"Median absolute percentage error on {what.get(split, split)} ({split}): " + ", ".join(parts)
                    + ". The table gives the same error (MdAPE, %) on unseen LLM-GPU pairs (CV), unseen GPUs (LOGO) "
                    "and unseen LLMs (LOLO).", table)


def other_sources_sentence(model_set) -> str:
    """Home's sentence on the error for runs of other sources and stacks (leave-one-source-out)."""
    from .loso import other_sources_sentence as sentence

    meta = model_metadata(model_set)
    parts = getattr(model_set, "parts", None) or {}
    if not meta.get("loso_metrics") and "plus" in parts:
        meta = model_metadata(parts["plus"])
    return sentence(meta)


def _num(value, spec: str) -> str:
    """A metric as text; missing or undefined values as an en dash."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if not np.isfinite(v) else format(v, spec)


def cv_table(records: pd.DataFrame, target: str | None, paper: dict | None = None,
             compact: bool = False) -> pd.DataFrame:
    """Paper-style table of evaluation records (one target, or all), readable columns, optional paper numbers."""
    rec = records if target is None else records[records["target"] == target]
    order = {"CV": 0, "LOGO": 1, "LOLO": 2, "-": 3}
    rec = rec.assign(_b=rec["strategy"].eq("-"), _s=rec["strategy"].map(order),
                     _c=rec["scenario"].map({"offline": 0, "server": 1}))
    rec = rec.sort_values(["target", "_b", "model", "_c", "_s"], ascending=[False, True, True, True, True])
    out = pd.DataFrame({
        "Target": rec["target"].map({"power": "Power", "itl": "ITL"}),
        "Model": rec["model"],
        "Scenario": rec["scenario"].map(SCENARIO_LABELS).fillna(rec["scenario"]),
        "Split": rec["strategy"].map(lambda s: "–" if s == "-" else s),
        "MdAPE (%)": rec["mdape_pct"].map(lambda v: _num(v, ".1f")),
        "Pearson r": rec["pearson_r"].map(lambda v: _num(v, ".3f")),
        "GPU τ": rec["gpu_tau"].map(lambda v: _num(v, ".2f")),
        "LLM τ": rec["llm_tau"].map(lambda v: _num(v, ".2f")),
    })
    if "top1_pct" in rec:
        out["Picks the best GPU (%)"] = rec["top1_pct"].map(lambda v: _num(v, ".0f"))
    if "interval_coverage_pct" in rec and rec["interval_coverage_pct"].notna().any():
        out["80% interval coverage (%)"] = rec["interval_coverage_pct"].map(lambda v: _num(v, ".0f"))
        out["Interval width (%)"] = rec["interval_width_pct"].map(lambda v: _num(v, ".0f"))
    out["Runs"] = rec["n_rows"].map(lambda v: f"{int(v):,}")
    if paper:
        keys = list(zip(rec["target"], rec["model"], rec["scenario"], rec["strategy"], strict=True))
        out["Paper MdAPE (%)"] = [_num(paper.get(k, (np.nan,))[0], ".1f") for k in keys]
        out["Paper r"] = [_num(paper.get(k, (np.nan, np.nan))[1], ".3f") for k in keys]
    if compact:
        out = out[out["Split"] != "–"][["Target", "Scenario", "Split", "MdAPE (%)", "Pearson r"]]
    elif target is not None:
        out = out.drop(columns=["Target"])
    return out.reset_index(drop=True)


def explain_prediction(llm_id: str, gpu_id: str, workload: Workload, gpus: pd.DataFrame, llms: pd.DataFrame,
                       model_set) -> dict:
    from .explain import explain_request

    if gpu_id not in set(gpus["gpu_id"]):
        raise WattGPUError(f"unknown GPU {gpu_id!r}; pick one from the list")
    return explain_request(llm_id, gpu_id, workload.as_request(), gpus, llms, fitted_models(model_set))


def global_importance(store, model_set, max_rows: int = 2000) -> dict:
    """Mean |SHAP| per feature over the models' training rows (see ``explain.global_importance``)."""
    from .explain import global_importance as _global
    from .models import training_frame

    return _global(fitted_models(model_set), training_frame(store, "catalog"), max_rows=max_rows)


def explanation_background(store, model_set):
    """The training configurations WattGPU+ explanations start from (None without WattGPU+; see
    ``explain.explanation_background``)."""
    from .explain import explanation_background as _background

    return _background(store, model_set)


def explain_view(llm_id: str, gpu_id: str, workload: Workload, gpus: pd.DataFrame, llms: pd.DataFrame, model_set,
                 background=None):
    """The Explain page's view of one prediction of ``model_set`` (see ``explain.explain_view``)."""
    from .explain import explain_view as _view

    return _view(llm_id, gpu_id, workload.as_request(), gpus, llms, model_set, background)


def plus_global_importance(model_set, background, pool: str, n_rows: int = 100, progress=None) -> dict:
    """Mean |SHAP| per input group of WattGPU+ over training configurations of one scenario (see
    ``explain.plus_global_importance``)."""
    from .explain import plus_global_importance as _global

    return _global(model_set, background, pool, n_rows=n_rows, progress=progress)


def _with_interval(value: float, lo: float, hi: float, fmt: str) -> str:
    text = format(value, fmt)
    if np.isfinite(lo) and np.isfinite(hi):
        text += f"  ({format(lo, fmt)} – {format(hi, fmt)})"
    return text


def side_by_side_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per deployment, key columns first: energy per token, ITL, throughput, power, each 'value (80%
    interval)'; then GPUs per replica, whether GPU and LLM are in the training data."""
    def col(metric, scale, fmt):
        lo = table.get(f"{metric}_lo", pd.Series(np.nan, index=table.index))
        hi = table.get(f"{metric}_hi", pd.Series(np.nan, index=table.index))
        return [_with_interval(v * scale, a * scale, b * scale, fmt) for v, a, b in
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


# ----------------------------------------------------------------------------------------------------------------
# Cross-validation views
def run_cross_validation(store, paper_compat: bool, progress=None, model_sets=("paper",), refresh: bool = False):
    """The paper's protocol (CV, LOGO, LOLO, baselines) on the store for ``model_sets`` (e.g. ("paper", "plus")
    to show WattGPU+ beside the paper's models); ``progress(fraction, message)``. Results are kept on disk per data
    and code version (``evaluation_cache``); ``refresh`` computes afresh."""
    from .evaluation_cache import cached_evaluation
    from .shipped import load_evaluation

    if not refresh:  # the evaluation shipped with the committed models, when it is of this data and code
        hit = load_evaluation(store, paper_compat, model_sets, active_models_dir(store))
        if hit is not None:
            if progress:
                progress(1.0, "shipped with the models")
            return hit
    return cached_evaluation(store, paper_compat, model_sets, progress=progress, refresh=refresh)


def shipped_importance(store, which: str):
    """Global importance shipped with the models in use ("paper", "plus-offline", "plus-server"), or None when
    it is not of this data and these models (see ``shipped``)."""
    from .shipped import load_importance

    return load_importance(store, which, active_models_dir(store))


def evaluation_estimate(store, paper_compat: bool) -> str:
    """A guide to how long a cross-validation takes here, from the shipped evaluation's own time."""
    from .shipped import estimate_seconds

    seconds = estimate_seconds(paper_compat=paper_compat)
    if not seconds:
        return "this takes a few minutes the first time the data change"
    return (f"the committed evaluation took {max(10, round(seconds / 10) * 10):.0f} s where it was computed; done "
            "once per data version")


def evaluated_model_sets() -> tuple[str, ...]:
    """The model sets the Cross-validation page evaluates: the paper's, and WattGPU+ when its files exist."""
    from .report import trained_model_sets

    return tuple(n for n in trained_model_sets() if n in ("paper", "plus"))


def external_validation(store) -> dict:
    """Train on Watt Counts only, predict the ML.ENERGY v2 runs (A100 and the unseen H100 SXM5): MdAPE of power and
    time per output token, and the error of the predicted H100/A100 ratios (see ``external``), as plain records:
    {"summary": [...], "pairs": [...], "runs": [...], ...}."""
    from .external import external_validation as _validate

    return _validate(store).to_dict()


def external_table(external: Mapping, gpus: pd.DataFrame) -> pd.DataFrame:
    """The external validation as one row per model and quantity: MdAPE on the GPU Watt Counts has, on the GPU it
    lacks, and the median error of the predicted ratio between them."""
    summary = pd.DataFrame(external["summary"])
    names = gpus.set_index("gpu_id")["name"].to_dict()
    seen, unseen = external["seen_gpu"], external["unseen_gpu"]
    columns = {f"MdAPE, {seen}": f"{names.get(seen, seen)}, in Watt Counts: MdAPE (%)",
               f"MdAPE, {unseen}": f"{names.get(unseen, unseen)}, unseen GPU: MdAPE (%)",
               f"ratio {unseen} / {seen}: median |error|": "Ratio unseen / seen: median error (%)"}
    summary = summary[summary["what"].isin(columns)]
    table = summary.pivot_table(index=["model", "quantity"], columns="what", values="mdape_pct", aggfunc="first")
    table = table.reindex(columns=list(columns)).rename(columns=columns).reset_index()
    table = table.rename(columns={"model": "Model", "quantity": "Quantity"})
    table["Quantity"] = table["Quantity"].str.capitalize()
    for c in columns.values():
        table[c] = table[c].map(lambda v: _num(v, ".1f"))
    return table


def external_caption(external: Mapping, gpus: pd.DataFrame) -> str:
    names = gpus.set_index("gpu_id")["name"].to_dict()
    pairs = pd.DataFrame(external["pairs"])
    n_runs = len({r["run_id"] for r in external["runs"]})
    return (f"Trained on Watt Counts only ({external['n_train_rows']:,} runs, vLLM 0.14), then asked for the "
            f"{n_runs} ML.ENERGY v2 runs (vLLM 0.5.4, all requests queued at once) of the LLMs both sources share, "
            f"on {names.get(external['seen_gpu'])} (a GPU in Watt Counts) and {names.get(external['unseen_gpu'])} "
            f"(a GPU Watt Counts lacks). Absolute levels differ because the serving software differs (the same "
            f"Llama-3.1-8B on the same A100 draws about 395 W under Watt Counts' vLLM and about 190 W under "
            f"ML.ENERGY's), so the ratio between the two GPUs at the same LLM and batch size "
            f"({len(pairs) // max(pairs['model'].nunique(), 1)} pairs) isolates the unseen GPU. The "
            f"stack-calibrated row learns ML.ENERGY's serving overheads from its A100 runs only and is then judged "
            f"on the H100 runs it never saw.")


def paper_results() -> dict:
    from .evaluation import PAPER_RESULTS

    return dict(PAPER_RESULTS)


def cv_models_caption(result) -> str:
    """What the model rows are (XGB = the paper's models; WattGPU+ = ours) and how its intervals were checked."""
    models = {r["model"] for r in result.records}
    if "WattGPU+" not in models:
        return "XGB is the paper's model."
    return ("XGB is the paper's model; WattGPU+ is ours (calibrated roofline ITL, power between serving-idle and "
            "TDP), evaluated on the same rows by the same splits; it also learns from the Watt Counts MoE runs, "
            "never from a fold's test group. Its 80% intervals are calibrated on leave-one-GPU-out residuals; the "
            "coverage shown is measured on each held-out GPU with intervals calibrated without it.")


def learned_models(result) -> list[str]:
    """The learned models of an evaluation (WattGPU+ first when present), for the parity and error views."""
    names = sorted({k[0] for k in result.predictions if k[2] != "-"}, key=lambda m: (m != "WattGPU+", m))
    return names or ["XGB"]


def external_pairs(external: Mapping) -> pd.DataFrame:
    """The per-(LLM, batch size) ratio records of the external validation."""
    return pd.DataFrame(external["pairs"])


def cv_caption(result, gpus: pd.DataFrame | None = None) -> str:
    mode = ("Paper-compatible: the paper's GPU feature values" if result.paper_compat
            else "All GPUs with this catalog's specs")
    names = gpus.set_index("gpu_id")["name"].to_dict() if gpus is not None else {}
    if result.paper_compat and result.excluded_gpus:
        excluded = ", ".join(names.get(g, g) for g in result.excluded_gpus)
        mode += (f"; as in the paper, {excluded} is left out of the power metrics (its TDP "
                 "repeats another GPU's)")
    n = {r["target"]: 0 for r in result.records}
    for r in result.records:
        if r["strategy"] == "CV":
            n[r["target"]] += int(r["n_rows"])
    return (f"{mode}. {n.get('power', 0):,} runs for power, {n.get('itl', 0):,} for ITL; computed in "
            f"{result.seconds:.0f} s (shipped with the committed models for the default data; recomputed once "
            "after an upload).")


@dataclass(frozen=True)
class ParitySpec:
    frame: pd.DataFrame
    axis_label: str
    title: str
    log_axes: bool
    scale: float


def parity_spec(result, target: str, strategy: str, model: str | None = None) -> ParitySpec:
    model = model or next(k[0] for k in result.predictions if k[2] != "-")
    frame = result.predictions[(model, target, strategy)]
    frame = frame[frame["counted"] & frame["y_pred"].notna()]
    if target == "power":
        return ParitySpec(frame, "mean power (W)", f"Power, {STRATEGY_LABELS[strategy]}", False, 1.0)
    return ParitySpec(frame, "ITL (ms, log scale)", f"ITL, {STRATEGY_LABELS[strategy]}", True, 1000.0)


def _per_target(result, strategy: str, by: str, gpus: pd.DataFrame, llms: pd.DataFrame, model: str | None):
    """(target label, out-of-fold predictions, grouping column, display names) for each target a split has."""
    model = model or next(k[0] for k in result.predictions if k[2] != "-")
    key = "gpu_id" if by == "gpu" else "llm_id"
    names = (gpus.set_index("gpu_id")["name"] if by == "gpu" else llms.set_index("llm_id")["name"])
    for target in ("power", "itl"):
        pred = result.predictions.get((model, target, strategy))
        if pred is not None:
            yield ("Power" if target == "power" else "ITL"), pred, key, names


def breakdown(result, strategy: str, by: str, scenario: str, gpus: pd.DataFrame, llms: pd.DataFrame,
              model: str | None = None) -> pd.DataFrame:
    """MdAPE per GPU (``by='gpu'``) or LLM for one split and scenario, both targets, named for display."""
    from .evaluation import error_breakdown

    parts = []
    for label, pred, key, names in _per_target(result, strategy, by, gpus, llms, model):
        b = error_breakdown(pred, by=key)
        b = b[b["scenario"] == scenario]
        parts.append(pd.DataFrame({"group": b[key].map(names).fillna(b[key]), "target_label": label,
                                   "mdape_pct": b["mdape_pct"], "n_rows": b["n_rows"]}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["group", "target_label", "mdape_pct", "n_rows"])


def error_spread(result, strategy: str, by: str, scenario: str, gpus: pd.DataFrame, llms: pd.DataFrame,
                 model: str | None = None) -> pd.DataFrame:
    """Absolute percentage error of every counted out-of-fold prediction (columns group, target_label, ape_pct),
    per GPU (``by='gpu'``) or LLM, for one split and scenario: the spread behind :func:`breakdown`'s medians."""
    parts = []
    for label, pred, key, names in _per_target(result, strategy, by, gpus, llms, model):
        p = pred[pred["counted"] & pred["y_pred"].notna() & (pred["scenario"] == scenario)]
        parts.append(pd.DataFrame({"group": p[key].map(names).fillna(p[key]), "target_label": label,
                                   "ape_pct": (p["y_pred"] - p["y_true"]).abs() / p["y_true"].abs() * 100}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["group", "target_label",
                                                                                    "ape_pct"])


CV_METRIC_HELP = (
    "**MdAPE**: the median, over runs, of |predicted − measured| / measured; half the runs are closer than this.",
    "**Pearson r**: linear correlation of predicted and measured values over all runs (1 = perfect line).",
    "**GPU τ / LLM τ**: Kendall's rank agreement when ordering the GPUs for each LLM (or the LLMs on each GPU) "
    "by predicted vs measured value, averaged; 1 = same order, 0 = no better than chance.",
    "**Picks the best GPU**: for each LLM and scenario, is the GPU with the lowest measured value (power or ITL) "
    "also the one predicted lowest? The share of LLMs for which it is.",
    "**80% interval coverage**: the share of runs of a held-out GPU whose measured value falls inside the 80% "
    "interval calibrated without that GPU (80% is right); **interval width**: its median width, % of the "
    "prediction.",
    "**Runs**: the runs scored; repeats of one configuration never straddle training and test.",
)


# ----------------------------------------------------------------------------------------------------------------
# Data page
def _search(frame: pd.DataFrame, columns: list[str], query: str) -> pd.DataFrame:
    if not query or not query.strip():
        return frame
    text = frame[columns].astype(str).agg(" ".join, axis=1).str.lower()
    mask = np.ones(len(frame), dtype=bool)
    for word in query.lower().split():
        mask &= text.str.contains(word, regex=False).to_numpy()
    return frame[mask]


_GPU_BROWSE = ("name", "generation", "form_factor_class", "memory_size_gb", "memory_type", "memory_bandwidth_gb_s",
               "fp16_tensor_dense_tflops", "tdp_w", "release_year", "vendor", "user_defined")
_LLM_BROWSE = ("llm_id", "family", "model_type", "total_params_b", "active_params_b", "is_moe", "num_layers",
               "hidden_size", "num_attention_heads", "num_key_value_heads", "user_defined")


def browse_gpus(gpus: pd.DataFrame, query: str = "") -> pd.DataFrame:
    out = _search(gpus, ["gpu_id", "name", "aliases", "generation", "architecture"], query)[list(_GPU_BROWSE)]
    out = out.assign(release_year=out["release_year"].astype("Int64"))
    return out.rename(columns={c: label(c) for c in out.columns} | {"name": "GPU"})


def browse_llms(llms: pd.DataFrame, query: str = "") -> pd.DataFrame:
    out = _search(llms, ["llm_id", "name", "family", "model_type", "aliases"], query)[list(_LLM_BROWSE)]
    for c in ("num_layers", "hidden_size", "num_attention_heads", "num_key_value_heads"):
        out[c] = out[c].astype("Int64")
    return out.rename(columns={c: label(c) for c in out.columns} | {"llm_id": "LLM (Hugging Face id)"})


def source_options(runs: pd.DataFrame) -> list[str]:
    return sorted(runs["source_id"].dropna().unique())


def browse_runs(runs: pd.DataFrame, gpus: pd.DataFrame, llms: pd.DataFrame, query: str = "",
                sources: list[str] | None = None, scenarios: list[str] | None = None) -> pd.DataFrame:
    r = runs
    if sources:
        r = r[r["source_id"].isin(sources)]
    if scenarios:
        r = r[r["scenario"].isin(scenarios)]
    r = r.assign(gpu_name=r["gpu_id"].map(gpus.set_index("gpu_id")["name"]).fillna(r["gpu_id"]))
    r = _search(r, ["llm_id", "gpu_name", "gpu_id", "source_id"], query)
    out = pd.DataFrame({
        "LLM": r["llm_id"], "GPU": r["gpu_name"], "Scenario": r["scenario"],
        label("batch_size"): r["batch_size"], label("request_rate_qps"): r["request_rate_qps"],
        label("power_w"): r["power_w"].round(1), label("itl_ms"): (r["itl_s"] * 1000).map(lambda v: sig(v, 3)),
        label("energy_per_token_j"): r["energy_per_token_j"].map(lambda v: sig(v, 3)),
        label("throughput_tok_s"): r["throughput_tok_s"].round(0),
        "GPUs": r["num_gpus"], "Source": r["source_id"], "Upload": r["batch_id"],
    })
    return out.reset_index(drop=True)


def formats_markdown() -> str:
    from .importers import FORMATS

    return "Recognised formats:\n" + "\n".join(f"- {text}" for text in FORMATS.values())


def template_csv() -> bytes:
    from .importers import canonical_template

    return canonical_template().encode()


def issues_table(exc) -> pd.DataFrame:
    """A ValidationError's problems, one row each (row 0 means the file as a whole)."""
    return pd.DataFrame({"Row": [i.row if i.row else "file" for i in exc.issues],
                         "Column": [i.column or "–" for i in exc.issues],
                         "Problem": [i.message for i in exc.issues]}).astype({"Row": str})


ON_CONFLICT_CHOICES = {"refuse": "Refuse the file (nothing is written)", "replace": "Replace the stored values",
                       "skip": "Keep the stored values"}


def validation_summary(prepared) -> str:
    from .importers import FORMATS

    fmt = FORMATS.get(prepared.format, prepared.format)
    f = prepared.frame
    from .safety import md

    return (f"{md(prepared.file_name)}: {len(f):,} valid run{'s' if len(f) != 1 else ''} ({fmt}) for "
            f"{f['llm_id'].nunique()} LLM(s) on {f['gpu_id'].nunique()} GPU(s). Check the preview, then confirm.")


def preview_table(prepared, gpus: pd.DataFrame, llms: pd.DataFrame, n: int = 50) -> pd.DataFrame:
    f = prepared.frame.head(n)
    return browse_runs(f.assign(run_id="", batch_id="(new)"), gpus, llms).drop(columns=["Upload"])


def uploads_table(batches: pd.DataFrame) -> pd.DataFrame:
    b = batches[batches["kind"] != "seed"]
    kinds = {"upload": "Benchmark upload", "custom_gpu": "Custom GPU", "custom_llm": "Custom LLM"}
    return pd.DataFrame({
        "Batch": b["batch_id"], "Kind": b["kind"].map(kinds).fillna(b["kind"]),
        "File or entry": b["file_name"].fillna(b["notes"]), "Format": b["format"],
        "Added (UTC)": pd.to_datetime(b["imported_at"]).dt.strftime("%Y-%m-%d %H:%M:%S"),
        "Runs added": b["n_runs"], "Added by": b["added_by"],
    }).reset_index(drop=True)


@dataclass(frozen=True)
class MetricsChange:
    summary: str
    table: pd.DataFrame
    before: pd.DataFrame  # row_label, mdape_pct
    after: pd.DataFrame


def retrained_models_dir(store) -> Path:
    """Where models retrained on this store's current data live: ``retrained/<data key>/`` next to the store.

    Each upload (or removal) changes the data key, so models never outlive the data they were fitted to; with only
    the seed data there is no such folder and the committed ``models/`` are used."""
    key = hashlib.sha256(data_version(store).encode()).hexdigest()[:16]
    return Path(store.home) / "retrained" / key


def active_models_dir(store) -> Path:
    """The models the app predicts with: those retrained on the current data if any, else the committed ones."""
    from .paths import MODELS_DIR

    folder = retrained_models_dir(store)
    return folder if (folder / "paper.meta.json").is_file() else MODELS_DIR


def models_origin(models_dir: Path) -> str:
    """One sentence for the pages: which model files the predictions come from ("" for the committed ones)."""
    from .paths import MODELS_DIR

    if Path(models_dir).resolve() == MODELS_DIR.resolve():
        return ""
    return ("Predictions use models retrained on the current data, uploads included (Data page); removing the "
            "uploads returns to the committed models.")


def retrain_after_upload(store, batch_id: str, progress=None) -> MetricsChange:
    """Cross-validate both model sets (5-fold grouped CV) without and with the upload, then retrain them on all the
    data into :func:`retrained_models_dir`, which the app uses from then on. ``models/`` is never written.

    The paper's XGB learns only from Watt Counts runs of dense LLMs; WattGPU+ also learns from every other run (its
    serving stack's calibration, per-LLM corrections and per-GPU power levels), so uploads move it."""
    from .evaluation import evaluate_frame
    from .models import auxiliary_frame, train, training_frame
    from .paths import MODELS_DIR

    def step(lo, hi):
        return (lambda f, m: progress(lo + (hi - lo) * f, m)) if progress else None

    frame = training_frame(store, "catalog")
    aux = auxiliary_frame(store, "catalog")
    in_frame = frame["batch_id"].eq(batch_id)
    in_aux = aux["batch_id"].eq(batch_id)
    sets = ("paper", "plus") if (MODELS_DIR / "plus.meta.json").is_file() else ("paper",)
    kw = dict(strategies=("CV",), baselines=False, intervals=False)
    after = evaluate_frame(frame, False, sets, aux=aux, progress=step(0.0, 0.4), **kw)
    if in_frame.any() or in_aux.any():
        before = evaluate_frame(frame[~in_frame].reset_index(drop=True), False, sets,
                                aux=aux[~in_aux].reset_index(drop=True), progress=step(0.4, 0.8), **kw)
    else:
        before = after
    folder = retrained_models_dir(store)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))  # written whole, then renamed
    try:
        for i, name in enumerate(sets):
            if progress:
                progress(0.8 + 0.2 * i / len(sets), f"retraining {name} on all the data")
            label = "XGB" if name == "paper" else "WattGPU+"
            train(store, tmp, name, cv_records=[r for r in after.records if r["model"] == label])
        if "plus" in sets:  # which set is the default per target comes from the full evaluation of the committed ones
            committed = json.loads((MODELS_DIR / "plus.meta.json").read_text())
            meta = json.loads((tmp / "plus.meta.json").read_text())
            meta["default_for"] = committed.get("default_for")
            (tmp / "plus.meta.json").write_text(json.dumps(meta, indent=2, allow_nan=False) + "\n")
        from .model_files import replace_folder

        replace_folder(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if progress:
        progress(1.0, "done")
    b, a = before.records_frame(), after.records_frame()
    rows = b.merge(a, on=["target", "model", "scenario", "strategy"], suffixes=("_before", "_after"))
    row_label = (rows["model"] + ": " + rows["target"].map({"power": "power", "itl": "ITL"}) + ", "
                 + rows["scenario"])
    table = pd.DataFrame({"Model, target and scenario": row_label,
                          "MdAPE before (%)": rows["mdape_pct_before"].round(2),
                          "MdAPE after (%)": rows["mdape_pct_after"].round(2),
                          "Change (points)": (rows["mdape_pct_after"] - rows["mdape_pct_before"]).round(2),
                          "Runs scored": rows["n_rows_after"]})
    n_new = int(in_frame.sum() + in_aux.sum())
    summary = (f"Retrained on all the data ({n_new:,} runs from this upload) and saved beside the store; every page "
               "now predicts with these models. 5-fold grouped CV on the Watt Counts runs, before and after.")
    if not in_frame.any():
        summary += (" The paper's XGB learns only from Watt Counts runs of dense LLMs, so its metrics do not move; "
                    "WattGPU+ also learns from this upload (its serving stack, LLMs and GPUs).")
    return MetricsChange(summary, table, pd.DataFrame({"row_label": row_label, "mdape_pct": rows["mdape_pct_before"]}),
                         pd.DataFrame({"row_label": row_label, "mdape_pct": rows["mdape_pct_after"]}))
