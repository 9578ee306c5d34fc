"""Shared fixtures: a real DuckDB store built once from the committed seed data, and cheap per-test copies."""

from __future__ import annotations

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
