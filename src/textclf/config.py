"""Training settings: one typed, documented definition of each.

:class:`Hyperparameters` is the single source of truth for what a run learns. The CLI
builds one flag per field from it (``--learning-rate``), SageMaker-style
``hyperparameters.json`` files are read into it (all values may be strings), and the
Python API takes it directly. Precedence: CLI flags > file > defaults. Names follow
SageMaker JumpStart's text-classification hyperparameters.

:class:`RunOptions` says how a run executes (checkpoints, resume, device, precision): flags and
keyword arguments like the hyperparameters, but not part of the recorded hyperparameters,
since none of them changes what is learned beyond rounding.

    >>> from textclf.config import Hyperparameters
    >>> Hyperparameters(epochs=1).batch_size is None  # auto: chosen from the model and data at training
    True
    >>> Hyperparameters.from_mapping({"epochs": "2", "train_only_top_layer": "True"}).epochs
    2
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .options import setting, value_types
from .validation import between, check_fields

__all__ = ["ADDED_HYPERPARAMETERS", "AUTO_FIELDS", "JUMPSTART_NAMES", "Hyperparameters", "RunOptions", "coerce"]

JUMPSTART_NAMES = {"adam-learning-rate": "learning_rate", "adam_learning_rate": "learning_rate"}
"""JumpStart's other spellings (its sentence-pair specs); any hyphenated name is read as the underscored one."""

ADDED_HYPERPARAMETERS = {
    "sifting_min_keep_probability": 0.0,
    "evaluations_per_epoch": 1,
    "head_learning_rate_scale": 1.0,
}
"""Hyperparameters newer than some checkpoints and model folders, with the value that reproduces
those earlier runs (a missing name counts as this value)."""

AUTO_FIELDS = (
    "learning_rate",
    "head_learning_rate_scale",
    "batch_size",
    "epochs",
    "warmup_ratio",
    "evaluations_per_epoch",
)
"""Hyperparameters that default to None, "auto": chosen from the model and the data (textclf.training.auto)."""

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


@dataclass(frozen=True)
class Hyperparameters:
    """Everything that changes what a training run learns."""

    epochs: int | None = setting(
        None, "Passes over the training data [default: auto, from the rows and text lengths: 1 to 6].", low=1
    )
    learning_rate: float | None = setting(
        None,
        "Peak learning rate of AdamW (linear warmup, then linear decay) [default: auto, from the model's "
        "width: 1e-4 for small models like the default, 5e-5 base, 2e-5 large; 1e-3 with train_only_top_layer].",
        positive=True,
    )
    batch_size: int | None = setting(
        None,
        "Samples per micro-batch in each process; an optimizer step takes batch_size x "
        "gradient_accumulation_steps x processes [default: auto: 32].",
        low=1,
    )
    head_learning_rate_scale: float | None = setting(
        None,
        "The classification head's learning rate as a multiple of learning_rate: a fresh head starts at random "
        "and has further to go than the pretrained network [default: auto: 10 when the network is fine-tuned, "
        "1 with train_only_top_layer].",
        positive=True,
    )
    max_seq_length: int = setting(128, "Tokens kept per text; longer texts are truncated.", low=2)
    train_only_top_layer: bool = setting(False, "Freeze the pretrained network and train only the classification head.")
    reinitialize_top_layer: str = setting(
        "auto",
        "When fine-tuning a textclf model folder: 'auto' keeps its head if the label set matches "
        "(error otherwise), 'true' always starts a fresh head, 'false' keeps it or fails.",
        choices=("auto", "true", "false"),
    )
    validation_split_ratio: float = setting(
        0.2, "Share of the training data held out (stratified, seeded) when no validation file is given; 0 for none."
    )
    evaluations_per_epoch: int | None = setting(
        None,
        "Evaluations on the validation data per epoch, the last at its end, the others after the first optimizer "
        "step at which the epoch's rows consumed reach k/n of them; the best of all is kept, mid-epoch or not "
        "[default: auto: one per 500 optimizer steps, 1 to 4].",
        low=1,
    )
    early_stopping: bool = setting(
        False,
        "Stop when val_accuracy (multi-label: val_micro_f1) has not improved for early_stopping_patience epochs.",
    )
    early_stopping_patience: int = setting(5, "Epochs without improvement before early stopping.", low=1)
    early_stopping_min_delta: float = setting(
        0.0, "Smallest val_accuracy (val_micro_f1) gain that counts as an improvement.", low=0
    )
    warmup_ratio: float | None = setting(
        None,
        "Share of optimizer steps spent warming the learning rate up from 0 [default: auto: 0.1].",
        low=0,
        high=1,
    )
    weight_decay: float = setting(0.01, "AdamW weight decay (not applied to biases and LayerNorm weights).", low=0)
    seed: int = setting(0, "Seed for the split, the head's initialisation, shuffling and dropout.")
    gradient_accumulation_steps: int = setting(
        1, "Micro-batches whose gradients are summed before each optimizer step.", low=1
    )
    sifting: bool = setting(False, "Leave low-loss samples out of the backward pass (relative probabilistic sifting).")
    sifting_beta: float = setting(
        1.0,
        "Keep probability is percentile ** beta: about 1/(1+beta) of the data is trained on (more with "
        "sifting_min_keep_probability: 0.52 at beta 1, 0.34 at beta 3).",
        low=0,
    )
    sifting_loss_history_length: int = setting(
        500, "Recent losses a sample's loss is ranked among (its own batch's included).", low=1
    )
    sifting_delay: int = setting(
        100,
        "Training batches on all data (counted from the start of training) before sifting starts: with the "
        "first candidate (16 batches) that begins after them.",
        low=0,
    )
    sifting_min_keep_probability: float = setting(
        0.2,
        "Floor of every sample's keep probability, so each batch holds an unbiased share of the data: "
        "without it a high beta can drive training to predict every class alike. Raises the share kept "
        "(0.52 instead of 0.5 at beta 1, 0.34 instead of 0.25 at beta 3); 0 gives 1/(1+beta).",
        low=0,
        high=1,
    )
    sifting_lr_scaling: str = setting(
        "sqrt",
        "Learning rate of sifted optimizer steps: each one covers about 1/kept batches of data (kept: the share "
        "kept, 1/(1+beta) without the floor), so 'sqrt' multiplies it by sqrt(1/kept), Adam's square-root rule for "
        "a batch that many times larger; 'none' leaves it as it is. Steps before the first sifted batch keep the "
        "plain rate.",
        choices=("sqrt", "none"),
    )
    sifting_scoring_dtype: str = setting(
        "auto",
        "Precision of sifting's scoring pass (it only ranks losses): 'auto' is bfloat16 autocast where the "
        "hardware has it natively (~2x faster), else float32. Training's own is --precision.",
        choices=("auto", "float32", "bfloat16"),
    )

    def __post_init__(self) -> None:
        check_fields(self)  # the choices and ranges declared above
        between("validation_split_ratio", self.validation_split_ratio, 0, 1, high_open=True)

    # -- construction -------------------------------------------------------

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "hyperparameters") -> Hyperparameters:
        """Build from a mapping whose values may be strings (SageMaker style).

        Unknown names are an error (with a suggestion); ``sagemaker_*`` keys are ignored. JumpStart's
        hyphenated spellings (``batch-size``, ``adam-learning-rate``) name the same hyperparameters.
        """
        return cls().updated(values, source)

    @classmethod
    def from_file(cls, path: str | Path) -> Hyperparameters:
        """Read a ``hyperparameters.json`` file (a JSON object of name -> value)."""
        path = Path(path)
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: hyperparameters file not found.") from None
        except OSError as exc:  # a directory, no permission, ...
            raise ConfigError(f"{path}: cannot read hyperparameters file ({exc.strerror}).") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f'{path}: not valid JSON ({exc}); expected an object such as {{"epochs": "3"}}.') from exc
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a JSON object of hyperparameter names to values.")
        return cls.from_mapping(values, source=str(path))

    @classmethod
    def field_name(cls, given: str, source: str = "hyperparameters") -> str:
        """The field ``given`` names (``batch-size`` and JumpStart's ``adam-learning-rate`` too), or a
        ConfigError naming the closest field."""
        fields = value_types(cls)
        name = JUMPSTART_NAMES.get(given, given.replace("-", "_"))
        if name not in fields:
            hint = difflib.get_close_matches(name, fields, n=1)
            fix = f" Did you mean {hint[0]!r}?" if hint else f" Known names: {', '.join(fields)}."
            raise ConfigError(f"{source}: unknown hyperparameter {given!r}.{fix}")
        return name

    def updated(self, values: Mapping[str, Any], source: str = "hyperparameters") -> Hyperparameters:
        """Return a copy with ``values`` (possibly strings) applied over this one."""
        fields = value_types(type(self))
        changes: dict[str, Any] = {}
        for given, raw in values.items():
            if given.startswith("sagemaker_"):
                continue
            name = self.field_name(given, source)
            if name in changes:
                raise ConfigError(f"{source}: {name} is given twice (as {given!r} and under another name).")
            changes[name] = coerce(name, raw, fields[name], source)
        try:
            return dataclasses.replace(self, **changes)
        except ConfigError as exc:  # a value out of range: say where it came from
            raise ConfigError(f"{source}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def describe(cls) -> list[tuple[str, str, Any, str]]:
        """(name, type name, default, help) for every hyperparameter, for docs and ``textclf hyperparameters``."""
        kinds = value_types(cls)
        return [(f.name, kinds[f.name].__name__, f.default, f.metadata["help"]) for f in dataclasses.fields(cls)]


@dataclass(frozen=True)
class RunOptions:
    """How a training run executes and survives interruption; not what it learns."""

    checkpoint_dir: str | None = setting(
        None,
        "Folder for checkpoints [default: inside the output's hidden staging folder]; "
        "with several machines, one they all can read. Removed when the run completes.",
    )
    checkpoint_every_steps: int = setting(
        500,
        "Write a checkpoint every N optimizer steps (0: never mid-epoch), and at the end of every epoch but the last.",
        low=0,
    )
    keep_checkpoints: int = setting(
        2, "Newest checkpoints kept; 0 writes none (SIGINT/SIGTERM then stop without one).", low=0
    )
    resume: bool | None = setting(
        None,
        "Continue from the newest checkpoint of this job: --resume (True) requires one, --no-resume "
        "(False) discards any [default: resume when there is one].",
    )
    device: str = setting(
        "auto",
        "cpu, cuda, or auto (cuda when PyTorch sees a GPU). It computes in the precision --precision chooses.",
        choices=("auto", "cpu", "cuda"),
    )
    precision: str = setting(
        "auto",
        "Compute precision of training: 'bfloat16' runs the forward and backward passes under bfloat16 autocast "
        "(weights, optimizer state, loss and the saved model stay float32); 'auto' chooses it where the hardware "
        "multiplies bfloat16 natively (a GPU that supports it, a CPU with AMX or AVX512-BF16), else 'float32'. "
        "Forced on a CPU without it, bfloat16 is emulated and slower than float32.",
        choices=("auto", "float32", "bfloat16"),
    )
    gradient_checkpointing: bool = setting(
        False, "Recompute activations in the backward pass: less memory for long sequences, slower steps."
    )
    calibration: bool = setting(
        True,
        "Fit a temperature on the validation data at the end (temperature scaling) and fold it into the saved "
        "model, so its probabilities match how often it is right; --no-calibration keeps the raw ones.",
        negative="--no-calibration",
    )

    def __post_init__(self) -> None:
        check_fields(self)
        if self.resume and self.keep_checkpoints == 0:
            raise ConfigError("resume needs checkpoints, but keep_checkpoints=0; leave keep_checkpoints at 1 or more.")

    def updated(self, values: Mapping[str, Any]) -> RunOptions:
        """Return a copy with ``values`` (already typed) applied over this one."""
        return dataclasses.replace(self, **values)


def coerce(name: str, raw: Any, kind: type, source: str) -> Any:
    """Convert ``raw`` (a JSON value or a string) to the field's type ``kind``, or say why not.

    An auto field (``X | None``) takes ``auto`` (or JSON null, or ``None`` as Python's str() writes it)
    for None: chosen at training."""
    text = str(raw).strip()
    if name in AUTO_FIELDS and text.lower() in ("auto", "none", "null"):
        return None
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError
        if kind is int:
            if isinstance(raw, bool):
                raise ValueError
            number = float(text)
            if not number.is_integer():
                raise ValueError
            return int(number)
        if kind is float:
            if isinstance(raw, bool):
                raise ValueError
            return float(text)
        return text.lower() if name == "reinitialize_top_layer" else text
    except ValueError:
        expected = {bool: "true or false", int: "an integer", float: "a number"}[kind]
        expected += " or auto" if name in AUTO_FIELDS else ""
        raise ConfigError(f"{source}: {name} has value {raw!r}; expected {expected}.") from None
