"""Benchmark: ingest a generated 100,000-row canonical CSV, against a naive row-by-row INSERT measured in the same run.

    python bench/bench_ingest.py [--rows 100000] [--repeats 3] [--baseline-rows 10000]

What is timed:

* **ours**: ``ingest_bytes`` on the whole file, end to end: detect the format, check every line's field count,
  parse, validate every value, resolve every GPU and LLM name, fingerprint every row, skip duplicates and write the
  new rows in one committed transaction. Each repeat starts from a fresh copy of the seed store.
* **baseline**: the same rows, already parsed, validated and fingerprinted (none of that is timed), written with one
  parameterised ``INSERT`` per row (``executemany``) in one committed transaction. A row-by-row writer is so slow
  that by default it writes only the first ``--baseline-rows`` rows of the same file (``all`` for every row); the
  rates (rows/s) are compared.

The CSV is generated from the Watt Counts seed runs (random rows, power perturbed by up to 1 %, unique iteration
numbers so that no two rows are duplicates) into a temporary folder; nothing is written to the repository.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from wattgpu_core.ingest import ingest_bytes, validate_bytes
from wattgpu_core.schema import CANONICAL_COLUMNS, RUN_COLUMNS, names
from wattgpu_core.store import Store, _cast_frame, compute_run_ids, read_seed_table


def make_canonical_csv(n_rows: int, seed: int = 0) -> bytes:
    """A valid canonical CSV of ``n_rows`` distinct runs built from the seed's Watt Counts runs."""
    runs = read_seed_table("runs")
    runs = runs[runs["source_id"] == "wattcounts"].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    frame = runs.iloc[rng.integers(0, len(runs), n_rows)].reset_index(drop=True)
    frame["power_w"] = frame["power_w"] * (1 + rng.uniform(-0.01, 0.01, n_rows))
    frame["iteration"] = np.arange(n_rows) + 100
    frame["source_id"] = "bench_lab"
    frame["license"] = "CC-BY-4.0"
    frame = frame.rename(columns={"llm_id": "llm", "gpu_id": "gpu"})
    columns = ["llm", "gpu"] + [c.name for c in CANONICAL_COLUMNS if c.name not in ("llm_id", "gpu_id")]
    return frame[columns].to_csv(index=False, lineterminator="\n").encode()


def time_ours(data: bytes, seed_db: Path, work: Path, repeats: int) -> tuple[list[float], int]:
    times, added = [], 0
    for i in range(repeats + 1):  # the first pass warms caches and imports and is not counted
        db = work / f"ours-{i}.duckdb"
        shutil.copy(seed_db, db)
        with Store.open(db) as store:
            start = time.perf_counter()
            result = ingest_bytes(store, "bench.csv", data)
            elapsed = time.perf_counter() - start
        added = result.added
        if i:
            times.append(elapsed)
        db.unlink()
    return times, added


def time_baseline(data: bytes, seed_db: Path, work: Path, n_rows: int) -> tuple[float, int]:
    db = work / "baseline.duckdb"
    shutil.copy(seed_db, db)
    with Store.open(db) as store:
        frame = validate_bytes(store, "bench.csv", data).frame.head(n_rows).copy()
        frame.insert(0, "run_id", compute_run_ids(frame).to_numpy())
        frame.insert(1, "batch_id", "baseline")
        typed = _cast_frame(frame, RUN_COLUMNS).astype(object)
        typed = typed.where(typed.notna(), None)
        rows = [(*row, 10**9 + i) for i, row in enumerate(typed.itertuples(index=False, name=None))]
        cols = names(RUN_COLUMNS)
        sql = f"INSERT INTO runs ({', '.join(cols)}, seq) VALUES ({', '.join('?' * (len(cols) + 1))})"
        cur = store._con.cursor()
        start = time.perf_counter()
        cur.execute("BEGIN TRANSACTION")
        cur.executemany(sql, rows)
        cur.execute("COMMIT")
        elapsed = time.perf_counter() - start
        cur.close()
    db.unlink()
    return elapsed, len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-rows", default="10000", help="rows the naive baseline writes, or 'all'")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="wattgpu-bench-") as tmp:
        work = Path(tmp)
        seed_db = work / "seed.duckdb"
        Store.build(seed_db).close()
        data = make_canonical_csv(args.rows)
        (work / "bench.csv").write_bytes(data)
        print(f"file: {args.rows:,} rows, {len(data) / 1e6:.1f} MB canonical CSV; machine: {os.cpu_count()} CPUs")

        times, added = time_ours(data, seed_db, work, args.repeats)
        if added != args.rows:
            print(f"error: ingest added {added} rows, expected {args.rows}", file=sys.stderr)
            return 1
        ours = statistics.median(times)
        ours_rate = args.rows / ours
        print(f"ours:     {ours:.3f} s median of {args.repeats} (all: {', '.join(f'{t:.3f}' for t in times)}) "
              f"= {ours_rate:,.0f} rows/s  [parse + validate + resolve + fingerprint + dedupe + insert + commit]")

        n_base = args.rows if args.baseline_rows == "all" else min(int(args.baseline_rows), args.rows)
        base, n_written = time_baseline(data, seed_db, work, n_base)
        base_rate = n_written / base
        print(f"baseline: {base:.3f} s for {n_written:,} rows = {base_rate:,.0f} rows/s  "
              f"[row-by-row INSERT of already-validated rows + commit]")
        print(f"ratio:    {ours_rate / base_rate:.1f}x (ours rows/s / baseline rows/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
