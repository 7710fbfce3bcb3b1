"""The training loop, the model folder it writes, and incremental training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import textclf
from conftest import FAST, make_sentences, write_csv
from textclf.data import LabelSet, ReadOptions
from textclf.errors import ArtifactError, ConfigError, DataError
from textclf.models import load_for_training, resolve_model
from textclf.training import TrainingHooks

QUIET = {"progress": False, "log": lambda _: None}


@pytest.mark.slow
def test_model_folder_is_complete_and_learns(bert_artifact, sentiment_files):
    names = {p.name for p in bert_artifact.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "textclf.json",
        "metrics.jsonl",
        "curves.png",
        "tokenizer.json",
        "training_dynamics.npz",
        "report.html",
    } <= names
    page = (bert_artifact / "report.html").read_text()
    assert "confusion" in page.lower() and "<svg" in page and "http" not in page.replace("http-equiv", "")
    meta = json.loads((bert_artifact / "textclf.json").read_text())
    assert meta["labels"] == ["negative", "positive"] and meta["label_type"] == "str"
    assert meta["hyperparameters"]["learning_rate"] == FAST["learning_rate"]
    assert meta["data"]["train_rows"] == 200 and meta["data"]["validation_rows"] == 60
    assert set(meta["versions"]) >= {"textclf", "torch", "transformers"}
    dynamics = np.load(bert_artifact / "training_dynamics.npz")
    assert dynamics["line"].tolist() == list(range(2, 202))  # the 200 rows of train.csv, after its header
    assert dynamics["epoch"].tolist() == list(range(1, FAST["epochs"] + 1))
    names = json.loads((bert_artifact / "textclf.json").read_text())["labels"]
    assert dynamics["label"].tolist() == [names.index(x) for x in textclf.data.read_examples(sentiment_files[0]).labels]
    confidence = dynamics["confidence"]
    assert confidence.shape == (FAST["epochs"], 200) and ((confidence > 0) & (confidence <= 1)).all()
    assert confidence[-1].mean() > confidence[0].mean() + 0.2  # it learned: the given labels grow likelier
    *lines, last = [json.loads(x) for x in (bert_artifact / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == list(range(1, FAST["epochs"] + 1))
    assert list(last) == ["calibration"] and last["calibration"]["temperature"] > 0  # after the epochs
    for key in ("train_loss", "val_loss", "val_accuracy", "val_f1", "val_mcc", "samples_per_second", "elapsed_seconds"):
        assert all(isinstance(x[key], float) for x in lines), key
    best = max(lines, key=lambda x: x["val_accuracy"])
    assert meta["metrics"]["best"]["val_accuracy"] == best["val_accuracy"] >= 0.9
    config = json.loads((bert_artifact / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert (bert_artifact / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_artifact_loads_with_plain_transformers_pipeline(bert_artifact):
    from transformers import pipeline

    clf = pipeline("text-classification", model=str(bert_artifact))
    results = clf(["the food was great and lovely", "the service was awful and bad"])
    assert [r["label"] for r in results] == ["positive", "negative"]


@pytest.mark.slow
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


@pytest.mark.slow
def test_best_epoch_is_kept(tiny_bert, sentiment_files, tmp_path):
    # validating against flipped labels makes every epoch of learning look worse than the first,
    # so the saved weights must be epoch 1's, not the last epoch's
    flip = {"positive": "negative", "negative": "positive"}
    val = write_csv(tmp_path / "flipped.csv", [(flip[lab], text) for lab, text in make_sentences(60, 2)])
    result = textclf.train(sentiment_files[0], tmp_path / "out", model=tiny_bert, validation=val, **QUIET, **FAST)
    assert result.best_epoch < len(result.history)
    assert result.history[-1]["val_accuracy"] < result.best["val_accuracy"]
    report = textclf.evaluate(result.output, val)
    assert report.metrics["accuracy"] == pytest.approx(result.best["val_accuracy"])


@pytest.mark.slow
def test_mid_epoch_checks_leave_training_alone_and_the_best_of_them_is_saved(tiny_bert, sentiment_files, tmp_path):
    train, val = sentiment_files
    weights: dict[int, dict] = {}  # the weights at each check, by step

    def after_step(run) -> None:
        if run.state.checks and run.state.checks[-1]["step"] == run.state.step:  # a check just ran
            weights[run.state.step] = {k: v.detach().clone() for k, v in run.net.state_dict().items()}

    once = textclf.train(train, tmp_path / "once", model=tiny_bert, validation=val, **QUIET, **FAST)
    logs: list[str] = []
    thrice = textclf.train(
        train,
        tmp_path / "thrice",
        model=tiny_bert,
        validation=val,
        evaluations_per_epoch=3,
        hooks=TrainingHooks(after_step=after_step),
        progress=False,
        log=logs.append,
        **FAST,
    )
    assert all(r["checks"] == [] for r in once.history)
    without_checks = lambda h: [{k: v for k, v in r.items() if "second" not in k and k != "checks"} for r in h]  # noqa: E731
    assert without_checks(thrice.history) == without_checks(once.history)  # checking changes no step of training
    # 200 rows in batches of 16 (13 steps an epoch): a check after the first step past 1/3 and 2/3 of the rows
    first = thrice.history[0]["checks"]
    assert [(c["epoch"], c["step"], c["rows"]) for c in first] == [(1, 5, 80), (1, 9, 144)]
    assert all(len(r["checks"]) == 2 and {c["epoch"] for c in r["checks"]} == {r["epoch"]} for r in thrice.history)
    assert set(first[0]) == {"epoch", "step", "rows", "val_loss", "val_accuracy", "val_f1", "val_mcc", "val_ece"}
    check_lines = [line for line in logs if line.startswith("epoch ") and " step " in line]
    assert len(check_lines) == 2 * FAST["epochs"]
    c = first[0]
    assert check_lines[0] == (
        f"epoch 1/6 step 5 (rows 80/200)  val_loss {c['val_loss']:.4f}  val_accuracy {c['val_accuracy']:.4f}  "
        f"val_f1 {c['val_f1']:.4f}  val_mcc {c['val_mcc']:.4f}"
    )

    points = [p for r in thrice.history for p in (*r["checks"], r)]  # in the order they were evaluated
    best = max(points, key=lambda p: p["val_accuracy"])  # the first of the best
    assert "step" in best, "this setting is meant to have a mid-epoch check win; pick another if it no longer does"
    assert best["val_accuracy"] > max(r["val_accuracy"] for r in thrice.history if r["epoch"] < best["epoch"])
    assert thrice.best == best and thrice.best_epoch == best["epoch"]
    assert any(f"keeping epoch {best['epoch']} step {best['step']}" in line for line in logs)
    saved = load_file(thrice.output / "model.safetensors")
    kept = weights[best["step"]]
    head = {"classifier.weight", "classifier.bias"}  # the output layer: divided by the calibration's temperature
    assert saved.keys() <= kept.keys() and all(torch.equal(saved[k], kept[k]) for k in saved.keys() - head)
    temperature = json.loads((thrice.output / "textclf.json").read_text())["calibration"]["temperature"]
    assert all(torch.allclose(saved[k], kept[k] / temperature, rtol=1e-6, atol=0) for k in head)
    once_saved = load_file(once.output / "model.safetensors")  # the best epoch end's weights
    assert any(not torch.equal(saved[k], once_saved[k]) for k in saved)
    meta = json.loads((thrice.output / "textclf.json").read_text())
    assert meta["metrics"]["best"] == best and meta["metrics"]["best_epoch"] == best["epoch"]


@pytest.mark.slow
def test_train_only_top_layer_changes_only_the_head(tiny_bert, sentiment_files, tmp_path):
    train, val = sentiment_files
    result = textclf.train(
        train, tmp_path / "out", model=tiny_bert, validation=val, train_only_top_layer=True, **QUIET, **FAST
    )
    base = load_file(tiny_bert / "model.safetensors")
    tuned = load_file(result.output / "model.safetensors")
    body = [k for k in tuned if k.startswith("bert.")]
    assert body and all(torch.equal(tuned[k], base[k.removeprefix("bert.")]) for k in body)
    assert "classifier.weight" in tuned


@pytest.mark.slow
def test_decoder_model_trains_and_serves_through_pipeline(tiny_gpt2, sentiment_files, tmp_path):
    from transformers import pipeline

    train, val = sentiment_files
    result = textclf.train(train, tmp_path / "gpt2", model=tiny_gpt2, validation=val, **QUIET, **{**FAST, "epochs": 8})
    assert result.best["val_accuracy"] >= 0.8
    config = json.loads((result.output / "config.json").read_text())
    assert config["pad_token_id"] is not None
    texts = ["the movie was superb", "the phone was broken and the service was really very poor"]
    ours = [p.predicted_label for p in textclf.Classifier.load(result.output, dtype="float32").predict(texts)]
    theirs = [r["label"] for r in pipeline("text-classification", model=str(result.output))(texts)]
    assert ours == theirs == ["positive", "negative"]


@pytest.mark.slow
def test_incremental_training_keeps_the_head_when_labels_match(bert_artifact, sentiment_files, tmp_path):
    train, val = sentiment_files
    logs: list[str] = []
    result = textclf.train(
        train,
        tmp_path / "again",
        model=bert_artifact,
        validation=val,
        progress=False,
        log=logs.append,
        **{**FAST, "epochs": 1, "learning_rate": 1e-5},
    )
    assert any("continuing from the model's head" in line for line in logs)
    assert result.history[0]["val_accuracy"] >= 0.9  # starts from a trained model


@pytest.mark.slow
def test_incremental_training_with_new_labels_needs_reinitialize(bert_artifact, tmp_path):
    rows = [(lab.replace("positive", "good").replace("negative", "bad"), text) for lab, text in make_sentences(80)]
    data = write_csv(tmp_path / "renamed.csv", rows)
    with pytest.raises(DataError, match="--reinitialize-top-layer true"):
        textclf.train(data, tmp_path / "x", model=bert_artifact, **QUIET, **FAST)
    old_head = load_file(bert_artifact / "model.safetensors")["classifier.weight"]
    torch.manual_seed(123)  # the new head must not depend on what the old one was
    fresh, *_ = load_for_training(resolve_model(bert_artifact), LabelSet(("bad", "good"), integer=False), "true")
    assert not torch.allclose(fresh.classifier.weight, old_head)
    assert fresh.classifier.weight.std().item() == pytest.approx(0.02, rel=0.5)  # initializer_range, not trained values
    result = textclf.train(
        data, tmp_path / "y", model=bert_artifact, reinitialize_top_layer="true", **QUIET, **{**FAST, "epochs": 1}
    )
    assert json.loads((result.output / "textclf.json").read_text())["labels"] == ["bad", "good"]


@pytest.mark.slow
def test_integer_labels_and_split_without_validation_file(tiny_bert, tmp_path):
    rows = [(0 if lab == "negative" else 1, text) for lab, text in make_sentences(100)]
    folder = tmp_path / "jumpstart"
    folder.mkdir()
    write_csv(folder / "data.csv", rows, header=None)
    result = textclf.train(folder, tmp_path / "out", model=tiny_bert, **QUIET, **FAST)
    meta = json.loads((result.output / "textclf.json").read_text())
    assert meta["label_type"] == "int" and meta["data"]["validation_rows"] == 20 and meta["data"]["train_rows"] == 80
    assert textclf.Classifier.load(result.output, dtype="float32").predict("the food was great")[0].labels == [0, 1]


def test_no_validation_at_all(tiny_bert, sentiment_files, tmp_path):
    result = textclf.train(
        sentiment_files[0],
        tmp_path / "out",
        model=tiny_bert,
        validation_split_ratio=0,
        **QUIET,
        **{**FAST, "epochs": 2},
    )
    assert result.best_epoch == 2 and result.history[-1]["val_accuracy"] is None


@pytest.mark.slow
def test_early_stopping_stops_after_patience(tiny_bert, sentiment_files, tmp_path):
    train, val = sentiment_files
    logs: list[str] = []
    result = textclf.train(
        train,
        tmp_path / "out",
        model=tiny_bert,
        validation=val,
        progress=False,
        log=logs.append,
        **{**FAST, "epochs": 30, "early_stopping": True, "early_stopping_patience": 2, "early_stopping_min_delta": 0.5},
    )
    assert len(result.history) == 3  # epoch 1 sets the bar; no later epoch can beat it by 0.5
    assert any("early stopping" in line for line in logs)


def test_max_seq_length_beyond_the_model_is_refused(tiny_bert, sentiment_files, tmp_path):
    with pytest.raises(ConfigError, match="max_seq_length must be at most 128"):
        textclf.train(sentiment_files[0], tmp_path / "out", model=tiny_bert, **QUIET, **{**FAST, "max_seq_length": 512})
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_skipping_every_row_is_a_data_error_not_a_crash(bert_artifact, tmp_path):
    data = write_csv(tmp_path / "other.csv", [("cat", "the food was great"), ("dog", "bad phone")] * 5)
    with pytest.raises(DataError, match="no usable rows"):
        textclf.train(
            data, tmp_path / "out", model=bert_artifact, read_options=ReadOptions(on_bad_rows="skip"), **QUIET, **FAST
        )


def test_failed_run_leaves_no_folder_behind(tiny_bert, sentiment_files, tmp_path):
    def explode(line: str) -> None:
        if line.startswith("epoch 1/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        textclf.train(sentiment_files[0], tmp_path / "out", model=tiny_bert, progress=False, log=explode, **FAST)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
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


@pytest.mark.slow
def test_gradient_checkpointing_is_on_and_learns_the_same(tiny_bert, sentiment_files, tmp_path):
    nets = []
    hooks = TrainingHooks(after_setup=lambda run: nets.append(run.net))
    train, val = sentiment_files
    runs = [
        textclf.train(
            train,
            tmp_path / f"run{flag}",
            model=tiny_bert,
            validation=val,
            gradient_checkpointing=flag,
            hooks=hooks,
            **QUIET,
            **{**FAST, "epochs": 2},
        )
        for flag in (False, True)
    ]

    def recomputes(net) -> bool:  # recomputed in the backward pass
        on = getattr(net, "is_activation_checkpointing", None)  # transformers >= 5.23's name
        return net.is_gradient_checkpointing if on is None else on

    assert [recomputes(net) for net in nets] == [False, True]
    plain, recomputed = (load_file(r.output / "model.safetensors") for r in runs)
    assert all(torch.allclose(plain[k], recomputed[k], atol=1e-5) for k in plain)  # same dropout masks, same result
    assert [h["train_loss"] for h in runs[1].history] == pytest.approx(
        [h["train_loss"] for h in runs[0].history], abs=1e-5
    )
