"""Engineered features against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from wattgpu_core import features as F


def test_normalised_power_and_boost_ratio():
    assert F.normalised_power(200.0, 400.0) == 0.5
    # H100 NVL: 1785 MHz boost / 1080 MHz base
    assert F.boost_ratio(1785.0, 1080.0) == pytest.approx(1.6527777777777777)


def test_log_params():
    assert F.log_params(math.e) == pytest.approx(1.0)
    assert F.log_params(1.0) == 0.0


def test_bandwidth_and_compute_latency():
    # 7B parameters in 16 bit = 14 GB; at 3,500 GB/s that is 4 ms per pass
    assert F.bandwidth_latency_s(7.0, 3500.0) == pytest.approx(0.004)
    # 2 x 7e9 FLOPs at 700 TFLOPS = 2e-5 s
    assert F.compute_latency_s(7.0, 700.0) == pytest.approx(2e-5)
    # The paper's Llama-3.1-8B on the A100 (1,560 GB/s): 16.06 / 1560
    assert F.bandwidth_latency_s(8.03, 1560.0) == pytest.approx(0.010294871794871795)


def test_kv_cache_size():
    # Llama-3-8B shape: 32 layers, 4096 hidden, 32 heads (head_dim 128), 8 KV heads:
    # per token 2 (K,V) x 8 x 128 x 2 bytes x 32 layers = 131,072 bytes; x 640 tokens = 83,886,080
    assert F.kv_cache_bytes_per_token(8, 4096, 32, 32) == 131_072
    assert F.kv_cache_size_bytes(8, 4096, 32, 32) == 83_886_080


def test_memory_estimates():
    assert F.weights_memory_gb(7.0) == 14.0
    assert F.estimated_free_memory_gb(80.0, 7.0) == 66.0
    assert F.estimated_available_memory_gb(80.0, 7.0) == pytest.approx(58.0)
    # 2 x 32 layers x 4096 x 2 bytes / 1024^2 = 0.5 MiB per token
    assert F.mb_per_token(32, 4096) == 0.5
    # (58 GB x 1024 / 0.5) / (1000 + 256) = 118,784 / 1,256
    assert F.max_concurrent_requests(80.0, 7.0, 32, 4096) == pytest.approx(94.57324840764331)


def test_fits_in_memory():
    # 8B on a 24 GB card: 16.06e9 + 131,072 x 1024 bytes <= 0.9 x 24 x 2^30
    assert bool(F.fits_in_memory(24.0, 8.03, 8, 4096, 32, 32))
    # 70B needs 140 GB of weights: never on an 80 GB card
    assert not bool(F.fits_in_memory(80.0, 70.0, 8, 8192, 64, 80))
    # T4 (16 GB) runs at 0.8 utilisation: 0.8 x 16 x 2^30 = 13.7e9 < 14e9 of 7B weights
    assert not bool(F.fits_in_memory(16.0, 7.0, 8, 4096, 32, 32))
    assert bool(F.fits_in_memory(16.0, 3.0, 8, 4096, 32, 32))
    assert not bool(F.fits_in_memory(np.nan, 3.0, 8, 4096, 32, 32))
    np.testing.assert_array_equal(F.gpu_memory_utilisation([16.0, 24.0]), [0.8, 0.9])


def test_scenario_detail_follows_the_paper_rule():
    out = F.scenario_detail(["offline", "server", "server", "server", "server_low", "server"],
                            [np.nan, 0.017, 0.33, 0.2, np.nan, np.nan])
    assert list(out) == ["offline", "server_low", "server_high", "server_high", "server_low", None]


def test_add_features_is_pure_and_complete():
    frame = pd.DataFrame({
        "total_params_b": [7.0], "num_layers": [32.0], "hidden_size": [4096.0], "num_attention_heads": [32.0],
        "num_key_value_heads": [8.0], "memory_size_gb": [80.0], "memory_bandwidth_gb_s": [3500.0],
        "fp16_tensor_dense_tflops": [700.0], "base_clock_mhz": [1000.0], "boost_clock_mhz": [1500.0],
    })
    before = frame.copy()
    out = F.add_features(frame)
    pd.testing.assert_frame_equal(frame, before)
    row = out.iloc[0]
    assert row["boost_ratio"] == 1.5
    assert row["log_total_params_b"] == pytest.approx(math.log(7.0))
    assert row["bandwidth_latency_s"] == pytest.approx(0.004)
    assert row["compute_latency_s"] == pytest.approx(2e-5)
    assert row["kv_cache_size_bytes"] == 83_886_080
    assert row["estimated_available_memory_gb"] == pytest.approx(58.0)
    assert row["max_concurrent_requests"] == pytest.approx(94.57324840764331)
    assert bool(row["fits_in_memory"])


def test_join_specs_maps_catalog_values(store):
    rows = pd.DataFrame({"llm_id": ["meta-llama/Llama-3.1-8B-Instruct"], "gpu_id": ["h100-nvl-94gb"]})
    out = F.join_specs(rows, store.gpus(), store.llms())
    assert out.loc[0, "memory_bandwidth_gb_s"] == 3940.0
    assert out.loc[0, "tdp_w"] == 400.0
    assert out.loc[0, "total_params_b"] == 8.03
    assert out.loc[0, "model_type"] == "llama"


def test_with_columns_is_assigning_one_by_one():
    """with_columns (one step) gives the frame that assigning each column in turn gives: existing columns replaced
    in place, new ones appended in order, text kept as object."""
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    new = {"c": np.array([3.0, 4.0]), "a": np.array([5.0, 6.0]),
           "d": pd.Series(["p", None], dtype=object), "e": np.array([True, False])}
    by_one = frame.copy()
    for c, v in new.items():
        by_one[c] = v
    got = F.with_columns(frame.copy(), new)
    pd.testing.assert_frame_equal(got, by_one)
    assert list(got.columns) == ["a", "b", "c", "d", "e"] and got["d"].dtype == object
