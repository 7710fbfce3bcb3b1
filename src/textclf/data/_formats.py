"""Parsers for each data file format: rows of (line, label, text, problem).

A parser reports a malformed row as a problem string instead of raising, so the
caller can stop at it or skip it (``on_bad_rows``). Only problems that make the
whole file unreadable (an unknown column, a header without rows) raise.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DataError

if TYPE_CHECKING:
    from . import ReadOptions

TEXT_COLUMNS = (
    "text",
    "sentence",
    "review",
    "content",
    "document",
    "body",
    "question",
    "comment",
    "message",
    "utterance",
)
LABEL_COLUMNS = ("label", "labels", "category", "class", "target", "sentiment", "intent", "topic")

csv.field_size_limit(sys.maxsize)

Row = tuple[int, str, str, "str | None"]  # line, label, text, problem


def decode(path: Path, encoding: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror}).") from exc
    try:
        return data.decode(codec_for(encoding), errors="surrogateescape")
    except LookupError:
        raise DataError(
            f"{path}: unknown encoding {encoding!r}; pass a Python codec name such as utf-8 or latin-1."
        ) from None


def codec_for(encoding: str) -> str:
    """The codec that reads ``encoding``; UTF-8 files may start with a byte-order mark."""
    return "utf-8-sig" if is_utf8(encoding) else encoding


def is_utf8(encoding: str) -> bool:
    return encoding.lower().replace("_", "-") in ("utf-8", "utf8")


def split_lines(text: str) -> list[str]:
    r"""Lines ended by \n, \r\n or \r only; str.splitlines() would also split inside texts
    at form feeds, U+0085, U+2028 and other separators, breaking rows and line numbers."""
    return io.StringIO(text, newline=None).read().split("\n")


def undecodable(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def encoding_problem(encoding: str) -> str:
    return (
        f"bytes that are not valid {encoding}; pass --encoding with the file's real encoding (e.g. --encoding latin-1)"
    )


def table_rows(path: Path, text: str, delimiter: str, options: ReadOptions, jumpstart: bool) -> Iterator[Row]:
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting, strict=True)
    records: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for fields in reader:
            if fields:
                records.append((start, fields))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(
            f"{path}:{reader.line_num}: malformed {'TSV' if delimiter == chr(9) else 'CSV'} ({exc})."
        ) from exc
    if not records:
        return
    text_col, label_col, has_header = locate_columns(path, records[0][1], options, jumpstart)
    if has_header and len(records) == 1:
        raise DataError(f"{path}:{records[0][0]}: a header but no data rows; expected labelled rows after the header.")
    indexes_given = not has_header and not jumpstart and options.text_column is not None
    if has_header:
        exact, expected = len(records[0][1]), f"{len(records[0][1])} columns like the header"
    elif indexes_given:
        exact, expected = None, f"at least {max(text_col, label_col) + 1} columns"
    else:
        exact, expected = 2, "2 columns (label,text)"
    for line, fields in records[1:] if has_header else records:
        if len(fields) == exact or (exact is None and len(fields) > max(text_col, label_col)):
            yield line, fields[label_col], fields[text_col], None
            continue
        hint = "; quote texts that contain the delimiter" if len(fields) > 2 and delimiter == "," else ""
        yield line, "", "", f"expected {expected}, found {len(fields)}{hint}"


def locate_columns(path: Path, first: list[str], options: ReadOptions, jumpstart: bool) -> tuple[int, int, bool]:
    """Return (text index, label index, first row is a header)."""
    if jumpstart:
        return 1, 0, False
    given = (options.text_column, options.label_column)
    if all(c is not None and c.isdigit() for c in given):
        return int(given[0]), int(given[1]), False
    header = [cell.strip() for cell in first]
    text_idx = find_column(path, header, options.text_column, TEXT_COLUMNS, "text")
    label_idx = find_column(path, header, options.label_column, LABEL_COLUMNS, "label")
    if text_idx is not None and label_idx is not None:
        return text_idx, label_idx, True
    if text_idx is None and label_idx is None and len(first) == 2 and given == (None, None):
        return 1, 0, False  # headerless label,text
    missing = " and ".join(
        f"{what} (--{what}-column)" for what, idx in (("text", text_idx), ("label", label_idx)) if idx is None
    )
    raise DataError(
        f"{path}:1: cannot tell which column holds the {missing}; first row is {header[:6]}. "
        "Pass --text-column/--label-column as header names, or as 0-based indexes for a file without a header."
    )


def find_column(path: Path, header: list[str], name: str | None, known: tuple[str, ...], what: str) -> int | None:
    """Index of column ``name`` (a 0-based index, or a header name in any case), else of the first ``known`` name in the header."""
    lowered = [cell.lower() for cell in header]
    if name is not None:
        if name.isdigit():
            return int(name)
        if name in header:
            return header.index(name)
        if name.lower() in lowered:
            return lowered.index(name.lower())
        raise DataError(f"{path}:1: no column named {name!r} for the {what}; the header has {header}.")
    for candidate in known:
        if candidate in lowered:
            return lowered.index(candidate)
    return None


def known_key(record: dict, known: tuple[str, ...]) -> str | None:
    """The first key of ``record`` that is one of the ``known`` names, in any case."""
    lowered = {k.lower(): k for k in record}
    return next((lowered[k] for k in known if k in lowered), None)


def json_problem(exc: json.JSONDecodeError) -> str:
    return f"not valid JSON ({exc.msg.removesuffix(' at')} at column {exc.colno}); expected one object per line"


def jsonl_rows(path: Path, text: str, options: ReadOptions) -> Iterator[Row]:
    text_key, label_key = options.text_column, options.label_column
    for line, raw in enumerate(split_lines(text), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield line, "", "", json_problem(exc)
            continue
        if not isinstance(record, dict):
            yield line, "", "", f"expected a JSON object, found {type(record).__name__}"
            continue
        if text_key is None or label_key is None:
            text_key = text_key or known_key(record, TEXT_COLUMNS)
            label_key = label_key or known_key(record, LABEL_COLUMNS)
            if text_key is None or label_key is None:
                raise DataError(
                    f"{path}:{line}: cannot tell which keys hold the text and the label (keys: {list(record)}); "
                    "pass --text-column and --label-column."
                )
        if text_key not in record or label_key not in record:
            yield line, "", "", f"missing key {text_key if text_key not in record else label_key!r}"
            continue
        body, label = record[text_key], record[label_key]
        if not isinstance(body, str):
            yield line, "", "", f"{text_key!r} must be a string, found {type(body).__name__}"
            continue
        yield line, str(label) if label is not None else "", body, None


def label_text_rows(text: str) -> Iterator[Row]:
    for line, raw in enumerate(split_lines(text), start=1):
        if not raw.strip():
            continue
        label, _, body = raw.strip().partition(" ")
        if not body.strip():
            yield line, label, "", "expected 'LABEL text' (label, a space, then the text)"
            continue
        yield line, label.removeprefix("__label__"), body, None
