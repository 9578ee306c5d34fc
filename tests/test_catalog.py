"""Catalogs and name resolution: every GPU name form resolves to one GPU; unknown or ambiguous names are refused."""

from __future__ import annotations

import pandas as pd
import pytest

from wattgpu_core.catalog import GpuResolver, LlmResolver
from wattgpu_core.errors import UnknownNameError
from wattgpu_core.store import read_seed_table


@pytest.fixture(scope="module")
def gpus() -> pd.DataFrame:
    return read_seed_table("gpus")


@pytest.fixture(scope="module")
def llms() -> pd.DataFrame:
    return read_seed_table("llms")


@pytest.fixture(scope="module")
def gpu_resolver(gpus) -> GpuResolver:
    return GpuResolver(gpus)


def test_catalogs_are_large_enough_and_every_row_has_a_source(gpus, llms):
    assert len(gpus) >= 35
    assert len(llms) >= 80
    for frame in (gpus, llms):
        assert frame["source"].notna().all()
        assert (frame["source"].str.strip() != "").all()
    assert gpus["gpu_id"].is_unique and llms["llm_id"].is_unique


@pytest.mark.parametrize(
    "name, gpu_id",
    [
        ("h100-nvl-94gb", "h100-nvl-94gb"),  # catalog id
        ("NVIDIA H100 NVL 94GB", "h100-nvl-94gb"),  # marketing name
        ("NVIDIA H100 NVL", "h100-nvl-94gb"),  # NVML name
        ("nvidia h100 nvl", "h100-nvl-94gb"),  # case and vendor prefix do not matter
        ("H100 NVL", "h100-nvl-94gb"),  # alias
        ("Tesla V100-SXM2-32GB", "v100-sxm2-32gb"),
        ("NVIDIA H100 80GB HBM3", "h100-sxm5-80gb"),
        ("H100 80GB HBM3", "h100-sxm5-80gb"),  # ML.ENERGY v2 folder name
        ("NVIDIA A100-SXM4-40GB", "a100-sxm4-40gb"),
        ("NVIDIA H200", "h200-sxm-141gb"),  # the NVML name of the SXM part
        ("Tesla T4", "t4"),
        ("NVIDIA L40S", "l40s"),
    ],
)
def test_name_forms_resolve_to_one_gpu(gpu_resolver, name, gpu_id):
    assert gpu_resolver.resolve(name) == gpu_id


def test_every_id_marketing_and_nvml_name_resolves_to_its_own_gpu(gpus, gpu_resolver):
    wrong = []
    for rec in gpus.to_dict("records"):
        for key in (rec["gpu_id"], rec["name"], rec["nvml_name"]):
            if isinstance(key, str) and gpu_resolver.try_resolve(key) != rec["gpu_id"]:
                wrong.append((key, rec["gpu_id"], gpu_resolver.try_resolve(key)))
    assert wrong == []


@pytest.mark.parametrize(
    "name, must_suggest",
    [
        ("H100", {"NVIDIA H100 NVL", "NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe"}),
        ("A100", {"NVIDIA A100-SXM4-40GB", "NVIDIA A100-SXM4-80GB", "NVIDIA A100-PCIE-40GB"}),
        ("V100", {"Tesla V100-SXM2-32GB", "Tesla V100-SXM2-16GB"}),
        ("H200", {"NVIDIA H200", "NVIDIA H200 NVL"}),  # bare H200 is ambiguous: SXM or NVL
    ],
)
def test_bare_family_names_are_rejected_with_suggestions(gpu_resolver, name, must_suggest):
    assert gpu_resolver.try_resolve(name) is None
    with pytest.raises(UnknownNameError) as info:
        gpu_resolver.resolve(name)
    suggested = set(info.value.suggestions[name])
    assert must_suggest <= suggested
    # every suggestion is a name that resolves
    assert all(gpu_resolver.try_resolve(s) for s in suggested)
    message = str(info.value)
    assert "\n" not in message and repr(name) in message and "did you mean" in message


@pytest.mark.parametrize(
    "name, gpu_id",
    [
        ("NVIDIA B200 180GB HBM3e", "b200"),  # size and type as a benchmark log may write them
        ("B200 192GB", "b200"),  # the marketed size; nvidia-smi shows about 183 GB
        ("NVIDIA B200 183 GB", "b200"),
        ("GB200 186GB", "gb200-per-gpu"),
        ("L40S 48 GB GDDR6", "l40s"),
        ("A100 SXM4 80GB", "a100-sxm4-80gb"),  # "A100 SXM4" alone is either memory size
        ("H100 PCIe 80GB", "h100-pcie-80gb"),
    ],
)
def test_a_name_with_its_memory_resolves_when_the_memory_singles_out_one_gpu(gpu_resolver, name, gpu_id):
    assert gpu_resolver.resolve(name) == gpu_id


@pytest.mark.parametrize("name", ["H100 80GB", "H200 141GB", "A100 40GB", "B200 80GB", "B200 180GB 180GB",
                                  "180GB HBM3e"])
def test_a_memory_that_fits_several_gpus_or_none_is_refused(gpu_resolver, name):
    # H100 80GB: SXM5 and PCIe; H200 141GB: SXM and NVL; A100 40GB: SXM4 and PCIe; B200 80GB: no B200 has 80 GB
    assert gpu_resolver.try_resolve(name) is None


def test_unknown_gpu_is_never_guessed(gpu_resolver):
    for name in ("NVIDIA H300", "Nvidia A100 GPU", "nan", "", "A100 SXM4"):
        assert gpu_resolver.try_resolve(name) is None


def test_llm_resolution(llms):
    resolver = LlmResolver(llms)
    assert resolver.resolve("meta-llama/Llama-3.1-8B-Instruct") == "meta-llama/Llama-3.1-8B-Instruct"
    assert resolver.resolve("meta-llama/llama-3.1-8b-instruct") == "meta-llama/Llama-3.1-8B-Instruct"
    # listed alias (renamed repository)
    assert resolver.resolve("meta-llama/Meta-Llama-3.1-8B-Instruct") == "meta-llama/Llama-3.1-8B-Instruct"
    # a repository name without its organisation is that repository (the base model, now in the catalog for
    # TokenPowerBench), never the instruct variant; a name that fits several is not guessed
    assert resolver.try_resolve("Llama-3.1-8B") == "meta-llama/Llama-3.1-8B"
    assert resolver.try_resolve("Llama-3.1") is None
    assert "meta-llama/Llama-3.1-8B-Instruct" in resolver.suggestions("Llama-3.1")
    # an empty alias cell must not become an alias "nan"
    assert resolver.try_resolve("nan") is None
