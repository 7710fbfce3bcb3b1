"""The endpoint's errors: all in the TextclfError tree, each answered with its status in one place."""

from __future__ import annotations

import asyncio
import inspect
import json

import pytest
from starlette.requests import Request

import textclf.errors
import textclf.serving.errors
from textclf.errors import ConfigError, DataError, ModelError, TextclfError
from textclf.serving import ServeConfig
from textclf.serving.app import Endpoint
from textclf.serving.errors import (
    BodyTooLarge,
    ModelFailure,
    ModelTimeout,
    NotReady,
    RequestError,
    UnsupportedAccept,
    UnsupportedContentType,
)


def test_the_serving_errors_are_pinned_and_in_the_textclf_tree():
    assert sorted(textclf.serving.errors.__all__) == sorted(
        [
            "BodyTooLarge",
            "ModelFailure",
            "ModelTimeout",
            "NotReady",
            "RequestError",
            "UnsupportedAccept",
            "UnsupportedContentType",
        ]
    )
    for module in (textclf.errors, textclf.serving.errors):
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and name != "TrainingInterrupted":  # Ctrl-C, not an error
                assert issubclass(cls, TextclfError), name
    assert issubclass(ModelFailure, ModelError) and issubclass(ModelTimeout, ModelError)


def answer(path: str, exc: Exception) -> tuple[int, dict, dict]:
    """What a fresh endpoint answers when a request to ``path`` raised ``exc``."""
    endpoint = Endpoint(ServeConfig(model_dir="unused"))
    scope = {"type": "http", "method": "POST", "path": path, "headers": [], "query_string": b"", "root_path": ""}
    response = asyncio.run(endpoint.error(Request(scope), exc))
    return response.status_code, dict(response.headers), json.loads(response.body)


@pytest.mark.parametrize(
    ("exc", "status", "runtime_status", "error_type"),
    [
        (RequestError("bad body."), 400, 400, "ValidationError"),
        (ConfigError("bad top_k."), 400, 400, "ValidationError"),
        (DataError("bad data."), 400, 400, "ValidationError"),
        (ModelError("a custom input_fn's own error."), 400, 400, "ValidationError"),
        (UnsupportedAccept("Accept text/html is not supported."), 406, 406, "ValidationError"),
        (BodyTooLarge("too large."), 413, 413, "ValidationError"),
        (UnsupportedContentType("Content-Type image/png is not supported."), 415, 415, "ValidationError"),
        (ModelFailure("the model failed: RuntimeError: boom"), 500, 424, "ModelError"),
        (ModelTimeout("the prediction took longer than the request timeout of 2 s."), 504, 424, "ModelError"),
        (NotReady("the model is still loading."), 503, 503, "ServiceUnavailable"),
    ],
)
def test_each_error_has_one_status_and_the_runtime_path_names_it(exc, status, runtime_status, error_type):
    code, headers, body = answer("/invocations", exc)
    assert (code, body) == (status, {"Message": str(exc)})
    assert headers["content-type"] == "application/json" and "x-amzn-errortype" not in headers
    code, headers, body = answer("/endpoints/my-endpoint/invocations", exc)
    assert (code, headers["x-amzn-errortype"], body) == (runtime_status, error_type, {"Message": str(exc)})


def test_an_unexpected_error_is_a_logged_500(caplog):
    code, headers, body = answer("/endpoints/x/invocations", KeyError("k"))
    assert (code, headers["x-amzn-errortype"], body) == (
        500,
        "InternalFailure",
        {"Message": "internal error: KeyError: 'k'"},
    )
    assert "unexpected error on /endpoints/{name}/invocations" in caplog.text and "KeyError" in caplog.text
