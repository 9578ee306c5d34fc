"""Shared fixtures: a real DuckDB store built once from the committed seed data, cheap per-test copies, and the same
seed on a DuckLake with a real PostgreSQL catalog (``any_store`` runs a test on both backends)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from wattgpu_core.store import Store

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def seed_db_path(tmp_path_factory) -> Path:
    """Path of a store built from data/seed (do not write to it; use ``store`` for a private copy)."""
    path = tmp_path_factory.mktemp("seed") / "seed.duckdb"
    Store.build(path).close()
    return path


@pytest.fixture
def store_path(seed_db_path, tmp_path) -> Path:
    """A private copy of the seed store for one test."""
    path = tmp_path / "wattgpu.duckdb"
    shutil.copy(seed_db_path, path)
    return path


@pytest.fixture
def store(store_path):
    with Store.open(store_path) as s:
        yield s


@pytest.fixture(scope="session")
def pg_cluster():
    """A throwaway PostgreSQL cluster for the whole session (the DuckLake catalog); stopped and deleted at the end.
    Skipped, with the reason, only where no PostgreSQL binary is installed."""
    from wattgpu_core.testing.postgres import NO_POSTGRES, find_bin_dir, throwaway_cluster

    if find_bin_dir() is None:
        pytest.skip(NO_POSTGRES)
    with throwaway_cluster() as cluster:
        yield cluster


@pytest.fixture
def lake(pg_cluster, tmp_path):
    """A fresh DuckLake store (its own PostgreSQL database, Parquet files under tmp_path) built from the seed."""
    from wattgpu_core.backend import resolve

    backend = resolve(pg_cluster.lake_spec(), tmp_path / "lake-data")
    Store.build(backend).close()
    return backend


@pytest.fixture(params=["file", "lake"])
def any_store_path(request, tmp_path, seed_db_path):
    """The seed store on each backend: a private copy of the embedded file, or a fresh DuckLake."""
    if request.param == "file":
        path = tmp_path / "wattgpu.duckdb"
        shutil.copy(seed_db_path, path)
        return path
    return request.getfixturevalue("lake")


@pytest.fixture
def any_store(any_store_path):
    with Store.open(any_store_path) as s:
        yield s


@pytest.fixture(scope="session", autouse=True)
def evaluation_cache_dir(tmp_path_factory):
    """One evaluation cache for the whole session (the app and the CLI honour $WATTGPU_CACHE_DIR), so the
    cross-validation behind a page is computed once, never in the repository's data/ folder."""
    path = tmp_path_factory.mktemp("evaluation-cache")
    old = os.environ.get("WATTGPU_CACHE_DIR")
    os.environ["WATTGPU_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("WATTGPU_CACHE_DIR", None)
    else:
        os.environ["WATTGPU_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def warm_evaluation(seed_db_path, evaluation_cache_dir):
    """The Cross-validation page's evaluations (both modes) computed once into the session cache; every store
    copied from the seed has the same content, hence the same cache key."""
    from wattgpu_core.evaluation_cache import cached_evaluation
    from wattgpu_core.retraining import evaluated_model_sets
    from wattgpu_core.shipped import load_evaluation

    with Store.open(seed_db_path) as s:  # the evaluation shipped with the models when current, else computed once
        return {compat: load_evaluation(s, compat, evaluated_model_sets())
                or cached_evaluation(s, compat, evaluated_model_sets()) for compat in (False, True)}
