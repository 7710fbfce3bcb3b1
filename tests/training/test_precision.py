"""Training precision: how ``--precision`` resolves on each kind of CPU, and float32 and bfloat16 runs end to end."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import textclf
from conftest import FAST
from textclf.cli import main
from textclf.models import native_bf16
from textclf.training import TrainingHooks
from textclf.training.distributed import resolve_precision

CPU = torch.device("cpu")
AMX = {"avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"}  # Sapphire Rapids and later
AVX512_BF16 = {"avx2", "avx512f", "avx512_bf16"}  # AMD Zen 4, Cooper Lake
AVX2 = {"avx2", "fma"}


@pytest.mark.parametrize(
    ("flags", "name", "reason", "kernels"),
    [
        (AMX, "bfloat16", "auto: CPU has amx_bf16", "AMX"),
        (AVX512_BF16, "bfloat16", "auto: CPU has avx512_bf16", "AVX512-BF16"),
        (AVX2, "float32", "auto: this CPU has no native bfloat16", torch.backends.cpu.get_cpu_capability()),
    ],
)
def test_auto_is_bfloat16_only_where_the_cpu_has_it(flags, name, reason, kernels):
    chosen = resolve_precision("auto", CPU, flags)
    assert (chosen.name, chosen.reason, chosen.kernels, chosen.warning) == (name, reason, kernels, None)
    assert str(chosen) == f"precision {name} ({reason}; kernels: {kernels})"


def test_a_set_precision_wins_and_bfloat16_without_hardware_is_emulated_with_a_warning():
    assert resolve_precision("float32", CPU, AMX).name == "float32"
    emulated = resolve_precision("bfloat16", CPU, AVX2)
    assert (emulated.name, emulated.reason, emulated.emulated) == ("bfloat16", "set by --precision", True)
    assert emulated.kernels.endswith("bfloat16 emulated")
    assert "no native bfloat16" in emulated.warning and "--precision auto or float32" in emulated.warning
    assert resolve_precision("bfloat16", CPU, AMX).warning is None


def linear_output_dtypes(seen: set) -> TrainingHooks:
    """Hooks that add to ``seen`` the dtype of every training-mode output of the model's first Linear layer."""

    def record(module, args, output):
        if module.training:
            seen.add(output.dtype)

    def after_setup(run) -> None:
        linear = next(m for m in run.net.modules() if isinstance(m, torch.nn.Linear))
        linear.register_forward_hook(record)

    return TrainingHooks(after_setup=after_setup)


@pytest.mark.parametrize(("precision", "computed"), [("float32", torch.float32), ("bfloat16", torch.bfloat16)])
def test_both_precisions_train_under_their_autocast_and_save_float32(
    precision, computed, tiny_bert, sentiment_files, tmp_path
):
    train, val = sentiment_files
    lines, seen = [], set()
    result = textclf.train(
        train,
        tmp_path / "out",
        model=tiny_bert,
        validation=val,
        precision=precision,
        hooks=linear_output_dtypes(seen),
        log=lines.append,
        progress=False,
        **{**FAST, "epochs": 2},
    )
    assert seen == {computed}  # the forward passes of training ran in this precision
    assert all(h["train_loss"] == h["train_loss"] for h in result.history)  # finite: the loss is float32
    run = json.loads((tmp_path / "out" / "textclf.json").read_text())["run"]
    assert run["precision"] == precision and run["precision_reason"] == "set by --precision"
    assert run["kernels"] == resolve_precision(precision, CPU).kernels  # this CPU's path, as printed:
    assert f"precision {precision} (set by --precision; kernels: {run['kernels']})" in lines
    warned = any(line.startswith("warning: this CPU has no native bfloat16") for line in lines)
    assert warned == (precision == "bfloat16" and not native_bf16())
    weights = load_file(tmp_path / "out" / "model.safetensors")
    assert {tensor.dtype for tensor in weights.values()} == {torch.float32}


def test_an_unknown_precision_is_refused_on_the_command_line(tmp_path):
    result = CliRunner().invoke(
        main, ["train", "--data", str(tmp_path / "d.csv"), "--output", str(tmp_path / "out"), "--precision", "fp16"]
    )
    assert result.exit_code == 2
    assert "Invalid value for '--precision': 'fp16' is not one of 'auto', 'float32', 'bfloat16'." in result.output
    assert not (tmp_path / "out").exists()
