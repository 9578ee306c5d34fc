"""The GPUs and LLMs the pages offer: labels for the pick lists, which GPUs have every spec the models need, and
the Compare page's GPU filters (memory, generation, form factor, TDP) in words and applied."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from wattgpu_core.ranking import rankable_gpus

from .formats import sig
from .url_state import PageState


def llm_label(row) -> str:
    """'Llama-3.1-8B-Instruct (meta-llama, 8.0B)'; user-defined LLMs are flagged."""
    params = row.get("total_params_b")
    size = f", {sig(params, 2):g}B" if params is not None and np.isfinite(params) else ""
    owner = str(row["llm_id"]).split("/", 1)[0]
    flag = " [user-defined]" if row.get("user_defined") else ""
    moe = " MoE" if row.get("is_moe") else ""
    return f"{row['name']} ({owner}{size}{moe}){flag}"


def llm_choices(llms: pd.DataFrame) -> dict[str, str]:
    """{llm_id: label} for the LLMs the models can use (architecture known), largest catalog first by name."""
    usable = llms[llms["metadata_complete"].astype(bool)]
    usable = usable.sort_values(["user_defined", "name"], key=lambda s: s.str.lower() if s.dtype == object else s)
    return {r["llm_id"]: llm_label(r) for r in usable.to_dict("records")}


def gpu_label(row) -> str:
    flag = " [user-defined]" if row.get("user_defined") else ""
    return f"{row['name']}{flag}"


def gpu_choices(gpus: pd.DataFrame) -> dict[str, str]:
    usable, _ = rankable_gpus(gpus)
    return {r["gpu_id"]: gpu_label(r) for r in usable.sort_values("name").to_dict("records")}


@dataclass(frozen=True)
class FilterOptions:
    generations: tuple[str, ...]
    form_factors: tuple[str, ...]
    max_memory_gb: float
    tdp_range: tuple[float, float]


def filter_options(gpus: pd.DataFrame) -> FilterOptions:
    usable, _ = rankable_gpus(gpus)
    return FilterOptions(
        generations=tuple(sorted(usable["generation"].fillna("Other").unique())),
        form_factors=tuple(sorted(usable["form_factor_class"].fillna("Other").unique())),
        max_memory_gb=float(usable["memory_size_gb"].max()),
        tdp_range=(float(usable["tdp_w"].min()), float(usable["tdp_w"].max())),
    )


def active_filters(state: PageState, options: FilterOptions) -> list[str]:
    """The GPU filters of ``state`` that narrow the list, in words ('memory ≥ 40 GB', 'Hopper or Blackwell')."""
    out = []
    if state.mem > 0:
        out.append(f"memory ≥ {state.mem:g} GB")
    gen = [g for g in state.gen if g in options.generations]
    if gen:
        out.append(" or ".join(gen))
    form = [f for f in state.form if f in options.form_factors]
    if form:
        out.append(" or ".join(form))
    if state.tdp != (0.0, 0.0) and tuple(state.tdp) != tuple(options.tdp_range):
        out.append(f"TDP {state.tdp[0]:,.0f}–{state.tdp[1]:,.0f} W")
    return out


def apply_filters(gpus: pd.DataFrame, state: PageState) -> pd.DataFrame:
    keep = gpus["memory_size_gb"].fillna(0) >= state.mem
    if state.gen:
        keep &= gpus["generation"].fillna("Other").isin(state.gen)
    if state.form:
        keep &= gpus["form_factor_class"].fillna("Other").isin(state.form)
    if state.tdp != (0.0, 0.0):
        keep &= gpus["tdp_w"].between(*state.tdp)
    return gpus[keep].reset_index(drop=True)
