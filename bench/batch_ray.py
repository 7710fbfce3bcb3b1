"""Benchmark: `textclf batch --engine ray` against the local engine on the SST-2 train sentences.

Both engines score the same file (the 67,349 SST-2 train sentences, one per line, or the first
--rows of them) with the int8 ONNX export of one model folder, --workers 2 (local: two spawned
processes; Ray: a pool of two actors on a Ray instance the job starts on this machine, or on
--ray-address), the default chunk size. The runs alternate, A B then B A, for --rounds rounds;
each run writes into a new folder through the `run_batch` API with the progress bar off, its
model loads (once per worker) inside the timed run, and its output must equal the other
engine's byte for byte. Figures are medians over rounds:

* total: wall time of the whole job, start-up included (Ray's: `ray.init`, the actors, their
  model loads, `ray.shutdown`);
* fixed cost: the same job on a one-sentence file, run next to each full run: everything but
  the scoring (Ray's `ray.init` alone is also reported, up to the job's "scoring on Ray" line);
* steady state: sentences / (total - fixed cost).

The target (the issue): Ray's total at most 15% over the local engine's, start-up included.
The model: --model-dir (a textclf folder; exported to onnx-int8 here when it has no such
export), or by default bench/out/batch-ray-model, trained once on the first 2,000 train
sentences, head only, 1 epoch (a speed benchmark: its accuracy does not matter).

    .venv/bin/python bench/batch_ray.py                                  # full size, 3 rounds
    .venv/bin/python bench/batch_ray.py --rows 2000 --rounds 2           # a quick check
    .venv/bin/python bench/batch_ray.py --ray-address 10.0.0.5:6379 --workers 16
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_vs_hf_trainer import read_tsv, write_tsv

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR.parent.parent / "shared" / "data" / "sst2"
OUT_DIR = BENCH_DIR / "out"
ENGINES = ("local", "ray")
TARGET_OVERHEAD = 0.15


def ensure_model(model_dir: Path) -> None:
    """A model folder with an onnx-int8 export: trained here (head only, 2,000 sentences) when missing."""
    import textclf
    from textclf.artifact import ModelFolder
    from textclf.export import export_model

    if not (model_dir / "textclf.json").is_file():
        print(f"training a head-only model on 2,000 SST-2 train sentences into {model_dir} ...", flush=True)
        with tempfile.TemporaryDirectory(prefix="batch-ray-train-") as tmp:
            subset = write_tsv(read_tsv(DATA_DIR / "train.tsv")[:2000], Path(tmp) / "train.tsv")
            textclf.train(subset, model_dir, epochs=1, train_only_top_layer=True, progress=False)
    if "onnx-int8" not in ModelFolder.read(model_dir).exports:
        print(f"exporting {model_dir} to onnx-int8 (verified on dev.tsv) ...", flush=True)
        print(export_model(model_dir, "onnx-int8", validation=DATA_DIR / "dev.tsv").render(), flush=True)


def run(model_dir: Path, source: Path, out: Path, engine: str, args) -> dict:
    """One job into a new folder: its seconds, and for Ray the seconds until its "scoring on Ray" line."""
    from textclf.batch import BatchOptions, run_batch

    shutil.rmtree(out, ignore_errors=True)
    options = BatchOptions(
        format="text",
        backend="onnx-int8",
        workers=args.workers,
        chunk_size=args.chunk_size,
        engine=engine,
        ray_address=args.ray_address if engine == "ray" else None,
    )
    marks: dict[str, float] = {}

    def log(message: str) -> None:
        if "scoring on Ray" in message:
            marks["ray_init"] = time.perf_counter() - start

    start, cpu = time.perf_counter(), time.process_time()
    result = run_batch(model_dir, source, out, options, progress=False, log=log)
    seconds = time.perf_counter() - start
    if result.errors:
        raise SystemExit(f"{engine}: {result.errors} records could not be read")
    # this process's CPU time, every thread: the driver's share (planning, reading back, writing); the local
    # engine's workers and Ray's actors are other processes
    return {"seconds": seconds, "driver_cpu_s": time.process_time() - cpu, **marks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=OUT_DIR / "batch-ray-model")
    parser.add_argument("--rows", type=int, default=None, help="score only the first N train sentences")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=2000, help="records per chunk (textclf's default)")
    parser.add_argument("--ray-address", default=None, help="a running Ray cluster [default: one per job]")
    parser.add_argument("--json", type=Path, default=OUT_DIR / "batch_ray.json")
    args = parser.parse_args()

    import ray

    from textclf.models import cpu_flags, int8_dot_flag, native_bf16_flag

    flags = cpu_flags()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(
        f"CPU: {cpu}; {os.cpu_count()} cores; int8 dot products: {int8_dot_flag(flags)}; "
        f"native bf16: {native_bf16_flag(flags)}; Ray {ray.__version__}",
        flush=True,
    )
    ensure_model(args.model_dir)
    texts = [text for text, _ in read_tsv(DATA_DIR / "train.tsv")]
    texts = texts[: args.rows] if args.rows else texts
    runs: dict[str, list[dict]] = {engine: [] for engine in ENGINES}
    fixed: dict[str, list[dict]] = {engine: [] for engine in ENGINES}
    identical = True
    with tempfile.TemporaryDirectory(prefix="textclf-batch-ray-") as tmp:
        work = Path(tmp)
        source, one = work / "sst2-train.txt", work / "one.txt"
        source.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
        one.write_text(texts[0] + "\n", encoding="utf-8")
        for r in range(args.rounds):
            order = ENGINES if r % 2 == 0 else ENGINES[::-1]
            for engine in order:
                runs[engine].append(run(args.model_dir, source, work / engine, engine, args))
                fixed[engine].append(run(args.model_dir, one, work / f"{engine}-one", engine, args))
                took = runs[engine][-1]["seconds"]
                print(
                    f"round {r + 1}/{args.rounds}  {engine:<5} {took:7.2f} s  {len(texts) / took:8.1f} sentences/s"
                    f"  (one sentence: {fixed[engine][-1]['seconds']:.2f} s)",
                    flush=True,
                )
            outputs = [(work / engine / f"{source.name}.out").read_bytes() for engine in ENGINES]
            identical &= outputs[0] == outputs[1]

    def median(engine: str, key: str, of=runs) -> float:
        return statistics.median(x[key] for x in of[engine])

    total = {e: median(e, "seconds") for e in ENGINES}
    cost = {e: median(e, "seconds", fixed) for e in ENGINES}
    steady = {e: len(texts) / max(total[e] - cost[e], 1e-9) for e in ENGINES}
    ray_init = median("ray", "ray_init", fixed)
    overhead = statistics.median(b["seconds"] / a["seconds"] - 1 for a, b in zip(runs["local"], runs["ray"]))
    print(
        f"\n{len(texts):,} SST-2 train sentences, onnx-int8, {args.workers} workers, chunks of {args.chunk_size}, "
        f"{args.rounds} rounds; medians"
    )
    print(f"{'engine':<7} {'total s':>8} {'sentences/s':>12} {'fixed s':>8} {'steady sentences/s':>19}")
    for e in ENGINES:
        print(f"{e:<7} {total[e]:8.2f} {len(texts) / total[e]:12.1f} {cost[e]:8.2f} {steady[e]:19.1f}")
    print(
        f"Ray's start-up: ray.init {ray_init:.2f} s, all fixed costs {cost['ray']:.2f} s "
        f"(local engine: {cost['local']:.2f} s); steady state ray/local {steady['ray'] / steady['local']:.3f}"
    )
    driver = {e: median(e, "driver_cpu_s") - median(e, "driver_cpu_s", fixed) for e in ENGINES}
    for e in ENGINES:
        per_record = driver[e] / len(texts)
        print(
            f"{e} driver: {per_record * 1e6:.1f} us CPU a record (planning, results, writing): "
            f"one driver core keeps up with {1 / max(per_record, 1e-12):,.0f} records/s"
        )
    print(f"outputs identical: {'yes' if identical else 'NO'}")
    verdict = "met" if overhead <= TARGET_OVERHEAD and identical else "MISSED"
    print(f"Ray's total at most {TARGET_OVERHEAD:.0%} over the local engine's: {verdict} ({overhead:+.1%}, ray/local)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "cpu": cpu,
                "int8_dot": int8_dot_flag(flags),
                "bf16": native_bf16_flag(flags),
                "ray": ray.__version__,
                "sentences": len(texts),
                "workers": args.workers,
                "rounds": args.rounds,
                "runs": runs,
                "fixed": fixed,
                "total_s": total,
                "fixed_s": cost,
                "steady_rate": steady,
                "ray_init_s": ray_init,
                "driver_cpu_s_per_record": {e: driver[e] / len(texts) for e in ENGINES},
                "overhead": overhead,
                "identical": identical,
                "command": " ".join(sys.argv),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
