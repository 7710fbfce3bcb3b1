"""Score a model folder on labelled data: accuracy, macro F1, MCC, per class."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .artifact import ModelFolder
from .data import ReadOptions, read_examples
from .inference import Classifier
from .metrics import classification_metrics, cross_entropy

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

    def to_dict(self) -> dict:
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

    def render(self) -> str:
        """A readable report: summary line, per-class table, confusion matrix."""
        names = [str(n) for n in self.labels]
        width = max(8, *(len(n) for n in names))
        m = self.metrics
        out = [
            f"{self.source}: {self.rows} rows"
            + (f" ({self.skipped} skipped)" if self.skipped else "")
            + f"; backend {self.backend}",
            f"accuracy {m['accuracy']:.4f}   macro F1 {m['f1_macro']:.4f}   MCC {m['mcc']:.4f}   loss {self.loss:.4f}",
            "",
            f"{'class':<{width}}  precision  recall      f1  support",
        ]
        for name, c in zip(names, m["per_class"]):
            out.append(f"{name:<{width}}  {c['precision']:9.4f}  {c['recall']:6.4f}  {c['f1']:6.4f}  {c['support']:7d}")
        out += ["", "confusion matrix (rows: true, columns: predicted)"]
        cell = max(6, width)
        out.append(" " * width + "  " + "".join(f"{n[:cell]:>{cell + 1}}" for n in names))
        for name, row in zip(names, m["confusion_matrix"]):
            out.append(f"{name:<{width}}  " + "".join(f"{v:>{cell + 1}d}" for v in row))
        return "\n".join(out)


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
    examples = read_examples(data, read_options)
    y_true = clf.labels.encode(examples, read_options.on_bad_rows)
    logits = clf.logits(examples.texts)
    metrics = classification_metrics(y_true, logits.argmax(axis=1), len(clf.labels))
    labels = [clf.labels.value(i) for i in range(len(clf.labels))]
    return EvaluationReport(
        str(examples.path),
        labels,
        len(y_true),
        len(examples.skipped),
        cross_entropy(logits, y_true),
        metrics,
        clf.backend.name,
    )
