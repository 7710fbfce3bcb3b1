"""Run under SageMaker's container contract: ``textclf sagemaker train`` and ``textclf sagemaker serve``.

The image's ENTRYPOINT is ``textclf sagemaker``, so SageMaker's ``docker run IMAGE train`` and
``docker run IMAGE serve`` reach these commands. :mod:`.layout` reads the ``/opt/ml`` folders,
:mod:`.settings` the hyperparameters, :mod:`.job` runs a training job; :func:`serve_config` is
the endpoint's settings. See docs/sagemaker.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..serving.config import ServeConfig
from .job import train_job
from .layout import Cluster, Layout
from .settings import JobSettings

__all__ = ["Cluster", "JobSettings", "Layout", "serve_config", "train_job"]


def serve_config(layout: Layout, env: Mapping[str, str] | None = None) -> ServeConfig:
    """``textclf serve``'s settings inside a SageMaker endpoint: the model in ``model/`` (SageMaker unpacked
    model.tar.gz there), every address on port 8080 (``SAGEMAKER_BIND_TO_PORT`` where set), workers and the
    request timeout from ``SAGEMAKER_MODEL_SERVER_WORKERS`` and ``SAGEMAKER_MODEL_SERVER_TIMEOUT``."""
    env = os.environ if env is None else env
    return ServeConfig.resolve(env, model_dir=str(layout.model_dir), host="0.0.0.0")
