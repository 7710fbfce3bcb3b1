"""Benchmark: training with and without loss-based sifting, side by side on SST-2.

The embedded all-MiniLM-L6-v2, the full SST-2 train set (67,349 rows), 1 epoch, batch 32,
lr 5e-5, seed 0 (--seed); one run without sifting, one per --betas value (default 0.5, 1, 3), and the
run without sifting again, in that order, in one process: the machine's speed drifts, so the
baseline time is the mean of the runs that bracket the sifted ones (both are printed; their
accuracy is identical, training being deterministic). Reports training seconds (scoring
included), the share of them spent scoring, the fraction sifted and SST-2 dev accuracy, and each
run's time saving against the baseline. Target: at least 30% less time within 0.5 point of dev
accuracy.

    .venv/bin/python bench/sifting.py                        # full train set, betas 0.5 1 3
    .venv/bin/python bench/sifting.py --rows 8000 --betas 1  # a quick look
    .venv/bin/python bench/sifting.py --betas 1 --seed 1 --baseline-once  # another seed, A B
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import textclf
from train_vs_hf_trainer import DATA_DIR, SETTINGS, read_tsv, write_tsv

TARGET_SAVING, TARGET_ACCURACY_DROP = 0.30, 0.005


def run(train: Path, dev: Path, out: Path, beta: float | None, seed: int, lr_scaling: str, floor: float) -> dict:
    extra = (
        {"sifting": True, "sifting_beta": beta, "sifting_lr_scaling": lr_scaling, "sifting_min_keep_probability": floor}
        if beta is not None
        else {}
    )
    result = textclf.train(train, out, validation=dev, overwrite=True, progress=False, seed=seed, **SETTINGS, **extra)
    epoch = result.history[-1]
    return {
        "beta": beta,
        "train_seconds": epoch["train_seconds"],
        "scoring_seconds": epoch["scoring_seconds"],
        "fraction_sifted": epoch["fraction_sifted"],
        "dev_accuracy": epoch["val_accuracy"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, help="training rows after a seeded shuffle (default: all)")
    p.add_argument("--betas", default="0.5,1,3", type=lambda s: [float(x) for x in s.split(",")])
    p.add_argument("--seed", type=int, default=0, help="training seed of every run (default 0)")
    p.add_argument("--baseline-once", action="store_true", help="no closing run without sifting (A B; for more seeds)")
    p.add_argument(
        "--lr-scaling",
        default="sqrt",
        choices=("sqrt", "none"),
        help="sifting_lr_scaling of the sifted runs (default sqrt, textclf's default)",
    )
    p.add_argument(
        "--min-keep-probability",
        type=float,
        default=0.2,
        help="sifting_min_keep_probability of the sifted runs (default 0.2, textclf's default; 0: none)",
    )
    p.add_argument("--json", type=Path, help="write the raw figures here")
    args = p.parse_args()
    rows = read_tsv(DATA_DIR / "train.tsv")
    if args.rows:
        random.Random(0).shuffle(rows)
        rows = rows[: args.rows]
    with tempfile.TemporaryDirectory(prefix="textclf-sifting-") as tmp:
        work = Path(tmp)
        train, dev = write_tsv(rows, work / "train.tsv"), write_tsv(read_tsv(DATA_DIR / "dev.tsv"), work / "dev.tsv")
        runs = []
        for beta in [None, *args.betas, *([] if args.baseline_once else [None])]:
            runs.append(run(train, dev, work / "model", beta, args.seed, args.lr_scaling, args.min_keep_probability))
            r = runs[-1]
            print(
                f"{'no sifting' if beta is None else f'beta {beta:g}'}: {r['train_seconds']:.1f} s, "
                f"dev accuracy {r['dev_accuracy']:.4f}",
                file=sys.stderr,
                flush=True,
            )
    first, last = runs[0], runs[0] if args.baseline_once else runs.pop()
    base = dict(first, train_seconds=(first["train_seconds"] + last["train_seconds"]) / 2)
    print(
        f"\nbaseline: {first['train_seconds']:.1f} s before the sifted runs, {last['train_seconds']:.1f} s after "
        f"(mean {base['train_seconds']:.1f} s); dev accuracy {first['dev_accuracy']:.4f} and {last['dev_accuracy']:.4f}"
    )
    runs[0] = base
    from textclf.models import native_bf16

    print(
        f"\nSST-2, {len(rows):,} training rows, 1 epoch, batch 32, lr 5e-5, seed {args.seed}; "
        f"sifting's scoring pass in {'bfloat16' if native_bf16() else 'float32'} (sifting_scoring_dtype auto), "
        f"sifting_lr_scaling {args.lr_scaling}, "
        f"sifting_min_keep_probability {args.min_keep_probability:g}\n"
    )
    print(
        f"{'run':<12}{'train s':>9}{'scoring s':>11}{'sifted':>8}{'kept':>7}{'dev acc':>9}"
        f"{'time saved':>12}{'acc change':>12}  target"
    )
    for r in runs:
        saved = 1 - r["train_seconds"] / base["train_seconds"]
        change = r["dev_accuracy"] - base["dev_accuracy"]
        met = saved >= TARGET_SAVING and change >= -TARGET_ACCURACY_DROP
        name = "no sifting" if r["beta"] is None else f"beta {r['beta']:g}"
        print(
            f"{name:<12}{r['train_seconds']:>9.1f}{r['scoring_seconds']:>11.1f}{r['fraction_sifted']:>8.1%}"
            f"{1 - r['fraction_sifted']:>7.1%}{r['dev_accuracy']:>9.4f}{saved:>12.1%}{change * 100:>+11.2f}p"
            f"  {'-' if r['beta'] is None else 'MET' if met else 'missed'}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "rows": len(rows),
                    "settings": SETTINGS,
                    "seed": args.seed,
                    "lr_scaling": args.lr_scaling,
                    "min_keep_probability": args.min_keep_probability,
                    "runs": runs,
                    "baselines": [first, last],
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
