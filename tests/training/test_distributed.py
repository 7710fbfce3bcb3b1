"""Training in several processes: the sharded data order, 2-process gloo runs against 1 process, sifting, resume."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading

import numpy as np
import pytest
import torch
from processes import env, metrics, sifting_args, textclf_cli, untimed
from safetensors.torch import load_file

import textclf
from conftest import FAST, make_sentences, write_csv
from textclf.training.batches import EpochBatches

QUIET = {"progress": False, "log": lambda _: None}
# 2 processes of batch 8 against 1 process of batch 16, with dropout off: the same rows make each step, so
# the runs differ only by float rounding (gradients summed in another order, batches padded otherwise):
# about 1e-8 in the losses after 4 epochs on this machine.
LOSS_TOLERANCE = 1e-5
ACCURACY_TOLERANCE = 1 / 60  # one of the 60 validation texts


def test_processes_split_every_batch_of_the_one_process_order_and_resume_at_a_position():
    ids = [[1] * (1 + i % 7) for i in range(97)]
    rows = list(range(97))  # the "labels" are the row numbers: batches show which rows they hold
    one = EpochBatches(ids, rows, 8, (0, False), seed=3)
    two = [EpochBatches(ids, rows, 4, (0, False), seed=3, shard=(rank, 2)) for rank in range(2)]
    for epoch in (1, 2):
        for batches in (one, *two):
            batches.set_epoch(epoch)
        whole = [b["labels"].tolist() for b in one]
        first, second = ([b["labels"].tolist() for b in batches] for batches in two)
        assert first == [w[0::2] for w in whole]  # every batch's even rows, in the one-process order
        assert second == [w[1::2] for w in whole if len(w) > 1]  # 97 = 12 x 8 + 1: rank 1 has no share of the 1-row one
        assert len(first) == len(second) + 1 == 13
        assert one.produced == 97 and two[0].produced + two[1].produced == 97
    assert whole != [b["labels"].tolist() for b in (one.set_epoch(1) or one)]  # each epoch its own order
    resumed = EpochBatches(ids, rows, 8, (0, False), seed=3)
    resumed.set_epoch(2, position=5)
    assert resumed.produced == sum(len(w) for w in whole[:5])
    assert [b["labels"].tolist() for b in resumed] == whole[5:]


@pytest.fixture(scope="module")
def bert_without_dropout(tiny_bert, tmp_path_factory):
    folder = tmp_path_factory.mktemp("no-dropout") / "bert"
    shutil.copytree(tiny_bert, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.subprocess
@pytest.mark.distributed
@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(
    bert_without_dropout, sentiment_files, tmp_path
):
    train, val = sentiment_files
    settings = {**FAST, "epochs": 4, "evaluations_per_epoch": 3}  # both processes must check at the same steps
    one = textclf.train(
        train,
        tmp_path / "one",
        model=bert_without_dropout,
        validation=val,
        precision="float32",  # on every CPU (auto is bfloat16 where it is native), as the record below says
        **QUIET,
        **{**settings, "batch_size": 16},
    )
    two = subprocess.run(
        textclf_cli(
            "--nproc",
            "2",
            "--data",
            str(train),
            "--validation",
            str(val),
            "--model",
            str(bert_without_dropout),
            "--output",
            str(tmp_path / "two"),
            "--epochs",
            "4",
            "--learning-rate",
            str(FAST["learning_rate"]),
            "--batch-size",
            "8",
            "--max-seq-length",
            str(FAST["max_seq_length"]),
            "--warmup-ratio",
            "0",
            "--evaluations-per-epoch",
            "3",
            "--precision",
            "float32",
        ),
        capture_output=True,
        text=True,
        env=env(),
        timeout=300,
    )
    assert two.returncode == 0, two.stderr
    assert two.stderr.count("epoch 1/4  ") == 1 and two.stderr.count("epoch 1/4 step ") == 2
    assert "2 processes, 16 samples per step" in two.stderr  # rank 0 alone logs
    run = json.loads((tmp_path / "two" / "textclf.json").read_text())["run"]
    assert run["processes"] == 2 and run["effective_batch_size"] == 16 and run["precision"] == "float32"
    for a, b in zip(one.history, metrics(tmp_path / "two"), strict=True):
        assert b["samples_seen"] == a["samples_seen"] == 200
        assert b["train_loss"] == pytest.approx(a["train_loss"], abs=LOSS_TOLERANCE)
        assert b["val_loss"] == pytest.approx(a["val_loss"], abs=LOSS_TOLERANCE)
        assert b["val_accuracy"] == pytest.approx(a["val_accuracy"], abs=ACCURACY_TOLERANCE)
        assert [(c["step"], c["rows"]) for c in b["checks"]] == [(c["step"], c["rows"]) for c in a["checks"]]
        assert [c["val_loss"] for c in b["checks"]] == pytest.approx(
            [c["val_loss"] for c in a["checks"]], abs=LOSS_TOLERANCE
        )
    assert one.history[-1]["train_loss"] < one.history[0]["train_loss"] - 0.1  # it learned something to compare
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]  # written once, staging gone
    dynamics = [np.load(tmp_path / name / "training_dynamics.npz") for name in ("one", "two")]
    assert dynamics[0]["confidence"].shape == (4, 200) and not np.isnan(dynamics[0]["confidence"]).any()
    np.testing.assert_allclose(dynamics[1]["confidence"], dynamics[0]["confidence"], atol=1e-5)  # rows gathered
    assert (dynamics[1]["line"] == dynamics[0]["line"]).all()


@pytest.mark.subprocess
@pytest.mark.distributed
@pytest.mark.slow
def test_two_process_sifting_run_survives_sigterm_and_resumes_to_the_uninterrupted_result(
    tiny_bert, sentiment_files, tmp_path
):
    train = write_csv(tmp_path / "train.csv", make_sentences(129, 5))  # uneven shards: see sifting_args
    args = ["--nproc", "2", *sifting_args(train, sentiment_files[1], tiny_bert)]
    reference = subprocess.run(
        textclf_cli(*args, "--output", str(tmp_path / "reference")),
        capture_output=True,
        text=True,
        env=env(),
        timeout=300,
    )
    assert reference.returncode == 0, reference.stderr

    out = tmp_path / "out"
    first = subprocess.Popen(
        textclf_cli(*args, "--output", str(out)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    watchdog = threading.Timer(300, first.kill)  # a hang in the stop path fails the test instead of blocking it
    watchdog.start()
    seen = []
    for line in first.stderr:  # SIGTERM to the launcher once epoch 1 is logged: it passes it on to both processes
        seen.append(line)
        if line.startswith("epoch 1/3"):
            first.send_signal(signal.SIGTERM)
            break
    seen += first.stderr.readlines()
    assert first.wait(timeout=120) == 130, "".join(seen)
    watchdog.cancel()
    stopped = [line for line in seen if line.startswith("error: stopped by SIGTERM")]
    assert len(stopped) == 1 and "Run the same command again to resume." in stopped[0], "".join(seen)
    assert not out.exists()

    resumed = subprocess.run(
        textclf_cli(*args, "--output", str(out)), capture_output=True, text=True, env=env(), timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count("resuming from") == 1
    assert untimed(metrics(out)) == untimed(metrics(tmp_path / "reference"))
    assert all(r["fraction_sifted"] > 0 for r in metrics(out)[1:])
    a, b = load_file(out / "model.safetensors"), load_file(tmp_path / "reference" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.subprocess
@pytest.mark.distributed
def test_an_error_of_rank_0_alone_stops_both_processes_with_one_line(tiny_bert, sentiment_files, tmp_path):
    # Only rank 0 checks the output folder; rank 1 must not wait for it in a collective, and the launcher
    # must not add its own report of the failed workers.
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("not a model")
    done = subprocess.run(
        textclf_cli(
            "--nproc",
            "2",
            "--data",
            str(sentiment_files[0]),
            "--model",
            str(tiny_bert),
            "--output",
            str(tmp_path / "taken"),
        ),
        capture_output=True,
        text=True,
        env=env(),
        timeout=300,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--overwrite" in lines[0], done.stderr
    assert (tmp_path / "taken" / "keep.txt").read_text() == "not a model"


@pytest.mark.subprocess
@pytest.mark.distributed
@pytest.mark.slow
def test_two_gloo_processes_train_multi_label_as_one_process_does(bert_without_dropout, tagged_files, tmp_path):
    train, val = tagged_files
    one = textclf.train(
        train,
        tmp_path / "one",
        model=bert_without_dropout,
        validation=val,
        precision="float32",
        **QUIET,
        **{**FAST, "epochs": 3, "batch_size": 16},
    )
    flags = ["--epochs", "3", "--learning-rate", str(FAST["learning_rate"]), "--batch-size", "8"]
    flags += ["--max-seq-length", str(FAST["max_seq_length"]), "--warmup-ratio", "0", "--precision", "float32"]
    two = subprocess.run(
        textclf_cli(
            "--nproc",
            "2",
            "--data",
            str(train),
            "--validation",
            str(val),
            "--model",
            str(bert_without_dropout),
            "--output",
            str(tmp_path / "two"),
            *flags,
        ),
        capture_output=True,
        text=True,
        env=env(),
        timeout=300,
    )
    assert two.returncode == 0, two.stderr
    for a, b in zip(one.history, metrics(tmp_path / "two"), strict=True):
        assert b["samples_seen"] == a["samples_seen"] == 240
        assert b["train_loss"] == pytest.approx(a["train_loss"], abs=LOSS_TOLERANCE)
        assert b["val_loss"] == pytest.approx(a["val_loss"], abs=LOSS_TOLERANCE)
        assert b["val_micro_f1"] == pytest.approx(a["val_micro_f1"], abs=0.02)
    meta = json.loads((tmp_path / "two" / "textclf.json").read_text())
    assert meta["run"]["processes"] == 2 and len(meta["thresholds"]["thresholds"]) == 3
