"""Loss-based data sifting: leave samples the model already handles out of the backward pass.

Relative probabilistic sifting, as in Selective Backprop (Jiang et al., 2019): every
candidate sample's loss is computed in a cheap forward pass (inference mode, no
dropout, the batch already tokenised and padded); its percentile ``p`` among the
last ``loss_history_length`` losses (its own batch's included) gives it a keep
probability ``p ** beta``, never less than ``min_keep_probability`` (0.2; Selective
Backprop's reference code has the same floor, ``sampling_min``). With losses drawn from
one distribution ``p`` is uniform, so about ``1 / (1 + beta)`` of the data is kept, more
with the floor (``SiftingConfig.keep_fraction``: 0.52 at beta 1, 0.34 instead of 0.25 at
beta 3). The floor keeps an unbiased share of every batch: trained only on the rows it
gets most wrong, a model can drift to predicting every class alike and stay there (on
SST-2 at beta 3 without the floor, within 20 steps of the start of sifting; with it the
loss kept falling: bench/RESULTS.md, Sifting). Kept samples accumulate until a full
batch, which then gets the normal forward and backward pass. The first ``delay`` batches pass unsifted (and the rest
of the loader batch in which the delay ends). The scoring
pass only ranks losses, so by default (``scoring_dtype="auto"``) it runs under bfloat16
autocast where the hardware multiplies bfloat16 natively, about twice as fast as float32.

Use it in your own PyTorch loop::

    from textclf.training.sifting import SiftingConfig, SiftingDataLoader

    loader = DataLoader(dataset, batch_size=32, shuffle=True, collate_fn=collator)
    sifted = SiftingDataLoader(loader, model, torch.nn.CrossEntropyLoss(reduction="none"),
                               SiftingConfig(beta=1.0), pad_values={"input_ids": tokenizer.pad_token_id})
    for epoch in range(3):
        for batch in sifted:               # same structure as the loader's batches
            loss = model(**batch).loss
            loss.backward(); optimizer.step(); optimizer.zero_grad()
        print(sifted.stats)                # seen, kept, fraction sifted, scoring seconds

Each yielded batch holds the kept rows of about ``1 / keep_fraction`` loader batches (1 + beta
without the floor), so a pass takes fewer optimizer steps; with Adam, multiply the learning
rate of the sifted steps by ``sqrt(1 / config.keep_fraction)`` (:func:`sifted_learning_rate`, as
textclf's own loop does: ``sifting_lr_scaling``), or a pass moves the weights less far than an
unsifted one. The sifted steps are those from the first batch for which
``sifted.sifting_started`` is true (read it after the batch is yielded).

Batches are dicts of tensors with a ``labels`` entry (scored as ``model(**rest)``,
taking ``.logits`` when the output has it), or tuples ``(*inputs, labels)`` (scored
as ``model(*inputs)``). ``loss_fn(outputs, labels)`` must return one loss per sample.

The loader's batches are the candidates; they may be larger than ``batch_size`` (the
training batch). Candidates of rows of similar length, many batches each, make joined batches
tight: few of them straddle two candidates. A candidate of at least ``loss_history_length``
rows is ranked among its own last ``loss_history_length`` losses, so each such band keeps about
``keep_fraction`` of its rows however its losses compare with the band before it (textclf's
candidates of ``16 * batch_size`` rows are at the defaults: 512 >= 500).
``scoring_batch_size`` scores a large candidate in slices of that many rows (each cut to its own
longest row), which bounds the scoring pass's memory. textclf's own loop sifts candidates of
``16 * batch_size`` rows of similar length and scores them ``4 * batch_size`` at a time
(:mod:`textclf.training.batches`).

``shuffle_batches=True`` yields the full batches cut from the kept rows of each loader batch
(with those still waiting) in a seeded random order rather than one after the other: with
candidates of rows sorted by length, their batches would otherwise go from long to short.

Guarantees: a sample appears in at most one yielded batch; kept samples are yielded
in the order the underlying loader produced them (with ``shuffle_batches``, the rows of each
yielded batch are, and the batches are those of arrival order, shuffled once per loader batch);
every yielded batch has the
loader's batch size except the last of a pass, which holds the leftover kept
samples (dropped with ``drop_last=True``). Rows joined from batches of different
widths are padded on ``padding_side`` with ``pad_values[key]`` (default 0), and
columns that are padding in every row (per ``attention_mask``) are dropped. The
same seed and the same sequence of batches and losses give the same selection.
The first ``delay`` yielded batches (counted over all passes), and the rest of the loader
batch in which they end, are trained on unsifted and unscored; a loader batch of exactly
``batch_size`` rows then passes through untouched.
``state_dict()`` and ``load_state_dict()`` save and restore all of it, between passes or in
the middle of one (kept rows not yet yielded included), for checkpoints.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import Hyperparameters
from ..errors import ConfigError
from ..models import native_bf16
from ..validation import at_least, one_of

__all__ = [
    "RelativeProbabilisticSifter",
    "SiftingConfig",
    "SiftingDataLoader",
    "SiftingStats",
    "sifted_learning_rate",
]

_FROM_HYPERPARAMETERS = ("beta", "loss_history_length", "delay", "scoring_dtype", "min_keep_probability")
"""The :class:`SiftingConfig` fields that hyperparameter ``sifting_<field>`` sets (and states the rules of)."""


@dataclass(frozen=True)
class SiftingConfig:
    """How much to sift. ``beta`` 1 keeps about half of the data, 3 about a third (a quarter with
    ``min_keep_probability=0``): ``keep_fraction``."""

    beta: float = 1.0
    loss_history_length: int = 500
    delay: int = 100
    seed: int = 0
    scoring_dtype: str = "auto"  # float32, bfloat16, or auto: bfloat16 autocast where the hardware has it natively
    min_keep_probability: float = 0.2  # the floor of every sample's keep probability (see the module's docstring)

    def __post_init__(self) -> None:
        # the rules are Hyperparameters', written once
        Hyperparameters(**{f"sifting_{f}": getattr(self, f) for f in _FROM_HYPERPARAMETERS})

    @classmethod
    def from_hyperparameters(cls, hp: Hyperparameters, *, seed: int | None = None) -> SiftingConfig:
        """The sifting settings of ``hp``; ``seed`` is the sifter's (default ``hp.seed``).

        >>> SiftingConfig.from_hyperparameters(Hyperparameters(sifting_beta=3.0), seed=1).beta
        3.0
        """
        return cls(
            **{f: getattr(hp, f"sifting_{f}") for f in _FROM_HYPERPARAMETERS}, seed=hp.seed if seed is None else seed
        )

    @property
    def keep_fraction(self) -> float:
        """The share of the data kept when the percentiles are uniform: the mean over p in [0, 1] of
        max(min_keep_probability, p ** beta). 1 / (1 + beta) without the floor; with the default
        floor 0.2: 0.669 at beta 0.5, 0.52 at beta 1, 0.338 at beta 3."""
        floor, beta = self.min_keep_probability, self.beta
        if beta == 0 or floor >= 1:
            return 1.0
        below = floor ** (1 / beta)  # the percentile under which the floor is the keep probability
        return floor * below + (1 - below ** (1 + beta)) / (1 + beta)


def sifted_learning_rate(config: SiftingConfig, scaling: str = "sqrt") -> float:
    """The learning-rate factor of optimizer steps on sifted batches (``sifting_lr_scaling``: sqrt or none).

    A sifted batch holds the kept rows of about 1 / keep_fraction batches of data (1 + beta
    without the floor on the keep probability), so an epoch takes keep_fraction as many
    optimizer steps. Adam's steps are about as long whatever the gradient's size, so with the
    same learning rate a sifted epoch would move the weights about half as far (beta 1).
    ``scaling="sqrt"`` applies the square-root scaling rule for Adam with a batch 1 / keep_fraction
    times larger (Malladi et al., 2022): 1.39 at beta 1 (0.52 kept), 1.72 at beta 3 (0.34 kept).
    The scaled rate starts with the first step that holds a batch yielded after a process scored
    its first candidate (:attr:`SiftingDataLoader.sifting_started`, agreed across processes): the
    delay, up to the end of the candidate in which it ends, keeps the plain rate.

        >>> round(sifted_learning_rate(SiftingConfig(beta=3.0)), 2)
        1.72
    """
    return math.sqrt(1.0 / config.keep_fraction) if scaling == "sqrt" else 1.0


class RelativeProbabilisticSifter:
    """Decides which samples to keep from their losses: keep with probability percentile ** beta."""

    def __init__(self, config: SiftingConfig):
        self.config = config
        self.history: deque[float] = deque(maxlen=config.loss_history_length)
        self.rng = np.random.default_rng(config.seed)

    def keep(self, losses: np.ndarray) -> np.ndarray:
        """A boolean mask over ``losses``, which first join the history: each is ranked among the last
        ``loss_history_length`` losses, its own batch's included. A batch at least as large as the
        history is therefore ranked among its own last losses, whatever the batches before it held."""
        losses = np.asarray(losses, dtype=np.float64)
        self.history.extend(losses.tolist())
        past = np.sort(np.fromiter(self.history, dtype=np.float64))
        percentile = np.searchsorted(past, losses, side="right") / len(past)
        return self.rng.random(len(losses)) < np.maximum(percentile**self.config.beta, self.config.min_keep_probability)


@dataclass
class SiftingStats:
    """Counts for one pass over the data."""

    seen: int = 0
    kept: int = 0
    scoring_seconds: float = 0.0

    @property
    def fraction_sifted(self) -> float:
        return 1.0 - self.kept / self.seen if self.seen else 0.0


class SiftingDataLoader:
    """Wraps a re-iterable loader of batches; yields full batches of the samples worth training on."""

    def __init__(
        self,
        dataloader: Iterable,
        model: torch.nn.Module,
        loss_fn: Callable[[Any, torch.Tensor], torch.Tensor],
        config: SiftingConfig = SiftingConfig(),
        *,
        batch_size: int | None = None,
        pad_values: Mapping[str, int] | None = None,
        padding_side: str = "right",
        drop_last: bool = False,
        forward: Callable[[torch.nn.Module, Any], Any] | None = None,
        scoring_batch_size: int | None = None,
        shuffle_batches: bool = False,
    ):
        self.dataloader = dataloader
        self.model = model
        self.loss_fn = loss_fn
        self.config = config
        self.batch_size = batch_size or getattr(dataloader, "batch_size", None)
        if not self.batch_size:
            raise ConfigError("SiftingDataLoader needs batch_size when the loader does not have one.")
        self.pad_values = dict(pad_values or {})
        one_of("padding_side", padding_side, ("right", "left"))
        self.pad_left = padding_side == "left"
        self.drop_last = drop_last
        self.forward = forward or _default_forward
        at_least("scoring_batch_size", scoring_batch_size, 1)
        self.scoring_batch_size = scoring_batch_size
        self.shuffle_batches = shuffle_batches
        self._order_rng = np.random.default_rng([config.seed, 1])  # its own: the keep decisions do not depend on it
        self.sifter = RelativeProbabilisticSifter(config)
        self.batches_yielded = 0  # across passes: the delay counts from the start of training
        self.stats = SiftingStats()
        self._pending: list[tuple[Any, np.ndarray]] = []  # (batch, kept row indices), in arrival order
        self._in_pass = False  # between the first and last batch of a pass
        self._continue = False  # the next iter() goes on with a pass restored by load_state_dict

    def __iter__(self) -> Iterator:
        if not self._continue:  # a new pass, not the rest of one restored by load_state_dict
            self.stats = SiftingStats()
            self._pending = []
        self._continue, self._in_pass = False, True
        waiting = sum(len(keep) for _, keep in self._pending)
        while waiting >= self.batch_size:  # full batches a restored pass had not yielded yet come first
            yield self._next_full()
            waiting -= self.batch_size
        for batch in self.dataloader:
            rows = _num_rows(batch)
            self.stats.seen += rows
            if self.batches_yielded < self.config.delay:
                if not self._pending and rows == self.batch_size:
                    self.stats.kept += rows
                    self.batches_yielded += 1
                    yield batch
                    continue
                keep = np.arange(rows)  # still in the delay: every row is trained on, none is scored
            else:
                keep = np.flatnonzero(self.sifter.keep(self._losses(batch)))
            self.stats.kept += len(keep)
            if len(keep):
                self._pending.append((batch, keep))
                waiting += len(keep)
                if self.shuffle_batches:
                    self._shuffle_full_batches(waiting)
            while waiting >= self.batch_size:
                yield self._next_full()
                waiting -= self.batch_size
        rest, self._pending = self._pending, []
        if waiting and self.drop_last:
            self.stats.kept -= waiting
        elif waiting:
            self.batches_yielded += 1
            yield self._join(rest)
        self._in_pass = False

    @property
    def sifting_started(self) -> bool:
        """Whether sifting has begun: a loader batch has been scored, so the batch just yielded and all
        later ones hold sifted rows (the steps whose learning rate to scale: see the module's docstring)."""
        return bool(self.sifter.history)

    def _shuffle_full_batches(self, waiting: int) -> None:
        """Put the full batches waiting (cut in arrival order) in random order, the rest of the rows last."""
        groups, rest = [], self._pending
        for _ in range(waiting // self.batch_size):
            group, rest = _take(rest, self.batch_size)
            groups.append(group)
        self._pending = [part for i in self._order_rng.permutation(len(groups)) for part in groups[i]] + rest

    def _next_full(self) -> Any:
        """The first ``batch_size`` kept rows waiting, joined into a batch."""
        full, self._pending = _take(self._pending, self.batch_size)
        self.batches_yielded += 1
        return self._join(full)

    def state_dict(self) -> dict:
        """What it takes to go on exactly from here: the sifter's loss history and RNG, the batches
        yielded, and the pass in progress (its counts and the kept rows not yet yielded).

        Saved between two batches of a pass, the next ``iter()`` after :meth:`load_state_dict`
        continues that pass (from wherever the wrapped loader then starts: position it where it
        was); saved between passes, the next pass starts afresh. Tensors are kept as they are.
        """
        return {
            "history": list(self.sifter.history),
            "rng": self.sifter.rng.bit_generator.state,
            "order_rng": self._order_rng.bit_generator.state,
            "batches_yielded": self.batches_yielded,
            "stats": dataclasses.asdict(self.stats),
            "in_pass": self._in_pass,
            "pending": [(batch, torch.from_numpy(keep)) for batch, keep in self._pending],
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` (of a loader with the same config)."""
        self.sifter.history.clear()
        self.sifter.history.extend(state["history"])
        self.sifter.rng.bit_generator.state = state["rng"]
        if "order_rng" in state:  # absent from checkpoints of textclf before shuffle_batches
            self._order_rng.bit_generator.state = state["order_rng"]
        self.batches_yielded = state["batches_yielded"]
        self.stats = SiftingStats(**state["stats"])
        self._pending = [(batch, keep.numpy()) for batch, keep in state["pending"]]
        self._continue = state["in_pass"]

    def _losses(self, batch: Any) -> np.ndarray:
        start = time.perf_counter()
        was_training = self.model.training
        self.model.eval()
        rows = _num_rows(batch)
        step = self.scoring_batch_size or rows
        parts = []
        try:
            with torch.inference_mode(), _scoring_autocast(self.model, self.config.scoring_dtype):
                for first in range(0, rows, step):
                    part = batch if step >= rows else _rows(batch, slice(first, first + step))
                    losses = self.loss_fn(self.forward(self.model, part), _labels(part))
                    if losses.ndim != 1 or losses.shape[0] != _num_rows(part):
                        raise ConfigError(
                            "loss_fn must return one loss per sample; pass e.g. CrossEntropyLoss(reduction='none')."
                        )
                    parts.append(losses.float())
        finally:
            self.model.train(was_training)
        values = torch.cat(parts).cpu().numpy()  # waits for the device, so the timing is honest
        self.stats.scoring_seconds += time.perf_counter() - start
        return values

    def _join(self, parts: list[tuple[Any, np.ndarray]]) -> Any:
        first = parts[0][0]
        if isinstance(first, Mapping):
            return _without_padding_columns(
                {
                    k: _cat([b[k][torch.from_numpy(i)] for b, i in parts], self.pad_values.get(k, 0), self.pad_left)
                    for k in first
                }
            )
        return type(first)(
            _cat([b[j][torch.from_numpy(i)] for b, i in parts], 0, self.pad_left) for j in range(len(first))
        )


def _rows(batch: Any, rows: slice) -> Any:
    """Some rows of a batch (dict batches: less the columns that are padding in all of them)."""
    if isinstance(batch, Mapping):
        return _without_padding_columns({k: v[rows] for k, v in batch.items()})
    return type(batch)(t[rows] for t in batch)


def _without_padding_columns(batch: dict) -> dict:
    """``batch`` less the columns that are padding in every row (per its ``attention_mask``)."""
    mask = batch.get("attention_mask")
    if mask is None or mask.ndim != 2 or mask.all(dim=0).all():
        return batch
    used = mask.any(dim=0)
    return {
        k: v[:, used] if k != "labels" and v.ndim == 2 and v.shape[1] == used.shape[0] else v for k, v in batch.items()
    }  # multi-label targets are 2-D too, one column a label


def _take(pending: list[tuple[Any, np.ndarray]], n: int) -> tuple[list, list]:
    """Split the first ``n`` kept rows off ``pending``."""
    taken, rest = [], list(pending)
    while n:
        batch, idx = rest.pop(0)
        if len(idx) > n:
            taken.append((batch, idx[:n]))
            rest.insert(0, (batch, idx[n:]))
            break
        taken.append((batch, idx))
        n -= len(idx)
    return taken, rest


def _cat(tensors: list[torch.Tensor], pad_value: int, left: bool) -> torch.Tensor:
    """Rows of ``tensors`` stacked; 2-D tensors of different widths are padded to the widest."""
    if tensors[0].ndim == 2:
        width = max(t.shape[1] for t in tensors)
        tensors = [
            torch.nn.functional.pad(t, (width - t.shape[1], 0) if left else (0, width - t.shape[1]), value=pad_value)
            for t in tensors
        ]
    return torch.cat(tensors)


def _scoring_autocast(model: torch.nn.Module, dtype: str):
    """bfloat16 autocast for the scoring pass, where asked for or (``auto``) where it is native and fast."""
    param = next(model.parameters(), None)
    device = "cpu" if param is None else param.device.type
    if dtype == "auto":
        native = native_bf16() if device == "cpu" else device == "cuda" and torch.cuda.is_bf16_supported()
        dtype = "bfloat16" if native else "float32"
    return torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bfloat16")


def _labels(batch: Any) -> torch.Tensor:
    return batch["labels"] if isinstance(batch, Mapping) else batch[-1]


def _num_rows(batch: Any) -> int:
    return len(_labels(batch))


def _default_forward(model: torch.nn.Module, batch: Any) -> Any:
    if isinstance(batch, Mapping):
        out = model(**{k: v for k, v in batch.items() if k != "labels"})
    else:
        out = model(*batch[:-1])
    return getattr(out, "logits", out)
