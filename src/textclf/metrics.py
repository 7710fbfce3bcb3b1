"""Classification metrics from labels and predictions (numpy only).

>>> m = classification_metrics([0, 1, 1, 0], [0, 1, 0, 0], num_classes=2)
>>> round(m["accuracy"], 2), m["confusion_matrix"]
(0.75, [[2, 0], [1, 1]])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["classification_metrics", "cross_entropy"]


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> dict:
    """Accuracy, macro F1, MCC, per-class precision/recall/F1/support, confusion matrix.

    ``confusion_matrix[i][j]`` counts rows of true class i predicted as class j.
    """
    true = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    if true.shape != pred.shape or true.size == 0:
        raise ValueError(f"need equally long, non-empty label arrays, got {true.shape} and {pred.shape}")
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (true, pred), 1)
    tp = np.diag(confusion).astype(float)
    support = confusion.sum(axis=1).astype(float)
    predicted = confusion.sum(axis=0).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    present = (support > 0) | (predicted > 0)
    return {
        "accuracy": float(tp.sum() / true.size),
        "f1_macro": float(f1[present].mean()) if present.any() else 0.0,
        "mcc": _mcc(confusion),
        "per_class": [
            {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for p, r, f, s in zip(precision, recall, f1, support)
        ],
        "confusion_matrix": confusion.tolist(),
    }


def _mcc(confusion: np.ndarray) -> float:
    """Multiclass Matthews correlation (Gorodkin's R_K); 0 when undefined."""
    c = confusion.astype(float)
    s = c.sum()
    correct = np.trace(c)
    t = c.sum(axis=1)
    p = c.sum(axis=0)
    denom = np.sqrt((s * s - p @ p) * (s * s - t @ t))
    return float((correct * s - t @ p) / denom) if denom > 0 else 0.0


def cross_entropy(logits: np.ndarray, labels: Sequence[int]) -> float:
    """Mean cross-entropy of raw logits against integer labels."""
    z = logits - logits.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), np.asarray(labels)].mean())
