"""External validation: train on Watt Counts only, predict ML.ENERGY Leaderboard v2 runs nobody trained on.

ML.ENERGY v2 measured LLMs on an A100-SXM4-40GB (a GPU Watt Counts has) and an H100 SXM5 (one it lacks) under
vLLM 0.5.4, with the request rate infinite (all requests queued) and the maximum batch swept. For the LLMs both
sources share, on one GPU, each run becomes an offline workload at its batch size (steady state: the batch stays
full), its mean output length and unknown prompt length (the Watt Counts default). The models are fitted on Watt
Counts runs only (no ML.ENERGY run, no other stack's calibration), then:

* MdAPE of mean power per GPU and of time per output token (1 / throughput) against every matched run;
* the error of the predicted H100-SXM5 / A100 ratio of power and of time per token, per LLM, task and batch size
  measured on both GPUs, against the measured ratio. Absolute levels differ between the sources because the
  serving software differs (the same Llama-3.1-8B on the same A100 draws ~395 W under Watt Counts' vLLM 0.14 and
  ~190 W under ML.ENERGY's vLLM 0.5.4); the ratio cancels the software and isolates the unseen GPU.

The paper's XGB models are scored the same way for reference (they know only Watt Counts' offline workload, so
their predictions ignore the batch size). WattGPU+ is also scored after calibrating ML.ENERGY's stack on its A100
runs only (the H100 runs stay unseen): see :func:`external_validation`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .cv import mdape_pct
from .models import WATTCOUNTS_SOURCES, auxiliary_frame, target_rows, training_frame
from .physics import link_gb_s
from .plus_itl import time_per_output_token_s
from .registry import get_model_set

SOURCE = "mlenergy_v2"
UNSEEN_GPU, SEEN_GPU = "h100-sxm5-80gb", "a100-sxm4-40gb"
MODEL_SETS = ("plus", "paper")


@dataclass(frozen=True)
class ExternalValidation:
    """The matched runs with predictions, per-run errors and the GPU-ratio pairs, per model set."""

    runs: pd.DataFrame  # one row per (model set, ML.ENERGY run): llm_id, gpu_id, task, batch_size, measured, predicted
    pairs: pd.DataFrame  # one row per (model set, LLM, task, batch size) measured on both GPUs
    summary: pd.DataFrame  # one row per (model set, quantity, what): MdAPE (%), n
    n_train_rows: int

    def to_dict(self) -> dict:
        def records(frame):
            return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                    for r in frame.to_dict("records")]
        return {"summary": records(self.summary), "pairs": records(self.pairs), "runs": records(self.runs),
                "n_train_rows": self.n_train_rows, "source": SOURCE, "unseen_gpu": UNSEEN_GPU,
                "seen_gpu": SEEN_GPU}


def test_runs(store, train_llms) -> pd.DataFrame:
    """ML.ENERGY v2 runs of LLMs in ``train_llms`` on one GPU, as offline workloads at their batch size."""
    aux = auxiliary_frame(store, "catalog")
    runs = aux[aux["source_id"].eq(SOURCE) & aux["llm_id"].isin(set(train_llms))
               & aux["num_gpus"].fillna(1).eq(1) & aux["throughput_tok_s"].gt(0)].copy()
    runs["task"] = runs["campaign"].astype(str).str.split("/").str[0]
    runs["scenario"] = "offline"
    runs["scenario_detail"] = "offline"
    runs["num_requests"] = np.nan  # all requests queued at once: the batch stays full (steady state)
    runs["max_output_tokens"] = runs["output_tokens"]
    runs["time_per_token_s"] = 1.0 / runs["throughput_tok_s"]
    # Predict for the default stack (a Watt Counts-only model has no other); the runs' own stack is kept aside.
    runs["stack"] = runs["serving_stack"]
    runs["framework_raw"], runs["framework_version_raw"] = runs["framework"], runs["framework_version"]
    runs["serving_stack"] = None
    runs["framework"] = None
    runs["framework_version"] = None
    return runs.reset_index(drop=True)


CALIBRATED = "stack-calibrated on the A100 runs"


def external_validation(store, model_sets: tuple[str, ...] = MODEL_SETS, *, seed: int = 0) -> ExternalValidation:
    """Fit each model set on Watt Counts runs only and score it on the matched ML.ENERGY v2 runs.

    For model sets that learn serving-stack calibrations (WattGPU+) a second variant, ``CALIBRATED``, adds
    ML.ENERGY's runs on the A100 (the GPU Watt Counts has) as auxiliary runs of their stack, vLLM 0.5, and scores
    its H100 runs, which no variant ever trains on: what a user gets after uploading their own stack's runs on
    GPUs they own, for a GPU they do not.
    """
    frame = training_frame(store, "catalog")
    aux = auxiliary_frame(store, "catalog")
    wc_aux = aux[aux["source_id"].isin(WATTCOUNTS_SOURCES)].reset_index(drop=True)  # Watt Counts' MoE LLMs only
    runs = test_runs(store, set(frame["llm_id"]) | set(wc_aux["llm_id"]))
    stack_runs = aux[aux["run_id"].isin(runs.loc[runs["gpu_id"] == SEEN_GPU, "run_id"])]
    all_runs, all_pairs, summary = [], [], []
    for name in model_sets:
        ms = get_model_set(name)
        variants = [(ms.label, {"aux": wc_aux} if ms.uses_aux else {}, False)]
        if ms.uses_aux:
            variants.append((f"{ms.label}, {CALIBRATED}",
                             {"aux": pd.concat([wc_aux, stack_runs], ignore_index=True)}, True))
        for label, kwargs, calibrated in variants:
            power = ms.fit("power", target_rows(frame, "power", ms.features("power")), seed=seed, **kwargs)
            itl = ms.fit("itl", target_rows(frame, "itl", ms.features("itl")), seed=seed, **kwargs)
            rows = runs
            if calibrated:  # predict on the runs' own stack
                rows = runs.assign(serving_stack=runs["stack"], framework=runs["framework_raw"],
                                   framework_version=runs["framework_version_raw"])
            out = runs[["run_id", "llm_id", "gpu_id", "task", "batch_size", "mean_batch_size", "output_tokens",
                        "power_w", "time_per_token_s"]].copy()
            out.insert(0, "model", label)
            out["power_w_pred"] = np.asarray(power.predict(rows), dtype=float)
            # Offline ITL is run time / output tokens, i.e. time per output token of the whole system.
            out["time_per_token_s_pred"] = np.asarray(itl.predict(rows), dtype=float)
            all_runs.append(out)
            pairs = _gpu_ratio_pairs(out)
            all_pairs.append(pairs)
            gpus = (UNSEEN_GPU,) if calibrated else (None, SEEN_GPU, UNSEEN_GPU)
            for quantity, meas, pred in (("power", "power_w", "power_w_pred"),
                                         ("time per output token", "time_per_token_s", "time_per_token_s_pred")):
                for gpu in gpus:
                    part = out if gpu is None else out[out["gpu_id"] == gpu]
                    summary.append({"model": label, "quantity": quantity,
                                    "what": "MdAPE, all runs" if gpu is None else f"MdAPE, {gpu}",
                                    "mdape_pct": mdape_pct(part[meas], part[pred]), "n": int(len(part))})
                ratio = pairs[f"{quantity.split()[0]}_ratio_error_pct"]
                summary.append({"model": label, "quantity": quantity,
                                "what": f"ratio {UNSEEN_GPU} / {SEEN_GPU}: median |error|",
                                "mdape_pct": float(np.median(np.abs(ratio))) if len(ratio) else math.nan,
                                "n": int(len(ratio))})
    return ExternalValidation(pd.concat(all_runs, ignore_index=True), pd.concat(all_pairs, ignore_index=True),
                              pd.DataFrame(summary), int(len(frame)))


def _gpu_ratio_pairs(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (LLM, task, batch size) run on both GPUs: measured and predicted H100/A100 ratios and their error (%)."""
    key = ["model", "llm_id", "task", "batch_size"]
    cols = ["power_w", "power_w_pred", "time_per_token_s", "time_per_token_s_pred"]
    a = runs[runs["gpu_id"] == SEEN_GPU].groupby(key)[cols].mean()
    h = runs[runs["gpu_id"] == UNSEEN_GPU].groupby(key)[cols].mean()
    both = h.reset_index().merge(a.reset_index(), on=key, suffixes=("_h100", "_a100"), how="inner")
    out = both[key].copy()
    for q, meas in (("power", "power_w"), ("time", "time_per_token_s")):
        out[f"{q}_ratio_measured"] = both[f"{meas}_h100"] / both[f"{meas}_a100"]
        out[f"{q}_ratio_predicted"] = both[f"{meas}_pred_h100"] / both[f"{meas}_pred_a100"]
        out[f"{q}_ratio_error_pct"] = 100.0 * (out[f"{q}_ratio_predicted"] / out[f"{q}_ratio_measured"] - 1.0)
    return out.sort_values(key).reset_index(drop=True)


def tensor_parallel_check(store, *, seed: int = 0) -> pd.DataFrame:
    """WattGPU+ on multi-GPU runs, which no training set has on the default stack: fit on Watt Counts plus
    ML.ENERGY's single-GPU runs (which calibrate its stack, vLLM 0.5), predict ML.ENERGY's tensor-parallel runs (2 to
    16 GPUs; never trained on). One row per quantity (time per output token, power per GPU) and tensor-parallel
    degree, plus "all": MdAPE (%), median ln(measured / predicted), runs."""
    frame = training_frame(store, "catalog")
    aux = auxiliary_frame(store, "catalog")
    ml = aux[aux["source_id"].eq(SOURCE)]
    single = ml[ml["num_gpus"].fillna(1).eq(1)]
    multi = ml[ml["num_gpus"].fillna(1).gt(1)].copy()
    if multi.empty:
        return pd.DataFrame(columns=["quantity", "tensor_parallel", "mdape_pct", "median_ln_ratio", "n"])
    ms = get_model_set("plus")
    train_aux = pd.concat([aux[aux["source_id"].isin(WATTCOUNTS_SOURCES)], single], ignore_index=True)
    power = ms.fit("power", target_rows(frame, "power", ms.features("power")), aux=train_aux, seed=seed)
    itl = ms.fit("itl", target_rows(frame, "itl", ms.features("itl")), aux=train_aux, seed=seed)
    multi["scenario"] = multi["scenario_detail"] = "offline"
    multi["num_requests"] = np.nan
    multi["max_output_tokens"] = multi["output_tokens"]
    multi["tensor_parallel"] = multi["num_gpus"]
    table = store.gpus().drop_duplicates("gpu_id").set_index("gpu_id")
    multi["link_gb_s"] = link_gb_s(multi["gpu_id"].map(table["interconnect"]).to_numpy(dtype=object))
    measured = {"time per output token": time_per_output_token_s(multi), "power per GPU": multi["power_w"].to_numpy(
        float)}
    predicted = {"time per output token": itl.predict(multi), "power per GPU": power.predict(multi)}
    rows = []
    tp = multi["num_gpus"].to_numpy(float)
    for q in measured:
        for degree in (None, *sorted(set(tp))):
            m = np.ones(len(tp), bool) if degree is None else tp == degree
            y, p = measured[q][m], np.asarray(predicted[q], float)[m]
            rows.append({"quantity": q, "tensor_parallel": "all" if degree is None else int(degree),
                         "mdape_pct": mdape_pct(y, p), "median_ln_ratio": float(np.median(np.log(y / p))),
                         "n": int(m.sum())})
    return pd.DataFrame(rows)


def format_external(result: ExternalValidation) -> str:
    """The validation as text: the summary, then the ratio pairs."""
    lines = [f"External validation: trained on Watt Counts only ({result.n_train_rows:,} runs), tested on "
             f"ML.ENERGY v2 (vLLM 0.5.4) runs of the shared LLMs on one GPU",
             f"  {SEEN_GPU} is in Watt Counts, {UNSEEN_GPU} is not. Absolute levels differ between the serving "
             "stacks; the H100/A100 ratio cancels a software effect that scales time, not vLLM 0.5.4's extra host "
             "time per step, which no GPU shortens.", ""]
    for r in result.summary.to_dict("records"):
        lines.append(f"  {r['model']:<44} {r['quantity']:<22} {r['what']:<52} {r['mdape_pct']:6.1f}%  n={r['n']}")
    lines += ["", "  H100-SXM5 / A100 ratios per LLM, task and batch size (measured vs predicted):"]
    for r in result.pairs.to_dict("records"):
        lines.append(f"  {r['model']:<44} {r['llm_id']:<36} {r['task']:<5} batch {int(r['batch_size']):>5}  power "
                     f"{r['power_ratio_measured']:5.2f} vs {r['power_ratio_predicted']:5.2f} "
                     f"({r['power_ratio_error_pct']:+6.1f}%)  time/token {r['time_ratio_measured']:5.2f} vs "
                     f"{r['time_ratio_predicted']:5.2f} ({r['time_ratio_error_pct']:+6.1f}%)")
    return "\n".join(lines)
