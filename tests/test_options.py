"""Settings dataclasses make the CLI's flags: one flag per field, its help from the field, its shape from the type."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from textclf.batch import BatchOptions
from textclf.cli import main
from textclf.config import Hyperparameters, RunOptions
from textclf.data import ReadOptions
from textclf.errors import ConfigError
from textclf.export import ExportSettings, QuantizationSettings
from textclf.options import click_options, flag_name, setting, settings_fields, values_of
from textclf.serving.config import ServeConfig
from textclf.tuning import TuneSettings

READING = ("text_column", "label_column", "encoding", "on_bad_rows")
MODEL = ("batch_size", "backend", "dtype")
# command -> the settings dataclasses its flags are made from (with the fields it takes, where only some)
COMMANDS = {
    "train": [(Hyperparameters, None), (RunOptions, None), (ReadOptions, READING)],
    "tune": [(Hyperparameters, None), (TuneSettings, None), (ReadOptions, READING)],
    "evaluate": [(BatchOptions, MODEL), (ReadOptions, READING)],
    "predict": [(BatchOptions, MODEL)],
    "batch": [(BatchOptions, None)],
    "serve": [(ServeConfig, None)],
    "export": [(ExportSettings, None), (QuantizationSettings, None), (ReadOptions, READING)],
}
CASES = [(command, cls, only) for command, pairs in COMMANDS.items() for cls, only in pairs]


def _flags(command: click.Command) -> dict[str, click.Option]:
    return {opt: param for param in command.params if isinstance(param, click.Option) for opt in param.opts}


@pytest.mark.parametrize(("command", "cls", "only"), CASES, ids=[f"{c}-{cls.__name__}" for c, cls, _ in CASES])
def test_each_field_is_one_flag_of_the_command_with_the_fields_help(command, cls, only):
    flags = _flags(main.commands[command])
    for f, kind in settings_fields(cls, only):
        if dataclasses.is_dataclass(kind):
            continue  # its own fields: a case of their own
        option = flags.get(flag_name(f))
        assert option is not None, f"{command}: no {flag_name(f)} for {cls.__name__}.{f.name}"
        assert sum(option is other for other in flags.values()) == len(option.opts), option.opts
        if f.metadata.get("help"):
            assert option.help.startswith(f.metadata["help"]), (option.help, f.metadata["help"])


def test_every_command_line_field_is_declared_with_help():
    for cls in (Hyperparameters, RunOptions, TuneSettings, BatchOptions, ServeConfig, ExportSettings):
        for f, _ in settings_fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help"


def test_no_two_options_of_a_command_share_a_flag_or_a_parameter():
    for name, command in main.commands.items():
        options = [p for p in command.params if isinstance(p, click.Option)]
        opts = [o for p in options for o in (*p.opts, *p.secondary_opts)]
        assert len(opts) == len(set(opts)), name
        assert len({p.name for p in options}) == len(options), name


def test_fields_off_the_command_line_have_no_flag():
    assert "--graceful-timeout-s" not in _flags(main.commands["serve"])
    assert "--reduce-range" not in _flags(main.commands["export"])


# -- the shapes, from the real types -------------------------------------------


@dataclasses.dataclass(frozen=True)
class Example:
    name: str = setting(help="Required: no default.")
    switch: bool = setting(False, "A switch.")
    pair: bool = setting(True, "On or off.", negative="--off")
    maybe: bool | None = setting(None, "Yes, no, or unsaid.")
    count: int = setting(3, "At least one.", low=1)
    share: float = setting(0.5, "A share.", low=0, high=1)
    seconds: float | None = setting(None, "Above 0.", positive=True)
    mode: str = setting("a", "One of a, b.", choices=("a", "b"))
    groups: tuple[str, ...] = setting((), "Repeatable.", choices=("x", "y"))
    folder: Path | None = setting(None, "A path.")
    span: tuple[int, int] = setting((0, 1), "i/N.", parse=lambda text: tuple(map(int, text.split("/"))), shown="0/1")
    seed: int | None = setting(None, "Renamed.", flag="--example-seed")
    hidden: float = setting(1.0, "Not a flag.", cli=False)


def _command(style: str = "typed", cls: type = Example, got: list | None = None) -> click.Command:
    @click.command()
    @click_options(cls, style)
    def command(**kw):
        (got if got is not None else []).append(values_of(cls, kw))
        assert kw == {}, kw  # values_of took every value

    return command


def _run(*args: str, style: str = "typed", cls: type = Example) -> dict:
    got: list[dict] = []
    result = CliRunner().invoke(_command(style, cls, got), list(args))
    assert result.exit_code == 0, result.output
    return got[0]


def _help(style: str = "typed", cls: type = Example) -> str:
    return CliRunner().invoke(_command(style, cls), ["--help"]).output


def test_typed_flags_take_their_shape_from_the_type():
    help_text = _help()
    for line in (
        "--name TEXT",
        "--switch ",
        "--pair / --off",
        "--maybe / --no-maybe",
        "--count INTEGER RANGE",
        "--share FLOAT RANGE",
        "--seconds FLOAT RANGE",
        "--mode [a|b]",
        "--groups [x|y]",
        "--folder PATH",
        "--span TEXT",
        "--example-seed INTEGER",
    ):
        assert line in help_text, line
    assert "--hidden" not in help_text
    assert "[default: 3; x>=1]" in help_text and "[default: 0/1]" in help_text and "[x>0]" in help_text


def test_typed_values_come_back_converted_and_parsed():
    values = _run("--name", "n", "--pair", "--no-maybe", "--groups", "x", "--groups", "y", "--span", "2/4")
    assert values["pair"] is True and values["maybe"] is False and values["groups"] == ("x", "y")
    assert values["span"] == (2, 4) and values["count"] == 3 and "seconds" not in values
    values = _run("--name", "n", "--off", "--example-seed", "7", "--folder", "f")
    assert values["pair"] is False and values["seed"] == 7 and values["folder"] == Path("f")


def test_typed_flags_check_ranges_and_choices_and_required():
    command = _command()
    for args, fragment in (
        (["--name", "n", "--count", "0"], "--count"),
        (["--name", "n", "--seconds", "0"], "--seconds"),
        (["--name", "n", "--mode", "c"], "--mode"),
        ([], "--name"),
    ):
        result = CliRunner().invoke(command, args)
        assert result.exit_code == 2 and fragment in result.output, result.output


def test_layered_flags_are_none_unless_given_and_show_the_default_in_their_help():
    assert _run("--name", "n", style="layered") == {"name": "n"}
    help_text = _help("layered")
    assert "At least one. [default: 3]" in help_text and "[x>=1]" in help_text
    assert "i/N. [default: 0/1]" in help_text


def test_text_flags_hand_the_dataclass_text():
    @dataclasses.dataclass(frozen=True)
    class Texts:
        epochs: int = setting(3, "Passes.", low=1)
        flag: bool = setting(False, "A boolean value.")

    help_text = _help("text", Texts)
    assert "--epochs INTEGER" in help_text and "Passes. [default: 3]" in help_text
    assert "--flag true|false" in help_text and "[default: false]" in help_text
    assert _run("--epochs", "2", "--flag", style="text", cls=Texts) == {"epochs": "2", "flag": "true"}


def test_the_shape_follows_the_real_type_not_how_it_is_spelled():
    @dataclasses.dataclass(frozen=True)
    class Spelled:
        maybe: typing.Optional[bool] = setting(None, "Spelled the old way.")  # noqa: UP045

    @dataclasses.dataclass(frozen=True)
    class Odd:
        number: complex = setting(1j, "No flag has this shape.")

    assert "--maybe / --no-maybe" in _help(cls=Spelled)
    assert _run("--no-maybe", cls=Spelled) == {"maybe": False}
    with pytest.raises(TypeError, match="no flag for a field of type"):
        click_options(Odd)


def test_a_nested_dataclass_contributes_its_fields():
    values = _run("--format", "onnx-int8", "--per-tensor", "--keep-fp32", "classifier", cls=ExportSettings)
    assert values["format"] == "onnx-int8"
    assert values["quantization"] == QuantizationSettings(per_channel=False, keep_fp32=("classifier",))


def test_reading_flags_come_from_read_options_own_fields():
    command = click.command()(click_options(ReadOptions)(lambda **kw: None))
    help_text = CliRunner().invoke(command, ["--help"]).output
    assert "--on-bad-rows [error|skip]" in help_text and "Stop at the first bad row" in help_text
    assert "--format" not in help_text and "--header" not in help_text  # batch's own flags set those


def test_export_settings_check_their_fields():
    assert ExportSettings("onnx").quantization == QuantizationSettings()
    with pytest.raises(ConfigError, match="format must be one of 'torchscript', 'onnx', 'onnx-int8'"):
        ExportSettings("tflite")
    with pytest.raises(ConfigError, match="max_changed must be at most 1, but got max_changed=2"):
        ExportSettings("onnx", max_changed=2)


def test_batch_options_check_backend_and_dtype():
    with pytest.raises(ConfigError, match="backend must be one of"):
        BatchOptions(backend="tensorrt")
    with pytest.raises(ConfigError, match="chunk_size must be at least 1, but got chunk_size=0"):
        BatchOptions(chunk_size=0)
