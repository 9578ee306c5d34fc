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
from .formats.detect import detect_power_log, detect_result
from .import_tokenpowerbench import SOURCE as TPB_SOURCE
from .import_tokenpowerbench import is_tokenpowerbench, parse_tokenpowerbench
from .parsed import ParsedFile
from .parsed import empty_runs as _empty_runs
from .schema import CANONICAL_COLUMNS, ITL_DEFINITIONS, RUN_COLUMNS, SCENARIOS, names

MAX_FILE_BYTES = 200 * 1024 * 1024
MAX_ROWS = 1_000_000
SOURCE_ID = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,39}$")  # a new source's id: a short slug
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
    "tokenpowerbench": TPB_SOURCE,
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


# ----------------------------------------------------------------------------------------------------------------
# Results
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
_DELIMITERS = (",", ";", "\t", "|")
_BOM = b"\xef\xbb\xbf"


def _check_bytes(name: str, data: bytes) -> str:
    """The file's text, or a rejection saying why it is not a UTF-8 CSV/JSON text file."""
    if len(data) > MAX_FILE_BYTES:
        raise _reject(f"file is {len(data) / 1e6:.0f} MB; the limit is {MAX_FILE_BYTES / 1e6:.0f} MB")
    if not data.strip():
        raise _reject("file is empty")
    head = data[:8]
    for magic, kind in ((b"PK\x03\x04", "a ZIP archive (an .xlsx workbook is one); export it as CSV"),
                        (b"\x1f\x8b", "a gzip file; decompress it first"), (b"%PDF", "a PDF"),
                        (b"\x89PNG", "a PNG image"), (b"\xd0\xcf\x11\xe0", "an old Excel/Office file; export CSV")):
        if head.startswith(magic):
            raise _reject(f"file is {kind}, not a CSV or JSON text file")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(data) >= 4 and (data[1:4:2] == b"\x00\x00"
                                                                          or data[0:4:2] == b"\x00\x00")):
        raise _reject("file is UTF-16 text; re-save it as UTF-8 (in Excel: Save As, 'CSV UTF-8')")
    nul = data.find(b"\x00", 0, 1 << 20)
    if nul >= 0:
        raise _reject(f"file holds binary data (a NUL byte at offset {nul}); expected a CSV or JSON text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _reject(f"file is not UTF-8 text (undecodable byte at offset {exc.start}); save it as UTF-8") from None
    return text


def _header_line(text: str) -> str:
    """The first non-blank line (the header)."""
    start = 0
    while True:
        end = text.find("\n", start)
        line = text[start:] if end < 0 else text[start:end]
        if line.strip() or end < 0:
            return line.lstrip("\ufeff")
        start = end + 1


def _sniff_delimiter(text: str) -> str:
    """The delimiter of the header line: the most frequent of comma, semicolon, tab and pipe (comma if none)."""
    first = _header_line(text)
    counts = {d: first.count(d) for d in _DELIMITERS}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else ","


def _line_field_counts(data: bytes, delimiter: str) -> tuple[np.ndarray, np.ndarray, int | None]:
    """(1-based line number, field count) of every non-blank line, honouring double-quoted fields, and the line on
    which a quote opens that is never closed (None when every quote closes).

    Vectorised: a delimiter or newline counts only outside quotes, and a byte is outside quotes when the number of
    quote characters before it is even (RFC 4180 escapes a quote as ``""``, which keeps the parity). Lines are
    records: a newline inside quotes does not start one.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    offset = len(_BOM) if data.startswith(_BOM) else 0
    buf = buf[offset:]
    is_nl = buf == ord("\n")
    is_delim = buf == ord(delimiter)
    quotes = buf == ord('"')
    unclosed_at = None
    if quotes.any():
        parity = np.bitwise_xor.accumulate(quotes.view(np.uint8))
        outside = parity == 0
        is_nl &= outside
        is_delim &= outside
        if parity[-1]:
            unclosed_at = int(np.flatnonzero(quotes & (parity == 1))[-1])
    newlines = np.flatnonzero(is_nl)
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(buf)]))
    if starts[-1] >= len(buf):  # the file ends with a newline: no last line
        starts, ends = starts[:-1], ends[:-1]
    if not len(starts):
        return np.array([], dtype=np.int64), np.array([], dtype=np.int64), None
    length = ends - starts
    has_cr = np.zeros(len(ends), dtype=bool)
    nonempty = length > 0
    has_cr[nonempty] = buf[ends[nonempty] - 1] == ord("\r")
    blank = (length - has_cr) == 0
    # Delimiters per line: where the line bounds fall among the delimiter positions.
    delims = np.flatnonzero(is_delim)
    fields = np.searchsorted(delims, ends) - np.searchsorted(delims, starts) + 1
    line_no = np.arange(1, len(starts) + 1)
    unclosed_line = None if unclosed_at is None else int(np.searchsorted(newlines, unclosed_at)) + 1
    return line_no[~blank], fields[~blank], unclosed_line


def _check_field_counts(data: bytes, delimiter: str) -> None:
    """Reject a file whose data lines do not have exactly as many fields as its header, naming each line."""
    line_no, fields, unclosed_line = _line_field_counts(data, delimiter)
    if unclosed_line is not None:
        row = int(np.searchsorted(line_no, unclosed_line))  # data rows are the non-blank lines after the header
        raise _reject(f"line {unclosed_line} has a quote (\") that is never closed; close it or remove it", row=row)
    if len(fields) < 2:
        return
    expected = fields[0]
    bad = np.flatnonzero(fields[1:] != expected) + 1
    if not len(bad):
        return
    issues = _Issues()
    shown = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}[delimiter]
    for i in bad[:MAX_ISSUES]:
        issues.add(int(i), "", f"line {line_no[i]} has {fields[i]} field{'s' if fields[i] != 1 else ''} where the "
                               f"header has {expected} (delimiter {shown}); check for a missing or extra "
                               f"delimiter or an unclosed quote")
    issues.total += max(0, len(bad) - MAX_ISSUES)
    issues.raise_if_any()


def _read_csv(data: bytes, delimiter: str, text_columns: set[str] | None = None) -> pd.DataFrame:
    """All rows of a CSV whose field counts were checked. ``text_columns`` stay text: any of them that the parser
    took for numbers (a version "0.10" would become 0.1) is read again as text."""
    options = {"sep": delimiter, "skip_blank_lines": True, "encoding": "utf-8-sig"}
    try:
        frame = pd.read_csv(io.BytesIO(data), low_memory=False, **options)
        raw_names = {str(c).strip(): c for c in frame.columns}
        again = [raw_names[c] for c in text_columns or () if c in raw_names
                 and not pd.api.types.is_string_dtype(frame[raw_names[c]]) and frame[raw_names[c]].notna().any()]
        if again:
            text = pd.read_csv(io.BytesIO(data), usecols=again, dtype="str", **options)
            for c in again:
                frame[c] = text[c]
    except pd.errors.ParserError as exc:
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if match:
            expected, line, saw = (int(g) for g in match.groups())
            raise _reject(f"line {line} has {saw} fields where the header has {expected} "
                          f"(delimiter {delimiter!r})", row=line - 1) from None
        raise _reject(f"could not be parsed as CSV: {str(exc).strip().splitlines()[0]}") from None
    except pd.errors.EmptyDataError:
        raise _reject("file is empty") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if len(frame) == 0:
        raise _reject("file has a header but no data rows")
    if len(frame) > MAX_ROWS:
        raise _reject(f"file has {len(frame):,} rows; the limit is {MAX_ROWS:,} per upload (split it into several "
                      "files)")
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
    "tokenpowerbench": "TokenPowerBench result JSON ({model: [runs with gpu0_power_watts, ...]})",
    "vllm_bench": "vLLM benchmark result JSON (vllm bench serve --save-result) with its power log (nvidia-smi CSV, "
                  "DCGM scrapes or zeus log), uploaded together",
    "guidellm": "GuideLLM report JSON (one run per rate) with its power log, uploaded together",
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
    cols |= {c[: -len("_id")] for c in cols & {"llm_id", "gpu_id"}}
    if len(_CANONICAL_MARKERS & cols) >= 2:
        return "canonical"
    return None


def _format_error(columns) -> ValidationError:
    cols = [str(c) for c in columns]
    shown = ", ".join(c if len(c) <= 40 else c[:37] + "..." for c in cols[:8]) + (" ..." if len(cols) > 8 else "")
    hint = ""
    if len(cols) == 1 and any(d in cols[0] for d in ": "):
        hint = " The header looks like it uses an unsupported delimiter; use comma, semicolon, tab or pipe."
    return _reject(
        "unrecognised format: the header (" + shown + ") matches none of the known formats. "
        "A canonical CSV needs at least the columns llm, gpu, scenario, power_w; "
        "get the template with `python -m wattgpu_core template` or from the Data page." + hint,
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
            text = str(series.iloc[i]).strip()
            hint = "; write decimals with a point" if re.fullmatch(r"[+-]?\d+,\d+", text) else ""
            issues.add(rows[i], column, f"expected a number, found {text[:40]!r}{hint}")
        issues.total += max(0, len(idx) - MAX_ISSUES)
    return values.to_numpy(dtype=float, na_value=np.nan)


def _text(frame: pd.DataFrame, column: str, default: str | None = None) -> pd.Series:
    """Column as stripped text (pandas ``str`` dtype, Arrow-backed); missing or blank cells become ``default``."""
    if column not in frame.columns:
        return pd.Series([default] * len(frame), dtype="str")
    series = frame[column]
    if series.dtype != "str":
        series = series.astype("str")
    series = series.str.strip()
    series = series.mask(series == "").reset_index(drop=True)
    return series.fillna(default) if default is not None else series


def _require(frame: pd.DataFrame, required, fmt: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise _reject(
            f"missing required column{'s' if len(missing) > 1 else ''} {', '.join(missing)} for the {fmt} format "
            f"(found: {', '.join(map(str, frame.columns[:12]))})",
            column=missing[0],
        )


# ----------------------------------------------------------------------------------------------------------------
# Parsers: each returns a ParsedFile (raises ValidationError for problems of the file as a whole)
# Source ids of the seed data: an upload may not claim them (its runs would pass for the published data).
RESERVED_SOURCE_IDS = frozenset({"wattcounts", "mlenergy_v2", "mlenergy_v1", "argonne", "tokenpowerbench", "catalog"})


def _parse_canonical(frame: pd.DataFrame, issues: _Issues) -> ParsedFile:
    renames = {old: new for old, new in (("llm_id", "llm"), ("gpu_id", "gpu"))
               if old in frame.columns and new not in frame.columns}
    frame = frame.rename(columns=renames)
    required = ["llm", "gpu", "scenario", "power_w"]
    _require(frame, required, "canonical")
    known = {"llm", "gpu", "attribution"} | {c.name for c in CANONICAL_COLUMNS} | set(REQUEST_LIST_COLUMNS)
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
    out["scenario"] = out["scenario"].str.lower()
    result = pd.DataFrame(out)
    result["_row"] = rows
    # Where the uploader gave an ITL without a definition, it is "reported".
    no_def = result["itl_s"].notna() & result["itl_definition"].isna()
    result.loc[no_def, "itl_definition"] = "reported"
    result["source_id"] = result["source_id"].fillna("user_upload")
    result["_license_given"] = result["license"].notna()  # a new source must state its license (ingest checks)
    result["license"] = result["license"].fillna(SOURCES["user_upload"]["license"])
    bad_id = ~result["source_id"].str.fullmatch(SOURCE_ID.pattern).fillna(False).to_numpy(dtype=bool)
    for i in np.flatnonzero(bad_id)[:MAX_ISSUES]:
        issues.add(rows[i], "source_id", f"source_id {result['source_id'].iloc[i][:40]!r} is not a short slug: use "
                                         "lower-case letters, digits, '_', '-' or '.', at most 40 characters "
                                         "(e.g. my_lab)")
    issues.total += max(0, int(bad_id.sum()) - MAX_ISSUES)
    if any(c in frame.columns for c in REQUEST_LIST_COLUMNS):
        _apply_request_lists(frame, result, issues, rows)
    reserved = result["source_id"].isin(RESERVED_SOURCE_IDS).to_numpy()
    for i in np.flatnonzero(reserved)[:MAX_ISSUES]:
        issues.add(rows[i], "source_id", f"source_id {result['source_id'].iloc[i]!r} is reserved for the published "
                                         "seed data; name your own source (e.g. my_lab)")
    issues.total += max(0, int(reserved.sum()) - MAX_ISSUES)
    names_map = {c: c for c in result.columns}
    names_map.update({"llm_id": "llm", "gpu_id": "gpu", "llm_name_raw": "llm", "gpu_name_raw": "gpu"})
    for old, new in renames.items():  # messages name the user's own column
        for k, v in list(names_map.items()):
            if v == new:
                names_map[k] = old
    attributions = ()
    if "attribution" in frame.columns:
        pairs = pd.DataFrame({"source_id": result["source_id"], "attribution": _text(frame, "attribution")})
        pairs = pairs.dropna().drop_duplicates("source_id")
        attributions = tuple(zip(pairs["source_id"], pairs["attribution"], strict=True))
    return ParsedFile("canonical", result, names_map, "user_upload", (), attributions)


def _wattcounts_precision(gpu_names: np.ndarray) -> np.ndarray:
    """Watt Counts ran vLLM with dtype=auto, which is fp16 on the V100 and T4 (no bf16 support)."""
    fp16 = pd.Series(gpu_names, dtype=object).isin(["Tesla T4", "Tesla V100-SXM2-32GB"]).to_numpy()
    return np.where(fp16, "fp16", "auto").astype(object)


def _parse_wattcounts_experiments(frame: pd.DataFrame, issues: _Issues) -> ParsedFile:
    n = len(frame)
    rows = np.arange(1, n + 1)
    g = {c: _numeric(frame, c, issues, rows) for c in (
        "lambda_qps", "avg_prompt_tokens", "avg_generation_tokens", "num_requests", "gpu_power_draw_watts",
        "avg_e2e_latency_seconds", "energy_efficiency_tokens_per_joule", "throughput_tokens_per_second",
        "block", "iteration")}
    scen_raw = _text(frame, "scenario")
    offline = (scen_raw == "offline").fillna(False).to_numpy(dtype=bool) | (g["lambda_qps"] < 0)
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


_LIST_SPLIT = re.compile(r"[\s,]+")


def _parse_list(value) -> np.ndarray | None:
    """A list cell such as "[0.1, 0.2]" (or numpy-style "[0.1 0.2]"); None when it is not a list of numbers."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return np.array([], dtype=float)
    text = str(value).strip()
    if not (text.startswith("[") and text.endswith("]")):
        return None
    try:  # the common case, "[0.1, 0.2]", is JSON: parsed in C
        items = json.loads(text)
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in items):
            return np.array(items, dtype=float)
    except (ValueError, TypeError):
        pass
    body = text[1:-1].strip()
    if not body:
        return np.array([], dtype=float)
    try:
        return np.array([float(x) for x in _LIST_SPLIT.split(body) if x], dtype=float)
    except ValueError:
        return None


def server_itl_from_lists(ttft: np.ndarray, e2e: np.ndarray, tokens: np.ndarray) -> float:
    """The paper's exact server ITL: mean over requests with >= 2 tokens of (e2e - ttft) / (tokens - 1).

    The three arrays hold one value per request, in the same order; NaN when no request has 2 or more tokens.
    """
    ttft, e2e, tokens = (np.asarray(a, dtype=float) for a in (ttft, e2e, tokens))
    if not (len(ttft) == len(e2e) == len(tokens)):
        raise ValueError(f"per-request lists differ in length: {len(ttft)}, {len(e2e)}, {len(tokens)}")
    ok = tokens >= 2
    if not ok.any():
        return float("nan")
    return float(np.mean((e2e[ok] - ttft[ok]) / (tokens[ok] - 1)))


# Optional per-request columns of the canonical CSV (JSON lists, one value per request, in the same order), as
# ``python -m wattgpu_core measure`` writes them: a server row's ITL is then computed exactly from them.
REQUEST_LIST_COLUMNS = ("ttft_s_list", "e2e_latency_s_list", "output_tokens_list")


def _apply_request_lists(frame: pd.DataFrame, result: pd.DataFrame, issues: _Issues, rows: np.ndarray) -> None:
    """Fill ITL (server rows: the exact per-request definition), TTFT, end-to-end latency, output tokens and request
    count from the per-request lists; an ``itl_s`` the file states must agree with the lists within 1%."""
    _require(frame, list(REQUEST_LIST_COLUMNS), "canonical (per-request lists)")
    for i in range(len(frame)):
        lists = {c: _parse_list(frame[c].iloc[i]) for c in REQUEST_LIST_COLUMNS}
        bad = [c for c, v in lists.items() if v is None]
        for c in bad:
            issues.add(rows[i], c, f"expected a list of numbers like [0.1, 0.2], found {str(frame[c].iloc[i])[:40]!r}")
        if bad:
            continue
        ttft, e2e, toks = (lists[c] for c in REQUEST_LIST_COLUMNS)
        if not (len(ttft) == len(e2e) == len(toks)) or not len(toks):
            issues.add(rows[i], "output_tokens_list", f"the per-request lists must be non-empty and of one length "
                                                      f"(found {len(ttft)}, {len(e2e)}, {len(toks)})")
            continue
        for name, values in (("num_requests", float(len(toks))), ("ttft_s", ttft.mean()),
                             ("e2e_latency_s", e2e.mean()), ("output_tokens", toks.mean())):
            if pd.isna(result.at[i, name]):
                result.at[i, name] = values
        if result.at[i, "scenario"] != "server":
            continue
        itl = server_itl_from_lists(ttft, e2e, toks)
        stated = result.at[i, "itl_s"]
        if pd.notna(stated) and np.isfinite(itl) and abs(stated - itl) > 0.01 * itl:
            issues.add(rows[i], "itl_s", f"itl_s {stated:g} disagrees with the per-request lists ({itl:g} s)")
        result.at[i, "itl_s"] = itl
        result.at[i, "itl_definition"] = "server_decode_per_request"


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


def _parse_json(text: str, file_name: str = "") -> ParsedFile:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _reject(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if is_tokenpowerbench(obj):
        return parse_tokenpowerbench(file_name, obj)
    records = obj if isinstance(obj, list) else [obj]
    if not records:
        raise _reject("JSON file holds an empty list")
    if isinstance(records[0], dict) and "Model" in records[0]:
        return mlenergy_v2_records_to_frame(records)
    if detect_result(records):
        raise _reject(f"this is a {FORMATS[detect_result(records)].split(' (')[0]}: it holds no power. Upload it "
                      "together with the power log of the same run (CLI: ingest RESULT.json --power-log POWER.csv)")
    raise _reject("unrecognised JSON: expected ML.ENERGY v2 run objects with keys "
                  + ", ".join(sorted(_MLE_V2_KEYS)))


# Columns read as text (never as numbers) in each CSV format, so that "0.10" stays "0.10" and "1" stays "1".
_TEXT_COLUMNS: dict[str, set[str]] = {
    "canonical": {"llm", "gpu", "llm_id", "gpu_id", "attribution", *REQUEST_LIST_COLUMNS}
    | {c.name for c in CANONICAL_COLUMNS if c.sql_type == "VARCHAR"},
    "wattcounts_experiments": {"model", "gpu_type", "scenario"},
    "wattcounts_subset": {"model", "gpu_type", "vllm_version", "time_to_first_token_seconds_events",
                          "e2e_request_latency_seconds_events", "request_generation_tokens"},
    "mlenergy_v1": {"model"},
    "argonne": {"Model", "Hardware", "Framework"},
}


def parse_bytes(file_name: str, data: bytes, fmt: str | None = None) -> ParsedFile:
    """Read one file's bytes in any known format (detected unless ``fmt`` is given)."""
    if fmt is not None and fmt not in FORMATS:
        raise _reject(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    text = _check_bytes(file_name, data)
    stripped = text.lstrip("\ufeff \t\r\n")
    if fmt in ("mlenergy_v2", "tokenpowerbench") or (fmt is None and stripped[:1] in "[{"):
        return _parse_json(text, file_name)
    delimiter = _sniff_delimiter(text)
    try:
        header = next(csv.reader([_header_line(text)], delimiter=delimiter))
    except csv.Error as exc:  # e.g. a header field over the csv module's 131,072-character limit
        raise _reject(f"the header line could not be read as CSV ({exc}); a header names columns in a few "
                      "characters each") from None
    header = [h.strip() for h in header]
    seen = set()
    for h in header:
        if h in seen and h:
            raise _reject(f"column {h!r} appears more than once in the header", column=h)
        seen.add(h)
    detected = fmt or detect_format_from_columns(header)
    if detected is None:
        if detect_power_log(text):
            raise _reject("this is a GPU power log: upload it together with the benchmark result of the same run "
                          "(CLI: ingest RESULT.json --power-log POWER.csv)")
        raise _format_error(header)
    _check_field_counts(data, delimiter)
    frame = _read_csv(data, delimiter, _TEXT_COLUMNS.get(detected))
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
        raise _reject(f"the {detected} format is a JSON format, but the file is CSV")
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
    if not len(parsed.frame):
        raise _reject("no runs to import" + (": " + "; ".join(parsed.warnings) if parsed.warnings else ""))
    frame = parsed.frame.copy()
    issues = _Issues()
    col = parsed.column_names
    rows = frame["_row"].to_numpy()

    def where(mask, column, message):
        """Report every row in ``mask``; ``message`` is a string or a function of the row's position."""
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        idx = np.flatnonzero(mask)
        name = col.get(column, column)
        for i in idx[:MAX_ISSUES]:
            issues.add(rows[i], name, message(i) if callable(message) else message)
        issues.total += max(0, len(idx) - MAX_ISSUES)

    # Names: each distinct name is resolved once; rows refer to it by code.
    gpu_codes = gpu_ids = None
    for kind, raw, target, resolver in (
        ("LLM", "llm_name_raw", "llm_id", LlmResolver(llms)),
        ("GPU", "gpu_name_raw", "gpu_id", GpuResolver(gpus)),
    ):
        codes, uniques = pd.factorize(frame[raw], use_na_sentinel=True)
        names_ = [str(u).strip() for u in uniques]
        mapped = {}
        if kind == "GPU" and source_gpu_map is not None and len(source_gpu_map):
            sub = source_gpu_map[source_gpu_map["source_id"] == parsed.source_id]
            mapped = dict(zip(sub["raw_name"], sub["gpu_id"], strict=True))
        ids = [None if not n else mapped.get(n) or resolver.try_resolve(n) for n in names_]
        blank_u = np.array([not n for n in names_] + [True])  # the last entry stands for a missing cell
        codes = np.where(codes < 0, len(names_), codes)
        where(blank_u[codes], raw, f"{kind} name is missing")
        unknown = {i: n for i, (n, hit) in enumerate(zip(names_, ids, strict=True)) if n and hit is None}
        if unknown:
            hints = {}
            for i, name in unknown.items():
                hint = resolver.suggestions(name)
                msg = f"unknown {kind} {name!r}"
                if hint:
                    msg += " (did you mean " + " or ".join(repr(h) for h in hint) + "?)"
                hints[i] = msg + ("; add it as a custom GPU first" if kind == "GPU"
                                  else "; add it from its config.json first")
            where(np.isin(codes, list(unknown)), raw, lambda i, codes=codes, hints=hints: hints[codes[i]])
        ids_u = pd.array([*ids, None], dtype="str")
        frame[target] = pd.Series(ids_u.take(codes), index=frame.index)
        if kind == "GPU":
            gpu_codes, gpu_ids = codes, ids

    # Scenario
    scen = frame["scenario"]
    where(~scen.isin(SCENARIOS).to_numpy(dtype=bool), "scenario",
          lambda i: f"scenario must be one of {', '.join(SCENARIOS)}, found "
                    f"{'nothing' if pd.isna(scen.iloc[i]) else repr(str(scen.iloc[i])[:40])}")

    # Power: required, finite, positive, at most twice the GPU's TDP (or, where the TDP is unknown, twice the
    # largest TDP in the catalog)
    power = frame["power_w"].to_numpy(dtype=float)
    where(np.isnan(power), "power_w", "power is missing or NaN")
    where(np.isinf(power), "power_w", "power is infinite")
    where(np.isfinite(power) & (power <= 0), "power_w", lambda i: f"power must be positive, found {power[i]:g}")
    tdp_by_id = dict(zip(gpus["gpu_id"], gpus["tdp_w"].astype(float), strict=True))
    tdp = np.array([tdp_by_id.get(g, np.nan) if g else np.nan for g in [*gpu_ids, None]], dtype=float)[gpu_codes]
    over = np.isfinite(power) & np.isfinite(tdp) & (power > 2 * tdp)
    where(over, "power_w", lambda i: f"power {power[i]:.0f} W is above twice the GPU's TDP ({tdp[i]:.0f} W); "
                                     "give the mean power of one GPU in watts")
    ceiling = 2 * float(np.nanmax(gpus["tdp_w"].to_numpy(dtype=float))) if gpus["tdp_w"].notna().any() else np.inf
    over = np.isfinite(power) & ~np.isfinite(tdp) & frame["gpu_id"].notna().to_numpy(dtype=bool) & (power > ceiling)
    where(over, "power_w", lambda i: f"power {power[i]:.0f} W is above twice the largest TDP of any GPU "
                                     f"({ceiling / 2:.0f} W); give the mean power of one GPU in watts")

    for name in _POSITIVE:
        values = frame[name].to_numpy(dtype=float)
        where(np.isinf(values), name, f"{name} is infinite")
        where(np.isfinite(values) & (values <= 0), name,
              lambda i, name=name, values=values: f"{name} must be positive, found {values[i]:g}")
    for name in _NON_NEGATIVE:
        values = frame[name].to_numpy(dtype=float)
        where(np.isinf(values), name, f"{name} is infinite")
        where(np.isfinite(values) & (values < 0), name,
              lambda i, name=name, values=values: f"{name} must not be negative, found {values[i]:g}")
    for name in _INTEGER:
        values = frame[name].to_numpy(dtype=float)
        where(np.isfinite(values) & (values != np.round(values)), name,
              lambda i, name=name, values=values: f"{name} must be a whole number, found {values[i]:g}")

    defs = frame["itl_definition"]
    bad = (defs.notna() & ~defs.isin(list(ITL_DEFINITIONS))).to_numpy(dtype=bool)
    where(bad, "itl_definition", lambda i: f"itl_definition must be one of {', '.join(ITL_DEFINITIONS)}, found "
                                           f"{str(defs.iloc[i])[:40]!r}")
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
    header.insert(header.index("license") + 1, "attribution")
    examples = [
        {"llm": "meta-llama/Llama-3.1-8B-Instruct", "gpu": "NVIDIA L40S", "scenario": "offline", "batch_size": 256,
         "input_tokens": 14, "output_tokens": 220, "num_requests": 1000, "framework": "vLLM",
         "framework_version": "0.14.1", "precision": "bf16", "num_gpus": 1, "tensor_parallel": 1,
         "iteration": 1, "power_w": 331.5, "itl_s": 0.00041, "itl_definition": "offline_duration_per_token",
         "energy_per_token_j": 0.136, "throughput_tok_s": 2440.0, "duration_s": 90.2,
         "source_id": "my_lab", "license": "CC-BY-4.0", "attribution": "My Lab (replace: who to credit)",
         "notes": "example row: replace with your measurements"},
        {"llm": "Qwen/Qwen2.5-7B-Instruct", "gpu": "NVIDIA H100 NVL", "scenario": "server", "request_rate_qps": 0.33,
         "input_tokens": 14, "output_tokens": 210, "num_requests": 99, "framework": "vLLM",
         "framework_version": "0.14.1", "precision": "bf16", "num_gpus": 1, "tensor_parallel": 1, "iteration": 1,
         "power_w": 118.0, "itl_s": 0.0071, "itl_definition": "server_decode_per_request", "ttft_s": 0.03,
         "source_id": "my_lab", "license": "CC-BY-4.0", "attribution": "My Lab (replace: who to credit)",
         "notes": "example row: replace with your measurements"},
    ][:n_examples]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for ex in examples:
        writer.writerow(ex)
    return buf.getvalue()
