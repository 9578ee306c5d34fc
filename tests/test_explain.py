"""SHAP explanations: values add up to the model output, display units, readings, global importance."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from wattgpu_core import explain
from wattgpu_core.errors import WattGPUError
from wattgpu_core.models import training_frame


@pytest.fixture(scope="module")
def trained(seed_db_path):
    """The paper's XGB models the app uses (committed files, trained on this seed data) and the training rows."""
    from wattgpu_core.planning import load_model_set
    from wattgpu_core.store import Store

    with Store.open(seed_db_path, read_only=True) as store:
        frame = training_frame(store)
        gpus, llms = store.gpus(), store.llms()
    return dict(load_model_set("paper").models), frame, gpus, llms


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


# ----------------------------------------------------------------------------------------------------------------
# WattGPU+: grouped exact Shapley values, physics, global importance, the Explain view
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
OFFLINE = {"scenario": "offline", "batch_size": 256.0, "input_tokens": 14.0, "output_tokens": 220.0}
SERVER = {"scenario": "server", "request_rate_qps": 0.33, "input_tokens": 14.0, "output_tokens": 220.0}


@pytest.fixture(scope="module")
def plus_setup(seed_db_path):
    from wattgpu_core.planning import load_model_set
    from wattgpu_core.store import Store

    model_set = load_model_set("plus")  # WattGPU+ alone: the default set may predict a target with the paper's XGB
    with Store.open(seed_db_path, read_only=True) as store:
        gpus, llms = store.gpus(), store.llms()
        background = explain.explanation_background(store, model_set)
    return model_set, gpus, llms, background


def _predicted(model_set, gpus, llms, gpu, request):
    from wattgpu_core.planning import predict

    return predict(pd.DataFrame([{"llm": LLAMA, "gpu": gpu, **request}]), gpus, llms, model_set).iloc[0]


def test_exact_shapley_of_a_small_game_by_hand():
    # v(S) for players a (bit 0), b (bit 1): v() = 0, v(a) = 1, v(b) = 2, v(ab) = 6 (interaction 3, split evenly)
    phi = explain.shapley_from_coalitions(np.array([0.0, 1.0, 2.0, 6.0]), 2)
    np.testing.assert_allclose(phi, [2.5, 3.5])
    v = np.random.default_rng(0).normal(size=(1 << 5, 3))
    phi = explain.shapley_from_coalitions(v, 5)
    np.testing.assert_allclose(phi.sum(axis=0), v[-1] - v[0], atol=1e-12)


@pytest.mark.parametrize("gpu,request_", [("h100-nvl-94gb", OFFLINE), ("l4", SERVER), ("a100-pcie-40gb", OFFLINE)])
def test_plus_shap_adds_up_to_the_prediction_the_app_shows(plus_setup, gpu, request_):
    model_set, gpus, llms, background = plus_setup
    out = explain.explain_plus_request(LLAMA, gpu, request_, gpus, llms, model_set, background)
    shown = _predicted(model_set, gpus, llms, gpu, request_)
    power, itl = out.targets["power"], out.targets["itl"]
    assert power.base_value + power.shap.sum() == pytest.approx(shown["power_w"], rel=1e-9)
    assert itl.base_value + itl.shap.sum() == pytest.approx(math.log(shown["itl_s"]), rel=1e-9)
    assert itl.prediction == pytest.approx(shown["itl_s"] * 1000, rel=1e-9)  # ms
    # base value = mean prediction over the background (geometric mean for ITL)
    bg = background.rows[request_["scenario"] if request_["scenario"] == "offline" else "server"]
    models = explain.plus_models(model_set)
    assert power.base_value == pytest.approx(models["power"].predict(bg).mean(), rel=1e-9)
    assert itl.base_value == pytest.approx(np.log(models["itl"].predict(bg)).mean(), rel=1e-9)
    assert "serving" in power.fixed  # the same serving stack everywhere: contribution exactly 0, not shown
    assert "llm_correction" in power.fixed and "llm_correction" in itl.shap  # power never reads the LLM's name
    assert len(power.shap) <= 12
    for e in (power, itl):
        contrib = e.contributions(top=12)
        assert contrib["shap"].sum() == pytest.approx(e.shap.sum(), abs=1e-9)
        small = contrib["label"].str.contains("with little effect")
        assert (contrib.loc[~small, "shap"].abs() >= e.small_effect).all()
    assert power.reading().startswith("Predicted power is **") and "ITL" in itl.reading()


def test_plus_shapley_equals_the_plain_enumeration_of_every_coalition(plus_setup):
    """plus_shapley predicts each distinct row once and leaves out groups a model never reads; the values must be
    those of predicting all 2^k x background rows, every group included."""
    from wattgpu_core.grouped_shap import PLUS_GROUPS, _column, plus_shapley, shapley_from_coalitions

    model_set, gpus, llms, background = plus_setup
    models = explain.plus_models(model_set)
    _, rows = explain.model_rows(pd.DataFrame([{"llm": LLAMA, "gpu": "l4", **SERVER}]), gpus, llms, model_set)
    bg = background.rows["server"].head(6)
    got = plus_shapley(models, rows, bg)
    groups = [g for g in PLUS_GROUPS if g.key not in got["fixed"]]
    k, m = len(groups), len(bg)
    inside = (np.arange(1 << k)[:, None] >> np.arange(k)) & 1
    data = {c: np.tile(_column(bg, c), 1 << k) for g in PLUS_GROUPS for c in g.columns if c in bg.columns}
    for i, g in enumerate(groups):
        for c in g.columns:
            if c in data:
                data[c] = np.where(np.repeat(inside[:, i], m) == 1, _column(rows, c)[0], data[c])
    mixed = pd.DataFrame({c: pd.Series(v, dtype=object) if v.dtype == object else v for c, v in data.items()})
    assert "llm_correction" not in got["fixed"] and "llm_correction" not in got["power"]["shap"]
    for t, model in models.items():
        pred = np.asarray(model.predict(mixed), dtype=float)
        v = (np.log(pred) if t == "itl" else pred).reshape(1 << k, m).mean(axis=1)
        want = pd.Series(shapley_from_coalitions(v, k), index=[g.key for g in groups])
        np.testing.assert_allclose(got[t]["shap"].reindex(want.index, fill_value=0.0), want, rtol=1e-9, atol=1e-12)
        assert got[t]["base"] == pytest.approx(v[0], rel=1e-12) and got[t]["full"] == pytest.approx(v[-1], rel=1e-12)


def test_plus_explains_a_server_at_a_fixed_concurrency(plus_setup):
    """A closed loop (max_concurrency) is predicted as a full running batch: the explanation switches those same
    rows (closed_loop sits in the batch group) and adds up to the prediction shown."""
    model_set, gpus, llms, background = plus_setup
    request = {"scenario": "server", "max_concurrency": 32.0, "input_tokens": 512.0, "output_tokens": 256.0}
    out = explain.explain_plus_request(LLAMA, "l40s", request, gpus, llms, model_set, background)
    shown = _predicted(model_set, gpus, llms, "l40s", request)
    power, itl = out.targets["power"], out.targets["itl"]
    assert power.base_value + power.shap.sum() == pytest.approx(shown["power_w"], rel=1e-9)
    assert itl.base_value + itl.shap.sum() == pytest.approx(math.log(shown["itl_s"]), rel=1e-9)
    assert "batch" in power.shap.index


def test_power_never_reads_the_llm_name(plus_setup):
    """Explanations leave the per-LLM correction out of power's enumeration (its unread_columns): true only while
    the power model reads no LLM name."""
    model_set, _, _, background = plus_setup
    power = explain.plus_models(model_set)["power"]
    assert "llm_id" in power.unread_columns
    for rows in background.rows.values():
        want = power.predict(rows)
        for names in (rows["llm_id"].to_numpy()[::-1], np.full(len(rows), "no/such-llm", dtype=object)):
            np.testing.assert_array_equal(power.predict(rows.assign(llm_id=names)), want)


def test_plus_explains_a_gpu_outside_the_training_data(plus_setup):
    model_set, gpus, llms, background = plus_setup
    assert "b200" not in model_set.gpu_ids
    out = explain.explain_plus_request(LLAMA, "b200", SERVER, gpus, llms, model_set, background)
    for e in out.targets.values():
        assert np.isfinite(e.shap).all() and np.isfinite(e.base_value) and np.isfinite(e.prediction)
    shown = _predicted(model_set, gpus, llms, "b200", SERVER)
    assert out.targets["power"].prediction == pytest.approx(shown["power_w"], rel=1e-9)
    assert out.targets["power"].values["gpu_arch"].startswith("Blackwell")
    assert "estimated from its specs" in out.physics.power_reading()
    assert out.physics.itl_parts()["ms"].sum() == pytest.approx(shown["itl_s"] * 1000, rel=1e-9)
    power = out.physics.power_parts()
    assert power["w"].sum() == pytest.approx(out.physics.power["tdp_w"])  # idle + busy (+ stack) + unused = TDP
    assert "Memory-bound" in out.physics.itl_reading()  # one sequence at a time reads the weights each step


def test_groups_cover_every_input_the_plus_models_read(plus_setup):
    from wattgpu_core.plus_itl import ITL_INPUTS
    from wattgpu_core.plus_power import POWER_INPUTS

    grouped = {c for g in explain.PLUS_GROUPS for c in g.columns}
    assert set(ITL_INPUTS) | set(POWER_INPUTS) | {"serving_stack", "scenario"} <= grouped
    assert len(explain.PLUS_GROUPS) <= 13  # at most 12 vary in one scenario: 2^12 coalitions
    # changing every column no group covers leaves both predictions unchanged
    model_set, gpus, llms, _ = plus_setup
    _, rows = explain.model_rows(pd.DataFrame([{"llm": LLAMA, "gpu": "a30", **OFFLINE}]), gpus, llms, model_set)
    other = rows.copy()
    changed = [c for c in rows.columns if c not in grouped]
    assert {"release_year", "bandwidth_latency_s", "transistor_count_m"} <= set(changed)
    for c in changed:
        numeric = pd.to_numeric(other[c], errors="coerce")
        other[c] = numeric * 1.7 + 1 if numeric.notna().all() else "changed"
    for model in explain.plus_models(model_set).values():
        np.testing.assert_array_equal(model.predict(other), model.predict(rows))


def test_physics_breakdowns_add_up_to_the_predictions(plus_setup):
    model_set, gpus, llms, background = plus_setup
    models = explain.plus_models(model_set)
    rows = pd.concat([background.population["offline"].head(40), background.population["server"].head(40)],
                     ignore_index=True)
    itl = models["itl"].breakdown(rows)
    parts = ["weights_s", "compute_limit_s", "kv_cache_s", "attention_compute_s", "allreduce_s", "host_s", "prefill_s",
             "correction_s"]
    np.testing.assert_allclose(itl[parts].sum(axis=1), models["itl"].predict(rows), rtol=1e-12)
    assert set(itl["limit"]) <= {"memory", "compute", "power"}
    power = models["power"].breakdown(rows)
    np.testing.assert_allclose(power["power_w"], models["power"].predict(rows), rtol=1e-12)
    np.testing.assert_allclose(power["serving_idle_w"] + power["busy_w"], power["power_w"], rtol=1e-12)


def test_plus_global_importance_over_a_few_configurations(plus_setup):
    model_set, _, _, background = plus_setup
    calls = []
    imp = explain.plus_global_importance(model_set, background, "server", n_rows=3,
                                         progress=lambda f, msg: calls.append(f))
    assert calls[-1] == pytest.approx(1.0) and len(calls) == 3
    for target in ("power", "itl"):
        table = imp[target].importance
        assert (table["importance"] >= 0).all() and table["importance"].is_monotonic_decreasing
        assert "batch" not in set(table["feature"])  # server rows: vLLM's default batch everywhere
        assert imp[target].shap.shape == imp[target].values.shape == (3, len(table))


def test_explain_view_explains_the_chosen_model_set(plus_setup):
    from dataclasses import replace

    from wattgpu_core.planning import load_model_set

    model_set, gpus, llms, background = plus_setup
    default = load_model_set("default")
    plus = explain.explain_view(LLAMA, "l4", OFFLINE, gpus, llms, model_set, background)
    assert plus.model_label == "WattGPU+" and plus.uses_plus("power") and plus.physics is not None
    assert "geometric mean" in plus.baseline and "16 offline training configurations" in plus.baseline
    paper = explain.explain_view(LLAMA, "l4", OFFLINE, gpus, llms, default.parts["paper"])
    assert paper.model_label == "Paper XGB" and not paper.uses_plus("itl") and paper.physics is None
    shown = _predicted(default.parts["paper"], gpus, llms, "l4", OFFLINE)
    assert paper.targets["power"].prediction == pytest.approx(shown["power_w"], rel=1e-5)
    # a default set that keeps XGB for ITL explains each target with the model that predicts it
    mixed = replace(default, choice={"power": {"offline": "plus", "server": "plus"},
                                       "itl": {"offline": "paper", "server": "paper"}})
    view = explain.explain_view(LLAMA, "l4", OFFLINE, gpus, llms, mixed, background)
    assert view.uses_plus("power") and not view.uses_plus("itl") and view.model_label == "WattGPU+ / Paper XGB"
    with pytest.raises(WattGPUError, match="unknown GPU"):
        explain.explain_view(LLAMA, "no-such-gpu", OFFLINE, gpus, llms, model_set, background)


def test_plus_figures_have_units_and_add_up(plus_setup):
    from pages.view import figures

    model_set, gpus, llms, background = plus_setup
    out = explain.explain_plus_request(LLAMA, "l4", OFFLINE, gpus, llms, model_set, background)
    power = figures.explanation_waterfall(out.targets["power"], top=12)
    assert power.layout.xaxis.title.text == "Mean GPU power (W)"
    assert {t.name for t in power.data} <= {"raises the prediction", "lowers the prediction"}
    itl = figures.explanation_waterfall(out.targets["itl"], top=12)
    assert "ms, log scale" in itl.layout.xaxis.title.text
    assert all(text.startswith("×") for t in itl.data for text in t.text)
    bars = figures.itl_breakdown_figure(out.physics)
    assert bars.layout.xaxis.title.text == "ITL (ms)"
    physics_ms = out.physics.itl["physics_itl_s"] * 1000
    assert sum(bars.data[0].x) == pytest.approx(physics_ms)  # the physical parts; corrections are in the title
    assert f"= {out.targets['itl'].prediction:.3f} ms predicted" in bars.layout.title.text
    stack = figures.power_breakdown_figure(out.physics)
    assert stack.layout.xaxis.title.text == "Mean GPU power (W)"
    assert sum(t.x[0] for t in stack.data) == pytest.approx(out.physics.power["tdp_w"])
    assert [t.name.split(" ")[0] for t in stack.data] == ["Serving-idle", "Busy", "Unused"]
    imp = explain.plus_global_importance(model_set, background, "offline", n_rows=2)
    chart = figures.group_importance_bars(imp["power"])
    assert chart.layout.xaxis.title.text == "Mean |SHAP value| (W)" and "2 offline training" in chart.layout.title.text
    assert figures.group_importance_beeswarm(imp["itl"]).layout.xaxis.title.text == "SHAP value (natural log of ITL)"


# ----------------------------------------------------------------------------------------------------------------
# The Explain page
def test_explain_page_switches_model_set_and_llm(store_path, monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    root = Path(__file__).resolve().parent.parent
    monkeypatch.setenv("WATTGPU_DB", str(store_path))
    monkeypatch.chdir(root)
    at = AppTest.from_file(str(root / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/explain.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.segmented_control(key="exp_model").value == "default"  # WattGPU+ by default
    texts = " ".join(m.value for m in at.markdown)
    assert "Predicted power is" in texts and "Serving-idle power" in texts  # SHAP reading and physics
    from wattgpu_core import shipped
    from wattgpu_core.store import Store

    with Store.open(store_path, read_only=True) as s:
        ready = shipped.is_current(s)
    from wattgpu_core.planning import load_model_set

    # the importance chart shows power's model: XGB's is always at hand, WattGPU+'s when it ships with the models
    pool = "offline" if at.radio(key="exp_scenario").value == "offline" else "server"
    power_by_plus = load_model_set("default").uses("power", pool) == "plus"
    if ready or not power_by_plus:
        assert len(at.get("plotly_chart")) == 5, "two waterfalls, two physics charts and the global importance"
    else:
        assert len(at.get("plotly_chart")) == 4, "two waterfalls and two physics charts"
        assert at.button(key="exp_global"), "WattGPU+ global importance is computed on request"
    at.selectbox(key="exp_llm").select("Qwen/Qwen2.5-0.5B-Instruct").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.query_params["llm"] == "Qwen/Qwen2.5-0.5B-Instruct"
    assert any("(0.49B parameters)" in m.value for m in at.markdown), [m.value for m in at.markdown]
    at.segmented_control(key="exp_model").set_value("paper").run()
    assert not at.exception, [e.value for e in at.exception]
    # the choice is the page's own: the sidebar (and so Home and Compare) keeps predicting with WattGPU+
    assert at.sidebar.radio(key="model_set").value == "default" and "model" not in at.query_params
    assert any("on this page only" in c.value for c in at.caption)
    texts = " ".join(m.value for m in at.markdown)
    assert "Predicted power is" in texts and "Serving-idle power" not in texts
    assert len(at.get("plotly_chart")) == 3, "two waterfalls and the XGB global importance"
    at.segmented_control(key="exp_model").set_value("default").run()
    assert at.sidebar.radio(key="model_set").value == "default"
    assert "model" not in at.query_params  # the default model set is left out of the URL
    if ready:  # shipped with the models: no prompt, the importance is there
        assert not any(getattr(b, "key", None) == "exp_global" for b in at.button)
        assert len(at.get("plotly_chart")) == 5
        return
    # global importance on request (3 configurations here instead of 100, to keep the test short)
    from wattgpu_core import explain

    defaults = explain.plus_global_importance.__defaults__  # (n_rows, seed, background_size, progress)
    monkeypatch.setattr(explain.plus_global_importance, "__defaults__", (3, *defaults[1:]))
    if not power_by_plus:  # XGB predicts power here: WattGPU+'s importance is the ITL one
        at.segmented_control(key="exp_target").set_value("itl").run()
    at.button(key="exp_global").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.main.button, "the prompt goes once computed"
    assert any("Mean |SHAP| over 3 offline training configurations" in c.value for c in at.caption)


# ----------------------------------------------------------------------------------------------------------------
# shap.Explanation objects
def test_paper_explanations_are_shap_explanations_that_add_up(trained):
    import shap

    fitted, frame, gpus, llms = trained
    out = explain.explain_request(LLAMA, "l4", SERVER, gpus, llms, fitted)
    row = explain.request_frame(LLAMA, "l4", SERVER, gpus, llms)
    for target, e in out.items():
        ex = e.explanation
        assert isinstance(ex, shap.Explanation)
        assert list(ex.feature_names) == list(e.shap.index) == fitted[target].feature_names
        assert float(ex.base_values) + float(np.sum(ex.values)) == pytest.approx(
            fitted[target].predict_raw(row)[0], rel=1e-5)
        np.testing.assert_array_equal(np.asarray(ex.values), e.shap.to_numpy())
    many = fitted["power"].explain(frame.head(50))  # rows x features, ready for shap.plots.beeswarm
    assert isinstance(many, shap.Explanation) and many.values.shape == (50, len(fitted["power"].feature_names))
    imp = explain.global_importance(fitted, frame, max_rows=100)["itl"].explanation
    assert isinstance(imp, shap.Explanation) and imp.values.shape[0] == 100


def test_plus_explanations_are_shap_explanations_over_the_groups(plus_setup):
    import shap

    model_set, gpus, llms, background = plus_setup
    out = explain.explain_plus_request(LLAMA, "l4", SERVER, gpus, llms, model_set, background)
    for e in out.targets.values():
        ex = e.explanation
        assert isinstance(ex, shap.Explanation)
        assert list(ex.feature_names) == [g.name for g in explain.PLUS_GROUPS]
        by_key = pd.Series(np.asarray(ex.values, dtype=float), index=[g.key for g in explain.PLUS_GROUPS])
        pd.testing.assert_series_equal(by_key[e.shap.index], e.shap, check_names=False)
        assert (by_key.drop(e.shap.index) == 0.0).all()
        assert float(ex.base_values) == e.base_value
        assert ex.data[[g.key for g in explain.PLUS_GROUPS].index("bandwidth")] == e.values["bandwidth"]


def test_plus_grouped_shapley_values_agree_with_shaps_exact_explainer(plus_setup):
    """WattGPU+'s own enumeration against shap's ExactExplainer on a small case: 4 background configurations, each
    group one "feature" whose value says which row its columns come from (the explained row or a background row),
    so shap's interventional masking over the background is exactly the grouped coalition value."""
    import shap

    from wattgpu_core.grouped_shap import _column
    from wattgpu_core.registry import get_model_set

    model_set, gpus, llms, background = plus_setup
    _, x = explain.model_rows(pd.DataFrame([{"llm": LLAMA, "gpu": "l4", **SERVER}]), gpus, llms, model_set)
    bg = background.rows["server"].head(4).reset_index(drop=True)
    groups = explain.PLUS_GROUPS
    models = explain.plus_models(model_set)
    source = pd.concat([bg, x[bg.columns]], ignore_index=True)  # rows 0..3: background, row 4: the request
    cols = {c: _column(source, c) for c in source.columns}  # text columns as object arrays, numbers as floats
    for target in ("power", "itl"):
        def f(z, target=target):
            z = np.asarray(z, dtype=int)
            data = {}
            for j, g in enumerate(groups):
                for c in g.columns:
                    if c in cols:
                        data[c] = cols[c][z[:, j]]
            frame = pd.DataFrame({c: pd.Series(v, dtype=object) if v.dtype == object else v for c, v in data.items()})
            pred = np.asarray(models[target].predict(frame), dtype=float)
            return np.log(pred) if target == "itl" else pred

        masker = shap.maskers.Independent(np.repeat(np.arange(4)[:, None], len(groups), axis=1), max_samples=4)
        exact = shap.explainers.ExactExplainer(f, masker)(np.full((1, len(groups)), 4))
        ours = get_model_set("plus").explain(models, target, x, bg)
        np.testing.assert_allclose(ours.values[0], exact.values[0], rtol=1e-7, atol=1e-9)
        assert float(ours.base_values[0]) == pytest.approx(float(exact.base_values[0]), rel=1e-9)



def test_shap_imports_once_in_the_background():
    """The app starts shap's import after its first page is drawn: one daemon thread per process, none when shap is
    already imported (fresh interpreters: imports are per process)."""
    import subprocess
    import sys

    def run(code: str) -> list[str]:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
        return out.stdout.split("\n")[:2]

    assert run("import sys\nfrom wattgpu_core import explain as E\nt = E.import_shap_in_background()\n"
               "print(t.daemon, E.import_shap_in_background() is t)\n"
               "t.join()\nprint('shap' in sys.modules, E.import_shap_in_background() is t)\n") == ["True True",
                                                                                                 "True True"]
    assert run("import shap\nfrom wattgpu_core import explain as E\nprint(E.import_shap_in_background())\n")[0] == "None"
