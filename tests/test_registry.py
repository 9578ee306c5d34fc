"""The model-set registry: one protocol, explicit registration, no name tests outside it, no import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wattgpu_core import plus, registry
from wattgpu_core.baselines import BaselineModelSet
from wattgpu_core.model_set import ModelSet
from wattgpu_core.models import PaperModelSet
from wattgpu_core.paths import MODELS_DIR
from wattgpu_core.planning import load_model_set

CORE = Path(registry.__file__).resolve().parent


def test_every_model_set_is_registered_in_one_place_and_implements_the_protocol():
    assert set(registry.MODEL_SETS) == {"paper", "plus", "tdp", "ls-tdp", "roofline"}
    for name in registry.MODEL_SETS:
        ms = registry.get_model_set(name)
        assert isinstance(ms, ModelSet) and ms.name == name and ms.label and set(ms.targets) <= {"power", "itl"}
    assert isinstance(registry.get_model_set("paper"), PaperModelSet)
    assert isinstance(registry.get_model_set("plus"), plus.PlusModelSet)
    assert isinstance(registry.get_model_set("roofline"), BaselineModelSet)
    assert registry.TRAINABLE == ("paper", "plus")
    assert [registry.get_model_set(n).reads_workload for n in ("paper", "plus")] == [False, True]
    with pytest.raises(registry.WattGPUError, match="unknown model set 'nope'; known: ls-tdp, paper, plus"):
        registry.get_model_set("nope")
    with pytest.raises(NotImplementedError, match="TDP has no files"):
        registry.get_model_set("tdp").load(MODELS_DIR)


def test_only_the_registry_registers_model_sets_and_no_caller_tests_a_kind():
    """No module but the registry adds to MODEL_SETS; models.py never names WattGPU+; no module of the model layer,
    planning or the explanations compares a model set's ``kind`` or name with a string."""
    for path in CORE.glob("*.py"):
        tree = ast.parse(path.read_text())
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") ==
                 "register_model_set"]
        assert path.name == "registry.py" or not calls, path.name
    models = ast.parse((CORE / "models.py").read_text())
    assert not [n for n in ast.walk(models) if isinstance(n, ast.Constant) and n.value == "plus"]
    for name in ("models", "plus", "evaluation", "explain", "planning", "cli_models", "external"):
        for node in ast.walk(ast.parse((CORE / f"{name}.py").read_text())):
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                kind = any(isinstance(x, ast.Attribute) and x.attr == "kind" for x in sides)
                named = any(isinstance(x, ast.Constant) and x.value in ("plus", "paper") for x in sides)
                assert not kind and not (named and any(isinstance(x, ast.Name) and x.id in ("name", "kind")
                                                       for x in sides)), f"{name}.py:{node.lineno}"


def test_loading_goes_through_the_set_itself():
    fitted, meta = registry.load_fitted("paper", MODELS_DIR)
    assert set(fitted) == {"power", "itl"} and meta["model_set"] == "paper"
    fitted, meta = registry.load_fitted("plus", MODELS_DIR)
    assert meta["format"].startswith("wattgpu+") and hasattr(fitted["itl"], "breakdown")
    assert load_model_set("plus").kind == "plus" and load_model_set("paper").kind == "paper"


def test_which_set_predicts_what_is_asked_of_the_registry():
    default, paper, plus_set = load_model_set("default"), load_model_set("paper"), load_model_set("plus")
    pools = np.asarray(["offline", "server", "server", "offline"], dtype=object)
    for loaded in (default, paper, plus_set):
        for target in ("power", "itl"):
            names = loaded.uses(target, pools)
            assert list(names) == [loaded.uses(target, p) for p in pools]  # vectorised = one at a time
            reads = registry.uses_workload_model(loaded, target, pools)
            assert list(reads) == [registry.get_model_set(n).reads_workload for n in names]
    assert registry.workload_part(paper) is None and registry.workload_models(paper) == {}
    assert registry.workload_part(plus_set) is plus_set
    assert registry.workload_part(default) is default.parts["plus"]
    assert set(registry.parts(default)) == {"plus", "paper"} and registry.parts(paper) == {"paper": paper}
    assert set(default.uses("power", pools)) <= {"plus", "paper"}


def test_out_of_range_vectorised_gives_the_same_notes_as_row_by_row():
    ranges = {"memory_bandwidth_gb_s": [300.0, 4000.0], "tdp_w": [70.0, 700.0], "total_params_b": None,
              "memory_size_gb": [16.0, 141.0]}
    frame = pd.DataFrame({"memory_bandwidth_gb_s": [100.0, 3000.0, np.nan, 8000.0, 100.0],
                          "tdp_w": [1000.0, 300.0, 300.0, 50.0, 1000.0], "memory_size_gb": ["x", 80.0, 80, 80, 192]})
    got = plus.out_of_range(frame, ranges)

    def one(row):
        notes = []
        for c, bounds in ranges.items():
            if not bounds or c not in frame:
                continue
            v = pd.to_numeric(pd.Series([row[c]]), errors="coerce").iloc[0]
            lo, hi = bounds
            name, unit = plus.RANGE_LABELS[c], plus._RANGE_UNITS[c]
            if not np.isfinite(v):
                notes.append(f"{name} unknown (training range {lo:,.4g}–{hi:,.4g}{unit})")
            elif v < lo * (1 - 1e-9) or v > hi * (1 + 1e-9):
                where = "above" if v > hi else "below"
                notes.append(f"{name} ({v:,.4g}{unit}) {where} the training range {lo:,.4g}–{hi:,.4g}{unit}")
        return "; ".join(notes)

    assert list(got) == [one(r) for _, r in frame.iterrows()]
    assert got[1] == "" and got[0].count(";") == 2 and "GPU's TDP (1,000 W) above" in got[0]


def _imports(path: Path) -> set[str]:
    """Every wattgpu_core module ``path`` imports, in-function imports included."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module.split(".")[0])
            else:
                out.update(a.name for a in node.names)
    return out


def test_models_evaluation_and_cross_validation_import_no_cycle():
    """The model layer (evaluation -> registry -> plus -> loso -> cv -> model_set) is a DAG, counting imports
    inside functions too."""
    layer = ("model_set", "cv", "baselines", "models", "loso", "grouped_shap", "plus", "registry", "evaluation",
             "evaluation_cache", "explain", "external", "cli_models")
    graph = {m: _imports(CORE / f"{m}.py") & set(layer) for m in layer}
    state: dict[str, int] = {}

    def visit(m, path):
        if state.get(m) == 1:
            raise AssertionError("import cycle: " + " -> ".join([*path, m]))
        if state.get(m) == 2:
            return
        state[m] = 1
        for d in sorted(graph[m]):
            visit(d, [*path, m])
        state[m] = 2

    for m in layer:
        visit(m, [])
    assert "evaluation" not in graph["plus"] | graph["loso"] | graph["models"]
    assert "plus" not in graph["models"] and "registry" not in graph["models"] | graph["plus"]


@pytest.mark.parametrize("name", ["paper", "plus"])
def test_save_writes_back_what_load_read(name, tmp_path):
    """A set's save(load(folder)) reproduces its committed files byte for byte: how a retrained set's metadata is
    changed without patching JSON by hand."""
    ms = registry.get_model_set(name)
    fitted, meta = registry.load_fitted(name, MODELS_DIR)
    ms.save(fitted, meta, tmp_path)
    for t in ms.targets:
        file = meta["targets"][t]["file"]
        assert (tmp_path / file).read_bytes() == (MODELS_DIR / file).read_bytes(), file
    assert (tmp_path / f"{name}.meta.json").read_bytes() == (MODELS_DIR / f"{name}.meta.json").read_bytes()
    again, _ = registry.load_fitted(name, tmp_path)
    assert set(again) == set(fitted)


def test_a_composite_predicts_what_its_chosen_set_does_not_model_with_the_workload_model(seed_db_path):
    """The default set picks a model per target and scenario; a row the pick does not model (the paper's XGB knows
    dense, 16-bit, single-GPU runs only) goes to WattGPU+, and the row's ``*_model`` and notes say so."""
    from wattgpu_core.planning import predict
    from wattgpu_core.store import Store

    ms = load_model_set("default")
    paper, plus_label = registry.parts(ms)["paper"].label, registry.parts(ms)["plus"].label
    with Store.open(seed_db_path, read_only=True) as store:
        gpus, llms = store.gpus(), store.llms()
    dense, moe = "meta-llama/Llama-3.1-8B-Instruct", "openai/gpt-oss-20b"
    requests = pd.DataFrame([
        {"llm": dense, "gpu": "h100-sxm5-80gb", "scenario": "offline"},
        {"llm": dense, "gpu": "h100-sxm5-80gb", "scenario": "offline", "precision": "fp8"},
        {"llm": dense, "gpu": "h100-sxm5-80gb", "scenario": "offline", "num_gpus": 2},
        {"llm": moe, "gpu": "h100-sxm5-80gb", "scenario": "offline"},
    ])
    out = predict(requests, gpus, llms, ms)
    for target in ("power", "itl"):
        chosen = registry.parts(ms)[ms.uses(target, "offline")].label
        assert out.loc[0, f"{target}_model"] == chosen
        assert out.loc[1:, f"{target}_model"].tolist() == [plus_label] * 3
    assert not out["notes"].str.contains("MoE not supported").any()
    assert "MoE: modelled by active parameters" in out.loc[3, "notes"]
    # a row the paper's set does model stays with the pick, whichever it is
    assert {paper, plus_label} >= set(out["power_model"])
