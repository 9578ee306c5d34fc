"""Benchmark: the full evaluation against a straightforward reference implementation of the same protocol.

The full evaluation is ``evaluation.run_evaluation``: both targets (power, ITL), all three strategies (5-fold
grouped CV, leave-one-GPU-out, leave-one-LLM-out) and the baselines, in each mode asked for. The reference runs
the same protocol in this process with one sklearn Pipeline (ColumnTransformer + XGBRegressor, default settings)
re-fitted per fold, folds in order, and the metrics computed the plain way (pandas groupby loops with scipy's
``pearsonr`` / ``kendalltau``: ``tests/reference_models.py``). Both are timed in the same run, alternately, after one warm-up; the script
prints each wall time, the ratio, and how far the two sets of out-of-fold predictions and metrics differ.

    python bench/bench_evaluate.py [--db PATH] [--modes all-gpus paper-compat] [--repeats 3]

``--cli`` times what a user runs instead: ``python -m wattgpu_core evaluate --paper-compat --model-set paper`` in a
fresh interpreter (imports, loading the data, the evaluation, the printed tables) against the reference protocol in a
fresh interpreter (``--reference-only``: imports, loading, the reference evaluation), alternately, and prints the
ratio of the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from wattgpu_core.evaluation import run_evaluation
from wattgpu_core.models import PaperModelSet, target_rows, training_frame
from wattgpu_core.store import Store
from wattgpu_core.testing.reference_models import ReferencePaperModelSet, reference_metrics

MODES = {"all-gpus": False, "paper-compat": True}


def _warm_up(store) -> None:
    """Import and exercise xgboost and sklearn once so that neither timing pays for first use."""
    frame = training_frame(store, "catalog")
    rows = target_rows(frame, "itl", PaperModelSet().features("itl")).iloc[:300]
    PaperModelSet().fit("itl", rows).predict(rows)
    ReferencePaperModelSet().fit("itl", rows).predict(rows)


def _agreement(fast, ref) -> dict:
    """How far our out-of-fold predictions and metrics are from the reference's, per target."""
    out = {}
    for target in ("power", "itl"):
        rel = []
        for key, pf in fast.predictions.items():
            if key[2] == "-" or key[1] != target:
                continue
            pr = ref.predictions[key]
            assert (pf["run_id"].to_numpy() == pr["run_id"].to_numpy()).all()
            rel.append(np.abs(pf["y_pred"].to_numpy() - pr["y_pred"].to_numpy()) / np.abs(pr["y_pred"].to_numpy()))
        rel = np.concatenate(rel)
        d_mdape, d_tau = 0.0, 0.0
        for a, b in zip(fast.records, ref.records, strict=True):
            assert (a["target"], a["model"], a["scenario"], a["strategy"]) == (
                b["target"], b["model"], b["scenario"], b["strategy"])
            if a["target"] != target:
                continue
            d_mdape = max(d_mdape, abs(a["mdape_pct"] - b["mdape_pct"]))
            for k in ("gpu_tau", "llm_tau"):
                if np.isfinite(a[k]) and np.isfinite(b[k]):
                    d_tau = max(d_tau, abs(a[k] - b[k]))
        out[target] = {"median_rel": float(np.median(rel)), "max_rel": float(rel.max()),
                       "share_rows_over_1e-4": float(np.mean(rel > 1e-4)), "max_d_mdape_pp": d_mdape,
                       "max_d_tau": d_tau}
    return out


def _reference_only(db: Path | None, compat: bool) -> int:
    """The reference implementation alone (for ``--cli``: timed from outside, imports included)."""
    with Store.open(db, read_only=db is not None) as store:
        run_evaluation(store, paper_compat=compat, model_sets=[ReferencePaperModelSet()], n_jobs=1,
                       metrics_fn=reference_metrics)
    return 0


def _cli(db: Path, repeats: int) -> int:
    import subprocess

    root = Path(__file__).resolve().parent.parent
    ours = [sys.executable, "-m", "wattgpu_core", "evaluate", "--paper-compat", "--model-set", "paper", "--quiet",
            "--db", str(db)]
    ref = [sys.executable, str(Path(__file__).resolve()), "--reference-only", "--modes", "paper-compat",
           "--db", str(db)]
    times = {"ours": [], "reference": []}
    for r in range(repeats + 1):  # round 0 warms the file cache and is not counted
        for who, cmd in ((("ours", ours), ("reference", ref)) if r % 2 == 0 else (("reference", ref), ("ours", ours))):
            start = time.perf_counter()
            subprocess.run(cmd, cwd=root, check=True, stdout=subprocess.DEVNULL)
            if r:
                times[who].append(time.perf_counter() - start)
        if r:
            print(f"  round {r}: evaluate --paper-compat --model-set paper {times['ours'][-1]:6.2f} s   reference "
                  f"{times['reference'][-1]:6.2f} s   ratio {times['ours'][-1] / times['reference'][-1]:.3f}   "
                  f"(load average {os.getloadavg()[0]:.2f})")
    o, f = statistics.median(times["ours"]), statistics.median(times["reference"])
    print(f"\nwhole command, fresh interpreter each, median of {repeats}: ours {o:.2f} s, reference {f:.2f} s, "
          f"ratio {o / f:.3f} (goal <= 0.3)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (median reported)")
    parser.add_argument("--cli", action="store_true", help="time the evaluate command against the reference, "
                                                          "both as fresh processes")
    parser.add_argument("--reference-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_only:
        return _reference_only(args.db, MODES[args.modes[0]])
    if args.cli:
        if args.db is None:
            import tempfile

            args.db = Path(tempfile.mkdtemp(prefix="wattgpu-bench-")) / "seed.duckdb"
            Store.build(args.db).close()
        return _cli(args.db, args.repeats)

    print(f"CPUs: {os.cpu_count()}  (ours: folds in {os.cpu_count()} threads, 1 XGBoost thread each; "
          f"reference: folds in order, XGBoost default threads)")
    with Store.open(args.db, read_only=args.db is not None) as store:
        _warm_up(store)
        ours = {m: [] for m in args.modes}
        ref = {m: [] for m in args.modes}
        cpu_ours = {m: [] for m in args.modes}
        cpu_ref = {m: [] for m in args.modes}
        last = {}
        for r in range(args.repeats):
            for mode in args.modes:
                compat = MODES[mode]
                order = ("ours", "ref") if r % 2 == 0 else ("ref", "ours")
                for who in order:
                    start, cpu = time.perf_counter(), time.process_time()
                    if who == "ours":
                        res = run_evaluation(store, paper_compat=compat)
                        ours[mode].append(time.perf_counter() - start)
                        cpu_ours[mode].append(time.process_time() - cpu)
                    else:
                        res = run_evaluation(store, paper_compat=compat, model_sets=[ReferencePaperModelSet()],
                                             n_jobs=1, metrics_fn=reference_metrics)
                        ref[mode].append(time.perf_counter() - start)
                        cpu_ref[mode].append(time.process_time() - cpu)
                    last[(mode, who)] = res
                print(f"  round {r + 1} {mode:<13} ours {ours[mode][-1]:6.2f} s   reference {ref[mode][-1]:6.2f} s"
                      f"   ratio {ours[mode][-1] / ref[mode][-1]:.3f}   (CPU s: ours {cpu_ours[mode][-1]:.2f}, "
                      f"reference {cpu_ref[mode][-1]:.2f}; load average {os.getloadavg()[0]:.2f})")

    print("\nfull evaluation (power + ITL; CV, LOGO, LOLO; TDP, LS-TDP, roofline baselines), median of "
          f"{args.repeats}:")
    total_ours = total_ref = 0.0
    for mode in args.modes:
        o, f = statistics.median(ours[mode]), statistics.median(ref[mode])
        total_ours += o
        total_ref += f
        print(f"  {mode:<13} ours {o:6.2f} s   reference {f:6.2f} s   ratio {o / f:.3f}")
    if len(args.modes) > 1:
        print(f"  {'all modes':<13} ours {total_ours:6.2f} s   reference {total_ref:6.2f} s   "
              f"ratio {total_ours / total_ref:.3f}")
    print("\nagreement of our out-of-fold predictions with the reference's (duplicate rows collapsed into weights "
          "change float rounding, which can flip exact ties between equally good splits):")
    for mode in args.modes:
        for target, a in _agreement(last[(mode, "ours")], last[(mode, "ref")]).items():
            print(f"  {mode:<13} {target:<6} relative difference median {a['median_rel']:.1e}, max "
                  f"{a['max_rel']:.1e}, rows > 1e-4: {a['share_rows_over_1e-4'] * 100:4.1f}%;  max |dMdAPE| "
                  f"{a['max_d_mdape_pp']:.3f} points, max |dtau| {a['max_d_tau']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
