"""TokenPowerBench result files: offline vLLM runs of Llama 3.1-8B / 3.2-3B / 3.2-1B on one GPU of a 4-GPU node.

One JSON file per run, ``<engine>_<model>_<batch>_<max output tokens>_<timestamp>.json``, holding
``{model: [run, ...]}`` (github.com/chenxuniu/TokenPowerBench, ``results/``, MIT per its README). What this importer
does with each run, and why:

* **Power per GPU.** ``gpu_avg_power`` (and ``gpu_energy``) in the files is the *sum* over the node's four GPUs, of
  which only one works: the others sit at about 60 W. The run's power is therefore the per-GPU mean of the busy
  GPU, ``max(gpuK_power_watts)``; the energy is that power times ``duration``. A run in which more than one GPU
  draws over :data:`IDLE_CEILING_W` is skipped (not a one-GPU run). The other GPUs' means are written in the notes.
* **GPU identity is an inference.** The files never name the GPU; ``gpu_memory_total_mb`` = 95,830 MiB is what
  ``nvidia-smi`` reports for the 94 GB H100 NVL, so those runs are taken as H100 NVL and every row says so in its
  notes. Runs without that field (the April/May 2025 files, from another node with two busy GPUs or a single
  reading) cannot be placed on a GPU and are skipped.
* **Short runs.** Runs under :data:`MIN_DURATION_S` are skipped: a mean over fewer than a second of power samples
  is mostly ramp-up.
* Prompts are not stated (``input_tokens`` stays blank); outputs are the mean per response; the batch in the file
  name is vLLM's running batch limit and ``responses`` the number of prompts, so the offline batch is the smaller.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..parsed import ParsedFile, empty_runs
from ..sources import SOURCES

SOURCE_ID = "tokenpowerbench"
SOURCE = SOURCES[SOURCE_ID]
FORMAT = "tokenpowerbench"
H100_NVL_TOTAL_MIB = 95830.0  # nvidia-smi memory.total of a 94 GB H100 NVL
GPU_BY_TOTAL_MIB = {H100_NVL_TOTAL_MIB: "NVIDIA H100 NVL"}
IDLE_CEILING_W = 100.0  # a GPU drawing more than this is taken as busy
MIN_DURATION_S = 1.0
_NAME = re.compile(r"^(?P<engine>[a-z]+)_(?P<model>.+)_(?P<batch>[0-9-]+)_(?P<max_tokens>[0-9]+)_"
                   r"(?P<stamp>[0-9]{8}_[0-9]{6})$")
# Run column -> the file's field, for messages.
NAMES = {"power_w": "gpu0_power_watts", "llm_name_raw": "model", "llm_id": "model", "gpu_name_raw": "gpu_memory_total_mb",
         "gpu_id": "gpu_memory_total_mb", "duration_s": "duration", "output_tokens": "total_output_tokens",
         "num_requests": "responses", "batch_size": "batch_size"}
_REQUIRED = ("duration", "total_output_tokens", "responses", "gpu_avg_power", "batch_size", "engine")


def _llm_name(model: str) -> str:
    """The Hugging Face id of a TokenPowerBench model key ("Llama-3.1-8B", "models--meta-llama--Llama-3.2-1B")."""
    name = model.split("--")[-1]
    return f"meta-llama/{name}"


def runs_of(file_name: str, obj: dict) -> tuple[list[dict], list[str]]:
    """(runs, skipped): one dict per importable run (run columns), and a reason for each run left out."""
    stem = Path(file_name).stem
    m = _NAME.match(stem)
    max_tokens = float(m["max_tokens"]) if m else np.nan
    runs, skipped = [], []
    for model, entries in obj.items():
        for k, e in enumerate(entries if isinstance(entries, list) else []):
            where = f"{stem} run {k + 1}"
            missing = [c for c in _REQUIRED if c not in e]
            if missing:
                skipped.append(f"{where}: missing {', '.join(missing)}")
                continue
            per_gpu = {i: float(e[f"gpu{i}_power_watts"]) for i in range(8) if f"gpu{i}_power_watts" in e}
            total_mib = e.get("gpu_memory_total_mb")
            gpu = GPU_BY_TOTAL_MIB.get(float(total_mib)) if total_mib is not None else None
            busy = [i for i, w in per_gpu.items() if w > IDLE_CEILING_W]
            duration = float(e["duration"])
            tokens = float(e["total_output_tokens"])
            responses = float(e["responses"])
            if gpu is None:
                skipped.append(f"{where}: GPU not identifiable (no gpu_memory_total_mb)")
            elif len(busy) != 1:
                skipped.append(f"{where}: {len(busy)} GPUs above {IDLE_CEILING_W:g} W, not a one-GPU run")
            elif duration < MIN_DURATION_S:
                skipped.append(f"{where}: {duration:.2f} s run, shorter than {MIN_DURATION_S:g} s")
            elif tokens <= 0 or responses <= 0:
                skipped.append(f"{where}: no output tokens")
            else:
                power = per_gpu[busy[0]]
                idle = [f"gpu{i} {w:.0f} W" for i, w in per_gpu.items() if i != busy[0]]
                runs.append({
                    "llm_name_raw": _llm_name(str(e.get("model") or model)), "gpu_name_raw": gpu,
                    "scenario": "offline", "batch_size": float(e["batch_size"]), "num_requests": responses,
                    "output_tokens": tokens / responses, "framework": "vLLM" if e["engine"] == "vllm"
                    else str(e["engine"]), "precision": "auto", "num_gpus": 1.0, "tensor_parallel": 1.0,
                    "campaign": stem, "power_w": power, "itl_s": duration / tokens,
                    "itl_definition": "offline_duration_per_token", "energy_per_token_j": power * duration / tokens,
                    "throughput_tok_s": tokens / duration, "duration_s": duration, "gpu_energy_j": power * duration,
                    "output_tokens_total": tokens,
                    "notes": (f"power of the busy GPU gpu{busy[0]} (the file's gpu_avg_power "
                              f"{float(e['gpu_avg_power']):.0f} W sums four GPUs; idle: {', '.join(idle)}); GPU "
                              f"inferred as H100 NVL from gpu_memory_total_mb {float(total_mib):,.0f} MiB (not named "
                              f"in the file); prompt length not stated; max_tokens {max_tokens:g} from the file name"),
                })
    return runs, skipped


def frame_of(files: list[tuple[str, dict]]) -> tuple[pd.DataFrame, list[str]]:
    """The runs of several result files (name, parsed JSON) as a frame of run columns plus ``_row`` (the run's
    position, 1-based), and every skip reason."""

    rows, skipped = [], []
    for name, obj in files:
        r, s = runs_of(name, obj)
        rows += r
        skipped += s
    out = pd.DataFrame(empty_runs(len(rows)))
    for i, r in enumerate(rows):
        for k, v in r.items():
            out.at[i, k] = v
    out["source_id"] = SOURCE_ID
    out["license"] = SOURCE["license"]
    out["_row"] = np.arange(1, len(out) + 1)
    return out, skipped


def parse_tokenpowerbench(file_name: str, obj: dict):
    """A :class:`~wattgpu_core.parsed.ParsedFile` of one result file (skipped runs as warnings)."""

    frame, skipped = frame_of([(file_name, obj)])
    return ParsedFile(FORMAT, frame, dict(NAMES), SOURCE_ID, tuple(f"skipped {s}" for s in skipped))


def read_results(folder: Path):
    """One :class:`ParsedFile` of every result file in ``folder`` (sorted by name), for the seed tables."""

    files = [(p.name, json.loads(p.read_text())) for p in sorted(Path(folder).glob("*.json"))]
    frame, skipped = frame_of([(n, o) for n, o in files if isinstance(o, dict)])
    return ParsedFile(FORMAT, frame, dict(NAMES), SOURCE_ID, tuple(f"skipped {s}" for s in skipped))
