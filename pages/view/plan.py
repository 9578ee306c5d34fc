"""The Plan a deployment page: the ranked options shaped for display (key columns first), the Markdown export, the
breakdown of one option, the price editor, and the page's state as URL query parameters.

Column names and the plain-text table are the core's (``plan_table``), which the ``plan`` command prints too.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from wattgpu_core.deploy import HEADROOM, TRAFFIC_PRESETS, Traffic
from wattgpu_core.plan_table import LABELS, markdown_table, with_rank

from .formats import num
from .url_state import query_of, query_readers, split_list

TABLE_COLUMNS = ("rank", "gpu_name", "tensor_parallel", "precision", "replicas", "gpus_total", "ttft_s", "itl_ms",
                 "energy_per_token_j", "usd_per_mtok", "gco2e_per_mtok", "fits", "meets_slo",
                 "capacity_tok_s_per_replica", "power_w_per_gpu", "usd_per_gpu_hour", "notes")
ITL_HELP = ("ITL: mean time between output tokens, TTFT excluded (vLLM's TPOT/ITL), predicted at the operating "
            "load; TTFT: mean time to first token, prefill plus queueing wait at that load.")


def display_table(plan: pd.DataFrame) -> pd.DataFrame:
    """The ranked options for display: key columns first, readable names with units, numbers rounded."""
    out = with_rank(plan)[list(TABLE_COLUMNS)].copy()
    for c, digits in (("ttft_s", 2), ("itl_ms", 1), ("energy_per_token_j", 3), ("usd_per_mtok", 3),
                      ("gco2e_per_mtok", 0), ("capacity_tok_s_per_replica", 0), ("power_w_per_gpu", 0),
                      ("usd_per_gpu_hour", 2)):
        out[c] = out[c].round(digits)
    return out.rename(columns=LABELS)


def markdown_export(plan: pd.DataFrame, llm_id: str, traffic: Traffic, sources: Mapping[str, str],
                    top: int = 20) -> str:
    """A Markdown report: the question, the assumptions with their sources, the best options."""
    lines = [f"# Deployment plan for {llm_id}", "", f"Traffic: {traffic.describe()}.", "",
             "Assumptions:", ""]
    for key, text in sources.items():
        if not key.startswith("price:"):
            lines.append(f"- {key}: {text}")
    lines += ["", f"Replicas: fewest that keep every replica at most {HEADROOM:.0%} of its capacity.", "",
              markdown_table(with_rank(plan).head(top), ("rank", "gpu_name", "tensor_parallel", "precision",
                                                         "replicas", "gpus_total", "ttft_s", "itl_ms",
                                                         "energy_per_token_j", "usd_per_mtok", "gco2e_per_mtok",
                                                         "fits", "meets_slo")), ""]
    return "\n".join(lines)


def option_label(row: Mapping) -> str:
    return f"{row['gpu_name']} ×{int(row['tensor_parallel'])}, {row['precision']}"


def option_key(row: Mapping) -> str:
    """A stable id of an option (GPU id, GPUs per replica, precision), e.g. for a widget's value."""
    return f"{row['gpu_id']}|{int(row['tensor_parallel'])}|{row['precision']}"


def breakdown(row: Mapping, traffic: Traffic, costs) -> pd.DataFrame:
    """The chosen option's memory, capacity, power and cost, one quantity per row (what, value, how)."""
    gpus = row["gpus_total"]
    energy_cost = (row["fleet_power_kw"] * costs.pue * costs.usd_per_kwh) if np.isfinite(row["fleet_power_kw"]) \
        else float("nan")
    items = [
        ("Memory", "needed per replica", f"{num(row['memory_needed_gb'], '.1f')} GB",
         "weights + KV cache of the traffic + activations and runtime"),
        ("Memory", "available per replica", f"{num(row['memory_available_gb'], '.1f')} GB",
         f"margin {num(row['memory_margin_gb'], '.1f')} GB"),
        ("Memory", "KV cache capacity", f"{num(row['kv_capacity_tokens'], ',.0f')} tokens",
         f"largest batch at this context: {num(row['max_batch'], ',.0f')}"),
        ("Capacity", "per replica, meeting the targets", f"{num(row['capacity_tok_s_per_replica'], ',.0f')} tok/s",
         f"saturation throughput {num(row['max_throughput_tok_s'], ',.0f')} tok/s"),
        ("Capacity", "replicas", num(row["replicas"], ".0f"),
         f"each at most {HEADROOM:.0%} of capacity; {num(gpus, '.0f')} GPUs in total"),
        ("Capacity", "load per replica", f"{num(row['throughput_tok_s_per_replica'], ',.0f')} tok/s",
         f"mean batch {num(row['batch_per_replica'], '.1f')} (Little's law)"),
        ("Power", "per GPU at this load", f"{num(row['power_w_per_gpu'], '.0f')} W", "idle share included"),
        ("Power", "fleet GPU power", f"{num(row['fleet_power_kw'], '.2f')} kW",
         f"{num(row['energy_per_token_j'], '.3f')} J per output token (GPU only, no PUE)"),
        ("Cost", "GPU rental", f"${num(gpus * row['usd_per_gpu_hour'], ',.2f')} per hour",
         f"{num(gpus, '.0f')} GPUs × ${num(row['usd_per_gpu_hour'], '.2f')} per GPU-hour"),
        ("Cost", "electricity", f"${num(energy_cost, ',.2f')} per hour",
         f"fleet power × PUE {costs.pue:g} × ${costs.usd_per_kwh:g}/kWh"),
        ("Cost", "total", f"${num(row['usd_per_hour'], ',.2f')} per hour",
         f"${num(row['usd_per_mtok'], '.3f')} per million output tokens"),
        ("Carbon", "per million output tokens", f"{num(row['gco2e_per_mtok'], ',.0f')} gCO2e",
         f"{num(row['kwh_per_mtok'], '.3f')} kWh × {costs.gco2e_per_kwh:g} gCO2e/kWh"),
    ]
    return pd.DataFrame(items, columns=["Part", "Quantity", "Value", "How"])


# --------------------------------------------------------------------------------------------------------------
# Page state in the URL
@dataclass(frozen=True)
class PlanState:
    """The plan page's inputs as typed values; round-trips through URL query parameters (defaults left out)."""

    llm: str = "meta-llama/Llama-3.1-8B-Instruct"
    preset: str = "chat"
    rate: float = 5.0
    inp: int = 1000
    out: int = 300
    ttft: float = 2.0  # 0 = no target
    itl: float = 50.0  # ms; 0 = no target
    tp: int = 8  # largest GPUs per replica
    prec: tuple[str, ...] = ()
    kwh: float = -1.0  # < 0 = default
    pue: float = -1.0
    region: str = ""
    co2: float = -1.0
    prices: tuple[str, ...] = ()  # "gpu_id:usd_per_gpu_hour" overrides
    stack: str = ""  # serving stack ("" = the models' default stack)

    @property
    def traffic(self) -> Traffic:
        return Traffic(self.rate, self.inp, self.out, self.ttft or None, (self.itl / 1000.0) or None)

    @classmethod
    def from_query(cls, query: Mapping) -> PlanState:
        values = {}
        get, number = query_readers(query, cls())
        if get("llm"):
            values["llm"] = str(get("llm"))
        if get("preset") in (*TRAFFIC_PRESETS, "custom"):
            values["preset"] = get("preset")
        values["rate"] = number("rate", float, 0.001, 100000)
        values["inp"] = number("inp", int, 1, 1048576)
        values["out"] = number("out", int, 1, 1048576)
        values["ttft"] = number("ttft", float, 0, 3600)
        values["itl"] = number("itl", float, 0, 60000)
        values["tp"] = number("tp", int, 1, 8)
        for key in ("kwh", "pue", "co2"):
            values[key] = number(key, float, -1, 100000)
        if get("region"):
            values["region"] = str(get("region"))
        if get("stack") and str(get("stack")).strip():
            values["stack"] = str(get("stack")).strip()[:80]
        for key in ("prec", "prices"):
            values[key] = split_list(get(key))
        values["prices"] = tuple(p for p in values["prices"] if _price_item(p) is not None)
        return cls(**values)

    def price_overrides(self) -> dict[str, float]:
        return dict(item for item in map(_price_item, self.prices) if item is not None)

    def to_query(self) -> dict[str, str]:
        return query_of(self)

    def replace(self, **changes) -> PlanState:
        return dataclasses.replace(self, **changes)


def _price_item(text: str) -> tuple[str, float] | None:
    gpu_id, _, value = str(text).rpartition(":")
    try:
        price = float(value)
    except ValueError:
        return None
    return (gpu_id, price) if gpu_id and math.isfinite(price) and price >= 0 else None


def price_table(defaults, gpus: pd.DataFrame, overrides: Mapping[str, float]) -> pd.DataFrame:
    """One row per NVIDIA catalog GPU: its $/GPU-hour (the user's override, else the default, else empty) and
    where the value comes from, for the page's price editor."""
    vendor = gpus["vendor"].fillna("NVIDIA").str.upper() if "vendor" in gpus else pd.Series("NVIDIA", gpus.index)
    rows = []
    for gpu_id, name in gpus.loc[vendor.eq("NVIDIA").to_numpy(), ["gpu_id", "name"]].drop_duplicates().itertuples(
            index=False):
        a = defaults.gpu_prices.get(gpu_id)
        value = overrides.get(gpu_id, a.value if a else float("nan"))
        source = "given by you" if gpu_id in overrides else (a.cite() if a else "no listed price: no cost shown")
        rows.append({"gpu_id": gpu_id, "GPU": name, "$ per GPU-hour": value, "Source": source})
    out = pd.DataFrame(rows)
    return out.sort_values(["$ per GPU-hour", "GPU"], na_position="last").reset_index(drop=True)


def edited_prices(edited: pd.DataFrame, defaults) -> tuple[str, ...]:
    """The price editor's rows that differ from the defaults, as "gpu_id:value" items for the URL."""
    out = []
    for gpu_id, value in zip(edited["gpu_id"], edited["$ per GPU-hour"], strict=True):
        a = defaults.gpu_prices.get(gpu_id)
        if value is None or not np.isfinite(float(value)) or float(value) < 0:
            continue
        if a is None or abs(float(value) - a.value) > 1e-9:
            out.append(f"{gpu_id}:{float(value):g}")
    return tuple(out)
