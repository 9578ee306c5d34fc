"""Where WattGPU keeps its files: data folders, seed tables, model files and the default store path."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"
RAW_DIR = DATA_DIR / "raw"
MANUAL_DIR = DATA_DIR / "manual"
SEED_DIR = DATA_DIR / "seed"
FIXTURES_DIR = DATA_DIR / "fixtures"
MODELS_DIR = ROOT / "models"
DEFAULT_DB = DATA_DIR / "wattgpu.duckdb"
