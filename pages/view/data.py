"""The Data page: the catalogs and runs for browsing and searching, an upload's validation and preview, the uploads
table, and the retraining's before/after metrics in words."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from wattgpu_core.importers import FORMATS, canonical_template
from wattgpu_core.retraining import Retraining
from wattgpu_core.safety import md

from .formats import sig
from .labels import label


def _search(frame: pd.DataFrame, columns: list[str], query: str) -> pd.DataFrame:
    if not query or not query.strip():
        return frame
    text = frame[columns].astype(str).agg(" ".join, axis=1).str.lower()
    mask = np.ones(len(frame), dtype=bool)
    for word in query.lower().split():
        mask &= text.str.contains(word, regex=False).to_numpy()
    return frame[mask]


_GPU_BROWSE = ("name", "generation", "form_factor_class", "memory_size_gb", "memory_type", "memory_bandwidth_gb_s",
               "fp16_tensor_dense_tflops", "tdp_w", "release_year", "vendor", "user_defined")


_LLM_BROWSE = ("llm_id", "family", "model_type", "total_params_b", "active_params_b", "is_moe", "num_layers",
               "hidden_size", "num_attention_heads", "num_key_value_heads", "user_defined")


def browse_gpus(gpus: pd.DataFrame, query: str = "") -> pd.DataFrame:
    out = _search(gpus, ["gpu_id", "name", "aliases", "generation", "architecture"], query)[list(_GPU_BROWSE)]
    out = out.assign(release_year=out["release_year"].astype("Int64"))
    return out.rename(columns={c: label(c) for c in out.columns} | {"name": "GPU"})


def browse_llms(llms: pd.DataFrame, query: str = "") -> pd.DataFrame:
    out = _search(llms, ["llm_id", "name", "family", "model_type", "aliases"], query)[list(_LLM_BROWSE)]
    for c in ("num_layers", "hidden_size", "num_attention_heads", "num_key_value_heads"):
        out[c] = out[c].astype("Int64")
    return out.rename(columns={c: label(c) for c in out.columns} | {"llm_id": "LLM (Hugging Face id)"})


def source_options(runs: pd.DataFrame) -> list[str]:
    return sorted(runs["source_id"].dropna().unique())


def browse_runs(runs: pd.DataFrame, gpus: pd.DataFrame, llms: pd.DataFrame, query: str = "",
                sources: list[str] | None = None, scenarios: list[str] | None = None) -> pd.DataFrame:
    r = runs
    if sources:
        r = r[r["source_id"].isin(sources)]
    if scenarios:
        r = r[r["scenario"].isin(scenarios)]
    r = r.assign(gpu_name=r["gpu_id"].map(gpus.set_index("gpu_id")["name"]).fillna(r["gpu_id"]))
    r = _search(r, ["llm_id", "gpu_name", "gpu_id", "source_id"], query)
    out = pd.DataFrame({
        "LLM": r["llm_id"], "GPU": r["gpu_name"], "Scenario": r["scenario"],
        label("batch_size"): r["batch_size"], label("request_rate_qps"): r["request_rate_qps"],
        label("power_w"): r["power_w"].round(1), label("itl_ms"): (r["itl_s"] * 1000).map(lambda v: sig(v, 3)),
        label("energy_per_token_j"): r["energy_per_token_j"].map(lambda v: sig(v, 3)),
        label("throughput_tok_s"): r["throughput_tok_s"].round(0),
        "GPUs": r["num_gpus"], "Source": r["source_id"], "Upload": r["batch_id"],
    })
    return out.reset_index(drop=True)


def formats_markdown() -> str:
    return "Recognised formats:\n" + "\n".join(f"- {text}" for text in FORMATS.values())


def template_csv() -> bytes:
    return canonical_template().encode()


def issues_table(exc) -> pd.DataFrame:
    """A ValidationError's problems, one row each (row 0 means the file as a whole)."""
    return pd.DataFrame({"Row": [i.row if i.row else "file" for i in exc.issues],
                         "Column": [i.column or "–" for i in exc.issues],
                         "Problem": [i.message for i in exc.issues]}).astype({"Row": str})


ON_CONFLICT_CHOICES = {"refuse": "Refuse the file (nothing is written)", "replace": "Replace the stored values",
                       "skip": "Keep the stored values"}


def validation_summary(prepared) -> str:
    fmt = FORMATS.get(prepared.format, prepared.format)
    f = prepared.frame
    return (f"{md(prepared.file_name)}: {len(f):,} valid run{'s' if len(f) != 1 else ''} ({fmt}) for "
            f"{f['llm_id'].nunique()} LLM(s) on {f['gpu_id'].nunique()} GPU(s). Check the preview, then confirm.")


def preview_table(prepared, gpus: pd.DataFrame, llms: pd.DataFrame, n: int = 50) -> pd.DataFrame:
    f = prepared.frame.head(n)
    return browse_runs(f.assign(run_id="", batch_id="(new)"), gpus, llms).drop(columns=["Upload"])


def uploads_table(batches: pd.DataFrame) -> pd.DataFrame:
    b = batches[batches["kind"] != "seed"]
    kinds = {"upload": "Benchmark upload", "custom_gpu": "Custom GPU", "custom_llm": "Custom LLM"}
    return pd.DataFrame({
        "Batch": b["batch_id"], "Kind": b["kind"].map(kinds).fillna(b["kind"]),
        "File or entry": b["file_name"].fillna(b["notes"]), "Format": b["format"],
        "Added (UTC)": pd.to_datetime(b["imported_at"]).dt.strftime("%Y-%m-%d %H:%M:%S"),
        "Runs added": b["n_runs"], "Added by": b["added_by"],
    }).reset_index(drop=True)


@dataclass(frozen=True)
class MetricsChange:
    summary: str
    table: pd.DataFrame
    before: pd.DataFrame  # row_label, mdape_pct
    after: pd.DataFrame


def metrics_change(retraining: Retraining) -> MetricsChange:
    """What a retraining changed: one sentence, and MdAPE before and after per model, target and scenario."""
    rows = retraining.before.merge(retraining.after, on=["target", "model", "scenario", "strategy"],
                                   suffixes=("_before", "_after"))
    row_label = (rows["model"] + ": " + rows["target"].map({"power": "power", "itl": "ITL"}) + ", "
                 + rows["scenario"])
    table = pd.DataFrame({"Model, target and scenario": row_label,
                          "MdAPE before (%)": rows["mdape_pct_before"].round(2),
                          "MdAPE after (%)": rows["mdape_pct_after"].round(2),
                          "Change (points)": (rows["mdape_pct_after"] - rows["mdape_pct_before"]).round(2),
                          "Runs scored": rows["n_rows_after"]})
    summary = (f"Retrained on all the data ({retraining.n_new_runs:,} runs from this upload) and saved beside the "
               "store; every page now predicts with these models. 5-fold grouped CV on the Watt Counts runs, before "
               "and after.")
    if not retraining.in_paper_training:
        summary += (" The paper's XGB learns only from Watt Counts runs of dense LLMs, so its metrics do not move; "
                    "WattGPU+ also learns from this upload (its serving stack, LLMs and GPUs).")
    return MetricsChange(summary, table, pd.DataFrame({"row_label": row_label, "mdape_pct": rows["mdape_pct_before"]}),
                         pd.DataFrame({"row_label": row_label, "mdape_pct": rows["mdape_pct_after"]}))
