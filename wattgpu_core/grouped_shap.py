"""Grouped Shapley values: exact interventional SHAP over groups of a model's inputs, for models that are not trees.

WattGPU+ (a calibrated physical model) is explained over a dozen *groups* of human-meaningful inputs
(:data:`PLUS_GROUPS`: memory bandwidth, tensor TFLOPS, TDP, GPU memory, GPU architecture, LLM size, LLM shape, the
per-LLM correction, batch size or request rate, input and output tokens, serving set-up). The value of a coalition S
of groups is the mean prediction over a background of rows, each with the groups in S set to the explained row's
values; all 2^k coalitions are predicted in one batch (:func:`plus_shapley`) and the Shapley values follow exactly
(:func:`shapley_from_coalitions`). :func:`grouped_explanation` wraps them in a ``shap.Explanation``, so they go to
shap's own plots like TreeSHAP values do. Imports no other WattGPU module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class InputGroup:
    """Inputs that move together in an explanation: a name, the model-row columns it sets, and a description."""

    key: str
    name: str
    columns: tuple[str, ...]
    help: str = ""


PLUS_GROUPS: tuple[InputGroup, ...] = (
    InputGroup("bandwidth", "Memory bandwidth", ("memory_bandwidth_gb_s",), "the GPU's datasheet memory bandwidth"),
    InputGroup("tflops", "Tensor TFLOPS", ("fp16_tensor_dense_tflops",), "dense FP16 tensor throughput"),
    InputGroup("tdp", "TDP", ("tdp_w",), "the GPU's board power limit"),
    InputGroup("memory", "GPU memory", ("memory_size_gb",), "memory size: KV-cache room and vLLM's default batch"),
    InputGroup("gpu_arch", "GPU architecture", ("architecture", "memory_type", "gpu_id"),
               "generation, memory type and, for GPUs in the training data, their measured power levels"),
    InputGroup("llm_size", "LLM size", ("total_params_b", "active_params_b", "num_experts", "experts_per_token"),
               "total and active parameters (experts for MoE)"),
    InputGroup("llm_shape", "LLM shape", ("num_layers", "hidden_size", "num_attention_heads", "num_key_value_heads",
                                          "head_dim", "intermediate_size", "vocab_size"),
               "layers, hidden size, heads, MLP width and vocabulary: KV-cache bytes, attention and the memory vLLM "
               "reserves for activations"),
    InputGroup("llm_correction", "Per-LLM correction", ("llm_id",),
               "a factor on ITL fitted to this LLM's own runs (none for an LLM outside the training data)"),
    InputGroup("batch", "Batch size", ("batch_size", "num_requests", "closed_loop"),
               "sequences run at once (offline, or a server at a fixed concurrency)"),
    InputGroup("rate", "Request rate", ("request_rate_qps", "scenario", "scenario_detail"), "requests per second"),
    InputGroup("input_tokens", "Input tokens", ("input_tokens",), "prompt length per request"),
    InputGroup("output_tokens", "Output tokens", ("output_tokens", "max_output_tokens"), "generated per request"),
    InputGroup("serving", "Serving set-up", ("serving_stack", "framework", "framework_version", "num_gpus",
                                             "tensor_parallel", "server_submit_s"), "serving stack and GPU count"),
)
GROUP_NAMES: dict[str, str] = {g.key: g.name for g in PLUS_GROUPS}


def _same(a: np.ndarray, b) -> np.ndarray:
    """Element-wise equality with missing == missing (None and NaN alike)."""
    a_missing = pd.isna(a)
    if b is None or (not isinstance(b, str) and pd.isna(b)):
        return a_missing
    with np.errstate(invalid="ignore"):
        eq = np.asarray(a == b, dtype=bool) if a.dtype != object else np.array([v == b for v in a], dtype=bool)
    return eq & ~a_missing


def _column(frame: pd.DataFrame, column: str) -> np.ndarray:
    values = frame[column].to_numpy()
    if values.dtype.kind in "OUS" or str(frame[column].dtype) in ("str", "string"):
        return np.asarray([None if (not isinstance(v, str) and pd.isna(v)) else v for v in values], dtype=object)
    return values


def shapley_from_coalitions(v: np.ndarray, k: int) -> np.ndarray:
    """Exact Shapley values from the values ``v`` of all 2^k coalitions (index = bit mask of the players in it;
    trailing axes are carried along): phi_i = sum over S without i of |S|! (k-|S|-1)! / k! (v(S+i) - v(S))."""
    masks = np.arange(1 << k)
    size = np.zeros(1 << k, dtype=int)
    for i in range(k):
        size += (masks >> i) & 1
    weight = np.array([math.factorial(s) * math.factorial(k - s - 1) / math.factorial(k) for s in range(k)])
    phi = np.empty((k, *v.shape[1:]))
    for i in range(k):
        without = masks[((masks >> i) & 1) == 0]
        phi[i] = np.tensordot(weight[size[without]], v[without | (1 << i)] - v[without], axes=1)
    return phi


def plus_shapley(models: dict, x: pd.DataFrame, background: pd.DataFrame,
                 groups: tuple[InputGroup, ...] = PLUS_GROUPS) -> dict:
    """Exact interventional Shapley values of each WattGPU+ target for the one model row ``x``.

    The value of a coalition S of ``groups`` is the mean over the ``background`` rows of the prediction for the
    row with the columns of the groups in S taken from ``x`` and the rest from the background row (ln seconds for
    ITL, W for power). Groups whose columns equal ``x``'s in every background row cannot change anything (Shapley
    value exactly 0) and are left out of the enumeration; so are, per model, the groups whose columns all lie in
    the model's ``unread_columns`` (a null player: leaving it out changes no other group's value). Only the groups'
    columns are passed to the models: the full coalition reproduces ``x``'s prediction only if the models read no
    other column (callers check it).

    Each distinct row is predicted once: with background row j, a coalition S gives the same row as S restricted
    to the groups where row j differs from ``x``, so only those restrictions are built (about half of the
    2^k x background rows) and every coalition's value is gathered from them, in the same order as before.

    Returns {target: {"base": v(empty set), "shap": Series over the varying groups' keys, "full": v(all)}} and
    ``"fixed"``: the keys of the groups left out for every model.
    """
    m = len(background)
    # column -> (background values, x's value); x's value None for a column x lacks (never switched)
    columns = {c: (_column(background, c), _column(x, c)[0] if c in x.columns else None)
               for c in dict.fromkeys(c for g in groups for c in g.columns) if c in background.columns}
    differs = np.zeros((m, len(groups)), dtype=bool)  # background row x group: differs from x's values
    for i, g in enumerate(groups):
        for c in g.columns:
            if c in x.columns and c in columns:
                differs[:, i] |= ~_same(*columns[c])
    varying = differs.any(axis=0)
    out = {"fixed": tuple(g.key for g, v in zip(groups, varying, strict=True) if not v)}
    for target, model in models.items():
        unread = set(getattr(model, "unread_columns", ()))
        active = [i for i, g in enumerate(groups) if varying[i] and not set(g.columns) <= unread]
        v = _coalition_values(model, target, groups, active, differs, columns, set(x.columns), m)
        phi = shapley_from_coalitions(v, len(active))
        out[target] = {"base": float(v[0]), "full": float(v[-1]),
                       "shap": pd.Series(phi, index=[groups[i].key for i in active], dtype=float)}
    return out


def _coalition_values(model, target: str, groups, active: list[int], differs: np.ndarray, columns: dict,
                      x_columns, m: int) -> np.ndarray:
    """v(S) for every coalition S (bit i = ``groups[active[i]]``): the mean over the background rows of the model's
    prediction (ln for ITL), each distinct row predicted once."""
    k = len(active)
    masks = np.arange(1 << k)
    diff_mask = (differs[:, active].astype(np.int64) << np.arange(k)).sum(axis=1)  # per background row
    # rows to predict: per background row j, the coalitions inside diff_mask[j] (ascending); where[S, j] = the row
    # of coalition S & diff_mask[j]
    where = np.empty((1 << k, m), dtype=np.int64)
    row_mask, row_bg = [], []
    start = 0
    for j in range(m):
        sub = masks[(masks & ~diff_mask[j]) == 0]
        rank = np.zeros(1 << k, dtype=np.int64)
        rank[sub] = np.arange(len(sub))
        where[:, j] = start + rank[masks & diff_mask[j]]
        row_mask.append(sub)
        row_bg.append(np.full(len(sub), j))
        start += len(sub)
    row_mask, row_bg = np.concatenate(row_mask), np.concatenate(row_bg)
    of_group = {c: n for n, i in enumerate(active) for c in groups[i].columns if c in x_columns}
    data = {}
    for c, (bg_values, x_value) in columns.items():
        values = bg_values[row_bg]
        n = of_group.get(c)
        data[c] = values if n is None else np.where((row_mask >> n) & 1 == 1, x_value, values)
    # text columns stay object arrays (pandas would convert them to its string type and the models straight back)
    mixed = pd.DataFrame({c: pd.Series(v, dtype=object) if v.dtype == object else v for c, v in data.items()})
    pred = np.asarray(model.predict(mixed), dtype=float)
    space = np.log(pred) if target == "itl" else pred
    return space[where].mean(axis=1)



def grouped_explanations(models: dict, rows: pd.DataFrame, background: pd.DataFrame,
                         groups: tuple[InputGroup, ...] = PLUS_GROUPS, data: np.ndarray | None = None) -> dict:
    """{target: ``shap.Explanation``} of each of ``models`` on ``rows`` over ``groups`` (one column per group, in
    ``groups`` order; a group that equals every background row gets exactly 0): values (rows x groups), base_values
    (the background's mean prediction), feature_names (the groups' names) and ``data`` (rows x groups, e.g. each
    row's value of each group as text; None by default). Power in W, ITL in ln seconds (its groups multiply ITL);
    base value + row sum is the model's prediction for the row (in that space) whenever the model reads only the
    groups' columns. Both targets share one enumeration of the coalitions per row."""
    import shap  # lazy: shap takes seconds to import and only explanations need it

    keys = [g.key for g in groups]
    values = {t: np.zeros((len(rows), len(keys))) for t in models}
    base = {t: np.zeros(len(rows)) for t in models}
    for i in range(len(rows)):
        res = plus_shapley(models, rows.iloc[[i]].reset_index(drop=True), background, groups)
        for t in models:
            phi = res[t]["shap"]
            values[t][i, [keys.index(k) for k in phi.index]] = phi.to_numpy()
            base[t][i] = res[t]["base"]
    return {t: shap.Explanation(values=values[t], base_values=base[t], data=data,
                                feature_names=[g.name for g in groups], output_names=t) for t in models}
