"""Format detection, the one sniffer: which format a file is, told from its content, with no parsing beyond JSON.

A CSV's format comes from its header (:func:`detect_format_from_columns`), a JSON document's from its keys
(:func:`detect_json`: ML.ENERGY v2, TokenPowerBench, or a vLLM / GuideLLM result that needs its power log), a
power log's from its first lines (:func:`detect_power_log`: nvidia-smi CSV, DCGM scrapes, zeus). :data:`FORMATS`
describes every format a user can upload. Nothing here imports a parser, so the parsers and the dispatcher
(``parse.py``) build on it.
"""

from __future__ import annotations

import re

from ..errors import ValidationError
from .issues import reject

FORMATS = {
    "canonical": "WattGPU canonical CSV (columns llm, gpu, scenario, power_w, ...)",
    "wattcounts_experiments": "Watt Counts per-experiment copy (gpu_power_draw_watts, ...)",
    "wattcounts_subset": "original Watt Counts subset (gpu_0_power_draw_watts_mean, per-request lists)",
    "mlenergy_v2": "ML.ENERGY leaderboard v2 run JSON",
    "mlenergy_v1": "ML.ENERGY leaderboard v1 legacy CSV (<GPU>_<task>_benchmark.csv)",
    "argonne": "Argonne LLM-Inference-Bench power_results.csv",
    "tokenpowerbench": "TokenPowerBench result JSON ({model: [runs with gpu0_power_watts, ...]})",
    "vllm_bench": "vLLM benchmark result JSON (vllm bench serve --save-result) with its power log (nvidia-smi CSV, "
                  "DCGM scrapes or zeus log), uploaded together",
    "guidellm": "GuideLLM report JSON (one run per rate) with its power log, uploaded together",
}

# ----------------------------------------------------------------------------------------------------------------
# CSV: the header's marker columns
_WC_EXPERIMENTS = {"model", "gpu_type", "lambda_qps", "scenario", "gpu_power_draw_watts",
                   "throughput_tokens_per_second", "energy_efficiency_tokens_per_joule"}
_WC_SUBSET = {"model", "gpu_type", "gpu_0_power_draw_watts_mean", "measurement_duration",
              "generation_tokens_total"}
_MLE_V1 = {"model", "throughput", "response_length", "latency", "energy"}
_ARGONNE = {"Hardware", "Framework", "Model", "Batch Size", "Latency", "avg_power"}
_CANONICAL_MARKERS = {"llm", "gpu", "power_w"}


def detect_format_from_columns(columns) -> str | None:
    """The CSV format whose marker columns the header holds, tried in this order (a canonical CSV needs two of llm,
    gpu and power_w, or their ``_id`` forms), else None."""
    cols = {str(c).strip() for c in columns}
    if _WC_EXPERIMENTS <= cols:
        return "wattcounts_experiments"
    if _WC_SUBSET <= cols:
        return "wattcounts_subset"
    if _ARGONNE <= cols:
        return "argonne"
    if _MLE_V1 <= cols:
        return "mlenergy_v1"
    cols |= {c[: -len("_id")] for c in cols & {"llm_id", "gpu_id"}}
    if len(_CANONICAL_MARKERS & cols) >= 2:
        return "canonical"
    return None


def format_error(columns) -> ValidationError:
    """The rejection of a CSV whose header matches no format, showing the header and what a canonical CSV needs."""
    cols = [str(c) for c in columns]
    shown = ", ".join(c if len(c) <= 40 else c[:37] + "..." for c in cols[:8]) + (" ..." if len(cols) > 8 else "")
    hint = ""
    if len(cols) == 1 and any(d in cols[0] for d in ": "):
        hint = " The header looks like it uses an unsupported delimiter; use comma, semicolon, tab or pipe."
    return reject(
        "unrecognised format: the header (" + shown + ") matches none of the known formats. "
        "A canonical CSV needs at least the columns llm, gpu, scenario, power_w; "
        "get the template with `python -m wattgpu_core template` or from the Data page." + hint,
    )


# ----------------------------------------------------------------------------------------------------------------
# JSON: the document's keys
MLE_V2_KEYS = {"Model", "GPU", "TP", "PP", "Energy/req (J)", "Token tput (tok/s)", "Avg Output Tokens"}
VLLM_FORMAT = "vllm_bench"
GUIDELLM_FORMAT = "guidellm"
VLLM_MARKERS = frozenset({"date", "duration", "completed", "total_output_tokens"})


def is_tokenpowerbench(obj) -> bool:
    """Whether a parsed JSON object looks like a TokenPowerBench result file ({model: [run with gpu0_power_watts,
    gpu_avg_power, ...]})."""
    if not isinstance(obj, dict) or not obj:
        return False
    runs = [r for v in obj.values() if isinstance(v, list) for r in v]
    return bool(runs) and all(isinstance(r, dict) and "gpu0_power_watts" in r and "gpu_avg_power" in r
                              for r in runs)


def is_vllm_result(record) -> bool:
    return isinstance(record, dict) and VLLM_MARKERS <= set(record) and ("model_id" in record or "backend" in record)


def is_guidellm_report(record) -> bool:
    return (isinstance(record, dict) and isinstance(record.get("benchmarks"), list)
            and ("metadata" in record or "config" in record))


def detect_result(records: list) -> str | None:
    """``vllm_bench`` or ``guidellm`` when the JSON records are one of those results, else None."""
    if records and all(is_vllm_result(r) for r in records):
        return VLLM_FORMAT
    if len(records) == 1 and is_guidellm_report(records[0]):
        return GUIDELLM_FORMAT
    return None


def detect_json(obj) -> str | None:
    """The format of a parsed JSON document: ``tokenpowerbench``, ``mlenergy_v2`` (run objects with a ``Model``),
    ``vllm_bench`` or ``guidellm`` (results that need their power log), else None."""
    if is_tokenpowerbench(obj):
        return "tokenpowerbench"
    records = obj if isinstance(obj, list) else [obj]
    if records and isinstance(records[0], dict) and "Model" in records[0]:
        return "mlenergy_v2"
    return detect_result(records)


# ----------------------------------------------------------------------------------------------------------------
# Power logs: the first lines
SMI_POWER_FIELDS = ("power.draw", "power.draw.instant", "power.draw.average")
DCGM_METRIC = "DCGM_FI_DEV_POWER_USAGE"
ZEUS_HEADER = re.compile(r"^start_time,window_name,elapsed_time(,gpu\d+_energy)+$")


def detect_power_log(text: str) -> str | None:
    """The power-log format of ``text`` (``zeus``, ``dcgm`` or ``nvidia_smi``), or None."""
    head = text.lstrip("\ufeff \t\r\n")
    first = head.split("\n", 1)[0].strip()
    if ZEUS_HEADER.match(first.replace(" ", "")):
        return "zeus"
    if DCGM_METRIC in head[:1 << 16]:
        return "dcgm"
    cols = [c.strip().split(" [")[0].lower() for c in first.split(",")]
    if "timestamp" in cols and any(c in SMI_POWER_FIELDS for c in cols):
        return "nvidia_smi"
    return None
