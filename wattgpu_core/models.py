"""Models: the training data, the paper's two XGBoost models, model sets, and their files in ``models/``.

A *model set* is a named family of one model per target ("power": mean power in W; "itl": inter-token latency in
s). Its ``fit(target, train_rows)`` returns a fitted model whose ``predict(rows)`` gives values in those units.
The evaluation harness and the prediction API only use that interface (:class:`~wattgpu_core.model_set.ModelSet`), so
later model sets are evaluated by the same protocol and reported side by side; :mod:`~wattgpu_core.registry` is the
registry.

The paper's set (``"paper"``, shown as ``XGB``) is WattGPU's: power is learned as power/TDP, ITL as ln ITL, each
with the paper's features and hyper-parameters, after the paper's preprocessing (mean imputer + standard scaler on
numbers, most-frequent imputer + ordinal encoder with unknown = -1 on categories) fitted on the training rows only.
The preprocessing is plain numpy (:class:`Preprocessor`) so that it can be saved as JSON parameters; it computes
exactly what the sklearn ``ColumnTransformer`` of the paper computes (a test checks that). Identical feature rows
are collapsed into one row weighted by their count before boosting: for squared error the gradient and hessian
sums, hence every split, leaf value and prediction, are the same, and training is several times faster.

Files: ``models/<set>_<target>.json`` (XGBoost's own JSON) and ``models/<set>.meta.json`` (features,
preprocessing parameters, hyper-parameters, training-data hash, library versions, CV metrics, date). No pickle.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import importlib.metadata
import json
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from .errors import ModelNotTrainedError, WattGPUError
from .features import add_features, catalog_values, join_specs, scenario_detail, with_columns
from .model_files import reading
from .model_set import TARGET_COLUMNS, TARGET_UNITS, TARGETS, FramePrepared, ModelSet
from .paths import MODELS_DIR
from .physics import serving_stack
from .xgb import load as load_xgboost

MODES = ("catalog", "paper")  # GPU inputs: our catalog's specs, or the paper's own gpu_features values
WATTCOUNTS_SOURCES = ("wattcounts_upload", "wattcounts")  # the original subset format wins over the copy
WATTCOUNTS_MAX_TOKENS = 256.0  # Watt Counts' SamplingParams max_tokens
# Catalog columns WattGPU+ reads beyond the paper's features (joined by ``join_extra_specs``).
EXTRA_GPU_COLUMNS = ("architecture", "vendor", "sm_count", "l2_cache_mb", "process_nm", "form_factor_class")
EXTRA_LLM_COLUMNS = ("head_dim", "num_experts", "experts_per_token", "num_shared_experts", "vocab_size",
                     "intermediate_size", "moe_intermediate_size", "architecture_class")


# --------------------------------------------------------------------------------------------------------------
# Training data
def training_gpus(store, mode: str = "catalog") -> pd.DataFrame:
    """The GPU table the models see: the catalog, with the paper's own values for its 8 GPUs in ``paper`` mode."""
    if mode not in MODES:
        raise WattGPUError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    gpus = store.gpus()
    gpus["gpu_label"] = gpus["gpu_id"]
    if mode == "paper":
        paper = store.paper_gpu_features().set_index("gpu_id")
        gpus = gpus.set_index("gpu_id")
        ids = paper.index.intersection(gpus.index)
        for col in paper.columns:
            if col in gpus.columns and col not in ("source",):
                gpus.loc[ids, col] = paper.loc[ids, col].to_numpy()
        gpus.loc[ids, "gpu_label"] = paper.loc[ids, "paper_gpu_db_name"].to_numpy()
        gpus = gpus.reset_index()
    return gpus


def wattcounts_runs(store) -> pd.DataFrame:
    """The Watt Counts runs the paper's models learn from, in store order.

    Our per-experiment copy (source ``wattcounts``), except that for every (LLM, GPU) pair of which the store holds
    runs uploaded in the original subset format (``wattcounts_upload``, with the paper's exact per-request server
    ITL) those runs replace the copy's.
    """
    runs = store.runs(source_ids=list(WATTCOUNTS_SOURCES))
    if runs.empty:
        raise ModelNotTrainedError("the store holds no Watt Counts runs; rebuild it with `python -m wattgpu_core "
                                   "build-store`")
    upload = runs["source_id"].eq("wattcounts_upload").to_numpy()
    if upload.any():
        pair = (runs["llm_id"] + "|" + runs["gpu_id"]).to_numpy()
        runs = runs[upload | ~np.isin(pair, pair[upload])]
    return runs.reset_index(drop=True)


def join_extra_specs(frame: pd.DataFrame, gpus: pd.DataFrame, llms: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (with llm_id, gpu_id) plus the catalog columns beyond the paper's features that WattGPU+ reads
    (:data:`EXTRA_GPU_COLUMNS`, :data:`EXTRA_LLM_COLUMNS`); a new frame."""
    out, joined = frame.copy(), {}
    for key, table, cols in (("gpu_id", gpus, EXTRA_GPU_COLUMNS), ("llm_id", llms, EXTRA_LLM_COLUMNS)):
        joined.update(catalog_values(out, key, table, [c for c in cols if c in table.columns],
                                     lambda c, t=table: t[c].dtype == object or str(t[c].dtype) in ("str", "string")))
    return with_columns(out, joined)


def add_workload_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` plus ``serving_stack`` ("vLLM 0.14": framework and major.minor version; one stack per source where
    the version is not stated, see :func:`~wattgpu_core.physics.serving_stack`) and
    ``max_output_tokens`` (256 for Watt Counts runs, whose prompts were generated with max_tokens=256; the mean
    output elsewhere); a new frame."""
    out = frame.copy()
    fw = out["framework"] if "framework" in out else pd.Series(None, index=out.index, dtype=object)
    ver = out["framework_version"] if "framework_version" in out else pd.Series(None, index=out.index, dtype=object)
    src = out["source_id"] if "source_id" in out else None
    out["serving_stack"] = serving_stack(fw, ver, src)
    wattcounts = out["source_id"].isin(WATTCOUNTS_SOURCES).to_numpy() if "source_id" in out else np.zeros(len(out),
                                                                                                          bool)
    out["max_output_tokens"] = np.where(wattcounts, WATTCOUNTS_MAX_TOKENS, out["output_tokens"].to_numpy(float))
    return out


def _frame_of(runs: pd.DataFrame, store, mode: str) -> pd.DataFrame:
    gpus = training_gpus(store, mode)
    llms = store.llms()
    frame = join_specs(runs, gpus, llms)
    frame["gpu_label"] = frame["gpu_id"].map(gpus.set_index("gpu_id")["gpu_label"])
    frame = join_extra_specs(frame, gpus, llms)
    frame["scenario_detail"] = scenario_detail(frame["scenario"], frame["request_rate_qps"])
    return add_workload_columns(add_features(frame))


def training_frame(store, mode: str = "catalog") -> pd.DataFrame:
    """The paper's training rows: Watt Counts runs of dense LLMs with tokens > 0, specs joined, features added.

    One row per run, in store order, with ``scenario_detail`` (offline / server_low / server_high), the engineered
    features, the targets ``power_w`` and ``itl_s`` (see ``itl_definition``), ``tdp_w`` and ``gpu_label`` (the GPU
    name the paper groups by: its gpu_db_name in ``paper`` mode, our gpu_id otherwise), plus the extra catalog
    columns and workload columns of :func:`join_extra_specs` and :func:`add_workload_columns`.
    """
    runs = wattcounts_runs(store)
    runs = runs[~(runs["output_tokens_total"] == 0)]
    frame = _frame_of(runs, store, mode)
    dense = frame["total_params_b"] == frame["active_params_b"]  # the paper's MoE filter
    return frame[dense.to_numpy()].reset_index(drop=True)


def auxiliary_frame(store, mode: str = "catalog") -> pd.DataFrame:
    """Runs the paper's models never see, for model sets that learn from more (``ModelSet.uses_aux``): Watt Counts
    runs of MoE LLMs, and every run of the other sources and uploads (other serving stacks), with tokens > 0 and a
    GPU row in the catalog; the same columns as :func:`training_frame`. Runs of other sources shorter than
    :data:`STEADY_POWER_MIN_S` have no power and energy here (their mean power is not the steady power); their time
    per token stays.

    The evaluation passes these rows to ``fit`` filtered per fold, so that no fold sees its test group.
    """
    runs = store.runs()
    wc = wattcounts_runs(store)
    runs = runs[~runs["run_id"].isin(wc["run_id"]) & ~runs["source_id"].isin(WATTCOUNTS_SOURCES)]
    runs = pd.concat([wc, runs], ignore_index=True)
    runs = runs[~(runs["output_tokens_total"] == 0)]
    frame = _frame_of(runs, store, mode)
    dense_wc = frame["source_id"].isin(WATTCOUNTS_SOURCES).to_numpy() \
        & (frame["total_params_b"] == frame["active_params_b"]).to_numpy()
    keep = ~dense_wc & frame["memory_bandwidth_gb_s"].notna().to_numpy() & frame["total_params_b"].notna().to_numpy()
    frame = frame[keep].reset_index(drop=True)
    short = (frame["duration_s"] < STEADY_POWER_MIN_S).to_numpy() \
        & ~frame["source_id"].isin(WATTCOUNTS_SOURCES).to_numpy()
    frame.loc[short, ["power_w", "energy_per_token_j"]] = np.nan
    return frame


# A run's mean power is the steady power only when the run is long against the sensor: NVML's power reading averages
# over about a second and the run starts from an idle GPU, so the mean of a short run is pulled towards idle.
# TokenPowerBench's Llama-3.1-8B runs show it: median 192 W for 1-2 s runs, 253 W for 2-5 s, 312 W for 5-10 s, 365 W
# for 10-20 s and 391 W for 20-60 s (batch 128-256, the same GPU). In the runs WattGPU+ learns from besides the
# paper's, power (and energy) is left out for runs shorter than this; their time per token is kept. Watt Counts' own
# short runs (its MoE LLMs here) keep their power: the paper's protocol trains and tests on that source's short runs
# of dense LLMs, and one source's runs are read one way.
STEADY_POWER_MIN_S = 10.0


def target_rows(frame: pd.DataFrame, target: str, features: tuple[str, ...]) -> pd.DataFrame:
    """Rows usable for ``target``: finite target and no missing feature (the paper's ``clean_df``)."""
    need = [TARGET_COLUMNS[target], *features] + (["tdp_w"] if target == "power" else [])
    ok = frame[need].notna().all(axis=1)
    y = frame[TARGET_COLUMNS[target]].to_numpy(dtype=float)
    ok &= np.isfinite(y) & (y > 0)
    return frame[ok.to_numpy()].reset_index(drop=True)


def training_data_hash(frame: pd.DataFrame, columns: list[str]) -> str:
    """sha256 of the training rows (``columns`` as CSV with full float precision, rows sorted by run_id)."""
    cols = ["run_id", *[c for c in columns if c != "run_id"]]
    data = frame[cols].sort_values("run_id", kind="mergesort")
    text = data.to_csv(index=False, float_format="%.17g", lineterminator="\n")
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------------------------------------------
# Preprocessing
@dataclass(frozen=True)
class FeatureSpec:
    """Model inputs: numeric columns, then categorical (object) columns, in the order the model sees them."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.numeric + self.categorical


def _filled(values: pd.Series, mode: str) -> np.ndarray:
    """A categorical column as strings with missing values replaced by ``mode``."""
    miss = values.isna().to_numpy()
    out = values.to_numpy(dtype=object).copy()
    out[miss] = mode
    return out.astype(str)


@dataclass(frozen=True)
class Preprocessor:
    """The paper's ColumnTransformer as parameters: mean-impute + standardise numbers, mode-impute + ordinal-encode
    categories (unknown -> -1). Fitted on training rows only; saved in the metadata JSON."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    means: tuple[float, ...]
    centres: tuple[float, ...]
    scales: tuple[float, ...]
    modes: tuple[str, ...]
    categories: tuple[tuple[str, ...], ...]

    @classmethod
    def fit(cls, frame: pd.DataFrame, spec: FeatureSpec) -> Preprocessor:
        x = frame[list(spec.numeric)].to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            means = np.nanmean(x, axis=0) if len(x) else np.zeros(x.shape[1])
        means = np.where(np.isfinite(means), means, 0.0)
        x = np.where(np.isnan(x), means, x)
        centre = x.mean(axis=0)
        scale = x.std(axis=0)
        # sklearn's _handle_zeros_in_scale: constant columns keep scale 1
        scale = np.where(scale < 10 * np.finfo(float).eps * np.maximum(np.abs(centre), 1.0), 1.0, scale)
        modes, cats = [], []
        for col in spec.categorical:
            values = frame[col]
            present = values[values.notna()].astype(str).to_numpy()
            uniq, counts = np.unique(present, return_counts=True)
            mode = str(uniq[np.argmax(counts)]) if len(uniq) else "missing"  # ties -> smallest, as sklearn
            modes.append(mode)
            cats.append(tuple(str(u) for u in np.unique(_filled(values, mode))))
        return cls(spec.numeric, spec.categorical, tuple(float(v) for v in means),
                   tuple(float(v) for v in centre), tuple(float(v) for v in scale), tuple(modes), tuple(cats))

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Model input matrix (float64): standardised numbers, then ordinal codes."""
        x = frame[list(self.numeric)].to_numpy(dtype=float)
        x = (np.where(np.isnan(x), np.asarray(self.means), x) - np.asarray(self.centres)) / np.asarray(self.scales)
        codes = []
        for col, mode, cats in zip(self.categorical, self.modes, self.categories, strict=True):
            # unknown categories -> -1 (OrdinalEncoder's handle_unknown="use_encoded_value", unknown_value=-1)
            codes.append(pd.Index(list(cats), dtype=object).get_indexer(_filled(frame[col], mode)).astype(float))
        return np.column_stack([x, *codes]) if codes else x

    def to_dict(self) -> dict:
        return {"numeric": list(self.numeric), "categorical": list(self.categorical), "means": list(self.means),
                "centres": list(self.centres), "scales": list(self.scales), "modes": list(self.modes),
                "categories": [list(c) for c in self.categories]}

    @classmethod
    def from_dict(cls, d: Mapping) -> Preprocessor:
        return cls(tuple(d["numeric"]), tuple(d["categorical"]), tuple(float(v) for v in d["means"]),
                   tuple(float(v) for v in d["centres"]), tuple(float(v) for v in d["scales"]), tuple(d["modes"]),
                   tuple(tuple(c) for c in d["categories"]))


# --------------------------------------------------------------------------------------------------------------
# Target transforms
def encode_target(kind: str, frame: pd.DataFrame) -> np.ndarray:
    if kind == "fraction_of_tdp":
        return frame["power_w"].to_numpy(dtype=float) / frame["tdp_w"].to_numpy(dtype=float)
    if kind == "log":
        return np.log(frame["itl_s"].to_numpy(dtype=float))
    raise ValueError(kind)


def decode_target(kind: str, raw: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
    raw = np.asarray(raw, dtype=float)
    if kind == "fraction_of_tdp":
        return raw * frame["tdp_w"].to_numpy(dtype=float)
    if kind == "log":
        return np.exp(raw)
    raise ValueError(kind)


# --------------------------------------------------------------------------------------------------------------
# Fitted models and model sets
@dataclass(frozen=True)
class FittedModel:
    """One fitted target model: preprocessing, an XGBoost booster and the target transform."""

    target: str
    preprocessor: Preprocessor
    booster: object  # xgboost.Booster (never mutated after fitting)
    target_transform: str
    params: Mapping = field(default_factory=dict)

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        x = self.preprocessor.transform(frame)
        if len(x) == 0:
            return np.zeros(0)
        return np.asarray(self.booster.inplace_predict(x), dtype=float)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Predictions in the target's unit (W or s), one per row of ``frame`` (spec columns and features)."""
        return decode_target(self.target_transform, self.predict_raw(frame), frame)

    @property
    def feature_names(self) -> list[str]:
        """The model's inputs in matrix order (numeric, then categorical)."""
        return [*self.preprocessor.numeric, *self.preprocessor.categorical]

    @cached_property
    def tree_explainer(self):
        """shap's ``TreeExplainer`` of the booster (exact TreeSHAP in the model's output space), built once per
        fitted model (parsing the trees takes a fraction of a second)."""
        import shap  # lazy: shap takes seconds to import and only explanations need it

        return shap.TreeExplainer(self.booster)

    def explain(self, frame: pd.DataFrame):
        """A ``shap.Explanation`` of ``frame``'s rows in the model's output space (power / TDP, or ln ITL): values
        (rows x features), base_values, data (the model's input matrix), display_data (the features' own values)
        and feature_names; base value + row sum = :meth:`predict_raw`."""
        x = self.preprocessor.transform(frame)
        explanation = self.tree_explainer(x)
        explanation.feature_names = self.feature_names
        explanation.display_data = frame[self.feature_names].to_numpy(dtype=object)
        return explanation


def _collapse_duplicates(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Identical feature rows as one row: (unique rows in lexicographic order, mean target, count as weight)."""
    uniq, inverse = np.unique(x, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    counts = np.bincount(inverse, minlength=len(uniq)).astype(float)
    means = np.bincount(inverse, weights=y, minlength=len(uniq)) / counts
    return uniq, means, counts


PAPER_FEATURES: Mapping[str, FeatureSpec] = MappingProxyType({
    "power": FeatureSpec(
        numeric=("log_total_params_b", "num_key_value_heads", "num_layers", "memory_bandwidth_gb_s", "boost_ratio",
                 "transistor_count_m", "base_clock_mhz", "release_year", "bandwidth_latency_s"),
        categorical=("scenario_detail", "model_type"),
    ),
    "itl": FeatureSpec(
        numeric=("total_params_b", "hidden_size", "num_attention_heads", "num_key_value_heads", "num_layers",
                 "memory_bandwidth_gb_s", "memory_size_gb", "fp16_tensor_dense_tflops", "release_year",
                 "bandwidth_latency_s", "compute_latency_s"),
        categorical=("scenario_detail", "model_type", "memory_type"),
    ),
})
# Our column names -> the notebook's.
PAPER_FEATURE_NAMES = MappingProxyType({
    "scenario_detail": "scenario", "log_total_params_b": "log_total_b_params", "total_params_b": "total_b_params",
    "boost_ratio": "boost_percentage", "bandwidth_latency_s": "bandwidth_latency",
    "fp16_tensor_dense_tflops": "tflops_16b", "compute_latency_s": "compute_latency_s",
})
PAPER_PARAMS: Mapping[str, Mapping] = MappingProxyType({
    "power": MappingProxyType({"max_depth": 6, "reg_lambda": 150, "n_estimators": 200}),
    "itl": MappingProxyType({"max_depth": 5, "reg_lambda": 100, "n_estimators": 100}),
})
PAPER_TARGET_TRANSFORMS = MappingProxyType({"power": "fraction_of_tdp", "itl": "log"})


def _boost(target: str, x: np.ndarray, y: np.ndarray, w: np.ndarray, n_threads: int, seed: int):
    """An XGBoost booster with the paper's hyper-parameters (all others at XGBoost 3.0.4 defaults)."""
    xgb = load_xgboost()
    hp = PAPER_PARAMS[target]
    params = {"objective": "reg:squarederror", "max_depth": hp["max_depth"], "lambda": hp["reg_lambda"],
              "nthread": int(n_threads), "seed": int(seed)}
    dtrain = xgb.DMatrix(x, label=y, weight=w, nthread=int(n_threads))
    booster = xgb.Booster(params, [dtrain])
    _boosting_rounds(booster, dtrain, hp["n_estimators"])
    booster.set_param({"nthread": 1})
    return booster


def _boosting_rounds(booster, dtrain, rounds: int, *, direct: bool = True) -> None:
    """``rounds`` boosting iterations: what ``xgb.train`` does without its callbacks.

    ``Booster.update`` re-reads the matrix's feature names through several C calls every round while holding the
    GIL, which serialises the threads of the evaluation; the direct call makes exactly the same C call
    (``XGBoosterUpdateOneIter``) without that check (the names never change here). Falls back to
    ``Booster.update`` if this XGBoost lacks the entry point; a test checks both give identical boosters.
    """
    core = load_xgboost().core
    lib = getattr(core, "_LIB", None)
    if not direct or lib is None or not hasattr(lib, "XGBoosterUpdateOneIter"):
        for i in range(rounds):
            booster.update(dtrain, i)
        return
    booster.update(dtrain, 0)  # validates and records the feature info once
    for i in range(1, rounds):
        core._check_call(lib.XGBoosterUpdateOneIter(booster.handle, ctypes.c_int(i), dtrain.handle))


class PaperModelSet(ModelSet):
    """WattGPU's XGBoost models with the paper's features, preprocessing and hyper-parameters (paper-spec §3)."""

    name = "paper"
    label = "XGB"
    description = "WattGPU paper: XGBoost on power/TDP and ln ITL, paper features (Watt Counts workload only)"
    interval_key = "paper_ln_quantiles"

    def features(self, target: str) -> tuple[str, ...]:
        return PAPER_FEATURES[target].columns

    def covers(self, rows: pd.DataFrame) -> np.ndarray:
        """The paper's models learnt dense LLMs in 16-bit weights on one GPU (Watt Counts): a MoE LLM, a quantised
        checkpoint or a tensor-parallel replica is outside what they model."""
        n = len(rows)

        def col(name, fill):
            return rows[name].to_numpy(dtype=float, na_value=fill) if name in rows else np.full(n, fill)

        moe = rows["is_moe"].fillna(False).to_numpy(dtype=bool) if "is_moe" in rows else np.zeros(n, bool)
        sixteen_bit = np.abs(col("weight_bytes_per_param", 2.0) - 2.0) < 0.05
        return ~moe & (col("tensor_parallel", 1.0) <= 1) & sixteen_bit

    def fit(self, target: str, train: pd.DataFrame, *, n_threads: int = 1, seed: int = 0, aux=None) -> FittedModel:
        """The paper's model fitted on ``train`` (``aux`` is ignored: the paper learns from its rows only)."""
        spec = PAPER_FEATURES[target]
        transform = PAPER_TARGET_TRANSFORMS[target]
        pre = Preprocessor.fit(train, spec)
        x, y, w = _collapse_duplicates(pre.transform(train), encode_target(transform, train))
        booster = _boost(target, x, y, w, n_threads, seed)
        return FittedModel(target, pre, booster, transform, MappingProxyType(dict(PAPER_PARAMS[target])))

    def prepare(self, target: str, rows: pd.DataFrame, aux: pd.DataFrame | None = None):
        spec = PAPER_FEATURES[target]
        if rows[list(spec.columns)].isna().to_numpy().any():
            return FramePrepared(self, target, rows)  # imputation needed: take the general path
        return _PaperPrepared.build(target, rows)

    def train(self, store, folder: Path, *, cv_records: list[dict] | None = None, seed: int = 0,
              default_for: dict | None = None) -> dict:
        """Fit both targets on the store's Watt Counts runs (catalog specs), write ``<set>_<target>.json``
        (XGBoost's own JSON) and ``<set>.meta.json`` into ``folder`` and return the metadata. Deterministic: the same
        data give byte-identical files (single-threaded boosting, fixed seed)."""
        model_set, name = self, self.name
        frame = training_frame(store, "catalog")
        fitted = fit_model_set(model_set, frame, n_threads=1, seed=seed)
        paths = model_paths(name, Path(folder))
        targets = {}
        for t, model in fitted.items():
            rows = target_rows(frame, t, model_set.features(t))
            targets[t] = {
                "file": paths[t].name,
                "unit": TARGET_UNITS[t],
                "target_transform": model.target_transform,
                "features": list(model_set.features(t)),
                "paper_feature_names": [PAPER_FEATURE_NAMES.get(c, c) for c in model_set.features(t)],
                "preprocessor": model.preprocessor.to_dict(),
                "hyper_parameters": dict(model.params),
                "n_rows": int(len(rows)),
                "itl_definitions": sorted(rows["itl_definition"].dropna().unique().tolist()) if t == "itl" else None,
            }
        hash_cols = sorted({c for t in model_set.targets for c in model_set.features(t)}
                           | {"llm_id", "gpu_id", "power_w", "itl_s", "tdp_w"})
        meta = {
            "model_set": name,
            "label": model_set.label,
            "description": model_set.description,
            "trained_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "targets": targets,
            "training_data": {
                "source_ids": sorted(frame["source_id"].unique().tolist()),
                "mode": "catalog",
                "n_rows": int(len(frame)),
                "sha256": training_data_hash(frame, hash_cols),
                "hash_columns": hash_cols,
                "gpu_ids": sorted(frame["gpu_id"].unique().tolist()),
                "llm_ids": sorted(frame["llm_id"].unique().tolist()),
                **output_token_defaults(frame),
            },
            "library_versions": library_versions(),
            "seed": seed,
            "cv_metrics": cv_records or [],
        }
        self.save(fitted, meta, folder)
        return meta

    def save(self, fitted: Mapping[str, FittedModel], meta: Mapping, folder: Path) -> None:
        """Write ``fitted`` (XGBoost's own JSON, one file per target as ``meta`` names it) and ``meta`` into
        ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for t, model in fitted.items():
            model.booster.save_model(str(folder / meta["targets"][t]["file"]))
        model_paths(self.name, folder)["meta"].write_text(json.dumps(meta, indent=2, sort_keys=False,
                                                                     allow_nan=False) + "\n")

    def load(self, folder: Path) -> tuple[dict[str, FittedModel], dict]:
        """The fitted models and metadata in ``folder`` (XGBoost JSON + metadata JSON)."""
        xgb = load_xgboost()
        models_dir = Path(folder)
        meta = read_metadata(self.name, models_dir)
        fitted = {}
        for t, info in meta["targets"].items():
            path = Path(models_dir) / info["file"]
            if not path.is_file():
                raise ModelNotTrainedError(f"model file {path} is missing; run `python -m wattgpu_core train`")
            booster = xgb.Booster()
            booster.load_model(str(path))
            booster.set_param({"nthread": 1})
            fitted[t] = FittedModel(t, Preprocessor.from_dict(info["preprocessor"]), booster, info["target_transform"],
                                    MappingProxyType(dict(info["hyper_parameters"])))
        return fitted, meta

    def explain(self, fitted, target: str, rows: pd.DataFrame, background: pd.DataFrame | None = None):
        """TreeSHAP of ``fitted[target]`` on ``rows`` as a ``shap.Explanation`` (:meth:`FittedModel.explain`;
        ``background`` is not needed: TreeSHAP follows the trees' own training cover)."""
        return fitted[target].explain(rows)


@dataclass(frozen=True)
class _PaperPrepared:
    """The paper's per-fold pipeline on arrays computed once: per fold only the scaler statistics, the ordinal
    codes of the categories present in the training rows, and the duplicate-row weights are recomputed. Gives the
    same matrices, in the same order, as ``PaperModelSet.fit`` on the sliced frame (no missing values here)."""

    target: str
    numeric: np.ndarray  # raw numeric features, n x p
    codes: np.ndarray  # global category codes (sorted categories), n x q
    n_categories: tuple[int, ...]
    group: np.ndarray  # id of each distinct feature row, in lexicographic order of the raw features
    group_row: np.ndarray  # one row position per group id
    y: np.ndarray  # encoded target
    scale_w: np.ndarray  # TDP for power (decoding), ones otherwise

    @classmethod
    def build(cls, target: str, rows: pd.DataFrame) -> _PaperPrepared:
        spec = PAPER_FEATURES[target]
        numeric = rows[list(spec.numeric)].to_numpy(dtype=float)
        codes, sizes = [], []
        for col in spec.categorical:
            labels, inverse = np.unique(rows[col].astype(str).to_numpy(), return_inverse=True)
            codes.append(inverse.ravel())
            sizes.append(len(labels))
        codes = np.column_stack(codes) if codes else np.zeros((len(rows), 0), dtype=int)
        _, group_row, group = np.unique(np.column_stack([numeric, codes]), axis=0, return_index=True,
                                        return_inverse=True)
        transform = PAPER_TARGET_TRANSFORMS[target]
        scale_w = rows["tdp_w"].to_numpy(float) if transform == "fraction_of_tdp" else np.ones(len(rows))
        return cls(target, numeric, codes, tuple(sizes), group.ravel(), group_row, encode_target(transform, rows),
                   scale_w)

    @property
    def n_groups(self) -> int:
        return len(self.group_row)

    def _matrix(self, rows: np.ndarray, centre, scale, luts) -> np.ndarray:
        x = (self.numeric[rows] - centre) / scale
        cats = [lut[self.codes[rows, j]] for j, lut in enumerate(luts)]
        return np.column_stack([x, *cats]) if cats else x

    def fit_predict(self, train: np.ndarray, test: np.ndarray, *, n_threads: int = 1, seed: int = 0,
                    aux_rows: np.ndarray | None = None) -> np.ndarray:
        xtr = self.numeric[train]
        centre = xtr.mean(axis=0)
        scale = xtr.std(axis=0)
        scale = np.where(scale < 10 * np.finfo(float).eps * np.maximum(np.abs(centre), 1.0), 1.0, scale)
        luts = []
        for j, size in enumerate(self.n_categories):
            present = np.bincount(self.codes[train, j], minlength=size) > 0
            lut = np.full(size, -1.0)
            lut[present] = np.arange(int(present.sum()), dtype=float)
            luts.append(lut)
        # Distinct training rows in lexicographic order (group ids are), each with its count and mean target.
        counts = np.bincount(self.group[train], minlength=self.n_groups).astype(float)
        sums = np.bincount(self.group[train], weights=self.y[train], minlength=self.n_groups)
        present = counts > 0
        rep = self.group_row[present]
        booster = _boost(self.target, self._matrix(rep, centre, scale, luts), sums[present] / counts[present],
                         counts[present], n_threads, seed)
        raw = np.asarray(booster.inplace_predict(self._matrix(test, centre, scale, luts)), dtype=float)
        if PAPER_TARGET_TRANSFORMS[self.target] == "log":
            return np.exp(raw)
        return raw * self.scale_w[test]


# --------------------------------------------------------------------------------------------------------------
# Files
def model_paths(name: str, models_dir: Path = MODELS_DIR) -> dict[str, Path]:
    models_dir = Path(models_dir)
    paths = {t: models_dir / f"{name}_{t}.json" for t in TARGETS}
    paths["meta"] = models_dir / f"{name}.meta.json"
    return paths


# (import name, distributions that may provide it): the versions are read from the installed packages' metadata,
# so a version check (every evaluation cache key, every shipped-evaluation check on a page) imports nothing.
_VERSIONED = (("xgboost", ("xgboost-cpu", "xgboost")), ("scikit-learn", ("scikit-learn",)), ("scipy", ("scipy",)))
_MODULE_OF = {"xgboost": "xgboost", "scikit-learn": "sklearn", "scipy": "scipy"}


def _installed_version(name: str, distributions: tuple[str, ...]) -> str:
    """The version of the library imported as ``_MODULE_OF[name]``: its ``__version__`` if already imported, else
    its distribution's metadata (importing scikit-learn, scipy and xgboost takes over a second); imported only
    when the metadata is missing or ambiguous (two distributions of different versions provide it)."""
    module = sys.modules.get(_MODULE_OF[name])
    if module is not None and getattr(module, "__version__", None):
        return str(module.__version__)
    found = set()
    for dist in distributions:
        try:
            found.add(importlib.metadata.version(dist))
        except importlib.metadata.PackageNotFoundError:
            continue
    if len(found) == 1:
        return found.pop()
    # lazy: only when the installed metadata cannot tell which version is imported
    return str(importlib.import_module(_MODULE_OF[name]).__version__)


def library_versions() -> dict[str, str]:
    """Versions of the libraries the models and evaluations depend on (recorded with models, part of cache keys)."""
    versions = {name: _installed_version(name, dists) for name, dists in _VERSIONED}
    return {"python": platform.python_version(), "xgboost": versions["xgboost"], "numpy": np.__version__,
            "pandas": pd.__version__, "scikit-learn": versions["scikit-learn"], "scipy": versions["scipy"]}


def output_token_defaults(frame: pd.DataFrame) -> dict:
    """Mean output and input tokens per request of the training runs, per LLM and overall (prediction defaults)."""
    per_llm = frame.groupby("llm_id")["output_tokens"].mean()
    return {"output_tokens_per_llm": {k: float(v) for k, v in per_llm.sort_index().items()},
            "output_tokens_mean": float(frame["output_tokens"].mean()),
            "input_tokens_mean": float(frame["input_tokens"].mean())}


def fit_model_set(model_set: ModelSet, frame: pd.DataFrame, *, n_threads: int = 1,
                  seed: int = 0) -> dict[str, FittedModel]:
    """Fit every target of ``model_set`` on all usable rows of ``frame``."""
    return {t: model_set.fit(t, target_rows(frame, t, model_set.features(t)), n_threads=n_threads, seed=seed)
            for t in model_set.targets}


def _retrain_hint(name: str) -> str:
    return f"retrain with `python -m wattgpu_core train --model-set {name}`"


def read_metadata(name: str = "paper", models_dir: Path = MODELS_DIR) -> dict:
    """The metadata JSON of model set ``name`` in ``models_dir`` (:class:`ModelNotTrainedError` when it is missing or
    unreadable)."""
    path = model_paths(name, models_dir)["meta"]
    with reading(models_dir):
        if not path.is_file():
            raise ModelNotTrainedError(f"no model files for {name!r} in {models_dir}; run `python -m wattgpu_core "
                                       f"train`")
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelNotTrainedError(f"the model metadata {path} is unreadable ({type(exc).__name__}: "
                                       f"{str(exc)[:80]}); {_retrain_hint(name)}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("targets"), dict):
        raise ModelNotTrainedError(f"the model metadata {path} is not a WattGPU model set; {_retrain_hint(name)}")
    return meta
