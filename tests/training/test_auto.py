"""Automatic hyperparameters: the values chosen for model and data shapes, and that a value set always wins."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import textclf
from conftest import make_sentences, write_csv
from textclf.cli import main
from textclf.config import AUTO_FIELDS, Hyperparameters
from textclf.training import TrainingHooks
from textclf.training.auto import (
    HEAD_SCALE,
    MAX_CHECKS,
    MAX_EPOCHS,
    SAMPLE_BUDGET,
    TOKEN_BUDGET,
    DataShape,
    ModelShape,
    choose,
    describe,
    plan,
)

MINILM = ModelShape(width=384, layers=6, sentence_embedding=True)
BASE = ModelShape(width=768, layers=12)
LARGE = ModelShape(width=1024, layers=24)
GPT2 = ModelShape(width=768, layers=12, decoder=True)
TREC = DataShape(rows=4_362, classes=50, mean_tokens=13)
SMALL = DataShape(rows=1_200, classes=2, mean_tokens=13)
LONG = DataShape(rows=1_780, classes=5, mean_tokens=128)
LARGE_DATA = DataShape(rows=53_879, classes=2, mean_tokens=13)


@pytest.mark.parametrize(
    ("model", "rate"), [(MINILM, 1e-4), (ModelShape(256, 4), 1e-4), (BASE, 5e-5), (GPT2, 5e-5), (LARGE, 2e-5)]
)
def test_the_learning_rate_follows_the_width(model, rate):
    hp, reasons = choose(Hyperparameters(), model, TREC)
    assert hp.learning_rate == rate
    assert reasons["learning_rate"].startswith(model.describe())


def test_only_the_head_training_gets_a_higher_rate():
    hp, reasons = choose(Hyperparameters(train_only_top_layer=True), LARGE, TREC)
    assert hp.learning_rate == 1e-3 and "head" in reasons["learning_rate"]


def test_epochs_come_from_a_budget_of_examples_capped_by_tokens():
    assert choose(Hyperparameters(), MINILM, TREC)[0].epochs == round(SAMPLE_BUDGET / TREC.rows)
    small, reasons = choose(Hyperparameters(), MINILM, SMALL)
    assert small.epochs == MAX_EPOCHS and f"1..{MAX_EPOCHS}" in reasons["epochs"]
    long, reasons = choose(Hyperparameters(), MINILM, LONG)  # long texts: the token budget binds first
    assert long.epochs == round(TOKEN_BUDGET / (LONG.rows * LONG.mean_tokens)) < SAMPLE_BUDGET / LONG.rows
    assert "tokens" in reasons["epochs"]
    assert choose(Hyperparameters(), MINILM, LARGE_DATA)[0].epochs == 1


def test_batches_of_32_and_long_epochs_get_checks():
    assert {choose(Hyperparameters(), MINILM, data)[0].batch_size for data in (SMALL, TREC, LARGE_DATA)} == {32}
    assert choose(Hyperparameters(), MINILM, TREC)[0].evaluations_per_epoch == 1
    large, reasons = choose(Hyperparameters(), MINILM, LARGE_DATA)  # 1,684 steps in its one epoch
    assert 1 < large.evaluations_per_epoch <= MAX_CHECKS and "1684 optimizer steps" in reasons["evaluations_per_epoch"]
    accumulated = choose(Hyperparameters(gradient_accumulation_steps=8), MINILM, LARGE_DATA)[0]
    assert accumulated.evaluations_per_epoch == 1  # 211 optimizer steps


def test_the_head_steps_ten_times_further_unless_it_is_all_that_trains():
    assert choose(Hyperparameters(), MINILM, TREC)[0].head_learning_rate_scale == HEAD_SCALE
    hp, reasons = choose(Hyperparameters(train_only_top_layer=True), MINILM, TREC)
    assert hp.head_learning_rate_scale == 1.0 and "only the head" in reasons["head_learning_rate_scale"]


def test_a_trained_head_that_goes_on_training_keeps_the_network_rate():
    hp, reasons = choose(Hyperparameters(), MINILM, TREC, head_reused=True)
    assert hp.head_learning_rate_scale == 1.0 and "own trained head" in reasons["head_learning_rate_scale"]


def test_checks_count_the_steps_of_all_processes_and_need_validation_data():
    one = choose(Hyperparameters(), MINILM, LARGE_DATA)[0].evaluations_per_epoch
    four, reasons = choose(Hyperparameters(), MINILM, LARGE_DATA, processes=4)  # 421 steps an epoch, not 1,684
    assert one > 1 and four.evaluations_per_epoch == 1 and "421 optimizer steps" in reasons["evaluations_per_epoch"]
    blind, reasons = choose(Hyperparameters(), MINILM, LARGE_DATA, validation=False)
    assert blind.evaluations_per_epoch == 1 and "no validation data" in reasons["evaluations_per_epoch"]


def test_every_value_set_wins_and_only_the_others_are_chosen():
    given = Hyperparameters(learning_rate=3e-5, epochs=2)
    hp, reasons = choose(given, MINILM, SMALL)
    assert (hp.learning_rate, hp.epochs) == (3e-5, 2)
    assert set(reasons) == set(AUTO_FIELDS) - {"learning_rate", "epochs"}
    assert all(getattr(hp, name) is not None for name in AUTO_FIELDS)
    everything = dict(
        learning_rate=1e-5,
        head_learning_rate_scale=2.0,
        batch_size=8,
        epochs=1,
        warmup_ratio=0.0,
        evaluations_per_epoch=2,
    )
    assert choose(Hyperparameters(**everything), MINILM, SMALL) == (Hyperparameters(**everything), {})


def test_auto_in_a_hyperparameters_file_leaves_the_value_to_the_rule():
    hp = Hyperparameters.from_mapping({"learning_rate": "auto", "epochs": "None", "batch_size": "8"})
    assert (hp.learning_rate, hp.epochs, hp.batch_size) == (None, None, 8)


def test_describe_says_the_value_and_why():
    hp, reasons = choose(Hyperparameters(), MINILM, TREC)
    lines = describe(reasons, hp)
    assert lines[0] == f"learning_rate 0.0001 (auto: {reasons['learning_rate']})"
    assert [line.split()[0] for line in lines] == list(AUTO_FIELDS)


def test_model_shape_is_read_from_bert_and_gpt2_configs(tiny_bert, tiny_gpt2, tmp_path):
    from transformers import AutoConfig

    bert = ModelShape.of(AutoConfig.from_pretrained(tiny_bert), tiny_bert)
    assert bert == ModelShape(width=32, layers=2) and bert.describe() == "2-layer, 32-wide encoder"
    gpt2 = ModelShape.of(AutoConfig.from_pretrained(tiny_gpt2), tiny_gpt2)
    assert gpt2.decoder and gpt2.describe().endswith("decoder")
    default = textclf.models.resolve_model("default")
    assert ModelShape.of(AutoConfig.from_pretrained(default.location), default) == MINILM
    assert ModelShape.of(AutoConfig.from_pretrained(default.location), default.location) == MINILM
    hub = textclf.models.ModelSource("someone/not-cached", "someone/not-cached", "hub")
    assert not ModelShape.of(AutoConfig.from_pretrained(tiny_bert), hub).sentence_embedding  # nothing downloaded


def test_hyperparameters_refuses_options_it_would_ignore_without_data(tiny_bert, tmp_path):
    for args in (["--validation", "v.csv"], ["--nproc", "2"], ["--encoding", "latin-1"]):
        result = CliRunner().invoke(main, ["hyperparameters", *args])
        assert result.exit_code == 2 and "pass --data too" in result.output, args
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_bert / "config.json").read_text())
    recorded = {"epochs": 3, "learning_rate": 2e-5, "batch_size": 32, "warmup_ratio": 0.1}  # before auto values
    (folder / "textclf.json").write_text(json.dumps({"hyperparameters": recorded}))
    refused = CliRunner().invoke(main, ["hyperparameters", "--model", str(folder), "--epochs", "2"])
    assert refused.exit_code == 2 and "a hyperparameter flag" in refused.output
    shown = json.loads(CliRunner().invoke(main, ["hyperparameters", "--model", str(folder)]).stdout)
    assert (shown["head_learning_rate_scale"], shown["evaluations_per_epoch"]) == (1.0, 1)  # as that run had them
    assert Hyperparameters.from_mapping(shown).learning_rate == 2e-5


def test_plan_reads_the_data_as_training_splits_it(tiny_bert, tmp_path):
    data = write_csv(tmp_path / "d.csv", make_sentences(100))
    hp, reasons = plan(data, model=tiny_bert, hyperparameters=Hyperparameters(epochs=4))
    assert (hp.epochs, hp.batch_size, hp.learning_rate) == (4, 32, 1e-4)
    assert reasons["batch_size"].startswith("80 training rows") and "epochs" not in reasons  # 100 less 20%


def test_hyperparameters_command_shows_what_train_would_choose(tiny_bert, tmp_path):
    data = write_csv(tmp_path / "d.csv", make_sentences(100))
    result = CliRunner().invoke(
        main, ["hyperparameters", "--model", str(tiny_bert), "--data", str(data), "--learning-rate", "3e-5"]
    )
    assert result.exit_code == 0, result.output
    values = json.loads(result.stdout)
    assert (values["learning_rate"], values["batch_size"], values["epochs"]) == (3e-5, 32, MAX_EPOCHS)
    assert "batch_size 32 (auto: 80 training rows" in result.stderr
    assert "\nlearning_rate" not in "\n" + result.stderr  # set on the command line: not auto
    defaults = json.loads(CliRunner().invoke(main, ["hyperparameters"]).stdout)
    assert {name: defaults[name] for name in AUTO_FIELDS} == dict.fromkeys(AUTO_FIELDS, "auto")
    assert Hyperparameters.from_mapping(defaults) == Hyperparameters()  # the JSON reads back


@pytest.mark.slow
def test_a_run_without_flags_logs_and_records_the_chosen_values(tiny_bert, sentiment_files, tmp_path):
    train, val = sentiment_files
    lines: list[str] = []
    rates: list[tuple[str, float]] = []

    def record_rates(run):  # the head's groups step at head_learning_rate_scale times the network's rate
        head = {id(p) for n, p in run.net.named_parameters() if n.startswith("classifier.")}
        rates.extend((id(g["params"][0]) in head, g["lr"]) for g in run.optimizer.param_groups)

    result = textclf.train(
        train,
        tmp_path / "out",
        model=tiny_bert,
        validation=val,
        epochs=2,
        progress=False,
        log=lines.append,
        hooks=TrainingHooks(after_step=lambda run: rates or record_rates(run)),
    )
    network = {lr for in_head, lr in rates if not in_head}
    assert len(network) == 1 and {lr for in_head, lr in rates if in_head} == {network.pop() * HEAD_SCALE}
    meta = json.loads((tmp_path / "out" / "textclf.json").read_text())
    assert set(meta["auto_hyperparameters"]) == set(AUTO_FIELDS) - {"epochs"}
    assert meta["hyperparameters"]["epochs"] == 2 and meta["hyperparameters"]["learning_rate"] == 1e-4
    assert meta["hyperparameters"]["batch_size"] == 32 and len(result.history) == 2
    assert f"learning_rate 0.0001 (auto: {meta['auto_hyperparameters']['learning_rate']})" in lines
    shown = CliRunner().invoke(main, ["hyperparameters", "--model", str(tmp_path / "out")])
    assert json.loads(shown.stdout)["batch_size"] == 32 and "batch_size 32 (auto:" in shown.stderr
    assert result.hyperparameters == Hyperparameters.from_mapping(meta["hyperparameters"])
    assert result.auto == meta["auto_hyperparameters"]


def test_multi_label_data_gets_twice_the_example_budget():
    single = DataShape(rows=8_000, classes=28, mean_tokens=16)
    multi = DataShape(rows=8_000, classes=28, mean_tokens=16, multi_label=True)
    hp_single, _ = choose(Hyperparameters(), MINILM, single)
    hp_multi, why = choose(Hyperparameters(), MINILM, multi)
    assert (hp_single.epochs, hp_multi.epochs) == (3, 6)
    assert "multi-label: twice the budget" in why["epochs"]
