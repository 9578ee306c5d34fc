"""Bring your own benchmarks: vLLM and GuideLLM results, nvidia-smi / DCGM / zeus power logs, and their pairing.

Fixtures in tests/fixtures/byob were written for these tests from the tools' own writer code (vLLM 0.33.0
``vllm bench serve``, GuideLLM 0.8.1, zeus 0.16.0 ``ZeusMonitor(log_file=...)``, nvidia-smi query CSV, DCGM
exporter text). Expected means are computed here independently from the raw text with the csv module."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from wattgpu_core.errors import ValidationError
from wattgpu_core.importers import guidellm, vllm_bench
from wattgpu_core.importers.bench_results import load_json_records
from wattgpu_core.importers.pair import ingest_pair, read_result, split_files, validate_pair
from wattgpu_core.importers.powerlog import parse_power_log, window_power
from wattgpu_core.importers.request_lists import server_itl_from_lists
from wattgpu_core.ingest import ingest_bytes

F = Path(__file__).parent / "fixtures" / "byob"


def file(name: str) -> tuple[str, bytes]:
    return name, (F / name).read_bytes()


def smi_mean(name: str, gpu: int, start: datetime, end: datetime) -> tuple[int, float]:
    """Readings and mean power of one GPU between two wall-clock times, read with the csv module."""
    values = []
    with open(F / name, newline="") as fh:
        rows = csv.reader(fh, skipinitialspace=True)
        next(rows)
        for stamp, index, _name, power, *_ in rows:
            t = datetime.strptime(stamp, "%Y/%m/%d %H:%M:%S.%f")
            if int(index) == gpu and start <= t <= end and "N/A" not in power:
                values.append(float(power.replace(" W", "")))
    return len(values), sum(values) / len(values)


def issue_of(exc: pytest.ExceptionInfo) -> tuple[int, str, str]:
    first = exc.value.issues[0]
    return first.row, first.column, first.message


# -- power logs ------------------------------------------------------------------------------------------------
def test_nvidia_smi_with_units_two_gpus_and_na():
    log = parse_power_log(*file("nvidia_smi_units.csv"))
    assert log.format == "nvidia_smi" and log.clock == "local"
    assert log.gpu_indices == [0, 1] and log.skipped_readings == 2
    assert set(log.samples["gpu_name"]) == {"NVIDIA H100 80GB HBM3"}
    assert len(log.samples) == 2 * 45 - 2


def test_nvidia_smi_nounits():
    log = parse_power_log(*file("nvidia_smi_nounits.csv"))
    assert log.gpu_indices == [0] and len(log.samples) == 41 and log.samples["power_w"].between(300, 335).all()


@pytest.mark.parametrize("old, new, row, column", [
    ("276.22 W", "27x6 W", 1, "power.draw [W]"),
    ("2025/09/04 13:15:40.500, 0", "04.09.2025 13:15:40, 0", 3, "timestamp"),
    (", 1, NVIDIA H100 80GB HBM3, 66.12 W", ", one, NVIDIA H100 80GB HBM3, 66.12 W", 2, "index"),
])
def test_nvidia_smi_malformed_names_row_and_field(old, new, row, column):
    name, data = file("nvidia_smi_units.csv")
    assert old.encode() in data
    with pytest.raises(ValidationError) as exc:
        parse_power_log(name, data.replace(old.encode(), new.encode(), 1))
    got = issue_of(exc)
    assert got[:2] == (row, column), got


def test_dcgm_scrapes_text_and_prometheus_json():
    name, data = file("dcgm_scrapes.prom")
    other = b'DCGM_FI_DEV_POWER_USAGE_INSTANT{gpu="0",modelName="NVIDIA H100 80GB HBM3"} 99.0 1757059202000\n'
    log = parse_power_log(name, data + other)
    assert log.format == "dcgm" and log.clock == "utc" and log.gpu_indices == [0]
    assert len(log.samples) == 84 and set(log.samples["gpu_name"]) == {"NVIDIA H100 80GB HBM3"}
    matrix = {"status": "success", "data": {"resultType": "matrix", "result": [{
        "metric": {"__name__": "DCGM_FI_DEV_POWER_USAGE", "gpu": "0", "modelName": "NVIDIA L40S"},
        "values": [[1757059200 + i, f"{300 + i}.5"] for i in range(10)]}]}}
    as_json = parse_power_log("q.json", json.dumps(matrix).encode())
    assert as_json.samples["power_w"].tolist() == [300.5 + i for i in range(10)]


def test_dcgm_sample_without_timestamp_is_rejected_by_line():
    name, data = file("dcgm_scrapes.prom")
    lines = data.decode().splitlines()
    lines[2] = lines[2].rsplit(" ", 1)[0]  # drop the first sample's timestamp
    with pytest.raises(ValidationError) as exc:
        parse_power_log(name, "\n".join(lines).encode())
    assert issue_of(exc)[:2] == (3, "timestamp")


def test_zeus_log_and_malformed_energy():
    log = parse_power_log(*file("zeus_log.csv"))
    assert log.format == "zeus" and list(log.windows["energy_j"] / (log.windows["end_s"] - log.windows["start_s"])) \
        == pytest.approx([161.4, 329.8])
    name, data = file("zeus_log.csv")
    bad = data.decode().splitlines()
    bad[2] = bad[2].rsplit(",", 1)[0] + ",-3"
    with pytest.raises(ValidationError) as exc:
        parse_power_log(name, "\n".join(bad).encode())
    assert issue_of(exc)[:2] == (2, "gpu0_energy")


def test_not_a_power_log():
    with pytest.raises(ValidationError, match="not a recognised power log"):
        parse_power_log("x.csv", b"a,b\n1,2\n")


# -- results -----------------------------------------------------------------------------------------------------
def test_vllm_result_window_and_exact_itl():
    raw = json.loads((F / "vllm_serve_rate2.json").read_bytes())
    fmt, runs = read_result(*file("vllm_serve_rate2.json"))
    assert fmt == "vllm_bench" and len(runs) == 1
    run = runs[0]
    end = (datetime(2025, 9, 4, 13, 15, 56) - datetime(1970, 1, 1)).total_seconds() + 0.5
    assert run.end_s == end and run.start_s == pytest.approx(end - raw["duration"])
    itl = server_itl_from_lists(raw["ttfts"], raw["latencies"], raw["output_lens"])
    assert run.columns["itl_s"] == pytest.approx(itl) == pytest.approx(raw["mean_tpot_ms"] / 1000)
    assert run.columns["scenario"] == "server" and run.columns["request_rate_qps"] == 2.0
    assert run.columns["framework_version"] == "0.33.0"
    assert run.key == "vllm-bench 20250904-131556 rate=2 concurrency=- prompts=20"


def test_older_benchmark_serving_result_is_offline():
    fmt, runs = read_result(*file("benchmark_serving_old.json"))
    c = runs[0].columns
    assert c["scenario"] == "offline" and c["itl_definition"] == "offline_duration_per_token"
    assert c["itl_s"] == pytest.approx(24.83 / 25600) and c["input_tokens"] == pytest.approx(225.6)


def test_vllm_append_result_lines_are_runs():
    a = (F / "benchmark_serving_old.json").read_text().replace("\n", "")
    b = a.replace("20240611-101502", "20240611-102000").replace('"request_rate": "inf"', '"request_rate": 8.0')
    records = load_json_records(a + "\n" + b + "\n")
    runs = vllm_bench.read_runs(records)
    assert [r.row for r in runs] == [1, 2] and runs[1].columns["scenario"] == "server"


@pytest.mark.parametrize("change, row, column", [
    ({"date": "2025-09-04 13:15:56"}, 1, "date"),
    ({"duration": -3}, 1, "duration"),
    ({"completed": "twenty"}, 1, "completed"),
    ({"mean_tpot_ms": None, "ttfts": None}, 1, "mean_tpot_ms"),
])
def test_vllm_malformed_names_row_and_field(change, row, column):
    raw = json.loads((F / "vllm_serve_rate2.json").read_bytes())
    for k, v in change.items():
        if v is None:
            raw.pop(k)
        else:
            raw[k] = v
    with pytest.raises(ValidationError) as exc:
        read_result("r.json", json.dumps(raw).encode())
    assert issue_of(exc)[:2] == (row, column)


def test_guidellm_report_one_run_per_rate():
    fmt, runs = read_result(*file("guidellm_benchmarks.json"))
    assert fmt == "guidellm" and [r.row for r in runs] == [1, 2]
    assert [r.columns["request_rate_qps"] for r in runs] == [1.0, 4.0]
    assert [r.columns["itl_s"] for r in runs] == pytest.approx([0.0079, 0.0096])
    assert [r.columns["ttft_s"] for r in runs] == pytest.approx([0.0412, 0.0557])
    assert runs[0].end_s - runs[0].start_s == 30.0 and runs[0].clock == "utc"
    assert runs[0].columns["itl_definition"] == "reported" and "weighted" in runs[0].columns["notes"]


def test_guidellm_malformed_names_benchmark_and_path():
    raw = json.loads((F / "guidellm_benchmarks.json").read_bytes())
    del raw["benchmarks"][1]["config"]["strategy"]["type_"]
    raw["benchmarks"][0]["metrics"]["inter_token_latency_ms"]["successful"]["mean"] = "fast"
    with pytest.raises(ValidationError) as exc:
        guidellm.read_runs(raw)
    found = {(i.row, i.column) for i in exc.value.issues}
    assert (1, "benchmarks[0].metrics.inter_token_latency_ms.successful.mean") in found
    assert (2, "benchmarks[1].config.strategy.type_") in found


# -- pairing -----------------------------------------------------------------------------------------------------
def test_pair_mean_power_is_the_logs_mean_inside_the_window(store):
    paired = validate_pair(store, file("vllm_serve_rate2.json"), file("nvidia_smi_units.csv"), gpu_indices=[0])
    raw = json.loads((F / "vllm_serve_rate2.json").read_bytes())
    end = datetime(2025, 9, 4, 13, 15, 56, 500000)
    n, mean = smi_mean("nvidia_smi_units.csv", 0, end - timedelta(seconds=raw["duration"]), end)
    row = paired.prepared.frame.iloc[0]
    assert row["power_w"] == pytest.approx(mean) and paired.windows["Readings"].tolist() == [n]
    assert row["gpu_id"] == "h100-sxm5-80gb" and row["num_gpus"] == 1
    assert row["gpu_energy_j"] == pytest.approx(mean * raw["duration"])
    both = validate_pair(store, file("vllm_serve_rate2.json"), file("nvidia_smi_units.csv"))
    assert both.prepared.frame["num_gpus"].iloc[0] == 2 and len(both.windows) == 2
    n1, mean1 = smi_mean("nvidia_smi_units.csv", 1, end - timedelta(seconds=raw["duration"]), end)
    assert both.prepared.frame["power_w"].iloc[0] == pytest.approx((mean + mean1) / 2)


def test_guidellm_with_dcgm_and_with_zeus(store):
    dcgm = validate_pair(store, file("guidellm_benchmarks.json"), file("dcgm_scrapes.prom"))
    assert dcgm.prepared.frame["power_w"].tolist() == pytest.approx([160, 330], abs=3)
    assert dcgm.windows["Readings"].tolist() == [31, 31]
    zeus = validate_pair(store, file("guidellm_benchmarks.json"), file("zeus_log.csv"), gpu="NVIDIA H100 80GB HBM3")
    assert zeus.prepared.frame["power_w"].tolist() == pytest.approx([161.4, 329.8])
    with pytest.raises(ValidationError, match="--gpu"):
        validate_pair(store, file("guidellm_benchmarks.json"), file("zeus_log.csv"))


def _shift_smi(data: bytes, seconds: float) -> bytes:
    out = []
    for i, line in enumerate(data.decode().splitlines()):
        if i:
            stamp, rest = line.split(", ", 1)
            t = datetime.strptime(stamp, "%Y/%m/%d %H:%M:%S.%f") + timedelta(seconds=seconds)
            line = f"{t:%Y/%m/%d %H:%M:%S.%f}"[:-3] + ", " + rest
        out.append(line)
    return ("\n".join(out) + "\n").encode()


@pytest.mark.parametrize("shift, kwargs, message", [
    (3600, {}, "does not overlap"),
    (10, {}, "does not cover"),
    (0, {"min_samples": 40}, "only 18 power reading"),
])
def test_pair_rejects_uncovered_or_thin_windows_and_writes_nothing(store, shift, kwargs, message):
    before = store.fingerprint()
    name, data = file("nvidia_smi_units.csv")
    with pytest.raises(ValidationError) as exc:
        paired = validate_pair(store, file("vllm_serve_rate2.json"), (name, _shift_smi(data, shift)),
                               gpu_indices=[0], **kwargs)
        ingest_pair(store, paired)
    row, column, text = issue_of(exc)
    assert message in text and row == 1 and column == "duration"
    assert store.fingerprint() == before


def test_local_and_utc_clocks_meet_with_the_offset(store):
    """vLLM's date is local time; a DCGM log is UTC. Benchmark machine on UTC+2."""
    raw = json.loads((F / "vllm_serve_rate2.json").read_bytes())
    end_local = datetime(2025, 9, 4, 13, 15, 56, 500000)
    start_utc = (end_local - timedelta(hours=2) - datetime(1970, 1, 1)).total_seconds() - raw["duration"]
    lines = [f'DCGM_FI_DEV_POWER_USAGE{{gpu="0",modelName="NVIDIA H100 80GB HBM3"}} {250 + i % 2} '
             f"{int((start_utc - 3 + 0.5 * i) * 1000)}" for i in range(40)]
    log = ("dcgm.prom", "\n".join(lines).encode())
    paired = validate_pair(store, file("vllm_serve_rate2.json"), log, utc_offset_h=2)
    assert paired.prepared.frame["power_w"].iloc[0] == pytest.approx(250.5, abs=0.1)
    with pytest.raises(ValidationError, match="does not overlap"):
        validate_pair(store, file("vllm_serve_rate2.json"), log)


def test_reingesting_a_pair_adds_nothing_and_a_conflicting_one_is_refused(store):
    first = ingest_pair(store, validate_pair(store, file("guidellm_benchmarks.json"), file("dcgm_scrapes.prom")))
    assert first.added == 2
    after = store.fingerprint()
    again = ingest_pair(store, validate_pair(store, file("guidellm_benchmarks.json"), file("dcgm_scrapes.prom")))
    assert again.added == 0 and "already in the store" in again.message
    with pytest.raises(ValidationError) as exc:  # the zeus log of the same runs disagrees on the second run
        validate_pair(store, file("guidellm_benchmarks.json"), file("zeus_log.csv"), gpu="NVIDIA H100 80GB HBM3")
    row, column, text = issue_of(exc)
    assert (row, column) == (2, "power_w") and first.batch_id in text
    assert store.fingerprint() == after


def test_a_result_or_a_log_alone_is_refused_with_the_reason(store):
    with pytest.raises(ValidationError, match="holds no power"):
        ingest_bytes(store, *file("vllm_serve_rate2.json"))
    with pytest.raises(ValidationError, match="holds no power"):
        ingest_bytes(store, *file("guidellm_benchmarks.json"))
    with pytest.raises(ValidationError, match="power log"):
        ingest_bytes(store, *file("nvidia_smi_nounits.csv"))


def test_split_files_tells_result_from_log():
    result, log = split_files([file("nvidia_smi_units.csv"), file("vllm_serve_rate2.json")])
    assert result[0] == "vllm_serve_rate2.json" and log[0] == "nvidia_smi_units.csv"
    with pytest.raises(ValidationError, match="exactly two"):
        split_files([file("nvidia_smi_units.csv")])
    with pytest.raises(ValidationError, match="both"):
        split_files([file("nvidia_smi_units.csv"), file("dcgm_scrapes.prom")])


def test_window_power_of_gpu_not_in_log():
    log = parse_power_log(*file("nvidia_smi_nounits.csv"))
    with pytest.raises(ValidationError, match="GPU index 3"):
        window_power(log, *log.span, gpu_indices=[3])


def test_cli_ingest_pair_then_again_then_mismatched(store_path):
    import os
    import subprocess
    import sys

    from wattgpu_core.paths import ROOT

    def cli(*args):
        env = dict(os.environ)
        env.pop("WATTGPU_DB", None)
        return subprocess.run([sys.executable, "-m", "wattgpu_core", *args, "--db", str(store_path)],
                              capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)

    pair = ["ingest", str(F / "vllm_serve_rate2.json"), "--power-log", str(F / "nvidia_smi_units.csv"),
            "--gpu-indices", "0"]
    first = cli(*pair)
    assert first.returncode == 0, first.stderr
    assert "added 1 run" in first.stdout and "GPU 0 NVIDIA H100 80GB HBM3" in first.stdout
    again = cli(*pair)
    assert again.returncode == 0 and "nothing added" in again.stdout
    wrong = cli("ingest", str(F / "vllm_serve_rate2.json"), "--power-log", str(F / "nvidia_smi_nounits.csv"))
    assert wrong.returncode == 2 and "row 1" in wrong.stderr and "does not overlap" in wrong.stderr
    alone = cli("ingest", str(F / "vllm_serve_rate2.json"))
    assert alone.returncode == 2 and "--power-log" in alone.stderr


def test_nvidia_smi_without_index_tells_gpus_apart_by_uuid_and_repeated_headers_are_skipped():
    text = ("timestamp, uuid, name, power.draw.instant [W]\n"
            "2025/09/04 13:15:40.000, GPU-aaa, NVIDIA L40S, 100.00 W\n"
            "2025/09/04 13:15:40.000, GPU-bbb, NVIDIA L40S, [N/A]\n"
            "timestamp, uuid, name, power.draw.instant [W]\n"
            "2025/09/04 13:15:41.000, GPU-aaa, NVIDIA L40S, 102.00 W\n"
            "2025/09/04 13:15:41.000, GPU-bbb, NVIDIA L40S, 51.00 W\n")
    log = parse_power_log("p.csv", text.encode())
    assert log.gpu_indices == [0, 1] and log.skipped_readings == 1
    assert log.samples.groupby("gpu_index")["power_w"].mean().tolist() == [101.0, 51.0]
