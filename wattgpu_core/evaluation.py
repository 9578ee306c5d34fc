"""Evaluation: the paper's protocol (grouped splits, out-of-fold predictions, metrics, baselines) for any model set.

Splits (paper-spec §4): ``CV`` is 5-fold GroupKFold with every repeat and scenario of an (LLM, GPU) pair in one
fold; ``LOGO`` leaves one GPU out; ``LOLO`` leaves one LLM out. Every prediction is out-of-fold, rows are single
runs. Metrics per scenario (``offline``; ``server`` pools server_low and server_high): MdAPE, Pearson r, GPU and
LLM Kendall tau (mean over groups of repeat-averaged values), and top-1 / top-3 GPU-choice accuracy (how often the
GPU with the lowest true value per LLM and scenario is the predicted lowest / among the predicted three lowest).
Baselines: TDP, load-scaled TDP (power) and roofline ITL, computed on all rows.

Model sets that learn from more than the paper's rows (``uses_aux``: WattGPU+) get the auxiliary rows filtered per
fold (:func:`aux_allowed`: no fold sees its test group), and every metric is computed on the paper's rows. Model sets
with prediction intervals (``interval_level``) have their LOGO coverage measured by nesting
(:func:`nested_logo_intervals`).

``paper_compat=True`` uses the paper's own GPU feature values and reproduces its duplicate-TDP quirk: the GPU whose
TDP repeats an earlier GPU's (H100 NVL, 400 W like the A100) is left out of every power metric. Without it, our
catalog's specs are used and every GPU counts. Folds run in a thread pool (XGBoost releases the GIL), one thread
per fit; :class:`ReferencePaperModelSet` (one sklearn Pipeline per fold) and :func:`reference_metrics` (groupby
loops with scipy) are the straightforward versions the benchmark times and the tests compare against.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd

from .features import SCENARIO_POOL
from .models import (
    PAPER_FEATURES,
    PAPER_PARAMS,
    PAPER_TARGET_TRANSFORMS,
    TARGET_COLUMNS,
    ModelSet,
    auxiliary_frame,
    decode_target,
    encode_target,
    get_model_set,
    target_rows,
    training_frame,
)

STRATEGIES = ("CV", "LOGO", "LOLO")
CV_FOLDS = 5
SCENARIOS = ("offline", "server")
LOAD_SCALE = MappingProxyType({"offline": 0.9, "server_low": 0.2, "server_high": 0.6})
ROOFLINE_BATCH = MappingProxyType({"offline": 256.0, "server_low": 1.0, "server_high": 1.0})
BASELINES = MappingProxyType({"power": ("TDP", "LS-TDP"), "itl": ("Roofline",)})
ITL_DEFINITION_LABELS = MappingProxyType({
    "offline_duration_per_token": "duration / output tokens (1/throughput)",
    "server_e2e_per_token": "mean end-to-end latency per output token, TTFT included",
    "server_decode_per_request": "per-request (e2e - TTFT)/(tokens - 1), the paper's exact definition",
})

# The paper's published Table 2 (power) and Table 3 (ITL): (MdAPE %, r, GPU tau, LLM tau).
PAPER_RESULTS: Mapping[tuple[str, str, str, str], tuple[float, float, float, float]] = MappingProxyType({
    ("power", "XGB", "offline", "CV"): (1.6, 0.992, 0.96, 0.44),
    ("power", "XGB", "offline", "LOGO"): (3.4, 0.988, 0.95, 0.40),
    ("power", "XGB", "offline", "LOLO"): (2.0, 0.979, 0.97, 0.33),
    ("power", "XGB", "server", "CV"): (5.5, 0.981, 0.86, 0.68),
    ("power", "XGB", "server", "LOGO"): (13.5, 0.965, 0.76, 0.72),
    ("power", "XGB", "server", "LOLO"): (6.7, 0.955, 0.85, 0.54),
    ("power", "LS-TDP", "offline", "-"): (7.2, 0.916, 0.96, math.nan),
    ("power", "LS-TDP", "server", "-"): (26.0, 0.779, 0.60, math.nan),
    ("power", "TDP", "offline", "-"): (4.4, 0.916, 0.96, math.nan),
    ("power", "TDP", "server", "-"): (190.1, 0.590, 0.60, math.nan),
    ("itl", "XGB", "offline", "CV"): (12.8, 0.813, 0.86, 0.81),
    ("itl", "XGB", "offline", "LOGO"): (24.9, 0.727, 0.72, 0.83),
    ("itl", "XGB", "offline", "LOLO"): (15.6, 0.808, 0.97, 0.66),
    ("itl", "XGB", "server", "CV"): (4.9, 0.991, 0.94, 0.89),
    ("itl", "XGB", "server", "LOGO"): (8.5, 0.972, 0.78, 0.88),
    ("itl", "XGB", "server", "LOLO"): (5.6, 0.990, 0.97, 0.88),
    ("itl", "Roofline", "offline", "-"): (80.2, 0.545, 0.82, 0.61),
    ("itl", "Roofline", "server", "-"): (29.6, 0.991, 0.88, 0.91),
})

Progress = Callable[[float, str], None]


# --------------------------------------------------------------------------------------------------------------
# Splits
def split_groups(frame: pd.DataFrame, strategy: str) -> np.ndarray:
    """The group label of each row for ``strategy``: "llm|gpu" (CV), the GPU (LOGO) or the LLM (LOLO)."""
    if strategy == "CV":
        gpu = frame["gpu_label"] if "gpu_label" in frame.columns else frame["gpu_id"]
        return (frame["llm_id"].astype(str) + "|" + gpu.astype(str)).to_numpy()
    if strategy == "LOGO":
        return frame["gpu_id"].astype(str).to_numpy()
    if strategy == "LOLO":
        return frame["llm_id"].astype(str).to_numpy()
    raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")


def splits(frame: pd.DataFrame, strategy: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train positions, test positions) per fold; a group is never on both sides."""
    from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

    groups = split_groups(frame, strategy)
    splitter = GroupKFold(n_splits=CV_FOLDS) if strategy == "CV" else LeaveOneGroupOut()
    return [(tr, te) for tr, te in splitter.split(np.zeros(len(frame)), groups=groups)]


# --------------------------------------------------------------------------------------------------------------
# Metrics
def mdape_pct(y_true, y_pred) -> float:
    """Median absolute percentage error (%) over rows with |y| > 1e-9."""
    y, p = np.asarray(y_true, float), np.asarray(y_pred, float)
    ok = np.abs(y) > 1e-9
    if not ok.any():
        return math.nan
    return float(np.median(np.abs(p[ok] - y[ok]) / np.abs(y[ok])) * 100.0)


def pearson_r(y_true, y_pred) -> float:
    """Pearson correlation; NaN when either side is constant or there are fewer than 2 rows."""
    y, p = np.asarray(y_true, float), np.asarray(y_pred, float)
    if len(y) < 2 or np.ptp(y) == 0 or np.ptp(p) == 0:
        return math.nan
    return float(np.corrcoef(y, p)[0, 1])


@dataclass(frozen=True)
class _Averaged:
    """y_true and y_pred averaged over repeats per (LLM, scenario_detail, GPU), with integer codes per cell."""

    llm: np.ndarray
    scenario: np.ndarray
    gpu: np.ndarray
    y: np.ndarray
    p: np.ndarray

    @classmethod
    def of(cls, frame: pd.DataFrame) -> _Averaged:
        llm, _ = pd.factorize(frame["llm_id"], sort=True)
        scen, scens = pd.factorize(frame["scenario_detail"], sort=True)
        gpu, gpus = pd.factorize(frame["gpu_id"], sort=True)
        cell = (llm.astype(np.int64) * len(scens) + scen) * max(len(gpus), 1) + gpu
        cells, inverse = np.unique(cell, return_inverse=True)
        counts = np.bincount(inverse)
        y = np.bincount(inverse, weights=frame["y_true"].to_numpy(float)) / counts
        p = np.bincount(inverse, weights=frame["y_pred"].to_numpy(float)) / counts
        n_gpu, n_scen = max(len(gpus), 1), max(len(scens), 1)
        return cls(cells // n_gpu // n_scen, (cells // n_gpu) % n_scen, cells % n_gpu, y, p)

    def groups(self, by: str) -> list[np.ndarray]:
        """Cell positions per (LLM, scenario) group (``by="llm"``) or per (GPU, scenario) group (``by="gpu"``)."""
        key = (self.llm if by == "llm" else self.gpu) * (int(self.scenario.max(initial=0)) + 1) + self.scenario
        order = np.argsort(key, kind="stable")
        bounds = np.flatnonzero(np.diff(key[order])) + 1
        return np.split(order, bounds) if len(order) else []


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b (ties handled as scipy's ``kendalltau``): sum(sx sy) / sqrt(sum(sx^2) sum(sy^2))."""
    i, j = np.triu_indices(len(x), k=1)
    sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    den = np.sqrt(np.sum(sx * sx) * np.sum(sy * sy))
    return float(np.sum(sx * sy) / den) if den > 0 else math.nan


def mean_kendall_tau(frame: pd.DataFrame, rank: str, averaged: _Averaged | None = None) -> float:
    """Mean Kendall tau-b of true vs predicted, ranking ``rank`` ("gpu_id" or "llm_id") within each group.

    Values are first averaged over repeats per (LLM, scenario, GPU). Groups are (LLM, scenario) when ranking GPUs
    and (GPU, scenario) when ranking LLMs; groups with fewer than 2 items or a constant side are skipped.
    """
    avg = _Averaged.of(frame) if averaged is None else averaged
    taus = []
    for g in avg.groups("llm" if rank == "gpu_id" else "gpu"):
        y, p = avg.y[g], avg.p[g]
        if len(y) < 2 or np.ptp(y) == 0 or np.ptp(p) == 0:
            continue
        taus.append(kendall_tau_b(y, p))
    return float(np.mean(taus)) if taus else math.nan


def gpu_choice_accuracy(frame: pd.DataFrame, k: int = 1, averaged: _Averaged | None = None) -> float:
    """Share (%) of (LLM, scenario) groups whose truly lowest GPU is among the ``k`` predicted lowest.

    Values are averaged over repeats first; groups with fewer than 2 GPUs are skipped.
    """
    avg = _Averaged.of(frame) if averaged is None else averaged
    hits = [np.argmin(avg.y[g]) in np.argsort(avg.p[g], kind="stable")[:k] for g in avg.groups("llm") if len(g) >= 2]
    return 100.0 * float(np.mean(hits)) if hits else math.nan


def metrics(frame: pd.DataFrame) -> dict:
    """All metrics of one (target, model, scenario, strategy) cell from rows with y_true and y_pred."""
    y, p = frame["y_true"].to_numpy(float), frame["y_pred"].to_numpy(float)
    avg = _Averaged.of(frame)
    return {"mdape_pct": mdape_pct(y, p), "pearson_r": pearson_r(y, p),
            "gpu_tau": mean_kendall_tau(frame, "gpu_id", avg), "llm_tau": mean_kendall_tau(frame, "llm_id", avg),
            "top1_pct": gpu_choice_accuracy(frame, 1, avg), "top3_pct": gpu_choice_accuracy(frame, 3, avg),
            "n_rows": int(len(frame))}


def reference_metrics(frame: pd.DataFrame) -> dict:
    """:func:`metrics` computed the straightforward way (pandas groupby loops, scipy's ``pearsonr`` and
    ``kendalltau``); the benchmark's reference uses it, and a test checks that both give the same numbers."""
    from scipy.stats import kendalltau, pearsonr

    y, p = frame["y_true"].to_numpy(float), frame["y_pred"].to_numpy(float)
    avg = frame.groupby(["llm_id", "scenario_detail", "gpu_id"])[["y_true", "y_pred"]].mean().reset_index()

    def mean_tau(by):
        taus = []
        for _, g in avg.groupby(by):
            if len(g) < 2 or g["y_true"].nunique() < 2 or g["y_pred"].nunique() < 2:
                continue
            taus.append(kendalltau(g["y_true"], g["y_pred"]).statistic)
        return float(np.mean(taus)) if taus else math.nan

    def top(k):
        hits = []
        for _, g in avg.groupby(["llm_id", "scenario_detail"]):
            if len(g) < 2:
                continue
            best = g.loc[g["y_true"].idxmin(), "gpu_id"]
            hits.append(best in set(g.sort_values("y_pred", kind="stable")["gpu_id"].head(k)))
        return 100.0 * float(np.mean(hits)) if hits else math.nan

    constant = len(y) < 2 or np.ptp(y) == 0 or np.ptp(p) == 0
    return {"mdape_pct": mdape_pct(y, p), "pearson_r": math.nan if constant else float(pearsonr(y, p)[0]),
            "gpu_tau": mean_tau(["llm_id", "scenario_detail"]), "llm_tau": mean_tau(["gpu_id", "scenario_detail"]),
            "top1_pct": top(1), "top3_pct": top(3), "n_rows": int(len(frame))}


# --------------------------------------------------------------------------------------------------------------
# Baselines
def baseline_predictions(frame: pd.DataFrame, name: str) -> np.ndarray:
    """TDP (W), load-scaled TDP (W: 0.9 / 0.2 / 0.6 x TDP) or roofline ITL (s: 2N/BW/B, B = 256 offline, 1 server)."""
    scen = frame["scenario_detail"]
    if name == "TDP":
        return frame["tdp_w"].to_numpy(float)
    if name == "LS-TDP":
        return frame["tdp_w"].to_numpy(float) * scen.map(LOAD_SCALE).to_numpy(float)
    if name == "Roofline":
        return frame["bandwidth_latency_s"].to_numpy(float) / scen.map(ROOFLINE_BATCH).to_numpy(float)
    raise ValueError(name)


def quirk_excluded_gpus(frame: pd.DataFrame) -> tuple[str, ...]:
    """GPUs the paper's ``set_index(gpu)[TDP].drop_duplicates()`` loses: a TDP value already seen, in row order."""
    first = frame.drop_duplicates("gpu_id")[["gpu_id", "tdp_w"]]
    return tuple(first.loc[first["tdp_w"].duplicated(), "gpu_id"].tolist())


# --------------------------------------------------------------------------------------------------------------
# The sklearn reference (the straightforward implementation of the same protocol)
@dataclass(frozen=True)
class _PipelineModel:
    target: str
    pipeline: object
    spec_columns: tuple[str, ...]
    target_transform: str

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        raw = self.pipeline.predict(frame[list(self.spec_columns)])
        return decode_target(self.target_transform, raw, frame)


def reference_pipeline(target: str):
    """The paper's model as one sklearn Pipeline: ColumnTransformer preprocessing + XGBRegressor (defaults)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder, StandardScaler
    from xgboost import XGBRegressor

    spec = PAPER_FEATURES[target]
    numeric = Pipeline([("imputer", SimpleImputer(strategy="mean")), ("scaler", StandardScaler())])
    categorical = Pipeline([("imputer", SimpleImputer(strategy="most_frequent")),
                            ("encoder", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1))])
    pre = ColumnTransformer([("num", numeric, list(spec.numeric)), ("cat", categorical, list(spec.categorical))])
    return Pipeline([("pre", pre), ("model", XGBRegressor(**PAPER_PARAMS[target]))])


class ReferencePaperModelSet(ModelSet):
    """The paper's models refitted per fold as plain sklearn Pipelines with default settings (the benchmark's
    reference; the fast :class:`~wattgpu_core.models.PaperModelSet` must give the same predictions)."""

    name = "paper-reference"
    label = "XGB"

    def features(self, target: str) -> tuple[str, ...]:
        return PAPER_FEATURES[target].columns

    def fit(self, target: str, train: pd.DataFrame, *, n_threads: int = 1, seed: int = 0) -> _PipelineModel:
        spec = PAPER_FEATURES[target]
        transform = PAPER_TARGET_TRANSFORMS[target]
        pipe = reference_pipeline(target)
        x = train[list(spec.columns)].copy()
        for c in spec.categorical:
            x[c] = x[c].astype(object)
        pipe.fit(x, encode_target(transform, train))
        return _PipelineModel(target, pipe, spec.columns, transform)


# --------------------------------------------------------------------------------------------------------------
# Out-of-fold predictions
@dataclass(frozen=True)
class _Job:
    target: str
    strategy: str
    fold: int
    train: np.ndarray
    test: np.ndarray


_VARIANT_SUFFIX = re.compile(r"(-(instruct|it|chat|hf|base))+$", re.IGNORECASE)


def llm_weights_key(llm_id) -> str:
    """The LLM with its base / instruction-tuned variant and the "Meta-" prefix dropped, lower case: variants
    share their architecture, so an unseen-LLM split holds them out together ("meta-llama/Llama-3.1-8B" and
    "meta-llama/Meta-Llama-3.1-8B-Instruct" give the same key)."""
    org, _, name = str(llm_id).rpartition("/")
    name = _VARIANT_SUFFIX.sub("", re.sub(r"^meta-", "", name, flags=re.IGNORECASE))
    return f"{org}/{name}".lower()


def aux_allowed(aux: pd.DataFrame, rows: pd.DataFrame, test: np.ndarray, strategy: str) -> np.ndarray:
    """Positions of the auxiliary rows a fold may learn from: every row, of every source, outside the fold's test
    groups (the test (LLM, GPU) pairs in CV, the held-out GPU in LOGO, the held-out LLM in LOLO, with its base
    and instruction-tuned variants)."""
    held_out = np.unique(split_groups(rows.iloc[test], strategy))
    keep = ~np.isin(split_groups(aux, strategy), held_out)
    if strategy == "LOLO":
        keys = {llm_weights_key(g) for g in held_out}
        keep &= ~aux["llm_id"].map(llm_weights_key).isin(keys).to_numpy()
    return np.flatnonzero(keep)


def out_of_fold(
    model_set: ModelSet,
    rows_by_target: Mapping[str, pd.DataFrame],
    strategies: Iterable[str] = STRATEGIES,
    *,
    aux_by_target: Mapping[str, pd.DataFrame] | None = None,
    n_jobs: int | None = None,
    progress: Progress | None = None,
    progress_span: tuple[float, float] = (0.0, 1.0),
) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """Out-of-fold predictions of ``model_set`` for every target and strategy: {(target, strategy): (pred, fold)}.

    Each fold's model is fitted on that fold's training rows only (preprocessing included), plus, for model sets
    with ``uses_aux``, the auxiliary rows outside the fold's test groups (:func:`aux_allowed`). Folds run in a pool
    of ``n_jobs`` threads (default: CPU count), each fit single-threaded; ``n_jobs=1`` runs them in order here.
    """
    aux_by_target = aux_by_target if model_set.uses_aux and aux_by_target else {}
    jobs = []
    for target, rows in rows_by_target.items():
        for strategy in strategies:
            for i, (tr, te) in enumerate(splits(rows, strategy)):
                jobs.append(_Job(target, strategy, i, tr, te))
    jobs.sort(key=lambda j: -len(j.train) * (2 if j.target == "power" else 1))  # largest first: better balance
    out = {(t, s): (np.full(len(r), np.nan), np.full(len(r), -1)) for t, r in rows_by_target.items()
           for s in strategies}
    lo, hi = progress_span

    prepared = {t: model_set.prepare(t, rows, aux_by_target.get(t)) for t, rows in rows_by_target.items()}

    def run(job: _Job):
        aux = aux_by_target.get(job.target)
        kwargs = {} if aux is None else {"aux_rows": aux_allowed(aux, rows_by_target[job.target], job.test,
                                                                  job.strategy)}
        return job, prepared[job.target].fit_predict(job.train, job.test, n_threads=1, **kwargs)

    def collect(job: _Job, pred: np.ndarray, done: int) -> None:
        values, folds = out[(job.target, job.strategy)]
        values[job.test] = pred
        folds[job.test] = job.fold
        if progress:
            progress(lo + (hi - lo) * done / len(jobs),
                     f"{model_set.label} {job.target} {job.strategy} fold {job.fold + 1}")

    n_jobs = n_jobs or os.cpu_count() or 1
    if n_jobs == 1:
        for done, job in enumerate(jobs, 1):
            collect(*run(job), done)
    else:
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            futures = [pool.submit(run, job) for job in jobs]
            for done, fut in enumerate(as_completed(futures), 1):
                collect(*fut.result(), done)
    return out


# --------------------------------------------------------------------------------------------------------------
# Prediction intervals
def interval_quantiles(y_true, y_pred, pools, level: float) -> dict[str, tuple[float, float]]:
    """Per scenario pool, the (lower, upper) quantiles of ln(y / prediction) that bound a central ``level`` share
    of the residuals (split-conformal, with the finite-sample correction); intervals are
    [prediction x exp(lower), prediction x exp(upper)]."""
    r = np.log(np.asarray(y_true, float) / np.asarray(y_pred, float))
    pools = np.asarray(pools, dtype=object)
    out = {}
    for pool in sorted(set(pools[np.isfinite(r)])):
        v = np.sort(r[(pools == pool) & np.isfinite(r)])
        n = len(v)
        alpha = (1.0 - level) / 2.0
        k_lo = max(int(np.floor(alpha * (n + 1))) - 1, 0)
        k_hi = min(int(np.ceil((1.0 - alpha) * (n + 1))) - 1, n - 1)
        out[str(pool)] = (float(v[k_lo]), float(v[k_hi]))
    return out


def apply_intervals(y_pred, pools, quantiles: Mapping[str, tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) bounds of the intervals for predictions ``y_pred`` in scenario pools ``pools``."""
    y_pred = np.asarray(y_pred, float)
    pools = np.asarray(pools, dtype=object)
    q_lo = np.array([quantiles.get(str(p), (np.nan, np.nan))[0] for p in pools], dtype=float)
    q_hi = np.array([quantiles.get(str(p), (np.nan, np.nan))[1] for p in pools], dtype=float)
    return y_pred * np.exp(q_lo), y_pred * np.exp(q_hi)


def nested_logo_intervals(
    model_set: ModelSet,
    rows_by_target: Mapping[str, pd.DataFrame],
    logo_pred: Mapping[str, np.ndarray],
    *,
    level: float,
    aux_by_target: Mapping[str, pd.DataFrame] | None = None,
    n_jobs: int | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Honest intervals for the leave-one-GPU-out predictions: {target: (lower, upper)} per row.

    For each held-out GPU g, the interval quantiles come from a leave-one-GPU-out run on the other GPUs only
    (every inner model trained without g and without its own held-out GPU; auxiliary rows of both removed), so g's
    coverage is measured with intervals that never saw g, exactly as a GPU outside the training data is served.
    """
    aux_by_target = aux_by_target if model_set.uses_aux and aux_by_target else {}
    jobs = []
    for target, rows in rows_by_target.items():
        gpu = rows["gpu_id"].astype(str).to_numpy()
        for g in np.unique(gpu):
            for h in np.unique(gpu[gpu != g]):
                jobs.append((target, g, h, np.flatnonzero((gpu != g) & (gpu != h)), np.flatnonzero(gpu == h)))
    prepared = {t: model_set.prepare(t, rows, aux_by_target.get(t)) for t, rows in rows_by_target.items()}
    inner: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}

    def run(job):
        target, g, h, train, test = job
        aux = aux_by_target.get(target)
        kwargs = {}
        if aux is not None:
            kwargs["aux_rows"] = np.flatnonzero(~aux["gpu_id"].astype(str).isin([g, h]).to_numpy())
        return job, prepared[target].fit_predict(train, test, n_threads=1, **kwargs)

    n_jobs = n_jobs or os.cpu_count() or 1
    if n_jobs == 1:
        results = [run(j) for j in jobs]
    else:
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            results = list(pool.map(run, jobs))
    for (target, g, _, _, test), pred in results:
        inner.setdefault((target, g), []).append((test, pred))
    out = {}
    for target, rows in rows_by_target.items():
        y = rows[TARGET_COLUMNS[target]].to_numpy(float)
        pools = rows["scenario_detail"].map(SCENARIO_POOL).to_numpy(dtype=object)
        gpu = rows["gpu_id"].astype(str).to_numpy()
        lo, hi = np.full(len(rows), np.nan), np.full(len(rows), np.nan)
        for g in np.unique(gpu):
            parts = inner.get((target, g), [])
            if not parts:
                continue
            idx = np.concatenate([t for t, _ in parts])
            pred = np.concatenate([p for _, p in parts])
            q = interval_quantiles(y[idx], pred, pools[idx], level)
            mine = gpu == g
            lo[mine], hi[mine] = apply_intervals(logo_pred[target][mine], pools[mine], q)
        out[target] = (lo, hi)
    return out


def interval_metrics(pred_frame: pd.DataFrame) -> dict:
    """Coverage (%) of the intervals and their median width (% of the prediction) on counted rows."""
    ok = pred_frame["counted"].to_numpy() & pred_frame["y_lo"].notna().to_numpy()
    part = pred_frame[ok]
    if part.empty:
        return {"interval_coverage_pct": math.nan, "interval_width_pct": math.nan}
    y = part["y_true"].to_numpy(float)
    inside = (part["y_lo"].to_numpy(float) <= y) & (y <= part["y_hi"].to_numpy(float))
    width = (part["y_hi"] - part["y_lo"]).to_numpy(float) / part["y_pred"].to_numpy(float)
    return {"interval_coverage_pct": 100.0 * float(inside.mean()), "interval_width_pct": 100.0 * float(
        np.median(width))}


# --------------------------------------------------------------------------------------------------------------
# The whole protocol
@dataclass(frozen=True)
class EvaluationResult:
    """Records (one per target x model x scenario x strategy) and the per-row predictions behind them.

    ``predictions[(model, target, strategy)]`` has one row per run: run_id, llm_id, gpu_id, scenario,
    scenario_detail, fold, y_true, y_pred, counted (False for rows the paper-compat quirk leaves out) and
    itl_definition. Baselines use strategy "-".
    """

    mode: str
    paper_compat: bool
    records: tuple[dict, ...]
    predictions: Mapping[tuple[str, str, str], pd.DataFrame]
    excluded_gpus: tuple[str, ...] = ()
    itl_definitions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    seconds: float = 0.0

    def records_frame(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.records))

    def record(self, target: str, model: str, scenario: str, strategy: str) -> dict:
        for r in self.records:
            if (r["target"], r["model"], r["scenario"], r["strategy"]) == (target, model, scenario, strategy):
                return r
        raise KeyError((target, model, scenario, strategy))


def _prediction_frame(rows: pd.DataFrame, target: str, pred: np.ndarray, fold: np.ndarray,
                      excluded: tuple[str, ...]) -> pd.DataFrame:
    out = rows[["run_id", "llm_id", "gpu_id", "scenario", "scenario_detail", "itl_definition"]].copy()
    out["scenario"] = out["scenario_detail"].map(SCENARIO_POOL)
    out["fold"] = fold
    out["y_true"] = rows[TARGET_COLUMNS[target]].to_numpy(float)
    out["y_pred"] = pred
    out["counted"] = ~(out["gpu_id"].isin(excluded)) if target == "power" else True
    return out.reset_index(drop=True)


def _records_for(pred_frame: pd.DataFrame, target: str, model: str, strategy: str, mode: str,
                 metrics_fn: Callable[[pd.DataFrame], dict] = metrics, interval_level: float | None = None
                 ) -> list[dict]:
    records = []
    counted = pred_frame[pred_frame["counted"]]
    for scenario in SCENARIOS:
        part = counted[counted["scenario"] == scenario]
        if part.empty:
            continue
        defs = sorted(part["itl_definition"].dropna().unique().tolist()) if target == "itl" else []
        rec = {"target": target, "model": model, "scenario": scenario, "strategy": strategy, **metrics_fn(part),
               "mode": mode, "itl_definition": ";".join(defs) or None}
        if interval_level is not None and "y_lo" in part:
            rec.update({"interval_level": interval_level, **interval_metrics(part)})
        records.append(rec)
    return records


def evaluate_frame(*args, **kwargs) -> EvaluationResult:
    """The protocol on a prepared training frame (see :func:`run_evaluation` and :func:`_evaluate_frame`).

    BLAS runs single-threaded meanwhile: the fits solve many small least-squares problems, for which BLAS threads
    only contend with the fold threads (measured: several times slower on a busy 2-core machine)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _evaluate_frame(*args, **kwargs)


def _evaluate_frame(
    frame: pd.DataFrame,
    paper_compat: bool,
    model_sets: Iterable[ModelSet | str] = ("paper",),
    *,
    aux: pd.DataFrame | None = None,
    targets: Iterable[str] = ("power", "itl"),
    strategies: Iterable[str] = STRATEGIES,
    baselines: bool = True,
    intervals: bool = True,
    n_jobs: int | None = None,
    progress: Progress | None = None,
    metrics_fn: Callable[[pd.DataFrame], dict] = metrics,
) -> EvaluationResult:
    """The protocol on a prepared training frame (see :func:`run_evaluation`).

    ``aux`` (:func:`~wattgpu_core.models.auxiliary_frame`) goes to the model sets with ``uses_aux``, filtered per
    fold. With ``intervals``, the LOGO records of model sets with an ``interval_level`` carry the coverage of their
    intervals on the held-out GPUs (:func:`nested_logo_intervals`).
    """
    start = time.perf_counter()
    targets, strategies = tuple(targets), tuple(strategies)
    sets = [get_model_set(m) if isinstance(m, str) else m for m in model_sets]
    mode = "paper-compat" if paper_compat else "all-gpus"
    excluded = quirk_excluded_gpus(frame) if paper_compat else ()
    records, predictions = [], {}
    n = max(len(sets), 1)
    for k, model_set in enumerate(sets):
        rows_by_target = {t: target_rows(frame, t, model_set.features(t)) for t in targets
                          if t in model_set.targets}
        aux_by_target = {t: aux for t in rows_by_target} if aux is not None and model_set.uses_aux else None
        oof = out_of_fold(model_set, rows_by_target, strategies, aux_by_target=aux_by_target, n_jobs=n_jobs,
                          progress=progress, progress_span=(k / n * 0.97, (k + 1) / n * 0.97))
        bounds = {}
        level = model_set.interval_level
        if intervals and level is not None and "LOGO" in strategies:
            if progress:
                progress((k + 1) / n * 0.97, f"{model_set.label} interval coverage (nested LOGO)")
            bounds = nested_logo_intervals(model_set, rows_by_target,
                                           {t: oof[(t, "LOGO")][0] for t in rows_by_target}, level=level,
                                           aux_by_target=aux_by_target, n_jobs=n_jobs)
        for (target, strategy), (pred, fold) in oof.items():
            pf = _prediction_frame(rows_by_target[target], target, pred, fold, excluded)
            with_intervals = strategy == "LOGO" and target in bounds
            if with_intervals:
                pf["y_lo"], pf["y_hi"] = bounds[target]
            predictions[(model_set.label, target, strategy)] = pf
            records += _records_for(pf, target, model_set.label, strategy, mode, metrics_fn,
                                    level if with_intervals else None)
    if baselines:
        for target in targets:
            rows = target_rows(frame, target, ("tdp_w", "bandwidth_latency_s", "scenario_detail"))
            for name in BASELINES[target]:
                pf = _prediction_frame(rows, target, baseline_predictions(rows, name), np.full(len(rows), -1),
                                       excluded)
                predictions[(name, target, "-")] = pf
                records += _records_for(pf, target, name, "-", mode, metrics_fn)
    itl_rows = frame[frame["itl_s"].notna()]
    defs = {s: tuple(sorted(itl_rows.loc[itl_rows["scenario_detail"].map(SCENARIO_POOL) == s, "itl_definition"]
                            .dropna().unique().tolist())) for s in SCENARIOS}
    if progress:
        progress(1.0, "done")
    return EvaluationResult(mode, paper_compat, tuple(records), MappingProxyType(predictions), excluded,
                            MappingProxyType(defs), time.perf_counter() - start)


def run_evaluation(
    store,
    paper_compat: bool = False,
    model_sets: Iterable[ModelSet | str] = ("paper",),
    *,
    targets: Iterable[str] = ("power", "itl"),
    strategies: Iterable[str] = STRATEGIES,
    baselines: bool = True,
    intervals: bool = True,
    n_jobs: int | None = None,
    progress: Progress | None = None,
    metrics_fn: Callable[[pd.DataFrame], dict] = metrics,
) -> EvaluationResult:
    """Evaluate ``model_sets`` by the paper's protocol on the store's Watt Counts runs.

    ``paper_compat`` uses the paper's GPU feature values and its duplicate-TDP quirk; otherwise the catalog's
    specs and every GPU. Model sets with ``uses_aux`` also learn from :func:`auxiliary_frame` (filtered per fold);
    every metric is computed on the paper's rows. ``progress(fraction, message)`` is called as folds finish.
    """
    if progress:
        progress(0.0, "preparing the training data")
    mode = "paper" if paper_compat else "catalog"
    frame = training_frame(store, mode)
    sets = [get_model_set(m) if isinstance(m, str) else m for m in model_sets]
    aux = auxiliary_frame(store, mode) if any(m.uses_aux for m in sets) else None
    return evaluate_frame(frame, paper_compat, sets, aux=aux, targets=targets, strategies=strategies,
                          baselines=baselines, intervals=intervals, n_jobs=n_jobs, progress=progress,
                          metrics_fn=metrics_fn)


# --------------------------------------------------------------------------------------------------------------
# Breakdowns and tables
def error_breakdown(predictions: pd.DataFrame, by: str = "gpu_id") -> pd.DataFrame:
    """MdAPE (%), Pearson r and row count of counted predictions per ``by`` value and scenario."""
    rows = []
    counted = predictions[predictions["counted"]]
    for (key, scen), g in counted.groupby([by, "scenario"], sort=True):
        rows.append({by: key, "scenario": scen, "mdape_pct": mdape_pct(g["y_true"], g["y_pred"]),
                     "pearson_r": pearson_r(g["y_true"], g["y_pred"]), "n_rows": int(len(g))})
    return pd.DataFrame(rows)


def _fmt(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        width = int(spec.split(".")[0] or 0)
        return "nan".rjust(width)
    return format(value, spec)


def format_tables(result: EvaluationResult, show_paper: bool | None = None) -> str:
    """The paper-style tables (power, then ITL) as text; in paper-compat mode with the paper's numbers beside."""
    show_paper = result.paper_compat if show_paper is None else show_paper
    lines = []
    title = {"power": "Mean power (W)", "itl": "Inter-token latency (s)"}
    order = {"CV": 0, "LOGO": 1, "LOLO": 2, "-": 3}
    for target in ("power", "itl"):
        recs = [r for r in result.records if r["target"] == target]
        if not recs:
            continue
        mode = ("paper-compat: the paper's GPU values" + (
            f"; duplicate-TDP quirk leaves out {', '.join(result.excluded_gpus)}" if target == "power"
            and result.excluded_gpus else "")) if result.paper_compat else "all GPUs, catalog specs"
        lines.append(f"{title[target]} ({mode})")
        if target == "itl":
            for scen in SCENARIOS:
                for d in result.itl_definitions.get(scen, ()):
                    lines.append(f"  {scen} ITL = {ITL_DEFINITION_LABELS.get(d, d)} [{d}]")
        head = (f"  {'Model':<9}{'Scen':<8}{'Split':<6}{'MdAPE':>8}{'r':>7}{'GPU τ':>7}{'LLM τ':>7}"
                f"{'top-1':>7}{'top-3':>7}{'n':>6}")
        if show_paper:
            head += f"   {'paper: MdAPE':>12}{'r':>7}{'GPU τ':>7}{'LLM τ':>7}"
        lines.append(head)
        models = list(dict.fromkeys(r["model"] for r in recs))
        recs.sort(key=lambda r: (order[r["strategy"]] == 3, models.index(r["model"]),
                                 SCENARIOS.index(r["scenario"]), order[r["strategy"]]))
        for r in recs:
            line = (f"  {r['model']:<9}{r['scenario'].capitalize()[:7]:<8}{r['strategy']:<6}"
                    f"{_fmt(r['mdape_pct'], '7.1f')}%{_fmt(r['pearson_r'], '7.3f')}{_fmt(r['gpu_tau'], '7.2f')}"
                    f"{_fmt(r['llm_tau'], '7.2f')}{_fmt(r['top1_pct'], '6.0f')}%{_fmt(r['top3_pct'], '6.0f')}%"
                    f"{r['n_rows']:>6}")
            paper = PAPER_RESULTS.get((target, r["model"], r["scenario"], r["strategy"]))
            if show_paper and paper:
                line += (f"   {_fmt(paper[0], '11.1f')}%{_fmt(paper[1], '7.3f')}{_fmt(paper[2], '7.2f')}"
                         f"{_fmt(paper[3], '7.2f')}")
            lines.append(line)
        cov = [r for r in recs if r.get("interval_level") is not None]
        for r in cov:
            lines.append(f"  {r['model']} {r['interval_level'] * 100:.0f}% intervals, {r['scenario']} runs of held-out "
                         f"GPUs (LOGO, quantiles calibrated without the GPU): coverage "
                         f"{_fmt(r['interval_coverage_pct'], '.1f')}%, median width "
                         f"{_fmt(r['interval_width_pct'], '.0f')}% of the prediction")
        lines.append("")
    return "\n".join(lines)


def records_for_json(result: EvaluationResult) -> list[dict]:
    """The records with NaN as None (valid JSON)."""
    def clean(v):
        return None if isinstance(v, float) and math.isnan(v) else v
    return [{k: clean(v) for k, v in r.items()} for r in result.records]
