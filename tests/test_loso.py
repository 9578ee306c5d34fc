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
    assert other_sources_sentence({}) == ""


def test_calibrated_stacks_default_first():
    meta = M.read_metadata("plus", MODELS_DIR)
    stacks = plus.calibrated_stacks(meta)
    assert stacks[0] == "vLLM 0.14" and "vLLM 0.5" in stacks and len(set(stacks)) == len(stacks)
    assert P.load_model_set("plus").calibrated_stacks == stacks
    assert P.load_model_set("default").calibrated_stacks == stacks
    assert plus.calibrated_stacks({}) == ["vLLM 0.14"]
