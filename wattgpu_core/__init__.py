"""WattGPU core: predict LLM inference power and inter-token latency on any NVIDIA GPU from public specs.

The package never imports streamlit. Public API below; see README.md.
"""

from .errors import UnknownNameError, ValidationError, WattGPUError
from .ingest import ingest_bytes, ingest_path, validate_bytes
from .store import IngestResult, Store

__all__ = [
    "IngestResult",
    "Store",
    "UnknownNameError",
    "ValidationError",
    "WattGPUError",
    "ingest_bytes",
    "ingest_path",
    "validate_bytes",
]
