"""Reading an uploaded file: the checks every file passes (size, encoding, not a binary format), the CSV reader
(delimiter from the header line, every line with as many fields as the header, text columns kept as text) and the
typed reads of a parsed table's cells that every CSV parser uses, each problem named by row and column.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd

from .issues import Issues, reject

MAX_FILE_BYTES = 200 * 1024 * 1024
MAX_ROWS = 1_000_000
_DELIMITERS = (",", ";", "\t", "|")
_BOM = b"\xef\xbb\xbf"


def check_bytes(name: str, data: bytes) -> str:
    """The file's text, or a rejection saying why it is not a UTF-8 CSV/JSON text file."""
    if len(data) > MAX_FILE_BYTES:
        raise reject(f"file is {len(data) / 1e6:.0f} MB; the limit is {MAX_FILE_BYTES / 1e6:.0f} MB")
    if not data.strip():
        raise reject("file is empty")
    head = data[:8]
    for magic, kind in ((b"PK\x03\x04", "a ZIP archive (an .xlsx workbook is one); export it as CSV"),
                        (b"\x1f\x8b", "a gzip file; decompress it first"), (b"%PDF", "a PDF"),
                        (b"\x89PNG", "a PNG image"), (b"\xd0\xcf\x11\xe0", "an old Excel/Office file; export CSV")):
        if head.startswith(magic):
            raise reject(f"file is {kind}, not a CSV or JSON text file")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(data) >= 4 and (data[1:4:2] == b"\x00\x00"
                                                                           or data[0:4:2] == b"\x00\x00")):
        raise reject("file is UTF-16 text; re-save it as UTF-8 (in Excel: Save As, 'CSV UTF-8')")
    nul = data.find(b"\x00", 0, 1 << 20)
    if nul >= 0:
        raise reject(f"file holds binary data (a NUL byte at offset {nul}); expected a CSV or JSON text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise reject(f"file is not UTF-8 text (undecodable byte at offset {exc.start}); save it as UTF-8") from None
    return text


def header_line(text: str) -> str:
    """The first non-blank line (the header)."""
    start = 0
    while True:
        end = text.find("\n", start)
        line = text[start:] if end < 0 else text[start:end]
        if line.strip() or end < 0:
            return line.lstrip("\ufeff")
        start = end + 1


def sniff_delimiter(text: str) -> str:
    """The delimiter of the header line: the most frequent of comma, semicolon, tab and pipe (comma if none)."""
    first = header_line(text)
    counts = {d: first.count(d) for d in _DELIMITERS}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else ","


def _line_field_counts(data: bytes, delimiter: str) -> tuple[np.ndarray, np.ndarray, int | None]:
    """(1-based line number, field count) of every non-blank line, honouring double-quoted fields, and the line on
    which a quote opens that is never closed (None when every quote closes).

    Vectorised: a delimiter or newline counts only outside quotes, and a byte is outside quotes when the number of
    quote characters before it is even (RFC 4180 escapes a quote as ``""``, which keeps the parity). Lines are
    records: a newline inside quotes does not start one.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    offset = len(_BOM) if data.startswith(_BOM) else 0
    buf = buf[offset:]
    is_nl = buf == ord("\n")
    is_delim = buf == ord(delimiter)
    quotes = buf == ord('"')
    unclosed_at = None
    if quotes.any():
        parity = np.bitwise_xor.accumulate(quotes.view(np.uint8))
        outside = parity == 0
        is_nl &= outside
        is_delim &= outside
        if parity[-1]:
            unclosed_at = int(np.flatnonzero(quotes & (parity == 1))[-1])
    newlines = np.flatnonzero(is_nl)
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(buf)]))
    if starts[-1] >= len(buf):  # the file ends with a newline: no last line
        starts, ends = starts[:-1], ends[:-1]
    if not len(starts):
        return np.array([], dtype=np.int64), np.array([], dtype=np.int64), None
    length = ends - starts
    has_cr = np.zeros(len(ends), dtype=bool)
    nonempty = length > 0
    has_cr[nonempty] = buf[ends[nonempty] - 1] == ord("\r")
    blank = (length - has_cr) == 0
    # Delimiters per line: where the line bounds fall among the delimiter positions.
    delims = np.flatnonzero(is_delim)
    fields = np.searchsorted(delims, ends) - np.searchsorted(delims, starts) + 1
    line_no = np.arange(1, len(starts) + 1)
    unclosed_line = None if unclosed_at is None else int(np.searchsorted(newlines, unclosed_at)) + 1
    return line_no[~blank], fields[~blank], unclosed_line


def check_field_counts(data: bytes, delimiter: str) -> None:
    """Reject a file whose data lines do not have exactly as many fields as its header, naming each line."""
    line_no, fields, unclosed_line = _line_field_counts(data, delimiter)
    if unclosed_line is not None:
        row = int(np.searchsorted(line_no, unclosed_line))  # data rows are the non-blank lines after the header
        raise reject(f"line {unclosed_line} has a quote (\") that is never closed; close it or remove it", row=row)
    if len(fields) < 2:
        return
    expected = fields[0]
    bad = fields != expected  # position i is data row i (the header is position 0)
    if not bad.any():
        return
    issues = Issues()
    shown = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}[delimiter]
    issues.add_where(bad, np.arange(len(fields)), "",
                     lambda i: f"line {line_no[i]} has {fields[i]} field{'s' if fields[i] != 1 else ''} where the "
                               f"header has {expected} (delimiter {shown}); check for a missing or extra "
                               "delimiter or an unclosed quote")
    issues.raise_if_any()


def read_csv(data: bytes, delimiter: str, text_columns: set[str] | None = None) -> pd.DataFrame:
    """All rows of a CSV whose field counts were checked. ``text_columns`` stay text: any of them that the parser
    took for numbers (a version "0.10" would become 0.1) is read again as text."""
    options = {"sep": delimiter, "skip_blank_lines": True, "encoding": "utf-8-sig"}
    try:
        frame = pd.read_csv(io.BytesIO(data), low_memory=False, **options)
        raw_names = {str(c).strip(): c for c in frame.columns}
        again = [raw_names[c] for c in text_columns or () if c in raw_names
                 and not pd.api.types.is_string_dtype(frame[raw_names[c]]) and frame[raw_names[c]].notna().any()]
        if again:
            text = pd.read_csv(io.BytesIO(data), usecols=again, dtype="str", **options)
            for c in again:
                frame[c] = text[c]
    except pd.errors.ParserError as exc:
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if match:
            expected, line, saw = (int(g) for g in match.groups())
            raise reject(f"line {line} has {saw} fields where the header has {expected} "
                         f"(delimiter {delimiter!r})", row=line - 1) from None
        raise reject(f"could not be parsed as CSV: {str(exc).strip().splitlines()[0]}") from None
    except pd.errors.EmptyDataError:
        raise reject("file is empty") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if len(frame) == 0:
        raise reject("file has a header but no data rows")
    if len(frame) > MAX_ROWS:
        raise reject(f"file has {len(frame):,} rows; the limit is {MAX_ROWS:,} per upload (split it into several "
                     "files)")
    return frame


# ----------------------------------------------------------------------------------------------------------------
# Cells of a parsed table
def numeric_column(frame: pd.DataFrame, column: str, issues: Issues, rows: np.ndarray) -> np.ndarray:
    """Column as float; text that is not a number is reported (blank and NaN text become NaN silently)."""
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    series = frame[column]
    if pd.api.types.is_bool_dtype(series):
        issues.add_many(rows[:1], column, "expected a number, found true/false")
        return np.full(len(frame), np.nan)
    if pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=float, na_value=np.nan)
    values = pd.to_numeric(series, errors="coerce")
    bad = values.isna() & series.notna() & (series.astype(str).str.strip() != "")
    bad &= ~series.astype(str).str.strip().str.lower().isin({"nan", "na", "n/a", "null", "none"})
    if bad.any():
        def message(i: int) -> str:
            text = str(series.iloc[i]).strip()
            hint = "; write decimals with a point" if re.fullmatch(r"[+-]?\d+,\d+", text) else ""
            return f"expected a number, found {text[:40]!r}{hint}"

        issues.add_where(bad.to_numpy(), rows, column, message)
    return values.to_numpy(dtype=float, na_value=np.nan)


def text_column(frame: pd.DataFrame, column: str, default: str | None = None) -> pd.Series:
    """Column as stripped text (pandas ``str`` dtype, Arrow-backed); missing or blank cells become ``default``."""
    if column not in frame.columns:
        return pd.Series([default] * len(frame), dtype="str")
    series = frame[column]
    if series.dtype != "str":
        series = series.astype("str")
    series = series.str.strip()
    series = series.mask(series == "").reset_index(drop=True)
    return series.fillna(default) if default is not None else series


def require_columns(frame: pd.DataFrame, required, fmt: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise reject(
            f"missing required column{'s' if len(missing) > 1 else ''} {', '.join(missing)} for the {fmt} format "
            f"(found: {', '.join(map(str, frame.columns[:12]))})",
            column=missing[0],
        )
