"""Importers: turn benchmark files into validated runs in the project's schema.

Six formats are recognised automatically from their content (see ``FORMATS``): WattGPU's canonical CSV, the
Watt Counts per-experiment copy, the original Watt Counts subset (with per-request lists, from which the exact
server ITL is computed), ML.ENERGY leaderboard v2 run JSON, ML.ENERGY v1 legacy CSV and Argonne
LLM-Inference-Bench power results. Every importer produces the same columns (``schema.RUN_COLUMNS``).

Validation is all-or-nothing: :func:`prepare` either returns a :class:`PreparedImport` in which every row is
valid, or raises :class:`ValidationError` listing every problem by row and column. The store then writes the
prepared rows in one transaction.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .catalog import GpuResolver, LlmResolver
from .errors import Issue, ValidationError
from .schema import CANONICAL_COLUMNS, ITL_DEFINITIONS, RUN_COLUMNS, SCENARIOS, names

MAX_FILE_BYTES = 200 * 1024 * 1024
MAX_ISSUES = 200
_DATA_COLUMNS = [c for c in names(RUN_COLUMNS) if c not in ("run_id", "batch_id")]

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
    "user_upload": {
        "name": "User upload (canonical CSV)",
        "url": "",
        "license": "as stated by the uploader",
        "attribution": "as stated by the uploader",
        "notes": "",
    },
}


# ----------------------------------------------------------------------------------------------------------------
# Results
@dataclass(frozen=True)
class ParsedFile:
    """Rows read from a file, names not yet resolved. ``frame`` has run columns plus ``_row`` (1-based data row)."""

    format: str
    frame: pd.DataFrame
    column_names: dict[str, str]  # run column -> column name in the user's file, for messages
    source_id: str
    warnings: tuple[str, ...] = ()
    attributions: tuple[tuple[str, str], ...] = ()  # (source_id, attribution) stated in the file


@dataclass(frozen=True)
class PreparedImport:
    """Validated rows ready to be written: every run column filled or NaN, names resolved."""

    format: str
    frame: pd.DataFrame
    source_id: str
    file_name: str
    file_sha256: str
    warnings: tuple[str, ...] = ()
    attributions: tuple[tuple[str, str], ...] = ()

    @property
    def n_rows(self) -> int:
        return len(self.frame)


@dataclass
class _Issues:
    items: list[Issue] = field(default_factory=list)
    total: int = 0

    def add(self, row: int, column: str, message: str) -> None:
        self.total += 1
        if len(self.items) < MAX_ISSUES:
            self.items.append(Issue(int(row), column, message))

    def add_many(self, rows, column: str, message: str) -> None:
        for r in rows:
            self.add(r, column, message)

    def raise_if_any(self) -> None:
        if self.total:
            self.items.sort(key=lambda i: (i.row, i.column))
            raise ValidationError(self.items, self.total)


def _reject(message: str, column: str = "", row: int = 0) -> ValidationError:
    return ValidationError([Issue(row, column, message)])


# ----------------------------------------------------------------------------------------------------------------
# Reading bytes
def _check_bytes(name: str, data: bytes) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise _reject(f"file is {len(data) / 1e6:.0f} MB; the limit is {MAX_FILE_BYTES / 1e6:.0f} MB")
    if not data.strip():
        raise _reject("file is empty")
    head = data[:8]
    for magic, kind in ((b"PK\x03\x04", "a ZIP archive"), (b"\x1f\x8b", "a gzip file"), (b"%PDF", "a PDF"),
                        (b"\x89PNG", "a PNG image")):
        if head.startswith(magic):
            raise _reject(f"file is {kind}, not a CSV or JSON text file")
    nul = data.find(b"\x00", 0, 1 << 20)
    if nul >= 0:
        raise _reject(f"file holds binary data (a NUL byte at offset {nul}); expected a CSV or JSON text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _reject(f"file is not UTF-8 text (undecodable byte at offset {exc.start})") from None
    return text


def _sniff_delimiter(text: str) -> str:
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else ","


def _read_csv(text: str) -> pd.DataFrame:
    delimiter = _sniff_delimiter(text)
    try:
        frame = pd.read_csv(io.StringIO(text), sep=delimiter, skip_blank_lines=True, low_memory=False)
    except pd.errors.ParserError as exc:
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if match:
            expected, line, saw = (int(g) for g in match.groups())
            raise _reject(
                f"has {saw} fields where the header has {expected} (delimiter {delimiter!r})", row=line - 1
            ) from None
        raise _reject(f"could not be parsed as CSV: {exc}") from None
    except pd.errors.EmptyDataError:
        raise _reject("file is empty") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if len(frame) == 0:
        raise _reject("file has a header but no data rows")
    return frame


# ----------------------------------------------------------------------------------------------------------------
# Format detection
_WC_EXPERIMENTS = {"model", "gpu_type", "lambda_qps", "scenario", "gpu_power_draw_watts",
                   "throughput_tokens_per_second", "energy_efficiency_tokens_per_joule"}
_WC_SUBSET = {"model", "gpu_type", "gpu_0_power_draw_watts_mean", "measurement_duration",
              "generation_tokens_total"}
_MLE_V1 = {"model", "throughput", "response_length", "latency", "energy"}
_ARGONNE = {"Hardware", "Framework", "Model", "Batch Size", "Latency", "avg_power"}
_MLE_V2_KEYS = {"Model", "GPU", "TP", "PP", "Energy/req (J)", "Token tput (tok/s)", "Avg Output Tokens"}
_CANONICAL_MARKERS = {"llm", "gpu", "power_w"}

FORMATS = {
    "canonical": "WattGPU canonical CSV (columns llm, gpu, scenario, power_w, ...)",
    "wattcounts_experiments": "Watt Counts per-experiment copy (gpu_power_draw_watts, ...)",
    "wattcounts_subset": "original Watt Counts subset (gpu_0_power_draw_watts_mean, per-request lists)",
    "mlenergy_v2": "ML.ENERGY leaderboard v2 run JSON",
    "mlenergy_v1": "ML.ENERGY leaderboard v1 legacy CSV (<GPU>_<task>_benchmark.csv)",
    "argonne": "Argonne LLM-Inference-Bench power_results.csv",
}


def detect_format_from_columns(columns) -> str | None:
    cols = {str(c).strip() for c in columns}
    if _WC_EXPERIMENTS <= cols:
        return "wattcounts_experiments"
    if _WC_SUBSET <= cols:
        return "wattcounts_subset"
    if _ARGONNE <= cols:
        return "argonne"
    if _MLE_V1 <= cols:
        return "mlenergy_v1"
    if len(_CANONICAL_MARKERS & cols) >= 2:
        return "canonical"
    return None


def _format_error(columns) -> ValidationError:
    cols = [str(c) for c in columns]
    shown = ", ".join(cols[:8]) + (" ..." if len(cols) > 8 else "")
    hint = ""
    if len(cols) == 1 and any(d in cols[0] for d in ":|"):
        hint = " The header looks like it uses an unsupported delimiter; use commas."
    return _reject(
        "unrecognised format: the header (" + shown + ") matches none of the known formats. "
        "A canonical CSV needs at least the columns " + ", ".join(c.name for c in CANONICAL_COLUMNS if c.required)
        + "; download the template from the Data page or see README." + hint,
    )


# ----------------------------------------------------------------------------------------------------------------
# Numeric helpers
def _numeric(frame: pd.DataFrame, column: str, issues: _Issues, rows: np.ndarray) -> np.ndarray:
    """Column as float; text that is not a number is reported (blank and NaN text become NaN silently)."""
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    series = frame[column]
    if pd.api.types.is_bool_dtype(series):
        issues.add_many(rows[:1], column, "expected a number, found true/false")
        return np.full(len(frame), np.nan)
    if pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=float, na_value=np.nan)
    values = pd.to_numeric(series, errors="coerce")
    bad = values.isna() & series.notna() & (series.astype(str).str.strip() != "")
    bad &= ~series.astype(str).str.strip().str.lower().isin({"nan", "na", "n/a", "null", "none"})
    if bad.any():
        idx = np.flatnonzero(bad.to_numpy())
        for i in idx[:MAX_ISSUES]:
            issues.add(rows[i], column, f"expected a number, found {str(series.iloc[i])[:40]!r}")
        issues.total += max(0, len(idx) - MAX_ISSUES)
    return values.to_numpy(dtype=float, na_value=np.nan)


def _text(frame: pd.DataFrame, column: str, default=None) -> np.ndarray:
    if column not in frame.columns:
        return np.full(len(frame), default, dtype=object)
    series = frame[column]
    out = series.astype(object).where(series.notna(), default)
    return np.array([v.strip() if isinstance(v, str) else (default if v is None else str(v)) for v in out],
                    dtype=object)


def _require(frame: pd.DataFrame, required, fmt: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise _reject(
            f"missing required column{'s' if len(missing) > 1 else ''} {', '.join(missing)} for the {fmt} format "
            f"(found: {', '.join(map(str, frame.columns[:12]))})",
            column=missing[0],
        )


def _empty_runs(n: int) -> dict[str, np.ndarray]:
    out = {}
    for c in RUN_COLUMNS:
        if c.name in ("run_id", "batch_id"):
            continue
        out[c.name] = np.full(n, np.nan) if c.is_numeric else np.full(n, None, dtype=object)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Parsers: each returns a ParsedFile (raises ValidationError for problems of the file as a whole)
def _parse_canonical(frame: pd.DataFrame, issues: _Issues) -> ParsedFile:
    required = ["llm", "gpu", "scenario", "power_w"]
    _require(frame, required, "canonical")
    known = {"llm", "gpu", "attribution"} | {c.name for c in CANONICAL_COLUMNS}
    unknown = [c for c in frame.columns if c not in known and not str(c).startswith("Unnamed")]
    if unknown:
        raise _reject(
            f"unknown column {unknown[0]!r} in a canonical CSV (known: {', '.join(sorted(known))})", column=unknown[0]
        )
    n = len(frame)
    rows = np.arange(1, n + 1)
    out = _empty_runs(n)
    for c in CANONICAL_COLUMNS:
        if c.name in ("llm_id", "gpu_id"):
            continue
        if c.is_numeric:
            out[c.name] = _numeric(frame, c.name, issues, rows)
        elif c.sql_type == "VARCHAR":
            out[c.name] = _text(frame, c.name)
    out["llm_name_raw"] = _text(frame, "llm")
    out["gpu_name_raw"] = _text(frame, "gpu")
    out["scenario"] = np.array([str(s).strip().lower() if s is not None else None for s in out["scenario"]],
                               dtype=object)
    result = pd.DataFrame(out)
    result["_row"] = rows
    # Where the uploader gave an ITL without a definition, it is "reported".
    no_def = result["itl_s"].notna() & result["itl_definition"].isna()
    result.loc[no_def, "itl_definition"] = "reported"
    result["source_id"] = result["source_id"].fillna("user_upload")
    result["license"] = result["license"].fillna(SOURCES["user_upload"]["license"])
    names_map = {c: c for c in result.columns}
    names_map.update({"llm_id": "llm", "gpu_id": "gpu", "llm_name_raw": "llm", "gpu_name_raw": "gpu"})
    attributions = {}
    if "attribution" in frame.columns:
        for sid, text in zip(result["source_id"], _text(frame, "attribution")):
            if text and sid not in attributions:
                attributions[sid] = text
    return ParsedFile("canonical", result, names_map, "user_upload", (), tuple(attributions.items()))


def _parse_wattcounts_experiments(frame: pd.DataFrame, issues: _Issues) -> ParsedFile:
    n = len(frame)
    rows = np.arange(1, n + 1)
    g = {c: _numeric(frame, c, issues, rows) for c in (
        "lambda_qps", "avg_prompt_tokens", "avg_generation_tokens", "num_requests", "gpu_power_draw_watts",
        "avg_e2e_latency_seconds", "energy_efficiency_tokens_per_joule", "throughput_tokens_per_second",
        "block", "iteration")}
    scen_raw = _text(frame, "scenario")
    offline = np.array([s == "offline" for s in scen_raw]) | (g["lambda_qps"] < 0)
    out = _empty_runs(n)
    out["llm_name_raw"] = _text(frame, "model")
    out["gpu_name_raw"] = _text(frame, "gpu_type")
    out["scenario"] = np.where(offline, "offline", "server").astype(object)
    out["request_rate_qps"] = np.where(offline, np.nan, g["lambda_qps"])
    out["input_tokens"] = g["avg_prompt_tokens"]
    out["output_tokens"] = g["avg_generation_tokens"]
    out["num_requests"] = g["num_requests"]
    out["framework"] = np.full(n, "vLLM", dtype=object)
    out["framework_version"] = np.full(n, "0.14.1", dtype=object)
    low_mem = np.array([str(x) in ("Tesla T4", "Tesla V100-SXM2-32GB") for x in out["gpu_name_raw"]])
    out["precision"] = np.where(low_mem, "fp16", "auto").astype(object)
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


_LIST_SPLIT = re.compile(r"[\s,]+")


def _parse_list(value) -> np.ndarray | None:
    """A list cell such as "[0.1, 0.2]" (or numpy-style "[0.1 0.2]"); None when it is not a list of numbers."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return np.array([], dtype=float)
    text = str(value).strip()
    if not (text.startswith("[") and text.endswith("]")):
        return None
    body = text[1:-1].strip()
    if not body:
        return np.array([], dtype=float)
    try:
        return np.array([float(x) for x in _LIST_SPLIT.split(body) if x], dtype=float)
    except ValueError:
        return None


def server_itl_from_lists(ttft: np.ndarray, e2e: np.ndarray, tokens: np.ndarray) -> float:
    """The paper's exact server ITL: mean over requests with >= 2 tokens of (e2e - ttft) / (tokens - 1)."""
    n = min(len(ttft), len(e2e), len(tokens))
    ttft, e2e, tokens = ttft[:n], e2e[:n], tokens[:n]
    ok = tokens >= 2
    if not ok.any():
        return float("nan")
    return float(np.mean((e2e[ok] - ttft[ok]) / (tokens[ok] - 1)))


def _parse_wattcounts_subset(frame: pd.DataFrame, issues: _Issues) -> ParsedFile:
    _require(frame, ["model", "gpu_type", "lambda_qps", "gpu_0_power_draw_watts_mean", "measurement_duration",
                     "generation_tokens_total", "gpu_energy"], "Watt Counts subset")
    n = len(frame)
    rows = np.arange(1, n + 1)
    lam = _numeric(frame, "lambda_qps", issues, rows)
    power = _numeric(frame, "gpu_0_power_draw_watts_mean", issues, rows)
    duration = _numeric(frame, "measurement_duration", issues, rows)
    tokens_total = _numeric(frame, "generation_tokens_total", issues, rows)
    energy = _numeric(frame, "gpu_energy", issues, rows)
    prompt_total = _numeric(frame, "prompt_tokens_total", issues, rows)
    iteration = _numeric(frame, "iteration", issues, rows)
    offline = ~np.isfinite(lam) | (lam < 0)

    list_cols = ("time_to_first_token_seconds_events", "e2e_request_latency_seconds_events",
                 "request_generation_tokens")
    have_lists = all(c in frame.columns for c in list_cols)
    itl = np.full(n, np.nan)
    ttft_mean = np.full(n, np.nan)
    e2e_mean = np.full(n, np.nan)
    out_tokens = np.full(n, np.nan)
    n_req = _numeric(frame, "num_requests", issues, rows)
    if have_lists:
        cells = {c: frame[c].to_numpy(dtype=object) for c in list_cols}
        for i in range(n):
            parsed = {}
            for c in list_cols:
                arr = _parse_list(cells[c][i])
                if arr is None:
                    issues.add(rows[i], c, f"expected a list of numbers like [0.1, 0.2], found "
                                           f"{str(cells[c][i])[:40]!r}")
                parsed[c] = arr
            if any(v is None for v in parsed.values()):
                continue
            ttft, e2e, toks = (parsed[c] for c in list_cols)
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
    # The paper drops runs that generated no tokens; so do we, with a warning.
    zero = np.isfinite(tokens_total) & (tokens_total == 0)
    warnings = []
    if zero.any():
        warnings.append(f"{int(zero.sum())} run(s) with generation_tokens_total = 0 skipped (rows "
                        + ", ".join(map(str, rows[zero][:10])) + ("..." if zero.sum() > 10 else "")
                        + "), as the WattGPU paper does")
    out = _empty_runs(n)
    out["llm_name_raw"] = _text(frame, "model")
    out["gpu_name_raw"] = _text(frame, "gpu_type")
    out["scenario"] = np.where(offline, "offline", "server").astype(object)
    out["request_rate_qps"] = np.where(offline, np.nan, lam)
    out["input_tokens"] = input_tokens
    out["output_tokens"] = out_tokens
    out["num_requests"] = n_req
    out["framework"] = np.full(n, "vLLM", dtype=object)
    out["framework_version"] = _text(frame, "vllm_version", "0.14.1")
    out["precision"] = np.full(n, "auto", dtype=object)
    out["num_gpus"] = np.ones(n)
    out["tensor_parallel"] = np.ones(n)
    out["iteration"] = iteration
    out["power_w"] = power
    out["itl_s"] = itl
    out["itl_definition"] = np.where(offline, "offline_duration_per_token", "server_decode_per_request").astype(
        object)
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


_V1_NAME = re.compile(r"^(?P<gpu>[A-Za-z0-9]+)_(?P<task>[A-Za-z\-]+)_benchmark\.csv$")


def _parse_mlenergy_v1(frame: pd.DataFrame, issues: _Issues, file_name: str) -> ParsedFile:
    match = _V1_NAME.match(Path(file_name).name)
    if not match:
        raise _reject(
            f"an ML.ENERGY v1 file names its GPU in the file name, like A100_chat_benchmark.csv; "
            f"{Path(file_name).name!r} does not"
        )
    n = len(frame)
    rows = np.arange(1, n + 1)
    tput = _numeric(frame, "throughput", issues, rows)
    length = _numeric(frame, "response_length", issues, rows)
    latency = _numeric(frame, "latency", issues, rows)
    energy = _numeric(frame, "energy", issues, rows)
    out = _empty_runs(n)
    out["llm_name_raw"] = _text(frame, "model")
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


def _parse_argonne(frame: pd.DataFrame, issues: _Issues) -> ParsedFile:
    frame = frame.dropna(how="all").reset_index(drop=True)
    n = len(frame)
    rows = np.arange(1, n + 1)
    num_hw = _numeric(frame, "Num of Hardware", issues, rows)
    io_len = _numeric(frame, "Input Output Length", issues, rows)
    bs = _numeric(frame, "Batch Size", issues, rows)
    latency = _numeric(frame, "Latency", issues, rows)
    power_mw = _numeric(frame, "avg_power", issues, rows)
    out = _empty_runs(n)
    out["llm_name_raw"] = _text(frame, "Model")
    out["gpu_name_raw"] = _text(frame, "Hardware")
    out["scenario"] = np.full(n, "offline", dtype=object)
    out["batch_size"] = bs
    out["input_tokens"] = io_len
    out["output_tokens"] = io_len
    out["num_requests"] = bs
    out["framework"] = _text(frame, "Framework")
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


def mlenergy_v2_records_to_frame(records: list[dict], campaigns: list[str] | None = None) -> ParsedFile:
    """ML.ENERGY v2 run JSON objects (one per run) to runs."""
    issues = _Issues()
    for i, rec in enumerate(records, start=1):
        if not isinstance(rec, dict):
            issues.add(i, "", "expected a JSON object per run")
            continue
        missing = sorted(_MLE_V2_KEYS - set(rec))
        if missing:
            issues.add(i, missing[0], f"missing key{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    issues.raise_if_any()
    frame = pd.DataFrame(records)
    n = len(frame)
    rows = np.arange(1, n + 1)
    get = {k: _numeric(frame, k, issues, rows) for k in (
        "TP", "PP", "Energy/req (J)", "Avg TPOT (s)", "Token tput (tok/s)", "Avg Output Tokens", "Avg BS (reqs)",
        "Max BS (reqs)")}
    issues.raise_if_any()
    n_gpu = get["TP"] * get["PP"]
    out = _empty_runs(n)
    out["llm_name_raw"] = _text(frame, "Model")
    out["gpu_name_raw"] = _text(frame, "GPU")
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


def _parse_json(text: str) -> ParsedFile:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _reject(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    records = obj if isinstance(obj, list) else [obj]
    if not records:
        raise _reject("JSON file holds an empty list")
    if isinstance(records[0], dict) and "Model" in records[0]:
        return mlenergy_v2_records_to_frame(records)
    raise _reject("unrecognised JSON: expected ML.ENERGY v2 run objects with keys "
                  + ", ".join(sorted(_MLE_V2_KEYS)))


def parse_bytes(file_name: str, data: bytes, fmt: str | None = None) -> ParsedFile:
    """Read one file's bytes in any known format (detected unless ``fmt`` is given)."""
    text = _check_bytes(file_name, data)
    stripped = text.lstrip("\ufeff \t\r\n")
    if fmt == "mlenergy_v2" or (fmt is None and stripped[:1] in "[{"):
        return _parse_json(text)
    frame = _read_csv(text)
    detected = fmt or detect_format_from_columns(frame.columns)
    if detected is None:
        raise _format_error(frame.columns)
    issues = _Issues()
    if detected == "canonical":
        parsed = _parse_canonical(frame, issues)
    elif detected == "wattcounts_experiments":
        parsed = _parse_wattcounts_experiments(frame, issues)
    elif detected == "wattcounts_subset":
        parsed = _parse_wattcounts_subset(frame, issues)
    elif detected == "mlenergy_v1":
        parsed = _parse_mlenergy_v1(frame, issues, file_name)
    elif detected == "argonne":
        parsed = _parse_argonne(frame, issues)
    else:
        raise _reject(f"unknown format {detected!r}; known: {', '.join(FORMATS)}")
    issues.raise_if_any()
    return parsed


# ----------------------------------------------------------------------------------------------------------------
# Validation and name resolution
_POSITIVE = ("itl_s", "throughput_tok_s", "energy_per_token_j", "duration_s", "batch_size", "mean_batch_size",
             "max_concurrency", "request_rate_qps", "output_tokens", "num_gpus", "tensor_parallel", "num_requests",
             "output_tokens_total", "gpu_energy_j")
_NON_NEGATIVE = ("ttft_s", "e2e_latency_s", "input_tokens", "iteration")
_INTEGER = ("num_gpus", "tensor_parallel", "iteration")


def prepare(
    parsed: ParsedFile,
    gpus: pd.DataFrame,
    llms: pd.DataFrame,
    source_gpu_map: pd.DataFrame | None = None,
    file_name: str = "",
    file_sha256: str = "",
) -> PreparedImport:
    """Resolve names against the catalog and check physical ranges. Raises ValidationError listing every problem."""
    frame = parsed.frame.copy()
    issues = _Issues()
    col = parsed.column_names
    rows = frame["_row"].to_numpy()

    def where(mask, column, message):
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            issues.add_many(rows[mask][:MAX_ISSUES], col.get(column, column), message)
            issues.total += max(0, int(mask.sum()) - MAX_ISSUES)

    # Names
    for kind, raw, target, resolver in (
        ("LLM", "llm_name_raw", "llm_id", LlmResolver(llms)),
        ("GPU", "gpu_name_raw", "gpu_id", GpuResolver(gpus)),
    ):
        values = frame[raw].to_numpy(dtype=object)
        blank = np.array([v is None or str(v).strip() == "" for v in values])
        where(blank, raw, f"{kind} name is missing")
        ids, unknown = resolver.resolve_many(np.where(blank, None, values))
        if kind == "GPU" and source_gpu_map is not None and len(source_gpu_map):
            sub = source_gpu_map[source_gpu_map["source_id"] == parsed.source_id]
            mapped = dict(zip(sub["raw_name"], sub["gpu_id"]))
            for i, v in enumerate(values):
                if v in mapped:
                    ids[i] = mapped[v]
                    unknown.pop(str(v), None)
        for name, hint in unknown.items():
            mask = np.array([str(v) == name for v in values])
            msg = f"unknown {kind} {name!r}"
            if hint:
                msg += " (did you mean " + " or ".join(repr(h) for h in hint) + "?)"
            msg += "; add it as a custom " + kind + " first" if kind == "GPU" else (
                "; add it from its config.json first" if kind == "LLM" else "")
            where(mask, raw, msg)
        frame[target] = ids

    # Scenario
    scen = frame["scenario"].to_numpy(dtype=object)
    bad = np.array([s not in SCENARIOS for s in scen])
    if bad.any():
        first = next(s for s, b in zip(scen, bad) if b)
        where(bad, "scenario", f"scenario must be one of {', '.join(SCENARIOS)}, found {first!r}")

    # Power: required, finite, positive, at most twice the GPU's TDP
    power = frame["power_w"].to_numpy(dtype=float)
    where(np.isnan(power), "power_w", "power is missing or NaN")
    where(np.isinf(power), "power_w", "power is infinite")
    where(np.isfinite(power) & (power <= 0), "power_w", "power must be positive")
    tdp = frame["gpu_id"].map(gpus.set_index("gpu_id")["tdp_w"]).to_numpy(dtype=float)
    over = np.isfinite(power) & np.isfinite(tdp) & (power > 2 * tdp)
    if over.any():
        i = int(np.flatnonzero(over)[0])
        where(over, "power_w", f"power {power[i]:.0f} W is above twice the GPU's TDP ({tdp[i]:.0f} W)")

    for name in _POSITIVE:
        values = frame[name].to_numpy(dtype=float)
        where(np.isinf(values), name, f"{name} is infinite")
        where(np.isfinite(values) & (values <= 0), name, f"{name} must be positive")
    for name in _NON_NEGATIVE:
        values = frame[name].to_numpy(dtype=float)
        where(np.isinf(values), name, f"{name} is infinite")
        where(np.isfinite(values) & (values < 0), name, f"{name} must not be negative")
    for name in _INTEGER:
        values = frame[name].to_numpy(dtype=float)
        where(np.isfinite(values) & (values != np.round(values)), name, f"{name} must be a whole number")

    defs = frame["itl_definition"].to_numpy(dtype=object)
    bad = np.array([d is not None and d not in ITL_DEFINITIONS for d in defs])
    where(bad, "itl_definition", "itl_definition must be one of " + ", ".join(ITL_DEFINITIONS))
    itl = frame["itl_s"].to_numpy(dtype=float)
    where(np.isfinite(itl) & (itl > 60), "itl_s", "ITL above 60 s per token is not physical")
    issues.raise_if_any()

    frame = frame.drop(columns=["_row"])
    for c in RUN_COLUMNS:
        if c.name in ("run_id", "batch_id"):
            continue
        if c.sql_type in ("DOUBLE",):
            frame[c.name] = frame[c.name].astype(float)
        elif c.sql_type == "INTEGER":
            frame[c.name] = frame[c.name].astype("Float64").round().astype("Int64")
    return PreparedImport(parsed.format, frame[_DATA_COLUMNS], parsed.source_id, file_name, file_sha256,
                          parsed.warnings, parsed.attributions)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_template(n_examples: int = 2) -> str:
    """The canonical CSV header with example rows (what the Data page offers for download)."""
    header = ["llm", "gpu"] + [c.name for c in CANONICAL_COLUMNS if c.name not in ("llm_id", "gpu_id")]
    examples = [
        {"llm": "meta-llama/Llama-3.1-8B-Instruct", "gpu": "NVIDIA L40S", "scenario": "offline", "batch_size": 256,
         "input_tokens": 14, "output_tokens": 220, "num_requests": 1000, "framework": "vLLM",
         "framework_version": "0.14.1", "precision": "bf16", "num_gpus": 1, "tensor_parallel": 1,
         "iteration": 1, "power_w": 331.5, "itl_s": 0.00041, "itl_definition": "offline_duration_per_token",
         "energy_per_token_j": 0.136, "throughput_tok_s": 2440.0, "duration_s": 90.2,
         "source_id": "my_lab", "license": "CC-BY-4.0", "notes": "example row: replace with your measurements"},
        {"llm": "Qwen/Qwen2.5-7B-Instruct", "gpu": "NVIDIA H100 NVL", "scenario": "server", "request_rate_qps": 0.33,
         "input_tokens": 14, "output_tokens": 210, "num_requests": 99, "framework": "vLLM",
         "framework_version": "0.14.1", "precision": "bf16", "num_gpus": 1, "tensor_parallel": 1, "iteration": 1,
         "power_w": 118.0, "itl_s": 0.0071, "itl_definition": "server_decode_per_request", "ttft_s": 0.03,
         "source_id": "my_lab", "license": "CC-BY-4.0", "notes": "example row: replace with your measurements"},
    ][:n_examples]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for ex in examples:
        writer.writerow(ex)
    return buf.getvalue()
