"""The fine-tuning loop: one function, read top to bottom.

setup (data, model, optimizer, schedule) -> for each epoch: length-grouped
batches, forward, backward, step; evaluate; log a line and a JSON line; keep
the best epoch's weights -> write the model folder atomically.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from transformers import get_linear_schedule_with_warmup

from .. import artifact
from ..config import Hyperparameters
from ..data import LabelSet, ReadOptions, load_training_data
from ..metrics import classification_metrics, cross_entropy
from ..models import ModelSource, check_max_length, forward_logits, head_parameter_names, load_for_training, pads_left, quiet_transformers, resolve_model
from ..plots import plot_curves
from ..batching import collate, encode, length_grouped_batches
from ..inference import Classifier, TorchBackend

__all__ = ["TrainResult", "train"]

MAX_GRAD_NORM = 1.0


@dataclass
class TrainResult:
    """What a training run produced: the folder and its metrics."""

    output: Path
    history: list[dict]
    best_epoch: int
    best: dict
    training_seconds: float  # forward/backward/step only, summed over epochs
    total_seconds: float  # everything from loading the model to writing the folder


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def train(
    data: str | Path,
    output: str | Path,
    *,
    model: str | Path | None = None,
    validation: str | Path | None = None,
    hyperparameters: Hyperparameters | None = None,
    read_options: ReadOptions | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] = _stderr,
    progress: bool | None = None,
    **overrides: Any,
) -> TrainResult:
    """Fine-tune ``model`` on ``data`` and write a model folder to ``output``.

    Hyperparameters come from ``hyperparameters`` with ``overrides`` applied,
    exactly as CLI flags apply over ``--hyperparameters FILE``.

        >>> import textclf
        >>> result = textclf.train("reviews.csv", "out/reviews", epochs=2)  # doctest: +SKIP
        >>> result.best["val_accuracy"]  # doctest: +SKIP
        0.91
    """
    hp = (hyperparameters or Hyperparameters()).updated(overrides, source="train()")
    read_options = read_options or ReadOptions()
    output = Path(output)
    artifact.check_output(output, overwrite)
    source = resolve_model(model)
    fixed_labels = _artifact_labels(source) if hp.reinitialize_top_layer != "true" else None
    hint = " Pass --reinitialize-top-layer true to train a new head for these labels." if fixed_labels else ""
    td = load_training_data(data, validation, read_options, hp.validation_split_ratio, hp.seed, fixed_labels, hint)
    for note in td.summary["notes"]:
        log(note)

    started = time.perf_counter()
    _seed_everything(hp.seed)
    net, tokenizer, head_reused = load_for_training(source, td.labels, hp.reinitialize_top_layer)
    net.to("cpu")
    check_max_length(net.config, tokenizer, hp.max_seq_length)
    head = set(head_parameter_names(net))
    if hp.train_only_top_layer:
        for name, param in net.named_parameters():
            param.requires_grad_(name in head)
    train_ids = encode(tokenizer, td.train_texts, hp.max_seq_length)
    val_ids = encode(tokenizer, td.val_texts, hp.max_seq_length)
    pad_id, left = tokenizer.pad_token_id, pads_left(net.config, tokenizer)
    train_lengths = [len(x) for x in train_ids]

    batches_per_epoch = math.ceil(len(train_ids) / hp.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / hp.gradient_accumulation_steps)
    optimizer = torch.optim.AdamW(_param_groups(net, hp.weight_decay), lr=hp.learning_rate, fused=True)
    total_steps = steps_per_epoch * hp.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(hp.warmup_ratio * total_steps), total_steps)
    rng = np.random.default_rng(hp.seed)

    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    log(
        f"training {source.display_name} on {td.summary['train_rows']} rows, validating on "
        f"{td.summary['validation_rows']}; {len(td.labels)} classes; {trainable:,} trainable parameters"
        + ("; continuing from the model's head" if head_reused else "")
    )
    history: list[dict] = []
    tracker = _BestEpoch(hp.early_stopping_min_delta)
    with artifact.staging(output, overwrite) as stage:
        for epoch in range(1, hp.epochs + 1):
            epoch_start = time.perf_counter()
            batches = length_grouped_batches(train_lengths, hp.batch_size, rng)
            with _progress_bar(progress, f"epoch {epoch}/{hp.epochs}", len(batches)) as advance:
                train_loss = _train_epoch(
                    net, batches, train_ids, td.train_labels, (pad_id, left), optimizer, scheduler,
                    hp.gradient_accumulation_steps, advance,
                )
            train_seconds = time.perf_counter() - epoch_start
            record = {"epoch": epoch, "train_loss": train_loss}
            record.update(_validate(Classifier(TorchBackend(net), tokenizer, td.labels, hp.max_seq_length), val_ids, td.val_labels))
            record["samples_per_second"] = len(train_ids) / train_seconds
            record["train_seconds"] = train_seconds
            record["elapsed_seconds"] = time.perf_counter() - started
            history.append(record)
            with (stage / artifact.METRICS_FILE).open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            log(_epoch_line(record, hp.epochs))
            tracker.update(record, net)
            if hp.early_stopping and td.val_texts and tracker.stale_epochs >= hp.early_stopping_patience:
                log(f"early stopping: val_accuracy has not improved for {tracker.stale_epochs} epoch(s)")
                break

        best = tracker.best
        if best is not history[-1]:
            net.load_state_dict(tracker.state)
            log(f"keeping epoch {best['epoch']} (best val_accuracy {best['val_accuracy']:.4f})")
        training_seconds = sum(h["train_seconds"] for h in history)
        with quiet_transformers():
            net.save_pretrained(stage)
            tokenizer.save_pretrained(stage)
        plot_curves(history, stage / artifact.CURVES_FILE, f"{output.name}: {source.display_name}")
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
                "training_seconds": training_seconds,
            },
        )
    log(f"saved model folder to {output}")
    return TrainResult(output, history, best["epoch"], best, training_seconds, time.perf_counter() - started)


def _train_epoch(net, batches, ids, labels, padding, optimizer, scheduler, accumulation: int, advance) -> float:
    """One pass over ``batches``; returns the mean training loss per sample."""
    net.train()
    total_loss, seen = 0.0, 0
    for i, rows in enumerate(batches):
        batch = collate(ids, rows, *padding)
        targets = torch.as_tensor([labels[r] for r in rows])
        loss = torch.nn.functional.cross_entropy(forward_logits(net, batch.input_ids, batch.attention_mask), targets)
        group_start = i - i % accumulation
        (loss / min(accumulation, len(batches) - group_start)).backward()  # the last group may be short
        if (i + 1) % accumulation == 0 or i + 1 == len(batches):
            torch.nn.utils.clip_grad_norm_(net.parameters(), MAX_GRAD_NORM)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        value = loss.item()
        total_loss += value * len(rows)
        seen += len(rows)
        advance(value)
    return total_loss / seen


class _BestEpoch:
    """The best epoch by val_accuracy and its weights, and epochs since a gain above ``min_delta``.

    Without validation data the last epoch counts as the best.
    """

    def __init__(self, min_delta: float):
        self.min_delta = min_delta
        self.best: dict | None = None
        self.state: dict | None = None
        self.stale_epochs = 0

    def update(self, record: dict, net: torch.nn.Module) -> None:
        score = record["val_accuracy"]
        if score is None:
            self.best = record
            return
        bar = None if self.best is None else self.best["val_accuracy"]
        self.stale_epochs = 0 if bar is None or score > bar + self.min_delta else self.stale_epochs + 1
        if bar is None or score > bar:
            self.best = record
            self.state = {k: v.detach().clone() for k, v in net.state_dict().items()}


def _artifact_labels(source: ModelSource) -> LabelSet | None:
    if source.kind != "artifact":
        return None
    from transformers import AutoConfig

    meta = artifact.read_metadata(source.location) or {}
    config = AutoConfig.from_pretrained(source.location)
    return LabelSet.from_config(config.id2label, integer=meta.get("label_type") == "int")


def _validate(clf: Classifier, ids: list[list[int]], labels: list[int]) -> dict:
    if not ids:
        return {"val_loss": None, "val_accuracy": None, "val_f1": None, "val_mcc": None}
    clf.backend.model.eval()
    logits = clf.forward(ids)
    m = classification_metrics(labels, logits.argmax(axis=1), len(clf.labels))
    return {
        "val_loss": cross_entropy(logits, labels),
        "val_accuracy": m["accuracy"],
        "val_f1": m["f1_macro"],
        "val_mcc": m["mcc"],
    }


def _epoch_line(r: dict, epochs: int) -> str:
    line = f"epoch {r['epoch']}/{epochs}  train_loss {r['train_loss']:.4f}"
    if r["val_loss"] is not None:
        line += (
            f"  val_loss {r['val_loss']:.4f}  val_accuracy {r['val_accuracy']:.4f}"
            f"  val_f1 {r['val_f1']:.4f}  val_mcc {r['val_mcc']:.4f}"
        )
    return line + f"  {r['samples_per_second']:.1f} samples/s  {r['elapsed_seconds']:.1f}s"


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _param_groups(net: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, param in net.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class _progress_bar:
    """A rich progress bar on a TTY (or when forced); a no-op elsewhere."""

    def __init__(self, enabled: bool | None, description: str, total: int):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.description, self.total = description, total

    def __enter__(self):
        if not self.enabled:
            return lambda loss: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"), TimeRemainingColumn(), transient=True,
        )
        self._bar.__enter__()
        task = self._bar.add_task(self.description, total=self.total, loss=float("nan"))
        return lambda loss: self._bar.update(task, advance=1, loss=loss)

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._bar.__exit__(*exc)
