"""The natural identity of a measured run: which columns say *which* measurement a row is, per source.

Ingest is idempotent on this key, not on the row's full content: re-sending a run whose optional columns are blank,
spelled differently (``vLLM``/``vllm``, ``BF16``/``bfloat16``), spaced differently or written with other number
formats (``1.50``/``1.5``/``1.5e0``) finds the stored run. What the row *measured* (every numeric column outside
the key, and ``itl_definition``) is then compared: values that differ where both rows state one are a conflict,
which the store refuses, skips or replaces as the caller chooses (``Store.ingest(on_conflict=...)``).

Each source defines its key in :data:`KEYS_BY_SOURCE`; any other source (canonical uploads included) uses
:data:`GENERIC_KEY`.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd

from .schema import RUN_COLUMNS

# A measurement's configuration: what was run where, with which workload and serving stack, and which repeat.
GENERIC_KEY: tuple[str, ...] = (
    "source_id", "llm_id", "gpu_id", "scenario", "batch_size", "max_concurrency", "request_rate_qps",
    "input_tokens", "output_tokens", "framework", "precision", "num_gpus", "tensor_parallel", "iteration", "campaign",
)
# A Watt Counts experiment is one (LLM, GPU, request rate, block, iteration) cell of its design, which its own
# experiment index (``src_index`` in the per-experiment copy) enumerates; its token counts are measured averages.
WATTCOUNTS_KEY: tuple[str, ...] = ("source_id", "llm_id", "gpu_id", "scenario", "request_rate_qps", "campaign",
                                   "iteration")
KEYS_BY_SOURCE: dict[str, tuple[str, ...]] = {"wattcounts": WATTCOUNTS_KEY, "wattcounts_upload": WATTCOUNTS_KEY}

_NUMERIC = {c.name for c in RUN_COLUMNS if c.is_numeric}
# What a run measured: compared when a re-sent run has the key of a stored one. Key columns are among them for some
# sources; two rows of one key agree on those by construction (to the key's 10 significant digits).
COMPARED_COLUMNS: tuple[str, ...] = tuple(c.name for c in RUN_COLUMNS if c.is_numeric) + ("itl_definition",)
_NA_TEXT = {"", "nan", "na", "n/a", "null", "none", "<na>"}
_ALIASES = {
    "precision": {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32", "float": "fp32",
                  "float8": "fp8"},
    "framework": {"trt-llm": "tensorrt-llm", "tensorrt_llm": "tensorrt-llm", "trtllm": "tensorrt-llm",
                  "deepspeed_mii": "deepspeed-mii", "mii": "deepspeed-mii"},
}
_SPACE = re.compile(r"\s+")


def key_columns(source_id: str) -> tuple[str, ...]:
    return KEYS_BY_SOURCE.get(source_id, GENERIC_KEY)


def _text_norm(values: pd.Series, column: str) -> pd.Series:
    codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=True)
    aliases = _ALIASES.get(column, {})
    out = []
    for u in uniques:
        t = _SPACE.sub(" ", str(u)).strip().casefold()
        t = "" if t in _NA_TEXT else t
        out.append(aliases.get(t, t))
    table = np.array([*out, ""], dtype=object)
    return pd.Series(table[np.where(codes < 0, len(out), codes)], index=values.index)


def _number_norm(values: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    codes, uniques = pd.factorize(numbers, use_na_sentinel=True)
    out = ["" if not np.isfinite(u) else f"{float(u):.10g}" for u in uniques]
    table = np.array([*out, ""], dtype=object)
    return pd.Series(table[np.where(codes < 0, len(out), codes)], index=values.index)


def normalised(frame: pd.DataFrame, column: str) -> pd.Series:
    """``column`` as the text the key uses (blank for missing or NA-like values)."""
    if column not in frame.columns:
        return pd.Series([""] * len(frame), index=frame.index, dtype=object)
    if column in _NUMERIC:
        return _number_norm(frame[column])
    return _text_norm(frame[column], column)


def run_keys(frame: pd.DataFrame) -> pd.Series:
    """The natural key of every run in ``frame`` (20 hex digits), per its source's key columns.

    Blank ``num_gpus`` means one GPU and blank ``tensor_parallel`` means ``num_gpus``, as the models read them."""
    norm: dict[str, pd.Series] = {}
    wanted = set(GENERIC_KEY).union(*KEYS_BY_SOURCE.values())
    for c in wanted:
        norm[c] = normalised(frame, c)
    norm["num_gpus"] = norm["num_gpus"].mask(norm["num_gpus"] == "", "1")
    norm["tensor_parallel"] = norm["tensor_parallel"].mask(norm["tensor_parallel"] == "", norm["num_gpus"])
    source = norm["source_id"]
    keys = pd.Series([""] * len(frame), index=frame.index, dtype=object)
    for src in pd.unique(source):
        rows = source == src
        text = pd.Series([f"{src}"] * int(rows.sum()), index=frame.index[rows.to_numpy()], dtype=object)
        for c in key_columns(src):
            if c != "source_id":
                text = text + ("|" + c + "=") + norm[c][rows]
        keys[rows] = text
    return pd.Series([hashlib.md5(k.encode()).hexdigest()[:20] for k in keys], index=frame.index, name="run_key",
                     dtype=object)
