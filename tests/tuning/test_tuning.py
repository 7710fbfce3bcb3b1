"""textclf tune: a study on the tiny BERT, resuming after a kill, parallel trials, pruning, bad spaces."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

import textclf
from conftest import REPO
from test_cli_errors import assert_one_line_error
from textclf.cli import main
from textclf.errors import ConfigError
from textclf.tuning import SearchSpace, TuneSettings
from textclf.tuning.study import EPOCHS_ATTR, PeerMedianPruner, recover_lost_trials

QUIET = {"log": lambda _: None}
FIXED = {"max_seq_length": 32, "warmup_ratio": 0.0, "learning_rate": 3e-3, "batch_size": 16}
"""conftest.FAST less what the studies here search."""
SPACE = {
    "learning_rate": {"type": "float", "low": 5e-3, "high": 2e-2, "log": True},
    "batch_size": {"type": "categorical", "choices": [16, 32]},
}


def load(output: Path) -> optuna.Study:
    return optuna.load_study(study_name="textclf", storage=f"sqlite:///{output / 'study.db'}")


def study_csv(output: Path) -> list[dict]:
    with (output / "study.csv").open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_three_trial_study_keeps_a_loadable_best_model(tiny_bert, sentiment_files, tmp_path):
    train, val = sentiment_files
    fixed = {k: v for k, v in FIXED.items() if k not in SPACE}
    result = textclf.tune(
        train,
        tmp_path / "study",
        model=tiny_bert,
        validation=val,
        search_space=SPACE,
        max_trials=3,
        early_stopping_trials="off",
        seed=0,
        epochs=2,
        **fixed,
        **QUIET,
    )
    rows = study_csv(result.output)
    assert [r["number"] for r in rows] == ["0", "1", "2"] and {r["state"] for r in rows} == {"COMPLETE"}
    assert set(rows[0]) >= {"number", "state", "value", "duration_s", "learning_rate", "batch_size"}
    assert result.best_value == max(float(r["value"]) for r in rows)
    assert result.best_path == result.output / "best"
    meta = json.loads((result.best_path / "textclf.json").read_text())
    assert meta["tuning"]["trial"] == result.best_trial and meta["tuning"]["params"] == result.best_params
    assert meta["hyperparameters"]["learning_rate"] == result.best_params["learning_rate"]
    assert meta["metrics"]["best"]["val_accuracy"] == result.best_value
    clf = textclf.Classifier.load(result.best_path, dtype="float32")
    assert clf.predict(["the food was great and lovely"])[0].predicted_label in ("positive", "negative")
    assert all((result.output / "trials" / f"{n:04d}" / "textclf.json").is_file() for n in range(3))
    for name in ("optimization_history.png", "param_importances.png", "parallel_coordinate.png"):
        assert (result.output / name).read_bytes()[:4] == b"\x89PNG", name
    assert "trials: 3 complete" in result.render()

    # the same call again: the study is full, nothing is rerun; --keep-top 1 leaves one trial folder
    again = textclf.tune(
        train,
        tmp_path / "study",
        model=tiny_bert,
        validation=val,
        search_space=SPACE,
        max_trials=3,
        early_stopping_trials="off",
        keep_top=1,
        epochs=2,
        **fixed,
        **QUIET,
    )
    assert again.best_trial == result.best_trial and len(load(result.output).trials) == 3
    assert [p.name for p in (result.output / "trials").iterdir()] == [f"{result.best_trial:04d}"]
    with pytest.raises(ConfigError, match="was started with another objective; run the same command to resume it"):
        textclf.tune(
            train,
            tmp_path / "study",
            model=tiny_bert,
            validation=val,
            search_space=SPACE,
            max_trials=3,
            objective="val_f1",
            epochs=2,
            **fixed,
            **QUIET,
        )


def _cli(tiny_bert, sentiment_files, output: Path, space: Path, *extra: str) -> list[str]:
    train, val = sentiment_files
    return [
        sys.executable,
        "-m",
        "textclf",
        "tune",
        "--data",
        str(train),
        "--validation",
        str(val),
        "--model",
        str(tiny_bert),
        "--output",
        str(output),
        "--search-space",
        str(space),
        "--max-trials",
        "3",
        "--strategy",
        "random",
        "--early-stopping-trials",
        "off",
        "--epochs",
        "3",
        "--max-seq-length",
        "32",
        "--warmup-ratio",
        "0",
        *extra,
    ]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
@pytest.mark.subprocess
def test_killed_study_resumes_and_retries_the_killed_trial(tiny_bert, sentiment_files, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(
        "learning_rate: {type: float, low: 5.0e-3, high: 2.0e-2, log: true}\n"
        "batch_size:\n  type: categorical\n  choices: [16, 32]\n"
    )
    output = tmp_path / "study"
    command = _cli(tiny_bert, sentiment_files, output, space)
    log = (tmp_path / "first.log").open("w+")
    first = subprocess.Popen(command, stderr=log, stdout=subprocess.DEVNULL, env=_env())
    deadline = time.monotonic() + 60
    while "trial 1: training" not in (tmp_path / "first.log").read_text() and time.monotonic() < deadline:
        assert first.poll() is None, (tmp_path / "first.log").read_text()
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)  # no chance to clean up: trial 1 stays RUNNING in the database
    first.wait()
    killed = [t for t in load(output).trials if t.state.name == "RUNNING"]
    assert [t.number for t in killed] == [1]

    second = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=120)
    assert second.returncode == 0, second.stderr
    assert "retrying trial(s) 1" in second.stderr and "1 of 3 trials finished" in second.stderr
    trials = load(output).trials
    assert [t.number for t in trials] == list(range(len(trials)))
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 3 and trials[1].state.name == "FAIL"
    retried = [t for t in complete if t.system_attrs.get("failed_trial") == 1]
    assert len(retried) == 1 and retried[0].params == trials[1].params
    assert [r["state"] for r in study_csv(output)].count("COMPLETE") == 3
    assert "best: trial" in second.stdout
    assert sorted(p.name for p in (output / "trials").iterdir()) == [
        f"{t.number:04d}" for t in complete
    ]  # no half-built folder


@pytest.mark.slow
@pytest.mark.subprocess
def test_parallel_trials_share_one_study_without_duplicates(tiny_bert, sentiment_files, tmp_path):
    train, val = sentiment_files
    fixed = {k: v for k, v in FIXED.items() if k not in SPACE}
    result = textclf.tune(
        train,
        tmp_path / "study",
        model=tiny_bert,
        validation=val,
        search_space=SPACE,
        max_trials=4,
        parallel_trials=2,
        early_stopping_trials="off",
        seed=0,
        epochs=1,
        **fixed,
        **QUIET,
    )
    trials = [t for t in load(result.output).trials if not t.user_attrs.get("surplus")]
    assert len(trials) == 4 and {t.state.name for t in trials} == {"COMPLETE"}
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both processes ran trials
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4  # no parameter set tried twice
    assert len(study_csv(result.output)) == 4
    assert (result.output / "best" / "model.safetensors").is_file()


def _pruning_study(model, files, tmp_path, epochs: int):
    """Three trials: a first one that learns (lr 1e-2) sets the median that the others (lr ~1e-9) fall behind."""
    train, val = files
    return textclf.tune(
        train,
        tmp_path / "study",
        model=model,
        validation=val,
        max_trials=3,
        objective="val_loss",
        search_space={"learning_rate": {"type": "float", "low": 1e-9, "high": 1e-8, "log": True}},
        first_trials=[{"learning_rate": 1e-2}],
        strategy="random",
        early_stopping_trials="median",
        pruning_startup_trials=1,
        seed=0,
        epochs=epochs,
        max_seq_length=32,
        warmup_ratio=0.0,
        batch_size=16,
        **QUIET,
    )


@pytest.mark.slow
def test_median_pruner_stops_a_trial_that_does_not_learn(tiny_bert, sentiment_files, tmp_path):
    result = _pruning_study(tiny_bert, sentiment_files, tmp_path, epochs=3)
    states = [r["state"] for r in result.trials]
    assert states[0] == "COMPLETE" and "PRUNED" in states, result.trials
    pruned = next(r for r in result.trials if r["state"] == "PRUNED")
    assert pruned["epochs_run"] < 3 and not (result.output / "trials" / f"{pruned['number']:04d}").exists()
    assert result.best_trial == 0


@pytest.mark.slow
def test_a_trial_is_never_pruned_at_its_last_epoch(tiny_bert, sentiment_files, tmp_path):
    result = _pruning_study(tiny_bert, sentiment_files, tmp_path, epochs=1)
    assert [r["state"] for r in result.trials] == ["COMPLETE"] * 3, result.trials


@pytest.mark.slow
def test_timeout_starts_no_trial_after_the_time_is_up(tiny_bert, sentiment_files, tmp_path):
    train, val = sentiment_files
    lines: list[str] = []
    result = textclf.tune(
        train,
        tmp_path / "study",
        model=tiny_bert,
        validation=val,
        search_space=SPACE,
        max_trials=4,
        timeout=1e-3,
        early_stopping_trials="off",
        seed=0,
        epochs=1,
        max_seq_length=32,
        log=lines.append,
    )
    assert len(result.trials) <= 1 and any("time is up" in line for line in lines), lines


def _finished(study: optuna.Study, epochs: int, curve: list[float]) -> None:
    study.add_trial(
        optuna.trial.create_trial(
            params={},
            distributions={},
            value=max(curve),
            intermediate_values=dict(enumerate(curve, start=1)),
            user_attrs={EPOCHS_ATTR: epochs},
        )
    )


def test_median_pruning_compares_only_trials_planned_for_as_many_epochs():
    study = optuna.create_study(direction="maximize", pruner=PeerMedianPruner(n_startup_trials=1))
    for _ in range(3):
        _finished(study, 1, [0.90])  # short trials end their schedule at epoch 1

    def at_epoch_1(epochs: int, value: float) -> bool:
        trial = study.ask()
        trial.set_user_attr(EPOCHS_ATTR, epochs)
        trial.report(value, 1)
        pruned = trial.should_prune()
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return pruned

    assert not at_epoch_1(3, 0.70), "a 3-epoch trial was judged against 1-epoch trials"
    assert at_epoch_1(1, 0.70)
    _finished(study, 3, [0.80, 0.88, 0.93])
    assert at_epoch_1(3, 0.70) and not at_epoch_1(3, 0.85)


@pytest.mark.parametrize(
    ("name", "content", "fragments"),
    [
        (
            "space.json",
            '{"learning_rat": {"type": "float", "low": 1e-5, "high": 1e-4}}',
            ["unknown hyperparameter 'learning_rat'", "Did you mean 'learning_rate'"],
        ),
        (
            "space.json",
            '{"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-5}}',
            ["learning_rate", "low=0.0001 > high=1e-05"],
        ),
        (
            "space.json",
            '{"weight_decay": {"type": "float", "low": 0, "high": 0.1, "log": true}}',
            ["weight_decay", "log range needs low > 0"],
        ),
        (
            "space.json",
            '{"batch-size": {"type": "categorical", "choices": [8]}, '
            '"batch_size": {"type": "int", "low": 8, "high": 9}}',
            ["batch_size is given twice"],
        ),
        ("space.json", '{"epochs": {"type": "float", "low": 1, "high": 3}}', ["epochs", "integer hyperparameter"]),
        ("space.json", '{"epochs": {"type": "int", "low": "one", "high": 3}}', ["epochs", "'low' must be a number"]),
        (
            "space.json",
            '{"train_only_top_layer": {"type": "int", "low": 0, "high": 1}}',
            ["train_only_top_layer", "categorical"],
        ),
        (
            "space.json",
            '{"batch_size": {"type": "categorical", "choices": [0, 16]}}',
            ["batch_size", "the value 0 is not allowed", "at least 1"],
        ),
        (
            "space.json",
            '{"batch_size": {"type": "categorical", "values": [8]}}',
            ["batch_size", "unknown key 'values'"],
        ),
        (
            "space.json",
            '{"batch_size": {"type": "range"}}',
            ["batch_size", "'type' must be one of float, int, categorical"],
        ),
        ("space.json", '{"learning_rate": {"type": "float", "low": 1e-5, "high": 1e-4, "step"', ["not valid JSON"]),
        ("space.yaml", "learning_rate: [1e-5, 1e-4]\n", ["learning_rate", "expected an object"]),
        ("space.yaml", "learning_rate: {type: float\n", ["not valid YAML"]),
        (
            "grid.json",
            '{"learning_rate": {"type": "float", "low": 1e-5, "high": 1e-4}}',
            ["learning_rate", "grid search needs a 'step'"],
        ),
    ],
)
def test_bad_search_space_is_one_line_naming_the_file_and_parameter(tmp_path, monkeypatch, name, content, fragments):
    monkeypatch.chdir(tmp_path)
    Path(name).write_text(content)
    Path("train.csv").write_text("text,label\ngreat,pos\nawful,neg\n")
    strategy = ["--strategy", "grid"] if name == "grid.json" else []
    result = CliRunner().invoke(
        main, ["tune", "--data", "train.csv", "--output", "out", "--search-space", name, *strategy]
    )
    assert_one_line_error(result, name, *fragments)
    assert not Path("out").exists()


def test_a_searched_and_fixed_hyperparameter_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("space.json").write_text(json.dumps(SPACE))
    Path("train.csv").write_text("text,label\ngreat,pos\nawful,neg\n")
    result = CliRunner().invoke(
        main, ["tune", "--data", "train.csv", "--output", "out", "--search-space", "space.json", "--batch-size", "8"]
    )
    assert_one_line_error(result, "space.json", "batch_size is searched there and also fixed to 8")


# -- settings and the study, without training -------------------------------------


def test_tune_keywords_are_settings_or_fixed_hyperparameters():
    settings, fixed = TuneSettings.split({"max_trials": 3, "seed": 1, "epochs": 2, "learning_rate": 1e-4})
    assert (settings.max_trials, settings.seed, settings.strategy) == (3, 1, "bayesian")  # seed: the sampler's
    assert fixed == {"epochs": 2, "learning_rate": 1e-4}
    over, _ = TuneSettings.split({"keep_top": 2}, TuneSettings(objective="val_loss"))
    assert (over.keep_top, over.objective, over.direction) == (2, "val_loss", "min")


@pytest.mark.parametrize(
    ("keywords", "direction"),
    [
        ({"objective": "val_loss"}, "min"),  # textclf.tune(..., objective="val_loss") minimises
        ({"objective": "val_f1"}, "max"),
        ({"objective": "val_loss", "direction": "max"}, "max"),  # an explicit direction wins
    ],
)
def test_the_direction_follows_an_objective_given_as_a_keyword(keywords, direction):
    settings, _ = TuneSettings.split(keywords)
    assert settings.direction == direction
    again, _ = TuneSettings.split({"objective": "val_accuracy"}, settings)
    assert again.direction == "max"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"objective": "accuracy"}, "objective must be one of 'val_accuracy', 'val_loss', 'val_f1', 'val_mcc'"),
        ({"strategy": "tpe"}, "strategy must be one of 'bayesian', 'random', 'grid', but got strategy='tpe'."),
        ({"max_trials": 0}, "max_trials must be at least 1, but got max_trials=0."),
        ({"pruning_startup_trials": -1}, "pruning_startup_trials must be at least 0"),
        ({"keep_top": 0}, "keep_top must be at least 1"),
        ({"timeout": 0.0}, "timeout must be positive, but got timeout=0.0."),
    ],
)
def test_tune_settings_refuse_bad_values(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        TuneSettings(**values)


def _dead_pid() -> int:
    for pid in range(4_000_000, 4_100_000):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            continue
    raise AssertionError("no free pid")


def test_a_trial_of_a_dead_process_is_failed_and_queued_again(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage, study_name="textclf", direction="maximize")
    lost = study.ask({"learning_rate": optuna.distributions.FloatDistribution(1e-5, 1e-4)})
    lost.set_user_attr("worker", f"{socket.gethostname()}:{_dead_pid()}")
    alive = study.ask()
    alive.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    assert recover_lost_trials(study, storage) == [lost.number]
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "RUNNING", "WAITING"]
    assert trials[2].params == trials[0].params and trials[2].system_attrs["failed_trial"] == lost.number
    assert recover_lost_trials(study, storage) == []  # a failed trial is not recovered twice


def test_tuning_reaches_optuna_only_through_its_public_api():
    """No ``study._storage``, ``trial._trial_id`` or other private attribute of an Optuna object."""
    private = re.compile(r"\b(study|trial|frozen|storage|sampler|pruner|t)\._[a-z]")
    for path in (REPO / "src" / "textclf" / "tuning").glob("*.py"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            assert not private.search(line), f"{path.name}:{number}: {line.strip()}"


def test_a_space_takes_jumpstart_spellings_as_the_fields_they_name():
    space = SearchSpace.from_mapping(
        {
            "adam-learning-rate": {"type": "float", "low": 1e-5, "high": 1e-4, "log": True},
            "batch-size": {"type": "categorical", "choices": [16, 32]},
        }
    )
    assert space.names == ("learning_rate", "batch_size")
