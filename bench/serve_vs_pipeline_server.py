"""Benchmark: `textclf serve` vs a naive per-request transformers-pipeline server, on SST-2 sentences.

Both servers load the same model folder: the embedded all-MiniLM-L6-v2 fine-tuned on SST-2 (1 epoch,
lr 5e-5, batch 32, the first --train-rows of train.tsv after a seeded shuffle), trained once into
--model-dir and reused afterwards. The baseline is bench/pipeline_server.py (FastAPI + uvicorn, one
worker, one pipeline call per request in FastAPI's threadpool, as the Hugging Face inference toolkit
does); textclf runs as `textclf serve --model-dir DIR --port P --max-batch-size 64
--max-batch-delay-ms 5` plus --textclf-args. Both are started once and kept running; the load
generator (in this process: asyncio over raw sockets, HTTP/1.1 keep-alive, one connection per
client) runs C clients in a closed loop, each sending the next dev.tsv sentence as soon as its
previous answer arrives, for --warmup seconds (not counted) then --duration seconds. req/s, p50
and p99 count the 200 answers that arrive inside the measured window; errors count the whole run
(non-200 answers, connection errors, requests still unanswered --grace seconds after the window).
Also shown: the server's CPU time (its process tree, from /proc) per answer, and the share of a
core the load generator itself used. For each repeat and each concurrency it runs baseline then
textclf (A B A B) to cancel machine-speed drift; only one server is under load at a time. The table
shows medians over repeats (errors: the sum). Before the load runs it checks that both servers
predict the same label for the first --check-rows dev sentences. Server output goes to
bench/out/serve_vs_pipeline_server.{baseline,textclf}.log.

    .venv/bin/python bench/serve_vs_pipeline_server.py                        # C = 1, 8, 32; 2 repeats
    .venv/bin/python bench/serve_vs_pipeline_server.py --only baseline        # the baseline alone
    .venv/bin/python bench/serve_vs_pipeline_server.py --textclf-args "--workers 2"
    .venv/bin/python bench/serve_vs_pipeline_server.py --concurrency 32 --repeats 3 --json bench/out/serve.json
    .venv/bin/python bench/serve_vs_pipeline_server.py --model-dir path/to/model --duration 10 --warmup 2
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse
import asyncio
import csv
import json
import random
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_vs_hf_trainer import read_tsv

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR.parent.parent / "shared" / "data" / "sst2"
OUT_DIR = BENCH_DIR / "out"
SEED = 0
TRAIN_SETTINGS = dict(epochs=1, learning_rate=5e-5, batch_size=32)
SIDES = ("baseline", "textclf")
# targets (textclf vs baseline)
HIGH_CONCURRENCY, TARGET_THROUGHPUT, TARGET_P99_FRACTION = 32, 5.0, 0.25
LOW_CONCURRENCY = 1


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model-dir",
        type=Path,
        default=OUT_DIR / "sst2-model",
        help="model folder both servers load; trained into here if it does not exist (default bench/out/sst2-model)",
    )
    p.add_argument(
        "--train-rows", type=int, default=8000, help="training rows when the model must be trained (default 8000)"
    )
    p.add_argument(
        "--concurrency",
        default="1,8,32",
        type=lambda s: [int(x) for x in s.split(",")],
        help="concurrent clients, comma-separated (default 1,8,32)",
    )
    p.add_argument("--repeats", type=int, default=2, help="A B rounds per concurrency (default 2)")
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds per run (default 20)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring, per run (default 3)")
    p.add_argument(
        "--grace",
        type=float,
        default=30.0,
        help="seconds to wait for in-flight requests after a run; later ones count as errors (default 30)",
    )
    p.add_argument(
        "--check-rows", type=int, default=50, help="dev sentences for the same-label check; 0 skips it (default 50)"
    )
    p.add_argument("--only", choices=SIDES, help="run one side only; no ratios or targets are printed")
    p.add_argument("--max-batch-size", type=int, default=64, help="passed to textclf serve (default 64)")
    p.add_argument("--max-batch-delay-ms", type=float, default=5, help="passed to textclf serve (default 5)")
    p.add_argument("--textclf-args", default="", help="extra arguments appended to the textclf serve command line")
    p.add_argument(
        "--textclf-command",
        help="the textclf program to run 'serve' with (default: the textclf beside this"
        " Python, i.e. .venv/bin/textclf); split like a shell line, e.g. '.venv/bin/python -m textclf'",
    )
    p.add_argument("--host", default="127.0.0.1", help="address the load generator connects to (default 127.0.0.1)")
    p.add_argument("--baseline-port", type=int, default=0, help="default: a free port")
    p.add_argument("--textclf-port", type=int, default=0, help="default: a free port")
    p.add_argument(
        "--startup-timeout", type=float, default=300.0, help="seconds to wait for GET /ping 200 (default 300)"
    )
    p.add_argument("--json", type=Path, help="write all raw figures to this file")
    return p.parse_args()


def textclf_command() -> list[str]:
    exe = Path(sys.executable).parent / "textclf"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "textclf"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the model ------------------------------------------------------------------------------------


def ensure_model(model_dir: Path, train_rows: int) -> dict:
    """Reuse model_dir if it holds a textclf model; else fine-tune the default model into it."""
    if (model_dir / "textclf.json").is_file() and (model_dir / "config.json").is_file():
        log(f"using the existing model folder {model_dir}")
        return {"trained": False}
    if model_dir.exists() and any(model_dir.iterdir()):
        sys.exit(f"{model_dir}: exists but is not a textclf model folder; pass another --model-dir")
    rows = read_tsv(DATA_DIR / "train.tsv")
    random.Random(SEED).shuffle(rows)
    rows = rows[:train_rows]
    with tempfile.TemporaryDirectory(prefix="textclf-serve-bench-") as tmp:
        train_csv = Path(tmp) / "train.csv"
        with train_csv.open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["sentence", "label"])
            writer.writerows(rows)
        cmd = [
            *textclf_command(),
            "train",
            "--data",
            str(train_csv),
            "--validation",
            str(DATA_DIR / "dev.tsv"),
            "--output",
            str(model_dir),
            "--text-column",
            "sentence",
            "--label-column",
            "label",
            "--epochs",
            str(TRAIN_SETTINGS["epochs"]),
            "--learning-rate",
            str(TRAIN_SETTINGS["learning_rate"]),
            "--batch-size",
            str(TRAIN_SETTINGS["batch_size"]),
            "--seed",
            str(SEED),
            "--no-progress",
        ]
        log(f"training the model ({len(rows):,} rows, ~2 min): {shlex.join(cmd)}")
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
    return {"trained": True, "train_rows": len(rows), "seconds": time.perf_counter() - start, "command": cmd}


# -- servers --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server subprocess in its own process group (so workers it spawns are stopped with it)."""

    def __init__(self, side: str, cmd: list[str], port: int, log_path: Path):
        self.side, self.cmd, self.port, self.log_path = side, cmd, port, log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("wb")
        log(f"starting {side} on port {port}: {shlex.join(cmd)} (log: {log_path})")
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        self.started = time.perf_counter()
        self.ready_seconds: float | None = None

    async def wait_ready(self, host: str, timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        last = "no answer"
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.side} server exited with code {self.proc.returncode} before it was ready;"
                    f" its output:\n{self.tail()}"
                )
            try:
                status, _, _ = await one_request(host, self.port, "GET", "/ping", timeout=5)
                last = f"HTTP {status}"
                if status == 200:
                    self.ready_seconds = time.perf_counter() - self.started
                    log(f"{self.side} ready after {self.ready_seconds:.1f} s")
                    return
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                last = type(exc).__name__
            await asyncio.sleep(0.5)
        raise RuntimeError(
            f"{self.side} server not ready after {timeout:.0f} s (last /ping: {last}); its output:\n{self.tail()}"
        )

    def tail(self, lines: int = 30) -> str:
        self._log.flush()
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cpu_seconds(self) -> float | None:
        """User + system CPU seconds of the server process and its descendants (Linux /proc)."""
        try:
            tick = os.sysconf("SC_CLK_TCK")
            children: dict[int, list[int]] = {}
            stats: dict[int, list[str]] = {}
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    raw = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                fields = raw[raw.rindex(")") + 2 :].split()
                stats[int(entry)] = fields
                children.setdefault(int(fields[1]), []).append(int(entry))
            total, todo = 0.0, [self.proc.pid]
            while todo:
                pid = todo.pop()
                if pid in stats:
                    total += (int(stats[pid][11]) + int(stats[pid][12])) / tick  # utime, stime
                todo.extend(children.get(pid, []))
            return total
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=5)
        self._log.close()


# -- HTTP/1.1 over raw sockets ----------------------------------------------------------------------


def build_request(
    host: str, port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if method == "POST" or body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, server keeps the connection open) of one response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, chunked, keep_alive = None, False, True
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif name == "connection" and "close" in value:
            keep_alive = False
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        return status, b"".join(parts), keep_alive
    if length is None:
        return status, await reader.read(), False  # body until close
    return status, await reader.readexactly(length), keep_alive


async def one_request(
    host: str,
    port: int,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, bytes, bool]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        writer.write(build_request(host, port, method, path, body, {**(headers or {}), "Connection": "close"}))
        return await asyncio.wait_for(read_response(reader), timeout)
    finally:
        writer.close()


class Connection:
    """One keep-alive connection, reopened after errors or a 'Connection: close'."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, request: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            sock = self.writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.writer.write(request)
            status, body, keep_alive = await read_response(self.reader)
        except BaseException:
            self.close()
            raise
        if not keep_alive:
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


# -- load generator -------------------------------------------------------------------------------


def post_requests(host: str, port: int, texts: list[str], accept: str = "application/json") -> list[bytes]:
    headers = {"Content-Type": "application/x-text; charset=utf-8", "Accept": accept}
    return [build_request(host, port, "POST", "/invocations", t.encode("utf-8"), headers) for t in texts]


async def run_load(
    host: str, port: int, requests: list[bytes], clients: int, warmup: float, duration: float, grace: float
) -> dict:
    """Closed loop: each client sends requests[i], requests[i + clients], ... back to back. Counts the
    requests that complete inside [start + warmup, start + warmup + duration]."""
    clock = time.perf_counter  # not loop.time(): uvloop's clock ticks in whole milliseconds
    t0 = clock()
    window_start, window_end = t0 + warmup, t0 + warmup + duration
    latencies: list[float] = []
    errors: dict[str, int] = {}  # over the whole run, warm-up and drain included
    answered = [0]  # 200 answers over the whole run

    def error(kind: str) -> None:
        errors[kind] = errors.get(kind, 0) + 1

    async def client(k: int) -> None:
        conn = Connection(host, port)
        i = k
        try:
            while clock() < window_end:
                request = requests[i % len(requests)]
                i += clients
                start = clock()
                try:
                    status, _ = await conn.send(request)
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                    error(type(exc).__name__)
                    await asyncio.sleep(0.05)
                    continue
                end = clock()
                if status != 200:
                    error(f"HTTP {status}")
                    continue
                answered[0] += 1
                if window_start <= end <= window_end:
                    latencies.append(end - start)
        finally:
            conn.close()

    cpu0 = time.process_time()
    tasks = [asyncio.create_task(client(k)) for k in range(clients)]
    _, pending = await asyncio.wait(tasks, timeout=warmup + duration + grace)
    for task in pending:  # still waiting for an answer long after the window: count as errors
        task.cancel()
        errors["unanswered"] = errors.get("unanswered", 0) + 1
    await asyncio.gather(*tasks, return_exceptions=True)
    client_cpu = time.process_time() - cpu0
    latencies.sort()
    n = len(latencies)

    def pct(q: float) -> float | None:
        return 1000 * latencies[min(n - 1, int(q * n))] if n else None

    return {
        "clients": clients,
        "requests": n,
        "answered_in_run": answered[0],
        "req_per_s": n / duration,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": 1000 * latencies[-1] if n else None,
        "mean_ms": 1000 * sum(latencies) / n if n else None,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "client_cpu_seconds": client_cpu,
        "client_cpu_share": client_cpu / (clock() - t0),
    }


# -- same-label check -----------------------------------------------------------------------------


def baseline_label(body: bytes) -> tuple[str, dict[str, float]]:
    """Pipeline output with top_k=None: [{"label", "score"}, ...] (maybe nested once)."""
    out = json.loads(body)
    if out and isinstance(out[0], list):
        out = out[0]
    scores = {str(d["label"]): float(d["score"]) for d in out}
    return max(scores, key=scores.get), scores


def textclf_label(body: bytes) -> tuple[str, dict[str, float]]:
    """textclf with Accept application/json;verbose: {"probabilities", "labels", "predicted_label"}."""
    out = json.loads(body)
    if isinstance(out, list):
        out = out[0]
    scores = {str(label): float(p) for label, p in zip(out.get("labels", []), out.get("probabilities", []))}
    return str(out["predicted_label"]), scores


async def label_check(host: str, servers: dict[str, Server], rows: list[tuple[str, int]]) -> dict:
    parsers = {"baseline": (baseline_label, "application/json"), "textclf": (textclf_label, "application/json;verbose")}
    predictions: dict[str, list] = {}
    for side, server in servers.items():
        parse, accept = parsers[side]
        conn = Connection(host, server.port)
        predictions[side] = []
        try:
            for request in post_requests(host, server.port, [t for t, _ in rows], accept):
                try:
                    status, body = await asyncio.wait_for(conn.send(request), 60)
                    predictions[side].append(parse(body) if status == 200 else (f"HTTP {status}", {}))
                except Exception as exc:
                    predictions[side].append((f"{type(exc).__name__}: {exc}"[:200], {}))
        finally:
            conn.close()
    result: dict = {"rows": len(rows)}
    for side, preds in predictions.items():
        result[f"{side}_gold_accuracy"] = sum(label == str(gold) for (label, _), (_, gold) in zip(preds, rows)) / len(
            rows
        )
        result[f"{side}_first"] = preds[0][0] if preds else None
    if len(predictions) == 2:
        pairs = list(zip(predictions["baseline"], predictions["textclf"]))
        result["agree"] = sum(a[0] == b[0] for a, b in pairs)
        diffs = [abs(a[1][label] - b[1][label]) for a, b in pairs for label in a[1] if label in b[1]]
        result["max_probability_difference"] = max(diffs) if diffs else None
        result["disagreements"] = [
            {"text": text, "baseline": a[0], "textclf": b[0]} for (text, _), (a, b) in zip(rows, pairs) if a[0] != b[0]
        ][:5]
    return result


# -- driver and report ----------------------------------------------------------------------------


def summarise(runs: list[dict]) -> dict:
    def med(key: str) -> float | None:
        values = [r[key] for r in runs if r[key] is not None]
        return statistics.median(values) if values else None

    return {
        "req_per_s": med("req_per_s"),
        "p50_ms": med("p50_ms"),
        "p99_ms": med("p99_ms"),
        "errors": sum(r["errors"] for r in runs),
        "server_cpu_ms_per_request": med("server_cpu_ms_per_request"),
        "client_cpu_share": med("client_cpu_share"),
        "runs": runs,
    }


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def targets(summary: dict[str, dict[int, dict]], check: dict | None) -> list[tuple[str, bool | None, str]]:
    base, tc = summary["baseline"], summary["textclf"]
    out: list[tuple[str, bool | None, str]] = []
    c = HIGH_CONCURRENCY
    if c in base and c in tc:
        b, t = base[c], tc[c]
        ratio = t["req_per_s"] / b["req_per_s"] if b["req_per_s"] else None
        out.append(
            (
                f"C={c}: textclf req/s >= {TARGET_THROUGHPUT:g}x baseline",
                ratio is not None and ratio >= TARGET_THROUGHPUT,
                f"{fmt(t['req_per_s'], '.1f')} vs {fmt(b['req_per_s'], '.1f')} req/s = {fmt(ratio, '.2f')}x",
            )
        )
        ok = None not in (t["p99_ms"], b["p99_ms"]) and t["p99_ms"] <= b["p99_ms"] * TARGET_P99_FRACTION
        out.append(
            (
                f"C={c}: textclf p99 <= baseline p99 / {1 / TARGET_P99_FRACTION:g}",
                ok,
                f"{fmt(t['p99_ms'], '.1f')} vs {fmt(b['p99_ms'], '.1f')} ms",
            )
        )
        out.append((f"C={c}: textclf zero errors", t["errors"] == 0, f"{t['errors']} errors (baseline {b['errors']})"))
    else:
        out.append((f"C={c} targets", None, f"not run (--concurrency lacks {c})"))
    c = LOW_CONCURRENCY
    if c in base and c in tc:
        b, t = base[c], tc[c]
        ok = None not in (t["p50_ms"], b["p50_ms"]) and t["p50_ms"] <= b["p50_ms"]
        out.append(
            (f"C={c}: textclf p50 <= baseline p50", ok, f"{fmt(t['p50_ms'], '.1f')} vs {fmt(b['p50_ms'], '.1f')} ms")
        )
    else:
        out.append((f"C={c} target", None, f"not run (--concurrency lacks {c})"))
    if check is not None:
        ok = check.get("agree") == check["rows"]
        out.append(("same predicted label on the checked dev sentences", ok, f"{check.get('agree')}/{check['rows']}"))
    return out


def print_report(
    summary: dict[str, dict[int, dict]], args: argparse.Namespace, check: dict | None, ready: dict[str, float | None]
) -> list:
    print(
        f"\nSST-2 dev sentences, closed loop, {args.warmup:g} s warm-up + {args.duration:g} s measured per run,"
        f" {args.repeats} repeat(s) per side (A B interleaved), {os.cpu_count()} CPUs: medians over repeats\n"
    )
    print(
        f"{'C':>4}  {'side':<10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'srv CPU ms/req':>16}{'client CPU':>12}"
    )
    concurrencies = sorted({c for side in summary.values() for c in side})
    for c in concurrencies:
        for side, by_c in summary.items():
            if c not in by_c:
                continue
            s = by_c[c]
            share = None if s["client_cpu_share"] is None else 100 * s["client_cpu_share"]
            print(
                f"{c:>4}  {side:<10}{fmt(s['req_per_s'], '.1f'):>9}"
                f"{fmt(s['p50_ms'], '.1f'):>9}{fmt(s['p99_ms'], '.1f'):>9}"
                f"{s['errors']:>8}{fmt(s['server_cpu_ms_per_request'], '.1f'):>16}{fmt(share, '.0f') + '%':>12}"
            )
    for side, by_c in summary.items():
        for c, s in by_c.items():
            per_run = "; ".join(
                f"{fmt(r['req_per_s'], '.1f')} req/s p50 {fmt(r['p50_ms'], '.1f')} p99 {fmt(r['p99_ms'], '.1f')}"
                + (f" errors {r['error_kinds']}" if r["errors"] else "")
                for r in s["runs"]
            )
            print(f"  {side} C={c} per repeat: {per_run}")
    print("startup to /ping 200: " + ", ".join(f"{side} {fmt(s, '.1f')} s" for side, s in ready.items()))
    if check is not None:
        line = ", ".join(f"{side} {100 * check[side + '_gold_accuracy']:.0f}%" for side in summary)
        print(f"label check on {check['rows']} dev sentences: gold accuracy {line}", end="")
        if "agree" in check:
            print(
                f"; same label {check['agree']}/{check['rows']}, "
                f"max |p diff| {fmt(check['max_probability_difference'], '.2e')}",
                end="",
            )
            for d in check["disagreements"]:
                print(f"\n  differs: baseline {d['baseline']!r} textclf {d['textclf']!r}: {d['text'][:80]}", end="")
        print()
    if len(summary) < 2:
        return []
    print(f"\n{'C':>4}  {'req/s textclf/baseline':>24}{'p50 textclf/baseline':>22}{'p99 textclf/baseline':>22}")
    for c in concurrencies:
        b, t = summary["baseline"].get(c), summary["textclf"].get(c)
        if not b or not t:
            continue

        def ratio(key: str, t: dict = t, b: dict = b) -> float | None:
            return t[key] / b[key] if t[key] is not None and b[key] else None

        print(
            f"{c:>4}  {fmt(ratio('req_per_s'), '.2f') + 'x':>24}"
            f"{fmt(ratio('p50_ms'), '.3f'):>22}{fmt(ratio('p99_ms'), '.3f'):>22}"
        )
    results = targets(summary, check)
    print()
    for name, ok, detail in results:
        print(f"{'PASS' if ok else 'n/a ' if ok is None else 'MISS'}  {name}: {detail}")
    return results


async def bench(args: argparse.Namespace, servers: dict[str, Server], dev_rows: list[tuple[str, int]]) -> tuple:
    await asyncio.gather(*(s.wait_ready(args.host, args.startup_timeout) for s in servers.values()))
    check = None
    if args.check_rows:
        check = await label_check(args.host, servers, dev_rows[: args.check_rows])
        log(f"label check: {json.dumps({k: v for k, v in check.items() if k != 'disagreements'})}")
    texts = [t for t, _ in dev_rows]
    requests = {side: post_requests(args.host, s.port, texts) for side, s in servers.items()}
    runs: dict[str, dict[int, list[dict]]] = {side: {c: [] for c in args.concurrency} for side in servers}
    for i in range(1, args.repeats + 1):
        for c in args.concurrency:
            for side, server in servers.items():
                if server.proc.poll() is not None:
                    raise RuntimeError(
                        f"{side} server died (exit code {server.proc.returncode}); its output:\n{server.tail()}"
                    )
                cpu0 = server.cpu_seconds()
                r = await run_load(args.host, server.port, requests[side], c, args.warmup, args.duration, args.grace)
                cpu1 = server.cpu_seconds()
                # server CPU over the whole run (warm-up and drain included) per 200 answer in it
                r["server_cpu_seconds"] = None if None in (cpu0, cpu1) else cpu1 - cpu0
                r["server_cpu_ms_per_request"] = (
                    1000 * r["server_cpu_seconds"] / r["answered_in_run"]
                    if r["server_cpu_seconds"] is not None and r["answered_in_run"]
                    else None
                )
                r["repeat"] = i
                runs[side][c].append(r)
                log(
                    f"[{i}/{args.repeats}] C={c} {side}: {r['req_per_s']:.1f} req/s, p50 {fmt(r['p50_ms'], '.1f')} ms,"
                    f" p99 {fmt(r['p99_ms'], '.1f')} ms, {r['errors']} errors"
                    + (f" {r['error_kinds']}" if r["errors"] else "")
                    + f", client CPU {100 * r['client_cpu_share']:.0f}%"
                )
    return runs, check


def run_async(coro):
    """uvloop (uvicorn[standard] brings it) keeps the load generator's CPU low; asyncio otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main() -> None:
    args = parse_args()
    if not (DATA_DIR / "dev.tsv").is_file():
        sys.exit(f"{DATA_DIR / 'dev.tsv'}: not found (the benchmark expects ../shared/data/sst2 beside the repo)")
    model_dir = args.model_dir.resolve()
    training = ensure_model(model_dir, args.train_rows)
    dev_rows = read_tsv(DATA_DIR / "dev.tsv")
    sides = [s for s in SIDES if args.only in (None, s)]
    textclf = shlex.split(args.textclf_command) if args.textclf_command else textclf_command()
    commands = {
        "baseline": [sys.executable, str(BENCH_DIR / "pipeline_server.py"), "--model-dir", str(model_dir)],
        "textclf": [
            *textclf,
            "serve",
            "--model-dir",
            str(model_dir),
            "--max-batch-size",
            str(args.max_batch_size),
            "--max-batch-delay-ms",
            f"{args.max_batch_delay_ms:g}",
            *shlex.split(args.textclf_args),
        ],
    }
    fixed_ports = {"baseline": args.baseline_port, "textclf": args.textclf_port}
    servers: dict[str, Server] = {}

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    try:
        for side in sides:
            port = fixed_ports[side] or free_port()
            servers[side] = Server(
                side, [*commands[side], "--port", str(port)], port, OUT_DIR / f"serve_vs_pipeline_server.{side}.log"
            )
        runs, check = run_async(bench(args, servers, dev_rows))
        ready = {side: s.ready_seconds for side, s in servers.items()}
    except KeyboardInterrupt:
        log("interrupted; stopping the servers")
        sys.exit(130)
    except RuntimeError as exc:  # a server that died or never became ready
        log(f"error: {exc}")
        sys.exit(1)
    finally:
        for server in servers.values():
            server.stop()
    summary = {side: {c: summarise(rs) for c, rs in runs[side].items()} for side in servers}
    results = print_report(summary, args, check, ready)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "model_dir": str(model_dir),
            "training": training,
            "concurrency": args.concurrency,
            "repeats": args.repeats,
            "duration": args.duration,
            "warmup": args.warmup,
            "commands": {s: servers[s].cmd for s in servers},
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
        }
        data = {
            "meta": meta,
            "label_check": check,
            "ready_seconds": ready,
            **{side: {str(c): s for c, s in by_c.items()} for side, by_c in summary.items()},
            "targets": [{"target": n, "pass": ok, "detail": d} for n, ok, d in results],
        }
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
