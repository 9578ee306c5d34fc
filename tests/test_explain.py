"""SHAP explanations: values add up to the model output, display units, readings, global importance."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wattgpu_core import explain
from wattgpu_core.models import fit_model_set, get_model_set, training_frame


@pytest.fixture(scope="module")
def trained(seed_db_path):
    from wattgpu_core.store import Store

    with Store.open(seed_db_path, read_only=True) as store:
        frame = training_frame(store)
        gpus, llms = store.gpus(), store.llms()
    return fit_model_set(get_model_set("paper"), frame, n_threads=2), frame, gpus, llms


def test_base_value_plus_shap_values_equals_the_model_output(trained):
    fitted, frame, _, _ = trained
    rows = frame.sample(200, random_state=0)
    for model in fitted.values():
        base, shap = explain.shap_values(model, rows)
        np.testing.assert_allclose(base + shap.sum(axis=1), model.predict_raw(rows), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("request_", [{"scenario": "offline"}, {"scenario": "server", "request_rate_qps": 0.33}])
def test_explanation_of_one_request_matches_its_prediction(trained, request_):
    fitted, _, gpus, llms = trained
    out = explain.explain_request("meta-llama/Llama-3.1-8B-Instruct", "l4", request_, gpus, llms, fitted)
    row = explain.request_frame("meta-llama/Llama-3.1-8B-Instruct", "l4", request_, gpus, llms)
    assert out["power"].prediction == pytest.approx(fitted["power"].predict(row)[0], rel=1e-5)  # W
    assert out["itl"].prediction == pytest.approx(fitted["itl"].predict(row)[0] * 1000, rel=1e-5)  # ms
    contrib = out["power"].contributions(top=4)
    assert len(contrib) == 5 and contrib["label"].iloc[-1].endswith("other features")
    assert contrib["shap"].sum() == pytest.approx(out["power"].shap.sum())
    text = out["itl"].reading()
    assert text.startswith("Predicted ITL is **") and "ms" in text


def test_effect_texts_are_in_display_units():
    e = explain.TargetExplanation("power", 0.5, None, None, tdp_w=400.0)  # type: ignore[arg-type]
    assert e.effect_text(0.1) == "raises power by 40 W"
    i = explain.TargetExplanation("itl", math.log(0.01), None, None, tdp_w=70.0)  # type: ignore[arg-type]
    assert i.effect_text(math.log(2)) == "makes ITL 2.00x longer"
    assert i.effect_text(-math.log(4)) == "makes ITL 4.00x shorter"
    assert i.to_display(math.log(0.01)) == pytest.approx(10.0)


def test_global_importance_ranks_the_scenario_first(trained):
    fitted, frame, _, _ = trained
    imp = explain.global_importance(fitted, frame, max_rows=500)
    for target in ("power", "itl"):
        assert imp[target].importance["feature"].iloc[0] == "scenario_detail"
        assert (imp[target].importance["importance"] >= 0).all()
        assert imp[target].shap.shape == imp[target].values.shape == (500, len(explain.model_features(fitted[target])))
