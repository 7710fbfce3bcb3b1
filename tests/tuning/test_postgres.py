"""textclf tune on a real PostgreSQL server started here: two processes on one study, one killed, bad URLs.

The server comes from Debian's ``postgresql`` package (``make postgres`` installs it): ``initdb``
into a temporary folder, run as an unprivileged user (CI runs as root, which PostgreSQL refuses),
on a free local port with password authentication for the role the studies use.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from test_tuning import _cli, _env, study_csv

from test_cli_errors import assert_one_line_error
from textclf.cli import main

USER, PASSWORD = "textclf", "secret"


@dataclass
class Server:
    """A running PostgreSQL server: its binaries, data folder (also the socket's) and port."""

    bin: Path
    root: Path
    port: int
    as_user: list[str]

    def sql(self, *statements: str) -> None:
        """Run statements as the superuser, through the unix socket (trusted there)."""
        command = [self.bin / "psql", "-h", self.root, "-p", str(self.port), "-U", "postgres", "-d", "postgres"]
        for statement in statements:
            command += ["-c", statement]
        subprocess.run([*map(str, command), "-v", "ON_ERROR_STOP=1", "-q"], check=True, capture_output=True)

    def url(self, database: str, password: str = PASSWORD, port: int | None = None) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{port or self.port}/{database}"

    def database(self, name: str) -> str:
        """A new empty database owned by the study role; its URL."""
        self.sql(f"CREATE DATABASE {name} OWNER {USER}")
        return self.url(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unprivileged_user() -> str:
    """``nobody``, or a system user made for the server where there is none."""
    for name in ("nobody", "textclf-pg"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "textclf-pg"], check=True, capture_output=True)
    return "textclf-pg"


@pytest.fixture(scope="module")
def postgres(request) -> Server:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda path: int(Path(path).parts[-3]))
    if not found:
        pytest.skip("Debian's postgresql is not installed here (make postgres installs it)")
    pytest.importorskip("psycopg", reason="the PostgreSQL driver is not installed: pip install -e '.[dev]'")
    bin = Path(found[-1]).parent
    # not under pytest's tmp_path: that folder is root's alone, and the server runs as another user
    root = Path(tempfile.mkdtemp(prefix="textclf-pg-"))
    request.addfinalizer(lambda: shutil.rmtree(root, ignore_errors=True))
    as_user = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        user = _unprivileged_user()
        shutil.chown(root, user)
        as_user = ["runuser", "-u", user, "--"]
    server = Server(bin, root, _free_port(), as_user)
    initdb = [bin / "initdb", "-D", root / "data", "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256"]
    subprocess.run(
        [*as_user, *map(str, initdb), "--no-sync", "-E", "UTF8", "--locale=C"], check=True, capture_output=True
    )
    options = f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
    pg_ctl = [*as_user, str(bin / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "log")]
    request.addfinalizer(lambda: subprocess.run([*pg_ctl, "stop", "-m", "immediate"], capture_output=True))
    started = subprocess.run([*pg_ctl, "-o", options, "-w", "-t", "60", "start"], capture_output=True, text=True)
    assert started.returncode == 0, started.stderr + (root / "log").read_text(errors="replace")
    server.sql(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'")
    return server


def _space(tmp_path: Path) -> Path:
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}\n")  # some learn, some not
    return space


def _trials(url: str) -> list[optuna.trial.FrozenTrial]:
    """The study's trials, less those given up because the study was already full."""
    study = optuna.load_study(study_name="textclf", storage=url.replace("postgresql://", "postgresql+psycopg://"))
    return [t for t in study.trials if not t.user_attrs.get("surplus")]


def _assert_best_is_the_best_stored(output: Path, complete: list[optuna.trial.FrozenTrial]) -> None:
    best = max(complete, key=lambda t: (t.value, -t.number))
    tuning = json.loads((output / "best" / "textclf.json").read_text())["tuning"]
    assert (tuning["trial"], tuning["value"]) == (best.number, best.value)
    assert (output / "best" / "model.safetensors").is_file()
    rows = study_csv(output)
    assert sorted(int(r["number"]) for r in rows if r["state"] == "COMPLETE") == sorted(t.number for t in complete)


@pytest.mark.slow
@pytest.mark.subprocess
def test_two_processes_share_one_study_and_each_trial_runs_once(postgres, tiny_bert, sentiment_files, tmp_path):
    url = postgres.database("together")
    output = tmp_path / "study"
    command = _cli(tiny_bert, sentiment_files, output, _space(tmp_path), "--storage", url)
    command += ["--max-trials", "4", "--epochs", "2", "--batch-size", "16"]  # the last of a repeated flag wins
    runs = [subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env())]
    runs.append(subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env()))
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (_, err) in zip(runs, outputs):
        assert run.returncode == 0, err

    trials = _trials(url)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(trials) == len(complete) == 4, [(t.number, t.state.name) for t in trials]
    assert sorted(t.number for t in complete) == [0, 1, 2, 3]  # none lost, none run twice
    assert len({t.user_attrs["worker"] for t in complete}) == 2, "one process ran every trial"
    _assert_best_is_the_best_stored(output, complete)
    assert all((output / "trials" / f"{t.number:04d}" / "textclf.json").is_file() for t in complete)
    assert PASSWORD not in "".join(err for _, err in outputs)


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_trial_of_a_killed_process_is_retried_by_the_other(postgres, tiny_bert, sentiment_files, tmp_path):
    url = postgres.database("killed")
    output = tmp_path / "study"
    command = _cli(tiny_bert, sentiment_files, output, _space(tmp_path), "--storage", url, "--max-trials", "4")
    victim_log = tmp_path / "victim.log"
    with victim_log.open("w") as log:
        victim = subprocess.Popen(command, stderr=log, stdout=subprocess.DEVNULL, env=_env())
    other = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env())
    deadline = time.monotonic() + 120
    while not (started := re.search(r"trial (\d+): training", victim_log.read_text())):
        assert victim.poll() is None and time.monotonic() < deadline, victim_log.read_text()
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)  # mid-trial, no clean-up: its trial stays RUNNING in the database
    victim.wait()
    killed = int(started.group(1))
    _, err = other.communicate(timeout=300)
    assert other.returncode == 0, err
    assert f"retrying trial(s) {killed}," in err

    trials = {t.number: t for t in _trials(url)}
    assert trials[killed].state.name == "FAIL"
    complete = [t for t in trials.values() if t.state.name == "COMPLETE"]
    assert len(complete) == 4 and set(trials) == {killed, *(t.number for t in complete)}
    retried = [t for t in complete if t.system_attrs.get("failed_trial") == killed]
    assert len(retried) == 1 and retried[0].params == trials[killed].params
    _assert_best_is_the_best_stored(output, complete)
    assert not list((output / "trials").glob(".*")), "a half-built trial folder was left"

    again = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=120)  # nothing left to do
    assert again.returncode == 0 and "4 of 4 trials finished" in again.stderr, again.stderr
    assert len(_trials(url)) == len(trials)


def _tune(tiny_bert, sentiment_files, url: str):
    train, val = sentiment_files
    args = ["tune", "--data", str(train), "--validation", str(val), "--model", str(tiny_bert), "--storage", url]
    return CliRunner().invoke(main, [*args, "--output", "out"])


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def test_a_wrong_password_is_one_line_naming_the_fix(postgres, tiny_bert, sentiment_files):
    url = postgres.url("postgres", password="not-the-password")
    line = assert_one_line_error(
        _tune(tiny_bert, sentiment_files, url), "password authentication failed", "check the user name and password"
    )
    assert "not-the-password" not in line and f"{USER}:***@" in line


def test_a_missing_database_is_one_line_naming_the_fix(postgres, tiny_bert, sentiment_files):
    result = _tune(tiny_bert, sentiment_files, postgres.url("nosuchdb"))
    assert_one_line_error(result, 'database "nosuchdb" does not exist', "createdb --owner USER NAME")


def test_a_closed_port_is_one_line_naming_the_fix(tiny_bert, sentiment_files):
    url = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{_free_port()}/optuna"
    assert_one_line_error(_tune(tiny_bert, sentiment_files, url), "Connection refused", "check the host and port")


def test_a_server_that_never_answers_fails_after_the_connect_timeout(tiny_bert, sentiment_files):
    with socket.socket() as silent:  # accepts connections (the kernel does) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{silent.getsockname()[1]}/optuna"
        start = time.monotonic()
        result = _tune(tiny_bert, sentiment_files, url)
    assert time.monotonic() - start < 30
    assert_one_line_error(result, "timeout expired", "check the host and port")


def test_a_missing_driver_is_one_line_naming_the_extra(tiny_bert, sentiment_files, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg fails, as where it is not installed
    url = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:5432/optuna"
    assert_one_line_error(_tune(tiny_bert, sentiment_files, url), "'psycopg'", "pip install 'textclf[postgres]'")
