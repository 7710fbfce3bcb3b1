"""One pass over this process's batches: forward, backward, and an optimizer step every few micro-batches.

:func:`train_epoch` runs the pass; :class:`EpochPass` holds what it needs besides the model and
the batches (the optimizer, accumulation, schedule, processes); :func:`optimizer_step` is the
step itself (gradients averaged per row, clipped, applied). The loss is :func:`per_sample_loss`
of :func:`logits_of`, which sifting's scoring pass uses too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Protocol

import torch

from ..models import forward_logits
from .distributed import World
from .schedule import LinearSchedule
from .state import Tally

__all__ = ["MAX_GRAD_NORM", "Batches", "EpochPass", "logits_of", "optimizer_step", "per_sample_loss", "train_epoch"]

MAX_GRAD_NORM = 1.0


class Batches(Protocol):
    """What :func:`train_epoch` goes through (:class:`~textclf.training.batches.TrainingBatches` is one)."""

    produced: int  # rows of the data this process consumed so far in the pass (sifted out or not)
    sifting_started: bool  # the batch just yielded holds sifted rows

    def __iter__(self) -> Iterator[dict]: ...


@dataclass
class EpochPass:
    """What one pass needs besides the model and its batches, and what it calls after each optimizer step.

    The learning rate of a step is ``schedule``'s at ``(rows_before + rows consumed in this
    pass) / rows_total`` (rows of all processes), times ``sifted_rate`` when any process's last
    micro-batch held sifted rows. Without a schedule the optimizer's rate is left as it is.
    """

    optimizer: torch.optim.Optimizer
    accumulation: int = 1  # micro-batches per optimizer step
    world: World = field(default_factory=World)
    schedule: LinearSchedule | None = None
    rows_before: int = 0  # rows of the data consumed in earlier passes
    rows_total: int = 1  # rows of the data in the whole run
    sifted_rate: float = 1.0
    max_grad_norm: float = MAX_GRAD_NORM
    idle_batch: dict | None = None  # a process whose batches ran out trains on this with a zero gradient
    advance: Callable[[float], None] | None = None  # each micro-batch's mean loss (a progress bar)
    after_step: Callable[[float], None] | None = None  # called with the rows consumed in this pass (all processes)

    def step(self, model: torch.nn.Module, rows: float, consumed: float, sifted: bool) -> None:
        """Set the step's learning rate, take the step for ``rows`` rows a process, then ``after_step(consumed)``."""
        if self.schedule is not None:
            self.schedule.set((self.rows_before + consumed) / self.rows_total, self.sifted_rate if sifted else 1.0)
        optimizer_step(model, self.optimizer, rows, self.max_grad_norm)
        if self.after_step is not None:
            self.after_step(consumed)


def train_epoch(model: torch.nn.Module, batches: Batches, steps: EpochPass, tally: Tally | None = None) -> Tally:
    """One pass over this process's ``batches``; returns its running sums (``tally``, continued when given).

    Every sample of an optimizer step weighs the same, in every process: losses are summed over
    the ``accumulation`` micro-batches of a group, and at the step the gradients (averaged over
    the processes by DDP) are divided by the group's rows per process, so short batches, a
    short last group and uneven shards are weighted correctly.

    Processes go in lockstep: before each micro-batch they agree (one all-reduce) whether any
    still has one, how many rows of the data they consumed and whether any batch was sifted;
    one whose batches ran out (sifting keeps different shares) joins each of the others'
    micro-batches with a zero-gradient pass of ``idle_batch``, so all take the same optimizer
    steps and DDP's forward, which can hold a collective of its own (its first bucket rebuild,
    after a resume), runs in every process.
    """
    world, tally = steps.world, tally or Tally()
    model.train()
    pending = iter(batches)
    in_group, group_rows, consumed, any_sifted = 0, 0, 0.0, False
    while True:
        batch = None if tally.exhausted else next(pending, None)
        tally.exhausted = batch is None
        rows = 0 if batch is None else len(batch["labels"])
        active, total_rows, consumed, sifted = world.agree(
            float(rows > 0), rows, batches.produced, float(batches.sifting_started)
        )
        if not active:
            break
        any_sifted = sifted > 0
        in_group, group_rows = in_group + 1, group_rows + total_rows
        sync = in_group == steps.accumulation
        with world.no_sync(model, skip=not sync):
            if rows:
                losses = per_sample_loss(logits_of(model, batch, world), batch["labels"])
                losses.sum().backward()
            else:  # only with other processes (active): join their forward, which can hold a collective
                _zero_pass(model, steps.idle_batch, world)
        if rows:
            value = losses.detach().sum().item()
            tally.loss, tally.rows = tally.loss + value, tally.rows + rows
            if "rows" in batch:  # the training dynamics: each row's loss as this pass saw it
                tally.seen.extend(batch["rows"].tolist())
                tally.seen_loss.extend(losses.detach().tolist())
            if steps.advance is not None:
                steps.advance(value / rows)
        if sync:
            steps.step(model, group_rows / world.size, consumed, any_sifted)
            in_group, group_rows = 0, 0
    if in_group:
        if world.size > 1:  # the group's last backward pass did not synchronise: one that does
            _zero_pass(model, steps.idle_batch, world)
        steps.step(model, group_rows / world.size, consumed, any_sifted)
    return tally


def optimizer_step(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, rows: float, max_grad_norm: float = MAX_GRAD_NORM
) -> None:
    """Divide the summed gradients by ``rows``, clip their norm to ``max_grad_norm``, step, and zero them."""
    for param in model.parameters():
        if param.grad is not None:
            param.grad.div_(rows)
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def logits_of(model: torch.nn.Module, batch: dict, world: World | None = None) -> torch.Tensor:
    """The model's logits for a batch, under bfloat16 autocast where ``world``'s device has it."""
    with world.autocast() if world is not None else nullcontext():
        return forward_logits(model, batch["input_ids"], batch["attention_mask"])


def per_sample_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each row's loss, in float32: cross-entropy against a class id, or for multi-label targets (a 0/1 row a
    text) binary cross-entropy summed over the labels."""
    if labels.ndim == 2:
        losses = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels, reduction="none")
        return losses.sum(dim=1)
    return torch.nn.functional.cross_entropy(logits.float(), labels, reduction="none")


def _zero_pass(model: torch.nn.Module, idle_batch: dict, world: World) -> None:
    """A forward and backward pass that adds nothing to the gradients but takes part in DDP's synchronisation."""
    (logits_of(model, idle_batch, world).sum() * 0.0).backward()
