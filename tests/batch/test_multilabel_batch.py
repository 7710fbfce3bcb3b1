"""textclf batch with a multi-label model: JSON lines and CSV shapes, thresholds, the manifest, --evaluate."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

import textclf
from test_cli_errors import assert_one_line_error
from textclf.batch import BatchOptions, run_batch
from textclf.cli import main
from textclf.data import read_examples
from textclf.metrics import binary_cross_entropy, multilabel_metrics, sigmoid

WORKDIR = ".textclf-batch"
LABELS = ["food", "phone", "service"]
TEXTS = ["the food was great", "phone food", "good", "sad phone, ugly and broken", "the service was poor"]


@pytest.fixture(scope="module")
def tagged(tagged_artifact):
    return textclf.Classifier.load(tagged_artifact, dtype="float32")


def batch(*args) -> Result:
    return CliRunner().invoke(main, ["batch", "--dtype", "float32", *map(str, args)])


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def manifest_result(output: Path) -> dict:
    return json.loads((output / WORKDIR / "manifest.json").read_text())["result"]


def write_texts(path: Path, texts=TEXTS) -> Path:
    path.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    return path


@pytest.mark.slow  # trains the multi-label model (tagged_artifact)
def test_the_texts_cover_none_one_and_several_labels(tagged):
    counts = {len(p.predicted_labels) for p in tagged.predict(TEXTS)}
    assert 0 in counts and 1 in counts and max(counts) >= 2


@pytest.mark.slow  # trains the multi-label model (tagged_artifact)
def test_json_lines_have_predicted_labels_probabilities_and_labels(tagged_artifact, tagged, tmp_path):
    source = tmp_path / "t.jsonl"
    source.write_text("".join(json.dumps({"id": f"r{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    result = batch(
        "--model-dir", tagged_artifact, "--input", source, "--output", tmp_path / "out", "--id-field", "id",
        "--join-source", "--chunk-size", 2,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    got = lines(tmp_path / "out" / "t.jsonl.out")
    assert [list(g) for g in got] == [["line", "id", "predicted_labels", "probabilities", "labels", "source"]] * 5
    assert [g["line"] for g in got] == [1, 2, 3, 4, 5] and [g["id"] for g in got] == [f"r{i}" for i in range(5)]
    for g, want in zip(got, tagged.predict(TEXTS)):
        assert g["predicted_labels"] == want.predicted_labels and g["labels"] == LABELS
        assert g["probabilities"] == pytest.approx(want.probabilities, abs=1e-5)
    assert got[0]["source"] == {"id": "r0", "text": TEXTS[0]}
    recorded = manifest_result(tmp_path / "out")
    chosen = json.loads((tagged_artifact / "textclf.json").read_text())["thresholds"]["thresholds"]
    assert recorded["task"] == "multi-label" and recorded["at_least_one"] is False
    assert recorded["thresholds"] == pytest.approx(chosen, abs=1e-6)


@pytest.mark.slow  # trains the multi-label model (tagged_artifact)
def test_csv_output_joins_the_predicted_labels_in_one_field(tagged_artifact, tagged, tmp_path):
    source = write_texts(tmp_path / "t.txt")
    result = batch(
        "--model-dir", tagged_artifact, "--input", source, "--output", tmp_path / "out", "--output-format", "csv"
    )
    assert result.exit_code == 0, result.output
    text = (tmp_path / "out" / "t.txt.out").read_text()
    rows = list(csv.reader(io.StringIO(text)))
    want = tagged.predict(TEXTS)
    assert [row[:2] for row in rows] == [[str(i + 1), ",".join(w.predicted_labels)] for i, w in enumerate(want)]
    assert np.allclose([[float(x) for x in row[2:]] for row in rows], tagged.predict_proba(TEXTS), atol=1e-5)
    several = next(i for i, w in enumerate(want) if len(w.predicted_labels) >= 2)
    assert text.splitlines()[several].startswith(f'{several + 1},"{",".join(want[several].predicted_labels)}",0')
    none = next(i for i, w in enumerate(want) if not w.predicted_labels)
    assert text.splitlines()[none].startswith(f"{none + 1},,0")


@pytest.mark.slow  # trains the multi-label model (tagged_artifact)
def test_threshold_and_at_least_one_decide_the_predicted_labels(tagged_artifact, tagged, tmp_path):
    source = write_texts(tmp_path / "t.txt")

    def predicted(name: str, *flags) -> list[list[str]]:
        result = batch("--model-dir", tagged_artifact, "--input", source, "--output", tmp_path / name, *flags)
        assert result.exit_code == 0, result.output
        return [g["predicted_labels"] for g in lines(tmp_path / name / "t.txt.out")]

    saturated = [  # a score of exactly 1.0 (float32 sigmoid of a large logit) is at the threshold 1.0
        [label for label, p in zip(LABELS, row) if p >= 1.0] for row in tagged.predict_proba(TEXTS)
    ]
    assert predicted("none", "--threshold", 1.0) == saturated
    assert manifest_result(tmp_path / "none")["thresholds"] == [1.0, 1.0, 1.0]
    assert predicted("all", "--threshold", 0.0) == [LABELS] * 5
    top = [[LABELS[int(i)]] for i in tagged.predict_proba(TEXTS).argmax(axis=1)]
    assert predicted("top", "--threshold", 1.0, "--at-least-one") == top
    assert manifest_result(tmp_path / "top")["at_least_one"] is True
    # the options are part of the job: the same folder with another threshold is another job
    again = batch("--model-dir", tagged_artifact, "--input", source, "--output", tmp_path / "none", "--threshold", 0.5)
    assert_one_line_error(again, "it was run with threshold=1.0, not 0.5")


@pytest.mark.slow  # trains the multi-label model (tagged_artifact)
def test_a_given_classifier_takes_the_options_rule_on_a_copy(tagged_artifact, tagged, tmp_path):
    source = write_texts(tmp_path / "t.txt")
    before = tagged.thresholds.copy()
    options = BatchOptions(dtype="float32", threshold=0.0)
    run_batch(tagged_artifact, source, tmp_path / "out", options, progress=False, log=lambda _: None, classifier=tagged)
    assert [g["predicted_labels"] for g in lines(tmp_path / "out" / "t.txt.out")] == [LABELS] * 5
    assert np.array_equal(tagged.thresholds, before) and tagged.at_least_one is False


@pytest.mark.slow  # trains the multi-label model (tagged_artifact)
def test_evaluate_gives_multi_label_metrics_summed_over_chunks(tagged_artifact, tagged, tagged_files, tmp_path):
    val = tagged_files[1]
    result = batch(
        "--model-dir", tagged_artifact, "--input", val, "--output", tmp_path / "out", "--evaluate", "--json",
        "--chunk-size", 7,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    examples = read_examples(val, multi_label=True)
    targets = tagged.labels.targets(tagged.labels.encode(examples))
    logits = tagged.logits(examples.texts)
    want = multilabel_metrics(targets, tagged.decide(sigmoid(logits)))
    assert (report["task"], report["rows"], report["skipped_rows"]) == ("multi-label", 80, 0)
    for key in ("micro_f1", "macro_f1", "micro_precision", "micro_recall", "subset_accuracy", "hamming_loss"):
        assert report[key] == pytest.approx(want[key], abs=1e-9), key
    assert report["micro_f1"] >= 0.8
    assert report["loss"] == pytest.approx(binary_cross_entropy(logits, targets), abs=1e-3)
    for name, row, t in zip(LABELS, want["per_label"], tagged.thresholds):
        assert report["per_label"][name] == pytest.approx({**row, "threshold": round(float(t), 4)})
    plain = CliRunner().invoke(main, ["evaluate", "--model-dir", str(tagged_artifact), "--data", str(val), "--json"])
    assert plain.exit_code == 0, plain.output
    same_as_evaluate = json.loads(plain.stdout)
    assert same_as_evaluate.pop("loss") == pytest.approx(report.pop("loss"), abs=1e-3)
    assert same_as_evaluate.pop("calibration")["ece"] >= 0  # evaluate's own; batch --evaluate has none
    assert report == same_as_evaluate
    table = batch(
        "--model-dir", tagged_artifact, "--input", val, "--output", tmp_path / "out", "--evaluate", "--chunk-size", 7
    )
    assert table.exit_code == 0 and "micro F1" in table.stdout and "Hamming loss" in table.stdout


@pytest.mark.slow  # trains the multi-label model (tagged_artifact)
def test_evaluate_reads_json_lists_and_skips_unknown_or_missing_labels(tagged_artifact, tagged, tmp_path):
    rows = [
        {"text": "phone food", "labels": ["phone", "food"]},
        {"text": "good", "labels": []},
        {"text": "the service was poor", "labels": "service"},
        {"text": "the food was great", "labels": ["food", "drinks"]},  # not the model's: skipped
        {"text": "nice"},  # no labels: skipped
        {"text": ""},  # unreadable: .errors
    ]
    source = tmp_path / "d.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = batch(
        "--model-dir", tagged_artifact, "--input", source, "--output", tmp_path / "out", "--evaluate", "--json"
    )
    assert result.exit_code == 3, result.output
    report = json.loads(result.stdout)
    assert (report["rows"], report["skipped_rows"]) == (3, 3)
    texts = ["phone food", "good", "the service was poor"]
    targets = np.array([[1, 1, 0], [0, 0, 0], [0, 0, 1]], dtype=np.float32)
    want = multilabel_metrics(targets, tagged.decide(tagged.predict_proba(texts)))
    assert report["subset_accuracy"] == pytest.approx(want["subset_accuracy"])
    assert report["micro_f1"] == pytest.approx(want["micro_f1"])


def test_a_threshold_for_a_single_label_model_is_refused_before_any_work(bert_artifact, tmp_path):
    source = write_texts(tmp_path / "t.txt")
    for flags in (["--threshold", "0.5"], ["--at-least-one"]):
        result = batch("--model-dir", bert_artifact, "--input", source, "--output", tmp_path / "out", *flags)
        assert_one_line_error(result, "--threshold and --at-least-one apply to multi-label models")
        assert not (tmp_path / "out").exists()
    out_of_range = batch("--model-dir", bert_artifact, "--input", source, "--output", tmp_path / "o", "--threshold", 2)
    assert out_of_range.exit_code == 2 and "2.0 is not in the range 0.0<=x<=1.0" in out_of_range.output


def test_single_label_output_and_evaluation_are_as_before(bert_artifact, tmp_path):
    """A single-label job writes predicted_label, records its task, and a JSON list label is an unknown one."""
    source = tmp_path / "d.jsonl"
    source.write_text('{"text": "great", "label": "positive"}\n{"text": "awful", "label": ["negative", "positive"]}\n')
    result = batch(
        "--model-dir", bert_artifact, "--input", source, "--output", tmp_path / "out", "--evaluate", "--json"
    )
    assert result.exit_code == 0, result.output
    assert (json.loads(result.stdout)["rows"], json.loads(result.stdout)["skipped_rows"]) == (1, 1)
    assert all(
        list(g) == ["line", "predicted_label", "probabilities", "labels"]
        for g in lines(tmp_path / "out" / "d.jsonl.out")
    )
    recorded = manifest_result(tmp_path / "out")
    assert recorded["task"] == "single-label" and "thresholds" not in recorded


def test_a_manifest_older_than_at_least_one_is_the_same_job():
    from textclf.batch._manifest import FORMAT_VERSION, difference

    options = {"threshold": None, "at_least_one": False}
    job = {"textclf": "0.1.0", "model": {"path": "m"}, "inputs": [], "options": options}
    old = {**job, "options": {}}
    assert difference({"format_version": FORMAT_VERSION, "job": old}, job) is None
    changed = {**job, "options": {"threshold": None, "at_least_one": True}}
    assert "at_least_one=False, not True" in difference({"format_version": FORMAT_VERSION, "job": old}, changed)
