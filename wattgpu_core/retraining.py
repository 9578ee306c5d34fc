"""The retraining lifecycle: which model files the predictions come from, and retraining them after an upload.

The committed models in ``models/`` are fitted to the seed data. After an upload (or a removal) the store's data
version changes; :func:`retrain` cross-validates the model sets without and with the upload, fits them on all the
data and puts them in ``retrained/<data key>/`` beside the store, written whole in a staging folder and swapped in
by renames. :func:`active_models_dir` is the folder the app predicts with: the retrained one for the current data
if it exists, else the committed one (so models never outlive the data they were fitted to). WattGPU+'s default
choice per target and scenario (``default_for``) stays the one decided by the full evaluation of the committed
models: a 5-fold CV after an upload has no leave-one-GPU-out split to decide it again.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .evaluation import evaluate_frame
from .model_files import replace_folder
from .models import auxiliary_frame, model_paths, read_metadata, training_frame
from .paths import MODELS_DIR
from .registry import MODEL_SETS, get_model_set, train, workload_sets

Progress = Callable[[float, str], None]
EVALUATED_SETS = ("paper", "plus")  # the model sets the Cross-validation page and the shipped evaluation score


def trained_model_sets(models_dir: Path = MODELS_DIR) -> tuple[str, ...]:
    """Registered model sets whose files are in ``models_dir`` (the paper's set first)."""
    names = [n for n in MODEL_SETS if model_paths(n, models_dir)["meta"].is_file()]
    return tuple(sorted(names, key=lambda n: (n != "paper", n)))


def evaluated_model_sets(models_dir: Path = MODELS_DIR) -> tuple[str, ...]:
    """The model sets that are evaluated: the paper's, and WattGPU+ when its files exist."""
    return tuple(n for n in trained_model_sets(models_dir) if n in EVALUATED_SETS)


def retrained_models_dir(store) -> Path:
    """Where models retrained on this store's current data live: ``retrained/<data key>/`` next to the store.

    Each upload (or removal) changes the data key, so models never outlive the data they were fitted to; with only
    the seed data there is no such folder and the committed ``models/`` are used."""
    key = hashlib.sha256(store.data_version().encode()).hexdigest()[:16]
    return Path(store.home) / "retrained" / key


def active_models_dir(store) -> Path:
    """The models the app predicts with: those retrained on the current data if any, else the committed ones."""
    folder = retrained_models_dir(store)
    return folder if model_paths("paper", folder)["meta"].is_file() else MODELS_DIR


def models_version(store) -> str:
    """A key that changes with the data and with the model files the app predicts with (retraining)."""
    folder = active_models_dir(store)
    meta = model_paths("plus", folder)["meta"]
    meta = meta if meta.is_file() else model_paths("paper", folder)["meta"]
    stamp = meta.stat().st_mtime_ns if meta.is_file() else 0
    return f"{store.data_version()}|{folder.name}|{stamp}"


def is_committed(models_dir: Path) -> bool:
    """True when ``models_dir`` is the committed ``models/`` folder."""
    return Path(models_dir).resolve() == MODELS_DIR.resolve()


@dataclass(frozen=True)
class Retraining:
    """What :func:`retrain` did: 5-fold grouped CV records before and after the upload, where the models went."""

    before: pd.DataFrame  # evaluation records (target, model, scenario, strategy, mdape_pct, n_rows, ...)
    after: pd.DataFrame
    n_new_runs: int  # runs of the upload that the model sets learn from
    in_paper_training: bool  # whether the paper's XGB learns from the upload (Watt Counts runs of dense LLMs)
    models_dir: Path


def retrain(store, batch_id: str, progress: Progress | None = None) -> Retraining:
    """Cross-validate the model sets (5-fold grouped CV) without and with upload ``batch_id``, then fit them on all
    the data into :func:`retrained_models_dir`, which :func:`active_models_dir` returns from then on. ``models/``
    is never written.

    The paper's XGB learns only from Watt Counts runs of dense LLMs; WattGPU+ also learns from every other run (its
    serving stack's calibration, per-LLM corrections and per-GPU power levels), so uploads move it."""
    def step(lo, hi):
        return (lambda f, m: progress(lo + (hi - lo) * f, m)) if progress else None

    frame = training_frame(store, "catalog")
    aux = auxiliary_frame(store, "catalog")
    in_frame = frame["batch_id"].eq(batch_id)
    in_aux = aux["batch_id"].eq(batch_id)
    sets = evaluated_model_sets()
    kw = dict(strategies=("CV",), baselines=False, intervals=False)
    after = evaluate_frame(frame, False, sets, aux=aux, progress=step(0.0, 0.4), **kw)
    if in_frame.any() or in_aux.any():
        before = evaluate_frame(frame[~in_frame].reset_index(drop=True), False, sets,
                                aux=aux[~in_aux].reset_index(drop=True), progress=step(0.4, 0.8), **kw)
    else:
        before = after
    # the default choice per target and scenario stays the full evaluation's (held by the workload-reading set)
    default_for = next((read_metadata(n).get("default_for") or {} for n in workload_sets(sets)), None)
    folder = retrained_models_dir(store)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))  # written whole, then renamed
    try:
        for i, name in enumerate(sets):
            if progress:
                progress(0.8 + 0.2 * i / len(sets), f"retraining {name} on all the data")
            label = get_model_set(name).label
            train(store, tmp, name, cv_records=[r for r in after.records if r["model"] == label],
                  default_for=default_for)
        replace_folder(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if progress:
        progress(1.0, "done")
    return Retraining(before.records_frame(), after.records_frame(), int(in_frame.sum() + in_aux.sum()),
                      bool(in_frame.any()), folder)
