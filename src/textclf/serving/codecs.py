"""Request bodies in, response bodies out: the content types the endpoint speaks.

Content-Type (in)                   body                                   answers in the style of
----------------------------------  -------------------------------------  -----------------------
application/x-text, text/plain      one text                               JumpStart
application/json                    "text" or ["text", ...]                JumpStart
application/json                    {"inputs": str|list, "parameters": {}} the HF pipeline
text/csv                            one text per line, or a header row     JumpStart
                                    with an ``inputs`` column
application/jsonlines               {"inputs": ...} or {"text": ...}       JumpStart
                                    per line

Accept (out)              one result per text
------------------------  --------------------------------------------------------------
application/json;verbose  {"probabilities": [...], "labels": [...], "predicted_label": ...}
application/json          JumpStart style: {"probabilities": [...]};
                          pipeline style: [{"label", "score"}] as ``pipeline()`` returns it
text/csv                  predicted_label,p_0,p_1,... one line per text
application/jsonlines     the verbose object, one line per text

A single text (x-text, a JSON string, ``{"inputs": "..."}``) answers with one object; several
texts answer with a list, in input order. A missing Accept, ``*/*`` or ``application/*`` means
application/json.

A multi-label model's probabilities are one sigmoid score a label, and its prediction is the set of
labels at or above their thresholds (:meth:`textclf.Classifier.decide`): the verbose object (and
each jsonlines line) is ``{"probabilities", "labels", "predicted_labels": [...]}`` (possibly empty),
and a text/csv line starts with those labels joined by ``,`` (one CSV field, quoted when it holds a
comma). application/json and the pipeline shape are the same as for a single-label model (the
pipeline applies a sigmoid to a ``multi_label_classification`` model too).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import RequestError, UnsupportedAccept, UnsupportedContentType

__all__ = [
    "ACCEPTS",
    "CONTENT_TYPES",
    "Predictions",
    "Request",
    "decode",
    "encode",
    "negotiate",
    "to_request",
    "utf8_text",
]

JSON, VERBOSE, CSV, JSONLINES = "application/json", "application/json;verbose", "text/csv", "application/jsonlines"
ACCEPTS = (VERBOSE, JSON, CSV, JSONLINES)
_TEXT_TYPES = ("application/x-text", "text/plain")
_JSONLINES_TYPES = (JSONLINES, "application/x-jsonlines", "application/jsonl")
CONTENT_TYPES = (*_TEXT_TYPES, JSON, CSV, *_JSONLINES_TYPES)
PIPELINE_PARAMETERS = ("top_k",)


@dataclass(frozen=True)
class Request:
    """What to classify and how to answer.

    ``single``: one text came in, so one object goes out (not a list).
    ``style``: ``"jumpstart"`` or ``"pipeline"`` (an ``{"inputs": ...}`` request).
    """

    texts: list[str]
    single: bool = False
    style: str = "jumpstart"
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Predictions:
    """The model's answer to one request: probabilities in label-id order, one row per text.

    ``predicted``: for a multi-label model, its decisions (a bool row a text, a column a label, as
    :meth:`textclf.Classifier.decide` gives them); None for a single-label model, whose prediction
    is its top label.
    """

    request: Request
    probabilities: np.ndarray
    labels: Sequence[int | str]
    predicted: np.ndarray | None = None

    @property
    def multi_label(self) -> bool:
        return self.predicted is not None

    def verbose(self) -> list[dict]:
        labels = list(self.labels)
        if self.predicted is not None:
            return [
                {
                    "probabilities": [round(float(p), 6) for p in row],
                    "labels": labels,
                    "predicted_labels": [labels[int(i)] for i in np.flatnonzero(chosen)],
                }
                for row, chosen in zip(self.probabilities, self.predicted)
            ]
        return [
            {
                "probabilities": [round(float(p), 6) for p in row],
                "labels": labels,
                "predicted_label": labels[int(row.argmax())],
            }
            for row in self.probabilities
        ]


# -- in -------------------------------------------------------------------------------------


def media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def decode(body: bytes | str, content_type: str | None) -> Request:
    """Parse a request body into a :class:`Request`; a bad body raises a :class:`RequestError`."""
    kind = media_type(content_type)
    if kind not in CONTENT_TYPES:
        shown = kind or "none"
        raise UnsupportedContentType(f"Content-Type {shown} is not supported; send one of {', '.join(CONTENT_TYPES)}.")
    if isinstance(body, bytes):
        body = utf8_text(body)
    if not body.strip():
        raise RequestError("the request body is empty; send the text to classify.")
    if kind in _TEXT_TYPES:
        return Request([body], single=True)
    if kind == JSON:
        try:
            value = json.loads(body)
        except json.JSONDecodeError as exc:
            raise RequestError(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}.") from exc
        return to_request(value)
    if kind == CSV:
        return Request(_csv_texts(body))
    return Request(_jsonlines_texts(body))


def utf8_text(body: bytes) -> str:
    """The body as text; 400 when it is not UTF-8 (every content type here is UTF-8 text)."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(f"the body is not valid UTF-8 (byte {exc.start}); send UTF-8 text.") from exc


def to_request(value: Any) -> Request:
    """A decoded JSON value (or what a custom ``input_fn`` returned) as a :class:`Request`."""
    if isinstance(value, Request):
        return value
    if isinstance(value, str):
        return Request([_text(value, "the JSON string")], single=True)
    if isinstance(value, list):
        return Request(_texts(value, "the JSON list"))
    if isinstance(value, dict):
        extra = sorted(set(value) - {"inputs", "parameters"})
        if "inputs" not in value or extra:
            what = f"unexpected key {extra[0]!r}" if extra else "no 'inputs' key"
            raise RequestError(
                f'JSON object has {what}; expected {{"inputs": "text" or ["text", ...], "parameters": {{...}}}}.'
            )
        inputs, parameters = value["inputs"], value.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise RequestError(f"'parameters' must be a JSON object, but got {type(parameters).__name__}.")
        _check_parameters(parameters)
        if isinstance(inputs, str):
            return Request([_text(inputs, "'inputs'")], single=True, style="pipeline", parameters=parameters)
        if isinstance(inputs, list):
            return Request(_texts(inputs, "'inputs'"), style="pipeline", parameters=parameters)
        raise RequestError(f"'inputs' must be a string or a list of strings, but got {type(inputs).__name__}.")
    raise RequestError(
        f'expected a string, a list of strings or {{"inputs": ...}}, but got JSON {type(value).__name__}.'
    )


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise RequestError(f"{where} must be a string, but got {type(value).__name__}.")
    if not value.strip():
        raise RequestError(f"{where} is empty; send a non-empty text.")
    return value


def _texts(values: list, where: str) -> list[str]:
    if not values:
        raise RequestError(f"{where} is empty; send at least one text.")
    return [_text(v, f"{where} item {i + 1}") for i, v in enumerate(values)]


def _check_parameters(parameters: dict) -> None:
    for name in parameters:
        if name not in PIPELINE_PARAMETERS:
            raise RequestError(f"parameter {name!r} is not supported; supported: {', '.join(PIPELINE_PARAMETERS)}.")
    top_k = parameters.get("top_k", 1)
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise RequestError(f"top_k must be a positive integer or null (all labels), but got {top_k!r}.")


def _csv_texts(body: str) -> list[str]:
    """One text per line (a quoted field is unquoted), or the ``inputs`` column under a header."""
    lines = body.splitlines()
    first = next(csv.reader([lines[0]]))
    if "inputs" in (cell.strip() for cell in first):
        return _csv_column(body, [cell.strip() for cell in first].index("inputs"), len(first))
    texts = []
    for number, line in enumerate(lines, 1):
        try:
            fields = next(csv.reader([line], strict=True), [])
        except csv.Error:
            fields = []
        text = fields[0] if len(fields) == 1 else line
        if not text.strip():
            raise RequestError(f"text/csv line {number} is empty; send one non-empty text per line.")
        texts.append(text)
    return texts


def _csv_column(body: str, column: int, width: int) -> list[str]:
    reader = csv.reader(io.StringIO(body, newline=""), strict=True)
    texts = []
    try:
        next(reader)
        for row in reader:
            if not row:
                continue
            if len(row) != width:
                raise RequestError(
                    f"malformed CSV at line {reader.line_num}: {len(row)} fields, expected {width} as in the header.",
                )
            texts.append(_text(row[column], f"text/csv line {reader.line_num} 'inputs'"))
    except csv.Error as exc:
        raise RequestError(f"malformed CSV at line {reader.line_num}: {exc}.") from exc
    if not texts:
        raise RequestError("text/csv has a header but no rows; send one row per text.")
    return texts


def _jsonlines_texts(body: str) -> list[str]:
    texts = []
    for number, line in enumerate(body.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RequestError(f"malformed JSON at jsonlines line {number} column {exc.colno}: {exc.msg}.") from exc
        if isinstance(value, dict):
            key = "inputs" if "inputs" in value else "text"
            if key not in value:
                raise RequestError(
                    f'jsonlines line {number} has neither "inputs" nor "text"; expected {{"inputs": "text"}}.'
                )
            value = value[key]
        texts.append(_text(value, f"jsonlines line {number}"))
    return texts


# -- out ------------------------------------------------------------------------------------


def negotiate(accept: str | None) -> str:
    """The response type for an Accept header (highest q first); :class:`UnsupportedAccept` if none fits."""
    if not accept or not accept.strip():
        return JSON
    offers = []
    for order, part in enumerate(accept.split(",")):
        kind, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        kind = kind.lower()
        if "verbose" in (p.lower() for p in params) and kind == JSON:
            kind = VERBOSE
        elif kind in ("*/*", "application/*"):
            kind = JSON
        elif kind in _JSONLINES_TYPES:
            kind = JSONLINES
        if kind in ACCEPTS and q > 0:
            offers.append((-q, order, kind))
    if not offers:
        raise UnsupportedAccept(f"Accept {accept} is not supported; ask for one of {', '.join(ACCEPTS)}.")
    return min(offers)[2]


def encode(predictions: Predictions, accept: str) -> bytes:
    """Serialise ``predictions`` as ``accept`` (one of :data:`ACCEPTS`)."""
    request = predictions.request
    if accept == CSV:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for record in predictions.verbose():
            if predictions.multi_label:
                chosen = ",".join(str(label) for label in record["predicted_labels"])
                writer.writerow([chosen, *record["probabilities"]])
            else:
                writer.writerow([record["predicted_label"], *record["probabilities"]])
        return out.getvalue().encode()
    if accept == JSONLINES:
        return "".join(json.dumps(r) + "\n" for r in predictions.verbose()).encode()
    if accept == VERBOSE:
        records = predictions.verbose()
    elif request.style == "pipeline":
        return json.dumps(_pipeline_shape(predictions)).encode()
    else:
        records = [{"probabilities": [round(float(p), 6) for p in row]} for row in predictions.probabilities]
    return json.dumps(records[0] if request.single else records).encode()


def _pipeline_shape(predictions: Predictions) -> list:
    """What ``transformers.pipeline("text-classification")`` returns for the same call (for a multi-label
    model the pipeline's scores are sigmoids, as the probabilities are, and it ranks them the same way)."""
    names = [str(label) for label in predictions.labels]
    parameters = predictions.request.parameters
    if "top_k" not in parameters:  # the pipeline's legacy shape: the best label per text
        return [{"label": names[int(row.argmax())], "score": float(row.max())} for row in predictions.probabilities]
    top_k = parameters["top_k"]
    ranked = []
    for row in predictions.probabilities:
        order = sorted(range(len(names)), key=lambda i: -row[i])[:top_k]
        ranked.append([{"label": names[i], "score": float(row[i])} for i in order])
    return ranked[0] if predictions.request.single else ranked
