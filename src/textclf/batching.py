"""Tokenise once, then batch by length with dynamic padding.

Padding every batch to the longest text in the corpus (or to max_seq_length)
wastes most of the compute on short-text data such as SST-2, so batches are
built from texts of similar length: shuffle, cut into mega-batches of
``GROUP`` batches, sort each mega-batch by length, slice it into batches and
shuffle the batch order. Each batch is padded only to its own longest text.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

__all__ = ["Batch", "collate", "encode", "eval_batches", "length_grouped_batches", "pad"]

GROUP = 50  # batches per mega-batch; as in transformers' LengthGroupedSampler


def encode(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of each text, truncated to ``max_length``, unpadded."""
    if not texts:
        return []
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]


class Batch:
    """Padded tensors for one batch, and which rows of the dataset they hold."""

    __slots__ = ("rows", "input_ids", "attention_mask")

    def __init__(self, rows: np.ndarray, input_ids, attention_mask):
        self.rows = rows
        self.input_ids = input_ids
        self.attention_mask = attention_mask

    def __len__(self) -> int:
        return len(self.rows)


def collate(ids: Sequence[list[int]], rows: np.ndarray, pad_id: int, left: bool = False) -> Batch:
    """Pad ``ids[rows]`` to the longest of them, on the right (or left), as torch tensors."""
    import torch

    input_ids, mask = pad([ids[r] for r in rows], pad_id, left)
    return Batch(np.asarray(rows), torch.from_numpy(input_ids), torch.from_numpy(mask))


def pad(seqs: Sequence[list[int]], pad_id: int, left: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(input_ids, attention_mask)``: int64 arrays of ``seqs`` padded to the longest of them."""
    width = max(len(s) for s in seqs)
    input_ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for i, s in enumerate(seqs):
        if left:
            input_ids[i, width - len(s) :] = s
            mask[i, width - len(s) :] = 1
        else:
            input_ids[i, : len(s)] = s
            mask[i, : len(s)] = 1
    return input_ids, mask


def length_grouped_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Row indices per training batch: random, but each batch of similar lengths.

    Rows are shuffled and cut into mega-batches of ``GROUP`` batches, each sorted by length
    (as in transformers' LengthGroupedSampler) and cut into batches; then every batch is
    shuffled. Leaving the batches of a mega-batch in length order (HF's order) cost SST-2
    1.6 points of dev accuracy after one epoch on 8,000 rows.
    """
    lengths = np.asarray(lengths)
    order = rng.permutation(len(lengths))
    span = batch_size * GROUP
    batches: list[np.ndarray] = []
    for start in range(0, len(order), span):
        chunk = order[start : start + span]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


CALL_COST_TOKENS = 64
"""Fixed cost of one forward pass, in padded tokens: what splitting a batch must save to pay off.
Measured on MiniLM-L6 (2 CPU cores, SST-2 dev): 32..256 all beat one padded batch by 1.3-1.7x."""


def eval_batches(lengths: Sequence[int], batch_size: int, call_cost: float = CALL_COST_TOKENS) -> Iterator[np.ndarray]:
    """Row indices for inference, longest batches first.

    Texts are sorted by length and cut into runs of at most ``batch_size`` so that the padded
    tokens plus ``call_cost`` per forward pass are fewest (exact, by dynamic programming): a
    mixed batch is split where the lengths jump, a uniform one stays whole.
    """
    order = np.argsort(np.asarray(lengths), kind="stable")
    sorted_lengths = np.asarray(lengths)[order]
    n = len(order)
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    cut = np.zeros(n + 1, dtype=np.int64)
    for end in range(1, n + 1):
        starts = np.arange(max(0, end - batch_size), end)
        costs = best[starts] + call_cost + (end - starts) * sorted_lengths[end - 1]
        k = int(np.argmin(costs))
        best[end], cut[end] = costs[k], starts[k]
    bounds, end = [], n
    while end > 0:
        bounds.append((int(cut[end]), end))
        end = int(cut[end])
    for start, end in bounds:  # collected from the longest texts down
        yield order[start:end]
