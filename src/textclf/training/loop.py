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
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from .. import artifact
from ..config import Hyperparameters
from ..data import LabelSet, ReadOptions, load_training_data
from ..metrics import classification_metrics, cross_entropy
from ..models import ModelSource, check_max_length, forward_logits, head_parameter_names, load_for_training, pads_left, quiet_transformers, resolve_model
from ..plots import plot_curves
from ..progress import ProgressBar
from ..sifting import SiftingConfig, SiftingDataLoader, SiftingStats
from ..batching import collate, encode, length_grouped_batches
from ..backends import TorchBackend
from ..inference import Classifier, TextEncoder

__all__ = ["TrainResult", "train"]

MAX_GRAD_NORM = 1.0
SIFTING_CANDIDATES = 4
"""With sifting, candidates are scored in batches of this many training batches (rows of similar
length): one forward pass over 128 rows costs about 0.6x of four over 32 on CPU, and each yields
about 128 / (1 + beta) kept rows, cut into full training batches of ``batch_size``. Candidates
come in random order like unsifted batches, so a batch that joins the kept rows of two
candidates is padded to the longer (16.2 padded tokens per kept SST-2 row at beta 1, against 13.95
unsifted). Leaving candidates in length order keeps batches tight but cost 1.6 points of accuracy
(SST-2, 8,000 rows); see bench/RESULTS.md for a length pool that was tried and reverted."""


@dataclass
class TrainResult:
    """What a training run produced: the folder and its metrics."""

    output: Path
    history: list[dict]
    best_epoch: int
    best: dict
    training_seconds: float  # the epochs' training passes (with sifting, scoring included); no validation
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
    on_epoch: Callable[[dict], None] | None = None,
    **overrides: Any,
) -> TrainResult:
    """Fine-tune ``model`` on ``data`` and write a model folder to ``output``.

    Hyperparameters come from ``hyperparameters`` with ``overrides`` applied,
    exactly as CLI flags apply over ``--hyperparameters FILE``. ``on_epoch`` is called with
    each epoch's record (as written to ``metrics.jsonl``) once it is logged; an exception it
    raises stops training and leaves no output folder (``textclf tune`` prunes trials this way).

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
    if hp.train_only_top_layer:
        head = set(head_parameter_names(net))
        for name, param in net.named_parameters():
            param.requires_grad_(name in head)
    train_ids = encode(tokenizer, td.train_texts, hp.max_seq_length)
    val_ids = encode(tokenizer, td.val_texts, hp.max_seq_length)
    pad_id, left = tokenizer.pad_token_id, pads_left(net.config, tokenizer)

    epoch_batches = _EpochBatches(
        train_ids, td.train_labels, hp.batch_size * (SIFTING_CANDIDATES if hp.sifting else 1), (pad_id, left),
        np.random.default_rng(hp.seed),
    )
    batches: Iterable[dict] = epoch_batches
    if hp.sifting:
        sifting = SiftingConfig(hp.sifting_beta, hp.sifting_loss_history_length, hp.sifting_delay, hp.seed,
                                hp.sifting_scoring_dtype)
        batches = SiftingDataLoader(
            epoch_batches, net, _per_sample_loss, sifting, batch_size=hp.batch_size,
            pad_values={"input_ids": pad_id}, padding_side="left" if left else "right", forward=_logits_of,
        )
    optimizer = torch.optim.AdamW(_param_groups(net, hp.weight_decay), lr=hp.learning_rate, fused=True)
    total_rows = len(train_ids) * hp.epochs
    schedule = _LinearSchedule(optimizer, hp.learning_rate, hp.warmup_ratio)

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
            done_before = (epoch - 1) * len(train_ids)
            with ProgressBar(progress, f"epoch {epoch}/{hp.epochs}", len(train_ids),
                             extra=("loss {task.fields[loss]:.4f}",), fields={"loss": float("nan")}) as advance:
                train_loss = _train_epoch(
                    net, batches, optimizer, hp.gradient_accumulation_steps,
                    lambda: schedule.set((done_before + epoch_batches.produced) / total_rows),
                    lambda loss: advance(epoch_batches.produced, loss=loss),
                )
            train_seconds = time.perf_counter() - epoch_start
            stats = batches.stats if hp.sifting else SiftingStats(len(train_ids), len(train_ids))
            record = {"epoch": epoch, "train_loss": train_loss}
            record.update(_validate(Classifier(TorchBackend(net), TextEncoder.from_tokenizer(tokenizer, hp.max_seq_length, left), td.labels), val_ids, td.val_labels))
            record.update({
                "samples_per_second": stats.seen / train_seconds,
                "samples_seen": stats.seen,
                "samples_kept": stats.kept,
                "fraction_sifted": stats.fraction_sifted,
                "scoring_seconds": stats.scoring_seconds,
                "train_seconds": train_seconds,
                "elapsed_seconds": time.perf_counter() - started,
            })
            history.append(record)
            with (stage / artifact.METRICS_FILE).open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            log(_epoch_line(record, hp.epochs))
            if on_epoch is not None:
                on_epoch(record)
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


def _train_epoch(net, batches: Iterable[dict], optimizer, accumulation: int, before_step, advance) -> float:
    """One pass over ``batches``; returns the mean training loss per sample trained on.

    Every sample of an optimizer step weighs the same: losses are summed over the
    ``accumulation`` micro-batches of a group and divided by its row count at the
    step, so short batches and a short last group are weighted correctly.
    """
    net.train()
    total_loss, seen, in_group, group_rows = 0.0, 0, 0, 0
    for batch in batches:
        losses = _per_sample_loss(_logits_of(net, batch), batch["labels"])
        losses.sum().backward()
        rows = len(batch["labels"])
        in_group, group_rows = in_group + 1, group_rows + rows
        if in_group == accumulation:
            _step(net, optimizer, group_rows, before_step)
            in_group, group_rows = 0, 0
        value = losses.detach().sum().item()
        total_loss += value
        seen += rows
        advance(value / rows)
    if in_group:
        _step(net, optimizer, group_rows, before_step)
    return total_loss / max(seen, 1)


def _step(net, optimizer, rows: int, before_step) -> None:
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

    def set(self, progress: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.peak * self.factor(progress)


def _logits_of(net: torch.nn.Module, batch: dict) -> torch.Tensor:
    return forward_logits(net, batch["input_ids"], batch["attention_mask"])


def _per_sample_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits, labels, reduction="none")


class _EpochBatches:
    """Length-grouped, padded training batches; each pass reshuffles. ``produced`` counts rows this pass."""

    def __init__(self, ids: list[list[int]], labels: list[int], batch_size: int, padding: tuple[int, bool], rng):
        self.ids, self.labels = ids, np.asarray(labels)
        self.lengths = [len(x) for x in ids]
        self.batch_size, self.padding, self.rng = batch_size, padding, rng
        self.produced = 0

    def __iter__(self) -> Iterator[dict]:
        self.produced = 0
        for rows in length_grouped_batches(self.lengths, self.batch_size, self.rng):
            batch = collate(self.ids, rows, *self.padding)
            self.produced += len(rows)
            yield {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask,
                   "labels": torch.from_numpy(self.labels[rows])}


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
    if r["scoring_seconds"]:
        line += (
            f"  kept {r['samples_kept']}/{r['samples_seen']} (sifted {r['fraction_sifted']:.0%}, "
            f"scoring {r['scoring_seconds']:.1f}s of {r['train_seconds']:.1f}s)"
        )
    return line + f"  {r['samples_per_second']:.1f} samples/s  {r['elapsed_seconds']:.1f}s"


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
