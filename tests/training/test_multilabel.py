"""Multi-label training end to end: data to sigmoid head, thresholds, metrics, the model folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

import textclf
from conftest import FAST, make_tagged, write_csv
from textclf import calibration
from textclf.data import ReadOptions, iterative_split, load_training_data

QUIET = {"progress": False, "log": lambda _: None}


@pytest.mark.slow
def test_a_multi_label_folder_has_sigmoid_config_thresholds_and_its_metrics(tagged_artifact):
    config = json.loads((tagged_artifact / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    assert config["id2label"] == {"0": "food", "1": "phone", "2": "service"}
    meta = json.loads((tagged_artifact / "textclf.json").read_text())
    assert meta["problem_type"] == "multi_label_classification"
    chosen = meta["thresholds"]
    assert len(chosen["thresholds"]) == 3 and chosen["chosen_on"] == "validation"
    assert all(0.05 <= t <= 0.95 for t in chosen["thresholds"]) and chosen["per_label"] == [True] * 3
    assert meta["data"]["task"] == "multi-label"
    assert meta["data"]["rows_without_labels"] == 30  # one row in 8 has none
    assert meta["data"]["label_cardinality"] == pytest.approx(1.5)
    lines = [json.loads(x) for x in (tagged_artifact / "metrics.jsonl").read_text().splitlines()][:-1]  # calibration
    for key in ("val_loss", "val_micro_f1", "val_macro_f1", "val_micro_precision", "val_micro_recall"):
        assert all(isinstance(x[key], float) for x in lines), key
    best = max(lines, key=lambda x: x["val_micro_f1"])
    assert meta["metrics"]["best"]["val_micro_f1"] == best["val_micro_f1"] >= 0.85
    assert chosen["uncalibrated"] == best["thresholds"]["thresholds"]  # as chosen, then moved through calibration
    assert chosen["thresholds"] == calibration.map_thresholds(
        chosen["uncalibrated"], meta["calibration"]["temperatures"]
    )


@pytest.mark.slow
def test_predictions_are_label_sets_and_pipeline_gives_the_same_sigmoid_scores(tagged_artifact, tagged_files):
    from transformers import pipeline

    from textclf.data import read_examples

    val = read_examples(tagged_files[1])
    clf = textclf.Classifier.load(tagged_artifact, dtype="float32")
    preds = clf.predict(val.texts)
    assert set(preds[0].to_dict()) == {"probabilities", "labels", "predicted_labels"}
    exact = np.mean([set(p.predicted_labels) == set(truth) for p, truth in zip(preds, val.labels)])
    assert exact >= 0.6
    assert any(p.predicted_labels == [] for p in preds) and any(len(p.predicted_labels) > 1 for p in preds)
    texts = val.texts[:4]
    scores = pipeline("text-classification", model=str(tagged_artifact), top_k=None)(texts)
    for pred, answer in zip(preds, scores):
        by_label = {row["label"]: row["score"] for row in answer}
        assert [by_label[name] for name in pred.labels] == pytest.approx(pred.probabilities, abs=1e-5)
    assert not all(sum(p.probabilities) == pytest.approx(1.0, abs=1e-3) for p in preds)  # sigmoids, not a softmax

    none = textclf.Classifier.load(tagged_artifact, dtype="float32", threshold=1.0)  # only a saturated sigmoid
    assert all(
        p.predicted_labels == [n for n, s in zip(p.labels, p.probabilities) if s == 1.0] for p in none.predict(texts)
    )
    top = textclf.Classifier.load(tagged_artifact, dtype="float32", threshold=1.0, at_least_one=True)
    assert [p.predicted_labels for p in top.predict(texts)] == [
        [p.labels[int(np.argmax(p.probabilities))]] for p in preds[:4]
    ]
    everything = textclf.Classifier.load(tagged_artifact, dtype="float32", threshold=0.0)
    assert everything.predict(texts[0])[0].predicted_labels == ["food", "phone", "service"]
    with pytest.raises(textclf.ConfigError, match="threshold must be between 0 and 1"):
        textclf.Classifier.load(tagged_artifact, threshold=1.5)


def test_label_sets_are_read_from_separators_json_lists_and_id_files(tmp_path):
    csv_file = write_csv(tmp_path / "t.csv", make_tagged(40, 3))
    td = load_training_data(csv_file, validation_split_ratio=0.25)
    assert td.labels.multi_label and td.labels.names == ("food", "phone", "service")
    assert td.summary["rows_without_labels"] == sum(1 for row in td.train_labels if not row)
    lines = [
        json.dumps({"text": "good food", "labels": ["positive", "food"]}),
        json.dumps({"text": "bad", "labels": ["negative"]}),
        json.dumps({"text": "nothing", "labels": []}),
        json.dumps({"text": "fine bad", "labels": ["positive", "negative", "positive"]}),
    ]
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text("\n".join(lines) + "\n")
    td = load_training_data(jsonl, validation_split_ratio=0)
    assert td.labels.names == ("food", "negative", "positive")
    assert td.train_labels == [(0, 2), (1,), (), (1, 2)]
    names = tmp_path / "labels.txt"
    names.write_text("anger\njoy\nsurprise")
    tsv = tmp_path / "t.tsv"
    tsv.write_text("so happy\t1,2\tid1\nwhat\t2\tid2\ngrr\t0\tid3\nmeh\t1\tid4\n")
    options = ReadOptions(text_column="0", label_column="1", label_names=str(names), task="multi-label")
    td = load_training_data(tsv, options=options, validation_split_ratio=0)
    assert td.labels.names == ("anger", "joy", "surprise")
    assert td.train_labels == [(1, 2), (2,), (0,), (1,)]


def test_a_custom_separator_splits_labels_and_a_blank_one_is_refused(tmp_path):
    tsv = tmp_path / "t.tsv"
    tsv.write_text("label\ttext\nbilling|bug\tcharged twice, then it crashed\nbug\tit crashed\nbilling\trefund\n")
    td = load_training_data(tsv, options=ReadOptions(label_separator="|"), validation_split_ratio=0)
    assert td.labels.multi_label and td.train_labels == [(0, 1), (1,), (0,)]
    single = load_training_data(tsv, validation_split_ratio=0)  # no comma in a label: single-label
    assert not single.labels.multi_label and "billing|bug" in single.labels.names
    with pytest.raises(textclf.ConfigError, match="label_separator ' ' is blank"):
        ReadOptions(label_separator=" ")


def test_bad_multi_label_inputs_are_one_line_errors_at_their_line(tmp_path):
    names = tmp_path / "labels.txt"
    names.write_text("anger\njoy")
    tsv = tmp_path / "t.tsv"
    tsv.write_text("so happy\t1\nwhat\t0,7\n")
    options = ReadOptions(text_column="0", label_column="1", label_names=str(names), task="multi-label")
    with pytest.raises(textclf.DataError, match=r"t\.tsv:2: label id '7' is not in .*labels\.txt \(ids 0\.\.1"):
        load_training_data(tsv, options=options)
    train = write_csv(tmp_path / "train.csv", [("a,b", "x y"), ("a", "y"), ("b", "x")])
    val = write_csv(tmp_path / "val.csv", [("a", "x"), ("b,c", "z")])
    with pytest.raises(textclf.DataError, match=r"val\.csv:3: label 'c' appears in the validation data but on no"):
        load_training_data(train, val)
    names.write_text("a\nb\nc")
    with pytest.raises(textclf.DataError, match=r"val\.csv:3: label 'c' appears in the validation data but on no"):
        load_training_data(train, val, ReadOptions(label_names=str(names)))
    single = write_csv(tmp_path / "single.csv", [("a", "x"), ("", "y"), ("b", "z")])
    with pytest.raises(textclf.DataError, match=r"single\.csv:3: empty label.*--task multi-label"):
        load_training_data(single)
    with pytest.raises(textclf.DataError, match=r"single\.csv:3: empty label; expected a class label\.$"):
        load_training_data(single, options=ReadOptions(task="single-label"))
    as_multi = load_training_data(single, options=ReadOptions(task="multi-label"), validation_split_ratio=0)
    assert as_multi.train_labels == [(0,), (), (1,)]


def test_iterative_split_keeps_every_labels_share():
    rng = np.random.default_rng(0)
    shares = [0.5, 0.3, 0.1, 0.05, 0.02, 0.2]
    rows = [tuple(int(i) for i in np.flatnonzero(rng.random(6) < shares)) for _ in range(2000)]
    train, val = iterative_split(rows, 0.2, seed=1)
    assert sorted(train + val) == list(range(2000)) and len(val) == 400
    for label in range(6):
        total = sum(label in r for r in rows)
        in_val = sum(label in rows[i] for i in val)
        assert abs(in_val - 0.2 * total) <= 1.5, (label, in_val, total)
    assert iterative_split(rows, 0.2, seed=1) == (train, val)


@pytest.mark.slow
def test_decoder_top_layer_only_and_sifting_train_multi_label(tiny_gpt2, tagged_files, tmp_path):
    train, val = tagged_files
    out = tmp_path / "gpt2"
    result = textclf.train(
        train, out, model=tiny_gpt2, validation=val, train_only_top_layer=True, sifting=True, **FAST, **QUIET
    )
    assert result.best["val_micro_f1"] is not None
    assert json.loads((out / "config.json").read_text())["problem_type"] == "multi_label_classification"
    clf = textclf.Classifier.load(out, dtype="float32")
    assert len(clf.predict("good food")[0].probabilities) == 3


@pytest.mark.slow
def test_an_interrupted_multi_label_run_with_sifting_resumes_to_the_uninterrupted_result(
    tiny_bert, tagged_files, tmp_path
):
    from test_checkpoint import TIMING, assert_same_run, interrupted_after

    train, val = tagged_files
    settings = {
        **FAST,
        "batch_size": 8,
        "epochs": 2,
        "sifting": True,
        "sifting_delay": 2,
        "checkpoint_every_steps": 20,
        "evaluations_per_epoch": 2,
    }
    output = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        textclf.train(train, output, model=tiny_bert, validation=val, hooks=interrupted_after(25), **QUIET, **settings)
    result = textclf.train(train, output, model=tiny_bert, validation=val, **QUIET, **settings)
    reference = textclf.train(train, tmp_path / "reference", model=tiny_bert, validation=val, **QUIET, **settings)
    untimed = [{k: v for k, v in r.best.items() if k not in TIMING} for r in (result, reference)]
    assert untimed[0] == untimed[1] and "thresholds" in result.best
    assert any(h["samples_kept"] < h["samples_seen"] for h in result.history)  # sifting left rows out
    assert_same_run(reference.output, result.output)


@pytest.mark.slow
def test_cli_trains_predicts_and_evaluates_a_multi_label_model(tiny_bert, tagged_files, tagged_artifact, tmp_path):
    from click.testing import CliRunner

    from textclf.cli import main

    train, val = tagged_files
    runner = CliRunner()
    flags = ["--epochs", "2", "--learning-rate", "3e-3", "--max-seq-length", "32", "--no-progress"]
    result = runner.invoke(
        main, ["train", "--data", str(train), "--model", str(tiny_bert), "--output", str(tmp_path / "m"), *flags]
    )
    assert result.exit_code == 0, result.output
    assert (
        "val_micro_f1" in result.output
        and "iteratively stratified"
        in json.loads((tmp_path / "m" / "textclf.json").read_text())["data"]["validation_source"]
    )

    result = runner.invoke(main, ["predict", "--model-dir", str(tagged_artifact), "--json", "the food and the phone"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout.splitlines()[-1])
    assert set(answer) == {"probabilities", "labels", "predicted_labels"} and answer["labels"] == [
        "food",
        "phone",
        "service",
    ]
    result = runner.invoke(main, ["predict", "--model-dir", str(tagged_artifact), "--threshold", "1", "a text"])
    assert result.exit_code == 0 and result.stdout.startswith("(none)\tfood=")
    result = runner.invoke(
        main, ["predict", "--model-dir", str(tagged_artifact), "--threshold", "1", "--at-least-one", "a text"]
    )
    assert result.stdout.split("\t")[0] in {"food", "phone", "service"}

    result = runner.invoke(main, ["evaluate", "--model-dir", str(tagged_artifact), "--data", str(val), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for key in ("micro_f1", "macro_f1", "micro_precision", "micro_recall", "subset_accuracy", "hamming_loss"):
        assert 0.0 <= report[key] <= 1.0, key
    assert report["task"] == "multi-label" and report["rows"] == 80
    assert set(report["per_label"]["food"]) == {"precision", "recall", "f1", "support", "threshold"}
    everything = runner.invoke(
        main, ["evaluate", "--model-dir", str(tagged_artifact), "--data", str(val), "--json", "--threshold", "0"]
    )
    assert json.loads(everything.stdout)["micro_recall"] == 1.0
    table = runner.invoke(main, ["evaluate", "--model-dir", str(tagged_artifact), "--data", str(val)])
    assert "micro F1" in table.stdout and "threshold" in table.stdout


def test_threshold_on_a_single_label_model_is_a_one_line_error(bert_artifact):
    from click.testing import CliRunner

    from textclf.cli import main

    result = CliRunner().invoke(main, ["predict", "--model-dir", str(bert_artifact), "--threshold", "0.3", "good"])
    assert result.exit_code == 2
    assert "error: --threshold and --at-least-one apply to multi-label models" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_int8_export_of_a_multi_label_model_counts_changed_label_sets(tagged_artifact, tagged_files, tmp_path):
    import shutil

    from textclf.export import export_model

    folder = tmp_path / "tagged"
    shutil.copytree(tagged_artifact, folder)
    report = export_model(folder, "onnx-int8", tagged_files[1], log=lambda _: None)
    v = report.validation
    assert v["metric"] == "micro_f1" and 0 <= v["changed_predictions"] <= v["rows"] == 80
    assert "predicted label sets changed" in report.render()
    torch_clf = textclf.Classifier.load(folder, backend="torch", dtype="float32")
    onnx_clf = textclf.Classifier.load(folder, backend="onnx-int8")
    texts = ["the food was fine", "phone and service"]
    assert onnx_clf.predict_proba(texts) == pytest.approx(torch_clf.predict_proba(texts), abs=0.05)
    assert onnx_clf.thresholds.tolist() == pytest.approx(torch_clf.thresholds.tolist())


@pytest.mark.slow
def test_tune_chooses_by_micro_f1_for_multi_label_data(tiny_bert, tagged_files, tmp_path):
    train, val = tagged_files
    result = textclf.tune(
        train,
        tmp_path / "study",
        model=tiny_bert,
        validation=val,
        search_space={"learning_rate": {"type": "float", "low": 1e-3, "high": 5e-3, "log": True}},
        max_trials=2,
        log=lambda _: None,
        **{**{k: v for k, v in FAST.items() if k != "learning_rate"}, "epochs": 2},
    )
    assert result.objective == "val_micro_f1" and 0.0 <= result.best_value <= 1.0
    with pytest.raises(textclf.ConfigError, match="objective val_accuracy does not apply to multi-label data"):
        textclf.tune(train, tmp_path / "other", model=tiny_bert, validation=val, objective="val_accuracy", max_trials=1)


def test_a_fresh_multi_label_head_starts_at_each_labels_share(tiny_bert, tiny_gpt2):
    import torch

    from textclf.data import LabelSet
    from textclf.models import load_for_training, resolve_model, set_label_priors

    labels = LabelSet(("a", "b", "c"), integer=False, multi_label=True)
    net, _, _ = load_for_training(resolve_model(str(tiny_bert)), labels)
    assert set_label_priors(net, [0.5, 0.1, 0.01])
    assert net.classifier.bias.tolist() == pytest.approx([0.0, np.log(0.1 / 0.9), np.log(0.01 / 0.99)], abs=1e-5)
    with torch.no_grad():
        scores = torch.sigmoid(net(input_ids=torch.tensor([[2, 5, 3]])).logits)[0]
    assert scores.tolist() == pytest.approx([0.5, 0.1, 0.01], abs=0.02)
    decoder, _, _ = load_for_training(resolve_model(str(tiny_gpt2)), labels)
    assert not set_label_priors(decoder, [0.5, 0.1, 0.01])  # GPT-2's score layer has no bias


def test_the_split_keeps_every_label_in_training_and_odd_json_labels_are_bad_rows(tmp_path):
    rows = [(), (0,), (0,), (0, 2, 3), (1, 2), (), ()]
    train, _ = iterative_split(rows, 0.3, 309)
    assert {label for i in train for label in rows[i]} == {0, 1, 2, 3}
    jsonl = tmp_path / "odd.jsonl"
    jsonl.write_text('{"text": "a", "labels": ["x"]}\n{"text": "b", "labels": {"y": 1}}\n')
    with pytest.raises(textclf.DataError, match=r"odd\.jsonl:2: 'labels' must be a label or a list of labels"):
        load_training_data(jsonl)
    csv_file = write_csv(tmp_path / "t.csv", [("a", "x"), ("a,b", "y"), ("b", "z")])
    notes = load_training_data(csv_file, validation_split_ratio=0).summary["notes"]
    assert notes[0].endswith(
        "t.csv:3: read as multi-label: this row's label 'a,b' holds ',' (pass --task "
        "single-label if labels may contain it)"
    )


@pytest.mark.slow
def test_thresholds_compare_as_chosen_and_a_bad_record_is_a_model_error(tagged_artifact, tmp_path):
    import shutil

    from textclf.artifact import update_metadata

    clf = textclf.Classifier.load(tagged_artifact, dtype="float32")
    clf.set_thresholds([0.35, 0.35, 0.35])
    at = np.float32(0.35)  # float32 scores against the thresholds as chosen (float64), not their float32 rounding
    assert clf.decide(np.array([[at, 0.3, 0.36]], dtype=np.float32)).tolist() == [[float(at) >= 0.35, False, True]]
    folder = tmp_path / "broken"
    shutil.copytree(tagged_artifact, folder)
    update_metadata(folder, thresholds=[0.3, 0.4, 0.5])
    with pytest.raises(textclf.ModelError, match="textclf.json: 'thresholds' must be"):
        textclf.Classifier.load(folder)
