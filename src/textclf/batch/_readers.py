"""Stream the records of one input file, from any byte offset, each with its line number.

Formats (``--format``; ``auto`` goes by the file's suffix):

* ``text``: one text per line (any suffix but those below);
* ``csv`` / ``tsv``: a header with the text in a known column (``text``, ``sentence``, ...)
  or ``--text-column``, or no header: one column (the text), two (``label,text``) or 0-based
  indexes; the data module's dialects (TSV unquoted);
* ``jsonl`` (``.jsonl``, ``.jsonlines``, ``.ndjson``): one object per line, the text under a
  known key or ``--text-field``;
* ``text-csv``: SageMaker JumpStart's ``text/csv``, no header, one CSV-quoted text per record.

Blank lines are not records. A record that cannot be read carries a ``problem`` (the
reason) instead of a text; only a file whose layout cannot be told at all raises. Reading
is line by line, so a file of any size streams, and a byte range that starts where a record
starts reads exactly as it would in a pass over the whole file (how chunks are resumed).
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..data._formats import (
    LABEL_COLUMNS,
    TEXT_COLUMNS,
    encoding_problem,
    find_column,
    is_utf8,
    json_problem,
    known_key,
    undecodable,
)
from ..errors import ConfigError, DataError
from ._options import BatchOptions

_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".jsonlines": "jsonl", ".ndjson": "jsonl"}
_EMPTY_TEXT = "empty text; expected the text to classify"


@dataclass(frozen=True)
class Layout:
    """Where one file's fields are: resolved once, stored in the manifest, used by every chunk.

    ``text``/``label``/``id`` are column indexes (CSV, TSV) or keys (JSONL). ``columns`` is the
    exact width every row must have (header files, and the one- and two-column defaults).
    ``start`` and ``line`` are the byte offset and line number of the first record after a header.
    """

    format: str
    text: int | str | None = None
    label: int | str | None = None
    id: int | str | None = None
    header: tuple[str, ...] | None = None
    columns: int | None = None
    start: int = 0
    line: int = 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Layout:
        header = values.get("header")
        return cls(**{**values, "header": tuple(header) if header is not None else None})


@dataclass
class Record:
    """One input record: its first line, and the text to classify or the problem that stops it."""

    line: int
    text: str = ""
    label: str | None = None
    id: Any = None
    source: Any = None
    problem: str | None = None


def file_format(path: Path, options: BatchOptions) -> str:
    return options.format if options.format != "auto" else _SUFFIXES.get(path.suffix.lower(), "text")


def resolve_layout(path: Path, options: BatchOptions) -> Layout:
    """Find the text, label and id fields of ``path`` from its first record (and header)."""
    fmt = file_format(path, options)
    if fmt == "text":
        if options.label_column is not None or options.id_column is not None:
            raise ConfigError(
                f"{path}: plain text lines have no columns; --label-column and --id-column need csv, tsv or jsonl input."
            )
        return Layout("text")
    with _open(path) as f:
        if fmt == "jsonl":
            return _jsonl_layout(path, _Lines(f, 0, None, 1, options.encoding), options)
        return _table_layout(path, fmt, f, options)


def read_records(
    path: Path, layout: Layout, encoding: str, start: int, end: int | None, line: int
) -> Iterator[tuple[Record, int, int]]:
    """The records from byte ``start`` (on line ``line``) up to ``end``, each with the offset and line number just past it."""
    with _open(path) as f:
        lines = _Lines(f, start, end, line, encoding)
        if layout.format == "text":
            records = _text_records(lines, encoding)
        elif layout.format == "jsonl":
            records = _jsonl_records(lines, layout, encoding)
        else:
            records = _table_records(lines, layout, encoding)
        for record in records:
            yield record, lines.pos, lines.line + 1


# -- lines --------------------------------------------------------------------


class _Lines:
    """Decoded lines of a byte range; ``pos`` is the offset after the last line read, ``line`` its number."""

    def __init__(self, f: BinaryIO, start: int, end: int | None, line: int, encoding: str):
        f.seek(start)
        self.f, self.pos, self.end, self.line = f, start, end, line - 1
        self.codec, self.bom = codecs.lookup(encoding).name, is_utf8(encoding)

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.end is not None and self.pos >= self.end:
            raise StopIteration
        raw = self.f.readline()
        if not raw:
            raise StopIteration
        at_start, self.pos, self.line = self.pos == 0, self.pos + len(raw), self.line + 1
        if at_start and self.bom and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        return raw.decode(self.codec, errors="surrogateescape")


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror}).") from exc


def _chomp(line: str) -> str:
    line = line[:-1] if line.endswith("\n") else line
    return line[:-1] if line.endswith("\r") else line


def _text_problem(text: str) -> str | None:
    if not text.strip():
        return _EMPTY_TEXT
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        return "text holds an unpaired UTF-16 surrogate (a lone \\ud800-\\udfff escape); expected valid Unicode"
    return None


# -- plain text ---------------------------------------------------------------


def _text_records(lines: _Lines, encoding: str) -> Iterator[Record]:
    for raw in lines:
        line = _chomp(raw)
        if not line.strip():
            continue
        if undecodable(line):
            yield Record(lines.line, problem=encoding_problem(encoding))
        else:
            yield Record(lines.line, text=line.strip(), source=line)


# -- JSON lines ---------------------------------------------------------------


def _jsonl_layout(path: Path, lines: _Lines, options: BatchOptions) -> Layout:
    layout = Layout("jsonl", options.text_column, options.label_column, options.id_column)
    for raw in lines:  # the first object decides the keys that were not given
        try:
            record = json.loads(raw) if raw.strip() and not undecodable(raw) else None
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict):
            continue
        text = options.text_column or known_key(record, TEXT_COLUMNS)
        if text is None:
            raise DataError(
                f"{path}:{lines.line}: cannot tell which key holds the text (keys: {list(record)[:10]}); pass --text-field."
            )
        return Layout("jsonl", text, options.label_column or known_key(record, LABEL_COLUMNS), options.id_column)
    return layout  # no object at all: every record will say why


def _jsonl_records(lines: _Lines, layout: Layout, encoding: str) -> Iterator[Record]:
    for raw in lines:
        if raw.strip():
            yield _jsonl_record(lines.line, raw, layout, encoding)


def _jsonl_record(line: int, raw: str, layout: Layout, encoding: str) -> Record:
    if undecodable(raw):
        return Record(line, problem=encoding_problem(encoding))
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as exc:
        return Record(line, problem=json_problem(exc))
    if not isinstance(record, dict):
        return Record(line, problem=f"expected a JSON object, found {type(record).__name__}")
    if layout.text not in record:
        return Record(line, problem=f"missing key {layout.text!r}; expected the text under it")
    text = record[layout.text]
    if not isinstance(text, str):
        return Record(line, problem=f"{layout.text!r} must be a string, found {type(text).__name__}")
    problem = _text_problem(text)
    if problem:
        return Record(line, problem=problem)
    label = record.get(layout.label) if layout.label is not None else None
    ident = record.get(layout.id) if layout.id is not None else None
    return Record(line, text.strip(), None if label is None else str(label), ident, record)


# -- CSV and TSV --------------------------------------------------------------


def _reader(lines: _Lines, fmt: str):
    if fmt == "tsv":
        return csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE, strict=True)
    return csv.reader(lines, delimiter=",", quoting=csv.QUOTE_MINIMAL, strict=True)


def _rows(lines: _Lines, fmt: str) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """(first line, fields, problem) per non-blank record; a malformed record has a problem instead of fields."""
    reader = _reader(lines, fmt)
    name = "TSV" if fmt == "tsv" else "CSV"
    while True:
        first = lines.line + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield first, None, f"malformed {name} ({exc})"
            continue
        if len(fields) <= 1 and not "".join(fields).strip() and lines.line == first:
            continue  # a blank line
        yield first, fields, None


def _table_layout(path: Path, fmt: str, f: BinaryIO, options: BatchOptions) -> Layout:
    lines = _Lines(f, 0, None, 1, options.encoding)
    first_line, first, problem = next(_rows(lines, fmt), (1, [], None))
    if problem:
        raise DataError(
            f"{path}:{first_line}: cannot read the first row ({problem}); fix the file or pass --format text."
        )
    if not first:
        return Layout(fmt, 0)  # no records: any layout reads them all
    given = {"text": options.text_column, "label": options.label_column, "id": options.id_column}
    names_given = [value for value in given.values() if value is not None and not value.isdigit()]
    header = options.header
    if fmt == "text-csv":
        header = False if header is None else header
    elif header is None:
        header = bool(names_given) or (
            options.text_column is None and any(c.strip().lower() in TEXT_COLUMNS for c in first)
        )
    if header:
        names = tuple(cell.strip() for cell in first)
        text = find_column(path, list(names), options.text_column, TEXT_COLUMNS, "text")
        if text is None:
            raise DataError(
                f"{path}:{first_line}: cannot tell which column holds the text; the header is {list(names)[:10]}; pass --text-column."
            )
        label = find_column(path, list(names), options.label_column, LABEL_COLUMNS, "label")
        ident = find_column(path, list(names), options.id_column, (), "id")
        layout = Layout(fmt, text, label, ident, names, len(names), lines.pos, lines.line + 1)
    else:
        if names_given:
            raise ConfigError(
                f"{path}: column {names_given[0]!r} is a name, but the file is read without a header; "
                "pass a 0-based column index, or --header."
            )
        layout = _headerless_layout(path, fmt, first_line, len(first), given)
    _check_indexes(path, layout, len(first))
    return layout


def _headerless_layout(path: Path, fmt: str, line: int, width: int, given: dict) -> Layout:
    index = {what: int(value) if value is not None else None for what, value in given.items()}
    if fmt == "text-csv":
        return Layout(fmt, index["text"] or 0, index["label"], index["id"], None, None if index["text"] else 1)
    if index["text"] is not None:
        return Layout(fmt, index["text"], index["label"], index["id"])
    if width <= 1:
        return Layout(
            fmt, 0, index["label"], index["id"], None, 1 if index["label"] is None and index["id"] is None else None
        )
    if width == 2:
        return Layout(fmt, 1, 0 if index["label"] is None else index["label"], index["id"], None, 2)
    raise DataError(
        f"{path}:{line}: cannot tell which of the {width} columns holds the text; "
        "pass --text-column (a header name, or a 0-based index for a file without a header)."
    )


def _check_indexes(path: Path, layout: Layout, width: int) -> None:
    width = layout.columns or width
    for what in ("text", "label", "id"):
        index = getattr(layout, what)
        if index is not None and index >= width:
            raise DataError(
                f"{path}: no column {index} for the {what}; its first row has {width} column(s) (indexes are 0-based)."
            )


def _table_records(lines: _Lines, layout: Layout, encoding: str) -> Iterator[Record]:
    needed = max(i for i in (layout.text, layout.label, layout.id) if i is not None) + 1
    for line, fields, problem in _rows(lines, layout.format):
        if problem is None and any(undecodable(field) for field in fields):
            problem = encoding_problem(encoding)
        elif problem is None and layout.columns is not None and len(fields) != layout.columns:
            problem = _width_problem(layout, len(fields))
        elif problem is None and len(fields) < needed:
            problem = f"expected at least {needed} columns, found {len(fields)}"
        if problem is None:
            problem = _text_problem(fields[layout.text])
        if problem:
            yield Record(line, problem=problem)
            continue
        label = fields[layout.label] if layout.label is not None else None
        ident = fields[layout.id] if layout.id is not None else None
        yield Record(line, fields[layout.text].strip(), label, ident, fields)


def _width_problem(layout: Layout, found: int) -> str:
    if layout.header:
        expected = f"{layout.columns} columns like the header"
    elif layout.columns == 1:
        expected = "1 column (one text per record)"
    else:
        expected = f"{layout.columns} columns (label,text)"
    hint = "; quote texts that contain the delimiter" if found > layout.columns and layout.format != "tsv" else ""
    return f"expected {expected}, found {found}{hint}"
