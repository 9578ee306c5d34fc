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
    if top in ("tokenpowerbench", "vidur_profiling"):  # added beside raw/ in the shared folder
        return SHARED_DATA / "measured" / relative
    return SHARED_DATA / "measured" / "raw" / relative


# Files of data/raw that are ours, not copies: provenance notes, and Vidur's GEMM times of one model at TP 1 (a row and
# column subset of its mlp.csv files, checked below). Shared folders we vendor only in part (Vidur: the subset) or not
# at all (planning: not measurement data) are not required in full.
OURS = {Path("tokenpowerbench") / "PROVENANCE.md", Path("vidur_profiling") / "llama2_7b_tp1_gemm_ms.csv"}
PARTLY_VENDORED = ("vidur_profiling", "planning")


def test_rebuilding_the_seed_from_raw_matches_the_committed_tables_byte_for_byte(tmp_path):
    written = write_seed(build_seed_tables(), tmp_path)
    committed = sorted(p.name for p in SEED_DIR.glob("*.csv"))
    assert sorted(p.name for p in written) == committed
    for path in written:
        assert path.read_bytes() == (SEED_DIR / path.name).read_bytes(), f"{path.name} differs from data/seed"


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="the shared data folder exists only on the development machine")
def test_raw_files_are_byte_identical_to_the_shared_copies():
    raw_files = sorted(p for p in RAW_DIR.rglob("*") if p.is_file() and p.relative_to(RAW_DIR) not in OURS)
    assert len(raw_files) > 300
    different = [str(p.relative_to(RAW_DIR)) for p in raw_files
                 if _shared_counterpart(p.relative_to(RAW_DIR)).read_bytes() != p.read_bytes()]
    assert different == []
    # and nothing of the shared data is missing from data/raw
    shared = {p for p in SHARED_DATA.rglob("*") if p.is_file() and p.name != ".DS_Store"
              and not any(part in PARTLY_VENDORED for part in p.relative_to(SHARED_DATA).parts[:2])}
    vendored = {_shared_counterpart(p.relative_to(RAW_DIR)) for p in raw_files}
    assert shared - vendored == set()


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="the shared data folder exists only on the development machine")
def test_vidur_subset_is_the_shared_profile_rows_at_tp1_unchanged():
    import pandas as pd

    subset = pd.read_csv(RAW_DIR / "vidur_profiling" / "llama2_7b_tp1_gemm_ms.csv")
    for gpu, part in subset.groupby("gpu", sort=False):
        full = pd.read_csv(SHARED_DATA / "measured" / "vidur_profiling" / "compute" / gpu / "meta-llama"
                           / "Llama-2-7b-hf" / "mlp.csv")
        full = full[full["num_tensor_parallel_workers"] == 1].reset_index(drop=True)
        cols = [c for c in part.columns if c != "gpu"]
        pd.testing.assert_frame_equal(part[cols].reset_index(drop=True), full[cols])
