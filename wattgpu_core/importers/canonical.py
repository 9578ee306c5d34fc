"""WattGPU's canonical CSV: one row per measured run, in the columns of ``schema.CANONICAL_COLUMNS`` (``llm``,
``gpu``, ``scenario``, ``power_w`` required), optionally with per-request lists from which a server row's ITL is
computed exactly, and the template the Data page and ``python -m wattgpu_core template`` offer.

A row's ``source_id`` is ``user_upload`` unless stated; a stated one must be a short slug and may not be one of the
published sources (``sources.RESERVED_SOURCE_IDS``).
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd

from ..parsed import ParsedFile, empty_runs
from ..schema import CANONICAL_COLUMNS
from ..sources import RESERVED_SOURCE_IDS, SOURCE_ID, SOURCES
from .issues import Issues, reject
from .reading import numeric_column, require_columns, text_column
from .request_lists import REQUEST_LIST_COLUMNS, parse_list, server_itl_from_lists

# Read as text (never as numbers), so that "0.10" stays "0.10" and "1" stays "1".
TEXT_COLUMNS = {"llm", "gpu", "llm_id", "gpu_id", "attribution", *REQUEST_LIST_COLUMNS} | {
    c.name for c in CANONICAL_COLUMNS if c.sql_type == "VARCHAR"}


def parse_canonical(frame: pd.DataFrame, issues: Issues) -> ParsedFile:
    renames = {old: new for old, new in (("llm_id", "llm"), ("gpu_id", "gpu"))
               if old in frame.columns and new not in frame.columns}
    frame = frame.rename(columns=renames)
    required = ["llm", "gpu", "scenario", "power_w"]
    require_columns(frame, required, "canonical")
    known = {"llm", "gpu", "attribution"} | {c.name for c in CANONICAL_COLUMNS} | set(REQUEST_LIST_COLUMNS)
    unknown = [c for c in frame.columns if c not in known and not str(c).startswith("Unnamed")]
    if unknown:
        raise reject(
            f"unknown column {unknown[0]!r} in a canonical CSV (known: {', '.join(sorted(known))})", column=unknown[0]
        )
    n = len(frame)
    rows = np.arange(1, n + 1)
    out = empty_runs(n)
    for c in CANONICAL_COLUMNS:
        if c.name in ("llm_id", "gpu_id"):
            continue
        if c.is_numeric:
            out[c.name] = numeric_column(frame, c.name, issues, rows)
        elif c.sql_type == "VARCHAR":
            out[c.name] = text_column(frame, c.name)
    out["llm_name_raw"] = text_column(frame, "llm")
    out["gpu_name_raw"] = text_column(frame, "gpu")
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
    issues.add_where(bad_id, rows, "source_id",
                     lambda i: f"source_id {result['source_id'].iloc[i][:40]!r} is not a short slug: use lower-case "
                               "letters, digits, '_', '-' or '.', at most 40 characters (e.g. my_lab)")
    if any(c in frame.columns for c in REQUEST_LIST_COLUMNS):
        _apply_request_lists(frame, result, issues, rows)
    reserved = result["source_id"].isin(RESERVED_SOURCE_IDS).to_numpy()
    issues.add_where(reserved, rows, "source_id",
                     lambda i: f"source_id {result['source_id'].iloc[i]!r} is reserved for the published seed data; "
                               "name your own source (e.g. my_lab)")
    names_map = {c: c for c in result.columns}
    names_map.update({"llm_id": "llm", "gpu_id": "gpu", "llm_name_raw": "llm", "gpu_name_raw": "gpu"})
    for old, new in renames.items():  # messages name the user's own column
        for k, v in list(names_map.items()):
            if v == new:
                names_map[k] = old
    attributions = ()
    if "attribution" in frame.columns:
        pairs = pd.DataFrame({"source_id": result["source_id"], "attribution": text_column(frame, "attribution")})
        pairs = pairs.dropna().drop_duplicates("source_id")
        attributions = tuple(zip(pairs["source_id"], pairs["attribution"], strict=True))
    return ParsedFile("canonical", result, names_map, "user_upload", (), attributions)


def _apply_request_lists(frame: pd.DataFrame, result: pd.DataFrame, issues: Issues, rows: np.ndarray) -> None:
    """Fill ITL (server rows: the exact per-request definition), TTFT, end-to-end latency, output tokens and request
    count from the per-request lists; an ``itl_s`` the file states must agree with the lists within 1%."""
    require_columns(frame, list(REQUEST_LIST_COLUMNS), "canonical (per-request lists)")
    for i in range(len(frame)):
        lists = {c: parse_list(frame[c].iloc[i]) for c in REQUEST_LIST_COLUMNS}
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
