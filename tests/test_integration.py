"""Fine-tune the real default model on SST-2 (slow: about a minute on 2 CPU cores)."""

from __future__ import annotations

import csv
import random

import pytest

import textclf
from conftest import SHARED_DATA

SST2 = SHARED_DATA / "sst2"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (SST2 / "train.tsv").is_file(), reason=f"SST-2 not found at {SST2}"),
]


def test_default_model_reaches_080_on_sst2_dev_from_2000_rows(tmp_path):
    with (SST2 / "train.tsv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    random.Random(0).shuffle(rows)
    subset = tmp_path / "train.tsv"
    with subset.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n")
        writer.writerow(["sentence", "label"])
        writer.writerows(rows[:2000])
    result = textclf.train(
        subset,
        tmp_path / "model",
        validation=SST2 / "dev.tsv",
        progress=False,
        epochs=2,
        learning_rate=5e-5,
        batch_size=32,
    )
    assert result.best["val_accuracy"] >= 0.80
    report = textclf.evaluate(result.output, SST2 / "dev.tsv")
    assert report.rows == 872 and report.metrics["accuracy"] == pytest.approx(result.best["val_accuracy"])
