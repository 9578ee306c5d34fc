"""Planning defaults: GPU rental prices, grid carbon intensity, electricity prices, PUE and embodied carbon.

The public tables in ``data/raw/planning`` (verbatim copies of ``../shared/data/planning``, provenance in its
SOURCES.md) and two hand tables transcribed from that SOURCES.md (``data/manual/planning_pue.csv``,
``data/manual/planning_embodied_carbon.csv``) become seed tables in ``data/seed/`` (:func:`build_planning_tables`,
run by ``build-seed``). Every seed row carries its source, its date (blank where the source gives none) and its
license. :func:`load_planning_defaults` reads the seed tables back as one immutable :class:`PlanningDefaults`.

Default rules (nothing is guessed; a GPU without a listed price gets no price):

- **$/GPU-hour** of a catalog GPU: the median, across providers, of each provider's cheapest *on-demand*
  $/GPU-hour for that GPU (spot, 1-year and 3-year rows are left out; providers listed with the value). Price rows
  map to catalog GPUs through ``data/manual/price_gpu_map.csv``; rows whose form factor the provider does not state
  are not mapped.
- **$/kWh**: the US average industrial retail price (EIA, 2023).
- **gCO2e/kWh**: the United States average (Ember, 2024), or any region of ``grid_carbon.csv``.
- **PUE**: the industry average of the Uptime Institute survey (2023, primary source).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from .errors import Issue, UnknownNameError, ValidationError
from .paths import MANUAL_DIR, RAW_DIR, SEED_DIR

__all__ = [
    "Assumption",
    "PlanningDefaults",
    "build_planning_tables",
    "default_gpu_prices",
    "load_planning_defaults",
]

PLANNING_TABLES = ("gpu_prices", "grid_carbon", "electricity_prices", "pue", "embodied_carbon")
DEFAULT_PRICING = "on-demand"
DEFAULT_CARBON_REGION = "United States (average)"
DEFAULT_ELECTRICITY = ("United States (average)", "industrial")
DEFAULT_PUE_YEAR = 2023
# License of a row, by the first of these fragments its source names (data/raw/planning/SOURCES.md, section 6).
_LICENSES = (
    ("github.com/tsaol/aws-gpu", "MIT per the repository's README (no LICENSE file); AWS public list prices"),
    ("Cyclenerd/google-cloud-pricing-cost-calculator", "Apache-2.0"),
    ("skypilot-org/skypilot-catalog", "not stated in the catalog repository (SkyPilot itself: Apache-2.0); verify"),
    ("toolshedlabs-hash/gpu-price-feed", "MIT"),
    ("dstackai/gpuhunt", "MPL-2.0"),
    ("Ember Yearly Electricity Data", "CC BY 4.0 (Ember; CO2.js states CC BY-SA 4.0 for its copy)"),
    ("Electricity Maps", "ODbL (Electricity Maps, via CO2.js)"),
    ("GoogleCloudPlatform/region-carbon-info", "Apache-2.0"),
    ("EIA", "U.S. government work, generally public domain (EIA)"),
    ("Eurostat", "Eurostat reuse policy (acknowledge Eurostat)"),
)
_CARBON_DATASETS = (("Ember", "Ember"), ("Electricity Maps", "Electricity Maps"), ("Google Cloud", "Google Cloud"))


def _license(source: str, table: str, row: int) -> str:
    for fragment, license_ in _LICENSES:
        if fragment in source:
            return license_
    raise ValidationError([Issue(row, "source", f"{table}: no license known for source {source[:80]!r}; add it to "
                                                "planning_data._LICENSES from SOURCES.md")])


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


def _numbers(frame: pd.DataFrame, columns: tuple[str, ...], table: str, required: tuple[str, ...] = ()) -> None:
    """Convert ``columns`` to float in place; a non-numeric or non-positive value (or a blank required one) is
    rejected by row and column."""
    issues = []
    for c in columns:
        raw = frame[c]
        values = pd.to_numeric(raw, errors="coerce")
        bad = (raw.notna() & values.isna()) | (values <= 0)
        if c in required:
            bad |= raw.isna()
        issues += [Issue(int(i) + 1, c, f"{table}: {c} must be a positive number, found {raw.iloc[i]!r}")
                   for i in np.flatnonzero(bad.to_numpy())[:20]]
        frame[c] = values.astype(float)
    if issues:
        raise ValidationError(issues)


def _with_license(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    frame["license"] = [_license(s, table, i + 1) for i, s in enumerate(frame["source"].fillna(""))]
    return frame


def build_planning_tables(raw_dir: Path = RAW_DIR, manual_dir: Path = MANUAL_DIR) -> dict[str, pd.DataFrame]:
    """The planning seed tables from ``data/raw/planning`` and the hand tables (deterministic)."""
    base = raw_dir / "planning"
    prices = _read(base / "gpu_prices.csv")
    _numbers(prices, ("gpus_per_instance", "usd_per_instance_hour", "usd_per_gpu_hour"), "gpu_prices",
             required=("usd_per_gpu_hour",))
    mapping = _read(manual_dir / "price_gpu_map.csv")
    unmapped = sorted(set(prices["gpu_name"]) - set(mapping["price_gpu_name"]))
    if unmapped:
        raise ValidationError([Issue(0, "gpu_name", f"gpu_prices: GPU name {n!r} is not in price_gpu_map.csv")
                               for n in unmapped])
    prices.insert(1, "gpu_id", prices["gpu_name"].map(dict(zip(mapping["price_gpu_name"], mapping["gpu_id"],
                                                               strict=True))))
    prices = _with_license(prices, "gpu_prices")

    carbon = _read(base / "grid_carbon.csv")
    _numbers(carbon, ("gco2e_per_kwh",), "grid_carbon", required=("gco2e_per_kwh",))
    carbon.insert(3, "dataset", [next((d for k, d in _CARBON_DATASETS if s.startswith(k)), "")
                                 for s in carbon["source"]])
    carbon = _with_license(carbon, "grid_carbon")

    power = _read(base / "electricity_prices.csv")
    _numbers(power, ("usd_per_kwh", "local_price_per_kwh"), "electricity_prices")
    power = _with_license(power, "electricity_prices")

    pue = _read(manual_dir / "planning_pue.csv")
    _numbers(pue, ("pue",), "pue", required=("pue",))
    embodied = _read(manual_dir / "planning_embodied_carbon.csv")
    _numbers(embodied, ("kgco2e",), "embodied_carbon", required=("kgco2e",))
    return {"gpu_prices": prices, "grid_carbon": carbon, "electricity_prices": power, "pue": pue,
            "embodied_carbon": embodied}


# --------------------------------------------------------------------------------------------------------------
# Defaults as the planner and the pages read them
@dataclass(frozen=True)
class Assumption:
    """One planning input with where it comes from: value, unit, source, date (text, "" when undated), license."""

    value: float
    unit: str
    label: str
    source: str
    date: str
    license: str = ""

    def cite(self) -> str:
        """A short citation: "label, date (source)"."""
        when = self.date or "undated"
        return f"{self.label}, {when} ({self.source})"


@dataclass(frozen=True)
class PlanningDefaults:
    """The planning seed tables and the default assumptions derived from them (immutable; safe to cache)."""

    tables: Mapping[str, pd.DataFrame]
    gpu_prices: Mapping[str, Assumption]  # gpu_id -> default $/GPU-hour
    usd_per_kwh: Assumption
    gco2e_per_kwh: Assumption
    pue: Assumption

    def regions(self) -> list[str]:
        return list(self.tables["grid_carbon"]["region"])

    def carbon_for(self, region: str) -> Assumption:
        """The grid carbon intensity of ``region`` (exact name, case-insensitive, or a fragment naming exactly
        one region); UnknownNameError otherwise."""
        carbon = self.tables["grid_carbon"]
        names = carbon["region"].str.lower()
        text = str(region).strip().lower()
        hits = np.flatnonzero((names == text).to_numpy())
        if len(hits) != 1:
            hits = np.flatnonzero(names.str.contains(text, regex=False).to_numpy()) if text else []
        if len(hits) != 1:
            hint = list(carbon["region"].iloc[hits[:5]]) if len(hits) else []
            raise UnknownNameError("region" if not len(hits) else "region (ambiguous)", [str(region)],
                                   {str(region): hint})
        row = carbon.iloc[int(hits[0])]
        return Assumption(float(row["gco2e_per_kwh"]), "gCO2e/kWh", f"grid carbon intensity, {row['region']}",
                          f"{row['dataset']} annual average", str(row["year"]), str(row["license"]))


def default_gpu_prices(prices: pd.DataFrame) -> dict[str, Assumption]:
    """Per catalog GPU, the median across providers of each provider's cheapest on-demand $/GPU-hour."""
    rows = prices[(prices["pricing"] == DEFAULT_PRICING) & prices["gpu_id"].notna()
                  & prices["usd_per_gpu_hour"].notna()]
    cheapest = rows.sort_values(["gpu_id", "provider", "usd_per_gpu_hour"], kind="stable") \
        .drop_duplicates(["gpu_id", "provider"])
    out = {}
    for gpu_id, g in cheapest.groupby("gpu_id", sort=True):
        dates = sorted(d for d in g["as_of"].dropna().unique())
        when = (dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}") if dates else ""
        if dates and g["as_of"].isna().any():
            when += ", partly undated"
        providers = ", ".join(f"{p} {v:.2f}" for p, v in zip(g["provider"], g["usd_per_gpu_hour"], strict=True))
        out[str(gpu_id)] = Assumption(
            float(np.median(g["usd_per_gpu_hour"].to_numpy(float))), "$/GPU-hour",
            f"median of {len(g)} provider{'s' if len(g) != 1 else ''}' cheapest on-demand list price"
            if len(g) > 1 else "the one provider's cheapest on-demand list price",
            providers, when, "; ".join(sorted(set(g["license"]))))
    return out


def _read_seed(seed_dir: Path, name: str) -> pd.DataFrame:
    frame = _read(seed_dir / f"{name}.csv")
    for c in ("gpus_per_instance", "usd_per_instance_hour", "usd_per_gpu_hour", "gco2e_per_kwh", "usd_per_kwh",
              "local_price_per_kwh", "pue", "kgco2e"):
        if c in frame.columns:
            frame[c] = pd.to_numeric(frame[c]).astype(float)
    return frame


def load_planning_defaults(seed_dir: Path = SEED_DIR) -> PlanningDefaults:
    """The planning seed tables and the default assumptions (see the module docstring for the rules)."""
    tables = {name: _read_seed(seed_dir, name) for name in PLANNING_TABLES}
    power = tables["electricity_prices"]
    row = power[(power["region"] == DEFAULT_ELECTRICITY[0]) & (power["customer"] == DEFAULT_ELECTRICITY[1])].iloc[0]
    usd_per_kwh = Assumption(float(row["usd_per_kwh"]), "$/kWh", f"{row['region']}, {row['customer']} retail price",
                             "EIA", str(row["year"]), str(row["license"]))
    pue = tables["pue"]
    prow = pue[pue["year"] == str(DEFAULT_PUE_YEAR)].iloc[0]
    pue_default = Assumption(float(prow["pue"]), "", "industry average PUE", "Uptime Institute survey",
                             str(prow["year"]), str(prow["license"]))
    frozen = MappingProxyType(tables)
    defaults = PlanningDefaults(frozen, MappingProxyType(default_gpu_prices(tables["gpu_prices"])), usd_per_kwh,
                                Assumption(0.0, "gCO2e/kWh", "", "", ""), pue_default)
    carbon = defaults.carbon_for(DEFAULT_CARBON_REGION)
    return PlanningDefaults(frozen, defaults.gpu_prices, usd_per_kwh, carbon, pue_default)
