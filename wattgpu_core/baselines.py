"""The paper's baselines as model sets: TDP and load-scaled TDP for power, the roofline for ITL.

Each is a formula of the GPU's specs and the scenario, with nothing learned: ``fit`` returns the formula, there are
no files, and the evaluation scores it on every row (strategy "-"). TDP predicts the GPU's TDP (W); LS-TDP scales it
by the load (0.9 offline, 0.2 / 0.6 at the low / high server rate); Roofline predicts the time to read the weights
once divided by the batch (256 offline, 1 in the server scenarios), in s.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd

from .model_set import ModelSet

LOAD_SCALE = MappingProxyType({"offline": 0.9, "server_low": 0.2, "server_high": 0.6})
ROOFLINE_BATCH = MappingProxyType({"offline": 256.0, "server_low": 1.0, "server_high": 1.0})
INPUTS = ("tdp_w", "bandwidth_latency_s", "scenario_detail")


def baseline_predictions(frame: pd.DataFrame, name: str) -> np.ndarray:
    """TDP (W), load-scaled TDP (W: 0.9 / 0.2 / 0.6 x TDP) or roofline ITL (s: 2N/BW/B, B = 256 offline, 1 server)."""
    scen = frame["scenario_detail"]
    if name == "TDP":
        return frame["tdp_w"].to_numpy(float)
    if name == "LS-TDP":
        return frame["tdp_w"].to_numpy(float) * scen.map(LOAD_SCALE).to_numpy(float)
    if name == "Roofline":
        return frame["bandwidth_latency_s"].to_numpy(float) / scen.map(ROOFLINE_BATCH).to_numpy(float)
    raise ValueError(name)


@dataclass(frozen=True)
class BaselineModel:
    """A baseline formula as a fitted model."""

    label: str

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return baseline_predictions(frame, self.label)


class BaselineModelSet(ModelSet):
    """One baseline formula for one target (see the module docstring)."""

    has_files = False

    def __init__(self, name: str, label: str, target: str, description: str) -> None:
        self.name, self.label, self.targets, self.description = name, label, (target,), description

    def features(self, target: str) -> tuple[str, ...]:
        return INPUTS

    def fit(self, target: str, train: pd.DataFrame, *, n_threads: int = 1, seed: int = 0, aux=None) -> BaselineModel:
        """The formula (nothing is learned from ``train``)."""
        return BaselineModel(self.label)


def _factory(name: str, label: str, target: str, description: str):
    return lambda: BaselineModelSet(name, label, target, description)


BASELINE_SETS = {
    "tdp": _factory("tdp", "TDP", "power", "the GPU's TDP"),
    "ls-tdp": _factory("ls-tdp", "LS-TDP", "power", "the GPU's TDP x 0.9 offline, 0.2 / 0.6 at low / high load"),
    "roofline": _factory("roofline", "Roofline", "itl", "time to read the weights once / batch (256 offline, 1 "
                                                        "server)"),
}
