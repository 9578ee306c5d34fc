"""Compare GPUs: every GPU that can hold one LLM, ranked for one workload, with the Pareto frontier, the measured
runs beside the predictions, and the ranked table shaped for display and download.

The ranking itself is the core's (:func:`wattgpu_core.ranking.rank_gpus`); this module only splits it into what
the page shows (ranked, cannot hold the model, lacking specs) and words it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from wattgpu_core.catalog import GPU_REQUIRED_FIELDS
from wattgpu_core.errors import WattGPUError
from wattgpu_core.ranking import rank_gpus, rankable_gpus
from wattgpu_core.safety import csv_bytes

from .figures import SOURCE_NAMES
from .formats import count, short_num, sig
from .labels import label
from .url_state import Workload


def pareto_mask(frame: pd.DataFrame, x: str = "itl_s", y: str = "energy_per_token_j") -> np.ndarray:
    """True for rows no other row beats on both ``x`` and ``y`` (both minimised)."""
    xs, ys = frame[x].to_numpy(float), frame[y].to_numpy(float)
    keep = np.zeros(len(frame), dtype=bool)
    best_y = np.inf
    for i in np.lexsort((ys, xs)):
        if not (np.isfinite(xs[i]) and np.isfinite(ys[i])):
            continue
        if ys[i] < best_y:
            keep[i] = True
            best_y = ys[i]
    return keep


@dataclass(frozen=True)
class Comparison:
    """The result of comparing GPUs for one LLM and workload."""

    llm_id: str
    workload: Workload
    ranked: pd.DataFrame  # GPUs that can hold the model, best energy per token first
    cannot_hold: pd.DataFrame  # GPUs whose memory is too small
    lacking_specs: pd.DataFrame  # NVIDIA GPUs missing a spec the models need
    measured: pd.DataFrame  # measured runs of this LLM and a similar workload, per GPU
    notes: tuple[str, ...] = ()  # caveats that hold for every ranked GPU (per-GPU ones stay in ranked["notes"])

    @property
    def best(self) -> pd.Series | None:
        """The top-ranked GPU, never a saturated one (None when every GPU is saturated)."""
        if not len(self.ranked) or bool(self.ranked.iloc[0].get("saturated", False)):
            return None
        return self.ranked.iloc[0]


def compare_gpus(llm_id: str, workload: Workload, gpus: pd.DataFrame, llms: pd.DataFrame, model_set,
                 runs: pd.DataFrame | None = None) -> Comparison:
    """Predict every candidate GPU for ``llm_id`` under ``workload``, ranked by the one ranking
    (:func:`wattgpu_core.ranking.rank_gpus`), split into those that can hold the model and those that cannot."""
    if llm_id not in set(llms["llm_id"]):
        raise WattGPUError(f"unknown LLM {llm_id!r}; pick one from the list or add its config.json")
    usable, lacking = rankable_gpus(gpus)
    names = gpus.set_index("gpu_id")["name"]
    if usable.empty:
        empty = pd.DataFrame(columns=["gpu_id", "gpu_name"])
        return Comparison(llm_id, workload, empty, empty, _lacking_table(lacking), empty)
    pred = rank_gpus(llm_id, workload.as_request(), usable, llms, model_set)
    pred = pred.merge(usable[["gpu_id", "name", "memory_size_gb", "tdp_w", "generation", "form_factor_class",
                              "user_defined"]].rename(columns={"name": "gpu_name"}), on="gpu_id", how="left")
    pred.insert(0, "rank", pred.pop("rank"))
    pred["itl_ms"] = pred["itl_s"] * 1000
    common, pred["notes"] = split_notes(pred["notes"] if "notes" in pred else pd.Series("", index=pred.index))
    fits = pred["fits"]
    ranked = pred[fits].reset_index(drop=True)
    ranked["rank"] = ranked["rank"].astype(int)
    ranked["on_frontier"] = pareto_mask(ranked)
    cannot = pred[~fits].copy()
    weights = weights_gb_16bit(llms.set_index("llm_id").loc[llm_id])
    if "memory_needed_gb" in cannot:
        cannot["reason"] = [f"needs {n:.1f} GB, has {a:.1f} GB (margin {a - n:.1f} GB)" if np.isfinite(n) and
                            np.isfinite(a) else "cannot run this precision or hold the model"
                            for n, a in zip(cannot["memory_needed_gb"], cannot["memory_available_gb"], strict=True)]
    else:
        cannot["reason"] = [f"needs about {weights:.0f} GB for 16-bit weights alone; has {m:.0f} GB"
                            for m in cannot["memory_size_gb"]]
    cannot = cannot.sort_values("memory_size_gb", ascending=False)[["gpu_id", "gpu_name", "memory_size_gb", "reason"]]
    measured = measured_points(runs, llm_id, workload, names) if runs is not None else _empty_measured()
    measured = measured[measured["gpu_id"].isin(usable["gpu_id"])].reset_index(drop=True)
    return Comparison(llm_id, workload, ranked, cannot.reset_index(drop=True), _lacking_table(lacking), measured,
                      common)


def split_notes(notes: pd.Series) -> tuple[tuple[str, ...], pd.Series]:
    """(notes every row shares, the remaining notes per row); notes are '; '-separated strings."""
    parts = notes.fillna("").astype(str).map(lambda t: [x.strip() for x in t.split("; ") if x.strip()])
    if parts.empty:
        return (), notes
    common = set(parts.iloc[0])
    for p in parts.iloc[1:]:
        common &= set(p)
    shared = tuple(x for x in parts.iloc[0] if x in common)
    return shared, parts.map(lambda p: "; ".join(x for x in p if x not in common))


def weights_gb_16bit(llm: pd.Series) -> float:
    return 2.0 * float(llm["total_params_b"])


def _lacking_table(lacking: pd.DataFrame) -> pd.DataFrame:
    if lacking.empty:
        return pd.DataFrame(columns=["gpu_id", "gpu_name", "reason"])
    missing = lacking[list(GPU_REQUIRED_FIELDS)].isna()
    reason = missing.apply(lambda r: "catalog lacks " + ", ".join(label(c) for c, m in r.items() if m), axis=1)
    return pd.DataFrame({"gpu_id": lacking["gpu_id"], "gpu_name": lacking["name"], "reason": reason})


def _empty_measured() -> pd.DataFrame:
    return pd.DataFrame(columns=["gpu_id", "gpu_name", "itl_s", "energy_per_token_j", "power_w", "n_runs",
                                 "source_id"])


def measured_points(runs: pd.DataFrame, llm_id: str, workload: Workload, gpu_names: pd.Series) -> pd.DataFrame:
    """Mean measured ITL, energy per token and power per GPU for runs of ``llm_id`` close to ``workload``.

    Offline runs match an offline workload; server runs match when their request rate is within a factor of 3.
    Only single-GPU runs with both ITL and energy per token count.
    """
    if runs is None or runs.empty:
        return _empty_measured()
    r = runs[(runs["llm_id"] == llm_id) & (runs["scenario"] == workload.scenario)]
    r = r[r["num_gpus"].fillna(1).eq(1) & r["itl_s"].notna() & r["energy_per_token_j"].notna()]
    if workload.scenario == "server":
        qps = r["request_rate_qps"]
        r = r[qps.notna() & (qps / workload.request_rate_qps).between(1 / 3, 3)]
    if r.empty:
        return _empty_measured()
    out = (r.groupby(["gpu_id", "source_id"])  # one point per GPU and source: sources are not averaged together
           .agg(itl_s=("itl_s", "mean"), energy_per_token_j=("energy_per_token_j", "mean"),
                power_w=("power_w", "mean"), n_runs=("run_id", "count"))
           .reset_index())
    out = out[["gpu_id", "itl_s", "energy_per_token_j", "power_w", "n_runs", "source_id"]]
    out.insert(1, "gpu_name", out["gpu_id"].map(gpu_names).fillna(out["gpu_id"]))
    return out


RANKED_COLUMNS = ("rank", "gpu_name", "saturated", "energy_per_token_j", "itl_ms", "power_w", "throughput_tok_s",
                  "max_throughput_tok_s", "memory_size_gb", "tdp_w", "on_frontier", "gpu_seen", "user_defined",
                  "notes")


_OPTIONAL_EXTRAS = ("serving_stack", "out_of_range")


_DIGITS = {"energy_per_token_j": 3, "itl_ms": 2, "throughput_tok_s": 3, "max_throughput_tok_s": 3}


_DECIMALS = {"power_w": 0, "memory_size_gb": 0, "tdp_w": 0}


def number_formats(table: pd.DataFrame) -> dict[str, str]:
    """Display formats (Streamlit NumberColumn presets / printf) for the labelled columns of ``display_table``."""
    formats = {}
    for column in table.columns:
        if column.startswith(("Throughput", "Power", "Memory (GB)", "TDP")):
            formats[column] = "localized"
    return formats


def display_table(ranked: pd.DataFrame) -> pd.DataFrame:
    """The ranked comparison with readable column names and rounded numbers; where the model set gives 80%
    intervals, each metric is followed by one text column "low – high" (keeps the table narrow)."""
    ranked = ranked.assign(itl_ms=ranked["itl_s"] * 1000) if "itl_s" in ranked else ranked
    cols = [c for c in RANKED_COLUMNS if c in ranked.columns]
    cols += [c for c in _OPTIONAL_EXTRAS if c in ranked.columns]
    out = ranked[cols].copy()
    for c in out.columns:
        if c in _DIGITS:
            out[c] = out[c].map(lambda v, d=_DIGITS[c]: sig(v, d))
        elif c in _DECIMALS:
            out[c] = out[c].round(_DECIMALS[c])
    out = out.rename(columns={c: label(c) for c in out.columns})
    for base, shown, scale in (("energy_per_token_j", "energy_per_token_j", 1.0), ("itl_s", "itl_ms", 1000.0),
                               ("power_w", "power_w", 1.0), ("throughput_tok_s", "throughput_tok_s", 1.0)):
        lo, hi = f"{base}_lo", f"{base}_hi"
        if lo not in ranked or hi not in ranked or label(shown) not in out:
            continue
        digits = _DIGITS.get(shown, 3)
        text = [f"{short_num(a * scale, digits)} – {short_num(b * scale, digits)}"
                if np.isfinite(a) and np.isfinite(b) else "–" for a, b in zip(ranked[lo], ranked[hi], strict=True)]
        out.insert(out.columns.get_loc(label(shown)) + 1, f"{label(shown).split(' (')[0]} 80% interval", text)
    return out


def download_csv(comparison: Comparison) -> bytes:
    """The comparison as CSV: ranked GPUs then those that cannot hold the model, units in column names."""
    ranked = comparison.ranked.drop(columns=["itl_ms"], errors="ignore").copy()
    ranked = ranked.drop(columns=["llm", "gpu"], errors="ignore")
    if "llm_id" not in ranked:
        ranked.insert(0, "llm_id", comparison.llm_id)
    for k, v in comparison.workload.as_request().items():
        ranked[k] = v
    others = comparison.cannot_hold.assign(llm_id=comparison.llm_id)
    return csv_bytes(pd.concat([ranked, others], ignore_index=True))


def display_other(frame: pd.DataFrame) -> pd.DataFrame:
    """GPUs left out of a ranking, with the reason, for display."""
    cols = [c for c in ("gpu_name", "memory_size_gb", "reason") if c in frame.columns]
    out = frame[cols].copy()
    if "memory_size_gb" in out:
        out["memory_size_gb"] = out["memory_size_gb"].round(0)
    return out.rename(columns={c: label(c) for c in cols})


def csv_name(comparison: Comparison) -> str:
    w = comparison.workload
    load = f"offline-b{w.batch_size}" if w.scenario == "offline" else f"server-{w.request_rate_qps:g}qps"
    return f"wattgpu-{comparison.llm_id.replace('/', '_')}-{load}-in{w.input_tokens}-out{w.output_tokens}.csv"


def pareto_caption(comparison: Comparison) -> str:
    """One sentence under the Pareto plot: what the frontier and the measured points are."""
    front = comparison.ranked[comparison.ranked["on_frontier"]]
    text = (f"{count(len(comparison.ranked), 'GPU')} predicted for {comparison.workload.describe()}. The red line "
            f"joins the {count(len(front), 'GPU')} no other GPU beats on both energy per token and ITL (the Pareto "
            "frontier).")
    m = comparison.measured
    if len(m):
        sources = sorted({SOURCE_NAMES.get(s, s) for s in m["source_id"]})
        n_gpus = m["gpu_id"].nunique()
        text += (f" Open symbols, labelled with GPU and source, are measurements in the store for this LLM and a "
                 f"similar workload ({int(m['n_runs'].sum())} runs on {n_gpus} GPU{'s' if n_gpus != 1 else ''}; "
                 f"{'source' if len(sources) == 1 else 'sources'}: {', '.join(sources)}).")
    else:
        text += " The store has no measurement of this LLM under a similar workload to show beside the predictions."
    return text
