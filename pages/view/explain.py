"""The Explain page: one prediction split into its inputs' contributions, and the models' global importance, for
the page's workload (the explanations themselves are the core's, ``explain``)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from wattgpu_core.errors import WattGPUError
from wattgpu_core.explain import explain_request
from wattgpu_core.explain import explain_view as _view
from wattgpu_core.explain import global_importance as _global
from wattgpu_core.models import training_frame
from wattgpu_core.planning import load_model_set

from .url_state import Workload


def fitted_models(model_set) -> Mapping:
    """{target: fitted XGB model}: what TreeSHAP explains. WattGPU+ and the default set carry the paper's XGB
    models in ``parts`` (loaded from the committed models when a set lacks them)."""
    if model_set.kind == "paper":
        return model_set.models
    return (model_set.parts.get("paper") or load_model_set("paper")).models


def explain_prediction(llm_id: str, gpu_id: str, workload: Workload, gpus: pd.DataFrame, llms: pd.DataFrame,
                       model_set) -> dict:
    if gpu_id not in set(gpus["gpu_id"]):
        raise WattGPUError(f"unknown GPU {gpu_id!r}; pick one from the list")
    return explain_request(llm_id, gpu_id, workload.as_request(), gpus, llms, fitted_models(model_set))


def global_importance(store, model_set, max_rows: int = 2000) -> dict:
    """Mean |SHAP| per feature over the models' training rows (see ``explain.global_importance``)."""
    return _global(fitted_models(model_set), training_frame(store, "catalog"), max_rows=max_rows)




def explain_view(llm_id: str, gpu_id: str, workload: Workload, gpus: pd.DataFrame, llms: pd.DataFrame, model_set,
                 background=None):
    """The Explain page's view of one prediction of ``model_set`` (see ``explain.explain_view``)."""
    return _view(llm_id, gpu_id, workload.as_request(), gpus, llms, model_set, background)


