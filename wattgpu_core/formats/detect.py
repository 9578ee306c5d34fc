"""Telling the other tools' files apart by their content, with no parsing: which benchmark result (vLLM, GuideLLM)
a JSON file is, and which power log (nvidia-smi CSV, DCGM scrapes, zeus) a text file is.

It imports nothing of WattGPU, so the importers can refuse a result or a power log uploaded alone (they need their
pair) without depending on the parsers, which build on the importers.
"""

from __future__ import annotations

import re

VLLM_FORMAT = "vllm_bench"
GUIDELLM_FORMAT = "guidellm"
VLLM_MARKERS = frozenset({"date", "duration", "completed", "total_output_tokens"})
SMI_POWER_FIELDS = ("power.draw", "power.draw.instant", "power.draw.average")
DCGM_METRIC = "DCGM_FI_DEV_POWER_USAGE"
ZEUS_HEADER = re.compile(r"^start_time,window_name,elapsed_time(,gpu\d+_energy)+$")


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
