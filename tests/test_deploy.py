"""Deployment planning: the cost formulas against hand-worked numbers, the default price rule, capacity and fleet
size monotone in load and in the ITL target, the ranking rule, the plan command's identities, exports."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pages.view.plan import PlanState
from wattgpu_core.deploy import HEADROOM, Costs, Traffic, fleet_figures, order_options, plan_deployments
from wattgpu_core.errors import UnknownNameError, ValidationError
from wattgpu_core.paths import ROOT
from wattgpu_core.planning import load_model_set
from wattgpu_core.planning_data import build_planning_tables, default_gpu_prices, load_planning_defaults
from wattgpu_core.safety import csv_bytes
from wattgpu_core.store import Store

LLM = "meta-llama/Llama-3.1-8B-Instruct"
GPUS = ("h100-sxm5-80gb", "l40s", "a100-sxm4-80gb", "l4", "a30")


@pytest.fixture(scope="module")
def catalogs(seed_db_path):
    with Store.open(seed_db_path, read_only=True) as s:
        return s.gpus(), s.llms()


@pytest.fixture(scope="module")
def models():
    return load_model_set("default")


@pytest.fixture(scope="module")
def defaults():
    return load_planning_defaults()


def plan(catalogs, models, defaults, traffic, **kw):
    gpus, llms = catalogs
    kw.setdefault("gpu_names", GPUS)
    kw.setdefault("precisions", ("bf16", "fp8"))
    return plan_deployments(LLM, traffic, gpus, llms, Costs.from_defaults(defaults), model_set=models, **kw)


# ---------------------------------------------------------------------------------------------------------------
# Arithmetic
def test_fleet_figures_match_hand_worked_numbers():
    # 4 GPUs at 500 W, 5 req/s x 300 tokens = 1,500 tok/s, $3/GPU-hour, $0.10/kWh, PUE 1.5, 400 gCO2e/kWh:
    # fleet 2 kW; $/h = 4 x 3 + 2 x 1.5 x 0.10 = 12.30; tokens per hour = 5.4 M, so $/M tok = 12.30 / 5.4;
    # kWh/M tok = 2 x 1.5 / 5.4; gCO2e/M tok = that x 400; J/token = 2,000 W / 1,500 tok/s.
    f = fleet_figures(np.array([4.0, 4.0]), np.array([500.0, 500.0]), 5, 300, np.array([3.0, np.nan]), 0.10, 1.5, 400)
    assert f["fleet_power_kw"][0] == pytest.approx(2.0)
    assert f["usd_per_hour"][0] == pytest.approx(12.30)
    assert f["usd_per_mtok"][0] == pytest.approx(12.30 / 5.4)
    assert f["kwh_per_mtok"][0] == pytest.approx(3.0 / 5.4)
    assert f["gco2e_per_mtok"][0] == pytest.approx(3.0 / 5.4 * 400)
    assert f["energy_per_token_j"][0] == pytest.approx(2000 / 1500)
    # no price: no cost, but energy and carbon still
    assert math.isnan(f["usd_per_hour"][1]) and math.isnan(f["usd_per_mtok"][1])
    assert f["kwh_per_mtok"][1] == pytest.approx(3.0 / 5.4)


def test_default_gpu_price_is_the_median_of_each_providers_cheapest_on_demand_price():
    prices = build_planning_tables()["gpu_prices"]
    d = default_gpu_prices(prices)
    # H100 SXM5: cheapest on-demand per provider 1.7356 (Vast.ai), 2.69, 2.95, 3.25, 3.87, 3.90, 3.99, 6.88,
    # 11.0612, 12.29 -> median (3.87 + 3.90) / 2
    assert d["h100-sxm5-80gb"].value == pytest.approx((3.87 + 3.90) / 2)
    assert "10 providers" in d["h100-sxm5-80gb"].label and "Vast.ai 1.74" in d["h100-sxm5-80gb"].source
    # spot / committed rows never count: L4's GCP 3-year 0.3181 is not a provider's on-demand price
    assert d["l4"].value == pytest.approx(0.7068)
    # a GPU nobody lists gets no price; a name whose form factor the provider does not state is not mapped
    assert "a30" not in d and "v100-pcie-16gb" not in d
    assert prices.loc[prices["gpu_name"] == "NVIDIA V100 16GB", "gpu_id"].isna().all()


def test_every_planning_row_has_source_and_license():
    for name, table in build_planning_tables().items():
        assert table["source"].notna().all(), name
        assert table["license"].notna().all() and (table["license"].str.len() > 0).all(), name


def test_costs_overrides_and_region(defaults):
    costs = Costs.from_defaults(defaults, {"l4": 1.0}, usd_per_kwh=0.2, pue=1.2, region="France")
    assert costs.usd_per_gpu_hour["l4"] == 1.0 and costs.sources["price:l4"] == "given by the user"
    assert costs.gco2e_per_kwh == pytest.approx(44.18) and "Ember" in costs.sources["gco2e_per_kwh"]
    assert costs.usd_per_kwh == 0.2 and costs.pue == 1.2
    with pytest.raises(UnknownNameError, match="Atlantis"):
        Costs.from_defaults(defaults, region="Atlantis")
    with pytest.raises(ValidationError, match="pue"):
        Costs.from_defaults(defaults, pue=0.5)


def test_order_options_never_puts_a_failing_option_above_a_passing_one():
    frame = pd.DataFrame({"fits": [True, True, False, True, True], "meets_slo": [False, True, False, True, True],
                          "usd_per_mtok": [0.1, np.nan, 0.05, 2.0, 1.0]})
    out = order_options(frame, "usd_per_mtok")
    assert out["meets_slo"].tolist()[:3] == [True, True, True]
    assert out["usd_per_mtok"].tolist()[:3][:2] == [1.0, 2.0]  # priced first, cheapest first
    assert math.isnan(out["usd_per_mtok"].iat[2])  # unpriced after priced


# ---------------------------------------------------------------------------------------------------------------
# Planning
def test_plan_rows_hold_the_formulas_and_the_order(catalogs, models, defaults):
    traffic = Traffic(5, 1000, 300, itl_slo_s=0.05)
    out = plan(catalogs, models, defaults, traffic)
    assert len(out) == len(GPUS) * 4 * 2  # every option stays, fitting or not
    ok = (out["fits"] & out["meets_slo"]).to_numpy()
    assert ok.any() and not (~ok[:-1] & ok[1:]).any()  # passing options form the head
    priced = out[ok]["usd_per_mtok"]
    assert not (priced.isna().to_numpy()[:-1] & priced.notna().to_numpy()[1:]).any()
    assert (priced.dropna().diff().dropna() >= 0).all()
    good = out[ok]
    assert (good["gpus_total"] == good["replicas"] * good["tensor_parallel"]).all()
    assert (good["throughput_tok_s_per_replica"] <= HEADROOM * good["capacity_tok_s_per_replica"] + 1e-6).all()
    assert (good["itl_s"] <= 0.05 + 1e-9).all()
    fleet = good["gpus_total"] * good["power_w_per_gpu"] / 1000
    assert np.allclose(good["fleet_power_kw"], fleet)
    assert np.allclose(good["energy_per_token_j"], fleet * 1000 / 1500)
    # the A30 has no listed price: no cost, never a guessed one
    assert out.loc[out["gpu_id"] == "a30", "usd_per_mtok"].isna().all()
    # options that cannot run say why
    bad = out[~ok]
    assert (bad["notes"].str.len() > 0).all()


def test_more_load_never_needs_fewer_gpus(catalogs, models, defaults):
    totals = []
    for rate in (0.5, 2, 5, 12, 30):
        out = plan(catalogs, models, defaults, Traffic(rate, 1000, 300, itl_slo_s=0.05)).set_index(
            ["gpu_id", "tensor_parallel", "precision"])
        totals.append(out["gpus_total"].where(out["meets_slo"], np.inf))
    table = pd.concat(totals, axis=1)
    with np.errstate(invalid="ignore"):  # inf - inf: an option that never meets the targets
        diffs = np.diff(table.to_numpy(float), axis=1)
    assert not (diffs < 0).any(), table[(diffs < 0).any(axis=1)]
    assert (np.isfinite(table.to_numpy()).sum(axis=0) > 0).all()


def test_a_tighter_itl_target_never_gives_a_larger_batch(catalogs, models, defaults):
    batches, caps = [], []
    for itl in (0.2, 0.05, 0.03, 0.02, 0.012):
        out = plan(catalogs, models, defaults, Traffic(20, 1000, 300, itl_slo_s=itl)).set_index(
            ["gpu_id", "tensor_parallel", "precision"])
        batches.append(out["batch_per_replica"].where(out["meets_slo"], 0.0))
        caps.append(out["capacity_tok_s_per_replica"].fillna(0.0))
    for table in (pd.concat(batches, axis=1), pd.concat(caps, axis=1)):
        diffs = np.diff(table.to_numpy(float), axis=1)
        assert not (diffs > 1e-9).any(), table[(diffs > 1e-9).any(axis=1)]
    assert (pd.concat(batches, axis=1).iloc[:, 0] > 0).any()


def test_without_targets_capacity_is_the_saturation_throughput(catalogs, models, defaults):
    out = plan(catalogs, models, defaults, Traffic(5, 1000, 300))
    good = out[out["meets_slo"] & out["max_throughput_tok_s"].notna()]
    assert len(good)
    assert np.allclose(good["capacity_tok_s_per_replica"], good["max_throughput_tok_s"])


def test_unknown_names_and_bad_traffic_are_rejected(catalogs, models, defaults):
    gpus, llms = catalogs
    costs = Costs.from_defaults(defaults)
    with pytest.raises(UnknownNameError, match="no-such-llm"):
        plan_deployments("no-such-llm", Traffic(1, 100, 100), gpus, llms, costs, model_set=models)
    with pytest.raises(UnknownNameError, match="'H100'"):
        plan_deployments(LLM, Traffic(1, 100, 100), gpus, llms, costs, ["H100"], model_set=models)
    with pytest.raises(ValidationError, match="rate_qps"):
        Traffic(0, 100, 100)
    with pytest.raises(ValidationError, match="precision"):
        plan_deployments(LLM, Traffic(1, 100, 100), gpus, llms, costs, ["l4"], ["fp3"], model_set=models)


# ---------------------------------------------------------------------------------------------------------------
# The command and the exports
def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "wattgpu_core", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300)


KEYS = ("gpu_id", "gpu_name", "tensor_parallel", "precision", "fits", "meets_slo", "replicas", "gpus_total",
        "batch_per_replica", "ttft_s", "itl_s", "power_w_per_gpu", "fleet_power_kw", "throughput_tok_s_per_replica",
        "energy_per_token_j", "usd_per_gpu_hour", "usd_per_hour", "usd_per_mtok", "kwh_per_mtok", "gco2e_per_mtok",
        "notes")


def test_plan_command_records_hold_the_identities(seed_db_path, tmp_path):
    out_json, out_csv = tmp_path / "plan.json", tmp_path / "plan.csv"
    run = cli("plan", "--db", str(seed_db_path), "--llm", LLM, "--rate-qps", "5", "--input-tokens", "1000",
              "--output-tokens", "300", "--itl-slo-s", "0.05", "--gpu", "NVIDIA H100 NVL", "--gpu", "l40s",
              "--gpu", "a30", "--precision", "bf16", "--precision", "fp8", "--gpu-price", "l40s=2.5",
              "--usd-per-kwh", "0.1", "--pue", "1.5", "--gco2e-per-kwh", "400", "--json", str(out_json),
              "--csv", str(out_csv))
    assert run.returncode == 0, run.stderr
    assert "| #" in run.stdout and "GPUs per replica" in run.stdout
    data = json.loads(out_json.read_text())
    records = data["options"]
    assert len(records) == 3 * 4 * 2
    ok_seen_bad = False
    for r in records:
        assert set(KEYS) <= set(r)
        if r["gpu_id"] == "l40s":
            assert r["usd_per_gpu_hour"] == 2.5
        if not (r["fits"] and r["meets_slo"]):
            ok_seen_bad = True
            assert r["notes"]
            continue
        assert not ok_seen_bad, "an option that fails is ranked above one that passes"
        tok = 5 * 300
        assert r["gpus_total"] == r["replicas"] * r["tensor_parallel"]
        assert r["fleet_power_kw"] == pytest.approx(r["gpus_total"] * r["power_w_per_gpu"] / 1000)
        assert r["energy_per_token_j"] == pytest.approx(r["fleet_power_kw"] * 1000 / tok)
        assert r["kwh_per_mtok"] == pytest.approx(r["fleet_power_kw"] * 1.5 / (tok * 3600) * 1e6)
        assert r["gco2e_per_mtok"] == pytest.approx(r["kwh_per_mtok"] * 400)
        if r["usd_per_gpu_hour"] is None:
            assert r["usd_per_hour"] is None and r["usd_per_mtok"] is None
        else:
            assert r["usd_per_hour"] == pytest.approx(r["gpus_total"] * r["usd_per_gpu_hour"]
                                                      + r["fleet_power_kw"] * 1.5 * 0.1)
            assert r["usd_per_mtok"] == pytest.approx(r["usd_per_hour"] / (tok * 3600) * 1e6)
    costs = [r["usd_per_mtok"] for r in records if r["fits"] and r["meets_slo"] and r["usd_per_mtok"] is not None]
    assert costs == sorted(costs) and costs
    csv = pd.read_csv(out_csv)
    assert len(csv) == len(records) and pd.api.types.is_numeric_dtype(csv["usd_per_mtok"])


@pytest.mark.parametrize("args, name", [
    (("--llm", "no-such-llm"), "no-such-llm"),
    (("--llm", LLM, "--gpu", "H100"), "H100"),
    (("--llm", LLM, "--gpu-price", "nonesuch=1"), "nonesuch"),
    (("--llm", LLM, "--region", "Atlantis"), "Atlantis"),
])
def test_plan_command_unknown_names_exit_2_naming_the_value(seed_db_path, args, name):
    run = cli("plan", "--db", str(seed_db_path), "--rate-qps", "1", "--input-tokens", "100", "--output-tokens",
              "100", *args)
    assert run.returncode == 2 and name in run.stderr, run.stderr


def test_plan_csv_neutralises_formulas_and_keeps_numbers():
    frame = pd.DataFrame({"notes": ["=1+1", "+x", "-y", "@z", "\tt", "plain"], "value": [-5.0, 1, 2, 3, 4, 5]})
    text = csv_bytes(frame).decode()
    back = pd.read_csv(pd.io.common.StringIO(text))
    assert back["notes"].tolist() == ["'=1+1", "'+x", "'-y", "'@z", "'\tt", "plain"]
    assert back["value"].tolist() == [-5.0, 1, 2, 3, 4, 5]


def test_plan_state_round_trips_through_the_url():
    state = PlanState(llm="x/y", preset="custom", rate=7.5, inp=8000, ttft=0.0, prec=("fp8", "int4"), kwh=0.2,
                      region="France")
    assert PlanState.from_query(state.to_query()) == state
    assert PlanState.from_query({"rate": "-3", "tp": "99"}) == PlanState()
    assert state.traffic.ttft_slo_s is None and state.traffic.itl_slo_s == pytest.approx(0.05)


def test_a_tighter_ttft_target_never_needs_fewer_gpus_and_is_met(catalogs, models, defaults):
    totals = []
    for ttft in (10.0, 1.0, 0.3, 0.1):
        out = plan(catalogs, models, defaults, Traffic(10, 4000, 300, ttft_slo_s=ttft)).set_index(
            ["gpu_id", "tensor_parallel", "precision"])
        good = out[out["meets_slo"]]
        assert (good["ttft_s"] <= ttft + 1e-9).all()
        totals.append(out["gpus_total"].where(out["meets_slo"], np.inf))
    table = pd.concat(totals, axis=1).to_numpy(float)
    with np.errstate(invalid="ignore"):  # inf - inf: an option that never meets the targets
        assert not (np.diff(table, axis=1) < 0).any()
    assert np.isfinite(table[:, 0]).any() and (table[:, -1] >= table[:, 0]).all()


def test_breakdown_adds_up(catalogs, models, defaults):
    from pages.view.plan import breakdown

    out = plan(catalogs, models, defaults, Traffic(5, 1000, 300, itl_slo_s=0.05))
    row = out.iloc[0]
    parts = breakdown(row, Traffic(5, 1000, 300), Costs.from_defaults(defaults)).set_index("Quantity")["Value"]
    assert parts["replicas"] == f"{row['replicas']:.0f}"
    assert parts["total"] == f"${row['usd_per_hour']:,.2f} per hour"


def test_plan_command_for_another_serving_stack(seed_db_path, tmp_path):
    base = ("plan", "--db", str(seed_db_path), "--llm", LLM, "--rate-qps", "2", "--input-tokens", "500",
            "--output-tokens", "200", "--gpu", "a100-sxm4-40gb", "--precision", "bf16", "--max-gpus-per-replica", "1")
    itl = {}
    for stack in (None, "vLLM 0.5", "SGLang 0.4"):
        out = tmp_path / f"{stack}.json"
        run = cli(*base, *(("--serving-stack", stack) if stack else ()), "--json", str(out))
        assert run.returncode == 0, run.stderr
        (record,) = json.loads(out.read_text())["options"]
        itl[stack] = record["itl_s"]
        if stack == "SGLang 0.4":
            assert "has no calibration" in record["notes"] and "widened" in record["notes"]
    assert itl["vLLM 0.5"] > 1.5 * itl[None]  # the calibrated older stack is slower per token
    assert itl["SGLang 0.4"] == pytest.approx(itl[None])  # uncalibrated: the training stack's prediction
    assert PlanState.from_query(PlanState(stack="vLLM 0.5").to_query()).stack == "vLLM 0.5"
