"""The search space: which hyperparameters a study varies, and over what.

A space file (JSON, or YAML by suffix) maps hyperparameter names to one spec each::

    {"learning_rate": {"type": "float", "low": 1e-5, "high": 1e-4, "log": true},
     "batch_size": {"type": "categorical", "choices": [16, 32, 64]},
     "epochs": {"type": "int", "low": 1, "high": 4}}

Every name and value is checked against :class:`~textclf.config.Hyperparameters` when the
file is read, so a bad space fails before any trial runs, with one line naming the file and
the parameter.

    >>> space = SearchSpace.from_mapping({"epochs": {"type": "int", "low": 1, "high": 3}})
    >>> space.grid()
    {'epochs': [1, 2, 3]}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Hyperparameters
from ..errors import ConfigError
from ..options import value_types

__all__ = ["DEFAULT_SPACE", "Param", "SearchSpace"]

KINDS = ("float", "int", "categorical")
_KEYS = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}

DEFAULT_SPACE: dict[str, dict] = {
    "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-4, "log": True},
    "batch_size": {"type": "categorical", "choices": [16, 32, 64]},
    "epochs": {"type": "int", "low": 1, "high": 4},
}
"""What a study searches when no space is given (less any hyperparameter fixed by a flag)."""


@dataclass(frozen=True)
class Param:
    """One searched hyperparameter: a float or int range (linear or log, optional step), or choices."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        """Ask an Optuna trial for this parameter's value."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def grid_values(self, source: str) -> list:
        """Every value a grid search tries."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step is None:
            raise ConfigError(
                f"{source}: {self.name}: a grid search needs a 'step' for a float range "
                f"(or use 'categorical' choices, or --strategy bayesian|random)."
            )
        count = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        return [round(self.low + i * self.step, 12) for i in range(count)]


@dataclass(frozen=True)
class SearchSpace:
    """The searched hyperparameters, in file order; ``source`` names where they came from for errors."""

    params: tuple[Param, ...]
    source: str = "search space"

    @classmethod
    def from_file(cls, path: str | Path) -> SearchSpace:
        """Read a ``.json``, ``.yaml`` or ``.yml`` space file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{path}: search space file not found.") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read search space file ({exc}).") from None
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            try:
                values = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())}).") from exc
        else:
            try:
                values = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"{path}: not valid JSON ({exc}); expected an object such as "
                    '{"learning_rate": {"type": "float", "low": 1e-5, "high": 1e-4, "log": true}}.'
                ) from exc
        return cls.from_mapping(values, source=str(path))

    @classmethod
    def from_mapping(cls, values: Any, source: str = "search space") -> SearchSpace:
        """Check and build a space from ``{name: spec}``."""
        if not isinstance(values, Mapping) or not values:
            raise ConfigError(
                f"{source}: expected a non-empty object of hyperparameter name -> "
                '{"type": "float"|"int"|"categorical", ...}.'
            )
        params = tuple(
            _param(Hyperparameters.field_name(str(name), source), spec, source) for name, spec in values.items()
        )
        names = [p.name for p in params]
        twice = next((name for name in names if names.count(name) > 1), None)
        if twice:
            raise ConfigError(f"{source}: {twice} is given twice (under two spellings).")
        return cls(params, source)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def without(self, names) -> SearchSpace:
        return SearchSpace(tuple(p for p in self.params if p.name not in names), self.source)

    def suggest(self, trial) -> dict[str, Any]:
        return {p.name: p.suggest(trial) for p in self.params}

    def grid(self) -> dict[str, list]:
        return {p.name: p.grid_values(self.source) for p in self.params}

    def to_dict(self) -> dict[str, dict]:
        """The space as a file would write it (stored with the study to check a resumed run)."""
        out = {}
        for p in self.params:
            if p.kind == "categorical":
                out[p.name] = {"type": p.kind, "choices": list(p.choices)}
            else:
                out[p.name] = {"type": p.kind, "low": p.low, "high": p.high, "log": p.log, "step": p.step}
        return out


def _param(name: str, spec: Any, source: str) -> Param:
    """One spec, checked: field names and types, ranges, and the values against Hyperparameters."""
    where = f"{source}: {name}"
    types = value_types(Hyperparameters)
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f'{where}: expected an object such as {{"type": "float", "low": 1e-5, "high": 1e-4}}, got {spec!r}.'
        )
    kind = spec.get("type")
    if kind not in KINDS:
        raise ConfigError(f"{where}: 'type' must be one of {', '.join(KINDS)}, but got {kind!r}.")
    unknown = sorted(set(spec) - _KEYS[kind])
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} for type {kind}; expected {', '.join(sorted(_KEYS[kind]))}."
        )
    field_type = types[name]
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: 'choices' must be a non-empty list, but got {choices!r}.")
        for choice in choices:
            if not isinstance(choice, (bool, int, float, str)):
                raise ConfigError(f"{where}: choices must be numbers, strings or booleans, but got {choice!r}.")
            _check_value(name, choice, where)
        if len(set(map(repr, choices))) < len(choices):
            raise ConfigError(f"{where}: 'choices' lists a value twice: {choices!r}.")
        return Param(name, kind, choices=tuple(choices))
    if field_type not in (int, float):
        raise ConfigError(
            f"{where}: {name} is a {field_type.__name__} hyperparameter; search it with "
            f'{{"type": "categorical", "choices": [...]}}, not a {kind} range.'
        )
    if kind == "float" and field_type is int:
        raise ConfigError(f"{where}: {name} is an integer hyperparameter; use type int (or categorical), not float.")
    bounds = {}
    for key in ("low", "high"):
        value = spec.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where}: '{key}' must be a number, but got {value!r}.")
        if kind == "int" and not float(value).is_integer():
            raise ConfigError(f"{where}: '{key}' must be an integer for type int, but got {value!r}.")
        bounds[key] = int(value) if kind == "int" else float(value)
    low, high = bounds["low"], bounds["high"]
    if low > high:
        raise ConfigError(f"{where}: 'low' must not exceed 'high', but got low={low} > high={high}.")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: 'log' must be true or false, but got {log!r}.")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, but got low={low}.")
    step = spec.get("step")
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not step > 0:
            raise ConfigError(f"{where}: 'step' must be a positive number, but got {step!r}.")
        if kind == "int" and not float(step).is_integer():
            raise ConfigError(f"{where}: 'step' must be an integer for type int, but got {step!r}.")
        if log and (kind == "float" or step != 1):
            raise ConfigError(
                f"{where}: 'log' and 'step' cannot be combined (Optuna samples log ranges continuously); drop one."
            )
        step = int(step) if kind == "int" else float(step)
    for value in (low, high):
        _check_value(name, value, where)
    return Param(name, kind, low, high, log, step)


def _check_value(name: str, value: Any, where: str) -> None:
    """A value the search may pick must be one Hyperparameters accepts (type and range)."""
    try:
        Hyperparameters().updated({name: value}, source=where)
    except ConfigError as exc:
        message = str(exc).removeprefix(f"{where}: ")
        raise ConfigError(f"{where}: the value {value!r} is not allowed: {message}") from None
