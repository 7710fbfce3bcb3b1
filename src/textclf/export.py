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
and quantises without shape-inference errors (bench/RESULTS.md, Batch).

int8 is ONNX Runtime's dynamic quantisation of that graph: int8 weights with one scale per
output channel (per-tensor scales lost a point on SST-2, bench/RESULTS.md), activations
quantised per batch at run time. Its settings are chosen for the CPU it is exported on
(``weight_bits`` auto) and recorded, and :func:`textclf.backends.choose` refuses an export whose
settings the CPU it runs on cannot run:

* **weight bits.** 8 where the CPU has int8 dot products that sum in 32 bits (VNNI, AMX, ARM's
  dot product); 7 (``reduce_range``) elsewhere: without them ONNX Runtime's kernels add pairs of
  8-bit products in saturating 16-bit sums, which 8-bit weights overflow (on an AVX2-only CPU a
  tiny BERT's logits moved by 2.55). 7 bits cost accuracy: they are what made the issue's SST-2
  model change 2.4% of its predictions.
* **fallback.** When ``validation`` is given and the export changes too many predictions or
  loses too much accuracy, the quantised MatMuls are ranked by their quantisation error on
  validation texts (each layer's own error: its fp32 inputs and weights against their int8
  roundings, from one fp32 pass; :func:`_rank_layers`) and the worst are kept in fp32, one more
  at a time and then more at a time, until the check passes. Fewest first: each fp32 layer
  costs speed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import artifact
from .artifact import ModelFolder, TokenizerSettings
from .backends import file_sha256, fingerprint, open_backend
from .batching import eval_batches, pad
from .choices import EXPORT_FILES
from .data import Examples, ReadOptions, read_examples
from .errors import ArtifactError, ConfigError, ModelError
from .export_settings import FORMATS, MAX_ACCURACY_DROP, MAX_CHANGED, ExportSettings, QuantizationSettings
from .inference import Classifier, TextEncoder
from .metrics import multilabel_metrics
from .models import int8_dot_flag

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
RANKING_TEXTS = 128  # validation texts whose activations rank the layers for the fallback
FP32_FILE = "fp32.onnx"  # the graph onnx-int8 is quantised from, in the export's scratch folder


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
        s = self.settings
        if "weight_bits" in s:
            lines.append(
                f"int8: {s['weight_bits']}-bit weights ({s['weight_bits_reason']}), "
                f"{'per-channel' if s['per_channel'] else 'per-tensor'} scales"
                + (f"; {len(s['fp32_nodes'])} layers kept in fp32" if s["fp32_nodes"] else "; every layer int8")
            )
        if s.get("fallback"):
            f = s["fallback"]
            lines.append(
                f"fallback: the all-int8 export failed the check; kept the {f['layers']} layers with the largest "
                f"quantisation error in fp32 after {len(f['tried']) - 1} tries: {', '.join(f['kept'][:4])}"
                + (", ..." if len(f["kept"]) > 4 else "")
            )
        v = self.validation
        if self.forced:
            lines.append("kept because of --force although the check below failed: --backend auto will not pick it")
        if v:
            metric, torch_score, export_score = _scores(v)
            changed = "predicted label sets" if metric == "micro_f1" else "predictions"
            lines.append(
                f"validation {v['data']}: {v['rows']} rows; {metric.replace('_', ' ')} {export_score:.4f} vs "
                f"{torch_score:.4f} in PyTorch ({100 * (export_score - torch_score):+.2f} points); "
                f"{v['changed_predictions']} {changed} changed ({100 * v['changed_share']:.2f}%, allowed "
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
    if not isinstance(model_dir, ModelFolder) and Path(model_dir).is_file():
        raise ArtifactError(
            f"{model_dir}: an archive; exports are written into a model folder, so unpack it (tar -xzf) and export "
            "there, then package that folder again."
        )
    folder = ModelFolder.read(model_dir)  # a model folder, or a one-line error
    model_dir = folder.path
    if not os.access(model_dir, os.W_OK):
        raise ArtifactError(f"{model_dir}: not writable; exports are written into the model folder.")
    read_options = read_options or ReadOptions()
    reference = Classifier.load(folder, backend="torch", dtype="float32")  # the exact model, to compare with
    examples, labels = None, None
    if validation is not None:  # bad data fails before the slow part
        examples = read_examples(validation, read_options, multi_label=reference.labels.multi_label)
        labels = reference.labels.targets(reference.labels.encode(examples, read_options.on_bad_rows))
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
        check = _Check(reference, folder, runtime, examples, labels, validation, max_changed, max_accuracy_drop)
        _check_tokenizer(reference, check.open(format, staged), examples)
        report, failures = check.run(format, staged, settings)
        fp32 = work / FP32_FILE  # write_export's fp32 graph, which the fallback quantises again
        if failures and format == "onnx-int8" and quantization.fallback and fp32.is_file():
            report, failures = _fall_back(check, report, fp32, staged, log)
        report.seconds, report.file = time.perf_counter() - started, target
        if failures and not force:
            raise ModelError(
                f"{format} export {' and '.join(failures)}; not kept. Pass --force to keep it anyway "
                "(--backend auto will still not pick it)."
            )
        report.forced = bool(failures)
        if examples is None and format == "onnx-int8":
            log(
                "warning: int8 predictions were not checked against the PyTorch model; "
                "pass --validation DATA to check them"
            )
        _keep(model_dir, staged, target, format, report, runtime)
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dataclass
class _Check:
    """Verifies a staged export: parity with the PyTorch model, then (with labelled data) its
    predictions and accuracy. The reference's validation logits are computed once."""

    reference: Classifier
    folder: ModelFolder
    runtime: TokenizerSettings
    examples: Examples | None
    labels: np.ndarray | None
    validation: str | Path | None
    max_changed: float
    max_accuracy_drop: float
    _want: np.ndarray | None = None

    def open(self, format: str, staged: Path) -> Classifier:
        return Classifier(
            open_backend(format, staged),
            TextEncoder.from_file(self.folder.tokenizer_file, self.runtime),
            self.reference.labels,
            self.reference.batch_size,
        )

    def predictions(self, clf: Classifier) -> np.ndarray:
        """``clf``'s predictions on the examples: class ids, or (multi-label) 0/1 rows at the model's thresholds."""
        logits = clf.logits(self.examples.texts)
        if self.reference.labels.multi_label:
            return self.reference.decide(self.reference.postprocess(logits))
        return logits.argmax(axis=1)

    def run(self, format: str, staged: Path, settings: dict) -> tuple[ExportReport, list[str]]:
        """The report of ``staged`` and what it fails of the accuracy check (a parity failure raises)."""
        exported = self.open(format, staged)
        diff, bound, shapes = _parity(self.reference, exported, self.runtime.max_seq_length, self.examples)
        report = ExportReport(format, staged, staged.stat().st_size, 0.0, diff, bound, shapes, settings=settings)
        if diff > bound:
            raise ModelError(
                f"{format} export does not match the PyTorch model: max |logit difference| {diff:.3g} > "
                f"tolerance {bound:.3g}; not kept."
            )
        if self.examples is None:
            return report, []
        if self._want is None:
            self._want = self.predictions(self.reference)
        got = self.predictions(exported)
        report.validation = _compare(self._want, got, self.examples, self.labels, self.max_changed)
        return report, _accuracy_failures(report.validation, self.validation, self.max_changed, self.max_accuracy_drop)


def _fall_back(check: _Check, all_int8: ExportReport, fp32: Path, staged: Path, log) -> tuple[ExportReport, list[str]]:
    """Keep the int8 layers with the largest quantisation error in fp32, fewest first, until the
    export passes ``check`` (or every layer is fp32); ``all_int8`` is the failed export's report.
    See the module docstring."""
    settings = all_int8.settings
    bits, per_channel = settings["weight_bits"], settings["per_channel"]
    texts = check.examples.texts[:RANKING_TEXTS]
    ranked = _rank_layers(fp32, staged, check.reference, texts, bits, per_channel)
    log(
        f"the all-int8 export fails the check; keeping the layers with the largest quantisation error "
        f"(of {len(ranked)}, measured on {len(texts)} validation texts) in fp32 until it passes"
    )
    tried = [_tried(0, all_int8.validation, log)]
    for count in _steps(len(ranked)):
        kept = [name for name, _ in ranked[:count]]
        trial = {**settings, "fp32_nodes": [*settings["fp32_nodes"], *kept]}
        _quantize(fp32, staged, per_channel, bits, trial["fp32_nodes"])
        report, failures = check.run("onnx-int8", staged, trial)
        tried.append(_tried(count, report.validation, log))
        if not failures or count == len(ranked):
            trial["fallback"] = {
                "layers": count,
                "kept": kept,
                "errors": {name: round(error, 6) for name, error in ranked[:count]},
                "tried": tried,
                "ranked_on": len(texts),
            }
            return report, failures
    raise AssertionError("_steps ends with every layer")


def _tried(layers: int, v: dict, log) -> dict:
    """One fallback try (``layers`` kept in fp32, ``v`` its validation figures), logged and recorded."""
    metric, torch_score, export_score = _scores(v)
    change = export_score - torch_score
    log(
        f"  {layers} layers fp32: {v['changed_predictions']} predictions changed "
        f"({100 * v['changed_share']:.2f}%), {metric.replace('_', ' ')} {100 * change:+.2f} points"
    )
    return {"layers": layers, "changed_predictions": v["changed_predictions"], "accuracy_change": change}


def _steps(n: int) -> list[int]:
    """How many layers each fallback try keeps in fp32: 1, 2, 3, 4, then about 1.5x more each time, up to ``n``."""
    steps, count = [], 1
    while count < n:
        steps.append(count)
        count = count + 1 if count < 4 else int(count * 1.5)
    return [*steps, n] if n else []


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
    fp32 = staged if format == "onnx" else work / FP32_FILE
    log("exporting to ONNX with torch.onnx")
    _onnx(module, example, fp32)
    if format == "onnx":
        return {"method": "torch.onnx.export(dynamo=False)", "opset": OPSET}
    bits, reason = weight_bits(quantization.weight_bits)
    nodes = _fp32_nodes(fp32, quantization.keep_fp32)
    log(f"quantising to int8 with ONNX Runtime: {bits}-bit weights ({reason})")
    _quantize(fp32, staged, quantization.per_channel, bits, nodes)
    return {
        "method": "onnxruntime.quantization.quantize_dynamic",
        "per_channel": quantization.per_channel,
        "weight_bits": bits,
        "weight_bits_reason": reason,
        "reduce_range": bits == 7,
        "keep_fp32": list(quantization.keep_fp32),
        "fp32_nodes": nodes,
    }


def weight_bits(asked: str, flags=None) -> tuple[int, str]:
    """The int8 weight bits for ``asked`` (``auto``, ``8`` or ``7``) on a CPU with ``flags`` (this one's
    by default), and why."""
    if asked != "auto":
        return int(asked), "asked for"
    flag = int8_dot_flag(flags)
    if flag:
        return 8, f"auto: CPU has {flag}, whose int8 dot products do not overflow 8-bit weights"
    return 7, "auto: this CPU has no VNNI, AMX or dot-product instructions, where 8-bit weights overflow"


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


def _quantize(fp32: Path, out: Path, per_channel: bool, bits: int, nodes_to_exclude: list[str]) -> None:
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR  # quantize_dynamic logs advice on the root logger
    try:
        quantize_dynamic(
            str(fp32),
            str(out),
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            reduce_range=bits == 7,
            # a Gemm is first rewritten as a MatMul named NAME_MatMul, which is the name excluded
            nodes_to_exclude=[n for name in nodes_to_exclude for n in (name, f"{name}_MatMul")],
        )
    finally:
        root.level = level


def _quantized_layers(fp32_graph, int8_graph) -> list[tuple[str, str, list[str]]]:
    """``(node, op, inputs)`` of the layers ``quantize_dynamic`` turned into int8: the nodes of
    ``fp32_graph`` that ``int8_graph`` replaced or rewired (MatMuls and Gemms, with a constant
    weight or between two activations, and Gathers from a constant table: the embeddings)."""
    after = {node.name: list(node.input) for node in int8_graph.node}
    return [
        (node.name, node.op_type, list(node.input))
        for node in fp32_graph.node
        if node.op_type in ("MatMul", "Gemm", "Gather") and after.get(node.name) != list(node.input)
    ]


def _fp32_nodes(fp32: Path, groups: tuple[str, ...]) -> list[str]:
    """Names of the MatMul/Gemm nodes the ``groups`` of QuantizationSettings.keep_fp32 cover."""
    patterns = {
        "ffn_output": ("output.dense", "mlp.c_proj", "mlp/c_proj", "output/dense"),  # FFN down projections
        "classifier": ("classifier", "score", "pooler"),  # the head (and BERT's pooler)
    }
    unknown = set(groups) - set(patterns)
    if unknown:
        raise ConfigError(f"keep_fp32: unknown node groups {sorted(unknown)}; known: {sorted(patterns)}.")
    if not groups:
        return []
    import onnx

    graph = onnx.load(str(fp32)).graph
    wanted = [p for g in groups for p in patterns[g]]
    names = []
    for node in graph.node:
        if node.op_type not in ("MatMul", "Gemm"):
            continue
        where = " ".join([node.name, *node.input]).lower()
        if any(p in where and "attention.output" not in where for p in wanted):
            names.append(node.name)
    return names


def _rank_layers(
    fp32: Path, int8: Path, reference: Classifier, texts, bits: int, per_channel: bool
) -> list[tuple[str, float]]:
    """The layers ``int8`` quantised (of ``fp32``), largest quantisation error first.

    A layer's error is its own. One fp32 pass over ``texts`` (padded in batches as at inference)
    gives each MatMul's inputs; each is rounded as the export rounds it: an activation as ONNX
    Runtime does at run time (uint8, one scale per batch), a weight as stored (``bits``, per
    channel or per tensor). The error is ||A B - A' B'|| / ||A B|| over all batches. An
    embedding table T is stored as uint8 with one scale: its error is ||T - T'|| / ||T||.
    """
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    model = onnx.load(str(fp32))
    layers = _quantized_layers(model.graph, onnx.load(str(int8)).graph)
    weights = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    transposed = {n.name for n in model.graph.node if any(a.name == "transB" and a.i for a in n.attribute)}
    error, norm = {}, {}
    for name, op, inputs in layers:
        if op == "Gather":
            table = weights[inputs[0]].astype(np.float32)
            error[name] = float(np.square(table - _round_activation(table)).sum())
            norm[name] = float(np.square(table).sum())
    matmuls = [layer for layer in layers if layer[1] != "Gather"]
    wanted = sorted({x for _, _, inputs in matmuls for x in inputs[:2] if x not in weights})
    known = {o.name for o in model.graph.output}
    for name in wanted:
        if name not in known:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rounded = {}
    for name, _, inputs in matmuls:
        if inputs[1] in weights:
            w = weights[inputs[1]].T if name in transposed else weights[inputs[1]]  # (in, out)
            rounded[name] = (w, _round_weight(w, bits, per_channel))
        error[name] = norm[name] = 0.0
    ids = reference.preprocess(list(texts))
    for rows in eval_batches([len(x) for x in ids], reference.batch_size):
        input_ids, mask = pad([ids[r] for r in rows], reference.encoder.pad_id, reference.encoder.pad_left)
        values = dict(zip(wanted, session.run(wanted, {"input_ids": input_ids, "attention_mask": mask})))
        for name, _, inputs in matmuls:
            a = values[inputs[0]].astype(np.float32)
            if name in rounded:
                b, b_rounded = rounded[name]
            else:  # two activations: both rounded at run time
                b = values[inputs[1]]
                b_rounded = _round_activation(b)
            exact = np.matmul(a, b)
            error[name] += float(np.square(exact - np.matmul(_round_activation(a), b_rounded)).sum())
            norm[name] += float(np.square(exact).sum())
    ranked = {name: (error[name] / norm[name]) ** 0.5 if norm[name] else 0.0 for name in error}
    return sorted(ranked.items(), key=lambda item: -item[1])


def _round_weight(w: np.ndarray, bits: int, per_channel: bool) -> np.ndarray:
    """``w`` (in, out) rounded to symmetric int8 with ``bits`` bits, one scale per output channel or one in all."""
    top = 2 ** (bits - 1) - 1
    peak = np.abs(w).max(axis=0, keepdims=True) if per_channel else np.abs(w).max()
    scale = np.where(peak > 0, peak / top, 1.0)
    return (np.clip(np.round(w / scale), -top - 1, top) * scale).astype(np.float32)


def _round_activation(x: np.ndarray) -> np.ndarray:
    """``x`` rounded as ONNX Runtime's DynamicQuantizeLinear does: uint8, one scale and zero point for all of it."""
    low, high = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    scale = (high - low) / 255 or 1.0
    zero = np.clip(np.round(-low / scale), 0, 255)
    return ((np.clip(np.round(x / scale) + zero, 0, 255) - zero) * scale).astype(np.float32)


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


def _compare(want: np.ndarray, got: np.ndarray, examples, y: np.ndarray, max_changed: float) -> dict:
    """The reference's predictions ``want`` against the export's ``got`` on labelled ``examples``: accuracy, or
    for multi-label (0/1 rows) micro F1, a text's prediction changed when its label set did."""
    if want.ndim == 2:
        changed = int((want != got).any(axis=1).sum())
        scores = {
            "metric": "micro_f1",
            "micro_f1_torch": multilabel_metrics(y, want)["micro_f1"],
            "micro_f1_export": multilabel_metrics(y, got)["micro_f1"],
        }
    else:
        changed = int((want != got).sum())
        scores = {"accuracy_torch": float((want == y).mean()), "accuracy_export": float((got == y).mean())}
    return {
        "data": str(examples.path),
        "rows": int(len(y)),
        **scores,
        "changed_predictions": changed,
        "changed_share": changed / len(y),
        "max_changed": max_changed,
    }


def _scores(v: dict) -> tuple[str, float, float]:
    """(metric, PyTorch's, the export's) of a comparison: accuracy, or micro F1 for multi-label."""
    metric = v.get("metric", "accuracy")
    return metric, v[f"{metric}_torch"], v[f"{metric}_export"]


def _accuracy_failures(v: dict, validation, max_changed: float, max_accuracy_drop: float) -> list[str]:
    """What the export's predictions on ``validation`` (compared in ``v``) do beyond what is allowed."""
    failures = []
    if v["changed_share"] > max_changed:
        failures.append(
            f"changes {100 * v['changed_share']:.2f}% of the predictions on {validation} "
            f"(allowed {100 * max_changed:.2f}%)"
        )
    metric, torch_score, export_score = _scores(v)
    drop = torch_score - export_score
    if drop > max_accuracy_drop:
        name = "accuracy" if metric == "accuracy" else "micro F1"
        failures.append(
            f"loses {100 * drop:.2f} points of {name} on {validation} (allowed {100 * max_accuracy_drop:.2f})"
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
