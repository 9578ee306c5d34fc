"""Words the pages show for the core's names: column labels with units, the workload and model-set choices, split
and scenario names, and the help texts that explain them."""

from __future__ import annotations

from wattgpu_core.physics import PRECISIONS

LABELS: dict[str, str] = {
    "gpu_name": "GPU",
    "llm_name": "LLM",
    "energy_per_token_j": "Energy per token (J)",
    "energy_per_token_mj": "Energy per token (mJ)",
    "itl_ms": "ITL (ms)",
    "itl_s": "ITL (s)",
    "power_w": "Power (W)",
    "throughput_tok_s": "Throughput (tokens/s)",
    "memory_size_gb": "Memory (GB)",
    "memory_bandwidth_gb_s": "Memory bandwidth (GB/s)",
    "tdp_w": "TDP (W)",
    "fp16_tensor_dense_tflops": "FP16 TFLOPS (dense)",
    "generation": "Generation",
    "form_factor_class": "Form factor",
    "release_year": "Released",
    "architecture": "Architecture",
    "user_defined": "User-defined",
    "rank": "Rank",
    "on_frontier": "On Pareto frontier",
    "reason": "Why not ranked",
    "notes": "Notes",
    "gpu_seen": "GPU in training data",
    "llm_seen": "LLM in training data",
    "total_params_b": "Parameters (B)",
    "active_params_b": "Active parameters (B)",
    "family": "Family",
    "model_type": "Architecture type",
    "num_layers": "Layers",
    "hidden_size": "Hidden size",
    "num_attention_heads": "Attention heads",
    "num_key_value_heads": "KV heads",
    "is_moe": "Mixture of experts",
    "vendor": "Vendor",
    "segment": "Segment",
    "memory_type": "Memory type",
    "scenario": "Scenario",
    "batch_size": "Batch size",
    "request_rate_qps": "Request rate (req/s)",
    "input_tokens": "Input tokens",
    "output_tokens": "Output tokens",
    "source_id": "Source",
    "framework": "Framework",
    "n_runs": "Runs",
    "weights_gb": "Weights (GB)",
    "serving_stack": "Serving stack",
    "out_of_range": "Outside training range",
    "max_throughput_tok_s": "Capacity (tokens/s)",
    "saturated": "Saturated",
}


_INTERVAL_SUFFIXES = {"_lo": " low", "_hi": " high"}


def label(column: str) -> str:
    """Human label with unit for a column name (``power_w_lo`` -> 'Power (W) low')."""
    if column in LABELS:
        return LABELS[column]
    for suffix, words in _INTERVAL_SUFFIXES.items():
        if column.endswith(suffix) and column[: -len(suffix)] in LABELS:
            base = LABELS[column[: -len(suffix)]]
            return base.replace(" (", words + " (", 1) if " (" in base else base + words
    return column.replace("_", " ").capitalize()


ITL_HELP = ("Offline, ITL is the batch's time per generated token (1 / throughput), as the WattGPU paper defines "
            "it; in server mode it is the time between two tokens of one request.")


def latency_title(scenario: str) -> str:
    """What the latency figure means for a workload: offline it is the batch's time per output token."""
    return "ITL (batch, 1/throughput)" if scenario == "offline" else "ITL (≈ E2E / tokens)"


def latency_axis_title(scenario: str) -> str:
    return ("ITL (ms), batch: 1 / throughput" if scenario == "offline"
            else "ITL (ms), ≈ E2E latency / output tokens")


SCENARIO_CHOICES = {"offline": "Offline batch", "server": "Online server"}


PRECISION_CHOICES = PRECISIONS


TP_CHOICES = (1, 2, 4, 8)


MODEL_CHOICES = {"default": "WattGPU+ (recommended)", "paper": "Paper's XGBoost (reference)"}


MODEL_HELP = ("WattGPU+ is a calibrated physical model (roofline time per decode step, power between serving-idle "
              "and TDP) that takes batch size, request rate and token counts as inputs and reports 80% intervals; "
              "it measures better than the paper's XGBoost on unseen GPUs (see Cross-validation). The paper's "
              "models are kept as the reference.")


TARGET_TITLES = {"power": "Mean GPU power", "itl": "ITL (inter-token latency)"}


STRATEGY_LABELS = {"CV": "CV (unseen LLM-GPU pairs)", "LOGO": "LOGO (unseen GPU)", "LOLO": "LOLO (unseen LLM)",
                   "-": "no training (baseline)"}


SCENARIO_LABELS = {"offline": "Offline", "server": "Server"}


# The serving-stack choice for a stack WattGPU+ has no calibration for (predicted as the training stack, with widened
# intervals; the prediction's note says so).
OTHER_STACK = "another stack (no calibration)"
STACK_HELP = ("Stacks WattGPU+ is calibrated for (from measured runs of each); the first is the stack its models are "
              "trained on. For any other stack the prediction is the training stack's, with its interval widened by "
              "how far the calibrated stacks sit from it.")


def stack_caption(serving_stack: str, model_label: str, requested: str | None = None) -> str:
    """Which serving stack and model the numbers refer to (every prediction says it); ``requested`` the user's choice
    (:data:`OTHER_STACK`: a stack without calibration, predicted as vLLM 0.14)."""
    stack = serving_stack or "vLLM 0.14"
    if requested == OTHER_STACK:
        return (f"Predicted by {model_label} for vLLM 0.14, the training stack: your serving stack has no "
                "calibration, so the intervals are widened by how far the calibrated stacks sit from vLLM 0.14 "
                "(measure a few runs of your stack and upload them on the Data page to calibrate it).")
    if stack != "vLLM 0.14":
        return (f"Predicted by {model_label} for {stack}: the Watt Counts model (vLLM 0.14) with {stack}'s "
                "calibration, learnt from that stack's measured runs, and intervals at least as wide as the spread "
                "of those runs around it; one GPU per model replica unless stated.")
    return (f"Predicted by {model_label} for {stack}, one GPU per model replica unless stated, 16-bit weights, "
            "as measured in Watt Counts.")
