"""The model-set protocol: what every family of models (the paper's XGB, WattGPU+, the baselines) offers.

A *model set* is a named family of one model per target ("power": mean power in W; "itl": inter-token latency in
s). :class:`ModelSet` is the one interface the evaluation, the prediction API and the explanations use:

* ``fit(target, rows)`` returns a fitted model whose ``predict(rows)`` gives values in the target's unit;
* ``train(store, folder)`` fits every target on the store's data and writes the files with ``save(fitted, meta,
  folder)``; ``load(folder)`` reads them back ({target: fitted model}, metadata);
* ``predict(fitted, target, rows)`` and ``explain(fitted, target, rows, background)`` (a ``shap.Explanation``);
* what callers need to know without testing a name: ``label``, ``description``, ``targets``, ``uses_aux``,
  ``interval_level`` (prediction intervals), ``reads_workload`` (batch, rate, tokens, GPUs and serving stack are
  inputs: a physical breakdown and grouped explanations), ``gives_ttft``, ``has_files``, ``gives_intervals``.

The model sets themselves live in :mod:`~wattgpu_core.models` (the paper's), :mod:`~wattgpu_core.plus` (WattGPU+)
and :mod:`~wattgpu_core.baselines`; :mod:`~wattgpu_core.registry` registers them, in one place. This module imports
no other WattGPU module, so anything (cross-validation included) can depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

TARGETS = ("power", "itl")
TARGET_UNITS = {"power": "W", "itl": "s"}
TARGET_COLUMNS = {"power": "power_w", "itl": "itl_s"}


class ModelSet:
    """A named family of one model per target (see the module docstring).

    ``prepare(target, rows)`` lets a model set precompute what every fold shares (the evaluation calls
    ``prepare(...).fit_predict(train_positions, test_positions)`` once per fold); the default just slices the frame
    and calls ``fit`` and ``predict``.
    """

    name: str = "base"
    label: str = "base"  # the name the tables print
    targets: tuple[str, ...] = TARGETS
    description: str = ""
    # A model set that learns from more than the paper's rows sets this: ``fit`` then takes ``aux=`` (the rows of
    # ``models.auxiliary_frame``, which the evaluation filters per fold so that no fold sees its test group).
    uses_aux: bool = False
    # whether fitting spends its time in Python, holding the GIL (cross-validation then fits in worker processes)
    fits_hold_the_gil: bool = False
    # A model set that gives prediction intervals sets their central coverage (e.g. 0.8); the evaluation then
    # measures their coverage on held-out GPUs (nested leave-one-GPU-out).
    interval_level: float | None = None
    # Where WattGPU+'s metadata keeps this set's leave-one-GPU-out ln quantiles (``intervals[<key>]``), if anywhere.
    interval_key: str | None = None
    # Workload inputs (batch, request rate, tokens, GPUs, serving stack) and a physical breakdown of a prediction;
    # explained by grouped Shapley values against a background of training configurations.
    reads_workload: bool = False
    gives_ttft: bool = False  # trains a time-to-first-token model beside its own files
    has_files: bool = True  # False: nothing to train or load (a formula)

    @property
    def gives_intervals(self) -> bool:
        """Whether predictions carry intervals (``interval_level``)."""
        return self.interval_level is not None

    def features(self, target: str) -> tuple[str, ...]:
        """Columns the model reads (rows missing any of them are not trained on)."""
        raise NotImplementedError

    def fit(self, target: str, train: pd.DataFrame, *, n_threads: int = 1, seed: int = 0):
        """A fitted model (anything with ``predict(rows) -> values in the target's unit``); model sets with
        ``uses_aux`` also take ``aux=``."""
        raise NotImplementedError

    def prepare(self, target: str, rows: pd.DataFrame, aux: pd.DataFrame | None = None):
        return FramePrepared(self, target, rows, aux)

    def predict(self, fitted, target: str, rows: pd.DataFrame) -> np.ndarray:
        """``fitted[target]``'s predictions for ``rows``, in the target's unit."""
        return np.asarray(fitted[target].predict(rows), dtype=float)

    def train(self, store, folder: Path, *, cv_records: list[dict] | None = None, seed: int = 0,
              default_for: dict | None = None) -> dict:
        """Fit every target on the store's data, :meth:`save` the files into ``folder`` (a staging folder: the
        registry swaps it in atomically) and return the metadata."""
        raise NotImplementedError(f"{self.label} has no files to train")

    def save(self, fitted, meta, folder: Path) -> None:
        """Write the fitted models ({target: model}) and their metadata into ``folder`` (what :meth:`load` reads;
        e.g. to keep a retrained set's metadata in step without patching JSON by hand)."""
        raise NotImplementedError(f"{self.label} has no files to save")

    def load(self, folder: Path) -> tuple[dict, dict]:
        """({target: fitted model}, metadata) from the files in ``folder``."""
        raise NotImplementedError(f"{self.label} has no files to load")

    def covers(self, rows: pd.DataFrame) -> np.ndarray:
        """Per row of a prediction's feature frame, whether this set models what the row asks for (a composite
        predicts the other rows with its workload-reading part: see ``registry.uses``)."""
        return np.ones(len(rows), dtype=bool)

    def explain(self, fitted, target: str, rows: pd.DataFrame, background: pd.DataFrame | None = None):
        """A ``shap.Explanation`` of ``fitted[target]``'s predictions for ``rows`` (``background``: the rows a
        model-agnostic explanation averages over)."""
        raise NotImplementedError(f"{self.label} has no explanations")


@dataclass(frozen=True)
class FramePrepared:
    """Folds by slicing the frame: fit on the training rows (and the allowed auxiliary rows), predict the test
    rows."""

    model_set: ModelSet
    target: str
    rows: pd.DataFrame
    aux: pd.DataFrame | None = None

    def fit_predict(self, train: np.ndarray, test: np.ndarray, *, n_threads: int = 1,
                    aux_rows: np.ndarray | None = None) -> np.ndarray:
        kwargs = {}
        if self.model_set.uses_aux:
            kwargs["aux"] = None if self.aux is None or aux_rows is None else self.aux.iloc[aux_rows]
        model = self.model_set.fit(self.target, self.rows.iloc[train], n_threads=n_threads, **kwargs)
        return np.asarray(model.predict(self.rows.iloc[test]), dtype=float)
