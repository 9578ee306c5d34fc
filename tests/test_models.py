"""The paper's models: preprocessing equals sklearn's, the committed files match the seed data and load safely,
training is deterministic, and the model-set interface takes other model sets."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from wattgpu_core import evaluation as E
from wattgpu_core import models as M
from wattgpu_core import registry as R
from wattgpu_core.paths import MODELS_DIR
from wattgpu_core.store import Store
from wattgpu_core.testing.reference_models import reference_pipeline


@pytest.fixture(scope="module")
def seed_store(seed_db_path):
    with Store.open(seed_db_path, read_only=True) as store:
        yield store


@pytest.fixture(scope="module")
def frame(seed_store):
    return M.training_frame(seed_store, "catalog")


def test_training_frame_is_the_papers_data(seed_store, frame):
    assert len(frame) == 4213  # Watt Counts minus the 7 MoE LLMs (paper-spec §1)
    assert frame["llm_id"].nunique() == 42 and frame["gpu_id"].nunique() == 8
    assert (frame["total_params_b"] == frame["active_params_b"]).all()
    assert frame["scenario_detail"].value_counts().to_dict() == {"server_low": 1405, "server_high": 1405,
                                                                  "offline": 1403}
    paper = M.training_frame(seed_store, "paper")
    h200 = paper[paper["gpu_id"] == "h200-sxm-141gb"].iloc[0]
    assert h200["fp16_tensor_dense_tflops"] == 835.0 and h200["gpu_label"] == "H200 NVL"  # the paper's NVL values
    assert frame.loc[frame["gpu_id"] == "h200-sxm-141gb", "fp16_tensor_dense_tflops"].iloc[0] == 989.0


@pytest.mark.parametrize("target", ["power", "itl"])
def test_preprocessor_equals_sklearn_column_transformer(frame, target):
    spec = M.PAPER_FEATURES[target]
    rng = np.random.default_rng(3)
    data = frame[list(spec.columns)].copy()
    for c in spec.categorical:
        data[c] = data[c].astype(object)
    train, test = data.iloc[::2].copy(), data.iloc[1::2].copy()
    for c in spec.numeric[:3]:
        train.loc[train.index[rng.choice(len(train), 50, replace=False)], c] = np.nan
        test.loc[test.index[:5], c] = np.nan
    cat = spec.categorical[-1]
    # Missing categories are NaN, as pandas reads them from a CSV (sklearn's imputer does not treat None as missing)
    train.loc[train.index[rng.choice(len(train), 40, replace=False)], cat] = np.nan
    test.loc[test.index[:3], cat] = "never-seen"
    test.loc[test.index[3:6], cat] = np.nan
    ref = reference_pipeline(target).named_steps["pre"].fit(train)
    ours = M.Preprocessor.fit(train, spec)
    np.testing.assert_allclose(ours.transform(test), ref.transform(test), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours.transform(train), ref.transform(train), rtol=1e-12, atol=1e-12)
    assert (ours.transform(test.iloc[:3])[:, -1] == -1).all()  # unknown category -> -1
    again = M.Preprocessor.from_dict(json.loads(json.dumps(ours.to_dict())))
    np.testing.assert_array_equal(again.transform(test), ours.transform(test))


@pytest.mark.parametrize("target", ["power", "itl"])
def test_fold_fast_path_equals_fit_and_predict(frame, target):
    ms = M.PaperModelSet()
    rows = M.target_rows(frame, target, ms.features(target))
    train, test = E.splits(rows, "LOGO")[3]
    fast = ms.prepare(target, rows).fit_predict(train, test)
    slow = ms.fit(target, rows.iloc[train]).predict(rows.iloc[test])
    np.testing.assert_array_equal(fast, slow)


def test_committed_models_match_the_seed_data(frame):
    meta = M.read_metadata("paper", MODELS_DIR)
    cols = meta["training_data"]["hash_columns"]
    assert M.training_data_hash(frame, cols) == meta["training_data"]["sha256"], (
        "models/ is stale: run `python -m wattgpu_core train` and commit models/")
    assert meta["training_data"]["n_rows"] == len(frame)
    for t in ("power", "itl"):
        assert meta["targets"][t]["features"] == list(M.PAPER_FEATURES[t].columns)
    assert {"xgboost", "numpy", "pandas", "scikit-learn"} <= set(meta["library_versions"])
    assert meta["trained_at"] and meta["cv_metrics"]
    assert {r["strategy"] for r in meta["cv_metrics"]} == {"CV", "LOGO", "LOLO"}


def test_model_files_are_json_only_and_load(frame):
    files = sorted(p.name for p in MODELS_DIR.iterdir() if p.is_file() and not p.name.startswith("."))
    assert files == ["evaluation.json", "paper.meta.json", "paper_itl.json", "paper_power.json", "plus.meta.json",
                     "plus_itl.json", "plus_power.json", "plus_ttft.json"]  # evaluation.json: the shipped evaluation
    for name in files:
        json.loads((MODELS_DIR / name).read_text())  # plain JSON, nothing executable
    fitted, _ = R.load_fitted("paper", MODELS_DIR)
    power = fitted["power"].predict(frame)
    itl = fitted["itl"].predict(frame)
    assert np.isfinite(power).all() and np.isfinite(itl).all()
    assert E.mdape_pct(frame["power_w"], power) < 5.0  # in-sample
    assert E.mdape_pct(frame["itl_s"], itl) < 15.0


def test_training_is_deterministic_and_reproduces_the_committed_files(seed_store, tmp_path):
    meta = R.train(seed_store, tmp_path, "paper")
    for t in ("power", "itl"):
        assert (tmp_path / meta["targets"][t]["file"]).read_bytes() == (MODELS_DIR / f"paper_{t}.json").read_bytes()
    committed = M.read_metadata("paper", MODELS_DIR)
    assert meta["training_data"]["sha256"] == committed["training_data"]["sha256"]
    assert meta["targets"] == committed["targets"]


def test_missing_model_files_raise_a_clear_error(tmp_path):
    with pytest.raises(M.ModelNotTrainedError, match="wattgpu_core train"):
        R.load_fitted("paper", tmp_path)


@dataclass(frozen=True)
class _MeanModel:
    means: dict
    column: str

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        return rows["scenario_detail"].map(self.means).to_numpy(dtype=float)


class _ScenarioMeanSet(M.ModelSet):
    name = "scenario-mean"
    label = "MEAN"

    def features(self, target):
        return ("scenario_detail",)

    def fit(self, target, train, *, n_threads=1, seed=0):
        column = M.TARGET_COLUMNS[target]
        return _MeanModel(train.groupby("scenario_detail")[column].mean().to_dict(), column)


def test_other_model_sets_run_through_the_same_protocol(frame, monkeypatch):
    monkeypatch.setitem(R.MODEL_SETS, "scenario-mean", _ScenarioMeanSet)
    sub = frame[frame["llm_id"].isin(sorted(frame["llm_id"].unique())[:6])].reset_index(drop=True)
    result = E.evaluate_frame(sub, False, ["paper", "scenario-mean"], strategies=("CV", "LOGO"), baselines=False)
    models = {r["model"] for r in result.records}
    assert models == {"XGB", "MEAN"}
    mean_rec = result.record("power", "MEAN", "offline", "LOGO")
    xgb_rec = result.record("power", "XGB", "offline", "LOGO")
    assert mean_rec["n_rows"] == xgb_rec["n_rows"] and mean_rec["mdape_pct"] > xgb_rec["mdape_pct"]
    assert ("MEAN", "itl", "CV") in result.predictions
    with pytest.raises(M.WattGPUError, match="unknown model set"):
        R.get_model_set("nope")


def test_uploaded_original_subset_replaces_the_copy_for_its_pairs(store):
    from wattgpu_core.ingest import ingest_path
    from wattgpu_core.paths import FIXTURES_DIR

    before = M.training_frame(store, "catalog")
    ingest_path(store, FIXTURES_DIR / "wattcounts_subset_sample.csv")
    after = M.training_frame(store, "catalog")
    pair = after["llm_id"] + "|" + after["gpu_id"]
    uploaded = after["source_id"].eq("wattcounts_upload")
    assert uploaded.sum() == 5
    for p in set(pair[uploaded]):
        assert after.loc[pair == p, "source_id"].eq("wattcounts_upload").all(), p  # the copy's runs are gone
    replaced = (before["llm_id"] + "|" + before["gpu_id"]).isin(set(pair[uploaded])).sum()
    assert len(after) == len(before) - replaced + 5
    server = after[uploaded & after["scenario"].eq("server")]
    assert set(server["itl_definition"]) == {"server_decode_per_request"}  # the paper's exact server ITL


def test_direct_boosting_loop_equals_booster_update(frame):
    import xgboost as xgb

    rows = M.target_rows(frame, "power", M.PAPER_FEATURES["power"].columns).iloc[:800]
    pre = M.Preprocessor.fit(rows, M.PAPER_FEATURES["power"])
    x, y = pre.transform(rows), M.encode_target("fraction_of_tdp", rows)
    dumps = []
    for direct in (True, False):
        d = xgb.DMatrix(x, label=y, nthread=1)
        booster = xgb.Booster({"max_depth": 6, "lambda": 150, "nthread": 1}, [d])
        M._boosting_rounds(booster, d, 30, direct=direct)
        dumps.append(booster.save_raw("json"))
    assert dumps[0] == dumps[1]


def test_library_versions_read_the_installed_metadata_without_importing_the_libraries():
    """Every shipped-evaluation check hashes the library versions: reading them must not import scikit-learn, scipy
    or xgboost (over a second on a page), and must give the versions the imported modules report."""
    import subprocess
    import sys

    code = ("import sys\nfrom wattgpu_core.models import library_versions\nv = library_versions()\n"
            "print(sorted(m for m in ('sklearn', 'scipy', 'xgboost') if m in sys.modules))\n"
            "import sklearn, scipy, xgboost\n"
            "print(v['scikit-learn'] == sklearn.__version__, v['scipy'] == scipy.__version__, "
            "v['xgboost'] == xgboost.__version__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split("\n")[:2] == ["[]", "True True True"]
