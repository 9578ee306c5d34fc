"""The retraining lifecycle (core, no UI): committed models for the seed data, models retrained beside the store after
an upload (with WattGPU+'s default choice kept from the full evaluation), and back to the committed ones when the
upload is removed."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pages.view.data import metrics_change
from wattgpu_core import retraining
from wattgpu_core.importers import canonical_template
from wattgpu_core.ingest import ingest_bytes
from wattgpu_core.models import read_metadata
from wattgpu_core.paths import MODELS_DIR
from wattgpu_core.planning import load_model_set


def _committed_files() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(MODELS_DIR.glob("*.json"))}


def test_seed_data_use_the_committed_models(store):
    assert retraining.active_models_dir(store) == MODELS_DIR
    assert retraining.retrained_models_dir(store).parent == Path(store.home) / "retrained"
    assert retraining.trained_model_sets()[0] == "paper"
    assert set(retraining.evaluated_model_sets()) <= {"paper", "plus"}
    assert retraining.models_version(store) == retraining.models_version(store)
    assert retraining.is_committed(MODELS_DIR) and not retraining.is_committed(Path(store.home))


def test_retrain_after_an_upload_then_remove_it(store):
    committed = _committed_files()
    version = retraining.models_version(store)
    added = ingest_bytes(store, "mine.csv", canonical_template().encode())
    assert added.added == 2
    assert retraining.active_models_dir(store) == MODELS_DIR, "no retrained models for this data yet"
    assert retraining.models_version(store) != version, "the data changed"
    steps = []
    result = retraining.retrain(store, added.batch_id, progress=lambda f, m: steps.append(f))
    folder = retraining.retrained_models_dir(store)
    assert result.models_dir == folder and retraining.active_models_dir(store) == folder
    assert _committed_files() == committed, "models/ is never written"
    assert steps and steps[-1] == 1.0 and all(0.0 <= f <= 1.0 for f in steps)
    assert result.n_new_runs == 2 and not result.in_paper_training, "the template's runs are not Watt Counts runs"
    assert not any(p.name.startswith(".") for p in folder.parent.iterdir()), "no staging folder is left behind"
    sets = retraining.evaluated_model_sets()
    for name in sets:
        meta = read_metadata(name, folder)
        label = "XGB" if name == "paper" else "WattGPU+"
        assert meta["cv_metrics"] and {r["model"] for r in meta["cv_metrics"]} == {label}
        assert {r["strategy"] for r in meta["cv_metrics"]} == {"CV"}
    if "plus" in sets:
        kept = read_metadata("plus", folder)["default_for"]
        assert kept == read_metadata("plus")["default_for"], "the default choice of the full evaluation is kept"
        assert load_model_set("default", folder).choice == load_model_set("default").choice
    change = metrics_change(result)
    assert len(change.table) == 4 * len(sets), "power and ITL, offline and server, per model set"
    assert "2 runs from this upload" in change.summary and "do not move" in change.summary
    assert (result.before["model"] == "XGB").any() and set(result.before["strategy"]) == {"CV"}
    xgb = change.table[change.table["Model, target and scenario"].str.startswith("XGB")]
    assert (xgb["Change (points)"] == 0).all(), "the paper's XGB does not learn from other sources' runs"

    store.remove_batch(added.batch_id)
    assert retraining.active_models_dir(store) == MODELS_DIR, "removing the upload returns to the committed models"
