"""The Home page: what the store holds, one quick prediction in words with its 80% interval, the serving stack it
refers to, which model files the predictions come from, and the models' accuracy as shipped with them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from wattgpu_core.errors import WattGPUError
from wattgpu_core.loso import other_sources_sentence as sentence
from wattgpu_core.planning import predict
from wattgpu_core.retraining import is_committed

from .compare import weights_gb_16bit
from .formats import INTERVAL_FORMATS, num
from .labels import SCENARIO_LABELS
from .url_state import Workload


def models_origin(models_dir: Path) -> str:
    """One sentence for the pages: which model files the predictions come from ("" for the committed ones)."""
    if is_committed(models_dir):
        return ""
    return ("Predictions use models retrained on the current data, uploads included (Data page); removing the "
            "uploads returns to the committed models.")


def data_summary(store) -> dict:
    """Counts for the home page: runs, GPUs and LLMs (in the catalog and with measurements), sources."""
    stats = store.stats()
    sources = store.sources()
    per_source = stats["runs_per_source"]
    table = pd.DataFrame({
        "Source": sources["name"],
        "Runs": sources["source_id"].map(per_source).fillna(0).astype(int),
        "License": sources["license"],
    }).sort_values("Runs", ascending=False).reset_index(drop=True)
    return {**stats, "source_table": table,
            "source_names": dict(zip(sources["source_id"].astype(str), sources["name"].astype(str), strict=True))}


@dataclass(frozen=True)
class SinglePrediction:
    gpu_name: str
    fits: bool
    reason: str
    power_w: float
    itl_s: float
    energy_per_token_j: float
    throughput_tok_s: float
    notes: str
    intervals: Mapping = field(default_factory=dict)  # {column: (low, high)} where the model set gives intervals
    serving_stack: str = ""
    out_of_range: bool = False

    def interval_text(self, column: str) -> str:
        """'80% interval: a-b' in the metric's own format, or '' when the model set gives none."""
        lo, hi = self.intervals.get(column, (np.nan, np.nan))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            return ""
        fmt = INTERVAL_FORMATS[column]
        return f"80% interval {fmt(lo)} – {fmt(hi)}"


def predict_one(llm_id: str, gpu_id: str, workload: Workload, gpus: pd.DataFrame, llms: pd.DataFrame,
                model_set) -> SinglePrediction:
    """One prediction for the home page."""
    gpu = gpus[gpus["gpu_id"] == gpu_id]
    if gpu.empty:
        raise WattGPUError(f"unknown GPU {gpu_id!r}; pick one from the list")
    requests = pd.DataFrame([{"llm": llm_id, "gpu": gpu_id, **workload.as_request()}])
    llm = llms[llms["llm_id"] == llm_id]  # only this LLM's catalog row: the whole catalog costs more than predicting
    row = predict(requests, gpu, llm if len(llm) else llms, model_set).iloc[0]
    fits = bool(row.get("fits_in_memory", True))
    weights = weights_gb_16bit(llms.set_index("llm_id").loc[llm_id])
    reason = "" if fits else (f"it needs about {weights:.0f} GB for 16-bit weights alone and the GPU has "
                              f"{float(gpu['memory_size_gb'].iloc[0]):.0f} GB")
    notes = str(row.get("notes") or "")
    intervals = {c: (float(row[f"{c}_lo"]), float(row[f"{c}_hi"])) for c in INTERVAL_FORMATS
                 if f"{c}_lo" in row and f"{c}_hi" in row}
    stack = row.get("serving_stack")
    return SinglePrediction(str(gpu["name"].iloc[0]), fits, reason, float(row["power_w"]), float(row["itl_s"]),
                            float(row["energy_per_token_j"]), float(row["throughput_tok_s"]),
                            "" if notes in ("nan", "None") else notes, intervals,
                            str(stack) if isinstance(stack, str) else "", bool(row.get("out_of_range", False)))


@dataclass(frozen=True)
class Accuracy:
    sentence: str
    table: pd.DataFrame


def headline_accuracy(model_set) -> Accuracy:
    """The models' cross-validated accuracy as stored with them (MdAPE per target, scenario and split)."""
    records = model_set.metadata.get("cv_metrics") or []
    if not records:
        return Accuracy("These model files carry no cross-validation metrics; the Cross-validation page computes "
                        "them.", pd.DataFrame())
    rec = pd.DataFrame(records)
    learned = rec[rec["strategy"].isin(["CV", "LOGO", "LOLO"]) & (rec["model"] == rec["model"].iloc[0])]
    target_labels = {"power": "Power", "itl": "ITL", "ttft": "TTFT"}
    order = {label: i for i, label in enumerate(target_labels.values())}
    learned = learned[learned["target"].isin(list(target_labels))]
    table = (learned.assign(Target=learned["target"].map(target_labels),
                            Scenario=learned["scenario"].map(SCENARIO_LABELS).fillna(learned["scenario"]),
                            value=learned["mdape_pct"].map(lambda v: num(v, ".1f")))
             .pivot(index=["Target", "Scenario"], columns="strategy", values="value")
             .reindex(columns=["CV", "LOGO", "LOLO"])
             .rename(columns=lambda c: f"{c} (%)")
             .reset_index()
             .sort_values(["Target", "Scenario"],
                          key=lambda s: s.map(order) if s.name == "Target" else s.str.lower())
             .reset_index(drop=True))
    table.columns.name = None
    decided = model_set.metadata.get("default_for") or {}
    if decided and rec["model"].iloc[0] != "XGB":  # the paper's models beside ours, same all-GPU evaluation
        keys = {label: t for t, label in target_labels.items()}
        table["Paper's XGB LOGO (%)"] = [
            num(((decided.get(keys[t], {}).get(s.lower()) or {}).get("mdape_pct") or {}).get("LOGO", {}).get("XGB"),
                 ".1f") for t, s in zip(table["Target"], table["Scenario"], strict=True)]
    pick = rec[(rec["model"] == rec["model"].iloc[0]) & (rec["strategy"] == "LOGO")]
    if pick.empty:
        pick = rec[rec["model"] == rec["model"].iloc[0]]
    names = {"power": "power", "itl": "ITL", "ttft": "TTFT"}
    parts = [f"{names[r['target']]} {r['scenario']} {r['mdape_pct']:.1f}%" for r in pick.to_dict("records")
             if r["target"] in names]
    split = pick["strategy"].iloc[0]
    what = {"CV": "unseen LLM-GPU pairs", "LOGO": "GPUs left out of training", "LOLO": "LLMs left out of training"}
    picked = [f"{names[t]} {pool} (XGB {num(((c.get('mdape_pct') or {}).get('LOGO') or {}).get('XGB'), '.1f')}% "
              "LOGO)" for t, by_pool in decided.items() for pool, c in (by_pool or {}).items()
              if t in names and (c or {}).get("default") == "paper"] if getattr(model_set, "parts", None) else []
    chosen = (f" The default model set predicts {', '.join(picked)} with the paper's XGB, which measured better there "
              "(for dense LLMs in 16-bit weights on one GPU; other deployments stay with WattGPU+)."
              if picked else "")
    return Accuracy(f"Median absolute percentage error on {what.get(split, split)} ({split}): " + ", ".join(parts)
                    + "." + chosen + " The table gives the same error (MdAPE, %) on unseen LLM-GPU pairs (CV), unseen "
                    "GPUs (LOGO) and unseen LLMs (LOLO).", table)


def other_sources_sentence(model_set) -> str:
    """Home's sentence on the error for runs of other sources and stacks (leave-one-source-out)."""
    meta = model_set.metadata
    parts = getattr(model_set, "parts", None) or {}
    if not meta.get("loso_metrics") and "plus" in parts:
        meta = parts["plus"].metadata
    return sentence(meta)
