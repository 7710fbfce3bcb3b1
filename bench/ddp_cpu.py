"""Benchmark: training in 1 process against 2 processes (DistributedDataParallel over gloo) on this machine's CPU.

Both sides fine-tune the embedded all-MiniLM-L6-v2 for 1 epoch on the same --rows of SST-2 train (a seeded
shuffle of ../shared/data/sst2/train.tsv), lr 5e-5, max length 128, seed 0, and score SST-2 dev (872 rows),
with the same global batch of 32: one process of batch 32 (every core to its threads), or `textclf train
--nproc 2` with batch 16 in each (each process gets half of the cores). Each repeat runs 1 process, then 2
(A B A B: this machine's speed drifts), each as its own `python -m textclf train` command. The table shows
the median training time (the epoch's train_seconds: no model loading, no validation) and the median wall
time of the whole command, and each run's train loss and dev accuracy: equal data order and global batch,
but not equal numbers, since each process draws its own dropout masks and sums in its own order.

    .venv/bin/python bench/ddp_cpu.py                      # 4,000 rows, 2 repeats
    .venv/bin/python bench/ddp_cpu.py --rows 1000 --repeats 1 --json bench/out/ddp.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_vs_hf_trainer import DATA_DIR, SETTINGS, read_tsv, write_tsv

REPO = Path(__file__).resolve().parents[1]
GLOBAL_BATCH = 32


def run(train: Path, dev: Path, out: Path, processes: int) -> dict:
    settings = {**SETTINGS, "batch_size": GLOBAL_BATCH // processes, "seed": 0}
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in settings.items()]
    command = [
        sys.executable,
        "-m",
        "textclf",
        "train",
        "--data",
        str(train),
        "--validation",
        str(dev),
        "--output",
        str(out),
        "--overwrite",
        "--no-progress",
        "--keep-checkpoints=0",
        *flags,
        *(["--nproc", str(processes)] if processes > 1 else []),
    ]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])),
    }
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{processes} process(es) failed:\n{done.stderr}")
    epoch = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "epoch" in r][-1]
    return {
        "processes": processes,
        "train_seconds": epoch["train_seconds"],
        "wall_seconds": wall,
        "train_loss": epoch["train_loss"],
        "dev_loss": epoch["val_loss"],
        "dev_accuracy": epoch["val_accuracy"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=4000, help="training rows after a seeded shuffle (default 4000)")
    p.add_argument("--repeats", type=int, default=2, help="A B rounds (default 2)")
    p.add_argument("--json", type=Path, help="write the raw figures here")
    args = p.parse_args()
    rows = read_tsv(DATA_DIR / "train.tsv")
    random.Random(0).shuffle(rows)
    rows = rows[: args.rows]
    runs: dict[int, list[dict]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="textclf-ddp-") as tmp:
        work = Path(tmp)
        train, dev = write_tsv(rows, work / "train.tsv"), write_tsv(read_tsv(DATA_DIR / "dev.tsv"), work / "dev.tsv")
        for i in range(1, args.repeats + 1):
            for processes in (1, 2):
                r = run(train, dev, work / f"model-{processes}", processes)
                runs[processes].append(r)
                print(
                    f"[{i}/{args.repeats}] {processes} process(es): train {r['train_seconds']:.1f} s, "
                    f"wall {r['wall_seconds']:.1f} s, "
                    f"train loss {r['train_loss']:.4f}, dev accuracy {r['dev_accuracy']:.4f}",
                    file=sys.stderr,
                    flush=True,
                )
    print(
        f"\nSST-2, {len(rows):,} training rows, 872 dev rows, 1 epoch, global batch {GLOBAL_BATCH}, "
        "lr 5e-5, seed 0, "
        f"{os.cpu_count()} CPUs, {args.repeats} repeat(s): medians\n"
    )
    print(
        f"{'processes':<11}{'batch/proc':>11}{'train s':>9}{'samples/s':>11}{'wall s':>8}"
        "   train loss / dev accuracy per run"
    )
    medians = {}
    for processes, rs in runs.items():
        train_s = statistics.median(r["train_seconds"] for r in rs)
        wall_s = statistics.median(r["wall_seconds"] for r in rs)
        medians[processes] = (train_s, wall_s)
        per_run = ", ".join(f"{r['train_loss']:.4f} / {r['dev_accuracy']:.4f}" for r in rs)
        print(
            f"{processes:<11}{GLOBAL_BATCH // processes:>11}{train_s:>9.1f}"
            f"{len(rows) / train_s:>11.1f}{wall_s:>8.1f}   {per_run}"
        )
    (t1, w1), (t2, w2) = medians[1], medians[2]
    print(f"\nspeed-up of 2 processes: {t1 / t2:.2f}x in training time, {w1 / w2:.2f}x in wall time")
    for name in ("train_loss", "dev_loss", "dev_accuracy"):
        gaps = [abs(a[name] - b[name]) for a, b in zip(runs[1], runs[2])]
        print(f"{name}: largest |1 process - 2 processes| over the repeats {max(gaps):.4f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"rows": len(rows), "settings": SETTINGS, "global_batch": GLOBAL_BATCH, "runs": runs}, indent=2)
            + "\n"
        )


if __name__ == "__main__":
    main()
