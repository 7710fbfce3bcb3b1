"""Checkpoints: exact resume after SIGKILL and SIGTERM, refusal of another job's checkpoint, where they live."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

import textclf
from conftest import FAST, REPO
from textclf.errors import ConfigError, TrainingInterrupted
from textclf.training import TrainingHooks, batches, checkpoint

QUIET = {"progress": False, "log": lambda _: None}
TIMING = ("samples_per_second", "scoring_seconds", "train_seconds", "elapsed_seconds")

# Runs `textclf train ARGS` (python -c SELF_SIGNALLING_TRAIN AFTER_SAVE AT_STEP SIGNAL train ARGS) and signals
# itself at a point fixed by the training's own progress, not by time: SIGNAL right after an optimizer step that
# follows a checkpoint taken inside an epoch (no end-of-epoch one between them), once AFTER_SAVE such checkpoints
# were written; or (AFTER_SAVE 0) right after step AT_STEP. The CLI's train() gets the after_step hook.
SELF_SIGNALLING_TRAIN = """
import functools, os, signal, sys
import textclf.training
from textclf.cli import main
from textclf.training import TrainingHooks, checkpoint

after_save, at_step, signum = int(sys.argv[1]), int(sys.argv[2]), getattr(signal, sys.argv[3])
saves, steps = [], [0]
real_save = checkpoint.Checkpoints.save

def save(self, state, step):
    path = real_save(self, state, step)
    saves.append(state["processes"][0]["tally"] is not None)  # a checkpoint inside an epoch
    return path

def after_step(run):
    steps[0] += 1
    if (after_save and saves.count(True) >= after_save and saves[-1]) or steps[0] == at_step:
        os.kill(os.getpid(), signum)

checkpoint.Checkpoints.save = save
textclf.training.train = functools.partial(textclf.training.train, hooks=TrainingHooks(after_step=after_step))
main(sys.argv[4:], prog_name="textclf")
"""


def train_cli(args: list[str], signal_name: str, after_save: int = 0, at_step: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-c", SELF_SIGNALLING_TRAIN, str(after_save), str(at_step), signal_name, "train", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def cli_args(settings: dict) -> list[str]:
    return [f"--{k.replace('_', '-')}={str(v).lower() if isinstance(v, bool) else v}" for k, v in settings.items()]


def metrics(folder) -> list[dict]:
    lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in lines]


def assert_same_run(a, b) -> None:
    assert metrics(a) == metrics(b)
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def staged(output) -> list:
    return sorted(output.parent.glob(f".{output.name}.tmp-*"))


@pytest.mark.subprocess
@pytest.mark.slow
def test_sigkill_mid_epoch_then_rerun_gives_the_uninterrupted_weights_and_metrics(tiny_bert, sentiment_files, tmp_path):
    train, val = sentiment_files
    # sifting from the 3rd batch, so checkpoints hold the sifter mid-way; accumulation, so steps span batches
    settings = {
        **FAST,
        "epochs": 3,
        "batch_size": 8,
        "gradient_accumulation_steps": 2,
        "checkpoint_every_steps": 2,
        "sifting": True,
        "sifting_delay": 2,
    }
    reference = textclf.train(
        train, tmp_path / "reference", model=tiny_bert, validation=val, **QUIET, **settings
    ).output

    output = tmp_path / "out"
    args = [
        "--data",
        str(train),
        "--validation",
        str(val),
        "--model",
        str(tiny_bert),
        "--output",
        str(output),
        "--no-progress",
        *cli_args(settings),
    ]
    killed = train_cli(args, "SIGKILL", after_save=3)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not output.exists()
    (stage,) = staged(output)
    folder = checkpoint.Checkpoints(stage / "checkpoints", 2)
    newest = folder.latest()
    folder.close()
    state = checkpoint.load(newest)
    assert state["processes"][0]["tally"] is not None and state["processes"][0]["position"] > 0  # inside an epoch
    assert len(list((stage / "checkpoints").glob("step-*.pt"))) == 2  # rotated

    resumed = subprocess.run(
        [sys.executable, "-m", "textclf", "train", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {newest}: epoch {state['epoch']}, step {state['step']}" in resumed.stderr
    assert_same_run(reference, output)
    assert staged(output) == [] and not (output / "checkpoints").exists()


def sigterm_at_step(step: int, model, train, val, output, settings: dict) -> tuple[subprocess.CompletedProcess, object]:
    """`textclf train` stopped by SIGTERM after optimizer step ``step``: the process and its staging folder."""
    args = [
        "--data",
        str(train),
        "--validation",
        str(val),
        "--model",
        str(model),
        "--output",
        str(output),
        "--no-progress",
        *cli_args(settings),
    ]
    stopped = train_cli(args, "SIGTERM", at_step=step)
    assert stopped.returncode == 130, stopped.stderr
    (stage,) = staged(output)
    return stopped, stage


@pytest.mark.subprocess
@pytest.mark.slow
def test_sigterm_writes_a_checkpoint_and_says_how_to_resume(tiny_bert, sentiment_files, tmp_path):
    train, val = sentiment_files
    settings = {**FAST, "epochs": 2}  # 13 steps an epoch: step 5 is inside the first
    output = tmp_path / "out"
    stopped, stage = sigterm_at_step(5, tiny_bert, train, val, output, settings)
    saved = stage / "checkpoints" / "step-00000005.pt"
    last = stopped.stderr.strip().splitlines()[-1]
    assert last == (
        f"error: stopped by SIGTERM in epoch 1/2 at step 5; checkpoint saved to {saved}. "
        "Run the same command again to resume."
    )
    assert sorted(p.name for p in saved.parent.iterdir()) == ["lock", saved.name]  # 500 steps apart: only this one

    result = textclf.train(train, output, model=tiny_bert, validation=val, **QUIET, **settings)
    reference = textclf.train(train, tmp_path / "reference", model=tiny_bert, validation=val, **QUIET, **settings)
    assert_same_run(reference.output, result.output)
    assert [r["epoch"] for r in result.history] == [1, 2] and staged(output) == []


@pytest.mark.subprocess
@pytest.mark.slow
def test_sigterm_while_sifted_batches_wait_resumes_exactly(tiny_bert, sentiment_files, tmp_path):
    # Sifting candidates are up to 16 training batches (here 72 and 128 rows): step 5 trains the 5th batch of the
    # first candidate (kept whole in the delay), so the checkpoint holds 4 or 11 full batches waiting; the resumed
    # run must train on them before it scores the next candidate, as the uninterrupted one does.
    train, val = sentiment_files
    settings = {**FAST, "epochs": 2, "batch_size": 8, "sifting": True, "sifting_delay": 10}
    output = tmp_path / "out"
    _, stage = sigterm_at_step(5, tiny_bert, train, val, output, settings)
    pending = checkpoint.load(stage / "checkpoints" / "step-00000005.pt")["processes"][0]["sifting"]["pending"]
    assert sum(len(keep) for _, keep in pending) in (4 * 8, 11 * 8) and batches.SIFTING_CANDIDATES == 16
    result = textclf.train(train, output, model=tiny_bert, validation=val, **QUIET, **settings)
    reference = textclf.train(train, tmp_path / "reference", model=tiny_bert, validation=val, **QUIET, **settings)
    assert reference.history[-1]["fraction_sifted"] > 0
    assert_same_run(reference.output, result.output)


def interrupted_after(step: int) -> TrainingHooks:
    """Hooks that raise KeyboardInterrupt (as a crash would) right after optimizer step number ``step``."""

    def after_step(run) -> None:
        if run.state.step == step:
            raise KeyboardInterrupt

    return TrainingHooks(after_step=after_step)


@pytest.mark.slow
def test_a_run_stopped_after_a_mid_epoch_check_resumes_with_it_and_its_weights(tiny_bert, sentiment_files, tmp_path):
    # two evaluations an epoch of 13 steps: epoch 4's check after step 46, a checkpoint at 48, a crash at 50;
    # the check is the best point of the run, so its weights must come back from the checkpoint
    train, val = sentiment_files
    # (the head at the body's rate, as this scenario was found; at 10x the best point falls elsewhere)
    settings = {**FAST, "evaluations_per_epoch": 2, "checkpoint_every_steps": 48, "head_learning_rate_scale": 1.0}
    output = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        textclf.train(train, output, model=tiny_bert, validation=val, hooks=interrupted_after(50), **QUIET, **settings)
    (stage,) = staged(output)
    state = checkpoint.load(stage / "checkpoints" / "step-00000048.pt")
    (check,) = state["checks"]
    assert (check["epoch"], check["step"]) == (4, 46) and state["tracker"]["best_step"] == 46
    assert state["tracker"]["state"] is not None

    result = textclf.train(train, output, model=tiny_bert, validation=val, **QUIET, **settings)
    reference = textclf.train(train, tmp_path / "reference", model=tiny_bert, validation=val, **QUIET, **settings)
    assert reference.best == check == result.best  # the best point is the check the checkpoint held
    assert [len(r["checks"]) for r in result.history] == [1] * FAST["epochs"]
    assert_same_run(reference.output, result.output)


@pytest.mark.slow
def test_a_checkpoint_whose_auto_values_this_run_would_choose_otherwise_is_refused(
    tiny_bert, sentiment_files, tmp_path, monkeypatch
):
    train, val = sentiment_files
    settings = {name: value for name, value in FAST.items() if name != "epochs"} | {"checkpoint_every_steps": 3}
    with pytest.raises(KeyboardInterrupt):
        textclf.train(
            train, tmp_path / "out", model=tiny_bert, validation=val, hooks=interrupted_after(4), **QUIET, **settings
        )
    (stage,) = staged(tmp_path / "out")
    assert checkpoint.load(stage / "checkpoints" / "step-00000003.pt")["job"]["auto"]["epochs"] == 6
    monkeypatch.setattr("textclf.training.auto.MAX_EPOCHS", 5)  # textclf's rule changed since
    with pytest.raises(ConfigError) as refused:
        textclf.train(train, tmp_path / "out", model=tiny_bert, validation=val, **QUIET, **settings)
    assert str(refused.value) == (
        "the checkpoint to resume from chose epochs 6 and this run chooses 5 (textclf's rule changed since); "
        "pass --epochs 6 to resume it, or --no-resume to start afresh."
    )


@pytest.mark.slow
def test_a_checkpoint_of_another_job_is_refused_with_what_differs(tiny_bert, sentiment_files, tmp_path):
    train, val = tmp_path / "train.csv", sentiment_files[1]
    train.write_bytes(sentiment_files[0].read_bytes())
    settings = {**FAST, "epochs": 2, "checkpoint_every_steps": 3}
    with pytest.raises(KeyboardInterrupt):
        textclf.train(
            train, tmp_path / "out", model=tiny_bert, validation=val, hooks=interrupted_after(4), **QUIET, **settings
        )
    (stage,) = staged(tmp_path / "out")
    kept = stage / "checkpoints" / "step-00000003.pt"
    assert kept.is_file()

    with pytest.raises(ConfigError) as refused:
        textclf.train(
            train, tmp_path / "out", model=tiny_bert, validation=val, **QUIET, **{**settings, "learning_rate": 1e-3}
        )
    assert str(refused.value) == (
        f"{kept}: this checkpoint belongs to another training job: it was run with "
        "learning_rate=0.003, not 0.001. Run that job's command to resume it, or pass "
        "--no-resume to discard it and start afresh."
    )
    original = train.read_bytes()
    train.write_bytes(original.replace(b"good", b"gold", 1))  # the same size, another content
    with pytest.raises(ConfigError, match=f"the training data {train} changed since"):
        textclf.train(train, tmp_path / "out", model=tiny_bert, validation=val, **QUIET, **settings)
    assert kept.is_file() and not (tmp_path / "out").exists()  # nothing was touched

    train.write_bytes(original)  # the same content, written again (a new modification time): this job again
    lines: list[str] = []
    textclf.train(
        train, tmp_path / "out", model=tiny_bert, validation=val, progress=False, log=lines.append, **settings
    )
    assert f"resuming from {kept}: epoch 1, step 3" in lines
    assert staged(tmp_path / "out") == [] and (tmp_path / "out" / "model.safetensors").is_file()


def test_resume_needs_a_checkpoint_and_keep_zero_writes_none(tiny_bert, sentiment_files, tmp_path):
    train, val = sentiment_files
    with pytest.raises(ConfigError, match="resume: no checkpoint of an unfinished run in the staging folders of"):
        textclf.train(train, tmp_path / "out", model=tiny_bert, validation=val, resume=True, **QUIET, **FAST)
    with pytest.raises(KeyboardInterrupt):  # no checkpoint: the interrupted run leaves nothing behind
        textclf.train(
            train,
            tmp_path / "out",
            model=tiny_bert,
            validation=val,
            keep_checkpoints=0,
            checkpoint_every_steps=1,
            hooks=interrupted_after(2),
            **QUIET,
            **FAST,
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_checkpoint_dir_is_used_rotated_and_emptied_at_the_end(tiny_bert, sentiment_files, tmp_path):
    train, val = sentiment_files
    folder = tmp_path / "ckpt"
    settings = {**FAST, "epochs": 2, "checkpoint_dir": str(folder), "checkpoint_every_steps": 2, "keep_checkpoints": 3}
    with pytest.raises(KeyboardInterrupt):  # in epoch 2 (13 steps an epoch)
        textclf.train(
            train, tmp_path / "out", model=tiny_bert, validation=val, hooks=interrupted_after(17), **QUIET, **settings
        )
    assert sorted(p.name for p in folder.iterdir()) == [
        "lock",
        "step-00000013.pt",
        "step-00000014.pt",
        "step-00000016.pt",
    ]
    assert staged(tmp_path / "out") == []  # the staging folder held no checkpoint: removed
    logs: list[str] = []
    textclf.train(train, tmp_path / "out", model=tiny_bert, validation=val, progress=False, log=logs.append, **settings)
    assert f"resuming from {folder / 'step-00000016.pt'}: epoch 2, step 16" in logs
    assert not folder.exists()


def test_a_corrupt_checkpoint_is_a_clear_error(tiny_bert, sentiment_files, tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "step-00000004.pt").write_bytes(b"half a file")
    with pytest.raises(textclf.ArtifactError, match="step-00000004.pt: cannot read this checkpoint .*; delete it"):
        textclf.train(
            sentiment_files[0], tmp_path / "out", model=tiny_bert, checkpoint_dir=str(folder), **QUIET, **FAST
        )


def test_on_epoch_stopping_the_run_leaves_no_checkpoint(tiny_bert, sentiment_files, tmp_path):
    def prune(record: dict) -> None:
        if record["epoch"] == 2:
            raise RuntimeError("pruned")

    with pytest.raises(RuntimeError, match="pruned"):
        textclf.train(sentiment_files[0], tmp_path / "out", model=tiny_bert, on_epoch=prune, **QUIET, **FAST)
    assert list(tmp_path.iterdir()) == []


def test_stop_signals_turn_sigterm_into_a_request_and_a_third_signal_stops_at_once(capfd):
    before = signal.getsignal(signal.SIGTERM)
    with checkpoint.StopSignals(True, announce=True) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)  # a second signal while stopping is ignored
        assert stop.requested == "SIGTERM"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # the third has its usual effect
    assert capfd.readouterr().err.count("SIGTERM: stopping after this optimizer step") == 1
    assert signal.getsignal(signal.SIGTERM) is before  # restored
    with checkpoint.StopSignals(False) as off:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert off.requested is None
    assert issubclass(TrainingInterrupted, KeyboardInterrupt)


def test_a_checkpoint_older_than_a_hyperparameter_counts_as_run_with_its_old_behaviour():
    from textclf.config import Hyperparameters

    def job(**hyperparameters):
        return {
            "textclf": "1",
            "processes": 1,
            "model": "m",
            "model_files": [],
            "data": "d",
            "data_files": [],
            "validation": None,
            "validation_files": None,
            "read_options": {},
            "hyperparameters": Hyperparameters(sifting=True, **hyperparameters).to_dict(),
        }

    before_the_floor = job()
    del before_the_floor["hyperparameters"]["evaluations_per_epoch"]  # written before mid-epoch checks: none
    assert checkpoint.difference(before_the_floor, job(evaluations_per_epoch=2)) == (
        "it was run with evaluations_per_epoch=1, not 2"
    )
    assert checkpoint.difference(before_the_floor, job()) == "it was run with evaluations_per_epoch=1, not auto"
    explicit = {"evaluations_per_epoch": 1}  # auto (None) is another job than the fixed once-an-epoch it ran with
    del before_the_floor["hyperparameters"]["sifting_min_keep_probability"]  # written before the floor existed: none
    assert (
        checkpoint.difference(before_the_floor, job(**explicit))
        == "it was run with sifting_min_keep_probability=0.0, not 0.2"
    )
    assert checkpoint.difference(before_the_floor, job(**explicit, sifting_min_keep_probability=0.0)) is None
    del before_the_floor["hyperparameters"]["sifting_beta"]  # not added later: missing is a difference
    assert (
        checkpoint.difference(before_the_floor, job(**explicit, sifting_min_keep_probability=0.0))
        == "it was run with sifting_beta=no value, not 1.0"
    )
