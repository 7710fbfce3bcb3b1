"""Benchmark: expected calibration error before and after textclf's temperature scaling, on held-out test sets.

For each data set of --sets, `textclf.train(train, out)` with no hyperparameters (the default recipe:
20% of the training file held out, stratified, seed 0; the temperature is fitted on that split at
the end). The model folder is then scored on the set's test file, which training never saw:

  before  the uncalibrated probabilities: softmax(logits * T), what the same fine-tune gives without
          calibration (and what a plain Hugging Face Trainer fine-tune outputs),
  after   the probabilities textclf outputs: softmax(logits), the temperature folded into the model.

ECE (15 equal-width bins of the top probability), NLL and Brier score of each, with textclf's
metrics; accuracy (unchanged by construction: checked). Targets (issue 22): ECE after <= half of
ECE before on each set, and below 2% on SST-2.

  sst_all  SST-2 train.tsv (67,349 rows) -> dev.tsv (872)
  trec6    TREC train_5500.label -> TREC_10.label (500), the coarse labels (6)
  trec50   the same files, the fine labels (50)
  bbc      BBC News train.csv (1,780) -> test.csv (223)

    .venv/bin/python bench/calibration.py                       # about 15 minutes on 2 cores
    .venv/bin/python bench/calibration.py --sets trec6 --rows 600 --epochs 1   # a smoke run
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import textclf
from defaults import bbc, hardware, load_set, write_csv
from textclf import calibration
from textclf.data import ReadOptions, load_training_data, read_examples
from textclf.metrics import calibration_metrics

SETS = ("sst_all", "trec6", "trec50", "bbc")
REPO = Path(__file__).resolve().parent.parent


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", default="sst_all,trec6,bbc", help=f"comma-separated, of {', '.join(SETS)}")
    p.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--rows", type=int, default=None, help="cap each training file (seeded shuffle)")
    p.add_argument("--epochs", type=int, default=None, help="override the automatic epochs (smoke runs)")
    p.add_argument("--json", type=Path, default=REPO / "bench" / "out" / "calibration.json")
    return p.parse_args()


def test_rows(name: str, root: Path, rows: int | None):
    """The set's train and test rows; BBC's test file is test.csv (bench/defaults.py scores on val.csv)."""
    ds = load_set(name, root, rows, None)
    if name != "bbc":
        return ds.train, ds.test
    with (root / "bbc_news" / "test.csv").open(encoding="utf-8", newline="") as f:
        test = [(row["category"], row["text"]) for row in csv.DictReader(f)]
    return (ds.train if rows else bbc(root)[0]), test


def run(name: str, args: argparse.Namespace, work: Path) -> dict:
    train, test = test_rows(name, args.data_dir, args.rows)
    train_csv, test_csv = write_csv(train, work / f"{name}-train.csv"), write_csv(test, work / f"{name}-test.csv")
    out = work / name
    settings = {} if args.epochs is None else {"epochs": args.epochs}
    started = time.perf_counter()
    textclf.train(train_csv, out, progress=False, **settings)
    seconds = time.perf_counter() - started
    clf = textclf.Classifier.load(out)
    examples = read_examples(test_csv)
    y = np.asarray(clf.labels.encode(examples, "error"))
    logits = clf.logits(examples.texts).astype(np.float64)
    t = clf.temperatures
    before, after = calibration_metrics(logits * t, y), calibration_metrics(logits, y)
    accuracy = lambda z: float((z.argmax(axis=1) == y).mean())  # noqa: E731
    assert accuracy(logits * t) == accuracy(logits), "calibration changed a prediction"
    meta = json.loads((out / "textclf.json").read_text())
    strip = lambda m: {k: m[k] for k in ("ece", "nll", "brier")}  # noqa: E731
    td = load_training_data(train_csv, None, ReadOptions(), 0.2, 0)  # the split training validated on
    val_raw = clf.logits(td.val_texts).astype(np.float64) * t
    args.json.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.json.parent / f"calibration_{name}.npz",
        val_raw=val_raw,
        val_labels=np.asarray(td.val_labels),
        val_words=np.asarray([len(x.split()) for x in td.val_texts]),
        test_raw=logits * t,
        test_labels=y,
        test_words=np.asarray([len(x.split()) for x in examples.texts]),
    )
    return {
        "set": name,
        "train_rows": meta["data"]["train_rows"],
        "validation_rows": meta["data"]["validation_rows"],
        "test_rows": len(y),
        "temperature": float(t[0]),
        "accuracy": accuracy(logits),
        "test_before": strip(before),
        "test_after": strip(after),
        "validation_before": strip(meta["calibration"]["before"]),
        "validation_after": strip(meta["calibration"]["after"]),
        "train_seconds": seconds,
        "epochs": meta["hyperparameters"]["epochs"],
    }


def variants(name: str, folder: Path) -> list[tuple[str, float, float]]:
    """Other ways to choose T, from the logits a run saved (bench/out/calibration_<set>.npz): (variant, T,
    test ECE). ``nll``: textclf's rule; ``ece``: the T minimising the validation split's ECE; ``long``: NLL on
    the validation rows at least as long as the test set's median (a split shaped like the test data);
    ``oracle``: NLL on the test set itself (the best one T can do; not a method)."""
    saved = np.load(folder / f"calibration_{name}.npz")
    val, vy, test, ty = saved["val_raw"], saved["val_labels"], saved["test_raw"], saved["test_labels"]
    ece = lambda z, y, t: calibration_metrics(z, y, t)["ece"]  # noqa: E731
    long = saved["val_words"] >= np.median(saved["test_words"])
    grid = np.exp(np.linspace(np.log(calibration.T_RANGE[0]), np.log(calibration.T_RANGE[1]), 400))
    chosen = {
        "none": 1.0,
        "nll": calibration.fit(val, vy)["temperature"],
        "ece": float(grid[np.argmin([ece(val, vy, t) for t in grid])]),
        "long": calibration.fit(val[long], vy[long])["temperature"],
        "oracle": calibration.fit(test, ty)["temperature"],
    }
    return [(v, t, ece(test, ty, t)) for v, t in chosen.items()]


def main() -> None:
    args = parse_args()
    hw = hardware()
    print(
        f"# CPU {hw['cpu']}; amx_bf16 {hw['amx_bf16']}, avx512_bf16 {hw['avx512_bf16']}, avx2 {hw['avx2']}; "
        f"torch {hw['torch']} capability {hw['torch_cpu_capability']}",
        file=sys.stderr,
    )
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets.split(","):
            r = run(name, args, Path(tmp))
            results.append(r)
            print(json.dumps(r), file=sys.stderr)
    print(
        "| set (train -> test rows) | T | accuracy | ECE before | ECE after | ratio | NLL before -> after "
        "| Brier before -> after | targets |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---|---|")
    for r in results:
        b, a = r["test_before"], r["test_after"]
        ratio = a["ece"] / b["ece"] if b["ece"] else float("nan")
        target = ratio <= 0.5 and (r["set"] != "sst_all" or a["ece"] < 0.02)
        print(
            f"| {r['set']} ({r['train_rows']} + {r['validation_rows']} -> {r['test_rows']}) | {r['temperature']:.3f} "
            f"| {r['accuracy']:.4f} | {b['ece']:.2%} | {a['ece']:.2%} | {ratio:.2f} | {b['nll']:.4f} -> {a['nll']:.4f} "
            f"| {b['brier']:.4f} -> {a['brier']:.4f} | {'PASS' if target else 'MISS'} |"
        )
    print("\n| set | variant | T | test ECE |\n|---|---|---:|---:|")
    for r in results:
        for variant, t, e in variants(r["set"], args.json.parent):
            print(f"| {r['set']} | {variant} | {t:.3f} | {e:.2%} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"hardware": hw, "results": results, "calibration_rule": calibration.RULE}, indent=2)
    )


if __name__ == "__main__":
    main()
