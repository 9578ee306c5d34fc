"""The WattGPU command line: build the store, load files, print statistics, train, evaluate and predict.

Every sub-command takes ``--db PATH`` (default ``$WATTGPU_DB`` or ``data/wattgpu.duckdb``), or ``--db
ducklake:postgres:<libpq string>`` with ``--data-path DIR`` (default ``$WATTGPU_DATA_PATH``). Exit status is 0 on
success, 2 when the input is rejected (the message says which row and column), 1 on other errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .backend import resolve
from .cli_byob import add_measure_command, add_pair_options, ingest_pair
from .cli_models import add_model_commands
from .cli_plan import add_plan_command
from .errors import UnknownNameError, ValidationError, WattGPUError
from .importers import canonical_template
from .ingest import ingest_path
from .plan_table import markdown_table
from .planning import load_model_set
from .ranking import rank_gpus, rankable_gpus
from .safety import write_csv
from .seed import build_seed_tables, write_seed
from .store import Store


def _add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=None, help="store file, or ducklake:postgres:<libpq connection string> "
                   "(default: $WATTGPU_DB or data/wattgpu.duckdb)")
    p.add_argument("--data-path", default=None, help="DuckLake only: folder of its Parquet files and shared models "
                   "(default: $WATTGPU_DATA_PATH)")


def _cmd_build_store(args) -> int:

    with Store.build(args.db) as store:
        stats = store.stats()
    print(f"built {stats['db']}: {stats['gpus']} GPUs, {stats['llms']} LLMs, {stats['runs']} runs "
          f"({', '.join(f'{k} {v}' for k, v in stats['runs_per_source'].items())})")
    return 0


def _cmd_build_seed(args) -> int:

    for path in write_seed(build_seed_tables()):
        print(f"wrote {path}")
    return 0


def _cmd_stats(args) -> int:

    with Store.open(args.db) as store:
        stats = store.stats()
    if args.json:
        print(json.dumps(stats, indent=2, sort_keys=True))
    else:
        for k, v in stats.items():
            print(f"{k}: {v}")
    return 0


def _cmd_ingest(args) -> int:

    if args.power_log is not None:

        return ingest_pair(args)
    with Store.open(args.db) as store:
        result = ingest_path(store, args.file, fmt=args.format, on_conflict=args.on_conflict)
        retries = store.conflict_retries
    if retries:
        print(f"note: retried {retries} time(s) after conflicts with other writers", file=sys.stderr)
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"{args.file}: {result.format}: {result.message}")
    return 0


def _cmd_remove(args) -> int:

    with Store.open(args.db) as store:
        removed = store.remove_batch(args.batch_id)
    print(f"removed batch {args.batch_id}: " + ", ".join(f"{v} {k}" for k, v in removed.items()))
    return 0


def _cmd_template(args) -> int:

    sys.stdout.write(canonical_template())
    return 0


def _cmd_rank(args) -> int:

    with Store.open(args.db) as store:
        gpus, llms = store.gpus(), store.llms()
    workload = {"scenario": args.scenario, "input_tokens": float(args.input_tokens),
                "output_tokens": float(args.output_tokens)}
    if args.scenario == "offline":
        workload["batch_size"] = float(args.batch_size)
    else:
        workload["request_rate_qps"] = float(args.rate_qps)
    ranked = rank_gpus(args.llm, workload, rankable_gpus(gpus)[0], llms, load_model_set(args.model_set))
    ranked["itl_ms"] = ranked["itl_s"] * 1000.0
    if args.csv:
        write_csv(ranked, args.csv)
    print(markdown_table(ranked, ("rank", "gpu_id", "energy_per_token_j", "itl_ms", "power_w", "throughput_tok_s",
                                  "saturated", "fits")))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m wattgpu_core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build-store", help="(re)create the store from the seed data in data/seed")
    _add_db(p)
    p.set_defaults(func=_cmd_build_store)

    p = sub.add_parser("build-seed", help="rebuild data/seed from the raw source files in data/raw")
    p.set_defaults(func=_cmd_build_seed)

    p = sub.add_parser("stats", help="print what the store holds")
    _add_db(p)
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(func=_cmd_stats)

    p = sub.add_parser("ingest", help="validate and load one benchmark file (all or nothing)")
    _add_db(p)
    p.add_argument("file", type=Path)
    p.add_argument("--format", default=None, help="skip detection (canonical, wattcounts_subset, ...)")
    p.add_argument("--on-conflict", choices=("refuse", "replace", "skip"), default="refuse",
                   help="a re-sent run (same natural key) whose measured values differ from the stored ones: refuse "
                        "the file (default), replace the stored values, or skip it and keep them")

    add_pair_options(p)
    p.set_defaults(func=_cmd_ingest)

    p = sub.add_parser("remove-batch", help="undo one upload (see stats / the Data page for batch ids)")
    _add_db(p)
    p.add_argument("batch_id")
    p.set_defaults(func=_cmd_remove)

    p = sub.add_parser("template", help="print the canonical CSV template")
    p.set_defaults(func=_cmd_template)

    p = sub.add_parser("rank", help="rank every GPU for one LLM and workload by predicted energy per token (the "
                       "ranking of Compare GPUs)")
    _add_db(p)
    p.add_argument("--llm", required=True, help="LLM: Hugging Face id or catalog alias")
    p.add_argument("--scenario", choices=("offline", "server"), default="offline")
    p.add_argument("--batch-size", type=int, default=256, help="offline batch size (default 256)")
    p.add_argument("--rate-qps", type=float, default=0.33, help="server request rate, requests/s (default 0.33)")
    p.add_argument("--input-tokens", type=int, default=14, help="mean prompt tokens per request (default 14)")
    p.add_argument("--output-tokens", type=int, default=220, help="mean output tokens per request (default 220)")
    p.add_argument("--model-set", default="default", choices=("default", "plus", "paper"))
    p.add_argument("--csv", type=Path, default=None, help="also write every column of the ranking to this CSV")
    p.set_defaults(func=_cmd_rank)


    add_model_commands(sub, _add_db)
    add_measure_command(sub, _add_db)
    add_plan_command(sub, _add_db)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if "db" in args:  # one Backend value from here on: the store module alone knows which kind it is

            args.db = resolve(args.db, args.data_path)
        return int(args.func(args) or 0)
    except ValidationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        for issue in exc.issues[1:10]:
            print(f"  also: {issue}", file=sys.stderr)
        return 2
    except UnknownNameError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except WattGPUError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
