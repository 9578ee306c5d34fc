"""Exception types of WattGPU.

Every error the core raises on purpose is a :class:`WattGPUError` whose message a person can act on. Pages and
the CLI catch these and show the message; anything else is a bug and is allowed to propagate.
"""

from __future__ import annotations

from dataclasses import dataclass


class WattGPUError(Exception):
    """Base class of every error WattGPU raises on purpose."""


class UnknownNameError(WattGPUError):
    """A GPU or LLM name that resolves to nothing in the catalog (never guessed)."""

    def __init__(self, kind: str, names: list[str], suggestions: dict[str, list[str]] | None = None):
        self.kind = kind
        self.names = list(names)
        self.suggestions = suggestions or {}
        parts = []
        for name in self.names:
            hint = self.suggestions.get(name) or []
            part = repr(name)
            if hint:
                part += " (did you mean " + " or ".join(repr(h) for h in hint) + "?)"
            parts.append(part)
        super().__init__(f"unknown {kind}: " + ", ".join(parts))


@dataclass(frozen=True)
class Issue:
    """One problem found while validating a file: 1-based data row (0 = the file itself), column, message."""

    row: int
    column: str
    message: str

    def __str__(self) -> str:
        where = "file" if self.row == 0 else f"row {self.row}"
        col = f", column {self.column!r}" if self.column else ""
        return f"{where}{col}: {self.message}"


class ValidationError(WattGPUError):
    """A file or table rejected as a whole. ``issues`` lists every problem found (row, column, message)."""

    def __init__(self, issues: list[Issue], total: int | None = None):
        if not issues:
            raise ValueError("ValidationError needs at least one issue")
        self.issues = list(issues)
        self.total = total if total is not None else len(issues)
        more = f" (and {self.total - 1} more problem{'s' if self.total > 2 else ''})" if self.total > 1 else ""
        super().__init__(f"rejected: {self.issues[0]}{more}")


class ModelNotTrainedError(WattGPUError):
    """The model files in models/ are missing or do not match the data."""


class StoreBusyError(WattGPUError):
    """The store file stayed locked by another process for longer than the wait allowed."""


class ConflictError(ValidationError):
    """Re-sent runs (same natural key) whose measured values differ from the stored ones."""
