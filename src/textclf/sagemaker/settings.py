"""A training job's hyperparameters.json, read into textclf's typed settings.

SageMaker hands every value over as a string, encoded two ways: the HuggingFace and PyTorch
estimators ``json.dumps`` each value (``"bert"`` arrives as ``"\\"bert\\""``, ``3`` as ``"3"``), the
generic ``Estimator`` applies ``str()`` (``True`` arrives as ``"True"``). So each value is decoded
as JSON first and kept as the raw string when that fails, as the SageMaker training toolkit does.

Names may use hyphens or underscores (``batch-size``, ``batch_size``); JumpStart's names
(``epochs``, ``adam-learning-rate``, ``batch-size``, ``reinitialize-top-layer``,
``train-only-top-layer``) are textclf's. Besides every :class:`~textclf.config.Hyperparameters`
field, a job takes:

- ``model``: the base model (``default``, a Hub id, a folder in the image); a ``model`` input
  channel (incremental training) wins over it;
- ``nproc``: training processes on each host [default: the host's GPUs, else 1];
- how the run executes (:data:`RUN_OPTIONS`) and how the data is read (:data:`READ_OPTIONS`).

Entries starting with ``sagemaker_`` (the SDK's own) are ignored; any other name is an error.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import JUMPSTART_NAMES, Hyperparameters, RunOptions, coerce
from ..data import ReadOptions
from ..errors import ConfigError
from ..options import value_types

__all__ = ["JOB_NAMES", "READ_OPTIONS", "RUN_OPTIONS", "JobSettings", "decode"]

RUN_OPTIONS = (
    "precision",
    "device",
    "calibration",
    "checkpoint_every_steps",
    "keep_checkpoints",
    "gradient_checkpointing",
)
"""The :class:`~textclf.config.RunOptions` a job may set (the checkpoint folder and resuming follow the contract)."""

READ_OPTIONS = ("text_column", "label_column", "encoding", "on_bad_rows", "task", "label_separator")
"""The :class:`~textclf.data.ReadOptions` a job may set."""

JOB_NAMES = {"model": "model", "model_name": "model", "model_id": "model", "nproc": "nproc"}
"""Names of the job's own settings (``model_name``/``model_id``: the spellings HF estimator scripts use)."""


def decode(values: Mapping[str, Any]) -> dict[str, Any]:
    """Each value as JSON when it parses, else the string as it is (both SDK encodings, see the module docstring)."""
    decoded = {}
    for name, value in values.items():
        try:
            decoded[name] = json.loads(value) if isinstance(value, str) else value
        except json.JSONDecodeError:
            decoded[name] = value
    return decoded


@dataclass(frozen=True)
class JobSettings:
    """What hyperparameters.json asks of a training job, typed."""

    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters)
    run_options: RunOptions = field(default_factory=RunOptions)
    read_options: ReadOptions = field(default_factory=ReadOptions)
    model: str | None = None
    nproc: int | None = None

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], source: str = "hyperparameters.json") -> JobSettings:
        """Read ``raw`` (hyperparameters.json's object) as the module docstring says; a ConfigError names the
        entry that is wrong and what was expected."""
        values = decode(raw)
        hp, run, read, job = {}, {}, {}, {}
        run_types, read_types = value_types(RunOptions), value_types(ReadOptions)
        for given, value in values.items():
            if given.startswith("sagemaker_"):
                continue
            name = JUMPSTART_NAMES.get(given, given.replace("-", "_"))
            if name in JOB_NAMES:
                job[JOB_NAMES[name]] = value
            elif name in RUN_OPTIONS:
                run[name] = coerce(name, value, run_types[name], source)
            elif name in READ_OPTIONS:
                read[name] = coerce(name, value, read_types[name], source)
            elif name in value_types(Hyperparameters):
                hp[given] = value
            else:
                raise ConfigError(f"{source}: unknown hyperparameter {given!r}.{_suggestion(name)}")
        model = job.get("model")
        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise ConfigError(f"{source}: model has value {model!r}; expected 'default', a Hub id or a folder.")
        nproc = coerce("nproc", job["nproc"], int, source) if "nproc" in job else None
        if nproc is not None and nproc < 1:
            raise ConfigError(f"{source}: nproc has value {nproc!r}; expected 1 or more.")
        try:
            options = (RunOptions(**run), ReadOptions(**read))
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        return cls(Hyperparameters.from_mapping(hp, source), *options, model, nproc)


def _suggestion(name: str) -> str:
    known = [*value_types(Hyperparameters), *RUN_OPTIONS, *READ_OPTIONS, *JOB_NAMES]
    close = difflib.get_close_matches(name, known, n=1)
    return f" Did you mean {close[0]!r}?" if close else " See `textclf hyperparameters --help` and docs/sagemaker.md."
