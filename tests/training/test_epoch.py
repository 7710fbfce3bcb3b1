"""One epoch's pass: gradient accumulation weighting, and each step's learning rate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import make_sentences
from textclf.batching import collate, encode
from textclf.data import LabelSet
from textclf.models import load_for_training, resolve_model
from textclf.training.epoch import EpochPass, train_epoch
from textclf.training.schedule import LinearSchedule

LABELS = LabelSet(("negative", "positive"), integer=False)


class Listed(list):
    """Fixed batches, as train_epoch takes them (none sifted; how far into the data they got is not used)."""

    produced = 0
    sifting_started = False


class Counted:
    """Batches that count the rows of data they consumed (twice the rows they yield) and are sifted from one on."""

    def __init__(self, batches: list[dict], sifted_from: int):
        self.batches, self.sifted_from = batches, sifted_from
        self.produced, self.sifting_started = 0, False

    def __iter__(self):
        for i, batch in enumerate(self.batches):
            self.produced += 2 * len(batch["labels"])
            self.sifting_started = i >= self.sifted_from
            yield batch


def model_and_batches(tiny_bert, sizes: list[int]) -> tuple[torch.nn.Module, list[dict]]:
    """The tiny BERT without dropout, and batches of ``sizes`` rows of the planted-word task."""
    rows = make_sentences(sum(sizes))
    y = [LABELS.label2id[lab] for lab, _ in rows]
    torch.manual_seed(0)
    net, tokenizer, _ = load_for_training(resolve_model(tiny_bert), LABELS)
    for m in net.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    ids = encode(tokenizer, [text for _, text in rows], 32)
    bounds = np.cumsum([0, *sizes])
    batches = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        padded = collate(ids, np.arange(start, end), tokenizer.pad_token_id)
        batches.append(
            {
                "input_ids": padded.input_ids,
                "attention_mask": padded.attention_mask,
                "labels": torch.tensor(y[start:end]),
            }
        )
    return net, batches


@pytest.mark.parametrize(
    ("sizes", "reference"),
    [
        ([16, 16], [32]),
        ([16, 16, 16], [32, 16]),  # a short last group
        ([20, 12, 9], [32, 9]),  # uneven micro-batches: every sample must weigh the same
    ],
)
def test_gradient_accumulation_equals_one_big_batch(tiny_bert, sizes, reference):
    def run(batch_sizes, accumulation):
        net, batches = model_and_batches(tiny_bert, batch_sizes)
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        # no clipping: it would hide a wrongly scaled gradient
        train_epoch(net, Listed(batches), EpochPass(optimizer, accumulation, max_grad_norm=1e9))
        return net.classifier.weight.detach().clone()

    torch.testing.assert_close(run(sizes, accumulation=2), run(reference, accumulation=1), atol=1e-6, rtol=1e-4)


def test_each_step_gets_the_schedules_rate_at_the_data_consumed_and_the_sifted_rate_once_sifted(tiny_bert):
    net, batches = model_and_batches(tiny_bert, [4, 4, 4, 4, 2])
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    schedule = LinearSchedule(optimizer, peak=1.0, warmup_ratio=0.0)
    rates, losses, consumed = [], [], []
    steps = EpochPass(
        optimizer,
        accumulation=2,
        schedule=schedule,
        rows_before=20,
        rows_total=100,
        sifted_rate=3.0,
        advance=losses.append,
        after_step=lambda rows: (rates.append(optimizer.param_groups[0]["lr"]), consumed.append(rows)),
    )
    tally = train_epoch(net, Counted(batches, sifted_from=3), steps)
    # steps after batches 2, 4 and 5 (the short last group): 16, 32 and 36 rows of data consumed by then;
    # the second step's last micro-batch is sifted, and so is the third's
    assert rates == pytest.approx([1 - 36 / 100, 3 * (1 - 52 / 100), 3 * (1 - 56 / 100)])
    assert consumed == [16, 32, 36]  # what after_step is told: the rows of this pass consumed by then
    assert (
        tally.rows == 18
        and len(losses) == 5
        and tally.loss == pytest.approx(sum(losses[i] * n for i, n in enumerate([4, 4, 4, 4, 2])))
    )
