"""Importers: every file WattGPU reads from outside becomes validated runs in the project's schema here.

One module per format, each turning a file into a :class:`~wattgpu_core.parsed.ParsedFile` of run columns
(``schema.RUN_COLUMNS``), names not yet resolved:

- ``canonical``: WattGPU's canonical CSV (and its template); ``wattcounts``: both CSV forms of Watt Counts;
  ``mlenergy_v2``, ``mlenergy_v1``, ``argonne``, ``tokenpowerbench``: the published sources of the seed data.
- ``vllm_bench``, ``guidellm`` (benchmark results, via ``bench_results``) and ``powerlog`` (nvidia-smi, DCGM, zeus):
  files that only make runs together; ``pair`` puts a result and its power log together and writes them.

Around them: ``sniff`` says which format a file is (the one detector); ``parse`` reads one file's bytes with the
format's parser (``reading`` holds the checks every file passes and the CSV reader, ``request_lists`` the
per-request lists and the exact server ITL); ``validate.prepare`` resolves names and checks values, all or nothing,
naming row and column (``issues`` collects the problems). The store takes the prepared rows; it depends on
``parsed`` and ``sources``, never on this package.
"""

from __future__ import annotations

from ..parsed import ParsedFile, PreparedImport
from .canonical import canonical_template
from .parse import parse_bytes
from .sniff import FORMATS
from .validate import prepare, sha256

__all__ = ["FORMATS", "ParsedFile", "PreparedImport", "canonical_template", "parse_bytes", "prepare", "sha256"]
