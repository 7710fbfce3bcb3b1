"""The rules settings are checked against, written once for every settings object.

Each rule raises :class:`~textclf.errors.ConfigError` with one sentence that names the
field and the value, in Optuna's words ("epochs must be at least 1, but got epochs=0.").
Settings dataclasses call them from ``__post_init__``:

    >>> from textclf.validation import at_least, one_of
    >>> at_least("epochs", 3, 1)
    >>> one_of("device", "tpu", ("auto", "cpu", "cuda"))
    Traceback (most recent call last):
    ...
    textclf.errors.ConfigError: device must be one of 'auto', 'cpu', 'cuda', but got device='tpu'.

:func:`check_fields` applies the rules a dataclass declares in its fields' metadata
(``choices``, ``low``, ``high``, ``positive``) and rejects non-finite floats, so a field states its range
where it is declared.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

from .errors import ConfigError

__all__ = ["at_least", "at_most", "between", "check_fields", "finite", "one_of", "positive"]


def at_least(name: str, value: float | None, low: float) -> None:
    """``value`` (unless None) is at least ``low``."""
    if value is not None and value < low:
        raise ConfigError(f"{name} must be at least {low}, but got {name}={value}.")


def at_most(name: str, value: float | None, high: float) -> None:
    """``value`` (unless None) is at most ``high``."""
    if value is not None and value > high:
        raise ConfigError(f"{name} must be at most {high}, but got {name}={value}.")


def between(name: str, value: float | None, low: float, high: float, *, high_open: bool = False) -> None:
    """``low <= value <= high`` (``< high`` with ``high_open``), unless ``value`` is None."""
    if value is None:
        return
    if not (low <= value < high if high_open else low <= value <= high):
        interval = f"[{low}, {high})" if high_open else f"[{low}, {high}]"
        raise ConfigError(f"{name} must be in {interval}, but got {name}={value}.")


def positive(name: str, value: float | None) -> None:
    """``value`` (unless None) is greater than 0."""
    if value is not None and not value > 0:
        raise ConfigError(f"{name} must be positive, but got {name}={value}.")


def finite(name: str, value: float | None) -> None:
    """``value`` (unless None) is neither infinite nor NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, but got {name}={value}.")


def one_of(name: str, value: Any, choices: Iterable[Any]) -> None:
    """``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, but got {name}={value!r}.")


def check_fields(settings: Any) -> None:
    """Check every field of the dataclass instance ``settings`` against its metadata.

    ``choices`` (one_of), ``low`` (at_least), ``high`` (at_most) and ``positive`` are read from
    each field's metadata; float values must be finite. None passes every rule (an unset optional field).
    """
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if value is None:
            continue
        finite(f.name, value)
        if f.metadata.get("choices"):
            one_of(f.name, value, f.metadata["choices"])
        if f.metadata.get("low") is not None:
            at_least(f.name, value, f.metadata["low"])
        if f.metadata.get("high") is not None:
            at_most(f.name, value, f.metadata["high"])
        if f.metadata.get("positive"):
            positive(f.name, value)
