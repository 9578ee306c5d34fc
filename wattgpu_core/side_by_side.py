"""Side by side: 2 to 4 named deployments (a GPU and the GPUs per replica) for one LLM and workload, their metrics
with 80% intervals, the ratios between them, and how often the ranking holds under the model's own uncertainty.

The uncertainty comes from the evaluation, not from a guess: each Monte-Carlo draw takes the leave-one-GPU-out
(LOGO) ln residuals ln(measured / predicted) of real runs, power and ITL of the same run together, and gives the
deployments the residuals of *different GPUs on the same LLM and scenario*. So what a held-out GPU's error shares
with another GPU's on the same LLM (a misjudged LLM moves both) is kept, and what differs between GPUs is what can
swap a ranking. Energy per token and throughput are derived from each draw's power and ITL exactly as the
predictions derive them (``planning.derive_throughput_energy``).

Also: where WattGPU+ and the paper's XGB rank the deployments differently or differ by more than their intervals,
:func:`model_disagreement` says so, with the reasons the data give (inputs outside a model's training range, inputs
a model does not read) and which model the evaluation favours for such a case.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import WattGPUError
from .features import SCENARIO_POOL
from .planning import derive_throughput_energy, predict
from .plus import interval_bounds

METRICS = {  # column -> (words, True when lower is better, comparative)
    "energy_per_token_j": ("energy per token", True, "uses less energy per token than"),
    "itl_s": ("ITL", True, "has a shorter ITL than"),
    "throughput_tok_s": ("throughput", False, "serves more tokens per second than"),
    "power_w": ("mean GPU power", True, "draws less power per GPU than"),
}
N_DRAWS = 2000


@dataclass(frozen=True)
class Deployment:
    """One GPU model serving one replica of the LLM on ``num_gpus`` GPUs (tensor parallel)."""

    gpu_id: str
    num_gpus: int = 1

    def label(self, names: Mapping[str, str]) -> str:
        name = names.get(self.gpu_id, self.gpu_id)
        return name if self.num_gpus == 1 else f"{name} ×{self.num_gpus}"


def parse_picks(picks, valid_gpu_ids) -> list[Deployment]:
    """Deployments from URL text ("h200-sxm-141gb*2"); unknown GPUs, repeats and malformed counts are dropped."""
    out, seen = [], set()
    for text in picks:
        gpu_id, _, n = str(text).partition("*")
        try:
            count = int(n) if n else 1
        except ValueError:
            continue
        if gpu_id in valid_gpu_ids and gpu_id not in seen and 1 <= count <= 64:
            seen.add(gpu_id)
            out.append(Deployment(gpu_id, count))
    return out[:4]


def pick_text(deployment: Deployment) -> str:
    return deployment.gpu_id if deployment.num_gpus == 1 else f"{deployment.gpu_id}*{deployment.num_gpus}"


@dataclass(frozen=True)
class SideBySide:
    """The predictions (one row per deployment), the draws behind the statements, and the pairwise comparisons."""

    table: pd.DataFrame  # label, gpu_id, num_gpus, metric columns and their _lo / _hi, fits_in_memory, notes
    draws: Mapping[str, np.ndarray]  # metric -> (n_draws, n_deployments); empty without residuals
    pairs: pd.DataFrame  # a, b, metric, ratio (b / a), ratio_lo, ratio_hi, share (a better than b), n_draws
    method: str


def predict_deployments(llm_id: str, request: Mapping, deployments: Sequence[Deployment], gpus: pd.DataFrame,
                        llms: pd.DataFrame, model_set) -> pd.DataFrame:
    """``planning.predict`` for each deployment, labelled; the server's saturation throughput kept per row."""
    if not 1 <= len(deployments) <= 4:
        raise WattGPUError("pick between 1 and 4 deployments to compare")
    names = gpus.set_index("gpu_id")["name"].to_dict()
    requests = pd.DataFrame([{"llm": llm_id, "gpu": d.gpu_id, "num_gpus": float(d.num_gpus), **request}
                             for d in deployments])
    out = predict(requests, gpus, llms, model_set)
    out.insert(0, "label", [d.label(names) for d in deployments])
    out["num_gpus"] = [d.num_gpus for d in deployments]
    served = out["request_rate_qps"].fillna(0.0) * out["output_tokens"]
    saturated = (out["scenario_detail"] != "offline") & (out["throughput_tok_s"] < served * (1 - 1e-9))
    out["saturated"] = saturated.to_numpy()
    return out


def logo_residuals(result, model_labels: Mapping[str, str], pool: str) -> pd.DataFrame:
    """Leave-one-GPU-out ln residuals of power and ITL per run of scenario ``pool`` (columns run_id, llm_id,
    gpu_id, scenario_detail, r_power, r_itl), from the evaluation ``result`` of the models ``model_labels``
    ({"power": "WattGPU+", "itl": "XGB"} ...) the predictions come from."""
    parts = {}
    for target in ("power", "itl"):
        frame = result.predictions.get((model_labels[target], target, "LOGO"))
        if frame is None:
            return pd.DataFrame(columns=["run_id", "llm_id", "gpu_id", "scenario_detail", "r_power", "r_itl"])
        f = frame[frame["counted"] & frame["y_pred"].gt(0) & frame["y_true"].gt(0)]
        f = f[f["scenario_detail"].map(SCENARIO_POOL).eq(pool)]
        parts[target] = f.assign(**{f"r_{target}": np.log(f["y_true"] / f["y_pred"])})[
            ["run_id", "llm_id", "gpu_id", "scenario_detail", f"r_{target}"]]
    return parts["power"].merge(parts["itl"][["run_id", "r_itl"]], on="run_id").reset_index(drop=True)


def draw_residuals(residuals: pd.DataFrame, k: int, n_draws: int = N_DRAWS, seed: int = 0) -> np.ndarray:
    """(n_draws, k, 2) ln residuals (power, ITL): each draw picks one (LLM, scenario) of the evaluation with at
    least ``k`` GPUs, then ``k`` different GPUs of it, then one run of each GPU."""
    rng = np.random.default_rng(seed)
    values = residuals[["r_power", "r_itl"]].to_numpy(float)
    groups = []
    for _, g in residuals.groupby(["llm_id", "scenario_detail"], sort=True):
        by_gpu = [idx.to_numpy() for _, idx in g.groupby("gpu_id").groups.items()]
        if len(by_gpu) >= k:
            groups.append(by_gpu)
    if not groups:
        raise WattGPUError(f"the evaluation has no LLM measured on {k} or more GPUs in this scenario")
    out = np.empty((n_draws, k, 2))
    picks = rng.integers(len(groups), size=n_draws)
    for d, gi in enumerate(picks):
        by_gpu = groups[gi]
        chosen = rng.choice(len(by_gpu), size=k, replace=False)
        for j, c in enumerate(chosen):
            runs = by_gpu[c]
            out[d, j] = values[runs[rng.integers(len(runs))]]
    return out


def side_by_side(table: pd.DataFrame, result=None, n_draws: int = N_DRAWS, seed: int = 0) -> SideBySide:
    """Pairwise ratios and, given the evaluation ``result``, the share of draws in which each ranking holds."""
    ok = table[table["fits_in_memory"].fillna(True).astype(bool) & table["energy_per_token_j"].notna()]
    ok = ok.reset_index(drop=True)
    k = len(ok)
    draws: dict[str, np.ndarray] = {}
    method = "No evaluation available: ratios of the point predictions only."
    if result is not None and k >= 2:
        pool = "offline" if (ok["scenario_detail"] == "offline").all() else "server"
        labels = {"power": str(ok["power_model"].iloc[0]), "itl": str(ok["itl_model"].iloc[0])}
        res = logo_residuals(result, labels, pool)
        if len(res):
            r = draw_residuals(res, k, n_draws, seed)
            power = ok["power_w"].to_numpy(float)[None, :] * np.exp(r[:, :, 0])
            itl = ok["itl_s"].to_numpy(float)[None, :] * np.exp(r[:, :, 1])
            sat = np.where(ok["saturated"], ok["throughput_tok_s"], np.inf)[None, :] * np.exp(-r[:, :, 1])
            shape = power.shape
            throughput, energy = derive_throughput_energy(
                power.ravel(), itl.ravel(), np.tile(ok["scenario_detail"].to_numpy(object), n_draws),
                np.tile(ok["request_rate_qps"].fillna(0.0).to_numpy(float), n_draws),
                np.tile(ok["output_tokens"].to_numpy(float), n_draws), np.tile(ok["num_gpus"].to_numpy(float), n_draws),
                sat.ravel())
            draws = {"power_w": power, "itl_s": itl, "throughput_tok_s": throughput.reshape(shape),
                     "energy_per_token_j": energy.reshape(shape)}
            method = (f"{n_draws:,} draws of the models' leave-one-GPU-out errors on real runs ({labels['power']} "
                      f"power, {labels['itl']} ITL; {pool} runs): each draw gives the deployments the errors of "
                      "different GPUs on the same LLM, so an error they share (a misjudged LLM) moves them together. "
                      "For a GPU in the training data these errors overstate the uncertainty.")
    rows = []
    for i in range(k):
        for j in range(i + 1, k):
            for metric, (_, lower, _) in METRICS.items():
                a, b = float(ok[metric].iloc[i]), float(ok[metric].iloc[j])
                row = {"a": ok["label"].iloc[i], "b": ok["label"].iloc[j], "metric": metric, "ratio": b / a,
                       "ratio_lo": np.nan, "ratio_hi": np.nan, "share": np.nan, "n_draws": 0}
                if metric in draws:
                    da, db = draws[metric][:, i], draws[metric][:, j]
                    ratio = db / da
                    row.update(ratio_lo=float(np.quantile(ratio, 0.1)), ratio_hi=float(np.quantile(ratio, 0.9)),
                               share=float(np.mean(da < db) if lower else np.mean(da > db)), n_draws=len(da))
                rows.append(row)
    return SideBySide(ok, draws, pd.DataFrame(rows, columns=["a", "b", "metric", "ratio", "ratio_lo", "ratio_hi",
                                                             "share", "n_draws"]), method)


# ----------------------------------------------------------------------------------------------------------------
# When the two model sets disagree
_SPLIT_WORDS = {"CV": "LLM-GPU pairs they never saw (CV)", "LOGO": "GPUs they never saw (LOGO)",
                "LOLO": "LLMs they never saw (LOLO)"}


@dataclass(frozen=True)
class Disagreement:
    disagree: bool
    text: str  # Markdown: what differs, why, and which model the evaluation favours
    table: pd.DataFrame  # label, energy per token by each model with its interval


def _paper_intervals(paper: pd.DataFrame, plus_meta: Mapping) -> pd.DataFrame:
    """80% intervals for the paper's predictions, from its own leave-one-GPU-out quantiles (stored with
    WattGPU+'s metadata), energy per token derived from the bounds as ``planning.predict`` does."""

    q = (plus_meta.get("intervals") or {}).get("paper_ln_quantiles")
    out = paper.copy()
    if not q:
        return out
    for target, col in (("power", "power_w"), ("itl", "itl_s")):
        lo, hi = interval_bounds({"intervals": {"ln_quantiles": q}}, target, out[col].to_numpy(float),
                                 out["scenario_detail"])
        out[f"{col}_lo"], out[f"{col}_hi"] = lo, hi
    args = (out["scenario_detail"], out["request_rate_qps"].fillna(0.0), out["output_tokens"], out["num_gpus"])
    _, out["energy_per_token_j_lo"] = derive_throughput_energy(out["power_w_lo"], out["itl_s_lo"], *args)
    _, out["energy_per_token_j_hi"] = derive_throughput_energy(out["power_w_hi"], out["itl_s_hi"], *args)
    return out


_SHORT = {"memory_bandwidth_gb_s": ("{:,.0f} GB/s", "bandwidth"), "fp16_tensor_dense_tflops": ("{:,.0f} TFLOPS", "TFLOPS"),
          "tdp_w": ("{:,.0f} W TDP", "TDP"), "memory_size_gb": ("{:,.0f} GB", "memory"),
          "total_params_b": ("{:,.3g}B parameters", "parameters"),
          "active_params_b": ("{:,.3g}B active parameters", "active parameters")}


def _outside(values: Mapping, ranges: Mapping, columns) -> list[str]:
    """The values among ``columns`` outside ``ranges``, as short text ('8,000 GB/s')."""
    out = []
    for c in columns:
        bounds, v = ranges.get(c), pd.to_numeric(pd.Series([values.get(c)]), errors="coerce").iloc[0]
        if bounds and np.isfinite(v) and not bounds[0] * (1 - 1e-9) <= v <= bounds[1] * (1 + 1e-9):
            out.append(_SHORT[c][0].format(v))
    return out


def _range_reasons(plus: pd.DataFrame, ranges: Mapping, gpus: pd.DataFrame, llm: pd.Series) -> list[str]:
    """Inputs outside the training data of both models (they learned from the same Watt Counts GPUs and LLMs)."""
    by_gpu = gpus.set_index("gpu_id")
    gpu_cols = ("memory_bandwidth_gb_s", "fp16_tensor_dense_tflops", "tdp_w", "memory_size_gb")
    parts = []
    for label, gpu_id in zip(plus["label"], plus["gpu_id"], strict=True):
        out = _outside(by_gpu.loc[gpu_id].to_dict(), ranges, gpu_cols)
        if out:
            parts.append(f"{label} ({', '.join(out)})")
    reasons = []
    if parts:
        limits = ", ".join(_SHORT[c][0].format(ranges[c][1]) for c in gpu_cols if ranges.get(c))
        reasons.append(f"{' and '.join(parts)} lie outside the GPUs both models learned from (at most {limits}), "
                       "so both extrapolate: XGB's trees stay flat beyond the last GPU they saw, WattGPU+'s roofline "
                       "keeps scaling with bandwidth, TFLOPS and TDP")
    size = _outside(llm.to_dict(), ranges, ("total_params_b",))
    if size:
        lo, hi = ranges["total_params_b"]
        reasons.append(f"the LLM ({size[0]}) is larger than any LLM measured ({lo:g}–{hi:g}B)")
    return reasons


def model_disagreement(llm_id: str, request: Mapping, deployments: Sequence[Deployment], gpus: pd.DataFrame,
                       llms: pd.DataFrame, plus_set, paper_set) -> Disagreement:
    """Compare WattGPU+ (``plus_set``) and the paper's XGB (``paper_set``) on energy per token for the
    deployments: do they rank them alike, and do their 80% intervals overlap? Says why they differ and which
    model the evaluation (``default_for`` in WattGPU+'s metadata: MdAPE of both on the same rows) favours."""
    plus = predict_deployments(llm_id, request, deployments, gpus, llms, plus_set)
    paper = _paper_intervals(predict_deployments(llm_id, request, deployments, gpus, llms, paper_set),
                             plus_set.metadata)
    fits = plus["fits_in_memory"].fillna(True).astype(bool).to_numpy() & plus["energy_per_token_j"].notna().to_numpy()
    plus, paper = plus[fits].reset_index(drop=True), paper[fits].reset_index(drop=True)
    table = pd.DataFrame({"Deployment": plus["label"],
                          "WattGPU+ energy per token (J)": plus["energy_per_token_j"],
                          "WattGPU+ 80% interval (J)": [f"{lo:.3g} – {hi:.3g}" for lo, hi in
                                                        zip(plus["energy_per_token_j_lo"],
                                                            plus["energy_per_token_j_hi"], strict=True)],
                          "XGB energy per token (J)": paper["energy_per_token_j"],
                          "XGB 80% interval (J)": [f"{lo:.3g} – {hi:.3g}" for lo, hi in
                                                   zip(paper.get("energy_per_token_j_lo", np.nan * paper.index),
                                                       paper.get("energy_per_token_j_hi", np.nan * paper.index),
                                                       strict=True)]})
    if plus.empty:
        return Disagreement(False, "", table)
    order_plus = list(plus.sort_values("energy_per_token_j", kind="stable")["label"])
    order_paper = list(paper.sort_values("energy_per_token_j", kind="stable")["label"])
    apart = []
    for i in range(len(plus)):
        a_lo, a_hi = plus["energy_per_token_j_lo"].iloc[i], plus["energy_per_token_j_hi"].iloc[i]
        b_lo, b_hi = paper["energy_per_token_j_lo"].iloc[i], paper["energy_per_token_j_hi"].iloc[i]
        if np.isfinite([a_lo, a_hi, b_lo, b_hi]).all() and (a_hi < b_lo or b_hi < a_lo):
            apart.append(plus["label"].iloc[i])
    ranked_apart = len(plus) > 1 and order_plus[0] != order_paper[0]
    if not ranked_apart and not apart:
        return Disagreement(False, ("WattGPU+ and the paper's XGB agree here: the same deployment has the lowest "
                                    "energy per token and their 80% intervals overlap."), table)
    parts = []
    if ranked_apart:
        e = plus.set_index("label")["energy_per_token_j"]
        x = paper.set_index("label")["energy_per_token_j"]
        parts.append(f"**The two models rank these differently**: WattGPU+ puts **{order_plus[0]}** first "
                     f"({e[order_plus[0]]:.3g} J/token), the paper's XGB puts **{order_paper[0]}** first "
                     f"({x[order_paper[0]]:.3g} J/token).")
    if apart:
        parts.append("Their 80% intervals of energy per token do not even overlap for " + ", ".join(apart) + ".")
    llm = llms.set_index("llm_id").loc[llm_id]
    why = _range_reasons(plus, plus_set.metadata.get("ranges") or {}, gpus, llm)
    if bool(llm.get("is_moe")):
        why.append(f"{llm_id} is a mixture-of-experts LLM: XGB learned from dense LLMs only and reads total "
                   "parameters; WattGPU+ reads the active parameters and learned from Watt Counts' MoE runs")
    scenario = request.get("scenario", "offline")
    load = (f"batch size {request.get('batch_size', 0):g}" if scenario == "offline"
            else f"request rate {request.get('request_rate_qps', 0):g} requests/s")
    why.append(f"XGB does not read the workload ({load}, {request.get('input_tokens', 0):g} input and "
               f"{request.get('output_tokens', 0):g} output tokens): it knows only Watt Counts' fixed workloads, "
               "while WattGPU+ computes the decode step and the GPU's busy time from them")
    if any(n > 1 for n in plus["num_gpus"]):
        why.append("with more than one GPU per replica both models extrapolate (no multi-GPU runs on the "
                   "training stack); WattGPU+ adds the all-reduce from physics")
    parts.append("Why, from the data: " + "; ".join(why) + ".")
    parts.append(_favoured(plus, plus_set, scenario))
    return Disagreement(True, " ".join(parts), table)


def _favoured(plus: pd.DataFrame, plus_set, scenario: str) -> str:
    """Which model the evaluation favours for this case: the split that matches it (an unseen GPU: LOGO; an
    unseen LLM: LOLO; else CV), MdAPE of both models on power and ITL in this scenario."""
    default_for = plus_set.metadata.get("default_for") or {}
    unseen_gpu = not bool(plus["gpu_seen"].all())
    unseen_llm = not bool(plus["llm_seen"].all())
    split = "LOGO" if unseen_gpu else "LOLO" if unseen_llm else "CV"
    pool = "offline" if scenario == "offline" else "server"
    cells, wins = [], {"WattGPU+": 0, "XGB": 0}
    for target, words in (("power", "power"), ("itl", "ITL")):
        m = ((default_for.get(target) or {}).get(pool) or {}).get("mdape_pct", {}).get(split)
        if not m or m.get("WattGPU+") is None or m.get("XGB") is None:
            continue
        cells.append(f"{words} {m['WattGPU+']:.1f}% vs {m['XGB']:.1f}%")
        wins["WattGPU+" if m["WattGPU+"] < m["XGB"] else "XGB"] += 1
    if not cells:
        return "The evaluation has no side-by-side record of the two models for this case."
    if wins["WattGPU+"] and wins["XGB"]:
        verdict = "neither model is better on both targets here"
    else:
        verdict = f"the evaluation favours **{'WattGPU+' if wins['WattGPU+'] else 'XGB'}**"
    return (f"For {pool} runs on {_SPLIT_WORDS[split]}, {verdict} (median error, WattGPU+ vs XGB: "
            + ", ".join(cells) + ").")
