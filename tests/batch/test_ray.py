"""textclf batch --engine ray: the local engine's bytes from Ray actors, on a local instance and on two nodes.

A tiny model exported to int8 ONNX (what ``--backend auto`` picks) scores the same inputs with both
engines and the same ``--workers``, so the same threads per worker: the outputs must be equal byte
for byte, ``.errors`` files and exit code 3 included. The local Ray instance is started by this
module (``ray.init``) and shut down at its end; the two-node cluster by its test, with ``ray start``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from conftest import make_sentences, write_csv
from serving.serving_helpers import free_port
from test_cli_errors import assert_one_line_error
from textclf.cli import main

pytestmark = pytest.mark.subprocess  # Ray's processes (raylet, actors) cost seconds to start

WORKDIR = ".textclf-batch"
CHUNK = "3"


def batch(*args) -> Result:
    return CliRunner().invoke(main, ["batch", *map(str, args)])


def outputs(folder: Path) -> dict[str, bytes]:
    """Every file the job left outside its working folder, by relative name."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and WORKDIR not in p.parts
    }


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Three files, two of them with records that cannot be read."""
    folder = tmp_path_factory.mktemp("ray-inputs")
    write_csv(folder / "big.csv", make_sentences(240, 3))
    (folder / "rows.jsonl").write_text(
        "".join(json.dumps({"text": t, "label": y}) + "\n" for y, t in make_sentences(30, 4))
        + '{"text": \n{"label": "positive"}\n{"text": "  "}\n',
        encoding="utf-8",
    )
    (folder / "bad.txt").write_bytes(b"good\n\xff\nbad\n")
    return folder


def job(model: Path, inputs: Path, output: Path, *more) -> list[str]:
    return ["--model-dir", str(model), "--input", str(inputs), "--output", str(output), "--chunk-size", CHUNK, *more]


@pytest.fixture(scope="module")
def local_outputs(bert_int8, inputs, tmp_path_factory) -> dict[str, bytes]:
    """The local engine's outputs, two worker processes (the threads a worker of two has)."""
    out = tmp_path_factory.mktemp("ray-local") / "out"
    result = batch(*job(bert_int8, inputs, out, "--workers", "2"))
    assert result.exit_code == 3, result.output
    found = outputs(out)
    assert sorted(found) == ["bad.txt.errors", "bad.txt.out", "big.csv.out", "rows.jsonl.errors", "rows.jsonl.out"]
    return found


@pytest.fixture(scope="module")
def local_ray():
    """A Ray instance of this process's own, on 2 CPUs: the engine uses it as it is."""
    import logging

    ray = pytest.importorskip("ray", reason="the Ray engine is the textclf[ray] extra (in dev)")
    auth = os.environ.get("RAY_AUTH_MODE")  # a new local Ray sets it to "token" for this process
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()
    if auth is None:
        os.environ.pop("RAY_AUTH_MODE", None)
    else:
        os.environ["RAY_AUTH_MODE"] = auth


# -- usage (first: once this module starts Ray in this process, a job runs on it) ------------


def test_an_unreachable_or_malformed_ray_address_is_one_line(bert_int8, inputs, tmp_path):
    pytest.importorskip("ray", reason="the Ray engine is the textclf[ray] extra (in dev)")
    port = free_port()  # bound and closed again: nothing listens there
    for address, fragment in ((f"127.0.0.1:{port}", "nothing answers there"), ("cluster", "expected host:port")):
        result = batch(*job(bert_int8, inputs, tmp_path / "out", "--engine", "ray", "--ray-address", address))
        assert_one_line_error(result, f"--ray-address {address}", fragment)
    result = batch(*job(bert_int8, inputs, tmp_path / "out2", "--ray-address", f"127.0.0.1:{port}"))
    assert_one_line_error(result, "needs --engine ray")


CHILD = """
import sys

from textclf.cli import main

model, texts, output = sys.argv[1:4]


def run(*args):
    try:
        main(["batch", "--model-dir", model, "--input", texts, *args])
    except SystemExit as exc:
        return exc.code
    return 0


local = run("--output", output + "/local")
imported = "ray" in sys.modules
sys.modules["ray"] = None  # as if textclf[ray] were not installed: importing it raises ImportError
print(f"local={local} imported={imported}", file=sys.stderr)
sys.exit(run("--output", output + "/ray", "--engine", "ray"))
"""


def test_only_engine_ray_imports_ray_and_without_it_says_how_to_install(bert_int8, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("good food\nawful service\n", encoding="utf-8")
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(bert_int8), str(texts), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = child.stderr.splitlines()
    assert "local=0 imported=False" in lines, child.stderr
    assert child.returncode == 2 and lines[-1].startswith("error: --engine ray needs Ray"), child.stderr
    assert "pip install 'textclf[ray]'" in lines[-1]


# -- a local Ray instance --------------------------------------------------------


def test_ray_engine_writes_the_local_engines_bytes_with_errors_and_exit_3(
    local_ray, bert_int8, inputs, local_outputs, tmp_path
):
    result = batch(*job(bert_int8, inputs, tmp_path / "out", "--engine", "ray", "--workers", "2"))
    assert result.exit_code == 3, result.output
    assert "272 records scored in 3 file(s); 4 records could not be read" in result.stderr
    assert re.search(r"Ray actors scored 92 chunk\(s\) on 1 node\(s\)", result.stderr), result.stderr
    assert outputs(tmp_path / "out") == local_outputs
    assert sorted(os.listdir(tmp_path / "out" / WORKDIR)) == ["lock", "manifest.json"]
    again = batch(*job(bert_int8, inputs, tmp_path / "out", "--engine", "ray", "--workers", "2"))
    assert again.exit_code == 3 and "already complete" in again.stderr


def test_a_model_archive_and_relative_paths_give_the_same_bytes(
    local_ray, bert_int8, inputs, local_outputs, tmp_path, monkeypatch
):
    """The actors get absolute paths (they may run in another working folder) and the archive itself, which
    an actor on a node without the driver's unpacked copy unpacks for itself."""
    from textclf.packaging import package

    package(bert_int8, tmp_path / "model.tar.gz")
    shutil.copytree(inputs, tmp_path / "inputs")
    monkeypatch.chdir(tmp_path)
    result = batch(*job(Path("model.tar.gz"), Path("inputs"), Path("out"), "--engine", "ray", "--workers", "2"))
    assert result.exit_code == 3, result.output
    assert outputs(tmp_path / "out") == local_outputs


def test_a_model_that_fails_in_an_actor_is_one_line(local_ray, bert_int8, inputs, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(bert_int8, broken)
    (broken / "model.int8.onnx").write_bytes(b"not the exported file")
    result = batch(*job(broken, inputs, tmp_path / "out", "--engine", "ray", "--workers", "2", "--no-progress"))
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    status, error = result.stderr.splitlines()  # the job's "scoring on Ray" line, then the actor's error
    assert "scoring on Ray" in status
    assert error.startswith(f"error: {broken / 'model.int8.onnx'}: differs from the file `textclf export` verified")


def test_more_workers_than_the_cluster_has_cpus_is_one_line(local_ray, bert_int8, inputs, tmp_path):
    """An actor takes one CPU: a pool larger than the cluster would wait for the missing ones forever."""
    result = batch(*job(bert_int8, inputs, tmp_path / "out", "--engine", "ray", "--workers", "3"))
    assert_one_line_error(result, "has 2 CPU(s) and --workers 3 needs one an actor", "pass --workers 2 or fewer")


def _done_chunks(output: Path) -> int:
    try:
        return len(list((output / WORKDIR / "parts").rglob("*.json")))
    except OSError:  # a folder removed while listed
        return 0


@pytest.mark.slow
def test_a_killed_ray_run_resumes_to_the_local_engines_bytes(local_ray, bert_int8, inputs, local_outputs, tmp_path):
    """SIGKILL a `batch --engine ray` (the driver and the Ray instance it started, one process group) once
    chunks are on disk; the same command finishes the job (here on the module's Ray), with the local bytes."""
    out = tmp_path / "out"
    args = job(bert_int8, inputs, out, "--engine", "ray", "--workers", "2")
    run = subprocess.Popen(
        [sys.executable, "-m", "textclf", "batch", *args],
        env={**os.environ, "HF_HUB_OFFLINE": "1", "RAY_ADDRESS": ""},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while _done_chunks(out) < 3:
            assert run.poll() is None, f"the run ended before it could be killed: {run.stderr.read().decode()}"
            assert time.monotonic() < deadline
            time.sleep(0.005)
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # the driver, and the GCS, raylet and agents it started
        run.wait()
    stderr = run.stderr.read().decode()
    assert [line for line in stderr.splitlines() if not line.startswith(f"{out}: ")] == []  # nothing from Ray
    assert json.loads((out / WORKDIR / "manifest.json").read_text())["result"] is None  # killed mid-job

    resumed = batch(*args)
    assert resumed.exit_code == 3, resumed.output
    assert "resuming" in resumed.stderr
    assert outputs(out) == local_outputs


# -- a two-node cluster on this machine --------------------------------------------


def _ray_cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    ray = Path(sys.executable).with_name("ray")
    return subprocess.run([str(ray), *args], env=env, capture_output=True, text=True, timeout=180)


def _cluster_pids(temp_dir: Path) -> set[int]:
    """The processes `ray start` left running for this cluster (their command lines name its folder), and theirs."""
    found, parents = set(), {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
            parents[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if str(temp_dir).encode() in cmdline:
            found.add(int(proc.name))
    grown = True
    while grown:
        children = {pid for pid, parent in parents.items() if parent in found} - found
        found |= children
        grown = bool(children)
    return found


def _stop_cluster(temp_dir: Path, env: dict) -> None:
    """`ray stop` would stop every Ray on the machine: signal only this cluster's processes, by id."""
    pids = _cluster_pids(temp_dir)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
            time.sleep(0.2)


@pytest.mark.slow
def test_two_nodes_run_the_actors_and_write_the_local_bytes(bert_int8, inputs, local_outputs, tmp_path):
    pytest.importorskip("ray", reason="the Ray engine is the textclf[ray] extra (in dev)")
    temp_dir = Path("/tmp") / f"textclf-ray-{secrets.token_hex(4)}"  # short: Ray's socket paths must fit
    token = tmp_path / "token"
    token.write_text(secrets.token_hex(32))
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "RAY_AUTH_MODE": "token",  # every process of the cluster, and the driver, shares this token
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ADDRESS": "",
    }
    port = free_port()
    node = ["--num-cpus", "1", "--object-store-memory", str(100 * 2**20), "--disable-usage-stats"]
    try:
        head = _ray_cli(
            "start",
            "--head",
            "--port",
            str(port),
            "--resources",
            '{"head": 1}',
            "--include-dashboard=false",
            "--temp-dir",
            str(temp_dir),
            *node,
            env=env,
        )
        assert head.returncode == 0, head.stderr
        second = _ray_cli("start", "--address", f"127.0.0.1:{port}", "--resources", '{"second": 1}', *node, env=env)
        assert second.returncode == 0, second.stderr
        out = tmp_path / "out"
        address = ["--engine", "ray", "--ray-address", f"127.0.0.1:{port}", "--workers", "2"]
        run = subprocess.run(
            [sys.executable, "-m", "textclf", "batch", *job(bert_int8, inputs, out, *address)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        status = _ray_cli("status", "--address", f"127.0.0.1:{port}", env=env)
    finally:
        _stop_cluster(temp_dir, env)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert run.returncode == 3, run.stderr
    assert [line for line in run.stderr.splitlines() if not line.startswith(f"{out}: ")] == []  # nothing from Ray
    nodes = set(re.findall(r"node_([0-9a-f]{8})", status.stdout))
    assert len(nodes) == 2, status.stdout
    used = re.search(r"Ray actors scored 92 chunk\(s\) on 2 node\(s\): (\w+) \(\d+\), (\w+) \(\d+\)", run.stderr)
    assert used and set(used.groups()) == nodes, run.stderr  # an actor on each node
    assert outputs(out) == local_outputs
