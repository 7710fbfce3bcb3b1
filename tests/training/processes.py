"""What the tests that train in child processes share (test_distributed, test_multinode): the command,
its environment, the records it writes, and one run with uneven shards to stop and resume."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from conftest import REPO

TIMING = ("samples_per_second", "scoring_seconds", "train_seconds", "elapsed_seconds")


def textclf_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "textclf", "train", "--no-progress", *args]


def env(**extra: str) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", **extra}


def metrics(folder: Path) -> list[dict]:
    """The epochs' records (the calibration line after them left out)."""
    return [r for r in map(json.loads, (folder / "metrics.jsonl").read_text().splitlines()) if "epoch" in r]


def untimed(records: list[dict]) -> list[dict]:
    """``records`` without their timings: what must come out the same in two runs."""
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def sifting_args(train: Path, validation: Path, model: Path) -> list[str]:
    """``textclf train`` flags for 3 epochs of sifting with a checkpoint every 3 steps, in 2 processes.

    With 129 rows in ``train`` (``make_sentences(129, 5)``), global sifting candidates of 128 (16 batches
    of 4, 2 processes): the last has 1 row, so rank 1 has a candidate fewer, and sifting keeps different
    numbers of rows in each process: the processes take different numbers of micro-batches.
    """
    return [
        "--data",
        str(train),
        "--validation",
        str(validation),
        "--model",
        str(model),
        "--epochs",
        "3",
        "--learning-rate",
        "3e-3",
        "--batch-size",
        "4",
        "--max-seq-length",
        "32",
        "--sifting",
        "true",
        "--sifting-delay",
        "4",
        "--gradient-accumulation-steps",
        "2",
        "--checkpoint-every-steps",
        "3",
    ]
