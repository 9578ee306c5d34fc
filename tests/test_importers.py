"""Importers: format detection, the exact server ITL from per-request lists, delimiters, field counts, text columns.

Expected values are worked out by hand from the fixture and the raw source files.
"""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import wattgpu_core
from wattgpu_core.errors import ValidationError
from wattgpu_core.importers import canonical_template, parse_bytes, prepare
from wattgpu_core.importers.request_lists import parse_list, server_itl_from_lists
from wattgpu_core.ingest import source_gpu_map
from wattgpu_core.paths import FIXTURES_DIR, RAW_DIR
from wattgpu_core.store import read_seed_table

SUBSET_SAMPLE = FIXTURES_DIR / "wattcounts_subset_sample.csv"


@pytest.fixture(scope="module")
def catalogs():
    return read_seed_table("gpus"), read_seed_table("llms")


def _prepare(name: str, data: bytes, catalogs):
    gpus, llms = catalogs
    return prepare(parse_bytes(name, data), gpus, llms, source_gpu_map())


def _canonical(rows: list[str], header: str = "llm,gpu,scenario,power_w") -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


# ----------------------------------------------------------------------------------------------------------------
# The original Watt Counts subset format (fixture written by hand)
def test_server_itl_is_the_mean_of_per_request_decode_latencies():
    # requests: (e2e - ttft) / (tokens - 1) = 1.2/200 = 0.006, 0.66/120 = 0.0055, 1.5/250 = 0.006, the one-token
    # request is left out, 0.8/125 = 0.0064; mean of the four = 0.0239 / 4
    ttft = [0.03, 0.028, 0.032, 0.029, 0.031]
    e2e = [1.23, 0.688, 1.532, 0.029, 0.831]
    tokens = [201, 121, 251, 1, 126]
    assert server_itl_from_lists(ttft, e2e, tokens) == pytest.approx(0.005975, rel=1e-12)
    # not the e2e-per-token shortcut (which would include TTFT and the one-token request)
    assert server_itl_from_lists(ttft, e2e, tokens) != pytest.approx(sum(e2e) / sum(tokens), rel=1e-3)


def test_server_itl_without_a_request_of_two_tokens_is_nan_and_lengths_must_match():
    assert math.isnan(server_itl_from_lists([0.1, 0.2], [0.1, 0.2], [1, 0]))
    assert math.isnan(server_itl_from_lists([], [], []))
    with pytest.raises(ValueError, match="differ in length"):
        server_itl_from_lists([0.1], [0.2, 0.3], [2, 2])


@pytest.mark.parametrize(
    "cell, expected",
    [("[0.1, 0.2, 3]", [0.1, 0.2, 3.0]), ("[0.1 0.2  3]", [0.1, 0.2, 3.0]), ("[]", []), (None, []),
     ("[nan, 1.5]", [np.nan, 1.5])],
)
def test_list_cells_written_like_python_or_numpy_lists(cell, expected):
    np.testing.assert_array_equal(parse_list(cell), np.array(expected, dtype=float))


@pytest.mark.parametrize("cell", ["0.1, 0.2", "[0.1, abc]", "[[0.1]]", "['a']"])
def test_list_cells_that_are_not_lists_of_numbers(cell):
    assert parse_list(cell) is None


# Hand-computed from data/fixtures/wattcounts_subset_sample.csv, one line per row:
#   itl_s: offline = measurement_duration / generation_tokens_total; server = mean over requests with >= 2 tokens
#   of (e2e - ttft) / (tokens - 1)
SUBSET_EXPECTED = [
    # llm_id, gpu_id, scenario, qps, itl_s, itl_definition, throughput, energy/token, input, output, ttft, e2e,
    # precision
    ("Qwen/Qwen2.5-7B-Instruct", "l40s", "offline", None, 1.25 / 896, "offline_duration_per_token",
     896 / 1.25, 412.5 / 896, 55 / 4, 224.0, 0.0525, 1.165, "auto"),
    ("Qwen/Qwen2.5-1.5B-Instruct", "t4", "offline", None, 5.0 / 800, "offline_duration_per_token",
     160.0, 310.0 / 800, 15.0, 200.0, 0.08, 4.955, "fp16"),
    # (0.006 + 0.0055 + 0.006 + 0.0064) / 4; the 1-token request is left out
    ("Qwen/Qwen2.5-7B-Instruct", "h100-nvl-94gb", "server", 0.017, 0.005975, "server_decode_per_request",
     700 / 301.0, 28444.5 / 700, 14.0, 140.0, 0.03, 0.862, "auto"),
    # (0.012 + 0.0124 + 0.0118 + 0.012 + 0.0126) / 5
    ("Qwen/Qwen2.5-7B-Instruct", "a100-sxm4-40gb", "server", 0.33, 0.01216, "server_decode_per_request",
     1006 / 302.0, 57380.0 / 1006, 14.0, 1006 / 6, 0.05, 12.53 / 6, "auto"),
    # (5.814/255 + 4.05/180 + 0.023/1 + 2.088/90) / 4 = (0.0228 + 0.0225 + 0.023 + 0.0232) / 4
    ("meta-llama/Llama-3.1-8B-Instruct", "v100-sxm2-32gb", "server", 0.33, 0.022875, "server_decode_per_request",
     530 / 300.9, 54312.45 / 530, 14.25, 132.5, 0.07375, 3.0675, "fp16"),
]


def test_wattcounts_subset_fixture_gives_hand_computed_values(catalogs):
    prepared = _prepare(SUBSET_SAMPLE.name, SUBSET_SAMPLE.read_bytes(), catalogs)
    assert prepared.format == "wattcounts_subset"
    frame = prepared.frame
    assert len(frame) == len(SUBSET_EXPECTED)
    for i, exp in enumerate(SUBSET_EXPECTED):
        row = frame.iloc[i]
        llm, gpu, scenario, qps, itl, itl_def, tput, ept, inp, out, ttft, e2e, precision = exp
        assert (row["llm_id"], row["gpu_id"], row["scenario"], row["itl_definition"], row["precision"]) == (
            llm, gpu, scenario, itl_def, precision), f"row {i + 1}"
        if qps is None:
            assert math.isnan(row["request_rate_qps"])
        else:
            assert row["request_rate_qps"] == qps
        for column, value in (("itl_s", itl), ("throughput_tok_s", tput), ("energy_per_token_j", ept),
                              ("input_tokens", inp), ("output_tokens", out), ("ttft_s", ttft),
                              ("e2e_latency_s", e2e)):
            assert row[column] == pytest.approx(value, rel=1e-9), f"row {i + 1}, {column}"
    assert frame["power_w"].tolist() == [330.0, 62.0, 94.5, 190.0, 180.5]
    assert frame["source_id"].eq("wattcounts_upload").all()
    assert frame["framework_version"].eq("0.14.1").all()


def _subset_row(**changes) -> bytes:
    text = SUBSET_SAMPLE.read_text().splitlines()
    frame = pd.read_csv(SUBSET_SAMPLE, dtype=str, keep_default_na=False).iloc[[2]]
    for k, v in changes.items():
        frame[k] = v
    return (text[0] + "\n" + frame.to_csv(index=False, header=False)).encode()


def test_subset_run_without_tokens_is_skipped_with_a_warning(catalogs):
    data = SUBSET_SAMPLE.read_bytes() + _subset_row(generation_tokens_total="0").split(b"\n", 1)[1]
    prepared = _prepare("s.csv", data, catalogs)
    assert len(prepared.frame) == 5
    assert any("generation_tokens_total = 0" in w and "row 6" in w for w in prepared.warnings)


def test_subset_file_whose_runs_all_have_no_tokens_is_rejected(catalogs):
    with pytest.raises(ValidationError, match="no runs to import: 1 run with generation_tokens_total = 0"):
        _prepare("s.csv", _subset_row(generation_tokens_total="0"), catalogs)


def test_subset_lists_of_different_lengths_are_rejected(catalogs):
    with pytest.raises(ValidationError) as info:
        _prepare("s.csv", _subset_row(request_generation_tokens="[201, 121]"), catalogs)
    assert info.value.issues[0].row == 1
    assert "differ in length" in str(info.value)


def test_subset_list_with_text_is_rejected_naming_the_column(catalogs):
    with pytest.raises(ValidationError) as info:
        _prepare("s.csv", _subset_row(time_to_first_token_seconds_events="[0.03, fast]"), catalogs)
    issue = info.value.issues[0]
    assert (issue.row, issue.column) == (1, "time_to_first_token_seconds_events")


# ----------------------------------------------------------------------------------------------------------------
# The public source files
def test_raw_source_files_are_detected_and_parsed(catalogs):
    wc = _prepare("x.csv", (RAW_DIR / "wattcounts_via_cyx012113" / "wattcounts_experiments.csv").read_bytes(),
                  catalogs)
    assert wc.format == "wattcounts_experiments" and len(wc.frame) == 4798
    assert wc.frame["llm_id"].nunique() == 49 and wc.frame["gpu_id"].nunique() == 8
    assert (wc.frame["scenario"] == "offline").sum() == 1598
    offline = wc.frame[wc.frame["scenario"] == "offline"]
    np.testing.assert_allclose(offline["itl_s"], 1 / offline["throughput_tok_s"])

    v1_path = RAW_DIR / "mlenergy_v1_legacy" / "A100_chat_benchmark.csv"
    v1 = _prepare(v1_path.name, v1_path.read_bytes(), catalogs)
    assert v1.format == "mlenergy_v1" and len(v1.frame) == 21
    assert v1.frame["gpu_id"].eq("a100-sxm4-40gb").all()
    # power = energy / latency, first row BAIR/koala-13b
    assert v1.frame["power_w"].iloc[0] == pytest.approx(2144.8338435191445 / 12.1433556952537)

    argonne = _prepare("p.csv", (RAW_DIR / "argonne_llm_inference_bench" / "Fig_16_a_b_power_results.csv")
                       .read_bytes(), catalogs)
    assert argonne.format == "argonne" and len(argonne.frame) == 48
    assert argonne.frame["power_w"].iloc[0] == pytest.approx(222.1222711864407)  # mW -> W

    v2_path = (RAW_DIR / "mlenergy_v2" / "llm_text_generation" / "chat" / "A100-SXM4-40GB" / "google" /
               "gemma-2-27b-it" / "bs128+tp4+pp1.json")
    v2 = _prepare(v2_path.name, v2_path.read_bytes(), catalogs)
    assert v2.format == "mlenergy_v2" and len(v2.frame) == 1
    row = v2.frame.iloc[0]
    assert row["power_w"] == pytest.approx(230.644433524673 / 392.47133333333335 * 1051.3354539260472 / 4)
    assert row["itl_s"] == pytest.approx(0.11220224938943191)
    assert (row["gpu_id"], row["num_gpus"]) == ("a100-sxm4-40gb", 4)


def test_mlenergy_v1_needs_the_gpu_in_the_file_name(catalogs):
    data = (RAW_DIR / "mlenergy_v1_legacy" / "A100_chat_benchmark.csv").read_bytes()
    with pytest.raises(ValidationError, match="file name"):
        _prepare("benchmark.csv", data, catalogs)


# ----------------------------------------------------------------------------------------------------------------
# Canonical CSV
def test_template_is_a_valid_canonical_file(catalogs):
    prepared = _prepare("template.csv", canonical_template().encode(), catalogs)
    assert prepared.format == "canonical" and len(prepared.frame) == 2
    assert prepared.frame["gpu_id"].tolist() == ["l40s", "h100-nvl-94gb"]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiters_are_sniffed_from_the_header(catalogs, delimiter):
    rows = ["Qwen/Qwen2.5-7B-Instruct,NVIDIA L4,offline,70.5", "Qwen/Qwen2.5-7B-Instruct,Tesla T4,server,40"]
    data = _canonical(rows).decode().replace(",", delimiter).encode()
    frame = _prepare("d.csv", data, catalogs).frame
    assert frame["gpu_id"].tolist() == ["l4", "t4"]
    assert frame["power_w"].tolist() == [70.5, 40.0]


def test_quoted_fields_crlf_bom_and_blank_lines(catalogs):
    data = ('\ufeffllm,gpu,scenario,power_w,notes\r\n'
            'Qwen/Qwen2.5-7B-Instruct,NVIDIA L4,offline,70.5,"a note, with a comma"\r\n'
            '\r\n'
            'Qwen/Qwen2.5-7B-Instruct,NVIDIA L4,offline,71.5,"two\nlines and ""quotes"""\r\n').encode()
    frame = _prepare("q.csv", data, catalogs).frame
    assert frame["notes"].tolist() == ["a note, with a comma", 'two\nlines and "quotes"']


@pytest.mark.parametrize(
    "bad_line, line_no, fields",
    [("Qwen/Qwen2.5-7B-Instruct,NVIDIA L4,offline", 3, 3),  # a field short
     ("Qwen/Qwen2.5-7B-Instruct,NVIDIA L4,offline,70,5", 3, 5)],  # decimal comma: one field too many
)
def test_rows_that_do_not_match_the_header_are_rejected_naming_the_line(catalogs, bad_line, line_no, fields):
    data = _canonical(["Qwen/Qwen2.5-7B-Instruct,NVIDIA L4,offline,70.5", bad_line])
    with pytest.raises(ValidationError) as info:
        _prepare("f.csv", data, catalogs)
    message = str(info.value)
    assert "\n" not in message
    assert f"line {line_no} has {fields} fields where the header has 4" in message
    assert info.value.issues[0].row == 2


def test_text_columns_stay_text(catalogs):
    data = _canonical(["Qwen/Qwen2.5-7B-Instruct,NVIDIA L4,offline,70.5,0.10,007",
                       "Qwen/Qwen2.5-7B-Instruct,NVIDIA L4,offline,70.6,1,8"],
                      header="llm,gpu,scenario,power_w,framework_version,campaign")
    frame = _prepare("t.csv", data, catalogs).frame
    assert frame["framework_version"].tolist() == ["0.10", "1"]
    assert frame["campaign"].tolist() == ["007", "8"]


def test_llm_id_and_gpu_id_headers_are_accepted_and_named_in_messages(catalogs):
    data = _canonical(["Qwen/Qwen2.5-7B-Instruct,A100,offline,70.5"], header="llm_id,gpu_id,scenario,power_w")
    with pytest.raises(ValidationError) as info:
        _prepare("ids.csv", data, catalogs)
    assert info.value.issues[0].column == "gpu_id"
    data = _canonical(["Qwen/Qwen2.5-7B-Instruct,l4,offline,70.5"], header="llm_id,gpu_id,scenario,power_w")
    assert _prepare("ids.csv", data, catalogs).frame["gpu_id"].tolist() == ["l4"]


def test_reserved_source_ids_cannot_be_claimed(catalogs):
    data = _canonical(["Qwen/Qwen2.5-7B-Instruct,NVIDIA L4,offline,70.5,wattcounts"],
                      header="llm,gpu,scenario,power_w,source_id")
    with pytest.raises(ValidationError, match="reserved"):
        _prepare("r.csv", data, catalogs)


def test_every_problem_is_listed_with_row_and_column(catalogs):
    data = _canonical([
        "Qwen/Qwen2.5-7B-Instruct,NVIDIA L4,offline,70.5,0.01",
        "Qwen/Qwen2.5-7B-Instruct,NVIDIA L4,offline,-3,0.01",
        "Qwen/Qwen2.5-7B-Instruct,H100,offline,70,0.01",
        "Qwen/Qwen2.5-7B-Instruct,NVIDIA L4,batch,70,0",
    ], header="llm,gpu,scenario,power_w,itl_s")
    with pytest.raises(ValidationError) as info:
        _prepare("m.csv", data, catalogs)
    found = {(i.row, i.column) for i in info.value.issues}
    assert found == {(2, "power_w"), (3, "gpu"), (4, "scenario"), (4, "itl_s")}
    assert info.value.total == 4
    assert str(info.value).startswith("rejected: row 2, column 'power_w': power must be positive, found -3")
    assert str(info.value).endswith("(and 3 more problems)")


def test_power_limit_uses_each_rows_gpu(catalogs):
    # the T4's TDP is 70 W: 150 W is more than twice it; the L40S (350 W) allows it
    data = _canonical(["Qwen/Qwen2.5-7B-Instruct,NVIDIA L40S,offline,150",
                       "Qwen/Qwen2.5-7B-Instruct,Tesla T4,offline,150"])
    with pytest.raises(ValidationError) as info:
        _prepare("p.csv", data, catalogs)
    assert [(i.row, i.column) for i in info.value.issues] == [(2, "power_w")]
    assert "above twice the GPU's TDP (70 W)" in str(info.value)


def test_unknown_formats_and_json(catalogs):
    with pytest.raises(ValidationError, match="unrecognised format"):
        _prepare("x.csv", b"a,b,c\n1,2,3\n", catalogs)
    with pytest.raises(ValidationError, match="invalid JSON"):
        _prepare("x.json", b'{"Model": ', catalogs)
    with pytest.raises(ValidationError, match="unrecognised JSON"):
        _prepare("x.json", b'[{"a": 1}]', catalogs)


def test_fixture_path_is_committed():
    assert SUBSET_SAMPLE.is_file() and SUBSET_SAMPLE.stat().st_size < 10_000
    assert Path(SUBSET_SAMPLE).read_text().count("\n") == 6


# Import one module of the core in a fresh interpreter, without the package's __init__ (which imports the whole
# public API), and list the core modules that came with it.
_LOADED_WITH = """
import json, sys, types
pkg = types.ModuleType("wattgpu_core")
pkg.__path__ = [sys.argv[1]]
sys.modules["wattgpu_core"] = pkg
__import__(sys.argv[2])
print(json.dumps(sorted(m for m in sys.modules if m.startswith("wattgpu_core."))))
"""


def _loaded_with(module: str) -> list[str]:
    core = Path(wattgpu_core.__file__).parent
    out = subprocess.run([sys.executable, "-c", _LOADED_WITH, str(core), module], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def _imports_in_source(module: str) -> set[str]:
    """Every module an import statement of ``module``'s source names, in functions too (relative ones resolved)."""
    path = Path(wattgpu_core.__file__).parent.joinpath(*module.split(".")[1:]).with_suffix(".py")
    if not path.is_file():
        path = path.with_suffix("") / "__init__.py"
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            name = f"{base}.{node.module}" if node.level and node.module else (base if node.level else node.module)
            found |= {name} | {f"{name}.{a.name}" for a in node.names}
    return found


def test_the_store_depends_on_no_importer():
    """The store takes prepared rows (parsed.py) and knows the sources (sources.py), but importing it, and
    everything it imports, loads no parser, nor names one in any import statement (lazy imports included)."""
    loaded = _loaded_with("wattgpu_core.store")
    assert {"wattgpu_core.store", "wattgpu_core.parsed", "wattgpu_core.sources"} <= set(loaded)
    assert [m for m in loaded if m.startswith("wattgpu_core.importers")] == []
    for module in loaded:
        named = {m for m in _imports_in_source(module) if m.startswith("wattgpu_core.importers")}
        assert not named, f"{module} imports {sorted(named)}"
    # the check sees a parser where there is one: ingest reads files
    assert "wattgpu_core.importers.canonical" in _loaded_with("wattgpu_core.ingest")
    assert "wattgpu_core.importers.parse" in _imports_in_source("wattgpu_core.ingest")
