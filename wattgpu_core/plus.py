"""WattGPU+: the physically grounded model set (both targets), its intervals, ranges, files and default choice.

``plus`` (label ``WattGPU+``) pairs the power model of :mod:`~wattgpu_core.plus_power` with the ITL model of
:mod:`~wattgpu_core.plus_itl`. Both read the workload as inputs (batch size / max_num_seqs, request rate, input and
output tokens, request count, tensor-parallel degree) instead of the paper's three fixed scenarios, and both learn
from :func:`~wattgpu_core.models.auxiliary_frame` too (Watt Counts' MoE LLMs; other serving stacks only through
their own calibrations), which the evaluation filters per fold.

Every prediction carries an 80% interval: the 10% and 90% quantiles of the leave-one-GPU-out ln residuals of the
training data (per target and scenario), i.e. calibrated on GPUs the model did not see. ``evaluate`` measures the
coverage honestly by nesting (a held-out GPU's quantiles come from a leave-one-GPU-out run without that GPU).

Files: ``models/plus_itl.json`` and ``models/plus_power.json`` (plain JSON; the boosters inside are XGBoost's own
JSON text) and ``models/plus.meta.json`` (inputs, interval quantiles, the training ranges behind the
out-of-range flags, serving stacks, training-data hashes, library versions, CV metrics, and for which target and
scenario WattGPU+ measured better than the paper's models, which decides the app's default). No pickle.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from .cv import apply_intervals, interval_quantiles, mdape_pct, out_of_fold, pearson_r
from .errors import ModelNotTrainedError
from .grouped_shap import PLUS_GROUPS, grouped_explanations
from .loso import (
    leave_one_source_out,
    stack_ln_offsets,
    stack_ln_shift,
    stack_residual_quantiles,
    widen_for_calibrated_stacks,
    widen_for_stacks,
)
from .model_set import TARGET_COLUMNS, TARGET_UNITS, ModelSet
from .models import (
    PaperModelSet,
    auxiliary_frame,
    library_versions,
    model_paths,
    output_token_defaults,
    target_rows,
    training_data_hash,
    training_frame,
)
from .paths import MODELS_DIR
from .physics import DEFAULT_STACK
from .plus_itl import ITL_INPUTS, REQUIRED_INPUTS, PlusItlModel, scenario_pool
from .plus_power import POWER_INPUTS, POWER_REQUIRED, PlusPowerModel

FORMAT = "wattgpu+/1"
NAME, LABEL = "plus", "WattGPU+"
INTERVAL_LEVEL = 0.8
SPLITS = ("CV", "LOGO", "LOLO")
# Training ranges behind the out-of-range flag: GPU specs and LLM sizes.
GPU_RANGE_COLUMNS = ("memory_bandwidth_gb_s", "fp16_tensor_dense_tflops", "tdp_w", "memory_size_gb")
LLM_RANGE_COLUMNS = ("total_params_b", "active_params_b")
RANGE_LABELS = MappingProxyType({
    "memory_bandwidth_gb_s": "the GPU's memory bandwidth", "fp16_tensor_dense_tflops": "the GPU's FP16 TFLOPS",
    "tdp_w": "the GPU's TDP", "memory_size_gb": "the GPU's memory size", "total_params_b": "the LLM's parameters",
    "active_params_b": "the LLM's active parameters",
})
_RANGE_UNITS = {"memory_bandwidth_gb_s": " GB/s", "fp16_tensor_dense_tflops": " TFLOPS", "tdp_w": " W",
                "memory_size_gb": " GB", "total_params_b": "B", "active_params_b": "B"}


# --------------------------------------------------------------------------------------------------------------
# The model set
class PlusModelSet(ModelSet):
    """WattGPU+ (see the module docstring)."""

    name = NAME
    label = LABEL
    description = ("WattGPU+: calibrated roofline ITL (batch, KV cache, power ceiling, per-LLM corrections) and "
                   "utilisation-driven power; continuous workload, MoE, tensor parallel, serving stacks, 80% "
                   "intervals")
    uses_aux = True
    fits_hold_the_gil = True  # least-squares physics in numpy: cross-validation fits in processes
    interval_level = INTERVAL_LEVEL
    interval_key = "ln_quantiles"
    reads_workload = True
    gives_ttft = True

    def features(self, target: str) -> tuple[str, ...]:
        """Columns every training row must have (the models' other inputs fall back to Watt Counts defaults)."""
        if target == "itl":
            return ("scenario_detail", *REQUIRED_INPUTS)
        return tuple(dict.fromkeys(("scenario_detail", *POWER_REQUIRED)))

    def fit(self, target: str, train: pd.DataFrame, *, aux: pd.DataFrame | None = None, n_threads: int = 1,
            seed: int = 0):
        cls = PlusItlModel if target == "itl" else PlusPowerModel
        return cls.fit(train, aux=aux, seed=seed, n_threads=n_threads)

    def train(self, store, folder: Path, *, cv_records: list[dict] | None = None, seed: int = 0,
              default_for: dict | None = None) -> dict:
        """:func:`train_plus` into ``folder``."""
        return train_plus(store, folder, records=cv_records, seed=seed, default_for=default_for)

    def save(self, fitted: Mapping, meta: Mapping, folder: Path) -> None:
        """Write ``fitted`` (plain JSON, one file per target as ``meta`` names it) and ``meta`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for t, model in fitted.items():
            (folder / meta["targets"][t]["file"]).write_text(json.dumps(model.to_dict(), indent=1, allow_nan=False)
                                                             + "\n")
        model_paths(NAME, folder)["meta"].write_text(json.dumps(meta, indent=2, allow_nan=False) + "\n")

    def load(self, folder: Path) -> tuple[dict, dict]:
        """:func:`load_plus` from ``folder``."""
        return load_plus(folder)

    def explain(self, fitted, target: str, rows: pd.DataFrame, background: pd.DataFrame | None = None):
        """Exact interventional Shapley values of ``fitted[target]`` on the model rows ``rows`` over the input groups
        (:data:`~wattgpu_core.grouped_shap.PLUS_GROUPS`) against ``background`` (model rows of training
        configurations of the same scenario), as a ``shap.Explanation``: W for power, ln s for ITL."""
        if background is None:
            raise ValueError("WattGPU+ explanations need a background of training configurations")
        return grouped_explanations({target: fitted[target]}, rows, background, PLUS_GROUPS)[target]


# --------------------------------------------------------------------------------------------------------------
# Ranges and defaults
def training_ranges(frame: pd.DataFrame) -> dict:
    """[min, max] of each GPU spec and LLM size in ``frame`` (the out-of-range flag's reference)."""
    out = {}
    for c in (*GPU_RANGE_COLUMNS, *LLM_RANGE_COLUMNS):
        v = pd.to_numeric(frame[c], errors="coerce").dropna()
        out[c] = [float(v.min()), float(v.max())] if len(v) else None
    return out


def out_of_range(frame: pd.DataFrame, ranges: Mapping) -> np.ndarray:
    """Per row, the specs outside the training range, comma-separated ("" when none; unknown values count as
    outside)."""
    notes = np.full(len(frame), "", dtype=object)
    for c, bounds in ranges.items():
        if not bounds or c not in frame:
            continue
        v = pd.to_numeric(frame[c], errors="coerce").to_numpy(float)
        lo, hi = bounds
        outside = ~(v >= lo * (1 - 1e-9)) | ~(v <= hi * (1 + 1e-9))
        if not outside.any():
            continue
        name, unit = RANGE_LABELS.get(c, c), _RANGE_UNITS.get(c, "")
        span = f"{lo:,.4g}–{hi:,.4g}{unit}"
        # one text per distinct value (a catalog has few), then one lookup per row
        values, inverse = np.unique(v[outside], return_inverse=True)
        texts = np.asarray([f"{name} unknown (training range {span})" if not np.isfinite(x) else
                            f"{name} ({x:,.4g}{unit}) {'above' if x > hi else 'below'} the training range {span}"
                            for x in values], dtype=object)
        idx = np.flatnonzero(outside)
        notes[idx] = np.where(notes[idx] == "", texts[inverse.ravel()], notes[idx] + "; " + texts[inverse.ravel()])
    return notes


def default_choice(records: list[dict], challenger: str = LABEL, reference: str = "XGB") -> dict:
    """For each target and scenario, whether ``challenger`` is the better default: lower MdAPE than ``reference``
    on unseen GPUs (LOGO) and on at least two of the three splits, in the same all-GPU evaluation."""
    by = {(r["target"], r["model"], r["scenario"], r["strategy"]): r["mdape_pct"] for r in records}
    out = {}
    for target in ("power", "itl"):
        out[target] = {}
        for scen in ("offline", "server"):
            pairs = {s: (by.get((target, challenger, scen, s)), by.get((target, reference, scen, s))) for s in SPLITS}
            wins = {s: a is not None and b is not None and a < b for s, (a, b) in pairs.items()}
            out[target][scen] = {
                "default": "plus" if wins["LOGO"] and sum(wins.values()) >= 2 else "paper",
                "mdape_pct": {s: {"WattGPU+": a, "XGB": b} for s, (a, b) in pairs.items()},
            }
    return out


# --------------------------------------------------------------------------------------------------------------
# Training and files
def logo_quantiles(model_set: ModelSet, frame: pd.DataFrame, aux: pd.DataFrame | None,
                   n_jobs: int | None = None) -> dict:
    """{target: {scenario pool: [lower, upper]}}: the interval quantiles of ``model_set``'s leave-one-GPU-out ln
    residuals on ``frame`` (auxiliary rows filtered per fold)."""
    rows = {t: target_rows(frame, t, model_set.features(t)) for t in model_set.targets}
    oof = out_of_fold(model_set, rows, ("LOGO",), aux_by_target={t: aux for t in rows} if aux is not None else None,
                      n_jobs=n_jobs)
    out = {}
    for t, r in rows.items():
        q = interval_quantiles(r[TARGET_COLUMNS[t]], oof[(t, "LOGO")][0],
                               scenario_pool(r["scenario_detail"]), INTERVAL_LEVEL)
        out[t] = {k: list(v) for k, v in q.items()}
    return out


def hash_columns(model_set: PlusModelSet) -> list[str]:
    """The training-data columns the WattGPU+ metadata hashes (every input of both models and the targets)."""
    return sorted({c for t in model_set.targets for c in model_set.features(t)} | set(ITL_INPUTS)
                  | set(POWER_INPUTS) | {"run_id", "llm_id", "gpu_id", "power_w", "itl_s", "tdp_w", "serving_stack"})


def train_plus(store, models_dir: Path = MODELS_DIR, *, records: list[dict] | None = None, seed: int = 0,
               n_jobs: int | None = None, default_for: dict | None = None) -> dict:
    """Fit WattGPU+ on the store (catalog specs; Watt Counts runs plus the auxiliary runs), write its files and
    return the metadata. ``records`` are the all-GPU evaluation records of both model sets (stored as the CV
    metrics, and deciding the default per target and scenario unless ``default_for`` gives it)."""
    model_set = PlusModelSet()
    frame = training_frame(store, "catalog")
    aux = auxiliary_frame(store, "catalog")
    paths = model_paths(NAME, Path(models_dir))
    targets, fitted = {}, {}
    for t in model_set.targets:
        rows = target_rows(frame, t, model_set.features(t))
        model = fitted[t] = model_set.fit(t, rows, aux=aux, seed=seed, n_threads=1)
        targets[t] = {"file": paths[t].name, "unit": TARGET_UNITS[t], "kind": model.to_dict().get("kind", type(
            model).__name__), "inputs": list(model_set.features(t)), "n_rows": int(len(rows)),
            "itl_definitions": sorted(rows["itl_definition"].dropna().unique().tolist()) if t == "itl" else None}
    cols = [c for c in hash_columns(model_set) if c in frame.columns]
    aux_cols = [c for c in cols if c in aux.columns]
    same_stack = aux["serving_stack"].eq(DEFAULT_STACK)
    range_rows = pd.concat([frame, aux[same_stack]], ignore_index=True)
    # A stack is calibrated when some target learnt from its runs: runs with every input the model reads and the
    # target measured (ML.ENERGY v1's 2023 runs have neither the LLMs' shapes nor a time per token).
    stacks = sorted({DEFAULT_STACK, *(s for t in fitted for s in target_rows(
        usable_inputs(aux, model_set, t), t, ())["serving_stack"].dropna().unique().tolist())})
    loso = [r for r in (records or []) if r.get("strategy") == "LOSO"]
    if records is not None and not loso:  # records of a run without LOSO: measure it here
        loso, _ = leave_one_source_out(model_set, frame, aux, n_jobs=n_jobs)
    loso = [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in loso]
    meta = {
        "model_set": NAME,
        "format": FORMAT,
        "label": LABEL,
        "description": model_set.description,
        "trained_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "targets": targets,
        "intervals": {"level": INTERVAL_LEVEL, "method": "split-conformal on leave-one-GPU-out ln residuals, per "
                      "target and scenario (offline / server)",
                      "ln_quantiles": logo_quantiles(model_set, frame, aux, n_jobs),
                      "paper_ln_quantiles": logo_quantiles(PaperModelSet(), frame, None, n_jobs),
                      "stack_ln_offsets": {t: stack_ln_offsets(fitted[t], t, usable_inputs(aux, model_set, t))
                                           for t in fitted},
                      "uncalibrated_stack_method": "a stack without a calibration is predicted as the default stack; "
                      "its interval is widened by the range of the calibrated stacks' ln offsets (median ln measured "
                      "/ default-stack prediction per stack; the default stack's 0 included)",
                      "stack_residual_ln_quantiles": {t: stack_residual_quantiles(
                          fitted[t], t, usable_inputs(aux, model_set, t), INTERVAL_LEVEL) for t in fitted},
                      "calibrated_stack_method": "a prediction on a calibrated stack other than the default reaches at "
                      "least the split-conformal quantiles of ln measured / prediction on that stack's runs and on "
                      "every calibrated stack's runs pooled (the stack's own only from 10 runs)"},
        "ranges": training_ranges(range_rows),
        "serving": {"default_stack": DEFAULT_STACK,
                    "default_stack_setup": "Watt Counts: vLLM 0.14.1, one GPU, 16-bit weights, max_model_len 1024, "
                                           "gpu_memory_utilization 0.9 (0.8 below 20 GB)",
                    "calibrated_stacks": stacks},
        "training_data": {
            "source_ids": sorted(frame["source_id"].unique().tolist()),
            "aux_source_ids": sorted(aux["source_id"].unique().tolist()),
            "mode": "catalog",
            "n_rows": int(len(frame)),
            "n_aux_rows": int(len(aux)),
            "sha256": training_data_hash(frame, cols),
            "aux_sha256": training_data_hash(aux, aux_cols),
            "hash_columns": cols,
            "gpu_ids": sorted(frame["gpu_id"].unique().tolist()),
            "llm_ids": sorted(set(frame["llm_id"]) | set(aux.loc[same_stack, "llm_id"])),
            **output_token_defaults(frame),
        },
        "library_versions": library_versions(),
        "seed": seed,
        "cv_metrics": [r for r in (records or []) if r["model"] == LABEL and r["strategy"] != "LOSO"],
        "loso_metrics": loso,
        "default_for": default_for if default_for is not None else (default_choice(records) if records else None),
    }
    model_set.save(fitted, meta, models_dir)
    return meta


def load_plus(models_dir: Path = MODELS_DIR) -> tuple[dict, dict]:
    """The fitted WattGPU+ models ({target: model}) and metadata from ``models_dir`` (plain JSON)."""
    paths = model_paths(NAME, models_dir)
    if not paths["meta"].is_file():
        raise ModelNotTrainedError(f"no model files for 'plus' in {models_dir}; run `python -m wattgpu_core train "
                                   f"--model-set plus`")
    meta = json.loads(paths["meta"].read_text())
    fitted = {}
    for t, info in meta["targets"].items():
        path = Path(models_dir) / info["file"]
        if not path.is_file():
            raise ModelNotTrainedError(f"model file {path} is missing; run `python -m wattgpu_core train "
                                       f"--model-set plus`")
        d = json.loads(path.read_text())
        fitted[t] = PlusItlModel.from_dict(d) if t == "itl" else PlusPowerModel.from_dict(d)
    return fitted, meta


def usable_inputs(rows: pd.DataFrame, model_set: ModelSet, target: str) -> pd.DataFrame:
    """The rows of ``rows`` with every input of ``model_set``'s ``target`` model (the target itself may be missing:
    runs of other sources carry time per token as throughput)."""
    cols = [c for c in model_set.features(target) if c != "scenario_detail"]
    return rows[rows[cols].notna().all(axis=1).to_numpy()].reset_index(drop=True)


def calibrated_stacks(meta: Mapping) -> list[str]:
    """The serving stacks WattGPU+ is calibrated for (the default stack first): the choices a prediction may name.
    A stack outside this list is predicted as the default stack, and the prediction says so."""
    serving = meta.get("serving") or {}
    default = serving.get("default_stack", DEFAULT_STACK)
    fitted = serving.get("calibrated_stacks") or [default]
    return [default, *sorted(s for s in fitted if s != default)]


def interval_bounds(meta: Mapping, target: str, pred: np.ndarray, scenario_detail, uncalibrated=None,
                    quantiles_key: str = "ln_quantiles", stacks=None) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of the stored 80% intervals around predictions ``pred``; rows in ``uncalibrated`` (on a
    serving stack WattGPU+ has no calibration for, predicted as the default stack) widened by the calibrated stacks'
    offsets (:func:`~wattgpu_core.loso.stack_ln_shift`); rows whose ``stacks`` entry names a calibrated stack other
    than the default widened to that stack's residual quantiles
    (:func:`~wattgpu_core.loso.widen_for_calibrated_stacks`)."""
    q = {k: tuple(v) for k, v in meta["intervals"][quantiles_key].get(target, {}).items()}
    lo, hi = apply_intervals(pred, scenario_pool(scenario_detail), q)
    if uncalibrated is not None:
        lo, hi = widen_for_stacks(lo, hi, uncalibrated, uncalibrated_stack_shift(meta, target))
    if stacks is not None:
        residual = ((meta.get("intervals") or {}).get("stack_residual_ln_quantiles") or {}).get(target)
        lo, hi = widen_for_calibrated_stacks(lo, hi, pred, stacks, {k: tuple(v) for k, v in (residual or {}).items()},
                                             (meta.get("serving") or {}).get("default_stack", DEFAULT_STACK))
    return lo, hi


def uncalibrated_stack_shift(meta: Mapping, target: str) -> tuple[float, float]:
    """(lower, upper) ln widening of an uncalibrated stack's interval for ``target`` (0, 0 for models trained before
    the offsets were stored)."""
    return stack_ln_shift(((meta.get("intervals") or {}).get("stack_ln_offsets") or {}).get(target))


# --------------------------------------------------------------------------------------------------------------
# MoE: outside the paper's data, so checked on its own
def moe_evaluation(frame: pd.DataFrame, aux: pd.DataFrame, *, n_jobs: int | None = None) -> pd.DataFrame:
    """WattGPU+ on Watt Counts' MoE LLMs (which the paper excludes), out of fold: ``LOGO`` leaves one GPU out of
    the dense and MoE runs alike and predicts that GPU's MoE runs; ``LOLO`` leaves one MoE LLM out of the training
    runs and predicts it (physics only: active parameters and the experts a batch touches). One row per target,
    scenario and split: MdAPE (%), Pearson r, runs."""
    model_set = PlusModelSet()
    moe = aux[aux["source_id"].isin(("wattcounts", "wattcounts_upload"))
              & (aux["total_params_b"] != aux["active_params_b"])].reset_index(drop=True)
    if moe.empty:
        return pd.DataFrame(columns=["target", "scenario", "strategy", "mdape_pct", "pearson_r", "n_rows"])
    jobs = []
    for target in model_set.targets:
        rows = target_rows(frame, target, model_set.features(target))
        test_all = target_rows(moe, target, model_set.features(target))
        for strategy, col in (("LOGO", "gpu_id"), ("LOLO", "llm_id")):
            for key in sorted(test_all[col].unique()):
                jobs.append((target, strategy, rows[rows[col] != key] if col == "gpu_id" else rows,
                             aux[aux[col] != key], test_all[test_all[col] == key]))

    def run(job):
        target, strategy, train, aux_rows, test = job
        model = model_set.fit(target, train, aux=aux_rows)
        return target, strategy, test, np.asarray(model.predict(test), dtype=float)

    with ThreadPoolExecutor(max_workers=n_jobs or 1) as pool:
        results = list(pool.map(run, jobs))
    out = []
    for target in model_set.targets:
        for strategy in ("LOGO", "LOLO"):
            parts = [(t, p) for tg, s, t, p in results if tg == target and s == strategy]
            test = pd.concat([t for t, _ in parts], ignore_index=True)
            pred = np.concatenate([p for _, p in parts])
            y = test[TARGET_COLUMNS[target]].to_numpy(float)
            pool_ = scenario_pool(test["scenario_detail"])
            for scen in ("offline", "server"):
                m = pool_ == scen
                out.append({"target": target, "scenario": scen, "strategy": strategy,
                            "mdape_pct": mdape_pct(y[m], pred[m]), "pearson_r": pearson_r(y[m], pred[m]),
                            "n_rows": int(m.sum()), "n_llms": int(test["llm_id"].nunique())})
    return pd.DataFrame(out)
