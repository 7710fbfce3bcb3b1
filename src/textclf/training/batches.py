"""The training batches: length-grouped and sharded over the processes, sifted or not, from one factory.

:func:`make_batches` builds a run's :class:`TrainingBatches` from its hyperparameters: the
length-grouped, padded batches of :class:`EpochBatches` (each process its share), and with
``sifting`` a :class:`~textclf.training.sifting.SiftingDataLoader` over candidates of
:data:`SIFTING_CANDIDATES` batches, scored :data:`SIFTING_SCORING_BATCHES` batches at a time. The
loop sees one object either way: it iterates it, starts each pass with ``set_epoch``, and reads
how far into the data a pass is (``produced``), whether sifting has begun and its counts.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..batching import collate, length_grouped_batches
from ..config import Hyperparameters
from .distributed import World
from .epoch import logits_of, per_sample_loss
from .sifting import SiftingConfig, SiftingDataLoader, SiftingStats, sifted_learning_rate

__all__ = ["SIFTING_CANDIDATES", "SIFTING_SCORING_BATCHES", "EpochBatches", "TrainingBatches", "make_batches"]

SIFTING_CANDIDATES = 16
"""With sifting, candidates are this many training batches of rows of similar length (a slice of
a length-sorted mega-batch; candidates come in random order like unsifted batches). At beta 1
about half of each is kept and cut into full training batches, so few batches join the kept rows
of two candidates (padded to the longer): 14.1 padded tokens per kept SST-2 row, against 16.1
with candidates of 4 batches and 13.95 unsifted (simulated on the SST-2 train lengths). A
candidate's rows come sorted by length, so its training batches are trained in random order
(``shuffle_batches``), not from long to short."""
SIFTING_SCORING_BATCHES = 4
"""Candidates are scored this many training batches at a time: on 2 CPU cores under bfloat16,
128 rows a forward pass scored about 1.3x as fast as 32 (920 against 629-736 rows/s) and as 512
(631 against 492 rows/s)."""


def make_batches(
    hp: Hyperparameters,
    ids: list[list[int]],
    labels: np.ndarray,  # targets: class ids, or a 0/1 row a text (multi-label)
    padding: tuple[int, bool],
    world: World,
    model: torch.nn.Module,
) -> TrainingBatches:
    """This process's training batches under ``hp``; with ``hp.sifting`` each process sifts its own
    share (seeded ``hp.seed + rank``), scoring with ``model``. ``padding``: (pad id, pad on the left)."""
    data = EpochBatches(
        ids,
        labels,
        hp.batch_size * (SIFTING_CANDIDATES if hp.sifting else 1),
        padding,
        hp.seed,
        shard=(world.rank, world.size),
        device=world.device,
    )
    if not hp.sifting:
        return TrainingBatches(data)
    config = SiftingConfig.from_hyperparameters(hp, seed=hp.seed + world.rank)
    sifter = SiftingDataLoader(
        data,
        model,
        per_sample_loss,
        config,
        batch_size=hp.batch_size,
        pad_values={"input_ids": padding[0]},
        padding_side="left" if padding[1] else "right",
        forward=logits_of,
        scoring_batch_size=hp.batch_size * SIFTING_SCORING_BATCHES,
        shuffle_batches=True,
    )
    return TrainingBatches(data, sifter, sifted_learning_rate(config, hp.sifting_lr_scaling))


class TrainingBatches:
    """A run's batches, pass by pass: ``data``'s, or with a ``sifter`` the ones it keeps of them.

    ``sifted_rate`` is the learning-rate factor of steps on sifted batches. The sifter's state
    (:meth:`state_dict`) and ``data``'s position are what a checkpoint needs to go on mid-pass.
    """

    def __init__(self, data: EpochBatches, sifter: SiftingDataLoader | None = None, sifted_rate: float = 1.0):
        self.data, self.sifter, self.sifted_rate = data, sifter, sifted_rate

    def set_epoch(self, epoch: int, position: int = 0) -> None:
        self.data.set_epoch(epoch, position)

    def __iter__(self) -> Iterator[dict]:
        return iter(self.data if self.sifter is None else self.sifter)

    @property
    def produced(self) -> int:
        """Rows of the data this process consumed so far in the pass (sifted out or not)."""
        return self.data.produced

    @property
    def total(self) -> int:
        return self.data.total

    @property
    def position(self) -> int:
        return self.data.position

    @property
    def sifting_started(self) -> bool:
        return self.sifter is not None and self.sifter.sifting_started

    @property
    def stats(self) -> SiftingStats | None:
        """The pass's sifting counts (None: no sifting)."""
        return None if self.sifter is None else self.sifter.stats

    def state_dict(self) -> dict | None:
        return None if self.sifter is None else self.sifter.state_dict()

    def load_state_dict(self, state: dict | None) -> None:
        if self.sifter is not None:
            self.sifter.load_state_dict(state)


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
        labels: np.ndarray,  # targets: class ids, or a 0/1 row a text (multi-label)
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
                "rows": torch.from_numpy(np.asarray(rows, dtype=np.int64)),  # which training rows (training dynamics)
            }
