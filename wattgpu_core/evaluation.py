"""Evaluation: the paper's protocol (grouped splits, out-of-fold predictions, metrics, baselines) for any model set.

Splits (paper-spec §4): ``CV`` is 5-fold GroupKFold with every repeat and scenario of an (LLM, GPU) pair in one
fold; ``LOGO`` leaves one GPU out; ``LOLO`` leaves one LLM out. Every prediction is out-of-fold, rows are single
runs. Metrics per scenario (``offline``; ``server`` pools server_low and server_high): MdAPE, Pearson r, GPU and
LLM Kendall tau (mean over groups of repeat-averaged values), and top-1 / top-3 GPU-choice accuracy (how often the
GPU with the lowest true value per LLM and scenario is the predicted lowest / among the predicted three lowest).
Baselines: TDP, load-scaled TDP (power) and roofline ITL, computed on all rows.

Model sets that learn from more than the paper's rows (``uses_aux``: WattGPU+) get the auxiliary rows filtered per
fold (:func:`~wattgpu_core.cv.aux_allowed`: no fold sees its test group), and every metric is computed on the paper's
rows. Model sets with prediction intervals (``interval_level``) have their LOGO coverage measured by nesting
(:func:`~wattgpu_core.cv.nested_logo_intervals`). The splits, out-of-fold fitting and intervals live in
:mod:`~wattgpu_core.cv` (model sets use them too); they are re-exported here.

``paper_compat=True`` uses the paper's own GPU feature values and reproduces its duplicate-TDP quirk: the GPU whose
TDP repeats an earlier GPU's (H100 NVL, 400 W like the A100) is left out of every power metric. Without it, our
catalog's specs are used and every GPU counts. Folds run in parallel, one thread per fit: the paper's XGB in a
thread pool (XGBoost releases the GIL), WattGPU+ in worker processes (its fits are Python; ``cv.fit_all``). The straightforward versions the benchmark times and the tests compare against (one sklearn Pipeline per
fold; metrics by groupby loops with scipy) are in ``tests/reference_models.py``.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd

from .baselines import BASELINE_SETS
from .baselines import LOAD_SCALE as LOAD_SCALE
from .baselines import ROOFLINE_BATCH as ROOFLINE_BATCH
from .baselines import baseline_predictions as baseline_predictions
from .cv import CV_FOLDS as CV_FOLDS
from .cv import STRATEGIES, Progress, mdape_pct, nested_logo_intervals, out_of_fold, pearson_r, single_threaded_blas
from .cv import apply_intervals as apply_intervals
from .cv import aux_allowed as aux_allowed
from .cv import interval_quantiles as interval_quantiles
from .cv import llm_weights_key as llm_weights_key
from .cv import split_groups as split_groups
from .cv import splits as splits
from .features import SCENARIO_POOL
from .model_set import TARGET_COLUMNS, ModelSet
from .models import auxiliary_frame, target_rows, training_frame
from .registry import get_model_set

SCENARIOS = ("offline", "server")
# The baselines scored per target (registered model sets: formulas, nothing learned), in table order.
BASELINES = MappingProxyType({t: tuple(f().label for f in BASELINE_SETS.values() if t in f().targets)
                              for t in ("power", "itl")})
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


# --------------------------------------------------------------------------------------------------------------
# Metrics
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


@functools.lru_cache(maxsize=256)
def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs i < j of ``n`` items (an evaluation asks for the same few sizes thousands of times)."""
    return np.triu_indices(n, k=1)


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b (ties handled as scipy's ``kendalltau``): sum(sx sy) / sqrt(sum(sx^2) sum(sy^2))."""
    i, j = _pairs(len(x))
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


def gpu_choice_regret_pct(frame: pd.DataFrame, averaged: _Averaged | None = None) -> float:
    """Mean extra value (%) of the GPU predicted lowest over the truly lowest, per (LLM, scenario) group (values
    averaged over repeats first; groups with fewer than 2 GPUs are skipped). For energy per token: the extra energy
    a user pays by picking the GPU the predictions pick."""
    avg = _Averaged.of(frame) if averaged is None else averaged
    regrets = [100.0 * (avg.y[g][np.argmin(avg.p[g])] / avg.y[g].min() - 1.0) for g in avg.groups("llm")
               if len(g) >= 2]
    return float(np.mean(regrets)) if regrets else math.nan


def averaged_cells(frame: pd.DataFrame) -> _Averaged:
    """y_true and y_pred of ``frame`` averaged per (LLM, scenario_detail, GPU): what the ranking metrics read
    (compute it once and pass it to several of them)."""
    return _Averaged.of(frame)


def metrics(frame: pd.DataFrame, averaged: _Averaged | None = None) -> dict:
    """All metrics of one (target, model, scenario, strategy) cell from rows with y_true and y_pred."""
    y, p = frame["y_true"].to_numpy(float), frame["y_pred"].to_numpy(float)
    avg = _Averaged.of(frame) if averaged is None else averaged
    return {"mdape_pct": mdape_pct(y, p), "pearson_r": pearson_r(y, p),
            "gpu_tau": mean_kendall_tau(frame, "gpu_id", avg), "llm_tau": mean_kendall_tau(frame, "llm_id", avg),
            "top1_pct": gpu_choice_accuracy(frame, 1, avg), "top3_pct": gpu_choice_accuracy(frame, 3, avg),
            "n_rows": int(len(frame))}


# --------------------------------------------------------------------------------------------------------------
# Baselines
def quirk_excluded_gpus(frame: pd.DataFrame) -> tuple[str, ...]:
    """GPUs the paper's ``set_index(gpu)[TDP].drop_duplicates()`` loses: a TDP value already seen, in row order."""
    first = frame.drop_duplicates("gpu_id")[["gpu_id", "tdp_w"]]
    return tuple(first.loc[first["tdp_w"].duplicated(), "gpu_id"].tolist())

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


def evaluate_frame(frame: pd.DataFrame, paper_compat: bool, model_sets: Iterable[ModelSet | str] = ("paper",),
                   **kwargs) -> EvaluationResult:
    """The protocol on a prepared training frame (see :func:`run_evaluation` and :func:`_evaluate_frame`).

    BLAS runs single-threaded meanwhile (:func:`~wattgpu_core.cv.single_threaded_blas`; scipy's is loaded only
    for model sets whose fits solve least-squares problems)."""
    sets = [get_model_set(m) if isinstance(m, str) else m for m in model_sets]
    with single_threaded_blas(load_scipy=any(getattr(m, "fits_hold_the_gil", False) for m in sets)):
        return _evaluate_frame(frame, paper_compat, sets, **kwargs)


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
    if baselines:  # formulas, nothing learned: scored on every row
        for target in targets:
            for baseline in (f() for f in BASELINE_SETS.values()):
                if target not in baseline.targets:
                    continue
                rows = target_rows(frame, target, baseline.features(target))
                pred = baseline.predict({target: baseline.fit(target, rows)}, target, rows)
                pf = _prediction_frame(rows, target, pred, np.full(len(rows), -1), excluded)
                predictions[(baseline.label, target, "-")] = pf
                records += _records_for(pf, target, baseline.label, "-", mode, metrics_fn)
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
