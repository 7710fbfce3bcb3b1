"""Score a model folder on labelled data: accuracy, macro F1, MCC, per class; for a multi-label model micro
and macro F1, micro precision and recall, subset accuracy, Hamming loss, and per label (with its threshold);
and how well its probabilities are calibrated (ECE, NLL, Brier; before and after its temperature)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .artifact import ModelFolder
from .calibration import figures
from .data import ReadOptions, read_examples
from .inference import Classifier
from .metrics import (
    MULTILABEL_SCORES,
    binary_cross_entropy,
    classification_metrics,
    cross_entropy,
    multilabel_metrics,
    sigmoid,
)

__all__ = ["EvaluationReport", "evaluate"]


@dataclass
class EvaluationReport:
    """Metrics of one model on one data set."""

    source: str
    labels: list[int | str]
    rows: int
    skipped: int
    loss: float
    metrics: dict
    backend: str = "torch"
    thresholds: list[float] | None = None  # multi-label: each label's decision threshold
    calibration: dict | None = None  # calibration.figures: ECE, NLL, Brier, and before calibration

    def to_dict(self) -> dict:
        out = self._multi_label_dict() if self.thresholds is not None else self._single_label_dict()
        return out if self.calibration is None else {**out, "calibration": self.calibration}

    def _single_label_dict(self) -> dict:
        return {
            "data": self.source,
            "backend": self.backend,
            "rows": self.rows,
            "skipped_rows": self.skipped,
            "loss": self.loss,
            "accuracy": self.metrics["accuracy"],
            "f1_macro": self.metrics["f1_macro"],
            "mcc": self.metrics["mcc"],
            "per_class": {str(name): m for name, m in zip(self.labels, self.metrics["per_class"])},
            "labels": self.labels,
            "confusion_matrix": self.metrics["confusion_matrix"],
        }

    def _multi_label_dict(self) -> dict:
        m = self.metrics
        per_label = {
            str(name): {**row, "threshold": t} for name, row, t in zip(self.labels, m["per_label"], self.thresholds)
        }
        return {
            "data": self.source,
            "backend": self.backend,
            "task": "multi-label",
            "rows": self.rows,
            "skipped_rows": self.skipped,
            "loss": self.loss,
            **{key: m[key] for key in MULTILABEL_SCORES},
            "per_label": per_label,
            "labels": self.labels,
        }

    def render(self) -> str:
        """A readable report: summary line, per-class table, confusion matrix (multi-label: per-label table)."""
        if self.thresholds is not None:
            return self._render_multi_label()
        names = [str(n) for n in self.labels]
        width = max(8, *(len(n) for n in names))
        m = self.metrics
        out = [
            self._first_line(),
            f"accuracy {m['accuracy']:.4f}   macro F1 {m['f1_macro']:.4f}   MCC {m['mcc']:.4f}   loss {self.loss:.4f}",
            "",
            f"{'class':<{width}}  precision  recall      f1  support",
        ]
        for name, c in zip(names, m["per_class"]):
            out.append(f"{name:<{width}}  {c['precision']:9.4f}  {c['recall']:6.4f}  {c['f1']:6.4f}  {c['support']:7d}")
        out += self._calibration_lines()
        out += ["", "confusion matrix (rows: true, columns: predicted)"]
        cell = max(6, width)
        out.append(" " * width + "  " + "".join(f"{n[:cell]:>{cell + 1}}" for n in names))
        for name, row in zip(names, m["confusion_matrix"]):
            out.append(f"{name:<{width}}  " + "".join(f"{v:>{cell + 1}d}" for v in row))
        return "\n".join(out)

    def _calibration_lines(self) -> list[str]:
        """``calibration  ECE 1.20% (before 4.31%)  NLL ...  Brier ...  temperature 1.62``, after a blank line."""
        c = self.calibration
        if c is None:
            return []
        before = c["before"] or {}
        was = lambda key, fmt: f" (before {format(before[key], fmt)})" if key in before else ""  # noqa: E731
        t = c["temperature"]
        shown = (
            "none" if t is None else f"{t:.3f}" if isinstance(t, float) else f"one a label, {min(t):.2f}..{max(t):.2f}"
        )
        return [
            "",
            f"calibration  ECE {c['ece']:.2%}{was('ece', '.2%')}   NLL {c['nll']:.4f}{was('nll', '.4f')}   "
            f"Brier {c['brier']:.4f}{was('brier', '.4f')}   temperature {shown}",
        ]

    def _first_line(self) -> str:
        skipped = f" ({self.skipped} skipped)" if self.skipped else ""
        return f"{self.source}: {self.rows} rows{skipped}; backend {self.backend}"

    def _render_multi_label(self) -> str:
        names = [str(n) for n in self.labels]
        width = max(8, *(len(n) for n in names))
        m = self.metrics
        out = [
            self._first_line() + "; multi-label",
            f"micro F1 {m['micro_f1']:.4f}   macro F1 {m['macro_f1']:.4f}   micro precision "
            f"{m['micro_precision']:.4f}   micro recall {m['micro_recall']:.4f}",
            f"subset accuracy {m['subset_accuracy']:.4f}   Hamming loss {m['hamming_loss']:.4f}   loss {self.loss:.4f}",
            "",
            f"{'label':<{width}}  precision  recall      f1  support  threshold",
        ]
        for name, c, t in zip(names, m["per_label"], self.thresholds):
            scores = f"{c['precision']:9.4f}  {c['recall']:6.4f}  {c['f1']:6.4f}"
            out.append(f"{name:<{width}}  {scores}  {c['support']:7d}  {t:9.2f}")
        return "\n".join(out + self._calibration_lines())


def evaluate(
    model: str | Path | ModelFolder | Classifier, data: str | Path, read_options: ReadOptions | None = None
) -> EvaluationReport:
    """Evaluate ``model`` (a model folder, read or not, or a loaded :class:`Classifier`) on the labelled file ``data``.

    >>> report = evaluate("out/reviews", "reviews/validation.csv")  # doctest: +SKIP
    >>> report.metrics["accuracy"]  # doctest: +SKIP
    0.9375
    """
    read_options = read_options or ReadOptions()
    clf = model if isinstance(model, Classifier) else Classifier.load(model)
    examples = read_examples(data, read_options, multi_label=clf.labels.multi_label)
    y_true = clf.labels.encode(examples, read_options.on_bad_rows)
    logits = clf.logits(examples.texts)
    labels = [clf.labels.value(i) for i in range(len(clf.labels))]
    targets = clf.labels.targets(y_true)
    calibrated = figures(logits, targets, clf.temperatures if clf.calibration is not None else None)
    if clf.labels.multi_label:
        metrics = multilabel_metrics(targets, clf.decide(sigmoid(logits)))
        loss = binary_cross_entropy(logits, targets)
        thresholds = [round(float(t), 4) for t in clf.thresholds]
        rows, skipped = len(y_true), len(examples.skipped)
        return EvaluationReport(
            str(examples.path), labels, rows, skipped, loss, metrics, clf.backend.name, thresholds, calibrated
        )
    metrics = classification_metrics(y_true, logits.argmax(axis=1), len(clf.labels))
    return EvaluationReport(
        str(examples.path),
        labels,
        len(y_true),
        len(examples.skipped),
        cross_entropy(logits, y_true),
        metrics,
        clf.backend.name,
        calibration=calibrated,
    )
