"""Model sub-commands of the CLI (train, evaluate, predict); filled in by the prediction engine."""

from __future__ import annotations


def add_model_commands(sub, add_db) -> None:
    return None
