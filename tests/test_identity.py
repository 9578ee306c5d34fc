"""Ingest is idempotent on each source's natural run key: re-sent runs add nothing whatever their optional columns
say; re-sent runs whose measured values differ are refused, skipped or replaced as asked, never duplicated. Real
DuckDB files (private copies of the seed store) and the real importers throughout."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from wattgpu_core.errors import ConflictError, ValidationError
from wattgpu_core.identity import run_keys
from wattgpu_core.ingest import ingest_bytes
from wattgpu_core.paths import RAW_DIR

WC_FILE = RAW_DIR / "wattcounts_via_cyx012113" / "wattcounts_experiments.csv"

CANONICAL = (
    "llm,gpu,scenario,batch_size,request_rate_qps,input_tokens,output_tokens,framework,framework_version,precision,"
    "num_gpus,iteration,power_w,itl_s,ttft_s,source_id,license,attribution,notes\n"
    "Qwen/Qwen2.5-7B-Instruct,NVIDIA L40S,offline,256,,14,220,vLLM,0.14.1,bf16,1,1,331.5,0.00041,,lab_k,CC-BY-4.0,"
    "Lab K,first\n"
    "Qwen/Qwen2.5-7B-Instruct,NVIDIA H100 NVL,server,,0.33,14,210,vLLM,0.14.1,bf16,1,1,118.0,0.0071,0.03,lab_k,"
    "CC-BY-4.0,Lab K,second\n"
)


def _frame(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def _wattcounts_rows(n: int = 30) -> pd.DataFrame:
    return pd.read_csv(WC_FILE, dtype=str, keep_default_na=False, nrows=n)


def test_keys_ignore_case_spacing_aliases_number_formats_and_blank_defaults():
    base = pd.DataFrame([{"source_id": "lab", "llm_id": "a/b", "gpu_id": "l4", "scenario": "offline",
                          "batch_size": 256.0, "framework": "vLLM", "precision": "bf16", "num_gpus": 1.0,
                          "tensor_parallel": 1.0, "iteration": 2.0, "campaign": "block 1"}])
    variants = base.assign(framework=" VLLM ", precision="BFloat16", batch_size=2.56e2, num_gpus=None,
                           tensor_parallel=None, campaign="Block   1")
    assert run_keys(variants).iloc[0] == run_keys(base).iloc[0]
    for change in ({"iteration": 3.0}, {"batch_size": 128.0}, {"gpu_id": "l40s"}, {"source_id": "other"},
                   {"precision": "fp8"}):
        assert run_keys(base.assign(**change)).iloc[0] != run_keys(base).iloc[0], change


def test_wattcounts_resend_with_optional_values_blank_nan_or_reformatted_adds_nothing(store):
    """The seed holds every Watt Counts experiment; re-sending some, however written, finds them (source + the
    experiment's coordinates that its index enumerates)."""
    before = store.fingerprint()
    rows = _wattcounts_rows()
    variants = {
        "as published": rows,
        "throughput blank": rows.assign(throughput_tokens_per_second=""),
        "efficiency 'nan', latency 'NA'": rows.assign(energy_efficiency_tokens_per_joule="nan",
                                                       avg_e2e_latency_seconds="NA"),
        "numbers reformatted": rows.assign(gpu_power_draw_watts=[f"{float(v):.6e}" for v in rows.gpu_power_draw_watts],
                                           num_requests=[f"{float(v):.1f}" for v in rows.num_requests]),
        "names spaced": rows.assign(model=" " + rows.model + " ", gpu_type=rows.gpu_type + "  "),
        "index dropped": rows.drop(columns=["src_index"]),
    }
    for name, frame in variants.items():
        result = ingest_bytes(store, f"{name}.csv", _csv(frame))
        assert (result.added, result.duplicates_in_store) == (0, len(rows)), name
    assert store.fingerprint() == before


def test_canonical_resend_with_case_aliases_and_blank_optionals_adds_nothing(store):
    first = ingest_bytes(store, "mine.csv", CANONICAL.encode())
    assert first.added == 2
    after = store.fingerprint()
    frame = _frame(CANONICAL)
    variants = [
        frame.assign(framework=["VLLM", "vllm"], precision=["BF16", "bfloat16"]),
        frame.assign(ttft_s="", notes="", itl_s=["", "NaN"], license="", attribution=""),
        frame.assign(batch_size=["256.0", ""], request_rate_qps=["", "3.3e-1"], power_w=["331.50", "1.18e2"]),
        frame.assign(num_gpus="", framework_version=["0.14.1", "0.14.1"], llm=" Qwen/Qwen2.5-7B-Instruct "),
        frame.assign(source_id=" lab_k ".strip(), iteration=["1.0", "1"]),
    ]
    for i, variant in enumerate(variants):
        result = ingest_bytes(store, f"again{i}.csv", _csv(variant))
        assert result.added == 0 and result.duplicates_in_store == 2, (i, result.message)
    assert store.fingerprint() == after


def test_conflicting_resend_is_refused_by_default_naming_row_and_column(store):
    ingest_bytes(store, "mine.csv", CANONICAL.encode())
    after = store.fingerprint()
    changed = _frame(CANONICAL).assign(power_w=["331.5", "140.0"], ttft_s=["", "0.05"])
    with pytest.raises(ConflictError) as info:
        ingest_bytes(store, "changed.csv", _csv(changed))
    issues = info.value.issues
    assert [(i.row, i.column) for i in issues] == [(2, "power_w")]
    assert "power_w 118.0 stored, 140.0 sent" in issues[0].message and "ttft_s" in issues[0].message
    assert "replace" in str(info.value) and "\n" not in str(info.value)
    assert store.fingerprint() == after


def test_skip_keeps_the_stored_values_and_replace_is_undone_by_removing_its_batch(store):
    first = ingest_bytes(store, "mine.csv", CANONICAL.encode())
    after_first = store.fingerprint()
    changed = _frame(CANONICAL).assign(power_w=["331.5", "140.0"])
    skipped = ingest_bytes(store, "changed.csv", _csv(changed), on_conflict="skip")
    assert (skipped.added, skipped.conflicts_skipped, skipped.batch_id) == (0, 1, None)
    assert "kept as stored" in skipped.message and store.fingerprint() == after_first

    replaced = ingest_bytes(store, "changed.csv", _csv(changed), on_conflict="replace")
    assert (replaced.added, replaced.replaced) == (1, 1)
    mine = store.runs(source_ids=["lab_k"])
    assert len(mine) == 2 and sorted(mine["power_w"]) == [140.0, 331.5]
    assert set(mine["batch_id"]) == {first.batch_id, replaced.batch_id}
    assert store.remove_batch(replaced.batch_id)["restored_runs"] == 1
    assert store.fingerprint() == after_first


def test_a_file_with_one_run_twice_and_different_values_is_rejected(store):
    before = store.fingerprint()
    frame = _frame(CANONICAL)
    twice = pd.concat([frame, frame.iloc[[0]].assign(power_w="300")], ignore_index=True)
    with pytest.raises(ValidationError, match="repeats the run of row 1") as info:
        ingest_bytes(store, "twice.csv", _csv(twice))
    assert (info.value.issues[0].row, info.value.issues[0].column) == (3, "power_w")
    assert "iteration" in str(info.value)
    assert store.fingerprint() == before


def test_cli_on_conflict_choices(store_path, tmp_path):
    from test_cli import cli

    path = tmp_path / "mine.csv"
    path.write_text(CANONICAL)
    assert cli("ingest", str(path), "--db", str(store_path)).returncode == 0
    path.write_text(CANONICAL.replace(",118.0,", ",140.0,"))
    refused = cli("ingest", str(path), "--db", str(store_path))
    assert refused.returncode == 2 and "column 'power_w'" in refused.stderr and "Traceback" not in refused.stderr
    skipped = cli("ingest", str(path), "--db", str(store_path), "--on-conflict", "skip")
    assert skipped.returncode == 0 and "kept as stored" in skipped.stdout
    replaced = cli("ingest", str(path), "--db", str(store_path), "--on-conflict", "replace")
    assert replaced.returncode == 0 and "1 replacing stored runs" in replaced.stdout
