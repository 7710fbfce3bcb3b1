"""Benchmark: int8 export settings against export's own gate, on models the default recipe trains.

For each data set of --sets (bench/defaults.py's: SST-2 whole or 1,500 rows, TREC-50, BBC News),
the model is `textclf.train(train.csv, DIR)` with no hyperparameters (the recipe `make demo` uses
too), trained once into --models-dir and reused. Each int8 setting of --variants is exported into a
copy of that folder with `textclf export --format onnx-int8 --validation test.csv --force` (the
gate: at most 2% of the predictions changed and 0.5 point of accuracy lost against the PyTorch
model) and scored:

  changed    predictions on the test file that differ from PyTorch float32's (share, count)
  accuracy   test accuracy minus PyTorch's, in points
  passes     whether the gate passes; the fallback variants say how many layers they kept in fp32
  speed      model-only sentences/s on --speed-texts test texts (tokenise + forward, batch 64,
             sorted by length as `textclf batch` does), in --rounds interleaved rounds, and the
             ratio to transformers.pipeline (batch 64, top_k=None) on the same texts, same rounds

Variants (--variants):

  auto        textclf's defaults: weight bits for this CPU, per-channel, fallback on (what
              `textclf export --format onnx-int8 --validation D` does with no other flag)
  8bit        8-bit per-channel weights, no fallback
  7bit        7-bit weights (reduce_range: what a CPU without VNNI needs), no fallback
  7bit-fb     7-bit with the fallback: the defaults on a CPU without VNNI
  ffn         8-bit, the FFN down projections kept fp32 (--keep-fp32 ffn_output), no fallback
  static      calibrated static quantisation (ONNX Runtime quantize_static, QDQ, per-channel int8
              weights, uint8 activations, MinMax calibration on 256 training texts, the MatMul
              and Gemm layers only, as dynamic quantisation does); not a
              textclf setting: measured here as a candidate
  static-pct  the same with percentile calibration (99.999)

Prints the CPU's int8 and bfloat16 flags, one line per variant, then a Markdown table; --json
writes every figure.

    .venv/bin/python bench/int8_gate.py --sets sst_all,sst1500,trec50,bbc
    .venv/bin/python bench/int8_gate.py --sets trec50 --variants auto,8bit --speed-texts 200 --rounds 2
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np

from defaults import DATA_DIR, load_set, write_csv

BENCH = Path(__file__).resolve().parent
VARIANTS = {
    "auto": {},
    "8bit": {"weight_bits": "8", "fallback": False},
    "7bit": {"weight_bits": "7", "fallback": False},
    "7bit-fb": {"weight_bits": "7"},
    "ffn": {"weight_bits": "8", "keep_fp32": ("ffn_output",), "fallback": False},
    "static": {"static": "minmax"},
    "static-pct": {"static": "percentile"},
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", default="sst_all,sst1500,trec50,bbc")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--models-dir", type=Path, default=BENCH / "out" / "int8-models")
    p.add_argument("--speed-texts", type=int, default=872, help="test texts per speed round (default 872)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", type=Path, default=BENCH / "out" / "int8_gate.json")
    return p.parse_args()


def model_for(name: str, models: Path) -> tuple[Path, Path, Path]:
    """The default-recipe model of set ``name`` (trained once), its train and test CSVs."""
    import textclf

    ds = load_set(name, DATA_DIR.parent, None, None)
    models.mkdir(parents=True, exist_ok=True)
    train, test = write_csv(ds.train, models / f"{name}-train.csv"), write_csv(ds.test, models / f"{name}-test.csv")
    folder = models / name
    if not (folder / "textclf.json").is_file():
        print(f"[{name}] training with the defaults into {folder}", flush=True)
        textclf.train(train, folder, overwrite=True, progress=False, log=lambda line: print(f"  [{name}] {line}"))
    return folder, train, test


def fresh_copy(folder: Path, into: Path) -> Path:
    shutil.copytree(folder, into, ignore=shutil.ignore_patterns("*.onnx", "*.pt", "checkpoints"))
    meta = json.loads((into / "textclf.json").read_text())
    meta.pop("exports", None)
    (into / "textclf.json").write_text(json.dumps(meta))
    return into


def export_variant(folder: Path, train: Path, test: Path, settings: dict) -> dict:
    """Export one setting into ``folder`` (a fresh copy); its gate figures."""
    from textclf.export import QuantizationSettings, export_model

    started = time.perf_counter()
    if "static" in settings:
        return static_variant(folder, train, test, settings["static"]) | {"seconds": time.perf_counter() - started}
    report = export_model(
        folder, "onnx-int8", validation=test, force=True, quantization=QuantizationSettings(**settings)
    )
    s = report.settings
    return {
        **report.validation,
        "passes": not report.forced,
        "weight_bits": s["weight_bits"],
        "fp32_layers": len(s["fp32_nodes"]),
        "fallback_tries": len(s.get("fallback", {}).get("tried", [])),
        "seconds": time.perf_counter() - started,
    }


def static_variant(folder: Path, train: Path, test: Path, method: str) -> dict:
    """ONNX Runtime's static QDQ quantisation, calibrated on 256 training texts; checked like an export."""
    import csv

    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from textclf import Classifier
    from textclf.artifact import ModelFolder
    from textclf.batching import pad
    from textclf.export import MAX_ACCURACY_DROP, MAX_CHANGED, export_model

    export_model(folder, "onnx")
    clf = Classifier.load(folder, backend="onnx")  # its tokenizer and padding
    with train.open(encoding="utf-8", newline="") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    rng = np.random.default_rng(0)
    sample = [texts[i] for i in rng.choice(len(texts), size=min(256, len(texts)), replace=False)]
    ids = clf.preprocess(sample)

    class Reader:
        """Batches of 32, all padded to the sample's longest (the histogram calibrators need one shape)."""

        def __init__(self):
            input_ids, mask = pad(ids, clf.encoder.pad_id, False)
            self.batches = iter(
                [
                    {"input_ids": input_ids[i : i + 32], "attention_mask": mask[i : i + 32]}
                    for i in range(0, len(ids), 32)
                ]
            )

        def get_next(self):
            return next(self.batches, None)

    pre = folder / "pre.onnx"
    quant_pre_process(str(folder / "model.onnx"), str(pre), skip_symbolic_shape=True)
    out = folder / "static.onnx"
    import logging

    logging.getLogger().setLevel(logging.ERROR)  # quantize_static's advice goes to the root logger
    quantize_static(
        str(pre),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gemm"],  # the layers dynamic quantisation turns int8, no more
        calibrate_method=CalibrationMethod.Percentile if method == "percentile" else CalibrationMethod.MinMax,
        extra_options={"CalibPercentile": 99.999} if method == "percentile" else {},
    )
    from textclf.backends import OnnxBackend
    from textclf.inference import TextEncoder

    static = Classifier(
        OnnxBackend(out, "onnx-int8"),
        TextEncoder.from_file(folder / "tokenizer.json", ModelFolder.read(folder).export_settings("onnx")),
        clf.labels,
    )
    reference = Classifier.load(folder, backend="torch", dtype="float32")
    from textclf.data import read_examples

    examples = read_examples(test)
    y = np.asarray(reference.labels.encode(examples))
    want = reference.logits(examples.texts).argmax(axis=1)
    got = static.logits(examples.texts).argmax(axis=1)
    changed = int((want != got).sum())
    v = {
        "rows": len(y),
        "accuracy_torch": float((want == y).mean()),
        "accuracy_export": float((got == y).mean()),
        "changed_predictions": changed,
        "changed_share": changed / len(y),
    }
    v["passes"] = v["changed_share"] <= MAX_CHANGED and v["accuracy_torch"] - v["accuracy_export"] <= MAX_ACCURACY_DROP
    v["classifier"] = static
    return v | {"weight_bits": 8, "fp32_layers": 0, "fallback_tries": 0}


def speeds(classifiers: dict, model_dir: Path, texts: list[str], rounds: int) -> dict[str, list[float]]:
    """Sentences/s of each classifier and of transformers.pipeline, interleaved over rounds (A B A B)."""
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(model_dir), top_k=None, device="cpu")
    runners = {"pipeline": lambda part: pipe(part, batch_size=64, truncation=True, max_length=128)}
    runners.update({name: clf.predict_proba for name, clf in classifiers.items()})
    rates = {name: [] for name in runners}
    for r in range(rounds):
        names = list(runners)
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            runners[name](texts)
            rates[name].append(len(texts) / (time.perf_counter() - start))
    return rates


def main() -> None:
    args = parse_args()
    from textclf import Classifier
    from textclf.data import read_examples
    from textclf.models import cpu_flags, int8_dot_flag, native_bf16_flag

    flags = cpu_flags()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"CPU: {cpu}; int8 dot products: {int8_dot_flag(flags)}; native bf16: {native_bf16_flag(flags)}")
    results = {"cpu": cpu, "int8_dot": int8_dot_flag(flags), "bf16": native_bf16_flag(flags), "sets": {}}
    for name in args.sets.split(","):
        folder, train, test = model_for(name, args.models_dir)
        texts = read_examples(test).texts[: args.speed_texts]
        out = results["sets"][name] = {}
        with tempfile.TemporaryDirectory(prefix="int8-gate-") as tmp:
            classifiers = {"torch": Classifier.load(folder, backend="torch", dtype="float32")}
            for variant in args.variants.split(","):
                copy = fresh_copy(folder, Path(tmp) / variant)
                r = export_variant(copy, train, test, VARIANTS[variant])
                classifiers[variant] = r.pop("classifier", None) or Classifier.load(copy, backend="onnx-int8")
                out[variant] = r
                print(
                    f"[{name}] {variant:<10} changed {r['changed_predictions']:4d} ({100 * r['changed_share']:.2f}%)"
                    f"  accuracy {100 * (r['accuracy_export'] - r['accuracy_torch']):+.2f} pt"
                    f"  {'PASS' if r['passes'] else 'FAIL'}  fp32 layers {r['fp32_layers']}  {r['seconds']:.0f} s",
                    flush=True,
                )
            rates = speeds(classifiers, folder, texts, args.rounds)
        base = rates["pipeline"]
        for system, values in rates.items():
            entry = out.setdefault(system, {})
            entry["rate"] = statistics.median(values)
            entry["x_pipeline"] = statistics.median(v / b for v, b in zip(values, base))
            entry["rates"] = values
            print(f"[{name}] {system:<10} {entry['rate']:8.1f} sentences/s  {entry['x_pipeline']:.2f}x pipeline")
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    print(
        "\n| set | setting | changed | accuracy vs fp32 | gate | fp32 layers | sentences/s | x pipeline |\n"
        "|---|---|---:|---:|---|---:|---:|---:|"
    )
    for name, out in results["sets"].items():
        for variant, r in out.items():
            if "changed_predictions" not in r:
                if variant == "torch":
                    print(f"| {name} | torch float32 | | | | | {r['rate']:.0f} | {r['x_pipeline']:.2f} |")
                continue
            print(
                f"| {name} | {variant} | {r['changed_predictions']} ({100 * r['changed_share']:.2f}%) | "
                f"{100 * (r['accuracy_export'] - r['accuracy_torch']):+.2f} | {'pass' if r['passes'] else 'FAIL'} | "
                f"{r['fp32_layers']} | {r.get('rate', float('nan')):.0f} | {r.get('x_pipeline', float('nan')):.2f} |"
            )


if __name__ == "__main__":
    main()
