"""The one GPU ranking: its rule, and Compare GPUs, the ``rank`` command and the report ranking alike."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pages.view import compare as view_compare
from pages.view import report
from pages.view.url_state import Workload
from wattgpu_core.cli import main
from wattgpu_core.planning import load_model_set
from wattgpu_core.ranking import rank_gpus, rankable_gpus
from wattgpu_core.store import Store

LLM = "Qwen/Qwen3-14B"  # 28 GB of 16-bit weights: several catalog GPUs cannot hold it


@pytest.fixture(scope="module")
def catalogs(seed_db_path):
    with Store.open(seed_db_path, read_only=True) as store:
        return store.gpus(), store.llms()


@pytest.fixture(scope="module")
def model_set():
    return load_model_set("default")


def _check_rule(ranked: pd.DataFrame) -> None:
    """GPUs that hold the model first, ranked 1..n; carrying the load before saturated; predicted before missing;
    ascending energy per token within each group; the others after, unranked."""
    fits = ranked["fits"].to_numpy(bool)
    n = int(fits.sum())
    assert fits[:n].all() and not fits[n:].any(), "a GPU that cannot hold the model is ranked above one that can"
    assert ranked["rank"].iloc[:n].tolist() == list(range(1, n + 1))
    assert ranked["rank"].iloc[n:].isna().all()
    for part in (ranked.iloc[:n], ranked.iloc[n:]):
        serves = part["serves_load"].to_numpy(bool)
        assert not np.any(~serves[:-1] & serves[1:]), "a saturated GPU is ranked above one that carries the load"
        for _, group in part.groupby("serves_load", sort=False):
            energy = group["energy_per_token_j"].to_numpy(float)
            known = np.isfinite(energy)
            assert not np.any(~known[:-1] & known[1:]), "a missing prediction is ranked above a predicted one"
            assert (np.diff(energy[known]) >= 0).all()


@pytest.mark.parametrize("workload", [
    {"scenario": "offline", "batch_size": 64.0, "input_tokens": 500.0, "output_tokens": 500.0},
    {"scenario": "server", "request_rate_qps": 40.0, "input_tokens": 1000.0, "output_tokens": 300.0},
])
def test_rank_gpus_rule(catalogs, model_set, workload):
    gpus, llms = catalogs
    ranked = rank_gpus(LLM, workload, gpus, llms, model_set)
    assert len(ranked) == gpus["gpu_id"].nunique() and set(ranked["gpu_id"]) == set(gpus["gpu_id"])
    assert not ranked.loc[ranked["gpu_id"] == "t4", "fits"].iloc[0]  # 28 GB of weights on 16 GB
    _check_rule(ranked)
    if workload["scenario"] == "server":  # 40 requests/s of 300 tokens saturates some GPUs, not all
        held = ranked[ranked["fits"]]
        assert held["saturated"].any() and not held["saturated"].all()
    else:
        assert not ranked["saturated"].any()


def test_rankable_gpus_are_nvidia_with_every_spec(catalogs):
    gpus, _ = catalogs
    usable, lacking = rankable_gpus(gpus)
    assert len(usable) and set(usable["vendor"].fillna("NVIDIA")) == {"NVIDIA"}
    assert set(usable["gpu_id"]).isdisjoint(lacking["gpu_id"])


def test_compare_the_rank_command_and_the_report_rank_alike(seed_db_path, catalogs, model_set, tmp_path, capsys):
    """One case, three callers: the Compare page's table, ``python -m wattgpu_core rank`` and the report's CSV list
    the GPUs in the same order with the same rank numbers."""
    gpus, llms = catalogs
    workload = Workload("server", 64, 12.0, 1000, 300)
    comparison = view_compare.compare_gpus(LLM, workload, gpus, llms, model_set)
    page = view_compare.display_table(comparison.ranked)
    names = gpus.set_index("gpu_id")["name"]
    page_order = [str(r) for r in comparison.ranked["gpu_id"]]
    assert page["GPU"].tolist() == [names[g] for g in page_order]
    assert page["Rank"].tolist() == list(range(1, len(page_order) + 1))
    assert len(page_order) >= 5 and comparison.ranked["saturated"].any()

    csv = tmp_path / "rank.csv"
    code = main(["rank", "--db", str(seed_db_path), "--llm", LLM, "--scenario", "server", "--rate-qps", "12",
                 "--input-tokens", "1000", "--output-tokens", "300", "--model-set", "default", "--csv", str(csv)])
    assert code == 0
    table = capsys.readouterr().out
    printed = [line.split("|")[2].strip() for line in table.splitlines()[2:]]
    cli = pd.read_csv(csv)
    cli_order = cli.loc[cli["rank"].notna(), "gpu_id"].tolist()
    assert cli_order == page_order
    assert printed[: len(page_order)] == page_order
    assert cli.loc[cli["rank"].notna(), "rank"].astype(int).tolist() == list(range(1, len(page_order) + 1))
    assert set(cli.loc[cli["rank"].isna(), "gpu_id"]) == set(comparison.cannot_hold["gpu_id"])

    with Store.open(seed_db_path, read_only=True) as store:
        written = report.write_comparison(store, "default", model_set, tmp_path, llm_id=LLM, workload=workload)
    published = pd.read_csv(next(p for p in written if p.suffix == ".csv"))
    ranked_rows = published[published["rank"].notna()]
    assert ranked_rows["gpu_id"].tolist() == page_order
    assert ranked_rows["rank"].astype(int).tolist() == list(range(1, len(page_order) + 1))
