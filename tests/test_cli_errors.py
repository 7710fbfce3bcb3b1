"""Bad input on the command line: one line on stderr, exit code 2, no traceback, no model loaded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import textclf.training.run
from textclf.cli import main
from textclf.errors import ModelError


def write(name: str, content: str | bytes) -> Path:
    """Write a file relative to the current directory (each test runs in its own tmp_path)."""
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def assert_one_line_error(result: Result, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # not an unhandled exception
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def model_loading(monkeypatch):
    """Training never loads a model here: record the label set it got to and stop with a ModelError."""
    reached = []

    def stop(source, labels, reinitialize="auto"):
        reached.append(labels)
        raise ModelError("model loading stubbed out")

    monkeypatch.setattr(textclf.training.run, "load_for_training", stop)
    return reached


GOOD = "text,label\ngreat,pos\nawful,neg\n"

# id: (files, arguments after `train --output out`, the "FILE:LINE: " the message starts with, what it says)
TRAIN_ERRORS = {
    "missing-data-file": ({}, ["--data", "nope.csv"], "nope.csv: ", "no such file or directory"),
    "dir-without-data-csv": ({"train/x.csv": GOOD}, ["--data", "train"], "train: ", "no data.csv"),
    "unknown-extension": (
        {"data.parquet": GOOD},
        ["--data", "data.parquet"],
        "data.parquet: ",
        "unsupported file type",
    ),
    "empty-file": ({"data.csv": ""}, ["--data", "data.csv"], "data.csv: ", "file is empty"),
    "header-only": ({"data.csv": "text,label\n"}, ["--data", "data.csv"], "data.csv:1: ", "no data rows"),
    "wrong-column-count": ({"data.csv": "0,a\n1,b,c\n"}, ["--data", "data.csv"], "data.csv:2: ", "expected 2 columns"),
    "label-gap": ({"data.csv": "0,a\n1,b\n3,c\n"}, ["--data", "data.csv"], "data.csv:3: ", "(2 missing)"),
    "jumpstart-string-label": (
        {"train/data.csv": "0,a\npos,b\n"},
        ["--data", "train"],
        "train/data.csv:2: ",
        "not an integer",
    ),
    "empty-text": ({"data.csv": "0,a\n1,\n"}, ["--data", "data.csv"], "data.csv:2: ", "empty text"),
    "undecodable-bytes": (
        {"data.csv": b"0,a\n1,caf\xe9\n"},
        ["--data", "data.csv"],
        "data.csv:2: ",
        "not valid utf-8; pass --encoding",
    ),
    "single-class": ({"data.csv": "0,a\n0,b\n"}, ["--data", "data.csv"], "data.csv: ", "at least two classes"),
    "malformed-jsonl": (
        {"d.jsonl": '{"text": "a", "label": 0}\n{"text": \n'},
        ["--data", "d.jsonl"],
        "d.jsonl:2: ",
        "not valid JSON",
    ),
    "unknown-text-column": (
        {"data.csv": GOOD},
        ["--data", "data.csv", "--text-column", "body"],
        "data.csv:1: ",
        "no column named 'body'",
    ),
    "validation-unknown-label": (
        {"data.csv": GOOD, "val.csv": "text,label\nok,pos\nmeh,neutral\n"},
        ["--data", "data.csv", "--validation", "val.csv"],
        "val.csv:3: ",
        "label 'neutral' is not one of",
    ),
    "hp-file-bad-value": (
        {"data.csv": GOOD, "hp.json": '{"epochs": "x"}'},
        ["--data", "data.csv", "--hyperparameters", "hp.json"],
        "hp.json: ",
        "epochs has value 'x'; expected an integer",
    ),
    "hp-file-unknown-name": (
        {"data.csv": GOOD, "hp.json": '{"lr": "1"}'},
        ["--data", "data.csv", "--hyperparameters", "hp.json"],
        "hp.json: ",
        "unknown hyperparameter 'lr'",
    ),
    "hp-file-missing": (
        {"data.csv": GOOD},
        ["--data", "data.csv", "--hyperparameters", "hp.json"],
        "hp.json: ",
        "not found",
    ),
    "epochs-abc": (
        {"data.csv": GOOD},
        ["--data", "data.csv", "--epochs", "abc"],
        "command line: ",
        "epochs has value 'abc'; expected an integer",
    ),
    "learning-rate-negative": (
        {"data.csv": GOOD},
        ["--data", "data.csv", "--learning-rate", "-1e-5"],
        "command line: ",
        "learning_rate must be positive",
    ),
    "bool-flag-bad-value": (
        {"data.csv": GOOD},
        ["--data", "data.csv", "--early-stopping", "maybe"],
        "command line: ",
        "expected true or false",
    ),
    "missing-model-folder": (
        {"data.csv": GOOD},
        ["--data", "data.csv", "--model", "./no-model"],
        "./no-model: ",
        "model folder not found",
    ),
}


@pytest.mark.parametrize("files, args, where, expected", TRAIN_ERRORS.values(), ids=TRAIN_ERRORS.keys())
def test_train_bad_input(files, args, where, expected, model_loading):
    for name, content in files.items():
        write(name, content)
    line = assert_one_line_error(invoke("train", "--output", "out", *args), expected)
    assert line.startswith(f"error: {where}")
    assert model_loading == []
    assert not Path("out").exists()


def test_encoding_flag_reads_a_latin1_file(model_loading):
    write("data.csv", "0,caf\xe9\n1,na\xefve\n".encode("latin-1"))
    assert_one_line_error(invoke("train", "--output", "out", "--data", "data.csv"), "data.csv:1: ", "--encoding")
    result = invoke("train", "--output", "out", "--data", "data.csv", "--encoding", "latin-1")
    assert_one_line_error(result, "model loading stubbed out")  # the data was accepted
    assert [labels.names for labels in model_loading] == [("0", "1")]


def test_on_bad_rows_skip_reports_how_many_and_which_lines(model_loading):
    write("data.csv", b"0,a\n1,\n1,b\n2,c,d\n0,e\n1,f\n")
    result = invoke("train", "--output", "out", "--data", "data.csv", "--on-bad-rows", "skip")
    note, error = result.stderr.splitlines()
    assert note.startswith("data.csv: skipped 2 bad row(s) (line 2: empty text")
    assert "line 4: expected 2 columns" in note
    assert error == "error: model loading stubbed out"
    assert len(model_loading) == 1


@pytest.mark.parametrize(
    "args, where, expected",
    [
        (["evaluate", "--model-dir", "no-model", "--data", "data.csv"], "no-model: ", "model folder not found"),
        (["evaluate", "--model-dir", "empty-dir", "--data", "data.csv"], "empty-dir: ", "not a model folder"),
        (["predict", "--model-dir", "no-model", "some text"], "no-model: ", "model folder not found"),
        (["predict", "--model-dir", "no-model", "--input", "none.txt"], "none.txt: ", "no such file"),
        (["predict", "--model-dir", "no-model", "--input", "bad.txt"], "bad.txt:2: ", "not valid utf-8"),
        (["predict", "--model-dir", "no-model", "--input", "blank.txt"], "blank.txt: ", "file is empty"),
    ],
    ids=[
        "evaluate-missing-model",
        "evaluate-not-a-model",
        "predict-missing-model",
        "predict-missing-input",
        "predict-undecodable-input",
        "predict-empty-input",
    ],
)
def test_evaluate_and_predict_bad_input(args, where, expected):
    write("data.csv", GOOD)
    write("bad.txt", b"fine\nnot \xff fine\n")
    write("blank.txt", "\n \n")
    Path("empty-dir").mkdir()
    line = assert_one_line_error(invoke(*args), expected)
    assert line.startswith(f"error: {where}")


@pytest.mark.parametrize(
    "args, expected",
    [
        (["predict", "--model-dir", "m"], "nothing to classify"),
        (["predict", "--model-dir", "m", "--input", "t.txt", "a text"], "not both"),
        (["train", "--output", "out"], "--data"),
        (["train", "--output", "out", "--data", "d.csv", "--on-bad-rows", "ignore"], "'ignore'"),
        (["evaluate", "--model-dir", "m", "--data", "d.csv", "--batch-size", "0"], "--batch-size"),
        (["train", "--output", "out", "--data", "d.csv", "--no-such-flag"], "--no-such-flag"),
    ],
    ids=[
        "predict-no-texts",
        "predict-texts-and-input",
        "train-no-data",
        "bad-choice",
        "bad-batch-size",
        "unknown-flag",
    ],
)
def test_usage_errors(args, expected):
    """click's own usage errors: a Usage: block, then "Error: ..." naming the problem."""
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.stderr.startswith("Usage: ")
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and expected in last


# -- the real console entry point, in a subprocess -----------------------------


def run_textclf(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "textclf", *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.parametrize(
    "args, expected_stderr",
    [
        (
            ["train", "--data", "data.csv", "--output", "out"],
            "error: data.csv:2: bytes that are not valid utf-8; pass --encoding with the file's real encoding "
            "(e.g. --encoding latin-1).\n",
        ),
        (
            ["train", "--data", "gap.csv", "--output", "out", "--epochs", "abc"],
            "error: command line: epochs has value 'abc'; expected an integer or auto.\n",
        ),
        (
            ["evaluate", "--model-dir", "no-model", "--data", "gap.csv"],
            "error: no-model: model folder not found; pass the --output folder of `textclf train`.\n",
        ),
    ],
    ids=["train-undecodable", "train-epochs-abc", "evaluate-missing-model"],
)
@pytest.mark.subprocess
def test_console_script_prints_one_line_and_exits_2(args, expected_stderr):
    write("data.csv", b"0,a\n1,caf\xe9\n")
    write("gap.csv", "0,a\n1,b\n3,c\n")
    result = run_textclf(*args)
    assert (result.returncode, result.stderr, result.stdout) == (2, expected_stderr, "")


@pytest.mark.subprocess
def test_console_script_usage_error_has_no_traceback():
    result = run_textclf("predict", "--model-dir", "no-model")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("Usage: ") and "Error: nothing to classify" in result.stderr


@pytest.mark.subprocess
def test_output_into_a_closed_pipe_is_not_an_error_message():
    """``textclf hyperparameters --explain | head -1``: the reader is gone before textclf writes."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "textclf", "hyperparameters", "--explain"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (141, "")  # 128 + SIGPIPE, as a shell reports it
