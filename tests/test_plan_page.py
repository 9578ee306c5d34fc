"""AppTest of the Plan a deployment page: it ranks options, shows the defaults' sources, keeps its inputs in the
URL, and follows a change of the arrival rate and of a GPU price."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 180


@pytest.fixture
def plan_page(store_path, monkeypatch):
    monkeypatch.setenv("WATTGPU_DB", str(store_path))
    monkeypatch.chdir(ROOT)

    def make(**query) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
        at.query_params.update(query)
        at.switch_page("pages/plan.py")
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return make


def ranking(at: AppTest):
    return next(d.value for d in at.dataframe if "Meets targets" in d.value.columns)


def test_plan_page_ranks_options_and_follows_the_rate(plan_page):
    at = plan_page(prec="bf16|fp8", tp="2", ttft="0")
    assert at.title[0].value == "Plan a deployment"
    table = ranking(at)
    assert {"GPU", "GPUs per replica", "Precision", "Replicas", "GPUs in total", "TTFT (s)", "ITL (ms)",
            "Energy per token (J)", "$ per M tokens", "gCO2e per M tokens", "Fits", "Meets targets",
            "Notes"} <= set(table.columns)
    ok = (table["Fits"] & table["Meets targets"]).tolist()
    assert ok[0] and ok == sorted(ok, reverse=True)  # options meeting the targets come first
    captions = " ".join(c.value for c in at.caption)
    assert "EIA" in captions and "Uptime" in captions and "Ember" in captions  # defaults show their sources
    assert len(at.get("plotly_chart")) == 2
    gpus_before = table.loc[table["Meets targets"], "GPUs in total"].sum()

    at.number_input(key="plan_rate").set_value(50.0).run()
    assert not at.exception
    assert at.query_params["rate"] == ["50"] or at.query_params["rate"] == "50"
    after = ranking(at)
    assert after.loc[after["Meets targets"], "GPUs in total"].sum() > gpus_before


def test_plan_page_restores_a_shared_link(plan_page):
    at = plan_page(llm="meta-llama/Llama-3.1-8B-Instruct", preset="code", rate="3", inp="1500", out="50",
                   ttft="0", itl="0", prec="bf16", tp="1", kwh="0.2")
    assert at.number_input(key="plan_rate").value == 3.0
    assert at.number_input(key="plan_kwh").value == 0.2
    assert at.multiselect(key="plan_prec").value == ["bf16"]
    table = ranking(at)
    assert set(table["Precision"]) == {"bf16"} and set(table["GPUs per replica"]) == {1}


def test_a_link_with_another_hugging_face_id_opens_that_llm(plan_page):
    """The current id of a catalog LLM (renamed repository) in a link opens that LLM, never the first in the list."""
    at = plan_page(llm="meta-llama/Llama-3.1-70B-Instruct", prec="bf16", tp="2")
    assert at.selectbox(key="plan_llm").value == "meta-llama/Meta-Llama-3.1-70B-Instruct"


def test_compare_gpus_takes_gpus_per_replica_and_precision_and_never_ranks_a_saturated_gpu_best(plan_page):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.query_params.update({"llm": "meta-llama/Llama-3.1-8B-Instruct", "scenario": "server", "qps": "10",
                            "inp": "1000", "out": "300", "tp": "2", "prec": "fp8"})
    at.switch_page("pages/compare.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="cmp_tp").value == 2 and at.selectbox(key="cmp_prec").value == "fp8"
    table = at.dataframe[0].value
    assert "Saturated" in table.columns and "Capacity (tokens/s)" in table.columns
    saturated = table["Saturated"].tolist()
    assert saturated == sorted(saturated)  # saturated GPUs only after every GPU that carries the load
    assert not saturated[0]
    at.selectbox(key="cmp_tp").set_value(1).run()
    assert not at.exception and "tp" not in at.query_params  # the default is left out of the link


def test_plan_page_plans_for_the_chosen_serving_stack(plan_page):
    at = plan_page(prec="bf16", tp="1", ttft="0", itl="0", stack="vLLM 0.5")
    assert at.selectbox(key="plan_stack").value == "vLLM 0.5"
    captions = " ".join(c.value for c in at.caption)
    assert "for vLLM 0.5" in captions
    slow = ranking(at).set_index("GPU")["ITL (ms)"]
    at.selectbox(key="plan_stack").select("vLLM 0.14").run()
    assert not at.exception and "stack" not in at.query_params
    fast = ranking(at).set_index("GPU")["ITL (ms)"]
    both = pd.concat([slow, fast], axis=1, keys=["slow", "fast"]).dropna()
    assert len(both) >= 5 and (both["slow"] > both["fast"]).all()  # vLLM 0.5 spends far longer per token
    at.selectbox(key="plan_stack").select("another stack (no calibration)").run()
    assert not at.exception
    assert "has no calibration" in " ".join(c.value for c in at.caption)
