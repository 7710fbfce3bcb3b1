"""The HTML report: its sections and figures hold what the model and the data hold (the confusion counts are
evaluate()'s, the mistakes are real mistakes, planted duplicates are found), it references nothing outside
itself, bad inputs are one-line errors, it renders in headless chromium, and it stays small on SST-2."""

from __future__ import annotations

import csv
import re
import shutil
import time
from html.parser import HTMLParser

import numpy as np
import pytest
from click.testing import CliRunner

import textclf
from conftest import CHROMIUM, FLAGS, SHARED_DATA, make_sentences, write_csv
from textclf.artifact import ModelFolder, read_metadata, update_metadata
from textclf.cli import main
from textclf.data import read_examples
from textclf.report import Rows, read_label_errors, report_for, training_report, write_report
from textclf.report._inputs import read_history
from textclf.report.duplicates import find_duplicates, normalise

FIGURES = ("fig-class-balance", "fig-lengths", "fig-loss", "fig-score", "fig-confusion")


# -- reading the page back ----------------------------------------------------------


class Page(HTMLParser):
    """The parts of a report the tests read: every element id, the svg ids, and each table's rows (the row's
    attributes and its cells' text) by the table's id."""

    def __init__(self, text: str):
        super().__init__()
        self.ids: set[str] = set()
        self.svgs: list[str] = []
        self.tables: dict[str, list[tuple[dict, list[str]]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "svg":
            self.svgs.append(attrs.get("id", ""))
        elif tag == "table" and attrs.get("id"):
            self._table = attrs["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append((attrs, []))
        elif tag == "td" and self._table:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.tables[self._table][-1][1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def rows(self, table: str) -> list[tuple[dict, list[str]]]:
        """The body rows of table ``table`` (its header row has no cells)."""
        return [(attrs, cells) for attrs, cells in self.tables[table] if cells]


def cells(page: Page, table: str, text: str) -> list[str]:
    """The cells of the one row of ``table`` that has a cell holding ``text``."""
    found = [c for _, c in page.rows(table) if any(text in cell for cell in c)]
    assert len(found) == 1, (table, text, page.rows(table))
    return found[0]


def invoke(*args) -> object:
    return CliRunner().invoke(main, ["report", *map(str, args)])


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


# -- a model folder whose data has planted duplicates ---------------------------------------------------------


def _flip(label: str) -> str:
    return "negative" if label == "positive" else "positive"


@pytest.fixture(scope="module")
def planted(bert_artifact, tmp_path_factory):
    """A copy of ``bert_artifact`` whose textclf.json names a training and a validation file with planted
    duplicates, and an evaluated file with leaks, a label conflict and flipped labels (the model's mistakes).

    Training (line = row + 2): lines 2..201 unique, line 202 an exact copy of line 2, line 203 a near-exact copy
    of line 3, line 204 line 4's text under the other label. Validation: lines 2..16 unique, line 17 an exact
    copy of training line 7, line 18 a near-exact copy of training line 8. Evaluated: lines 2..61 unique, every
    10th label flipped; line 62 an exact copy of training line 9, line 63 training line 10 under the other
    label."""
    seen, base = set(), []
    for label, text in make_sentences(400, 7):
        if normalise(text) not in seen:
            seen.add(normalise(text))
            base.append((label, text))
    train, val, evaluated = base[:200], base[200:215], base[215:275]
    assert len(evaluated) == 60
    root = tmp_path_factory.mktemp("planted")
    train_rows = [*train, train[0], (train[1][0], "  " + train[1][1].upper() + " !"), (_flip(train[2][0]), train[2][1])]
    val_rows = [*val, train[5], (train[6][0], train[6][1].capitalize() + ".")]
    flipped = [(_flip(label) if i % 10 == 0 else label, text) for i, (label, text) in enumerate(evaluated)]
    eval_rows = [*flipped, train[7], (_flip(train[8][0]), train[8][1])]
    files = {
        "train": write_csv(root / "train.csv", train_rows),
        "validation": write_csv(root / "val.csv", val_rows),
        "evaluated": write_csv(root / "test.csv", eval_rows),
    }
    folder = root / "model"
    shutil.copytree(bert_artifact, folder)
    data = read_metadata(folder)["data"]
    data.update(train_source=str(files["train"]), validation_source=str(files["validation"]))
    update_metadata(folder, data=data)
    return folder, files


@pytest.fixture(scope="module")
def planted_page(planted, tmp_path_factory) -> tuple[Page, str]:
    folder, files = planted
    out = tmp_path_factory.mktemp("page") / "report.html"
    result = invoke("--model-dir", folder, "--data", files["evaluated"], "--output", out, "--dtype", "float32")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    text = out.read_text(encoding="utf-8")
    return Page(text), text


# -- what the page holds ------------------------------------------------------------


def test_the_report_holds_every_section_and_figure(planted_page):
    page, _ = planted_page
    for section in ("overview", "data", "training", "evaluation", "calibration", "mistakes", "settings"):
        assert section in page.ids, section
    for figure in FIGURES:
        assert figure in page.svgs, figure
    # the folder is calibrated: the validation's diagrams (textclf.json) and the evaluated data's
    assert {"fig-reliability-eval-before", "fig-reliability-eval-after"} <= set(page.svgs)
    assert {"fig-reliability-val-before", "fig-reliability-val-after"} <= set(page.svgs)
    assert {row[0] for _, row in page.rows("hyperparameters")} >= {"epochs", "learning_rate", "max_seq_length"}
    assert {row[0] for _, row in page.rows("versions")} >= {"textclf", "torch", "transformers"}
    assert len(page.rows("epochs")) == 6  # FAST's epochs; the calibration line of metrics.jsonl is no epoch


def test_the_confusion_counts_are_evaluates(planted, planted_page):
    folder, files = planted
    page, text = planted_page
    expected = textclf.evaluate(textclf.Classifier.load(folder, dtype="float32"), files["evaluated"])
    cells_found = re.findall(r'data-true="(\d+)" data-predicted="(\d+)" data-count="(\d+)"', text)
    matrix = np.zeros((2, 2), dtype=int)
    for i, j, count in cells_found:
        matrix[int(i), int(j)] = int(count)
    assert len(cells_found) == 4
    assert matrix.tolist() == expected.metrics["confusion_matrix"]
    accuracy = f"accuracy {expected.metrics['accuracy']:.4f}"
    assert accuracy in text


def test_the_mistakes_are_real_and_the_surest_first(planted, planted_page):
    folder, files = planted
    page, _ = planted_page
    examples = read_examples(files["evaluated"])
    clf = textclf.Classifier.load(folder, dtype="float32")
    probs = clf.predict_proba(examples.texts)
    given = dict(zip(examples.lines, examples.labels))
    predicted = {line: clf.labels.names[int(p.argmax())] for line, p in zip(examples.lines, probs)}
    wrong = [line for line in examples.lines if given[line] != predicted[line]]
    assert len(wrong) >= 6  # the flipped labels
    rows = page.rows("mistakes-table")
    assert len(rows) == min(20, len(wrong))
    shown = [float(attrs["data-probability"]) for attrs, _ in rows]
    assert shown == sorted(shown, reverse=True)
    top = {line: float(p.max()) for line, p in zip(examples.lines, probs)}
    for _attrs, (line, text, true, pred, probability) in rows:
        line = int(line)
        assert line in wrong and true == given[line] and pred == predicted[line]
        assert float(probability) == pytest.approx(top[line], abs=1e-4)
        assert text == examples.texts[examples.lines.index(line)]


def test_planted_duplicates_leaks_and_a_label_conflict_are_found(planted_page):
    page, _ = planted_page
    summary = {row[0]: row for _, row in page.rows("duplicates-summary")}
    assert summary["training"][2:] == ["2", "1", "1"]  # exact extra copies, near-exact, groups with two labels
    assert summary["validation"][2:] == summary["test.csv"][2:] == ["0", "0", "0"]
    groups = {cells[1]: (attrs, cells) for attrs, cells in page.rows("duplicate-groups")}
    assert set(groups) == {"lines 2, 202", "lines 3, 203", "lines 4, 204"}
    assert groups["lines 2, 202"][0]["data-kind"] == "exact"
    assert groups["lines 3, 203"][0]["data-kind"] == "near-exact"
    conflict_attrs, conflict = groups["lines 4, 204"]
    assert conflict_attrs["class"] == "conflict" and conflict[0] == "exact (labels differ)"
    assert set(conflict[2].split(", ")) == {"negative", "positive"}
    leaks = {(cells[0], cells[1]): (attrs, cells) for attrs, cells in page.rows("leaks")}
    assert set(leaks) == {
        ("validation line 17", "training line 7"),
        ("validation line 18", "training line 8"),
        ("test.csv line 62", "training line 9"),
        ("test.csv line 63", "training line 10"),
    }
    assert leaks[("validation line 18", "training line 8")][0]["data-kind"] == "near-exact"
    assert leaks[("test.csv line 63", "training line 10")][1][2] == "exact (labels differ)"
    across = {(row[0], row[1]): row[2:] for _, row in page.rows("leaks-summary")}
    assert across[("validation", "training")] == ["1", "1", "0"]
    assert across[("test.csv", "training")] == ["2", "0", "1"]


def test_the_length_histogram_marks_max_seq_length(planted_page):
    page, text = planted_page
    assert "max_seq_length 32" in text
    assert re.search(r"203 training texts: median \d+ tokens", text)


def test_no_script_and_no_reference_outside_the_file(planted_page):
    _, text = planted_page
    assert "<script" not in text and "<link" not in text and "<img" not in text and "@import" not in text
    assert not re.search(r"""(?:src|href)\s*=\s*["'](?!#)""", text)
    assert "http://" not in text and "https://" not in text and "url(" not in text


def test_user_text_is_escaped(planted, tmp_path):
    folder, files = planted
    hostile = write_csv(tmp_path / "hostile.csv", [("positive", "great <script>alert(1)</script> & good")] * 3)
    data = read_metadata(folder)["data"]
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    update_metadata(copy, data={**data, "train_source": str(hostile)})
    text = (write_report(tmp_path / "r.html", report_for(copy))).read_text(encoding="utf-8")
    assert "<script" not in text
    assert "great &lt;script&gt;alert(1)&lt;/script&gt; &amp; good" in text


def test_without_data_the_report_shows_the_folder_and_asks_for_data(bert_artifact, tmp_path):
    out = tmp_path / "report.html"
    result = invoke("--model-dir", bert_artifact, "--output", out)
    assert result.exit_code == 0, result.output
    page = Page(out.read_text(encoding="utf-8"))
    assert {"fig-loss", "fig-score", "fig-class-balance", "fig-lengths"} <= set(page.svgs)
    assert "fig-confusion" not in page.svgs and "mistakes-table" not in page.tables
    assert "pass --data FILE" in out.read_text(encoding="utf-8")


def test_the_default_output_is_the_model_folders_report_html(bert_artifact, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(bert_artifact, folder)
    result = invoke("--model-dir", folder)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(folder / "report.html") and (folder / "report.html").is_file()


def test_a_moved_training_file_is_a_note_not_an_error(bert_artifact, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(bert_artifact, folder)
    data = read_metadata(folder)["data"]
    update_metadata(folder, data={**data, "train_source": str(tmp_path / "gone.csv")})
    text = write_report(tmp_path / "r.html", report_for(folder)).read_text(encoding="utf-8")
    assert "The training texts are not available" in text and "gone.csv" in text
    assert 'id="fig-class-balance"' in text  # from textclf.json's class counts


def test_a_multi_label_report_has_the_per_label_table_with_thresholds(tagged_artifact, tagged_files, tmp_path):
    _, val = tagged_files
    out = tmp_path / "report.html"
    result = invoke("--model-dir", tagged_artifact, "--data", val, "--output", out, "--dtype", "float32")
    assert result.exit_code == 0, result.output
    page = Page(out.read_text(encoding="utf-8"))
    clf = textclf.Classifier.load(tagged_artifact, dtype="float32")
    per_label = page.rows("per-class")
    assert [row[0] for _, row in per_label] == ["food", "phone", "service"]
    assert [row[-1] for _, row in per_label] == [f"{t:.2f}" for t in clf.thresholds]
    assert "fig-confusion" not in page.svgs
    examples = read_examples(val, multi_label=True)
    scores = clf.predict_proba(examples.texts)
    chosen = clf.decide(scores)
    rows = page.rows("mistakes-table")
    sure = [float(attrs["data-probability"]) for attrs, _ in rows]
    assert sure == sorted(sure, reverse=True)
    for _, (line, _text, label, given, predicted, score) in rows:
        row, column = examples.lines.index(int(line)), clf.labels.names.index(label)
        assert (given == "yes") == (label in examples.labels[row])
        assert (predicted == "yes") == bool(chosen[row, column]) and given != predicted
        assert float(score) == pytest.approx(float(scores[row, column]), abs=1e-4)


def test_label_errors_are_read_tolerantly_and_the_flagged_ones_shown(bert_artifact, tmp_path):
    errors = tmp_path / "errors.csv"
    with errors.open("w", encoding="utf-8-sig", newline="") as f:  # a BOM, other columns, another order
        writer = csv.writer(f)
        writer.writerow(["rank", "Line", "score", "flagged", "given_label", "suggested_label", "p_given", "text"])
        writer.writerow([1, 12, "0.97", 1, "positive", "negative", "0.03", "an awful <b>movie</b>"])
        writer.writerow([2, 40, "0.80", 1, "negative", "positive", "0.20", "lovely"])
        writer.writerow([3, 7, "0.10", 0, "negative", "negative", "0.90", "bad"])
    assert [r["line"] for r in read_label_errors(errors)] == ["12", "40", "7"]
    out = tmp_path / "report.html"
    result = invoke("--model-dir", bert_artifact, "--label-errors", errors, "--output", out)
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    rows = Page(text).rows("label-errors-table")
    assert [row for _, row in rows] == [
        ["12", "an awful <b>movie</b>", "positive", "negative", "0.97"],
        ["40", "lovely", "negative", "positive", "0.80"],
    ]
    assert "an awful &lt;b&gt;movie&lt;/b&gt;" in text and "2 of 3 ranked rows flagged" in text


def test_a_validation_split_is_rebuilt_as_training_split_it(bert_artifact, sentiment_files, tmp_path):
    from textclf.data import load_training_data

    train, _ = sentiment_files
    folder = tmp_path / "model"
    shutil.copytree(bert_artifact, folder)
    data = read_metadata(folder)["data"]
    update_metadata(folder, data={**data, "validation_source": f"0.2 stratified split of {train} (seed 0)"})
    inputs = report_for(folder)
    expected = load_training_data(train, validation_split_ratio=0.2, seed=0)
    (validation,) = inputs.others
    assert validation.texts == expected.val_texts and inputs.train.texts == expected.train_texts
    assert not set(validation.lines) & set(inputs.train.lines)
    assert any("split, rebuilt" in note for note in inputs.notes)


def test_training_dynamics_give_the_cartography_and_the_hardest_rows(bert_artifact, sentiment_files, tmp_path):
    train, _ = sentiment_files
    folder = tmp_path / "model"
    shutil.copytree(bert_artifact, folder)
    lines = np.asarray(read_examples(train).lines)
    confidence = np.full((3, len(lines)), 0.9, dtype=np.float32)
    confidence[:, 5] = [0.1, 0.05, 0.2]  # the row the model never believed
    confidence[:, 9] = [0.2, np.nan, 0.3]  # not trained on in epoch 2 (sifted out)
    confidence[:, 0] = np.nan  # never trained on: left out
    np.savez(folder / "training_dynamics.npz", line=lines, confidence=confidence, epoch=np.arange(1, 4))
    page = Page(write_report(tmp_path / "r.html", report_for(folder)).read_text(encoding="utf-8"))
    assert "fig-cartography" in page.svgs
    hardest = [row for _, row in page.rows("hard-rows")]
    assert [int(row[0]) for row in hardest[:2]] == [lines[5], lines[9]]
    assert hardest[0][1] == read_examples(train).texts[5] and hardest[1][2:] == ["0.250", "0.050"]
    assert str(lines[0]) not in {row[0] for row in hardest}


def test_training_report_writes_report_html_from_trainings_values(bert_artifact, sentiment_files, tmp_path):
    train_file, val_file = sentiment_files
    folder = tmp_path / ".reviews.tmp-0123abcd"  # as artifact.staging names the folder being written
    shutil.copytree(bert_artifact, folder)
    metadata, labels = read_metadata(folder), ModelFolder.read(folder).labels
    train, val = read_examples(train_file), read_examples(val_file)
    clf = textclf.Classifier.load(folder, dtype="float32")
    raw = clf.logits(val.texts) * metadata["calibration"]["temperature"]  # before calibration, as training has them
    path = training_report(
        folder,
        metadata,
        read_history(folder),
        labels,
        Rows("training", train.texts, labels.encode(train), train.lines),
        Rows("validation", val.texts, labels.encode(val), val.lines),
        raw,
    )
    assert path == folder / "report.html"
    text = path.read_text(encoding="utf-8")
    page = Page(text)
    assert "<title>reviews: textclf report</title>" in text
    assert set(FIGURES) <= set(page.svgs)
    expected = textclf.evaluate(clf, val_file).metrics["confusion_matrix"]
    found = re.findall(r'data-true="(\d+)" data-predicted="(\d+)" data-count="(\d+)"', text)
    assert [[int(c) for i, j, c in found if int(i) == r] for r in range(2)] == expected
    assert "fig-reliability-eval-before" not in page.svgs  # the validation's calibration is textclf.json's


# -- duplicates alone ----------------------------------------------------------------------------------------


def test_near_exact_means_the_same_after_case_punctuation_and_whitespace():
    assert normalise("  Great   FILM!! ") == normalise("great film") == "great film"
    assert normalise("don't") == normalise("don t")
    assert normalise("!") != normalise("?")  # punctuation alone stays itself
    found = find_duplicates([("a", ["x y", "X y.", "z", "z"], [0, 1, 0, 0]), ("b", ["Z", "w"], [1, 0])])
    assert [(g.kind, g.rows, g.conflict) for g in found.within["a"]] == [
        ("near-exact", [0, 1], True),
        ("exact", [2, 3], False),
    ]
    (overlap,) = found.across
    assert [(leak.kind, leak.row, leak.matches, leak.conflict) for leak in overlap.leaks] == [
        ("near-exact", 0, [2, 3], True)
    ]


@pytest.mark.skipif(not (SHARED_DATA / "bbc_news").is_dir(), reason="../shared/data/bbc_news is not here")
def test_the_bbc_news_leaks_between_train_and_test_are_found():
    """The counts the data's README measured: 60 extra exact copies in train, 2 in val; 16 val and 19 test texts
    also in train, 2 test texts also in val."""
    sets = []
    for name in ("train", "val", "test"):
        examples = read_examples(SHARED_DATA / "bbc_news" / f"{name}.csv", textclf.ReadOptions(label_column="category"))
        sets.append((name, examples.texts, examples.labels))
    found = find_duplicates(sets)
    assert (found.extra("train", "exact"), found.extra("val", "exact"), found.extra("test", "exact")) == (60, 2, 0)
    overlaps = {(o.later, o.earlier): o for o in found.across}
    assert overlaps[("val", "train")].count("exact") == 16
    assert overlaps[("test", "train")].count("exact") == 19
    assert overlaps[("test", "val")].count("exact") == 2
    assert not any(leak.conflict for o in found.across for leak in o.leaks)


# -- bad inputs ----------------------------------------------------------------------------------------------


def test_a_missing_model_folder_is_a_one_line_error(tmp_path):
    assert_one_line_error(invoke("--model-dir", tmp_path / "nope"), "model folder not found")


def test_label_errors_of_another_shape_are_a_one_line_error(bert_artifact, sentiment_files, tmp_path):
    train, _ = sentiment_files
    assert_one_line_error(
        invoke("--model-dir", bert_artifact, "--label-errors", train), "not a label-error CSV", "suggested_label"
    )
    assert_one_line_error(invoke("--model-dir", bert_artifact, "--label-errors", tmp_path / "none.csv"), "none.csv")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00line,text\x00")
    assert_one_line_error(invoke("--model-dir", bert_artifact, "--label-errors", binary), "not a label-error CSV")


def test_data_without_labels_is_a_one_line_error(bert_artifact, tmp_path):
    texts = tmp_path / "texts.csv"
    texts.write_text("text\nthe food was good\n", encoding="utf-8")
    assert_one_line_error(invoke("--model-dir", bert_artifact, "--data", texts), "texts.csv", "label")
    unknown = write_csv(tmp_path / "unknown.csv", [("neutral", "the food was fine")])
    assert_one_line_error(invoke("--model-dir", bert_artifact, "--data", unknown), "neutral")


# -- in a browser ------------------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium is not installed (`make test` installs it)")
def test_the_report_renders_in_chromium_with_no_console_error(planted, planted_page, tmp_path):
    from playwright.sync_api import sync_playwright

    _, text = planted_page
    path = tmp_path / "report.html"
    path.write_text(text, encoding="utf-8")
    messages = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page()
            page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
            page.on("request", lambda r: messages.append(f"request: {r.url}") if r.url != path.as_uri() else None)
            page.goto(path.as_uri())
            for figure in FIGURES:
                box = page.eval_on_selector(f"svg#{figure}", "e => e.getBoundingClientRect().toJSON()")
                assert box["width"] > 100 and box["height"] > 50, figure
            cells = page.eval_on_selector_all("#fig-confusion rect[data-count]", "es => es.length")
            assert cells == 4
            assert page.title() == "model: textclf report"
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert messages == []


# -- size and speed on SST-2 --------------------------------------------------------------------------------


@pytest.mark.skipif(not (SHARED_DATA / "sst2").is_dir(), reason="../shared/data/sst2 is not here")
def test_a_report_over_all_of_sst2_is_small_and_fast(bert_artifact, tmp_path):
    """The 67,349 SST-2 training sentences as the training data (the tiny model's labels, negative and positive),
    the 872 dev sentences evaluated: under 5 MB, in seconds."""
    names = {"0": "negative", "1": "positive"}
    files = {}
    for name in ("train", "dev"):
        with (SHARED_DATA / "sst2" / f"{name}.tsv").open(encoding="utf-8") as f:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
        files[name] = write_csv(tmp_path / f"{name}.csv", [(names[label], text) for text, label in rows])
    folder = tmp_path / "model"
    shutil.copytree(bert_artifact, folder)
    data = read_metadata(folder)["data"]
    update_metadata(folder, data={**data, "train_source": str(files["train"]), "validation_source": None})
    started = time.perf_counter()
    path = write_report(tmp_path / "report.html", report_for(folder, files["dev"], load_options={"dtype": "float32"}))
    seconds = time.perf_counter() - started
    size = path.stat().st_size
    print(f"SST-2 report: {size / 1e3:.0f} kB in {seconds:.1f} s")
    assert size < 5_000_000
    assert seconds < 60  # a few seconds on 2 cores: reading, tokenising and hashing 67k rows, no O(n^2)
    text = path.read_text(encoding="utf-8")
    assert "67,349 training texts" in text
    page = Page(text)
    assert len(page.rows("duplicate-groups")) == 20  # capped
    assert len(page.rows("mistakes-table")) == 20
