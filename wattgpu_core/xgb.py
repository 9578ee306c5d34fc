"""XGBoost, loaded without its scikit-learn wrappers unless something asks for them.

WattGPU uses XGBoost's native API only (``DMatrix``, ``Booster``, ``inplace_predict``). But ``import xgboost``
imports scikit-learn whenever it is installed (``xgboost/compat.py``, to define ``XGBRegressor`` and friends), and
scikit-learn imports scipy.stats: measured on the 2-core development machine, ``import xgboost`` takes 1.2-1.45 s
that way and 0.2 s without. Every command that fits or reads a model, and the app's first model load, paid that
second for classes they never use.

:func:`load` imports xgboost with scikit-learn hidden from xgboost's own import only: a finder on ``sys.meta_path``,
present for the duration of that one import, answers "not installed" to an import of ``sklearn`` whose caller is
``xgboost.compat``'s module code in the importing thread. Any other import of scikit-learn, in any thread and at any
time, is untouched. If scikit-learn is already loaded, xgboost is imported as usual (nothing to save).

:func:`load_with_sklearn_api` gives xgboost with working scikit-learn wrappers whatever happened before: if this
process loaded xgboost through :func:`load`, its ``compat`` and ``sklearn`` modules are re-executed with
scikit-learn (the test suite's reference model, an sklearn Pipeline around ``XGBRegressor``, needs it).
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
import threading
from types import ModuleType

__all__ = ["load", "load_with_sklearn_api", "sklearn_api_loaded"]

_LOCK = threading.Lock()
_MODULE: ModuleType | None = None
_SKLEARN_WRAPPERS = ("XGBModel", "XGBRegressor", "XGBClassifier", "XGBRanker", "XGBRFRegressor", "XGBRFClassifier")


class _HideSklearnFromXgboostCompat(importlib.abc.MetaPathFinder):
    """Refuses ``sklearn`` (and its submodules) to imports made by ``xgboost.compat``'s module code."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "sklearn" and not fullname.startswith("sklearn."):
            return None
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_globals.get("__name__") == "xgboost.compat":
                raise ModuleNotFoundError("scikit-learn is not loaded for xgboost by wattgpu_core.xgb "
                                          "(WattGPU uses xgboost's native API only)", name=fullname)
            frame = frame.f_back
        return None


def load() -> ModuleType:
    """The ``xgboost`` module (imported once per process; see the module docstring). Safe from any thread: a
    thread that arrives while another imports it waits for the whole module, never gets it half-initialised."""
    global _MODULE
    if _MODULE is not None:
        return _MODULE
    with _LOCK:
        if _MODULE is None:
            if "xgboost" in sys.modules or "sklearn" in sys.modules:  # imported elsewhere, or nothing to save
                import xgboost  # lazy: about 0.2 s to load its native library; only fitting and reading models need it
            else:
                finder = _HideSklearnFromXgboostCompat()
                sys.meta_path.insert(0, finder)
                try:
                    import xgboost  # lazy: as above, without its scikit-learn wrappers
                finally:
                    sys.meta_path.remove(finder)
            _MODULE = xgboost
    return _MODULE


def sklearn_api_loaded() -> bool:
    """Whether xgboost's scikit-learn wrappers in this process are built on scikit-learn."""
    module = sys.modules.get("xgboost.compat")
    return bool(module is not None and getattr(module, "SKLEARN_INSTALLED", False))


def load_with_sklearn_api() -> ModuleType:
    """``xgboost`` with its scikit-learn wrappers (``xgboost.XGBRegressor`` ...) built on scikit-learn."""
    import sklearn  # noqa: F401  # lazy: only the sklearn wrappers need scikit-learn; loaded before xgboost

    xgboost = load()
    with _LOCK:
        if not sklearn_api_loaded():
            compat = importlib.reload(sys.modules["xgboost.compat"])
            # lazy: xgboost's sklearn wrappers, re-executed on the scikit-learn loaded above
            wrappers = importlib.reload(importlib.import_module("xgboost.sklearn"))
            for name in _SKLEARN_WRAPPERS:
                if hasattr(wrappers, name):
                    setattr(xgboost, name, getattr(wrappers, name))
            assert compat.SKLEARN_INSTALLED
    return xgboost
