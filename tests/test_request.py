"""The typed prediction request: validated once when built (the field named), the same rules for a table (row and
column named), and predict() giving the same numbers for requests, a table and a mapping."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from wattgpu_core import planning as P
from wattgpu_core.errors import ValidationError
from wattgpu_core.request import (
    REQUEST_COLUMNS,
    Deployment,
    PredictionRequest,
    Workload,
    request_frame,
    validate_frame,
)
from wattgpu_core.store import Store


def _field(exc: pytest.ExceptionInfo) -> str:
    return exc.value.issues[0].column


@pytest.mark.parametrize("kwargs, field", [
    ({"scenario": "batch"}, "scenario"),
    ({"scenario": "server"}, "request_rate_qps"),  # a server needs a rate or a fixed concurrency
    ({"scenario": "offline", "output_tokens": -5}, "output_tokens"),
    ({"scenario": "offline", "input_tokens": "many"}, "input_tokens"),
    ({"scenario": "server", "request_rate_qps": float("inf")}, "request_rate_qps"),
])
def test_a_bad_workload_names_its_field(kwargs, field):
    with pytest.raises(ValidationError) as exc:
        Workload(**kwargs)
    assert _field(exc) == field


def test_a_bad_deployment_or_name_names_its_field():
    with pytest.raises(ValidationError, match="unknown precision") as exc:
        Deployment(precision="fp3")
    assert _field(exc) == "precision"
    with pytest.raises(ValidationError) as exc:
        Deployment(tensor_parallel=0)
    assert _field(exc) == "tensor_parallel"
    with pytest.raises(ValidationError, match="GPU name is missing"):
        PredictionRequest("meta-llama/Llama-3.1-8B-Instruct", "  ")


def test_requests_are_frozen_and_canonical():
    r = PredictionRequest("Qwen/Qwen3-8B", "h100-sxm5-80gb", Workload(" Server ", request_rate_qps=2),
                          Deployment(precision="AWQ", tensor_parallel=2, serving_stack=" vLLM 0.14 "))
    assert r.workload.scenario == "server" and r.workload.request_rate_qps == 2.0
    assert r.deployment.precision == "int4" and r.deployment.serving_stack == "vLLM 0.14"
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.workload.scenario = "offline"
    row = request_frame([r]).iloc[0]
    assert list(request_frame([r]).columns) == list(REQUEST_COLUMNS)
    assert row["tensor_parallel"] == 2.0 and np.isnan(row["batch_size"]) and row["precision"] == "int4"


def test_a_table_is_checked_with_the_same_rules_row_and_column_named():
    table = pd.DataFrame([
        {"llm": "a", "gpu": "b", "scenario": "offline", "num_gpus": 2},
        {"llm": "a", "gpu": "b", "scenario": "server", "request_rate_qps": -1},
        {"llm": "a", "gpu": "b", "scenario": "offline", "num_gpus": 2, "tensor_parallel": 4},
        {"llm": "a", "gpu": "b", "scenario": "offline", "precision": "fp3"},
    ])
    with pytest.raises(ValidationError) as exc:
        validate_frame(table)
    where = {(i.row, i.column) for i in exc.value.issues}
    assert {(2, "request_rate_qps"), (3, "tensor_parallel"), (4, "precision")} <= where
    typed = validate_frame(table.iloc[[0]])
    assert typed["tensor_parallel"].iloc[0] == 2.0  # num_gpus is another name of tensor_parallel
    assert typed["precision"].iloc[0] is None and typed["serving_stack"].iloc[0] is None
    same = PredictionRequest.from_mapping({"llm": "a", "gpu": "b", "scenario": "offline", "num_gpus": 2})
    assert same == PredictionRequest("a", "b", Workload("offline"), Deployment(tensor_parallel=2.0))


def test_predict_takes_requests_a_table_or_a_mapping_alike(seed_db_path):
    with Store.open(seed_db_path, read_only=True) as store:
        gpus, llms = store.gpus(), store.llms()
    model_set = P.load_model_set("plus")
    reqs = [P.PredictionRequest("meta-llama/Llama-3.1-8B-Instruct", "l4", P.Workload("offline")),
            P.PredictionRequest("Qwen/Qwen3-30B-A3B-FP8", "h100-sxm5-80gb",
                                P.Workload("server", request_rate_qps=1.0, input_tokens=1000, output_tokens=256),
                                P.Deployment(tensor_parallel=2))]
    typed = predict_cols(P.predict(reqs, gpus, llms, model_set))
    table = pd.DataFrame([{"llm": "meta-llama/Llama-3.1-8B-Instruct", "gpu": "l4", "scenario": "offline"},
                          {"llm": "Qwen/Qwen3-30B-A3B-FP8", "gpu": "h100-sxm5-80gb", "scenario": "server",
                           "request_rate_qps": 1.0, "input_tokens": 1000, "output_tokens": 256, "num_gpus": 2}])
    pd.testing.assert_frame_equal(typed, predict_cols(P.predict(table, gpus, llms, model_set)))
    one = predict_cols(P.predict(table.iloc[1].dropna().to_dict(), gpus, llms, model_set))
    pd.testing.assert_frame_equal(one, typed.iloc[[1]].reset_index(drop=True))
    assert typed["precision"].tolist() == ["bf16", "fp8"] and typed["tensor_parallel"].tolist() == [1, 2]
    assert np.isfinite(typed["power_w"]).all() and np.isfinite(typed["ttft_s"]).all()


def predict_cols(out: pd.DataFrame) -> pd.DataFrame:
    return out[["llm_id", "gpu_id", "scenario_detail", "precision", "tensor_parallel", "power_w", "itl_s", "ttft_s",
                "energy_per_token_j", "notes"]].reset_index(drop=True)
