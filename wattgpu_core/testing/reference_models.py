"""The straightforward reference implementation of the paper's protocol, which the tests and the benchmark compare
the fast one against (never used by the app).

:class:`ReferencePaperModelSet` refits the paper's models per fold as plain sklearn Pipelines (ColumnTransformer +
XGBRegressor with default settings): the fast :class:`~wattgpu_core.models.PaperModelSet` must give the same
predictions. :func:`reference_metrics` computes :func:`~wattgpu_core.evaluation.metrics` with pandas groupby loops
and scipy's ``pearsonr`` / ``kendalltau``. ``bench/bench_evaluate.py`` times both against the real ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from wattgpu_core.cv import mdape_pct
from wattgpu_core.model_set import ModelSet
from wattgpu_core.models import PAPER_FEATURES, PAPER_PARAMS, PAPER_TARGET_TRANSFORMS, decode_target, encode_target
from wattgpu_core.xgb import load_with_sklearn_api


def reference_metrics(frame: pd.DataFrame) -> dict:
    """:func:`metrics` computed the straightforward way (pandas groupby loops, scipy's ``pearsonr`` and
    ``kendalltau``); the benchmark's reference uses it, and a test checks that both give the same numbers."""
    from scipy.stats import kendalltau, pearsonr  # lazy: scipy only for the reference run

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
    from sklearn.compose import ColumnTransformer  # lazy: sklearn only for the reference run
    from sklearn.impute import SimpleImputer  # lazy: sklearn only for the reference run
    from sklearn.pipeline import Pipeline  # lazy: sklearn only for the reference run
    from sklearn.preprocessing import OrdinalEncoder, StandardScaler  # lazy: sklearn only for the reference run
    XGBRegressor = load_with_sklearn_api().XGBRegressor  # noqa: N806 (a class)

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
