"""WattGPU+: no fold (or interval) ever sees its test group, auxiliary rows included; the committed files match
the seed data and load as plain JSON; intervals and out-of-range flags; predictions for any workload and for a GPU
outside the training data (NVIDIA B200) are finite, bounded and move the way physics says."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from wattgpu_core import evaluation as E
from wattgpu_core import models as M
from wattgpu_core import planning as P
from wattgpu_core import plus
from wattgpu_core.paths import MODELS_DIR
from wattgpu_core.physics import serving_stack
from wattgpu_core.plus_itl import PlusItlModel
from wattgpu_core.store import Store


@pytest.fixture(scope="module")
def data(seed_db_path):
    with Store.open(seed_db_path, read_only=True) as store:
        return {"frame": M.training_frame(store, "catalog"), "aux": M.auxiliary_frame(store, "catalog"),
                "gpus": store.gpus(), "llms": store.llms()}


@pytest.fixture(scope="module")
def default_set():
    return P.load_model_set("default")


def _subset(frame: pd.DataFrame, n_llms: int = 6) -> pd.DataFrame:
    keep = sorted(frame["llm_id"].unique())[::7][:n_llms]
    return frame[frame["llm_id"].isin(keep)].reset_index(drop=True)


# ----------------------------------------------------------------------------------------------------------------
# Data and leakage
def test_auxiliary_rows_are_what_the_paper_never_sees(data):
    frame, aux = data["frame"], data["aux"]
    assert not set(aux["run_id"]) & set(frame["run_id"])
    wc = aux[aux["source_id"].eq("wattcounts")]
    assert (wc["total_params_b"] > wc["active_params_b"]).all() and wc["llm_id"].nunique() == 7  # the MoE LLMs
    assert {"mlenergy_v2", "mlenergy_v1", "argonne"} <= set(aux["source_id"])
    assert set(frame["serving_stack"]) == {"vLLM 0.14"} and (frame["max_output_tokens"] == 256).all()
    assert serving_stack(["vLLM", "vLLM", None], ["0.14.1", None, "1.0"]).tolist() == ["vLLM 0.14", "vLLM", None]


def test_runs_without_a_stack_version_are_one_stack_per_source(data, seed_db_path):
    aux = data["aux"]
    stacks = aux.groupby("serving_stack")["source_id"].nunique()
    assert (stacks == 1).all(), stacks[stacks > 1]  # no stack label spans two sources' runs unless versioned
    assert {"vLLM (version not stated in argonne)", "vLLM (version not stated in tokenpowerbench)"} <= set(stacks.index)
    assert "vLLM" not in set(stacks.index)
    with Store.open(seed_db_path, read_only=True) as store:
        runs = store.runs()
    tpb = runs[runs["source_id"].eq("tokenpowerbench")]
    assert tpb["framework"].eq("vLLM").all() and tpb["framework_version"].isna().all()  # as the files give them


def test_short_runs_teach_time_per_token_but_not_power(data, seed_db_path):
    """A run of another source shorter than STEADY_POWER_MIN_S has no power (nor energy) among WattGPU+'s extra
    rows, as its mean is pulled towards idle; its time per token stays. The store keeps the source's numbers."""
    aux = data["aux"]
    wattcounts = aux["source_id"].eq("wattcounts")
    short = (aux["duration_s"] < M.STEADY_POWER_MIN_S) & ~wattcounts
    assert short.sum() >= 100  # most TokenPowerBench runs last 1-10 s
    assert aux.loc[wattcounts, "power_w"].notna().all()  # read as the paper reads that source's dense LLMs
    assert aux.loc[short, ["power_w", "energy_per_token_j"]].isna().all().all()
    assert aux.loc[short, "itl_s"].notna().all()
    assert aux.loc[~short, "power_w"].notna().all()
    with Store.open(seed_db_path, read_only=True) as store:
        runs = store.runs().set_index("run_id")
    stored = runs.loc[aux.loc[short, "run_id"], "power_w"]
    assert stored.notna().all() and (stored > 0).all()
    # The evidence: on the same GPU, TokenPowerBench's mean power rises with the run's length.
    tpb = runs[runs["source_id"].eq("tokenpowerbench") & runs["llm_id"].eq("meta-llama/Llama-3.1-8B")]
    assert tpb.loc[tpb["duration_s"] < 2, "power_w"].median() < 0.7 * tpb.loc[tpb["duration_s"] >= 10, "power_w"].median()


@pytest.mark.parametrize("strategy", E.STRATEGIES)
def test_aux_rows_allowed_in_a_fold_never_share_its_test_group(data, strategy):
    frame, aux = data["frame"], data["aux"]
    for _, test in E.splits(frame, strategy):
        allowed = aux.iloc[E.aux_allowed(aux, frame, test, strategy)]
        held = frame.iloc[test]
        if strategy == "LOGO":
            assert not set(allowed["gpu_id"]) & set(held["gpu_id"])
            assert len(allowed) == int((~aux["gpu_id"].isin(held["gpu_id"])).sum())
        elif strategy == "LOLO":
            assert not set(allowed["llm_id"]) & set(held["llm_id"])
        else:
            pairs = set(held["llm_id"] + "|" + held["gpu_label"])
            assert not set(allowed["llm_id"] + "|" + allowed["gpu_label"]) & pairs


@dataclass(frozen=True)
class _Constant:
    value: float

    def predict(self, rows):
        return np.full(len(rows), self.value)


class _Spy(M.ModelSet):
    """Records what every fit receives and fails the test if a fold could see its test group."""

    name = "spy"
    label = "SPY"
    uses_aux = True
    interval_level = 0.8

    def __init__(self):
        self.calls = []

    def features(self, target):
        return ("scenario_detail",)

    def fit(self, target, train, *, aux=None, n_threads=1, seed=0):
        self.calls.append((target, frozenset(train["run_id"]), frozenset(aux["run_id"]) if aux is not None else None))
        return _Constant(float(train[M.TARGET_COLUMNS[target]].mean()))


def test_every_fit_of_the_evaluation_and_of_the_intervals_is_leak_free(data):
    frame = _subset(data["frame"])
    aux = data["aux"]
    spy = _Spy()
    result = E.evaluate_frame(frame, False, [spy], aux=aux, baselines=False)
    by_run = frame.set_index("run_id")
    aux_by_run = aux.set_index("run_id")
    for strategy in E.STRATEGIES:
        pred = result.predictions[("SPY", "power", strategy)]
        assert pred["y_pred"].notna().all()
    n_folds = 5 + frame["gpu_id"].nunique() + frame["llm_id"].nunique()
    n_nested = frame["gpu_id"].nunique() * (frame["gpu_id"].nunique() - 1) // 2  # one fit per pair of GPUs
    assert len(spy.calls) == 2 * (n_folds + n_nested)
    # Every fit: a GPU, LLM or (LLM, GPU) pair of the evaluated rows that it was not given is absent from its
    # auxiliary rows too, and something is always held out.
    pair = (by_run["llm_id"] + "|" + by_run["gpu_label"])
    aux_pair = aux_by_run["llm_id"] + "|" + aux_by_run["gpu_label"]
    for _, train, aux_ids in spy.calls:
        assert aux_ids is not None
        given = by_run.loc[list(train)]
        missing_gpus = set(by_run["gpu_id"]) - set(given["gpu_id"])
        missing_llms = set(by_run["llm_id"]) - set(given["llm_id"])
        missing_pairs = set(pair) - set(pair.loc[list(train)])
        assert missing_pairs
        a = aux_by_run.loc[list(aux_ids)]
        assert not missing_gpus & set(a["gpu_id"])
        assert not missing_llms & set(a["llm_id"])
        assert not missing_pairs & set(aux_pair.loc[list(aux_ids)])
    rec = result.record("power", "SPY", "offline", "LOGO")
    assert rec["interval_level"] == 0.8 and 0 <= rec["interval_coverage_pct"] <= 100


def test_nested_intervals_never_use_the_held_out_gpu(data, monkeypatch):
    frame = _subset(data["frame"], 4)
    seen = []

    class _Prepared:
        def __init__(self, rows):
            self.rows = rows

        def fit_predict(self, train, test, *, n_threads=1, aux_rows=None):
            seen.append((set(self.rows["gpu_id"].iloc[train]), set(self.rows["gpu_id"].iloc[test])))
            return np.full(len(test), float(self.rows["itl_s"].iloc[train].median()))

    class _Set(_Spy):
        def prepare(self, target, rows, aux=None):
            return _Prepared(rows)

    rows = {"itl": M.target_rows(frame, "itl", ("scenario_detail",))}
    logo = {"itl": np.full(len(rows["itl"]), float(rows["itl"]["itl_s"].median()))}
    lo, hi = E.nested_logo_intervals(_Set(), rows, logo, level=0.8, n_jobs=1)["itl"]
    gpus = set(frame["gpu_id"])
    assert len(seen) == len(gpus) * (len(gpus) - 1) // 2  # one fit per pair, predicting both held-out GPUs
    for train_gpus, test_gpus in seen:
        assert len(test_gpus) == 2 and not train_gpus & test_gpus and len(train_gpus) == len(gpus) - 2
    assert (lo <= hi).all() and np.isfinite(lo).all()


def test_interval_quantiles_by_hand():
    y = np.exp(np.arange(1, 101) / 100.0)
    q = E.interval_quantiles(y, np.ones(100), np.array(["offline"] * 100), 0.8)
    # 10% / 90% of 100 residuals 0.01..1.00 with the (n + 1) correction: the 10th and 91st smallest
    assert q["offline"] == (pytest.approx(0.10), pytest.approx(0.91))
    lo, hi = E.apply_intervals([2.0, 3.0], ["offline", "server"], q)
    assert lo[0] == pytest.approx(2 * math.exp(0.10)) and hi[0] == pytest.approx(2 * math.exp(0.91))
    assert math.isnan(lo[1])


# ----------------------------------------------------------------------------------------------------------------
# Files
def test_committed_plus_models_match_the_seed_data(data):
    meta = M.read_metadata("plus", MODELS_DIR)
    assert meta["format"] == plus.FORMAT and meta["label"] == "WattGPU+"
    train = meta["training_data"]
    assert M.training_data_hash(data["frame"], train["hash_columns"]) == train["sha256"], (
        "models/plus* is stale: run `python -m wattgpu_core train --model-set plus` and commit models/")
    aux_cols = [c for c in train["hash_columns"] if c in data["aux"].columns]
    assert M.training_data_hash(data["aux"], aux_cols) == train["aux_sha256"]
    assert train["n_rows"] == len(data["frame"]) and train["n_aux_rows"] == len(data["aux"])
    assert {"xgboost", "numpy", "pandas", "scikit-learn"} <= set(meta["library_versions"])
    assert {r["strategy"] for r in meta["cv_metrics"]} == {"CV", "LOGO", "LOLO"}
    assert {r["model"] for r in meta["cv_metrics"]} == {"WattGPU+"}
    for target in ("power", "itl"):
        for scen in ("offline", "server"):
            choice = meta["default_for"][target][scen]
            assert choice["default"] in ("plus", "paper")
            wins = {s: v["WattGPU+"] < v["XGB"] for s, v in choice["mdape_pct"].items()}
            assert (choice["default"] == "plus") == (wins["LOGO"] and sum(wins.values()) >= 2)
        q = meta["intervals"]["ln_quantiles"][target]
        assert set(q) == {"offline", "server"} and all(lo < 0 < hi for lo, hi in q.values())
    assert meta["intervals"]["level"] == 0.8


def test_model_files_are_plain_json_and_round_trip(tmp_path, data):
    for name in ("plus.meta.json", "plus_itl.json", "plus_power.json"):
        json.loads((MODELS_DIR / name).read_text())  # plain JSON, nothing executable
    fitted, meta = plus.load_plus(MODELS_DIR)
    rows = data["frame"].iloc[::50]
    for model in fitted.values():
        again = type(model).from_dict(json.loads(json.dumps(model.to_dict())))
        np.testing.assert_allclose(again.predict(rows), model.predict(rows), rtol=1e-12)
    assert E.mdape_pct(rows["itl_s"], fitted["itl"].predict(rows)) < 15.0  # in-sample
    assert E.mdape_pct(rows["power_w"], fitted["power"].predict(rows)) < 10.0


def test_itl_fit_is_deterministic_and_stacks_do_not_move_the_default_stack(data):
    frame = _subset(data["frame"], 8)
    aux = data["aux"]
    a = PlusItlModel.fit(frame)
    b = PlusItlModel.fit(frame, aux=aux[aux["serving_stack"] != "vLLM 0.14"])
    assert a.to_dict()["calibration"] == b.to_dict()["calibration"]
    np.testing.assert_array_equal(a.predict(frame), b.predict(frame))
    assert "vLLM 0.5" in b.stack_effects and b.stack_effects["vLLM 0.5"].per_sequence_s > 0
    other = frame.assign(serving_stack="vLLM 0.5")
    assert (b.predict(other) > b.predict(frame)).all()  # the older stack adds host time per step


def test_out_of_range_and_default_choice_by_hand():
    ranges = {"memory_bandwidth_gb_s": [300.0, 4800.0], "total_params_b": [0.1, 30.0]}
    rows = pd.DataFrame({"memory_bandwidth_gb_s": [1000.0, 8000.0, np.nan], "total_params_b": [8.0, 8.0, 70.0]})
    notes = plus.out_of_range(rows, ranges)
    assert notes[0] == "" and "memory bandwidth (8,000 GB/s) above" in notes[1]  # each note names its subject
    assert "memory bandwidth unknown" in notes[2] and "parameters (70B) above" in notes[2]
    recs = [{"target": t, "model": m, "scenario": s, "strategy": k, "mdape_pct": v}
            for t in ("power", "itl") for s in ("offline", "server")
            for m, vals in (("WattGPU+", {"CV": 2.0, "LOGO": 3.0, "LOLO": 5.0}),
                            ("XGB", {"CV": 1.0, "LOGO": 4.0, "LOLO": 4.0}))
            for k, v in vals.items()]
    assert plus.default_choice(recs)["power"]["offline"]["default"] == "paper"  # better on LOGO only
    recs[2]["mdape_pct"] = 3.5  # now better on LOLO too
    assert plus.default_choice(recs)["power"]["offline"]["default"] == "plus"


# ----------------------------------------------------------------------------------------------------------------
# Prediction
def test_default_set_follows_the_recorded_choice(default_set):
    meta = M.read_metadata("plus", MODELS_DIR)
    for target in ("power", "itl"):
        for pool in ("offline", "server"):
            assert default_set.uses(target, pool) == meta["default_for"][target][pool]["default"]
    assert P.load_model_set("paper").uses("power", "offline") == "paper"


def test_predict_any_workload_and_an_unseen_b200(data, default_set):
    gpus, llms = data["gpus"], data["llms"]
    llm = "meta-llama/Llama-3.1-8B-Instruct"
    requests = pd.DataFrame([
        {"llm": llm, "gpu": "NVIDIA B200", "scenario": "offline"},
        {"llm": llm, "gpu": "h200-sxm-141gb", "scenario": "offline"},
        {"llm": llm, "gpu": "NVIDIA B200", "scenario": "offline", "batch_size": 64, "input_tokens": 512,
         "output_tokens": 512},
        {"llm": llm, "gpu": "NVIDIA B200", "scenario": "server", "request_rate_qps": 2.0, "input_tokens": 200,
         "output_tokens": 300},
        {"llm": llm, "gpu": "NVIDIA B200", "scenario": "server_low"},
        {"llm": "Qwen/Qwen3-30B-A3B", "gpu": "NVIDIA B200", "scenario": "offline"},
        {"llm": "meta-llama/Meta-Llama-3.1-70B-Instruct", "gpu": "h100-sxm5-80gb", "scenario": "offline",
         "num_gpus": 4},
    ])
    out = P.predict(requests, gpus, llms, default_set)
    for col in P.PREDICTION_COLUMNS:
        assert col in out.columns, col
    tdp = out["gpu_id"].map(gpus.set_index("gpu_id")["tdp_w"])
    assert np.isfinite(out[["power_w", "itl_s", "energy_per_token_j", "throughput_tok_s"]].to_numpy()).all()
    assert ((out["power_w"] > 0.05 * tdp) & (out["power_w"] <= 1.05 * tdp)).all()
    for base in P.INTERVAL_TARGETS:
        assert (out[f"{base}_lo"] <= out[base] * (1 + 1e-9)).all() and (out[base] <= out[f"{base}_hi"] * (1 + 1e-9)
                                                                         ).all(), base
    assert out["out_of_range"].tolist() == [True, False, True, True, True, True, True]
    assert "memory bandwidth" in out.loc[0, "notes"] and "above the training range 300–4,800 GB/s" in out.loc[0, "notes"]
    assert set(out["serving_stack"]) == {"vLLM 0.14"}
    b200, h200 = out.iloc[0], out.iloc[1]
    assert b200["throughput_tok_s"] >= h200["throughput_tok_s"]  # a faster GPU is not predicted slower
    assert 1e-6 < b200["itl_s"] < 1e-3 and 1e-3 < out.loc[4, "itl_s"] < 0.1  # offline per token; server per token
    assert out.loc[3, "throughput_tok_s"] == pytest.approx(2.0 * 300)
    assert out.loc[3, "energy_per_token_j"] == pytest.approx(out.loc[3, "power_w"] / 600)
    assert out.loc[4, "power_w"] < out.loc[3, "power_w"]  # idle most of the time at 0.017 requests/s
    assert "MoE: modelled by active parameters" in out.loc[5, "notes"]
    assert "tensor parallel from physics only" in out.loc[6, "notes"] and out.loc[6, "fits_in_memory"]
    assert out.loc[6, "energy_per_token_j"] == pytest.approx(4 * out.loc[6, "power_w"] * out.loc[6, "itl_s"])


def test_workload_inputs_move_predictions_the_physical_way(data, default_set):
    gpus, llms = data["gpus"], data["llms"]
    base = {"llm": "Qwen/Qwen2.5-7B-Instruct", "gpu": "a100-sxm4-40gb"}
    batches = pd.DataFrame([{**base, "scenario": "offline", "batch_size": b} for b in (1, 8, 64, 256)])
    off = P.predict(batches, gpus, llms, default_set)
    assert (np.diff(off["throughput_tok_s"]) > 0).all()  # bigger batches: more tokens per second
    rates = pd.DataFrame([{**base, "scenario": "server", "request_rate_qps": r} for r in (0.01, 0.1, 0.5, 2.0)])
    srv = P.predict(rates, gpus, llms, default_set)
    assert (np.diff(srv["power_w"]) >= 0).all() and (np.diff(srv["throughput_tok_s"]) > 0).all()
    assert (np.diff(srv["energy_per_token_j"]) < 0).all()  # idle power spread over more tokens
    longer = P.predict(pd.DataFrame([{**base, "scenario": "offline", "output_tokens": o} for o in (64, 512)]),
                       gpus, llms, default_set)
    assert longer.loc[1, "itl_s"] > 0 and np.isfinite(longer["energy_per_token_j"]).all()


def test_paper_set_keeps_its_behaviour_and_has_no_intervals(data):
    out = P.predict(pd.DataFrame([{"llm": "Qwen/Qwen2.5-7B-Instruct", "gpu": "l4", "scenario": "offline",
                                   "batch_size": 64}]), data["gpus"], data["llms"], P.load_model_set("paper"))
    assert out["power_w_lo"].isna().all() and out.loc[0, "power_model"] == "XGB"
    assert "batch_size is not an input of the XGB model" in out.loc[0, "notes"]


def test_wattgpu_plus_is_evaluated_beside_xgb(data):
    from wattgpu_core.cli_models import DEFAULT_EVALUATED

    assert DEFAULT_EVALUATED == ("paper", "plus")
    frame = _subset(data["frame"], 5)
    result = E.evaluate_frame(frame, False, ["paper", "plus"], aux=data["aux"], strategies=("CV",),
                              baselines=False)
    for target in ("power", "itl"):
        for scenario in ("offline", "server"):
            ours, paper = (result.record(target, m, scenario, "CV") for m in ("WattGPU+", "XGB"))
            assert ours["n_rows"] == paper["n_rows"] and np.isfinite(ours["mdape_pct"])
    text = E.format_tables(result)
    assert "WattGPU+ Offline CV" in text and "XGB      Offline CV" in text


def test_itl_fit_jacobians_equal_per_parameter_differences(data):
    """The calibration's chain-rule Jacobian (five physics differences) and the stack fit's (two, and exactly 1 for
    the factor) equal plain forward differences in every parameter, one at a time."""
    from scipy.optimize._numdiff import approx_derivative

    from wattgpu_core import plus_itl as PI

    frame = _subset(data["frame"], 8)
    frame = frame[PI.usable(frame)].reset_index(drop=True)
    design = PI._Design.of(frame)
    n_eff = len(design.archs) + 2 * len(design.fams)
    rng = np.random.default_rng(3)
    ridge = 0.7
    for theta in (np.r_[PI._START, np.zeros(n_eff)], np.r_[PI._START, rng.normal(0, 0.3, n_eff)] + np.r_[
            0.1, -0.4, 0.5, 1.0, -0.6, -0.2, 0.8, np.zeros(n_eff)]):
        remembered = PI._Remembered(design.log_itl)

        def residuals(t, remembered=remembered):
            return np.r_[remembered(t), ridge * t[7:]]

        got = PI._chain_jacobian(design, ridge, remembered)(theta)
        want = approx_derivative(residuals, theta, method="3-point", rel_step=1e-6)
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)

    work = PI.DecodeWorkload.of(frame)
    p0 = PI.ItlCalibration(0.8, 0.6, 1.3e-3, 1.7e-5, 0.4, 0.9, 30.0).step_parameters(frame)

    def log_itl(hc):
        h, c = np.exp(hc)
        return np.log(work.evaluate(PI.replace(p0, overhead_s=p0.overhead_s + h, per_sequence_s=p0.per_sequence_s + c),
                                    load=False)["itl_s"])

    remembered = PI._Remembered(log_itl)
    theta = np.log([2e-3, 3e-5, 1.7])
    got = PI._stack_jacobian(remembered, log_itl)(theta)
    want = approx_derivative(lambda t: log_itl(t[:2]) + t[2], theta, method="3-point", rel_step=1e-6)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-6)
    assert (got[:, 2] == 1.0).all()


def test_an_uncalibrated_stack_is_predicted_as_the_default_with_wider_intervals(data, default_set):
    gpus, llms = data["gpus"], data["llms"]
    meta = P.workload_part(default_set).metadata
    offsets = meta["intervals"]["stack_ln_offsets"]
    assert set(offsets) == {"power", "itl"} and "vLLM 0.5" in offsets["itl"]
    base = {"llm": "Qwen/Qwen2.5-7B-Instruct", "gpu": "a100-sxm4-40gb", "scenario": "offline"}
    out = P.predict(pd.DataFrame([base, {**base, "serving_stack": "SGLang 0.4"}]), gpus, llms, default_set)
    default, unknown = out.iloc[0], out.iloc[1]
    assert unknown["serving_stack"] == default["serving_stack"] == "vLLM 0.14"
    for col in ("power_w", "itl_s"):
        assert unknown[col] == pytest.approx(default[col])
        assert unknown[f"{col}_lo"] <= default[f"{col}_lo"] and unknown[f"{col}_hi"] >= default[f"{col}_hi"]
    shift = {t: plus.uncalibrated_stack_shift(meta, t) for t in ("power", "itl")}
    assert unknown["itl_s_hi"] == pytest.approx(default["itl_s_hi"] * np.exp(shift["itl"][1]))
    assert unknown["power_w_lo"] == pytest.approx(default["power_w_lo"] * np.exp(shift["power"][0]))
    assert shift["itl"][1] > 0.5 and shift["power"][0] < -0.5  # vLLM 0.5: five times slower, half the power
    assert "'SGLang 0.4' has no calibration" in unknown["notes"] and "widened" in unknown["notes"]


def test_a_calibrated_stack_interval_is_at_least_its_own_residual_spread(data, default_set):
    gpus, llms = data["gpus"], data["llms"]
    meta = P.workload_part(default_set).metadata
    residual = meta["intervals"]["stack_residual_ln_quantiles"]
    assert "vLLM 0.5" in residual["power"] and "*" in residual["itl"]
    base = {"llm": "meta-llama/Llama-3.1-8B-Instruct", "gpu": "a100-sxm4-40gb", "scenario": "offline",
            "batch_size": 128}
    out = P.predict(pd.DataFrame([base, {**base, "serving_stack": "vLLM 0.5"}]), gpus, llms, default_set)
    default, old = out.iloc[0], out.iloc[1]
    assert old["serving_stack"] == "vLLM 0.5" and old["itl_s"] > default["itl_s"]
    for target, col in (("power", "power_w"), ("itl", "itl_s")):
        q_own, q_all = residual[target]["vLLM 0.5"], residual[target]["*"]
        assert old[f"{col}_lo"] <= old[col] * np.exp(min(q_own[0], q_all[0])) * (1 + 1e-9)
        hi = old[col] * np.exp(max(q_own[1], q_all[1]))
        tdp = float(gpus.set_index("gpu_id").loc["a100-sxm4-40gb", "tdp_w"])
        assert old[f"{col}_hi"] >= min(hi, tdp if col == "power_w" else hi) * (1 - 1e-9)


def test_a_typed_stack_is_recognised_whatever_its_spelling(data, default_set):
    gpus, llms = data["gpus"], data["llms"]
    base = {"llm": "Qwen/Qwen2.5-7B-Instruct", "gpu": "a100-sxm4-40gb", "scenario": "offline"}
    out = P.predict(pd.DataFrame([{**base, "serving_stack": s} for s in
                                  ("vLLM 0.5", "vllm 0.5.4", "vLLM 0.14.1", None)]), gpus, llms, default_set)
    assert out["serving_stack"].tolist() == ["vLLM 0.5", "vLLM 0.5", "vLLM 0.14", "vLLM 0.14"]
    assert out.loc[1, "itl_s"] == out.loc[0, "itl_s"] and out.loc[2, "itl_s"] == out.loc[3, "itl_s"]
    assert not any("has no calibration" in n for n in out["notes"])
    assert (out.loc[2, "itl_s_lo"], out.loc[2, "itl_s_hi"]) == (out.loc[3, "itl_s_lo"], out.loc[3, "itl_s_hi"])
