"""GPU and LLM catalogs: building them from the sourced reference files, and resolving names to catalog ids.

The catalogs are built from ``data/raw/catalog`` (every value sourced, see its SOURCES.md) plus the small
hand-kept tables in ``data/manual`` (aliases, measured idle power, architecture rows for benchmarked LLMs the
reference catalog lacks). Name resolution is strict: a catalog id, a marketing name, an NVML name or a listed alias
resolves to one GPU; anything else raises :class:`UnknownNameError` with suggestions, and is never guessed.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import UnknownNameError
from .paths import MANUAL_DIR, RAW_DIR
from .schema import GPU_COLUMNS, LLM_COLUMNS, PAPER_GPU_COLUMNS, names

# Fields an LLM needs for the models to use it.
LLM_REQUIRED_FIELDS = (
    "total_params_b",
    "num_layers",
    "hidden_size",
    "num_attention_heads",
    "num_key_value_heads",
    "model_type",
)
# Fields a GPU needs for the models to use it.
GPU_REQUIRED_FIELDS = (
    "memory_bandwidth_gb_s",
    "memory_size_gb",
    "tdp_w",
    "fp16_tensor_dense_tflops",
)

_SOURCE_KEY = re.compile(r"\[([A-Z0-9_:\-a-z.]+)\]")


# ----------------------------------------------------------------------------------------------------------------
# GPUs
def _form_factor_class(form_factor: str) -> str:
    text = str(form_factor or "")
    low = text.lower()
    if low.startswith("sxm"):
        return "SXM"
    if "superchip" in low:
        return "Superchip"
    if low.startswith("oam"):
        return "OAM"
    if "nvl" in low:
        return "PCIe (NVL)"
    if low.startswith("pcie"):
        return "PCIe"
    return text or "unknown"


def _segment(form_factor: str, name: str) -> str:
    low = f"{form_factor} {name}".lower()
    if "consumer" in low or "geforce" in low:
        return "consumer"
    if "workstation" in low:
        return "workstation"
    return "data-centre"


def build_gpu_catalog(raw_dir: Path = RAW_DIR, manual_dir: Path = MANUAL_DIR) -> pd.DataFrame:
    """The GPU catalog in the project's schema, one row per GPU, every row with its source."""
    src = pd.read_csv(raw_dir / "catalog" / "gpus.csv")
    out = pd.DataFrame({c: src[c] if c in src.columns else None for c in names(GPU_COLUMNS)})
    out["form_factor_class"] = src["form_factor"].map(_form_factor_class)
    out["segment"] = [_segment(f, n) for f, n in zip(src["form_factor"], src["name"], strict=True)]
    keys = src["source_urls"].fillna("").map(lambda s: ", ".join(dict.fromkeys(_SOURCE_KEY.findall(s))))
    out["source"] = "WattGPU reference catalog (data/raw/catalog/gpus.csv; sources: " + keys + ")"
    out["value_sources"] = src["value_sources"]
    out["notes"] = src["notes"]
    out["user_defined"] = False
    out["batch_id"] = "seed"

    idle = pd.read_csv(manual_dir / "gpu_idle_power.csv")
    unknown = set(idle["gpu_id"]) - set(out["gpu_id"])
    if unknown:
        raise ValueError(f"gpu_idle_power.csv names unknown GPUs: {sorted(unknown)}")
    idle_map = idle.set_index("gpu_id")["idle_power_w"]
    out["idle_power_w"] = out["gpu_id"].map(idle_map)
    has_idle = out["gpu_id"].isin(idle_map.index)
    out.loc[has_idle, "value_sources"] = out.loc[has_idle, "value_sources"] + "; idle_power_w=WATTCOUNTS_IDLE"

    out = _apply_spec_fills(out, manual_dir / "gpu_spec_fills.csv")

    aliases = pd.read_csv(manual_dir / "gpu_aliases.csv")
    unknown = set(aliases["gpu_id"]) - set(out["gpu_id"])
    if unknown:
        raise ValueError(f"gpu_aliases.csv names unknown GPUs: {sorted(unknown)}")
    alias_map = aliases.groupby("gpu_id")["alias"].agg(lambda s: "|".join(s))
    out["aliases"] = out["gpu_id"].map(alias_map).fillna("")
    for col in ("release_year",):
        out[col] = pd.to_numeric(out[col], errors="coerce")
    return out.reset_index(drop=True)


def _apply_spec_fills(gpus: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Fill specs the reference catalog lacks from ``gpu_spec_fills.csv`` (gpu_id, column, value, source): only
    blank cells are filled (a fill for a cell that has a value is an error), and each fill's source is appended to
    the row's ``value_sources`` (``column=MANUAL``) and ``notes``."""
    if not path.is_file():
        return gpus
    fills = pd.read_csv(path)
    out = gpus.copy()
    ids = out["gpu_id"].tolist()
    for i, rec in enumerate(fills.to_dict("records"), start=2):
        gid, col = rec["gpu_id"], rec["column"]
        if gid not in ids or col not in out.columns:
            raise ValueError(f"{path.name} line {i}: unknown gpu_id {gid!r} or column {col!r}")
        row = ids.index(gid)
        if pd.notna(out.at[row, col]) and str(out.at[row, col]).strip() != "":
            raise ValueError(f"{path.name} line {i}: {gid} already has {col} = {out.at[row, col]!r}")
        value = rec["value"]
        out[col] = out[col].astype(object)
        out.at[row, col] = value if col in ("memory_type",) else float(value)
        out.at[row, "value_sources"] = f"{out.at[row, 'value_sources'] or ''}; {col}=MANUAL".lstrip("; ")
        note = out.at[row, "notes"]
        note = "" if not isinstance(note, str) else note + " "
        out.at[row, "notes"] = f"{note}{col} {value} from data/manual/gpu_spec_fills.csv: {rec['source']}."
    for c in GPU_COLUMNS:
        if c.sql_type == "DOUBLE":
            out[c.name] = pd.to_numeric(out[c.name], errors="coerce")
    return out


def build_paper_gpu_features(gpus: pd.DataFrame, raw_dir: Path = RAW_DIR) -> pd.DataFrame:
    """The WattGPU paper's GPU feature values, keyed by our gpu_id (for ``--paper-compat``)."""
    src = pd.read_csv(raw_dir / "wattgpu" / "gpu_features.csv", sep=";")
    resolver = GpuResolver(gpus)
    out = pd.DataFrame(
        {
            "gpu_id": [resolver.resolve(n) for n in src["gpu_type"]],
            "paper_gpu_type": src["gpu_type"].to_numpy(),
            "paper_gpu_db_name": src["gpu_db_name"].to_numpy(),
            "base_clock_mhz": src["base_clock_mhz"].to_numpy(),
            "boost_clock_mhz": src["boost_clock_mhz"].to_numpy(),
            "transistor_count_m": src["transistor_count_m"].to_numpy(),
            "memory_size_gb": src["memory_size_gb"].to_numpy(),
            "memory_bandwidth_gb_s": src["memory_bandwidth_gb_s"].to_numpy(),
            "memory_type": src["memory_type"].to_numpy(),
            "tdp_w": src["thermal_design_power_w"].astype(float).to_numpy(),
            "fp16_tensor_dense_tflops": src["tensor_tflops"].astype(float).to_numpy(),
            "release_year": src["release_year"].astype(float).to_numpy(),
        }
    )
    out["source"] = "WattGPU paper gpu_features.csv (maufadel/wattgpu@4e01035, Apache-2.0)"
    return out[names(PAPER_GPU_COLUMNS)]


# ----------------------------------------------------------------------------------------------------------------
# LLMs
def _short_name(llm_id: str) -> str:
    return llm_id.split("/", 1)[-1]


def llm_metadata_complete(frame: pd.DataFrame) -> pd.Series:
    return frame[list(LLM_REQUIRED_FIELDS)].notna().all(axis=1)


def build_llm_catalog(raw_dir: Path = RAW_DIR, manual_dir: Path = MANUAL_DIR) -> pd.DataFrame:
    """The LLM catalog: the reference catalog plus hand-kept rows for benchmarked LLMs it lacks."""
    src = pd.read_csv(raw_dir / "catalog" / "llms.csv")
    out = pd.DataFrame({c: src[c] if c in src.columns else None for c in names(LLM_COLUMNS)})
    out["llm_id"] = src["hf_id"]
    out["name"] = src["hf_id"].map(_short_name)
    out["is_moe"] = src["architecture_class"].str.contains("moe", case=False).fillna(False)
    out["source"] = np.where(
        src["in_wattgpu"].astype(bool),
        "WattGPU paper model_features.csv via the reference catalog (data/raw/catalog/llms.csv)",
        "reference catalog (data/raw/catalog/llms.csv): " + src["source"].fillna(""),
    )
    out["notes"] = src["notes"]

    extra = pd.read_csv(manual_dir / "llms_extra.csv")
    rows = []
    by_id = out.set_index("llm_id")
    for rec in extra.to_dict("records"):
        base = rec.get("derived_from")
        row = {c: None for c in names(LLM_COLUMNS)}
        if isinstance(base, str) and base:
            if base not in by_id.index:
                raise ValueError(f"llms_extra.csv: {rec['llm_id']} derives from unknown {base}")
            row.update(by_id.loc[base].to_dict())
        for key, value in rec.items():
            if key in row and not (isinstance(value, float) and np.isnan(value)):
                row[key] = value
        row["llm_id"] = rec["llm_id"]
        row["name"] = _short_name(rec["llm_id"])
        row["is_moe"] = "moe" in str(row.get("architecture_class") or "").lower()
        row["source"] = rec["source"]
        row["notes"] = rec["notes"]
        rows.append(row)
    out = pd.concat([out, pd.DataFrame(rows, columns=out.columns)], ignore_index=True)
    if out["llm_id"].duplicated().any():
        raise ValueError(f"duplicate LLM ids: {out.loc[out['llm_id'].duplicated(), 'llm_id'].tolist()}")

    aliases = pd.read_csv(manual_dir / "llm_aliases.csv")
    unknown = set(aliases["llm_id"]) - set(out["llm_id"])
    if unknown:
        raise ValueError(f"llm_aliases.csv names unknown LLMs: {sorted(unknown)}")
    alias_map = aliases.groupby("llm_id")["alias"].agg(lambda s: "|".join(s))
    out["aliases"] = out["llm_id"].map(alias_map).fillna("")
    out["user_defined"] = False
    out["batch_id"] = "seed"
    return finish_llm_frame(out)


def finish_llm_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Types and derived flags of an LLM table (also used for user-defined LLMs)."""
    out = frame.copy()
    for c in LLM_COLUMNS:
        if c.sql_type == "DOUBLE":
            out[c.name] = pd.to_numeric(out[c.name], errors="coerce").astype(float)
    out["active_params_b"] = out["active_params_b"].fillna(out["total_params_b"])
    out["is_moe"] = out["is_moe"].fillna(False).astype(bool)
    out["metadata_complete"] = llm_metadata_complete(out)
    return out[names(LLM_COLUMNS)].reset_index(drop=True)


# ----------------------------------------------------------------------------------------------------------------
# Name resolution
_DROP_TOKENS = {"nvidia", "tesla", "geforce"}


def normalise_gpu_name(name: str) -> str:
    """A loose key: lower case, separators to spaces, vendor prefixes dropped."""
    text = re.sub(r"[\s_\-/]+", " ", str(name).strip().lower())
    tokens = [t for t in text.split(" ") if t and t not in _DROP_TOKENS]
    return " ".join(tokens)


def normalise_llm_name(name: str) -> str:
    return str(name).strip().lower()


def _split_aliases(value) -> list[str]:
    """The '|'-separated aliases of a catalog row (none when the cell is empty, None or NaN)."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return []
    return [a.strip() for a in str(value).split("|") if a.strip()]


@dataclass
class _Index:
    exact: dict[str, str] = field(default_factory=dict)
    loose: dict[str, set[str]] = field(default_factory=dict)

    def add(self, key: str, target: str, loose_key: str) -> None:
        if key:
            self.exact.setdefault(key, target)
        if loose_key:
            self.loose.setdefault(loose_key, set()).add(target)


class _Resolver:
    """Exact keys first, then a loose key that must point to exactly one id; never a guess."""

    kind = "name"
    max_suggestions = 5

    def __init__(self, ids: list[str], keys_per_id: dict[str, list[str]], loose, display: dict[str, str]):
        self._loose_fn = loose
        self._ids = list(ids)
        self._display = display  # id -> the name suggestions show (one that resolves)
        self._index = _Index()
        for target in self._ids:
            for key in keys_per_id[target]:
                if key and isinstance(key, str):
                    self._index.add(key.strip(), target, loose(key))
        self._choices = sorted({k for keys in keys_per_id.values() for k in keys if isinstance(k, str) and k})
        self._loose_keys = sorted(self._index.loose)

    def try_resolve(self, name: str) -> str | None:
        if name is None or (isinstance(name, float) and np.isnan(name)):
            return None
        text = str(name).strip()
        if text in self._index.exact:
            return self._index.exact[text]
        hits = self._index.loose.get(self._loose_fn(text), set())
        if len(hits) == 1:
            return next(iter(hits))
        return None

    def _partial_matches(self, loose_text: str) -> set[str]:
        """Ids with a key that contains the name (how containment is judged depends on the kind)."""
        return set()

    def suggestions(self, name: str, n: int | None = None) -> list[str]:
        """Names that do resolve and that the user may have meant: the ambiguous hits, the catalog entries whose
        names contain the given one (e.g. every A100 for "A100"), else close spellings."""
        n = n or self.max_suggestions
        text = str(name).strip()
        loose_text = self._loose_fn(text)
        hits = self._index.loose.get(loose_text, set())
        if len(hits) <= 1:
            hits = self._partial_matches(loose_text) if loose_text else set()
        if hits:
            return sorted(self._display[h] for h in hits)[:n]
        close = difflib.get_close_matches(text, self._choices, n=n, cutoff=0.6)
        if not close:
            low = {c.lower(): c for c in self._choices}
            close = [low[c] for c in difflib.get_close_matches(text.lower(), list(low), n=n, cutoff=0.5)]
        return close

    def resolve(self, name: str) -> str:
        hit = self.try_resolve(name)
        if hit is None:
            raise UnknownNameError(self.kind, [str(name)], {str(name): self.suggestions(name)})
        return hit

    def resolve_many(self, values) -> tuple[np.ndarray, dict[str, list[str]]]:
        """Resolve each distinct value once; returns (ids with None for unknown, {unknown: suggestions})."""
        series = pd.Series(values, dtype="object")
        uniq = series.dropna().unique()
        mapping = {u: self.try_resolve(u) for u in uniq}
        unknown = {str(u): self.suggestions(u) for u, hit in mapping.items() if hit is None}
        return np.array(series.map(mapping).to_numpy(dtype=object), dtype=object, copy=True), unknown


class GpuResolver(_Resolver):
    kind = "GPU"

    def __init__(self, gpus: pd.DataFrame):
        keys, display = {}, {}
        for rec in gpus.to_dict("records"):
            k = [rec["gpu_id"], rec.get("name"), rec.get("nvml_name")]
            k += _split_aliases(rec.get("aliases"))
            keys[rec["gpu_id"]] = [x for x in k if isinstance(x, str) and x]
            nvml = rec.get("nvml_name")
            display[rec["gpu_id"]] = nvml if isinstance(nvml, str) and nvml else rec["gpu_id"]
        super().__init__(list(gpus["gpu_id"]), keys, normalise_gpu_name, display)
        self._memory_gb = {r["gpu_id"]: float(r["memory_size_gb"]) for r in gpus.to_dict("records")
                           if pd.notna(r.get("memory_size_gb"))}
        self._memory_type = {r["gpu_id"]: str(r["memory_type"]).lower() for r in gpus.to_dict("records")
                             if isinstance(r.get("memory_type"), str)}
        self._memory_types = set(self._memory_type.values())
        # Two catalog GPUs may share an NVML name (e.g. two GH200 memory variants): show their ids instead.
        shown = pd.Series(self._display)
        for gpu_id in shown[shown.duplicated(keep=False)].index:
            self._display[gpu_id] = gpu_id

    def try_resolve(self, name: str) -> str | None:
        """As the base class, but a loose match (vendor prefix, case or separators differ) must also be the only
        GPU whose names contain it: bare "H200" is refused because "H200 NVL" exists, though NVML calls the SXM
        part "NVIDIA H200" (that exact name resolves)."""
        if name is None or (isinstance(name, float) and np.isnan(name)):
            return None
        text = str(name).strip()
        if text in self._index.exact:
            return self._index.exact[text]
        loose_text = self._loose_fn(text)
        hits = self._index.loose.get(loose_text, set())
        if len(hits) == 1 and self._partial_matches(loose_text) == hits:
            return next(iter(hits))
        return self._by_memory(loose_text)

    def _by_memory(self, loose_text: str) -> str | None:
        """A name that states the memory as nvidia-smi or a datasheet does ("NVIDIA B200 180GB HBM3e", "GB200 186 GB"):
        the memory size and type are taken out, and the rest must name GPUs of which exactly one has that memory
        (size within 10%: 180 / 183 / 192 GB are all quoted for a B200; type equal). "H100 80GB" stays refused
        (the SXM and the PCIe parts both have 80 GB), as does a size that no candidate has."""
        tokens = loose_text.split(" ")
        sizes, types, rest = [], [], []
        for i, tok in enumerate(tokens):
            size = re.fullmatch(r"(\d+(?:\.\d+)?)(gb|gib|g)", tok)
            if size:
                sizes.append(float(size.group(1)))
            elif tok in ("gb", "gib") and i and re.fullmatch(r"\d+(?:\.\d+)?", tokens[i - 1]):
                sizes.append(float(rest.pop()))
            elif tok in self._memory_types:
                types.append(tok)
            else:
                rest.append(tok)
        if not (sizes or types) or not rest or len(sizes) > 1 or len(types) > 1:
            return None
        found = {g for g in self._partial_matches(" ".join(rest))
                 if (not sizes or abs(self._memory_gb.get(g, np.nan) / sizes[0] - 1.0) <= 0.10)
                 and (not types or self._memory_type.get(g) == types[0])}
        return next(iter(found)) if len(found) == 1 else None

    def _partial_matches(self, loose_text: str) -> set[str]:
        tokens = set(loose_text.split(" "))
        out = set()
        for key in self._loose_keys:
            if tokens <= set(key.split(" ")):
                out |= self._index.loose[key]
        return out


class LlmResolver(_Resolver):
    kind = "LLM"

    def __init__(self, llms: pd.DataFrame):
        keys = {}
        short_counts = llms["llm_id"].map(_short_name).str.lower().value_counts()
        for rec in llms.to_dict("records"):
            k = [rec["llm_id"]]
            short = _short_name(rec["llm_id"])
            if short_counts.get(short.lower(), 0) == 1:
                k.append(short)
            k += _split_aliases(rec.get("aliases"))
            keys[rec["llm_id"]] = k
        super().__init__(list(llms["llm_id"]), keys, normalise_llm_name, {i: i for i in llms["llm_id"]})

    def _partial_matches(self, loose_text: str) -> set[str]:
        if len(loose_text) < 3:
            return set()
        out = set()
        for key in self._loose_keys:
            if loose_text in key:
                out |= self._index.loose[key]
        return out


# ----------------------------------------------------------------------------------------------------------------
# Quantised checkpoints and native precision
# Suffixes of quantised checkpoint ids (case-insensitive, at the end of the repo name) and the precision they carry:
# llm-compressor / RedHatAI (-FP8, -FP8-dynamic, -quantized.w4a16, -quantized.w8a8, -W4A16, -W8A8), AutoAWQ
# (-AWQ, -AWQ-INT4), GPTQ (-GPTQ-Int4, -GPTQ-Int8), NVIDIA ModelOpt (-FP8, -FP4, -NVFP4), MXFP4.
_QUANT_SUFFIXES = (
    (r"[-_.]fp8([-_.]dynamic|[-_.]static|[-_.]block)?", "fp8"),
    (r"[-_.](nv)?fp4", "fp4"),
    (r"[-_.]mxfp4", "mxfp4"),
    (r"[-_.]awq([-_.]int4)?", "int4"),
    (r"[-_.]gptq([-_.]int4)?", "int4"),
    (r"[-_.]gptq[-_.]int8", "int8"),
    (r"[-_.](quantized[-_.])?w4a16", "int4"),
    (r"[-_.](quantized[-_.])?w8a16", "int8"),
    (r"[-_.](quantized[-_.])?w8a8([-_.]int8)?", "int8"),
    (r"[-_.]int4", "int4"),
    (r"[-_.]int8", "int8"),
)
_QUANT_RE = [(re.compile(rf"^(?P<base>.+?)(?P<suffix>{pat})$", re.IGNORECASE), prec) for pat, prec in _QUANT_SUFFIXES]
NATIVE_PRECISION_FILE = "llm_native_precision.csv"
_DTYPE_PRECISION = {"bfloat16": "bf16", "float16": "fp16", "float32": "bf16"}


def split_quantised_id(name) -> tuple[str, str | None]:
    """(base id, precision) of a quantised checkpoint id: ``RedHatAI/Meta-Llama-3.1-70B-Instruct-FP8`` gives
    (``RedHatAI/Meta-Llama-3.1-70B-Instruct``, "fp8"); an id without a known suffix gives (id, None)."""
    text = str(name).strip()
    for rx, prec in _QUANT_RE:
        m = rx.match(text)
        if m and "/" not in m.group("suffix"):
            return m.group("base"), prec
    return text, None


def native_precisions(llms: pd.DataFrame, manual_dir: Path = MANUAL_DIR) -> pd.Series:
    """Each LLM's shipped weight precision (index llm_id): ``data/manual/llm_native_precision.csv`` where listed
    (checkpoints that ship quantised, e.g. gpt-oss in MXFP4), else from ``torch_dtype`` (bf16 when unknown)."""
    listed = pd.read_csv(Path(manual_dir) / NATIVE_PRECISION_FILE).set_index("llm_id")["native_precision"]
    dtype = llms["torch_dtype"].astype(object).where(llms["torch_dtype"].notna(), None) \
        if "torch_dtype" in llms.columns else pd.Series(None, index=llms.index, dtype=object)
    from_dtype = dtype.map(lambda d: _DTYPE_PRECISION.get(str(d).lower(), "bf16") if d else "bf16")
    out = llms["llm_id"].map(listed).fillna(from_dtype)
    return pd.Series(out.to_numpy(dtype=object), index=llms["llm_id"].to_numpy(), name="native_precision")


def resolve_llm_precision(resolver: LlmResolver, name) -> tuple[str | None, str | None]:
    """(catalog id, precision or None) for an LLM name, quantised checkpoint ids included: the name itself; else,
    with a quantisation suffix removed, the base id, the base repo name under any organisation (quantised copies
    often live elsewhere: RedHatAI/, neuralmagic/, hugging-quants/), and Hugging Face's Llama 3.1 rename
    (``Meta-Llama-3.1-*`` = ``Llama-3.1-*``). (None, None) when nothing resolves."""
    hit = resolver.try_resolve(name)
    if hit is not None:
        return hit, None
    if name is None or (isinstance(name, float) and np.isnan(name)):
        return None, None
    base, prec = split_quantised_id(name)
    candidates = [base]
    short = base.split("/", 1)[-1]
    candidates += [short, "meta-llama/" + short]
    for old, new in (("Meta-Llama-3.1-", "Llama-3.1-"), ("Llama-3.1-", "Meta-Llama-3.1-")):
        if short.startswith(old):
            candidates += ["meta-llama/" + new + short[len(old):], new + short[len(old):]]
    for cand in candidates:
        hit = resolver.try_resolve(cand)
        if hit is not None:
            return hit, prec
    return None, None

