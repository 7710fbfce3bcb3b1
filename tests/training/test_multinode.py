"""Training on two nodes: two torchrun agents on this machine, one training process each, train as one agent
with two processes does; they stop on SIGTERM and resume; a node whose peer never comes stops in bounded time."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from processes import env, metrics, sifting_args, textclf_cli, untimed
from safetensors.torch import load_file

from conftest import make_sentences, write_csv
from textclf.errors import ConfigError
from textclf.training.distributed import launch

WAIT = 300  # seconds a node may take before the test kills it and fails

# One node of a two-node launch through textclf's launcher (static rendezvous: node 0 hosts it), as
# `textclf sagemaker train` starts one: python -c NODE NODE_RANK PORT JOIN_TIMEOUT textclf-arguments...
NODE = """
import sys
from textclf.errors import TextclfError
from textclf.training.distributed import launch
rank, port, join, *argv = sys.argv[1:]
try:
    code = launch(1, argv, nnodes=2, node_rank=int(rank), master_addr="127.0.0.1", master_port=int(port),
                  join_timeout=int(join))
except TextclfError as exc:
    print(f"error: {exc}", file=sys.stderr)
    code = 2
sys.exit(code)
"""


def launch_node(rank: int, port: int, *args: str, join_timeout: int = 60) -> list[str]:
    return [sys.executable, "-c", NODE, str(rank), str(port), str(join_timeout), "train", "--no-progress", *args]


def torchrun_node(port: int, *args: str, join_timeout: int = 60) -> list[str]:
    """A node of a two-node job started by torchrun itself, with c10d rendezvous (which numbers the nodes
    itself in the order they join: --node-rank is static rendezvous's)."""
    rendezvous = ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "multinode"]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "2",
        "--nproc-per-node",
        "1",
        *rendezvous,
        "--rdzv-conf",
        f"join_timeout={join_timeout}",
        "-m",
        "textclf",
        "train",
        "--no-progress",
        *args,
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One node: its launcher, stderr in a file."""

    def __init__(self, command: list[str], log: Path, cwd: Path):
        self.log = log
        with log.open("w") as stderr:
            self.process = subprocess.Popen(
                command,
                cwd=cwd,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=env(OMP_NUM_THREADS="1"),  # alike in every run compared here: 2 processes on 2 cores
                start_new_session=True,
            )

    def wait(self, timeout: float = WAIT) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"a node did not finish within {timeout} s:\n{self.text()}")

    def text(self) -> str:
        return self.log.read_text()

    def lines(self, start: str) -> list[str]:
        return [line for line in self.text().splitlines() if line.startswith(start)]

    def kill(self) -> None:
        """The launcher and its workers, which torchrun starts in sessions of their own (they outlive a
        launcher killed alone)."""
        if self.process.poll() is not None:
            return
        pid, workers = self.process.pid, []
        with contextlib.suppress(OSError):
            workers = [int(w) for w in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        for group in (pid, *workers):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def nodes(tmp_path):
    """start(command, cwd=tmp_path): a Node, logging to tmp_path/node-N.log; any left running are killed at the end."""
    started: list[Node] = []

    def start(command: list[str], cwd: Path = tmp_path) -> Node:
        started.append(Node(command, tmp_path / f"node-{len(started)}.log", cwd))
        return started[-1]

    yield start
    for node in started:
        node.kill()


def finish(*running: Node) -> list[int]:
    return [node.wait() for node in running]


@pytest.fixture(scope="module")
def sifting_job(tiny_bert, sentiment_files, tmp_path_factory) -> tuple[list[str], Path]:
    """The flags of a sifting run with uneven shards, and its result trained by one agent with 2 processes."""
    folder = tmp_path_factory.mktemp("one-node")
    args = sifting_args(write_csv(folder / "train.csv", make_sentences(129, 5)), sentiment_files[1], tiny_bert)
    done = subprocess.run(
        textclf_cli("--nproc", "2", *args, "--output", str(folder / "reference")),
        capture_output=True,
        text=True,
        env=env(OMP_NUM_THREADS="1"),
        timeout=WAIT,
    )
    assert done.returncode == 0, done.stderr
    return args, folder / "reference"


def assert_same_run(output: Path, reference: Path) -> None:
    """Bit for bit: 2 processes sum their gradients alike wherever they run (a + b is b + a in floats), so
    nothing is left to the tolerance the 1-process comparison of test_distributed needs."""
    assert untimed(metrics(output)) == untimed(metrics(reference))
    a, b = load_file(output / "model.safetensors"), load_file(reference / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.subprocess
@pytest.mark.distributed
@pytest.mark.slow
def test_two_torchrun_nodes_with_c10d_rendezvous_train_as_one_node_with_two_processes(sifting_job, nodes, tmp_path):
    args, reference = sifting_job
    port = free_port()
    started = [nodes(torchrun_node(port, *args, "--output", str(tmp_path / "out"))) for _ in range(2)]
    assert finish(*started) == [0, 0], "".join(node.text() for node in started)
    logs = "".join(node.text() for node in started)
    assert logs.count("; 2 processes, 16 samples per step") == 1  # global rank 0 alone logs, on either node
    assert_same_run(tmp_path / "out", reference)


@pytest.mark.subprocess
@pytest.mark.distributed
@pytest.mark.slow
def test_two_launched_nodes_stop_on_sigterm_and_resume_from_a_checkpoint_every_node_reads(sifting_job, nodes, tmp_path):
    # Node 0 runs in a/ and node 1 in b/, and the output is a relative path: the nodes do not share the output's
    # folder, as two machines without a shared filesystem would not. Training needs only node 0's (global rank 0
    # writes); a resume needs every node to read the checkpoint at the path rank 0 found it.
    args, reference = sifting_job
    args = [*args, "--output", "out"]
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()

    port = free_port()
    first = [nodes(launch_node(0, port, *args), cwd=a), nodes(launch_node(1, port, *args), cwd=b)]
    deadline = time.monotonic() + WAIT
    while not first[0].lines("epoch 1/3") and first[0].process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    for node in first:  # as a cluster's scheduler stops a job: every node's launcher, which passes it on
        node.process.send_signal(signal.SIGTERM)
    assert finish(*first) == [130, 130], first[0].text() + first[1].text()
    stopped = first[0].lines("error: stopped by SIGTERM")
    assert len(stopped) == 1 and "Run the same command again to resume." in stopped[0], first[0].text()
    assert not first[1].lines("error:"), first[1].text()  # rank 0 reports, once for the job
    assert not (a / "out").exists() and list(a.glob(".out.tmp-*/checkpoints/step-*.pt"))

    port = free_port()
    apart = [nodes(launch_node(0, port, *args), cwd=a), nodes(launch_node(1, port, *args), cwd=b)]
    assert finish(*apart) == [2, 2], apart[0].text() + apart[1].text()
    error = apart[0].lines("error:")
    assert len(error) == 1 and "1 of the 2 training processes cannot read the checkpoint" in error[0], error
    assert "no such file on that process's machine" in error[0] and "--checkpoint-dir that all of them" in error[0]

    port = free_port()
    resumed = [nodes(launch_node(0, port, *args), cwd=a), nodes(launch_node(1, port, *args), cwd=a)]
    assert finish(*resumed) == [0, 0], resumed[0].text() + resumed[1].text()
    assert len(resumed[0].lines("resuming from")) == 1
    assert_same_run(a / "out", reference)


@pytest.mark.subprocess
@pytest.mark.distributed
@pytest.mark.parametrize("launcher", ["textclf", "torchrun"])
def test_a_node_whose_peer_never_joins_stops_after_the_join_timeout(launcher, nodes, tmp_path):
    port = free_port()
    args = ["--data", "unread.csv", "--output", str(tmp_path / "out")]  # never read: no worker starts
    started = time.monotonic()
    if launcher == "textclf":
        alone = nodes(launch_node(0, port, *args, join_timeout=2))
        assert alone.wait() == 2
        lines = alone.text().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: node 0 of 2: not all 2 nodes joined at 127.0.0.1:")
        assert "within 2 s" in lines[0] and "node 0's address" in lines[0]
    else:  # torchrun's own report: a traceback ending in its RendezvousTimeoutError
        alone = nodes(torchrun_node(port, *args, join_timeout=2))
        assert alone.wait() == 1
        assert "RendezvousTimeoutError" in alone.text()
    assert time.monotonic() - started < 60  # start-up, and 2 s of waiting
    assert not (tmp_path / "out").exists()


def test_a_launch_on_several_nodes_needs_node_0s_address_and_a_rank_among_them():
    with pytest.raises(ConfigError, match="needs master_addr, the address of node 0"):
        launch(1, ["train"], nnodes=2, node_rank=1)
    with pytest.raises(ConfigError, match="node_rank 2 is not one of the 2 machines' ranks, 0 to 1"):
        launch(1, ["train"], nnodes=2, node_rank=2, master_addr="127.0.0.1")
