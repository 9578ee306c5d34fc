"""Watt Counts, in its two CSV forms: the per-experiment copy (one row per experiment, the seed data's form:
``gpu_power_draw_watts``, ``throughput_tokens_per_second``, ...) and the original subset (``gpu_0_power_draw_watts_mean``,
``measurement_duration``, ``generation_tokens_total``, ``gpu_energy`` and the per-request lists, from which the exact
server ITL is computed).

Both ran vLLM 0.14.1 on one GPU. The copy has no per-request data, so its server ITL is the mean end-to-end latency
per output token (``server_e2e_per_token``); the subset's is the paper's definition (``server_decode_per_request``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..parsed import ParsedFile, empty_runs
from ..sources import SOURCES
from .issues import Issues
from .reading import numeric_column, require_columns, text_column
from .request_lists import parse_list, server_itl_from_lists

# Read as text (never as numbers), so that "0.10" stays "0.10" and "1" stays "1".
EXPERIMENTS_TEXT_COLUMNS = {"model", "gpu_type", "scenario"}
SUBSET_TEXT_COLUMNS = {"model", "gpu_type", "vllm_version", "time_to_first_token_seconds_events",
                       "e2e_request_latency_seconds_events", "request_generation_tokens"}


def _wattcounts_precision(gpu_names: np.ndarray) -> np.ndarray:
    """Watt Counts ran vLLM with dtype=auto, which is fp16 on the V100 and T4 (no bf16 support)."""
    fp16 = pd.Series(gpu_names, dtype=object).isin(["Tesla T4", "Tesla V100-SXM2-32GB"]).to_numpy()
    return np.where(fp16, "fp16", "auto").astype(object)


def parse_experiments(frame: pd.DataFrame, issues: Issues) -> ParsedFile:
    n = len(frame)
    rows = np.arange(1, n + 1)
    g = {c: numeric_column(frame, c, issues, rows) for c in (
        "lambda_qps", "avg_prompt_tokens", "avg_generation_tokens", "num_requests", "gpu_power_draw_watts",
        "avg_e2e_latency_seconds", "energy_efficiency_tokens_per_joule", "throughput_tokens_per_second",
        "block", "iteration")}
    scen_raw = text_column(frame, "scenario")
    offline = (scen_raw == "offline").fillna(False).to_numpy(dtype=bool) | (g["lambda_qps"] < 0)
    out = empty_runs(n)
    out["llm_name_raw"] = text_column(frame, "model")
    out["gpu_name_raw"] = text_column(frame, "gpu_type")
    out["scenario"] = np.where(offline, "offline", "server").astype(object)
    out["request_rate_qps"] = np.where(offline, np.nan, g["lambda_qps"])
    out["input_tokens"] = g["avg_prompt_tokens"]
    out["output_tokens"] = g["avg_generation_tokens"]
    out["num_requests"] = g["num_requests"]
    out["framework"] = np.full(n, "vLLM", dtype=object)
    out["framework_version"] = np.full(n, "0.14.1", dtype=object)
    out["precision"] = _wattcounts_precision(out["gpu_name_raw"])
    out["num_gpus"] = np.ones(n)
    out["tensor_parallel"] = np.ones(n)
    out["iteration"] = g["iteration"]
    out["campaign"] = np.array([f"block {int(b)}" if np.isfinite(b) else None for b in g["block"]], dtype=object)
    out["power_w"] = g["gpu_power_draw_watts"]
    tput = g["throughput_tokens_per_second"]
    out["throughput_tok_s"] = tput
    with np.errstate(divide="ignore", invalid="ignore"):
        out["energy_per_token_j"] = 1.0 / g["energy_efficiency_tokens_per_joule"]
        tokens_total = g["num_requests"] * g["avg_generation_tokens"]
        out["output_tokens_total"] = tokens_total
        out["duration_s"] = np.where(offline, g["avg_e2e_latency_seconds"], tokens_total / tput)
        out["e2e_latency_s"] = np.where(offline, np.nan, g["avg_e2e_latency_seconds"])
        out["itl_s"] = np.where(offline, 1.0 / tput, g["avg_e2e_latency_seconds"] / g["avg_generation_tokens"])
        out["gpu_energy_j"] = tokens_total * out["energy_per_token_j"]
    out["itl_definition"] = np.where(offline, "offline_duration_per_token", "server_e2e_per_token").astype(object)
    out["source_id"] = np.full(n, "wattcounts", dtype=object)
    out["license"] = np.full(n, SOURCES["wattcounts"]["license"], dtype=object)
    result = pd.DataFrame(out)
    result["_row"] = rows
    names_map = {
        "power_w": "gpu_power_draw_watts", "throughput_tok_s": "throughput_tokens_per_second",
        "energy_per_token_j": "energy_efficiency_tokens_per_joule", "itl_s": "throughput_tokens_per_second",
        "llm_id": "model", "gpu_id": "gpu_type", "llm_name_raw": "model", "gpu_name_raw": "gpu_type",
        "output_tokens": "avg_generation_tokens", "input_tokens": "avg_prompt_tokens",
        "num_requests": "num_requests", "request_rate_qps": "lambda_qps", "scenario": "scenario",
        "e2e_latency_s": "avg_e2e_latency_seconds", "duration_s": "avg_e2e_latency_seconds",
    }
    return ParsedFile("wattcounts_experiments", result, names_map, "wattcounts")


def parse_subset(frame: pd.DataFrame, issues: Issues) -> ParsedFile:
    require_columns(frame, ["model", "gpu_type", "lambda_qps", "gpu_0_power_draw_watts_mean", "measurement_duration",
                            "generation_tokens_total", "gpu_energy"], "Watt Counts subset")
    n = len(frame)
    rows = np.arange(1, n + 1)
    lam = numeric_column(frame, "lambda_qps", issues, rows)
    power = numeric_column(frame, "gpu_0_power_draw_watts_mean", issues, rows)
    duration = numeric_column(frame, "measurement_duration", issues, rows)
    tokens_total = numeric_column(frame, "generation_tokens_total", issues, rows)
    energy = numeric_column(frame, "gpu_energy", issues, rows)
    prompt_total = numeric_column(frame, "prompt_tokens_total", issues, rows)
    iteration = numeric_column(frame, "iteration", issues, rows)
    offline = ~np.isfinite(lam) | (lam < 0)

    list_cols = ("time_to_first_token_seconds_events", "e2e_request_latency_seconds_events",
                 "request_generation_tokens")
    have_lists = all(c in frame.columns for c in list_cols)
    itl = np.full(n, np.nan)
    ttft_mean = np.full(n, np.nan)
    e2e_mean = np.full(n, np.nan)
    out_tokens = np.full(n, np.nan)
    n_req = numeric_column(frame, "num_requests", issues, rows)
    if have_lists:
        cells = {c: frame[c].to_numpy(dtype=object) for c in list_cols}
        for i in range(n):
            parsed = {}
            for c in list_cols:
                arr = parse_list(cells[c][i])
                if arr is None:
                    issues.add(rows[i], c, f"expected a list of numbers like [0.1, 0.2], found "
                                           f"{str(cells[c][i])[:40]!r}")
                parsed[c] = arr
            if any(v is None for v in parsed.values()):
                continue
            ttft, e2e, toks = (parsed[c] for c in list_cols)
            if not (len(ttft) == len(e2e) == len(toks)):
                issues.add(rows[i], "request_generation_tokens",
                           f"the per-request lists differ in length (time_to_first_token_seconds_events "
                           f"{len(ttft)}, e2e_request_latency_seconds_events {len(e2e)}, request_generation_tokens "
                           f"{len(toks)}); they must hold one value per request")
                continue
            if len(toks):
                out_tokens[i] = toks.mean()
                n_req[i] = len(toks) if not np.isfinite(n_req[i]) else n_req[i]
            if len(ttft):
                ttft_mean[i] = ttft.mean()
            if len(e2e):
                e2e_mean[i] = e2e.mean()
            if not offline[i]:
                itl[i] = server_itl_from_lists(ttft, e2e, toks)
    with np.errstate(divide="ignore", invalid="ignore"):
        itl = np.where(offline, duration / tokens_total, itl)
        tput = tokens_total / duration
        ept = energy / tokens_total
        input_tokens = prompt_total / n_req
        out_tokens = np.where(np.isnan(out_tokens), tokens_total / n_req, out_tokens)
    # The paper drops runs that generated no tokens; so do we, with a warning.
    zero = np.isfinite(tokens_total) & (tokens_total == 0)
    warnings = []
    if not have_lists and (~offline).any():
        warnings.append("no per-request list columns (" + ", ".join(list_cols) + "): server ITL left blank")
    if zero.any():
        n_zero = int(zero.sum())
        warnings.append(f"{n_zero} run{'s' if n_zero > 1 else ''} with generation_tokens_total = 0 skipped "
                        f"(row{'s' if n_zero > 1 else ''} " + ", ".join(map(str, rows[zero][:10]))
                        + (", ..." if n_zero > 10 else "") + "), as the WattGPU paper does")
    out = empty_runs(n)
    out["llm_name_raw"] = text_column(frame, "model")
    out["gpu_name_raw"] = text_column(frame, "gpu_type")
    out["scenario"] = np.where(offline, "offline", "server").astype(object)
    out["request_rate_qps"] = np.where(offline, np.nan, lam)
    out["input_tokens"] = input_tokens
    out["output_tokens"] = out_tokens
    out["num_requests"] = n_req
    out["framework"] = np.full(n, "vLLM", dtype=object)
    out["framework_version"] = text_column(frame, "vllm_version", "0.14.1")
    out["precision"] = _wattcounts_precision(out["gpu_name_raw"])
    out["num_gpus"] = np.ones(n)
    out["tensor_parallel"] = np.ones(n)
    out["iteration"] = iteration
    out["power_w"] = power
    out["itl_s"] = itl
    out["itl_definition"] = np.where(
        np.isnan(itl), None, np.where(offline, "offline_duration_per_token", "server_decode_per_request")
    ).astype(object)
    out["energy_per_token_j"] = ept
    out["throughput_tok_s"] = tput
    out["ttft_s"] = ttft_mean
    out["e2e_latency_s"] = e2e_mean
    out["duration_s"] = duration
    out["gpu_energy_j"] = energy
    out["output_tokens_total"] = tokens_total
    out["source_id"] = np.full(n, "wattcounts_upload", dtype=object)
    out["license"] = np.full(n, SOURCES["wattcounts_upload"]["license"], dtype=object)
    result = pd.DataFrame(out)
    result["_row"] = rows
    result = result[~zero].reset_index(drop=True)
    names_map = {
        "power_w": "gpu_0_power_draw_watts_mean", "duration_s": "measurement_duration",
        "output_tokens_total": "generation_tokens_total", "gpu_energy_j": "gpu_energy",
        "energy_per_token_j": "gpu_energy", "throughput_tok_s": "generation_tokens_total",
        "itl_s": "e2e_request_latency_seconds_events", "llm_id": "model", "gpu_id": "gpu_type",
        "llm_name_raw": "model", "gpu_name_raw": "gpu_type", "request_rate_qps": "lambda_qps",
        "ttft_s": "time_to_first_token_seconds_events", "e2e_latency_s": "e2e_request_latency_seconds_events",
    }
    return ParsedFile("wattcounts_subset", result, names_map, "wattcounts_upload", tuple(warnings))
