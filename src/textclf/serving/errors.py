"""The endpoint's errors: what a request or the model did wrong, in the :class:`~textclf.errors.TextclfError` tree.

    TextclfError
     ├── ModelError
     │    ├── ModelFailure            the model (or custom code) failed on a request that was fine
     │    └── ModelTimeout            the prediction took longer than request_timeout_s
     ├── RequestError                 the request body or a header cannot be used
     │    ├── BodyTooLarge            the body is over the payload limit
     │    ├── UnsupportedContentType  the Content-Type is not one the endpoint reads
     │    └── UnsupportedAccept       no type the Accept header allows can be answered
     └── NotReady                     the model is still loading, or failed to load

These classes say nothing about HTTP: :mod:`textclf.serving.app` turns each into its status in
one place (400, 413, 415, 406, 500 or 424, 504 or 424, 503).
"""

from __future__ import annotations

from ..errors import ModelError, TextclfError

__all__ = [
    "BodyTooLarge",
    "ModelFailure",
    "ModelTimeout",
    "NotReady",
    "RequestError",
    "UnsupportedAccept",
    "UnsupportedContentType",
]


class ModelFailure(ModelError):
    """The model (or a custom handler function) failed on a request that was itself fine."""


class ModelTimeout(ModelError):
    """The prediction took longer than the endpoint's request timeout."""


class RequestError(TextclfError):
    """A request body or header the endpoint cannot use."""


class BodyTooLarge(RequestError):
    """The request body is larger than the endpoint accepts."""


class UnsupportedContentType(RequestError):
    """The request's Content-Type is not one the endpoint can read."""


class UnsupportedAccept(RequestError):
    """The Accept header allows no type the endpoint can answer in."""


class NotReady(TextclfError):
    """The model is still loading, or it failed to load."""
