"""TokenPowerBench importer: the busy GPU's own power (the files sum four GPUs), the GPU inference written per row,
and the runs that cannot be placed (no GPU identity, two busy GPUs, sub-second) skipped with their reason."""

from __future__ import annotations

import json

import pytest

from wattgpu_core.errors import ValidationError
from wattgpu_core.importers import parse_bytes, prepare
from wattgpu_core.importers.tokenpowerbench import read_results
from wattgpu_core.ingest import source_gpu_map
from wattgpu_core.paths import RAW_DIR
from wattgpu_core.store import read_seed_table

RESULTS = RAW_DIR / "tokenpowerbench" / "results"
ONE_RUN = RESULTS / "vllm_models--Llama-3.1-8B_128_1000_20250610_095633.json"


@pytest.fixture(scope="module")
def catalogs():
    return read_seed_table("gpus"), read_seed_table("llms")


def _prepare(path, catalogs):
    return prepare(parse_bytes(path.name, path.read_bytes()), *catalogs, source_gpu_map())


def test_one_run_by_hand(catalogs):
    prep = _prepare(ONE_RUN, catalogs)
    assert prep.format == "tokenpowerbench" and prep.source_id == "tokenpowerbench" and len(prep.frame) == 1
    run = prep.frame.iloc[0]
    raw = json.loads(ONE_RUN.read_text())["Llama-3.1-8B"][0]
    # the file's gpu_avg_power is the sum of the four GPUs (299.0 + 60.5 + 63.3 + 61.2 = 484.1 W)
    assert raw["gpu_avg_power"] == pytest.approx(sum(raw[f"gpu{i}_power_watts"] for i in range(4)), rel=1e-6)
    assert run["power_w"] == pytest.approx(299.00828421052626)
    assert run["gpu_energy_j"] == pytest.approx(299.00828421052626 * 7.623700141906738)
    assert run["energy_per_token_j"] == pytest.approx(299.00828421052626 * 7.623700141906738 / 17246)
    assert run["itl_s"] == pytest.approx(7.623700141906738 / 17246)
    assert run["output_tokens"] == pytest.approx(17246 / 32)
    assert (run["gpu_id"], run["llm_id"], run["scenario"]) == ("h100-nvl-94gb", "meta-llama/Llama-3.1-8B", "offline")
    assert (run["batch_size"], run["num_requests"], run["num_gpus"]) == (128, 32, 1)
    assert "inferred as H100 NVL" in run["notes"] and "sums four GPUs" in run["notes"]
    assert run["license"].startswith("MIT")


@pytest.mark.parametrize("name, reason", [
    ("vllm_models--Llama-3.1-8B_32-64_200_20250529_045506.json", "GPU not identifiable"),
    ("vllm_models--models--meta-llama--Llama-3.1-8B_256_500_20250419_063301.json", "GPU not identifiable"),
    ("vllm_models--Llama-3.1-8B_128_32_20250610_093755.json", "shorter than 1 s"),
])
def test_runs_that_cannot_be_placed_are_rejected_with_the_reason(catalogs, name, reason):
    path = next(RESULTS.glob(name.rsplit("_", 2)[0] + "*"))
    with pytest.raises(ValidationError, match=reason):
        _prepare(path, catalogs)


def test_the_whole_folder(catalogs):
    parsed = read_results(RESULTS)
    prep = prepare(parsed, *catalogs, source_gpu_map())
    assert len(prep.frame) == 128
    assert set(prep.frame["llm_id"]) == {"meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.2-3B"}
    assert prep.frame["gpu_id"].eq("h100-nvl-94gb").all()
    assert (prep.frame["power_w"] < 400).all()  # one GPU's power (the sums reach 580 W), under the 400 W TDP
    assert (prep.frame["duration_s"] >= 1.0).all()
    assert sum("GPU not identifiable" in w for w in parsed.warnings) == 17  # April / May files: no memory size
    assert sum("shorter than" in w for w in parsed.warnings) > 0


def test_a_run_with_two_busy_gpus_is_not_taken_as_a_one_gpu_run(catalogs):
    obj = json.loads(ONE_RUN.read_text())
    obj["Llama-3.1-8B"][0]["gpu1_power_watts"] = 250.0
    with pytest.raises(ValidationError, match="2 GPUs above 100 W"):
        prepare(parse_bytes(ONE_RUN.name, json.dumps(obj).encode()), *catalogs, source_gpu_map())
