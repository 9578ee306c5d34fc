"""Benchmark: the store on DuckLake (PostgreSQL catalog, Parquet files) against the embedded DuckDB file, one run.

    python bench/bench_lake.py [--rows 20000] [--repeats 2] [--writers 4] [--uploads 10] [--upload-rows 50]
                               [--no-pages]

What is measured (a throwaway PostgreSQL cluster is started and stopped by the script; nothing in the repository
is written):

* **ingest throughput**: ``ingest_bytes`` of one generated ``--rows``-row canonical CSV (bench_ingest's generator)
  into a fresh seed store, end to end, on each backend, alternately, ``--repeats`` times after one warm-up each;
  rows/s and the ratio lake / file.
* **page first render**: ``streamlit run app.py`` on each backend, Chromium opens the Home page (a fresh server,
  so nothing is cached) and the Data page; seconds from navigation until the page's script run finished, and the
  ratio lake / file.
* **concurrent writers**: ``--writers`` processes start together on one lake, each ingesting ``--uploads`` distinct
  files of ``--upload-rows`` runs one after another; wall time, the conflict retries the store made, and the runs
  lost (expected minus stored distinct) and duplicated (stored minus distinct). The goal is 0 and 0.

Results are printed and written to ``bench/out/bench_lake.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench_ingest import make_canonical_csv

from wattgpu_core.backend import resolve
from wattgpu_core.errors import WattGPUError
from wattgpu_core.ingest import ingest_bytes, validate_bytes
from wattgpu_core.store import Store, compute_run_ids
from wattgpu_core.testing.postgres import throwaway_cluster

ROOT = Path(__file__).resolve().parent.parent


def fresh_stores(cluster, seed_db: Path, work: Path, tag: str) -> dict:
    """A new seed store on each backend."""
    file_db = work / f"{tag}.duckdb"
    shutil.copy(seed_db, file_db)
    lake = resolve(cluster.lake_spec("bench"), work / f"{tag}-lake")
    Store.build(lake).close()
    return {"file": file_db, "lake": lake}


def bench_ingest(cluster, seed_db: Path, work: Path, rows: int, repeats: int) -> dict:
    data = make_canonical_csv(rows)
    times: dict[str, list[float]] = {"file": [], "lake": []}
    for i in range(repeats + 1):  # pass 0 warms imports and caches and is not counted
        stores = fresh_stores(cluster, seed_db, work, f"ingest-{i}")
        for name in ("file", "lake") if i % 2 == 0 else ("lake", "file"):
            with Store.open(stores[name]) as store:
                start = time.perf_counter()
                result = ingest_bytes(store, "bench.csv", data)
                elapsed = time.perf_counter() - start
            assert result.added == rows, result.message
            if i:
                times[name].append(elapsed)
    rate = {k: rows / statistics.median(v) for k, v in times.items()}
    return {"rows": rows, "repeats": repeats, "seconds": times, "rows_per_s": {k: round(v) for k, v in rate.items()},
            "ratio_lake_over_file": round(rate["lake"] / rate["file"], 3)}


def bench_pages(cluster, seed_db: Path, work: Path) -> dict:
    from playwright.sync_api import sync_playwright

    from wattgpu_core.testing.browser import launch_browser, running_app, wait_idle

    stores = fresh_stores(cluster, seed_db, work, "pages")
    out: dict[str, dict[str, float]] = {}
    os.environ["WATTGPU_DATA_PATH"] = stores["lake"].data_path
    with sync_playwright() as p:
        browser = launch_browser(p)
        try:
            for name in ("file", "lake"):
                db = stores[name].key if name == "lake" else stores[name]
                with running_app(db, work / f"{name}.log") as (url, _):
                    page = browser.new_page(viewport={"width": 1440, "height": 900})
                    out[name] = {}
                    for title, path, marker in (("Home", "", "Measured runs"), ("Data", "data", "rows")):
                        start = time.perf_counter()
                        page.goto(f"{url}/{path}")
                        page.get_by_text(marker).first.wait_for(timeout=180_000)
                        wait_idle(page, timeout_ms=180_000)
                        out[name][title] = round(time.perf_counter() - start, 2)
                    page.close()
        finally:
            browser.close()
    ratios = {title: round(out["lake"][title] / out["file"][title], 2) for title in out["file"]}
    return {"first_render_s": out, "ratio_lake_over_file": ratios}


def _writer(backend, writer: int, files: list[bytes], barrier, results) -> None:
    barrier.wait()
    given_up = []
    with Store.open(backend) as store:
        for i, data in enumerate(files):
            try:
                ingest_bytes(store, f"upload-{writer}-{i}.csv", data)
            except WattGPUError:  # "the store is busy ... nothing was written": reported, as a user would see it
                given_up.append(i)
        results.put((writer, store.conflict_retries, given_up))


def bench_writers(cluster, seed_db: Path, work: Path, writers: int, uploads: int, upload_rows: int) -> dict:
    lake = fresh_stores(cluster, seed_db, work, "writers")["lake"]
    files = [[make_canonical_csv(upload_rows, seed=1000 + w * uploads + u) for u in range(uploads)]
             for w in range(writers)]
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(writers + 1), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(lake, w, files[w], barrier, results)) for w in range(writers)]
    for proc in procs:
        proc.start()
    barrier.wait()
    start = time.perf_counter()
    outcomes = [results.get(timeout=1800) for _ in procs]
    wall = time.perf_counter() - start
    for proc in procs:
        proc.join()
    with Store.open(lake, read_only=True) as store:
        runs = store.runs(source_ids=["bench_lab"])
        batches = store.batches().query("kind == 'upload'")
    # Lost: runs of every upload that reported success but are not stored (an upload given up wrote nothing, and said
    # so). Files of different seeds may share a run by chance, so distinct runs are counted.
    given_up = {(w, i) for w, _, failed in outcomes for i in failed}
    with Store.open(lake, read_only=True) as store:
        offered = set()
        for w, group in enumerate(files):
            for i, data in enumerate(group):
                if (w, i) not in given_up:
                    offered |= set(compute_run_ids(validate_bytes(store, "x.csv", data).frame))
    stored, distinct = len(runs), runs["run_id"].nunique()
    return {"writers": writers, "uploads_each": uploads, "rows_per_upload": upload_rows, "wall_s": round(wall, 2),
            "conflict_retries": sum(r for _, r, _ in outcomes), "uploads_given_up": len(given_up),
            "runs_offered_distinct": len(offered),
            "runs_stored": stored, "lost": len(offered - set(runs["run_id"])), "duplicated": stored - distinct,
            "upload_batches": len(batches)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--uploads", type=int, default=10)
    parser.add_argument("--upload-rows", type=int, default=50)
    parser.add_argument("--no-pages", action="store_true", help="skip the page first-render timing")
    args = parser.parse_args()
    report = {}
    with tempfile.TemporaryDirectory(prefix="wattgpu-bench-lake-") as tmp, throwaway_cluster() as cluster:
        work = Path(tmp)
        seed_db = work / "seed.duckdb"
        Store.build(seed_db).close()
        report["ingest"] = bench_ingest(cluster, seed_db, work, args.rows, args.repeats)
        print(json.dumps({"ingest": report["ingest"]}, indent=2), flush=True)
        if not args.no_pages:
            report["pages"] = bench_pages(cluster, seed_db, work)
            print(json.dumps({"pages": report["pages"]}, indent=2), flush=True)
        report["writers"] = bench_writers(cluster, seed_db, work, args.writers, args.uploads, args.upload_rows)
        print(json.dumps({"writers": report["writers"]}, indent=2), flush=True)
    out = ROOT / "bench" / "out" / "bench_lake.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
