"""``textclf export``: write a TorchScript, ONNX or int8 ONNX copy of a model folder's network.

Every export is verified before it is kept:

1. **parity**: logits of the export against the PyTorch model on batches of several sizes
   and lengths, padded as at inference; the largest absolute difference must stay within
   the format's tolerance;
2. **accuracy** (with ``validation``): both models classify the labelled file; an export that
   changes more than ``max_changed`` of the predictions is refused unless ``force``.

A kept export is renamed into the folder only after both checks, and recorded in
``textclf.json`` (``exports.<format>``: file, SHA-256, the checks' figures, the settings) so
that :class:`~textclf.Classifier` refuses a file that has been changed since.

ONNX is written by PyTorch's TorchScript-based exporter (``dynamo=False``): on this model
family its graph runs 2.5x faster in ONNX Runtime once quantised than the dynamo exporter's,
and quantises without shape-inference errors (bench/RESULTS.md, Batch). int8 is ONNX
Runtime's dynamic quantisation of that graph: 7-bit weights stored as int8, one scale per
output channel, activations quantised per batch at run time. Per-channel scales are what keep
the accuracy: with 8-bit weights, per-tensor scales (``quantize_dynamic``'s default) lost a
point on SST-2, per-channel 0.46 (bench/RESULTS.md); keeping layers in fp32 (``keep_fp32``)
is available but cost 35-65% of the speed for no measurable gain. Weights use 7 bits
(``reduce_range``): without VNNI, ONNX Runtime's int8 kernels add pairs of 8-bit products in
saturating 16-bit sums, which full 8-bit weights overflow, and an export may run on any CPU.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import artifact
from .artifact import ModelFolder, TokenizerSettings
from .backends import file_sha256, fingerprint, open_backend
from .batching import pad
from .choices import EXPORT_FILES
from .data import ReadOptions, read_examples
from .errors import ArtifactError, ConfigError, ModelError
from .export_settings import FORMATS, MAX_ACCURACY_DROP, MAX_CHANGED, ExportSettings, QuantizationSettings
from .inference import Classifier, TextEncoder

__all__ = [
    "FORMATS",
    "ExportReport",
    "ExportSettings",
    "QuantizationSettings",
    "Writer",
    "export_model",
    "write_export",
]

# Largest |logit difference| allowed, as a fraction of the largest |logit| (at least 1).
TOLERANCE = {"torchscript": 1e-4, "onnx": 1e-3, "onnx-int8": 0.5}
PARITY_SHAPES = ((1, 1), (1, 9), (3, 17), (8, 33), (16, 64), (4, None))  # (batch, longest); None: max_seq_length
OPSET = 17


@dataclass
class ExportReport:
    format: str
    file: Path
    size_bytes: int
    seconds: float
    max_abs_diff: float
    tolerance: float
    shapes: list[tuple[int, int]]
    validation: dict | None = None
    settings: dict = field(default_factory=dict)
    forced: bool = False  # kept with --force although a validation check failed

    def render(self) -> str:
        lines = [
            f"{self.format}: {self.file} ({self.size_bytes / 2**20:.1f} MiB, {self.seconds:.1f} s)",
            f"parity: max |logit difference| {self.max_abs_diff:.2e} (tolerance {self.tolerance:.2e}) "
            f"over {len(self.shapes)} batches (batch x length: {', '.join(f'{b}x{n}' for b, n in self.shapes)})",
        ]
        v = self.validation
        if self.forced:
            lines.append("kept because of --force although the check below failed: --backend auto will not pick it")
        if v:
            lines.append(
                f"validation {v['data']}: {v['rows']} rows; accuracy {v['accuracy_export']:.4f} vs "
                f"{v['accuracy_torch']:.4f} in PyTorch "
                f"({100 * (v['accuracy_export'] - v['accuracy_torch']):+.2f} points); "
                f"{v['changed_predictions']} predictions changed ({100 * v['changed_share']:.2f}%, allowed "
                f"{100 * v['max_changed']:.2f}%)"
            )
        return "\n".join(lines)


Writer = Callable[..., dict]
"""Writes the export file: ``(format, reference, staged, work, quantization, log) -> settings``;
:func:`write_export` unless a test passes another to :func:`export_model`."""


def export_model(
    model_dir: str | Path | ModelFolder,
    format: str,
    validation: str | Path | None = None,
    read_options: ReadOptions | None = None,
    force: bool = False,
    max_changed: float = MAX_CHANGED,
    max_accuracy_drop: float = MAX_ACCURACY_DROP,
    quantization: QuantizationSettings = QuantizationSettings(),
    log=lambda message: None,
    *,
    writer: Writer | None = None,
) -> ExportReport:
    """Export, verify and record ``format`` in ``model_dir``; see the module docstring.

    ``writer`` writes the file before it is verified (:func:`write_export` by default).
    """
    import torch

    ExportSettings(format, None, max_changed, max_accuracy_drop, force, quantization)  # checks them, or one line
    folder = ModelFolder.read(model_dir)  # a model folder, or a one-line error
    model_dir = folder.path
    if not os.access(model_dir, os.W_OK):
        raise ArtifactError(f"{model_dir}: not writable; exports are written into the model folder.")
    read_options = read_options or ReadOptions()
    reference = Classifier.load(folder, backend="torch")
    examples, labels = None, None
    if validation is not None:  # bad data fails before the slow part
        examples = read_examples(validation, read_options)
        labels = np.asarray(reference.labels.encode(examples, read_options.on_bad_rows))
    runtime = _runtime(folder, reference)
    started = time.perf_counter()
    target = model_dir / EXPORT_FILES[format]
    work = Path(tempfile.mkdtemp(prefix=f".export-{uuid.uuid4().hex[:8]}-", dir=model_dir))
    try:
        staged = work / target.name
        with torch.inference_mode(False), torch.no_grad():
            try:
                settings = (writer or write_export)(format, reference, staged, work, quantization, log)
            except (RuntimeError, ValueError, TypeError, NotImplementedError) as exc:  # the exporters' own errors
                raise ModelError(
                    f"cannot export {model_dir} to {format}: {type(exc).__name__}: {str(exc).splitlines()[0]}"
                ) from exc
        log("verifying")
        # Verified as it will run: the export, tokenised by tokenizer.json alone.
        exported = Classifier(
            open_backend(format, staged),
            TextEncoder.from_file(folder.tokenizer_file, runtime),
            reference.labels,
            reference.batch_size,
        )
        _check_tokenizer(reference, exported, examples)
        diff, bound, shapes = _parity(reference, exported, runtime.max_seq_length, examples)
        report = ExportReport(
            format, target, staged.stat().st_size, time.perf_counter() - started, diff, bound, shapes, settings=settings
        )
        if diff > bound:
            raise ModelError(
                f"{format} export does not match the PyTorch model: max |logit difference| {diff:.3g} > "
                f"tolerance {bound:.3g}; not kept."
            )
        if examples is not None:
            report.validation = _compare(reference, exported, examples, labels, max_changed)
            failures = _accuracy_failures(report.validation, validation, max_changed, max_accuracy_drop)
            if failures and not force:
                raise ModelError(
                    f"{format} export {' and '.join(failures)}; not kept. Pass --force to keep it anyway "
                    "(--backend auto will still not pick it)."
                )
            report.forced = bool(failures)
        elif format == "onnx-int8":
            log(
                "warning: int8 predictions were not checked against the PyTorch model; "
                "pass --validation DATA to check them"
            )
        _keep(model_dir, staged, target, format, report, runtime)
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _runtime(folder: ModelFolder, reference: Classifier) -> TokenizerSettings:
    """What an exported backend needs besides the graph (read without transformers)."""
    if not folder.tokenizer_file.is_file():
        raise ModelError(
            f"{folder.path}: has no tokenizer.json (a 'fast' tokenizer); exports tokenise with the `tokenizers` "
            "library. Save one with transformers' AutoTokenizer.from_pretrained(DIR).save_pretrained(DIR)."
        )
    return reference.encoder.settings


def _logits_module(model):
    """The torch module that gets exported: ``(input_ids, attention_mask) -> logits``."""
    import torch

    from .models import forward_logits

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return forward_logits(self.model, input_ids, attention_mask)

    return Logits().eval()


def _example(reference: Classifier, batch: int = 2, length: int = 12):
    """A padded example batch (rows of different lengths, so the mask path is traced)."""
    import torch

    rng = np.random.default_rng(0)
    vocab = int(reference.backend.model.config.vocab_size)
    ids = [list(rng.integers(0, vocab, size=n)) for n in (length, max(1, length // 2))][:batch]
    input_ids, mask = pad(ids, reference.encoder.pad_id, reference.encoder.pad_left)
    return torch.from_numpy(input_ids), torch.from_numpy(mask)


def write_export(
    format: str, reference: Classifier, staged: Path, work: Path, quantization: QuantizationSettings, log
) -> dict:
    """Write ``reference``'s network as ``format`` to ``staged`` (``work``: scratch space); return the
    settings to record. The default :data:`Writer` of :func:`export_model`, which verifies the file after."""
    import warnings

    import torch

    model = reference.backend.model
    if hasattr(model.config, "use_cache"):
        model.config.use_cache = False  # a decoder's key/value cache is no use to a classifier
    module = _logits_module(model)
    example = _example(reference)
    if format == "torchscript":
        log("tracing with torch.jit.trace")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings: the parity check below is what tells
            traced = torch.jit.trace(module, example, check_trace=False)
        traced.save(str(staged))
        return {"method": "torch.jit.trace"}
    fp32 = staged if format == "onnx" else work / "fp32.onnx"
    log("exporting to ONNX with torch.onnx")
    _onnx(module, example, fp32)
    if format == "onnx":
        return {"method": "torch.onnx.export(dynamo=False)", "opset": OPSET}
    log("quantising to int8 with ONNX Runtime")
    _quantize(fp32, staged, quantization)
    return {"method": "onnxruntime.quantization.quantize_dynamic", **asdict(quantization)}


def _onnx(module, example, path: Path) -> None:
    import contextlib
    import io
    import warnings

    import torch

    axes = {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "sequence"},
        "logits": {0: "batch"},
    }
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            example,
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )


def _quantize(fp32: Path, out: Path, settings: QuantizationSettings) -> None:
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(fp32)).graph
    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR  # quantize_dynamic logs advice on the root logger
    try:
        quantize_dynamic(
            str(fp32),
            str(out),
            weight_type=QuantType.QInt8,
            per_channel=settings.per_channel,
            reduce_range=settings.reduce_range,
            nodes_to_exclude=_fp32_nodes(graph, settings.keep_fp32),
        )
    finally:
        root.level = level


def _fp32_nodes(graph, groups: tuple[str, ...]) -> list[str]:
    """Names of the MatMul/Gemm nodes the ``groups`` of QuantizationSettings.keep_fp32 cover."""
    patterns = {
        "ffn_output": ("output.dense", "mlp.c_proj", "mlp/c_proj", "output/dense"),  # FFN down projections
        "classifier": ("classifier", "score", "pooler"),  # the head (and BERT's pooler)
    }
    unknown = set(groups) - set(patterns)
    if unknown:
        raise ConfigError(f"keep_fp32: unknown node groups {sorted(unknown)}; known: {sorted(patterns)}.")
    wanted = [p for g in groups for p in patterns[g]]
    names = []
    for node in graph.node:
        if node.op_type not in ("MatMul", "Gemm"):
            continue
        where = " ".join([node.name, *node.input]).lower()
        if any(p in where and "attention.output" not in where for p in wanted):
            names.append(node.name)
    return names


def _parity(reference: Classifier, exported: Classifier, max_len: int, examples) -> tuple[float, float, list]:
    """Largest |logit difference| over padded batches of several shapes, and its bound."""
    rng = np.random.default_rng(0)
    vocab = int(reference.backend.model.config.vocab_size)
    batches = []
    for batch, longest in PARITY_SHAPES:
        longest = min(longest or max_len, max_len)
        lengths = [longest, *rng.integers(1, longest + 1, size=batch - 1)]
        batches.append([list(rng.integers(0, vocab, size=n)) for n in lengths])
    if examples is not None:  # real texts too, as the tokenizer makes them
        texts = examples.texts[:64]
        batches.append(reference.preprocess(texts))
    diff, scale, shapes = 0.0, 1.0, []
    for ids in batches:
        input_ids, mask = pad(ids, reference.encoder.pad_id, reference.encoder.pad_left)
        want = reference.backend.forward(input_ids, mask)
        got = exported.backend.forward(input_ids, mask)
        diff = max(diff, float(np.abs(want - got).max()))
        scale = max(scale, float(np.abs(want).max()))
        shapes.append(tuple(int(x) for x in input_ids.shape))
    return diff, TOLERANCE[exported.backend.name] * scale, shapes


def _compare(reference: Classifier, exported: Classifier, examples, y: np.ndarray, max_changed: float) -> dict:
    want = reference.logits(examples.texts).argmax(axis=1)
    got = exported.logits(examples.texts).argmax(axis=1)
    changed = int((want != got).sum())
    return {
        "data": str(examples.path),
        "rows": int(len(y)),
        "accuracy_torch": float((want == y).mean()),
        "accuracy_export": float((got == y).mean()),
        "changed_predictions": changed,
        "changed_share": changed / len(y),
        "max_changed": max_changed,
    }


def _accuracy_failures(v: dict, validation, max_changed: float, max_accuracy_drop: float) -> list[str]:
    """What the export's predictions on ``validation`` (compared in ``v``) do beyond what is allowed."""
    failures = []
    if v["changed_share"] > max_changed:
        failures.append(
            f"changes {100 * v['changed_share']:.2f}% of the predictions on {validation} "
            f"(allowed {100 * max_changed:.2f}%)"
        )
    drop = v["accuracy_torch"] - v["accuracy_export"]
    if drop > max_accuracy_drop:
        failures.append(
            f"loses {100 * drop:.2f} points of accuracy on {validation} (allowed {100 * max_accuracy_drop:.2f})"
        )
    return failures


def _check_tokenizer(reference: Classifier, exported: Classifier, examples) -> None:
    """tokenizer.json alone must give the token ids transformers' tokenizer gives."""
    texts = [
        "Hello, World!  It's   a TEST: 3.14 ünïcode — ok?",
        "x " * 2000,
        *(examples.texts[:500] if examples else []),
    ]
    for text, want, got in zip(texts, reference.preprocess(texts), exported.preprocess(texts)):
        if want != got:
            raise ModelError(
                f"tokenizer.json does not tokenise like the model's tokenizer (on {text[:40]!r}: {got[:8]}... "
                f"instead of {want[:8]}...); exported backends would see other inputs. Not kept."
            )


def _keep(
    model_dir: Path, staged: Path, target: Path, format: str, report: ExportReport, runtime: TokenizerSettings
) -> None:
    """Move the verified file into place, then record it in textclf.json (both atomic renames)."""
    record = {
        "file": target.name,
        "sha256": file_sha256(staged),
        "source": fingerprint(model_dir),
        "forced": report.forced,
        "bytes": report.size_bytes,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "runtime": runtime.to_dict(),
        "parity": {"max_abs_diff": report.max_abs_diff, "tolerance": report.tolerance, "shapes": report.shapes},
        "validation": report.validation,
        "settings": report.settings,
        "versions": _versions(),
    }
    current = artifact.read_metadata(model_dir) or {}  # read now: another export may have finished meanwhile
    exports = {k: v for k, v in current.get("exports", {}).items() if k != format}
    # Drop the old record first: between the two renames the folder never lists a file it does not hold.
    artifact.update_metadata(model_dir, exports=exports)
    os.replace(staged, target)
    artifact.update_metadata(model_dir, exports={**exports, format: record})


def _versions() -> dict:
    import onnxruntime
    import torch

    return {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__}
