"""What a benchmark result file says about one run, before power is known: the run's columns and its window.

The result readers (``vllm_bench``, ``guidellm``) return :class:`BenchRun` values; ``pair`` adds the power. Shared
helpers read typed fields out of JSON objects, each problem named by run (row) and field path.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from .issues import Issues, reject


@dataclass(frozen=True)
class BenchRun:
    """One run of a result file: ``row`` (1-based run number in the file), the run columns it states
    (``columns``: run column -> value), its time window in seconds on ``clock`` (``local`` or ``utc``), its
    natural identity ``key`` (written to the run's ``campaign``) and, for messages, the field each column came
    from (``fields``)."""

    row: int
    columns: dict
    start_s: float
    end_s: float
    clock: str
    key: str
    fields: dict = field(default_factory=dict)


def load_json_records(text: str) -> list:
    """A JSON document, or JSON Lines (``vllm bench serve --append-result`` appends one object per line)."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if len(lines) > 1:
            records = []
            for n, line in enumerate(lines, start=1):
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as line_exc:
                    raise reject(f"invalid JSON on line {n}, column {line_exc.colno}: {line_exc.msg}",
                                 row=n) from None
            return records
        raise reject(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    return obj if isinstance(obj, list) else [obj]


class Fields:
    """Typed reads from one JSON object of a result file; every problem goes to ``issues`` under (row, path)."""

    def __init__(self, obj: dict, row: int, issues: Issues, prefix: str = ""):
        self.obj, self.row, self.issues, self.prefix = obj, row, issues, prefix

    def get(self, path: str):
        value = self.obj
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return value

    def name(self, path: str) -> str:
        return self.prefix + path

    def number(self, path: str, required: bool = False, positive: bool = False, non_negative: bool = False,
               allow_inf: bool = False) -> float:
        value = self.get(path)
        if value is None:
            if required:
                self.issues.add(self.row, self.name(path), "is missing")
            return math.nan
        if allow_inf and value in ("inf", "Infinity"):
            return math.inf
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or (
                math.isinf(value) and not allow_inf):
            self.issues.add(self.row, self.name(path), f"expected a number, found {str(value)[:40]!r}")
            return math.nan
        if positive and not value > 0:
            self.issues.add(self.row, self.name(path), f"must be positive, found {value:g}")
            return math.nan
        if non_negative and value < 0:
            self.issues.add(self.row, self.name(path), f"must not be negative, found {value:g}")
            return math.nan
        return float(value)

    def text(self, path: str, required: bool = False) -> str | None:
        value = self.get(path)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.issues.add(self.row, self.name(path), "is missing")
            return None
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            self.issues.add(self.row, self.name(path), f"expected text, found {str(value)[:40]!r}")
            return None
        return str(value).strip()

    def number_list(self, path: str) -> list[float] | None:
        value = self.get(path)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                  for v in value):
            self.issues.add(self.row, self.name(path), "expected a list of numbers")
            return None
        return [float(v) for v in value]


def plain(x: float) -> str:
    """A number as a short label: 2.0 -> '2', 0.25 -> '0.25', inf -> 'inf'."""
    return "inf" if math.isinf(x) else f"{x:g}"
