"""Read, validate and split labelled text data.

Every file is read by :mod:`textclf.data.reader` (formats, header and column rules, encodings,
``FILE:LINE`` problems); this module views its records as labelled examples
(:func:`read_examples`) or as texts (:func:`read_texts`), builds the label set and splits off
a validation set. Supported inputs (``--data`` / ``--validation``):

* a directory holding ``data.csv``: SageMaker JumpStart's format, no header,
  column 1 an integer label 0..K-1, column 2 the text;
* a ``.csv`` or ``.tsv`` file, with a header (columns found by name) or without
  one (``label,text``, or the columns given as 0-based indexes);
* a ``.jsonl`` (``.jsonlines``, ``.ndjson``) file, one JSON object per line;
* a ``.label`` file of ``LABEL text`` lines (TREC; fastText's ``__label__`` prefix is
  dropped). A ``.txt`` file is one text per line for every command: texts, not examples.

A multi-label file (``ReadOptions.task``, or found: a label holding ``label_separator`` or a
JSON list) gives each row any number of labels (``joy,surprise``; GoEmotions' ids ``8,20``,
named by ``--label-names FILE``); a row with none means "none of them". Its validation split
is iterative stratification (:func:`iterative_split`), keeping each label's share.

Every problem is reported as ``FILE:LINE: what was wrong; what was expected``.
With ``on_bad_rows="skip"`` bad rows are left out and listed instead.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import DataError
from .reader import SUFFIXES, TASKS, Layout, ReadOptions, Record, records, resolve_layout

__all__ = [
    "Examples",
    "LabelSet",
    "ReadOptions",
    "TrainingData",
    "iterative_split",
    "load_training_data",
    "read_examples",
    "read_label_names",
    "read_texts",
    "split_labels",
]

_MAX_LISTED = 10
RARE_LABEL_ROWS = 10  # a multi-label label on fewer training rows is reported as too rare to learn


@dataclass
class Examples:
    """Labelled texts read from one file, with the line each came from.

    ``labels`` holds a label a row, or for a multi-label file a tuple of them (empty: none).
    """

    path: Path
    texts: list[str] = field(default_factory=list)
    labels: list = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    jumpstart: bool = False
    multi_label: bool = False
    label_names: tuple[str, ...] | None = None  # a --label-names file's: the data's integer ids were mapped to them
    found_multi_label: str | None = None  # why the file was read as multi-label when no task was given

    def __len__(self) -> int:
        return len(self.texts)

    def label_rows(self) -> Iterator[tuple[int, tuple[str, ...]]]:
        """(line, the row's labels) for every row, whatever the task."""
        for label, line in zip(self.labels, self.lines):
            yield line, (label if self.multi_label else (label,))

    def keep(self, rows: Sequence[int]) -> None:
        """Keep only ``rows`` (indexes), in order."""
        if len(rows) != len(self):
            self.texts = [self.texts[i] for i in rows]
            self.labels = [self.labels[i] for i in rows]
            self.lines = [self.lines[i] for i in rows]

    def skipped_summary(self) -> str | None:
        """One line naming how many rows were skipped and which, or None."""
        if not self.skipped:
            return None
        shown = "; ".join(f"line {line}: {why}" for line, why in self.skipped[:_MAX_LISTED])
        more = f"; and {len(self.skipped) - _MAX_LISTED} more" if len(self.skipped) > _MAX_LISTED else ""
        return f"{self.path}: skipped {len(self.skipped)} bad row(s) ({shown}{more})"


@dataclass(frozen=True)
class LabelSet:
    """The classes of a task: id -> name, whether the names are integer ids, and whether a text may have
    several (``multi_label``: one sigmoid a label instead of a softmax over them)."""

    names: tuple[str, ...]
    integer: bool
    multi_label: bool = False

    @classmethod
    def from_examples(cls, examples: Examples, names: Sequence[str] | None = None) -> LabelSet:
        """The labels of ``examples``: ``names`` (a ``--label-names`` file's, in its order), else the
        sorted names found, or 0..K-1 when every label is an integer."""
        multi = examples.multi_label
        if names is not None:
            return cls(tuple(names), integer=False, multi_label=multi)
        counts = Counter(label for _, row in examples.label_rows() for label in row)
        if len(counts) < 2 and multi:
            found = f"only label {next(iter(counts))!r}" if counts else "no label at all"
            raise DataError(f"{examples.path}: the rows have {found}; a multi-label classifier needs at least two.")
        if len(counts) < 2:
            only = next(iter(counts), None)
            raise DataError(f"{examples.path}: every row has label {only!r}; a classifier needs at least two classes.")
        if all(_is_int(label) for label in counts):
            ids = sorted({int(label) for label in counts})
            missing = sorted(set(range(len(ids))) - set(ids))
            if (ids[0], ids[-1]) != (0, len(ids) - 1):  # K distinct ints span 0..K-1 exactly then
                got = ", ".join(map(str, ids[:20]))
                gap = f" ({', '.join(map(str, missing[:10]))} missing)" if missing else ""
                line, label = next(
                    (line, label)
                    for line, row in examples.label_rows()
                    for label in row
                    if not 0 <= int(label) < len(ids)
                )
                names_hint = ", or name them with --label-names FILE" if multi else " or use label names"
                raise DataError(
                    f"{examples.path}:{line}: label {label} is outside 0..{len(ids) - 1}; integer labels must be "
                    f"0..K-1 with none missing, but the file has {got}{gap}; renumber the labels{names_hint}."
                )
            return cls(tuple(str(i) for i in range(len(ids))), integer=True, multi_label=multi)
        return cls(tuple(sorted(counts)), integer=False, multi_label=multi)

    @classmethod
    def from_config(cls, id2label: dict[int, str], integer: bool, multi_label: bool = False) -> LabelSet:
        return cls(tuple(id2label[i] for i in range(len(id2label))), integer, multi_label)

    @property
    def task(self) -> str:
        """``single-label`` or ``multi-label``."""
        return TASKS[self.multi_label]

    def targets(self, encoded: Sequence) -> np.ndarray:
        """What the loss compares with: label ids (int64), or for multi-label a 0/1 float32 matrix, a column a label."""
        if not self.multi_label:
            return np.asarray(encoded, dtype=np.int64)
        out = np.zeros((len(encoded), len(self)), dtype=np.float32)
        for row, ids in enumerate(encoded):
            out[row, list(ids)] = 1.0
        return out

    def __len__(self) -> int:
        return len(self.names)

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    def value(self, index: int) -> int | str:
        """The label as users see it: an int for integer labels, else the name."""
        return index if self.integer else self.names[index]

    def id_of(self, label: str) -> int | None:
        """The id of ``label`` (``"01"`` is 1 for integer labels), or None if it is not one of the names."""
        if self.integer and _is_int(label):
            label = str(int(label))
        return self._lookup.get(label)

    @cached_property
    def _lookup(self) -> dict[str, int]:
        lookup = self.label2id
        if self.integer:
            lookup.update({str(int(name)): i for i, name in enumerate(self.names) if _is_int(name)})
        return lookup

    def encode(self, examples: Examples, on_bad_rows: str = "error", hint: str = "") -> list:
        """Label ids of ``examples`` (multi-label: a sorted tuple of ids a row); unknown labels are errors
        (or skipped, in place).

        ``hint`` is appended to the error, to say how to proceed in the caller's context.
        """
        if examples.multi_label != self.multi_label:
            raise DataError(
                f"{examples.path}: the data is {TASKS[examples.multi_label]} but the model is {self.task}; "
                f"pass --task {self.task} to read it as the model's task."
            )
        ids: list = []
        keep: list[int] = []
        for row, (line, labels) in enumerate(examples.label_rows()):
            found = [self.id_of(label) for label in labels]
            if None not in found:
                ids.append(tuple(sorted(found)) if self.multi_label else found[0])
                keep.append(row)
                continue
            label = labels[found.index(None)]
            why = f"label {label!r} is not one of the model's labels ({_preview(self.names)})"
            if on_bad_rows != "skip":
                raise DataError(f"{examples.path}:{line}: {why}.{hint}")
            examples.skipped.append((line, why))
        if not ids:
            raise DataError(
                f"{examples.path}: no usable rows; none has one of the labels {_preview(self.names)}.{hint}"
            )
        examples.keep(keep)
        return ids


@dataclass
class TrainingData:
    """Encoded train and validation sets and the label set they share (labels: ids, or tuples of ids for
    multi-label)."""

    labels: LabelSet
    train_texts: list[str]
    train_labels: list
    val_texts: list[str]
    val_labels: list
    summary: dict
    train_lines: list[int] = field(default_factory=list)  # each training row's line in its file
    val_lines: list[int] = field(default_factory=list)


def load_training_data(
    data: str | Path,
    validation: str | Path | None = None,
    options: ReadOptions = ReadOptions(),
    validation_split_ratio: float = 0.2,
    seed: int = 0,
    labels: LabelSet | None = None,
    unknown_label_hint: str = "",
) -> TrainingData:
    """Read training data and a validation set (a file, or a stratified split).

    ``labels`` fixes the label set (e.g. that of a model being fine-tuned again);
    by default it is derived from the training file. ``unknown_label_hint`` ends
    the error for a label outside it.
    """
    task = labels.multi_label if labels is not None else None
    train = read_examples(data, options, task)
    label_set = labels or LabelSet.from_examples(train, train.label_names)
    train_ids = label_set.encode(train, options.on_bad_rows, unknown_label_hint)
    notes = [s for s in [train.found_multi_label, train.skipped_summary()] if s]
    if validation is not None:
        val = read_examples(validation, options, train.multi_label)
        if label_set.multi_label and labels is None:  # a model's own head already knows its labels
            _check_seen_in_training(val, label_set, train_ids, options.on_bad_rows)
        val_ids = label_set.encode(val, options.on_bad_rows, unknown_label_hint)
        notes += [s for s in [val.skipped_summary()] if s]
        train_texts, train_labels, val_texts, val_labels = train.texts, train_ids, val.texts, val_ids
        train_lines, val_lines = train.lines, val.lines
        val_source = str(val.path)
    else:
        split = iterative_split if label_set.multi_label else stratified_split
        train_idx, val_idx = split(train_ids, validation_split_ratio, seed)
        train_texts = [train.texts[i] for i in train_idx]
        train_labels = [train_ids[i] for i in train_idx]
        val_texts = [train.texts[i] for i in val_idx]
        val_labels = [train_ids[i] for i in val_idx]
        train_lines = [train.lines[i] for i in train_idx]
        val_lines = [train.lines[i] for i in val_idx]
        how = "iteratively stratified" if label_set.multi_label else "stratified"
        val_source = f"{validation_split_ratio:g} {how} split of {train.path} (seed {seed})"
    summary = {
        "train_source": str(train.path),
        "validation_source": val_source if val_texts else None,
        "train_rows": len(train_texts),
        "validation_rows": len(val_texts),
        "skipped_rows": len(train.skipped) + (len(val.skipped) if validation is not None else 0),
        "class_counts": _label_counts(label_set, train_labels),
        "notes": notes,
    }
    if label_set.multi_label:
        summary.update(_multi_label_summary(label_set, train_labels, summary["class_counts"]))
        notes += summary.pop("label_notes")
    return TrainingData(label_set, train_texts, train_labels, val_texts, val_labels, summary, train_lines, val_lines)


def _label_counts(labels: LabelSet, encoded: Sequence) -> dict[str, int]:
    """Training rows a label (multi-label: rows that have it), in label order."""
    rows = (ids for row in encoded for ids in row) if labels.multi_label else iter(encoded)
    counts = Counter(rows)
    if labels.multi_label:  # every label, those with no row too
        return {name: counts.get(i, 0) for i, name in enumerate(labels.names)}
    return {labels.names[k]: v for k, v in sorted(counts.items())}


def _multi_label_summary(labels: LabelSet, encoded: Sequence, counts: dict[str, int]) -> dict:
    """A multi-label training set's shape: labels a row, rows with none, labels too rare to learn."""
    rows = max(len(encoded), 1)
    empty = sum(1 for row in encoded if not row)
    rare = [name for name, count in counts.items() if count < RARE_LABEL_ROWS]
    cardinality = sum(len(row) for row in encoded) / rows
    notes = [f"multi-label: {len(labels)} labels, {cardinality:.2f} a training row on average"]
    if empty:
        notes.append(f"{empty} training row(s) have no label: they teach the model 'none of these'")
    if rare:
        notes.append(
            f"{len(rare)} label(s) have fewer than {RARE_LABEL_ROWS} training rows, too few to learn well: "
            + ", ".join(f"{name} ({counts[name]})" for name in rare[:_MAX_LISTED])
            + (", ..." if len(rare) > _MAX_LISTED else "")
        )
    return {
        "task": "multi-label",
        "label_cardinality": round(cardinality, 4),
        "rows_without_labels": empty,
        "rare_labels": rare,
        "label_notes": notes,
    }


def _check_seen_in_training(val: Examples, labels: LabelSet, train_ids: Sequence, on_bad_rows: str) -> None:
    """A validation label that no training row has (or one outside ``labels``, the training data's) cannot be
    learned: an error at its line (or the row skipped)."""
    seen = {i for row in train_ids for i in row}
    keep = []
    for row, (line, names) in enumerate(val.label_rows()):
        ids = [labels.id_of(name) for name in names]
        unseen = [name for name, i in zip(names, ids) if i is None or i not in seen]
        if not unseen:
            keep.append(row)
            continue
        why = f"label {unseen[0]!r} appears in the validation data but on no training row; it cannot be learned"
        if on_bad_rows != "skip":
            raise DataError(f"{val.path}:{line}: {why}; add training rows with it or drop it from validation.")
        val.skipped.append((line, why))
    val.keep(keep)


def stratified_split(labels: Sequence[int], ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded split keeping each class's share; classes with one row stay in train."""
    if ratio <= 0:
        return list(range(len(labels))), []
    by_class: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[label].append(i)
    rng = random.Random(seed)
    train, val = [], []
    for label in sorted(by_class):
        rows = by_class[label]
        rng.shuffle(rows)
        n_val = min(len(rows) - 1, max(1, round(len(rows) * ratio))) if len(rows) > 1 else 0
        val += rows[:n_val]
        train += rows[n_val:]
    return sorted(train), sorted(val)


def iterative_split(labels: Sequence[Sequence[int]], ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded multi-label split keeping each label's share: iterative stratification (Sechidis, Tsoumakas and
    Vlahavas, ECML PKDD 2011).

    The label with the fewest rows left goes first: each of its rows joins the part that still wants most rows of
    that label (then most rows at all), and every label of the row counts against that part. A label whose rows
    all went to validation gets one back in train (it could not be learned otherwise). Rows without a label fill
    the parts up to their sizes last.
    """
    n = len(labels)
    if ratio <= 0 or n == 0:
        return list(range(n)), []
    rng = random.Random(seed)
    want = [n - round(n * ratio), round(n * ratio)]  # rows each part (train, validation) still wants
    rows_of: dict[int, list[int]] = defaultdict(list)
    for i, row in enumerate(labels):
        for label in row:
            rows_of[label].append(i)
    label_want = {label: [len(rows) * (1 - ratio), len(rows) * ratio] for label, rows in rows_of.items()}
    left = {label: len(rows) for label, rows in rows_of.items()}
    part = [-1] * n
    while left:
        label = min(left, key=lambda k: (left[k], k))
        rows = [i for i in rows_of[label] if part[i] < 0]
        rng.shuffle(rows)
        for i in rows:
            wanted = label_want[label]
            chosen = max((0, 1), key=lambda p: (wanted[p], want[p], rng.random()))
            part[i], want[chosen] = chosen, want[chosen] - 1
            for other in labels[i]:
                label_want[other][chosen] -= 1
                left[other] -= 1
        left = {k: v for k, v in left.items() if v > 0}
    for label in sorted(rows_of):  # a label must keep a training row to be learned, as stratified_split keeps one
        if all(part[i] == 1 for i in rows_of[label]):
            part[min(rows_of[label], key=lambda i: len(labels[i]))] = 0
    unlabelled = [i for i in range(n) if part[i] < 0]
    rng.shuffle(unlabelled)
    placed = [part.count(0), part.count(1)]
    want = [n - round(n * ratio) - placed[0], round(n * ratio) - placed[1]]
    for i in unlabelled:
        chosen = 0 if want[0] >= want[1] else 1
        part[i], want[chosen] = chosen, want[chosen] - 1
    return [i for i in range(n) if part[i] == 0], [i for i in range(n) if part[i] == 1]


def read_label_names(path: str | Path) -> list[str]:
    """The names of ``--label-names FILE``: one a line (0-based: line 1 is id 0), no blank or repeated name."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the label names ({exc.strerror}).") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 ({exc.reason}); expected one label name a line.") from exc
    names: list[str] = []
    for line, raw in enumerate(lines, 1):
        name = raw.strip()
        if not name:
            raise DataError(f"{path}:{line}: empty label name; expected one name a line (line 1 is label id 0).")
        if name in names:
            first = names.index(name) + 1
            raise DataError(f"{path}:{line}: label name {name!r} repeats line {first}; expected unique names.")
        names.append(name)
    if len(names) < 2:
        raise DataError(f"{path}: {len(names)} label name(s); a classifier needs at least two.")
    return names


# -- the labelled and the texts views of the records ---------------------------

_JUMPSTART = Layout("csv", text=1, label=0, columns=2)


def read_examples(path: str | Path, options: ReadOptions = ReadOptions(), multi_label: bool | None = None) -> Examples:
    """Read labelled texts from any supported file or JumpStart directory.

    ``multi_label`` fixes the task (a model's); None takes ``options.task``, and when that is None too
    a file is multi-label if a label holds the separator or is a JSON list. A multi-label row's labels
    are split, stripped and deduplicated; with ``options.label_names`` an integer label is an id into them.
    """
    path, jumpstart = _labelled_file(Path(path), options)
    layout = _JUMPSTART if jumpstart else resolve_layout(path, options, labels=True)
    task = multi_label if multi_label is not None else _TASK_OF[options.task]
    if task is None and jumpstart:
        task = False
    names = tuple(read_label_names(options.label_names)) if options.label_names else None
    examples = Examples(path, jumpstart=jumpstart, label_names=names)
    raw: list = []
    for record in records(path, layout, options.encoding):
        problem = record.problem or _label_problem(record, layout, jumpstart, empty_allowed=task is not False)
        if problem is None:
            examples.texts.append(record.text)
            raw.append(record.label if record.label is not None else "")
            examples.lines.append(record.line)
        elif options.on_bad_rows != "skip":
            raise DataError(f"{path}:{record.line}: {problem}.")
        else:
            examples.skipped.append((record.line, problem))
    separator = options.separator
    if task is None:
        first = next((i for i, label in enumerate(raw) if isinstance(label, list) or separator in label), None)
        task = first is not None
        if task:
            examples.found_multi_label = (
                f"{path}:{examples.lines[first]}: read as multi-label: this row's label {raw[first]!r} holds "
                f"{'a list' if isinstance(raw[first], list) else repr(separator)} (pass --task single-label if "
                "labels may contain it)"
            )
    examples.multi_label = task
    examples.labels = [split_labels(label, separator) if task else _single(label) for label in raw]
    _drop_bad_labels(examples, raw, options.on_bad_rows)
    if names is not None:
        _name_ids(examples, names, options.label_names, options.on_bad_rows)
    if examples.skipped and not examples.texts:
        line, why = min(examples.skipped)
        raise DataError(f"{path}: all {len(examples.skipped)} rows are bad; the first, line {line}: {why}.")
    if not examples.texts and layout.header:
        raise DataError(
            f"{path}:{layout.line - 1}: a header but no data rows; expected labelled rows after the header."
        )
    if not examples.texts:
        raise DataError(f"{path}: file is empty; expected labelled rows.")
    return examples


_TASK_OF = {None: None, "single-label": False, "multi-label": True}
_LIST_PROBLEM = "a list of labels, but the data is read as single-label; pass --task multi-label"
_EMPTY_PROBLEM = "empty label; expected a class label (a row without labels needs --task multi-label)"


def split_labels(label: str | list[str], separator: str = ",") -> tuple[str, ...]:
    """A multi-label row's labels: split at ``separator`` (a JSON list is split already), stripped, each once."""
    parts = label if isinstance(label, list) else label.split(separator)
    return tuple(dict.fromkeys(part.strip() for part in parts if part.strip()))


def _single(label: str | list[str]) -> str | None:
    """A single-label row's label, or None when it has a list or no label (a problem, found after reading)."""
    return None if isinstance(label, list) or not label.strip() else label.strip()


def _drop_bad_labels(examples: Examples, raw: list, on_bad_rows: str) -> None:
    """Single-label rows whose label was a list or empty (a multi-label file could hold both) are bad rows."""
    if examples.multi_label:
        return
    bad = [i for i, label in enumerate(examples.labels) if label is None]
    if not bad:
        return
    problems = [(examples.lines[i], _LIST_PROBLEM if isinstance(raw[i], list) else _EMPTY_PROBLEM) for i in bad]
    if on_bad_rows != "skip":
        line, why = problems[0]
        raise DataError(f"{examples.path}:{line}: {why}.")
    examples.skipped = sorted(examples.skipped + problems)
    dropped = set(bad)
    examples.keep([i for i in range(len(examples)) if i not in dropped])


def _name_ids(examples: Examples, names: tuple[str, ...], source: str, on_bad_rows: str) -> None:
    """Map integer labels to ``names`` (line ``id + 1`` of the ``--label-names`` file); a name stays a name."""
    keep = []
    for row, (line, labels) in enumerate(examples.label_rows()):
        named, why = [], None
        for label in labels:
            if label in names:
                named.append(label)
            elif _is_int(label) and 0 <= int(label) < len(names):
                named.append(names[int(label)])
            else:
                kind = "id" if _is_int(label) else "name"
                why = f"label {kind} {label!r} is not in {source} (ids 0..{len(names) - 1}: {_preview(names)})"
                break
        if why is None:
            examples.labels[row] = tuple(named) if examples.multi_label else named[0]
            keep.append(row)
        elif on_bad_rows != "skip":
            raise DataError(f"{examples.path}:{line}: {why}.")
        else:
            examples.skipped.append((line, why))
    examples.skipped.sort()
    examples.keep(keep)


def read_texts(path: str | Path, encoding: str = "utf-8") -> list[str]:
    """The texts of ``path`` (for ``predict --input``), read as ``batch`` reads it.

    One text per non-blank line for ``.txt`` (and unknown suffixes); the text column or key of a
    ``.csv``, ``.tsv`` or ``.jsonl`` file; the text after the label of a ``.label`` line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file.")
    layout = resolve_layout(path, ReadOptions(encoding=encoding))
    texts = []
    for record in records(path, layout, encoding):
        if record.problem is not None:
            raise DataError(f"{path}:{record.line}: {record.problem}.")
        texts.append(record.text)
    if not texts:
        raise DataError(f"{path}: file is empty; expected one text per line.")
    return texts


def _labelled_file(path: Path, options: ReadOptions) -> tuple[Path, bool]:
    """The file to read for ``path`` (a JumpStart directory's data.csv), and whether it is JumpStart's."""
    if path.is_dir():
        candidate = path / "data.csv"
        if not candidate.is_file():
            raise DataError(
                f"{path}: directory has no data.csv; a JumpStart training directory holds data.csv "
                "(no header, integer label in column 1, text in column 2)."
            )
        return candidate, True
    if not path.exists():
        raise DataError(f"{path}: no such file or directory.")
    suffix = path.suffix.lower()
    if options.format is None and suffix not in SUFFIXES:
        raise DataError(
            f"{path}: unsupported file type {suffix or '(none)'!r}; "
            f"expected one of {', '.join(SUFFIXES)} or a directory with data.csv."
        )
    return path, False


def _label_problem(record: Record, layout: Layout, jumpstart: bool, empty_allowed: bool) -> str | None:
    """What is wrong with a record's label as it is read; ``empty_allowed``: the task may be multi-label, where
    an empty label is a row with none (single-label's checks of empty and list labels come after reading)."""
    if record.label is None and layout.format == "jsonl" and layout.label not in record.source:
        return f"missing key {layout.label!r}"
    if isinstance(record.label, list):
        return None if empty_allowed else _LIST_PROBLEM
    if not empty_allowed and (record.label is None or not record.label.strip()):
        return "empty label; expected a class label"
    if jumpstart and not _is_int(record.label or ""):
        return (
            f"label {record.label.strip()!r} is not an integer; "
            "data.csv (JumpStart format) needs labels 0..K-1 in column 1"
        )
    return None


def _is_int(value: str) -> bool:
    return bool(re.fullmatch(r"\s*[+-]?\d+\s*", value))


def _preview(names: Sequence[str]) -> str:
    shown = ", ".join(names[:8])
    return shown + (", ..." if len(names) > 8 else "")
