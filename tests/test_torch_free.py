"""``textclf serve`` and ``textclf batch`` with ``--backend onnx-int8`` never import torch or transformers.

The model is trained and exported here (that needs PyTorch); a child process then runs both
commands on the export, as a user would, and reports which of the two it ever imported.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from serving.serving_helpers import free_port

pytestmark = pytest.mark.subprocess

HEAVY = ("torch", "transformers")

CHILD = """
import json, os, signal, sys, threading, time

import httpx

from textclf.cli import main

model, texts, output, port = sys.argv[1:5]
report = {}


def run(args):
    try:
        main(args)
    except SystemExit as exc:
        return exc.code
    return 0


report["batch"] = run(["batch", "--model-dir", model, "--input", texts, "--output", output, "--backend", "onnx-int8"])


def client():
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            try:
                report["ping"] = httpx.get(url + "/ping", timeout=5).status_code
            except httpx.TransportError:
                report["ping"] = None
            if report["ping"] == 200:
                break
            time.sleep(0.05)
        answer = httpx.post(url + "/invocations", json=["good food"], headers={"Accept": "application/json;verbose"})
        report["answer"] = [answer.status_code, answer.json()]
    finally:
        os.kill(os.getpid(), signal.SIGTERM)  # the server's graceful stop


threading.Thread(target=client, daemon=True).start()
report["serve"] = run(["serve", "--model-dir", model, "--backend", "onnx-int8", "--port", port, "--host", "127.0.0.1"])
report["imported"] = sorted(name for name in HEAVY if name in sys.modules)
print(json.dumps(report))
"""


def test_serve_and_batch_with_onnx_int8_never_import_torch_or_transformers(bert_int8, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("good food\nawful service\nthe phone was nice\n", encoding="utf-8")
    code = f"HEAVY = {HEAVY!r}\n" + CHILD
    args = [str(bert_int8), str(texts), str(tmp_path / "scored"), str(free_port())]
    child = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=240)
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout.splitlines()[-1])
    assert report["batch"] == 0 and report["serve"] == 0, child.stderr
    scored = [json.loads(line) for line in (tmp_path / "scored" / "texts.txt.out").read_text().splitlines()]
    assert [s["predicted_label"] for s in scored] == ["positive", "negative", "positive"]
    assert report["ping"] == 200
    status, answer = report["answer"]
    assert status == 200 and answer[0]["predicted_label"] == "positive"
    assert answer[0]["labels"] == ["negative", "positive"]
    assert report["imported"] == []
