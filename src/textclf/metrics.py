"""Classification metrics from labels and predictions (numpy only): single-label (a class a text) and
multi-label (0/1 matrices, with :func:`choose_thresholds` picking each label's decision threshold).

>>> m = classification_metrics([0, 1, 1, 0], [0, 1, 0, 0], num_classes=2)
>>> round(m["accuracy"], 2), m["confusion_matrix"]
(0.75, [[2, 0], [1, 1]])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "CALIBRATION_SCORES",
    "ECE_BINS",
    "MIN_POSITIVES",
    "MULTILABEL_SCORES",
    "binary_cross_entropy",
    "calibration_metrics",
    "choose_thresholds",
    "classification_metrics",
    "cross_entropy",
    "multilabel_metrics",
    "multilabel_metrics_from_counts",
    "reliability",
    "sigmoid",
    "softmax",
]


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


# -- multi-label --------------------------------------------------------------

MULTILABEL_SCORES = ("micro_f1", "macro_f1", "micro_precision", "micro_recall", "subset_accuracy", "hamming_loss")
"""The scores :func:`multilabel_metrics` gives besides ``per_label`` (an epoch record's ``val_``-prefixed ones)."""
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)  # the thresholds chosen among
MIN_POSITIVES = 5  # a label with fewer validation positives takes the global threshold


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Per-label probabilities of multi-label logits (overflow-free in float32)."""
    return (0.5 * (1.0 + np.tanh(0.5 * logits.astype(np.float64)))).astype(np.float32)


def binary_cross_entropy(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean over rows of the summed per-label binary cross-entropy (the training loss), from raw logits."""
    x = logits.astype(np.float64)
    per_label = np.maximum(x, 0) - x * targets + np.log1p(np.exp(-np.abs(x)))
    return float(per_label.sum(axis=1).mean())


def multilabel_metrics(targets: np.ndarray, predicted: np.ndarray) -> dict:
    """Micro and macro F1, micro precision and recall, subset accuracy (exact match), Hamming loss, and per
    label precision/recall/F1/support, from 0/1 matrices (rows: texts, columns: labels).

    Macro F1 averages every label's F1, a label with no positives and no predictions counting 0, as
    scikit-learn's ``f1_score(average="macro", zero_division=0)`` does.

    >>> m = multilabel_metrics(np.array([[1, 0], [1, 1]]), np.array([[1, 0], [1, 0]]))
    >>> round(m["micro_f1"], 4), m["subset_accuracy"], m["hamming_loss"]
    (0.8, 0.5, 0.25)
    """
    true, pred = np.asarray(targets, dtype=bool), np.asarray(predicted, dtype=bool)
    if true.shape != pred.shape or true.ndim != 2 or true.shape[0] == 0:
        raise ValueError(f"need equally shaped, non-empty 0/1 matrices, got {true.shape} and {pred.shape}")
    return multilabel_metrics_from_counts(
        (true & pred).sum(axis=0),
        (~true & pred).sum(axis=0),
        (true & ~pred).sum(axis=0),
        exact=int((true == pred).all(axis=1).sum()),
        wrong=int((true != pred).sum()),
        rows=true.shape[0],
    )


def multilabel_metrics_from_counts(tp, fp, fn, exact: int, wrong: int, rows: int) -> dict:
    """:func:`multilabel_metrics` from counts that add up over chunks (``batch --evaluate``): per label true
    positives, false positives and false negatives; the rows predicted exactly, the wrong (row, label) cells."""
    tp, fp, fn = (np.asarray(v, dtype=float) for v in (tp, fp, fn))
    precision, recall, f1 = _prf(tp, fp, fn)
    micro_p, micro_r, micro_f1 = (float(v) for v in _prf(tp.sum(), fp.sum(), fn.sum()))
    return {
        "micro_f1": micro_f1,
        "macro_f1": float(f1.mean()),
        "micro_precision": micro_p,
        "micro_recall": micro_r,
        "subset_accuracy": exact / rows,
        "hamming_loss": wrong / (rows * len(tp)),
        "per_label": [
            {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for p, r, f, s in zip(precision, recall, f1, tp + fn)
        ],
    }


def _prf(tp, fp, fn):
    """Precision, recall and F1 (0 where undefined) of counts, elementwise."""
    tp, fp, fn = (np.asarray(v, dtype=float) for v in (tp, fp, fn))
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    recall = np.divide(tp, tp + fn, out=np.zeros_like(tp), where=(tp + fn) > 0)
    f1 = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros_like(tp), where=(2 * tp + fp + fn) > 0)
    return precision, recall, f1


def choose_thresholds(targets: np.ndarray, scores: np.ndarray, min_positives: int = MIN_POSITIVES) -> dict:
    """A decision threshold a label, chosen on validation scores.

    A label with at least ``min_positives`` positive rows gets the threshold of :data:`THRESHOLD_GRID`
    (0.05 to 0.95 by 0.01) that maximises its own F1 (ties: the one nearest 0.5); every other label gets
    the global threshold, the one that maximises micro F1 over all labels at once. Returns
    ``{"thresholds": [...], "global": g, "per_label": [bool, ...]}`` (``per_label``: whether a label's
    threshold is its own).
    """
    true, scores = np.asarray(targets, dtype=bool), np.asarray(scores, dtype=np.float64)
    tp = np.empty((len(THRESHOLD_GRID), true.shape[1]))
    fp = np.empty_like(tp)
    for k, threshold in enumerate(THRESHOLD_GRID):  # one (rows, labels) comparison at a time: memory of one
        above = scores >= threshold
        tp[k], fp[k] = (above & true).sum(axis=0), (above & ~true).sum(axis=0)
    fn = true.sum(axis=0)[None, :] - tp
    nearest_half = -np.abs(THRESHOLD_GRID - 0.5)
    _, _, micro = _prf(tp.sum(axis=1), fp.sum(axis=1), fn.sum(axis=1))
    best_global = float(THRESHOLD_GRID[np.lexsort((nearest_half, micro))[-1]])
    _, _, f1 = _prf(tp, fp, fn)  # (grid, labels)
    own = true.sum(axis=0) >= min_positives
    thresholds = []
    for label in range(true.shape[1]):
        if own[label]:
            thresholds.append(float(THRESHOLD_GRID[np.lexsort((nearest_half, f1[:, label]))[-1]]))
        else:
            thresholds.append(best_global)
    return {"thresholds": thresholds, "global": best_global, "per_label": [bool(v) for v in own]}


# -- calibration --------------------------------------------------------------

ECE_BINS = 15  # equal-width bins of confidence (Guo et al., On Calibration of Modern Neural Networks, ICML 2017)
CALIBRATION_SCORES = ("ece", "nll", "brier")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities of single-label logits, a row a text (float64)."""
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> dict:
    """Expected calibration error and the reliability diagram's bins.

    ``confidence`` (a probability a prediction) falls in one of ``bins`` equal-width bins of [0, 1]
    (``(k/bins, (k+1)/bins]``, 0 in the first); ECE is the rows-weighted mean gap between a bin's mean
    confidence and its share of ``correct`` predictions.

    >>> r = reliability(np.array([0.9, 0.9, 0.6, 0.6]), np.array([1, 1, 1, 0]))
    >>> round(r["ece"], 3), [b["count"] for b in r["bins"] if b["count"]]
    (0.1, [2, 2])
    """
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    hit = np.asarray(correct, dtype=np.float64).ravel()
    if conf.shape != hit.shape or conf.size == 0:
        raise ValueError(f"need equally long, non-empty arrays, got {conf.shape} and {hit.shape}")
    index = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    conf_sum = np.bincount(index, conf, minlength=bins)
    hit_sum = np.bincount(index, hit, minlength=bins)
    return {
        "ece": float(np.abs(conf_sum - hit_sum).sum() / conf.size),
        "bins": [
            {
                "lower": k / bins,
                "upper": (k + 1) / bins,
                "count": int(count[k]),
                "confidence": float(conf_sum[k] / count[k]) if count[k] else None,
                "accuracy": float(hit_sum[k] / count[k]) if count[k] else None,
            }
            for k in range(bins)
        ],
    }


def calibration_metrics(logits: np.ndarray, targets: np.ndarray, temperature=1.0) -> dict:
    """How far probabilities are from frequencies: ECE (:func:`reliability`), negative log-likelihood and Brier
    score of ``logits / temperature``, with the reliability bins.

    Single-label (``targets``: class ids): the confidence is the top probability and correct means the top
    class is the given one; NLL is the mean cross-entropy; Brier the mean over rows of the squared distance
    between the probability row and the one-hot label (0..2). Multi-label (``targets``: a 0/1 row a text):
    every (text, label) score is a prediction of that cell (ECE over all cells, Brier their mean squared
    error), NLL the binary cross-entropy summed over a row's labels (the training loss). ``temperature``: one
    number, or for multi-label one a label.
    """
    z = np.asarray(logits, dtype=np.float64) / np.asarray(temperature, dtype=np.float64)
    targets = np.asarray(targets)
    if targets.ndim == 2:
        probs = 0.5 * (1.0 + np.tanh(0.5 * z))
        r = reliability(probs, targets)
        nll = binary_cross_entropy(z, targets)
        brier = float(((probs - targets) ** 2).mean())
    else:
        probs = softmax(z)
        rows = np.arange(len(targets))
        r = reliability(probs.max(axis=1), probs.argmax(axis=1) == targets)
        log_probs = z - z.max(axis=1, keepdims=True)
        log_probs -= np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
        nll = float(-log_probs[rows, targets].mean())
        onehot = np.zeros_like(probs)
        onehot[rows, targets] = 1.0
        brier = float(((probs - onehot) ** 2).sum(axis=1).mean())
    return {"ece": r["ece"], "nll": nll, "brier": brier, "reliability": r["bins"]}
