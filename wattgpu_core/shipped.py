"""The evaluation that ships with the committed models, so the app's slow views open at once on the default data.

``ship`` evaluates the committed model sets on the store by the full protocol (both modes: all GPUs with the
catalog's specs, and paper-compatible), computes the global importance the Explain page shows (TreeSHAP of the
paper's XGB; grouped Shapley values of WattGPU+ per scenario) and writes them under ``models/evaluation/`` with a
manifest ``models/evaluation.json``. The manifest's key names what the results were computed from: the store's
content hash (:meth:`Store.fingerprint`), the sha256 of every model file, the evaluation protocol version
(:data:`PROTOCOL`) and the code version of the modules the evaluation runs (``evaluation_cache.code_version``). The
app uses a shipped result only when the whole key matches its store and model files; otherwise (an upload, a
retrain, changed code) it computes afresh. No pickle: JSON and Parquet only; written to a temporary folder and
renamed into place.

Regenerate with ``python -m wattgpu_core ship-evaluation`` (``train`` runs it too, unless ``--no-ship``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import pandas as pd

from .evaluation import EvaluationResult, run_evaluation
from .evaluation_cache import cache_folder, cache_key, code_version, load_result
from .explain import (
    GlobalImportance,
    GroupImportance,
    explanation_background,
    global_importance,
    plus_global_importance,
    plus_models,
)
from .external import external_validation
from .models import training_frame
from .paths import MODELS_DIR
from .planning import load_model_set
from .retraining import evaluated_model_sets
from .store import Store

PROTOCOL = "wattgpu-eval-protocol/1"  # bump when what an evaluation computes changes (splits, metrics, intervals)
MANIFEST = "evaluation.json"
FOLDER = "evaluation"
MODES = {False: "all-gpus", True: "paper-compat"}
Progress = Callable[[float, str], None]
_VIEW_MODULES = ("explain", "external")  # beyond the evaluation's own modules: global importance, external check


def model_hashes(models_dir: Path = MODELS_DIR) -> dict[str, str]:
    """sha256 of each model file (the XGBoost JSON models and their metadata) in ``models_dir``."""
    folder = Path(models_dir)
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.json"))
            if p.name != MANIFEST}


def shipped_key(store, models_dir: Path = MODELS_DIR, fingerprint: str | None = None) -> dict:
    """What a shipped evaluation is valid for: data, model files, protocol and code."""
    here = Path(__file__).resolve().parent
    views = hashlib.sha256(b"".join((here / f"{m}.py").read_bytes() for m in _VIEW_MODULES)).hexdigest()
    return {"protocol": PROTOCOL, "data_sha256": fingerprint or store.fingerprint(),
            "model_sha256": model_hashes(models_dir), "code_sha256": code_version(),
            "views_sha256": views}


def ship_seed(models_dir: Path = MODELS_DIR, progress: Progress | None = None, n_jobs: int | None = None) -> dict:
    """:func:`ship` on a fresh store built from the committed seed tables (the app's default data)."""
    with tempfile.TemporaryDirectory(prefix="wattgpu-ship-") as tmp:
        with Store.build(Path(tmp) / "seed.duckdb") as store:
            return ship(store, models_dir, progress=progress, n_jobs=n_jobs)


def read_manifest(models_dir: Path = MODELS_DIR) -> dict | None:
    path = Path(models_dir) / MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def is_current(store, models_dir: Path = MODELS_DIR, fingerprint: str | None = None) -> bool:
    """True when ``models_dir`` ships an evaluation computed from this store's data, these model files and code."""
    manifest = read_manifest(models_dir)
    return bool(manifest) and manifest.get("key") == shipped_key(store, models_dir, fingerprint)


def stale_reasons(store, models_dir: Path = MODELS_DIR) -> list[str]:
    """Which parts of the key no longer match (empty when the shipped evaluation is current)."""
    manifest = read_manifest(models_dir)
    if not manifest:
        return [f"{Path(models_dir) / MANIFEST} is missing"]
    now, then = shipped_key(store, models_dir), manifest.get("key", {})
    return [f"{k} differs" for k in now if now[k] != then.get(k)]


# -- writing ---------------------------------------------------------------------------------------------------------
def ship(store, models_dir: Path = MODELS_DIR, progress: Progress | None = None, n_jobs: int | None = None) -> dict:
    """Evaluate the model sets in ``models_dir`` on ``store`` (both modes), compute global importance, and write
    them with their manifest (atomically). Returns the manifest."""
    def step(lo: float, hi: float) -> Progress | None:
        return (lambda f, m: progress(lo + (hi - lo) * f, m)) if progress else None

    models_dir = Path(models_dir)
    sets = evaluated_model_sets()
    key = shipped_key(store, models_dir)
    tmp = Path(tempfile.mkdtemp(prefix=FOLDER + ".", dir=models_dir))
    seconds = {}
    try:
        for i, (compat, mode) in enumerate(MODES.items()):
            result = run_evaluation(store, paper_compat=compat, model_sets=sets, n_jobs=n_jobs,
                                    progress=step(0.4 * i, 0.4 * (i + 1)))
            _save_evaluation(result, tmp / mode)
            seconds[mode] = round(result.seconds, 1)
        start = time.perf_counter()
        paper = load_model_set("paper", models_dir)
        imp = global_importance(paper.models, training_frame(store, "catalog"))
        _save_importance(imp, tmp / "importance" / "paper")
        default = load_model_set("default", models_dir)
        if plus_models(default):
            background = explanation_background(store, default)
            for j, pool in enumerate(("offline", "server")):
                part = plus_global_importance(default, background, pool, progress=step(0.8 + 0.05 * j, 0.85 + 0.05 * j))
                _save_importance(part, tmp / "importance" / f"plus-{pool}")
        seconds["importance"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        (tmp / "external.json").write_text(json.dumps(external_validation(store).to_dict(), allow_nan=True,
                                                      default=_json_default))
        seconds["external"] = round(time.perf_counter() - start, 1)
        manifest = {"key": key, "model_sets": list(sets), "seconds": seconds,
                    "files": {str(p.relative_to(tmp)): hashlib.sha256(p.read_bytes()).hexdigest()
                              for p in sorted(tmp.rglob("*")) if p.is_file()},
                    "regenerate": "python -m wattgpu_core ship-evaluation"}
        target = models_dir / FOLDER
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
        part = models_dir / (MANIFEST + ".part")
        part.write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(part, models_dir / MANIFEST)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if progress:
        progress(1.0, "done")
    return manifest


_KEY = ("model", "target", "strategy")


def _save_evaluation(result, folder: Path) -> None:
    """Records as JSON, every out-of-fold prediction in one Parquet file (keyed by model, target, strategy)."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = [f.assign(**dict(zip(_KEY, key, strict=True))) for key, f in result.predictions.items()]
    table = pd.concat(frames, ignore_index=True)
    for c in (*_KEY, "llm_id", "gpu_id", "scenario", "scenario_detail", "itl_definition"):
        table[c] = table[c].astype("category")
    table.to_parquet(folder / "predictions.parquet", index=False, compression="zstd")
    meta = {"mode": result.mode, "paper_compat": result.paper_compat, "records": list(result.records),
            "excluded_gpus": list(result.excluded_gpus),
            "itl_definitions": {k: list(v) for k, v in dict(result.itl_definitions).items()},
            "seconds": result.seconds, "keys": [list(k) for k in result.predictions],
            "columns": list(next(iter(result.predictions.values())).columns) if result.predictions else []}
    (folder / "records.json").write_text(json.dumps(meta, allow_nan=True, default=_json_default))


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _load_evaluation(folder: Path):
    try:
        meta = json.loads((folder / "records.json").read_text())
        table = pd.read_parquet(folder / "predictions.parquet")
    except (OSError, ValueError):
        return None
    for c in table.columns:
        if isinstance(table[c].dtype, pd.CategoricalDtype):
            table[c] = table[c].astype(str)
    groups = {k: g for k, g in table.groupby(list(_KEY), sort=False, observed=True)}
    predictions = {tuple(k): groups[tuple(k)][meta["columns"]].reset_index(drop=True) for k in meta["keys"]}
    return EvaluationResult(meta["mode"], bool(meta["paper_compat"]), tuple(meta["records"]), predictions,
                            tuple(meta["excluded_gpus"]), {k: tuple(v) for k, v in meta["itl_definitions"].items()},
                            float(meta["seconds"]))


def _save_importance(parts: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    meta = {}
    for target, imp in parts.items():
        plain = {f.name: getattr(imp, f.name) for f in fields(imp)}
        plain = {k: v for k, v in plain.items() if not isinstance(v, pd.DataFrame)}
        for name in ("importance", "shap", "values"):
            frame = getattr(imp, name).reset_index(drop=True)
            frame.columns = [str(c) for c in frame.columns]
            frame.to_parquet(folder / f"{target}-{name}.parquet", index=False)
        meta[target] = {"type": type(imp).__name__, "fields": plain}
    (folder / "meta.json").write_text(json.dumps(meta, indent=1, default=str))


# -- reading ---------------------------------------------------------------------------------------------------------
def load_evaluation(store, paper_compat: bool, model_sets, models_dir: Path = MODELS_DIR,
                    fingerprint: str | None = None):
    """The shipped :class:`EvaluationResult` of this mode, or None when none is shipped for this data, these
    model files and this code (or it covers other model sets)."""
    manifest = read_manifest(models_dir)
    if not manifest or list(manifest.get("model_sets", [])) != list(model_sets):
        return None
    if not is_current(store, models_dir, fingerprint):
        return None
    return _load_evaluation(Path(models_dir) / FOLDER / MODES[bool(paper_compat)])


def ready_evaluation(store, paper_compat: bool, model_sets, models_dir: Path = MODELS_DIR):
    """An evaluation available without computing one: shipped with the models, else in the disk cache; or None."""
    hit = load_evaluation(store, paper_compat, model_sets, models_dir)
    if hit is None:
        hit = load_result(cache_folder(store) / cache_key(store, paper_compat, tuple(model_sets)))
    return hit


def load_importance(store, which: str, models_dir: Path = MODELS_DIR, fingerprint: str | None = None):
    """Shipped global importance: ``which`` is "paper" or "plus-offline" / "plus-server"; {target: importance}
    or None when not shipped for this data, these model files and this code."""
    folder = Path(models_dir) / FOLDER / "importance" / which
    if not (folder / "meta.json").is_file() or not is_current(store, models_dir, fingerprint):
        return None
    types = {"GlobalImportance": GlobalImportance, "GroupImportance": GroupImportance}
    out = {}
    for target, m in json.loads((folder / "meta.json").read_text()).items():
        frames = {n: pd.read_parquet(folder / f"{target}-{n}.parquet") for n in ("importance", "shap", "values")}
        out[target] = types[m["type"]](**m["fields"], **frames)
    return out


def load_external(store, models_dir: Path = MODELS_DIR, fingerprint: str | None = None) -> dict | None:
    """The shipped external validation (``external.external_validation(store).to_dict()``), or None when not current."""
    path = Path(models_dir) / FOLDER / "external.json"
    if not path.is_file() or not is_current(store, models_dir, fingerprint):
        return None
    return json.loads(path.read_text())


def estimate_seconds(models_dir: Path = MODELS_DIR, paper_compat: bool = False) -> float | None:
    """How long the shipped evaluation of this mode took (a guide for a recomputation after an upload)."""
    manifest = read_manifest(models_dir)
    if not manifest:
        return None
    return manifest.get("seconds", {}).get(MODES[bool(paper_compat)])
