"""Gathering a report's inputs: :func:`report_for` (``textclf report``: a model folder, and data to run it on)
and :func:`training_report` (the end of ``textclf train``: the values training already holds)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..artifact import REPORT_FILE, ModelFolder
from ..data import LabelSet, ReadOptions, iterative_split, read_examples, stratified_split
from ..errors import DataError
from ._inputs import ReportInputs, Rows, read_dynamics, read_history, read_label_errors, token_lengths
from ._page import write_report

__all__ = ["report_for", "training_report"]

_STAGING = re.compile(r"^\.(.+)\.tmp-[0-9a-f]{8}$")  # artifact.staging's temporary name for a folder


def report_for(
    model_dir: str | Path,
    data: str | Path | None = None,
    label_errors: str | Path | None = None,
    read_options: ReadOptions | None = None,
    load_options: dict | None = None,
) -> ReportInputs:
    """The inputs of the report on the model folder ``model_dir``: what its ``textclf.json``, ``metrics.jsonl``
    and ``training_dynamics.npz`` hold; the training file ``textclf.json`` names (and its validation file, or
    the validation split rebuilt), if they still exist, for the data summary; with ``data``, the model run on
    that labelled file (loaded by :meth:`Classifier.load <textclf.inference.Classifier.load>` with
    ``load_options``: ``backend``, ``batch_size``, ``dtype``, ``threshold``, ``at_least_one``, once the data
    has been read); ``label_errors``: an ``errors.csv`` of ``textclf find-label-errors``.

    >>> write_report("report.html", report_for("runs/reviews", "test.csv"))  # doctest: +SKIP
    """
    folder = ModelFolder.read(model_dir)
    options = read_options or ReadOptions()
    errors = read_label_errors(label_errors) if label_errors is not None else None
    inputs = ReportInputs(
        title=folder.path.resolve().name,
        labels=folder.labels,
        metadata=folder.metadata or {},
        history=read_history(folder.path),
        label_errors=errors,
        dynamics=read_dynamics(folder.path),
    )
    evaluated = _read_rows(data, None, folder.labels, options) if data is not None else None
    train, validation = _training_rows(inputs, options, skip=Path(evaluated.source) if evaluated else None)
    if train is not None:
        inputs.train = train
        inputs.lengths, inputs.length_unit = token_lengths(folder.path, train.texts)
    inputs.others = [rows for rows in (validation, evaluated) if rows is not None]
    if evaluated is not None:
        from ..inference import Classifier

        _run(inputs, evaluated, Classifier.load(folder, **(load_options or {})))
    return inputs


def _run(inputs: ReportInputs, rows: Rows, classifier) -> None:
    """The model's outputs on ``rows``: its (calibrated) logits, and the logits before calibration."""
    inputs.evaluated = rows
    inputs.logits = classifier.logits(rows.texts)
    inputs.raw_logits = _uncalibrated(inputs.logits, inputs.metadata)
    if inputs.labels.multi_label:
        inputs.thresholds = [float(t) for t in classifier.thresholds]
        inputs.at_least_one = classifier.at_least_one


def _temperature(metadata: dict):
    """The temperature ``textclf.json`` records (multi-label: one a label), or None (not calibrated)."""
    record = metadata.get("calibration")
    if not isinstance(record, dict) or record.get("temperature") is None:
        return None
    return np.asarray(record.get("temperatures") or record["temperature"], dtype=np.float64)


def _uncalibrated(logits: np.ndarray, metadata: dict) -> np.ndarray | None:
    """The logits before calibration: training folded 1/T into the output layer, so times T."""
    temperature = _temperature(metadata)
    return None if temperature is None else logits.astype(np.float64) * temperature


def _read_rows(path: str | Path, name: str | None, labels: LabelSet, options: ReadOptions) -> Rows:
    """A labelled file as the model's label ids (a row whose label the model lacks: an error, or skipped), named
    ``name`` (default: the file's name)."""
    examples = read_examples(path, options, multi_label=labels.multi_label)
    ids = labels.encode(examples, options.on_bad_rows)
    return Rows(name or examples.path.name, examples.texts, ids, examples.lines, str(examples.path))


def _training_rows(inputs: ReportInputs, options: ReadOptions, skip: Path | None) -> tuple[Rows | None, Rows | None]:
    """The training rows and the validation rows (a file, or the training file's split rebuilt), as far as
    ``textclf.json`` names them and they can still be read; what is missing becomes a note."""
    data = inputs.metadata.get("data") or {}
    source, val_source = data.get("train_source"), data.get("validation_source")
    if not source:
        inputs.notes.append("textclf.json names no training file: the data summary needs the training texts.")
        return None, None
    tolerant = replace(options, on_bad_rows="skip")
    try:
        train = _read_rows(source, "training", inputs.labels, tolerant)
    except DataError as exc:
        inputs.notes.append(f"The training texts are not available for the data summary: {exc}")
        return None, None
    if not val_source:
        return train, None
    if Path(val_source).exists():
        if skip is not None and Path(val_source).resolve() == skip.resolve():
            return train, None  # the evaluated data is the validation file
        try:
            return train, _read_rows(val_source, "validation", inputs.labels, tolerant)
        except DataError as exc:
            inputs.notes.append(f"The validation texts are not available: {exc}")
            return train, None
    if "split of" in val_source:
        return _split(train, inputs)
    inputs.notes.append(f"The validation file {val_source} no longer exists.")
    return train, None


def _split(rows: Rows, inputs: ReportInputs) -> tuple[Rows, Rows]:
    """The training file's training and validation parts, split again as training split it."""
    hp = inputs.metadata.get("hyperparameters") or {}
    split = iterative_split if inputs.labels.multi_label else stratified_split
    train, val = split(rows.labels, hp.get("validation_split_ratio", 0.2), hp.get("seed", 0))
    inputs.notes.append("The validation rows are the training file's split, rebuilt with the recorded ratio and seed.")
    return _subset(rows, train, "training"), _subset(rows, val, "validation")


def _subset(rows: Rows, indexes: list[int], name: str) -> Rows:
    lines = rows.lines or list(range(1, len(rows) + 1))
    texts, labels = [rows.texts[i] for i in indexes], [rows.labels[i] for i in indexes]
    return Rows(name, texts, labels, [lines[i] for i in indexes], rows.source)


def training_report(
    folder: Path,
    metadata: dict,
    history: list[dict],
    labels: LabelSet,
    train: Rows,
    validation: Rows | None = None,
    validation_logits: np.ndarray | None = None,
    title: str | None = None,
) -> Path:
    """Write ``report.html`` into the model folder being written, from what training holds: its
    ``textclf.json`` content (``metadata``) and epoch records (``history``), the training rows and the
    validation rows with the final model's logits on them *before* calibration (calibrated here with the
    temperature ``metadata["calibration"]`` records). The tokenizer must be saved in ``folder`` already
    (for token lengths). ``title``: the model's name (default: the folder's, without the staging suffix).
    """
    folder = Path(folder)
    inputs = ReportInputs(
        title=title or _name(folder),
        labels=labels,
        metadata=metadata,
        history=[h for h in history if "epoch" in h],
        train=train,
        others=[validation] if validation is not None else [],
        dynamics=read_dynamics(folder),
    )
    inputs.lengths, inputs.length_unit = token_lengths(folder, train.texts)
    if validation is not None and validation_logits is not None:
        temperature = _temperature(metadata)
        logits = np.asarray(validation_logits, dtype=np.float64)
        inputs.evaluated = validation
        inputs.logits = logits if temperature is None else logits / temperature
        thresholds = (metadata.get("thresholds") or {}).get("thresholds")
        inputs.thresholds = thresholds if labels.multi_label else None
    return write_report(folder / REPORT_FILE, inputs)


def _name(folder: Path) -> str:
    match = _STAGING.match(folder.name)
    return match.group(1) if match else folder.resolve().name
