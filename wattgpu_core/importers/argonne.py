"""Argonne LLM-Inference-Bench: ``power_results.csv`` (Fig. 16 a/b of the benchmark), one row per hardware,
framework, LLM and batch size, input = output length. ``avg_power`` is in milliwatts per device; a run's ITL is its
batch latency per generated step (``batch_latency_per_step``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..parsed import ParsedFile, empty_runs
from ..sources import SOURCES
from .issues import Issues
from .reading import numeric_column, text_column

TEXT_COLUMNS = {"Model", "Hardware", "Framework"}  # read as text, never as numbers


def parse_argonne(frame: pd.DataFrame, issues: Issues) -> ParsedFile:
    frame = frame.dropna(how="all").reset_index(drop=True)
    n = len(frame)
    rows = np.arange(1, n + 1)
    num_hw = numeric_column(frame, "Num of Hardware", issues, rows)
    io_len = numeric_column(frame, "Input Output Length", issues, rows)
    bs = numeric_column(frame, "Batch Size", issues, rows)
    latency = numeric_column(frame, "Latency", issues, rows)
    power_mw = numeric_column(frame, "avg_power", issues, rows)
    out = empty_runs(n)
    out["llm_name_raw"] = text_column(frame, "Model")
    out["gpu_name_raw"] = text_column(frame, "Hardware")
    out["scenario"] = np.full(n, "offline", dtype=object)
    out["batch_size"] = bs
    out["input_tokens"] = io_len
    out["output_tokens"] = io_len
    out["num_requests"] = bs
    out["framework"] = text_column(frame, "Framework")
    out["precision"] = np.full(n, "fp16", dtype=object)
    out["num_gpus"] = num_hw
    out["tensor_parallel"] = num_hw
    power = power_mw / 1000.0
    with np.errstate(divide="ignore", invalid="ignore"):
        tokens_total = bs * io_len
        out["power_w"] = power
        out["throughput_tok_s"] = tokens_total / latency
        out["energy_per_token_j"] = power * num_hw * latency / tokens_total
        out["itl_s"] = latency / io_len
    out["itl_definition"] = np.full(n, "batch_latency_per_step", dtype=object)
    out["e2e_latency_s"] = latency
    out["duration_s"] = latency
    out["output_tokens_total"] = tokens_total
    out["gpu_energy_j"] = power * num_hw * latency
    out["source_id"] = np.full(n, "argonne", dtype=object)
    out["license"] = np.full(n, SOURCES["argonne"]["license"], dtype=object)
    out["notes"] = np.full(n, "avg_power converted from mW; throughput counts output tokens only", dtype=object)
    result = pd.DataFrame(out)
    result["_row"] = rows
    names_map = {"power_w": "avg_power", "itl_s": "Latency", "throughput_tok_s": "Latency",
                 "energy_per_token_j": "avg_power", "llm_id": "Model", "llm_name_raw": "Model",
                 "gpu_id": "Hardware", "gpu_name_raw": "Hardware", "batch_size": "Batch Size",
                 "num_gpus": "Num of Hardware", "output_tokens": "Input Output Length",
                 "input_tokens": "Input Output Length", "duration_s": "Latency", "e2e_latency_s": "Latency"}
    return ParsedFile("argonne", result, names_map, "argonne")
