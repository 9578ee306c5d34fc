"""Issue 10, modelling: quantised checkpoint ids and native precision, predict's deployment columns (precision,
tensor parallel, TTFT, capacity, saturation, memory), and the TTFT model against the store's TTFT runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattgpu_core import planning as P
from wattgpu_core.catalog import LlmResolver, native_precisions, resolve_llm_precision, split_quantised_id
from wattgpu_core.errors import ValidationError
from wattgpu_core.plus_ttft import PlusTtftModel, load_ttft, ttft_evaluation, ttft_frame
from wattgpu_core.store import Store

LLAMA70 = "meta-llama/Llama-3.1-70B-Instruct"


@pytest.fixture(scope="module")
def catalogs(seed_db_path):
    with Store.open(seed_db_path, read_only=True) as store:
        return store.gpus(), store.llms()


@pytest.fixture(scope="module")
def ttft_rows(seed_db_path):
    with Store.open(seed_db_path, read_only=True) as store:
        return ttft_frame(store)


@pytest.fixture(scope="module")
def model_set():
    return P.load_model_set("default")


def test_hf_ids_old_and_new_and_quantised_checkpoints(catalogs):
    _, llms = catalogs
    r = LlmResolver(llms)
    assert r.resolve(LLAMA70) == r.resolve("meta-llama/Meta-Llama-3.1-70B-Instruct")
    cases = {
        "RedHatAI/Meta-Llama-3.1-70B-Instruct-FP8": ("meta-llama/Meta-Llama-3.1-70B-Instruct", "fp8"),
        "neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8-dynamic": ("meta-llama/Meta-Llama-3.1-70B-Instruct", "fp8"),
        "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4": ("meta-llama/Meta-Llama-3.1-70B-Instruct", "int4"),
        "Qwen/Qwen2.5-72B-Instruct-GPTQ-Int4": ("Qwen/Qwen2.5-72B-Instruct", "int4"),
        "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int8": ("Qwen/Qwen2.5-7B-Instruct", "int8"),
        "RedHatAI/Llama-3.1-8B-Instruct-quantized.w4a16": ("meta-llama/Llama-3.1-8B-Instruct", "int4"),
        "RedHatAI/Qwen3-8B-NVFP4": ("Qwen/Qwen3-8B", "fp4"),
        "Qwen/Qwen3-30B-A3B-FP8": ("Qwen/Qwen3-30B-A3B", "fp8"),
        "meta-llama/Llama-3.1-8B-Instruct": ("meta-llama/Llama-3.1-8B-Instruct", None),
        "nobody/unknown-model-FP8": (None, None),
    }
    for name, expected in cases.items():
        assert resolve_llm_precision(r, name) == expected, name
    assert split_quantised_id("org/Model-AWQ") == ("org/Model", "int4")
    native = native_precisions(llms)
    assert native["openai/gpt-oss-20b"] == "mxfp4" and native["meta-llama/Llama-2-7b-hf"] == "fp16"
    assert native[r.resolve(LLAMA70)] == "bf16"


def test_filled_gpu_specs_make_the_listed_gpus_usable(catalogs):
    gpus, _ = catalogs
    g = gpus.set_index("gpu_id")
    for gid in ("rtx-5090", "b100", "h800-pcie-80gb", "rtx-pro-6000-blackwell-ws", "rtx-pro-6000-blackwell-server",
                "rtx-pro-6000-blackwell-maxq"):
        row = g.loc[gid]
        assert row[["fp16_tensor_dense_tflops", "memory_bandwidth_gb_s", "tdp_w", "memory_size_gb"]].notna().all(), gid
        assert "gpu_spec_fills.csv" in row["notes"]


def test_predict_deployment_columns(catalogs, model_set):
    gpus, llms = catalogs
    req = pd.DataFrame({
        "llm": [LLAMA70, LLAMA70, LLAMA70, "RedHatAI/Meta-Llama-3.1-70B-Instruct-FP8", LLAMA70, "openai/gpt-oss-20b",
                "meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"],
        "gpu": ["h100-sxm5-80gb", "h100-sxm5-80gb", "h100-sxm5-80gb", "h100-sxm5-80gb", "v100-sxm2-32gb",
                "h100-sxm5-80gb", "h100-sxm5-80gb", "l4"],
        "scenario": "server", "request_rate_qps": [2, 2, 2, 2, 2, 2, 1, 10], "input_tokens": 1000,
        "output_tokens": 300, "num_gpus": [1, 2, 4, 1, 1, 1, 1, 1],
        "precision": [None, None, None, None, "fp8", None, None, None]})
    out = P.predict(req, gpus, llms, model_set)
    for col in P.DEPLOYMENT_COLUMNS:
        assert col in out.columns, col
    assert out["precision"].tolist() == ["bf16", "bf16", "bf16", "fp8", "fp8", "mxfp4", "bf16", "bf16"]
    assert out["fits"].tolist() == [False, True, True, True, False, True, True, True]
    assert (out["fits"] == out["fits_in_memory"]).all()
    # per-GPU power stays per GPU; the replica's is num_gpus times it
    assert np.allclose(out["replica_power_w"], out["power_w"] * out["num_gpus"].fillna(1), equal_nan=True)
    # tensor parallel and quantised weights follow the physics: fewer bytes per GPU, faster tokens
    assert out.loc[2, "tpot_s"] < out.loc[1, "tpot_s"] < out.loc[0, "tpot_s"]
    assert out.loc[3, "tpot_s"] < out.loc[0, "tpot_s"]
    assert out.loc[2, "power_w"] != pytest.approx(out.loc[0, "power_w"], rel=1e-3)
    # unsupported precision: no prediction, the reason in the notes
    assert not out.loc[4, "precision_supported"] and np.isnan(out.loc[4, "power_w"])
    assert "not supported: FP8 needs Ampere" in out.loc[4, "notes"]
    assert "no measured fp8 runs" in out.loc[3, "notes"] and "physics only" in out.loc[1, "notes"]
    # memory in decimal GB with the margin, and the fit note shows both numbers
    assert out.loc[1, "memory_available_gb"] == pytest.approx(2 * 0.9 * 80 * 2**30 / 1e9)
    assert out["memory_margin_gb"].to_numpy() == pytest.approx(
        (out["memory_available_gb"] - out["memory_needed_gb"]).to_numpy(), nan_ok=True)
    assert "needs 1" in out.loc[0, "notes"] and "has 77.3 GB" in out.loc[0, "notes"]
    # gpt-oss ships in MXFP4: ~13 GB of weights, not 44 GB
    assert out.loc[5, "memory_needed_gb"] < 25
    # capacity and saturation: the L4 cannot carry 10 requests/s of 1000/300 tokens with an 8B model
    assert out.loc[7, "saturated"] and out.loc[7, "throughput_tok_s"] == pytest.approx(
        out.loc[7, "max_throughput_tok_s"])
    assert not out.loc[6, "saturated"] and out.loc[6, "throughput_tok_s"] == pytest.approx(300.0)
    assert out.loc[6, "ttft_s_lo"] < out.loc[6, "ttft_s"] < out.loc[6, "ttft_s_hi"]
    assert np.isinf(out.loc[7, "ttft_s"])


def test_predict_rejects_bad_precision_and_conflicting_gpus(catalogs, model_set):
    gpus, llms = catalogs
    bad = pd.DataFrame({"llm": [LLAMA70], "gpu": ["h100-sxm5-80gb"], "scenario": ["offline"], "precision": ["fp3"]})
    with pytest.raises(ValidationError, match="precision"):
        P.predict(bad, gpus, llms, model_set)
    clash = pd.DataFrame({"llm": [LLAMA70], "gpu": ["h100-sxm5-80gb"], "scenario": ["offline"], "num_gpus": [2],
                          "tensor_parallel": [4]})
    with pytest.raises(ValidationError, match="tensor_parallel"):
        P.predict(clash, gpus, llms, model_set)
    same = clash.assign(tensor_parallel=2)
    assert P.predict(same, gpus, llms, model_set)["tensor_parallel"].tolist() == [2]


def test_ttft_monotone_in_prompt_length_and_load(catalogs, model_set):
    gpus, llms = catalogs
    req = pd.DataFrame({"llm": "meta-llama/Llama-3.1-8B-Instruct", "gpu": "h100-sxm5-80gb", "scenario": "server",
                        "request_rate_qps": [1.0] * 5 + [0.5, 2.0, 4.0], "output_tokens": 200,
                        "input_tokens": [100, 500, 1000, 2000, 4000, 1000, 1000, 1000]})
    out = P.predict(req, gpus, llms, model_set)
    ttft = out["ttft_s"].to_numpy()
    assert np.all(np.diff(ttft[:5]) > 0)
    assert ttft[5] < ttft[2] < ttft[6] < ttft[7]


def test_ttft_model_fits_the_store_runs_and_is_committed(ttft_rows):
    assert len(ttft_rows) >= 10 and ttft_rows["gpu_id"].nunique() >= 3
    model = PlusTtftModel.fit(ttft_rows)
    assert 0.2 < model.efficiency <= 1.0
    pred = model.predict(ttft_rows)
    assert np.median(np.abs(np.log(pred / ttft_rows["ttft_s"].to_numpy()))) < 0.3
    records, oof = ttft_evaluation(ttft_rows)
    assert {r["strategy"] for r in records} == {"CV", "LOGO", "LOLO"}
    assert all(r["target"] == "ttft" and r["mdape_pct"] < 40 for r in records)
    # out of fold means fitted without the row: not the in-sample prediction
    assert not np.allclose(oof["LOGO"], pred)
    committed = load_ttft()
    assert committed is not None and committed.n_rows == len(ttft_rows)
    assert committed.efficiency == pytest.approx(model.efficiency, rel=1e-3)
    assert committed.ln_quantiles[0] < 0 < committed.ln_quantiles[1]


def test_fixed_concurrency_server_is_a_steady_batch(catalogs, model_set):
    gpus, llms = catalogs
    req = pd.DataFrame({"llm": "meta-llama/Llama-3.1-8B-Instruct", "gpu": "h100-sxm5-80gb", "scenario": "server",
                        "max_concurrency": [1, 16, 256], "input_tokens": 1000, "output_tokens": 1000})
    out = P.predict(req, gpus, llms, model_set)
    assert "closed loop" in out.loc[0, "notes"] and not out["saturated"].any()
    tput, tpot, ttft = (out[c].to_numpy() for c in ("throughput_tok_s", "tpot_s", "ttft_s"))
    assert np.all(np.diff(tput) > 0) and np.all(np.diff(tpot) > 0) and np.all(np.diff(ttft) > 0)
    # one request in flight: throughput = tokens / (TTFT-free decode + prefill per token), ~1 / TPOT
    assert tput[0] == pytest.approx(1.0 / tpot[0], rel=0.1)
    with pytest.raises(ValidationError, match="max_concurrency"):
        P.predict(req.drop(columns="max_concurrency"), gpus, llms, model_set)
