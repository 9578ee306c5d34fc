"""A disk cache of evaluation results, so the cross-validation the app shows is computed once per data and code.

An :class:`~wattgpu_core.evaluation.EvaluationResult` is saved as ``records.json`` (records, settings) and one
Parquet file of out-of-fold predictions per (model, target, strategy) — no pickle. The cache key hashes the
store's content (:meth:`Store.fingerprint`), the evaluation settings, the library versions and the source of every
module the evaluation runs, so any change of data or code computes afresh. Entries live under ``data/cache/``
(git-ignored) — in general, a ``cache`` folder next to the store file; a half-written entry is never read (it is written to a temporary folder and renamed).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from .evaluation import EvaluationResult, run_evaluation
from .models import library_versions

_CODE_MODULES = ("features", "model_set", "models", "baselines", "cv", "registry", "grouped_shap", "evaluation",
                 "physics", "plus", "plus_itl", "plus_power", "plus_ttft", "collectives",
                 "gemm_profile", "loso", "catalog", "schema")
FORMAT = "wattgpu-evaluation/1"


def cache_folder(store) -> Path:
    """Where a store's evaluation results are kept: ``$WATTGPU_CACHE_DIR`` if set, else ``cache/`` next to the
    store file."""
    env = os.environ.get("WATTGPU_CACHE_DIR")
    return Path(env) if env else Path(store.home) / "cache"


def code_version() -> str:
    """Hash of the source of the modules an evaluation runs, plus the library versions."""
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256(json.dumps(library_versions(), sort_keys=True).encode())
    for name in _CODE_MODULES:
        path = here / f"{name}.py"
        if path.is_file():
            digest.update(name.encode() + path.read_bytes())
    return digest.hexdigest()


def cache_key(store, paper_compat: bool, model_sets: Iterable[str]) -> str:
    payload = {"format": FORMAT, "data": store.fingerprint(), "code": code_version(),
               "paper_compat": bool(paper_compat), "model_sets": list(model_sets)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def save_result(result: EvaluationResult, folder: Path) -> Path:
    """Write ``result`` to ``folder`` atomically (JSON + Parquet)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        keys = []
        for i, (key, frame) in enumerate(result.predictions.items()):
            name = f"pred_{i:03d}.parquet"
            frame.to_parquet(tmp / name, index=False)
            keys.append({"key": list(key), "file": name})
        meta = {"format": FORMAT, "mode": result.mode, "paper_compat": result.paper_compat,
                "records": list(result.records), "excluded_gpus": list(result.excluded_gpus),
                "itl_definitions": {k: list(v) for k, v in dict(result.itl_definitions).items()},
                "seconds": result.seconds, "predictions": keys}
        (tmp / "records.json").write_text(json.dumps(meta, allow_nan=True, default=_json_default))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def load_result(folder: Path) -> EvaluationResult | None:
    """The saved result, or None when the folder is missing or not a complete entry."""
    folder = Path(folder)
    meta_path = folder / "records.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT:
            return None
        predictions = {tuple(p["key"]): pd.read_parquet(folder / p["file"]) for p in meta["predictions"]}
    except (OSError, ValueError, KeyError):
        return None
    return EvaluationResult(meta["mode"], bool(meta["paper_compat"]), tuple(meta["records"]), predictions,
                            tuple(meta["excluded_gpus"]),
                            {k: tuple(v) for k, v in meta["itl_definitions"].items()}, float(meta["seconds"]))


def cached_evaluation(store, paper_compat: bool, model_sets: Iterable[str] = ("paper",), *,
                      progress: Callable[[float, str], None] | None = None, refresh: bool = False,
                      cache_dir: Path | None = None) -> EvaluationResult:
    """The evaluation of ``model_sets`` on the store, from the disk cache when data and code are unchanged."""
    names = tuple(model_sets)
    cache_dir = Path(cache_dir) if cache_dir else cache_folder(store)
    folder = cache_dir / cache_key(store, paper_compat, names)
    if not refresh:
        hit = load_result(folder)
        if hit is not None:
            if progress:
                progress(1.0, "loaded from the cache")
            return hit
    result = run_evaluation(store, paper_compat=paper_compat, model_sets=list(names), progress=progress)
    try:
        save_result(result, folder)
    except OSError:
        pass  # a read-only checkout still gets its result, just not cached
    return result
