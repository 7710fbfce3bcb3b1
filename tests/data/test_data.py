"""Reading, validating and splitting labelled data (textclf.data)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from conftest import SHARED_DATA
from textclf.data import LabelSet, ReadOptions, load_training_data, read_examples, read_texts, stratified_split
from textclf.errors import DataError, TextclfError


def write(folder: Path, name: str, content: str | bytes) -> Path:
    """Write ``content`` to ``folder/name`` (creating subfolders) and return the path."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def shared(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.skip(f"{path} not found: the real data sets are expected in ../shared/data next to the repository")
    return path


# -- formats ------------------------------------------------------------------


def test_jumpstart_directory_reads_data_csv(tmp_path):
    write(tmp_path, "train/data.csv", '1,"good, really"\n0,bad\n1,fine\n')
    examples = read_examples(tmp_path / "train")
    assert examples.path == tmp_path / "train" / "data.csv"
    assert examples.jumpstart
    assert examples.texts == ["good, really", "bad", "fine"]
    assert examples.labels == ["1", "0", "1"]
    assert examples.lines == [1, 2, 3]


@pytest.mark.parametrize(
    "header, text_col, label_col",
    [("text,label", 0, 1), ("label,sentence", 1, 0), ("id,Review,Sentiment", 1, 2), ("category,content,x", 1, 0)],
    ids=["text-label", "sentence", "capitalised", "category-content"],
)
def test_header_columns_are_found_by_common_names(tmp_path, header, text_col, label_col):
    width = header.count(",") + 1
    rows = []
    for text, label in [("nice", "pos"), ("awful", "neg")]:
        cells = ["x"] * width
        cells[text_col], cells[label_col] = text, label
        rows.append(",".join(cells))
    path = write(tmp_path, "data.csv", "\n".join([header, *rows]) + "\n")
    examples = read_examples(path)
    assert (examples.texts, examples.labels, examples.lines) == (["nice", "awful"], ["pos", "neg"], [2, 3])


def test_columns_given_by_name_case_insensitive(tmp_path):
    path = write(tmp_path, "data.csv", "Body,Kind,text\nhello,a,decoy\nbye,b,decoy\n")
    examples = read_examples(path, ReadOptions(text_column="body", label_column="Kind"))
    assert examples.texts == ["hello", "bye"]
    assert examples.labels == ["a", "b"]


def test_headerless_csv_is_label_then_text(tmp_path):
    path = write(tmp_path, "data.csv", "spam,win money now\nham,see you at lunch\n")
    examples = read_examples(path)
    assert examples.texts == ["win money now", "see you at lunch"]
    assert examples.labels == ["spam", "ham"]
    assert not examples.jumpstart


def test_headerless_tsv_with_column_indexes(tmp_path):
    path = write(tmp_path, "data.tsv", "src\t1\t\tA sentence.\nsrc\t0\t*\tSentence a.\n")
    examples = read_examples(path, ReadOptions(text_column="3", label_column="1"))
    assert examples.texts == ["A sentence.", "Sentence a."]
    assert examples.labels == ["1", "0"]


def test_column_indexes_may_pick_any_two_of_a_wider_file(tmp_path):
    path = write(tmp_path, "data.csv", "0,good film,id1\n1,bad film,id2\n")
    examples = read_examples(path, ReadOptions(text_column="1", label_column="0"))
    assert examples.texts == ["good film", "bad film"] and examples.labels == ["0", "1"]
    short = write(tmp_path, "short.csv", "0,good film,id1\n1\n")
    with pytest.raises(DataError, match=r"short.csv:2: expected at least 2 columns, found 1"):
        read_examples(short, ReadOptions(text_column="1", label_column="0"))


def test_tsv_with_header_does_not_treat_quotes_specially(tmp_path):
    path = write(tmp_path, "data.tsv", 'sentence\tlabel\nhe said "hi \t1\n"quoted" \t0\n')
    examples = read_examples(path)
    assert examples.texts == ['he said "hi', '"quoted"']
    assert examples.labels == ["1", "0"]


def test_jsonl_keys_found_or_given(tmp_path):
    path = write(tmp_path, "data.jsonl", '{"text": "a", "label": 1}\n\n{"label": 0, "text": "b", "id": 7}\n')
    examples = read_examples(path)
    assert (examples.texts, examples.labels, examples.lines) == (["a", "b"], ["1", "0"], [1, 3])
    path = write(tmp_path, "other.jsonl", '{"q": "a", "y": "x"}\n{"q": "b", "y": "z"}\n')
    examples = read_examples(path, ReadOptions(text_column="q", label_column="y"))
    assert (examples.texts, examples.labels) == (["a", "b"], ["x", "z"])


def test_label_text_lines_drop_fasttext_prefix(tmp_path):
    path = write(tmp_path, "data.label", "__label__pos I liked it a lot\nNUM:date When was it ?\n")
    examples = read_examples(path)
    assert examples.labels == ["pos", "NUM:date"]
    assert examples.texts == ["I liked it a lot", "When was it ?"]


def test_a_txt_file_is_texts_for_every_command_so_labelled_reading_refuses_it(tmp_path):
    path = write(tmp_path, "data.txt", "pos I liked it a lot\nneg not at all\n")
    assert read_texts(path) == ["pos I liked it a lot", "neg not at all"]
    with pytest.raises(DataError, match=r"data\.txt: a text file holds one text per line and no labels; .*\.label"):
        read_examples(path)
    examples = read_examples(path, ReadOptions(format="label-text"))
    assert (examples.labels, examples.texts) == (["pos", "neg"], ["I liked it a lot", "not at all"])


def test_quoted_multiline_text_keeps_line_numbers(tmp_path):
    path = write(tmp_path, "data.csv", 'text,label\n"two\nlines",a\nplain,b\r\nlast,a\n')
    examples = read_examples(path)
    assert examples.texts == ["two\nlines", "plain", "last"]
    assert examples.lines == [2, 4, 5]


@pytest.mark.parametrize("separator", ["\u2028", "\x0c", "\x85", "\x1e"], ids=["U+2028", "form-feed", "NEL", "RS"])
@pytest.mark.parametrize("name", ["data.csv", "data.tsv", "data.jsonl", "data.label"])
def test_unicode_line_separators_inside_a_text_do_not_split_the_row(tmp_path, name, separator):
    text = f"one{separator}two"
    content = {
        ".csv": f"0,{text}\n1,three\n",
        ".tsv": f"0\t{text}\n1\tthree\n",
        ".jsonl": json.dumps({"text": text, "label": 0}, ensure_ascii=False) + '\n{"text": "three", "label": 1}\n',
        ".label": f"0 {text}\n1 three\n",
    }[Path(name).suffix]
    examples = read_examples(write(tmp_path, name, content))
    assert examples.texts == [text, "three"]
    assert examples.lines == [1, 2]


def test_utf8_byte_order_mark_is_not_part_of_the_header(tmp_path):
    path = write(tmp_path, "data.csv", b"\xef\xbb\xbftext,label\na,x\nb,y\n")
    assert read_examples(path).labels == ["x", "y"]


# -- labels -------------------------------------------------------------------


def test_string_labels_map_to_ids_in_sorted_order(tmp_path):
    path = write(tmp_path, "data.csv", "text,label\na,tech\nb,business\nc,sport\nd,tech\n")
    examples = read_examples(path)
    labels = LabelSet.from_examples(examples)
    assert labels.names == ("business", "sport", "tech")
    assert not labels.integer
    assert labels.encode(examples) == [2, 0, 1, 2]
    assert labels.value(1) == "sport"
    assert labels.id2label == {0: "business", 1: "sport", 2: "tech"}


def test_integer_labels_stay_integers(tmp_path):
    path = write(tmp_path, "data.csv", "2,a\n0,b\n1,c\n10,d\n" + "".join(f"{i},t{i}\n" for i in range(3, 10)))
    examples = read_examples(path)
    labels = LabelSet.from_examples(examples)
    assert labels.integer
    assert labels.names == tuple(str(i) for i in range(11))  # numeric, not string, order
    assert labels.encode(examples)[:4] == [2, 0, 1, 10]
    assert labels.value(10) == 10


def test_validation_file_shares_the_training_labels(tmp_path):
    train = write(tmp_path, "train.csv", "text,label\na,neg\nb,pos\nc,pos\n")
    val = write(tmp_path, "val.csv", "text,label\nd,pos\ne,neg\n")
    data = load_training_data(train, val)
    assert data.labels.names == ("neg", "pos")
    assert (data.train_texts, data.train_labels) == (["a", "b", "c"], [0, 1, 1])
    assert (data.val_texts, data.val_labels) == (["d", "e"], [1, 0])
    assert data.summary["validation_source"] == str(val)
    assert data.summary["class_counts"] == {"neg": 1, "pos": 2}


# -- stratified split ---------------------------------------------------------


def _labels(counts: dict[int, int]) -> list[int]:
    # interleaved, so that classes are not in contiguous blocks
    rows = [label for label, n in counts.items() for _ in range(n)]
    return rows[::2] + rows[1::2]


def test_split_keeps_each_class_share():
    labels = _labels({0: 100, 1: 50, 2: 10})
    train, val = stratified_split(labels, 0.2, seed=0)
    assert Counter(labels[i] for i in val) == {0: 20, 1: 10, 2: 2}
    assert Counter(labels[i] for i in train) == {0: 80, 1: 40, 2: 8}


def test_split_is_disjoint_complete_and_sorted():
    labels = _labels({0: 37, 1: 21, 2: 5})
    train, val = stratified_split(labels, 0.3, seed=3)
    assert not set(train) & set(val)
    assert sorted(train + val) == list(range(len(labels)))
    assert train == sorted(train) and val == sorted(val)


def test_split_is_deterministic_per_seed_and_differs_between_seeds():
    labels = _labels({0: 60, 1: 40})
    assert stratified_split(labels, 0.25, seed=1) == stratified_split(labels, 0.25, seed=1)
    assert stratified_split(labels, 0.25, seed=1)[1] != stratified_split(labels, 0.25, seed=2)[1]


def test_split_keeps_singleton_classes_in_train_and_ratio_zero_holds_out_nothing():
    labels = [0, 0, 0, 0, 1]
    train, val = stratified_split(labels, 0.5, seed=0)
    assert 4 in train and len(val) == 2
    assert stratified_split(labels, 0.0, seed=0) == ([0, 1, 2, 3, 4], [])


def test_load_training_data_splits_the_training_file(tmp_path):
    rows = "".join(f"{i % 3},text number {i}\n" for i in range(60))
    path = write(tmp_path, "data.csv", rows)
    a = load_training_data(path, validation_split_ratio=0.25, seed=5)
    b = load_training_data(path, validation_split_ratio=0.25, seed=5)
    assert (a.val_texts, a.val_labels) == (b.val_texts, b.val_labels)
    assert Counter(a.val_labels) == {0: 5, 1: 5, 2: 5}
    assert sorted(a.train_texts + a.val_texts) == sorted(f"text number {i}" for i in range(60))
    assert a.summary["train_rows"] == 45 and a.summary["validation_rows"] == 15
    assert "seed 5" in a.summary["validation_source"]


# -- bad input ----------------------------------------------------------------

# id: (files to write, --data, ReadOptions, the "FILE" or "FILE:LINE" the message starts with, what it says)
BAD_INPUTS = {
    "missing-file": ({}, "nope.csv", {}, "nope.csv", "no such file"),
    "dir-without-data-csv": ({"train/other.csv": "0,a\n1,b\n"}, "train", {}, "train", "no data.csv"),
    "unknown-extension": ({"data.xlsx": "0,a\n1,b\n"}, "data.xlsx", {}, "data.xlsx", "unsupported file type '.xlsx'"),
    "empty-file": ({"data.csv": "\n  \n"}, "data.csv", {}, "data.csv", "empty"),
    "header-only": ({"data.csv": "text,label\n"}, "data.csv", {}, "data.csv:1", "no data rows"),
    "too-many-columns": ({"data.csv": "0,a\n1,b,c\n"}, "data.csv", {}, "data.csv:2", "expected 2 columns"),
    "too-few-columns-vs-header": (
        {"data.csv": "text,label\na,0\nb\n"},
        "data.csv",
        {},
        "data.csv:3",
        "expected 2 columns like the header, found 1",
    ),
    "too-few-columns-for-index": (
        {"data.tsv": "s\t1\t\ta\ns\t0\n"},
        "data.tsv",
        {"text_column": "3", "label_column": "1"},
        "data.tsv:2",
        "expected at least 4 columns, found 2",
    ),
    "jumpstart-label-not-integer": (
        {"train/data.csv": "0,a\npos,b\n"},
        "train",
        {},
        "train/data.csv:2",
        "label 'pos' is not an integer",
    ),
    "label-gap": ({"data.csv": "0,a\n1,b\n3,c\n1,d\n"}, "data.csv", {}, "data.csv:3", "0..K-1"),
    "labels-from-1": ({"data.csv": "1,a\n2,b\n"}, "data.csv", {}, "data.csv:2", "outside 0..1"),
    "empty-text": ({"data.csv": "0,a\n1,  \n"}, "data.csv", {}, "data.csv:2", "empty text"),
    "empty-label": ({"data.csv": "text,label\na,0\nb,\n"}, "data.csv", {}, "data.csv:3", "empty label"),
    "undecodable-bytes": (
        {"data.csv": b"0,ok\n1,caf\xe9\n"},
        "data.csv",
        {},
        "data.csv:2",
        "not valid utf-8; pass --encoding",
    ),
    "single-class": ({"data.csv": "0,a\n0,b\n"}, "data.csv", {}, "data.csv", "at least two classes"),
    "malformed-jsonl": (
        {"data.jsonl": '{"text": "a", "label": 0}\n{"text": "b", "label": \n'},
        "data.jsonl",
        {},
        "data.jsonl:2",
        "not valid JSON",
    ),
    "jsonl-not-an-object": (
        {"data.jsonl": '{"text": "a", "label": 0}\n["b", 1]\n'},
        "data.jsonl",
        {},
        "data.jsonl:2",
        "expected a JSON object",
    ),
    "jsonl-missing-key": (
        {"data.jsonl": '{"text": "a", "label": 0}\n{"text": "b"}\n'},
        "data.jsonl",
        {},
        "data.jsonl:2",
        "missing key 'label'",
    ),
    "label-line-without-text": (
        {"data.label": "A:b what ?\nC:d\n"},
        "data.label",
        {},
        "data.label:2",
        "expected 'LABEL text'",
    ),
    "unknown-column-name": (
        {"data.csv": "text,label\na,0\n"},
        "data.csv",
        {"text_column": "body"},
        "data.csv:1",
        "no column named 'body'",
    ),
    "no-recognisable-header": ({"data.csv": "foo,bar,baz\na,b,c\n"}, "data.csv", {}, "data.csv:1", "--text-column"),
    "unknown-encoding": (
        {"data.csv": "0,a\n1,b\n"},
        "data.csv",
        {"encoding": "klingon"},
        "data.csv",
        "unknown encoding 'klingon'",
    ),
}


@pytest.mark.parametrize("files, data, options, where, expected", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_is_one_line_naming_file_and_line(tmp_path, files, data, options, where, expected):
    for name, content in files.items():
        write(tmp_path, name, content)
    with pytest.raises(DataError) as info:
        load_training_data(tmp_path / data, options=ReadOptions(**options))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path / where}: ")
    assert expected in message


def test_validation_label_unknown_to_training_names_file_and_line(tmp_path):
    train = write(tmp_path, "train.csv", "text,label\na,neg\nb,pos\n")
    val = write(tmp_path, "val.csv", "text,label\nc,pos\nd,meh\n")
    with pytest.raises(DataError, match=r"val\.csv:3: label 'meh' is not one of the model's labels \(neg, pos\)"):
        load_training_data(train, val)
    data = load_training_data(train, val, ReadOptions(on_bad_rows="skip"))
    assert data.val_texts == ["c"]
    assert data.summary["skipped_rows"] == 1
    assert any("val.csv: skipped 1 bad row(s) (line 3:" in note for note in data.summary["notes"])


def test_encoding_option_reads_latin1(tmp_path):
    path = write(tmp_path, "data.csv", "0,caf\xe9\n1,na\xefve\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"data\.csv:1: bytes that are not valid utf-8"):
        read_examples(path)
    assert read_examples(path, ReadOptions(encoding="latin-1")).texts == ["café", "naïve"]


def test_skip_mode_skips_bad_rows_and_reports_them(tmp_path):
    path = write(tmp_path, "data.csv", b"0,a\n1,\n2,b,extra\n1,c\n0,caf\xe9\n1,d\n")
    data = load_training_data(path, options=ReadOptions(on_bad_rows="skip"), validation_split_ratio=0)
    assert data.train_texts == ["a", "c", "d"]
    assert data.train_labels == [0, 1, 1]
    assert data.summary["skipped_rows"] == 3
    (note,) = data.summary["notes"]
    assert note.startswith(f"{path}: skipped 3 bad row(s) (line 2: empty text")
    assert "line 3: expected 2 columns" in note and "line 5: bytes that are not valid utf-8" in note


def test_skip_summary_lists_at_most_ten_lines(tmp_path):
    path = write(tmp_path, "data.csv", "0,a\n1,b\n" + "2,\n" * 12)
    examples = read_examples(path, ReadOptions(on_bad_rows="skip"))
    assert [line for line, _ in examples.skipped] == list(range(3, 15))
    summary = examples.skipped_summary()
    assert "skipped 12 bad row(s)" in summary and "line 12:" in summary and "line 13:" not in summary
    assert summary.endswith("; and 2 more)")


def test_skip_mode_with_no_good_rows_is_an_error(tmp_path):
    path = write(tmp_path, "data.csv", "0,\n1,\n")
    with pytest.raises(DataError, match=r"data\.csv: all 2 rows are bad; the first, line 1: empty text"):
        read_examples(path, ReadOptions(on_bad_rows="skip"))


def test_on_bad_rows_must_be_error_or_skip():
    with pytest.raises(TextclfError, match="on_bad_rows must be one of 'error', 'skip', but got on_bad_rows='ignore'"):
        ReadOptions(on_bad_rows="ignore")


def test_read_texts_for_predict(tmp_path):
    path = write(tmp_path, "texts.txt", "first text\n\n  second  \n")
    assert read_texts(path) == ["first text", "second"]
    with pytest.raises(DataError, match=r"texts\.txt:2: bytes that are not valid utf-8"):
        read_texts(write(tmp_path, "texts.txt", b"fine\nbad \xff\n"))
    with pytest.raises(DataError, match=r"empty\.txt: file is empty"):
        read_texts(write(tmp_path, "empty.txt", "\n\n"))
    with pytest.raises(DataError, match=r"missing\.txt: no such file"):
        read_texts(tmp_path / "missing.txt")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("t.csv", 'label,text\npos,"good, really"\nneg,bad\n'),
        ("t.jsonl", '{"text": "good, really", "label": "pos"}\n{"text": "bad"}\n'),
        ("t.label", "pos good, really\nneg bad\n"),
        ("t.txt", "good, really\nbad\n"),
    ],
)
def test_read_texts_reads_a_file_as_batch_does(tmp_path, name, content):
    assert read_texts(write(tmp_path, name, content)) == ["good, really", "bad"]


# -- the real data sets in ../shared/data -------------------------------------


def test_sst2_train():
    examples = read_examples(shared("sst2/train.tsv"))
    labels = LabelSet.from_examples(examples)
    assert len(examples) == 67_349
    assert (labels.names, labels.integer) == (("0", "1"), True)
    assert examples.texts[0] == "hide new secretions from the parental units"  # trailing space stripped
    assert examples.lines[-1] == 67_350


def test_cola_headerless_four_columns():
    examples = read_examples(shared("cola/in_domain_train.tsv"), ReadOptions(text_column="3", label_column="1"))
    assert len(examples) == 8_551
    assert Counter(examples.labels).keys() == {"0", "1"}
    assert examples.texts[0] == "Our friends won't buy this analysis, let alone the next one we propose."


def test_bbc_news_string_categories_and_split():
    path = shared("bbc_news/train.csv")
    examples = read_examples(path)
    labels = LabelSet.from_examples(examples)
    assert len(examples) == 1_780
    assert labels.names == ("business", "entertainment", "politics", "sport", "tech")
    data = load_training_data(path, validation_split_ratio=0.2, seed=0)
    counts = Counter(labels.encode(examples))
    for label, n in Counter(data.val_labels).items():
        assert n == round(counts[label] * 0.2)
    assert len(data.train_texts) + len(data.val_texts) == 1_780


def test_trec_is_not_utf8_at_line_66():
    path = shared("trec/train_5500.label")
    with pytest.raises(DataError) as info:
        read_examples(path)
    assert str(info.value).startswith(f"{path}:66: bytes that are not valid utf-8")
    assert "--encoding latin-1" in str(info.value)

    examples = read_examples(path, ReadOptions(encoding="latin-1"))
    assert len(examples) == 5_452
    assert len(LabelSet.from_examples(examples)) == 50

    skipping = read_examples(path, ReadOptions(on_bad_rows="skip"))
    assert [line for line, _ in skipping.skipped] == [66]
    assert len(skipping) == 5_451 and 66 not in skipping.lines
