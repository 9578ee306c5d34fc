"""WattGPU+ power model: physical features against hand-worked values, and the fitted model's contract (JSON round
trip, bounds, monotonicity in the request rate, no use of the held-out GPU's measurements, serving stacks)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from wattgpu_core import features as F
from wattgpu_core import models as M
from wattgpu_core import physics
from wattgpu_core import plus_power as P
from wattgpu_core.store import Store

LLAMA8B_KV_BYTES = 2 * 8 * 128 * 2 * 32  # K and V x 8 KV heads x head dim 128 x 2 bytes x 32 layers = 131072


# ----------------------------------------------------------------------------------------------------------------
# Physics, by hand
def test_memory_family():
    got = P.memory_family(["HBM3e", "HBM3", "HBM2e", "HBM2", "GDDR6", "GDDR6X", "GDDR7", None, "LPDDR5"])
    assert got.tolist() == ["HBM3", "HBM3", "HBM2", "HBM2", "GDDR", "GDDR", "GDDR", "other", "other"]


def test_fit_group_latent_by_hand():
    # groups A (x 0, 1; y 1, 1.5) and B (x 0, 2; y 3, 4): within-group slope (0.25 + 1) / (0.5 + 2) = 0.5,
    # y - 0.5 x = 1, 1, 3, 3 -> intercept 2, residuals -1 (A) and +1 (B)
    y, x, g = [1.0, 1.5, 3.0, 4.0], [0.0, 1.0, 0.0, 2.0], ["A", "A", "B", "B"]
    fit = P.fit_group_latent(y, x, g, np.ones((4, 1)), k=0.0)
    assert fit["slope"] == pytest.approx(0.5) and fit["beta"] == pytest.approx([2.0])
    assert fit["offsets"] == pytest.approx({"A": -1.0, "B": 1.0})
    shrunk = P.fit_group_latent(y, x, g, np.ones((4, 1)), k=1.0)  # sum of residuals / (2 GPUs + 1)
    assert shrunk["offsets"] == pytest.approx({"A": -2 / 3, "B": 2 / 3})
    pred = P.predict_group_latent(shrunk, np.array([1.0, 1.0]), np.array(["A", "new"]), np.ones((2, 1)))
    assert pred == pytest.approx([2.5 - 2 / 3, 2.5])  # an unseen group gets no offset


def test_physical_frame_by_hand():
    timing = P.Timing(server_t0_s=1e-3, server_k=1.0, offline_a=0.5, offline_h1_s=1e-5)
    row = {"gpu_id": "x", "tdp_w": 300.0, "memory_bandwidth_gb_s": 1000.0, "fp16_tensor_dense_tflops": 100.0,
           "memory_size_gb": 80.0, "memory_type": "HBM2e", "total_params_b": 8.0, "active_params_b": 8.0,
           "num_layers": 32, "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
           "input_tokens": 15.0, "output_tokens": 200.0}
    rows = pd.DataFrame([{**row, "scenario": "server", "request_rate_qps": 0.33},
                         {**row, "scenario": "offline", "num_requests": 1000.0}])
    ph = P.physical_frame(rows, timing)
    ctx = 15 + 200 / 2 + 8  # tokens held per sequence on average (half a 16-token block of rounding)
    attention = 4 * 32 * 32 * 128 * ctx  # attention FLOPs per sequence and step
    t_mem1 = (16e9 + ctx * LLAMA8B_KV_BYTES) / 1e12  # 0.016016 s
    t_step1 = 1e-3 + t_mem1
    flops_pf = 2 * 8e9 * 15 + 2 * 32 * 32 * 128 * 15**2  # prefill: matmuls + causal attention
    t_pf = flops_pf / (100e12 * 0.81 * 15 / (15 + 186))  # at the Vidur-fitted GEMM rate for 15 tokens
    t_req = 200 * t_step1 + t_pf  # decode + prefill
    assert ph["u"].iloc[0] == pytest.approx(t_mem1 / t_step1)  # 0.9412
    assert ph["t_req_s"].iloc[0] == pytest.approx(t_req)
    assert ph["duty"].iloc[0] == pytest.approx(physics.server_busy_fraction(0.33, t_req, 300.0))
    assert ph["log_batch"].iloc[0] == pytest.approx(math.log(1 + 0.33 * t_req))  # the batch a request sees: 2.06
    # offline on an 80 GB GPU with id "x": max_num_seqs 1024, KV room (0.9 x 80 GiB - 17 GB) / 131072 / 123 =
    # 3738 sequences: all 1000 requests run at once, and the run lasts the longest output (200 steps)
    assert ph["b_off"].iloc[1] == pytest.approx(1000 * 200 / 200)
    b = 1000.0
    t_mem = (16e9 + b * ctx * LLAMA8B_KV_BYTES) / 1e12
    t_cmp = (2 * 8e9 + attention) * b / 100e12
    t_gpu = 0.5 * (t_mem + t_cmp)
    assert ph["u"].iloc[1] == pytest.approx(t_gpu / (t_gpu + 1e-3 + 1e-5 * b))
    assert ph["ci"].iloc[1] == pytest.approx(t_cmp / (t_mem + t_cmp))
    assert ph["duty"].iloc[1] == 1.0
    # with a batch cap of 256, the requests come in waves: 1000 x 200 / 256 steps + half an output of drain
    capped = P.physical_frame(rows.assign(batch_size=256.0), timing)
    assert capped["b_off"].iloc[1] == pytest.approx(1000 * 200 / (1000 * 200 / 256 + 100))
    # tensor parallel: each of 2 GPUs streams half the weights and half the KV cache
    tp = P.physical_frame(rows.assign(num_gpus=2), timing)
    assert tp["t_mem1_s"].iloc[0] == pytest.approx(t_mem1 / 2)


def test_power_and_itl_share_one_decode_workload(rows):
    """Both halves of WattGPU+ see the same batch, bytes and KV cache for a row (issue 9: one physics)."""
    from wattgpu_core.physics import DecodeWorkload

    part = rows.iloc[::50]
    w = P.decode_workload(part)
    itl = DecodeWorkload.of(part.assign(tensor_parallel=part["num_gpus"].fillna(1.0)))
    off = w.offline
    assert off.any() and (~off).any()
    np.testing.assert_allclose(w.offline_batch[off], itl.offline_batch[off])
    np.testing.assert_allclose(w.kv_capacity_tokens, itl.kv_capacity_tokens)
    ph = P.physical_frame(part)
    np.testing.assert_allclose(ph["b_off"].to_numpy()[off], itl.offline_batch[off])


# ----------------------------------------------------------------------------------------------------------------
# The fitted model
@pytest.fixture(scope="module")
def seed_store(seed_db_path):
    with Store.open(seed_db_path, read_only=True) as store:
        yield store


@pytest.fixture(scope="module")
def rows(seed_store):
    frame = M.training_frame(seed_store, "catalog")
    return P.join_gpu_extras(M.target_rows(frame, "power", M.PAPER_FEATURES["power"].columns), seed_store.gpus())


@pytest.fixture(scope="module")
def model(rows):
    return P.PlusPowerModel.fit(rows)


def planning_rows(store, gpu_ids, llm_ids, rates=(0.017, 0.33), batches=(np.nan,)) -> pd.DataFrame:
    reqs = []
    for gpu in gpu_ids:
        for llm in llm_ids:
            for b in batches:
                reqs.append({"gpu_id": gpu, "llm_id": llm, "scenario": "offline", "batch_size": b,
                             "output_tokens": 200.0, "input_tokens": 15.0})
            for lam in rates:
                reqs.append({"gpu_id": gpu, "llm_id": llm, "scenario": "server", "request_rate_qps": lam,
                             "output_tokens": 200.0, "input_tokens": 15.0})
    gpus = store.gpus()
    frame = F.add_features(F.join_specs(pd.DataFrame(reqs), gpus, store.llms()))
    return P.join_gpu_extras(frame, gpus)


PLANNING_GPUS = ("b200", "h100-sxm5-80gb", "a10", "l40s", "rtx-4090", "t4")
PLANNING_LLMS = ("meta-llama/Llama-3.1-8B-Instruct", "openai-community/gpt2", "google/gemma-3-27b-it",
                 "unsloth/gpt-oss-20b-BF16")


def test_round_trip_through_json_gives_identical_predictions(model, rows, seed_store):
    again = P.PlusPowerModel.from_dict(json.loads(json.dumps(model.to_dict(), allow_nan=False)))
    plan = planning_rows(seed_store, PLANNING_GPUS, PLANNING_LLMS)
    for frame in (rows, plan):
        assert np.array_equal(again.predict(frame), model.predict(frame))
    assert again.to_dict() == model.to_dict()
    with pytest.raises(ValueError):
        P.PlusPowerModel.from_dict({"kind": "something else"})


def test_fit_is_deterministic(model, rows):
    assert np.array_equal(P.PlusPowerModel.fit(rows).predict(rows), model.predict(rows))


def test_predictions_bounded_and_monotone_in_request_rate(model, seed_store):
    rates = (0.0, 0.005, 0.017, 0.1, 0.33, 1.0, 3.0, 10.0, 100.0)
    plan = planning_rows(seed_store, PLANNING_GPUS, PLANNING_LLMS, rates=rates, batches=(1, 8, 64, 256, 1024))
    p = model.predict(plan)
    base = model.serving_idle_w(plan)
    tdp = plan["tdp_w"].to_numpy(float)
    assert np.isfinite(p).all()
    assert np.all(base >= 0.02 * tdp - 1e-9) and np.all(base <= 0.9 * tdp + 1e-9)
    assert np.all(p >= base - 1e-9) and np.all(p <= tdp + 1e-9)
    server = plan.assign(p=p)[plan["scenario"] == "server"]
    for _, g in server.groupby(["gpu_id", "llm_id"]):
        g = g.sort_values("request_rate_qps")
        assert np.all(np.diff(g["p"].to_numpy()) >= -1e-9), g[["request_rate_qps", "p"]]
    # at rate 0 a server draws its serving-idle power
    zero = (plan["scenario"] == "server").to_numpy() & (plan["request_rate_qps"] == 0).to_numpy()
    assert np.allclose(p[zero], base[zero])


def test_logo_fold_never_reads_the_held_out_gpus_measurements(rows):
    held = "l40s"
    train, test = rows[rows["gpu_id"] != held], rows[rows["gpu_id"] == held]
    fitted = P.PlusPowerModel.fit(train)
    reference = fitted.predict(test)
    # measured idle power and every measured quantity of the held-out GPU's rows: predictions must not move
    perturbed = test.copy()
    for col in ("idle_power_w", "power_w", "itl_s", "duration_s", "energy_per_token_j", "throughput_tok_s",
                "gpu_energy_j", "e2e_latency_s"):
        perturbed[col] = perturbed[col] * 3.0 + 1.0
    assert np.array_equal(fitted.predict(perturbed), reference)
    # and the training GPUs' measured idle power is not an input either
    again = P.PlusPowerModel.fit(train.assign(idle_power_w=train["idle_power_w"] * 2.0))
    assert np.array_equal(again.predict(test), reference)
    # the held-out GPU is predicted from specs, not from a calibration
    assert held not in fitted.gpus and "l40s" in P.PlusPowerModel.fit(rows).gpus
    assert not np.allclose(reference, test["power_w"].to_numpy())


def test_other_stacks_get_a_calibration_and_leave_the_default_stack_alone(model, rows):
    other = rows[rows["gpu_id"] == "a100-sxm4-40gb"].copy()
    other["framework_version"] = "0.5.4"
    other = other.drop(columns=[c for c in ("serving_stack",) if c in other.columns])
    other["power_w"] = other["power_w"] * 0.5
    calibrated = P.PlusPowerModel.fit(rows, aux=other)
    assert np.array_equal(calibrated.predict(rows), model.predict(rows))
    assert set(calibrated.stack_factors) == {"vLLM 0.5"}
    factor = calibrated.stack_factors["vLLM 0.5"]
    assert 0.4 < factor < 0.6
    assert np.allclose(calibrated.predict(other), model.predict(other) * factor)
    # the same rows inside ``train`` are treated alike (only the core stack fits the core model)
    mixed = P.PlusPowerModel.fit(pd.concat([rows, other], ignore_index=True))
    assert np.array_equal(mixed.predict(rows), model.predict(rows))


def test_optional_inputs_fall_back(model, rows):
    sample = rows.groupby(["gpu_id", "scenario_detail"]).head(2)
    bare = sample.drop(columns=["architecture", "num_gpus", "num_requests", "framework", "framework_version",
                                "active_params_b"])
    p = model.predict(bare)
    assert np.isfinite(p).all() and p.shape == (len(sample),)
    # server rows without a request rate use the rate of their scenario_detail
    no_rate = sample.assign(request_rate_qps=np.nan)
    assert np.allclose(model.predict(no_rate), model.predict(sample))


def test_moe_uses_active_parameters(seed_store, model):
    plan = planning_rows(seed_store, ("h100-sxm5-80gb",), ("unsloth/gpt-oss-20b-BF16",), rates=(0.33,))
    dense = plan.assign(active_params_b=plan["total_params_b"])
    moe_ph, dense_ph = P.physical_frame(plan), P.physical_frame(dense)
    server = (plan["scenario"] == "server").to_numpy()
    assert np.all(moe_ph["t_req_s"].to_numpy()[server] < dense_ph["t_req_s"].to_numpy()[server])
    assert np.all(model.predict(plan)[server] < model.predict(dense)[server])


def test_idle_power_is_only_a_user_option(rows):
    held = "a30"
    train, test = rows[rows["gpu_id"] != held], rows[rows["gpu_id"] == held]
    default = P.PlusPowerModel.fit(train)
    assert not default.config.use_idle_power and default.idle_fit is None
    option = P.PlusPowerModel.fit(train, config=P.PowerConfig(use_idle_power=True))
    doubled = test.assign(idle_power_w=test["idle_power_w"] * 2.0)
    assert not np.array_equal(option.predict(doubled), option.predict(test))  # the user's idle reading is used
    assert np.array_equal(default.predict(doubled), default.predict(test))
    # B = idle + r x TDP, at least the idle power
    assert np.all(option.serving_idle_w(test) >= test["idle_power_w"].to_numpy() - 1e-9)
    again = P.PlusPowerModel.from_dict(json.loads(json.dumps(option.to_dict())))
    assert np.array_equal(again.predict(test), option.predict(test))


# ----------------------------------------------------------------------------------------------------------------
# Prompt length and prefill (issue 12)
def _long_prompt_rows(store, llm="meta-llama/Meta-Llama-3.1-70B-Instruct", gpu="b200", num_gpus=4):
    reqs = [{"gpu_id": gpu, "llm_id": llm, "scenario": "server", "request_rate_qps": lam, "input_tokens": inp,
             "output_tokens": 256.0, "num_gpus": num_gpus, "server_submit_s": math.inf}
            for lam in (2.0, 8.0) for inp in (14.0, 1000.0, 4000.0)]
    reqs += [{"gpu_id": gpu, "llm_id": llm, "scenario": "offline", "batch_size": 64, "num_requests": 1000,
              "input_tokens": inp, "output_tokens": 256.0, "num_gpus": num_gpus} for inp in (14.0, 1000.0, 4000.0)]
    gpus = store.gpus()
    return P.join_gpu_extras(F.add_features(F.join_specs(pd.DataFrame(reqs), gpus, store.llms())), gpus)


def test_power_rises_with_prompt_length_and_request_rate_for_a_70b_class_llm(model, seed_store):
    plan = _long_prompt_rows(seed_store)
    p = model.predict(plan)
    srv = p[:6].reshape(2, 3)  # rows: 2 and 8 req/s; columns: 14, 1000, 4000 prompt tokens
    assert np.all(np.diff(srv, axis=1) > 0), srv  # longer prompts: more compute-bound prefill, more power
    assert np.all(srv[1] > srv[0]), srv  # higher rate: more power
    assert srv[0, 2] - srv[0, 0] > 0.01 * srv[0, 0]  # a 4,000-token prompt moves power by more than 1%
    assert np.all(np.diff(p[6:]) > 0)  # offline too
    assert np.all(p <= plan["tdp_w"].to_numpy(float) + 1e-9)
    ph = P.physical_frame(plan)
    assert np.all(np.diff(ph["prefill_share"].to_numpy()[:3]) > 0)


def test_decode_time_reads_the_mean_context_not_the_prompt_alone(seed_store):
    plan = _long_prompt_rows(seed_store)[:1]
    short, long_out = plan.assign(output_tokens=16.0), plan.assign(output_tokens=4000.0)
    # same prompt, longer outputs: the KV cache read per step grows with prompt + half the output
    t_short = P.physical_frame(short)["t_mem1_s"].iloc[0]
    t_long = P.physical_frame(long_out)["t_mem1_s"].iloc[0]
    kvb = LLAMA8B_KV_BYTES * 80 / 32 / 4  # Llama-3.1-70B: 80 layers, 8 KV heads of 128, split over 4 GPUs
    bw = plan["memory_bandwidth_gb_s"].iloc[0] * 1e9
    assert t_long - t_short == pytest.approx((4000.0 - 16.0) / 2.0 * kvb / bw, rel=1e-9)


def test_gemm_curve_constants_are_the_vidur_fit():
    from wattgpu_core import physics
    from wattgpu_core.gemm_profile import fit_profile

    fit = fit_profile()
    assert set(fit["per_gpu"]) == {"a100", "a40", "h100"}
    assert physics.GEMM_PLATEAU_EFFICIENCY == pytest.approx(fit["plateau"], abs=0.005)
    assert physics.GEMM_HALF_TOKENS == pytest.approx(fit["half_tokens"], rel=0.01)
    # a large prefill reaches ~the plateau; one token almost none of it (memory-bound)
    assert physics.gemm_rate_share(8192) > 0.97 and physics.gemm_rate_share(1) < 0.01
