"""The data commands of the CLI, run as a user runs them: ``python -m wattgpu_core ...`` with ``--db`` in tmp."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from wattgpu_core.paths import ROOT
from wattgpu_core.store import Store


def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("WATTGPU_DB", None)
    return subprocess.run([sys.executable, "-m", "wattgpu_core", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=120)


def fingerprint(path) -> str:
    with Store.open(path, read_only=True) as store:
        return store.fingerprint()


def test_build_store_and_stats_json(tmp_path):
    db = tmp_path / "cli.duckdb"
    built = cli("build-store", "--db", str(db))
    assert built.returncode == 0, built.stderr
    assert "5548 runs" in built.stdout
    stats = cli("stats", "--json", "--db", str(db))
    assert stats.returncode == 0, stats.stderr
    data = json.loads(stats.stdout)
    for key in ("gpus", "llms", "runs"):
        assert type(data[key]) is int
    assert data["runs"] == 5548 and data["gpus"] >= 35 and data["llms"] >= 80
    assert data["runs_per_source"] == {"argonne": 48, "mlenergy_v1": 260, "mlenergy_v2": 314, "tokenpowerbench": 128,
                                     "wattcounts": 4798}


def test_ingest_exit_codes_messages_and_remove_batch(store_path, tmp_path):
    template = cli("template")
    assert template.returncode == 0 and template.stdout.startswith("llm,gpu,")
    good = tmp_path / "mine.csv"
    good.write_text(template.stdout)
    before = fingerprint(store_path)

    # a rejected file: exit 2, one line naming the row and column, store unchanged
    bad = tmp_path / "bad.csv"
    bad.write_text(template.stdout.replace("331.5", "-5"))
    rejected = cli("ingest", str(bad), "--db", str(store_path))
    assert rejected.returncode == 2
    assert rejected.stderr.splitlines()[0] == (
        "error: rejected: row 1, column 'power_w': power must be positive, found -5")
    assert rejected.stdout == ""
    missing = cli("ingest", str(tmp_path / "absent.csv"), "--db", str(store_path))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    assert fingerprint(store_path) == before

    # a good file: exit 0; again: exit 0 and says nothing was added
    added = cli("ingest", str(good), "--db", str(store_path))
    assert added.returncode == 0, added.stderr
    assert "canonical: added 2 runs as batch upload-" in added.stdout
    batch_id = added.stdout.split("as batch ")[1].split()[0].rstrip(";")
    after = fingerprint(store_path)
    again = cli("ingest", str(good), "--db", str(store_path))
    assert again.returncode == 0
    assert "nothing added: all 2 distinct runs are already in the store" in again.stdout
    assert fingerprint(store_path) == after

    # undo: exactly the store before the upload
    removed = cli("remove-batch", batch_id, "--db", str(store_path))
    assert removed.returncode == 0, removed.stderr
    assert "2 runs" in removed.stdout
    assert fingerprint(store_path) == before
    unknown = cli("remove-batch", "upload-nope", "--db", str(store_path))
    assert unknown.returncode == 1 and "no batch" in unknown.stderr
