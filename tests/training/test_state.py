"""BestEpoch: the best point over epochs and mid-epoch checks, early stopping counted in epochs, old checkpoints."""

from __future__ import annotations

import torch

from textclf.training.state import BestEpoch


def point(epoch: int, accuracy: float, step: int | None = None) -> dict:
    at = {"epoch": epoch} if step is None else {"epoch": epoch, "step": step, "rows": 10}
    return {**at, "val_loss": 1 - accuracy, "val_accuracy": accuracy, "val_f1": accuracy, "val_mcc": 0.0}


def test_a_check_can_be_the_best_and_an_epoch_gains_if_any_of_its_points_does():
    net = torch.nn.Linear(2, 2)
    tracker = BestEpoch(min_delta=0.05)
    tracker.update(point(1, 0.60), net)
    check = point(2, 0.70, step=15)
    with torch.no_grad():
        net.weight.fill_(7.0)
    tracker.consider(check, net)
    with torch.no_grad():
        net.weight.fill_(-1.0)  # the epoch's end is worse than its check
    tracker.update(point(2, 0.62), net)
    assert tracker.best is check and tracker.stale_epochs == 0  # 0.70 beat epoch 1's 0.60 by more than 0.05
    assert torch.equal(tracker.state["weight"], torch.full((2, 2), 7.0))
    tracker.consider(point(3, 0.68, step=28), net)
    end = point(3, 0.71)
    tracker.update(end, net)
    assert tracker.best is end and tracker.stale_epochs == 1  # best, but not by more than 0.05 over 0.70


def test_the_best_point_is_restored_from_its_state_and_an_old_checkpoints_too():
    history = [point(1, 0.6), {**point(2, 0.62), "checks": [point(2, 0.7, step=15)]}]
    in_progress = [point(3, 0.9, step=28)]
    points = [*history, *history[1]["checks"], *in_progress]

    tracker = BestEpoch(0.05)
    tracker.update(history[0], None)
    tracker.consider(history[1]["checks"][0], None)
    tracker.update(history[1], None)
    tracker.consider(in_progress[0], None)
    restored = BestEpoch(0.05)
    restored.load_state_dict(tracker.state_dict(), points)
    assert restored.best is in_progress[0] and (restored.bar, restored.gained) == (0.7, True)

    old = {"best_epoch": 2, "stale_epochs": 1, "state": None}  # written before mid-epoch checks
    restored.load_state_dict(old, history)
    assert restored.best is history[1] and (restored.bar, restored.gained, restored.stale_epochs) == (0.62, False, 1)
