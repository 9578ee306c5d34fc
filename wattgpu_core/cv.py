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
import multiprocessing
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
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


def group_folds(groups, n_folds: int) -> np.ndarray:
    """The fold of each row when whole groups are dealt into ``n_folds`` folds of balanced size: groups by
    decreasing row count (equal counts: the later group in sorted order first), each into the fold with the fewest
    rows so far (the first such fold). This is scikit-learn's ``GroupKFold`` without shuffling, the paper's split,
    computed here without importing scikit-learn (a second of the command line's time); a test checks the folds
    are identical."""
    names, code = np.unique(np.asarray(groups), return_inverse=True)
    if n_folds > len(names):
        raise ValueError(f"cannot make {n_folds} folds of {len(names)} groups")
    sizes = np.bincount(code, minlength=len(names))
    order = np.lexsort((-np.arange(len(names)), -sizes))  # size descending, then index descending
    load = np.zeros(n_folds)
    fold_of_group = np.zeros(len(names), dtype=int)
    for g in order:
        k = int(np.argmin(load))
        load[k] += sizes[g]
        fold_of_group[g] = k
    return fold_of_group[code]


def splits(frame: pd.DataFrame, strategy: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train positions, test positions) per fold; a group is never on both sides. CV: 5 folds of whole groups
    (:func:`group_folds`); LOGO and LOLO: one fold per group, in sorted order."""
    groups = split_groups(frame, strategy)
    if strategy == "CV":
        fold = group_folds(groups, CV_FOLDS)
        return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(CV_FOLDS)]
    return [(np.flatnonzero(groups != g), np.flatnonzero(groups == g)) for g in np.unique(groups)]


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


@dataclass(frozen=True)
class _Fit:
    """One model fit: the target, the training positions, the test position sets it predicts (one fit may serve
    several, e.g. both GPUs of a nested pair) and the auxiliary rows it may learn from (None: no auxiliary data)."""

    target: str
    train: np.ndarray
    tests: tuple[np.ndarray, ...]
    aux_rows: np.ndarray | None


def _fit_predict(prepared: Mapping, fit: _Fit) -> tuple[np.ndarray, ...]:
    """One fit's predictions for each of its test sets (one model, fitted once, predicts them all together)."""
    kwargs = {} if fit.aux_rows is None else {"aux_rows": fit.aux_rows}
    test = np.concatenate(fit.tests) if len(fit.tests) > 1 else fit.tests[0]
    pred = prepared[fit.target].fit_predict(fit.train, test, n_threads=1, **kwargs)
    return tuple(np.split(pred, np.cumsum([len(t) for t in fit.tests])[:-1]))


_WORKER: dict = {}  # in a worker process: the prepared data of the evaluation it serves


def single_threaded_blas(load_scipy: bool = True):
    """A ``threadpool_limits`` holding every BLAS this process uses at one thread (with ``load_scipy``, scipy's is
    loaded first: a limit reaches only the libraries already loaded). The fits solve many small least-squares
    problems, for which BLAS threads only contend with the fold workers: measured several times slower on a
    2-core machine."""
    if load_scipy:
        # lazy: importing scipy.linalg loads scipy's own BLAS (it takes a second: only fits need it)
        import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_limits  # lazy: only fits need it

    return threadpool_limits(limits=1, user_api="blas")


def _worker_init(prepared: Mapping) -> None:
    _WORKER["prepared"] = prepared
    _WORKER["blas"] = single_threaded_blas()  # kept: the limit holds while the worker lives


def _worker_fit(fit: _Fit) -> tuple[np.ndarray, ...]:
    return _fit_predict(_WORKER["prepared"], fit)


def fit_all(model_set: ModelSet, prepared: Mapping, fits: Sequence[_Fit],
            n_jobs: int | None = None) -> Iterator[tuple[int, tuple[np.ndarray, ...]]]:
    """Run ``fits`` and yield (index into ``fits``, predictions per test set) as each finishes.

    ``n_jobs`` workers (default: CPU count; 1 runs them in order here). Model sets whose fits spend their time in
    Python (``fits_hold_the_gil``: WattGPU+'s least-squares physics) run in worker processes, which get the
    prepared data once each; the others (XGBoost releases the GIL) in threads. Either way every fit is
    single-threaded and sees only its own rows."""
    n_jobs = min(n_jobs or os.cpu_count() or 1, max(len(fits), 1))
    if n_jobs == 1:
        for i, fit in enumerate(fits):
            yield i, _fit_predict(prepared, fit)
        return
    done: set[int] = set()
    if getattr(model_set, "fits_hold_the_gil", False):
        try:
            with _process_pool(n_jobs, prepared) as pool:
                futures = {pool.submit(_worker_fit, fit): i for i, fit in enumerate(fits)}
                for fut in as_completed(futures):
                    i = futures[fut]
                    result = fut.result()
                    done.add(i)
                    yield i, result
            return
        except BrokenProcessPool:  # e.g. a script without the ``if __name__ == "__main__":`` guard: threads instead
            warnings.warn("cross-validation could not start worker processes; fitting in threads (slower)",
                          RuntimeWarning, stacklevel=2)
    with ThreadPoolExecutor(max_workers=n_jobs) as pool:
        futures = {pool.submit(_fit_predict, prepared, fit): i for i, fit in enumerate(fits) if i not in done}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()


def _process_pool(n_jobs: int, prepared: Mapping) -> ProcessPoolExecutor:
    """Worker processes holding ``prepared``: forked from this process when it runs no other thread (nothing to
    copy, nothing to re-import), else started from a fork server (safe beside threads, e.g. the Streamlit server;
    the workers import the core once and get ``prepared`` pickled)."""
    if threading.active_count() == 1:
        context = multiprocessing.get_context("fork")
    else:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["wattgpu_core.plus"])
    return ProcessPoolExecutor(max_workers=n_jobs, mp_context=context, initializer=_worker_init,
                               initargs=(prepared,))


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
    with ``uses_aux``, the auxiliary rows outside the fold's test groups (:func:`aux_allowed`). Folds run in
    ``n_jobs`` workers (default: CPU count; see :func:`fit_all`), each fit single-threaded; ``n_jobs=1`` runs them
    in order here.
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
    tasks = []
    for job in jobs:
        aux = aux_by_target.get(job.target)
        tasks.append(_Fit(job.target, job.train, (job.test,),
                          None if aux is None else aux_allowed(aux, rows_by_target[job.target], job.test, job.strategy)))
    for done, (i, (pred,)) in enumerate(fit_all(model_set, prepared, tasks, n_jobs), 1):
        job = jobs[i]
        values, folds = out[(job.target, job.strategy)]
        values[job.test] = pred
        folds[job.test] = job.fold
        if progress:
            progress(lo + (hi - lo) * done / len(jobs),
                     f"{model_set.label} {job.target} {job.strategy} fold {job.fold + 1}")
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
    # The inner run for held-out GPU g that tests on h trains on every GPU but g and h: the same training data as
    # the run for h that tests on g. One fit per unordered pair serves both.
    fits, pairs = [], []
    for target, rows in rows_by_target.items():
        gpu = rows["gpu_id"].astype(str).to_numpy()
        aux = aux_by_target.get(target)
        names = np.unique(gpu)
        for a_i, a in enumerate(names):
            for b in names[a_i + 1:]:
                aux_rows = None if aux is None else \
                    np.flatnonzero(~aux["gpu_id"].astype(str).isin([a, b]).to_numpy())
                fits.append(_Fit(target, np.flatnonzero((gpu != a) & (gpu != b)),
                                 (np.flatnonzero(gpu == b), np.flatnonzero(gpu == a)), aux_rows))
                pairs.append((target, a, b))
    prepared = {t: model_set.prepare(t, rows, aux_by_target.get(t)) for t, rows in rows_by_target.items()}
    inner: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
    for i, (pred_b, pred_a) in fit_all(model_set, prepared, fits, n_jobs):
        (target, a, b), (test_b, test_a) = pairs[i], fits[i].tests
        inner.setdefault((target, a), []).append((test_b, pred_b))  # held out a, tested on b
        inner.setdefault((target, b), []).append((test_a, pred_a))  # held out b, tested on a
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
