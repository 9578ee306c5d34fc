"""Command-line parts for bringing your own benchmarks: ``ingest RESULT.json --power-log POWER.csv`` and
``measure`` (kept here so that cli.py only wires them in)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from .errors import Issue, ValidationError
from .importers.pair import ingest_pair as write_pair
from .importers.pair import parse_gpu_indices, validate_pair
from .importers.powerlog import DEFAULT_MIN_SAMPLES
from .ingest import ingest_path
from .measure import Endpoint, NvmlPowerSource, Workload, measure, to_csv
from .store import Store


def _indices(text: str) -> list[int] | None:
    try:
        return parse_gpu_indices(text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(exc.issues[0].message) from None


def add_pair_options(p: argparse.ArgumentParser) -> None:
    """Options of ``ingest`` for a benchmark result paired with a power log."""
    g = p.add_argument_group("a vLLM or GuideLLM result with its power log")
    g.add_argument("--power-log", type=Path, default=None, help="GPU power log of the same run (nvidia-smi CSV, "
                   "DCGM scrapes or zeus log); FILE is then the vLLM or GuideLLM result JSON")
    g.add_argument("--gpu", default=None, help="GPU name, where the power log does not name it (zeus) or to override")
    g.add_argument("--llm", default=None, help="LLM (Hugging Face id), to override the result file's model")
    g.add_argument("--gpu-indices", type=_indices, default=None, help="GPUs of the log that served the model "
                   "(default: all in the log), e.g. 0,1")
    g.add_argument("--utc-offset", type=float, default=None, help="hours the benchmark machine's local clock is "
                   "ahead of UTC, where one file has local times and the other UTC (default 0)")
    g.add_argument("--min-samples", type=int, default=None, help="power readings needed inside each run's window "
                   "(default 5)")


def ingest_pair(args) -> int:
    files = []
    for path in (args.file, args.power_log):
        if not path.is_file():
            raise ValidationError([Issue(0, "", f"no such file: {path}")])
        files.append((path.name, path.read_bytes()))
    with Store.open(args.db) as store:
        paired = validate_pair(store, files[0], files[1], gpu=args.gpu, llm=args.llm, gpu_indices=args.gpu_indices,
                               utc_offset_h=args.utc_offset, min_samples=args.min_samples or DEFAULT_MIN_SAMPLES)
        result = write_pair(store, paired)
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for _, w in paired.windows.iterrows():
        print(f"  run {w['Run']} ({w['Run key']}): {w['Window start']} – {w['Window end']}, GPU {w['GPU index']} "
              f"{w['GPU']}: {w['Readings']} readings, mean {w['Mean power (W)']:.1f} W")
    print(f"{args.file} + {args.power_log}: {result.format}: {result.message}")
    return 0


def add_measure_command(sub, add_db) -> None:
    p = sub.add_parser("measure", help="drive an OpenAI-compatible endpoint, sample GPU power (NVML), write a "
                                       "canonical CSV that ingest accepts")
    add_db(p)
    p.add_argument("--url", default="http://localhost:8000", help="server base URL (default http://localhost:8000)")
    p.add_argument("--model", default=None, help="model name to request (default: the first of /v1/models)")
    p.add_argument("--llm", default=None, help="LLM to record (Hugging Face id; default: the model name)")
    p.add_argument("--gpu", default=None, help="GPU name to record (default: as NVML reports it)")
    p.add_argument("--gpu-indices", type=_indices, default=None, help="GPUs serving the model (default: all)")
    p.add_argument("--rate", type=float, default=None, help="request rate, requests/s (Poisson arrivals)")
    p.add_argument("--concurrency", type=int, default=None, help="at most this many requests in flight")
    p.add_argument("--num-requests", type=int, default=100, help="measured requests (default 100)")
    p.add_argument("--input-tokens", type=int, default=128, help="prompt length, about this many tokens")
    p.add_argument("--output-tokens", type=int, default=128, help="tokens to generate per request (max_tokens)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up requests, not measured (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--interval-ms", type=float, default=100.0, help="power sampling interval (default 100 ms)")
    p.add_argument("--framework", default=None, help="serving framework to record (default: asked from the server)")
    p.add_argument("--framework-version", default=None)
    p.add_argument("--no-ignore-eos", action="store_true", help="do not send ignore_eos (servers that reject it)")
    p.add_argument("--timeout", type=float, default=600.0, help="per-request timeout, s")
    p.add_argument("--out", type=Path, default=None, help="CSV to write (default measure-<UTC time>.csv)")
    p.add_argument("--ingest", action="store_true", help="also ingest the CSV into the store (--db)")
    p.set_defaults(func=_cmd_measure)


def _cmd_measure(args) -> int:
    workload = Workload(args.num_requests, args.input_tokens, args.output_tokens, args.rate, args.concurrency,
                        args.warmup, args.seed)
    power = NvmlPowerSource(args.gpu_indices)  # refuses first when no GPU is reachable
    try:
        result = measure(Endpoint(args.url, args.timeout), workload, power, model=args.model, llm=args.llm,
                         gpu=args.gpu, framework=args.framework, framework_version=args.framework_version,
                         interval_s=args.interval_ms / 1000.0, ignore_eos=not args.no_ignore_eos)
    finally:
        power.close()
    out = args.out or Path(f"measure-{datetime.now(UTC):%Y%m%dT%H%M%S}.csv")
    out.write_text(to_csv(result))
    r = result.row
    print(f"wrote {out}: {r['llm']} on {r['num_gpus']} x {r['gpu']} ({r['framework'] or 'framework unknown'} "
          f"{r['framework_version'] or ''}), {r['num_requests']} requests in {r['duration_s']:.1f} s: "
          f"{r['power_w']:.1f} W per GPU, ITL {r['itl_s'] * 1000:.2f} ms, TTFT {r['ttft_s'] * 1000:.1f} ms")
    if args.ingest:
        with Store.open(args.db) as store:
            print(f"{out}: {ingest_path(store, out).message}")
    return 0
