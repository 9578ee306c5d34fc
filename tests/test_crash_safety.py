"""kill -9 at several moments of ingest, remove-batch, train and the retrained-folder swap leaves the store and the
model files consistent: real CLI subprocesses, told by ``WATTGPU_PAUSE_AT`` to stop at a named stage (see
``wattgpu_core.faults``) or killed after a timed delay, then SIGKILLed; no mocks."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wattgpu_core.errors import ModelNotTrainedError
from wattgpu_core.paths import FIXTURES_DIR, MODELS_DIR, ROOT
from wattgpu_core.registry import load_fitted
from wattgpu_core.store import Store

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

CANONICAL_HEADER = "llm,gpu,scenario,power_w,itl_s,iteration,source_id,license,attribution\n"


def _env(**extra) -> dict:
    env = dict(os.environ, **extra)
    env.pop("WATTGPU_DB", None)
    return env


def _run_and_kill(args: list[str], tmp_path: Path, stage: str | None = None, after_s: float | None = None,
                  timeout_s: float = 300) -> int:
    """Start ``python -m wattgpu_core *args``; SIGKILL it when it reaches ``stage`` (or after ``after_s``)."""
    marker = tmp_path / f"paused-{time.monotonic_ns()}"
    env = _env(WATTGPU_PAUSE_AT=stage or "", WATTGPU_PAUSE_FILE=str(marker))
    proc = subprocess.Popen([sys.executable, "-m", "wattgpu_core", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout_s
    try:
        if stage:
            while not marker.exists():
                if proc.poll() is not None:
                    raise AssertionError(f"{args} ended before {stage}: {proc.stderr.read().decode()[-2000:]}")
                assert time.monotonic() < deadline, f"{stage} never reached"
                time.sleep(0.02)
        else:
            time.sleep(after_s or 0)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    return proc.returncode


def _many_runs(path: Path, n: int) -> Path:
    rows = "".join(f"Qwen/Qwen2.5-7B-Instruct,NVIDIA L4,offline,{50 + i / 1000:.3f},0.001,{i},lab_c,CC0,Lab C\n"
                   for i in range(n))
    path.write_text(CANONICAL_HEADER + rows)
    return path


def _consistent(store_path: Path) -> dict:
    """Every batch's run count matches its rows; returns stats."""
    with Store.open(store_path) as store:
        runs = store.runs()
        batches = store.batches()
        per_batch = runs.groupby("batch_id").size()
        for b in batches[batches["kind"] == "upload"].itertuples():
            assert per_batch.get(b.batch_id, 0) == b.n_runs, b.batch_id
        assert set(per_batch.index) <= set(batches["batch_id"])
        return store.stats()


@pytest.mark.parametrize("stage", ["ingest:before-commit", "ingest:after-commit"])
def test_kill_during_ingest_is_all_or_nothing(store_path, tmp_path, stage):
    data = _many_runs(tmp_path / "many.csv", 5000)
    with Store.open(store_path) as store:
        before = store.fingerprint()
    code = _run_and_kill(["ingest", str(data), "--db", str(store_path)], tmp_path, stage=stage)
    assert code == -signal.SIGKILL
    stats = _consistent(store_path)
    if stage == "ingest:before-commit":
        assert stats["runs"] == 5548
        with Store.open(store_path) as store:
            assert store.fingerprint() == before
    else:  # committed before the kill: the batch is whole
        assert stats["runs"] == 5548 + 5000
    # the store serves and accepts the same file again (adding exactly what is missing)
    with Store.open(store_path) as store:
        from wattgpu_core.ingest import ingest_path

        again = ingest_path(store, data)
        assert again.added == (5000 if stage == "ingest:before-commit" else 0)


def test_timed_kills_during_ingest_never_leave_half_a_batch(store_path, tmp_path):
    data = _many_runs(tmp_path / "many.csv", 20_000)
    for delay in (1.0, 2.5, 4.0):
        _run_and_kill(["ingest", str(data), "--db", str(store_path)], tmp_path, after_s=delay)
        runs = _consistent(store_path)["runs"]
        assert runs in (5548, 5548 + 20_000), (delay, runs)


def test_kill_during_remove_batch_leaves_the_batch_whole(store_path, tmp_path):
    with Store.open(store_path) as store:
        from wattgpu_core.ingest import ingest_path

        batch = ingest_path(store, FIXTURES_DIR / "wattcounts_subset_sample.csv").batch_id
        with_batch = store.fingerprint()
    code = _run_and_kill(["remove-batch", batch, "--db", str(store_path)], tmp_path, stage="remove-batch:deleted")
    assert code == -signal.SIGKILL
    with Store.open(store_path) as store:
        assert store.fingerprint() == with_batch
        assert store.remove_batch(batch)["runs"] == 5


def _set_digest(models_dir: Path, name: str = "paper") -> tuple[str, str, str]:
    def sha(p):
        return hashlib.sha256(p.read_bytes()).hexdigest()

    meta = json.loads((models_dir / f"{name}.meta.json").read_text())
    return sha(models_dir / f"{name}_power.json"), sha(models_dir / f"{name}_itl.json"), \
        meta["training_data"]["sha256"]


@pytest.fixture
def models_copy(tmp_path) -> Path:
    folder = tmp_path / "models"
    shutil.copytree(MODELS_DIR, folder, ignore=shutil.ignore_patterns(".*"))
    return folder


def test_kill_during_train_leaves_the_old_or_the_new_set_whole(store_path, tmp_path, models_copy):
    """Train the paper set on the seed plus an upload (so the new files differ from the old), killed before the
    commit point, at it and between the renames; each time every file belongs to one set and the set loads."""
    with Store.open(store_path) as store:
        from wattgpu_core.ingest import ingest_path

        ingest_path(store, FIXTURES_DIR / "wattcounts_subset_sample.csv")
    old = _set_digest(models_copy)
    args = ["train", "--no-cv", "--model-set", "paper", "--models-dir", str(models_copy), "--db", str(store_path)]
    outcomes = {}
    for stage in ("models:written", "models:committed", "models:renaming"):
        assert _run_and_kill(args, tmp_path, stage=stage) == -signal.SIGKILL
        load_fitted("paper", models_copy)  # a reader finishes any commit a killed writer left
        digest = _set_digest(models_copy)
        outcomes[stage] = "old" if digest == old else "new"
        assert not list(models_copy.glob(".commit-*"))
        if outcomes[stage] == "new":
            new = digest
            shutil.rmtree(models_copy)
            shutil.copytree(MODELS_DIR, models_copy, ignore=shutil.ignore_patterns(".*"))
    assert outcomes == {"models:written": "old", "models:committed": "new", "models:renaming": "new"}
    done = subprocess.run([sys.executable, "-m", "wattgpu_core", *args], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert _set_digest(models_copy) == new != old
    assert not [p for p in models_copy.iterdir() if p.name.startswith((".staging-", ".commit-"))]


def test_train_no_cv_keeps_the_stored_cv_metrics(store_path, models_copy):
    before = json.loads((models_copy / "paper.meta.json").read_text())["cv_metrics"]
    assert before, "the committed paper model set stores its CV metrics"
    done = subprocess.run([sys.executable, "-m", "wattgpu_core", "train", "--no-cv", "--model-set", "paper",
                           "--models-dir", str(models_copy), "--db", str(store_path)], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert json.loads((models_copy / "paper.meta.json").read_text())["cv_metrics"] == before


@pytest.mark.parametrize("damage", ["empty model file", "truncated metadata", "missing model file"])
def test_predict_with_broken_model_files_says_so_without_a_traceback(store_path, tmp_path, models_copy, damage):
    if damage == "empty model file":
        (models_copy / "paper_power.json").write_bytes(b"")
    elif damage == "truncated metadata":
        meta = models_copy / "paper.meta.json"
        meta.write_text(meta.read_text()[:100])
    else:
        (models_copy / "paper_itl.json").unlink()
    with pytest.raises(ModelNotTrainedError, match="train"):
        load_fitted("paper", models_copy)
    requests = tmp_path / "req.csv"
    requests.write_text("llm,gpu,scenario\nQwen/Qwen2.5-7B-Instruct,NVIDIA L4,offline\n")
    out = subprocess.run([sys.executable, "-m", "wattgpu_core", "predict", "--input", str(requests), "--output",
                          str(tmp_path / "out.csv"), "--model-set", "paper", "--models-dir", str(models_copy),
                          "--db", str(store_path)], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("error: ") and "wattgpu_core train" in out.stderr


def test_kill_during_the_retrained_folder_swap_leaves_a_working_app(store_path, tmp_path):
    """The app's retrain swaps a fully written folder in by renames; killed between them, no folder is left half
    written: the app falls back to the committed models and serves."""
    from streamlit.testing.v1 import AppTest

    from wattgpu_core.retraining import active_models_dir, retrained_models_dir

    with Store.open(store_path) as store:
        from wattgpu_core.ingest import ingest_path

        ingest_path(store, FIXTURES_DIR / "wattcounts_subset_sample.csv")
        folder = retrained_models_dir(store)
    folder.mkdir(parents=True)
    for p in MODELS_DIR.glob("paper*.json"):
        shutil.copy(p, folder / p.name)
    fresh = folder.with_name("fresh")
    shutil.copytree(folder, fresh)
    code = (f"from pathlib import Path; from wattgpu_core.model_files import replace_folder; "
            f"replace_folder(Path({str(fresh)!r}), Path({str(folder)!r}))")
    marker = tmp_path / "swap-paused"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT,
                            env=_env(WATTGPU_PAUSE_AT="models:folder-swap", WATTGPU_PAUSE_FILE=str(marker)))
    while not marker.exists():
        assert proc.poll() is None
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not folder.exists()
    with Store.open(store_path) as store:
        assert active_models_dir(store) == MODELS_DIR
    os.environ["WATTGPU_DB"] = str(store_path)
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.run()
        assert not at.exception and "Measured runs" in [m.label for m in at.metric]
    finally:
        os.environ.pop("WATTGPU_DB", None)
