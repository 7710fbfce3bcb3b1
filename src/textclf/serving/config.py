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
workers            ``SAGEMAKER_MODEL_SERVER_WORKERS``           1
request_timeout_s  ``SAGEMAKER_MODEL_SERVER_TIMEOUT``           (none)
=================  ===========================================  ==================

``model`` (a Hub id or a local Hugging Face classification folder, served as is) wins over
``model_dir`` when both come from the environment; passing both explicitly is an error.

Each field declares its flag's help (``textclf serve``'s options are made from the fields); the
ranges are checked in ``__post_init__`` rather than by click, so that a value out of range gets
the same one-line error whether it came from a flag, the environment or a keyword.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from ..choices import BACKEND_CHOICES, DTYPES
from ..errors import ConfigError
from ..options import setting
from ..validation import at_least, at_most, between, check_fields

__all__ = ["ServeConfig"]

SAGEMAKER_MODEL_DIR = "/opt/ml/model"
ENVIRONMENT = {
    "port": ("SAGEMAKER_BIND_TO_PORT", int, "a port number"),
    "workers": ("SAGEMAKER_MODEL_SERVER_WORKERS", int, "a number of processes"),
    "request_timeout_s": ("SAGEMAKER_MODEL_SERVER_TIMEOUT", float, "a number of seconds"),
}
"""Settings a SageMaker container's environment gives (see the module docstring's table)."""
MAX_PAYLOAD_MB = 6.0


@dataclass(frozen=True)
class ServeConfig:
    """Settings of one endpoint. Build it with :meth:`resolve` to apply the environment."""

    model_dir: str | None = setting(
        None, "Model folder (or model.tar.gz) to serve [default: $SM_MODEL_DIR, else /opt/ml/model]."
    )
    model: str | None = setting(
        None,
        "Serve a model never fine-tuned here: a Hub id or a local HF classification folder [default: $HF_MODEL_ID].",
    )
    host: str = setting("127.0.0.1", "Address to bind [default: 127.0.0.1; 0.0.0.0 to accept other machines].")
    port: int = setting(8080, "Port [default: $SAGEMAKER_BIND_TO_PORT, else 8080].")
    workers: int = setting(
        1, "Processes, each with its own model and batcher [default: $SAGEMAKER_MODEL_SERVER_WORKERS, else 1]."
    )
    request_timeout_s: float | None = setting(
        None,
        "Answer 504 when a request's prediction takes longer than this many seconds "
        "[default: $SAGEMAKER_MODEL_SERVER_TIMEOUT, else no limit].",
    )
    max_batch_size: int = setting(64, "Texts per forward pass [default: 64].")
    max_batch_delay_ms: float = setting(
        5.0, "How long a batch may wait for more texts while requests are arriving [default: 5]."
    )
    backend: str = setting(
        "auto",
        "torch, or an export made by `textclf export` [default: auto, the fastest export present, else torch].",
        choices=BACKEND_CHOICES,
    )
    dtype: str = setting(
        "auto",
        "torch backend: auto computes in bfloat16 where the CPU has it natively (~2x faster, probabilities "
        "within ~1e-2; with AMX only batches of 256 tokens or more), else float32 [default: auto].",
        choices=DTYPES,
    )
    threshold: float | None = setting(
        None,
        "Multi-label models: one decision threshold (0..1) for every label's sigmoid score "
        "[default: each label's, chosen on the validation data in training].",
    )
    at_least_one: bool = setting(
        False, "Multi-label models: a text with no label at or above its threshold gets its top label [default: off]."
    )
    max_payload_mb: float = setting(MAX_PAYLOAD_MB, "Larger request bodies get 413 [default: 6].")
    access_log: bool = setting(False, "Log every request [default: off].", negative="--no-access-log")
    graceful_timeout_s: float = setting(30.0, "SIGTERM: how long in-flight requests may take to finish.", cli=False)

    def __post_init__(self) -> None:
        if not (self.model_dir or self.model):
            raise ConfigError(
                "no model to serve: pass --model-dir DIR (a textclf model folder) or --model ID_OR_FOLDER, "
                "or set SM_MODEL_DIR or HF_MODEL_ID."
            )
        check_fields(self)
        for name, low in (
            ("port", 0),
            ("workers", 1),
            ("max_batch_size", 1),
            ("max_batch_delay_ms", 0),
            ("max_payload_mb", 0),
        ):
            at_least(name, getattr(self, name), low)
        at_most("port", self.port, 65535)
        if self.request_timeout_s is not None and self.request_timeout_s <= 0:
            raise ConfigError(f"request_timeout_s must be more than 0, but got {self.request_timeout_s}.")
        between("threshold", self.threshold, 0.0, 1.0)

    @classmethod
    def resolve(cls, env: Mapping[str, str] | None = None, **given) -> ServeConfig:
        """Keyword values (None = not given) over the SageMaker environment over defaults."""
        env = os.environ if env is None else env
        values = {k: v for k, v in given.items() if v is not None}
        if values.get("model_dir") and values.get("model"):
            raise ConfigError("pass --model-dir (a textclf folder) or --model (a Hub id or HF folder), not both.")
        for name, (variable, kind, what) in ENVIRONMENT.items():
            if name not in values and env.get(variable):
                try:
                    values[name] = kind(env[variable])
                except ValueError:
                    raise ConfigError(f"{variable} must be {what}, but got {env[variable]!r}.") from None
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
