r"""One reader for every data file (CSV, TSV, JSON lines, text), streamed as records.

``train``, ``evaluate``, ``tune``, ``export``, ``predict --input`` and ``batch`` all read
files here, with one set of rules. :mod:`textclf.data` views the records as labelled
examples (``read_examples``) or as texts (``read_texts``); :mod:`textclf.batch` cuts them into
chunks by byte offset. A file is read in two steps: :func:`resolve_layout` finds where its
fields are (once, from its first record), then :func:`records` / :func:`read_records` stream it.

Formats (``ReadOptions.format``; None goes by the suffix, :data:`SUFFIXES`):

* ``csv`` / ``tsv``: TSV is unquoted (a ``"`` is an ordinary character);
* ``jsonl`` (``.jsonl``, ``.jsonlines``, ``.ndjson``): one JSON object per line;
* ``text`` (``.txt``, and any other suffix): one text per line, for every command. It carries
  no labels, so a command that needs them (train, evaluate, tune, export's check, batch
  ``--evaluate``) refuses it and says to use ``label-text``, csv, tsv or jsonl;
* ``label-text`` (``.label``): ``LABEL text`` lines (TREC); fastText's ``__label__`` prefix is dropped;
* ``text-csv``: SageMaker JumpStart's ``text/csv``: no header, one CSV-quoted text per record.

Columns (``text_column``, ``label_column``, ``id_column``) are a header name (in any case), a
0-based index (a file without a header) or a JSON key. Left out, the text and the label are
found by their common names (:data:`TEXT_COLUMNS`, :data:`LABEL_COLUMNS`). A CSV/TSV file
starts with a header when ``header`` says so or, with ``header=None``, when a column is given
by name or its first row holds a common text or label name. Without a header, one column is
the text, two are ``label,text``, and more need ``text_column`` as an index.

Lines end at ``\n`` or ``\r\n`` only: form feeds, U+0085, U+2028 and other separators stay
inside a text. Blank lines are not records; a UTF-8 byte-order mark is dropped. A record that
cannot be read (bytes not valid in the encoding, malformed CSV or JSON, a wrong number of
columns, an empty text) carries a ``problem`` and the line it starts on, so that the caller
can stop at it (``FILE:LINE: problem.``) or go on; only a file whose layout cannot be told
raises. Reading is line by line, so a file of any size streams, and a byte range that starts
where a record starts reads exactly as it would in a pass over the whole file.

The module is longer than most (about 500 lines) on purpose: every format rule of every
command lives here and nowhere else, in this order: options and records, lines, text lines,
JSON lines, CSV/TSV.

    >>> from textclf.data.reader import ReadOptions, records, resolve_layout
    >>> layout = resolve_layout("reviews.csv", ReadOptions(), labels=True)  # doctest: +SKIP
    >>> [(r.line, r.label, r.text) for r in records("reviews.csv", layout)][:1]  # doctest: +SKIP
    [(2, 'positive', 'lovely movie')]
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError
from ..options import setting
from ..validation import check_fields

__all__ = [
    "FORMATS",
    "LABEL_COLUMNS",
    "SUFFIXES",
    "TASKS",
    "TEXT_COLUMNS",
    "Layout",
    "ReadOptions",
    "Record",
    "file_format",
    "read_records",
    "records",
    "resolve_layout",
]

FORMATS = ("text", "label-text", "csv", "tsv", "jsonl", "text-csv")
TASKS = ("single-label", "multi-label")
SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".jsonlines": "jsonl",
    ".ndjson": "jsonl",
    ".txt": "text",
    ".label": "label-text",
}
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

_EMPTY_TEXT = "empty text; expected the text to classify"
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
_SURROGATE = re.compile("[\ud800-\udfff]")

csv.field_size_limit(sys.maxsize)


@dataclass(frozen=True)
class ReadOptions:
    """How to read a data file: shared by train, evaluate, tune, export and (mapped from ``BatchOptions``) batch.

    ``text_column``/``label_column``/``id_column``: a header name, a 0-based index (no header) or a JSON key.
    ``encoding``: a Python codec name. ``on_bad_rows``: ``"error"`` stops at the first bad row, ``"skip"``
    leaves bad rows out and lists them. ``format``: one of :data:`FORMATS`, or None to go by the suffix.
    ``header``: whether a CSV/TSV file starts with a header; None decides from its first row.
    The first four fields keep their order (they are passed by position); the later ones default
    to None, so the read options a checkpoint recorded stay equal to today's.
    """

    text_column: str | None = setting(
        None, "Column (header name, or 0-based index without a header) or JSON key of the text."
    )
    label_column: str | None = setting(
        None, "Column (header name, or 0-based index without a header) or JSON key of the label."
    )
    encoding: str = setting("utf-8", "Encoding of the data files.")
    on_bad_rows: str = setting(
        "error", "Stop at the first bad row, or skip bad rows and report them.", choices=("error", "skip")
    )
    # batch's flags set these (BatchOptions); the labelled commands go by the suffix and the first row
    format: str | None = setting(None, "Format; None: by the file's suffix.", choices=FORMATS, cli=False)
    header: bool | None = setting(None, "Whether a CSV/TSV file starts with a header.", cli=False)
    id_column: str | None = setting(None, "Column or JSON key copied to each output as its id.", cli=False)
    # multi-label files (None keeps a checkpoint's recorded read options equal to today's)
    task: str | None = setting(
        None,
        "single-label (one label a row) or multi-label (any number, joined by --label-separator or a JSON "
        "list); None: multi-label when a label holds the separator or is a list.",
        choices=TASKS,
    )
    label_separator: str | None = setting(
        None, "What joins a multi-label row's labels (`joy,surprise`, `8,20`); None: a comma.", shown=","
    )
    label_names: str | None = setting(
        None, "A file of label names, one a line; integer labels in the data are 0-based ids into it."
    )

    @property
    def separator(self) -> str:
        """The multi-label separator (a comma unless ``label_separator`` says otherwise)."""
        return self.label_separator if self.label_separator is not None else ","

    def __post_init__(self) -> None:
        check_fields(self)
        if self.label_separator is not None and not self.label_separator.strip():
            raise ConfigError(
                f"label_separator {self.label_separator!r} is blank; give the character(s) that join a row's labels."
            )


@dataclass(frozen=True)
class Layout:
    """Where one file's fields are: resolved once, then used for every record (batch stores it in its manifest).

    ``text``/``label``/``id`` are column indexes (CSV, TSV) or keys (JSONL); a ``label-text`` line is
    ``label`` 0 (its first word) and ``text`` 1 (the rest). ``columns`` is the exact width every row
    must have (header files, and the one- and two-column defaults). ``start`` and ``line`` are the
    byte offset and line number of the first record after a header.
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
    """One record: its first line, and its text (stripped), label (a JSON list: its items), id and source
    fields, or what stops it."""

    line: int
    text: str = ""
    label: str | list[str] | None = None
    id: Any = None
    source: Any = None
    problem: str | None = None


def file_format(path: Path, format: str | None = None) -> str:
    """``format``, or the format of ``path``'s suffix (``text`` for a suffix not in :data:`SUFFIXES`)."""
    return format if format is not None else SUFFIXES.get(path.suffix.lower(), "text")


def resolve_layout(path: str | Path, options: ReadOptions = ReadOptions(), labels: bool = False) -> Layout:
    """Find the text, label and id fields of ``path`` from its first record (and header).

    ``labels=True`` (train, evaluate) needs a label: a ``text`` file raises (it holds texts only),
    and so does a table or JSONL file whose label cannot be found.
    """
    path = Path(path)
    fmt = file_format(path, options.format)
    if fmt in ("text", "label-text"):
        if options.label_column is not None or options.id_column is not None:
            raise ConfigError(
                f"{path}: plain text lines have no columns; "
                "--label-column and --id-column need csv, tsv or jsonl input."
            )
        if fmt == "text" and labels:
            raise DataError(
                f"{path}: a text file holds one text per line and no labels; for labelled data use "
                "`LABEL text` lines in a .label file (as TREC), or a csv, tsv or jsonl file."
            )
        return Layout("text") if fmt == "text" else Layout("label-text", 1, 0)
    with _lines(path, options.encoding) as lines:
        if fmt == "jsonl":
            return _jsonl_layout(path, lines, options, labels)
        return _table_layout(path, fmt, lines, options, labels)


def records(path: str | Path, layout: Layout, encoding: str = "utf-8") -> Iterator[Record]:
    """Every record of ``path``, read with ``layout``."""
    for record, _, _ in read_records(Path(path), layout, encoding, layout.start, None, layout.line):
        yield record


def read_records(
    path: Path, layout: Layout, encoding: str, start: int, end: int | None, line: int
) -> Iterator[tuple[Record, int, int]]:
    """The records from byte ``start`` (on line ``line``) up to ``end``, each with the offset and line just past it."""
    with _lines(path, encoding, start, end, line) as lines:
        if layout.format in ("text", "label-text"):
            found = _line_records(lines, layout, encoding)
        elif layout.format == "jsonl":
            found = _jsonl_records(lines, layout, encoding)
        else:
            found = _table_records(lines, layout, encoding)
        for record in found:
            yield record, lines.pos, lines.line + 1


# -- lines --------------------------------------------------------------------


class _Lines:
    """Decoded lines of a byte range; ``pos`` is the offset after the last line read, ``line`` its number.

    An encoding that does not write ``\\n`` as that one byte (UTF-16, UTF-32) is read as text, and
    ``pos`` counts characters instead of bytes (batch refuses such encodings; training reads them).
    """

    def __init__(self, f, start: int, end: int | None, line: int, codec: str, encoding: str):
        self.f, self.pos, self.end, self.line, self.codec, self.encoding = f, start, end, line - 1, codec, encoding
        self.bom, self.text = codec == "utf-8", None
        if "\n".encode(codec) == b"\n":
            f.seek(start)
        else:
            self.text = io.TextIOWrapper(f, codec, errors="surrogateescape", newline="\n")
            self._decoded(self.text.read, start)

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.end is not None and self.pos >= self.end:
            raise StopIteration
        raw = self.f.readline() if self.text is None else self._decoded(self.text.readline)
        if not raw:
            raise StopIteration
        at_start, self.pos, self.line = self.pos == 0, self.pos + len(raw), self.line + 1
        if self.text is not None:
            return raw
        if at_start and self.bom and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        return raw.decode(self.codec, errors="surrogateescape")

    def _decoded(self, read, *args) -> str:
        try:
            return read(*args)
        except UnicodeError as exc:
            raise DataError(
                f"{self.f.name}:{self.line + 1}: not valid {self.encoding} ({exc}); "
                "pass --encoding with the file's real encoding."
            ) from exc


@contextmanager
def _lines(path: Path, encoding: str, start: int = 0, end: int | None = None, line: int = 1) -> Iterator[_Lines]:
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise DataError(
            f"{path}: unknown encoding {encoding!r}; pass a Python codec name such as utf-8 or latin-1."
        ) from None
    try:
        f = path.open("rb")
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror}).") from exc
    with f:
        yield _Lines(f, start, end, line, codec, encoding)


def _chomp(line: str) -> str:
    line = line[:-1] if line.endswith("\n") else line
    return line[:-1] if line.endswith("\r") else line


def _undecodable(text: str) -> bool:
    """Whether ``text`` holds a byte the codec could not decode (``surrogateescape`` made it U+DC80..U+DCFF)."""
    return _ESCAPED_BYTE.search(text) is not None


def _encoding_problem(encoding: str) -> str:
    return (
        f"bytes that are not valid {encoding}; pass --encoding with the file's real encoding (e.g. --encoding latin-1)"
    )


def _text_problem(text: str) -> str | None:
    if not text.strip():
        return _EMPTY_TEXT
    if _SURROGATE.search(text):
        return "text holds an unpaired UTF-16 surrogate (a lone \\ud800-\\udfff escape); expected valid Unicode"
    return None


# -- text and label-text lines ------------------------------------------------


def _line_records(lines: _Lines, layout: Layout, encoding: str) -> Iterator[Record]:
    for raw in lines:
        line = _chomp(raw)
        if not line.strip():
            continue
        if _undecodable(line):
            yield Record(lines.line, problem=_encoding_problem(encoding))
        elif layout.format == "text":
            yield Record(lines.line, text=line.strip(), source=line)
        else:
            label, _, text = line.strip().partition(" ")
            if not text.strip():
                yield Record(lines.line, problem="expected 'LABEL text' (label, a space, then the text)")
            else:
                yield Record(lines.line, text.strip(), label.removeprefix("__label__"), source=line)


# -- JSON lines ---------------------------------------------------------------


def _known_key(record: dict, known: tuple[str, ...]) -> str | None:
    """The first key of ``record`` that is one of the ``known`` names, in any case."""
    lowered = {k.lower(): k for k in record}
    return next((lowered[k] for k in known if k in lowered), None)


def _jsonl_layout(path: Path, lines: _Lines, options: ReadOptions, labels: bool) -> Layout:
    for raw in lines:  # the first object decides the keys that were not given
        try:
            record = json.loads(raw) if raw.strip() and not _undecodable(raw) else None
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict):
            continue
        text = options.text_column or _known_key(record, TEXT_COLUMNS)
        if text is None:
            raise DataError(
                f"{path}:{lines.line}: cannot tell which key holds the text (keys: {list(record)[:10]}); "
                "pass --text-field."
            )
        label = options.label_column or _known_key(record, LABEL_COLUMNS)
        if label is None and labels:
            raise DataError(
                f"{path}:{lines.line}: cannot tell which key holds the label (keys: {list(record)[:10]}); "
                "pass --label-column."
            )
        return Layout("jsonl", text, label, options.id_column)
    return Layout(
        "jsonl", options.text_column, options.label_column, options.id_column
    )  # no object: each record says why


def _jsonl_records(lines: _Lines, layout: Layout, encoding: str) -> Iterator[Record]:
    for raw in lines:
        if raw.strip():
            yield _jsonl_record(lines.line, raw, layout, encoding)


def _jsonl_record(line: int, raw: str, layout: Layout, encoding: str) -> Record:
    if _undecodable(raw):
        return Record(line, problem=_encoding_problem(encoding))
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as exc:
        why = f"{exc.msg.removesuffix(' at')} at column {exc.colno}"
        return Record(line, problem=f"not valid JSON ({why}); expected one object per line")
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
    if isinstance(label, list) and all(isinstance(item, (str, int, float)) for item in label):
        label = [str(item) for item in label]  # a multi-label row: its labels, each as text
    elif isinstance(label, (list, dict)):
        return Record(line, problem=f"{layout.label!r} must be a label or a list of labels (strings or numbers)")
    elif label is not None:
        label = str(label)
    ident = record.get(layout.id) if layout.id is not None else None
    return Record(line, text.strip(), label, ident, record)


# -- CSV and TSV --------------------------------------------------------------


def _rows(lines: _Lines, fmt: str) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """(first line, fields, problem) per non-blank record; a malformed record has a problem instead of fields."""
    if fmt == "tsv":
        reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE, strict=True)
    else:
        reader = csv.reader(lines, delimiter=",", quoting=csv.QUOTE_MINIMAL, strict=True)
    while True:
        first = lines.line + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield first, None, f"malformed {'TSV' if fmt == 'tsv' else 'CSV'} ({exc})"
            continue
        if len(fields) <= 1 and not "".join(fields).strip() and lines.line == first:
            continue  # a blank line
        yield first, fields, None


def _find_column(path: Path, header: list[str], name: str | None, known: tuple[str, ...], what: str) -> int | None:
    """Index of column ``name`` (a 0-based index, or a header name in any case), else of the first ``known`` name."""
    lowered = [cell.lower() for cell in header]
    if name is not None:
        if name.isdigit():
            return int(name)
        if name in header:
            return header.index(name)
        if name.lower() in lowered:
            return lowered.index(name.lower())
        raise DataError(f"{path}:1: no column named {name!r} for the {what}; the header has {header}.")
    return next((lowered.index(candidate) for candidate in known if candidate in lowered), None)


def _table_layout(path: Path, fmt: str, lines: _Lines, options: ReadOptions, labels: bool) -> Layout:
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
        known = TEXT_COLUMNS + LABEL_COLUMNS
        header = bool(names_given) or (options.text_column is None and any(c.strip().lower() in known for c in first))
    if header:
        layout = _header_layout(path, fmt, first_line, [cell.strip() for cell in first], options, lines)
    elif names_given:
        raise ConfigError(
            f"{path}: column {names_given[0]!r} is a name, but the file is read without a header; "
            "pass a 0-based column index, or --header."
        )
    else:
        layout = _headerless_layout(path, fmt, first_line, len(first), given)
    _check_indexes(path, layout, len(first))
    if labels and layout.label is None:
        where = (
            f"the header is {list(layout.header)[:10]}"
            if layout.header
            else f"its first row has {len(first)} column(s)"
        )
        raise DataError(
            f"{path}:{first_line}: cannot tell which column holds the label; {where}; pass --label-column "
            "(a header name, or a 0-based index for a file without a header)."
        )
    return layout


def _header_layout(path: Path, fmt: str, line: int, names: list[str], options: ReadOptions, lines: _Lines) -> Layout:
    text = _find_column(path, names, options.text_column, TEXT_COLUMNS, "text")
    if text is None:
        raise DataError(
            f"{path}:{line}: cannot tell which column holds the text; the header is {names[:10]}; pass --text-column."
        )
    label = _find_column(path, names, options.label_column, LABEL_COLUMNS, "label")
    ident = _find_column(path, names, options.id_column, (), "id")
    return Layout(fmt, text, label, ident, tuple(names), len(names), lines.pos, lines.line + 1)


def _headerless_layout(path: Path, fmt: str, line: int, width: int, given: dict) -> Layout:
    index = {what: int(value) if value is not None else None for what, value in given.items()}
    if fmt == "text-csv":
        return Layout(fmt, index["text"] or 0, index["label"], index["id"], None, None if index["text"] else 1)
    if index["text"] is not None:
        return Layout(fmt, index["text"], index["label"], index["id"])
    if width <= 1:
        only_text = index["label"] is None and index["id"] is None
        return Layout(fmt, 0, index["label"], index["id"], None, 1 if only_text else None)
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
        if problem is None and any(_undecodable(field) for field in fields):
            problem = _encoding_problem(encoding)
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
