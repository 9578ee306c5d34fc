"""vLLM benchmark results: the JSON that ``vllm bench serve --save-result`` writes (vLLM 0.33.0 checked), and
the older ``benchmarks/benchmark_serving.py --save-result`` output, which has the same keys (without
``max_concurrency``, ``burstiness`` or ``mean_e2el_ms`` in early versions).

Fields read: ``date`` (``%Y%m%d-%H%M%S``, local time of the benchmark machine, taken with ``datetime.now()`` right
after the run), ``duration`` (s, the benchmark's wall time), ``model_id``, ``num_prompts``, ``request_rate``
(a number or ``"inf"``), ``max_concurrency``, ``completed``, ``total_input_tokens``, ``total_output_tokens``,
``output_throughput`` (tok/s), ``mean_ttft_ms``, ``mean_tpot_ms``, ``mean_e2el_ms`` and, with
``--save-detailed``, the per-request lists ``ttfts``, ``latencies`` (s) and ``output_lens``. ``--metadata KEY=VALUE``
pairs land at the top level; ``framework``, ``framework_version`` (or ``vllm_version``), ``tensor_parallel``,
``precision`` and ``gpu`` are read from there when present.

**The window.** vLLM stamps ``date`` after the run (truncated to the second) and writes ``duration``; the run is
taken to end half a second after the stamp and to start ``duration`` seconds before that (the stamp is at most a
second late; the power-log tolerance is at least 1 s). ``--append-result`` files (one JSON object per line) give
one run per line.

**Scenario and ITL.** A finite ``request_rate`` or a ``max_concurrency`` is a server run, whose ITL is
``mean_tpot_ms``: vLLM computes it per request as (latency - TTFT) / (output tokens - 1) over requests with more
than one token and averages the requests, which is the paper's exact server ITL (``server_decode_per_request``;
from the per-request lists when they are there). ``request_rate`` inf without ``max_concurrency`` sends every
request at once: an offline run, whose ITL is duration / output tokens.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np

from .bench_results import BenchRun, Fields, plain
from .issues import Issues
from .request_lists import server_itl_from_lists
from .sniff import VLLM_FORMAT, is_vllm_result

FORMAT = VLLM_FORMAT
DESCRIPTION = "vLLM benchmark result JSON (vllm bench serve --save-result; benchmark_serving.py), with a power log"
_DATE_FORMAT = "%Y%m%d-%H%M%S"
_EPOCH = datetime(1970, 1, 1)  # wall-clock stamps without zone count as if they were UTC (the "local" clock)


def read_runs(records: list, llm: str | None = None) -> list[BenchRun]:
    """One BenchRun per result object; raises ValidationError naming run (row) and field."""
    issues = Issues()
    runs = []
    for row, rec in enumerate(records, start=1):
        if not is_vllm_result(rec):
            issues.add(row, "", "not a vLLM result object (needs date, duration, completed, total_output_tokens)")
            continue
        f = Fields(rec, row, issues)
        date = f.text("date", required=True)
        end = None
        if date is not None:
            try:
                end = (datetime.strptime(date, _DATE_FORMAT) - _EPOCH).total_seconds() + 0.5
            except ValueError:
                issues.add(row, "date", f"expected a stamp like 20250904-131556 (%Y%m%d-%H%M%S), found {date[:40]!r}")
        duration = f.number("duration", required=True, positive=True)
        completed = f.number("completed", required=True, positive=True)
        out_total = f.number("total_output_tokens", required=True, non_negative=True)
        in_total = f.number("total_input_tokens", non_negative=True)
        rate = f.number("request_rate", allow_inf=True, positive=True)
        concurrency = f.number("max_concurrency", positive=True)
        num_prompts = f.number("num_prompts", positive=True)
        model = llm or f.text("model_id", required=True)
        ttft_ms = f.number("mean_ttft_ms", non_negative=True)
        tpot_ms = f.number("mean_tpot_ms", non_negative=True)
        e2e_ms = f.number("mean_e2el_ms", non_negative=True)
        tput = f.number("output_throughput", non_negative=True)
        tp = _metadata_number(f, "tensor_parallel")
        lists = [f.number_list(k) for k in ("ttfts", "latencies", "output_lens")]
        if end is None or any(math.isnan(x) for x in (duration, completed, out_total)) or model is None:
            continue
        offline = math.isinf(rate) and math.isnan(concurrency)
        itl = tpot_ms / 1000.0
        itl_field = "mean_tpot_ms"
        if all(v is not None for v in lists):
            if len({len(v) for v in lists}) != 1:
                issues.add(row, "output_lens", "the per-request lists ttfts, latencies and output_lens differ in "
                                               "length; they must hold one value per request")
                continue
            itl = server_itl_from_lists(lists[0], lists[1], lists[2])
            itl_field = "latencies"
        if offline:
            itl, itl_field = (duration / out_total if out_total > 0 else math.nan), "duration"
        if not offline and out_total > 0 and math.isnan(itl):
            issues.add(row, "mean_tpot_ms", "is missing: a server run needs its time per output token")
            continue
        columns = {
            "llm_name_raw": model, "scenario": "offline" if offline else "server",
            "request_rate_qps": rate if math.isfinite(rate) else math.nan, "max_concurrency": concurrency,
            "batch_size": completed if offline else math.nan,
            "input_tokens": in_total / completed, "output_tokens": out_total / completed,
            "num_requests": completed,
            "framework": f.text("framework") or "vLLM",
            "framework_version": f.text("framework_version") or f.text("vllm_version"),
            "precision": f.text("precision"), "tensor_parallel": tp,
            "itl_s": itl, "itl_definition": "offline_duration_per_token" if offline else "server_decode_per_request",
            "throughput_tok_s": tput if not math.isnan(tput) else out_total / duration,
            "ttft_s": ttft_ms / 1000.0, "e2e_latency_s": e2e_ms / 1000.0, "duration_s": duration,
            "output_tokens_total": out_total,
        }
        gpu = f.text("gpu")
        if gpu:
            columns["gpu_name_raw"] = gpu
        key = (f"vllm-bench {date} rate={plain(rate) if not math.isnan(rate) else 'inf'} "
               f"concurrency={plain(concurrency) if not math.isnan(concurrency) else '-'} "
               f"prompts={plain(num_prompts) if not math.isnan(num_prompts) else plain(completed)}")
        fields = {"power_w": "duration", "itl_s": itl_field, "ttft_s": "mean_ttft_ms", "e2e_latency_s": "mean_e2el_ms",
                  "llm_id": "model_id", "llm_name_raw": "model_id", "gpu_id": "gpu", "gpu_name_raw": "gpu",
                  "duration_s": "duration", "output_tokens_total": "total_output_tokens",
                  "throughput_tok_s": "output_throughput", "request_rate_qps": "request_rate",
                  "num_requests": "completed", "max_concurrency": "max_concurrency"}
        runs.append(BenchRun(row, columns, end - duration, end, "local", key, fields))
    issues.raise_if_any()
    return runs


def _metadata_number(f: Fields, path: str) -> float:
    """A --metadata value (text, or a number where the file was written by hand) as a positive number."""
    if isinstance(f.get(path), (int, float)):
        return f.number(path, positive=True)
    text = f.text(path)
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        f.issues.add(f.row, path, f"expected a number, found {text[:40]!r}")
        return math.nan
    return value if np.isfinite(value) and value > 0 else math.nan
