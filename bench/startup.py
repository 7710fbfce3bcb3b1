"""Benchmark: start-up time and peak memory of `textclf serve` and `textclf batch` with --backend onnx-int8.

Two source trees are compared (--before and --after, each a `src` folder put first on PYTHONPATH),
run after run, A B A B, so that drift in the machine's speed cancels out:

* serve: `python -m textclf serve --backend onnx-int8 --model-dir M --port P`; the start-up time
  is from just before the process starts until GET /ping answers 200 (polled every 10 ms), the
  memory is the server's peak resident set (VmHWM of /proc/PID/status) read after it answered one
  POST /invocations; whether libtorch was mapped into it is read from /proc/PID/maps. Then SIGTERM.
* batch: `python -m textclf batch --backend onnx-int8` over --rows texts (the validation texts of
  examples/reviews, repeated) into a new folder; wall time of the whole command and its max RSS
  (os.wait4's ru_maxrss).

The table shows medians over --repeats runs and the ratio after/before. The model folder is one
`textclf train` made from the default model and exported to onnx-int8:

    python -m textclf train --data examples/reviews/train.csv --validation examples/reviews/validation.csv \\
        --output /tmp/startup-model --epochs 1
    python -m textclf export --model-dir /tmp/startup-model --format onnx-int8 \\
        --validation examples/reviews/validation.csv --force
    git worktree add ../before 338a935
    .venv/bin/python bench/startup.py --model-dir /tmp/startup-model --before ../before/src --after src
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
TEXTS = BENCH_DIR.parent / "examples" / "reviews" / "validation.csv"
SIDES = ("before", "after")


def cpu() -> str:
    try:
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
    except OSError:
        names = ["unknown CPU"]
    return f"{names[0] if names else 'unknown CPU'}, {len(os.sched_getaffinity(0))} cores for this process"


def env(src: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(src.resolve()), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, method: str, path: str, body: bytes | None = None) -> int | None:
    """The status of one request, or None when the server does not accept connections yet."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body, {"Content-Type": "application/json"} if body else {})
        return connection.getresponse().status
    except (ConnectionError, OSError):
        return None
    finally:
        connection.close()


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/{pid}/status")


def serve_once(python: str, src: Path, model_dir: Path, timeout: float) -> dict:
    port = free_port()
    args = [python, "-m", "textclf", "serve", "--backend", "onnx-int8", "--model-dir", str(model_dir)]
    started = time.perf_counter()
    server = subprocess.Popen(
        [*args, "--port", str(port), "--host", "127.0.0.1"],
        env=env(src),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while request(port, "GET", "/ping") != 200:
            if server.poll() is not None or time.perf_counter() - started > timeout:
                raise RuntimeError(f"the server of {src} did not answer /ping (exit code {server.poll()})")
            time.sleep(0.01)
        ready = time.perf_counter() - started
        if request(port, "POST", "/invocations", json.dumps(["good value, works well"]).encode()) != 200:
            raise RuntimeError(f"the server of {src} did not answer /invocations with 200")
        torch = "libtorch" in Path(f"/proc/{server.pid}/maps").read_text()
        return {"seconds": ready, "mib": status_kib(server.pid, "VmHWM") / 1024, "torch": torch}
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def batch_once(python: str, src: Path, model_dir: Path, texts: Path, work: Path) -> dict:
    output = Path(tempfile.mkdtemp(dir=work)) / "scored"
    args = [python, "-m", "textclf", "batch", "--backend", "onnx-int8", "--model-dir", str(model_dir)]
    started = time.perf_counter()
    job = subprocess.Popen(
        [*args, "--input", str(texts), "--output", str(output)],
        env=env(src),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(job.pid, 0)
    seconds = time.perf_counter() - started
    job.returncode = os.waitstatus_to_exitcode(status)
    if job.returncode != 0:
        raise RuntimeError(f"the batch job of {src} exited with {job.returncode}")
    return {"seconds": seconds, "mib": usage.ru_maxrss / 1024}


def write_texts(path: Path, rows: int) -> Path:
    with TEXTS.open(encoding="utf-8", newline="") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    path.write_text("".join(texts[i % len(texts)].replace("\n", " ") + "\n" for i in range(rows)), encoding="utf-8")
    return path


def median(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="a model folder with an onnx-int8 export")
    parser.add_argument("--before", type=Path, required=True, help="the src folder of the tree before")
    parser.add_argument("--after", type=Path, default=BENCH_DIR.parent / "src", help="the src folder after")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", type=int, default=200, help="texts the batch job scores")
    parser.add_argument("--timeout", type=float, default=300, help="seconds a server may take to answer /ping")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    args = parser.parse_args()
    trees = {"before": args.before, "after": args.after}
    runs: dict[str, dict[str, list[dict]]] = {kind: {side: [] for side in SIDES} for kind in ("serve", "batch")}
    with tempfile.TemporaryDirectory(prefix="textclf-startup-") as work:
        texts = write_texts(Path(work) / "texts.txt", args.rows)
        for repeat in range(args.repeats):
            for side in SIDES:  # A B A B
                runs["serve"][side].append(serve_once(args.python, trees[side], args.model_dir, args.timeout))
                runs["batch"][side].append(batch_once(args.python, trees[side], args.model_dir, texts, Path(work)))
                serve, batch = runs["serve"][side][-1], runs["batch"][side][-1]
                print(
                    f"run {repeat + 1}/{args.repeats} {side:6}: serve {serve['seconds']:.2f} s, {serve['mib']:.0f} MiB"
                    f"{' (libtorch loaded)' if serve['torch'] else ''}; "
                    f"batch {batch['seconds']:.2f} s, {batch['mib']:.0f} MiB",
                    flush=True,
                )
    rows = [
        ("serve: start-up to /ping 200 (s)", "serve", "seconds", "{:.2f}"),
        ("serve: peak resident memory (MiB)", "serve", "mib", "{:.0f}"),
        (f"batch, {args.rows} texts: wall time (s)", "batch", "seconds", "{:.2f}"),
        (f"batch, {args.rows} texts: max RSS (MiB)", "batch", "mib", "{:.0f}"),
    ]
    print(f"\nCPU: {cpu()}; --backend onnx-int8; medians of {args.repeats} runs, A B interleaved")
    print(f"{'':40} {'before':>8} {'after':>8} {'after/before':>13}")
    for label, kind, key, shape in rows:
        before, after = median(runs[kind]["before"], key), median(runs[kind]["after"], key)
        print(f"{label:40} {shape.format(before):>8} {shape.format(after):>8} {after / before:>13.2f}")
    loaded = {side: sum(run["torch"] for run in runs["serve"][side]) for side in SIDES}
    print(
        f"serve runs with libtorch loaded: before {loaded['before']}/{args.repeats}, "
        f"after {loaded['after']}/{args.repeats}"
    )
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu(), "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
