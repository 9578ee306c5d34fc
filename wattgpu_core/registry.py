"""The model-set registry: every model set, registered here and nowhere else, and the questions callers ask of them.

:data:`MODEL_SETS` names each :class:`~wattgpu_core.model_set.ModelSet`: the paper's XGB (``"paper"``), WattGPU+
(``"plus"``) and the baselines (``"tdp"``, ``"ls-tdp"``, ``"roofline"``). :func:`train` and :func:`load_fitted`
write and read a set's files through its own ``train`` / ``load`` (the files swap in atomically:
:mod:`~wattgpu_core.model_files`). A loaded model set for prediction (``planning.LoadedModelSet``) is one registered
set, or ``"default"``: WattGPU+ where it measured better and the paper's XGB elsewhere, holding both as ``parts``;
:func:`parts`, :func:`workload_part` and :func:`uses` answer which set predicts what, so no caller tests a name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from .baselines import BASELINE_SETS
from .errors import ModelNotTrainedError, WattGPUError
from .model_files import atomic_model_set, reading
from .model_set import ModelSet
from .models import PaperModelSet, _retrain_hint
from .paths import MODELS_DIR
from .plus import PlusModelSet

REFERENCE = "paper"  # the set a composite falls back to where nothing better was measured
COMPOSITE = "default"  # WattGPU+ where it measured better, the reference elsewhere (planning.load_model_set)

MODEL_SETS: dict[str, Callable[[], ModelSet]] = {
    PaperModelSet.name: PaperModelSet,
    PlusModelSet.name: PlusModelSet,
    **BASELINE_SETS,
}
TRAINABLE = tuple(n for n, f in MODEL_SETS.items() if f().has_files)  # the sets with model files


def register_model_set(name: str, factory: Callable[[], ModelSet]) -> None:
    """Add a model set to the registry (a later issue's own models register here)."""
    MODEL_SETS[name] = factory


def get_model_set(name: str) -> ModelSet:
    """The registered model set ``name`` (a :class:`WattGPUError` naming the known ones otherwise)."""
    try:
        return MODEL_SETS[name]()
    except KeyError:
        raise WattGPUError(f"unknown model set {name!r}; known: {', '.join(sorted(MODEL_SETS))}") from None


# --------------------------------------------------------------------------------------------------------------
# Files
def train(store, models_dir: Path = MODELS_DIR, name: str = "paper", *, cv_records: list[dict] | None = None,
          seed: int = 0, default_for: dict | None = None) -> dict:
    """Fit model set ``name`` on the store and write its files into ``models_dir``; returns the metadata.

    ``cv_records`` (the evaluation records of CV, LOGO and LOLO) are stored in the metadata when given. The files
    are written to a staging folder and replace the set's files together (``model_files.atomic_model_set``).
    ``default_for``: the composite's choice per target and scenario to keep instead of deciding it from
    ``cv_records`` (retraining after an upload keeps the full evaluation's choice; sets outside a composite ignore it).
    """
    model_set = get_model_set(name)
    with atomic_model_set(models_dir, name) as staging:
        return model_set.train(store, staging, cv_records=cv_records, seed=seed, default_for=default_for)


def load_fitted(name: str = "paper", models_dir: Path = MODELS_DIR) -> tuple[dict, dict]:
    """The fitted models of ``name`` from ``models_dir`` and their metadata.

    Missing, truncated or corrupt files raise :class:`ModelNotTrainedError` (a message, never a traceback)."""
    model_set = get_model_set(name)
    with reading(models_dir):
        try:
            return model_set.load(Path(models_dir))
        except ModelNotTrainedError:
            raise
        except Exception as exc:  # noqa: BLE001 - any parse failure of a model file means: retrain
            raise ModelNotTrainedError(f"the model files of {name!r} in {models_dir} are unreadable "
                                       f"({type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''}); "
                                       f"{_retrain_hint(name)}") from exc


# --------------------------------------------------------------------------------------------------------------
# Loaded model sets (planning.LoadedModelSet: ``kind`` is a registered name or COMPOSITE)
def parts(loaded) -> Mapping[str, object]:
    """{registered name: loaded set} of what ``loaded`` predicts with: its parts for the composite, else itself."""
    return dict(loaded.parts) if loaded.parts else {loaded.kind: loaded}


def workload_sets(names) -> list[str]:
    """The names among ``names`` whose model set reads the workload (WattGPU+)."""
    return [n for n in names if get_model_set(n).reads_workload]


def workload_part(loaded):
    """The part of ``loaded`` whose model set reads the workload (WattGPU+), or None."""
    for name, part in parts(loaded).items():
        if part is not None and get_model_set(name).reads_workload:
            return part
    return None


def workload_models(loaded) -> dict:
    """{target: model} of :func:`workload_part` ({} when there is none)."""
    part = workload_part(loaded)
    return dict(part.models) if part is not None else {}


def uses(loaded, target: str, pools, rows=None):
    """The registered name of the set that predicts ``target`` in scenario pool(s) ``pools`` ("offline" /
    "server"): one name for one pool, an array of names for an array of pools. With ``rows`` (the prediction's
    feature frame, one row per pool), a row the chosen set does not model (:meth:`ModelSet.covers`, e.g. a MoE LLM
    or a quantised, tensor-parallel replica for the paper's XGB) goes to the composite's workload-reading part."""
    if not loaded.parts:
        return loaded.kind if np.ndim(pools) == 0 else np.full(len(pools), loaded.kind, dtype=object)
    choice = loaded.choice.get(target, {})
    if np.ndim(pools) == 0:
        if rows is None:
            return choice.get(pools, REFERENCE)
        pools = np.full(len(rows), pools, dtype=object)
    pools = np.asarray(pools, dtype=object)
    out = np.full(len(pools), REFERENCE, dtype=object)
    for pool, name in choice.items():
        out[pools == pool] = name
    fallback = next((n for n, p in parts(loaded).items() if p is not None and get_model_set(n).reads_workload), None)
    if rows is not None and fallback is not None:
        for name in set(out.tolist()) - {fallback}:
            chosen = out == name
            out[chosen & ~get_model_set(name).covers(rows)] = fallback
    return out


def uses_workload_model(loaded, target: str, pools, rows=None) -> np.ndarray:
    """Per pool in ``pools``, whether ``target`` is predicted by a set that reads the workload (WattGPU+)."""
    names = np.asarray(uses(loaded, target, np.asarray(pools, dtype=object), rows), dtype=object)
    return np.isin(names, [n for n in set(names.tolist()) if get_model_set(n).reads_workload])
