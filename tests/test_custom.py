"""Custom GPUs and LLMs: validation, parameter counts from config.json against published sizes, store round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wattgpu_core.custom import CustomEntryError, count_parameters, gpu_from_specs, llm_from_config, parse_config_json

CONFIGS = Path(__file__).parent / "fixtures" / "hf_configs"


def _config(name: str) -> bytes:
    return (CONFIGS / name).read_bytes()


@pytest.mark.parametrize(
    ("file", "total_b", "active_b"),
    [
        ("llama-3.1-8b.json", 8.03, 8.03),  # Meta: 8.03B
        ("qwen2.5-7b.json", 7.62, 7.62),  # Qwen: 7.61B
        ("gpt2.json", 0.124, 0.124),  # OpenAI: 124M
        ("mixtral-8x7b.json", 46.7, 12.9),  # Mistral: 46.7B total, 12.9B active
        ("deepseek-moe-16b.json", 16.4, 2.8),  # DeepSeek: 16.4B total, 2.8B active
    ],
)
def test_parameter_count_matches_published_size(file, total_b, active_b):
    total, active = count_parameters(parse_config_json(_config(file)))
    assert total == pytest.approx(total_b, rel=0.01)
    assert active == pytest.approx(active_b, rel=0.02)


def test_llm_row_is_complete_and_moe_flagged():
    row = llm_from_config(_config("mixtral-8x7b.json"), "me/my-mixtral")
    assert row["llm_id"] == "me/my-mixtral" and row["name"] == "my-mixtral"
    assert row["is_moe"] and row["architecture_class"] == "moe"
    assert row["num_experts"] == 8 and row["experts_per_token"] == 2
    assert row["metadata_complete"]
    dense = llm_from_config(_config("llama-3.1-8b.json"))  # id from _name_or_path
    assert dense["llm_id"] == "meta-llama/Llama-3.1-8B-Instruct" and not dense["is_moe"]
    assert dense["num_key_value_heads"] == 8


def test_multimodal_text_config_is_used():
    inner = json.loads(_config("llama-3.1-8b.json"))
    outer = {"model_type": "llava", "text_config": inner, "torch_dtype": "bfloat16"}
    row = llm_from_config(json.dumps(outer).encode(), "me/vlm")
    assert row["total_params_b"] == pytest.approx(8.03, rel=0.01)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\xff\xfe\x00", "UTF-8"),
        (_config("broken.json") if (CONFIGS / "broken.json").exists() else b"{", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"model_type": "llama", "hidden_size": 4096}', "num hidden layers|num layers"),
        (b'{"model_type": "mixtral", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, '
         b'"vocab_size": 100, "num_local_experts": 8}', "num_experts_per_tok"),
        (b'{"model_type": "llama", "hidden_size": -3, "num_hidden_layers": 2, "num_attention_heads": 4, '
         b'"vocab_size": 100}', "positive"),
    ],
)
def test_bad_configs_raise_actionable_errors(data, message):
    import re

    with pytest.raises(CustomEntryError, match=re.compile(message, re.I)):
        llm_from_config(data, "me/model")


def test_llm_id_checks():
    with pytest.raises(CustomEntryError, match="repo id"):
        llm_from_config(_config("gpt2.json"), "not a repo id")
    with pytest.raises(CustomEntryError, match="Hugging Face id"):
        llm_from_config(_config("gpt2.json"))
    with pytest.raises(CustomEntryError, match="already in the catalog"):
        llm_from_config(_config("gpt2.json"), "openai-community/gpt2", existing_ids={"openai-community/gpt2"})


GOOD_GPU = {"name": "Future GPU X", "memory_size_gb": 192, "memory_bandwidth_gb_s": 8000,
            "fp16_tensor_dense_tflops": 2250, "tdp_w": 1000, "release_year": 2026}


def test_gpu_from_specs():
    row = gpu_from_specs(GOOD_GPU)
    assert row["gpu_id"] == "custom-future-gpu-x"
    assert row["memory_size_gb"] == 192.0 and row["tdp_w"] == 1000.0
    assert row["base_clock_mhz"] is None
    assert row["generation"] == "User-defined"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": " "}, "name"),
        ({"memory_size_gb": None}, "Memory \\(GB\\) is required"),
        ({"tdp_w": "lots"}, "must be a number"),
        ({"memory_bandwidth_gb_s": 5}, "between 50 and 30000"),
        ({"base_clock_mhz": 1800, "boost_clock_mhz": 1500}, "boost clock"),
    ],
)
def test_gpu_spec_errors(change, message):
    with pytest.raises(CustomEntryError, match=message):
        gpu_from_specs({**GOOD_GPU, **change})


def test_custom_entries_round_trip_through_the_store(store):
    before = store.fingerprint()
    gpu_batch = store.add_gpu(gpu_from_specs(GOOD_GPU, set(store.gpus()["gpu_id"])))
    llm_batch = store.add_llm(llm_from_config(_config("mixtral-8x7b.json"), "me/my-mixtral"))
    gpus, llms = store.gpus(), store.llms()
    assert gpus.set_index("gpu_id").loc["custom-future-gpu-x", "user_defined"]
    assert llms.set_index("llm_id").loc["me/my-mixtral", "user_defined"]
    with pytest.raises(CustomEntryError, match="already exists"):
        gpu_from_specs(GOOD_GPU, set(gpus["gpu_id"]))
    store.remove_batch(llm_batch)
    store.remove_batch(gpu_batch)
    assert store.fingerprint() == before
