"""The fine-tuning loop: :func:`train`, read top to bottom.

Set up a run (:func:`~textclf.training.run.setup`: data, model, batches, optimizer, schedule,
state; their state from a checkpoint when resuming) -> for each epoch: one pass over this
process's batches (:func:`~textclf.training.epoch.train_epoch`: forward, backward, step; with
``evaluations_per_epoch`` n > 1, a mid-epoch check on the validation data at each k/n of the
epoch's rows (:meth:`~textclf.training.run.Run.check`); a checkpoint every N steps, or on
SIGINT/SIGTERM); evaluate; log a line and a JSON line (the checks in it); keep the best point's
weights (an epoch's end or a check); checkpoint -> write the model folder atomically.

Under torchrun every process runs :func:`train` on its share of each batch, the model in
DistributedDataParallel (:mod:`.distributed`); only rank 0 logs and writes. Checkpoints
(:mod:`.checkpoint`, :mod:`.state`) hold everything the loop depends on, so a resumed run ends
with the weights and metrics of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Hyperparameters, RunOptions
from ..data import ReadOptions
from ..progress import ProgressBar, log_stderr
from .distributed import World
from .epoch import train_epoch
from .records import epoch_line, epoch_record
from .run import Run, TrainingHooks, setup
from .state import Tally

__all__ = ["TrainResult", "train"]


@dataclass
class TrainResult:
    """What a training run produced: the folder and its metrics."""

    output: Path
    history: list[dict]
    best_epoch: int
    best: dict  # the best point's record: an epoch's, or a mid-epoch check's (with its ``step``)
    training_seconds: float  # the epochs' training passes (with sifting, scoring included); no validation
    total_seconds: float  # everything from loading the model to writing the folder (over resumed sessions)
    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters)  # those used, auto ones chosen
    auto: dict[str, str] = field(default_factory=dict)  # the names textclf chose, each with its reason


def train(
    data: str | Path,
    output: str | Path,
    *,
    model: str | Path | None = None,
    validation: str | Path | None = None,
    hyperparameters: Hyperparameters | None = None,
    read_options: ReadOptions | None = None,
    overwrite: bool = False,
    options: RunOptions | None = None,
    log: Callable[[str], None] = log_stderr,
    progress: bool | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    hooks: TrainingHooks | None = None,
    **overrides: Any,
) -> TrainResult:
    """Fine-tune ``model`` on ``data`` and write a model folder to ``output``.

    Hyperparameters come from ``hyperparameters`` with ``overrides`` applied, exactly as CLI
    flags apply over ``--hyperparameters FILE``; overrides named like a
    :class:`~textclf.config.RunOptions` field (``checkpoint_every_steps=100``, ``device="cuda"``)
    apply over ``options``. A rerun after an interruption continues from the newest checkpoint
    of the same job (see ``RunOptions.resume``); SIGINT or SIGTERM writes one and raises
    :class:`~textclf.errors.TrainingInterrupted`. ``on_epoch`` is called with each epoch's record
    (as written to ``metrics.jsonl``, its mid-epoch ``checks`` in it) once it is logged; an
    exception it raises stops training and leaves no output folder and no checkpoint (``textclf
    tune`` prunes trials this way).
    ``hooks`` (:class:`~textclf.training.run.TrainingHooks`) cut in after setup and after each
    optimizer step. Under torchrun every process calls ``train`` with the same arguments and gets
    the same records; rank 0 logs and writes.

        >>> import textclf
        >>> result = textclf.train("reviews.csv", "out/reviews", epochs=2)  # doctest: +SKIP
        >>> result.best["val_accuracy"]  # doctest: +SKIP
        0.91
    """
    run_names = {f.name for f in dataclasses.fields(RunOptions)}
    options = (options or RunOptions()).updated({k: overrides.pop(k) for k in list(overrides) if k in run_names})
    hp = (hyperparameters or Hyperparameters()).updated(overrides, source="train()")
    output = Path(output)
    with World.session(options.device, options.precision) as world:
        log, progress = (log, progress) if world.is_main else (_quiet, False)
        with ExitStack() as cleanup:
            run = setup(
                world,
                cleanup,
                data=data,
                validation=validation,
                read_options=read_options or ReadOptions(),
                model=model,
                output=output,
                overwrite=overwrite,
                hp=hp,
                options=options,
                log=log,
                hooks=hooks or TrainingHooks(),
            )
            hp, state, tracker = run.hp, run.state, run.state.tracker  # hp: with the auto values chosen
            for epoch in range(state.epoch, hp.epochs + 1):
                if hp.early_stopping and run.data.val_texts and tracker.stale_epochs >= hp.early_stopping_patience:
                    log(f"early stopping: {tracker.metric} has not improved for {tracker.stale_epochs} epoch(s)")
                    break
                state.epoch, state.tally = epoch, state.tally or Tally()
                run.batches.set_epoch(epoch, state.position)
                state.position, state.epoch_started = 0, time.perf_counter()
                with _progress_bar(run, epoch, progress) as bar:
                    tally = train_epoch(run.model, run.batches, run.epoch_pass(epoch, bar), state.tally)
                run.record_dynamics(tally)
                record = epoch_record(run, epoch, tally)
                run.append_record(record)
                log(epoch_line(record, hp.epochs))
                if on_epoch is not None:
                    _report(run, on_epoch, record)
                tracker.update(record, run.net if world.is_main else None)
                state.tally, state.checks = None, []
                if epoch < hp.epochs and run.checkpoints:
                    path = run.checkpoint()
                    if run.stopping():
                        raise run.stopped(path)
            best = run.finish()
        log(f"saved model folder to {output}")
        seconds = sum(h["train_seconds"] for h in state.history), time.perf_counter() - state.started
        return TrainResult(output, state.history, best["epoch"], best, *seconds, run.hp, run.auto)


def _progress_bar(run: Run, epoch: int, enabled: bool | None) -> ProgressBar:
    return ProgressBar(
        enabled,
        f"epoch {epoch}/{run.hp.epochs}",
        run.batches.total,
        completed=run.batches.produced,
        extra=("loss {task.fields[loss]:.4f}",),
        fields={"loss": float("nan")},
    )


def _report(run: Run, on_epoch: Callable[[dict], None], record: dict) -> None:
    """``on_epoch(record)``; an exception it raises stops the run on purpose: no checkpoint is left to resume."""
    try:
        on_epoch(record)
    except BaseException:
        if run.store is not None:
            run.store.discard()
        raise


def _quiet(message: str) -> None:
    """The log of every process but rank 0."""
