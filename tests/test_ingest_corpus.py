"""A corpus of bad uploads, each rejected with a one-line reason that names the row and column, leaving the store
exactly as it was (same ``fingerprint()``); plus the good cases: repeated uploads, one bad row among good ones and a
50 MB file. Every test writes to a real DuckDB file (a private copy of the seed store)."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest

from wattgpu_core.errors import ValidationError
from wattgpu_core.importers import reading
from wattgpu_core.importers.issues import MAX_ISSUES
from wattgpu_core.ingest import ingest_bytes, ingest_path
from wattgpu_core.schema import CANONICAL_COLUMNS
from wattgpu_core.store import read_seed_table

HEADER = "llm,gpu,scenario,power_w,itl_s,throughput_tok_s,batch_size,notes"
GOOD = [
    "Qwen/Qwen2.5-7B-Instruct,NVIDIA L40S,offline,331.5,0.00041,2440.0,256,",
    "Qwen/Qwen2.5-7B-Instruct,NVIDIA H100 NVL,server,118.0,0.0071,,,",
    "meta-llama/Llama-3.1-8B-Instruct,Tesla V100-SXM2-32GB,offline,280.2,0.0009,1100.5,256,first try",
]


def csv_bytes(rows: list[str], header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def replace(row: int, column: str, value: str, header: str = HEADER) -> bytes:
    """The good file with one cell changed (row is 1-based)."""
    cols = header.split(",")
    rows = [r.split(",") for r in GOOD]
    rows[row - 1][cols.index(column)] = value
    return csv_bytes([",".join(r) for r in rows], header)


# (name, file bytes, expected row of the first issue (0 = the file), expected column, words the message must hold)
BAD_FILES = [
    ("colon delimiter", csv_bytes(GOOD).replace(b",", b":"), 0, "", ["unrecognised format", "delimiter"]),
    ("rows comma, header semicolon", csv_bytes(GOOD).replace(b",", b";", 7), 1, "",
     ["line 2 has 1 field where the header has 8"]),
    ("decimal comma", replace(2, "power_w", "118,0"), 2, "", ["line 3 has 9 fields where the header has 8"]),
    ("missing power_w", csv_bytes([",".join(r.split(",")[:3] + r.split(",")[4:]) for r in GOOD],
                                  HEADER.replace(",power_w", "")), 0, "power_w", ["missing required column"]),
    ("missing scenario", csv_bytes([",".join(r.split(",")[:2] + r.split(",")[3:]) for r in GOOD],
                                   HEADER.replace(",scenario", "")), 0, "scenario", ["missing required column"]),
    ("text in power_w", replace(2, "power_w", "118 W"), 2, "power_w", ["expected a number", "118 W"]),
    ("text in itl_s", replace(3, "itl_s", "fast"), 3, "itl_s", ["expected a number"]),
    ("negative power", replace(1, "power_w", "-331.5"), 1, "power_w", ["positive", "-331.5"]),
    ("NaN power", replace(1, "power_w", "NaN"), 1, "power_w", ["missing or NaN"]),
    ("blank power", replace(3, "power_w", ""), 3, "power_w", ["missing or NaN"]),
    ("infinite power", replace(1, "power_w", "inf"), 1, "power_w", ["infinite"]),
    ("power in mW", replace(1, "power_w", "331500"), 1, "power_w", ["above twice the GPU's TDP (350 W)"]),
    ("power just over 2 x TDP", replace(3, "power_w", "600.1"), 3, "power_w", ["TDP (300 W)"]),
    ("zero ITL", replace(1, "itl_s", "0"), 1, "itl_s", ["must be positive"]),
    ("negative throughput", replace(3, "throughput_tok_s", "-1100.5"), 3, "throughput_tok_s", ["must be positive"]),
    ("absurd ITL", replace(2, "itl_s", "7100"), 2, "itl_s", ["not physical"]),
    ("fractional batch", replace(1, "batch_size", "0"), 1, "batch_size", ["must be positive"]),
    ("unknown GPU (bare H100)", replace(2, "gpu", "H100"), 2, "gpu", ["unknown GPU 'H100'", "did you mean"]),
    ("unknown GPU (bare A100)", replace(2, "gpu", "A100"), 2, "gpu", ["unknown GPU 'A100'", "NVIDIA A100-SXM4-40GB"]),
    ("unknown GPU (typo)", replace(1, "gpu", "NVIDIA L40X"), 1, "gpu", ["unknown GPU"]),
    ("unknown LLM", replace(3, "llm", "acme/Llama-9-1T"), 3, "llm", ["unknown LLM"]),
    ("missing GPU name", replace(3, "gpu", ""), 3, "gpu", ["GPU name is missing"]),
    ("bad scenario", replace(1, "scenario", "batch"), 1, "scenario", ["offline, server", "'batch'"]),
    ("empty file", b"", 0, "", ["file is empty"]),
    ("whitespace only", b" \n\n \r\n", 0, "", ["file is empty"]),
    ("header only", csv_bytes([]), 0, "", ["no data rows"]),
    ("binary junk", bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)), 0, "",
     ["binary data"]),
    ("gzip", gzip.compress(csv_bytes(GOOD)), 0, "", ["gzip"]),
    ("xlsx", b"PK\x03\x04" + b"\x14" * 200, 0, "", ["ZIP archive"]),
    ("latin-1 text", csv_bytes(GOOD).replace(b"first try", "premi\u00e8re".encode("latin-1")), 0, "",
     ["not UTF-8"]),
    ("duplicate column", csv_bytes([r + ",1" for r in GOOD], HEADER + ",power_w"), 0, "power_w",
     ["more than once"]),
    ("unknown column", csv_bytes([r + ",1" for r in GOOD], HEADER + ",watts"), 0, "watts", ["unknown column"]),
    ("reserved source", csv_bytes([r + ",wattcounts" for r in GOOD], HEADER + ",source_id"), 1, "source_id",
     ["reserved"]),
    ("unclosed quote", csv_bytes(GOOD[:2] + [GOOD[2].replace("first try", '"first try')]), 3, "",
     ["line 4 has a quote", "never closed"]),
]


@pytest.mark.parametrize("name, data, row, column, words", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_file_is_rejected_with_one_line_and_store_unchanged(store, name, data, row, column, words):
    before = store.fingerprint()
    with pytest.raises(ValidationError) as info:
        ingest_bytes(store, f"{name}.csv", data)
    exc = info.value
    message = str(exc)
    assert "\n" not in message, message
    first = exc.issues[0]
    assert (first.row, first.column) == (row, column), message
    for word in words:
        assert word in message, message
    if row:
        assert f"row {row}" in message
    if column:
        assert repr(column) in message
    assert store.fingerprint() == before


def test_the_good_file_itself_is_accepted(store):
    result = ingest_bytes(store, "good.csv", csv_bytes(GOOD))
    assert result.added == 3


def test_one_bad_row_among_many_good_rejects_the_whole_file(store):
    rows = [f"Qwen/Qwen2.5-7B-Instruct,NVIDIA L4,offline,{60 + i / 100:.2f},0.001,1000,{i},run {i}"
            for i in range(1, 1001)]
    rows[499] = rows[499].replace(",NVIDIA L4,", ",NVIDIA L4 PCIe,")
    before = store.fingerprint()
    with pytest.raises(ValidationError) as info:
        ingest_bytes(store, "many.csv", csv_bytes(rows))
    assert [(i.row, i.column) for i in info.value.issues] == [(500, "gpu")]
    assert store.fingerprint() == before
    rows[499] = rows[499].replace(",NVIDIA L4 PCIe,", ",NVIDIA L4,")
    assert ingest_bytes(store, "many.csv", csv_bytes(rows)).added == 1000


def test_many_problems_are_all_counted_but_the_message_stays_one_line(store):
    rows = [f"Qwen/Qwen2.5-7B-Instruct,NVIDIA L4,offline,-{i},0.001,1000,256," for i in range(1, 501)]
    with pytest.raises(ValidationError) as info:
        ingest_bytes(store, "neg.csv", csv_bytes(rows))
    assert info.value.total == 500
    assert len(info.value.issues) == MAX_ISSUES
    assert "(and 499 more problems)" in str(info.value) and "\n" not in str(info.value)


def test_repeated_upload_adds_nothing_and_says_so(store, tmp_path):
    path = tmp_path / "mine.csv"
    path.write_bytes(csv_bytes(GOOD))
    first = ingest_path(store, path)
    assert first.added == 3 and first.batch_id
    after_first = store.fingerprint()
    second = ingest_path(store, path)
    assert (second.added, second.duplicates_in_store, second.batch_id) == (0, 3, None)
    assert "nothing added" in second.message and first.batch_id in second.message
    assert store.fingerprint() == after_first
    # the same rows in another file (other delimiter, other order, other notes) are duplicates too
    reordered = csv_bytes(list(reversed(GOOD))).replace(b",", b";").replace(b"first try", b"second try")
    third = ingest_bytes(store, "again.csv", reordered)
    assert third.added == 0 and "already in the store" in third.message
    assert store.fingerprint() == after_first


def test_duplicate_rows_within_one_file_count_once(store):
    result = ingest_bytes(store, "dups.csv", csv_bytes(GOOD + GOOD[:2]))
    assert (result.added, result.duplicates_in_file) == (3, 2)
    assert "2 duplicate rows within the file" in result.message
    assert store.runs()["run_id"].is_unique and len(store.runs(batch_ids=[result.batch_id])) == 3


def test_counts_when_a_file_repeats_runs_that_are_already_in_the_store(store):
    ingest_bytes(store, "good.csv", csv_bytes(GOOD))
    new_row = GOOD[0].replace(",256,", ",128,")  # another batch size: another run
    result = ingest_bytes(store, "mixed.csv", csv_bytes(GOOD + [GOOD[0], new_row]))
    assert (result.added, result.duplicates_in_store, result.duplicates_in_file) == (1, 3, 1)
    assert "added 1 run as batch" in result.message and "3 already in the store were skipped" in result.message
    assert store.runs()["run_id"].is_unique


def test_file_over_the_size_limit(store, monkeypatch):
    monkeypatch.setattr(reading, "MAX_FILE_BYTES", 1000)
    before = store.fingerprint()
    with pytest.raises(ValidationError, match="limit is 0 MB"):
        ingest_bytes(store, "big.csv", csv_bytes(GOOD * 20))
    assert store.fingerprint() == before


def _big_canonical(min_bytes: int) -> tuple[bytes, int]:
    """A valid canonical CSV of at least ``min_bytes``: seed Watt Counts runs with unique iteration numbers."""
    runs = read_seed_table("runs")
    runs = runs[runs["source_id"] == "wattcounts"].rename(columns={"llm_id": "llm", "gpu_id": "gpu"})
    columns = ["llm", "gpu"] + [c.name for c in CANONICAL_COLUMNS if c.name not in ("llm_id", "gpu_id")]
    block = runs[columns].assign(source_id="big_lab", license="CC-BY-4.0", attribution="Big Lab")
    one = len(block.to_csv(index=False, header=False, lineterminator="\n").encode())
    copies = -(-min_bytes // one)
    buf = io.StringIO()
    block.head(0).to_csv(buf, index=False, lineterminator="\n")
    for k in range(copies):
        block.assign(iteration=np.arange(len(block)) + 1000 + k * len(block)).to_csv(
            buf, index=False, header=False, lineterminator="\n")
    return buf.getvalue().encode(), copies * len(block)


def test_a_50_mb_file(store):
    data, n_rows = _big_canonical(50 * 1024 * 1024)
    assert len(data) >= 50 * 1024 * 1024
    runs_before = store.stats()["runs"]
    before = store.fingerprint()

    # one bad value near the end rejects the file and leaves the store as it was
    last = data.rindex(b"\n", 0, len(data) - 1) + 1
    bad = data[:last] + data[last:].replace(b",CC-BY-4.0,", b",CC-BY-4.0,x", 1)  # scenario "xoffline"
    with pytest.raises(ValidationError) as info:
        ingest_bytes(store, "big-bad.csv", bad)
    assert info.value.issues[0].column == "scenario" and info.value.issues[0].row == n_rows
    assert store.fingerprint() == before

    result = ingest_bytes(store, "big.csv", data)
    assert result.added == n_rows
    stats = store.stats()
    assert stats["runs"] == runs_before + n_rows and stats["runs_per_source"]["big_lab"] == n_rows
    again = ingest_bytes(store, "big.csv", data)
    assert again.added == 0 and store.stats()["runs"] == runs_before + n_rows
