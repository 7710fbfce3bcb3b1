"""``textclf serve``: a SageMaker-compatible real-time endpoint with dynamic batching.

    >>> from textclf.serving import ServeConfig, serve
    >>> serve(ServeConfig.resolve(model_dir="runs/reviews", port=8080))  # doctest: +SKIP

Layout: :mod:`~textclf.serving.config` (settings), :mod:`~textclf.serving.errors` (what a
request or the model did wrong), :mod:`~textclf.serving.codecs` (content types),
:mod:`~textclf.serving.batcher` (dynamic batching), :mod:`~textclf.serving.handler`
(model_fn/input_fn/predict_fn/output_fn and custom ``code/inference.py``),
:mod:`~textclf.serving.metrics` (Prometheus), :mod:`~textclf.serving.app` (the routes, and the
one place errors become HTTP statuses), :mod:`~textclf.serving.server` (uvicorn, workers, shutdown).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes
from .config import ServeConfig

if TYPE_CHECKING:
    from .app import create_app
    from .server import serve

# Imported on first use: the CLI reads ServeConfig's fields for every command's start-up,
# and should not pay for Starlette and NumPy unless it serves.
_LAZY = {"create_app": "app", "serve": "server"}


__getattr__ = lazy_attributes(__name__, _LAZY, globals())


__all__ = ["ServeConfig", "create_app", "serve"]
