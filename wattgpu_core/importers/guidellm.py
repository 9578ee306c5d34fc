"""GuideLLM reports: the ``benchmarks.json`` that ``guidellm benchmark run --outputs json`` writes (GuideLLM 0.8.1
checked, report schema ``metadata.version`` 2), one run per benchmarked strategy or rate.

Per benchmark (``benchmarks[i]``): the window is ``start_time`` and ``end_time`` (epoch seconds, the measured part
without warm-up and cool-down; the same values as ``scheduler_metrics.measure_start_time`` / ``measure_end_time``),
the workload is ``config.strategy`` (``type_`` synchronous, concurrent with ``streams``, throughput, constant or
poisson with ``rate`` and optional ``max_concurrency``), the model ``config.backend.model`` (else the report's
``config.backend.model``). Metrics are distributions with ``successful`` / ``errored`` / ``incomplete`` /
``total`` parts, each with ``mean``, ``count`` and ``total_sum``; the successful requests' values are read:
``metrics.request_totals.successful``, ``prompt_token_count`` and ``output_token_count`` (tokens),
``time_to_first_token_ms``, ``inter_token_latency_ms`` (ms), ``request_latency`` (s).

GuideLLM's ITL is per request (last token - first token) / (output tokens - 1), averaged with each request weighted
by its output tokens - 1, so it is stored as ``reported`` with a note (the paper's server ITL weighs requests
equally). A ``throughput`` strategy (everything at once) is an offline run: ITL is duration / output tokens.
"""

from __future__ import annotations

import math

import pandas as pd

from .bench_results import BenchRun, Fields, plain
from .issues import Issues, reject
from .sniff import GUIDELLM_FORMAT

FORMAT = GUIDELLM_FORMAT
DESCRIPTION = "GuideLLM report JSON (benchmarks.json, one run per rate), with a power log"
_STRATEGIES = ("synchronous", "concurrent", "throughput", "constant", "poisson")


def read_runs(report: dict, llm: str | None = None) -> list[BenchRun]:
    """One BenchRun per benchmark of the report; raises ValidationError naming benchmark (row) and field."""
    benchmarks = report["benchmarks"]
    if not benchmarks:
        raise reject("the GuideLLM report holds no benchmarks", column="benchmarks")
    issues = Issues()
    top = Fields(report, 0, issues)
    version = top.text("metadata.guidellm_version")
    runs = []
    for row, bench in enumerate(benchmarks, start=1):
        if not isinstance(bench, dict):
            issues.add(row, f"benchmarks[{row - 1}]", "expected a benchmark object")
            continue
        f = Fields(bench, row, issues, prefix=f"benchmarks[{row - 1}].")
        start = f.number("start_time", positive=True)
        end = f.number("end_time", positive=True)
        if math.isnan(start) or math.isnan(end):
            start = f.number("scheduler_metrics.measure_start_time", required=True, positive=True)
            end = f.number("scheduler_metrics.measure_end_time", required=True, positive=True)
        model = llm or f.text("config.backend.model") or top.text("config.backend.model")
        if model is None:
            issues.add(row, f.name("config.backend.model"), "is missing (pass the LLM with --llm)")
        strategy = f.text("config.strategy.type_", required=True)
        if strategy is not None and strategy not in _STRATEGIES:
            issues.add(row, f.name("config.strategy.type_"), f"strategy {strategy!r} is not one of "
                                                             f"{', '.join(_STRATEGIES)}")
        rate = f.number("config.strategy.rate", positive=True)
        streams = f.number("config.strategy.streams", positive=True)
        cap = f.number("config.strategy.max_concurrency", positive=True)
        m = "metrics."
        n_ok = f.number(m + "request_totals.successful", required=True, positive=True)
        prompt = f.number(m + "prompt_token_count.successful.mean", non_negative=True)
        out_mean = f.number(m + "output_token_count.successful.mean", required=True, non_negative=True)
        out_total = f.number(m + "output_token_count.successful.total_sum", non_negative=True)
        ttft_ms = f.number(m + "time_to_first_token_ms.successful.mean", non_negative=True)
        itl_ms = f.number(m + "inter_token_latency_ms.successful.mean", non_negative=True)
        e2e_s = f.number(m + "request_latency.successful.mean", non_negative=True)
        if any(math.isnan(x) for x in (start, end, n_ok, out_mean)) or model is None or strategy not in _STRATEGIES:
            continue
        if not end > start:
            issues.add(row, f.name("end_time"), "the benchmark ends before it starts")
            continue
        duration = end - start
        if math.isnan(out_total):
            out_total = out_mean * n_ok
        offline = strategy == "throughput"
        concurrency = {"synchronous": 1.0, "concurrent": streams}.get(strategy, cap)
        if not offline and math.isnan(itl_ms):
            issues.add(row, f.name(m + "inter_token_latency_ms.successful.mean"), "is missing: a server run needs "
                                                                                 "its inter-token latency")
            continue
        columns = {
            "llm_name_raw": model, "scenario": "offline" if offline else "server",
            "request_rate_qps": rate if strategy in ("constant", "poisson") else math.nan,
            "max_concurrency": concurrency, "batch_size": cap if offline else math.nan,
            "input_tokens": prompt, "output_tokens": out_mean, "num_requests": n_ok,
            "itl_s": duration / out_total if offline and out_total > 0 else itl_ms / 1000.0,
            "itl_definition": "offline_duration_per_token" if offline else "reported",
            "throughput_tok_s": out_total / duration, "ttft_s": ttft_ms / 1000.0, "e2e_latency_s": e2e_s,
            "duration_s": duration, "output_tokens_total": out_total,
            "notes": None if offline else "ITL: GuideLLM inter_token_latency_ms, requests weighted by output tokens - 1",
        }
        load = {"constant": f"rate={plain(rate)}", "poisson": f"poisson={plain(rate)}",
                "concurrent": f"streams={plain(streams)}"}.get(strategy, strategy)
        stamp = pd.Timestamp(start, unit="s").strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        key = f"guidellm {stamp}Z {load}" + (f" (GuideLLM {version})" if version else "")
        fields = {"power_w": f.name("start_time"), "itl_s": f.name(m + "inter_token_latency_ms"),
                  "llm_id": f.name("config.backend.model"), "llm_name_raw": f.name("config.backend.model"),
                  "gpu_id": "--gpu", "gpu_name_raw": "--gpu", "ttft_s": f.name(m + "time_to_first_token_ms"),
                  "num_requests": f.name(m + "request_totals.successful")}
        runs.append(BenchRun(row, columns, start, end, "utc", key, fields))
    issues.raise_if_any()
    return runs
