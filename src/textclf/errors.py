"""Errors raised by textclf.

Every error a user can cause (bad flags, bad data, a missing model) is a
:class:`TextclfError`. Its message is one sentence: what was wrong, the value,
and how to fix it. The CLI prints it on one line and exits with code 2.

    TextclfError
     ├── ConfigError                  a hyperparameter or option has a bad value
     ├── DataError                    a data file is missing, malformed or unusable
     ├── ModelError                   a model cannot be resolved, loaded or run
     │    └── ModelFailure            the model failed on a request that was fine  (serving)
     ├── ArtifactError                a model folder cannot be written or read
     ├── RequestError                 a request the endpoint cannot use            (serving)
     │    ├── BodyTooLarge            the body is over the payload limit
     │    ├── UnsupportedContentType  the Content-Type is not one it reads
     │    └── UnsupportedAccept       the Accept header allows nothing it answers
     └── NotReady                     the model is still loading or failed to load (serving)

The classes marked (serving) live in :mod:`textclf.serving.errors`, next to the endpoint that
turns them into HTTP statuses.

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
    """A model id or folder cannot be resolved or loaded, or the loaded model cannot run."""


class ArtifactError(TextclfError):
    """A textclf model folder cannot be written or read."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT or SIGTERM once a checkpoint was written; the message says how to resume.

    A ``KeyboardInterrupt``, so code that already handles Ctrl-C (``textclf tune``) handles it too.
    """
