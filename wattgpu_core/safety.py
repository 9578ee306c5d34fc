"""Text from outside shown or exported safely: never markup, never a spreadsheet formula.

Names from uploads, custom GPUs and LLMs, ``config.json`` files and URL parameters are data. :func:`md` makes such a
string literal text for anything that renders Markdown (Streamlit's ``st.markdown``, captions, alerts, headers):
Markdown and HTML punctuation is backslash-escaped, so ``[x](javascript:...)``, ``<img ...>``, ``**`` or
``:red[...]`` print as typed and no bare URL becomes a link. :func:`plot_text` does the same for Plotly labels
(which render a few HTML tags). :func:`csv_bytes` / :func:`write_csv` are the one way WattGPU writes a CSV for a
person: text cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage
return; OWASP's CSV-injection guidance) get a leading apostrophe, while numbers, numeric columns and text that is
just a number (``-1.5``) stay as they are; text cells are quoted (so a tab or carriage return stays inside its cell).
"""

from __future__ import annotations

import csv
import html
import re
from pathlib import Path

import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|<>~$:&])")  # text stays on one line, so '.', '-' need no escape
_LEADING = re.compile(r"^(\s*)([-=])")
_LEADING_NUMBER = re.compile(r"^(\s*\d+)\.(?=\s|$)")
_WWW = re.compile(r"(?i)\bwww\.")


def md(value) -> str:
    """``value`` as literal text inside Markdown (no emphasis, links, images, HTML, directives or math)."""
    text = "" if value is None else str(value)
    text = text.replace("\r", " ").replace("\n", " ")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = _LEADING.sub(r"\1\\\2", text)  # a leading "-", "=" or "1. " would start a list or heading
    text = _LEADING_NUMBER.sub(r"\1\\.", text)
    return _WWW.sub(lambda m: m.group(0)[:-1] + "\\.", text)  # no bare www. autolink


def plot_text(value) -> str:
    """``value`` as literal text in a Plotly label, title or hover text (its HTML subset escaped)."""
    return html.escape("" if value is None else str(value), quote=False)


def neutralise_cell(value):
    """One cell as a spreadsheet will read it safely: formula-like text gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) and not _NUMBER.match(value.strip()):
        return "'" + value
    return value


def neutralise(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells (and column names) cannot run as formulas; numeric columns untouched."""
    out = frame.copy()
    for col in out.columns:
        series = out[col]
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            continue
        if pd.api.types.is_datetime64_any_dtype(series):
            continue
        out[col] = series.astype(object).map(neutralise_cell)
    out.columns = [neutralise_cell(str(c)) for c in out.columns]
    return out


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """``frame`` as UTF-8 CSV for a download, with formula-like cells neutralised."""
    return neutralise(frame).to_csv(index=False, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC).encode()


def write_csv(frame: pd.DataFrame, path: Path | str) -> None:
    """Write ``frame`` as CSV to ``path`` with formula-like cells neutralised (the CLI's outputs)."""
    neutralise(frame).to_csv(path, index=False, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
