"""WattGPU+ time to first token (TTFT): prefill compute plus the wait a request sees, with calibrated efficiency.

A request's first token comes out of its prefill, a compute-bound forward pass over the prompt
(:func:`~wattgpu_core.physics.prefill_flops`: 2 N_active FLOPs per prompt token plus causal attention, split over
the tensor-parallel GPUs, plus the all-reduces of the prompt's activations). Its service time is

    S = prefill FLOPs / (efficiency x dense tensor rate of the precision's compute path) + TP all-reduces

with ``efficiency`` fitted, and a fixed ``overhead_s`` (tokenising, scheduling, sampling the first token) added to
every TTFT. What a request waits for depends on how requests arrive:

* a **burst** of B requests submitted together (a closed batch: the benchmarks' fixed concurrency, ``scenario``
  offline): vLLM admits them into the same prefill pass, so every first token comes after B prompts' prefill:
  TTFT = B x S + overhead;
* a server at a **fixed concurrency** C (closed loop, ``closed_loop`` rows): see :meth:`PlusTtftModel._closed_loop`;
* a **server** fed by Poisson arrivals at rate lambda: the request waits for the decode step in flight (half a
  step on average), its prompt then shares steps with the running batch's decoding (one step per
  ``VLLM_PROFILE_TOKENS``-token chunk), and it queues behind other prompts as in an M/D/1 queue whose utilisation
  is the GPU's, rho = lambda x S + lambda x output tokens / decode capacity (tokens/s at the largest batch):
  TTFT = S + overhead + (0.5 + chunks) x step + rho S / (2 (1 - rho)); infinite when rho >= 1 (saturated). The
  step time and the batch a request sees come from the WattGPU+ ITL model (:mod:`~wattgpu_core.plus_itl`).

Calibration: every run with a measured TTFT that the catalogs can resolve: the store's runs with ``ttft_s`` and
Argonne LLM-Inference-Bench's TTFT table (``data/raw/argonne_llm_inference_bench/Fig_22_all_results_TTFT_ITL.csv``:
1,024-token prompts, bursts of 16, vLLM / TensorRT-LLM / DeepSpeed-MII on A100, H100, GH200; kept out of the runs
table because it has no power). Non-NVIDIA rows (MI250, MI300X, SN40L) are not used. The two parameters are fitted
by robust least squares on ln TTFT. The server queueing terms have no TTFT measurement to be checked against in
the store; they follow the ITL model's step time. Intervals: 80%, from the leave-one-GPU-out ln residuals.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from .catalog import LlmResolver
from .evaluation import interval_quantiles, mdape_pct, pearson_r, splits
from .features import join_specs
from .models import join_extra_specs
from .paths import MANUAL_DIR, MODELS_DIR, RAW_DIR
from .physics import VLLM_PROFILE_TOKENS, DecodeWorkload, StepParameters

ARGONNE_TTFT_FILE = RAW_DIR / "argonne_llm_inference_bench" / "Fig_22_all_results_TTFT_ITL.csv"
MODEL_FILE = "plus_ttft.json"
INTERVAL_LEVEL = 0.8
_START, _LOWER, _UPPER = (np.log(0.5), np.log(0.02)), (np.log(0.02), np.log(1e-5)), (np.log(1.0), np.log(5.0))


# --------------------------------------------------------------------------------------------------------------
# Data
def argonne_ttft_runs(gpus: pd.DataFrame, llms: pd.DataFrame, path: Path = ARGONNE_TTFT_FILE,
                      manual_dir: Path = MANUAL_DIR) -> pd.DataFrame:
    """Argonne's TTFT table as runs: llm_id, gpu_id, framework, scenario ("offline": a burst), input_tokens,
    output_tokens, batch_size (requests submitted together), num_gpus, ttft_s, source_id "argonne". GPU names map
    through ``source_gpu_map.csv`` (its stated assumptions); rows of GPUs it does not map (AMD, SambaNova) are
    dropped."""

    raw = pd.read_csv(path, skip_blank_lines=True)
    raw.columns = [c.strip() for c in raw.columns]
    raw = raw.dropna(subset=["Hardware"])
    gmap = pd.read_csv(Path(manual_dir) / "source_gpu_map.csv")
    gmap = gmap[gmap["source_id"] == "argonne"].set_index("raw_name")["gpu_id"]
    gpu_id = raw["Hardware"].map(gmap)
    keep = gpu_id.notna() & gpu_id.isin(set(gpus["gpu_id"]))
    raw, gpu_id = raw[keep], gpu_id[keep]
    llm_ids, unknown = LlmResolver(llms).resolve_many(raw["Model"].to_numpy(dtype=object))
    ok = np.asarray([i is not None and i == i for i in llm_ids], dtype=bool) if unknown else np.ones(len(raw), bool)
    return pd.DataFrame({
        "llm_id": np.asarray(llm_ids, dtype=object)[ok], "gpu_id": gpu_id.to_numpy(dtype=object)[ok],
        "framework": raw["Framework"].to_numpy(dtype=object)[ok], "scenario": "offline",
        "input_tokens": raw["Input Length"].to_numpy(float)[ok], "output_tokens": raw["Output Length"].to_numpy(
            float)[ok], "batch_size": raw["Batch Size"].to_numpy(float)[ok],
        "num_gpus": raw["Num of Hardware"].to_numpy(float)[ok], "ttft_s": raw["TTFT Latency"].to_numpy(float)[ok],
        "source_id": "argonne",
    })


def ttft_frame(store) -> pd.DataFrame:
    """Every run with a measured TTFT, joined to the catalog specs: the store's runs with ``ttft_s`` (on a server:
    the rate and the batch they report) and Argonne's TTFT table."""

    gpus, llms = store.gpus(), store.llms()
    runs = store.runs()
    runs = runs[pd.to_numeric(runs["ttft_s"], errors="coerce").gt(0)]
    cols = ["llm_id", "gpu_id", "framework", "scenario", "input_tokens", "output_tokens", "batch_size", "num_gpus",
            "request_rate_qps", "ttft_s", "source_id"]
    frame = pd.concat([runs.reindex(columns=cols), argonne_ttft_runs(gpus, llms)], ignore_index=True)
    frame = join_extra_specs(join_specs(frame, gpus, llms), gpus, llms)
    table = gpus.drop_duplicates("gpu_id").set_index("gpu_id")
    for c in ("fp8_tensor_dense_tflops", "interconnect"):
        frame[c] = frame["gpu_id"].map(table[c])
    frame["tensor_parallel"] = frame["num_gpus"].fillna(1.0)
    frame["vendor"] = frame["gpu_id"].map(table["vendor"])
    return frame[frame["vendor"].fillna("NVIDIA").str.upper().eq("NVIDIA")].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------------------
# The model
def _closed(rows: pd.DataFrame) -> np.ndarray:
    return rows["closed_loop"].fillna(False).to_numpy(bool) if "closed_loop" in rows else np.zeros(len(rows), bool)


def _burst(rows: pd.DataFrame) -> np.ndarray:
    return rows["scenario"].astype(str).str.lower().eq("offline").to_numpy() & ~_closed(rows)


@dataclass(frozen=True)
class PlusTtftModel:
    """Fitted TTFT model: prefill ``efficiency`` (share of the dense tensor rate), ``overhead_s``, the 80% interval
    quantiles of ln(measured / predicted) from leave-one-GPU-out, and what it was fitted on."""

    efficiency: float
    overhead_s: float
    ln_quantiles: tuple[float, float] = (float("nan"), float("nan"))
    n_rows: int = 0
    metrics: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def fit(cls, rows: pd.DataFrame) -> PlusTtftModel:
        """Fit efficiency and overhead on ``rows`` (robust least squares on ln TTFT)."""
        # lazy: scipy loads only when a model is fitted, not when the app predicts
        from scipy.optimize import least_squares

        y = np.log(rows["ttft_s"].to_numpy(float))

        def resid(theta):
            eff, over = np.exp(theta)
            return np.log(cls(float(eff), float(over)).predict(rows)) - y

        fit = least_squares(resid, _START, bounds=(_LOWER, _UPPER), loss="soft_l1", f_scale=0.1)
        eff, over = np.exp(fit.x)
        return cls(float(eff), float(over), n_rows=int(len(rows)))

    def service_s(self, rows: pd.DataFrame) -> np.ndarray:
        """Prefill time of one prompt (s): FLOPs at the achieved rate plus the TP all-reduces."""
        work = DecodeWorkload.of(rows)
        return work.prefill_time_s(StepParameters(compute_efficiency=self.efficiency))

    def predict(self, rows: pd.DataFrame, itl_model=None, decode_capacity_tok_s=None) -> np.ndarray:
        """TTFT (s) per row (see the module docstring); ``itl_model`` (a fitted
        :class:`~wattgpu_core.plus_itl.PlusItlModel`) gives the decode step and batch of server rows (without it:
        the plain roofline); ``decode_capacity_tok_s`` (per row) overrides the decode capacity of :meth:`_load`.
        Infinite for a saturated server."""
        if len(rows) == 0:
            return np.zeros(0)
        s = self.service_s(rows)
        burst = _burst(rows)
        b = pd.to_numeric(rows["batch_size"], errors="coerce").to_numpy(float) if "batch_size" in rows \
            else np.full(len(rows), np.nan)
        out = np.where(burst, np.nan_to_num(b, nan=1.0) * s + self.overhead_s, np.nan)
        closed = _closed(rows)
        if closed.any():
            out[closed] = self._closed_loop(rows[closed], s[closed], itl_model)
        srv = ~burst & ~closed
        if srv.any():
            cap = None if decode_capacity_tok_s is None else np.asarray(decode_capacity_tok_s, float)[srv]
            out[srv] = self._server(rows[srv], s[srv], itl_model, cap)
        return out

    def _server(self, rows: pd.DataFrame, s: np.ndarray, itl_model, capacity=None) -> np.ndarray:
        step, rho = self._load(rows, s, itl_model, capacity)
        chunks = np.ceil(DecodeWorkload.of(rows).input_tokens / VLLM_PROFILE_TOKENS)
        with np.errstate(divide="ignore", invalid="ignore"):
            queue = np.where(rho < 1.0, rho * s / (2.0 * (1.0 - rho)), np.inf)
        return s + self.overhead_s + (0.5 + chunks) * step + queue

    def _closed_loop(self, rows: pd.DataFrame, s: np.ndarray, itl_model) -> np.ndarray:
        """TTFT at a fixed concurrency C (``batch_size``; rows ``closed_loop``): a running batch B = min(C, what memory
        holds) decodes at the step time of B; a request lasts T = S + L x step, so requests arrive at lambda = B / T;
        a new one waits for a free slot ((C - B) / lambda), half the step in flight, the steps its prompt shares with
        decoding, and the prefill of others (M/D/1 at rho = lambda S, at most the B - 1 others)."""
        work = DecodeWorkload.of(rows)
        p = self._step_parameters(rows, itl_model)
        r = work.evaluate(p)
        step, batch = r["step_s"], r["batch"]
        conc = np.fmax(pd.to_numeric(rows["batch_size"], errors="coerce").to_numpy(float), 1.0)
        lam = batch / (s + work.output_tokens * step)
        rho = lam * s
        with np.errstate(divide="ignore", invalid="ignore"):
            queue = np.where(rho < 1.0, rho * s / (2.0 * (1.0 - rho)), np.inf)
        queue = np.minimum(queue, np.maximum(batch - 1.0, 0.0) * s)
        slot = np.maximum(conc - batch, 0.0) / lam
        chunks = np.ceil(work.input_tokens / VLLM_PROFILE_TOKENS)
        return s + self.overhead_s + (0.5 + chunks) * step + queue + slot

    @staticmethod
    def _step_parameters(rows: pd.DataFrame, itl_model) -> StepParameters:
        if itl_model is None:
            return StepParameters()
        p = itl_model.calibration.step_parameters(rows)
        h, c, _ = itl_model._stack_parts(rows)
        return replace(p, overhead_s=p.overhead_s + h, per_sequence_s=p.per_sequence_s + c)

    def _load(self, rows: pd.DataFrame, s: np.ndarray, itl_model, capacity=None) -> tuple[np.ndarray, np.ndarray]:
        """(decode step at the batch a request sees, utilisation rho) of server rows. rho = lambda x S (the prefill
        share of GPU time) + lambda x output tokens / decode capacity (the share of the most tokens/s the GPU decodes
        at its largest batch): prefill and decode compete for the GPU, and TTFT grows without bound as either
        saturates it."""
        work = DecodeWorkload.of(rows)
        p = self._step_parameters(rows, itl_model)
        step = work.evaluate(p)["step_s"]
        own = work.batch_cap / work.step_time_s(work.batch_cap, p)
        capacity = own if capacity is None else np.where(np.isfinite(capacity), capacity, own)
        lam = work.request_rate_qps
        return step, lam * s + lam * work.output_tokens / capacity

    def utilisation(self, rows: pd.DataFrame, itl_model=None) -> np.ndarray:
        """rho of each server row (>= 1: saturated; see :meth:`_load`)."""
        return self._load(rows, self.service_s(rows), itl_model)[1]

    def capacity_tok_s(self, rows: pd.DataFrame, decode_capacity_tok_s) -> np.ndarray:
        """Output tokens/s a replica sustains for this traffic's prompts (rho = 1): L / (S + L / decode capacity),
        each request costing its prompt's prefill S and its L output tokens at the decode capacity."""
        s = self.service_s(rows)
        out = DecodeWorkload.of(rows).output_tokens
        return out / (s + out / np.asarray(decode_capacity_tok_s, float))

    def interval(self, pred) -> tuple[np.ndarray, np.ndarray]:
        """80% interval bounds around ``pred``."""
        lo, hi = self.ln_quantiles
        pred = np.asarray(pred, float)
        return pred * np.exp(lo), pred * np.exp(hi)

    def to_dict(self) -> dict:
        return {"kind": "wattgpu+ ttft", "efficiency": self.efficiency, "overhead_s": self.overhead_s,
                "ln_quantiles": list(self.ln_quantiles), "interval_level": INTERVAL_LEVEL, "n_rows": self.n_rows,
                "metrics": dict(self.metrics)}

    @classmethod
    def from_dict(cls, d: Mapping) -> PlusTtftModel:
        if d.get("kind") != "wattgpu+ ttft":
            raise ValueError("not a WattGPU+ TTFT model")
        return cls(float(d["efficiency"]), float(d["overhead_s"]), tuple(float(v) for v in d["ln_quantiles"]),
                   int(d.get("n_rows", 0)), MappingProxyType(dict(d.get("metrics") or {})))


# --------------------------------------------------------------------------------------------------------------
# Evaluation, training, files
def ttft_evaluation(frame: pd.DataFrame) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Out-of-fold TTFT predictions by the evaluation's splits (CV: grouped by LLM and GPU, LOGO, LOLO), each fold
    fitted on the other rows only. Returns records (target "ttft", model "WattGPU+", scenario "burst" for the
    closed batches / "server", strategy, mdape_pct, pearson_r, n_rows, and for LOGO the coverage of the 80%
    intervals with quantiles calibrated without the held-out GPU) and the out-of-fold predictions per strategy."""

    y = frame["ttft_s"].to_numpy(float)
    records, oof = [], {}
    for strategy in ("CV", "LOGO", "LOLO"):
        pred = np.full(len(frame), np.nan)
        for tr, te in splits(frame, strategy):
            pred[te] = PlusTtftModel.fit(frame.iloc[tr]).predict(frame.iloc[te])
        oof[strategy] = pred
    coverage = np.full(len(frame), np.nan)
    gpu = frame["gpu_id"].astype(str).to_numpy()
    for g in np.unique(gpu):
        others = gpu != g
        # quantiles from a leave-one-GPU-out run without g (nested): refit on the other GPUs' own LOGO residuals
        inner = np.full(others.sum(), np.nan)
        sub = frame[others].reset_index(drop=True)
        for tr, te in splits(sub, "LOGO"):
            inner[te] = PlusTtftModel.fit(sub.iloc[tr]).predict(sub.iloc[te])
        q = interval_quantiles(y[others], inner, np.full(others.sum(), "all"), INTERVAL_LEVEL).get("all")
        if q is None:
            continue
        p = oof["LOGO"][~others]
        coverage[~others] = (y[~others] >= p * np.exp(q[0])) & (y[~others] <= p * np.exp(q[1]))
    scen = np.where(_burst(frame), "burst", "server")
    for strategy, pred in oof.items():
        for s in np.unique(scen):
            m = scen == s
            rec = {"target": "ttft", "model": "WattGPU+", "scenario": str(s), "strategy": strategy,
                   "mdape_pct": mdape_pct(y[m], pred[m]), "pearson_r": pearson_r(y[m], pred[m]),
                   "n_rows": int(m.sum()), "n_gpus": int(frame.loc[m, "gpu_id"].nunique()),
                   "n_llms": int(frame.loc[m, "llm_id"].nunique())}
            if strategy == "LOGO":
                cov = coverage[m]
                rec["interval_coverage_pct"] = float(100 * np.nanmean(cov)) if np.isfinite(cov).any() else None
            records.append(rec)
    return records, oof


def train_ttft(store, models_dir: Path = MODELS_DIR) -> PlusTtftModel:
    """Fit the TTFT model on every TTFT run, with LOGO interval quantiles and the CV / LOGO / LOLO MdAPE, and write
    ``models/plus_ttft.json`` (atomically)."""

    frame = ttft_frame(store)
    records, oof = ttft_evaluation(frame)
    q = interval_quantiles(frame["ttft_s"].to_numpy(float), oof["LOGO"], np.full(len(frame), "all"), INTERVAL_LEVEL)["all"]
    model = PlusTtftModel.fit(frame)
    metrics = {f"{r['scenario']}_{r['strategy']}_mdape_pct": r["mdape_pct"] for r in records}
    model = replace(model, ln_quantiles=(float(q[0]), float(q[1])), metrics=MappingProxyType(metrics))
    path = Path(models_dir) / MODEL_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(model.to_dict(), indent=1, allow_nan=False) + "\n")
    tmp.replace(path)
    return model


def load_ttft(models_dir: Path = MODELS_DIR) -> PlusTtftModel | None:
    """The committed TTFT model, or None when ``models/plus_ttft.json`` is absent."""
    path = Path(models_dir) / MODEL_FILE
    if not path.is_file():
        return None
    return PlusTtftModel.from_dict(json.loads(path.read_text()))
