"""The evaluation protocol: leak-free splits, metrics, baselines, the fast path against the sklearn reference, and
the reproduction of the paper's tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau, pearsonr

from wattgpu_core import evaluation as E
from wattgpu_core.models import PaperModelSet, target_rows, training_frame
from wattgpu_core.store import Store
from wattgpu_core.testing.reference_models import ReferencePaperModelSet, reference_metrics


@pytest.fixture(scope="module")
def frames(seed_db_path):
    with Store.open(seed_db_path, read_only=True) as store:
        return {"paper": training_frame(store, "paper"), "catalog": training_frame(store, "catalog")}


def _subset(frame: pd.DataFrame, n_llms: int = 8) -> pd.DataFrame:
    keep = sorted(frame["llm_id"].unique())[:: max(1, frame["llm_id"].nunique() // n_llms)][:n_llms]
    return frame[frame["llm_id"].isin(keep)].reset_index(drop=True)


# ----------------------------------------------------------------------------------------------------------------
# Splits
@pytest.mark.parametrize("strategy", E.STRATEGIES)
@pytest.mark.parametrize("mode", ["paper", "catalog"])
def test_no_split_leaks_a_group(frames, strategy, mode):
    frame = frames[mode]
    pair = (frame["llm_id"] + "|" + frame["gpu_id"]).to_numpy()
    seen = np.zeros(len(frame), dtype=int)
    folds = E.splits(frame, strategy)
    assert len(folds) == {"CV": 5, "LOGO": frame["gpu_id"].nunique(), "LOLO": frame["llm_id"].nunique()}[strategy]
    for train, test in folds:
        assert not set(pair[train]) & set(pair[test]), "an (LLM, GPU) pair is on both sides"
        if strategy == "LOGO":
            assert frame["gpu_id"].iloc[test].nunique() == 1
            assert not set(frame["gpu_id"].iloc[train]) & set(frame["gpu_id"].iloc[test])
        if strategy == "LOLO":
            assert frame["llm_id"].iloc[test].nunique() == 1
            assert not set(frame["llm_id"].iloc[train]) & set(frame["llm_id"].iloc[test])
        seen[test] += 1
    assert (seen == 1).all(), "every row is predicted exactly once"


def test_cv_keeps_every_repeat_and_scenario_of_a_pair_together(frames):
    frame = frames["catalog"]
    fold_of = np.full(len(frame), -1)
    for i, (_, test) in enumerate(E.splits(frame, "CV")):
        fold_of[test] = i
    per_pair = pd.Series(fold_of).groupby((frame["llm_id"] + "|" + frame["gpu_id"]).to_numpy()).nunique()
    assert (per_pair == 1).all()


# ----------------------------------------------------------------------------------------------------------------
# Metrics
def test_mdape_and_pearson_by_hand():
    assert E.mdape_pct([100, 200, 400], [110, 180, 400]) == pytest.approx(10.0)
    assert E.mdape_pct([0.0, 100.0], [5.0, 150.0]) == pytest.approx(50.0)  # |y| <= 1e-9 is skipped
    y, p = np.array([1.0, 2.0, 3.0, 5.0]), np.array([1.5, 1.9, 3.7, 4.0])
    assert E.pearson_r(y, p) == pytest.approx(pearsonr(y, p)[0])
    assert math.isnan(E.pearson_r(y, np.ones(4)))


def test_kendall_tau_b_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    for n in (2, 3, 8, 42):
        for _ in range(50):
            x, y = rng.integers(0, 4, n).astype(float), rng.integers(0, 5, n).astype(float)
            ours, ref = E.kendall_tau_b(x, y), kendalltau(x, y).statistic
            assert (math.isnan(ours) and math.isnan(ref)) or ours == pytest.approx(ref, abs=1e-12)


def _toy() -> pd.DataFrame:
    # Two LLMs x three GPUs, one scenario, two repeats each (averaged before ranking).
    rows = []
    truth = {("a", "g1"): 1.0, ("a", "g2"): 2.0, ("a", "g3"): 3.0, ("b", "g1"): 3.0, ("b", "g2"): 1.0,
             ("b", "g3"): 2.0}
    pred = {("a", "g1"): 1.0, ("a", "g2"): 3.0, ("a", "g3"): 2.0, ("b", "g1"): 1.0, ("b", "g2"): 4.0,
            ("b", "g3"): 3.0}
    for (llm, gpu), y in truth.items():
        for rep in (-0.1, 0.1):
            rows.append({"llm_id": llm, "gpu_id": gpu, "scenario_detail": "offline", "y_true": y + rep,
                         "y_pred": pred[(llm, gpu)]})
    return pd.DataFrame(rows)


def test_group_taus_and_gpu_choice_by_hand():
    toy = _toy()
    # LLM a: true g1<g2<g3, predicted g1<g3<g2: 2 concordant, 1 discordant pair -> tau 1/3
    # LLM b: true g2<g3<g1, predicted g1<g3<g2: all 3 pairs discordant -> tau -1; mean -1/3
    assert E.mean_kendall_tau(toy, "gpu_id") == pytest.approx(-1 / 3)
    # Ranking LLMs per GPU: g1 predicted equal (skipped); g2 true a>b, predicted a<b (-1); g3 likewise (-1)
    assert E.mean_kendall_tau(toy, "llm_id") == pytest.approx(-1.0)
    # Lowest GPU: a -> g1, predicted g1 (hit); b -> g2, predicted order g1, g3, g2 (hit only in the top 3)
    assert E.gpu_choice_accuracy(toy, 1) == pytest.approx(50.0)
    assert E.gpu_choice_accuracy(toy, 2) == pytest.approx(50.0)
    assert E.gpu_choice_accuracy(toy, 3) == pytest.approx(100.0)


# ----------------------------------------------------------------------------------------------------------------
# Baselines and the paper's quirk
def test_paper_quirk_drops_h100_nvl(frames):
    assert E.quirk_excluded_gpus(frames["paper"]) == ("h100-nvl-94gb",)


def test_baselines_reproduce_the_paper_exactly(frames):
    result = E.evaluate_frame(frames["paper"], True, model_sets=())
    for (target, model, scenario, strategy), paper in E.PAPER_RESULTS.items():
        if strategy != "-" or (target, scenario) == ("itl", "server"):
            continue  # server ITL is defined differently in our copy (TTFT included)
        rec = result.record(target, model, scenario, strategy)
        assert round(rec["mdape_pct"], 1) == paper[0], (model, scenario)
        assert round(rec["pearson_r"], 3) == pytest.approx(paper[1], abs=1e-3), (model, scenario)
        assert round(rec["gpu_tau"], 2) == paper[2], (model, scenario)
    assert math.isnan(result.record("power", "TDP", "offline", "-")["llm_tau"])
    counted = result.predictions[("TDP", "power", "-")]
    assert not counted.loc[counted["gpu_id"] == "h100-nvl-94gb", "counted"].any()


def test_all_gpu_mode_counts_every_gpu(frames):
    result = E.evaluate_frame(frames["catalog"], False, model_sets=())
    assert result.excluded_gpus == ()
    rec = result.record("power", "TDP", "offline", "-")
    assert rec["n_rows"] == int((frames["catalog"]["scenario"] == "offline").sum())


# ----------------------------------------------------------------------------------------------------------------
# Fast path vs the straightforward sklearn reference
@pytest.mark.parametrize("target", ["power", "itl"])
def test_fast_out_of_fold_matches_the_sklearn_reference(frames, target):
    rows = {target: target_rows(_subset(frames["paper"]), target, PaperModelSet().features(target))}
    fast = E.out_of_fold(PaperModelSet(), rows, ["LOGO"], n_jobs=2)
    ref = E.out_of_fold(ReferencePaperModelSet(), rows, ["LOGO"], n_jobs=1)
    (fp, ff), (rp, rf) = fast[(target, "LOGO")], ref[(target, "LOGO")]
    np.testing.assert_array_equal(ff, rf)
    rel = np.abs(fp - rp) / np.abs(rp)
    # Identical up to float rounding of the gradient sums (duplicate rows are collapsed into weights), which can
    # flip exact ties between equally good splits on a few rows; the metrics agree far within the tolerances.
    assert np.median(rel) < 1e-5
    assert abs(E.mdape_pct(rows[target][E.TARGET_COLUMNS[target]], fp)
               - E.mdape_pct(rows[target][E.TARGET_COLUMNS[target]], rp)) < 0.1


def test_evaluate_frame_records_progress_and_predictions(frames):
    calls = []
    sub = _subset(frames["catalog"], 6)
    result = E.evaluate_frame(sub, False, progress=lambda f, m: calls.append((f, m)))
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(calls) > 10
    keys = {"target", "model", "scenario", "strategy", "mdape_pct", "pearson_r", "gpu_tau", "llm_tau", "n_rows"}
    for rec in result.records:
        assert keys <= set(rec)
        assert rec["target"] in ("power", "itl") and rec["scenario"] in ("offline", "server")
    combos = {(r["target"], r["model"], r["strategy"]) for r in result.records}
    assert ("power", "XGB", "LOLO") in combos and ("itl", "Roofline", "-") in combos
    pred = result.predictions[("XGB", "itl", "CV")]
    assert pred["y_pred"].notna().all() and (pred["fold"] >= 0).all()
    assert set(pred["itl_definition"]) == {"offline_duration_per_token", "server_e2e_per_token"}
    per_gpu = E.error_breakdown(result.predictions[("XGB", "power", "LOGO")], "gpu_id")
    assert set(per_gpu["gpu_id"]) == set(sub["gpu_id"])
    json_records = E.records_for_json(result)
    assert all(v is None or not (isinstance(v, float) and math.isnan(v)) for r in json_records for v in r.values())


def test_paper_tables_are_reproduced(frames):
    """The issue's acceptance: power LOGO/LOLO within 0.3 points and 0.03 tau, ITL offline within 3 points."""
    result = E.evaluate_frame(frames["paper"], True)
    for scenario in ("offline", "server"):
        for strategy in ("LOGO", "LOLO"):
            rec = result.record("power", "XGB", scenario, strategy)
            paper = E.PAPER_RESULTS[("power", "XGB", scenario, strategy)]
            assert abs(rec["mdape_pct"] - paper[0]) <= 0.3, (scenario, strategy, rec["mdape_pct"])
            assert abs(rec["gpu_tau"] - paper[2]) <= 0.03, (scenario, strategy)
            assert abs(rec["llm_tau"] - paper[3]) <= 0.03, (scenario, strategy)
    for strategy in E.STRATEGIES:
        rec = result.record("itl", "XGB", "offline", strategy)
        assert abs(rec["mdape_pct"] - E.PAPER_RESULTS[("itl", "XGB", "offline", strategy)][0]) <= 3.0, strategy
    text = E.format_tables(result)
    assert "h100-nvl-94gb" in text and "TTFT included" in text and "paper: MdAPE" in text


def test_fast_metrics_equal_the_straightforward_ones(frames):
    result = E.evaluate_frame(_subset(frames["catalog"], 6), False, strategies=("LOGO",))
    for (model, target, _), pred in result.predictions.items():
        for scenario in ("offline", "server"):
            part = pred[pred["counted"] & (pred["scenario"] == scenario)]
            ours, ref = E.metrics(part), reference_metrics(part)
            for key, value in ref.items():
                if isinstance(value, float) and math.isnan(value):
                    assert math.isnan(ours[key]), (model, target, key)
                else:
                    assert ours[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (model, target, key)


def test_gpu_choice_regret_by_hand():
    """Extra value (%) of the GPU predicted lowest over the truly lowest, per (LLM, scenario), repeats averaged."""
    frame = pd.DataFrame({
        "llm_id": ["a"] * 5 + ["b"] * 2 + ["c"],
        "scenario_detail": ["offline"] * 3 + ["server_low"] * 2 + ["offline"] * 3,
        "gpu_id": ["g1", "g2", "g2", "g1", "g2", "g1", "g2", "g1"],
        "y_true": [1.0, 2.0, 1.0, 4.0, 5.0, 3.0, 2.0, 9.0],
        "y_pred": [2.0, 1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0]})
    # a/offline: g2 (mean 1.5) picked, truly lowest g1 (1.0): 50%; a/server_low: g1 picked = lowest: 0%;
    # b/offline: tie in prediction, the first (g1, 3.0) over 2.0: 50%; c has one GPU: skipped.
    assert E.gpu_choice_regret_pct(frame) == pytest.approx((50.0 + 0.0 + 50.0) / 3)
