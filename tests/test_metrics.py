"""Metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from textclf.metrics import classification_metrics, cross_entropy


def test_binary_metrics_match_hand_computation():
    y_true = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    y_pred = [1, 1, 1, 0, 0, 0, 0, 0, 1, 1]
    m = classification_metrics(y_true, y_pred, 2)
    tp, fn, tn, fp = 3, 1, 4, 2
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["confusion_matrix"] == [[tn, fp], [fn, tp]]
    f1_pos = 2 * tp / (2 * tp + fp + fn)
    f1_neg = 2 * tn / (2 * tn + fn + fp)
    assert m["f1_macro"] == pytest.approx((f1_pos + f1_neg) / 2)
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert m["mcc"] == pytest.approx(mcc)
    assert m["per_class"][1] == pytest.approx({"precision": 3 / 5, "recall": 3 / 4, "f1": f1_pos, "support": 4})


def test_multiclass_perfect_and_constant_predictions():
    assert classification_metrics([0, 1, 2], [0, 1, 2], 3)["mcc"] == pytest.approx(1.0)
    constant = classification_metrics([0, 1, 2, 2], [2, 2, 2, 2], 3)
    assert constant["mcc"] == 0.0 and constant["accuracy"] == 0.5
    assert constant["per_class"][0] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_cross_entropy_matches_definition():
    logits = np.array([[2.0, 0.0], [0.0, 1.0]])
    expected = -(math.log(math.exp(2) / (math.exp(2) + 1)) + math.log(math.exp(1) / (1 + math.exp(1)))) / 2
    assert cross_entropy(logits, [0, 1]) == pytest.approx(expected)
