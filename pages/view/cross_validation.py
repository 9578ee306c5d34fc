"""The Cross-validation page (and the report): the paper's tables of evaluation records, parity and error views per
GPU and LLM, the external validation on ML.ENERGY, and the captions that say what each split and model is.

The evaluation itself is the core's: shipped with the committed models when it is of this data and code
(``shipped``), else computed once and kept on disk (``evaluation_cache``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from wattgpu_core.evaluation import PAPER_RESULTS, error_breakdown
from wattgpu_core.evaluation_cache import cached_evaluation
from wattgpu_core.external import external_validation as _validate
from wattgpu_core.physics import stack_framework
from wattgpu_core.retraining import active_models_dir
from wattgpu_core.shipped import estimate_seconds, load_evaluation, load_importance

from .formats import num
from .labels import SCENARIO_LABELS, STRATEGY_LABELS


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
        "MdAPE (%)": rec["mdape_pct"].map(lambda v: num(v, ".1f")),
        "Pearson r": rec["pearson_r"].map(lambda v: num(v, ".3f")),
        "GPU τ": rec["gpu_tau"].map(lambda v: num(v, ".2f")),
        "LLM τ": rec["llm_tau"].map(lambda v: num(v, ".2f")),
    })
    if "top1_pct" in rec:
        out["Picks the best GPU (%)"] = rec["top1_pct"].map(lambda v: num(v, ".0f"))
    if "interval_coverage_pct" in rec and rec["interval_coverage_pct"].notna().any():
        out["80% interval coverage (%)"] = rec["interval_coverage_pct"].map(lambda v: num(v, ".0f"))
        out["Interval width (%)"] = rec["interval_width_pct"].map(lambda v: num(v, ".0f"))
    out["Runs"] = rec["n_rows"].map(lambda v: f"{int(v):,}")
    if paper:
        keys = list(zip(rec["target"], rec["model"], rec["scenario"], rec["strategy"], strict=True))
        out["Paper MdAPE (%)"] = [num(paper.get(k, (np.nan,))[0], ".1f") for k in keys]
        out["Paper r"] = [num(paper.get(k, (np.nan, np.nan))[1], ".3f") for k in keys]
    if compact:
        out = out[out["Split"] != "–"][["Target", "Scenario", "Split", "MdAPE (%)", "Pearson r"]]
    elif target is not None:
        out = out.drop(columns=["Target"])
    return out.reset_index(drop=True)


def run_cross_validation(store, paper_compat: bool, progress=None, model_sets=("paper",), refresh: bool = False):
    """The paper's protocol (CV, LOGO, LOLO, baselines) on the store for ``model_sets`` (e.g. ("paper", "plus")
    to show WattGPU+ beside the paper's models); ``progress(fraction, message)``. Results are kept on disk per data
    and code version (``evaluation_cache``); ``refresh`` computes afresh."""
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
    return load_importance(store, which, active_models_dir(store))


def evaluation_estimate(store, paper_compat: bool) -> str:
    """A guide to how long a cross-validation takes here, from the shipped evaluation's own time."""
    seconds = estimate_seconds(paper_compat=paper_compat)
    if not seconds:
        return "this takes a few minutes the first time the data change"
    return (f"the committed evaluation took {max(10, round(seconds / 10) * 10):.0f} s where it was computed; done "
            "once per data version")




def external_validation(store) -> dict:
    """Train on Watt Counts only, predict the ML.ENERGY v2 runs (A100 and the unseen H100 SXM5): MdAPE of power and
    time per output token, and the error of the predicted H100/A100 ratios (see ``external``), as plain records:
    {"summary": [...], "pairs": [...], "runs": [...], ...}."""
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
        table[c] = table[c].map(lambda v: num(v, ".1f"))
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


def _plus_meta(model_set) -> Mapping:
    """WattGPU+'s metadata in a loaded model set (the set itself, or the WattGPU+ part of the default set)."""
    meta = model_set.metadata
    parts = getattr(model_set, "parts", None) or {}
    if not meta.get("loso_metrics") and "plus" in parts:
        meta = parts["plus"].metadata
    return meta


def loso_table(model_set, source_names: Mapping[str, str] | None = None) -> pd.DataFrame:
    """WattGPU+ on each source left out of training (stored with the model files): one row per source and target,
    with the coverage of the 80% intervals as a prediction carries them (widened for its stack) and with the
    leave-one-GPU-out intervals alone, and the runs whose stack the fold had no calibration for with their
    widening."""
    records = _plus_meta(model_set).get("loso_metrics") or []
    names = source_names or {}
    rows = []
    for r in records:
        shift = r.get("stack_ln_shift") or (0.0, 0.0)
        n_unc = r.get("n_uncalibrated_stack")
        rows.append({
            "Source": names.get(r["source_id"], r["source_id"]),
            "Stacks": ", ".join(stack_framework(s) + (" (no version stated)" if stack_framework(s) != s else "")
                                for s in str(r.get("stacks") or "").split(";") if s),
            "Quantity": "Power" if r["target"] == "power" else "Time per token", "Runs": int(r["n_rows"]),
            "MdAPE (%)": num(r["mdape_pct"], ".1f"),
            "Coverage (%)": num(r.get("interval_coverage_pct"), ".0f"),
            "LOGO-only coverage (%)": num(r.get("interval_coverage_unwidened_pct"), ".0f"),
            "Uncalibrated runs (widening)": "–" if n_unc is None else (
                "0" if not n_unc else f"{n_unc:,} (x{np.exp(shift[0]):.2f} to x{np.exp(shift[1]):.2f})"),
        })
    return pd.DataFrame(rows)


LOSO_CAPTION = (
    "WattGPU+ refitted without one source at a time, then asked for that source's runs. A run's serving stack is "
    "calibrated only if another source shares it; otherwise it is predicted as the training stack (vLLM 0.14), "
    "and its 80% interval is widened by the range of the offsets of the stacks the fold does know, as any "
    "prediction for an uncalibrated stack is; on a calibrated stack other than vLLM 0.14 the interval reaches at "
    "least the spread of the residuals on that stack's runs in the fold. Coverage: of the 80% intervals as "
    "predictions carry them; LOGO-only: of the leave-one-GPU-out intervals alone; uncalibrated runs: those whose "
    "stack the fold had no calibration for, with their widening. The goal is 75–85% coverage; a source whose stack sits further from "
    "vLLM 0.14 than every other stack (ML.ENERGY v2's vLLM 0.5.4) stays outside it. Regenerate with "
    "`python -m wattgpu_core evaluate`.")
