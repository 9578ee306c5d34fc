"""Cross-validation: the grouped splits, out-of-fold predictions and split-conformal intervals that both the evaluation
and model fitting use.

Splits (paper-spec §4): ``CV`` is 5-fold GroupKFold with every repeat and scenario of an (LLM, GPU) pair in one
fold; ``LOGO`` leaves one GPU out; ``LOLO`` leaves one LLM out. :func:`out_of_fold` fits a model set once per fold
on that fold's training rows only (plus, for model sets that learn from more, the auxiliary rows outside the fold's
test groups: :func:`aux_allowed`). :func:`interval_quantiles` / :func:`apply_intervals` turn out-of-fold ln
residuals into 80% intervals, and :func:`nested_logo_intervals` measures their coverage on held-out GPUs honestly.
:func:`mdape_pct` and :func:`pearson_r` are the two metrics the model sets' own checks need.

This module sits below :mod:`~wattgpu_core.evaluation` and the model sets (WattGPU+ calibrates its intervals with
it), so neither has to import the other. A model set here is anything with the
:class:`~wattgpu_core.model_set.ModelSet` interface (``label``, ``uses_aux``, ``prepare``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .features import SCENARIO_POOL
from .model_set import TARGET_COLUMNS, ModelSet

STRATEGIES = ("CV", "LOGO", "LOLO")
CV_FOLDS = 5

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
    from sklearn.model_selection import GroupKFold, LeaveOneGroupOut  # lazy: sklearn takes ~1 s to import

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
