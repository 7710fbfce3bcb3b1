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

Every problem is reported as ``FILE:LINE: what was wrong; what was expected``.
With ``on_bad_rows="skip"`` bad rows are left out and listed instead.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ..errors import DataError
from .reader import SUFFIXES, Layout, ReadOptions, Record, records, resolve_layout

__all__ = ["Examples", "LabelSet", "ReadOptions", "TrainingData", "load_training_data", "read_examples", "read_texts"]

_MAX_LISTED = 10


@dataclass
class Examples:
    """Labelled texts read from one file, with the line each came from."""

    path: Path
    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    jumpstart: bool = False

    def __len__(self) -> int:
        return len(self.texts)

    def skipped_summary(self) -> str | None:
        """One line naming how many rows were skipped and which, or None."""
        if not self.skipped:
            return None
        shown = "; ".join(f"line {line}: {why}" for line, why in self.skipped[:_MAX_LISTED])
        more = f"; and {len(self.skipped) - _MAX_LISTED} more" if len(self.skipped) > _MAX_LISTED else ""
        return f"{self.path}: skipped {len(self.skipped)} bad row(s) ({shown}{more})"


@dataclass(frozen=True)
class LabelSet:
    """The classes of a task: id -> name, and whether the names are integer ids."""

    names: tuple[str, ...]
    integer: bool

    @classmethod
    def from_examples(cls, examples: Examples) -> LabelSet:
        counts = Counter(examples.labels)
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
                    for label, line in zip(examples.labels, examples.lines)
                    if not 0 <= int(label) < len(ids)
                )
                raise DataError(
                    f"{examples.path}:{line}: label {label} is outside 0..{len(ids) - 1}; integer labels must be "
                    f"0..K-1 with none missing, but the file has {got}{gap}; renumber the labels or use label names."
                )
            return cls(tuple(str(i) for i in range(len(ids))), integer=True)
        return cls(tuple(sorted(counts)), integer=False)

    @classmethod
    def from_config(cls, id2label: dict[int, str], integer: bool) -> LabelSet:
        return cls(tuple(id2label[i] for i in range(len(id2label))), integer)

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

    def encode(self, examples: Examples, on_bad_rows: str = "error", hint: str = "") -> list[int]:
        """Label ids of ``examples``; unknown labels are errors (or skipped, in place).

        ``hint`` is appended to the error, to say how to proceed in the caller's context.
        """
        ids: list[int] = []
        keep: list[int] = []
        for row, (label, line) in enumerate(zip(examples.labels, examples.lines)):
            index = self.id_of(label)
            if index is not None:
                ids.append(index)
                keep.append(row)
                continue
            why = f"label {label!r} is not one of the model's labels ({_preview(self.names)})"
            if on_bad_rows != "skip":
                raise DataError(f"{examples.path}:{line}: {why}.{hint}")
            examples.skipped.append((line, why))
        if not ids:
            raise DataError(
                f"{examples.path}: no usable rows; none has one of the labels {_preview(self.names)}.{hint}"
            )
        if len(keep) != len(examples):
            examples.texts = [examples.texts[i] for i in keep]
            examples.labels = [examples.labels[i] for i in keep]
            examples.lines = [examples.lines[i] for i in keep]
        return ids


@dataclass
class TrainingData:
    """Encoded train and validation sets and the label set they share."""

    labels: LabelSet
    train_texts: list[str]
    train_labels: list[int]
    val_texts: list[str]
    val_labels: list[int]
    summary: dict


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
    train = read_examples(data, options)
    label_set = labels or LabelSet.from_examples(train)
    train_ids = label_set.encode(train, options.on_bad_rows, unknown_label_hint)
    notes = [s for s in [train.skipped_summary()] if s]
    if validation is not None:
        val = read_examples(validation, options)
        val_ids = label_set.encode(val, options.on_bad_rows, unknown_label_hint)
        notes += [s for s in [val.skipped_summary()] if s]
        train_texts, train_labels, val_texts, val_labels = train.texts, train_ids, val.texts, val_ids
        val_source = str(val.path)
    else:
        train_idx, val_idx = stratified_split(train_ids, validation_split_ratio, seed)
        train_texts = [train.texts[i] for i in train_idx]
        train_labels = [train_ids[i] for i in train_idx]
        val_texts = [train.texts[i] for i in val_idx]
        val_labels = [train_ids[i] for i in val_idx]
        val_source = f"{validation_split_ratio:g} stratified split of {train.path} (seed {seed})"
    summary = {
        "train_source": str(train.path),
        "validation_source": val_source if val_texts else None,
        "train_rows": len(train_texts),
        "validation_rows": len(val_texts),
        "skipped_rows": len(train.skipped) + (len(val.skipped) if validation is not None else 0),
        "class_counts": {label_set.names[k]: v for k, v in sorted(Counter(train_labels).items())},
        "notes": notes,
    }
    return TrainingData(label_set, train_texts, train_labels, val_texts, val_labels, summary)


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


# -- the labelled and the texts views of the records ---------------------------

_JUMPSTART = Layout("csv", text=1, label=0, columns=2)


def read_examples(path: str | Path, options: ReadOptions = ReadOptions()) -> Examples:
    """Read labelled texts from any supported file or JumpStart directory."""
    path, jumpstart = _labelled_file(Path(path), options)
    layout = _JUMPSTART if jumpstart else resolve_layout(path, options, labels=True)
    examples = Examples(path, jumpstart=jumpstart)
    for record in records(path, layout, options.encoding):
        problem = record.problem or _label_problem(record, layout, jumpstart)
        if problem is not None:
            if options.on_bad_rows != "skip":
                raise DataError(f"{path}:{record.line}: {problem}.")
            examples.skipped.append((record.line, problem))
            continue
        examples.texts.append(record.text)
        examples.labels.append(record.label.strip())
        examples.lines.append(record.line)
    if examples.skipped and not examples.texts:
        line, why = examples.skipped[0]
        raise DataError(f"{path}: all {len(examples.skipped)} rows are bad; the first, line {line}: {why}.")
    if not examples.texts and layout.header:
        raise DataError(
            f"{path}:{layout.line - 1}: a header but no data rows; expected labelled rows after the header."
        )
    if not examples.texts:
        raise DataError(f"{path}: file is empty; expected labelled rows.")
    return examples


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


def _label_problem(record: Record, layout: Layout, jumpstart: bool) -> str | None:
    if record.label is None and layout.format == "jsonl" and layout.label not in record.source:
        return f"missing key {layout.label!r}"
    if record.label is None or not record.label.strip():
        return "empty label; expected a class label"
    if jumpstart and not _is_int(record.label):
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
