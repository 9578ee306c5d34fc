"""AppTest of the Data page's paired upload: a benchmark result and its power log in one go, the matched window
and per-GPU mean shown before confirming, then one validated run in the store; a mismatched pair is rejected."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from test_app_pages import app  # noqa: F401  (the fixture: the app on a private copy of the seed store)

from wattgpu_core.store import Store

F = Path(__file__).parent / "fixtures" / "byob"


@pytest.fixture
def data_page(app):  # noqa: F811
    return app("data")


def upload(at: AppTest, *names: str) -> None:
    at.file_uploader(key="data_pair_upload").set_value(
        [(n, (F / n).read_bytes(), "application/octet-stream") for n in names]).run()
    assert not at.exception, at.exception


def runs_in(store_path: Path) -> int:
    from pages.ui import shared

    return shared._open_store(str(Path(store_path).resolve())).stats()["runs"]


def test_paired_upload_shows_window_then_adds_one_run(data_page, store_path):
    at = data_page
    with Store.open(store_path) as s:
        before = s.stats()["runs"]
    at.text_input(key="data_pair_indices").input("0")
    upload(at, "nvidia_smi_units.csv", "vllm_serve_rate2.json")  # any order
    assert any("1 valid run" in s.value for s in at.success), [s.value for s in at.success]
    windows = [d.value for d in at.dataframe if "Mean power (W)" in d.value.columns]
    assert windows and len(windows[0]) == 1
    w = windows[0].iloc[0]
    assert w["GPU"] == "NVIDIA H100 80GB HBM3" and w["Window start"] == "2025-09-04 13:15:47" and w["Readings"] == 18
    assert 270 < w["Mean power (W)"] < 300
    assert runs_in(store_path) == before, "nothing is written before confirming"
    at.button(key="data_pair_confirm").click().run()
    assert not at.exception
    assert any("added 1 run" in i.value for i in at.info)
    assert runs_in(store_path) == before + 1
    at.file_uploader(key="data_pair_upload").set_value(
        [(n, (F / n).read_bytes(), "application/octet-stream") for n in ("vllm_serve_rate2.json",
                                                                          "nvidia_smi_units.csv")]).run()
    assert any("already in the store" in s.value for s in at.success)


def test_mismatched_pair_is_rejected_with_the_reason(data_page, store_path):
    at = data_page
    with Store.open(store_path) as s:
        before = s.fingerprint()
    upload(at, "vllm_serve_rate2.json", "nvidia_smi_nounits.csv")
    assert at.error and "rejected" in at.error[0].value
    issues = [d.value for d in at.dataframe if "Problem" in d.value.columns]
    assert issues and [str(r) for r in issues[0]["Row"]] == ["1"] and "does not overlap" in issues[0]["Problem"][0]
    assert not [b for b in at.button if b.key == "data_pair_confirm"]
    with Store.open(store_path) as s:
        assert s.fingerprint() == before
