"""Calibration: the temperature fit, its figures, and the calibrated model in every path that outputs probabilities."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import load_file

import textclf
from conftest import FAST
from textclf import calibration
from textclf.cli import main
from textclf.metrics import calibration_metrics, reliability, softmax

QUIET = {"progress": False, "log": lambda _: None}


# -- the fit and the figures (numpy) --------------------------------------------------------------


def overconfident(rows: int, classes: int, temperature: float, seed: int = 0):
    """Logits whose labels are drawn from softmax(logits / temperature): the right temperature is known."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.5, size=(rows, classes))
    probs = softmax(logits / temperature)
    labels = np.array([rng.choice(classes, p=p) for p in probs])
    return logits, labels


@pytest.mark.parametrize("true_t", [0.6, 1.0, 2.5])
def test_fit_finds_the_temperature_the_labels_were_drawn_with(true_t):
    logits, labels = overconfident(20_000, 4, true_t)
    record = calibration.calibrate(logits, labels)
    assert record["temperature"] == pytest.approx(true_t, rel=0.06)
    assert record["after"]["nll"] <= record["before"]["nll"] + 1e-12
    if true_t != 1.0:  # calibrated: the ECE falls to sampling noise
        assert record["after"]["ece"] < 0.02 < record["before"]["ece"]


def test_multi_label_gets_a_temperature_a_label_and_rare_labels_share_one():
    rng = np.random.default_rng(1)
    logits = rng.normal(-1, 2.0, size=(20_000, 3))
    scale = np.array([0.5, 2.0, 3.0])
    targets = (rng.random(logits.shape) < 1 / (1 + np.exp(-logits / scale))).astype(np.float32)
    targets[:, 2] = 0
    targets[:3, 2] = 1  # three positives: too few for a temperature of its own
    record = calibration.calibrate(logits, targets)
    assert record["per_label"] == [True, True, False]
    assert record["temperatures"][:2] == pytest.approx([0.5, 2.0], rel=0.06)
    assert record["temperatures"][2] == record["temperature"]
    assert record["after"]["nll"] < record["before"]["nll"]


def test_a_validation_set_without_a_mistake_stays_within_the_bounds():
    logits = np.array([[3.0, -3.0], [-3.0, 3.0]] * 20)
    t = calibration.fit(logits, np.array([0, 1] * 20))["temperature"]
    assert t == pytest.approx(calibration.T_RANGE[0], rel=1e-6)  # it falls towards sharper and stops at the bound


def test_ece_nll_and_brier_are_the_textbook_ones():
    logits = np.log(np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]))
    labels = np.array([0, 1, 1, 0])
    m = calibration_metrics(logits, labels)
    # top probabilities 0.9, 0.8, 0.7, 0.6 in four bins; right, wrong, right, right
    assert m["ece"] == pytest.approx((0.1 + 0.8 + 0.3 + 0.4) / 4)
    assert m["nll"] == pytest.approx(-np.mean(np.log([0.9, 0.2, 0.7, 0.6])))
    assert m["brier"] == pytest.approx(np.mean([2 * 0.1**2, 2 * 0.8**2, 2 * 0.3**2, 2 * 0.4**2]))
    assert sum(b["count"] for b in m["reliability"]) == 4 and len(m["reliability"]) == 15
    edge = reliability(np.array([0.0, 1 / 15, 1.0]), np.array([0, 1, 1]))["bins"]
    assert edge[0]["count"] == 2 and edge[-1]["count"] == 1  # 1/15 closes the first bin


def test_moved_thresholds_keep_every_multi_label_decision():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 3, size=(5_000, 4))
    thresholds, temperatures = [0.2, 0.5, 0.73, 0.9], np.array([0.7, 1.0, 1.8, 3.0])
    before = 1 / (1 + np.exp(-logits)) >= thresholds
    after = 1 / (1 + np.exp(-logits / temperatures)) >= calibration.map_thresholds(thresholds, temperatures)
    assert (before == after).all()


# -- a calibrated model folder -------------------------------------------------------------------


def test_the_temperature_is_folded_into_the_output_layer_and_nothing_else(bert_artifact, bert_uncalibrated):
    meta = json.loads((bert_artifact / "textclf.json").read_text())
    record, t = meta["calibration"], meta["calibration"]["temperature"]
    assert (
        record["on"] == "validation" and record["rows"] == 60 and calibration.T_RANGE[0] <= t <= calibration.T_RANGE[1]
    )
    for when in ("before", "after"):
        assert set(record[when]) == {"ece", "nll", "brier", "reliability"}
    assert record["after"]["nll"] <= record["before"]["nll"]
    assert json.loads((bert_uncalibrated / "textclf.json").read_text())["calibration"] is None
    calibrated, raw = load_file(bert_artifact / "model.safetensors"), load_file(bert_uncalibrated / "model.safetensors")
    head = {"classifier.weight", "classifier.bias"}
    assert all(np.array_equal(calibrated[k], raw[k]) for k in raw.keys() - head)
    for k in head:
        np.testing.assert_allclose(calibrated[k], raw[k] / t, rtol=1e-6)


def test_probabilities_are_the_raw_ones_at_the_temperature_and_no_prediction_changes(
    bert_artifact, bert_uncalibrated, sentiment_files
):
    texts = textclf.data.read_examples(sentiment_files[1]).texts
    t = json.loads((bert_artifact / "textclf.json").read_text())["calibration"]["temperature"]
    raw = textclf.Classifier.load(bert_uncalibrated, backend="torch", dtype="float32")
    clf = textclf.Classifier.load(bert_artifact, backend="torch", dtype="float32")
    expected = softmax(raw.logits(texts) / t)
    np.testing.assert_allclose(clf.predict_proba(texts), expected, atol=1e-5)
    assert [p.predicted_label for p in clf.predict(texts)] == [p.predicted_label for p in raw.predict(texts)]
    assert clf.temperatures.tolist() == [t] and raw.temperatures.tolist() == [1.0]

    new, old = textclf.evaluate(clf, sentiment_files[1]), textclf.evaluate(raw, sentiment_files[1])
    assert new.metrics["accuracy"] == old.metrics["accuracy"]
    assert new.metrics["confusion_matrix"] == old.metrics["confusion_matrix"]
    assert new.calibration["before"]["ece"] == pytest.approx(old.calibration["ece"], abs=1e-6)
    assert old.calibration["before"] is None and old.calibration["temperature"] is None
    assert new.calibration["temperature"] == t


def test_evaluate_prints_the_calibration_figures_in_table_and_json(bert_artifact, bert_uncalibrated, sentiment_files):
    runner = CliRunner()
    table = runner.invoke(main, ["evaluate", "--model-dir", str(bert_artifact), "--data", str(sentiment_files[1])])
    assert table.exit_code == 0, table.output
    line = next(x for x in table.stdout.splitlines() if x.startswith("calibration"))
    assert "ECE" in line and "(before" in line and "temperature" in line
    out = runner.invoke(
        main, ["evaluate", "--model-dir", str(bert_uncalibrated), "--data", str(sentiment_files[1]), "--json"]
    )
    figures = json.loads(out.stdout)["calibration"]
    assert set(figures) == {"ece", "nll", "brier", "temperature", "before"} and figures["before"] is None
    assert figures["nll"] == pytest.approx(json.loads(out.stdout)["loss"])


def test_a_folder_older_than_calibration_loads_as_before(bert_uncalibrated, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(bert_uncalibrated, old)
    meta = json.loads((old / "textclf.json").read_text())
    del meta["calibration"]
    (old / "textclf.json").write_text(json.dumps(meta))
    text = ["good great fine"]
    assert textclf.Classifier.load(old).predict(text) == textclf.Classifier.load(bert_uncalibrated).predict(text)
    meta["calibration"] = {"temperature": -1}
    (old / "textclf.json").write_text(json.dumps(meta))
    with pytest.raises(textclf.ModelError, match="temperature that is not positive"):
        textclf.Classifier.load(old)


def test_too_little_validation_data_is_not_calibrated_and_says_so(tiny_bert, sentiment_files, tmp_path):
    from conftest import make_sentences, write_csv

    val = write_csv(tmp_path / "val.csv", make_sentences(calibration.MIN_ROWS - 1, 5))
    logs: list[str] = []
    out = tmp_path / "few"
    textclf.train(sentiment_files[0], out, model=tiny_bert, validation=val, progress=False, log=logs.append, **FAST)
    assert json.loads((out / "textclf.json").read_text())["calibration"] is None
    assert any(line.startswith("not calibrated: 19 validation rows") for line in logs)
    assert all("calibration" not in json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines())


def test_train_command_takes_no_calibration(tiny_bert, sentiment_files, tmp_path):
    out = tmp_path / "cli"
    args = ["train", "--data", str(sentiment_files[0]), "--validation", str(sentiment_files[1]), "--model"]
    args += [str(tiny_bert), "--output", str(out), "--no-calibration", "--no-progress", "--epochs", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "textclf.json").read_text())["calibration"] is None
