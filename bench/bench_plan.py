"""Benchmark: ranking every GPU x GPUs per replica x precision option for one LLM and traffic (``deploy``).

Times :func:`wattgpu_core.deploy.plan_deployments` (every NVIDIA catalog GPU x TP 1, 2, 4, 8 x six precisions, with
the capacity search, fleet size and cost) against the current single-GPU Compare ranking
(:func:`wattgpu_core.ranking.rank_gpus`, one GPU per replica, server mode at the same rate and tokens), both
measured in the same run, interleaved, with the default model set. Prints the medians, their ratio and how many
rows each predict() call held. The goal is under 300 ms for the plan.

    python bench/bench_plan.py [--db PATH] [--repeats 5] [--llm ID] [--rate-qps 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from wattgpu_core import deploy
from wattgpu_core.deploy import Costs, Traffic, plan_deployments
from wattgpu_core.planning import load_model_set
from wattgpu_core.planning_data import load_planning_defaults
from wattgpu_core.ranking import rank_gpus
from wattgpu_core.store import Store


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--llm", default="meta-llama/Llama-3.1-70B-Instruct")
    parser.add_argument("--rate-qps", type=float, default=5.0)
    args = parser.parse_args()

    with Store.open(args.db, read_only=args.db is not None) as store:
        gpus, llms = store.gpus(), store.llms()
    model_set = load_model_set("default")
    costs = Costs.from_defaults(load_planning_defaults())
    traffic = Traffic(args.rate_qps, 1000, 300, ttft_slo_s=2.0, itl_slo_s=0.05)
    workload = {"scenario": "server", "request_rate_qps": args.rate_qps, "input_tokens": 1000.0,
                "output_tokens": 300.0}

    rows = []
    inner = deploy._replica_predictions

    def counting(requests, *a, **k):
        rows.append(len(requests))
        return inner(requests, *a, **k)

    deploy._replica_predictions = counting
    plan = plan_deployments(args.llm, traffic, gpus, llms, costs, model_set=model_set)  # warm-up
    calls = list(rows)
    rank_gpus(args.llm, workload, gpus, llms, model_set)
    plan_s, compare_s = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        rank_gpus(args.llm, workload, gpus, llms, model_set)
        compare_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        plan_deployments(args.llm, traffic, gpus, llms, costs, model_set=model_set)
        plan_s.append(time.perf_counter() - start)
    deploy._replica_predictions = inner

    p, c = statistics.median(plan_s), statistics.median(compare_s)
    ok = int((plan["fits"] & plan["meets_slo"]).sum())
    print(f"LLM {args.llm}, {traffic.describe()}")
    print(f"plan: {len(plan)} options ({ok} fit and meet the targets), predict() calls of {calls} rows")
    print(f"compare baseline (rank_gpus, one GPU per replica, {gpus['gpu_id'].nunique()} GPUs): median {c * 1000:.0f} ms")
    print(f"plan (every GPU x TP x precision, capacity search, fleet and cost): median {p * 1000:.0f} ms "
          f"(min {min(plan_s) * 1000:.0f} ms)")
    print(f"ratio plan / compare: {p / c:.2f}   goal: plan under 300 ms -> {'met' if p < 0.3 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
