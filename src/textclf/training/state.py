"""The state of a training run that a checkpoint holds, and the pieces of it the loop keeps.

:class:`EpochBatches` is the data order (each pass's batches follow from the seed, so an epoch
and a position in it are all it needs), :class:`BestEpoch` the best epoch so far and its
weights, :class:`Tally` one process's running sums over an epoch, and :class:`TrainingState`
puts them together with the model, optimizer, sifting and random number generators: what all
processes share (written by rank 0) and what each holds for itself.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..batching import collate, length_grouped_batches
from . import checkpoint
from .checkpoint import Checkpoints
from .distributed import World

__all__ = ["BestEpoch", "EpochBatches", "Tally", "TrainingState"]


class EpochBatches:
    """This process's share of the length-grouped, padded training batches, pass by pass.

    Every process draws the same batches of ``batch_size`` x processes rows (pass ``e``'s order
    is the ``e``-th drawn from ``default_rng(seed)``) and keeps every processes-th row of each,
    so together they train on what one process with the whole batch would. ``set_epoch(e,
    position)`` starts pass ``e`` at any batch: (epoch, position) is all it takes to resume the
    data order. ``produced`` counts this process's rows so far in the pass, ``total`` all of them.
    """

    def __init__(
        self,
        ids: list[list[int]],
        labels: list[int],
        batch_size: int,
        padding: tuple[int, bool],
        seed: int,
        shard: tuple[int, int] = (0, 1),
        device: torch.device | str = "cpu",
    ):
        self.ids, self.labels = ids, np.asarray(labels)
        self.lengths = [len(x) for x in ids]
        self.batch_size, self.padding, self.seed = batch_size, padding, seed
        self.rank, self.processes = shard
        self.device = device
        self._rng, self._drawn, self._plan = np.random.default_rng(seed), 0, []
        self.position = self.produced = self.total = 0

    def set_epoch(self, epoch: int, position: int = 0) -> None:
        if self._drawn > epoch:  # an earlier pass: draw again from the start
            self._rng, self._drawn = np.random.default_rng(self.seed), 0
        while self._drawn < epoch:
            batches = length_grouped_batches(self.lengths, self.batch_size * self.processes, self._rng)
            self._plan = [rows[self.rank :: self.processes] for rows in batches]
            self._drawn += 1
        self.position = position
        self.produced = sum(len(rows) for rows in self._plan[:position])
        self.total = sum(len(rows) for rows in self._plan)

    def __iter__(self) -> Iterator[dict]:
        while self.position < len(self._plan):
            rows = self._plan[self.position]
            self.position += 1
            if not len(rows):  # a last batch with fewer rows than processes
                continue
            self.produced += len(rows)
            batch = collate(self.ids, rows, *self.padding)
            yield {
                "input_ids": batch.input_ids.to(self.device),
                "attention_mask": batch.attention_mask.to(self.device),
                "labels": torch.from_numpy(self.labels[rows]).to(self.device),
            }


class BestEpoch:
    """The best epoch by val_accuracy and its weights, and epochs since a gain above ``min_delta``.

    Without validation data the last epoch counts as the best.
    """

    def __init__(self, min_delta: float):
        self.min_delta = min_delta
        self.best: dict | None = None
        self.state: dict | None = None
        self.stale_epochs = 0

    def update(self, record: dict, net: torch.nn.Module | None) -> None:
        """Take ``record`` into account; ``net``'s weights are kept if it is the best (None: keep no weights)."""
        score = record["val_accuracy"]
        if score is None:
            self.best = record
            return
        bar = None if self.best is None else self.best["val_accuracy"]
        self.stale_epochs = 0 if bar is None or score > bar + self.min_delta else self.stale_epochs + 1
        if bar is None or score > bar:
            self.best = record
            self.state = None if net is None else {k: v.detach().clone() for k, v in net.state_dict().items()}

    def state_dict(self) -> dict:
        return {
            "best_epoch": None if self.best is None else self.best["epoch"],
            "stale_epochs": self.stale_epochs,
            "state": self.state,
        }

    def load_state_dict(self, state: dict, history: list[dict]) -> None:
        """Restore a :meth:`state_dict`; the best record becomes ``history``'s entry of that epoch."""
        self.best = next((r for r in history if r["epoch"] == state["best_epoch"]), None)
        self.stale_epochs, self.state = state["stale_epochs"], state["state"]


@dataclass
class Tally:
    """One process's running sums over an epoch."""

    loss: float = 0.0  # summed over the samples trained on
    rows: int = 0
    seconds: float = 0.0  # training time in earlier (interrupted) sessions of this epoch
    exhausted: bool = False  # this process's batches ran out (others may still have some)


class TrainingState:
    """Everything the loop's outcome depends on, saved to and restored from checkpoints.

    Shared by all processes: the model, optimizer, step count, the epoch to run next or go on
    with, the history and the best epoch. Each process's own: its random number generators, its
    position in the data order, its epoch tally, its sifting state.
    """

    def __init__(
        self, world: World, job: dict, net, optimizer, epoch_batches: EpochBatches, sifted, tracker: BestEpoch
    ):
        self.world, self.job, self.net, self.optimizer = world, job, net, optimizer
        self.epoch_batches, self.sifted, self.tracker = epoch_batches, sifted, tracker
        self.step, self.epoch, self.position = 0, 1, 0
        self.history: list[dict] = []
        self.tally: Tally | None = None  # the epoch in progress
        self.started = time.perf_counter()  # less the time of earlier sessions, when resumed
        self._rng: dict | None = None

    def save(self, store: Checkpoints | None, epoch_started: float) -> str:
        """A checkpoint of every process's state, written by rank 0; its path, in every process.

        With a tally the epoch is in progress (``self.epoch``); without, it is done and the
        checkpoint resumes at the start of the next.
        """
        tally = self.tally and dataclasses.replace(
            self.tally, seconds=self.tally.seconds + time.perf_counter() - epoch_started
        )
        mine = {
            "rng": checkpoint.rng_state(self.world.device),
            "position": self.epoch_batches.position if tally else 0,
            "tally": dataclasses.asdict(tally) if tally else None,
            "sifting": self.sifted.state_dict() if self.sifted is not None else None,
        }
        everyone = self.world.gather_to_main(checkpoint.to_device(mine, "cpu"))
        path = None
        if self.world.is_main:
            path = store.save(
                {
                    "format_version": checkpoint.FORMAT_VERSION,
                    "job": self.job,
                    "step": self.step,
                    "epoch": self.epoch if tally else self.epoch + 1,
                    "elapsed_seconds": time.perf_counter() - self.started,
                    "model": self.net.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "history": self.history,
                    "tracker": self.tracker.state_dict(),
                    "processes": everyone,
                },
                self.step,
            )
        return str(self.world.broadcast(path))  # the others wait for the file

    def load(self, state: dict) -> None:
        """Take the state of a checkpoint (random number generators only in :meth:`resume_rng`)."""
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.history = state["history"]
        if not self.world.is_main:  # only rank 0 keeps the best epoch's weights
            state["tracker"] = {**state["tracker"], "state": None}
        self.tracker.load_state_dict(state["tracker"], self.history)
        self.step, self.epoch = state["step"], state["epoch"]
        self.started -= state["elapsed_seconds"]
        mine = state["processes"][self.world.rank]
        if self.sifted is not None:
            self.sifted.load_state_dict(checkpoint.to_device(mine["sifting"], self.world.device))
        self.position, self._rng = mine["position"], mine["rng"]
        self.tally = Tally(**mine["tally"]) if mine["tally"] else None

    def resume_rng(self) -> None:
        """Put the random number generators where the checkpoint left them: last, just before training goes on."""
        if self._rng is not None:
            checkpoint.restore_rng(self._rng, self.world.device)
            self._rng = None
