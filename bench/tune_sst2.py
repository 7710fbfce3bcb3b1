"""Benchmark: `textclf tune` against the default hyperparameters on an SST-2 subset.

The embedded all-MiniLM-L6-v2, --rows SST-2 train rows (4,000; a seeded shuffle, as in the other
benchmarks). Every run holds out the same seeded, stratified 20% of them for validation
(validation_split_ratio 0.2), which is what the study selects on; dev.tsv is touched only to
score the finished models, so the best trial's dev accuracy is not selected on dev.

1. baseline: `textclf.train` with the default hyperparameters (3 epochs, lr 2e-5, batch 32);
2. a study of --trials (8) TPE trials over learning_rate (1e-5..1e-4, log), batch_size
   {16, 32, 64} and epochs (1..--max-epochs), objective val_accuracy, with the median pruner;
3. the same study without pruning (same sampler seed).

Prints a table (dev accuracy of each best model, wall time, trials complete/pruned), the
accuracy gain over the defaults and the wall-time ratio without/with pruning; writes JSON to
bench/out/tune_sst2.json (or --json).

    .venv/bin/python bench/tune_sst2.py   # roughly 20-30 min on 2 idle CPU cores (estimate)
    .venv/bin/python bench/tune_sst2.py --rows 200 --dev-rows 100 --trials 2 --max-epochs 1   # a smoke run
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import textclf
from train_vs_hf_trainer import DATA_DIR, read_tsv, write_tsv

OUT = Path(__file__).resolve().parent / "out" / "tune_sst2.json"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=4000, help="training rows after a seeded shuffle (default 4000)")
    p.add_argument("--dev-rows", type=int, help="score on the first N dev rows only (smoke runs; default all 872)")
    p.add_argument("--trials", type=int, default=8, help="trials per study (default 8)")
    p.add_argument("--max-epochs", type=int, default=3, help="upper bound of the epochs range (default 3)")
    p.add_argument("--json", type=Path, default=OUT, help=f"write the raw figures here (default {OUT})")
    return p.parse_args()


def dev_accuracy(model_dir: Path, dev: Path) -> float:
    return textclf.evaluate(model_dir, dev).metrics["accuracy"]


def study(train: Path, dev: Path, out: Path, trials: int, max_epochs: int, pruner: str) -> dict:
    space = {
        "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-4, "log": True},
        "batch_size": {"type": "categorical", "choices": [16, 32, 64]},
        "epochs": {"type": "int", "low": 1, "high": max_epochs},
    }
    start = time.perf_counter()
    result = textclf.tune(
        train,
        out,
        search_space=space,
        max_trials=trials,
        early_stopping_trials=pruner,
        seed=0,
        log=lambda line: print(f"  [{pruner}] {line}", file=sys.stderr, flush=True),
    )
    wall = time.perf_counter() - start
    states = [r["state"] for r in result.trials]
    return {
        "early_stopping_trials": pruner,
        "wall_seconds": wall,
        "best_trial": result.best_trial,
        "best_params": result.best_params,
        "best_val_accuracy": result.best_value,
        "dev_accuracy": dev_accuracy(result.best_path, dev),
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "trials": result.trials,
    }


def main() -> None:
    args = parse_args()
    rows = read_tsv(DATA_DIR / "train.tsv")
    random.Random(0).shuffle(rows)
    dev_rows = read_tsv(DATA_DIR / "dev.tsv")[: args.dev_rows]
    with tempfile.TemporaryDirectory(prefix="textclf-tune-bench-") as tmp:
        work = Path(tmp)
        train, dev = write_tsv(rows[: args.rows], work / "train.tsv"), write_tsv(dev_rows, work / "dev.tsv")
        start = time.perf_counter()
        base = textclf.train(
            train, work / "baseline", progress=False, log=lambda line: print(f"  [defaults] {line}", file=sys.stderr)
        )
        baseline = {
            "wall_seconds": time.perf_counter() - start,
            "val_accuracy": base.best["val_accuracy"],
            "dev_accuracy": dev_accuracy(base.output, dev),
            "hyperparameters": {  # the values textclf chose (auto), as its textclf.json records them
                name: getattr(base.hyperparameters, name) for name in ("epochs", "learning_rate", "batch_size")
            },
        }
        pruned = study(train, dev, work / "tuned-median", args.trials, args.max_epochs, "median")
        unpruned = study(train, dev, work / "tuned-off", args.trials, args.max_epochs, "off")

    print(
        f"\nSST-2, {args.rows} rows (80% train / 20% validation), dev {len(dev_rows)} rows, "
        f"{args.trials} trials per study"
    )
    print(f"{'run':<22} {'dev acc':>8} {'val acc':>8} {'wall s':>8} {'complete':>9} {'pruned':>7}  params")
    print(
        f"{'default hyperparams':<22} {baseline['dev_accuracy']:>8.4f} {baseline['val_accuracy']:>8.4f} "
        f"{baseline['wall_seconds']:>8.0f} {'':>9} {'':>7}  {baseline['hyperparameters']}"
    )
    for r in (pruned, unpruned):
        name = f"tune, pruning {r['early_stopping_trials']}"
        print(
            f"{name:<22} {r['dev_accuracy']:>8.4f} {r['best_val_accuracy']:>8.4f} {r['wall_seconds']:>8.0f} "
            f"{r['complete']:>9} {r['pruned']:>7}  {r['best_params']}"
        )
    gain = pruned["dev_accuracy"] - baseline["dev_accuracy"]
    ratio = unpruned["wall_seconds"] / pruned["wall_seconds"]
    print(f"\nbest trial (median pruning) vs defaults: {gain * 100:+.2f} points of dev accuracy")
    print(f"wall time without / with pruning: {ratio:.2f}x")
    figures = {
        "rows": args.rows,
        "dev_rows": len(dev_rows),
        "trials": args.trials,
        "max_epochs": args.max_epochs,
        "baseline": baseline,
        "tune_median": pruned,
        "tune_off": unpruned,
        "dev_accuracy_gain": gain,
        "wall_ratio_off_over_median": ratio,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
