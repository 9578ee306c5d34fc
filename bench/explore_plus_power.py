"""WattGPU+ power model vs the paper's XGB, by the paper's protocol, in one run (all GPUs counted).

Rows: the paper method's power rows (Watt Counts, 42 dense LLMs, catalog specs) with the GPU architecture joined
from the catalog. Every fold fits ``PlusPowerModel`` on its training rows only and predicts its test rows.

    python bench/explore_plus_power.py                 # the table (CV, LOGO, LOLO)
    python bench/explore_plus_power.py --variants      # + sensitivity variants (LOGO)
    python bench/explore_plus_power.py --aux           # + fitted with the auxiliary rows, filtered per fold
    python bench/explore_plus_power.py --db PATH       # another store (default: a read-only open of the default)
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import pandas as pd

from wattgpu_core import evaluation as ev
from wattgpu_core import models
from wattgpu_core.plus_power import PlusPowerModel, PowerConfig, join_gpu_extras
from wattgpu_core.store import Store

POOL = {"offline": "offline", "server_low": "server", "server_high": "server"}


def power_rows(store) -> pd.DataFrame:
    frame = models.training_frame(store, "catalog")
    rows = models.target_rows(frame, "power", models.PAPER_FEATURES["power"].columns)
    return join_gpu_extras(rows, store.gpus())


def paper_oof(rows: pd.DataFrame, strategy: str) -> np.ndarray:
    prep = models.PaperModelSet().prepare("power", rows)
    pred = np.full(len(rows), np.nan)
    for tr, te in ev.splits(rows, strategy):
        pred[te] = prep.fit_predict(tr, te)
    return pred


def aux_rows(store) -> pd.DataFrame | None:
    """Watt Counts MoE runs and other sources' runs (``models.auxiliary_frame``), when this version has it."""
    if not hasattr(models, "auxiliary_frame"):
        return None
    return join_gpu_extras(models.auxiliary_frame(store, "catalog"), store.gpus())


def aux_for_fold(aux: pd.DataFrame, test: pd.DataFrame, strategy: str) -> pd.DataFrame:
    """``aux`` without the test group of the fold (the held-out GPU, LLM or (LLM, GPU) pairs)."""
    if strategy == "LOGO":
        return aux[~aux["gpu_id"].isin(test["gpu_id"].unique())]
    if strategy == "LOLO":
        return aux[~aux["llm_id"].isin(test["llm_id"].unique())]
    pairs = set(zip(test["llm_id"], test["gpu_id"], strict=True))
    return aux[[p not in pairs for p in zip(aux["llm_id"], aux["gpu_id"], strict=True)]]


def plus_oof(rows: pd.DataFrame, strategy: str, config: PowerConfig | None = None, *, drop=(),
             honest_workload: bool = False, aux: pd.DataFrame | None = None) -> np.ndarray:
    """Out-of-fold predictions; ``drop`` removes columns before fitting and predicting; ``honest_workload``
    replaces the test rows' tokens and request counts by the training rows' per-(LLM, scenario) means; ``aux``
    (filtered per fold) is passed to ``fit``."""
    data = rows.drop(columns=[c for c in drop if c in rows.columns])
    pred = np.full(len(rows), np.nan)
    for tr, te in ev.splits(rows, strategy):
        train, test = data.iloc[tr], data.iloc[te].copy()
        fold_aux = None if aux is None else aux_for_fold(aux, test, strategy)
        if honest_workload:
            cols = ["input_tokens", "output_tokens", "num_requests"]
            means = train.groupby(["llm_id", "scenario_detail"])[cols].mean()
            key = pd.MultiIndex.from_frame(test[["llm_id", "scenario_detail"]])
            for c in cols:
                v = means[c].reindex(key).to_numpy()
                test[c] = np.where(np.isfinite(v), v, test[c].to_numpy())
        model = PlusPowerModel.fit(train, aux=fold_aux, config=config)
        pred[te] = model.predict(test)
    return pred


def records(rows: pd.DataFrame, pred: np.ndarray, model: str, strategy: str) -> list[dict]:
    pf = rows[["run_id", "llm_id", "gpu_id", "scenario_detail"]].copy()
    pf["scenario"] = pf["scenario_detail"].map(POOL)
    pf["y_true"], pf["y_pred"] = rows["power_w"].to_numpy(float), pred
    out = []
    for scen in ("offline", "server"):
        m = ev.metrics(pf[pf["scenario"] == scen])
        out.append({"model": model, "strategy": strategy, "scenario": scen, **m})
    return out


def table(recs: list[dict]) -> str:
    lines = [f"  {'Model':<24}{'Scen':<9}{'Split':<6}{'MdAPE':>8}{'r':>7}{'GPU τ':>7}{'LLM τ':>7}{'n':>6}"]
    for r in recs:
        lines.append(f"  {r['model']:<24}{r['scenario']:<9}{r['strategy']:<6}{r['mdape_pct']:7.1f}%"
                     f"{r['pearson_r']:7.3f}{r['gpu_tau']:7.2f}{r['llm_tau']:7.2f}{r['n_rows']:>6}")
    return "\n".join(lines)


def per_gpu(rows: pd.DataFrame, pred: np.ndarray) -> pd.DataFrame:
    d = rows[["gpu_id", "scenario_detail"]].copy()
    d["err_pct"] = (pred / rows["power_w"].to_numpy(float) - 1) * 100
    return d.groupby(["scenario_detail", "gpu_id"])["err_pct"].median().unstack().round(1)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default=None)
    ap.add_argument("--variants", action="store_true")
    ap.add_argument("--aux", action="store_true", help="also fit with the auxiliary rows (MoE, other stacks)")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    with Store.open(args.db, read_only=True) as store:
        rows = power_rows(store)
        aux = aux_rows(store) if args.aux else None
    recs, preds = [], {}
    for strategy in ev.STRATEGIES:
        preds[("XGB", strategy)] = paper_oof(rows, strategy)
        preds[("WattGPU+", strategy)] = plus_oof(rows, strategy)
        if aux is not None:
            preds[("WattGPU+ with aux", strategy)] = plus_oof(rows, strategy, aux=aux)
    for model in dict.fromkeys(m for m, _ in preds):
        for strategy in ev.STRATEGIES:
            recs += records(rows, preds[(model, strategy)], model, strategy)
    print("Mean power (W), all GPUs, catalog specs; out-of-fold")
    print(table(recs))
    print("\nLOGO median signed error (%) per GPU, WattGPU+")
    print(per_gpu(rows, preds[("WattGPU+", "LOGO")]).to_string())
    print("\nLOGO median signed error (%) per GPU, XGB")
    print(per_gpu(rows, preds[("XGB", "LOGO")]).to_string())
    if args.variants:
        base = PowerConfig()
        variants = {
            "no architecture column": dict(drop=("architecture",)),
            "workload = train means": dict(honest_workload=True),
            "arch prior 0 GPUs": dict(config=replace(base, base_prior_gpus=0.0)),
            "arch prior 1 GPU": dict(config=replace(base, base_prior_gpus=1.0)),
            "family prior 2 GPUs": dict(config=replace(base, decode_prior_gpus=2.0)),
            "depth 4": dict(config=replace(base, max_depth=4)),
            "no F feature": dict(config=replace(base, features=tuple(f for f in base.features if f != "F"))),
            "monotone in ci too": dict(config=replace(base, monotone=(*base.monotone, "ci"))),
            "user idle power (option)": dict(config=replace(base, use_idle_power=True)),
        }
        vrecs = []
        for name, kw in variants.items():
            vrecs += records(rows, plus_oof(rows, "LOGO", **kw), name, "LOGO")
        print("\nWattGPU+ variants (LOGO)")
        print(table(vrecs))
    print(f"\n{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
