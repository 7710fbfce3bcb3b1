"""The one reader (textclf.data.reader): the same file gives the same records to every command."""

from __future__ import annotations

from pathlib import Path

import pytest

import textclf.data
from textclf.data import ReadOptions, read_examples, read_texts, reader
from textclf.data.reader import Layout, read_records, records, resolve_layout
from textclf.errors import ConfigError, DataError


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


LABELLED = {
    "header.csv": 'id,review,label\n1,lovely movie,positive\n2,"bad, really\nbad",negative\n',
    "pairs.csv": 'positive,nice phone\n\nnegative,"multi\nline bad"\n',
    "data.tsv": 'sentence\tlabel\ngood "food\tpositive\nsad\tnegative\n',
    "rows.jsonl": '{"Text": "superb", "label": "positive"}\n\n{"label": "negative", "Text": "ugly food"}\n',
    "trec.label": "NUM:date When was it ?\n__label__pos I liked it\n",
}


@pytest.mark.parametrize("name", LABELLED)
def test_training_and_batch_read_the_same_records(tmp_path, name):
    """The labelled view (train, evaluate) and the plain record stream (batch) agree on texts, labels and lines."""
    path = write(tmp_path, name, LABELLED[name])
    examples = read_examples(path)
    stream = list(records(path, resolve_layout(path, ReadOptions())))
    assert [(r.line, r.text, r.label) for r in stream] == list(zip(examples.lines, examples.texts, examples.labels))


def test_a_label_file_is_label_text_for_every_command_and_txt_is_one_text_per_line(tmp_path):
    lines = "NUM:date When was it ?\n__label__pos I liked it\n"
    label, txt = write(tmp_path, "a.label", lines), write(tmp_path, "a.txt", lines)
    assert resolve_layout(label) == resolve_layout(label, labels=True) == Layout("label-text", 1, 0)
    assert [(r.label, r.text, r.source) for r in records(label, resolve_layout(label))] == [
        ("NUM:date", "When was it ?", "NUM:date When was it ?"),
        ("pos", "I liked it", "__label__pos I liked it"),
    ]
    assert resolve_layout(txt) == Layout("text")  # batch, predict: the whole line is the text
    assert [r.text for r in records(txt, resolve_layout(txt))] == ["NUM:date When was it ?", "__label__pos I liked it"]
    assert read_texts(txt) == ["NUM:date When was it ?", "__label__pos I liked it"]
    with pytest.raises(DataError, match="a text file holds one text per line and no labels"):
        read_examples(txt)  # train, evaluate: the same file is still only texts, so they refuse it
    with pytest.raises(ConfigError, match="plain text lines have no columns"):
        resolve_layout(txt, ReadOptions(label_column="1"))


def test_a_byte_range_that_starts_on_a_record_reads_as_in_a_whole_pass(tmp_path):
    path = write(tmp_path, "d.csv", 'text,label\n"a\nb",x\n\nc,y\r\nd,x\ne,y\n')
    layout = resolve_layout(path)
    whole = list(read_records(path, layout, "utf-8", layout.start, None, layout.line))
    assert [r.line for r, _, _ in whole] == [2, 5, 6, 7]
    for i, (_, end, line) in enumerate(whole[:-1]):
        rest = list(read_records(path, layout, "utf-8", end, None, line))
        assert [(r.line, r.text) for r, _, _ in rest] == [(r.line, r.text) for r, _, _ in whole[i + 1 :]]
    _, first_end, _ = whole[0]
    assert [r.text for r, _, _ in read_records(path, layout, "utf-8", layout.start, first_end, layout.line)] == ["a\nb"]


@pytest.mark.parametrize(
    "content, header",
    [("text,x\na,b\n", True), ("label,x\n0,a\n", True), ("Sentiment,words\n0,a\n", True), ("0,a\n1,b\n", False)],
    ids=["text-name", "label-name", "label-name-any-case", "no-names"],
)
def test_a_first_row_naming_a_text_or_label_column_is_a_header(tmp_path, content, header):
    path = write(tmp_path, "d.csv", content)
    if header and "text" not in content:
        with pytest.raises(DataError, match=r"d\.csv:1: cannot tell which column holds the text; the header is"):
            resolve_layout(path)
    else:
        assert (resolve_layout(path).header is not None) == header


def test_header_option_and_labelled_view_need_a_label(tmp_path):
    path = write(tmp_path, "d.csv", "text\nfine\n")
    assert resolve_layout(path, ReadOptions(header=False)) == Layout("csv", 0, columns=1)
    with pytest.raises(
        DataError, match=r"d\.csv:1: cannot tell which column holds the label; the header is \['text'\]"
    ):
        read_examples(path)
    keys = write(tmp_path, "k.jsonl", '{"text": "a"}\n')
    with pytest.raises(DataError, match=r"k\.jsonl:1: cannot tell which key holds the label \(keys: \['text'\]\)"):
        read_examples(keys)


def test_utf16_files_read_as_text_and_a_wrong_encoding_is_one_line(tmp_path):
    path = write(tmp_path, "d.tsv", "text\tlabel\nä\tx\nb\ty\n".encode("utf-16"))
    examples = read_examples(path, ReadOptions(encoding="utf-16"))
    assert (examples.texts, examples.labels, examples.lines) == (["ä", "b"], ["x", "y"], [2, 3])
    plain = write(tmp_path, "p.csv", "text,label\na,x\n")
    with pytest.raises(DataError, match=r"p\.csv:1: not valid utf-16 \(.*\); pass --encoding"):
        read_examples(plain, ReadOptions(encoding="utf-16"))


def test_a_lone_surrogate_escape_in_a_jsonl_text_is_a_bad_row(tmp_path):
    path = write(
        tmp_path, "s.jsonl", '{"text": "a\\ud800", "label": 1}\n{"text": "b", "label": 0}\n{"text": "c", "label": 1}\n'
    )
    examples = read_examples(path, ReadOptions(on_bad_rows="skip"))
    assert examples.texts == ["b", "c"]
    ((line, why),) = examples.skipped
    assert line == 1 and why.startswith("text holds an unpaired UTF-16 surrogate")


def test_malformed_csv_is_a_bad_row_that_skip_mode_skips(tmp_path):
    path = write(tmp_path, "m.csv", 'text,label\n"open"x,1\nok,0\nfine,1\n')
    with pytest.raises(DataError, match=r"m\.csv:2: malformed CSV"):
        read_examples(path)
    assert read_examples(path, ReadOptions(on_bad_rows="skip")).texts == ["ok", "fine"]


def test_read_options_name_the_same_settings_as_batch():
    assert ReadOptions("t", "l", "latin-1", "skip") == ReadOptions(
        text_column="t", label_column="l", encoding="latin-1", on_bad_rows="skip"
    )
    with pytest.raises(ConfigError, match="format must be one of 'text', 'label-text', 'csv'"):
        ReadOptions(format="xlsx")
    fields = ("text_column", "label_column", "id_column", "header", "encoding", "format")
    assert all(hasattr(ReadOptions(), name) for name in fields)


def test_public_api_is_pinned():
    assert sorted(textclf.data.__all__) == [
        "Examples",
        "LabelSet",
        "ReadOptions",
        "TrainingData",
        "iterative_split",
        "load_training_data",
        "read_examples",
        "read_label_names",
        "read_texts",
        "split_labels",
    ]
    assert sorted(reader.__all__) == [
        "FORMATS",
        "LABEL_COLUMNS",
        "Layout",
        "ReadOptions",
        "Record",
        "SUFFIXES",
        "TASKS",
        "TEXT_COLUMNS",
        "file_format",
        "read_records",
        "records",
        "resolve_layout",
    ]
