"""`textclf sagemaker train` against SageMaker's container contract, without Docker: each test lays out a
base folder as SageMaker local mode does (hyperparameters.json as the SDK encodes it, inputdataconfig.json,
resourceconfig.json, the channels) and runs the entry point on it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from conftest import FAST, REPO, make_sentences, write_csv
from serving.serving_helpers import free_port, wait_for_ping
from textclf.errors import ConfigError
from textclf.sagemaker import Cluster, JobSettings, Layout, train_job
from textclf.sagemaker.job import metric_lines

LABEL_IDS = {"negative": 0, "positive": 1}


def estimator_encoding(values: dict) -> dict:
    """The HuggingFace/PyTorch estimators: every value through json.dumps."""
    return {name: json.dumps(value) for name, value in values.items()}


def generic_encoding(values: dict) -> dict:
    """The generic Estimator(image_uri=...): str() of every value."""
    return {name: str(value) for name, value in values.items()}


def jumpstart_rows(n: int, seed: int) -> list[tuple[int, str]]:
    return [(LABEL_IDS[label], text) for label, text in make_sentences(n, seed)]


def lay_out(
    base: Path,
    hyperparameters: dict,
    channels: dict[str, Path | list | None],
    hosts: tuple[str, ...] = ("algo-1",),
    current: str = "algo-1",
) -> Path:
    """A SageMaker local-mode tree under ``base``: a list is written as JumpStart's header-less data.csv, a path
    is copied into the channel, None makes an empty channel."""
    config = base / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    resource = {"current_host": current, "hosts": list(hosts), "network_interface_name": "eth0"}
    (config / "resourceconfig.json").write_text(json.dumps(resource))
    (config / "inputdataconfig.json").write_text(json.dumps({name: {"TrainingInputMode": "File"} for name in channels}))
    for name, content in channels.items():
        folder = base / "input" / "data" / name
        folder.mkdir(parents=True)
        if isinstance(content, list):
            write_csv(folder / "data.csv", content, header=None)
        elif isinstance(content, Path):
            (folder / content.name).write_bytes(content.read_bytes())
    for sub in ("model", "output/data"):
        (base / sub).mkdir(parents=True)
    return base


def run_job(base: Path) -> subprocess.CompletedProcess:
    """The image's `train`: `textclf sagemaker train` with SAGEMAKER_BASE_DIR set, as its own process."""
    return subprocess.run(
        [sys.executable, "-m", "textclf", "sagemaker", "train"],
        env=job_env(base),
        capture_output=True,
        text=True,
        timeout=240,
    )


def job_env(base: Path) -> dict:
    return {
        **os.environ,
        "SAGEMAKER_BASE_DIR": str(base),
        "PYTHONPATH": str(REPO / "src"),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def hyperparameters_for(model: Path, **more) -> dict:
    return {
        "model": str(model),
        "epochs": FAST["epochs"],
        "adam-learning-rate": FAST["learning_rate"],
        "batch-size": FAST["batch_size"],
        "max_seq_length": FAST["max_seq_length"],
        "warmup-ratio": 0,
        "sagemaker_program": "train.py",  # the SDK's own entries are ignored
        "sagemaker_region": "us-east-1",
        **more,
    }


# -- hyperparameters.json ------------------------------------------------------------------------------


def test_both_sdk_encodings_give_the_same_settings():
    values = {
        "model": "default",
        "epochs": 3,
        "adam-learning-rate": 2e-05,
        "batch-size": 16,
        "train-only-top-layer": True,
        "reinitialize-top-layer": "Auto",
        "max_seq_length": 64,
        "precision": "float32",
        "nproc": 2,
        "text-column": 1,
        "sagemaker_submit_directory": "s3://bucket/code.tar.gz",
    }
    from_estimator = JobSettings.from_mapping(estimator_encoding(values))
    from_generic = JobSettings.from_mapping(generic_encoding(values))
    assert from_estimator == from_generic
    hp = from_estimator.hyperparameters
    assert (hp.epochs, hp.learning_rate, hp.batch_size, hp.max_seq_length) == (3, 2e-05, 16, 64)
    assert hp.train_only_top_layer is True and hp.reinitialize_top_layer == "auto"
    assert from_estimator.run_options.precision == "float32" and from_estimator.nproc == 2
    assert from_estimator.read_options.text_column == "1"
    assert from_estimator.model == "default"
    assert estimator_encoding(values)["model"] == '"default"'  # what the estimator really sends


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"epoch": "3"}, "unknown hyperparameter 'epoch'. Did you mean 'epochs'?"),
        ({"batch-size": '"many"'}, "batch_size has value 'many'; expected an integer or auto."),
        ({"train-only-top-layer": "maybe"}, "train_only_top_layer has value 'maybe'; expected true or false."),
        ({"precision": "float16"}, "precision"),
        ({"nproc": "0"}, "nproc has value 0; expected 1 or more."),
        ({"model": '""'}, "model has value ''"),
    ],
)
def test_a_bad_entry_is_one_line_naming_it(values, message):
    with pytest.raises(ConfigError) as error:
        JobSettings.from_mapping(values, "hyperparameters.json")
    assert message in str(error.value) and "\n" not in str(error.value)
    assert str(error.value).startswith("hyperparameters.json: ")


def test_hosts_give_the_node_rank_and_the_rendezvous():
    cluster = Cluster.from_config({"current_host": "algo-2", "hosts": ["algo-3", "algo-1", "algo-2"]}, "rc.json")
    assert (cluster.rank, cluster.size, cluster.master) == (1, 3, "algo-1")
    assert Cluster.from_config({"current_host": "algo-1", "hosts": ["algo-1"]}, "rc.json").rank == 0
    with pytest.raises(ConfigError, match="current_host 'algo-9' is not one of the hosts"):
        Cluster.from_config({"current_host": "algo-9", "hosts": ["algo-1"]}, "rc.json")


def test_the_launch_of_a_multi_host_job_follows_resourceconfig(tmp_path, monkeypatch):
    """Each host starts its part of one torchrun job: node rank = its index in the sorted hosts, hosts[0] the
    rendezvous on the documented port."""
    import textclf.training.distributed as distributed

    calls = []
    monkeypatch.setattr(distributed, "launch", lambda nproc, argv, **kw: calls.append((nproc, argv, kw)) or 0)
    monkeypatch.delenv("TEXTCLF_MASTER_PORT", raising=False)
    for current in ("algo-2", "algo-1"):
        base = lay_out(
            tmp_path / current,
            estimator_encoding({"epochs": 1}),
            {"training": jumpstart_rows(20, 1)},
            hosts=("algo-2", "algo-1"),  # unsorted: the job sorts them as SageMaker does
            current=current,
        )
        monkeypatch.setattr("textclf.sagemaker.job._wait_for_name", lambda host: None)
        assert train_job(Layout.resolve(base), ["sagemaker", "train"]) == 0
    assert calls == [
        (1, ["sagemaker", "train"], {"nnodes": 2, "node_rank": 1, "master_addr": "algo-1", "master_port": 29500}),
        (1, ["sagemaker", "train"], {"nnodes": 2, "node_rank": 0, "master_addr": "algo-1", "master_port": 29500}),
    ]


def test_metric_lines_are_read_by_the_regexes_sagemaker_tuning_uses():
    record = {"epoch": 2, "train_loss": 0.41234, "val_loss": 0.3, "val_accuracy": 0.9125, "val_f1": 0.91, "x": "y"}
    lines = "\n".join(metric_lines(record))
    for name, value in (("eval_accuracy", 0.9125), ("eval_loss", 0.3), ("eval_f1", 0.91), ("loss", 0.41234)):
        assert float(re.search(rf"'{name}': ([0-9\.]+)", lines).group(1)) == value
    assert re.findall(r"'epoch': ([0-9\.]+)", lines) == ["2.0", "2.0"]
    tiny = "\n".join(metric_lines({"epoch": 3, "train_loss": 4e-05, "val_loss": 1.5e-07}))
    assert re.search(r"'loss': ([0-9\.]+)", tiny).group(1) == "0.00004"  # not 4e-05, which the regex reads as 4
    assert re.search(r"'eval_loss': ([0-9\.]+)", tiny).group(1) == "0.0"


# -- bad layouts ---------------------------------------------------------------------------------------


def failure_of(base: Path) -> str:
    text = (base / "output" / "failure").read_text(encoding="utf-8")
    assert text.endswith("\n") and text.count("\n") == 1 and len(text) <= 1025
    return text.strip()


@pytest.mark.parametrize(
    ("hyperparameters", "channels", "reason"),
    [
        ({}, {"validation": [(0, "x")]}, "no 'training' channel"),
        ({}, {"training": None}, "channel 'training' ("),
        ({"epochs": '"three"'}, {"training": [(0, "x")]}, "epochs has value 'three'; expected an integer or auto"),
        ({"learning-rat": "0.1"}, {"training": [(0, "x")]}, "unknown hyperparameter 'learning-rat'"),
    ],
)
def test_a_bad_layout_fails_with_one_line_in_output_failure(tmp_path, hyperparameters, channels, reason, capsys):
    base = lay_out(tmp_path / "ml", hyperparameters, channels)
    assert train_job(Layout.resolve(base), []) == 2
    assert reason in failure_of(base)
    assert list((base / "model").iterdir()) == []
    assert capsys.readouterr().err.strip().startswith("error: ")


def test_an_empty_channel_says_what_it_holds(tmp_path):
    base = lay_out(tmp_path / "ml", {}, {"training": None})
    (base / "input" / "data" / "training" / "notes.md").write_text("x")
    assert train_job(Layout.resolve(base), [], log=lambda _: None) == 2
    assert "holds only notes.md; expected data.csv or one data file" in failure_of(base)


def test_a_run_clears_an_earlier_runs_results_and_the_first_failure_of_a_run_wins(tmp_path):
    base = lay_out(tmp_path / "ml", {}, {})
    (base / "output" / "failure").write_text("an earlier run's reason\n")
    (base / "output" / "success").touch()
    assert train_job(Layout.resolve(base), [], log=lambda _: None) == 2
    assert "no 'training' channel" in failure_of(base) and not (base / "output" / "success").exists()
    Layout.resolve(base).write_failure("a later, less precise reason")  # the launcher's, after a worker's
    assert "no 'training' channel" in failure_of(base)


# -- a whole job -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_job(tiny_bert, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    base = lay_out(
        tmp_path_factory.mktemp("job") / "ml",
        estimator_encoding(hyperparameters_for(tiny_bert)),
        {"training": jumpstart_rows(200, 1), "validation": jumpstart_rows(60, 2)},
    )
    return base, run_job(base)


@pytest.mark.subprocess
def test_a_job_writes_model_output_data_and_metric_lines(finished_job):
    import textclf

    base, job = finished_job
    assert job.returncode == 0, job.stderr
    model = base / "model"
    assert {"textclf.json", "config.json", "model.safetensors", "report.html"} <= {p.name for p in model.iterdir()}
    assert not [p for p in model.iterdir() if p.name.startswith(".")]  # nothing left of the move into place
    assert {"metrics.jsonl", "report.html", "textclf.json"} <= {p.name for p in (base / "output/data").iterdir()}
    assert (base / "output" / "success").exists() and not (base / "output" / "failure").exists()
    assert not list((base / "checkpoints").glob("*.pt"))  # removed once the model is complete
    accuracies = [float(x) for x in re.findall(r"'eval_accuracy': ([0-9\.]+)", job.stdout)]
    assert len(accuracies) == FAST["epochs"] and max(accuracies) >= 0.9
    assert textclf.Classifier.load(model).predict("a great movie")[0].predicted_label == 1


@pytest.mark.subprocess
def test_the_model_folder_loads_in_a_transformers_pipeline(finished_job):
    import textclf

    base, _ = finished_job
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(base / "model"), top_k=None)
    scores = {d["label"]: d["score"] for d in classify(["the service was awful"])[0]}
    ours = textclf.Classifier.load(base / "model", dtype="float32").predict("the service was awful")[0]
    assert scores == pytest.approx(dict(zip(map(str, ours.labels), ours.probabilities)), abs=1e-5)


@pytest.mark.subprocess
def test_serve_answers_boto3_like_an_endpoint(finished_job, aws_credentials):
    import boto3

    import textclf

    base, _ = finished_job
    port = free_port()
    env = {**job_env(base), "SAGEMAKER_BIND_TO_PORT": str(port), "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "textclf", "sagemaker", "serve"], env=env)
    try:
        wait_for_ping(f"http://127.0.0.1:{port}")
        runtime = boto3.client("sagemaker-runtime", endpoint_url=f"http://127.0.0.1:{port}")
        answer = runtime.invoke_endpoint(
            EndpointName="textclf",
            ContentType="application/x-text",
            Accept="application/json;verbose",
            Body=b"a lovely phone",
        )
        verbose = json.loads(answer["Body"].read())
        expected = textclf.Classifier.load(base / "model").predict("a lovely phone")[0]
        assert verbose["predicted_label"] == expected.predicted_label == 1
        assert verbose["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)
    finally:
        server.terminate()
        assert server.wait(60) == 0


@pytest.mark.subprocess
def test_a_model_channel_continues_from_an_earlier_job_and_refuses_another_label_set(finished_job, tmp_path):
    base, _ = finished_job
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:  # as SageMaker tars model/: its files at the root
        for path in sorted((base / "model").iterdir()):
            tar.add(path, arcname=path.name)
    again = lay_out(
        tmp_path / "again",
        generic_encoding({"epochs": 1, "batch-size": 16, "max_seq_length": 32}),
        {"training": jumpstart_rows(60, 3), "model": archive},
    )
    job = run_job(again)
    assert job.returncode == 0, job.stderr
    assert json.loads((again / "model" / "textclf.json").read_text())["labels"] == ["0", "1"]

    three = lay_out(
        tmp_path / "three",
        generic_encoding({"epochs": 1}),
        {"training": [(i % 3, text) for i, (_, text) in enumerate(jumpstart_rows(60, 3))], "model": archive},
    )
    job = run_job(three)
    assert job.returncode == 2
    assert "data.csv:3: label '2' is not one of the model's labels (0, 1)" in failure_of(three)
    assert list((three / "model").iterdir()) == []


@pytest.mark.subprocess
@pytest.mark.slow
def test_sigterm_checkpoints_and_running_the_job_again_resumes(tiny_bert, tmp_path):
    base = lay_out(
        tmp_path / "ml",
        generic_encoding(hyperparameters_for(tiny_bert, epochs=40, checkpoint_every_steps=5)),
        {"training": jumpstart_rows(200, 1), "validation": jumpstart_rows(60, 2)},
    )
    job = subprocess.Popen(
        [sys.executable, "-m", "textclf", "sagemaker", "train"],
        env=job_env(base),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list((base / "checkpoints").glob("*.pt")):
        assert job.poll() is None and time.monotonic() < deadline, job.stderr.read() if job.poll() else "no checkpoint"
        time.sleep(0.1)
    job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=120)
    assert job.returncode == 143, err
    assert "stopped by SIGTERM" in failure_of(base)
    assert list((base / "model").iterdir()) == [] and list((base / "checkpoints").glob("*.pt"))

    (base / "output" / "failure").unlink()  # a restarted job starts in a new container
    again = run_job(base)
    assert again.returncode == 0, again.stderr
    assert "resuming from" in again.stderr
    epochs = [json.loads(line) for line in (base / "output/data/metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in epochs if "epoch" in r] == list(range(1, 41))


@pytest.mark.subprocess
@pytest.mark.distributed
def test_two_hosts_train_one_ddp_job(tiny_bert, tmp_path):
    """Two hosts of one job on this machine (each with its own /opt/ml, as SageMaker gives them): the rank comes
    from current_host, hosts[0] is the rendezvous, and only that host writes model/."""

    hosts = ("localhost", "127.0.0.1")  # names that resolve here; sorted, 127.0.0.1 is hosts[0]
    bases = [
        lay_out(
            tmp_path / host,
            estimator_encoding(hyperparameters_for(tiny_bert, epochs=2, precision="float32")),
            {"training": jumpstart_rows(200, 1), "validation": jumpstart_rows(60, 2)},
            hosts=hosts,
            current=host,
        )
        for host in hosts
    ]
    port = str(free_port())
    jobs = [
        subprocess.Popen(
            [sys.executable, "-m", "textclf", "sagemaker", "train"],
            env={**job_env(base), "TEXTCLF_MASTER_PORT": port},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for base in bases
    ]
    outputs = [job.communicate(timeout=240) for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], outputs
    second, first = bases  # hosts[0] is 127.0.0.1: the second base laid out
    assert "node 0 of 2" in outputs[1][1] and "node 1 of 2" in outputs[0][1]
    metadata = json.loads((first / "model" / "textclf.json").read_text())
    assert metadata["run"]["processes"] == 2 and metadata["run"]["effective_batch_size"] == 2 * FAST["batch_size"]
    assert list((second / "model").iterdir()) == []
