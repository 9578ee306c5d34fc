"""The store on real files: what build-store holds, undoing uploads exactly, threads, locks, read-only use.

Every test taking ``store`` runs on both backends: the embedded DuckDB file and a DuckLake on a real PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from wattgpu_core.errors import WattGPUError
from wattgpu_core.ingest import ingest_bytes
from wattgpu_core.paths import FIXTURES_DIR
from wattgpu_core.store import Store

CANONICAL = (
    b"llm,gpu,scenario,power_w,itl_s,source_id,license,attribution\n"
    b"Qwen/Qwen2.5-7B-Instruct,NVIDIA L40S,offline,331.5,0.00041,lab_a,CC-BY-4.0,Lab A\n"
    b"Qwen/Qwen2.5-7B-Instruct,NVIDIA H100 NVL,server,118.0,0.0071,lab_a,CC-BY-4.0,Lab A\n"
)


@pytest.fixture
def store(any_store):
    """Here ``store`` is the seed store on each backend in turn (conftest's ``any_store``)."""
    return any_store


def test_seed_store_holds_every_source(store):
    stats = store.stats()
    assert stats["runs_per_source"] == {"argonne": 48, "mlenergy_v1": 260, "mlenergy_v2": 314, "tokenpowerbench": 128,
                                        "wattcounts": 4798}
    assert stats["gpus"] >= 35 and stats["llms"] >= 80
    wattcounts = store.runs(source_ids=["wattcounts"])
    assert len(wattcounts) == 4798
    assert wattcounts["llm_id"].nunique() == 49 and wattcounts["gpu_id"].nunique() == 8
    runs = store.runs()
    assert runs["run_id"].is_unique
    assert runs[["source_id", "license", "batch_id"]].notna().all().all()
    assert set(runs["source_id"]) <= set(store.sources()["source_id"])
    assert set(runs["gpu_id"]) <= set(store.gpus()["gpu_id"]) and set(runs["llm_id"]) <= set(store.llms()["llm_id"])
    assert store.gpus()["source"].notna().all() and store.llms()["source"].notna().all()


def test_seed_runs_survive_a_round_trip_as_duplicates(store):
    """A canonical export of seed runs fingerprints exactly as the seed did: re-uploading it adds nothing."""
    runs = store.runs(source_ids=["mlenergy_v2", "argonne"]).rename(columns={"llm_id": "llm", "gpu_id": "gpu"})
    runs = runs.drop(columns=["run_id", "batch_id", "llm_name_raw", "gpu_name_raw", "source_id", "license"])
    before = store.fingerprint()
    result = ingest_bytes(store, "export.csv", runs.to_csv(index=False).encode())
    assert (result.added, result.duplicates_in_store) == (0, 362)
    assert store.fingerprint() == before


def test_remove_batch_restores_the_fingerprint_exactly(store):
    before = store.fingerprint()
    first = ingest_bytes(store, "a.csv", CANONICAL)
    assert first.added == 2
    assert "lab_a" in set(store.sources()["source_id"])
    middle = store.fingerprint()
    second = ingest_bytes(store, FIXTURES_DIR.name, (FIXTURES_DIR / "wattcounts_subset_sample.csv").read_bytes())
    assert second.added == 5
    assert store.remove_batch(second.batch_id) == {"runs": 5, "gpus": 0, "llms": 0, "sources": 1}
    assert store.fingerprint() == middle
    assert store.remove_batch(first.batch_id)["runs"] == 2
    assert store.fingerprint() == before


def test_removing_the_batch_that_introduced_a_source_keeps_it_for_later_uploads(store):
    first = ingest_bytes(store, "a.csv", CANONICAL)
    later = ingest_bytes(store, "b.csv", CANONICAL.replace(b"NVIDIA L40S,offline", b"NVIDIA L40S,server"))
    assert later.added == 1
    store.remove_batch(first.batch_id)
    sources = store.sources().set_index("source_id")
    assert sources.loc["lab_a", "batch_id"] == later.batch_id
    assert set(store.runs(source_ids=["lab_a"])["batch_id"]) == {later.batch_id}
    store.remove_batch(later.batch_id)
    assert "lab_a" not in set(store.sources()["source_id"])


def test_seed_batches_cannot_be_removed_and_unknown_batches_are_reported(store):
    with pytest.raises(WattGPUError, match="seed data cannot be removed"):
        store.remove_batch("seed:wattcounts")
    with pytest.raises(WattGPUError, match="no batch"):
        store.remove_batch("upload-nope")


def test_readers_in_threads_while_one_ingests(store):
    """Several threads read through one Store (a cursor per call) while the main thread ingests; every read sees
    the store either before or after the transaction, never half of it."""
    n_before = store.stats()["runs"]
    rows = "\n".join(f"Qwen/Qwen2.5-7B-Instruct,NVIDIA L4,offline,{50 + i / 1000:.3f},0.001,t,CC0,Lab T,{i}"
                     for i in range(20_000))
    data = (CANONICAL.decode().splitlines()[0] + ",iteration\n" + rows + "\n").encode()
    errors: list[BaseException] = []
    seen: set[int] = set()
    stop = threading.Event()

    def reader():
        try:
            while not stop.is_set():
                seen.add(store.stats()["runs"])
                store.runs(gpu_ids=["l4"])
                store.gpus()
        except BaseException as exc:  # noqa: BLE001 - the test reports whatever a reader hit
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        result = ingest_bytes(store, "threads.csv", data)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert errors == []
    assert result.added == 20_000
    assert seen <= {n_before, n_before + 20_000} and n_before in seen


def test_a_store_held_by_another_process_for_too_long_gives_a_clear_error(store_path, monkeypatch):
    """Operations wait for a store another process uses; one held past WATTGPU_LOCK_TIMEOUT_S says so."""
    monkeypatch.setenv("WATTGPU_LOCK_TIMEOUT_S", "0.5")
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, duckdb
            con = duckdb.connect({str(store_path)!r})
            print("ready", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        for read_only in (False, True):
            with pytest.raises(WattGPUError, match="in use by another process") as info:
                Store.open(store_path, read_only=read_only)
            assert "\n" not in str(info.value) and "--db" in str(info.value)
            assert "WATTGPU_LOCK_TIMEOUT_S" in str(info.value) and "0.5 s" in str(info.value)
        with pytest.raises(WattGPUError, match="in use by another process"):
            Store.build(store_path)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()
    with Store.open(store_path) as store:  # free again once the other process is gone
        assert store.stats()["runs"] == 5548


def test_read_only_store_refuses_writes(any_store_path):
    with Store.open(any_store_path, read_only=True) as store:
        assert store.stats()["runs"] == 5548
        with pytest.raises(WattGPUError, match="read-only"):
            ingest_bytes(store, "a.csv", CANONICAL)


def test_open_builds_a_missing_store_and_rejects_a_foreign_file(tmp_path):
    with Store.open(tmp_path / "new.duckdb") as store:
        assert store.stats()["runs"] == 5548
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(WattGPUError, match="build-store"):
        Store.open(junk)
    with pytest.raises(WattGPUError, match="no store"):
        Store.open(tmp_path / "absent.duckdb", read_only=True)


def test_a_schema_1_store_is_migrated_in_place_with_natural_keys(store_path):
    import duckdb

    with Store.open(store_path) as store:
        before = store.fingerprint()
        keys = store._frame("SELECT seq, run_key FROM runs ORDER BY seq")
    con = duckdb.connect(str(store_path))  # make it look like a store written before run keys existed
    con.execute("ALTER TABLE runs DROP COLUMN run_key")
    con.execute("DROP TABLE runs_replaced")
    con.execute("ALTER TABLE batches DROP COLUMN added_by")  # nor who added a batch, nor the write counter
    con.execute("DELETE FROM meta WHERE key = 'writes'")
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.close()
    with Store.open(store_path) as store:
        assert store._meta("schema_version") == "2"
        assert store.fingerprint() == before
        assert store._frame("SELECT seq, run_key FROM runs ORDER BY seq").equals(keys)
        assert ingest_bytes(store, "again.csv", CANONICAL).added == 2


def test_a_file_this_process_holds_otherwise_is_busy_not_broken(tmp_path, monkeypatch):
    """DuckDB refuses a second in-process connection to a file while another thread attaches or detaches it ("Unique
    file handle conflict") or holds it with another configuration: the store treats that like another process's
    lock (waits, then says the store is busy), never as a file that is not a WattGPU store."""
    import duckdb

    from wattgpu_core.errors import StoreBusyError

    path = tmp_path / "held.duckdb"
    Store.build(path).close()
    monkeypatch.setenv("WATTGPU_LOCK_TIMEOUT_S", "0.2")
    held = duckdb.connect(str(path))  # read-write, as a writing thread holds it
    try:
        with pytest.raises(StoreBusyError, match="another thread"):
            with Store.open(path, read_only=True) as s:
                s.stats()
    finally:
        held.close()
    with Store.open(path, read_only=True) as s:  # once it is let go, the read goes through
        assert s.stats()["runs"] > 0


def test_the_seed_is_named_relative_to_the_checkout_so_its_fingerprint_does_not_depend_on_where_it_lies(tmp_path):
    """A clean clone elsewhere (CI) must hash the seed store as the shipped evaluation's key does."""
    with Store.build(tmp_path / "seed.duckdb") as store:
        names = set(store.batches()["file_name"])
    assert names == {"data/seed", "data/seed/runs.csv"}, names


def test_the_remembered_fingerprint_follows_every_write_even_from_another_handle(store_path):
    from wattgpu_core.custom import gpu_from_specs

    first = Store.open(store_path)
    before = first.fingerprint()
    assert first.fingerprint() == before  # remembered: same file, same value
    other = Store.open(store_path)  # a second handle (another session of the app) writes a catalog row only
    other.add_gpu(gpu_from_specs({"name": "Fingerprint Test GPU", "memory_size_gb": 48, "memory_bandwidth_gb_s": 900,
                                  "fp16_tensor_dense_tflops": 180, "tdp_w": 300}, set(other.gpus()["gpu_id"])))
    after = first.fingerprint()
    assert after != before
    assert after == Store.open(store_path, read_only=True).fingerprint()
