"""The typed prediction request: which LLM on which GPU, under which workload and deployment, validated once.

A :class:`PredictionRequest` holds an LLM name, a GPU name, a :class:`Workload` (scenario, request rate or fixed
concurrency, prompt and output tokens, requests, batch cap) and a :class:`Deployment` (precision, GPUs per replica
as tensor parallel, serving stack). Each is frozen and checked when it is built: a bad value raises
:class:`~wattgpu_core.errors.ValidationError` naming the field (and, for a table, the row). Names are not resolved
here (that needs the catalogs; :func:`wattgpu_core.planning.predict` does it).

Many requests travel as one table with the columns of :data:`REQUEST_COLUMNS` (:func:`request_frame` builds it from
requests; :func:`validate_frame` checks a user's table, e.g. a CSV, with the same rules, vectorised, and returns the
same typed table), which is what the models read after the specs are joined. Missing values are NaN / None: the
prediction fills them with Watt Counts' workload and vLLM's defaults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import Issue, ValidationError
from .physics import normalise_precision, per_unique

__all__ = ["Deployment", "PredictionRequest", "REQUEST_COLUMNS", "SCENARIOS", "Workload", "as_request_frame",
           "request_frame", "validate_frame"]

SCENARIOS = ("offline", "server", "server_low", "server_high")
REQUIRED_COLUMNS = ("llm", "gpu", "scenario")
WORKLOAD_NUMBERS = ("request_rate_qps", "max_concurrency", "input_tokens", "output_tokens", "num_requests",
                    "batch_size")
DEPLOYMENT_NUMBERS = ("tensor_parallel",)
NUMBER_COLUMNS = (*WORKLOAD_NUMBERS, *DEPLOYMENT_NUMBERS)
TEXT_COLUMNS = ("precision", "serving_stack")
# The typed table: one row per request
REQUEST_COLUMNS = (*REQUIRED_COLUMNS, *NUMBER_COLUMNS, *TEXT_COLUMNS)
# What a user's table may hold besides the required columns (num_gpus: another name of tensor_parallel)
OPTIONAL_COLUMNS = ("batch_size", "request_rate_qps", "input_tokens", "output_tokens", "num_requests", "num_gpus",
                    "tensor_parallel", "max_concurrency")


def _number(value) -> float:
    """``value`` as a float; NaN for None / NaN; raises ValueError for text that is not a number."""
    if value is None:
        return float("nan")
    return float(value)


def _text(value) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


@dataclass(frozen=True)
class Workload:
    """What the GPU is asked to do. ``scenario``: offline (a batch of ``num_requests`` prompts), server (Poisson
    arrivals at ``request_rate_qps``, or a closed loop of ``max_concurrency`` requests in flight), or the paper's
    server_low / server_high (0.017 / 0.33 requests/s). Tokens per request, the batch cap (vLLM's
    ``max_num_seqs``) and the request count are optional (None: the defaults)."""

    scenario: str = "offline"
    request_rate_qps: float | None = None
    max_concurrency: float | None = None
    input_tokens: float | None = None
    output_tokens: float | None = None
    num_requests: float | None = None
    batch_size: float | None = None

    def __post_init__(self):
        scen = str(self.scenario).strip().lower() if self.scenario is not None else None
        object.__setattr__(self, "scenario", scen)
        issues = []
        for name in WORKLOAD_NUMBERS:
            try:
                value = _number(getattr(self, name))
            except (TypeError, ValueError):
                value = float("-inf")
            if not np.isnan(value) and not (np.isfinite(value) and value > 0):
                issues.append(Issue(0, name, f"{name} must be a positive number, found {getattr(self, name)!r}"))
            else:
                object.__setattr__(self, name, None if np.isnan(value) else value)
        issues += _scenario_issues(np.array([scen], dtype=object), np.array([_number(self.request_rate_qps)]),
                                   np.array([_number(self.max_concurrency)]), self.scenario)
        if issues:
            raise ValidationError(issues)


@dataclass(frozen=True)
class Deployment:
    """How the LLM is served: weight ``precision`` (bf16, fp16, fp8, int8, int4, fp4, mxfp4; None: what a quantised
    checkpoint id names, else the LLM's native one), ``tensor_parallel`` GPUs per replica (None: 1) and the
    ``serving_stack`` (None: the stack the models were trained on)."""

    precision: str | None = None
    tensor_parallel: float | None = None
    serving_stack: str | None = None

    def __post_init__(self):
        issues = []
        prec = _text(self.precision)
        if prec is not None:
            try:
                prec = normalise_precision(prec)
            except ValueError as exc:
                issues.append(Issue(0, "precision", str(exc)))
        object.__setattr__(self, "precision", prec)
        try:
            tp = _number(self.tensor_parallel)
        except (TypeError, ValueError):
            tp = float("-inf")
        if not np.isnan(tp) and not (np.isfinite(tp) and tp > 0):
            issues.append(Issue(0, "tensor_parallel", f"tensor_parallel must be a positive number, found "
                                                      f"{self.tensor_parallel!r}"))
        object.__setattr__(self, "tensor_parallel", None if np.isnan(tp) else tp)
        object.__setattr__(self, "serving_stack", _text(self.serving_stack))
        if issues:
            raise ValidationError(issues)


@dataclass(frozen=True)
class PredictionRequest:
    """One prediction: ``llm`` and ``gpu`` (catalog ids, Hugging Face ids, names or aliases), the workload and the
    deployment."""

    llm: str
    gpu: str
    workload: Workload = field(default_factory=Workload)
    deployment: Deployment = field(default_factory=Deployment)

    def __post_init__(self):
        issues = [Issue(0, c, f"{'LLM' if c == 'llm' else 'GPU'} name is missing") for c in ("llm", "gpu")
                  if _text(getattr(self, c)) is None]
        if issues:
            raise ValidationError(issues)

    @classmethod
    def from_mapping(cls, values: Mapping) -> PredictionRequest:
        """A request from flat keys (the table's columns: llm, gpu, scenario, request_rate_qps, ..., precision,
        tensor_parallel or num_gpus, serving_stack)."""
        return _requests_from_frame(validate_frame(pd.DataFrame([dict(values)])))[0]

    def as_row(self) -> dict:
        """The request as one row of :data:`REQUEST_COLUMNS` (NaN / None where not given)."""
        w, d = self.workload, self.deployment
        row = {"llm": self.llm, "gpu": self.gpu, "scenario": w.scenario}
        row.update({c: np.nan if getattr(w, c) is None else float(getattr(w, c)) for c in WORKLOAD_NUMBERS})
        row["tensor_parallel"] = np.nan if d.tensor_parallel is None else float(d.tensor_parallel)
        row["precision"], row["serving_stack"] = d.precision, d.serving_stack
        return row


def _scenario_issues(scen: np.ndarray, rate: np.ndarray, concurrency: np.ndarray, shown=None) -> list[Issue]:
    """Unknown scenarios, and servers with neither a request rate nor a fixed concurrency (rows 1-based)."""
    issues = []
    for i in np.flatnonzero(~np.isin(scen, SCENARIOS))[:20]:
        found = shown if shown is not None else scen[i]
        issues.append(Issue(int(i) + 1 if shown is None else 0, "scenario",
                            f"scenario must be one of {', '.join(SCENARIOS)}, found {found!r}"))
    no_rate = (scen == "server") & np.isnan(rate) & ~np.isfinite(concurrency)
    for i in np.flatnonzero(no_rate)[:20]:
        issues.append(Issue(int(i) + 1 if shown is None else 0, "request_rate_qps",
                            "scenario 'server' needs request_rate_qps (requests/s) or max_concurrency (requests kept "
                            "in flight); or use server_low / server_high"))
    return issues


def _numeric_column(frame: pd.DataFrame, column: str, issues: list[Issue]) -> np.ndarray:
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    bad = raw.notna().to_numpy() & np.isnan(values)
    bad |= np.isfinite(values) & (values <= 0)
    bad |= np.isinf(values)
    for i in np.flatnonzero(bad)[:20]:
        issues.append(Issue(int(i) + 1, column, f"{column} must be a positive number, found {raw.iloc[i]!r}"))
    return values


def _text_column(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A text column stripped, None where blank or missing (once per distinct value)."""
    if column not in frame.columns:
        return np.full(len(frame), None, dtype=object)
    return per_unique(_text, frame[column].to_numpy(dtype=object), dtype=object)


def validate_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A user's table of requests (columns llm, gpu, scenario and any of :data:`OPTIONAL_COLUMNS`, precision,
    serving_stack) checked with the rules of :class:`PredictionRequest`, as the typed table of
    :data:`REQUEST_COLUMNS` (same row order). Raises ValidationError listing every problem by row and column."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValidationError([Issue(0, c, f"column {c} is missing; expected columns llm, gpu, scenario and "
                                           f"optionally {', '.join(OPTIONAL_COLUMNS + TEXT_COLUMNS)}")
                               for c in missing])
    frame = frame.reset_index(drop=True)
    issues: list[Issue] = []
    out = {}
    for c in ("llm", "gpu"):
        out[c] = frame[c].astype(object).where(frame[c].notna(), None).to_numpy(dtype=object)
    scen = per_unique(lambda s: str(s).strip().lower() if s is not None and s == s else None,
                      frame["scenario"].to_numpy(dtype=object), dtype=object)
    out["scenario"] = scen
    numbers = {c: _numeric_column(frame, c, issues) for c in (*WORKLOAD_NUMBERS, "num_gpus", "tensor_parallel")}
    ngpu, tp = numbers.pop("num_gpus"), numbers["tensor_parallel"]
    clash = np.isfinite(ngpu) & np.isfinite(tp) & (ngpu != tp)
    for i in np.flatnonzero(clash)[:20]:
        issues.append(Issue(int(i) + 1, "tensor_parallel", f"tensor_parallel {tp[i]:g} and num_gpus {ngpu[i]:g} "
                                                           "differ; give one of them (GPUs per replica)"))
    numbers["tensor_parallel"] = np.where(np.isfinite(ngpu), ngpu, tp)
    out.update(numbers)
    precision = _text_column(frame, "precision")
    for p in pd.unique(precision[pd.notna(precision)]):
        rows = np.flatnonzero(precision == p)
        try:
            precision[rows] = normalise_precision(p)
        except ValueError as exc:
            issues += [Issue(int(i) + 1, "precision", str(exc)) for i in rows[:20]]
    out["precision"] = precision
    out["serving_stack"] = _text_column(frame, "serving_stack")
    issues += _scenario_issues(scen, numbers["request_rate_qps"], numbers["max_concurrency"])
    if issues:
        raise ValidationError(issues)
    blank_llm = per_unique(lambda v: _text(v) is None, out["llm"], dtype=bool)
    blank_gpu = per_unique(lambda v: _text(v) is None, out["gpu"], dtype=bool)
    if blank_llm.any() or blank_gpu.any():
        issues = [Issue(int(i) + 1, "llm", "LLM name is missing") for i in np.flatnonzero(blank_llm)[:20]]
        issues += [Issue(int(i) + 1, "gpu", "GPU name is missing") for i in np.flatnonzero(blank_gpu)[:20]]
        raise ValidationError(issues, int(blank_llm.sum() + blank_gpu.sum()))
    return _typed(pd.DataFrame({c: out[c] for c in REQUEST_COLUMNS}))


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with float number columns and text columns holding str or None (never NaN)."""
    for c in NUMBER_COLUMNS:
        frame[c] = frame[c].astype(float)
    for c in ("llm", "gpu", "scenario", *TEXT_COLUMNS):
        col = frame[c].astype(object)
        frame[c] = col.where(col.notna(), None)
    return frame


def _requests_from_frame(typed: pd.DataFrame) -> list[PredictionRequest]:
    def val(v):
        return None if v is None or (isinstance(v, float) and np.isnan(v)) else v

    return [PredictionRequest(r["llm"], r["gpu"],
                              Workload(r["scenario"], *(val(r[c]) for c in WORKLOAD_NUMBERS)),
                              Deployment(val(r["precision"]), val(r["tensor_parallel"]), val(r["serving_stack"])))
            for r in typed.to_dict("records")]


def request_frame(requests: Sequence[PredictionRequest]) -> pd.DataFrame:
    """The typed table (:data:`REQUEST_COLUMNS`) of already validated requests."""
    return _typed(pd.DataFrame([r.as_row() for r in requests], columns=list(REQUEST_COLUMNS)))


def as_request_frame(requests) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the input as a table, the typed table) for what :func:`wattgpu_core.planning.predict` accepts: a table of
    requests (validated here), one :class:`PredictionRequest` or a sequence of them (validated when built), or one
    mapping of flat keys (one request)."""
    if isinstance(requests, pd.DataFrame):
        return requests.reset_index(drop=True).copy(), validate_frame(requests)
    if isinstance(requests, Mapping):
        requests = pd.DataFrame([dict(requests)])
        return requests, validate_frame(requests)
    if isinstance(requests, PredictionRequest):
        requests = [requests]
    requests = list(requests)
    if not all(isinstance(r, PredictionRequest) for r in requests):
        raise TypeError("predict() takes a DataFrame of requests, a mapping, or PredictionRequest objects")
    typed = request_frame(requests)
    return typed.copy(), typed
