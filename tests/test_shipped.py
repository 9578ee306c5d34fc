"""The evaluation shipped with the models (models/evaluation.json + models/evaluation/): it must be of the committed
data, the committed model files and the current code, and recomputing it must give the same numbers."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from pages.view import cross_validation as view_cv
from pages.view import explain as view_explain
from wattgpu_core import retraining, shipped
from wattgpu_core.evaluation import run_evaluation
from wattgpu_core.paths import MODELS_DIR
from wattgpu_core.planning import load_model_set
from wattgpu_core.store import Store

pytestmark = pytest.mark.skipif(not (MODELS_DIR / shipped.MANIFEST).is_file(),
                                reason="no shipped evaluation (python -m wattgpu_core ship-evaluation)")


@pytest.fixture(scope="module")
def seed_store(seed_db_path):
    with Store.open(seed_db_path, read_only=True) as s:
        yield s


def test_shipped_evaluation_is_of_the_committed_data_models_and_code(seed_store):
    reasons = shipped.stale_reasons(seed_store)
    assert not reasons, (f"models/evaluation.json is stale ({'; '.join(reasons)}): regenerate it with "
                         "`python -m wattgpu_core ship-evaluation`")
    manifest = shipped.read_manifest()
    for name, digest in manifest["files"].items():  # every shipped file is the one the manifest names
        import hashlib

        assert hashlib.sha256((MODELS_DIR / shipped.FOLDER / name).read_bytes()).hexdigest() == digest, name


def _same_records(a, b, models):
    ra = [r for r in a.records if r["model"] in models]
    rb = [r for r in b.records if r["model"] in models]
    assert len(ra) == len(rb) > 0
    for x, y in zip(ra, rb, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            if isinstance(x[k], float) and math.isnan(x[k]):
                assert isinstance(y[k], float) and math.isnan(y[k]), (k, x, y)
            elif isinstance(x[k], float):
                assert x[k] == pytest.approx(y[k], rel=1e-9, abs=1e-12), (k, x, y)
            else:
                assert x[k] == y[k], (k, x, y)


def test_recomputing_the_paper_models_evaluation_gives_the_shipped_numbers(seed_store):
    """The paper-compatible evaluation of the paper's XGB and the baselines, recomputed now, equals what ships
    (WattGPU+'s part takes minutes; its inputs are pinned by the same key)."""
    sets = retraining.evaluated_model_sets()
    ship = shipped.load_evaluation(seed_store, True, sets)
    assert ship is not None
    now = run_evaluation(seed_store, paper_compat=True, model_sets=["paper"])
    _same_records(now, ship, {"XGB", "TDP", "LS-TDP", "Roofline"} & {r["model"] for r in now.records})
    for key, frame in now.predictions.items():
        got = ship.predictions[key]
        assert list(got["run_id"]) == list(frame["run_id"])
        np.testing.assert_allclose(got["y_pred"].to_numpy(float), frame["y_pred"].to_numpy(float), rtol=1e-9)


def test_recomputing_the_global_importance_gives_the_shipped_values(seed_store):
    from wattgpu_core.explain import global_importance
    from wattgpu_core.models import training_frame

    ship = shipped.load_importance(seed_store, "paper")
    now = global_importance(view_explain.fitted_models(load_model_set("paper")), training_frame(seed_store, "catalog"))
    for target in ("power", "itl"):
        pd.testing.assert_frame_equal(ship[target].importance, now[target].importance.reset_index(drop=True),
                                      check_dtype=False, rtol=1e-9)


def test_the_app_reads_the_shipped_evaluation_and_an_upload_recomputes(store, tmp_path):
    messages = []
    result = view_cv.run_cross_validation(store, False, progress=lambda f, m: messages.append(m),
                                     model_sets=retraining.evaluated_model_sets())
    assert messages == ["shipped with the models"] and {r["model"] for r in result.records} >= {"XGB"}
    assert view_cv.shipped_importance(store, "paper") is not None
    assert shipped.load_external(store) is not None
    from wattgpu_core.importers import canonical_template
    from wattgpu_core.ingest import validate_bytes

    store.ingest(validate_bytes(store, "mine.csv", canonical_template().encode()))
    assert shipped.load_evaluation(store, False, retraining.evaluated_model_sets()) is None, "other data: computed afresh"
    assert view_cv.shipped_importance(store, "paper") is None
    assert "data_sha256 differs" in shipped.stale_reasons(store)


def test_manifest_names_the_command_that_regenerates_it():
    manifest = json.loads((MODELS_DIR / shipped.MANIFEST).read_text())
    assert manifest["regenerate"] == "python -m wattgpu_core ship-evaluation"
    assert set(manifest["key"]) == {"protocol", "data_sha256", "model_sha256", "code_sha256", "views_sha256"}
