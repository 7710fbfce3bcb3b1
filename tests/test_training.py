"""The training loop, the model folder it writes, and incremental training."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import FAST, make_sentences, write_csv
from safetensors.torch import load_file

import textclf
from textclf.errors import ArtifactError, DataError

QUIET = {"progress": False, "log": lambda _: None}


def test_model_folder_is_complete_and_learns(bert_artifact):
    names = {p.name for p in bert_artifact.iterdir()}
    assert {"config.json", "model.safetensors", "textclf.json", "metrics.jsonl", "curves.png", "tokenizer.json"} <= names
    meta = json.loads((bert_artifact / "textclf.json").read_text())
    assert meta["labels"] == ["negative", "positive"] and meta["label_type"] == "str"
    assert meta["hyperparameters"]["learning_rate"] == FAST["learning_rate"]
    assert meta["data"]["train_rows"] == 200 and meta["data"]["validation_rows"] == 60
    assert set(meta["versions"]) >= {"textclf", "torch", "transformers"}
    lines = [json.loads(x) for x in (bert_artifact / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == list(range(1, FAST["epochs"] + 1))
    for key in ("train_loss", "val_loss", "val_accuracy", "val_f1", "val_mcc", "samples_per_second", "elapsed_seconds"):
        assert all(isinstance(x[key], float) for x in lines), key
    best = max(lines, key=lambda x: x["val_accuracy"])
    assert meta["metrics"]["best"]["val_accuracy"] == best["val_accuracy"] >= 0.9
    config = json.loads((bert_artifact / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert (bert_artifact / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_artifact_loads_with_plain_transformers_pipeline(bert_artifact):
    from transformers import pipeline

    clf = pipeline("text-classification", model=str(bert_artifact))
    results = clf(["the food was great and lovely", "the service was awful and bad"])
    assert [r["label"] for r in results] == ["positive", "negative"]


def test_same_seed_same_metrics(tiny_bert, sentiment_files, tmp_path):
    train, val = sentiment_files
    runs = [
        textclf.train(train, tmp_path / f"run{i}", model=tiny_bert, validation=val, **QUIET, **{**FAST, "epochs": 2})
        for i in range(2)
    ]
    strip = lambda h: [{k: v for k, v in r.items() if "second" not in k} for r in h]  # noqa: E731
    assert strip(runs[0].history) == strip(runs[1].history)
    a, b = (load_file(r.output / "model.safetensors") for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_best_epoch_is_kept(tiny_bert, sentiment_files, tmp_path):
    train, val = sentiment_files
    # a learning rate this high makes later epochs worse; the saved weights must be the best epoch's
    result = textclf.train(train, tmp_path / "out", model=tiny_bert, validation=val, **QUIET,
                           **{**FAST, "learning_rate": 0.05, "epochs": 4})
    clf = textclf.Classifier.load(result.output)
    report = textclf.evaluate(result.output, val, classifier=clf)
    assert report.metrics["accuracy"] == pytest.approx(result.best["val_accuracy"])
    assert result.best["val_accuracy"] == max(h["val_accuracy"] for h in result.history)


def test_train_only_top_layer_changes_only_the_head(tiny_bert, sentiment_files, tmp_path):
    train, val = sentiment_files
    result = textclf.train(train, tmp_path / "out", model=tiny_bert, validation=val, train_only_top_layer=True, **QUIET, **FAST)
    base = load_file(tiny_bert / "model.safetensors")
    tuned = load_file(result.output / "model.safetensors")
    body = [k for k in tuned if k.startswith("bert.")]
    assert body and all(torch.equal(tuned[k], base[k.removeprefix("bert.")]) for k in body)
    assert "classifier.weight" in tuned


def test_decoder_model_trains_and_serves_through_pipeline(tiny_gpt2, sentiment_files, tmp_path):
    from transformers import pipeline

    train, val = sentiment_files
    result = textclf.train(train, tmp_path / "gpt2", model=tiny_gpt2, validation=val, **QUIET, **{**FAST, "epochs": 8})
    assert result.best["val_accuracy"] >= 0.8
    config = json.loads((result.output / "config.json").read_text())
    assert config["pad_token_id"] is not None
    out = pipeline("text-classification", model=str(result.output))(["the movie was superb", "the phone was broken"])
    assert {r["label"] for r in out} <= {"positive", "negative"}


def test_incremental_training_keeps_the_head_when_labels_match(bert_artifact, sentiment_files, tmp_path):
    train, val = sentiment_files
    logs: list[str] = []
    result = textclf.train(train, tmp_path / "again", model=bert_artifact, validation=val, progress=False,
                           log=logs.append, **{**FAST, "epochs": 1, "learning_rate": 1e-5})
    assert any("continuing from the model's head" in line for line in logs)
    assert result.history[0]["val_accuracy"] >= 0.9  # starts from a trained model


def test_incremental_training_with_new_labels_needs_reinitialize(bert_artifact, tmp_path):
    rows = [(lab.replace("positive", "good").replace("negative", "bad"), text) for lab, text in make_sentences(80)]
    data = write_csv(tmp_path / "renamed.csv", rows)
    with pytest.raises(DataError, match="--reinitialize-top-layer true"):
        textclf.train(data, tmp_path / "x", model=bert_artifact, **QUIET, **FAST)
    result = textclf.train(data, tmp_path / "y", model=bert_artifact, reinitialize_top_layer="true", **QUIET, **{**FAST, "epochs": 1})
    assert json.loads((result.output / "textclf.json").read_text())["labels"] == ["bad", "good"]


def test_integer_labels_and_split_without_validation_file(tiny_bert, tmp_path):
    rows = [(0 if lab == "negative" else 1, text) for lab, text in make_sentences(100)]
    folder = tmp_path / "jumpstart"
    folder.mkdir()
    write_csv(folder / "data.csv", rows, header=None)
    result = textclf.train(folder, tmp_path / "out", model=tiny_bert, **QUIET, **FAST)
    meta = json.loads((result.output / "textclf.json").read_text())
    assert meta["label_type"] == "int" and meta["data"]["validation_rows"] == 20 and meta["data"]["train_rows"] == 80
    assert textclf.Classifier.load(result.output).predict("the food was great")[0].labels == [0, 1]


def test_no_validation_at_all(tiny_bert, sentiment_files, tmp_path):
    result = textclf.train(sentiment_files[0], tmp_path / "out", model=tiny_bert, validation_split_ratio=0, **QUIET, **{**FAST, "epochs": 2})
    assert result.best_epoch == 2 and result.history[-1]["val_accuracy"] is None


def test_early_stopping_stops_after_patience(tiny_bert, sentiment_files, tmp_path):
    train, val = sentiment_files
    logs: list[str] = []
    result = textclf.train(train, tmp_path / "out", model=tiny_bert, validation=val, progress=False, log=logs.append,
                           **{**FAST, "epochs": 30, "early_stopping": True, "early_stopping_patience": 2,
                              "early_stopping_min_delta": 0.5})
    assert len(result.history) == 3  # epoch 1 sets the bar; no later epoch can beat it by 0.5
    assert any("early stopping" in line for line in logs)


def test_gradient_accumulation_matches_a_bigger_batch_schedule(tiny_bert, sentiment_files, tmp_path):
    train, val = sentiment_files
    result = textclf.train(train, tmp_path / "out", model=tiny_bert, validation=val, gradient_accumulation_steps=2,
                           **QUIET, **FAST)
    assert result.best["val_accuracy"] >= 0.8


def test_failed_run_leaves_no_folder_behind(tiny_bert, sentiment_files, tmp_path):
    def explode(line: str) -> None:
        if line.startswith("epoch 1/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        textclf.train(sentiment_files[0], tmp_path / "out", model=tiny_bert, progress=False, log=explode, **FAST)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite(bert_artifact, tiny_bert, sentiment_files, tmp_path):
    out = tmp_path / "out"
    textclf.train(sentiment_files[0], out, model=tiny_bert, **QUIET, **{**FAST, "epochs": 1})
    before = (out / "textclf.json").read_text()
    with pytest.raises(ArtifactError, match="--overwrite"):
        textclf.train(sentiment_files[0], out, model=tiny_bert, **QUIET, **{**FAST, "epochs": 1})
    assert (out / "textclf.json").read_text() == before
    textclf.train(sentiment_files[0], out, model=tiny_bert, overwrite=True, **QUIET, **{**FAST, "epochs": 1, "seed": 5})
    assert json.loads((out / "textclf.json").read_text())["hyperparameters"]["seed"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
