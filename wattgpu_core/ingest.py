"""Ingest: one call from a file (path or bytes) to runs in the store, all or nothing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .errors import Issue, ValidationError
from .importers import parse_bytes, prepare, sha256
from .paths import MANUAL_DIR
from .store import IngestResult, Store


def source_gpu_map() -> pd.DataFrame:
    return pd.read_csv(MANUAL_DIR / "source_gpu_map.csv")


def validate_bytes(store: Store, file_name: str, data: bytes, fmt: str | None = None):
    """Parse and validate without writing; returns a PreparedImport or raises ValidationError."""
    parsed = parse_bytes(file_name, data, fmt)
    return prepare(parsed, store.gpus(), store.llms(), source_gpu_map(), file_name=file_name,
                   file_sha256=sha256(data))


def ingest_bytes(store: Store, file_name: str, data: bytes, fmt: str | None = None,
                 on_conflict: str = "refuse") -> IngestResult:
    return store.ingest(validate_bytes(store, file_name, data, fmt), on_conflict=on_conflict)


def ingest_path(store: Store, path: Path | str, fmt: str | None = None, on_conflict: str = "refuse") -> IngestResult:
    path = Path(path)
    if not path.is_file():
        raise ValidationError([Issue(0, "", f"no such file: {path}")])
    return ingest_bytes(store, path.name, path.read_bytes(), fmt, on_conflict)
