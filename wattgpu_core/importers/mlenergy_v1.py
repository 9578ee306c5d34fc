"""ML.ENERGY Leaderboard v1 (legacy, 2023): ``<GPU>_<task>_benchmark.csv``, one row per LLM, with the GPU named only
in the file name. FastChat / Hugging Face transformers answering one request at a time (batch 1); power is the
energy over the latency. The GPU variants are not stated (``data/manual/source_gpu_map.csv`` holds the assumption).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..parsed import ParsedFile, empty_runs
from ..sources import SOURCES
from .issues import Issues, reject
from .reading import numeric_column, text_column

TEXT_COLUMNS = {"model"}  # read as text, never as numbers


_V1_NAME = re.compile(r"^(?P<gpu>[A-Za-z0-9]+)_(?P<task>[A-Za-z\-]+)_benchmark\.csv$")


def parse_mlenergy_v1(frame: pd.DataFrame, issues: Issues, file_name: str) -> ParsedFile:
    match = _V1_NAME.match(Path(file_name).name)
    if not match:
        raise reject(
            f"an ML.ENERGY v1 file names its GPU in the file name, like A100_chat_benchmark.csv; "
            f"{Path(file_name).name!r} does not"
        )
    n = len(frame)
    rows = np.arange(1, n + 1)
    tput = numeric_column(frame, "throughput", issues, rows)
    length = numeric_column(frame, "response_length", issues, rows)
    latency = numeric_column(frame, "latency", issues, rows)
    energy = numeric_column(frame, "energy", issues, rows)
    out = empty_runs(n)
    out["llm_name_raw"] = text_column(frame, "model")
    out["gpu_name_raw"] = np.full(n, match["gpu"], dtype=object)
    out["scenario"] = np.full(n, "offline", dtype=object)
    out["batch_size"] = np.ones(n)
    out["output_tokens"] = length
    out["framework"] = np.full(n, "FastChat / HF transformers", dtype=object)
    out["framework_version"] = np.full(n, "2023 (ML.ENERGY v1)", dtype=object)
    out["precision"] = np.full(n, "fp16", dtype=object)
    out["num_gpus"] = np.ones(n)
    out["tensor_parallel"] = np.ones(n)
    out["campaign"] = np.full(n, match["task"], dtype=object)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["power_w"] = energy / latency
        out["energy_per_token_j"] = energy / length
    out["throughput_tok_s"] = tput
    out["e2e_latency_s"] = latency
    out["source_id"] = np.full(n, "mlenergy_v1", dtype=object)
    out["license"] = np.full(n, SOURCES["mlenergy_v1"]["license"], dtype=object)
    result = pd.DataFrame(out)
    result["_row"] = rows
    names_map = {"power_w": "energy", "energy_per_token_j": "energy", "throughput_tok_s": "throughput",
                 "llm_id": "model", "llm_name_raw": "model", "gpu_id": "file name", "gpu_name_raw": "file name",
                 "output_tokens": "response_length", "e2e_latency_s": "latency"}
    return ParsedFile("mlenergy_v1", result, names_map, "mlenergy_v1")
