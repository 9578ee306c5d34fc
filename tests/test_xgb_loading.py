"""wattgpu_core.xgb: xgboost loads without scikit-learn for the native API, gives the same boosters, and its
scikit-learn wrappers still work when asked for. Each case runs in a fresh interpreter (imports are per process)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

TRAIN = """
import numpy as np
rng = np.random.default_rng(0)
X = rng.random((300, 5)); y = X @ np.arange(1.0, 6.0) + rng.normal(0, 0.1, 300)
booster = xgb.train({"max_depth": 4, "nthread": 1, "seed": 0}, xgb.DMatrix(X, label=y), 20)
print(repr(booster.inplace_predict(X[:50]).astype(float).tolist()))
"""


def _run(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True,
                         timeout=300)
    return out.stdout.strip().splitlines()


def test_native_api_without_sklearn_gives_the_same_booster():
    ours = _run(textwrap.dedent("""
        import sys
        from wattgpu_core.xgb import load, sklearn_api_loaded
        xgb = load()
        print("sklearn" in sys.modules, sklearn_api_loaded())
        """) + TRAIN)
    plain = _run("import xgboost as xgb\n" + TRAIN)
    assert ours[0] == "False False"  # scikit-learn was never imported
    assert ours[1] == plain[0]  # identical predictions


def test_sklearn_wrappers_work_after_a_native_load_and_other_threads_import_sklearn_meanwhile():
    lines = _run("""
        import sys, threading
        from wattgpu_core import xgb as loader
        seen = {}
        def other():  # another thread imports scikit-learn while xgboost loads: it must get the real one
            import sklearn.base
            seen["ok"] = hasattr(sklearn.base, "BaseEstimator")
        t = threading.Thread(target=other)
        xgb = loader.load(); t.start(); t.join()
        print(seen["ok"], loader.sklearn_api_loaded())
        xgb = loader.load_with_sklearn_api()
        from sklearn.base import BaseEstimator
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler
        import numpy as np
        X = np.random.default_rng(1).random((100, 3)); y = X.sum(axis=1)
        pipe = Pipeline([("s", StandardScaler()), ("m", xgb.XGBRegressor(n_estimators=5))]).fit(X, y)
        print(loader.sklearn_api_loaded(), issubclass(xgb.XGBRegressor, BaseEstimator), pipe.predict(X[:1]).shape)
        """)
    assert lines == ["True False", "True True (1,)"]


def test_threads_asking_at_once_all_get_the_whole_module():
    lines = _run("""
        import threading
        from wattgpu_core import xgb as loader
        got = []
        threads = [threading.Thread(target=lambda: got.append(hasattr(loader.load(), "DMatrix"))) for _ in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(got)
        """)
    assert lines == ["[True, True, True, True]"]
