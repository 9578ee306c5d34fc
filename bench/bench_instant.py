"""Benchmark: how fast the app's slow views are now, each against a baseline measured in the same run.

- Explanation of one WattGPU+ prediction (Explain page: grouped Shapley values over a 16-configuration background
  and the physics breakdown), against one prediction of the same request (``pages.view.home.predict_one``), and
  one ``planning.predict`` of the same request against the whole catalogs (what the other pages pay per call).
- Opening the Cross-validation page on the default data: loading the shipped evaluation (both modes) and the global
  importance, against computing WattGPU+'s evaluation (all GPUs: CV, LOGO, LOLO and the nested interval coverage),
  whose wall time is printed too (goal: <= 30 s).

    python -m bench.bench_instant [--repeats 5] [--skip-plus-evaluation]   (from the repository root: it imports
    the view layer, pages.view, which is not part of the installed package)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from pages.view import explain as view_explain
from pages.view import home as view_home
from pages.view import url_state
from wattgpu_core import explain as core_explain
from wattgpu_core import retraining, shipped
from wattgpu_core.evaluation import run_evaluation
from wattgpu_core.planning import load_model_set
from wattgpu_core.planning import predict as planning_predict
from wattgpu_core.store import Store

CASES = [("meta-llama/Llama-3.1-8B-Instruct", "h200-sxm-141gb", url_state.Workload("offline", 64, 1.0, 512, 256)),
         ("meta-llama/Llama-3.1-8B-Instruct", "l40s", url_state.Workload("server", 64, 2.0, 512, 256)),
         ("Qwen/Qwen2.5-14B-Instruct", "b200", url_state.Workload("offline", 256, 1.0, 14, 220)),
         ("Qwen/Qwen2.5-7B-Instruct", "l4", url_state.Workload("server", 256, 0.33, 14, 220))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-plus-evaluation", action="store_true")
    args = parser.parse_args()
    path = Path(tempfile.mkdtemp(prefix="wattgpu-bench-")) / "seed.duckdb"
    Store.build(path).close()
    with Store.open(path) as store:
        gpus, llms = store.gpus(), store.llms()
        model_set = load_model_set("default")
        background = core_explain.explanation_background(store, model_set)
        view_explain.explain_view(*CASES[0][:2], CASES[0][2], gpus, llms, model_set, background)  # warm-up
        explain, predict, whole = [], [], []
        for _ in range(args.repeats):
            for llm, gpu, workload in CASES:
                start = time.perf_counter()
                view_explain.explain_view(llm, gpu, workload, gpus, llms, model_set, background)
                explain.append(time.perf_counter() - start)
                start = time.perf_counter()
                view_home.predict_one(llm, gpu, workload, gpus, llms, model_set)
                predict.append(time.perf_counter() - start)
                request = pd.DataFrame([{"llm": llm, "gpu": gpu, **workload.as_request()}])
                start = time.perf_counter()
                planning_predict(request, gpus, llms, model_set)
                whole.append(time.perf_counter() - start)
        e, p, w = statistics.median(explain), statistics.median(predict), statistics.median(whole)
        print(f"explanation of one WattGPU+ prediction: median {e * 1000:.0f} ms (max {max(explain) * 1000:.0f} ms) "
              f"over {len(explain)}; one prediction {p * 1000:.0f} ms; ratio {e / p:.1f} "
              f"(load average {os.getloadavg()[0]:.2f}; goal < 300 ms)")
        print(f"one prediction against the whole catalogs (planning.predict): median {w * 1000:.0f} ms")

        sets = retraining.evaluated_model_sets()
        start = time.perf_counter()
        current = shipped.is_current(store)
        loaded = [shipped.load_evaluation(store, compat, sets) for compat in (False, True)]
        importance = [shipped.load_importance(store, w) for w in ("paper", "plus-offline", "plus-server")]
        external = shipped.load_external(store)
        load_s = time.perf_counter() - start
        ok = current and all(x is not None for x in (*loaded, *importance, external))
        print(f"shipped evaluation, importance and external validation loaded in {load_s:.2f} s "
              f"({'current' if ok else 'NOT current: ' + '; '.join(shipped.stale_reasons(store))})")
        if not args.skip_plus_evaluation:
            start = time.perf_counter()
            result = run_evaluation(store, paper_compat=False, model_sets=["plus"], baselines=False)
            plus_s = time.perf_counter() - start
            print(f"WattGPU+ evaluation (all GPUs; CV, LOGO, LOLO, nested interval coverage): {plus_s:.1f} s "
                  f"({result.seconds:.1f} s inside; goal <= 30 s; load average {os.getloadavg()[0]:.2f}); "
                  f"opening the page from the shipped files takes {load_s / plus_s:.3f} of that")
    return 0


if __name__ == "__main__":
    sys.exit(main())
