"""What a tuning run is: the data, the fixed hyperparameters, the space and the search settings.

:class:`TuneSettings` declares each setting of the search once (default, help, rules): the
``textclf tune`` flags are made from it, and :func:`textclf.tune` takes the same names as
keywords. :class:`TuneConfig` adds what is searched on: one frozen dataclass, checked on
construction (one sentence per rule, naming the value), and picklable, so ``--parallel-trials``
processes receive exactly what the parent parsed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Hyperparameters
from ..data import ReadOptions
from ..errors import ConfigError
from ..options import setting
from ..validation import check_fields
from .space import SearchSpace

__all__ = ["DIRECTIONS", "EARLY_STOPPING", "OBJECTIVES", "STRATEGIES", "TuneConfig", "TuneSettings"]

SINGLE_LABEL_OBJECTIVES = ("val_accuracy", "val_loss", "val_f1", "val_mcc")
MULTI_LABEL_OBJECTIVES = ("val_micro_f1", "val_macro_f1", "val_loss")
OBJECTIVES = (*SINGLE_LABEL_OBJECTIVES, *MULTI_LABEL_OBJECTIVES[:2])
STRATEGIES = ("bayesian", "random", "grid")
EARLY_STOPPING = ("off", "median", "hyperband")
DIRECTIONS = ("max", "min")
STUDY_FILE = "study.db"


@dataclass(frozen=True)
class TuneSettings:
    """How a study searches: what it optimises, how many trials, which sampler and pruner, where it is stored."""

    objective: str | None = setting(
        None,
        "What the best trial is chosen by (its kept epoch's value) [default: val_accuracy; val_micro_f1 for "
        "multi-label data].",
        choices=OBJECTIVES,
    )
    direction: str | None = setting(
        None, "Maximise or minimise the objective [default: min for val_loss, else max]", choices=DIRECTIONS
    )
    max_trials: int = setting(
        20, "Trials finished (complete or pruned) in the whole study, over all runs and processes.", low=1
    )
    parallel_trials: int = setting(1, "Trials at once, as processes sharing the CPU threads and the study.", low=1)
    strategy: str = setting(
        "bayesian",
        "Optuna sampler: TPE, random, or every grid point (float ranges need a step).",
        choices=STRATEGIES,
    )
    early_stopping_trials: str = setting(
        "median", "Prune trials whose per-epoch objective falls behind.", choices=EARLY_STOPPING
    )
    pruning_startup_trials: int = setting(2, "median: trials finished before any is pruned.", low=0)
    timeout: float | None = setting(None, "Seconds after which no new trial starts.", positive=True)
    storage: str | None = setting(
        None,
        "Optuna storage URL shared by several machines, e.g. postgresql://user:pw@host/db "
        "[default: sqlite in --output].",
    )
    study_name: str = setting("textclf", "Study name within --storage.")
    keep_top: int | None = setting(None, "Keep only the K best trials' model folders.", low=1)
    seed: int | None = setting(
        None, "Seed of the sampler (--seed is training's) [default: none].", flag="--sampler-seed"
    )

    def __post_init__(self) -> None:
        if self.direction is None:
            object.__setattr__(self, "direction", "min" if self.objective == "val_loss" else "max")
        check_fields(self)

    @property
    def maximize(self) -> bool:
        return self.direction == "max"

    def for_task(self, multi_label: bool) -> TuneSettings:
        """These settings with the objective filled in for the data's task (a one-line error when it does not
        apply to it: accuracy and MCC are single-label scores, micro F1 a multi-label one)."""
        allowed = MULTI_LABEL_OBJECTIVES if multi_label else SINGLE_LABEL_OBJECTIVES
        if self.objective is None:
            return dataclasses.replace(self, objective=allowed[0])
        if self.objective not in allowed:
            task = "multi-label" if multi_label else "single-label"
            raise ConfigError(
                f"objective {self.objective} does not apply to {task} data; use one of {', '.join(allowed)}."
            )
        return self

    @classmethod
    def split(cls, keywords: Mapping[str, Any], base: TuneSettings | None = None) -> tuple[TuneSettings, dict]:
        """``keywords`` that name a setting applied over ``base`` (or the defaults), and the rest.

        ``seed`` is the sampler's; training's seed is a hyperparameter (``hyperparameters=``).
        """
        names = {f.name for f in dataclasses.fields(cls)}
        given = {k: v for k, v in keywords.items() if k in names}
        rest = {k: v for k, v in keywords.items() if k not in names}
        if "objective" in given:
            given.setdefault("direction", None)  # follows the new objective unless given too
        return dataclasses.replace(base or cls(), **given), rest


@dataclass(frozen=True)
class TuneConfig:
    """A study: trainings of ``model`` on ``data``, each with ``space`` sampled over ``hyperparameters``."""

    data: str
    output: Path
    space: SearchSpace
    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters)
    model: str | None = None
    validation: str | None = None
    read_options: ReadOptions = field(default_factory=ReadOptions)
    settings: TuneSettings = field(default_factory=TuneSettings)

    def __post_init__(self) -> None:
        object.__setattr__(self, "output", Path(self.output))
        object.__setattr__(self, "data", str(self.data))
        if self.model is not None:
            object.__setattr__(self, "model", str(self.model))
        if self.validation is not None:
            object.__setattr__(self, "validation", str(self.validation))
        if self.validation is None and self.hyperparameters.validation_split_ratio == 0:
            raise ConfigError("tuning needs validation data: pass --validation, or a validation_split_ratio above 0.")
        if not self.space.params:
            raise ConfigError(f"{self.space.source}: nothing to search: every hyperparameter in it is fixed.")
        if self.settings.strategy == "grid":
            self.space.grid()  # a float range without a step fails here, before any trial

    @property
    def storage_url(self) -> str:
        return self.settings.storage or f"sqlite:///{(self.output / STUDY_FILE).resolve()}"

    def identity(self) -> dict:
        """What must not change when a study is resumed (stored with the study, compared on load)."""
        return {
            "objective": self.settings.objective,
            "direction": self.settings.direction,
            "space": self.space.to_dict(),
            "hyperparameters": self.hyperparameters.to_dict(),
            "model": self.model,
            "data": self.data,
            "validation": self.validation,
        }
