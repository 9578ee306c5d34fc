"""Honest cross-validation across sources: a held-out GPU (LOGO) or LLM (LOLO) is absent from every source a fold
learns from, in the folds, in the nested interval runs and when a whole source is held out (LOSO)."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from wattgpu_core import evaluation as E
from wattgpu_core import loso
from wattgpu_core.models import ModelSet, auxiliary_frame, training_frame
from wattgpu_core.store import Store


@pytest.fixture(scope="module")
def data(seed_db_path):
    with Store.open(seed_db_path, read_only=True) as store:
        return training_frame(store), auxiliary_frame(store)


class _Constant:
    def predict(self, rows):
        return np.ones(len(rows))


class SpyModelSet(ModelSet):
    """Records what every fit sees; predicts 1."""

    name = label = "spy"
    uses_aux = True
    targets = ("power",)

    def __init__(self):
        self.fits: list[tuple[pd.DataFrame, pd.DataFrame]] = []
        self._lock = threading.Lock()

    def features(self, target):
        return ("scenario_detail",)

    def fit(self, target, train, *, aux=None, n_threads=1, seed=0):
        with self._lock:
            self.fits.append((train, aux if aux is not None else train.iloc[:0]))
        return _Constant()


def test_the_auxiliary_data_spans_several_sources_and_shares_gpus_and_llms_with_watt_counts(data):
    frame, aux = data
    assert {"mlenergy_v2", "argonne", "tokenpowerbench"} <= set(aux["source_id"])
    assert set(aux["gpu_id"]) & set(frame["gpu_id"])  # otherwise the checks below would be empty
    assert set(aux["llm_id"]) & set(frame["llm_id"]) or set(aux["gpu_id"]) & set(frame["gpu_id"])


@pytest.mark.parametrize("strategy, column", [("LOGO", "gpu_id"), ("LOLO", "llm_id")])
def test_a_held_out_group_is_absent_from_every_source_of_every_fold(data, strategy, column):
    frame, aux = data
    spy = SpyModelSet()
    rows = {"power": frame}
    out = E.out_of_fold(spy, rows, (strategy,), aux_by_target={"power": aux}, n_jobs=2)
    folds = out[("power", strategy)][1]
    assert len(spy.fits) == frame[column].nunique()
    for train, aux_seen in spy.fits:
        held = set(frame[column]) - set(train[column])
        assert len(held) == 1
        assert not held & set(aux_seen[column]), f"{held} in the auxiliary rows of sources {set(aux_seen['source_id'])}"
        if column == "llm_id":  # nor its base / instruct variant (same architecture), in any source
            keys = {E.llm_weights_key(h) for h in held}
            assert not keys & set(aux_seen["llm_id"].map(E.llm_weights_key))
        # and every other auxiliary row is used, from every source
        expected = aux[~aux[column].isin(held)]
        if column == "llm_id":
            expected = expected[~expected["llm_id"].map(E.llm_weights_key).isin(keys)]
        assert len(aux_seen) == len(expected)
    assert (folds >= 0).all()


def test_variants_of_one_llm_share_a_key():
    key = E.llm_weights_key
    assert key("meta-llama/Llama-3.1-8B") == key("meta-llama/Llama-3.1-8B-Instruct") \
        == key("meta-llama/Meta-Llama-3.1-8B-Instruct")
    assert key("google/gemma-2-9b-it") == key("google/gemma-2-9b")
    assert key("meta-llama/Llama-3.1-8B") != key("meta-llama/Llama-3.1-70B")
    assert key("meta-llama/Llama-2-7b-hf") == key("meta-llama/Llama-2-7b-chat-hf")


def test_nested_interval_runs_hold_out_both_gpus_in_every_source(data):
    frame, aux = data
    keep = sorted(frame["gpu_id"].unique())[:4]
    small = frame[frame["gpu_id"].isin(keep)].reset_index(drop=True)
    spy = SpyModelSet()
    E.nested_logo_intervals(spy, {"power": small}, {"power": np.ones(len(small))}, level=0.8,
                            aux_by_target={"power": aux}, n_jobs=2)
    # one inner fit per unordered pair of held-out GPUs (it serves both: trained without either)
    assert len(spy.fits) == 4 * 3 // 2
    pairs = set()
    for train, aux_seen in spy.fits:
        held = set(keep) - set(train["gpu_id"])
        assert len(held) == 2 and not held & set(aux_seen["gpu_id"])
        pairs.add(frozenset(held))
    assert len(pairs) == 6


def test_leave_one_source_out_never_shows_the_source(data, monkeypatch):
    from wattgpu_core import plus

    frame, aux = data
    seen = []

    def spy_fit(self, target, train, *, aux=None, n_threads=1, seed=0):
        seen.append((target, set(train["source_id"]), set(aux["source_id"])))
        return _Constant()

    monkeypatch.setattr(plus.PlusModelSet, "fit", spy_fit)
    records, preds = loso.leave_one_source_out(plus.PlusModelSet(), frame, aux, n_jobs=1)
    held = loso.held_out_sources(aux)
    assert {"mlenergy_v2", "argonne", "tokenpowerbench"} <= set(held)
    assert "wattcounts" not in held
    assert {r["source_id"] for r in records} == set(preds["source_id"])
    for source in set(preds["source_id"]):
        fits = [s for s in seen if source not in s[2]]
        assert fits, source
    for _, train_sources, aux_sources in seen:
        assert train_sources == {"wattcounts"}
        assert len(set(held) - aux_sources) == 1  # exactly one source missing per fit
    assert all(r["strategy"] == "LOSO" and r["n_rows"] > 0 for r in records)


def test_uncalibrated_stack_widening_is_learnt_without_the_held_out_source(data, monkeypatch):
    """In LOSO, the widening of an uncalibrated stack's intervals comes from the fold's own training stacks: the
    held-out source's runs never reach the offsets, and its runs on stacks the fold lacks are widened."""
    from wattgpu_core import plus

    frame, aux = data
    offsets_seen = []
    real_offsets = loso.stack_ln_offsets

    def spy_offsets(model, target, rows, default_stack=loso.DEFAULT_STACK):
        offsets_seen.append(set(rows["source_id"]))
        return real_offsets(model, target, rows, default_stack)

    monkeypatch.setattr(plus.PlusModelSet, "fit", lambda self, target, train, *, aux=None, n_threads=1, seed=0:
                        _Constant())
    monkeypatch.setattr(loso, "stack_ln_offsets", spy_offsets)
    quantiles = {"power": {"offline": (-0.1, 0.1), "server": (-0.1, 0.1)},
                 "itl": {"offline": (-0.1, 0.1), "server": (-0.1, 0.1)}}
    records, preds = loso.leave_one_source_out(plus.PlusModelSet(), frame, aux, quantiles=quantiles, n_jobs=1)
    held = set(loso.held_out_sources(aux))
    assert offsets_seen and all(len(held - s) >= 1 for s in offsets_seen)
    assert len(offsets_seen) == len({(r["source_id"], r["target"]) for r in records})
    ml = [r for r in records if r["source_id"] == "mlenergy_v2"]
    assert ml and all(r["n_uncalibrated_stack"] == r["n_rows"] for r in ml)  # vLLM 0.5 is in no other source
    for r in records:
        lo, hi = r["stack_ln_shift"]
        assert lo <= 0.0 <= hi
        assert r["interval_coverage_pct"] >= r["interval_coverage_unwidened_pct"]
    widened = preds[~preds["stack_calibrated"]]
    base_hi = widened["y_pred"] * np.exp(0.1)
    assert (widened["y_hi"] >= base_hi * (1 - 1e-12)).all()


def test_stack_offsets_and_shift():
    rows = pd.DataFrame({"serving_stack": ["vLLM 0.14", "A", "A", "A", "B", None],
                         "power_w": [5.0, 2.0, 4.0, 8.0, 0.5, 3.0]})
    got = loso.stack_ln_offsets(_Constant(), "power", rows)
    assert got == pytest.approx({"A": np.log(4.0), "B": np.log(0.5)})  # median per stack; default and unnamed out
    assert loso.stack_ln_shift(got) == pytest.approx((np.log(0.5), np.log(4.0)))
    assert loso.stack_ln_shift({"A": 0.3}) == (0.0, 0.3)  # the default stack's 0 is always inside
    assert loso.stack_ln_shift(None) == (0.0, 0.0)
    lo, hi = loso.widen_for_stacks([1.0, 1.0], [2.0, 2.0], [False, True], (np.log(0.5), np.log(4.0)))
    assert lo.tolist() == [1.0, 0.5] and hi.tolist() == [2.0, 8.0]


def test_calibrated_stack_intervals_reach_the_stack_residuals():
    rows = pd.DataFrame({"serving_stack": ["vLLM 0.14"] * 3 + ["A"] * 12 + ["B"] * 3,
                         "power_w": [1.0, 9.0, 1.0] + list(np.exp(np.linspace(-0.5, 0.5, 12))) + [1.0, 1.1, 1.2]})
    q = loso.stack_residual_quantiles(_Constant(), "power", rows)
    assert set(q) == {"A", loso.POOLED}  # B has 3 runs: pooled only; the default stack's runs are not residuals of a
    # calibration
    assert q["A"] == pytest.approx((-0.5, 0.5))  # 12 runs: conformal 10% / 90% = the extremes
    lo, hi = loso.widen_for_calibrated_stacks([0.9, 0.9, 0.9, 0.9], [1.1, 1.1, 1.1, 1.1], [1.0] * 4,
                                              ["vLLM 0.14", "A", "B", None], q)
    assert lo[0] == 0.9 and hi[0] == 1.1 and lo[3] == 0.9  # default stack and no stack: unchanged
    assert lo[1] == pytest.approx(np.exp(min(q["A"][0], q["*"][0]))) and hi[1] == pytest.approx(np.exp(0.5))
    assert (lo[2], hi[2]) == pytest.approx((np.exp(q["*"][0]), np.exp(q["*"][1])))
    assert loso.widen_for_calibrated_stacks([0.9], [1.1], [1.0], ["A"], {})[0][0] == 0.9
