"""Deployment planning: rank every way of serving one LLM under a given traffic by cost, with capacity and fleet size.

A deployment *option* is GPU type x GPUs per replica (tensor parallel 1, 2, 4, 8) x weight precision. For each,
:func:`plan_deployments` finds, from :func:`~wattgpu_core.planning.predict` (vectorised: one call for every option,
one for every option's candidate operating points):

- **capacity**: the largest output-token throughput one replica sustains while its predicted TTFT and ITL stay
  within the targets (without targets: before queues grow without bound, i.e. the replica's saturation throughput
  ``max_throughput_tok_s``). Searched over per-replica load on a fixed grid of fractions of the saturation
  throughput (:data:`LOAD_FRACTIONS`), the crossing of a target interpolated linearly between grid points;
- **replicas**: the fewest replicas that carry the arrival rate with every replica at most :data:`HEADROOM`
  (85%) of its capacity: ``replicas = ceil(rate x output_tokens / (0.85 x capacity))``;
- the **operating point** (per-replica load = rate / replicas): TTFT, ITL, power per GPU, interpolated on the same
  grid (piecewise linear in load);
- **fleet figures and cost**, exactly as issue 10 defines them (:func:`fleet_figures`).

ITL here is the mean time between output tokens with TTFT excluded (predict's ``tpot_s``), the quantity vLLM's
benchmark reports as TPOT/ITL; targets are checked against the predicted mean (no percentile model exists).
Options that do not fit, use a precision the GPU cannot run, lack specs or cannot meet the targets stay in the
result with ``fits`` / ``meets_slo`` False and the reason in ``notes``; :func:`order_options` (the one ranking rule,
also used by Compare GPUs) never puts them above an option that meets the targets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd

from .catalog import GpuResolver, LlmResolver
from .errors import Issue, UnknownNameError, ValidationError
from .physics import normalise_precision
from .planning import DEFAULT_MODEL_SET, LoadedModelSet, load_model_set, predict
from .planning_data import PlanningDefaults

__all__ = [
    "HEADROOM",
    "TRAFFIC_PRESETS",
    "PLAN_COLUMNS",
    "Costs",
    "Traffic",
    "fleet_figures",
    "order_options",
    "plan_deployments",
]

HEADROOM = 0.85  # each replica runs at most at 85% of its capacity
TENSOR_PARALLEL = (1, 2, 4, 8)
DEFAULT_PRECISIONS = ("bf16", "fp8", "int8", "int4", "fp4", "mxfp4")  # fp16 costs what bf16 costs
# Per-replica loads searched, as fractions of the replica's saturation throughput (the last is taken as 1).
LOAD_FRACTIONS = np.array([0.01, 0.05, 0.15, 0.3, 0.45, 0.6, 0.75, 0.87, 0.97])
PLAN_COLUMNS = ("gpu_id", "gpu_name", "tensor_parallel", "precision", "fits", "meets_slo", "replicas", "gpus_total",
                "batch_per_replica", "ttft_s", "itl_s", "power_w_per_gpu", "fleet_power_kw",
                "throughput_tok_s_per_replica", "capacity_tok_s_per_replica", "max_throughput_tok_s",
                "energy_per_token_j", "usd_per_gpu_hour", "usd_per_hour", "usd_per_mtok", "kwh_per_mtok",
                "gco2e_per_mtok", "memory_needed_gb", "memory_available_gb", "memory_margin_gb",
                "kv_capacity_tokens", "max_batch", "price_source", "notes")


@dataclass(frozen=True)
class Traffic:
    """Arrival rate (requests/s), prompt and output tokens per request, optional TTFT and ITL targets (s)."""

    rate_qps: float
    input_tokens: float
    output_tokens: float
    ttft_slo_s: float | None = None
    itl_slo_s: float | None = None

    def __post_init__(self):
        issues = []
        for name in ("rate_qps", "input_tokens", "output_tokens", "ttft_slo_s", "itl_slo_s"):
            v = getattr(self, name)
            if v is None and name.endswith("slo_s"):
                continue
            if v is None or not np.isfinite(float(v)) or float(v) <= 0:
                issues.append(Issue(0, name, f"{name} must be a positive number, found {v!r}"))
        if issues:
            raise ValidationError(issues)

    @property
    def tokens_per_s(self) -> float:
        return float(self.rate_qps) * float(self.output_tokens)

    def describe(self) -> str:
        targets = [f"TTFT < {self.ttft_slo_s:g} s" if self.ttft_slo_s else "",
                   f"ITL < {self.itl_slo_s * 1000:g} ms" if self.itl_slo_s else ""]
        text = (f"{self.rate_qps:g} requests/s, {self.input_tokens:,.0f} prompt and {self.output_tokens:,.0f} "
                f"output tokens per request")
        shown = [t for t in targets if t]
        return text + (f"; targets {' and '.join(shown)}" if shown else "; no latency targets")


# Common traffic shapes (token counts and the targets are starting points to edit, not measurements).
TRAFFIC_PRESETS: Mapping[str, Mapping] = MappingProxyType({
    "chat": MappingProxyType({"label": "Chat", "input_tokens": 1000, "output_tokens": 300, "ttft_slo_s": 2.0,
                              "itl_slo_s": 0.05}),
    "rag": MappingProxyType({"label": "Long-prompt RAG", "input_tokens": 8000, "output_tokens": 300,
                             "ttft_slo_s": 5.0, "itl_slo_s": 0.05}),
    "code": MappingProxyType({"label": "Code completion", "input_tokens": 1500, "output_tokens": 50,
                              "ttft_slo_s": 0.5, "itl_slo_s": 0.03}),
    "batch": MappingProxyType({"label": "Offline batch", "input_tokens": 1000, "output_tokens": 1000,
                               "ttft_slo_s": None, "itl_slo_s": None}),
})


@dataclass(frozen=True)
class Costs:
    """Cost and carbon assumptions: $/GPU-hour per GPU id (a GPU without one gets no cost), $/kWh, PUE,
    gCO2e/kWh, and where each comes from (``sources``: name -> citation text). Plain dicts, so a cache can pickle
    it; never mutated."""

    usd_per_gpu_hour: Mapping[str, float]
    usd_per_kwh: float
    pue: float
    gco2e_per_kwh: float
    sources: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_defaults(cls, defaults: PlanningDefaults, gpu_prices: Mapping[str, float] | None = None,
                      usd_per_kwh: float | None = None, pue: float | None = None,
                      gco2e_per_kwh: float | None = None, region: str | None = None) -> Costs:
        """The defaults with any overrides (GPU prices by catalog id; ``region`` picks a grid carbon intensity)."""
        prices = {k: a.value for k, a in defaults.gpu_prices.items()}
        sources = {f"price:{k}": a.cite() for k, a in defaults.gpu_prices.items()}
        for k, v in (gpu_prices or {}).items():
            prices[k] = float(v)
            sources[f"price:{k}"] = "given by the user"
        carbon = defaults.carbon_for(region) if region else defaults.gco2e_per_kwh
        issues = [Issue(0, n, f"{n} must be a non-negative number, found {v!r}")
                  for n, v in (("usd_per_kwh", usd_per_kwh), ("pue", pue), ("gco2e_per_kwh", gco2e_per_kwh),
                               *((f"gpu price {k}", v) for k, v in prices.items()))
                  if v is not None and not (np.isfinite(float(v)) and float(v) >= 0)]
        if pue is not None and np.isfinite(float(pue)) and float(pue) < 1:
            issues.append(Issue(0, "pue", f"pue must be at least 1, found {pue!r}"))
        if issues:
            raise ValidationError(issues)
        sources["usd_per_kwh"] = "given by the user" if usd_per_kwh is not None else defaults.usd_per_kwh.cite()
        sources["pue"] = "given by the user" if pue is not None else defaults.pue.cite()
        sources["gco2e_per_kwh"] = "given by the user" if gco2e_per_kwh is not None else carbon.cite()
        return cls(prices, float(defaults.usd_per_kwh.value if usd_per_kwh is None else usd_per_kwh),
                   float(defaults.pue.value if pue is None else pue),
                   float(carbon.value if gco2e_per_kwh is None else gco2e_per_kwh), sources)


# --------------------------------------------------------------------------------------------------------------
# The one ranking rule
def order_options(frame: pd.DataFrame, by: str, ok: str | Sequence[str] = ("fits", "meets_slo")) -> pd.DataFrame:
    """``frame`` sorted so that rows passing every ``ok`` column come first, then those with a value of ``by``
    before those without, then ascending ``by`` (stable). Compare GPUs ranks with it too."""
    oks = [ok] if isinstance(ok, str) else list(ok)
    good = np.ones(len(frame), dtype=bool)
    for c in oks:
        good &= frame[c].fillna(False).to_numpy(dtype=bool)
    value = pd.to_numeric(frame[by], errors="coerce").to_numpy(float)
    order = np.lexsort((np.where(np.isfinite(value), value, np.inf), ~np.isfinite(value), ~good))
    return frame.iloc[order].reset_index(drop=True)


def fleet_figures(gpus_total, power_w_per_gpu, rate_qps: float, output_tokens: float, usd_per_gpu_hour,
                  usd_per_kwh: float, pue: float, gco2e_per_kwh: float) -> dict[str, np.ndarray]:
    """Fleet power, energy, cost and carbon per million output tokens (issue 10's formulas, arrays broadcast).

    fleet_power_kw = gpus_total x power per GPU / 1000 (mean power at the operating point, idle share included);
    usd_per_hour = gpus_total x $/GPU-hour + fleet_power_kw x PUE x $/kWh; usd_per_mtok = usd_per_hour /
    (rate x output tokens x 3600) x 1e6; kwh_per_mtok = fleet_power_kw x PUE / (rate x output tokens x 3600) x 1e6;
    gco2e_per_mtok = kwh_per_mtok x gCO2e/kWh; energy_per_token_j = fleet_power_kw x 1000 / (rate x output tokens)
    (GPU energy only, no PUE). A missing $/GPU-hour gives a missing cost, never a guessed one.
    """
    gpus_total = np.asarray(gpus_total, dtype=float)
    tokens_per_s = float(rate_qps) * float(output_tokens)
    fleet_power_kw = gpus_total * np.asarray(power_w_per_gpu, dtype=float) / 1000.0
    usd_per_hour = gpus_total * np.asarray(usd_per_gpu_hour, dtype=float) + fleet_power_kw * pue * usd_per_kwh
    per_mtok = 1e6 / (tokens_per_s * 3600.0)
    kwh_per_mtok = fleet_power_kw * pue * per_mtok
    return {"fleet_power_kw": fleet_power_kw, "usd_per_hour": usd_per_hour, "usd_per_mtok": usd_per_hour * per_mtok,
            "kwh_per_mtok": kwh_per_mtok, "gco2e_per_mtok": kwh_per_mtok * gco2e_per_kwh,
            "energy_per_token_j": fleet_power_kw * 1000.0 / tokens_per_s}


# --------------------------------------------------------------------------------------------------------------
# Adapter to predict(): the replica-level columns of issue 10's interface (see INTERFACE-10.md)
_REPLICA_COLUMNS = ("precision_supported", "fits", "ttft_s", "tpot_s", "saturated", "max_throughput_tok_s",
                    "memory_needed_gb", "memory_available_gb", "memory_margin_gb", "kv_capacity_tokens", "max_batch")


def _replica_predictions(requests: pd.DataFrame, gpus: pd.DataFrame, llms: pd.DataFrame,
                         model_set: LoadedModelSet) -> pd.DataFrame:
    """predict() for server requests with tensor parallel and precision; checks it gives every column the planner
    reads (the one place to follow if predict's output changes)."""
    out = predict(requests, gpus, llms, model_set)
    missing = [c for c in ("precision", "power_w", *_REPLICA_COLUMNS) if c not in out.columns]
    if missing:
        raise RuntimeError(f"predict() gives no {', '.join(missing)}; the planner needs them (INTERFACE-10.md)")
    return out


# --------------------------------------------------------------------------------------------------------------
# Planning
def _resolve_names(llm: str, gpu_names: Sequence[str] | None, gpus: pd.DataFrame,
                   llms: pd.DataFrame) -> tuple[str, list[str]]:
    llm_ids, unknown = LlmResolver(llms).resolve_many(np.asarray([llm], dtype=object))
    if unknown:
        raise UnknownNameError("LLM", list(unknown), dict(unknown))
    if gpu_names:
        ids, unknown = GpuResolver(gpus).resolve_many(np.asarray(list(gpu_names), dtype=object))
        if unknown:
            raise UnknownNameError("GPU", list(unknown), dict(unknown))
        gpu_ids = list(dict.fromkeys(ids))
    else:
        vendor = gpus["vendor"].fillna("NVIDIA").str.upper() if "vendor" in gpus else pd.Series("NVIDIA", gpus.index)
        gpu_ids = list(gpus.loc[vendor.eq("NVIDIA").to_numpy(), "gpu_id"].drop_duplicates())
    return str(llm_ids[0]), gpu_ids


def _precisions(precisions: Sequence[str] | None) -> list[str]:
    if not precisions:
        return list(DEFAULT_PRECISIONS)
    out, issues = [], []
    for p in precisions:
        try:
            out.append(normalise_precision(p))
        except ValueError as exc:
            issues.append(Issue(0, "precision", str(exc)))
    if issues:
        raise ValidationError(issues)
    return list(dict.fromkeys(out))


def _interp(values: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Per row i, ``values[i]`` (over LOAD_FRACTIONS) linearly interpolated at ``frac[i]`` (clamped to the grid)."""
    f = np.clip(frac, LOAD_FRACTIONS[0], LOAD_FRACTIONS[-1])
    j = np.clip(np.searchsorted(LOAD_FRACTIONS, f, side="right") - 1, 0, len(LOAD_FRACTIONS) - 2)
    w = (f - LOAD_FRACTIONS[j]) / (LOAD_FRACTIONS[j + 1] - LOAD_FRACTIONS[j])
    rows = np.arange(len(frac))
    return values[rows, j] * (1 - w) + values[rows, j + 1] * w


def _capacity_fraction(ok: np.ndarray, other_fail: np.ndarray,
                       metrics: list[tuple[np.ndarray, float | None]]) -> np.ndarray:
    """Per row, the largest load (fraction of saturation throughput) up to which every grid point meets the
    targets; where the first failing point fails only on a target (not on ``other_fail``: saturation, no
    prediction), the crossing is interpolated linearly. 0 when even the lightest load fails, 1 when every grid
    point passes."""
    n, k = ok.shape
    prefix = np.cumprod(ok, axis=1).astype(bool)
    last = prefix.sum(axis=1) - 1  # index of the last passing point, -1 if none
    frac = np.where(last >= 0, LOAD_FRACTIONS[np.clip(last, 0, k - 1)], 0.0)
    inside = (last >= 0) & (last < k - 1)
    rows = np.flatnonzero(inside)
    if len(rows):
        a, b = last[rows], last[rows] + 1
        step = np.ones(len(rows))
        explained = np.zeros(len(rows), dtype=bool)  # the first failing point fails only on interpolable targets
        other = np.asarray(other_fail[rows, b], dtype=bool)
        for values, target in metrics:
            if target is None:
                continue
            lo, hi = values[rows, a], values[rows, b]
            over = np.isfinite(hi) & (hi > target)
            with np.errstate(divide="ignore", invalid="ignore"):
                t = np.where(over & (hi > lo), (target - lo) / (hi - lo), np.where(over, 0.0, 1.0))
            step = np.minimum(step, np.clip(t, 0.0, 1.0))
            explained |= over
        step = np.where(explained & ~other, step, 0.0)
        frac[rows] = LOAD_FRACTIONS[a] + step * (LOAD_FRACTIONS[b] - LOAD_FRACTIONS[a])
    frac[last == k - 1] = 1.0
    return frac


def plan_deployments(llm: str, traffic: Traffic, gpus: pd.DataFrame, llms: pd.DataFrame, costs: Costs,
                     gpu_names: Sequence[str] | None = None, precisions: Sequence[str] | None = None,
                     max_gpus_per_replica: int = 8, model_set: LoadedModelSet | str = DEFAULT_MODEL_SET,
                     serving_stack: str | None = None) -> pd.DataFrame:
    """One row per deployment option (GPU x GPUs per replica x precision) with :data:`PLAN_COLUMNS`, ranked by
    :func:`order_options` on ``usd_per_mtok`` (options that fit and meet the targets first; unpriced after priced).

    ``gpu_names`` (default: every NVIDIA GPU of the catalog) and ``llm`` are resolved like predict()'s names
    (UnknownNameError naming the value); ``precisions`` default to bf16, fp8, int8, int4, fp4 and mxfp4.
    """
    if isinstance(model_set, str):
        model_set = load_model_set(model_set)
    if not (isinstance(max_gpus_per_replica, int | np.integer) and max_gpus_per_replica >= 1):
        raise ValidationError([Issue(0, "max_gpus_per_replica", f"max_gpus_per_replica must be a positive "
                                                                f"integer, found {max_gpus_per_replica!r}")])
    llm_id, gpu_ids = _resolve_names(llm, gpu_names, gpus, llms)
    precs = _precisions(precisions)
    tps = [t for t in TENSOR_PARALLEL if t <= max_gpus_per_replica]
    grid = pd.MultiIndex.from_product([gpu_ids, tps, precs], names=["gpu", "num_gpus", "precision"]).to_frame(
        index=False)
    base = {"llm": llm_id, "scenario": "server", "input_tokens": float(traffic.input_tokens),
            "output_tokens": float(traffic.output_tokens)}
    if serving_stack:
        base["serving_stack"] = serving_stack
    # Pass 1: every option at the whole offered load on one replica: fit, precision path, saturation throughput.
    first = _replica_predictions(grid.assign(**base, request_rate_qps=traffic.rate_qps), gpus, llms, model_set)
    capacity = first["max_throughput_tok_s"].to_numpy(float)
    no_capacity = ~np.isfinite(capacity)
    # Until predict() reports capacity, anchor the search at twice what one replica would need to carry it all.
    capacity = np.where(no_capacity, 2.0 * traffic.tokens_per_s / HEADROOM, capacity)
    usable = (first["fits"].fillna(False).to_numpy(bool) & first["precision_supported"].fillna(False).to_numpy(bool)
              & np.isfinite(first["power_w"].to_numpy(float)) & (capacity > 0))
    idx = np.flatnonzero(usable)
    k = len(LOAD_FRACTIONS)
    # Options of one GPU and TP degree whose predictions at the offered load are identical (precisions the models
    # treat alike, e.g. fp8 and int8 weights on Hopper) are searched once.
    same = first.loc[idx, ["gpu_id", "num_gpus", "power_w", "tpot_s", "ttft_s", "max_throughput_tok_s"]]
    codes = same.round(12).groupby(list(same.columns), sort=False, dropna=False).ngroup().to_numpy()
    firsts = np.unique(codes, return_index=True)[1]
    searched = idx[firsts]
    # Pass 2: the searched options at every load of the grid (fractions of their saturation throughput).
    loads = (capacity[searched, None] * LOAD_FRACTIONS[None, :]) / float(traffic.output_tokens)
    second_req = grid.iloc[np.repeat(searched, k)].reset_index(drop=True).assign(**base,
                                                                                request_rate_qps=loads.ravel())
    second = _replica_predictions(second_req, gpus, llms, model_set) if len(idx) else second_req

    def mat(column: str) -> np.ndarray:
        if not len(idx):
            return np.empty((0, k))
        return second[column].to_numpy(float).reshape(len(searched), k)[codes]

    ttft, tpot, power = mat("ttft_s"), mat("tpot_s"), mat("power_w")
    sat = mat("saturated") > 0
    other_fail = sat | ~np.isfinite(tpot) | ~np.isfinite(power)
    ok = ~other_fail
    if traffic.ttft_slo_s is not None:
        ok &= np.isfinite(ttft) & (ttft <= traffic.ttft_slo_s)
    if traffic.itl_slo_s is not None:
        ok &= tpot <= traffic.itl_slo_s
    frac = _capacity_fraction(ok, other_fail, [(ttft, traffic.ttft_slo_s), (tpot, traffic.itl_slo_s)])
    cap_tok = frac * capacity[idx]
    meets = cap_tok > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        replicas = np.where(meets, np.ceil(traffic.tokens_per_s / (HEADROOM * cap_tok) - 1e-9), np.nan)
    per_replica_tok = traffic.tokens_per_s / replicas
    op_frac = per_replica_tok / capacity[idx]
    op = {c: _interp(m, np.nan_to_num(op_frac)) for c, m in (("ttft_s", ttft), ("itl_s", tpot), ("power_w", power),
                                                              ("memory_needed_gb", mat("memory_needed_gb")))}

    n = len(grid)
    res = pd.DataFrame({"gpu_id": first["gpu_id"], "tensor_parallel": grid["num_gpus"].astype(int),
                        "precision": first["precision"]})
    names = gpus.drop_duplicates("gpu_id").set_index("gpu_id")["name"]
    res.insert(1, "gpu_name", res["gpu_id"].map(names))
    res["fits"] = first["fits"].fillna(False).astype(bool).to_numpy()
    res["meets_slo"] = False
    for c in ("replicas", "gpus_total", "batch_per_replica", "ttft_s", "itl_s", "power_w_per_gpu",
              "throughput_tok_s_per_replica", "capacity_tok_s_per_replica"):
        res[c] = np.nan
    res["max_throughput_tok_s"] = np.where(no_capacity, np.nan, capacity)
    res.loc[idx, "meets_slo"] = meets
    res.loc[idx, "capacity_tok_s_per_replica"] = cap_tok
    good = idx[meets]
    res.loc[good, "replicas"] = replicas[meets]
    res.loc[good, "gpus_total"] = replicas[meets] * res.loc[good, "tensor_parallel"].to_numpy(float)
    res.loc[good, "throughput_tok_s_per_replica"] = per_replica_tok[meets]
    for c, col in (("ttft_s", "ttft_s"), ("itl_s", "itl_s"), ("power_w", "power_w_per_gpu")):
        res.loc[good, col] = op[c][meets]
    # Mean running batch by Little's law: requests per second per replica x time each spends decoding.
    res["batch_per_replica"] = res["throughput_tok_s_per_replica"] * res["itl_s"]
    prices = res["gpu_id"].map(dict(costs.usd_per_gpu_hour)).astype(float)
    res["usd_per_gpu_hour"] = prices
    figures = fleet_figures(res["gpus_total"], res["power_w_per_gpu"], traffic.rate_qps, traffic.output_tokens,
                            prices, costs.usd_per_kwh, costs.pue, costs.gco2e_per_kwh)
    for c in ("fleet_power_kw", "energy_per_token_j", "usd_per_hour", "usd_per_mtok", "kwh_per_mtok",
              "gco2e_per_mtok"):
        res[c] = figures[c]
    for c in ("memory_needed_gb", "memory_available_gb", "memory_margin_gb", "kv_capacity_tokens", "max_batch"):
        res[c] = first[c].to_numpy(float)
    # Memory the KV cache of the operating load needs (pass 1 holds it for the whole offered load on one replica).
    res.loc[good, "memory_needed_gb"] = op["memory_needed_gb"][meets]
    res["memory_margin_gb"] = res["memory_available_gb"] - res["memory_needed_gb"]
    res["price_source"] = res["gpu_id"].map(lambda g: costs.sources.get(f"price:{g}", "no listed price"))
    res["notes"] = _plan_notes(res, first, usable, idx, ok, frac, no_capacity, traffic)
    res["llm_id"] = llm_id
    assert len(res) == n
    return order_options(res, "usd_per_mtok")[[*PLAN_COLUMNS, "llm_id"]]


def _plan_notes(res: pd.DataFrame, first: pd.DataFrame, usable: np.ndarray, idx: np.ndarray, ok: np.ndarray,
                frac: np.ndarray, no_capacity: np.ndarray, traffic: Traffic) -> list[str]:
    """Per option, why it does not fit or meet the targets first, then predict()'s notes."""
    reasons = [[] for _ in range(len(res))]
    supported = first["precision_supported"].fillna(False).to_numpy(bool)
    fits = res["fits"].to_numpy(bool)
    power = first["power_w"].to_numpy(float)
    for i in range(len(res)):
        if not supported[i]:
            reasons[i].append(f"precision {res['precision'].iat[i]} not supported on this GPU")
        elif not fits[i]:
            need, have = res["memory_needed_gb"].iat[i], res["memory_available_gb"].iat[i]
            if np.isfinite(need) and np.isfinite(have):
                reasons[i].append(f"does not fit: needs {need:.1f} GB, has {have:.1f} GB (margin {have - need:.1f} GB)")
            else:
                reasons[i].append("does not fit in GPU memory")
        elif not np.isfinite(power[i]):
            reasons[i].append("not predicted (the catalog lacks specs the models need)")
    lightest_fails = frac == 0
    for row, j in enumerate(idx):
        if lightest_fails[row]:
            failing = []
            if traffic.ttft_slo_s is not None:
                failing.append("TTFT")
            if traffic.itl_slo_s is not None:
                failing.append("ITL")
            reasons[j].append(f"cannot meet the {' / '.join(failing) or 'latency'} target even at light load"
                              if failing else "no load is served without saturating")
        if no_capacity[j]:
            reasons[j].append("replica capacity not predicted; searched up to twice the offered load")
    base = first["notes"].fillna("").astype(str).to_numpy()
    return ["; ".join([*r, b] if b else r) for r, b in zip(reasons, base, strict=True)]
