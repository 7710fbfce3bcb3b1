"""textclf batch: every input format, resume after a kill, bad records, shards, options, usage errors."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result

import textclf
from conftest import make_sentences, write_csv
from test_cli_errors import assert_one_line_error
from textclf.backends import threads_per_worker
from textclf.batch import BatchOptions, run_batch
from textclf.cli import main

WORKDIR = ".textclf-batch"


@pytest.fixture(scope="module")
def clf(bert_artifact):
    return textclf.Classifier.load(bert_artifact, dtype="float32")


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def write_rows(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_csv(path, rows)


def batch(*args: str) -> Result:
    """``textclf batch ARGS``, in float32 unless asked otherwise: these tests compare exact bytes."""
    exact = () if "--dtype" in args else ("--dtype", "float32")
    return CliRunner().invoke(main, ["batch", *exact, *map(str, args)])


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def outputs(folder: Path) -> dict[str, bytes]:
    """Every file the job left outside its working folder, by relative name."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and WORKDIR not in p.parts
    }


def quiet_run(clf, model_dir: Path, source: Path | str, output: Path, **options) -> textclf.batch.BatchResult:
    return run_batch(
        model_dir,
        source,
        output,
        BatchOptions(**{"dtype": "float32", **options}),
        progress=False,
        log=lambda _: None,
        classifier=clf,
    )


# -- formats ------------------------------------------------------------------

FORMAT_FILES = {
    "plain.txt": (
        "the food was great\n\n  awful phone  \r\nnice\n",
        [(1, "the food was great"), (3, "awful phone"), (4, "nice")],
    ),
    "header.csv": (
        'id,review,label\n1,lovely movie,positive\n2,"bad, really bad",negative\n',
        [(2, "lovely movie"), (3, "bad, really bad")],
    ),
    "pairs.csv": (
        'positive,nice phone\nnegative,"multi\nline bad"\n\npositive,great\n',
        [(1, "nice phone"), (2, "multi\nline bad"), (5, "great")],
    ),
    "one-column.csv": ('"good, very good"\nbad\n', [(1, "good, very good"), (2, "bad")]),
    "data.tsv": ("sentence\tlabel\ngood food\tpositive\nsad\tnegative\n", [(2, "good food"), (3, "sad")]),
    "rows.jsonl": (
        '{"Text": "superb", "label": "positive"}\n\n{"label": "negative", "Text": "ugly food"}\n',
        [(1, "superb"), (3, "ugly food")],
    ),
    "sub/nested.txt": ("\ufeffpoor service\n", [(1, "poor service")]),
}


def test_every_input_format_scores_each_record_once_in_input_order(bert_artifact, clf, tmp_path):
    for name, (content, _) in FORMAT_FILES.items():
        write(tmp_path / "in" / name, content)
    result = batch(
        "--model-dir", bert_artifact, "--input", tmp_path / "in", "--output", tmp_path / "out", "--chunk-size", 2
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == f"{tmp_path / 'out'}: 15 records scored in 7 file(s).\n"
    assert sorted(outputs(tmp_path / "out")) == sorted(f"{name}.out" for name in FORMAT_FILES)
    for name, (_, expected) in FORMAT_FILES.items():
        got = lines(tmp_path / "out" / f"{name}.out")
        texts = [text for _, text in expected]
        assert [g["line"] for g in got] == [line for line, _ in expected], name
        for g, want in zip(got, clf.predict(texts)):
            assert g.keys() == {"line", "predicted_label", "probabilities", "labels"}
            assert (g["predicted_label"], g["labels"]) == (want.predicted_label, want.labels)
            assert g["probabilities"] == pytest.approx(want.probabilities, abs=1e-5)
    assert sorted(os.listdir(tmp_path / "out" / WORKDIR)) == ["lock", "manifest.json"]  # the parts are gone


def test_jumpstart_text_csv_has_no_header_and_glob_input(bert_artifact, tmp_path):
    """text/csv as JumpStart sends it: no header, so a first record named like a column is a text."""
    write(tmp_path / "in" / "a.csv", 'text\n"good, very good"\n"two\nlines"\n')
    write(tmp_path / "in" / "b.csv", "bad\n")
    write(tmp_path / "in" / "skip.txt", "not matched by the glob\n")
    result = batch(
        "--model-dir",
        bert_artifact,
        "--input",
        f"{tmp_path}/in/*.csv",
        "--output",
        tmp_path / "out",
        "--format",
        "text-csv",
        "--progress",
    )
    assert result.exit_code == 0, result.output
    assert sorted(outputs(tmp_path / "out")) == ["a.csv.out", "b.csv.out"]
    assert [g["line"] for g in lines(tmp_path / "out" / "a.csv.out")] == [1, 2, 3]
    auto = batch("--model-dir", bert_artifact, "--input", tmp_path / "in" / "a.csv", "--output", tmp_path / "auto")
    assert auto.exit_code == 0, auto.output
    assert [g["line"] for g in lines(tmp_path / "auto" / "a.csv.out")] == [2, 3]  # auto: "text" is a header


def test_columns_by_index_without_a_header_and_id_column(bert_artifact, tmp_path):
    write(tmp_path / "cola.tsv", "src1\t1\t\tthe food was great\nsrc2\t0\t*\tawful phone\n")
    result = batch(
        "--model-dir",
        bert_artifact,
        "--input",
        tmp_path / "cola.tsv",
        "--output",
        tmp_path / "out",
        "--text-column",
        3,
        "--id-column",
        0,
    )
    assert result.exit_code == 0, result.output
    got = lines(tmp_path / "out" / "cola.tsv.out")
    assert [(g["line"], g["id"], g["predicted_label"]) for g in got] == [
        (1, "src1", "positive"),
        (2, "src2", "negative"),
    ]


# -- bad records --------------------------------------------------------------


def test_unreadable_records_go_to_errors_with_line_and_reason_and_exit_code_3(bert_artifact, tmp_path):
    write(
        tmp_path / "in" / "t.csv",
        b'text,label\nfine,positive\n,negative\ncaf\xe9,positive\na,b,c\n"open"x,positive\nnice,negative\n',
    )
    write(
        tmp_path / "in" / "j.jsonl",
        '{"text": "good"}\n{"text": \n[1]\n{"label": 1}\n{"text": 5}\n{"text": "  "}\n{"text": "bad"}\n',
    )
    write(tmp_path / "in" / "p.txt", b"ok\nnot \xff ok\n")
    result = batch(
        "--model-dir", bert_artifact, "--input", tmp_path / "in", "--output", tmp_path / "out", "--chunk-size", 2
    )
    assert result.exit_code == 3, result.output
    assert "5 records scored" in result.stderr and "10 records could not be read" in result.stderr
    errors = {
        name: [(e["line"], e["error"]) for e in lines(tmp_path / "out" / f"{name}.errors")]
        for name in ("t.csv", "j.jsonl", "p.txt")
    }
    assert [line for line, _ in errors["t.csv"]] == [3, 4, 5, 6]
    assert [why.split(";")[0].split(" (")[0] for _, why in errors["t.csv"]] == [
        "empty text",
        "bytes that are not valid utf-8",
        "expected 2 columns like the header, found 3",
        "malformed CSV",
    ]
    assert [line for line, _ in errors["j.jsonl"]] == [2, 3, 4, 5, 6]
    assert [why.split(" (")[0].split(";")[0] for _, why in errors["j.jsonl"]] == [
        "not valid JSON",
        "expected a JSON object, found list",
        "missing key 'text'",
        "'text' must be a string, found int",
        "empty text",
    ]
    assert errors["p.txt"] == [
        (2, "bytes that are not valid utf-8; pass --encoding with the file's real encoding (e.g. --encoding latin-1)")
    ]
    assert [g["line"] for g in lines(tmp_path / "out" / "t.csv.out")] == [2, 7]
    assert [g["line"] for g in lines(tmp_path / "out" / "j.jsonl.out")] == [1, 7]
    assert [g["line"] for g in lines(tmp_path / "out" / "p.txt.out")] == [1]


def test_encoding_flag_reads_a_latin1_file(bert_artifact, tmp_path):
    write(tmp_path / "l.txt", "caf\xe9 was great\nna\xefve and sad\n".encode("latin-1"))
    result = batch(
        "--model-dir",
        bert_artifact,
        "--input",
        tmp_path / "l.txt",
        "--output",
        tmp_path / "out",
        "--encoding",
        "latin-1",
        "--join-source",
    )
    assert result.exit_code == 0, result.output
    assert [g["source"] for g in lines(tmp_path / "out" / "l.txt.out")] == ["caf\xe9 was great", "na\xefve and sad"]


def test_a_label_file_is_label_text_as_in_training_and_can_be_evaluated(bert_artifact, clf, tmp_path):
    """``.label`` (TREC's LABEL text lines) means the same to batch as to train: the first word is the label."""
    write(tmp_path / "d.label", "positive the food was great\n__label__negative awful phone\nneutral\n")
    result = batch(
        "--model-dir",
        bert_artifact,
        "--input",
        tmp_path / "d.label",
        "--output",
        tmp_path / "out",
        "--evaluate",
        "--json",
    )
    assert result.exit_code == 3, result.output
    assert json.loads(result.stdout)["rows"] == 2
    got = lines(tmp_path / "out" / "d.label.out")
    assert [g["line"] for g in got] == [1, 2]
    for g, want in zip(got, clf.predict(["the food was great", "awful phone"])):
        assert g["probabilities"] == pytest.approx(want.probabilities, abs=1e-5)
    assert [e["line"] for e in lines(tmp_path / "out" / "d.label.errors")] == [3]


# -- resume -------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _done_chunks(output: Path) -> int:
    try:
        return len(list((output / WORKDIR / "parts").rglob("*.json")))
    except OSError:  # a folder removed while listed
        return 0


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_killed_run_resumes_to_the_bytes_of_an_uninterrupted_run(bert_artifact, tmp_path):
    """SIGKILL `batch --workers 2` once chunks are on disk: its workers stop too, the same command finishes
    the job, and the outputs are the bytes of an uninterrupted run scored with a worker's threads.

    (With another thread count, float sums come out in another order and the 6th digit of a few
    probabilities can differ; which records, in which order, with which labels, cannot.)
    """
    write_rows(tmp_path / "in" / "big.csv", make_sentences(400, 3))
    write(
        tmp_path / "in" / "small.jsonl",
        "".join(json.dumps({"text": t, "label": y}) + "\n" for y, t in make_sentences(100, 4)),
    )
    write(tmp_path / "in" / "bad.txt", b"good\n\xff\nbad\n")
    args = [
        "--dtype",
        "float32",
        "--model-dir",
        str(bert_artifact),
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(tmp_path / "out"),
        "--chunk-size",
        "5",
        "--workers",
        "2",
        "--join-source",
    ]
    out = tmp_path / "out"
    run = subprocess.Popen(
        [sys.executable, "-m", "textclf", "batch", *args],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while _done_chunks(out) < 4:
        assert run.poll() is None, f"the run ended before it could be killed: {run.stderr.read().decode()}"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    workers = _children(run.pid)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    assert json.loads((out / WORKDIR / "manifest.json").read_text())["result"] is None  # killed mid-job
    assert len(workers) >= 2
    while any(_alive(pid) for pid in workers):  # orphaned workers stop by themselves
        assert time.monotonic() < deadline, "worker processes outlived the killed run"
        time.sleep(0.05)

    resumed = batch(*args)
    assert resumed.exit_code == 3, resumed.output
    assert "resuming" in resumed.stderr
    assert sorted(os.listdir(out / WORKDIR)) == ["lock", "manifest.json"]
    before = torch.get_num_threads()
    try:  # the threads each of 2 workers has
        like_a_worker = textclf.Classifier.load(bert_artifact, threads=threads_per_worker(2), dtype="float32")
        whole = quiet_run(
            like_a_worker, bert_artifact, tmp_path / "in", tmp_path / "whole", chunk_size=5, join_source=True
        )
    finally:
        torch.set_num_threads(before)
    assert (whole.records, whole.errors) == (503, 1)
    expected = outputs(tmp_path / "whole")
    assert sorted(expected) == ["bad.txt.errors", "bad.txt.out", "big.csv.out", "small.jsonl.out"]
    assert outputs(out) == expected
    assert [g["line"] for g in lines(out / "big.csv.out")] == list(range(2, 402))


class Crash(BaseException):
    """Stands for a kill: raised instead of one of the job's atomic renames."""


@pytest.mark.slow
def test_a_run_stopped_before_any_write_resumes_to_the_same_bytes(bert_artifact, clf, tmp_path, monkeypatch):
    """Stop the job before each of its renames in turn (parts, summaries, outputs, manifest), then resume it."""
    write_rows(tmp_path / "in" / "a.csv", make_sentences(6, 5))
    write(tmp_path / "in" / "b.jsonl", '{"text": "good"}\nbroken\n{"text": "awful"}\n')
    options = {"chunk_size": 4, "output_format": "csv", "join_source": True}
    expected = quiet_run(clf, bert_artifact, tmp_path / "in", tmp_path / "whole", **options)
    whole = outputs(tmp_path / "whole")
    real_replace, calls = os.replace, []

    def counting(src, dst):
        calls.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", counting)
    quiet_run(clf, bert_artifact, tmp_path / "in", tmp_path / "count", **options)
    steps = len(calls)
    assert steps >= 12
    for step in range(steps):
        out = tmp_path / f"stop-{step}"

        countdown = step

        def crash(src, dst):
            nonlocal countdown
            if countdown == 0:
                raise Crash(dst)
            countdown -= 1
            real_replace(src, dst)

        monkeypatch.setattr(os, "replace", crash)
        with pytest.raises(Crash):
            quiet_run(clf, bert_artifact, tmp_path / "in", out, **options)
        monkeypatch.setattr(os, "replace", real_replace)
        result = quiet_run(clf, bert_artifact, tmp_path / "in", out, **options)
        assert outputs(out) == whole, f"stopped before rename {step + 1} of {steps}"
        assert (result.records, result.errors) == (expected.records, expected.errors) == (9, 1)
        assert sorted(os.listdir(out / WORKDIR)) == ["lock", "manifest.json"]


def test_a_complete_job_is_not_run_again_and_keeps_its_exit_code(bert_artifact, tmp_path):
    write(tmp_path / "t.txt", "good\n\xff\n".encode("latin-1"))
    args = ["--model-dir", bert_artifact, "--input", tmp_path / "t.txt", "--output", tmp_path / "out"]
    assert batch(*args).exit_code == 3
    before = outputs(tmp_path / "out")
    again = batch(*args)
    assert again.exit_code == 3
    assert "already complete" in again.stderr
    assert outputs(tmp_path / "out") == before


# -- shards -------------------------------------------------------------------


@pytest.mark.slow
def test_shards_cover_every_record_exactly_once(bert_artifact, clf, tmp_path):
    write_rows(tmp_path / "in" / "a.csv", make_sentences(23, 6))
    write(tmp_path / "in" / "b.txt", "".join(f"{t}\n" for _, t in make_sentences(7, 7)))
    write(tmp_path / "in" / "c.jsonl", "")  # an empty file still gets its (empty) .out
    whole = quiet_run(clf, bert_artifact, tmp_path / "in", tmp_path / "whole", chunk_size=4)
    assert whole.records == 30
    everything = outputs(tmp_path / "whole")
    seen: dict[str, list[int]] = {}
    concatenated: dict[str, bytes] = {}
    for i in range(3):
        part = tmp_path / f"shard-{i}"
        result = batch(
            "--model-dir",
            bert_artifact,
            "--input",
            tmp_path / "in",
            "--output",
            part,
            "--chunk-size",
            4,
            "--shard",
            f"{i}/3",
        )
        assert result.exit_code == 0, result.output
        for name, data in outputs(part).items():
            concatenated[name] = concatenated.get(name, b"") + data
            seen.setdefault(name, []).extend(json.loads(line)["line"] for line in data.decode().splitlines())
    assert concatenated == everything  # shards in order concatenate to the unsharded output
    for name, data in everything.items():
        lines_whole = [json.loads(line)["line"] for line in data.decode().splitlines()]
        assert sorted(seen[name]) == lines_whole and len(set(seen[name])) == len(seen[name])
    empty = batch(
        "--model-dir",
        bert_artifact,
        "--input",
        tmp_path / "in",
        "--output",
        tmp_path / "none",
        "--chunk-size",
        4,
        "--shard",
        "0/10",
    )
    assert empty.exit_code == 0 and "has no chunks" in empty.stderr
    assert outputs(tmp_path / "none") == {}


# -- options ------------------------------------------------------------------


def test_evaluate_reports_what_textclf_evaluate_reports(bert_artifact, sentiment_files):
    val = str(sentiment_files[1])
    plain = CliRunner().invoke(main, ["evaluate", "--model-dir", str(bert_artifact), "--data", val, "--json"])
    with CliRunner().isolated_filesystem():
        scored = batch(
            "--model-dir", bert_artifact, "--input", val, "--output", "out", "--evaluate", "--json", "--chunk-size", 7
        )
        table = batch("--model-dir", bert_artifact, "--input", val, "--output", "out", "--evaluate", "--chunk-size", 7)
    assert scored.exit_code == 0, scored.output
    want, got = json.loads(plain.stdout), json.loads(scored.stdout)
    assert got.pop("loss") == pytest.approx(want.pop("loss"), abs=1e-4)
    assert want.pop("calibration")["ece"] >= 0  # evaluate's calibration figures; batch --evaluate has none
    assert got == want and got["rows"] == 60
    assert table.exit_code == 0 and "confusion matrix" in table.stdout and table.stdout.startswith(f"{val}: 60 rows")


def test_evaluate_counts_unknown_labels_and_bad_records_as_skipped(bert_artifact, tmp_path):
    write(
        tmp_path / "d.jsonl",
        '{"text": "great", "label": "positive"}\n{"text": "awful", "label": "negative"}\n'
        '{"text": "meh", "label": "neutral"}\n{"text": ""}\n',
    )
    result = batch(
        "--model-dir",
        bert_artifact,
        "--input",
        tmp_path / "d.jsonl",
        "--output",
        tmp_path / "out",
        "--evaluate",
        "--json",
    )
    assert result.exit_code == 3, result.output
    report = json.loads(result.stdout)
    assert (report["rows"], report["skipped_rows"], report["accuracy"]) == (2, 2, 1.0)


def test_join_source_and_csv_output(bert_artifact, tmp_path):
    write(tmp_path / "in" / "h.csv", 'id,text,label\n7,"good, really",positive\n')
    write(tmp_path / "in" / "r.jsonl", '{"text": "awful", "meta": {"k": [1, "é"]}}\n')
    write(tmp_path / "in" / "p.txt", "  nice one  \n")
    jsonl = batch(
        "--model-dir", bert_artifact, "--input", tmp_path / "in", "--output", tmp_path / "json", "--join-source"
    )
    assert jsonl.exit_code == 0, jsonl.output
    assert lines(tmp_path / "json" / "h.csv.out")[0]["source"] == {
        "id": "7",
        "text": "good, really",
        "label": "positive",
    }
    assert lines(tmp_path / "json" / "r.jsonl.out")[0]["source"] == {"text": "awful", "meta": {"k": [1, "é"]}}
    assert lines(tmp_path / "json" / "p.txt.out")[0]["source"] == "  nice one  "
    assert "é" in (tmp_path / "json" / "r.jsonl.out").read_text(encoding="utf-8")

    as_csv = batch(
        "--model-dir",
        bert_artifact,
        "--input",
        tmp_path / "in",
        "--output",
        tmp_path / "csv",
        "--output-format",
        "csv",
        "--join-source",
    )
    assert as_csv.exit_code == 0, as_csv.output
    rows = {
        name: list(csv.reader(io.StringIO((tmp_path / "csv" / f"{name}.out").read_text(encoding="utf-8"))))
        for name in ("h.csv", "r.jsonl", "p.txt")
    }
    for name, (row,) in rows.items():
        verbose = lines(tmp_path / "json" / f"{name}.out")[0]
        assert row[:4] == [str(verbose["line"]), verbose["predicted_label"], *map(str, verbose["probabilities"])]
    assert rows["h.csv"][0][4:] == ["7", "good, really", "positive"]
    assert json.loads(rows["r.jsonl"][0][4]) == {"text": "awful", "meta": {"k": [1, "é"]}}
    assert rows["p.txt"][0][4:] == ["  nice one  "]
    plain = batch(
        "--model-dir",
        bert_artifact,
        "--input",
        tmp_path / "in" / "p.txt",
        "--output",
        tmp_path / "plain",
        "--output-format",
        "csv",
    )
    assert plain.exit_code == 0, plain.output
    assert (tmp_path / "plain" / "p.txt.out").read_text().count(",") == 3  # line,label,p_0,p_1


@pytest.mark.subprocess
def test_a_model_that_fails_to_load_in_a_worker_is_one_line_not_a_hang(tiny_bert, tmp_path):
    write(tmp_path / "t.txt", "good\n")
    result = batch(
        "--model-dir", tiny_bert, "--input", tmp_path / "t.txt", "--output", tmp_path / "out", "--workers", 2
    )
    assert_one_line_error(result, "not a text-classification model")


# -- usage errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--input", "nope.csv"], "nope.csv: no such file or directory."),
        (["--input", "in/*.parquet"], "in/*.parquet: no files match the pattern"),
        (["--input", "empty"], "empty: directory holds no files to score."),
        (
            ["--input", "in/h.csv", "--text-column", "body"],
            "in/h.csv:1: no column named 'body' for the text; the header has ['id', 'review'].",
        ),
        (
            ["--input", "in/h.csv", "--text-column", "5"],
            "in/h.csv: no column 5 for the text; its first row has 2 column(s)",
        ),
        (
            ["--input", "in/wide.csv"],
            "in/wide.csv:1: cannot tell which of the 3 columns holds the text; pass --text-column",
        ),
        (
            ["--input", "in/k.jsonl"],
            "in/k.jsonl:1: cannot tell which key holds the text (keys: ['words']); pass --text-field.",
        ),
        (
            ["--input", "in/t.txt", "--evaluate"],
            "in/t.txt: --evaluate needs labels, but plain text lines carry no labels",
        ),
        (["--input", "in/t.txt", "--shard", "3/3"], "--shard i/N needs 0 <= i < N, but got '3/3'"),
        (["--input", "in/t.txt", "--shard", "half"], "--shard must look like i/N"),
        (["--input", "in/t.txt", "--encoding", "klingon"], "unknown encoding 'klingon'"),
        (
            ["--input", "in/t.txt", "--encoding", "utf-16"],
            "encoding 'utf-16' does not end lines with a single \\n byte",
        ),
        (
            ["--input", "in/t.txt", "--output", "taken"],
            "taken: --output already holds files (notes.txt) and no batch manifest",
        ),
        (["--input", "in/t.txt", "--output", "afile"], "afile: --output is a file"),
        (["--input", "in/t.txt", "--model-dir", "no-model"], "no-model: model folder not found"),
    ],
    ids=[
        "missing-input",
        "glob-matches-nothing",
        "empty-folder",
        "unknown-column",
        "column-index-out-of-range",
        "which-column",
        "which-key",
        "evaluate-without-labels",
        "shard-out-of-range",
        "shard-malformed",
        "unknown-encoding",
        "utf16",
        "output-holds-other-files",
        "output-is-a-file",
        "missing-model",
    ],
)
def test_bad_usage_is_one_line_and_exit_2(bert_artifact, tmp_path, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "in" / "h.csv", "id,review\n1,good\n")
    write(tmp_path / "in" / "wide.csv", "a,b,c\n")
    write(tmp_path / "in" / "k.jsonl", '{"words": "x"}\n')
    write(tmp_path / "in" / "t.txt", "good\n")
    write(tmp_path / "taken" / "notes.txt", "mine\n")
    write(tmp_path / "afile", "")
    (tmp_path / "empty").mkdir()
    result = batch("--model-dir", bert_artifact, "--output", "out", *args)  # a repeated option: the last one counts
    assert_one_line_error(result, expected)
    assert not (tmp_path / "out").exists()
    assert os.listdir(tmp_path / "taken") == ["notes.txt"]


def test_an_output_folder_of_another_job_is_refused(bert_artifact, tmp_path):
    write(tmp_path / "a.txt", "good\nbad\n")
    args = ["--model-dir", bert_artifact, "--input", tmp_path / "a.txt", "--output", tmp_path / "out"]
    assert batch(*args, "--chunk-size", 1).exit_code == 0
    before = outputs(tmp_path / "out")
    assert_one_line_error(
        batch(*args, "--chunk-size", 2), "holds another batch job (it was run with chunk_size=1, not 2)"
    )
    assert_one_line_error(batch(*args, "--chunk-size", 1, "--output-format", "csv"), "output_format='jsonl', not 'csv'")
    write(tmp_path / "a.txt", "good\nbad\nmore\n")
    assert_one_line_error(batch(*args, "--chunk-size", 1), "a.txt changed since the job started")
    assert outputs(tmp_path / "out") == before


def test_public_api_is_pinned():
    assert sorted(textclf.batch.__all__) == sorted(
        [
            "BatchOptions",
            "BatchResult",
            "DEFAULT_CHUNK_SIZE",
            "EXIT_RECORD_ERRORS",
            "FORMATS",
            "OUTPUT_FORMATS",
            "parse_shard",
            "run_batch",
        ]
    )


def test_a_lone_surrogate_id_is_written_escaped_in_csv_output(bert_artifact, tmp_path):
    write(tmp_path / "s.jsonl", '{"id": "a\\ud800b", "text": "good food"}\n{"id": "ok", "text": "awful"}\n')
    result = batch(
        "--model-dir",
        bert_artifact,
        "--input",
        tmp_path / "s.jsonl",
        "--output",
        tmp_path / "out",
        "--output-format",
        "csv",
        "--id-field",
        "id",
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO((tmp_path / "out" / "s.jsonl.out").read_text(encoding="utf-8"))))
    assert [row[1] for row in rows] == ["a\\ud800b", "ok"]
