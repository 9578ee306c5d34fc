"""The project's own data schema: tables, columns, types and units, in one place.

The store builds its DuckDB tables from these definitions, the importers produce DataFrames with exactly these
columns, and the README's canonical CSV format is generated from ``CANONICAL_COLUMNS``. Units are in the names.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str  # DuckDB type
    doc: str
    required: bool = False  # required in the canonical upload CSV

    @property
    def is_numeric(self) -> bool:
        return self.sql_type in {"DOUBLE", "INTEGER", "BIGINT"}


# --------------------------------------------------------------------------------------------------------------
# GPUs
GPU_COLUMNS: tuple[Column, ...] = (
    Column("gpu_id", "VARCHAR", "catalog slug, unique (e.g. h100-nvl-94gb)"),
    Column("name", "VARCHAR", "marketing name"),
    Column("nvml_name", "VARCHAR", "name printed by nvidia-smi / NVML"),
    Column("vendor", "VARCHAR", "NVIDIA, AMD or Intel"),
    Column("architecture", "VARCHAR", "e.g. Hopper"),
    Column("generation", "VARCHAR", "TechPowerUp generation string"),
    Column("form_factor", "VARCHAR", "SXM, PCIe, NVL, ..."),
    Column("form_factor_class", "VARCHAR", "SXM / PCIe / Superchip / OAM (for filters)"),
    Column("segment", "VARCHAR", "data-centre / workstation / consumer"),
    Column("release_year", "DOUBLE", "year"),
    Column("process_nm", "DOUBLE", "nm"),
    Column("transistor_count_m", "DOUBLE", "millions"),
    Column("die_size_mm2", "DOUBLE", "mm^2"),
    Column("sm_count", "DOUBLE", "streaming multiprocessors"),
    Column("base_clock_mhz", "DOUBLE", "MHz"),
    Column("boost_clock_mhz", "DOUBLE", "MHz"),
    Column("memory_type", "VARCHAR", "HBM3, GDDR6, ..."),
    Column("memory_size_gb", "DOUBLE", "GB"),
    Column("memory_bus_bits", "DOUBLE", "bits"),
    Column("memory_bandwidth_gb_s", "DOUBLE", "GB/s"),
    Column("l2_cache_mb", "DOUBLE", "MB"),
    Column("tdp_w", "DOUBLE", "W, thermal design power / max board power"),
    Column("fp16_tensor_dense_tflops", "DOUBLE", "dense FP16 tensor TFLOPS"),
    Column("bf16_tensor_dense_tflops", "DOUBLE", "dense BF16 tensor TFLOPS"),
    Column("fp8_tensor_dense_tflops", "DOUBLE", "dense FP8 tensor TFLOPS"),
    Column("fp32_tflops", "DOUBLE", "non-tensor FP32 TFLOPS"),
    Column("idle_power_w", "DOUBLE", "measured idle power, W (Watt Counts, where known)"),
    Column("interconnect", "VARCHAR", "GPU-GPU link"),
    Column("aliases", "VARCHAR", "other names that resolve to this GPU, '|'-separated"),
    Column("source", "VARCHAR", "where the row's values come from"),
    Column("value_sources", "VARCHAR", "column=source key for every value"),
    Column("notes", "VARCHAR", "caveats"),
    Column("user_defined", "BOOLEAN", "entered by a user, not from the catalog"),
    Column("batch_id", "VARCHAR", "import batch that added the row"),
)

# The WattGPU paper's own GPU feature values (gpu_features.csv + the notebook's TFLOPS table), used by
# ``evaluate --paper-compat`` so that the reproduction uses exactly the paper's inputs.
PAPER_GPU_COLUMNS: tuple[Column, ...] = (
    Column("gpu_id", "VARCHAR", "catalog gpu_id"),
    Column("paper_gpu_type", "VARCHAR", "gpu_type key in the paper's table (NVML name)"),
    Column("paper_gpu_db_name", "VARCHAR", "gpu_db_name in the paper's table"),
    Column("base_clock_mhz", "DOUBLE", "MHz"),
    Column("boost_clock_mhz", "DOUBLE", "MHz"),
    Column("transistor_count_m", "DOUBLE", "millions"),
    Column("memory_size_gb", "DOUBLE", "GB"),
    Column("memory_bandwidth_gb_s", "DOUBLE", "GB/s"),
    Column("memory_type", "VARCHAR", ""),
    Column("tdp_w", "DOUBLE", "W"),
    Column("fp16_tensor_dense_tflops", "DOUBLE", "the notebook's hard-coded TFLOPS"),
    Column("release_year", "DOUBLE", "year"),
    Column("source", "VARCHAR", ""),
)

# --------------------------------------------------------------------------------------------------------------
# LLMs
LLM_COLUMNS: tuple[Column, ...] = (
    Column("llm_id", "VARCHAR", "Hugging Face repo id"),
    Column("name", "VARCHAR", "short display name"),
    Column("family", "VARCHAR", "grouping label"),
    Column("model_type", "VARCHAR", "config.json model_type"),
    Column("architecture_class", "VARCHAR", "dense / moe / ssm / hybrid"),
    Column("is_moe", "BOOLEAN", "mixture of experts"),
    Column("total_params_b", "DOUBLE", "billions"),
    Column("active_params_b", "DOUBLE", "billions active per token"),
    Column("num_layers", "DOUBLE", ""),
    Column("hidden_size", "DOUBLE", ""),
    Column("intermediate_size", "DOUBLE", ""),
    Column("moe_intermediate_size", "DOUBLE", ""),
    Column("num_attention_heads", "DOUBLE", ""),
    Column("num_key_value_heads", "DOUBLE", ""),
    Column("head_dim", "DOUBLE", ""),
    Column("vocab_size", "DOUBLE", ""),
    Column("max_position_embeddings", "DOUBLE", ""),
    Column("num_experts", "DOUBLE", "routed experts"),
    Column("experts_per_token", "DOUBLE", ""),
    Column("num_shared_experts", "DOUBLE", ""),
    Column("torch_dtype", "VARCHAR", "checkpoint dtype"),
    Column("metadata_complete", "BOOLEAN", "all architecture fields the models need are known"),
    Column("aliases", "VARCHAR", "other names that resolve to this LLM, '|'-separated"),
    Column("source", "VARCHAR", "where the row's values come from"),
    Column("notes", "VARCHAR", "caveats"),
    Column("user_defined", "BOOLEAN", "entered by a user"),
    Column("batch_id", "VARCHAR", "import batch that added the row"),
)

# --------------------------------------------------------------------------------------------------------------
# Measured runs: one row per measured run (one repeat of one configuration).
ITL_DEFINITIONS: dict[str, str] = {
    "offline_duration_per_token": "offline: measurement duration / output tokens generated (1/throughput), "
    "as the WattGPU paper defines offline ITL",
    "server_decode_per_request": "server: mean over requests with >= 2 tokens of (e2e - TTFT)/(tokens - 1), "
    "the WattGPU paper's exact server ITL",
    "server_e2e_per_token": "server: mean end-to-end latency per output token, TTFT included "
    "(the Watt Counts copy has no per-request arrays)",
    "tpot_mean": "mean time per output token reported by the benchmark (ML.ENERGY v2 'Avg TPOT')",
    "batch_latency_per_step": "batch latency / output tokens per request (prefill included; Argonne)",
    "reported": "ITL as reported by the uploader",
}

SCENARIOS = ("offline", "server")

RUN_COLUMNS: tuple[Column, ...] = (
    Column("run_id", "VARCHAR", "content fingerprint of the run (idempotent ingest)"),
    Column("batch_id", "VARCHAR", "import batch"),
    Column("source_id", "VARCHAR", "data source"),
    Column("license", "VARCHAR", "license of the source data"),
    Column("llm_id", "VARCHAR", "catalog LLM", required=True),
    Column("gpu_id", "VARCHAR", "catalog GPU", required=True),
    Column("llm_name_raw", "VARCHAR", "LLM name as written in the source"),
    Column("gpu_name_raw", "VARCHAR", "GPU name as written in the source"),
    Column("scenario", "VARCHAR", "offline (batch) or server (requests arriving over time)", required=True),
    Column("batch_size", "DOUBLE", "offline batch size or maximum running batch (max-num-seqs), where known"),
    Column("mean_batch_size", "DOUBLE", "mean running batch observed, where reported"),
    Column("max_concurrency", "DOUBLE", "server: maximum concurrent requests, where known"),
    Column("request_rate_qps", "DOUBLE", "server: request arrival rate, requests/s"),
    Column("input_tokens", "DOUBLE", "mean prompt tokens per request"),
    Column("output_tokens", "DOUBLE", "mean output tokens per request"),
    Column("num_requests", "DOUBLE", "requests in the run"),
    Column("framework", "VARCHAR", "serving framework, e.g. vLLM"),
    Column("framework_version", "VARCHAR", "e.g. 0.14.1"),
    Column("precision", "VARCHAR", "weights precision: fp16, bf16, auto"),
    Column("num_gpus", "INTEGER", "GPUs serving the model (tensor x pipeline parallel)"),
    Column("tensor_parallel", "INTEGER", "tensor-parallel degree"),
    Column("iteration", "INTEGER", "repeat index within the campaign"),
    Column("campaign", "VARCHAR", "campaign / block label within the source"),
    Column("power_w", "DOUBLE", "mean power per GPU over the run, W", required=True),
    Column("itl_s", "DOUBLE", "inter-token latency, s (see itl_definition)"),
    Column("itl_definition", "VARCHAR", "how itl_s was defined: " + ", ".join(ITL_DEFINITIONS)),
    Column("energy_per_token_j", "DOUBLE", "GPU energy (all GPUs) per output token, J"),
    Column("throughput_tok_s", "DOUBLE", "output tokens per second (whole system)"),
    Column("ttft_s", "DOUBLE", "mean time to first token, s"),
    Column("e2e_latency_s", "DOUBLE", "mean end-to-end request latency, s"),
    Column("duration_s", "DOUBLE", "measurement window, s"),
    Column("gpu_energy_j", "DOUBLE", "GPU energy over the run (all GPUs), J"),
    Column("output_tokens_total", "DOUBLE", "output tokens generated in the run"),
    Column("notes", "VARCHAR", "caveats"),
)

SOURCE_COLUMNS: tuple[Column, ...] = (
    Column("source_id", "VARCHAR", "short id"),
    Column("name", "VARCHAR", "human name"),
    Column("url", "VARCHAR", "where it comes from"),
    Column("license", "VARCHAR", "license"),
    Column("attribution", "VARCHAR", "credit line"),
    Column("notes", "VARCHAR", ""),
    Column("batch_id", "VARCHAR", "import batch that added the source"),
)

BATCH_COLUMNS: tuple[Column, ...] = (
    Column("batch_id", "VARCHAR", "id"),
    Column("kind", "VARCHAR", "seed, upload, custom_gpu, custom_llm"),
    Column("source_id", "VARCHAR", "data source"),
    Column("file_name", "VARCHAR", "uploaded file name"),
    Column("file_sha256", "VARCHAR", "hash of the uploaded bytes"),
    Column("format", "VARCHAR", "detected importer format"),
    Column("imported_at", "TIMESTAMP", "UTC"),
    Column("n_runs", "INTEGER", "runs added"),
    Column("n_gpus", "INTEGER", "GPUs added"),
    Column("n_llms", "INTEGER", "LLMs added"),
    Column("notes", "VARCHAR", ""),
    Column("added_by", "VARCHAR", "who added it: the signed-in user, or cli:<user>@<host>"),
)

# Columns of the canonical CSV that users upload (the store fills run_id, batch_id, and license/source defaults).
CANONICAL_COLUMNS: tuple[Column, ...] = tuple(
    c for c in RUN_COLUMNS if c.name not in {"run_id", "batch_id", "llm_name_raw", "gpu_name_raw"}
)

# The identity of a run for de-duplication: everything measured or configured, but not where it came from.
RUN_IDENTITY_COLUMNS: tuple[str, ...] = tuple(
    c.name
    for c in RUN_COLUMNS
    if c.name not in {"run_id", "batch_id", "source_id", "license", "llm_name_raw", "gpu_name_raw", "notes"}
)


def names(columns: tuple[Column, ...]) -> list[str]:
    return [c.name for c in columns]


def column(columns: tuple[Column, ...], name: str) -> Column:
    for c in columns:
        if c.name == name:
            return c
    raise KeyError(name)
