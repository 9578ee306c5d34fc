"""Cross-validation's workers: WattGPU+ (fits in Python) fits in worker processes, the paper's XGB in threads, and
where a fit runs never changes what it predicts."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from wattgpu_core import cv
from wattgpu_core.models import ModelSet, auxiliary_frame, target_rows, training_frame
from wattgpu_core.plus import PlusModelSet
from wattgpu_core.store import Store


class _Pid:
    def predict(self, rows):
        return np.full(len(rows), float(os.getpid()))


class PidModelSet(ModelSet):
    """Predicts the id of the process that fitted it."""

    name = label = "pid"
    targets = ("power",)
    fits_hold_the_gil = True

    def features(self, target):
        return ("scenario_detail",)

    def fit(self, target, train, *, n_threads=1, seed=0):
        return _Pid()


class ThreadPidModelSet(PidModelSet):
    fits_hold_the_gil = False


@pytest.fixture(scope="module")
def data(seed_db_path):
    with Store.open(seed_db_path, read_only=True) as store:
        return training_frame(store), auxiliary_frame(store)


@pytest.mark.parametrize("model_set, in_processes", [(PidModelSet(), True), (ThreadPidModelSet(), False)])
def test_fits_that_hold_the_gil_run_in_worker_processes(data, model_set, in_processes):
    frame = data[0]
    rows = {"power": target_rows(frame, "power", ("scenario_detail",))}
    pred, folds = cv.out_of_fold(model_set, rows, ("LOGO",), n_jobs=2)[("power", "LOGO")]
    assert (folds >= 0).all() and np.isfinite(pred).all()
    pids = set(pred.astype(int))
    if in_processes:
        assert os.getpid() not in pids and 1 <= len(pids) <= 2
    else:
        assert pids == {os.getpid()}
    serial, _ = cv.out_of_fold(model_set, rows, ("LOGO",), n_jobs=1)[("power", "LOGO")]
    assert set(serial.astype(int)) == {os.getpid()}


def test_the_same_predictions_in_processes_threads_and_in_order(data):
    frame, aux = data
    keep = sorted(frame["gpu_id"].unique())[:3]
    small = frame[frame["gpu_id"].isin(keep)].reset_index(drop=True)
    model_set = PlusModelSet()
    rows = {t: target_rows(small, t, model_set.features(t)) for t in model_set.targets}
    aux_by = {t: aux for t in rows}
    serial = cv.out_of_fold(model_set, rows, ("LOGO",), aux_by_target=aux_by, n_jobs=1)
    parallel = cv.out_of_fold(model_set, rows, ("LOGO",), aux_by_target=aux_by, n_jobs=2)
    for key, (pred, folds) in serial.items():
        assert np.isfinite(pred).all()
        np.testing.assert_allclose(parallel[key][0], pred, rtol=1e-12)
        assert (parallel[key][1] == folds).all()
    # beside another thread (as in the Streamlit server) the workers start from a fork server instead of a fork
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        beside = cv.out_of_fold(model_set, rows, ("LOGO",), aux_by_target=aux_by, n_jobs=2)
    finally:
        stop.set()
        other.join()
    for key, (pred, _) in serial.items():
        np.testing.assert_allclose(beside[key][0], pred, rtol=1e-12)


def test_one_nested_fit_serves_both_gpus_of_a_pair(data):
    frame, aux = data
    keep = sorted(frame["gpu_id"].unique())[:3]
    small = frame[frame["gpu_id"].isin(keep)].reset_index(drop=True)
    model_set = PlusModelSet()
    rows = {"itl": target_rows(small, "itl", model_set.features("itl"))}
    logo = cv.out_of_fold(model_set, rows, ("LOGO",), aux_by_target={"itl": aux}, n_jobs=1)[("itl", "LOGO")][0]
    lo, hi = cv.nested_logo_intervals(model_set, rows, {"itl": logo}, level=0.8, aux_by_target={"itl": aux},
                                      n_jobs=1)["itl"]
    # by hand, one inner run per (held-out, tested) GPU as the protocol states it
    r = rows["itl"]
    gpu = r["gpu_id"].astype(str).to_numpy()
    prepared = model_set.prepare("itl", r, aux)
    pools = r["scenario_detail"].map(cv.SCENARIO_POOL).to_numpy(dtype=object)
    for g in keep:
        idx, pred = [], []
        for h in keep:
            if h == g:
                continue
            aux_rows = np.flatnonzero(~aux["gpu_id"].astype(str).isin([g, h]).to_numpy())
            test = np.flatnonzero(gpu == h)
            pred.append(prepared.fit_predict(np.flatnonzero((gpu != g) & (gpu != h)), test, aux_rows=aux_rows))
            idx.append(test)
        idx, pred = np.concatenate(idx), np.concatenate(pred)
        q = cv.interval_quantiles(r["itl_s"].to_numpy(float)[idx], pred, pools[idx], 0.8)
        mine = gpu == g
        want_lo, want_hi = cv.apply_intervals(logo[mine], pools[mine], q)
        np.testing.assert_allclose(lo[mine], want_lo, rtol=1e-12)
        np.testing.assert_allclose(hi[mine], want_hi, rtol=1e-12)
