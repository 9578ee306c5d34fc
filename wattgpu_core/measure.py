"""Measure a serving endpoint: drive an OpenAI-compatible server with a workload, time every streamed token, sample
GPU power during the run, and write one canonical CSV row that ``ingest`` accepts as is.

The workload (:class:`Workload`) is a number of requests with a prompt and an output length, sent at a request
rate (Poisson arrivals, seeded) and/or with at most ``max_concurrency`` in flight, after a few warm-up requests that
are not measured. Each request streams ``/v1/completions`` (server-sent events, ``stream_options.include_usage``)
and records TTFT (first non-empty text chunk), end-to-end latency (stream closed) and output tokens (the server's
``usage.completion_tokens``, else the number of text chunks). The measured window runs from the first measured
request sent to the last one finished; power readings of each GPU inside it give ``power_w``.

Power comes from NVML through ``nvidia-ml-py`` (``pynvml``), imported only when ``measure`` runs: it is one small
pure-Python file (zeus reads NVML through it too, but brings pydantic, rich, httpx and amdsmi), and it is an
optional install (``requirements-measure.txt``), not a dependency of the app. Tests inject their own power source.
HTTP uses only the standard library (``http.client`` and threads).

The CSV is the canonical format with three optional per-request columns (JSON lists: ``ttft_s_list``,
``e2e_latency_s_list``, ``output_tokens_list``) from which ingest computes the paper's exact server ITL.
"""

from __future__ import annotations

import csv
import http.client
import io
import json
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit

import numpy as np

from .errors import WattGPUError
from .importers.request_lists import REQUEST_LIST_COLUMNS, server_itl_from_lists

SOURCE_ID = "wattgpu_measure"
# While requests stream, Python switches threads every 0.5 ms instead of 5 ms, so the thread that received a token
# stamps it within about a millisecond even with many requests in flight.
_SWITCH_INTERVAL_S = 0.0005
_WORDS = ("energy", "token", "model", "power", "latency", "cache", "batch", "layer", "tensor", "memory", "value",
          "graph", "kernel", "stream", "signal", "answer", "river", "market", "garden", "planet")


class MeasureError(WattGPUError):
    """The measurement cannot run (no GPU, no endpoint, failed requests)."""


@dataclass(frozen=True)
class Workload:
    num_requests: int
    input_tokens: int = 128
    output_tokens: int = 128
    request_rate_qps: float | None = None  # None: send as fast as max_concurrency allows
    max_concurrency: int | None = None
    warmup_requests: int = 2
    seed: int = 0

    def __post_init__(self):
        for name in ("num_requests", "input_tokens", "output_tokens"):
            if getattr(self, name) < 1:
                raise MeasureError(f"{name} must be at least 1")
        if self.request_rate_qps is not None and not self.request_rate_qps > 0:
            raise MeasureError("request_rate_qps must be positive")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise MeasureError("max_concurrency must be at least 1")
        if self.warmup_requests < 0:
            raise MeasureError("warmup_requests must not be negative")

    @property
    def scenario(self) -> str:
        """Every request at once with no cap is a batch (offline); anything paced is a server run."""
        return "offline" if self.request_rate_qps is None and self.max_concurrency is None else "server"


@dataclass(frozen=True)
class RequestTiming:
    start_s: float  # perf_counter when the request was sent
    ttft_s: float
    e2e_s: float
    output_tokens: int
    prompt_tokens: int | None
    error: str | None = None


class PowerSource(Protocol):
    """Where power readings come from: NVML on a real machine, a stand-in in tests."""

    def gpu_names(self) -> dict[int, str]: ...

    def read_power_w(self) -> dict[int, float]: ...

    def close(self) -> None: ...


class NvmlPowerSource:
    """GPU power through NVML (``nvidia-ml-py``); ``gpu_indices`` None means every GPU NVML sees."""

    def __init__(self, gpu_indices: list[int] | None = None):
        try:
            import pynvml  # lazy: optional: nvidia-ml-py is installed only with the measure extra
        except ImportError:
            raise MeasureError("measure reads GPU power through NVML: install nvidia-ml-py "
                               "(pip install -r requirements-measure.txt)") from None
        self._nvml = pynvml
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as exc:
            raise MeasureError(f"no NVIDIA GPU reachable through NVML ({exc}); run measure on the GPU machine "
                               "that serves the model") from None
        if count == 0:
            raise MeasureError("NVML sees no GPU; run measure on the GPU machine that serves the model")
        indices = list(range(count)) if gpu_indices is None else list(gpu_indices)
        bad = [i for i in indices if not 0 <= i < count]
        if bad:
            raise MeasureError(f"GPU index {bad[0]} does not exist (NVML sees {count} GPU(s))")
        self._handles = {i: pynvml.nvmlDeviceGetHandleByIndex(i) for i in indices}

    def gpu_names(self) -> dict[int, str]:
        out = {}
        for i, h in self._handles.items():
            name = self._nvml.nvmlDeviceGetName(h)
            out[i] = name.decode() if isinstance(name, bytes) else str(name)
        return out

    def read_power_w(self) -> dict[int, float]:
        return {i: self._nvml.nvmlDeviceGetPowerUsage(h) / 1000.0 for i, h in self._handles.items()}  # mW -> W

    def close(self) -> None:
        self._nvml.nvmlShutdown()


class PowerSampler:
    """Reads a power source every ``interval_s`` on a thread; ``samples`` holds (perf_counter, {gpu: W})."""

    def __init__(self, source: PowerSource, interval_s: float = 0.1):
        self.source, self.interval_s = source, interval_s
        self.samples: list[tuple[float, dict[int, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="wattgpu-power", daemon=True)

    def _loop(self) -> None:
        next_t = time.perf_counter()
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), self.source.read_power_w()))
            next_t += self.interval_s
            self._stop.wait(max(0.0, next_t - time.perf_counter()))

    def __enter__(self) -> PowerSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def window_means(self, start: float, end: float) -> dict[int, tuple[int, float]]:
        """(readings, mean W) of each GPU inside [start, end]."""
        inside = [p for t, p in self.samples if start <= t <= end]
        gpus = sorted({g for p in inside for g in p})
        return {g: (len([p for p in inside if g in p]), float(np.mean([p[g] for p in inside if g in p])))
                for g in gpus}


# ----------------------------------------------------------------------------------------------------------------
# The endpoint
class Endpoint:
    """An OpenAI-compatible server at ``base_url`` (http://host:port, with or without /v1)."""

    def __init__(self, base_url: str, timeout_s: float = 600.0):
        parts = urlsplit(base_url if "://" in base_url else "http://" + base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise MeasureError(f"not an http(s) URL: {base_url!r}")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.root = parts.path.rstrip("/").removesuffix("/v1")
        self.timeout_s = timeout_s
        self.url = f"{parts.scheme}://{parts.netloc}{self.root}"

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=timeout)

    def get_json(self, path: str, timeout: float = 5.0):
        """The JSON body of GET path, or None when the server answers with an error status."""
        conn = self._connection(timeout)
        try:
            conn.request("GET", self.root + path, headers={"Accept": "application/json"})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                return None
            try:
                return json.loads(body)
            except ValueError:
                return None
        finally:
            conn.close()

    def models(self) -> list[str]:
        try:
            answer = self.get_json("/v1/models")
        except OSError as exc:
            raise MeasureError(f"no OpenAI-compatible endpoint reachable at {self.url} ({exc}); start the server "
                               "(e.g. vllm serve MODEL) or pass its --url") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
            raise MeasureError(f"{self.url}/v1/models did not answer like an OpenAI-compatible server")
        return [str(m.get("id")) for m in answer["data"] if isinstance(m, dict) and m.get("id")]

    def framework(self) -> tuple[str | None, str | None]:
        """(framework, version) as the server reports them: TGI /info, SGLang /get_server_info, vLLM /version."""
        probes = (("/info", "TGI", lambda a: "model_id" in a and "version" in a),
                  ("/get_server_info", "SGLang", lambda a: "version" in a),
                  ("/version", "vLLM", lambda a: "version" in a))
        for path, name, looks in probes:
            try:
                answer = self.get_json(path)
            except OSError:
                continue
            if isinstance(answer, dict) and looks(answer):
                return name, str(answer["version"])
        return None, None

    def stream_completion(self, model: str, prompt: str, max_tokens: int, ignore_eos: bool = True) -> RequestTiming:
        body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0, "stream": True,
                "stream_options": {"include_usage": True}}
        if ignore_eos:
            body["ignore_eos"] = True
        payload = json.dumps(body).encode()
        conn = self._connection(self.timeout_s)
        start = time.perf_counter()
        first = None
        chunks = 0
        usage = None
        try:
            conn.request("POST", self.root + "/v1/completions", body=payload,
                         headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
            resp = conn.getresponse()
            if resp.status != 200:
                text = resp.read()[:200].decode(errors="replace")
                return RequestTiming(start, float("nan"), float("nan"), 0, None, f"HTTP {resp.status}: {text}")
            while True:
                line = resp.readline()
                if not line:
                    break
                line = line.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    break
                event = json.loads(data)
                if event.get("usage"):
                    usage = event["usage"]
                choices = event.get("choices") or []
                if choices and choices[0].get("text"):
                    now = time.perf_counter()
                    if first is None:
                        first = now
                    chunks += 1
            end = time.perf_counter()
        except (OSError, ValueError, http.client.HTTPException) as exc:
            return RequestTiming(start, float("nan"), float("nan"), 0, None, f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()
        if first is None:
            return RequestTiming(start, float("nan"), end - start, 0, None, "the stream held no text")
        tokens = int(usage.get("completion_tokens") or chunks) if usage else chunks
        prompt_tokens = int(usage["prompt_tokens"]) if usage and usage.get("prompt_tokens") is not None else None
        return RequestTiming(start, first - start, end - start, tokens, prompt_tokens)


# ----------------------------------------------------------------------------------------------------------------
# Running a workload
@dataclass(frozen=True)
class Measurement:
    """One measured run: the canonical row (``row``) and what it was computed from."""

    row: dict
    timings: tuple[RequestTiming, ...]
    per_gpu: dict[int, tuple[int, float]] = field(default_factory=dict)  # gpu -> (readings, mean W)


def make_prompts(workload: Workload) -> list[str]:
    """One prompt per request (and warm-up), about ``input_tokens`` words, each different so that no prefix cache
    serves one from another."""
    rng = random.Random(workload.seed)
    n = workload.num_requests + workload.warmup_requests
    return [f"Request {i}: " + " ".join(rng.choice(_WORDS) for _ in range(max(workload.input_tokens - 3, 1)))
            for i in range(n)]


def run_workload(endpoint: Endpoint, model: str, workload: Workload, sampler: PowerSampler,
                 ignore_eos: bool = True) -> tuple[list[RequestTiming], float, float]:
    """Warm up, then send the measured requests; (timings in send order, window start, window end)."""
    prompts = make_prompts(workload)
    for p in prompts[: workload.warmup_requests]:
        t = endpoint.stream_completion(model, p, workload.output_tokens, ignore_eos)
        if t.error:
            raise MeasureError(f"warm-up request failed: {t.error}")
    measured = prompts[workload.warmup_requests:]
    rng = random.Random(workload.seed + 1)
    gaps = ([rng.expovariate(workload.request_rate_qps) for _ in measured] if workload.request_rate_qps
            else [0.0] * len(measured))
    limit = threading.BoundedSemaphore(workload.max_concurrency or len(measured))
    results: list[RequestTiming | None] = [None] * len(measured)

    def one(i: int, prompt: str) -> None:
        try:
            results[i] = endpoint.stream_completion(model, prompt, workload.output_tokens, ignore_eos)
        finally:
            limit.release()

    switch = sys.getswitchinterval()
    sys.setswitchinterval(_SWITCH_INTERVAL_S)  # a thread that received a token gets the GIL sooner to stamp it
    try:
        start, end = _send(measured, gaps, limit, one, sampler, results)
    finally:
        sys.setswitchinterval(switch)
    return [t for t in results if t is not None], start, end


def _send(measured, gaps, limit, one, sampler, results) -> tuple[float, float]:
    """Send the requests on schedule while the sampler runs; (window start, window end)."""
    threads = []
    with sampler:
        start = time.perf_counter()
        due = start
        for i, prompt in enumerate(measured):
            if i:
                due += gaps[i]
                time.sleep(max(0.0, due - time.perf_counter()))
            limit.acquire()
            th = threading.Thread(target=one, args=(i, prompt), name=f"wattgpu-request-{i}", daemon=True)
            th.start()
            threads.append(th)
        for th in threads:
            th.join()
        end = max(t.start_s + t.e2e_s for t in results if t is not None and np.isfinite(t.e2e_s)) \
            if any(t is not None and np.isfinite(t.e2e_s) for t in results) else time.perf_counter()
        time.sleep(sampler.interval_s)  # one more reading after the end
    return start, end


def measure(endpoint: Endpoint, workload: Workload, power: PowerSource, *, model: str | None = None,
            llm: str | None = None, gpu: str | None = None, framework: str | None = None,
            framework_version: str | None = None, interval_s: float = 0.1, min_samples: int = 3,
            ignore_eos: bool = True, notes: str | None = None) -> Measurement:
    """Run the workload against the endpoint while sampling power; refuses when requests fail or the run is too
    short for the sampling interval."""
    models = endpoint.models()
    if model is None:
        if not models:
            raise MeasureError(f"{endpoint.url}/v1/models lists no model; pass --model")
        model = models[0]
    names = power.gpu_names()
    distinct = sorted(set(names.values()))
    if gpu is None and len(distinct) > 1:
        raise MeasureError("the GPUs are of different models (" + ", ".join(distinct) + "); pick the serving GPUs "
                           "with --gpu-indices")
    fw, fw_version = endpoint.framework()
    started_utc = datetime.now(UTC)
    sampler = PowerSampler(power, interval_s)
    timings, start, end = run_workload(endpoint, model, workload, sampler, ignore_eos)
    failed = [t for t in timings if t.error]
    if failed:
        raise MeasureError(f"{len(failed)} of {len(timings)} requests failed (first: {failed[0].error}); "
                           "nothing was written")
    duration = end - start
    per_gpu = sampler.window_means(start, end)
    few = {g: n for g, (n, _) in per_gpu.items() if n < min_samples}
    if not per_gpu or few:
        raise MeasureError(f"only {min(few.values()) if few else 0} power reading(s) inside the {duration:.2f} s run; "
                           f"at least {min_samples} are needed: send more requests or sample more often")
    ttft = [t.ttft_s for t in timings]
    e2e = [t.e2e_s for t in timings]
    tokens = [t.output_tokens for t in timings]
    prompt_tokens = [t.prompt_tokens for t in timings if t.prompt_tokens is not None]
    power_w = float(np.mean([w for _, w in per_gpu.values()]))
    n_gpus = len(per_gpu)
    total = int(sum(tokens))
    offline = workload.scenario == "offline"
    itl = duration / total if offline else server_itl_from_lists(ttft, e2e, tokens)
    energy = power_w * n_gpus * duration
    row = {
        "llm": llm or model, "gpu": gpu or distinct[0], "scenario": workload.scenario,
        "batch_size": workload.num_requests if offline else None,
        "max_concurrency": workload.max_concurrency, "request_rate_qps": workload.request_rate_qps,
        "input_tokens": float(np.mean(prompt_tokens)) if prompt_tokens else workload.input_tokens,
        "output_tokens": float(np.mean(tokens)), "num_requests": len(timings),
        "framework": framework or fw, "framework_version": framework_version or fw_version,
        "num_gpus": n_gpus, "power_w": power_w, "itl_s": itl,
        "itl_definition": "offline_duration_per_token" if offline else "server_decode_per_request",
        "energy_per_token_j": energy / total if total else None, "throughput_tok_s": total / duration,
        "ttft_s": float(np.mean(ttft)), "e2e_latency_s": float(np.mean(e2e)), "duration_s": duration,
        "gpu_energy_j": energy, "output_tokens_total": total, "source_id": SOURCE_ID,
        "campaign": f"measure {started_utc:%Y-%m-%dT%H:%M:%S}Z",
        "notes": "; ".join(x for x in (
            f"measured by wattgpu_core measure at {endpoint.url}, model {model}, "
            f"{workload.warmup_requests} warm-up request(s), power: {sum(n for n, _ in per_gpu.values())} readings "
            f"every {interval_s * 1000:.0f} ms of GPU(s) {', '.join(map(str, sorted(per_gpu)))}",
            None if prompt_tokens else "input_tokens: words requested (the server reported no usage)", notes) if x),
        **dict(zip(REQUEST_LIST_COLUMNS, (json.dumps([round(x, 6) for x in ttft]),
                                          json.dumps([round(x, 6) for x in e2e]), json.dumps(tokens)), strict=True)),
    }
    return Measurement(row, tuple(timings), per_gpu)


def to_csv(measurement: Measurement) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(measurement.row), lineterminator="\n")
    writer.writeheader()
    writer.writerow({k: ("" if v is None else v) for k, v in measurement.row.items()})
    return buf.getvalue()
