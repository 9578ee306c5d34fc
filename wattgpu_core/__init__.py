"""WattGPU core: predict LLM inference power and inter-token latency on any NVIDIA GPU from public specs.

The package never imports streamlit. The public API is listed in ``__all__``; see README.md for the CLI.
"""

from .errors import ConflictError, ModelNotTrainedError, StoreBusyError, UnknownNameError, ValidationError, WattGPUError
from .evaluation import run_evaluation
from .ingest import ingest_bytes, ingest_path, validate_bytes
from .model_files import atomic_model_set
from .model_set import ModelSet
from .planning import load_model_set, predict, predict_csv
from .plus import PlusModelSet
from .ranking import rank_gpus
from .registry import get_model_set, load_fitted, register_model_set, train
from .safety import csv_bytes, md, write_csv
from .store import IngestResult, Store

__all__ = [
    "ConflictError",
    "IngestResult",
    "ModelNotTrainedError",
    "ModelSet",
    "PlusModelSet",
    "Store",
    "StoreBusyError",
    "UnknownNameError",
    "ValidationError",
    "WattGPUError",
    "atomic_model_set",
    "csv_bytes",
    "get_model_set",
    "ingest_bytes",
    "ingest_path",
    "load_fitted",
    "load_model_set",
    "md",
    "predict",
    "predict_csv",
    "rank_gpus",
    "register_model_set",
    "run_evaluation",
    "train",
    "validate_bytes",
    "write_csv",
]
