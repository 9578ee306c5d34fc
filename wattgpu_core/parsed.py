"""What an importer hands on: the rows read from one file (:class:`ParsedFile`), before names are resolved and values
validated, and the same rows validated and ready to be written (:class:`PreparedImport`). Every format's parser
builds a ParsedFile from an empty run table (:func:`empty_runs`); ``importers.validate.prepare`` turns it into a
PreparedImport, which the store writes. This module depends only on the schema, so the store takes prepared rows
without depending on the parsers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .schema import RUN_COLUMNS, names

DATA_COLUMNS = [c for c in names(RUN_COLUMNS) if c not in ("run_id", "batch_id")]  # what an import fills


@dataclass(frozen=True)
class ParsedFile:
    """Rows read from a file, names not yet resolved. ``frame`` has run columns plus ``_row`` (1-based data row)."""

    format: str
    frame: pd.DataFrame
    column_names: dict[str, str]  # run column -> column name in the user's file, for messages
    source_id: str
    warnings: tuple[str, ...] = ()
    attributions: tuple[tuple[str, str], ...] = ()  # (source_id, attribution) stated in the file


@dataclass(frozen=True)
class PreparedImport:
    """Validated rows ready to be written: every run column filled or NaN, names resolved."""

    format: str
    frame: pd.DataFrame
    source_id: str
    file_name: str
    file_sha256: str
    warnings: tuple[str, ...] = ()
    attributions: tuple[tuple[str, str], ...] = ()

    @property
    def n_rows(self) -> int:
        return len(self.frame)


def empty_runs(n: int) -> dict[str, np.ndarray]:
    """Run columns for ``n`` rows, all missing (NaN for numbers, None for text); ids are the store's to set."""
    out = {}
    for c in RUN_COLUMNS:
        if c.name in ("run_id", "batch_id"):
            continue
        out[c.name] = np.full(n, np.nan) if c.is_numeric else np.full(n, None, dtype=object)
    return out
