"""int8 exports chosen for the CPU: weight bits by its flags, refusal where they cannot run, the
fp32 fallback until the accuracy check passes; and the torch backend's precision per batch size.

CPU flags are faked (``textclf.models.cpu_flags``) so that every CPU kind is tested on this one."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from textclf import backends, export, models
from textclf.artifact import ModelFolder
from textclf.backends import BF16_MIN_TOKENS, InferencePrecision, TorchBackend, choose
from textclf.cli import main
from textclf.errors import ModelError
from textclf.export_settings import QuantizationSettings
from textclf.inference import Classifier

AVX2 = frozenset({"sse4_2", "avx2", "fma"})
VNNI = AVX2 | {"avx512f", "avx512_vnni"}
AMX = VNNI | {"amx_tile", "amx_int8", "amx_bf16", "avx512_bf16"}


def fake_cpu(monkeypatch, flags: frozenset[str]) -> None:
    monkeypatch.setattr(models, "cpu_flags", lambda: flags)


def copy(folder, tmp_path, name="model"):
    target = tmp_path / name
    shutil.copytree(folder, target)
    return target


@pytest.mark.parametrize(
    ("flags", "bits", "why"),
    [(AVX2, 7, "no VNNI"), (VNNI, 8, "avx512_vnni"), (AMX, 8, "amx_int8"), (frozenset({"asimddp"}), 8, "asimddp")],
)
def test_auto_weight_bits_follow_the_cpu(flags, bits, why):
    chosen, reason = export.weight_bits("auto", flags)
    assert chosen == bits and why in reason
    assert export.weight_bits("7", VNNI) == (7, "asked for") and export.weight_bits("8", AVX2) == (8, "asked for")


@pytest.mark.parametrize(("flags", "bits"), [(AVX2, 7), (VNNI, 8)])
def test_an_export_records_the_bits_it_chose_for_its_cpu(
    bert_artifact, sentiment_files, tmp_path, monkeypatch, flags, bits
):
    fake_cpu(monkeypatch, flags)
    folder = copy(bert_artifact, tmp_path)
    lines = []
    report = export.export_model(folder, "onnx-int8", validation=sentiment_files[1], log=lines.append)
    settings = json.loads((folder / "textclf.json").read_text())["exports"]["onnx-int8"]["settings"]
    assert settings["weight_bits"] == bits and settings["reduce_range"] == (bits == 7)
    assert settings["weight_bits_reason"].startswith("auto: ")
    assert any(f"{bits}-bit weights (auto: " in line for line in lines)
    assert f"int8: {bits}-bit weights (auto: " in report.render()
    assert Classifier.load(folder).choice.backend == "onnx-int8"  # the CPU it was made for runs it


def test_auto_skips_an_8bit_export_on_a_cpu_without_vnni_and_says_why(
    bert_artifact, sentiment_files, tmp_path, monkeypatch
):
    folder = copy(bert_artifact, tmp_path)
    export.export_model(folder, "onnx", validation=sentiment_files[1])
    export.export_model(
        folder, "onnx-int8", validation=sentiment_files[1], quantization=QuantizationSettings(weight_bits="8")
    )
    read = ModelFolder.read(folder)
    assert choose("auto", read, VNNI).backend == "onnx-int8"
    picked = choose("auto", read, AVX2)
    assert picked.backend == "onnx" and "onnx-int8 skipped: its weights are 8-bit" in picked.reason
    with pytest.raises(ModelError, match="cannot run its onnx-int8 export on this CPU.*re-export it here"):
        choose("onnx-int8", read, AVX2)

    fake_cpu(monkeypatch, AVX2)  # the same through the commands
    result = CliRunner().invoke(main, ["predict", "--model-dir", str(folder), "good food"])
    assert result.exit_code == 0, result.output
    assert "running on onnx, float32 (auto: the fastest verified export present (onnx-int8 skipped" in result.output
    result = CliRunner().invoke(main, ["predict", "--model-dir", str(folder), "--backend", "onnx-int8", "good"])
    assert result.exit_code == 2 and "cannot run its onnx-int8 export on this CPU" in result.output
    assert "Traceback" not in result.output


def test_records_from_before_weight_bits_read_as_what_they_were():
    assert backends.int8_weight_bits({"settings": {"per_channel": True}}) == 8  # before reduce_range existed
    assert backends.int8_weight_bits({"settings": {"reduce_range": True}}) == 7
    assert backends.int8_weight_bits({"settings": {"weight_bits": 8, "reduce_range": False}}) == 8


@pytest.mark.slow
def test_the_fallback_keeps_the_worst_layers_in_fp32_until_the_check_passes(borderline, tmp_path):
    source, data = borderline
    plain = copy(source, tmp_path, "plain")
    settings = QuantizationSettings(fallback=False)
    all_int8 = export.export_model(plain, "onnx-int8", validation=data, force=True, quantization=settings)
    allowed = all_int8.validation["changed_share"] / 2  # the all-int8 export fails this check
    assert all_int8.validation["changed_predictions"] > 0

    folder = copy(source, tmp_path, "fallback")
    lines = []
    report = export.export_model(folder, "onnx-int8", validation=data, max_changed=allowed, log=lines.append)
    assert not report.forced and report.validation["changed_share"] <= allowed
    record = json.loads((folder / "textclf.json").read_text())["exports"]["onnx-int8"]
    fallback = record["settings"]["fallback"]
    kept = record["settings"]["fp32_nodes"]
    assert 1 <= fallback["layers"] == len(kept) == len(fallback["kept"])
    errors = list(fallback["errors"].values())
    assert errors == sorted(errors, reverse=True) and errors[0] > 0  # the worst first
    tried = [t["layers"] for t in fallback["tried"]]
    assert tried[0] == 0 and tried == sorted(tried) and tried[-1] == len(kept)  # fewest first
    assert fallback["tried"][0]["changed_predictions"] == all_int8.validation["changed_predictions"]
    assert any("fails the check" in line for line in lines) and "fallback: the all-int8 export" in report.render()
    # the kept layers are really fp32 in the file: fewer int8 MatMuls than the all-int8 export has
    assert _int8_matmuls(folder / "model.int8.onnx") == _int8_matmuls(plain / "model.int8.onnx") - len(kept)
    assert Classifier.load(folder).choice.backend == "onnx-int8"

    refused = copy(source, tmp_path, "refused")
    with pytest.raises(ModelError, match="predictions .*not kept"):
        export.export_model(refused, "onnx-int8", validation=data, max_changed=allowed, quantization=settings)
    assert not (refused / "model.int8.onnx").exists()


def _int8_matmuls(path) -> int:
    import onnx

    int8 = ("MatMulInteger", "DynamicQuantizeMatMul", "DequantizeLinear")
    return sum(node.op_type in int8 for node in onnx.load(str(path)).graph.node)


def test_the_ranking_measures_rounding_error(borderline, tmp_path):
    """Fewer weight bits round every weighted layer more coarsely; the layers come worst first."""
    source, data = borderline
    folder = copy(source, tmp_path)
    export.export_model(folder, "onnx")
    export.export_model(folder, "onnx-int8", quantization=QuantizationSettings(fallback=False))
    reference = Classifier.load(folder, backend="torch", dtype="float32")
    texts = [line.split(",", 1)[1] for line in data.read_text().splitlines()[1:65]]
    rank = lambda bits: export._rank_layers(  # noqa: E731
        folder / "model.onnx", folder / "model.int8.onnx", reference, texts, bits, True
    )
    eight, seven = dict(rank(8)), rank(7)
    assert [e for _, e in seven] == sorted((e for _, e in seven), reverse=True)
    assert set(eight) == {name for name, _ in seven}
    assert any("Gather" in name for name in eight) and sum("MatMul" in name for name in eight) >= 8
    weighted = [name for name in eight if "dense" in name or "query" in name or "key" in name or "value" in name]
    assert weighted and all(dict(seven)[name] > eight[name] > 0 for name in weighted)
    w = np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32)
    assert np.abs(export._round_weight(w, 8, True) - w).max() <= np.abs(w).max(axis=0).max() / 127 / 2 + 1e-6
    x = np.random.default_rng(1).normal(size=(5, 16)).astype(np.float32)
    assert np.abs(export._round_activation(x) - x).max() <= (x.max() - x.min()) / 255 / 2 + 1e-6


@pytest.mark.parametrize(
    ("dtype", "flags", "device", "bf16_from"),
    [
        ("auto", AMX, "cpu", BF16_MIN_TOKENS),
        ("auto", VNNI | {"avx512_bf16"}, "cpu", 0),
        ("auto", AVX2, "cpu", None),
        ("auto", AVX2, "cuda", 0),
        ("float32", AMX, "cpu", None),
        ("bfloat16", AVX2, "cpu", 0),
    ],
)
def test_inference_precision_per_machine_and_batch_size(dtype, flags, device, bf16_from):
    precision = InferencePrecision.resolve(dtype, flags, device)
    assert precision.bf16_from == bf16_from
    small, large = 1 * 16, 64 * 32
    assert precision.bf16(small) == (bf16_from == 0)
    assert precision.bf16(large) == (bf16_from is not None)


def test_the_torch_backend_computes_small_batches_in_float32_and_large_ones_in_bfloat16(bert_artifact):
    exact = Classifier.load(bert_artifact, backend="torch", dtype="float32")
    switching = Classifier(
        TorchBackend(exact.backend.model, InferencePrecision(40, "test")), exact.encoder, exact.labels
    )
    rng, vocab = np.random.default_rng(0), exact.backend.config.vocab_size
    small = rng.integers(5, vocab, size=(1, 8))  # 8 tokens: float32
    large = rng.integers(5, vocab, size=(8, 16))  # 128 tokens: bfloat16
    for ids, same in ((small, True), (large, False)):
        mask = np.ones_like(ids)
        want, got = exact.backend.forward(ids, mask), switching.backend.forward(ids, mask)
        assert np.array_equal(want, got) == same
        assert np.allclose(want, got, atol=0.1)
    assert switching.precision == "auto (bfloat16 from 40 tokens)"
