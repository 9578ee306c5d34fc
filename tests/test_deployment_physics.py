"""Deployment physics (issue 10): weight bytes per precision, compute paths, memory fit, tensor-parallel
all-reduce, checked against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from wattgpu_core import physics as ph
from wattgpu_core.collectives import fit_allreduce

LLAMA70 = {"total_params_b": 70.554, "num_layers": 80, "num_key_value_heads": 8, "head_dim_": 128,
           "hidden_size": 8192, "vocab_size": 128256, "intermediate_size": 28672}


def test_weight_bytes_per_param_hand_values():
    assert ph.weight_bytes_per_param("bfloat16") == 2.0
    assert ph.weight_bytes_per_param("FP8") == 1.0
    assert ph.weight_bytes_per_param("awq") == pytest.approx(0.5 + 20 / 128 / 8)  # 4 bits + FP16 scale + 4-bit zero
    assert ph.weight_bytes_per_param("nvfp4") == pytest.approx(4.5 / 8)  # FP8 scale per 16 values
    assert ph.weight_bytes_per_param("mxfp4") == pytest.approx(4.25 / 8)  # E8M0 scale per 32 values
    with pytest.raises(ValueError, match="unknown precision"):
        ph.normalise_precision("fp3")


def test_precision_support_rules():
    assert ph.precision_path("fp8", "Hopper").native
    assert ph.precision_path("fp8", "Ada Lovelace").compute == "fp8"
    amp = ph.precision_path("fp8", "Ampere")
    assert amp.supported and not amp.native and amp.compute == "16-bit"
    assert not ph.precision_path("fp8", "Volta").supported
    assert "Ampere" in ph.precision_path("fp8", "Turing").reason
    assert ph.precision_path("fp4", "Blackwell").native and ph.precision_path("mxfp4", "Blackwell 2.0").native
    assert not ph.precision_path("mxfp4", "Hopper").native and ph.precision_path("mxfp4", "Hopper").supported
    assert not ph.precision_path("fp4", "Turing").supported
    assert ph.precision_path("int4", "Hopper").compute == "16-bit"  # weight-only everywhere
    assert not ph.precision_path("fp8", "CDNA 3.0").supported
    assert ph.precision_path("bf16", "Volta").path.startswith("run as fp16")


def test_path_tflops():
    rate = ph.path_tflops(["16-bit", "fp8", "fp8", "fp4", ""], [989.0, 989.0, 100.0, 2250.0, 1.0],
                          [1979.0, 1979.0, np.nan, 4500.0, 1.0])
    assert rate[:4].tolist() == [989.0, 1979.0, 200.0, 9000.0] and np.isnan(rate[4])


def test_memory_fit_llama70b_bf16_on_two_h100():
    m = ph.memory_fit(**LLAMA70, memory_size_gb=80, tensor_parallel=[1, 2], precision="bf16",
                      context_tokens=1024 + 150 + 8)
    # weights 70.554e9 x 2 bytes = 141.108 GB; available 0.9 x 80 GiB x GPUs = 77.31 GB per GPU
    assert m.weights_gb.tolist() == pytest.approx([141.108, 141.108])
    assert m.available_gb.tolist() == pytest.approx([0.9 * 80 * 2**30 / 1e9, 2 * 0.9 * 80 * 2**30 / 1e9])
    assert m.fits.tolist() == [False, True]
    # per GPU: overhead 1 + 8192 x (4 x 8192 + 2 x 28672 / 2) x 2 / 1e9 + 1024 x 128256 / 2 x 4 / 1e9 = 2.2693 GB
    over = 1 + 8192 * (4 * 8192 + 28672) * 2 / 1e9 + 1024 * 128256 / 2 * 4 / 1e9
    assert m.overhead_gb[1] == pytest.approx(2 * over)
    # KV: 2 x 80 layers x 8 heads x 128 x 2 bytes = 327,680 bytes/token, split over 2 GPUs
    free = 0.9 * 80 * 2**30 - 141.108e9 / 2 - over * 1e9
    assert m.kv_capacity_tokens[1] == pytest.approx(free / (327680 / 2))
    assert m.max_batch[1] == np.floor(free / (327680 / 2) / 1182)
    assert m.margin_gb[1] == pytest.approx(m.available_gb[1] - m.needed_gb[1])


def test_memory_fit_llama70b_fp8_on_one_h100():
    m = ph.memory_fit(**LLAMA70, memory_size_gb=80, precision="fp8", context_tokens=1182)
    # 2 x 128,256 x 8,192 = 2.101e9 embedding + head parameters stay 16-bit, the rest at 1 byte
    emb = 2 * 128256 * 8192 / 1e9
    assert m.weights_gb[0] == pytest.approx(emb * 2 + (70.554 - emb))
    assert m.fits[0] and 0 < m.margin_gb[0] < 5


def test_gpt_oss_mxfp4_weights():
    m = ph.memory_fit(total_params_b=20.9, active_params_b=3.6, num_experts=32, experts_per_token=4, num_layers=24,
                      num_key_value_heads=8, head_dim_=64, hidden_size=2880, vocab_size=201088, memory_size_gb=80,
                      precision="mxfp4")
    assert 11 < m.weights_gb[0] < 15  # ships as ~13 GB, not 42 GB


def test_tp_per_gpu_bytes_and_comm():
    one = ph.weight_bytes_per_step(70.554, 70.554, np.nan, np.nan, 8, tensor_parallel=1)
    four = ph.weight_bytes_per_step(70.554, 70.554, np.nan, np.nan, 8, tensor_parallel=4)
    assert four == pytest.approx(one / 4)
    assert ph.tp_comm_time_s(8, 8192, 80, 1) == 0.0
    t = ph.tp_comm_time_s(8, 8192, 80, [2, 4, 8])
    assert np.all(np.diff(t) > 0) and t[0] > 2 * 80 * ph.ALLREDUCE_LATENCY_S
    assert ph.link_gb_s("NVLink 4: 900 GB/s bidirectional per GPU (450 GB/s per direction)") == 450.0
    assert ph.link_gb_s("PCIe 4.0 x16") == 32.0


def test_allreduce_constants_match_the_vidur_fit():
    fit = fit_allreduce()
    assert fit["latency_s"] == pytest.approx(ph.ALLREDUCE_LATENCY_S, rel=0.01)
    assert fit["bandwidth_efficiency"] == pytest.approx(ph.ALLREDUCE_BANDWIDTH_EFFICIENCY, rel=0.01)
    assert fit["mdape_pct"] < 30


def test_mla_latent_kv_cache():
    rank, rope = ph.mla_dims(["deepseek_v3", "llama", None])
    assert rank[0] == 512 and rope[0] == 64 and np.isnan(rank[1]) and np.isnan(rank[2])
    # DeepSeek-V3: 61 layers x (512 + 64) x 2 bytes = 70,272 bytes per token, not 2 x 128 heads x 56 x 2 x 61
    assert ph.mla_kv_bytes_per_token(61, 512, 64) == 70272.0
    m = ph.memory_fit(total_params_b=671.026, num_layers=61, num_key_value_heads=128, head_dim_=56, hidden_size=7168,
                      memory_size_gb=141, tensor_parallel=8, precision="fp8", context_tokens=2000,
                      kv_bytes_token=70272.0 * 8)
    plain = ph.memory_fit(total_params_b=671.026, num_layers=61, num_key_value_heads=128, head_dim_=56,
                          hidden_size=7168, memory_size_gb=141, tensor_parallel=8, precision="fp8",
                          context_tokens=2000)
    assert m.kv_capacity_tokens[0] == pytest.approx(plain.kv_capacity_tokens[0] * 2 * 128 * 56 * 2 * 61 / 70272 / 8)
