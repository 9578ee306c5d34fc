"""Explanations: SHAP values of one prediction and global feature importance over the training data.

SHAP values come from XGBoost's exact TreeSHAP (``pred_contribs``) on the engine's fitted models, in the model's
own output space: power as a fraction of the GPU's TDP, ITL as ln(seconds). There, base value + SHAP values equals
the model output exactly (a test checks it); :class:`TargetExplanation` turns them into display units (W, and
multiplicative factors on ITL in ms) and into a plain-language reading of the top drivers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .features import add_features, join_specs, scenario_detail

# feature -> (name, unit shown with values)
FEATURES: dict[str, tuple[str, str]] = {
    "scenario_detail": ("Scenario", ""),
    "model_type": ("LLM architecture type", ""),
    "memory_type": ("Memory type", ""),
    "log_total_params_b": ("LLM size", ""),
    "total_params_b": ("LLM parameters", "B"),
    "hidden_size": ("Hidden size", ""),
    "num_attention_heads": ("Attention heads", ""),
    "num_key_value_heads": ("KV heads", ""),
    "num_layers": ("Layers", ""),
    "memory_bandwidth_gb_s": ("Memory bandwidth", "GB/s"),
    "memory_size_gb": ("GPU memory", "GB"),
    "fp16_tensor_dense_tflops": ("FP16 tensor TFLOPS", ""),
    "release_year": ("GPU release year", ""),
    "bandwidth_latency_s": ("Time to read the weights once", "ms"),
    "compute_latency_s": ("Compute time per token", "ms"),
    "boost_ratio": ("Boost / base clock ratio", ""),
    "transistor_count_m": ("Transistors", "million"),
    "base_clock_mhz": ("Base clock", "MHz"),
}
_SCENARIO_WORDS = {"offline": "offline batch", "server_low": "server, low request rate",
                   "server_high": "server, high request rate"}
_MS_FEATURES = {"bandwidth_latency_s", "compute_latency_s"}


def feature_label(feature: str) -> str:
    """'Memory bandwidth (GB/s)'."""
    name, unit = FEATURES.get(feature, (feature.replace("_", " ").capitalize(), ""))
    return f"{name} ({unit})" if unit and unit not in ("ms", "million") else name


def feature_name(feature: str) -> str:
    return FEATURES.get(feature, (feature.replace("_", " ").capitalize(), ""))[0]


def format_feature_value(feature: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unknown"
    if feature == "scenario_detail":
        return _SCENARIO_WORDS.get(str(value), str(value))
    if isinstance(value, str):
        return value
    v = float(value)
    unit = FEATURES.get(feature, ("", ""))[1]
    if feature in _MS_FEATURES:
        return f"{v * 1000:.3g} ms"
    if feature == "log_total_params_b":
        return f"{math.exp(v):.3g}B parameters"
    if feature == "boost_ratio":
        return f"{v:.2f}"
    if feature == "release_year":
        return f"{v:.0f}"
    text = f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    return f"{text} {unit}".strip() if unit and unit != "B" else (f"{text}B" if unit == "B" else text)


def shap_values(model, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(base values, SHAP matrix n x features) of ``model`` (a fitted engine model) on ``frame``, raw output space.

    Columns follow ``model.preprocessor``'s order (numeric, then categorical); base + row sum = ``predict_raw``.
    """
    import xgboost as xgb

    x = model.preprocessor.transform(frame)
    contribs = np.asarray(model.booster.predict(xgb.DMatrix(x), pred_contribs=True), dtype=float)
    return contribs[:, -1], contribs[:, :-1]


def model_features(model) -> list[str]:
    return list(model.preprocessor.numeric) + list(model.preprocessor.categorical)


def request_frame(llm_id: str, gpu_id: str, request: dict, gpus: pd.DataFrame, llms: pd.DataFrame) -> pd.DataFrame:
    """One prediction request as the models' input row (specs joined, paper features added)."""
    row = pd.DataFrame([{"llm_id": llm_id, "gpu_id": gpu_id, "scenario": request.get("scenario", "offline"),
                         "request_rate_qps": request.get("request_rate_qps", np.nan)}])
    frame = join_specs(row, gpus, llms)
    frame["scenario_detail"] = scenario_detail(frame["scenario"], frame["request_rate_qps"])
    return add_features(frame)


@dataclass(frozen=True)
class TargetExplanation:
    """SHAP values of one prediction of one target, with what the page needs to show and read them."""

    target: str  # "power" or "itl"
    base_value: float  # model output space
    shap: pd.Series  # per feature column, model output space
    values: pd.Series  # feature values in their own units
    tdp_w: float

    @property
    def raw_output(self) -> float:
        return float(self.base_value + self.shap.sum())

    def to_display(self, raw: float) -> float:
        """Model output -> W (power) or ms (ITL)."""
        return raw * self.tdp_w if self.target == "power" else math.exp(raw) * 1000.0

    @property
    def prediction(self) -> float:
        return self.to_display(self.raw_output)

    @property
    def log_axis(self) -> bool:
        return self.target == "itl"

    @property
    def axis_title(self) -> str:
        return "Mean GPU power (W)" if self.target == "power" else "Inter-token latency, ITL (ms, log scale)"

    @property
    def title(self) -> str:
        what = "power" if self.target == "power" else "ITL"
        return f"Why this {what} prediction: {self.value_format.format(self.prediction)}"

    @property
    def value_format(self) -> str:
        return "{:,.0f} W" if self.target == "power" else "{:.3g} ms"

    def contributions(self, top: int = 8) -> pd.DataFrame:
        """The ``top`` largest contributions (|SHAP|), the rest summed as one row; columns feature, label, shap."""
        order = self.shap.abs().sort_values(ascending=False).index
        rows = [{"feature": f, "label": f"{feature_name(f)} = {format_feature_value(f, self.values[f])}",
                 "shap": float(self.shap[f])} for f in order[:top]]
        rest = order[top:]
        if len(rest):
            rows.append({"feature": "", "label": f"{len(rest)} other features", "shap": float(self.shap[rest].sum())})
        return pd.DataFrame(rows)

    def effect_text(self, shap: float) -> str:
        if self.target == "power":
            watts = shap * self.tdp_w
            return f"{'raises' if watts >= 0 else 'lowers'} power by {abs(watts):,.0f} W"
        factor = math.exp(shap)
        if factor >= 1:
            return f"makes ITL {factor:.2f}x longer"
        return f"makes ITL {1 / factor:.2f}x shorter"

    def reading(self, top: int = 3) -> str:
        """A plain-language sentence on the ``top`` drivers of this prediction."""
        what = "power" if self.target == "power" else "ITL"
        base = self.value_format.format(self.to_display(self.base_value))
        parts = []
        for _, r in self.contributions(top=top).iterrows():
            if not r["feature"]:
                continue
            value = format_feature_value(r["feature"], self.values[r["feature"]])
            name = feature_name(r["feature"])
            name = name if name[:3].isupper() else name[0].lower() + name[1:]
            parts.append(f"**{name}** ({value}) {self.effect_text(r['shap'])}")
        return (f"Predicted {what} is **{self.value_format.format(self.prediction)}**, against {base} for an "
                f"average training run. The main drivers: " + "; ".join(parts) + ".")


def explain_request(llm_id: str, gpu_id: str, request: dict, gpus: pd.DataFrame, llms: pd.DataFrame,
                    fitted: dict) -> dict[str, TargetExplanation]:
    """SHAP explanation of each target's prediction for one (LLM, GPU, workload)."""
    frame = request_frame(llm_id, gpu_id, request, gpus, llms)
    out = {}
    for target, model in fitted.items():
        base, shap = shap_values(model, frame)
        features = model_features(model)
        out[target] = TargetExplanation(
            target=target, base_value=float(base[0]), shap=pd.Series(shap[0], index=features),
            values=frame.iloc[0][features], tdp_w=float(frame["tdp_w"].iloc[0]),
        )
    return out


@dataclass(frozen=True)
class GlobalImportance:
    """Mean |SHAP| per feature over the training rows of one target, plus the matrices for a beeswarm."""

    target: str
    importance: pd.DataFrame  # feature, label, importance (display units: % of TDP, or % change of ITL)
    shap: pd.DataFrame  # rows x features, model output space
    values: pd.DataFrame  # rows x features, feature values (categories as codes' labels)
    axis_title: str


def global_importance(fitted: dict, frame: pd.DataFrame, max_rows: int = 2000, seed: int = 0) -> dict:
    """Per target, mean |SHAP value| over (a sample of at most ``max_rows`` of) the training rows ``frame``."""
    out = {}
    for target, model in fitted.items():
        features = model_features(model)
        rows = frame.dropna(subset=[c for c in features if c in frame.columns and frame[c].dtype != object])
        if len(rows) > max_rows:
            rows = rows.sample(max_rows, random_state=seed)
        _, shap = shap_values(model, rows)
        shap_df = pd.DataFrame(shap, columns=features, index=rows.index)
        mean_abs = shap_df.abs().mean()
        if target == "power":
            shown, axis = mean_abs * 100, "Mean |SHAP value| (% of the GPU's TDP)"
        else:
            shown, axis = mean_abs, "Mean |SHAP value| (natural log of ITL)"
        imp = pd.DataFrame({"feature": features, "label": [feature_label(f) for f in features],
                            "importance": shown.to_numpy()}).sort_values("importance", ascending=False)
        values = rows[features].copy()
        for c in model.preprocessor.categorical:
            values[c] = values[c].astype("category").cat.codes
        out[target] = GlobalImportance(target, imp.reset_index(drop=True), shap_df, values, axis)
    return out
