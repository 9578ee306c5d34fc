"""Number formats of the pages and the report: significant figures, counts with their noun, power, ITL, energy and
throughput with units, metrics as text (missing ones as an en dash) and 80% intervals as "low – high"."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np


def sig(value: float, digits: int = 2) -> float:
    """Round to ``digits`` significant figures (NaN passes through)."""
    if value is None or not np.isfinite(value) or value == 0:
        return value
    return round(float(value), digits - 1 - int(math.floor(math.log10(abs(value)))))


def count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 GPU', '2 GPUs' (``plural`` for irregular nouns)."""
    return f"{n:,} {noun if n == 1 else (plural or noun + 's')}"


def fmt_power(w: float) -> str:
    return f"{w:,.0f} W"


def fmt_itl(s: float) -> str:
    ms = s * 1000
    return f"{sig(ms, 2):g} ms"


def fmt_energy(j: float) -> str:
    return f"{sig(j, 3):g} J" if j >= 0.01 else f"{sig(j * 1000, 3):g} mJ"


def fmt_throughput(t: float) -> str:
    return f"{sig(t, 3):,.0f} tok/s" if t >= 100 else f"{sig(t, 3):g} tok/s"


def short_num(value: float, digits: int) -> str:
    v = sig(float(value), digits)
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:g}"


INTERVAL_FORMATS = {"power_w": lambda v: fmt_power(v), "itl_s": lambda v: fmt_itl(v),
                    "energy_per_token_j": lambda v: fmt_energy(v), "throughput_tok_s": lambda v: fmt_throughput(v)}


def best_interval_text(row: Mapping, column: str) -> str:
    """'80% interval a – b' for one ranked row, or '' without intervals."""
    lo, hi = row.get(f"{column}_lo", np.nan), row.get(f"{column}_hi", np.nan)
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return ""
    return f"80% interval {INTERVAL_FORMATS[column](lo)} – {INTERVAL_FORMATS[column](hi)}"


def num(value, spec: str) -> str:
    """A metric as text; missing or undefined values as an en dash."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if not np.isfinite(v) else format(v, spec)


def with_interval(value: float, lo: float, hi: float, fmt: str) -> str:
    text = format(value, fmt)
    if np.isfinite(lo) and np.isfinite(hi):
        text += f"  ({format(lo, fmt)} – {format(hi, fmt)})"
    return text
