"""Side by side: predictions per deployment, Monte-Carlo draws of the LOGO errors, ranking statements and the
disagreement between WattGPU+ and the paper's XGB (real models, real store, a real leave-one-GPU-out evaluation)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pages.view import side_by_side as view_sbs
from pages.view import url_state
from wattgpu_core import side_by_side as sbs
from wattgpu_core.errors import WattGPUError
from wattgpu_core.evaluation import run_evaluation
from wattgpu_core.planning import load_model_set

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture(scope="module")
def catalogs(seed_db_path):
    from wattgpu_core.store import Store

    with Store.open(seed_db_path, read_only=True) as s:
        yield s, s.gpus(), s.llms()


@pytest.fixture(scope="module")
def paper_logo(catalogs):
    store = catalogs[0]
    return run_evaluation(store, model_sets=["paper"], strategies=("LOGO",), baselines=False, intervals=False)


def test_parse_picks_keeps_known_gpus_once():
    got = sbs.parse_picks(["l40s*2", "nope", "l40s", "h200-sxm-141gb", "l4*x"], {"l40s", "h200-sxm-141gb", "l4"})
    assert got == [sbs.Deployment("l40s", 2), sbs.Deployment("h200-sxm-141gb")]
    assert [sbs.pick_text(d) for d in got] == ["l40s*2", "h200-sxm-141gb"]


def test_draws_pair_different_gpus_of_one_llm(paper_logo):
    res = sbs.logo_residuals(paper_logo, {"power": "XGB", "itl": "XGB"}, "offline")
    draws = sbs.draw_residuals(res, 3, n_draws=300, seed=1)
    assert draws.shape == (300, 3, 2)
    # every draw's residuals are real (power, ITL) pairs of one run
    pairs = set(map(tuple, np.round(res[["r_power", "r_itl"]].to_numpy(), 12)))
    assert all(tuple(np.round(d, 12)) in pairs for d in draws.reshape(-1, 2))
    with pytest.raises(WattGPUError):
        sbs.draw_residuals(res, 50)


def test_statements_come_from_the_draws(catalogs, paper_logo):
    _, gpus, llms = catalogs
    paper = load_model_set("paper")
    table = sbs.predict_deployments(LLAMA, url_state.Workload().as_request(), [sbs.Deployment("h200-sxm-141gb"),
                                                                         sbs.Deployment("l4")], gpus, llms, paper)
    view = sbs.side_by_side(table, paper_logo, n_draws=500)
    energy = view.pairs[view.pairs["metric"] == "energy_per_token_j"].iloc[0]
    d = view.draws["energy_per_token_j"]
    assert energy["share"] == pytest.approx(np.mean(d[:, 0] < d[:, 1]))
    assert energy["ratio"] == pytest.approx(table["energy_per_token_j"].iloc[1] / table["energy_per_token_j"].iloc[0])
    assert energy["ratio_lo"] <= energy["ratio_hi"]
    text = view_sbs.ranking_statement(energy)
    assert "draws" in text and ("H200" in text and "L4" in text)
    # a pair decided in every draw, one barely decided, and one not decided
    base = {"a": "A", "b": "B", "metric": "energy_per_token_j", "n_draws": 1000}
    assert "every one of the 1,000 draws" in view_sbs.ranking_statement({**base, "share": 1.0})
    assert "in 9 of 10 draws" in view_sbs.ranking_statement({**base, "share": 0.93}) and "holds" in \
        view_sbs.ranking_statement({**base, "share": 0.93})
    flipped = view_sbs.ranking_statement({**base, "share": 0.4})
    assert flipped.startswith("**B**") and "too close to call" in flipped


def test_two_gpus_per_replica_double_the_energy_of_the_same_power(catalogs):
    _, gpus, llms = catalogs
    paper = load_model_set("paper")
    one = sbs.predict_deployments(LLAMA, url_state.Workload().as_request(), [sbs.Deployment("l40s"),
                                                                      sbs.Deployment("h200-sxm-141gb", 2)],
                                  gpus, llms, paper)
    assert list(one["label"]) == ["NVIDIA L40S", "NVIDIA H200 SXM 141GB ×2"]
    assert list(one["num_gpus"]) == [1, 2]


def test_disagreement_names_the_reason_and_the_favoured_model(catalogs):
    _, gpus, llms = catalogs
    plus, paper = load_model_set("plus"), load_model_set("paper")
    request = url_state.Workload("server", 64, 2.0, 512, 256).as_request()
    note = sbs.model_disagreement(LLAMA, request,
                                  [sbs.Deployment("b200"), sbs.Deployment("b300")], gpus, llms, plus, paper)
    assert note.disagree and "rank these differently" in note.text
    assert "outside the GPUs both models learned from" in note.text
    assert "8,000 GB/s" in note.text, "the value that lies outside the training data"
    assert "WattGPU+" in note.text and "(LOGO)" in note.text
    assert isinstance(note.table, pd.DataFrame) and len(note.table) == 2
    # Watt Counts' own workload on two GPUs both models learned from: no note to make
    same = sbs.model_disagreement(LLAMA, url_state.Workload().as_request(), [sbs.Deployment("l40s"),
                                                                       sbs.Deployment("h100-nvl-94gb")],
                                  gpus, llms, plus, paper)
    assert not same.disagree and "agree" in same.text
