"""Shared fixtures: tiny BERT and GPT-2 models with tokenizers built here (no network)."""

from __future__ import annotations

import csv
import os
import random
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags for a closed network and no sandbox user (CI runs as root): the browser tests'.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

POSITIVE = ["good", "great", "excellent", "lovely", "superb", "fine", "happy", "nice"]
NEGATIVE = ["bad", "awful", "terrible", "poor", "horrible", "sad", "broken", "ugly"]
FILLER = ["the", "a", "movie", "phone", "was", "is", "really", "very", "food", "service", "and", "it", "this", "quite"]
WORDS = POSITIVE + NEGATIVE + FILLER


def make_sentences(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """(label, text) pairs: the label is the sentiment word planted among filler."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "positive" if i % 2 == 0 else "negative"
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 12))]
        words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if label == "positive" else NEGATIVE))
        rows.append((label, " ".join(words)))
    return rows


def make_tagged(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Multi-label (labels, text) pairs: each of ``food``, ``phone`` and ``service`` when that word is planted
    among the other words; a row may have any of them, all or none (labels joined by commas)."""
    rng = random.Random(seed)
    tags = ("food", "phone", "service")
    filler = [w for w in WORDS if w not in tags]
    rows = []
    for i in range(n):
        labels = [tag for bit, tag in enumerate(tags) if (i * 5 + 3) % 8 & (1 << bit)]
        words = [rng.choice(filler) for _ in range(rng.randint(2, 10))]
        for tag in labels:
            words.insert(rng.randint(0, len(words)), tag)
        rows.append((",".join(labels), " ".join(words)))
    return rows


def write_csv(path: Path, rows, header=("label", "text")) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="session")
def sentiment_files(tmp_path_factory) -> tuple[Path, Path]:
    """A learnable two-class train file (200 rows) and validation file (60 rows)."""
    root = tmp_path_factory.mktemp("sentiment")
    return write_csv(root / "train.csv", make_sentences(200, 1)), write_csv(root / "val.csv", make_sentences(60, 2))


@pytest.fixture(scope="session")
def tagged_files(tmp_path_factory) -> tuple[Path, Path]:
    """A learnable multi-label train file (240 rows, labels food/phone/service, one row in 8 none) and
    validation file (80 rows)."""
    root = tmp_path_factory.mktemp("tagged")
    return write_csv(root / "train.csv", make_tagged(240, 1)), write_csv(root / "val.csv", make_tagged(80, 2))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer BERT folder (base model only, like a fill-mask checkpoint) and its WordPiece tokenizer."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, BertTokenizerFast

    root = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *"abcdefghijklmnopqrstuvwxyz"]
    backend = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    BertTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    ).save_pretrained(root)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(root)
    return root


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    """A 2-layer GPT-2 folder whose tokenizer has an EOS token but no pad token."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerFast

    root = tmp_path_factory.mktemp("tiny-gpt2")
    vocab = {w: i for i, w in enumerate(["<|endoftext|>", "<unk>", *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>", unk_token="<unk>")
    tokenizer.save_pretrained(root)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(vocab), n_positions=128, n_embd=32, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0
    )
    GPT2Model(config).save_pretrained(root)
    return root


FAST = {"epochs": 6, "learning_rate": 3e-3, "batch_size": 16, "max_seq_length": 32, "warmup_ratio": 0.0}
"""Hyperparameters under which the tiny models learn the planted-word task in seconds."""


@pytest.fixture(scope="session")
def bert_artifact(tiny_bert, sentiment_files, tmp_path_factory) -> Path:
    """A textclf model folder trained once on the tiny BERT, shared by read-only tests."""
    import textclf

    train, val = sentiment_files
    out = tmp_path_factory.mktemp("artifacts") / "bert"
    textclf.train(train, out, model=tiny_bert, validation=val, progress=False, log=lambda _: None, **FAST)
    return out


@pytest.fixture(scope="session")
def bert_uncalibrated(tiny_bert, sentiment_files, tmp_path_factory) -> Path:
    """bert_artifact's twin trained with --no-calibration: its weights are bert_artifact's before the temperature."""
    import textclf

    train, val = sentiment_files
    out = tmp_path_factory.mktemp("artifacts") / "bert-uncalibrated"
    textclf.train(
        train, out, model=tiny_bert, validation=val, calibration=False, progress=False, log=lambda _: None, **FAST
    )
    return out


@pytest.fixture(scope="session")
def tagged_artifact(tiny_bert, tagged_files, tmp_path_factory) -> Path:
    """A multi-label textclf model folder trained once on the tiny BERT, shared by read-only tests."""
    import textclf

    train, val = tagged_files
    out = tmp_path_factory.mktemp("artifacts") / "tagged"
    hp = {**FAST, "epochs": 15, "warmup_ratio": 0.1}  # three detectors take the tiny model longer than one
    textclf.train(train, out, model=tiny_bert, validation=val, progress=False, log=lambda _: None, **hp)
    return out


@pytest.fixture(scope="session")
def borderline(tiny_bert, tmp_path_factory) -> tuple[Path, Path]:
    """A plain HF folder (no textclf.json) whose untrained head is biased so that half the texts sit at
    its decision boundary: int8 rounding flips some of them. The folder and a labelled file of those
    texts; copy the folder before writing into it."""
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from textclf.inference import Classifier

    tmp = tmp_path_factory.mktemp("borderline")
    folder = tmp / "untrained"
    torch.manual_seed(3)
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_bert, num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1}
    )
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(folder)
    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 20))) for _ in range(600)]
    model.save_pretrained(folder)
    margins = np.diff(Classifier.load(folder, backend="torch", dtype="float32").logits(texts), axis=1)[:, 0]
    with torch.no_grad():
        model.classifier.bias[1] -= float(np.median(margins))
    model.save_pretrained(folder)
    data = tmp / "val.csv"
    data.write_text("label,text\n" + "".join(f"{['negative', 'positive'][i % 2]},{t}\n" for i, t in enumerate(texts)))
    return folder, data


@pytest.fixture
def aws_credentials(monkeypatch) -> None:
    """Credentials and a region that boto3 accepts (nothing reaches AWS: the clients get an endpoint_url)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="session")
def bert_int8(bert_artifact, sentiment_files, tmp_path_factory) -> Path:
    """A copy of bert_artifact with its onnx-int8 export (read-only: copy it to change it)."""
    import shutil

    from textclf.export import export_model

    folder = tmp_path_factory.mktemp("int8") / "bert"
    shutil.copytree(bert_artifact, folder)
    export_model(folder, "onnx-int8", validation=sentiment_files[1])
    return folder
