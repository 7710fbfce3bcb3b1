"""Classifier, evaluate and the predict/evaluate commands."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

import textclf
from textclf.cli import main
from textclf.errors import DataError, ModelError


def test_classifier_matches_the_model_and_keeps_input_order(bert_artifact):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    texts = ["the food was great", "it was really very bad and the service was poor and ugly", "nice", "sad phone"]
    clf = textclf.Classifier.load(bert_artifact, batch_size=2, dtype="float32")
    probs = clf.predict_proba(texts)
    model = AutoModelForSequenceClassification.from_pretrained(bert_artifact).eval()
    tokenizer = AutoTokenizer.from_pretrained(bert_artifact)
    with torch.inference_mode():
        for text, row in zip(texts, probs):  # one at a time: no padding at all
            expected = model(**tokenizer(text, return_tensors="pt")).logits.softmax(-1)[0].numpy()
            assert row == pytest.approx(expected, abs=1e-5)


def test_predictions_have_the_jumpstart_verbose_shape(bert_artifact):
    clf = textclf.Classifier.load(bert_artifact, dtype="float32")
    pos, neg = clf.predict(["the movie was excellent", "the movie was terrible"])
    assert pos.to_dict().keys() == {"probabilities", "labels", "predicted_label"}
    assert (pos.predicted_label, neg.predicted_label) == ("positive", "negative")
    assert pos.labels == ["negative", "positive"] and sum(pos.probabilities) == pytest.approx(1, abs=1e-5)
    assert clf.predict("lovely")[0].predicted_label == "positive"  # a single string works too


def test_empty_text_is_rejected(bert_artifact):
    with pytest.raises(DataError, match="text 2 is empty"):
        textclf.Classifier.load(bert_artifact).predict(["fine", "  "])


def test_a_folder_without_a_classification_head_is_refused(tiny_bert):
    with pytest.raises(ModelError, match="not a text-classification model"):
        textclf.Classifier.load(tiny_bert)


def test_evaluate_with_no_known_label_is_a_data_error(bert_artifact, tmp_path):
    data = tmp_path / "other.csv"
    data.write_text("label,text\ncat,the food was great\ndog,bad phone\n", encoding="utf-8")
    with pytest.raises(DataError, match="no usable rows"):
        textclf.evaluate(bert_artifact, data, textclf.ReadOptions(on_bad_rows="skip"))


def test_evaluate_reports_all_metrics(bert_artifact, sentiment_files):
    report = textclf.evaluate(bert_artifact, sentiment_files[1]).to_dict()
    assert report["rows"] == 60 and report["accuracy"] >= 0.9
    assert set(report["per_class"]) == {"negative", "positive"}
    assert sum(map(sum, report["confusion_matrix"])) == 60
    assert {"f1_macro", "mcc", "loss"} <= report.keys()


def test_evaluate_command_table_and_json(bert_artifact, sentiment_files):
    runner = CliRunner()
    table = runner.invoke(main, ["evaluate", "--model-dir", str(bert_artifact), "--data", str(sentiment_files[1])])
    assert table.exit_code == 0, table.output
    assert "accuracy" in table.output and "confusion matrix" in table.output and "positive" in table.output
    js = runner.invoke(
        main, ["evaluate", "--model-dir", str(bert_artifact), "--data", str(sentiment_files[1]), "--json"]
    )
    assert json.loads(js.stdout)["rows"] == 60


def test_predict_command_arguments_and_input_file(bert_artifact, tmp_path):
    runner = CliRunner()
    out = runner.invoke(
        main, ["predict", "--model-dir", str(bert_artifact), "--json", "the food was great", "awful phone"]
    )
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["predicted_label"] for r in rows] == ["positive", "negative"]
    lines = tmp_path / "texts.txt"
    lines.write_text("a lovely movie\n\nthe service was horrible\n", encoding="utf-8")
    out = runner.invoke(main, ["predict", "--model-dir", str(bert_artifact), "--input", str(lines)])
    assert out.exit_code == 0, out.output
    assert [line.split("\t")[0] for line in out.stdout.splitlines()] == ["positive", "negative"]


def test_public_api_is_pinned():
    assert sorted(textclf.__all__) == sorted(
        [
            "ArtifactError",
            "Classifier",
            "ConfigError",
            "DataError",
            "EvaluationReport",
            "Hyperparameters",
            "ModelError",
            "MultiLabelPrediction",
            "Prediction",
            "ReadOptions",
            "RunOptions",
            "TextclfError",
            "TrainResult",
            "TuneResult",
            "__version__",
            "evaluate",
            "train",
            "tune",
        ]
    )


def test_bfloat16_is_close_to_float32_and_bad_dtypes_are_refused(bert_artifact):
    from textclf.errors import ConfigError

    texts = ["the food was great", "it was really very bad and the service was poor and ugly", "nice", "sad phone"]
    exact = textclf.Classifier.load(bert_artifact, dtype="float32").predict_proba(texts)
    fast = textclf.Classifier.load(bert_artifact, dtype="bfloat16").predict_proba(texts)
    assert fast == pytest.approx(exact, abs=2e-2) and not (fast == exact).all()  # close, and really bf16
    expected = "dtype must be one of 'auto', 'float32', 'bfloat16', but got dtype='float16'"
    with pytest.raises(ConfigError, match=expected):
        textclf.Classifier.load(bert_artifact, dtype="float16")


def test_inference_batches_split_where_lengths_jump_and_cover_every_row():
    from textclf.batching import eval_batches

    lengths = [5, 50, 6, 51, 5, 52, 7, 49] * 4
    batches = list(eval_batches(lengths, batch_size=64, call_cost=64))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert len(batches) == 2 and {lengths[i] > 40 for i in batches[0]} == {True}  # long ones first, apart
    uniform = list(eval_batches([10] * 100, batch_size=32))
    assert len(uniform) == 4 and max(len(b) for b in uniform) == 32  # as few calls as fit
    assert [len(b) for b in eval_batches([3, 9, 4], batch_size=64, call_cost=1e9)] == [3]  # costly calls: one batch


# -- the model folder, read once ------------------------------------------------


def test_a_model_folder_is_read_once_into_one_object(bert_artifact):
    from textclf.artifact import ModelFolder

    folder = ModelFolder.read(bert_artifact)
    assert ModelFolder.read(folder) is folder  # a folder already read is not read again
    assert folder.labels.names == ("negative", "positive") and not folder.labels.integer
    assert (folder.max_seq_length, folder.is_classifier, folder.exports) == (32, True, {})
    assert folder.model_type == "bert" and folder.tokenizer_file.is_file()
    clf = textclf.Classifier.load(folder, dtype="float32")
    assert clf.labels == folder.labels and clf.encoder.max_length == 32


def test_labels_of_a_config_without_id2label_are_transformers_defaults(tmp_path):
    from transformers import AutoConfig, BertConfig

    from textclf.artifact import ModelFolder

    BertConfig(num_labels=2).save_pretrained(tmp_path)  # the default two labels are not written
    assert "id2label" not in json.loads((tmp_path / "config.json").read_text())
    assert ModelFolder.read(tmp_path).labels.id2label == AutoConfig.from_pretrained(tmp_path).id2label


@pytest.mark.parametrize(
    "files, expected",
    [
        ({}, "not a model folder (no textclf.json or config.json)"),
        ({"config.json": "{not json"}, "cannot read the model's config.json"),
        ({"textclf.json": "{}"}, "cannot read the model's config.json"),
        ({"textclf.json": "[oops"}, "corrupt metadata"),
        ({"config.json": '{"id2label": {"0": "a", "2": "c"}}'}, "cannot read the labels (id2label)"),
    ],
    ids=["empty", "corrupt-config", "no-config", "corrupt-metadata", "gap-in-labels"],
)
def test_a_bad_model_folder_is_a_one_line_error(tmp_path, files, expected):
    from textclf.artifact import ModelFolder
    from textclf.errors import TextclfError

    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(TextclfError) as info:
        len(ModelFolder.read(tmp_path).labels)  # the labels are read on first use
    assert expected in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(TextclfError, match="model folder not found"):
        ModelFolder.read(tmp_path / "nowhere")


def test_auto_picks_the_fastest_verified_export_and_its_recorded_tokenizer_settings(tmp_path):
    from textclf.artifact import ModelFolder, TokenizerSettings
    from textclf.backends import Choice, choose

    runtime = {"max_seq_length": 16, "pad_token_id": 3, "padding_side": "left", "truncation_side": "left"}
    exports = {"onnx": {"runtime": runtime}, "onnx-int8": {"forced": True, "runtime": runtime}}
    (tmp_path / "config.json").write_text('{"id2label": {"0": "a", "1": "b"}}')
    (tmp_path / "textclf.json").write_text(json.dumps({"exports": exports, "label_type": "str"}))
    folder = ModelFolder.read(tmp_path)
    assert choose("auto", folder).backend == "onnx" and choose("onnx-int8", folder).backend == "onnx-int8"
    assert folder.export_settings("onnx") == TokenizerSettings(16, 3, "left", "left")
    assert folder.export_settings("onnx").pad_left and folder.export_settings("onnx").to_dict() == runtime
    (tmp_path / "textclf.json").write_text("{}")
    assert choose("auto", ModelFolder.read(tmp_path)) == Choice("torch", "auto: no export in the folder")
