"""User-defined catalog entries: a GPU from specs typed by hand, an LLM from its Hugging Face ``config.json``.

Both functions validate what the user gave and return one catalog row (a dict with the store's column names) that
``Store.add_gpu`` / ``Store.add_llm`` accept; the row is flagged ``user_defined`` by the store. Problems raise
:class:`CustomEntryError` with a message a person can act on ("memory bandwidth must be between 50 and 30000
GB/s"). An LLM's parameter count is computed from its config (embeddings, attention, MLP or mixture-of-experts
feed-forward, norms), giving total and active parameters for MoE models.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .catalog import finish_llm_frame
from .errors import WattGPUError
from .schema import GPU_COLUMNS, LLM_COLUMNS, names


class CustomEntryError(WattGPUError):
    """A custom GPU spec or LLM config that cannot be used; the message says what to fix."""


# ----------------------------------------------------------------------------------------------------------------
# GPUs
@dataclass(frozen=True)
class SpecField:
    name: str  # catalog column
    label: str  # what the form shows, unit included
    required: bool
    low: float
    high: float
    default: float | None = None
    help: str = ""


GPU_SPEC_FIELDS: tuple[SpecField, ...] = (
    SpecField("memory_size_gb", "Memory (GB)", True, 1, 2048, 80.0),
    SpecField("memory_bandwidth_gb_s", "Memory bandwidth (GB/s)", True, 50, 30000, 2000.0),
    SpecField("fp16_tensor_dense_tflops", "FP16 tensor TFLOPS (dense)", True, 1, 20000, 300.0,
              "Dense (not sparse) FP16 tensor-core throughput from the datasheet"),
    SpecField("tdp_w", "TDP / max board power (W)", True, 10, 3000, 400.0),
    SpecField("base_clock_mhz", "Base clock (MHz)", False, 100, 5000, None),
    SpecField("boost_clock_mhz", "Boost clock (MHz)", False, 100, 5000, None),
    SpecField("transistor_count_m", "Transistors (millions)", False, 100, 1_000_000, None),
    SpecField("release_year", "Release year", False, 2010, 2040, None),
)
MEMORY_TYPES = ("HBM3e", "HBM3", "HBM2e", "HBM2", "GDDR7", "GDDR6X", "GDDR6", "LPDDR5X")
FORM_FACTORS = ("SXM", "PCIe", "PCIe (NVL)", "Superchip")


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", str(text).strip().lower()).strip("-")
    return slug[:60]


def _number(value: Any, spec: SpecField) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if spec.required:
            raise CustomEntryError(f"{spec.label} is required")
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CustomEntryError(f"{spec.label} must be a number, got {value!r}") from None
    if math.isnan(number):
        if spec.required:
            raise CustomEntryError(f"{spec.label} is required")
        return None
    if not spec.low <= number <= spec.high:
        raise CustomEntryError(f"{spec.label} must be between {spec.low:g} and {spec.high:g}, got {number:g}")
    return number


def gpu_from_specs(specs: dict, existing_ids: set[str] | frozenset[str] = frozenset()) -> dict:
    """Validate hand-entered GPU specs and return a GPU catalog row (``gpu_id`` is ``custom-<name>``)."""
    name = str(specs.get("name") or "").strip()
    if not name:
        raise CustomEntryError("give the GPU a name (e.g. 'NVIDIA B200 air-cooled')")
    if len(name) > MAX_NAME_CHARS or any(not ch.isprintable() for ch in name):
        raise CustomEntryError(f"the GPU name must be at most {MAX_NAME_CHARS} printable characters on one line")
    gpu_id = "custom-" + slugify(name)
    if gpu_id == "custom-":
        raise CustomEntryError(f"the name {name!r} needs at least one letter or digit")
    if gpu_id in existing_ids:
        raise CustomEntryError(f"a GPU with id {gpu_id!r} already exists; choose another name")
    row: dict[str, Any] = dict.fromkeys(names(GPU_COLUMNS))
    for spec in GPU_SPEC_FIELDS:
        row[spec.name] = _number(specs.get(spec.name), spec)
    if row["base_clock_mhz"] and row["boost_clock_mhz"] and row["boost_clock_mhz"] < row["base_clock_mhz"]:
        raise CustomEntryError("the boost clock must not be below the base clock")
    memory_type = str(specs.get("memory_type") or "").strip() or None
    form_factor = str(specs.get("form_factor") or "").strip() or "PCIe"
    row.update(
        gpu_id=gpu_id,
        name=name,
        nvml_name=name,
        vendor="NVIDIA",
        architecture=str(specs.get("architecture") or "").strip() or None,
        generation="User-defined",
        form_factor=form_factor,
        form_factor_class=form_factor if form_factor in FORM_FACTORS else "PCIe",
        segment="data-centre",
        memory_type=memory_type,
        aliases="",
        source="user-defined (entered in the app)",
        value_sources="all values entered by the user",
        notes="user-defined GPU: specs not checked against a datasheet",
    )
    # The paper's FP16 feature is the dense tensor rate; BF16 is the same on every NVIDIA part it covers.
    row["bf16_tensor_dense_tflops"] = row["fp16_tensor_dense_tflops"]
    return row


# ----------------------------------------------------------------------------------------------------------------
# LLMs from config.json
_KEYS = {
    "num_layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
    "hidden_size": ("hidden_size", "n_embd", "d_model", "dim"),
    "num_attention_heads": ("num_attention_heads", "n_head", "num_heads", "n_heads"),
    "num_key_value_heads": ("num_key_value_heads", "num_kv_heads", "n_head_kv", "multi_query_group_num"),
    "intermediate_size": ("intermediate_size", "n_inner", "ffn_dim", "ffn_hidden_size"),
    "vocab_size": ("vocab_size", "padded_vocab_size"),
    "max_position_embeddings": ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"),
    "num_experts": ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts"),
    "experts_per_token": ("num_experts_per_tok", "num_experts_per_token", "moe_topk", "top_k", "moe_top_k"),
    "moe_intermediate_size": ("moe_intermediate_size", "expert_intermediate_size"),
}
# Architectures whose MLP has no gate projection (two matrices, not three).
_UNGATED = {"gpt2", "gpt_neox", "gptj", "opt", "bloom", "falcon", "phi", "gpt_bigcode", "starcoder2", "mpt",
            "codegen", "stablelm_epoch"}
# Architectures with a learned position embedding table.
_LEARNED_POSITIONS = {"gpt2", "opt", "gpt_bigcode", "codegen"}
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def _pick(config: dict, field: str) -> Any:
    for key in _KEYS[field]:
        value = config.get(key)
        if value is not None and not isinstance(value, bool):
            return value
    return None


def _positive_int(config: dict, field: str, required: bool = True) -> int | None:
    value = _pick(config, field)
    if value is None:
        if required:
            raise CustomEntryError(
                f"config.json has no {field.replace('_', ' ')} (looked for {', '.join(_KEYS[field])}); "
                "is this a Hugging Face transformer config?")
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise CustomEntryError(f"config.json: {field} must be a whole number, got {value!r}") from None
    if number <= 0 or number != float(value):
        raise CustomEntryError(f"config.json: {field} must be a positive whole number, got {value!r}")
    return number


MAX_CONFIG_BYTES = 256 * 1024  # config.json is read as JSON data only (never executed), and bounded in size
MAX_NAME_CHARS = 80


def parse_config_json(data: bytes | str | dict) -> dict:
    """The config as a dict (a multimodal config's ``text_config`` is used); raises CustomEntryError."""
    if isinstance(data, dict):
        config = data
    else:
        if len(data) > MAX_CONFIG_BYTES:
            raise CustomEntryError(f"config.json is {len(data) / 1024:.0f} KB; a model's config.json is a few KB "
                                   f"(the limit is {MAX_CONFIG_BYTES // 1024} KB)")
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise CustomEntryError("config.json must be UTF-8 text") from None
        if not data.strip():
            raise CustomEntryError("the file is empty; upload the model's config.json")
        try:
            config = json.loads(data)
        except json.JSONDecodeError as exc:
            raise CustomEntryError(
                f"config.json is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    if not isinstance(config, dict):
        raise CustomEntryError("config.json must hold a JSON object ({...}), not a list or a value")
    for nested in ("text_config", "llm_config", "language_config"):
        inner = config.get(nested)
        if isinstance(inner, dict) and _pick(inner, "hidden_size") is not None:
            merged = dict(inner)
            merged.setdefault("torch_dtype", config.get("torch_dtype"))
            merged.setdefault("_name_or_path", config.get("_name_or_path"))
            merged.setdefault("tie_word_embeddings", config.get("tie_word_embeddings"))
            return merged
    return config


def count_parameters(config: dict) -> tuple[float, float]:
    """(total, active) parameters of a decoder-only transformer described by a Hugging Face config."""
    model_type = str(config.get("model_type") or "").lower()
    layers = _positive_int(config, "num_layers")
    hidden = _positive_int(config, "hidden_size")
    heads = _positive_int(config, "num_attention_heads")
    kv_heads = _positive_int(config, "num_key_value_heads", required=False)
    if kv_heads is None:
        kv_heads = 1 if config.get("multi_query") else heads
    head_dim = int(config.get("head_dim") or hidden // heads)
    vocab = _positive_int(config, "vocab_size")
    inter = _positive_int(config, "intermediate_size", required=False) or 4 * hidden
    gated = model_type not in _UNGATED
    bias = bool(config.get("attention_bias") or config.get("qkv_bias") or model_type in ("qwen2", "qwen2_moe")
                or model_type in _UNGATED)

    attn = hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim + heads * head_dim * hidden
    if bias:
        attn += heads * head_dim + 2 * kv_heads * head_dim + (hidden if model_type in _UNGATED else 0)
    norms = 2 * hidden

    def mlp(size: int) -> int:
        if gated:
            return 3 * hidden * size
        return 2 * hidden * size + size + hidden  # up and down projections with biases

    experts = _positive_int(config, "num_experts", required=False) or 0
    if experts > 1:
        per_tok = _positive_int(config, "experts_per_token", required=False)
        if per_tok is None:
            raise CustomEntryError("config.json describes a mixture of experts but not how many experts each token "
                                   "uses (num_experts_per_tok)")
        expert_size = _positive_int(config, "moe_intermediate_size", required=False) or inter
        shared = config.get("n_shared_experts") or config.get("num_shared_experts") or 0
        shared_size = int(config.get("shared_expert_intermediate_size") or 0) or int(shared) * expert_size
        router = hidden * experts + (hidden if config.get("shared_expert_intermediate_size") else 0)
        dense_layers = int(config.get("first_k_dense_replace") or 0)
        dense_layers += len(config.get("mlp_only_layers") or [])
        step = int(config.get("decoder_sparse_step") or 1)
        moe_layers = sum(1 for i in range(dense_layers, layers) if (i + 1) % step == 0)
        dense_layers = layers - moe_layers
        moe_total = experts * mlp(expert_size) + (mlp(shared_size) if shared_size else 0) + router
        moe_active = per_tok * mlp(expert_size) + (mlp(shared_size) if shared_size else 0) + router
        layer_total = moe_layers * (attn + norms + moe_total) + dense_layers * (attn + norms + mlp(inter))
        layer_active = moe_layers * (attn + norms + moe_active) + dense_layers * (attn + norms + mlp(inter))
    else:
        layer_total = layer_active = layers * (attn + norms + mlp(inter))

    embed = vocab * hidden
    tied = config.get("tie_word_embeddings")
    if tied is None:
        tied = model_type in _LEARNED_POSITIONS
    head = 0 if tied else vocab * hidden
    positions = 0
    if model_type in _LEARNED_POSITIONS:
        positions = (_positive_int(config, "max_position_embeddings", required=False) or 0) * hidden
    rest = embed + head + positions + hidden
    return (layer_total + rest) / 1e9, (layer_active + rest) / 1e9


def llm_from_config(data: bytes | str | dict, llm_id: str = "", existing_ids=frozenset()) -> dict:
    """Validate a Hugging Face ``config.json`` and return an LLM catalog row (parameters computed, MoE aware).

    ``llm_id`` is the model's repo id (``org/name``); when empty, the config's ``_name_or_path`` is used.
    """
    config = parse_config_json(data)
    llm_id = (llm_id or str(config.get("_name_or_path") or "")).strip()
    if not llm_id:
        raise CustomEntryError("give the model's Hugging Face id (org/name); this config.json does not name it")
    if not _REPO_ID.match(llm_id):
        raise CustomEntryError(f"{llm_id!r} is not a Hugging Face repo id of the form org/name")
    if llm_id in existing_ids:
        raise CustomEntryError(f"{llm_id} is already in the catalog; pick it from the list instead")
    total, active = count_parameters(config)
    experts = _positive_int(config, "num_experts", required=False) or 0
    is_moe = experts > 1
    model_type = str(config.get("model_type") or "").strip() or None
    heads = _positive_int(config, "num_attention_heads")
    kv = _positive_int(config, "num_key_value_heads", required=False) or (1 if config.get("multi_query") else heads)
    hidden = _positive_int(config, "hidden_size")
    row: dict[str, Any] = dict.fromkeys(names(LLM_COLUMNS))
    row.update(
        llm_id=llm_id,
        name=llm_id.split("/", 1)[1],
        family="User-defined",
        model_type=model_type,
        architecture_class="moe" if is_moe else "dense",
        is_moe=is_moe,
        total_params_b=round(total, 3),
        active_params_b=round(active, 3),
        num_layers=_positive_int(config, "num_layers"),
        hidden_size=hidden,
        intermediate_size=_positive_int(config, "intermediate_size", required=False),
        moe_intermediate_size=_positive_int(config, "moe_intermediate_size", required=False),
        num_attention_heads=heads,
        num_key_value_heads=kv,
        head_dim=int(config.get("head_dim") or hidden // heads),
        vocab_size=_positive_int(config, "vocab_size"),
        max_position_embeddings=_positive_int(config, "max_position_embeddings", required=False),
        num_experts=experts or None,
        experts_per_token=_positive_int(config, "experts_per_token", required=False) if is_moe else None,
        num_shared_experts=config.get("n_shared_experts") or config.get("num_shared_experts"),
        torch_dtype=config.get("torch_dtype") or config.get("dtype"),
        aliases="",
        source="user-defined (config.json uploaded in the app; parameters computed from the config)",
        notes="user-defined LLM",
    )
    if model_type is None:
        raise CustomEntryError("config.json has no model_type (e.g. \"llama\"); the models need it")
    finished = finish_llm_frame(pd.DataFrame([row])).iloc[0].to_dict()
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in finished.items()}
