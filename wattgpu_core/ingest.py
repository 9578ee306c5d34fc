"""Ingest: one call from a file (path or bytes) to runs in the store, all or nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import Issue, ValidationError
from .importers.issues import MAX_ISSUES
from .importers.parse import parse_bytes
from .importers.validate import prepare, sha256, source_gpu_map
from .parsed import ParsedFile
from .sources import SOURCES
from .store import IngestResult, Store


def validate_bytes(store: Store, file_name: str, data: bytes, fmt: str | None = None):
    """Parse and validate without writing; returns a PreparedImport or raises ValidationError."""
    parsed = parse_bytes(file_name, data, fmt)
    prepared = prepare(parsed, store.gpus(), store.llms(), source_gpu_map(), file_name=file_name,
                       file_sha256=sha256(data))
    _check_new_sources(parsed, set(store.sources()["source_id"]))
    return prepared


def _check_new_sources(parsed: ParsedFile, known: set[str]) -> None:
    """A source_id the store does not know yet becomes a new source: its rows must state its license and the file
    its attribution (column ``attribution``), else the file is rejected naming row and column."""
    frame = parsed.frame
    if "_license_given" not in frame.columns:
        return
    new = ~frame["source_id"].isin(known | set(SOURCES)).to_numpy(dtype=bool)
    if not new.any():
        return
    attributed = {s for s, a in parsed.attributions if a and str(a).strip()}
    issues = []
    no_license = new & ~frame["_license_given"].to_numpy(dtype=bool)
    no_attribution = new & ~frame["source_id"].isin(attributed).to_numpy(dtype=bool)
    rows = frame["_row"].to_numpy()
    for mask, column, what in ((no_license, "license", "its license (e.g. CC-BY-4.0)"),
                               (no_attribution, "attribution", "an attribution (who to credit)")):
        for i in np.flatnonzero(mask):
            issues.append(Issue(int(rows[i]), column, f"source_id {frame['source_id'].iloc[i]!r} is new: give "
                                                      f"{what} in the {column} column"))
    if issues:
        issues.sort(key=lambda i: (i.row, i.column))
        raise ValidationError(issues[:MAX_ISSUES], len(issues))


def ingest_bytes(store: Store, file_name: str, data: bytes, fmt: str | None = None,
                 on_conflict: str = "refuse") -> IngestResult:
    return store.ingest(validate_bytes(store, file_name, data, fmt), on_conflict=on_conflict)


def ingest_path(store: Store, path: Path | str, fmt: str | None = None, on_conflict: str = "refuse") -> IngestResult:
    path = Path(path)
    if not path.is_file():
        raise ValidationError([Issue(0, "", f"no such file: {path}")])
    return ingest_bytes(store, path.name, path.read_bytes(), fmt, on_conflict)
