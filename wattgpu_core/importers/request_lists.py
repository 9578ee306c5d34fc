"""Per-request lists (one value per request, in the same order): reading a list cell, and the paper's exact server
ITL from each request's time to first token, end-to-end latency and output tokens.

The canonical CSV carries them in :data:`REQUEST_LIST_COLUMNS` (``python -m wattgpu_core measure`` writes them),
the original Watt Counts subset and vLLM's detailed results in columns of their own.
"""

from __future__ import annotations

import json
import re

import numpy as np

# Optional per-request columns of the canonical CSV (JSON lists, one value per request, in the same order), as
# ``python -m wattgpu_core measure`` writes them: a server row's ITL is then computed exactly from them.
REQUEST_LIST_COLUMNS = ("ttft_s_list", "e2e_latency_s_list", "output_tokens_list")
_LIST_SPLIT = re.compile(r"[\s,]+")


def parse_list(value) -> np.ndarray | None:
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
