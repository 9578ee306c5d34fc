"""The sources a run can cite: the published data sets and the upload formats, with name, URL, license and
attribution (the store writes a source's row from here the first time one of its runs is stored).

It imports nothing, so the store knows the sources without depending on the importers that read their files.
"""

from __future__ import annotations

import re

SOURCE_ID = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,39}$")  # a new source's id: a short slug


SOURCES: dict[str, dict[str, str]] = {
    "wattcounts": {
        "name": "Watt Counts subset (per-experiment copy)",
        "url": "https://github.com/maufadel/wattgpu (original subset); per-experiment copy from "
        "https://github.com/cyx012113/Original-AI-Problemset @ 01a1ba9",
        "license": "CC BY-NC-SA 4.0 (derivative copy); underlying measurements Apache-2.0",
        "attribution": "Watt Counts (arXiv 2604.09048) and WattGPU (arXiv 2607.02391), github.com/maufadel/wattgpu; "
        "per-experiment copy by github.com/cyx012113",
        "notes": "vLLM 0.14.1, single GPU, SQuAD prompts, offline batch of 1,000 and Poisson server at 0.017 and "
        "0.33 requests/s",
    },
    "wattcounts_upload": {
        "name": "Watt Counts subset format (uploaded)",
        "url": "https://github.com/maufadel/wattgpu",
        "license": "Apache-2.0 (Watt Counts subset) unless the uploader states otherwise",
        "attribution": "Watt Counts (arXiv 2604.09048), github.com/maufadel/wattgpu",
        "notes": "exact per-request server ITL computed from the list columns",
    },
    "mlenergy_v2": {
        "name": "ML.ENERGY Leaderboard v2",
        "url": "https://github.com/ml-energy/leaderboard-v2 @ c3af7f3",
        "license": "Apache-2.0",
        "attribution": "The ML.ENERGY Initiative, ML.ENERGY Leaderboard v2 (github.com/ml-energy/leaderboard-v2)",
        "notes": "vLLM 0.5.4, request rate inf, maximum batch size sweep",
    },
    "mlenergy_v1": {
        "name": "ML.ENERGY Leaderboard v1 (legacy)",
        "url": "https://github.com/ml-energy/leaderboard-v2 @ c3af7f3, data/legacy",
        "license": "Apache-2.0",
        "attribution": "The ML.ENERGY Initiative, ML.ENERGY Leaderboard v1 (legacy data)",
        "notes": "2023, FastChat / Hugging Face transformers with Zeus, one response at a time; GPU variants not "
        "stated; lowest quality, not used for training",
    },
    "argonne": {
        "name": "Argonne LLM-Inference-Bench",
        "url": "https://github.com/argonne-lcf/LLM-Inference-Bench @ 4211f5d, Plots/Fig_16_a_b/power_results.csv",
        "license": "BSD-3-Clause",
        "attribution": "Argonne Leadership Computing Facility, LLM-Inference-Bench "
        "(github.com/argonne-lcf/LLM-Inference-Bench)",
        "notes": "input = output = 1,024 tokens, batch 1-64, vLLM / TensorRT-LLM / DeepSpeed-MII",
    },
    "tokenpowerbench": {
        "name": "TokenPowerBench results",
        "url": "https://github.com/chenxuniu/TokenPowerBench @ ec00f52, results/",
        "license": "MIT (stated in the repository README)",
        "attribution": "TokenPowerBench (AAAI 2026), github.com/chenxuniu/TokenPowerBench",
        "notes": "offline vLLM runs of Llama 3.1-8B / 3.2-3B / 3.2-1B base models, batch 128-512, outputs 32-2,000 "
                 "tokens, one busy GPU of four (power of the busy GPU only); GPU inferred as H100 NVL 94GB",
    },
    "vllm_bench": {
        "name": "vLLM benchmark result with a power log (uploaded)",
        "url": "",
        "license": "as stated by the uploader",
        "attribution": "as stated by the uploader",
        "notes": "vllm bench serve --save-result JSON; power from the paired log inside the run's window",
    },
    "guidellm": {
        "name": "GuideLLM report with a power log (uploaded)",
        "url": "",
        "license": "as stated by the uploader",
        "attribution": "as stated by the uploader",
        "notes": "GuideLLM benchmarks.json; power from the paired log inside each benchmark's window",
    },
    "wattgpu_measure": {
        "name": "Measured with python -m wattgpu_core measure (uploaded)",
        "url": "",
        "license": "as stated by the uploader",
        "attribution": "as stated by the uploader",
        "notes": "streamed OpenAI-compatible requests; NVML power sampled during the run",
    },
    "user_upload": {
        "name": "User upload (canonical CSV)",
        "url": "",
        "license": "as stated by the uploader",
        "attribution": "as stated by the uploader",
        "notes": "",
    },
}



# Source ids of the seed data: an upload may not claim them (its runs would pass for the published data).
RESERVED_SOURCE_IDS = frozenset({"wattcounts", "mlenergy_v2", "mlenergy_v1", "argonne", "tokenpowerbench", "catalog"})
