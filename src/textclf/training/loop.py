"""The fine-tuning loop: one function, read top to bottom.

setup (data, model, optimizer, schedule; their state from a checkpoint when resuming) -> for
each epoch: this process's length-grouped batches, forward, backward, step (a checkpoint every
N steps, or on SIGINT/SIGTERM); evaluate; log a line and a JSON line; keep the best epoch's
weights; checkpoint -> write the model folder atomically.

Under torchrun every process runs this function on its share of each batch, the model in
DistributedDataParallel (:mod:`.distributed`); only rank 0 logs and writes. Checkpoints
(:mod:`.checkpoint`, :mod:`.state`) hold everything the loop depends on, so a resumed run ends
with the weights and metrics of an uninterrupted one. The module also holds one epoch's pass
(:func:`_train_epoch`), the optimizer step and the learning-rate schedule, which is why it runs
a little over 400 lines.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import artifact
from ..backends import TorchBackend
from ..batching import encode
from ..config import Hyperparameters, RunOptions
from ..data import LabelSet, ReadOptions, load_training_data
from ..errors import ConfigError, TrainingInterrupted
from ..inference import Classifier, TextEncoder
from ..models import (
    ModelSource,
    check_max_length,
    forward_logits,
    head_parameter_names,
    load_for_training,
    pads_left,
    quiet_transformers,
    resolve_model,
)
from ..plots import plot_curves
from ..progress import ProgressBar, log_stderr
from ..sifting import SiftingConfig, SiftingDataLoader
from . import checkpoint
from .checkpoint import Checkpoints, StopSignals
from .distributed import World
from .records import epoch_line, training_figures, validation_metrics
from .state import BestEpoch, EpochBatches, Tally, TrainingState

__all__ = ["TrainResult", "train"]

MAX_GRAD_NORM = 1.0
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


@dataclass
class TrainResult:
    """What a training run produced: the folder and its metrics."""

    output: Path
    history: list[dict]
    best_epoch: int
    best: dict
    training_seconds: float  # the epochs' training passes (with sifting, scoring included); no validation
    total_seconds: float  # everything from loading the model to writing the folder (over resumed sessions)


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
    **overrides: Any,
) -> TrainResult:
    """Fine-tune ``model`` on ``data`` and write a model folder to ``output``.

    Hyperparameters come from ``hyperparameters`` with ``overrides`` applied, exactly as CLI
    flags apply over ``--hyperparameters FILE``; overrides named like a
    :class:`~textclf.config.RunOptions` field (``checkpoint_every_steps=100``, ``device="cuda"``)
    apply over ``options``. A rerun after an interruption continues from the newest checkpoint
    of the same job (see ``RunOptions.resume``); SIGINT or SIGTERM writes one and raises
    :class:`~textclf.errors.TrainingInterrupted`. ``on_epoch`` is called with each epoch's record
    (as written to ``metrics.jsonl``) once it is logged; an exception it raises stops training
    and leaves no output folder and no checkpoint (``textclf tune`` prunes trials this way).
    Under torchrun every process calls ``train`` with the same arguments and gets the same
    records; rank 0 logs and writes.

        >>> import textclf
        >>> result = textclf.train("reviews.csv", "out/reviews", epochs=2)  # doctest: +SKIP
        >>> result.best["val_accuracy"]  # doctest: +SKIP
        0.91
    """
    run_names = {f.name for f in dataclasses.fields(RunOptions)}
    options = (options or RunOptions()).updated({k: overrides.pop(k) for k in list(overrides) if k in run_names})
    hp = (hyperparameters or Hyperparameters()).updated(overrides, source="train()")
    world = World.start(options.device)
    try:
        result = _train(
            world,
            data,
            Path(output),
            model,
            validation,
            hp,
            options,
            read_options or ReadOptions(),
            overwrite,
            log if world.is_main else _quiet,
            progress if world.is_main else False,
            on_epoch,
        )
    except BaseException:
        world.close(finished=False)
        raise
    world.close()
    return result


def _train(
    world: World,
    data,
    output: Path,
    model,
    validation,
    hp: Hyperparameters,
    options: RunOptions,
    read_options: ReadOptions,
    overwrite: bool,
    log,
    progress,
    on_epoch,
) -> TrainResult:
    world.on_main(lambda: artifact.check_output(output, overwrite))
    source = resolve_model(model)
    fixed_labels = _artifact_labels(source) if hp.reinitialize_top_layer != "true" else None
    hint = " Pass --reinitialize-top-layer true to train a new head for these labels." if fixed_labels else ""
    td = load_training_data(data, validation, read_options, hp.validation_split_ratio, hp.seed, fixed_labels, hint)
    for note in td.summary["notes"]:
        log(note)
    job = checkpoint.job_identity(data, validation, read_options, source, hp, world.size)

    with ExitStack() as cleanup:
        store, resume_from = checkpoint.open_for(output, options, job, world, log, cleanup)
        net, tokenizer, head_reused = _load_model(source, td.labels, hp, options, world)
        train_ids = encode(tokenizer, td.train_texts, hp.max_seq_length)
        val_ids = encode(tokenizer, td.val_texts, hp.max_seq_length)
        pad_id, left = tokenizer.pad_token_id, pads_left(net.config, tokenizer)
        epoch_batches = EpochBatches(
            train_ids,
            td.train_labels,
            hp.batch_size * (SIFTING_CANDIDATES if hp.sifting else 1),
            (pad_id, left),
            hp.seed,
            shard=(world.rank, world.size),
            device=world.device,
        )
        batches: Iterable[dict] = epoch_batches
        sifted_lr = 1.0
        if hp.sifting:  # each process sifts its own shard (scoring precision: sifting_scoring_dtype)
            sifting = SiftingConfig(
                hp.sifting_beta,
                hp.sifting_loss_history_length,
                hp.sifting_delay,
                hp.seed + world.rank,
                hp.sifting_scoring_dtype,
                hp.sifting_min_keep_probability,
            )
            batches = SiftingDataLoader(
                epoch_batches,
                net,
                _per_sample_loss,
                sifting,
                batch_size=hp.batch_size,
                pad_values={"input_ids": pad_id},
                padding_side="left" if left else "right",
                forward=_logits_of,
                scoring_batch_size=hp.batch_size * SIFTING_SCORING_BATCHES,
                shuffle_batches=True,
            )
            sifted_lr = _sifted_learning_rate(sifting, hp.sifting_lr_scaling)
        optimizer = torch.optim.AdamW(_param_groups(net, hp.weight_decay), lr=hp.learning_rate, fused=True)
        total_rows = len(train_ids) * hp.epochs
        schedule = _LinearSchedule(optimizer, hp.learning_rate, hp.warmup_ratio)
        tracker = BestEpoch(hp.early_stopping_min_delta)
        run = TrainingState(world, job, net, optimizer, epoch_batches, batches if hp.sifting else None, tracker)
        if resume_from is not None:
            run.load(resume_from)
        model = world.wrap(net)
        idle = {
            "input_ids": torch.full((1, 1), pad_id, device=world.device),
            "attention_mask": torch.ones(1, 1, dtype=torch.long, device=world.device),
        }
        validator = Classifier(
            TorchBackend(net, torch.bfloat16 if world.bf16 else None),
            TextEncoder.from_tokenizer(tokenizer, hp.max_seq_length, left),
            td.labels,
        )

        trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
        log(
            f"training {source.display_name} on {td.summary['train_rows']} rows, validating on "
            f"{td.summary['validation_rows']}; {len(td.labels)} classes; {trainable:,} trainable parameters"
            + ("; continuing from the model's head" if head_reused else "")
            + (f"; {world.size} processes, {_effective_batch(hp, world)} samples per step" if world.size > 1 else "")
            + (f"; {world.device} {world.precision}" if world.device.type != "cpu" else "")
        )
        history = run.history
        checkpoints = options.keep_checkpoints > 0
        in_stage = options.checkpoint_dir is None  # the default: checkpoints live in the staging folder
        keep = lambda exc: in_stage and store is not None and store.latest() is not None  # noqa: E731 - resumable work
        stage = None
        if world.is_main:
            stage = cleanup.enter_context(
                artifact.staging(output, overwrite, store.folder.parent if store and in_stage else None, keep)
            )
            if store is None and checkpoints:
                store = cleanup.enter_context(Checkpoints(stage / checkpoint.FOLDER, options.keep_checkpoints))
            (stage / artifact.METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in history), encoding="utf-8")
        stop = cleanup.enter_context(StopSignals(checkpoints, announce=log is log_stderr))
        run.resume_rng()
        for epoch in range(run.epoch, hp.epochs + 1):
            if hp.early_stopping and td.val_texts and tracker.stale_epochs >= hp.early_stopping_patience:
                log(f"early stopping: val_accuracy has not improved for {tracker.stale_epochs} epoch(s)")
                break
            run.epoch, run.tally = epoch, run.tally or Tally()
            epoch_batches.set_epoch(epoch, run.position)
            run.position, epoch_started, done_before = 0, time.perf_counter(), (epoch - 1) * len(train_ids)

            def after_step() -> None:
                run.step += 1
                stopping = stop.enabled and world.any(stop.requested is not None)
                if stopping or (
                    checkpoints and options.checkpoint_every_steps and run.step % options.checkpoint_every_steps == 0
                ):
                    path = run.save(store, epoch_started)
                    if stopping:
                        raise _stopped(stop, run, hp.epochs, path)

            with ProgressBar(
                progress,
                f"epoch {epoch}/{hp.epochs}",
                epoch_batches.total,
                completed=epoch_batches.produced,
                extra=("loss {task.fields[loss]:.4f}",),
                fields={"loss": float("nan")},
            ) as advance:
                tally = _train_epoch(
                    model,
                    batches,
                    optimizer,
                    hp.gradient_accumulation_steps,
                    lambda consumed, sifted: schedule.set(
                        (done_before + consumed) / total_rows, sifted_lr if sifted else 1.0
                    ),
                    lambda loss: advance(epoch_batches.produced, loss=loss),
                    world=world,
                    tally=run.tally,
                    consumed=lambda: epoch_batches.produced,
                    after_step=after_step,
                    idle_batch=idle,
                    sifted=(lambda: batches.sifting_started) if hp.sifting else (lambda: False),
                )
            trained = training_figures(
                world, tally, batches.stats if hp.sifting else None, tally.seconds + time.perf_counter() - epoch_started
            )
            record = {
                "epoch": epoch,
                "train_loss": trained.pop("train_loss"),
                **validation_metrics(validator, val_ids, td.val_labels, world),
                **trained,
                "elapsed_seconds": time.perf_counter() - run.started,
            }
            history.append(record)
            if stage is not None:
                with (stage / artifact.METRICS_FILE).open("a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
            log(epoch_line(record, hp.epochs))
            if on_epoch is not None:
                try:
                    on_epoch(record)
                except BaseException:
                    if store is not None:
                        store.discard()  # stopped on purpose: nothing to resume
                    raise
            tracker.update(record, net if world.is_main else None)
            run.tally = None
            if epoch < hp.epochs and checkpoints:
                path = run.save(store, epoch_started)
                if stop.enabled and world.any(stop.requested is not None):
                    raise _stopped(stop, run, hp.epochs, path)

        best = tracker.best
        if world.is_main:
            if best is not history[-1]:
                net.load_state_dict(tracker.state)
                log(f"keeping epoch {best['epoch']} (best val_accuracy {best['val_accuracy']:.4f})")
            _write_folder(stage, net, tokenizer, history, best, source, td, hp, options, world, output.name)
            if store is not None:
                store.clear()  # before the staging folder becomes the output
    log(f"saved model folder to {output}")
    training_seconds = sum(h["train_seconds"] for h in history)
    return TrainResult(output, history, best["epoch"], best, training_seconds, time.perf_counter() - run.started)


def _load_model(source: ModelSource, labels: LabelSet, hp: Hyperparameters, options: RunOptions, world: World):
    """(model on this process's device, tokenizer, head_reused); seeded alike in every process, then each
    process's random number generator is its own (dropout; the weights are rank 0's, which DDP copies)."""
    _seed_everything(hp.seed)
    net, tokenizer, head_reused = load_for_training(source, labels, hp.reinitialize_top_layer)
    net.to(world.device)
    check_max_length(net.config, tokenizer, hp.max_seq_length)
    if hp.train_only_top_layer:
        head = set(head_parameter_names(net))
        for name, param in net.named_parameters():
            param.requires_grad_(name in head)
    if options.gradient_checkpointing:
        _enable_gradient_checkpointing(net)
    if world.rank:
        torch.manual_seed(hp.seed + world.rank)
    return net, tokenizer, head_reused


def _effective_batch(hp: Hyperparameters, world: World) -> int:
    return hp.batch_size * hp.gradient_accumulation_steps * world.size


def _write_folder(
    stage: Path,
    net,
    tokenizer,
    history: list[dict],
    best: dict,
    source: ModelSource,
    td,
    hp: Hyperparameters,
    options: RunOptions,
    world: World,
    name: str,
) -> None:
    """The model folder's files, ``textclf.json`` last."""
    with quiet_transformers():
        net.save_pretrained(stage)
        tokenizer.save_pretrained(stage)
    plot_curves(history, stage / artifact.CURVES_FILE, f"{name}: {source.display_name}")
    artifact.write_metadata(
        stage,
        {
            "task": "text-classification",
            "base_model": {"spec": source.spec, "kind": source.kind},
            "labels": list(td.labels.names),
            "label_type": "int" if td.labels.integer else "str",
            "max_seq_length": hp.max_seq_length,
            "hyperparameters": hp.to_dict(),
            "data": td.summary,
            "metrics": {"best_epoch": best["epoch"], "best": best, "final": history[-1]},
            "training_seconds": sum(h["train_seconds"] for h in history),
            "run": {
                "processes": world.size,
                "effective_batch_size": _effective_batch(hp, world),
                "device": world.device.type,
                "precision": world.precision,
                "gradient_checkpointing": options.gradient_checkpointing,
            },
        },
    )


def _stopped(stop: StopSignals, run: TrainingState, epochs: int, path: str) -> TrainingInterrupted:
    return TrainingInterrupted(
        f"stopped by {stop.requested or 'a signal to another process'} in epoch {run.epoch}/{epochs} "
        f"at step {run.step}; checkpoint saved to {path}. Run the same command again to resume."
    )


def _quiet(message: str) -> None:
    """The log of every process but rank 0."""


def _train_epoch(
    model,
    batches: Iterable[dict],
    optimizer,
    accumulation: int,
    before_step,
    advance,
    *,
    world: World | None = None,
    tally: Tally | None = None,
    consumed: Callable[[], int] = lambda: 0,
    after_step: Callable[[], None] = lambda: None,
    idle_batch: dict | None = None,
    sifted: Callable[[], bool] = lambda: False,
) -> Tally:
    """One pass over this process's ``batches``; returns its running sums (``tally``, continued when given).

    Every sample of an optimizer step weighs the same, in every process: losses are summed over
    the ``accumulation`` micro-batches of a group, and at the step the gradients (averaged over
    the processes by DDP) are divided by the group's rows per process, so short batches, a
    short last group and uneven shards are weighted correctly. ``before_step`` gets the rows
    all processes have consumed from the data so far (the schedule's progress) and whether any
    process's ``sifted()`` was true at the step's last micro-batch (sifted batches: their rate).

    Processes go in lockstep: before each micro-batch they agree (one all-reduce) whether any
    still has one; one whose batches ran out (sifting keeps different shares) joins each of the
    others' micro-batches with a zero-gradient pass of ``idle_batch``, so all take the same
    optimizer steps and DDP's forward, which can hold a collective of its own (its first bucket
    rebuild, after a resume), runs in every process. ``after_step`` runs after each.
    """
    world = world or World()
    tally = tally or Tally()
    model.train()
    batches = iter(batches)
    in_group, group_rows, total_consumed, any_sifted = 0, 0, 0.0, False
    while True:
        batch = None if tally.exhausted else next(batches, None)
        tally.exhausted = batch is None
        rows = 0 if batch is None else len(batch["labels"])
        active, total_rows, total_consumed, sifting = world.agree(float(rows > 0), rows, consumed(), float(sifted()))
        if not active:
            break
        any_sifted = sifting > 0
        in_group, group_rows = in_group + 1, group_rows + total_rows
        sync = in_group == accumulation
        with world.no_sync(model, skip=not sync):
            if rows:
                losses = _per_sample_loss(_logits_of(model, batch, world), batch["labels"])
                losses.sum().backward()
            else:  # only with other processes (active): join their forward, which can hold a collective (bucket rebuild)
                _zero_pass(model, idle_batch, world)
        if rows:
            value = losses.detach().sum().item()
            tally.loss, tally.rows = tally.loss + value, tally.rows + rows
            advance(value / rows)
        if sync:
            _step(model, optimizer, group_rows / world.size, lambda: before_step(total_consumed, any_sifted))
            in_group, group_rows = 0, 0
            after_step()
    if in_group:
        if world.size > 1:  # the group's last backward pass did not synchronise: one that does
            _zero_pass(model, idle_batch, world)
        _step(model, optimizer, group_rows / world.size, lambda: before_step(total_consumed, any_sifted))
        after_step()
    return tally


def _zero_pass(model, idle_batch: dict, world: World) -> None:
    """A forward and backward pass that adds nothing to the gradients but takes part in DDP's synchronisation."""
    (_logits_of(model, idle_batch, world).sum() * 0.0).backward()


def _step(net, optimizer, rows: float, before_step) -> None:
    for param in net.parameters():
        if param.grad is not None:
            param.grad.div_(rows)
    torch.nn.utils.clip_grad_norm_(net.parameters(), MAX_GRAD_NORM)
    before_step()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


class _LinearSchedule:
    """Linear warmup then linear decay to 0, by the share of training rows consumed.

    Driven by progress through the data rather than a step count, it ends at 0
    exactly however many steps sifting and gradient accumulation make.
    """

    def __init__(self, optimizer, peak: float, warmup_ratio: float):
        self.optimizer, self.peak, self.warmup = optimizer, peak, warmup_ratio

    def factor(self, progress: float) -> float:
        if progress < self.warmup:
            return progress / self.warmup
        return max(0.0, (1.0 - progress) / max(1e-12, 1.0 - self.warmup))

    def set(self, progress: float, scale: float = 1.0) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.peak * scale * self.factor(progress)


def _sifted_learning_rate(sifting: SiftingConfig, scaling: str) -> float:
    """The learning-rate factor of optimizer steps on sifted batches.

    A sifted batch holds the kept rows of about 1 / keep_fraction batches of data (1 + beta
    without the floor on the keep probability), so an epoch takes keep_fraction as many
    optimizer steps. Adam's steps are about as long whatever the gradient's size, so with the
    same learning rate a sifted epoch would move the weights about half as far (beta 1).
    ``scaling="sqrt"`` (``sifting_lr_scaling``) applies the square-root scaling rule for Adam
    with a batch 1 / keep_fraction times larger (Malladi et al., 2022): 1.39 at beta 1 (0.52
    kept), 1.72 at beta 3 (0.34 kept). The scaled rate starts with the first step that holds a batch yielded
    after a process scored its first candidate (``SiftingDataLoader.sifting_started``, agreed
    across processes): the delay, up to the end of the candidate of SIFTING_CANDIDATES batches
    in which it ends, keeps the plain rate."""
    return math.sqrt(1.0 / sifting.keep_fraction) if scaling == "sqrt" else 1.0


def _logits_of(model: torch.nn.Module, batch: dict, world: World | None = None) -> torch.Tensor:
    """The model's logits for a batch, under bfloat16 autocast where ``world``'s device has it."""
    with world.autocast() if world is not None else nullcontext():
        return forward_logits(model, batch["input_ids"], batch["attention_mask"])


def _per_sample_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits.float(), labels, reduction="none")


def _artifact_labels(source: ModelSource) -> LabelSet | None:
    if source.kind != "artifact":
        return None
    from transformers import AutoConfig

    meta = artifact.read_metadata(source.location) or {}
    config = AutoConfig.from_pretrained(source.location)
    return LabelSet.from_config(config.id2label, integer=meta.get("label_type") == "int")


def _enable_gradient_checkpointing(net: torch.nn.Module) -> None:
    """Recompute each layer's activations in the backward pass (non-reentrant: fine with DDP and frozen layers)."""
    try:
        if hasattr(net, "activation_checkpointing_enable"):  # transformers >= 5.23's name
            net.activation_checkpointing_enable({"use_reentrant": False})
        else:
            net.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    except ValueError as exc:
        raise ConfigError(f"gradient_checkpointing: {exc}") from None


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _param_groups(net: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for param in net.parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
