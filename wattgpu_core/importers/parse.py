"""One file's bytes to a :class:`~wattgpu_core.parsed.ParsedFile`: check the bytes, let ``sniff`` say the format
(unless it is given), read the CSV or JSON and hand it to that format's parser.

JSON files are ML.ENERGY v2 run objects or TokenPowerBench results; a vLLM or GuideLLM result (or a power log)
uploaded alone is refused with a pointer to the pair upload (``pair.py``). CSV files are the canonical format,
either form of Watt Counts, ML.ENERGY v1 or Argonne.
"""

from __future__ import annotations

import csv
import json

import wattgpu_core.importers.argonne as argonne  # the modules, not the package: its __init__ imports this one
import wattgpu_core.importers.canonical as canonical
import wattgpu_core.importers.mlenergy_v1 as mlenergy_v1
import wattgpu_core.importers.wattcounts as wattcounts

from ..parsed import ParsedFile
from .issues import Issues, reject
from .mlenergy_v2 import records_to_frame
from .reading import check_bytes, check_field_counts, header_line, read_csv, sniff_delimiter
from .sniff import FORMATS, MLE_V2_KEYS, detect_format_from_columns, detect_json, detect_power_log, format_error
from .tokenpowerbench import parse_tokenpowerbench

# CSV format -> (columns read as text, parser of the table: (frame, issues, file name) -> ParsedFile)
_CSV_FORMATS = {
    "canonical": (canonical.TEXT_COLUMNS, lambda frame, issues, _: canonical.parse_canonical(frame, issues)),
    "wattcounts_experiments": (wattcounts.EXPERIMENTS_TEXT_COLUMNS,
                               lambda frame, issues, _: wattcounts.parse_experiments(frame, issues)),
    "wattcounts_subset": (wattcounts.SUBSET_TEXT_COLUMNS,
                          lambda frame, issues, _: wattcounts.parse_subset(frame, issues)),
    "mlenergy_v1": (mlenergy_v1.TEXT_COLUMNS, mlenergy_v1.parse_mlenergy_v1),
    "argonne": (argonne.TEXT_COLUMNS, lambda frame, issues, _: argonne.parse_argonne(frame, issues)),
}


def _parse_json(text: str, file_name: str = "") -> ParsedFile:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise reject(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if obj == []:
        raise reject("JSON file holds an empty list")
    detected = detect_json(obj)
    if detected == "tokenpowerbench":
        return parse_tokenpowerbench(file_name, obj)
    if detected == "mlenergy_v2":
        return records_to_frame(obj if isinstance(obj, list) else [obj])
    if detected:
        raise reject(f"this is a {FORMATS[detected].split(' (')[0]}: it holds no power. Upload it "
                     "together with the power log of the same run (CLI: ingest RESULT.json --power-log POWER.csv)")
    raise reject("unrecognised JSON: expected ML.ENERGY v2 run objects with keys " + ", ".join(sorted(MLE_V2_KEYS)))


def _read_header(text: str, delimiter: str) -> list[str]:
    """The header's column names (stripped); a name given twice is refused."""
    try:
        header = next(csv.reader([header_line(text)], delimiter=delimiter))
    except csv.Error as exc:  # e.g. a header field over the csv module's 131,072-character limit
        raise reject(f"the header line could not be read as CSV ({exc}); a header names columns in a few "
                     "characters each") from None
    header = [h.strip() for h in header]
    seen = set()
    for h in header:
        if h in seen and h:
            raise reject(f"column {h!r} appears more than once in the header", column=h)
        seen.add(h)
    return header


def parse_bytes(file_name: str, data: bytes, fmt: str | None = None) -> ParsedFile:
    """Read one file's bytes in any known format (detected unless ``fmt`` is given)."""
    if fmt is not None and fmt not in FORMATS:
        raise reject(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    text = check_bytes(file_name, data)
    stripped = text.lstrip("\ufeff \t\r\n")
    if fmt in ("mlenergy_v2", "tokenpowerbench") or (fmt is None and stripped[:1] in "[{"):
        return _parse_json(text, file_name)
    delimiter = sniff_delimiter(text)
    header = _read_header(text, delimiter)
    detected = fmt or detect_format_from_columns(header)
    if detected is None:
        if detect_power_log(text):
            raise reject("this is a GPU power log: upload it together with the benchmark result of the same run "
                         "(CLI: ingest RESULT.json --power-log POWER.csv)")
        raise format_error(header)
    check_field_counts(data, delimiter)
    text_columns, parse = _CSV_FORMATS.get(detected, (None, None))
    frame = read_csv(data, delimiter, text_columns)
    if parse is None:
        raise reject(f"the {detected} format is a JSON format, but the file is CSV")
    issues = Issues()
    parsed = parse(frame, issues, file_name)
    issues.raise_if_any()
    return parsed
