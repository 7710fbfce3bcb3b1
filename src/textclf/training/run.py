"""A training run set up: one object, :class:`Run`, holding everything the loop works with.

:func:`setup` builds it in the order a run needs: the output folder checked, the data read,
the checkpoint to resume from found (:mod:`.checkpoint`), the model loaded (seeded alike in
every process), the texts tokenised, the hyperparameters left unset chosen (:mod:`.auto`), the
batches made (:mod:`.batches`: sifted or not), the optimizer and schedule, the state restored
from the checkpoint (:mod:`.state`), the staging folder the output is written in, and the
SIGINT/SIGTERM handlers. :class:`TrainingHooks` is
where a caller cuts in (a test stopping a run at step N, say): each hook gets the :class:`Run`.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import artifact, calibration
from ..backends import InferencePrecision, TorchBackend
from ..batching import encode
from ..config import Hyperparameters, RunOptions
from ..data import LabelSet, ReadOptions, TrainingData, load_training_data
from ..errors import ConfigError, TextclfError, TrainingInterrupted
from ..inference import Classifier, TextEncoder
from ..metrics import MIN_POSITIVES
from ..models import (
    PROBLEM_TYPES,
    ModelSource,
    check_max_length,
    head_parameter_names,
    load_for_training,
    pads_left,
    quiet_transformers,
    resolve_model,
    scale_output_layer,
    set_label_priors,
)
from ..plots import plot_curves
from ..progress import log_stderr
from ..report import Rows, training_report
from . import auto, checkpoint
from .batches import TrainingBatches, make_batches
from .checkpoint import Checkpoints, StopSignals
from .distributed import World
from .epoch import EpochPass
from .records import check_line, check_record, selection_metric
from .schedule import LinearSchedule
from .state import BestEpoch, Tally, TrainingState

__all__ = ["Run", "TrainingHooks", "enable_gradient_checkpointing", "read_data", "setup"]


@dataclass
class TrainingHooks:
    """Calls into a run, each with the :class:`Run`; an exception raised by one stops training as any error would.

    ``after_setup``: once the run is set up, before its first step. ``after_step``: after each
    optimizer step (``run.state.step`` counts them over the whole run), before the checkpoint
    that step may write and before a SIGINT/SIGTERM is answered.
    """

    after_setup: Callable[[Run], None] | None = None
    after_step: Callable[[Run], None] | None = None


@dataclass(eq=False)
class Run:
    """A training run: its settings, data, model, batches, optimizer, schedule, state and folders.

    ``net`` is the model; ``model`` the same in DistributedDataParallel with several processes.
    ``store`` (the checkpoint folder) and ``stage`` (the staging folder) are rank 0's.
    """

    hp: Hyperparameters  # every auto value chosen
    auto: dict[str, str]  # the auto values' names and why each was chosen
    options: RunOptions
    world: World
    output: Path
    source: ModelSource
    data: TrainingData
    net: torch.nn.Module
    model: torch.nn.Module
    tokenizer: Any
    val_ids: list[list[int]]
    batches: TrainingBatches
    optimizer: torch.optim.Optimizer
    schedule: LinearSchedule
    state: TrainingState
    validator: Classifier
    idle_batch: dict
    log: Callable[[str], None]
    hooks: TrainingHooks
    store: Checkpoints | None = None
    stage: Path | None = None
    stop: StopSignals | None = None

    @property
    def checkpoints(self) -> bool:
        return self.options.keep_checkpoints > 0

    @property
    def epoch_rows(self) -> int:
        """Rows of the training data in an epoch, all processes together."""
        return len(self.batches.data.ids)

    @property
    def effective_batch(self) -> int:
        return self.hp.batch_size * self.hp.gradient_accumulation_steps * self.world.size

    def epoch_pass(self, epoch: int, bar: Callable[..., None] | None = None) -> EpochPass:
        """How epoch ``epoch``'s pass steps: this run's optimizer, schedule and processes; ``bar``
        (a :class:`~textclf.progress.ProgressBar`'s advance) shows the rows consumed and the loss."""
        rows = self.epoch_rows
        return EpochPass(
            self.optimizer,
            self.hp.gradient_accumulation_steps,
            self.world,
            self.schedule,
            rows_before=(epoch - 1) * rows,
            rows_total=rows * self.hp.epochs,
            sifted_rate=self.batches.sifted_rate,
            idle_batch=self.idle_batch,
            advance=None if bar is None else lambda loss: bar(self.batches.produced, loss=loss),
            after_step=self.after_step,
        )

    def after_step(self, consumed: float) -> None:
        """Count the step; a mid-epoch check if one is due; then the hook; a checkpoint every N steps, or one and a
        stop when a signal asks. ``consumed``: rows of the data all processes consumed in the epoch so far."""
        self.state.step += 1
        if self.check_due(int(consumed)):
            self.check(int(consumed))
        if self.hooks.after_step is not None:
            self.hooks.after_step(self)
        stopping = self.stopping()
        every = self.options.checkpoint_every_steps
        if stopping or (self.checkpoints and every and self.state.step % every == 0):
            path = self.checkpoint()
            if stopping:
                raise self.stopped(path)

    def check_due(self, consumed: int) -> bool:
        """Whether a mid-epoch check is due after this step: the epoch's rows ``consumed`` (the same number in every
        process) passed a mark k/n of the epoch's rows (n: evaluations_per_epoch, k < n) that no check of this
        epoch passed yet. Rows, not steps: with sifting the steps of an epoch are not known in advance. No check
        once the data is used up: the epoch's end is evaluated next anyway."""
        n, rows = self.hp.evaluations_per_epoch, self.epoch_rows
        if n == 1 or not self.val_ids or consumed >= rows:
            return False
        passed = self.state.checks[-1]["rows"] * n // rows if self.state.checks else 0
        return consumed * n // rows > passed

    def check(self, consumed: int) -> None:
        """Evaluate mid-epoch: the check's record joins the epoch's ``checks`` and the best point's candidates, and
        is logged; its time does not count as training time."""
        started = time.perf_counter()
        record = check_record(self, consumed)
        self.state.checks.append(record)
        self.log(check_line(record, self.hp.epochs, self.epoch_rows))
        self.state.tracker.consider(record, self.net if self.world.is_main else None)
        self.model.train()
        self.state.epoch_started += time.perf_counter() - started

    def checkpoint(self) -> str:
        """Write a checkpoint of every process's state (rank 0 writes); its path, in every process."""
        return self.state.save(self.store)

    def stopping(self) -> bool:
        """Whether a signal asked any process to stop (one all-reduce, only while signals are caught)."""
        return self.stop.enabled and self.world.any(self.stop.requested is not None)

    def stopped(self, path: str) -> TrainingInterrupted:
        return TrainingInterrupted(
            f"stopped by {self.stop.requested or 'a signal to another process'} in epoch "
            f"{self.state.epoch}/{self.hp.epochs} at step {self.state.step}; checkpoint saved to {path}. "
            "Run the same command again to resume."
        )

    def record_dynamics(self, tally: Tally) -> None:
        """Keep the epoch's training dynamics: each training row's probability of its given label(s) as the
        training pass saw it (exp(-loss): dropout on, the weights before that step), NaN for a row not trained
        on (sifted out); gathered from every process."""
        confidence = torch.full((len(self.data.train_texts),), float("nan"))
        for rows, losses in self.world.gather((tally.seen, tally.seen_loss)):
            confidence[torch.tensor(rows, dtype=torch.long)] = torch.exp(-torch.tensor(losses, dtype=torch.float32))
        self.state.dynamics.append(confidence)

    def append_record(self, record: dict) -> None:
        """Add an epoch's record to the history and to ``metrics.jsonl`` in the staging folder."""
        self.state.history.append(record)
        if self.stage is not None:
            with (self.stage / artifact.METRICS_FILE).open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def finish(self) -> dict:
        """Rank 0 writes the model folder with the best point's weights, calibrated; the best point's record (an
        epoch's, or a mid-epoch check's with its ``step``)."""
        best, history = self.state.tracker.best, self.state.history
        if self.world.is_main:
            if best is not history[-1]:
                self.net.load_state_dict(self.state.tracker.state)
                where = f"epoch {best['epoch']}" + (f" step {best['step']}" if "step" in best else "")
                metric = self.state.tracker.metric
                self.log(f"keeping {where} (best {metric} {best[metric]:.4f})")
            logits = self.validation_logits()
            self._write_folder(best, self.calibrate(logits), logits)
            if self.store is not None:
                self.store.clear()  # before the staging folder becomes the output
        return best

    def validation_logits(self) -> np.ndarray | None:
        """The model's logits on the validation data (rank 0 alone), or None without validation data."""
        if not self.val_ids:
            return None
        self.validator.backend.model.eval()
        return self.validator.forward(self.val_ids)

    def calibrate(self, logits: np.ndarray | None) -> dict | None:
        """Fit the temperature on the validation data's ``logits`` (:mod:`textclf.calibration`) and fold it into
        the model's output layer; its record for ``textclf.json``, also the last line of ``metrics.jsonl``. None
        when ``--no-calibration`` or too little validation data."""
        rows = len(self.val_ids)
        if not self.options.calibration or rows < calibration.MIN_ROWS:
            if self.options.calibration and rows:
                self.log(f"not calibrated: {rows} validation rows, fewer than {calibration.MIN_ROWS}")
            return None
        record = calibration.calibrate(logits, self.data.labels.targets(self.data.val_labels))
        scale_output_layer(self.net, record.get("temperatures", [record["temperature"]]))
        before, after = record["before"], record["after"]
        self.log(
            f"calibrated: temperature {record['temperature']:.3f}"
            + (f" (and {sum(record['per_label'])} labels' own)" if "per_label" in record else "")
            + f"; validation ECE {before['ece']:.2%} -> {after['ece']:.2%}, NLL {before['nll']:.4f} -> "
            f"{after['nll']:.4f}, Brier {before['brier']:.4f} -> {after['brier']:.4f}"
        )
        return record

    def _write_dynamics(self) -> None:
        """``training_dynamics.npz``: ``line`` (each training row's line in its file), ``confidence`` (epochs x
        rows: :meth:`record_dynamics`'s), ``epoch``, and the given ``label`` (class ids; multi-label: a 0/1 row
        a text)."""
        if not self.state.dynamics:
            return
        done = len(self.state.history)
        np.savez_compressed(
            self.stage / artifact.DYNAMICS_FILE,
            line=np.asarray(self.data.train_lines, dtype=np.int64),
            confidence=torch.stack(self.state.dynamics).numpy().astype(np.float32),
            epoch=np.arange(done - len(self.state.dynamics) + 1, done + 1, dtype=np.int64),
            label=self.data.labels.targets(self.data.train_labels),
        )

    def _write_folder(self, best: dict, calibrated: dict | None, logits: np.ndarray | None) -> None:
        """The model folder's files, ``textclf.json`` and then the report (from it) last; ``logits``: the
        validation data's before calibration."""
        hp, world, history = self.hp, self.world, self.state.history
        with quiet_transformers():
            self.net.save_pretrained(self.stage)
            self.tokenizer.save_pretrained(self.stage)
        plot_curves(history, self.stage / artifact.CURVES_FILE, f"{self.output.name}: {self.source.display_name}")
        self._write_dynamics()
        if calibrated is not None:
            summary = {k: v if not isinstance(v, dict) else _without_bins(v) for k, v in calibrated.items()}
            with (self.stage / artifact.METRICS_FILE).open("a", encoding="utf-8") as f:
                f.write(json.dumps({"calibration": summary}) + "\n")
        artifact.write_metadata(
            self.stage,
            {
                "task": "text-classification",
                "base_model": {"spec": self.source.spec, "kind": self.source.kind},
                "labels": list(self.data.labels.names),
                "label_type": "int" if self.data.labels.integer else "str",
                "problem_type": PROBLEM_TYPES[self.data.labels.multi_label],
                **_thresholds(self.data.labels, best, calibrated),
                "calibration": calibrated,
                "max_seq_length": hp.max_seq_length,
                "hyperparameters": hp.to_dict(),
                "auto_hyperparameters": self.auto,
                "data": self.data.summary,
                "metrics": {"best_epoch": best["epoch"], "best": best, "final": history[-1]},
                "training_seconds": sum(h["train_seconds"] for h in history),
                "run": {
                    "processes": world.size,
                    "effective_batch_size": self.effective_batch,
                    "device": world.device.type,
                    "precision": world.precision.name,
                    "precision_reason": world.precision.reason,
                    "kernels": world.precision.kernels,
                    "gradient_checkpointing": self.options.gradient_checkpointing,
                },
            },
        )
        self._write_report(logits)

    def _write_report(self, logits: np.ndarray | None) -> None:
        """``report.html`` (:func:`textclf.report.training_report`); a failure is logged, not raised: the
        model is trained and whole without it, and ``textclf report`` can write it again."""
        td = self.data
        train = Rows("training", td.train_texts, td.train_labels, td.train_lines, td.summary["train_source"])
        validation = Rows("validation", td.val_texts, td.val_labels, td.val_lines, td.summary["validation_source"])
        try:
            metadata = artifact.read_metadata(self.stage)
            training_report(
                self.stage,
                metadata,
                self.state.history,
                td.labels,
                train,
                validation if td.val_texts else None,
                logits,
                title=self.output.name,
            )
        except (TextclfError, OSError, ValueError) as exc:
            self.log(f"report.html not written ({exc}); `textclf report --model-dir {self.output}` writes it")


def setup(
    world: World,
    cleanup: ExitStack,
    *,
    data: str | Path,
    validation: str | Path | None,
    read_options: ReadOptions,
    model: str | Path | None,
    output: Path,
    overwrite: bool,
    hp: Hyperparameters,
    options: RunOptions,
    log: Callable[[str], None],
    hooks: TrainingHooks,
) -> Run:
    """Set up a run in this process (rank 0 checks and writes; every process loads and resumes);
    what it holds open (checkpoint folder, staging folder, signal handlers) is closed by ``cleanup``."""
    world.on_main(lambda: artifact.check_output(output, overwrite))
    source = resolve_model(model)
    td = read_data(source, data, validation, read_options, hp, log)
    job = checkpoint.job_identity(data, validation, read_options, source, hp, world.size)
    store, resume_from = checkpoint.open_for(output, options, job, world, log, cleanup)
    net, tokenizer, head_reused = load_model(source, td.labels, hp, options, world)
    targets = td.labels.targets(td.train_labels)
    if td.labels.multi_label and not head_reused:
        set_label_priors(net, (targets.sum(axis=0) + 1) / (len(targets) + 2))  # see models.set_label_priors
    train_ids = encode(tokenizer, td.train_texts, hp.max_seq_length)
    hp, chosen = auto.choose(
        hp,
        auto.ModelShape.of(net.config, source),
        auto.DataShape.of(train_ids, len(td.labels), td.labels.multi_label),
        head_reused=head_reused,
        processes=world.size,
        validation=bool(td.val_texts),
    )
    job = {**job, "auto": {name: getattr(hp, name) for name in chosen}}  # checked on resume (TrainingState.load)
    left = pads_left(net.config, tokenizer)
    batches = make_batches(hp, train_ids, targets, (tokenizer.pad_token_id, left), world, net)
    optimizer = torch.optim.AdamW(_param_groups(net, hp), lr=hp.learning_rate, fused=True)
    tracker = BestEpoch(hp.early_stopping_min_delta, selection_metric(td.labels.multi_label))
    state = TrainingState(world, job, net, optimizer, batches, tracker)
    if resume_from is not None:
        state.load(resume_from)
    validator = Classifier(
        TorchBackend(net, InferencePrecision(0 if world.bf16 else None, world.precision.reason)),
        TextEncoder.from_tokenizer(tokenizer, hp.max_seq_length, left),
        td.labels,
    )
    run = Run(
        hp=hp,
        auto=chosen,
        options=options,
        world=world,
        output=output,
        source=source,
        data=td,
        net=net,
        model=world.wrap(net),
        tokenizer=tokenizer,
        val_ids=encode(tokenizer, td.val_texts, hp.max_seq_length),
        batches=batches,
        optimizer=optimizer,
        schedule=LinearSchedule(optimizer, hp.learning_rate, hp.warmup_ratio),
        state=state,
        validator=validator,
        idle_batch=_idle_batch(tokenizer.pad_token_id, world.device),
        log=log,
        hooks=hooks,
        store=store,
    )
    log(_first_line(run, head_reused))
    log(str(world.precision))
    if world.precision.warning:
        log(world.precision.warning)
    for line in auto.describe(chosen, hp):
        log(line)
    _stage(run, overwrite, cleanup)
    run.stop = cleanup.enter_context(StopSignals(run.checkpoints, announce=log is log_stderr))
    if hooks.after_setup is not None:
        hooks.after_setup(run)
    state.resume_rng()  # last, just before training goes on
    return run


def read_data(source: ModelSource, data, validation, read_options: ReadOptions, hp: Hyperparameters, log):
    """The training and validation data, labelled as the model's head is when it is kept."""
    fixed_labels = _artifact_labels(source) if hp.reinitialize_top_layer != "true" else None
    hint = " Pass --reinitialize-top-layer true to train a new head for these labels." if fixed_labels else ""
    td = load_training_data(data, validation, read_options, hp.validation_split_ratio, hp.seed, fixed_labels, hint)
    for note in td.summary["notes"]:
        log(note)
    return td


def _stage(run: Run, overwrite: bool, cleanup: ExitStack) -> None:
    """Rank 0's staging folder (kept on failure while it holds checkpoints), its checkpoint folder, metrics.jsonl."""
    if not run.world.is_main:
        return
    in_stage = run.options.checkpoint_dir is None  # the default: checkpoints live in the staging folder
    keep = lambda exc: in_stage and run.store is not None and run.store.latest() is not None  # noqa: E731 - resumable work
    reuse = run.store.folder.parent if run.store and in_stage else None
    run.stage = cleanup.enter_context(artifact.staging(run.output, overwrite, reuse, keep))
    if run.store is None and run.checkpoints:
        run.store = cleanup.enter_context(Checkpoints(run.stage / checkpoint.FOLDER, run.options.keep_checkpoints))
    metrics = "".join(json.dumps(r) + "\n" for r in run.state.history)
    (run.stage / artifact.METRICS_FILE).write_text(metrics, encoding="utf-8")


def _first_line(run: Run, head_reused: bool) -> str:
    td, world = run.data, run.world
    trainable = sum(p.numel() for p in run.net.parameters() if p.requires_grad)
    return (
        f"training {run.source.display_name} on {td.summary['train_rows']} rows, validating on "
        f"{td.summary['validation_rows']}; {len(td.labels)} classes; {trainable:,} trainable parameters"
        + ("; continuing from the model's head" if head_reused else "")
        + (f"; {world.size} processes, {run.effective_batch} samples per step" if world.size > 1 else "")
        + (f"; on {world.device}" if world.device.type != "cpu" else "")
    )


def load_model(source: ModelSource, labels: LabelSet, hp: Hyperparameters, options: RunOptions, world: World):
    """(model on this process's device, tokenizer, head_reused); seeded alike in every process, then each
    process's random number generator is its own (dropout; the weights are rank 0's, which DDP copies)."""
    random.seed(hp.seed)
    np.random.seed(hp.seed)
    torch.manual_seed(hp.seed)
    net, tokenizer, head_reused = load_for_training(source, labels, hp.reinitialize_top_layer)
    net.to(world.device)
    check_max_length(net.config, tokenizer, hp.max_seq_length)
    if hp.train_only_top_layer:
        head = set(head_parameter_names(net))
        for name, param in net.named_parameters():
            param.requires_grad_(name in head)
    if options.gradient_checkpointing:
        enable_gradient_checkpointing(net)
    if world.rank:
        torch.manual_seed(hp.seed + world.rank)
    return net, tokenizer, head_reused


def enable_gradient_checkpointing(net: torch.nn.Module) -> None:
    """Recompute each layer's activations in the backward pass (non-reentrant: fine with DDP and frozen layers)."""
    try:
        if hasattr(net, "activation_checkpointing_enable"):  # transformers >= 5.23's name
            net.activation_checkpointing_enable({"use_reentrant": False})
        else:
            net.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    except ValueError as exc:
        raise ConfigError(f"gradient_checkpointing: {exc}") from None


def _thresholds(labels: LabelSet, best: dict, calibrated: dict | None) -> dict:
    """A multi-label model's ``thresholds`` for ``textclf.json``: those chosen at the best point on validation
    (moved through the calibration, so every decision stays the same: ``uncalibrated`` keeps them as chosen),
    else 0.5 for every label (no validation data)."""
    if not labels.multi_label:
        return {}
    chosen = best.get("thresholds")
    if chosen is None:
        return {"thresholds": {"thresholds": [0.5] * len(labels), "global": 0.5, "chosen_on": None}}
    record = {**chosen, "chosen_on": "validation", "rule": THRESHOLD_RULE}
    if calibrated is not None:
        record["uncalibrated"] = chosen["thresholds"]
        record["thresholds"] = calibration.map_thresholds(chosen["thresholds"], calibrated["temperatures"])
    return {"thresholds": record}


def _without_bins(figures: dict) -> dict:
    """Calibration figures less the reliability diagram's bins (``metrics.jsonl`` keeps the numbers)."""
    return {k: v for k, v in figures.items() if k != "reliability"}


THRESHOLD_RULE = (
    "per label: the threshold (0.05..0.95 by 0.01) maximising its F1 on validation, for labels with at least "
    f"{MIN_POSITIVES} validation positives; the others: the one global threshold maximising micro F1"
)


def _artifact_labels(source: ModelSource) -> LabelSet | None:
    if source.kind != "artifact":
        return None
    return artifact.ModelFolder.read(source.location).labels


def _idle_batch(pad_id: int, device: torch.device) -> dict:
    """A one-token batch for a process whose batches ran out to join the others' forward passes."""
    return {
        "input_ids": torch.full((1, 1), pad_id, device=device),
        "attention_mask": torch.ones(1, 1, dtype=torch.long, device=device),
    }


def _param_groups(net: torch.nn.Module, hp: Hyperparameters) -> list[dict]:
    """AdamW's groups: weight decay on matrices, none on biases and LayerNorm weights; the head's at
    ``head_learning_rate_scale`` times the rate (``lr_scale``, which :class:`LinearSchedule` applies)."""
    head = set(head_parameter_names(net)) if hp.head_learning_rate_scale != 1 else set()  # 1: the two groups of old
    groups = {(decay, in_head): [] for decay in (True, False) for in_head in (False, True)}
    for name, param in net.named_parameters():
        if param.requires_grad:
            groups[param.ndim >= 2, name in head].append(param)
    return [
        {
            "params": params,
            "weight_decay": hp.weight_decay if decay else 0.0,
            "lr_scale": hp.head_learning_rate_scale if in_head else 1.0,
        }
        for (decay, in_head), params in groups.items()
        if params
    ]
