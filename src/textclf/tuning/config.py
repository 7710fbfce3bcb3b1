"""What a tuning run is: the data, the fixed hyperparameters, the space and the search settings.

One frozen dataclass, checked on construction (one sentence per rule, naming the value), and
picklable, so ``--parallel-trials`` processes receive exactly what the parent parsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import Hyperparameters
from ..data import ReadOptions
from ..errors import ConfigError
from ..validation import at_least
from .space import SearchSpace

__all__ = ["DIRECTIONS", "EARLY_STOPPING", "OBJECTIVES", "STRATEGIES", "TuneConfig"]

OBJECTIVES = ("val_accuracy", "val_loss", "val_f1", "val_mcc")
STRATEGIES = ("bayesian", "random", "grid")
EARLY_STOPPING = ("off", "median", "hyperband")
DIRECTIONS = ("max", "min")
STUDY_FILE = "study.db"


@dataclass(frozen=True)
class TuneConfig:
    """A study: ``max_trials`` trainings of ``model`` on ``data``, each with ``space`` sampled over ``hyperparameters``."""

    data: str
    output: Path
    space: SearchSpace
    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters)
    model: str | None = None
    validation: str | None = None
    read_options: ReadOptions = field(default_factory=ReadOptions)
    objective: str = "val_accuracy"
    direction: str | None = None  # None: max, or min for val_loss
    max_trials: int = 20
    parallel_trials: int = 1
    strategy: str = "bayesian"
    early_stopping_trials: str = "median"
    pruning_startup_trials: int = 2
    timeout: float | None = None
    storage: str | None = None  # None: sqlite in output
    study_name: str = "textclf"
    keep_top: int | None = None
    seed: int | None = None  # the sampler's; None: a fresh one each run

    def __post_init__(self) -> None:
        object.__setattr__(self, "output", Path(self.output))
        object.__setattr__(self, "data", str(self.data))
        if self.validation is not None:
            object.__setattr__(self, "validation", str(self.validation))
        if self.direction is None:
            object.__setattr__(self, "direction", "min" if self.objective == "val_loss" else "max")
        _one_of("objective", self.objective, OBJECTIVES)
        _one_of("direction", self.direction, DIRECTIONS)
        _one_of("strategy", self.strategy, STRATEGIES)
        _one_of("early_stopping_trials", self.early_stopping_trials, EARLY_STOPPING)
        at_least("max_trials", self.max_trials, 1)
        at_least("parallel_trials", self.parallel_trials, 1)
        at_least("pruning_startup_trials", self.pruning_startup_trials, 0)
        if self.keep_top is not None:
            at_least("keep_top", self.keep_top, 1)
        if self.timeout is not None and not self.timeout > 0:
            raise ConfigError(f"timeout must be a positive number of seconds, but got timeout={self.timeout}.")
        if self.validation is None and self.hyperparameters.validation_split_ratio == 0:
            raise ConfigError("tuning needs validation data: pass --validation, or a validation_split_ratio above 0.")
        if not self.space.params:
            raise ConfigError(f"{self.space.source}: nothing to search: every hyperparameter in it is fixed.")
        if self.strategy == "grid":
            self.space.grid()  # a float range without a step fails here, before any trial

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{(self.output / STUDY_FILE).resolve()}"

    @property
    def maximize(self) -> bool:
        return self.direction == "max"

    def identity(self) -> dict:
        """What must not change when a study is resumed (stored with the study, compared on load)."""
        return {
            "objective": self.objective,
            "direction": self.direction,
            "space": self.space.to_dict(),
            "hyperparameters": self.hyperparameters.to_dict(),
            "model": self.model,
            "data": self.data,
            "validation": self.validation,
        }


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, but got {name}={value!r}.")
