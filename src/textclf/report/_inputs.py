"""What a report is made of (:class:`ReportInputs`), and the readers of the model folder's side files:
``metrics.jsonl``, ``training_dynamics.npz``, an ``errors.csv`` of ``textclf find-label-errors``, and
the token lengths of texts under the folder's own tokenizer."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..artifact import DYNAMICS_FILE, METRICS_FILE
from ..data import LabelSet
from ..errors import DataError

__all__ = [
    "LABEL_ERROR_COLUMNS",
    "ReportInputs",
    "Rows",
    "read_dynamics",
    "read_history",
    "read_label_errors",
    "token_lengths",
]

LABEL_ERROR_COLUMNS = ("line", "text", "given_label", "suggested_label", "score")


@dataclass
class Rows:
    """Labelled texts of one data set: the name the report shows, the texts, a label a row (a class id; for a
    multi-label model a tuple of ids), the file line of each (None: rows are numbered from 1) and the file."""

    name: str
    texts: list[str]
    labels: list
    lines: list[int] | None = None
    source: str = ""

    def line(self, row: int) -> int:
        """The file line of row ``row`` (0-based)."""
        return self.lines[row] if self.lines is not None else row + 1

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class ReportInputs:
    """Everything a report shows; each part may be missing, and the report says what would add it.

    ``metadata`` and ``history``: the model folder's ``textclf.json`` (``{}``: none) and ``metrics.jsonl``'s
    epoch records. ``train``: the training rows (None: not available, ``notes`` say why), with
    ``lengths`` (a length a training text, in ``length_unit``: ``tokens`` of the model's tokenizer, else
    ``words``). ``evaluated``: the rows the model was run on, ``logits`` its outputs (calibrated: what the
    model's probabilities are made from) and ``raw_logits`` the same before calibration (None: not
    calibrated, or shown from ``textclf.json`` instead); ``thresholds``: a multi-label model's decision
    threshold a label (``at_least_one``: a text with none above its threshold takes its top label).
    ``others``: further sets checked for texts shared with training (validation).
    ``label_errors``: rows of ``textclf find-label-errors``' CSV; ``dynamics``: ``training_dynamics.npz``.
    """

    title: str
    labels: LabelSet
    metadata: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    train: Rows | None = None
    lengths: np.ndarray | None = None
    length_unit: str = "tokens"
    evaluated: Rows | None = None
    logits: np.ndarray | None = None
    raw_logits: np.ndarray | None = None
    thresholds: Sequence[float] | None = None
    at_least_one: bool = False
    others: list[Rows] = field(default_factory=list)
    label_errors: list[dict] | None = None
    dynamics: dict[str, np.ndarray] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def max_seq_length(self) -> int | None:
        return self.metadata.get("max_seq_length")

    def targets(self, rows: Rows) -> np.ndarray:
        """``rows``' labels as the metrics take them: class ids, or a 0/1 matrix for multi-label."""
        return self.labels.targets(rows.labels)


def read_history(folder: Path) -> list[dict]:
    """The epoch records of ``metrics.jsonl`` (lines without ``epoch``, such as the calibration's, are not
    epochs); [] when the folder has none. A line that is not JSON ends the history there (a run cut off)."""
    path = Path(folder) / METRICS_FILE
    if not path.is_file():
        return []
    history = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break
        if isinstance(record, dict) and "epoch" in record:
            history.append(record)
    return history


def read_dynamics(folder: Path) -> dict[str, np.ndarray] | None:
    """``training_dynamics.npz`` (``line``, ``confidence`` epochs x rows, ``epoch``, ``label``), or None."""
    path = Path(folder) / DYNAMICS_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the training dynamics ({exc}); delete the file to go without.") from exc
    if "confidence" not in arrays or "line" not in arrays or arrays["confidence"].ndim != 2:
        return None
    return arrays


def read_label_errors(path: str | Path) -> list[dict]:
    """The rows of an ``errors.csv`` written by ``textclf find-label-errors``, in its order; the columns
    :data:`LABEL_ERROR_COLUMNS` are needed (in any order, any case; others are kept)."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            header = {(name or "").strip().lower(): name for name in reader.fieldnames or ()}
            missing = [c for c in LABEL_ERROR_COLUMNS if c not in header]
            if missing:
                raise DataError(
                    f"{path}: not a label-error CSV: no {', '.join(missing)} column(s); expected the CSV of "
                    f"`textclf find-label-errors` with columns {','.join(LABEL_ERROR_COLUMNS)}."
                )
            rows = [{key: (row.get(name) or "") for key, name in header.items()} for row in reader]
    except OSError as exc:
        raise DataError(f"{path}: cannot read the label errors ({exc.strerror}).") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(
            f"{path}: not a label-error CSV ({exc}); expected the CSV of `textclf find-label-errors`."
        ) from exc
    return rows


def token_lengths(folder: Path, texts: Sequence[str]) -> tuple[np.ndarray, str]:
    """Each text's length in tokens of the folder's ``tokenizer.json``, untruncated (special tokens counted, as
    the model sees them), or in words when the folder has no such file; and the unit."""
    path = Path(folder) / "tokenizer.json"
    if path.is_file():
        from tokenizers import Tokenizer

        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception:  # a tokenizer.json this version cannot read: words are still a length
            tokenizer = None
        if tokenizer is not None:
            tokenizer.no_truncation()
            tokenizer.no_padding()
            encoded = tokenizer.encode_batch_fast(list(texts)) if texts else []
            return np.fromiter((len(e) for e in encoded), np.int64, len(texts)), "tokens"
    return np.fromiter((len(t.split()) for t in texts), np.int64, len(texts)), "words"
