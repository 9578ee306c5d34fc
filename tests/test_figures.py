"""Figure builders: traces, axis titles with units, legends, frontier and optional intervals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pages.view import compare as view_compare
from pages.view import figures, formats, labels, url_state


def _predicted(n: int = 5, intervals: bool = False) -> pd.DataFrame:
    df = pd.DataFrame({"gpu_name": [f"NVIDIA G{i} (x)" for i in range(n)], "itl_s": np.linspace(0.01, 0.05, n),
                       "energy_per_token_j": [0.5, 0.2, 0.3, 0.1, 0.4][:n], "power_w": 300.0,
                       "throughput_tok_s": 1000.0})
    df["on_frontier"] = view_compare.pareto_mask(df)
    if intervals:
        df["itl_s_lo"], df["itl_s_hi"] = df["itl_s"] * 0.9, df["itl_s"] * 1.1
    return df


def test_pareto_mask_keeps_only_undominated_points():
    assert _predicted()["on_frontier"].tolist() == [True, True, False, True, False]


def test_pareto_figure_traces_axes_and_measured_points():
    measured = pd.DataFrame({"gpu_name": ["NVIDIA G1", "NVIDIA G1"], "itl_s": [0.02, 0.03],
                             "energy_per_token_j": [0.25, 0.3], "n_runs": [5, 2],
                             "source_id": ["wattcounts", "mlenergy_v2"]})
    fig = figures.pareto_figure(_predicted(), measured)
    offline = figures.pareto_figure(_predicted(), measured, x_title="Time per output token = 1 / throughput (ms)")
    assert offline.layout.xaxis.title.text.startswith("Time per output token")
    names = [t.name for t in fig.data]
    assert names == ["Predicted (one GPU each)", "Pareto frontier", "Measured: ML.ENERGY v2", "Measured: Watt Counts"]
    assert fig.data[2].marker.symbol != fig.data[3].marker.symbol, "one marker per source"
    assert "ITL (ms)" in fig.layout.xaxis.title.text and "Energy per token (J)" in fig.layout.yaxis.title.text
    texts = [a.text for a in fig.layout.annotations]
    assert texts[:3] == ["G0", "G1", "G3"]  # short names on the frontier
    assert set(texts[3:]) == {"G1 (Watt Counts)", "G1 (ML.ENERGY v2)"}, "measured points named with their source"
    assert all(a.showarrow for a in fig.layout.annotations), "labels sit on leader lines"
    assert math.isclose(fig.data[0].x[0], 10.0)  # seconds shown as ms
    assert fig.layout.yaxis.rangemode != "tozero", "axes fitted to the data"


def test_labels_are_placed_without_overlap():
    labels = [(1.0 + 0.001 * i, 1.0, f"GPU number {i}", "red") for i in range(6)]  # six labels on one spot
    offsets = figures.place_labels(labels, [(1.0, 1.0), (2.0, 2.0)], False, False)
    boxes = []
    for (dx, dy), (_, _, text, _) in zip(offsets, labels, strict=True):
        w = 6.4 * len(text) + 8
        boxes.append((dx - w / 2, dy - 8, dx + w / 2, dy + 8))
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1], (a, b)


def test_pareto_figure_draws_intervals_when_present():
    assert figures.pareto_figure(_predicted()).data[0].error_x.array is None
    fig = figures.pareto_figure(_predicted(intervals=True))
    assert fig.data[0].error_x.array is not None


def test_waterfall_spans_base_to_prediction_in_display_units():
    contrib = pd.DataFrame({"label": ["Scenario = offline", "Layers = 32"], "shap": [0.3, -0.05]})
    fig = figures.waterfall_figure(contrib, 0.5, lambda v: v * 400, "Mean GPU power (W)", "t", value_format="{:.0f} W")
    assert fig.layout.xaxis.title.text == "Mean GPU power (W)"
    bars = {t.name: t for t in fig.data}
    up, down = bars["raises the prediction"], bars["lowers the prediction"]
    assert up.x[0] == 120 and down.x[0] == 20
    texts = [a.text for a in fig.layout.annotations]
    assert "average 200 W" in texts and "this prediction 300 W" in texts


def test_log_waterfall_labels_factors():
    contrib = pd.DataFrame({"label": ["Scenario"], "shap": [math.log(0.5)]})
    fig = figures.waterfall_figure(contrib, math.log(0.01), lambda v: math.exp(v) * 1000, "ITL (ms, log scale)", "t",
                                   log_axis=True, value_format="{:.3g} ms")
    assert fig.data[0].text[0] == "×0.50"
    assert list(fig.layout.xaxis.ticktext)  # readable 1-2-5 tick labels


def test_parity_and_breakdown_figures():
    frame = pd.DataFrame({"y_true": [0.01, 0.02, 0.05], "y_pred": [0.011, 0.018, 0.06],
                          "scenario": ["offline", "server", "server"]})
    fig = figures.parity_figure(frame, "y_true", "y_pred", "ITL (ms, log scale)", "ITL", log_axes=True, scale=1000)
    assert [t.name for t in fig.data] == ["Offline (batch)", "Server", "perfect prediction (y = x)"]
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.title.text.startswith("Predicted ITL (ms")
    breakdown = pd.DataFrame({"group": ["A", "B", "A", "B"], "target_label": ["Power", "Power", "ITL", "ITL"],
                              "mdape_pct": [2.0, 3.0, 10.0, 5.0], "n_rows": [10, 10, 10, 10]})
    fig = figures.error_breakdown_figure(breakdown, "GPU", "t")
    assert [t.name for t in fig.data] == ["Power", "ITL"] and "MdAPE (%)" in fig.layout.xaxis.title.text


def test_labels_and_formats():
    assert labels.label("power_w_hi") == "Power high (W)"
    assert labels.label("energy_per_token_j") == "Energy per token (J)"
    assert formats.fmt_itl(0.012345) == "12 ms" and formats.fmt_power(381.2) == "381 W"
    assert formats.sig(0.012345, 2) == 0.012


def test_page_state_round_trips_through_the_url():
    state = url_state.PageState(llm="Qwen/Qwen2.5-7B-Instruct", scenario="server", qps=0.017, gen=("Server Hopper(Hxx)",),
                         tdp=(70.0, 400.0))
    assert url_state.PageState.from_query(state.to_query()) == state
    assert url_state.PageState.from_query({"batch": "lots", "scenario": "nonsense", "tdp": "x"}) == url_state.PageState()


def test_page_state_carries_the_serving_stack():
    state = url_state.PageState(stack="vLLM 0.5")
    assert state.to_query() == {"stack": "vLLM 0.5"}
    assert url_state.PageState.from_query(state.to_query()) == state
    assert state.workload.serving_stack == "vLLM 0.5" and url_state.PageState().workload.serving_stack is None
    assert url_state.PageState.from_query({"stack": "  "}).stack == ""
