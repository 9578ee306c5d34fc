"""The committed seed tables are exactly what our importers make of the vendored raw files, and the raw files are
exactly the shared copies (where that folder exists; CI clones only the repository)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wattgpu_core.paths import RAW_DIR, ROOT, SEED_DIR
from wattgpu_core.seed import build_seed_tables, write_seed

SHARED_DATA = ROOT.parent / "shared" / "data"


def _shared_counterpart(relative: Path) -> Path:
    """Where a file of data/raw lives under the shared data folder."""
    top = relative.parts[0]
    if top in ("catalog", "wattgpu", "planning"):
        return SHARED_DATA / relative
    if top == "vidur_profiling":
        return SHARED_DATA / "measured" / relative
    if relative == Path("PROVENANCE-measured.md"):
        return SHARED_DATA / "measured" / "PROVENANCE.md"
    return SHARED_DATA / "measured" / "raw" / relative


def test_rebuilding_the_seed_from_raw_matches_the_committed_tables_byte_for_byte(tmp_path):
    written = write_seed(build_seed_tables(), tmp_path)
    committed = sorted(p.name for p in SEED_DIR.glob("*.csv"))
    assert sorted(p.name for p in written) == committed
    for path in written:
        assert path.read_bytes() == (SEED_DIR / path.name).read_bytes(), f"{path.name} differs from data/seed"


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="the shared data folder exists only on the development machine")
def test_raw_files_are_byte_identical_to_the_shared_copies():
    raw_files = sorted(p for p in RAW_DIR.rglob("*") if p.is_file())
    assert len(raw_files) > 300
    different = [str(p.relative_to(RAW_DIR)) for p in raw_files
                 if _shared_counterpart(p.relative_to(RAW_DIR)).read_bytes() != p.read_bytes()]
    assert different == []
    # and nothing of the shared data is missing from data/raw
    shared = {p for p in SHARED_DATA.rglob("*") if p.is_file()}
    vendored = {_shared_counterpart(p.relative_to(RAW_DIR)) for p in raw_files}
    assert shared - vendored == set()
