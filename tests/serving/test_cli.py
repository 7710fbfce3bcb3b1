"""`textclf serve` as a process: errors, graceful shutdown, several workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from click.testing import CliRunner
from serving_helpers import free_port, wait_for_ping, with_code

from textclf.cli import main

SLOW_PREDICT = """
import time

def predict_fn(data, model):
    time.sleep(1.5)
    return {"labels": [p.predicted_label for p in model.predict(data.texts)]}
"""


def start(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "textclf", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def stop(process: subprocess.Popen, timeout: float = 30) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err


def test_no_model_is_a_one_line_error(monkeypatch):
    for name in ("SM_MODEL_DIR", "HF_MODEL_ID"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: no model to serve: pass --model-dir DIR (a textclf model folder) or --model ID_OR_FOLDER, "
        "or set SM_MODEL_DIR or HF_MODEL_ID."
    ]


def test_a_missing_model_folder_fails_before_binding_the_port(tmp_path):
    result = CliRunner().invoke(main, ["serve", "--model-dir", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "model folder not found" in result.output


@pytest.mark.subprocess
def test_an_unreachable_hub_model_exits_2_with_how_to_fix_it():
    process = start("--model", "someone/not-cached-model", "--port", str(free_port()), env={"HF_HUB_OFFLINE": "1"})
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2
    last = err.strip().splitlines()[-1]
    assert (
        last.startswith("error: cannot load the model: cannot load 'someone/not-cached-model'")
        and "--local-dir" in last
    )
    assert "Traceback" not in err


@pytest.mark.slow
@pytest.mark.subprocess
def test_sigterm_lets_in_flight_requests_finish_then_exits_0(bert_artifact, tmp_path):
    folder = with_code(bert_artifact, tmp_path / "slow", SLOW_PREDICT)
    port = free_port()
    process = start("--model-dir", str(folder), "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_ping(url)
        answers = []

        def request():
            answers.append(
                httpx.post(
                    url + "/invocations", content=b"lovely food", headers={"Content-Type": "text/plain"}, timeout=30
                )
            )

        thread = threading.Thread(target=request)
        thread.start()
        time.sleep(0.5)  # the request is inside predict_fn now
        code, err = stop(process)
        thread.join(30)
    finally:
        process.kill()
    assert code == 0, err
    assert answers and answers[0].status_code == 200 and answers[0].json() == {"labels": ["positive"]}
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/ping", timeout=2)


@pytest.mark.slow
@pytest.mark.subprocess
def test_several_workers_serve_one_port_and_sum_their_metrics(bert_artifact):
    port = free_port()
    process = start("--model-dir", str(bert_artifact), "--port", str(port), "--workers", "2")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_ping(url, timeout=120)
        statuses = []
        for i in range(24):  # a new connection each time, so the kernel spreads them over workers
            statuses.append(
                httpx.post(
                    url + "/invocations", content=f"nice food {i}".encode(), headers={"Content-Type": "text/plain"}
                ).status_code
            )
        metrics = httpx.get(url + "/metrics").text
        code, err = stop(process)
    finally:
        process.kill()
    assert statuses == [200] * 24
    line = next(
        x for x in metrics.splitlines() if x.startswith('textclf_requests_total{route="/invocations",status="200"}')
    )
    assert float(line.rsplit(" ", 1)[1]) == 24  # whichever worker answered the scrape
    assert code == 0, err
