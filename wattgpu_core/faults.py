"""Pause points for crash tests: a process can be told to stop at a named stage so that a test kills it there.

``WATTGPU_PAUSE_AT=<stage>`` makes :func:`pause_point` write the stage's name to ``WATTGPU_PAUSE_FILE`` and sleep
(until killed); unset, a pause point costs one dictionary lookup. Stages are named ``<operation>:<moment>``, e.g.
``ingest:before-commit`` or ``models:renaming``; tests kill the real process there with SIGKILL.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def pause_point(stage: str) -> None:
    if os.environ.get("WATTGPU_PAUSE_AT") != stage:
        return
    marker = os.environ.get("WATTGPU_PAUSE_FILE")
    if marker:
        Path(marker).write_text(stage)
    time.sleep(float(os.environ.get("WATTGPU_PAUSE_S", "600")))
