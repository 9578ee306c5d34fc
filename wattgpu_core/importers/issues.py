"""How an importer reports problems: each one by row (data row, header excluded; 0 for the file as a whole) and
column, collected so that a file is rejected once with every problem listed (up to :data:`MAX_ISSUES`, with the
total counted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import Issue, ValidationError

MAX_ISSUES = 200


@dataclass
class Issues:
    items: list[Issue] = field(default_factory=list)
    total: int = 0

    def add(self, row: int, column: str, message: str) -> None:
        self.total += 1
        if len(self.items) < MAX_ISSUES:
            self.items.append(Issue(int(row), column, message))

    def add_many(self, rows, column: str, message: str) -> None:
        for r in rows:
            self.add(r, column, message)

    def add_where(self, mask, rows: np.ndarray, column: str, message: str | Callable[[int], str]) -> None:
        """Report each position where ``mask`` holds, as data row ``rows[i]``; ``message`` is a string or a function
        of the position. Past :data:`MAX_ISSUES` of them only the count grows."""
        idx = np.flatnonzero(np.asarray(mask, dtype=bool))
        for i in idx[:MAX_ISSUES]:
            self.add(rows[i], column, message(i) if callable(message) else message)
        self.total += max(0, len(idx) - MAX_ISSUES)

    def raise_if_any(self) -> None:
        if self.total:
            self.items.sort(key=lambda i: (i.row, i.column))
            raise ValidationError(self.items, self.total)


def reject(message: str, column: str = "", row: int = 0) -> ValidationError:
    return ValidationError([Issue(row, column, message)])
