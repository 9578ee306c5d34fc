"""Benchmark: predicting every catalog GPU x every catalog LLM x 3 scenarios with ``planning.predict``.

One batched call (what ``predict --input`` and the Compare page do) is timed against the straightforward use of the
same API measured in the same run: one ``ranking.rank_gpus`` call per (LLM, scenario), i.e. a loop over LLMs.
Model loading is timed separately. ``--parts`` times two steps of every WattGPU+ prediction on the same grid against
their row-by-row versions (kept here as the reference): which model set predicts each row
(``LoadedModelSet.uses``) and the out-of-range notes (``plus.out_of_range``).

    python bench/bench_predict.py [--db PATH] [--repeats 5] [--model-set paper|plus|default] [--batched-only] [--parts]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from wattgpu_core.planning import load_model_set, predict
from wattgpu_core.plus import _RANGE_UNITS, RANGE_LABELS, out_of_range
from wattgpu_core.ranking import rank_gpus
from wattgpu_core.store import Store

SCENARIOS = ("offline", "server_low", "server_high")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model-set", default="paper", help="paper, plus or default (default: paper)")
    parser.add_argument("--batched-only", action="store_true", help="skip the per-LLM rank_gpus loop (minutes)")
    parser.add_argument("--parts", action="store_true", help="only time uses() and out_of_range() against their "
                        "row-by-row versions")
    args = parser.parse_args()
    if args.parts:
        return _parts(args)

    with Store.open(args.db, read_only=args.db is not None) as store:
        gpus, llms = store.gpus(), store.llms()
    start = time.perf_counter()
    model_set = load_model_set(args.model_set)
    load_s = time.perf_counter() - start

    grid = pd.MultiIndex.from_product([llms["llm_id"], gpus["gpu_id"], SCENARIOS], names=["llm", "gpu", "scenario"])
    requests = grid.to_frame(index=False)
    predict(requests.iloc[:10], gpus, llms, model_set)  # warm-up

    batched = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        out = predict(requests, gpus, llms, model_set)
        batched.append(time.perf_counter() - start)
    best, med = min(batched), statistics.median(batched)
    print(f"model set load: {load_s * 1000:.0f} ms")
    print(f"{len(gpus)} GPUs x {len(llms)} LLMs x {len(SCENARIOS)} scenarios = {len(requests):,} predictions")
    print(f"  one predict() call: median {med:.3f} s, best {best:.3f} s ({med / len(requests) * 1e6:.1f} us/row)")
    if not args.batched_only:
        start = time.perf_counter()
        for llm_id in llms["llm_id"]:
            for scenario in SCENARIOS:
                rank_gpus(llm_id, {"scenario": scenario}, gpus, llms, model_set)
        loop_s = time.perf_counter() - start
        print(f"  rank_gpus per (LLM, scenario), {len(llms) * len(SCENARIOS)} calls: {loop_s:.3f} s")
        print(f"  ratio batched / per-LLM loop: {med / loop_s:.3f}")
    print(f"  rows with finite power and ITL: {int((out['power_w'].notna() & out['itl_s'].notna()).sum()):,}; "
          f"fitting in memory: {int(out['fits_in_memory'].sum()):,}")
    return 0


def _uses_row_by_row(model_set, target: str, pools) -> np.ndarray:
    """The set behind each row, one lookup per row (LoadedModelSet.uses before vectorising)."""
    def uses(pool):
        if model_set.kind == "default":
            return model_set.choice.get(target, {}).get(pool, "paper")
        return model_set.kind

    return np.asarray([uses(p) for p in pools], dtype=object)


def _out_of_range_row_by_row(frame: pd.DataFrame, ranges) -> np.ndarray:
    """plus.out_of_range as it was: a Python loop over the rows outside each range."""
    notes = [[] for _ in range(len(frame))]
    for c, bounds in ranges.items():
        if not bounds or c not in frame:
            continue
        v = pd.to_numeric(frame[c], errors="coerce").to_numpy(float)
        lo, hi = bounds
        for i in np.flatnonzero(~(v >= lo * (1 - 1e-9)) | ~(v <= hi * (1 + 1e-9))):
            name, unit = RANGE_LABELS.get(c, c), _RANGE_UNITS.get(c, "")
            if not np.isfinite(v[i]):
                notes[i].append(f"{name} unknown (training range {lo:,.4g}–{hi:,.4g}{unit})")
                continue
            where = "above" if v[i] > hi else "below"
            notes[i].append(f"{name} ({v[i]:,.4g}{unit}) {where} the training range {lo:,.4g}–{hi:,.4g}{unit}")
    return np.asarray(["; ".join(n) for n in notes], dtype=object)


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _parts(args) -> int:
    with Store.open(args.db, read_only=args.db is not None) as store:
        gpus, llms = store.gpus(), store.llms()
    model_set = load_model_set("default")
    grid = pd.MultiIndex.from_product([llms["llm_id"], gpus["gpu_id"], SCENARIOS], names=["llm_id", "gpu_id",
                                                                                          "scenario"]).to_frame(index=False)
    frame = grid.merge(gpus, on="gpu_id", how="left").merge(llms, on="llm_id", how="left", suffixes=("", "_llm"))
    pools = np.where(grid["scenario"].eq("offline"), "offline", "server").astype(object)
    ranges = model_set.parts["plus"].metadata["ranges"]
    assert (model_set.uses("itl", pools) == _uses_row_by_row(model_set, "itl", pools)).all()
    assert (out_of_range(frame, ranges) == _out_of_range_row_by_row(frame, ranges)).all()
    print(f"{len(frame):,} rows ({len(gpus)} GPUs x {len(llms)} LLMs x {len(SCENARIOS)} scenarios), best of "
          f"{args.repeats}:")
    for what, vec, loop in (
            ("uses (both targets)", lambda: [model_set.uses(t, pools) for t in ("power", "itl")],
             lambda: [_uses_row_by_row(model_set, t, pools) for t in ("power", "itl")]),
            ("out_of_range", lambda: out_of_range(frame, ranges), lambda: _out_of_range_row_by_row(frame, ranges))):
        v, r = _best(vec, args.repeats), _best(loop, args.repeats)
        print(f"  {what:<20} vectorised {v * 1000:8.2f} ms   row by row {r * 1000:8.2f} ms   ratio {v / r:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
