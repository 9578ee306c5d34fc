"""The ``plan`` sub-command: rank deployment options (GPU x GPUs per replica x precision) for one LLM and traffic.

Prints the best options as a table and writes every option as JSON (``--json``) or CSV (``--csv``), one record per
option with the keys of :data:`wattgpu_core.deploy.PLAN_COLUMNS`. Unknown LLM, GPU or region names exit 2 with a
message naming the value (see ``cli.main``).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from .catalog import GpuResolver
from .deploy import Costs, Traffic, plan_deployments
from .errors import Issue, UnknownNameError, ValidationError
from .plan_table import plan_text_table
from .planning_data import load_planning_defaults
from .safety import csv_bytes
from .store import Store

SHOWN = 20  # options printed; the files hold all of them


def _price(text: str) -> tuple[str, float]:
    name, sep, value = text.rpartition("=")
    try:
        price = float(value)
    except ValueError:
        price = math.nan
    if not sep or not name.strip() or not math.isfinite(price) or price < 0:
        raise argparse.ArgumentTypeError(f"--gpu-price needs NAME=USD_PER_GPU_HOUR, found {text!r}")
    return name.strip(), price


def _records(frame) -> list[dict]:
    """JSON records: NaN becomes null, numpy scalars plain Python values."""
    out = []
    for rec in frame.to_dict("records"):
        clean = {}
        for k, v in rec.items():
            if hasattr(v, "item"):
                v = v.item()
            if isinstance(v, float) and not math.isfinite(v):
                v = None
            clean[k] = v
        out.append(clean)
    return out


def _cmd_plan(args) -> int:

    traffic = Traffic(args.rate_qps, args.input_tokens, args.output_tokens, args.ttft_slo_s, args.itl_slo_s)
    with Store.open(args.db) as store:
        gpus, llms = store.gpus(), store.llms()
    prices = {}
    if args.gpu_price:
        names = [n for n, _ in args.gpu_price]
        ids, unknown = GpuResolver(gpus).resolve_many(names)
        if unknown:
            raise UnknownNameError("GPU in --gpu-price", list(unknown), dict(unknown))
        prices = {str(g): p for g, (_, p) in zip(ids, args.gpu_price, strict=True)}
    costs = Costs.from_defaults(load_planning_defaults(), prices, args.usd_per_kwh, args.pue, args.gco2e_per_kwh,
                                args.region)
    if args.max_gpus_per_replica < 1:
        raise ValidationError([Issue(0, "--max-gpus-per-replica", "must be at least 1")])
    plan = plan_deployments(args.llm, traffic, gpus, llms, costs, args.gpu, args.precision,
                            args.max_gpus_per_replica, serving_stack=args.serving_stack)
    llm_id = plan["llm_id"].iat[0]
    print(f"{llm_id}: {traffic.describe()}"
          + (f"; serving stack {args.serving_stack} (see each option's notes)" if args.serving_stack else ""))
    print(f"assumptions: $/kWh {costs.usd_per_kwh:g} ({costs.sources['usd_per_kwh']}); PUE {costs.pue:g} "
          f"({costs.sources['pue']}); {costs.gco2e_per_kwh:g} gCO2e/kWh ({costs.sources['gco2e_per_kwh']})")
    print(plan_text_table(plan.head(SHOWN)))
    ok = int((plan["fits"] & plan["meets_slo"]).sum())
    print(f"{len(plan)} options, {ok} fit and meet the targets"
          + (f"; {len(plan) - SHOWN} more in --json / --csv" if len(plan) > SHOWN else ""))
    records = plan.drop(columns=["llm_id"])
    if args.json:
        payload = {"llm_id": llm_id, "traffic": {"rate_qps": traffic.rate_qps, "input_tokens": traffic.input_tokens,
                                                 "output_tokens": traffic.output_tokens,
                                                 "ttft_slo_s": traffic.ttft_slo_s, "itl_slo_s": traffic.itl_slo_s},
                   "assumptions": {"usd_per_kwh": costs.usd_per_kwh, "pue": costs.pue,
                                   "gco2e_per_kwh": costs.gco2e_per_kwh,
                                   "sources": {k: v for k, v in costs.sources.items() if not k.startswith("price:")}},
                   "options": _records(records)}
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")
        print(f"wrote {args.json}")
    if args.csv:
        Path(args.csv).write_bytes(csv_bytes(records))
        print(f"wrote {args.csv}")
    return 0


def add_plan_command(sub, add_db) -> None:
    p = sub.add_parser("plan", help="rank deployments (GPU x GPUs per replica x precision) for one LLM and traffic, "
                                    "with replicas, cost and carbon")
    add_db(p)
    p.add_argument("--llm", required=True, help="LLM: Hugging Face id or catalog alias")
    p.add_argument("--rate-qps", type=float, required=True, help="arrival rate, requests/s")
    p.add_argument("--input-tokens", type=float, required=True, help="prompt tokens per request")
    p.add_argument("--output-tokens", type=float, required=True, help="output tokens per request")
    p.add_argument("--ttft-slo-s", type=float, default=None, help="target mean time to first token, s")
    p.add_argument("--itl-slo-s", type=float, default=None, help="target mean time between tokens (ITL), s")
    p.add_argument("--gpu", action="append", default=None, help="GPU to consider (repeatable; default: every "
                                                                 "NVIDIA GPU of the catalog)")
    p.add_argument("--precision", action="append", default=None,
                   help="weight precision to consider (repeatable; default bf16, fp8, int8, int4, fp4, mxfp4)")
    p.add_argument("--max-gpus-per-replica", type=int, default=8, help="largest tensor-parallel degree (default 8)")
    p.add_argument("--serving-stack", default=None, metavar="STACK",
                   help="serving stack, e.g. 'vLLM 0.5' or 'TensorRT-LLM' (default: vLLM 0.14, the training stack); "
                        "one without calibration is predicted as vLLM 0.14 with widened intervals")
    p.add_argument("--usd-per-kwh", type=float, default=None, help="electricity price (default: US industrial, EIA)")
    p.add_argument("--pue", type=float, default=None, help="data-centre PUE (default: Uptime industry average)")
    carbon = p.add_mutually_exclusive_group()
    carbon.add_argument("--region", default=None, help="grid region for gCO2e/kWh (a name of grid_carbon.csv)")
    carbon.add_argument("--gco2e-per-kwh", type=float, default=None, help="grid carbon intensity, gCO2e/kWh")
    p.add_argument("--gpu-price", type=_price, action="append", default=None, metavar="NAME=USD_PER_GPU_HOUR",
                   help="$/GPU-hour for a GPU (repeatable; default: median of listed on-demand prices)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="write every option as JSON")
    p.add_argument("--csv", type=Path, default=None, metavar="OUT", help="write every option as CSV")
    p.set_defaults(func=_cmd_plan)
