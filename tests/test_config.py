"""Hyperparameters: SageMaker-style string values, validation, files and precedence; run options."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from click.testing import CliRunner

import textclf
import textclf.training
from textclf.cli import main
from textclf.config import Hyperparameters, RunOptions
from textclf.errors import ConfigError

README_DEFAULTS = {  # None: auto, chosen from the model and data (docs/defaults.md)
    "epochs": None,
    "learning_rate": None,
    "batch_size": None,
    "head_learning_rate_scale": None,
    "max_seq_length": 128,
    "train_only_top_layer": False,
    "reinitialize_top_layer": "auto",
    "validation_split_ratio": 0.2,
    "evaluations_per_epoch": None,
    "early_stopping": False,
    "early_stopping_patience": 5,
    "early_stopping_min_delta": 0.0,
    "warmup_ratio": None,
    "weight_decay": 0.01,
    "seed": 0,
    "gradient_accumulation_steps": 1,
    "sifting": False,
    "sifting_beta": 1.0,
    "sifting_loss_history_length": 500,
    "sifting_delay": 100,
    "sifting_min_keep_probability": 0.2,
    "sifting_lr_scaling": "sqrt",
    "sifting_scoring_dtype": "auto",
}


def write_json(tmp_path, value, name="hyperparameters.json"):
    path = tmp_path / name
    path.write_text(value if isinstance(value, str) else json.dumps(value), encoding="utf-8")
    return path


def test_defaults_are_the_documented_ones():
    assert Hyperparameters().to_dict() == README_DEFAULTS
    described = Hyperparameters.describe()
    assert [name for name, *_ in described] == list(README_DEFAULTS)
    assert all(help_text for *_, help_text in described)


def test_sagemaker_string_values_are_converted():
    hp = Hyperparameters.from_mapping(
        {
            "epochs": "5",
            "learning_rate": "2e-5",
            "batch_size": " 16 ",
            "train_only_top_layer": "True",
            "early_stopping": "false",
            "validation_split_ratio": "0.1",
            "seed": "7",
            "max_seq_length": "64.0",
            "reinitialize_top_layer": "TRUE",
        }
    )
    assert (hp.epochs, hp.batch_size, hp.seed, hp.max_seq_length) == (5, 16, 7, 64)
    assert all(type(v) is int for v in (hp.epochs, hp.batch_size, hp.seed, hp.max_seq_length))
    assert hp.learning_rate == 2e-5 and type(hp.learning_rate) is float
    assert hp.train_only_top_layer is True and hp.early_stopping is False
    assert hp.validation_split_ratio == 0.1
    assert hp.reinitialize_top_layer == "true"


def test_json_native_values_are_accepted():
    hp = Hyperparameters.from_mapping({"epochs": 2, "learning_rate": 1e-4, "early_stopping": True, "weight_decay": 0})
    assert (hp.epochs, hp.learning_rate, hp.early_stopping, hp.weight_decay) == (2, 1e-4, True, 0.0)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("true", True),
        ("1", True),
        ("yes", True),
        ("On", True),
        (True, True),
        ("false", False),
        ("0", False),
        ("no", False),
        ("OFF", False),
        (False, False),
    ],
)
def test_bool_spellings(raw, expected):
    assert Hyperparameters.from_mapping({"early_stopping": raw}).early_stopping is expected


@pytest.mark.parametrize(
    "name, raw, expected",
    [
        ("epochs", "abc", "expected an integer or auto"),
        ("epochs", "2.5", "expected an integer or auto"),
        ("epochs", True, "expected an integer or auto"),
        ("seed", "", "expected an integer"),
        ("learning_rate", "fast", "expected a number or auto"),
        ("learning_rate", False, "expected a number or auto"),
        ("train_only_top_layer", "maybe", "expected true or false"),
        ("early_stopping", 2, "expected true or false"),
    ],
)
def test_invalid_value_names_the_source_field_and_value(name, raw, expected):
    with pytest.raises(ConfigError) as info:
        Hyperparameters.from_mapping({name: raw}, source="hp.json")
    assert str(info.value) == f"hp.json: {name} has value {raw!r}; {expected}."


@pytest.mark.parametrize(
    "name, raw, rule",
    [
        ("epochs", "0", "must be at least 1"),
        ("batch_size", "-4", "must be at least 1"),
        ("max_seq_length", "1", "must be at least 2"),
        ("early_stopping_patience", "0", "must be at least 1"),
        ("evaluations_per_epoch", "0", "must be at least 1"),
        ("gradient_accumulation_steps", "0", "must be at least 1"),
        ("learning_rate", "0", "must be positive"),
        ("weight_decay", "-0.1", "must be at least 0"),
        ("warmup_ratio", "1.5", "must be at most 1"),
        ("validation_split_ratio", "1", "must be in [0, 1)"),
        ("validation_split_ratio", "-0.2", "must be in [0, 1)"),
        ("reinitialize_top_layer", "sometimes", "must be one of 'auto', 'true', 'false'"),
        ("sifting_scoring_dtype", "float16", "must be one of 'auto', 'float32', 'bfloat16'"),
        ("warmup_ratio", "nan", "must be a finite number"),
        ("learning_rate", "inf", "must be a finite number"),
        ("sifting_min_keep_probability", "1.5", "must be at most 1"),
        ("sifting_min_keep_probability", "-0.1", "must be at least 0"),
        ("sifting_min_keep_probability", "nan", "must be a finite number"),
    ],
)
def test_out_of_range_value_names_the_field_and_value(name, raw, rule):
    with pytest.raises(ConfigError) as info:
        Hyperparameters.from_mapping({name: raw}, source="hp.json")
    message = str(info.value)
    assert message.startswith(f"hp.json: {name} {rule}, but got {name}=")
    assert raw.lower() in message.lower()


@pytest.mark.parametrize(
    "values",
    [{"epochs": 0}, {"learning_rate": -1e-5}, {"warmup_ratio": float("nan")}, {"weight_decay": float("inf")}],
    ids=["epochs", "learning_rate", "nan", "inf"],
)
def test_constructor_validates_too(values):
    (name,) = values
    with pytest.raises(ConfigError, match=f"^{name} must be"):
        Hyperparameters(**values)


def test_boundary_values_are_accepted():
    hp = Hyperparameters.from_mapping(
        {"validation_split_ratio": "0", "warmup_ratio": "1", "weight_decay": "0", "max_seq_length": "2", "epochs": "1"}
    )
    assert (hp.validation_split_ratio, hp.warmup_ratio, hp.max_seq_length) == (0.0, 1.0, 2)


def test_unknown_name_suggests_the_closest():
    with pytest.raises(
        ConfigError, match=r"^hp\.json: unknown hyperparameter 'learnig_rate'\. Did you mean 'learning_rate'\?$"
    ):
        Hyperparameters.from_mapping({"learnig_rate": "1e-4"}, source="hp.json")
    with pytest.raises(ConfigError, match=r"unknown hyperparameter 'zzz'\. Known names: epochs, learning_rate, "):
        Hyperparameters.from_mapping({"zzz": "1"})


def test_sagemaker_keys_are_ignored():
    hp = Hyperparameters.from_mapping(
        {
            "sagemaker_program": "train.py",
            "sagemaker_submit_directory": "s3://x",
            "sagemaker_region": '"us-east-1"',
            "epochs": "4",
        }
    )
    assert hp == dataclasses.replace(Hyperparameters(), epochs=4)


def test_from_file_reads_a_sagemaker_hyperparameters_json(tmp_path):
    path = write_json(
        tmp_path,
        {"epochs": "2", "learning_rate": "5e-5", "train_only_top_layer": "true", "sagemaker_container_log_level": "20"},
    )
    hp = Hyperparameters.from_file(path)
    assert (hp.epochs, hp.learning_rate, hp.train_only_top_layer, hp.batch_size) == (2, 5e-5, True, None)


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "hyperparameters file not found"),
        ("{epochs: 3}", "not valid JSON"),
        ("", "not valid JSON"),
        ('["epochs", 3]', "expected a JSON object"),
        ('{"epoch": "3"}', "unknown hyperparameter 'epoch'. Did you mean 'epochs'?"),
        ('{"epochs": "three"}', "epochs has value 'three'; expected an integer or auto"),
        ('{"epochs": "0"}', "epochs must be at least 1, but got epochs=0"),
        ("DIR", "cannot read hyperparameters file"),
    ],
    ids=["missing", "bad-json", "empty", "array", "unknown-name", "bad-value", "out-of-range", "directory"],
)
def test_from_file_errors_name_the_file(tmp_path, content, expected):
    path = tmp_path / "hp.json"
    if content == "DIR":
        path.mkdir()
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        Hyperparameters.from_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert expected in message


def test_updated_values_win_over_the_file_and_leave_it_unchanged(tmp_path):
    from_file = Hyperparameters.from_file(write_json(tmp_path, {"epochs": "2", "learning_rate": "1e-4", "seed": "3"}))
    hp = from_file.updated({"epochs": "6", "seed": 9}, source="command line")
    assert (hp.epochs, hp.seed, hp.learning_rate, hp.batch_size) == (6, 9, 1e-4, None)
    assert (from_file.epochs, from_file.seed) == (2, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        hp.epochs = 1  # type: ignore[misc]


def test_to_dict_round_trips():
    hp = Hyperparameters(epochs=7, learning_rate=3e-5, early_stopping=True, reinitialize_top_layer="false")
    assert Hyperparameters.from_mapping(hp.to_dict()) == hp
    assert Hyperparameters.from_mapping({k: str(v) for k, v in hp.to_dict().items()}) == hp


# -- the CLI: flags > --hyperparameters file > defaults ----------------------


@pytest.fixture
def captured_training(monkeypatch):
    """Replace the training run with one that records what the CLI passed to it."""
    calls = []

    def fake_train(data, output, **kwargs):
        calls.append(kwargs)
        return textclf.training.TrainResult(output, [], 1, {}, 0.0, 0.0)

    monkeypatch.setattr(textclf.training, "train", fake_train)
    return calls


def test_cli_flags_win_over_the_hyperparameters_file(tmp_path, captured_training):
    hp_file = write_json(
        tmp_path, {"epochs": "2", "learning_rate": "1e-4", "batch_size": "8", "early_stopping": "true"}
    )
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--data",
            "d.csv",
            "--output",
            str(tmp_path / "out"),
            "--hyperparameters",
            str(hp_file),
            "--epochs",
            "5",
            "--early-stopping",
            "false",
            "--train-only-top-layer",
        ],
    )
    assert result.exit_code == 0, result.output
    (call,) = captured_training
    hp = call["hyperparameters"]
    assert (hp.epochs, hp.early_stopping, hp.train_only_top_layer) == (5, False, True)  # flags
    assert (hp.learning_rate, hp.batch_size) == (1e-4, 8)  # file
    assert (hp.seed, hp.warmup_ratio) == (0, None)  # defaults (warmup_ratio: auto)


def test_cli_bad_hyperparameters_file_is_one_line_exit_2(tmp_path, captured_training):
    hp_file = write_json(tmp_path, {"epochs": "3", "learning_rate": "quick"}, name="bad.json")
    result = CliRunner().invoke(
        main, ["train", "--data", "d.csv", "--output", str(tmp_path / "out"), "--hyperparameters", str(hp_file)]
    )
    assert result.exit_code == 2
    assert result.stderr == f"error: {hp_file}: learning_rate has value 'quick'; expected a number or auto.\n"
    assert captured_training == []


# -- run options: how a run executes, not what it learns ---------------------


def test_run_options_defaults_and_cli_flags(tmp_path, captured_training):
    assert RunOptions() == RunOptions(
        checkpoint_dir=None,
        checkpoint_every_steps=500,
        keep_checkpoints=2,
        resume=None,
        device="auto",
        precision="auto",
        gradient_checkpointing=False,
    )
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--data",
            "d.csv",
            "--output",
            str(tmp_path / "out"),
            "--no-resume",
            "--checkpoint-dir",
            "ck",
            "--checkpoint-every-steps",
            "50",
            "--device",
            "cpu",
            "--precision",
            "bfloat16",
            "--gradient-checkpointing",
        ],
    )
    assert result.exit_code == 0, result.output
    (call,) = captured_training
    assert call["options"] == RunOptions(
        checkpoint_dir="ck",
        checkpoint_every_steps=50,
        resume=False,
        device="cpu",
        precision="bfloat16",
        gradient_checkpointing=True,
    )
    assert "checkpoint_dir" not in call["hyperparameters"].to_dict()  # not recorded as what was learned


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"checkpoint_every_steps": -1},
            "checkpoint_every_steps must be at least 0, but got checkpoint_every_steps=-1.",
        ),
        ({"keep_checkpoints": -2}, "keep_checkpoints must be at least 0, but got keep_checkpoints=-2."),
        ({"device": "tpu"}, "device must be one of 'auto', 'cpu', 'cuda', but got device='tpu'."),
        (
            {"precision": "float16"},
            "precision must be one of 'auto', 'float32', 'bfloat16', but got precision='float16'.",
        ),
        ({"resume": True, "keep_checkpoints": 0}, "resume needs checkpoints, but keep_checkpoints=0;"),
    ],
)
def test_run_options_refuse_bad_values(values, message):
    with pytest.raises(ConfigError) as refused:
        RunOptions(**values)
    assert str(refused.value).startswith(message)


def test_train_takes_run_options_as_keywords_and_refuses_cuda_without_a_gpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(
        ConfigError, match=r"device is 'cuda', but this PyTorch \(.*\) sees no CUDA GPU; pass --device cpu"
    ):
        textclf.train(tmp_path / "d.csv", tmp_path / "out", device="cuda")
    with pytest.raises(ConfigError, match="keep_checkpoints must be at least 0"):
        textclf.train(tmp_path / "d.csv", tmp_path / "out", keep_checkpoints=-1)
    assert list(tmp_path.iterdir()) == []


def test_jumpstart_spellings_name_the_same_hyperparameters():
    hp = Hyperparameters.from_mapping({"adam-learning-rate": "1e-4", "batch-size": "8", "train-only-top-layer": "True"})
    assert (hp.learning_rate, hp.batch_size, hp.train_only_top_layer) == (1e-4, 8, True)
    with pytest.raises(ConfigError, match="learning_rate is given twice"):
        Hyperparameters.from_mapping({"learning_rate": "1e-4", "adam-learning-rate": "2e-5"})
    with pytest.raises(ConfigError, match="unknown hyperparameter 'adam-epochs'"):
        Hyperparameters.from_mapping({"adam-epochs": "3"})
