"""Loss-based sifting: the rule, the wrapper, and its use in training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import textclf
from conftest import FAST
from textclf.config import Hyperparameters
from textclf.errors import ConfigError
from textclf.training import TrainingHooks
from textclf.training.sifting import (
    RelativeProbabilisticSifter,
    SiftingConfig,
    SiftingDataLoader,
    sifted_learning_rate,
)

QUIET = {"progress": False, "log": lambda _: None}


def keep_masks(config: SiftingConfig, losses: np.ndarray, batch: int = 32) -> np.ndarray:
    sifter = RelativeProbabilisticSifter(config)
    return np.concatenate([sifter.keep(losses[i : i + batch]) for i in range(0, len(losses), batch)])


@pytest.mark.parametrize("beta", [0.5, 1.0, 3.0])
def test_keep_fraction_is_one_over_one_plus_beta(beta):
    losses = np.random.default_rng(1).exponential(size=40_000)
    kept = keep_masks(SiftingConfig(beta=beta, min_keep_probability=0.0), losses)
    assert kept.mean() == pytest.approx(1 / (1 + beta), abs=0.015)


@pytest.mark.parametrize(
    ("beta", "floor", "expected"),
    [(0.5, 0.2, 0.6693), (1.0, 0.2, 0.52), (3.0, 0.2, 0.3377), (3.0, 0.5, 0.5476), (1.0, 0.0, 0.5), (0.0, 0.2, 1.0)],
)
def test_the_floor_raises_the_keep_fraction_to_keep_fraction(beta, floor, expected):
    config = SiftingConfig(beta=beta, min_keep_probability=floor)
    assert config.keep_fraction == pytest.approx(expected, abs=1e-4)
    kept = keep_masks(config, np.random.default_rng(1).exponential(size=40_000))
    assert kept.mean() == pytest.approx(expected, abs=0.015)


def test_even_the_lowest_losses_are_kept_with_the_floor_probability():
    losses = np.random.default_rng(5).exponential(size=40_000)
    low = losses <= np.quantile(losses, 0.05)
    bare, floored = (keep_masks(SiftingConfig(beta=3.0, min_keep_probability=f), losses) for f in (0.0, 0.2))
    assert bare[low].mean() < 0.01
    assert floored[low].mean() == pytest.approx(0.2, abs=0.03)
    high = losses >= np.quantile(losses, 0.95)  # above the floor the rule is unchanged
    assert bare[high].mean() == pytest.approx(floored[high].mean(), abs=0.03) and bare[high].mean() > 0.8


def test_higher_losses_are_kept_more_often():
    losses = np.random.default_rng(2).exponential(size=20_000)
    kept = keep_masks(SiftingConfig(beta=1.0), losses)
    low, high = np.quantile(losses, [0.25, 0.75])
    assert kept[losses >= high].mean() > 0.7 > 0.3 > kept[losses <= low].mean()


def test_a_batch_at_least_as_large_as_the_history_is_ranked_within_itself():
    sifter = RelativeProbabilisticSifter(SiftingConfig(beta=1.0, loss_history_length=500, min_keep_probability=0.0))
    rng = np.random.default_rng(4)
    sifter.keep(rng.random(500))  # a band of low losses fills the history
    band = 10 + rng.random(512)
    hard = sifter.keep(band)  # a band of higher losses still keeps about half: its own hardest
    low, high = np.quantile(band, [0.25, 0.75])
    assert 0.4 < hard.mean() < 0.6 and hard[band >= high].mean() > 0.7 > 0.3 > hard[band <= low].mean()
    easy = sifter.keep(rng.random(32))  # a small batch ranks among the history, not only among itself
    assert easy.mean() < 0.2


def test_same_seed_same_selection_other_seed_differs():
    losses = np.random.default_rng(3).exponential(size=5_000)
    a, b = keep_masks(SiftingConfig(seed=7), losses), keep_masks(SiftingConfig(seed=7), losses)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, keep_masks(SiftingConfig(seed=8), losses))


@pytest.mark.parametrize(
    "bad",
    [
        {"beta": -1},
        {"beta": float("nan")},
        {"loss_history_length": 0},
        {"delay": -1},
        {"scoring_dtype": "float16"},
        {"min_keep_probability": -0.1},
        {"min_keep_probability": 1.5},
        {"min_keep_probability": float("nan")},
    ],
)
def test_bad_config_is_refused(bad):
    with pytest.raises(ConfigError):
        SiftingConfig(**bad)


def test_config_from_hyperparameters_takes_the_sifting_settings_and_names_the_hyperparameter_when_refused():
    hp = Hyperparameters(sifting_beta=3.0, sifting_delay=7, sifting_min_keep_probability=0.0, seed=4)
    assert SiftingConfig.from_hyperparameters(hp, seed=5) == SiftingConfig(
        beta=3.0, loss_history_length=500, delay=7, seed=5, scoring_dtype="auto", min_keep_probability=0.0
    )
    assert SiftingConfig.from_hyperparameters(hp).seed == 4
    with pytest.raises(ConfigError, match="sifting_delay must be at least 0, but got sifting_delay=-1"):
        SiftingConfig(delay=-1)


@pytest.mark.parametrize(
    ("beta", "floor", "scaling", "factor"),
    [(3.0, 0.2, "sqrt", 1.7208), (3.0, 0.0, "sqrt", 2.0), (1.0, 0.2, "sqrt", 1.3868), (3.0, 0.2, "none", 1.0)],
)
def test_sifted_learning_rate_is_the_square_root_of_the_inverse_keep_fraction(beta, floor, scaling, factor):
    config = SiftingConfig(beta=beta, min_keep_probability=floor)
    assert sifted_learning_rate(config, scaling) == pytest.approx(factor, abs=1e-4)


class LossIsTheInput(torch.nn.Module):
    """A 'model' whose per-sample loss is the sample's first feature: sifting decisions are known."""

    def forward(self, x):
        return x


def identity_loss(outputs, labels):
    return outputs[:, 0]


class RecordsAutocast(torch.nn.Linear):
    """A linear 'model' that notes, per forward pass, whether it was scoring (eval mode) and under bfloat16 autocast."""

    def __init__(self):
        super().__init__(1, 1)
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, x):
        bf16 = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        self.calls.append((not self.training, bf16))
        return super().forward(x)


@pytest.mark.parametrize(("dtype", "expected"), [("float32", False), ("bfloat16", True), ("auto", None)])
def test_scoring_pass_runs_in_the_asked_precision_and_training_in_float32(dtype, expected, monkeypatch):
    from textclf.training import sifting

    monkeypatch.setattr(sifting, "native_bf16", lambda: True)  # auto follows the hardware check
    model = RecordsAutocast()
    batches = [(torch.randn(8, 1), torch.zeros(8)) for _ in range(4)]
    sifted = SiftingDataLoader(
        batches, model, lambda out, _: out[:, 0].float(), SiftingConfig(delay=0, scoring_dtype=dtype), batch_size=8
    )
    for batch in sifted:
        model(batch[0])  # the caller's training forward, outside the scoring pass
    scoring = [bf16 for is_scoring, bf16 in model.calls if is_scoring]
    training = [bf16 for is_scoring, bf16 in model.calls if not is_scoring]
    assert scoring == [True if expected is None else expected] * 4
    assert training and not any(training)


def toy_loader(n: int = 640, batch: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    feats = torch.tensor(rng.exponential(size=(n, 1)), dtype=torch.float32)
    ids = torch.arange(n)
    return [(feats[i : i + batch], ids[i : i + batch]) for i in range(0, n, batch)]


def test_wrapper_yields_full_batches_in_order_without_duplicates():
    loader = toy_loader()
    sifted = SiftingDataLoader(loader, LossIsTheInput(), identity_loss, SiftingConfig(delay=3), batch_size=32)
    batches = list(sifted)
    ids = torch.cat([b[1] for b in batches]).tolist()
    assert batches[:3] == loader[:3]  # the delay passes the first batches through untouched
    assert ids == sorted(ids) and len(ids) == len(set(ids)) == sifted.stats.kept
    assert all(len(b[1]) == 32 for b in batches[:-1]) and 0 < len(batches[-1][1]) <= 32
    assert 0.3 < sifted.stats.fraction_sifted < 0.6
    assert sifted.stats.seen == 640
    dropped = list(
        SiftingDataLoader(
            loader, LossIsTheInput(), identity_loss, SiftingConfig(delay=3), batch_size=32, drop_last=True
        )
    )
    assert all(len(b[1]) == 32 for b in dropped)


def test_wrapper_keeps_high_loss_samples_and_counts_delay_across_passes():
    loader = toy_loader()
    sifted = SiftingDataLoader(loader, LossIsTheInput(), identity_loss, SiftingConfig(delay=5), batch_size=32)
    first = list(sifted)
    second = list(sifted)
    assert sifted.batches_yielded == len(first) + len(second)
    assert len(torch.cat([b[1] for b in second])) < 640 * 0.7  # the delay is spent: all of the second pass is sifted
    kept = torch.cat([b[0] for b in second])[:, 0]
    all_losses = torch.cat([b[0] for b in loader])[:, 0]
    assert kept.mean() > all_losses.mean()


def test_wrapper_joins_dict_batches_of_different_widths_with_padding():
    class FirstToken(torch.nn.Module):
        def forward(self, input_ids, attention_mask):
            return input_ids[:, :1].float()

    short = {
        "input_ids": torch.tensor([[5, 1], [6, 1]]),
        "attention_mask": torch.ones(2, 2, dtype=torch.long),
        "labels": torch.tensor([0, 1]),
    }
    wide = {
        "input_ids": torch.tensor([[7, 1, 1], [8, 1, 1]]),
        "attention_mask": torch.ones(2, 3, dtype=torch.long),
        "labels": torch.tensor([1, 0]),
    }
    always = SiftingConfig(beta=0.0, delay=0)  # p ** 0 == 1: keep everything
    (batch,) = SiftingDataLoader(
        [short, wide], FirstToken(), lambda out, y: out[:, 0], always, batch_size=4, pad_values={"input_ids": 9}
    )
    assert batch["input_ids"].tolist() == [[5, 1, 9], [6, 1, 9], [7, 1, 1], [8, 1, 1]]
    assert batch["attention_mask"].tolist()[0] == [1, 1, 0]
    assert batch["labels"].tolist() == [0, 1, 1, 0]


def test_wrapper_pads_on_the_left_for_left_padded_models():
    class LastToken(torch.nn.Module):
        def forward(self, input_ids, attention_mask):
            return input_ids[:, -1:].float()

    short = {"input_ids": torch.tensor([[0, 5]]), "attention_mask": torch.tensor([[0, 1]]), "labels": torch.tensor([0])}
    wide = {
        "input_ids": torch.tensor([[6, 7, 8]]),
        "attention_mask": torch.tensor([[1, 1, 1]]),
        "labels": torch.tensor([1]),
    }
    (batch,) = SiftingDataLoader(
        [short, wide],
        LastToken(),
        lambda out, y: out[:, 0],
        SiftingConfig(beta=0.0, delay=0),
        batch_size=2,
        pad_values={"input_ids": 0},
        padding_side="left",
    )
    assert batch["input_ids"].tolist() == [[0, 0, 5], [6, 7, 8]]
    assert batch["attention_mask"].tolist() == [[0, 0, 1], [1, 1, 1]]


def test_joined_batches_drop_columns_that_are_all_padding():
    def padded(width, real):
        ids = torch.zeros(1, width, dtype=torch.long)
        ids[0, :real] = 3
        return {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": torch.tensor([0])}

    class Zero(torch.nn.Module):
        def forward(self, input_ids, attention_mask):
            return torch.zeros(len(input_ids), 1)

    (batch,) = SiftingDataLoader(
        [padded(9, 2), padded(4, 3)], Zero(), lambda out, y: out[:, 0], SiftingConfig(beta=0.0, delay=0), batch_size=2
    )
    assert batch["input_ids"].shape == (2, 3)


def test_loss_fn_must_be_per_sample():
    sifted = SiftingDataLoader(
        toy_loader(), LossIsTheInput(), lambda out, y: out.mean(), SiftingConfig(delay=0), batch_size=32
    )
    with pytest.raises(ConfigError, match="one loss per sample"):
        list(sifted)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tiny_bert", "tiny_gpt2"])
def test_training_with_sifting_records_what_it_sifted(model, request, sentiment_files, tmp_path):
    # The delay covers the first 3 epochs (13 batches each): the tiny models learn the task by then. Sifting from
    # the start fails here: at chance level the loss only tells the labels apart, so the batches kept are nearly
    # all of one class, then of the other, and the model learns a swinging bias instead of the words.
    train, val = sentiment_files
    result = textclf.train(
        train,
        tmp_path / "out",
        model=request.getfixturevalue(model),
        validation=val,
        **QUIET,
        **{**FAST, "epochs": 8, "sifting": True, "sifting_delay": 39, "sifting_beta": 1.0},
    )
    lines = [json.loads(x) for x in (result.output / "metrics.jsonl").read_text().splitlines()]
    lines = [x for x in lines if "epoch" in x]  # the epochs; a calibration line follows them
    assert all(x["samples_seen"] == 200 for x in lines)
    assert all(x["samples_kept"] + round(x["fraction_sifted"] * 200) == 200 for x in lines)
    assert all(x["fraction_sifted"] == 0 and x["scoring_seconds"] == 0 for x in lines[:3])
    assert 0.2 < lines[3]["fraction_sifted"] < 0.8  # losses among the last 500, of the delay's epochs: about half
    assert sum(x["samples_kept"] for x in lines[3:]) < 0.6 * 5 * 200
    assert all(0 < x["scoring_seconds"] < x["train_seconds"] for x in lines[3:])
    confidence = np.load(result.output / "training_dynamics.npz")["confidence"]  # a sifted-out row: NaN that epoch
    assert np.isnan(confidence).sum(axis=1).tolist() == [200 - x["samples_kept"] for x in lines]
    assert result.best["val_accuracy"] >= 0.8 and lines[-1]["val_accuracy"] >= 0.8


def test_epoch_line_reports_seen_kept_and_scoring_time(tiny_bert, sentiment_files, tmp_path):
    logs: list[str] = []
    textclf.train(
        sentiment_files[0],
        tmp_path / "out",
        model=tiny_bert,
        progress=False,
        log=logs.append,
        **{**FAST, "epochs": 2, "sifting": True, "sifting_delay": 0},
    )
    epoch_lines = [line for line in logs if line.startswith("epoch ")]
    assert len(epoch_lines) == 2
    assert all("kept " in line and "/160 (sifted " in line and "scoring " in line for line in epoch_lines)


@pytest.mark.slow
def test_sifting_with_top_layer_only_and_gradient_accumulation(tiny_bert, sentiment_files, tmp_path):
    result = textclf.train(
        sentiment_files[0],
        tmp_path / "out",
        model=tiny_bert,
        validation=sentiment_files[1],
        **QUIET,
        **{**FAST, "sifting": True, "sifting_delay": 2, "train_only_top_layer": True, "gradient_accumulation_steps": 2},
    )
    assert result.history[-1]["fraction_sifted"] > 0.2


# beta 3: sqrt(1 + beta) without the floor; with the default floor 0.2, 0.3377 of the data is kept: sqrt(1 / 0.3377)
@pytest.mark.slow
@pytest.mark.parametrize(
    ("scaling", "accumulation", "floor", "factor"),
    [("sqrt", 1, 0.2, 1.7208), ("sqrt", 3, 0.2, 1.7208), ("sqrt", 1, 0.0, 2.0), ("none", 1, 0.2, 1.0)],
)
def test_sifted_steps_scale_the_learning_rate_from_the_first_sifted_batch(
    scaling, accumulation, floor, factor, tiny_bert, sentiment_files, tmp_path
):
    # each step: the learning rate set for it, the plain schedule's rate, whether a candidate was scored by then
    rates: list[tuple[float, float, bool]] = []

    def after_step(run) -> None:
        plain = run.schedule.peak * run.schedule.factor(run.schedule.progress)
        rates.append((run.optimizer.param_groups[0]["lr"], plain, run.batches.stats.scoring_seconds > 0))

    result = textclf.train(
        sentiment_files[0],
        tmp_path / "out",
        model=tiny_bert,
        hooks=TrainingHooks(after_step=after_step),
        **QUIET,
        **{
            **FAST,
            "epochs": 2,
            "batch_size": 4,
            "sifting": True,
            "sifting_beta": 3.0,
            "sifting_delay": 5,
            "sifting_lr_scaling": scaling,
            "gradient_accumulation_steps": accumulation,
            "sifting_min_keep_probability": floor,
        },
    )
    # 160 training rows, batch 4: candidates of 64, 64 and 32 rows (16, 16 and 8 batches) in random order. The
    # delay (5 batches) ends inside the first, so all of it trains unsifted at the plain rate; sifting, and the
    # scaled rate, start within epoch 1 with the next. With accumulation 3 the step holding the first candidate's
    # last batch also holds sifted ones, so it is scaled: every step taken before the first scoring is plain.
    assert result.history[0]["fraction_sifted"] > 0
    unsifted = [scored for *_, scored in rates].index(True)  # optimizer steps taken before the first scoring
    assert unsifted == (16 if accumulation == 1 else 5) or unsifted == (8 if accumulation == 1 else 2)
    ratios = [lr / plain for lr, plain, _ in rates if plain > 0]
    assert len(ratios) > unsifted + 3
    assert ratios[:unsifted] == pytest.approx([1.0] * unsifted)
    assert ratios[unsifted:] == pytest.approx([factor] * (len(ratios) - unsifted), abs=1e-4)


@pytest.mark.slow
def test_sifting_is_deterministic(tiny_bert, sentiment_files, tmp_path):
    runs = [
        textclf.train(
            sentiment_files[0],
            tmp_path / f"r{i}",
            model=tiny_bert,
            **QUIET,
            **{**FAST, "epochs": 3, "sifting": True, "sifting_delay": 2},
        )
        for i in range(2)
    ]
    keep = lambda r: [(h["samples_kept"], h["train_loss"], h["val_accuracy"]) for h in r.history]  # noqa: E731
    assert keep(runs[0]) == keep(runs[1])


def test_large_candidates_are_scored_in_slices_cut_to_their_own_longest_row():
    # Candidates of 12 rows sorted by length (right padding): scored 5 rows at a time, each slice as wide as its
    # longest row; the losses, hence the selection, are those of scoring each candidate whole.
    rng = np.random.default_rng(1)
    candidates = []
    for _ in range(8):
        lengths = np.sort(rng.integers(1, 9, size=12))[::-1]
        mask = (torch.arange(8)[None, :] < torch.tensor(lengths.copy())[:, None]).long()
        ids = torch.tensor(rng.integers(2, 50, size=(12, 8))) * mask
        candidates.append({"input_ids": ids, "attention_mask": mask, "labels": torch.zeros(12, dtype=torch.long)})

    class MeanId(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.shapes = []

        def forward(self, input_ids, attention_mask):
            self.shapes.append(tuple(input_ids.shape))
            return ((input_ids * attention_mask).sum(1) / attention_mask.sum(1)).unsqueeze(1).float()

    kept = {}
    for slices in (None, 5):
        model = MeanId()
        sifted = SiftingDataLoader(
            candidates, model, identity_loss, SiftingConfig(delay=0, seed=3), batch_size=4, scoring_batch_size=slices
        )
        kept[slices] = [b["input_ids"].tolist() for b in sifted]
        if slices:
            assert [rows for rows, _ in model.shapes] == [5, 5, 2] * 8
            widths = [width for _, width in model.shapes]
            for candidate, chunk in zip((c for c in candidates for _ in range(3)), range(24)):
                part = candidate["attention_mask"][5 * (chunk % 3) : 5 * (chunk % 3) + 5]
                assert widths[chunk] == int(part.sum(1).max())
    assert kept[5] == kept[None] and len(kept[None]) >= 8
    with pytest.raises(ConfigError, match="scoring_batch_size"):
        SiftingDataLoader(candidates, MeanId(), identity_loss, batch_size=4, scoring_batch_size=0)


def test_shuffle_batches_yields_the_arrival_order_batches_in_random_order():
    loader, config = toy_loader(batch=128), SiftingConfig(delay=2, seed=6)
    plain = [b[1].tolist() for b in SiftingDataLoader(loader, LossIsTheInput(), identity_loss, config, batch_size=16)]
    runs = [
        [
            b[1].tolist()
            for b in SiftingDataLoader(
                loader, LossIsTheInput(), identity_loss, config, batch_size=16, shuffle_batches=True
            )
        ]
        for _ in range(2)
    ]
    assert runs[0] == runs[1] != plain  # seeded, and not the arrival order
    assert sorted(runs[0]) == sorted(plain)  # the same batches: each cut from consecutive kept rows
    assert all(len(b) == 16 for b in runs[0][:-1])


class Positioned:
    """A list of batches iterated from ``position`` on, counting what it yields (as training's EpochBatches)."""

    def __init__(self, batches: list, position: int = 0):
        self.batches, self.position = batches, position

    def __iter__(self):
        while self.position < len(self.batches):
            self.position += 1
            yield self.batches[self.position - 1]


class Logged(Positioned):
    """A :class:`Positioned` that notes each batch it hands out in ``events``."""

    def __init__(self, batches: list, events: list, position: int = 0):
        super().__init__(batches, position)
        self.events = events

    def __iter__(self):
        for batch in super().__iter__():
            self.events.append(("pull", self.position))
            yield batch


@pytest.mark.parametrize("shuffle", [False, True])
def test_a_restored_pass_yields_waiting_full_batches_before_pulling_the_next_candidate(shuffle):
    # Candidates of 64 rows, training batches of 16: a candidate kept whole (the delay) leaves 3 full batches
    # waiting after its first, and later ones often 1 or 2. Training runs a step on each yielded batch before
    # the next candidate is scored, so the order of pulls and yields is part of what must resume exactly.
    loader, config = toy_loader(batch=64), SiftingConfig(delay=6, seed=2)
    events: list = []
    reference = SiftingDataLoader(
        Logged(loader, events), LossIsTheInput(), identity_loss, config, batch_size=16, shuffle_batches=shuffle
    )
    for b in reference:
        events.append(("yield", b[1].tolist()))
    yields = [i for i, e in enumerate(events) if e[0] == "yield"]
    cuts = [k for k in range(1, len(yields)) if events[yields[k - 1] + 1][0] == "yield"]  # a full batch was waiting
    assert len(cuts) >= 4
    for k in cuts:
        first_events: list = []
        first = SiftingDataLoader(
            Logged(loader, first_events),
            LossIsTheInput(),
            identity_loss,
            config,
            batch_size=16,
            shuffle_batches=shuffle,
        )
        passing = iter(first)
        for _ in range(k):
            first_events.append(("yield", next(passing)[1].tolist()))
        resumed_events = list(first_events)
        second = SiftingDataLoader(
            Logged(loader, resumed_events, first.dataloader.position),
            LossIsTheInput(),
            identity_loss,
            config,
            batch_size=16,
            shuffle_batches=shuffle,
        )
        second.load_state_dict(first.state_dict())
        for b in second:
            resumed_events.append(("yield", b[1].tolist()))
        assert resumed_events == events, f"resumed after yield {k}"


def test_state_dict_mid_pass_and_between_passes_continues_exactly():
    loader, config = toy_loader(), SiftingConfig(delay=3, seed=5)
    reference = SiftingDataLoader(Positioned(loader), LossIsTheInput(), identity_loss, config, batch_size=32)
    expected, stats = [], []
    for _ in range(2):
        reference.dataloader.position = 0
        expected.append([b[1].tolist() for b in reference])
        stats.append((reference.stats.seen, reference.stats.kept))

    first = SiftingDataLoader(Positioned(loader), LossIsTheInput(), identity_loss, config, batch_size=32)
    passing = iter(first)
    got = [next(passing)[1].tolist() for _ in range(6)]
    mid = first.state_dict()
    assert mid["in_pass"] and mid["pending"]  # kept rows not yet yielded travel with the state

    second = SiftingDataLoader(
        Positioned(loader, first.dataloader.position), LossIsTheInput(), identity_loss, config, batch_size=32
    )
    second.load_state_dict(mid)
    got += [b[1].tolist() for b in second]
    assert got == expected[0] and (second.stats.seen, second.stats.kept) == stats[0]
    between = second.state_dict()
    assert not between["in_pass"] and not between["pending"]

    third = SiftingDataLoader(Positioned(loader), LossIsTheInput(), identity_loss, config, batch_size=32)
    third.load_state_dict(between)
    assert [b[1].tolist() for b in third] == expected[1]
    assert (third.stats.seen, third.stats.kept) == stats[1] and third.batches_yielded == reference.batches_yielded
