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

from .app import create_app
from .config import ServeConfig
from .server import serve

__all__ = ["ServeConfig", "create_app", "serve"]
