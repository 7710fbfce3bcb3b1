"""Settings declared once: a dataclass field holds a setting's default, help and rules; flags are made from it.

Every settings dataclass (``Hyperparameters``, ``RunOptions``, ``TuneSettings``, ``BatchOptions``,
``ServeConfig``, ``ExportSettings``) declares each field with :func:`setting`: the default, one
line of help, and the rules :func:`textclf.validation.check_fields` enforces (``choices``,
``low``, ``high``, ``positive``). :func:`click_options` turns the fields into click options,
choosing each flag's shape from the field's real type (``typing.get_type_hints``), and
:func:`values_of` takes the values back out of a command's keyword arguments.

================  =====================================================================
field type        flag
================  =====================================================================
bool              ``--x``, a switch; ``--x/--off`` when the field names an off flag
bool | None       ``--x/--no-x``; neither given: None
int, float        ``--x N``; a click range when the field declares ``low``/``high``/``positive``
str               ``--x TEXT``; ``--x [a|b]`` when the field declares ``choices``
tuple[str, ...]   ``--x`` given once per value
X | None          as X; not given: None
a dataclass       the flags of its own fields (export's ``QuantizationSettings``)
================  =====================================================================

A command picks one of three styles, by how it builds its settings:

* ``typed``: click converts and checks every value and shows the field's default
  (``tune``, ``batch``, ``export``, the reading options);
* ``layered``: an option not given is None, so the layer below fills it in (``RunOptions``'
  defaults, ``serve``'s environment); the help ends with the default;
* ``text``: values reach the dataclass as text and its own parser converts them, as it does a
  ``hyperparameters.json`` file's strings (``Hyperparameters``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["STYLES", "click_options", "flag_name", "setting", "settings_fields", "value_types", "values_of"]

STYLES = ("typed", "layered", "text")
_METAVARS = {int: "INTEGER", float: "FLOAT"}


def setting(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    default_factory: Any = dataclasses.MISSING,
    choices: Iterable[str] | None = None,
    low: float | None = None,
    high: float | None = None,
    positive: bool = False,
    flag: str | None = None,
    aliases: tuple[str, ...] = (),
    negative: str | None = None,
    parse: Callable[[str], Any] | None = None,
    shown: str | None = None,
    cli: bool = True,
) -> Any:
    """A dataclass field holding one setting.

    ``flag`` replaces ``--field-name``; ``aliases`` are more names for it; ``negative`` is a bool's
    off flag (``--per-tensor``); ``parse`` turns the flag's text into the value and ``shown`` is
    the default as the help shows it; ``cli=False`` keeps the field off the command line.
    """
    metadata = {
        "help": help,
        "choices": None if choices is None else tuple(choices),
        "low": low,
        "high": high,
        "positive": positive,
        "flag": flag,
        "aliases": tuple(aliases),
        "negative": negative,
        "parse": parse,
        "shown": shown,
        "cli": cli,
    }
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


_UNSET = setting().metadata  # what a key means when a field (or a dataclass without setting()) leaves it out


def settings_fields(cls: type, only: Iterable[str] | None = None) -> list[tuple[dataclasses.Field, Any]]:
    """(field, real type) of each of ``cls``'s command-line fields (all but ``cli=False``), in declaration order."""
    hints = typing.get_type_hints(cls)
    chosen = [f for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]
    if only is not None:
        wanted = set(only)
        chosen = [f for f in chosen if f.name in wanted]
    return [(f, hints[f.name]) for f in chosen]


def flag_name(f: dataclasses.Field) -> str:
    """The field's flag: ``--field-name``, unless the field names another."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _parameter(f: dataclasses.Field) -> str:
    """The command's keyword argument for the field: its flag's name (``--sampler-seed``: sampler_seed)."""
    return flag_name(f)[2:].replace("-", "_")


def click_options(
    cls: type,
    style: str = "typed",
    only: Iterable[str] | None = None,
) -> Callable:
    """A decorator adding one click option per command-line field of ``cls`` (see the module docstring)."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, but got {style!r}")
    options = []
    for f, kind in settings_fields(cls, only):
        if dataclasses.is_dataclass(kind):
            options.append(click_options(kind, style))
        else:
            meta = {**_UNSET, **f.metadata}
            options.append(_option(f, kind, meta, style))

    def decorate(command: Callable) -> Callable:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def values_of(cls: type, given: dict[str, Any], only: Iterable[str] | None = None) -> dict[str, Any]:
    """Pop ``cls``'s fields out of a command's keyword arguments: the values given (None: not given)."""
    values = {}
    for f, kind in settings_fields(cls, only):
        if dataclasses.is_dataclass(kind):
            values[f.name] = kind(**values_of(kind, given))
            continue
        value = given.pop(_parameter(f))
        if value is None or value == ():
            continue
        parse = f.metadata.get("parse")
        values[f.name] = parse(value) if parse else value
    return values


def _option(f: dataclasses.Field, kind: Any, meta: Mapping[str, Any], style: str) -> Callable:
    """One field's click option."""
    import click  # here, not at the top: data.reader and the config classes declare fields without click

    kind, optional = _unwrap(kind)
    names = [flag_name(f), *meta["aliases"], _parameter(f)]
    default = _default(f)
    kwargs: dict[str, Any] = {"help": meta["help"], "default": None if style != "typed" else default}
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
        kwargs = {"help": meta["help"], "required": True}  # no default at all: click takes None for a value given
    if kind is bool and style != "text":
        negative = meta["negative"] or (f"--no-{names[0][2:]}" if optional else None)
        if negative:
            names[0] = f"{names[0]}/{negative}"
        else:
            kwargs["is_flag"] = True
        return click.option(*names, show_default=style == "typed", **kwargs)
    if style == "text":
        kwargs["metavar"] = "true|false" if kind is bool else _METAVARS.get(kind, "TEXT")
        if kind is bool:
            kwargs.update(is_flag=False, flag_value="true")
    else:
        kwargs.update(_value_type(kind, meta))
    if meta["parse"]:  # the flag's text is parsed by values_of, after click, so its errors are textclf's one line
        kwargs["default"] = meta["shown"] if style == "typed" else None
    if style == "typed":
        kwargs["show_default"] = True
    elif default is not None and "[default:" not in meta["help"]:
        shown = meta["shown"] or (str(default).lower() if isinstance(default, bool) else default)
        kwargs["help"] = f"{meta['help']} [default: {shown}]"
    return click.option(*names, **kwargs)


def _value_type(kind: Any, meta: Mapping[str, Any]) -> dict[str, Any]:
    """click's type for a value option: a choice, a range, a path, a repeatable flag or the plain type."""
    import click

    if meta["parse"]:
        return {"type": str}  # the field's ``parse`` makes the value of the text
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        return {"multiple": True, **_value_type(item, meta)}
    if meta["choices"]:
        return {"type": click.Choice(meta["choices"])}
    if kind in (int, float) and (meta["low"] is not None or meta["high"] is not None or meta["positive"]):
        bounds = click.IntRange if kind is int else click.FloatRange
        if meta["positive"]:
            return {"type": bounds(min=0, min_open=True)}
        return {"type": bounds(min=meta["low"], max=meta["high"])}
    if kind is Path:
        return {"type": click.Path(path_type=Path)}
    if kind in (int, float, str):
        return {"type": kind}
    raise TypeError(f"no flag for a field of type {kind!r}; give the field a 'parse' that reads its text")


def value_types(cls: type) -> dict[str, Any]:
    """Each field's type with ``| None`` taken off: ``{"epochs": int, ...}`` for ``epochs: int | None``."""
    return {name: _unwrap(kind)[0] for name, kind in typing.get_type_hints(cls).items()}


def _unwrap(kind: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (it, False)."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(rest) == 1:
            return rest[0], True
    return kind, False


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None
