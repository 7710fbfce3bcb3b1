"""Errors raised by textclf.

Every error a user can cause (bad flags, bad data, a missing model) is a
:class:`TextclfError`. Its message is one sentence: what was wrong, the value,
and how to fix it. The CLI prints it on one line and exits with code 2.

    TextclfError
     ├── ConfigError    a hyperparameter or option has a bad value
     ├── DataError      a data file is missing, malformed or unusable
     ├── ModelError     a model cannot be resolved or loaded
     ├── ArtifactError  a model folder cannot be written or read
     └── RequestError   an HTTP request the endpoint cannot answer (carries a 4xx status)

    KeyboardInterrupt
     └── TrainingInterrupted   SIGINT/SIGTERM stopped training after a checkpoint (not an error:
                               the CLI exits 130 with its message, which says how to resume)
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "ConfigError",
    "DataError",
    "ModelError",
    "RequestError",
    "TextclfError",
    "TrainingInterrupted",
]


class TextclfError(Exception):
    """Root of the errors a user can cause and fix."""


class ConfigError(TextclfError):
    """A hyperparameter or option has a value textclf cannot use."""


class DataError(TextclfError):
    """A data file is missing, malformed, or cannot be trained on."""


class ModelError(TextclfError):
    """A model id or folder cannot be resolved or loaded."""


class ArtifactError(TextclfError):
    """A textclf model folder cannot be written or read."""


class RequestError(TextclfError):
    """A request body or header the endpoint cannot use; ``status`` is the HTTP code to answer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT or SIGTERM once a checkpoint was written; the message says how to resume.

    A ``KeyboardInterrupt``, so code that already handles Ctrl-C (``textclf tune``) handles it too.
    """
