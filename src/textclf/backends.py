"""Backends run the network: padded token ids in (int64 arrays), logits out (float32 array).

==============  =========================  ==================================================
backend         file in the model folder   runs on
==============  =========================  ==================================================
``torch``       model.safetensors          PyTorch + transformers (``dtype`` bfloat16 optional)
``torchscript`` model.torchscript.pt       PyTorch only (traced by ``textclf export``)
``onnx``        model.onnx                 ONNX Runtime only: no PyTorch, no transformers
``onnx-int8``   model.int8.onnx            ONNX Runtime, int8 weights (dynamic quantisation)
==============  =========================  ==================================================

The exported files take ``input_ids`` and ``attention_mask`` and return ``logits``; a
decoder's position ids are computed inside the graph, so every backend is fed the same way.
``textclf export`` records each verified file in ``textclf.json`` with its SHA-256, and a
file that no longer matches is refused here rather than run.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .artifact import ModelFolder
from .choices import AUTO_ORDER, BACKEND_CHOICES, DTYPES
from .errors import ModelError
from .validation import one_of

__all__ = [
    "BF16_MIN_TOKENS",
    "Backend",
    "Choice",
    "InferencePrecision",
    "OnnxBackend",
    "TorchBackend",
    "TorchScriptBackend",
    "choose",
    "cores",
    "export_precision",
    "file_sha256",
    "fingerprint",
    "int8_weight_bits",
    "open_backend",
    "open_export",
    "threads_per_worker",
]


class Backend(Protocol):
    name: str

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray: ...


SOURCE_FILES = ("config.json", "tokenizer.json", "model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class Choice:
    """The backend a model runs on, and why (logged at load, answered by ``serve``'s ``/info``)."""

    backend: str
    reason: str


def int8_weight_bits(record: dict) -> int:
    """The weight bits of a recorded ``onnx-int8`` export (7 where ``reduce_range`` was on; exports
    from before ``weight_bits`` was recorded say so only through ``reduce_range``)."""
    settings = record.get("settings") or {}
    return int(settings.get("weight_bits") or (7 if settings.get("reduce_range") else 8))


def export_precision(backend: str, record: dict) -> str:
    """What an export recorded as ``record`` computes in: ``float32``, or for int8
    ``int8 (8-bit weights, per-channel, 3 layers fp32)``."""
    if backend != "onnx-int8":
        return "float32"
    settings = record.get("settings") or {}
    kept = len(settings.get("fp32_nodes") or [])
    return (
        f"int8 ({int8_weight_bits(record)}-bit weights{', per-channel' if settings.get('per_channel', True) else ''}"
        f"{f', {kept} layers fp32' if kept else ''})"
    )


def _unfit(backend: str, record: dict, flags: Collection[str] | None) -> str | None:
    """Why this CPU must not run ``backend``'s export recorded as ``record``, or None."""
    from .models import int8_dot_flag

    if backend == "onnx-int8" and int8_weight_bits(record) == 8 and int8_dot_flag(flags) is None:
        return (
            "its weights are 8-bit, which ONNX Runtime's int8 kernels overflow on a CPU without VNNI, AMX or "
            "dot-product instructions, as this one is; re-export it here (7-bit weights)"
        )
    return None


def choose(backend: str, folder: ModelFolder, flags: Collection[str] | None = None) -> Choice:
    """The backend to run, and why: ``backend`` itself, or for ``auto`` the fastest export ``folder``
    holds that passed its checks (not one kept with ``--force``) and suits this CPU (``flags``,
    its own by default), else torch. An int8 export whose weights this CPU cannot run is refused
    even when asked for by name."""
    exports = folder.exports
    if backend != "auto":
        one_of("backend", backend, BACKEND_CHOICES)
        unfit = _unfit(backend, exports.get(backend, {}), flags)
        if unfit:
            raise ModelError(
                f"{folder.path}: cannot run its {backend} export on this CPU: {unfit} "
                f"(`textclf export --model-dir {folder.path} --format {backend}`), or pass --backend onnx."
            )
        return Choice(backend, "asked for")
    passed: list[str] = []
    skipped = lambda: f" ({'; '.join(passed)})" if passed else ""  # noqa: E731
    for name in AUTO_ORDER:
        if name == "torch":
            return Choice("torch", f"auto: {'no usable export' if exports else 'no export in the folder'}{skipped()}")
        if name not in exports:
            continue
        if exports[name].get("forced"):
            passed.append(f"{name} skipped: kept with --force although it failed its accuracy check")
            continue
        unfit = _unfit(name, exports[name], flags)
        if unfit:
            passed.append(f"{name} skipped: {unfit}")
            continue
        return Choice(name, f"auto: the fastest verified export present{skipped()}")
    raise AssertionError("AUTO_ORDER ends with torch")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(model_dir: Path) -> dict:
    """SHA-256 of the files an export is made from (those the folder has)."""
    return {name: file_sha256(model_dir / name) for name in SOURCE_FILES if (model_dir / name).is_file()}


def open_export(folder: ModelFolder, backend: str) -> Path:
    """The verified export file for ``backend``; refuses one that is missing or changed since,
    or that was made from other weights, config or tokenizer than the folder now holds (a
    folder shipped with its exports only, without the weights, is fine)."""
    model_dir = folder.path
    record = folder.exports.get(backend)
    if record is None:
        raise ModelError(
            f"{model_dir}: has no {backend} export; create it with "
            f"`textclf export --model-dir {model_dir} --format {backend}`."
        )
    path = model_dir / record["file"]
    if not path.is_file():
        raise ModelError(f"{path}: missing, though textclf.json lists it; re-run `textclf export --format {backend}`.")
    if file_sha256(path) != record["sha256"]:
        raise ModelError(
            f"{path}: differs from the file `textclf export` verified (SHA-256 mismatch); "
            f"refusing to run it. Re-run `textclf export --format {backend}`."
        )
    for name, digest in record.get("source", {}).items():
        if (model_dir / name).is_file() and file_sha256(model_dir / name) != digest:
            raise ModelError(
                f"{path}: was exported from another {name} than {model_dir} now holds; "
                f"re-run `textclf export --format {backend}` (or pass --backend torch)."
            )
    return path


def open_backend(backend: str, path: Path, threads: int | None = None) -> Backend:
    """The runner of an export file (``torchscript``, ``onnx`` or ``onnx-int8``)."""
    return TorchScriptBackend(path) if backend == "torchscript" else OnnxBackend(path, backend, threads)


BF16_MIN_TOKENS = 256
"""Tokens in a batch (rows x padded length) from which ``--dtype auto`` computes in bfloat16 on a CPU
with AMX. There a lone short text ran slower in bfloat16 than in float32 (the serving benchmark's
p50 at one client, issue 20), as AMX's tile set-up and autocast's weight casts cost more than
they save on a few tokens. With AVX512-BF16 alone bfloat16 was faster at every size measured,
from 8 tokens up (bench/RESULTS.md, Serving)."""


@dataclass(frozen=True)
class InferencePrecision:
    """What the torch backend computes in: bfloat16 autocast for batches of at least ``bf16_from``
    tokens (0: always; None: never, float32), and why. Weights stay float32 either way."""

    bf16_from: int | None
    reason: str

    @classmethod
    def resolve(cls, dtype: str, flags: Collection[str] | None = None, device: str = "cpu") -> InferencePrecision:
        """``float32``, ``bfloat16``, or ``auto``: bfloat16 where the hardware multiplies it natively (a
        CPU with ``flags``, this one's by default, or a GPU), with AMX only for batches of
        :data:`BF16_MIN_TOKENS` tokens or more; float32 otherwise."""
        from .models import native_bf16_flag

        one_of("dtype", dtype, DTYPES)
        if dtype == "float32":
            return cls(None, "asked for")
        if dtype == "bfloat16":
            return cls(0, "asked for")
        if device != "cpu":
            return cls(0, f"auto: {device} computes bfloat16 natively")
        flag = native_bf16_flag(flags)
        if flag is None:
            return cls(None, "auto: this CPU has no native bfloat16 (amx_bf16 or avx512_bf16)")
        if flag == "amx_bf16":
            return cls(
                BF16_MIN_TOKENS,
                f"auto: CPU has {flag}; float32 for batches under {BF16_MIN_TOKENS} tokens, where AMX's set-up "
                "and the weight casts cost more than bfloat16 saves",
            )
        return cls(0, f"auto: CPU has {flag}, faster than float32 at every batch size")

    def bf16(self, tokens: int) -> bool:
        return self.bf16_from is not None and tokens >= self.bf16_from

    @property
    def name(self) -> str:
        return {None: "float32", 0: "bfloat16"}.get(self.bf16_from, f"auto (bfloat16 from {self.bf16_from} tokens)")


FLOAT32 = InferencePrecision(None, "asked for")


class TorchBackend:
    """The model as saved, run by PyTorch (on the CPU, or where training put it).

    ``precision`` may run the matrix products under bfloat16 autocast (weights stay fp32): about
    twice as fast on large batches on CPUs with native bfloat16, probabilities within ~1e-2.
    (Storing the Linear layers in bfloat16 up front gave the same numbers but made single-text
    calls ~25% slower in the serving benchmark, so weights are cast per call.)
    """

    name = "torch"

    def __init__(self, model, precision: InferencePrecision = FLOAT32):
        self.model = model
        self.config = model.config
        self.precision = precision
        self.device = next(model.parameters()).device

    @classmethod
    def from_folder(cls, folder: ModelFolder, dtype: str = "float32") -> TorchBackend:
        """The folder's weights, loaded by transformers (refused unless it is a sequence classifier)."""
        model_dir = folder.path
        if not folder.is_classifier:
            raise ModelError(
                f"{model_dir}: not a text-classification model (architectures {folder.architectures or None}); "
                "fine-tune it first with `textclf train --model DIR`."
            )
        import torch
        from transformers import AutoModelForSequenceClassification

        from .models import quiet_transformers

        precision = InferencePrecision.resolve(dtype)
        try:
            with quiet_transformers():
                model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{model_dir}: cannot load the model ({exc}).") from exc
        return cls(model.eval(), precision)

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        import torch

        from .models import forward_logits

        ids, mask = torch.from_numpy(input_ids).to(self.device), torch.from_numpy(attention_mask).to(self.device)
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision.bf16(input_ids.size)),
        ):
            return forward_logits(self.model, ids, mask).float().cpu().numpy()


class TorchScriptBackend:
    """A traced ``model.torchscript.pt``: PyTorch runs it without transformers' model code."""

    name = "torchscript"

    def __init__(self, path: Path):
        import torch

        try:
            self.module = torch.jit.load(str(path), map_location="cpu").eval()
        except (RuntimeError, OSError) as exc:
            raise ModelError(f"{path}: cannot load the TorchScript file ({exc}).") from exc

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.module(torch.from_numpy(input_ids), torch.from_numpy(attention_mask)).float().numpy()


class OnnxBackend:
    """An ONNX file run by ONNX Runtime on the CPU (all graph optimisations on)."""

    def __init__(self, path: Path, name: str = "onnx", threads: int | None = None):
        import onnxruntime as ort

        self.name = name
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or cores()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # no optimiser warnings on stderr
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"{path}: ONNX Runtime cannot load it ({exc}).") from exc

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"input_ids": input_ids, "attention_mask": attention_mask})[0].astype(
            np.float32, copy=False
        )


def threads_per_worker(workers: int) -> int:
    """Threads for each of ``workers`` processes sharing this machine: :func:`cores` split among them.

    Float sums come out in another order with another thread count, which can move the 6th
    digit of a probability: the same command on the same machine gives the same bytes.
    """
    return max(1, cores() // workers)


def cores() -> int:
    """CPUs this process may use: ``OMP_NUM_THREADS`` if set (as PyTorch reads it), else its affinity."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
