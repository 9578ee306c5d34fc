"""A page's state as typed values that round-trip through URL query parameters, so a link reproduces a view.

``PageState`` holds every page's choices (LLM, GPU, workload, GPU filters, model set, side-by-side picks);
``query_readers`` parses one parameter safely (a malformed or out-of-range value falls back to the default);
``Workload`` is the workload the pages pass to the core (``as_request``) and describe in words.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

from .labels import MODEL_CHOICES, PRECISION_CHOICES, SCENARIO_CHOICES


@dataclass(frozen=True)
class Workload:
    scenario: str = "offline"
    batch_size: int = 256
    request_rate_qps: float = 0.33
    input_tokens: int = 14
    output_tokens: int = 220
    num_gpus: int = 1  # GPUs per model replica (tensor parallel)
    precision: str = ""  # weight precision; "" = the LLM's native precision
    serving_stack: str | None = None  # a calibrated stack (None: the model's default stack)

    def as_request(self) -> dict:
        out = {"scenario": self.scenario, "input_tokens": float(self.input_tokens),
               "output_tokens": float(self.output_tokens), "num_gpus": float(self.num_gpus)}
        if self.precision:
            out["precision"] = self.precision
        if self.serving_stack:
            out["serving_stack"] = self.serving_stack
        if self.scenario == "offline":
            out["batch_size"] = float(self.batch_size)
        else:
            out["request_rate_qps"] = float(self.request_rate_qps)
        return out

    def describe(self) -> str:
        load = (f"offline batch of {self.batch_size}" if self.scenario == "offline"
                else f"server at {self.request_rate_qps:g} requests/s")
        replica = f", {self.num_gpus} GPUs per replica" if self.num_gpus > 1 else ""
        weights = f", {self.precision} weights" if self.precision else ""
        return f"{load}, {self.input_tokens} input and {self.output_tokens} output tokens per request{replica}{weights}"


def query_readers(query: Mapping, default):
    """``(get, number)`` for parsing URL parameters: ``get(key)`` is the last value given for ``key`` (or None);
    ``number(key, kind, low, high)`` converts it with ``kind`` and falls back to ``default``'s field when it is
    malformed or outside [low, high]."""

    def get(key):
        v = query.get(key)
        if isinstance(v, list):
            v = v[-1] if v else None
        return v

    def number(key, kind, low, high):
        try:
            v = kind(float(get(key)))
        except (TypeError, ValueError, OverflowError):  # e.g. "abc", "nan" or "1e999" in a shared link
            return getattr(default, key)
        return v if low <= v <= high else getattr(default, key)

    return get, number


def split_list(raw) -> tuple[str, ...]:
    """A URL parameter "a|b" as ("a", "b"); missing or empty as ()."""
    return tuple(x for x in str(raw).split("|") if x) if raw else ()


def query_of(state) -> dict[str, str]:
    """URL parameters of a frozen page-state dataclass: fields at their default left out (links stay short), tuples
    of text joined by "|", number ranges by "-", floats as %g."""
    default = type(state)()
    out = {}
    for f in fields(state):
        value = getattr(state, f.name)
        if value == getattr(default, f.name):
            continue
        if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
            out[f.name] = "|".join(value)
        elif isinstance(value, tuple):
            out[f.name] = "-".join(f"{v:g}" for v in value)
        elif isinstance(value, float):
            out[f.name] = f"{value:g}"
        else:
            out[f.name] = str(value)
    return out


@dataclass(frozen=True)
class PageState:
    """Everything a comparison needs, as typed values; round-trips through URL query parameters."""

    llm: str = "meta-llama/Llama-3.1-8B-Instruct"
    gpu: str = "h100-nvl-94gb"
    scenario: str = "offline"
    batch: int = 256
    qps: float = 0.33
    inp: int = 14
    out: int = 220
    mem: float = 0.0  # minimum memory, GB
    gen: tuple[str, ...] = ()
    form: tuple[str, ...] = ()
    tdp: tuple[float, float] = (0.0, 0.0)  # (0, 0) = any
    model: str = "default"  # model set: "default" (WattGPU+ where it measures better) or "paper"
    tp: int = 1  # GPUs per replica
    prec: str = ""  # weight precision ("" = native)
    pick: tuple[str, ...] = ()  # side by side: deployments "gpu_id*gpus per replica"
    stack: str = ""  # serving stack ("" = the models' default stack)

    @property
    def workload(self) -> Workload:
        return Workload(self.scenario, self.batch, self.qps, self.inp, self.out, self.tp, self.prec,
                        self.stack or None)

    @classmethod
    def from_query(cls, query: dict) -> PageState:
        """Parse URL parameters; anything malformed falls back to the default for that field."""
        default = cls()
        values = {}
        get, number = query_readers(query, default)

        for key in ("llm", "gpu"):
            if get(key):
                values[key] = str(get(key))
        if get("scenario") in SCENARIO_CHOICES:
            values["scenario"] = get("scenario")
        if get("model") in MODEL_CHOICES:
            values["model"] = get("model")
        values["batch"] = number("batch", int, 1, 4096)
        values["qps"] = number("qps", float, 0.001, 1000)
        values["inp"] = number("inp", int, 1, 131072)
        values["out"] = number("out", int, 1, 131072)
        values["mem"] = number("mem", float, 0, 4096)
        values["tp"] = number("tp", int, 1, 8)
        if get("prec") in PRECISION_CHOICES:
            values["prec"] = get("prec")
        if get("stack") and str(get("stack")).strip():
            values["stack"] = str(get("stack")).strip()[:80]
        for key in ("gen", "form", "pick"):
            values[key] = split_list(get(key))
        raw = get("tdp")
        try:
            lo, hi = (float(x) for x in str(raw).split("-", 1))
            values["tdp"] = (lo, hi) if 0 <= lo <= hi < math.inf else default.tdp
        except (TypeError, ValueError):
            values["tdp"] = default.tdp
        return cls(**values)

    def to_query(self) -> dict[str, str]:
        """URL parameters for this state (defaults left out, so links stay short)."""
        return query_of(self)

    def replace(self, **changes) -> PageState:
        return dataclasses.replace(self, **changes)
