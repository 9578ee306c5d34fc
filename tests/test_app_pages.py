"""AppTest for every page: each runs without exception and handles at least one real interaction.

Every test points WATTGPU_DB at a private copy of the seed store, so data/wattgpu.duckdb is never touched.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from wattgpu_core.importers import canonical_template
from wattgpu_core.safety import md
from wattgpu_core.store import Store

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = Path(__file__).parent / "fixtures" / "hf_configs"
TIMEOUT = 120


@pytest.fixture
def app(store_path, monkeypatch):
    monkeypatch.setenv("WATTGPU_DB", str(store_path))
    monkeypatch.chdir(ROOT)

    def make(page: str | None = None, **query) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
        for k, v in query.items():
            at.query_params[k] = v
        at.run()
        if page:
            at.switch_page(f"pages/{page}.py")
            at.run()
        assert_ok(at)
        return at

    return make


def assert_ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def plotly_charts(at: AppTest):
    return at.get("plotly_chart")


def test_home_quick_prediction_follows_the_llm(app):
    at = app()
    assert "WattGPU" in at.title[0].value
    labels = [m.label for m in at.metric]
    assert "Measured runs" in labels and "Mean GPU power" in labels
    before = {m.label: m.value for m in at.metric}
    at.selectbox(key="home_llm").select("Qwen/Qwen2.5-0.5B-Instruct").run()
    assert_ok(at)
    after = {m.label: m.value for m in at.metric}
    itl = next(label for label in after if label.startswith("ITL"))
    assert after["Mean GPU power"] != before["Mean GPU power"] or after[itl] != before[itl]
    assert at.query_params["llm"] == "Qwen/Qwen2.5-0.5B-Instruct"


def test_compare_ranks_gpus_and_keeps_state_in_the_url(app):
    at = app("compare")
    assert at.dataframe, "the ranked table is shown"
    at.selectbox(key="cmp_llm").select("Qwen/Qwen2.5-32B-Instruct").run()
    assert_ok(at)
    table = at.dataframe[0].value
    assert "Energy per token (J)" in table.columns and "GPU" in table.columns
    assert table["Energy per token (J)"].is_monotonic_increasing
    assert not any("T4" in name for name in table["GPU"]), "a 16 GB T4 cannot hold a 32B model"
    assert any("cannot hold" in e.label for e in at.expander)
    at.radio(key="cmp_scenario").set_value("server").run()
    assert_ok(at)
    assert at.query_params["llm"] == "Qwen/Qwen2.5-32B-Instruct" and at.query_params["scenario"] == "server"
    assert plotly_charts(at), "the Pareto plot is shown"
    assert at.get("download_button")


def test_compare_restores_a_shared_link(app):
    at = app("compare")
    at.query_params.update({"llm": "Qwen/Qwen2.5-7B-Instruct", "scenario": "server", "qps": "0.017", "mem": "40"})
    shared_link = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    shared_link.query_params.update(at.query_params)
    shared_link.switch_page("pages/compare.py")
    shared_link.run()
    assert_ok(shared_link)
    assert shared_link.selectbox(key="cmp_llm").value == "Qwen/Qwen2.5-7B-Instruct"
    assert shared_link.radio(key="cmp_scenario").value == "server"
    assert shared_link.slider(key="cmp_mem").value == 40.0
    table = shared_link.dataframe[0].value
    assert (table["Memory (GB)"] >= 40).all()


def test_explain_shows_waterfalls_for_the_chosen_pair(app):
    at = app("explain")
    at.selectbox(key="exp_llm").select("meta-llama/Llama-3.1-8B-Instruct")
    at.selectbox(key="exp_gpu").select("l4").run()
    assert_ok(at)
    charts = plotly_charts(at)
    assert len(charts) >= 3, "two waterfalls and the global importance"
    assert any("Predicted power" in m.value for m in at.markdown)
    at.segmented_control(key="exp_kind").set_value("beeswarm").run()
    assert_ok(at)


def test_cross_validation_tables_and_breakdown(app, warm_evaluation):
    at = app("cross_validation")
    assert len(at.dataframe) >= 2, "power and ITL tables"
    power = at.dataframe[0].value
    assert not at.toggle(key="cv_paper").value, "every GPU counts by default"
    assert {"MdAPE (%)", "Pearson r", "GPU τ", "LLM τ", "80% interval coverage (%)"} <= set(power.columns)
    assert {"CV", "LOGO", "LOLO"} <= set(power["Split"])
    assert {"XGB", "WattGPU+", "TDP", "LS-TDP"} <= set(power["Model"]), "WattGPU+ side by side with the paper"
    external = at.dataframe[2].value
    assert "Ratio unseen / seen: median error (%)" in external.columns
    assert {"WattGPU+", "XGB"} <= set(external["Model"])
    at.toggle(key="cv_paper").set_value(True).run()
    assert_ok(at)
    power = at.dataframe[0].value
    assert "Paper MdAPE (%)" in power.columns
    assert "Paper-compatible" in " ".join(c.value for c in at.caption)
    at.segmented_control(key="cv_by").set_value("llm").run()
    assert_ok(at)
    assert len(plotly_charts(at)) == 6, "2 parity plots, the error medians and spread, 2 external ratio plots"
    assert any("Picks the best GPU" in m.value and "lowest measured" in m.value for m in at.markdown), \
        "every metric explained in one line"


def test_data_upload_ingest_list_and_remove(app, store_path):
    at = app("data")
    with Store.open(store_path) as s:
        before = s.stats()["runs"]
    at.file_uploader(key="data_upload").upload("mine.csv", canonical_template().encode(), "text/csv")
    at.run()
    assert_ok(at)
    assert any("2 valid runs" in s.value for s in at.success)
    at.button(key="data_confirm").click().run()
    assert_ok(at)
    assert any("added 2 runs" in i.value for i in at.info)
    assert shared_store_runs(at, store_path) == before + 2
    at.button(key="data_retrain").click().run()
    assert_ok(at)
    change = [d.value for d in at.dataframe if "MdAPE before (%)" in d.value.columns]
    assert change and len(change[0]) == 8, "both model sets: power and ITL, offline and server"
    retrained = list((Path(store_path).parent / "retrained").glob("*/plus.meta.json"))
    assert len(retrained) == 1, "the retrained models are saved beside the store, never in models/"
    at.run()
    assert any("retrained on the current data" in c.value for c in at.sidebar.caption)
    listing = [d.value for d in at.dataframe if "Batch" in d.value.columns]
    assert listing and len(listing[0]) == 1
    at.button(key="data_remove").click().run()
    assert_ok(at)
    assert shared_store_runs(at, store_path) == before + 2, "nothing is removed before the user confirms"
    assert any("Remove upload-" in w.value and "Runs added: 2" in w.value for w in at.warning)
    at.button(key="data_remove_no").click().run()
    assert_ok(at)
    assert not at.warning
    assert shared_store_runs(at, store_path) == before + 2, "cancel keeps the upload"
    at.button(key="data_remove").click().run()
    at.button(key="data_remove_yes").click().run()
    assert_ok(at)
    assert shared_store_runs(at, store_path) == before
    assert any("back to its state" in s.value for s in at.success)
    assert not any("retrained on the current data" in c.value for c in at.sidebar.caption), \
        "removing the upload returns to the committed models"


def test_removing_an_upload_asks_first(app, store_path):
    at = app("data")
    at.file_uploader(key="data_upload").upload("mine.csv", canonical_template().encode(), "text/csv")
    at.run()
    at.button(key="data_confirm").click().run()
    before = shared_store_runs(at, store_path)
    at.button(key="data_remove").click().run()
    assert_ok(at)
    assert shared_store_runs(at, store_path) == before, "nothing is removed before the user confirms"
    assert any("Runs added: 2" in w.value for w in at.warning)
    at.button(key="data_remove_no").click().run()
    assert not at.warning and shared_store_runs(at, store_path) == before, "cancel keeps the upload"
    at.button(key="data_remove").click().run()
    at.button(key="data_remove_yes").click().run()
    assert_ok(at)
    assert shared_store_runs(at, store_path) == before - 2
    assert any("back to its state" in s.value for s in at.success)


def shared_store_runs(at: AppTest, store_path: Path) -> int:
    # The app holds the store open; count through the app's own cached store.
    from pages.ui import shared

    return shared._open_store(str(Path(store_path).resolve())).stats()["runs"]


def test_data_rejects_a_bad_file_with_row_and_column(app):
    at = app("data")
    bad = canonical_template().replace("331.5", "-5").encode()
    at.file_uploader(key="data_upload").upload("bad.csv", bad, "text/csv").run()
    assert_ok(at)
    assert at.error and "rejected" in at.error[0].value
    issues = at.dataframe[-1].value
    assert list(issues.columns) == ["Row", "Column", "Problem"]
    assert "power_w" in set(issues["Column"])


def test_sidebar_custom_llm_from_config_json(app):
    at = app("compare")
    at.sidebar.file_uploader(key="custom_llm_file").upload(
        "config.json", (CONFIGS / "mixtral-8x7b.json").read_bytes(), "application/json")
    at.sidebar.text_input(key="custom_llm_id").input("me/my-mixtral")
    at.run()
    at.sidebar.button(key="custom_llm_add").click().run()
    assert_ok(at)
    assert any("46.7B parameters, 12.9B active" in s.value for s in at.sidebar.success), (
        [s.value for s in at.sidebar.success], [e.value for e in at.sidebar.error])
    at.selectbox(key="cmp_llm").select("me/my-mixtral").run()
    assert_ok(at)


def test_sidebar_custom_llm_rejects_bad_json(app):
    at = app()
    at.sidebar.file_uploader(key="custom_llm_file").upload("config.json", b'{"model_type": "llama",,}',
                                                           "application/json")
    at.run()
    at.sidebar.button(key="custom_llm_add").click().run()
    assert_ok(at)
    assert any("not valid JSON" in e.value for e in at.sidebar.error)


def open_link(page: str, **query) -> AppTest:
    """A shared link: the page opened first, with its URL parameters."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.query_params.update(query)
    at.switch_page(f"pages/{page}.py")
    at.run()
    assert_ok(at)
    return at


def test_side_by_side_names_gpus_and_says_whether_the_ranking_holds(app):  # app: WATTGPU_DB is a seed copy
    at = open_link("side_by_side", pick="h200-sxm-141gb|l40s", llm="meta-llama/Llama-3.1-8B-Instruct")
    table = at.dataframe[0].value
    assert list(table["Deployment"]) == ["NVIDIA H200 SXM 141GB", "NVIDIA L40S"]
    assert table.columns[1].startswith("Energy per token (J)"), "the key metric comes right after the name"
    assert all("–" in v for v in table.iloc[:, 1]), "every value carries its 80% interval"
    statements = [m.value for m in at.markdown if "draws" in m.value]
    assert len(statements) == 1 and "energy per token" in statements[0]
    assert " of 10 draws" in statements[0] or "every draw" in statements[0]
    assert plotly_charts(at), "the side-by-side chart is shown"
    at.number_input(key="sbs_n_l40s").set_value(2).run()
    assert_ok(at)
    assert list(at.dataframe[0].value["Deployment"]) == ["NVIDIA H200 SXM 141GB", "NVIDIA L40S ×2"]
    assert at.query_params["pick"] == "h200-sxm-141gb|l40s*2"


def test_side_by_side_says_where_the_models_disagree_and_why(app):
    at = open_link("side_by_side", pick="b200|b300", llm="meta-llama/Llama-3.1-8B-Instruct",
                   scenario="server", qps="2", inp="512", out="256")
    notes = [w.value for w in at.warning]
    assert any("rank these differently" in n for n in notes), notes
    note = next(n for n in notes if "rank these differently" in n)
    assert "outside the GPUs both models learned from" in note, "the reason the data give"
    assert "does not read the workload" in note
    assert "the evaluation favours" in note or "neither model is better" in note


def test_custom_gpu_starts_from_a_catalog_gpu(app):
    at = app()
    at.sidebar.selectbox(key="custom_gpu_base").select("h100-nvl-94gb").run()
    assert_ok(at)
    assert at.sidebar.text_input(key="custom_gpu_name").value == "NVIDIA H100 NVL 94GB (custom)"
    assert at.sidebar.number_input(key="custom_gpu_memory_size_gb").value == 94.0
    year = at.sidebar.number_input(key="custom_gpu_release_year").value
    assert isinstance(year, int), "years are whole numbers"
    at.sidebar.number_input(key="custom_gpu_tdp_w").set_value(350.0)
    at.sidebar.button[0].click().run()  # the form's submit button
    assert_ok(at)
    assert any(f"Added {md('NVIDIA H100 NVL 94GB (custom)')}" in s.value for s in at.sidebar.success), \
        "the name is shown as literal text"


def test_compare_shows_a_filters_active_chip_from_a_shared_link(app):  # app: WATTGPU_DB is a seed copy
    at = open_link("compare", mem="80", gen="Server Hopper(Hxx)")
    chips = [m.value for m in at.markdown if "Filters active" in m.value]
    assert chips and "memory ≥ 80 GB" in chips[0] and "Hopper" in chips[0]
    assert any("active" in e.label for e in at.expander)


def test_explain_model_choice_stays_on_the_page(app):
    at = app("explain")
    at.segmented_control(key="exp_model").set_value("paper").run()
    assert_ok(at)
    assert at.session_state["model_set"] == "default", "the sidebar's model is not changed by Explain"
    assert any("on this page only" in c.value for c in at.caption)


def test_compare_says_when_the_paper_model_picks_another_gpu(app):  # app: WATTGPU_DB is a seed copy
    # offline batch of 128 for Llama-3.1-8B: WattGPU+ picks the H100 NVL it learned from, XGB the unseen B100
    at = open_link("compare", llm="meta-llama/Llama-3.1-8B-Instruct", scenario="offline", batch="128")
    notes = [w.value for w in at.warning if "rank these differently" in w.value]
    assert notes, [w.value for w in at.warning]
    assert "the evaluation favours" in notes[0] or "neither model is better" in notes[0]


def test_compare_predicts_for_the_chosen_serving_stack_and_keeps_it_in_the_url(app):
    at = app("compare")
    before = at.dataframe[0].value
    assert "vLLM 0.14" in " ".join(c.value for c in at.caption)
    at.selectbox(key="cmp_stack").select("vLLM 0.5").run()
    assert_ok(at)
    assert at.query_params["stack"] == "vLLM 0.5"
    assert any("for vLLM 0.5" in c.value for c in at.caption), "the prediction names the chosen stack"
    after = at.dataframe[0].value
    col = "Energy per token (J)"
    assert after[col].median() != before[col].median(), "vLLM 0.5's calibration moves the predictions"
    at.selectbox(key="cmp_stack").select("another stack (no calibration)").run()
    assert_ok(at)
    assert "stack" in at.query_params
    # a shared link restores the stack
    link = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    trt = "TensorRT-LLM (version not stated in argonne)"
    link.query_params.update({"stack": trt})
    link.switch_page("pages/compare.py")
    link.run()
    assert_ok(link)
    assert link.selectbox(key="cmp_stack").value == trt
