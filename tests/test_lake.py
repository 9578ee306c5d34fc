"""The store on DuckLake with a real PostgreSQL catalog: every command gives what the embedded file gives, several
processes write at once without losing or doubling a run, two app processes share the lake and see a CLI ingest
on their next interaction, and models retrained by one replica are used by the others."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from wattgpu_core import retraining
from wattgpu_core.errors import WattGPUError
from wattgpu_core.ingest import ingest_bytes
from wattgpu_core.paths import FIXTURES_DIR, MODELS_DIR
from wattgpu_core.planning import load_model_set
from wattgpu_core.registry import train
from wattgpu_core.store import Store

ROOT = Path(__file__).resolve().parent.parent
GPUS = ("NVIDIA L4", "NVIDIA L40S", "NVIDIA H100 NVL", "NVIDIA A100-SXM4-40GB")


def canonical_csv(n_rows: int, campaign: str) -> bytes:
    """``n_rows`` distinct canonical runs (distinct iteration numbers), tagged with ``campaign``."""
    lines = ["llm,gpu,scenario,power_w,itl_s,iteration,campaign,source_id,license,attribution"]
    for i in range(n_rows):
        lines.append(f"Qwen/Qwen2.5-7B-Instruct,{GPUS[i % len(GPUS)]},offline,{60 + (i % 40):.1f},0.002,{i},"
                     f"{campaign},lab_{campaign},CC-BY-4.0,Lab {campaign}")
    return ("\n".join(lines) + "\n").encode()


def cli(*args: str, store, env: dict | None = None) -> subprocess.CompletedProcess:
    db = ["--db", store.key, "--data-path", store.data_path] if hasattr(store, "key") else ["--db", str(store)]
    return subprocess.run([sys.executable, "-m", "wattgpu_core", *args, *db], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=env)


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_every_command_gives_the_same_results_on_both_backends(lake, store_path, tmp_path):
    requests = tmp_path / "requests.csv"
    requests.write_text("llm,gpu,scenario,batch_size,input_tokens,output_tokens\n"
                        "Qwen/Qwen2.5-7B-Instruct,NVIDIA H100 NVL,offline,64,512,256\n"
                        "meta-llama/Llama-3.1-8B-Instruct,NVIDIA L40S,offline,8,1024,512\n")
    upload = FIXTURES_DIR / "wattcounts_subset_sample.csv"
    seen = {}
    for name, store in (("file", store_path), ("lake", lake)):
        out = {"build": re.search(r"\d+ GPUs.*", _ok(cli("build-store", store=store))).group()}
        out["stats"] = {k: v for k, v in json.loads(_ok(cli("stats", "--json", store=store))).items() if k != "db"}
        ingested = _ok(cli("ingest", str(upload), store=store))
        out["ingest"] = ingested.split(" as batch ")[0]
        batch = ingested.split(" as batch ")[1].split(";")[0].strip()
        out["again"] = _ok(cli("ingest", str(upload), store=store)).split(" (this file")[0]
        models = tmp_path / f"models-{name}"
        _ok(cli("train", "--model-set", "paper", "--no-cv", "--models-dir", str(models), store=store))
        meta = json.loads((models / "paper.meta.json").read_text())
        out["training_data"] = meta["training_data"]["sha256"]
        _ok(cli("predict", "--input", str(requests), "--output", str(tmp_path / f"{name}.csv"), "--models-dir",
                str(models), "--model-set", "paper", store=store))
        out["predict"] = pd.read_csv(tmp_path / f"{name}.csv").to_json(orient="records")  # NaN-safe
        out["remove"] = _ok(cli("remove-batch", batch, store=store)).split(":", 1)[1]
        with Store.open(store) as s:
            out["fingerprint"] = s.fingerprint()
        seen[name] = out
    assert seen["lake"]["stats"]["runs"] == 5548 and "added 5 runs" in seen["lake"]["ingest"]
    assert "nothing added" in seen["lake"]["again"]
    assert seen["lake"] == seen["file"]


def test_four_writers_and_two_apps_share_one_lake(lake, tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    from wattgpu_core.testing.browser import launch_browser, running_app, wait_idle

    files = {}
    for name in ("a", "b", "c"):
        files[name] = tmp_path / f"{name}.csv"
        files[name].write_bytes(canonical_csv(300, name))
    files["a_again"] = tmp_path / "a-resent.csv"  # another runner re-sends a's file
    files["a_again"].write_bytes(files["a"].read_bytes())
    monkeypatch.setenv("WATTGPU_DATA_PATH", lake.data_path)
    env = dict(os.environ, WATTGPU_DB=lake.key)

    def measured_runs(page) -> str:
        metric = page.locator('[data-testid="stMetric"]').filter(has_text="Measured runs").first
        metric.wait_for(timeout=120_000)
        wait_idle(page)
        return metric.locator('[data-testid="stMetricValue"]').inner_text()

    with (running_app(lake.key, tmp_path / "app1.log") as (url1, _), running_app(lake.key, tmp_path / "app2.log")
          as (url2, _), sync_playwright() as p):
        browser = launch_browser(p)
        try:
            pages = [browser.new_page(), browser.new_page()]
            for page, url in zip(pages, (url1, url2), strict=True):
                page.goto(url)
            assert [measured_runs(page) for page in pages] == ["5,548", "5,548"]
            writers = {name: subprocess.Popen(
                [sys.executable, "-m", "wattgpu_core", "ingest", str(path)], cwd=ROOT, env=env,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name, path in files.items()}
            results = {name: proc.communicate(timeout=600) for name, proc in writers.items()}
            for name, proc in writers.items():
                assert proc.returncode == 0, results[name][1]
            for page in pages:  # the next interaction of each app shows the rows ingested meanwhile
                page.reload()
            assert [measured_runs(page) for page in pages] == ["6,448", "6,448"]
            for page in pages:
                assert not page.locator('[data-testid="stException"]').count()
        finally:
            browser.close()

    added = {name: out for name, (out, _) in results.items()}
    assert "added 300 runs" in added["b"] and "added 300 runs" in added["c"]
    assert sorted(("added 300 runs" in added[n], "nothing added" in added[n]) for n in ("a", "a_again")) == [
        (False, True), (True, False)], added
    with Store.open(lake, read_only=True) as store:
        runs = store.runs()
        batches = store.batches().query("kind == 'upload'")
    assert len(runs) == 5548 + 900 and runs["run_id"].is_unique
    assert runs["seq"].is_unique if "seq" in runs else True
    assert sorted(runs.query("source_id.str.startswith('lab_')").groupby("campaign").size()) == [300, 300, 300]
    assert len(batches) == 3 and batches["n_runs"].tolist() == [300, 300, 300]
    assert batches["added_by"].str.startswith("cli:").all()


def test_models_retrained_by_one_replica_are_used_by_the_others(lake):
    with Store.open(lake) as writer, Store.open(lake) as other:
        assert retraining.active_models_dir(other) == MODELS_DIR
        ingest_bytes(writer, "new.csv", canonical_csv(20, "m"))
        folder = retraining.retrained_models_dir(writer)
        assert folder.parent == Path(lake.data_path) / "retrained", "models live beside the lake's Parquet files"
        tmp = folder.parent / (folder.name + ".tmp")
        train(writer, tmp, "paper")
        os.replace(tmp, folder)
        assert retraining.retrained_models_dir(other) == folder, "one data version, one model folder"
        assert retraining.active_models_dir(other) == folder
        assert load_model_set("paper", retraining.active_models_dir(other)) is not None


def test_a_write_that_keeps_conflicting_gives_up_with_a_clear_message(lake, monkeypatch):
    import wattgpu_core.store as store_module

    with Store.open(lake) as store:
        before = store.fingerprint()
        calls = []

        def always_conflicts(*args, **kwargs):
            calls.append(1)
            raise duckdb.TransactionException("Failed to commit DuckLake transaction: Transaction conflict")

        monkeypatch.setattr(store_module, "WRITE_ATTEMPTS", 3)
        monkeypatch.setattr(store, "_write_runs", always_conflicts)
        with pytest.raises(WattGPUError, match="conflicted with other writers 3 times.*nothing was written"):
            ingest_bytes(store, "x.csv", canonical_csv(2, "x"))
        assert len(calls) == 3 and store.conflict_retries == 2
        assert store.fingerprint() == before


def test_a_bad_lake_setting_is_a_clear_error(tmp_path, pg_cluster):
    from wattgpu_core.backend import resolve

    with pytest.raises(WattGPUError, match="--data-path"):
        resolve("ducklake:postgres:dbname=x", None)
    with pytest.raises(WattGPUError, match="ducklake:postgres:"):
        resolve("ducklake:sqlite:x.db", str(tmp_path))
    proc = cli("stats", store=resolve(f"ducklake:postgres:dbname=absent host=127.0.0.1 port={pg_cluster.port} "
                                      "user=postgres", str(tmp_path)))
    assert proc.returncode == 1 and "cannot open the shared store" in proc.stderr and "Traceback" not in proc.stderr


def test_replicas_starting_together_on_an_empty_lake_build_it_once(pg_cluster, tmp_path):
    import threading

    from wattgpu_core.backend import resolve

    backend = resolve(pg_cluster.lake_spec(), tmp_path / "lake-data")
    seen, errors = [], []

    def start_replica():
        try:
            with Store.open(backend) as store:
                seen.append(store.stats()["runs"])
        except Exception as exc:  # noqa: BLE001 - the test reports what a replica hit
            errors.append(exc)

    threads = [threading.Thread(target=start_replica) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == [] and seen == [5548, 5548, 5548]
    with Store.open(backend, read_only=True) as store:
        assert len(store.batches()) == 6 and store.runs()["run_id"].is_unique  # the seed: a batch per source and one for the catalogs
