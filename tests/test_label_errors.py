"""``textclf find-label-errors``: flipped labels rank first, the CSV, resuming finished folds, the single-run
dynamics mode, and one-line errors for bad input (tiny BERT, a few hundred rows, 2-3 folds)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from conftest import FAST, make_sentences, make_tagged, write_csv
from textclf.cli import main
from textclf.config import Hyperparameters
from textclf.label_errors import COLUMNS, confident_learning, find_label_errors, stratified_folds

HP = {**FAST, "epochs": 10}  # the tiny model needs a few more passes on 160 training rows than FAST gives
FLAGS = [
    *("--epochs", "10", "--learning-rate", "3e-3", "--batch-size", "16"),
    *("--max-seq-length", "32", "--warmup-ratio", "0"),
]
ROWS, EVERY = 240, 10  # every 10th row's label flipped: 24 of 240


def invoke(*args) -> Result:
    return CliRunner().invoke(main, ["find-label-errors", *map(str, args)])


@pytest.fixture(scope="module")
def noisy(tmp_path_factory) -> tuple[Path, set[int]]:
    """A learnable two-class file with every 10th label flipped, and the flipped rows' file lines."""
    rows = make_sentences(ROWS, 5)
    flipped = set(range(3, ROWS, EVERY))
    flip = {"positive": "negative", "negative": "positive"}
    rows = [(flip[label] if i in flipped else label, text) for i, (label, text) in enumerate(rows)]
    path = write_csv(tmp_path_factory.mktemp("noisy") / "train.csv", rows)
    return path, {i + 2 for i in flipped}  # line 1 is the header


@pytest.fixture(scope="module")
def cross_fit(noisy, tiny_bert, tmp_path_factory) -> tuple[Result, Path]:
    """One CLI run with 3 folds: its result and the CSV."""
    data, _ = noisy
    output = tmp_path_factory.mktemp("found") / "errors.csv"
    result = invoke("--data", data, "--output", output, "--model", tiny_bert, "--folds", 3, "--no-progress", *FLAGS)
    assert result.exit_code == 0, result.output
    return result, output


def read_csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def mean_ranks(rows: list[dict], flipped: set[int]) -> tuple[float, float]:
    ranks = {int(row["line"]): int(row["rank"]) for row in rows}
    return (
        float(np.mean([ranks[line] for line in flipped])),
        float(np.mean([rank for line, rank in ranks.items() if line not in flipped])),
    )


def test_flipped_labels_rank_above_the_rest(cross_fit, noisy):
    _, output = cross_fit
    rows = read_csv(output)
    flipped_rank, other_rank = mean_ranks(rows, noisy[1])
    assert flipped_rank < 0.75 * other_rank, (flipped_rank, other_rank)
    top_half = {int(row["line"]) for row in rows[: ROWS // 2]}
    assert len(top_half & noisy[1]) >= 0.65 * len(noisy[1])  # chance: half of them


def test_csv_holds_every_row_in_rank_order(cross_fit, noisy):
    result, output = cross_fit
    with output.open(encoding="utf-8", newline="") as f:
        assert next(csv.reader(f)) == list(COLUMNS)
    rows = read_csv(output)
    assert [int(r["rank"]) for r in rows] == list(range(1, ROWS + 1))
    assert sorted(int(r["line"]) for r in rows) == list(range(2, ROWS + 2))
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    for r in rows:
        assert r["given_label"] in ("positive", "negative") and r["suggested_label"] != r["given_label"]
        dyn = float(r["dynamics_confidence"] or r["p_given"])  # combined: the mean of the two, where it has both
        assert abs(float(r["score"]) - (1 - (float(r["p_given"]) + dyn) / 2)) < 1e-5
        assert r["flagged"] in ("0", "1")
    # the fold runs' training dynamics: a row has none only where it fell in both runs' validation splits
    assert sum(r["dynamics_confidence"] != "" for r in rows) >= 0.9 * ROWS
    flagged = sum(r["flagged"] == "1" for r in rows)
    assert f"flagged {flagged} of {ROWS} rows" in result.stdout
    assert str(output) in result.stdout and f"1  {rows[0]['line']:>6}" in result.stdout


def test_a_rerun_reuses_the_finished_folds(cross_fit, noisy, tiny_bert):
    """One fold's scores gone (as if killed during it): the rerun trains that fold alone."""
    _, output = cross_fit
    work = output.with_name(output.name + ".folds")
    assert sorted(p.name for p in (work / "folds-3").iterdir()) == ["fold-1.npz", "fold-2.npz", "fold-3.npz"]
    (work / "folds-3" / "fold-2.npz").unlink()
    logged = []
    found = find_label_errors(
        noisy[0],
        output,
        model=tiny_bert,
        folds=3,
        hyperparameters=Hyperparameters(**HP),
        overwrite=True,
        progress=False,
        log=logged.append,
    )
    assert (found.trained, found.reused) == (1, 2)
    assert sum("reusing" in line for line in logged) == 2 and any(
        line.startswith("fold 2/3: trained") for line in logged
    )
    assert not (work / "folds-3" / "fold-2").exists()  # the fold's model folder is removed once scored
    assert len(read_csv(output)) == ROWS


def test_dynamics_mode_trains_once_and_ranks_flipped_rows_first(noisy, tiny_bert, tmp_path):
    logged = []
    output = tmp_path / "errors.csv"
    found = find_label_errors(
        noisy[0],
        output,
        model=tiny_bert,
        method="dynamics",
        hyperparameters=Hyperparameters(**HP),
        progress=False,
        log=logged.append,
    )
    assert (found.trained, found.folds) == (1, 0) and not np.isnan(found.dynamics).any()
    rows = read_csv(output)
    flipped_rank, other_rank = mean_ranks(rows, noisy[1])
    assert flipped_rank < 0.75 * other_rank, (flipped_rank, other_rank)
    for r in rows:  # flagged: doubted through training (mean confidence < 0.5) and another label above at the end
        never_learned = float(r["dynamics_confidence"]) < 0.5 and float(r["p_suggested"]) > float(r["p_given"])
        assert (r["flagged"] == "1") == never_learned, r
    # other settings in the same work folder: its scores are discarded, with one line saying why
    again = find_label_errors(
        noisy[0],
        output,
        model=tiny_bert,
        method="dynamics",
        hyperparameters=Hyperparameters(**{**HP, "epochs": 2}),
        overwrite=True,
        progress=False,
        log=logged.append,
    )
    assert again.trained == 1
    assert any("are of other hyperparameters; starting again" in line for line in logged)


def test_confident_learning_flags_a_row_whose_other_class_passes_its_threshold():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.8, 0.2]])
    # thresholds: class 0 mean(0.9, 0.6) = 0.75, class 1 mean(0.8, 0.2) = 0.5; row 1 reaches neither
    flagged, suggested = confident_learning(probs, np.array([0, 0, 1, 1]))
    assert flagged.tolist() == [False, False, False, True]
    assert suggested.tolist() == [1, 1, 0, 0]  # the flagged row's class over its threshold; else the other label


def test_stratified_folds_put_every_class_in_every_fold():
    given = np.array([0] * 17 + [1] * 9 + [2] * 5)
    fold = stratified_folds(given, 4, seed=0)
    assert all(set(fold[given == c]) == {0, 1, 2, 3} for c in range(3))
    sizes = np.bincount(fold)
    assert sizes.max() - sizes.min() <= 1
    assert (stratified_folds(given, 4, seed=0) == fold).all() and (stratified_folds(given, 4, seed=1) != fold).any()


# -- one-line errors, before any training ---------------------------------------------------------


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_a_file_without_labels(tmp_path):
    data = tmp_path / "texts.csv"
    data.write_text("text\ngreat phone\nawful food\n", encoding="utf-8")
    assert_one_line_error(invoke("--data", data, "--output", tmp_path / "e.csv"), "label")


def test_one_fold_is_refused(noisy, tmp_path):
    assert_one_line_error(
        invoke("--data", noisy[0], "--output", tmp_path / "e.csv", "--folds", 1), "folds must be at least 2", "got 1"
    )


def test_a_class_rarer_than_the_folds_is_scored_by_heads_that_have_it(tiny_bert, tmp_path):
    rows = [(("good", "bad")[i % 2], f"text {i}") for i in range(40)] + [("rare", f"odd {i}") for i in range(2)]
    logged: list[str] = []
    found = find_label_errors(
        write_csv(tmp_path / "d.csv", rows),
        tmp_path / "e.csv",
        model=tiny_bert,
        folds=3,
        hyperparameters=Hyperparameters(**{**HP, "epochs": 1}),
        progress=False,
        log=logged.append,
    )
    assert any(line.startswith("1 class(es) with fewer rows than the 3 folds: 'rare' (2)") for line in logged)
    assert found.probabilities.shape == (42, 3) and not np.isnan(found.probabilities).any()  # every run: 3 classes
    assert {row["given_label"] for row in read_csv(tmp_path / "e.csv")} == {"good", "bad", "rare"}


def test_a_model_folder_of_another_label_set(bert_artifact, tmp_path):
    rows = [("spam" if i % 2 else "ham", f"text {i}") for i in range(20)]
    data = write_csv(tmp_path / "d.csv", rows)
    assert_one_line_error(
        invoke("--data", data, "--output", tmp_path / "e.csv", "--model", bert_artifact),
        "negative, positive",
        "ham, spam",
        "--reinitialize-top-layer true",
    )


def test_an_existing_or_unwritable_output(noisy, tmp_path):
    existing = tmp_path / "e.csv"
    existing.write_text("keep me\n")
    assert_one_line_error(invoke("--data", noisy[0], "--output", existing), "already exists", "--overwrite")
    assert existing.read_text() == "keep me\n"
    assert_one_line_error(invoke("--data", noisy[0], "--output", tmp_path / "missing" / "e.csv"), "no such folder")


def test_a_multi_label_file_is_not_supported_yet(tmp_path):
    data = write_csv(tmp_path / "tagged.csv", make_tagged(40))
    assert_one_line_error(invoke("--data", data, "--output", tmp_path / "e.csv"), "single-label files only")
