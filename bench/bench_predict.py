"""Benchmark: predicting every catalog GPU x every catalog LLM x 3 scenarios with ``planning.predict``.

One batched call (what ``predict --input`` and the Compare page do) is timed against the straightforward use of the
same API measured in the same run: one ``ranking.rank_gpus`` call per (LLM, scenario), i.e. a loop over LLMs.
Model loading is timed separately.

    python bench/bench_predict.py [--db PATH] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wattgpu_core.planning import load_model_set, predict  # noqa: E402
from wattgpu_core.ranking import rank_gpus  # noqa: E402
from wattgpu_core.store import Store  # noqa: E402

SCENARIOS = ("offline", "server_low", "server_high")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    with Store.open(args.db, read_only=args.db is not None) as store:
        gpus, llms = store.gpus(), store.llms()
    start = time.perf_counter()
    model_set = load_model_set("paper")
    load_s = time.perf_counter() - start

    grid = pd.MultiIndex.from_product([llms["llm_id"], gpus["gpu_id"], SCENARIOS], names=["llm", "gpu", "scenario"])
    requests = grid.to_frame(index=False)
    predict(requests.iloc[:10], gpus, llms, model_set)  # warm-up

    batched = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        out = predict(requests, gpus, llms, model_set)
        batched.append(time.perf_counter() - start)
    start = time.perf_counter()
    for llm_id in llms["llm_id"]:
        for scenario in SCENARIOS:
            rank_gpus(llm_id, {"scenario": scenario}, gpus, llms, model_set)
    loop_s = time.perf_counter() - start

    best, med = min(batched), statistics.median(batched)
    print(f"model set load: {load_s * 1000:.0f} ms")
    print(f"{len(gpus)} GPUs x {len(llms)} LLMs x {len(SCENARIOS)} scenarios = {len(requests):,} predictions")
    print(f"  one predict() call: median {med:.3f} s, best {best:.3f} s ({med / len(requests) * 1e6:.1f} us/row)")
    print(f"  rank_gpus per (LLM, scenario), {len(llms) * len(SCENARIOS)} calls: {loop_s:.3f} s")
    print(f"  ratio batched / per-LLM loop: {med / loop_s:.3f}")
    print(f"  rows with finite power and ITL: {int((out['power_w'].notna() & out['itl_s'].notna()).sum()):,}; "
          f"fitting in memory: {int(out['fits_in_memory'].sum()):,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
