"""Golden predictions: both committed model sets (``paper``, ``plus``) on a fixed grid of LLMs x GPUs x workloads,
compared with the recording in ``tests/golden/predictions.csv`` (relative tolerance 1e-9; the predictions are
deterministic).

The grid: 11 LLMs (tiny to 70B, GQA and MHA, MoE, MLA, a quantised checkpoint id, an MXFP4 checkpoint) x 9 GPUs
(seen and unseen in training, an A100 / A800 with 80 GB for vLLM's max_num_seqs rule, an extrapolated Blackwell)
x 12 workloads (offline and server at two rates and the paper's two loads, prompts of 14 / 1000 / 4000 tokens,
outputs of 256 / 1000, bf16 / fp8 / int4, tensor parallel 1 / 2 / 4, a closed loop).

A refactor must leave these numbers unchanged; a change that is meant (a physics fix, retrained models) re-records
the file in its own commit whose message says what changed and why:

    python tests/test_golden.py --regen
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wattgpu_core import planning as P
from wattgpu_core.store import Store

GOLDEN = Path(__file__).resolve().parent / "golden" / "predictions.csv"
MODEL_SETS = ("paper", "plus")
LLMS = (
    "Qwen/Qwen2.5-0.5B-Instruct",  # tiny, GQA, seen
    "meta-llama/Llama-3.1-8B-Instruct",  # GQA, seen
    "meta-llama/Llama-2-13b-chat-hf",  # MHA, seen
    "EleutherAI/gpt-neox-20b",  # MHA, seen
    "google/gemma-3-12b-it",  # seen, given head_dim
    "meta-llama/Llama-3.3-70B-Instruct",  # large, unseen
    "allenai/OLMoE-1B-7B-0924",  # MoE, seen
    "Qwen/Qwen3-30B-A3B",  # MoE, unseen
    "deepseek-ai/DeepSeek-V2-Lite",  # MoE with MLA, unseen
    "hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4",  # quantised checkpoint id (int4)
    "openai/gpt-oss-20b",  # ships in MXFP4
)
GPUS = (
    "a100-sxm4-40gb", "h100-nvl-94gb", "l4", "t4",  # seen
    "a100-sxm4-80gb", "a800-sxm4-80gb", "h100-sxm5-80gb", "rtx-4090",  # unseen
    "b200",  # unseen, an architecture newer than every trained one
)
WORKLOADS = (
    {"scenario": "offline"},
    {"scenario": "server_low"},
    {"scenario": "server_high"},
    {"scenario": "offline", "input_tokens": 1000, "output_tokens": 1000},
    {"scenario": "offline", "input_tokens": 14, "output_tokens": 256, "batch_size": 64, "num_requests": 500},
    {"scenario": "server", "request_rate_qps": 0.5, "input_tokens": 4000, "output_tokens": 256},
    {"scenario": "server", "request_rate_qps": 2.0, "input_tokens": 14, "output_tokens": 256},
    {"scenario": "server", "request_rate_qps": 1.0, "input_tokens": 1000, "output_tokens": 256, "precision": "fp8"},
    {"scenario": "offline", "input_tokens": 1000, "output_tokens": 256, "precision": "int4"},
    {"scenario": "offline", "input_tokens": 1000, "output_tokens": 256, "tensor_parallel": 2},
    {"scenario": "server", "request_rate_qps": 2.0, "input_tokens": 1000, "output_tokens": 1000, "tensor_parallel": 4,
     "precision": "fp8"},
    {"scenario": "server", "max_concurrency": 32, "input_tokens": 1000, "output_tokens": 256},
)
KEYS = ("model_set", "llm", "gpu", "workload")
NUMBERS = ("power_w", "power_w_lo", "power_w_hi", "itl_s", "itl_s_lo", "itl_s_hi", "ttft_s", "ttft_s_lo", "ttft_s_hi",
           "tpot_s", "energy_per_token_j", "energy_per_token_j_lo", "energy_per_token_j_hi", "throughput_tok_s",
           "max_throughput_tok_s", "memory_needed_gb", "memory_available_gb", "kv_capacity_tokens", "max_batch")
FLAGS = ("fits", "saturated", "precision_supported")
TEXTS = ("precision", "notes")
RTOL = 1e-9


def requests() -> pd.DataFrame:
    """The grid as predict() requests, with ``workload`` numbering the workload."""
    rows = [{"llm": llm, "gpu": gpu, "workload": i, **w} for i, w in enumerate(WORKLOADS) for llm in LLMS
            for gpu in GPUS]
    return pd.DataFrame(rows)


def predictions(gpus: pd.DataFrame, llms: pd.DataFrame) -> pd.DataFrame:
    """Today's predictions of both model sets on the grid (one predict() call per model set)."""
    req = requests()
    parts = []
    for name in MODEL_SETS:
        out = P.predict(req, gpus, llms, P.load_model_set(name))
        part = out[["llm", "gpu", "workload", *NUMBERS, *FLAGS, *TEXTS]].copy()
        part.insert(0, "model_set", name)
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    frame["notes"] = frame["notes"].fillna("")
    return frame


def record(path: Path = GOLDEN) -> Path:
    """Predict the grid on a store built from the committed seed and write the golden file."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "seed.duckdb"
        Store.build(db).close()
        with Store.open(db, read_only=True) as store:
            gpus, llms = store.gpus(), store.llms()
    frame = predictions(gpus, llms)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, float_format="%.17g")
    return path


def compare(now: pd.DataFrame, golden: pd.DataFrame, rtol: float = RTOL) -> list[str]:
    """Differences between two prediction frames, one line per (column, first few rows)."""
    if len(now) != len(golden):
        return [f"{len(now)} rows, golden has {len(golden)}"]
    diffs = []
    for c in KEYS:
        if not (now[c].astype(str).to_numpy() == golden[c].astype(str).to_numpy()).all():
            diffs.append(f"key column {c} differs")
    if diffs:
        return diffs
    label = now["model_set"] + " | " + now["llm"] + " | " + now["gpu"] + " | w" + now["workload"].astype(str)
    for c in NUMBERS:
        a, b = now[c].to_numpy(float), golden[c].to_numpy(float)
        same = np.isclose(a, b, rtol=rtol, atol=0.0) | (np.isnan(a) & np.isnan(b)) | (a == b)
        for i in np.flatnonzero(~same)[:3]:
            diffs.append(f"{c} [{label.iloc[i]}]: {a[i]!r} != golden {b[i]!r}")
        if (~same).sum() > 3:
            diffs.append(f"{c}: {(~same).sum()} rows differ in all")
    for c in (*FLAGS, *TEXTS):
        a = now[c].astype(str).to_numpy()
        b = golden[c].fillna("").astype(str).to_numpy() if c == "notes" else golden[c].astype(str).to_numpy()
        bad = np.flatnonzero(a != b)
        for i in bad[:3]:
            diffs.append(f"{c} [{label.iloc[i]}]: {a[i]!r} != golden {b[i]!r}")
        if len(bad) > 3:
            diffs.append(f"{c}: {len(bad)} rows differ in all")
    return diffs


@pytest.fixture(scope="module")
def catalogs(seed_db_path):
    with Store.open(seed_db_path, read_only=True) as store:
        return store.gpus(), store.llms()


def test_golden_grid_covers_what_it_claims(catalogs):
    gpus, llms = catalogs
    golden = pd.read_csv(GOLDEN, keep_default_na=True)
    assert len(golden) == len(MODEL_SETS) * len(LLMS) * len(GPUS) * len(WORKLOADS)
    plus = golden[golden["model_set"] == "plus"]
    assert set(plus["precision"]) >= {"bf16", "fp8", "int4", "mxfp4"}
    assert np.isfinite(plus["power_w"]).mean() > 0.8 and np.isfinite(plus["ttft_s"]).mean() > 0.5
    assert not plus["fits"].all() and plus["fits"].any()  # some deployments do not fit, most do


def test_predictions_match_the_golden_file(catalogs):
    gpus, llms = catalogs
    now = predictions(gpus, llms)
    golden = pd.read_csv(GOLDEN, keep_default_na=True)
    diffs = compare(now, golden)
    assert not diffs, "predictions changed on the golden grid (re-record with `python tests/test_golden.py " \
                      "--regen` only if the change is meant):\n" + "\n".join(diffs[:60])


def test_compare_reports_a_changed_number():
    a = pd.DataFrame({"model_set": ["plus"], "llm": ["x"], "gpu": ["g"], "workload": [0],
                      **{c: [1.0] for c in NUMBERS}, **{c: [True] for c in FLAGS}, **{c: ["t"] for c in TEXTS}})
    b = a.copy()
    assert compare(a, b) == []
    b["itl_s"] = 1.0 + 1e-6
    assert any(d.startswith("itl_s") for d in compare(a, b))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Re-record the golden predictions")
    parser.add_argument("--regen", action="store_true", help="write tests/golden/predictions.csv")
    args = parser.parse_args()
    if not args.regen:
        parser.error("nothing to do; pass --regen")
    print(f"wrote {record()}")
