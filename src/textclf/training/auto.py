"""Automatic hyperparameters: what a run uses for the values the user left unset.

``learning_rate``, ``head_learning_rate_scale``, ``batch_size``, ``epochs``, ``warmup_ratio`` and
``evaluations_per_epoch`` default to None, "auto": :func:`choose` fills each one the user did not
set (a flag, a ``hyperparameters.json`` value, a keyword argument) from the model's shape (:class:`ModelShape`:
width, depth, encoder or decoder, a sentence-embedding checkpoint or not) and the data's
(:class:`DataShape`: rows, classes, tokens per text), and says why. A value the user set is
never changed. The rule, and the measurements it was derived from (docs/defaults.md has the
table; bench/defaults.py reruns them):

* ``learning_rate`` by the network's width: 1e-4 up to 512 wide (MiniLM-L6 class), 5e-5 up to
  768 (BERT-base class: the top of BERT's published {2,3,5}e-5 grid), 2e-5 above (large models
  diverge at higher rates); 1e-3 when only the head trains. On the embedded 384-wide MiniLM,
  2e-5 (the old default, JumpStart's for BERT-base on GPUs) left TREC-50 at 0.48 where 1e-4
  reached 0.7+; 1e-4 was at or near the best of {5e-5, 1e-4, 2e-4, 4e-4} on every set measured.
* ``head_learning_rate_scale`` 10: the fresh classification head steps at ten times the network's
  rate (1 when only the head trains, or when a textclf folder's trained head goes on training).
* ``batch_size`` 32, on every data set measured: on SST-2's 1,200 training rows, batch 16 (twice
  the steps) scored 4 points lower and took 25% longer; larger batches leave small sets too few steps.
* ``epochs`` from a budget of training examples: enough passes to see about
  ``SAMPLE_BUDGET`` examples, fewer when the texts are long (a budget of ``TOKEN_BUDGET``
  tokens), between 1 and ``MAX_EPOCHS``. Small and many-class data sets need many more passes
  than three (TREC-50: 4,400 rows, 50 classes); a large set needs one. The best epoch is kept,
  so an epoch too many costs time, not accuracy. Multi-label data gets twice both budgets
  (``MULTI_LABEL_BUDGET_SCALE``).
* ``warmup_ratio`` 0.1 (BERT's and AutoTrain's).
* ``evaluations_per_epoch``: one check on the validation data every ``STEPS_PER_CHECK``
  optimizer steps (counted across all processes), at most ``MAX_CHECKS`` per epoch, so a
  one-epoch run on a large set keeps its best point instead of only its last.

:func:`plan` runs the rule without training, for ``textclf hyperparameters --model M --data D``;
:func:`recorded` reads back what a textclf folder was trained with.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import ADDED_HYPERPARAMETERS, AUTO_FIELDS, Hyperparameters
from ..data import ReadOptions

if TYPE_CHECKING:
    from ..models import ModelSource

__all__ = [
    "HEAD_SCALE",
    "DataShape",
    "MAX_CHECKS",
    "MAX_EPOCHS",
    "MULTI_LABEL_BUDGET_SCALE",
    "ModelShape",
    "SAMPLE_BUDGET",
    "STEPS_PER_CHECK",
    "TOKEN_BUDGET",
    "choose",
    "describe",
    "plan",
    "recorded",
]

SAMPLE_BUDGET = 24_000
"""Training examples a run sees when the epochs are chosen for it (before the token cap)."""
TOKEN_BUDGET = 600_000
"""Tokens a run trains on at most when the epochs are chosen for it (long texts need fewer passes)."""
HEAD_SCALE = 10.0
"""The head's learning rate as a multiple of the network's, when the whole network trains."""
MAX_EPOCHS = 6
"""The most epochs chosen automatically."""
MULTI_LABEL_BUDGET_SCALE = 2
"""Multi-label data gets this many times the example and token budgets: a yes or no for every label of every
row learns more slowly than one class a row (GoEmotions' 28 labels, 8,000 rows: 6 epochs against 3 raised test
macro F1 from 38.8 to 43.5; bench/RESULTS.md)."""
STEPS_PER_CHECK = 500
"""Optimizer steps between validation checks within an epoch, when they are chosen automatically."""
MAX_CHECKS = 4
"""The most validation checks per epoch chosen automatically."""
SENTENCE_EMBEDDING_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")


@dataclass(frozen=True)
class ModelShape:
    """What the rule reads off a model's config: width, depth, decoder or encoder, sentence-embedding checkpoint."""

    width: int
    layers: int
    decoder: bool = False
    sentence_embedding: bool = False

    @classmethod
    def of(cls, config, source: ModelSource | str | Path | None = None) -> ModelShape:
        """From a transformers config (BERT, RoBERTa, DistilBERT, GPT-2 names alike) and, if given, where
        the model comes from (a folder, or a :class:`ModelSource`: a Hub model's files are in the local cache)."""
        from ..models import is_decoder

        width = _first(config, ("hidden_size", "n_embd", "d_model", "dim"), 768)
        layers = _first(config, ("num_hidden_layers", "n_layer", "num_layers", "n_layers"), 12)
        embedding = source is not None and any(_has_file(source, name) for name in SENTENCE_EMBEDDING_FILES)
        return cls(width, layers, is_decoder(config), embedding)

    def describe(self) -> str:
        kind = "decoder" if self.decoder else "sentence-embedding encoder" if self.sentence_embedding else "encoder"
        return f"{self.layers}-layer, {self.width}-wide {kind}"


@dataclass(frozen=True)
class DataShape:
    """What the rule reads off the training data: rows, classes and mean tokens per text (after truncation)."""

    rows: int
    classes: int
    mean_tokens: float
    multi_label: bool = False

    @classmethod
    def of(cls, train_ids: Sequence[Sequence[int]], classes: int, multi_label: bool = False) -> DataShape:
        rows = len(train_ids)
        return cls(rows, classes, sum(map(len, train_ids)) / max(rows, 1), multi_label)

    def describe(self) -> str:
        kind = "labels (multi-label)" if self.multi_label else "classes"
        return f"{self.rows:,} training rows, {self.classes} {kind}, {self.mean_tokens:.0f} tokens per text"


def choose(
    hp: Hyperparameters,
    model: ModelShape,
    data: DataShape,
    *,
    head_reused: bool = False,
    processes: int = 1,
    validation: bool = True,
) -> tuple[Hyperparameters, dict[str, str]]:
    """``hp`` with every auto (None) field chosen, and the reason for each one chosen, by name.

    ``head_reused``: the model's own trained head goes on training (a textclf folder with the same
    labels); ``processes``: data-parallel processes, each taking ``batch_size`` rows a step;
    ``validation``: whether the run has validation data to check against."""
    reasons: dict[str, str] = {}
    values: dict[str, object] = {}

    def pick(name: str, value: object, reason: str) -> object:
        given = getattr(hp, name)
        if given is not None:
            return given
        values[name], reasons[name] = value, reason
        return value

    pick("learning_rate", *_learning_rate(hp, model))
    pick("head_learning_rate_scale", *_head_scale(hp, head_reused))
    batch = pick("batch_size", *_batch_size(data))
    pick("epochs", *_epochs(data))
    pick("warmup_ratio", 0.1, "10% of the optimizer steps, as BERT and AutoTrain warm up")
    steps = math.ceil(data.rows / (batch * hp.gradient_accumulation_steps * processes))
    pick("evaluations_per_epoch", *_checks(steps, validation))
    return dataclasses.replace(hp, **values), reasons


def _learning_rate(hp: Hyperparameters, model: ModelShape) -> tuple[float, str]:
    if hp.train_only_top_layer:
        return 1e-3, "only the classification head trains"
    if model.width <= 512:
        return 1e-4, f"{model.describe()}: small models fine-tune best near 1e-4"
    if model.width <= 768:
        return 5e-5, f"{model.describe()}: base-size models, the top of BERT's 2e-5..5e-5 grid"
    return 2e-5, f"{model.describe()}: large models diverge at higher rates"


def _head_scale(hp: Hyperparameters, head_reused: bool) -> tuple[float, str]:
    if hp.train_only_top_layer:
        return 1.0, "only the head trains: learning_rate is its rate"
    if head_reused:
        return 1.0, "the model's own trained head goes on training, as the network does"
    return HEAD_SCALE, "a fresh head starts at random: it needs larger steps than the pretrained network"


def _batch_size(data: DataShape) -> tuple[int, str]:
    return 32, f"{data.rows:,} training rows: 32 measured best from 1,200 to 54,000 rows"


def _epochs(data: DataShape) -> tuple[int, str]:
    scale = MULTI_LABEL_BUDGET_SCALE if data.multi_label else 1
    samples, tokens = SAMPLE_BUDGET * scale, TOKEN_BUDGET * scale
    by_samples = samples / max(data.rows, 1)
    by_tokens = tokens / max(data.rows * data.mean_tokens, 1)
    epochs = max(1, min(MAX_EPOCHS, round(min(by_samples, by_tokens))))
    budget = (
        f"about {samples:,} examples"
        if by_samples <= by_tokens
        else f"about {tokens:,} tokens ({data.mean_tokens:.0f} per text)"
    )
    why = " (multi-label: twice the budget)" if data.multi_label else ""
    return epochs, f"{data.rows:,} training rows, {budget} in all{why}, 1..{MAX_EPOCHS} epochs"


def _checks(steps_per_epoch: int, validation: bool) -> tuple[int, str]:
    if not validation:
        return 1, "no validation data: nothing to check against"
    checks = max(1, min(MAX_CHECKS, steps_per_epoch // STEPS_PER_CHECK))
    if checks == 1:
        return 1, f"{steps_per_epoch} optimizer steps per epoch"
    return checks, f"{steps_per_epoch} optimizer steps per epoch: a check every ~{steps_per_epoch // checks}"


def _has_file(source: ModelSource | str | Path, name: str) -> bool:
    """Whether the model has file ``name``: in its folder, or for a Hub model in the local cache (no download)."""
    from ..models import ModelSource

    if isinstance(source, ModelSource) and source.kind == "hub":
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(source.location, name), str)
    return (Path(source.location if isinstance(source, ModelSource) else source) / name).is_file()


def _first(config, names: Sequence[str], default: int) -> int:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return default


def describe(reasons: dict[str, str], hp: Hyperparameters) -> list[str]:
    """One line per chosen value: ``learning_rate 0.0001 (auto: 6-layer, 384-wide encoder: ...)``."""
    return [f"{name} {getattr(hp, name):g} (auto: {reasons[name]})" for name in AUTO_FIELDS if name in reasons]


def plan(
    data: str | Path,
    *,
    model: str | Path | None = None,
    validation: str | Path | None = None,
    hyperparameters: Hyperparameters | None = None,
    read_options: ReadOptions | None = None,
    processes: int = 1,
) -> tuple[Hyperparameters, dict[str, str]]:
    """The hyperparameters ``train`` would use on this model and data (with ``processes``
    data-parallel processes), and why for each auto one.

    Reads the data (split as training splits it) and the model's config and tokenizer, not its weights."""
    from ..batching import encode
    from ..models import check_max_length, keeps_head, load_config_and_tokenizer, resolve_model
    from .run import read_data

    hp = hyperparameters or Hyperparameters()
    source = resolve_model(model)
    td = read_data(source, data, validation, read_options or ReadOptions(), hp, lambda message: None)
    config, tokenizer = load_config_and_tokenizer(source)
    check_max_length(config, tokenizer, hp.max_seq_length)
    shape = DataShape.of(encode(tokenizer, td.train_texts, hp.max_seq_length), len(td.labels), td.labels.multi_label)
    return choose(
        hp,
        ModelShape.of(config, source),
        shape,
        head_reused=keeps_head(source, config, td.labels, hp.reinitialize_top_layer),
        processes=processes,
        validation=bool(td.val_texts),
    )


def recorded(folder: str | Path) -> tuple[Hyperparameters, dict[str, str]]:
    """The hyperparameters a textclf folder was trained with, and the reasons for those chosen.

    A folder older than a hyperparameter counts as run with its old value (ADDED_HYPERPARAMETERS)."""
    from ..artifact import read_metadata

    meta = read_metadata(folder) or {}
    values = {**ADDED_HYPERPARAMETERS, **meta.get("hyperparameters", {})}
    return Hyperparameters.from_mapping(values, source=f"{folder}/textclf.json"), meta.get("auto_hyperparameters", {})
