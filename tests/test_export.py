"""textclf export and the exported backends: parity, verification, refusal, auto, no-torch runtime.

The tests on `exported` (tiny BERT and GPT-2 folders with all three exports, verified) are slow:
the fixture trains GPT-2 and makes nine exports."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import textclf
from conftest import FAST, make_sentences
from textclf import export
from textclf.cli import main
from textclf.errors import ConfigError, ModelError
from textclf.export_settings import QuantizationSettings
from textclf.inference import Classifier
from textclf.models import int8_dot_flag

FORMATS = ("torchscript", "onnx", "onnx-int8")
TEXTS = [text for _, text in make_sentences(40, seed=7)] + ["good", "the movie was " * 30 + "awful"]


@pytest.fixture(scope="module")
def gpt2_artifact(tiny_gpt2, sentiment_files, tmp_path_factory) -> Path:
    train, val = sentiment_files
    out = tmp_path_factory.mktemp("export-artifacts") / "gpt2"
    textclf.train(train, out, model=tiny_gpt2, validation=val, progress=False, log=lambda _: None, **FAST)
    return out


@pytest.fixture(scope="module")
def exported(request, bert_artifact, gpt2_artifact, sentiment_files, tmp_path_factory) -> dict[str, Path]:
    """Copies of the tiny BERT and GPT-2 (right- and left-padded) folders with all three exports."""
    _, val = sentiment_files
    folders = {}
    for name, source in (("bert", bert_artifact), ("gpt2", gpt2_artifact), ("gpt2-left", gpt2_artifact)):
        folder = tmp_path_factory.mktemp("exported") / name
        shutil.copytree(source, folder)
        if name == "gpt2-left":
            config = json.loads((folder / "tokenizer_config.json").read_text())
            (folder / "tokenizer_config.json").write_text(json.dumps({**config, "padding_side": "left"}))
        for fmt in FORMATS:
            export.export_model(folder, fmt, validation=val)
        folders[name] = folder
    return folders


@pytest.mark.slow
@pytest.mark.parametrize("model", ["bert", "gpt2", "gpt2-left"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_each_export_matches_pytorch_on_texts_of_every_length(exported, model, fmt):
    folder = exported[model]
    want = Classifier.load(folder, backend="torch", batch_size=8, dtype="float32").logits(TEXTS)
    got = Classifier.load(folder, backend=fmt, batch_size=8).logits(TEXTS)
    bound = 1e-4 if fmt != "onnx-int8" else 0.5
    assert np.abs(want - got).max() <= bound * max(1.0, np.abs(want).max())
    if fmt != "onnx-int8":
        assert (want.argmax(1) == got.argmax(1)).all()
    else:
        assert (want.argmax(1) == got.argmax(1)).mean() >= 0.95


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_the_checks_are_recorded_in_textclf_json(exported, fmt):
    record = json.loads((exported["bert"] / "textclf.json").read_text())["exports"][fmt]
    assert (exported["bert"] / record["file"]).stat().st_size == record["bytes"]
    assert record["parity"]["max_abs_diff"] <= record["parity"]["tolerance"]
    assert len(record["parity"]["shapes"]) >= 6 and {b for b, _ in record["parity"]["shapes"]} >= {1, 3, 8, 16}
    assert record["validation"]["rows"] == 60 and 0 <= record["validation"]["changed_share"] <= 0.02
    assert record["runtime"] == {
        "max_seq_length": 32,
        "pad_token_id": 0,
        "padding_side": "right",
        "truncation_side": "right",
    }
    if fmt == "onnx-int8":
        bits = 8 if int8_dot_flag() else 7  # made for this CPU
        assert record["settings"]["per_channel"] is True and record["settings"]["weight_bits"] == bits
        assert record["settings"]["reduce_range"] is (bits == 7)


@pytest.mark.slow
def test_left_padding_is_recorded_for_the_runtime(exported):
    record = json.loads((exported["gpt2-left"] / "textclf.json").read_text())["exports"]["onnx"]
    assert record["runtime"]["padding_side"] == "left"
    assert Classifier.load(exported["gpt2-left"], backend="onnx").encoder.pad_left


@pytest.mark.slow
def test_tokenizer_json_encodes_exactly_like_transformers(exported):
    for folder in exported.values():
        torch_clf = Classifier.load(folder, backend="torch", dtype="float32")
        onnx_clf = Classifier.load(folder, backend="onnx")
        assert onnx_clf.preprocess(TEXTS) == torch_clf.preprocess(TEXTS)
        assert max(len(ids) for ids in onnx_clf.preprocess(TEXTS)) == 32  # truncated to max_seq_length


@pytest.mark.slow
def test_auto_picks_the_fastest_export_present(exported, bert_artifact, tmp_path):
    assert Classifier.load(exported["bert"], backend="auto").backend.name == "onnx-int8"
    assert Classifier.load(bert_artifact).backend.name == "torch"  # no exports: torch
    partial = tmp_path / "partial"
    shutil.copytree(bert_artifact, partial)
    export.export_model(partial, "torchscript")
    assert Classifier.load(partial).backend.name == "torchscript"


@pytest.mark.slow
def test_a_changed_export_file_is_refused_at_load(exported, tmp_path):
    folder = tmp_path / "tampered"
    shutil.copytree(exported["bert"], folder)
    with (folder / "model.onnx").open("r+b") as f:
        f.seek(-64, 2)
        f.write(b"\0" * 8)
    with pytest.raises(ModelError, match="SHA-256 mismatch"):
        Classifier.load(folder, backend="onnx")
    result = CliRunner().invoke(main, ["predict", "--model-dir", str(folder), "--backend", "onnx", "good"])
    assert result.exit_code == 2 and "SHA-256 mismatch" in result.output and "Traceback" not in result.output


def test_an_export_that_does_not_match_is_refused_and_nothing_is_kept(bert_artifact, tmp_path):
    import onnx
    from onnx import numpy_helper

    folder = tmp_path / "m"
    shutil.copytree(bert_artifact, folder)
    before = (folder / "textclf.json").read_bytes()

    def faulty_exporter(fmt, reference, staged, *args):  # writes a graph whose head weights are off
        settings = export.write_export(fmt, reference, staged, *args)
        graph = onnx.load(str(staged))
        weights = max(graph.graph.initializer, key=lambda t: ("classifier" in t.name, len(t.dims)))
        weights.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weights) + 0.5, weights.name))
        onnx.save(graph, str(staged))
        return settings

    with pytest.raises(ModelError, match="does not match the PyTorch model"):
        export.export_model(folder, "onnx", writer=faulty_exporter)
    assert not (folder / "model.onnx").exists()
    assert (folder / "textclf.json").read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in bert_artifact.iterdir())  # no temp left
    result = CliRunner().invoke(main, ["predict", "--model-dir", str(folder), "--backend", "onnx", "good"])
    assert result.exit_code == 2 and "has no onnx export" in result.output


@pytest.mark.slow
def test_an_export_that_changes_predictions_is_refused_unless_forced(borderline, tmp_path):
    """An untrained head, biased so that half the texts sit near its decision boundary: int8
    rounding flips some of them."""
    source, data = borderline
    folder = tmp_path / "untrained"
    shutil.copytree(source, folder)
    plain = QuantizationSettings(fallback=False)  # the fallback would keep layers in fp32 until it passes
    with pytest.raises(ModelError, match="predictions .*not kept. Pass --force"):
        export.export_model(folder, "onnx-int8", validation=data, max_changed=0.0, quantization=plain)
    assert not (folder / "model.int8.onnx").exists()
    report = export.export_model(folder, "onnx-int8", validation=data, max_changed=0.0, force=True, quantization=plain)
    assert report.validation["changed_predictions"] > 0 and report.forced
    assert (
        json.loads((folder / "textclf.json").read_text())["exports"]["onnx-int8"]["forced"] is True
    )  # a plain HF folder gained a textclf.json
    assert Classifier.load(folder, backend="onnx-int8").backend.name == "onnx-int8"
    assert Classifier.load(folder).backend.name == "torch"  # auto does not pick a forced export


def test_export_command_reports_and_predict_evaluate_take_backend(bert_artifact, sentiment_files, tmp_path):
    _, val = sentiment_files
    folder = tmp_path / "m"
    shutil.copytree(bert_artifact, folder)
    runner = CliRunner()
    result = runner.invoke(main, ["export", "--model-dir", str(folder), "--format", "onnx", "--validation", str(val)])
    assert result.exit_code == 0, result.output
    assert "parity: max |logit difference|" in result.output and "0 predictions changed" in result.output
    by_backend = {}
    for backend in ("torch", "onnx"):
        out = runner.invoke(
            main,
            [
                "predict",
                "--model-dir",
                str(folder),
                "--backend",
                backend,
                "--dtype",
                "float32",
                "--json",
                "good",
                "bad",
            ],
        )
        assert out.exit_code == 0, out.output
        by_backend[backend] = [json.loads(line) for line in out.stdout.splitlines()]  # stderr says what it runs on
        assert f"running on {backend}" in out.stderr
    assert [p["predicted_label"] for p in by_backend["onnx"]] == [p["predicted_label"] for p in by_backend["torch"]]
    np.testing.assert_allclose(
        [p["probabilities"] for p in by_backend["onnx"]], [p["probabilities"] for p in by_backend["torch"]], atol=1e-5
    )
    out = runner.invoke(
        main, ["evaluate", "--model-dir", str(folder), "--data", str(val), "--backend", "onnx", "--json"]
    )
    assert out.exit_code == 0 and json.loads(out.stdout)["backend"] == "onnx"
    missing = runner.invoke(main, ["predict", "--model-dir", str(folder), "--backend", "onnx-int8", "good"])
    assert missing.exit_code == 2 and "has no onnx-int8 export" in missing.output and "textclf export" in missing.output


def test_bad_export_requests_are_one_line_errors(bert_artifact, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["export", "--model-dir", str(tmp_path / "nowhere"), "--format", "onnx"])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "model folder not found" in result.output
    result = runner.invoke(
        main,
        [
            "export",
            "--model-dir",
            str(bert_artifact),
            "--format",
            "onnx",
            "--validation",
            str(tmp_path / "missing.csv"),
        ],
    )
    assert result.exit_code == 2 and "missing.csv" in result.output
    with pytest.raises(ConfigError, match="format must be one of"):
        export.export_model(bert_artifact, "tflite")


@pytest.mark.slow
@pytest.mark.subprocess
def test_the_onnx_backend_loads_neither_torch_nor_transformers(exported):
    code = (
        "import sys; from textclf import Classifier\n"
        f"clf = Classifier.load({str(exported['bert'])!r}, backend='onnx-int8')\n"
        "assert clf.predict(['good food'])[0].predicted_label in ('positive', 'negative')\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnx", "onnx-int8", "torchscript"])
def test_serve_runs_an_export(exported, backend):
    import httpx

    from serving.serving_helpers import LiveServer  # tests/serving, importable when run alone too
    from textclf.serving import ServeConfig, create_app

    want = Classifier.load(exported["bert"], backend=backend).predict(["good food", "awful service"])
    with LiveServer(create_app(ServeConfig(model_dir=str(exported["bert"]), backend=backend))) as live:
        answer = httpx.post(
            live.url + "/invocations",
            json=["good food", "awful service"],
            headers={"Accept": "application/json;verbose"},
        )
    assert answer.status_code == 200
    assert answer.json() == [p.to_dict() for p in want]


@pytest.mark.slow
def test_an_export_of_other_weights_is_refused_at_load(exported, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "retrained"
    shutil.copytree(exported["bert"], folder)
    weights = load_file(folder / "model.safetensors")
    weights["classifier.bias"] = weights["classifier.bias"] + 1.0
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelError, match="exported from another model.safetensors"):
        Classifier.load(folder, backend="onnx")
    (folder / "model.safetensors").unlink()  # a folder shipped with its exports only runs them
    assert Classifier.load(folder, backend="onnx").backend.name == "onnx"


@pytest.mark.slow
def test_bfloat16_is_refused_for_an_export(exported):
    with pytest.raises(ConfigError, match="torch backend only"):
        Classifier.load(exported["bert"], backend="onnx", dtype="bfloat16")
    assert Classifier.load(exported["bert"], backend="torch", dtype="bfloat16").backend.name == "torch"


def test_an_export_whose_tokenizer_json_differs_is_refused(bert_artifact, tmp_path, monkeypatch):
    from textclf.inference import TextEncoder

    folder = tmp_path / "m"
    shutil.copytree(bert_artifact, folder)
    real = TextEncoder.from_file.__func__

    def lossy(cls, path, runtime):  # as if tokenizer.json lacked the closing special token
        encoder = real(cls, path, runtime)
        return TextEncoder(
            lambda texts: [ids[:-1] for ids in encoder.encode(texts)],
            encoder.pad_id,
            encoder.pad_left,
            encoder.max_length,
        )

    monkeypatch.setattr(TextEncoder, "from_file", classmethod(lossy))
    with pytest.raises(ModelError, match="does not tokenise like the model's tokenizer"):
        export.export_model(folder, "onnx")
    assert not (folder / "model.onnx").exists()


@pytest.mark.slow
def test_batch_scores_with_an_export(exported, tmp_path):
    from textclf.batch import BatchOptions, run_batch

    source = tmp_path / "texts.txt"
    source.write_text("".join(t + "\n" for t in TEXTS), encoding="utf-8")
    labels = {}
    for backend in ("torch", "onnx", "auto"):
        result = run_batch(
            exported["bert"],
            str(source),
            tmp_path / backend,
            BatchOptions(backend=backend, chunk_size=16, dtype="float32"),
        )
        assert result.exit_code == 0
        lines = (tmp_path / backend / "texts.txt.out").read_text().splitlines()
        labels[backend] = [json.loads(line)["predicted_label"] for line in lines]
    assert labels["onnx"] == labels["torch"] and len(labels["torch"]) == len(TEXTS)
    assert np.mean([a == b for a, b in zip(labels["auto"], labels["torch"])]) >= 0.95  # auto: int8
