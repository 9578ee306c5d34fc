"""Benchmark: WattGPU+ against the paper's XGB models, timed in the same run.

* evaluation: ``run_evaluation`` of each model set alone (both targets, CV / LOGO / LOLO; WattGPU+ with its
  auxiliary rows and, separately, with the nested leave-one-GPU-out interval coverage), in one mode;
* prediction: one ``planning.predict`` call over every catalog GPU x LLM x scenario with each loaded model set.

Prints wall times and the ratios WattGPU+ / XGB.

    python bench/bench_plus.py [--db PATH] [--paper-compat] [--jobs N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from wattgpu_core.evaluation import run_evaluation
from wattgpu_core.planning import load_model_set, predict
from wattgpu_core.store import Store

SCENARIOS = ("offline", "server_low", "server_high")


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--paper-compat", action="store_true")
    parser.add_argument("--jobs", type=int, default=None)
    args = parser.parse_args()

    with Store.open(args.db, read_only=args.db is not None) as store:
        gpus, llms = store.gpus(), store.llms()
        kw = dict(paper_compat=args.paper_compat, baselines=False, n_jobs=args.jobs)
        _, paper_s = _timed(lambda: run_evaluation(store, model_sets=["paper"], **kw))
        _, plus_s = _timed(lambda: run_evaluation(store, model_sets=["plus"], intervals=False, **kw))
        _, nested_s = _timed(lambda: run_evaluation(store, model_sets=["plus"], strategies=("LOGO",), **kw))
    print(f"evaluation ({'paper-compat' if args.paper_compat else 'all GPUs'}), CV + LOGO + LOLO, both targets:")
    print(f"  XGB {paper_s:.1f} s, WattGPU+ {plus_s:.1f} s: ratio WattGPU+ / XGB {plus_s / paper_s:.2f}")
    print(f"  WattGPU+ LOGO with nested interval coverage: {nested_s:.1f} s ({nested_s / paper_s:.2f} x XGB's full "
          f"evaluation)")

    grid = pd.MultiIndex.from_product([llms["llm_id"], gpus["gpu_id"], SCENARIOS], names=["llm", "gpu", "scenario"])
    requests = grid.to_frame(index=False)
    times = {}
    for name in ("paper", "plus"):
        model_set, load_s = _timed(lambda name=name: load_model_set(name))
        predict(requests.iloc[:10], gpus, llms, model_set)  # warm-up
        out, times[name] = _timed(lambda model_set=model_set: predict(requests, gpus, llms, model_set))
        print(f"predict {len(requests):,} rows with {model_set.label}: load {load_s * 1000:.0f} ms, predict "
              f"{times[name]:.2f} s ({times[name] / len(requests) * 1e6:.0f} us/row); finite power and ITL: "
              f"{int((out['power_w'].notna() & out['itl_s'].notna()).sum()):,}")
    print(f"  ratio WattGPU+ / XGB predict: {times['plus'] / times['paper']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
