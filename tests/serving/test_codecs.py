"""Request parsing, Accept negotiation and response shapes of the endpoint."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from textclf.serving.codecs import Predictions, Request, decode, encode, negotiate, to_request
from textclf.serving.errors import RequestError, UnsupportedAccept, UnsupportedContentType

LABELS = ["negative", "positive"]


@pytest.mark.parametrize(
    ("content_type", "body", "texts", "single", "style"),
    [
        ("application/x-text", "I loved it", ["I loved it"], True, "jumpstart"),
        ("text/plain; charset=utf-8", 'a, b "c"\nd', ['a, b "c"\nd'], True, "jumpstart"),
        ("application/json", '"one text"', ["one text"], True, "jumpstart"),
        ("application/json", '["a", "b"]', ["a", "b"], False, "jumpstart"),
        ("application/json", '{"inputs": "x"}', ["x"], True, "pipeline"),
        ("application/json", '{"inputs": ["x", "y"], "parameters": {"top_k": 2}}', ["x", "y"], False, "pipeline"),
        (
            "text/csv",
            'first text\nsecond, with a comma\n"quoted, one field"\n',
            ["first text", "second, with a comma", "quoted, one field"],
            False,
            "jumpstart",
        ),
        ("text/csv", 'id,inputs\n1,hello\n2,"hi, there"\n', ["hello", "hi, there"], False, "jumpstart"),
        ("application/jsonlines", '{"inputs": "a"}\n\n{"text": "b"}\n"c"\n', ["a", "b", "c"], False, "jumpstart"),
        ("application/x-jsonlines", '{"inputs": "a"}', ["a"], False, "jumpstart"),
    ],
)
def test_every_content_type_decodes(content_type, body, texts, single, style):
    request = decode(body.encode(), content_type)
    assert (request.texts, request.single, request.style) == (texts, single, style)


@pytest.mark.parametrize(
    ("content_type", "body", "error", "message"),
    [
        ("application/x-text", "", RequestError, "body is empty"),
        ("application/x-text", "   \n", RequestError, "body is empty"),
        ("application/x-text", b"\xff\xfe bad", RequestError, "not valid UTF-8"),
        ("application/json", '{"inputs": ', RequestError, "malformed JSON at line 1 column 12"),
        ("application/json", '{"inputs": ""}', RequestError, "'inputs' is empty"),
        ("application/json", '["ok", ""]', RequestError, "item 2 is empty"),
        ("application/json", "[]", RequestError, "is empty"),
        ("application/json", '["ok", 3]', RequestError, "item 2 must be a string"),
        ("application/json", '{"text": "x"}', RequestError, "unexpected key 'text'"),
        ("application/json", "42", RequestError, "got JSON int"),
        (
            "application/json",
            '{"inputs": "x", "parameters": {"temperature": 1}}',
            RequestError,
            "'temperature' is not supported",
        ),
        (
            "application/json",
            '{"inputs": "x", "parameters": {"top_k": 0}}',
            RequestError,
            "top_k must be a positive integer",
        ),
        ("text/csv", "a\n\nb\n", RequestError, "line 2 is empty"),
        ("text/csv", 'id,inputs\n1,"unterminated\n', RequestError, "malformed CSV"),
        ("text/csv", "id,inputs\n1,a,extra\n", RequestError, "malformed CSV at line 2: 3 fields, expected 2"),
        ("text/csv", "inputs\n", RequestError, "header but no rows"),
        ("application/jsonlines", '{"inputs": "a"}\n{oops}\n', RequestError, "jsonlines line 2"),
        ("application/jsonlines", '{"label": 1}\n', RequestError, 'neither "inputs" nor "text"'),
        ("image/png", "x", UnsupportedContentType, "Content-Type image/png is not supported"),
        (None, "x", UnsupportedContentType, "Content-Type none is not supported"),
    ],
)
def test_bad_bodies_are_client_errors_that_say_what_is_wrong(content_type, body, error, message):
    with pytest.raises(RequestError, match=message.replace("(", r"\(")) as info:
        decode(body if isinstance(body, bytes) else body.encode(), content_type)
    assert type(info.value) is error  # the app answers RequestError 400, UnsupportedContentType 415


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("application/*", "application/json"),
        ("application/json", "application/json"),
        ("application/json;verbose", "application/json;verbose"),
        ("application/json; verbose", "application/json;verbose"),
        ("text/csv", "text/csv"),
        ("application/jsonlines", "application/jsonlines"),
        ("text/html, text/csv;q=0.5, application/json;q=0.9", "application/json"),
        ("text/html, */*;q=0.1", "application/json"),
    ],
)
def test_accept_negotiation(accept, chosen):
    assert negotiate(accept) == chosen


def test_unsupported_accept_is_refused():
    with pytest.raises(UnsupportedAccept, match="Accept text/html is not supported"):
        negotiate("text/html")  # the app answers 406


def _predictions(request: Request) -> Predictions:
    rows = np.array([[0.2, 0.8], [0.9, 0.1]][: len(request.texts)])
    return Predictions(request, rows, LABELS)


def test_jumpstart_shapes():
    single = _predictions(Request(["x"], single=True))
    assert json.loads(encode(single, "application/json")) == {"probabilities": [0.2, 0.8]}
    assert json.loads(encode(single, "application/json;verbose")) == {
        "probabilities": [0.2, 0.8],
        "labels": LABELS,
        "predicted_label": "positive",
    }
    many = _predictions(Request(["x", "y"]))
    assert json.loads(encode(many, "application/json")) == [
        {"probabilities": [0.2, 0.8]},
        {"probabilities": [0.9, 0.1]},
    ]
    assert [r["predicted_label"] for r in json.loads(encode(many, "application/json;verbose"))] == [
        "positive",
        "negative",
    ]


def test_csv_and_jsonlines_answer_one_line_per_text():
    many = _predictions(Request(["x", "y"]))
    rows = list(csv.reader(io.StringIO(encode(many, "text/csv").decode())))
    assert rows == [["positive", "0.2", "0.8"], ["negative", "0.9", "0.1"]]
    lines = encode(many, "application/jsonlines").decode().splitlines()
    assert [json.loads(line)["predicted_label"] for line in lines] == ["positive", "negative"]
    single = _predictions(Request(["x"], single=True))
    assert encode(single, "text/csv").decode().count("\n") == 1


def test_pipeline_shape_honours_top_k():
    def shape(inputs, **parameters):
        body = {"inputs": inputs, **({"parameters": parameters} if parameters else {})}
        return json.loads(encode(_predictions(to_request(body)), "application/json"))

    assert shape("x") == [{"label": "positive", "score": 0.8}]
    assert shape(["x", "y"]) == [{"label": "positive", "score": 0.8}, {"label": "negative", "score": 0.9}]
    assert shape("x", top_k=2) == [
        {"label": "positive", "score": 0.8},
        {"label": "negative", "score": pytest.approx(0.2)},
    ]
    assert shape("x", top_k=None) == shape("x", top_k=2)
    assert shape(["x", "y"], top_k=1) == [[{"label": "positive", "score": 0.8}], [{"label": "negative", "score": 0.9}]]
