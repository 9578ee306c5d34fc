"""Leave-one-source-out metrics travel with the committed WattGPU+ models, Home states them in one sentence, and the
calibrated serving stacks are exposed by the core."""

from __future__ import annotations

import math

from wattgpu_core import models as M
from wattgpu_core import planning as P
from wattgpu_core import plus
from wattgpu_core.loso import format_loso, other_sources_sentence, pooled
from wattgpu_core.paths import MODELS_DIR


def test_committed_models_carry_loso_metrics_per_source_and_target():
    meta = M.read_metadata("plus", MODELS_DIR)
    records = meta["loso_metrics"]
    assert {r["source_id"] for r in records} >= {"mlenergy_v2", "argonne", "tokenpowerbench"}
    assert {r["target"] for r in records} == {"power", "itl"}
    for r in records:
        assert r["strategy"] == "LOSO" and r["n_rows"] > 0 and r["mdape_pct"] >= 0
        cov = r["interval_coverage_pct"]
        assert cov is None or 0 <= cov <= 100
    med = pooled(records)
    assert all(math.isfinite(v) for v in med.values())
    assert "MdAPE" in format_loso(records)


def test_home_sentence_names_the_error_and_what_to_do():
    meta = M.read_metadata("plus", MODELS_DIR)
    text = other_sources_sentence(meta)
    med = pooled(meta["loso_metrics"])
    assert f"{med['power']:.0f}% for power" in text and f"{med['itl']:.0f}% for time per token" in text
    assert "choose your serving stack" in text and "upload" in text
    # stacks listed per source, an unversioned stack under its source's name
    assert "TokenPowerBench results: vLLM" in text and "ML.ENERGY Leaderboard v2: vLLM 0.5" in text
    assert "version not stated" not in text
    assert other_sources_sentence({}) == ""


def test_calibrated_stacks_default_first():
    meta = M.read_metadata("plus", MODELS_DIR)
    stacks = plus.calibrated_stacks(meta)
    assert stacks[0] == "vLLM 0.14" and "vLLM 0.5" in stacks and len(set(stacks)) == len(stacks)
    assert P.load_model_set("plus").calibrated_stacks == stacks
    assert P.load_model_set("default").calibrated_stacks == stacks
    assert plus.calibrated_stacks({}) == ["vLLM 0.14"]
    # calibrated = learnt from: every other stack has an offset, and ML.ENERGY v1's 2023 runs (no LLM shapes, no
    # time per token) calibrate nothing
    offsets = meta["intervals"]["stack_ln_offsets"]
    assert all(any(s in offsets[t] for t in offsets) for s in stacks[1:])
    assert not any("FastChat" in s for s in stacks)


def test_cross_validation_page_table_reports_coverage_per_source_with_and_without_widening():
    from pages.view import cross_validation as view_cv

    meta = M.read_metadata("plus", MODELS_DIR)
    table = view_cv.loso_table(P.load_model_set("default"))
    assert len(table) == len(meta["loso_metrics"]) and set(table["Source"]) >= {"mlenergy_v2", "argonne"}
    for r, (_, row) in zip(meta["loso_metrics"], table.iterrows(), strict=True):
        assert row["Runs"] == r["n_rows"]
        assert row["Coverage (%)"] == f"{r['interval_coverage_pct']:.0f}"
        assert r["interval_coverage_pct"] >= r["interval_coverage_unwidened_pct"]
        assert row["LOGO-only coverage (%)"] == f"{r['interval_coverage_unwidened_pct']:.0f}"
        widening = row["Uncalibrated runs (widening)"]
        assert widening == "0" if not r["n_uncalibrated_stack"] else widening.startswith(f"{r['n_uncalibrated_stack']:,} (x")
    stacks = dict(zip(table["Source"], table["Stacks"], strict=False))
    assert stacks["argonne"] == "Deepspeed-MII (no version stated), TensorRT-LLM (no version stated), vLLM (no version stated)"
    assert stacks["mlenergy_v2"] == "vLLM 0.5"


def test_home_sentence_states_the_widening_for_uncalibrated_stacks():
    meta = M.read_metadata("plus", MODELS_DIR)
    text = other_sources_sentence(meta)
    p = plus.uncalibrated_stack_shift(meta, "power")
    t = plus.uncalibrated_stack_shift(meta, "itl")
    assert f"power x{math.exp(p[0]):.2f} to x{math.exp(p[1]):.2f}" in text
    assert f"time per token x{math.exp(t[0]):.2f} to x{math.exp(t[1]):.2f}" in text
