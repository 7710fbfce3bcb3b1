"""The sections on the evaluated rows: per-class scores and the confusion matrix, calibration, and the most
confident mistakes; their :class:`Scores` are computed once (:func:`score`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..metrics import calibration_metrics, classification_metrics, multilabel_metrics, sigmoid, softmax
from . import _figures as fig
from ._html import (
    MAX_LISTED,
    TextCell,
    clip,
    esc,
    figure_row,
    fmt,
    html_table,
    para,
    section,
)
from ._inputs import ReportInputs, Rows

__all__ = ["Scores", "calibration", "evaluation", "mistakes", "score"]


# -- the evaluated rows' scores, computed once --------------------------------------


@dataclass
class Scores:
    """The evaluated rows under the model: probabilities, decisions (class ids, or a 0/1 matrix) and targets."""

    rows: Rows
    targets: np.ndarray
    probabilities: np.ndarray
    predicted: np.ndarray
    thresholds: np.ndarray | None


def score(inputs: ReportInputs) -> Scores | None:
    """:class:`Scores` of ``inputs.evaluated``, or None when no rows were evaluated."""
    if inputs.evaluated is None or inputs.logits is None:
        return None
    targets = inputs.targets(inputs.evaluated)
    if inputs.labels.multi_label:
        thresholds = np.asarray(inputs.thresholds if inputs.thresholds is not None else [0.5] * len(inputs.labels))
        probs = sigmoid(inputs.logits).astype(np.float64)
        chosen = probs >= thresholds  # Classifier.decide's rule
        if inputs.at_least_one:
            empty = ~chosen.any(axis=1)
            chosen[empty, probs[empty].argmax(axis=1)] = True
        return Scores(inputs.evaluated, targets, probs, chosen, thresholds)
    probs = softmax(inputs.logits)
    return Scores(inputs.evaluated, targets, probs, probs.argmax(axis=1), None)


def evaluation(inputs: ReportInputs, scores: Scores | None) -> str:
    """The headline scores, the per-class table and the confusion heatmap (multi-label: per label, thresholds)."""
    if scores is None:
        missing = "No data evaluated: pass --data FILE for per-class scores and the confusion matrix."
        return section("evaluation", "Evaluation", para(missing, "missing"))
    names = list(inputs.labels.names)
    intro = para(f"{scores.rows.name}: {len(scores.rows):,} rows.")
    if inputs.labels.multi_label:
        m = multilabel_metrics(scores.targets, scores.predicted)
        headline = (
            f"micro F1 {m['micro_f1']:.4f}, macro F1 {m['macro_f1']:.4f}, subset accuracy {m['subset_accuracy']:.4f}, "
            f"Hamming loss {m['hamming_loss']:.4f}"
        )
        table = html_table(
            ["label", "precision", "recall", "F1", "support", "threshold"],
            [
                (n, fmt(c["precision"]), fmt(c["recall"]), fmt(c["f1"]), c["support"], f"{t:.2f}")
                for n, c, t in zip(names, m["per_label"], scores.thresholds)
            ],
            id="per-class",
        )
        return section("evaluation", "Evaluation", intro + para(headline, "headline") + table)
    m = classification_metrics(scores.targets, scores.predicted, len(names))
    headline = f"accuracy {m['accuracy']:.4f}, macro F1 {m['f1_macro']:.4f}, MCC {m['mcc']:.4f}"
    table = html_table(
        ["class", "precision", "recall", "F1", "support"],
        [(n, fmt(c["precision"]), fmt(c["recall"]), fmt(c["f1"]), c["support"]) for n, c in zip(names, m["per_class"])],
        id="per-class",
    )
    heatmap = figure_row(fig.confusion(names, np.asarray(m["confusion_matrix"])))
    return section("evaluation", "Evaluation", intro + para(headline, "headline") + table + heatmap)


def calibration(inputs: ReportInputs, scores: Scores | None) -> str:
    """Reliability diagrams and ECE/NLL/Brier: textclf.json's on validation, and the evaluated rows'."""
    recorded = inputs.metadata.get("calibration")
    parts = []
    if recorded:
        each = " (and one a label)" if recorded.get("temperatures") else ""
        fitted = f"Temperature scaling, fitted in training on {fmt(recorded.get('rows'))} validation rows"
        parts.append(para(f"{fitted}: T = {fmt(recorded.get('temperature'), 3)}{each}."))
        parts.append(_reliability_pair(recorded.get("before"), recorded.get("after"), "validation", "val"))
    if scores is not None and inputs.raw_logits is not None:
        before = calibration_metrics(inputs.raw_logits, scores.targets)
        after = calibration_metrics(inputs.logits, scores.targets)
        parts.append(_reliability_pair(before, after, scores.rows.name, "eval"))
    elif scores is not None and not recorded:
        now = calibration_metrics(inputs.logits, scores.targets)
        parts.append(para("The model is not calibrated (trained with --no-calibration, or before textclf calibrated)."))
        diagram = fig.reliability(now["reliability"], f"ECE {now['ece']:.4f}", "fig-reliability-eval")
        parts.append(f"<h3>On {esc(scores.rows.name)}</h3>" + figure_row(diagram))
        parts.append(_calibration_table({"as the model outputs": now}))
    if not parts:
        parts.append(para("The model is not calibrated and no data was evaluated: pass --data FILE.", "missing"))
    what = (
        "Reliability: predictions grouped into 15 equal-width bins of confidence (multi-label: every label's "
        "score); a bar is a bin's accuracy, the shaded gap its distance from the bin's mean confidence, the "
        "diagonal perfect calibration. ECE: that gap averaged over the predictions."
    )
    return section("calibration", "Calibration", para(what) + "".join(parts))


def _reliability_pair(before: dict | None, after: dict | None, name: str, key: str) -> str:
    """Before and after calibration side by side, with their figures in a table."""
    figures, figures_of = [], {}
    for when, record in (("before", before), ("after", after)):
        if record and record.get("reliability"):
            title = f"{when} calibration: ECE {record['ece']:.4f}"
            figures.append(fig.reliability(record["reliability"], title, f"fig-reliability-{key}-{when}"))
            figures_of[f"{when} calibration"] = record
    return f"<h3>On {esc(name)}</h3>" + figure_row(*figures) + _calibration_table(figures_of)


def _calibration_table(records: dict[str, dict]) -> str:
    """ECE, NLL and Brier score of each record."""
    return html_table(
        ["", "ECE", "NLL", "Brier"],
        [(when, fmt(r.get("ece")), fmt(r.get("nll")), fmt(r.get("brier"))) for when, r in records.items()],
    )


def mistakes(inputs: ReportInputs, scores: Scores | None) -> str:
    """The most confident wrong predictions (multi-label: wrong decisions) on the evaluated rows."""
    title = "Most confident mistakes"
    if scores is None:
        return section("mistakes", title, para("No data evaluated: pass --data FILE.", "missing"))
    headers, table_rows, attrs, intro = (_label_mistakes if inputs.labels.multi_label else _class_mistakes)(
        inputs.labels.names, scores
    )
    if not table_rows:
        return section("mistakes", title, para(f"No mistakes on {scores.rows.name}."))
    return section("mistakes", title, para(intro) + html_table(headers, table_rows, "mistakes-table", attrs))


def _class_mistakes(names: Sequence[str], scores: Scores) -> tuple:
    """Wrong predictions, the most confident first: their table's headers, rows, row attributes and intro."""
    rows, predicted, top = scores.rows, scores.predicted, scores.probabilities.max(axis=1)
    wrong = np.flatnonzero(predicted != scores.targets)
    found = wrong[np.argsort(-top[wrong], kind="stable")][:MAX_LISTED].tolist()
    table_rows = [
        (rows.line(r), TextCell(clip(rows.texts[r])), names[scores.targets[r]], names[predicted[r]], f"{top[r]:.4f}")
        for r in found
    ]
    attrs = [f'data-line="{rows.line(r)}" data-probability="{top[r]:.6f}"' for r in found]
    intro = (
        f"{len(wrong):,} wrong predictions, the most confident first (probability: of the predicted class); "
        f"the first {len(found)}:"
    )
    return ["line", "text", "true", "predicted", "probability"], table_rows, attrs, intro


def _label_mistakes(names: Sequence[str], scores: Scores) -> tuple:
    """Wrong (text, label) decisions of a multi-label model, the surest first: as :func:`_class_mistakes`."""
    rows, probs, given, chosen = scores.rows, scores.probabilities, scores.targets.astype(bool), scores.predicted
    wrong = chosen != given
    sure = np.where(chosen, probs, 1 - probs)  # how sure the wrong decision was
    cells = np.argwhere(wrong)  # row-major, as sure[wrong]
    found = [tuple(int(v) for v in cells[k]) for k in np.argsort(-sure[wrong], kind="stable")[:MAX_LISTED]]
    yes = {True: "yes", False: "no"}
    table_rows = [
        (
            rows.line(r),
            TextCell(clip(rows.texts[r])),
            names[c],
            yes[given[r, c]],
            yes[chosen[r, c]],
            f"{probs[r, c]:.4f}",
        )
        for r, c in found
    ]
    attrs = [f'data-line="{rows.line(r)}" data-probability="{sure[r, c]:.6f}"' for r, c in found]
    intro = (
        f"{int(wrong.sum()):,} wrong (text, label) decisions, the surest first (score: the label's probability); "
        f"the first {len(found)}:"
    )
    return ["line", "text", "label", "given", "predicted", "score"], table_rows, attrs, intro
