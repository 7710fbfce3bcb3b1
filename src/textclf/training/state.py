"""The state of a training run that a checkpoint holds, and the pieces of it the loop keeps.

:class:`BestEpoch` is the best point so far (an epoch's end or a mid-epoch check) and its
weights, :class:`Tally` one process's running sums over an epoch, and :class:`TrainingState`
puts them together with the model, optimizer, the batches (the data order: an epoch and a
position in it; sifting's state) and the random number generators: what all processes share
(written by rank 0) and what each holds for itself.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..errors import ConfigError
from . import checkpoint
from .checkpoint import Checkpoints
from .distributed import World

if TYPE_CHECKING:
    from .batches import TrainingBatches

__all__ = ["BestEpoch", "Tally", "TrainingState"]


class BestEpoch:
    """The best point so far by ``metric`` (val_accuracy; val_micro_f1 for multi-label) and its weights, and
    epochs since a gain above ``min_delta``.

    A point is an epoch's end (its record) or a check inside the epoch (``evaluations_per_epoch``,
    a record in the epoch's ``checks``); the best of all of them is kept. Early stopping counts
    epochs: an epoch is a gain when any of its points beats the best of the epochs before it
    (``bar``) by more than ``min_delta``. Without validation data the last epoch counts as the best.
    """

    def __init__(self, min_delta: float, metric: str = "val_accuracy"):
        self.min_delta, self.metric = min_delta, metric
        self.best: dict | None = None
        self.state: dict | None = None
        self.stale_epochs = 0
        self.bar: float | None = None  # the best score of the epochs before the one in progress
        self.gained = False  # a point of the epoch in progress beat ``bar`` by more than min_delta

    def consider(self, point: dict, net: torch.nn.Module | None) -> None:
        """Take a validated point (a check) into account; ``net``'s weights are kept if it is the best (None: keep
        no weights)."""
        score = point[self.metric]
        self.gained = self.gained or self.bar is None or score > self.bar + self.min_delta
        if self.best is None or score > self.best[self.metric]:
            self.best = point
            self.state = None if net is None else {k: v.detach().clone() for k, v in net.state_dict().items()}

    def update(self, record: dict, net: torch.nn.Module | None) -> None:
        """Take an epoch's ``record`` into account (its end is a point too) and close the epoch."""
        if record[self.metric] is None:
            self.best = record
            return
        self.consider(record, net)
        self.stale_epochs = 0 if self.gained else self.stale_epochs + 1
        self.bar, self.gained = self.best[self.metric], False

    def state_dict(self) -> dict:
        return {
            "best_epoch": None if self.best is None else self.best["epoch"],
            "best_step": None if self.best is None else self.best.get("step"),
            "stale_epochs": self.stale_epochs,
            "state": self.state,
            "bar": self.bar,
            "gained": self.gained,
        }

    def load_state_dict(self, state: dict, points: list[dict]) -> None:
        """Restore a :meth:`state_dict`; the best record becomes the entry of that point in ``points`` (the
        epochs' records and their checks). A checkpoint older than checks holds an epoch's record as the best."""
        where = (state["best_epoch"], state.get("best_step"))
        self.best = next((p for p in points if (p["epoch"], p.get("step")) == where), None)
        self.stale_epochs, self.state = state["stale_epochs"], state["state"]
        self.bar = state.get("bar", None if self.best is None else self.best[self.metric])
        self.gained = state.get("gained", False)


@dataclass
class Tally:
    """One process's running sums over an epoch."""

    loss: float = 0.0  # summed over the samples trained on
    rows: int = 0
    seconds: float = 0.0  # training time in earlier (interrupted) sessions of this epoch
    exhausted: bool = False  # this process's batches ran out (others may still have some)
    seen: list[int] = dataclasses.field(default_factory=list)  # the training rows trained on, in order
    seen_loss: list[float] = dataclasses.field(default_factory=list)  # their losses in the training pass


class TrainingState:
    """Everything the loop's outcome depends on, saved to and restored from checkpoints.

    Shared by all processes: the model, optimizer, step count, the epoch to run next or go on
    with, the history, the mid-epoch checks of the epoch in progress, the training dynamics of the
    epochs done and the best point. Each
    process's own: its random number generators, its position in the data order, its epoch
    tally, its sifting state.
    """

    def __init__(self, world: World, job: dict, net, optimizer, batches: TrainingBatches, tracker: BestEpoch):
        self.world, self.job, self.net, self.optimizer = world, job, net, optimizer
        self.batches, self.tracker = batches, tracker
        self.step, self.epoch, self.position = 0, 1, 0
        self.history: list[dict] = []
        self.tally: Tally | None = None  # the epoch in progress
        self.checks: list[dict] = []  # its mid-epoch checks so far
        self.dynamics: list[torch.Tensor] = []  # each epoch's p(given label) a training row (training_dynamics)
        self.started = time.perf_counter()  # less the time of earlier sessions, when resumed
        self.epoch_started = self.started  # when this session began the epoch in progress
        self._rng: dict | None = None

    def epoch_seconds(self, tally: Tally) -> float:
        """Seconds the epoch in progress has trained: earlier sessions' (``tally.seconds``) and this one's."""
        return tally.seconds + time.perf_counter() - self.epoch_started

    def save(self, store: Checkpoints | None) -> str:
        """A checkpoint of every process's state, written by rank 0; its path, in every process.

        With a tally the epoch is in progress (``self.epoch``); without, it is done and the
        checkpoint resumes at the start of the next.
        """
        tally = self.tally and dataclasses.replace(self.tally, seconds=self.epoch_seconds(self.tally))
        mine = {
            "rng": checkpoint.rng_state(self.world.device),
            "position": self.batches.position if tally else 0,
            "tally": dataclasses.asdict(tally) if tally else None,
            "sifting": self.batches.state_dict(),
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
                    "checks": self.checks,
                    "dynamics": self.dynamics,
                    "tracker": self.tracker.state_dict(),
                    "processes": everyone,
                },
                self.step,
            )
        return str(self.world.broadcast(path))  # the others wait for the file

    def load(self, state: dict) -> None:
        """Take the state of a checkpoint (random number generators only in :meth:`resume_rng`)."""
        # the values set were compared in checkpoint.open_for; those chosen are known only now
        chosen, before = self.job.get("auto", {}), state["job"].get("auto", {})
        for name, value in before.items():
            if chosen.get(name, value) != value:
                raise ConfigError(
                    f"the checkpoint to resume from chose {name} {value:g} and this run chooses "
                    f"{chosen[name]:g} (textclf's rule changed since); pass --{name.replace('_', '-')} {value:g} "
                    "to resume it, or --no-resume to start afresh."
                )
        self.net.load_state_dict(state["model"])
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except ValueError as exc:  # another layout of parameter groups: a checkpoint of an older textclf
            raise ConfigError(
                f"the checkpoint to resume from holds optimizer state of another shape ({exc}); "
                "pass --no-resume to start afresh."
            ) from exc
        self.history, self.checks = state["history"], state.get("checks", [])
        self.dynamics = list(state.get("dynamics", []))
        if not self.world.is_main:  # only rank 0 keeps the best point's weights
            state["tracker"] = {**state["tracker"], "state": None}
        points = [*self.history, *(c for r in self.history for c in r.get("checks", ())), *self.checks]
        self.tracker.load_state_dict(state["tracker"], points)
        self.step, self.epoch = state["step"], state["epoch"]
        self.started -= state["elapsed_seconds"]
        mine = state["processes"][self.world.rank]
        self.batches.load_state_dict(checkpoint.to_device(mine["sifting"], self.world.device))
        self.position, self._rng = mine["position"], mine["rng"]
        self.tally = Tally(**mine["tally"]) if mine["tally"] else None

    def resume_rng(self) -> None:
        """Put the random number generators where the checkpoint left them: last, just before training goes on."""
        if self._rng is not None:
            checkpoint.restore_rng(self._rng, self.world.device)
            self._rng = None
