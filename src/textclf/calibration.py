"""Temperature scaling: one number that makes a model's probabilities mean what they say (numpy only).

A fine-tuned transformer is usually overconfident: of the texts it gives 0.95, fewer than 95% are
right. Dividing the logits by a temperature T > 1 softens every probability without changing any
argmax (Guo et al., On Calibration of Modern Neural Networks, ICML 2017; Desai & Durrett,
Calibration of Pre-trained Transformers, EMNLP 2020). :func:`fit` chooses T on validation logits
by minimising their negative log-likelihood, a bounded 1-D search; a multi-label model gets a T a
label (each label's sigmoid calibrated alone, on its binary cross-entropy), except labels with too
few validation positives to fit one, which share the T fitted on all labels together.

Training folds T into the classification layer (``models.scale_output_layer``: its weights and
bias divided by T), so every path that turns logits into probabilities (predict, evaluate, serve,
batch, every export, and ``transformers.pipeline`` on the folder) gives the calibrated ones, and
``textclf.json``'s ``calibration`` records T and the figures before and after.

>>> import numpy as np
>>> logits = np.array([[4.0, -4.0], [4.0, -4.0], [-4.0, 4.0], [4.0, -4.0]])
>>> t = fit(logits, np.array([0, 0, 1, 1]))["temperature"]  # one of 4 wrong at 0.9997: T > 1
>>> t > 1
True
"""

from __future__ import annotations

import math

import numpy as np

from .metrics import MIN_POSITIVES, binary_cross_entropy, calibration_metrics

__all__ = ["MIN_ROWS", "RULE", "T_RANGE", "calibrate", "figures", "fit", "map_thresholds"]

T_RANGE = (0.25, 20.0)
"""The search's bounds. Below 1 the model was underconfident; a validation set with no or almost no mistake
pulls T towards 0 without end (every probability to 1), so sharpening stops at 4x."""
MIN_ROWS = 20  # fewer validation rows: no calibration (a temperature fitted on a handful is noise)
RULE = (
    "temperature scaling: T minimising the validation set's negative log-likelihood (golden-section search "
    f"over log T in [{T_RANGE[0]:g}, {T_RANGE[1]:g}]); multi-label: a T a label with at least {MIN_POSITIVES} "
    "validation positives, the others the T of all labels together; folded into the output layer"
)
_ITERATIONS = 80  # golden-section steps: the bracket shrinks to 0.618^80 of log(80), far below float noise


def _nll(logits: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    if targets.ndim == 2:
        return binary_cross_entropy(z, targets)
    z = z - z.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(targets)), targets].mean())


def _search(loss) -> float:
    """The T in :data:`T_RANGE` minimising ``loss(T)``, by golden-section search over log T.

    The NLL is convex in 1/T, so unimodal in log T, and the search finds its minimum (or the bound it
    keeps falling towards: a validation set with no mistake pushes T towards 0)."""
    lo, hi = math.log(T_RANGE[0]), math.log(T_RANGE[1])
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = loss(math.exp(a)), loss(math.exp(b))
    for _ in range(_ITERATIONS):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = loss(math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = loss(math.exp(b))
    return float(math.exp((lo + hi) / 2))


def fit(logits: np.ndarray, targets: np.ndarray, min_positives: int = MIN_POSITIVES) -> dict:
    """The temperature of validation ``logits`` against ``targets`` (class ids, or a 0/1 row a text).

    Returns ``{"temperature": T}``; for multi-label also ``"temperatures"`` (one a label) and
    ``"per_label"`` (whether a label's T is its own: at least ``min_positives`` positives and one negative).
    """
    logits = np.asarray(logits, dtype=np.float64)
    targets = np.asarray(targets)
    overall = _search(lambda t: _nll(logits, targets, t))
    if targets.ndim != 2:
        return {"temperature": overall}
    positives = targets.sum(axis=0)
    own = (positives >= min_positives) & (positives < len(targets))
    temperatures = [
        _search(lambda t, k=k: _nll(logits[:, k : k + 1], targets[:, k : k + 1], t)) if own[k] else overall
        for k in range(targets.shape[1])
    ]
    return {"temperature": overall, "temperatures": temperatures, "per_label": [bool(v) for v in own]}


def calibrate(logits: np.ndarray, targets: np.ndarray) -> dict:
    """:func:`fit` on validation logits, with the figures before and after: ``textclf.json``'s ``calibration``
    record (``temperature``, multi-label ``temperatures``/``per_label``; ``before``/``after`` each
    ``{"ece", "nll", "brier", "reliability"}``; ``rows``; ``rule``)."""
    chosen = fit(logits, targets)
    scale = chosen.get("temperatures", chosen["temperature"])
    before, after = calibration_metrics(logits, targets), calibration_metrics(logits, targets, scale)
    return {**chosen, "before": before, "after": after, "rows": len(targets), "on": "validation", "rule": RULE}


def map_thresholds(thresholds, temperatures) -> list[float]:
    """Multi-label thresholds chosen on uncalibrated scores, moved to the calibrated ones so every decision stays
    the same: a score s = sigmoid(z) >= t exactly when sigmoid(z / T) >= sigmoid(logit(t) / T)."""
    out = []
    for t, temperature in zip(thresholds, temperatures):
        t = min(max(float(t), 1e-12), 1 - 1e-12)
        out.append(1.0 / (1.0 + math.exp(-math.log(t / (1 - t)) / temperature)))
    return out


def figures(logits: np.ndarray, targets: np.ndarray, temperatures: np.ndarray | None = None) -> dict:
    """ECE, NLL and Brier score of a model's (calibrated) ``logits`` on labelled data, and ``before``: the same
    of the uncalibrated logits (``logits * temperatures``; None when the model was not calibrated)."""
    after = calibration_metrics(logits, targets)
    scores = {key: after[key] for key in ("ece", "nll", "brier")}
    if temperatures is None:
        return {**scores, "temperature": None, "before": None}
    raw = calibration_metrics(np.asarray(logits, dtype=np.float64) * temperatures, targets)
    shown = temperatures.tolist() if temperatures.size > 1 else float(temperatures[0])
    return {**scores, "temperature": shown, "before": {key: raw[key] for key in ("ece", "nll", "brier")}}
