"""What the dashboard shows, as plain functions: GPU comparisons, filters, Pareto frontier, measured points, labels,
number formats and the URL state of a page.

Pages call these functions and only place their results; this module never imports streamlit. It is also the one
adapter between the pages and the prediction engine (``planning``, ``evaluation``): if the engine's API changes,
this is the only file to follow it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import pandas as pd

from .catalog import GPU_REQUIRED_FIELDS
from .errors import WattGPUError

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


def fmt_power(w: float) -> str:
    return f"{w:,.0f} W"


def fmt_itl(s: float) -> str:
    ms = s * 1000
    return f"{sig(ms, 2):g} ms"


def fmt_energy(j: float) -> str:
    return f"{sig(j, 3):g} J" if j >= 0.01 else f"{sig(j * 1000, 3):g} mJ"


def fmt_throughput(t: float) -> str:
    return f"{sig(t, 3):,.0f} tokens/s" if t >= 100 else f"{sig(t, 3):g} tokens/s"


# ----------------------------------------------------------------------------------------------------------------
# Workloads and page state (kept in the URL)
SCENARIO_CHOICES = {"offline": "Offline (batch)", "server": "Server (requests arriving over time)"}


@dataclass(frozen=True)
class Workload:
    scenario: str = "offline"
    batch_size: int = 256
    request_rate_qps: float = 0.33
    input_tokens: int = 14
    output_tokens: int = 220

    def as_request(self) -> dict:
        out = {"scenario": self.scenario, "input_tokens": float(self.input_tokens),
               "output_tokens": float(self.output_tokens)}
        if self.scenario == "offline":
            out["batch_size"] = float(self.batch_size)
        else:
            out["request_rate_qps"] = float(self.request_rate_qps)
        return out

    def describe(self) -> str:
        load = (f"offline batch of {self.batch_size}" if self.scenario == "offline"
                else f"server at {self.request_rate_qps:g} requests/s")
        return f"{load}, {self.input_tokens} input and {self.output_tokens} output tokens per request"


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
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def workload(self) -> Workload:
        return Workload(self.scenario, self.batch, self.qps, self.inp, self.out)

    @classmethod
    def from_query(cls, query: dict) -> PageState:
        """Parse URL parameters; anything malformed falls back to the default for that field."""
        default = cls()
        values = {}

        def get(key):
            v = query.get(key)
            if isinstance(v, list):
                v = v[-1] if v else None
            return v

        def number(key, kind, low, high):
            try:
                v = kind(float(get(key)))
            except (TypeError, ValueError):
                return getattr(default, key)
            return v if low <= v <= high else getattr(default, key)

        for key in ("llm", "gpu"):
            if get(key):
                values[key] = str(get(key))
        if get("scenario") in SCENARIO_CHOICES:
            values["scenario"] = get("scenario")
        values["batch"] = number("batch", int, 1, 4096)
        values["qps"] = number("qps", float, 0.001, 1000)
        values["inp"] = number("inp", int, 1, 131072)
        values["out"] = number("out", int, 1, 131072)
        values["mem"] = number("mem", float, 0, 4096)
        for key in ("gen", "form"):
            raw = get(key)
            values[key] = tuple(x for x in str(raw).split("|") if x) if raw else ()
        raw = get("tdp")
        try:
            lo, hi = (float(x) for x in str(raw).split("-", 1))
            values["tdp"] = (lo, hi) if 0 <= lo <= hi else default.tdp
        except (TypeError, ValueError):
            values["tdp"] = default.tdp
        return cls(**values)

    def to_query(self) -> dict[str, str]:
        """URL parameters for this state (defaults left out, so links stay short)."""
        default = PageState()
        out = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value == getattr(default, f.name):
                continue
            if f.name in ("gen", "form"):
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
def load_model_set(name: str = "paper"):
    """The engine's trained models; raises ModelNotTrainedError (a WattGPUError) telling the user what to run."""
    from .errors import ModelNotTrainedError

    try:
        from . import planning
    except ImportError as exc:  # the engine is not installed in this checkout
        raise ModelNotTrainedError(
            f"the prediction engine is not available ({exc}); run `python -m wattgpu_core train`") from None
    return planning.load_model_set(name)


def predict(requests: pd.DataFrame, gpus: pd.DataFrame, llms: pd.DataFrame, model_set) -> pd.DataFrame:
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

    @property
    def best(self) -> pd.Series | None:
        return self.ranked.iloc[0] if len(self.ranked) else None


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
    fits = pred["fits_in_memory"].fillna(True).astype(bool) if "fits_in_memory" in pred else pd.Series(True, pred.index)
    ranked = pred[fits].sort_values("energy_per_token_j", kind="stable").reset_index(drop=True)
    ranked.insert(0, "rank", np.arange(1, len(ranked) + 1))
    ranked["on_frontier"] = pareto_mask(ranked)
    cannot = pred[~fits].copy()
    weights = _weights_gb(llms.set_index("llm_id").loc[llm_id])
    cannot["reason"] = [f"needs about {weights:.0f} GB for 16-bit weights alone; has {m:.0f} GB"
                        for m in cannot["memory_size_gb"]]
    cannot = cannot.sort_values("memory_size_gb", ascending=False)[["gpu_id", "gpu_name", "memory_size_gb", "reason"]]
    measured = measured_points(runs, llm_id, workload, names) if runs is not None else _empty_measured()
    return Comparison(llm_id, workload, ranked, cannot.reset_index(drop=True), _lacking_table(lacking), measured)


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
    out = (r.groupby("gpu_id")
           .agg(itl_s=("itl_s", "mean"), energy_per_token_j=("energy_per_token_j", "mean"),
                power_w=("power_w", "mean"), n_runs=("run_id", "count"),
                source_id=("source_id", lambda s: ", ".join(sorted(set(s)))))
           .reset_index())
    out.insert(1, "gpu_name", out["gpu_id"].map(gpu_names).fillna(out["gpu_id"]))
    return out


# ----------------------------------------------------------------------------------------------------------------
# Tables for display and download
RANKED_COLUMNS = ("rank", "gpu_name", "energy_per_token_j", "itl_ms", "power_w", "throughput_tok_s",
                  "memory_size_gb", "tdp_w", "on_frontier", "gpu_seen", "user_defined", "notes")
_OPTIONAL_EXTRAS = ("serving_stack", "out_of_range")
_DIGITS = {"energy_per_token_j": 3, "itl_ms": 2, "throughput_tok_s": 3}
_DECIMALS = {"power_w": 0, "memory_size_gb": 0, "tdp_w": 0}


def display_table(ranked: pd.DataFrame) -> pd.DataFrame:
    """The ranked comparison with readable column names and rounded numbers (intervals shown when present)."""
    cols = [c for c in RANKED_COLUMNS if c in ranked.columns]
    for base in ("energy_per_token_j", "itl_s", "power_w", "throughput_tok_s"):
        for suffix in ("_lo", "_hi"):
            if f"{base}{suffix}" in ranked.columns:
                name = f"{base}{suffix}" if base != "itl_s" else f"itl_ms{suffix}"
                if base == "itl_s":
                    ranked = ranked.assign(**{name: ranked[f"itl_s{suffix}"] * 1000})
                cols.insert(cols.index(base if base != "itl_s" else "itl_ms") + (1 if suffix == "_lo" else 2), name)
    cols += [c for c in _OPTIONAL_EXTRAS if c in ranked.columns]
    out = ranked[cols].copy()
    for c in out.columns:
        base = c.removesuffix("_lo").removesuffix("_hi")
        if base in _DIGITS:
            out[c] = out[c].map(lambda v, d=_DIGITS[base]: sig(v, d))
        elif base in _DECIMALS:
            out[c] = out[c].round(_DECIMALS[base])
    return out.rename(columns={c: label(c) for c in out.columns})


def download_csv(comparison: Comparison) -> bytes:
    """The comparison as CSV: ranked GPUs then those that cannot hold the model, units in column names."""
    ranked = comparison.ranked.drop(columns=["itl_ms"], errors="ignore").copy()
    ranked.insert(0, "llm_id", comparison.llm_id)
    for k, v in comparison.workload.as_request().items():
        ranked[k] = v
    others = comparison.cannot_hold.assign(llm_id=comparison.llm_id)
    return pd.concat([ranked, others], ignore_index=True).to_csv(index=False).encode()
