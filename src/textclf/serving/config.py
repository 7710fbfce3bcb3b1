"""The endpoint's settings, shared by ``textclf serve``, :func:`textclf.serving.serve` and workers.

Each value comes from the command line (or keyword), else the environment a SageMaker
container sets, else the default:

=================  ===========================================  ==================
setting            environment                                  default
=================  ===========================================  ==================
model_dir          ``SM_MODEL_DIR``, then ``/opt/ml/model``     (none)
model              ``HF_MODEL_ID`` (with ``HF_TASK`` unset or   (none)
                   ``text-classification``)
port               ``SAGEMAKER_BIND_TO_PORT``                   8080
=================  ===========================================  ==================

``model`` (a Hub id or a local Hugging Face classification folder, served as is) wins over
``model_dir`` when both come from the environment; passing both explicitly is an error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from ..choices import BACKEND_CHOICES, DTYPES
from ..errors import ConfigError

__all__ = ["ServeConfig"]

SAGEMAKER_MODEL_DIR = "/opt/ml/model"
MAX_PAYLOAD_MB = 6.0


@dataclass(frozen=True)
class ServeConfig:
    """Settings of one endpoint. Build it with :meth:`resolve` to apply the environment."""

    model_dir: str | None = None  # a textclf model folder (or any HF classification folder)
    model: str | None = None  # zero-code deploy: a Hub id or a local HF classification folder
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1  # processes, each with its own model and batcher
    max_batch_size: int = 64  # texts per forward pass
    max_batch_delay_ms: float = 5.0  # how long a batch may wait for more texts
    backend: str = "auto"
    dtype: str = "auto"  # bfloat16 where the CPU has it natively (~2x), else float32
    max_payload_mb: float = MAX_PAYLOAD_MB  # larger bodies get 413
    access_log: bool = False
    graceful_timeout_s: float = 30.0  # SIGTERM: how long in-flight requests may take to finish

    def __post_init__(self) -> None:
        if not (self.model_dir or self.model):
            raise ConfigError(
                "no model to serve: pass --model-dir DIR (a textclf model folder) or --model ID_OR_FOLDER, "
                "or set SM_MODEL_DIR or HF_MODEL_ID."
            )
        for name, low in (
            ("port", 0),
            ("workers", 1),
            ("max_batch_size", 1),
            ("max_batch_delay_ms", 0),
            ("max_payload_mb", 0),
        ):
            if getattr(self, name) < low:
                raise ConfigError(f"{name} must be at least {low}, but got {name}={getattr(self, name)}.")
        if self.port > 65535:
            raise ConfigError(f"port must be at most 65535, but got port={self.port}.")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, but got dtype={self.dtype!r}.")
        if self.backend not in BACKEND_CHOICES:
            raise ConfigError(f"backend must be one of {', '.join(BACKEND_CHOICES)}, but got backend={self.backend!r}.")

    @classmethod
    def resolve(cls, env: Mapping[str, str] | None = None, **given) -> ServeConfig:
        """Keyword values (None = not given) over the SageMaker environment over defaults."""
        env = os.environ if env is None else env
        values = {k: v for k, v in given.items() if v is not None}
        if values.get("model_dir") and values.get("model"):
            raise ConfigError("pass --model-dir (a textclf folder) or --model (a Hub id or HF folder), not both.")
        if "port" not in values and env.get("SAGEMAKER_BIND_TO_PORT"):
            try:
                values["port"] = int(env["SAGEMAKER_BIND_TO_PORT"])
            except ValueError:
                raise ConfigError(
                    f"SAGEMAKER_BIND_TO_PORT must be a port number, but got {env['SAGEMAKER_BIND_TO_PORT']!r}."
                ) from None
        if not values.get("model_dir") and not values.get("model"):
            task = env.get("HF_TASK")
            if env.get("HF_MODEL_ID"):
                if task and task != "text-classification":
                    raise ConfigError(
                        f"HF_TASK={task!r} is not served by textclf; set HF_TASK=text-classification or unset it."
                    )
                values["model"] = env["HF_MODEL_ID"]
            elif env.get("SM_MODEL_DIR"):
                values["model_dir"] = env["SM_MODEL_DIR"]
            elif Path(SAGEMAKER_MODEL_DIR).is_dir():
                values["model_dir"] = SAGEMAKER_MODEL_DIR
        return cls(**values)

    @property
    def max_payload_bytes(self) -> int:
        return int(self.max_payload_mb * 1024 * 1024)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        return cls(**json.loads(text))
