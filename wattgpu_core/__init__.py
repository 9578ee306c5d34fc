"""WattGPU core: predict LLM inference power and inter-token latency on any NVIDIA GPU from public specs.

The package never imports streamlit. The public API is listed in ``__all__``; see README.md for the CLI.
"""

from .errors import ModelNotTrainedError, UnknownNameError, ValidationError, WattGPUError
from .evaluation import run_evaluation
from .ingest import ingest_bytes, ingest_path, validate_bytes
from .models import get_model_set, register_model_set, train
from .planning import load_model_set, predict, predict_csv, rank_gpus
from .plus import PlusModelSet  # registers the WattGPU+ model set
from .store import IngestResult, Store

__all__ = [
    "IngestResult",
    "ModelNotTrainedError",
    "PlusModelSet",
    "Store",
    "UnknownNameError",
    "ValidationError",
    "WattGPUError",
    "get_model_set",
    "ingest_bytes",
    "ingest_path",
    "load_model_set",
    "predict",
    "predict_csv",
    "rank_gpus",
    "register_model_set",
    "run_evaluation",
    "train",
    "validate_bytes",
]
