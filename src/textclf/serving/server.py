"""Run the endpoint with uvicorn: one process, or ``workers`` processes sharing the port.

SIGTERM (or Ctrl-C) stops accepting connections, lets in-flight requests finish (up to
``graceful_timeout_s``), drains the batcher and exits 0.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from contextlib import contextmanager

from ..errors import ConfigError, ModelError
from .config import ServeConfig

__all__ = ["serve"]


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn re-raises SIGTERM/SIGINT after a graceful shutdown; a requested stop exits 0 here."""

        @contextmanager
        def capture_signals(self):
            with super().capture_signals():
                yield
                getattr(self, "_captured_signals", []).clear()

    return Server


def _log_config() -> dict:
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["textclf"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def _preflight(config: ServeConfig) -> None:
    """Refuse a model folder that is not there, or flags its task has no use for, before binding the port
    (cheap checks only; a Hub model's task is checked when it loads)."""
    from .. import artifact
    from ..models import resolve_model

    if config.model:
        resolve_model(config.model)
        return
    folder = artifact.ModelFolder.read(config.model_dir)
    if (config.threshold is not None or config.at_least_one) and not folder.labels.multi_label:
        raise ConfigError(
            f"{config.model_dir}: --threshold and --at-least-one apply to multi-label models; this one is "
            "single-label (its prediction is the top class)."
        )


def serve(config: ServeConfig) -> None:
    """Serve until SIGTERM/SIGINT. A model that cannot load raises :class:`ModelError`."""
    import uvicorn

    _preflight(config)
    options = dict(
        host=config.host,
        port=config.port,
        access_log=config.access_log,
        log_config=_log_config(),
        timeout_graceful_shutdown=config.graceful_timeout_s,
        lifespan="on",
    )
    if config.workers == 1:
        from .app import create_app

        failure: list[str] = []
        server = None

        def stop(message: str) -> None:
            failure.append(message)
            server.should_exit = True

        server = _server_class()(uvicorn.Config(create_app(config, on_load_failure=stop), **options))
        server.run()
        if failure:
            raise ModelError(f"cannot load the model: {failure[0]}")
        return

    from .app import make_handler

    make_handler(config).load()  # fail here, once, rather than in every worker
    metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="textclf-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    os.environ["TEXTCLF_SERVE_CONFIG"] = config.to_json()
    try:
        uvicorn.run("textclf.serving.app:app_from_env", factory=True, workers=config.workers, **options)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
