"""GPU power logs: read what nvidia-smi, the DCGM exporter and zeus write, and average the power inside a window.

Three formats, detected from their content:

- ``nvidia_smi``: ``nvidia-smi --query-gpu=timestamp,index,name,power.draw --format=csv[,nounits] -lms N``. The
  header names the fields (``power.draw [W]`` with units, ``power.draw`` with ``nounits``; ``power.draw.instant``
  and ``power.draw.average`` are accepted too), values carry `` W`` unless ``nounits``, ``[N/A]`` and
  ``[Not Supported]`` mean no reading (skipped). Timestamps (``2025/09/04 13:15:56.123``) are the logging
  machine's local time without a zone. Without ``index`` the GPUs are told apart by ``uuid``, ``pci.bus_id`` or
  ``name``.
- ``dcgm``: DCGM exporter ``DCGM_FI_DEV_POWER_USAGE`` samples (W) in Prometheus text format, each with its
  timestamp (milliseconds since the epoch, as Prometheus writes it after the value), labels ``gpu`` and
  ``modelName``; or a Prometheus ``query_range`` JSON answer for that metric. Timestamps are absolute (UTC).
- ``zeus``: the CSV that ``ZeusMonitor(log_file=...)`` writes, one measurement window per line:
  ``start_time,window_name,elapsed_time,gpu0_energy,...`` (epoch seconds, s, J). These are energies over windows,
  not samples: the mean power of a window is its energy over its time.

Every timestamp becomes seconds on a clock: ``local`` (a wall-clock reading without zone, counted as if it were
UTC) or ``utc`` (seconds since the epoch). :func:`window_power` compares a window with the log on one clock.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import Issue, ValidationError
from .issues import Issues, reject
from .reading import check_bytes
from .sniff import DCGM_METRIC as _DCGM_METRIC
from .sniff import SMI_POWER_FIELDS as _SMI_POWER_FIELDS
from .sniff import detect_power_log

POWER_LOG_FORMATS = {
    "nvidia_smi": "nvidia-smi --query-gpu=timestamp,index,name,power.draw --format=csv -lms N",
    "dcgm": "DCGM exporter DCGM_FI_DEV_POWER_USAGE scrapes (Prometheus text with timestamps, or query_range JSON)",
    "zeus": "zeus ZeusMonitor log file (start_time,window_name,elapsed_time,gpu<i>_energy)",
}
DEFAULT_MIN_SAMPLES = 5
_NO_READING = {"[n/a]", "n/a", "[not supported]", "[unknown error]", "[gpu is lost]", "[insufficient permissions]",
               ""}
_SMI_TIME_FORMAT = "%Y/%m/%d %H:%M:%S.%f"
_PROM_LINE = re.compile(r"^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)"
                        r"(?:\s+(?P<ts>-?\d+))?\s*$")
_PROM_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class PowerLog:
    """A power log: ``samples`` (t_s, gpu_index, gpu_name, power_w; one row per reading, NaN readings dropped) or,
    for zeus, ``windows`` (start_s, end_s, gpu_index, energy_j). ``clock`` is ``local`` or ``utc``."""

    format: str
    clock: str
    samples: pd.DataFrame
    windows: pd.DataFrame | None = None
    skipped_readings: int = 0

    @property
    def span(self) -> tuple[float, float]:
        if self.windows is not None:
            return float(self.windows["start_s"].min()), float(self.windows["end_s"].max())
        return float(self.samples["t_s"].min()), float(self.samples["t_s"].max())

    @property
    def gpu_indices(self) -> list[int]:
        frame = self.windows if self.windows is not None else self.samples
        return sorted(int(i) for i in frame["gpu_index"].unique())


@dataclass(frozen=True)
class WindowPower:
    """Mean power of each GPU inside one window: ``per_gpu`` has gpu_index, gpu_name, samples, power_w."""

    start_s: float
    end_s: float
    clock: str
    per_gpu: pd.DataFrame

    @property
    def power_w(self) -> float:
        """Mean power per GPU (the mean of the GPUs' means), W."""
        return float(self.per_gpu["power_w"].mean())


# ----------------------------------------------------------------------------------------------------------------
# Detection and parsing
def parse_power_log(file_name: str, data: bytes) -> PowerLog:
    """Read a power log in any known format; raises ValidationError naming row and field."""
    text = check_bytes(file_name, data)
    fmt = detect_power_log(text)
    if fmt == "zeus":
        return _parse_zeus(text)
    if fmt == "dcgm":
        return _parse_dcgm(text)
    if fmt == "nvidia_smi":
        return _parse_nvidia_smi(text)
    raise reject(f"{file_name or 'the power log'} is not a recognised power log; expected one of: "
                 + "; ".join(POWER_LOG_FORMATS.values()))


def _number(text: str, unit: str = "") -> float | None:
    """A reading as float; NaN for 'no reading' markers; None when it is not a number."""
    t = text.strip()
    if t.lower() in _NO_READING:
        return float("nan")
    if unit and t.endswith(unit):
        t = t[: -len(unit)].strip()
    try:
        return float(t)
    except ValueError:
        return None


def _parse_nvidia_smi(text: str) -> PowerLog:
    lines = [ln for ln in text.lstrip("\ufeff").splitlines() if ln.strip()]
    header_raw = [h.strip() for h in next(csv.reader([lines[0]], skipinitialspace=True))]
    header = [h.split(" [")[0].strip().lower() for h in header_raw]
    units = {h: (raw.split(" [", 1)[1].rstrip("]") if " [" in raw else "") for h, raw in zip(header, header_raw,
                                                                                             strict=True)}
    power_field = next((f for f in _SMI_POWER_FIELDS if f in header), None)
    if power_field is None or "timestamp" not in header:
        raise reject("an nvidia-smi log needs the fields timestamp and power.draw "
                     "(nvidia-smi --query-gpu=timestamp,index,name,power.draw --format=csv -lms 100)")
    if units[power_field] not in ("", "W"):
        raise reject(f"power unit {units[power_field]!r}; expected W", column=header_raw[header.index(power_field)])
    pos = {h: i for i, h in enumerate(header)}
    ident = next((f for f in ("index", "uuid", "pci.bus_id", "name") if f in pos), None)
    issues = Issues()
    times, gpus, names_, powers, skipped = [], [], [], [], 0
    gpu_keys: dict[str, int] = {}
    row = 0
    for line in lines[1:]:
        fields = [f.strip() for f in next(csv.reader([line], skipinitialspace=True))]
        if [f.split(" [")[0].strip().lower() for f in fields] == header:
            continue  # a header repeated (logs appended to one file)
        row += 1
        if len(fields) != len(header):
            issues.add(row, "", f"has {len(fields)} fields where the header has {len(header)}")
            continue
        stamp = fields[pos["timestamp"]]
        power = _number(fields[pos[power_field]], " W")
        if power is None:
            issues.add(row, header_raw[pos[power_field]], f"expected a power reading in W, found "
                                                          f"{fields[pos[power_field]][:40]!r}")
            continue
        if np.isnan(power):
            skipped += 1
            continue
        if power < 0:
            issues.add(row, header_raw[pos[power_field]], f"power must not be negative, found {power:g}")
            continue
        key = fields[pos[ident]] if ident else "0"
        if ident == "index":
            if not key.isdigit():
                issues.add(row, header_raw[pos["index"]], f"expected a GPU index (0, 1, ...), found {key[:40]!r}")
                continue
            gpu = int(key)
        else:
            gpu = gpu_keys.setdefault(key, len(gpu_keys))
        times.append(stamp)
        gpus.append(gpu)
        names_.append(fields[pos["name"]] if "name" in pos else None)
        powers.append(power)
    stamps = pd.to_datetime(pd.Series(times, dtype="str"), format=_SMI_TIME_FORMAT, errors="coerce")
    for i in np.flatnonzero(stamps.isna().to_numpy())[:50]:
        issues.add(i + 1, header_raw[pos["timestamp"]],
                   f"expected a timestamp like 2025/09/04 13:15:56.123, found {times[i][:40]!r}")
    issues.raise_if_any()
    if not powers:
        raise reject("the nvidia-smi log holds no power readings (all [N/A] or no data rows)",
                     column=header_raw[pos[power_field]])
    samples = pd.DataFrame({"t_s": _local_seconds(stamps), "gpu_index": gpus, "gpu_name": names_,
                            "power_w": powers})
    return PowerLog("nvidia_smi", "local", samples, None, skipped)


def _local_seconds(stamps: pd.Series) -> np.ndarray:
    """Wall-clock readings without zone as seconds on the 'local' clock (counted as if they were UTC)."""
    return (stamps.astype("datetime64[us]").astype("int64").to_numpy() / 1e6).astype(float)


def _parse_dcgm(text: str) -> PowerLog:
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("{"):
        return _parse_prometheus_json(stripped)
    issues = Issues()
    rows = []
    for line_no, line in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#") or not s.startswith(_DCGM_METRIC):
            continue
        m = _PROM_LINE.match(s)
        if m and m["name"] != _DCGM_METRIC:
            continue  # another metric that starts alike (DCGM_FI_DEV_POWER_USAGE_INSTANT)
        if not m:
            issues.add(line_no, _DCGM_METRIC, "not a Prometheus sample line (name{labels} value timestamp_ms)")
            continue
        labels = dict(_PROM_LABEL.findall(m["labels"] or ""))
        value = _number(m["value"])
        if value is None or (np.isfinite(value) and value < 0):
            issues.add(line_no, _DCGM_METRIC, f"expected a power reading in W, found {m['value'][:40]!r}")
            continue
        if m["ts"] is None:
            issues.add(line_no, "timestamp", "sample has no timestamp; a series of scrapes needs one per sample "
                                             "(milliseconds since the epoch after the value)")
            continue
        gpu = labels.get("gpu", "0")
        if not gpu.isdigit():
            issues.add(line_no, "gpu", f"expected a GPU index label gpu=\"0\", found {gpu[:40]!r}")
            continue
        rows.append((int(m["ts"]) / 1000.0, int(gpu), labels.get("modelName"), value))
    issues.raise_if_any()
    return _samples_log("dcgm", rows)


def _parse_prometheus_json(text: str) -> PowerLog:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise reject(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    result = (obj.get("data") or {}).get("result") if isinstance(obj, dict) else None
    if not isinstance(result, list):
        raise reject("a Prometheus answer needs data.result (a query_range matrix)", column="data.result")
    issues = Issues()
    rows = []
    for s, series in enumerate(result, start=1):
        metric = series.get("metric", {}) if isinstance(series, dict) else {}
        if metric.get("__name__", _DCGM_METRIC) != _DCGM_METRIC:
            continue
        gpu = str(metric.get("gpu", "0"))
        values = series.get("values") if isinstance(series, dict) else None
        if not gpu.isdigit() or not isinstance(values, list):
            issues.add(s, "data.result.values" if gpu.isdigit() else "data.result.metric.gpu",
                       "expected a series with a gpu label and values [[time_s, \"watts\"], ...]")
            continue
        for pair in values:
            ok = isinstance(pair, list) and len(pair) == 2
            value = _number(str(pair[1])) if ok else None
            if not ok or value is None or not isinstance(pair[0], (int, float)):
                issues.add(s, "data.result.values", f"expected [time_s, \"watts\"], found {str(pair)[:40]!r}")
                continue
            rows.append((float(pair[0]), int(gpu), metric.get("modelName"), value))
    issues.raise_if_any()
    return _samples_log("dcgm", rows)


def _samples_log(fmt: str, rows: list[tuple]) -> PowerLog:
    samples = pd.DataFrame(rows, columns=["t_s", "gpu_index", "gpu_name", "power_w"])
    skipped = int(samples["power_w"].isna().sum())
    samples = samples.dropna(subset=["power_w"]).reset_index(drop=True)
    if samples.empty:
        raise reject(f"the power log holds no {_DCGM_METRIC} readings", column=_DCGM_METRIC)
    return PowerLog(fmt, "utc", samples, None, skipped)


def _parse_zeus(text: str) -> PowerLog:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in next(reader)]
    energy_cols = {i: int(h[3:-len("_energy")]) for i, h in enumerate(header) if h.startswith("gpu")}
    issues = Issues()
    rows = []
    for row, fields in enumerate((f for f in reader if any(x.strip() for x in f)), start=1):
        if len(fields) != len(header):
            issues.add(row, "", f"has {len(fields)} fields where the header has {len(header)}")
            continue
        start, elapsed = _number(fields[0]), _number(fields[2])
        if start is None or not np.isfinite(start):
            issues.add(row, "start_time", f"expected seconds since the epoch, found {fields[0][:40]!r}")
            continue
        if elapsed is None or not np.isfinite(elapsed) or elapsed <= 0:
            issues.add(row, "elapsed_time", f"expected a positive duration in s, found {fields[2][:40]!r}")
            continue
        for i, gpu in energy_cols.items():
            energy = _number(fields[i])
            if energy is None or not np.isfinite(energy) or energy < 0:
                issues.add(row, header[i], f"expected an energy in J, found {fields[i][:40]!r}")
                continue
            rows.append((start, start + elapsed, gpu, energy, fields[1].strip()))
    issues.raise_if_any()
    if not rows:
        raise reject("the zeus log holds no measurement windows")
    windows = pd.DataFrame(rows, columns=["start_s", "end_s", "gpu_index", "energy_j", "window_name"])
    samples = pd.DataFrame({"t_s": windows["start_s"], "gpu_index": windows["gpu_index"], "gpu_name": None,
                            "power_w": windows["energy_j"] / (windows["end_s"] - windows["start_s"])})
    return PowerLog("zeus", "utc", samples, windows, 0)


# ----------------------------------------------------------------------------------------------------------------
# Windows
def _fmt_span(start: float, end: float, clock: str) -> str:
    a, b = (pd.Timestamp(x, unit="s") for x in (start, end))
    zone = " UTC" if clock == "utc" else " (local)"
    return f"{a:%Y-%m-%d %H:%M:%S}–{b:%H:%M:%S}{zone}"


def window_power(log: PowerLog, start_s: float, end_s: float, *, row: int = 0, column: str = "",
                 gpu_indices: list[int] | None = None, min_samples: int = DEFAULT_MIN_SAMPLES) -> WindowPower:
    """Mean power of each GPU inside [start_s, end_s] (seconds on ``log.clock``).

    The log must cover the window (its first reading at most a tolerance after the start, its last at most a
    tolerance before the end; the tolerance is two sampling intervals, at least 1 s) and hold ``min_samples``
    readings of each GPU inside it; otherwise ValidationError says which. ``row`` and ``column`` name the run in
    the result file that the window belongs to.
    """
    def fail(message: str):
        return ValidationError([Issue(row, column, message)])

    if not end_s > start_s:
        raise fail("the benchmark window is empty (duration must be positive)")
    indices = gpu_indices if gpu_indices is not None else log.gpu_indices
    missing = sorted(set(indices) - set(log.gpu_indices))
    if missing:
        raise fail(f"GPU index {missing[0]} is not in the power log (it holds {log.gpu_indices})")
    window = _fmt_span(start_s, end_s, log.clock)
    if log.windows is not None:
        return _zeus_window(log, start_s, end_s, indices, window, fail)
    s = log.samples[log.samples["gpu_index"].isin(indices)]
    t = np.sort(s["t_s"].unique())
    step = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
    tol = max(2.0 * step, 1.0)
    first, last = float(t[0]), float(t[-1])
    span = _fmt_span(first, last, log.clock)
    if last < start_s or first > end_s:
        raise fail(f"the power log ({span}) does not overlap the benchmark window ({window}); check that both "
                   "come from the same run and, where one clock is UTC and the other local, the UTC offset")
    if first > start_s + tol or last < end_s - tol:
        raise fail(f"the power log ({span}) does not cover the benchmark window ({window}): it starts "
                   f"{max(first - start_s, 0):.1f} s late and ends {max(end_s - last, 0):.1f} s early "
                   f"(tolerance {tol:.1f} s)")
    inside = s[(s["t_s"] >= start_s) & (s["t_s"] <= end_s)]
    per = inside.groupby("gpu_index").agg(gpu_name=("gpu_name", "first"), samples=("power_w", "size"),
                                          power_w=("power_w", "mean")).reindex(indices)
    per["samples"] = per["samples"].fillna(0).astype(int)
    few = per[per["samples"] < min_samples]
    if len(few):
        gpu = int(few.index[0])
        raise fail(f"only {int(few['samples'].iloc[0])} power reading(s) of GPU {gpu} inside the benchmark window "
                   f"({window}, {end_s - start_s:.1f} s); at least {min_samples} are needed: log more often "
                   "(nvidia-smi -lms 100) or run the benchmark longer")
    return WindowPower(start_s, end_s, log.clock, per.reset_index())


def _zeus_window(log: PowerLog, start_s: float, end_s: float, indices: list[int], window: str, fail) -> WindowPower:
    """Zeus windows that lie inside the benchmark window (a tolerance of 10% of it, at least 2 s) and cover at
    least 90% of it: their energy over their time is the mean power."""
    w = log.windows[log.windows["gpu_index"].isin(indices)]
    tol = max(0.1 * (end_s - start_s), 2.0)
    inside = w[(w["start_s"] >= start_s - tol) & (w["end_s"] <= end_s + tol)]
    covered = inside.drop_duplicates(["start_s", "end_s"])
    overlap = (np.minimum(covered["end_s"], end_s) - np.maximum(covered["start_s"], start_s)).clip(lower=0).sum()
    if overlap < 0.9 * (end_s - start_s):
        span = _fmt_span(*log.span, log.clock)
        raise fail(f"the zeus windows ({span}) cover {overlap:.1f} s of the {end_s - start_s:.1f} s benchmark window "
                   f"({window}); wrap the benchmark in one ZeusMonitor window (at least 90% of it, not much more)")
    per = inside.groupby("gpu_index").agg(samples=("energy_j", "size"), energy_j=("energy_j", "sum"))
    per["seconds"] = inside.assign(d=inside["end_s"] - inside["start_s"]).groupby("gpu_index")["d"].sum()
    per["power_w"] = per["energy_j"] / per["seconds"]
    per["gpu_name"] = None
    per = per.reindex(indices)
    return WindowPower(start_s, end_s, log.clock, per.reset_index()[["gpu_index", "gpu_name", "samples", "power_w"]])
