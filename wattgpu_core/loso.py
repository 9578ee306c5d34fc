"""Leave-one-source-out: how WattGPU+ does on the runs of a source (and serving stack) it never saw.

For every measured source other than Watt Counts (whose runs are the core model's: holding them out leaves no core
stack to fit), WattGPU+ is fitted on everything else (Watt Counts plus the other sources' runs) and predicts that
source's runs: mean power per GPU and time per output token (the ITL model's own definition,
:func:`~wattgpu_core.plus_itl.time_per_output_token_s`). Its serving stack is then calibrated only if another source
shares it, as for a user on a stack the data hold no runs of. Each held-out source's runs are also checked against
the 80% intervals: the split-conformal quantiles of the leave-one-GPU-out residuals on Watt Counts (computed in the
same evaluation, per scenario pool), i.e. the intervals a prediction would carry.

Records: one per target, source and scenario pool: ``strategy`` ``LOSO``, ``source_id``, ``mdape_pct``,
``pearson_r``, ``n_rows``, ``interval_coverage_pct`` (the intervals a prediction carries: widened for uncalibrated
stacks, and on calibrated stacks other than the default reaching at least the stack's residual spread in the fold,
:func:`widen_for_calibrated_stacks`), ``interval_coverage_unwidened_pct`` (the leave-one-GPU-out intervals alone),
``n_uncalibrated_stack`` (runs whose stack the fold had no calibration for), ``stack_ln_shift`` (their widening) and
``interval_level``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from .cv import apply_intervals, interval_quantiles, mdape_pct, pearson_r
from .model_set import ModelSet
from .models import target_rows
from .physics import DEFAULT_STACK, stack_framework
from .plus_itl import scenario_pool, time_per_output_token_s
from .sources import SOURCES

CORE_SOURCES = ("wattcounts", "wattcounts_upload")
LABEL = "WattGPU+"


def held_out_sources(aux: pd.DataFrame) -> list[str]:
    """The sources a LOSO run holds out in turn: every source of ``aux`` but Watt Counts, sorted."""
    return sorted(s for s in aux["source_id"].dropna().unique() if s not in CORE_SOURCES)


def _truth(target: str, rows: pd.DataFrame) -> np.ndarray:
    return rows["power_w"].to_numpy(float) if target == "power" else time_per_output_token_s(rows)


def _other_stack_runs(target: str, rows: pd.DataFrame, default_stack: str):
    """(mask of the runs on a named stack other than ``default_stack`` with a measured ``target``, the measured
    values, each run's stack)."""
    if not len(rows) or "serving_stack" not in rows:
        return np.zeros(len(rows), bool), np.zeros(len(rows)), np.full(len(rows), None, dtype=object)
    stacks = rows["serving_stack"].astype(object).to_numpy()
    y = _truth(target, rows)
    other = np.asarray([isinstance(s, str) and s != default_stack for s in stacks], dtype=bool)
    return other & np.isfinite(y) & (y > 0), y, stacks


def stack_ln_offsets(model, target: str, rows: pd.DataFrame, default_stack: str = DEFAULT_STACK) -> dict[str, float]:
    """{stack: median ln(measured / ``model``'s prediction as if the run were on ``default_stack``)} for every serving
    stack of ``rows`` other than the default: how far each calibrated stack sits from the stack the core model is
    fitted on, i.e. the error a prediction for that stack would make without its calibration. ``rows`` must be
    usable for ``target`` (no missing input)."""
    other, y, stacks = _other_stack_runs(target, rows, default_stack)
    if not other.any():
        return {}
    part = rows[other].assign(serving_stack=default_stack)
    r = np.log(y[other] / np.asarray(model.predict(part), dtype=float))
    keys = stacks[other]
    out = {}
    for stack in sorted(set(keys)):
        v = r[(keys == stack) & np.isfinite(r)]
        if len(v):
            out[str(stack)] = float(np.median(v))
    return out


def stack_ln_shift(offsets: Mapping[str, float] | None) -> tuple[float, float]:
    """(lower, upper) ln shift that widens the 80% interval of a prediction for a serving stack without a calibration
    (predicted as the default stack): the range of the calibrated stacks' offsets (:func:`stack_ln_offsets`), the
    default stack's 0 included. If stacks' offsets are exchangeable, the range of K of them holds a new one's with
    probability (K - 1) / (K + 1); the interval's own width (the GPU's and LLM's uncertainty) comes on top."""
    v = [0.0, *[float(x) for x in (offsets or {}).values() if x is not None and np.isfinite(x)]]
    return min(v), max(v)


def widen_for_stacks(lo, hi, uncalibrated, shift: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The interval bounds ``lo``, ``hi`` with the rows in ``uncalibrated`` widened by ``shift`` (ln)."""
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    m = np.asarray(uncalibrated, dtype=bool)
    return np.where(m, lo * math.exp(shift[0]), lo), np.where(m, hi * math.exp(shift[1]), hi)


STACK_MIN_RUNS_FOR_OWN_QUANTILES = 10  # fewer runs of a stack: the pooled residuals of every other calibrated stack
POOLED = "*"  # key of the pooled quantiles


def stack_residual_quantiles(model, target: str, rows: pd.DataFrame, level: float = 0.8,
                             default_stack: str = DEFAULT_STACK) -> dict[str, tuple[float, float]]:
    """{stack: (lower, upper)} split-conformal quantiles of ln(measured / ``model``'s prediction on the run's own,
    calibrated stack) over the runs of each stack other than the default in ``rows`` (stacks with at least
    :data:`STACK_MIN_RUNS_FOR_OWN_QUANTILES` usable runs), and under :data:`POOLED` over all of them. A stack's
    calibration has two or three parameters, so the residuals on its own runs are close to what a new run of it
    sees; they are often wider than the leave-one-GPU-out quantiles of the default stack (other sources measure
    differently, and their workloads reach further), and a prediction on such a stack must not claim the default
    stack's precision."""
    other, y, stacks = _other_stack_runs(target, rows, default_stack)
    if other.sum() < STACK_MIN_RUNS_FOR_OWN_QUANTILES:
        return {}
    r = np.log(y[other] / np.asarray(model.predict(rows[other]), dtype=float))
    keys = stacks[other]
    ok = np.isfinite(r)

    def quantiles(m):
        return interval_quantiles(np.exp(r[m]), np.ones(m.sum()), np.full(m.sum(), "all", dtype=object), level)["all"]

    out = {POOLED: quantiles(ok)}
    for stack in sorted(set(keys)):
        mine = (keys == stack) & ok
        if mine.sum() >= STACK_MIN_RUNS_FOR_OWN_QUANTILES:
            out[str(stack)] = quantiles(mine)
    return {k: (float(v[0]), float(v[1])) for k, v in out.items()}


def widen_for_calibrated_stacks(lo, hi, pred, stacks, quantiles: Mapping[str, tuple[float, float]] | None,
                                default_stack: str = DEFAULT_STACK) -> tuple[np.ndarray, np.ndarray]:
    """The bounds ``lo``, ``hi`` of predictions ``pred``, widened on rows of a calibrated stack other than the default
    to at least that stack's own residual quantiles (:func:`stack_residual_quantiles`; the pooled ones for a stack
    without enough runs of its own). Rows of the default stack, and every row when ``quantiles`` is empty, keep
    their bounds."""
    lo, hi = np.asarray(lo, dtype=float).copy(), np.asarray(hi, dtype=float).copy()
    if not quantiles:
        return lo, hi
    pred = np.asarray(pred, dtype=float)
    stacks = np.asarray(stacks, dtype=object)
    for stack in pd.unique(stacks):
        if not isinstance(stack, str) or stack == default_stack:
            continue
        own, pooled = quantiles.get(stack), quantiles.get(POOLED)
        if own is None and pooled is None:
            continue
        q = (min(own[0], pooled[0]), max(own[1], pooled[1])) if own and pooled else (own or pooled)
        m = stacks == stack
        lo[m] = np.fmin(lo[m], pred[m] * math.exp(q[0]))
        hi[m] = np.fmax(hi[m], pred[m] * math.exp(q[1]))
    return lo, hi


def leave_one_source_out(model_set: ModelSet, frame: pd.DataFrame, aux: pd.DataFrame, *,
                         quantiles: Mapping[str, Mapping[str, tuple[float, float]]] | None = None,
                         level: float = 0.8, n_jobs: int | None = None) -> tuple[list[dict], pd.DataFrame]:
    """(records, predictions) of ``model_set`` (WattGPU+: it learns from the auxiliary runs) on each held-out source
    (see the module docstring). ``quantiles``: {target: {scenario pool: (lower, upper) ln quantiles}} for the
    interval coverage (none: no coverage)."""
    jobs = []
    for source in held_out_sources(aux):
        train_aux = aux[aux["source_id"] != source]
        test = aux[aux["source_id"] == source]
        for target in model_set.targets:
            feats = model_set.features(target)
            rows = target_rows(frame, target, feats)
            cols = [c for c in feats if c != "scenario_detail"]
            ok = test[cols].notna().all(axis=1).to_numpy() & np.isfinite(_truth(target, test)) \
                & (_truth(target, test) > 0) if len(test) else np.zeros(0, bool)
            if ok.sum():
                usable = train_aux[train_aux[cols].notna().all(axis=1).to_numpy()].reset_index(drop=True)
                jobs.append((source, target, rows, train_aux, usable,
                             test[ok].reset_index(drop=True)))

    def run(job):
        source, target, rows, train_aux, usable_aux, test = job
        model = model_set.fit(target, rows, aux=train_aux)
        offsets = stack_ln_offsets(model, target, usable_aux)
        residual_q = stack_residual_quantiles(model, target, usable_aux, level)
        known = {DEFAULT_STACK, *train_aux["serving_stack"].dropna().astype(str)}
        uncalibrated = ~test["serving_stack"].astype(object).isin(known).to_numpy()
        return (source, target, test, np.asarray(model.predict(test), dtype=float), offsets, uncalibrated,
                residual_q)

    with ThreadPoolExecutor(max_workers=n_jobs or 1) as pool:
        results = list(pool.map(run, jobs))
    records, preds = [], []
    for source, target, test, pred, offsets, uncalibrated, residual_q in results:
        y = _truth(target, test)
        pools = scenario_pool(test["scenario_detail"])
        q = (quantiles or {}).get(target)
        lo0, hi0 = apply_intervals(pred, pools, q) if q else (np.full(len(pred), np.nan),) * 2
        shift = stack_ln_shift(offsets)
        lo, hi = widen_for_stacks(lo0, hi0, uncalibrated, shift)
        calibrated_stack = np.where(uncalibrated, None, test["serving_stack"].astype(object).to_numpy())
        lo, hi = widen_for_calibrated_stacks(lo, hi, pred, calibrated_stack, residual_q)
        preds.append(pd.DataFrame({"source_id": source, "target": target, "run_id": test["run_id"].to_numpy(),
                                   "gpu_id": test["gpu_id"].to_numpy(), "llm_id": test["llm_id"].to_numpy(),
                                   "serving_stack": test["serving_stack"].to_numpy(), "scenario": pools,
                                   "y_true": y, "y_pred": pred, "y_lo": lo, "y_hi": hi,
                                   "stack_calibrated": ~uncalibrated}))
        for scen in ("offline", "server"):
            m = pools == scen
            if not m.any():
                continue
            inside = (lo[m] <= y[m]) & (y[m] <= hi[m])
            inside0 = (lo0[m] <= y[m]) & (y[m] <= hi0[m])
            covered = q and np.isfinite(lo[m]).all()
            records.append({
                "target": target, "model": model_set.label, "scenario": scen, "strategy": "LOSO", "source_id": source,
                "mdape_pct": mdape_pct(y[m], pred[m]), "pearson_r": pearson_r(y[m], pred[m]), "n_rows": int(m.sum()),
                "stacks": ";".join(sorted(set(test.loc[m, "serving_stack"].astype(str)))),
                "interval_level": level if q else None,
                "interval_coverage_pct": 100.0 * float(inside.mean()) if covered else math.nan,
                "interval_coverage_unwidened_pct": 100.0 * float(inside0.mean()) if covered else math.nan,
                "n_uncalibrated_stack": int(uncalibrated[m].sum()),
                "stack_ln_shift": list(shift),
            })
    records.sort(key=lambda r: (r["target"], r["source_id"], r["scenario"]))
    return records, pd.concat(preds, ignore_index=True) if preds else pd.DataFrame()


def logo_quantiles_of(result, level: float = 0.8) -> dict:
    """{target: {pool: (lower, upper)}}: the interval quantiles of WattGPU+'s leave-one-GPU-out residuals in an
    :class:`~wattgpu_core.evaluation.EvaluationResult` (what the trained model's intervals are made of)."""
    out = {}
    for target in ("power", "itl"):
        pf = result.predictions.get((LABEL, target, "LOGO"))
        if pf is not None and len(pf):
            out[target] = interval_quantiles(pf["y_true"], pf["y_pred"], pf["scenario"], level)
    return out


def pooled(records: list[dict]) -> dict:
    """{target: median over held-out sources of their MdAPE (every scenario pool)}: the one figure per target that
    Home quotes for runs of other sources and stacks."""
    out = {}
    for target in ("power", "itl"):
        v = [r["mdape_pct"] for r in records if r["target"] == target and np.isfinite(r["mdape_pct"])]
        out[target] = float(np.median(v)) if v else math.nan
    return out


def format_loso(records: list[dict]) -> str:
    """The LOSO records as text lines (for ``evaluate``)."""
    lines = ["WattGPU+ on sources left out of training (LOSO: fitted without the source; its stack calibrated only if "
             "another source shares it; coverage of the 80% intervals):"]
    for r in records:
        cov = r.get("interval_coverage_pct")
        cov_txt = f"{cov:5.1f}%" if cov is not None and np.isfinite(cov) else "   – "
        raw = r.get("interval_coverage_unwidened_pct")
        extras = []
        if r.get("n_uncalibrated_stack"):
            lo, hi = r.get("stack_ln_shift") or (0.0, 0.0)
            extras.append(f"{r['n_uncalibrated_stack']} runs on stacks uncalibrated in the fold, intervals x"
                          f"{math.exp(lo):.2f}-x{math.exp(hi):.2f}")
        if raw is not None and np.isfinite(raw) and cov is not None and np.isfinite(cov) and raw != cov:
            extras.append(f"{raw:.1f}% with the leave-one-GPU-out intervals alone")
        if extras:
            cov_txt += f" ({'; '.join(extras)})"
        what = "power" if r["target"] == "power" else "time/token"
        lines.append(f"  {r['source_id']:<16} {what:<10} {r['scenario']:<7} MdAPE {r['mdape_pct']:6.1f}%  "
                     f"coverage {cov_txt}  n={r['n_rows']}  ({r['stacks']})")
    return "\n".join(lines)


def other_sources_sentence(meta: Mapping) -> str:
    """One sentence for Home: the error on runs of sources and stacks left out of training, and what to do about
    it ("" when the model files carry no LOSO metrics)."""
    records = meta.get("loso_metrics") or []
    if not records:
        return ""
    med = pooled(records)
    per_source: dict[str, set[str]] = {}
    for r in records:
        per_source.setdefault(r["source_id"], set()).update(
            stack_framework(s) for s in str(r.get("stacks") or "").split(";") if s)
    listed = "; ".join(f"{_source_name(src)}: {', '.join(sorted(st))}" for src, st in sorted(per_source.items()))
    worst = max(records, key=lambda r: r["mdape_pct"] if r["mdape_pct"] is not None else -1)
    return (f"On runs of other sources and serving stacks ({listed}), left out of training one source at "
            f"a time, the median error is {med['power']:.0f}% for power and {med['itl']:.0f}% for time per token "
            f"(up to {worst['mdape_pct']:.0f}% on {_source_name(worst['source_id'])}), far above the LOGO errors on "
            "the training stack: choose your serving stack where it is calibrated, or upload a few runs of your own "
            f"stack (Data page) so that WattGPU+ calibrates it.{_widening_clause(meta)}")


def _source_name(source_id: str) -> str:
    return SOURCES.get(source_id, {}).get("name", source_id)


def _widening_clause(meta: Mapping) -> str:
    """" A stack without ... widened ..." for Home's sentence ("" when the model files store no stack offsets)."""
    offsets = (meta.get("intervals") or {}).get("stack_ln_offsets") or {}
    if not offsets:
        return ""
    p, t = stack_ln_shift(offsets.get("power")), stack_ln_shift(offsets.get("itl"))
    return (f" A prediction for a stack without calibration is made for the training stack, with its 80% interval "
            f"widened by how far the calibrated stacks sit from it: power x{math.exp(p[0]):.2f} to "
            f"x{math.exp(p[1]):.2f}, time per token x{math.exp(t[0]):.2f} to x{math.exp(t[1]):.2f}.")
