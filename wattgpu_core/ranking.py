"""The one GPU ranking: every GPU for one LLM and workload, best predicted energy per token first.

Compare GPUs, the ``rank`` command, the report and the library (:func:`rank_gpus`) all rank with this function, and
it orders by deployment planning's rule (:func:`~wattgpu_core.deploy.order_options`): the GPUs that can hold the
model (its weights and KV cache in memory, its precision supported) come first, ranked 1, 2, ...; among them, in
server mode, those that carry the request rate come before the saturated ones; within each group a missing
prediction comes after every predicted one, then ascending energy per token (ties keep catalog order). GPUs that
cannot hold the model follow, unranked (``rank`` missing), in the same order.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .catalog import GPU_REQUIRED_FIELDS
from .deploy import order_options
from .planning import DEFAULT_MODEL_SET, LoadedModelSet, predict

RANK_BY = "energy_per_token_j"


def rankable_gpus(gpus: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(NVIDIA GPUs with every spec the models need, the NVIDIA GPUs that lack some): the GPUs a ranking offers.
    Other vendors are left out (the models were trained on NVIDIA GPUs only); user-defined GPUs are kept."""
    nvidia = gpus[gpus["vendor"].fillna("NVIDIA").eq("NVIDIA") | gpus["user_defined"].astype(bool)]
    complete = nvidia[list(GPU_REQUIRED_FIELDS)].notna().all(axis=1)
    return nvidia[complete].reset_index(drop=True), nvidia[~complete].reset_index(drop=True)


def _flag(frame: pd.DataFrame, column: str, default: bool) -> pd.Series:
    if column not in frame:
        return pd.Series(default, index=frame.index)
    return frame[column].astype(object).where(frame[column].notna(), default).astype(bool)


def rank_gpus(llm_id: str, workload: Mapping, gpus: pd.DataFrame, llms: pd.DataFrame,
              model_set: LoadedModelSet | str = DEFAULT_MODEL_SET) -> pd.DataFrame:
    """One row per GPU of ``gpus`` for ``llm_id`` and ``workload`` (``predict``'s request keys: scenario, batch_size
    or request_rate_qps, tokens, precision, num_gpus, ...), in the order of the module docstring, with the
    predictions and ``fits`` (holds the model: memory and precision), ``saturated`` (server mode: cannot carry the
    request rate), ``serves_load`` and ``rank`` (1 = best; missing for the GPUs that cannot hold the model)."""
    ids = gpus["gpu_id"].drop_duplicates().to_numpy()
    requests = pd.DataFrame({"llm": llm_id, "gpu": ids})
    for key, value in dict(workload).items():
        requests[key] = value
    if "scenario" not in requests.columns:
        requests["scenario"] = "offline"
    out = predict(requests, gpus, llms, model_set)
    out["fits"] = _flag(out, "fits_in_memory", True) & _flag(out, "precision_supported", True)
    server = out["scenario"].astype(str).str.startswith("server") if "scenario" in out else False
    out["saturated"] = _flag(out, "saturated", False) & server
    out["serves_load"] = ~out["saturated"]
    fits = out["fits"].to_numpy(bool)
    ranked = order_options(out[fits], RANK_BY, ok="serves_load")
    others = order_options(out[~fits], RANK_BY, ok="serves_load")
    out = pd.concat([ranked, others], ignore_index=True)
    rank = np.full(len(out), np.nan)
    rank[: len(ranked)] = np.arange(1, len(ranked) + 1)
    out["rank"] = pd.array(rank, dtype="Int64")
    return out
