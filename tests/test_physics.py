"""Decode physics against values worked out by hand, and the monotonicity the WattGPU+ ITL model must keep."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattgpu_core import physics as ph
from wattgpu_core.plus_itl import ItlCalibration, physics_itl_s


def test_model_sizes_by_hand():
    # Llama-3.1-8B: 32 layers x 8 KV heads x 128 dims x K and V x 2 bytes
    assert ph.kv_bytes_per_token(32, 8, 128) == 131072.0
    assert ph.head_dim(3840, 16) == 240.0 and ph.head_dim(3840, 16, 256.0) == 256.0
    assert ph.head_dim(4096, 32, np.nan) == 128.0
    # Mixtral-8x7B: total 46.703 B, active 12.880 B, 8 experts, 2 per token
    dense, expert = ph.moe_split_b(46.703, 12.880, 8, 2)
    assert expert == pytest.approx((46.703 - 12.880) / 6)
    assert dense == pytest.approx(12.880 - 2 * (46.703 - 12.880) / 6)
    assert ph.moe_split_b(8.03, 8.03, np.nan, np.nan) == (pytest.approx(8.03), 0.0)
    assert ph.experts_touched_fraction(1, 8, 2) == pytest.approx(0.25)
    assert ph.experts_touched_fraction(2, 8, 2) == pytest.approx(1 - 0.75**2)
    assert ph.experts_touched_fraction(5, np.nan, np.nan) == 1.0


def test_bytes_and_flops_per_step_by_hand():
    assert ph.weight_bytes_per_step(8.0, 8.0, np.nan, np.nan, 256) == pytest.approx(16e9)
    # One token through Mixtral reads exactly its active parameters; a large batch touches every expert.
    assert ph.weight_bytes_per_step(46.703, 12.880, 8, 2, 1) == pytest.approx(2 * 12.880e9)
    assert ph.weight_bytes_per_step(46.703, 12.880, 8, 2, 10_000) == pytest.approx(2 * 46.703e9)
    assert ph.weight_bytes_per_step(8.0, 8.0, np.nan, np.nan, 1, tensor_parallel=4) == pytest.approx(4e9)
    assert ph.kv_bytes_per_step(256, 132, 131072) == pytest.approx(256 * 132 * 131072)
    # 2 N per token + 4 x layers x heads x head dim x context (attention)
    assert ph.flops_per_step(8.0, 10, 100, 32, 32, 128) == pytest.approx(10 * (16e9 + 4 * 32 * 32 * 128 * 100))
    assert ph.prefill_flops(8.0, 14, 32, 32, 128) == pytest.approx(2 * 8e9 * 14 + 2 * 32 * 32 * 128 * 14 * 14)
    assert ph.allreduce_bytes_per_step(1, 4096, 32, 1) == 0.0
    assert ph.allreduce_bytes_per_step(1, 4096, 32, 2) == pytest.approx(2 * 32 * 2 * 0.5 * 4096 * 2)


def test_step_time_by_hand():
    # GEMMs: max(16 GB / 1000 GB/s = 16 ms, 4 TFLOP / 100 TFLOPS = 40 ms); attention reads 1 GB: +1 ms
    t = ph.decode_step_time_s(16e9, 1e9, 4e12, 0.0, 1000.0, 100.0)
    assert t == pytest.approx(0.041)
    t = ph.decode_step_time_s(16e9, 1e9, 4e12, 0.0, 1000.0, 100.0, overhead_s=1e-3, per_sequence_s=1e-5, batch=256)
    assert t == pytest.approx(0.041 + 1e-3 + 256e-5)
    # A power ceiling of 20 TFLOPS binds: 4 TFLOP take 200 ms
    t = ph.decode_step_time_s(16e9, 1e9, 4e12, 0.0, 1000.0, 100.0, power_tflops=20.0)
    assert t == pytest.approx(0.201)
    # Memory-bound at batch 1: 16 GB at 80% of 1000 GB/s
    t = ph.decode_step_time_s(16e9, 0.0, 16e9, 0.0, 1000.0, 100.0, memory_efficiency=0.8)
    assert t == pytest.approx(0.02)
    assert ph.power_limited_tflops(72.0, 0.3, 12.0) == pytest.approx(18.0)
    assert ph.power_limited_tflops(72.0, 0.3, 70.0) == pytest.approx(0.3 * 0.2 * 72.0)  # at least 20% of TDP


def test_vllm_batch_by_hand():
    assert ph.vllm_default_max_num_seqs([40, 80, 94, 24], [True, True, False, False]).tolist() == [256, 256, 1024,
                                                                                                     256]
    assert ph.vllm_memory_utilisation([16, 24]).tolist() == [0.8, 0.9]
    # A100 40 GB with Llama-8B: 0.9 x 40 GiB - 16 GB weights - 1 GB reserved, over 128 KiB per token
    kv = ph.kv_capacity_tokens(40.0, 16e9, 131072, 0.9)
    assert kv == pytest.approx((0.9 * 40 * 2**30 - 17e9) / 131072)
    assert ph.mean_context_tokens(14, 220) == pytest.approx(14 + 110 + 8)
    assert ph.offline_batch_cap(256, kv, 132) == 256
    assert ph.offline_batch_cap(256, 2000, 100) == 20
    # 1000 requests x 220 tokens in waves of 256: 859.4 steps + half an output of drain
    steps = ph.offline_decode_steps(1000, 220, 256, 256)
    assert steps == pytest.approx(1000 * 220 / 256 + 110)
    assert ph.offline_effective_batch(1000, 220, 256, 256) == pytest.approx(220_000 / steps)
    # All 1000 fit at once (max_num_seqs 1024): the run lasts as long as the longest output (256 tokens)
    assert ph.offline_decode_steps(1000, 220, 256, 1024) == pytest.approx(256)
    assert ph.server_concurrency(0.33, 5.0) == pytest.approx(1.65)
    assert ph.server_batch_seen(0.33, 5.0) == pytest.approx(2.65)
    assert ph.server_batch_seen(10.0, 5.0, 16) == 16
    assert ph.server_busy_fraction(0.33, 5.0) == pytest.approx(1 - np.exp(-1.65))


def test_vllm_default_batch_by_gpu_id():
    # A100s and A800s (its export variant) keep 256 even with 80 GB; other GPUs with >= 70 GiB get 1024
    got = ph.vllm_max_num_seqs(["h100-nvl-94gb", "h200-sxm-141gb", "a100-sxm4-40gb", "a100-sxm4-80gb",
                                "a800-sxm4-80gb", "l4", "b200"], [94, 141, 40, 80, 80, 24, 180])
    assert got.tolist() == [1024, 1024, 256, 256, 256, 256, 1024]


def test_server_busy_fraction_in_a_measurement_window_by_hand():
    busy = 1 - np.exp(-0.017 * 2.0)  # 0.033428
    s_eff = 300 + 1 / 0.017  # 358.82 s of arrivals on average (the last gap overshoots 300 s by 1/lambda)
    expected = (s_eff * busy + 2.0) / (s_eff + 2.0)  # the last request drains inside the window: 0.038786
    assert ph.server_busy_fraction(0.017, 2.0, ph.WATTCOUNTS_SUBMIT_S) == pytest.approx(expected)
    assert expected == pytest.approx(0.038786, abs=1e-6)
    assert ph.server_busy_fraction(0.017, 2.0) == pytest.approx(busy)  # steady state by default
    assert ph.server_busy_fraction(0.0, 2.0, 300.0) == 0.0
    rates = np.geomspace(1e-3, 100, 60)
    for submit in (300.0, np.inf):
        duty = ph.server_busy_fraction(rates, 1.5, submit)
        assert np.all(np.diff(duty) >= 0) and duty[-1] <= 1.0 and duty[-1] > 0.99


def test_serving_stack_names():
    got = ph.serving_stack(["vLLM", " vLLM ", "TensorRT-LLM", None, "", "SGLang"],
                           ["0.14.1", "0.6", None, "0.14", None, "main"])
    assert got.tolist() == ["vLLM 0.14", "vLLM 0.6", "TensorRT-LLM", None, None, "SGLang main"]
    sourced = ph.serving_stack(["vLLM", "vLLM", "vLLM", None], [None, None, "0.5.4", None], ["a", "b", "a", "a"])
    assert sourced.tolist() == ["vLLM (version not stated in a)", "vLLM (version not stated in b)", "vLLM 0.5", None]


def _rows(**over) -> pd.DataFrame:
    base = {"llm_id": "x", "gpu_id": "g", "scenario_detail": "offline", "memory_bandwidth_gb_s": 1000.0,
            "fp16_tensor_dense_tflops": 100.0, "memory_size_gb": 40.0, "tdp_w": 300.0, "architecture": "Ampere",
            "total_params_b": 8.0, "active_params_b": 8.0, "num_layers": 32.0, "hidden_size": 4096.0,
            "num_attention_heads": 32.0, "num_key_value_heads": 8.0, "head_dim": 128.0, "input_tokens": 14.0,
            "output_tokens": 200.0, "max_output_tokens": 200.0, "num_requests": np.nan, "batch_size": 64.0,
            "request_rate_qps": np.nan}
    base.update(over)
    return pd.DataFrame([base])


def test_workload_itl_by_hand():
    # Steady-state offline batch of 64, full efficiencies: ITL = step / batch + prefill / output tokens; the GEMM
    # part combines weight reading and compute as Vidur's GEMM times do, (mem^1.5 + comp^1.5)^(1/1.5), not the max
    # (issue 12: the hard max overstated speed where the two are close)
    w = ph.DecodeWorkload.of(_rows())
    r = w.evaluate()
    ctx = 14 + 100 + 8
    mem = 16e9 / 1e12
    comp = 64 * 16e9 / 100e12
    attn = 64 * ctx * 131072 / 1e12 + 64 * 4 * 32 * 32 * 128 * ctx / 100e12
    step = (mem**1.5 + comp**1.5) ** (1 / 1.5) + attn
    prefill = (2 * 8e9 * 14 + 2 * 32 * 32 * 128 * 14**2) / 100e12
    assert r["batch"][0] == 64 and r["step_s"][0] == pytest.approx(step)
    assert r["itl_s"][0] == pytest.approx(step / 64 + prefill / 200)
    # A server at a very low rate decodes alone: ITL = (TTFT + 199 steps) / 200 tokens
    s = ph.DecodeWorkload.of(_rows(scenario_detail="server_low", request_rate_qps=1e-9)).evaluate()
    step1 = ((16e9 / 1e12) ** 1.5 + (16e9 / 100e12) ** 1.5) ** (1 / 1.5) + ctx * 131072 / 1e12 + 4 * 32 * 32 * 128 * ctx / 100e12
    assert s["batch"][0] == pytest.approx(1.0)
    assert s["itl_s"][0] == pytest.approx((max(prefill, step1) + 199 * step1) / 200)
    assert s["busy_fraction"][0] == pytest.approx(1e-9 * s["latency_s"][0], rel=1e-6)
    w = ph.DecodeWorkload.of(_rows())
    mem_s, comp_s = w.roofline_times_s(64.0)  # the plain roofline of one step at the batch
    assert mem_s[0] == pytest.approx(mem + 64 * ctx * 131072 / 1e12)
    assert comp_s[0] == pytest.approx(comp + 64 * 4 * 32 * 32 * 128 * ctx / 100e12)


CAL = ItlCalibration(memory_efficiency=0.8, compute_efficiency=0.6, overhead_s=1.3e-3, per_sequence_s=1.7e-5,
                     power_tflops_per_w=0.4, power_exponent=0.9, static_power_w=30.0,
                     arch_effects={"Ampere": 0.1}, family_effects={"sm8x": 0.0}, family_memory_effects={"sm8x": 0.0})


@pytest.mark.parametrize("scenario", ["offline", "server_high"])
@pytest.mark.parametrize("column", ["memory_bandwidth_gb_s", "fp16_tensor_dense_tflops", "tdp_w"])
def test_more_bandwidth_tflops_or_power_never_makes_itl_slower(scenario, column):
    values = {"memory_bandwidth_gb_s": np.geomspace(200, 10_000, 25), "fp16_tensor_dense_tflops":
              np.geomspace(30, 3000, 25), "tdp_w": np.geomspace(60, 1500, 25)}[column]
    for model in ({}, {"total_params_b": 0.5, "active_params_b": 0.5, "num_layers": 24.0, "hidden_size": 896.0,
                       "num_attention_heads": 14.0, "num_key_value_heads": 2.0, "head_dim": 64.0},
                  {"total_params_b": 46.7, "active_params_b": 12.9, "num_experts": 8.0, "experts_per_token": 2.0}):
        for batch in (np.nan, 8.0, 1024.0):
            rows = pd.concat([_rows(**{column: v, "scenario_detail": scenario, "request_rate_qps": 0.33,
                                       "batch_size": batch, "memory_size_gb": 141.0, **model}) for v in values],
                             ignore_index=True)
            itl = physics_itl_s(rows, CAL)
            assert np.isfinite(itl).all() and (itl > 0).all()
            assert (np.diff(itl) <= 1e-12 * itl[:-1]).all(), (column, scenario, model, batch)


def test_per_unique_is_the_plain_loop():
    """per_unique computes fn once per distinct combination of values (codes of each column combined); the result
    is the row-by-row loop's, for one column and for several (missing values of one kind)."""
    rng = np.random.default_rng(0)
    a = rng.choice(np.array(["h100", "l4", None, "b200"], dtype=object), 400)
    b = rng.choice(np.array(["offline", "server"], dtype=object), 400)
    c = rng.choice(np.array([1.0, 2.0, 2.5]), 400)

    def fn(*values):  # missing is missing, None or NaN
        return "|".join("-" if pd.isna(v) else str(v) for v in values)

    for columns in ((a,), (a, b), (a, b, c)):
        np.testing.assert_array_equal(ph.per_unique(fn, *columns, dtype=object),
                                      np.array([fn(*v) for v in zip(*columns, strict=True)], dtype=object))
    assert ph.per_unique(fn, a[:0], b[:0]).shape == (0,)


def test_server_fixed_point_on_server_rows_equals_every_row_alone():
    """``evaluate`` iterates the server's batch fixed point on the server rows only: each row of a mixed table
    (offline, server at several rates, a tensor-parallel and an MoE row) gets exactly what it gets alone."""
    rows = pd.concat([_rows(), _rows(scenario_detail="server_high", request_rate_qps=4.0),
                      _rows(scenario_detail="server_low", request_rate_qps=0.02, tensor_parallel=2.0),
                      _rows(num_requests=1000.0, batch_size=256.0),
                      _rows(scenario_detail="server_high", request_rate_qps=9.0, total_params_b=46.7,
                            active_params_b=12.9, num_experts=8.0, experts_per_token=2.0)], ignore_index=True)
    p = ph.StepParameters(memory_efficiency=np.linspace(0.6, 0.9, len(rows)), compute_efficiency=0.5,
                          power_tflops=80.0, overhead_s=1e-3, per_sequence_s=2e-5)
    together = ph.DecodeWorkload.of(rows).evaluate(p)
    for i in range(len(rows)):
        alone = ph.DecodeWorkload.of(rows.iloc[[i]]).evaluate(
            ph.StepParameters(**{k: (v[i:i + 1] if np.ndim(v) else v) for k, v in p.__dict__.items()}))
        for key, value in alone.items():
            assert together[key][i] == pytest.approx(value[0], rel=1e-12), (i, key)
    assert together["batch"][1] > 1.0 and together["batch"][0] == 64.0


def test_usable_memory_and_kv_capacity_by_hand():
    # GDDR6 runs with ECC on: 1/16 reserved (nvidia-smi: 15,360 MiB on a 16 GB T4, 23,034 MiB on a 24 GB L4)
    got = ph.usable_memory_gb([16, 24, 24, 40, 24, 32], ["GDDR6", "GDDR6", "GDDR6X", "HBM2", None, "GDDR7"])
    assert got.tolist() == [15.0, 22.5, 24.0, 40.0, 24.0, 32.0]
    assert ph.usable_memory_gb([16.0]).tolist() == [16.0]  # no memory type: as given
    # Llama-3.1-8B on an L4 (Watt Counts: gpu_memory_utilization 0.9): 0.9 x 22.5 GiB - 16.06 GB of weights - vLLM's
    # runtime reserve (1 GB + the profiling pass's activations and logits) over 128 KiB per token
    llm = dict(hidden_size=4096, intermediate_size=14336, vocab_size=128256)
    reserve = ph.runtime_overhead_gb(**llm, max_num_seqs=256)
    assert reserve == pytest.approx(1.0 + (8192 * (4 * 4096 + 2 * 14336) * 2 + 256 * 128256 * 4) / 1e9)
    row = _rows(memory_size_gb=24.0, memory_type="GDDR6", total_params_b=8.03, num_key_value_heads=8,
                num_attention_heads=32, num_layers=32, hidden_size=4096, batch_size=np.nan, **{
                    k: v for k, v in llm.items() if k != "hidden_size"})
    w = ph.DecodeWorkload.of(row)
    expected = (0.9 * 22.5 * 2**30 - 8.03e9 * 2 - reserve * 1e9) / 131072
    assert w.kv_capacity_tokens[0] == pytest.approx(expected)


def test_decode_physics_and_the_memory_fit_agree_on_the_kv_cache():
    """The batch the models are trained with is the batch planning predicts with: the decode physics' KV capacity
    of a row equals the memory fit's (the check that fits a deployment) for the same GPU and LLM."""
    for mem, mtype in ((24.0, "GDDR6"), (40.0, "HBM2"), (16.0, "GDDR6"), (141.0, "HBM3e")):
        row = _rows(memory_size_gb=mem, memory_type=mtype, total_params_b=3.2, num_key_value_heads=8,
                    num_attention_heads=24, num_layers=28, hidden_size=3072, intermediate_size=8192,
                    vocab_size=128256, batch_size=np.nan, gpu_id="x")
        w = ph.DecodeWorkload.of(row)
        fit = ph.memory_fit(total_params_b=3.2, num_layers=28, num_key_value_heads=8, head_dim_=128,
                            hidden_size=3072, memory_size_gb=mem, intermediate_size=8192, vocab_size=128256,
                            memory_type=mtype, max_num_seqs=w.max_num_seqs[0])
        assert w.kv_capacity_tokens[0] == pytest.approx(fit.kv_capacity_tokens[0]), (mem, mtype)
        assert fit.total_gb[0] == pytest.approx(mem * 2**30 / 1e9)  # the catalog size, ECC or not


@pytest.mark.parametrize("text, stack", [
    ("vLLM 0.14", "vLLM 0.14"), ("vllm 0.14.1", "vLLM 0.14"), ("VLLM==0.5.4", "vLLM 0.5"), ("vllm v0.11", "vLLM 0.11"),
    ("trt-llm", "TensorRT-LLM"), ("tensorrt_llm", "TensorRT-LLM"), ("deepspeed-mii", "Deepspeed-MII"),
    ("SGLang 0.4.3", "SGLang 0.4"), ("vLLM", "vLLM"), ("another stack (no calibration)", "another stack (no calibration)"),
    ("FastChat / HF transformers 2023 (ML.ENERGY v1)", "FastChat / HF transformers 2023 (ML.ENERGY v1)"),
    ("  ", None), (None, None),
])
def test_a_typed_serving_stack_is_named_as_the_data_name_it(text, stack):
    assert ph.parse_serving_stack(text) == stack


def test_framework_names_are_case_insensitive():
    assert ph.serving_stack(["vllm", "VLLM", "trt-llm"], ["v0.5.4", "0.14.1", None]).tolist() == \
        ["vLLM 0.5", "vLLM 0.14", "TensorRT-LLM"]
