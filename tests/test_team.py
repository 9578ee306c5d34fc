"""Who may write from the app (AppTest, real stores): in team mode only a signed-in user may upload or remove, a
read-only replica never writes, and every batch records who added it. Runs on the embedded file in team mode
(``WATTGPU_TEAM``) and on a DuckLake (team mode by itself)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from wattgpu_core.access import WriteAccess
from wattgpu_core.backend import Backend
from wattgpu_core.importers import canonical_template
from wattgpu_core.ingest import ingest_bytes
from wattgpu_core.store import Store

ROOT = Path(__file__).resolve().parent.parent
CSV = b"llm,gpu,scenario,power_w,itl_s\nQwen/Qwen2.5-7B-Instruct,NVIDIA L4,offline,61.5,0.002\n"
AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "test-cookie-secret",
        "client_id": "wattgpu", "client_secret": "not-a-secret", "server_metadata_url":
        "https://login.example.com/.well-known/openid-configuration"}


@pytest.fixture
def team(any_store_path, monkeypatch):
    """The app on a shared store holding one CLI upload; returns (make an AppTest of the Data page, store)."""
    if isinstance(any_store_path, Backend):
        monkeypatch.setenv("WATTGPU_DB", any_store_path.key)
        monkeypatch.setenv("WATTGPU_DATA_PATH", any_store_path.data_path)
    else:
        monkeypatch.setenv("WATTGPU_DB", str(any_store_path))
        monkeypatch.setenv("WATTGPU_TEAM", "1")
    monkeypatch.delenv("WATTGPU_READ_ONLY", raising=False)
    monkeypatch.chdir(ROOT)
    with Store.open(any_store_path) as s:
        cli_batch = ingest_bytes(s, "ci-nightly.csv", CSV).batch_id

    def make(user: dict, secrets: dict | None = None) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.user = user
        if secrets:
            at.secrets.update(secrets)
        at.run()
        at.switch_page("pages/data.py")
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return make, any_store_path, cli_batch


def _controls(at: AppTest) -> set[str]:
    keys = {w.key for w in at.get("file_uploader")} | {w.key for w in at.sidebar.get("file_uploader")}
    return keys | {b.key for b in at.button} | {b.key for b in at.sidebar.button}


def _listing(at: AppTest):
    return next(d.value for d in at.dataframe if "Batch" in d.value.columns)


def test_signed_out_sees_the_data_but_no_upload_or_remove_control(team):
    make, _, cli_batch = team
    at = make({"is_logged_in": False}, secrets={"auth": AUTH})
    assert not {"data_upload", "data_confirm", "data_remove", "custom_llm_file", "custom_llm_add"} & _controls(at)
    assert "sign_in" in _controls(at)
    assert any("Sign in to upload" in i.value for i in at.info)
    listing = _listing(at)
    assert list(listing["Batch"]) == [cli_batch]
    assert listing["Added by"].iloc[0].startswith("cli:"), "a CLI batch records the user and host that added it"


def test_signed_in_user_uploads_and_removes_and_is_recorded(team):
    make, path, cli_batch = team
    at = make({"is_logged_in": True, "email": "ana@example.com", "name": "Ana"})
    at.file_uploader(key="data_upload").upload("mine.csv", canonical_template().encode(), "text/csv")
    at.run()
    at.button(key="data_confirm").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("added 2 runs" in i.value for i in at.info)
    with Store.open(path) as s:
        batches = s.batches().set_index("batch_id")
        runs_after_upload = s.stats()["runs"]
    uploaded = next(b for b in batches.index if b not in (cli_batch,) and not b.startswith("seed"))
    assert batches.loc[uploaded, "added_by"] == "ana@example.com"
    at.run()
    listing = _listing(at)
    assert dict(zip(listing["Batch"], listing["Added by"], strict=True))[uploaded] == "ana@example.com"
    at.selectbox(key="data_remove_choice").select(uploaded).run()
    at.button(key="data_remove").click().run()
    at.button(key="data_remove_yes").click().run()  # removal asks first
    assert not at.exception, [e.value for e in at.exception]
    assert any("back to its state" in s.value for s in at.success)
    with Store.open(path) as s:
        assert s.stats()["runs"] == runs_after_upload - 2
        assert list(s.batches().query("kind != 'seed'")["batch_id"]) == [cli_batch]


def test_a_read_only_replica_never_offers_writes(team, monkeypatch):
    make, _, _ = team
    monkeypatch.setenv("WATTGPU_READ_ONLY", "1")
    at = make({"is_logged_in": True, "email": "ana@example.com"})
    assert not {"data_upload", "data_remove", "custom_llm_add", "sign_in"} & _controls(at)
    assert any("read-only" in i.value for i in at.info)


def test_write_access_rules():
    personal = WriteAccess(team=False, read_only=False)
    assert personal.writer({}).startswith("app:")
    assert WriteAccess(team=True, read_only=False).writer({"is_logged_in": False}) is None
    assert WriteAccess(team=True, read_only=False).writer({"is_logged_in": True, "email": "a@b.c"}) == "a@b.c"
    assert WriteAccess(team=False, read_only=True).writer({"is_logged_in": True, "email": "a@b.c"}) is None
    assert WriteAccess.from_environment(["--read-only"], {}).read_only
    assert WriteAccess.from_environment([], {"WATTGPU_DB": "ducklake:postgres:dbname=x",
                                             "WATTGPU_DATA_PATH": "/tmp/x"}).team
    assert not WriteAccess.from_environment([], {"WATTGPU_DB": "/tmp/a.duckdb"}).team
