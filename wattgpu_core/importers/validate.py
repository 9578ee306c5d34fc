"""Validation: a parsed file's rows checked and resolved into a :class:`~wattgpu_core.parsed.PreparedImport`, all or
nothing.

:func:`prepare` resolves the LLM and GPU names against the catalogs (with a source's stated GPU assumptions from
``data/manual/source_gpu_map.csv``), then checks the scenario, the power (positive, at most twice the GPU's TDP),
the ranges of the other numbers and the ITL definition. Every problem is named by data row and by the column of
the user's own file; if there is any, :class:`~wattgpu_core.errors.ValidationError` lists them all and nothing is
prepared.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..catalog import GpuResolver, LlmResolver
from ..parsed import DATA_COLUMNS, ParsedFile, PreparedImport
from ..paths import MANUAL_DIR
from ..schema import ITL_DEFINITIONS, RUN_COLUMNS, SCENARIOS
from .issues import Issues, reject

_POSITIVE = ("itl_s", "throughput_tok_s", "energy_per_token_j", "duration_s", "batch_size", "mean_batch_size",
             "max_concurrency", "request_rate_qps", "output_tokens", "num_gpus", "tensor_parallel", "num_requests",
             "output_tokens_total", "gpu_energy_j")
_NON_NEGATIVE = ("ttft_s", "e2e_latency_s", "input_tokens", "iteration")
_INTEGER = ("num_gpus", "tensor_parallel", "iteration")
MAX_ITL_S = 60.0  # an ITL above this per token is not physical


def source_gpu_map(manual_dir: Path = MANUAL_DIR) -> pd.DataFrame:
    """The GPU each published source means by a name it does not spell out, and the assumption behind it
    (``data/manual/source_gpu_map.csv``)."""
    return pd.read_csv(Path(manual_dir) / "source_gpu_map.csv")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class _RowIssues:
    """Problems of a parsed file's rows, each under the user's name for the column."""

    rows: np.ndarray  # data row of each frame row (1-based)
    column_names: dict[str, str]  # run column -> column of the user's file
    issues: Issues

    def where(self, mask, column: str, message: str | Callable[[int], str]) -> None:
        """Report every row in ``mask``; ``message`` is a string or a function of the row's position."""
        self.issues.add_where(mask, self.rows, self.column_names.get(column, column), message)


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
        raise reject("no runs to import" + (": " + "; ".join(parsed.warnings) if parsed.warnings else ""))
    frame = parsed.frame.copy()
    report = _RowIssues(frame["_row"].to_numpy(), parsed.column_names, Issues())
    _resolve(frame, "LLM", LlmResolver(llms), {}, report)
    gpu_assumed = {}
    if source_gpu_map is not None and len(source_gpu_map):
        sub = source_gpu_map[source_gpu_map["source_id"] == parsed.source_id]
        gpu_assumed = dict(zip(sub["raw_name"], sub["gpu_id"], strict=True))
    gpu_codes, gpu_ids = _resolve(frame, "GPU", GpuResolver(gpus), gpu_assumed, report)
    _check_scenario(frame, report)
    tdp_by_id = dict(zip(gpus["gpu_id"], gpus["tdp_w"].astype(float), strict=True))
    tdp_w = np.array([tdp_by_id.get(g, np.nan) if g else np.nan for g in [*gpu_ids, None]], dtype=float)[gpu_codes]
    _check_power(frame, tdp_w, gpus, report)
    _check_ranges(frame, report)
    _check_itl(frame, report)
    report.issues.raise_if_any()
    return PreparedImport(parsed.format, _store_types(frame.drop(columns=["_row"]))[DATA_COLUMNS], parsed.source_id,
                          file_name, file_sha256, parsed.warnings, parsed.attributions)


def _resolve(frame: pd.DataFrame, kind: str, resolver, assumed: dict[str, str],
             report: _RowIssues) -> tuple[np.ndarray, list[str | None]]:
    """Fill ``llm_id`` or ``gpu_id`` (``kind`` LLM or GPU) from the raw names, each distinct name resolved once (a
    name in ``assumed`` maps to its stated id); report missing and unknown names. Returns each row's code into the
    distinct names (a missing cell is the code past the last) and the id of each distinct name (None if unknown)."""
    raw, target = ("llm_name_raw", "llm_id") if kind == "LLM" else ("gpu_name_raw", "gpu_id")
    codes, uniques = pd.factorize(frame[raw], use_na_sentinel=True)
    names_ = [str(u).strip() for u in uniques]
    ids = [None if not n else assumed.get(n) or resolver.try_resolve(n) for n in names_]
    blank_u = np.array([not n for n in names_] + [True])  # the last entry stands for a missing cell
    codes = np.where(codes < 0, len(names_), codes)
    report.where(blank_u[codes], raw, f"{kind} name is missing")
    unknown = {i: n for i, (n, hit) in enumerate(zip(names_, ids, strict=True)) if n and hit is None}
    if unknown:
        hints = {}
        for i, name in unknown.items():
            hint = resolver.suggestions(name)
            msg = f"unknown {kind} {name!r}"
            if hint:
                msg += " (did you mean " + " or ".join(repr(h) for h in hint) + "?)"
            hints[i] = msg + ("; add it as a custom GPU first" if kind == "GPU" else "; add it from its config.json first")
        report.where(np.isin(codes, list(unknown)), raw, lambda i: hints[codes[i]])
    ids_u = pd.array([*ids, None], dtype="str")
    frame[target] = pd.Series(ids_u.take(codes), index=frame.index)
    return codes, ids


def _check_scenario(frame: pd.DataFrame, report: _RowIssues) -> None:
    scen = frame["scenario"]
    report.where(~scen.isin(SCENARIOS).to_numpy(dtype=bool), "scenario",
                 lambda i: f"scenario must be one of {', '.join(SCENARIOS)}, found "
                           f"{'nothing' if pd.isna(scen.iloc[i]) else repr(str(scen.iloc[i])[:40])}")


def _check_power(frame: pd.DataFrame, tdp_w: np.ndarray, gpus: pd.DataFrame, report: _RowIssues) -> None:
    """Power is required, finite, positive and at most twice the GPU's TDP (``tdp_w``, per row) or, where the TDP is
    unknown, twice the largest TDP in the catalog."""
    power = frame["power_w"].to_numpy(dtype=float)
    report.where(np.isnan(power), "power_w", "power is missing or NaN")
    report.where(np.isinf(power), "power_w", "power is infinite")
    report.where(np.isfinite(power) & (power <= 0), "power_w", lambda i: f"power must be positive, found {power[i]:g}")
    over = np.isfinite(power) & np.isfinite(tdp_w) & (power > 2 * tdp_w)
    report.where(over, "power_w", lambda i: f"power {power[i]:.0f} W is above twice the GPU's TDP ({tdp_w[i]:.0f} W); "
                                            "give the mean power of one GPU in watts")
    ceiling = 2 * float(np.nanmax(gpus["tdp_w"].to_numpy(dtype=float))) if gpus["tdp_w"].notna().any() else np.inf
    over = np.isfinite(power) & ~np.isfinite(tdp_w) & frame["gpu_id"].notna().to_numpy(dtype=bool) & (power > ceiling)
    report.where(over, "power_w", lambda i: f"power {power[i]:.0f} W is above twice the largest TDP of any GPU "
                                            f"({ceiling / 2:.0f} W); give the mean power of one GPU in watts")


def _check_ranges(frame: pd.DataFrame, report: _RowIssues) -> None:
    """Counts, times, tokens and energies: positive or non-negative, finite; GPU counts and repeats whole."""
    for name in _POSITIVE:
        values = frame[name].to_numpy(dtype=float)
        report.where(np.isinf(values), name, f"{name} is infinite")
        report.where(np.isfinite(values) & (values <= 0), name,
                     lambda i, name=name, values=values: f"{name} must be positive, found {values[i]:g}")
    for name in _NON_NEGATIVE:
        values = frame[name].to_numpy(dtype=float)
        report.where(np.isinf(values), name, f"{name} is infinite")
        report.where(np.isfinite(values) & (values < 0), name,
                     lambda i, name=name, values=values: f"{name} must not be negative, found {values[i]:g}")
    for name in _INTEGER:
        values = frame[name].to_numpy(dtype=float)
        report.where(np.isfinite(values) & (values != np.round(values)), name,
                     lambda i, name=name, values=values: f"{name} must be a whole number, found {values[i]:g}")


def _check_itl(frame: pd.DataFrame, report: _RowIssues) -> None:
    defs = frame["itl_definition"]
    bad = (defs.notna() & ~defs.isin(list(ITL_DEFINITIONS))).to_numpy(dtype=bool)
    report.where(bad, "itl_definition", lambda i: f"itl_definition must be one of {', '.join(ITL_DEFINITIONS)}, "
                                                  f"found {str(defs.iloc[i])[:40]!r}")
    itl = frame["itl_s"].to_numpy(dtype=float)
    report.where(np.isfinite(itl) & (itl > MAX_ITL_S), "itl_s", f"ITL above {MAX_ITL_S:g} s per token is not physical")


def _store_types(frame: pd.DataFrame) -> pd.DataFrame:
    """Numbers as the store's types: DOUBLE columns float, INTEGER columns nullable Int64 (rounded)."""
    for c in RUN_COLUMNS:
        if c.name in ("run_id", "batch_id"):
            continue
        if c.sql_type == "DOUBLE":
            frame[c.name] = frame[c.name].astype(float)
        elif c.sql_type == "INTEGER":
            frame[c.name] = frame[c.name].astype("Float64").round().astype("Int64")
    return frame
