"""A benchmark result and its power log, together: one validated run per benchmarked load, with its mean power.

The result (vLLM or GuideLLM JSON) says what ran and when; the power log (nvidia-smi, DCGM, zeus) says what the
GPUs drew. For each run, the power readings inside the run's window give the mean power of each GPU (all GPUs of
the log unless ``gpu_indices`` picks some; the run's ``power_w`` is the mean over them, ``num_gpus`` their count).
A window the log does not cover, or one with fewer than ``min_samples`` readings of a GPU, rejects the pair.

Clocks: vLLM's ``date`` and nvidia-smi's timestamps are local wall-clock time without a zone; GuideLLM, DCGM and
zeus use epoch seconds (UTC). When the two files use different clocks, ``utc_offset_h`` says how far the local
clock is ahead of UTC (default 0, with a warning).

Idempotence: a run's natural identity is its source (``vllm_bench`` / ``guidellm``), its ``campaign`` (from the
result file: date stamp or start time, rate or concurrency, prompts), its LLM and its GPU. A run whose identity is
already in the store is skipped when its power agrees (within 0.5%) and refused, naming the earlier batch, when it
does not; so re-ingesting a pair adds nothing.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

import wattgpu_core.importers.guidellm as guidellm  # the modules, not the package: its __init__ imports this one
import wattgpu_core.importers.vllm_bench as vllm_bench

from ..errors import Issue, ValidationError
from ..parsed import ParsedFile, PreparedImport, empty_runs
from ..sources import SOURCES
from ..store import IngestResult
from .bench_results import BenchRun, load_json_records
from .issues import Issues, reject
from .powerlog import DEFAULT_MIN_SAMPLES, PowerLog, parse_power_log, window_power
from .reading import check_bytes
from .sniff import detect_power_log, detect_result
from .validate import prepare, source_gpu_map

RESULT_FORMATS = {vllm_bench.FORMAT: vllm_bench.DESCRIPTION, guidellm.FORMAT: guidellm.DESCRIPTION}
POWER_AGREEMENT = 0.005  # a re-sent run whose power differs by more than this fraction is a conflict


@dataclass(frozen=True)
class PairedImport:
    """Validated runs of a result + power-log pair, with what the page shows before confirming: ``windows`` (one
    row per run and GPU: window, readings, mean power) and ``already_stored`` (natural keys skipped)."""

    prepared: PreparedImport
    windows: pd.DataFrame
    already_stored: tuple[str, ...] = ()


def read_result(file_name: str, data: bytes, llm: str | None = None) -> tuple[str, list[BenchRun]]:
    text = check_bytes(file_name, data)
    records = load_json_records(text)
    fmt = detect_result(records)
    if fmt == vllm_bench.FORMAT:
        return fmt, vllm_bench.read_runs(records, llm)
    if fmt == guidellm.FORMAT:
        return fmt, guidellm.read_runs(records[0], llm)
    raise reject(f"{file_name} is not a benchmark result WattGPU pairs with a power log; expected one of: "
                 + "; ".join(RESULT_FORMATS.values()))


def split_files(files: list[tuple[str, bytes]]) -> tuple[tuple[str, bytes], tuple[str, bytes]]:
    """Which of two uploaded files is the result and which the power log, told from their content."""
    if len(files) != 2:
        raise reject(f"upload exactly two files, the benchmark result and its power log ({len(files)} given)")
    logs = [i for i, (name, data) in enumerate(files) if detect_power_log(check_bytes(name, data))]
    if len(logs) != 1:
        what = "neither" if not logs else "both"
        raise reject(f"{what} of {files[0][0]} and {files[1][0]} look{'s' if not logs else ''} like a power log; "
                     "upload one result JSON and one power log (nvidia-smi CSV, DCGM scrapes or zeus log)")
    return files[1 - logs[0]], files[logs[0]]


def parse_gpu_indices(text: str | None) -> list[int] | None:
    """'0,1' -> [0, 1]; blank -> None (every GPU of the log)."""
    if text is None or not text.strip():
        return None
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise reject(f"GPU indices are whole numbers separated by commas, like 0 or 0,1; found {text!r}",
                     column="gpu indices") from None


def _to_log_clock(run: BenchRun, log: PowerLog, utc_offset_h: float) -> tuple[float, float]:
    if run.clock == log.clock:
        return run.start_s, run.end_s
    shift = -utc_offset_h * 3600.0 if run.clock == "local" else utc_offset_h * 3600.0
    return run.start_s + shift, run.end_s + shift


def pair_runs(runs: list[BenchRun], log: PowerLog, fmt: str, *, gpu: str | None = None,
              gpu_indices: list[int] | None = None, utc_offset_h: float | None = None,
              min_samples: int = DEFAULT_MIN_SAMPLES) -> tuple[ParsedFile, pd.DataFrame]:
    """Runs with their power from the log, as a ParsedFile (names not yet resolved), and the windows table."""
    issues = Issues()
    warnings = []
    if runs and runs[0].clock != log.clock:
        if utc_offset_h is None:
            warnings.append(f"the result's times are {runs[0].clock} and the power log's {log.clock}: local time "
                            "taken as UTC (pass --utc-offset if the benchmark machine's clock is not on UTC)")
        else:
            warnings.append(f"local time taken as UTC{utc_offset_h:+g} h")
    offset = utc_offset_h or 0.0
    records, windows = [], []
    for run in runs:
        start, end = _to_log_clock(run, log, offset)
        try:
            wp = window_power(log, start, end, row=run.row, column=run.fields.get("power_w", ""),
                              gpu_indices=gpu_indices, min_samples=min_samples)
        except ValidationError as exc:
            for issue in exc.issues:
                issues.add(issue.row, issue.column, issue.message)
            continue
        names_ = {str(n) for n in wp.per_gpu["gpu_name"].dropna()}
        gpu_name = gpu or (names_.pop() if len(names_) == 1 else None) or run.columns.get("gpu_name_raw")
        if gpu is None and len(names_) > 1:
            issues.add(run.row, "gpu", "the power log holds GPUs of different models (" + ", ".join(sorted(names_))
                       + "); pick the serving GPUs with --gpu-indices")
            continue
        if gpu_name is None:
            issues.add(run.row, "gpu", f"neither the power log ({log.format}) nor the result names the GPU; "
                                       "pass it with --gpu (e.g. 'NVIDIA H100 80GB HBM3')")
            continue
        n_gpus = len(wp.per_gpu)
        rec = dict(run.columns)
        rec["gpu_name_raw"] = gpu_name
        rec["power_w"] = wp.power_w
        rec["num_gpus"] = float(n_gpus)
        if rec.get("tensor_parallel") is None or (isinstance(rec.get("tensor_parallel"), float)
                                                  and math.isnan(rec["tensor_parallel"])):
            rec["tensor_parallel"] = float(n_gpus)
        rec["gpu_energy_j"] = wp.power_w * n_gpus * rec["duration_s"]
        total = rec.get("output_tokens_total", math.nan)
        rec["energy_per_token_j"] = rec["gpu_energy_j"] / total if total and total > 0 else math.nan
        rec["campaign"] = run.key
        rec["source_id"] = fmt
        rec["license"] = SOURCES[fmt]["license"]
        note = f"power: mean of {int(wp.per_gpu['samples'].sum())} {log.format} readings in the run's window"
        rec["notes"] = "; ".join(x for x in (rec.get("notes"), note) if x)
        rec["_row"] = run.row
        records.append(rec)
        for _, g in wp.per_gpu.iterrows():
            windows.append({"Run": run.row, "GPU index": int(g["gpu_index"]),
                            "GPU": g["gpu_name"] if isinstance(g["gpu_name"], str) else gpu_name,
                            "Mean power (W)": round(float(g["power_w"]), 1), "Readings": int(g["samples"]),
                            "Window start": _stamp(wp.start_s, log.clock), "Window end": _stamp(wp.end_s, log.clock),
                            "Duration (s)": round(wp.end_s - wp.start_s, 1), "Run key": run.key})
    issues.raise_if_any()
    defaults = {c: (math.nan if v.dtype.kind == "f" else None) for c, v in empty_runs(0).items()}
    base = pd.DataFrame([{**defaults, **{k: v for k, v in r.items() if k in defaults}, "_row": r["_row"]}
                         for r in records], columns=[*defaults, "_row"])
    names_map = {}
    for run in runs:
        names_map.update(run.fields)
    return ParsedFile(fmt, base, names_map, fmt, tuple(warnings)), pd.DataFrame(windows)


def _stamp(seconds: float, clock: str) -> str:
    return pd.Timestamp(seconds, unit="s").strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if clock == "utc" else "")


def validate_pair(store, result: tuple[str, bytes], power_log: tuple[str, bytes], *, gpu: str | None = None,
                  llm: str | None = None, gpu_indices: list[int] | None = None, utc_offset_h: float | None = None,
                  min_samples: int = DEFAULT_MIN_SAMPLES) -> PairedImport:
    """Read, pair and validate without writing; raises ValidationError naming run (row) and field."""
    fmt, runs = read_result(result[0], result[1], llm)
    log = parse_power_log(power_log[0], power_log[1])
    parsed, windows = pair_runs(runs, log, fmt, gpu=gpu, gpu_indices=gpu_indices, utc_offset_h=utc_offset_h,
                                min_samples=min_samples)
    digest = hashlib.sha256(hashlib.sha256(result[1]).digest() + hashlib.sha256(power_log[1]).digest()).hexdigest()
    prepared = prepare(parsed, store.gpus(), store.llms(), source_gpu_map(),
                       file_name=f"{result[0]} + {power_log[0]}", file_sha256=digest)
    frame, skipped = _drop_stored(store, prepared.frame, parsed.frame["_row"].to_numpy())
    return PairedImport(replace(prepared, frame=frame), windows, skipped)


def _drop_stored(store, frame: pd.DataFrame, rows: np.ndarray) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Runs whose natural identity is already stored: dropped when their power agrees, refused when it does not."""
    stored = store.runs(source_ids=sorted(frame["source_id"].unique()))
    if stored.empty:
        return frame, ()
    keys = ["source_id", "campaign", "llm_id", "gpu_id"]
    merged = frame.reset_index(drop=True).merge(stored[[*keys, "power_w", "batch_id"]], on=keys, how="left",
                                                suffixes=("", "_stored"))
    hit = merged["batch_id"].notna().to_numpy()
    if not hit.any():
        return frame, ()
    differs = hit & (np.abs(merged["power_w"] - merged["power_w_stored"]).to_numpy()
                     > POWER_AGREEMENT * merged["power_w_stored"].abs().to_numpy())
    if differs.any():
        issues = [Issue(int(rows[i]), "power_w",
                        f"run {merged['campaign'][i]!r} is already in the store (batch {merged['batch_id'][i]}) with "
                        f"{merged['power_w_stored'][i]:.1f} W; this pair gives {merged['power_w'][i]:.1f} W. Remove "
                        "that batch first to replace it") for i in np.flatnonzero(differs)]
        raise ValidationError(issues)
    return frame[~hit].reset_index(drop=True), tuple(merged["campaign"][hit])


def ingest_pair(store, paired: PairedImport, added_by: str | None = None):
    """Write a validated pair (runs already stored were dropped by :func:`validate_pair`); ``added_by`` is recorded
    with the batch (default: the CLI user and host)."""
    n_skipped = len(paired.already_stored)
    if paired.prepared.frame.empty:
        return IngestResult(None, 0, n_skipped, 0, paired.prepared.format,
                            f"nothing added: all {n_skipped} run{'s' if n_skipped != 1 else ''} are already in the "
                            "store", paired.prepared.warnings)
    result = store.ingest(paired.prepared, added_by=added_by)
    if n_skipped:
        result = replace(result, duplicates_in_store=result.duplicates_in_store + n_skipped,
                         message=result.message + f"; {n_skipped} already in the store were skipped")
    return result
