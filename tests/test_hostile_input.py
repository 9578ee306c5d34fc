"""Hostile input never becomes markup or a formula, and never a traceback: names from uploads, custom GPUs/LLMs and
URL parameters render as text; every CSV WattGPU writes (the Compare download, ``predict --output``) neutralises
formula cells while numbers stay numbers; odd files (UTF-16, an over-long header field, too many rows, a free-text
source id, a new source without license or attribution, an oversized config.json) are rejected with a message and
leave the store unchanged. Real store copies, the real CLI and AppTest on the real pages."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from pages.view import compare as view_compare
from pages.view import url_state
from wattgpu_core.custom import CustomEntryError, gpu_from_specs, llm_from_config
from wattgpu_core.errors import ValidationError
from wattgpu_core.importers import reading
from wattgpu_core.ingest import ingest_bytes
from wattgpu_core.paths import ROOT
from wattgpu_core.planning import load_model_set
from wattgpu_core.safety import csv_bytes, md, neutralise_cell, plot_text

HOSTILE = ['=HYPERLINK("http://x","click")', "@SUM(A1)", "+1+cmd|' /C calc'!A0", "-2+3", "\tTAB", "\rCR"]
MARKUP = '<img src=x onerror=alert(1)> [click](javascript:alert(1)) **bold** :red[x] $x$ http://evil.example'
NAME = "<img src=x onerror=alert(1)> [click](javascript:alert(1)) **b**"  # a custom GPU name (<= 80 chars)
SPECS = {"memory_size_gb": 80, "memory_bandwidth_gb_s": 3350, "fp16_tensor_dense_tflops": 990, "tdp_w": 700,
         "memory_type": "HBM3", "form_factor": "SXM"}


def test_formula_cells_are_neutralised_and_numbers_stay_numbers():
    for text in HOSTILE:
        assert neutralise_cell(text) == "'" + text
    for safe in ("H100", "-1.5", "+3", "1e-3", 42, -7.5, None):
        assert neutralise_cell(safe) == safe
    frame = pd.DataFrame({"gpu": HOSTILE, "power_w": [-1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "rank": range(6)})
    back = pd.read_csv(io.BytesIO(csv_bytes(frame)), keep_default_na=False)
    assert all(v.startswith("'") for v in back["gpu"].str.replace("\r", "", regex=False) if v)
    assert back["power_w"].tolist() == [-1.0, 2.0, 3.0, 4.0, 5.0, 6.0] and back["rank"].tolist() == list(range(6))


def test_markdown_and_plot_text_print_what_was_typed():
    escaped = md(MARKUP)
    for raw in ("[click](", "**bold**", ":red[", "$x$", "http://"):
        assert raw not in escaped
    for ch in "<>[]()*$:":  # every Markdown/HTML character comes escaped
        assert escaped.count(ch) == escaped.count("\\" + ch), ch
    assert escaped.replace("\\", "") == MARKUP
    assert "<img" not in plot_text(MARKUP) and "&lt;img" in plot_text(MARKUP)


def _add_gpu(store, name: str) -> str:
    row = gpu_from_specs(dict(SPECS, name=name), set(store.gpus()["gpu_id"]))
    store.add_gpu(row)
    return row["gpu_id"]


def test_the_compare_download_neutralises_a_custom_gpu_named_like_a_formula(store):
    name = HOSTILE[0]
    gpu_id = _add_gpu(store, name)
    gpus = store.gpus()
    comparison = view_compare.compare_gpus("Qwen/Qwen2.5-7B-Instruct", url_state.Workload("offline", 64, 1.0, 256, 256),
                                 gpus[gpus["gpu_id"].isin([gpu_id, "h100-nvl-94gb", "l4"])], store.llms(),
                                 load_model_set("default"), store.runs())
    frame = pd.read_csv(io.BytesIO(view_compare.download_csv(comparison)), keep_default_na=False)
    assert "'" + name in set(frame["gpu_name"]) and name not in set(frame["gpu_name"])
    assert pd.api.types.is_float_dtype(frame["power_w"]) and (frame["power_w"] > 0).all()


def test_predict_output_neutralises_formula_cells(store, store_path, tmp_path):
    name = HOSTILE[1]
    _add_gpu(store, name)
    requests = tmp_path / "req.csv"
    pd.DataFrame({"llm": ["Qwen/Qwen2.5-7B-Instruct"] * 2, "gpu": [name, "NVIDIA L4"],
                  "scenario": ["offline", "offline"]}).to_csv(requests, index=False)
    out = tmp_path / "out.csv"
    env = dict(os.environ)
    done = subprocess.run([sys.executable, "-m", "wattgpu_core", "predict", "--input", str(requests), "--output",
                           str(out), "--db", str(store_path)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert "'@SUM(A1)" in text and ",@SUM" not in text and not text.startswith("@")
    frame = pd.read_csv(out)
    assert pd.api.types.is_float_dtype(frame["power_w"]) and frame["power_w"].notna().all()


GOOD = "llm,gpu,scenario,power_w,source_id,license,attribution\nQwen/Qwen2.5-7B-Instruct,NVIDIA L4,offline,60,lab_h,CC0,H\n"


@pytest.mark.parametrize("name, data, words", [
    ("utf-16", GOOD.encode("utf-16"), ["UTF-16", "re-save it as UTF-8"]),
    ("utf-16-le without BOM", GOOD.encode("utf-16-le"), ["UTF-16"]),
    ("header field over 131072 characters", ("x" * 140_000 + ",power_w\n1,2\n").encode(), ["header line"]),
    ("free-text source id", GOOD.replace("lab_h", "My Lab <b>!</b>").encode(), ["not a short slug", "row 1"]),
    ("long source id", GOOD.replace("lab_h", "a" * 41).encode(), ["not a short slug"]),
    ("new source without license", GOOD.replace(",CC0,", ",,").encode(), ["is new", "license", "row 1"]),
    ("new source without attribution", GOOD.replace(",CC0,H", ",CC0,").encode(), ["is new", "attribution"]),
    ("reserved source", GOOD.replace("lab_h", "mlenergy_v2").encode(), ["reserved"]),
])
def test_odd_files_are_rejected_with_a_message_and_the_store_unchanged(store, name, data, words):
    before = store.fingerprint()
    with pytest.raises(ValidationError) as info:
        ingest_bytes(store, f"{name}.csv", data)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    for word in words:
        assert word in message, message
    assert store.fingerprint() == before


def test_row_limit(store, monkeypatch):
    monkeypatch.setattr(reading, "MAX_ROWS", 3)
    rows = "".join(f"Qwen/Qwen2.5-7B-Instruct,NVIDIA L4,offline,{60 + i},lab_h,CC0,H\n" for i in range(5))
    with pytest.raises(ValidationError, match="5 rows; the limit is 3"):
        ingest_bytes(store, "many.csv", (GOOD.splitlines()[0] + "\n" + rows).encode())


def test_config_json_is_bounded_and_data_only():
    with pytest.raises(CustomEntryError, match="limit is 256 KB"):
        llm_from_config(b'{"hidden_size": 1, "pad": "' + b"x" * 300_000 + b'"}', "me/x")
    with pytest.raises(CustomEntryError, match="at most 80 printable"):
        gpu_from_specs(dict(SPECS, name="GPU\nwith a newline"))


@pytest.fixture
def app(store_path, monkeypatch):
    monkeypatch.setenv("WATTGPU_DB", str(store_path))
    monkeypatch.chdir(ROOT)

    def make(page: str | None = None, **query) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        for k, v in query.items():
            at.query_params[k] = v
        at.run()
        if page:
            at.switch_page(f"pages/{page}.py")
            at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return make


def _texts(at: AppTest) -> list[str]:
    out = []
    for kind in ("markdown", "caption", "success", "error", "warning", "info", "subheader", "title"):
        out += [str(e.value) for e in at.get(kind)]
    return out


def test_hostile_custom_gpu_name_and_url_parameters_render_as_text(app, store_path):
    at = app("compare", llm="<script>alert(1)</script>", gpu="[x](javascript:alert(1))", batch="1e999",
             gen="<b>|</b>", tdp="a-b", model="'; DROP TABLE runs; --")
    for text in _texts(at):
        assert "<script>" not in text and "javascript:alert" not in text
    name_box = next(t for t in at.sidebar.text_input if t.label == "Name")
    name_box.input(NAME)
    next(b for b in at.sidebar.button if b.label == "Add GPU").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    success = [s.value for s in at.sidebar.success]
    assert success and md(NAME) in success[0], [e.value for e in at.sidebar.error]
    for text in _texts(at):
        assert "[click](javascript" not in text and text.count("<img") == text.count("\\<img")


def test_upload_problems_show_as_messages_never_tracebacks(app, store_path):
    from wattgpu_core.store import Store

    with Store.open(store_path) as store:
        before = store.fingerprint()
    at = app("data")
    for file_name, data in (("[a](javascript:alert(1)).csv", GOOD.encode("utf-16")),
                            ("long.csv", ("x" * 140_000 + ",power_w\n1,2\n").encode())):
        at.file_uploader(key="data_upload").upload(file_name, data, "text/csv").run()
        assert not at.exception, [e.value for e in at.exception]
        assert at.error and "rejected" in at.error[0].value
        assert "javascript:alert" not in at.error[0].value
    with Store.open(store_path) as store:
        assert store.fingerprint() == before


def test_broken_model_files_show_a_message_on_the_pages(app, store_path):
    from wattgpu_core.ingest import ingest_path
    from wattgpu_core.paths import FIXTURES_DIR
    from wattgpu_core.retraining import retrained_models_dir
    from wattgpu_core.store import Store

    with Store.open(store_path) as store:
        ingest_path(store, FIXTURES_DIR / "wattcounts_subset_sample.csv")
        folder = retrained_models_dir(store)
    folder.mkdir(parents=True)
    (folder / "paper.meta.json").write_text('{"targets": {"power": {"file": "paper_power.json"}}')  # truncated
    (folder / "plus.meta.json").write_bytes(b"")
    at = app("compare")
    assert any("not available" in e.value for e in at.error), [e.value for e in at.error]
