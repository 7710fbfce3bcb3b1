"""An epoch's record: training figures summed over the processes, validation metrics, its log line.

The record (:func:`epoch_record`) is what ``metrics.jsonl`` holds a line of, what ``on_epoch``
gets, and what the best point is chosen from with the mid-epoch checks it lists (``checks``:
:func:`check_record`, ``evaluations_per_epoch``); every process computes the same ones.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from ..inference import Classifier
from ..metrics import (
    MULTILABEL_SCORES,
    binary_cross_entropy,
    choose_thresholds,
    classification_metrics,
    cross_entropy,
    multilabel_metrics,
    reliability,
    sigmoid,
    softmax,
)
from .distributed import World
from .sifting import SiftingStats
from .state import Tally

if TYPE_CHECKING:
    from .run import Run

__all__ = [
    "check_line",
    "check_record",
    "epoch_line",
    "epoch_record",
    "selection_metric",
    "training_figures",
    "validation_metrics",
]


def epoch_record(run: Run, epoch: int, tally: Tally) -> dict:
    """Epoch ``epoch``'s record, from this process's ``tally`` of its training pass (every process gets the same)."""
    trained = training_figures(run.world, tally, run.batches.stats, run.state.epoch_seconds(tally))
    return {
        "epoch": epoch,
        "train_loss": trained.pop("train_loss"),
        **validation_metrics(run.validator, run.val_ids, run.data.val_labels, run.world),
        **trained,
        "elapsed_seconds": time.perf_counter() - run.state.started,
        "checks": run.state.checks,
    }


def check_record(run: Run, rows: int) -> dict:
    """A mid-epoch check's record: where it was (epoch, optimizer step over the run, rows of the epoch consumed
    by all processes) and the validation metrics there."""
    point = {"epoch": run.state.epoch, "step": run.state.step, "rows": rows}
    return {**point, **validation_metrics(run.validator, run.val_ids, run.data.val_labels, run.world)}


def training_figures(world: World, tally: Tally, sifting: SiftingStats | None, train_seconds: float) -> dict:
    """The epoch's training figures, summed over the processes (scoring time: seconds per process)."""
    mine = sifting or SiftingStats(tally.rows, tally.rows)
    loss_sum, rows, seen, kept, scoring = world.agree(
        tally.loss, tally.rows, mine.seen, mine.kept, mine.scoring_seconds
    )
    stats = SiftingStats(int(seen), int(kept), scoring / world.size)
    return {
        "train_loss": loss_sum / max(rows, 1),
        "samples_per_second": stats.seen / train_seconds,
        "samples_seen": stats.seen,
        "samples_kept": stats.kept,
        "fraction_sifted": stats.fraction_sifted,
        "scoring_seconds": stats.scoring_seconds,
        "train_seconds": train_seconds,
    }


SINGLE_LABEL_KEYS = ("val_loss", "val_accuracy", "val_f1", "val_mcc", "val_ece")
MULTI_LABEL_KEYS = ("val_loss", *(f"val_{score}" for score in MULTILABEL_SCORES), "val_ece")


def selection_metric(multi_label: bool) -> str:
    """What the best point and early stopping go by: val_accuracy, or val_micro_f1 for multi-label."""
    return "val_micro_f1" if multi_label else "val_accuracy"


def validation_metrics(clf: Classifier, ids: list[list[int]], labels: list, world: World) -> dict:
    """Validation metrics; each process computes the logits of every processes-th text.

    ``val_ece``: the expected calibration error of these (uncalibrated) probabilities (15 bins).
    Multi-label: each label's decision threshold is chosen on these scores (``thresholds``, see
    :func:`~textclf.metrics.choose_thresholds`) and the metrics are those at them, so the point kept is
    judged as it will be used.
    """
    multi = clf.labels.multi_label
    if not ids:
        return dict.fromkeys(MULTI_LABEL_KEYS if multi else SINGLE_LABEL_KEYS)
    clf.backend.model.eval()
    logits = np.empty((len(ids), len(clf.labels)), dtype=np.float32)
    for rank, part in enumerate(world.gather(clf.forward(ids[world.rank :: world.size]))):
        logits[rank :: world.size] = part
    if multi:
        return _multi_label_metrics(logits, clf.labels.targets(labels))
    m = classification_metrics(labels, logits.argmax(axis=1), len(clf.labels))
    return {
        "val_loss": cross_entropy(logits, labels),
        "val_accuracy": m["accuracy"],
        "val_f1": m["f1_macro"],
        "val_mcc": m["mcc"],
        "val_ece": reliability(softmax(logits).max(axis=1), logits.argmax(axis=1) == np.asarray(labels))["ece"],
    }


def _multi_label_metrics(logits: np.ndarray, targets: np.ndarray) -> dict:
    scores = sigmoid(logits)
    chosen = choose_thresholds(targets, scores)
    m = multilabel_metrics(targets, scores.astype(np.float64) >= np.asarray(chosen["thresholds"]))
    values = {f"val_{score}": m[score] for score in MULTILABEL_SCORES}
    ece = reliability(scores, targets)["ece"]
    return {"val_loss": binary_cross_entropy(logits, targets), **values, "val_ece": ece, "thresholds": chosen}


def epoch_line(r: dict, epochs: int) -> str:
    line = f"epoch {r['epoch']}/{epochs}  train_loss {r['train_loss']:.4f}"
    if r["val_loss"] is not None:
        line += _validation_part(r)
    if r["scoring_seconds"]:
        line += (
            f"  kept {r['samples_kept']}/{r['samples_seen']} (sifted {r['fraction_sifted']:.0%}, "
            f"scoring {r['scoring_seconds']:.1f}s of {r['train_seconds']:.1f}s)"
        )
    return line + f"  {r['samples_per_second']:.1f} samples/s  {r['elapsed_seconds']:.1f}s"


def check_line(r: dict, epochs: int, rows: int) -> str:
    """``epoch 1/3 step 120 (rows 3840/12000)  val_loss ...``: a mid-epoch check of an epoch of ``rows`` rows."""
    return f"epoch {r['epoch']}/{epochs} step {r['step']} (rows {r['rows']}/{rows})" + _validation_part(r)


def _validation_part(r: dict) -> str:
    if "val_micro_f1" in r:
        return (
            f"  val_loss {r['val_loss']:.4f}  val_micro_f1 {r['val_micro_f1']:.4f}"
            f"  val_macro_f1 {r['val_macro_f1']:.4f}  val_subset_accuracy {r['val_subset_accuracy']:.4f}"
        )
    return (
        f"  val_loss {r['val_loss']:.4f}  val_accuracy {r['val_accuracy']:.4f}"
        f"  val_f1 {r['val_f1']:.4f}  val_mcc {r['val_mcc']:.4f}"
    )
