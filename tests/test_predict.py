"""The prediction API and ``python -m wattgpu_core predict``: derivations, names, flags, ranking, CLI round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattgpu_core import planning as P
from wattgpu_core.cli import main
from wattgpu_core.errors import UnknownNameError, ValidationError
from wattgpu_core.evaluation import mdape_pct
from wattgpu_core.models import training_frame
from wattgpu_core.store import Store


@pytest.fixture(scope="module")
def catalogs(seed_db_path):
    with Store.open(seed_db_path, read_only=True) as store:
        return store.gpus(), store.llms(), training_frame(store, "catalog")


@pytest.fixture(scope="module")
def model_set():
    return P.load_model_set("paper")


def test_derivations_by_hand():
    tput, energy = P.derive_throughput_energy([300.0, 100.0], [0.0005, 0.02], ["offline", "server_high"],
                                              [np.nan, 0.33], [200.0, 200.0])
    # offline: 1 / 0.5 ms = 2,000 tok/s; 300 W x 0.5 ms = 0.15 J/token
    assert tput[0] == pytest.approx(2000.0) and energy[0] == pytest.approx(0.15)
    # server: 0.33 req/s x 200 tokens = 66 tok/s; 100 W / 66 tok/s
    assert tput[1] == pytest.approx(66.0) and energy[1] == pytest.approx(100.0 / 66.0)
    _, energy2 = P.derive_throughput_energy([300.0], [0.0005], ["offline"], [np.nan], [200.0], num_gpus=2)
    assert energy2[0] == pytest.approx(0.3)


def test_derivations_agree_with_the_measured_store_values(catalogs):
    frame = catalogs[2]
    check = P.derivation_check(frame).set_index(["scenario", "per"])
    # Offline the data define ITL as 1/throughput and energy as mean power x duration / tokens.
    assert check.loc[("offline", "run"), "throughput_mdape_pct"] < 1e-6
    assert check.loc[("offline", "run"), "energy_mdape_pct"] < 1.0
    # Server: lambda x L against each configuration's pooled measurement (repeats differ in arrival sequence).
    assert check.loc[("server_high", "configuration"), "energy_mdape_pct"] < 10.0
    assert check.loc[("server_low", "configuration"), "energy_mdape_pct"] < 15.0


def test_predict_outputs_and_flags(catalogs, model_set):
    gpus, llms, _ = catalogs
    requests = pd.DataFrame({
        "llm": ["meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct",
                "meta-llama/Meta-Llama-3.1-70B-Instruct", "allenai/OLMoE-1B-7B-0924"],
        "gpu": ["NVIDIA L40S", "NVIDIA H100 NVL", "h100-sxm5-80gb", "l4", "NVIDIA A100-SXM4-40GB"],
        "scenario": ["offline", "server", "server_low", "server_high", "offline"],
        "request_rate_qps": [np.nan, 0.5, np.nan, np.nan, np.nan],
        "keep_me": [1, 2, 3, 4, 5],
    })
    out = P.predict(requests, gpus, llms, model_set)
    for col in P.PREDICTION_COLUMNS:
        assert col in out.columns
    assert out["keep_me"].tolist() == [1, 2, 3, 4, 5]
    assert out["gpu_id"].tolist() == ["l40s", "h100-nvl-94gb", "h100-sxm5-80gb", "l4", "a100-sxm4-40gb"]
    assert out["scenario_detail"].tolist() == ["offline", "server_high", "server_low", "server_high", "offline"]
    assert out["request_rate_qps"].tolist()[1:4] == [0.5, 0.017, 0.33]
    assert out["gpu_seen"].tolist() == [True, True, False, True, True]
    assert out["llm_seen"].tolist() == [True, True, True, False, False]  # OLMoE is MoE: not trained on
    assert out["fits_in_memory"].tolist() == [True, True, True, False, True]
    assert (out["power_w"] > 0).all() and (out["itl_s"] > 0).all()
    # Energy and throughput follow from power and ITL as the data define them.
    off = out.iloc[0]
    assert off["throughput_tok_s"] == pytest.approx(1 / off["itl_s"])
    assert off["energy_per_token_j"] == pytest.approx(off["power_w"] * off["itl_s"])
    srv = out.iloc[1]
    assert srv["throughput_tok_s"] == pytest.approx(0.5 * srv["output_tokens"])
    assert srv["energy_per_token_j"] == pytest.approx(srv["power_w"] / srv["throughput_tok_s"])
    assert "GPU not in training data" in out.loc[2, "notes"]
    assert "LLM not in training data" in out.loc[3, "notes"] and "does not fit" in out.loc[3, "notes"]
    assert "MoE not supported" in out.loc[4, "notes"]
    assert out.loc[1, "itl_definition"] == "server_e2e_per_token" and "TTFT included" in out.loc[1, "notes"]


def test_predictions_reproduce_measured_energy_for_seen_pairs(catalogs, model_set):
    gpus, llms, frame = catalogs
    offline = frame[frame["scenario_detail"] == "offline"]
    requests = pd.DataFrame({"llm": offline["llm_id"], "gpu": offline["gpu_id"], "scenario": "offline"})
    out = P.predict(requests, gpus, llms, model_set)
    assert mdape_pct(offline["energy_per_token_j"], out["energy_per_token_j"]) < 15.0  # in-sample


def test_unknown_names_are_all_named(catalogs, model_set):
    gpus, llms, _ = catalogs
    requests = pd.DataFrame({"llm": ["no-such-llm", "Qwen/Qwen2.5-7B-Instruct"], "gpu": ["NVIDIA L40S", "H1OO"],
                             "scenario": ["offline", "offline"]})
    with pytest.raises(UnknownNameError) as err:
        P.predict(requests, gpus, llms, model_set)
    assert "no-such-llm" in str(err.value) and "H1OO" in str(err.value)


@pytest.mark.parametrize("bad, match", [
    ({"scenario": "batch"}, "scenario must be one of"),
    ({"scenario": "server"}, "needs request_rate_qps"),
    ({"output_tokens": -5}, "must be a positive number"),
])
def test_invalid_requests_are_rejected(catalogs, model_set, bad, match):
    gpus, llms, _ = catalogs
    row = {"llm": "Qwen/Qwen2.5-7B-Instruct", "gpu": "l4", "scenario": "offline", **bad}
    with pytest.raises(ValidationError, match=match):
        P.predict(pd.DataFrame([row]), gpus, llms, model_set)
    with pytest.raises(ValidationError, match="column gpu is missing"):
        P.predict(pd.DataFrame([{"llm": "x", "scenario": "offline"}]), gpus, llms, model_set)


def test_cli_predict_round_trip(tmp_path, seed_db_path, capsys):
    src = tmp_path / "in.csv"
    src.write_text("llm,gpu,scenario,request_rate_qps\n"
                   "meta-llama/Llama-3.1-8B-Instruct,NVIDIA L4,offline,\n"
                   "Qwen/Qwen2.5-7B-Instruct,h100-nvl-94gb,server,0.017\n")
    out = tmp_path / "out.csv"
    assert main(["predict", "--input", str(src), "--output", str(out), "--db", str(seed_db_path)]) == 0
    result = pd.read_csv(out)
    assert len(result) == 2 and result["power_w"].gt(0).all() and result["energy_per_token_j"].gt(0).all()
    assert result["scenario_detail"].tolist() == ["offline", "server_low"]

    bad = tmp_path / "bad.csv"
    bad.write_text("llm,gpu,scenario\nmystery-llm,NVIDIA L4,offline\nQwen/Qwen2.5-7B-Instruct,RTX 9999,offline\n")
    code = main(["predict", "--input", str(bad), "--output", str(tmp_path / "o.csv"), "--db", str(seed_db_path)])
    err = capsys.readouterr().err
    assert code != 0 and "mystery-llm" in err and "RTX 9999" in err
    assert not (tmp_path / "o.csv").exists()


def test_cli_evaluate_json(tmp_path, seed_db_path, capsys):
    out = tmp_path / "eval.json"
    # The paper's set only, to keep the suite fast (WattGPU+ through the same path: tests/test_plus.py).
    assert main(["evaluate", "--json", str(out), "--db", str(seed_db_path), "--quiet", "--model-set", "paper"]) == 0
    import json

    records = json.loads(out.read_text())
    keys = {"target", "model", "scenario", "strategy", "mdape_pct", "pearson_r", "gpu_tau", "llm_tau", "n_rows"}
    assert all(keys <= set(r) for r in records)
    assert {(r["model"], r["strategy"]) for r in records} >= {("XGB", "CV"), ("XGB", "LOGO"), ("XGB", "LOLO"),
                                                               ("TDP", "-"), ("LS-TDP", "-"), ("Roofline", "-")}
    text = capsys.readouterr().out
    assert "Mean power (W)" in text and "Inter-token latency" in text and "energy/token" in text


def test_energy_choice_scores_derived_energy(catalogs):
    from wattgpu_core.evaluation import evaluate_frame

    frame = catalogs[2]
    sub = frame[frame["llm_id"].isin(sorted(frame["llm_id"].unique())[:5])].reset_index(drop=True)
    result = evaluate_frame(sub, False, strategies=("CV",))
    choice = P.energy_choice(sub, result).set_index(["model", "strategy", "scenario"])
    assert set(choice.index) == {("XGB", "CV", "offline"), ("XGB", "CV", "server"),
                                 ("LS-TDP+Roofline", "-", "offline"), ("LS-TDP+Roofline", "-", "server")}
    assert choice["n_rows"].sum() == 2 * len(sub)
    assert ((choice["top1_pct"] >= 0) & (choice["top1_pct"] <= choice["top3_pct"])).all()
    assert (choice["extra_energy_pct"] >= 0).all() and (choice["mdape_pct"] > 0).all()
