"""ML.ENERGY Leaderboard v2: one run JSON object per (LLM, GPU, parallelism, maximum batch size), vLLM 0.5.4 with
every request queued at once (an offline run). Power per GPU is derived: energy per token x throughput / GPUs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..parsed import ParsedFile, empty_runs
from ..sources import SOURCES
from .issues import Issues
from .reading import numeric_column, text_column
from .sniff import MLE_V2_KEYS


def records_to_frame(records: list[dict], campaigns: list[str] | None = None) -> ParsedFile:
    """ML.ENERGY v2 run JSON objects (one per run) to runs."""
    issues = Issues()
    for i, rec in enumerate(records, start=1):
        if not isinstance(rec, dict):
            issues.add(i, "", "expected a JSON object per run")
            continue
        missing = sorted(MLE_V2_KEYS - set(rec))
        if missing:
            issues.add(i, missing[0], f"missing key{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    issues.raise_if_any()
    frame = pd.DataFrame(records)
    n = len(frame)
    rows = np.arange(1, n + 1)
    get = {k: numeric_column(frame, k, issues, rows) for k in (
        "TP", "PP", "Energy/req (J)", "Avg TPOT (s)", "Token tput (tok/s)", "Avg Output Tokens", "Avg BS (reqs)",
        "Max BS (reqs)")}
    issues.raise_if_any()
    n_gpu = get["TP"] * get["PP"]
    out = empty_runs(n)
    out["llm_name_raw"] = text_column(frame, "Model")
    out["gpu_name_raw"] = text_column(frame, "GPU")
    out["scenario"] = np.full(n, "offline", dtype=object)
    out["batch_size"] = get["Max BS (reqs)"]
    out["mean_batch_size"] = get["Avg BS (reqs)"]
    out["output_tokens"] = get["Avg Output Tokens"]
    out["framework"] = np.full(n, "vLLM", dtype=object)
    out["framework_version"] = np.full(n, "0.5.4", dtype=object)
    out["precision"] = np.full(n, "bf16", dtype=object)
    out["num_gpus"] = n_gpu
    out["tensor_parallel"] = get["TP"]
    out["campaign"] = np.array(campaigns if campaigns is not None else [None] * n, dtype=object)
    with np.errstate(divide="ignore", invalid="ignore"):
        ept = get["Energy/req (J)"] / get["Avg Output Tokens"]
        out["energy_per_token_j"] = ept
        out["power_w"] = ept * get["Token tput (tok/s)"] / n_gpu
    out["itl_s"] = get["Avg TPOT (s)"]
    out["itl_definition"] = np.full(n, "tpot_mean", dtype=object)
    out["throughput_tok_s"] = get["Token tput (tok/s)"]
    out["source_id"] = np.full(n, "mlenergy_v2", dtype=object)
    out["license"] = np.full(n, SOURCES["mlenergy_v2"]["license"], dtype=object)
    out["notes"] = np.full(n, "request rate inf (all requests queued at once); power derived from energy/token x "
                              "throughput / GPUs", dtype=object)
    result = pd.DataFrame(out)
    result["_row"] = rows
    names_map = {"power_w": "Energy/req (J)", "energy_per_token_j": "Energy/req (J)",
                 "throughput_tok_s": "Token tput (tok/s)", "itl_s": "Avg TPOT (s)", "llm_id": "Model",
                 "llm_name_raw": "Model", "gpu_id": "GPU", "gpu_name_raw": "GPU", "batch_size": "Max BS (reqs)",
                 "num_gpus": "TP", "output_tokens": "Avg Output Tokens"}
    return ParsedFile("mlenergy_v2", result, names_map, "mlenergy_v2")
